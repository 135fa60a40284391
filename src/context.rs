//! Binding a code to what it approves.
//!
//! A code that approves a payment should approve *that* payment only: PSD2's
//! dynamic linking asks that the authentication code be specific to the
//! amount and the payee, and a relay phisher who gets a user to type a code
//! should not be able to spend it on a transaction of its own. A
//! [`Context`] names what a validation approves (an amount and a payee, a
//! session id, any fields of the caller's), and a subject bound to it
//! ([`SubjectKey::bound_to`](crate::SubjectKey::bound_to)) gets codes that
//! validate only when the check names the same context.
//!
//! How it works: the context is hashed once, when it is built (SHA-256
//! over a domain tag and length-prefixed fields, so no two different field
//! lists hash alike). A bound validation's record says it is bound (its
//! derivation, [`Derivation::V2Bound`](crate::code::Derivation::V2Bound));
//! its code is derived with the nonce field replaced by
//! `SHA-256(nonce ‖ context digest)`, truncated to the nonce's 16 bytes.
//! The nonce is drawn after the context is fixed, so two contexts chosen in
//! advance to collide on 128 bits would still give different codes: only a
//! collision of the whole digest would do. The record stores nothing of the
//! context (neither an amount nor a payee reaches the store).
//!
//! The rules:
//! - `start` with a bound subject issues a bound code; `verify` validates
//!   it only with the same context. A check with another context, or with
//!   none, is a wrong code: it spends an attempt and counts a failure, as
//!   a relayed code would.
//! - An unbound validation checked with a context is a wrong code too:
//!   a service that binds its checks never accepts an unbound code.
//! - A `resend` re-sends the same code (`ResendMode::SameCode`) only when
//!   it names the same binding (bound or not) as the validation; otherwise
//!   it draws a new code under the binding it names. Pass the same context
//!   to every call of one validation: the record cannot tell two contexts
//!   apart (it holds neither), so a resend under another context sends the
//!   code for that context.
//! - Test numbers ([`Policy::test_numbers`](crate::Policy::test_numbers))
//!   have a fixed code: they are never bound.
//!
//! ```
//! use otpflow::{Channel, Context, Engine, Error, KeyId, KeyRing, PhoneNumber, PhonePolicy,
//!               Policy, Purpose, SecretKey, SubjectKey};
//! use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};
//! use time::macros::datetime;
//!
//! let engine = Engine::new(Policy::default(), KeyRing::new(SecretKey::new(KeyId(1), &[42u8; 32])?));
//! let phone = PhoneNumber::parse("07401 101801", &PhonePolicy::default())?;
//! let payment = SubjectKey::new(Purpose::custom("payment")?, phone);
//! let now = datetime!(2026-11-22 12:00 UTC);
//! let mut rng = ChaCha20Rng::seed_from_u64(7);
//!
//! let pay_acme = payment.clone().bound_to(Context::transaction("12.50 EUR", "ACME Ltd"));
//! let step = engine.start(None, &pay_acme, Channel::Sms, now, &mut rng);
//! let (record, sent) = (step.write.expect("written"), step.outcome?);
//!
//! // The same code for another payee is a wrong code.
//! let relayed = payment.clone().bound_to(Context::transaction("12.50 EUR", "Mallory"));
//! let step = engine.verify(Some(&record), &relayed, sent.code.as_str(), now);
//! assert!(matches!(step.outcome, Err(Error::CodeMismatch { .. })));
//! let record = step.write.expect("an attempt was spent");
//!
//! // For the payment it was sent for, it validates.
//! assert!(engine.verify(Some(&record), &pay_acme, sent.code.as_str(), now).outcome.is_ok());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use core::fmt;

use sha2::{Digest, Sha256};

/// The domain tag hashed before a context's fields.
const DOMAIN: &[u8] = b"otpflow.context.v1";

/// What a code approves, as a digest of named fields: build one with
/// [`Context::transaction`], [`Context::session`] or [`Context::builder`].
/// Two contexts are equal when their fields are, name for name, value for
/// value, in the same order. Its `Debug` shows no field.
///
/// ```
/// use otpflow::Context;
/// let a = Context::transaction("12.50 EUR", "ACME Ltd");
/// let b = Context::builder().field("amount", "12.50 EUR").field("payee", "ACME Ltd").build();
/// assert_eq!(a, b);
/// assert_ne!(a, Context::transaction("12.50 EUR", "ACME Ltd."));
/// assert_ne!(a, Context::transaction("12.5 EUR", "ACME Ltd"));
/// assert!(!format!("{a:?}").contains("ACME"));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Context {
    digest: [u8; 32],
}

impl Context {
    /// A payment: its amount (with its currency, written as the user sees
    /// it, e.g. `"12.50 EUR"`) and its payee. The fields `amount` and
    /// `payee`, in that order.
    pub fn transaction(amount: &str, payee: &str) -> Self {
        Self::builder()
            .field("amount", amount)
            .field("payee", payee)
            .build()
    }

    /// A session (a login attempt, a checkout): the field `session`.
    pub fn session(id: &str) -> Self {
        Self::builder().field("session", id).build()
    }

    /// A context of the caller's own fields.
    pub fn builder() -> ContextBuilder {
        let mut hash = Sha256::new();
        hash.update(DOMAIN);
        ContextBuilder { hash }
    }

    /// The digest the code derivation uses (SHA-256 of the domain tag and
    /// the fields). It reveals no field, but it identifies a context: treat
    /// it like the transaction it names.
    pub fn digest(&self) -> &[u8; 32] {
        &self.digest
    }
}

/// Redacted: a context's fields stay out of logs.
impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Context(..)")
    }
}

/// Builds a [`Context`] from named fields, in order.
#[derive(Clone)]
pub struct ContextBuilder {
    hash: Sha256,
}

impl ContextBuilder {
    /// Adds a field. Names and values are any text (values as the user sees
    /// them); each is length-prefixed, so no two field lists hash alike.
    #[must_use]
    pub fn field(self, name: &str, value: &str) -> Self {
        self.bytes(name, value.as_bytes())
    }

    /// Adds a field whose value is bytes (an id, a hash of a document).
    #[must_use]
    pub fn bytes(mut self, name: &str, value: &[u8]) -> Self {
        for part in [name.as_bytes(), value] {
            // A field longer than 4 GiB is not a context; its length is
            // saturated, and its bytes are all hashed all the same.
            let len = u64::try_from(part.len()).unwrap_or(u64::MAX);
            self.hash.update(len.to_be_bytes());
            self.hash.update(part);
        }
        self
    }

    /// The context.
    pub fn build(self) -> Context {
        Context {
            digest: self.hash.finalize().into(),
        }
    }
}

impl fmt::Debug for ContextBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ContextBuilder(..)")
    }
}

/// The nonce field of a bound derivation: `SHA-256(nonce ‖ digest)`,
/// truncated. `None` (a bound validation checked without a context) uses a
/// digest no context has (all `0xFF`; finding a context that hashes to it
/// is a preimage of SHA-256), so such a check derives a code and fails.
pub(crate) fn bound_nonce(
    nonce: &[u8; crate::code::NONCE_LEN],
    context: Option<&Context>,
) -> [u8; crate::code::NONCE_LEN] {
    let none = [0xFF; 32];
    let digest = context.map_or(&none, Context::digest);
    let full: [u8; 32] = Sha256::new()
        .chain_update(nonce)
        .chain_update(digest)
        .finalize()
        .into();
    let mut out = [0u8; crate::code::NONCE_LEN];
    out.copy_from_slice(&full[..crate::code::NONCE_LEN]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_length_prefixed() {
        let ab = Context::builder().field("a", "bc").build();
        let abc = Context::builder().field("ab", "c").build();
        assert_ne!(ab, abc);
        let two = Context::builder().field("a", "").field("b", "").build();
        let one = Context::builder().field("a", "b").build();
        assert_ne!(two, one);
        assert_ne!(Context::builder().build(), Context::session(""));
    }

    #[test]
    fn the_bound_nonce_depends_on_nonce_and_context() {
        let c = Context::session("s1");
        let n = [1u8; 16];
        assert_ne!(bound_nonce(&n, Some(&c)), bound_nonce(&[2u8; 16], Some(&c)));
        assert_ne!(
            bound_nonce(&n, Some(&c)),
            bound_nonce(&n, Some(&Context::session("s2")))
        );
        assert_ne!(bound_nonce(&n, Some(&c)), bound_nonce(&n, None));
    }
}
