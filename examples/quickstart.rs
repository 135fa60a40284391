//! One phone number through the whole life cycle: start → wrong code →
//! right code → reuse refused. Run with `cargo run --example quickstart`.

use otpflow::rand_core::UnwrapErr;
use otpflow::{
    Channel, Error, Event, KeyId, KeyRing, MemoryStore, PhoneNumber, PhonePolicy, Policy, Purpose,
    SecretKey, SubjectKey, SystemClock, Verifier,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The operating system's CSPRNG. A real service loads its key from a
    // secrets manager instead of generating one at start-up.
    let mut rng = UnwrapErr(getrandom::SysRng);
    let keys = KeyRing::new(SecretKey::generate(KeyId(1), &mut rng));

    // What an SMS gateway or audit log would see: codes stay redacted.
    let verifier = Verifier::new(Policy::default(), keys, MemoryStore::new(), SystemClock)
        .on_event(|event| match event {
            Event::Sent {
                subject, channel, ..
            } => println!("  [event] send a code to {subject} by {channel}"),
            other => println!("  [event] {other:?}"),
        });

    // A UK number as a user types it, normalized to E.164.
    let phone = PhoneNumber::parse("07401 101801", &PhonePolicy::default())?;
    let subject = SubjectKey::new(Purpose::Login, phone);
    println!("1. start a validation for {} ({})", phone.e164(), subject);
    let sent = verifier.start(&subject, Channel::Sms, &mut rng)?;
    println!(
        "   code {} sent, valid until {}",
        sent.code.as_str(),
        sent.expires_at
    );

    let wrong: String = sent
        .code
        .as_str()
        .chars()
        .rev()
        .map(|c| if c == '9' { '0' } else { '9' })
        .collect();
    println!("2. check a wrong code ({wrong})");
    match verifier.verify(&subject, &wrong) {
        Err(err @ Error::CodeMismatch { .. }) => println!(
            "   refused: {err} [{} / HTTP {}]; outsiders see `{}`",
            err.code(),
            err.http_status(),
            err.public().code()
        ),
        other => return Err(format!("expected a mismatch, got {other:?}").into()),
    }

    println!("3. check the right code ({})", sent.code.as_str());
    let validated = verifier.verify(&subject, sent.code.as_str())?;
    println!(
        "   validated at {} (generation {})",
        validated.validated_at, validated.generation
    );

    println!("4. check the same code again");
    match verifier.verify(&subject, sent.code.as_str()) {
        Err(err @ Error::AlreadyValidated) => {
            println!(
                "   refused: {err} [{} / HTTP {}]",
                err.code(),
                err.http_status()
            );
        }
        other => return Err(format!("a code must never validate twice, got {other:?}").into()),
    }
    println!("status: {}", verifier.status(&subject)?.state);
    Ok(())
}
