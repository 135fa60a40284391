//! A 3-primary, 3-replica Redis Cluster (6 `redis-server` processes with
//! `cluster-node-timeout` 1 s, joined with `redis-cli --cluster create`):
//! the test kit through a Cluster connection; and the primary of busy
//! subjects killed mid-run, once per write mode. Calls during the failover
//! fail as `Error::Store` within their bound, service resumes once the
//! replica is promoted, and what each mode loses is counted: with
//! `WriteMode::Plain` the promoted replica may lack the last writes (the
//! test prints how many); with `WriteMode::WaitForReplicas` no
//! acknowledged write is lost.

#![allow(clippy::unwrap_used)]

mod support;

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use otpflow::testkit::check_async_store;
use otpflow::{
    AsyncVerifier, Channel, Error, KeyId, KeyRing, Policy, SecretKey, State, Status, SubjectKey,
    SystemClock,
};
use otpflow_redis::{RedisOptions, RedisStore, WriteMode};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use redis::aio::MultiplexedConnection;
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use support::{RedisServer, options, subject};

/// The stores' timeout.
const TIMEOUT: Duration = Duration::from_millis(500);
/// How long `WAIT` may block in `WaitForReplicas`.
const WAIT: Duration = Duration::from_millis(500);
/// Subjects written at once on the shard that loses its primary.
const WRITERS: u32 = 4;
/// How long a phase may take from the kill to service back everywhere.
const RECOVERY: Duration = Duration::from_secs(25);

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
        // A replica's first sync starts at once (the default waits 5 s for
        // more replicas to share the transfer).
        "--repl-diskless-sync-delay",
        "0",
    ]
}

/// Six nodes joined into a cluster, every primary with a synced replica,
/// or `None` where the tests skip.
async fn cluster() -> Option<Vec<RedisServer>> {
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
        let mut c = probe(node).await;
        loop {
            let info: String = redis::cmd("CLUSTER")
                .arg("INFO")
                .query_async(&mut c)
                .await
                .unwrap();
            if info.contains("cluster_state:ok") {
                break;
            }
            assert!(Instant::now() < deadline, "the cluster did not form");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    replicas_synced(&nodes).await;
    Some(nodes)
}

/// Waits until three running nodes are primaries and each has a replica
/// that finished its sync.
async fn replicas_synced(nodes: &[RedisServer]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut synced = 0;
        for node in nodes.iter().filter(|n| n.is_running()) {
            let mut c = probe(node).await;
            let info: String = redis::cmd("INFO")
                .arg("replication")
                .query_async(&mut c)
                .await
                .unwrap();
            if info.contains("role:master") && info.contains("state=online") {
                synced += 1;
            }
        }
        if synced == 3 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the primaries' replicas did not sync"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn probe(node: &RedisServer) -> MultiplexedConnection {
    redis::Client::open(node.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// The store's Cluster connection. Each attempt is bounded by the store's
/// timeout; a request may be retried (after a redirect, a reconnection or
/// a topology refresh) within its overall bound.
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
    let Some(nodes) = cluster().await else { return };
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_survives_losing_the_primary_of_a_busy_subject() {
    let Some(mut nodes) = cluster().await else {
        return;
    };
    let connection = connect(&nodes).await;
    let plain = through_failover(&mut nodes, &connection, WriteMode::Plain, 777_000).await;
    eprintln!("cluster failover, WriteMode::Plain: {plain}");
    let waiting = WriteMode::WaitForReplicas {
        replicas: 1,
        timeout: WAIT,
    };
    let waited = through_failover(&mut nodes, &connection, waiting, 778_000).await;
    eprintln!("cluster failover, WriteMode::WaitForReplicas: {waited}");
    assert_eq!(
        waited.lost, 0,
        "WaitForReplicas lost acknowledged writes: {waited}"
    );
}

/// What one failover did to the writers.
struct Outcome {
    /// Writes acknowledged before the writers checked their records.
    acknowledged: u64,
    /// Of those, the writes the record no longer shows.
    lost: u64,
    /// Calls that failed (all `Error::Store` or `Error::Contention`).
    failed: u64,
    slowest_failure: Duration,
    /// From the kill to a replica owning the slot (seen by a survivor).
    promoted_after: Duration,
    /// From the kill to the first acknowledged write.
    back_after: Duration,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} of {} acknowledged writes lost; {} failed calls (slowest {:?}); \
             replica promoted {:?} and writes back {:?} after the kill",
            self.lost,
            self.acknowledged,
            self.failed,
            self.slowest_failure,
            self.promoted_after,
            self.back_after
        )
    }
}

type Verifier = AsyncVerifier<RedisStore<ClusterConnection>, SystemClock>;

/// Room for thousands of sends per subject; a start on a live validation
/// resends its code without a cooldown (so a start whose answer was lost
/// can be repeated; instants are kept to the second, so a resend may
/// still have to wait for the next one).
fn policy() -> Policy {
    Policy::builder()
        .resend_cooldown(time::Duration::ZERO)
        .max_sends(100)
        .subject_send_cap(10_000)
        .subject_send_window(time::Duration::seconds(1))
        .build()
        .unwrap()
}

/// Runs `WRITERS` subjects on the shard of `subject(first)`, kills that
/// shard's primary mid-run, waits for the promotion, restarts the killed
/// node (it rejoins as a replica) and waits for every writer to be served
/// again.
async fn through_failover(
    nodes: &mut [RedisServer],
    connection: &ClusterConnection,
    mode: WriteMode,
    first: u32,
) -> Outcome {
    replicas_synced(nodes).await;
    let opts = options(policy()).timeout(TIMEOUT).write_mode(mode);
    let mut survivor = None;
    let (primary, slot, subjects) = {
        let mut c = probe(&nodes[0]).await;
        let slot = slot_of(&mut c, &opts, &subject(first)).await;
        let table = cluster_nodes(&mut c).await;
        let owner = owner_port(&table, slot).unwrap();
        let mut subjects = Vec::new();
        for n in first.. {
            let s = subject(n);
            let here = slot_of(&mut c, &opts, &s).await;
            if owner_port(&table, here) == Some(owner) {
                subjects.push(s);
            }
            if subjects.len() == WRITERS as usize {
                break;
            }
        }
        let primary = nodes.iter().position(|n| n.port == owner).unwrap();
        (primary, slot, subjects)
    };
    for (i, node) in nodes.iter().enumerate() {
        if i != primary && node.is_running() && survivor.is_none() {
            survivor = Some(probe(node).await);
        }
    }
    let mut survivor = survivor.unwrap();

    let store = RedisStore::with_connection(connection.clone(), opts);
    let keys = KeyRing::new(SecretKey::new(KeyId(1), &[42u8; 32]).unwrap());
    let verifier = Arc::new(AsyncVerifier::new(policy(), keys, store, SystemClock).max_retries(32));
    let run = Arc::new(Run::default());
    let writers: Vec<_> = subjects
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let (verifier, run) = (Arc::clone(&verifier), Arc::clone(&run));
            tokio::spawn(write(verifier, s, u64::from(first) + i as u64, run))
        })
        .collect();

    // Mid-run: every writer has had writes acknowledged.
    let deadline = Instant::now() + Duration::from_secs(20);
    while run.acknowledged.load(Ordering::Relaxed) < 15 * u64::from(WRITERS) {
        assert!(Instant::now() < deadline, "writes too slow before the kill");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    nodes[primary].kill9();
    let killed = Instant::now();
    *run.killed.lock().unwrap() = Some(killed);

    // A survivor sees a replica take the slot.
    let promoted_after = loop {
        let table = cluster_nodes(&mut survivor).await;
        if owner_port(&table, slot).is_some_and(|port| port != nodes[primary].port) {
            break killed.elapsed();
        }
        assert!(
            killed.elapsed() < RECOVERY,
            "no replica took the slot: {table}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Meanwhile a subject on another shard is served: a WAIT goes to the
    // key's own primary (in one pipeline with the script), not to every
    // primary, the new one included, which has no replica yet.
    let table = cluster_nodes(&mut survivor).await;
    let promoted = owner_port(&table, slot);
    let mut n = first + 500;
    let elsewhere = loop {
        let s = subject(n);
        let here = slot_of(&mut survivor, verifier.store().options(), &s).await;
        if owner_port(&table, here).is_some_and(|port| Some(port) != promoted) {
            break s;
        }
        n += 1;
    };
    let mut rng = ChaCha20Rng::seed_from_u64(u64::from(n));
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        match verifier.start(&elsewhere, Channel::Sms, &mut rng).await {
            Ok(_) => break,
            Err(Error::Store(e)) if Instant::now() < deadline => {
                *run.last_error.lock().unwrap() = e.to_string();
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("another shard was not served during the failover: {e:?}"),
        }
    }
    // The old primary comes back as a replica of the new one.
    tokio::task::block_in_place(|| nodes[primary].restart());

    // Every writer checked its record and was served again.
    loop {
        let back = run.back.load(Ordering::Relaxed);
        if back >= u64::from(WRITERS) {
            break;
        }
        assert!(
            killed.elapsed() < RECOVERY,
            "{back} of {WRITERS} writers served again {:?} after the kill; last error: {}",
            killed.elapsed(),
            run.last_error.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    run.stop.store(true, Ordering::Relaxed);
    let mut outcome = Outcome {
        acknowledged: 0,
        lost: 0,
        failed: 0,
        slowest_failure: Duration::ZERO,
        promoted_after,
        back_after: Duration::MAX,
    };
    for writer in writers {
        let tally = writer.await.unwrap();
        outcome.acknowledged += tally.acknowledged;
        outcome.lost += tally.lost;
        outcome.failed += tally.failed;
        outcome.slowest_failure = outcome.slowest_failure.max(tally.slowest_failure);
        outcome.back_after = outcome.back_after.min(tally.back_after.unwrap());
    }
    // A failing status is one load; a failing verify a load and a write
    // (with WAIT's time): each bounded by the store's timeout.
    assert!(
        outcome.slowest_failure < 2 * (TIMEOUT + WAIT) + Duration::from_secs(1),
        "a failing call took {:?}",
        outcome.slowest_failure
    );
    outcome
}

/// What the writers share with the test.
#[derive(Default)]
struct Run {
    acknowledged: AtomicU64,
    /// Writers that checked their record after the kill and had a write
    /// acknowledged since.
    back: AtomicU64,
    killed: Mutex<Option<Instant>>,
    stop: AtomicBool,
    last_error: Mutex<String>,
}

/// One writer's count.
struct Tally {
    acknowledged: u64,
    lost: u64,
    failed: u64,
    slowest_failure: Duration,
    back_after: Option<Duration>,
}

/// An acknowledged write: a start (a new validation or a resend) of a
/// generation, or the success of its code.
#[derive(Clone, Copy)]
enum Write {
    Start(u32),
    Validate(u32),
}

impl Write {
    /// Whether a record in `status` reflects this write.
    fn shown_by(self, status: Option<&Status>) -> bool {
        let (generation, state) = status.map_or((0, None), |s| (s.generation, Some(s.state)));
        match self {
            Self::Start(g) => generation >= g,
            Self::Validate(g) => {
                generation > g || (generation == g && state == Some(State::Validated))
            }
        }
    }
}

/// Starts and validates on `s` until told to stop. After the kill, the
/// first thing it does once the store answers is compare the record with
/// the writes it had acknowledged, before writing again.
async fn write(verifier: Arc<Verifier>, s: SubjectKey, seed: u64, run: Arc<Run>) -> Tally {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut tally = Tally {
        acknowledged: 0,
        lost: 0,
        failed: 0,
        slowest_failure: Duration::ZERO,
        back_after: None,
    };
    let mut writes: Vec<Write> = Vec::new();
    let mut code: Option<String> = None;
    let mut checked = false;
    let fail = |tally: &mut Tally, e: &Error, took: Duration| {
        assert!(
            matches!(e, Error::Store(_) | Error::Contention),
            "only store errors expected during a failover, got {e:?}"
        );
        tally.failed += 1;
        tally.slowest_failure = tally.slowest_failure.max(took);
        *run.last_error.lock().unwrap() = format!(
            "{e}: {:?}",
            std::error::Error::source(e).map(ToString::to_string)
        );
    };
    while !run.stop.load(Ordering::Relaxed) {
        let killed = *run.killed.lock().unwrap();
        let started = Instant::now();
        if killed.is_some() && !checked {
            let status = match verifier.status(&s).await {
                Ok(status) => Some(status),
                Err(Error::NotFound) => None,
                Err(e) => {
                    fail(&mut tally, &e, started.elapsed());
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            };
            let lost = writes
                .iter()
                .filter(|w| !w.shown_by(status.as_ref()))
                .count();
            tally.lost = lost as u64;
            tally.acknowledged = writes.len() as u64;
            if lost > 0 {
                // The code in hand may be of a validation the record lost.
                code = None;
            }
            checked = true;
        }
        let result = match code.take() {
            Some(c) => match verifier.verify(&s, &c).await {
                Ok(status) => Ok(Write::Validate(status.generation)),
                // The answer to an earlier try was lost, not its effect.
                Err(Error::AlreadyValidated) => {
                    continue;
                }
                Err(e) => {
                    code = Some(c);
                    Err(e)
                }
            },
            None => verifier
                .start(&s, Channel::Sms, &mut rng)
                .await
                .map(|sent| {
                    code = Some(sent.code.as_str().to_owned());
                    Write::Start(sent.generation)
                }),
        };
        match result {
            Ok(w) => {
                writes.push(w);
                run.acknowledged.fetch_add(1, Ordering::Relaxed);
                if let Some(at) = killed
                    && checked
                    && tally.back_after.is_none()
                {
                    tally.back_after = Some(at.elapsed());
                    run.back.fetch_add(1, Ordering::Relaxed);
                }
            }
            // The policy's own answers to a resend (a start whose first
            // answer was lost): wait as told.
            Err(Error::ResendTooSoon { retry_after } | Error::SendLimit { retry_after }) => {
                let wait = retry_after.unsigned_abs().min(Duration::from_secs(1));
                tokio::time::sleep(wait).await;
            }
            Err(e) => {
                fail(&mut tally, &e, started.elapsed());
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    tally
}

/// `CLUSTER KEYSLOT` of `s`'s key.
async fn slot_of(c: &mut MultiplexedConnection, opts: &RedisOptions, s: &SubjectKey) -> u16 {
    redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(opts.key_name(s))
        .query_async(c)
        .await
        .unwrap()
}

async fn cluster_nodes(c: &mut MultiplexedConnection) -> String {
    redis::cmd("CLUSTER")
        .arg("NODES")
        .query_async(c)
        .await
        .unwrap()
}

/// The port of the live primary that serves `slot` in a `CLUSTER NODES`
/// table.
fn owner_port(table: &str, slot: u16) -> Option<u16> {
    table.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let flags = fields.get(2)?;
        if !flags.contains("master") || flags.contains("fail") || !owns_slot(&fields, slot) {
            return None;
        }
        let address = fields.get(1)?.split('@').next()?;
        address.rsplit(':').next()?.parse().ok()
    })
}

/// Whether a `CLUSTER NODES` line lists `slot` among its ranges.
fn owns_slot(fields: &[&str], slot: u16) -> bool {
    fields.iter().skip(8).any(|range| {
        let mut ends = range.split('-').filter_map(|n| n.parse::<u16>().ok());
        match (ends.next(), ends.next()) {
            (Some(a), Some(b)) => (a..=b).contains(&slot),
            (Some(a), None) => a == slot,
            _ => false,
        }
    })
}
