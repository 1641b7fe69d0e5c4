use std::pin::Pin;

use futures_core::Stream;

use super::*;
use super::{decode::*, encode::*, sse::*};
use crate::types::{ChatChunk, ChatResponse, ChatStream, Content, Role, Stop};
use crate::types::{
    Delta, FunctionCallDelta, ReasoningEffort, ThinkingBlock, ToolCallDelta, Usage,
};

async fn encode(chunks: Vec<Result<ChatChunk, GatewayError>>) -> Vec<(String, Value)> {
    let stream: ChatStream = Box::pin(futures_util::stream::iter(chunks));
    let mut enc = MessagesSse::new(stream, 7, None);
    let mut out = String::new();
    while let Some(Ok(b)) = std::future::poll_fn(|cx| Pin::new(&mut enc).poll_next(cx)).await {
        out.push_str(std::str::from_utf8(&b).unwrap());
    }
    assert!(!out.contains("[DONE]"));
    out.split("\n\n")
        .filter(|e| e.starts_with("event: "))
        .map(|e| {
            let (ev, data) = e.split_once('\n').unwrap();
            let ev = ev.strip_prefix("event: ").unwrap().to_owned();
            let data: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
            assert_eq!(data["type"], ev.as_str(), "event line equals data.type");
            (ev, data)
        })
        .collect()
}

fn tool(index: u32, id: Option<&str>, name: Option<&str>, args: &str) -> Delta {
    Delta {
        tool_calls: Some(vec![ToolCallDelta {
            extra_content: None,
            index,
            id: id.map(str::to_owned),
            kind: id.map(|_| "function".to_owned()),
            function: Some(FunctionCallDelta {
                name: name.map(str::to_owned),
                arguments: Some(args.to_owned()),
            }),
        }]),
        ..Delta::default()
    }
}

#[tokio::test]
async fn text_and_tool_call_become_the_anthropic_event_sequence() {
    let c = |d: Delta, f: Option<&str>| Ok(ChatChunk::delta("chatcmpl-abc", 1, "m", d, f));
    let events = encode(vec![
        c(Delta::role(), None),
        c(Delta::text("Let me "), None),
        c(Delta::text("check."), None),
        c(tool(0, Some("call_1"), Some("get_weather"), ""), None),
        c(tool(0, None, None, "{\"city\": "), None),
        c(tool(0, None, None, "\"Oslo\"}"), None),
        c(Delta::default(), Some("tool_calls")),
        Ok(ChatChunk::usage_only(
            "chatcmpl-abc",
            1,
            "m",
            Usage::new(12, 9),
        )),
    ])
    .await;
    let kinds: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "message_start",
            "ping",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(events[0].1["message"]["usage"]["input_tokens"], 7);
    assert_eq!(events[6].1["content_block"]["type"], "tool_use");
    assert_eq!(events[6].1["content_block"]["id"], "call_1");
    assert_eq!(events[6].1["index"], 1);
    let args: String = events
        .iter()
        .filter(|(_, d)| d["delta"]["type"] == "input_json_delta")
        .map(|(_, d)| d["delta"]["partial_json"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(args, "{\"city\": \"Oslo\"}");
    assert_eq!(events[10].1["delta"]["stop_reason"], "tool_use");
    assert_eq!(events[10].1["usage"]["output_tokens"], 9);
    assert_eq!(events[10].1["usage"]["input_tokens"], 12);
}

#[tokio::test]
async fn errors_mid_stream_are_anthropic_error_events() {
    let events = encode(vec![
        Ok(ChatChunk::delta("c", 1, "m", Delta::text("a"), None)),
        Err(GatewayError::Internal("boom".into())),
    ])
    .await;
    let (kind, data) = events.last().unwrap();
    assert_eq!(kind, "error");
    assert_eq!(data["error"]["type"], "api_error");
}

#[test]
fn request_decodes_into_the_canonical_shape() {
    let req: MessagesRequest = serde_json::from_value(json!({
        "model": "m", "max_tokens": 64, "system": [{"type": "text", "text": "Be terse."}],
        "stop_sequences": ["END"], "temperature": 0.2, "top_k": 5,
        "metadata": {"user_id": "u1"},
        "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "Weather?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAA"}}]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "14C"},
                {"type": "text", "text": "Thanks"}]}
        ]
    }))
    .unwrap();
    let chat = req.into_chat().unwrap();
    let roles: Vec<Role> = chat.messages.iter().map(|m| m.role).collect();
    assert_eq!(
        roles,
        [
            Role::System,
            Role::User,
            Role::Assistant,
            Role::Tool,
            Role::User
        ]
    );
    let Some(Content::Parts(parts)) = &chat.messages[1].content else {
        panic!()
    };
    assert_eq!(
        parts[1].image_url.as_ref().unwrap().url,
        "data:image/png;base64,AAA"
    );
    let calls = chat.messages[2].tool_calls.as_ref().unwrap();
    assert_eq!(calls[0].function.arguments, r#"{"city":"Oslo"}"#);
    assert_eq!(chat.messages[3].tool_call_id.as_deref(), Some("toolu_1"));
    assert_eq!(chat.tool_choice, Some(json!("required")));
    assert_eq!(chat.extra["parallel_tool_calls"], false);
    assert_eq!(chat.extra["top_k"], 5);
    assert_eq!(chat.extra["user"], "u1");
    assert_eq!(chat.stop, Some(Stop::Many(vec!["END".into()])));
    assert_eq!(chat.max_tokens, Some(64));
}

#[test]
fn complete_answers_become_anthropic_messages() {
    let resp: ChatResponse = serde_json::from_value(json!({
        "id": "chatcmpl-xyz", "model": "m", "choices": [{"index": 0, "finish_reason": "tool_calls",
          "message": {"role": "assistant", "content": "Checking.", "tool_calls": [
            {"id": "call_9", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]}}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
    }))
    .unwrap();
    let m = to_anthropic(&resp);
    assert_eq!(m["id"], "msg_xyz");
    assert_eq!(m["type"], "message");
    assert_eq!(
        m["content"][0],
        json!({"type": "text", "text": "Checking."})
    );
    assert_eq!(m["content"][1]["input"], json!({"a": 1}));
    assert_eq!(m["stop_reason"], "tool_use");
    assert_eq!(m["usage"], json!({"input_tokens": 5, "output_tokens": 3}));
}

proptest::proptest! {
    #[test]
    fn any_json_is_a_request_or_a_400_naming_a_field(v in arb_json()) {
        let body = serde_json::to_vec(&v).unwrap();
        match parse(&body).and_then(|(r, _)| r.into_chat()) {
            Ok(_) => {}
            Err(GatewayError::InvalidRequest { field, .. }) => proptest::prop_assert!(!field.is_empty()),
            Err(other) => proptest::prop_assert!(false, "unexpected {other:?}"),
        }
    }
}

fn arb_json() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        (0u32..5).prop_map(Value::from),
        prop_oneof![
            Just("user"),
            Just("assistant"),
            Just("text"),
            Just("image"),
            Just("tool_use"),
            Just("tool_result"),
            Just("base64"),
            Just("url"),
            Just("tool"),
            Just("any"),
            Just("m")
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("model".to_owned()),
                    Just("max_tokens".to_owned()),
                    Just("messages".to_owned()),
                    Just("role".to_owned()),
                    Just("content".to_owned()),
                    Just("type".to_owned()),
                    Just("source".to_owned()),
                    Just("tool_use_id".to_owned()),
                    Just("system".to_owned()),
                    Just("tools".to_owned()),
                    Just("tool_choice".to_owned()),
                    Just("name".to_owned()),
                    Just("input".to_owned()),
                    Just("id".to_owned()),
                ],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

#[test]
fn error_types_follow_the_status() {
    let b = error_body(StatusCode::NOT_FOUND, "model: x");
    assert_eq!(
        b,
        json!({"type": "error", "error": {"type": "not_found_error", "message": "model: x"}})
    );
    assert_eq!(
        anthropic_error_type(StatusCode::TOO_MANY_REQUESTS),
        "rate_limit_error"
    );
    assert_eq!(
        anthropic_error_type(StatusCode::BAD_REQUEST),
        "invalid_request_error"
    );
}

#[test]
fn claude_code_fields_decode_with_mid_conversation_system_and_thinking() {
    let req: MessagesRequest = serde_json::from_value(json!({
        "model": "mock/echo", "max_tokens": 32000, "stream": true,
        "system": [{"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "List files", "cache_control": {"type": "ephemeral"}}]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "Use Bash.", "signature": "SIG"},
                {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "a.txt"}]},
            {"role": "system", "content": "Reminder: be brief."}
        ],
        "tools": [{"name": "Bash", "description": "Run", "input_schema": {"type": "object"}, "defer_loading": true}],
        "metadata": {"user_id": "u1"},
        "thinking": {"type": "adaptive", "display": "omitted"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015"}]},
        "output_config": {"effort": "high"}
    }))
    .unwrap();
    let chat = req.into_chat().unwrap();
    let roles: Vec<Role> = chat.messages.iter().map(|m| m.role).collect();
    assert_eq!(
        roles,
        [
            Role::System,
            Role::User,
            Role::Assistant,
            Role::Tool,
            Role::System
        ]
    );
    assert_eq!(chat.messages[4].text_content(), "Reminder: be brief.");
    assert_eq!(chat.reasoning_effort, Some(ReasoningEffort::High));
    let a = &chat.messages[2];
    assert_eq!(
        a.thinking_blocks,
        Some(vec![ThinkingBlock::thinking(
            "Use Bash.",
            Some("SIG".into())
        )])
    );
    assert_eq!(a.reasoning_content.as_deref(), Some("Use Bash."));
    assert!(chat.extra.get("thinking").is_none());
}

#[test]
fn effort_follows_thinking_budgets_monotonically() {
    let effort = |t: Value, o: Option<Value>| {
        requested_effort(t.as_object(), o.as_ref().and_then(Value::as_object))
    };
    let mut last = ReasoningEffort::None;
    for budget in [1024, 2048, 4096, 16000] {
        let e = effort(json!({"type": "enabled", "budget_tokens": budget}), None).unwrap();
        assert!(e >= last);
        last = e;
    }
    assert_eq!(
        effort(json!({"type": "enabled", "budget_tokens": 1024}), None),
        Some(ReasoningEffort::Low)
    );
    assert_eq!(
        effort(json!({"type": "disabled"}), Some(json!({"effort": "high"}))),
        Some(ReasoningEffort::None)
    );
    assert_eq!(
        effort(json!({"type": "adaptive"}), Some(json!({"effort": "low"}))),
        Some(ReasoningEffort::Low)
    );
    assert_eq!(
        effort(json!({"type": "adaptive"}), None),
        Some(ReasoningEffort::Medium)
    );
    assert_eq!(effort(json!(null), None), None);
}

#[tokio::test]
async fn reasoning_streams_as_a_signed_thinking_block() {
    let reasoning = |t: &str| Delta {
        reasoning_content: Some(t.into()),
        ..Delta::default()
    };
    let signed = Delta {
        thinking_blocks: Some(vec![ThinkingBlock::thinking("Hmm.", Some("SIG".into()))]),
        ..Delta::default()
    };
    let events = encode(vec![
        Ok(ChatChunk::delta("c-1", 1, "m", Delta::role(), None)),
        Ok(ChatChunk::delta("c-1", 1, "m", reasoning("Hm"), None)),
        Ok(ChatChunk::delta("c-1", 1, "m", reasoning("m."), None)),
        Ok(ChatChunk::delta("c-1", 1, "m", signed, None)),
        Ok(ChatChunk::delta(
            "c-1",
            1,
            "m",
            Delta::text("Hi"),
            Some("stop"),
        )),
    ])
    .await;
    let kinds: Vec<&str> = events.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "message_start",
            "ping",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(events[2].1["content_block"]["type"], "thinking");
    assert_eq!(events[4].1["delta"]["thinking"], "m.");
    assert_eq!(
        events[5].1["delta"],
        json!({"type": "signature_delta", "signature": "SIG"})
    );
    assert_eq!(events[7].1["index"], 1);
}

#[test]
fn whole_answers_put_thinking_blocks_first() {
    let mut msg = crate::types::ResponseMessage::assistant(Some("Hi".into()), None);
    msg.thinking_blocks = Some(vec![ThinkingBlock::redacted("ENC")]);
    let resp = ChatResponse::single("m", msg, "stop", None);
    let v = to_anthropic(&resp);
    assert_eq!(
        v["content"],
        json!([{"type": "redacted_thinking", "data": "ENC"}, {"type": "text", "text": "Hi"}])
    );
    assert_eq!(v["stop_sequence"], Value::Null);
    assert_eq!(v["usage"], json!({"input_tokens": 0, "output_tokens": 0}));
}
