//! Phone numbers through the public API: the forms users and services send,
//! the guard, the policy, a differential test of the UK fast path against the
//! `phonenumber` crate, and property tests that nothing panics.

use otpflow::{PhoneError, PhoneNumber, PhonePolicy};
use proptest::prelude::*;

fn parse(input: &str) -> Result<PhoneNumber, PhoneError> {
    PhoneNumber::parse(input, &PhonePolicy::default())
}

#[test]
fn every_written_form_of_a_uk_mobile_is_one_number() {
    let forms = [
        "07401 101801",
        "07401101801",
        "+44 7401 101801",
        "+44 (0)7401 101801",
        "+44-7401-101801",
        "0044 7401 101801",
        "447401101801",
        "  07401 101801  ",
        " +447401101801",
        "(+44) 7401 101801",
        "+44.7401.101801",
        "(07401) 101801",
        "7401 101801",
    ];
    let first = parse(forms[0]).expect("the national form");
    for form in forms {
        let n = parse(form).unwrap_or_else(|e| panic!("{form:?}: {e}"));
        assert_eq!(n, first, "{form:?}");
        assert_eq!(n.e164(), "+447401101801");
        assert_eq!(n.digits(), "447401101801");
        assert_eq!(n.national(), "7401101801");
        assert_eq!(n.country_code(), 44);
        assert_eq!(n.region(), Some("GB"));
        assert_eq!(n.to_string(), "+447401101801");
        assert_eq!(format!("{n:?}"), "PhoneNumber(+447401101801)");
    }
}

#[test]
fn the_split_form_lands_on_the_same_number() {
    let p = PhonePolicy::default();
    let whole = parse("07401 101801").expect("whole");
    for (cc, national) in [
        ("+44", "7401 101801"),
        ("+44", "07401 101801"),
        (" +44 ", " 7401-101801 "),
        ("+44", "(0)7401 101801"),
    ] {
        assert_eq!(
            PhoneNumber::from_parts(cc, national, &p),
            Ok(whole),
            "{cc:?} {national:?}"
        );
    }
}

#[test]
fn the_split_form_names_every_missing_field() {
    let p = PhonePolicy::default();
    let missing = |cc, national| PhoneError::Missing {
        country_code: cc,
        national,
    };
    assert_eq!(
        PhoneNumber::from_parts("", "", &p),
        Err(missing(true, true))
    );
    assert_eq!(
        PhoneNumber::from_parts(" ", "7401101801", &p),
        Err(missing(true, false))
    );
    assert_eq!(
        PhoneNumber::from_parts("+44", "  ", &p),
        Err(missing(false, true))
    );
    let both = PhoneNumber::from_parts("", "", &p).expect_err("both missing");
    assert_eq!(
        both.to_string(),
        "missing phone number; missing country code"
    );
    assert_eq!(both.code(), "phone_missing_field");
}

#[test]
fn the_split_country_code_is_plus_and_one_to_three_assigned_digits() {
    let p = PhonePolicy::default().require_mobile(false);
    for cc in ["44", "+", "+4a", "+1234", "++44", "+ 44", "0044", "+٤٤"] {
        assert_eq!(
            PhoneNumber::from_parts(cc, "7401 101801", &p),
            Err(PhoneError::InvalidCountryCode),
            "{cc:?}"
        );
    }
    for cc in ["+999", "+0", "+044", "+28", "+800 "] {
        let got = PhoneNumber::from_parts(cc, "7401 101801", &p);
        if cc.trim() == "+800" {
            // +800 is assigned (international freephone): it parses or is invalid.
            assert_ne!(got, Err(PhoneError::UnknownCountryCode));
        } else {
            assert_eq!(got, Err(PhoneError::UnknownCountryCode), "{cc:?}");
        }
    }
    assert_eq!(
        PhoneNumber::from_parts("+44", "+44 7401 101801", &p),
        Err(PhoneError::MisplacedPlus { at: 0 })
    );
    assert_eq!(
        PhoneNumber::from_parts("+44", "07401 1O18O1", &p),
        Err(PhoneError::InvalidCharacter { ch: 'O', at: 7 })
    );
}

#[cfg(feature = "phonenumber")]
#[test]
fn the_services_split_forms_parse() {
    // Verifik (+507, Panama) and KGen (+91, India) send the country code apart.
    let p = PhonePolicy::default();
    let panama = PhoneNumber::from_parts("+507", "6123 4567", &p).expect("a Panamanian mobile");
    assert_eq!(panama.e164(), "+50761234567");
    assert_eq!(panama.region(), Some("PA"));
    assert_eq!(panama.national(), "61234567");
    let india = PhoneNumber::from_parts("+91", "98765 43210", &p).expect("an Indian mobile");
    assert_eq!(india.e164(), "+919876543210");
    assert_eq!(india.region(), Some("IN"));
    assert_eq!(parse("+91 98765 43210"), Ok(india));
    let us = PhoneNumber::from_parts("+1", "(202) 555-0123", &p).expect("a US number");
    assert_eq!(us.e164(), "+12025550123");
    assert_eq!(us.region(), Some("US"));
}

#[test]
fn the_guard_refuses_what_no_number_holds() {
    let e = |s: &str| parse(s).expect_err(s);
    assert_eq!(e(""), PhoneError::Empty);
    assert_eq!(e("    "), PhoneError::Empty);
    assert_eq!(e(&" ".repeat(65)), PhoneError::TooLong { max: 64 });
    assert_eq!(
        e(&format!("07401101801{}", " ".repeat(60))),
        PhoneError::TooLong { max: 64 }
    );
    // The phonenumber crate would read these letters as digits.
    assert_eq!(
        e("07401 1O18O1"),
        PhoneError::InvalidCharacter { ch: 'O', at: 7 }
    );
    assert_eq!(
        e("0740l101801"),
        PhoneError::InvalidCharacter { ch: 'l', at: 4 }
    );
    assert_eq!(
        e("+44 7401 101801 ext 5"),
        PhoneError::InvalidCharacter { ch: 'e', at: 16 }
    );
    assert_eq!(
        e("tel:+447401101801"),
        PhoneError::InvalidCharacter { ch: 't', at: 0 }
    );
    assert_eq!(
        e("07401\n101801"),
        PhoneError::InvalidCharacter { ch: '\n', at: 5 }
    );
    assert_eq!(
        e("07401101801\r"),
        PhoneError::InvalidCharacter { ch: '\r', at: 11 }
    );
    assert_eq!(
        e("07401\u{7f}101801"),
        PhoneError::InvalidCharacter {
            ch: '\u{7f}',
            at: 5
        }
    );
    // Non-ASCII digits and spaces: Arabic-Indic, fullwidth, no-break space.
    assert_eq!(
        e("٠٧٤٠١١٠١٨٠١"),
        PhoneError::InvalidCharacter { ch: '٠', at: 0 }
    );
    assert_eq!(
        e("０7401101801"),
        PhoneError::InvalidCharacter { ch: '０', at: 0 }
    );
    assert_eq!(
        e("07401\u{a0}101801"),
        PhoneError::InvalidCharacter {
            ch: '\u{a0}',
            at: 5
        }
    );
    assert_eq!(
        e("07401 101801#"),
        PhoneError::InvalidCharacter { ch: '#', at: 12 }
    );
    // Positions count characters, not bytes.
    assert_eq!(e("é0"), PhoneError::InvalidCharacter { ch: 'é', at: 0 });
    assert_eq!(e("0é"), PhoneError::InvalidCharacter { ch: 'é', at: 1 });
    // One `+`, before the first digit.
    assert_eq!(e("++447401101801"), PhoneError::MisplacedPlus { at: 1 });
    assert_eq!(e("+44 +7401101801"), PhoneError::MisplacedPlus { at: 4 });
    assert_eq!(e("07401101801+"), PhoneError::MisplacedPlus { at: 11 });
    assert_eq!(e("+"), PhoneError::Invalid);
    assert_eq!(e("-()-"), PhoneError::Invalid);
    let err = e("07401 1O18O1");
    assert_eq!(err.code(), "phone_invalid_character");
    assert_eq!(
        err.to_string(),
        "character 'O' at position 7 has no place in a phone number"
    );
}

#[test]
fn the_crown_dependencies_are_uk() {
    let uk = PhonePolicy::uk_only();
    for (input, region) in [
        ("07401 101801", "GB"),
        ("07781 123456", "GG"),
        ("07509 123456", "JE"),
        ("07624 123456", "IM"),
        ("+44 7624 123456", "IM"),
    ] {
        let n = PhoneNumber::parse(input, &uk).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(n.region(), Some(region), "{input}");
        assert_eq!(n.country_code(), 44);
    }
}

#[test]
fn refusals_are_distinct() {
    let uk = PhonePolicy::uk_only();
    assert_eq!(
        PhoneNumber::parse("+1 202 555 0123", &uk),
        Err(PhoneError::CountryNotAllowed { country_code: 1 })
    );
    assert_eq!(
        PhoneNumber::parse("+33 6 12 34 56 78", &uk),
        Err(PhoneError::CountryNotAllowed { country_code: 33 })
    );
    // A London landline and a pager cannot receive SMS.
    assert_eq!(parse("020 7031 3000"), Err(PhoneError::NotMobile));
    assert_eq!(parse("+44 20 7031 3000"), Err(PhoneError::NotMobile));
    assert_eq!(parse("07640 123456"), Err(PhoneError::NotMobile));
    // Ofcom's drama range is not allocated (the slim build, without the
    // metadata, only knows it is no mobile); a short number is no number.
    #[cfg(feature = "phonenumber")]
    assert_eq!(parse("07700 900123"), Err(PhoneError::Invalid));
    #[cfg(not(feature = "phonenumber"))]
    assert_eq!(parse("07700 900123"), Err(PhoneError::NotMobile));
    assert_eq!(parse("07401 10180"), Err(PhoneError::Invalid));
    assert_eq!(parse("07401 1018011"), Err(PhoneError::Invalid));
    assert_eq!(parse("+999 1234 5678"), Err(PhoneError::UnknownCountryCode));
    let codes: Vec<&str> = [
        PhoneError::Invalid,
        PhoneError::NotMobile,
        PhoneError::CountryNotAllowed { country_code: 1 },
    ]
    .iter()
    .map(PhoneError::code)
    .collect();
    assert_eq!(
        codes,
        [
            "phone_invalid",
            "phone_not_mobile",
            "phone_country_not_allowed"
        ]
    );
}

#[test]
fn a_landline_passes_when_the_policy_does_not_need_sms() {
    let any = PhonePolicy::default().require_mobile(false);
    assert!(!any.requires_mobile());
    #[cfg(feature = "phonenumber")]
    {
        let n = PhoneNumber::parse("020 7031 3000", &any).expect("a London landline");
        assert_eq!(n.e164(), "+442070313000");
        assert_eq!(n.region(), Some("GB"));
    }
    #[cfg(not(feature = "phonenumber"))]
    {
        let n = PhoneNumber::parse("020 7031 3000", &any).expect("a London landline");
        assert_eq!(n.e164(), "+442070313000");
    }
}

#[test]
fn the_policy_has_one_line_settings() {
    let p = PhonePolicy::default();
    assert_eq!(p.default_region(), Some("GB"));
    assert_eq!(p.allowed_country_codes(), None);
    assert!(p.allows(1) && p.allows(44));
    assert!(p.requires_mobile());
    let uk = PhonePolicy::uk_only();
    assert_eq!(uk.allowed_country_codes(), Some(&[44][..]));
    assert!(!uk.allows(1));
    let some = PhonePolicy::default().allow_only(&[353, 44, 44]);
    assert_eq!(some.allowed_country_codes(), Some(&[44, 353][..]));
    assert_eq!(some.clone().allow_all().allowed_country_codes(), None);
    let none = PhonePolicy::default().allow_only(&[]);
    assert_eq!(
        PhoneNumber::parse("07401 101801", &none),
        Err(PhoneError::CountryNotAllowed { country_code: 44 })
    );
    assert_eq!(
        PhonePolicy::default().with_default_region("ZZ"),
        Err(PhoneError::UnknownRegion)
    );
    assert_eq!(
        PhonePolicy::default().with_default_region("GBR"),
        Err(PhoneError::UnknownRegion)
    );
    let jersey = PhonePolicy::default()
        .with_default_region("je")
        .expect("Jersey is known");
    assert_eq!(jersey.default_region(), Some("JE"));
    assert_eq!(
        PhoneNumber::parse("07509 123456", &jersey).map(|n| n.region().map(str::to_owned)),
        Ok(Some("JE".to_owned()))
    );
}

#[test]
fn without_a_default_region_the_country_code_is_required() {
    let p = PhonePolicy::default().without_default_region();
    assert_eq!(p.default_region(), None);
    assert_eq!(
        PhoneNumber::parse("07401 101801", &p),
        Err(PhoneError::MissingCountryCode)
    );
    assert_eq!(
        PhoneNumber::parse("447401101801", &p),
        Err(PhoneError::MissingCountryCode)
    );
    assert_eq!(
        PhoneNumber::parse("+44 7401 101801", &p).map(|n| n.country_code()),
        Ok(44)
    );
    assert_eq!(
        PhoneNumber::from_parts("+44", "07401 101801", &p).map(|n| n.country_code()),
        Ok(44)
    );
}

#[cfg(feature = "phonenumber")]
#[test]
fn national_input_is_read_in_the_default_region() {
    let ireland = PhonePolicy::default()
        .with_default_region("IE")
        .expect("Ireland is known");
    let n = PhoneNumber::parse("087 123 4567", &ireland).expect("an Irish mobile");
    assert_eq!(n.e164(), "+353871234567");
    assert_eq!(n.region(), Some("IE"));
    // A UK number written internationally still parses.
    assert_eq!(
        PhoneNumber::parse("+44 7401 101801", &ireland).map(|n| n.country_code()),
        Ok(44)
    );
}

#[cfg(not(feature = "phonenumber"))]
#[test]
fn the_slim_build_checks_foreign_numbers_by_structure() {
    let p = PhonePolicy::default();
    let n = parse("+1 202 555 0123").expect("structurally a number");
    assert_eq!(n.e164(), "+12025550123");
    assert_eq!(n.region(), None);
    assert_eq!(parse("+1 202"), Err(PhoneError::Invalid));
    assert_eq!(parse("+999 1234 5678"), Err(PhoneError::UnknownCountryCode));
    assert_eq!(
        PhonePolicy::default().with_default_region("IE"),
        Err(PhoneError::UnknownRegion)
    );
    assert_eq!(
        PhoneNumber::from_parts("+507", "6123 4567", &p).map(|n| n.e164().to_owned()),
        Ok("+50761234567".to_owned())
    );
}

/// The differential tests: the crate's answer, and ours, for the same input.
#[cfg(feature = "phonenumber")]
mod differential {
    use super::*;
    use phonenumber::{Mode, Type, country};
    use rand_chacha::ChaCha20Rng;
    use rand_chacha::rand_core::{Rng, SeedableRng};

    /// An answer both sides can give: the number and region, or a refusal.
    #[derive(Debug, PartialEq, Eq)]
    enum Answer {
        Number(String, Option<String>),
        Invalid,
        NotMobile,
    }

    /// The input as the guard hands it on: `+` if it had one, then its
    /// digits. Separators carry no meaning in otpflow.
    fn canonical(input: &str) -> String {
        let plus = if input.contains('+') { "+" } else { "" };
        let digits: String = input.chars().filter(char::is_ascii_digit).collect();
        format!("{plus}{digits}")
    }

    /// The `phonenumber` crate alone, on the canonical text of the input.
    fn crate_answer(input: &str, region: country::Id) -> Answer {
        let Ok(n) = phonenumber::parse(Some(region), canonical(input)) else {
            return Answer::Invalid;
        };
        if !n.is_valid() {
            return Answer::Invalid;
        }
        match n.number_type(&phonenumber::metadata::DATABASE) {
            Type::Mobile | Type::FixedLineOrMobile => Answer::Number(
                n.format().mode(Mode::E164).to_string(),
                n.country().id().map(|id| id.as_ref().to_owned()),
            ),
            _ => Answer::NotMobile,
        }
    }

    fn our_answer(input: &str, policy: &PhonePolicy) -> Answer {
        match PhoneNumber::parse(input, policy) {
            Ok(n) => Answer::Number(n.e164().to_owned(), n.region().map(str::to_owned)),
            Err(PhoneError::Invalid | PhoneError::UnknownCountryCode) => Answer::Invalid,
            Err(PhoneError::NotMobile) => Answer::NotMobile,
            Err(e) => panic!("{input:?}: unexpected {e:?}"),
        }
    }

    fn pick<'a, T>(rng: &mut ChaCha20Rng, items: &'a [T]) -> &'a T {
        let i = usize::try_from(rng.next_u32()).expect("u32 fits usize") % items.len();
        &items[i]
    }

    /// Writes `digits` the way people do: random separators between them,
    /// sometimes spaces around.
    fn punctuate(rng: &mut ChaCha20Rng, plus: bool, digits: &str) -> String {
        const SEPARATORS: [&str; 9] = ["", "", "", "", " ", " ", "-", ".", "/"];
        let mut out = String::new();
        if rng.next_u32().is_multiple_of(8) {
            out.push(' ');
        }
        if plus {
            out.push('+');
        }
        let bytes = digits.as_bytes();
        for (i, &d) in bytes.iter().enumerate() {
            out.push(char::from(d));
            if i + 1 < bytes.len() && rng.next_u32().is_multiple_of(3) {
                let separator: &&str = pick(rng, &SEPARATORS);
                out.push_str(separator);
            }
        }
        if rng.next_u32().is_multiple_of(8) {
            out.push_str("  ");
        }
        out
    }

    /// One way of writing the UK national significant number `nsn`.
    fn uk_form(rng: &mut ChaCha20Rng, nsn: &str) -> String {
        match rng.next_u32() % 11 {
            0 => punctuate(rng, false, &format!("0{nsn}")),
            1 => format!("0{} {}", &nsn[..4], &nsn[4..]),
            2 => punctuate(rng, true, &format!("44{nsn}")),
            3 => format!("+44 (0){} {}", &nsn[..4], &nsn[4..]),
            4 => format!("+44 (0) {nsn}"),
            5 => punctuate(rng, false, &format!("0044{nsn}")),
            6 => punctuate(rng, false, &format!("44{nsn}")),
            7 => punctuate(rng, true, &format!("440{nsn}")),
            8 => format!("(0{}) {}", &nsn[..4], &nsn[4..]),
            9 => punctuate(rng, false, nsn),
            _ => punctuate(rng, false, &format!("00440{nsn}")),
        }
    }

    fn digits(rng: &mut ChaCha20Rng, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + u8::try_from(rng.next_u32() % 10).expect("a digit")))
            .collect()
    }

    fn agree(input: &str, policy: &PhonePolicy, region: country::Id) {
        let ours = our_answer(input, policy);
        let theirs = crate_answer(input, region);
        assert_eq!(ours, theirs, "input {input:?} (default region {region:?})");
    }

    /// Why the crate reads the canonical text and not the input: on its own
    /// it answers differently for the same digits punctuated differently,
    /// which would break "two inputs for the same number are equal".
    #[test]
    fn the_crate_alone_is_punctuation_sensitive() {
        let raw = |s: &str| phonenumber::parse(Some(country::Id::GB), s).is_ok();
        assert!(raw("+447000703051") && raw(" +447.000703051"));
        assert!(!raw("+447.000703051"));
        assert!(raw("+4407142625349") && !raw("+44/07142625-349"));
        // otpflow gives one answer for all of them.
        let p = PhonePolicy::default().require_mobile(false);
        let parse = |s: &str| PhoneNumber::parse(s, &p).map(|n| n.e164().to_owned());
        assert_eq!(parse("+447.000703051"), parse(" +447000703051"));
        assert_eq!(parse("+44/07142625-349"), Ok("+447142625349".to_owned()));
    }

    /// Every `07…` prefix of six digits (all 100,000), each with a random
    /// tail and a random written form.
    #[test]
    fn every_07_prefix_agrees_with_the_crate() {
        let policy = PhonePolicy::default();
        let mut rng = ChaCha20Rng::seed_from_u64(0x07_07);
        let mut accepted = 0;
        for prefix in 0..100_000u32 {
            let nsn = format!("7{prefix:05}{}", digits(&mut rng, 4));
            let input = uk_form(&mut rng, &nsn);
            if let Answer::Number(..) = our_answer(&input, &policy) {
                accepted += 1;
            }
            agree(&input, &policy, country::Id::GB);
        }
        // Most of the 07 range is allocated to mobiles: the test is not vacuous.
        assert!(accepted > 60_000, "only {accepted} accepted");
    }

    /// Near misses: wrong lengths, other leading digits, odd prefixes and
    /// doubled trunk zeros, written every way.
    #[test]
    fn near_misses_agree_with_the_crate() {
        let policy = PhonePolicy::default();
        let mut rng = ChaCha20Rng::seed_from_u64(0x4e4d);
        let heads = [
            "", "0", "00", "44", "440", "4400", "0044", "00440", "004400", "4", "04", "044",
            "0440", "000", "1", "3", "45", "353", "1800200", "180020",
        ];
        for _ in 0..25_000 {
            let lead = pick(
                &mut rng,
                &["7", "7", "7", "1", "2", "3", "5", "8", "9", "0", "6", "4"],
            );
            let len = *pick(&mut rng, &[8usize, 9, 9, 10, 10, 10, 11, 12]);
            let body = format!("{lead}{}", digits(&mut rng, len - 1));
            let head = pick(&mut rng, &heads);
            let plus = rng.next_u32().is_multiple_of(3);
            let input = punctuate(&mut rng, plus, &format!("{head}{body}"));
            agree(&input, &policy, country::Id::GB);
        }
    }

    /// The Crown Dependencies as default regions read national input alike.
    #[test]
    fn crown_dependency_regions_agree_with_the_crate() {
        let mut rng = ChaCha20Rng::seed_from_u64(0xc0de);
        for (code, id) in [
            ("GG", country::Id::GG),
            ("JE", country::Id::JE),
            ("IM", country::Id::IM),
        ] {
            let policy = PhonePolicy::default()
                .with_default_region(code)
                .expect("a UK region");
            for _ in 0..5_000 {
                let nsn = format!("7{}", digits(&mut rng, 9));
                let input = uk_form(&mut rng, &nsn);
                agree(&input, &policy, id);
            }
        }
    }

    /// Numbers of other countries, whole and split, go to the crate as they
    /// are: both sides must give one answer.
    #[test]
    fn international_numbers_agree_with_the_crate() {
        let policy = PhonePolicy::default();
        let mut rng = ChaCha20Rng::seed_from_u64(0x1234);
        let codes = [
            "1", "33", "49", "91", "353", "507", "52", "81", "86", "234", "7", "61",
        ];
        for _ in 0..3_000 {
            let cc = pick(&mut rng, &codes);
            let len = *pick(&mut rng, &[7usize, 8, 9, 10, 10, 11]);
            let national = digits(&mut rng, len);
            let input = punctuate(&mut rng, true, &format!("{cc}{national}"));
            agree(&input, &policy, country::Id::GB);
            let split = PhoneNumber::from_parts(&format!("+{cc}"), &national, &policy);
            let whole = PhoneNumber::parse(&format!("+{cc}{national}"), &policy);
            assert_eq!(split, whole, "+{cc} {national}");
        }
    }

    #[test]
    fn the_assigned_country_codes_are_the_crates() {
        let p = PhonePolicy::default().require_mobile(false);
        for code in 1..1000u16 {
            let known = phonenumber::metadata::DATABASE.by_code(&code).is_some();
            let ours = PhoneNumber::from_parts(&format!("+{code}"), "1", &p);
            assert_eq!(
                ours != Err(PhoneError::UnknownCountryCode),
                known,
                "+{code}: {ours:?}"
            );
        }
    }

    /// Regenerates the fast path's table from the crate (run with
    /// `cargo test --test phone -- --ignored --nocapture uk_mobile_table`),
    /// and checks it against the fast path with a second tail per prefix.
    #[test]
    #[ignore = "slow: prints the table src/phone/uk.rs holds"]
    fn uk_mobile_table() {
        let policy = PhonePolicy::default();
        let mut runs: Vec<(u32, u32, String)> = Vec::new();
        for prefix in 700_000..800_000u32 {
            let mut region = None;
            for tail in ["0000", "9999", "5555", "1234", "8071", "3462"] {
                let input = format!("+44{prefix}{tail}");
                let answer = match crate_answer(&input, country::Id::GB) {
                    Answer::Number(_, r) => r,
                    _ => None,
                };
                let ours = match our_answer(&input, &policy) {
                    Answer::Number(_, r) => r,
                    _ => None,
                };
                assert_eq!(answer, ours, "{input}");
                if let Some(previous) = &region {
                    assert_eq!(previous, &answer, "the tail matters at {prefix}");
                }
                region = Some(answer);
            }
            let Some(Some(region)) = region else { continue };
            match runs.last_mut() {
                Some((_, end, r)) if *end == prefix && *r == region => *end = prefix + 1,
                _ => runs.push((prefix, prefix + 1, region)),
            }
        }
        for (start, end, region) in runs {
            println!("    Range {{ start: {start}, end: {end}, region: Region::{region} }},");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// Strings of the phone alphabet: the crate and we agree.
        #[test]
        fn phone_alphabet_strings_agree(input in "[+]?[0-9 ().\\-/]{0,24}") {
            prop_assume!(input.matches('+').count() <= 1);
            prop_assume!(input.chars().any(|c| c.is_ascii_digit()));
            prop_assume!(input.trim_matches(' ').len() == input.trim().len());
            let ours = our_answer(&input, &PhonePolicy::default());
            prop_assert_eq!(ours, crate_answer(&input, country::Id::GB));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4_000))]

    /// Nothing panics on any string, and what parses is canonical.
    #[test]
    fn parse_never_panics(input in any::<String>()) {
        check(PhoneNumber::parse(&input, &PhonePolicy::default()));
        check(PhoneNumber::parse(&input, &PhonePolicy::default().require_mobile(false)));
        check(PhoneNumber::parse(&input, &PhonePolicy::default().without_default_region()));
    }

    #[test]
    fn parse_never_panics_on_near_numbers(input in "[+]?[0-9 ()+.\\-/a-zO\u{0}\u{a0}٠]{0,70}") {
        check(PhoneNumber::parse(&input, &PhonePolicy::default()));
        check(PhoneNumber::parse(&input, &PhonePolicy::default().require_mobile(false)));
    }

    #[test]
    fn from_parts_never_panics(cc in any::<String>(), national in any::<String>()) {
        check(PhoneNumber::from_parts(&cc, &national, &PhonePolicy::default()));
    }

    #[test]
    fn from_parts_never_panics_on_near_numbers(
        cc in "[+]?[0-9 ]{0,5}",
        national in "[0-9 ()+.\\-]{0,70}",
    ) {
        check(PhoneNumber::from_parts(&cc, &national, &PhonePolicy::default().require_mobile(false)));
    }
}

/// What holds of every answer: a number is canonical E.164 and parses back
/// to itself; an error has a code and a message.
fn check(result: Result<PhoneNumber, PhoneError>) {
    match result {
        Ok(n) => {
            let e164 = n.e164();
            assert!(e164.starts_with('+'), "{e164}");
            assert!((2..=16).contains(&e164.len()), "{e164}");
            assert!(n.digits().bytes().all(|b| b.is_ascii_digit()), "{e164}");
            assert!(n.digits().ends_with(n.national()), "{e164}");
            assert!(
                n.digits().starts_with(&n.country_code().to_string()),
                "{e164}"
            );
            let again = PhoneNumber::parse(e164, &PhonePolicy::default().require_mobile(false));
            assert_eq!(again, Ok(n), "{e164} does not parse back to itself");
        }
        Err(e) => {
            assert!(e.code().starts_with("phone_"));
            assert!(!e.to_string().is_empty());
        }
    }
}
