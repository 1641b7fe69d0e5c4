//! Configuration: defaults < `proxygate.toml` < environment (with `.env`) < CLI flags.
//!
//! This is the only code that reads env, files or flags. Every key is parsed, then *all* the
//! bad ones are reported together, each naming its key and the fix ([`ConfigError`]).

pub mod env;
pub mod file;
mod layers;
pub mod routes;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use env::*;

use crate::catalog::models::mock::{
    ENV_MOCK_CHUNK_DELAY_MS, ENV_MOCK_FAILURE_RATE, ENV_MOCK_LATENCY_MS,
};
use crate::catalog::{Catalog, Enable};
use crate::providers::ProviderSettings;
use crate::router::{Routes, Strategy};
use crate::types::Secret;

/// Every setting, validated.
#[derive(Clone, Debug)]
pub struct Config {
    /// Bind address.
    pub host: IpAddr,
    /// Listen port.
    pub port: u16,
    /// Gateway master key.
    pub master_key: Option<Secret>,
    /// Routing strategy.
    pub strategy: Strategy,
    /// `PROVIDER_PRIORITY` entries.
    pub priority: Vec<String>,
    /// Weights for the weighted strategy, by provider or deployment.
    pub weights: HashMap<String, u32>,
    /// Failover on retryable errors.
    pub failover_enabled: bool,
    /// Failover may leave the tier of the first choice.
    pub failover_cross_tier: bool,
    /// Attempts after the first.
    pub max_retries: u32,
    /// Consecutive failures that open a circuit.
    pub breaker_threshold: u32,
    /// How long an open circuit waits before a probe.
    pub breaker_cooldown: Duration,
    /// Concurrent probes allowed in half-open.
    pub breaker_half_open_probes: u32,
    /// Per attempt, until the upstream's answer (or first chunk) arrives.
    pub request_timeout: Duration,
    /// Overall, across attempts.
    pub overall_timeout: Duration,
    /// Between two chunks of a stream.
    pub stream_idle_timeout: Duration,
    /// Request body limit.
    pub max_body_bytes: usize,
    /// Shutdown drain bound.
    pub shutdown_grace: Duration,
    /// Configured providers, by name.
    pub providers: HashMap<&'static str, ProviderSettings>,
    /// Postgres for usage and keys (`DATABASE_URL`); SQLite at `usage_db_path` when unset.
    pub database_url: Option<Secret>,
    /// The SQLite file, or `:memory:`.
    pub usage_db_path: String,
    /// The usage journal's directory; `None` when turned off.
    pub usage_journal_dir: Option<PathBuf>,
    /// How often queued usage records reach the store.
    pub usage_flush: Duration,
    /// Usage records held in memory at most.
    pub usage_queue_capacity: usize,
    /// `fsync` the journal per record.
    pub usage_fsync: bool,
    /// Price overrides by `provider/model`.
    pub rate_overrides: HashMap<String, crate::catalog::Rate>,
    /// Cost free tiers at list prices.
    pub bill_free_tiers: bool,
    /// Redis for shared state (`REDIS_URL`); in-process state when unset.
    pub redis_url: Option<Secret>,
    /// Prefix of every Redis key.
    pub redis_prefix: String,
    /// Bound of one Redis command.
    pub redis_timeout: Duration,
    /// How often circuit and latency state is exchanged with Redis.
    pub state_sync_interval: Duration,
    /// The response cache is on.
    pub cache_enabled: bool,
    /// How long a cached answer is served.
    pub cache_ttl: Duration,
    /// Bound of the in-process cache in bytes.
    pub cache_max_bytes: u64,
    /// Gateway-wide rate limits.
    pub global_limits: crate::access::GlobalLimits,
    /// Requests in flight at most (load shedding beyond).
    pub max_inflight: usize,
    /// Request header bytes at most.
    pub max_header_bytes: usize,
    /// Days a stored response of `/v1/responses` stays readable.
    pub responses_ttl_days: u64,
    /// Extra `Host` names an open gateway answers to (`ALLOWED_HOSTS`).
    pub allowed_hosts: Vec<String>,
    /// Origins allowed to call from a browser (`CORS_ALLOWED_ORIGINS`; `*` for any).
    pub cors_allowed_origins: Vec<String>,
    /// Pass-through model ids tracked by name at most (`MAX_PASSTHROUGH_MODELS`).
    pub max_passthrough_models: usize,
    /// Cached answers shared between callers (`CACHE_SHARED`).
    pub cache_shared: bool,
    /// Bound on reading a request's headers (`HEADER_READ_TIMEOUT_MS`).
    pub header_read_timeout: Duration,
    /// Bound on reading a request's body (`BODY_READ_TIMEOUT_MS`).
    pub body_read_timeout: Duration,
    /// Open connections at most (`MAX_CONNECTIONS`).
    pub max_connections: usize,
    /// Bound on a streaming client that stopped reading (`CLIENT_WRITE_TIMEOUT_MS`).
    pub client_write_timeout: Duration,
    /// The config file's own deployments, model groups and parameter rules.
    pub routes: Routes,
    /// Where the configuration was read from, so a reload can read it again (none when it was
    /// built in code).
    pub source: Option<ConfigSource>,
}

/// What [`Config::load`] read: the CLI overrides and the config file's path.
#[derive(Clone, Default)]
pub struct ConfigSource {
    /// The flags given on the command line, as env-style keys.
    pub overrides: HashMap<String, String>,
    /// `--config` / `PROXYGATE_CONFIG`, when given.
    pub path: Option<PathBuf>,
}

impl std::fmt::Debug for ConfigSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Flags may carry secrets: their names only.
        let mut flags: Vec<&String> = self.overrides.keys().collect();
        flags.sort();
        f.debug_struct("ConfigSource")
            .field("overrides", &flags)
            .field("path", &self.path)
            .finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        Self::from_env(&HashMap::<String, String>::new(), Catalog::default())
            .expect("defaults are valid")
    }
}

/// All the problems found in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// One line per bad key, naming it and the fix.
    pub problems: Vec<String>,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "invalid configuration:")?;
        for p in &self.problems {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

struct Reader<'a> {
    src: &'a dyn EnvSource,
    problems: Vec<String>,
}

impl Reader<'_> {
    fn get(&self, key: &str) -> Option<String> {
        self.src.get(key).filter(|v| !v.trim().is_empty())
    }

    fn parse<T>(
        &mut self,
        key: &str,
        default: T,
        f: impl Fn(&str, &str) -> Result<T, String>,
    ) -> T {
        match self.get(key) {
            None => default,
            Some(v) => f(key, &v).unwrap_or_else(|e| {
                self.problems.push(e);
                default
            }),
        }
    }
}

impl Config {
    /// Reads and validates every key from `src`.
    pub fn from_env(src: &dyn EnvSource, catalog: Catalog) -> Result<Self, ConfigError> {
        let mut r = Reader {
            src,
            problems: Vec::new(),
        };
        let host = r.parse(ENV_HOST, IpAddr::from([127, 0, 0, 1]), |k, v| {
            let v = if v.trim() == "localhost" {
                "127.0.0.1"
            } else {
                v.trim()
            };
            v.parse::<IpAddr>().map_err(|_| {
                format!("{k}={v:?} is not an IP address; use e.g. {k}=127.0.0.1 or {k}=0.0.0.0")
            })
        });
        let port = r.parse(ENV_PORT, 3333, parse_port);
        let master_key = r.get(ENV_MASTER_KEY).map(|k| Secret::new(k.trim()));
        let allow_open = r.parse(ENV_ALLOW_OPEN, false, parse_bool);
        if !host.is_loopback() && master_key.is_none() && !allow_open {
            r.problems.push(format!(
                "{ENV_HOST}={host} exposes the gateway beyond this machine without a key; set {ENV_MASTER_KEY}, or pass --allow-open ({ENV_ALLOW_OPEN}=true) to run it open"
            ));
        }
        let strategy = r.parse(ENV_ROUTING_STRATEGY, Strategy::Priority, Strategy::parse);
        let priority = r
            .get(ENV_PROVIDER_PRIORITY)
            .map(|v| parse_list(&v))
            .unwrap_or_default();
        let weights = r.parse(ENV_ROUTING_WEIGHTS, HashMap::new(), |k, v| {
            parse_list(v)
                .into_iter()
                .map(|pair| {
                    let (name, w) = pair
                        .split_once('=')
                        .ok_or_else(|| format!("{k}: {pair:?} is not name=weight"))?;
                    let w = w.trim().parse::<u32>().map_err(|_| {
                        format!("{k}: weight {w:?} of {name} is not a whole number")
                    })?;
                    Ok((name.trim().to_owned(), w))
                })
                .collect()
        });
        let failover_enabled = r.parse(ENV_FAILOVER_ENABLED, true, parse_bool);
        let failover_cross_tier = r.parse(ENV_FAILOVER_CROSS_TIER, false, parse_bool);
        let max_retries = r.parse(ENV_MAX_RETRIES, 3, |k, v| {
            parse_u64(k, v).map(|n| n.min(100) as u32)
        });
        let breaker_threshold = r.parse(ENV_CB_THRESHOLD, 5, |k, v| match parse_u64(k, v)? {
            0 => Err(format!("{k}=0 would never close a circuit; use 1 or more")),
            n => Ok(n.min(u32::MAX as u64) as u32),
        });
        let breaker_cooldown = r.parse(ENV_CB_COOLDOWN_MS, Duration::from_millis(30_000), parse_ms);
        let breaker_half_open_probes =
            r.parse(ENV_CB_HALF_OPEN_PROBES, 1, |k, v| match parse_u64(k, v)? {
                0 => Err(format!("{k}=0 would never probe; use 1 or more")),
                n => Ok(n.min(1000) as u32),
            });
        let request_timeout = r.parse(
            ENV_REQUEST_TIMEOUT_MS,
            Duration::from_millis(60_000),
            nonzero_ms,
        );
        let overall_timeout = r.parse(
            ENV_OVERALL_TIMEOUT_MS,
            Duration::from_millis(180_000),
            nonzero_ms,
        );
        let stream_idle_timeout = r.parse(
            ENV_STREAM_IDLE_TIMEOUT_MS,
            Duration::from_millis(60_000),
            nonzero_ms,
        );
        let max_body_bytes = r.parse(ENV_MAX_BODY_BYTES, 10 * 1024 * 1024, |k, v| {
            parse_u64(k, v).map(|n| n as usize)
        });
        let shutdown_grace = r.parse(
            ENV_SHUTDOWN_GRACE_MS,
            Duration::from_millis(10_000),
            parse_ms,
        );
        // Validated here so a bad value is reported with the rest; the mock reads them itself.
        let _ = r.parse(ENV_MOCK_LATENCY_MS, Duration::ZERO, parse_ms);
        let _ = r.parse(ENV_MOCK_CHUNK_DELAY_MS, Duration::ZERO, parse_ms);
        let _ = r.parse(ENV_MOCK_FAILURE_RATE, 0.0, parse_rate);

        let mut providers = HashMap::new();
        for spec in catalog.providers() {
            let keys: Vec<Secret> = spec
                .key_env
                .iter()
                .find_map(|k| r.get(k))
                .map(|v| parse_list(&v).into_iter().map(Secret::new).collect())
                .unwrap_or_default();
            let base_override = r.get(spec.base_url_env);
            let enabled = match spec.enabled_by {
                Enable::Key => !keys.is_empty(),
                Enable::BaseUrl => base_override.is_some(),
                Enable::Always => true,
            };
            if !enabled {
                continue;
            }
            let base_url = base_override
                .unwrap_or_else(|| spec.base_url.to_owned())
                .trim()
                .trim_end_matches('/')
                .to_owned();
            if !(base_url.starts_with("http://") || base_url.starts_with("https://"))
                || base_url.parse::<http::Uri>().is_err()
            {
                r.problems.push(format!(
                    "{}={base_url:?} is not an http:// or https:// URL",
                    spec.base_url_env
                ));
                continue;
            }
            let extra = spec
                .extra_env
                .iter()
                .filter_map(|k| r.get(k).map(|v| ((*k).to_owned(), v)))
                .collect();
            providers.insert(
                spec.name,
                ProviderSettings {
                    keys,
                    base_url,
                    extra,
                },
            );
        }
        let database_url = r.parse(ENV_DATABASE_URL, None, |k, v| {
            let v = v.trim();
            if v.starts_with("postgres://") || v.starts_with("postgresql://") || v.starts_with("sqlite:") {
                Ok(Some(Secret::new(v)))
            } else {
                Err(format!("{k} must be a postgres:// URL (or sqlite:path); unset it to use the SQLite file in {ENV_USAGE_DB_PATH}"))
            }
        });
        let usage_db_path = r
            .get(ENV_USAGE_DB_PATH)
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| "proxygate.db".to_owned());
        let usage_journal_dir = match r.get(ENV_USAGE_JOURNAL_DIR) {
            Some(v) if matches!(v.trim(), "off" | "none" | "false") => None,
            Some(v) => Some(PathBuf::from(v.trim())),
            None => Some(PathBuf::from("proxygate-journal")),
        };
        let usage_flush = r.parse(ENV_USAGE_FLUSH_MS, Duration::from_millis(100), nonzero_ms);
        // With a journal, records beyond the in-memory queue wait in it and are read back, so
        // the queue only bounds memory (a store slower than a saturated core fills it); without
        // one, the queue is all there is before records are dropped.
        let queue_default = if usage_journal_dir.is_some() {
            10_000
        } else {
            100_000
        };
        let usage_queue_capacity =
            r.parse(
                ENV_USAGE_QUEUE_CAPACITY,
                queue_default,
                |k, v| match parse_u64(k, v)? {
                    0 => Err(format!("{k}=0 would hold no record; use 1 or more")),
                    n => Ok(n.min(10_000_000) as usize),
                },
            );
        let usage_fsync = r.parse(ENV_USAGE_FSYNC, false, parse_bool);
        let rate_overrides = r.parse(ENV_RATE_OVERRIDES, HashMap::new(), |k, v| {
            parse_list(v)
                .into_iter()
                .map(|pair| {
                    let (model, rate) = pair.split_once('=').ok_or_else(|| {
                        format!("{k}: {pair:?} is not provider/model=input/output[/cached_input[/cache_write[/cache_write_1h]]]")
                    })?;
                    let rate = crate::catalog::Rate::parse(rate)
                        .map_err(|e| format!("{k}: {}: {e}", model.trim()))?;
                    Ok((model.trim().to_owned(), rate))
                })
                .collect()
        });
        let bill_free_tiers = r.parse(ENV_BILL_FREE_TIERS, false, parse_bool);
        let redis_url = r.parse(ENV_REDIS_URL, None, |k, v| {
            let v = v.trim();
            if v.starts_with("redis://") || v.starts_with("rediss://") || v.starts_with("unix://") {
                Ok(Some(Secret::new(v)))
            } else {
                Err(format!("{k} must be a redis:// URL such as redis://127.0.0.1:6379; unset it to keep state in process"))
            }
        });
        let redis_prefix = r
            .get(ENV_REDIS_PREFIX)
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| "proxygate".to_owned());
        let redis_timeout = r.parse(ENV_REDIS_TIMEOUT_MS, Duration::from_millis(250), nonzero_ms);
        let state_sync_interval =
            r.parse(ENV_STATE_SYNC_MS, Duration::from_millis(250), nonzero_ms);
        let cache_enabled = r.parse(ENV_CACHE_ENABLED, false, parse_bool);
        let cache_ttl = r.parse(ENV_CACHE_TTL_MS, Duration::from_secs(3600), nonzero_ms);
        let cache_max_bytes = r.parse(
            ENV_CACHE_MAX_BYTES,
            64 * 1024 * 1024,
            |k, v| match parse_u64(k, v)? {
                0 => Err(format!(
                    "{k}=0 would hold nothing; set {ENV_CACHE_ENABLED}=false to turn the cache off"
                )),
                n => Ok(n),
            },
        );
        let positive = |k: &str, v: &str| match parse_u64(k, v)? {
            0 => Err(format!(
                "{k}=0 would refuse everything; use 1 or more, or unset it"
            )),
            n => Ok(Some(n)),
        };
        let global_limits = crate::access::GlobalLimits {
            rpm: r.parse(ENV_RATE_LIMIT_RPM, None, positive),
            tpm: r.parse(ENV_RATE_LIMIT_TPM, None, positive),
        };
        let max_inflight = r.parse(ENV_MAX_INFLIGHT_REQUESTS, 10_000, |k, v| {
            positive(k, v).map(|n| n.unwrap_or(1).min(10_000_000) as usize)
        });
        let max_header_bytes = r.parse(ENV_MAX_HEADER_BYTES, 32 * 1024, |k, v| {
            match parse_u64(k, v)? {
                n if n < 1024 => Err(format!(
                    "{k}={n} is too small for ordinary clients; use 1024 or more (default 32768)"
                )),
                n => Ok(n.min(16 << 20) as usize),
            }
        });
        let responses_ttl_days = r.parse(ENV_RESPONSES_TTL_DAYS, 30, |k, v| {
            positive(k, v).map(|n| n.unwrap_or(30).min(3650))
        });
        let allowed_hosts = r
            .get(ENV_ALLOWED_HOSTS)
            .map(|v| {
                parse_list(&v)
                    .into_iter()
                    .map(|h| h.to_ascii_lowercase())
                    .collect()
            })
            .unwrap_or_default();
        let cors_allowed_origins = r.parse(ENV_CORS_ALLOWED_ORIGINS, Vec::new(), |k, v| {
            let list = parse_list(v);
            match list.iter().find(|o| {
                o.as_str() != "*" && !(o.starts_with("http://") || o.starts_with("https://"))
            }) {
                Some(bad) => Err(format!(
                    "{k} holds {bad:?}, not an origin; use e.g. {k}=https://app.example.com or {k}=*"
                )),
                None => Ok(list
                    .into_iter()
                    .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
                    .collect()),
            }
        });
        let max_passthrough_models = r.parse(ENV_MAX_PASSTHROUGH_MODELS, 256, |k, v| {
            Ok(parse_u64(k, v)?.min(100_000) as usize)
        });
        let cache_shared = r.parse(ENV_CACHE_SHARED, false, parse_bool);
        let header_read_timeout = r.parse(
            ENV_HEADER_READ_TIMEOUT_MS,
            Duration::from_secs(10),
            nonzero_ms,
        );
        let body_read_timeout = r.parse(
            ENV_BODY_READ_TIMEOUT_MS,
            Duration::from_secs(30),
            nonzero_ms,
        );
        let max_connections = r.parse(ENV_MAX_CONNECTIONS, 10_000, |k, v| {
            positive(k, v).map(|n| n.unwrap_or(1).min(10_000_000) as usize)
        });
        let client_write_timeout = r.parse(
            ENV_CLIENT_WRITE_TIMEOUT_MS,
            Duration::from_secs(60),
            nonzero_ms,
        );
        if let Some(unknown) = priority.iter().find(|p| p.is_empty()) {
            r.problems.push(format!(
                "{ENV_PROVIDER_PRIORITY} holds an empty entry {unknown:?}"
            ));
        }
        if !r.problems.is_empty() {
            return Err(ConfigError {
                problems: r.problems,
            });
        }
        Ok(Self {
            host,
            port,
            master_key,
            strategy,
            priority,
            weights,
            failover_enabled,
            failover_cross_tier,
            max_retries,
            breaker_threshold,
            breaker_cooldown,
            breaker_half_open_probes,
            request_timeout,
            overall_timeout,
            stream_idle_timeout,
            max_body_bytes,
            shutdown_grace,
            providers,
            database_url,
            usage_db_path,
            usage_journal_dir,
            usage_flush,
            usage_queue_capacity,
            usage_fsync,
            rate_overrides,
            bill_free_tiers,
            redis_url,
            redis_prefix,
            redis_timeout,
            state_sync_interval,
            cache_enabled,
            cache_ttl,
            cache_max_bytes,
            global_limits,
            max_inflight,
            max_header_bytes,
            responses_ttl_days,
            allowed_hosts,
            cors_allowed_origins,
            max_passthrough_models,
            cache_shared,
            header_read_timeout,
            body_read_timeout,
            max_connections,
            client_write_timeout,
            routes: Routes::default(),
            source: None,
        })
    }

    /// The same configuration with the config file's routing tables.
    pub fn with_routes(mut self, routes: Routes) -> Self {
        self.routes = routes;
        self
    }

    /// The usual sources: `overrides` (CLI flags), the process environment, `.env` in the
    /// working directory, then the config file (`--config`, `PROXYGATE_CONFIG` or
    /// `./proxygate.toml` when present).
    pub fn load(
        overrides: HashMap<String, String>,
        config_path: Option<PathBuf>,
    ) -> Result<Self, ConfigError> {
        let source = ConfigSource {
            overrides: overrides.clone(),
            path: config_path.clone(),
        };
        let dotenv: HashMap<String, String> = match dotenvy::from_path_iter(".env") {
            Ok(iter) => iter.filter_map(Result::ok).collect(),
            Err(_) => HashMap::new(),
        };
        let path = config_path
            .or_else(|| overrides.get(ENV_CONFIG).map(PathBuf::from))
            .or_else(|| std::env::var(ENV_CONFIG).ok().map(PathBuf::from))
            .or_else(|| dotenv.get(ENV_CONFIG).map(PathBuf::from));
        let table = match path {
            Some(p) => Some(file::read(&p).map_err(|e| ConfigError {
                problems: vec![format!("{e} (from --config / {ENV_CONFIG})")],
            })?),
            None if Path::new("proxygate.toml").exists() => Some(
                file::read(Path::new("proxygate.toml"))
                    .map_err(|e| ConfigError { problems: vec![e] })?,
            ),
            None => None,
        };
        let file = match &table {
            Some(t) => file::settings(t).map_err(|e| ConfigError {
                problems: vec![format!("config file: {e}")],
            })?,
            None => HashMap::new(),
        };
        let src = Layered::new()
            .then(overrides)
            .then(ProcessEnv)
            .then(dotenv)
            .then(file);
        let config = Self::from_env(&src, Catalog::default());
        let routes = match &table {
            Some(t) => routes::parse(t, &src),
            None => Ok(Routes::default()),
        };
        match (config, routes) {
            (Ok(c), Ok(r)) => Ok(Self {
                routes: r,
                source: Some(source),
                ..c
            }),
            (Err(mut e), Err(more)) => {
                e.problems.extend(more);
                Err(e)
            }
            (Err(e), Ok(_)) => Err(e),
            (Ok(_), Err(problems)) => Err(ConfigError { problems }),
        }
    }

    /// Reads the configuration again from where [`Config::load`] read it (a reload).
    pub fn reread(&self) -> Result<Self, ConfigError> {
        match &self.source {
            Some(s) => Self::load(s.overrides.clone(), s.path.clone()),
            None => Err(ConfigError {
                problems: vec![
                    "this configuration was built in code; there is no file to read again".into(),
                ],
            }),
        }
    }

    /// The socket address to bind.
    pub fn addr(&self) -> std::net::SocketAddr {
        (self.host, self.port).into()
    }
}

fn nonzero_ms(key: &str, v: &str) -> Result<Duration, String> {
    match parse_ms(key, v)? {
        d if d.is_zero() => Err(format!(
            "{key}=0 would time out at once; use a positive number of milliseconds"
        )),
        d => Ok(d),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_env(&m, Catalog::default())
    }

    #[test]
    fn defaults_serve_the_mock_on_loopback() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.addr().to_string(), "127.0.0.1:3333");
        assert!(c.providers.contains_key("mock"));
        assert!(!c.providers.contains_key("groq"));
        assert_eq!((c.breaker_threshold, c.max_retries), (5, 3));
    }

    #[test]
    fn the_usage_queue_is_smaller_when_the_journal_holds_what_overflows() {
        assert_eq!(cfg(&[]).unwrap().usage_queue_capacity, 10_000);
        let off = cfg(&[("USAGE_JOURNAL_DIR", "off")]).unwrap();
        assert_eq!(off.usage_queue_capacity, 100_000);
        let set = cfg(&[("USAGE_QUEUE_CAPACITY", "250")]).unwrap();
        assert_eq!(set.usage_queue_capacity, 250);
    }

    #[test]
    fn every_bad_key_is_reported_by_name() {
        let e = cfg(&[
            ("PORT", "not-a-port"),
            ("ROUTING_STRATEGY", "sideways"),
            ("CIRCUIT_BREAKER_FAILURE_THRESHOLD", "many"),
            ("REQUEST_TIMEOUT_MS", "-5s"),
        ])
        .unwrap_err();
        let text = e.to_string();
        for key in [
            "PORT",
            "ROUTING_STRATEGY",
            "CIRCUIT_BREAKER_FAILURE_THRESHOLD",
            "REQUEST_TIMEOUT_MS",
        ] {
            assert!(text.contains(key), "{key} missing from {text}");
        }
        assert_eq!(e.problems.len(), 4);
    }

    #[test]
    fn open_bind_needs_a_master_key_or_allow_open() {
        let e = cfg(&[("HOST", "0.0.0.0")]).unwrap_err().to_string();
        assert!(e.contains("PROXYGATE_MASTER_KEY") && e.contains("--allow-open"));
        assert!(cfg(&[("HOST", "0.0.0.0"), ("PROXYGATE_MASTER_KEY", "k")]).is_ok());
        assert!(cfg(&[("HOST", "0.0.0.0"), ("PROXYGATE_ALLOW_OPEN", "true")]).is_ok());
    }

    #[test]
    fn keys_enable_providers_and_base_urls_override() {
        let c = cfg(&[
            ("GROQ_API_KEY", "a,b"),
            ("GROQ_BASE_URL", "http://127.0.0.1:9/openai/v1/"),
        ])
        .unwrap();
        let g = &c.providers["groq"];
        assert_eq!(g.keys.len(), 2);
        assert_eq!(g.base_url, "http://127.0.0.1:9/openai/v1");
        assert_eq!(format!("{:?}", g.keys[0]), "***");
        assert!(cfg(&[("GROQ_API_KEY", "a"), ("GROQ_BASE_URL", "ftp://x")]).is_err());
    }

    #[test]
    fn layered_sources_take_the_first_that_has_a_key() {
        let cli: HashMap<String, String> = [("PORT".to_owned(), "1".to_owned())].into();
        let env: HashMap<String, String> = [
            ("PORT".to_owned(), "2".to_owned()),
            ("HOST".to_owned(), "127.0.0.2".to_owned()),
        ]
        .into();
        let file: HashMap<String, String> = [
            ("HOST".to_owned(), "127.0.0.3".to_owned()),
            ("MAX_RETRIES".to_owned(), "1".to_owned()),
        ]
        .into();
        let src = Layered::new().then(cli).then(env).then(file);
        let c = Config::from_env(&src, Catalog::default()).unwrap();
        assert_eq!(
            (c.port, c.host.to_string().as_str(), c.max_retries),
            (1, "127.0.0.2", 1)
        );
    }
}
