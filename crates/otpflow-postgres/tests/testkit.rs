//! otpflow's store test kit (`otpflow::testkit`) against `PgStore` (async)
//! and `BlockingPgStore` (blocking, from plain threads), each store in a
//! fresh schema of one private PostgreSQL; and failed calls through handles
//! on the same data that the server refuses or cannot be reached by.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use otpflow::Policy;
use otpflow::testkit::{
    AsyncStoreFixture, StoreFixture, check_async_failed_calls, check_async_store, check_store,
};
use otpflow_postgres::{BlockingPgStore, PgStore, SubjectHasher};
use support::{PgServer, fresh_store, shared_server};
use time::OffsetDateTime;

/// A store in a schema of its own for each of the suite's checks.
struct Schemas<'a> {
    server: &'a PgServer,
    prefix: &'static str,
    next: AtomicU32,
}

impl Schemas<'_> {
    fn name(&self) -> String {
        format!(
            "{}_{}",
            self.prefix,
            self.next.fetch_add(1, Ordering::Relaxed)
        )
    }
}

impl AsyncStoreFixture for Schemas<'_> {
    type Store = PgStore;

    async fn store(&mut self) -> PgStore {
        fresh_store(self.server, &self.name(), Policy::default()).await
    }

    async fn purge_expired(&mut self, store: &PgStore) {
        store
            .purge_expired(OffsetDateTime::now_utc())
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_store_passes_the_async_suite() {
    let Some(server) = shared_server() else {
        return;
    };
    let fixture = Schemas {
        server: &server,
        prefix: "kit_async",
        next: AtomicU32::new(0),
    };
    let report = check_async_store(fixture).await.unwrap();
    assert!(report.not_exercised.is_empty(), "{report:?}");
}

/// The blocking store over a runtime this fixture owns; the suite calls it
/// from its own threads.
struct Blocking<'a> {
    schemas: Schemas<'a>,
    runtime: tokio::runtime::Runtime,
}

impl StoreFixture for Blocking<'_> {
    type Store = BlockingPgStore;

    fn store(&mut self) -> BlockingPgStore {
        let name = self.schemas.name();
        let store =
            self.runtime
                .block_on(fresh_store(self.schemas.server, &name, Policy::default()));
        store.blocking(self.runtime.handle().clone()).unwrap()
    }

    fn purge_expired(&mut self, store: &BlockingPgStore) {
        store.purge_expired(OffsetDateTime::now_utc()).unwrap();
    }
}

#[test]
fn blocking_pg_store_passes_the_suite() {
    let Some(server) = shared_server() else {
        return;
    };
    let fixture = Blocking {
        schemas: Schemas {
            server: &server,
            prefix: "kit_blocking",
            next: AtomicU32::new(0),
        },
        runtime: tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap(),
    };
    let report = check_store(fixture).unwrap();
    assert!(report.not_exercised.is_empty(), "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_calls_leave_the_record_unchanged() {
    let Some(server) = shared_server() else {
        return;
    };
    let healthy = fresh_store(&server, "kit_failed", Policy::default()).await;
    // A role the server refuses every statement on the table to.
    let admin = server.admin().await;
    admin
        .batch_execute(
            "DO $$ BEGIN
               IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'otpflow_denied') THEN
                 CREATE ROLE otpflow_denied LOGIN;
               END IF;
             END $$",
        )
        .await
        .unwrap();
    let mut denied = server.config(Some("kit_failed"));
    denied.user("otpflow_denied");
    let hasher = || SubjectHasher::new(&support::HASH_KEY).unwrap();
    let refused = PgStore::builder(denied, hasher(), Policy::default())
        .build()
        .unwrap();
    check_async_failed_calls(&healthy, &refused).await.unwrap();
    // A port nothing listens on.
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let mut unreachable = server.config(Some("kit_failed"));
    unreachable.port(closed_port);
    let unreachable = PgStore::builder(unreachable, hasher(), Policy::default())
        .call_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    check_async_failed_calls(&healthy, &unreachable)
        .await
        .unwrap();
}
