//! The fast path for UK mobile numbers: no allocation, no regular expression.
//!
//! This is the library's own job, not a re-implementation for its own sake:
//! the `phonenumber` crate takes tens of microseconds per number, and UK
//! mobiles are most of what otpflow's users verify. The answer must be the
//! crate's answer, so the table below was generated from the crate itself
//! (`phonenumber` =0.3.10, libphonenumber metadata 9.0.33) by the ignored test
//! `uk_mobile_table` in `tests/phone.rs`, and the differential tests there
//! check every `07…` prefix against the crate. A number the fast path does not
//! recognise is not refused here: it goes on to the crate (or, in the slim
//! build, to the structural check).

use super::Region;

/// The UK country calling code.
pub(crate) const UK: u16 = 44;

/// A run of UK mobile ranges: national significant numbers (10 digits, `7…`)
/// whose first six digits are in `start..end` are mobiles of `region`.
struct Range {
    start: u32,
    end: u32,
    region: Region,
}

/// Mobile ranges of +44 by the first six digits of the national significant
/// number, ascending and disjoint. Generated: see the module docs.
const MOBILE: [Range; 30] = [
    Range {
        start: 710000,
        end: 745760,
        region: Region::GB,
    },
    Range {
        start: 745760,
        end: 745770,
        region: Region::IM,
    },
    Range {
        start: 745770,
        end: 750900,
        region: Region::GB,
    },
    Range {
        start: 750900,
        end: 751000,
        region: Region::JE,
    },
    Range {
        start: 751000,
        end: 752400,
        region: Region::GB,
    },
    Range {
        start: 752400,
        end: 752500,
        region: Region::IM,
    },
    Range {
        start: 752500,
        end: 760000,
        region: Region::GB,
    },
    Range {
        start: 762400,
        end: 762451,
        region: Region::IM,
    },
    Range {
        start: 762456,
        end: 762457,
        region: Region::IM,
    },
    Range {
        start: 762460,
        end: 762470,
        region: Region::IM,
    },
    Range {
        start: 762480,
        end: 762500,
        region: Region::IM,
    },
    Range {
        start: 770000,
        end: 770020,
        region: Region::GB,
    },
    Range {
        start: 770030,
        end: 770040,
        region: Region::JE,
    },
    Range {
        start: 770070,
        end: 770090,
        region: Region::JE,
    },
    Range {
        start: 770100,
        end: 778100,
        region: Region::GB,
    },
    Range {
        start: 778100,
        end: 778200,
        region: Region::GG,
    },
    Range {
        start: 778200,
        end: 779700,
        region: Region::GB,
    },
    Range {
        start: 779700,
        end: 779800,
        region: Region::JE,
    },
    Range {
        start: 779800,
        end: 782900,
        region: Region::GB,
    },
    Range {
        start: 782900,
        end: 783000,
        region: Region::JE,
    },
    Range {
        start: 783000,
        end: 783900,
        region: Region::GB,
    },
    Range {
        start: 783900,
        end: 784000,
        region: Region::GG,
    },
    Range {
        start: 784000,
        end: 791110,
        region: Region::GB,
    },
    Range {
        start: 791110,
        end: 791120,
        region: Region::GG,
    },
    Range {
        start: 791120,
        end: 791130,
        region: Region::GB,
    },
    Range {
        start: 791170,
        end: 791180,
        region: Region::GG,
    },
    Range {
        start: 791180,
        end: 791190,
        region: Region::GB,
    },
    Range {
        start: 791200,
        end: 793700,
        region: Region::GB,
    },
    Range {
        start: 793700,
        end: 793800,
        region: Region::JE,
    },
    Range {
        start: 793800,
        end: 800000,
        region: Region::GB,
    },
];

/// The region whose mobile range holds the 10-digit national significant
/// number `nsn` (ASCII digits), if any.
pub(crate) fn mobile_region(nsn: &[u8]) -> Option<Region> {
    if nsn.len() != 10 || nsn[0] != b'7' {
        return None;
    }
    let prefix = nsn[..6]
        .iter()
        .fold(0u32, |acc, &d| acc * 10 + u32::from(d - b'0'));
    let i = MOBILE.partition_point(|r| r.end <= prefix);
    MOBILE
        .get(i)
        .filter(|r| r.start <= prefix)
        .map(|r| r.region)
}

/// Whether the national significant number is one of Ofcom's drama
/// mobiles, 7700 900000 to 7700 900999.
pub(crate) fn is_drama_mobile(nsn: &[u8]) -> bool {
    nsn.len() == 10 && nsn.starts_with(b"7700900")
}

/// The national significant number of a +44 number written in `digits`
/// (separators already dropped), if it has one of the shapes the fast path
/// knows; `None` sends the input on to the full parser.
///
/// `international` says the input began with `+`; `national_ok` says a number
/// without `+` may be read as a UK one (the default region is GB, GG, JE or
/// IM). The shapes: `+44 N`, `+44 0N`, and without `+`: `0044 N`, `0044 0N`,
/// `0N`, `44 N`, `44 0N` and `N`, where `N` is ten digits.
pub(crate) fn national_number(
    digits: &[u8],
    international: bool,
    national_ok: bool,
) -> Option<&[u8]> {
    let rest = if international {
        digits.strip_prefix(b"44")?
    } else if !national_ok {
        return None;
    } else if let Some(rest) = digits.strip_prefix(b"0044") {
        rest
    } else if digits.starts_with(b"00") {
        return None;
    } else if let Some(rest) = digits.strip_prefix(b"0") {
        return (rest.len() == 10).then_some(rest);
    } else if digits.len() > 10 {
        digits.strip_prefix(b"44")?
    } else {
        digits
    };
    let nsn = match rest.len() {
        10 => rest,
        11 => rest.strip_prefix(b"0")?,
        _ => return None,
    };
    Some(nsn)
}

/// Whether a +44 national significant number that is not a mobile has a
/// length and leading digit a UK number can have (the general pattern of the
/// GB metadata: ten digits led by 1, 2, 3, 5, 7 or 9; nine led by 1 or 8;
/// seven led by 8). Used only by the slim build, which has no metadata.
#[cfg_attr(feature = "phonenumber", allow(dead_code))]
pub(crate) fn is_plausible(nsn: &[u8]) -> bool {
    matches!(
        (nsn.len(), nsn.first()),
        (10, Some(b'1' | b'2' | b'3' | b'5' | b'7' | b'9'))
            | (9, Some(b'1' | b'8'))
            | (7, Some(b'8'))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sorted_and_disjoint() {
        assert!(MOBILE.iter().all(|r| r.start < r.end));
        assert!(MOBILE.windows(2).all(|w| w[0].end <= w[1].start));
        assert!(MOBILE.iter().all(|r| (700_000..=800_000).contains(&r.end)));
    }

    #[test]
    fn finds_the_region_of_a_mobile() {
        assert_eq!(mobile_region(b"7401101801"), Some(Region::GB));
        assert_eq!(mobile_region(b"7781123456"), Some(Region::GG));
        assert_eq!(mobile_region(b"7509123456"), Some(Region::JE));
        assert_eq!(mobile_region(b"7624123456"), Some(Region::IM));
        // Ofcom's drama range, a pager and a personal number.
        assert_eq!(mobile_region(b"7700900123"), None);
        assert_eq!(mobile_region(b"7640123456"), None);
        assert_eq!(mobile_region(b"7012345678"), None);
        assert_eq!(mobile_region(b"740110180"), None);
        assert_eq!(mobile_region(b"2079460000"), None);
    }

    #[test]
    fn knows_the_shapes_of_a_uk_number() {
        let nsn: &[u8] = b"7401101801";
        for (digits, plus) in [
            (&b"447401101801"[..], true),
            (b"4407401101801", true),
            (b"00447401101801", false),
            (b"004407401101801", false),
            (b"07401101801", false),
            (b"447401101801", false),
            (b"4407401101801", false),
            (b"7401101801", false),
        ] {
            assert_eq!(national_number(digits, plus, true), Some(nsn), "{digits:?}");
        }
        assert_eq!(national_number(b"07401101801", false, false), None);
        assert_eq!(national_number(b"0017401101801", false, true), None);
        assert_eq!(national_number(b"12025550123", true, true), None);
        assert_eq!(national_number(b"44007401101801", true, true), None);
    }
}
