"""Codex CLI (`codex exec`) and the OpenAI Agents SDK complete a task with a tool round trip
against the gateway, with a translated provider behind it: a loopback fake of an
OpenAI-compatible upstream (Groq) scripted to call a tool first and answer once it sees the
tool's output. The clients come from tests/agents/node_modules (`npm install` there)."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "sdk"))
from sdk_support import Fake, running_gateway, send_json, send_sse  # noqa: E402

MODULES = Path(os.environ.get("AGENT_NODE_MODULES", HERE / "node_modules"))
MODEL = "groq/llama-3.1-8b-instant"


def tool_outputs(body):
    return [m.get("content") for m in body.get("messages", []) if m.get("role") == "tool"]


def scripted(handler, body):
    """Calls exec_command (Codex) or get_weather (the Agents SDK) first; then answers with
    the tool's output."""
    outputs = tool_outputs(body)
    names = {t["function"]["name"] for t in body.get("tools", [])}
    usage = {"prompt_tokens": 40, "completion_tokens": 8, "total_tokens": 48}
    if outputs:
        last = outputs[-1] if isinstance(outputs[-1], str) else json.dumps(outputs[-1])
        deltas = [{"role": "assistant", "content": "Tool said: "}, {"content": last[:200]}]
        finish = "stop"
    elif "exec_command" in names or "get_weather" in names:
        name, args = (("exec_command", {"cmd": "echo proxygate-tool-ok"}) if "exec_command" in names
                      else ("get_weather", {"city": "Paris"}))
        deltas = [{"role": "assistant", "tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                                         "function": {"name": name, "arguments": ""}}]},
                  {"tool_calls": [{"index": 0, "function": {"arguments": json.dumps(args)}}]}]
        finish = "tool_calls"
    else:
        deltas = [{"role": "assistant", "content": "Nothing to do."}]
        finish = "stop"
    if body.get("stream"):
        chunks = [{"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                   "choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in deltas]
        chunks.append({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                       "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
        chunks.append({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                       "choices": [], "usage": usage})
        send_sse(handler, "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n")
        return
    message = {"role": "assistant", "content": "".join(d.get("content") or "" for d in deltas) or None}
    calls = [tc for d in deltas for tc in d.get("tool_calls", [])]
    if calls:
        message["tool_calls"] = [{"id": "call_1", "type": "function",
                                  "function": {"name": calls[0]["function"]["name"], "arguments": calls[1]["function"]["arguments"]}}]
    send_json(handler, 200, {"id": "c", "object": "chat.completion", "created": 1, "model": "m",
                             "choices": [{"index": 0, "message": message, "finish_reason": finish}], "usage": usage})


@pytest.fixture
def fake():
    f = Fake(scripted)
    yield f
    f.close()


def need(path):
    if not path.exists():
        pytest.skip(f"{path} is not installed: run `npm install` in tests/agents")


def test_codex_exec_runs_a_command_through_the_gateway(fake):
    codex = MODULES / ".bin" / "codex"
    need(codex)
    with running_gateway({"GROQ_API_KEY": "gsk-agents", "GROQ_BASE_URL": f"{fake.url}/openai/v1"}) as base, \
            tempfile.TemporaryDirectory() as home, tempfile.TemporaryDirectory() as work:
        Path(home, "config.toml").write_text(
            f'model = "{MODEL}"\nmodel_provider = "proxygate"\n'
            f'[model_providers.proxygate]\nname = "ProxyGate"\nbase_url = "{base}/v1"\n'
            'env_key = "PROXYGATE_API_KEY"\nwire_api = "responses"\n')
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home, "CODEX_HOME": home,
               "PROXYGATE_API_KEY": "unused"}
        run = subprocess.run([str(codex), "exec", "--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox",
                              "-C", work, "Run the echo command and report its output."],
                             env=env, capture_output=True, text=True, timeout=180)
        out = run.stdout + run.stderr
        assert run.returncode == 0, out
    outputs = [o for r in fake.requests for o in tool_outputs(r["body"])]
    assert any("proxygate-tool-ok" in json.dumps(o) for o in outputs), fake.requests[-1]["body"]
    assert "Tool said:" in out, out
    assert all(r["path"] == "/openai/v1/chat/completions" for r in fake.requests)


@pytest.mark.parametrize("stream", ["0", "1"])
def test_agents_sdk_run_with_a_function_tool(fake, stream):
    need(MODULES / "@openai" / "agents")
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    with running_gateway({"GROQ_API_KEY": "gsk-agents", "GROQ_BASE_URL": f"{fake.url}/openai/v1"}) as base:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "BASE_URL": f"{base}/v1", "MODEL": MODEL,
               "STREAM": stream, "NODE_PATH": str(MODULES)}
        script = HERE / "agents_run.mjs"
        run = subprocess.run([node, str(script)], env=env, capture_output=True, text=True, timeout=120, cwd=HERE)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "FINAL: Tool said: Sunny in Paris" in run.stdout, run.stdout + run.stderr
