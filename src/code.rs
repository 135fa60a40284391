//! Code derivation and checking.
//!
//! A code is never stored. It is recomputed whenever it is needed as
//!
//! ```text
//! digits(HMAC-SHA256(key, "otpflow.code.v1" ‖ len ‖ purpose ‖ len ‖ E.164 ‖ nonce ‖ generation ‖ block))
//! ```
//!
//! where every variable-length field is length-prefixed, so no two inputs
//! share a message. The MAC output is read as a stream of bytes; a byte of
//! 250 or more is skipped (rejection sampling) and the others give
//! `byte % 10`, so every digit is uniform — no modulo bias. Should one block
//! run out (probability below 10⁻²⁵ for ten digits), the next block counter
//! gives 32 more bytes.
//!
//! A check parses the user's input first (spaces and dashes ignored; any
//! other character or a wrong length is a malformed code that spends no
//! attempt), then compares all digits in constant time with
//! [`subtle::ConstantTimeEq`]. The length is not secret: it is the policy's.

use core::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::keys::SecretKey;
use crate::subject::SubjectKey;

/// Bytes of the random nonce each validation draws.
pub const NONCE_LEN: usize = 16;
/// The most digits a code can have.
pub const MAX_CODE_LEN: usize = 10;
/// The longest code input looked at, in bytes; anything longer is malformed.
pub const MAX_CODE_INPUT_LEN: usize = 64;

const DOMAIN: &[u8] = b"otpflow.code.v1";
/// Bytes at or above this are rejected: 250 is the largest multiple of 10
/// that fits in a byte.
const REJECT_FROM: u8 = 250;

/// A one-time code, to hand to the message sender. It is zeroized on drop and
/// its `Debug` is redacted; [`as_str`](Self::as_str) is the only way to read
/// it, so it is not logged by accident.
///
/// ```
/// # use otpflow::Code;
/// # fn show(code: &Code) {
/// let text = format!("Your code is {}", code.as_str());
/// assert!(!format!("{code:?}").contains(code.as_str()));
/// # }
/// ```
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Code {
    digits: [u8; MAX_CODE_LEN],
    len: u8,
}

impl Code {
    /// The code's digits, e.g. `"042917"`.
    pub fn as_str(&self) -> &str {
        // Only ASCII digits are ever written into `digits`.
        core::str::from_utf8(&self.digits[..usize::from(self.len)]).unwrap_or_default()
    }

    /// Number of digits.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Always false: a code has 4 to 10 digits.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Compares with parsed user input in constant time.
    pub(crate) fn matches(&self, input: &CodeInput) -> bool {
        let n = usize::from(self.len);
        self.len == input.len && bool::from(self.digits[..n].ct_eq(&input.digits[..n]))
    }
}

/// Constant-time, like every comparison of codes here.
impl PartialEq for Code {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && bool::from(self.digits.ct_eq(&other.digits))
    }
}

impl Eq for Code {}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Code(<{} digits redacted>)", self.len)
    }
}

/// What a user typed, reduced to its digits.
#[derive(Zeroize, ZeroizeOnDrop)]
pub(crate) struct CodeInput {
    digits: [u8; MAX_CODE_LEN],
    len: u8,
}

/// The user's input is not a code of the expected length. Spends no attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MalformedCode;

impl CodeInput {
    /// Keeps the ASCII digits, skips spaces and dashes, refuses anything else
    /// and any count of digits other than `length`.
    pub(crate) fn parse(input: &str, length: u8) -> Result<Self, MalformedCode> {
        if input.len() > MAX_CODE_INPUT_LEN {
            return Err(MalformedCode);
        }
        let want = usize::from(length).min(MAX_CODE_LEN);
        let mut out = Self {
            digits: [0; MAX_CODE_LEN],
            len: 0,
        };
        let mut n = 0usize;
        for b in input.bytes() {
            match b {
                b'0'..=b'9' => {
                    let slot = out
                        .digits
                        .get_mut(n)
                        .filter(|_| n < want)
                        .ok_or(MalformedCode)?;
                    *slot = b;
                    n += 1;
                }
                b' ' | b'-' => {}
                _ => return Err(MalformedCode),
            }
        }
        if n != want {
            return Err(MalformedCode);
        }
        out.len = length;
        Ok(out)
    }
}

/// Derives the code of one validation. `generation` is the validation's
/// number within its subject's record.
pub(crate) fn derive(
    key: &SecretKey,
    subject: &SubjectKey,
    nonce: &[u8; NONCE_LEN],
    generation: u32,
    length: u8,
) -> Code {
    let want = usize::from(length).min(MAX_CODE_LEN);
    let mut code = Code {
        digits: [0; MAX_CODE_LEN],
        len: 0,
    };
    let mut n = 0usize;
    let mut block: u8 = 0;
    while n < want {
        let mut mac = keyed(key);
        let purpose = subject.purpose().as_str().as_bytes();
        let phone = subject.phone().e164().as_bytes();
        mac.update(DOMAIN);
        mac.update(&[len_byte(purpose)]);
        mac.update(purpose);
        mac.update(&[len_byte(phone)]);
        mac.update(phone);
        mac.update(nonce);
        mac.update(&generation.to_be_bytes());
        mac.update(&[block]);
        let out = mac.finalize().into_bytes();
        for &b in out.iter() {
            if n == want {
                break;
            }
            if b < REJECT_FROM {
                code.digits[n] = b'0' + b % 10;
                n += 1;
            }
        }
        block = block.wrapping_add(1);
    }
    code.len = length;
    code
}

fn keyed(key: &SecretKey) -> Hmac<Sha256> {
    // HMAC takes a key of any length, and `SecretKey` holds 32–64 bytes, so
    // this cannot fail; the fallback keeps the no-panic rule without `expect`.
    <Hmac<Sha256> as KeyInit>::new_from_slice(key.bytes())
        .unwrap_or_else(|_| <Hmac<Sha256> as KeyInit>::new(&Default::default()))
}

fn len_byte(field: &[u8]) -> u8 {
    // Purposes are at most 32 bytes and E.164 at most 16.
    u8::try_from(field.len()).unwrap_or(u8::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyId;
    use crate::phone::{PhoneNumber, PhonePolicy};
    use crate::subject::Purpose;

    fn subject(purpose: Purpose) -> SubjectKey {
        let phone = PhoneNumber::parse("+447401101801", &PhonePolicy::default());
        SubjectKey::new(purpose, phone.unwrap_or_else(|e| panic!("{e}")))
    }

    fn key(byte: u8) -> SecretKey {
        SecretKey::new(KeyId(1), &[byte; 32]).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn derivation_is_deterministic_and_bound_to_every_field() {
        let s = subject(Purpose::Login);
        let base = derive(&key(1), &s, &[0; 16], 0, 6);
        assert_eq!(base.len(), 6);
        assert!(base.as_str().bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(base, derive(&key(1), &s, &[0; 16], 0, 6));
        // Each field changes the code (for these fixed inputs; a collision is
        // a 1-in-10^6 event per field, checked once here).
        let variants = [
            derive(&key(2), &s, &[0; 16], 0, 6),
            derive(&key(1), &subject(Purpose::Onboarding), &[0; 16], 0, 6),
            derive(&key(1), &s, &[1; 16], 0, 6),
            derive(&key(1), &s, &[0; 16], 1, 6),
        ];
        for v in &variants {
            assert_ne!(v.as_str(), base.as_str());
        }
        // A longer code extends the shorter one: digits come from one stream.
        let long = derive(&key(1), &s, &[0; 16], 0, 10);
        assert!(long.as_str().starts_with(base.as_str()));
    }

    #[test]
    fn input_parsing() {
        let ok = |s: &str| CodeInput::parse(s, 6).is_ok();
        assert!(ok("123456"));
        assert!(ok(" 123-456 "));
        assert!(ok("12 34 56"));
        for bad in [
            "12345",
            "1234567",
            "12345a",
            "١٢٣٤٥٦",
            "123456\n",
            "",
            "+123456",
            "12.3456",
        ] {
            assert!(!ok(bad), "{bad:?}");
        }
        assert!(!ok(&format!("123456{}", " ".repeat(80))));
    }

    #[test]
    fn matching_is_exact() {
        let code = derive(&key(1), &subject(Purpose::Login), &[9; 16], 3, 6);
        let input = CodeInput::parse(code.as_str(), 6).unwrap_or_else(|_| panic!());
        assert!(code.matches(&input));
        let mut wrong = code.as_str().as_bytes().to_vec();
        wrong[5] = if wrong[5] == b'9' { b'0' } else { wrong[5] + 1 };
        let wrong = String::from_utf8(wrong).unwrap_or_default();
        let input = CodeInput::parse(&wrong, 6).unwrap_or_else(|_| panic!());
        assert!(!code.matches(&input));
        assert!(!format!("{code:?}").contains(code.as_str()));
    }
}
