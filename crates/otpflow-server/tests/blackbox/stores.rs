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

/// A private PostgreSQL 15 of this test's own: `initdb` into a fresh
/// directory, `postgres` on a free loopback port (trust authentication),
/// stopped by its own process id (fast shutdown, SIGINT) when dropped. As
/// root the server runs as the `postgres` user (it refuses root): `initdb`
/// and `postgres` go through `setpriv`, which `exec`s, so the child held
/// here *is* the postmaster. Binaries: `$OTPFLOW_PG_BIN`, else
/// `/usr/lib/postgresql/15/bin`.
pub struct PgServer {
    child: Option<Child>,
    dir: PathBuf,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

fn as_postgres(program: &std::path::Path) -> Command {
    if nix::unistd::geteuid().is_root() {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=postgres",
            "--regid=postgres",
            "--init-groups",
            "--",
        ])
        .arg(program);
        c
    } else {
        Command::new(program)
    }
}

impl PgServer {
    /// Starts one; `None` after a loud message when the binaries are
    /// missing and this is not CI (under CI: a failure).
    pub fn start() -> Option<Self> {
        let bin = std::env::var_os("OTPFLOW_PG_BIN").map_or_else(
            || PathBuf::from("/usr/lib/postgresql/15/bin"),
            PathBuf::from,
        );
        if !(bin.join("initdb").is_file() && bin.join("postgres").is_file()) {
            let message = format!(
                "PostgreSQL binaries not found in {} (set OTPFLOW_PG_BIN)",
                bin.display()
            );
            assert!(!in_ci(), "{message}: CI must install PostgreSQL 15");
            eprintln!("\n*** SKIPPED: {message} ***\n");
            return None;
        }
        let dir = fresh_dir("pg");
        if nix::unistd::geteuid().is_root() {
            let user = nix::unistd::User::from_name("postgres")
                .ok()
                .flatten()
                .expect("a `postgres` user to run the server as (it refuses root)");
            std::os::unix::fs::chown(&dir, Some(user.uid.as_raw()), Some(user.gid.as_raw()))
                .expect("chown the directory");
        }
        let data = dir.join("data");
        let initdb = as_postgres(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C"])
            .args(["--no-sync", "--no-instructions"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .expect("initdb runs");
        assert!(
            initdb.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&initdb.stderr)
        );
        let mut server = Self {
            child: None,
            dir,
            port: 0,
        };
        for _ in 0..5 {
            let port = free_port();
            let log = std::fs::File::create(server.dir.join(format!("server-{port}.log")))
                .expect("a log file");
            let child = as_postgres(&bin.join("postgres"))
                .arg("-D")
                .arg(&data)
                .args(["-p", &port.to_string()])
                .arg("-k")
                .arg(&server.dir)
                .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("the log"))
                .stderr(log)
                .spawn()
                .expect("postgres starts");
            server.child = Some(child);
            server.port = port;
            if server.wait_ready(&data) {
                return Some(server);
            }
            server.stop();
        }
        panic!("postgres did not start");
    }

    /// Waits for `postmaster.pid` to name our child and say `ready`.
    fn wait_ready(&mut self, data: &std::path::Path) -> bool {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let Some(child) = self.child.as_mut() else {
                return false;
            };
            if child.try_wait().ok().flatten().is_some() {
                self.child = None;
                return false; // exited: the port was taken
            }
            let status = std::fs::read_to_string(data.join("postmaster.pid")).unwrap_or_default();
            let own = status.lines().next() == Some(child.id().to_string().as_str());
            if own && status.lines().nth(7).is_some_and(|l| l.trim() == "ready") {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Fast shutdown of our postmaster by its pid; SIGKILL after 20 s.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(pid) = i32::try_from(child.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGINT,
            );
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
