//! Building the service from its [`Config`] and running it until a signal.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use otpflow::{AsyncVerifier, MemoryStore, Policy, Verifier};
use otpflow_redis::{RedisOptions, RedisStore};
use tokio::net::TcpListener;

use crate::app::{AppState, Shared};
use crate::backend::{Backend, Otp};
use crate::clock::ServiceClock;
use crate::config::Config;
use crate::keys::{KeysError, ServiceKeys};
use crate::kii::{KiiDirectory, KiiError};
use crate::sender::{FileOutbox, LogSender, Sender};
use crate::tokens::Tokens;

/// Why the service did not start (or stopped with an error).
#[derive(Debug)]
#[non_exhaustive]
pub enum StartError {
    /// The keys could not be loaded.
    Keys(KeysError),
    /// The Kii apps file could not be loaded.
    Kii(KiiError),
    /// `--store` names a store this build does not have, or keys are
    /// missing for a shared store.
    Store(String),
    /// The outbox could not be opened.
    Outbox(std::io::Error),
    /// Binding or serving failed.
    Io(std::io::Error),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Keys(e) => write!(f, "keys: {e}"),
            Self::Kii(e) => write!(f, "kii apps: {e}"),
            Self::Store(s) => write!(f, "store: {s}"),
            Self::Outbox(e) => write!(f, "outbox: {e}"),
            Self::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for StartError {}

fn load_keys() -> Result<Option<ServiceKeys>, StartError> {
    if let Ok(text) = std::env::var("OTPFLOW_KEYS") {
        return ServiceKeys::from_json(&text)
            .map(Some)
            .map_err(StartError::Keys);
    }
    Ok(None)
}

/// The service's state as `config` describes it.
///
/// # Errors
/// [`StartError`] for keys, apps, store or outbox problems.
pub async fn build_state(config: &Config) -> Result<Shared, StartError> {
    let keys = match &config.keys_file {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|e| StartError::Keys(KeysError::Read(e)))?;
            Some(ServiceKeys::from_json(&text).map_err(StartError::Keys)?)
        }
        None => load_keys()?,
    };
    let keys = match keys {
        Some(k) => k,
        None if config.store == "memory" => {
            tracing::warn!(
                "no keys configured (--keys or OTPFLOW_KEYS): using random keys; codes and tokens die with this process"
            );
            ServiceKeys::ephemeral()
        }
        None => {
            return Err(StartError::Store(
                "a shared store needs configured keys (--keys or OTPFLOW_KEYS)".into(),
            ));
        }
    };
    let kii = match &config.kii_apps {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|e| StartError::Kii(KiiError::Read(e)))?;
            KiiDirectory::from_json(&text).map_err(StartError::Kii)?
        }
        None => KiiDirectory::empty(),
    };
    let sender: Box<dyn Sender> = match &config.outbox {
        Some(path) => Box::new(FileOutbox::open(path).map_err(StartError::Outbox)?),
        None => Box::new(LogSender),
    };
    let clock = ServiceClock::new();
    #[cfg(feature = "test-hooks")]
    clock.advance(config.clock_offset);
    let policy = Policy::default();
    let backend = match config.store.as_str() {
        "memory" => Backend::Memory(Verifier::new(
            policy.clone(),
            keys.otp.clone(),
            MemoryStore::new(),
            clock.clone(),
        )),
        url if url.starts_with("redis://") => {
            let store_key = keys.store_key.as_ref().ok_or_else(|| {
                StartError::Store("a shared store needs `store_key` in the keys".into())
            })?;
            let options = RedisOptions::new(store_key, policy.clone())
                .map_err(|e| StartError::Store(format!("redis: {e}")))?;
            // The URL may carry a password: the error names the store
            // kind and the cause, never the URL.
            let store = RedisStore::connect(url, options)
                .await
                .map_err(|e| StartError::Store(format!("cannot reach redis: {e}")))?;
            Backend::Redis(AsyncVerifier::new(
                policy.clone(),
                keys.otp.clone(),
                store,
                clock.clone(),
            ))
        }
        other => {
            let scheme = other.split("://").next().unwrap_or(other);
            return Err(StartError::Store(format!(
                "unsupported store {scheme:?}: this build has `memory` and `redis://`"
            )));
        }
    };
    Ok(Arc::new(AppState {
        otp: Otp::new(backend, clock, policy),
        sender,
        tokens: Tokens::new(&keys.token_key, &keys.kgen_user_jwt_key),
        kii,
        kavoon_clients: Mutex::new(HashSet::new()),
        kgen_links: Mutex::new(HashMap::new()),
        #[cfg(feature = "test-hooks")]
        admin_token: std::env::var("OTPFLOW_ADMIN_TOKEN")
            .ok()
            .filter(|t| !t.is_empty()),
    }))
}

/// SIGTERM and Ctrl-C, listened for from before the service binds, so a
/// signal that comes right after the `listening` line is not lost.
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Self, StartError> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                term: signal(SignalKind::terminate()).map_err(StartError::Io)?,
                int: signal(SignalKind::interrupt()).map_err(StartError::Io)?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// Resolves on the first of them.
    async fn recv(mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {},
            _ = self.int.recv() => {},
        }
        #[cfg(not(unix))]
        {
            let _ = &mut self;
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Binds, logs the bound address (`listening`, field `addr`), and serves
/// until SIGTERM or Ctrl-C; then stops accepting and waits up to the grace
/// period for requests in flight.
///
/// # Errors
/// [`StartError`] when the state cannot be built or the address bound.
pub async fn run(config: Config) -> Result<(), StartError> {
    let state = build_state(&config).await?;
    let signals = Signals::install()?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(StartError::Io)?;
    let addr = listener.local_addr().map_err(StartError::Io)?;
    tracing::info!(addr = %addr, store = %config.store, "listening");
    let router = crate::app::router(state);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = stop_rx.await;
            })
            .await
    });
    signals.recv().await;
    tracing::info!("shutting down");
    let _ = stop_tx.send(());
    let grace = Duration::from_secs(config.shutdown_grace_secs);
    match tokio::time::timeout(grace, server).await {
        Ok(Ok(Ok(()))) => {
            tracing::info!("stopped");
            Ok(())
        }
        Ok(Ok(Err(e))) => Err(StartError::Io(e)),
        Ok(Err(_)) => Err(StartError::Io(std::io::Error::other("server task failed"))),
        Err(_) => {
            tracing::warn!("grace period over; dropping requests in flight");
            Ok(())
        }
    }
}
