"""``--caption-mode per-word``: one VLM call writes the captions of all levels of one salient word.

Not the paper's procedure (it asks once per level): the image and the fixed instructions are
sent once per word instead of once per level, which cuts requests about five-fold and, with a
prefix cache, paid input further. Every caption is still validated on its own by the caption
stage (``run.worker.write_captions``), which re-asks only the failed ones; this writer then
groups just those levels into one call per word again. Keys of the JSON answer are item
numbers, so several associations of one level (``--captions-per-level all``) fit in one call.
"""
from __future__ import annotations

from ..backends.base import Call, Message
from ..records import LEVEL_NAMES
from .caption import VLMCaptionWriter, caption_word_list
from .interfaces import CaptionRequest, StageError
from .model import _keyed, _said, clean_caption
from .prompts import LEVEL_RULES, load_prompt


def word_schema(n: int) -> dict:
    keys = [str(k) for k in range(1, n + 1)]
    return {"type": "object", "required": keys, "additionalProperties": False,
            "properties": {k: {"type": "string", "minLength": 1} for k in keys}}


class VLMWordCaptionWriter(VLMCaptionWriter):
    def __init__(self, backend, prompt_set: str = "visassoc", params=None, prompt_dir: str | None = None):
        if prompt_set != "visassoc":
            raise ValueError("--caption-mode per-word has visassoc's prompt only (use --prompt-set visassoc)")
        super().__init__(backend, prompt_set, params)
        self.prompt = load_prompt(prompt_set, "caption_word", prompt_dir)  # <prompt_dir>/caption_word.txt if given
        self.params = params or self.prompt.params
        self.options = {"mode": "per-word"}

    def build_calls(self, requests: list[CaptionRequest]) -> list[Call]:
        groups: dict[str, list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault(f"{r.image_id}|{r.word}", []).append(i)
        calls: dict[str, Call] = {}
        for members in groups.values():
            rs = [requests[i] for i in members]
            r0 = rs[0]
            items = "\n".join(f'{n}. distance {r.level} ({LEVEL_NAMES.get(r.level, "")}: {LEVEL_RULES.get(r.level, "")}), '
                              f'association "{r.association}"' for n, r in enumerate(rs, 1))
            words = []
            for r in rs:
                words += [w for w in caption_word_list(r) if w not in words]
            feedback = " ".join(f"Item {n}: {r.feedback}" for n, r in enumerate(rs, 1) if r.feedback)
            values = {"short_caption": r0.caption, "word": r0.word, "word_list": ", ".join(words), "items": items,
                      "answer_shape": ", ".join(f'"{n}": "..."' for n in range(1, len(rs) + 1))}
            key = "caption_word|" + "|".join([r0.image_id, r0.word, *(f"{r.level}:{r.association}" for r in rs)]) \
                + ("|retry" if feedback else "")
            _keyed(calls, key, members[0], lambda k: Call(k, list(members), self._word_messages(values, r0, feedback),
                                                          word_schema(len(rs)), self.params))
        return list(calls.values())

    def _word_messages(self, values: dict, r: CaptionRequest, feedback: str) -> list[Message]:
        msgs = self._messages(values, [] if self.text_only else [r.path], feedback or None)
        if self.text_only:
            msgs[-1].text = f"You cannot see the image. It shows: {' '.join(r.description.split())}\n\n" + msgs[-1].text
        return msgs

    def finish(self, call: Call, requests) -> list[str | StageError]:
        gen = call.gen
        parsed = gen.parsed if isinstance(gen.parsed, dict) else {}
        out: list[str | StageError] = []
        for n, _ in enumerate(call.members, 1):
            cap = clean_caption(str(parsed.get(str(n), "")))
            out.append(cap or StageError(f"caption (per word): {gen.error or f'no caption for item {n}'}{_said(gen)}"))
        return out
