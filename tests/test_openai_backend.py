"""OpenAIBackend against a real HTTP server on 127.0.0.1 (tests/fake_openai_server.py stands in
for OpenAI/vLLM, which cannot run here). Backoffs and timeouts are shortened to keep this fast."""
from __future__ import annotations

import base64
import io
import socket
import time

import pytest
from PIL import Image

from fake_openai_server import FakeOpenAI, Reply, image_urls, rate_limited, server_error, stall
from visassoc.backends import images as images_mod
from visassoc.backends.base import BackendError, GenParams, Message, Usage
from visassoc.backends.openai_compat import OpenAIBackend, RetryPolicy, retry_after_seconds
from visassoc.backends.pricing import estimate_cost

SCHEMA = {"type": "object", "required": ["a", "b"],
          "properties": {"a": {"type": "string"}, "b": {"type": "array", "items": {"type": "string"}}}}
FAST = RetryPolicy(max_retries=3, backoff_base=0.02, backoff_max=0.1, connect_retries=2, fail_fast_after=50)


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VISASSOC_CACHE", str(tmp_path / "cache"))
    images_mod.clear_memory_cache()


@pytest.fixture
def server():
    with FakeOpenAI() as s:
        yield s


def backend(server, **kw):
    kw.setdefault("retry", FAST)
    kw.setdefault("timeout", 5)
    return OpenAIBackend(kw.pop("model", "fake-model"), base_url=server.base_url, show_progress=False, **kw)


def ask(b, schema=None, n=1):
    return b.generate_many([([Message("user", f"q{i}")], schema, GenParams(max_tokens=50)) for i in range(n)])


def test_images_arrive_as_resized_jpeg_data_urls_encoded_once(server, tmp_path, monkeypatch):
    p = tmp_path / "big.png"
    Image.new("RGBA", (1600, 900), (10, 200, 30, 128)).save(p)
    calls = []
    real = images_mod.encode_jpeg
    monkeypatch.setattr(images_mod, "encode_jpeg", lambda *a, **k: calls.append(a) or real(*a, **k))
    b = backend(server, max_image_side=400)
    msgs = [Message("user", "what colour?", [p])]
    gens = b.generate_many([(msgs, None, None)] * 3)
    assert [g.text for g in gens] == ["red"] * 3
    urls = [u for r in server.chat_requests() for u in image_urls(r["body"])]
    assert len(urls) == 3 and all(u.startswith("data:image/jpeg;base64,") for u in urls)
    im = Image.open(io.BytesIO(base64.b64decode(urls[0].split(",", 1)[1])))
    assert im.format == "JPEG" and max(im.size) == 400 and im.mode == "RGB"
    assert len(calls) == 1  # encoded once, then served from the cache


def test_bad_image_is_an_item_error_not_a_crash(server, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    gens = backend(server).generate_many([([Message("user", "x", [bad])], None, None),
                                          ([Message("user", "y")], None, None)])
    assert "cannot encode image bad.jpg" in gens[0].error and gens[1].text == "OK"


def test_retry_honours_retry_after_seconds_and_ms(server):
    b = backend(server)
    assert b.generate([Message("user", "warm")]).text == "OK"
    server.push(rate_limited("1"))
    g = b.generate([Message("user", "hi")])
    assert g.error is None and g.text == "OK"
    first, second = server.chat_requests()[-2:]
    assert first["status"] == 429 and second["t0"] - first["t1"] >= 1.0
    server.push(Reply(status=429, headers={"retry-after-ms": "300"}))
    assert b.generate([Message("user", "hi")]).text == "OK"
    first, second = server.chat_requests()[-2:]
    assert second["t0"] - first["t1"] >= 0.3


def test_5xx_and_stalled_response_are_retried(server):
    b = backend(server, timeout=0.5)
    server.push(server_error(), stall(2.0))
    g = b.generate([Message("user", "hi")])
    assert g.error is None and g.text == "OK"
    assert [r["status"] for r in server.chat_requests()] == [500, 200, 200]  # the stall was abandoned


def test_tolerant_parsing_fences_prose_truncation(server):
    b = backend(server)
    server.push(Reply('Sure! Here it is:\n```json\n{"a": "x", "b": ["y",],}\n```\nHope that helps.'),
                Reply('The answer is {"a": "x", "b": ["y", "z"]} as requested.'),
                Reply('{"a": "x", "b": ["y", "z"'))  # truncated
    gens = ask(b, SCHEMA, 1) + ask(b, SCHEMA, 1) + ask(b, SCHEMA, 1)
    assert [g.parsed for g in gens] == [{"a": "x", "b": ["y"]}, {"a": "x", "b": ["y", "z"]},
                                        {"a": "x", "b": ["y", "z"]}]
    assert len(server.chat_requests()) == 3


def test_wrong_keys_reask_once_then_explicit_error(server):
    b = backend(server)
    server.push(Reply('{"wrong": 1}'), Reply('{"a": "ok", "b": []}'))
    g = ask(b, SCHEMA)[0]
    assert g.parsed == {"a": "ok", "b": []} and g.usage.requests == 2
    reask = server.chat_requests()[-1]["body"]["messages"]
    assert reask[-2] == {"role": "assistant", "content": '{"wrong": 1}'}
    assert "'a' is a required property" in reask[-1]["content"]
    server.push(Reply('{"wrong": 1}'), Reply(""))
    g = ask(b, SCHEMA)[0]
    assert g.parsed is None and "after one re-ask" in g.error and "empty" in g.error


def test_empty_content_plain_text_is_an_error(server):
    server.push(Reply(""))
    g = backend(server).generate([Message("user", "hi")])
    assert g.error == "empty model output"


def test_concurrency_limit_is_never_exceeded(server):
    server.latency = 0.05
    gens = ask(backend(server, concurrency=5), n=40)
    assert all(g.text == "OK" for g in gens)
    assert 2 <= server.max_inflight <= 5


def test_dead_server_fails_fast():
    """100 requests to a refused port end in one "cannot reach" error instead of 100 retried
    failures. How fast is measured in benchmarks/bench_fail_fast.py (target < 20 s); the 300 s
    here only guards against a hang."""
    from concurrent.futures import ThreadPoolExecutor

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    b = OpenAIBackend("m", base_url=f"http://127.0.0.1:{port}/v1", show_progress=False)  # default retry policy
    with ThreadPoolExecutor(1) as pool:
        fut = pool.submit(b.generate_many, [([Message("user", "x")], None, None)] * 100)
        with pytest.raises(BackendError, match="cannot reach"):
            fut.result(timeout=300)
    assert b.usage()["requests"] == 0


def test_auth_and_unknown_model_are_fatal(server):
    server.push(Reply(status=401, error="bad key"))
    with pytest.raises(BackendError, match="HTTP 401.*check OPENAI_API_KEY"):
        ask(backend(server), n=1)
    server.push(Reply(status=404, error="model not found"))
    with pytest.raises(BackendError, match="HTTP 404"):
        ask(backend(server), n=1)


def test_json_schema_unsupported_falls_back_to_json_object():
    with FakeOpenAI(json_schema_supported=False,
                    responder=lambda body: '{"a": "x", "b": []}') as s:
        b = backend(s)
        gens = ask(b, SCHEMA, n=4)
        assert all(g.parsed == {"a": "x", "b": []} for g in gens)
        assert b.mode == "json_object"
        assert s.chat_requests()[-1]["body"]["response_format"] == {"type": "json_object"}


@pytest.mark.parametrize("status", [500, 400, 422, 501])
def test_format_refusal_on_any_status_degrades_and_never_counts_as_a_failure(status):
    """llama-cpp-python's server refuses json_schema with HTTP 500 whose body names response_format:
    step down to json_object (and then text), remember it, no retries, no dead-server count."""
    with FakeOpenAI(reject_formats=("json_schema",), reject_status=status,
                    responder=lambda body: '{"a": "x", "b": []}') as s:
        b = backend(s, retry=RetryPolicy(max_retries=6, backoff_base=5, fail_fast_after=1))
        t = time.monotonic()
        gens = ask(b, SCHEMA, n=12)
        assert all(g.parsed == {"a": "x", "b": []} for g in gens)
        assert time.monotonic() - t < 4  # no backoff was slept
        assert b.mode == "json_object"
        n_schema = sum(1 for r in s.chat_requests() if r["body"]["response_format"]["type"] == "json_schema")
        assert n_schema <= 8  # at most the first concurrent wave; later requests use the remembered mode
        ask(b, SCHEMA, n=3)
        assert all(r["body"]["response_format"]["type"] == "json_object" for r in s.chat_requests()[-3:])
    with FakeOpenAI(reject_formats=("json_schema", "json_object"), reject_status=status,
                    responder=lambda body: '{"a": "y", "b": ["z"]}') as s:
        b = backend(s, retry=RetryPolicy(max_retries=6, backoff_base=5, fail_fast_after=1))
        assert all(g.parsed == {"a": "y", "b": ["z"]} for g in ask(b, SCHEMA, n=4))
        assert b.mode == "text" and "response_format" not in s.chat_requests()[-1]["body"]


def test_format_refusal_with_a_forced_mode_is_an_item_error_not_a_retry():
    with FakeOpenAI(reject_formats=("json_schema",), reject_status=500) as s:
        b = backend(s, structured="json_schema", retry=RetryPolicy(max_retries=6, backoff_base=5, fail_fast_after=1))
        gens = ask(b, SCHEMA, n=3)
        assert all("refused response_format json_schema" in g.error for g in gens)
        assert len(s.chat_requests()) == 3


def test_item_failures_do_not_sink_the_batch_but_a_failing_server_does(server):
    b = backend(server, retry=RetryPolicy(max_retries=1, backoff_base=0.01, fail_fast_after=3))
    assert ask(b)[0].text == "OK"
    server.push(Reply(status=400, error="context too long"), server_error(), server_error())
    gens = ask(b, n=1) + ask(b, n=1) + ask(b, n=1)
    assert gens[0].error == "HTTP 400: context too long"
    assert "gave up after 1 retries: HTTP 500" in gens[1].error and gens[2].text == "OK"
    server.push(*[server_error()] * 20)
    with pytest.raises(BackendError, match="in a row failed"):
        ask(b, n=4)


def test_requests_per_minute_limit(server):
    b = backend(server, rpm=1200, concurrency=16)  # 20 per second, burst of 20
    t = time.monotonic()
    ask(b, n=40)
    starts = sorted(r["t0"] for r in server.chat_requests())
    assert starts[-1] - t >= 0.95  # requests 21..40 waited for tokens: (40 - 20) / 20 s


def test_usage_and_cost(server):
    b = backend(server, model="gpt-4o-mini")
    gens = ask(b, SCHEMA, n=3)
    total = Usage()
    for g in gens:
        total.add(g.usage)
    u = b.usage()
    assert u["requests"] == 3 and u["prompt_tokens"] == total.prompt_tokens > 0
    assert u["cost_usd"] == pytest.approx((total.prompt_tokens * 0.15 + total.completion_tokens * 0.6) / 1e6,
                                          abs=1e-8)
    assert estimate_cost("gpt-4o-mini-2024-07-18", Usage(1_000_000, 0, 1), batch=True) == pytest.approx(0.075)
    assert estimate_cost("my-local-model", total) is None


def test_retry_after_parsing():
    assert retry_after_seconds({"retry-after-ms": "250"}) == 0.25
    assert retry_after_seconds({"retry-after": "3"}) == 3.0
    date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    assert 25 <= retry_after_seconds({"retry-after": date}) <= 31
    assert retry_after_seconds({}) is None


def test_missing_key_for_openai_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(BackendError, match="no API key"):
        OpenAIBackend("gpt-4o-mini")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    assert OpenAIBackend("local").base_url == "http://127.0.0.1:9/v1"  # local servers need no key


def test_tokens_per_minute_limit(server):
    b = backend(server, tpm=6000, concurrency=8)  # 100 tokens/s, burst 100; each call needs ~60
    t = time.monotonic()
    ask(b, n=3)
    starts = sorted(r["t0"] for r in server.chat_requests())
    assert starts[-1] - t >= 0.7  # third call waited for ~(3 * 60 - 100) / 100 s
