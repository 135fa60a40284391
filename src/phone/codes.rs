//! The assigned country calling codes.
//!
//! Written out here, not taken from the `phonenumber` crate, because the slim
//! build (without that crate) still has to tell an assigned code from an
//! unassigned one, and `from_parts` checks it before any parsing. The list is
//! the one in the metadata that `phonenumber` =0.3.10 carries (libphonenumber
//! 9.0.33); `tests/phone.rs` checks the two agree on every code from 0 to 999.

/// Every assigned country calling code, ascending.
const ASSIGNED: [u16; 215] = [
    1, 7, 20, 27, 30, 31, 32, 33, 34, 36, 39, 40, 41, 43, 44, 45, 46, 47, 48, 49, 51, 52, 53, 54,
    55, 56, 57, 58, 60, 61, 62, 63, 64, 65, 66, 81, 82, 84, 86, 90, 91, 92, 93, 94, 95, 98, 211,
    212, 213, 216, 218, 220, 221, 222, 223, 224, 225, 226, 227, 228, 229, 230, 231, 232, 233, 234,
    235, 236, 237, 238, 239, 240, 241, 242, 243, 244, 245, 246, 247, 248, 249, 250, 251, 252, 253,
    254, 255, 256, 257, 258, 260, 261, 262, 263, 264, 265, 266, 267, 268, 269, 290, 291, 297, 298,
    299, 350, 351, 352, 353, 354, 355, 356, 357, 358, 359, 370, 371, 372, 373, 374, 375, 376, 377,
    378, 380, 381, 382, 383, 385, 386, 387, 389, 420, 421, 423, 500, 501, 502, 503, 504, 505, 506,
    507, 508, 509, 590, 591, 592, 593, 594, 595, 596, 597, 598, 599, 670, 672, 673, 674, 675, 676,
    677, 678, 679, 680, 681, 682, 683, 685, 686, 687, 688, 689, 690, 691, 692, 800, 808, 850, 852,
    853, 855, 856, 870, 878, 880, 881, 882, 883, 886, 888, 960, 961, 962, 963, 964, 965, 966, 967,
    968, 970, 971, 972, 973, 974, 975, 976, 977, 979, 992, 993, 994, 995, 996, 998,
];

/// The non-geographic calling codes (ITU-T E.164 "global services":
/// freephone, shared cost, Inmarsat, personal numbering, satellite,
/// international networks, premium rate), ascending: libphonenumber's `001`
/// entities, checked against them in `tests/phone.rs`.
pub(crate) const NON_GEOGRAPHIC: [u16; 9] = [800, 808, 870, 878, 881, 882, 883, 888, 979];

/// Whether `code` is a non-geographic calling code.
pub(crate) fn is_non_geographic(code: u16) -> bool {
    NON_GEOGRAPHIC.binary_search(&code).is_ok()
}

/// Whether `code` is an assigned country calling code.
pub(crate) fn is_assigned(code: u16) -> bool {
    ASSIGNED.binary_search(&code).is_ok()
}

/// The country calling code that starts `digits` and its length in digits.
/// Calling codes are a prefix code (no assigned code starts another), so at
/// most one of the 1-, 2- and 3-digit prefixes is assigned. No code starts
/// with 0: `+0 44 …` has none (and is not `+44 …`).
pub(crate) fn split_country_code(digits: &[u8]) -> Option<(u16, usize)> {
    if digits.first() == Some(&b'0') {
        return None;
    }
    let mut value = 0u16;
    for (i, &d) in digits.iter().take(3).enumerate() {
        if !d.is_ascii_digit() {
            return None;
        }
        value = value * 10 + u16::from(d - b'0');
        if is_assigned(value) {
            return Some((value, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_is_sorted_and_prefix_free() {
        assert!(ASSIGNED.windows(2).all(|w| w[0] < w[1]));
        for &a in &ASSIGNED {
            for &b in &ASSIGNED {
                let (a, b) = (a.to_string(), b.to_string());
                assert!(a == b || !b.starts_with(&a), "{a} is a prefix of {b}");
            }
        }
    }

    #[cfg(feature = "phonenumber")]
    #[test]
    fn the_non_geographic_codes_are_the_metadatas() {
        let ours: Vec<u16> = (1..1000u16)
            .filter(|code| {
                phonenumber::metadata::DATABASE
                    .region(code)
                    .is_some_and(|regions| regions == ["001"])
            })
            .collect();
        assert_eq!(ours, NON_GEOGRAPHIC);
        assert!(NON_GEOGRAPHIC.iter().all(|&code| is_assigned(code)));
    }

    #[test]
    fn splits_the_calling_code_off() {
        assert_eq!(split_country_code(b"447401101801"), Some((44, 2)));
        assert_eq!(split_country_code(b"12025550123"), Some((1, 1)));
        assert_eq!(split_country_code(b"50761234567"), Some((507, 3)));
        assert_eq!(split_country_code(b"999"), None);
        assert_eq!(split_country_code(b"0447401101801"), None);
        assert_eq!(split_country_code(b"044"), None);
        assert_eq!(split_country_code(b""), None);
    }
}
