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

use time::{Duration, OffsetDateTime};

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

/// One validation: the nonce and key that derive its code, and its budgets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Validation {
    pub(crate) state: State,
    pub(crate) channel: Channel,
    pub(crate) key_id: KeyId,
    pub(crate) nonce: [u8; NONCE_LEN],
    pub(crate) created_at: OffsetDateTime,
    pub(crate) last_sent_at: OffsetDateTime,
    pub(crate) expires_at: OffsetDateTime,
    /// When the validation reached its terminal state.
    pub(crate) ended_at: Option<OffsetDateTime>,
    /// Checks spent on the current code.
    pub(crate) checks: u32,
    /// Sends of this validation, the first included.
    pub(crate) sends: u32,
}

/// A count within a fixed window that opens at its first event.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Window {
    pub(crate) count: u32,
    pub(crate) since: Option<OffsetDateTime>,
}

impl Window {
    /// The count that still applies at `now`. A clock that went backwards
    /// keeps the count: that errs on the side of refusing.
    pub(crate) fn count_at(&self, now: OffsetDateTime, window: Duration) -> u32 {
        match self.since {
            Some(since) if now < later(since, window) => self.count,
            _ => 0,
        }
    }

    /// Counts one event at `now`.
    pub(crate) fn add(&mut self, now: OffsetDateTime, window: Duration) {
        if self.count_at(now, window) == 0 {
            *self = Self {
                count: 0,
                since: Some(now),
            };
        }
        self.count = self.count.saturating_add(1);
    }

    /// When the current window closes.
    pub(crate) fn closes_at(&self, window: Duration) -> Option<OffsetDateTime> {
        self.since.map(|s| later(s, window))
    }
}

/// The subject's budgets that outlive any one validation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Ledger {
    pub(crate) failures: Window,
    pub(crate) sends: Window,
    pub(crate) locked_until: Option<OffsetDateTime>,
}

impl Ledger {
    pub(crate) fn locked_at(&self, now: OffsetDateTime) -> Option<OffsetDateTime> {
        self.locked_until.filter(|&until| now < until)
    }
}

/// Everything a store keeps for one subject (purpose + phone number): the
/// current validation and the subject's failure and send ledger.
///
/// Records are made only by the [`Engine`](crate::Engine)'s transitions and
/// by [`Record::from_bytes`]; their content is private. A store needs only
/// [`expires_at`](Self::expires_at), to know when a record may be dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The number of the current validation within this subject.
    pub(crate) generation: u32,
    pub(crate) current: Option<Validation>,
    pub(crate) ledger: Ledger,
}

impl Record {
    /// The latest instant at which this record still matters. Past it, the
    /// record may be dropped and behaves like an absent one, except that
    /// [`Error::AlreadyValidated`](crate::Error::AlreadyValidated) becomes
    /// [`Error::NotFound`](crate::Error::NotFound): the validation, the failure
    /// window, the send window and any lockout are all over. Use it as a TTL.
    pub fn expires_at(&self, policy: &crate::Policy) -> OffsetDateTime {
        let candidates = [
            self.current.as_ref().map(|v| v.expires_at),
            self.ledger.failures.closes_at(policy.failure_window()),
            self.ledger.sends.closes_at(policy.subject_send_window()),
            self.ledger.locked_until,
        ];
        candidates
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    /// The state of the current validation as stored (without the passing of
    /// time: use [`Engine::status`](crate::Engine::status) for that).
    pub fn state(&self) -> Option<State> {
        self.current.as_ref().map(|v| v.state)
    }

    /// The number of the current validation for this subject; 0 before the
    /// first.
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// Encodes the record for a byte store. Version 1 layout, big-endian:
    /// version, generation, the validation (if any), then the ledger;
    /// instants as Unix nanoseconds (`i128`).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(160);
        out.push(FORMAT_VERSION);
        out.extend_from_slice(&self.generation.to_be_bytes());
        match &self.current {
            None => out.push(0),
            Some(v) => {
                out.push(1);
                out.push(v.state.to_byte());
                out.push(v.channel.to_byte());
                out.extend_from_slice(&v.key_id.0.to_be_bytes());
                out.extend_from_slice(&v.nonce);
                put_time(&mut out, v.created_at);
                put_time(&mut out, v.last_sent_at);
                put_time(&mut out, v.expires_at);
                put_opt_time(&mut out, v.ended_at);
                out.extend_from_slice(&v.checks.to_be_bytes());
                out.extend_from_slice(&v.sends.to_be_bytes());
            }
        }
        for w in [self.ledger.failures, self.ledger.sends] {
            out.extend_from_slice(&w.count.to_be_bytes());
            put_opt_time(&mut out, w.since);
        }
        put_opt_time(&mut out, self.ledger.locked_until);
        out
    }

    /// Decodes what [`to_bytes`](Self::to_bytes) wrote.
    ///
    /// # Errors
    /// [`RecordError`] for an unknown version, a truncated or over-long input,
    /// an unknown state or channel, or an instant out of range.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, RecordError> {
        let mut r = Reader { bytes };
        if r.u8()? != FORMAT_VERSION {
            return Err(RecordError::Version);
        }
        let generation = r.u32()?;
        let current = match r.u8()? {
            0 => None,
            1 => Some(Validation {
                state: State::from_byte(r.u8()?).ok_or(RecordError::Invalid("state"))?,
                channel: Channel::from_byte(r.u8()?).ok_or(RecordError::Invalid("channel"))?,
                key_id: KeyId(r.u32()?),
                nonce: r.array()?,
                created_at: r.time()?,
                last_sent_at: r.time()?,
                expires_at: r.time()?,
                ended_at: r.opt_time()?,
                checks: r.u32()?,
                sends: r.u32()?,
            }),
            _ => return Err(RecordError::Invalid("validation flag")),
        };
        let mut window = || -> Result<Window, RecordError> {
            Ok(Window {
                count: r.u32()?,
                since: r.opt_time()?,
            })
        };
        let failures = window()?;
        let sends = window()?;
        let locked_until = r.opt_time()?;
        if !r.bytes.is_empty() {
            return Err(RecordError::TrailingBytes);
        }
        Ok(Self {
            generation,
            current,
            ledger: Ledger {
                failures,
                sends,
                locked_until,
            },
        })
    }
}

const FORMAT_VERSION: u8 = 1;

fn put_time(out: &mut Vec<u8>, t: OffsetDateTime) {
    out.extend_from_slice(&t.unix_timestamp_nanos().to_be_bytes());
}

fn put_opt_time(out: &mut Vec<u8>, t: Option<OffsetDateTime>) {
    match t {
        None => out.push(0),
        Some(t) => {
            out.push(1);
            put_time(out, t);
        }
    }
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
    fn time(&mut self) -> Result<OffsetDateTime, RecordError> {
        let nanos = i128::from_be_bytes(self.array()?);
        OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .map_err(|_| RecordError::Invalid("instant"))
    }
    fn opt_time(&mut self) -> Result<Option<OffsetDateTime>, RecordError> {
        match self.u8()? {
            0 => Ok(None),
            1 => self.time().map(Some),
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
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Version => f.write_str("unknown record encoding version"),
            Self::Truncated => f.write_str("record bytes end early"),
            Self::TrailingBytes => f.write_str("bytes remain after the record"),
            Self::Invalid(field) => write!(f, "record field `{field}` holds an impossible value"),
        }
    }
}

impl std::error::Error for RecordError {}

/// `t + d`, saturating at the last representable instant instead of
/// panicking: records from a store and callers' clocks are not trusted to
/// stay in range.
pub(crate) fn later(t: OffsetDateTime, d: Duration) -> OffsetDateTime {
    t.checked_add(d).unwrap_or(if d.is_negative() {
        MIN_INSTANT
    } else {
        MAX_INSTANT
    })
}

/// `b - a`, never negative.
pub(crate) fn until(a: OffsetDateTime, b: OffsetDateTime) -> Duration {
    let d = b - a;
    if d.is_negative() { Duration::ZERO } else { d }
}

const MAX_INSTANT: OffsetDateTime = time::macros::datetime!(9999-12-31 23:59:59.999_999_999 UTC);
const MIN_INSTANT: OffsetDateTime = time::macros::datetime!(-9999-01-01 0:00 UTC);

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Record {
        let t = OffsetDateTime::UNIX_EPOCH + Duration::days(20_000);
        Record {
            generation: 7,
            current: Some(Validation {
                state: State::Locked,
                channel: Channel::Whatsapp,
                key_id: KeyId(3),
                nonce: [5; NONCE_LEN],
                created_at: t,
                last_sent_at: t + Duration::seconds(40),
                expires_at: t + Duration::minutes(10),
                ended_at: Some(t + Duration::minutes(2)),
                checks: 5,
                sends: 2,
            }),
            ledger: Ledger {
                failures: Window {
                    count: 4,
                    since: Some(t),
                },
                sends: Window {
                    count: 2,
                    since: Some(t),
                },
                locked_until: None,
            },
        }
    }

    #[test]
    fn round_trip() {
        let r = sample();
        assert_eq!(Record::from_bytes(&r.to_bytes()), Ok(r));
        let empty = Record {
            generation: 0,
            current: None,
            ledger: Ledger::default(),
        };
        assert_eq!(Record::from_bytes(&empty.to_bytes()), Ok(empty));
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
        bad[0] = 2;
        assert_eq!(Record::from_bytes(&bad), Err(RecordError::Version));
    }

    #[test]
    fn saturating_time() {
        assert_eq!(later(MAX_INSTANT, Duration::days(1)), MAX_INSTANT);
        assert_eq!(until(MAX_INSTANT, MIN_INSTANT), Duration::ZERO);
    }
}
