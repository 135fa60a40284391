//! Verifik webhooks from otpflow's events.
//!
//! Verifik's documents say only that "validation events trigger webhook
//! notifications"; the shape here is this service's, written down in the
//! crate README:
//!
//! - Each event of a Verifik validation (login or onboarding) becomes one
//!   `POST` of a JSON body `{"id","event","createdAt","data":{…}}` to the
//!   configured URL; `data` names the validation as the API does (`_id`,
//!   `type`, `status`, `countryCode`, `phone`). **No body ever carries a
//!   code**, nor anything derived from one.
//! - The body is signed: `X-Otpflow-Signature: t=<unix seconds>,v1=<hex
//!   HMAC-SHA256(webhook_secret, "<t>." ‖ body)>`, the secret coming from
//!   the keys (never the command line). A receiver recomputes it, compares
//!   in constant time and refuses a `t` older than a few minutes.
//! - Delivery is off the request path: otpflow's event listener only queues
//!   the body (a bounded queue; a full queue drops the event with a
//!   warning). A background task posts it with a timeout, up to
//!   [`WebhookOptions::max_attempts`] times with a doubling back-off for a
//!   network error, a timeout, a 429 or a 5xx, redirects not followed; each
//!   attempt is signed afresh, with the same `id`. A receiver must expect
//!   the same `id` more than once and events out of order.
//! - With a [`Journal`] (`--webhook-journal PATH`), each body is appended to
//!   a file before it is queued, and marked done once delivered or given
//!   up; a restart after a crash delivers what the file still holds, with
//!   the same `id` (at-least-once: an event delivered just before a crash
//!   may come again).

use std::collections::HashSet;
use std::fs::File;
use std::io::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{KeyInit, Mac};
use otpflow::{Event, SubjectKey};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use zeroize::Zeroizing;

use crate::tokens::{Tokens, hex};

/// The signature header.
pub const SIGNATURE_HEADER: &str = "x-otpflow-signature";
/// The event's id, repeated as a header.
pub const EVENT_ID_HEADER: &str = "x-otpflow-event-id";
/// How many bodies may wait for delivery before new events are dropped.
pub const QUEUE_CAPACITY: usize = 4096;
/// How many deliveries run at once.
pub const CONCURRENT_DELIVERIES: usize = 8;

/// How webhooks are delivered.
#[derive(Clone, Debug)]
pub struct WebhookOptions {
    /// Where to `POST` (`http://` or `https://`).
    pub url: reqwest::Url,
    /// How long one attempt may take.
    pub timeout: Duration,
    /// Attempts per event (at least 1).
    pub max_attempts: u32,
    /// The wait before the first retry; doubled for each next one.
    pub first_backoff: Duration,
}

/// The signature header's value for `body` signed at `t` (unix seconds).
///
/// ```
/// use otpflow_server::webhooks::{sign, verify};
/// let header = sign(b"a secret of the receiver's, 32 bytes", 1_700_000_000, b"{}");
/// assert!(header.starts_with("t=1700000000,v1="));
/// assert!(verify(b"a secret of the receiver's, 32 bytes", &header, b"{}"));
/// assert!(!verify(b"another secret", &header, b"{}"));
/// ```
pub fn sign(secret: &[u8], t: i64, body: &[u8]) -> String {
    format!("t={t},v1={}", hex(&mac(secret, t, body)))
}

/// Checks a signature header against `body` (what a receiver does; the
/// age of `t` is the receiver's to bound).
pub fn verify(secret: &[u8], header: &str, body: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => v1 = Some(v),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    let expected = hex(&mac(secret, t, body));
    expected.len() == v1.len() && bool::from(expected.as_bytes().ct_eq(v1.as_bytes()))
}

fn mac(secret: &[u8], t: i64, body: &[u8]) -> [u8; 32] {
    let Ok(mut mac) = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(secret) else {
        unreachable!("HMAC accepts keys of any length")
    };
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().into()
}

/// The Verifik `type` of a subject, or `None` for the other seeds.
fn verifik_type(subject: &SubjectKey) -> Option<&'static str> {
    match subject.purpose().as_str() {
        "verifik-login" => Some("login"),
        "verifik-onboarding" => Some("onboarding"),
        _ => None,
    }
}

/// The webhook body of an event, `None` for events that are not a Verifik
/// validation's (or that carry nothing a webhook reports). Never includes
/// the code.
pub fn body_of(event: &Event, tokens: &Tokens, now: time::OffsetDateTime) -> Option<Value> {
    let (subject, generation, name, status) = match event {
        Event::Sent {
            subject,
            generation,
            ..
        } => (subject, *generation, "phone_validation.sent", "sent"),
        Event::Resent {
            subject,
            generation,
            ..
        } => (subject, *generation, "phone_validation.resent", "sent"),
        Event::CheckFailed {
            subject,
            generation,
            ..
        } => (
            subject,
            *generation,
            "phone_validation.otp_does_not_match",
            "sent",
        ),
        Event::Validated {
            subject,
            generation,
            ..
        } => (
            subject,
            *generation,
            "phone_validation.validated",
            "validated",
        ),
        Event::Expired {
            subject,
            generation,
            ..
        } => (subject, *generation, "phone_validation.expired", "expired"),
        Event::Locked {
            subject,
            generation,
            ..
        } => (subject, *generation, "phone_validation.locked", "locked"),
        Event::Canceled {
            subject,
            generation,
            ..
        } => (
            subject,
            *generation,
            "phone_validation.canceled",
            "canceled",
        ),
        _ => return None,
    };
    let kind = verifik_type(subject)?;
    let phone = subject.phone();
    let mut data = json!({
        "_id": tokens.validation_id(&crate::app::subject_id(subject), generation),
        "type": kind,
        "status": status,
        "countryCode": format!("+{}", phone.country_code()),
        "phone": phone.national(),
    });
    match event {
        Event::Sent {
            channel,
            expires_at,
            ..
        }
        | Event::Resent {
            channel,
            expires_at,
            ..
        } => {
            data["phoneGateway"] = json!(channel.as_str());
            data["expiresAt"] = json!(crate::seeds::verifik::timestamp(*expires_at));
        }
        Event::CheckFailed { attempts_left, .. } => {
            data["attemptsLeft"] = json!(attempts_left);
        }
        Event::Locked {
            until: Some(until), ..
        } => {
            data["lockedUntil"] = json!(crate::seeds::verifik::timestamp(*until));
        }
        _ => {}
    }
    Some(json!({
        "id": format!("evt_{}", Tokens::random_hex(12)),
        "event": name,
        "createdAt": crate::seeds::verifik::timestamp(now),
        "data": data,
    }))
}

/// Past this many bytes, a journal with nothing pending is emptied.
pub const JOURNAL_COMPACT_BYTES: u64 = 1 << 20;

/// One journal line: a body queued, or an id done with.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct JournalLine {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    queued: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    body: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    done: Option<String>,
}

/// The file side of a journal, behind one lock.
#[derive(Debug)]
struct JournalFile {
    file: File,
    /// Bodies written and not yet marked done by this process.
    pending: u64,
    /// Bytes in the file.
    len: u64,
}

/// A file journal of the webhook bodies not yet delivered (one per
/// process: two processes must not share a file).
///
/// Each body is appended (one JSON line, `{"queued":"<id>","body":"<the
/// body>"}`, one `write` call) before it is queued, and `{"done":"<id>"}`
/// once it is delivered or given up on. [`Journal::open`] reads what an
/// earlier process left, keeps the bodies without a `done` line (a torn
/// last line is skipped), rewrites the file with only those (a temporary
/// file, synced, renamed over it) and hands them to [`start`], which
/// delivers them before new events. The file is written, not synced, per
/// event: a crash of the process (SIGKILL, OOM, a panic) loses nothing, a
/// crash of the machine may lose the last events. Once nothing is pending
/// and the file passed [`JOURNAL_COMPACT_BYTES`], it is emptied.
#[derive(Debug)]
pub struct Journal {
    inner: Mutex<JournalFile>,
    replay: Mutex<Vec<Job>>,
}

impl Journal {
    /// Opens (or creates) the journal at `path`, keeping what an earlier
    /// process left undelivered.
    ///
    /// ```
    /// use otpflow_server::webhooks::Journal;
    /// let dir = std::env::temp_dir().join(format!("journal-doc-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let path = dir.join("webhooks.jsonl");
    /// // An earlier process queued two events and delivered one; its last
    /// // line was torn by a crash.
    /// std::fs::write(&path, concat!(
    ///     r#"{"queued":"evt_1","body":"{\"id\":\"evt_1\"}"}"#, "\n",
    ///     r#"{"queued":"evt_2","body":"{\"id\":\"evt_2\"}"}"#, "\n",
    ///     r#"{"done":"evt_1"}"#, "\n",
    ///     r#"{"queued":"evt_3","bo"#,
    /// ))?;
    /// let journal = Journal::open(&path)?;
    /// assert_eq!(journal.left_over(), 1); // evt_2, delivered by `start`
    /// // The file now holds only what is pending.
    /// assert_eq!(std::fs::read_to_string(&path)?.lines().count(), 1);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// The file cannot be read, rewritten or opened.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let text = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let mut queued: Vec<Job> = Vec::new();
        let mut done: HashSet<String> = HashSet::new();
        for line in text.split(|b| *b == b'\n') {
            let Ok(entry) = serde_json::from_slice::<JournalLine>(line) else {
                continue; // blank, or torn by a crash mid-write
            };
            match entry {
                JournalLine {
                    queued: Some(id),
                    body: Some(body),
                    done: None,
                } => queued.push(Job {
                    id,
                    body: body.into_bytes(),
                }),
                JournalLine {
                    queued: None,
                    body: None,
                    done: Some(id),
                } => {
                    done.insert(id);
                }
                _ => {}
            }
        }
        queued.retain(|job| !done.contains(&job.id));
        let mut seen = HashSet::new();
        queued.retain(|job| seen.insert(job.id.clone()));
        let mut fresh = Vec::new();
        for job in &queued {
            fresh.extend_from_slice(&queued_line(job)?);
        }
        let tmp = path.with_extension("compacting");
        {
            let mut f = File::create(&tmp)?;
            f.write_all(&fresh)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        let file = std::fs::OpenOptions::new().append(true).open(path)?;
        Ok(Self {
            inner: Mutex::new(JournalFile {
                file,
                pending: queued.len() as u64,
                len: fresh.len() as u64,
            }),
            replay: Mutex::new(queued),
        })
    }

    /// How many bodies an earlier process left to deliver (before
    /// [`start`] takes them).
    pub fn left_over(&self) -> usize {
        self.replay.lock().map_or(0, |r| r.len())
    }

    fn append(&self, line: &[u8], pending: i64) -> std::io::Result<()> {
        let mut inner = self
            .inner
            .lock()
            .map_err(|_| std::io::Error::other("journal lock poisoned"))?;
        inner.file.write_all(line)?;
        inner.len += line.len() as u64;
        inner.pending = inner.pending.saturating_add_signed(pending);
        if inner.pending == 0 && inner.len > JOURNAL_COMPACT_BYTES {
            inner.file.set_len(0)?;
            inner.len = 0;
        }
        Ok(())
    }

    fn queued(&self, job: &Job) -> std::io::Result<()> {
        self.append(&queued_line(job)?, 1)
    }

    fn done(&self, id: &str) {
        let entry = JournalLine {
            queued: None,
            body: None,
            done: Some(id.to_owned()),
        };
        let result = serde_json::to_vec(&entry)
            .map_err(std::io::Error::other)
            .and_then(|mut line| {
                line.push(b'\n');
                self.append(&line, -1)
            });
        if let Err(e) = result {
            tracing::warn!(id, error = %e, "webhook journal: cannot mark done (it comes again after a restart)");
        }
    }
}

fn queued_line(job: &Job) -> std::io::Result<Vec<u8>> {
    let entry = JournalLine {
        queued: Some(job.id.clone()),
        body: Some(String::from_utf8_lossy(&job.body).into_owned()),
        done: None,
    };
    let mut line = serde_json::to_vec(&entry).map_err(std::io::Error::other)?;
    line.push(b'\n');
    Ok(line)
}

/// One body waiting for delivery.
#[derive(Debug)]
struct Job {
    id: String,
    body: Vec<u8>,
}

/// The queue otpflow's event listener feeds; cheap to clone.
#[derive(Clone)]
pub struct WebhookQueue {
    tx: mpsc::Sender<Job>,
    tokens: Arc<Tokens>,
    clock: crate::clock::ServiceClock,
    dropped: Arc<AtomicU64>,
    journal: Option<Arc<Journal>>,
}

impl std::fmt::Debug for WebhookQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookQueue")
            .field("dropped", &self.dropped.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl WebhookQueue {
    /// Queues the event's body, if it has one (written to the journal
    /// first, when there is one). Never blocks: a full queue drops the
    /// event with a warning (with a journal, it stays there for the next
    /// start).
    pub fn push(&self, event: &Event) {
        use otpflow::Clock as _;
        let Some(body) = body_of(event, &self.tokens, self.clock.now()) else {
            return;
        };
        let id = body["id"].as_str().unwrap_or_default().to_owned();
        let Ok(bytes) = serde_json::to_vec(&body) else {
            return;
        };
        let job = Job { id, body: bytes };
        let journaled = match &self.journal {
            Some(journal) => match journal.queued(&job) {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(id = %job.id, error = %e, "webhook journal: cannot write (this event is in memory only)");
                    false
                }
            },
            None => false,
        };
        if self.tx.try_send(job).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            if journaled {
                tracing::warn!(
                    "webhook queue full or closed: event kept in the journal for the next start"
                );
            } else {
                tracing::warn!("webhook queue full or closed: event dropped");
            }
        }
    }
}

/// Starts the delivery task; returns the queue to feed and the task, which
/// ends once every queue clone is dropped and the queued bodies are
/// delivered (or given up on). With a `journal`, what an earlier process
/// left in it is delivered first, and every body is journaled.
///
/// # Errors
/// The HTTP client cannot be built.
pub fn start(
    options: WebhookOptions,
    secret: Zeroizing<Vec<u8>>,
    tokens: Arc<Tokens>,
    clock: crate::clock::ServiceClock,
    journal: Option<Journal>,
) -> Result<(WebhookQueue, JoinHandle<()>), reqwest::Error> {
    let client = reqwest::Client::builder()
        .timeout(options.timeout)
        .connect_timeout(options.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("otpflow-server/", env!("CARGO_PKG_VERSION")))
        .build()?;
    let journal = journal.map(Arc::new);
    let replay = journal
        .as_ref()
        .and_then(|j| j.replay.lock().ok().map(|mut r| std::mem::take(&mut *r)))
        .unwrap_or_default();
    let (tx, mut rx) = mpsc::channel::<Job>(QUEUE_CAPACITY + replay.len());
    if !replay.is_empty() {
        tracing::info!(
            count = replay.len(),
            "webhook journal: delivering what an earlier process left"
        );
    }
    for job in replay {
        // The channel has room for every one of them.
        let _ = tx.try_send(job);
    }
    let secret = Arc::new(secret);
    let options = Arc::new(options);
    let task_journal = journal.clone();
    let task = tokio::spawn(async move {
        let permits = Arc::new(Semaphore::new(CONCURRENT_DELIVERIES));
        while let Some(job) = rx.recv().await {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                break;
            };
            let (client, secret, options) = (client.clone(), secret.clone(), options.clone());
            let journal = task_journal.clone();
            tokio::spawn(async move {
                deliver(&client, &secret, &options, &job).await;
                if let Some(journal) = &journal {
                    journal.done(&job.id);
                }
                drop(permit);
            });
        }
        // Wait for the deliveries in flight.
        let all = u32::try_from(CONCURRENT_DELIVERIES).unwrap_or(u32::MAX);
        let _ = permits.acquire_many(all).await;
    });
    Ok((
        WebhookQueue {
            tx,
            tokens,
            clock,
            dropped: Arc::new(AtomicU64::new(0)),
            journal,
        },
        task,
    ))
}

/// Posts one body, retrying as documented; logs the outcome (never the
/// body).
async fn deliver(client: &reqwest::Client, secret: &[u8], options: &WebhookOptions, job: &Job) {
    let attempts = options.max_attempts.max(1);
    let mut backoff = options.first_backoff;
    for attempt in 1..=attempts {
        let t = time::OffsetDateTime::now_utc().unix_timestamp();
        let outcome = client
            .post(options.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, sign(secret, t, &job.body))
            .header(EVENT_ID_HEADER, &job.id)
            .body(job.body.clone())
            .send()
            .await;
        let retry = match outcome {
            Ok(r) if r.status().is_success() => {
                tracing::debug!(id = %job.id, attempt, "webhook delivered");
                return;
            }
            Ok(r) => {
                let status = r.status();
                let again = status.is_server_error() || status.as_u16() == 429;
                tracing::warn!(id = %job.id, attempt, status = status.as_u16(), "webhook refused");
                again
            }
            Err(e) => {
                // reqwest's error names the URL; log only its kind.
                let kind = if e.is_timeout() {
                    "timeout"
                } else if e.is_connect() {
                    "connect"
                } else {
                    "request"
                };
                tracing::warn!(id = %job.id, attempt, error = kind, "webhook not delivered");
                true
            }
        };
        if !retry || attempt == attempts {
            break;
        }
        tokio::time::sleep(backoff).await;
        backoff = backoff.saturating_mul(2).min(Duration::from_secs(60));
    }
    tracing::error!(id = %job.id, attempts, "webhook given up");
}
