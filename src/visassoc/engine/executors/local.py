"""The default executor: chunks in order, in this process, with the run's own stage implementations."""
from __future__ import annotations

from visassoc.engine.worker import StageWorker, chunks
from visassoc.stages import images_per_part


class LocalExecutor:
    name = "local"

    def __init__(self, cfg, impl):
        self.cfg, self.impl = cfg, impl

    def run_stage(self, stage: str, fps: dict[str, str], todo: list[str], items: dict, bar) -> None:
        worker = StageWorker(self.cfg, stage, fps, impl=self.impl)
        for chunk in chunks(todo, images_per_part(self.cfg)):
            worker.run_part(chunk, items)
            bar.update(len(chunk))

    def usage(self) -> dict:
        return {}  # its calls go through the run's own backends, which the run counts (by stage)

    def close(self) -> None:
        pass
