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
//! | a guesser on the public API | tries codes | 5 checks per code, counted *before* the comparison; the subject's failed checks count *consecutively* until a success, across codes, resends, new validations, lockouts and restarts (they are in the record). Every 20th failure in a row locks the subject, for 1 h, 4 h, 16 h, then 64 h; the 100th (NIST SP 800-63B's ceiling) blocks it until an operator calls [`unlock`](crate::Verifier::unlock). `tests/attacks.rs` runs an optimal guesser for a simulated year against one number: 100 wrong codes compared, then blocked, so a 6-digit code falls with probability ≤ 100 · 10⁻⁶ per subject, ever (without the escalation and the cap, the same guesser gets 175,200 a year). A count is forgotten only after [`failure_window`](crate::Policy::failure_window) (365 days) without a failure, and never once blocked. |
//! | a racer | sends many checks at once so several read "1 attempt left" | every change is one compare-and-swap against a versioned record ([`Store`](crate::Store)); a conflicting write is re-run on the fresh record. Two checks never share an attempt and a code never validates twice (`tests/lifecycle.rs` checks it with 8 threads). |
//! | a replayer | reuses a code that worked | the validation is terminal once validated; reuse answers [`Error::AlreadyValidated`](crate::Error::AlreadyValidated). |
//! | a confused deputy | uses a login code for an onboarding check, or one number's code for another | the code is an HMAC over purpose, E.164 number, nonce and generation; a record exists per (purpose, number). |
//! | a relay phisher | gets the user to type a code into a page of its own, then spends it on its own transaction or session | bind the subject to what the code approves ([`SubjectKey::bound_to`](crate::SubjectKey::bound_to) with a [`Context`](crate::Context): amount and payee, or a session id): a bound code validates only under the same context, and a check under another context or none is a wrong code that spends an attempt (`tests/context.rs`). Format the message with [`message::MessageFormat`](crate::message::MessageFormat) (`@your.origin #123456`, the Android app hash) so browsers and the OS offer the code only to your origin and app. What remains: a user who reads the code aloud or types it by hand into a page that relays it *to your own origin* within the same session — binding defeats the swap of transaction, not a live man in the middle of the same one. |
//! | a store thief | reads the database | records hold a nonce and a key id, never the code or an unkeyed hash of it (a 6-digit code's unkeyed hash falls to 10⁶ guesses). Without the HMAC key, the store reveals no code. It does reveal *which numbers* are being verified: protect it as personal data. |
//! | a timing observer | measures verify latency | the comparison is constant-time ([`subtle`]); every refusal of `verify` (unknown subject, expired, locked, …) runs the whole wrong-code check on a stand-in record, so it costs what a check costs. `benches/ct.rs` measures both with dudect; the README gives the t statistics, including the small gap (about 1 %) that remains between a known and an unknown subject in the pure engine. A real store adds far larger differences (a miss reads, a check writes): answer every verify after a fixed minimum latency if enumeration by timing matters to you. |
//! | an enumerator | asks about numbers to learn who is enrolled, or who is logging in right now | for `verify`, [`Error::public`](crate::Error::public) collapses not-found, expired, canceled, already-validated, exhausted and mismatch into one `invalid_code`. For `start` and `resend`, [`Error::public_send`](crate::Error::public_send) answers every refusal that depends on the subject (none, live inside its cooldown, sends spent, terminal, send budget, lockout, block) as a send, so nothing tells a live validation from none, nor when its code went out (see *Answering `start` and `resend`* below). |
//! | an SMS pumper | makes you send many paid messages to one number | 5 sends per validation, 30 s cooldown, and the subject's sends are a sliding budget (a GCRA bucket): no hour ever holds more than 10 sends to one subject, across validations; cancel-and-restart buys nothing, and there is no window edge to burst across. |
//! | an SMS pumper (toll fraud) | asks for codes to thousands of numbers in one premium range, from many addresses, to earn a share of the termination fees | budget keys named on each send ([`Budgets`](crate::Budgets), see [`budget_key`](crate::budget_key)): the client's address (IPv4, or its IPv6 /64), the number's range (its first 8 E.164 digits by default), its country, a global ceiling, or a label of yours. Each is a GCRA bucket in its own record, spent by the same compare-and-swap, checked before anything is spent; a give-back is exact or nothing, so no interleaving lets a key pass more than its rate. `tests/pumping.rs` sends 10,000 requests to one range from 1,000 addresses, and a slow pumper under the per-address rate: 75 SMS reach the range over the run (20 at once, then one every 3 minutes: exactly the range's rate), and a trickle of legitimate users to other ranges is never refused. Prefixes and countries you never send to are denied outright ([`PolicyBuilder::deny_prefix`](crate::PolicyBuilder::deny_prefix)). |
//! | a pumper with a botnet over many ranges | spreads requests over many addresses *and* many ranges | the per-range and per-address keys each see little: only a country or global key bounds it, and that key also refuses legitimate users once spent (it is a ceiling on your bill, not a filter). Set it near your real peak, alert on [`Event::BudgetRefused`](crate::Event::BudgetRefused) and on [`Event::DeliveryFailed`](crate::Event::DeliveryFailed) rates per country, deny the countries you do not serve, and put a challenge (CAPTCHA, proof of work, an existing session) in front of `start` for anonymous callers. The library does not see conversion (codes sent but never verified), the strongest pumping signal: a service should watch it. | Non-geographic numbers (+800, +808, +870, +878, +881, +882, +883, +888, +979: satellite, international networks, premium) are refused unless a [`PhonePolicy`](crate::PhonePolicy) names their code, and a policy can allow or deny by region (`allow_only(&[1])` then `allow_regions(&["US", "CA"])` keeps Jamaica, the Dominican Republic and the rest of the +1 Caribbean out). |
//! | a number splitter | writes one number several ways to get several subjects (several failure and send budgets) | every written form of a number is one canonical E.164 value: a trunk prefix after the calling code is dropped only where that country's plan has one, once (`+33 (0)6 …` is `+33 6 …`; `+33 00 6 …` is refused), and a leading `0` that is part of the number (Italy, Côte d'Ivoire, Gabon, …) is kept, so no number is rewritten into another. Without the `phonenumber` feature this holds for the 98 calling codes whose trunk prefix no number begins with; elsewhere (Russia's `8`) two forms can remain two subjects. |
//! | a malformed-input sender | sends huge, non-ASCII or letter-laden numbers and codes | a guard refuses letters, controls, non-ASCII digits and over-long input before any parsing, with a typed error; malformed codes spend no attempt. Nothing panics on any input (property tests and fuzz targets). |
//! | a store that lies | returns corrupt or hostile records | [`Record::from_bytes`](crate::Record::from_bytes) checks each field's range *and* refuses records no transition writes ([`RecordError::Contradiction`](crate::RecordError::Contradiction): a `Sent` validation with an end time, one created after it expires or expiring further out than any lifetime, generation 0 holding a validation, a lockout without failures…); transitions use saturating arithmetic on counters and instants, so no stored value can cause a panic. A store that rewrites records wholesale can still reset a subject's budgets: it is trusted with integrity. |
//! | a clock that jumps ahead | a bad NTP source, a resumed VM, a host's `Date.now()` | every call bounds the stored instants against `now` and the policy in one place (`Record::bounded`): a code lives at most its lifetime from `now`, a lockout at most the lockout its count earned, the send budget holds at most its burst; a `Sent` validation written at or after its own (bounded) expiry is dead. So a year's jump and its correction give no code a year of life and lock no one for a year, and the record then stored (and its TTL) follows the bounded values. `now` is normalized to UTC and clamped into the records' range (1970–9000) where it enters the engine. |
//! | a clock that jumps back | NTP steps the clock back | an expiry, a lockout or a spent budget that a call *wrote* is never undone: a terminal record stays terminal. What holds only with [`MonotonicClock`](crate::MonotonicClock) (wrap your clock in it, as the README does): a `status` writes nothing, so with a raw clock stepped back, a code that `status` reported expired can be checked again until its stored expiry (`tests/lifecycle.rs` pins both cases). Across processes whose clocks step back separately, only written state holds. |
//! | a memory reader | reads freed memory, a core dump, or the stack after a check | a [`SecretKey`](crate::SecretKey) keeps only HMAC's two midstates (what computes HMAC(key, ·)), in heap memory zeroized on drop; a derivation works in zeroized buffers and overwrites the stack area below it afterwards (1 KiB; `tests/stack_residue.rs` scans the stack through `/proc/self/mem` after a check and finds no word of either midstate). What remains: CPU registers until reused, and copies the operating system makes (swap, core dumps): disable core dumps and swap where keys live. |
//!
//! ## What otpflow does not defend against
//!
//! - **Interception of the message**: SIM swap, SS7 interception, malware on the
//!   phone, a user tricked into reading the code to a caller. SMS is a weak
//!   channel (NIST SP 800-63B calls it *restricted*); offer stronger factors
//!   for high-value actions.
//! - **Distributed guessing across many numbers**: the failure budgets are
//!   per subject. An attacker guessing at many targets needs limits per
//!   client and per account on `verify`, in front of otpflow (the budget
//!   keys count sends, not checks).
//! - **Pumping that looks like your users**: budget keys bound how fast
//!   messages go to a range, a country or in all, not whether a request
//!   is genuine. A pumper who stays under every key's rate still costs you
//!   up to those rates; choose them from your traffic.
//! - **Locking a victim out**: the price of a cap that holds for a year is
//!   that anyone who can call `verify` for a number can spend its failures:
//!   20 wrong codes lock it for an hour, 100 block it until an operator
//!   unlocks it. Scope it: a subject is (purpose, number), so a guesser at
//!   `login` does not block `onboarding` or a custom purpose such as a
//!   support-verified recovery; let `verify` be called only within a
//!   session that called `start` (or after a client-side challenge); rate-
//!   limit callers by address in front; warn users with
//!   [`Status::failures_left`](crate::Status::failures_left); alert on
//!   [`Event::Blocked`](crate::Event::Blocked) and give support an
//!   [`unlock`](crate::Verifier::unlock). Lower `failure_hard_cap` never
//!   below what your users' typos reach (a success resets the count).
//! - **Enumeration once locked**: a subject locked by its failures answers
//!   `verify` with `too_many_requests` (or `blocked`) even through
//!   `public()`, which an unknown subject never does. Only someone who spent
//!   a lockout's worth of failures learns it exists.
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
//! - **Clock**: [`SystemClock`](crate::SystemClock) where there is one,
//!   wrapped in [`MonotonicClock`](crate::MonotonicClock); on
//!   `wasm32-unknown-unknown` implement [`Clock`](crate::Clock) over the
//!   host's time. Verifier calls read the clock once. The engine works in
//!   whole seconds: deadlines round up, so a code may live up to a second
//!   longer than its lifetime, never shorter.
//! - **Store**: keep the [`Store`](crate::Store) contract, and let records
//!   live until [`Record::expires_at`](crate::Record::expires_at) — dropping
//!   them earlier resets the failure and send budgets. A record with failed
//!   checks lives a year after the last one, and a blocked subject's record
//!   never expires: the store grows with the subjects that were guessed at.
//!   Records written by version 1 of the encoding still decode (their send
//!   window starts afresh).
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
//!
//! ## Answering `start` and `resend`
//!
//! A number mid-verification must look like any other to an outsider. Map
//! refusals of `start` and `resend` with
//! [`Error::public_send`](crate::Error::public_send): `Ok(())` means "answer
//! exactly as a send". The refusal itself (and its precise `retry_after`)
//! stays with you: tell your own signed-in user, log it, and send nothing.
//! Beside the seeds' answers (`seeds/` in the design notes):
//!
//! | seed | a send | a refusal `public_send` maps to `Ok(())` |
//! |---|---|---|
//! | Kavoon `POST /otp` | `200 {}` | `200 {}`, the same |
//! | Verifik `POST /v2/projects/phone-login` | `status: "sent"`, `expiresAt`, `createdAt` | the same shape with `status: "sent"`; for *every* answer, real or not, set `expiresAt` to now + the code lifetime and `createdAt`/`updatedAt` to now (not [`Sent::expires_at`](crate::Sent::expires_at), which for a resend of the same code tells when it first went out) |
//! | KGen `POST …/otp/register`, `…/otp/resend` | `200` | `200`, the same; never return the code itself in an answer (KGen's example shows `authCode`) |
//!
//! Only a malformed number or purpose (the caller's own input) and an
//! unavailable store are refused publicly. [`Error::public`](crate::Error::public)
//! is for `verify`, `cancel` and `status`; where it does answer a cooldown
//! or a send budget, its `retry_after` is rounded up to whole minutes.
//! A start inside the cooldown (the victim started 12 s ago) so answers as a
//! start that sent nothing, exactly as a start on an unknown number that
//! sent a code.
//!
//! ## What a service logs
//!
//! Log every [`Event`](crate::Event) (its `Display` is one line, with no
//! code) and the full [`Error`](crate::Error) of each refusal. Numbers are
//! masked in every `Debug` and `Display` of a
//! [`SubjectKey`](crate::SubjectKey), an event, a status or an error
//! (`login:+44 7401 ••• 801`): logs do not become a list of customers'
//! numbers. The whole number comes only from
//! [`PhoneNumber::e164`](crate::PhoneNumber::e164) and
//! [`SubjectKey::store_key`](crate::SubjectKey::store_key), which name
//! records and address messages: never log those. Alert on
//! [`Event::Blocked`](crate::Event::Blocked), on runs of
//! [`Event::DeliveryFailed`](crate::Event::DeliveryFailed) (an outage), and
//! on any [`Event::TestNumberUsed`](crate::Event::TestNumberUsed) you did
//! not expect.
//!
//! ## Reporting deliveries
//!
//! Keep each send's [`SendId`](crate::SendId) (in
//! [`Sent::send`](crate::Sent::send) and the send events) beside the
//! provider's message id. When the provider refuses the message or reports
//! it undelivered, call
//! [`Verifier::report_delivery`](crate::Verifier::report_delivery) with
//! [`Delivery::Failed`](crate::Delivery::Failed): the send's place in the
//! validation's sends and in the subject's send budget comes back and its
//! cooldown is lifted, so an outage spends no one's budget and nobody waits
//! for a message that never left. Only the subject's latest send is given
//! back, once, and never for a validation already validated; an earlier or
//! repeated report changes nothing. Take reports only from the provider
//! (a signed callback, or its error on the send request): a forged failure
//! report buys one more message.
//!
//! A send made with budget keys
//! ([`start_within`](crate::Verifier::start_within)) is reported with
//! [`report_delivery_within`](crate::Verifier::report_delivery_within),
//! naming the same [`Budgets`](crate::Budgets): each key whose latest spend
//! is still that send gives its place back too. A key another send spent
//! from in the meantime keeps the place (a give-back is exact or nothing),
//! so during an outage a busy global or country key still fills: raise it,
//! or deny sends, until the provider is back.
//!
//! ## Test numbers, safely
//!
//! [`Policy::test_numbers`](crate::Policy::test_numbers) is off by default.
//! Turn it on only where app-store review or end-to-end tests need it, with
//! numbers nobody owns (Ofcom's drama range,
//! [`OFCOM_DRAMA_MOBILES`](crate::policy::OFCOM_DRAMA_MOBILES), exists for
//! that; the phone parser admits those numbers only under a
//! [`PhonePolicy::admit_drama_numbers`](crate::PhonePolicy::admit_drama_numbers),
//! so keep that on only where test numbers are) and a code that is not guessable from the
//! outside (never one digit repeated, which the policy refuses). A test
//! number's send has [`Sent::suppressed`](crate::Sent::suppressed) set: do
//! not hand it to your provider. Its checks, sends and lockouts count as for
//! any number. Every use is an
//! [`Event::TestNumberUsed`](crate::Event::TestNumberUsed): alert on it in
//! production, and check that your production policy's `Debug` does not say
//! `TestNumbers { on: true`. Removing a number from the policy ends its
//! validations (their code is no longer known).
//!
//! ## Tenants
//!
//! A service hosting several apps gives each subject its app with
//! [`SubjectKey::with_tenant`](crate::SubjectKey::with_tenant): the same
//! number in two tenants is two subjects, with their own records, budgets
//! and codes (the tenant is bound into the code's derivation). Stores name
//! records by [`SubjectKey::store_key`](crate::SubjectKey::store_key), which
//! includes the tenant.
