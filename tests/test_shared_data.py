"""Integration on real data from ../shared/data (COCO 2017 photos with their human captions and
object annotations): each test skips, saying why, where that folder is absent (a fresh clone);
point $VISASSOC_SHARED_DATA at it when the project is checked out elsewhere."""
from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from visassoc.cli import app

from conftest import SHARED

COCO = SHARED / "coco-mini"
CAPTIONS = COCO / "annotations" / "captions_val2017.json"
IMAGES = COCO / "images" / "val2017"


def need(*paths):
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        pytest.skip(f"shared data not found ({', '.join(missing)}): ../shared integration test skipped")


def test_coco_mini_run_end_to_end_then_report_with_foil(tmp_path):
    """`visassoc run --coco ... --limit 5` on real photos, then the report: every image ends with
    captions or error rows, and FOIL negatives come from the real instances file."""
    need(CAPTIONS, IMAGES, COCO / "annotations" / "instances_val2017.json")
    out = tmp_path / "coco"
    r = CliRunner().invoke(app, ["run", "--coco", str(CAPTIONS), "--images", str(IMAGES), "--limit", "5",
                                 "--out", str(out), "-q"])
    assert r.exit_code == 0, r.output
    t = {n: pq.read_table(out / f"{n}.parquet").to_pylist()
         for n in ("images", "salient", "associations", "captions", "errors")}
    assert len(t["images"]) == 5 and all(i["status"] == "ok" for i in t["images"])
    coco_ids = {im["id"] for im in json.loads(CAPTIONS.read_text())["images"]}
    assert all(int(i["image_id"].lstrip("0") or 0) in coco_ids for i in t["images"]), [i["image_id"] for i in t["images"]]
    words = {(s["image_id"], s["word"]) for s in t["salient"]}
    assert {s["image_id"] for s in t["salient"]} == {i["image_id"] for i in t["images"]}
    have = {(c["image_id"], c["word"], c["level"]) for c in t["captions"]} | {
        (e["image_id"], e["word"], e["level"]) for e in t["errors"]} | {
        (e["image_id"], e["word"], lv) for e in t["errors"] if e["stage"] == "associate" for lv in range(1, 6)}
    assert {(i, w, lv) for i, w in words for lv in range(1, 6)} <= have
    assert sum(c["valid"] for c in t["captions"]) >= 0.8 * len(t["captions"]) > 0

    from visassoc.report import build_report

    m = build_report(out, gallery=2, n_boot=50)
    assert m["counts"]["images_ok"] == 5
    foil = m["grounding"]["foil"]
    assert foil["instances"].endswith("instances_val2017.json") and foil["n"] > 0, foil
    for f in foil["examples"]:
        assert f["caption"] != f["original"] and f["replaced"].lower() in f["original"].lower()
