//! Starts the real `otpflow-server` binary (built with the test hooks) on
//! a free loopback port, with its own keys, Kii apps and outbox in a fresh
//! directory, and stops it by its process id when dropped.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use reqwest::blocking::{Client, RequestBuilder, Response};
use serde_json::Value;

/// The admin token of the test hooks.
pub const ADMIN: &str = "test-admin-token";

/// Keys of the tests (32 bytes each, base64).
pub const KEYS: &str = r#"{
  "otp_keys": [{ "id": 1, "secret": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" }],
  "token_key": "dG9rZW4ta2V5LW9mLXRoZS10ZXN0cy0zMi1ieXRlcyE=",
  "kgen_user_jwt_key": "a2dlbi11c2VyLWp3dC1rZXktb2YtdGhlLXRlc3RzISE=",
  "store_key": "c3RvcmUta2V5LW9mLXRoZS10ZXN0cy0zMi1ieXRlcyE=",
  "webhook_secret": "d2ViaG9vay1zZWNyZXQtb2YtdGhlLXRlc3RzLTMyYiE="
}"#;

/// The webhook secret of [`KEYS`], raw.
pub const WEBHOOK_SECRET: &[u8] = b"webhook-secret-of-the-tests-32b!";

/// The KGen user-token key, raw.
pub const KGEN_KEY: &[u8] = b"kgen-user-jwt-key-of-the-tests!!";

/// Kii apps of the tests.
pub const KII_APPS: &str = r#"{ "apps": [
  { "app_id": "s6BhdRkqt3", "app_key": "7Fjfp0ZBr1KtDRbnfVdmIw", "users": [
    { "user_id": "alice", "phone_number": "+447401101801", "login_name": "alice",
      "access_tokens": ["alice-token"] },
    { "user_id": "bob", "phone_number": "+447401101802", "phone_verified": true },
    { "user_id": "carol", "phone_number": "+447401101803", "disabled": true },
    { "user_id": "dave", "phone_number": "+447401101802" },
    { "user_id": "erin", "phone_number": "+447401101804", "access_tokens": ["erin-token"] },
    { "user_id": "frank", "phone_number": "+447401101804" }
  ] },
  { "app_id": "otherApp01", "app_key": "other-key", "users": [
    { "user_id": "alice2", "phone_number": "+447401101801" }
  ] }
] }"#;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A running service.
pub struct Server {
    child: Child,
    dir: PathBuf,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// A keep-alive client.
    pub client: Client,
}

impl Server {
    /// Starts a service with the test keys, apps and an outbox.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts one with extra arguments.
    pub fn start_with(extra: &[&str]) -> Self {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir =
            std::env::temp_dir().join(format!("otpflow-server-test-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        std::fs::write(dir.join("keys.json"), KEYS).expect("keys written");
        std::fs::write(dir.join("kii.json"), KII_APPS).expect("apps written");
        let mut child = Command::new(env!("CARGO_BIN_EXE_otpflow-server"))
            .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
            .arg("--keys")
            .arg(dir.join("keys.json"))
            .arg("--kii-apps")
            .arg(dir.join("kii.json"))
            .arg("--outbox")
            .arg(dir.join("outbox.jsonl"))
            .args(extra)
            .env("OTPFLOW_ADMIN_TOKEN", ADMIN)
            .env_remove("OTPFLOW_KEYS")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the server binary starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if !sent
                    && let Ok(v) = serde_json::from_str::<Value>(&line)
                    && v["fields"]["message"] == "listening"
                {
                    let addr = v["fields"]["addr"].as_str().unwrap_or("").to_owned();
                    let _ = tx.send(addr);
                    sent = true;
                }
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the server did not log its address within 30 s");
            }
        };
        Self {
            child,
            dir,
            base: format!("http://{addr}"),
            client: Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("a client"),
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the process to exit (after a signal), up to `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// A request to `path`.
    pub fn post(&self, path: &str) -> RequestBuilder {
        self.client.post(format!("{}{path}", self.base))
    }

    /// A PUT to `path`.
    pub fn put(&self, path: &str) -> RequestBuilder {
        self.client.put(format!("{}{path}", self.base))
    }

    /// A GET of `path`.
    pub fn get(&self, path: &str) -> RequestBuilder {
        self.client.get(format!("{}{path}", self.base))
    }

    /// The outbox's messages, oldest first.
    pub fn outbox(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.join("outbox.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("each outbox line is JSON"))
            .collect()
    }

    /// The last code sent to `to` (E.164) under `purpose`.
    pub fn code(&self, to: &str, purpose: &str) -> String {
        self.outbox()
            .iter()
            .rev()
            .find(|m| m["to"] == to && m["purpose"] == purpose)
            .and_then(|m| m["code"].as_str().map(str::to_owned))
            .unwrap_or_else(|| panic!("no message to {to} for {purpose}"))
    }

    /// Moves the service clock forward.
    pub fn advance(&self, secs: i64) {
        let r = self
            .post("/_test/clock")
            .header("x-admin-token", ADMIN)
            .json(&serde_json::json!({ "advance_secs": secs }))
            .send()
            .expect("clock route answers");
        assert_eq!(r.status(), 200);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Stops the process this test started, by its own handle (its pid).
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The status and the body's exact text.
pub fn text(r: Response) -> (u16, String) {
    let status = r.status().as_u16();
    (status, r.text().expect("a body"))
}

/// The status and the body as JSON.
pub fn json(r: Response) -> (u16, Value) {
    let (status, body) = text(r);
    let value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("JSON body: {body:?}"));
    (status, value)
}

/// A code other than `code` of the same length.
pub fn wrong(code: &str) -> String {
    if code == "000000" {
        "111111".into()
    } else {
        "000000".into()
    }
}
