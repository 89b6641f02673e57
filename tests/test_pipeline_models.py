"""`visassoc run` with model backends over real HTTP to the loopback fake OpenAI server
(no real VLM/LLM can run here), with injected faults: every image and every
(image, word, level) must end as an output row or an explicit error row."""
from __future__ import annotations

import json
import re

import pyarrow.parquet as pq
import pytest
import yaml

import visassoc
from fake_openai_server import FakeOpenAI, Reply, image_urls, prompt_text, rate_limited, server_error, stall
from visassoc.config import RunConfig

from conftest import make_photo

N_IMAGES = 59


def responder(body: dict) -> str:
    rf = body.get("response_format") or {}
    props = set(((rf.get("json_schema") or {}).get("schema") or {}).get("properties", {}))
    text = prompt_text(body)
    if "description" in props or "describe" in text.lower() and "caption" not in props and "distance" not in text.lower():
        return json.dumps({"description": "A red ball lies on a wooden table next to a white cup in a bright kitchen.",
                           "short_caption": "A red ball on a wooden table."})
    m = re.search(r'association "([^"]+)"', text)
    if m:
        return json.dumps({"caption": f"The {m.group(1)} waits on the table"})
    words = re.findall(r"^- (\S+) \((?:noun|verb|adj)\)$", text, re.M)
    return json.dumps({w: {str(lv): [f"{w}{lv}{k}" for k in "abc"] for lv in range(1, 6)} for w in words})


@pytest.fixture
def uncaptioned(tmp_path):
    d = tmp_path / "photos"
    for i in range(N_IMAGES):
        make_photo(d / f"p{i:02d}.jpg", color=(i * 4 % 256, 255 - i * 3 % 256, 90), size=(40 + i % 7, 32))
    return d


def backend_config(tmp_path, server) -> str:
    p = tmp_path / "backends.yaml"
    p.write_text(yaml.safe_dump({"backends": {"openai:fake-vlm": {"base_url": server.base_url, "timeout": 1.0,
                                                                  "max_retries": 3, "concurrency": 4}}}))
    return str(p)


def test_model_backed_run_accounts_for_every_item_under_faults(uncaptioned, tmp_path, monkeypatch):
    monkeypatch.setenv("VISASSOC_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    with FakeOpenAI(responder=responder) as s:
        s.push(rate_limited("0.2"), server_error(), stall(2.5), Reply('{"description": "A tru'),
               Reply("Sure! ```json\n{\"description\": \"A ball.\", \"short_caption\": \"A red ball.\"}\n```"),
               Reply('{"wrong": 1}'), Reply(""))
        cfg = RunConfig(out=tmp_path / "run", images=uncaptioned, describe="openai:fake-vlm", associate="openai:fake-vlm",
                        caption="openai:fake-vlm", backend_config=backend_config(tmp_path, s), progress=False,
                        chunk_size=16, concurrency=4)
        res = visassoc.run(cfg)
        n_requests = len(s.chat_requests())
        assert s.max_inflight <= 4
        urls = [u for r in s.chat_requests() for u in image_urls(r["body"])]
        assert urls and all(u.startswith("data:image/jpeg;base64,") for u in urls)

        t = {n: pq.read_table(tmp_path / "run" / f"{n}.parquet").to_pylist()
             for n in ("images", "descriptions", "salient", "associations", "captions", "errors")}
        assert len(t["images"]) == N_IMAGES and all(r["status"] == "ok" for r in t["images"])
        err = {(e["stage"], e["image_id"], e["word"], e["level"]) for e in t["errors"]}
        described = {r["image_id"] for r in t["descriptions"]}
        assert all(r["description_source"] == "vlm" for r in t["descriptions"])
        for r in t["images"]:  # describe: a description or an error row, never both, never neither
            assert (r["image_id"] in described) != (("describe", r["image_id"], None, None) in err)
        assert len(described) >= N_IMAGES - 3
        words = {(r["image_id"], r["word"]) for r in t["salient"]}
        laddered = {(r["image_id"], r["word"]) for r in t["associations"]}
        for iw in words:
            assert iw in laddered or ("associate", *iw, None) in err
        captioned = {(r["image_id"], r["word"], r["level"]) for r in t["captions"]}
        for (i, w) in laddered:
            for lv in range(1, 6):
                assert ((i, w, lv) in captioned) != (("caption", i, w, lv) in err)
        valid = [r for r in t["captions"] if r["valid"]]
        assert len(valid) >= 0.95 * len(t["captions"]) and t["captions"][0]["backend"] == "openai:fake-vlm"
        manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
        assert manifest["backends"]["associate"]["backend"]["model"] == "fake-vlm"
        assert res.total_new > 0

        # the same command again: nothing to do, not one request
        again = visassoc.run(cfg)
        assert again.total_new == 0 and len(s.chat_requests()) == n_requests
        # a fresh output dir with the same config: every answer comes from the call cache
        visassoc.run(cfg.model_copy(update={"out": tmp_path / "run2"}))
        assert len(s.chat_requests()) == n_requests
    assert pq.read_table(tmp_path / "run2" / "captions.parquet").to_pylist() == t["captions"]


def test_dead_server_fails_fast_with_one_line(uncaptioned, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from visassoc.cli import app

    monkeypatch.setenv("VISASSOC_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # discard port: nothing listens
    r = CliRunner().invoke(app, ["run", "--images", str(uncaptioned), "--vlm", "openai:m", "--llm", "openai:m",
                                 "--out", str(tmp_path / "dead"), "-q"])
    assert r.exit_code == 1
    assert "error:" in r.output and len(r.output.strip().splitlines()) == 1


def test_local_tiny_vlm_runs_the_whole_pipeline(tmp_path, monkeypatch):
    """`--vlm transformers:DIR` end to end on a tiny randomly initialised Llava (real architecture,
    meaningless output): its describe answers are not valid JSON, so every image must end as an
    explicit describe error row, and the run must finish cleanly."""
    from visassoc.backends.tiny_models import build_tiny_vlm

    monkeypatch.setenv("VISASSOC_CACHE", str(tmp_path / "cache"))
    vlm = build_tiny_vlm(tmp_path / "tiny-vlm")
    photos = tmp_path / "photos"
    for i in range(2):
        make_photo(photos / f"t{i}.png", color=(200, 40 * i, 90))
    yaml_cfg = tmp_path / "b.yaml"
    yaml_cfg.write_text(yaml.safe_dump({"backends": {f"transformers:{vlm}": {"max_batch": 2}},
                                        "vlm": f"transformers:{vlm}"}))
    out = tmp_path / "run"
    res = visassoc.run(RunConfig(out=out, images=photos, backend_config=yaml_cfg, progress=False))
    t = {n: pq.read_table(out / f"{n}.parquet").to_pylist() for n in ("images", "descriptions", "errors")}
    described = {r["image_id"] for r in t["descriptions"]}
    errored = {e["image_id"] for e in t["errors"] if e["stage"] == "describe"}
    assert described | errored == {"t0", "t1"} and not described & errored
    assert all("\n" not in e["message"] for e in t["errors"])
    m = json.loads((out / "manifest.json").read_text())
    assert m["config"]["describe"] == f"transformers:{vlm}" and m["backends"]["describe"]["backend"]["provider"] == "transformers"
    assert res.new_items["describe"] == 2
