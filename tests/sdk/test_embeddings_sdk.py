"""The official OpenAI Python SDK's embeddings.create against ProxyGate, served by the built-in
mock and by loopback fakes of an OpenAI-compatible upstream and Gemini. The SDK asks for base64
by default and decodes it; explicit floats must give the same float32 values."""

import struct

import openai
import pytest

from sdk_support import Fake, running_gateway, send_json

OPENAI_KEY = "sk-openai-embeddings-sdk-test"
GEMINI_KEY = "AIza-embeddings-sdk-test"
VECTORS = {"alpha": [0.1, -0.2, 0.30000001, 1.5], "beta": [-0.75, 0.5, 0.0, 2.25]}


def f32(xs):
    """The values as float32, the precision the wire carries."""
    return [struct.unpack("<f", struct.pack("<f", x))[0] for x in xs]


def openai_handle(handler, body):
    if handler.headers.get("authorization") != f"Bearer {OPENAI_KEY}" or handler.path != "/v1/embeddings":
        send_json(handler, 401, {"error": {"message": "bad key"}})
        return
    inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
    send_json(handler, 200, {"object": "list", "model": body["model"],
                             "data": [{"object": "embedding", "index": i, "embedding": VECTORS[t]} for i, t in enumerate(inputs)],
                             "usage": {"prompt_tokens": 2 * len(inputs), "total_tokens": 2 * len(inputs)}})


def gemini_handle(handler, body):
    base = "/v1beta/models/text-embedding-004"
    if handler.headers.get("x-goog-api-key") != GEMINI_KEY:
        send_json(handler, 400, {"error": {"code": 400, "message": "API key not valid.", "status": "INVALID_ARGUMENT"}})
        return
    if handler.path == base + ":embedContent":
        send_json(handler, 200, {"embedding": {"values": VECTORS[body["content"]["parts"][0]["text"]]}})
    elif handler.path == base + ":batchEmbedContents":
        send_json(handler, 200, {"embeddings": [{"values": VECTORS[r["content"]["parts"][0]["text"]]} for r in body["requests"]]})
    else:
        send_json(handler, 404, {"error": {"code": 404, "message": "not found", "status": "NOT_FOUND"}})


@pytest.fixture(scope="module")
def fakes():
    fs = {"openai": Fake(openai_handle), "gemini": Fake(gemini_handle)}
    yield fs
    for f in fs.values():
        f.close()


@pytest.fixture(scope="module")
def client(fakes):
    env = {"OPENAI_API_KEY": OPENAI_KEY, "OPENAI_BASE_URL": fakes["openai"].url + "/v1",
           "GEMINI_API_KEY": GEMINI_KEY, "GEMINI_BASE_URL": fakes["gemini"].url}
    with running_gateway(env) as base:
        yield openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0, timeout=20)


def test_mock_embeddings_are_deterministic_and_base64_matches_float(client):
    default = client.embeddings.create(model="mock/embed", input=["alpha", "beta"])  # base64 on the wire
    floats = client.embeddings.create(model="mock/embed", input=["alpha", "beta"], encoding_format="float")
    again = client.embeddings.create(model="mock/embed", input="alpha", encoding_format="float")
    assert [d.index for d in default.data] == [0, 1]
    assert len(default.data[0].embedding) == 64
    assert [f32(d.embedding) for d in default.data] == [f32(d.embedding) for d in floats.data]
    assert again.data[0].embedding == floats.data[0].embedding
    assert default.data[0].embedding != default.data[1].embedding
    assert default.usage.prompt_tokens > 0
    assert len(client.embeddings.create(model="mock/embed", input="x", dimensions=12).data[0].embedding) == 12


@pytest.mark.parametrize("model,fake", [("openai/text-embedding-3-small", "openai"), ("gemini/text-embedding-004", "gemini")])
def test_upstream_embeddings_decode_to_the_same_floats(client, fakes, model, fake):
    default = client.embeddings.create(model=model, input=["alpha", "beta"])
    floats = client.embeddings.create(model=model, input=["alpha", "beta"], encoding_format="float")
    single = client.embeddings.create(model=model, input="beta")
    for resp in (default, floats):
        assert [f32(d.embedding) for d in resp.data] == [f32(VECTORS["alpha"]), f32(VECTORS["beta"])]
    assert f32(single.data[0].embedding) == f32(VECTORS["beta"])
    assert default.usage.prompt_tokens > 0
    assert len(fakes[fake].requests) >= 3
    if fake == "openai":
        assert all(r["body"]["encoding_format"] == "float" for r in fakes[fake].requests)


def test_chat_models_are_refused_on_embeddings(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.embeddings.create(model="mock/echo", input="x")
    assert "embedding" in str(e.value)
