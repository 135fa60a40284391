//! The stored value: 8 bytes of version, then the record's bytes.

use otpflow::{Record, Version};
use time::OffsetDateTime;

use crate::RedisStoreError;

pub(crate) fn encode(version: Version, record: &Record) -> Vec<u8> {
    let bytes = record.to_bytes();
    let mut value = Vec::with_capacity(8 + bytes.len());
    value.extend_from_slice(&version.0.to_be_bytes());
    value.extend_from_slice(&bytes);
    value
}

pub(crate) fn version_of(value: &[u8]) -> Result<Version, RedisStoreError> {
    let (head, _) = value
        .split_first_chunk::<8>()
        .ok_or(RedisStoreError::Corrupt(None))?;
    Ok(Version(u64::from_be_bytes(*head)))
}

/// Decodes a stored value; anything malformed is
/// [`RedisStoreError::Corrupt`].
pub(crate) fn decode(value: &[u8]) -> Result<(Record, Version), RedisStoreError> {
    let version = version_of(value)?;
    let record = Record::from_bytes(&value[8..]).map_err(|e| RedisStoreError::Corrupt(Some(e)))?;
    Ok((record, version))
}

/// `PXAT`'s argument: `at` in Unix milliseconds, rounded up (never before
/// `at`), at least 1 (Redis refuses 0 and negatives).
pub(crate) fn expiry_millis(at: OffsetDateTime) -> i64 {
    let nanos = at.unix_timestamp_nanos();
    let millis = nanos.div_euclid(1_000_000) + i128::from(nanos.rem_euclid(1_000_000) != 0);
    i64::try_from(millis.max(1)).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn expiry_rounds_up_to_the_millisecond_and_stays_positive() {
        let at = datetime!(2026-11-22 12:00:00.000_000_001 UTC);
        let whole = datetime!(2026-11-22 12:00 UTC);
        let ms = whole.unix_timestamp() * 1000;
        assert_eq!(expiry_millis(whole), ms);
        assert_eq!(expiry_millis(at), ms + 1);
        assert_eq!(expiry_millis(OffsetDateTime::UNIX_EPOCH), 1);
        assert_eq!(expiry_millis(datetime!(1900-01-01 0:00 UTC)), 1);
    }

    #[test]
    fn malformed_values_are_typed_errors() {
        for bad in [&b""[..], b"1234567", b"12345678", b"12345678\x01\x02"] {
            assert!(
                matches!(decode(bad), Err(RedisStoreError::Corrupt(_))),
                "{bad:?}"
            );
        }
    }
}
