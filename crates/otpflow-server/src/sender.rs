//! Delivering codes: the [`Sender`] trait, a [`LogSender`] for development
//! and a [`FileOutbox`] that writes one JSON line per message, so tests and
//! local runs read the code as a phone would.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::Path;
use std::sync::Mutex;

use serde::Serialize;

/// One message to deliver. Its `Debug` hides the code.
#[derive(Clone, Serialize)]
pub struct Message {
    /// The recipient, E.164 (`+447401101801`).
    pub to: String,
    /// `sms`, `whatsapp`, `voice` or `none`.
    pub channel: &'static str,
    /// The otpflow purpose the code belongs to (one per seed or app).
    pub purpose: String,
    /// The code.
    pub code: String,
    /// The text a phone would show.
    pub text: String,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("to", &self.to)
            .field("channel", &self.channel)
            .field("purpose", &self.purpose)
            .field("code", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// A message could not be handed on. Says nothing of the message.
#[derive(Debug)]
pub struct SendError(std::io::Error);

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the message could not be delivered: {}", self.0)
    }
}

impl std::error::Error for SendError {}

/// Hands a code to whatever delivers it (an SMS gateway in a real service).
pub trait Sender: Send + Sync {
    /// Delivers `message`.
    ///
    /// # Errors
    /// [`SendError`] when the message could not be handed on; the request
    /// that asked for it answers "unavailable".
    fn send(&self, message: &Message) -> Result<(), SendError>;
}

/// Logs each message, code included, at `info`: for local development only
/// (anyone who reads the logs reads the codes).
#[derive(Debug, Default)]
pub struct LogSender;

impl Sender for LogSender {
    fn send(&self, m: &Message) -> Result<(), SendError> {
        tracing::info!(
            to = %m.to,
            channel = m.channel,
            purpose = %m.purpose,
            code = %m.code,
            "message (log sender)"
        );
        Ok(())
    }
}

/// Appends each message to a file as one JSON line
/// `{"to","channel","purpose","code","text"}`, flushed before the request
/// answers.
#[derive(Debug)]
pub struct FileOutbox {
    file: Mutex<File>,
}

impl FileOutbox {
    /// Opens (creates, appends to) the outbox at `path`.
    ///
    /// # Errors
    /// The file cannot be opened for appending.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self {
            file: Mutex::new(file),
        })
    }
}

impl Sender for FileOutbox {
    fn send(&self, m: &Message) -> Result<(), SendError> {
        let mut line = serde_json::to_vec(m).map_err(|e| SendError(e.into()))?;
        line.push(b'\n');
        // A poisoned lock only means another writer panicked mid-line; the
        // file itself is still usable.
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        file.write_all(&line).map_err(SendError)?;
        file.flush().map_err(SendError)
    }
}
