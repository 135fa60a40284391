//! The service itself: health, OpenAPI, shutdown, test hooks, tenants.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::harness::{Server, json, text};

#[test]
fn healthz() {
    let s = Server::start();
    assert_eq!(
        text(s.get("/healthz").send().expect("answer")),
        (200, r#"{"status":"ok"}"#.into())
    );
}

#[test]
fn openapi_documents_every_route() {
    let s = Server::start();
    let (status, doc) = json(s.get("/openapi.json").send().expect("answer"));
    assert_eq!(status, 200);
    let paths: BTreeSet<&str> = doc["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .map(String::as_str)
        .collect();
    let expected: BTreeSet<&str> = [
        "/healthz",
        "/openapi.json",
        "/otp",
        "/auth/token",
        "/v2/projects/phone-login",
        "/v2/projects/phone-login/confirm",
        "/v2/app-registrations",
        "/v2/phone-validations",
        "/api/apps/{app_id}/users/{user}/phone-number/verify",
        "/api/apps/{app_id}/users/{user}/phone-number/resend-verification-code",
        "/fe/users/auth/otp/register",
        "/fe/users/auth/otp/resend",
        "/fe/users/auth/otp/verify",
    ]
    .into_iter()
    .collect();
    assert_eq!(paths, expected);
}

#[test]
fn sigterm_stops_the_service_gracefully() {
    let mut s = Server::start();
    let status = Command::new("kill")
        .args(["-TERM", &s.pid().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let exit = s
        .wait_exit(Duration::from_secs(15))
        .expect("the service exits");
    assert!(exit.success(), "{exit:?}");
}

#[test]
fn test_hooks_need_the_admin_token() {
    let s = Server::start();
    let r = s
        .post("/_test/clock")
        .json(&json!({ "advance_secs": 600 }))
        .send()
        .expect("answer");
    assert_eq!(r.status(), 404);
    let r = s
        .post("/_test/clock")
        .header("x-admin-token", "guess")
        .json(&json!({ "advance_secs": 600 }))
        .send()
        .expect("answer");
    assert_eq!(r.status(), 404);
}

#[test]
fn seeds_do_not_share_codes_for_one_number() {
    let s = Server::start();
    let r = s
        .post("/otp")
        .json(&json!({ "phone": "447401101801", "channel": "sms" }))
        .send()
        .expect("answer");
    assert_eq!(r.status(), 200);
    let r = s
        .post("/v2/projects/phone-login")
        .json(&json!({ "countryCode": "+44", "phone": "7401101801", "type": "login" }))
        .send()
        .expect("answer");
    assert_eq!(r.status(), 200);
    let kavoon = s.code("+447401101801", "kavoon");
    let verifik = s.code("+447401101801", "verifik-login");
    if kavoon != verifik {
        let r = s
            .post("/v2/projects/phone-login/confirm")
            .json(&json!({ "countryCode": "+44", "phone": "7401101801", "otp": kavoon }))
            .send()
            .expect("answer");
        assert_eq!(r.status(), 403);
    }
    // Each seed's own code still works: the other's attempt spent one check only.
    let r = s
        .post("/auth/token")
        .json(
            &json!({ "grant_type": "password", "username": "447401101801",
                       "password": kavoon, "channel": "sms" }),
        )
        .send()
        .expect("answer");
    assert_eq!(r.status(), 200);
}

#[test]
fn a_bad_keys_file_stops_the_start_without_printing_keys() {
    let dir = std::env::temp_dir().join(format!("otpflow-server-badkeys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("keys.json");
    std::fs::write(
        &path,
        r#"{"otp_keys":[{"id":1,"secret":"c2hvcnQ="}],"token_key":"c2VjcmV0LXZhbHVlLXRoYXQtbXVzdC1ub3QtbGVhaw==","kgen_user_jwt_key":"x"}"#,
    )
    .expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_otpflow-server"))
        .args(["--listen", "127.0.0.1:0", "--keys"])
        .arg(&path)
        .output()
        .expect("runs");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!out.status.success());
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(all.contains("otp key must be 32 to 64 bytes"), "{all}");
    assert!(
        !all.contains("c2hvcnQ") && !all.contains("secret-value"),
        "{all}"
    );
}

/// The service's `host:port`.
fn address(s: &Server) -> String {
    s.base.trim_start_matches("http://").to_owned()
}

/// Whether the service closed `stream` (a read returns end of file or an
/// error) within `limit`.
fn closed_within(stream: &mut std::net::TcpStream, limit: Duration) -> bool {
    use std::io::Read;
    stream
        .set_read_timeout(Some(limit))
        .expect("a read timeout");
    let mut buf = [0u8; 256];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) => {
                return !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                );
            }
        }
    }
}

#[test]
fn a_client_that_trickles_its_headers_is_cut_off() {
    use std::io::Write;
    let s = Server::start_with(&["--header-read-timeout-secs", "1"]);
    let mut slow = std::net::TcpStream::connect(address(&s)).expect("connects");
    slow.write_all(b"POST /otp HTTP/1.1\r\nHost: x\r\n")
        .expect("half a head");
    let started = std::time::Instant::now();
    assert!(
        closed_within(&mut slow, Duration::from_secs(10)),
        "a head never finished is cut off"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // Other clients are served meanwhile and after.
    assert_eq!(s.get("/healthz").send().expect("answer").status(), 200);
}

#[test]
fn connections_past_the_cap_wait_for_a_free_one() {
    use std::io::{Read, Write};
    let s = Server::start_with(&["--max-connections", "1", "--header-read-timeout-secs", "30"]);
    // The one slot, held by an idle connection.
    let holder = std::net::TcpStream::connect(address(&s)).expect("connects");
    std::thread::sleep(Duration::from_millis(200));
    let mut waiting = std::net::TcpStream::connect(address(&s)).expect("queued by the kernel");
    waiting
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("a request");
    waiting
        .set_read_timeout(Some(Duration::from_millis(700)))
        .expect("a read timeout");
    let mut buf = [0u8; 64];
    assert!(
        waiting.read(&mut buf).is_err(),
        "not served while the cap is reached"
    );
    drop(holder);
    waiting
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("a read timeout");
    let mut answer = String::new();
    waiting
        .read_to_string(&mut answer)
        .expect("served once a slot is free");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}
