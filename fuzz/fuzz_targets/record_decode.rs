//! Records coming back from a store: decoding never panics, and the encoding
//! is canonical.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| otpflow::fuzzing::check_record_bytes(data));
