"""Batch APIs inside a run: export a stage's pending calls, ingest the answers.

``visassoc batch export --stage S <run flags> --requests F`` runs the pipeline up to stage S,
gathers the requests S still has to answer, and writes Batch API lines (``backends.openai_batch``)
built by the stage's own call builder. ``visassoc batch ingest --requests F --output out.jsonl``
validates the answers and stores each one in the call cache under the key the live run computes
(backend identity, messages, schema, params). Re-running the same ``visassoc run`` then answers
S from the cache: no live call for anything the batch answered, the same validation and resume
as the online path. Re-asks and lines missing from the output go live, or, with
``--cache-only``, become error rows; exporting again writes only the calls the cache cannot
answer yet (the next round). Ingesting twice writes the same cache entries (idempotent).

``ingest_rows`` also turns an ingest into standalone tables with the stages' own row builders
(``stages.<step>.result_rows``: ``clean_ladder`` for ladders, ``text.validate_caption`` for
captions), so they match what a run writes for the same answers.
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from visassoc.backends import openai_batch
from visassoc.backends.base import IdentityBackend
from visassoc.config import RunConfig
from visassoc.stages import OFFLINE, make_model_stage, model_options
from visassoc.stages.interfaces import AssociationRequest, CaptionRequest, DescribeRequest, StageError

REQUEST_TYPES = {"describe": DescribeRequest, "associate": AssociationRequest, "caption": CaptionRequest}


def collect_requests(cfg: RunConfig, stage: str) -> tuple[list, object]:
    """(pending requests of ``stage``, the stage's backend); earlier stages run (or resume) first."""
    from filelock import FileLock

    from visassoc.engine.pipeline import Collected, Runner, resolve_stage_backends

    cfg = resolve_stage_backends(cfg)
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

    cache = CallCache(cache_dir() / "calls.sqlite")
    st = make_model_stage(stage, backend, **model_options(cfg, stage))
    keep: set[int] = set()
    for call in st.build_calls(reqs):
        if cache.get(call_key(backend.identity(), call.messages, call.schema, call.params)) is None:
            keep.update(call.members)
    return [r for i, r in enumerate(reqs) if i in keep]


def export_requests(requests: list, backend, stage: str, out_path: str | Path, prompt_set: str = "visassoc",
                    per_level: int = 3, min_words: int = 1, max_words: int = 10, options: dict | None = None,
                    **limits) -> list[Path]:
    """Write the calls ``stage`` would send for ``requests`` as Batch API files; returns the parts.
    ``options``: the stage's other ``model_options`` (prompt folder, strictness), kept in the header."""
    options = {k: v for k, v in (options or {}).items() if k not in ("prompt_set", "per_level")}
    st = make_model_stage(stage, backend, prompt_set=prompt_set, per_level=per_level, **options)
    header = {"stage": stage, "prompt_set": prompt_set, "per_level": per_level, "min_words": min_words,
              "max_words": max_words, "options": options, "backend": backend.identity(),
              "spec": f"{backend.provider}:{backend.model}", "prompt_hashes": st.prompt_hashes()}
    return openai_batch.write_requests(st.build_calls(requests), backend, out_path, header,
                                       [asdict(r) for r in requests], **limits)


def export_stage(cfg: RunConfig, stage: str, requests_path: str | Path) -> tuple[list[Path], int]:
    """Write the stage's pending, not yet cached calls as Batch API lines; (paths, n requests)."""
    reqs, backend = collect_requests(cfg, stage)
    from visassoc.backends.prefix_cache import group_by_image

    reqs = group_by_image(_uncached(reqs, backend, stage, cfg))  # one image's lines together: prefix caching hits
    if not reqs:
        return [], 0
    paths = export_requests(reqs, backend, stage, requests_path, cfg.prompt_set, cfg.per_level, cfg.min_words,
                            cfg.max_words, options=model_options(cfg, stage))
    return paths, len(reqs)


def _exported(requests_path: str | Path):
    """(header, typed requests, the stage rebuilt on a stand-in backend, its calls by key, call records)."""
    header, raw, meta_calls = openai_batch.read_meta(requests_path)
    stage = header.get("stage")
    if stage not in REQUEST_TYPES:
        raise ValueError(f"{requests_path}: the export names no known stage ({stage!r})")
    try:
        reqs = [REQUEST_TYPES[stage](**r) for r in raw]
    except TypeError as e:
        raise ValueError(f"{requests_path}: a request in the sidecar is not a {stage} request ({e})") from None
    st = make_model_stage(stage, IdentityBackend.from_spec(header["spec"], header["backend"]),
                          prompt_set=header["prompt_set"], per_level=header["per_level"], **header.get("options", {}))
    return header, reqs, st, {c.key: c for c in st.build_calls(reqs)}, meta_calls


def ingest_batch(requests_path: str | Path, outputs: list[str | Path], errors: list[str | Path] = (),
                 cache: bool = False) -> tuple[list, list, dict]:
    """(requests, results, info): one result or StageError per exported request, in order, through
    the stage's own ``finish`` (the same parsing and checks as a live answer, with no re-ask).
    ``cache``: also store each answer under its live-run cache key (``info["cache"]`` counts them),
    from the same reading of the files."""
    import sys

    header, reqs, st, calls, meta_calls = _exported(requests_path)
    stage = header["stage"]
    if st.prompt_hashes() != header.get("prompt_hashes"):
        print(f"warning: the {stage} prompt changed since export; ingesting with the current one", file=sys.stderr)
    st.reask = False  # batch answers cannot be re-asked; invalid ones become error rows
    answers, failures, usage = openai_batch.read_answers(calls, outputs, errors)
    export_errors = {m["custom_id"]: m["export_error"] for m in meta_calls if "export_error" in m}
    results: list[Any] = [None] * len(reqs)
    missing = 0
    for cid, call in calls.items():
        if cid in answers:
            call.gen = answers[cid]
            for i, res in zip(call.members, st.finish(call, reqs)):
                results[i] = res
            continue
        if cid in export_errors:
            msg = f"batch export: {export_errors[cid]}"
        elif cid in failures:
            msg = failures[cid]
        else:
            missing += 1
            msg = f"batch: no output line for custom_id {cid!r} (batch expired, cancelled or line dropped)"
        for i in call.members:
            results[i] = StageError(f"{stage}: {msg}" if not msg.startswith(stage) else msg)
    n_err = sum(isinstance(r, StageError) for r in results)
    info = {"stage": stage, "ok": len(results) - n_err, "errors": n_err, "answered": len(answers), "failed": len(failures), "missing": missing,
            "usage": {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
                      "requests": usage.requests}, "flags": getattr(st, "flags", []), "header": header}
    if cache:
        info["cache"] = _store_answers(header, calls, answers)
    return reqs, results, info


def ingest_rows(requests_path: str | Path, outputs: list[str | Path], errors: list[str | Path] = (),
                cache: bool = False) -> tuple[dict[str, list[dict]], dict]:
    """The rows a run would write for these answers (``{table: rows, "errors": rows}``) and the info."""
    from visassoc.stages import associate, caption, describe

    reqs, results, info = ingest_batch(requests_path, outputs, errors, cache=cache)
    h = info["header"]
    spec = h["spec"]
    if info["stage"] == "describe":
        return describe.result_rows(reqs, results), info
    if info["stage"] == "associate":
        return associate.result_rows(reqs, results, spec, h["per_level"], h.get("options", {}).get("strict", True)), info
    return caption.result_rows(reqs, results, spec, spec.partition(":")[2], h.get("min_words", 1),
                               h.get("max_words", 10)), info


def write_tables(rows: dict[str, list[dict]], out_dir: str | Path) -> dict[str, Path]:
    """Overwrite ``<table>.parquet`` files (so re-ingesting is idempotent)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from visassoc.records import SCHEMAS

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for table, data in rows.items():
        p = out / f"{table}.parquet"
        pq.write_table(pa.Table.from_pylist(data, schema=SCHEMAS[table]), p)
        paths[table] = p
    return paths


def _store_answers(header: dict, calls: dict, answers: dict) -> dict[str, int]:
    """Put every non-empty answer in the call cache under the key the live run computes."""
    from visassoc.backends.cache import CallCache, call_key
    from visassoc.lexicon import cache_dir

    store = CallCache(cache_dir() / "calls.sqlite")
    stored = 0
    for cid, gen in answers.items():
        if gen.text:  # an empty answer is never cached (as in a live run)
            c = calls[cid]
            store.put(call_key(header["backend"], c.messages, c.schema, c.params), gen.text, gen.usage)
            stored += 1
    return {"calls": len(calls), "stored": stored, "missing": len(calls) - stored}


def ingest_to_cache(requests_path: str | Path, outputs: list[str | Path]) -> dict[str, int]:
    """Store every successful answer line under its live-run cache key; returns counts. The answers
    are read exactly as ``ingest_batch`` reads them, so the cache holds what the ingested rows show."""
    return ingest_batch(requests_path, outputs, cache=True)[2]["cache"]
