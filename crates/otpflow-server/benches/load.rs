#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss,
    clippy::cast_sign_loss
)] // statistics over counts and durations
//! Load run against the real binary: requests/s and p50/p99 latency of
//! start (`POST /otp`) and verify (`POST /auth/token`) over keep-alive
//! connections, beside the same axum service answering a constant 200
//! (`POST /_test/constant`), the share of the service's CPU time spent
//! inside otpflow, and the invariants checked after the run.
//!
//! `cargo bench -p otpflow-server --bench load` runs the full load
//! (`OTPFLOW_LOAD_N` numbers, default 20 000); run as a test (`cargo test
//! --all-targets`) it is a smoke of a few hundred numbers.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const ADMIN: &str = "load-admin-token";
const KEYS: &str = r#"{
  "otp_keys": [{ "id": 1, "secret": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" }],
  "token_key": "dG9rZW4ta2V5LW9mLXRoZS10ZXN0cy0zMi1ieXRlcyE=",
  "kgen_user_jwt_key": "a2dlbi11c2VyLWp3dC1rZXktb2YtdGhlLXRlc3RzISE="
}"#;

struct Phase {
    name: &'static str,
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
    fn print(&self) {
        println!(
            "{:<10} {:>7} req  {:>9.0} req/s  p50 {:>7.3} ms  p99 {:>7.3} ms",
            self.name,
            self.requests,
            self.rps(),
            self.pct(0.50).as_secs_f64() * 1e3,
            self.pct(0.99).as_secs_f64() * 1e3,
        );
    }
}

/// Runs `bodies` through `path` with `concurrency` workers sharing one
/// keep-alive client; returns the phase and every answer's (status, body).
async fn drive(
    client: &reqwest::Client,
    url: String,
    name: &'static str,
    bodies: Vec<Value>,
    concurrency: usize,
) -> (Phase, Vec<(u16, Value)>) {
    let n = bodies.len();
    let bodies = Arc::new(bodies);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, url, bodies, next) =
            (client.clone(), url.clone(), bodies.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(body) = bodies.get(i) else { break };
                let t = Instant::now();
                let r = client
                    .post(&url)
                    .json(body)
                    .send()
                    .await
                    .expect("an answer");
                let status = r.status().as_u16();
                let bytes = r.bytes().await.expect("a body");
                let lat = t.elapsed();
                let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                out.push((i, lat, status, v));
            }
            out
        }));
    }
    let mut results = vec![(0u16, Value::Null); n];
    let mut latencies = Vec::with_capacity(n);
    for t in tasks {
        for (i, lat, status, v) in t.await.expect("a worker") {
            latencies.push(lat);
            results[i] = (status, v);
        }
    }
    let elapsed = started.elapsed();
    (
        Phase {
            name,
            requests: n,
            elapsed,
            latencies,
        },
        results,
    )
}

/// utime + stime of a process, in nanoseconds.
fn cpu_nanos(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields.get(11).and_then(|f| f.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|f| f.parse().ok()).unwrap_or(0);
    let hz = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(100);
    ticks * 1_000_000_000 / hz
}

async fn otpflow_nanos(client: &reqwest::Client, base: &str) -> u64 {
    let v: Value = client
        .get(format!("{base}/_test/stats"))
        .header("x-admin-token", ADMIN)
        .send()
        .await
        .expect("stats")
        .json()
        .await
        .expect("json");
    v["otpflow_nanos"].as_u64().unwrap_or(0)
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let n: usize = std::env::var("OTPFLOW_LOAD_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if full { 20_000 } else { 300 });
    let concurrency = 32;
    let dir = std::env::temp_dir().join(format!("otpflow-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("keys.json"), KEYS).expect("keys");
    let outbox = dir.join("outbox.jsonl");
    let mut child = Command::new(env!("CARGO_BIN_EXE_otpflow-server"))
        .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
        .arg("--keys")
        .arg(dir.join("keys.json"))
        .arg("--outbox")
        .arg(&outbox)
        .env("OTPFLOW_ADMIN_TOKEN", ADMIN)
        .env("OTPFLOW_LOG", "warn,otpflow_server::server=info")
        .stdout(Stdio::piped())
        .spawn()
        .expect("the server starts");
    let pid = child.id();
    let stdout = child.stdout.take().expect("stdout");
    let mut addr = String::new();
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        if let Ok(v) = serde_json::from_str::<Value>(&line)
            && v["fields"]["message"] == "listening"
        {
            addr = v["fields"]["addr"].as_str().unwrap_or("").to_owned();
            break;
        }
    }
    let base = format!("http://{addr}");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(run(&base, pid, n, concurrency, &outbox))
    }));
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(p) = outcome {
        std::panic::resume_unwind(p);
    }
}

async fn run(base: &str, pid: u32, n: usize, concurrency: usize, outbox: &std::path::Path) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .expect("client");
    let phones: Vec<String> = (0..n)
        .map(|i| format!("4474{:08}", 10_000_000 + i))
        .collect();
    println!(
        "load: {n} numbers, {concurrency} keep-alive connections, client and server on one machine"
    );

    // Start.
    let bodies = phones
        .iter()
        .map(|p| json!({ "phone": p, "channel": "sms" }))
        .collect();
    let (start, answers) =
        drive(&client, format!("{base}/otp"), "start", bodies, concurrency).await;
    assert!(
        answers.iter().all(|(s, _)| *s == 200),
        "every start answers 200"
    );
    start.print();

    // The codes, as the phones received them: one message per number.
    let mut codes: HashMap<String, String> = HashMap::new();
    for line in std::fs::read_to_string(outbox).expect("outbox").lines() {
        let m: Value = serde_json::from_str(line).expect("a JSON line");
        let to = m["to"]
            .as_str()
            .expect("to")
            .trim_start_matches('+')
            .to_owned();
        let fresh = codes
            .insert(to, m["code"].as_str().expect("code").to_owned())
            .is_none();
        assert!(fresh, "one message per number");
    }
    assert_eq!(codes.len(), n, "no lost send");

    // The floor: the same service answering a constant 200 to the same bodies.
    let verify_bodies: Vec<Value> = phones
        .iter()
        .map(|p| json!({ "grant_type": "password", "username": p, "password": codes[p], "channel": "sms" }))
        .collect();
    let (floor, answers) = drive(
        &client,
        format!("{base}/_test/constant"),
        "constant",
        verify_bodies.clone(),
        concurrency,
    )
    .await;
    assert!(answers.iter().all(|(s, _)| *s == 200));
    floor.print();

    // Verify, with the service's CPU and the time inside otpflow measured.
    let cpu0 = cpu_nanos(pid);
    let in0 = otpflow_nanos(&client, base).await;
    let (verify, answers) = drive(
        &client,
        format!("{base}/auth/token"),
        "verify",
        verify_bodies.clone(),
        concurrency,
    )
    .await;
    let cpu = cpu_nanos(pid).saturating_sub(cpu0);
    let inside = otpflow_nanos(&client, base).await.saturating_sub(in0);
    verify.print();
    // No lost validation: every right code validated, each number once new.
    assert!(
        answers
            .iter()
            .all(|(s, b)| *s == 200 && b["new_client"] == true),
        "every verify succeeds"
    );

    println!(
        "verify / constant throughput: {:.2}x",
        verify.rps() / floor.rps()
    );
    if cpu > 0 {
        println!(
            "service CPU during verify: {:.3} s; inside otpflow: {:.3} s ({:.1} %)",
            cpu as f64 / 1e9,
            inside as f64 / 1e9,
            100.0 * inside as f64 / cpu as f64
        );
    }

    // No code validates twice.
    let (_, again) = drive(
        &client,
        format!("{base}/auth/token"),
        "reuse",
        verify_bodies,
        concurrency,
    )
    .await;
    assert!(
        again.iter().all(|(s, _)| *s == 400),
        "no code validated twice"
    );

    // No check over budget: on fresh codes for a sample, six wrong checks
    // (concurrently), then the right code is refused.
    let sample: Vec<&String> = phones.iter().take(n.min(50)).collect();
    let bodies = sample
        .iter()
        .map(|p| json!({ "phone": p, "channel": "sms" }))
        .collect();
    let (_, answers) = drive(
        &client,
        format!("{base}/otp"),
        "restart",
        bodies,
        concurrency,
    )
    .await;
    assert!(answers.iter().all(|(s, _)| *s == 200));
    let mut fresh: HashMap<String, String> = HashMap::new();
    for line in std::fs::read_to_string(outbox).expect("outbox").lines() {
        let m: Value = serde_json::from_str(line).expect("json");
        fresh.insert(
            m["to"]
                .as_str()
                .expect("to")
                .trim_start_matches('+')
                .to_owned(),
            m["code"].as_str().expect("code").to_owned(),
        );
    }
    let mut wrong = Vec::new();
    for p in &sample {
        let right = &fresh[p.as_str()];
        let bad = if right == "000000" {
            "111111"
        } else {
            "000000"
        };
        for _ in 0..6 {
            wrong.push(json!({ "grant_type": "password", "username": p, "password": bad, "channel": "sms" }));
        }
    }
    let (_, answers) = drive(
        &client,
        format!("{base}/auth/token"),
        "wrong",
        wrong,
        concurrency,
    )
    .await;
    assert!(answers.iter().all(|(s, _)| *s == 400));
    let rights = sample
        .iter()
        .map(|p| json!({ "grant_type": "password", "username": p, "password": fresh[p.as_str()], "channel": "sms" }))
        .collect();
    let (_, answers) = drive(
        &client,
        format!("{base}/auth/token"),
        "after",
        rights,
        concurrency,
    )
    .await;
    assert!(
        answers.iter().all(|(s, _)| *s == 400),
        "no check past the budget"
    );
    println!(
        "invariants: every send delivered once, every right code validated once, reuse refused, no check past the budget"
    );
}
