"""Backend specs and the YAML backend config (no server needed: constructing a backend sends nothing)."""
from __future__ import annotations

import pytest

from visassoc.backends.openai_compat import OpenAIBackend
from visassoc.stages import ROLES
from visassoc.backends.registry import (BackendSpec, load_config, make_backend, parse_spec, stage_backends,
                                        stage_specs)


def test_parse_spec_forms():
    assert parse_spec("openai:gpt-4o-mini") == BackendSpec("openai", "gpt-4o-mini")
    assert parse_spec("openai:Qwen/Qwen2.5-VL-7B-Instruct").model == "Qwen/Qwen2.5-VL-7B-Instruct"
    assert parse_spec("transformers:/models/my:weights") == BackendSpec("transformers", "/models/my:weights")
    assert parse_spec("smollm").provider == "smollm" and str(parse_spec("smollm")) == "smollm"
    assert parse_spec("ollama:llava:13b") == BackendSpec("ollama", "llava:13b")
    for bad in ("", "gpt-4o-mini", "openai:", "foo:bar"):
        with pytest.raises(ValueError, match="bad backend spec"):
            parse_spec(bad)


def test_openai_like_shortcuts_and_env(monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    b = make_backend("vllm:Qwen/Qwen2.5-VL-7B-Instruct")
    assert isinstance(b, OpenAIBackend) and b.base_url == "http://localhost:8000/v1"
    assert b.model == "Qwen/Qwen2.5-VL-7B-Instruct" and b.provider == "openai"
    assert make_backend("ollama:llava").base_url == "http://localhost:11434/v1"
    assert make_backend("openai:gpt-4o-mini").base_url == "https://api.openai.com/v1"
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:8001/v1")
    assert make_backend("openai:any", concurrency=3).base_url == "http://127.0.0.1:8001/v1"
    assert make_backend("openai:any", concurrency=3).concurrency == 3


def test_config_file_per_backend_and_per_stage(tmp_path, monkeypatch):
    monkeypatch.setenv("MY_KEY", "k")
    cfg_path = tmp_path / "b.yaml"
    cfg_path.write_text("""
llm: openai:gpt-4o-mini
vlm: gpu
stages: {describe: openai:gpt-4o}
backends:
  gpu:
    spec: openai:Qwen/Qwen2.5-VL-7B-Instruct
    base_url: http://10.0.0.5:8000/v1
    api_key_env: MY_KEY
    concurrency: 32
    params: {temperature: 0.2, top_k: 20}
  openai:gpt-4o-mini: {rpm: 500}
prices: {Qwen/Qwen2.5-VL-7B-Instruct: {input: 0.1, output: 0.2}}
""")
    cfg = load_config(cfg_path)
    assert stage_specs(ROLES, config=cfg) == {"describe": "openai:gpt-4o", "associate": "openai:gpt-4o-mini",
                                       "caption": "gpu"}
    assert stage_specs(ROLES, llm="openai:o", vlm="openai:v", config=cfg)["describe"] == "openai:v"  # CLI wins
    monkeypatch.setenv("OPENAI_API_KEY", "sk")
    bs = stage_backends(ROLES, config=cfg)
    gpu = bs["caption"]
    assert gpu.base_url == "http://10.0.0.5:8000/v1" and gpu.concurrency == 32 and gpu._api_key == "k"
    body = gpu.build_body([], None, None, extra=True)
    assert body["temperature"] == 0.2 and body["top_k"] == 20
    assert bs["associate"].rpm == 500 and bs["describe"] is not bs["associate"]
    assert gpu.usage()["cost_usd"] == 0.0


def test_config_errors_are_one_line(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("backends:\n  x:\n    concurency: 3\n")
    with pytest.raises(ValueError, match=r"bad.yaml: backends.x.concurency: Extra inputs"):
        load_config(p)
    p.write_text("stages: {paint: openai:x}\n")
    with pytest.raises(ValueError, match="unknown stage 'paint'"):
        load_config(p, stages=tuple(ROLES))
    with pytest.raises(ValueError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ValueError, match="no backend for stage associate"):
        stage_specs(ROLES, vlm="openai:x")
