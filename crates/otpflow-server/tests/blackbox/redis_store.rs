//! `--store redis://…`: the real binary on a real `redis-server`; the
//! validation's state outlives the service process.

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::harness::{KEYS, Server, text, wrong};
use crate::stores::{RedisServer, free_port};

const BAD_OTP: &str = r#"{"errCode":"BAD_REQUEST","errText":"Check OTP exception"}"#;

pub fn request(s: &Server, phone: &str) -> u16 {
    s.post("/otp")
        .json(&json!({ "phone": phone, "channel": "sms" }))
        .send()
        .expect("answer")
        .status()
        .as_u16()
}

pub fn token(s: &Server, phone: &str, code: &str) -> (u16, String) {
    text(
        s.post("/auth/token")
            .json(&json!({
                "grant_type": "password",
                "username": phone,
                "password": code,
                "channel": "sms",
            }))
            .send()
            .expect("answer"),
    )
}

fn new_client(body: &str) -> bool {
    let v: serde_json::Value = serde_json::from_str(body).expect("a JSON body");
    v["new_client"].as_bool().expect("new_client is a boolean")
}

/// Kavoon on a shared store (`--store URL`) across a restart of the
/// service: a spent code stays spent, a code sent before the restart
/// validates after it once, and `new_client` (a fact kept in the store)
/// is true only the first time a number validates, whichever process asks.
pub fn kavoon_survives_a_restart(url: &str) {
    let store = ["--store", url];

    let s = Server::start_with(&store);
    // Happy path, with a wrong code first.
    assert_eq!(request(&s, "447401101801"), 200);
    let spent = s.code("+447401101801", "kavoon");
    assert_eq!(
        token(&s, "447401101801", &wrong(&spent)),
        (400, BAD_OTP.into())
    );
    let (status, body) = token(&s, "447401101801", &spent);
    assert_eq!(status, 200, "{body}");
    assert!(new_client(&body), "the first validation of the number");
    // The code is spent: a second use is refused.
    assert_eq!(token(&s, "447401101801", &spent), (400, BAD_OTP.into()));
    // Another number gets a code that this process never checks.
    assert_eq!(request(&s, "447401101802"), 200);
    let pending = s.code("+447401101802", "kavoon");
    drop(s); // stopped by its own pid

    // A new process on the same store, with the same keys.
    let s = Server::start_with(&store);
    // The code spent before the restart stays spent.
    assert_eq!(token(&s, "447401101801", &spent), (400, BAD_OTP.into()));
    // The code sent before the restart validates after it, once: the
    // record lived in the store, not in the process that was stopped.
    let (status, body) = token(&s, "447401101802", &pending);
    assert_eq!(status, 200, "{body}");
    assert!(new_client(&body));
    assert_eq!(token(&s, "447401101802", &pending), (400, BAD_OTP.into()));
    // The first number is no new client for the new process either.
    assert_eq!(request(&s, "447401101801"), 200);
    let code = s.code("+447401101801", "kavoon");
    let (status, body) = token(&s, "447401101801", &code);
    assert_eq!(status, 200, "{body}");
    assert!(!new_client(&body), "new_client is true only the first time");
}

#[test]
fn kavoon_on_redis_survives_a_restart_of_the_service() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    kavoon_survives_a_restart(&redis.url());
}

/// Runs the binary with `args` and `OTPFLOW_KEYS` = `keys`, expecting it to
/// exit by itself; returns (success, everything it printed).
pub fn run_to_exit(args: &[&str], keys: &str) -> (bool, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_otpflow-server"))
        .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
        .args(args)
        .env("OTPFLOW_KEYS", keys)
        .env_remove("OTPFLOW_KEYS_FILE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the server binary starts");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        if child.try_wait().ok().flatten().is_some() {
            let out = child.wait_with_output().expect("its output");
            let mut all = String::from_utf8_lossy(&out.stdout).into_owned();
            all.push_str(&String::from_utf8_lossy(&out.stderr));
            return (out.status.success(), all);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the service did not exit within 30 s");
}

#[test]
fn an_unreachable_redis_is_a_clear_startup_error() {
    // Nothing listens there (a free port a moment ago); the URL carries a
    // password that must not be printed.
    let url = format!("redis://:hunter2secret@127.0.0.1:{}/", free_port());
    let (ok, out) = run_to_exit(&["--store", &url], KEYS);
    assert!(!ok, "{out}");
    assert!(out.contains("cannot reach redis"), "{out}");
    assert!(!out.contains("hunter2secret"), "{out}");
    assert!(!out.contains("panicked"), "{out}");
}

#[test]
fn a_shared_store_without_a_store_key_does_not_start() {
    let mut keys: serde_json::Value = serde_json::from_str(KEYS).expect("JSON");
    keys.as_object_mut().expect("object").remove("store_key");
    let (ok, out) = run_to_exit(&["--store", "redis://127.0.0.1:1/"], &keys.to_string());
    assert!(!ok, "{out}");
    assert!(out.contains("store_key"), "{out}");
    assert!(!out.contains("panicked"), "{out}");
}
