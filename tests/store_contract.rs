//! The store test kit (`otpflow::testkit`) against `MemoryStore`, sync and
//! async, and against broken stores it must catch.

use std::collections::HashMap;
use std::sync::Mutex;

use otpflow::testkit::{StoreFixture, check_async_store, check_failed_calls, check_store};
use otpflow::{MemoryStore, Policy, Record, Store, Swap, Version};
use time::OffsetDateTime;

struct Memory;

impl StoreFixture for Memory {
    type Store = MemoryStore;
    fn store(&mut self) -> MemoryStore {
        MemoryStore::new()
    }
    fn purge_expired(&mut self, store: &MemoryStore) {
        store.purge_expired(OffsetDateTime::now_utc(), &Policy::default());
    }
}

#[test]
fn memory_store_keeps_the_contract() {
    let report = check_store(Memory).expect("MemoryStore keeps the contract");
    assert!(report.not_exercised.is_empty(), "{report:?}");
}

#[test]
fn memory_store_keeps_the_async_contract() {
    let report = futures_executor::block_on(check_async_store(async || MemoryStore::new()))
        .expect("MemoryStore keeps the contract as an AsyncStore");
    // Without a purge, the expired record stays and re-creation is not run.
    assert_eq!(report.not_exercised.len(), 1, "{report:?}");
}

/// A store that fails every call.
#[derive(Debug)]
struct Down;

#[derive(Debug)]
struct DownError;

impl std::fmt::Display for DownError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("down")
    }
}

impl std::error::Error for DownError {}

impl Store for Down {
    type Error = DownError;
    fn load(&self, _: &otpflow::RecordKey) -> Result<Option<(Record, Version)>, DownError> {
        Err(DownError)
    }
    fn compare_and_swap(
        &self,
        _: &otpflow::RecordKey,
        _: Option<Version>,
        _: &Record,
    ) -> Result<Swap, DownError> {
        Err(DownError)
    }
}

#[test]
fn failed_calls_leave_memory_records_unchanged() {
    check_failed_calls(&MemoryStore::new(), &Down).expect("nothing changes");
    // A "failing" handle that works is caught.
    let store = MemoryStore::new();
    let err = check_failed_calls(&store, &store).expect_err("a working handle is not failing");
    assert_eq!(err.check, "failed_calls");
}

/// A store with one flaw at a time, to show the kit catches each.
#[derive(Debug, Default)]
struct Flawed {
    /// Compares, lets go of the lock, then writes.
    racy: bool,
    /// Numbers versions per record, so a re-created record starts again.
    reuses_versions: bool,
    /// Drops records this long before their `expires_at`.
    early: time::Duration,
    records: Mutex<HashMap<otpflow::RecordKey, (Record, Version)>>,
    last: Mutex<u64>,
}

impl Flawed {
    fn records(&self) -> std::sync::MutexGuard<'_, HashMap<otpflow::RecordKey, (Record, Version)>> {
        self.records
            .lock()
            .expect("no test thread panics holding it")
    }
}

impl Store for Flawed {
    type Error = std::convert::Infallible;
    fn load(&self, key: &otpflow::RecordKey) -> Result<Option<(Record, Version)>, Self::Error> {
        let mut records = self.records();
        let now = OffsetDateTime::now_utc();
        let policy = Policy::default();
        records.retain(|_, (r, _)| r.expires_at(&policy) - self.early > now);
        Ok(records.get(key).cloned())
    }
    fn compare_and_swap(
        &self,
        key: &otpflow::RecordKey,
        expected: Option<Version>,
        new: &Record,
    ) -> Result<Swap, Self::Error> {
        let current = self.records().get(key).map(|(_, v)| *v);
        if current != expected {
            return Ok(Swap::Conflict);
        }
        if self.racy {
            std::thread::yield_now();
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
        let version = if self.reuses_versions {
            Version(current.map_or(1, |v| v.0 + 1))
        } else {
            let mut last = self.last.lock().expect("no test thread panics holding it");
            *last += 1;
            Version(*last)
        };
        let mut records = self.records();
        if !self.racy && records.get(key).map(|(_, v)| *v) != expected {
            return Ok(Swap::Conflict);
        }
        records.insert(key.clone(), (new.clone(), version));
        Ok(Swap::Done(version))
    }
}

#[test]
fn the_kit_catches_a_flawed_store() {
    let flawless = check_store(Flawed::default).expect("the control keeps the contract");
    assert!(flawless.not_exercised.is_empty(), "{flawless:?}");

    let racy = check_store(|| Flawed {
        racy: true,
        ..Flawed::default()
    })
    .expect_err("a compare-and-swap that is not atomic is caught");
    assert!(racy.check.starts_with("concurrent_"), "{racy}");

    let reuses = check_store(|| Flawed {
        reuses_versions: true,
        ..Flawed::default()
    })
    .expect_err("a version reused after re-creation is caught");
    assert_eq!(reuses.check, "expiry", "{reuses}");

    let early = check_store(|| Flawed {
        early: time::Duration::milliseconds(500),
        ..Flawed::default()
    })
    .expect_err("a record dropped before its expiry is caught");
    assert_eq!(early.check, "expiry", "{early}");
    assert!(early.detail.contains("before its expires_at"), "{early}");
}
