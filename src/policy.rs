//! [`Policy`]: code length, lifetimes, budgets, cooldowns and lockouts.
//!
//! A policy is checked once, when it is built: every [`Policy`] that exists is
//! one the state machine can run without overflow or surprise. The defaults
//! follow NIST SP 800-63B and the limits hosted verification services use.

use core::fmt;

use time::Duration;

use crate::budget::Rate;
use crate::budget_key::BudgetKind;
use crate::phone::PhoneNumber;

/// What a resend does to the code already sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ResendMode {
    /// Resend the same code (the default). SMS can arrive out of order or late;
    /// with one code per validation, whichever message arrives works.
    #[default]
    SameCode,
    /// Draw a new code on every resend; earlier codes stop working and the new
    /// code gets a fresh lifetime and a fresh check budget. The subject's
    /// failure cap still counts every failed check.
    NewCode,
}

/// The rules a [`Verifier`](crate::Verifier) enforces. Build one with
/// [`Policy::builder`]; [`Policy::default`] gives the safe defaults.
///
/// | setting | default | allowed |
/// |---|---|---|
/// | [`code_length`](Self::code_length) | 6 | 4–10 |
/// | [`code_lifetime`](Self::code_lifetime) | 10 min | 1 s – 24 h |
/// | [`max_checks`](Self::max_checks) per code | 5 | 1–100 |
/// | [`max_sends`](Self::max_sends) per validation | 5 | 1–100 |
/// | [`resend_cooldown`](Self::resend_cooldown) | 30 s | 0 – code lifetime |
/// | [`failure_cap`](Self::failure_cap): consecutive failures per lockout | 20 | 1–10 000 |
/// | [`failure_window`](Self::failure_window): failures remembered | 365 days | 1 s – 3650 days |
/// | [`lockout`](Self::lockout): the first lockout | 1 h | 1 s – 30 days |
/// | [`lockout_growth`](Self::lockout_growth): each next lockout × | 4 | 1–16 |
/// | [`max_lockout`](Self::max_lockout) | 7 days | `lockout` – 30 days |
/// | [`failure_hard_cap`](Self::failure_hard_cap): blocked until unlocked | 100 | 1–1 000 000 |
/// | [`subject_send_cap`](Self::subject_send_cap) | 10 | ≥ `max_sends`, ≤ 10 000 |
/// | [`subject_send_window`](Self::subject_send_window) | 1 h | 1 s – 30 days |
/// | [`resend_mode`](Self::resend_mode) | `SameCode` | |
/// | [`budget_rate`](Self::budget_rate)`(Address)` | burst 10, then 1 per 6 min | any [`Rate`], or none |
/// | [`budget_rate`](Self::budget_rate)`(Range)` | burst 20, then 1 per 3 min | any [`Rate`], or none |
/// | [`budget_rate`](Self::budget_rate)`(Country / Global / Label)` | none (not counted) | any [`Rate`], or none |
/// | [`range_prefix`](Self::range_prefix): E.164 digits of a range | 8 | 2–15 |
/// | [`denied_prefixes`](Self::denied_prefixes) | none | E.164 digit prefixes, 1–15 digits |
///
/// Failures count consecutively until a success: with the defaults, the
/// 20th, 40th, 60th and 80th failed checks in a row lock the subject for
/// 1 h, 4 h, 16 h and 64 h, and the 100th (NIST SP 800-63B's figure) blocks
/// it until [`Verifier::unlock`](crate::Verifier::unlock). The subject's
/// sends are a sliding budget: no interval of `subject_send_window` holds
/// more than `subject_send_cap` sends (see [`budget`](crate::budget)).
///
/// ```
/// use otpflow::{Policy, ResendMode};
/// use time::Duration;
///
/// let policy = Policy::builder()
///     .code_length(8)
///     .code_lifetime(Duration::minutes(5))
///     .resend_mode(ResendMode::NewCode)
///     .build()?;
/// assert_eq!(policy.code_length(), 8);
///
/// // Nonsense is refused, never clamped.
/// assert!(Policy::builder().code_length(3).build().is_err());
/// # Ok::<(), otpflow::PolicyError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    code_length: u8,
    code_lifetime: Duration,
    max_checks: u32,
    max_sends: u32,
    resend_cooldown: Duration,
    failure_cap: u32,
    failure_window: Duration,
    lockout: Duration,
    lockout_growth: u32,
    max_lockout: Duration,
    failure_hard_cap: u32,
    subject_send_cap: u32,
    subject_send_window: Duration,
    resend_mode: ResendMode,
    test_numbers: Option<TestNumbers>,
    budget_rates: [Option<Rate>; 5],
    range_prefix: u8,
    denied_prefixes: Vec<String>,
    /// The subject's send bucket, derived from `subject_send_cap`,
    /// `max_sends` and `subject_send_window` when the policy is built (a
    /// record is bounded with it on every operation).
    subject_rate: Rate,
}

/// The default rates of the budget keys, by [`BudgetKind::to_byte`].
const DEFAULT_BUDGET_RATES: [Option<Rate>; 5] = [
    // Address: a client gets 10 codes at once, then one every 6 minutes.
    Some(Rate::const_new(10, Duration::minutes(6))),
    // Range: 20 at once to one 8-digit prefix, then one every 3 minutes.
    Some(Rate::const_new(20, Duration::minutes(3))),
    None,
    None,
    None,
];

impl Default for Policy {
    fn default() -> Self {
        Self {
            code_length: 6,
            code_lifetime: Duration::minutes(10),
            max_checks: 5,
            max_sends: 5,
            resend_cooldown: Duration::seconds(30),
            failure_cap: 20,
            failure_window: Duration::days(365),
            lockout: Duration::hours(1),
            lockout_growth: 4,
            max_lockout: Duration::days(7),
            failure_hard_cap: 100,
            subject_send_cap: 10,
            subject_send_window: Duration::hours(1),
            resend_mode: ResendMode::SameCode,
            test_numbers: None,
            budget_rates: DEFAULT_BUDGET_RATES,
            range_prefix: 8,
            denied_prefixes: Vec::new(),
            subject_rate: Rate::const_new(1, Duration::SECOND),
        }
        .with_subject_rate()
    }
}

/// The longest a code may live.
pub const MAX_CODE_LIFETIME: Duration = Duration::hours(24);
/// The longest failure window, lockout or send window.
pub const MAX_WINDOW: Duration = Duration::days(30);
pub(crate) const MAX_BUDGET: u32 = 100;
pub(crate) const MAX_SUBJECT_BUDGET: u32 = 10_000;
/// The longest a subject's consecutive failures are remembered without a
/// new one (ten years).
pub const MAX_FAILURE_MEMORY: Duration = Duration::days(3650);
const MAX_HARD_CAP: u32 = 1_000_000;

impl Policy {
    /// The policy with its derived subject send rate computed.
    fn with_subject_rate(mut self) -> Self {
        let (burst, interval) = crate::budget::send_rate(&self);
        self.subject_rate = Rate::const_new(burst, interval);
        self
    }

    /// The subject's send bucket (computed once, when the policy is built).
    pub(crate) fn subject_rate(&self) -> Rate {
        self.subject_rate
    }

    /// A builder that starts from the defaults.
    pub fn builder() -> PolicyBuilder {
        PolicyBuilder {
            policy: Self::default(),
        }
    }

    /// Digits in a code.
    pub fn code_length(&self) -> u8 {
        self.code_length
    }
    /// How long a code can be checked after it was sent.
    pub fn code_lifetime(&self) -> Duration {
        self.code_lifetime
    }
    /// Checks allowed per code; the check is counted before the comparison.
    pub fn max_checks(&self) -> u32 {
        self.max_checks
    }
    /// Sends (the first one included) allowed per validation.
    pub fn max_sends(&self) -> u32 {
        self.max_sends
    }
    /// The least time between two sends of one validation.
    pub fn resend_cooldown(&self) -> Duration {
        self.resend_cooldown
    }
    /// Consecutive failed checks per subject, across validations, resends
    /// and lockouts, between two lockouts: every `failure_cap`-th failure in
    /// a row locks the subject.
    pub fn failure_cap(&self) -> u32 {
        self.failure_cap
    }
    /// How long a subject's consecutive failures are remembered after the
    /// last one. Only a success, an unlock or this much time without a
    /// failure resets the count; a blocked subject is never forgotten.
    pub fn failure_window(&self) -> Duration {
        self.failure_window
    }
    /// How long the first lockout lasts.
    pub fn lockout(&self) -> Duration {
        self.lockout
    }
    /// How much longer each lockout is than the one before (1: all equal).
    pub fn lockout_growth(&self) -> u32 {
        self.lockout_growth
    }
    /// The longest lockout (never less than [`lockout`](Self::lockout)).
    pub fn max_lockout(&self) -> Duration {
        self.max_lockout.max(self.lockout)
    }
    /// Consecutive failures at which the subject is blocked until an
    /// operator unlocks it (default 100, NIST SP 800-63B's ceiling).
    pub fn failure_hard_cap(&self) -> u32 {
        self.failure_hard_cap
    }
    /// Sends per subject, across validations, in any interval of
    /// [`subject_send_window`](Self::subject_send_window): canceling and
    /// starting again never buys more messages than this.
    pub fn subject_send_cap(&self) -> u32 {
        self.subject_send_cap
    }
    /// The sliding window over which sends per subject are capped.
    pub fn subject_send_window(&self) -> Duration {
        self.subject_send_window
    }
    /// What a resend does to the code.
    pub fn resend_mode(&self) -> ResendMode {
        self.resend_mode
    }
    /// The test numbers, when they are on (off by default).
    pub fn test_numbers(&self) -> Option<&TestNumbers> {
        self.test_numbers.as_ref()
    }
    /// The rate of a budget key of `kind`; `None`: keys of this kind are
    /// not counted (see [`budget_key`](crate::budget_key)).
    pub fn budget_rate(&self, kind: BudgetKind) -> Option<Rate> {
        self.budget_rates
            .get(usize::from(kind.to_byte()))
            .copied()
            .flatten()
    }
    /// How many leading E.164 digits (the country code included) make a
    /// number's range for [`BudgetKind::Range`]: 8 by default, blocks of
    /// 10 000 UK mobiles.
    pub fn range_prefix(&self) -> u8 {
        self.range_prefix
    }
    /// The E.164 digit prefixes (no `+`) no code is ever sent to.
    pub fn denied_prefixes(&self) -> &[String] {
        &self.denied_prefixes
    }
    /// True when a send to `phone` is denied outright.
    pub(crate) fn denies(&self, phone: &PhoneNumber) -> bool {
        let digits = phone.digits();
        self.denied_prefixes
            .iter()
            .any(|p| digits.starts_with(p.as_str()))
    }
}

/// Builds a [`Policy`]; every setting is checked in [`build`](Self::build).
#[derive(Clone, Debug)]
#[must_use]
pub struct PolicyBuilder {
    policy: Policy,
}

macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty;)*) => {
        $(
            $(#[$doc])*
            pub fn $name(mut self, value: $ty) -> Self {
                self.policy.$name = value;
                self
            }
        )*
    };
}

impl PolicyBuilder {
    setters! {
        /// Digits per code, 4–10.
        code_length: u8;
        /// How long a code lives, 1 s – 24 h.
        code_lifetime: Duration;
        /// Checks per code, 1–100.
        max_checks: u32;
        /// Sends per validation, 1–100.
        max_sends: u32;
        /// Time between sends, from zero up to the code lifetime.
        resend_cooldown: Duration;
        /// Consecutive failed checks per subject between lockouts, 1–10 000.
        failure_cap: u32;
        /// How long failures are remembered after the last, 1 s – 3650 days.
        failure_window: Duration;
        /// Length of the first lockout, 1 s – 30 days.
        lockout: Duration;
        /// Growth of each next lockout, 1–16 (1 turns escalation off).
        lockout_growth: u32;
        /// The longest lockout, up to 30 days (raised to `lockout` if less).
        max_lockout: Duration;
        /// Consecutive failures that block the subject until unlocked,
        /// 1–1 000 000.
        failure_hard_cap: u32;
        /// Sends per subject per window, from `max_sends` to 10 000.
        subject_send_cap: u32;
        /// Window for counting sends per subject, 1 s – 30 days.
        subject_send_window: Duration;
        /// Same or new code on resend.
        resend_mode: ResendMode;
    }

    /// Sets the rate of budget keys of `kind` (`None`: not counted).
    ///
    /// ```
    /// use otpflow::{Policy, budget::Rate, budget_key::BudgetKind};
    /// use time::Duration;
    /// let policy = Policy::builder()
    ///     .budget_rate(BudgetKind::Global, Some(Rate::new(1000, Duration::seconds(4))?))
    ///     .budget_rate(BudgetKind::Address, None)
    ///     .build()?;
    /// assert_eq!(policy.budget_rate(BudgetKind::Global).map(|r| r.burst()), Some(1000));
    /// assert_eq!(policy.budget_rate(BudgetKind::Address), None);
    /// # Ok::<(), otpflow::PolicyError>(())
    /// ```
    pub fn budget_rate(mut self, kind: BudgetKind, rate: Option<Rate>) -> Self {
        if let Some(slot) = self
            .policy
            .budget_rates
            .get_mut(usize::from(kind.to_byte()))
        {
            *slot = rate;
        }
        self
    }

    /// Digits of a number's range, 2–15 (see [`Policy::range_prefix`]).
    pub fn range_prefix(mut self, digits: u8) -> Self {
        self.policy.range_prefix = digits;
        self
    }

    /// Refuses every send to numbers whose E.164 digits (no `+`) start with
    /// `prefix` ([`Error::Denied`](crate::Error::Denied)): a premium range
    /// (`"44870"`), or a whole country or NANP area (`"1876"`). 1–15 ASCII
    /// digits, checked in [`build`](Self::build).
    ///
    /// ```
    /// use otpflow::Policy;
    /// let policy = Policy::builder().deny_prefix("1876").deny_country(882).build()?;
    /// assert_eq!(policy.denied_prefixes(), ["1876", "882"]);
    /// assert!(Policy::builder().deny_prefix("+44").build().is_err());
    /// # Ok::<(), otpflow::PolicyError>(())
    /// ```
    pub fn deny_prefix(mut self, prefix: &str) -> Self {
        self.policy.denied_prefixes.push(prefix.to_owned());
        self
    }

    /// Refuses every send to numbers of calling code `code` (a prefix of
    /// its digits; see [`deny_prefix`](Self::deny_prefix)).
    pub fn deny_country(self, code: u16) -> Self {
        self.deny_prefix(&code.to_string())
    }

    /// Turns test numbers on: numbers whose code is fixed and whose sends
    /// are suppressed (see [`TestNumbers`]). Off by default.
    pub fn test_numbers(mut self, numbers: TestNumbers) -> Self {
        self.policy.test_numbers = Some(numbers);
        self
    }

    /// Checks every setting and returns the policy.
    ///
    /// # Errors
    /// A [`PolicyError`] naming the first setting out of range.
    pub fn build(self) -> Result<Policy, PolicyError> {
        let p = self.policy;
        let second = Duration::SECOND;
        let checks: [(bool, PolicyError); 13] = [
            (
                (4..=10).contains(&p.code_length),
                PolicyError::CodeLength(p.code_length),
            ),
            (
                p.code_lifetime >= second && p.code_lifetime <= MAX_CODE_LIFETIME,
                PolicyError::OutOfRange("code_lifetime"),
            ),
            (
                (1..=MAX_BUDGET).contains(&p.max_checks),
                PolicyError::OutOfRange("max_checks"),
            ),
            (
                (1..=MAX_BUDGET).contains(&p.max_sends),
                PolicyError::OutOfRange("max_sends"),
            ),
            (
                !p.resend_cooldown.is_negative() && p.resend_cooldown <= p.code_lifetime,
                PolicyError::OutOfRange("resend_cooldown"),
            ),
            (
                (1..=MAX_SUBJECT_BUDGET).contains(&p.failure_cap),
                PolicyError::OutOfRange("failure_cap"),
            ),
            (
                p.failure_window >= second && p.failure_window <= MAX_FAILURE_MEMORY,
                PolicyError::OutOfRange("failure_window"),
            ),
            (in_window(p.lockout), PolicyError::OutOfRange("lockout")),
            (
                (1..=16).contains(&p.lockout_growth),
                PolicyError::OutOfRange("lockout_growth"),
            ),
            (
                !p.max_lockout.is_negative() && p.max_lockout <= MAX_WINDOW,
                PolicyError::OutOfRange("max_lockout"),
            ),
            (
                (1..=MAX_HARD_CAP).contains(&p.failure_hard_cap),
                PolicyError::OutOfRange("failure_hard_cap"),
            ),
            (
                (p.max_sends..=MAX_SUBJECT_BUDGET).contains(&p.subject_send_cap),
                PolicyError::OutOfRange("subject_send_cap"),
            ),
            (
                in_window(p.subject_send_window),
                PolicyError::OutOfRange("subject_send_window"),
            ),
        ];
        if let Some((_, err)) = checks.into_iter().find(|(ok, _)| !ok) {
            return Err(err);
        }
        if let Some(t) = &p.test_numbers {
            t.check(p.code_length)?;
        }
        if !(2..=15).contains(&p.range_prefix) {
            return Err(PolicyError::OutOfRange("range_prefix"));
        }
        let digits =
            |d: &String| (1..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit());
        if !p.denied_prefixes.iter().all(digits) {
            return Err(PolicyError::OutOfRange("deny_prefix"));
        }
        Ok(p.with_subject_rate())
    }
}

/// A range of phone numbers, both ends included, in E.164 order: the numbers
/// of the same length from `first` to `last`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NumberRange {
    first: u64,
    last: u64,
    digits: u8,
}

/// Ofcom's range of UK mobile numbers reserved for drama, 07700 900000 to
/// 07700 900999: never allocated to anyone, so safe as test numbers. Never
/// on by default: name it in [`TestNumbers::range`].
///
/// They are not valid UK numbers, so [`PhoneNumber::parse`] refuses them
/// unless the phone policy admits them
/// ([`PhonePolicy::admit_drama_numbers`](crate::PhonePolicy::admit_drama_numbers)).
///
/// ```
/// use otpflow::policy::OFCOM_DRAMA_MOBILES;
/// assert_eq!((OFCOM_DRAMA_MOBILES.first(), OFCOM_DRAMA_MOBILES.last()), (447700900000, 447700900999));
/// ```
pub const OFCOM_DRAMA_MOBILES: NumberRange = NumberRange {
    first: 447_700_900_000,
    last: 447_700_900_999,
    digits: 12,
};

impl NumberRange {
    /// The numbers from `first` to `last`, which must have as many digits.
    ///
    /// # Errors
    /// [`PolicyError::TestNumbers`] when the lengths differ or `last` comes
    /// before `first`.
    pub fn new(first: &PhoneNumber, last: &PhoneNumber) -> Result<Self, PolicyError> {
        let (a, b) = (first.digits(), last.digits());
        let (Ok(x), Ok(y)) = (a.parse::<u64>(), b.parse::<u64>()) else {
            return Err(PolicyError::TestNumbers("a range's ends must be numbers"));
        };
        if a.len() != b.len() || x > y {
            return Err(PolicyError::TestNumbers(
                "a range's ends must have as many digits, the first no greater",
            ));
        }
        Ok(Self {
            first: x,
            last: y,
            digits: u8::try_from(a.len()).unwrap_or(u8::MAX),
        })
    }

    /// One number.
    pub fn single(number: &PhoneNumber) -> Self {
        let digits = number.digits();
        let n = digits.parse::<u64>().unwrap_or(u64::MAX);
        Self {
            first: n,
            last: n,
            digits: u8::try_from(digits.len()).unwrap_or(u8::MAX),
        }
    }

    /// The first number of the range, as E.164 digits (`447700900000`).
    pub fn first(&self) -> u64 {
        self.first
    }
    /// The last number of the range, as E.164 digits (`447700900999`).
    pub fn last(&self) -> u64 {
        self.last
    }
    /// True when `number` is in the range.
    pub fn contains(&self, number: &PhoneNumber) -> bool {
        let digits = number.digits();
        digits.len() == usize::from(self.digits)
            && digits
                .parse::<u64>()
                .is_ok_and(|n| (self.first..=self.last).contains(&n))
    }
}

/// Test numbers, for app-store review and end-to-end tests: numbers whose
/// code is fixed by configuration and whose sends are suppressed
/// ([`Sent::suppressed`](crate::Sent::suppressed)): a service hands no
/// message for them to a provider. Every other rule holds (checks, sends,
/// cooldowns, lockouts), and every use yields an
/// [`Event::TestNumberUsed`](crate::Event::TestNumberUsed) to alert on.
///
/// A policy's `Debug` shows that test numbers are on, and which; never the
/// code.
///
/// ```
/// use otpflow::{Policy, policy::{TestNumbers, OFCOM_DRAMA_MOBILES}};
/// let policy = Policy::builder()
///     .test_numbers(TestNumbers::new("424242").range(OFCOM_DRAMA_MOBILES))
///     .build()?;
/// assert!(format!("{policy:?}").contains("TestNumbers { on: true"));
/// assert!(!format!("{policy:?}").contains("424242"));
/// // Never one digit repeated, always the policy's code length.
/// let one_digit = TestNumbers::new("000000").range(OFCOM_DRAMA_MOBILES);
/// assert!(Policy::builder().test_numbers(one_digit).build().is_err());
/// let short = TestNumbers::new("4242").range(OFCOM_DRAMA_MOBILES);
/// assert!(Policy::builder().test_numbers(short).build().is_err());
/// # Ok::<(), otpflow::PolicyError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct TestNumbers {
    code: String,
    ranges: Vec<NumberRange>,
}

impl TestNumbers {
    /// Test numbers whose code is `code` (checked when the policy is
    /// built); name them with [`range`](Self::range) and
    /// [`number`](Self::number).
    pub fn new(code: &str) -> Self {
        Self {
            code: code.to_owned(),
            ranges: Vec::new(),
        }
    }
    /// Adds a range of numbers.
    #[must_use]
    pub fn range(mut self, range: NumberRange) -> Self {
        self.ranges.push(range);
        self
    }
    /// Adds one number.
    #[must_use]
    pub fn number(self, number: &PhoneNumber) -> Self {
        self.range(NumberRange::single(number))
    }
    /// True when `number` is a test number.
    pub fn contains(&self, number: &PhoneNumber) -> bool {
        self.ranges.iter().any(|r| r.contains(number))
    }
    /// The ranges named.
    pub fn ranges(&self) -> &[NumberRange] {
        &self.ranges
    }
    /// The fixed code.
    pub(crate) fn code(&self) -> &str {
        &self.code
    }
    fn check(&self, length: u8) -> Result<(), PolicyError> {
        let b = self.code.as_bytes();
        if b.len() != usize::from(length) || !b.iter().all(u8::is_ascii_digit) {
            return Err(PolicyError::TestNumbers(
                "the code must be digits, as many as the policy's code length",
            ));
        }
        if b.iter().all(|&d| Some(&d) == b.first()) {
            return Err(PolicyError::TestNumbers(
                "the code must not be one digit repeated",
            ));
        }
        if self.ranges.is_empty() {
            return Err(PolicyError::TestNumbers("no test number is named"));
        }
        Ok(())
    }
}

/// Names the numbers; the code is redacted.
impl fmt::Debug for TestNumbers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestNumbers")
            .field("on", &true)
            .field("ranges", &self.ranges)
            .field(
                "code",
                &format_args!("<{} digits redacted>", self.code.len()),
            )
            .finish()
    }
}

fn in_window(d: Duration) -> bool {
    d >= Duration::SECOND && d <= MAX_WINDOW
}

/// A policy setting out of its allowed range.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PolicyError {
    /// The code length is not 4–10 digits.
    CodeLength(u8),
    /// The named setting is out of its range (see [`Policy`]).
    OutOfRange(&'static str),
    /// The test numbers' fixed code is not of the policy's code length, is
    /// not all digits, or is one digit repeated; or no number is named.
    TestNumbers(&'static str),
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CodeLength(n) => write!(f, "code length {n} is not between 4 and 10 digits"),
            Self::OutOfRange(name) => write!(f, "policy setting `{name}` is out of range"),
            Self::TestNumbers(why) => write!(f, "test numbers: {why}"),
        }
    }
}

impl std::error::Error for PolicyError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_build() {
        assert_eq!(Policy::builder().build(), Ok(Policy::default()));
    }

    #[test]
    fn nonsense_is_refused() {
        let b = Policy::builder;
        assert_eq!(b().code_length(3).build(), Err(PolicyError::CodeLength(3)));
        assert_eq!(
            b().code_length(11).build(),
            Err(PolicyError::CodeLength(11))
        );
        assert!(b().code_length(4).build().is_ok());
        assert!(b().code_length(10).build().is_ok());
        let range = |r: Result<Policy, PolicyError>, name| {
            assert_eq!(r, Err(PolicyError::OutOfRange(name)));
        };
        range(b().max_checks(0).build(), "max_checks");
        range(b().max_sends(0).build(), "max_sends");
        range(b().failure_cap(0).build(), "failure_cap");
        range(
            b().code_lifetime(Duration::hours(25)).build(),
            "code_lifetime",
        );
        range(b().code_lifetime(Duration::ZERO).build(), "code_lifetime");
        range(
            b().resend_cooldown(Duration::seconds(-1)).build(),
            "resend_cooldown",
        );
        range(
            b().resend_cooldown(Duration::hours(1)).build(),
            "resend_cooldown",
        );
        range(b().lockout(Duration::ZERO).build(), "lockout");
        range(
            b().failure_window(Duration::days(3651)).build(),
            "failure_window",
        );
        range(b().lockout_growth(0).build(), "lockout_growth");
        range(b().lockout_growth(17).build(), "lockout_growth");
        range(b().max_lockout(Duration::days(31)).build(), "max_lockout");
        range(b().failure_hard_cap(0).build(), "failure_hard_cap");
        let short = b().max_lockout(Duration::ZERO).build().expect("raised");
        assert_eq!(short.max_lockout(), short.lockout());
        range(b().max_sends(20).build(), "subject_send_cap");
        assert!(b().code_lifetime(Duration::hours(24)).build().is_ok());
    }
}
