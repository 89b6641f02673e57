"""Cached input tokens: the provider's count is read, priced at the cached rate, and simulated for estimates."""
from __future__ import annotations

import random

import pytest
from PIL import Image

from fake_openai_server import FakeOpenAI
from visassoc.backends import images as images_mod
from visassoc.backends.base import GenParams, Message, Usage
from visassoc.backends.openai_compat import OpenAIBackend, RetryPolicy
from visassoc.backends.pricing import cached_input_price, estimate_cost
from visassoc.backends.prefix_cache import PrefixCache, savings


def test_prefix_cache_counts_like_openai():
    c = PrefixCache(window=2, block=128, min_tokens=1024)
    base = list(range(1300))
    assert c.request(base + ["a"]) == 0  # first time: nothing cached
    assert c.request(base + ["b"]) == 1280  # 10 whole blocks shared
    assert c.request(list(range(1000)) + ["c"] * 400) == 0  # shared part shorter than 1024
    assert c.request(["x"] * 1300) == 0
    assert c.request(base) == 0  # its twins fell out of the 2-request window


def test_savings_grouped_beats_interleaved():
    prefix = {i: [f"img{i}-{k}" for k in range(1500)] for i in range(30)}
    reqs = [prefix[i] + [f"word{j}"] * 30 for i in range(30) for j in range(5)]
    grouped = savings(reqs, 0.15, 0.075, window=4)
    shuffled = reqs[:]
    random.Random(0).shuffle(shuffled)
    interleaved = savings(shuffled, 0.15, 0.075, window=4)
    assert grouped.requests == interleaved.requests == 150 and grouped.input_tokens == interleaved.input_tokens
    assert grouped.cached_tokens == 30 * 4 * 1408  # all but the first request per image, in 128-token blocks
    assert interleaved.cached_tokens < grouped.cached_tokens / 3
    assert grouped.cost_cached_usd < grouped.cost_uncached_usd
    assert grouped.cacheable_share == pytest.approx(30 * 4 * 1408 / (150 * 1530))


def test_cached_rate_in_prices():
    assert estimate_cost("gpt-4o-mini-2024-07-18", Usage(1_000_000, 0, 1, cached_tokens=1_000_000)) == pytest.approx(0.075)
    assert estimate_cost("gpt-4o-mini", Usage(2_000_000, 0, 1, cached_tokens=1_000_000)) == pytest.approx(0.225)
    assert cached_input_price("gpt-4.1-mini") == 0.10
    own = {"gpt-4o-mini": {"input": 1.0, "output": 2.0}}  # the user's price, no cached rate: no discount
    assert estimate_cost("gpt-4o-mini", Usage(1_000_000, 0, 1, cached_tokens=1_000_000), own) == pytest.approx(1.0)
    own["gpt-4o-mini"]["cached_input"] = 0.25
    assert estimate_cost("gpt-4o-mini", Usage(1_000_000, 0, 1, cached_tokens=1_000_000), own) == pytest.approx(0.25)


def test_backend_reads_cached_tokens(tmp_path, monkeypatch):
    monkeypatch.setenv("VISASSOC_CACHE", str(tmp_path / "cache"))
    images_mod.clear_memory_cache()
    img = tmp_path / "p.png"
    Image.new("RGB", (64, 64), (200, 10, 10)).save(img)
    fixed = "Write one short creative caption for this photo. " * 30
    with FakeOpenAI(prefix_cache=PrefixCache(window=16), image_tokens=1100) as server:
        b = OpenAIBackend("gpt-4o-mini", base_url=server.base_url, show_progress=False, concurrency=1,
                          retry=RetryPolicy(max_retries=1, backoff_base=0.01), timeout=60)
        gens = b.generate_many([([Message("user", fixed + f" Word: w{i}.", images=[img])], None,
                                 GenParams(max_tokens=20)) for i in range(4)])
        assert len(server.chat_requests()) == 4  # no retry: each request met the cache once
    # the first request to arrive misses the cache, the rest hit it; which one arrives first is not
    # fixed (images are encoded off the event loop before the concurrency slot, so a loaded machine
    # may send request 1 before request 0)
    assert sorted(g.usage.cached_tokens > 0 for g in gens) == [False, True, True, True]
    u = b.usage()
    total = Usage()
    for g in gens:
        total.add(g.usage)
    assert u["cached_tokens"] == total.cached_tokens > 1024
    assert u["cost_usd"] == pytest.approx(((total.prompt_tokens - total.cached_tokens) * 0.15 + total.cached_tokens
                                           * 0.075 + total.completion_tokens * 0.6) / 1e6, abs=1e-8)


def test_grouped_closed_form_matches_simulation():
    from visassoc.backends.prefix_cache import grouped_savings

    reqs = [[f"img{i}-{k}" for k in range(1500)] + [f"w{i}-{j}"] * 40 for i in range(7) for j in range(21)]
    sim = savings(reqs, 0.15, 0.075, window=64)
    closed = grouped_savings(7, 21, 1500, 40, 0.15, 0.075)
    assert (closed.requests, closed.input_tokens, closed.cached_tokens) == (sim.requests, sim.input_tokens, sim.cached_tokens)
    assert closed.cost_cached_usd == pytest.approx(sim.cost_cached_usd)
    assert grouped_savings(7, 21, 900, 40).cached_tokens == 0  # prefix under 1024 tokens: never cached


def test_group_by_image_is_stable():
    from types import SimpleNamespace as R

    from visassoc.backends.prefix_cache import group_by_image

    reqs = [R(image_id=i, n=n) for n, i in enumerate(["b", "a", "b", "c", "a", "b"])]
    assert [(r.image_id, r.n) for r in group_by_image(reqs)] == [("b", 0), ("b", 2), ("b", 5), ("a", 1), ("a", 4), ("c", 3)]


def test_usage_of_stages_sharing_a_model_adds_up():
    """Each stage has its own backend: usage is kept per stage, and per model it is their sum (it was:
    the last backend's usage only)."""
    from visassoc.engine.executors import backend_usage, usage_by_model

    class B:
        def __init__(self, n):
            self.n = n

        def usage(self):
            return {"prompt_tokens": self.n, "cached_tokens": self.n // 2, "requests": 1, "cost_usd": 0.5}

    by_stage = backend_usage({"associate": B(100), "caption": B(10)})
    assert by_stage["caption"]["prompt_tokens"] == 10 and by_stage["associate"]["cached_tokens"] == 50
    ident = {s: {"backend": {"model": "gpt-4o-mini"}} for s in ("associate", "caption")}
    assert usage_by_model(by_stage, ident) == {"gpt-4o-mini": {"prompt_tokens": 110, "cached_tokens": 55,
                                                               "requests": 2, "cost_usd": 1.0}}


def test_shared_prefix_of_two_caption_prompts(tmp_path):
    """The real caption prompt for two words of one image: system + image + the anchor line are shared."""
    from types import SimpleNamespace

    from visassoc.backends.prefix_cache import grouped_savings, shared_prefix_tokens
    from visassoc.stages.interfaces import CaptionRequest
    from visassoc.stages.caption import VLMCaptionWriter

    w = VLMCaptionWriter(SimpleNamespace(provider="openai", model="gpt-4o-mini", supports_images=True))
    img = str(tmp_path / "x.jpg")
    req = lambda word, assoc, lv: CaptionRequest("i", img, word, "NOUN", "A dog on grass.", "A dog.", lv, assoc,  # noqa: E731
                                                 other_words=["grass"])
    a, b = (w.build_calls([r])[0].messages for r in (req("dog", "wolf", 1), req("grass", "meadow", 2)))
    count = lambda t: len(t) // 4  # noqa: E731
    shared, total = shared_prefix_tokens(a, b, count, image_tokens=2833)
    sys_text = a[0].text
    anchor = 'Original caption of this image: "A dog on grass."\nWrite a new caption for the image in which "'
    assert shared == count(sys_text) + 2833 + count(anchor) and total > shared
    sv = grouped_savings(1, 25, shared, total - shared, 0.15, 0.075)
    assert 0.8 < sv.cacheable_share < 1.0
