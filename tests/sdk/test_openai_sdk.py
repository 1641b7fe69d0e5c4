"""End to end with the official OpenAI Python SDK against the running `proxygate` binary.

The binary is started with no configuration at all (the built-in mock provider), exactly as a
new user would run it; PROXYGATE_BIN points at it (default target/debug/proxygate).
"""

import os
import socket
import subprocess
import time
import urllib.request

import openai
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.abspath(os.environ.get("PROXYGATE_BIN", os.path.join(ROOT, "target", "debug", "proxygate")))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    port = free_port()
    cwd = tmp_path_factory.mktemp("gw")  # no .env, no proxygate.toml: pure defaults
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.endswith("_BASE_URL")}
    env["PORT"] = str(port)
    proc = subprocess.Popen([BIN], cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 15
    while True:
        try:
            with urllib.request.urlopen(base + "/health", timeout=1) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            raise RuntimeError("gateway did not start: " + proc.stderr.read().decode(errors="replace"))
        time.sleep(0.05)
    yield base
    proc.terminate()
    assert proc.wait(timeout=15) == 0, "SIGTERM must drain and exit 0"


def client(base):
    return openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0)


def test_chat_completion(gateway):
    resp = client(gateway).chat.completions.create(
        model="mock/echo", messages=[{"role": "user", "content": "Hello from the SDK"}]
    )
    assert resp.object == "chat.completion"
    assert resp.choices[0].finish_reason == "stop"
    assert "Hello from the SDK" in resp.choices[0].message.content
    assert resp.usage.prompt_tokens > 0 and resp.usage.completion_tokens > 0


def test_stream_matches_the_whole_answer(gateway):
    c = client(gateway)
    messages = [{"role": "user", "content": "Stream this please"}]
    whole = c.chat.completions.create(model="mock/echo", messages=messages).choices[0].message.content
    stream = c.chat.completions.create(
        model="mock/echo", messages=messages, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == whole
    assert len(chunks) > 3, "chunks arrive one by one"
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens > 0
    assert all(ch.usage is None for ch in chunks[:-1])


def test_errors_are_raised_as_openai_errors(gateway):
    c = client(gateway)
    with pytest.raises(openai.NotFoundError) as e:
        c.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    assert "no-such-model" in str(e.value)
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model="mock/echo", messages=[{"role": "wizard", "content": "x"}])
    assert "role" in str(e.value)


def test_models_list(gateway):
    ids = [m.id for m in client(gateway).models.list()]
    assert "mock/echo" in ids and "groq/llama-3.1-8b-instant" in ids
