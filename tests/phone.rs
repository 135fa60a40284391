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
        assert_eq!(n.to_string(), "+44 7401 ••• 801");
        assert_eq!(format!("{n:?}"), "PhoneNumber(+44 7401 ••• 801)");
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
    // Each input and the character it is refused for, with its position.
    let refused = [
        // The phonenumber crate would read these letters as digits.
        ("07401 1O18O1", 'O', 7),
        ("0740l101801", 'l', 4),
        ("+44 7401 101801 ext 5", 'e', 16),
        ("tel:+447401101801", 't', 0),
        ("07401\n101801", '\n', 5),
        ("07401101801\r", '\r', 11),
        ("07401\u{7f}101801", '\u{7f}', 5),
        // Non-ASCII digits and spaces: Arabic-Indic, fullwidth, no-break space.
        ("٠٧٤٠١١٠١٨٠١", '٠', 0),
        ("０7401101801", '０', 0),
        ("07401\u{a0}101801", '\u{a0}', 5),
        ("07401 101801#", '#', 12),
    ];
    for (input, ch, at) in refused {
        assert_eq!(
            e(input),
            PhoneError::InvalidCharacter { ch, at },
            "{input:?}"
        );
    }
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

/// An example number of `region`'s `kind` from the metadata, in E.164.
#[cfg(feature = "phonenumber")]
fn example(
    region: &str,
    kind: fn(&phonenumber::metadata::Descriptors) -> Option<&phonenumber::metadata::Descriptor>,
) -> String {
    let plan = phonenumber::metadata::DATABASE
        .by_id(region)
        .expect("a region");
    let number = kind(plan.descriptors())
        .and_then(|d| d.example())
        .expect("an example");
    format!("+{}{number}", plan.country_code())
}

#[cfg(feature = "phonenumber")]
#[test]
fn regions_narrow_a_calling_code() {
    use phonenumber::metadata::Descriptors;
    let us_ca = PhonePolicy::default()
        .allow_only(&[1])
        .allow_regions(&["US", "ca", "US"])
        .expect("known regions");
    assert_eq!(us_ca.allowed_regions(), Some(vec!["CA", "US"]));
    for region in ["US", "CA"] {
        let n = PhoneNumber::parse(&example(region, Descriptors::mobile), &us_ca)
            .unwrap_or_else(|e| panic!("{region}: {e:?}"));
        assert_eq!(n.region(), Some(region));
    }
    // The pumping destinations of the North American plan stay out.
    for region in ["JM", "DO", "AG", "BS", "GD"] {
        let number = example(region, Descriptors::mobile);
        assert_eq!(
            PhoneNumber::parse(&number, &us_ca),
            Err(PhoneError::RegionNotAllowed),
            "{region} {number}"
        );
        assert!(
            PhoneNumber::parse(&number, &PhonePolicy::default()).is_ok(),
            "{number}"
        );
    }
    // Other codes are still kept out by the calling-code list.
    assert_eq!(
        PhoneNumber::parse(&example("FR", Descriptors::mobile), &us_ca),
        Err(PhoneError::CountryNotAllowed { country_code: 33 })
    );
    // A deny-list keeps the rest open.
    let no_caribbean = PhonePolicy::default()
        .deny_regions(&["JM", "DO", "AG"])
        .expect("known regions");
    assert_eq!(no_caribbean.denied_regions(), ["AG", "DO", "JM"]);
    assert_eq!(
        PhoneNumber::parse(&example("JM", Descriptors::mobile), &no_caribbean),
        Err(PhoneError::RegionNotAllowed)
    );
    assert!(PhoneNumber::parse(&example("US", Descriptors::mobile), &no_caribbean).is_ok());
    assert!(PhoneNumber::parse("07401 101801", &no_caribbean).is_ok());
    for bad in ["UK", "XX", "G", "GBR", "", "1A"] {
        assert_eq!(
            PhonePolicy::default().allow_regions(&["US", bad]),
            Err(PhoneError::UnknownRegion),
            "{bad:?}"
        );
        assert_eq!(
            PhonePolicy::default().deny_regions(&[bad]),
            Err(PhoneError::UnknownRegion),
            "{bad:?}"
        );
    }
    let err = PhoneError::RegionNotAllowed;
    assert_eq!(err.code(), "phone_region_not_allowed");
    assert_eq!(
        err.to_string(),
        "phone numbers of this region are not accepted"
    );
}

#[cfg(feature = "phonenumber")]
#[test]
fn non_geographic_numbers_need_a_policy_that_names_them() {
    let any = PhonePolicy::default().require_mobile(false);
    let mut seen = 0;
    for code in [800u16, 808, 870, 878, 881, 882, 883, 888, 979] {
        let plans = phonenumber::metadata::DATABASE
            .by_code(&code)
            .expect("assigned");
        for plan in plans {
            let d = plan.descriptors();
            let kinds = [
                d.mobile(),
                d.toll_free(),
                d.premium_rate(),
                d.shared_cost(),
                d.voip(),
                d.personal_number(),
                d.uan(),
            ];
            for number in kinds.iter().flatten().filter_map(|k| k.example()) {
                seen += 1;
                let input = format!("+{code}{number}");
                for policy in [PhonePolicy::default(), any.clone(), any.clone().allow_all()] {
                    assert_eq!(
                        PhoneNumber::parse(&input, &policy),
                        Err(PhoneError::NonGeographic { country_code: code }),
                        "{input}"
                    );
                }
                assert_eq!(
                    PhoneNumber::parse(&input, &any.clone().allow_only(&[44, 1])),
                    Err(PhoneError::CountryNotAllowed { country_code: code }),
                    "{input}"
                );
                let named = any.clone().allow_only(&[44, code]);
                let n =
                    PhoneNumber::parse(&input, &named).unwrap_or_else(|e| panic!("{input}: {e:?}"));
                assert_eq!((n.country_code(), n.region()), (code, None));
                // Region lists govern geographic numbers only.
                let named_gb = named.clone().allow_regions(&["GB"]).expect("GB");
                assert_eq!(PhoneNumber::parse(&input, &named_gb), Ok(n));
            }
        }
    }
    assert!(seen >= 9, "{seen}");
    // Satellite phones "as mobiles" by default: no more.
    assert_eq!(
        PhoneNumber::parse("+881 6 1234 5678", &PhonePolicy::default())
            .map(|n| n.e164().to_owned()),
        Err(PhoneError::NonGeographic { country_code: 881 })
    );
    let err = PhoneError::NonGeographic { country_code: 881 };
    assert_eq!(err.code(), "phone_non_geographic");
    assert_eq!(
        err.to_string(),
        "non-geographic numbers (+881) are not accepted"
    );
}

/// Issue 15 item 6: without metadata, one foreign number written with or
/// without its trunk prefix is still one subject.
#[cfg(not(feature = "phonenumber"))]
#[test]
fn the_slim_build_strips_a_trunk_prefix_where_the_plan_has_one() {
    let any = PhonePolicy::default().require_mobile(false);
    let e164 = |s: &str| PhoneNumber::parse(s, &any).map(|n| n.e164().to_owned());
    for (forms, want) in [
        (
            &[
                "+33 6 12 34 56 78",
                "+33 (0)6 12 34 56 78",
                "0033 (0)6 12 34 56 78",
            ][..],
            "+33612345678",
        ),
        (
            &["+49 1512 3456789", "+49 (0)1512 3456789"][..],
            "+4915123456789",
        ),
        (
            &["+353 85 012 3456", "+353 (0)85 012 3456"][..],
            "+353850123456",
        ),
        (
            &[
                "+1 202 555 0123",
                "+1 1 202 555 0123",
                "+1 (1) 202-555-0123",
            ][..],
            "+12025550123",
        ),
        (
            &["+44 20 7031 3000", "+44 (0)20 7031 3000"][..],
            "+442070313000",
        ),
    ] {
        for form in forms {
            assert_eq!(e164(form).as_deref(), Ok(want), "{form}");
            let split_at = form.find(' ').expect("a space");
            let split = PhoneNumber::from_parts(&form[..split_at], &form[split_at..], &any);
            if form.starts_with('+') {
                assert_eq!(
                    split.map(|n| n.e164().to_owned()).as_deref(),
                    Ok(want),
                    "{form}"
                );
            }
        }
    }
    // A trunk prefix written twice is no number.
    for form in [
        "+33 00 6 12 34 56 78",
        "+33 000 6 12 34 56 78",
        "+49 (0)0 1512 3456789",
        "+353 00 85 012 3456",
        "+1 1 1 202 555 0123",
        "+44 00 20 7031 3000",
    ] {
        assert_eq!(e164(form), Err(PhoneError::Invalid), "{form}");
    }
    // Where the plan's numbers may begin with the digit, it is kept.
    assert_eq!(e164("+39 02 1234 5678").as_deref(), Ok("+390212345678"));
    assert_eq!(e164("+225 01 23 45 67 89").as_deref(), Ok("+2250123456789"));
    assert_eq!(e164("+241 06 03 12 34").as_deref(), Ok("+24106031234"));
    assert_eq!(e164("+7 800 123 4567").as_deref(), Ok("+78001234567"));
}

#[cfg(not(feature = "phonenumber"))]
#[test]
fn the_slim_build_knows_only_uk_regions() {
    let gb = PhonePolicy::default()
        .allow_regions(&["GB"])
        .expect("two letters");
    assert!(parse("07401 101801").is_ok());
    assert!(PhoneNumber::parse("07401 101801", &gb).is_ok());
    assert_eq!(
        PhoneNumber::parse("+1 202 555 0123", &gb),
        Err(PhoneError::RegionNotAllowed)
    );
    // A deny-list fails closed where the region is unknown.
    let no_jm = PhonePolicy::default()
        .deny_regions(&["JM"])
        .expect("two letters");
    assert_eq!(
        PhoneNumber::parse("+1 202 555 0123", &no_jm),
        Err(PhoneError::RegionNotAllowed)
    );
    assert!(PhoneNumber::parse("07401 101801", &no_jm).is_ok());
    assert_eq!(
        PhoneNumber::parse("+881 6 1234 5678", &PhonePolicy::default()),
        Err(PhoneError::NonGeographic { country_code: 881 })
    );
    assert_eq!(
        PhonePolicy::default().allow_regions(&["GBR"]),
        Err(PhoneError::UnknownRegion)
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
        // The crate reads every number in the plan of the region it is
        // given: it is given one only for national input (GB's
        // international prefix `00` is read as a `+` here).
        let mut text = canonical(input);
        if let Some(rest) = text.strip_prefix("00").filter(|r| !r.starts_with('0')) {
            text = format!("+{rest}");
        }
        let region = (!text.starts_with('+')).then_some(region);
        let Ok(n) = phonenumber::parse(region, text) else {
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

    /// GB's trunk prefixes (`nationalPrefixForParsing="0|180020"`).
    const GB_TRUNK: [&str; 2] = ["0", "180020"];

    /// The written digits after the international prefix (`+` or GB's
    /// `00`), or GB's own code written without one (`44 …`), if the input
    /// has a calling code.
    fn international_digits(input: &str) -> Option<String> {
        let text = canonical(input);
        if let Some(rest) = text.strip_prefix('+') {
            return Some(rest.to_owned());
        }
        if text.starts_with("44") && text.len() > 10 {
            return Some(text);
        }
        text.strip_prefix("00").map(str::to_owned)
    }

    /// The calling code that starts `digits` and the national digits after
    /// it, by the crate's metadata.
    fn split_code(digits: &str) -> Option<(u16, &str)> {
        (1..=3.min(digits.len())).find_map(|len| {
            let code: u16 = digits[..len].parse().ok()?;
            let known = !digits.starts_with('0')
                && phonenumber::metadata::DATABASE.by_code(&code).is_some();
            known.then(|| (code, &digits[len..]))
        })
    }

    /// Whether an international input's national digits start with a `0`
    /// or with its country's national prefix (or its calling code with a
    /// `0`): where the crate's own parse goes wrong.
    fn touches_a_prefix(input: &str) -> bool {
        let Some(digits) = international_digits(input) else {
            // National input in GB: a trunk prefix (GB's are `0` and
            // `180020`) written twice.
            let text = canonical(input);
            return GB_TRUNK.iter().any(|first| {
                text.strip_prefix(first)
                    .is_some_and(|rest| GB_TRUNK.iter().any(|p| rest.starts_with(p)))
            });
        };
        let Some((code, national)) = split_code(&digits) else {
            return digits.starts_with('0');
        };
        let prefixes = phonenumber::metadata::DATABASE
            .by_code(&code)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| m.national_prefix());
        national.starts_with('0') || prefixes.into_iter().any(|p| national.starts_with(p))
    }

    /// Whether `e164` is the number written in `input`, with at most one
    /// leading digit of its national part dropped as a trunk prefix.
    fn at_most_one_trunk_prefix_dropped(input: &str, e164: &str) -> bool {
        let Some(digits) = international_digits(input) else {
            let text = canonical(input);
            return GB_TRUNK.iter().any(|p| {
                text.strip_prefix(p)
                    .is_some_and(|rest| e164 == format!("+44{rest}"))
            });
        };
        let Some((code, national)) = split_code(&digits) else {
            return false;
        };
        let written = format!("+{code}{national}");
        e164 == written
            || national
                .get(1..)
                .is_some_and(|rest| e164 == format!("+{code}{rest}"))
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
        if touches_a_prefix(input) {
            // The crate strips prefixes by other plans' rules (see
            // `the_crates_own_parse_reads_prefixes_wrongly`): here it is no
            // oracle. What must hold: a refusal, or the written number
            // less at most one trunk prefix, never another number.
            if let Answer::Number(e164, _) = &ours {
                assert!(
                    at_most_one_trunk_prefix_dropped(input, e164),
                    "{input:?} became {e164}"
                );
            }
        } else {
            assert_eq!(ours, theirs, "input {input:?} (default region {region:?})");
        }
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

    /// Every example number libphonenumber's metadata carries (the crate
    /// bundles them): every region, the non-geographic entities, every
    /// number type. Written `+CC NNN` and in E.164, each is exactly that
    /// number, of a region that shares its calling code, and parses back
    /// from its E.164; written with the plan's trunk prefix after the code
    /// (`+33 (0)6 …`) or nationally in its region, it is that number or
    /// refused, never another one.
    #[test]
    fn every_example_number_is_itself() {
        let any = PhonePolicy::default().require_mobile(false);
        let (mut examples, mut trunk_forms, mut national_forms) = (0, 0, 0);
        for code in 1..1000u16 {
            let plans = phonenumber::metadata::DATABASE
                .by_code(&code)
                .unwrap_or_default();
            let regions: Vec<&str> = plans.iter().map(|m| m.id()).collect();
            for plan in &plans {
                let d = plan.descriptors();
                let types = [
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
                ];
                // Non-geographic numbers need a policy that names them.
                let any = if plan.id() == "001" {
                    any.clone().allow_only(&[code])
                } else {
                    any.clone()
                };
                for example in types.iter().flatten().filter_map(|t| t.example()) {
                    examples += 1;
                    let e164 = format!("+{code}{example}");
                    for form in [e164.clone(), format!("+{code} {example}")] {
                        let n = PhoneNumber::parse(&form, &any)
                            .unwrap_or_else(|e| panic!("{} example {form:?}: {e:?}", plan.id()));
                        assert_eq!(n.e164(), e164, "{} example {form:?}", plan.id());
                        assert_eq!(n.national(), example);
                        match n.region() {
                            Some(region) => assert!(regions.contains(&region), "{e164}: {region}"),
                            None => assert_eq!(plan.id(), "001", "{e164} has no region"),
                        }
                        assert_eq!(
                            PhoneNumber::parse(n.e164(), &any),
                            Ok(n),
                            "{e164} parses back"
                        );
                    }
                    let same_or_refused =
                        |form: &str, policy: &PhonePolicy| match PhoneNumber::parse(form, policy) {
                            Ok(n) => {
                                assert_eq!(
                                    n.e164(),
                                    e164,
                                    "{} {form:?} is another number",
                                    plan.id()
                                );
                                true
                            }
                            Err(_) => false,
                        };
                    if let Some(prefix) = plan.national_prefix() {
                        trunk_forms += usize::from(same_or_refused(
                            &format!("+{code} ({prefix}){example}"),
                            &any,
                        ));
                    }
                    if let Ok(home) = any.clone().with_default_region(plan.id()) {
                        let prefix = plan.national_prefix().unwrap_or("");
                        national_forms +=
                            usize::from(same_or_refused(&format!("{prefix}{example}"), &home));
                    }
                }
            }
        }
        // The metadata of phonenumber =0.3.10 (libphonenumber 9.0.33).
        assert_eq!(examples, 1144);
        assert!(
            trunk_forms > 650 && national_forms > 1050,
            "{trunk_forms} {national_forms}"
        );
    }

    /// The numbers of issue 15 item 9, one by one: a leading `0` after the
    /// calling code is the number's own digit where the plan has no trunk
    /// prefix (or one the `0` does not match).
    #[test]
    fn a_leading_zero_is_a_trunk_prefix_only_where_the_plan_says_so() {
        let any = PhonePolicy::default().require_mobile(false);
        for (input, e164, region) in [
            ("+225 01 23 45 67 89", "+2250123456789", "CI"),
            ("+229 01 95 12 34 56", "+2290195123456", "BJ"),
            ("+242 06 123 4567", "+242061234567", "CG"),
            ("+241 06 03 12 34", "+24106031234", "GA"),
            ("+39 02 1234 5678", "+390212345678", "IT"),
            ("+39 06 698 12345", "+390669812345", "VA"),
            ("+378 0549 886377", "+3780549886377", "SM"),
            ("+47 02000", "+4702000", "NO"),
            // A trunk prefix where the plan has one: dropped once.
            ("+33 (0)6 12 34 56 78", "+33612345678", "FR"),
            ("+49 (0)1512 3456789", "+4915123456789", "DE"),
            ("+353 (0)85 012 3456", "+353850123456", "IE"),
            ("+1 1 202 555 0123", "+12025550123", "US"),
            ("+7 8 800 123 4567", "+78001234567", "RU"),
            ("+7 800 123 4567", "+78001234567", "RU"),
        ] {
            let n = PhoneNumber::parse(input, &any).unwrap_or_else(|e| panic!("{input}: {e:?}"));
            assert_eq!((n.e164(), n.region()), (e164, Some(region)), "{input}");
            assert_eq!(PhoneNumber::parse(e164, &any), Ok(n), "{e164} parses back");
        }
        // Gabon's `06…` mobile and its `6…` neighbour are two numbers.
        assert_ne!(
            PhoneNumber::parse("+241 06031234", &any),
            PhoneNumber::parse("+241 6031234", &any)
        );
        // A trunk prefix written twice, or where the plan has none, is no
        // number: one number is never several subjects.
        for input in [
            "+33 00 6 12 34 56 78",
            "+33 000 6 12 34 56 78",
            "+49 00 1512 3456789",
            "+44 00 7401 101801",
            "+0 44 7401 101801",
        ] {
            assert!(PhoneNumber::parse(input, &any).is_err(), "{input}");
        }
        // The fuzzer's find: both forms give one answer.
        assert_eq!(
            PhoneNumber::parse("+470(007010", &any).map(|n| n.e164().to_owned()),
            PhoneNumber::parse("+470007010", &any).map(|n| n.e164().to_owned()),
        );
        assert_ne!(
            PhoneNumber::parse("+470(007010", &any).map(|n| n.e164().to_owned()),
            Ok("+4707010".to_owned())
        );
    }

    /// Where the crate's own `parse` goes wrong: why otpflow reads prefixes
    /// itself and the crate is no oracle for them.
    #[test]
    fn the_crates_own_parse_reads_prefixes_wrongly() {
        let e164 = |region, s: &str| {
            phonenumber::parse(region, s)
                .ok()
                .filter(phonenumber::PhoneNumber::is_valid)
                .map(|n| n.format().mode(Mode::E164).to_string())
        };
        // With a default region, its trunk prefix is stripped from other
        // countries' numbers.
        assert_eq!(e164(Some(country::Id::GB), "+2250123456789"), None);
        assert_eq!(
            e164(Some(country::Id::GB), "+24106031234").as_deref(),
            Some("+2416031234")
        );
        // A national prefix is stripped twice.
        assert_eq!(e164(None, "+78001234567"), None);
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
            prop_assume!(!touches_a_prefix(&input));
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

/// Every formatted form of a number, as a log line would carry it.
fn formatted(n: &PhoneNumber) -> [String; 6] {
    [
        n.to_string(),
        format!("{n:?}"),
        format!("{n:#?}"),
        format!("{:>40}", n),
        n.masked().to_string(),
        format!("{:?}", n.masked()),
    ]
}

/// No formatted form holds the whole number in any of its spellings.
fn assert_masked(n: &PhoneNumber) {
    for shown in formatted(n) {
        for whole in [n.e164(), n.digits(), n.national()] {
            assert!(!shown.contains(whole), "{shown:?} shows {whole}");
        }
        let digits: String = shown.chars().filter(char::is_ascii_digit).collect();
        assert!(
            digits.len() < n.digits().len(),
            "{shown:?} shows as many digits as {} has",
            n.e164()
        );
    }
}

#[test]
fn numbers_are_masked_in_display_and_debug() {
    let n = parse("07401 101801").expect("a UK mobile");
    assert_eq!(n.masked().to_string(), "+44 7401 ••• 801");
    assert_eq!(format!("{:?}", n.masked()), "+44 7401 ••• 801");
    assert_eq!(format!("{n:?}"), "PhoneNumber(+44 7401 ••• 801)");
    assert_eq!(format!("{n}"), "+44 7401 ••• 801");
    // The whole number only through the accessors.
    assert_eq!(n.e164(), "+447401101801");
    #[cfg(feature = "phonenumber")]
    for (input, masked) in [
        ("+1 202 555 0123", "+1 2025 ••• 123"),
        ("+33 6 12 34 56 78", "+33 612 ••• 678"),
        ("+47 02000", "+47 0 ••• 0"),
        ("+39 02 1234 5678", "+39 0212 ••• 678"),
        ("+882 34 8512 34567", "+882 3485 ••• 567"),
    ] {
        let any = PhonePolicy::default()
            .require_mobile(false)
            .allow_only(&[1, 33, 39, 47, 882]);
        let n = PhoneNumber::parse(input, &any).unwrap_or_else(|e| panic!("{input}: {e:?}"));
        assert_eq!(n.to_string(), masked, "{input}");
        assert_masked(&n);
    }
    assert_masked(&n);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    /// Random valid UK mobiles: no `Display` or `Debug` shows the number.
    #[test]
    fn no_formatted_uk_mobile_shows_the_number(nsn in "7[0-9]{9}") {
        if let Ok(n) = PhoneNumber::parse(&format!("+44{nsn}"), &PhonePolicy::default()) {
            assert_masked(&n);
        }
    }
}

/// Example numbers of the plans' common types, with their calling codes.
#[cfg(feature = "phonenumber")]
static EXAMPLES: std::sync::LazyLock<Vec<(u16, String)>> = std::sync::LazyLock::new(|| {
    (1..1000u16)
        .flat_map(|code| {
            phonenumber::metadata::DATABASE
                .by_code(&code)
                .unwrap_or_default()
                .into_iter()
                .flat_map(move |plan| {
                    let d = plan.descriptors();
                    [d.fixed_line(), d.mobile(), d.toll_free(), d.voip(), d.uan()]
                        .into_iter()
                        .flatten()
                        .filter_map(|t| t.example().map(|e| (code, e.to_owned())))
                        .collect::<Vec<_>>()
                })
        })
        .collect()
});

#[cfg(feature = "phonenumber")]
proptest! {
    // Few cases: each random plan costs the crate's regex cache a compile.
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Random valid numbers of every plan (an example number of a random
    /// region and type with random last digits): no `Display` or `Debug`
    /// shows the number.
    #[test]
    fn no_formatted_number_shows_the_number(pick in any::<u32>(), tail in "[0-9]{1,4}") {
        let examples = &*EXAMPLES;
        let (code, example) = &examples[usize::try_from(pick).expect("fits") % examples.len()];
        let keep = example.len().saturating_sub(tail.len());
        let national = format!("{}{}", &example[..keep], &tail[..example.len() - keep]);
        let any = PhonePolicy::default().require_mobile(false).allow_only(&[*code]);
        if let Ok(n) = PhoneNumber::parse(&format!("+{code}{national}"), &any) {
            assert_masked(&n);
        }
    }
}
