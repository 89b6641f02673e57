"""The default executor: chunks in order, in this process, with the run's own stage implementations."""
from __future__ import annotations

from ..stage_work import StageWorker
from . import backend_usage


class LocalExecutor:
    name = "local"

    def __init__(self, cfg, impl):
        self.cfg, self.impl = cfg, impl

    def run_stage(self, stage: str, fps: dict[str, str], todo: list[str], items: dict, bar) -> None:
        worker = StageWorker(self.cfg, stage, fps, impl=self.impl)
        n = self.cfg.images_per_part()
        for start in range(0, len(todo), n):
            chunk = todo[start : start + n]
            worker.run_part(chunk, items)
            bar.update(len(chunk))

    def usage(self) -> dict:
        return backend_usage(self.impl.backends)

    def close(self) -> None:
        pass
