//! Tokens and ids: JWTs signed with the service's key (HS256), the check of
//! KGen's `user-jwt-token`, and ids derived from a validation (Verifik's
//! `_id`, KGen's `authCode`) with an HMAC, so they need no storage and are
//! bound to exactly one validation.
//!
//! | token | lifetime |
//! |---|---|
//! | Kavoon `access_token` | 300 s (`expires_in`) |
//! | Kavoon `refresh_token` | 30 days |
//! | Verifik login `accessToken` | 30 days |
//! | Verifik app-registration token | 1 hour |

use hmac::{KeyInit, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

use crate::app::{push_json_int, push_json_str};

/// Kavoon's `access_token` lifetime (`expires_in: 300`).
pub const KAVOON_ACCESS: Duration = Duration::seconds(300);
/// Kavoon's `refresh_token` lifetime.
pub const KAVOON_REFRESH: Duration = Duration::days(30);
/// Verifik's login `accessToken` lifetime ("valid for 30 days").
pub const VERIFIK_LOGIN: Duration = Duration::days(30);
/// Verifik's app-registration token lifetime.
pub const VERIFIK_REGISTRATION: Duration = Duration::hours(1);

/// The claims of every token this service issues.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// Issuer: `otpflow-server`.
    pub iss: String,
    /// Subject: the E.164 number (or the registration id).
    pub sub: String,
    /// Audience: which seed API the token is for (`kavoon`, `verifik`, …).
    pub aud: String,
    /// Token kind: `access`, `refresh`, `app_registration`.
    pub typ: String,
    /// Issued at (seconds since the epoch, service clock).
    pub iat: i64,
    /// Expires at (seconds since the epoch, service clock).
    pub exp: i64,
    /// The phone number the token speaks for, E.164.
    pub phone: String,
    /// A random token id, so two tokens issued in one second differ.
    pub jti: String,
}

/// Why a token was refused. Deliberately uninformative.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadToken;

/// KGen's user token: the claims this service reads from it.
#[derive(Debug, Deserialize)]
struct KgenClaims {
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    sub: Option<String>,
    exp: i64,
}

/// base64url of `{"alg":"HS256","typ":"JWT"}`: every issued token's header.
const JWT_HEADER_B64: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

/// Issues and checks tokens; derives ids.
pub struct Tokens {
    /// HMAC-SHA256 keyed with `token_key` once; cloned per token, so no
    /// token pays for the key schedule.
    signer: hmac::Hmac<Sha256>,

    kgen: DecodingKey,
    /// HMAC-SHA256 keyed once with the id key (derived from `token_key`).
    id_mac: hmac::Hmac<Sha256>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tokens { <redacted> }")
    }
}

impl Tokens {
    /// `bytes` random bytes (32 at most), as lowercase hex: from the thread's CSPRNG
    /// (`rand::rng()`, ChaCha12 seeded and reseeded from the operating
    /// system), so an id costs no system call (`getrandom` per token showed
    /// in the verify route's profile).
    pub fn random_hex(bytes: usize) -> String {
        use otpflow::rand_core::Rng as _;
        let mut buf = [0u8; 32];
        let buf = &mut buf[..bytes.min(32)];
        rand::rng().fill_bytes(buf);
        hex(buf)
    }

    /// Signs with `token_key`, checks KGen tokens with `kgen_key`.
    pub fn new(token_key: &[u8], kgen_key: &[u8]) -> Self {
        // The id key is derived from the token key, under its own label.
        let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(token_key)
            .unwrap_or_else(|_| unreachable_hmac());
        mac.update(b"otpflow-server/id-key");
        Self {
            signer: <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(token_key)
                .unwrap_or_else(|_| unreachable_hmac()),

            kgen: DecodingKey::from_secret(kgen_key),
            id_mac: {
                let id_key = Zeroizing::new(mac.finalize().into_bytes().to_vec());
                <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(&id_key)
                    .unwrap_or_else(|_| unreachable_hmac())
            },
        }
    }

    /// A signed token for `phone`, of kind `typ`, for the `aud` API.
    ///
    /// # Errors
    /// [`BadToken`] if signing fails (it does not with an HMAC key).
    pub fn issue(
        &self,
        aud: &str,
        typ: &str,
        sub: &str,
        phone: &str,
        now: OffsetDateTime,
        lifetime: Duration,
    ) -> Result<String, BadToken> {
        let mut token = Vec::with_capacity(384);
        self.issue_into(&mut token, aud, typ, sub, phone, now, lifetime);
        // A compact JWS is ASCII (base64url and dots).
        String::from_utf8(token).map_err(|_| BadToken)
    }

    /// As [`Tokens::issue`], the token appended to `out` (the answer's
    /// buffer: no string of its own, no copy). A compact JWS is base64url
    /// and dots, so it stands in a JSON string as it is.
    ///
    /// ```
    /// use otpflow_server::tokens::{KAVOON_ACCESS, Tokens};
    /// let tokens = Tokens::new(b"a token key of the example", b"a kgen key");
    /// let now = time::OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("a time");
    /// let mut out = b"\"".to_vec();
    /// tokens.issue_into(&mut out, "kavoon", "access", "+447401101801", "+447401101801", now, KAVOON_ACCESS);
    /// let token = std::str::from_utf8(&out[1..]).expect("ASCII");
    /// assert_eq!(token.split('.').count(), 3);
    /// assert!(tokens.check(token, "kavoon", "access", now).is_ok());
    /// ```
    #[allow(clippy::too_many_arguments)] // the claims, each its own field
    pub fn issue_into(
        &self,
        out: &mut Vec<u8>,
        aud: &str,
        typ: &str,
        sub: &str,
        phone: &str,
        now: OffsetDateTime,
        lifetime: Duration,
    ) {
        use base64::Engine as _;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use otpflow::rand_core::Rng as _;
        // The claims, written straight into bytes in `Claims`' field
        // order (strings through `app::push_json_str`: `serde_json`'s
        // output, byte for byte, without its per-byte escape lookups; a
        // unit test compares the two).
        let mut payload = Vec::with_capacity(320);
        payload.extend_from_slice(b"{\"iss\":\"otpflow-server\",\"sub\":");
        push_json_str(&mut payload, sub);
        payload.extend_from_slice(b",\"aud\":");
        push_json_str(&mut payload, aud);
        payload.extend_from_slice(b",\"typ\":");
        push_json_str(&mut payload, typ);
        payload.extend_from_slice(b",\"iat\":");
        push_json_int(&mut payload, now.unix_timestamp());
        payload.extend_from_slice(b",\"exp\":");
        push_json_int(&mut payload, (now + lifetime).unix_timestamp());
        payload.extend_from_slice(b",\"phone\":");
        push_json_str(&mut payload, phone);
        // A random token id, so two tokens issued in one second differ
        // (16 bytes from the thread's CSPRNG, as `random_hex(16)`).
        payload.extend_from_slice(b",\"jti\":\"");
        let mut jti = [0u8; 16];
        rand::rng().fill_bytes(&mut jti);
        push_hex(&mut payload, &jti);
        payload.extend_from_slice(b"\"}");
        // A compact JWS (RFC 7515): header.payload.signature, as
        // `jsonwebtoken::encode` makes one (its header's fields in another
        // order), without its per-token header serialization and key
        // schedule; jsonwebtoken reads it (unit test below).
        let start = out.len();
        let encoded = base64::encoded_len(payload.len(), false).unwrap_or_default();
        out.reserve(JWT_HEADER_B64.len() + encoded + 45);
        out.extend_from_slice(JWT_HEADER_B64.as_bytes());
        out.push(b'.');
        let signed = out.len() + encoded;
        out.resize(signed, 0);
        let written = URL_SAFE_NO_PAD
            .encode_slice(
                &payload,
                out.get_mut(signed - encoded..).unwrap_or_default(),
            )
            .unwrap_or_default();
        out.truncate(signed - encoded + written);
        let mut mac = self.signer.clone();
        mac.update(out.get(start..).unwrap_or_default());
        let signature = mac.finalize().into_bytes();
        out.push(b'.');
        let mut sig = [0u8; 43];
        let written = URL_SAFE_NO_PAD
            .encode_slice(signature, &mut sig)
            .unwrap_or_default();
        out.extend_from_slice(sig.get(..written).unwrap_or_default());
    }

    /// Checks a token this service issued for `aud` and `typ`, against the
    /// service clock.
    ///
    /// # Errors
    /// [`BadToken`] for a bad signature, another audience or kind, or an
    /// expired token.
    ///
    /// Only tokens with the exact header this service writes are taken
    /// (`{"alg":"HS256","typ":"JWT"}`, so no other algorithm is ever
    /// considered); the signature is checked first, in constant time
    /// (`hmac`'s `verify_slice`), from the HMAC state keyed once at start,
    /// and the claims are read only from a token that passed it.
    pub fn check(
        &self,
        token: &str,
        aud: &str,
        typ: &str,
        now: OffsetDateTime,
    ) -> Result<Claims, BadToken> {
        use base64::Engine as _;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let (signed, signature) = token.rsplit_once('.').ok_or(BadToken)?;
        let (header, payload) = signed.split_once('.').ok_or(BadToken)?;
        if header != JWT_HEADER_B64 {
            return Err(BadToken);
        }
        // A SHA-256 tag is 32 bytes: 43 base64url characters.
        if signature.len() != 43 {
            return Err(BadToken);
        }
        let mut tag = [0u8; 32];
        let written = URL_SAFE_NO_PAD
            .decode_slice(signature, &mut tag)
            .map_err(|_| BadToken)?;
        let mut mac = self.signer.clone();
        mac.update(signed.as_bytes());
        mac.verify_slice(tag.get(..written).ok_or(BadToken)?)
            .map_err(|_| BadToken)?;
        let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| BadToken)?;
        let claims: Claims = serde_json::from_slice(&payload).map_err(|_| BadToken)?;
        if claims.iss != "otpflow-server"
            || claims.aud != aud
            || claims.typ != typ
            || claims.exp <= now.unix_timestamp()
        {
            return Err(BadToken);
        }
        Ok(claims)
    }

    /// Checks a KGen `user-jwt-token` (HS256 under `kgen_user_jwt_key`, not
    /// expired on the service clock) and returns its user id (`user_id`,
    /// else `sub`).
    ///
    /// # Errors
    /// [`BadToken`] for anything else.
    pub fn kgen_user(&self, token: &str, now: OffsetDateTime) -> Result<String, BadToken> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp"]);
        let data = jsonwebtoken::decode::<KgenClaims>(token.trim(), &self.kgen, &validation)
            .map_err(|_| BadToken)?;
        if data.claims.exp <= now.unix_timestamp() {
            return Err(BadToken);
        }
        data.claims
            .user_id
            .or(data.claims.sub)
            .filter(|u| !u.is_empty() && u.len() <= 256)
            .ok_or(BadToken)
    }

    fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = self.id_mac.clone();
        for p in parts {
            // Length-prefixed, so parts cannot run into each other.
            mac.update(&u64::try_from(p.len()).unwrap_or(u64::MAX).to_be_bytes());
            mac.update(p);
        }
        mac.finalize().into_bytes().into()
    }

    /// A 24-hex-digit id (the shape of a MongoDB `_id`) bound to one
    /// validation: the subject and its generation.
    pub fn validation_id(&self, subject: &str, generation: u32) -> String {
        let mac = self.mac(&[
            b"validation-id",
            subject.as_bytes(),
            &generation.to_be_bytes(),
        ]);
        hex(&mac[..12])
    }

    /// KGen's `authCode`: 15 decimal digits, no leading zero (so it survives
    /// being sent back as a JSON number), bound to the user, the subject and
    /// the validation's generation.
    pub fn kgen_auth_code(&self, user: &str, subject: &str, generation: u32) -> String {
        let mac = self.mac(&[
            b"kgen-auth-code",
            user.as_bytes(),
            subject.as_bytes(),
            &generation.to_be_bytes(),
        ]);
        let mut n = [0u8; 8];
        n.copy_from_slice(&mac[..8]);
        let n = u64::from_be_bytes(n);
        (100_000_000_000_000 + n % 900_000_000_000_000).to_string()
    }

    /// Compares a presented `authCode` in constant time.
    pub fn kgen_auth_code_matches(
        &self,
        presented: &str,
        user: &str,
        subject: &str,
        generation: u32,
    ) -> bool {
        let expected = self.kgen_auth_code(user, subject, generation);
        presented.len() == expected.len()
            && bool::from(presented.as_bytes().ct_eq(expected.as_bytes()))
    }

    /// A short random request id (Verifik's `id`).
    pub fn request_id() -> String {
        Self::random_hex(3).to_uppercase()
    }
}

/// Lowercase hex of `bytes` (a table lookup per nibble; `format!` per byte
/// showed in the load run's profile).
///
/// ```
/// assert_eq!(otpflow_server::tokens::hex(&[0x00, 0x9f, 0xff]), "009fff");
/// ```
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Appends `bytes` as lowercase hex (as [`hex`], into a buffer).
fn push_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)]);
        out.push(DIGITS[usize::from(b & 0x0f)]);
    }
}

/// HMAC-SHA256 takes keys of any length: `new_from_slice` cannot fail.
fn unreachable_hmac() -> hmac::Hmac<Sha256> {
    unreachable!("HMAC accepts keys of any length")
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8; 32] = b"a token key of the tests, 32 b!!";

    /// The tests' key, a `Tokens` keyed by it, and the instant they issue at.
    fn fixture() -> (&'static [u8; 32], Tokens, OffsetDateTime) {
        let now =
            OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap_or_else(|e| panic!("{e}"));
        (KEY, Tokens::new(KEY, KEY), now)
    }

    /// A token for `+447401101801` with subject `sub`.
    fn issued(
        tokens: &Tokens,
        now: OffsetDateTime,
        aud: &str,
        typ: &str,
        sub: &str,
        life: Duration,
    ) -> String {
        tokens
            .issue(aud, typ, sub, "+447401101801", now, life)
            .unwrap_or_else(|_| panic!("issued"))
    }

    #[test]
    fn issued_tokens_are_hs256_jwts_that_jsonwebtoken_reads() {
        let (key, tokens, now) = fixture();
        let token = issued(
            &tokens,
            now,
            "kavoon",
            "access",
            "+447401101801",
            KAVOON_ACCESS,
        );
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&["kavoon"]);
        validation.validate_exp = false;
        let data =
            jsonwebtoken::decode::<Claims>(&token, &DecodingKey::from_secret(key), &validation)
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(data.header.alg, Algorithm::HS256);
        assert_eq!(data.header.typ.as_deref(), Some("JWT"));
        let c = data.claims;
        assert_eq!(
            (c.iss.as_str(), c.aud.as_str(), c.typ.as_str()),
            ("otpflow-server", "kavoon", "access")
        );
        assert_eq!(
            (c.sub.as_str(), c.phone.as_str()),
            ("+447401101801", "+447401101801")
        );
        assert_eq!((c.iat, c.exp), (1_800_000_000, 1_800_000_300));
        assert_eq!(c.jti.len(), 32);
        assert!(tokens.check(&token, "kavoon", "access", now).is_ok());
        assert!(tokens.check(&token, "kavoon", "refresh", now).is_err());
        // Another key's signature does not verify.
        let other = Tokens::new(b"another token key of the tests!!", key);
        assert!(other.check(&token, "kavoon", "access", now).is_err());
    }

    /// The claims as `serde_json` writes them, for the comparison below.
    #[derive(Serialize)]
    struct SerdeClaims<'a> {
        iss: &'a str,
        sub: &'a str,
        aud: &'a str,
        typ: &'a str,
        iat: i64,
        exp: i64,
        phone: &'a str,
        jti: &'a str,
    }

    #[test]
    fn the_written_claims_are_serde_jsons_byte_for_byte() {
        use base64::Engine as _;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let (_, tokens, now) = fixture();
        let early = OffsetDateTime::from_unix_timestamp(-5).unwrap_or_else(|e| panic!("{e}"));
        let odd = "quote \" backslash \\ newline \n tab \t nul \u{0} del \u{7f} é 📱";
        for (aud, typ, sub, at) in [
            ("kavoon", "access", "+447401101801", now),
            (
                "verifik",
                "app_registration",
                "65a1b2c3d4e5f60718293a4b",
                now,
            ),
            (odd, odd, odd, early),
            ("", "", "", now),
        ] {
            let token = tokens
                .issue(aud, typ, sub, sub, at, VERIFIK_LOGIN)
                .unwrap_or_else(|_| panic!("issued"));
            let payload = token.split('.').nth(1).unwrap_or_default();
            let written = URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap_or_else(|e| panic!("{e}"));
            let claims: Claims = serde_json::from_slice(&written).unwrap_or_else(|e| panic!("{e}"));
            let expected = serde_json::to_vec(&SerdeClaims {
                iss: "otpflow-server",
                sub,
                aud,
                typ,
                iat: at.unix_timestamp(),
                exp: (at + VERIFIK_LOGIN).unix_timestamp(),
                phone: sub,
                jti: &claims.jti,
            })
            .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(written, expected, "{aud:?}");
            assert_eq!((claims.aud.as_str(), claims.sub.as_str()), (aud, sub));
        }
    }

    #[test]
    fn check_refuses_every_altered_or_foreign_token() {
        use base64::Engine as _;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let (key, tokens, now) = fixture();
        let token = issued(
            &tokens,
            now,
            "verifik",
            "app_registration",
            "r",
            VERIFIK_REGISTRATION,
        );
        let ok = |t: &str| tokens.check(t, "verifik", "app_registration", now).is_ok();
        assert!(ok(&token));
        // Expired on the service clock, another audience.
        assert!(
            tokens
                .check(
                    &token,
                    "verifik",
                    "app_registration",
                    now + VERIFIK_REGISTRATION
                )
                .is_err()
        );
        assert!(
            tokens
                .check(&token, "kavoon", "app_registration", now)
                .is_err()
        );
        // Every single-character change, truncations and additions.
        for i in 0..token.len() {
            let mut t = token.clone().into_bytes();
            t[i] = if t[i] == b'A' { b'B' } else { b'A' };
            let t = String::from_utf8(t).unwrap_or_default();
            assert!(!ok(&t), "changed at {i}");
            assert!(!ok(&token[..i]), "cut at {i}");
        }
        assert!(!ok(&format!("{token}A")));
        assert!(!ok(&format!("{token}.")));
        assert!(!ok(""));
        // Signed with the right key but under another header (jsonwebtoken
        // with a `kid`), or another algorithm: not a token of this service.
        let claims = tokens
            .check(&token, "verifik", "app_registration", now)
            .unwrap_or_else(|_| panic!("valid"));
        let mut header = jsonwebtoken::Header::new(Algorithm::HS256);
        header.kid = Some("k".into());
        let foreign = jsonwebtoken::encode(
            &header,
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(key),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(!ok(&foreign));
        let hs384 = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::HS384),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(key),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(!ok(&hs384));
        // The same claims signed by jsonwebtoken under HS256: accepted when
        // its header is byte for byte this service's (jsonwebtoken 10 writes
        // its fields in another order: refused, like any other header).
        let same = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(key),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ok(&same), same.starts_with(&format!("{JWT_HEADER_B64}.")));
        // A payload that is not the claims, correctly signed.
        let mut mac = tokens.signer.clone();
        let signed = format!("{JWT_HEADER_B64}.{}", URL_SAFE_NO_PAD.encode(b"[]"));
        mac.update(signed.as_bytes());
        let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        assert!(!ok(&format!("{signed}.{sig}")));
    }
}
