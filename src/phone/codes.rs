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

/// The trunk prefix of a calling code's plan, where it is one digit that no
/// national significant number of the plan begins with: after the calling
/// code, that digit can only be a trunk prefix (`+33 (0)6 …`, `+1 1 202 …`).
/// The slim build, which has no metadata, strips it once and refuses a
/// second. Ascending by code; computed from the metadata by the test
/// `trunk_prefixes_are_the_metadatas` (run it with `--ignored --nocapture`
/// to print the table).
const TRUNK_PREFIXES: [(u16, u8); 98] = [
    (1, b'1'),
    (20, b'0'),
    (27, b'0'),
    (31, b'0'),
    (32, b'0'),
    (33, b'0'),
    (40, b'0'),
    (41, b'0'),
    (43, b'0'),
    (44, b'0'),
    (46, b'0'),
    (49, b'0'),
    (51, b'0'),
    (53, b'0'),
    (54, b'0'),
    (55, b'0'),
    (57, b'0'),
    (58, b'0'),
    (60, b'0'),
    (61, b'0'),
    (63, b'0'),
    (64, b'0'),
    (84, b'0'),
    (86, b'0'),
    (90, b'0'),
    (92, b'0'),
    (93, b'0'),
    (94, b'0'),
    (95, b'0'),
    (98, b'0'),
    (211, b'0'),
    (212, b'0'),
    (213, b'0'),
    (218, b'0'),
    (231, b'0'),
    (232, b'0'),
    (233, b'0'),
    (234, b'0'),
    (243, b'0'),
    (249, b'0'),
    (251, b'0'),
    (252, b'0'),
    (254, b'0'),
    (255, b'0'),
    (256, b'0'),
    (260, b'0'),
    (261, b'0'),
    (262, b'0'),
    (263, b'0'),
    (264, b'0'),
    (265, b'0'),
    (291, b'0'),
    (353, b'0'),
    (355, b'0'),
    (358, b'0'),
    (370, b'0'),
    (373, b'0'),
    (374, b'0'),
    (377, b'0'),
    (380, b'0'),
    (381, b'0'),
    (382, b'0'),
    (383, b'0'),
    (385, b'0'),
    (386, b'0'),
    (387, b'0'),
    (389, b'0'),
    (421, b'0'),
    (423, b'0'),
    (508, b'0'),
    (590, b'0'),
    (591, b'0'),
    (593, b'0'),
    (594, b'0'),
    (595, b'0'),
    (596, b'0'),
    (686, b'0'),
    (692, b'1'),
    (850, b'0'),
    (855, b'0'),
    (856, b'0'),
    (880, b'0'),
    (886, b'0'),
    (961, b'0'),
    (962, b'0'),
    (963, b'0'),
    (964, b'0'),
    (966, b'0'),
    (967, b'0'),
    (970, b'0'),
    (971, b'0'),
    (972, b'0'),
    (976, b'0'),
    (977, b'0'),
    (993, b'8'),
    (994, b'0'),
    (995, b'0'),
    (996, b'0'),
];

/// The trunk prefix digit of `code`'s plan, where no number of the plan
/// begins with it.
#[cfg_attr(feature = "phonenumber", allow(dead_code))]
pub(crate) fn trunk_prefix(code: u16) -> Option<u8> {
    TRUNK_PREFIXES
        .binary_search_by_key(&code, |&(c, _)| c)
        .ok()
        .and_then(|i| TRUNK_PREFIXES.get(i))
        .map(|&(_, prefix)| prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The calling codes whose plans (every region sharing the code) have
    /// the same one-digit national prefix, and where no number of any of
    /// them begins with it: every four-digit start from the prefix, at every
    /// possible length, with four different tails, matches no pattern, and
    /// no example number begins with it. A sample, not a proof: a plan left
    /// out only costs the slim build a trunk prefix it does not strip.
    #[cfg(feature = "phonenumber")]
    fn trunk_prefixes_from_the_metadata() -> Vec<(u16, u8)> {
        let mut table = Vec::new();
        for &code in &ASSIGNED {
            let Some(plans) = phonenumber::metadata::DATABASE.by_code(&code) else {
                continue;
            };
            let prefixes: Vec<Option<&str>> = plans.iter().map(|p| p.national_prefix()).collect();
            let Some(Some(prefix)) = prefixes.first().copied() else {
                continue;
            };
            if prefix.len() != 1 || prefixes.iter().any(|p| *p != Some(prefix)) {
                continue;
            }
            let begins_a_number = plans.iter().any(|plan| {
                let types = crate::phone::plan::types(plan);
                let mut lengths: Vec<u16> = types
                    .iter()
                    .flatten()
                    .flat_map(|t| t.possible_length().iter().copied())
                    .collect();
                lengths.sort_unstable();
                lengths.dedup();
                let examples = types.iter().flatten().filter_map(|t| t.example());
                examples.into_iter().any(|e| e.starts_with(prefix))
                    || lengths.iter().any(|&len| {
                        let len = usize::from(len);
                        (0..1000).any(|start| {
                            ["0", "1", "5", "9"].iter().any(|fill| {
                                let head = format!("{prefix}{start:03}");
                                let number =
                                    format!("{head}{}", fill.repeat(len.saturating_sub(4)));
                                let number = &number[..len.min(number.len())];
                                plan.descriptors().general().is_match(number)
                            })
                        })
                    })
            });
            if !begins_a_number {
                table.push((code, prefix.as_bytes()[0]));
            }
        }
        table
    }

    #[cfg(feature = "phonenumber")]
    #[test]
    fn trunk_prefixes_are_the_metadatas() {
        let table = trunk_prefixes_from_the_metadata();
        for (code, prefix) in &table {
            println!("    ({code}, b'{}'),", char::from(*prefix));
        }
        assert_eq!(table, TRUNK_PREFIXES);
    }

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
