//! Reading request bodies by hand, so every malformed body gets its seed's
//! own error shape (axum's extractors answer in plain text).

use serde_json::{Map, Value};

/// A JSON object body, or form fields (`application/x-www-form-urlencoded`)
/// as an object of strings. `None` for anything else.
pub fn object(content_type: Option<&str>, bytes: &[u8]) -> Option<Map<String, Value>> {
    let form = content_type.is_some_and(|ct| {
        ct.split(';').next().is_some_and(|m| {
            m.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
    });
    if form {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(bytes).ok()?;
        return Some(
            pairs
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect(),
        );
    }
    match serde_json::from_slice(bytes).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

/// A field read as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// Absent, `null`, or a string of only spaces.
    Missing,
    /// A string, or a non-negative integer written as its digits.
    Text(String),
    /// Another JSON type (a fraction, a negative number, an object, …).
    Invalid,
}

impl Field {
    /// The text, if there is one.
    pub fn text(self) -> Option<String> {
        match self {
            Self::Text(t) => Some(t),
            _ => None,
        }
    }

    /// True when absent.
    pub fn is_missing(&self) -> bool {
        matches!(self, Self::Missing)
    }
}

/// Reads `name` from the object as a string or a non-negative integer.
pub fn field(map: &Map<String, Value>, name: &str) -> Field {
    match map.get(name) {
        None | Some(Value::Null) => Field::Missing,
        Some(Value::String(s)) if s.trim().is_empty() => Field::Missing,
        Some(Value::String(s)) => Field::Text(s.clone()),
        Some(Value::Number(n)) => n
            .as_u64()
            .map_or(Field::Invalid, |n| Field::Text(n.to_string())),
        Some(_) => Field::Invalid,
    }
}

/// Reads a code. A string is taken as written; a JSON number has lost its
/// leading zeros (`012345` arrives as `12345`), so its digits are
/// left-padded with zeros to the policy's `length`.
///
/// ```
/// use otpflow_server::body::{Field, code};
/// let map = serde_json::json!({ "otp": 12345, "s": "012345" });
/// let map = map.as_object().expect("an object");
/// assert_eq!(code(map, "otp", 6), Field::Text("012345".into()));
/// assert_eq!(code(map, "s", 6), Field::Text("012345".into()));
/// assert_eq!(code(map, "none", 6), Field::Missing);
/// ```
pub fn code(map: &Map<String, Value>, name: &str, length: u8) -> Field {
    match map.get(name) {
        Some(Value::Number(n)) => match n.as_u64() {
            Some(n) => Field::Text(format!("{n:0>width$}", width = usize::from(length))),
            None => Field::Invalid,
        },
        _ => field(map, name),
    }
}

/// The request's `Content-Type` header, if it is text.
pub fn content_type(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
}
