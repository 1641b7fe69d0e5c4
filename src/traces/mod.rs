//! Traces and the access log: OpenTelemetry spans for every request and every upstream
//! attempt, exported over OTLP/HTTP protobuf, and one JSON line per finished request.
//!
//! Three layers, each off (absent from the stack) unless asked for:
//!
//! - [`ServerSpanLayer`] wraps the HTTP edge: one `SpanKind::Server` span per request, named
//!   after its route (`POST /v1/chat/completions`), the child of a client's W3C `traceparent`,
//!   ended when the response body ends or is dropped (so a stream's span lasts as long as the
//!   stream). With the access log on it writes the request's line at the same moment.
//! - [`ExchangeLayer`] sits on top of the chat stack and notes what the edge cannot see in the
//!   HTTP response (the model asked, the key, tokens, time to the first chunk) for that line.
//! - [`AttemptSpanLayer`] wraps one upstream attempt of one deployment: a `SpanKind::Client`
//!   span named `{operation} {model}` with the GenAI semantic conventions, current while the
//!   attempt runs so the provider call sends its `traceparent` upstream
//!   ([`crate::telemetry::trace_upstream`]).
//!
//! The request's OpenTelemetry [`Context`](opentelemetry::Context) travels with the request
//! future (attached on each poll), so the layers find each other's span and notes without
//! any handler knowing about them. An app that mounts the library passes its own tracer
//! ([`crate::GatewayBuilder::tracer`]); the binary builds one from the standard `OTEL_*`
//! variables with [`otlp_from_env`].
//!
//! Export never blocks a request: ended spans go to the SDK's batch processor, a bounded queue
//! drained by its own thread, which drops spans when the queue is full (a collector that is
//! away). Prompts and answers are recorded only with
//! `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`.

mod attempt;
mod exchange;
mod export;
mod server;

pub use attempt::{AttemptSpan, AttemptSpanLayer};
pub use exchange::{Exchange, ExchangeLayer};
pub use export::{
    CollectorAwareSampler, CollectorStatus, Otlp, OtlpClient, otlp_from_env, otlp_provider,
};
pub use server::{ServerSpan, ServerSpanLayer, TracedBody};

use opentelemetry_sdk::trace::SdkTracer;

/// `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`: record prompts and answers on attempt
/// spans (`true`; anything else, or unset, records none).
pub const ENV_CAPTURE_CONTENT: &str = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT";

/// `LOG_FORMAT`: `text` (the default) or `json`, which adds one access-log line per request.
pub const ENV_LOG_FORMAT: &str = "LOG_FORMAT";

/// The `tracing` target of access-log lines.
pub const ACCESS_LOG_TARGET: &str = "proxygate::access";

/// What the trace layers do: export spans to `tracer`, write the access log, or both.
#[derive(Clone, Debug, Default)]
pub struct TraceConfig {
    /// Where spans go; `None` makes no spans.
    pub tracer: Option<SdkTracer>,
    /// Record prompts and answers on attempt spans.
    pub capture_content: bool,
    /// Write one access-log line per finished request.
    pub access_log: bool,
    /// The collector's status: while it is away, spans are not recorded.
    pub collector: Option<CollectorStatus>,
}

impl TraceConfig {
    /// Whether any trace layer has work to do; when not, the gateway leaves them out.
    pub fn is_active(&self) -> bool {
        self.tracer.is_some() || self.access_log
    }
}

/// Whether `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT` asks for content capture.
pub fn capture_content_from_env() -> bool {
    std::env::var(ENV_CAPTURE_CONTENT).is_ok_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// The log format `LOG_FORMAT` names: `Ok(false)` for text (or unset), `Ok(true)` for JSON,
/// an error naming the variable otherwise.
pub fn json_log_from(value: Option<&str>) -> Result<bool, String> {
    match value.map(str::trim) {
        None | Some("") => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("text") => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("json") => Ok(true),
        Some(v) => Err(format!(
            "{ENV_LOG_FORMAT}={v:?} is not a log format (text or json)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_format_is_text_or_json_and_names_itself_otherwise() {
        assert_eq!(json_log_from(None), Ok(false));
        assert_eq!(json_log_from(Some("text")), Ok(false));
        assert_eq!(json_log_from(Some(" JSON ")), Ok(true));
        let err = json_log_from(Some("xml")).unwrap_err();
        assert!(err.contains("LOG_FORMAT"), "{err}");
    }

    #[test]
    fn spans_are_named_by_route_templates_never_raw_ids() {
        use server::route_of;
        assert_eq!(
            route_of("/v1/chat/completions"),
            Some("/v1/chat/completions")
        );
        assert_eq!(route_of("/v1/messages"), Some("/v1/messages"));
        assert_eq!(
            route_of("/v1/responses/resp_123"),
            Some("/v1/responses/{id}")
        );
        assert_eq!(
            route_of("/v1/responses/resp_123/input_items"),
            Some("/v1/responses/{id}/input_items")
        );
        assert_eq!(route_of("/admin/keys/k1"), Some("/admin/keys/{id}"));
        assert_eq!(
            route_of("/admin/circuits/groq/llama-3.1-8b-instant"),
            Some("/admin/circuits/{*deployment}")
        );
        assert_eq!(route_of("/v1/responses/"), None);
        assert_eq!(route_of("/secret-token-in-path"), None);
    }
}
