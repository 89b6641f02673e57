"""One stage on one chunk of images: the unit of work every executor schedules.

A ``StageWorker`` reads the upstream rows of just the images in its chunk (``PartReader``),
calls the stage implementation, and writes one resumable part. It holds nothing but its
chunk, so memory stays flat however large the run, and the same worker runs in the local
process or inside a Ray actor: results depend only on the image, never on how the images
were chunked or which process did them.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from visassoc.config import RunConfig
from visassoc.images import ImageError, inspect_image
from visassoc.records import LEVELS, AssociationRecord, CaptionRecord, ErrorRecord, ImageRecord, to_row
from visassoc.sources import SourceItem
from visassoc.stages.interfaces import AssociationRequest, CaptionRequest, DescribeRequest, StageError
from visassoc.stages.salient import SalientConfig, choose_caption, extract_salient
from visassoc.run.store import PartReader, StageStore
from visassoc.text import inflections, validate_caption

STAGES = ("images", "describe", "salient", "associate", "caption")
TABLE = {"images": "images", "describe": "descriptions", "salient": "salient", "associate": "associations",
         "caption": "captions"}
PRODUCER = {t: s for s, t in TABLE.items()}
INPUTS = {  # the upstream tables each stage reads for its chunk
    "images": (),
    "describe": ("images",),
    "salient": ("images", "descriptions"),
    "associate": ("salient", "descriptions"),
    "caption": ("images", "salient", "descriptions", "associations"),
}
IMPL_ATTR = {"describe": "describer", "associate": "miner", "caption": "writer"}


def chunks(keys: list[str], n: int):
    """Consecutive slices of ``n`` keys: the parts a stage writes."""
    for i in range(0, len(keys), n):
        yield keys[i : i + n]


def open_store(cfg: RunConfig, stage: str, fps: dict[str, str], clean: bool = False) -> StageStore:
    return StageStore(Path(cfg.out), stage, fps[stage], (TABLE[stage], "errors"), clean=clean)


class StageWorker:
    """Does ``stage`` for chunks of image ids. ``impl`` (stage implementations) is shared with the
    caller in a local run; a Ray actor builds its own, for its stage only."""

    def __init__(self, cfg: RunConfig, stage: str, fps: dict[str, str], impl=None):
        self.cfg, self.stage, self.impl = cfg, stage, impl
        self.store = open_store(cfg, stage, fps)
        self.readers = {t: PartReader(open_store(cfg, PRODUCER[t], fps)) for t in INPUTS[stage]}
        if impl is None and stage in IMPL_ATTR:
            from visassoc.run import factory as stages_factory
            self.impl = stages_factory.build(cfg, only=stage)

    def compute(self, keys: list[str], items: dict[str, SourceItem] | None = None) -> dict[str, list[dict]]:
        up = {t: r.rows(t, keys) for t, r in self.readers.items()}
        return _WORK[self.stage](self, keys, up, items)

    def run_part(self, keys: list[str], items: dict[str, SourceItem] | None = None) -> int:
        self.store.write_part(keys, self.compute(keys, items))
        return len(keys)


# -- the stages: (worker, chunk of ids, upstream rows by table and id, source items) -> rows ---------
def _images(w: StageWorker, chunk, up, items):
    """Open, verify and hash each image; a bad file becomes status=error plus an error row."""
    rows, errs = [], []
    for iid in chunk:
        it = items[iid]
        # absolute paths: the tables stay usable from any working directory
        rec = ImageRecord(iid, str(Path(it.path).resolve()) if it.path else "", captions=list(it.captions))
        try:
            if it.error:
                raise ImageError(it.error)
            info = inspect_image(it.path)
            rec.width, rec.height, rec.sha256 = info.width, info.height, info.sha256
        except ImageError as e:
            rec.status, rec.error = "error", str(e)
            errs.append(to_row(ErrorRecord("images", iid, None, None, str(e))))
        rows.append(to_row(rec))
    return {"images": rows, "errors": errs}


def _describe(w: StageWorker, chunk, up, items):
    images = up["images"]
    reqs = [DescribeRequest(i, images[i][0]["path"], images[i][0]["captions"]) for i in chunk]
    rows, errs = [], []
    for i, res in zip(chunk, w.impl.describer.describe(reqs)):
        if isinstance(res, StageError):
            errs.append(to_row(ErrorRecord("describe", i, None, None, res.message)))
        else:
            rows.append(dict(image_id=i, description=res.description, description_source=res.description_source,
                             short_caption=res.short_caption, model=res.model))
    return {"descriptions": rows, "errors": errs}


def _salient(w: StageWorker, chunk, up, items):
    """Salient words of one short caption (a VLM's literal caption if there is no human one)."""
    cfg, images, descs = w.cfg, up["images"], up["descriptions"]
    todo, errs = [], []
    for i in chunk:
        short = descs[i][0].get("short_caption")
        caps = images[i][0]["captions"] or ([short] if short else [])
        if not caps:
            errs.append(to_row(ErrorRecord("salient", i, None, None, "no caption to take salient words from")))
            continue
        cid, cap = choose_caption(i, caps, cfg.seed, cfg.max_words)
        todo.append((i, cid, cap))
    rows = []
    chosen = {i: c for i, _, c in todo}
    for i, recs in extract_salient(todo, SalientConfig(top_k=cfg.top_k, max_words=cfg.max_words)).items():
        if not recs:
            errs.append(to_row(ErrorRecord("salient", i, None, None, f"no salient NOUN/VERB/ADJ in caption {chosen[i]!r}")))
        rows.extend(to_row(r) for r in recs)
    return {"salient": rows, "errors": errs}


def _ranked(rows: list[dict]) -> list[dict]:
    return sorted(rows, key=lambda s: s["rank"])


def _associate(w: StageWorker, chunk, up, items):
    """A ladder of 5 levels x per_level words for each salient word."""
    cfg, miner, descs = w.cfg, w.impl.miner, up["descriptions"]
    reqs = []
    for i in chunk:
        salient = _ranked(up["salient"][i])
        words = [s["word"] for s in salient]
        for s in salient:
            reqs.append(AssociationRequest(i, s["word"], s["lemma"], s["pos"], s["caption"], descs[i][0]["description"],
                                           [x for x in words if x != s["word"]]))
    rows, errs = [], []
    for req, res in zip(reqs, miner.mine(reqs)):
        if isinstance(res, StageError):
            errs.append(to_row(ErrorRecord("associate", req.image_id, req.word, None, res.message)))
            continue
        for level, assocs in clean_ladder(res, req, cfg.per_level).items():
            if not assocs:
                errs.append(to_row(ErrorRecord("associate", req.image_id, req.word, level,
                                               f"no valid association at level {level}")))
            for rank, a in enumerate(assocs):
                rows.append(to_row(AssociationRecord(req.image_id, req.word, level, rank, a, miner.name)))
    return {"associations": rows, "errors": errs}


def _caption(w: StageWorker, chunk, up, items):
    """Creative captions, validated; invalid ones are re-asked with the reason."""
    cfg, images, descs = w.cfg, up["images"], up["descriptions"]
    groups = []  # one group per (image, word, level): its associations, best first
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
    if cfg.captions_per_level == "all":
        # every association gets its own caption: none falls back to another
        return write_captions(w.impl.writer, [replace(r, alternatives_left=0) for g in groups for r in g], cfg)
    return write_one_caption_per_level(w.impl.writer, groups, cfg)


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


_WORK = {"images": _images, "describe": _describe, "salient": _salient, "associate": _associate, "caption": _caption}


# -- the contracts every backend's output is held to ---------------------------------------------------
def clean_ladder(ladder: dict, req: AssociationRequest, per_level: int) -> dict[int, list[str]]:
    """Enforce the contract on any miner's output: levels 1..5, lowercase single spaces, never
    the word itself or an inflection of it, no duplicates within the ladder, at most per_level."""
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
            if not a or a in seen or a in banned or any(x in banned for x in a.split()):
                continue
            seen.add(a)
            keep.append(a)
            if len(keep) == per_level:
                break
        out[level] = keep
    return out


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
