//! Budget keys against SMS pumping, as the service applies them
//! (`--budget-address`, `--budget-range`): off unless set; once set, a
//! client or a number range past its budget is refused with the seed's own
//! "too many requests" answer, while other clients and ranges go on.

use serde_json::json;

use crate::harness::{Server, text};

const TOO_MANY: &str = r#"{"errCode":"TOO_MANY_REQUESTS","errText":"too many requests"}"#;

fn request(s: &Server, phone: &str) -> reqwest::blocking::Response {
    s.post("/otp")
        .json(&json!({ "phone": phone, "channel": "sms" }))
        .send()
        .expect("answer")
}

#[test]
fn without_budget_flags_many_numbers_from_one_client_are_all_sent() {
    let s = Server::start();
    for n in 0..25 {
        let phone = format!("4474011018{n:02}");
        assert_eq!(text(request(&s, &phone)), (200, "{}".into()), "{phone}");
    }
    assert_eq!(s.outbox().len(), 25);
}

#[test]
fn one_client_past_its_address_budget_is_refused() {
    let s = Server::start_with(&["--budget-address", "3/3600"]);
    // Three numbers in three ranges: the address budget is the only one.
    // (Records hold whole seconds: a burst's last place opens at the
    // second after its first send.)
    for phone in ["447401101801", "447911123456"] {
        assert_eq!(text(request(&s, phone)), (200, "{}".into()), "{phone}");
    }
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(text(request(&s, "447700123456")), (200, "{}".into()));
    let refused = request(&s, "447400123456");
    let retry = refused
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    assert_eq!(text(refused), (429, TOO_MANY.into()));
    // One more place comes back within the hour's step (rounded to minutes).
    assert!(retry.is_some_and(|r| r > 0 && r <= 3600), "{retry:?}");
    // Nothing went out for the refused send.
    assert_eq!(s.outbox().len(), 3);
}

#[test]
fn a_range_past_its_budget_is_refused_while_other_ranges_go_on() {
    let s = Server::start_with(&["--budget-range", "2/3600"]);
    // +44 7401 10xxxx: one range (the first 8 digits of the E.164 form).
    assert_eq!(text(request(&s, "447401101801")), (200, "{}".into()));
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(text(request(&s, "447401101802")), (200, "{}".into()));
    assert_eq!(text(request(&s, "447401101803")), (429, TOO_MANY.into()));
    // Another range, from the same client.
    assert_eq!(text(request(&s, "447911123456")), (200, "{}".into()));
    assert_eq!(s.outbox().len(), 3);
}

#[test]
fn a_malformed_budget_flag_stops_the_start() {
    let mut s = std::process::Command::new(env!("CARGO_BIN_EXE_otpflow-server"))
        .args(["--listen", "127.0.0.1:0", "--budget-range", "twenty"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let out = s.wait_with_output_timeout();
    assert!(!out.0.success());
    assert!(out.1.contains("BURST/SECONDS"), "{}", out.1);
}

/// `wait_with_output` bounded in time: the process is killed after 20 s.
trait WaitBounded {
    fn wait_with_output_timeout(&mut self) -> (std::process::ExitStatus, String);
}

impl WaitBounded for std::process::Child {
    fn wait_with_output_timeout(&mut self) -> (std::process::ExitStatus, String) {
        use std::io::Read;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            if let Some(status) = self.try_wait().expect("wait") {
                let mut err = String::new();
                if let Some(mut e) = self.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                return (status, err);
            }
            if std::time::Instant::now() > deadline {
                let _ = self.kill();
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}
