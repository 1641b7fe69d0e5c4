"""The official OpenAI Python SDK talks to ProxyGate, which talks to loopback fakes of the
Anthropic Messages API and the Gemini generateContent API; the SDK must parse `tool_calls`,
streamed and not.

Self-contained: the fakes run here (http.server in threads), and the gateway binary is started
from PROXYGATE_BIN (default target/debug/proxygate) on a free loopback port, in an empty working
directory and a minimal environment so no .env, config file or real key is picked up.
"""

import json
import os
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import openai
import pytest

from sdk_support import Fake, free_port, send_json

REPO = Path(__file__).resolve().parents[2]
ANTHROPIC_KEY = "sk-ant-sdk-test-key"
GEMINI_KEY = "AIza-sdk-test-key"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


# --- fakes -----------------------------------------------------------------------------------


def send_sse(handler, pieces):
    handler.send_response(200)
    handler.send_header("content-type", "text/event-stream")
    handler.end_headers()
    for piece in pieces:
        handler.wfile.write(piece.encode())
        handler.wfile.flush()


def last_is_tool_result(body, provider):
    """Whether the conversation sent upstream ends with the tool's answer."""
    if provider == "anthropic":
        blocks = body["messages"][-1]["content"]
        return isinstance(blocks, list) and blocks[0].get("type") == "tool_result"
    parts = body["contents"][-1]["parts"]
    return "functionResponse" in parts[0]


def anthropic_handle(handler, body):
    if handler.headers.get("x-api-key") != ANTHROPIC_KEY or handler.path != "/v1/messages":
        send_json(handler, 401, {"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}})
        return
    usage = {"input_tokens": 30, "output_tokens": 12}
    if last_is_tool_result(body, "anthropic"):
        send_json(handler, 200, {
            "id": "msg_2", "type": "message", "role": "assistant", "model": body["model"],
            "content": [{"type": "text", "text": "It is 14C and raining in Oslo."}],
            "stop_reason": "end_turn", "usage": usage,
        })
        return
    if not body.get("stream"):
        send_json(handler, 200, {
            "id": "msg_1", "type": "message", "role": "assistant", "model": body["model"],
            "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Oslo"}},
            ],
            "stop_reason": "tool_use", "usage": usage,
        })
        return
    events = [
        ("message_start", {"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": body["model"], "content": [], "usage": {"input_tokens": 30, "output_tokens": 1}}}),
        ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Checking."}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("content_block_start", {"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {}}}),
        ("ping", {"type": "ping"}),
        ("content_block_delta", {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"ci"}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "ty\": \"Os"}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "lo\"}"}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 1}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 12}}),
        ("message_stop", {"type": "message_stop"}),
    ]
    raw = "".join(f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in events)
    # Awkward pieces: events cut mid-line and mid-JSON.
    send_sse(handler, [raw[i:i + 37] for i in range(0, len(raw), 37)])


def gemini_handle(handler, body):
    model = "gemini-2.0-flash"
    generate = f"/v1beta/models/{model}:generateContent"
    stream = f"/v1beta/models/{model}:streamGenerateContent?alt=sse"
    if handler.headers.get("x-goog-api-key") != GEMINI_KEY or handler.path not in (generate, stream):
        send_json(handler, 400, {"error": {"code": 400, "message": "API key not valid.", "status": "INVALID_ARGUMENT",
                                           "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]}})
        return
    usage = {"promptTokenCount": 30, "candidatesTokenCount": 12, "totalTokenCount": 42}
    if last_is_tool_result(body, "gemini"):
        send_json(handler, 200, {
            "candidates": [{"content": {"role": "model", "parts": [{"text": "It is 14C and raining in Oslo."}]}, "finishReason": "STOP", "index": 0}],
            "usageMetadata": usage, "modelVersion": model, "responseId": "r2",
        })
        return
    call = {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}}
    if handler.path == generate:
        send_json(handler, 200, {
            "candidates": [{"content": {"role": "model", "parts": [{"text": "Checking."}, call]}, "finishReason": "STOP", "index": 0}],
            "usageMetadata": usage, "modelVersion": model, "responseId": "r1",
        })
        return
    chunks = [
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "Checking."}]}, "index": 0}], "usageMetadata": {"promptTokenCount": 30}, "modelVersion": model, "responseId": "r1"},
        {"candidates": [{"content": {"role": "model", "parts": [call]}, "finishReason": "STOP", "index": 0}], "usageMetadata": usage, "modelVersion": model, "responseId": "r1"},
    ]
    raw = "".join(f"data: {json.dumps(c)}\r\n\r\n" for c in chunks)
    send_sse(handler, [raw[i:i + 29] for i in range(0, len(raw), 29)])


# --- gateway ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fakes():
    anthropic, gemini = Fake(anthropic_handle), Fake(gemini_handle)
    yield {"anthropic": anthropic, "gemini": gemini}
    anthropic.close()
    gemini.close()


@pytest.fixture(scope="module")
def gateway(fakes):
    binary = Path(os.environ.get("PROXYGATE_BIN", REPO / "target" / "debug" / "proxygate"))
    if not binary.is_absolute():
        binary = REPO / binary
    assert binary.exists(), f"gateway binary {binary} not found: run `cargo build` or set PROXYGATE_BIN"
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "RUST_LOG": "warn",
        "ANTHROPIC_API_KEY": ANTHROPIC_KEY,
        "ANTHROPIC_BASE_URL": fakes["anthropic"].url,
        "GEMINI_API_KEY": GEMINI_KEY,
        "GEMINI_BASE_URL": fakes["gemini"].url,
    }
    with tempfile.TemporaryDirectory() as cwd:
        proc = subprocess.Popen([str(binary)], env=env, cwd=cwd,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                pytest.fail(f"gateway exited early: {proc.stderr.read().decode(errors='replace')}")
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                proc.kill()
                pytest.fail("gateway did not answer /health within 20s")
            time.sleep(0.05)
        yield base
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def client(gateway):
    return openai.OpenAI(base_url=f"{gateway}/v1", api_key="unused", max_retries=0, timeout=20)


MODELS = {"anthropic": "anthropic/claude-3-haiku-20240307", "gemini": "gemini/gemini-2.0-flash"}
QUESTION = [{"role": "user", "content": "What is the weather in Oslo?"}]


def answer_with_tool_result(client, fakes, provider, tool_call):
    """Sends the tool's result back through the SDK and checks what reached the upstream."""
    messages = QUESTION + [
        {"role": "assistant", "content": None, "tool_calls": [tool_call]},
        {"role": "tool", "tool_call_id": tool_call["id"], "content": "14C, rain"},
    ]
    resp = client.chat.completions.create(model=MODELS[provider], messages=messages, tools=[WEATHER_TOOL])
    assert resp.choices[0].finish_reason == "stop"
    assert "14C" in resp.choices[0].message.content
    sent = fakes[provider].requests[-1]["body"]
    if provider == "anthropic":
        assert sent["messages"][-1]["content"][0] == {"type": "tool_result", "tool_use_id": tool_call["id"], "content": "14C, rain"}
        assert sent["messages"][-2]["content"][-1]["input"] == {"city": "Oslo"}
    else:
        assert sent["contents"][-1]["parts"][0] == {"functionResponse": {"name": "get_weather", "response": {"result": "14C, rain"}}}
        assert sent["contents"][-2]["parts"][-1] == {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}}


@pytest.mark.parametrize("provider", ["anthropic", "gemini"])
def test_sdk_parses_tool_calls(client, fakes, provider):
    resp = client.chat.completions.create(model=MODELS[provider], messages=QUESTION, tools=[WEATHER_TOOL])
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Checking."
    [call] = choice.message.tool_calls
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Oslo"}
    assert resp.usage.prompt_tokens == 30 and resp.usage.completion_tokens == 12
    sent = fakes[provider].requests[-1]["body"]
    if provider == "anthropic":
        assert sent["tools"][0]["name"] == "get_weather" and sent["max_tokens"] > 0
    else:
        assert sent["tools"][0]["functionDeclarations"][0]["name"] == "get_weather"
    answer_with_tool_result(client, fakes, provider, call.model_dump())


@pytest.mark.parametrize("provider", ["anthropic", "gemini"])
def test_sdk_parses_streamed_tool_calls(client, fakes, provider):
    stream = client.chat.completions.create(
        model=MODELS[provider], messages=QUESTION, tools=[WEATHER_TOOL],
        stream=True, stream_options={"include_usage": True},
    )
    calls, text, finish, usage = {}, "", None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
            for tc in choice.delta.tool_calls or []:
                entry = calls.setdefault(tc.index, {"id": None, "name": "", "arguments": ""})
                entry["id"] = tc.id or entry["id"]
                if tc.function is not None:
                    entry["name"] += tc.function.name or ""
                    entry["arguments"] += tc.function.arguments or ""
    assert text == "Checking."
    assert finish == "tool_calls"
    assert list(calls) == [0]
    call = calls[0]
    assert call["id"] and call["name"] == "get_weather"
    assert json.loads(call["arguments"]) == {"city": "Oslo"}
    assert usage is not None and usage.prompt_tokens == 30 and usage.completion_tokens == 12
    path = fakes[provider].requests[-1]["path"]
    assert path.endswith("?alt=sse") if provider == "gemini" else path == "/v1/messages"
    tool_call = {"id": call["id"], "type": "function",
                 "function": {"name": call["name"], "arguments": call["arguments"]}}
    answer_with_tool_result(client, fakes, provider, tool_call)
