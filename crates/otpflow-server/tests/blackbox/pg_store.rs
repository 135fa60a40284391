//! `--store postgres://…`: the real binary on a real PostgreSQL 15; the
//! validation's state, and the seeds' facts, outlive the service process.

use crate::harness::{KEYS, Server};
use crate::redis_store::{kavoon_survives_a_restart, request, run_to_exit};
use crate::stores::{PgServer, free_port};

#[test]
fn kavoon_on_postgres_survives_a_restart_of_the_service() {
    let Some(pg) = PgServer::start() else {
        return;
    };
    kavoon_survives_a_restart(&pg.url());
}

#[test]
fn an_unreachable_postgres_is_a_clear_startup_error() {
    let url = format!(
        "postgres://otpflow:hunter2secret@127.0.0.1:{}/otp",
        free_port()
    );
    let (ok, out) = run_to_exit(&["--store", &url], KEYS);
    assert!(!ok, "{out}");
    assert!(out.contains("cannot reach postgres"), "{out}");
    assert!(!out.contains("hunter2secret"), "{out}");
    assert!(!out.contains("panicked"), "{out}");
}

/// Rows in the records table, read through `psql` as the server's user.
fn records(pg: &PgServer) -> u64 {
    let bin = std::env::var_os("OTPFLOW_PG_BIN").map_or_else(
        || std::path::PathBuf::from("/usr/lib/postgresql/15/bin"),
        std::path::PathBuf::from,
    );
    let out = std::process::Command::new(bin.join("psql"))
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &pg.port.to_string(),
            "-U",
            "postgres",
        ])
        .args([
            "-d",
            "postgres",
            "-tAc",
            "SELECT count(*) FROM otpflow_records",
        ])
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("a count")
}

#[test]
fn the_service_purges_expired_postgres_rows_on_its_timer() {
    let Some(pg) = PgServer::start() else {
        return;
    };
    let url = pg.url();
    let s = Server::start_with(&["--store", url.as_str(), "--purge-interval-secs", "1"]);
    assert_eq!(request(&s, "447401101806"), 200);
    assert_eq!(records(&pg), 1, "the validation's row");
    // Not expired yet: a purge keeps it.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(records(&pg), 1, "a live row stays");
    // Past every window the record keeps (a day covers the code's 10
    // minutes and the number's one-hour lockout).
    s.advance(2 * 24 * 3600);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while records(&pg) > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(records(&pg), 0, "the expired row is purged");
    // The number starts afresh.
    assert_eq!(request(&s, "447401101806"), 200);
}
