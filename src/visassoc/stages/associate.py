"""Stage 3: association ladders. For every salient word, ``per_level`` words at each of five
distances (1 near synonym ... 5 metaphor), fitting the description and the caption.

Offline the lexical miner (``stages.lexical``) answers; ``LLMAssociationMiner`` asks an LLM, all
salient words of one image in one call. Whatever answers, ``clean_ladder`` holds every ladder to
the same contract before it becomes rows (the run, batch ingest and tests alike).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from visassoc.backends.base import Call, GenParams, Generation, Message, generate_all
from visassoc.backends.jsonparse import parse_json_loose
from visassoc.records import LEVELS, AssociationRecord, ErrorRecord, to_row
from visassoc.text import inflections
from visassoc.untrusted import unsafe_reason

from .interfaces import AssociationRequest, Ladder, StageError
from .model import ModelStage, clean_term, is_form_of


def association_schema(words: list[str], min_items: int = 1) -> dict:
    level = {"type": "array", "items": {"type": "string"}, "minItems": min_items}
    ladder = {"type": "object", "required": [str(lv) for lv in LEVELS],
              "properties": {str(lv): level for lv in LEVELS}}
    return {"type": "object", "required": list(words), "properties": {w: ladder for w in words}}


@dataclass
class _Parsed:
    ladders: dict[str, dict[int, list[str]]] = field(default_factory=dict)
    problems: dict[str, list[str]] = field(default_factory=dict)


class LLMAssociationMiner(ModelStage):
    """The paper's association prompt: all salient words of one image in one call."""

    stage = "associate"

    def __init__(self, backend, prompt_set: str = "visassoc", per_level: int = 3, params: GenParams | None = None,
                 reask: bool = True, prompt_dir: str | None = None, strict: bool = True):
        super().__init__(backend, prompt_set, params, prompt_dir)
        self.per_level = int(per_level)
        self.reask = reask
        self.strict = strict  # False: keep whatever parses (the paper filters nothing); missing levels are error rows
        self.options = {"reask": reask, "strict": strict}
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
                    if unsafe := unsafe_reason(str(raw)):  # markup, control or bidi characters: never kept
                        rejected.append(unsafe)
                    elif not self.strict:  # the paper keeps whatever else parses
                        if a and a not in kept:
                            kept.append(a)
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
            partial_ok = not self.strict and ladder and any(ladder.get(lv) for lv in LEVELS)
            if not partial_ok and (not ladder or any(not ladder.get(lv) for lv in LEVELS)):
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


# ---- the contract every miner's output is held to ---------------------------------------------
def clean_ladder(ladder: dict, req: AssociationRequest, per_level: int, strict: bool = True) -> dict[int, list[str]]:
    """Enforce the contract on any miner's output: levels 1..5, lowercase single spaces, never
    the word itself or an inflection of it, no duplicates within the ladder, at most per_level.
    ``strict=False`` (the paper: no filtering beyond parsing) only normalises and caps."""
    banned = set(inflections(req.word)) | set(inflections(req.lemma)) | {req.word.lower(), req.lemma.lower()}
    seen: set[str] = set()
    out: dict[int, list[str]] = {}
    for level in LEVELS:
        raw = ladder.get(level, ladder.get(str(level), [])) or []
        if not isinstance(raw, (list, tuple)):  # one bare word, or junk
            raw = [raw]
        keep = []
        for a in raw:
            if not isinstance(a, str):
                continue
            a = " ".join(a.replace("_", " ").lower().split())
            if not a or (a in keep) or (strict and (a in seen or a in banned or any(x in banned for x in a.split()))):
                continue
            seen.add(a)
            keep.append(a)
            if len(keep) == per_level:
                break
        out[level] = keep
    return out


# ---- the stage on one chunk: the requests it asks, the rows it writes ------------------------
def _ranked(rows: list[dict]) -> list[dict]:
    return sorted(rows, key=lambda s: s["rank"])


def requests(chunk, up) -> list[AssociationRequest]:
    """One request per salient word, in salient rank order, with the image's description."""
    reqs = []
    for i in chunk:
        salient = _ranked(up["salient"][i])
        words = [s["word"] for s in salient]
        for s in salient:
            reqs.append(AssociationRequest(i, s["word"], s["lemma"], s["pos"], s["caption"],
                                           up["descriptions"][i][0]["description"],
                                           [x for x in words if x != s["word"]]))
    return reqs


def run_chunk(cfg, impl, chunk, up, items):
    """A ladder of 5 levels x per_level words for each salient word."""
    reqs = requests(chunk, up)
    return result_rows(reqs, impl.mine(reqs), impl.name, cfg.per_level, cfg.strict_ladders)


def result_rows(reqs: list[AssociationRequest], results: list, backend_name: str, per_level: int,
                strict: bool = True) -> dict[str, list[dict]]:
    rows, errs = [], []
    for req, res in zip(reqs, results):
        if isinstance(res, StageError):
            errs.append(to_row(ErrorRecord("associate", req.image_id, req.word, None, res.message)))
            continue
        for level, assocs in clean_ladder(res, req, per_level, strict).items():
            if not assocs:
                errs.append(to_row(ErrorRecord("associate", req.image_id, req.word, level,
                                               f"no valid association at level {level}")))
            for rank, a in enumerate(assocs):
                rows.append(to_row(AssociationRecord(req.image_id, req.word, level, rank, a, backend_name)))
    return {"associations": rows, "errors": errs}
