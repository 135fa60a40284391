//! `Serialize` for the types a JSON API returns (feature `serde`), in the
//! shapes such an API would answer with:
//!
//! | type | JSON |
//! |---|---|
//! | [`Channel`], [`Purpose`], [`State`] | `"sms"`, `"login"`, `"validated"` |
//! | [`PhoneNumber`] | its E.164 form, `"+447401101801"` |
//! | [`KeyId`] | a number |
//! | [`SubjectKey`] | `{"purpose": "login", "phone": "+447401101801"}` |
//! | [`Status`], [`Validated`] | objects; instants as RFC 3339 text, durations as whole seconds (rounded up) |
//! | [`Sent`], [`Event`] | objects (events tagged by `"type"`); **the code left out** |
//! | [`PublicError`] | `{"code": "too_many_requests", "message": "…", "retry_after": 30}` |
//!
//! A code is a secret: [`Sent`] and [`Event`] serialize without it, so an
//! answer or a log line built from them cannot leak it. To hand it to a
//! message sender, ask for it with [`WithCode`].
//!
//! ```
//! # #[cfg(feature = "serde")] {
//! use otpflow::serde_impls::WithCode;
//! # use otpflow::*;
//! # let keys = KeyRing::new(SecretKey::new(KeyId(1), &[42u8; 32]).unwrap());
//! # let verifier = Verifier::new(Policy::default(), keys, MemoryStore::new(), ManualClock::new(time::OffsetDateTime::UNIX_EPOCH + time::Duration::days(20000)));
//! # let mut rng = otpflow::rand_core::UnwrapErr(getrandom::SysRng);
//! # let phone = PhoneNumber::parse("+447401101801", &PhonePolicy::default()).unwrap();
//! # let subject = SubjectKey::new(Purpose::Login, phone);
//! let sent = verifier.start(&subject, Channel::Sms, &mut rng).unwrap();
//! let public = serde_json::to_value(&sent).unwrap();
//! assert!(public.get("code").is_none());
//! let for_the_sender = serde_json::to_value(WithCode(&sent)).unwrap();
//! assert_eq!(for_the_sender["code"], sent.code.as_str());
//! # }
//! ```

use serde::ser::{Serialize, SerializeMap, SerializeStruct, Serializer};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use crate::error::{PublicError, ceil_secs};
use crate::keys::KeyId;
use crate::phone::PhoneNumber;
use crate::record::State;
use crate::subject::{Channel, Purpose, SubjectKey};
use crate::validation::{Event, Sent, Status, Validated};

/// Serializes a [`Sent`] or an [`Event`] with its code (`"code": "042917"`),
/// for the message sender and nothing else.
#[derive(Clone, Copy, Debug)]
pub struct WithCode<'a, T>(pub &'a T);

/// RFC 3339 text; an instant the format cannot show (a year past 9999) is
/// an error of the serializer, never a panic.
fn instant<S: Serializer>(t: OffsetDateTime) -> Result<String, S::Error> {
    t.format(&Rfc3339)
        .map_err(|_| serde::ser::Error::custom("an instant RFC 3339 cannot show"))
}

struct Instant(OffsetDateTime);

impl Serialize for Instant {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&instant::<S>(self.0)?)
    }
}

struct Seconds(Duration);

impl Serialize for Seconds {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(ceil_secs(self.0))
    }
}

impl Serialize for Channel {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl Serialize for Purpose {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl Serialize for PhoneNumber {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.e164())
    }
}

impl Serialize for KeyId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(self.0)
    }
}

impl Serialize for State {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match self {
            Self::Sent => "sent",
            Self::Validated => "validated",
            Self::Expired => "expired",
            Self::Locked => "locked",
            Self::Canceled => "canceled",
        })
    }
}

impl Serialize for SubjectKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_struct("SubjectKey", 2)?;
        m.serialize_field("purpose", self.purpose())?;
        m.serialize_field("phone", self.phone())?;
        m.end()
    }
}

impl Serialize for Status {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_struct("Status", 10)?;
        m.serialize_field("state", &self.state)?;
        m.serialize_field("generation", &self.generation)?;
        m.serialize_field("channel", &self.channel)?;
        m.serialize_field("expires_at", &Instant(self.expires_at))?;
        m.serialize_field("attempts_left", &self.attempts_left)?;
        m.serialize_field("sends_left", &self.sends_left)?;
        m.serialize_field("resend_after", &self.resend_after.map(Seconds))?;
        m.serialize_field("locked_until", &self.locked_until.map(Instant))?;
        m.serialize_field("failures_left", &self.failures_left)?;
        m.serialize_field("blocked", &self.blocked)?;
        m.end()
    }
}

impl Serialize for Validated {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_struct("Validated", 3)?;
        m.serialize_field("generation", &self.generation)?;
        m.serialize_field("channel", &self.channel)?;
        m.serialize_field("validated_at", &Instant(self.validated_at))?;
        m.end()
    }
}

fn sent<S: Serializer>(sent: &Sent, code: bool, s: S) -> Result<S::Ok, S::Error> {
    let mut m = s.serialize_map(None)?;
    if code {
        m.serialize_entry("code", sent.code.as_str())?;
    }
    m.serialize_entry("channel", &sent.channel)?;
    m.serialize_entry("generation", &sent.generation)?;
    m.serialize_entry("expires_at", &Instant(sent.expires_at))?;
    m.serialize_entry("resent", &sent.resent)?;
    m.serialize_entry("new_code", &sent.new_code)?;
    m.serialize_entry("sends_left", &sent.sends_left)?;
    m.serialize_entry("resend_at", &Instant(sent.resend_at))?;
    m.end()
}

/// Without the code: see [`WithCode`].
impl Serialize for Sent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        sent(self, false, s)
    }
}

impl Serialize for WithCode<'_, Sent> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        sent(self.0, true, s)
    }
}

/// An event's `"type"` and its subject, which every event has.
fn head(event: &Event) -> (&'static str, &SubjectKey) {
    match event {
        Event::Sent { subject, .. } => ("sent", subject),
        Event::Resent { subject, .. } => ("resent", subject),
        Event::CheckFailed { subject, .. } => ("check_failed", subject),
        Event::Validated { subject, .. } => ("validated", subject),
        Event::Expired { subject, .. } => ("expired", subject),
        Event::Locked { subject, .. } => ("locked", subject),
        Event::Canceled { subject, .. } => ("canceled", subject),
        Event::Blocked { subject, .. } => ("blocked", subject),
        Event::Unlocked { subject, .. } => ("unlocked", subject),
        Event::DeliveryFailed { subject, .. } => ("delivery_failed", subject),
        Event::Delivered { subject, .. } => ("delivered", subject),
        Event::TestNumberUsed { subject, .. } => ("test_number_used", subject),
        Event::BudgetRefused { subject, .. } => ("budget_refused", subject),
    }
}

fn event<S: Serializer>(event: &Event, code: bool, s: S) -> Result<S::Ok, S::Error> {
    let mut m = s.serialize_map(None)?;
    let (kind, subject) = head(event);
    m.serialize_entry("type", kind)?;
    m.serialize_entry("subject", subject)?;
    match event {
        Event::Sent {
            code: c,
            channel,
            generation,
            expires_at,
            send,
            suppressed,
            ..
        }
        | Event::Resent {
            code: c,
            channel,
            generation,
            expires_at,
            send,
            suppressed,
            ..
        } => {
            if code {
                m.serialize_entry("code", c.as_str())?;
            }
            m.serialize_entry("channel", channel)?;
            m.serialize_entry("generation", generation)?;
            m.serialize_entry("expires_at", &Instant(*expires_at))?;
            if let Event::Resent { new_code, .. } = event {
                m.serialize_entry("new_code", new_code)?;
            }
            m.serialize_entry("send", &send.to_string())?;
            m.serialize_entry("suppressed", suppressed)?;
        }
        Event::CheckFailed {
            generation,
            attempts_left,
            ..
        } => {
            m.serialize_entry("generation", generation)?;
            m.serialize_entry("attempts_left", attempts_left)?;
        }
        Event::Validated { generation, .. }
        | Event::Expired { generation, .. }
        | Event::Canceled { generation, .. }
        | Event::TestNumberUsed { generation, .. } => {
            m.serialize_entry("generation", generation)?;
        }
        Event::Locked {
            generation, until, ..
        } => {
            m.serialize_entry("generation", generation)?;
            m.serialize_entry("until", &until.map(Instant))?;
        }
        Event::Blocked {
            generation,
            failures,
            ..
        } => {
            m.serialize_entry("generation", generation)?;
            m.serialize_entry("failures", failures)?;
        }
        Event::Unlocked { failures, .. } => {
            m.serialize_entry("failures", failures)?;
        }
        Event::DeliveryFailed { send, refunded, .. } => {
            m.serialize_entry("send", &send.to_string())?;
            m.serialize_entry("refunded", refunded)?;
        }
        Event::Delivered { send, .. } => {
            m.serialize_entry("send", &send.to_string())?;
        }
        Event::BudgetRefused {
            budget,
            retry_after,
            ..
        } => {
            m.serialize_entry("budget", budget.as_str())?;
            m.serialize_entry("retry_after", &Seconds(*retry_after))?;
        }
    }
    m.end()
}

/// Without the code of `Sent` and `Resent`: see [`WithCode`].
impl Serialize for Event {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        event(self, false, s)
    }
}

impl Serialize for WithCode<'_, Event> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        event(self.0, true, s)
    }
}

/// `{"code", "message"}`, and `"retry_after"` (whole seconds, rounded up)
/// when there is one: nothing beyond what [`PublicError`] may tell.
impl Serialize for PublicError {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("code", self.code())?;
        m.serialize_entry("message", &self.to_string())?;
        if let Some(after) = self.retry_after() {
            m.serialize_entry("retry_after", &Seconds(after))?;
        }
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use time::macros::datetime;

    use super::*;
    use crate::error::Error;
    use crate::phone::PhonePolicy;
    use crate::validation::Engine;
    use crate::{KeyRing, Policy, SecretKey};
    use rand_core::SeedableRng;

    fn subject() -> SubjectKey {
        let phone = PhoneNumber::parse("07401 101801", &PhonePolicy::default());
        SubjectKey::new(Purpose::Login, phone.unwrap_or_else(|e| panic!("{e}")))
    }

    fn to_json<T: Serialize>(value: &T) -> serde_json::Value {
        serde_json::to_value(value).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn small_types() {
        assert_eq!(to_json(&Channel::Whatsapp), json!("whatsapp"));
        assert_eq!(to_json(&Purpose::Onboarding), json!("onboarding"));
        assert_eq!(to_json(&KeyId(7)), json!(7));
        assert_eq!(to_json(&State::Locked), json!("locked"));
        assert_eq!(
            to_json(&subject()),
            json!({"purpose": "login", "phone": "+447401101801"})
        );
    }

    #[test]
    fn a_validation_in_json_hides_its_code_unless_asked() {
        let key = SecretKey::new(KeyId(1), &[3; 32]).unwrap_or_else(|e| panic!("{e}"));
        let engine = Engine::new(Policy::default(), KeyRing::new(key));
        let now = datetime!(2026-11-22 12:00 UTC);
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(5);
        let step = engine.start(None, &subject(), Channel::Sms, now, &mut rng);
        let sent = step.outcome.unwrap_or_else(|e| panic!("{e}"));
        let code = sent.code.as_str().to_owned();

        let public = to_json(&sent);
        assert_eq!(public["channel"], "sms");
        assert_eq!(public["generation"], 1);
        assert_eq!(public["resent"], false);
        assert!(
            public["expires_at"]
                .as_str()
                .is_some_and(|t| t.starts_with("2026-11-22T12:"))
        );
        assert!(public.get("code").is_none());
        assert!(!public.to_string().contains(&code));
        assert_eq!(to_json(&WithCode(&sent))["code"], json!(code));

        for event in &step.events {
            let text = to_json(event).to_string();
            assert!(!text.contains(&code), "{text}");
            assert!(text.contains("\"type\":\"sent\""), "{text}");
            assert_eq!(to_json(&WithCode(event))["code"], json!(code));
        }

        let record = step.write.unwrap_or_else(|| panic!("a record"));
        let status = engine
            .status(Some(&record), now)
            .unwrap_or_else(|e| panic!("{e}"));
        let status = to_json(&status);
        assert_eq!(status["state"], "sent");
        assert_eq!(status["locked_until"], serde_json::Value::Null);
        assert_eq!(status["blocked"], false);
        assert!(status["resend_after"].as_i64().is_some_and(|s| s > 0));

        let done = engine.verify(Some(&record), &subject(), &code, now).outcome;
        let done = to_json(&done.unwrap_or_else(|e| panic!("{e}")));
        assert_eq!(
            done,
            json!({"generation": 1, "channel": "sms", "validated_at": "2026-11-22T12:00:00Z"})
        );
    }

    #[test]
    fn public_errors() {
        let slow = Error::Locked {
            retry_after: Duration::milliseconds(29_200),
        };
        assert_eq!(
            to_json(&slow.public()),
            json!({"code": "too_many_requests", "message": slow.public().to_string(), "retry_after": 30})
        );
        let wrong = to_json(&Error::CodeMismatch { attempts_left: 2 }.public());
        assert_eq!(wrong["code"], "invalid_code");
        assert!(wrong.get("retry_after").is_none());
        assert!(!wrong.to_string().contains('2'), "attempts are not told");
    }

    #[test]
    fn an_instant_past_rfc3339_is_an_error_not_a_panic() {
        let far = Validated {
            generation: 1,
            channel: Channel::Sms,
            validated_at: OffsetDateTime::UNIX_EPOCH - Duration::days(800_000),
        };
        assert!(serde_json::to_value(&far).is_err());
    }
}
