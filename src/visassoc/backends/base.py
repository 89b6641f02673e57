"""The protocol every model backend speaks.

A backend turns chat messages (text, optionally with images) into text; stages own the
prompts and the validation. Keeping the surface this small is what lets the same stage
code run on OpenAI, vLLM, Ollama, llama.cpp, local transformers weights or SmolLM2.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable


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
    temperature: float = 0.0
    max_tokens: int = 512
    seed: int | None = 0
    top_p: float = 1.0


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
