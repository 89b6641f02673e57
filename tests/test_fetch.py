"""`visassoc fetch` against a loopback server: every URL line ends as an image or a status row."""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from loopback_images import Loopback
from visassoc.cli import app
from visassoc.sources.fetch import FetchOptions, fetch_manifest
from visassoc.sources import load_webdataset
from visassoc.datafiles import BlobDir

FAST = FetchOptions(timeout=0.5, retries=1, backoff=0.05, concurrency=4)


@pytest.fixture()
def server():
    with Loopback(hang_s=2.0) as s:
        yield s


def write_list(path: Path, base: str) -> Path:
    lines = [
        json.dumps({"id": "dog", "url": f"{base}/img/dog.jpg", "captions": ["A dog on grass."]}),
        json.dumps({"url": f"{base}/img/sky.png"}),  # id from the URL
        json.dumps({"id": "gone", "url": f"{base}/img/gone.gif"}),  # 404
        json.dumps({"id": "slow", "url": f"{base}/hang"}),  # times out
        json.dumps({"id": "page", "url": f"{base}/page.html"}),  # not an image
        json.dumps({"id": "moved", "url": f"{base}/moved"}),  # redirect -> image
        json.dumps({"id": "flaky", "url": f"{base}/flaky.jpg"}),  # 503 then 200
        "{not json",
        json.dumps({"id": "nourl"}),
        json.dumps({"id": "ftp", "url": "ftp://example.org/a.jpg"}),
        json.dumps({"id": "dog", "url": f"{base}/img/dog2.jpg"}),  # repeated id
    ]
    path.write_text("\n".join(lines) + "\n\n")
    return path


def test_fetch_folder_every_line_has_a_status(tmp_path, server):
    out = tmp_path / "got"
    rows = fetch_manifest(write_list(tmp_path / "urls.jsonl", server.url), out, "folder", FAST, progress=False)
    by = {r.id: r for r in rows}
    assert len(rows) == 11 and [r.line for r in rows] == list(range(1, 12))
    assert by["dog"].status == "ok" and (out / by["dog"].path).is_file() and by["dog"].path == "images/dog.jpg"
    assert by["sky"].status == "ok" and by["sky"].path.endswith(".png") and (by["sky"].width, by["sky"].height) == (300, 200)
    assert by["gone"].error == "HTTP 404 Not Found" and by["gone"].http_status == 404
    assert by["slow"].error.startswith("timeout")
    assert by["page"].error.startswith("not an image")
    assert by["moved"].status == "ok" and by["moved"].final_url.endswith("/img/target.jpg")
    assert by["flaky"].status == "ok" and server.hits["/flaky.jpg"] == 2
    assert by["line000008"].error.startswith("bad line 8: ")
    assert "no 'url'" in by["nourl"].error and "not an http(s) URL" in by["ftp"].error
    assert "repeats" in by["dog#line11"].error
    status = [json.loads(x) for x in (out / "status.jsonl").read_text().splitlines()]
    assert len(status) == 11 and sum(s["status"] == "ok" for s in status) == 4
    # a re-run keeps what it has and retries only the failures
    before = dict(server.hits)
    fetch_manifest(tmp_path / "urls.jsonl", out, "folder", FAST, progress=False)
    assert server.hits["/img/dog.jpg"] == before["/img/dog.jpg"] and server.hits["/img/gone.gif"] > before["/img/gone.gif"]


def test_fetched_folder_runs_with_error_rows(tmp_path, server):
    out = tmp_path / "got"
    fetch_manifest(write_list(tmp_path / "urls.jsonl", server.url), out, "folder", FAST, progress=False)
    run = tmp_path / "run"
    res = CliRunner().invoke(app, ["run", "--manifest", str(out / "manifest.jsonl"), "--out", str(run), "-q"])
    assert res.exit_code == 0, res.output
    images = {r["image_id"]: r for r in pq.read_table(run / "images.parquet").to_pylist()}
    assert len(images) == 11  # every URL line is a row
    assert images["gone"]["status"] == "error" and images["gone"]["error"] == "HTTP 404 Not Found"
    assert images["dog"]["status"] == "ok" and images["dog"]["provenance"] == f"{server.url}/img/dog.jpg"


def test_fetch_webdataset_roundtrip(tmp_path, server):
    out = tmp_path / "wds"
    rows = fetch_manifest(write_list(tmp_path / "urls.jsonl", server.url), out, "webdataset", FAST, progress=False)
    shards = sorted((out / "shards").glob("*.tar"))
    assert shards and not (out / "images").exists()
    items = load_webdataset(str(shards[0]), BlobDir(tmp_path / "blobs"))
    assert {it.image_id for it in items} == {r.id for r in rows if r.status == "ok"}
    assert next(it for it in items if it.image_id == "dog").captions == ["A dog on grass."]


def test_fetch_multim_poem_layout(tmp_path, server):
    src = tmp_path / "multim_poem.json"
    src.write_text(json.dumps([
        {"id": 0, "poem": "what is lovely never dies", "image_url": f"{server.url}/img/1002051357.jpg"},
        {"id": 1, "poem": "sods on the dugout", "image_url": f"{server.url}/img/missing.gif"},
        {"id": 2, "poem": "no picture"},
    ]))
    out = tmp_path / "mmp"
    res = CliRunner().invoke(app, ["fetch", "--benchmark", "multim-poem", "--json", str(src), "--out", str(out), "-q",
                                   "--timeout", "1", "--retries", "0"])
    assert res.exit_code == 0, res.output
    assert "1/3 images fetched, 2 errors" in res.output
    assert (out / "images" / "0.jpg").is_file() and not (out / "images" / "1.jpg").exists()
    assert json.loads((out / "multim_poem.json").read_text()) == json.loads(src.read_text())
    status = [json.loads(x) for x in (out / "status.jsonl").read_text().splitlines()]
    assert [s["error"] for s in status] == [None, "HTTP 404 Not Found", "record 3: no http(s) image_url"]


def test_fetch_bad_usage_is_one_line(tmp_path):
    r = CliRunner().invoke(app, ["fetch", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "choose one" in r.output
    r = CliRunner().invoke(app, ["fetch", "--manifest", str(tmp_path / "none.jsonl"), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "URL list not found" in r.output and not (tmp_path / "o").exists()


def test_fetch_real_multim_poem_json_rewritten_to_loopback(tmp_path, server):
    """The shipped MultiM-Poem JSON (first records), its Flickr URLs pointed at the loopback server;
    the eval loader then finds the images where it looks."""
    from conftest import SHARED

    src = next((p for p in (SHARED / "multim-poem" / "multim_poem.json",
                            Path(__file__).resolve().parents[2].parent / "shared" / "data" / "multim-poem" / "multim_poem.json")
                if p.is_file()), None)
    if src is None:
        pytest.skip("../shared/data/multim-poem not present")
    recs = json.loads(src.read_text())[:4]
    for r in recs:
        r["image_url"] = server.url + "/img/" + r["image_url"].split("://", 1)[1].split("/", 1)[1]
    recs[3]["image_url"] = server.url + "/gone/" + "x.jpg"  # a dead link, as many Flickr ones are
    j = tmp_path / "multim_poem.json"
    j.write_text(json.dumps(recs))
    out = tmp_path / "mmp"
    from visassoc.sources.fetch import fetch_multim_poem

    rows = fetch_multim_poem(j, out, FAST, progress=False)
    assert [r.status for r in rows] == ["ok", "ok", "ok", "error"] and rows[3].error == "HTTP 404 Not Found"
    from visassoc.evaluate.benchmarks import load_multim_poem

    bench = load_multim_poem(out / "multim_poem.json", out / "images")
    assert len(bench.texts) == 4 and [len(p) for p in bench.positives] == [1, 1, 1, 0]


def test_run_manifest_download(tmp_path, server):
    from conftest import make_photo

    make_photo(tmp_path / "local.jpg")
    m = tmp_path / "m.jsonl"
    m.write_text("\n".join(json.dumps(r) for r in [
        {"id": "dog", "image": f"{server.url}/img/dog.jpg", "captions": ["A dog runs on the grass."]},
        {"id": "gone", "image": f"{server.url}/missing/gone.jpg", "captions": ["A cat."]},
        {"id": "local", "image": "local.jpg", "captions": ["A red ball on a table."]}]) + "\n")
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["run", "--manifest", str(m), "--download", "--out", str(out), "-q"])
    assert res.exit_code == 0, res.output
    images = {r["image_id"]: r for r in pq.read_table(out / "images.parquet").to_pylist()}
    assert images["dog"]["status"] == "ok" and images["dog"]["provenance"] == f"{server.url}/img/dog.jpg"
    assert images["gone"]["error"] == "HTTP 404 Not Found" and images["local"]["status"] == "ok"
    assert Path(images["dog"]["path"]).is_relative_to(out / "_work" / "downloads")
    r = CliRunner().invoke(app, ["run", "--images", str(tmp_path), "--download", "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "--download goes with --manifest" in r.output
