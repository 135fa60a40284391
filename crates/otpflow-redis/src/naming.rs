//! Key names: a keyed hash of the subject inside a Cluster hash tag, with a
//! small memo of the latest names, so a `verify` (a load, then a write of
//! the same key) hashes its subject once, not twice.

use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};

use hmac::{Hmac, KeyInit, Mac};
use otpflow::RecordKey;
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

use crate::RedisStoreError;

/// Lowercase hex digits (a table, not `write!`: the formatting machinery
/// cost more than the hash).
const HEX: &[u8; 16] = b"0123456789abcdef";

/// Domain separation: these names never collide with other uses of the key.
const DOMAIN: &[u8] = b"otpflow-redis key name v1\0";

/// The longest prefix [`RedisOptions::prefix`](crate::RedisOptions::prefix)
/// takes.
pub(crate) const MAX_PREFIX: usize = 64;

/// A name's bytes after the prefix: `:{`, 32 hex digits, `}`.
const TAG: usize = 2 + 32 + 1;

/// Slots of the memo of recent names (a power of two). A `verify` loads a
/// key and writes it one round trip later; with 64 calls in flight, each
/// caching a name on its load, a direct-mapped memo of 1,024 slots keeps
/// the name of about 94 % of them until their write. About 48 KB a store
/// (its clones and options share it), plus the subjects' names it holds.
const RECENT_SLOTS: usize = 1024;

/// The naming key's HMAC state and the memo, shared by a store's clones.
#[derive(Clone)]
pub(crate) struct Naming {
    inner: Arc<Inner>,
}

struct Inner {
    /// Keyed and fed the domain once: each name then costs the hash of the
    /// subject alone. Zeroized on drop (the `hmac` crate's `zeroize`
    /// feature).
    mac: Hmac<Sha256>,
    recent: Recent,
}

/// A key name on the stack: `<prefix>:{<32 hex digits>}`, ASCII.
pub(crate) struct KeyName {
    bytes: [u8; MAX_PREFIX + TAG],
    len: usize,
}

impl KeyName {
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl Naming {
    pub(crate) fn new(key: &[u8]) -> Result<Self, RedisStoreError> {
        Self::with_slots(key, RECENT_SLOTS)
    }

    fn with_slots(key: &[u8], slots: usize) -> Result<Self, RedisStoreError> {
        if !(32..=64).contains(&key.len()) {
            return Err(RedisStoreError::Options("the naming key is 32 to 64 bytes"));
        }
        // An HMAC takes a key of any length: `new_from_slice` cannot fail.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
            .map_err(|_| RedisStoreError::Options("the naming key is 32 to 64 bytes"))?;
        mac.update(DOMAIN);
        Ok(Self {
            inner: Arc::new(Inner {
                mac,
                recent: Recent::new(slots),
            }),
        })
    }

    /// `<prefix>:{<32 hex digits>}`, the digits the first 128 bits of the
    /// HMAC of the key's [`store_key`](RecordKey::store_key). `prefix` is
    /// at most [`MAX_PREFIX`] bytes of ASCII (longer ones are cut, which
    /// [`RedisOptions::prefix`](crate::RedisOptions::prefix) never lets
    /// through).
    pub(crate) fn key_name(&self, prefix: &str, key: &RecordKey) -> KeyName {
        let digest = self.digest(key);
        let prefix = &prefix.as_bytes()[..prefix.len().min(MAX_PREFIX)];
        let mut name = KeyName {
            bytes: [0; MAX_PREFIX + TAG],
            len: prefix.len() + TAG,
        };
        let (head, tag) = name.bytes.split_at_mut(prefix.len());
        head.copy_from_slice(prefix);
        tag[0] = b':';
        tag[1] = b'{';
        for (pair, byte) in tag[2..34].chunks_exact_mut(2).zip(&digest) {
            pair[0] = HEX[usize::from(byte >> 4)];
            pair[1] = HEX[usize::from(byte & 0x0f)];
        }
        tag[34] = b'}';
        name
    }

    /// The name's 128 bits: from the memo when a recent call named the same
    /// subject (the same `store_key`, byte for byte), else hashed.
    fn digest(&self, key: &RecordKey) -> [u8; 16] {
        let subject = Zeroizing::new(key.store_key());
        self.inner
            .recent
            .get_or_insert(subject, |s| self.hash(s.as_bytes()))
    }

    fn hash(&self, subject: &[u8]) -> [u8; 16] {
        let mut mac = self.inner.mac.clone();
        mac.update(subject);
        let full = mac.finalize().into_bytes();
        let mut digest = [0u8; 16];
        digest.copy_from_slice(&full[..16]);
        digest
    }
}

/// The digests of the latest subjects named: a direct-mapped table of
/// [`RECENT_SLOTS`] slots, each the latest subject whose (randomly keyed)
/// hash picked it. Bounded: a new subject replaces the slot's last one,
/// so it never grows, and a flood of subjects only costs misses (each a
/// hash, as without the memo). A slot is taken with `try_lock`: a call
/// never waits for another, it hashes instead. What it holds, subjects'
/// `store_key`s (phone numbers) and name digests (sent to the server
/// anyway), stays in the process's memory until replaced or dropped, and
/// is zeroized then; nothing prints it.
struct Recent {
    hasher: RandomState,
    slots: Box<[Mutex<Option<Entry>>]>,
    mask: u64,
}

struct Entry {
    subject: String,
    digest: [u8; 16],
}

impl Drop for Entry {
    fn drop(&mut self) {
        self.subject.zeroize();
    }
}

impl Recent {
    /// `slots` rounded up to a power of two, at least 1.
    fn new(slots: usize) -> Self {
        let slots = slots.max(1).next_power_of_two();
        Self {
            hasher: RandomState::new(),
            slots: (0..slots).map(|_| Mutex::new(None)).collect(),
            mask: u64::try_from(slots - 1).unwrap_or(u64::MAX),
        }
    }

    fn get_or_insert(
        &self,
        mut subject: Zeroizing<String>,
        hash: impl FnOnce(&str) -> [u8; 16],
    ) -> [u8; 16] {
        let index =
            usize::try_from(self.hasher.hash_one(subject.as_str()) & self.mask).unwrap_or_default();
        let Some(slot) = self.slots.get(index) else {
            return hash(&subject);
        };
        if let Ok(entry) = slot.try_lock()
            && let Some(entry) = entry.as_ref()
            && entry.subject == *subject
        {
            return entry.digest;
        }
        let digest = hash(&subject);
        if let Ok(mut entry) = slot.try_lock() {
            *entry = Some(Entry {
                subject: std::mem::take(&mut *subject),
                digest,
            });
        }
        digest
    }
}

#[cfg(test)]
mod tests {
    use otpflow::budget_key::BudgetKey;
    use otpflow::{PhoneNumber, PhonePolicy, Purpose, SubjectKey};

    use super::*;

    fn subject(purpose: Purpose) -> RecordKey {
        number(purpose, "+447401101801")
    }

    fn number(purpose: Purpose, e164: &str) -> RecordKey {
        let phone = PhoneNumber::parse(e164, &PhonePolicy::default()).expect("a mobile");
        SubjectKey::new(purpose, phone).into()
    }

    fn name(naming: &Naming, key: &RecordKey) -> String {
        String::from_utf8(naming.key_name("otpflow", key).as_bytes().to_vec()).expect("ASCII")
    }

    #[test]
    fn names_hide_the_number_and_keep_one_slot() {
        let naming = Naming::new(&[1u8; 32]).expect("a valid key");
        let name_of = |k: &RecordKey| name(&naming, k);
        let login = name_of(&subject(Purpose::Login));
        assert!(
            login.starts_with("otpflow:{") && login.ends_with('}'),
            "{login}"
        );
        assert_eq!(login.len(), "otpflow:{".len() + 32 + 1);
        assert!(!login.contains("7401101801") && !login.contains("login"));
        // Another purpose, another key; another naming key, other names.
        assert_ne!(login, name_of(&subject(Purpose::Onboarding)));
        let other = Naming::new(&[2u8; 32]).expect("a valid key");
        assert_ne!(login, name(&other, &subject(Purpose::Login)));
        // The same inputs, the same name (the second from the memo).
        assert_eq!(login, name_of(&subject(Purpose::Login)));
    }

    #[test]
    fn the_memo_never_changes_a_name() {
        // One slot and two: every subject evicts or collides with another.
        let keys: Vec<RecordKey> = (0..40)
            .map(|n| number(Purpose::Login, &format!("+4474011018{n:02}")))
            .chain([
                BudgetKey::global().into(),
                subject(Purpose::Onboarding),
                subject(Purpose::custom("reset").expect("a label")),
            ])
            .collect();
        let plain = Naming::with_slots(&[9u8; 32], 1).expect("a valid key");
        let expected: Vec<[u8; 16]> = keys
            .iter()
            .map(|k| plain.hash(k.store_key().as_bytes()))
            .collect();
        for slots in [1, 2, 1024] {
            let naming = Naming::with_slots(&[9u8; 32], slots).expect("a valid key");
            for round in 0..3 {
                for (i, (k, want)) in keys.iter().zip(&expected).enumerate() {
                    // Interleaved: each name asked for twice, another between.
                    for k in [k, &keys[(i * 7 + round) % keys.len()], k] {
                        let got = naming.digest(k);
                        let want = plain.hash(k.store_key().as_bytes());
                        assert_eq!(got, want, "{k} with {slots} slots");
                    }
                    assert_eq!(naming.digest(k), *want);
                }
            }
        }
    }

    #[test]
    fn a_recent_name_is_not_hashed_again() {
        let recent = Recent::new(16);
        let mut hashed = Vec::new();
        for subject in ["login:+447401101801", "login:+447401101801", "x", "x"] {
            let digest = recent.get_or_insert(Zeroizing::new(subject.to_owned()), |s| {
                hashed.push(s.to_owned());
                [7; 16]
            });
            assert_eq!(digest, [7; 16]);
        }
        assert_eq!(hashed, ["login:+447401101801", "x"]);
    }

    #[test]
    fn the_memo_is_bounded() {
        let naming = Naming::with_slots(&[3u8; 32], 5).expect("a valid key");
        for n in 0..200 {
            naming.digest(&number(Purpose::Login, &format!("+447401101{n:03}")));
        }
        let recent = &naming.inner.recent;
        assert_eq!(recent.slots.len(), 8, "rounded up to a power of two");
        let held = recent
            .slots
            .iter()
            .filter(|s| s.lock().is_ok_and(|e| e.is_some()))
            .count();
        assert!((1..=8).contains(&held), "{held}");
    }

    #[test]
    fn long_prefixes_are_cut_not_a_panic() {
        let naming = Naming::new(&[1u8; 32]).expect("a valid key");
        let long = "p".repeat(100);
        let name = naming.key_name(&long, &subject(Purpose::Login));
        assert_eq!(name.as_bytes().len(), MAX_PREFIX + TAG);
    }

    #[test]
    fn short_and_long_keys_are_refused() {
        assert!(Naming::new(&[0u8; 31]).is_err());
        assert!(Naming::new(&[0u8; 65]).is_err());
        assert!(Naming::new(&[0u8; 64]).is_ok());
    }
}
