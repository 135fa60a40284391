//! # The guide: threat model and operation
//!
//! This page says what otpflow defends against, what it leaves to you, and
//! how to run it so that the defences hold.
//!
//! ## What is protected
//!
//! A one-time code proves that whoever typed it can read messages sent to a
//! phone number, *now*. The asset is that proof: nobody who does not receive
//! the message should be able to complete a validation, and no completed
//! validation should be replayable.
//!
//! ## Attackers and what stops them
//!
//! | attacker | attack | defence |
//! |---|---|---|
//! | a guesser on the public API | tries codes | 5 checks per code, counted *before* the comparison; 20 failures per subject per 24 h, then a lockout that no resend, cancel or new validation lifts. With defaults, a 6-digit code falls to guessing with probability ≤ 20 · 10⁻⁶ per subject per lockout cycle. |
//! | a racer | sends many checks at once so several read "1 attempt left" | every change is one compare-and-swap against a versioned record ([`Store`](crate::Store)); a conflicting write is re-run on the fresh record. Two checks never share an attempt and a code never validates twice (`tests/lifecycle.rs` checks it with 8 threads). |
//! | a replayer | reuses a code that worked | the validation is terminal once validated; reuse answers [`Error::AlreadyValidated`](crate::Error::AlreadyValidated). |
//! | a confused deputy | uses a login code for an onboarding check, or one number's code for another | the code is an HMAC over purpose, E.164 number, nonce and generation; a record exists per (purpose, number). |
//! | a store thief | reads the database | records hold a nonce and a key id, never the code or an unkeyed hash of it (a 6-digit code's unkeyed hash falls to 10⁶ guesses). Without the HMAC key, the store reveals no code. It does reveal *which numbers* are being verified: protect it as personal data. |
//! | a timing observer | measures verify latency | the comparison is constant-time ([`subtle`]); every refusal of `verify` (unknown subject, expired, locked, …) runs the whole wrong-code check on a stand-in record, so it costs what a check costs. `benches/ct.rs` measures both with dudect; the README gives the t statistics, including the small gap (about 1 %) that remains between a known and an unknown subject in the pure engine. A real store adds far larger differences (a miss reads, a check writes): answer every verify after a fixed minimum latency if enumeration by timing matters to you. |
//! | an enumerator | asks about numbers to learn who is enrolled | [`Error::public`](crate::Error::public) collapses not-found, expired, canceled, already-validated, exhausted and mismatch into one `invalid_code`. |
//! | an SMS pumper | makes you send many paid messages | 5 sends per validation, 30 s cooldown, 10 sends per subject per hour across validations; cancel-and-restart buys nothing. Non-geographic numbers (+800, +808, +870, +878, +881, +882, +883, +888, +979: satellite, international networks, premium) are refused unless a [`PhonePolicy`](crate::PhonePolicy) names their code, and a policy can allow or deny by region (`allow_only(&[1])` then `allow_regions(&["US", "CA"])` keeps Jamaica, the Dominican Republic and the rest of the +1 Caribbean out). |
//! | a number splitter | writes one number several ways to get several subjects (several failure and send budgets) | every written form of a number is one canonical E.164 value: a trunk prefix after the calling code is dropped only where that country's plan has one, once (`+33 (0)6 …` is `+33 6 …`; `+33 00 6 …` is refused), and a leading `0` that is part of the number (Italy, Côte d'Ivoire, Gabon, …) is kept, so no number is rewritten into another. Without the `phonenumber` feature this holds for the 98 calling codes whose trunk prefix no number begins with; elsewhere (Russia's `8`) two forms can remain two subjects. |
//! | a malformed-input sender | sends huge, non-ASCII or letter-laden numbers and codes | a guard refuses letters, controls, non-ASCII digits and over-long input before any parsing, with a typed error; malformed codes spend no attempt. Nothing panics on any input (property tests and fuzz targets). |
//! | a store that lies | returns corrupt or hostile records | [`Record::from_bytes`](crate::Record::from_bytes) checks every field; transitions use saturating arithmetic on counters and instants, so no stored value can cause a panic. |
//! | a clock that jumps | NTP steps the clock back | expiry is never undone: a terminal record stays terminal, and windows keep their counts when time runs backwards. |
//!
//! ## What otpflow does not defend against
//!
//! - **Interception of the message**: SIM swap, SS7 interception, malware on the
//!   phone, a user tricked into reading the code to a caller. SMS is a weak
//!   channel (NIST SP 800-63B calls it *restricted*); offer stronger factors
//!   for high-value actions.
//! - **Distributed guessing across many numbers**: budgets are per subject. An
//!   attacker with many numbers, or many targets, needs limits per client IP,
//!   per account and per destination prefix, in front of otpflow.
//! - **Enumeration once locked**: a subject locked by its failure cap answers
//!   `too_many_requests` even through `public()`, which an unknown subject never
//!   does. Only someone who spent the subject's whole failure budget learns
//!   it exists.
//! - **A stolen HMAC key together with the store**: then codes in flight can
//!   be computed. Keep keys in a secrets manager, rotate them, and remove
//!   retired keys once their codes have expired.
//! - **Time taken by your store**: a wrong check writes a record (the spent
//!   attempt), an unknown subject does not; the write's latency is visible.
//!   Where that matters, answer after a fixed delay.
//!
//! ## Running it
//!
//! - **Keys**: 32–64 random bytes from a secrets manager, each with an id.
//!   To rotate, [`KeyRing::rotate`](crate::KeyRing::rotate) in the new key
//!   everywhere, wait at least one code lifetime, then
//!   [`KeyRing::remove`](crate::KeyRing::remove) the old one. A check of a
//!   code whose key was removed ends that validation as expired.
//! - **Randomness**: pass a CSPRNG (`rand_core::CryptoRng`), for instance
//!   `rand_core::UnwrapErr(getrandom::SysRng)`. Nonces are 128 bits, so
//!   collisions are not a concern.
//! - **Clock**: [`SystemClock`](crate::SystemClock) where there is one; on
//!   `wasm32-unknown-unknown` implement [`Clock`](crate::Clock) over the
//!   host's time. Verifier calls read the clock once.
//! - **Store**: keep the [`Store`](crate::Store) contract, and let records
//!   live until [`Record::expires_at`](crate::Record::expires_at) — dropping
//!   them earlier resets the failure and send budgets.
//! - **Answers**: send [`Error::public`](crate::Error::public) to clients you do
//!   not trust; log the full [`Error`](crate::Error) and the
//!   [`Event`](crate::Event)s. Never log [`Code`](crate::Code)s: their `Debug`
//!   is redacted, and only `as_str` reads them.
//! - **Logs**: a [`PhoneNumber`](crate::PhoneNumber) prints masked
//!   (`+44 7401 ••• 801`) in `Display` and `Debug`, so a number logged by
//!   accident shows the country and enough for support to recognise it, not
//!   the number; [`PhoneNumber::e164`](crate::PhoneNumber::e164) is the
//!   explicit way to the whole number, for the SMS provider and the store.
//!   So does the `Debug` of a [`SubjectKey`](crate::SubjectKey), which holds
//!   one; its `Display` (`login:+447401101801`, a store key) does not: do
//!   not log it.
//! - **Phone numbers**: parse with a [`PhonePolicy`](crate::PhonePolicy) that
//!   allows only the countries you serve; that is also the cheapest defence
//!   against SMS pumping to premium ranges.
