use std::any::Any;
use std::fmt;
use std::sync::Arc;

/// What the gateway knows about a request besides its body. Never serialized.
///
/// The router fills `plan`, the failover layer sets `target` for each attempt, and the
/// dispatch service at the bottom sends the request to `target`.
#[derive(Clone, Debug, Default)]
pub struct RequestContext {
    /// The id echoed in logs and `x-request-id`.
    pub request_id: Option<Arc<str>>,
    /// Deployments in the order the routing strategy chose; read and written through
    /// `deployment::Routed`.
    pub plan: Option<Carried>,
    /// The deployment this attempt goes to; written through `deployment::Routed`, which
    /// also reads it back as a deployment.
    pub target: Option<Arc<dyn Target>>,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// The overall deadline of the request, across attempts.
    pub deadline: Option<tokio::time::Instant>,
    /// The virtual key that made the request, if any.
    pub key_id: Option<Arc<str>>,
    /// Who is calling (the virtual key, its rate-limit state and budget reservations), set
    /// by the HTTP edge; `access::Grant` is the one implementation.
    pub access: Option<Arc<dyn Caller>>,
    /// The client API the request came through.
    pub endpoint: super::Api,
    /// What the client allows the response cache to do with this request.
    pub cache: CacheControl,
    /// The embeddings request, on `/v1/embeddings` (the chat fields are then empty).
    pub embedding: Option<Arc<crate::types::EmbeddingRequest>>,
    /// The client's own body when it spoke a provider's native format (Anthropic's on
    /// `/v1/messages`), so an adapter of that format can pass it through unchanged.
    pub native_body: Option<bytes::Bytes>,
    /// The client's chat completions body while the request still says exactly what it says,
    /// so an OpenAI-format adapter can send those bytes with only `model` replaced instead of
    /// writing the request anew. Whatever changes the request's parameters clears it.
    pub verbatim: Option<bytes::Bytes>,
    /// The client's `anthropic-beta` header on `/v1/messages`, forwarded with a pass-through.
    pub native_beta: Option<http::HeaderValue>,
    /// The deployment the latest attempt went to, seen by every copy of this context (the
    /// cost layer prices a request the client left before its answer at that deployment).
    pub last_attempt: LastAttempt,
}

/// The provider and deployment id of a request's latest attempt, shared by the clones of its
/// context.
#[derive(Clone, Debug, Default)]
pub struct LastAttempt(Arc<std::sync::Mutex<Option<Attempted>>>);

/// A provider name and a deployment id.
type Attempted = (&'static str, Arc<str>);

impl LastAttempt {
    /// Notes an attempt at `deployment` of `provider`.
    pub fn set(&self, provider: &'static str, deployment: Arc<str>) {
        if let Ok(mut s) = self.0.lock() {
            *s = Some((provider, deployment));
        }
    }

    /// The latest attempt's provider and deployment id.
    pub fn get(&self) -> Option<(&'static str, Arc<str>)> {
        self.0.lock().ok().and_then(|s| s.clone())
    }
}

/// The caller of a request as the layers below the access layers see it.
///
/// `access::Grant` implements it; `access` reads its own type back by upcasting to
/// [`Any`].
pub trait Caller: Any + Send + Sync + fmt::Debug {
    /// Whether the caller may use `model` (a model name or a deployment id); a caller without
    /// a virtual key may use every model.
    fn allows_model(&self, model: &str) -> bool;
    /// Settles the caller's budget reservations with the request's real cost in USD, and
    /// corrects its token-rate windows with the real `tokens`.
    fn settle_usage(&self, cost_usd: f64, tokens: u64);
}

/// Where an attempt goes, as the layers below the routing see it: `deployment::Deployment`
/// is the one implementation, and reads itself back by upcasting to [`Any`].
pub trait Target: Any + Send + Sync + fmt::Debug {
    /// `provider/model` (with `#n` after the provider for the n-th extra key).
    fn id(&self) -> &Arc<str>;
    /// The provider's name in the catalog.
    fn provider_name(&self) -> &'static str;
    /// The upstream model id.
    fn model(&self) -> &str;
}

/// A value the context carries for a module above this one (the routing plan and target
/// of `deployment`) without naming its type; that module reads it back with
/// [`Carried::get`] behind typed accessors.
#[derive(Clone)]
pub struct Carried(Arc<dyn Value>);

trait Value: Any + Send + Sync + fmt::Debug {}

impl<T: Any + Send + Sync + fmt::Debug> Value for T {}

impl Carried {
    /// Carries `value`.
    pub fn new<T: Any + Send + Sync + fmt::Debug>(value: T) -> Self {
        Self(Arc::new(value))
    }

    /// The carried value, if it is a `T`.
    pub fn get<T: Any>(&self) -> Option<&T> {
        let value: &dyn Any = self.0.as_ref();
        value.downcast_ref()
    }
}

impl fmt::Debug for Carried {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The client's say over the response cache, from its request headers.
///
/// `cache-control: no-cache` asks for a fresh answer (which then replaces the cached one);
/// `cache-control: no-store` keeps the answer out of the cache; `x-proxygate-cache: bypass`
/// (or `no-cache, no-store` together) does both: the cache neither answers nor keeps it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheControl {
    /// Do not answer from the cache.
    pub no_lookup: bool,
    /// Do not keep the answer.
    pub no_store: bool,
    /// A stable hash of the request headers that change the answer ([`ANSWER_HEADERS`]), 0
    /// when none is sent; part of the cache key.
    pub vary: u64,
}

/// Request headers a provider reads to shape its answer: beta features, API versions and the
/// account a request is billed to (whose fine-tunes and policies differ).
pub const ANSWER_HEADERS: &[&str] = &[
    "anthropic-beta",
    "anthropic-version",
    "openai-organization",
    "openai-project",
];

impl CacheControl {
    /// Reads `cache-control` and `x-proxygate-cache`.
    pub fn from_headers(headers: &http::HeaderMap) -> Self {
        let mut out = Self::default();
        for v in headers.get_all(http::header::CACHE_CONTROL) {
            for directive in v.to_str().unwrap_or("").split(',') {
                match directive.trim().to_ascii_lowercase().as_str() {
                    "no-cache" => out.no_lookup = true,
                    "no-store" => out.no_store = true,
                    _ => {}
                }
            }
        }
        // FNV-1a: stable across processes, so replicas sharing a cache agree on keys.
        let mut vary: u64 = 0xcbf2_9ce4_8422_2325;
        let mut seen = false;
        // Parsed once: a lookup by `&str` parses and validates the name on every request.
        static NAMES: std::sync::LazyLock<Vec<http::HeaderName>> = std::sync::LazyLock::new(|| {
            ANSWER_HEADERS
                .iter()
                .map(|n| http::HeaderName::from_static(n))
                .collect()
        });
        static BYPASS: http::HeaderName = http::HeaderName::from_static("x-proxygate-cache");
        for (name, header) in ANSWER_HEADERS.iter().zip(NAMES.iter()) {
            for v in headers.get_all(header) {
                seen = true;
                for b in name
                    .bytes()
                    .chain([0])
                    .chain(v.as_bytes().iter().copied())
                    .chain([0])
                {
                    vary ^= u64::from(b);
                    vary = vary.wrapping_mul(0x0100_0000_01b3);
                }
            }
        }
        out.vary = if seen { vary } else { 0 };
        if let Some(v) = headers.get(&BYPASS)
            && v.to_str()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("bypass")
        {
            out.no_lookup = true;
            out.no_store = true;
        }
        out
    }

    /// Neither lookup nor store.
    pub fn is_bypass(self) -> bool {
        self.no_lookup && self.no_store
    }
}
