//! Key rotation through `&self` while other threads validate: a `Verifier`
//! shared behind an `Arc` rotates and drops keys without `&mut`, and no
//! check in flight fails because of it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use otpflow::rand_core::SeedableRng;
use otpflow::{
    Channel, Error, KeyError, KeyId, KeyRing, ManualClock, MemoryStore, PhoneNumber, PhonePolicy,
    Policy, Purpose, SecretKey, SubjectKey, Verifier,
};
use rand_chacha::ChaCha20Rng;
use time::macros::datetime;

fn key(id: u32) -> SecretKey {
    let byte = u8::try_from(id % 251).unwrap_or(0);
    SecretKey::new(KeyId(id), &[byte; 32]).expect("a valid key")
}

fn subject(thread: usize, i: usize) -> SubjectKey {
    let phone = PhoneNumber::parse(&format!("+4474{thread}{i:07}"), &PhonePolicy::default())
        .expect("a UK mobile");
    SubjectKey::new(Purpose::Login, phone)
}

#[test]
#[cfg_attr(target_family = "wasm", ignore = "wasm32-wasip1 has no threads")]
fn rotating_under_concurrent_load_loses_no_validation() {
    const WORKERS: usize = 3;
    const PER_WORKER: usize = 400;
    let policy = Policy::builder()
        .subject_send_cap(10_000)
        .build()
        .expect("a valid policy");
    let clock = ManualClock::new(datetime!(2026-11-22 12:00 UTC));
    let verifier = Arc::new(Verifier::new(
        policy,
        KeyRing::new(key(1)),
        MemoryStore::new(),
        clock,
    ));
    let done = Arc::new(AtomicBool::new(false));
    let rotations = Arc::new(AtomicU64::new(0));

    let rotator = {
        let verifier = Arc::clone(&verifier);
        let done = Arc::clone(&done);
        let rotations = Arc::clone(&rotations);
        std::thread::spawn(move || {
            let ring = verifier.engine().keys();
            let mut next = 2u32;
            while !done.load(Ordering::Relaxed) {
                ring.rotate(key(next)).expect("a fresh id");
                // Keep the two most recent retired keys: a validation in
                // flight started at most one rotation ago in this test, as
                // each worker checks its code right after starting.
                if next > 4 {
                    ring.remove(KeyId(next - 3)).expect("a retired key");
                }
                rotations.fetch_add(1, Ordering::Relaxed);
                next += 1;
                std::thread::yield_now();
            }
            next - 1
        })
    };

    let workers: Vec<_> = (0..WORKERS)
        .map(|t| {
            let verifier = Arc::clone(&verifier);
            std::thread::spawn(move || {
                let mut rng = ChaCha20Rng::seed_from_u64(t as u64);
                let mut expired = 0usize;
                for i in 0..PER_WORKER {
                    let s = subject(t, i);
                    let sent = verifier.start(&s, Channel::Sms, &mut rng).expect("sent");
                    match verifier.verify(&s, sent.code.as_str()) {
                        Ok(done) => assert_eq!(done.generation, sent.generation),
                        // Only if its key was removed between start and
                        // verify: two rotations in that gap.
                        Err(Error::Expired) => expired += 1,
                        Err(e) => panic!("validation {i} of thread {t}: {e}"),
                    }
                }
                expired
            })
        })
        .collect();
    let expired: usize = workers
        .into_iter()
        .map(|w| w.join().expect("a worker"))
        .sum();
    done.store(true, Ordering::Relaxed);
    let last = rotator.join().expect("the rotator");

    let ring = verifier.engine().keys();
    assert!(rotations.load(Ordering::Relaxed) > 0, "no rotation ran");
    assert_eq!(ring.current().id(), KeyId(last));
    assert!(
        ring.ids().len() <= 4,
        "removed keys are gone: {:?}",
        ring.ids()
    );
    // Expiries from removal are possible, but only rarely: the workers'
    // gap between start and verify is short.
    assert!(
        expired < WORKERS * PER_WORKER / 10,
        "{expired} validations lost their key"
    );
    assert_eq!(
        ring.remove(KeyId(last)),
        Err(KeyError::RemovingCurrent(KeyId(last)))
    );
}

#[test]
#[cfg_attr(target_family = "wasm", ignore = "wasm32-wasip1 has no threads")]
fn a_code_checks_with_its_key_after_a_rotation() {
    let clock = ManualClock::new(datetime!(2026-11-22 12:00 UTC));
    let verifier = Arc::new(Verifier::new(
        Policy::default(),
        KeyRing::new(key(1)),
        MemoryStore::new(),
        clock,
    ));
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let s = subject(0, 1);
    let sent = verifier.start(&s, Channel::Sms, &mut rng).expect("sent");
    let shared = Arc::clone(&verifier);
    std::thread::spawn(move || shared.engine().keys().rotate(key(2)))
        .join()
        .expect("the rotation thread")
        .expect("a fresh id");
    assert_eq!(verifier.engine().keys().current().id(), KeyId(2));
    let done = verifier
        .verify(&s, sent.code.as_str())
        .expect("checked with key 1");
    assert_eq!(done.generation, sent.generation);
    // Once key 1 is gone, its codes are expired.
    let s2 = subject(0, 2);
    let sent2 = verifier.start(&s2, Channel::Sms, &mut rng).expect("sent");
    verifier.engine().keys().rotate(key(3)).expect("a fresh id");
    verifier.engine().keys().remove(KeyId(2)).expect("retired");
    assert_eq!(
        verifier
            .verify(&s2, sent2.code.as_str())
            .map(|v| v.generation),
        Err(Error::Expired),
    );
}
