"""Claude Code (`claude -p`, from tests/agents) completes a task with a tool round trip through
the gateway: once translated to an OpenAI-compatible fake, once passed through to an Anthropic
fake that checks it received the body and the betas as Claude Code sent them.

The fakes decide from what they receive, as a model would: the first turn asks for the `Read`
tool on a file in the working directory, the turn carrying its result answers with the file's
secret. Claude Code runs with HOME in a scratch directory and non-essential traffic off.
"""

import json
import os
import subprocess
import tempfile
from pathlib import Path

import pytest

from sdk_support import REPO, Fake, running_gateway, send_json, send_sse

CLAUDE = Path(os.environ.get("CLAUDE_BIN", REPO / "tests" / "agents" / "node_modules" / ".bin" / "claude"))
SECRET = "proxygate-tool-round-trip-7f3a"
ANTHROPIC_KEY = "sk-ant-claude-code-test-key"

pytestmark = pytest.mark.skipif(
    not CLAUDE.exists() and "CLAUDE_BIN" not in os.environ,
    reason="Claude Code is not installed (npm install in tests/agents)",
)


def run_claude(base, model, workdir):
    home = tempfile.mkdtemp(prefix="claude-home-")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": home,
        "ANTHROPIC_BASE_URL": base,
        "ANTHROPIC_API_KEY": "x",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
    }
    prompt = "Read the file secret.txt in the current directory and tell me what it says."
    proc = subprocess.run(
        [str(CLAUDE), "-p", prompt, "--model", model, "--allowedTools", "Read"],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=180,
    )
    assert proc.returncode == 0, f"claude failed: {proc.stdout}\n{proc.stderr}"
    return proc.stdout


def tool_result_text(messages):
    """The text of every tool result in a chat-completions or Messages conversation."""
    out = []
    for m in messages:
        if m.get("role") == "tool":
            out.append(json.dumps(m.get("content")))
        content = m.get("content")
        if isinstance(content, list):
            out += [json.dumps(b.get("content")) for b in content if b.get("type") == "tool_result"]
    return "\n".join(out)


def openai_reply(handler, body, path):
    """An OpenAI-compatible model: Read first, then the secret."""
    seen = tool_result_text(body.get("messages", []))
    if SECRET in seen:
        message = {"role": "assistant", "content": f"The file says {SECRET}."}
        finish = "stop"
    else:
        args = json.dumps({"file_path": str(path)})
        message = {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_read_1", "type": "function", "function": {"name": "Read", "arguments": args}}]}
        finish = "tool_calls"
    if not body.get("stream"):
        send_json(handler, 200, {
            "id": "chatcmpl-cc", "object": "chat.completion", "created": 1, "model": body["model"],
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60}})
        return
    delta = dict(message)
    if delta.get("tool_calls"):
        delta["tool_calls"] = [dict(delta["tool_calls"][0], index=0)]
    chunks = [
        {"id": "chatcmpl-cc", "object": "chat.completion.chunk", "created": 1, "model": body["model"],
         "choices": [{"index": 0, "delta": delta, "finish_reason": None}]},
        {"id": "chatcmpl-cc", "object": "chat.completion.chunk", "created": 1, "model": body["model"],
         "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]},
        {"id": "chatcmpl-cc", "object": "chat.completion.chunk", "created": 1, "model": body["model"],
         "choices": [], "usage": {"prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60}},
    ]
    send_sse(handler, "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n")


def anthropic_reply(handler, body, path):
    """An Anthropic model with the same plan, speaking Messages events."""
    seen = tool_result_text(body.get("messages", []))
    if SECRET in seen:
        block = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": f"The file says {SECRET}."}]
        stop = "end_turn"
    else:
        block = {"type": "tool_use", "id": "toolu_read_1", "name": "Read", "input": {}}
        deltas = [{"type": "input_json_delta", "partial_json": json.dumps({"file_path": str(path)})}]
        stop = "tool_use"
    message = {"id": "msg_cc", "type": "message", "role": "assistant", "model": body["model"],
               "content": [], "stop_reason": None, "stop_sequence": None,
               "usage": {"input_tokens": 50, "output_tokens": 1}}
    if not body.get("stream"):
        final = dict(block)
        if final["type"] == "text":
            final["text"] = deltas[0]["text"]
        else:
            final["input"] = {"file_path": str(path)}
        send_json(handler, 200, dict(message, content=[final], stop_reason=stop))
        return
    events = [("message_start", {"type": "message_start", "message": message}),
              ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": block})]
    events += [("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": d}) for d in deltas]
    events += [("content_block_stop", {"type": "content_block_stop", "index": 0}),
               ("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                                  "usage": {"output_tokens": 10}}),
               ("message_stop", {"type": "message_stop"})]
    send_sse(handler, "".join(f"event: {e}\ndata: {json.dumps(d)}\n\n" for e, d in events))


@pytest.fixture
def workdir():
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "secret.txt").write_text(SECRET + "\n")
        yield Path(d)


def test_claude_code_through_an_openai_compatible_provider(workdir):
    fake = Fake(lambda h, body: openai_reply(h, body, workdir / "secret.txt"))
    try:
        with running_gateway({"OPENAI_API_KEY": "sk-claude-code-test", "OPENAI_BASE_URL": fake.url + "/v1"}) as base:
            out = run_claude(base, "openai/gpt-4o-mini", workdir)
    finally:
        fake.close()
    assert SECRET in out
    bodies = [r["body"] for r in fake.requests]
    # Two turns at least: the tool call, then the answer with the tool's result.
    answered = [b for b in bodies if SECRET in tool_result_text(b.get("messages", []))]
    assert answered, [json.dumps(b)[:300] for b in bodies]
    for b in bodies:
        for field in ("thinking", "context_management", "output_config", "metadata", "system"):
            assert field not in b, f"{field} reached the OpenAI-compatible upstream"


def test_claude_code_passes_through_to_anthropic(workdir):
    fake = Fake(lambda h, body: anthropic_reply(h, body, workdir / "secret.txt"))
    try:
        with running_gateway({"ANTHROPIC_API_KEY": ANTHROPIC_KEY, "ANTHROPIC_BASE_URL": fake.url}) as base:
            out = run_claude(base, "anthropic/claude-sonnet-4-5", workdir)
    finally:
        fake.close()
    assert SECRET in out
    turns = [r for r in fake.requests if r["path"].startswith("/v1/messages")
             and not r["path"].startswith("/v1/messages/count_tokens")]
    assert len(turns) >= 2
    for r in turns:
        headers = {k.lower(): v for k, v in r["headers"].items()}
        assert headers.get("x-api-key") == ANTHROPIC_KEY
        assert "anthropic-version" in headers
        assert "claude-code-20250219" in headers.get("anthropic-beta", "")
        # The body as Claude Code sent it: only `model` names the upstream id.
        assert r["body"]["model"] == "claude-sonnet-4-5"
        assert r["body"].get("max_tokens")
        assert isinstance(r["body"].get("system"), list)
        assert r["body"].get("tools")
