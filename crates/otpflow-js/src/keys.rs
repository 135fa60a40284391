//! [`KeyRing`]: the secret HMAC keys codes are derived with, by id.

use otpflow::keys::{MAX_KEY_LEN, MIN_KEY_LEN};
use otpflow::{KeyError, KeyId, SecretKey};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use zeroize::Zeroizing;

use crate::error::Failure;
use crate::instant::whole_u32;

/// The secret keys codes are derived with: one current key, and retired ones
/// that still check the codes they issued, so a key rotates without failing
/// codes in flight. Keys are 32 to 64 secret bytes from a secrets manager;
/// the module keeps its own copy (zeroized when dropped) and never shows it.
///
/// ```js
/// const keys = new KeyRing(1, secretBytes);   // a Uint8Array, 32–64 bytes
/// keys.rotate(2, nextSecretBytes);            // key 1 still checks its codes
/// keys.remove(1);                             // once its codes have expired
/// ```
#[wasm_bindgen]
#[derive(Clone, Debug)]
pub struct KeyRing {
    inner: otpflow::KeyRing,
}

#[wasm_bindgen]
impl KeyRing {
    /// A ring whose current key has this id (a whole number 0 to 2³²−1) and
    /// these bytes.
    ///
    /// # Errors
    /// `invalid_key` for fewer than 32 or more than 64 bytes;
    /// `invalid_argument` for an id that is not a whole number in range.
    #[wasm_bindgen(constructor)]
    pub fn new(
        id: f64,
        #[wasm_bindgen(unchecked_param_type = "Uint8Array")] secret: &JsValue,
    ) -> Result<KeyRing, JsValue> {
        let key = secret_key(id, secret)?;
        Ok(Self {
            inner: otpflow::KeyRing::new(key),
        })
    }

    /// A ring with a fresh random 32-byte key (from
    /// `crypto.getRandomValues`), for tests and for services that keep no
    /// code across restarts.
    ///
    /// # Errors
    /// `randomness_unavailable`; `invalid_argument` for a bad id.
    pub fn generate(id: f64) -> Result<KeyRing, JsValue> {
        let id = key_id(id)?;
        let mut bytes = Zeroizing::new([0u8; 32]);
        getrandom::fill(bytes.as_mut()).map_err(|_| Failure::Random)?;
        let key = SecretKey::new(id, bytes.as_ref()).map_err(Failure::from)?;
        Ok(Self {
            inner: otpflow::KeyRing::new(key),
        })
    }

    /// Makes a new key current; the previous one is retired (it still checks
    /// its codes).
    ///
    /// # Errors
    /// `invalid_key` for a wrong length or an id already in the ring.
    pub fn rotate(
        &mut self,
        id: f64,
        #[wasm_bindgen(unchecked_param_type = "Uint8Array")] secret: &JsValue,
    ) -> Result<(), JsValue> {
        let key = secret_key(id, secret)?;
        self.inner.rotate(key).map_err(Failure::from)?;
        Ok(())
    }

    /// Drops a retired key; codes it derived can no longer be checked.
    ///
    /// # Errors
    /// `invalid_key` for the current key or an id not in the ring.
    pub fn remove(&mut self, id: f64) -> Result<(), JsValue> {
        let id = key_id(id)?;
        self.inner.remove(id).map_err(Failure::from)?;
        Ok(())
    }

    /// The id of the key that derives new codes.
    #[wasm_bindgen(getter, js_name = currentId)]
    pub fn current_id(&self) -> u32 {
        self.inner.current().id().0
    }

    /// Whether a key with this id is in the ring.
    pub fn has(&self, id: f64) -> bool {
        key_id(id).is_ok_and(|id| self.inner.get(id).is_some())
    }
}

impl KeyRing {
    /// The core's ring.
    pub(crate) fn inner(&self) -> &otpflow::KeyRing {
        &self.inner
    }
}

fn key_id(id: f64) -> Result<KeyId, Failure> {
    whole_u32(id)
        .map(KeyId)
        .ok_or_else(|| Failure::argument("id", "a whole number from 0 to 4294967295"))
}

/// A key from a `Uint8Array` (a node `Buffer` is one), copied into memory
/// that is zeroized afterwards; a wrong length is refused before any copy.
fn secret_key(id: f64, secret: &JsValue) -> Result<SecretKey, Failure> {
    let id = key_id(id)?;
    let array = secret
        .dyn_ref::<js_sys::Uint8Array>()
        .ok_or_else(|| Failure::argument("secret", "a Uint8Array"))?;
    let len = usize::try_from(array.length()).unwrap_or(usize::MAX);
    if !(MIN_KEY_LEN..=MAX_KEY_LEN).contains(&len) {
        return Err(KeyError::Length(len).into());
    }
    let mut bytes = Zeroizing::new(vec![0u8; len]);
    array.copy_to(&mut bytes);
    Ok(SecretKey::new(id, &bytes)?)
}
