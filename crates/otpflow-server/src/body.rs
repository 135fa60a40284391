//! Reading request bodies by hand, so every malformed body gets its seed's
//! own error shape (axum's extractors answer in plain text).

use serde_json::{Map, Value};

/// A JSON object body, or form fields (`application/x-www-form-urlencoded`)
/// as an object of strings. `None` for anything else.
pub fn object(content_type: Option<&str>, bytes: &[u8]) -> Option<Map<String, Value>> {
    if is_form(content_type) {
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

/// One value of a [`Fields`] body, borrowed from the request bytes where it
/// can be (a string without escapes).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Scalar<'a> {
    /// A string.
    Str(std::borrow::Cow<'a, str>),
    /// A non-negative integer.
    Unsigned(u64),
    /// `null`.
    Null,
    /// Anything else: a negative or fractional number, a boolean, an array,
    /// an object.
    Other,
}

impl<'de> serde::Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl<'de> serde::de::Visitor<'de> for ScalarVisitor {
    type Value = Scalar<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(std::borrow::Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(std::borrow::Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Scalar::Str(std::borrow::Cow::Owned(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Scalar::Unsigned(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(u64::try_from(v).map_or(Scalar::Other, Scalar::Unsigned))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Scalar::Other)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Scalar::Other)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map
            .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
            .is_some()
        {}
        Ok(Scalar::Other)
    }
}

/// The fields named `N` names of a body, read straight from its bytes (no
/// map of every field built first: the hot routes' bodies). The same reading
/// as [`object`] then [`field`] / [`code`]: a JSON object or a form, other
/// fields skipped, the last of a repeated field wins.
///
/// ```
/// use otpflow_server::body::{Field, Fields};
/// let body = br#"{"phone": "447401101801", "otp": 12345, "x": [1, {"y": 2}]}"#;
/// let f = Fields::read(None, body, ["phone", "otp", "channel"]).expect("an object");
/// assert_eq!(f.field(0), Field::Text("447401101801".into()));
/// assert_eq!(f.code(1, 6), Field::Text("012345".into()));
/// assert_eq!(f.field(2), Field::Missing);
/// assert!(Fields::read(None, b"[1]", ["phone"]).is_none());
/// ```
#[derive(Debug)]
pub struct Fields<'a, const N: usize> {
    values: [Option<Scalar<'a>>; N],
}

/// Reads a JSON object's `N` named fields (a `DeserializeSeed`).
struct FieldsSeed<const N: usize>([&'static str; N]);

impl<'de, const N: usize> serde::de::DeserializeSeed<'de> for FieldsSeed<N> {
    type Value = Fields<'de, N>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, const N: usize> serde::de::Visitor<'de> for FieldsSeed<N> {
    type Value = Fields<'de, N>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut values = [const { None }; N];
        while let Some(key) = map.next_key_seed(KeyIndex(&self.0))? {
            match key.and_then(|i| values.get_mut(i)) {
                Some(slot) => *slot = Some(map.next_value::<Scalar<'de>>()?),
                None => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(Fields { values })
    }
}

/// Reads an object's key as its place among the wanted names (`None` for
/// any other key), compared where it lies in the body: no key is copied
/// (serde's `Cow<str>` always deserializes into an owned `String`: four
/// allocations a Kavoon verify).
struct KeyIndex<'n, const N: usize>(&'n [&'static str; N]);

impl<'de, const N: usize> serde::de::DeserializeSeed<'de> for KeyIndex<'_, N> {
    type Value = Option<usize>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de, const N: usize> serde::de::Visitor<'de> for KeyIndex<'_, N> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a key")
    }

    // `visit_borrowed_str` and `visit_string` fall back to this one.
    fn visit_str<E>(self, key: &str) -> Result<Self::Value, E> {
        Ok(self.0.iter().position(|n| *n == key))
    }
}

impl<'a, const N: usize> Fields<'a, N> {
    /// The `names` fields of a JSON object body or a form body
    /// (`application/x-www-form-urlencoded`); `None` for anything else.
    pub fn read(
        content_type: Option<&str>,
        bytes: &'a [u8],
        names: [&'static str; N],
    ) -> Option<Self> {
        if is_form(content_type) {
            let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(bytes).ok()?;
            let mut values = [const { None }; N];
            for (k, v) in pairs {
                if let Some(i) = names.iter().position(|n| *n == k) {
                    values[i] = Some(Scalar::Str(std::borrow::Cow::Owned(v)));
                }
            }
            return Some(Self { values });
        }
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let fields = serde::de::DeserializeSeed::deserialize(FieldsSeed(names), &mut de).ok()?;
        de.end().ok()?;
        Some(fields)
    }

    /// The `i`th named field as text, read as [`field`] reads it.
    pub fn field(&self, i: usize) -> Field {
        match self.text(i) {
            Ok(Some(t)) => Field::Text(t.into_owned()),
            Ok(None) => Field::Missing,
            Err(()) => Field::Invalid,
        }
    }

    /// The `i`th named field as text, borrowed where it can be: `Ok(None)`
    /// when missing (absent, `null`, only spaces).
    ///
    /// # Errors
    /// `Err(())` when the field is of another type (a negative or
    /// fractional number, a boolean, an array, an object).
    #[allow(clippy::result_unit_err)] // the caller answers its own error
    pub fn text(&self, i: usize) -> Result<Option<std::borrow::Cow<'_, str>>, ()> {
        use std::borrow::Cow;
        match self.values.get(i) {
            None | Some(None | Some(Scalar::Null)) => Ok(None),
            Some(Some(Scalar::Str(s))) if s.trim().is_empty() => Ok(None),
            Some(Some(Scalar::Str(s))) => Ok(Some(Cow::Borrowed(s.as_ref()))),
            Some(Some(Scalar::Unsigned(n))) => Ok(Some(Cow::Owned(n.to_string()))),
            Some(Some(Scalar::Other)) => Err(()),
        }
    }

    /// True when the `i`th named field is the string `value`.
    pub fn is(&self, i: usize, value: &str) -> bool {
        matches!(self.text(i), Ok(Some(t)) if t == value)
    }

    /// The `i`th named field as a code, read as [`code`] reads it (a JSON
    /// number left-padded with zeros to `length`).
    pub fn code(&self, i: usize, length: u8) -> Field {
        match self.values.get(i) {
            Some(Some(Scalar::Unsigned(n))) => {
                Field::Text(format!("{n:0>width$}", width = usize::from(length)))
            }
            _ => self.field(i),
        }
    }
}

/// True when the content type is `application/x-www-form-urlencoded`.
fn is_form(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|ct| {
        ct.split(';').next().is_some_and(|m| {
            m.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Fields` reads every body as `object` then `field` / `code` do.
    #[test]
    fn fields_read_as_the_map_reads() {
        let json = [
            &br#"{"a":"x","b":12345,"c":null,"d":"  "}"#[..],
            br#"{"a":"x\u0041\n","b":"012345","a":"last"}"#,
            br#"{"a":-1,"b":1.5,"c":true,"d":[1,{"e":2}],"e":{"a":"inner"}}"#,
            br#"{"a":-0,"b":18446744073709551615,"c":18446744073709551616,"d":1e3}"#,
            br#"{"b":0,"c":"0","d":"\u00e9t\u00e9"}"#,
            br#"{"\u0061":"escaped key","b\n":"other key","\u00e9":1}"#,
            br#"{"a":"x","a\u0000":"y","":"z"}"#,
            br#"{}"#,
            br#" { "a" : "spaced" } "#,
            br#"[{"a":"x"}]"#,
            br#""a""#,
            br#"{"a":"x"} trailing"#,
            br#"{"a":"x""#,
            br#"{"a":"x","a":{"deep":[[[]]]}}"#,
            b"not json",
            b"",
        ];
        let form = [&b"a=x&b=12345&c=&d=%20"[..], b"a=1&a=2&b=%2B44+7401", b"b"];
        let names = ["a", "b", "c", "d"];
        let cases = json.iter().map(|b| (None, *b)).chain(
            form.iter()
                .map(|b| (Some("application/x-www-form-urlencoded"), *b)),
        );
        for (content_type, bytes) in cases {
            let map = object(content_type, bytes);
            let fields = Fields::read(content_type, bytes, names);
            let (Some(map), Some(fields)) = (&map, &fields) else {
                assert_eq!(map.is_some(), fields.is_some(), "{bytes:?}");
                continue;
            };
            for (i, name) in names.iter().enumerate() {
                assert_eq!(fields.field(i), field(map, name), "{bytes:?} {name}");
                assert_eq!(fields.code(i, 6), code(map, name, 6), "{bytes:?} {name}");
                let text = field(map, name).text();
                assert_eq!(fields.is(i, "x"), text.as_deref() == Some("x"));
            }
        }
    }
}
