//! The text of the message that carries a code, in the origin-bound forms
//! that phones autofill only for the right site or app.
//!
//! An SMS code typed into a phishing page is the attack SMS codes cannot
//! stop by themselves (relay phishing). Two formats narrow it, and
//! [`MessageFormat`] writes both:
//!
//! - **WebOTP** (browsers; the "origin-bound one-time code" format): the
//!   message's last line is `@example.com #123456`, optionally followed by
//!   ` @iframe.example` for a code entered in a cross-origin iframe. A browser
//!   offers the code only to a page of that origin, so a look-alike domain
//!   gets nothing to autofill.
//! - **Android SMS Retriever**: the message contains the 11-character hash of
//!   the app's package and signing key, and is at most 140 bytes. Only that
//!   app receives the message automatically.
//!
//! ```
//! use otpflow::message::MessageFormat;
//! use time::Duration;
//!
//! let format = MessageFormat::new()
//!     .brand("Example")?
//!     .origin("login.example.com")?
//!     .android_app_hash("FA+9qCX9VSu")?;
//! let text = format.text("042917", Duration::minutes(10))?;
//! assert_eq!(
//!     text,
//!     "Example: your code is 042917. It expires in 10 min. Do not share it.\n\
//!      FA+9qCX9VSu\n\
//!      @login.example.com #042917"
//! );
//! # Ok::<(), otpflow::message::MessageError>(())
//! ```
//!
//! The text is plain ASCII from a restricted alphabet, so it fits the SMS
//! GSM-7 alphabet and one 160-character segment (140 bytes with an Android
//! hash); [`MessageFormat::text`] refuses to write a longer one.

use core::fmt;

use time::Duration;

use crate::code::MAX_CODE_LEN;

/// The longest brand name, in characters.
pub const MAX_BRAND_LEN: usize = 24;
/// The longest host name accepted for [`MessageFormat::origin`], in bytes.
pub const MAX_HOST_LEN: usize = 64;
/// One SMS segment in the GSM-7 alphabet.
pub const SMS_SEGMENT_LEN: usize = 160;
/// The longest message the Android SMS Retriever reads.
pub const SMS_RETRIEVER_MAX_LEN: usize = 140;
/// Characters in an Android SMS Retriever app hash.
pub const APP_HASH_LEN: usize = 11;

/// How to write the message that carries a code. Built once (from
/// configuration), then used for every send.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MessageFormat {
    brand: Option<String>,
    origin: Option<String>,
    embedded_origin: Option<String>,
    app_hash: Option<String>,
}

/// A message format or a message was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MessageError {
    /// The brand name is empty, longer than [`MAX_BRAND_LEN`], or holds a
    /// character outside letters, digits, spaces and `.-'&`.
    InvalidBrand,
    /// The origin is not a bare host name (lowercase ASCII letters, digits,
    /// `-` and `.`, labels of 1–63 characters, at most [`MAX_HOST_LEN`]
    /// bytes): no scheme, port, path or Unicode (use its punycode form).
    InvalidOrigin,
    /// An embedded origin was given without a top-level origin.
    EmbeddedWithoutOrigin,
    /// The app hash is not 11 characters of base64 (`A–Z a–z 0–9 + /`).
    InvalidAppHash,
    /// The code is not 4 to 10 ASCII digits.
    InvalidCode,
    /// The message would be `len` bytes, over `max`.
    TooLong {
        /// The message's length.
        len: usize,
        /// The limit: [`SMS_SEGMENT_LEN`], or [`SMS_RETRIEVER_MAX_LEN`]
        /// with an app hash.
        max: usize,
    },
}

impl MessageError {
    /// A stable machine code: `invalid_brand`, `invalid_origin`,
    /// `embedded_without_origin`, `invalid_app_hash`, `invalid_code` or
    /// `message_too_long`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidBrand => "invalid_brand",
            Self::InvalidOrigin => "invalid_origin",
            Self::EmbeddedWithoutOrigin => "embedded_without_origin",
            Self::InvalidAppHash => "invalid_app_hash",
            Self::InvalidCode => "invalid_code",
            Self::TooLong { .. } => "message_too_long",
        }
    }
}

impl fmt::Display for MessageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidBrand => write!(
                f,
                "the brand must be 1 to {MAX_BRAND_LEN} letters, digits, spaces or .-'&"
            ),
            Self::InvalidOrigin => f.write_str(
                "the origin must be a bare lowercase host name (no scheme, port or path)",
            ),
            Self::EmbeddedWithoutOrigin => {
                f.write_str("an embedded origin needs a top-level origin")
            }
            Self::InvalidAppHash => {
                write!(f, "the app hash must be {APP_HASH_LEN} base64 characters")
            }
            Self::InvalidCode => f.write_str("the code must be 4 to 10 digits"),
            Self::TooLong { len, max } => {
                write!(f, "the message is {len} bytes, over the limit of {max}")
            }
        }
    }
}

impl std::error::Error for MessageError {}

impl MessageFormat {
    /// A format with no brand, origin or app hash: `Your code is 042917. …`.
    pub fn new() -> Self {
        Self::default()
    }

    /// The service's name, at the start of the message.
    ///
    /// # Errors
    /// [`MessageError::InvalidBrand`].
    pub fn brand(mut self, name: &str) -> Result<Self, MessageError> {
        let ok = (1..=MAX_BRAND_LEN).contains(&name.chars().count())
            && name.trim() == name
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || " .-'&".contains(c));
        if !ok {
            return Err(MessageError::InvalidBrand);
        }
        self.brand = Some(name.to_owned());
        Ok(self)
    }

    /// The WebOTP origin: the host of the page where the code is entered
    /// (`login.example.com`). Upper case is folded to lower case.
    ///
    /// # Errors
    /// [`MessageError::InvalidOrigin`].
    pub fn origin(mut self, host: &str) -> Result<Self, MessageError> {
        self.origin = Some(host_name(host)?);
        Ok(self)
    }

    /// The host of a cross-origin iframe in which the code is entered, after
    /// the top-level [`origin`](Self::origin).
    ///
    /// # Errors
    /// [`MessageError::InvalidOrigin`]; [`MessageError::EmbeddedWithoutOrigin`]
    /// when no top-level origin was set first.
    pub fn embedded_origin(mut self, host: &str) -> Result<Self, MessageError> {
        if self.origin.is_none() {
            return Err(MessageError::EmbeddedWithoutOrigin);
        }
        self.embedded_origin = Some(host_name(host)?);
        Ok(self)
    }

    /// The Android SMS Retriever hash of the app (11 base64 characters,
    /// computed from the package name and signing certificate). Limits the
    /// message to [`SMS_RETRIEVER_MAX_LEN`] bytes.
    ///
    /// # Errors
    /// [`MessageError::InvalidAppHash`].
    pub fn android_app_hash(mut self, hash: &str) -> Result<Self, MessageError> {
        let ok = hash.len() == APP_HASH_LEN
            && hash
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/');
        if !ok {
            return Err(MessageError::InvalidAppHash);
        }
        self.app_hash = Some(hash.to_owned());
        Ok(self)
    }

    /// The longest message allowed: 140 bytes with an app hash, else 160.
    pub fn max_len(&self) -> usize {
        if self.app_hash.is_some() {
            SMS_RETRIEVER_MAX_LEN
        } else {
            SMS_SEGMENT_LEN
        }
    }

    /// Checks that every code this format can carry (up to 10 digits, a
    /// lifetime of up to 24 h) fits [`max_len`](Self::max_len): call it once
    /// when the format is configured, so `text` cannot fail later.
    ///
    /// # Errors
    /// [`MessageError::TooLong`] with the longest message's length.
    pub fn check(&self) -> Result<(), MessageError> {
        let longest = "9".repeat(MAX_CODE_LEN);
        self.text(&longest, Duration::hours(24)).map(drop)
    }

    /// The message carrying `code` (a [`Code`](crate::Code)'s
    /// [`as_str`](crate::Code::as_str)), which expires in `expires_in`
    /// (rounded up to whole minutes; at least 1).
    ///
    /// # Errors
    /// [`MessageError::InvalidCode`] for anything but 4–10 ASCII digits;
    /// [`MessageError::TooLong`] when the message exceeds
    /// [`max_len`](Self::max_len).
    pub fn text(&self, code: &str, expires_in: Duration) -> Result<String, MessageError> {
        let digits =
            (4..=MAX_CODE_LEN).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_digit());
        if !digits {
            return Err(MessageError::InvalidCode);
        }
        let minutes = minutes_up(expires_in);
        let mut text = String::with_capacity(SMS_SEGMENT_LEN);
        if let Some(brand) = &self.brand {
            text.push_str(brand);
            text.push_str(": your code is ");
        } else {
            text.push_str("Your code is ");
        }
        text.push_str(code);
        text.push_str(&format!(". It expires in {minutes} min. Do not share it."));
        if let Some(hash) = &self.app_hash {
            text.push('\n');
            text.push_str(hash);
        }
        // WebOTP reads only the last line.
        if let Some(origin) = &self.origin {
            text.push_str(&format!("\n@{origin} #{code}"));
            if let Some(embedded) = &self.embedded_origin {
                text.push_str(&format!(" @{embedded}"));
            }
        }
        let max = self.max_len();
        if text.len() > max {
            return Err(MessageError::TooLong {
                len: text.len(),
                max,
            });
        }
        Ok(text)
    }
}

/// Whole minutes, rounded up, at least one (a code about to expire still
/// says "1 min", never "0 min").
fn minutes_up(d: Duration) -> i64 {
    let secs = d.whole_seconds().max(0);
    ((secs + 59) / 60).max(1)
}

/// A bare host name as WebOTP expects it after `@`, folded to lower case.
fn host_name(host: &str) -> Result<String, MessageError> {
    let host = host.to_ascii_lowercase();
    let labels_ok = host.split('.').all(|label| {
        (1..=63).contains(&label.len())
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    });
    if host.is_empty() || host.len() > MAX_HOST_LEN || !labels_ok {
        return Err(MessageError::InvalidOrigin);
    }
    Ok(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_message() {
        let text = MessageFormat::new()
            .text("1234", Duration::seconds(61))
            .expect("fits");
        assert_eq!(
            text,
            "Your code is 1234. It expires in 2 min. Do not share it."
        );
    }

    #[test]
    fn webotp_last_line_is_origin_bound() {
        let format = MessageFormat::new()
            .origin("Example.COM")
            .and_then(|f| f.embedded_origin("pay.example.net"))
            .expect("valid hosts");
        let text = format.text("987654", Duration::minutes(5)).expect("fits");
        let last = text.lines().last().expect("a line");
        assert_eq!(last, "@example.com #987654 @pay.example.net");
    }

    #[test]
    fn origins_that_are_not_bare_hosts_are_refused() {
        for bad in [
            "",
            "https://example.com",
            "example.com:443",
            "example.com/login",
            "exa mple.com",
            "-example.com",
            "example-.com",
            "example..com",
            ".example.com",
            "exämple.com",
            "example.com #123456\n@evil.com",
            &"a".repeat(65),
        ] {
            assert_eq!(
                MessageFormat::new().origin(bad),
                Err(MessageError::InvalidOrigin),
                "{bad:?}"
            );
        }
        assert_eq!(
            MessageFormat::new().embedded_origin("example.com"),
            Err(MessageError::EmbeddedWithoutOrigin)
        );
    }

    #[test]
    fn brands_and_hashes_are_checked() {
        for bad in ["", " Acme", "Acme\n@evil.com #1", "Acme™", &"A".repeat(25)] {
            assert_eq!(
                MessageFormat::new().brand(bad),
                Err(MessageError::InvalidBrand),
                "{bad:?}"
            );
        }
        assert!(MessageFormat::new().brand("Tom & Jerry's").is_ok());
        for bad in ["FA+9qCX9VS", "FA+9qCX9VSu1", "FA+9qCX9VS=", "FA+9qCX9VS\n"] {
            assert_eq!(
                MessageFormat::new().android_app_hash(bad),
                Err(MessageError::InvalidAppHash),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn codes_must_be_digits() {
        let format = MessageFormat::new();
        for bad in ["123", "12345678901", "12a456", "12 456", "١٢٣٤٥٦"] {
            assert_eq!(
                format.text(bad, Duration::minutes(1)),
                Err(MessageError::InvalidCode),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn length_limits_hold() {
        let host = format!("{}.example", "a".repeat(32));
        let format = MessageFormat::new()
            .brand(&"B".repeat(MAX_BRAND_LEN))
            .and_then(|f| f.origin(&host))
            .expect("valid");
        // Without an app hash it fits one segment…
        format.check().expect("fits 160");
        let text = format
            .text("1234567890", Duration::hours(24))
            .expect("fits");
        assert!(text.len() <= SMS_SEGMENT_LEN);
        // …with one, it is over the Retriever's 140 bytes, and says so.
        let with_hash = format.android_app_hash("FA+9qCX9VSu").expect("valid");
        assert!(matches!(
            with_hash.check(),
            Err(MessageError::TooLong { max: 140, .. })
        ));
        assert!(
            MessageFormat::new()
                .android_app_hash("FA+9qCX9VSu")
                .expect("valid")
                .check()
                .is_ok()
        );
        // The longest host with the longest brand is accepted, and `check`
        // says its messages do not fit one segment.
        let longest = format!("{}.b", "a".repeat(62));
        let format = MessageFormat::new()
            .brand(&"B".repeat(MAX_BRAND_LEN))
            .and_then(|f| f.origin(&longest))
            .expect("valid");
        assert_eq!(
            format.check(),
            Err(MessageError::TooLong { len: 169, max: 160 })
        );
    }

    #[test]
    fn minutes_round_up() {
        assert_eq!(minutes_up(Duration::ZERO), 1);
        assert_eq!(minutes_up(Duration::seconds(-5)), 1);
        assert_eq!(minutes_up(Duration::seconds(60)), 1);
        assert_eq!(minutes_up(Duration::seconds(61)), 2);
        assert_eq!(minutes_up(Duration::hours(24)), 1440);
    }
}
