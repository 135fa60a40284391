//! Command-line and environment configuration (clap).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use otpflow::budget::Rate;

/// The reference service serving the seed phone-verification APIs on otpflow.
///
/// Secrets never come from the command line: keys are read from the file
/// named by `--keys` (or `OTPFLOW_KEYS_FILE`), or from `OTPFLOW_KEYS` (the
/// same JSON text). Without either, an in-memory store runs on random keys
/// generated at start (codes and tokens die with the process).
#[derive(Clone, Debug, Parser)]
#[command(name = "otpflow-server", version, about)]
pub struct Config {
    /// Address to listen on; port 0 picks a free port (the bound address is
    /// logged as `listening`).
    #[arg(long, env = "OTPFLOW_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Where validation records live: `memory` (this process only),
    /// `redis://host:port/` or `postgres://user@host:port/db` (shared; need
    /// `store_key` in the keys).
    #[arg(long, env = "OTPFLOW_STORE", default_value = "memory")]
    pub store: String,

    /// JSON file holding the keys (see the crate README for its shape).
    #[arg(long = "keys", env = "OTPFLOW_KEYS_FILE")]
    pub keys_file: Option<PathBuf>,

    /// JSON file of Kii apps, app keys and users (see the crate README).
    #[arg(long, env = "OTPFLOW_KII_APPS")]
    pub kii_apps: Option<PathBuf>,

    /// Append every message to this file, one JSON line each
    /// (`{"to","channel","purpose","code","text"}`), instead of logging it.
    #[arg(long, env = "OTPFLOW_OUTBOX")]
    pub outbox: Option<PathBuf>,

    /// Verifik webhooks: `POST` each Verifik validation event, signed with
    /// `webhook_secret` from the keys, to this `http://` or `https://` URL.
    #[arg(long, env = "OTPFLOW_WEBHOOK_URL")]
    pub webhook_url: Option<String>,

    /// Webhooks survive a crash: each body is appended to this file before
    /// it is queued and marked done once delivered or given up; a restart
    /// delivers what is left (one file per process).
    #[arg(long, env = "OTPFLOW_WEBHOOK_JOURNAL")]
    pub webhook_journal: Option<PathBuf>,

    /// Seconds one webhook attempt may take.
    #[arg(long, env = "OTPFLOW_WEBHOOK_TIMEOUT", default_value_t = 5)]
    pub webhook_timeout_secs: u64,

    /// Attempts per webhook event (a network error, a timeout, a 429 or a
    /// 5xx is tried again after 0.5 s, 1 s, 2 s, …).
    #[arg(long, env = "OTPFLOW_WEBHOOK_ATTEMPTS", default_value_t = 4,
          value_parser = clap::value_parser!(u32).range(1..=10))]
    pub webhook_attempts: u32,

    /// Budgets beyond one subject, against SMS pumping (otpflow's budget
    /// keys; each off unless set). Sends per client address (its IPv4
    /// address or IPv6 /64, as the connection shows it: behind a proxy every
    /// client shares the proxy's), as `BURST/SECONDS`: a burst, then one
    /// send every SECONDS. E.g. `10/360`.
    #[arg(long, env = "OTPFLOW_BUDGET_ADDRESS", value_parser = parse_rate)]
    pub budget_address: Option<Rate>,

    /// Sends per number range (the number's first digits, otpflow's
    /// `range_prefix`), as `BURST/SECONDS`. E.g. `20/180`.
    #[arg(long, env = "OTPFLOW_BUDGET_RANGE", value_parser = parse_rate)]
    pub budget_range: Option<Rate>,

    /// Sends per destination country, as `BURST/SECONDS`.
    #[arg(long, env = "OTPFLOW_BUDGET_COUNTRY", value_parser = parse_rate)]
    pub budget_country: Option<Rate>,

    /// Sends by the whole service, as `BURST/SECONDS`.
    #[arg(long, env = "OTPFLOW_BUDGET_GLOBAL", value_parser = parse_rate)]
    pub budget_global: Option<Rate>,

    /// PostgreSQL store: seconds between purges of expired rows (0: never).
    #[arg(long, env = "OTPFLOW_PURGE_INTERVAL", default_value_t = 300)]
    pub purge_interval_secs: u64,

    /// Log format.
    #[arg(long, env = "OTPFLOW_LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,

    /// Seconds a graceful shutdown waits for requests in flight.
    #[arg(long, env = "OTPFLOW_SHUTDOWN_GRACE", default_value_t = 10)]
    pub shutdown_grace_secs: u64,

    /// Seconds a client has to send a request's head (request line and
    /// headers), counted from the first byte, and that a kept-alive
    /// connection may wait idle for its next request: a client that
    /// trickles its headers (slowloris) is cut off. 1–3600.
    #[arg(long, env = "OTPFLOW_HEADER_READ_TIMEOUT", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub header_read_timeout_secs: u64,

    /// The most connections served at once; past it, new clients wait in
    /// the kernel's accept queue until one closes. 1–1,000,000.
    #[arg(long, env = "OTPFLOW_MAX_CONNECTIONS", default_value_t = 4096,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections: u64,

    /// Test builds only: start the service clock this many seconds ahead
    /// (negative: behind) of the system clock.
    #[cfg(feature = "test-hooks")]
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    pub clock_offset: i64,
}

/// How logs are written to standard output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line (tracing's JSON format).
    Json,
    /// Human-readable lines.
    Text,
}

/// A budget's rate written `BURST/SECONDS` (`10/360`: ten at once, then
/// one every six minutes).
///
/// # Errors
/// A message naming the expected form, or otpflow's range check.
pub fn parse_rate(text: &str) -> Result<Rate, String> {
    let form = || format!("expected BURST/SECONDS (e.g. 10/360), got {text:?}");
    let (burst, secs) = text.split_once('/').ok_or_else(form)?;
    let burst: u32 = burst.trim().parse().map_err(|_| form())?;
    let secs: i64 = secs.trim().parse().map_err(|_| form())?;
    Rate::new(burst, time::Duration::seconds(secs)).map_err(|e| format!("{text:?}: {e}"))
}

#[cfg(test)]
mod rate_tests {
    use super::*;

    #[test]
    fn rates_parse_or_say_why() {
        let r = parse_rate("10/360").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((r.burst(), r.interval()), (10, time::Duration::minutes(6)));
        for bad in [
            "", "10", "10/", "/60", "x/60", "10/x", "-1/60", "0/60", "10/0",
        ] {
            assert!(parse_rate(bad).is_err(), "{bad:?}");
        }
    }
}
