//! `PhoneNumber::from_parts` on any pair of strings.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|parts: (&str, &str)| otpflow::fuzzing::check_phone_from_parts(parts.0, parts.1));
