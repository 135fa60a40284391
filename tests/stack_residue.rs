//! Key-equivalent material left on the stack (issue 15, item 5).
//!
//! The HMAC-SHA256 inner and outer midstates (the SHA-256 state after
//! compressing key ⊕ ipad and key ⊕ opad) compute HMAC(key, ·) without the
//! key, so every code. After a check returns, no copy of either may remain in
//! the stack region the check used.
//!
//! The scan needs no `unsafe`: the thread reads its own stack through
//! `/proc/self/mem` (Linux only). The check runs below a 16 KiB pad, so the
//! reading code's own frames (above the pad) never overwrite what the check
//! left; the thread's stack is fresh and scanned before the check too.
#![cfg(target_os = "linux")]

use std::fs::File;
use std::hint::black_box;
use std::os::unix::fs::FileExt;

use otpflow::rand_core::SeedableRng;
use otpflow::{
    Channel, Engine, KeyId, KeyRing, PhoneNumber, PhonePolicy, Policy, Purpose, SecretKey,
    SubjectKey,
};
use rand_chacha::ChaCha20Rng;
use sha2::block_api::compress256;
use time::macros::datetime;

const KEY: [u8; 32] = [0x5a; 32];
/// How far below the pad the scan reaches.
const SCAN: usize = 128 * 1024;
/// The pad between the reading code's frames and the check's.
const PAD: usize = 16 * 1024;

/// SHA-256's initial state.
const H0: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// The SHA-256 state after compressing the key xor `pad`: the midstate an
/// HMAC implementation keeps.
fn midstate(pad: u8) -> [u32; 8] {
    let mut block = [pad; 64];
    for (b, k) in block.iter_mut().zip(KEY) {
        *b ^= k;
    }
    let mut state = H0;
    compress256(&mut state, &[block]);
    state
}

/// Every place in `memory` (at any offset) holding a word of `state`, in
/// either byte order: a copy of the state in any layout (plain, or the
/// ABEF/CDGH lanes of SHA extensions) shows as words.
fn words_found(memory: &[u8], state: &[u32; 8]) -> usize {
    memory
        .windows(4)
        .filter(|w| {
            let w = [w[0], w[1], w[2], w[3]];
            state
                .iter()
                .any(|s| s.to_le_bytes() == w || s.to_be_bytes() == w)
        })
        .count()
}

/// Runs `f` with a `PAD`-byte frame above it.
#[inline(never)]
fn below_pad<R>(f: impl FnOnce() -> R) -> R {
    let mut pad = [0u8; PAD];
    black_box(&mut pad);
    let r = f();
    black_box(&pad);
    r
}

/// The stack region below the pad: what any call made under `below_pad` from
/// the frame at `top` used.
fn read_region(mem: &File, top: usize) -> Vec<u8> {
    let end = top - PAD / 2;
    let start = end - SCAN;
    let mut buf = vec![0u8; SCAN];
    mem.read_exact_at(&mut buf, start as u64)
        .expect("/proc/self/mem is readable by the process itself");
    buf
}

#[test]
fn a_check_leaves_no_hmac_midstate_on_the_stack() {
    let policy = Policy::builder()
        .max_checks(100)
        .build()
        .expect("a valid policy");
    let keys = KeyRing::new(SecretKey::new(KeyId(1), &KEY).expect("a valid key"));
    let engine = Engine::new(policy, keys);
    let phone = PhoneNumber::parse("+447401101801", &PhonePolicy::default()).expect("a UK mobile");
    let subject = SubjectKey::new(Purpose::Login, phone);
    // The start derives too: on this thread, whose stack is not scanned.
    let step = engine.start(
        None,
        &subject,
        Channel::Sms,
        datetime!(2026-11-22 12:00 UTC),
        &mut ChaCha20Rng::seed_from_u64(7),
    );
    let record = step.write.expect("a record");
    let code = step.outcome.expect("sent").code.as_str().to_owned();
    let wrong: String = code
        .bytes()
        .map(|b| char::from(b'0' + (b - b'0' + 1) % 10))
        .collect();
    let inner = midstate(0x36);
    let outer = midstate(0x5c);

    let found = std::thread::Builder::new()
        // An unusual size, so the C library does not hand back a cached stack.
        .stack_size(2 * 1024 * 1024 + 3 * 4096)
        .spawn(move || {
            let mem = File::open("/proc/self/mem").expect("/proc/self/mem opens");
            let marker = 0u8;
            let top = core::ptr::addr_of!(marker) as usize;
            let before = read_region(&mem, top);
            assert_eq!(
                (words_found(&before, &inner), words_found(&before, &outer)),
                (0, 0),
                "the fresh stack already holds midstate words"
            );
            // A wrong code and the right one: a refusal and a success.
            let outcomes = below_pad(|| {
                let at = datetime!(2026-11-22 12:01 UTC);
                let w = engine.verify(Some(&record), &subject, &wrong, at).outcome;
                let r = engine.verify(Some(&record), &subject, &code, at).outcome;
                (w.is_err(), r.is_ok())
            });
            assert_eq!(outcomes, (true, true), "the checks ran");
            let after = read_region(&mem, top);
            black_box(&marker);
            (words_found(&after, &inner), words_found(&after, &outer))
        })
        .expect("a thread")
        .join()
        .expect("the scan ran");
    assert_eq!(
        found,
        (0, 0),
        "words of the (inner, outer) HMAC midstate left on the stack after a check"
    );
}

/// The scan looks for the right thing: HMAC computed from the two midstates
/// is the `hmac` crate's HMAC.
#[test]
fn the_midstates_compute_hmac() {
    use hmac::{Hmac, KeyInit, Mac};
    let message = b"any message";
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&KEY).expect("any key length");
    mac.update(message);
    let want = mac.finalize().into_bytes();

    let mut block = [0u8; 64];
    block[..message.len()].copy_from_slice(message);
    block[message.len()] = 0x80;
    block[56..].copy_from_slice(&((64 + message.len() as u64) * 8).to_be_bytes());
    let mut inner = midstate(0x36);
    compress256(&mut inner, &[block]);
    let mut block = [0u8; 64];
    for (chunk, word) in block.chunks_exact_mut(4).zip(inner) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    block[32] = 0x80;
    block[56..].copy_from_slice(&((64u64 + 32) * 8).to_be_bytes());
    let mut outer = midstate(0x5c);
    compress256(&mut outer, &[block]);
    let got: Vec<u8> = outer.iter().flat_map(|w| w.to_be_bytes()).collect();
    assert_eq!(got[..], want[..]);
}
