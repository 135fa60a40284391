//! Phone numbers: every way a user or a service writes one, normalized to
//! canonical E.164.
//!
//! [`PhoneNumber::parse`] takes a whole number as typed (`07401 101801`,
//! `+44 (0)7401 101801`, `0044 7401 101801`, `447401101801`, …) and
//! [`PhoneNumber::from_parts`] the split form some APIs send (`"+44"`,
//! `"07401 101801"`). Both end on the same value: two inputs for the same
//! number always give equal [`PhoneNumber`]s, which is what keys a validation.
//!
//! ```
//! use otpflow::{PhoneNumber, PhonePolicy};
//!
//! let policy = PhonePolicy::default();
//! let typed = PhoneNumber::parse(" +44 (0)7401 101801 ", &policy)?;
//! let split = PhoneNumber::from_parts("+44", "07401 101801", &policy)?;
//! assert_eq!(typed, split);
//! assert_eq!(typed.e164(), "+447401101801");
//! assert_eq!(typed.region(), Some("GB"));
//! # Ok::<(), otpflow::PhoneError>(())
//! ```
//!
//! # How a number is read
//! 1. **The guard.** Before any parsing, the input is refused if it is empty,
//!    longer than [`MAX_INPUT_BYTES`], or holds anything but ASCII digits, the
//!    separators ` -.()/` and one leading `+` (before the first digit). The
//!    error names the character and its position. Letters are never read as
//!    digits: the `phonenumber` crate turns `07401 1O18O1` into another valid
//!    number; here it is [`PhoneError::InvalidCharacter`].
//! 2. **The fast path.** A UK mobile (GB, or the Crown Dependencies Guernsey,
//!    Jersey and the Isle of Man, which share +44) is recognised from a table
//!    without allocating. Its answer is the `phonenumber` crate's answer,
//!    checked in `tests/phone.rs` on every `07…` prefix.
//! 3. **The full parser.** Any other number is read in the numbering plan of
//!    its own country, from the metadata the `phonenumber` crate carries (the
//!    default `phonenumber` feature): the calling code, then a trunk prefix
//!    only where that country's plan has one (`+33 (0)6 …` is `+33 6 …`,
//!    while the `0` of `+39 02 …`, `+225 01 …` or `+241 06 …` is the
//!    number's own digit), then its region and type. National input is read
//!    in the policy's default region. The crate's own `parse` is not used:
//!    it reads every number in the default region's plan (see `plan.rs`).
//!    It must be a valid number; with [`PhonePolicy::require_mobile`] (the
//!    default) it must also be a mobile (or a number its country does not
//!    tell apart from one, as in the North American plan).
//! 4. **The policy.** The calling code ([`PhonePolicy::allow_only`]),
//!    non-geographic codes (+800, +881, +882, … refused unless named), the
//!    region ([`PhonePolicy::allow_regions`], [`PhonePolicy::deny_regions`])
//!    and the mobile rule.
//!
//! # Masked by default
//! `Display` and `Debug` show `+44 7401 ••• 801` ([`PhoneNumber::masked`]);
//! the whole number only through [`PhoneNumber::e164`],
//! [`PhoneNumber::digits`] and [`PhoneNumber::national`].
//!
//! # Without the `phonenumber` feature
//! The slim build (for small wasm modules) keeps the guard and the UK fast
//! path, so UK mobiles give the same answers. Other numbers get a structural
//! check only: the input must be international (`+` or `00`), its country
//! calling code assigned, and its national part 4 to 14 digits with at most
//! 15 digits in all. After the calling code, a trunk prefix is stripped once
//! where the plan has one that no number of the plan begins with (98 calling
//! codes, from the metadata: `+33 (0)6 …` and `+33 6 …` are one number,
//! `+1 1 202 …` is `+1 202 …`), and written twice it is refused
//! (`+33 00 6 …`); where a plan's numbers may begin with its trunk prefix
//! (Russia's `8`, or a plan without one, as Italy's), the digits are kept
//! as written, so there `+7 8 800 …` and `+7 800 …` stay two numbers in this
//! build. It cannot tell a valid foreign number from an invalid
//! one, nor a foreign mobile from a landline, and [`PhoneNumber::region`] is
//! `None` for them; UK numbers that are not mobiles are
//! [`PhoneError::NotMobile`] when the policy requires a mobile and checked
//! for a UK length otherwise. A default region other than GB, GG, JE or IM is
//! refused by [`PhonePolicy::with_default_region`].

mod codes;
#[cfg(feature = "phonenumber")]
mod plan;
mod uk;

#[cfg(feature = "phonenumber")]
use plan as slow;

use core::fmt;

/// The longest input [`PhoneNumber::parse`] reads, in bytes; the national
/// part of [`PhoneNumber::from_parts`] has the same cap. Enough for any real
/// number with generous spacing, small enough that no input costs the parser
/// real work.
pub const MAX_INPUT_BYTES: usize = 64;

/// The most digits an E.164 number has, country calling code included.
const MAX_DIGITS: usize = 15;

/// A two-letter region (ISO 3166-1 alpha-2, as libphonenumber uses them).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Region([u8; 2]);

impl fmt::Debug for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Region {
    const GB: Self = Self(*b"GB");
    const GG: Self = Self(*b"GG");
    const JE: Self = Self(*b"JE");
    const IM: Self = Self(*b"IM");

    /// The region for a two-letter code in either case.
    fn from_code(code: &str) -> Option<Self> {
        match code.as_bytes() {
            &[a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
                Some(Self([a.to_ascii_uppercase(), b.to_ascii_uppercase()]))
            }
            _ => None,
        }
    }

    fn as_str(&self) -> &str {
        core::str::from_utf8(&self.0).unwrap_or("")
    }

    /// GB and the Crown Dependencies, which share the +44 numbering plan.
    fn is_uk(self) -> bool {
        matches!(self, Self::GB | Self::GG | Self::JE | Self::IM)
    }
}

/// A phone number in canonical E.164 form (`+447401101801`).
///
/// Build one with [`PhoneNumber::parse`] or [`PhoneNumber::from_parts`]. It is
/// small and `Copy`, and two values are equal exactly when they are the same
/// number, whatever way each was written. Its `Display` and `Debug` are
/// masked ([`PhoneNumber::masked`]): the whole number is read only through
/// [`e164`](Self::e164), [`digits`](Self::digits) and
/// [`national`](Self::national), so it reaches a log only where a caller
/// asks for it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PhoneNumber {
    /// `+` and up to 15 digits, zero-padded.
    buf: [u8; 1 + MAX_DIGITS],
    len: u8,
    country_code: u16,
    region: Option<Region>,
}

impl PhoneNumber {
    /// Parses a whole phone number as a user or a service wrote it: national
    /// (`07401 101801`, read in the policy's default region), international
    /// (`+44 7401 101801`, `+44 (0)7401 101801`, `0044 7401 101801`), or bare
    /// digits with the country code (`447401101801`). Spaces around the
    /// number are ignored, and so are the separators ` -.()/` inside it.
    ///
    /// ```
    /// use otpflow::{PhoneError, PhoneNumber, PhonePolicy};
    ///
    /// let policy = PhonePolicy::default();
    /// for input in ["07401 101801", "+44-7401-101801", "0044 7401 101801", "447401101801"] {
    ///     assert_eq!(PhoneNumber::parse(input, &policy)?.e164(), "+447401101801");
    /// }
    /// assert_eq!(
    ///     PhoneNumber::parse("07401 1O18O1", &policy),
    ///     Err(PhoneError::InvalidCharacter { ch: 'O', at: 7 }),
    /// );
    /// # Ok::<(), PhoneError>(())
    /// ```
    ///
    /// # Errors
    /// The guard's errors ([`PhoneError::Empty`], [`PhoneError::TooLong`],
    /// [`PhoneError::InvalidCharacter`], [`PhoneError::MisplacedPlus`]);
    /// [`PhoneError::MissingCountryCode`] for national input when the policy
    /// has no default region; [`PhoneError::UnknownCountryCode`],
    /// [`PhoneError::Invalid`], [`PhoneError::CountryNotAllowed`] and
    /// [`PhoneError::NotMobile`] for a number the policy refuses.
    pub fn parse(input: &str, policy: &PhonePolicy) -> Result<Self, PhoneError> {
        let scanned = Scanned::new(input, true)?;
        if !scanned.international && policy.default_region.is_none() {
            return Err(PhoneError::MissingCountryCode);
        }
        let national_ok = policy.default_region.is_some_and(Region::is_uk);
        if let Some(number) = Self::fast(scanned.digits(), scanned.international, national_ok) {
            return policy.admit(number, true);
        }
        if let Some(number) = policy.drama(scanned.digits(), scanned.international, national_ok) {
            return policy.admit(number, true);
        }
        slow::parse(&scanned, policy)
    }

    /// Builds a number from the split form some APIs send: a country calling
    /// code written `+` and one to three digits, and the national number,
    /// with or without its trunk `0` (`"+44"`, `"07401 101801"`).
    ///
    /// ```
    /// use otpflow::{PhoneError, PhoneNumber, PhonePolicy};
    ///
    /// let policy = PhonePolicy::default().require_mobile(false);
    /// let panama = PhoneNumber::from_parts("+507", "6123 4567", &policy)?;
    /// assert_eq!(panama.e164(), "+50761234567");
    /// assert_eq!(
    ///     PhoneNumber::from_parts("", " ", &policy),
    ///     Err(PhoneError::Missing { country_code: true, national: true }),
    /// );
    /// assert_eq!(
    ///     PhoneNumber::from_parts("44", "7401 101801", &policy),
    ///     Err(PhoneError::InvalidCountryCode),
    /// );
    /// # Ok::<(), PhoneError>(())
    /// ```
    ///
    /// # Errors
    /// [`PhoneError::Missing`] naming every empty part;
    /// [`PhoneError::InvalidCountryCode`] when the code is not `+` and one to
    /// three digits; [`PhoneError::UnknownCountryCode`] when it is not
    /// assigned; the guard's errors for the national part (where any `+` is
    /// [`PhoneError::MisplacedPlus`]); then as [`PhoneNumber::parse`].
    pub fn from_parts(
        country_code: &str,
        national: &str,
        policy: &PhonePolicy,
    ) -> Result<Self, PhoneError> {
        let code_part = country_code.trim_matches(' ');
        let national_part = national.trim_matches(' ');
        if code_part.is_empty() || national_part.is_empty() {
            return Err(PhoneError::Missing {
                country_code: code_part.is_empty(),
                national: national_part.is_empty(),
            });
        }
        let code_digits = match code_part.as_bytes() {
            [b'+', rest @ ..]
                if (1..=3).contains(&rest.len()) && rest.iter().all(u8::is_ascii_digit) =>
            {
                rest
            }
            _ => return Err(PhoneError::InvalidCountryCode),
        };
        let code = code_digits
            .iter()
            .fold(0u16, |acc, &d| acc * 10 + u16::from(d - b'0'));
        if !codes::is_assigned(code) || code_digits[0] == b'0' {
            return Err(PhoneError::UnknownCountryCode);
        }
        let scanned = Scanned::new(national, false)?;
        // The whole number, `+`, code and national digits, on the stack.
        let mut whole = [0u8; 1 + 3 + MAX_INPUT_BYTES];
        whole[0] = b'+';
        whole[1..=code_digits.len()].copy_from_slice(code_digits);
        let national_digits = scanned.digits();
        let end = 1 + code_digits.len() + national_digits.len();
        whole[1 + code_digits.len()..end].copy_from_slice(national_digits);
        let whole = &whole[..end];
        if let Some(number) = Self::fast(&whole[1..], true, false) {
            return policy.admit(number, true);
        }
        if let Some(number) = policy.drama(&whole[1..], true, false) {
            return policy.admit(number, true);
        }
        let text = core::str::from_utf8(whole).map_err(|_| PhoneError::Invalid)?;
        slow::parse(&Scanned::new(text, true)?, policy)
    }

    /// The UK-mobile fast path over the input's digits.
    fn fast(digits: &[u8], international: bool, national_ok: bool) -> Option<Self> {
        let nsn = uk::national_number(digits, international, national_ok)?;
        let region = uk::mobile_region(nsn)?;
        Self::from_digits(uk::UK, nsn, Some(region))
    }

    /// A number from its country calling code and national significant
    /// number (ASCII digits); `None` past 15 digits.
    fn from_digits(country_code: u16, nsn: &[u8], region: Option<Region>) -> Option<Self> {
        let mut buf = [0u8; 1 + MAX_DIGITS];
        buf[0] = b'+';
        let mut code_digits = [0u8; 3];
        let mut n = 0;
        let mut rest = country_code;
        loop {
            code_digits[n] = b'0' + u8::try_from(rest % 10).ok()?;
            n += 1;
            rest /= 10;
            if rest == 0 || n == code_digits.len() {
                break;
            }
        }
        let len = 1 + n + nsn.len();
        if rest != 0 || len > buf.len() || nsn.is_empty() {
            return None;
        }
        for (slot, &d) in buf[1..=n].iter_mut().zip(code_digits[..n].iter().rev()) {
            *slot = d;
        }
        buf[1 + n..len].copy_from_slice(nsn);
        Some(Self {
            buf,
            len: u8::try_from(len).ok()?,
            country_code,
            region,
        })
    }

    /// The canonical E.164 form: `+447401101801`.
    pub fn e164(&self) -> &str {
        // Only ASCII digits and `+` are ever written to `buf`.
        core::str::from_utf8(&self.buf[..usize::from(self.len)]).unwrap_or("")
    }

    /// [`e164`](Self::e164) as bytes, without the UTF-8 check a `&str`
    /// costs (the code derivation reads it on every check).
    pub(crate) fn e164_bytes(&self) -> &[u8] {
        self.buf.get(..usize::from(self.len)).unwrap_or_default()
    }

    /// The whole E.164 buffer (`+`, the digits, then zeros) and the length
    /// of the number in it: the code derivation packs the digits from it
    /// with word operations, without a variable-length copy.
    pub(crate) fn e164_buffer(&self) -> (&[u8; 1 + MAX_DIGITS], usize) {
        (&self.buf, usize::from(self.len))
    }

    /// The E.164 digits without the `+`: `447401101801` (the form some
    /// services send and store).
    pub fn digits(&self) -> &str {
        self.e164().get(1..).unwrap_or("")
    }

    /// The country calling code: `44`.
    pub fn country_code(&self) -> u16 {
        self.country_code
    }

    /// The national significant number, without country code or trunk
    /// prefix: `7401101801`.
    pub fn national(&self) -> &str {
        let code_len = match self.country_code {
            0..=9 => 1,
            10..=99 => 2,
            _ => 3,
        };
        self.digits().get(code_len..).unwrap_or("")
    }

    /// The region the number belongs to, as a two-letter code (`"GB"`,
    /// `"GG"`, `"JE"`, `"IM"`, `"US"`, …); `None` for non-geographic numbers,
    /// and for non-UK numbers in the slim build.
    pub fn region(&self) -> Option<&str> {
        self.region.as_ref().map(Region::as_str)
    }
}

impl PhoneNumber {
    /// The number masked for logs and support screens: the country code and
    /// enough digits to recognise it, the middle hidden
    /// (`+44 7401 ••• 801`). This is also what `Display` and `Debug` show;
    /// the whole number comes only from [`e164`](Self::e164),
    /// [`digits`](Self::digits) and [`national`](Self::national).
    ///
    /// ```
    /// use otpflow::{PhoneNumber, PhonePolicy};
    ///
    /// let n = PhoneNumber::parse("07401 101801", &PhonePolicy::default())?;
    /// assert_eq!(n.masked().to_string(), "+44 7401 ••• 801");
    /// assert_eq!(n.to_string(), "+44 7401 ••• 801");
    /// assert_eq!(format!("{n:?}"), "PhoneNumber(+44 7401 ••• 801)");
    /// assert_eq!(n.e164(), "+447401101801");
    /// # Ok::<(), otpflow::PhoneError>(())
    /// ```
    ///
    /// At least three digits of the national number are always hidden, and
    /// at most seven shown (four first, three last); a short number shows
    /// fewer (`+47 0 ••• 0` for `+47 02000`, nothing of three digits or
    /// fewer). The mask is always three dots, whatever it hides.
    pub fn masked(&self) -> MaskedNumber<'_> {
        MaskedNumber(self)
    }
}

/// A [`PhoneNumber`] masked for display (`+44 7401 ••• 801`): see
/// [`PhoneNumber::masked`]. `Display` and `Debug` print the same.
#[derive(Clone, Copy)]
pub struct MaskedNumber<'a>(&'a PhoneNumber);

impl fmt::Display for MaskedNumber<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let national = self.0.national();
        let len = national.len();
        let shown = len.saturating_sub(3).min(7);
        let head = shown.div_ceil(2).min(4);
        let tail = shown - head;
        write!(f, "+{} ", self.0.country_code)?;
        if let Some(first) = national.get(..head).filter(|s| !s.is_empty()) {
            write!(f, "{first} ")?;
        }
        f.write_str("•••")?;
        if let Some(last) = national.get(len - tail..).filter(|s| !s.is_empty()) {
            write!(f, " {last}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for MaskedNumber<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Masked: see [`PhoneNumber::masked`].
impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.masked(), f)
    }
}

/// Masked: see [`PhoneNumber::masked`].
impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhoneNumber({})", self.masked())
    }
}

/// What a caller accepts as a phone number: the region national input is read
/// in, the countries allowed, and whether the number must take SMS.
///
/// The default reads national input as GB, allows every country and requires a
/// mobile. A UK-only service is one line:
///
/// ```
/// use otpflow::{PhoneError, PhoneNumber, PhonePolicy};
///
/// let uk = PhonePolicy::uk_only();
/// // Guernsey, Jersey and the Isle of Man share +44: they are UK here.
/// assert_eq!(PhoneNumber::parse("07781 123456", &uk)?.region(), Some("GG"));
/// assert_eq!(
///     PhoneNumber::parse("+1 202 555 0123", &uk),
///     Err(PhoneError::CountryNotAllowed { country_code: 1 }),
/// );
/// # Ok::<(), PhoneError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PhonePolicy {
    default_region: Option<Region>,
    allowed: Option<Vec<u16>>,
    /// Regions allowed (ascending); `None` when every region is.
    regions: Option<Vec<Region>>,
    /// Regions refused (ascending).
    denied: Vec<Region>,
    mobile: bool,
    /// Ofcom's drama mobiles (07700 900000–900999) admitted as UK mobiles.
    drama: bool,
}

impl Default for PhonePolicy {
    fn default() -> Self {
        Self {
            default_region: Some(Region::GB),
            allowed: None,
            regions: None,
            denied: Vec::new(),
            mobile: true,
            drama: false,
        }
    }
}

impl PhonePolicy {
    /// UK numbers only: country calling code 44, which covers Great Britain
    /// and Northern Ireland and also the Crown Dependencies (Guernsey, Jersey,
    /// the Isle of Man) that share the +44 plan. Otherwise the default.
    pub fn uk_only() -> Self {
        Self::default().allow_only(&[uk::UK])
    }

    /// Allows only numbers whose country calling code is in `codes`
    /// (`&[44, 353]`). An empty list refuses every number.
    ///
    /// Non-geographic calling codes (+800, +808, +870, +878, +881, +882,
    /// +883, +888, +979: satellite phones, international networks,
    /// freephone, premium rate) are refused
    /// ([`PhoneError::NonGeographic`]) unless named here: the default
    /// policy, and any list that does not name them, keeps them out.
    #[must_use]
    pub fn allow_only(mut self, codes: &[u16]) -> Self {
        self.allowed = Some(sorted_codes(codes));
        self
    }

    /// Allows every country (the default); non-geographic calling codes
    /// stay refused (see [`allow_only`](Self::allow_only)).
    #[must_use]
    pub fn allow_all(mut self) -> Self {
        self.allowed = None;
        self
    }

    /// Reads national input (no `+`) in `region`, a two-letter code such as
    /// `"GB"` or `"IE"`, in either case.
    ///
    /// # Errors
    /// [`PhoneError::UnknownRegion`] for a region the metadata does not know;
    /// in the slim build, for any region but GB, GG, JE and IM.
    pub fn with_default_region(mut self, region: &str) -> Result<Self, PhoneError> {
        let region = Region::from_code(region).ok_or(PhoneError::UnknownRegion)?;
        if !slow::knows_region(region) {
            return Err(PhoneError::UnknownRegion);
        }
        self.default_region = Some(region);
        Ok(self)
    }

    /// Refuses national input: every number must carry its country code
    /// (`+…`), as from a form with a separate country selector.
    #[must_use]
    pub fn without_default_region(mut self) -> Self {
        self.default_region = None;
        self
    }

    /// Whether the number must be able to receive SMS, that is be a mobile
    /// (on by default). Numbers their country does not tell apart from
    /// landlines (the North American plan) pass.
    #[must_use]
    pub fn require_mobile(mut self, required: bool) -> Self {
        self.mobile = required;
        self
    }

    /// Admits Ofcom's drama mobiles, 07700 900000 to 07700 900999 (off by
    /// default). Ofcom reserves them for fiction: never allocated to anyone,
    /// they are the safe choice for test numbers
    /// ([`OFCOM_DRAMA_MOBILES`](crate::policy::OFCOM_DRAMA_MOBILES) with
    /// [`TestNumbers`](crate::policy::TestNumbers)), but they are not valid
    /// UK numbers, so the parser refuses them unless told. Turn it on only
    /// where test numbers are configured: a real user never has one.
    ///
    /// ```
    /// use otpflow::{PhoneError, PhoneNumber, PhonePolicy};
    /// let policy = PhonePolicy::default();
    /// assert_eq!(PhoneNumber::parse("07700 900123", &policy), Err(PhoneError::Invalid));
    /// let testing = policy.admit_drama_numbers(true);
    /// assert_eq!(PhoneNumber::parse("07700 900123", &testing)?.e164(), "+447700900123");
    /// assert_eq!(PhoneNumber::parse("+44 7700 900999", &testing)?.region(), Some("GB"));
    /// // Only the drama range: its neighbours stay refused.
    /// assert!(PhoneNumber::parse("07700 901000", &testing).is_err());
    /// # Ok::<(), PhoneError>(())
    /// ```
    #[must_use]
    pub fn admit_drama_numbers(mut self, admit: bool) -> Self {
        self.drama = admit;
        self
    }

    /// Whether Ofcom's drama mobiles are admitted.
    pub fn admits_drama_numbers(&self) -> bool {
        self.drama
    }

    /// The region national input is read in, if any.
    pub fn default_region(&self) -> Option<&str> {
        self.default_region.as_ref().map(Region::as_str)
    }

    /// The allowed country calling codes, ascending; `None` when all are.
    pub fn allowed_country_codes(&self) -> Option<&[u16]> {
        self.allowed.as_deref()
    }

    /// Whether numbers must be mobiles.
    pub fn requires_mobile(&self) -> bool {
        self.mobile
    }

    /// Whether numbers of `country_code` are allowed by the calling-code
    /// list ([`allow_only`](Self::allow_only)). A non-geographic code must
    /// also be named there: see [`allow_only`](Self::allow_only).
    pub fn allows(&self, country_code: u16) -> bool {
        self.allowed
            .as_ref()
            .is_none_or(|codes| codes.binary_search(&country_code).is_ok())
    }

    /// Allows only numbers of these regions (two-letter codes, either case),
    /// on top of the calling-code list: `allow_only(&[1])` then
    /// `allow_regions(&["US", "CA"])` keeps the other countries of the North
    /// American plan out (Jamaica +1 876, the Dominican Republic +1 809,
    /// Antigua +1 268, …), whose numbers are favourite SMS-pumping targets.
    /// Numbers whose region is unknown are refused: non-geographic numbers
    /// (governed by [`allow_only`](Self::allow_only) alone) aside, that is
    /// every non-UK number in the slim build, which has no metadata to tell
    /// regions apart.
    ///
    /// ```
    /// use otpflow::{PhoneError, PhoneNumber, PhonePolicy};
    ///
    /// let us_ca = PhonePolicy::default().allow_only(&[1]).allow_regions(&["US", "ca"])?;
    /// # #[cfg(feature = "phonenumber")] {
    /// assert!(PhoneNumber::parse("+1 202 555 0123", &us_ca).is_ok());
    /// assert_eq!(
    ///     PhoneNumber::parse("+1 876 210 1234", &us_ca),
    ///     Err(PhoneError::RegionNotAllowed),
    /// );
    /// # }
    /// # Ok::<(), PhoneError>(())
    /// ```
    ///
    /// # Errors
    /// [`PhoneError::UnknownRegion`] for a code that is not two letters or,
    /// with the `phonenumber` feature, that the metadata does not know.
    pub fn allow_regions(mut self, regions: &[&str]) -> Result<Self, PhoneError> {
        self.regions = Some(region_list(regions)?);
        Ok(self)
    }

    /// Refuses numbers of these regions (two-letter codes, either case),
    /// whatever else allows them. Numbers whose region is unknown are
    /// refused too while the list is not empty (see
    /// [`allow_regions`](Self::allow_regions)): a deny-list fails closed.
    ///
    /// # Errors
    /// As [`allow_regions`](Self::allow_regions).
    pub fn deny_regions(mut self, regions: &[&str]) -> Result<Self, PhoneError> {
        self.denied = region_list(regions)?;
        Ok(self)
    }

    /// The allowed regions, ascending; `None` when all are.
    pub fn allowed_regions(&self) -> Option<Vec<&str>> {
        self.regions
            .as_ref()
            .map(|list| list.iter().map(Region::as_str).collect())
    }

    /// The refused regions, ascending.
    pub fn denied_regions(&self) -> Vec<&str> {
        self.denied.iter().map(Region::as_str).collect()
    }

    /// The policy's last word on a number that parsed: the calling code,
    /// then non-geographic numbers, the region, and the mobile rule.
    /// A drama mobile written in `digits` (as the fast path reads them),
    /// when the policy admits them.
    fn drama(&self, digits: &[u8], international: bool, national_ok: bool) -> Option<PhoneNumber> {
        if !self.drama {
            return None;
        }
        let nsn = uk::national_number(digits, international, national_ok)?;
        uk::is_drama_mobile(nsn)
            .then(|| PhoneNumber::from_digits(uk::UK, nsn, Some(Region::GB)))
            .flatten()
    }

    fn admit(&self, number: PhoneNumber, mobile: bool) -> Result<PhoneNumber, PhoneError> {
        let country_code = number.country_code;
        if !self.allows(country_code) {
            return Err(PhoneError::CountryNotAllowed { country_code });
        }
        if codes::is_non_geographic(country_code) {
            let named = self
                .allowed
                .as_ref()
                .is_some_and(|codes| codes.binary_search(&country_code).is_ok());
            if !named {
                return Err(PhoneError::NonGeographic { country_code });
            }
        } else {
            let region = number.region;
            let allowed = self
                .regions
                .as_ref()
                .is_none_or(|list| region.is_some_and(|r| list.binary_search(&r).is_ok()));
            let denied = !self.denied.is_empty()
                && region.is_none_or(|r| self.denied.binary_search(&r).is_ok());
            if !allowed || denied {
                return Err(PhoneError::RegionNotAllowed);
            }
        }
        if self.mobile && !mobile {
            return Err(PhoneError::NotMobile);
        }
        Ok(number)
    }
}

/// A list of regions, checked, ascending, without duplicates.
fn region_list(regions: &[&str]) -> Result<Vec<Region>, PhoneError> {
    let mut list = regions
        .iter()
        .map(|code| {
            let region = Region::from_code(code).ok_or(PhoneError::UnknownRegion)?;
            // The slim build has no list of regions: any two letters.
            if cfg!(feature = "phonenumber") && !slow::knows_region(region) {
                return Err(PhoneError::UnknownRegion);
            }
            Ok(region)
        })
        .collect::<Result<Vec<_>, _>>()?;
    list.sort_unstable();
    list.dedup();
    Ok(list)
}

/// Why a phone number was refused. Each says what is wrong with the caller's
/// own input and nothing else, so it is safe to show to whoever typed it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PhoneError {
    /// The input is empty or only spaces.
    Empty,
    /// The input is longer than [`MAX_INPUT_BYTES`].
    TooLong {
        /// The cap, in bytes.
        max: usize,
    },
    /// A character that has no place in a phone number: a letter, a control
    /// character, a non-ASCII digit, punctuation other than ` -.()/`.
    InvalidCharacter {
        /// The character.
        ch: char,
        /// Its position in the input, counted in characters from 0.
        at: usize,
    },
    /// A `+` after the first digit, or a second `+`.
    MisplacedPlus {
        /// Its position in the input, counted in characters from 0.
        at: usize,
    },
    /// Parts of a split number are missing ([`PhoneNumber::from_parts`]).
    Missing {
        /// The country code is missing.
        country_code: bool,
        /// The national number is missing.
        national: bool,
    },
    /// A national number (no `+`) where the policy has no default region.
    MissingCountryCode,
    /// A split country code that is not `+` and one to three digits.
    InvalidCountryCode,
    /// A country calling code that is not assigned.
    UnknownCountryCode,
    /// Not a valid phone number.
    Invalid,
    /// A valid number that cannot receive SMS (a landline, a pager, …).
    NotMobile,
    /// A valid number of a country the policy does not allow.
    CountryNotAllowed {
        /// The number's country calling code.
        country_code: u16,
    },
    /// A region the library does not know ([`PhonePolicy::with_default_region`],
    /// [`PhonePolicy::allow_regions`], [`PhonePolicy::deny_regions`]).
    UnknownRegion,
    /// A valid number of a region the policy does not allow
    /// ([`PhonePolicy::allow_regions`], [`PhonePolicy::deny_regions`]), or
    /// whose region is unknown while the policy lists regions.
    RegionNotAllowed,
    /// A number of a non-geographic calling code (+800 freephone, +808
    /// shared cost, +870 Inmarsat, +878 personal, +881 satellite, +882 and
    /// +883 international networks, +888, +979 premium) that the policy does
    /// not name in [`PhonePolicy::allow_only`]: none is allowed by default.
    NonGeographic {
        /// The number's calling code.
        country_code: u16,
    },
}

impl PhoneError {
    /// The stable machine code, e.g. `"phone_not_mobile"`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Empty => "phone_empty",
            Self::TooLong { .. } => "phone_too_long",
            Self::InvalidCharacter { .. } => "phone_invalid_character",
            Self::MisplacedPlus { .. } => "phone_misplaced_plus",
            Self::Missing { .. } => "phone_missing_field",
            Self::MissingCountryCode => "phone_missing_country_code",
            Self::InvalidCountryCode => "phone_invalid_country_code",
            Self::UnknownCountryCode => "phone_unknown_country_code",
            Self::Invalid => "phone_invalid",
            Self::NotMobile => "phone_not_mobile",
            Self::CountryNotAllowed { .. } => "phone_country_not_allowed",
            Self::UnknownRegion => "phone_unknown_region",
            Self::RegionNotAllowed => "phone_region_not_allowed",
            Self::NonGeographic { .. } => "phone_non_geographic",
        }
    }
}

impl fmt::Display for PhoneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("the phone number is empty"),
            Self::TooLong { max } => write!(f, "the phone number is longer than {max} bytes"),
            Self::InvalidCharacter { ch, at } => {
                write!(
                    f,
                    "character {ch:?} at position {at} has no place in a phone number"
                )
            }
            Self::MisplacedPlus { at } => {
                write!(
                    f,
                    "the '+' at position {at} is not at the start of the number"
                )
            }
            Self::Missing {
                country_code,
                national,
            } => {
                let mut parts = Vec::with_capacity(2);
                if *national {
                    parts.push("missing phone number");
                }
                if *country_code {
                    parts.push("missing country code");
                }
                if parts.is_empty() {
                    parts.push("missing part of the phone number");
                }
                f.write_str(&parts.join("; "))
            }
            Self::MissingCountryCode => f.write_str("the phone number needs its country code (+…)"),
            Self::InvalidCountryCode => {
                f.write_str("the country code must be '+' and one to three digits")
            }
            Self::UnknownCountryCode => f.write_str("the country code is not assigned"),
            Self::Invalid => f.write_str("not a valid phone number"),
            Self::NotMobile => f.write_str("the phone number cannot receive SMS"),
            Self::CountryNotAllowed { country_code } => {
                write!(f, "phone numbers of +{country_code} are not accepted")
            }
            Self::UnknownRegion => f.write_str("unknown region"),
            Self::RegionNotAllowed => f.write_str("phone numbers of this region are not accepted"),
            Self::NonGeographic { country_code } => write!(
                f,
                "non-geographic numbers (+{country_code}) are not accepted"
            ),
        }
    }
}

impl std::error::Error for PhoneError {}

/// The input after the guard: its digits, and whether it began with `+`.
/// Separators carry no meaning from here on.
struct Scanned {
    /// `+` then the digits: the `+` is at index 0, used only when
    /// `international`.
    text: [u8; 1 + MAX_INPUT_BYTES],
    len: usize,
    international: bool,
}

impl Scanned {
    /// The guard: refuses what no phone number holds, before any parsing.
    fn new(input: &str, plus_allowed: bool) -> Result<Self, PhoneError> {
        if input.len() > MAX_INPUT_BYTES {
            return Err(PhoneError::TooLong {
                max: MAX_INPUT_BYTES,
            });
        }
        if input.trim_matches(' ').is_empty() {
            return Err(PhoneError::Empty);
        }
        let mut scanned = Self {
            text: [b'+'; 1 + MAX_INPUT_BYTES],
            len: 0,
            international: false,
        };
        for (at, ch) in input.chars().enumerate() {
            match ch {
                '0'..='9' => {
                    // At most MAX_INPUT_BYTES digits: the length was checked.
                    if let Some(slot) = scanned.text.get_mut(1 + scanned.len) {
                        *slot = ch as u8;
                        scanned.len += 1;
                    }
                }
                ' ' | '-' | '.' | '(' | ')' | '/' => {}
                '+' if plus_allowed && !scanned.international && scanned.len == 0 => {
                    scanned.international = true;
                }
                '+' => return Err(PhoneError::MisplacedPlus { at }),
                _ => return Err(PhoneError::InvalidCharacter { ch, at }),
            }
        }
        if scanned.len == 0 {
            return Err(PhoneError::Invalid);
        }
        Ok(scanned)
    }

    fn digits(&self) -> &[u8] {
        &self.text[1..=self.len]
    }
}

/// The slim build's structural check, for want of metadata.
#[cfg(not(feature = "phonenumber"))]
mod slow {
    use super::{MAX_DIGITS, PhoneError, PhoneNumber, PhonePolicy, Region, Scanned, codes, uk};

    pub(super) fn knows_region(region: Region) -> bool {
        region.is_uk()
    }

    pub(super) fn parse(
        scanned: &Scanned,
        policy: &PhonePolicy,
    ) -> Result<PhoneNumber, PhoneError> {
        let digits = scanned.digits();
        let national_ok = policy.default_region.is_some_and(Region::is_uk);
        let international = if scanned.international {
            digits
        } else if let Some(rest) = digits.strip_prefix(b"00").filter(|_| national_ok) {
            rest
        } else if national_ok {
            // National input in a UK region: the trunk `0` is optional.
            let nsn = digits.strip_prefix(b"0").unwrap_or(digits);
            return uk_number(nsn, policy);
        } else {
            return Err(PhoneError::MissingCountryCode);
        };
        let (country_code, code_len) =
            codes::split_country_code(international).ok_or(PhoneError::UnknownCountryCode)?;
        let national = &international[code_len..];
        if country_code == uk::UK {
            let nsn = national.strip_prefix(b"0").unwrap_or(national);
            return uk_number(nsn, policy);
        }
        if !policy.allows(country_code) {
            return Err(PhoneError::CountryNotAllowed { country_code });
        }
        // A trunk prefix after the calling code, where the plan has one that
        // no number begins with: stripped once; written twice, no number.
        let national = match codes::trunk_prefix(country_code) {
            Some(prefix) => match national.strip_prefix(&[prefix]) {
                Some(rest) if rest.first() == Some(&prefix) => return Err(PhoneError::Invalid),
                Some(rest) => rest,
                None => national,
            },
            None => national,
        };
        if national.len() < 4 || code_len + national.len() > MAX_DIGITS {
            return Err(PhoneError::Invalid);
        }
        let number =
            PhoneNumber::from_digits(country_code, national, None).ok_or(PhoneError::Invalid)?;
        // Without metadata a foreign number's type is unknown: it passes.
        policy.admit(number, true)
    }

    /// A +44 number the fast path did not take: not a mobile.
    fn uk_number(nsn: &[u8], policy: &PhonePolicy) -> Result<PhoneNumber, PhoneError> {
        if !policy.allows(uk::UK) {
            return Err(PhoneError::CountryNotAllowed {
                country_code: uk::UK,
            });
        }
        if !uk::is_plausible(nsn) {
            return Err(PhoneError::Invalid);
        }
        let number =
            PhoneNumber::from_digits(uk::UK, nsn, Some(Region::GB)).ok_or(PhoneError::Invalid)?;
        policy.admit(number, false)
    }
}

/// `codes` sorted, without repeats.
#[cfg(feature = "phonenumber")]
fn sorted_codes(codes: &[u16]) -> Vec<u16> {
    let mut codes = codes.to_vec();
    codes.sort_unstable();
    codes.dedup();
    codes
}

/// `codes` sorted, without repeats, through one bit per possible code: in
/// the slim build (no `phonenumber`) this is about 3.5 KB less wasm than
/// `sort_unstable`'s, and linear in the list whatever it holds.
#[cfg(not(feature = "phonenumber"))]
fn sorted_codes(codes: &[u16]) -> Vec<u16> {
    let mut seen = vec![0u64; 1024];
    for &code in codes {
        if let Some(word) = seen.get_mut(usize::from(code >> 6)) {
            *word |= 1 << (code & 63);
        }
    }
    (0..=u16::MAX)
        .filter(|&code| {
            seen.get(usize::from(code >> 6))
                .is_some_and(|word| (word >> (code & 63)) & 1 == 1)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guard_names_the_character_and_its_place() {
        let p = PhonePolicy::default();
        let e = |s: &str| PhoneNumber::parse(s, &p).expect_err(s);
        assert_eq!(e(""), PhoneError::Empty);
        assert_eq!(e("   "), PhoneError::Empty);
        assert_eq!(e(&"1".repeat(65)), PhoneError::TooLong { max: 64 });
        assert_eq!(
            e("07401 1O18O1"),
            PhoneError::InvalidCharacter { ch: 'O', at: 7 }
        );
        assert_eq!(
            e("0740\u{0}1101801"),
            PhoneError::InvalidCharacter { ch: '\0', at: 4 }
        );
        assert_eq!(
            e("07401\t101801"),
            PhoneError::InvalidCharacter { ch: '\t', at: 5 }
        );
        assert_eq!(
            e("٠7401101801"),
            PhoneError::InvalidCharacter { ch: '٠', at: 0 }
        );
        assert_eq!(e("++447401101801"), PhoneError::MisplacedPlus { at: 1 });
        assert_eq!(e("44+7401101801"), PhoneError::MisplacedPlus { at: 2 });
        assert_eq!(e("+"), PhoneError::Invalid);
        assert_eq!(e("()"), PhoneError::Invalid);
    }

    #[test]
    fn builds_the_canonical_form_from_digits() {
        let n = PhoneNumber::from_digits(44, b"7401101801", Some(Region::GB)).expect("fits");
        assert_eq!(n.e164(), "+447401101801");
        assert_eq!(n.digits(), "447401101801");
        assert_eq!(n.national(), "7401101801");
        assert_eq!(n.country_code(), 44);
        let n = PhoneNumber::from_digits(507, b"61234567", None).expect("fits");
        assert_eq!(n.e164(), "+50761234567");
        assert_eq!(n.national(), "61234567");
        assert!(PhoneNumber::from_digits(1, b"123456789012345", None).is_none());
        assert!(PhoneNumber::from_digits(1000, b"1234", None).is_none());
        assert!(PhoneNumber::from_digits(1, b"", None).is_none());
    }
}
