//! Virtual keys: what one is (name, allowed models, limits, budget, expiry, metadata), how its
//! secret is made and stored (only a SHA-256 hash and a short prefix for recognition), and the
//! [`KeyStore`] trait with its in-memory implementation. The SQL store is in
//! [`crate::db::SqlKeyStore`].

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::usage::{StoreError, StoreFuture};

/// What every plaintext virtual key starts with, so the gateway knows which bearer tokens to
/// look up (any other token is the master key or nothing).
pub const KEY_PREFIX: &str = "sk-pg-";

/// Characters of the plaintext kept for recognition (`sk-pg-AbCd`).
const SHOWN: usize = KEY_PREFIX.len() + 4;

/// How a budget renews.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    /// Every UTC day at midnight.
    Daily,
    /// On the first of every month (UTC).
    Monthly,
    /// Never: the budget is for the key's whole life.
    Total,
}

impl Period {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Daily => "daily",
            Self::Monthly => "monthly",
            Self::Total => "total",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "daily" => Some(Self::Daily),
            "monthly" => Some(Self::Monthly),
            "total" => Some(Self::Total),
            _ => None,
        }
    }

    /// The start of the period that holds `now_ms`, and the start of the next one (none for
    /// `total`), both in ms since the epoch, UTC.
    pub fn bounds(self, now_ms: i64) -> (i64, Option<i64>) {
        const DAY: i64 = 86_400_000;
        match self {
            Self::Total => (0, None),
            Self::Daily => {
                let start = now_ms.div_euclid(DAY) * DAY;
                (start, Some(start + DAY))
            }
            Self::Monthly => {
                let t = time::OffsetDateTime::from_unix_timestamp(now_ms.div_euclid(1000))
                    .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
                let (y, m) = (t.year(), t.month());
                let start = month_start(y, m);
                let (ny, nm) = if m == time::Month::December {
                    (y + 1, time::Month::January)
                } else {
                    (y, m.next())
                };
                (start, Some(month_start(ny, nm)))
            }
        }
    }
}

fn month_start(year: i32, month: time::Month) -> i64 {
    time::Date::from_calendar_date(year, month, 1)
        .map(|d| d.midnight().assume_utc().unix_timestamp() * 1000)
        .unwrap_or(0)
}

/// One virtual key, as stored (the plaintext is never kept).
#[derive(Clone, Debug, PartialEq)]
pub struct VirtualKey {
    /// Stable id (`key_…`), used in usage records and the admin API.
    pub id: Arc<str>,
    /// A human name.
    pub name: String,
    /// Hex SHA-256 of the plaintext key.
    pub hash: String,
    /// The first characters of the plaintext, for recognition.
    pub prefix: String,
    /// Allowed models as globs (`groq/*`, `gpt-4o*`); empty allows every model.
    pub models: Vec<String>,
    /// Requests per minute; `None` is no limit.
    pub rpm: Option<u64>,
    /// Tokens per minute (prompt estimate + `max_tokens`); `None` is no limit.
    pub tpm: Option<u64>,
    /// Spend allowed per period, USD; `None` is no limit.
    pub budget_usd: Option<f64>,
    /// How the budget renews (`total` when a budget is set without one).
    pub budget_period: Option<Period>,
    /// When the key stops working, ms since the epoch.
    pub expires_at_ms: Option<i64>,
    /// Free-form JSON the operator attached (team, owner...).
    pub metadata: serde_json::Value,
    /// When it was made, ms since the epoch.
    pub created_at_ms: i64,
}

impl VirtualKey {
    /// Whether `model` (as the client sent it, or a deployment id) is allowed.
    pub fn allows_model(&self, model: &str) -> bool {
        self.models.is_empty() || self.models.iter().any(|g| glob_match(g, model))
    }

    /// Whether the key has expired at `now_ms`.
    pub fn expired(&self, now_ms: i64) -> bool {
        self.expires_at_ms.is_some_and(|e| e <= now_ms)
    }

    /// The admin API's view: everything but the hash.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": &*self.id,
            "object": "virtual_key",
            "name": self.name,
            "key_prefix": self.prefix,
            "models": self.models,
            "rpm": self.rpm,
            "tpm": self.tpm,
            "budget_usd": self.budget_usd,
            "budget_period": self.budget_usd.map(|_| self.budget_period.unwrap_or(Period::Total).as_str()),
            "expires_at": self.expires_at_ms.map(rfc3339_ms),
            "metadata": self.metadata,
            "created_at": rfc3339_ms(self.created_at_ms),
        })
    }
}

/// `ms` as RFC 3339 UTC.
pub fn rfc3339_ms(ms: i64) -> String {
    crate::usage::rfc3339_ms(ms)
}

/// Whether `name` matches `glob`, where `*` matches any run of characters (`/` included) and
/// `?` any one character.
pub fn glob_match(glob: &str, name: &str) -> bool {
    let (g, n) = (glob.as_bytes(), name.as_bytes());
    let (mut gi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if gi < g.len() && (g[gi] == b'?' || g[gi] == n[ni]) {
            gi += 1;
            ni += 1;
        } else if gi < g.len() && g[gi] == b'*' {
            star = Some((gi, ni));
            gi += 1;
        } else if let Some((sg, sn)) = star {
            gi = sg + 1;
            ni = sn + 1;
            star = Some((sg, sn + 1));
        } else {
            return false;
        }
    }
    g[gi..].iter().all(|&c| c == b'*')
}

/// Hex SHA-256 of a plaintext key.
pub fn hash_key(plaintext: &str) -> String {
    let digest = Sha256::digest(plaintext.as_bytes());
    let mut out = String::with_capacity(64);
    for b in digest {
        use std::fmt::Write;
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// A fresh plaintext key (`sk-pg-` + 43 URL-safe characters, 256 bits) and its shown prefix.
pub fn generate_key() -> (String, String) {
    use base64::Engine;
    let bytes: [u8; 32] = rand::random();
    let plaintext = format!(
        "{KEY_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let shown = plaintext[..SHOWN].to_owned();
    (plaintext, shown)
}

/// A fresh key id.
pub fn generate_id() -> Arc<str> {
    format!("key_{}", uuid::Uuid::new_v4().simple()).into()
}

/// Where virtual keys live: memory, SQLite or Postgres. Lookups on the request path go through
/// [`Keys`](super::Keys), which caches them.
pub trait KeyStore: Send + Sync + 'static {
    /// Stores a new key.
    fn insert<'a>(&'a self, key: &'a VirtualKey) -> StoreFuture<'a, ()>;
    /// The key whose hash is `hash`.
    fn by_hash<'a>(&'a self, hash: &'a str) -> StoreFuture<'a, Option<VirtualKey>>;
    /// The key with this id.
    fn get<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<VirtualKey>>;
    /// Every key, oldest first.
    fn list(&self) -> StoreFuture<'_, Vec<VirtualKey>>;
    /// Replaces the stored key of the same id; false when there is none.
    fn update<'a>(&'a self, key: &'a VirtualKey) -> StoreFuture<'a, bool>;
    /// Deletes the key; false when there was none.
    fn delete<'a>(&'a self, id: &'a str) -> StoreFuture<'a, bool>;
    /// `memory`, `sqlite` or `postgres`.
    fn kind(&self) -> &'static str;
}

/// Keys in process memory (`USAGE_DB_PATH=:memory:`): gone at exit.
#[derive(Debug, Default)]
pub struct MemoryKeyStore {
    keys: Mutex<Vec<VirtualKey>>,
}

impl MemoryKeyStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut Vec<VirtualKey>) -> T) -> Result<T, StoreError> {
        let mut keys = self
            .keys
            .lock()
            .map_err(|_| StoreError("key store lock poisoned".into()))?;
        Ok(f(&mut keys))
    }
}

impl KeyStore for MemoryKeyStore {
    fn insert<'a>(&'a self, key: &'a VirtualKey) -> StoreFuture<'a, ()> {
        Box::pin(async move { self.with(|k| k.push(key.clone())) })
    }

    fn by_hash<'a>(&'a self, hash: &'a str) -> StoreFuture<'a, Option<VirtualKey>> {
        Box::pin(async move { self.with(|k| k.iter().find(|v| v.hash == hash).cloned()) })
    }

    fn get<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<VirtualKey>> {
        Box::pin(async move { self.with(|k| k.iter().find(|v| &*v.id == id).cloned()) })
    }

    fn list(&self) -> StoreFuture<'_, Vec<VirtualKey>> {
        Box::pin(async move { self.with(|k| k.clone()) })
    }

    fn update<'a>(&'a self, key: &'a VirtualKey) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            self.with(|k| match k.iter_mut().find(|v| v.id == key.id) {
                Some(slot) => {
                    *slot = key.clone();
                    true
                }
                None => false,
            })
        })
    }

    fn delete<'a>(&'a self, id: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            self.with(|k| {
                let before = k.len();
                k.retain(|v| &*v.id != id);
                k.len() != before
            })
        })
    }

    fn kind(&self) -> &'static str {
        "memory"
    }
}

/// The body of `POST /admin/keys` and `PATCH /admin/keys/{id}`. Every field is optional; in a
/// PATCH, a field sent as `null` removes that limit and a field left out keeps it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySpec {
    /// Human name.
    #[serde(default)]
    pub name: Option<String>,
    /// Allowed model globs.
    #[serde(default, deserialize_with = "present")]
    pub models: Option<Option<Vec<String>>>,
    /// Requests per minute.
    #[serde(default, deserialize_with = "present")]
    pub rpm: Option<Option<u64>>,
    /// Tokens per minute.
    #[serde(default, deserialize_with = "present")]
    pub tpm: Option<Option<u64>>,
    /// USD per period.
    #[serde(default, deserialize_with = "present")]
    pub budget_usd: Option<Option<f64>>,
    /// `daily`, `monthly` or `total`.
    #[serde(default, deserialize_with = "present")]
    pub budget_period: Option<Option<Period>>,
    /// RFC 3339 UTC.
    #[serde(default, deserialize_with = "present")]
    pub expires_at: Option<Option<String>>,
    /// Free-form JSON object.
    #[serde(default, deserialize_with = "present")]
    pub metadata: Option<Option<serde_json::Value>>,
}

/// Tells a field sent as `null` (`Some(None)`) from one left out (`None`).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

impl KeySpec {
    /// Applies the spec to `key` (a fresh one for POST), validating each field; the error
    /// names the field.
    pub fn apply(self, key: &mut VirtualKey) -> Result<(), crate::GatewayError> {
        use crate::GatewayError as E;
        if let Some(name) = self.name {
            if name.len() > 200 {
                return Err(E::invalid("name", "is longer than 200 characters"));
            }
            key.name = name;
        }
        if let Some(models) = self.models {
            let models = models.unwrap_or_default();
            if models.iter().any(|m| m.is_empty() || m.len() > 200) {
                return Err(E::invalid(
                    "models",
                    "holds an empty or overlong glob; use e.g. [\"groq/*\", \"gpt-4o-mini\"]",
                ));
            }
            key.models = models;
        }
        if let Some(rpm) = self.rpm {
            key.rpm = rpm;
        }
        if let Some(tpm) = self.tpm {
            key.tpm = tpm;
        }
        if let Some(budget) = self.budget_usd {
            if budget.is_some_and(|b| !b.is_finite() || b < 0.0) {
                return Err(E::invalid("budget_usd", "must be a number of USD >= 0"));
            }
            key.budget_usd = budget;
        }
        if let Some(period) = self.budget_period {
            key.budget_period = period;
        }
        if let Some(expires) = self.expires_at {
            key.expires_at_ms = match expires {
                None => None,
                Some(s) => Some(
                    time::OffsetDateTime::parse(&s, &time::format_description::well_known::Rfc3339)
                        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
                        .map_err(|_| {
                            E::invalid(
                                "expires_at",
                                format!(
                                    "{s:?} is not an RFC 3339 UTC time such as 2027-01-01T00:00:00Z"
                                ),
                            )
                        })?,
                ),
            };
        }
        if let Some(meta) = self.metadata {
            let meta = meta.unwrap_or(serde_json::Value::Null);
            if !(meta.is_object() || meta.is_null()) {
                return Err(E::invalid("metadata", "must be a JSON object"));
            }
            key.metadata = meta;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_provider_prefixes_and_exact_names() {
        assert!(glob_match("groq/*", "groq/llama-3.1-8b-instant"));
        assert!(!glob_match("groq/*", "openai/gpt-4o"));
        assert!(glob_match("gpt-4o*", "gpt-4o-mini"));
        assert!(glob_match("*", "anything/at-all"));
        assert!(glob_match("mock/ech?", "mock/echo"));
        assert!(!glob_match("mock/echo", "mock/echo2"));
        assert!(glob_match("*/llama-*", "together/llama-3.1-70b"));
    }

    #[test]
    fn keys_are_random_and_hashed() {
        let (a, shown) = generate_key();
        let (b, _) = generate_key();
        assert_ne!(a, b);
        assert!(a.starts_with(KEY_PREFIX) && a.starts_with(&shown) && shown.len() == 10);
        assert_eq!(hash_key(&a).len(), 64);
        assert_ne!(hash_key(&a), hash_key(&b));
    }

    #[test]
    fn periods_start_at_utc_midnight_and_the_first_of_the_month() {
        // 2026-12-01T13:48:28Z
        let now = 1_796_132_908_000;
        let (start, next) = Period::Daily.bounds(now);
        assert_eq!(rfc3339_ms(start), "2026-12-01T00:00:00Z");
        assert_eq!(rfc3339_ms(next.unwrap()), "2026-12-02T00:00:00Z");
        let (start, next) = Period::Monthly.bounds(now);
        assert_eq!(rfc3339_ms(start), "2026-12-01T00:00:00Z");
        assert_eq!(rfc3339_ms(next.unwrap()), "2027-01-01T00:00:00Z");
        assert_eq!(Period::Total.bounds(now), (0, None));
    }

    #[test]
    fn a_spec_left_empty_sets_no_limit_and_null_removes_one() {
        let mut k = VirtualKey {
            id: "key_x".into(),
            name: String::new(),
            hash: String::new(),
            prefix: String::new(),
            models: vec![],
            rpm: Some(5),
            tpm: None,
            budget_usd: None,
            budget_period: None,
            expires_at_ms: None,
            metadata: serde_json::Value::Null,
            created_at_ms: 0,
        };
        let spec: KeySpec = serde_json::from_str(r#"{"name":"ci"}"#).unwrap();
        spec.apply(&mut k).unwrap();
        assert_eq!((k.name.as_str(), k.rpm), ("ci", Some(5)));
        let spec: KeySpec =
            serde_json::from_str(r#"{"rpm":null,"expires_at":"2027-01-01T00:00:00Z"}"#).unwrap();
        spec.apply(&mut k).unwrap();
        assert_eq!(k.rpm, None);
        assert_eq!(k.expires_at_ms, Some(1_798_761_600_000));
        let spec: KeySpec = serde_json::from_str(r#"{"expires_at":"tomorrow"}"#).unwrap();
        assert!(
            matches!(spec.apply(&mut k), Err(crate::GatewayError::InvalidRequest { field, .. }) if field == "expires_at")
        );
    }
}
