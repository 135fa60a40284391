//! Verifik webhooks: a real HTTP receiver on a loopback port, the real
//! binary posting otpflow's events to it, signed.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use crate::harness::{KEYS, Server, WEBHOOK_SECRET, json, wrong};
use crate::redis_store::run_to_exit;

/// What the receiver got: (signature header, event id header, body).
type Received = Arc<Mutex<Vec<(String, String, Vec<u8>)>>>;

/// A receiver on 127.0.0.1 that answers 503 to its first request and 200
/// to the others; runs on its own runtime until dropped.
struct Receiver {
    url: String,
    got: Received,
    _runtime: tokio::runtime::Runtime,
}

async fn receive(State(got): State<Received>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let mut got = got.lock().expect("the list");
    got.push((
        header("x-otpflow-signature"),
        header("x-otpflow-event-id"),
        body.to_vec(),
    ));
    if got.len() == 1 {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    }
}

/// Posts a Verifik login request (`POST /v2/projects/phone-login`) and
/// reads its JSON answer.
fn login(s: &Server, body: &Value) -> (u16, Value) {
    json(
        s.post("/v2/projects/phone-login")
            .json(body)
            .send()
            .expect("answer"),
    )
}

impl Receiver {
    fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime");
        let got: Received = Arc::default();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("a loopback port");
        let addr = listener.local_addr().expect("its address");
        let app = axum::Router::new()
            .route("/hooks", axum::routing::post(receive))
            .with_state(got.clone());
        runtime.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            url: format!("http://{addr}/hooks"),
            got,
            _runtime: runtime,
        }
    }

    /// Waits until `done` holds for the deliveries so far (10 s at most).
    fn wait(
        &self,
        done: impl Fn(&[(String, String, Vec<u8>)]) -> bool,
    ) -> Vec<(String, String, Vec<u8>)> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = self.got.lock().expect("the list").clone();
            if done(&got) || Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn event(body: &[u8]) -> Value {
    serde_json::from_slice(body).expect("a JSON body")
}

#[test]
fn a_verifik_validation_is_posted_signed_and_without_its_code() {
    let receiver = Receiver::start();
    let s = Server::start_with(&["--webhook-url", receiver.url.as_str()]);
    // Another seed's validation: no webhook.
    let r = s
        .post("/otp")
        .json(&json!({ "phone": "447401101801", "channel": "sms" }))
        .send()
        .expect("answer");
    assert_eq!(r.status(), 200);

    let number = json!({ "countryCode": "+44", "phone": 7_401_101_801u64 });
    let mut request = number.clone();
    request["type"] = json!("login");
    let (status, sent) = login(&s, &request);
    assert_eq!(status, 200, "{sent}");
    let id = sent["data"]["_id"].clone();
    let code = s.code("+447401101801", "verifik-login");
    let mut confirm = number.clone();
    confirm["otp"] = json!(wrong(&code));
    let (status, _) = json(
        s.post("/v2/projects/phone-login/confirm")
            .json(&confirm)
            .send()
            .expect("answer"),
    );
    assert_eq!(status, 403);
    confirm["otp"] = json!(code);
    let (status, body) = json(
        s.post("/v2/projects/phone-login/confirm")
            .json(&confirm)
            .send()
            .expect("answer"),
    );
    assert_eq!(status, 200, "{body}");

    let names = |got: &[(String, String, Vec<u8>)]| -> Vec<String> {
        let mut n: Vec<String> = got
            .iter()
            .map(|(_, _, b)| event(b)["event"].as_str().unwrap_or("").to_owned())
            .collect();
        n.sort();
        n.dedup();
        n
    };
    let want = [
        "phone_validation.otp_does_not_match",
        "phone_validation.sent",
        "phone_validation.validated",
    ];
    let got = receiver.wait(|g| names(g) == want && g.len() >= 4);
    assert_eq!(names(&got), want, "{} deliveries", got.len());
    // The first delivery was refused (503) and tried again: one id twice.
    let mut ids: Vec<&str> = got.iter().map(|(_, id, _)| id.as_str()).collect();
    ids.sort_unstable();
    let before = ids.len();
    ids.dedup();
    assert_eq!(before, ids.len() + 1, "exactly one retried delivery");
    for (signature, event_id, body) in &got {
        assert!(
            otpflow_server::webhooks::verify(WEBHOOK_SECRET, signature, body),
            "the signature verifies"
        );
        assert!(!otpflow_server::webhooks::verify(
            b"another secret",
            signature,
            body
        ));
        let e = event(body);
        assert_eq!(e["id"].as_str(), Some(event_id.as_str()));
        // Every event names the validation as the API's answer did.
        assert_eq!(e["data"]["_id"], id);
        assert_eq!(e["data"]["type"], "login");
        assert_eq!(e["data"]["countryCode"], "+44");
        assert_eq!(e["data"]["phone"], "7401101801");
        // Never the code, under any name.
        let text = String::from_utf8_lossy(body);
        assert!(!text.contains(&code), "{text}");
        assert!(e["data"].get("otp").is_none() && e["data"].get("code").is_none());
    }
    let validated = got
        .iter()
        .map(|(_, _, b)| event(b))
        .find(|e| e["event"] == "phone_validation.validated")
        .expect("the validated event");
    assert_eq!(validated["data"]["status"], "validated");
    assert_eq!(validated["data"]["_id"], id);
}

#[test]
fn a_webhook_url_without_a_secret_does_not_start() {
    let mut keys: Value = serde_json::from_str(KEYS).expect("JSON");
    keys.as_object_mut()
        .expect("object")
        .remove("webhook_secret");
    let (ok, out) = run_to_exit(
        &["--webhook-url", "http://127.0.0.1:9/hooks"],
        &keys.to_string(),
    );
    assert!(!ok, "{out}");
    assert!(out.contains("webhook_secret"), "{out}");
    assert!(!out.contains("panicked"), "{out}");
}

#[test]
fn a_webhook_pending_at_a_crash_is_delivered_after_the_restart() {
    let dir = std::env::temp_dir().join(format!("otpflow-webhook-journal-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temp dir");
    let journal = dir.join("webhooks.jsonl");
    let journal_arg = journal.to_str().expect("a UTF-8 path");
    // Nothing listens there: the event stays pending, retried for minutes.
    let nowhere = format!("http://127.0.0.1:{}/hooks", crate::stores::free_port());
    let s = Server::start_with(&[
        "--webhook-url",
        &nowhere,
        "--webhook-attempts",
        "10",
        "--webhook-journal",
        journal_arg,
    ]);
    let request = json!({ "countryCode": "+44", "phone": "7401101805", "type": "login" });
    let (status, sent) = login(&s, &request);
    assert_eq!(status, 200, "{sent}");
    let validation = sent["data"]["_id"].clone();
    // The event is in the journal before the answer.
    let text = std::fs::read_to_string(&journal).expect("the journal");
    let line: Value = serde_json::from_str(text.lines().next().expect("one line")).expect("JSON");
    let event_id = line["queued"].as_str().expect("an id").to_owned();
    assert!(event_id.starts_with("evt_"), "{line}");
    drop(s); // SIGKILL, by its own pid: no graceful drain

    // A new process on the same journal, now with a receiver.
    let receiver = Receiver::start();
    let s = Server::start_with(&[
        "--webhook-url",
        receiver.url.as_str(),
        "--webhook-journal",
        journal_arg,
    ]);
    // The receiver refuses the first attempt (503); the retry lands.
    let got = receiver.wait(|g| g.len() >= 2);
    assert!(got.len() >= 2, "{} deliveries", got.len());
    for (signature, id, body) in &got {
        assert_eq!(id, &event_id, "the same id as before the crash");
        assert!(otpflow_server::webhooks::verify(
            WEBHOOK_SECRET,
            signature,
            body
        ));
        let e = event(body);
        assert_eq!(e["id"].as_str(), Some(event_id.as_str()));
        assert_eq!(e["event"], "phone_validation.sent");
        assert_eq!(e["data"]["_id"], validation);
    }
    // Delivered: marked done, so a third start has nothing to send.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&journal)
        .unwrap_or_default()
        .contains(r#"{"done":"#)
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(s);
    let before = receiver.got.lock().expect("the list").len();
    let s = Server::start_with(&[
        "--webhook-url",
        receiver.url.as_str(),
        "--webhook-journal",
        journal_arg,
    ]);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(receiver.got.lock().expect("the list").len(), before);
    assert_eq!(std::fs::read_to_string(&journal).expect("the journal"), "");
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}
