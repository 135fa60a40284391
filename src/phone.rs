//! PLACEHOLDER — replaced by the phone-normalization work (issue 2).
//! Only the public signatures here are the contract.

use core::fmt;

/// A phone number in canonical E.164 form.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PhoneNumber {
    buf: [u8; 16],
    len: u8,
    country_code: u16,
}

/// What a caller accepts as a phone number.
#[derive(Clone, Debug, Default)]
pub struct PhonePolicy {}

/// Why a phone number was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PhoneError {
    /// Not a valid number.
    Invalid,
}

impl PhoneError {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        "invalid_phone"
    }
}

impl fmt::Display for PhoneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a valid phone number")
    }
}

impl std::error::Error for PhoneError {}

impl PhoneNumber {
    /// Parses a number.
    ///
    /// # Errors
    /// [`PhoneError`] when refused.
    pub fn parse(input: &str, _policy: &PhonePolicy) -> Result<Self, PhoneError> {
        let digits: Vec<u8> = input.bytes().filter(u8::is_ascii_digit).collect();
        let digits = if digits.first() == Some(&b'0') {
            let mut d = b"44".to_vec();
            d.extend_from_slice(&digits[1..]);
            d
        } else {
            digits
        };
        if digits.len() < 8 || digits.len() > 15 {
            return Err(PhoneError::Invalid);
        }
        let mut buf = [0u8; 16];
        buf[0] = b'+';
        buf[1..=digits.len()].copy_from_slice(&digits);
        Ok(Self { buf, len: (digits.len() + 1) as u8, country_code: 44 })
    }
    /// Parses a split number.
    ///
    /// # Errors
    /// [`PhoneError`] when refused.
    pub fn from_parts(cc: &str, national: &str, policy: &PhonePolicy) -> Result<Self, PhoneError> {
        Self::parse(&format!("{cc}{national}"), policy)
    }
    /// `+447401101801`.
    pub fn e164(&self) -> &str {
        core::str::from_utf8(&self.buf[..usize::from(self.len)]).unwrap_or("")
    }
    /// `447401101801`.
    pub fn digits(&self) -> &str {
        &self.e164()[1..]
    }
    /// The country calling code.
    pub fn country_code(&self) -> u16 {
        self.country_code
    }
    /// The region.
    pub fn region(&self) -> Option<&str> {
        Some("GB")
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.e164())
    }
}

impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhoneNumber({})", self.e164())
    }
}
