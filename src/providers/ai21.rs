//! AI21 Jamba chat completions (`POST {AI21_BASE_URL}/studio/v1/chat/completions`,
//! `Authorization: Bearer`): OpenAI's format with a restricted parameter list (AI21's Jamba chat API reference).
//!
//! The body is the OpenAI one cut down to what AI21 knows: `max_tokens` only, string content
//! (text parts joined, images refused), `json_object` instead of `json_schema`, no
//! `stream_options` (AI21 puts usage on the final chunk by itself). AI21 streams carry no tool
//! calls, so a streaming request with tools is sent without `stream` and its complete answer
//! is replayed as a stream. AI21 answers leave out `object`, `created` and `model`; they are
//! filled in on the way back.

use std::collections::VecDeque;

use http::StatusCode;
use serde_json::Value;

use super::openai_compat::{OpenAiDecoder, Quirks, normalise_response, openai_body};
use super::{
    Framing, ProviderAdapter, SseEvent, StreamDecoder, UpstreamRequest, json_post,
    openai_style_error, parse_json, replay, summarise, with_json,
};
use super::{ProviderEndpoint, ProviderSettings};
use crate::GatewayError;
use crate::catalog::ProviderSpec;
use crate::client::HttpClient;
use crate::types::Secret;
use crate::types::{ChatChunk, ChatRequest, ChatResponse};

const PROVIDER: &str = "ai21";

/// The request fields AI21 knows (its SDK, plus `seed` and `tool_choice` as LiteLLM sends).
const FIELDS: &[&str] = &[
    "model",
    "messages",
    "max_tokens",
    "temperature",
    "top_p",
    "stop",
    "n",
    "stream",
    "tools",
    "tool_choice",
    "response_format",
    "documents",
    "seed",
];

const QUIRKS: Quirks = Quirks {
    max_tokens_only: true,
    no_developer_role: true,
    stream_options: false,
    whitelist: FIELDS,
    drop: &[],
    flatten_text_content: true,
    tool_choice_any: false,
};

/// Builds the endpoints of a configured provider: one per credential.
pub(crate) fn build(
    _spec: &'static ProviderSpec,
    settings: &ProviderSettings,
    client: &HttpClient,
) -> Result<Vec<ProviderEndpoint>, String> {
    Ok(super::endpoint_per_key(settings, client, Ai21::new))
}

/// Whether a streaming request is sent as a complete one and replayed.
fn replays(req: &ChatRequest) -> bool {
    req.is_stream() && req.tools.as_ref().is_some_and(|t| !t.is_empty())
}

/// The AI21 adapter for one key.
#[derive(Debug)]
pub struct Ai21 {
    url: String,
    key: Secret,
}

// === impl Ai21 ===

impl Ai21 {
    /// An adapter posting to `{base_url}/studio/v1/chat/completions`.
    pub fn new(base_url: &str, key: Secret) -> Self {
        Self {
            url: format!(
                "{}/studio/v1/chat/completions",
                base_url.trim_end_matches('/')
            ),
            key,
        }
    }

    /// The AI21 body for `req`.
    pub fn body(&self, req: &ChatRequest) -> Result<Value, GatewayError> {
        let mut body = openai_body(req, &QUIRKS)?;
        if let Some(Value::Array(messages)) = body.get_mut("messages") {
            for (i, m) in messages.iter_mut().enumerate() {
                let Value::Object(m) = m else { continue };
                if let Some(Value::Array(parts)) = m.get("content") {
                    // Text-only arrays were joined already: what is left holds something else.
                    let kind = parts
                        .iter()
                        .filter_map(|p| p.get("type").and_then(Value::as_str))
                        .find(|k| *k != "text")
                        .unwrap_or("non-text");
                    return Err(GatewayError::invalid(
                        format!("messages[{i}].content"),
                        format!("ai21 takes text only; remove the `{kind}` parts"),
                    ));
                }
                m.retain(|k, _| {
                    matches!(
                        k.as_str(),
                        "role" | "content" | "tool_calls" | "tool_call_id"
                    )
                });
            }
        }
        if let Some(rf) = body.get_mut("response_format")
            && rf.get("type").and_then(Value::as_str) == Some("json_schema")
        {
            *rf = serde_json::json!({"type": "json_object"});
        }
        if replays(req) {
            body["stream"] = Value::Bool(false);
        }
        Ok(body)
    }
}

/// Fills what AI21 leaves out of an answer.
fn complete(model: &str, body: &[u8]) -> Result<ChatResponse, GatewayError> {
    let mut v: Value = parse_json(PROVIDER, body)?;
    if let Value::Object(o) = &mut v {
        o.entry("id")
            .or_insert_with(|| Value::String(String::new()));
    }
    let mut resp: ChatResponse =
        serde_json::from_value(v).map_err(|e| GatewayError::BadUpstreamResponse {
            provider: PROVIDER,
            reason: format!("unexpected answer: {e}"),
        })?;
    normalise_response(&mut resp);
    if resp.model.is_empty() {
        resp.model = model.to_owned();
    }
    Ok(resp)
}

impl ProviderAdapter for Ai21 {
    type Decoder = Ai21Decoder;

    fn provider(&self) -> &'static str {
        PROVIDER
    }

    fn stream_framing(&self, req: &ChatRequest) -> Framing {
        if replays(req) {
            Framing::Whole
        } else {
            Framing::Sse
        }
    }

    fn request(&self, req: &ChatRequest) -> Result<UpstreamRequest, GatewayError> {
        let body = self.body(req)?;
        let mut builder =
            json_post(&self.url)?.header(http::header::AUTHORIZATION, self.key.bearer()?);
        if req.is_stream() && !replays(req) {
            builder = builder.header(http::header::ACCEPT, "text/event-stream");
        }
        with_json(builder, &body)
    }

    fn response(&self, req: &ChatRequest, body: &[u8]) -> Result<ChatResponse, GatewayError> {
        complete(&req.model, body)
    }

    fn decoder(&self, req: &ChatRequest) -> Ai21Decoder {
        Ai21Decoder {
            inner: OpenAiDecoder::new(PROVIDER),
            replays: replays(req),
            model: req.model.clone(),
            created: crate::types::unix_now(),
            replayed: false,
        }
    }

    fn error(&self, status: StatusCode, headers: &http::HeaderMap, body: &[u8]) -> GatewayError {
        let mut err = openai_style_error(PROVIDER, status, headers, body);
        // FastAPI-style `{"detail": ...}` bodies carry the message the generic reader misses.
        if let Ok(v) = serde_json::from_slice::<Value>(body.trim_ascii_start())
            && let Some(detail) = v.get("detail")
            && let GatewayError::Upstream { message, .. } = &mut err
        {
            *message = summarise(&match detail {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            });
        }
        err
    }
}

/// Decodes AI21's OpenAI-style stream (or replays a complete answer), filling `model` and
/// `created`, which AI21 chunks leave out.
#[derive(Debug)]
pub struct Ai21Decoder {
    inner: OpenAiDecoder,
    /// The answer is a complete one to replay.
    replays: bool,
    model: String,
    created: u64,
    replayed: bool,
}

impl Ai21Decoder {
    fn fill(&self, out: &mut VecDeque<ChatChunk>, from: usize) {
        for c in out.iter_mut().skip(from) {
            if c.model.is_empty() {
                c.model = self.model.clone();
            }
            if c.created == 0 {
                c.created = self.created;
            }
        }
    }
}

impl StreamDecoder for Ai21Decoder {
    fn event(
        &mut self,
        event: SseEvent,
        out: &mut VecDeque<ChatChunk>,
    ) -> Result<(), GatewayError> {
        let from = out.len();
        if self.replays {
            let resp = complete(&self.model, event.data.as_bytes())?;
            replay(&resp, out);
            self.replayed = true;
        } else {
            self.inner.event(event, out)?;
        }
        self.fill(out, from);
        Ok(())
    }

    fn finish(&mut self, out: &mut VecDeque<ChatChunk>) -> Result<(), GatewayError> {
        if self.replays {
            return match self.replayed {
                true => Ok(()),
                false => Err(GatewayError::BadUpstreamResponse {
                    provider: PROVIDER,
                    reason: "empty answer".into(),
                }),
            };
        }
        let from = out.len();
        self.inner.finish(out)?;
        self.fill(out, from);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    use crate::types::Usage;

    fn adapter() -> Ai21 {
        Ai21::new("http://ai21.test", Secret::new("ai21-test-key"))
    }

    fn req(v: Value) -> ChatRequest {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn request_is_cut_to_what_ai21_knows() {
        let r = req(json!({
            "model": "jamba-mini-1.7",
            "messages": [
                {"role": "developer", "content": "Be terse."},
                {"role": "user", "name": "ann", "content": [{"type": "text", "text": "Hello"}, {"type": "text", "text": "there"}]},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "42"}
            ],
            "max_completion_tokens": 200, "temperature": 0.4, "top_p": 0.9, "stop": ["END"], "seed": 1,
            "stream": true, "stream_options": {"include_usage": true}, "logprobs": true, "user": "u",
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
        }));
        let body = adapter().body(&r).unwrap();
        assert_eq!(
            body,
            json!({
                "model": "jamba-mini-1.7",
                "messages": [
                    {"role": "system", "content": "Be terse."},
                    {"role": "user", "content": "Hello\nthere"},
                    {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                    {"role": "tool", "tool_call_id": "call_1", "content": "42"}
                ],
                "max_tokens": 200, "temperature": 0.4, "top_p": 0.9, "stop": ["END"], "seed": 1,
                "stream": true, "response_format": {"type": "json_object"}
            })
        );
        let up = adapter().request(&r).unwrap();
        assert_eq!(up.uri(), "http://ai21.test/studio/v1/chat/completions");
        assert_eq!(up.headers()["authorization"], "Bearer ai21-test-key");
    }

    #[test]
    fn images_are_refused_naming_the_message() {
        let r = req(
            json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "https://x/cat.png"}}]}]}),
        );
        let e = adapter().body(&r).unwrap_err();
        assert!(
            e.to_string().contains("messages[0].content") && e.to_string().contains("image_url"),
            "{e}"
        );
    }

    #[test]
    fn sdk_shaped_response_gets_object_created_and_model() {
        let r = req(
            json!({"model": "jamba-mini-1.7", "messages": [{"role": "user", "content": "hi"}]}),
        );
        let body = br#"{"id":"chat-1","choices":[{"index":0,"message":{"role":"assistant","content":"Hi!","tool_calls":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}"#;
        let resp = adapter().response(&r, body).unwrap();
        assert_eq!(
            (resp.object.as_str(), resp.model.as_str()),
            ("chat.completion", "jamba-mini-1.7")
        );
        assert!(resp.created > 0);
        assert_eq!(resp.choices[0].message.content.as_deref(), Some("Hi!"));
        assert_eq!(resp.usage, Some(Usage::new(12, 3)));
    }

    fn run(
        framing: Framing,
        d: &mut Ai21Decoder,
        pieces: &[&[u8]],
    ) -> Result<Vec<ChatChunk>, GatewayError> {
        let (out, end) = crate::providers::decode_pieces(framing, d, pieces);
        end.map(|()| out)
    }

    #[test]
    fn stream_with_usage_on_the_final_chunk_in_pieces() {
        let r = req(
            json!({"model": "jamba-large-1.7", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
        );
        let raw = concat!(
            "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
            "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Grüß\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
            "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" dich\"},\"logprobs\":null,\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":2,\"total_tokens\":6}}\n\n",
            "data: [DONE]\n\n",
        );
        let cut = raw.find('ü').unwrap() + 1;
        let a = adapter();
        assert_eq!(a.stream_framing(&r), Framing::Sse);
        let mut d = a.decoder(&r);
        let b = raw.as_bytes();
        let out = run(
            Framing::Sse,
            &mut d,
            &[&b[..cut], &b[cut..cut + 40], &b[cut + 40..]],
        )
        .unwrap();
        assert_eq!(out.len(), 4);
        assert!(
            out.iter()
                .all(|c| c.model == "jamba-large-1.7" && c.created > 0 && c.id == "c1")
        );
        let text: String = out
            .iter()
            .filter_map(|c| c.choices.first()?.delta.content.clone())
            .collect();
        assert_eq!(text, "Grüß dich");
        assert!(out[3].is_usage_only());
        assert_eq!(out[3].usage, Some(Usage::new(4, 2)));
        assert!(out[..3].iter().all(|c| c.usage.is_none()));
    }

    #[test]
    fn streaming_with_tools_is_asked_whole_and_replayed() {
        let r = req(json!({"model": "jamba-mini-1.7", "stream": true,
            "messages": [{"role": "user", "content": "weather?"}],
            "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]}));
        let a = adapter();
        assert_eq!(a.body(&r).unwrap()["stream"], false);
        assert!(a.request(&r).unwrap().headers().get("accept").is_none());
        assert_eq!(a.stream_framing(&r), Framing::Whole);
        let body = "{\n \"id\": \"chat-t\",\n \"choices\": [{\"index\": 0, \"message\": {\"role\": \"assistant\", \"content\": null,\n  \"tool_calls\": [{\"id\": \"call_w\", \"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"arguments\": \"{\\\"city\\\": \\\"Oslo\\\"}\"}}]},\n  \"finish_reason\": \"tool_calls\"}],\n \"usage\": {\"prompt_tokens\": 30, \"completion_tokens\": 10, \"total_tokens\": 40}\n}\n";
        let mut d = a.decoder(&r);
        let b = body.as_bytes();
        let out = run(Framing::Whole, &mut d, &[&b[..20], &b[20..]]).unwrap();
        assert_eq!(out.len(), 4);
        assert_eq!(out[0].choices[0].delta.role.as_deref(), Some("assistant"));
        let call = &out[1].choices[0].delta.tool_calls.as_ref().unwrap()[0];
        assert_eq!(call.id.as_deref(), Some("call_w"));
        assert_eq!(
            call.function.as_ref().unwrap().arguments.as_deref(),
            Some("{\"city\": \"Oslo\"}")
        );
        assert_eq!(
            out[2].choices[0].finish_reason.as_deref(),
            Some("tool_calls")
        );
        assert_eq!(out[3].usage, Some(Usage::new(30, 10)));
        assert!(out.iter().all(|c| c.model == "jamba-mini-1.7"));
        let mut d = a.decoder(&r);
        assert!(run(Framing::Whole, &mut d, &[b""]).is_err());
    }

    #[test]
    fn detail_bodies_are_read() {
        let h = http::HeaderMap::new();
        let e = adapter().error(
            StatusCode::UNPROCESSABLE_ENTITY,
            &h,
            br#"{"detail":[{"loc":["body","messages"],"msg":"field required"}]}"#,
        );
        assert!(e.to_string().contains("field required"), "{e}");
        assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let e = adapter().error(
            StatusCode::UNAUTHORIZED,
            &h,
            br#"{"detail":"Forbidden: Bad or missing API token."}"#,
        );
        assert!(e.to_string().contains("Bad or missing API token") && e.is_retryable());
    }
}
