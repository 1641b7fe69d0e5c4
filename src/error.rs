//! The one domain error of every layer below the edge, and its classification.
//!
//! Layers never re-derive "is this retryable?" from status codes: they ask the error. Only the
//! HTTP edge turns an error into the OpenAI envelope `{"error":{"message","type","param","code"}}`
//! with its status and `retry-after` header ([`GatewayError::envelope`]).

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use serde_json::json;

/// Why a gateway could not be built. Each variant names the part that failed; the message
/// says what to change.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BuildError {
    /// A configured provider's settings cannot make its endpoints.
    #[error("provider {provider}: {message}")]
    Provider {
        /// The provider's catalog name.
        provider: &'static str,
        /// What is wrong with its settings.
        message: String,
    },
    /// The SQL database (usage records, virtual keys) cannot be opened or migrated.
    #[error("{0}")]
    Database(String),
    /// The usage journal cannot be locked or replayed into the usage store.
    #[error("{0}")]
    UsageJournal(String),
    /// The state backend shared between replicas cannot be set up.
    #[error("{0}")]
    StateBackend(String),
    /// The trace exporter cannot be set up from its `OTEL_*` settings.
    #[error("{0}")]
    Traces(String),
}

/// Boxed error as tower middleware returns it.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The `code` of a deployment's refusal at its own ceiling.
pub const CEILING_CODE: &str = "deployment_ceiling";

/// Everything that can go wrong between the edge and the upstream.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GatewayError {
    /// The client's request is malformed; `field` names the culprit.
    #[error("`{field}` {reason}")]
    InvalidRequest {
        /// JSON path of the bad field (`messages[0].role`), or `json` / `body`.
        field: String,
        /// What is wrong and, where useful, what to send instead.
        reason: String,
    },
    /// A key with a budget asked for a model with no known rate.
    #[error(
        "model `{model}` has no known rate (model_unpriced): a key with a budget may only call priced models; give it a price with RATE_OVERRIDES (`provider/model=input/output`, USD per 1M tokens)"
    )]
    ModelUnpriced {
        /// The model (or deployment) without a rate.
        model: String,
    },
    /// The request body is larger than the configured limit.
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// No provider of the catalog serves this model.
    #[error("model `{model}` is not served by any provider{hint}")]
    ModelNotFound {
        /// The model the client asked for.
        model: String,
        /// Extra guidance (starts with `; ` when present).
        hint: String,
    },
    /// The model is known but none of the providers serving it has credentials.
    #[error("model `{model}` is served by {providers} but none is configured; set {env}")]
    ProviderNotConfigured {
        /// The model the client asked for.
        model: String,
        /// Providers that would serve it.
        providers: String,
        /// The env vars that would enable them.
        env: String,
    },
    /// The upstream answered with an error status.
    #[error("{provider} returned {status}: {message}")]
    Upstream {
        /// Provider name.
        provider: &'static str,
        /// The upstream's status.
        status: StatusCode,
        /// A summary of the upstream's message (never a raw echo of the body).
        message: String,
        /// OpenAI-style error code when the provider gave one we understand.
        code: Option<String>,
        /// How long the upstream asked us to wait.
        retry_after: Option<Duration>,
    },
    /// The upstream could not be reached or the connection broke before a response.
    #[error("{provider} could not be reached: {reason}")]
    Connect {
        /// Provider name.
        provider: &'static str,
        /// What happened (connection refused, reset, TLS).
        reason: String,
        /// The connection broke after the request was sent (a reset or close before the
        /// response, a stream cut short): the provider may bill it. False when no connection
        /// was made.
        sent: bool,
    },
    /// The upstream answered with something we cannot parse.
    #[error("{provider} sent an unreadable response: {reason}")]
    BadUpstreamResponse {
        /// Provider name.
        provider: &'static str,
        /// What was wrong with it.
        reason: String,
    },
    /// The upstream did not answer in time.
    #[error("{provider} did not answer within {after:?}")]
    Timeout {
        /// Provider name.
        provider: &'static str,
        /// The timeout that elapsed.
        after: Duration,
    },
    /// The deployment's circuit is open: it was skipped without a network call.
    #[error("circuit open for deployment {deployment}")]
    CircuitOpen {
        /// The deployment id.
        deployment: Arc<str>,
        /// When the next probe is allowed.
        retry_in: Duration,
    },
    /// Every candidate deployment is open: nothing was contacted.
    #[error("no healthy deployment for `{model}`: every circuit is open; next probe in {}s", retry_in.as_secs().max(1))]
    NoHealthyDeployment {
        /// The model asked for.
        model: String,
        /// Time until the earliest probe.
        retry_in: Duration,
    },
    /// Every attempt failed; `last` is the final upstream error.
    #[error("all {} attempts failed (tried {}); last error: {last}", tried.len(), tried.join(", "))]
    AllAttemptsFailed {
        /// Deployments tried, in order.
        tried: Vec<String>,
        /// The last error.
        last: Box<GatewayError>,
    },
    /// Missing or wrong gateway key.
    #[error("{0}")]
    Unauthorized(String),
    /// The key may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The gateway's own rate limit or budget.
    #[error("{message}")]
    RateLimited {
        /// What limit was hit.
        message: String,
        /// When to come back.
        retry_after: Option<Duration>,
    },
    /// The virtual key's budget is spent for this period.
    #[error("{message}")]
    BudgetExceeded {
        /// What was spent and when it renews.
        message: String,
        /// Until the next period starts (none for a `total` budget).
        retry_after: Option<Duration>,
    },
    /// Too many requests in flight: shed at once rather than queued.
    #[error("the gateway is at its limit of {limit} requests in flight; retry shortly")]
    Overloaded {
        /// `MAX_INFLIGHT_REQUESTS`.
        limit: usize,
    },
    /// A bug or an unexpected state; the message is safe to show.
    #[error("internal error: {0}")]
    Internal(String),
}

// === impl GatewayError ===

impl GatewayError {
    /// Shorthand for [`GatewayError::InvalidRequest`].
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidRequest {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The HTTP status the client sees.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidRequest { .. } | Self::ModelUnpriced { .. } => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::ModelNotFound { .. } => StatusCode::NOT_FOUND,
            Self::ProviderNotConfigured { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Upstream { status, .. } => match status.as_u16() {
                // The client's own mistake: hand it back as is.
                400 | 404 | 413 | 422 => *status,
                429 => StatusCode::TOO_MANY_REQUESTS,
                408 | 504 => StatusCode::GATEWAY_TIMEOUT,
                // A bad provider key, out of credits, or a server error: the gateway's upstream failed.
                _ => StatusCode::BAD_GATEWAY,
            },
            Self::Connect { .. } | Self::BadUpstreamResponse { .. } => StatusCode::BAD_GATEWAY,
            Self::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            Self::CircuitOpen { .. } | Self::NoHealthyDeployment { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::AllAttemptsFailed { last, .. } => match last.status() {
                s if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS => s,
                // A retryable 4xx (401/403 from a provider) is the gateway's upstream failing.
                _ => StatusCode::BAD_GATEWAY,
            },
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::RateLimited { .. } | Self::BudgetExceeded { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Overloaded { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Whether this is a deployment refusing at its own per-minute ceiling (`rpm`/`tpm` of a
    /// configured deployment): nothing was contacted.
    pub fn is_ceiling(&self) -> bool {
        matches!(self, Self::Upstream { code: Some(c), .. } if c == CEILING_CODE)
    }

    /// Whether another deployment may succeed where this one failed. The only thing
    /// failover reads.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Upstream { status, code, .. } => {
                let s = status.as_u16();
                // 402 (out of credits) and insufficient_quota are this key's problem: another
                // deployment may well work.
                matches!(s, 401 | 402 | 403 | 408 | 409 | 429)
                    || s >= 500
                    || code.as_deref() == Some("upstream_unavailable")
            }
            Self::Connect { .. }
            | Self::BadUpstreamResponse { .. }
            | Self::Timeout { .. }
            | Self::CircuitOpen { .. } => true,
            _ => false,
        }
    }

    /// Whether this outcome counts against the deployment's health (circuit breaker). The
    /// client's own mistakes do not.
    pub fn is_deployment_failure(&self) -> bool {
        match self {
            Self::CircuitOpen { .. } => false,
            other => other.is_retryable(),
        }
    }

    /// A bounded label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::InvalidRequest { .. } | Self::ModelUnpriced { .. } => "invalid_request",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::ModelNotFound { .. } => "model_not_found",
            Self::ProviderNotConfigured { .. } => "provider_not_configured",
            Self::Upstream { .. } => "upstream",
            Self::Connect { .. } => "connect",
            Self::BadUpstreamResponse { .. } => "bad_upstream_response",
            Self::Timeout { .. } => "timeout",
            Self::CircuitOpen { .. } => "circuit_open",
            Self::NoHealthyDeployment { .. } => "no_healthy_deployment",
            Self::AllAttemptsFailed { .. } => "all_attempts_failed",
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::RateLimited { .. } => "rate_limited",
            Self::BudgetExceeded { .. } => "budget_exceeded",
            Self::Overloaded { .. } => "overloaded",
            Self::Internal(_) => "internal",
        }
    }

    /// How long the client should wait before retrying, for the `retry-after` header.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Upstream { retry_after, .. }
            | Self::RateLimited { retry_after, .. }
            | Self::BudgetExceeded { retry_after, .. } => *retry_after,
            Self::Overloaded { .. } => Some(Duration::from_secs(1)),
            Self::CircuitOpen { retry_in, .. } | Self::NoHealthyDeployment { retry_in, .. } => {
                Some(*retry_in)
            }
            Self::AllAttemptsFailed { last, .. } => last.retry_after(),
            _ => None,
        }
    }

    /// OpenAI's `error.type` for this error.
    pub fn error_type(&self) -> &'static str {
        if let Self::BudgetExceeded { .. } = self {
            return "insufficient_quota"; // as OpenAI says when a quota is spent
        }
        match self.status().as_u16() {
            400 | 404 | 413 | 422 => "invalid_request_error",
            401 => "authentication_error",
            403 => "permission_error",
            429 => "rate_limit_error",
            504 => "timeout_error",
            503 => "service_unavailable_error",
            502 => "upstream_error",
            _ => "server_error",
        }
    }

    fn code(&self) -> Option<String> {
        match self {
            Self::InvalidRequest { .. } => Some("invalid_value".into()),
            Self::ModelUnpriced { .. } => Some("model_unpriced".into()),
            Self::PayloadTooLarge { .. } => Some("request_too_large".into()),
            Self::ModelNotFound { .. } => Some("model_not_found".into()),
            Self::ProviderNotConfigured { .. } => Some("provider_not_configured".into()),
            Self::Upstream { code, status, .. } => code.clone().or_else(|| match status.as_u16() {
                429 => Some("rate_limit_exceeded".into()),
                _ => None,
            }),
            Self::Timeout { .. } => Some("upstream_timeout".into()),
            Self::CircuitOpen { .. } | Self::NoHealthyDeployment { .. } => {
                Some("circuit_open".into())
            }
            Self::AllAttemptsFailed { last, .. } => last.code(),
            Self::Unauthorized(_) => Some("invalid_api_key".into()),
            Self::RateLimited { .. } => Some("rate_limit_exceeded".into()),
            Self::BudgetExceeded { .. } => Some("budget_exceeded".into()),
            Self::Overloaded { .. } => Some("overloaded".into()),
            _ => None,
        }
    }

    fn param(&self) -> Option<String> {
        match self {
            Self::InvalidRequest { field, .. } => Some(field.clone()),
            Self::ModelNotFound { .. }
            | Self::ProviderNotConfigured { .. }
            | Self::ModelUnpriced { .. } => Some("model".into()),
            _ => None,
        }
    }

    /// The OpenAI error envelope.
    pub fn envelope(&self) -> serde_json::Value {
        json!({
            "error": {
                // Upstream messages may echo a provider key: never let one through.
                "message": crate::redact::redact(&self.to_string()),
                "type": self.error_type(),
                "param": self.param(),
                "code": self.code(),
            }
        })
    }
}

impl From<BoxError> for GatewayError {
    fn from(err: BoxError) -> Self {
        match err.downcast::<GatewayError>() {
            Ok(e) => *e,
            Err(err) => {
                if err.is::<tower::timeout::error::Elapsed>() {
                    Self::Timeout {
                        provider: "gateway",
                        after: Duration::ZERO,
                    }
                } else {
                    Self::Internal(err.to_string())
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(status: u16) -> GatewayError {
        GatewayError::Upstream {
            provider: "groq",
            status: StatusCode::from_u16(status).unwrap(),
            message: "x".into(),
            code: None,
            retry_after: None,
        }
    }

    #[test]
    fn client_errors_are_not_retryable_but_provider_auth_is() {
        assert!(!upstream(400).is_retryable());
        assert!(!upstream(422).is_retryable());
        for s in [401, 403, 408, 429, 500, 502, 503, 529] {
            assert!(upstream(s).is_retryable(), "{s}");
        }
    }

    #[test]
    fn upstream_statuses_map_to_gateway_statuses() {
        assert_eq!(upstream(400).status(), StatusCode::BAD_REQUEST);
        assert_eq!(upstream(429).status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(upstream(401).status(), StatusCode::BAD_GATEWAY);
        assert_eq!(upstream(500).status(), StatusCode::BAD_GATEWAY);
        assert_eq!(upstream(503).status(), StatusCode::BAD_GATEWAY);
    }

    #[test]
    fn all_failed_takes_the_status_of_the_last_error() {
        let e = GatewayError::AllAttemptsFailed {
            tried: vec!["a".into(), "b".into()],
            last: Box::new(upstream(429)),
        };
        assert_eq!(e.status(), StatusCode::TOO_MANY_REQUESTS);
        let e = GatewayError::AllAttemptsFailed {
            tried: vec!["a".into()],
            last: Box::new(upstream(401)),
        };
        assert_eq!(e.status(), StatusCode::BAD_GATEWAY);
        assert!(e.to_string().contains("tried a"));
    }

    #[test]
    fn envelope_names_the_field() {
        let v = GatewayError::invalid("messages", "is required").envelope();
        assert_eq!(v["error"]["param"], "messages");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert!(v["error"]["message"].as_str().unwrap().contains("messages"));
    }
}
