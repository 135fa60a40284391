//! `otpflow-server`: the seed phone-verification APIs on otpflow.

use clap::Parser as _;
use otpflow_server::config::{Config, LogFormat};
use tracing_subscriber::EnvFilter;

/// mimalloc: a verify answer allocates a few dozen small blocks (tokens,
/// ids, the answer, hyper's buffers); glibc's malloc and free were ~10 % of
/// the verify route's profile.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let config = Config::parse();
    let filter = EnvFilter::try_from_env("OTPFLOW_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match config.log_format {
        LogFormat::Json => builder.json().with_current_span(false).init(),
        LogFormat::Text => builder.init(),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the runtime");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(otpflow_server::server::run(config)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "otpflow-server stopped");
            std::process::ExitCode::FAILURE
        }
    }
}
