//! The full parser: a number read in the numbering plan of its own country,
//! from the metadata the `phonenumber` crate carries (libphonenumber's).
//!
//! The crate supplies the data (prefixes, patterns, lengths, regions) and its
//! regular expressions; the reading is done here, step by step as
//! libphonenumber does it, because the crate's own `parse` (=0.3.10) reads a
//! number in the *default region's* plan when it is given one: with GB as the
//! default, the `0` after `+225`, `+229`, `+242`, `+39` or `+47` was taken for
//! GB's trunk prefix and dropped, refusing those countries' numbers or
//! turning `+241 06031234` into `+241 6031234`, another number. It also
//! strips a national prefix twice (`+7 800 …` loses its `8`). Here a leading
//! digit after the country code is a trunk prefix only when that country's
//! plan says so, and only once.
//!
//! The steps, for input already reduced to its digits by the guard:
//! 1. **The country code.** After `+`, the calling code that starts the
//!    digits. Without `+`, in the default region: its international prefix
//!    (`00`, `011`, …) then a calling code; else the region's own code
//!    written without `+` (`44 7401 …`) when the digits only make a number
//!    that way; else the number is national.
//! 2. **The trunk prefix.** The plan's `nationalPrefixForParsing` (or its
//!    national prefix) is removed, or rewritten by its transform rule, when
//!    it starts the national number, unless the number was already a
//!    plausible one and would no longer be; the result is kept when its
//!    length is possible in the plan.
//! 3. **Region and type.** Among the regions sharing the calling code, the
//!    first whose leading digits match, or whose patterns know the number;
//!    the number is valid when that region's patterns give it a type.

use core::str::FromStr;

use phonenumber::metadata::{DATABASE, Descriptor, Metadata};
use phonenumber::{Type, country};

use super::{PhoneError, PhoneNumber, PhonePolicy, Region, Scanned, codes};

/// libphonenumber's bounds on a national significant number's length.
const NSN_LENGTHS: core::ops::RangeInclusive<usize> = 2..=17;

/// Whether the metadata knows `region` (a region national input can be read
/// in).
pub(super) fn knows_region(region: Region) -> bool {
    country::Id::from_str(region.as_str()).is_ok() && DATABASE.by_id(region.as_str()).is_some()
}

/// Reads the number and hands it to the policy.
pub(super) fn parse(scanned: &Scanned, policy: &PhonePolicy) -> Result<PhoneNumber, PhoneError> {
    // The guard wrote only ASCII digits.
    let digits = core::str::from_utf8(scanned.digits()).map_err(|_| PhoneError::Invalid)?;
    let (country_code, nsn) = read(digits, scanned.international, policy.default_region)?;
    if !policy.allows(country_code) {
        return Err(PhoneError::CountryNotAllowed { country_code });
    }
    let (region, kind) = classify(country_code, &nsn).ok_or(PhoneError::Invalid)?;
    let number = PhoneNumber::from_digits(country_code, nsn.as_bytes(), region)
        .ok_or(PhoneError::Invalid)?;
    policy.admit(
        number,
        matches!(kind, Type::Mobile | Type::FixedLineOrMobile),
    )
}

/// Steps 1 and 2: the country calling code and the national significant
/// number of `digits`.
pub(super) fn read(
    digits: &str,
    international: bool,
    default_region: Option<Region>,
) -> Result<(u16, String), PhoneError> {
    let (country_code, national, plan) = if international {
        let (code, len) = split(digits)?;
        (code, &digits[len..], main_plan(code)?)
    } else {
        let region = default_region.ok_or(PhoneError::MissingCountryCode)?;
        let home = DATABASE
            .by_id(region.as_str())
            .ok_or(PhoneError::MissingCountryCode)?;
        if let Some(rest) = strip_international_prefix(home, digits) {
            let (code, len) = split(rest)?;
            (code, &rest[len..], main_plan(code)?)
        } else if let Some(rest) = own_code_written_out(home, digits) {
            let code = home.country_code();
            (code, rest, main_plan(code)?)
        } else {
            (home.country_code(), digits, home)
        }
    };
    let stripped = strip_trunk_prefix(plan, national);
    let nsn = if length_fits(plan, stripped.len()) {
        stripped
    } else {
        national.to_owned()
    };
    if !NSN_LENGTHS.contains(&nsn.len()) {
        return Err(PhoneError::Invalid);
    }
    Ok((country_code, nsn))
}

/// The calling code that starts `digits`, and its length.
fn split(digits: &str) -> Result<(u16, usize), PhoneError> {
    codes::split_country_code(digits.as_bytes()).ok_or(PhoneError::UnknownCountryCode)
}

/// The plan of a calling code: its main region's metadata, or the
/// non-geographic entity's.
fn main_plan(code: u16) -> Result<&'static Metadata, PhoneError> {
    let plans = DATABASE
        .by_code(&code)
        .ok_or(PhoneError::UnknownCountryCode)?;
    plans
        .iter()
        .find(|m| m.is_main_country_for_code())
        .or_else(|| plans.first())
        .copied()
        .ok_or(PhoneError::UnknownCountryCode)
}

/// The digits after the region's international prefix (`00`, `011`, …), if
/// they start with it and what follows is not a `0` (no calling code starts
/// with 0: the prefix is then part of a national number).
fn strip_international_prefix<'a>(home: &Metadata, digits: &'a str) -> Option<&'a str> {
    let prefix = home.international_prefix()?.find(digits)?;
    let rest = digits.get(prefix.end()..)?;
    (prefix.start() == 0 && !rest.is_empty() && !rest.starts_with('0')).then_some(rest)
}

/// The digits after the region's own calling code written without `+`
/// (`44 7401 101801` in GB), when the whole is no number of the region but
/// the rest is (or the whole is too long to be one).
fn own_code_written_out<'a>(home: &Metadata, digits: &'a str) -> Option<&'a str> {
    let rest = digits.strip_prefix(home.country_code().to_string().as_str())?;
    let general = home.descriptors().general();
    let potential = strip_trunk_prefix(home, rest);
    let better = !general.is_match(digits) && general.is_match(&potential);
    (better || too_long(home, digits.len())).then_some(rest)
}

/// Step 2: the national number with the plan's trunk prefix removed or
/// rewritten, where the plan has one and it starts the number.
pub(super) fn strip_trunk_prefix(plan: &Metadata, national: &str) -> String {
    let general = plan.descriptors().general();
    let Some(parsing) = plan.national_prefix_for_parsing() else {
        // No pattern: the national prefix itself, when there is one.
        return match plan.national_prefix() {
            Some(prefix) if !prefix.is_empty() => match national.strip_prefix(prefix) {
                Some(rest) if !general.is_match(national) || general.is_match(rest) => {
                    rest.to_owned()
                }
                _ => national.to_owned(),
            },
            _ => national.to_owned(),
        };
    };
    let Some(found) = parsing.captures(national) else {
        return national.to_owned();
    };
    let Some(whole) = found.get(0).filter(|m| m.start() == 0) else {
        return national.to_owned();
    };
    let viable = general.is_match(national);
    let groups = found.len().saturating_sub(1);
    let last_group_matched = groups > 0 && found.get(groups).is_some();
    let candidate = match plan.national_prefix_transform_rule() {
        Some(rule) if !rule.is_empty() && last_group_matched => {
            // The rule is written `$1`; `${1}` keeps a digit after the group
            // number from being read as part of it.
            let mut expanded = String::new();
            found.expand(&braced(rule), &mut expanded);
            format!("{expanded}{}", &national[whole.end()..])
        }
        _ => national[whole.end()..].to_owned(),
    };
    if viable && !general.is_match(&candidate) {
        return national.to_owned();
    }
    candidate
}

/// `$1` written `${1}`.
fn braced(rule: &str) -> String {
    let mut out = String::with_capacity(rule.len() + 4);
    let mut chars = rule.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push_str("${");
            while let Some(d) = chars.next_if(char::is_ascii_digit) {
                out.push(d);
            }
            out.push('}');
        } else {
            out.push(c);
        }
    }
    out
}

/// The lengths a plan's numbers have, and the lengths only diallable
/// locally: the union over its number types, as libphonenumber computes its
/// general description's (the crate leaves that one's lengths empty).
fn lengths(plan: &Metadata) -> (Vec<u16>, Vec<u16>) {
    let (mut possible, mut local) = (Vec::new(), Vec::new());
    for desc in types(plan).into_iter().flatten() {
        possible.extend_from_slice(desc.possible_length());
        local.extend_from_slice(desc.possible_local_length());
    }
    for list in [&mut possible, &mut local] {
        list.sort_unstable();
        list.dedup();
    }
    (possible, local)
}

/// libphonenumber's `testNumberLength` for an unknown type, reduced to its
/// use in parsing: whether a national number of `len` digits may be kept
/// (not too short, not a local-only length, not a length the plan lacks; too
/// long is kept, and refused afterwards as invalid).
fn length_fits(plan: &Metadata, len: usize) -> bool {
    let (possible, local) = lengths(plan);
    let Some((&min, &max)) = possible.first().zip(possible.last()) else {
        return false;
    };
    let len = u16::try_from(len).unwrap_or(u16::MAX);
    !local.contains(&len) && len >= min && (len > max || possible.contains(&len))
}

/// Whether `len` digits are more than any number of the plan has.
fn too_long(plan: &Metadata, len: usize) -> bool {
    let len = u16::try_from(len).unwrap_or(u16::MAX);
    lengths(plan).0.last().is_some_and(|&max| len > max)
}

/// The descriptions of a plan's number types.
pub(super) fn types(plan: &Metadata) -> [Option<&Descriptor>; 10] {
    let d = plan.descriptors();
    [
        d.fixed_line(),
        d.mobile(),
        d.toll_free(),
        d.premium_rate(),
        d.shared_cost(),
        d.personal_number(),
        d.voip(),
        d.pager(),
        d.uan(),
        d.voicemail(),
    ]
}

/// Step 3: the region of a national significant number (`None` for a
/// non-geographic calling code) and its type; `None` when it is no valid
/// number.
pub(super) fn classify(country_code: u16, nsn: &str) -> Option<(Option<Region>, Type)> {
    let plans = DATABASE.by_code(&country_code)?;
    let plan = if plans.len() == 1 {
        plans.first().copied()
    } else {
        plans
            .iter()
            .copied()
            .find(|plan| match plan.leading_digits() {
                Some(leading) => leading.find(nsn).is_some_and(|m| m.start() == 0),
                None => kind(plan, nsn) != Type::Unknown,
            })
    }?;
    let kind = kind(plan, nsn);
    if kind == Type::Unknown {
        return None;
    }
    Some((Region::from_code(plan.id()), kind))
}

/// The type a plan gives a national significant number, in libphonenumber's
/// order; [`Type::Unknown`] when none of its patterns knows it.
fn kind(plan: &Metadata, nsn: &str) -> Type {
    let d = plan.descriptors();
    if !d.general().is_match(nsn) {
        return Type::Unknown;
    }
    let matches = |desc: Option<&Descriptor>| desc.is_some_and(|desc| desc.is_match(nsn));
    let ordered = [
        (d.premium_rate(), Type::PremiumRate),
        (d.toll_free(), Type::TollFree),
        (d.shared_cost(), Type::SharedCost),
        (d.voip(), Type::Voip),
        (d.personal_number(), Type::PersonalNumber),
        (d.pager(), Type::Pager),
        (d.uan(), Type::Uan),
        (d.voicemail(), Type::Voicemail),
    ];
    if let Some(&(_, found)) = ordered.iter().find(|(desc, _)| matches(*desc)) {
        return found;
    }
    if matches(d.fixed_line()) {
        let same_patterns = d.fixed_line().map(|f| f.national_number().as_str())
            == d.mobile().map(|m| m.national_number().as_str());
        return if same_patterns || matches(d.mobile()) {
            Type::FixedLineOrMobile
        } else {
            Type::FixedLine
        };
    }
    if matches(d.mobile()) {
        return Type::Mobile;
    }
    Type::Unknown
}
