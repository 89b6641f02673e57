"""`visassoc export` to WebDataset / HF layouts, and `train --data` reading them back."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from visassoc.cli import app
from visassoc.train.data import load_runs
from visassoc.train.synthetic import make_shapes_run

torch.set_num_threads(1)


def _triples(ex):
    """(image content hash, caption, level) per example: what training sees."""
    h = [hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in ex.image_paths]
    return sorted((h[i], ex.texts[t], int(lv)) for i, t, lv in zip(ex.ex_image, ex.ex_text, ex.ex_level))


@pytest.fixture()
def shapes(tmp_path, monkeypatch):
    monkeypatch.setenv("VISASSOC_CACHE", str(tmp_path / "cache"))
    return make_shapes_run(tmp_path / "run", 6, seed=3)


@pytest.mark.parametrize("fmt", ["webdataset", "hf"])
def test_export_roundtrip_to_training_examples(shapes, tmp_path, fmt):
    out = tmp_path / f"ex-{fmt}"
    res = CliRunner().invoke(app, ["export", str(shapes), "--format", fmt, "--out", str(out)])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "export.json").read_text())
    assert summary["exported"] == 6 and summary["left_out"] == {}
    if fmt == "webdataset":
        assert sorted(p.name for p in (out / "shards").iterdir()) == ["000000.tar"]
    else:
        info = json.loads((out / "dataset_info.json").read_text())
        assert info["features"]["image"] == {"_type": "Image"}
        assert json.loads((out / "state.json").read_text())["_data_files"] == [{"filename": "data-00000-of-00001.arrow"}]
    assert _triples(load_runs([out])) == _triples(load_runs([shapes]))


def test_train_accepts_an_export(shapes, tmp_path):
    out = tmp_path / "ex"
    assert CliRunner().invoke(app, ["export", str(shapes), "--format", "hf", "--out", str(out)]).exit_code == 0
    res = CliRunner().invoke(app, ["train", "--data", str(out), "--model", "tiny-random-clip", "--out",
                                   str(tmp_path / "ck"), "--max-steps", "2", "--batch-size", "10",
                                   "--level-tokens", "1", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "ck/manifest.json").read_text())["data"]["images"] == 6


def test_export_bad_input(shapes, tmp_path):
    run = CliRunner().invoke
    r = run(app, ["export", str(tmp_path / "nowhere"), "--format", "hf", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "no images.parquet" in r.output and not (tmp_path / "o").exists()
    r = run(app, ["export", str(shapes), "--format", "zip", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "--format must be" in r.output
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    r = run(app, ["export", str(shapes), "--format", "webdataset", "--out", str(tmp_path / "full")])
    assert r.exit_code == 2 and "nothing is overwritten" in r.output
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
