//! Fresh versions: random 64-bit values from a generator of the store's.

use std::sync::{Mutex, PoisonError};

use otpflow::Version;
use rand_chacha::ChaCha12Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};
use zeroize::Zeroize;

use crate::RedisStoreError;

/// Draws before the generator takes a new seed from the operating system.
const RESEED_AFTER: u32 = 1 << 16;

/// Where a store's new versions come from: a ChaCha12 generator seeded
/// from the operating system's random source, and seeded afresh every
/// [`RESEED_AFTER`] draws, so a write costs no system call (reading the
/// OS source on every write was one per write).
///
/// Why this is as safe as a read of the OS source per write: the `Store`
/// contract asks only that a write gives its key a version the key has not
/// had while its record existed (so a stale compare-and-swap can never
/// match a newer record, across a delete and re-create included). A
/// ChaCha12 stream under a 256-bit OS seed cannot be told apart from OS
/// randomness, and each store (each process) has its own seed, so the
/// chance that a write repeats a version its key had is, as before, about
/// the number of the key's writes over 2^64; the script also refuses a
/// write whose new version equals the stored one. Nothing needs versions
/// to be secret: they are not credentials (who can write to Redis can
/// write any record). One case differs from the OS source: a process
/// forked after its store's first write shares the generator's state with
/// its child until the next reseed; build stores after forking (their
/// connections do not survive a fork either).
pub(crate) struct Versions {
    state: Mutex<Option<Seeded>>,
}

struct Seeded {
    rng: ChaCha12Rng,
    left: u32,
}

impl Seeded {
    fn from_os() -> Result<Self, RedisStoreError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|_| RedisStoreError::Random)?;
        let rng = ChaCha12Rng::from_seed(seed);
        seed.zeroize();
        Ok(Self {
            rng,
            left: RESEED_AFTER,
        })
    }
}

impl Versions {
    /// Seeded at the first draw, so building a store never fails on the
    /// random source: a failure is that write's
    /// [`RedisStoreError::Random`], and the next write tries again.
    pub(crate) const fn new() -> Self {
        Self {
            state: Mutex::new(None),
        }
    }

    /// A new version.
    pub(crate) fn next(&self) -> Result<Version, RedisStoreError> {
        // Nothing panics while the lock is held; a poisoned lock still
        // holds a usable generator.
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let seeded = match state.take() {
            Some(seeded) if seeded.left > 0 => seeded,
            _ => Seeded::from_os()?,
        };
        let seeded = state.insert(seeded);
        seeded.left -= 1;
        Ok(Version(seeded.rng.next_u64()))
    }
}

impl std::fmt::Debug for Versions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Versions").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn draws_differ_across_reseeds_and_between_stores() {
        let (a, b) = (Versions::new(), Versions::new());
        let mut seen = HashSet::new();
        // Past one reseed of `a`.
        for _ in 0..(RESEED_AFTER + 1000) {
            assert!(seen.insert(a.next().expect("a version").0));
        }
        for _ in 0..1000 {
            assert!(seen.insert(b.next().expect("a version").0));
        }
    }
}
