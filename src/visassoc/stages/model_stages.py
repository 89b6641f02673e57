"""Describe / associate / caption stages on any ``Backend`` (OpenAI-compatible, local, SmolLM2).

Each stage turns requests into *calls* (messages + schema + params, with a deterministic key
that doubles as the Batch API ``custom_id``) and turns each call's Generation back into one
result or ``StageError`` per request. The online path and batch ingest share both halves, so a
batch output is validated exactly like a live answer. Prompts live in ``visassoc/prompts``:
``<set>.<stage>.txt``, versioned in their header and hashed into cache keys and manifests.
"""
from __future__ import annotations

import hashlib
import json
import re
import string
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.resources import files
from typing import Any

from tqdm import tqdm

from ..backends.base import BackendError, GenParams, Generation, Message, Usage
from ..backends.jsonparse import parse_json_loose
from ..records import LEVEL_NAMES, LEVELS
from ..untrusted import unsafe_reason
from .interfaces import (AssociationRequest, CaptionRequest, DescribeRequest, DescribeResult, Ladder,
                         StageError)

PROMPT_SETS = ("visassoc", "paper")
STAGES = ("describe", "associate", "caption")
LEVEL_RULES = {
    1: "close in meaning or form to the original image",
    2: "slightly looser and more abstract",
    3: "indirect, linked through the situational and emotional context of the image",
    4: "more abstract or theme-related",
    5: "highly abstract or metaphorical",
}


# ---- prompts -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Prompt:
    name: str
    sections: dict[str, str]
    params: GenParams
    output: str  # "json" | "text"
    sha256: str
    version: str = "0"
    header: str = ""  # the '#' comment block (what the prompt is, where it comes from)

    def render(self, section: str, **values: Any) -> str:
        return string.Template(self.sections[section]).substitute(values).strip()


@lru_cache(maxsize=None)
def load_prompt(prompt_set: str, stage: str) -> Prompt:
    """Parse ``prompts/<set>.<stage>.txt``: '#' header (params, output), then '=== name ===' sections."""
    if prompt_set not in PROMPT_SETS:
        raise ValueError(f"unknown prompt set {prompt_set!r} (expected one of {', '.join(PROMPT_SETS)})")
    raw = files("visassoc").joinpath("prompts", f"{prompt_set}.{stage}.txt").read_text(encoding="utf-8")
    header, sections, cur, comments = {}, {}, None, []
    for line in raw.splitlines():
        m = re.fullmatch(r"=== (\w+) ===", line.strip())
        if m:
            cur = m.group(1)
            sections[cur] = ""
        elif cur is not None:
            sections[cur] += line + "\n"
        elif line.startswith("#"):
            comments.append(line.lstrip("# "))
            if line.startswith("# ") and ":" in line and not line.startswith("#   "):
                k, v = line[2:].split(":", 1)
                header[k.strip()] = v.strip()
    params = GenParams(**json.loads(header.get("params", "{}")))
    return Prompt(f"{prompt_set}.{stage}", sections, params, header.get("output", "json"),
                  hashlib.sha256(raw.encode()).hexdigest(), header.get("version", "0"), "\n".join(comments))


def prompt_hashes(prompt_set: str = "visassoc") -> dict[str, str]:
    """{stage: sha256 of its prompt file} for cache keys and the run manifest."""
    return {s: load_prompt(prompt_set, s).sha256 for s in STAGES}


# ---- words ---------------------------------------------------------------------------------
_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


@lru_cache(maxsize=50_000)
def word_forms(word: str) -> frozenset[str]:
    """The word, its lemmas and all their inflections (lowercase), via lemminflect."""
    from lemminflect import getAllInflections, getAllLemmas

    w = word.strip().lower()
    lemmas = {w}
    for tup in getAllLemmas(w).values():
        lemmas.update(t.lower() for t in tup)
    forms = set(lemmas)
    for lemma in lemmas:
        for tup in getAllInflections(lemma).values():
            forms.update(t.lower() for t in tup)
    return frozenset(forms)


def is_form_of(candidate: str, word: str, lemma: str | None = None) -> bool:
    """True when any whole token of ``candidate`` is ``word``/``lemma`` or an inflection of it
    ("balls", "ball game" for ball), never a substring match ("woman" is not a form of "man")."""
    forms = word_forms(word) | (word_forms(lemma) if lemma else frozenset())
    return any(t in forms for t in _TOKEN.findall(candidate.lower()))


def clean_term(s: Any) -> str:
    s = " ".join(str(s).split()).strip(" \"'`*-•.,;:!?()[]{}").lower()
    return s


# ---- calls ---------------------------------------------------------------------------------
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


class _ModelStage:
    stage = ""

    def __init__(self, backend, prompt_set: str = "visassoc", params: GenParams | None = None):
        self.backend = backend
        self.prompt_set = prompt_set
        self.prompt = load_prompt(prompt_set, self.stage)
        self.params = params or self.prompt.params
        self.name = f"{backend.provider}:{backend.model}"
        self.model = backend.model
        self._usage = Usage()

    def prompt_hashes(self) -> dict[str, str]:
        return {self.stage: self.prompt.sha256}

    def identity(self) -> dict[str, Any]:
        return {"backend": self.backend.identity(), "prompt_set": self.prompt_set,
                "prompt": self.prompt.sha256, "params": self.params.__dict__}

    def usage(self) -> dict[str, Any]:
        from ..backends.openai_compat import estimate_cost

        u = self._usage
        return {"prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens, "requests": u.requests,
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


# ---- describe ------------------------------------------------------------------------------
DESCRIBE_SCHEMA = {"type": "object", "required": ["description", "short_caption"],
                   "properties": {"description": {"type": "string", "minLength": 1},
                                  "short_caption": {"type": "string", "minLength": 1}}}


class VLMDescriber(_ModelStage):
    """A VLM writes a dense description and a short literal caption of each image."""

    stage = "describe"

    def __init__(self, backend, prompt_set: str = "visassoc", params: GenParams | None = None):
        if not getattr(backend, "supports_images", False):
            raise ValueError(f"{backend.provider}:{backend.model} does not accept images; describe needs a VLM")
        super().__init__(backend, prompt_set, params)

    def describe(self, requests: list[DescribeRequest]) -> list[DescribeResult | StageError]:
        return self.run(requests)

    def build_calls(self, requests: list[DescribeRequest]) -> list[Call]:
        calls: dict[str, Call] = {}
        for i, r in enumerate(requests):
            hint = ("People described this image as:\n" + "\n".join(f"- {c}" for c in r.captions[:5])
                    + "\nUse these only as hints; describe what you see.") if r.captions else ""
            _keyed(calls, f"describe|{r.image_id}", i, lambda k: Call(
                k, [i], self._messages({"caption_hint": hint}, [r.path]), DESCRIBE_SCHEMA, self.params))
        return list(calls.values())

    def finish(self, call: Call, requests) -> list[DescribeResult | StageError]:
        gen = call.gen
        data = gen.parsed if gen.error is None else None
        desc = " ".join(str((data or {}).get("description", "")).split())
        short = clean_caption(str((data or {}).get("short_caption", "")))
        why = gen.error or ("empty description" if not desc else unsafe_reason(f"{desc}\n{short}"))
        if why:
            return [StageError(f"describe: {why}{_said(gen)}")] * len(call.members)
        return [DescribeResult(desc, "vlm", short or None, self.model)] * len(call.members)


# ---- associate -----------------------------------------------------------------------------
def association_schema(words: list[str], min_items: int = 1) -> dict:
    level = {"type": "array", "items": {"type": "string"}, "minItems": min_items}
    ladder = {"type": "object", "required": [str(lv) for lv in LEVELS],
              "properties": {str(lv): level for lv in LEVELS}}
    return {"type": "object", "required": list(words), "properties": {w: ladder for w in words}}


@dataclass
class _Parsed:
    ladders: dict[str, dict[int, list[str]]] = field(default_factory=dict)
    problems: dict[str, list[str]] = field(default_factory=dict)


class LLMAssociationMiner(_ModelStage):
    """The paper's association prompt: all salient words of one image in one call."""

    stage = "associate"

    def __init__(self, backend, prompt_set: str = "visassoc", per_level: int = 3, params: GenParams | None = None,
                 reask: bool = True):
        super().__init__(backend, prompt_set, params)
        self.per_level = int(per_level)
        self.reask = reask
        self.flags: list[dict] = []  # cross-level duplicates: flagged, kept

    def mine(self, requests: list[AssociationRequest]) -> list[Ladder | StageError]:
        return self.run(requests)

    def build_calls(self, requests: list[AssociationRequest]) -> list[Call]:
        groups: dict[tuple[str, str], list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault((r.image_id, r.caption), []).append(i)
        per_image: dict[str, int] = {}
        calls = []
        for (image_id, caption), idx in groups.items():
            n = per_image[image_id] = per_image.get(image_id, 0) + 1
            words: list[str] = []
            for i in idx:
                if requests[i].word not in words:
                    words.append(requests[i].word)
            first = requests[idx[0]]
            pos = {requests[i].word: requests[i].pos.lower() for i in idx}
            example = json.dumps({words[0]: {str(lv): ["..."] * self.per_level for lv in LEVELS}})
            values = {"description": " ".join(first.description.split()), "short_caption": caption,
                      "per_level": self.per_level, "words_list": json.dumps(words),
                      "words_lines": "\n".join(f"- {w} ({pos[w]})" for w in words), "example": example}
            key = f"associate|{image_id}" + (f"|{n}" if n > 1 else "")
            calls.append(Call(key, idx, self._messages(values), association_schema(words), self.params,
                              ctx={"words": words, "values": values}))
        return calls

    def _parse(self, call: Call, requests, gen: Generation) -> _Parsed:
        data = gen.parsed
        if data is None:
            try:
                data = parse_json_loose(gen.text)
            except ValueError:
                data = None
        out = _Parsed()
        if not isinstance(data, dict):
            for w in call.ctx["words"]:
                out.problems[w] = [f"no JSON object ({gen.error or 'unparseable'})"]
            return out
        lemma = {requests[i].word: requests[i].lemma for i in call.members}
        if len(data) == 1 and isinstance(next(iter(data.values())), dict) and not any(
                _find_key(data, w, lemma.get(w)) for w in call.ctx["words"]):
            data = next(iter(data.values()))  # {"associations": {...}}
        for w in call.ctx["words"]:
            entry = _find_key(data, w, lemma.get(w))
            probs = out.problems.setdefault(w, [])
            if not isinstance(entry, dict):
                probs.append(f'"{w}" is missing')
                continue
            levels: dict[int, list[str]] = {}
            for k, v in entry.items():
                m = re.search(r"[1-5]", str(k))
                if m:
                    levels.setdefault(int(m.group()), []).extend(v if isinstance(v, list) else str(v).split(","))
            ladder = {}
            for lv in LEVELS:
                kept, rejected = [], []
                for raw in levels.get(lv, []):
                    a = clean_term(raw)
                    if unsafe := unsafe_reason(str(raw)):  # markup, control or bidi characters
                        rejected.append(unsafe)
                    elif not a or not re.search(r"[a-z]", a) or len(a.split()) > 3:
                        rejected.append(f"{str(raw)[:30]!r} is not a word")
                    elif is_form_of(a, w, lemma.get(w)):
                        rejected.append(f'"{a}" is the word itself or a form of it')
                    elif a not in kept:
                        kept.append(a)
                if len(kept) < self.per_level:
                    why = f" ({'; '.join(rejected[:3])})" if rejected else ""
                    probs.append(f'"{w}" distance {lv}: {len(kept)} usable words, {self.per_level} needed{why}')
                ladder[lv] = kept[: self.per_level]
            out.ladders[w] = ladder
        return out

    def after_generate(self, calls: list[Call], requests) -> None:
        for c in calls:
            c.ctx["parsed"] = self._parse(c, requests, c.gen)
        bad = [c for c in calls if any(c.ctx["parsed"].problems.values()) and c.gen.text]
        if not (self.reask and bad):
            return
        again = []
        for c in bad:
            problems = "\n".join(f"- {p}" for ps in c.ctx["parsed"].problems.values() for p in ps[:6])
            msgs = c.messages + [Message("assistant", c.gen.text),
                                 Message("user", self.prompt.render("feedback", **c.ctx["values"], problems=problems))]
            again.append(Call(c.key, c.members, msgs, c.schema, c.params))
        for c, gen in zip(bad, generate_all(self.backend, again, f"associate re-ask {self.name}")):
            self._usage.add(gen.usage)
            second = self._parse(c, requests, gen)
            first = c.ctx["parsed"]
            for w in c.ctx["words"]:
                a, b = first.ladders.get(w), second.ladders.get(w)
                if a is None or b is None:
                    first.ladders[w] = a or b
                    continue
                for lv in LEVELS:
                    a[lv] = list(dict.fromkeys(a[lv] + b[lv]))[: self.per_level]
            for w, ps in second.problems.items():
                first.problems[w] = [f"{p} (after re-ask)" for p in ps]

    def finish(self, call: Call, requests) -> list[Ladder | StageError]:
        parsed = call.ctx.get("parsed") or self._parse(call, requests, call.gen)
        out = []
        for i in call.members:
            w = requests[i].word
            ladder = parsed.ladders.get(w)
            if not ladder or any(not ladder.get(lv) for lv in LEVELS):
                missing = [str(lv) for lv in LEVELS if not (ladder or {}).get(lv)]
                why = "; ".join(parsed.problems.get(w, [])[:3]) or call.gen.error or "no answer"
                out.append(StageError(f"associate: no usable associations for '{w}' at distance(s) "
                                      f"{','.join(missing)}: {why}"))
                continue
            seen: dict[str, list[int]] = {}
            for lv in LEVELS:
                for a in ladder[lv]:
                    seen.setdefault(a, []).append(lv)
            for a, lvs in seen.items():
                if len(lvs) > 1:
                    self.flags.append({"image_id": requests[i].image_id, "word": w, "association": a, "levels": lvs})
            out.append({lv: list(ladder[lv]) for lv in LEVELS})
        return out


def _find_key(data: dict, word: str, lemma: str | None):
    if word in data:
        return data[word]
    lowered = {str(k).strip().lower(): v for k, v in data.items()}
    for k in (word.lower(), (lemma or "").lower()):
        if k and k in lowered:
            return lowered[k]
    for k, v in lowered.items():  # "ball (noun)", "Ball:"
        if is_form_of(k, word, lemma):
            return v
    return None


# ---- caption -------------------------------------------------------------------------------
CAPTION_SCHEMA = {"type": "object", "required": ["caption"], "properties": {"caption": {"type": "string",
                                                                                         "minLength": 1}}}


def clean_caption(text: str) -> str:
    """First non-empty line, without a 'Caption:' label, quotes or markdown emphasis."""
    line = next((ln for ln in str(text).splitlines() if ln.strip()), "")
    line = re.sub(r"^\s*(?:new\s+)?caption\s*:\s*", "", line, flags=re.I)
    return " ".join(line.split()).strip(" \"'`*").strip()


def caption_word_list(req: CaptionRequest) -> list[str]:
    """The association plus the image's other salient words, dropping the replaced word by whole
    word and inflection, never by substring (the original turned "woman" into "wo")."""
    others = list(req.other_words)
    if not others:
        from ..lexicon import spacy_nlp

        others = [t.text.lower() for t in spacy_nlp()(req.caption)
                  if t.pos_ in ("NOUN", "VERB", "ADJ") and not t.is_stop]
    out = [req.association]
    for w in others:
        if not is_form_of(w, req.word) and w.lower() not in (x.lower() for x in out):
            out.append(w)
    return out


class VLMCaptionWriter(_ModelStage):
    """A VLM sees the image and writes a short caption that contains the association.

    A text-only LLM (e.g. ``smollm``) is accepted too: it gets no image and stays grounded only
    through the short caption and the description in the prompt (``text_only`` is recorded)."""

    stage = "caption"

    def __init__(self, backend, prompt_set: str = "visassoc", params: GenParams | None = None):
        super().__init__(backend, prompt_set, params)
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


def usage_summary(stages: dict[str, Any]) -> dict[str, Any]:
    """{stage: {prompt_tokens, completion_tokens, requests, cost_usd}, "total": ...} for manifest.json;
    stages without ``usage()`` (offline ones) are skipped."""
    out: dict[str, Any] = {}
    for name, st in stages.items():
        if callable(getattr(st, "usage", None)):
            out[name] = st.usage()
    if out:
        costs = [u["cost_usd"] for u in out.values()]
        out["total"] = {k: sum(u[k] for u in out.values()) for k in ("prompt_tokens", "completion_tokens", "requests")}
        out["total"]["cost_usd"] = None if any(c is None for c in costs) else round(sum(costs), 8)
    return out


STAGE_CLASSES = {"describe": VLMDescriber, "associate": LLMAssociationMiner, "caption": VLMCaptionWriter}


def make_stage(stage: str, backend, prompt_set: str = "visassoc", per_level: int = 3):
    if stage not in STAGE_CLASSES:
        raise ValueError(f"unknown stage {stage!r} (expected describe, associate or caption)")
    if stage == "associate":
        return LLMAssociationMiner(backend, prompt_set=prompt_set, per_level=per_level)
    return STAGE_CLASSES[stage](backend, prompt_set=prompt_set)
