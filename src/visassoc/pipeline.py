"""The run: source -> images -> describe -> salient -> associate -> caption -> export.

Read top to bottom: each stage finds the images it has not done yet (resume), works on
them in chunks, and persists each chunk atomically (``store.StageStore``). Every input
ends as an output row or an error row. ``run(config)`` is the Python API behind
``visassoc run``.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from filelock import FileLock, Timeout
from tqdm.auto import tqdm

from . import stages_factory
from .config import RunConfig
from .images import ImageError, inspect_image
from .records import LEVELS, AssociationRecord, CaptionRecord, ErrorRecord, ImageRecord, to_row
from .sources import SourceItem, load_coco, load_demo, load_folder, load_manifest
from .stages.interfaces import AssociationRequest, CaptionRequest, DescribeRequest, StageError
from .stages.salient import SalientConfig, choose_caption, extract_salient
from .store import StageStore, fingerprint
from .text import inflections, validate_caption

PIPELINE_VERSION = "2"


class RunLocked(RuntimeError):
    pass


class OutputError(RuntimeError):
    """The run could not read or write its files (disk full, read-only, a file where a dir should be)."""


def _one_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__


class Collected(Exception):
    """Raised after a collect-only pass over one stage (``batch export``); nothing was persisted."""


@dataclass
class RunResult:
    out: Path
    new_items: dict[str, int] = field(default_factory=dict)  # stage -> images processed this time
    counts: dict[str, int] = field(default_factory=dict)  # table -> rows in the export
    seconds: float = 0.0

    @property
    def total_new(self) -> int:
        return sum(self.new_items.values())


def load_items(cfg: RunConfig) -> list[SourceItem]:
    if cfg.demo:
        return load_demo(cfg.limit)
    if cfg.coco:
        return load_coco(cfg.coco, cfg.images, cfg.limit)
    if cfg.manifest:
        return load_manifest(cfg.manifest, cfg.limit)
    return load_folder(cfg.images, cfg.captions, cfg.limit)


def _utf8_safe(it: SourceItem) -> SourceItem:
    """A file name with non-UTF-8 bytes (kept by Python as surrogates) cannot be an id in Parquet:
    such an item gets a printable id and becomes an error row."""
    try:
        (it.image_id + (it.path or "")).encode("utf-8")
        return it
    except UnicodeEncodeError:
        fix = lambda s: s.encode("utf-8", "backslashreplace").decode("utf-8")  # noqa: E731
        return SourceItem(fix(it.image_id), fix(it.path) if it.path else None, it.captions,
                          it.error or f"file name is not valid UTF-8: {fix(it.path or it.image_id)!r} (rename it)")


def _chunks(seq: list, n: int):
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


class Runner:
    def __init__(self, cfg: RunConfig, log: Callable[[str], None] = print, collect: str | None = None):
        self.cfg, self.log = cfg, log
        self.out = Path(cfg.out)
        self.result = RunResult(self.out)
        self.impl = stages_factory.build(cfg)
        self.collect = collect  # a stage whose requests are gathered instead of answered
        self.collector = None
        if collect:
            from .batch_flow import Collector

            attr = {"describe": "describer", "associate": "miner", "caption": "writer"}[collect]
            self.collector = Collector(getattr(self.impl, attr))
            setattr(self.impl, attr, self.collector)

    # -- helpers ---------------------------------------------------------
    def _bar(self, total: int, desc: str):
        return tqdm(total=total, desc=f"{desc:<9}", unit="img", disable=not self.cfg.progress, dynamic_ncols=True)

    def _stage(self, name: str, fp: str, tables: tuple[str, ...], keys: list[str], work) -> StageStore:
        """Run ``work(chunk) -> {table: rows}`` on the keys not done yet, one part per chunk."""
        store = StageStore(self.out, name, fp, tables + ("errors",))
        done = store.done_keys()
        todo = [k for k in keys if k not in done]
        self.result.new_items[name] = len(todo)
        if name == self.collect:
            for chunk in _chunks(todo, self.cfg.chunk_size):
                work(chunk)  # the collector records the requests; nothing is written
            raise Collected(name)
        with self._bar(len(keys), name) as bar:
            bar.update(len(keys) - len(todo))
            for chunk in _chunks(todo, self.cfg.chunk_size):
                store.write_part(chunk, work(chunk))
                bar.update(len(chunk))
        return store

    # -- stages ----------------------------------------------------------
    def run(self) -> RunResult:
        t0 = time.time()
        cfg = self.cfg
        items = [_utf8_safe(it) for it in load_items(cfg)]
        by_id = {it.image_id: it for it in items}
        ids = [it.image_id for it in items]

        # 0. images: open, verify, hash. A bad file becomes status=error + an error row.
        fp_img = fingerprint(PIPELINE_VERSION, "images", cfg.source_kind(), str(cfg.coco or cfg.manifest or cfg.images or "demo"))

        def do_images(chunk):
            rows, errs = [], []
            for iid in chunk:
                it = by_id[iid]
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

        s_img = self._stage("images", fp_img, ("images",), ids, do_images)
        images = {r["image_id"]: r for r in s_img.read("images", set(ids)).to_pylist()}
        ok_ids = [i for i in ids if images[i]["status"] == "ok"]

        # 1. describe
        describer = self.impl.describer
        fp_desc = fingerprint(fp_img, "describe", self.impl.identity["describe"])

        def do_describe(chunk):
            reqs = [DescribeRequest(i, images[i]["path"], images[i]["captions"]) for i in chunk]
            rows, errs = [], []
            for i, res in zip(chunk, describer.describe(reqs)):
                if isinstance(res, StageError):
                    errs.append(to_row(ErrorRecord("describe", i, None, None, res.message)))
                else:
                    rows.append(dict(image_id=i, description=res.description, description_source=res.description_source,
                                     short_caption=res.short_caption, model=res.model))
            return {"descriptions": rows, "errors": errs}

        s_desc = self._stage("describe", fp_desc, ("descriptions",), ok_ids, do_describe)
        descs = {r["image_id"]: r for r in s_desc.read("descriptions", set(ok_ids)).to_pylist()}
        desc_ids = [i for i in ok_ids if i in descs]

        # 2. salient words of one short caption (a VLM's literal caption if there is no human one)
        fp_sal = fingerprint(fp_desc, "salient", cfg.seed, cfg.top_k, cfg.max_words, PIPELINE_VERSION)
        sal_cfg = SalientConfig(top_k=cfg.top_k, max_words=cfg.max_words)

        def do_salient(chunk):
            todo, errs = [], []
            for i in chunk:
                caps = images[i]["captions"] or ([descs[i]["short_caption"]] if descs[i].get("short_caption") else [])
                if not caps:
                    errs.append(to_row(ErrorRecord("salient", i, None, None, "no caption to take salient words from")))
                    continue
                cid, cap = choose_caption(i, caps, cfg.seed, cfg.max_words)
                todo.append((i, cid, cap))
            rows = []
            chosen = {i: c for i, _, c in todo}
            for i, recs in extract_salient(todo, sal_cfg).items():
                if not recs:
                    cap = chosen[i]
                    errs.append(to_row(ErrorRecord("salient", i, None, None, f"no salient NOUN/VERB/ADJ in caption {cap!r}")))
                rows.extend(to_row(r) for r in recs)
            return {"salient": rows, "errors": errs}

        s_sal = self._stage("salient", fp_sal, ("salient",), desc_ids, do_salient)
        salient = _by_image(s_sal.read("salient", set(desc_ids)).sort_by("rank").to_pylist())
        sal_ids = [i for i in desc_ids if i in salient]

        # 3. associations: a ladder of 5 levels x per_level words per salient word
        miner = self.impl.miner
        fp_assoc = fingerprint(fp_sal, "associate", self.impl.identity["associate"], cfg.per_level, cfg.seed)

        def do_associate(chunk):
            reqs = []
            for i in chunk:  # salient rows are in rank order
                words = [s["word"] for s in salient[i]]
                for s in salient[i]:
                    reqs.append(AssociationRequest(i, s["word"], s["lemma"], s["pos"], s["caption"],
                                                   descs[i]["description"], [w for w in words if w != s["word"]]))
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

        s_assoc = self._stage("associate", fp_assoc, ("associations",), sal_ids, do_associate)
        ladders = _by_image(s_assoc.read("associations", set(sal_ids)).to_pylist())
        assoc_ids = [i for i in sal_ids if i in ladders]

        # 4. creative captions, validated; invalid ones are re-asked with the reason
        writer = self.impl.writer
        fp_cap = fingerprint(fp_assoc, "caption", self.impl.identity["caption"], cfg.captions_per_level,
                             cfg.min_words, cfg.max_words, cfg.max_reasks)

        def do_caption(chunk):
            groups = []  # one group per (image, word, level): its associations, best first
            for i in chunk:
                sal = {s["word"]: s for s in salient[i]}
                by_key: dict[tuple, list[dict]] = {}
                for a in ladders[i]:
                    by_key.setdefault((a["word"], a["level"]), []).append(a)
                for (word, level), assocs in sorted(by_key.items(), key=lambda kv: (sal[kv[0][0]]["rank"], kv[0][1])):
                    s = sal[word]
                    others = [w for w in sal if w != word]
                    groups.append([CaptionRequest(i, images[i]["path"], word, s["pos"], s["caption"],
                                                  descs[i]["description"], level, a["association"], other_words=others)
                                   for a in sorted(assocs, key=lambda a: a["rank"])])
            if cfg.captions_per_level == "all":
                return write_captions(writer, [r for g in groups for r in g], cfg)
            return write_one_caption_per_level(writer, groups, cfg)

        s_cap = self._stage("caption", fp_cap, ("captions",), assoc_ids, do_caption)

        # 5. export
        from .export import export_run

        stores = {"images": s_img, "descriptions": s_desc, "salient": s_sal, "associations": s_assoc, "captions": s_cap}
        self.result.seconds = time.time() - t0
        self.result.counts = export_run(self.out, cfg, stores, ids, self.impl, self.result)
        return self.result


def _by_image(rows: list[dict]) -> dict[str, list[dict]]:
    """Stage rows grouped by image_id, order kept."""
    out: dict[str, list[dict]] = {}
    for r in rows:
        out.setdefault(r["image_id"], []).append(r)
    return out


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
            if not a or a in seen or a in banned or any(w in banned for w in a.split()):
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


def resolve_stage_backends(cfg: RunConfig) -> RunConfig:
    """Stages left at their offline default take the backend that ``--backend-config`` names
    for them (its ``stages``, ``llm`` or ``vlm`` keys); explicit flags win."""
    if not cfg.backend_config:
        return cfg
    from .backends.registry import STAGE_ROLE, load_config

    bc = load_config(cfg.backend_config)
    update = {}
    for stage, default in stages_factory.OFFLINE.items():
        if getattr(cfg, stage) == default:
            chosen = bc.stages.get(stage) or (bc.llm if STAGE_ROLE[stage] == "llm" else bc.vlm)
            if chosen:
                update[stage] = chosen
    return cfg.model_copy(update=update) if update else cfg


def run(config: RunConfig | None = None, log: Callable[[str], None] = print, **kwargs) -> RunResult:
    """Run the whole pipeline (resuming whatever an earlier run in ``out`` finished).

    >>> import visassoc
    >>> result = visassoc.run(demo=True, out="runs/demo")   # doctest: +SKIP
    """
    cfg = resolve_stage_backends(config or RunConfig(**kwargs))
    out = Path(cfg.out)
    lock = FileLock(str(out / ".visassoc.lock"))
    try:
        out.mkdir(parents=True, exist_ok=True)
        lock.acquire(timeout=0)
    except Timeout:
        raise RunLocked(f"another visassoc run is using {out} (lock file {out / '.visassoc.lock'})") from None
    except OSError as e:  # a file where the dir should be, read-only, permissions
        raise OutputError(f"cannot use output directory {out}: {_one_line(e)}") from e
    quiet = not cfg.progress and "TQDM_DISABLE" not in os.environ
    if quiet:  # also silences the per-request bars of model backends
        os.environ["TQDM_DISABLE"] = "1"
    try:
        return Runner(cfg, log).run()
    except OSError as e:  # disk full, read-only, ...: finished parts are kept
        raise OutputError(f"{_one_line(e)} (fix it and re-run the same command to resume)") from e
    finally:
        if quiet:
            os.environ.pop("TQDM_DISABLE", None)
        lock.release()
