"""Run the stages as Ray Data pipelines: the pending image ids -> ``map_batches`` over a pool of
stage actors -> one Parquet part per batch, written by the actor itself.

Each actor builds its own stage implementation once (spaCy, the lexical miner's vectors, an
HTTP client for the model server) and runs the same ``StageWorker`` as a local run, so the
tables are identical for the same config and seed however Ray splits the work. Resume, the
call cache and error rows are the local ones. Actors read and write the run directory, so on
a multi-node cluster ``--out`` must be a path every node sees (NFS, Lustre, a shared disk).
"""
from __future__ import annotations

import json
import logging
import math
import os
import pickle
import socket
import uuid

from visassoc.config import RunConfig
from visassoc.sources import SourceItem
from visassoc.engine.worker import StageWorker
from visassoc.stages import images_per_part
from visassoc.engine.executors import backend_usage, merge_usage


class _StageActor:
    """One Ray actor of a stage's pool: a ``StageWorker`` that persists each batch it gets."""

    def __init__(self, cfg_json: str, stage: str, fps: dict[str, str]):
        os.environ["TQDM_DISABLE"] = "1"  # the driver shows the progress
        cfg = RunConfig.model_validate_json(cfg_json).model_copy(update={"progress": False})
        self.worker = StageWorker(cfg, stage, fps)
        self.uid = uuid.uuid4().hex

    def __call__(self, batch):
        keys = batch["image_id"].to_pylist()
        items = None
        if self.worker.stage == "images":
            cols = {c: batch[c].to_pylist() for c in ("path", "captions", "error", "provenance")}
            items = {k: SourceItem(k, cols["path"][n], cols["captions"][n] or [], cols["error"][n], cols["provenance"][n])
                     for n, k in enumerate(keys)}
        try:
            done, error = self.worker.run_part(keys, items), b""
        except Exception as e:  # Ray Data would keep only a string of it: send the exception itself
            done, error = 0, _pickled(e)
        usage = backend_usage(self.worker.impl.by_stage) if self.worker.impl is not None else {}
        return {"n": [done], "actor": [self.uid], "usage": [json.dumps(usage, default=str)], "error": [error]}


def _pickled(e: Exception) -> bytes:
    try:
        return pickle.dumps(e)
    except Exception:
        return pickle.dumps(RuntimeError(f"{type(e).__name__}: {e}"))


def _requests(snapshot: dict) -> int:
    """Requests counted in one actor's usage snapshot ({stage: usage})."""
    return sum(u.get("requests", 0) for u in snapshot.values() if isinstance(u, dict))


class RayUnavailable(RuntimeError):
    pass


def _check_reachable(address: str, timeout: float = 10.0) -> None:
    """Ray retries an unreachable HOST:PORT for many minutes: fail in seconds instead."""
    if address == "auto":
        return  # ray.init itself says quickly that no cluster is running
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise RayUnavailable(f"--ray-address must be 'auto', HOST:PORT or ray://HOST:PORT (got {address!r})")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as e:
        raise RayUnavailable(f"cannot reach the Ray cluster at {address}: {e.strerror or e}") from None


class RayExecutor:
    name = "ray"

    def __init__(self, cfg: RunConfig):
        try:
            import ray
            import ray.data
        except ImportError:
            raise ImportError("--executor ray needs Ray: pip install 'visassoc[ray]'") from None
        self.ray = ray
        # actors may start in another working directory: give them absolute paths
        paths = ("out", "coco", "images", "captions", "manifest", "backend_config")
        self.cfg = cfg.model_copy(update={k: getattr(cfg, k).resolve() for k in paths if getattr(cfg, k) is not None})
        self.started_here = not ray.is_initialized()
        if self.started_here:
            local = cfg.ray_address in (None, "local")
            if not local:
                _check_reachable(cfg.ray_address)
            try:
                ray.init(address="local" if local else cfg.ray_address, num_cpus=cfg.ray_workers if local else None,
                         include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
                         object_store_memory=256 * 2**20 if local else None)
            except Exception as e:  # ConnectionError is an OSError: not an output-dir problem
                where = "a local Ray instance" if local else f"the Ray cluster at {cfg.ray_address}"
                msg = (str(e).strip().splitlines() or [type(e).__name__])[0]
                raise RayUnavailable(f"cannot start or join {where}: {msg}") from None
        logging.getLogger("ray.data").setLevel(logging.ERROR)  # our own bar shows progress
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        self.workers = cfg.ray_workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        self._usage: dict[str, dict] = {}  # actor -> its stage backend's cumulative usage, by stage

    def run_stage(self, stage: str, fps: dict[str, str], todo: list[str], items: dict, bar) -> None:
        if not todo:
            return
        if stage == "images":
            rows = [{"image_id": k, "path": items[k].path, "captions": list(items[k].captions), "error": items[k].error,
                     "provenance": items[k].provenance}
                    for k in todo]
        else:
            rows = [{"image_id": k} for k in todo]
        n = images_per_part(self.cfg)
        ds = self.ray.data.from_items(rows, override_num_blocks=max(1, math.ceil(len(rows) / n)))
        out = ds.map_batches(
            _StageActor, fn_constructor_kwargs={"cfg_json": self.cfg.model_dump_json(), "stage": stage, "fps": fps},
            batch_size=n, batch_format="pyarrow", num_cpus=1,
            compute=self.ray.data.ActorPoolStrategy(min_size=1, max_size=min(self.workers, math.ceil(len(rows) / n))),
        )
        for batch in out.iter_batches(batch_size=None, batch_format="pyarrow"):
            for row in batch.to_pylist():
                # an actor's snapshots are cumulative, but Ray Data may hand its outputs back out of
                # order: keep the latest one, i.e. the one that has counted the most requests
                snap = json.loads(row["usage"])
                if _requests(snap) >= _requests(self._usage.get(row["actor"], {})):
                    self._usage[row["actor"]] = snap
                if row["error"]:  # the stage's own exception, as a local run would raise it
                    raise pickle.loads(row["error"])
                bar.update(row["n"])

    def usage(self) -> dict:
        return merge_usage(self._usage.values())

    def close(self) -> None:
        if self.started_here:
            self.ray.shutdown()
