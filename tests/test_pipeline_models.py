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

from conftest import dead_port, make_photo

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


def _width(body: dict) -> int | None:
    import base64
    import io

    from PIL import Image

    urls = image_urls(body)
    return Image.open(io.BytesIO(base64.b64decode(urls[0].split(",", 1)[1]))).width if urls else None


def faulty_responder(body: dict):
    """``responder``, with one fault per stage that no retry or re-ask can mend (HTTP 400, not
    retried): describing the 41 px wide photo; associating for the photo described with a
    "garden" (the 42 px one); captioning the 43 px photo at distance 4."""
    text, width = prompt_text(body), _width(body)
    if width == 41 and "short_caption" in json.dumps(body.get("response_format") or {}):
        return Reply(status=400, error="injected: image rejected")
    if "garden" in text and 'association "' not in text:
        return Reply(status=400, error="injected: context too long")
    m = re.search(r'association "[a-z]+(\d)[abc]"', text)
    if m and width == 43 and m.group(1) == "4":
        return Reply(status=400, error="injected: caption refused")
    answer = responder(body)
    if width == 42 and "short_caption" in answer:
        answer = answer.replace("bright kitchen", "sunny garden")
    return answer


def test_unrecoverable_fault_in_each_stage_ends_as_error_rows(tmp_path, monkeypatch):
    """Every model stage meets an item it cannot do: exactly those items end as one-line error
    rows naming the fault, nothing downstream of them is attempted, every other item is a row."""
    monkeypatch.setenv("VISASSOC_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    photos = tmp_path / "photos"
    for w in range(40, 46):
        make_photo(photos / f"w{w}.jpg", color=(w * 5 % 256, 120, 90), size=(w, 32))
    with FakeOpenAI(responder=faulty_responder) as s:
        visassoc.run(RunConfig(out=tmp_path / "run", images=photos, describe="openai:fake-vlm",
                               associate="openai:fake-vlm", caption="openai:fake-vlm",
                               backend_config=backend_config(tmp_path, s), progress=False, chunk_size=4))
    t = {n: pq.read_table(tmp_path / "run" / f"{n}.parquet").to_pylist()
         for n in ("images", "descriptions", "salient", "associations", "captions", "errors")}
    assert all("\n" not in e["message"] for e in t["errors"])
    by_stage = {st: [e for e in t["errors"] if e["stage"] == st] for st in ("describe", "associate", "caption")}
    # describe: w41 only, and nothing after it
    assert [(e["image_id"], e["word"], e["level"]) for e in by_stage["describe"]] == [("w41", None, None)]
    assert "HTTP 400" in by_stage["describe"][0]["message"] and "injected: image rejected" in by_stage["describe"][0][
        "message"]
    assert "w41" not in {r["image_id"] for r in t["descriptions"] + t["salient"] + t["captions"]}
    # associate: every salient word of w42, and no ladder or caption for it
    w42_words = {r["word"] for r in t["salient"] if r["image_id"] == "w42"}
    assert w42_words and {(e["image_id"], e["word"]) for e in by_stage["associate"]} == {
        ("w42", w) for w in w42_words}
    assert all("injected: context too long" in e["message"] and e["level"] is None for e in by_stage["associate"])
    assert "w42" not in {r["image_id"] for r in t["associations"] + t["captions"]}
    # caption: w43 at distance 4, for each of its words; its other levels are captioned
    w43_words = {r["word"] for r in t["associations"] if r["image_id"] == "w43"}
    assert w43_words and {(e["image_id"], e["word"], e["level"]) for e in by_stage["caption"]} == {
        ("w43", w, 4) for w in w43_words}
    assert all("injected: caption refused" in e["message"] for e in by_stage["caption"])
    assert {(r["word"], r["level"]) for r in t["captions"] if r["image_id"] == "w43"} == {
        (w, lv) for w in w43_words for lv in (1, 2, 3, 5)}
    # everything else: rows, no errors
    ok = {"w40", "w44", "w45"}
    assert not ok & {e["image_id"] for e in t["errors"]}
    for i in ok:
        words = {r["word"] for r in t["salient"] if r["image_id"] == i}
        assert words and {(r["word"], r["level"]) for r in t["captions"] if r["image_id"] == i} == {
            (w, lv) for w in words for lv in range(1, 6)}


def test_dead_server_fails_fast_with_one_line(uncaptioned, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from visassoc.cli import app

    monkeypatch.setenv("VISASSOC_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{dead_port()}/v1")  # refused
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
