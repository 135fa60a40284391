//! Building the service from its [`Config`] and running it until a signal.

use std::sync::Arc;
use std::time::Duration;

use otpflow::{AsyncStore, AsyncVerifier, Event, MemoryStore, Policy, Verifier};
use otpflow_postgres::{PgStore, SubjectHasher};
use otpflow_redis::{RedisOptions, RedisStore};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::app::{AppState, Shared};
use crate::backend::{Backend, Otp};
use crate::clock::ServiceClock;
use crate::config::Config;
use crate::facts::{Facts, MemoryFacts, PgFacts, RedisFacts};
use crate::keys::{KeysError, ServiceKeys};
use crate::kii::{KiiDirectory, KiiError};
use crate::sender::{FileOutbox, LogSender, Sender};
use crate::tokens::Tokens;
use crate::webhooks::{self, WebhookOptions, WebhookQueue};

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
    /// The webhook settings are incomplete or wrong.
    Webhook(String),
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
            Self::Webhook(s) => write!(f, "webhook: {s}"),
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

/// How long a shared store's call may take.
pub const STORE_TIMEOUT: Duration = Duration::from_secs(1);

/// The service's state as `config` describes it, and the webhook delivery
/// task when webhooks are on (it ends once the state is dropped and the
/// queued events are delivered).
///
/// # Errors
/// [`StartError`] for keys, apps, store, outbox or webhook problems.
pub async fn build_state(config: &Config) -> Result<(Shared, Option<JoinHandle<()>>), StartError> {
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
    let policy = service_policy(config)?;
    let tokens = Arc::new(Tokens::new(&keys.token_key, &keys.kgen_user_jwt_key));
    let (queue, webhook_task) = match webhook_queue(config, &keys, &tokens, &clock)? {
        Some((q, t)) => (Some(q), Some(t)),
        None => (None, None),
    };
    // otpflow's events go to the webhooks only: without a webhook queue no
    // listener is set, so otpflow drops each call's events where they are
    // made instead of keeping them for a listener that does nothing.
    let listener = queue.map(|q| move |event: &Event| q.push(event));
    let (backend, facts): (Backend, Box<dyn Facts>) = match config.store.as_str() {
        "memory" => (
            Backend::Memory({
                let verifier = Verifier::new(
                    policy.clone(),
                    keys.otp.clone(),
                    MemoryStore::new(),
                    clock.clone(),
                );
                match listener {
                    Some(listener) => verifier.on_event(listener),
                    None => verifier,
                }
            }),
            Box::new(MemoryFacts::default()),
        ),
        url if url.starts_with("redis://") || url.starts_with("rediss://") => {
            let store_key = store_key(&keys)?;
            let options = RedisOptions::new(store_key, policy.clone())
                .map_err(|e| StartError::Store(format!("redis: {e}")))?;
            // The URL may carry a password: the error names the store
            // kind and the cause, never the URL.
            let store = RedisStore::connect(url, options)
                .await
                .map_err(|e| StartError::Store(format!("cannot reach redis: {e}")))?;
            let facts = RedisFacts::connect(url, store_key, STORE_TIMEOUT)
                .await
                .map_err(|e| StartError::Store(format!("cannot reach redis: {e}")))?;
            (
                Backend::Redis(listened(
                    AsyncVerifier::new(policy.clone(), keys.otp.clone(), store, clock.clone()),
                    listener,
                )),
                Box::new(facts),
            )
        }
        url if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            let store_key = store_key(&keys)?;
            let pg: otpflow_postgres::tokio_postgres::Config = url
                .parse()
                .map_err(|_| StartError::Store("postgres: the URL does not parse".into()))?;
            let hasher = SubjectHasher::new(store_key).map_err(|_| {
                StartError::Store("postgres: store_key must be 32 to 64 bytes".into())
            })?;
            let store = PgStore::builder(pg, hasher, policy.clone())
                .call_timeout(STORE_TIMEOUT)
                .build()
                .map_err(|e| StartError::Store(format!("postgres: {e}")))?;
            // Applies the records' schema (idempotent, safe from several
            // processes); a server that cannot be reached stops the start.
            store
                .migrate()
                .await
                .map_err(|e| StartError::Store(format!("cannot reach postgres: {e}")))?;
            if config.purge_interval_secs > 0 {
                spawn_purge(
                    store.clone(),
                    clock.clone(),
                    Duration::from_secs(config.purge_interval_secs),
                );
            }
            let facts = PgFacts::open(store.pool().clone(), store_key, STORE_TIMEOUT)
                .await
                .map_err(|e| StartError::Store(format!("cannot reach postgres: {e}")))?;
            (
                Backend::Postgres(listened(
                    AsyncVerifier::new(policy.clone(), keys.otp.clone(), store, clock.clone()),
                    listener,
                )),
                Box::new(facts),
            )
        }
        other => {
            let scheme = other.split("://").next().unwrap_or(other);
            return Err(StartError::Store(format!(
                "unsupported store {scheme:?}: this build has `memory`, `redis://` and `postgres://`"
            )));
        }
    };
    let state = Arc::new(AppState {
        otp: Otp::new(backend, clock, policy),
        sender,
        tokens,
        kii,
        facts,
        #[cfg(feature = "test-hooks")]
        admin_token: std::env::var("OTPFLOW_ADMIN_TOKEN")
            .ok()
            .filter(|t| !t.is_empty()),
    });
    Ok((state, webhook_task))
}

/// Deletes expired PostgreSQL rows every `every` (the first purge one
/// period after start), by the service clock; a failed purge is logged and
/// tried again at the next tick. Several processes may purge the same
/// database: a row is deleted once, the others find nothing.
fn spawn_purge(store: PgStore, clock: ServiceClock, every: Duration) {
    tokio::spawn(async move {
        use otpflow::Clock as _;
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match store.purge_expired(clock.now()).await {
                Ok(0) => {}
                Ok(rows) => tracing::info!(rows, "purged expired records"),
                Err(e) => tracing::warn!(error = %e, "purge of expired records failed"),
            }
        }
    });
}

fn store_key(keys: &ServiceKeys) -> Result<&[u8], StartError> {
    keys.store_key
        .as_deref()
        .map(Vec::as_slice)
        .ok_or_else(|| StartError::Store("a shared store needs `store_key` in the keys".into()))
}

/// The webhook queue and its delivery task, when `--webhook-url` is set.
fn webhook_queue(
    config: &Config,
    keys: &ServiceKeys,
    tokens: &Arc<Tokens>,
    clock: &ServiceClock,
) -> Result<Option<(WebhookQueue, JoinHandle<()>)>, StartError> {
    let Some(url) = config.webhook_url.as_deref().filter(|u| !u.is_empty()) else {
        return Ok(None);
    };
    let url = reqwest::Url::parse(url)
        .map_err(|_| StartError::Webhook("the URL does not parse".into()))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(StartError::Webhook(
            "the URL must be http:// or https:// with a host".into(),
        ));
    }
    let secret = keys.webhook_secret.clone().ok_or_else(|| {
        StartError::Webhook("--webhook-url needs `webhook_secret` in the keys".into())
    })?;
    let options = WebhookOptions {
        url,
        timeout: Duration::from_secs(config.webhook_timeout_secs.max(1)),
        max_attempts: config.webhook_attempts,
        first_backoff: Duration::from_millis(500),
    };
    let journal = match &config.webhook_journal {
        Some(path) => Some(
            webhooks::Journal::open(path)
                .map_err(|e| StartError::Webhook(format!("the journal cannot be opened: {e}")))?,
        ),
        None => None,
    };
    let (queue, task) = webhooks::start(options, secret, tokens.clone(), clock.clone(), journal)
        .map_err(|_| StartError::Webhook("the HTTP client cannot be built".into()))?;
    Ok(Some((queue, task)))
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

/// otpflow's default policy, with the budget keys the flags set (and only
/// those: a kind without a flag is not counted).
fn service_policy(config: &Config) -> Result<Policy, StartError> {
    use otpflow::budget_key::BudgetKind;
    Policy::builder()
        .budget_rate(BudgetKind::Address, config.budget_address)
        .budget_rate(BudgetKind::Range, config.budget_range)
        .budget_rate(BudgetKind::Country, config.budget_country)
        .budget_rate(BudgetKind::Global, config.budget_global)
        .build()
        .map_err(|e| StartError::Store(format!("policy: {e}")))
}

/// `verifier` with the webhooks' listener when there is one (without one,
/// otpflow drops each call's events where they are made).
fn listened<S: AsyncStore>(
    verifier: AsyncVerifier<S, ServiceClock>,
    listener: Option<impl Fn(&Event) + Send + Sync + 'static>,
) -> AsyncVerifier<S, ServiceClock> {
    match listener {
        Some(listener) => verifier.on_event(listener),
        None => verifier,
    }
}
/// Binds, logs the bound address (`listening`, field `addr`), and serves
/// until SIGTERM or Ctrl-C; then stops accepting and waits up to the grace
/// period for requests in flight.
///
/// # Errors
/// [`StartError`] when the state cannot be built or the address bound.
pub async fn run(config: Config) -> Result<(), StartError> {
    let (state, webhook_task) = build_state(&config).await?;
    let signals = Signals::install()?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(StartError::Io)?;
    let addr = listener.local_addr().map_err(StartError::Io)?;
    tracing::info!(addr = %addr, store = %config.store, "listening");
    let router = crate::app::router(state);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let limits = Limits {
        header_read_timeout: Duration::from_secs(config.header_read_timeout_secs),
        max_connections: usize::try_from(config.max_connections).unwrap_or(usize::MAX),
    };
    let server = tokio::spawn(serve(listener, router, limits, async {
        let _ = stop_rx.await;
    }));
    signals.recv().await;
    tracing::info!("shutting down");
    let _ = stop_tx.send(());
    let grace = Duration::from_secs(config.shutdown_grace_secs);
    let deadline = tokio::time::Instant::now() + grace;
    match tokio::time::timeout_at(deadline, server).await {
        Ok(Ok(())) => {
            // The state is dropped with the server: the webhook queue
            // closes, and what it holds is delivered within the grace.
            if let Some(task) = webhook_task
                && tokio::time::timeout_at(deadline, task).await.is_err()
            {
                tracing::warn!("grace period over; webhooks still queued are dropped");
            }
            tracing::info!("stopped");
            Ok(())
        }
        Ok(Err(_)) => Err(StartError::Io(std::io::Error::other("server task failed"))),
        Err(_) => {
            tracing::warn!("grace period over; dropping requests in flight");
            Ok(())
        }
    }
}

/// Serves `router` on `listener` until `stop` resolves, then stops
/// accepting and waits for the connections in flight to finish (each is
/// told to close once its current request is answered).
///
/// hyper's HTTP/1.1 connection is built here rather than by
/// `axum::serve` (which sniffs each connection for HTTP/2 and adds the
/// peer's address to every request's extensions, one allocation each): the
/// peer's address is known once per connection and given to each of its
/// requests as [`crate::app::client_address`]. Connections are served with
/// `TCP_NODELAY` (an answer is one `writev` of its head and body).
async fn serve(
    listener: TcpListener,
    router: axum::Router,
    limits: Limits,
    stop: impl std::future::Future<Output = ()>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.keep_alive(true)
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let mut stop = std::pin::pin!(stop);
    loop {
        // A connection is accepted only with a free slot; the slot goes
        // with the connection and comes back when it closes.
        let slot = tokio::select! {
            slot = std::sync::Arc::clone(&slots).acquire_owned() => slot,
            () = &mut stop => break,
        };
        let Ok(slot) = slot else { break };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut stop => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            // The pause after a failed accept does not hold up a shutdown.
            Err(e) => tokio::select! {
                () = accept_failed(&e) => continue,
                () = &mut stop => break,
            },
        };
        // A socket option that cannot be set is no reason to refuse the
        // client: it is served with Nagle's algorithm on.
        let _ = stream.set_nodelay(true);
        let service = crate::app::PeerService::new(router.clone(), peer.ip());
        let connection = http.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::trace!(error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// What one client may hold of the service.
#[derive(Debug, Clone, Copy)]
struct Limits {
    /// Time to send a request's head, and to stay idle between requests.
    header_read_timeout: Duration,
    /// Connections served at once.
    max_connections: usize,
}

/// After a failed `accept`: a connection's own failure (reset or aborted
/// before it was taken) is skipped; anything else (out of file descriptors,
/// above all) is logged and the loop waits a second before trying again,
/// as `axum::serve` does.
async fn accept_failed(error: &std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %error, "accept failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
