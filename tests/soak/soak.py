#!/usr/bin/env python3
"""Soak and fault-injection run of the proxygate binary.

Starts its own Redis and PostgreSQL (never the machine's), a fake OpenAI upstream that injects
faults, and two gateway replicas sharing them; drives concurrent clients (chat, streams,
/v1/messages, /v1/responses, embeddings) for a chosen duration while the schedule below kills
replica A with SIGKILL and restarts it, restarts Redis and PostgreSQL, and fills replica A's
journal disk (a small tmpfs) for a while. Then it stops both replicas with SIGTERM and reconciles
the usage records in PostgreSQL against what the clients saw:

  lost       a response the client saw complete with no usage record (by x-request-id)
  duplicate  a request id with more than one record
  phantom    a record no client request caused
  clean      a stream whose upstream was cut that still ended as a whole answer
  unsignalled a 200 answer that ended with neither its end nor an error event,
             while its replica was alive
  budget     a key's recorded spend above its budget
  rpm        more answers in a one-minute window than a key's rpm (windows without a Redis outage)
  panics     "panicked" or "internal error" in any replica's log
  rss drift  replica B's resident memory at the end against just after warm-up

Prints one summary line and a table, writes the figures as JSON (--json), exits 0 when every
check holds, 1 when one fails, 2 when the run could not be set up.

Only the Python standard library, redis-server and the PostgreSQL server binaries are needed.
Without PostgreSQL the replicas share a SQLite file and the PostgreSQL restart is skipped (said
in the output); without root (tmpfs) the disk-full fault is skipped the same way.

  python3 tests/soak/soak.py --binary target/debug/proxygate --duration 60
  python3 tests/soak/soak.py --binary target/release/proxygate --duration 1800 --clients 16

--plant lose-1-in-100 or --plant phantom removes one record in a hundred (or adds one record)
in the store after the run and before the reconciliation: the run must then fail.
"""

import argparse
import calendar
import glob
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MASTER = "soak-master-key-7f3a9c1e5b"
UPSTREAM_KEY = "sk-soak-upstream-0123456789abcdef"
CHAT_MODEL = "openai/gpt-4o-mini"
EMBED_MODEL = "openai/text-embedding-3-small"
# gpt-4o-mini's built-in rates: $0.15 / $0.60 per 1M input / output tokens.
PROMPT_TOKENS = 20
COMPLETION_TOKENS = 12
COST_PER_CHAT = (PROMPT_TOKENS * 0.15 + COMPLETION_TOKENS * 0.60) / 1e6
REQUEST_TIMEOUT_MS = 1500
STREAM_IDLE_TIMEOUT_MS = 1500

# Faults a request asks the fake upstream for (in its prompt). The "mid" ones cut a stream after
# its first chunks; on a non-stream request they cut the body.
MID_FAULTS = ("mid-reset", "mid-stall", "mid-truncate")
REQUEST_FAULTS = (
    ("none", 880),
    ("reset-before", 10),
    ("hang", 10),
    ("slow", 30),
    ("err500", 10),
    ("err429", 2),
    ("mid-reset", 20),
    ("mid-stall", 20),
    ("mid-truncate", 20),
)


def log(msg):
    print(f"[soak {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- fake upstream (OpenAI wire format)


class Fake:
    """An OpenAI-compatible upstream: /v1/chat/completions (JSON and SSE) and /v1/embeddings.

    Per request faults come from `soak-fault=<kind>` in the prompt; bursts come from a clock:
    every 15 s a 1.5 s burst of 503s, and 7 s later a 1 s burst of 429s with retry-after: 1.
    """

    def __init__(self, plant_clean=False):
        self.t0 = time.time()
        # A broken upstream stand-in for the self-check: one "mid" fault in ten is served whole.
        self.plant_clean = plant_clean
        self.planted = 0
        self.lock = threading.Lock()
        self.counts = {}
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                fake.handle(self)

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                # A gateway that gives up on an attempt (a hang past its timeout, a SIGKILL)
                # closes the connection under the fake: expected, not worth a traceback.
                if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
                    return
                super().handle_error(request, client_address)

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def count(self, what):
        with self.lock:
            self.counts[what] = self.counts.get(what, 0) + 1

    def burst(self):
        t = (time.time() - self.t0) % 15.0
        if 5.0 <= t < 6.5:
            return "burst503"
        if 12.0 <= t < 13.0:
            return "burst429"
        return None

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    @staticmethod
    def reset(h):
        try:
            h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        h.close_connection = True
        try:
            h.connection.close()
        except OSError:
            pass

    @staticmethod
    def send_json(h, status, obj, extra=()):
        body = json.dumps(obj).encode()
        h.send_response(status)
        h.send_header("content-type", "application/json")
        h.send_header("content-length", str(len(body)))
        for k, v in extra:
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(body)
        h.wfile.flush()

    def handle(self, h):
        try:
            n = int(h.headers.get("content-length") or 0)
            req = json.loads(h.rfile.read(n) or b"{}")
        except (ValueError, OSError):
            self.send_json(h, 400, {"error": {"message": "bad json", "type": "invalid_request_error"}})
            return
        text = json.dumps(req)
        fault = "none"
        if "soak-fault=" in text:
            fault = text.split("soak-fault=", 1)[1].split()[0].strip('"\\,}]')
        burst = self.burst()
        if self.plant_clean and fault in MID_FAULTS and req.get("stream"):
            with self.lock:
                self.planted += 1
                if self.planted % 10 == 1:
                    fault = "none"
        self.count(burst or fault)
        try:
            if burst == "burst503":
                self.send_json(h, 503, {"error": {"message": "overloaded", "type": "server_error"}})
                return
            if burst == "burst429":
                self.send_json(h, 429, {"error": {"message": "rate limited", "type": "rate_limit_error"}},
                               [("retry-after", "1")])
                return
            if fault == "reset-before":
                self.reset(h)
                return
            if fault == "hang":
                time.sleep(REQUEST_TIMEOUT_MS / 1000 + 1.0)
            if fault == "err500":
                self.send_json(h, 500, {"error": {"message": "internal", "type": "server_error"}})
                return
            if fault == "err429":
                self.send_json(h, 429, {"error": {"message": "slow down", "type": "rate_limit_error"}},
                               [("retry-after", "1")])
                return
            if h.path.endswith("/embeddings"):
                self.embeddings(h, req, fault)
            elif h.path.endswith("/responses"):
                self.responses(h, req, fault)
            elif req.get("stream"):
                self.stream(h, req, fault)
            else:
                self.chat(h, req, fault)
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass

    def embeddings(self, h, req, fault):
        inputs = req.get("input")
        inputs = inputs if isinstance(inputs, list) else [inputs]
        if fault in MID_FAULTS:
            self.cut_body(h, fault)
            return
        data = [{"object": "embedding", "index": i, "embedding": [0.25, -0.5, 0.125, float(i)]}
                for i in range(len(inputs))]
        self.send_json(h, 200, {"object": "list", "data": data, "model": "text-embedding-3-small",
                                "usage": {"prompt_tokens": 8 * len(inputs), "total_tokens": 8 * len(inputs)}})

    def cut_body(self, h, fault):
        """A JSON body that announces more bytes than it sends, then a reset or a stall."""
        h.send_response(200)
        h.send_header("content-type", "application/json")
        h.send_header("content-length", "400")
        h.end_headers()
        h.wfile.write(b'{"id":"chatcmpl-soak","object":"chat.completion","choices":[')
        h.wfile.flush()
        if fault == "mid-stall":
            time.sleep(STREAM_IDLE_TIMEOUT_MS / 1000 + REQUEST_TIMEOUT_MS / 1000 + 1.0)
        self.reset(h)

    def chat(self, h, req, fault):
        if fault in MID_FAULTS:
            self.cut_body(h, fault)
            return
        words = " ".join(f"w{i}" for i in range(COMPLETION_TOKENS))
        self.send_json(h, 200, {
            "id": "chatcmpl-soak", "object": "chat.completion", "created": int(time.time()),
            "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": words},
                         "finish_reason": "stop", "logprobs": None}],
            "usage": {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": COMPLETION_TOKENS,
                      "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS},
        })

    @staticmethod
    def response_object(status, text):
        return {
            "id": "resp_soak", "object": "response", "created_at": int(time.time()), "status": status,
            "model": "gpt-4o-mini",
            "output": [{"type": "message", "id": "msg_soak", "status": status, "role": "assistant",
                        "content": [{"type": "output_text", "text": text, "annotations": []}]}]
            if text else [],
            "usage": {"input_tokens": PROMPT_TOKENS, "input_tokens_details": {"cached_tokens": 0},
                      "output_tokens": COMPLETION_TOKENS, "output_tokens_details": {"reasoning_tokens": 0},
                      "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS} if status == "completed" else None,
        }

    def responses(self, h, req, fault):
        """OpenAI's Responses API (the gateway passes /v1/responses through to OpenAI)."""
        words = [f"w{i}" for i in range(COMPLETION_TOKENS)]
        if not req.get("stream"):
            if fault in MID_FAULTS:
                self.cut_body(h, fault)
                return
            self.send_json(h, 200, self.response_object("completed", " ".join(words)))
            return
        h.send_response(200)
        h.send_header("content-type", "text/event-stream")
        h.send_header("transfer-encoding", "chunked")
        h.end_headers()
        seq = [0]

        def event(obj):
            obj["sequence_number"] = seq[0]
            seq[0] += 1
            data = f"event: {obj['type']}\ndata: {json.dumps(obj)}\n\n".encode()
            h.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            h.wfile.flush()

        event({"type": "response.created", "response": self.response_object("in_progress", "")})
        for i, w in enumerate(words):
            if fault == "slow" and i % 2 == 0:
                time.sleep(0.15)
            if i == 4 and fault in MID_FAULTS:
                if fault == "mid-reset":
                    self.reset(h)
                elif fault == "mid-stall":
                    time.sleep(STREAM_IDLE_TIMEOUT_MS / 1000 + 1.0)
                    self.reset(h)
                else:
                    h.wfile.write(b"0\r\n\r\n")
                    h.wfile.flush()
                return
            event({"type": "response.output_text.delta", "item_id": "msg_soak", "output_index": 0,
                   "content_index": 0, "delta": w + " ", "logprobs": []})
        event({"type": "response.completed", "response": self.response_object("completed", " ".join(words))})
        h.wfile.write(b"0\r\n\r\n")
        h.wfile.flush()

    def stream(self, h, req, fault):
        h.send_response(200)
        h.send_header("content-type", "text/event-stream")
        h.send_header("transfer-encoding", "chunked")
        h.end_headers()

        def event(obj):
            data = b"data: " + (obj if isinstance(obj, bytes) else json.dumps(obj).encode()) + b"\n\n"
            h.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            h.wfile.flush()

        base = {"id": "chatcmpl-soak", "object": "chat.completion.chunk", "created": int(time.time()),
                "model": "gpt-4o-mini"}
        event({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                    "finish_reason": None}]})
        for i in range(COMPLETION_TOKENS // 2):
            if fault == "slow":
                time.sleep(0.15)
            if i == 2 and fault in MID_FAULTS:
                if fault == "mid-reset":
                    self.reset(h)
                elif fault == "mid-stall":
                    time.sleep(STREAM_IDLE_TIMEOUT_MS / 1000 + 1.0)
                    self.reset(h)
                else:  # mid-truncate: the HTTP body ends cleanly, the stream does not
                    h.wfile.write(b"0\r\n\r\n")
                    h.wfile.flush()
                return
            event({**base, "choices": [{"index": 0, "delta": {"content": f"w{2 * i} w{2 * i + 1} "},
                                        "finish_reason": None}]})
        event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        if (req.get("stream_options") or {}).get("include_usage"):
            event({**base, "choices": [], "usage": {"prompt_tokens": PROMPT_TOKENS,
                                                    "completion_tokens": COMPLETION_TOKENS,
                                                    "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS}})
        event(b"[DONE]")
        h.wfile.write(b"0\r\n\r\n")
        h.wfile.flush()


# ---------------------------------------------------------------- services the harness owns


class Redis:
    def __init__(self, work):
        self.port = free_port()
        self.log = open(os.path.join(work, "redis.log"), "ab")
        self.proc = None
        self.down_since = None
        self.outages = []  # (start, end) of each outage

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"], stdout=self.log, stderr=self.log)
        for _ in range(100):
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                time.sleep(0.05)
        if self.down_since is not None:
            self.outages.append((self.down_since, time.time()))
            self.down_since = None

    def stop(self):
        if self.proc:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
            self.down_since = time.time()

    def restart(self, down):
        self.stop()
        time.sleep(down)
        self.start()


def pg_bindir():
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(d, "initdb")):
            return d
    found = shutil.which("initdb")
    return os.path.dirname(found) if found else None


class Postgres:
    """A throwaway cluster in the work directory (initdb + pg_ctl, run as `postgres` when root)."""

    def __init__(self, work, bindir):
        self.bindir = bindir
        self.port = free_port()
        self.dir = os.path.join(work, "pg")
        self.sock = os.path.join(work, "pgsock")
        self.logfile = os.path.join(work, "postgres.log")
        os.makedirs(self.sock, exist_ok=True)
        self.user = None
        if os.geteuid() == 0:
            self.user = "postgres"
            shutil.chown(work, self.user)
            shutil.chown(self.sock, self.user)
        self.run("initdb", "-D", self.dir, "-A", "trust", "-U", "soak", "--no-sync")
        self.url = f"postgres://soak@127.0.0.1:{self.port}/soak"

    def run(self, tool, *args, check=True):
        cmd = [os.path.join(self.bindir, tool), *args]
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=check)

    def start(self):
        self.run("pg_ctl", "-D", self.dir, "-l", self.logfile, "-w", "-t", "30", "-o",
                 f"-p {self.port} -k {self.sock} -c listen_addresses=127.0.0.1 -c fsync=off "
                 f"-c max_connections=100", "start")

    def createdb(self):
        self.run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "soak", "soak")

    def stop(self, mode="immediate"):
        self.run("pg_ctl", "-D", self.dir, "-m", mode, "-w", "stop", check=False)

    def restart(self, down):
        self.stop()
        time.sleep(down)
        self.start()

    def query(self, sql):
        out = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "soak", "-d",
                              "soak", "-At", "-F", "\t", "-c", sql], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, check=True, text=True)
        return [line.split("\t") for line in out.stdout.splitlines() if line]


class Sqlite:
    """Stand-in store when no PostgreSQL tools exist: one SQLite file both replicas share."""

    def __init__(self, work):
        self.path = os.path.join(work, "usage.db")
        self.url = self.path

    def query(self, sql):
        con = sqlite3.connect(self.path, timeout=10)
        try:
            rows = con.execute(sql).fetchall()
            con.commit()
            return [["" if v is None else str(v) for v in r] for r in rows]
        finally:
            con.close()


class Disk:
    """Replica A's journal directory on a small tmpfs, filled to the last byte on demand."""

    SIZE = 16 * 1024 * 1024

    def __init__(self, work):
        self.dir = os.path.join(work, "journal-a")
        os.makedirs(self.dir, exist_ok=True)
        self.mounted = False
        self.filler = os.path.join(self.dir, "filler.bin")
        self.windows = []
        if os.geteuid() == 0 and shutil.which("mount"):
            r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={self.SIZE}", "tmpfs", self.dir],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            self.mounted = r.returncode == 0
            if not self.mounted:
                log(f"cannot mount a tmpfs ({r.stdout.decode().strip()}): the disk-full fault is skipped")
        else:
            log("not root: no tmpfs for the journal, the disk-full fault is skipped")

    def fill(self, hold):
        start = time.time()
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            size = 65536
            while size >= 1:
                try:
                    if os.write(fd, b"\0" * size) == 0:
                        size //= 2
                except OSError:
                    size //= 2
        finally:
            os.close(fd)
        time.sleep(hold)
        os.remove(self.filler)
        self.windows.append((start, time.time()))

    def cleanup(self):
        if self.mounted:
            subprocess.run(["umount", "-l", self.dir], check=False)


# ---------------------------------------------------------------- the gateway replicas


class Replica:
    def __init__(self, name, binary, work, env):
        self.name = name
        self.binary = binary
        self.port = free_port()
        self.env = env
        self.cwd = os.path.join(work, f"cwd-{name}")
        os.makedirs(self.cwd, exist_ok=True)
        self.logpath = os.path.join(work, f"gateway-{name}.log")
        self.proc = None
        self.kills = []  # time of each SIGKILL
        self.starts = 0
        self.exit_codes = []

    def start(self, timeout=30):
        deadline = time.time() + timeout
        while True:
            logf = open(self.logpath, "ab")
            logf.write(f"--- start {self.starts} at {time.time():.3f}\n".encode())
            logf.flush()
            env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
            env.update(self.env)
            env["PORT"] = str(self.port)
            self.proc = subprocess.Popen([self.binary], cwd=self.cwd, env=env, stdout=logf, stderr=logf)
            logf.close()
            self.starts += 1
            while time.time() < deadline:
                if self.proc.poll() is not None:
                    break
                if self.healthy():
                    return
                time.sleep(0.1)
            if self.proc.poll() is None and time.time() >= deadline:
                raise RuntimeError(f"replica {self.name} not healthy within {timeout}s")
            self.exit_codes.append(self.proc.returncode)
            if time.time() >= deadline:
                raise RuntimeError(f"replica {self.name} exits at start; see {self.logpath}")
            time.sleep(0.5)  # e.g. PostgreSQL not back yet: try again

    def healthy(self):
        try:
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
            c.request("GET", "/health")
            ok = c.getresponse().status == 200
            c.close()
            return ok
        except OSError:
            return False

    def kill9(self):
        self.kills.append(time.time())
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def terminate(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return None
        return self.proc.returncode if self.proc else None

    def killed_between(self, a, b):
        return any(a - 0.5 <= k <= b + 0.5 for k in self.kills)

    def rss_kb(self):
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            return None
        return None

    def fds(self):
        try:
            return len(os.listdir(f"/proc/{self.proc.pid}/fd"))
        except OSError:
            return None


# ---------------------------------------------------------------- clients


class Outcome:
    __slots__ = ("rid", "api", "stream", "fault", "replica", "key", "t0", "t1", "status", "end", "error",
                 "refused")

    def __init__(self, rid, api, stream, fault, replica, key):
        self.rid, self.api, self.stream, self.fault = rid, api, stream, fault
        self.replica, self.key = replica, key
        self.t0 = time.time()
        self.t1 = None
        self.status = None  # HTTP status, None when the connection failed before it
        self.end = None  # body: "whole" | "error" (an error event / error body) | "cut"
        self.error = None
        # Refused by the key's own limits (rpm, budget) before anything was routed: the gateway
        # records routed requests only, so such a refusal has no usage record.
        self.refused = False


def request_body(api, stream, fault, rid):
    prompt = f"soak {rid} soak-fault={fault} please answer"
    if api == "chat":
        body = {"model": CHAT_MODEL, "messages": [{"role": "user", "content": prompt}],
                "max_tokens": 64, "stream": stream}
        if stream and random.random() < 0.5:
            body["stream_options"] = {"include_usage": True}
        return "/v1/chat/completions", body
    if api == "messages":
        return "/v1/messages", {"model": CHAT_MODEL, "max_tokens": 64, "stream": stream,
                                "messages": [{"role": "user", "content": prompt}]}
    if api == "responses":
        return "/v1/responses", {"model": CHAT_MODEL, "input": prompt, "stream": stream,
                                 "max_output_tokens": 64, "store": False}
    return "/v1/embeddings", {"model": EMBED_MODEL, "input": prompt}


def read_stream(resp, api):
    """How an SSE body ended: "whole" (its terminal event), "error" (an error event) or "cut"."""
    saw_error = False
    saw_end = False
    event_name = None
    while True:
        line = resp.readline()
        if not line:
            break
        line = line.strip()
        if line.startswith(b"event:"):
            event_name = line[6:].strip()
            continue
        if not line.startswith(b"data:"):
            continue
        data = line[5:].strip()
        if api == "chat":
            if data == b"[DONE]":
                saw_end = True
                continue
        try:
            obj = json.loads(data)
        except ValueError:
            continue
        kind = obj.get("type") if isinstance(obj, dict) else None
        if isinstance(obj, dict) and ("error" in obj and api == "chat" or kind in ("error", "response.failed")):
            saw_error = True
        if kind in ("message_stop", "response.completed") or event_name in (b"message_stop",):
            saw_end = True
    if saw_error:
        return "whole+error" if saw_end else "error"
    return "whole" if saw_end else "cut"


def call(replica, api, stream, fault, key, timeout=20):
    rid = str(uuid.uuid4())
    out = Outcome(rid, api, stream, fault, replica.name, key)
    path, body = request_body(api, stream, fault, rid)
    payload = json.dumps(body).encode()
    headers = {"content-type": "application/json", "authorization": f"Bearer {key}",
               "x-request-id": rid}
    conn = http.client.HTTPConnection("127.0.0.1", replica.port, timeout=timeout)
    try:
        conn.request("POST", path, payload, headers)
        resp = conn.getresponse()
        out.status = resp.status
        if resp.getheader("x-request-id") not in (None, rid):
            out.error = "x-request-id not echoed"
        if resp.status == 200 and stream:
            out.end = read_stream(resp, api)
        else:
            raw = resp.read()
            if resp.status == 429 and (b"rate limit reached" in raw or b"budget" in raw):
                out.refused = True
            try:
                obj = json.loads(raw)
                out.end = "error" if resp.status != 200 or "error" in obj and api != "messages" \
                    or (api == "messages" and obj.get("type") == "error") else "whole"
            except ValueError:
                out.end = "cut"
    except (OSError, http.client.HTTPException) as e:
        out.end = "cut"
        out.error = type(e).__name__
    finally:
        conn.close()
        out.t1 = time.time()
    return out


def pick(weighted):
    total = sum(w for _, w in weighted)
    r = random.uniform(0, total)
    for item, w in weighted:
        r -= w
        if r <= 0:
            return item
    return weighted[-1][0]


# ---------------------------------------------------------------- the run


class Run:
    def __init__(self, args):
        self.args = args
        self.outcomes = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.notes = []
        self.events = []  # (time, what)

    def note(self, msg):
        log(msg)
        self.notes.append(msg)

    def add(self, out):
        with self.lock:
            self.outcomes.append(out)

    def mixed_client(self, replicas, seed):
        rnd = random.Random(seed)
        i = 0
        while not self.stop.is_set():
            api = pick([("chat", 40), ("messages", 20), ("responses", 20), ("embeddings", 20)])
            stream = api != "embeddings" and rnd.random() < 0.6
            fault = pick(REQUEST_FAULTS)
            r = replicas[i % len(replicas)]
            i += 1
            if r.proc is None or r.proc.poll() is not None:
                time.sleep(0.05)
                continue
            self.add(call(r, api, stream, fault, MASTER))

    def keyed_client(self, replicas, key, kind, pace):
        i = 0
        while not self.stop.is_set():
            # Keep clear of minute boundaries so a request's window is the one it was sent in.
            s = time.time() % 60
            if s < 0.5 or s > 59.3:
                time.sleep(0.3)
                continue
            r = replicas[i % len(replicas)]
            i += 1
            if r.proc is None or r.proc.poll() is not None:
                time.sleep(0.05)
                continue
            out = call(r, "chat", False, "none", key)
            out.api = kind
            self.add(out)
            time.sleep(pace)


def admin_key(replica, body):
    c = http.client.HTTPConnection("127.0.0.1", replica.port, timeout=10)
    c.request("POST", "/admin/keys", json.dumps(body).encode(),
              {"content-type": "application/json", "authorization": f"Bearer {MASTER}"})
    r = c.getresponse()
    raw = r.read()
    c.close()
    if r.status != 201:
        raise RuntimeError(f"POST /admin/keys: {r.status} {raw[:200]!r}")
    obj = json.loads(raw)
    return obj["id"], obj["key"]


def schedule(duration, have_pg, have_disk):
    """(offset, fault) pairs: one fault at a time, spaced evenly after a warm-up, none in the
    last stretch so the end figures are not taken mid-fault."""
    warm = max(8.0, duration * 0.1)
    tail = max(8.0, duration * 0.05)
    gap = 8.0 if duration <= 120 else 30.0
    cycle = ["kill", "redis", "kill", "postgres" if have_pg else None, "kill", "disk" if have_disk else None]
    out = []
    t = warm
    k = 0
    while t < duration - tail:
        f = cycle[k % len(cycle)]
        if f:
            out.append((t, f))
        k += 1
        t += gap
    return out, warm


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", default="target/debug/proxygate")
    ap.add_argument("--duration", type=float, default=60)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--max-rss-drift", type=float, default=10.0, help="percent")
    ap.add_argument("--plant", choices=["lose-1-in-100", "phantom", "clean-cut"],
                    help="plant a fault the run must catch")
    ap.add_argument("--expect", help="comma list of the checks that must fail (with --plant): "
                                     "exit 0 when exactly these fail")
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()

    binary = os.path.abspath(args.binary)
    if not os.access(binary, os.X_OK):
        print(f"soak: {binary} is not an executable; build it first (cargo build)", file=sys.stderr)
        return 2
    if not shutil.which("redis-server"):
        print("soak: redis-server not found (apt-get install redis-server)", file=sys.stderr)
        return 2

    work = tempfile.mkdtemp(prefix="proxygate-soak-")
    os.chmod(work, 0o755)
    run = Run(args)
    fake = Fake(plant_clean=args.plant == "clean-cut")
    if args.plant == "clean-cut":
        run.note("PLANTED: the fake upstream serves one cut stream in ten whole")
    redis = Redis(work)
    pg = None
    disk = None
    replicas = []
    try:
        bindir = pg_bindir()
        if bindir and shutil.which("psql"):
            pg = Postgres(work, bindir)
            pg.start()
            pg.createdb()
            store = pg
        else:
            run.note("SKIPPED: no PostgreSQL server tools (initdb, pg_ctl, psql): the replicas share a "
                     "SQLite file and the PostgreSQL restart is not exercised")
            store = Sqlite(work)
        disk = Disk(work)
        redis.start()
        common = {
            "HOST": "127.0.0.1",
            "PROXYGATE_MASTER_KEY": MASTER,
            "OPENAI_API_KEY": UPSTREAM_KEY,
            "OPENAI_BASE_URL": f"http://127.0.0.1:{fake.port}/v1",
            "REDIS_URL": f"redis://127.0.0.1:{redis.port}",
            "DATABASE_URL": store.url,
            "REQUEST_TIMEOUT_MS": str(REQUEST_TIMEOUT_MS),
            "STREAM_IDLE_TIMEOUT_MS": str(STREAM_IDLE_TIMEOUT_MS),
            "CIRCUIT_BREAKER_COOLDOWN_MS": "2000",
            "RUST_LOG": "warn",
        }
        if not pg:
            common.pop("DATABASE_URL")
            common["USAGE_DB_PATH"] = store.path
        journal_b = os.path.join(work, "journal-b")
        a = Replica("A", binary, work, {**common, "USAGE_JOURNAL_DIR": disk.dir})
        b = Replica("B", binary, work, {**common, "USAGE_JOURNAL_DIR": journal_b})
        replicas = [a, b]
        a.start()
        b.start()
        plan, warm = schedule(args.duration, pg is not None, disk.mounted)
        # A key whose budget runs out about half-way, and one with an rpm limit, both used
        # through both replicas.
        budget = round(COST_PER_CHAT * max(10, args.duration * 0.5), 9)
        budget_id, budget_key = admin_key(a, {"name": "soak-budget", "budget_usd": budget,
                                              "budget_period": "total"})
        rpm = 40
        rpm_id, rpm_key = admin_key(b, {"name": "soak-rpm", "rpm": rpm})
        log(f"work dir {work}; fake upstream :{fake.port}, redis :{redis.port}, "
            f"{'postgres :' + str(pg.port) if pg else 'sqlite'}, replicas A :{a.port} B :{b.port}; "
            f"{len(plan)} infrastructure faults scheduled")

        t_start = time.time()
        threads = [threading.Thread(target=run.mixed_client, args=(replicas, i), daemon=True)
                   for i in range(args.clients)]
        threads.append(threading.Thread(target=run.keyed_client, args=(replicas, budget_key, "budget", 0.3),
                                        daemon=True))
        threads.append(threading.Thread(target=run.keyed_client, args=(replicas, rpm_key, "rpm", 0.2),
                                        daemon=True))
        for t in threads:
            t.start()

        samples = []  # (offset, rss_kb, fds) of replica B

        def sampler():
            while not run.stop.is_set():
                samples.append((time.time() - t_start, b.rss_kb(), b.fds()))
                run.stop.wait(2.0)

        st = threading.Thread(target=sampler, daemon=True)
        st.start()

        for offset, fault in plan:
            wait = t_start + offset - time.time()
            if wait > 0:
                time.sleep(wait)
            run.events.append((time.time(), fault))
            if fault == "kill":
                a.kill9()
                a.start()
            elif fault == "redis":
                redis.restart(2.0)
            elif fault == "postgres":
                pg.restart(3.0)
            elif fault == "disk":
                disk.fill(min(20.0, max(5.0, args.duration / 90)))
            log(f"t={time.time() - t_start:6.1f}s {fault} done")
        wait = t_start + args.duration - time.time()
        if wait > 0:
            time.sleep(wait)
        run.stop.set()
        for t in threads:
            t.join(60)
        st.join(5)
        elapsed = time.time() - t_start
        codes = {r.name: r.terminate() for r in replicas}

        if args.plant == "lose-1-in-100":
            ids = sorted(o.rid for o in run.outcomes if o.status == 200 and o.end == "whole")
            drop = ids[::100] or ids[:1]
            for i in range(0, len(drop), 200):
                quoted = ",".join(f"'{x}'" for x in drop[i:i + 200])
                store.query(f"DELETE FROM usage_records WHERE request_id IN ({quoted}) RETURNING id")
            run.note(f"PLANTED: {len(drop)} of {len(ids)} records deleted before reconciling")
        elif args.plant == "phantom":
            store.query(f"INSERT INTO usage_records (id, ts_ms, request_id, endpoint, provider, model, "
                        f"prompt_tokens, completion_tokens, cached_tokens, estimated_tokens, cost_usd, "
                        f"latency_ms, status, attempts, stream, cache_hit) VALUES ('{uuid.uuid4()}', 0, "
                        f"'{uuid.uuid4()}', 'chat', 'openai', '{CHAT_MODEL}', 1, 1, 0, 0, 0, 1, 200, 1, "
                        f"false, false) RETURNING id")
            run.note("PLANTED: one record no client caused inserted before reconciling")

        rows = store.query("SELECT request_id, status, key_id, cost_usd, ts_ms FROM usage_records")
        result = reconcile(run, rows, replicas, redis, disk, samples, warm, args, codes,
                           {"budget": (budget_id, budget), "rpm": (rpm_id, rpm)}, elapsed, fake)
    except (RuntimeError, subprocess.CalledProcessError, OSError) as e:
        print(f"soak: setup failed: {e}", file=sys.stderr)
        for r in replicas:
            try:
                with open(r.logpath, "rb") as f:
                    sys.stderr.write(f.read()[-3000:].decode(errors="replace"))
            except OSError:
                pass
        return 2
    finally:
        run.stop.set()
        for r in replicas:
            if r.proc and r.proc.poll() is None:
                r.proc.kill()
                r.proc.wait()
        redis.stop()
        if pg:
            pg.stop("fast")
        if disk:
            disk.cleanup()
        fake.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    if args.expect is not None:
        want = sorted(x for x in args.expect.split(",") if x)
        got = sorted(result["failures"])
        print(f"soak: expected failures {want}, got {got}: {'as expected' if want == got else 'NOT as expected'}")
        return 0 if want == got else 1
    return 0 if result["pass"] else 1


def degraded_at(replicas):
    """Times (epoch seconds) at which a replica logged that Redis became unreachable."""
    out = []
    for r in replicas:
        try:
            with open(r.logpath, "rb") as f:
                for line in f:
                    if b"state backend degraded" not in line:
                        continue
                    m = re.search(rb"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?Z", line)
                    if m:
                        t = calendar.timegm(time.strptime(m.group(1).decode(), "%Y-%m-%dT%H:%M:%S"))
                        out.append(t + float(m.group(2) or 0))
        except OSError:
            pass
    return out


def reconcile(run, rows, replicas, redis, disk, samples, warm, args, codes, keys, elapsed, fake):
    records = {}
    no_id = 0
    for rid, status, key_id, cost, ts in rows:
        if not rid:
            no_id += 1
            continue
        records.setdefault(rid, []).append((int(status), key_id, float(cost or 0), int(ts)))
    by_rid = {o.rid: o for o in run.outcomes}
    lost, duplicate, phantom = [], [], []
    clean, unsignalled = [], []
    complete = 0
    excused_cuts = 0
    for o in run.outcomes:
        n = len(records.get(o.rid, ()))
        rep = next(r for r in replicas if r.name == o.replica)
        killed = rep.killed_between(o.t0, o.t1)
        saw_complete = o.status is not None and o.end in ("whole", "error", "whole+error") and not o.refused
        if saw_complete:
            complete += 1
            if n == 0:
                lost.append(o)
        if n > 1:
            duplicate.append(o)
        if o.fault in MID_FAULTS and o.status == 200 and o.end == "whole":
            clean.append(o)
        if o.status == 200 and o.end == "cut" and not killed:
            unsignalled.append(o)
        if o.end == "cut" and killed:
            excused_cuts += 1
    for rid in records:
        if rid not in by_rid:
            phantom.append(rid)
    phantom_count = len(phantom) + no_id

    # Budget: the key's recorded spend never passes its budget.
    budget_id, budget = keys["budget"]
    spent = sum(c for recs in records.values() for (_, k, c, _) in recs if k == budget_id)
    budget_ok = spent <= budget + 1e-9

    # Rate limit: requests admitted (answered and not refused) per one-minute window at most rpm,
    # counting those sent and answered inside the same window (so certainly counted in it), in
    # windows with no Redis outage (while Redis is away each replica counts on its own, by design).
    rpm_id, rpm = keys["rpm"]
    windows = {}
    for o in run.outcomes:
        if o.api == "rpm" and o.status is not None and not o.refused and int(o.t0 // 60) == int(o.t1 // 60):
            windows.setdefault(int(o.t0 // 60), 0)
            windows[int(o.t0 // 60)] += 1
    outage_windows = set()
    # A replica finds Redis again within a few sync ticks of its restart: 10 s covers it.
    for s, e in redis.outages:
        for w in range(int((s - 1) // 60), int((e + 10) // 60) + 1):
            outage_windows.add(w)
    # A replica also counts on its own after any Redis command took longer than REDIS_TIMEOUT_MS
    # (it logs "state backend degraded"), until its sync task finds Redis again.
    for t in degraded_at(replicas):
        outage_windows.update((int(t // 60), int((t + 10) // 60)))
    rpm_over = {w: n for w, n in windows.items() if n > rpm and w not in outage_windows}
    rpm_max = max([n for w, n in windows.items() if w not in outage_windows] or [0])
    rpm_windows = sum(1 for w in windows if w not in outage_windows)
    limited = sum(1 for o in run.outcomes if o.api == "rpm" and o.refused)
    refused = sum(1 for o in run.outcomes if o.refused)

    panics = 0
    degraded = 0
    for r in replicas:
        try:
            with open(r.logpath, "rb") as f:
                for line in f:
                    if b"panicked" in line or b"internal error" in line:
                        panics += 1
                    if b"state backend degraded" in line:
                        degraded += 1
        except OSError:
            pass

    post = [s for s in samples if s[0] >= warm and s[1]]
    rss0 = rss1 = fd0 = fd1 = None
    drift = None
    if len(post) >= 4:
        k = max(2, len(post) // 10)
        first, last = post[:k], post[-k:]
        rss0 = sorted(s[1] for s in first)[len(first) // 2]
        rss1 = sorted(s[1] for s in last)[len(last) // 2]
        fd0 = max(s[2] or 0 for s in first)
        fd1 = max(s[2] or 0 for s in last)
        drift = (rss1 - rss0) * 100.0 / rss0
    peak = max((s[1] or 0 for s in samples), default=0)

    term_ok = all(c == 0 for c in codes.values())
    failures = []
    if lost:
        failures.append("lost")
    if duplicate:
        failures.append("duplicate")
    if phantom_count:
        failures.append("phantom")
    if clean:
        failures.append("clean-ended")
    if unsignalled:
        failures.append("unsignalled")
    if panics:
        failures.append("panics")
    if not budget_ok:
        failures.append("budget")
    if rpm_over:
        failures.append("rpm")
    if (drift is None and elapsed >= 30) or (drift is not None and drift > args.max_rss_drift):
        failures.append("rss-drift")
    if fd0 is not None and fd1 > fd0 * 2 + 64:
        failures.append("fds")
    if not term_ok:
        failures.append("sigterm-exit")
    echo = sum(1 for o in run.outcomes if o.error == "x-request-id not echoed")
    if echo:
        failures.append("request-id")

    faulted_streams = sum(1 for o in run.outcomes if o.fault in MID_FAULTS and o.stream and o.status == 200)
    ok = not failures
    kills = sum(len(r.kills) for r in replicas)
    summary = (
        f"soak: {'PASS' if ok else 'FAIL (' + ', '.join(failures) + ')'} "
        f"duration={elapsed:.0f}s requests={len(run.outcomes)} complete={complete} "
        f"records={len(rows)} lost={len(lost)} phantom={phantom_count} duplicate={len(duplicate)} "
        f"faulted_streams={faulted_streams} clean_ended={len(clean)} unsignalled={len(unsignalled)} "
        f"kills={kills} redis_restarts={len(redis.outages)} "
        f"pg_restarts={sum(1 for _, f in run.events if f == 'postgres')} disk_full={len(disk.windows)} "
        f"panics={panics} budget={spent:.6f}/{budget:.6f} rpm_max={rpm_max}/{rpm}({rpm_windows}w) "
        f"rss_drift={'n/a' if drift is None else f'{drift:+.1f}%'} fds={fd0}->{fd1}"
    )
    print(summary)
    # The table: per API, how requests ended.
    cols = ["requests", "200 whole", "200 error-ended", "200 cut", "4xx", "5xx", "no answer", "records"]
    print()
    print(f"{'api':<16}" + "".join(f"{c:>16}" for c in cols))
    apis = sorted({(o.api, o.stream) for o in run.outcomes})
    for api, stream in apis:
        os_ = [o for o in run.outcomes if o.api == api and o.stream == stream]
        row = [
            len(os_),
            sum(1 for o in os_ if o.status == 200 and o.end == "whole"),
            sum(1 for o in os_ if o.status == 200 and o.end in ("error", "whole+error")),
            sum(1 for o in os_ if o.status == 200 and o.end == "cut"),
            sum(1 for o in os_ if o.status and 400 <= o.status < 500),
            sum(1 for o in os_ if o.status and o.status >= 500),
            sum(1 for o in os_ if o.status is None),
            sum(len(records.get(o.rid, ())) for o in os_),
        ]
        name = f"{api}{' stream' if stream else ''}"
        print(f"{name:<16}" + "".join(f"{v:>16}" for v in row))
    print()
    print(f"cuts excused by a SIGKILL of their replica: {excused_cuts}; upstream faults served: "
          + ", ".join(f"{k}={v}" for k, v in sorted(fake.counts.items())))
    print(f"replica B RSS after warm-up {rss0} kB, at the end {rss1} kB, peak {peak} kB; "
          f"SIGTERM exit codes {codes}; refused by a key's limits (no record needed): {refused}, "
          f"{limited} of them on the rpm key; Redis degraded {degraded} time(s) in the replicas' logs")
    statuses = {}
    for o in run.outcomes:
        k = "none" if o.status is None else str(o.status)
        statuses[k] = statuses.get(k, 0) + 1
    print("statuses: " + ", ".join(f"{k}={v}" for k, v in sorted(statuses.items())))
    for n in run.notes:
        print(f"note: {n}")
    for label, items in (("lost", lost), ("clean-ended", clean), ("unsignalled", unsignalled),
                         ("duplicate", duplicate)):
        for o in items[:5]:
            print(f"  {label}: {o.rid} {o.api} stream={o.stream} fault={o.fault} replica={o.replica} "
                  f"status={o.status} end={o.end} error={o.error} t={o.t0:.3f}..{o.t1:.3f}")
    for rid in phantom[:5]:
        print(f"  phantom: {rid} {records[rid]}")
    result = {
        "pass": ok, "failures": failures, "summary": summary, "duration_s": round(elapsed, 1),
        "requests": len(run.outcomes), "complete": complete, "records": len(rows), "lost": len(lost),
        "phantom": phantom_count, "duplicate": len(duplicate), "faulted_streams": faulted_streams,
        "clean_ended": len(clean), "unsignalled": len(unsignalled), "panics": panics,
        "kills": kills, "redis_restarts": len(redis.outages), "disk_full": len(disk.windows),
        "budget_spent": spent, "budget": budget, "rpm_max": rpm_max, "rpm": rpm,
        "rss_after_warmup_kb": rss0, "rss_end_kb": rss1, "rss_peak_kb": peak,
        "rss_drift_pct": drift, "fds": [fd0, fd1], "notes": run.notes, "statuses": statuses,
    }
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    sys.exit(main())
