"""Batch APIs inside a run: export a stage's pending calls, ingest the answers into the call cache.

``visassoc batch export --stage S <run flags> --requests F`` runs the pipeline up to stage S,
gathers the requests S still has to answer, and writes Batch API lines (``backends.batch``).
``visassoc batch ingest --requests F --output out.jsonl`` validates the answers and stores
each one in the call cache under the key the live run computes (backend identity, messages,
schema, params). Re-running the same ``visassoc run`` then answers S from the cache: no live
call for anything the batch answered, the same validation and resume as the online path.
Re-asks and lines missing from the output go live, or, with ``--cache-only``, become error
rows; exporting again writes only the calls the cache cannot answer yet (the next round).
Ingesting twice writes the same cache entries (idempotent).
"""
from __future__ import annotations

from pathlib import Path

from visassoc.config import RunConfig
from visassoc.stages.interfaces import StageError

DEFERRED = "deferred to a batch (run `visassoc batch ingest`, then this run again)"


class Collector:
    """Stands in for a stage implementation and records the requests it is asked."""

    collecting = True

    def __init__(self, inner):
        self.inner = inner
        self.name, self.model = inner.name, getattr(inner, "model", None)
        self.requests: list = []

    def _record(self, requests):
        self.requests.extend(requests)
        return [StageError(DEFERRED) for _ in requests]

    describe = mine = write = _record


def collect_requests(cfg: RunConfig, stage: str) -> tuple[list, object]:
    """(pending requests of ``stage``, the stage's backend); earlier stages run (or resume) first."""
    from filelock import FileLock

    from visassoc.run.pipeline import Collected, Runner, resolve_stage_backends

    cfg = resolve_stage_backends(cfg)
    from visassoc.run.factory import OFFLINE

    if getattr(cfg, stage) == OFFLINE[stage]:
        raise ValueError(f"stage {stage} uses the offline backend {getattr(cfg, stage)!r}; "
                         f"pass --{'llm' if stage == 'associate' else 'vlm'} SPEC to batch it")
    Path(cfg.out).mkdir(parents=True, exist_ok=True)
    with FileLock(str(Path(cfg.out) / ".visassoc.lock"), timeout=0):
        runner = Runner(cfg, collect=stage)
        try:
            runner.run()
        except Collected:
            pass
        else:
            raise RuntimeError(f"stage {stage} was not reached")  # pragma: no cover
    backend = runner.impl.by_stage[stage]
    return runner.collector.requests, getattr(backend, "inner", backend)


def _uncached(reqs: list, backend, stage: str, cfg: RunConfig) -> list:
    """Drop requests whose calls the cache already answers (an earlier batch round)."""
    from visassoc.backends.cache import CallCache, call_key
    from visassoc.lexicon import cache_dir
    from visassoc.stages.model_stages import make_stage

    cache = CallCache(cache_dir() / "calls.sqlite")
    st = make_stage(stage, backend, prompt_set=cfg.prompt_set, per_level=cfg.per_level)
    keep: set[int] = set()
    for call in st.build_calls(reqs):
        if cache.get(call_key(backend.identity(), call.messages, call.schema, call.params)) is None:
            keep.update(call.members)
    return [r for i, r in enumerate(reqs) if i in keep]


def export_stage(cfg: RunConfig, stage: str, requests_path: str | Path) -> tuple[list[Path], int]:
    """Write the stage's pending, not yet cached calls as Batch API lines; (paths, n requests)."""
    from visassoc.backends.batch import export_batch

    reqs, backend = collect_requests(cfg, stage)
    reqs = _uncached(reqs, backend, stage, cfg)
    if not reqs:
        return [], 0
    paths = export_batch(reqs, backend, stage, requests_path, cfg.prompt_set, cfg.per_level)
    return paths, len(reqs)


def ingest_to_cache(requests_path: str | Path, outputs: list[str | Path]) -> dict[str, int]:
    """Store every successful answer line under its live-run cache key; returns counts."""
    from visassoc.backends.batch import _answer, _iter_lines, read_meta
    from visassoc.backends.cache import CallCache, call_key
    from visassoc.lexicon import cache_dir
    from visassoc.stages.model_stages import make_stage

    header, reqs, _ = read_meta(requests_path)

    class _Identity:  # make_stage needs a backend only for its name and identity
        provider, model = header["spec"].partition(":")[0], header["spec"].partition(":")[2]
        supports_images = True

        def identity(self):
            return header["backend"]

    st = make_stage(header["stage"], _Identity(), prompt_set=header["prompt_set"], per_level=header["per_level"])
    calls = {c.key: c for c in st.build_calls(reqs)}
    cache = CallCache(cache_dir() / "calls.sqlite")
    stored = skipped = 0
    seen: set[str] = set()
    for rec in _iter_lines(outputs):
        cid = rec.get("custom_id")
        text, used, failure = _answer(rec)  # a malformed line is a failure, not an exception
        if not isinstance(cid, str) or cid not in calls or cid in seen or failure is not None or not text:
            skipped += 1
            continue
        seen.add(cid)
        c = calls[cid]
        cache.put(call_key(header["backend"], c.messages, c.schema, c.params), text, used)
        stored += 1
    return {"calls": len(calls), "stored": stored, "skipped_lines": skipped, "missing": len(calls) - stored}
