"""The run: source -> images -> describe -> salient -> associate -> caption -> export.

Read top to bottom: each stage finds the images it has not done yet (resume) and hands
them, in chunks, to an executor (this process, or Ray Data); a ``stage_work.StageWorker``
does each chunk and persists it atomically (``store.StageStore``). Every input ends as an
output row or an error row. ``run(config)`` is the Python API behind ``visassoc run``.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from filelock import FileLock, Timeout
from tqdm.auto import tqdm

from visassoc.engine import guard
from visassoc.config import RunConfig
from visassoc.datafiles import blob_dir
from visassoc.engine import factory
from visassoc.engine.executors import backend_usage, make_executor, merge_usage, usage_by_model
from visassoc.engine.store import StageStore, fingerprint
from visassoc.engine.worker import StageWorker, chunks, open_store
from visassoc.sources import (SourceItem, load_coco, load_demo, load_folder, load_hf_dataset, load_manifest,
                              load_webdataset)
from visassoc.stages import MODEL_STAGES, OFFLINE, STAGES, images_per_part
from visassoc.stages.interfaces import StageError

PIPELINE_VERSION = "3"  # 3: stage fingerprints derived from the one stage list


class RunLocked(RuntimeError):
    pass


class OutputError(RuntimeError):
    """The run could not read or write its files (disk full, read-only, a file where a dir should be)."""


def _one_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__


class Collected(Exception):
    """Raised after a collect-only pass over one stage (``batch export``); nothing was persisted."""


DEFERRED = "deferred to a batch (run `visassoc batch ingest`, then this run again)"


class Collector:
    """Stands in for a stage implementation and records the requests it is asked (batch export)."""

    collecting = True

    def __init__(self, inner):
        self.inner = inner
        self.name, self.model = inner.name, getattr(inner, "model", None)
        self.requests: list = []

    def _record(self, requests):
        self.requests.extend(requests)
        return [StageError(DEFERRED) for _ in requests]

    describe = mine = write = _record


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
    outside = cfg.allow_outside_paths
    if cfg.coco:
        return load_coco(cfg.coco, cfg.images, cfg.limit, allow_outside=outside)
    if cfg.manifest and cfg.download:  # URLs fetched into RUN/_work/downloads first (visassoc fetch)
        from visassoc.sources.fetch import download_manifest

        downloads = Path(cfg.out) / "_work" / "downloads"
        return load_manifest(download_manifest(cfg.manifest, downloads, limit=cfg.limit, progress=cfg.progress),
                             cfg.limit, allow_outside=outside, roots=[Path(cfg.manifest).parent, downloads])
    if cfg.manifest:
        return load_manifest(cfg.manifest, cfg.limit, allow_outside=outside)
    if cfg.webdataset:  # container sources put each image's bytes under RUN/_work/source-files
        return load_webdataset(cfg.webdataset, blob_dir(cfg.out), cfg.limit)
    if cfg.hf_dataset:
        return load_hf_dataset(cfg.hf_dataset, blob_dir(cfg.out), cfg.split, cfg.image_column, cfg.caption_column,
                               cfg.limit)
    return load_folder(cfg.images, cfg.captions, cfg.limit, allow_outside=outside)


def _utf8_safe(it: SourceItem) -> SourceItem:
    """A file name with non-UTF-8 bytes (kept by Python as surrogates) cannot be an id in Parquet:
    such an item gets a printable id and becomes an error row."""
    try:
        (it.image_id + (it.path or "")).encode("utf-8")
        return it
    except UnicodeEncodeError:
        fix = lambda s: s.encode("utf-8", "backslashreplace").decode("utf-8")  # noqa: E731
        return SourceItem(fix(it.image_id), fix(it.path) if it.path else None, it.captions,
                          it.error or f"file name is not valid UTF-8: {fix(it.path or it.image_id)!r} (rename it)",
                          fix(it.provenance) if it.provenance else None)


def fingerprints(cfg: RunConfig, identity: dict) -> dict[str, str]:
    """Per stage: a hash of its implementation's identity, the config fields that change its rows
    (``Stage.settings``) and everything upstream; it names the stage's parts folder."""
    fp: dict[str, str] = {}
    prev = fingerprint(PIPELINE_VERSION, cfg.source_kind(),
                       str(cfg.coco or cfg.manifest or cfg.images or cfg.webdataset or cfg.hf_dataset or "demo"),
                       *([cfg.split, cfg.image_column, cfg.caption_column] if cfg.hf_dataset else []),
                       *(["download"] if cfg.download else []))
    for st in STAGES:
        prev = fp[st.name] = fingerprint(prev, st.name, identity.get(st.name),
                                         *(getattr(cfg, k) for k in st.settings))
    return fp


class Runner:
    def __init__(self, cfg: RunConfig, log: Callable[[str], None] = print, collect: str | None = None):
        self.cfg, self.log = cfg, log
        self.out = Path(cfg.out)
        self.result = RunResult(self.out)
        self.impl = factory.build(cfg)
        self.collect = collect  # a stage whose requests are gathered instead of answered
        self.collector = None
        if collect:
            self.collector = self.impl.by_name[collect] = Collector(self.impl.by_name[collect])

    def _bar(self, total: int, desc: str):
        return tqdm(total=total, desc=f"{desc:<9}", unit="img", disable=not self.cfg.progress, dynamic_ncols=True)

    def _stage(self, executor, stage: str, fps: dict[str, str], keys: list[str], items: dict) -> StageStore:
        """Do ``stage`` for the keys not done yet (one part per chunk); return its store."""
        store = open_store(self.cfg, stage, fps, clean=True)  # before any worker starts: drops half-written parts
        done = store.done_keys()
        todo = [k for k in keys if k not in done]
        self.result.new_items[stage] = len(todo)
        if stage == self.collect:
            worker = StageWorker(self.cfg, stage, fps, impl=self.impl)
            for chunk in chunks(todo, images_per_part(self.cfg)):
                worker.compute(chunk, items)  # the collector records the requests; nothing is written
            raise Collected(stage)
        with self._bar(len(keys), stage) as bar:
            bar.update(len(keys) - len(todo))
            executor.run_stage(stage, fps, todo, items, bar)
        return store

    def run(self, source: list[SourceItem] | None = None) -> RunResult:
        """Each stage in turn over the images its upstream left usable; then the export."""
        t0 = time.time()
        cfg = self.cfg
        items = {it.image_id: it for it in map(_utf8_safe, load_items(cfg) if source is None else source)}
        ids = list(items)
        fps = fingerprints(cfg, self.impl.identity)
        # batch export gathers requests in this process, so it runs the earlier stages here too
        executor = make_executor(cfg if self.collect is None else cfg.model_copy(update={"executor": "local"}), self.impl)
        stores: dict[str, StageStore] = {}
        try:
            keys = ids
            for st in STAGES:
                stores[st.table] = store = self._stage(executor, st.name, fps, keys, items)
                # the next stage gets the images with rows here (usable images, for the first stage)
                have = store.ids_with_rows(st.table, where_ok=st.name == "images")
                keys = [i for i in keys if i in have]
            # the run's own backends (local work) plus whatever the executor's workers used
            stage_usage = merge_usage([backend_usage(self.impl.by_stage), executor.usage()])
        finally:
            executor.close()
        from visassoc.engine.export import export_run

        self.result.seconds = time.time() - t0
        self.result.counts = export_run(self.out, cfg, stores, ids, self.impl, self.result,
                                        usage_by_model(stage_usage, self.impl.identity), stage_usage)
        return self.result


def resolve_stage_backends(cfg: RunConfig) -> RunConfig:
    """Stages left at their offline default take the backend that ``--backend-config`` names
    for them (its ``stages``, ``llm`` or ``vlm`` keys); explicit flags win."""
    if not cfg.backend_config:
        return cfg
    from visassoc.backends.registry import load_config

    bc = load_config(cfg.backend_config, stages=tuple(OFFLINE))
    update = {}
    for st in MODEL_STAGES:
        if getattr(cfg, st.name) == st.offline:
            chosen = bc.stages.get(st.name) or (bc.llm if st.role == "llm" else bc.vlm)
            if chosen:
                update[st.name] = chosen
    return cfg.model_copy(update=update) if update else cfg


def run(config: RunConfig | None = None, log: Callable[[str], None] = print, overwrite: bool = False,
        **kwargs) -> RunResult:
    """Run the whole pipeline (resuming whatever an earlier run in ``out`` finished).

    >>> import visassoc
    >>> result = visassoc.run(demo=True, out="runs/demo")   # doctest: +SKIP
    """
    cfg = resolve_stage_backends(config or RunConfig(**kwargs))
    created = not Path(cfg.out).exists()
    diff = guard.check_out(cfg, overwrite)  # never a user's folder, never silently another run's
    source = load_items(cfg)  # a bad source or prompt fails before the output dir is created
    factory.check_prompts(cfg)
    runner = Runner(cfg, log)  # a bad backend spec fails here, still before anything is created
    out = Path(cfg.out)
    lock = FileLock(str(out / guard.LOCK))
    try:
        out.mkdir(parents=True, exist_ok=True)
        lock.acquire(timeout=0)
        guard.claim_out(cfg, diff, overwrite, log)
    except Timeout:
        raise RunLocked(f"another visassoc run is using {out} (lock file {out / guard.LOCK})") from None
    except OSError as e:  # a file where the dir should be, read-only, permissions
        lock.release()
        guard.release_if_unused(out, created)
        raise OutputError(f"cannot use output directory {out}: {_one_line(e)}") from e
    quiet = not cfg.progress and "TQDM_DISABLE" not in os.environ
    if quiet:  # also silences the per-request bars of model backends
        os.environ["TQDM_DISABLE"] = "1"
    try:
        return runner.run(source)
    except OSError as e:  # disk full, read-only, ...: finished parts are kept
        raise OutputError(f"{_one_line(e)} (fix it and re-run the same command to resume)") from e
    finally:
        if quiet:
            os.environ.pop("TQDM_DISABLE", None)
        lock.release()
        guard.release_if_unused(out, created)
