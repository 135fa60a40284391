//! [`Record`]: what a store keeps per subject — the current validation and
//! the subject's failure and send ledger — and its byte encoding.
//!
//! A record holds no code and no hash of one: only the nonce and the id of the
//! key that derives the code. A leaked store reveals nothing without the key.
//!
//! Stores that keep bytes (Redis, SQL, DynamoDB) use [`Record::to_bytes`] and
//! [`Record::from_bytes`]. The encoding is versioned and checked: bytes that
//! come back from a store are treated as untrusted input and anything
//! malformed is a [`RecordError`], never a panic.

use core::fmt;
use core::num::NonZeroI64;

use time::{Duration, OffsetDateTime};

use crate::budget::{Guesses, KeyBucket, LastSend, SendRate};
use crate::budget_key::BudgetKind;
use crate::code::NONCE_LEN;
use crate::keys::KeyId;
use crate::subject::Channel;

/// Where a validation is in its life cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// A code is out and can be checked.
    Sent,
    /// The right code was checked. Terminal.
    Validated,
    /// The code's lifetime ended (or its key was removed). Terminal.
    Expired,
    /// The code's checks were spent, or the subject hit its failure cap.
    /// Terminal.
    Locked,
    /// The caller canceled it. Terminal.
    Canceled,
}

impl State {
    /// True for every state but [`State::Sent`].
    pub fn is_terminal(self) -> bool {
        self != Self::Sent
    }
    /// True for [`State::Validated`].
    pub fn is_validated(self) -> bool {
        self == Self::Validated
    }
    /// `sent`, `validated`, `expired`, `locked` or `canceled` (Verifik's
    /// `status` values).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Validated => "validated",
            Self::Expired => "expired",
            Self::Locked => "locked",
            Self::Canceled => "canceled",
        }
    }
    fn to_byte(self) -> u8 {
        match self {
            Self::Sent => 0,
            Self::Validated => 1,
            Self::Expired => 2,
            Self::Locked => 3,
            Self::Canceled => 4,
        }
    }
    fn from_byte(b: u8) -> Option<Self> {
        [
            Self::Sent,
            Self::Validated,
            Self::Expired,
            Self::Locked,
            Self::Canceled,
        ]
        .get(usize::from(b))
        .copied()
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The code derivation a validation's code comes from. Records written by
/// version 1 of the encoding all use derivation 1.
pub(crate) const DERIVATION_V1: u8 = 1;

/// One validation: the nonce and key that derive its code, and its budgets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Validation {
    /// The number of this validation within its subject (1 for the first).
    /// Kept here, not in [`Record`]: a record without a validation is at
    /// generation 0, so the record carries no word for it.
    pub(crate) generation: u32,
    pub(crate) state: State,
    pub(crate) channel: Channel,
    /// Which code derivation the validation's code comes from.
    pub(crate) derivation: u8,
    pub(crate) key_id: KeyId,
    pub(crate) nonce: [u8; NONCE_LEN],
    /// When it started (rounded down to the second).
    pub(crate) created_at: Secs,
    /// When its code last went out (rounded up: a cooldown never shortens).
    pub(crate) last_sent_at: Secs,
    /// When its code stops working (rounded up: an expiry never moves
    /// earlier).
    pub(crate) expires_at: Secs,
    /// When the validation reached its terminal state (rounded down).
    pub(crate) ended_at: Option<Secs>,
    /// Checks spent on the current code (at most 100, the policy's
    /// ceiling).
    pub(crate) checks: u8,
    /// Sends of this validation, the first included (at most 100).
    pub(crate) sends: u8,
}

/// The subject's budgets that outlive any one validation (see
/// [`budget`](crate::budget)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Ledger {
    pub(crate) guesses: Guesses,
    pub(crate) sends: SendRate,
    /// The subject's latest send, for delivery reports.
    pub(crate) last_send: LastSend,
}

/// Everything a store keeps for one subject (purpose + phone number): the
/// current validation and the subject's failure and send ledger.
///
/// Records are made only by the [`Engine`](crate::Engine)'s transitions and
/// by [`Record::from_bytes`]; their content is private. A store needs only
/// [`expires_at`](Self::expires_at), to know when a record may be dropped.
///
/// Instants are kept in whole seconds. Where one is rounded, it is rounded
/// the way that never gives more: an expiry, a lockout's end or the last
/// send (the start of a cooldown) round up, the moments something happened
/// round down. A code may so live up to a second longer than its lifetime,
/// never shorter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub(crate) current: Option<Validation>,
    pub(crate) ledger: Ledger,
    /// The instant of the write that stored this record (rounded down).
    pub(crate) written_at: Secs,
    /// For a budget key's record (and only there): its bucket. Such a
    /// record has no validation and an empty ledger. Boxed: a subject's
    /// record, the usual one, then carries 8 bytes for it, not 24.
    pub(crate) bucket: Option<Box<KeyBucket>>,
}

impl Record {
    /// A record with no validation, as for a subject never seen.
    pub(crate) fn empty() -> Self {
        Self {
            current: None,
            ledger: Ledger::default(),
            written_at: Secs::EPOCH,
            bucket: None,
        }
    }

    /// A budget key's record with a full bucket.
    pub(crate) fn bucket(kind: BudgetKind) -> Self {
        Self {
            bucket: Some(Box::new(KeyBucket {
                kind,
                tat: None,
                last: 0,
                refunded: false,
            })),
            ..Self::empty()
        }
    }

    /// True for a budget key's record.
    pub fn is_budget(&self) -> bool {
        self.bucket.is_some()
    }

    /// The latest instant at which this record still matters. Past it, the
    /// record may be dropped and behaves like an absent one, except that
    /// [`Error::AlreadyValidated`](crate::Error::AlreadyValidated) becomes
    /// [`Error::NotFound`](crate::Error::NotFound): the validation, the send
    /// rate, any lockout and the memory of consecutive failures are all over.
    /// A subject blocked at its hard failure cap never expires (only
    /// `unlock` opens it). Use it as a TTL.
    ///
    /// Each instant counted is bounded by the instant the record was written
    /// plus the longest time the policy gives it, so a record written under
    /// a clock that had jumped ahead does not live for the jump.
    pub fn expires_at(&self, policy: &crate::Policy) -> OffsetDateTime {
        self.expiry(policy).map_or(MAX_INSTANT, |t| t.to_datetime())
    }

    /// [`expires_at`](Self::expires_at) without the calendar; `None`: never.
    pub(crate) fn expiry(&self, policy: &crate::Policy) -> Option<At> {
        let w = self.written_at;
        if let Some(b) = &self.bucket {
            // A full bucket is what no record means; the TAT is at most the
            // rate's fill time past the write.
            let Some(rate) = policy.budget_rate(b.kind) else {
                return Some(w.at());
            };
            let most = later(w, rate.fill() + Duration::SECOND);
            return Some(b.tat.map_or(w.at(), |t| t.at().min(most)));
        }
        let g = &self.ledger.guesses;
        if g.blocked(policy) {
            return None;
        }
        let slack = Duration::SECOND;
        let bound = |t: Secs, most: Duration| t.at().min(later(w, most + slack));
        let bucket = policy.subject_rate().fill();
        let forget = |last: At| later(last, policy.failure_window());
        let candidates = [
            self.current
                .as_ref()
                .map(|v| bound(v.expires_at, policy.code_lifetime())),
            self.ledger.sends.tat.map(|t| bound(t, bucket)),
            g.locked_until.map(|t| bound(t, policy.max_lockout())),
            g.last_failure_at
                .filter(|_| g.failures > 0)
                .map(|t| forget(t.at().min(later(w, slack)))),
        ];
        Some(
            candidates
                .into_iter()
                .flatten()
                .max()
                .unwrap_or(Secs::EPOCH.at()),
        )
    }

    /// The state of the current validation as stored (without the passing of
    /// time: use [`Engine::status`](crate::Engine::status) for that).
    pub fn state(&self) -> Option<State> {
        self.current.as_ref().map(|v| v.state)
    }

    /// The number of the current validation for this subject; 0 before the
    /// first.
    pub fn generation(&self) -> u32 {
        self.current.as_ref().map_or(0, |v| v.generation)
    }

    /// The record as it may be trusted at `now` under `policy`: the one place
    /// where stored instants are bounded against the clock and the policy.
    ///
    /// - what happened (created, last sent, ended, the last failure) happened
    ///   no later than `now`;
    /// - a code lives at most [`code_lifetime`](crate::Policy::code_lifetime)
    ///   past `now`, a lockout at most as long as the lockout the failure
    ///   count earned, the send bucket holds at most its burst;
    /// - a record written after `now` (under a clock that was ahead and has
    ///   since been set back) owes what its lockout and send budget owed at
    ///   that write, counted from `now`;
    /// - the instant of the last write is kept: a `Sent` validation whose
    ///   bounded expiry is at or before it is dead (its code was issued
    ///   under a clock that has since been set back past its expiry).
    ///
    /// A clock that jumped ahead and was corrected so leaves no record with
    /// a year of life or a year of lockout, and the next write stores the
    /// bounded values (so the TTL follows them).
    pub(crate) fn bounded(&self, now: At, policy: &crate::Policy) -> Self {
        let mut r = self.clone();
        let (floor_now, ceil_now) = (now.floor(), now.ceil());
        // A record written after `now` (a clock that was ahead, since set
        // back) keeps what its budgets owed at that write, counted from now.
        let ahead = r.written_at.get().saturating_sub(floor_now.get()).max(0);
        // Never before the codec's first instant: a record written near
        // the year 9000 and read near 1970 would otherwise move its
        // deadlines to before the epoch, which no record can hold.
        let back = |t: Secs| Secs::new(t.get().saturating_sub(ahead).max(0));
        if let Some(v) = r.current.as_mut() {
            v.created_at = v.created_at.min(floor_now);
            v.last_sent_at = v.last_sent_at.min(ceil_now);
            v.ended_at = v.ended_at.map(|t| t.min(floor_now));
            v.expires_at = v.expires_at.min(now.plus(policy.code_lifetime()).ceil());
        }
        let g = &mut r.ledger.guesses;
        g.last_failure_at = g.last_failure_at.map(|t| back(t).min(ceil_now));
        // A lockout lasts at most as long as the one the count earned.
        // (Each bound is computed only for an instant that is there: most
        // records have no lockout and a full send bucket.)
        let failures = g.failures;
        g.locked_until = g.locked_until.map(|t| {
            let nth = (failures / policy.failure_cap()).max(1);
            back(t).min(now.plus(crate::budget::lockout(policy, nth)).ceil())
        });
        // Whole seconds (the interval is): the ceiling is exact.
        let s = &mut r.ledger.sends;
        s.tat = s
            .tat
            .map(|t| back(t).min(ceil_now.plus(policy.subject_rate().fill()).ceil()));
        if let Some(b) = r.bucket.as_mut() {
            // A bucket holds at most its rate's fill; a kind the policy no
            // longer counts is full.
            let fill = policy.budget_rate(b.kind).map(|rate| rate.fill());
            b.tat = b
                .tat
                .and_then(|t| fill.map(|f| back(t).min(ceil_now.plus(f).ceil())));
        }
        r
    }

    /// True when the validation is `Sent`, before its expiry and written
    /// before it.
    pub(crate) fn is_live(&self, now: At) -> bool {
        self.current.as_ref().is_some_and(|v| {
            v.state == State::Sent && now < v.expires_at && self.written_at < v.expires_at
        })
    }

    /// Encodes the record for a byte store (version 2 layout, big-endian,
    /// no padding; 79 bytes for a live validation):
    ///
    /// | field | bytes |
    /// |---|---|
    /// | version (2) | 1 |
    /// | generation | 4 |
    /// | flags: validation, ended, last failure, lockout, send bucket, latest send failed | 1 |
    /// | validation: state, channel, derivation, key id, nonce | 1 + 1 + 1 + 4 + 16 |
    /// | created, last sent, expires, ended (if flagged) | 8 each |
    /// | checks, sends | 1 + 1 |
    /// | consecutive failures | 4 |
    /// | last failure, lockout end, send bucket's TAT (if flagged) | 8 each |
    /// | the subject's latest send number | 4 |
    /// | written at | 8 |
    ///
    /// Instants are Unix seconds (`i64`).
    ///
    /// A budget key's record is version 3 (27 bytes with a TAT):
    ///
    /// | field | bytes |
    /// |---|---|
    /// | version (3) | 1 |
    /// | kind: address, range, country, global, label | 1 |
    /// | flags: TAT, latest spend given back | 1 |
    /// | TAT (if flagged) | 8 |
    /// | the latest spend's tag (0: none) | 8 |
    /// | written at | 8 |
    pub fn to_bytes(&self) -> Vec<u8> {
        if let Some(b) = &self.bucket {
            let mut out = Vec::with_capacity(34);
            out.push(BUDGET_FORMAT_VERSION);
            out.push(b.kind.to_byte());
            out.push(u8::from(b.tat.is_some()) | (u8::from(b.refunded) << 1));
            if let Some(t) = b.tat {
                put_secs(&mut out, t);
            }
            out.extend_from_slice(&b.last.to_be_bytes());
            put_secs(&mut out, self.written_at);
            return out;
        }
        let mut out = Vec::with_capacity(96);
        out.push(FORMAT_VERSION);
        out.extend_from_slice(&self.generation().to_be_bytes());
        let g = &self.ledger.guesses;
        let v = self.current.as_ref();
        let flags = [
            v.is_some(),
            v.is_some_and(|v| v.ended_at.is_some()),
            g.last_failure_at.is_some(),
            g.locked_until.is_some(),
            self.ledger.sends.tat.is_some(),
            self.ledger.last_send.failed,
        ]
        .iter()
        .enumerate()
        .fold(0u8, |acc, (bit, &set)| acc | (u8::from(set) << bit));
        out.push(flags);
        if let Some(v) = v {
            out.push(v.state.to_byte());
            out.push(v.channel.to_byte());
            out.push(v.derivation);
            out.extend_from_slice(&v.key_id.0.to_be_bytes());
            out.extend_from_slice(&v.nonce);
            for t in [
                Some(v.created_at),
                Some(v.last_sent_at),
                Some(v.expires_at),
                v.ended_at,
            ]
            .into_iter()
            .flatten()
            {
                put_secs(&mut out, t);
            }
            // Both are at most 100 (the policy's ceiling; checked on decode).
            out.push(v.checks);
            out.push(v.sends);
        }
        out.extend_from_slice(&g.failures.to_be_bytes());
        for t in [g.last_failure_at, g.locked_until, self.ledger.sends.tat]
            .into_iter()
            .flatten()
        {
            put_secs(&mut out, t);
        }
        out.extend_from_slice(&self.ledger.last_send.seq.to_be_bytes());
        put_secs(&mut out, self.written_at);
        out
    }

    /// Decodes what [`to_bytes`](Self::to_bytes) wrote, and what version 1
    /// (the first release's encoding) wrote.
    ///
    /// A record from a store is input from outside: beyond the ranges of
    /// its fields, the decoder refuses records no transition writes (see
    /// [`RecordError::Contradiction`]).
    ///
    /// Version 1 records keep their validation, their lockout and their
    /// failure count (as consecutive failures; a subject locked under
    /// version 1 counts one). Their fixed send window is not carried over:
    /// the send bucket starts full.
    ///
    /// # Errors
    /// [`RecordError`] for an unknown version, a truncated or over-long input,
    /// an unknown state or channel, an instant out of range, or a
    /// contradiction.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, RecordError> {
        let mut r = Reader { bytes };
        // The generation as encoded: a record holds it in its validation,
        // so one encoded without a validation is checked here.
        let (record, generation) = match r.u8()? {
            1 => r.v1()?,
            FORMAT_VERSION => r.v2()?,
            BUDGET_FORMAT_VERSION => (r.v3()?, 0),
            _ => return Err(RecordError::Version),
        };
        if !r.bytes.is_empty() {
            return Err(RecordError::TrailingBytes);
        }
        if record.current.is_none() && generation != 0 {
            return Err(RecordError::Contradiction(
                Contradiction::GenerationWithoutValidation,
            ));
        }
        record.check()?;
        Ok(record)
    }

    /// Refuses what no transition writes.
    fn check(&self) -> Result<(), RecordError> {
        use Contradiction as C;
        let fail = |c: C| Err(RecordError::Contradiction(c));
        let w = self.written_at;
        let soon = later(w, Duration::SECOND);
        let g = &self.ledger.guesses;
        if let Some(b) = &self.bucket {
            let widest = crate::budget::MAX_FILL + Duration::SECOND;
            if b.tat.is_some_and(|t| t > later(soon, widest)) || (b.refunded && b.last == 0) {
                return fail(C::BudgetBucket);
            }
            return Ok(());
        }
        if let Some(v) = &self.current {
            if v.generation == 0 {
                return fail(C::ValidationAtGenerationZero);
            }
            if (v.state == State::Sent) != v.ended_at.is_none() {
                return fail(C::EndTime);
            }
            if v.created_at > v.last_sent_at || v.created_at > w || v.last_sent_at > soon {
                return fail(C::SendTime);
            }
            if v.expires_at <= v.created_at
                || v.expires_at > later(v.last_sent_at, crate::policy::MAX_CODE_LIFETIME)
            {
                return fail(C::Expiry);
            }
            if v.ended_at.is_some_and(|e| e < v.created_at || e > w) {
                return fail(C::EndTime);
            }
            // A `Sent` validation written at or after its expiry is one a
            // transition that does not settle expiry (unlock, a delivery
            // report) stored; the engine reads it as expired (`bounded`).
            // A validation's sends reach 0 only when its one counted send
            // was reported failed and given back.
            let given_back = self.ledger.last_send.failed;
            let (checks, sends) = (u32::from(v.checks), u32::from(v.sends));
            if checks > MAX_BUDGET || (sends == 0 && !given_back) || sends > MAX_BUDGET {
                return fail(C::Counter);
            }
            if v.derivation == 0 {
                return fail(C::Derivation);
            }
            if v.state == State::Validated && g.failures > 0 {
                return fail(C::FailuresAfterSuccess);
            }
        }
        if (g.failures == 0) != g.last_failure_at.is_none()
            || g.last_failure_at.is_some_and(|t| t > soon)
        {
            return fail(C::Failures);
        }
        if g.locked_until.is_some_and(|t| {
            g.failures == 0 || t > later(w, crate::policy::MAX_WINDOW + Duration::SECOND)
        }) {
            return fail(C::Lockout);
        }
        let widest = crate::policy::MAX_WINDOW
            .saturating_mul(i32::try_from(MAX_SUBJECT_BUDGET).unwrap_or(i32::MAX));
        if self
            .ledger
            .sends
            .tat
            .is_some_and(|t| t > later(soon, widest))
        {
            return fail(C::SendBucket);
        }
        Ok(())
    }
}

const FORMAT_VERSION: u8 = 2;
/// A budget key's record (see [`Record::to_bytes`]).
const BUDGET_FORMAT_VERSION: u8 = 3;
use crate::policy::{MAX_BUDGET, MAX_SUBJECT_BUDGET};

/// `now` as the engine takes it: in UTC, and within the instants a record
/// can hold (from the Unix epoch to the year 9000, which leaves room for
/// every deadline the policy can add). Every engine call passes its `now`
/// through here first.
pub(crate) fn normalize_now(now: OffsetDateTime) -> OffsetDateTime {
    // The usual case, read from the fields: already UTC, between 1970 and
    // the year 9000 (the slow path divides a 128-bit nanosecond count).
    if now.offset().is_utc() && (1970..9000).contains(&now.year()) {
        return now;
    }
    // Through the Unix timestamp, not `to_offset`, which panics when the
    // instant has no UTC date in range.
    let nanos = now.unix_timestamp_nanos();
    OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .unwrap_or(if nanos < 0 {
            OffsetDateTime::UNIX_EPOCH
        } else {
            MAX_NOW
        })
        .clamp(OffsetDateTime::UNIX_EPOCH, MAX_NOW)
}

fn saturating_u8(n: u32) -> u8 {
    u8::try_from(n).unwrap_or(u8::MAX)
}

fn put_secs(out: &mut Vec<u8>, t: Secs) {
    out.extend_from_slice(&t.get().to_be_bytes());
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl Reader<'_> {
    fn array<const N: usize>(&mut self) -> Result<[u8; N], RecordError> {
        let (head, rest) = self
            .bytes
            .split_first_chunk::<N>()
            .ok_or(RecordError::Truncated)?;
        self.bytes = rest;
        Ok(*head)
    }
    fn u8(&mut self) -> Result<u8, RecordError> {
        Ok(self.array::<1>()?[0])
    }
    fn u32(&mut self) -> Result<u32, RecordError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    fn state(&mut self) -> Result<State, RecordError> {
        State::from_byte(self.u8()?).ok_or(RecordError::Invalid("state"))
    }
    fn channel(&mut self) -> Result<Channel, RecordError> {
        Channel::from_byte(self.u8()?).ok_or(RecordError::Invalid("channel"))
    }
    /// Version 2: Unix seconds, within the codec's range.
    fn secs(&mut self) -> Result<Secs, RecordError> {
        let secs = i64::from_be_bytes(self.array()?);
        (0..=MAX_SECS)
            .contains(&secs)
            .then_some(Secs::new(secs))
            .ok_or(RecordError::Invalid("instant"))
    }
    fn opt_secs(&mut self, present: bool) -> Result<Option<Secs>, RecordError> {
        present.then(|| self.secs()).transpose()
    }

    /// The record and the generation as encoded.
    fn v2(&mut self) -> Result<(Record, u32), RecordError> {
        let generation = self.u32()?;
        let flags = self.u8()?;
        if flags >> 6 != 0 {
            return Err(RecordError::Invalid("flags"));
        }
        let flag = |bit: u8| flags & (1 << bit) != 0;
        if !flag(0) && flag(1) {
            return Err(RecordError::Invalid("flags"));
        }
        let current = if flag(0) {
            Some(Validation {
                generation,
                state: self.state()?,
                channel: self.channel()?,
                derivation: self.u8()?,
                key_id: KeyId(self.u32()?),
                nonce: self.array()?,
                created_at: self.secs()?,
                last_sent_at: self.secs()?,
                expires_at: self.secs()?,
                ended_at: self.opt_secs(flag(1))?,
                checks: self.u8()?,
                sends: self.u8()?,
            })
        } else {
            None
        };
        let failures = self.u32()?;
        let guesses = Guesses {
            failures,
            last_failure_at: self.opt_secs(flag(2))?,
            locked_until: self.opt_secs(flag(3))?,
        };
        let sends = SendRate {
            tat: self.opt_secs(flag(4))?,
        };
        let last_send = LastSend {
            seq: self.u32()?,
            failed: flag(5),
        };
        let record = Record {
            current,
            ledger: Ledger {
                guesses,
                sends,
                last_send,
            },
            written_at: self.secs()?,
            bucket: None,
        };
        Ok((record, generation))
    }

    /// Version 3: a budget key's bucket.
    fn v3(&mut self) -> Result<Record, RecordError> {
        let kind = BudgetKind::from_byte(self.u8()?).ok_or(RecordError::Invalid("kind"))?;
        let flags = self.u8()?;
        if flags >> 2 != 0 {
            return Err(RecordError::Invalid("flags"));
        }
        let tat = self.opt_secs(flags & 1 != 0)?;
        let last = u64::from_be_bytes(self.array()?);
        let mut record = Record::bucket(kind);
        if let Some(b) = record.bucket.as_mut() {
            b.tat = tat;
            b.last = last;
            b.refunded = flags & 2 != 0;
        }
        record.written_at = self.secs()?;
        Ok(record)
    }

    /// Version 1: instants as Unix nanoseconds (`i128`), fixed windows.
    /// The record and the generation as encoded.
    fn v1(&mut self) -> Result<(Record, u32), RecordError> {
        let generation = self.u32()?;
        let current = match self.u8()? {
            0 => None,
            1 => Some(Validation {
                generation,
                state: self.state()?,
                channel: self.channel()?,
                derivation: DERIVATION_V1,
                key_id: KeyId(self.u32()?),
                nonce: self.array()?,
                created_at: self.nanos()?.floor(),
                last_sent_at: self.nanos()?.ceil(),
                expires_at: self.nanos()?.ceil(),
                ended_at: self.opt_nanos()?.map(At::floor),
                // Past 255 is past any budget (100): refused by `check`.
                checks: saturating_u8(self.u32()?),
                sends: saturating_u8(self.u32()?),
            }),
            _ => return Err(RecordError::Invalid("validation flag")),
        };
        let failures = self.u32()?;
        let failures_since = self.opt_nanos()?;
        let _send_count = self.u32()?;
        let sends_since = self.opt_nanos()?;
        let locked_until = self.opt_nanos()?.map(At::ceil);
        // Version 1 kept no write instant: the latest instant it holds
        // that marks something that happened stands in for it.
        let happened = [
            current.as_ref().map(|v| v.created_at),
            current.as_ref().map(|v| v.last_sent_at),
            current.as_ref().and_then(|v| v.ended_at),
            failures_since.map(At::floor),
            sends_since.map(At::floor),
        ];
        let written_at = happened.into_iter().flatten().max().unwrap_or(Secs::EPOCH);
        let validated = current.as_ref().is_some_and(|v| v.state.is_validated());
        // A version 1 lockout reset the count; the lock stands for one.
        let failures = match (validated, locked_until) {
            (true, _) => 0,
            (false, Some(_)) => failures.max(1),
            (false, None) => failures,
        };
        let guesses = Guesses {
            failures,
            last_failure_at: (failures > 0).then_some(written_at),
            locked_until,
        };
        let record = Record {
            current,
            ledger: Ledger {
                guesses,
                sends: SendRate::default(),
                // Version 1 numbered no sends: none of its sends can be
                // reported (ids start at 1).
                last_send: LastSend::default(),
            },
            written_at,
            bucket: None,
        };
        Ok((record, generation))
    }
    fn nanos(&mut self) -> Result<At, RecordError> {
        let nanos = i128::from_be_bytes(self.array()?);
        let billion = i128::from(NANOS);
        if !(0..=i128::from(MAX_SECS) * billion).contains(&nanos) {
            return Err(RecordError::Invalid("instant"));
        }
        let secs = i64::try_from(nanos / billion).map_err(|_| RecordError::Invalid("instant"))?;
        let sub = u32::try_from(nanos % billion).map_err(|_| RecordError::Invalid("instant"))?;
        Ok(Secs::new(secs)
            .at()
            .plus(Duration::nanoseconds(i64::from(sub))))
    }
    fn opt_nanos(&mut self) -> Result<Option<At>, RecordError> {
        match self.u8()? {
            0 => Ok(None),
            1 => self.nanos().map(Some),
            _ => Err(RecordError::Invalid("option flag")),
        }
    }
}

/// Stored bytes that are not a record this version can read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecordError {
    /// An encoding version this build does not know.
    Version,
    /// The bytes end early.
    Truncated,
    /// Bytes remain after the record.
    TrailingBytes,
    /// A field holds a value no record can have.
    Invalid(&'static str),
    /// The fields are each in range but contradict each other: no
    /// transition writes such a record.
    Contradiction(Contradiction),
}

/// Which fields of a record contradict each other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Contradiction {
    /// A validation at generation 0 (the first validation is 1).
    ValidationAtGenerationZero,
    /// A generation past 0 without its validation.
    GenerationWithoutValidation,
    /// A `Sent` validation with an end time, a terminal one without, or an
    /// end before the start or after the last write.
    EndTime,
    /// Created after its last send, or sent after the record was written.
    SendTime,
    /// An expiry not after the creation, further from the last send than
    /// the longest code lifetime, or a `Sent` validation written at or
    /// after its own expiry.
    Expiry,
    /// Checks or sends beyond any policy's budget, or a validation never
    /// sent.
    Counter,
    /// Derivation 0, which no release writes.
    Derivation,
    /// A validated validation with failures counted after it (a success
    /// resets the count).
    FailuresAfterSuccess,
    /// A failure count without the time of the last failure, or the
    /// reverse, or a last failure after the last write.
    Failures,
    /// A lockout without failures, or longer than any policy's longest.
    Lockout,
    /// A send bucket further ahead than any policy fills it.
    SendBucket,
    /// A budget key's bucket further ahead than any rate fills it, or a
    /// give-back of no spend.
    BudgetBucket,
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Version => f.write_str("unknown record encoding version"),
            Self::Truncated => f.write_str("record bytes end early"),
            Self::TrailingBytes => f.write_str("bytes remain after the record"),
            Self::Invalid(field) => write!(f, "record field `{field}` holds an impossible value"),
            Self::Contradiction(c) => write!(f, "record fields contradict each other: {c:?}"),
        }
    }
}

impl std::error::Error for RecordError {}

/// An instant as a record holds it: whole seconds since the Unix epoch.
/// Records compare and move these with integer arithmetic; they become an
/// [`OffsetDateTime`] only at the public API's edge.
///
/// Kept as its distance past the first instant `time` holds, plus one:
/// never zero, so an `Option<Secs>` takes 8 bytes, not 16 (a record holds
/// five). The order is the instants' order.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Secs(NonZeroI64);

impl core::fmt::Debug for Secs {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Secs({})", self.get())
    }
}

impl Secs {
    /// The Unix epoch, the first instant a record holds.
    pub(crate) const EPOCH: Self = Self::new(0);

    /// `secs` Unix seconds, within the years -9999 to 9999 (clamped).
    pub(crate) const fn new(secs: i64) -> Self {
        let secs = if secs < MIN_SECS {
            MIN_SECS
        } else if secs > MAX_SECS {
            MAX_SECS
        } else {
            secs
        };
        // At least 1: never zero, never overflows.
        match NonZeroI64::new(secs - MIN_SECS + 1) {
            Some(n) => Self(n),
            None => Self(NonZeroI64::MAX),
        }
    }

    /// The Unix seconds.
    pub(crate) const fn get(self) -> i64 {
        self.0.get() + MIN_SECS - 1
    }

    /// The instant, to the nanosecond (exact).
    pub(crate) const fn at(self) -> At {
        At {
            secs: self.get(),
            nanos: 0,
        }
    }

    /// `self + d`, saturating as [`later`] does.
    pub(crate) fn plus(self, d: Duration) -> At {
        self.at().plus(d)
    }

    /// The instant for the public API.
    pub(crate) fn to_datetime(self) -> OffsetDateTime {
        self.at().to_datetime()
    }

    /// Whole seconds of a date: for tests and fuzzing, which write instants
    /// as dates.
    #[cfg(any(test, feature = "fuzzing", feature = "testkit"))]
    pub(crate) fn of(t: OffsetDateTime) -> Self {
        At::of(t).floor()
    }
}

/// An instant the engine computes with: the time since the Unix epoch, to
/// the nanosecond (the clock's `now`, or a stored instant plus a policy
/// duration). Plain integers, no calendar: the clock's `now` is converted
/// once per operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct At {
    secs: i64,
    /// Below 1 000 000 000.
    nanos: u32,
}

const NANOS: i64 = 1_000_000_000;

impl At {
    /// `t` as the engine takes it (see [`normalize_now`]).
    pub(crate) fn now(t: OffsetDateTime) -> Self {
        Self::of(normalize_now(t))
    }

    /// `t`'s Unix time, to the nanosecond.
    pub(crate) fn of(t: OffsetDateTime) -> Self {
        Self {
            secs: t.unix_timestamp(),
            nanos: t.nanosecond(),
        }
    }

    /// The instant for the public API (one calendar conversion).
    pub(crate) fn to_datetime(self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(self.secs)
            .ok()
            .and_then(|t| t.replace_nanosecond(self.nanos).ok())
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    /// Rounded down to the second.
    pub(crate) const fn floor(self) -> Secs {
        Secs::new(self.secs)
    }

    /// Rounded up to the second (saturating at the last instant).
    pub(crate) fn ceil(self) -> Secs {
        if self.nanos == 0 {
            Secs::new(self.secs)
        } else {
            Secs::new(self.secs.saturating_add(1).min(MAX_SECS))
        }
    }

    /// `self + d`, saturating as [`later`] does.
    pub(crate) fn plus(self, d: Duration) -> Self {
        let mut secs = self.secs.saturating_add(d.whole_seconds());
        // In (-1e9, 2e9): one carry at most.
        let mut nanos = i64::from(self.nanos) + i64::from(d.subsec_nanoseconds());
        if nanos >= NANOS {
            secs = secs.saturating_add(1);
            nanos -= NANOS;
        } else if nanos < 0 {
            secs = secs.saturating_sub(1);
            nanos += NANOS;
        }
        // As `OffsetDateTime::checked_add` fails past the year 9999 (or
        // before -9999): the last instant (or the first).
        if secs > MAX_SECS {
            return MAX_SECS_AT;
        }
        if secs < MIN_SECS {
            return Secs::new(MIN_SECS).at();
        }
        Self {
            secs,
            nanos: u32::try_from(nanos).unwrap_or(0),
        }
    }
}

impl PartialEq<Secs> for At {
    fn eq(&self, other: &Secs) -> bool {
        *self == other.at()
    }
}

impl PartialOrd<Secs> for At {
    fn partial_cmp(&self, other: &Secs) -> Option<core::cmp::Ordering> {
        Some(self.cmp(&other.at()))
    }
}

impl PartialEq<At> for Secs {
    fn eq(&self, other: &At) -> bool {
        self.at() == *other
    }
}

impl PartialOrd<At> for Secs {
    fn partial_cmp(&self, other: &At) -> Option<core::cmp::Ordering> {
        Some(self.at().cmp(other))
    }
}

impl From<Secs> for At {
    fn from(s: Secs) -> Self {
        s.at()
    }
}

#[cfg(test)]
impl core::ops::Add<Duration> for At {
    type Output = Self;
    fn add(self, d: Duration) -> Self {
        self.plus(d)
    }
}

#[cfg(test)]
impl core::ops::AddAssign<Duration> for At {
    fn add_assign(&mut self, d: Duration) {
        *self = self.plus(d);
    }
}

/// `t + d`, saturating at the last representable instant instead of
/// panicking: records from a store and callers' clocks are not trusted to
/// stay in range.
pub(crate) fn later(t: impl Into<At>, d: Duration) -> At {
    t.into().plus(d)
}

/// `b - a`, never negative.
pub(crate) fn until(a: impl Into<At>, b: impl Into<At>) -> Duration {
    let (a, b) = (a.into(), b.into());
    if b <= a {
        return Duration::ZERO;
    }
    // Both within the years ±9999: no overflow.
    let nanos = i64::from(b.nanos) - i64::from(a.nanos);
    Duration::new(b.secs - a.secs, i32::try_from(nanos).unwrap_or(0))
}

/// The last instant a record holds.
pub(crate) const MAX_INSTANT: OffsetDateTime = time::macros::datetime!(9999-12-31 23:59:59 UTC);
/// [`MAX_INSTANT`] in Unix seconds.
pub(crate) const MAX_SECS: i64 = 253_402_300_799;
const MAX_SECS_AT: At = Secs::new(MAX_SECS).at();
/// The first instant `time` holds (-9999-01-01), in Unix seconds.
const MIN_SECS: i64 = -377_705_116_800;
/// The last `now` the engine works with (see [`normalize_now`]).
pub(crate) const MAX_NOW: OffsetDateTime = time::macros::datetime!(9000-01-01 0:00 UTC);

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    /// 2024-11-22 12:00 UTC.
    const T: Secs = Secs::new(1_732_276_800);

    impl core::ops::Add<Duration> for Secs {
        type Output = Self;
        fn add(self, d: Duration) -> Self {
            self.plus(d).floor()
        }
    }

    impl core::ops::AddAssign<Duration> for Secs {
        fn add_assign(&mut self, d: Duration) {
            *self = *self + d;
        }
    }

    impl core::ops::Sub for Secs {
        type Output = Duration;
        fn sub(self, a: Self) -> Duration {
            Duration::seconds(self.get() - a.get())
        }
    }

    #[test]
    fn instant_constants() {
        assert_eq!(Secs::new(MAX_SECS).to_datetime(), MAX_INSTANT);
        assert_eq!(
            Secs::new(MIN_SECS).to_datetime(),
            datetime!(-9999-01-01 0:00 UTC)
        );
        assert_eq!(Secs::of(T.to_datetime()), T);
        assert_eq!(T.to_datetime(), datetime!(2024-11-22 12:00 UTC));
    }

    fn sample() -> Record {
        Record {
            current: Some(Validation {
                generation: 7,
                state: State::Locked,
                channel: Channel::Whatsapp,
                derivation: DERIVATION_V1,
                key_id: KeyId(3),
                nonce: [5; NONCE_LEN],
                created_at: T,
                last_sent_at: T + Duration::seconds(40),
                expires_at: T + Duration::minutes(10),
                ended_at: Some(T + Duration::minutes(2)),
                checks: 5,
                sends: 2,
            }),
            ledger: Ledger {
                guesses: Guesses {
                    failures: 4,
                    last_failure_at: Some(T + Duration::minutes(2)),
                    locked_until: Some(T + Duration::hours(1)),
                },
                sends: SendRate {
                    tat: Some(T + Duration::minutes(20)),
                },
                last_send: LastSend {
                    seq: 9,
                    failed: false,
                },
            },
            written_at: T + Duration::minutes(2),
            bucket: None,
        }
    }

    fn live() -> Record {
        let mut r = sample();
        if let Some(v) = r.current.as_mut() {
            v.state = State::Sent;
            v.ended_at = None;
            v.checks = 0;
            v.sends = 1;
        }
        r.ledger.guesses = Guesses::default();
        r.written_at = T + Duration::seconds(40);
        r
    }

    /// The in-memory size `MemoryStore` pays per record: the generation
    /// lives in the validation, the counters in bytes (64-bit targets).
    #[cfg(target_pointer_width = "64")]
    #[test]
    fn a_record_takes_120_bytes() {
        assert_eq!(core::mem::size_of::<Record>(), 120);
    }

    #[test]
    fn round_trip() {
        for r in [sample(), live(), Record::empty()] {
            assert_eq!(Record::from_bytes(&r.to_bytes()), Ok(r));
        }
        // The memory goal: at most 96 bytes for a live validation.
        assert_eq!(live().to_bytes().len(), 79);
        // A send given back round-trips too, even the validation's only one.
        let mut failed = live();
        failed.ledger.last_send.failed = true;
        if let Some(v) = failed.current.as_mut() {
            v.sends = 0;
        }
        assert_eq!(Record::from_bytes(&failed.to_bytes()), Ok(failed));
    }

    fn budget(tat: Option<Secs>) -> Record {
        let mut r = Record::bucket(BudgetKind::Range);
        r.bucket = Some(Box::new(KeyBucket {
            kind: BudgetKind::Range,
            tat,
            last: 0x0123_4567_89ab_cdef,
            refunded: true,
        }));
        r.written_at = T;
        r
    }

    #[test]
    fn budget_records_are_version_3_and_checked() {
        let r = budget(Some(T + Duration::minutes(30)));
        let bytes = r.to_bytes();
        assert_eq!((bytes[0], bytes.len()), (3, 27));
        assert_eq!(Record::from_bytes(&bytes), Ok(r.clone()));
        let full = budget(None);
        assert_eq!(Record::from_bytes(&full.to_bytes()), Ok(full));
        for n in 0..bytes.len() {
            assert!(Record::from_bytes(&bytes[..n]).is_err(), "prefix {n}");
        }
        let mut bad = bytes.clone();
        bad[1] = 9;
        assert_eq!(Record::from_bytes(&bad), Err(RecordError::Invalid("kind")));
        let mut bad = bytes;
        bad[2] = 4;
        assert_eq!(Record::from_bytes(&bad), Err(RecordError::Invalid("flags")));
        assert_eq!(
            refused(&budget(Some(Secs::of(datetime!(9000-01-01 0:00 UTC))))),
            Contradiction::BudgetBucket
        );
        let mut never_spent = budget(None);
        if let Some(b) = never_spent.bucket.as_mut() {
            b.last = 0;
        }
        assert_eq!(refused(&never_spent), Contradiction::BudgetBucket);
        // Its TTL: the TAT, at most the rate's fill past the write; a kind
        // the policy does not count is over at once.
        let p = crate::Policy::default();
        assert_eq!(r.expires_at(&p), (T + Duration::minutes(30)).to_datetime());
        let far = budget(Some(T + Duration::days(300)));
        assert_eq!(
            far.expires_at(&p),
            (T + Duration::minutes(60) + Duration::SECOND).to_datetime()
        );
        let off = crate::Policy::builder()
            .budget_rate(BudgetKind::Range, None)
            .build()
            .expect("a valid policy");
        assert_eq!(far.expires_at(&off), T.to_datetime());
        assert!(far.is_budget() && !sample().is_budget());
    }

    #[test]
    fn every_truncation_and_extension_is_refused() {
        let bytes = sample().to_bytes();
        for n in 0..bytes.len() {
            assert!(Record::from_bytes(&bytes[..n]).is_err(), "prefix {n}");
        }
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(Record::from_bytes(&long), Err(RecordError::TrailingBytes));
        let mut bad = bytes;
        bad[0] = 4;
        assert_eq!(Record::from_bytes(&bad), Err(RecordError::Version));
    }

    /// Written by version 1 (the code before format 2).
    const V1_STARTED: &str = concat!(
        "0100000001010000000000031bdd9566764604029776c8d223b8290700000000",
        "0000000018ea5c38bed33280000000000000000018ea5c38bed3328000000000",
        "0000000018ea5cc4719ca2800000000000000000010000000000000000010100",
        "0000000000000018ea5c38bed3328000",
    );
    /// Written by version 1 (the code before format 2).
    const V1_ONE_FAILURE: &str = concat!(
        "0100000001010000000000031bdd9566764604029776c8d223b8290700000000",
        "0000000018ea5c38bed33280000000000000000018ea5c38bed3328000000000",
        "0000000018ea5cc4719ca2800000000001000000010000000101000000000000",
        "000018ea5c39e8d924800000000101000000000000000018ea5c38bed3328000",
    );
    /// Written by version 1 (the code before format 2).
    const V1_LOCKED: &str = concat!(
        "0100000001010300000000031bdd9566764604029776c8d223b8290700000000",
        "0000000018ea5c38bed33280000000000000000018ea5c38bed3328000000000",
        "0000000018ea5cc4719ca28001000000000000000018ea5c3a600eb880000000",
        "020000000100000000000000000101000000000000000018ea5c38bed3328001",
        "000000000000000018ea5f8090c75880",
    );
    /// Written by version 1 (the code before format 2).
    const V1_CANCELED: &str = concat!(
        "0100000001010400000000031bdd9566764604029776c8d223b8290700000000",
        "0000000018ea5c38bed33280000000000000000018ea5c38bed3328000000000",
        "0000000018ea5cc4719ca28001000000000000000018ea5c3ad7444c80000000",
        "000000000100000000000000000101000000000000000018ea5c38bed3328000",
    );
    /// Written by version 1 (the code before format 2).
    const V1_VALIDATED: &str = concat!(
        "0100000001010100000000031bdd9566764604029776c8d223b8290700000000",
        "0000000018ea5c38bed33280000000000000000018ea5c38bed3328000000000",
        "0000000018ea5cc4719ca28001000000000000000018ea5c3b4e79e080000000",
        "010000000100000000000000000101000000000000000018ea5c38bed3328000",
    );

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    #[test]
    fn version_1_records_still_decode() {
        let at = datetime!(2026-11-22 12:00:00.25 UTC);
        let started = Record::from_bytes(&unhex(V1_STARTED)).expect("a v1 record");
        let v = started.current.as_ref().expect("a validation");
        assert_eq!((started.generation(), v.state), (1, State::Sent));
        assert_eq!(
            (v.derivation, v.key_id, v.checks, v.sends),
            (1, KeyId(3), 0, 1)
        );
        assert_eq!(v.created_at, Secs::of(datetime!(2026-11-22 12:00 UTC)));
        // Rounded up: the expiry never moves earlier.
        assert_eq!(v.expires_at, Secs::of(datetime!(2026-11-22 12:10:01 UTC)));
        assert!(v.expires_at >= At::of(at) + Duration::minutes(10));
        assert_eq!(started.ledger.guesses.failures, 0);

        let failed = Record::from_bytes(&unhex(V1_ONE_FAILURE)).expect("a v1 record");
        assert_eq!(failed.ledger.guesses.failures, 1);
        assert_eq!(failed.current.as_ref().map(|v| v.checks), Some(1));

        let locked = Record::from_bytes(&unhex(V1_LOCKED)).expect("a v1 record");
        assert_eq!(locked.state(), Some(State::Locked));
        assert_eq!(
            locked.ledger.guesses.locked_until,
            Some(Secs::of(datetime!(2026-11-22 13:00:08 UTC)))
        );
        assert!(locked.ledger.guesses.failures >= 1);

        let canceled = Record::from_bytes(&unhex(V1_CANCELED)).expect("a v1 record");
        assert_eq!(canceled.state(), Some(State::Canceled));
        let validated = Record::from_bytes(&unhex(V1_VALIDATED)).expect("a v1 record");
        assert_eq!(validated.state(), Some(State::Validated));

        // Each re-encodes as version 2 and reads back the same.
        for r in [started, failed, locked, canceled, validated] {
            let bytes = r.to_bytes();
            assert_eq!(bytes[0], 2);
            assert_eq!(Record::from_bytes(&bytes), Ok(r));
        }
    }

    fn v(r: &mut Record) -> &mut Validation {
        r.current.as_mut().expect("a validation")
    }

    fn refused(r: &Record) -> Contradiction {
        match Record::from_bytes(&r.to_bytes()) {
            Err(RecordError::Contradiction(c)) => c,
            other => panic!("accepted or refused otherwise: {other:?}"),
        }
    }

    #[test]
    fn contradictions_are_refused() {
        use Contradiction as C;
        let edit = |f: &dyn Fn(&mut Record)| {
            let mut r = live();
            f(&mut r);
            refused(&r)
        };
        assert_eq!(
            edit(&|r| v(r).ended_at = Some(T + Duration::seconds(1))),
            C::EndTime
        );
        assert_eq!(
            edit(&|r| v(r).generation = 0),
            C::ValidationAtGenerationZero
        );
        // A record holds its generation in its validation: a generation
        // without one exists only in bytes.
        let mut bare = Record::empty().to_bytes();
        bare[1..5].copy_from_slice(&7u32.to_be_bytes());
        assert_eq!(
            Record::from_bytes(&bare),
            Err(RecordError::Contradiction(C::GenerationWithoutValidation))
        );
        assert_eq!(
            edit(&|r| v(r).created_at = T + Duration::hours(1)),
            C::SendTime
        );
        assert_eq!(
            edit(&|r| v(r).expires_at = Secs::of(datetime!(9999-12-31 0:00 UTC))),
            C::Expiry
        );
        assert_eq!(edit(&|r| v(r).expires_at = v(r).created_at), C::Expiry);
        assert_eq!(edit(&|r| v(r).checks = 101), C::Counter);
        assert_eq!(edit(&|r| v(r).sends = 0), C::Counter);
        assert_eq!(edit(&|r| v(r).derivation = 0), C::Derivation);
        assert_eq!(edit(&|r| r.ledger.guesses.failures = 3), C::Failures);
        assert_eq!(
            edit(&|r| r.ledger.guesses.locked_until = Some(T + Duration::hours(1))),
            C::Lockout
        );
        assert_eq!(
            edit(&|r| {
                r.ledger.guesses.failures = 1;
                r.ledger.guesses.last_failure_at = Some(T);
                r.ledger.guesses.locked_until = Some(T + Duration::days(365));
            }),
            C::Lockout
        );
        assert_eq!(
            edit(&|r| r.ledger.sends.tat = Some(Secs::of(datetime!(9999-01-01 0:00 UTC)))),
            C::SendBucket
        );
        assert_eq!(
            edit(&|r| {
                v(r).state = State::Validated;
                v(r).ended_at = Some(T);
                r.ledger.guesses.failures = 1;
                r.ledger.guesses.last_failure_at = Some(T);
            }),
            C::FailuresAfterSuccess
        );
    }

    #[test]
    fn bounded_clamps_what_a_jumped_clock_wrote() {
        let p = crate::Policy::default();
        // Written a year ahead (a clock that jumped), read after the
        // correction.
        let ahead = Duration::days(365);
        let mut r = live();
        r.written_at += ahead;
        if let Some(v) = r.current.as_mut() {
            v.created_at += ahead;
            v.last_sent_at += ahead;
            v.expires_at += ahead;
        }
        r.ledger.guesses = Guesses {
            failures: 20,
            last_failure_at: Some(T + ahead),
            locked_until: Some(T + ahead + Duration::hours(1)),
        };
        r.ledger.sends.tat = Some(T + ahead + Duration::minutes(10));
        let now = T + Duration::minutes(1);
        let b = r.bounded(now.at(), &p);
        let v = b.current.as_ref().expect("a validation");
        assert_eq!(v.expires_at, now + Duration::minutes(10));
        assert!(!b.is_live(now.at()), "a code issued a year ahead is dead");
        // What the lockout and the send budget owed at the write, from now.
        let written = r.written_at;
        assert_eq!(
            b.ledger.guesses.locked_until,
            Some(now + (T + ahead + Duration::hours(1) - written))
        );
        assert_eq!(
            b.ledger.sends.tat,
            Some(now + (T + ahead + Duration::minutes(10) - written))
        );
        // And never more than the policy gives, from now.
        r.ledger.guesses.locked_until = Some(T + ahead + Duration::days(30));
        let b = r.bounded(now.at(), &p);
        assert_eq!(
            b.ledger.guesses.locked_until,
            Some(now + Duration::hours(1))
        );
        // The TTL of what is stored follows the bounded values too.
        assert!(
            r.expires_at(&p)
                <= (r.written_at + Duration::days(365) + Duration::SECOND).to_datetime()
        );
    }

    /// Found by the `lifecycle` fuzz target: a record written near the
    /// end of the engine's range, read at its start, had its deadlines
    /// moved before 1970, which no record holds.
    #[test]
    fn bounded_never_moves_an_instant_before_the_epoch() {
        let p = crate::Policy::default();
        let late = Secs::of(datetime!(8999-06-01 0:00 UTC));
        let mut r = live();
        r.written_at = late;
        if let Some(v) = r.current.as_mut() {
            v.created_at = late;
            v.last_sent_at = late;
            v.expires_at = late + Duration::minutes(10);
        }
        // Deadlines long past at that write (a lock that ended in 2000).
        let old = Secs::of(datetime!(2000-01-01 0:00 UTC));
        r.ledger.guesses = Guesses {
            failures: 5,
            last_failure_at: Some(old),
            locked_until: Some(old + Duration::hours(1)),
        };
        r.ledger.sends.tat = Some(old + Duration::minutes(10));
        let now = Secs::new(30).at();
        let b = r.bounded(now, &p);
        let g = &b.ledger.guesses;
        assert!(g.last_failure_at >= Some(Secs::EPOCH));
        assert!(g.locked_until >= Some(Secs::EPOCH));
        assert!(b.ledger.sends.tat >= Some(Secs::EPOCH));
        let mut written = b.clone();
        written.written_at = now.floor();
        assert_eq!(Record::from_bytes(&written.to_bytes()), Ok(written));
    }

    #[test]
    fn now_is_utc_and_in_range() {
        let odd = datetime!(9999-12-31 23:59:59.999_999_999 -23:59:59);
        assert_eq!(normalize_now(odd), MAX_NOW);
        let east = datetime!(2026-01-01 12:00 +05:00);
        assert_eq!(normalize_now(east).offset(), time::UtcOffset::UTC);
        assert_eq!(normalize_now(east), east);
        assert_eq!(
            normalize_now(datetime!(1600-01-01 0:00 UTC)),
            OffsetDateTime::UNIX_EPOCH
        );
        let low = datetime!(-9999-01-01 0:00 +23:59:59);
        assert_eq!(normalize_now(low), OffsetDateTime::UNIX_EPOCH);
    }

    #[test]
    fn rounding() {
        let t = At::of(datetime!(2026-01-01 0:00:00.1 UTC));
        assert_eq!(t.floor(), Secs::of(datetime!(2026-01-01 0:00 UTC)));
        assert_eq!(t.ceil(), Secs::of(datetime!(2026-01-01 0:00:01 UTC)));
        assert_eq!(t.floor().at().ceil(), t.floor());
        assert_eq!(t.to_datetime(), datetime!(2026-01-01 0:00:00.1 UTC));
        // Sub-second durations carry and borrow.
        let d = Duration::milliseconds(950);
        assert_eq!(
            t.plus(d).to_datetime(),
            datetime!(2026-01-01 0:00:01.05 UTC)
        );
        assert_eq!(
            t.plus(-d).to_datetime(),
            datetime!(2025-12-31 23:59:59.15 UTC)
        );
        assert_eq!(until(t, t.plus(d)), d);
    }

    #[test]
    fn saturating_time() {
        let max = Secs::new(MAX_SECS);
        assert_eq!(later(max, Duration::days(1)), max.at());
        assert_eq!(later(max, Duration::milliseconds(5)).ceil(), max);
        assert_eq!(
            later(Secs::new(MIN_SECS), -Duration::days(1)),
            Secs::new(MIN_SECS).at()
        );
        assert_eq!(until(max, Secs::new(MIN_SECS)), Duration::ZERO);
    }
}
