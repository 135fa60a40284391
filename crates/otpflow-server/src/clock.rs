//! The service's clock: the system clock, plus (in test builds only) an
//! offset an admin route can move so black-box tests can expire codes.

#[cfg(feature = "test-hooks")]
use std::sync::Arc;
#[cfg(feature = "test-hooks")]
use std::sync::atomic::{AtomicI64, Ordering};

use otpflow::Clock;
use time::OffsetDateTime;

/// The system clock. In a build with the `test-hooks` feature it carries a
/// shared offset in seconds ([`ServiceClock::advance`]); production builds
/// have no such field and no way to move time.
#[derive(Clone, Debug, Default)]
pub struct ServiceClock {
    #[cfg(feature = "test-hooks")]
    offset_secs: Arc<AtomicI64>,
}

impl ServiceClock {
    /// The system clock, not offset.
    pub fn new() -> Self {
        Self::default()
    }

    /// Test builds only: moves this clock (and its clones) by `secs`.
    #[cfg(feature = "test-hooks")]
    pub fn advance(&self, secs: i64) {
        self.offset_secs.fetch_add(secs, Ordering::SeqCst);
    }

    /// Test builds only: the current offset from the system clock.
    #[cfg(feature = "test-hooks")]
    pub fn offset(&self) -> i64 {
        self.offset_secs.load(Ordering::SeqCst)
    }
}

impl Clock for ServiceClock {
    fn now(&self) -> OffsetDateTime {
        let now = OffsetDateTime::now_utc();
        #[cfg(feature = "test-hooks")]
        let now = now.saturating_add(time::Duration::seconds(self.offset()));
        now
    }
}
