"""Batch API files: the OpenAI Batch API and ``vllm run-batch`` (same JSONL line format).

``write_requests`` writes already built calls as request lines (<= 50,000 lines and ~190 MB per
file, split deterministically) plus a ``.meta.jsonl`` sidecar holding a header and the requests
behind each ``custom_id``; ``read_answers`` turns output/error lines back into one Generation or
one failure message per call, whatever the lines hold (a malformed line never raises). What the
requests mean and how answers become rows is the stages' business (``engine.batch``).
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, Iterable

from .base import Call, Generation, Usage
from .jsonparse import parse_and_validate

MAX_LINES = 50_000
MAX_BYTES = 190_000_000  # OpenAI accepts 200 MB per batch input file


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


def write_requests(calls: list[Call], backend, out_path: str | Path, header: dict, requests: list[dict],
                   max_lines: int = MAX_LINES, max_bytes: int = MAX_BYTES) -> list[Path]:
    """Write Batch API request files for built ``calls``; returns the part paths. A call whose
    body cannot be built (an image that cannot be encoded) is kept in the sidecar with its
    error, so it ingests as an error row."""
    if not callable(getattr(backend, "build_body", None)):
        raise ValueError(f"{backend.provider}:{backend.model} has no OpenAI request format; batch export "
                         "needs an openai/vllm/ollama backend spec")
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
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
    header = {**header, "parts": [p.name for p in paths], "n_requests": len(requests),
              "api_key_env": getattr(backend, "api_key_env", None)}
    with sidecar(out, "meta.jsonl").open("w", encoding="utf-8") as f:
        f.write(json.dumps({"header": header}) + "\n")
        for r in requests:
            f.write(json.dumps({"request": r}, ensure_ascii=False) + "\n")
        for m in meta_calls:
            f.write(json.dumps({"call": m}, ensure_ascii=False) + "\n")
    return paths


def read_meta(requests_path: str | Path) -> tuple[dict, list[dict], list[dict]]:
    """(header, request dicts, call records) of an export."""
    meta = sidecar(requests_path, "meta.jsonl")
    if not meta.exists():
        raise ValueError(f"{meta} not found: pass the --out path used with `batch export`")
    header, reqs, calls = {}, [], []
    with meta.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                raise ValueError(f"{meta.name}:{n} is not JSON (the sidecar was edited or truncated)") from None
            if "header" in rec:
                header = rec["header"]
            elif "request" in rec:
                reqs.append(rec["request"])
            else:
                calls.append(rec["call"])
    return header, reqs, calls


def iter_lines(paths: Iterable[str | Path]):
    """JSON objects of JSONL files; a line that is not a JSON object is skipped with a warning."""
    for p in paths:
        with open(p, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    try:
                        rec = json.loads(line)
                    except json.JSONDecodeError:
                        rec = None
                    if isinstance(rec, dict):
                        yield rec
                    else:
                        print(f"warning: {Path(p).name}:{n} is not a JSON object; skipped", file=sys.stderr)


def _dict(x: Any) -> dict:
    return x if isinstance(x, dict) else {}


def answer_of(rec: dict) -> tuple[str | None, Usage, str | None]:
    """(text, usage, failure) of one output line; exactly one of text/failure is set."""
    resp = _dict(rec.get("response"))
    body = _dict(resp.get("body"))
    if resp.get("status_code") != 200 or rec.get("error"):
        err = rec.get("error") or body.get("error") or resp or rec
        return None, Usage(), f"batch: HTTP {resp.get('status_code')}: {_msg(err)}"
    try:
        text = body["choices"][0]["message"].get("content") or ""
        if not isinstance(text, str):
            raise TypeError
    except (KeyError, IndexError, TypeError, AttributeError):
        return None, Usage(), "batch: response body has no choices[0].message.content"
    u = _dict(body.get("usage"))
    num = lambda v: v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else 0  # noqa: E731
    return text, Usage(num(u.get("prompt_tokens")), num(u.get("completion_tokens")), 1), None


def read_answers(calls: dict[str, Call], outputs: Iterable[str | Path], errors: Iterable[str | Path] = ()
                 ) -> tuple[dict[str, Generation], dict[str, str], Usage]:
    """(answers, failures, usage) by ``custom_id``; unknown ids and duplicates (first answer wins) are
    ignored. An answer to a call with a schema is parsed and validated (no re-ask in a batch)."""
    answers: dict[str, Generation] = {}
    failures: dict[str, str] = {}
    usage = Usage()
    for rec in iter_lines(outputs):
        cid = rec.get("custom_id")
        if not isinstance(cid, str) or cid not in calls or cid in answers:
            continue
        text, u, failure = answer_of(rec)
        if failure:
            failures.setdefault(cid, failure)
            continue
        g = Generation(text=text, usage=u)
        usage.add(u)
        if calls[cid].schema is not None:
            try:
                g.parsed = parse_and_validate(text, calls[cid].schema)
            except ValueError as e:
                g.error = f"invalid output (batch, no re-ask): {e}"
        elif not text.strip():
            g.error = "empty model output"
        answers[cid] = g
    for rec in iter_lines(errors):
        cid = rec.get("custom_id")
        if isinstance(cid, str) and cid in calls and cid not in answers:
            failures.setdefault(cid, f"batch: {_msg(rec.get('error') or _dict(rec.get('response')).get('body'))}")
    return answers, failures, usage


def _msg(err: Any) -> str:
    """One line (at most ~200 characters) out of an error object or text."""
    if isinstance(err, dict):
        inner = err.get("error") if isinstance(err.get("error"), dict) else err
        text = f"{inner.get('code') or ''} {inner.get('message') or ''}"
    else:
        text = str(err) if err else ""
    return " ".join(text.split())[:200] or "unknown error"


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
