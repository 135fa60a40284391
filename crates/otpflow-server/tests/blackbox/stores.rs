//! Real store servers for the `--store` tests, each on a free loopback
//! port in its own temporary directory, stopped by its own process id when
//! dropped. Outside CI a missing server binary skips the test with a loud
//! message; under `CI=true` it fails the test. (The approach of
//! `otpflow-redis`'s test support, trimmed to what these tests need.)

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// A port nothing listened on a moment ago.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("an address").port()
}

/// True when `binary --version` runs; otherwise fails under CI, or prints
/// a loud skip message and returns false.
fn found(binary: &str, install: &str) -> bool {
    let ok = Command::new(binary)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            !in_ci(),
            "`{binary}` is missing: CI must install it ({install})"
        );
        eprintln!("\n*** SKIPPED: `{binary}` not found; {install} to run this test ***\n");
    }
    ok
}

static DIRS: AtomicU32 = AtomicU32::new(0);

fn fresh_dir(kind: &str) -> PathBuf {
    let n = DIRS.fetch_add(1, Ordering::SeqCst);
    let dir =
        std::env::temp_dir().join(format!("otpflow-server-{kind}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temp dir");
    dir
}

/// A `redis-server` of this test's own.
pub struct RedisServer {
    child: Child,
    dir: PathBuf,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl RedisServer {
    /// Starts one (`$REDIS_SERVER`, else `redis-server` on the `PATH`);
    /// `None` after a loud message when there is none and this is not CI.
    pub fn start() -> Option<Self> {
        let binary = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_owned());
        if !found(&binary, "`apt-get install -y redis-server`") {
            return None;
        }
        let dir = fresh_dir("redis");
        for _ in 0..10 {
            let port = free_port();
            let mut child = Command::new(&binary)
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .arg("--dir")
                .arg(&dir)
                .args(["--save", "", "--appendonly", "no"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server starts");
            if ready(&mut child, port) {
                return Some(Self { child, dir, port });
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("redis-server did not start");
    }

    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

/// True once the server on `port` is `child` (its pid is checked, so a
/// server of someone else's on a reused port is never taken for ours).
fn ready(child: &mut Child, port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{port}/")) else {
        return false;
    };
    let pid = child.id();
    while Instant::now() < deadline {
        if child.try_wait().ok().flatten().is_some() {
            return false; // exited: the port was taken
        }
        if let Ok(mut c) = client.get_connection_with_timeout(Duration::from_millis(200))
            && let Ok(info) = redis::cmd("INFO").arg("server").query::<String>(&mut c)
        {
            return info
                .lines()
                .any(|l| l.trim() == format!("process_id:{pid}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // By its own handle (its pid), nothing else.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
