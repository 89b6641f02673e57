"""One stage on one chunk of images: the unit of work every executor schedules.

A ``StageWorker`` reads the upstream rows of just the images in its chunk (``PartReader``),
calls the stage implementation, and writes one resumable part. It holds nothing but its
chunk, so memory stays flat however large the run, and the same worker runs in the local
process or inside a Ray actor: results never depend on which process did a chunk. They depend
on the image alone, except for the lexical miner, which spreads its picks across the images of
one part; the part size is therefore in its fingerprint, and another ``--chunk-size`` redoes that
stage (and the ones after it) rather than mixing parts.
"""
from __future__ import annotations

from pathlib import Path

from visassoc.config import RunConfig
from visassoc.engine.store import PartReader, StageStore
from visassoc.sources import SourceItem
from visassoc.stages import BY_NAME, OFFLINE, PRODUCER


def chunks(keys: list[str], n: int):
    """Consecutive slices of ``n`` keys: the parts a stage writes."""
    for i in range(0, len(keys), n):
        yield keys[i : i + n]


def open_store(cfg: RunConfig, stage: str, fps: dict[str, str], clean: bool = False) -> StageStore:
    return StageStore(Path(cfg.out), stage, fps[stage], (BY_NAME[stage].table, "errors"), clean=clean)


class StageWorker:
    """Does ``stage`` for chunks of image ids. ``impl`` (stage implementations) is shared with the
    caller in a local run; a Ray actor builds its own, for its stage only."""

    def __init__(self, cfg: RunConfig, stage: str, fps: dict[str, str], impl=None):
        self.cfg, self.stage, self.impl = cfg, stage, impl
        self.step = BY_NAME[stage].step()
        self.store = open_store(cfg, stage, fps)
        self.readers = {t: PartReader(open_store(cfg, PRODUCER[t].name, fps)) for t in BY_NAME[stage].inputs}
        if impl is None and stage in OFFLINE:
            from visassoc.engine import factory

            self.impl = factory.build(cfg, only=stage)

    def compute(self, keys: list[str], items: dict[str, SourceItem] | None = None) -> dict[str, list[dict]]:
        up = {t: r.rows(t, keys) for t, r in self.readers.items()}
        impl = self.impl.get(self.stage) if self.impl is not None else None
        return self.step.run_chunk(self.cfg, impl, keys, up, items)

    def run_part(self, keys: list[str], items: dict[str, SourceItem] | None = None) -> int:
        self.store.write_part(keys, self.compute(keys, items))
        return len(keys)
