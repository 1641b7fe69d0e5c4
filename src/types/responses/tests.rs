//! Serde round trips of the Responses types against OpenAI's published examples.

use super::*;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Deserializes, serializes, and checks the JSON is unchanged.
fn round_trip<T: Serialize + for<'de> Deserialize<'de>>(v: Value) -> T {
    let typed: T = serde_json::from_value(v.clone()).expect("deserializes");
    let back = serde_json::to_value(&typed).expect("serializes");
    assert_eq!(back, v, "round trip changed the JSON");
    typed
}

#[test]
fn create_response_with_every_item_kind_round_trips() {
    // Shaped like the "Create a model response" examples of OpenAI's API reference.
    let req: CreateResponse = round_trip(json!({
        "model": "gpt-4.1",
        "instructions": "Be terse.",
        "input": [
            {"type": "message", "id": "msg_1", "role": "developer",
             "content": [{"type": "input_text", "text": "rules"}]},
            {"type": "message", "role": "user", "content": [
                {"type": "input_text", "text": "what is in this image?"},
                {"type": "input_image", "image_url": "https://example.com/a.png", "detail": "auto"}]},
            {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "hm"}],
             "encrypted_content": "abc"},
            {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "get_weather",
             "arguments": "{\"city\":\"Paris\"}", "status": "completed"},
            {"type": "function_call_output", "call_id": "call_1", "output": "{\"temp\":21}"},
            {"type": "message", "id": "msg_2", "role": "assistant", "status": "completed",
             "content": [{"type": "output_text", "text": "21C", "annotations": []}]},
            {"type": "item_reference", "id": "msg_0"}
        ],
        "tools": [
            {"type": "function", "name": "get_weather", "description": "Weather",
             "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
             "strict": true},
            {"type": "namespace", "name": "agents", "description": "sub-agents",
             "tools": [{"type": "function", "name": "spawn", "parameters": null, "strict": null}]},
            {"type": "web_search", "external_web_access": false}
        ],
        "tool_choice": "auto",
        "parallel_tool_calls": true,
        "max_output_tokens": 256,
        "temperature": 0.5,
        "stream": true,
        "store": false,
        "reasoning": {"effort": "high", "summary": "auto"},
        "text": {"format": {"type": "json_schema", "name": "w", "schema": {"type": "object"}},
                 "verbosity": "low"},
        "include": ["reasoning.encrypted_content"],
        "metadata": {"k": "v"},
        "prompt_cache_key": "abc",
        "client_metadata": {"thread_id": "t"}
    }));
    assert!(req.is_stream());
    assert!(!req.is_stored());
    assert!(req.includes("reasoning.encrypted_content"));
    assert_eq!(req.extra["prompt_cache_key"], "abc");
    let tools = req.tools.as_deref().unwrap_or_default();
    assert_eq!(
        tools.iter().map(ResponseTool::kind).collect::<Vec<_>>(),
        ["function", "namespace", "web_search"]
    );
    let Some(Input::Items(items)) = &req.input else {
        panic!("items expected")
    };
    assert_eq!(items.len(), 7);
    assert!(
        matches!(&items[2], Item::Reasoning(r) if r.encrypted_content.as_deref() == Some("abc"))
    );
}

#[test]
fn string_input_and_typeless_messages_are_read() {
    let req: CreateResponse = round_trip(json!({"model": "m", "input": "Hi"}));
    assert_eq!(req.input.map(Input::into_items).map(|v| v.len()), Some(1));
    let item = item_from_value(json!({"role": "user", "content": "Weather in Paris?"}))
        .expect("an easy input message");
    assert!(matches!(
        item,
        Item::Message(MessageItem {
            role: ItemRole::User,
            ..
        })
    ));
    let err = items_from_values(vec![
        json!({"role": "user", "content": "a"}),
        json!({"type": "local_shell_call"}),
    ])
    .expect_err("an unknown item type");
    assert_eq!(err.0, 1);
}

#[test]
fn response_object_round_trips() {
    // Shaped like the `Response` example of OpenAI's API reference.
    let resp: ResponseObject = round_trip(json!({
        "id": "resp_67ccd3a9da748190baa7f1570fe91ac604becb25c45c1d41",
        "object": "response",
        "created_at": 1_741_476_777,
        "status": "completed",
        "error": null,
        "incomplete_details": null,
        "instructions": null,
        "max_output_tokens": null,
        "model": "gpt-4o-2024-08-06",
        "output": [
            {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "e"},
            {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "f",
             "arguments": "{}", "status": "completed"},
            {"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
             "content": [{"type": "output_text", "text": "The image depicts a scenic landscape.",
                          "annotations": []}]}
        ],
        "parallel_tool_calls": true,
        "previous_response_id": null,
        "reasoning": {"effort": null, "summary": null},
        "store": true,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": {"input_tokens": 328, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                  "output_tokens": 52, "output_tokens_details": {"reasoning_tokens": 0},
                  "total_tokens": 380},
        "user": null,
        "metadata": {}
    }).as_object().map(|m| {
        // `reasoning` with nulls and `user: null` are not re-serialized; compare without them.
        let mut m = m.clone();
        m.insert("reasoning".into(), json!({}));
        m.remove("user");
        Value::Object(m)
    }).unwrap_or_default());
    assert_eq!(resp.status, ResponseStatus::Completed);
    assert_eq!(resp.output.len(), 3);
}

#[test]
fn stream_events_round_trip() {
    for ev in [
        json!({"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 0,
               "content_index": 0, "delta": "Hi", "logprobs": [], "sequence_number": 4}),
        json!({"type": "response.function_call_arguments.done", "item_id": "fc_1",
               "output_index": 1, "name": "f", "arguments": "{}", "sequence_number": 9}),
        json!({"type": "response.output_item.added", "output_index": 0, "sequence_number": 2,
               "item": {"type": "message", "id": "msg_1", "status": "in_progress",
                        "role": "assistant", "content": []}}),
        json!({"type": "response.content_part.added", "item_id": "msg_1", "output_index": 0,
               "content_index": 0, "sequence_number": 3,
               "part": {"type": "output_text", "text": "", "annotations": []}}),
        json!({"type": "response.reasoning_summary_text.delta", "item_id": "rs_1",
               "output_index": 0, "summary_index": 0, "delta": "hm", "sequence_number": 3}),
    ] {
        let e: StreamEvent = round_trip(ev.clone());
        assert_eq!(Some(e.type_name()), ev["type"].as_str());
    }
}
