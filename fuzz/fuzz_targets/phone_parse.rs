//! `PhoneNumber::parse` on any string: never panics; what parses is canonical.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &str| otpflow::fuzzing::check_phone_parse(input));
