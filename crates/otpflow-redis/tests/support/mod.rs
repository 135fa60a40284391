//! Real `redis-server` processes for the tests: each on a free loopback
//! port, in its own temporary directory, stopped by its own process id when
//! dropped. Outside CI a missing `redis-server` skips the test with a loud
//! message; under `CI=true` it fails the test.

#![allow(dead_code, clippy::unwrap_used)] // shared by several test files

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use otpflow::{PhoneNumber, PhonePolicy, Policy, Purpose, SubjectKey};
use otpflow_redis::RedisOptions;

/// The binary to run: `$REDIS_SERVER`, else `redis-server` on the `PATH`.
pub fn server_binary() -> String {
    std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_owned())
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
    args: Vec<String>,
}

impl RedisServer {
    /// A plain server (no persistence). `None` (after a loud message) when
    /// there is no `redis-server` and this is not CI.
    pub fn start() -> Option<Self> {
        Self::start_with(&["--save", "", "--appendonly", "no"])
    }

    /// A server with an append-only file synced on every write.
    pub fn start_durable() -> Option<Self> {
        Self::start_with(&[
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
        ])
    }

    pub fn start_with(args: &[&str]) -> Option<Self> {
        let binary = server_binary();
        let found = Command::new(&binary)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            assert!(
                !in_ci(),
                "`{binary}` is missing: CI must install redis-server (.ci/install/redis.sh)"
            );
            eprintln!(
                "\n*** SKIPPED: `{binary}` not found; `apt-get install -y redis-server` to run the Redis tests ***\n"
            );
            return None;
        }
        let mut server = Self {
            child: None,
            port: free_port(),
            dir: tempfile::tempdir().expect("a temporary directory"),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
        };
        server.launch();
        Some(server)
    }

    /// Starts the server, on a new port if another process took this one
    /// (the server that answers must be ours: its pid is checked).
    fn launch(&mut self) {
        for _ in 0..10 {
            let child = Command::new(server_binary())
                .arg("--port")
                .arg(self.port.to_string())
                .arg("--bind")
                .arg("127.0.0.1")
                .arg("--dir")
                .arg(self.dir.path())
                .args(&self.args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server starts");
            self.child = Some(child);
            if self.wait_ready() {
                return;
            }
            self.kill9();
            self.port = free_port();
        }
        panic!("redis-server did not start");
    }

    /// True once our own server answers on the port.
    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        let client = redis::Client::open(self.url()).unwrap();
        let pid = self.pid();
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && child.try_wait().ok().flatten().is_some()
            {
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

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// True until killed (and again once restarted).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).expect("running")
    }

    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_owned()
    }

    /// `kill -9`, by its own pid.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts again on the same port and directory (the AOF replays).
    pub fn restart(&mut self) {
        self.kill9();
        self.launch();
    }

    /// SIGSTOP / SIGCONT by pid.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal} {}", self.pid());
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            // A stopped server does not die of SIGKILL until continued on
            // some systems; continue it first (harmless if running).
            let _ = Command::new("kill")
                .arg("-CONT")
                .arg(child.id().to_string())
                .status();
        }
        self.kill9();
    }
}

/// A port nothing listened on a moment ago.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("an address").port()
}

/// Options with a random prefix, so runs never see each other's keys.
pub fn options(policy: Policy) -> RedisOptions {
    options_with_prefix(policy, &format!("t{:x}", random()))
}

/// Options any process can rebuild from the prefix.
pub fn options_with_prefix(policy: Policy, prefix: &str) -> RedisOptions {
    RedisOptions::new(&[9u8; 32], policy)
        .expect("a valid key")
        .prefix(prefix)
        .expect("a valid prefix")
}

pub fn random() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(Instant::now())
}

/// Subject `n`: a UK mobile ending in `n`'s last six digits, under the
/// first prefix whose range the phone-number data knows as mobile.
pub fn subject(n: u32) -> SubjectKey {
    let policy = PhonePolicy::default();
    let phone = ["7911", "7700", "7400", "7500", "7800", "7900", "7401"]
        .iter()
        .find_map(|prefix| {
            PhoneNumber::parse(&format!("+44{prefix}{:06}", n % 1_000_000), &policy).ok()
        })
        .expect("a UK mobile");
    SubjectKey::new(Purpose::Login, phone)
}
