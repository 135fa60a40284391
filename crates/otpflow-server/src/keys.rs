//! The service's secrets: otpflow's code keys, the key that signs the
//! tokens it issues, and the key KGen's `user-jwt-token`s are signed with.
//!
//! They come from a JSON file (`--keys`) or the `OTPFLOW_KEYS` environment
//! variable, never from the command line:
//!
//! ```json
//! {
//!   "otp_keys": [{ "id": 2, "secret": "<base64, 32–64 bytes>" },
//!                { "id": 1, "secret": "<base64>" }],
//!   "token_key": "<base64, 32–64 bytes>",
//!   "kgen_user_jwt_key": "<base64, 32–64 bytes>",
//!   "store_key": "<base64, 32–64 bytes; needed by --store redis://… and postgres://…>",
//!   "webhook_secret": "<base64, 32–64 bytes; needed by --webhook-url>"
//! }
//! ```
//!
//! `store_key` names the records in a shared store (a keyed hash of the
//! subject, so the store does not list phone numbers); it is optional for
//! the memory store.
//!
//! The first of `otp_keys` is current; later ones still verify the codes
//! they issued (rotation).

use core::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use otpflow::{KeyId, KeyRing, SecretKey};
use serde::Deserialize;
use zeroize::Zeroizing;

/// The shortest key accepted for `token_key` and `kgen_user_jwt_key`.
pub const MIN_TOKEN_KEY_LEN: usize = 32;

/// The service's secrets. `Debug` shows no key material.
pub struct ServiceKeys {
    /// otpflow's key ring (code derivation).
    pub otp: KeyRing,
    /// Signs the tokens this service issues (HS256) and derives its ids.
    pub token_key: Zeroizing<Vec<u8>>,
    /// Verifies KGen's `user-jwt-token` (HS256).
    pub kgen_user_jwt_key: Zeroizing<Vec<u8>>,
    /// Names records in a shared store (the subject-hash key); `None`
    /// when not configured.
    pub store_key: Option<Zeroizing<Vec<u8>>>,
    /// Signs the Verifik webhooks; `None` when not configured.
    pub webhook_secret: Option<Zeroizing<Vec<u8>>>,
    /// True when the keys were generated at start (nothing configured).
    pub ephemeral: bool,
}

impl fmt::Debug for ServiceKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceKeys")
            .field("otp_current", &self.otp.current().id())
            .field("token_key", &"<redacted>")
            .field("kgen_user_jwt_key", &"<redacted>")
            .field("store_key", &self.store_key.as_ref().map(|_| "<redacted>"))
            .field(
                "webhook_secret",
                &self.webhook_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("ephemeral", &self.ephemeral)
            .finish()
    }
}

/// Why the keys could not be loaded. Never includes key material.
#[derive(Debug)]
#[non_exhaustive]
pub enum KeysError {
    /// The file could not be read.
    Read(std::io::Error),
    /// The JSON is not of the documented shape.
    Json(serde_json::Error),
    /// `otp_keys` is empty.
    NoOtpKey,
    /// A secret is not base64.
    Base64(&'static str),
    /// A secret is out of the accepted length.
    Length(&'static str),
    /// Two `otp_keys` share an id.
    DuplicateId(u32),
}

impl fmt::Display for KeysError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read(e) => write!(f, "cannot read the keys file: {e}"),
            Self::Json(e) => write!(
                f,
                "the keys are not of the documented JSON shape (line {}, column {})",
                e.line(),
                e.column()
            ),
            Self::NoOtpKey => f.write_str("otp_keys needs at least one key"),
            Self::Base64(what) => write!(f, "{what} is not base64"),
            Self::Length(what) => write!(f, "{what} must be 32 to 64 bytes"),
            Self::DuplicateId(id) => write!(f, "otp key id {id} appears twice"),
        }
    }
}

impl std::error::Error for KeysError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysFile {
    otp_keys: Vec<OtpKeyEntry>,
    token_key: String,
    kgen_user_jwt_key: String,
    #[serde(default)]
    store_key: Option<String>,
    #[serde(default)]
    webhook_secret: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OtpKeyEntry {
    id: u32,
    secret: String,
}

fn decode(what: &'static str, text: &str) -> Result<Zeroizing<Vec<u8>>, KeysError> {
    let bytes = Zeroizing::new(
        STANDARD
            .decode(text.trim())
            .map_err(|_| KeysError::Base64(what))?,
    );
    if !(MIN_TOKEN_KEY_LEN..=otpflow::keys::MAX_KEY_LEN).contains(&bytes.len()) {
        return Err(KeysError::Length(what));
    }
    Ok(bytes)
}

impl ServiceKeys {
    /// Parses the documented JSON shape.
    ///
    /// # Errors
    /// [`KeysError`] naming what is wrong (never a key).
    pub fn from_json(text: &str) -> Result<Self, KeysError> {
        let file: KeysFile = serde_json::from_str(text).map_err(KeysError::Json)?;
        let secret = |e: &OtpKeyEntry| -> Result<SecretKey, KeysError> {
            let bytes = decode("an otp key", &e.secret)?;
            SecretKey::new(KeyId(e.id), &bytes).map_err(|_| KeysError::Length("an otp key"))
        };
        // The oldest key first, then each newer one rotated in: the first
        // entry ends up current.
        let mut entries = file.otp_keys.iter().rev();
        let oldest = entries.next().ok_or(KeysError::NoOtpKey)?;
        let ring = KeyRing::new(secret(oldest)?);
        for e in entries {
            ring.rotate(secret(e)?)
                .map_err(|_| KeysError::DuplicateId(e.id))?;
        }
        Ok(Self {
            otp: ring,
            token_key: decode("token_key", &file.token_key)?,
            kgen_user_jwt_key: decode("kgen_user_jwt_key", &file.kgen_user_jwt_key)?,
            store_key: file
                .store_key
                .as_deref()
                .map(|k| decode("store_key", k))
                .transpose()?,
            webhook_secret: file
                .webhook_secret
                .as_deref()
                .map(|k| decode("webhook_secret", k))
                .transpose()?,
            ephemeral: false,
        })
    }

    /// Random keys for a throw-away in-memory run.
    pub fn ephemeral() -> Self {
        let mut rng = otpflow::rand_core::UnwrapErr(getrandom::SysRng);
        let mut token_key = Zeroizing::new(vec![0u8; 32]);
        let mut kgen = Zeroizing::new(vec![0u8; 32]);
        let mut fill = |buf: &mut [u8]| {
            use otpflow::rand_core::Rng as _;
            rng.fill_bytes(buf);
        };
        fill(&mut token_key);
        fill(&mut kgen);
        let mut rng = otpflow::rand_core::UnwrapErr(getrandom::SysRng);
        Self {
            otp: KeyRing::new(SecretKey::generate(KeyId(1), &mut rng)),
            token_key,
            kgen_user_jwt_key: kgen,
            store_key: None,
            webhook_secret: None,
            ephemeral: true,
        }
    }
}
