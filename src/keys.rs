//! Secret HMAC keys with ids, and the [`KeyRing`] that rotates them.
//!
//! A record names the key its code was derived with. Rotation puts a new key
//! in front and keeps the old one as *retired*: it derives no new codes but
//! still checks the codes it issued, so no code in flight fails. Once every
//! code of a retired key has expired, [`KeyRing::remove`] drops it; a check
//! against a removed key ends its validation as expired.
//!
//! Rotation and removal take `&self`: the ring is an immutable list of keys
//! swapped atomically ([`arc_swap`]), so an `Engine` or `Verifier` shared
//! behind an `Arc` rotates while other threads check codes. A check reads
//! one consistent list without taking a lock or touching a shared counter.

use core::fmt;
use core::ops::Deref;
use std::sync::{Arc, Mutex};

use arc_swap::{ArcSwap, Guard};

use rand_core::CryptoRng;
use sha2::block_api::compress256;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Names a key in records, so a code is checked with the key that made it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub u32);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "key#{}", self.0)
    }
}

/// The fewest bytes a secret key may have: HMAC-SHA256's full strength.
pub const MIN_KEY_LEN: usize = 32;
/// The most bytes a secret key may have: one SHA-256 block, so HMAC never
/// hashes the key first.
pub const MAX_KEY_LEN: usize = 64;

/// A secret HMAC-SHA256 key with its id. The key itself is not kept: only
/// the two HMAC midstates it stands for (the SHA-256 state after
/// compressing key ⊕ ipad and key ⊕ opad), computed once, in heap memory
/// zeroized on drop. They compute HMAC(key, ·) exactly as the key does, and
/// save two of the four compressions of every derivation. They are never
/// printed: `Debug` shows only the id.
///
/// ```
/// use otpflow::{KeyId, SecretKey};
/// let key = SecretKey::new(KeyId(1), &[7u8; 32])?;
/// assert_eq!(format!("{key:?}"), "SecretKey { id: KeyId(1), bytes: <redacted> }");
/// # Ok::<(), otpflow::KeyError>(())
/// ```
pub struct SecretKey {
    id: KeyId,
    states: Box<MacStates>,
}

/// HMAC-SHA256's precomputed inner and outer states.
#[derive(Zeroize, ZeroizeOnDrop)]
pub(crate) struct MacStates {
    pub(crate) inner: [u32; 8],
    pub(crate) outer: [u32; 8],
}

/// SHA-256's initial state (FIPS 180-4, 5.3.3).
pub(crate) const SHA256_H0: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// The key xor a pad, on the heap, zeroized on drop.
#[derive(Zeroize, ZeroizeOnDrop)]
struct KeyBlock([u8; 64]);

const IPAD: u8 = 0x36;
const OPAD: u8 = 0x5c;

impl MacStates {
    /// The states of `key` (at most one block: HMAC pads it with zeros).
    /// Every intermediate lives on the heap and is zeroized; the stack the
    /// compressions used is scrubbed.
    fn of(key: &[u8]) -> Box<Self> {
        let mut states = Box::new(Self {
            inner: SHA256_H0,
            outer: SHA256_H0,
        });
        let mut block = Box::new(KeyBlock([0; 64]));
        for (pad, state) in [(IPAD, &mut states.inner), (OPAD, &mut states.outer)] {
            block.0.fill(0);
            block.0.iter_mut().zip(key).for_each(|(b, k)| *b = *k);
            block.0.iter_mut().for_each(|b| *b ^= pad);
            compress256(state, core::slice::from_ref(&block.0));
        }
        crate::code::scrub_stack();
        states
    }
}

impl Clone for SecretKey {
    fn clone(&self) -> Self {
        // Copied field by field into a new heap block, never through a
        // temporary on the stack.
        let mut states = Box::new(MacStates {
            inner: [0; 8],
            outer: [0; 8],
        });
        states.inner.copy_from_slice(&self.states.inner);
        states.outer.copy_from_slice(&self.states.outer);
        Self {
            id: self.id,
            states,
        }
    }
}

impl SecretKey {
    /// A key from secret bytes, 32 to 64 of them (from a secrets manager,
    /// not from source code). The bytes are not kept (see the type's
    /// documentation); zeroize your copy once the key is made.
    ///
    /// # Errors
    /// [`KeyError::Length`] when the key is shorter than 32 or longer than 64
    /// bytes.
    pub fn new(id: KeyId, bytes: &[u8]) -> Result<Self, KeyError> {
        if !(MIN_KEY_LEN..=MAX_KEY_LEN).contains(&bytes.len()) {
            return Err(KeyError::Length(bytes.len()));
        }
        Ok(Self {
            id,
            states: MacStates::of(bytes),
        })
    }

    /// A fresh 32-byte key from a cryptographic random source.
    pub fn generate<R: CryptoRng + ?Sized>(id: KeyId, rng: &mut R) -> Self {
        let mut bytes = Zeroizing::new(vec![0u8; MIN_KEY_LEN]);
        rng.fill_bytes(&mut bytes);
        Self {
            id,
            states: MacStates::of(&bytes[..]),
        }
    }

    /// The key's id.
    pub fn id(&self) -> KeyId {
        self.id
    }

    pub(crate) fn states(&self) -> &MacStates {
        &self.states
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretKey")
            .field("id", &self.id)
            .field("bytes", &format_args!("<redacted>"))
            .finish()
    }
}

/// One current key, which derives every new code, and retired keys that
/// still check the codes they derived. Changes take `&self` and are atomic:
/// a check sees the ring before a change or after it, never between.
///
/// ```
/// use otpflow::{KeyId, KeyRing, SecretKey};
/// let ring = KeyRing::new(SecretKey::new(KeyId(1), &[1u8; 32])?);
/// ring.rotate(SecretKey::new(KeyId(2), &[2u8; 32])?)?;
/// assert_eq!(ring.current().id(), KeyId(2));
/// assert!(ring.get(KeyId(1)).is_some()); // still checks its codes
/// assert_eq!(ring.ids(), vec![KeyId(2), KeyId(1)]);
/// ring.remove(KeyId(1))?;
/// assert!(ring.get(KeyId(1)).is_none());
/// # Ok::<(), otpflow::KeyError>(())
/// ```
pub struct KeyRing {
    keys: ArcSwap<Keys>,
    /// Serializes changes (each reads the list, checks it, and swaps in a
    /// new one); checks never take it.
    writer: Mutex<()>,
}

/// An immutable list of keys: the current one first.
struct Keys {
    current: Arc<SecretKey>,
    retired: Vec<Arc<SecretKey>>,
}

impl Keys {
    fn all(&self) -> impl Iterator<Item = &Arc<SecretKey>> {
        core::iter::once(&self.current).chain(&self.retired)
    }
}

/// A key of a [`KeyRing`], borrowed from the list the ring held when it was
/// looked up: a rotation meanwhile does not change or drop it. Dereferences
/// to the [`SecretKey`].
pub struct KeyRef {
    keys: Guard<Arc<Keys>>,
    /// `None` for the current key, else an index into `retired`.
    retired: Option<usize>,
}

impl Deref for KeyRef {
    type Target = SecretKey;
    fn deref(&self) -> &SecretKey {
        // `retired` is an index the list was searched with: in bounds.
        match self.retired {
            None => &self.keys.current,
            Some(i) => &self.keys.retired[i],
        }
    }
}

impl fmt::Debug for KeyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl Clone for KeyRing {
    /// An independent ring holding the same keys: a later change to one does
    /// not reach the other. To share rotations, share the ring (or what owns
    /// it) behind an `Arc`.
    fn clone(&self) -> Self {
        Self {
            keys: ArcSwap::new(self.keys.load_full()),
            writer: Mutex::new(()),
        }
    }
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys = self.keys.load();
        f.debug_struct("KeyRing")
            .field("current", &keys.current)
            .field("retired", &keys.retired)
            .finish()
    }
}

impl KeyRing {
    /// A ring with one key.
    pub fn new(current: SecretKey) -> Self {
        Self {
            keys: ArcSwap::from_pointee(Keys {
                current: Arc::new(current),
                retired: Vec::new(),
            }),
            writer: Mutex::new(()),
        }
    }

    /// Makes `next` the current key; the previous one is retired. Checks
    /// running meanwhile finish with the ring they started with.
    ///
    /// # Errors
    /// [`KeyError::DuplicateId`] when a key with `next`'s id is already in
    /// the ring: two keys with one id would make old codes unverifiable.
    pub fn rotate(&self, next: SecretKey) -> Result<(), KeyError> {
        let _writer = self.lock_writer();
        let keys = self.keys.load_full();
        if keys.all().any(|k| k.id == next.id) {
            return Err(KeyError::DuplicateId(next.id));
        }
        let retired = core::iter::once(&keys.current)
            .chain(&keys.retired)
            .cloned()
            .collect();
        self.keys.store(Arc::new(Keys {
            current: Arc::new(next),
            retired,
        }));
        Ok(())
    }

    /// Drops a retired key; codes it derived can no longer be checked. Its
    /// memory is zeroized once no check still holds it.
    ///
    /// # Errors
    /// [`KeyError::RemovingCurrent`] for the current key, and
    /// [`KeyError::UnknownId`] for an id that is not in the ring.
    pub fn remove(&self, id: KeyId) -> Result<(), KeyError> {
        let _writer = self.lock_writer();
        let keys = self.keys.load_full();
        if keys.current.id == id {
            return Err(KeyError::RemovingCurrent(id));
        }
        if !keys.retired.iter().any(|k| k.id == id) {
            return Err(KeyError::UnknownId(id));
        }
        let retired = keys.retired.iter().filter(|k| k.id != id).cloned();
        self.keys.store(Arc::new(Keys {
            current: Arc::clone(&keys.current),
            retired: retired.collect(),
        }));
        Ok(())
    }

    /// The key that derives new codes.
    pub fn current(&self) -> KeyRef {
        KeyRef {
            keys: self.keys.load(),
            retired: None,
        }
    }

    /// The key with this id, current or retired.
    pub fn get(&self, id: KeyId) -> Option<KeyRef> {
        let keys = self.keys.load();
        if keys.current.id == id {
            return Some(KeyRef {
                keys,
                retired: None,
            });
        }
        let index = keys.retired.iter().position(|k| k.id == id)?;
        Some(KeyRef {
            keys,
            retired: Some(index),
        })
    }

    /// The ids in the ring, the current key's first, then the retired ones
    /// from the most recently retired.
    pub fn ids(&self) -> Vec<KeyId> {
        self.keys.load().all().map(|k| k.id).collect()
    }

    /// A change panicked while holding the writer lock: the list it swapped
    /// in (or did not) is whole either way, so the lock is used.
    fn lock_writer(&self) -> std::sync::MutexGuard<'_, ()> {
        self.writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Why a key or a key ring change was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    /// The key's length in bytes is outside 32–64.
    Length(usize),
    /// The ring already holds a key with this id.
    DuplicateId(KeyId),
    /// The current key cannot be removed; rotate first.
    RemovingCurrent(KeyId),
    /// No key in the ring has this id.
    UnknownId(KeyId),
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Length(n) => write!(f, "a secret key needs 32 to 64 bytes, not {n}"),
            Self::DuplicateId(id) => write!(f, "the key ring already holds {id}"),
            Self::RemovingCurrent(id) => write!(f, "{id} is the current key and cannot be removed"),
            Self::UnknownId(id) => write!(f, "the key ring holds no {id}"),
        }
    }
}

impl std::error::Error for KeyError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: u32) -> SecretKey {
        SecretKey::new(KeyId(id), &[u8::try_from(id).unwrap_or(0); 32]).unwrap_or_else(|_| panic!())
    }

    #[test]
    fn lengths() {
        assert_eq!(
            SecretKey::new(KeyId(1), &[0; 31]).err(),
            Some(KeyError::Length(31))
        );
        assert_eq!(
            SecretKey::new(KeyId(1), &[0; 65]).err(),
            Some(KeyError::Length(65))
        );
        assert!(SecretKey::new(KeyId(1), &[0; 64]).is_ok());
    }

    #[test]
    fn ring_rules() {
        let ring = KeyRing::new(key(1));
        assert_eq!(ring.rotate(key(1)), Err(KeyError::DuplicateId(KeyId(1))));
        assert_eq!(ring.rotate(key(2)), Ok(()));
        assert_eq!(
            ring.remove(KeyId(2)),
            Err(KeyError::RemovingCurrent(KeyId(2)))
        );
        assert_eq!(ring.remove(KeyId(9)), Err(KeyError::UnknownId(KeyId(9))));
        assert_eq!(ring.remove(KeyId(1)), Ok(()));
        assert!(ring.get(KeyId(1)).is_none());
        assert!(!format!("{ring:?}").contains("[2"));
        assert_eq!(ring.ids(), vec![KeyId(2)]);
    }

    #[test]
    fn a_key_looked_up_outlives_a_change() {
        let ring = KeyRing::new(key(1));
        let held = ring.current();
        assert_eq!(ring.rotate(key(2)), Ok(()));
        assert_eq!(ring.remove(KeyId(1)), Ok(()));
        // The check that looked the key up still has it, whole.
        assert_eq!(held.id(), KeyId(1));
        assert_eq!(held.states().inner, key(1).states().inner);
        assert!(ring.get(KeyId(1)).is_none());
        // A clone is independent.
        let copy = ring.clone();
        assert_eq!(ring.rotate(key(3)), Ok(()));
        assert_eq!(copy.current().id(), KeyId(2));
        assert_eq!(ring.current().id(), KeyId(3));
    }
}
