"""The official Anthropic Python SDK against ProxyGate's /v1/messages, the model served by loopback
fakes of (a) an OpenAI-compatible upstream, (b) Gemini and (c) Anthropic itself (pass-through: the
fake must receive what the client sent). A message, a stream and a tool-use round trip each."""

import json

import anthropic
import pytest

from sdk_support import Fake, running_gateway, send_json, send_sse

OPENAI_KEY = "sk-openai-anthropic-sdk-test"
ANTHROPIC_KEY = "sk-ant-anthropic-sdk-test"
GEMINI_KEY = "AIza-anthropic-sdk-test"
# The tool's arguments exactly as the upstream streams them (spaces and key order matter).
ARGS = '{"city": "Oslo", "unit": "celsius"}'
INPUT = {"city": "Oslo", "unit": "celsius"}
WEATHER = {"name": "get_weather", "description": "Current weather",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
                            "required": ["city"]}}
QUESTION = {"role": "user", "content": "What is the weather in Oslo?"}
GREETING = {"openai": "Hello from OpenAI.", "gemini": "Hello from Gemini.", "anthropic": "Hello from Claude."}
MODELS = {"openai": "openai/gpt-4o-mini", "gemini": "gemini/gemini-2.0-flash",
          "anthropic": "anthropic/claude-3-haiku-20240307"}
ANSWER = "It is 14C and raining in Oslo."


# --- fakes -----------------------------------------------------------------------------------


def openai_handle(handler, body):
    if handler.headers.get("authorization") != f"Bearer {OPENAI_KEY}" or handler.path != "/v1/chat/completions":
        send_json(handler, 401, {"error": {"message": "bad key", "type": "invalid_request_error"}})
        return
    last = body["messages"][-1]
    call = last["role"] != "tool" and bool(body.get("tools"))
    text = ANSWER if last["role"] == "tool" else ("Checking." if call else GREETING["openai"])
    usage = {"prompt_tokens": 30, "completion_tokens": 12, "total_tokens": 42}
    base = {"id": "chatcmpl-1", "created": 1, "model": body["model"]}
    if not body.get("stream"):
        msg = {"role": "assistant", "content": text}
        if call:
            msg["tool_calls"] = [{"id": "call_oslo1", "type": "function",
                                  "function": {"name": "get_weather", "arguments": ARGS}}]
        send_json(handler, 200, {**base, "object": "chat.completion", "usage": usage,
                                 "choices": [{"index": 0, "message": msg, "finish_reason": "tool_calls" if call else "stop"}]})
        return

    def chunk(delta, finish=None):
        return {**base, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    chunks = [chunk({"role": "assistant", "content": ""})]
    chunks += [chunk({"content": w}) for w in text.split(" ") if w][:1]
    chunks += [chunk({"content": " " + w}) for w in text.split(" ")[1:]]
    if call:
        chunks.append(chunk({"tool_calls": [{"index": 0, "id": "call_oslo1", "type": "function",
                                             "function": {"name": "get_weather", "arguments": ""}}]}))
        for piece in (ARGS[:7], ARGS[7:19], ARGS[19:]):
            chunks.append(chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}))
    chunks.append(chunk({}, "tool_calls" if call else "stop"))
    if (body.get("stream_options") or {}).get("include_usage"):
        chunks.append({**base, "object": "chat.completion.chunk", "choices": [], "usage": usage})
    send_sse(handler, "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n")


def gemini_handle(handler, body):
    model = "gemini-2.0-flash"
    generate = f"/v1beta/models/{model}:generateContent"
    stream = f"/v1beta/models/{model}:streamGenerateContent?alt=sse"
    if handler.headers.get("x-goog-api-key") != GEMINI_KEY or handler.path not in (generate, stream):
        send_json(handler, 400, {"error": {"code": 400, "message": "API key not valid.", "status": "INVALID_ARGUMENT"}})
        return
    usage = {"promptTokenCount": 30, "candidatesTokenCount": 12, "totalTokenCount": 42}
    answered = "functionResponse" in body["contents"][-1]["parts"][0]
    call = not answered and bool(body.get("tools"))
    text = ANSWER if answered else ("Checking." if call else GREETING["gemini"])
    parts = [{"text": text}] + ([{"functionCall": {"name": "get_weather", "args": INPUT}}] if call else [])
    if handler.path == generate:
        send_json(handler, 200, {"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}],
                                 "usageMetadata": usage, "modelVersion": model, "responseId": "r1"})
        return
    chunks = [{"candidates": [{"content": {"role": "model", "parts": [p]}, "index": 0}], "usageMetadata": {"promptTokenCount": 30}}
              for p in parts]
    chunks[-1]["candidates"][0]["finishReason"] = "STOP"
    chunks[-1]["usageMetadata"] = usage
    send_sse(handler, "".join(f"data: {json.dumps(c)}\r\n\r\n" for c in chunks))


def anthropic_handle(handler, body):
    if handler.headers.get("x-api-key") != ANTHROPIC_KEY or handler.path != "/v1/messages":
        send_json(handler, 401, {"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}})
        return
    content = body["messages"][-1]["content"]
    answered = isinstance(content, list) and content[0].get("type") == "tool_result"
    call = not answered and bool(body.get("tools"))
    text = ANSWER if answered else ("Checking." if call else GREETING["anthropic"])
    blocks = [{"type": "text", "text": text}]
    if call:
        blocks.append({"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": INPUT})
    stop = "tool_use" if call else "end_turn"
    if not body.get("stream"):
        send_json(handler, 200, {"id": "msg_1", "type": "message", "role": "assistant", "model": body["model"],
                                 "content": blocks, "stop_reason": stop, "stop_sequence": None,
                                 "usage": {"input_tokens": 30, "output_tokens": 12}})
        return
    events = [("message_start", {"type": "message_start", "message": {
        "id": "msg_1", "type": "message", "role": "assistant", "model": body["model"], "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 30, "output_tokens": 1}}}),
        ("ping", {"type": "ping"}),
        ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0})]
    if call:
        events += [
            ("content_block_start", {"type": "content_block_start", "index": 1, "content_block": {
                "type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {}}}),
            ("content_block_delta", {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ""}}),
            ("content_block_delta", {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ARGS[:11]}}),
            ("content_block_delta", {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ARGS[11:]}}),
            ("content_block_stop", {"type": "content_block_stop", "index": 1})]
    events += [("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                                  "usage": {"output_tokens": 12}}),
               ("message_stop", {"type": "message_stop"})]
    send_sse(handler, "".join(f"event: {n}\ndata: {json.dumps(d)}\n\n" for n, d in events))


# --- gateway ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fakes():
    fs = {"openai": Fake(openai_handle), "gemini": Fake(gemini_handle), "anthropic": Fake(anthropic_handle)}
    yield fs
    for f in fs.values():
        f.close()


@pytest.fixture(scope="module")
def client(fakes):
    env = {
        "OPENAI_API_KEY": OPENAI_KEY, "OPENAI_BASE_URL": fakes["openai"].url + "/v1",
        "GEMINI_API_KEY": GEMINI_KEY, "GEMINI_BASE_URL": fakes["gemini"].url,
        "ANTHROPIC_API_KEY": ANTHROPIC_KEY, "ANTHROPIC_BASE_URL": fakes["anthropic"].url,
    }
    with running_gateway(env) as base:
        yield anthropic.Anthropic(base_url=base, api_key="unused", max_retries=0, timeout=20)


PROVIDERS = ["openai", "gemini", "anthropic"]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_message(client, provider):
    msg = client.messages.create(model=MODELS[provider], max_tokens=100,
                                 messages=[{"role": "user", "content": "Hello"}])
    assert msg.type == "message" and msg.role == "assistant"
    assert msg.content[0].type == "text" and msg.content[0].text == GREETING[provider]
    assert msg.stop_reason == "end_turn"
    assert msg.usage.input_tokens == 30 and msg.usage.output_tokens == 12


@pytest.mark.parametrize("provider", PROVIDERS)
def test_stream(client, provider):
    with client.messages.stream(model=MODELS[provider], max_tokens=100,
                                messages=[{"role": "user", "content": "Hello"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == GREETING[provider]
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 12


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("provider", PROVIDERS)
def test_tool_use_round_trip(client, fakes, provider, stream):
    kwargs = {"model": MODELS[provider], "max_tokens": 200, "tools": [WEATHER], "messages": [QUESTION]}
    if stream:
        with client.messages.stream(**kwargs) as s:
            msg = s.get_final_message()
    else:
        msg = client.messages.create(**kwargs)
    assert msg.stop_reason == "tool_use"
    [tool] = [b for b in msg.content if b.type == "tool_use"]
    assert tool.name == "get_weather" and tool.input == INPUT and tool.id
    follow_up = [QUESTION,
                 {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in msg.content]},
                 {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool.id, "content": "14C, rain"}]}]
    reply = client.messages.create(**{**kwargs, "messages": follow_up})
    assert reply.stop_reason == "end_turn"
    assert reply.content[0].text == ANSWER
    sent = fakes[provider].requests[-1]["body"]
    if provider == "openai":
        assert sent["messages"][-1] == {"role": "tool", "tool_call_id": tool.id, "content": "14C, rain"}
        assert json.loads(sent["messages"][-2]["tool_calls"][0]["function"]["arguments"]) == INPUT
    elif provider == "gemini":
        assert sent["contents"][-1]["parts"][0] == {"functionResponse": {"name": "get_weather", "response": {"result": "14C, rain"}}}
    else:
        assert sent["messages"] == follow_up


def test_streamed_openai_tool_call_arrives_as_input_json_deltas(client, fakes):
    events = client.messages.create(model=MODELS["openai"], max_tokens=100, tools=[WEATHER],
                                    messages=[QUESTION], stream=True)
    starts, pieces, deltas = [], [], []
    for event in events:
        if event.type == "content_block_start" and event.content_block.type == "tool_use":
            starts.append(event)
        if event.type == "content_block_delta" and event.delta.type == "input_json_delta":
            pieces.append(event.delta.partial_json)
        if event.type == "message_delta":
            deltas.append(event)
    assert len(starts) == 1 and starts[0].content_block.name == "get_weather"
    assert len(pieces) == 3
    assert "".join(pieces) == ARGS
    assert len(deltas) == 1 and deltas[0].delta.stop_reason == "tool_use" and deltas[0].usage.output_tokens == 12
    assert fakes["openai"].requests[-1]["body"]["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_upstream_receives_what_the_client_sent(client, fakes, stream):
    kwargs = {"model": MODELS["anthropic"], "max_tokens": 77,
              "system": [{"type": "text", "text": "Be terse.", "cache_control": {"type": "ephemeral"}}],
              "metadata": {"user_id": "u-9"}, "stop_sequences": ["END"],
              "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}]}
    # Sampling fields this SDK version has no arguments for still reach the upstream.
    extra = {"temperature": 0.3, "top_k": 5}
    if stream:
        with client.messages.stream(**kwargs, extra_body=extra) as s:
            assert s.get_final_message().content[0].text == GREETING["anthropic"]
    else:
        assert client.messages.create(**kwargs, extra_body=extra).content[0].text == GREETING["anthropic"]
    sent = fakes["anthropic"].requests[-1]["body"]
    expected = {**kwargs, **extra, "model": "claude-3-haiku-20240307"}
    if stream:
        expected["stream"] = True
    assert sent == expected


def test_errors_have_anthropic_shape(client):
    with pytest.raises(anthropic.NotFoundError) as e:
        client.messages.create(model="no-such-model-9", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert e.value.body["type"] == "not_found_error" or e.value.body.get("error", {}).get("type") == "not_found_error"
