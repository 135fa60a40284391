//! Who and what a validation is for: [`Purpose`], [`Channel`] and the
//! [`SubjectKey`] (purpose + phone number) that names a record in a store.

use core::fmt;

use crate::phone::PhoneNumber;

/// The longest custom purpose label, in bytes.
pub const MAX_LABEL_LEN: usize = 32;

/// What a validation is for. A code is bound to its purpose: a login code
/// never validates an onboarding check, and each purpose has its own failure
/// and send ledger.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Purpose {
    /// Signing in.
    Login,
    /// Registering or onboarding.
    Onboarding,
    /// The caller's own label, built with [`Purpose::custom`].
    Custom(Label),
}

/// A custom purpose label: 1–32 bytes of `a-z`, `0-9`, `-`, `_` and `.`,
/// not `login` or `onboarding`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Label(String);

impl Purpose {
    /// A purpose with the caller's own label, such as `"password-reset"`.
    ///
    /// ```
    /// use otpflow::Purpose;
    /// assert_eq!(Purpose::custom("password-reset")?.as_str(), "password-reset");
    /// assert_eq!(Purpose::custom("login")?, Purpose::Login);
    /// assert!(Purpose::custom("Password Reset").is_err());
    /// # Ok::<(), otpflow::PurposeError>(())
    /// ```
    ///
    /// # Errors
    /// [`PurposeError`] for an empty or over-long label, or one with a byte
    /// outside `a-z0-9-_.`.
    pub fn custom(label: &str) -> Result<Self, PurposeError> {
        match label {
            "login" => return Ok(Self::Login),
            "onboarding" => return Ok(Self::Onboarding),
            _ => {}
        }
        if label.is_empty() || label.len() > MAX_LABEL_LEN {
            return Err(PurposeError);
        }
        let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b);
        if !label.bytes().all(allowed) {
            return Err(PurposeError);
        }
        Ok(Self::Custom(Label(label.to_owned())))
    }

    /// The purpose's label: `login`, `onboarding` or the custom label.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Login => "login",
            Self::Onboarding => "onboarding",
            Self::Custom(Label(label)) => label,
        }
    }
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A purpose label that is empty, longer than 32 bytes, or not made of
/// `a-z0-9-_.`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PurposeError;

impl fmt::Display for PurposeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a purpose label is 1 to 32 bytes of a-z, 0-9, '-', '_' and '.'")
    }
}

impl std::error::Error for PurposeError {}

/// How the code reaches the user. otpflow sends nothing itself: the channel
/// travels in the [`Event::Sent`](crate::Event::Sent) the caller acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Channel {
    /// Text message.
    Sms,
    /// WhatsApp message.
    Whatsapp,
    /// Voice call reading the code.
    Voice,
    /// Delivered by the caller some other way (Verifik's `none`).
    None,
}

impl Channel {
    /// `sms`, `whatsapp`, `voice` or `none`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sms => "sms",
            Self::Whatsapp => "whatsapp",
            Self::Voice => "voice",
            Self::None => "none",
        }
    }

    pub(crate) fn to_byte(self) -> u8 {
        match self {
            Self::Sms => 0,
            Self::Whatsapp => 1,
            Self::Voice => 2,
            Self::None => 3,
        }
    }

    pub(crate) fn from_byte(b: u8) -> Option<Self> {
        [Self::Sms, Self::Whatsapp, Self::Voice, Self::None]
            .get(usize::from(b))
            .copied()
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name of one record in a store: a purpose and a canonical phone number.
///
/// Its `Display` and `Debug` forms mask the number (`login:+44 7401 ••• 801`),
/// so a subject written to a log does not give the number away. The whole
/// number is read only through [`phone`](Self::phone)`().e164()`, and
/// [`store_key`](Self::store_key) is the stable, unmasked name to key a
/// store with.
///
/// ```
/// use otpflow::{PhoneNumber, PhonePolicy, Purpose, SubjectKey};
/// let phone = PhoneNumber::parse("07401 101801", &PhonePolicy::default())?;
/// let key = SubjectKey::new(Purpose::Login, phone);
/// assert_eq!(key.store_key(), "login:+447401101801");
/// assert_eq!(key.to_string(), "login:+44 7401 ••• 801");
/// assert!(!format!("{key:?}").contains("7401101801"));
/// # Ok::<(), otpflow::PhoneError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubjectKey {
    purpose: Purpose,
    phone: PhoneNumber,
}

impl SubjectKey {
    /// The subject for this purpose and number.
    pub fn new(purpose: Purpose, phone: PhoneNumber) -> Self {
        Self { purpose, phone }
    }
    /// The purpose.
    pub fn purpose(&self) -> &Purpose {
        &self.purpose
    }
    /// The phone number.
    pub fn phone(&self) -> &PhoneNumber {
        &self.phone
    }
    /// The subject's full, stable name, `login:+447401101801`: what a store
    /// keys its record with (a Redis key, a primary-key column). It holds
    /// the whole number: treat it as personal data, and log the subject's
    /// masked `Display` instead. Two different subjects never share it.
    pub fn store_key(&self) -> String {
        format!("{}:{}", self.purpose, self.phone.e164())
    }
}

/// Masked: `login:+44 7401 ••• 801`. Use [`SubjectKey::store_key`] to name
/// a record.
impl fmt::Display for SubjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.purpose, self.phone.masked())
    }
}

/// Masked, like `Display`.
impl fmt::Debug for SubjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubjectKey")
            .field("purpose", &self.purpose)
            .field("phone", &self.phone.masked())
            .finish()
    }
}
