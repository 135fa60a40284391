//! [`Events`]: the events of one [`Step`](crate::Step), in order.
//!
//! A step has at most a few events, and almost always one (a wrong code's
//! `CheckFailed`, a success's `Validated`, a start's `Sent`). One is held
//! inline, without a heap allocation ([`Events::INLINE`]: a step is moved
//! a few times between the engine, the store's closure and the caller, so
//! each inline place costs on every call); more (a start that also expired
//! the validation before it, a test number's check) move to the heap, so
//! nothing is ever dropped or refused.
//!
//! `Events` reads like the `Vec<Event>` it replaced: it derefs to
//! `[Event]` (index it, `iter()`, `len()`, `is_empty()`, `last()`, pass
//! `&step.events` where a `&[Event]` is taken), iterates by value and by
//! reference, and turns into a `Vec<Event>` with [`Events::into_vec`] or
//! `Vec::from`.

use core::fmt;
use core::ops::Deref;

use smallvec::SmallVec;

use crate::validation::Event;

/// The events of one step, in order: a slice of [`Event`]s held inline
/// (see the [module](self)).
///
/// ```
/// use otpflow::*;
/// use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};
/// use time::macros::datetime;
///
/// let engine = Engine::new(
///     Policy::default(),
///     KeyRing::new(SecretKey::new(KeyId(1), &[42u8; 32])?),
/// );
/// let phone = PhoneNumber::parse("07401 101801", &PhonePolicy::default())?;
/// let subject = SubjectKey::new(Purpose::Login, phone);
/// let now = datetime!(2026-11-22 12:00 UTC);
/// let step = engine.start(None, &subject, Channel::Sms, now, &mut ChaCha20Rng::seed_from_u64(7));
/// assert_eq!(step.events.len(), 1);
/// assert!(matches!(step.events[0], Event::Sent { generation: 1, .. }));
/// for event in &step.events {
///     println!("{event}");
/// }
/// let owned: Vec<Event> = step.events.into_vec();
/// assert_eq!(owned.len(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Events(SmallVec<[Event; Events::INLINE]>);

impl Events {
    /// How many events are held without a heap allocation.
    pub const INLINE: usize = 1;

    /// No events.
    pub fn new() -> Self {
        Self(SmallVec::new())
    }

    /// One event.
    pub fn one(event: Event) -> Self {
        let mut events = Self::new();
        events.push(event);
        events
    }

    /// Appends an event.
    pub fn push(&mut self, event: Event) {
        self.0.push(event);
    }

    /// The events as a `Vec`, in order.
    pub fn into_vec(self) -> Vec<Event> {
        self.0.into_vec()
    }
}

impl Deref for Events {
    type Target = [Event];
    fn deref(&self) -> &[Event] {
        &self.0
    }
}

impl fmt::Debug for Events {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl From<Events> for Vec<Event> {
    fn from(events: Events) -> Self {
        events.into_vec()
    }
}

impl From<Vec<Event>> for Events {
    fn from(events: Vec<Event>) -> Self {
        Self(SmallVec::from_vec(events))
    }
}

impl FromIterator<Event> for Events {
    fn from_iter<I: IntoIterator<Item = Event>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

impl Extend<Event> for Events {
    fn extend<I: IntoIterator<Item = Event>>(&mut self, iter: I) {
        self.0.extend(iter);
    }
}

impl<'a> IntoIterator for &'a Events {
    type Item = &'a Event;
    type IntoIter = core::slice::Iter<'a, Event>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl IntoIterator for Events {
    type Item = Event;
    type IntoIter = IntoIter;
    fn into_iter(self) -> IntoIter {
        IntoIter(self.0.into_iter())
    }
}

/// The events of a step by value, in order ([`Events::into_iter`]).
pub struct IntoIter(smallvec::IntoIter<[Event; Events::INLINE]>);

impl Iterator for IntoIter {
    type Item = Event;
    fn next(&mut self) -> Option<Event> {
        self.0.next()
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl DoubleEndedIterator for IntoIter {
    fn next_back(&mut self) -> Option<Event> {
        self.0.next_back()
    }
}

impl ExactSizeIterator for IntoIter {}

impl fmt::Debug for IntoIter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.as_slice()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phone::{PhoneNumber, PhonePolicy};
    use crate::subject::{Purpose, SubjectKey};

    fn expired(generation: u32) -> Event {
        let phone = PhoneNumber::parse("+447401101801", &PhonePolicy::default())
            .unwrap_or_else(|e| panic!("{e}"));
        Event::Expired {
            subject: SubjectKey::new(Purpose::Login, phone),
            generation,
        }
    }

    /// Past the inline room, events move to the heap: none is lost, the
    /// order holds, by reference and by value.
    #[test]
    fn every_event_is_kept_in_order() {
        let mut events = Events::new();
        assert!(events.is_empty());
        for g in 1..=5 {
            events.push(expired(g));
        }
        let order = |e: &Event| match e {
            Event::Expired { generation, .. } => *generation,
            _ => 0,
        };
        assert_eq!(
            events.iter().map(order).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5]
        );
        let owned: Vec<Event> = events.clone().into_vec();
        assert_eq!(owned.iter().map(order).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
        assert_eq!(Events::from(owned), events);
        let back: Vec<u32> = events.into_iter().rev().map(|e| order(&e)).collect();
        assert_eq!(back, [5, 4, 3, 2, 1]);
        assert_eq!(Events::one(expired(9)).len(), 1);
    }
}
