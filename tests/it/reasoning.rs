//! Reasoning that survives a tool round trip: fakes that refuse a second turn the way the real
//! providers do when their reasoning state is missing (Anthropic's extended thinking
//! documentation: the thinking block must precede the tool use it led to; Gemini's thinking
//! documentation: a function call must carry the thought signature it came with), driven
//! through chat completions, `/v1/messages` and `/v1/responses`.

use crate::support::*;
use serde_json::{Value, json};

const ANTHROPIC_KEY: &str = "sk-ant-reasoning-test-key";
const GEMINI_KEY: &str = "AIza-reasoning-test-key";
const SIGNATURE: &str = "EqQBCgIYAhIMc2lnbmF0dXJl+/==";
const THOUGHT_SIGNATURE: &str = "Q2lRQjBlMm+Kc2lnbmF0dXJl/w==";

fn weather_tool() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}])
}

/// An Anthropic fake with extended thinking on: the first turn thinks and calls a tool; a
/// tool turn whose assistant message does not start with that signed thinking block is a 400.
fn strict_anthropic() -> Reply {
    Reply::decide(|req| {
        let body = req.json();
        let messages = body["messages"].as_array().cloned().unwrap_or_default();
        let Some(assistant) = messages.iter().find(|m| m["role"] == "assistant") else {
            return Reply::json(json!({
                "id": "msg_t1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
                "content": [
                    {"type": "thinking", "thinking": "The user wants the weather.", "signature": SIGNATURE},
                    {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Oslo"}}],
                "stop_reason": "tool_use", "stop_sequence": null,
                "usage": {"input_tokens": 20, "output_tokens": 30}}));
        };
        let first = &assistant["content"][0];
        let thinking_on =
            body["thinking"]["type"] == "enabled" || body["thinking"]["type"] == "adaptive";
        if thinking_on && !(first["type"] == "thinking" && first["signature"] == SIGNATURE) {
            return Reply::status_json(
                400,
                json!({"type": "error", "error": {
                "type": "invalid_request_error",
                "message": "messages.1.content.0.type: Expected `thinking` or `redacted_thinking`, but found `tool_use`. When `thinking` is enabled, a final `assistant` message must start with a thinking block."}}),
            );
        }
        Reply::json(json!({
            "id": "msg_t2", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
            "content": [{"type": "text", "text": "14C in Oslo."}],
            "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": 60, "output_tokens": 6}}))
    })
}

/// A Gemini 3 fake: the first turn calls a function with a thought signature; a later turn whose
/// functionCall part lacks it is a 400.
fn strict_gemini() -> Reply {
    Reply::decide(|req| {
        let body = req.json();
        let contents = body["contents"].as_array().cloned().unwrap_or_default();
        let Some(model_turn) = contents.iter().find(|c| c["role"] == "model") else {
            return Reply::json(json!({
                "candidates": [{"content": {"role": "model", "parts": [
                    {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}},
                     "thoughtSignature": THOUGHT_SIGNATURE}]},
                    "finishReason": "STOP", "index": 0}],
                "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5,
                    "thoughtsTokenCount": 7, "totalTokenCount": 22},
                "modelVersion": "gemini-3-pro-preview"}));
        };
        let signed = model_turn["parts"].as_array().is_some_and(|parts| {
            parts
                .iter()
                .filter(|p| p.get("functionCall").is_some())
                .all(|p| p["thoughtSignature"] == THOUGHT_SIGNATURE)
        });
        if !signed {
            return Reply::status_json(
                400,
                json!({"error": {"code": 400,
                "message": "Function call is missing a thought_signature in functionCall parts. This is required for tools to work correctly.",
                "status": "INVALID_ARGUMENT"}}),
            );
        }
        Reply::json(json!({
            "candidates": [{"content": {"role": "model", "parts": [{"text": "14C in Oslo."}]},
                "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 30, "candidatesTokenCount": 5, "totalTokenCount": 35},
            "modelVersion": "gemini-3-pro-preview"}))
    })
}

async fn chat(gw: &TestGateway, body: &Value) -> Value {
    let (status, _, resp) = post_json(&gw.url("/v1/chat/completions"), body).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&resp));
    serde_json::from_slice(&resp).unwrap()
}

/// Two chat turns: the assistant message goes back exactly as the first answer returned it.
async fn chat_round_trip(gw: &TestGateway, model: &str) -> (Value, Value) {
    let mut body = json!({
        "model": model, "reasoning_effort": "low", "max_tokens": 4096,
        "messages": [{"role": "user", "content": "Weather in Oslo?"}],
        "tools": weather_tool()
    });
    let first = chat(gw, &body).await;
    let assistant = first["choices"][0]["message"].clone();
    assert_eq!(first["choices"][0]["finish_reason"], "tool_calls");
    let call_id = assistant["tool_calls"][0]["id"].clone();
    let messages = body["messages"].as_array_mut().unwrap();
    messages.push(assistant.clone());
    messages.push(json!({"role": "tool", "tool_call_id": call_id, "content": "14C"}));
    let second = chat(gw, &body).await;
    assert_eq!(second["choices"][0]["message"]["content"], "14C in Oslo.");
    (assistant, second)
}

#[tokio::test]
async fn anthropic_thinking_blocks_survive_a_chat_tool_round_trip() {
    let fake = FakeUpstream::start(strict_anthropic()).await;
    let gw = TestGateway::start(&[
        ("ANTHROPIC_API_KEY", ANTHROPIC_KEY.into()),
        ("ANTHROPIC_BASE_URL", fake.url("")),
    ])
    .await;
    let (assistant, _) = chat_round_trip(&gw, "anthropic/claude-sonnet-4-5").await;
    assert_eq!(
        assistant["reasoning_content"],
        "The user wants the weather."
    );
    assert_eq!(
        assistant["thinking_blocks"],
        json!([{"type": "thinking", "thinking": "The user wants the weather.", "signature": SIGNATURE}])
    );
    let first = fake.requests()[0].json();
    assert_eq!(
        first["thinking"],
        json!({"type": "enabled", "budget_tokens": 1024})
    );

    // The same turn without the thinking block is refused, as Anthropic does.
    let mut stripped = assistant.clone();
    stripped.as_object_mut().unwrap().remove("thinking_blocks");
    let body = json!({
        "model": "anthropic/claude-sonnet-4-5", "reasoning_effort": "low", "max_tokens": 4096,
        "messages": [{"role": "user", "content": "Weather in Oslo?"}, stripped,
            {"role": "tool", "tool_call_id": "toolu_01", "content": "14C"}],
        "tools": weather_tool()
    });
    let (status, _, _) = post_json(&gw.url("/v1/chat/completions"), &body).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn gemini_thought_signatures_survive_a_chat_tool_round_trip() {
    let fake = FakeUpstream::start(strict_gemini()).await;
    let gw = TestGateway::start(&[
        ("GEMINI_API_KEY", GEMINI_KEY.into()),
        ("GEMINI_BASE_URL", fake.url("")),
    ])
    .await;
    let (assistant, _) = chat_round_trip(&gw, "gemini/gemini-3-pro-preview").await;
    assert_eq!(
        assistant["tool_calls"][0]["extra_content"],
        json!({"google": {"thought_signature": THOUGHT_SIGNATURE}})
    );
    let first = fake.requests()[0].json();
    assert_eq!(
        first["generationConfig"]["thinkingConfig"],
        json!({"thinkingLevel": "low", "includeThoughts": true})
    );

    let mut stripped = assistant.clone();
    stripped["tool_calls"][0]
        .as_object_mut()
        .unwrap()
        .remove("extra_content");
    let body = json!({
        "model": "gemini/gemini-3-pro-preview",
        "messages": [{"role": "user", "content": "Weather in Oslo?"}, stripped,
            {"role": "tool", "tool_call_id": assistant["tool_calls"][0]["id"], "content": "14C"}],
        "tools": weather_tool()
    });
    let (status, _, body) = post_json(&gw.url("/v1/chat/completions"), &body).await;
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("thought_signature"));
}

/// Two `/v1/messages` turns the way Claude Code sends them: the assistant content goes back as
/// the first answer returned it, with a `tool_result` for each `tool_use`.
async fn messages_round_trip(gw: &TestGateway, model: &str) -> Value {
    let mut body = json!({
        "model": model, "max_tokens": 32000,
        "system": [{"type": "text", "text": "You are a CLI agent.", "cache_control": {"type": "ephemeral"}}],
        "thinking": {"type": "adaptive"}, "output_config": {"effort": "low"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "metadata": {"user_id": "user_1"},
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Weather in Oslo?"}]}],
        "tools": [{"name": "get_weather", "input_schema": {"type": "object",
            "properties": {"city": {"type": "string"}}}, "defer_loading": false}]
    });
    let (status, _, resp) = post_json(&gw.url("/v1/messages"), &body).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&resp));
    let first: Value = serde_json::from_slice(&resp).unwrap();
    assert_eq!(first["stop_reason"], "tool_use");
    let content = first["content"].as_array().unwrap().clone();
    let tool = content.iter().find(|b| b["type"] == "tool_use").unwrap();
    let messages = body["messages"].as_array_mut().unwrap();
    messages.push(json!({"role": "assistant", "content": content.clone()}));
    messages.push(json!({"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": tool["id"], "content": "14C"}]}));
    messages.push(json!({"role": "system", "content": "Answer in one line."}));
    let (status, _, resp) = post_json(&gw.url("/v1/messages"), &body).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&resp));
    let second: Value = serde_json::from_slice(&resp).unwrap();
    assert_eq!(second["content"][0]["text"], "14C in Oslo.");
    first
}

#[tokio::test]
async fn gemini_thought_signatures_survive_a_messages_tool_round_trip() {
    let fake = FakeUpstream::start(strict_gemini()).await;
    let gw = TestGateway::start(&[
        ("GEMINI_API_KEY", GEMINI_KEY.into()),
        ("GEMINI_BASE_URL", fake.url("")),
    ])
    .await;
    let first = messages_round_trip(&gw, "gemini/gemini-3-pro-preview").await;
    // The answer names the model the client asked for.
    assert_eq!(first["model"], "gemini/gemini-3-pro-preview");
    let second = fake.requests()[1].json();
    assert_eq!(
        second["contents"][1]["parts"][0]["thoughtSignature"],
        THOUGHT_SIGNATURE
    );
    // The mid-conversation system message joins the system instruction.
    assert_eq!(
        second["systemInstruction"]["parts"],
        json!([{"text": "You are a CLI agent."}, {"text": "Answer in one line."}])
    );
    assert!(second.get("context_management").is_none());
}

#[tokio::test]
async fn anthropic_thinking_survives_a_messages_tool_round_trip() {
    let fake = FakeUpstream::start(strict_anthropic()).await;
    let gw = TestGateway::start(&[
        ("ANTHROPIC_API_KEY", ANTHROPIC_KEY.into()),
        ("ANTHROPIC_BASE_URL", fake.url("")),
    ])
    .await;
    let first = messages_round_trip(&gw, "anthropic/claude-sonnet-4-5").await;
    assert_eq!(first["content"][0]["signature"], SIGNATURE);
    // Everything Claude Code sends reaches Anthropic as sent.
    let second = fake.requests()[1].json();
    assert_eq!(second["context_management"]["edits"][0]["keep"], "all");
    assert_eq!(second["output_config"], json!({"effort": "low"}));
    assert_eq!(second["messages"][3]["role"], "system");
}

#[tokio::test]
async fn openai_compatible_messages_keep_system_messages_in_place() {
    let fake = FakeUpstream::start(Reply::json(json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi",
            "reasoning_content": "Greeting."}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}})))
    .await;
    let gw = TestGateway::start(&[
        ("OPENAI_API_KEY", "sk-openai-reasoning-test".into()),
        ("OPENAI_BASE_URL", fake.url("")),
    ])
    .await;
    let body = json!({
        "model": "openai/gpt-4o-mini", "max_tokens": 100,
        "thinking": {"type": "adaptive", "display": "omitted"},
        "context_management": {"edits": []}, "output_config": {"effort": "high"},
        "messages": [{"role": "user", "content": "Hi"}, {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hello?"}]
    });
    let (status, _, resp) = post_json(&gw.url("/v1/messages"), &body).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&resp));
    let v: Value = serde_json::from_slice(&resp).unwrap();
    assert_eq!(
        v["content"],
        json!([{"type": "thinking", "thinking": "Greeting.", "signature": ""},
               {"type": "text", "text": "Hi"}])
    );
    let sent = fake.requests()[0].json();
    assert_eq!(
        sent["messages"][1],
        json!({"role": "system", "content": "Be brief."})
    );
    for field in ["thinking", "context_management", "output_config"] {
        assert!(sent.get(field).is_none(), "{field} reached the upstream");
    }
}

fn responses_tools() -> Value {
    json!([{"type": "function", "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}])
}

async fn respond(gw: &TestGateway, body: &Value) -> (u16, Value) {
    let (status, _, resp) = post_json(&gw.url("/v1/responses"), body).await;
    let v = serde_json::from_slice(&resp).unwrap_or(Value::Null);
    (status, v)
}

/// Two `/v1/responses` turns the way Codex sends them (`store: false`): the first answer's output
/// items (reasoning with `encrypted_content`, the function call) go back with the tool's output.
/// `strip` removes the reasoning state from them, which the strict fakes refuse.
async fn stateless_responses_round_trip(
    gw: &TestGateway,
    model: &str,
    strip: bool,
) -> (u16, Value) {
    let first_body = json!({"model": model, "store": false, "include": ["reasoning.encrypted_content"],
        "reasoning": {"effort": "low"}, "max_output_tokens": 4096, "tools": responses_tools(),
        "input": [{"role": "user", "content": "Weather in Oslo?"}]});
    let (status, first) = respond(gw, &first_body).await;
    assert_eq!(status, 200, "{first}");
    let output = first["output"].as_array().cloned().unwrap_or_default();
    let call = output
        .iter()
        .find(|o| o["type"] == "function_call")
        .cloned()
        .expect("a function call");
    let mut input = vec![json!({"role": "user", "content": "Weather in Oslo?"})];
    input.extend(
        output
            .into_iter()
            .filter(|o| !(strip && o["type"] == "reasoning")),
    );
    input
        .push(json!({"type": "function_call_output", "call_id": call["call_id"], "output": "14C"}));
    let mut second = first_body;
    second["input"] = Value::Array(input);
    respond(gw, &second).await
}

#[tokio::test]
async fn reasoning_state_survives_a_stateless_responses_tool_round_trip() {
    let anthropic = FakeUpstream::start(strict_anthropic()).await;
    let gemini = FakeUpstream::start(strict_gemini()).await;
    let gw = TestGateway::start(&[
        ("ANTHROPIC_API_KEY", ANTHROPIC_KEY.into()),
        ("ANTHROPIC_BASE_URL", anthropic.url("")),
        ("GEMINI_API_KEY", GEMINI_KEY.into()),
        ("GEMINI_BASE_URL", gemini.url("")),
    ])
    .await;
    for model in ["anthropic/claude-sonnet-4-5", "gemini/gemini-3-pro-preview"] {
        let (status, second) = stateless_responses_round_trip(&gw, model, false).await;
        assert_eq!(status, 200, "{model}: {second}");
        let text = second["output"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|o| o["type"] == "message")
            .map(|m| m["content"][0]["text"].clone());
        assert_eq!(text, Some(json!("14C in Oslo.")), "{model}: {second}");
        // Without the reasoning items the provider refuses the turn, as the real one does.
        let (status, _) = stateless_responses_round_trip(&gw, model, true).await;
        assert_eq!(status, 400, "{model}");
    }
    let sent = gemini.requests()[1].json();
    assert_eq!(
        sent["contents"][1]["parts"][0]["thoughtSignature"],
        THOUGHT_SIGNATURE
    );
}

#[tokio::test]
async fn reasoning_state_survives_a_stored_responses_tool_round_trip() {
    let anthropic = FakeUpstream::start(strict_anthropic()).await;
    let gemini = FakeUpstream::start(strict_gemini()).await;
    let db = tempfile::tempdir().expect("tempdir");
    let gw = crate::responses::gateway(
        &db,
        &[
            ("ANTHROPIC_API_KEY", ANTHROPIC_KEY.into()),
            ("ANTHROPIC_BASE_URL", anthropic.url("")),
            ("GEMINI_API_KEY", GEMINI_KEY.into()),
            ("GEMINI_BASE_URL", gemini.url("")),
        ],
    )
    .await;
    for model in ["anthropic/claude-sonnet-4-5", "gemini/gemini-3-pro-preview"] {
        let (status, first) = respond(
            &gw,
            &json!({"model": model, "reasoning": {"effort": "low"}, "max_output_tokens": 4096,
                "tools": responses_tools(), "input": "Weather in Oslo?"}),
        )
        .await;
        assert_eq!(status, 200, "{model}: {first}");
        let call = first["output"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|o| o["type"] == "function_call")
            .cloned()
            .expect("a function call");
        // The very next request continues the stored conversation.
        let (status, second) = respond(
            &gw,
            &json!({"model": model, "reasoning": {"effort": "low"}, "max_output_tokens": 4096,
                "tools": responses_tools(), "previous_response_id": first["id"],
                "input": [{"type": "function_call_output", "call_id": call["call_id"], "output": "14C"}]}),
        )
        .await;
        assert_eq!(status, 200, "{model}: {second}");
    }
    let sent = anthropic.requests()[1].json();
    assert_eq!(sent["messages"][1]["content"][0]["signature"], SIGNATURE);
}
