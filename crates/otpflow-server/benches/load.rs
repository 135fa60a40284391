#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss,
    clippy::cast_sign_loss
)] // statistics over counts and durations
//! Load run against the real binary: requests/s and p50/p99 latency of
//! start (`POST /otp`) and verify (`POST /auth/token`) over keep-alive
//! connections, beside the same axum service answering a constant 200
//! (`POST /_test/constant`, same request bodies), on the memory store and
//! on Redis; the share of the service's CPU time spent inside otpflow; and
//! the invariants checked after the run.
//!
//! The machine is shared and noisy, so the run is paired and interleaved:
//! each round measures the constant route and verify back to back on the
//! same service (their order alternating from round to round), and the
//! report gives the median over the rounds of each figure and of each
//! round's verify/constant ratio.
//!
//! The client is lean (one hyper HTTP/1.1 connection per worker, bodies
//! serialized before the clock starts, answers parsed after it stops), so
//! it costs the shared CPUs as little as it can.
//!
//! `cargo bench -p otpflow-server --bench load` runs the full load
//! (`OTPFLOW_LOAD_N` numbers per round, default 4 000; `OTPFLOW_LOAD_ROUNDS`,
//! default 5; `OTPFLOW_LOAD_STORES`, default `memory,redis`); run as a test
//! (`cargo test --all-targets`) it is a smoke of a few hundred numbers on
//! the memory store, with the same invariant checks.
//!
//! With `OTPFLOW_LOAD_PERF_DIR=DIR`, the first round's verify phase of each
//! service is also recorded by `perf record --call-graph dwarf` into
//! `DIR/perf-<store>.data` (attached to the service's pid for that phase
//! only; that round's figures then carry perf's cost), at
//! `OTPFLOW_LOAD_PERF_FREQ` samples per second (default 499).
//!
//! The share of CPU inside otpflow is read two ways, on the memory store
//! only (a network store's calls wait on other threads). The headline is
//! an upper bound read without touching the calls: the wall time inside
//! every otpflow call of the paired verify phase (the monotonic clock, no
//! system call) over the service's CPU in that phase; the memory store's
//! calls run start to end on their thread, so a call's wall time is at
//! least its CPU time. Beside it, in a verify phase of its own with the
//! thread CPU timing switched on (`POST /_test/cpu-timing`), the thread
//! CPU clock read around one call in 16 (the rest estimated from that
//! sample), with two checks of that reading: the sampled calls' CPU time
//! over their own wall time (above 1 is the clock reads' own cost: 1.3×
//! in session 12's runs), and their wall time over the other calls' (are
//! they slowed by the reads?).
//!
//! `OTPFLOW_LOAD_STORES` may name `postgres` too: a private PostgreSQL 15
//! (`initdb` in a temporary directory, `fsync=off`, a free loopback port,
//! stopped by its pid), as the black-box tests start it.
//!
//! With `OTPFLOW_LOAD_PIN=1` (and at least 2 CPUs), each service runs under
//! `taskset -c 1` and the client's runtime threads are pinned to CPU 0, so
//! the service and the load client do not take turns on one core (store
//! servers are left unpinned).

#[path = "../tests/blackbox/stores.rs"]
#[allow(dead_code)] // the bench uses only the PostgreSQL server
mod stores;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

const ADMIN: &str = "load-admin-token";
const KEYS: &str = r#"{
  "otp_keys": [{ "id": 1, "secret": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" }],
  "token_key": "dG9rZW4ta2V5LW9mLXRoZS10ZXN0cy0zMi1ieXRlcyE=",
  "kgen_user_jwt_key": "a2dlbi11c2VyLWp3dC1rZXktb2YtdGhlLXRlc3RzISE=",
  "store_key": "c3RvcmUta2V5LW9mLXRoZS10ZXN0cy0zMi1ieXRlcyE="
}"#;
const CONCURRENCY: usize = 32;

/// One measured phase.
struct Phase {
    requests: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Phase {
    fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
    fn pct(&self, p: f64) -> Duration {
        let mut l = self.latencies.clone();
        l.sort_unstable();
        let i = ((l.len() as f64 - 1.0) * p).round() as usize;
        l.get(i).copied().unwrap_or_default()
    }
}

/// Runs `bodies` through `POST path` with [`CONCURRENCY`] workers, each on
/// its own keep-alive connection; returns the phase and every answer's
/// (status, body), in the order of `bodies`.
async fn drive(addr: SocketAddr, path: &str, bodies: Vec<Bytes>) -> (Phase, Vec<(u16, Bytes)>) {
    let requests = bodies.into_iter().map(|b| (b, None)).collect();
    drive_with(addr, hyper::Method::POST, path, requests).await
}

/// As [`drive`], with the method and, per request, an `Authorization`
/// header.
async fn drive_with(
    addr: SocketAddr,
    method: hyper::Method,
    path: &str,
    requests: Vec<(Bytes, Option<hyper::header::HeaderValue>)>,
) -> (Phase, Vec<(u16, Bytes)>) {
    let n = requests.len();
    let bodies = Arc::new(requests);
    let next = Arc::new(AtomicUsize::new(0));
    let path: Arc<str> = Arc::from(path);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY.min(n.max(1)) {
        let (bodies, next, path, method) =
            (bodies.clone(), next.clone(), path.clone(), method.clone());
        tasks.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(addr)
                .await
                .expect("a connection");
            stream.set_nodelay(true).expect("nodelay");
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .expect("a handshake");
            tokio::spawn(conn);
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((body, auth)) = bodies.get(i) else {
                    break;
                };
                let mut request = hyper::Request::builder()
                    .method(method.clone())
                    .uri(&*path)
                    .header(hyper::header::HOST, "127.0.0.1")
                    .header(hyper::header::CONTENT_TYPE, "application/json");
                if let Some(auth) = auth {
                    request = request.header(hyper::header::AUTHORIZATION, auth.clone());
                }
                let request = request.body(Full::new(body.clone())).expect("a request");
                let t = Instant::now();
                sender.ready().await.expect("the connection is ready");
                let response = sender.send_request(request).await.expect("an answer");
                let status = response.status().as_u16();
                let bytes = response
                    .into_body()
                    .collect()
                    .await
                    .expect("a body")
                    .to_bytes();
                out.push((i, t.elapsed(), status, bytes));
            }
            out
        }));
    }
    let mut results = vec![(0u16, Bytes::new()); n];
    let mut latencies = Vec::with_capacity(n);
    for t in tasks {
        for (i, lat, status, body) in t.await.expect("a worker") {
            latencies.push(lat);
            results[i] = (status, body);
        }
    }
    let elapsed = started.elapsed();
    (
        Phase {
            requests: n,
            elapsed,
            latencies,
        },
        results,
    )
}

/// Nanoseconds every thread of a process has run on a CPU (the first field
/// of each `/proc/<pid>/task/<tid>/schedstat`): the scheduler's own count,
/// exact to the nanosecond, unlike `/proc/<pid>/stat`'s 10 ms ticks, and
/// blind to the time the process waits for a CPU on a loaded machine.
fn run_nanos(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// The service's time inside otpflow's calls (`GET /_test/stats`), since
/// it started.
#[derive(Clone, Copy, Debug, Default)]
struct Stats {
    /// Thread CPU time inside the calls (estimated from one call in 16,
    /// while the timing is on).
    cpu: u64,
    /// Wall time inside every call (the monotonic clock, read without a
    /// system call).
    wall: u64,
    calls: u64,
    /// Wall time inside the CPU-timed calls.
    sampled_wall: u64,
    sampled: u64,
}

/// A service process of the run's own, stopped by its pid when dropped.
struct Service {
    child: Child,
    addr: SocketAddr,
    outbox: PathBuf,
    store: String,
    client: reqwest::Client,
}

impl Service {
    fn start(dir: &Path, name: &str, store: &str) -> Self {
        let outbox = dir.join(format!("outbox-{name}.jsonl"));
        // `OTPFLOW_LOAD_SERVER_BIN` runs another build of the service (to
        // compare two builds run after run on the same machine).
        let bin = std::env::var("OTPFLOW_LOAD_SERVER_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_otpflow-server").to_owned());
        let mut command = if pinned() {
            let mut c = Command::new("taskset");
            c.args(["-c", "1", &bin]);
            c
        } else {
            Command::new(&bin)
        };
        let mut child = command
            .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
            .args(["--store", store])
            .arg("--keys")
            .arg(dir.join("keys.json"))
            .arg("--outbox")
            .arg(&outbox)
            .env("OTPFLOW_ADMIN_TOKEN", ADMIN)
            .env("OTPFLOW_LOG", "warn,otpflow_server::server=info")
            .stdout(Stdio::piped())
            .spawn()
            .expect("the server starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut addr = None;
        for line in lines.by_ref().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<Value>(&line)
                && v["fields"]["message"] == "listening"
            {
                addr = v["fields"]["addr"].as_str().and_then(|a| a.parse().ok());
                break;
            }
        }
        // Keep draining its output so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
        let Some(addr) = addr else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the {name} service did not start");
        };
        Self {
            child,
            addr,
            outbox,
            store: name.to_owned(),
            client: reqwest::Client::new(),
        }
    }

    async fn cpu_timing(&self, on: bool) {
        let r = self
            .client
            .post(format!("http://{}/_test/cpu-timing", self.addr))
            .header("x-admin-token", ADMIN)
            .json(&json!({ "on": on }))
            .send()
            .await
            .expect("cpu-timing");
        assert!(r.status().is_success());
    }

    async fn stats(&self) -> Stats {
        let v: Value = self
            .client
            .get(format!("http://{}/_test/stats", self.addr))
            .header("x-admin-token", ADMIN)
            .send()
            .await
            .expect("stats")
            .json()
            .await
            .expect("json");
        let n = |name: &str| v[name].as_u64().unwrap_or(0);
        Stats {
            cpu: n("otpflow_cpu_nanos"),
            wall: n("otpflow_nanos"),
            calls: n("otpflow_calls"),
            sampled_wall: n("otpflow_sampled_nanos"),
            sampled: n("otpflow_sampled_calls"),
        }
    }

    /// The last code sent to each number for `purpose`, from the outbox.
    fn codes(&self, purpose: &str) -> HashMap<String, String> {
        let mut codes = HashMap::new();
        for line in std::fs::read_to_string(&self.outbox)
            .expect("outbox")
            .lines()
        {
            let m: Value = serde_json::from_str(line).expect("a JSON line");
            if m["purpose"] != purpose {
                continue;
            }
            let to = m["to"]
                .as_str()
                .expect("to")
                .trim_start_matches('+')
                .to_owned();
            codes.insert(to, m["code"].as_str().expect("code").to_owned());
        }
        codes
    }

    fn lines(&self) -> usize {
        std::fs::read_to_string(&self.outbox)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// True when the run pins the service to CPU 1 and the client to CPU 0.
fn pinned() -> bool {
    std::env::var("OTPFLOW_LOAD_PIN").is_ok_and(|v| v == "1")
        && std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2)
}

/// Pins the calling thread to CPU 0 (the client's side of a pinned run).
fn pin_client_thread() {
    let mut set = nix::sched::CpuSet::new();
    if set.set(0).is_ok() {
        let _ = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set);
    }
}

/// A `redis-server` of the run's own, stopped by its pid when dropped.
struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    fn start(dir: &Path) -> Option<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .ok()?
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(dir)
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(Self { child, port });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One round's figures for one service.
#[derive(Default)]
struct Round {
    start_rps: f64,
    start_p50: f64,
    start_p99: f64,
    const_rps: f64,
    const_p50: f64,
    const_p99: f64,
    verify_rps: f64,
    verify_p50: f64,
    verify_p99: f64,
    ratio: f64,
    /// The service's CPU time per request (µs) in the constant phase.
    const_cpu_us: f64,
    /// The same in the verify phase.
    verify_cpu_us: f64,
    /// Verifik onboarding's verify (`PUT /v2/phone-validations`).
    onboard_rps: f64,
    onboard_p50: f64,
    onboard_p99: f64,
    onboard_ratio: f64,
    onboard_cpu_us: f64,
    cpu_share: Option<f64>,
    wall_share: f64,
    /// Mean wall time of a CPU-timed call over an untimed one's.
    sampled_slowdown: Option<f64>,
    /// The CPU-timed calls' thread CPU time over their own wall time.
    sampled_cpu_over_wall: Option<f64>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => f64::midpoint(v[n / 2 - 1], v[n / 2]),
    }
}

fn token_body(phone: &str, code: &str) -> Bytes {
    Bytes::from(
        json!({ "grant_type": "password", "username": phone, "password": code, "channel": "sms" })
            .to_string(),
    )
}

/// One round on one service: start N fresh numbers (and N/2 more for the
/// CPU-share phase), then the constant route and verify back to back (in
/// the order `constant_first` says, no timing inside the service), then a
/// verify phase of the N/2 others with the thread CPU timing of otpflow's
/// calls on, then the invariants of that round.
async fn round(
    svc: &Service,
    pid: u32,
    first: usize,
    n: usize,
    constant_first: bool,
    profile: bool,
) -> Round {
    let extra = n / 2;
    let phones: Vec<String> = (first..first + n + extra)
        .map(|i| format!("4474{:08}", 10_000_000 + i))
        .collect();
    let lines_before = svc.lines();
    let bodies = phones
        .iter()
        .map(|p| Bytes::from(json!({ "phone": p, "channel": "sms" }).to_string()))
        .collect();
    let (start, answers) = drive(svc.addr, "/otp", bodies).await;
    assert!(
        answers.iter().all(|(s, _)| *s == 200),
        "every start answers 200"
    );
    // No lost send, none twice: one new outbox line per number.
    assert_eq!(
        svc.lines() - lines_before,
        n + extra,
        "one message per start"
    );
    let codes = svc.codes("kavoon");
    let all_bodies: Vec<Bytes> = phones.iter().map(|p| token_body(p, &codes[p])).collect();
    let (verify_bodies, cpu_bodies) = all_bodies.split_at(n);
    let verify_bodies = verify_bodies.to_vec();

    // Verifik onboarding, the cheapest seed's verify (no token issued, the
    // registration's token checked, a small answer): app registrations for
    // the same numbers (another purpose, so records of their own).
    let lines_before = svc.lines();
    let registrations = phones[..n]
        .iter()
        .map(|p| Bytes::from(json!({ "countryCode": "+44", "phone": &p[2..] }).to_string()))
        .collect();
    let (_, registered) = drive(svc.addr, "/v2/app-registrations", registrations).await;
    assert!(
        registered.iter().all(|(s, _)| *s == 200),
        "every registration answers 200"
    );
    assert_eq!(
        svc.lines() - lines_before,
        n,
        "one message per registration"
    );
    let onboarding_codes = svc.codes("verifik-onboarding");
    let onboarding: Vec<(Bytes, Option<hyper::header::HeaderValue>)> = phones[..n]
        .iter()
        .zip(&registered)
        .map(|(p, (_, body))| {
            let v: Value = serde_json::from_slice(body).expect("a JSON answer");
            let token = v["token"].as_str().expect("a token");
            (
                Bytes::from(
                    json!({ "countryCode": "+44", "phone": &p[2..], "otp": onboarding_codes[p] })
                        .to_string(),
                ),
                Some(
                    hyper::header::HeaderValue::from_str(&format!("Bearer {token}"))
                        .expect("a header"),
                ),
            )
        })
        .collect();

    let mut r = Round {
        start_rps: start.rps(),
        start_p50: ms(start.pct(0.5)),
        start_p99: ms(start.pct(0.99)),
        ..Round::default()
    };
    let mut constant = None;
    let mut const_run = 0;
    if constant_first {
        let before = run_nanos(pid);
        constant = Some(drive(svc.addr, "/_test/constant", verify_bodies.clone()).await);
        const_run = run_nanos(pid).saturating_sub(before);
    }
    let perf = if profile { perf_start(svc, pid) } else { None };
    let stats0 = svc.stats().await;
    let before = run_nanos(pid);
    let (verify, answers) = drive(svc.addr, "/auth/token", verify_bodies.clone()).await;
    let verify_run = run_nanos(pid).saturating_sub(before);
    let stats1 = svc.stats().await;
    perf_stop(perf);
    let before = run_nanos(pid);
    let (onboard, onboard_answers) = drive_with(
        svc.addr,
        hyper::Method::PUT,
        "/v2/phone-validations",
        onboarding.clone(),
    )
    .await;
    let onboard_run = run_nanos(pid).saturating_sub(before);
    for (status, body) in &onboard_answers {
        let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        assert!(
            *status == 200 && v["data"]["status"] == "validated",
            "every onboarding validation succeeds once: {status} {v}"
        );
    }
    let (_, again) = drive_with(
        svc.addr,
        hyper::Method::PUT,
        "/v2/phone-validations",
        onboarding,
    )
    .await;
    assert!(
        again.iter().all(|(s, _)| *s != 200),
        "no onboarding code validated twice"
    );
    if !constant_first {
        let before = run_nanos(pid);
        constant = Some(drive(svc.addr, "/_test/constant", verify_bodies.clone()).await);
        const_run = run_nanos(pid).saturating_sub(before);
    }
    let (constant, constant_answers) = constant.expect("the constant phase ran");
    assert!(constant_answers.iter().all(|(s, _)| *s == 200));

    // The CPU share: the service's CPU time (the scheduler's count, as the
    // paired phases'; `/proc/<pid>/stat`'s 10 ms ticks made a phase of
    // 2 000 verifies two or three ticks long) against the thread CPU time
    // inside otpflow's calls, over a verify phase of its own.
    svc.cpu_timing(true).await;
    let in0 = svc.stats().await;
    let cpu0 = run_nanos(pid);
    let (_, cpu_answers) = drive(svc.addr, "/auth/token", cpu_bodies.to_vec()).await;
    let cpu = run_nanos(pid).saturating_sub(cpu0);
    let in1 = svc.stats().await;
    svc.cpu_timing(false).await;

    // No lost validation: every right code validated, each number new.
    for (status, body) in answers.iter().chain(&cpu_answers) {
        let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        assert!(
            *status == 200 && v["new_client"] == true,
            "every verify succeeds once: {status} {v}"
        );
    }
    r.const_rps = constant.rps();
    r.const_p50 = ms(constant.pct(0.5));
    r.const_p99 = ms(constant.pct(0.99));
    r.verify_rps = verify.rps();
    r.verify_p50 = ms(verify.pct(0.5));
    r.verify_p99 = ms(verify.pct(0.99));
    r.ratio = r.verify_rps / r.const_rps;
    r.onboard_rps = onboard.rps();
    r.onboard_p50 = ms(onboard.pct(0.5));
    r.onboard_p99 = ms(onboard.pct(0.99));
    r.onboard_ratio = r.onboard_rps / r.const_rps;
    r.onboard_cpu_us = onboard_run as f64 / 1e3 / n as f64;
    r.const_cpu_us = const_run as f64 / 1e3 / n as f64;
    r.verify_cpu_us = verify_run as f64 / 1e3 / n as f64;
    if cpu > 0 {
        let in_cpu = in1.cpu.saturating_sub(in0.cpu);
        r.cpu_share = (in_cpu > 0).then(|| in_cpu as f64 / cpu as f64);
        // Are the sampled calls slower than the others (the clock's
        // system calls around them)? Their wall time against the rest's.
        let sampled = in1.sampled.saturating_sub(in0.sampled);
        let others = in1.calls.saturating_sub(in0.calls).saturating_sub(sampled);
        let sampled_wall = in1.sampled_wall.saturating_sub(in0.sampled_wall);
        let others_wall = in1
            .wall
            .saturating_sub(in0.wall)
            .saturating_sub(sampled_wall);
        // The same calls' CPU time (the estimate back to the sample: every
        // call of the phase was eligible) against their wall time: a call
        // that never leaves its thread cannot use more CPU than wall time,
        // so a CPU time above it is the measurement's own.
        let calls = in1.calls.saturating_sub(in0.calls);
        if sampled > 0 && calls > 0 {
            let raw_cpu = in_cpu as f64 * sampled as f64 / calls as f64;
            r.sampled_cpu_over_wall = Some(raw_cpu / sampled_wall.max(1) as f64);
        }
        if sampled > 0 && others > 0 && others_wall > 0 {
            r.sampled_slowdown =
                Some((sampled_wall as f64 / sampled as f64) / (others_wall as f64 / others as f64));
        }
    }
    // The wall time inside every otpflow call of the paired verify phase
    // (timing off: no system call in the service but its own), over the
    // service's CPU in that phase. The memory store's calls run start to
    // end on the calling thread, so a call's wall time is at least its
    // CPU time: this share is an upper bound of the CPU share, read
    // without touching the calls.
    if verify_run > 0 {
        r.wall_share = stats1.wall.saturating_sub(stats0.wall) as f64 / verify_run as f64;
    }

    // No code validates twice.
    let (_, again) = drive(svc.addr, "/auth/token", all_bodies).await;
    assert!(
        again.iter().all(|(s, _)| *s == 400),
        "no code validated twice"
    );
    r
}

/// `perf record -g` attached to `pid`, when `OTPFLOW_LOAD_PERF_DIR` is set.
fn perf_start(svc: &Service, pid: u32) -> Option<Child> {
    let dir = std::env::var_os("OTPFLOW_LOAD_PERF_DIR")?;
    let out = PathBuf::from(dir).join(format!("perf-{}.data", svc.store));
    let child = Command::new("perf")
        .args([
            "record",
            "--call-graph",
            "dwarf,32768",
            "-F",
            &std::env::var("OTPFLOW_LOAD_PERF_FREQ").unwrap_or_else(|_| "499".to_owned()),
            "-p",
            &pid.to_string(),
            "-o",
        ])
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    // perf needs a moment to attach.
    std::thread::sleep(Duration::from_millis(500));
    Some(child)
}

/// Stops a `perf record` of ours by its pid (SIGINT, so it writes its file).
fn perf_stop(perf: Option<Child>) {
    let Some(mut child) = perf else { return };
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

/// No check over budget: fresh codes for a sample, six wrong checks each
/// (concurrently), then the right code is refused.
async fn budget_check(svc: &Service, first: usize, n: usize) {
    let phones: Vec<String> = (first..first + n)
        .map(|i| format!("4474{:08}", 10_000_000 + i))
        .collect();
    let bodies = phones
        .iter()
        .map(|p| Bytes::from(json!({ "phone": p, "channel": "sms" }).to_string()))
        .collect();
    let (_, answers) = drive(svc.addr, "/otp", bodies).await;
    assert!(answers.iter().all(|(s, _)| *s == 200));
    let codes = svc.codes("kavoon");
    let mut wrong = Vec::new();
    for p in &phones {
        let bad = if codes[p] == "000000" {
            "111111"
        } else {
            "000000"
        };
        for _ in 0..6 {
            wrong.push(token_body(p, bad));
        }
    }
    let (_, answers) = drive(svc.addr, "/auth/token", wrong).await;
    assert!(answers.iter().all(|(s, _)| *s == 400));
    let rights = phones.iter().map(|p| token_body(p, &codes[p])).collect();
    let (_, answers) = drive(svc.addr, "/auth/token", rights).await;
    assert!(
        answers.iter().all(|(s, _)| *s == 400),
        "no check past the budget"
    );
}

fn report(store: &str, rounds: &[Round]) {
    let m = |f: fn(&Round) -> f64| median(rounds.iter().map(f).collect());
    println!("\n{store}: medians over {} rounds", rounds.len());
    println!("| phase | req/s | p50 ms | p99 ms |");
    println!("|---|---|---|---|");
    println!(
        "| start | {:.0} | {:.2} | {:.2} |",
        m(|r| r.start_rps),
        m(|r| r.start_p50),
        m(|r| r.start_p99)
    );
    println!(
        "| constant 200 | {:.0} | {:.2} | {:.2} |",
        m(|r| r.const_rps),
        m(|r| r.const_p50),
        m(|r| r.const_p99)
    );
    println!(
        "| verify | {:.0} | {:.2} | {:.2} |",
        m(|r| r.verify_rps),
        m(|r| r.verify_p50),
        m(|r| r.verify_p99)
    );
    println!(
        "| verify, Verifik onboarding | {:.0} | {:.2} | {:.2} |",
        m(|r| r.onboard_rps),
        m(|r| r.onboard_p50),
        m(|r| r.onboard_p99)
    );
    let ratios: Vec<String> = rounds.iter().map(|r| format!("{:.2}", r.ratio)).collect();
    let onboard_ratios: Vec<String> = rounds
        .iter()
        .map(|r| format!("{:.2}", r.onboard_ratio))
        .collect();
    println!(
        "verify / constant: median {:.2}x (rounds: {})",
        m(|r| r.ratio),
        ratios.join(", ")
    );
    println!(
        "Verifik onboarding verify / constant: median {:.2}x (rounds: {})",
        m(|r| r.onboard_ratio),
        onboard_ratios.join(", ")
    );
    // The service's own CPU per request: what its throughput would be on a
    // core of its own, whatever else shares the machine (noise-proof
    // beside req/s, which a loaded machine or the client can limit).
    let cpu_ratios: Vec<String> = rounds
        .iter()
        .map(|r| format!("{:.2}", r.const_cpu_us / r.verify_cpu_us))
        .collect();
    println!(
        "service CPU per request: constant {:.2} us, verify {:.2} us, Verifik onboarding {:.2} us; constant/verify: median {:.2}x (rounds: {}), constant/onboarding: median {:.2}x",
        m(|r| r.const_cpu_us),
        m(|r| r.verify_cpu_us),
        m(|r| r.onboard_cpu_us),
        m(|r| r.const_cpu_us / r.verify_cpu_us),
        cpu_ratios.join(", "),
        m(|r| r.const_cpu_us / r.onboard_cpu_us)
    );
    let shares: Vec<f64> = rounds.iter().filter_map(|r| r.cpu_share).collect();
    if !shares.is_empty() {
        println!(
            "otpflow's share of the service's CPU during verify (thread CPU time inside its calls): median {:.1} % (rounds: {})",
            100.0 * median(shares.clone()),
            shares
                .iter()
                .map(|s| format!("{:.1}", 100.0 * s))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if store == "memory" {
        println!(
            "otpflow's share, upper bound (wall time inside every otpflow call of the paired verify phase, no timing system call / the service's CPU in it): median {:.1} % (rounds: {})",
            100.0 * m(|r| r.wall_share),
            rounds
                .iter()
                .map(|r| format!("{:.1}", 100.0 * r.wall_share))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let over: Vec<f64> = rounds
            .iter()
            .filter_map(|r| r.sampled_cpu_over_wall)
            .collect();
        if !over.is_empty() {
            println!(
                "CPU-timed calls' thread CPU time / their own wall time (above 1: the timing's own cost): median {:.2}x (rounds: {})",
                median(over.clone()),
                over.iter()
                    .map(|s| format!("{s:.2}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        let slowdowns: Vec<f64> = rounds.iter().filter_map(|r| r.sampled_slowdown).collect();
        if !slowdowns.is_empty() {
            println!(
                "CPU-timed calls' mean wall time / the other calls' (the clock's system calls around them): median {:.2}x (rounds: {})",
                median(slowdowns.clone()),
                slowdowns
                    .iter()
                    .map(|s| format!("{s:.2}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let env = |name: &str, default: usize| -> usize {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let n = env("OTPFLOW_LOAD_N", if full { 4_000 } else { 200 });
    let rounds = env("OTPFLOW_LOAD_ROUNDS", if full { 5 } else { 1 });
    let stores = std::env::var("OTPFLOW_LOAD_STORES")
        .unwrap_or_else(|_| if full { "memory,redis" } else { "memory" }.to_owned());
    let dir = std::env::temp_dir().join(format!("otpflow-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("keys.json"), KEYS).expect("keys");

    let mut redis = None;
    let mut pg = None;
    let mut services = Vec::new();
    for store in stores.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match store {
            "memory" => services.push(Service::start(&dir, "memory", "memory")),
            "redis" => {
                let Some(r) = Redis::start(&dir) else {
                    eprintln!("\n*** SKIPPED the Redis run: redis-server did not start ***\n");
                    continue;
                };
                let url = format!("redis://127.0.0.1:{}/", r.port);
                services.push(Service::start(&dir, "redis", &url));
                redis = Some(r);
            }
            "postgres" => {
                // Under CI a missing PostgreSQL fails; elsewhere it skips
                // loudly (the black-box tests' rule).
                let Some(server) = stores::PgServer::start() else {
                    eprintln!("\n*** SKIPPED the PostgreSQL run: no PostgreSQL 15 ***\n");
                    continue;
                };
                services.push(Service::start(&dir, "postgres", &server.url()));
                pg = Some(server);
            }
            other => panic!("unknown store {other:?} in OTPFLOW_LOAD_STORES"),
        }
    }
    let pin = pinned();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .on_thread_start(move || {
            if pin {
                pin_client_thread();
            }
        })
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "load: {n} numbers per round, {rounds} rounds, {CONCURRENCY} keep-alive connections, client and server on one machine{}",
        if pin {
            ", the service pinned to CPU 1 and the client to CPU 0"
        } else {
            ""
        }
    );
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(async {
            let mut results: Vec<Vec<Round>> = services.iter().map(|_| Vec::new()).collect();
            for r in 0..rounds {
                // Interleaved: every service in every round, the order of
                // constant and verify alternating.
                for (s, svc) in services.iter().enumerate() {
                    let pid = svc.child.id();
                    let first = (r * services.len() + s) * 2 * n;
                    let one = round(svc, pid, first, n, r % 2 == 0, r == 0).await;
                    results[s].push(one);
                }
            }
            for (s, svc) in services.iter().enumerate() {
                budget_check(svc, (rounds * services.len() + s) * 2 * n, n.min(50)).await;
                report(&svc.store, &results[s]);
            }
            println!(
                "\ninvariants: every send delivered once, every right code validated once, reuse refused, no check past the budget"
            );
        });
    }));
    drop(services);
    drop(redis);
    drop(pg);
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(p) = outcome {
        std::panic::resume_unwind(p);
    }
}
