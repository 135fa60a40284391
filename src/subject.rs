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
///
/// A subject may carry a [`Context`](crate::Context) (see
/// [`bound_to`](Self::bound_to)): it binds the codes issued and checked
/// for it, but it is not part of the subject's identity. Equality, hashing,
/// ordering and [`store_key`](Self::store_key) ignore it: the bound and
/// the unbound key name the same record.
#[derive(Clone)]
pub struct SubjectKey {
    tenant: Option<Tenant>,
    purpose: Purpose,
    phone: PhoneNumber,
    /// Boxed: most subjects have none, and a store keeps a key per record.
    context: Option<Box<crate::context::Context>>,
}

impl SubjectKey {
    /// What identifies the subject: everything but the context.
    fn identity(&self) -> (&Option<Tenant>, &Purpose, &PhoneNumber) {
        (&self.tenant, &self.purpose, &self.phone)
    }
}

impl PartialEq for SubjectKey {
    fn eq(&self, other: &Self) -> bool {
        self.identity() == other.identity()
    }
}

impl Eq for SubjectKey {}

impl core::hash::Hash for SubjectKey {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.identity().hash(state);
    }
}

impl PartialOrd for SubjectKey {
    fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SubjectKey {
    fn cmp(&self, other: &Self) -> core::cmp::Ordering {
        self.identity().cmp(&other.identity())
    }
}

impl SubjectKey {
    /// The subject for this purpose and number.
    pub fn new(purpose: Purpose, phone: PhoneNumber) -> Self {
        Self {
            tenant: None,
            purpose,
            phone,
            context: None,
        }
    }
    /// The same subject, with its codes bound to `context` (what they
    /// approve: a payment's amount and payee, a session). Codes issued for a
    /// bound subject validate only when checked with the same context; see
    /// [`otpflow::context`](crate::context) for the rules. The record and the
    /// budgets stay the subject's: equality and the store key ignore the
    /// context.
    ///
    /// ```
    /// use otpflow::{Context, PhoneNumber, PhonePolicy, Purpose, SubjectKey};
    /// let phone = PhoneNumber::parse("07401 101801", &PhonePolicy::default())?;
    /// let subject = SubjectKey::new(Purpose::Login, phone);
    /// let bound = subject.clone().bound_to(Context::session("4f1c"));
    /// assert_eq!(bound, subject);
    /// assert_eq!(bound.store_key(), subject.store_key());
    /// assert_eq!(bound.context(), Some(&Context::session("4f1c")));
    /// # Ok::<(), otpflow::PhoneError>(())
    /// ```
    #[must_use]
    pub fn bound_to(mut self, context: crate::context::Context) -> Self {
        self.context = Some(Box::new(context));
        self
    }
    /// The context the subject's codes are bound to, if any.
    pub fn context(&self) -> Option<&crate::context::Context> {
        self.context.as_deref()
    }
    /// The same subject within `tenant` (an app or project of a service
    /// that hosts several): another subject, with its own record, budgets
    /// and codes. A code issued in one tenant never validates in another.
    ///
    /// ```
    /// use otpflow::{PhoneNumber, PhonePolicy, Purpose, SubjectKey, subject::Tenant};
    /// let phone = PhoneNumber::parse("07401 101801", &PhonePolicy::default())?;
    /// let shop = SubjectKey::new(Purpose::Login, phone).with_tenant(Tenant::new("shop")?);
    /// assert_eq!(shop.store_key(), "shop/login:+447401101801");
    /// assert_ne!(shop, SubjectKey::new(Purpose::Login, phone));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn with_tenant(mut self, tenant: Tenant) -> Self {
        self.tenant = Some(tenant);
        self
    }
    /// The tenant, if the subject has one.
    pub fn tenant(&self) -> Option<&Tenant> {
        self.tenant.as_ref()
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
    ///
    /// With a tenant it is `shop/login:+447401101801`: labels hold no `/`
    /// and no `:`, so no two subjects share a name.
    pub fn store_key(&self) -> String {
        // Pieces copied into one allocation rather than `format!`: stores
        // name the record with this on every load and write, and the
        // formatting machinery costs three times the copy (callgrind: 882 against
        // 295 instructions a call, allocation included).
        let (purpose, phone) = (self.purpose.as_str(), self.phone.e164());
        let tenant = self.tenant.as_ref().map(Tenant::as_str);
        let mut key = String::with_capacity(
            tenant.map_or(0, |t| t.len() + 1) + purpose.len() + 1 + phone.len(),
        );
        if let Some(tenant) = tenant {
            key.push_str(tenant);
            key.push('/');
        }
        key.push_str(purpose);
        key.push(':');
        key.push_str(phone);
        key
    }

    /// What the code derivation hashes as the purpose: the purpose label,
    /// or `tenant/purpose` for a subject with a tenant. A label holds no
    /// `/`, so the field says unambiguously whether and which tenant is
    /// bound, and a subject without a tenant derives exactly as before
    /// tenants existed. At most 65 bytes.
    pub(crate) fn scoped_purpose(&self) -> ScopedPurpose {
        let mut out = ScopedPurpose {
            bytes: [0; 2 * MAX_LABEL_LEN + 1],
            len: 0,
        };
        let parts: [&[u8]; 3] = match &self.tenant {
            Some(t) => [
                t.as_str().as_bytes(),
                b"/",
                self.purpose.as_str().as_bytes(),
            ],
            None => [self.purpose.as_str().as_bytes(), b"", b""],
        };
        for part in parts {
            // Labels are at most `MAX_LABEL_LEN` bytes: every part fits.
            if let Some(slot) = out.bytes.get_mut(out.len..out.len + part.len()) {
                slot.copy_from_slice(part);
                out.len += part.len();
            }
        }
        out
    }
}

/// The purpose field of the code derivation (see
/// [`SubjectKey::scoped_purpose`]), on the stack.
pub(crate) struct ScopedPurpose {
    bytes: [u8; 2 * MAX_LABEL_LEN + 1],
    len: usize,
}

impl ScopedPurpose {
    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or(&[])
    }
}

/// A tenant: the app or project a subject belongs to, for services that
/// host several ([`SubjectKey::with_tenant`]). 1–32 bytes of `a-z`, `0-9`,
/// `-`, `_` and `.`, the rules of a purpose label.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tenant(String);

impl Tenant {
    /// A tenant named `label`.
    ///
    /// ```
    /// use otpflow::subject::Tenant;
    /// assert_eq!(Tenant::new("shop-eu")?.as_str(), "shop-eu");
    /// assert!(Tenant::new("Shop/EU").is_err());
    /// # Ok::<(), otpflow::PurposeError>(())
    /// ```
    ///
    /// # Errors
    /// [`PurposeError`] for an empty or over-long label, or one with a byte
    /// outside `a-z0-9-_.`.
    pub fn new(label: &str) -> Result<Self, PurposeError> {
        let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b);
        if label.is_empty() || label.len() > MAX_LABEL_LEN || !label.bytes().all(allowed) {
            return Err(PurposeError);
        }
        Ok(Self(label.to_owned()))
    }
    /// The label.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Masked: `login:+44 7401 ••• 801`. Use [`SubjectKey::store_key`] to name
/// a record.
impl fmt::Display for SubjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(t) = &self.tenant {
            write!(f, "{t}/")?;
        }
        write!(f, "{}:{}", self.purpose, self.phone.masked())
    }
}

/// Masked, like `Display`.
impl fmt::Debug for SubjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubjectKey")
            .field("tenant", &self.tenant)
            .field("purpose", &self.purpose)
            .field("phone", &self.phone.masked())
            .field("bound", &self.context.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PhonePolicy;

    /// `store_key` copies its pieces by hand: it must stay byte for byte
    /// the `tenant/purpose:e164` form stores already hold records under.
    #[test]
    fn store_key_is_the_documented_form_for_every_shape() {
        let policy = PhonePolicy::default();
        let longest = "a".repeat(MAX_LABEL_LEN);
        for phone in ["+447401101801", "+14155550123", "+8613800138000"] {
            let phone = PhoneNumber::parse(phone, &policy).unwrap_or_else(|e| panic!("{e}"));
            for purpose in ["login", "x", longest.as_str()] {
                let purpose = Purpose::custom(purpose).unwrap_or_else(|e| panic!("{e}"));
                let plain = SubjectKey::new(purpose.clone(), phone);
                assert_eq!(
                    plain.store_key(),
                    format!("{}:{}", purpose.as_str(), phone.e164())
                );
                for tenant in ["shop-eu", longest.as_str()] {
                    let tenant = Tenant::new(tenant).unwrap_or_else(|e| panic!("{e}"));
                    let scoped = plain.clone().with_tenant(tenant.clone());
                    assert_eq!(
                        scoped.store_key(),
                        format!("{}/{}:{}", tenant.as_str(), purpose.as_str(), phone.e164())
                    );
                }
            }
        }
    }
}
