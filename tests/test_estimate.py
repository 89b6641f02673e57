"""`visassoc estimate`: requests, tokens and cost of a run before it runs, with no model call.

Expected request counts are recomputed here from the source loader and the real salient
extraction, independently of the estimate's own bookkeeping."""
from __future__ import annotations

import json
import socket

import pytest
import yaml
from typer.testing import CliRunner

from visassoc.cli import app
from visassoc.config import RunConfig
from visassoc.engine.estimate import (caption_attempts, estimate, format_estimate, image_tokens, sent_size,
                               token_counter)
from visassoc.sources import load_demo
from visassoc.stages.salient import SalientConfig, choose_caption, extract_salient

from conftest import dead_port

M = "openai:gpt-4o-mini"
ALL_MODEL = ["--describe", M, "--associate", M, "--caption", M]


@pytest.fixture(autouse=True)
def _no_network(monkeypatch, request):
    """Any attempt to open a connection fails the test: an estimate never calls a model
    (except in the one test that compares with a real run against the loopback fake server)."""
    if "fake_server" in request.node.name:
        yield
        return

    def refuse(self, address, *a, **k):
        raise AssertionError(f"estimate opened a connection to {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # no key needed to estimate
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    yield


def _cli(*args: str):
    return CliRunner().invoke(app, ["estimate", *args])


def _demo_words(limit=None, top_k=5, max_words=10, seed=0) -> list[int]:
    items = load_demo(limit)
    todo = [(it.image_id, *choose_caption(it.image_id, it.captions, seed, max_words)) for it in items]
    sal = extract_salient(todo, SalientConfig(top_k=top_k, max_words=max_words))
    return [len(sal[it.image_id]) for it in items]


def _stage(est, name):
    return next(s for s in est.stages if s.stage == name)


def test_demo_requests_follow_the_pipeline_formula(tmp_path):
    words = _demo_words()
    n = len(words)
    cfg = RunConfig(out=tmp_path / "never", demo=True, describe=M, associate=M, caption=M)
    exact = estimate(cfg, sample=50, reask_rate=0.0)
    assert _stage(exact, "describe").requests == pytest.approx(n)  # one call per image
    assert _stage(exact, "associate").requests == pytest.approx(sum(1 for w in words if w))  # one per image
    assert _stage(exact, "caption").requests == pytest.approx(5 * sum(words))  # word x level
    assert _stage(exact, "caption").first_requests == 5 * sum(words)

    r = 0.15
    est = estimate(cfg, sample=50, reask_rate=r)
    per_caption = (1 + r + r ** 2) * (1 + r ** 3 + r ** 6)  # 2 re-asks, then the next of 3 associations
    assert _stage(est, "caption").requests == pytest.approx(5 * sum(words) * per_caption)
    assert _stage(est, "associate").requests == pytest.approx(sum(1 for w in words if w) * (1 + r))
    assert _stage(est, "describe").requests == pytest.approx(n)  # describe is never re-asked by the stage
    # every model stage has tokens and a known gpt-4o-mini price; images go with describe and caption
    for s in est.stages:
        assert not s.offline and s.input_text_tokens > 0 and s.output_tokens > 0 and s.cost_usd > 0
        assert s.batch_cost_usd == pytest.approx(s.cost_usd / 2, rel=1e-3)
        assert s.cost_max_usd >= s.cost_usd
    assert _stage(est, "caption").image_tokens > 0 and _stage(est, "associate").image_tokens == 0
    assert _stage(est, "caption").input_text_tokens > _stage(exact, "caption").input_text_tokens  # re-asks
    assert est.total()["cost_usd"] == pytest.approx(sum(s.cost_usd for s in est.stages), abs=1e-3)
    assert not (tmp_path / "never").exists()  # nothing written into the run dir


def test_cli_demo_table_and_json(tmp_path):
    res = _cli("--demo", *ALL_MODEL, "--reask-rate", "0", "--out", str(tmp_path / "run"))
    assert res.exit_code == 0, res.output
    words = _demo_words()
    line = next(ln for ln in res.output.splitlines() if ln.startswith("caption "))
    assert f"{5 * sum(words):,}" in line.split()
    assert "chars/4" in res.output or "tokenizer" in res.output
    assert "cache" in res.output.lower()  # the footer says cache hits are not subtracted
    assert not (tmp_path / "run").exists()

    res = _cli("--demo", *ALL_MODEL, "--json")
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    assert [s["stage"] for s in d["stages"]] == ["describe", "associate", "caption"]
    assert d["images"] == len(load_demo())
    assert d["total"]["requests"] == round(sum(s["requests"] for s in d["stages"]))
    assert d["total"]["cost_usd"] > 0 and d["total"]["batch_cost_usd"] == pytest.approx(d["total"]["cost_usd"] / 2, rel=1e-2)


def test_offline_default_makes_no_requests():
    est = estimate(RunConfig(out="x", demo=True))
    assert all(s.offline and s.requests == 0 and s.input_tokens == 0 for s in est.stages)
    assert est.total()["requests"] == 0 and est.total()["cost_usd"] == 0
    res = _cli("--demo")
    assert res.exit_code == 0 and "no model calls" in res.output


def test_tokens_and_requests_grow_with_limit():
    small = estimate(RunConfig(out="x", demo=True, limit=3, associate=M, caption=M))
    big = estimate(RunConfig(out="x", demo=True, limit=9, associate=M, caption=M))
    assert small.images == 3 and big.images == 9
    for name in ("associate", "caption"):
        a, b = _stage(small, name), _stage(big, name)
        assert b.requests > a.requests and b.input_text_tokens > a.input_text_tokens and b.output_tokens > a.output_tokens
    assert _stage(big, "describe").offline and _stage(big, "describe").requests == 0
    assert big.total()["cost_usd"] > small.total()["cost_usd"]


def test_unknown_model_cost_is_unknown_not_zero():
    cfg = RunConfig(out="x", demo=True, limit=2, associate="openai:my-own-llm", caption="vllm:Qwen/Qwen2.5-VL-7B-Instruct")
    est = estimate(cfg)
    for name in ("associate", "caption"):
        s = _stage(est, name)
        assert s.requests > 0 and s.cost_usd is None and s.batch_cost_usd is None
    assert est.total()["cost_usd"] is None
    table = format_estimate(est)
    assert "unknown" in table and "prices" in table
    d = json.loads(_cli("--demo", "--limit", "2", "--associate", "openai:my-own-llm", "--json").output)
    assert d["stages"][1]["cost_usd"] is None and d["total"]["cost_usd"] is None


def test_backend_config_prices_and_options_are_used(tmp_path):
    cfg_file = tmp_path / "backends.yaml"
    cfg_file.write_text(yaml.safe_dump({
        "backends": {"gpu": {"spec": "openai:my-vlm", "base_url": f"http://127.0.0.1:{dead_port()}/v1",  # refused
                             "params": {"max_tokens": 40}}},
        "stages": {"caption": "gpu"},
        "prices": {"my-vlm": {"input": 1.0, "output": 2.0}},
    }))
    est = estimate(RunConfig(out="x", demo=True, limit=2, backend_config=cfg_file), image_tokens_override=100)
    cap = _stage(est, "caption")  # the config's `stages` picks the backend for the default stage
    assert not cap.offline and cap.model == "my-vlm" and cap.max_tokens == 40
    assert cap.cost_usd == pytest.approx((round(cap.input_tokens) * 1.0 + round(cap.output_tokens) * 2.0) / 1e6, rel=1e-6)
    assert "backend config prices" in cap.price_source
    assert cap.image_tokens == pytest.approx(cap.requests * 100)  # flat override, one image per call
    assert _stage(est, "associate").offline
    res = _cli("--demo", "--limit", "2", "--backend-config", str(cfg_file))
    assert res.exit_code == 0, res.output
    assert "backend config prices" in res.output


def test_scale_extrapolates_linearly():
    base = estimate(RunConfig(out="x", demo=True, associate=M, caption=M), reask_rate=0.0)
    big = estimate(RunConfig(out="x", demo=True, associate=M, caption=M), reask_rate=0.0, scale=120)
    assert big.images == 120 and big.source_images == 12
    assert _stage(big, "caption").requests == pytest.approx(10 * _stage(base, "caption").requests)
    assert "EXTRAPOLATION" in format_estimate(big)


def test_bad_flags_exit_2_with_one_line():
    for args in (["--demo", "--coco", "x.json"], ["--images", "/no/such/dir"], ["--demo", "--llm", "foo:bar"],
                 ["--demo", "--tokenizer", "/no/such/tokenizer.json"], []):
        res = _cli(*args)
        assert res.exit_code == 2, (args, res.output)
        assert res.output.strip().startswith("error:") and len(res.output.strip().splitlines()) == 1, res.output


def test_image_token_rules():
    assert image_tokens("gpt-4o", 1024, 1024, "high") == 85 + 170 * 4  # OpenAI's documented example: 765
    assert image_tokens("gpt-4o", 2048, 4096, "high") == 85 + 170 * 6  # 1105
    assert image_tokens("gpt-4o-2024-08-06", 512, 512) == 255  # dated name, detail auto counted as high
    assert image_tokens("gpt-4o-mini", 640, 480, "low") == 2833
    assert image_tokens("gpt-4o-mini", 640, 480, "high") == 2833 + 5667 * 2
    assert image_tokens("gpt-4.1-mini", 1024, 1024) == 1659  # 1024 patches x 1.62, rounded up (not gpt-4.1 tiles)
    assert image_tokens("gpt-4.1", 1024, 1024) == 765
    assert image_tokens("Qwen/Qwen2.5-VL-7B-Instruct", 640, 480) == 23 * 17 + 2
    assert image_tokens("some-vlm", 640, 480) == 576
    assert image_tokens("gpt-4o", 640, 480, override=7) == 7
    assert sent_size(4000, 3000, 768) == (768, 576) and sent_size(640, 480, 768) == (640, 480)


def test_caption_attempts_and_tokenizers(tmp_path, monkeypatch):
    assert caption_attempts(0.0, 2, 3) == 1.0
    assert caption_attempts(1.0, 2, 3) == 9.0  # every attempt rejected: 3 tries x 3 associations
    assert caption_attempts(0.5, 0, 1) == 1.0
    monkeypatch.setitem(__import__("sys").modules, "tiktoken", None)  # not installed -> chars/4
    c = token_counter()
    assert not c.exact and "chars/4" in c.name and c.count("abcdefgh") == 2
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({"[UNK]": 0, "a": 1}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(tmp_path / "tokenizer.json"))
    c = token_counter(str(tmp_path))
    assert c.exact and c.count("a red ball, here") == 5
    est = estimate(RunConfig(out="x", demo=True, limit=2, associate=M), tokenizer=str(tmp_path / "tokenizer.json"))
    approx = estimate(RunConfig(out="x", demo=True, limit=2, associate=M), tokenizer="chars")
    assert est.tokens_exact and "tokenizer" in est.tokenizer
    assert _stage(est, "associate").input_text_tokens != _stage(approx, "associate").input_text_tokens


def test_estimate_matches_a_real_run_on_the_fake_server(tmp_path, monkeypatch):
    """The same config run for real over HTTP (loopback fake OpenAI server, every answer valid):
    the server sees exactly the estimated requests per stage, and caption prompts of about the
    estimated size (the server counts chars/4 of the text parts; the estimate adds chat framing)."""
    import re

    import visassoc
    from fake_openai_server import FakeOpenAI, prompt_text

    def responder(body):
        text = prompt_text(body)
        props = set((((body.get("response_format") or {}).get("json_schema") or {}).get("schema") or {}).get(
            "properties", {}))
        if "description" in props:
            return json.dumps({"description": "A photo.", "short_caption": "A photo of a thing."})
        m = re.search(r'association "([^"]+)"', text)
        if m:
            return json.dumps({"caption": f"The {m.group(1)} waits on the table"})
        words = re.findall(r"^- (\S+) \((?:noun|verb|adj)\)$", text, re.M)
        return json.dumps({w: {str(lv): [f"{w}{lv}{k}" for k in "abc"] for lv in range(1, 6)} for w in words})

    monkeypatch.setenv("VISASSOC_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    with FakeOpenAI(responder=responder) as server:
        bc = tmp_path / "b.yaml"
        bc.write_text(yaml.safe_dump({"backends": {"openai:fake-vlm": {"base_url": server.base_url}}}))
        cfg = RunConfig(out=tmp_path / "run", demo=True, limit=2, describe="openai:fake-vlm",
                        associate="openai:fake-vlm", caption="openai:fake-vlm", backend_config=bc, progress=False,
                        cache=False)
        est = estimate(cfg, reask_rate=0.0)
        visassoc.run(cfg, log=lambda *_: None)
        seen = {"describe": [], "associate": [], "caption": []}
        for r in server.chat_requests():
            body = r["body"]
            text = prompt_text(body)
            kind = ("describe" if "short_caption" in json.dumps(body.get("response_format"))
                    else "caption" if 'association "' in text else "associate")
            seen[kind].append(len(text) // 4 + 1)
    for name, calls in seen.items():
        assert len(calls) == pytest.approx(_stage(est, name).requests), name
    cap = _stage(est, "caption")
    framing = cap.requests * (3 + 2 * 3)  # reply priming + system and user messages
    assert (cap.input_text_tokens - framing) == pytest.approx(sum(seen["caption"]), rel=0.1)


def test_tiktoken_is_used_only_when_its_encoding_is_already_on_disk(tmp_path, monkeypatch):
    import hashlib
    import types

    fake = types.ModuleType("tiktoken")
    fake.get_encoding = lambda name: types.SimpleNamespace(encode=lambda t, disallowed_special=(): t.split())
    monkeypatch.setitem(__import__("sys").modules, "tiktoken", fake)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    c = token_counter()
    assert not c.exact and "not cached" in c.name  # never triggers tiktoken's download
    url = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"
    (tmp_path / hashlib.sha1(url.encode()).hexdigest()).write_text("cached")
    c = token_counter()
    assert c.exact and c.name == "tiktoken o200k_base" and c.count("one two three") == 3
