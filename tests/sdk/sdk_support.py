"""Shared by the SDK tests of /v1/messages and /v1/embeddings: loopback fakes (http.server in
threads) and the gateway binary started from PROXYGATE_BIN (default target/debug/proxygate) on a
free loopback port, in an empty working directory with a minimal environment."""

import contextlib
import json
import os
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


class Fake:
    """A loopback HTTP server; `handle(handler, body)` answers each POST and `requests` keeps
    what arrived (path, headers, JSON body)."""

    def __init__(self, handle):
        self.requests = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            # HTTP/1.0: a streamed body ends when the connection closes.
            protocol_version = "HTTP/1.0"

            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("content-length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                fake.requests.append({"path": self.path, "headers": dict(self.headers.items()), "body": body})
                handle(self, body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        host, port = self.server.server_address
        return f"http://{host}:{port}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def send_json(handler, status, value):
    data = json.dumps(value).encode()
    handler.send_response(status)
    handler.send_header("content-type", "application/json")
    handler.send_header("content-length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def send_sse(handler, raw, piece=31):
    """Writes `raw` in awkward pieces (cut mid-line and mid-JSON)."""
    handler.send_response(200)
    handler.send_header("content-type", "text/event-stream")
    handler.end_headers()
    for i in range(0, len(raw), piece):
        handler.wfile.write(raw[i:i + piece].encode())
        handler.wfile.flush()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_gateway(extra_env):
    """Starts the binary with `extra_env` and yields its base URL."""
    binary = Path(os.environ.get("PROXYGATE_BIN", REPO / "target" / "debug" / "proxygate"))
    if not binary.is_absolute():
        binary = REPO / binary
    assert binary.exists(), f"gateway binary {binary} not found: run `cargo build` or set PROXYGATE_BIN"
    port = free_port()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOST": "127.0.0.1", "PORT": str(port),
           "RUST_LOG": "warn", **extra_env}
    with tempfile.TemporaryDirectory() as cwd:
        proc = subprocess.Popen([str(binary)], env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"gateway exited early: {proc.stderr.read().decode(errors='replace')}")
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("gateway did not answer /health within 20s")
            time.sleep(0.05)
        try:
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
