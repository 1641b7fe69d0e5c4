#!/usr/bin/env python3
"""Drives a gateway under callgrind: a keep-alive fake OpenAI upstream and a sequential client.

usage: fake_and_load.py fake PORT            # serve the fake upstream on PORT
       fake_and_load.py load URL N [stream]  # send N requests to URL over one connection
"""
import http.client
import os
import socket
import sys
import threading

# A chat completion in the shape OpenAI's API writes (`refusal` and `logprobs` present as null).
# FAKE_SHAPE=lean leaves `refusal` out, as some OpenAI-compatible upstreams do: the gateway then
# decodes the answer and writes it back with `refusal` filled in.
COMPLETION = (b'{"id":"chatcmpl-bench","object":"chat.completion","created":1730000000,'
              b'"model":"llama-3.1-8b-instant","choices":[{"index":0,"message":{"role":"assistant",'
              b'"content":"Hello there, nice to meet you!","refusal":null},"logprobs":null,"finish_reason":"stop"}],'
              b'"usage":{"prompt_tokens":24,"completion_tokens":8,"total_tokens":32},'
              b'"system_fingerprint":"fp_bench"}')
if os.environ.get("FAKE_SHAPE") == "lean":
    COMPLETION = COMPLETION.replace(b',"refusal":null', b"")
EVENTS = b"".join(
    b"data: " + e + b"\n\n" for e in [
        b'{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"Hello"},"finish_reason":null}]}',
        b'{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":" there"},"finish_reason":null}]}',
        b'{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}',
        b'{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}',
        b"[DONE]",
    ])
CHAT = (b'{"model":"groq/llama-3.1-8b-instant","messages":[{"role":"system","content":"You are terse."},'
        b'{"role":"user","content":"Say hello in one short sentence."}],"max_tokens":32,"temperature":0.2}')


def handle(conn):
    buf = b""
    with conn:
        while True:
            while b"\r\n\r\n" not in buf:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
            head, _, rest = buf.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                k, _, v = line.partition(b":")
                if k.strip().lower() == b"content-length":
                    length = int(v.strip())
            while len(rest) < length:
                rest += conn.recv(65536)
            body, buf = rest[:length], rest[length:]
            if b'"stream":true' in body:
                payload, ctype = EVENTS, b"text/event-stream"
            else:
                payload, ctype = COMPLETION, b"application/json"
            conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: " + ctype + b"\r\ncontent-length: "
                         + str(len(payload)).encode() + b"\r\n\r\n" + payload)


def fake(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(128)
    while True:
        c, _ = s.accept()
        threading.Thread(target=handle, args=(c,), daemon=True).start()


def load(url, n, stream):
    host, _, port = url.partition("//")[2].partition("/")[0].partition(":")
    body = CHAT.replace(b'"max_tokens":32', b'"max_tokens":32,"stream":true') if stream else CHAT
    c = http.client.HTTPConnection(host, int(port))
    for _ in range(n):
        c.request("POST", "/v1/chat/completions", body, {"content-type": "application/json"})
        r = c.getresponse()
        r.read()
        assert r.status == 200, r.status


if __name__ == "__main__":
    if sys.argv[1] == "fake":
        fake(int(sys.argv[2]))
    else:
        load(sys.argv[2], int(sys.argv[3]), len(sys.argv) > 4)
