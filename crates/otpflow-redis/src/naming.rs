//! Key names: a keyed hash of the subject inside a Cluster hash tag.

use std::sync::Arc;

use hmac::{Hmac, KeyInit, Mac};
use otpflow::RecordKey;
use sha2::Sha256;

use crate::RedisStoreError;

/// The naming key's HMAC state, keyed and fed the domain once (each name
/// then costs the hash of the subject alone), zeroized on drop (the `hmac`
/// crate's `zeroize` feature).
#[derive(Clone)]
pub(crate) struct Naming {
    mac: Arc<Hmac<Sha256>>,
}

/// Lowercase hex digits (a table, not `write!`: the formatting machinery
/// cost more than the hash).
const HEX: &[u8; 16] = b"0123456789abcdef";

/// Domain separation: these names never collide with other uses of the key.
const DOMAIN: &[u8] = b"otpflow-redis key name v1\0";

impl Naming {
    pub(crate) fn new(key: &[u8]) -> Result<Self, RedisStoreError> {
        if !(32..=64).contains(&key.len()) {
            return Err(RedisStoreError::Options("the naming key is 32 to 64 bytes"));
        }
        // An HMAC takes a key of any length: `new_from_slice` cannot fail.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
            .map_err(|_| RedisStoreError::Options("the naming key is 32 to 64 bytes"))?;
        mac.update(DOMAIN);
        Ok(Self { mac: Arc::new(mac) })
    }

    /// `<prefix>:{<32 hex digits>}`.
    pub(crate) fn key_name(&self, prefix: &str, key: &RecordKey) -> String {
        let mut mac = Hmac::clone(&self.mac);
        mac.update(key.store_key().as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut name = String::with_capacity(prefix.len() + 35);
        name.push_str(prefix);
        name.push_str(":{");
        for byte in &digest[..16] {
            name.push(HEX[usize::from(byte >> 4)].into());
            name.push(HEX[usize::from(byte & 0x0f)].into());
        }
        name.push('}');
        name
    }
}

#[cfg(test)]
mod tests {
    use otpflow::{PhoneNumber, PhonePolicy, Purpose, SubjectKey};

    use super::*;

    fn subject(purpose: Purpose) -> RecordKey {
        let phone = PhoneNumber::parse("+447401101801", &PhonePolicy::default()).expect("a mobile");
        SubjectKey::new(purpose, phone).into()
    }

    #[test]
    fn names_hide_the_number_and_keep_one_slot() {
        let naming = Naming::new(&[1u8; 32]).expect("a valid key");
        let name = naming.key_name("otpflow", &subject(Purpose::Login));
        assert!(
            name.starts_with("otpflow:{") && name.ends_with('}'),
            "{name}"
        );
        assert_eq!(name.len(), "otpflow:{".len() + 32 + 1);
        assert!(!name.contains("7401101801") && !name.contains("login"));
        // Another purpose, another key; another naming key, other names.
        assert_ne!(
            name,
            naming.key_name("otpflow", &subject(Purpose::Onboarding))
        );
        let other = Naming::new(&[2u8; 32]).expect("a valid key");
        assert_ne!(name, other.key_name("otpflow", &subject(Purpose::Login)));
        // The same inputs, the same name.
        assert_eq!(name, naming.key_name("otpflow", &subject(Purpose::Login)));
    }

    #[test]
    fn short_and_long_keys_are_refused() {
        assert!(Naming::new(&[0u8; 31]).is_err());
        assert!(Naming::new(&[0u8; 65]).is_err());
        assert!(Naming::new(&[0u8; 64]).is_ok());
    }
}
