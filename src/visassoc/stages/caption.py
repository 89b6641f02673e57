"""Stage 4: one creative caption per (image, salient word, level) that contains the association.

Offline the substitution writer (``stages.substitute``) answers; ``VLMCaptionWriter`` asks a VLM
(or a text-only LLM, told what the image shows). Every caption is held to ``text.validate_caption``
(the one validator); an invalid one is re-asked with the reason, then the next association of
that level is tried, and the best attempt is kept with ``valid=False`` and its reason.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from visassoc.backends.base import Call, GenParams, Message
from visassoc.records import LEVEL_NAMES, CaptionRecord, ErrorRecord, to_row
from visassoc.seeding import item_rng
from visassoc.text import validate_caption

from .interfaces import CaptionRequest, StageError
from .model import ModelStage, _keyed, _said, clean_caption, is_form_of
from .prompts import LEVEL_RULES

if TYPE_CHECKING:
    from visassoc.config import RunConfig


CAPTION_SCHEMA = {"type": "object", "required": ["caption"], "properties": {"caption": {"type": "string",
                                                                                         "minLength": 1}}}


def caption_word_list(req: CaptionRequest) -> list[str]:
    """The association plus the image's other salient words, dropping the replaced word by whole
    word and inflection, never by substring (the original turned "woman" into "wo")."""
    others = list(req.other_words)
    if not others:
        from visassoc.lexicon import spacy_nlp

        others = [t.text.lower() for t in spacy_nlp()(req.caption)
                  if t.pos_ in ("NOUN", "VERB", "ADJ") and not t.is_stop]
    out = [req.association]
    for w in others:
        if not is_form_of(w, req.word) and w.lower() not in (x.lower() for x in out):
            out.append(w)
    return out


class VLMCaptionWriter(ModelStage):
    """A VLM sees the image and writes a short caption that contains the association.

    A text-only LLM (e.g. ``smollm``) is accepted too: it gets no image and stays grounded only
    through the short caption and the description in the prompt (``text_only`` is recorded)."""

    stage = "caption"

    def __init__(self, backend, prompt_set: str = "visassoc", params: GenParams | None = None,
                 prompt_dir: str | None = None):
        super().__init__(backend, prompt_set, params, prompt_dir)
        self.text_only = not getattr(backend, "supports_images", False)

    def write(self, requests: list[CaptionRequest]) -> list[str | StageError]:
        return self.run(requests)

    def build_calls(self, requests: list[CaptionRequest]) -> list[Call]:
        calls: dict[str, Call] = {}
        schema = CAPTION_SCHEMA if self.prompt.output == "json" else None
        for i, r in enumerate(requests):
            values = {"short_caption": r.caption, "word": r.word, "association": r.association,
                      "level": r.level, "level_name": LEVEL_NAMES.get(r.level, ""),
                      "level_rule": LEVEL_RULES.get(r.level, ""), "word_list": ", ".join(caption_word_list(r)),
                      "description": " ".join(r.description.split())}
            key = f"caption|{r.image_id}|{r.word}|{r.level}|{r.association}" + ("|retry" if r.feedback else "")
            _keyed(calls, key, i, lambda k: Call(k, [i], self._caption_messages(values, r), schema, self.params))
        return list(calls.values())

    def _caption_messages(self, values: dict, r: CaptionRequest) -> list[Message]:
        if not self.text_only:
            return self._messages(values, [r.path], r.feedback)
        msgs = self._messages(values, [], r.feedback)  # no image: say in words what it shows
        msgs[-1].text = f"You cannot see the image. It shows: {values['description']}\n\n" + msgs[-1].text
        return msgs

    def finish(self, call: Call, requests) -> list[str | StageError]:
        gen = call.gen
        text = ""
        if isinstance(gen.parsed, dict):
            text = str(gen.parsed.get("caption", ""))
        elif call.schema is None or (gen.error and "{" not in gen.text):
            text = gen.text  # a plain-text prompt, or a model that ignored the JSON instruction
        cap = clean_caption(text)
        if not cap:
            return [StageError(f"caption: {gen.error or 'empty caption'}{_said(gen)}")] * len(call.members)
        return [cap] * len(call.members)


# ---- the stage on one chunk: the requests it asks, the rows it writes ------------------------
def _ranked(rows: list[dict]) -> list[dict]:
    return sorted(rows, key=lambda s: s["rank"])


def request_groups(chunk, up) -> list["_Alternatives"]:
    """One group per (image, word, level): its caption requests, best association first."""
    images, descs = up["images"], up["descriptions"]
    groups = []
    for i in chunk:
        sal = {s["word"]: s for s in _ranked(up["salient"][i])}
        by_key: dict[tuple, list[dict]] = {}
        for a in up["associations"][i]:
            by_key.setdefault((a["word"], a["level"]), []).append(a)
        for (word, level), assocs in sorted(by_key.items(), key=lambda kv: (sal[kv[0][0]]["rank"], kv[0][1])):
            s = sal[word]
            context = dict(image_id=i, path=images[i][0]["path"], word=word, pos=s["pos"], caption=s["caption"],
                           description=descs[i][0]["description"], level=level,
                           other_words=[x for x in sal if x != word])
            groups.append(_Alternatives(context, [a["association"] for a in sorted(assocs, key=lambda a: a["rank"])]))
    return groups


def run_chunk(cfg, impl, chunk, up, items):
    """Creative captions, validated; invalid ones are re-asked with the reason."""
    groups = request_groups(chunk, up)
    if cfg.caption_choice == "random":  # the paper: one of the level's associations at random, no fallback
        for g in groups:
            c = g.context
            k = item_rng(cfg.seed, "caption-choice", c["image_id"], c["word"], str(c["level"])).randrange(len(g))
            g.associations = [g.associations[k]]
    if cfg.captions_per_level == "all":  # every association gets its own caption: none falls back to another
        return write_captions(impl, [replace(r, alternatives_left=0) for g in groups for r in g], cfg)
    return write_one_caption_per_level(impl, groups, cfg)


class _Alternatives(Sequence):
    """The caption requests of one (image, word, level), best association first, made only when
    asked for: usually only the first is ever needed."""

    def __init__(self, context: dict, associations: list[str]):
        self.context, self.associations = context, associations
        self._made: dict[int, CaptionRequest] = {}

    def __len__(self) -> int:
        return len(self.associations)

    def __getitem__(self, k):
        if isinstance(k, slice):
            return [self[j] for j in range(*k.indices(len(self)))]
        if k not in self._made:
            self._made[k] = CaptionRequest(association=self.associations[k], **self.context,
                                           alternatives_left=len(self) - k - 1)
        return self._made[k]


def write_captions(writer, reqs: list[CaptionRequest], cfg: RunConfig) -> dict[str, list[dict]]:
    """Ask, validate, re-ask the invalid ones (bounded), then keep the last answer with its reason."""
    final: dict[int, tuple[str | None, str | None]] = {}
    errors: dict[int, str] = {}
    attempts: dict[int, int] = {}
    pending = list(range(len(reqs)))
    previous: dict[int, str] = {}
    for attempt in range(cfg.max_reasks + 1):
        if not pending:
            break
        answers = writer.write([reqs[k] for k in pending])
        retry = []
        for k, ans in zip(pending, answers):
            r = reqs[k]
            attempts[k] = attempts.get(k, 0) + 1
            if isinstance(ans, StageError):
                errors[k] = ans.message
                continue
            errors.pop(k, None)
            cap = " ".join(str(ans).split()).strip().strip('"').strip()
            reason = validate_caption(cap, r.association, r.caption, cfg.min_words, cfg.max_words)
            final[k] = (cap, reason)
            if reason and attempt < cfg.max_reasks and previous.get(k) != cap:
                previous[k] = cap
                r.feedback = f"The previous caption {cap!r} was rejected: {reason}."
                retry.append(k)
        pending = retry
    rows, errs = [], []
    for k, r in enumerate(reqs):
        if k in final:
            cap, reason = final[k]
            rows.append(to_row(CaptionRecord(r.image_id, r.word, r.level, r.association, cap, reason is None, reason,
                                             writer.name, getattr(writer, "model", None), attempts.get(k, 1))))
        else:
            errs.append(to_row(ErrorRecord("caption", r.image_id, r.word, r.level, errors.get(k, "no caption returned"))))
    return {"captions": rows, "errors": errs}


def write_one_caption_per_level(writer, groups: list[list[CaptionRequest]], cfg: RunConfig) -> dict[str, list[dict]]:
    """One caption per (image, word, level): the first association (by rank) whose caption is
    valid; if none is, the best-ranked attempt is kept with valid=False and its reason."""
    if getattr(writer, "collecting", False):  # batch export: only the first-choice association
        groups = [g[:1] for g in groups]
    chosen: dict[int, dict] = {}
    first: dict[int, dict[str, list[dict]]] = {}
    pending = list(range(len(groups)))
    for rank in range(max((len(g) for g in groups), default=0)):
        batch = [k for k in pending if rank < len(groups[k])]
        if not batch:
            break
        res = write_captions(writer, [groups[k][rank] for k in batch], cfg)
        rows = {(r["image_id"], r["word"], r["level"]): r for r in res["captions"]}
        errs = {(e["image_id"], e["word"], e["level"]): e for e in res["errors"]}
        still = []
        for k in batch:
            r0 = groups[k][rank]
            key = (r0.image_id, r0.word, r0.level)
            if rank == 0:
                first[k] = {"captions": [rows[key]] if key in rows else [], "errors": [errs[key]] if key in errs else []}
            if key in rows and rows[key]["valid"]:
                chosen[k] = rows[key]
            else:
                still.append(k)
        pending = still
    out: dict[str, list[dict]] = {"captions": [], "errors": []}
    for k in range(len(groups)):
        if k in chosen:
            out["captions"].append(chosen[k])
        else:
            out["captions"].extend(first[k]["captions"])
            out["errors"].extend(first[k]["errors"])
    return out


def result_rows(reqs: list[CaptionRequest], results: list, backend_name: str, model: str | None,
                min_words: int, max_words: int) -> dict[str, list[dict]]:
    """Rows for answers that cannot be re-asked (batch ingest): validated like a run's captions."""
    rows, errs = [], []
    for r, res in zip(reqs, results):
        if isinstance(res, StageError):
            errs.append(to_row(ErrorRecord("caption", r.image_id, r.word, r.level, res.message)))
            continue
        cap = " ".join(str(res).split()).strip().strip('"').strip()
        reason = validate_caption(cap, r.association, r.caption, min_words, max_words)
        rows.append(to_row(CaptionRecord(r.image_id, r.word, r.level, r.association, cap, reason is None, reason,
                                         backend_name, model)))
    return {"captions": rows, "errors": errs}
