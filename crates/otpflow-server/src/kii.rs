//! Kii's apps, app keys and users, loaded from the file given by
//! `--kii-apps`:
//!
//! ```json
//! { "apps": [ {
//!     "app_id": "s6BhdRkqt3",
//!     "app_key": "7Fjfp0ZBr1KtDRbnfVdmIw",
//!     "users": [ {
//!       "user_id": "4b2d1c9a-user",
//!       "phone_number": "+447401101801",
//!       "login_name": "alice",
//!       "email_address": "alice@example.com",
//!       "phone_verified": false,
//!       "disabled": false,
//!       "access_tokens": ["ht5fpHQAyrPPwLftK1rAqllv5WNVPCnYfPiCvPocFuQ"]
//!     } ]
//! } ] }
//! ```
//!
//! Only `app_id`, `app_key`, `user_id` and `phone_number` are required.
//! Each app verifies codes under its own otpflow purpose, so two apps never
//! share codes or budgets. `phone_verified` in the file is where a user
//! starts; a number verified through the service is a fact in the
//! configured store ([`crate::facts`]), seen by every process on it.

use std::collections::HashMap;

use otpflow::{PhoneNumber, Purpose};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Why the apps file was refused.
#[derive(Debug)]
#[non_exhaustive]
pub enum KiiError {
    /// The file could not be read.
    Read(std::io::Error),
    /// The JSON is not of the documented shape.
    Json(serde_json::Error),
    /// A user's `phone_number` is not a valid mobile number (user id given).
    Phone(String),
    /// An app id or user id appears twice, or is empty.
    Duplicate(String),
}

impl std::fmt::Display for KiiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Read(e) => write!(f, "cannot read the Kii apps file: {e}"),
            Self::Json(e) => write!(f, "the Kii apps file is not of the documented shape: {e}"),
            Self::Phone(user) => write!(f, "user {user:?} has an invalid phone_number"),
            Self::Duplicate(id) => write!(f, "id {id:?} is empty or appears twice"),
        }
    }
}

impl std::error::Error for KiiError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AppsFile {
    apps: Vec<AppEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AppEntry {
    app_id: String,
    app_key: String,
    #[serde(default)]
    users: Vec<UserEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserEntry {
    user_id: String,
    phone_number: String,
    #[serde(default)]
    login_name: Option<String>,
    #[serde(default)]
    email_address: Option<String>,
    #[serde(default)]
    phone_verified: bool,
    #[serde(default)]
    disabled: bool,
    #[serde(default)]
    access_tokens: Vec<String>,
}

/// A Kii user.
#[derive(Clone, Debug)]
pub struct User {
    /// Kii's user id.
    pub user_id: String,
    /// The user's phone number.
    pub phone: PhoneNumber,
    /// Login name, if any.
    pub login_name: Option<String>,
    /// Email address, if any.
    pub email_address: Option<String>,
    /// Whether the file says the phone number is verified.
    pub phone_verified: bool,
    /// Whether the user is disabled.
    pub disabled: bool,
}

/// One Kii app.
pub struct App {
    key: String,
    purpose: Purpose,
    users: Vec<User>,
    /// SHA-256 of each access token → user id.
    tokens: HashMap<[u8; 32], String>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("purpose", &self.purpose)
            .finish_non_exhaustive()
    }
}

/// How a user is named in a path: `{accountType}:{address}`, a user id, or
/// `me`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// `PHONE:+447401101801`.
    Phone(String),
    /// `LOGIN_NAME:alice`.
    LoginName(String),
    /// `EMAIL:alice@example.com`.
    Email(String),
    /// A user id.
    UserId(String),
    /// `me`: the Bearer token's user.
    Me,
}

impl Lookup {
    /// Reads the path segment.
    pub fn parse(segment: &str) -> Self {
        match segment.split_once(':') {
            Some(("PHONE", a)) => Self::Phone(a.to_owned()),
            Some(("LOGIN_NAME", a)) => Self::LoginName(a.to_owned()),
            Some(("EMAIL", a)) => Self::Email(a.to_owned()),
            _ if segment == "me" => Self::Me,
            _ => Self::UserId(segment.to_owned()),
        }
    }

    /// Kii's `field` and `value` for a `USER_NOT_FOUND` answer.
    pub fn field_value(&self) -> (&'static str, &str) {
        match self {
            Self::Phone(a) => ("phoneNumber", a),
            Self::LoginName(a) => ("loginName", a),
            Self::Email(a) => ("emailAddress", a),
            Self::UserId(a) => ("userID", a),
            Self::Me => ("userID", "me"),
        }
    }

    /// Kii's `accountType` for this lookup.
    pub fn account_type(&self) -> &'static str {
        match self {
            Self::LoginName(_) => "LOGIN_NAME",
            Self::Email(_) => "EMAIL",
            _ => "PHONE",
        }
    }
}

/// Who a request authenticates as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    /// `Basic` with the app's id and key: anonymous app access.
    App,
    /// `Bearer` with a user's access token.
    User(String),
}

fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl App {
    /// The app's otpflow purpose (`kii-` and 24 hex digits of the app id's
    /// SHA-256).
    pub fn purpose(&self) -> &Purpose {
        &self.purpose
    }

    /// Checks an `Authorization` header value for this app.
    pub fn authenticate(&self, app_id: &str, authorization: &str) -> Option<Caller> {
        use base64::Engine as _;
        if let Some(basic) = authorization.strip_prefix("Basic ") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(basic.trim())
                .ok()?;
            let text = String::from_utf8(decoded).ok()?;
            let (id, key) = text.split_once(':')?;
            let ok = id == app_id
                && key.len() == self.key.len()
                && bool::from(key.as_bytes().ct_eq(self.key.as_bytes()));
            return ok.then_some(Caller::App);
        }
        let bearer = authorization.strip_prefix("Bearer ")?.trim();
        self.tokens
            .get(&token_hash(bearer))
            .map(|u| Caller::User(u.clone()))
    }

    /// Finds a user.
    pub fn find(&self, lookup: &Lookup, caller: &Caller) -> Option<&User> {
        let policy = crate::app::international();
        self.users.iter().find(|u| match lookup {
            Lookup::Phone(a) => PhoneNumber::parse(a, &policy).is_ok_and(|p| p == u.phone),
            Lookup::LoginName(a) => u.login_name.as_deref() == Some(a),
            Lookup::Email(a) => u
                .email_address
                .as_deref()
                .is_some_and(|e| e.eq_ignore_ascii_case(a)),
            Lookup::UserId(a) => &u.user_id == a,
            Lookup::Me => matches!(caller, Caller::User(id) if *id == u.user_id),
        })
    }

    /// Whether the file says another user of the app has `phone` verified.
    pub fn verified_by_other_in_file(&self, user_id: &str, phone: &PhoneNumber) -> bool {
        self.users
            .iter()
            .any(|u| u.user_id != user_id && u.phone_verified && u.phone == *phone)
    }
}

/// Every Kii app, by id.
#[derive(Debug, Default)]
pub struct KiiDirectory {
    apps: HashMap<String, App>,
}

impl KiiDirectory {
    /// No apps.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Parses the documented JSON shape.
    ///
    /// # Errors
    /// [`KiiError`] naming what is wrong.
    pub fn from_json(text: &str) -> Result<Self, KiiError> {
        let file: AppsFile = serde_json::from_str(text).map_err(KiiError::Json)?;
        let policy = crate::app::international();
        let mut apps = HashMap::new();
        for entry in file.apps {
            if entry.app_id.is_empty() || apps.contains_key(&entry.app_id) {
                return Err(KiiError::Duplicate(entry.app_id));
            }
            let digest = Sha256::digest(entry.app_id.as_bytes());
            let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
            let purpose = Purpose::custom(&format!("kii-{hex}"))
                .map_err(|_| KiiError::Duplicate(entry.app_id.clone()))?;
            let mut users: Vec<User> = Vec::new();
            let mut tokens = HashMap::new();
            for u in entry.users {
                if u.user_id.is_empty() || users.iter().any(|x| x.user_id == u.user_id) {
                    return Err(KiiError::Duplicate(u.user_id));
                }
                let phone = PhoneNumber::parse(&u.phone_number, &policy)
                    .map_err(|_| KiiError::Phone(u.user_id.clone()))?;
                for t in &u.access_tokens {
                    tokens.insert(token_hash(t), u.user_id.clone());
                }
                users.push(User {
                    user_id: u.user_id,
                    phone,
                    login_name: u.login_name,
                    email_address: u.email_address,
                    phone_verified: u.phone_verified,
                    disabled: u.disabled,
                });
            }
            apps.insert(
                entry.app_id,
                App {
                    key: entry.app_key,
                    purpose,
                    users,
                    tokens,
                },
            );
        }
        Ok(Self { apps })
    }

    /// The app with this id.
    pub fn app(&self, app_id: &str) -> Option<&App> {
        self.apps.get(app_id)
    }
}
