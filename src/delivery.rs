//! Delivery outcomes: which send a report is about ([`SendId`]) and what the
//! provider said ([`Delivery`]).
//!
//! Every send (the first of a validation and each resend) has an id, in
//! [`Sent::send`](crate::Sent::send) and the matching
//! [`Event::Sent`](crate::Event::Sent) / [`Event::Resent`](crate::Event::Resent).
//! Keep it beside the provider's message id; when the provider reports that
//! the message was not delivered, pass it to
//! [`Verifier::report_delivery`](crate::Verifier::report_delivery) (or
//! [`Engine::report_delivery`](crate::Engine::report_delivery)).
//!
//! A failed send gives back, exactly once, its place in every budget it
//! spent — the validation's sends and the subject's send bucket, and with
//! [`report_delivery_within`](crate::Verifier::report_delivery_within) the
//! budget keys whose latest spend it still is (see
//! [`budget_key`](crate::budget_key)) — and lifts
//! the cooldown it started, so a provider outage costs users nothing. Only
//! the subject's latest send can be given back: a report about an earlier
//! send, a send of an earlier validation, or a send already reported
//! changes nothing, and a validation already validated keeps its budgets
//! (its code evidently arrived). A report is answered with an
//! [`Event::DeliveryFailed`](crate::Event::DeliveryFailed) either way.
//!
//! Reports must come from the provider (an authenticated callback, or the
//! provider's own error on the send request), never from the user: each
//! accepted report is one more message the user can ask for.

use core::fmt;

/// Which send of a subject a delivery report is about: the validation's
/// number and the subject's send number. Stable, and small enough to store
/// beside a provider's message id ([`to_u64`](Self::to_u64)).
///
/// ```
/// use otpflow::SendId;
/// let id = SendId::new(3, 7);
/// assert_eq!((id.generation(), id.send()), (3, 7));
/// assert_eq!(SendId::from_u64(id.to_u64()), id);
/// assert_eq!(id.to_string(), "3.7");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SendId {
    generation: u32,
    send: u32,
}

impl SendId {
    /// The id of send number `send` of the subject, made in validation
    /// number `generation`.
    pub const fn new(generation: u32, send: u32) -> Self {
        Self { generation, send }
    }
    /// The validation's number within its subject.
    pub const fn generation(self) -> u32 {
        self.generation
    }
    /// The send's number within its subject (1 for its first send ever).
    pub const fn send(self) -> u32 {
        self.send
    }
    /// One integer: the generation in the high 32 bits, the send in the low.
    pub const fn to_u64(self) -> u64 {
        ((self.generation as u64) << 32) | (self.send as u64)
    }
    /// The id [`to_u64`](Self::to_u64) gave.
    pub fn from_u64(n: u64) -> Self {
        let [g0, g1, g2, g3, s0, s1, s2, s3] = n.to_be_bytes();
        Self {
            generation: u32::from_be_bytes([g0, g1, g2, g3]),
            send: u32::from_be_bytes([s0, s1, s2, s3]),
        }
    }
}

/// `generation.send`, e.g. `3.7`.
impl fmt::Display for SendId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.generation, self.send)
    }
}

/// What the message provider reported about a send.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Delivery {
    /// The message reached the phone. Changes nothing; recorded as an
    /// [`Event::Delivered`](crate::Event::Delivered).
    Delivered,
    /// The message was not delivered (refused number, provider outage,
    /// undeliverable): the send's budgets are given back.
    Failed,
}
