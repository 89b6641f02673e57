"""The base of every model-backed stage (describe, associate, caption on any ``Backend``).

A stage turns requests into *calls* (messages + schema + params, with a deterministic key that
doubles as the Batch API ``custom_id``) and each call's Generation back into one result or
``StageError`` per request. The online path, batch export/ingest and ``estimate`` all use the
same two halves, so a batch answer is validated exactly like a live one.
"""
from __future__ import annotations

import re
from typing import Any

from visassoc.backends.base import Call, GenParams, Generation, Message, Usage, generate_all
from visassoc.backends.pricing import estimate_cost
from visassoc.text import inflections

from .prompts import load_prompt

_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def is_form_of(candidate: str, word: str, lemma: str | None = None) -> bool:
    """True when any whole token of ``candidate`` is ``word``/``lemma`` or an inflection of it
    ("balls", "ball game" for ball), never a substring match ("woman" is not a form of "man")."""
    forms = inflections(word.strip().lower()) | (inflections(lemma.strip().lower()) if lemma else frozenset())
    return any(t in forms for t in _TOKEN.findall(candidate.lower()))


def clean_term(s: Any) -> str:
    s = " ".join(str(s).split()).strip(" \"'`*-•.,;:!?()[]{}").lower()
    return s


def clean_caption(text: str) -> str:
    """First non-empty line, without a 'Caption:' label, quotes or markdown emphasis."""
    line = next((ln for ln in str(text).splitlines() if ln.strip()), "")
    line = re.sub(r"^\s*(?:new\s+)?caption\s*:\s*", "", line, flags=re.I)
    return " ".join(line.split()).strip(" \"'`*").strip()


class ModelStage:
    stage = ""

    options: dict[str, Any] = {}  # settings that change answers or rows (identity, fingerprints, batch headers)

    def __init__(self, backend, prompt_set: str = "visassoc", params: GenParams | None = None,
                 prompt_dir: str | None = None):
        self.backend = backend
        self.prompt_set = prompt_set
        self.prompt = load_prompt(prompt_set, self.stage, str(prompt_dir) if prompt_dir else None)
        self.params = params or self.prompt.params
        self.name = f"{backend.provider}:{backend.model}"
        self.model = backend.model
        self._usage = Usage()

    def prompt_hashes(self) -> dict[str, str]:
        return {self.stage: self.prompt.sha256}

    def identity(self) -> dict[str, Any]:
        return {"backend": self.backend.identity(), "prompt_set": self.prompt_set,
                "prompt": self.prompt.sha256, "params": self.params.__dict__, "options": self.options}

    def usage(self) -> dict[str, Any]:
        u = self._usage
        return {"prompt_tokens": u.prompt_tokens, "cached_tokens": u.cached_tokens,
                "completion_tokens": u.completion_tokens, "requests": u.requests,
                "cost_usd": estimate_cost(self.model, u, getattr(self.backend, "prices", None))}

    def _messages(self, values: dict, images: list | None = None, feedback: str | None = None) -> list[Message]:
        msgs = []
        if "system" in self.prompt.sections:
            msgs.append(Message("system", self.prompt.render("system", **values)))
        user = self.prompt.render("user", **values)
        if feedback and "feedback" in self.prompt.sections:
            user += "\n\n" + self.prompt.render("feedback", **values, feedback=feedback)
        msgs.append(Message("user", user, list(images or [])))
        return msgs

    # subclasses: build_calls(requests) -> list[Call]; finish(call, requests) -> list[result]
    def run(self, requests: list) -> list:
        calls = self.build_calls(requests)
        for call, gen in zip(calls, generate_all(self.backend, calls, f"{self.stage} {self.name}")):
            call.gen = gen
            self._usage.add(gen.usage)
        self.after_generate(calls, requests)
        out: list[Any] = [None] * len(requests)
        for call in calls:
            for i, res in zip(call.members, self.finish(call, requests)):
                out[i] = res
        return out

    def after_generate(self, calls: list[Call], requests: list) -> None:
        """Hook for a stage-level re-ask (online only)."""


def _said(gen: Generation) -> str:
    return f"; model said: {gen.text[:80]!r}" if gen.text else ""


def _keyed(calls: dict[str, Call], key: str, idx: int, make) -> None:
    if key in calls:
        calls[key].members.append(idx)
    else:
        calls[key] = make(key)
