"""The call-cache key: every input that can change a model's answer must change the key (the
generation params, the backend's identity, the messages with their images, the schema), and
nothing else may. A key that missed one would serve one backend's or one setting's answers
to another."""
from __future__ import annotations

import dataclasses

import pytest

from visassoc.backends.base import Generation, GenParams, Message, Usage
from visassoc.backends.cache import CachedBackend, CallCache, call_key
from visassoc.backends.openai_compat import OpenAIBackend

MSGS = [Message("system", "be brief"), Message("user", "describe", images=[b"\x89PNG fake bytes"])]
SCHEMA = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}


def ident(**kw) -> dict:
    b = OpenAIBackend(kw.pop("model", "m"), **{"base_url": "http://127.0.0.1:1/v1", "show_progress": False, **kw})
    return b.identity()


def test_same_inputs_same_key_even_from_equal_objects():
    assert call_key(ident(), MSGS, SCHEMA, GenParams()) == call_key(
        ident(), [dataclasses.replace(m) for m in MSGS], dict(SCHEMA), GenParams())


@pytest.mark.parametrize("field,value", [("temperature", 0.7), ("max_tokens", 100), ("seed", 1), ("seed", None),
                                         ("top_p", 0.9)])
def test_each_generation_param_is_in_the_key(field, value):
    base = call_key(ident(), MSGS, SCHEMA, GenParams())
    assert call_key(ident(), MSGS, SCHEMA, dataclasses.replace(GenParams(), **{field: value})) != base


def test_no_params_and_default_params_are_different_keys():
    assert call_key(ident(), MSGS, SCHEMA, None) != call_key(ident(), MSGS, SCHEMA, GenParams())


@pytest.mark.parametrize("change", [dict(model="m2"), dict(base_url="http://127.0.0.1:2/v1"),
                                    dict(max_image_side=256), dict(image_detail="low")])
def test_each_part_of_the_backend_identity_is_in_the_key(change):
    assert ident(**change) != ident()
    assert call_key(ident(**change), MSGS, SCHEMA, GenParams()) != call_key(ident(), MSGS, SCHEMA, GenParams())


def test_provider_and_messages_and_schema_are_in_the_key():
    base = call_key(ident(), MSGS, SCHEMA, GenParams())
    assert call_key({**ident(), "provider": "vllm"}, MSGS, SCHEMA, GenParams()) != base
    for msgs in ([MSGS[0], Message("user", "describe!", images=MSGS[1].images)],
                 [MSGS[0], Message("assistant", "describe", images=MSGS[1].images)],
                 [MSGS[0], Message("user", "describe", images=[b"other bytes"])],
                 [MSGS[0], Message("user", "describe")], MSGS[1:]):
        assert call_key(ident(), msgs, SCHEMA, GenParams()) != base
    assert call_key(ident(), MSGS, None, GenParams()) != base
    assert call_key(ident(), MSGS, {**SCHEMA, "required": []}, GenParams()) != base


def test_an_image_path_and_its_bytes_give_the_same_key(tmp_path):
    p = tmp_path / "x.png"
    p.write_bytes(b"\x89PNG fake bytes")
    assert call_key(ident(), [MSGS[0], Message("user", "describe", images=[p])], SCHEMA, GenParams()) == call_key(
        ident(), MSGS, SCHEMA, GenParams())


class Counting:
    """An inner backend that counts calls and answers with its own name (no server needed)."""

    supports_images = True

    def __init__(self, model: str, base_url: str = "http://a/v1"):
        self.provider, self.model, self.base_url, self.calls = "openai", model, base_url, 0

    def identity(self):
        return {"provider": self.provider, "model": self.model, "base_url": self.base_url}

    def generate(self, messages, *, schema=None, params=None):
        self.calls += 1
        return Generation(text=f"{self.model}@{self.base_url}", usage=Usage(1, 1, 1))


def test_cached_backend_hits_only_for_the_same_params_and_backend(tmp_path):
    cache = CallCache(tmp_path / "calls.sqlite")
    a = Counting("m")
    ca = CachedBackend(a, cache)
    assert ca.generate(MSGS, params=GenParams()).text == "m@http://a/v1" and a.calls == 1
    assert ca.generate(MSGS, params=GenParams()).text == "m@http://a/v1" and a.calls == 1  # a hit
    ca.generate(MSGS, params=GenParams(temperature=0.5))
    assert a.calls == 2  # other params: a miss
    for other in (Counting("m", "http://b/v1"), Counting("m2")):
        got = CachedBackend(other, cache).generate(MSGS, params=GenParams())
        assert other.calls == 1 and got.text == f"{other.model}@{other.base_url}"  # never the first backend's answer
