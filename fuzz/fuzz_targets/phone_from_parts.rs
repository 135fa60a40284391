//! `PhoneNumber::from_parts` on any pair of strings: the input is the country
//! code, a 0xFF byte, then the national number (0xFF never occurs in UTF-8,
//! so every pair of strings can be written this way).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (country_code, national) = match data.iter().position(|&b| b == 0xFF) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    if let (Ok(country_code), Ok(national)) = (
        std::str::from_utf8(country_code),
        std::str::from_utf8(national),
    ) {
        otpflow::fuzzing::check_phone_from_parts(country_code, national);
    }
});
