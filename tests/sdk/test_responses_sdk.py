"""The official OpenAI Python SDK's `responses.create` against ProxyGate: plain, streamed, with
function tools and a tool round trip, and with `previous_response_id`, on the mock provider and
on loopback fakes of an OpenAI-compatible provider (Groq), Anthropic and Gemini, and through
an OpenAI pass-through fake. Every reply and every
stream event is validated with the SDK's own pydantic types (`Response`, `ResponseStreamEvent`),
which are generated from OpenAI's published OpenAPI description."""

import json
import urllib.request

import openai
import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from sdk_support import Fake, running_gateway, send_json, send_sse

RESPONSE = TypeAdapter(Response)
EVENT = TypeAdapter(ResponseStreamEvent)
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather",
    "strict": True,
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
}


# --- fakes -----------------------------------------------------------------------------------

def has_tool_result(body):
    return any(m.get("role") == "tool" for m in body.get("messages", [])) or any(
        isinstance(m.get("content"), list)
        and any(b.get("type") == "tool_result" for b in m["content"])
        for m in body.get("messages", [])
    )


def groq_handle(handler, body):
    """Calls get_weather first, then answers with the tool's result."""
    done = has_tool_result(body)
    usage = {"prompt_tokens": 21, "completion_tokens": 6, "total_tokens": 27}
    if done or not body.get("tools"):
        text = "It is 14C in Oslo." if done else "Hello from groq."
        message = {"role": "assistant", "content": text}
        deltas = [{"role": "assistant", "content": text[:6]}, {"content": text[6:]}]
        finish = "stop"
    else:
        call = {"id": "call_w1", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}
        message = {"role": "assistant", "content": None, "tool_calls": [call]}
        deltas = [{"role": "assistant", "tool_calls": [dict(call, index=0, function={"name": "get_weather", "arguments": ""})]},
                  {"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]},
                  {"tool_calls": [{"index": 0, "function": {"arguments": "\"Oslo\"}"}}]}]
        finish = "tool_calls"
    if body.get("stream"):
        chunks = [{"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1, "model": "m",
                   "choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in deltas]
        chunks.append({"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1, "model": "m",
                       "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
        chunks.append({"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1, "model": "m",
                       "choices": [], "usage": usage})
        raw = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
        send_sse(handler, raw)
    else:
        send_json(handler, 200, {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
                                 "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                                 "usage": usage})


def anthropic_handle(handler, body):
    done = has_tool_result(body)
    if done or not body.get("tools"):
        content = [{"type": "text", "text": "It is 14C in Oslo." if done else "Hello from Claude."}]
        stop = "end_turn"
    else:
        content = [{"type": "tool_use", "id": "toolu_w1", "name": "get_weather", "input": {"city": "Oslo"}}]
        stop = "tool_use"
    send_json(handler, 200, {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
                             "content": content, "stop_reason": stop, "stop_sequence": None,
                             "usage": {"input_tokens": 30, "output_tokens": 9}})


def gemini_handle(handler, body):
    done = any("functionResponse" in p for c in body.get("contents", []) for p in c.get("parts", []))
    if done or not body.get("tools"):
        parts = [{"text": "It is 14C in Oslo." if done else "Hello from Gemini."}]
    else:
        parts = [{"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}}]
    send_json(handler, 200, {
        "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 20, "candidatesTokenCount": 5, "totalTokenCount": 25},
        "modelVersion": "gemini-2.0-flash", "responseId": "g1"})


def openai_handle(handler, body):
    """OpenAI's own Responses API: echoes the input text."""
    send_json(handler, 200, {
        "id": "resp_openai1", "object": "response", "created_at": 1, "status": "completed", "model": body["model"],
        "output": [{"type": "message", "id": "msg_o1", "status": "completed", "role": "assistant",
                    "content": [{"type": "output_text", "text": "Hello from OpenAI.", "annotations": []}]}],
        "parallel_tool_calls": True, "tool_choice": "auto", "tools": [], "error": None, "incomplete_details": None,
        "usage": {"input_tokens": 12, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                  "output_tokens": 4, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 16}})


OPENAI = Fake(openai_handle)


@pytest.fixture(scope="module")
def gateway():
    groq = Fake(groq_handle)
    anthropic = Fake(anthropic_handle)
    gemini = Fake(gemini_handle)
    env = {"GEMINI_API_KEY": "AIza-sdk-test", "GEMINI_BASE_URL": gemini.url,"GROQ_API_KEY": "gsk-sdk-test", "GROQ_BASE_URL": f"{groq.url}/openai/v1",
           "ANTHROPIC_API_KEY": "sk-ant-sdk-test", "ANTHROPIC_BASE_URL": anthropic.url,
           "OPENAI_API_KEY": "sk-openai-sdk-test", "OPENAI_BASE_URL": f"{OPENAI.url}/v1"}
    try:
        with running_gateway(env) as base:
            yield base
    finally:
        groq.close()
        anthropic.close()
        gemini.close()
        OPENAI.close()


@pytest.fixture
def client(gateway):
    return openai.OpenAI(base_url=f"{gateway}/v1", api_key="unused", max_retries=0)


MODELS = ["mock/echo", "groq/llama-3.1-8b-instant", "anthropic/claude-sonnet-4-5", "gemini/gemini-2.0-flash"]
TOOL_MODELS = ["groq/llama-3.1-8b-instant", "anthropic/claude-sonnet-4-5", "gemini/gemini-2.0-flash"]


def create_raw(client, **kwargs):
    """`responses.create` through the SDK; the JSON is validated against `Response`."""
    raw = client.responses.with_raw_response.create(**kwargs)
    RESPONSE.validate_python(raw.http_response.json())
    return raw.parse()


def stream_events(gateway, body):
    """POSTs a streamed request and validates every event against `ResponseStreamEvent`."""
    req = urllib.request.Request(f"{gateway}/v1/responses", data=json.dumps(dict(body, stream=True)).encode(),
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        text = r.read().decode()
    events = []
    for block in text.split("\n\n"):
        data = [line[6:] for line in block.splitlines() if line.startswith("data: ")]
        if data:
            ev = json.loads(data[0])
            EVENT.validate_python(ev)
            events.append(ev)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    return events


# --- tests -----------------------------------------------------------------------------------

@pytest.mark.parametrize("model", MODELS)
def test_plain(client, model):
    resp = create_raw(client, model=model, instructions="Be terse.", input="Say hello")
    assert resp.status == "completed"
    assert resp.output_text
    assert resp.usage.total_tokens == resp.usage.input_tokens + resp.usage.output_tokens


@pytest.mark.parametrize("model", ["mock/echo", "groq/llama-3.1-8b-instant"])
def test_streamed(client, gateway, model):
    events = stream_events(gateway, {"model": model, "input": "Say hello"})
    assert events[0]["type"] == "response.created"
    assert events[-1]["type"] == "response.completed"
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert text
    # The SDK's own stream reader agrees.
    with client.responses.stream(model=model, input="Say hello") as stream:
        final = stream.get_final_response()
    assert final.output_text == text


@pytest.mark.parametrize("model", TOOL_MODELS)
def test_function_tool_round_trip(client, model):
    first = create_raw(client, model=model, input="Weather in Oslo?", tools=[WEATHER])
    calls = [o for o in first.output if o.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather"
    assert json.loads(calls[0].arguments) == {"city": "Oslo"}
    # Stateless: the items go back with the tool's output.
    items = [{"role": "user", "content": "Weather in Oslo?"}]
    items += [o.model_dump(exclude_none=True) for o in first.output]
    items.append({"type": "function_call_output", "call_id": calls[0].call_id, "output": "14C"})
    second = create_raw(client, model=model, input=items, tools=[WEATHER], store=False)
    assert "14C" in second.output_text


def test_streamed_tool_call_events(gateway):
    events = stream_events(gateway, {"model": "groq/llama-3.1-8b-instant", "input": "Weather in Oslo?",
                                     "tools": [WEATHER]})
    args = [e for e in events if e["type"] == "response.function_call_arguments.delta"]
    assert len({e["item_id"] for e in args}) == 1
    done = events[-1]["response"]
    assert done["output"][-1]["arguments"] == "{\"city\":\"Oslo\"}"


@pytest.mark.parametrize("model", TOOL_MODELS)
def test_previous_response_id(client, model):
    first = create_raw(client, model=model, input="Weather in Oslo?", tools=[WEATHER])
    call = next(o for o in first.output if o.type == "function_call")
    second = create_raw(client, model=model, previous_response_id=first.id, tools=[WEATHER],
                        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "14C"}])
    assert second.previous_response_id == first.id
    assert "14C" in second.output_text
    assert client.responses.retrieve(second.id).id == second.id
    items = client.responses.input_items.list(second.id)
    assert [i.type for i in items.data] == ["message", "function_call", "function_call_output"]
    client.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(first.id)


def test_openai_pass_through_receives_the_body_unchanged_apart_from_model(client):
    tools = [WEATHER, {"type": "web_search"}]
    resp = create_raw(client, model="openai/gpt-4.1-mini", input="Hi", tools=tools, store=False,
                      include=["reasoning.encrypted_content"], extra_body={"prompt_cache_key": "k"})
    assert resp.output_text == "Hello from OpenAI."
    sent = OPENAI.requests[-1]
    assert sent["path"] == "/v1/responses"
    assert sent["body"] == {"model": "gpt-4.1-mini", "input": "Hi", "tools": tools, "store": False,
                            "include": ["reasoning.encrypted_content"], "prompt_cache_key": "k"}
