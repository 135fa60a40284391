//! Command-line and environment configuration (clap).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};

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

    /// Seconds one webhook attempt may take.
    #[arg(long, env = "OTPFLOW_WEBHOOK_TIMEOUT", default_value_t = 5)]
    pub webhook_timeout_secs: u64,

    /// Attempts per webhook event (a network error, a timeout, a 429 or a
    /// 5xx is tried again after 0.5 s, 1 s, 2 s, …).
    #[arg(long, env = "OTPFLOW_WEBHOOK_ATTEMPTS", default_value_t = 4,
          value_parser = clap::value_parser!(u32).range(1..=10))]
    pub webhook_attempts: u32,

    /// Log format.
    #[arg(long, env = "OTPFLOW_LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,

    /// Seconds a graceful shutdown waits for requests in flight.
    #[arg(long, env = "OTPFLOW_SHUTDOWN_GRACE", default_value_t = 10)]
    pub shutdown_grace_secs: u64,

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
