//! Arbitrary operations against a `Verifier`, with the invariants asserted.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| otpflow::fuzzing::run_lifecycle_bytes(data));
