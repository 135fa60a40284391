//! Code input: malformed exactly when it is not a code, and then no attempt spent.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &str| otpflow::fuzzing::check_code_input(input));
