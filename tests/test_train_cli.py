"""The typer commands as `visassoc train|eval|search` will run them (tiny random model: no weights here)."""
import json

import pytest
import torch
import typer
from typer.testing import CliRunner

from visassoc.cli.encoders import eval_command, search_command, train_command
from visassoc.train.synthetic import make_haivmet, make_shapes_run

torch.set_num_threads(1)


@pytest.fixture()
def app():
    a = typer.Typer()
    a.command("train")(train_command)
    a.command("eval")(eval_command)
    a.command("search")(search_command)
    return a


def test_train_eval_search_end_to_end(app, tmp_path, monkeypatch):
    monkeypatch.setenv("VISASSOC_CACHE", str(tmp_path / "cache"))
    r1, r2 = make_shapes_run(tmp_path / "r1", 10, seed=1), make_shapes_run(tmp_path / "r2", 10, seed=2)
    run = CliRunner().invoke
    res = run(app, ["train", "--data", str(r1), "--data", str(r2), "--model", "tiny-random-clip", "--out",
                    str(tmp_path / "ck"), "--max-steps", "3", "--batch-size", "8", "--level-tokens", "2",
                    "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert "tiny random model" in res.output and "trained 3/3 steps" in res.output
    manifest = json.loads((tmp_path / "ck/manifest.json").read_text())
    assert manifest["data"]["images"] == 20 and manifest["encoder"]["tokens_per_level"] == 2
    root = make_haivmet(tmp_path / "hv", n_metaphors=10, per=2)
    res = run(app, ["eval", "--benchmark", "haivmet", "--root", str(root), "--ckpt", str(tmp_path / "ck"),
                    "--out", str(tmp_path / "ev"), "--n-boot", "10"])
    assert res.exit_code == 0, res.output
    assert "| level_3 |" in res.output and (tmp_path / "ev/scores-level_3.npy").exists()
    res = run(app, ["search", "--images", str(root), "--query", "an angry mountain", "--ckpt", str(tmp_path / "ck"),
                    "--level", "4", "--top", "3", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert len(out["hits"]) == 3 and out["level"] == 4


def test_bad_input_is_one_line_error(app, tmp_path):
    res = CliRunner().invoke(app, ["train", "--data", str(tmp_path), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "no images.parquet" in res.output
    res = CliRunner().invoke(app, ["eval", "--benchmark", "haivmet", "--root", str(tmp_path / "none"),
                                   "--model", "tiny-random-clip", "--out", str(tmp_path / "e")])
    assert res.exit_code == 2 and res.output.count("error:") == 1
