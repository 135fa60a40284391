//! Two service processes on one Redis: the seeds' facts (Kavoon's
//! `new_client`, KGen's links, Kii's verified numbers) are the store's, not
//! a process's.

use serde_json::{Value, json};

use crate::harness::{KGEN_KEY, Server, json, text};
use crate::kgen::user_token;
use crate::kii::{app_auth, kii_code, resend, verify};
use crate::redis_store::{request, token};
use crate::stores::RedisServer;

fn kgen(s: &Server, route: &str, user: &str, body: &Value) -> (u16, Value) {
    json(
        s.post(&format!("/fe/users/auth/otp/{route}"))
            .header("user-jwt-token", user_token(user, 3600, KGEN_KEY))
            .json(body)
            .send()
            .expect("answer"),
    )
}

#[test]
fn two_processes_on_one_redis_share_the_seeds_facts() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let url = redis.url();
    let a = Server::start_with(&["--store", url.as_str()]);
    let b = Server::start_with(&["--store", url.as_str()]);

    // Kavoon: the first validation of a number is on A...
    assert_eq!(request(&a, "447401101801"), 200);
    let (status, body) = token(&a, "447401101801", &a.code("+447401101801", "kavoon"));
    assert_eq!(status, 200, "{body}");
    let first: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(first["new_client"], true);
    // ...so B, validating the same number later, answers false.
    assert_eq!(request(&b, "447401101801"), 200);
    let (status, body) = token(&b, "447401101801", &b.code("+447401101801", "kavoon"));
    assert_eq!(status, 200, "{body}");
    let second: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(second["new_client"], false);

    // KGen: a user linked on A is no new user on B.
    let number = json!({ "phone_number": "9876543219", "countryCode": "+91" });
    let (status, reg) = kgen(&a, "register", "u1", &number);
    assert_eq!((status, &reg["isNewUser"]), (200, &json!(true)));
    let otp: u64 = a.code("+919876543219", "kgen").parse().expect("digits");
    let mut body = number.clone();
    body["authCode"] = reg["authCode"].clone();
    body["otp"] = json!(otp);
    assert_eq!(
        kgen(&a, "verify", "u1", &body),
        (200, json!({ "message": "Users linked successfully" }))
    );
    // B sees the validation A finished (one record in Redis): no live code
    // to resend; a new registration there finds the number linked.
    let (status, again) = kgen(&b, "resend", "u1", &number);
    assert_eq!(status, 400, "the validation A finished has no live code");
    assert_eq!(again, json!({ "message": "NO_ACTIVE_OTP" }));
    let (status, reg) = kgen(&b, "register", "u1", &number);
    assert_eq!(status, 200);
    assert_eq!(reg["isNewUser"], false);

    // Kii: erin verifies her number on A; on B she is already verified and
    // frank, who has the same number, finds it verified by another user.
    let app = "s6BhdRkqt3";
    assert_eq!(resend(&a, app, "erin", &app_auth()).status(), 204);
    let code = kii_code(&a, "+447401101804");
    let (status, _) = text(verify(&a, "erin", &app_auth(), &code));
    assert_eq!(status, 200);
    let (status, body) = json(resend(&b, app, "erin", &app_auth()));
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["errorCode"], "INVALID_ACCOUNT_STATUS");
    let (status, body) = json(resend(&b, app, "frank", &app_auth()));
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["errorCode"], "USER_ALREADY_EXISTS");
}
