//! otpflow as a WebAssembly module for hosts without Rust bindings: a few
//! C-ABI functions over two buffers in linear memory. The host writes UTF-8
//! input at [`otpflow_input`], calls a function with the lengths, and reads
//! the answer (an E.164 number, a code to deliver, or an error code) at
//! [`otpflow_output`]. Every function returns 0 on success, or a negative
//! number for a refusal whose machine code is in the output buffer.
//!
//! The host supplies what a sandbox lacks: the HMAC key and a 32-byte seed
//! ([`otpflow_init`]), and the time on every call. Validations live in a
//! `MemoryStore` inside the module.
//!
//! This crate exists apart from `otpflow` because exporting unmangled
//! symbols needs `#[unsafe(no_mangle)]`, and `otpflow` forbids unsafe code.
//! No function here dereferences a raw pointer: the buffers are owned Rust
//! memory whose addresses the host is given.

use std::cell::RefCell;

use otpflow::rand_core::SeedableRng;
use otpflow::{
    Channel, KeyId, KeyRing, ManualClock, MemoryStore, PhoneNumber, PhonePolicy, Policy, Purpose,
    SecretKey, SubjectKey, Verifier,
};
use rand_chacha::ChaCha20Rng;
use time::OffsetDateTime;

/// The size of each buffer, in bytes.
pub const BUFFER_BYTES: usize = 256;

struct Module {
    verifier: Verifier<MemoryStore, ManualClock>,
    rng: ChaCha20Rng,
    phones: PhonePolicy,
}

thread_local! {
    static INPUT: RefCell<[u8; BUFFER_BYTES]> = const { RefCell::new([0; BUFFER_BYTES]) };
    static OUTPUT: RefCell<([u8; BUFFER_BYTES], usize)> = const { RefCell::new(([0; BUFFER_BYTES], 0)) };
    static MODULE: RefCell<Option<Module>> = const { RefCell::new(None) };
}

/// The address of the input buffer ([`BUFFER_BYTES`] long).
#[unsafe(no_mangle)]
pub extern "C" fn otpflow_input() -> *mut u8 {
    INPUT.with(|b| b.borrow_mut().as_mut_ptr())
}

/// The address of the output buffer.
#[unsafe(no_mangle)]
pub extern "C" fn otpflow_output() -> *const u8 {
    OUTPUT.with(|b| b.borrow().0.as_ptr())
}

/// The length of the answer in the output buffer.
#[unsafe(no_mangle)]
pub extern "C" fn otpflow_output_len() -> usize {
    OUTPUT.with(|b| b.borrow().1)
}

fn answer(text: &str, status: i32) -> i32 {
    OUTPUT.with(|b| {
        let mut b = b.borrow_mut();
        let n = text.len().min(BUFFER_BYTES);
        b.0[..n].copy_from_slice(&text.as_bytes()[..n]);
        b.1 = n;
    });
    status
}

/// The input bytes `from..from + len`, if they are in the buffer.
fn input(from: usize, len: usize) -> Option<Vec<u8>> {
    let end = from.checked_add(len)?;
    INPUT.with(|b| b.borrow().get(from..end).map(<[u8]>::to_vec))
}

fn input_str(from: usize, len: usize) -> Result<String, i32> {
    let bytes = input(from, len).ok_or_else(|| answer("bad_length", -1))?;
    String::from_utf8(bytes).map_err(|_| answer("bad_utf8", -1))
}

/// Starts the module: the input holds the HMAC key (`key_len` bytes, 32–64)
/// then a 32-byte seed for the code nonces. The default policies.
#[unsafe(no_mangle)]
pub extern "C" fn otpflow_init(key_len: usize, key_id: u32, now_unix: i64) -> i32 {
    let (Some(key), Some(seed)) = (input(0, key_len), input(key_len, 32)) else {
        return answer("bad_length", -1);
    };
    let Ok(key) = SecretKey::new(KeyId(key_id), &key) else {
        return answer("bad_key", -1);
    };
    let Ok(now) = OffsetDateTime::from_unix_timestamp(now_unix) else {
        return answer("bad_time", -1);
    };
    let mut seed_bytes = [0u8; 32];
    seed_bytes.copy_from_slice(&seed);
    let module = Module {
        verifier: Verifier::new(
            Policy::default(),
            KeyRing::new(key),
            MemoryStore::new(),
            ManualClock::new(now),
        ),
        rng: ChaCha20Rng::from_seed(seed_bytes),
        phones: PhonePolicy::default(),
    };
    MODULE.with(|m| *m.borrow_mut() = Some(module));
    answer("ok", 0)
}

/// Normalizes the phone number in the input (`len` bytes) to E.164.
#[unsafe(no_mangle)]
pub extern "C" fn otpflow_phone(len: usize) -> i32 {
    let text = match input_str(0, len) {
        Ok(text) => text,
        Err(status) => return status,
    };
    match PhoneNumber::parse(&text, &PhonePolicy::default()) {
        Ok(n) => answer(n.e164(), 0),
        Err(e) => answer(e.code(), -2),
    }
}

fn with_module(
    now_unix: i64,
    phone_len: usize,
    run: impl FnOnce(&mut Module, &SubjectKey) -> i32,
) -> i32 {
    let Ok(now) = OffsetDateTime::from_unix_timestamp(now_unix) else {
        return answer("bad_time", -1);
    };
    let text = match input_str(0, phone_len) {
        Ok(text) => text,
        Err(status) => return status,
    };
    MODULE.with(|m| {
        let mut m = m.borrow_mut();
        let Some(module) = m.as_mut() else {
            return answer("not_initialized", -1);
        };
        let phone = match PhoneNumber::parse(&text, &module.phones) {
            Ok(phone) => phone,
            Err(e) => return answer(e.code(), -2),
        };
        module.verifier.clock().set(now);
        run(module, &SubjectKey::new(Purpose::Login, phone))
    })
}

/// Starts (or resends) a login validation for the number in the input; the
/// output is the code to deliver by SMS.
#[unsafe(no_mangle)]
pub extern "C" fn otpflow_start(phone_len: usize, now_unix: i64) -> i32 {
    with_module(now_unix, phone_len, |module, subject| {
        match module
            .verifier
            .start(subject, Channel::Sms, &mut module.rng)
        {
            Ok(sent) => answer(sent.code.as_str(), 0),
            Err(e) => answer(e.public().code(), -3),
        }
    })
}

/// Checks a code: the input holds the number (`phone_len` bytes) then the
/// code (`code_len` bytes).
#[unsafe(no_mangle)]
pub extern "C" fn otpflow_verify(phone_len: usize, code_len: usize, now_unix: i64) -> i32 {
    let code = match input_str(phone_len, code_len) {
        Ok(code) => code,
        Err(status) => return status,
    };
    with_module(now_unix, phone_len, |module, subject| {
        match module.verifier.verify(subject, &code) {
            Ok(_) => answer("validated", 0),
            Err(e) => answer(e.public().code(), -3),
        }
    })
}
