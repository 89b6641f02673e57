"""Offline batch workflows: OpenAI Batch API and ``vllm run-batch``.

``export_batch`` writes the same calls the online path would send as Batch API JSONL lines
(<= 50,000 lines and ~190 MB per file, split deterministically) plus a ``.meta.jsonl`` sidecar
holding the requests behind each ``custom_id``; ``ingest_batch`` reads output/error files
back through the stage's own validation, so every request ends as a result or a StageError
(lines missing from the output become explicit errors) and re-ingesting gives the same rows.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterable

from ..records import (SCHEMAS, AssociationRecord, CaptionRecord, DescriptionRecord, ErrorRecord, to_row)
from ..stages.interfaces import AssociationRequest, CaptionRequest, DescribeRequest, StageError
from ..stages.model_stages import make_stage
from .base import Generation, Usage
from .jsonparse import parse_and_validate

MAX_LINES = 50_000
MAX_BYTES = 190_000_000  # OpenAI accepts 200 MB per batch input file
REQUEST_TYPES = {"describe": DescribeRequest, "associate": AssociationRequest, "caption": CaptionRequest}


def sidecar(path: str | Path, kind: str) -> Path:
    """``requests.jsonl`` -> ``requests.meta.jsonl`` / ``requests.batch.json``."""
    p = Path(path)
    stem = p.name[: -len(".jsonl")] if p.name.endswith(".jsonl") else p.stem
    return p.with_name(f"{stem}.{kind}")


def _part_path(out: Path, i: int, n: int) -> Path:
    if n == 1:
        return out
    stem = out.name[: -len(".jsonl")] if out.name.endswith(".jsonl") else out.stem
    return out.with_name(f"{stem}.{i + 1:03d}.jsonl")


def export_batch(requests: list, backend, stage: str, out_path: str | Path, prompt_set: str = "visassoc",
                 per_level: int = 3, max_lines: int = MAX_LINES, max_bytes: int = MAX_BYTES) -> list[Path]:
    """Write Batch API request files for ``requests`` of ``stage``; returns the part paths.
    A request whose image cannot be encoded is kept in the sidecar and ingests as an error."""
    if not callable(getattr(backend, "build_body", None)):
        raise ValueError(f"{backend.provider}:{backend.model} has no OpenAI request format; batch export "
                         "needs an openai/vllm/ollama backend spec")
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    st = make_stage(stage, backend, prompt_set=prompt_set, per_level=per_level)
    calls = st.build_calls(requests)
    parts: list[list[str]] = [[]]
    size = 0
    meta_calls = []
    for c in calls:
        try:
            body = backend.build_body(backend.openai_messages(c.messages), c.schema, c.params, extra=True)
        except ValueError as e:
            meta_calls.append({"custom_id": c.key, "members": c.members, "export_error": str(e)})
            continue
        line = json.dumps({"custom_id": c.key, "method": "POST", "url": "/v1/chat/completions", "body": body},
                          ensure_ascii=False)
        if parts[-1] and (len(parts[-1]) >= max_lines or size + len(line) + 1 > max_bytes):
            parts.append([])
            size = 0
        parts[-1].append(line)
        size += len(line.encode()) + 1
        meta_calls.append({"custom_id": c.key, "members": c.members})
    paths = [_part_path(out, i, len(parts)) for i in range(len(parts))]
    for p, lines in zip(paths, parts):
        p.write_text("".join(x + "\n" for x in lines), encoding="utf-8")
    header = {"stage": stage, "prompt_set": prompt_set, "per_level": per_level, "backend": backend.identity(),
              "spec": f"{backend.provider}:{backend.model}", "api_key_env": getattr(backend, "api_key_env", None),
              "prompt_hashes": st.prompt_hashes(), "parts": [p.name for p in paths], "n_requests": len(requests)}
    with sidecar(out, "meta.jsonl").open("w", encoding="utf-8") as f:
        f.write(json.dumps({"header": header}) + "\n")
        for r in requests:
            f.write(json.dumps({"request": asdict(r)}, ensure_ascii=False) + "\n")
        for m in meta_calls:
            f.write(json.dumps({"call": m}, ensure_ascii=False) + "\n")
    return paths


def read_meta(requests_path: str | Path) -> tuple[dict, list, list[dict]]:
    meta = sidecar(requests_path, "meta.jsonl")
    if not meta.exists():
        raise ValueError(f"{meta} not found: pass the --out path used with `batch export`")
    header, reqs, calls = {}, [], []
    with meta.open(encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            if "header" in rec:
                header = rec["header"]
            elif "request" in rec:
                reqs.append(REQUEST_TYPES[header["stage"]](**rec["request"]))
            else:
                calls.append(rec["call"])
    return header, reqs, calls


def _iter_lines(paths: Iterable[str | Path]):
    for p in paths:
        with open(p, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    try:
                        rec = json.loads(line)
                    except json.JSONDecodeError:
                        print(f"warning: {Path(p).name}:{n} is not JSON; skipped", file=sys.stderr)
                        continue
                    if isinstance(rec, dict):
                        yield rec
                    else:
                        print(f"warning: {Path(p).name}:{n} is not a JSON object; skipped", file=sys.stderr)


def _answer(rec: dict) -> tuple[str | None, Usage, str | None]:
    """(text, usage, failure) of one output line, checking its shape before reading it: the file
    is untrusted, so a line that is not ``{"response": {"status_code": 200, "body": {"choices":
    [{"message": {"content": str}}]}}}`` becomes a failure message, never an exception."""
    resp = rec.get("response")
    resp = resp if isinstance(resp, dict) else {}
    body = resp.get("body")
    body = body if isinstance(body, dict) else {}
    if resp.get("status_code") != 200 or rec.get("error"):
        return None, Usage(), f"batch: HTTP {resp.get('status_code')}: {_msg(rec.get('error') or body.get('error'))}"
    choices = body.get("choices")
    msg = choices[0].get("message") if isinstance(choices, list) and choices and isinstance(choices[0], dict) else None
    content = msg.get("content") if isinstance(msg, dict) else None
    if not isinstance(msg, dict) or not isinstance(content, (str, type(None))):
        return None, Usage(), "batch: response body has no choices[0].message with text content"
    u = body.get("usage") if isinstance(body.get("usage"), dict) else {}
    tokens = [v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else 0
              for v in (u.get("prompt_tokens"), u.get("completion_tokens"))]
    return content or "", Usage(tokens[0], tokens[1], 1), None


def ingest_batch(requests_path: str | Path, outputs: list[str | Path], errors: list[str | Path] = (),
                 backend=None) -> tuple[list, list, dict]:
    """(requests, results, info): one result or StageError per exported request, in order.
    ``backend`` is only needed for stage settings; by default the exported spec is rebuilt offline."""
    header, reqs, meta_calls = read_meta(requests_path)
    stage = header["stage"]
    backend = backend or _OfflineBackend(header)
    st = make_stage(stage, backend, prompt_set=header["prompt_set"], per_level=header["per_level"])
    if st.prompt_hashes() != header.get("prompt_hashes"):
        print(f"warning: the {stage} prompt changed since export; ingesting with the current one",
              file=sys.stderr)
    st.reask = False  # batch answers cannot be re-asked; invalid ones become error rows
    calls = {c.key: c for c in st.build_calls(reqs)}
    answers: dict[str, Generation] = {}
    failures: dict[str, str] = {}
    usage = Usage()
    for rec in _iter_lines(outputs):
        cid = rec.get("custom_id")
        if not isinstance(cid, str) or cid not in calls or cid in answers:
            continue  # unknown line, or a duplicate from overlapping files: first answer wins
        text, used, failure = _answer(rec)
        if failure is not None:
            failures.setdefault(cid, failure)
            continue
        g = Generation(text=text, usage=used)
        usage.add(g.usage)
        if calls[cid].schema is not None:
            try:
                g.parsed = parse_and_validate(text, calls[cid].schema)
            except ValueError as e:
                g.error = f"invalid output (batch, no re-ask): {e}"
        elif not text.strip():
            g.error = "empty model output"
        answers[cid] = g
    for rec in _iter_lines(errors):
        cid = rec.get("custom_id")
        if isinstance(cid, str) and cid in calls and cid not in answers:
            resp = rec.get("response") if isinstance(rec.get("response"), dict) else {}
            failures.setdefault(cid, f"batch: {_msg(rec.get('error') or resp.get('body'))}")
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
        msg = " ".join(msg.split())  # the line's text is untrusted: an error row stays one line
        for i in call.members:
            results[i] = StageError(f"{stage}: {msg}" if not msg.startswith(stage) else msg)
    info = {"stage": stage, "answered": len(answers), "failed": len(failures), "missing": missing,
            "usage": {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
                      "requests": usage.requests}, "flags": getattr(st, "flags", [])}
    return reqs, results, info


def _msg(err: Any) -> str:
    if isinstance(err, dict):
        inner = err.get("error") if isinstance(err.get("error"), dict) else err
        return " ".join(f"{inner.get('code') or ''} {inner.get('message') or ''}".split())[:200] or "unknown error"
    return str(err)[:200] if err else "unknown error"


class _OfflineBackend:
    """Enough of a backend for rebuilding calls from an export header; never generates."""

    supports_images = True

    def __init__(self, header: dict):
        self.provider, _, self.model = header["spec"].partition(":")
        self._identity = header["backend"]

    def identity(self) -> dict:
        return self._identity

    def generate(self, *a, **k):  # pragma: no cover - ingest never calls it
        raise RuntimeError("offline backend cannot generate")


def result_rows(stage: str, requests: list, results: list, backend_name: str, model: str | None = None
                ) -> dict[str, list[dict]]:
    """Records for ``stage`` and errors, as row dicts keyed by table name (records.SCHEMAS)."""
    table = {"describe": "descriptions", "associate": "associations", "caption": "captions"}[stage]
    rows: dict[str, list[dict]] = {table: [], "errors": []}
    for req, res in zip(requests, results):
        if isinstance(res, StageError):
            rows["errors"].append(to_row(ErrorRecord(stage, req.image_id, getattr(req, "word", None),
                                                     getattr(req, "level", None), res.message)))
        elif stage == "describe":
            rows[table].append(to_row(DescriptionRecord(req.image_id, res.description, res.description_source,
                                                        res.short_caption, res.model)))
        elif stage == "associate":
            for lv, words in sorted(res.items()):
                for rank, a in enumerate(words):
                    rows[table].append(to_row(AssociationRecord(req.image_id, req.word, lv, rank, a, backend_name)))
        else:
            valid, reason = caption_validity(res, req)
            rows[table].append(to_row(CaptionRecord(req.image_id, req.word, req.level, req.association, res,
                                                    valid, reason, backend_name, model)))
    return rows


def caption_validity(caption: str, req: CaptionRequest, max_words: int = 10) -> tuple[bool, str | None]:
    """The runner's rules: contains the association (any inflection), 1..max words, not the short caption."""
    from ..stages.model_stages import _TOKEN, word_forms

    toks = _TOKEN.findall(caption.lower())
    parts = _TOKEN.findall(req.association.lower())
    if not toks or len(caption.split()) > max_words:
        return False, f"{len(caption.split())} words (1..{max_words} allowed)"
    if " ".join(caption.lower().split()) == " ".join(req.caption.lower().split()):
        return False, "identical to the short caption"
    n = len(parts)
    heads = word_forms(parts[-1]) if parts else frozenset()
    if not any(toks[i:i + n - 1] == parts[:-1] and toks[i + n - 1] in heads for i in range(len(toks) - n + 1)):
        return False, f'does not contain "{req.association}"'
    return True, None


def write_tables(rows: dict[str, list[dict]], out_dir: str | Path) -> dict[str, Path]:
    """Overwrite ``<table>.parquet`` files (so re-ingesting is idempotent)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for table, data in rows.items():
        p = out / f"{table}.parquet"
        pq.write_table(pa.Table.from_pylist(data, schema=SCHEMAS[table]), p)
        paths[table] = p
    return paths


# ---- OpenAI Files + Batches API ----------------------------------------------------------
def submit_batch(requests_path: str | Path, client, completion_window: str = "24h") -> list[dict]:
    """Upload each part and create one batch per part; state saved to ``<stem>.batch.json``."""
    header, _, _ = read_meta(requests_path)
    state_path = sidecar(requests_path, "batch.json")
    state = json.loads(state_path.read_text()) if state_path.exists() else []
    done = {s["part"] for s in state}
    for name in header["parts"]:
        if name in done:
            continue  # resubmitting never duplicates a part
        part = Path(requests_path).with_name(name)
        with part.open("rb") as f:
            fobj = client.files.create(file=(name, f), purpose="batch")
        b = client.batches.create(input_file_id=fobj.id, endpoint="/v1/chat/completions",
                                  completion_window=completion_window,
                                  metadata={"visassoc_stage": header["stage"], "part": name})
        state.append({"part": name, "file_id": fobj.id, "batch_id": b.id, "status": b.status})
        state_path.write_text(json.dumps(state, indent=1))
    return state


def batch_status(requests_path: str | Path, client, wait: bool = False, poll_s: float = 30.0,
                 echo=print) -> list[dict]:
    """Refresh the saved batches' status (and poll until all are final with ``wait``)."""
    state_path = sidecar(requests_path, "batch.json")
    if not state_path.exists():
        raise ValueError(f"{state_path} not found: run `batch submit` first")
    state = json.loads(state_path.read_text())
    final = {"completed", "expired", "failed", "cancelled"}
    while True:
        for s in state:
            if s.get("status") in final and "output_file_id" in s:
                continue  # final and already recorded
            b = client.batches.retrieve(s["batch_id"])
            rc = b.request_counts
            s.update(status=b.status, output_file_id=b.output_file_id, error_file_id=b.error_file_id,
                     total=rc.total if rc else None, completed=rc.completed if rc else None,
                     failed=rc.failed if rc else None)
        state_path.write_text(json.dumps(state, indent=1))
        echo("  ".join(f"{s['part']}: {s['status']} {s.get('completed') or 0}/{s.get('total') or '?'}"
                       f"{' failed ' + str(s['failed']) if s.get('failed') else ''}" for s in state))
        if not wait or all(s["status"] in final for s in state):
            return state
        time.sleep(poll_s)


def download_batch(requests_path: str | Path, client) -> tuple[list[Path], list[Path]]:
    """Fetch output and error files of finished batches (an expired batch's completed lines too)."""
    state = json.loads(sidecar(requests_path, "batch.json").read_text())
    outs, errs = [], []
    for s in state:
        base = Path(requests_path).with_name(s["part"])
        for key, suffix, acc in (("output_file_id", "output", outs), ("error_file_id", "errors", errs)):
            fid = s.get(key)
            if not fid:
                continue
            dest = sidecar(base, f"{suffix}.jsonl")
            dest.write_bytes(client.files.content(fid).content)
            acc.append(dest)
    return outs, errs
