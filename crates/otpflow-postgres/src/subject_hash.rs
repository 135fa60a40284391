//! [`SubjectHasher`]: the keyed hash that names a subject's row, so the
//! table does not list the phone numbers being verified.

use core::fmt;

use hmac::{Hmac, KeyInit, Mac};
use otpflow::{KeyError, RecordKey, SubjectKey};
use sha2::Sha256;
use zeroize::Zeroizing;

/// The fewest bytes a hashing key may have.
pub const MIN_HASH_KEY_LEN: usize = 32;
/// The most bytes a hashing key may have (one SHA-256 block).
pub const MAX_HASH_KEY_LEN: usize = 64;

/// Domain separation: these hashes are row names of this store's first
/// layout, never codes (otpflow's code derivation uses its own domain).
const DOMAIN: &[u8] = b"otpflow-postgres/subject/v1\0";

/// Names a subject's row: `HMAC-SHA256(key, domain ‖ "purpose:+E164")`, 32
/// bytes. A dump of the table shows these hashes, not phone numbers; without
/// the key they cannot be tied back to a number (a phone number has too
/// few possible values for an unkeyed hash to hide it).
///
/// The key must stay the same for the life of the table: under another key
/// every subject gets a new row, which is the same as dropping every record
/// early — failure and send budgets start again from zero. It is not
/// otpflow's code key: keep them apart, so rotating the code keys never
/// touches the table. The bytes are zeroized on drop and never printed.
///
/// ```
/// use otpflow::{PhoneNumber, PhonePolicy, Purpose, SubjectKey};
/// use otpflow_postgres::SubjectHasher;
///
/// let hasher = SubjectHasher::new(&[9u8; 32])?;
/// let phone = PhoneNumber::parse("07401 101801", &PhonePolicy::default())?;
/// let row = hasher.hash(&SubjectKey::new(Purpose::Login, phone.clone()));
/// assert_eq!(row.len(), 32);
/// assert_ne!(row, hasher.hash(&SubjectKey::new(Purpose::Onboarding, phone)));
/// assert_eq!(format!("{hasher:?}"), "SubjectHasher { key: <redacted> }");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct SubjectHasher {
    key: Zeroizing<Vec<u8>>,
}

impl SubjectHasher {
    /// A hasher with a secret key of 32 to 64 bytes (from a secrets manager).
    ///
    /// # Errors
    /// [`KeyError::Length`] when the key is shorter than 32 or longer than
    /// 64 bytes.
    pub fn new(key: &[u8]) -> Result<Self, KeyError> {
        if !(MIN_HASH_KEY_LEN..=MAX_HASH_KEY_LEN).contains(&key.len()) {
            return Err(KeyError::Length(key.len()));
        }
        Ok(Self {
            key: Zeroizing::new(key.to_vec()),
        })
    }

    /// The row name of `subject`.
    pub fn hash(&self, subject: &SubjectKey) -> [u8; 32] {
        self.hash_key(&RecordKey::from(subject))
    }

    /// The row name of any record: a subject's (as [`hash`](Self::hash)) or
    /// a budget key's.
    pub fn hash_key(&self, key: &RecordKey) -> [u8; 32] {
        // HMAC takes a key of any length; the length was checked in `new`,
        // so the fallback (an all-zero key) is never reached.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key)
            .unwrap_or_else(|_| <Hmac<Sha256> as KeyInit>::new(&Default::default()));
        mac.update(DOMAIN);
        // `purpose:e164`, or `tenant/purpose:e164`: tenants apart, and the
        // same bytes as before for a subject without one.
        mac.update(key.store_key().as_bytes());
        mac.finalize().into_bytes().into()
    }
}

impl fmt::Debug for SubjectHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SubjectHasher { key: <redacted> }")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use otpflow::{PhoneNumber, PhonePolicy, Purpose};

    fn subject(purpose: Purpose, phone: &str) -> SubjectKey {
        let phone = PhoneNumber::parse(phone, &PhonePolicy::default()).expect("a valid number");
        SubjectKey::new(purpose, phone)
    }

    #[test]
    fn key_length_is_checked() {
        assert_eq!(
            SubjectHasher::new(&[1; 31]).err(),
            Some(KeyError::Length(31))
        );
        assert_eq!(
            SubjectHasher::new(&[1; 65]).err(),
            Some(KeyError::Length(65))
        );
        assert!(SubjectHasher::new(&[1; 64]).is_ok());
    }

    #[test]
    fn rows_depend_on_key_purpose_and_number() {
        let a = SubjectHasher::new(&[1; 32]).expect("valid key");
        let b = SubjectHasher::new(&[2; 32]).expect("valid key");
        let login = subject(Purpose::Login, "+447401101801");
        let other = subject(Purpose::Login, "+447401101802");
        let reset = subject(
            Purpose::custom("reset").expect("valid label"),
            "+447401101801",
        );
        assert_eq!(a.hash(&login), a.hash(&login.clone()));
        assert_ne!(a.hash(&login), b.hash(&login));
        assert_ne!(a.hash(&login), a.hash(&other));
        assert_ne!(a.hash(&login), a.hash(&reset));
        // Written forms of one number name one row.
        assert_eq!(
            a.hash(&login),
            a.hash(&subject(Purpose::Login, "07401 101801"))
        );
    }
}
