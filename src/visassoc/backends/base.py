"""The protocol every model backend speaks.

A backend turns chat messages (text, optionally with images) into text; stages own the
prompts and the validation. Keeping the surface this small is what lets the same stage
code run on OpenAI, vLLM, Ollama, llama.cpp, local transformers weights or SmolLM2.
"""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from tqdm import tqdm


@dataclass
class Message:
    role: str  # "system" | "user" | "assistant"
    text: str
    images: list[bytes | Path] = field(default_factory=list)  # encoded image bytes or paths


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    requests: int = 0
    cached_tokens: int = 0  # part of prompt_tokens the provider served from its prompt cache

    def add(self, other: "Usage") -> None:
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.requests += other.requests
        self.cached_tokens += other.cached_tokens


@dataclass
class Generation:
    text: str
    parsed: Any | None = None  # set when a JSON schema was requested and the text parsed + validated
    usage: Usage = field(default_factory=Usage)
    error: str | None = None  # parse/validation failure, the raw text is still in `text`


@dataclass
class GenParams:
    temperature: float | None = 0.0  # None: the provider's default (not sent)
    max_tokens: int = 512
    seed: int | None = 0
    top_p: float = 1.0
    response_format: str | None = None  # cap on structured output: "json_object" never asks for json_schema


@runtime_checkable
class Backend(Protocol):
    """A text (LLM) or image+text (VLM) generator."""

    provider: str  # "openai", "transformers", "smollm", ...
    model: str
    supports_images: bool

    def generate(
        self, messages: list[Message], *, schema: dict | None = None, params: GenParams | None = None
    ) -> Generation: ...

    def identity(self) -> dict[str, Any]:
        """What goes into cache keys and the run manifest (provider, model, base URL, ...)."""
        ...


class BackendError(RuntimeError):
    """A backend failed in a way retries did not fix (dead server, bad model id, ...)."""


class IdentityBackend:
    """A backend that only carries a name and an identity: stages build their real calls with it
    (``estimate``, batch export/ingest, tests) and it refuses to generate."""

    def __init__(self, provider: str, model: str, supports_images: bool = True, identity: dict | None = None):
        self.provider, self.model, self.supports_images = provider, model, supports_images
        self._identity = identity or {"provider": provider, "model": model}

    @classmethod
    def from_spec(cls, spec: str, identity: dict | None = None, supports_images: bool = True) -> "IdentityBackend":
        provider, _, model = spec.partition(":")
        return cls(provider, model, supports_images, identity)

    def identity(self) -> dict:
        return self._identity

    def generate(self, *a, **k):  # pragma: no cover - a bug guard
        raise RuntimeError(f"{self.provider}:{self.model} is a stand-in backend and never generates")


# ---- calls: what a stage sends, run as concurrently as the backend allows -------------------
@dataclass
class Call:
    key: str  # deterministic; the Batch API custom_id
    members: list[int]  # indices of the requests this call answers
    messages: list[Message]
    schema: dict | None
    params: GenParams
    ctx: Any = None
    gen: Generation | None = None


def _supports(backend, attr: str) -> bool:
    return callable(getattr(type(backend), attr, None))


def generate_all(backend, calls: list[Call], desc: str) -> list[Generation]:
    """Run calls on ``backend`` as concurrently/batched as it allows; BackendError propagates."""
    items = [(c.messages, c.schema, c.params) for c in calls]
    if not items:
        return []
    if _supports(backend, "generate_many"):
        return backend.generate_many(items, desc=desc)
    if _supports(backend, "generate_batch"):
        out: list[Generation | None] = [None] * len(items)
        groups: dict[str, list[int]] = {}
        for i, (_, schema, params) in enumerate(items):
            groups.setdefault(json.dumps([schema, params.__dict__], sort_keys=True), []).append(i)
        with tqdm(total=len(items), desc=desc, unit="req") as bar:
            for idx in groups.values():
                gens = backend.generate_batch([items[i][0] for i in idx], schema=items[idx[0]][1],
                                              params=items[idx[0]][2])
                for i, g in zip(idx, gens):
                    out[i] = g
                bar.update(len(idx))
        return out  # type: ignore[return-value]

    def one(item):
        try:
            return backend.generate(item[0], schema=item[1], params=item[2])
        except BackendError:
            raise
        except Exception as e:  # one bad item must not sink the batch
            return Generation(text="", error=f"{type(e).__name__}: {e}")

    workers = max(1, int(getattr(backend, "concurrency", 1) or 1))
    with tqdm(total=len(items), desc=desc, unit="req") as bar, ThreadPoolExecutor(workers) as pool:
        futs = [pool.submit(one, it) for it in items]
        out = []
        try:
            for f in futs:
                out.append(f.result())
                bar.update(1)
        except BackendError:
            for f in futs:
                f.cancel()
            raise
    return out
