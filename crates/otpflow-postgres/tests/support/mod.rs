//! A private PostgreSQL 15 for the tests: `initdb` into a temporary
//! directory, `postgres` on a free loopback port (socket directory inside
//! it, trust authentication), stopped by its own process id when dropped.
//!
//! The server refuses to run as root: as root, the directory belongs to the
//! `postgres` user, `initdb` runs through `runuser` and the server through
//! `setpriv`, which `exec`s it, so the child this process holds *is* the
//! postmaster. Under `CI=true` a missing binary or a failed start fails the
//! test; elsewhere the test is skipped with a loud message.
//!
//! Binaries: `$OTPFLOW_PG_BIN`, else `/usr/lib/postgresql/15/bin`.

#![allow(dead_code, clippy::unwrap_used, clippy::missing_errors_doc)]

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::{Pid, User, geteuid};
use otpflow::store::AsyncStore;
use otpflow::{Engine, Policy, Record, Step, SubjectKey, Swap, Version};
use otpflow::{KeyId, KeyRing, SecretKey};
use otpflow_postgres::{PgStore, SubjectHasher};

const DEFAULT_BIN: &str = "/usr/lib/postgresql/15/bin";

/// True under `CI=true`, where a server that cannot start is a failure.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// A running private PostgreSQL.
pub struct PgServer {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    settings: Vec<(String, String)>,
    child: Option<Child>,
}

/// The binaries, or `None` (skip) outside CI; panics under CI.
fn binaries() -> Option<PathBuf> {
    let bin = std::env::var_os("OTPFLOW_PG_BIN")
        .map_or_else(|| PathBuf::from(DEFAULT_BIN), PathBuf::from);
    if bin.join("initdb").is_file() && bin.join("postgres").is_file() {
        return Some(bin);
    }
    let message = format!(
        "PostgreSQL binaries not found in {} (set OTPFLOW_PG_BIN): {}",
        bin.display(),
        "the PostgreSQL tests cannot run"
    );
    assert!(!in_ci(), "{message}");
    eprintln!("\n*** SKIPPED: {message} ***\n");
    None
}

fn as_root() -> bool {
    geteuid().is_root()
}

/// Runs `program args` as the `postgres` user when root.
fn command_as_postgres(program: &Path) -> Command {
    if as_root() {
        let mut command = Command::new("setpriv");
        command
            .args([
                "--reuid=postgres",
                "--regid=postgres",
                "--init-groups",
                "--",
            ])
            .arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl PgServer {
    /// A fresh server with `pg_stat_statements` loaded and `fsync` off (a
    /// killed server process still leaves its writes in the kernel).
    pub fn start() -> Option<Self> {
        Self::start_with(&[
            ("fsync", "off"),
            ("shared_preload_libraries", "pg_stat_statements"),
        ])
    }

    /// A fresh server with these extra settings (`-c name=value`).
    pub fn start_with(settings: &[(&str, &str)]) -> Option<Self> {
        let bin = binaries()?;
        static SERIAL: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "otpflow-pg-{}-{}",
            std::process::id(),
            SERIAL.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("a temporary directory");
        if as_root() {
            let user = User::from_name("postgres")
                .ok()
                .flatten()
                .expect("a `postgres` user to run the server as (it refuses root)");
            std::os::unix::fs::chown(&dir, Some(user.uid.as_raw()), Some(user.gid.as_raw()))
                .expect("chown the directory");
        }
        let mut server = Self {
            dir,
            bin,
            port: 0,
            settings: settings
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            child: None,
        };
        let initdb = command_as_postgres(&server.bin.join("initdb"))
            .arg("-D")
            .arg(server.data())
            .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C"])
            .args(["--no-sync", "--no-instructions"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output();
        match initdb {
            Ok(out) if out.status.success() => {}
            Ok(out) => server.fail(&format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )),
            Err(e) => server.fail(&format!("initdb could not run: {e}")),
        }
        for _ in 0..5 {
            server.port = free_port();
            if server.launch() {
                return Some(server);
            }
        }
        server.fail(&format!("postgres did not start: {}", server.log_tail()));
        None
    }

    /// Fails (panics) with the reason; the directory is removed by `Drop`.
    fn fail(&self, reason: &str) {
        panic!("could not start PostgreSQL for the tests: {reason}");
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn log(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    fn log_tail(&self) -> String {
        let text = fs::read_to_string(self.log()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// Starts the postmaster on `self.port`; true once it accepts
    /// connections.
    fn launch(&mut self) -> bool {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())
            .expect("the server log");
        let mut command = command_as_postgres(&self.bin.join("postgres"));
        command
            .arg("-D")
            .arg(self.data())
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-k")
            .arg(&self.dir)
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "max_connections=300",
            ])
            .args(["-c", "shared_buffers=64MB"]);
        for (name, value) in &self.settings {
            command.arg("-c").arg(format!("{name}={value}"));
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the server log"))
            .stderr(log)
            .spawn();
        let Ok(child) = child else {
            return false;
        };
        self.child = Some(child);
        if self.wait_ready(Duration::from_secs(60)) {
            return true;
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        false
    }

    /// Waits for `postmaster.pid` to say `ready`, or for the server to exit.
    fn wait_ready(&mut self, limit: Duration) -> bool {
        let started = Instant::now();
        let pid_file = self.data().join("postmaster.pid");
        while started.elapsed() < limit {
            let Some(child) = self.child.as_mut() else {
                return false;
            };
            if let Ok(Some(_)) = child.try_wait() {
                self.child = None;
                return false;
            }
            let status = fs::read_to_string(&pid_file).unwrap_or_default();
            let own = status.lines().next() == Some(&child.id().to_string());
            if own && status.lines().nth(7).is_some_and(|l| l.trim() == "ready") {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// The port the server listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The postmaster's process id.
    pub fn pid(&self) -> Option<Pid> {
        self.child
            .as_ref()
            .and_then(|c| i32::try_from(c.id()).ok())
            .map(Pid::from_raw)
    }

    /// A client configuration for the `postgres` database, with
    /// `search_path` set to `schema` when given.
    pub fn config(&self, schema: Option<&str>) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host("127.0.0.1")
            .port(self.port)
            .user("postgres")
            .dbname("postgres")
            .connect_timeout(Duration::from_secs(5));
        if let Some(schema) = schema {
            config.options(format!("-c search_path={schema}"));
        }
        config
    }

    /// An administrative connection (no timeouts of the store's).
    pub async fn admin(&self) -> tokio_postgres::Client {
        let (client, connection) = self
            .config(None)
            .connect(tokio_postgres::NoTls)
            .await
            .expect("an administrative connection");
        tokio::spawn(async move {
            let _ = connection.await;
        });
        client
    }

    /// The postmaster and its children (read from `/proc`).
    fn processes(&self) -> Vec<Pid> {
        let Some(postmaster) = self.pid() else {
            return Vec::new();
        };
        let mut pids = vec![postmaster];
        let Ok(entries) = fs::read_dir("/proc") else {
            return pids;
        };
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<i32>().ok())
            else {
                continue;
            };
            let stat = fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            // Fields after the command name (which may hold spaces) in parens.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|s| s.parse::<i32>().ok());
            if ppid == Some(postmaster.as_raw()) {
                pids.push(Pid::from_raw(pid));
            }
        }
        pids
    }

    fn signal_all(&self, signal: Signal) {
        for pid in self.processes() {
            let _ = kill(pid, signal);
        }
    }

    /// `kill -9` of the postmaster and every server process under it, as a
    /// crash would; waits for the postmaster to be gone.
    pub fn crash(&mut self) {
        let processes = self.processes();
        for pid in &processes {
            let _ = kill(*pid, Signal::SIGKILL);
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
        // Backends of a dead postmaster exit by themselves; wait for them so
        // the restart finds the shared memory free.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline
            && processes
                .get(1..)
                .unwrap_or_default()
                .iter()
                .any(|pid| Path::new(&format!("/proc/{pid}")).exists())
        {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the server again on the same data and port (after `crash`).
    pub fn restart(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if self.launch() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("postgres did not restart: {}", self.log_tail());
    }

    /// SIGSTOP to every server process: a hung server.
    pub fn freeze(&self) {
        self.signal_all(Signal::SIGSTOP);
    }

    /// SIGCONT to every server process.
    pub fn thaw(&self) {
        self.signal_all(Signal::SIGCONT);
    }

    /// Fast shutdown (SIGINT) by the postmaster's id; SIGKILL of the server's
    /// processes if it has not exited within 20 s.
    fn stop(&mut self) {
        let Some(pid) = self.pid() else {
            return;
        };
        self.thaw();
        let _ = kill(pid, Signal::SIGINT);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(_)) = child.try_wait()
            {
                self.child = None;
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.crash();
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// One server shared by the tests of a binary that run at the same time;
/// it stops when the last of them drops its handle.
pub fn shared_server() -> Option<Arc<PgServer>> {
    static SHARED: Mutex<Weak<PgServer>> = Mutex::new(Weak::new());
    let mut shared = SHARED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(server) = shared.upgrade() {
        return Some(server);
    }
    let server = Arc::new(PgServer::start()?);
    *shared = Arc::downgrade(&server);
    Some(server)
}

/// The key the tests hash subjects with.
pub const HASH_KEY: [u8; 32] = [0x5a; 32];

/// A fresh schema `name` on `server` (dropped first if left over) and a
/// migrated store in it.
pub async fn fresh_store(server: &PgServer, name: &str, policy: Policy) -> PgStore {
    fresh_store_with(server, name, policy, |b| b).await
}

/// As [`fresh_store`], with the builder adjusted by `adjust`.
pub async fn fresh_store_with(
    server: &PgServer,
    name: &str,
    policy: Policy,
    adjust: impl FnOnce(otpflow_postgres::PgStoreBuilder) -> otpflow_postgres::PgStoreBuilder,
) -> PgStore {
    create_schema(server, name).await;
    let hasher = SubjectHasher::new(&HASH_KEY).unwrap();
    let store = adjust(PgStore::builder(server.config(Some(name)), hasher, policy))
        .build()
        .unwrap();
    assert_eq!(
        store.migrate().await.unwrap(),
        1,
        "a fresh schema migrates once"
    );
    store
}

/// Creates the schema `name`, empty.
pub async fn create_schema(server: &PgServer, name: &str) {
    let admin = server.admin().await;
    admin
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name};"
        ))
        .await
        .unwrap();
}

/// An engine with fixed test keys.
pub fn engine(policy: Policy) -> Engine {
    Engine::new(
        policy,
        KeyRing::new(SecretKey::new(KeyId(1), &[42u8; 32]).unwrap()),
    )
}

/// A policy generous with budgets, for hammering one subject.
pub fn hammer_policy() -> Policy {
    Policy::builder()
        .failure_cap(10_000)
        .subject_send_cap(10_000)
        .max_sends(100)
        .build()
        .unwrap()
}

/// What a driven operation ended with: the engine's outcome, and the version
/// written if it wrote.
pub struct Driven<T> {
    pub outcome: Result<T, otpflow::Error>,
    pub written: Option<Version>,
    /// The record written, if any.
    pub record: Option<Record>,
}

/// A store failure met while driving.
#[derive(Debug)]
pub struct Failed(pub otpflow_postgres::PgStoreError);

/// The async driver loop otpflow's `Verifier` runs: load, transition,
/// compare-and-swap, and again on a conflict (at most `retries` times).
pub async fn drive<T, S: AsyncStore<Error = otpflow_postgres::PgStoreError>>(
    store: &S,
    subject: &SubjectKey,
    retries: u32,
    mut transition: impl FnMut(Option<&Record>) -> Step<T>,
) -> Result<Driven<T>, Failed> {
    for _ in 0..=retries {
        let loaded = store
            .load(&otpflow::RecordKey::from(subject))
            .await
            .map_err(Failed)?;
        let step = transition(loaded.as_ref().map(|(r, _)| r));
        let mut written = None;
        if let Some(new) = &step.write {
            let expected = loaded.as_ref().map(|(_, v)| *v);
            match store
                .compare_and_swap(&otpflow::RecordKey::from(subject), expected, new)
                .await
                .map_err(Failed)?
            {
                Swap::Done(v) => written = Some(v),
                Swap::Conflict => continue,
            }
        }
        let record = written.and(step.write);
        return Ok(Driven {
            outcome: step.outcome,
            written,
            record,
        });
    }
    Ok(Driven {
        outcome: Err(otpflow::Error::Contention),
        written: None,
        record: None,
    })
}
