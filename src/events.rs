//! [`Events`]: the events of one [`Step`](crate::Step), in order.
//!
//! A step has at most a few events, and almost always one (a wrong code's
//! `CheckFailed`, a success's `Validated`, a start's `Sent`). One is held
//! inline, without a heap allocation ([`Events::INLINE`]: a step is moved
//! a few times between the engine, the store's closure and the caller, so
//! each inline place costs on every call); more (a start that also expired
//! the validation before it, a test number's check) move to the heap, so
//! nothing is ever dropped or refused. By value they iterate through a
//! `Vec` (one allocation for a single event): read them by reference where
//! it matters.
//!
//! `Events` reads like the `Vec<Event>` it replaced: it derefs to
//! `[Event]` (index it, `iter()`, `len()`, `is_empty()`, `last()`, pass
//! `&step.events` where a `&[Event]` is taken), iterates by value and by
//! reference, and turns into a `Vec<Event>` with [`Events::into_vec`] or
//! `Vec::from`.

use core::fmt;
use core::ops::Deref;

use crate::validation::Event;

/// The events of one step, in order: a slice of [`Event`]s, the first held
/// inline (see the [module](self)).
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
pub struct Events(Inner);

/// No event, one inline, or several on the heap. A small type of its own
/// rather than a general inline vector: the JavaScript package counts its
/// module's bytes, and this is all a step needs.
#[derive(Clone, Default, PartialEq, Eq)]
enum Inner {
    #[default]
    None,
    One(Event),
    Many(Vec<Event>),
}

impl Events {
    /// How many events are held without a heap allocation.
    pub const INLINE: usize = 1;

    /// No events.
    pub const fn new() -> Self {
        Self(Inner::None)
    }

    /// One event.
    pub const fn one(event: Event) -> Self {
        Self(Inner::One(event))
    }

    /// Appends an event.
    pub fn push(&mut self, event: Event) {
        self.0 = match core::mem::take(&mut self.0) {
            Inner::None => Inner::One(event),
            Inner::One(first) => Inner::Many(vec![first, event]),
            Inner::Many(mut all) => {
                all.push(event);
                Inner::Many(all)
            }
        };
    }

    /// The events as a `Vec`, in order.
    pub fn into_vec(self) -> Vec<Event> {
        match self.0 {
            Inner::None => Vec::new(),
            Inner::One(event) => vec![event],
            Inner::Many(all) => all,
        }
    }
}

impl Deref for Events {
    type Target = [Event];
    fn deref(&self) -> &[Event] {
        match &self.0 {
            Inner::None => &[],
            Inner::One(event) => core::slice::from_ref(event),
            Inner::Many(all) => all,
        }
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
        events.into_iter().collect()
    }
}

impl FromIterator<Event> for Events {
    fn from_iter<I: IntoIterator<Item = Event>>(iter: I) -> Self {
        let mut events = Self::new();
        events.extend(iter);
        events
    }
}

impl Extend<Event> for Events {
    fn extend<I: IntoIterator<Item = Event>>(&mut self, iter: I) {
        iter.into_iter().for_each(|event| self.push(event));
    }
}

impl<'a> IntoIterator for &'a Events {
    type Item = &'a Event;
    type IntoIter = core::slice::Iter<'a, Event>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl IntoIterator for Events {
    type Item = Event;
    type IntoIter = IntoIter;
    fn into_iter(self) -> IntoIter {
        IntoIter(self.into_vec().into_iter())
    }
}

/// The events of a step by value, in order ([`Events::into_iter`]).
#[derive(Debug)]
pub struct IntoIter(std::vec::IntoIter<Event>);

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
