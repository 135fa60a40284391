//! The set-up the service-facing test files share: a `Verifier` over a
//! `MemoryStore` and a `ManualClock`, with every event kept.
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use otpflow::*;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use time::OffsetDateTime;
use time::macros::datetime;

pub const T0: OffsetDateTime = datetime!(2026-11-22 12:00 UTC);

pub struct World {
    pub verifier: Verifier<MemoryStore, ManualClock>,
    pub clock: ManualClock,
    pub rng: ChaCha20Rng,
    pub events: Arc<Mutex<Vec<Event>>>,
}

pub fn key(id: u32) -> SecretKey {
    SecretKey::new(KeyId(id), &[u8::try_from(id).unwrap(); 32]).unwrap()
}

pub fn world(policy: Policy) -> World {
    world_seeded(policy, 1)
}

pub fn world_seeded(policy: Policy, seed: u64) -> World {
    let clock = ManualClock::new(T0);
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&events);
    let verifier = Verifier::new(
        policy,
        KeyRing::new(key(1)),
        MemoryStore::new(),
        clock.clone(),
    )
    .on_event(move |e| sink.lock().unwrap().push(e.clone()));
    World {
        verifier,
        clock,
        rng: ChaCha20Rng::seed_from_u64(seed),
        events,
    }
}

pub fn phone(text: &str) -> PhoneNumber {
    PhoneNumber::parse(text, &PhonePolicy::default()).unwrap()
}

pub fn login(text: &str) -> SubjectKey {
    SubjectKey::new(Purpose::Login, phone(text))
}

/// A code of the right length that is not `code`.
pub fn wrong(code: &Code) -> String {
    code.as_str()
        .bytes()
        .map(|b| char::from(b'0' + (b - b'0' + 1) % 10))
        .collect()
}

impl World {
    pub fn start(&mut self, s: &SubjectKey) -> Result<Sent, Error> {
        self.verifier.start(s, Channel::Sms, &mut self.rng)
    }
    pub fn resend(&mut self, s: &SubjectKey) -> Result<Sent, Error> {
        self.verifier.resend(s, None, &mut self.rng)
    }
    pub fn state(&self, s: &SubjectKey) -> State {
        self.verifier.status(s).unwrap().state
    }
    pub fn take_events(&self) -> Vec<Event> {
        std::mem::take(&mut *self.events.lock().unwrap())
    }
}
