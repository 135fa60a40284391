//! Budgets beyond one subject, against SMS pumping (toll fraud): the
//! [`Budgets`] a caller names on a send, the [`BudgetKey`]s they become, and
//! the [`SpendTag`] that ties a key's spend to one send.
//!
//! Per-subject budgets do nothing against a pumper who asks for codes to
//! thousands of numbers in one premium range, from many addresses. A caller
//! names, on [`Verifier::start_within`](crate::Verifier::start_within) and
//! [`resend_within`](crate::Verifier::resend_within), the budgets the send
//! spends from besides the subject's own:
//!
//! | kind | key | what it stops |
//! |---|---|---|
//! | [`Address`](BudgetKind::Address) | the client's IPv4 address, or its IPv6 /64 | one client asking for many numbers |
//! | [`Range`](BudgetKind::Range) | the first [`range_prefix`](crate::Policy::range_prefix) digits of the number's E.164 form | many numbers in one (premium) range, from any number of addresses |
//! | [`Country`](BudgetKind::Country) | the calling code and region (`+1/JM`) | a flood to one destination country |
//! | [`Global`](BudgetKind::Global) | one per tenant | everything at once: the service's ceiling |
//! | [`Label`](BudgetKind::Label) | the caller's own label (a session, a device, an API client) | whatever the caller can name |
//!
//! Each key is a GCRA bucket ([`Rate`](crate::budget::Rate): a burst, then
//! one send per interval) with the rate its kind has in the policy
//! ([`Policy::budget_rate`](crate::Policy::budget_rate)); a kind without a
//! rate is not counted. Each key's bucket is its own record in the store
//! ([`RecordKey::Budget`](crate::store::RecordKey::Budget)), written by the
//! same compare-and-swap as a subject's, so keys may live on different
//! shards of a cluster. A key belongs to the subject's tenant: tenants never
//! share a budget.
//!
//! # Spending and giving back
//!
//! A send first checks every named key (reads only) and is refused, with
//! [`Error::BudgetSpent`](crate::Error::BudgetSpent) naming the kind that
//! refuses last and when it allows a send, if any has no room. Otherwise it
//! spends from each key in turn, then writes the subject's record. If a key
//! refuses in between (another process spent its last place), or the
//! subject's write meets a conflict, what the earlier keys spent is given
//! back.
//!
//! A give-back is exact or nothing: a key gives back a spend only while that
//! spend is still the key's latest (its [`SpendTag`] is the one stored) and
//! was not given back before; then the key's bucket is exactly as if the
//! send had not happened. When another send spent from the key in between,
//! the spend stays: the library errs on the side of refusing. So no
//! interleaving of sends, refusals, conflicts and delivery reports ever lets
//! more sends through a key than its rate allows; a lost give-back costs
//! the key one place, for at most the bucket's fill time.
//!
//! The same holds for a failed delivery
//! ([`Verifier::report_delivery_within`](crate::Verifier::report_delivery_within)):
//! the subject's latest send gives back its place in each named key whose
//! latest spend it still is.
//!
//! # Deny rules
//!
//! [`PolicyBuilder::deny_prefix`](crate::PolicyBuilder::deny_prefix) and
//! [`deny_country`](crate::PolicyBuilder::deny_country) refuse every send to
//! numbers they match, whatever the budgets
//! ([`Error::Denied`](crate::Error::Denied)), like geo permissions.
//!
//! # Privacy
//!
//! A key's [`store_key`](BudgetKey::store_key) names an address or a number
//! range: the stores of this workspace hash it before it reaches the
//! server. Its `Display` and `Debug` show only the kind (and a label).

use core::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use sha2::{Digest, Sha256};

use crate::phone::PhoneNumber;
use crate::policy::Policy;
use crate::subject::{PurposeError, SubjectKey, Tenant};

/// The kinds of budget key; each has its own rate in the policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum BudgetKind {
    /// The client's address (IPv4, or the /64 of an IPv6 address).
    Address,
    /// The number's range: a prefix of its E.164 digits.
    Range,
    /// The number's country: calling code and region.
    Country,
    /// One key for the whole tenant (or service).
    Global,
    /// A label of the caller's.
    Label,
}

impl BudgetKind {
    /// Every kind, in the order a send spends from them.
    pub const ALL: [Self; 5] = [
        Self::Address,
        Self::Label,
        Self::Range,
        Self::Country,
        Self::Global,
    ];

    /// `address`, `range`, `country`, `global` or `label`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Address => "address",
            Self::Range => "range",
            Self::Country => "country",
            Self::Global => "global",
            Self::Label => "label",
        }
    }

    pub(crate) fn to_byte(self) -> u8 {
        match self {
            Self::Address => 0,
            Self::Range => 1,
            Self::Country => 2,
            Self::Global => 3,
            Self::Label => 4,
        }
    }

    pub(crate) fn from_byte(b: u8) -> Option<Self> {
        [
            Self::Address,
            Self::Range,
            Self::Country,
            Self::Global,
            Self::Label,
        ]
        .get(usize::from(b))
        .copied()
    }
}

impl fmt::Display for BudgetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A caller's budget label: 1–32 bytes of `a-z`, `0-9`, `-`, `_` and `.`
/// (the rules of a purpose label). Do not put personal data in it: it
/// shows in `Debug`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BudgetLabel(String);

impl BudgetLabel {
    /// The label.
    ///
    /// ```
    /// use otpflow::budget_key::BudgetLabel;
    /// assert_eq!(BudgetLabel::new("api-client-7")?.as_str(), "api-client-7");
    /// assert!(BudgetLabel::new("Session 7").is_err());
    /// # Ok::<(), otpflow::PurposeError>(())
    /// ```
    ///
    /// # Errors
    /// [`PurposeError`] for an empty or over-long label, or one with a byte
    /// outside `a-z0-9-_.`.
    pub fn new(label: &str) -> Result<Self, PurposeError> {
        Tenant::new(label).map(|t| Self(t.as_str().to_owned()))
    }
    /// The label.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a key counts, beyond its tenant.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Scope {
    /// An IPv4 address, or an IPv6 address with its low 64 bits cleared.
    Address(IpAddr),
    /// E.164 digits (no `+`).
    Range(String),
    /// Calling code and region.
    Country(u16, Option<String>),
    Global,
    Label(BudgetLabel),
}

/// One budget key: the name of one bucket's record in the store. Made by
/// [`Engine::budget_keys`](crate::Engine::budget_keys) from the
/// [`Budgets`] a caller names and the subject; its
/// [`store_key`](Self::store_key) names the record.
///
/// ```
/// use otpflow::{Budgets, Engine, KeyId, KeyRing, PhoneNumber, PhonePolicy, Policy, Purpose, SecretKey, SubjectKey};
/// use otpflow::budget_key::BudgetKind;
/// let engine = Engine::new(Policy::default(), KeyRing::new(SecretKey::new(KeyId(1), &[42u8; 32])?));
/// let subject = SubjectKey::new(Purpose::Login, PhoneNumber::parse("07401 101801", &PhonePolicy::default())?);
/// let budgets = Budgets::new().address("2001:db8:1:2:3:4:5:6".parse()?).range();
/// let keys = engine.budget_keys(&subject, &budgets);
/// assert_eq!(keys[0].store_key(), "#budget/address:2001:db8:1:2::");
/// assert_eq!(keys[1].store_key(), "#budget/range:+44740110");
/// assert_eq!(keys[1].kind(), BudgetKind::Range);
/// // Logs see the kind, never the address or the number.
/// assert_eq!(keys[1].to_string(), "range budget");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BudgetKey {
    tenant: Option<Tenant>,
    scope: Scope,
}

impl BudgetKey {
    /// The key for the client address `ip`: an IPv4 address as it is (an
    /// IPv4-mapped IPv6 address is read as IPv4), an IPv6 address as its
    /// /64, the block one subscriber is usually given (so an attacker
    /// cannot walk the addresses of their own /64).
    pub fn address(ip: IpAddr) -> Self {
        let ip = match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => {
                    let bits = u128::from(v6) & !((1u128 << 64) - 1);
                    IpAddr::V6(Ipv6Addr::from(bits))
                }
            },
            v4 => v4,
        };
        Self::of(Scope::Address(ip))
    }

    /// The key for the range of `phone`: its first
    /// [`range_prefix`](Policy::range_prefix) E.164 digits (all of them for
    /// a shorter number).
    pub fn range(phone: &PhoneNumber, policy: &Policy) -> Self {
        let digits = phone.digits();
        let n = usize::from(policy.range_prefix()).min(digits.len());
        Self::of(Scope::Range(digits.get(..n).unwrap_or(digits).to_owned()))
    }

    /// The key for the country of `phone`: its calling code and region
    /// (`+1` numbers of Jamaica and of the US are two countries).
    pub fn country(phone: &PhoneNumber) -> Self {
        Self::of(Scope::Country(
            phone.country_code(),
            phone.region().map(str::to_owned),
        ))
    }

    /// The one global key.
    pub fn global() -> Self {
        Self::of(Scope::Global)
    }

    /// The key for a label of the caller's.
    pub fn label(label: BudgetLabel) -> Self {
        Self::of(Scope::Label(label))
    }

    fn of(scope: Scope) -> Self {
        Self {
            tenant: None,
            scope,
        }
    }

    /// The same key within `tenant`: another bucket.
    #[must_use]
    pub fn with_tenant(mut self, tenant: Option<Tenant>) -> Self {
        self.tenant = tenant;
        self
    }

    /// Its kind.
    pub fn kind(&self) -> BudgetKind {
        match self.scope {
            Scope::Address(_) => BudgetKind::Address,
            Scope::Range(_) => BudgetKind::Range,
            Scope::Country(..) => BudgetKind::Country,
            Scope::Global => BudgetKind::Global,
            Scope::Label(_) => BudgetKind::Label,
        }
    }

    /// The key's full, stable name: `#budget/address:203.0.113.7`,
    /// `#budget/range:+44740110`, `#budget/country:+1/JM`,
    /// `#budget/global`, `#budget/label:api-client-7`, with `shop/` after
    /// `#budget/` for a tenant. No subject's
    /// [`store_key`](SubjectKey::store_key) starts with `#`, so a key never
    /// names a subject's record. It holds an address or a number range:
    /// hash it before it leaves the process (the workspace's stores do).
    pub fn store_key(&self) -> String {
        // Written piece by piece, not with `format!`: the same bytes, but
        // no formatting machinery in a wasm module that names keys (the
        // JavaScript package's size goal, issue 12).
        let mut key = String::with_capacity(64);
        key.push_str("#budget/");
        if let Some(tenant) = &self.tenant {
            key.push_str(tenant.as_str());
            key.push('/');
        }
        match &self.scope {
            Scope::Address(ip) => {
                key.push_str("address:");
                push_ip(&mut key, *ip);
            }
            Scope::Range(digits) => {
                key.push_str("range:+");
                key.push_str(digits);
            }
            Scope::Country(code, region) => {
                key.push_str("country:+");
                push_digits(&mut key, u32::from(*code), 10);
                if let Some(region) = region {
                    key.push('/');
                    key.push_str(region);
                }
            }
            Scope::Global => key.push_str("global"),
            Scope::Label(l) => {
                key.push_str("label:");
                key.push_str(l.as_str());
            }
        }
        key
    }
}

/// `n` in `radix` (10 or 16), lowercase, no leading zeros.
fn push_digits(out: &mut String, n: u32, radix: u32) {
    if n >= radix {
        push_digits(out, n / radix, radix);
    }
    out.push(char::from_digit(n % radix, radix).unwrap_or('0'));
}

/// An address as `Display` writes it: dotted decimal for IPv4; for IPv6,
/// `::ffff:` and dotted decimal for an IPv4-mapped address, else lowercase
/// hex groups with the first longest run of two or more zero groups
/// written `::` (RFC 5952).
fn push_ip(out: &mut String, ip: IpAddr) {
    let v4 = |out: &mut String, v4: Ipv4Addr| {
        for (i, octet) in v4.octets().into_iter().enumerate() {
            if i > 0 {
                out.push('.');
            }
            push_digits(out, u32::from(octet), 10);
        }
    };
    let v6 = match ip {
        IpAddr::V4(a) => return v4(out, a),
        IpAddr::V6(a) => a,
    };
    if let Some(a) = v6.to_ipv4_mapped() {
        out.push_str("::ffff:");
        return v4(out, a);
    }
    let groups = v6.segments();
    // The first longest run of zero groups: (start, length).
    let (mut zeros, mut run) = ((0, 0), (0, 0));
    for (i, &group) in groups.iter().enumerate() {
        if group == 0 {
            if run.1 == 0 {
                run.0 = i;
            }
            run.1 += 1;
            if run.1 > zeros.1 {
                zeros = run;
            }
        } else {
            run = (0, 0);
        }
    }
    let hex = |out: &mut String, part: &[u16]| {
        for (i, &group) in part.iter().enumerate() {
            if i > 0 {
                out.push(':');
            }
            push_digits(out, u32::from(group), 16);
        }
    };
    if zeros.1 > 1 {
        hex(out, groups.get(..zeros.0).unwrap_or_default());
        out.push_str("::");
        hex(out, groups.get(zeros.0 + zeros.1..).unwrap_or_default());
    } else {
        hex(out, &groups);
    }
}

/// `range budget`: the kind only, never the address or the number.
impl fmt::Display for BudgetKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} budget", self.kind())
    }
}

/// The tenant, the kind and a label; never the address or the number.
impl fmt::Debug for BudgetKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("BudgetKey");
        d.field("tenant", &self.tenant).field("kind", &self.kind());
        if let Scope::Label(l) = &self.scope {
            d.field("label", l);
        }
        d.finish()
    }
}

/// The budgets a send spends from, besides the subject's own: named by the
/// caller on each `start` and `resend` (see the [module](self) docs).
///
/// ```
/// use otpflow::Budgets;
/// use otpflow::budget_key::BudgetLabel;
/// let client = "203.0.113.7".parse()?;
/// // What a public sign-in form names: the client, the number's range and
/// // country, and the service's ceiling.
/// let budgets = Budgets::new().address(client).range().country().global();
/// let api = Budgets::new().label(BudgetLabel::new("partner-42")?);
/// assert!(Budgets::new().is_empty() && !api.is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Budgets {
    address: Option<IpAddr>,
    range: bool,
    country: bool,
    global: bool,
    labels: Vec<BudgetLabel>,
}

impl Budgets {
    /// No budget beyond the subject's.
    pub fn new() -> Self {
        Self::default()
    }
    /// The client's address.
    #[must_use]
    pub fn address(mut self, ip: IpAddr) -> Self {
        self.address = Some(ip);
        self
    }
    /// The range of the subject's number.
    #[must_use]
    pub fn range(mut self) -> Self {
        self.range = true;
        self
    }
    /// The country of the subject's number.
    #[must_use]
    pub fn country(mut self) -> Self {
        self.country = true;
        self
    }
    /// The global key.
    #[must_use]
    pub fn global(mut self) -> Self {
        self.global = true;
        self
    }
    /// A label of the caller's (any number of them).
    #[must_use]
    pub fn label(mut self, label: BudgetLabel) -> Self {
        if !self.labels.contains(&label) {
            self.labels.push(label);
        }
        self
    }
    /// True when no budget is named.
    pub fn is_empty(&self) -> bool {
        self.address.is_none()
            && !self.range
            && !self.country
            && !self.global
            && self.labels.is_empty()
    }

    /// The keys for a send to `subject` under `policy`, in spending order,
    /// without the kinds the policy gives no rate.
    pub(crate) fn keys(&self, subject: &SubjectKey, policy: &Policy) -> Vec<BudgetKey> {
        let phone = subject.phone();
        let mut keys = Vec::new();
        for kind in BudgetKind::ALL {
            if policy.budget_rate(kind).is_none() {
                continue;
            }
            match kind {
                BudgetKind::Address => keys.extend(self.address.map(BudgetKey::address)),
                BudgetKind::Label => {
                    keys.extend(self.labels.iter().cloned().map(BudgetKey::label));
                }
                BudgetKind::Range if self.range => keys.push(BudgetKey::range(phone, policy)),
                BudgetKind::Country if self.country => keys.push(BudgetKey::country(phone)),
                BudgetKind::Global if self.global => keys.push(BudgetKey::global()),
                _ => {}
            }
        }
        keys.into_iter()
            .map(|k| k.with_tenant(subject.tenant().cloned()))
            .collect()
    }
}

/// Which send spent from a budget key: a key gives back only its latest
/// spend, and only to the send that made it. Derived from the subject's
/// record (its validation's random nonce and the send's number), so it
/// names no subject and needs no storage of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SpendTag(pub(crate) u64);

impl SpendTag {
    /// The tag of send number `seq` of the validation with `nonce` and
    /// `generation`. Never 0 (which a bucket stores for "no spend").
    pub(crate) fn derive(nonce: &[u8], generation: u32, seq: u32) -> Self {
        let digest = Sha256::new()
            .chain_update(b"otpflow budget spend v1")
            .chain_update(nonce)
            .chain_update(generation.to_be_bytes())
            .chain_update(seq.to_be_bytes())
            .finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(digest.get(..8).unwrap_or(&[0; 8]));
        Self(u64::from_be_bytes(first).max(1))
    }

    /// The tag as an integer (never 0).
    pub fn to_u64(self) -> u64 {
        self.0
    }
}

/// Of a refusal kept so far and a new one, the one that allows a send
/// last (the later [`retry_after`](crate::Error::retry_after); the one
/// kept on a tie): what a send refused by several budget keys answers.
/// [`Verifier`](crate::Verifier) and [`AsyncVerifier`](crate::AsyncVerifier)
/// use it; a driver of its own over [`Engine::check_budget`](crate::Engine::check_budget)
/// (the JavaScript package's) folds its keys' refusals with it too, so every
/// driver names the same budget.
///
/// ```
/// use otpflow::Error;
/// use otpflow::budget_key::{BudgetKind, allows_last};
/// use otpflow::time::Duration;
/// let refused = |budget, secs| Error::BudgetSpent { budget, retry_after: Duration::seconds(secs) };
/// let worst = [
///     refused(BudgetKind::Address, 30),
///     refused(BudgetKind::Range, 90),
///     refused(BudgetKind::Global, 90),
/// ]
/// .into_iter()
/// .fold(None, |kept, new| Some(allows_last(kept, new)));
/// // The range allows a send last; the global key, as late, came after it.
/// assert_eq!(worst, Some(refused(BudgetKind::Range, 90)));
/// ```
pub fn allows_last(kept: Option<crate::Error>, new: crate::Error) -> crate::Error {
    match kept {
        Some(k) if k.retry_after() >= new.retry_after() => k,
        _ => new,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The key as `format!` wrote it before `store_key` wrote it by hand.
    fn formatted(key: &BudgetKey) -> String {
        let tenant = key
            .tenant
            .as_ref()
            .map_or(String::new(), |t| format!("{t}/"));
        match &key.scope {
            Scope::Address(ip) => format!("#budget/{tenant}address:{ip}"),
            Scope::Range(digits) => format!("#budget/{tenant}range:+{digits}"),
            Scope::Country(code, Some(region)) => {
                format!("#budget/{tenant}country:+{code}/{region}")
            }
            Scope::Country(code, None) => format!("#budget/{tenant}country:+{code}"),
            Scope::Global => format!("#budget/{tenant}global"),
            Scope::Label(l) => format!("#budget/{tenant}label:{}", l.as_str()),
        }
    }

    fn written(ip: IpAddr) -> String {
        let mut out = String::new();
        push_ip(&mut out, ip);
        out
    }

    /// IPv6 addresses with many zero groups: each group zero, one, a
    /// byte, or any value.
    fn sparse_v6() -> impl Strategy<Value = Ipv6Addr> {
        proptest::array::uniform8(prop_oneof![
            4 => Just(0u16),
            1 => Just(1u16),
            1 => 0u16..=0xff,
            2 => any::<u16>(),
        ])
        .prop_map(Ipv6Addr::from)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        #[test]
        fn addresses_are_written_as_display_writes_them(
            v6 in sparse_v6(),
            any6 in any::<u128>(),
            v4 in any::<u32>(),
        ) {
            for ip in [
                IpAddr::V6(v6),
                IpAddr::V6(Ipv6Addr::from(any6)),
                IpAddr::V4(Ipv4Addr::from(v4)),
                IpAddr::V6(Ipv4Addr::from(v4).to_ipv6_mapped()),
                IpAddr::V6(Ipv4Addr::from(v4).to_ipv6_compatible()),
            ] {
                prop_assert_eq!(written(ip), ip.to_string());
                let key = BudgetKey::address(ip);
                prop_assert_eq!(key.store_key(), formatted(&key));
            }
        }

        #[test]
        fn other_keys_are_written_as_format_wrote_them(
            code in any::<u16>(),
            region in proptest::option::of("[A-Z]{2}"),
            digits in "[0-9]{1,15}",
            label in "[a-z0-9-]{1,20}",
            tenant in proptest::option::of("[a-z0-9._-]{1,20}"),
        ) {
            let tenant = tenant.map(|t| Tenant::new(&t)).transpose();
            prop_assume!(tenant.is_ok());
            let tenant = tenant.unwrap_or_default();
            let label = BudgetLabel::new(&label);
            prop_assume!(label.is_ok());
            let label = label.map_err(|_| TestCaseError::fail("label"))?;
            for scope in [
                Scope::Country(code, region),
                Scope::Country(code, None),
                Scope::Range(digits),
                Scope::Global,
                Scope::Label(label),
            ] {
                let key = BudgetKey::of(scope).with_tenant(tenant.clone());
                prop_assert_eq!(key.store_key(), formatted(&key));
            }
        }
    }

    #[test]
    fn edge_addresses_are_written_as_display_writes_them() {
        for ip in [
            "::",
            "::1",
            "1::",
            "1:0:0:1:0:0:0:1",
            "1:0:0:0:1:0:0:1",
            "0:1:0:1:0:1:0:1",
            "2001:db8::",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "::ffff:0.0.0.0",
            "::ffff:255.255.255.255",
            "::1.2.3.4",
            "64:ff9b::1.2.3.4",
            "fe80::1:0:0:0",
            "0.0.0.0",
            "255.255.255.255",
            "10.0.0.1",
        ] {
            let ip: IpAddr = ip.parse().expect("an address");
            assert_eq!(written(ip), ip.to_string());
        }
    }
}
