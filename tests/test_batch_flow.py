"""Batch export -> (vllm run-batch stand-in) -> ingest -> `visassoc run --cache-only`.

No model server can run here: the batch output file is written by the loopback fake's own
responder, as `vllm run-batch -o` would write it. The run then makes no HTTP call at all
(the backend points at a dead port) and every image ends as a row or an error row."""
from __future__ import annotations

import json

import pyarrow.parquet as pq
import yaml
from typer.testing import CliRunner

from conftest import dead_port, make_photo
from test_pipeline_models import responder
from visassoc.cli import app


def fake_run_batch(requests_path, out_path, drop: int = 1) -> int:
    lines = [json.loads(x) for x in requests_path.read_text().splitlines() if x.strip()]
    with out_path.open("w") as f:
        for i, line in enumerate(lines[drop:]):
            content = responder(line["body"])
            f.write(json.dumps({"id": f"r{i}", "custom_id": line["custom_id"], "error": None, "response": {
                "status_code": 200, "request_id": f"q{i}", "body": {
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                 "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}}}) + "\n")
    return len(lines)


def test_batch_describe_round_trip_through_the_call_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VISASSOC_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    photos = tmp_path / "photos"
    for i in range(6):
        make_photo(photos / f"u{i}.jpg", color=(30 * i, 120, 200 - 20 * i))
    cfg = tmp_path / "backends.yaml"
    cfg.write_text(yaml.safe_dump({"backends": {"openai:vlm": {"base_url": f"http://127.0.0.1:{dead_port()}/v1",
                                                               "timeout": 1.0, "max_retries": 0}}}))
    run_dir, req = tmp_path / "run", tmp_path / "batch" / "describe.jsonl"
    cli = CliRunner()
    r = cli.invoke(app, ["batch", "export", "--stage", "describe", "--run", str(run_dir), "--images", str(photos),
                         "--vlm", "openai:vlm", "--config", str(cfg), "--out", str(req)])
    assert r.exit_code == 0, r.output
    assert "6 pending describe requests" in r.output
    lines = [json.loads(x) for x in req.read_text().splitlines()]
    assert len(lines) == 6 and len({x["custom_id"] for x in lines}) == 6
    assert all(x["url"] == "/v1/chat/completions" and x["method"] == "POST" and x["body"]["model"] == "vlm" for x in lines)

    out = tmp_path / "batch" / "out.jsonl"
    assert fake_run_batch(req, out, drop=1) == 6  # one line lost, as in an expired batch
    r = cli.invoke(app, ["batch", "ingest", "--requests", str(req), "--output", str(out)])
    assert r.exit_code == 0, r.output
    assert "5 answers stored (1 calls unanswered)" in r.output
    again = cli.invoke(app, ["batch", "ingest", "--requests", str(req), "--output", str(out)])
    assert "5 answers stored" in again.output  # idempotent

    r = cli.invoke(app, ["run", "--images", str(photos), "--describe", "openai:vlm", "--backend-config", str(cfg),
                         "--out", str(run_dir), "--cache-only", "-q"])
    assert r.exit_code == 0, r.output
    images = pq.read_table(run_dir / "images.parquet").to_pylist()
    descs = pq.read_table(run_dir / "descriptions.parquet").to_pylist()
    errors = pq.read_table(run_dir / "errors.parquet").to_pylist()
    assert len(images) == 6 and len(descs) == 5
    assert [e["stage"] for e in errors if e["stage"] == "describe"] == ["describe"]
    assert "cache-only" in next(e["message"] for e in errors if e["stage"] == "describe")
    caps = pq.read_table(run_dir / "captions.parquet").to_pylist()
    assert {c["image_id"] for c in caps} == {d["image_id"] for d in descs}
    assert all(d["short_caption"] for d in descs)
    # nothing left to export for describe once the run has recorded every image
    r = cli.invoke(app, ["batch", "export", "--stage", "describe", "--run", str(run_dir), "--images", str(photos),
                         "--vlm", "openai:vlm", "--config", str(cfg), "--out", str(req)])
    assert "0 pending" in r.output or "nothing to export" in r.output


def test_batch_ingest_tables_equal_the_runs_tables(tmp_path, monkeypatch, photo_folder):
    """`batch ingest --out` builds its rows with the stage's own row builder (clean_ladder for
    ladders), so its table equals what `visassoc run` writes from the same answers."""
    import re

    from fake_openai_server import prompt_text

    monkeypatch.setenv("VISASSOC_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    photos, caps = photo_folder
    cfg = tmp_path / "backends.yaml"
    cfg.write_text(yaml.safe_dump({"backends": {"openai:llm": {"base_url": "http://127.0.0.1:9/v1", "timeout": 1.0,
                                                               "max_retries": 0}}}))
    run_dir, req, out = tmp_path / "run", tmp_path / "b" / "assoc.jsonl", tmp_path / "b" / "out.jsonl"
    cli = CliRunner()
    r = cli.invoke(app, ["batch", "export", "--stage", "associate", "--run", str(run_dir), "--images", str(photos),
                         "--captions", str(caps), "--llm", "openai:llm", "--config", str(cfg), "--out", str(req)])
    assert r.exit_code == 0, r.output

    def messy(body):  # the word itself and a cross-level duplicate: clean_ladder drops them
        words = re.findall(r"^- (\S+) \((?:noun|verb|adj)\)$", prompt_text(body), re.M)
        return json.dumps({w: {"1": [w, f"{w}s", f"{w}a1", f"{w}b1"], "2": [f"{w}a1", f"{w}a2", f"{w}b2", f"{w}c2"],
                               **{str(lv): [f"{w}{k}{lv}" for k in "xyz"] for lv in (3, 4, 5)}} for w in words})

    lines = [json.loads(x) for x in req.read_text().splitlines()]
    with out.open("w") as f:
        for i, line in enumerate(lines):
            f.write(json.dumps({"custom_id": line["custom_id"], "response": {"status_code": 200, "body": {
                "choices": [{"message": {"content": messy(line["body"])}}], "usage": {}}}}) + "\n")
    r = cli.invoke(app, ["batch", "ingest", "--requests", str(req), "--output", str(out), "--out", str(tmp_path / "t")])
    assert r.exit_code == 0, r.output
    r = cli.invoke(app, ["run", "--images", str(photos), "--captions", str(caps), "--associate", "openai:llm",
                         "--backend-config", str(cfg), "--out", str(run_dir), "--cache-only", "-q"])
    assert r.exit_code == 0, r.output
    cols = ["image_id", "word", "level", "rank", "association", "backend"]
    key = lambda t: sorted(tuple(r[c] for c in cols) for r in t)  # noqa: E731
    ingested = pq.read_table(tmp_path / "t" / "associations.parquet").to_pylist()
    ran = pq.read_table(run_dir / "associations.parquet").to_pylist()
    assert ingested and key(ingested) == key(ran)
    words = {r["word"] for r in ran}
    assert not [r for r in ran if r["association"] == r["word"]]  # clean_ladder applied: never the word itself
    assert all(sum(1 for r in ran if r["word"] == w and r["level"] == 2 and r["association"] == f"{w}a1") == 0
               for w in words)  # a duplicate of level 1 is not repeated at level 2
