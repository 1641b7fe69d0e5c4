use std::collections::HashMap;

use serde_json::{Value, json};

use super::opaque::Opaque;
use super::sse::Translator;
use super::*;
use crate::types::{
    ChatChunk, Delta, FunctionCallDelta, Role, ThinkingBlock, ToolCallDelta, Usage,
};

fn decode_json(v: Value) -> Result<Decoded, GatewayError> {
    let req = parse(v.to_string().as_bytes())?;
    let items = req.input.clone().map(Input::into_items).unwrap_or_default();
    decode(&req, &items, false)
}

#[test]
fn codex_shaped_request_decodes() {
    let d = decode_json(json!({
        "model": "mock/echo", "stream": true, "store": false,
        "include": ["reasoning.encrypted_content"], "reasoning": {"summary": "auto", "effort": "high"},
        "instructions": "Be terse.",
        "input": [
            {"type": "message", "id": "msg_1", "role": "developer",
             "content": [{"type": "input_text", "text": "rules"}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}
        ],
        "tools": [
            {"type": "function", "name": "exec_command", "strict": false,
             "parameters": {"type": "object"}},
            {"type": "namespace", "name": "agents", "description": "d",
             "tools": [{"type": "function", "name": "spawn_agent", "parameters": {"type": "object"}}]},
            {"type": "web_search", "external_web_access": false}
        ],
        "tool_choice": "auto", "max_output_tokens": 100, "prompt_cache_key": "k"
    }))
    .expect("decodes");
    let roles: Vec<Role> = d.chat.messages.iter().map(|m| m.role).collect();
    assert_eq!(roles, [Role::System, Role::Developer, Role::User]);
    let names: Vec<&str> = d
        .chat
        .tools
        .iter()
        .flatten()
        .map(|t| t.function.name.as_str())
        .collect();
    assert_eq!(names, ["exec_command", "spawn_agent"]);
    assert_eq!(d.dropped_tools, ["web_search"]);
    assert_eq!(
        d.namespaces.get("spawn_agent").map(String::as_str),
        Some("agents")
    );
    assert_eq!(d.chat.max_tokens, Some(100));
    assert_eq!(
        d.chat.reasoning_effort,
        Some(crate::types::ReasoningEffort::High)
    );
    assert!(d.chat.wants_stream_usage());
}

#[test]
fn tool_round_trip_items_become_assistant_and_tool_messages() {
    let opaque = Opaque {
        reasoning: Some("think".into()),
        blocks: Some(vec![ThinkingBlock::thinking("think", Some("sig".into()))]),
        calls: HashMap::from([(
            "call_1".to_owned(),
            json!({"google": {"thought_signature": "ts"}}),
        )]),
    };
    let d = decode_json(json!({
        "model": "m", "text": {"format": {"type": "json_schema", "name": "x", "schema": {"type": "object"}}},
        "input": [
            {"role": "user", "content": "Weather in Paris?"},
            {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": opaque.write()},
            {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{}"},
            {"type": "function_call", "call_id": "call_2", "name": "get_time", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "21C"},
            {"type": "function_call_output", "call_id": "call_2",
             "output": [{"type": "input_text", "text": "noon"}]}
        ]
    }))
    .expect("decodes");
    let m = &d.chat.messages;
    assert_eq!(m.len(), 4);
    assert_eq!(m[1].role, Role::Assistant);
    let calls = m[1].tool_calls.as_deref().unwrap_or_default();
    assert_eq!(calls.len(), 2);
    assert_eq!(
        calls[0].extra_content,
        Some(json!({"google": {"thought_signature": "ts"}}))
    );
    assert_eq!(calls[1].extra_content, None);
    assert_eq!(m[1].reasoning_content.as_deref(), Some("think"));
    assert_eq!(m[1].thinking_blocks, opaque.blocks);
    assert_eq!(m[3].text_content(), "noon");
    assert_eq!(m[3].tool_call_id.as_deref(), Some("call_2"));
    assert_eq!(
        d.chat.response_format,
        Some(
            json!({"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}})
        )
    );
}

#[test]
fn bad_requests_name_the_field() {
    let err = |v: Value| decode_json(v).expect_err("rejected").to_string();
    assert!(
        err(
            json!({"model": "m", "input": "hi", "tools": [{"type": "web_search"}],
        "tool_choice": {"type": "web_search"}})
        )
        .contains("web_search")
    );
    assert!(
        err(json!({"model": "m", "input": [{"type": "local_shell_call"}]})).contains("input[0]")
    );
    assert!(err(json!({"model": "m", "input": 3})).contains("input"));
    assert!(
        err(json!({"model": "m", "input": [{"type": "item_reference", "id": "x"}]}))
            .contains("item_reference")
    );
    assert!(err(json!({"model": "m", "instructions": "x"})).contains("input"));
}

fn chunk(delta: Delta, finish: Option<&str>) -> ChatChunk {
    ChatChunk::delta("c1", 1, "m", delta, finish)
}

fn events(buf: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(buf)
        .split("\n\n")
        .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect()
}

fn shape(encrypted: bool) -> Shape {
    let req = CreateResponse {
        model: "m".into(),
        include: encrypted.then(|| vec!["reasoning.encrypted_content".into()]),
        ..CreateResponse::default()
    };
    Shape::new(&req, Vec::new(), HashMap::new())
}

#[test]
fn stream_grammar_text_then_tool_call() {
    let mut t = Translator::new(shape(true));
    let mut buf = Vec::new();
    let text = |s: &str| Delta {
        content: Some(s.into()),
        ..Delta::default()
    };
    t.chunk(
        chunk(
            Delta {
                reasoning_content: Some("hm".into()),
                ..Delta::default()
            },
            None,
        ),
        &mut buf,
    );
    t.chunk(
        chunk(
            Delta {
                thinking_blocks: Some(vec![ThinkingBlock::thinking("hm", Some("sig".into()))]),
                ..Delta::default()
            },
            None,
        ),
        &mut buf,
    );
    t.chunk(chunk(text("Hel"), None), &mut buf);
    t.chunk(chunk(text("lo"), None), &mut buf);
    let call = |id: Option<&str>, name: Option<&str>, args: &str| Delta {
        tool_calls: Some(vec![ToolCallDelta {
            index: 0,
            id: id.map(str::to_owned),
            kind: None,
            function: Some(FunctionCallDelta {
                name: name.map(str::to_owned),
                arguments: Some(args.into()),
            }),
            extra_content: None,
        }]),
        ..Delta::default()
    };
    t.chunk(
        chunk(call(Some("call_9"), Some("f"), "{\"a\""), None),
        &mut buf,
    );
    t.chunk(chunk(call(None, None, ":1}"), Some("tool_calls")), &mut buf);
    let mut usage = ChatChunk::delta("c1", 1, "m", Delta::default(), None);
    usage.choices.clear();
    usage.usage = Some(Usage {
        prompt_tokens: 5,
        completion_tokens: 7,
        total_tokens: 12,
        ..Usage::default()
    });
    t.chunk(usage, &mut buf);
    let done = t.end(&mut buf).expect("a translated stream");
    let ev = events(&buf);
    for (i, e) in ev.iter().enumerate() {
        assert_eq!(e["sequence_number"], i as u64);
        let _: crate::types::responses::StreamEvent =
            serde_json::from_value(e.clone()).expect("a typed event");
    }
    let types: Vec<&str> = ev.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(
        types,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.reasoning_summary_part.added",
            "response.reasoning_summary_text.delta",
            "response.reasoning_summary_text.done",
            "response.reasoning_summary_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    let fc_ids: Vec<&Value> = ev
        .iter()
        .filter(|e| {
            e["type"]
                .as_str()
                .is_some_and(|t| t.starts_with("response.function_call"))
        })
        .map(|e| &e["item_id"])
        .collect();
    assert!(fc_ids.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(done.output.len(), 3);
    assert_eq!(done.usage.as_ref().map(|u| u.total_tokens), Some(12));
    let enc = ev[7]["item"]["encrypted_content"]
        .as_str()
        .and_then(Opaque::read);
    assert_eq!(enc.and_then(|o| o.blocks).map(|b| b.len()), Some(1));
}

#[test]
fn stream_failure_ends_with_response_failed() {
    let mut t = Translator::new(shape(false));
    let mut buf = Vec::new();
    t.chunk(
        chunk(
            Delta {
                content: Some("Hi".into()),
                ..Delta::default()
            },
            None,
        ),
        &mut buf,
    );
    t.fail(
        &GatewayError::Internal("upstream went away".into()),
        &mut buf,
    );
    let ev = events(&buf);
    let last = ev.last().cloned().unwrap_or_default();
    assert_eq!(last["type"], "response.failed");
    assert_eq!(last["response"]["status"], "failed");
    assert!(ev.iter().all(|e| e["type"] != "response.completed"));
}
