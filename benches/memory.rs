//! Bytes per active validation in `MemoryStore`: the heap the store holds
//! for N live validations, divided by N, counted by a global allocator that
//! tracks every allocation (`stats_alloc`). Also the size of one encoded
//! record, which is what a networked store keeps.
//!
//! `cargo bench --bench memory` (100,000 validations; 10,000 under `cargo test`)

use std::alloc::System;

use otpflow::rand_core::SeedableRng;
use otpflow::{
    Channel, KeyId, KeyRing, ManualClock, MemoryStore, PhoneNumber, PhonePolicy, Policy, Purpose,
    SecretKey, Store, SubjectKey, Verifier,
};
use rand_chacha::ChaCha20Rng;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use time::macros::datetime;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let n: usize = if benching { 100_000 } else { 10_000 };

    let policy = PhonePolicy::default();
    let subjects: Vec<SubjectKey> = (0..n)
        .map(|i| {
            let phone = PhoneNumber::parse(&format!("+44740{i:07}"), &policy).expect("a UK mobile");
            SubjectKey::new(Purpose::Login, phone)
        })
        .collect();
    let keys = KeyRing::new(SecretKey::new(KeyId(1), &[42; 32]).expect("a valid key"));
    let clock = ManualClock::new(datetime!(2026-11-22 12:00 UTC));
    let verifier = Verifier::new(Policy::default(), keys, MemoryStore::new(), clock);
    let mut rng = ChaCha20Rng::seed_from_u64(1);

    let region = Region::new(GLOBAL);
    for subject in &subjects {
        let sent = verifier
            .start(subject, Channel::Sms, &mut rng)
            .expect("sent");
        drop(sent);
    }
    let stats = region.change();
    let held = stats.bytes_allocated as f64 - stats.bytes_deallocated as f64;
    assert_eq!(verifier.store().len(), n);

    let (record, _) = verifier
        .store()
        .load(&otpflow::RecordKey::from(&subjects[0]))
        .expect("the store answers")
        .expect("a record");
    println!("validations:                 {n}");
    println!("heap held by the store:      {held:.0} bytes");
    println!("bytes per active validation: {:.1}", held / n as f64);
    let encoded = record.to_bytes().len();
    println!("encoded record:              {encoded} bytes");
    // The goal for format 2: at most 96 bytes for a live validation.
    assert!(
        encoded <= 96,
        "an encoded live record takes {encoded} bytes"
    );
    println!(
        "in-memory Record value:      {} bytes",
        std::mem::size_of_val(&record)
    );
}
