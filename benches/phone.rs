//! Phone-number normalization: otpflow beside the `phonenumber` crate doing
//! the same work (parse, validate, check the number takes SMS, format
//! E.164), in the same run.
//!
//! `cargo bench --bench phone`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use otpflow::{PhoneNumber, PhonePolicy};
use phonenumber::{Mode, Type, country};

/// UK mobiles as users and services write them.
const UK_MOBILES: [&str; 8] = [
    "07401 101801",
    "+44 7401 101801",
    "+44 (0)7401 101801",
    "0044 7401 101801",
    "447401101801",
    "07781 123456",
    "+447624123456",
    "07911-123-456",
];

/// Mobiles of other countries.
const INTERNATIONAL: [&str; 4] = [
    "+1 202 555 0123",
    "+33 6 12 34 56 78",
    "+91 98765 43210",
    "+507 6123 4567",
];

/// The crate doing otpflow's job: a valid mobile, in E.164.
fn with_the_crate(input: &str) -> Option<String> {
    let n = phonenumber::parse(Some(country::Id::GB), input).ok()?;
    if !n.is_valid() {
        return None;
    }
    match n.number_type(&phonenumber::metadata::DATABASE) {
        Type::Mobile | Type::FixedLineOrMobile => Some(n.format().mode(Mode::E164).to_string()),
        _ => None,
    }
}

fn normalize(c: &mut Criterion) {
    let policy = PhonePolicy::default();
    for inputs in [&UK_MOBILES[..], &INTERNATIONAL[..]] {
        for input in inputs {
            let ours = PhoneNumber::parse(input, &policy).map(|n| n.e164().to_owned());
            assert_eq!(
                ours.ok(),
                with_the_crate(input),
                "{input}: the two disagree"
            );
        }
    }

    let mut group = c.benchmark_group("phone");
    group.bench_function("uk_mobile/otpflow", |b| {
        b.iter(|| {
            for input in UK_MOBILES {
                black_box(PhoneNumber::parse(black_box(input), &policy).ok());
            }
        });
    });
    group.bench_function("uk_mobile/phonenumber", |b| {
        b.iter(|| {
            for input in UK_MOBILES {
                black_box(with_the_crate(black_box(input)));
            }
        });
    });
    group.bench_function("international/otpflow", |b| {
        b.iter(|| {
            for input in INTERNATIONAL {
                black_box(PhoneNumber::parse(black_box(input), &policy).ok());
            }
        });
    });
    group.bench_function("international/phonenumber", |b| {
        b.iter(|| {
            for input in INTERNATIONAL {
                black_box(with_the_crate(black_box(input)));
            }
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3));
    targets = normalize
}
criterion_main!(benches);
