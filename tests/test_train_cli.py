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


class _Creates:
    """A pickle payload that, when unpickled, creates a file (what a crafted resume state could do)."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        import pathlib

        return (pathlib.Path.touch, (pathlib.Path(self.path),))


def _train(app, data, out, *extra):
    return CliRunner().invoke(app, ["train", "--data", str(data), "--out", str(out), "--batch-size", "10",
                                    "--level-tokens", "2", "--device", "cpu", *extra])


def test_resume_never_unpickles_and_damaged_state_is_one_line(app, tmp_path):
    import pickle

    rd = make_shapes_run(tmp_path / "r", 12, seed=4)
    ck = tmp_path / "ck"
    assert _train(app, rd, ck, "--max-steps", "2").exit_code == 0
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(_Creates(probe)))
    assert probe.exists()  # the payload is live: unpickling it (as torch.load(weights_only=False) did) runs it
    pwned = tmp_path / "pwned"
    payload = pickle.dumps(_Creates(pwned))
    good = {f: (ck / "state" / f).read_bytes() for f in ("last.safetensors", "last.json")}
    for name in ("last.safetensors", "last.json"):
        (ck / "state" / "last.pt").write_bytes(payload)  # where the old trainer looked
        (ck / "state" / name).write_bytes(payload)
        res = _train(app, rd, ck, "--max-steps", "3", "--resume")
        assert res.exit_code == 2 and "damaged or truncated" in res.output, res.output
        assert res.output.strip().count("\n") == 0 and "Traceback" not in res.output
        assert not pwned.exists()
        (ck / "state" / name).write_bytes(good[name][: len(good[name]) // 2])  # truncated
        res = _train(app, rd, ck, "--max-steps", "3", "--resume")
        assert res.exit_code == 2 and "damaged or truncated" in res.output and res.output.count("\n") == 1
        (ck / "state" / name).write_bytes(good[name])
    res = _train(app, rd, ck, "--max-steps", "3", "--resume")  # intact again; --max-steps may grow on resume
    assert res.exit_code == 0 and "trained 3/3 steps" in res.output, res.output


def test_existing_run_is_refused_and_failed_validation_creates_nothing(app, tmp_path):
    rd = make_shapes_run(tmp_path / "r", 12, seed=5)
    ck = tmp_path / "ck"
    assert _train(app, rd, ck, "--max-steps", "1").exit_code == 0
    before = (ck / "weights.safetensors").read_bytes()
    res = _train(app, rd, ck, "--max-steps", "1")
    assert res.exit_code == 2 and "already holds a training run" in res.output
    assert (ck / "weights.safetensors").read_bytes() == before
    res = _train(app, rd, ck, "--max-steps", "1", "--overwrite", "--lr", "0.5")
    assert res.exit_code == 0 and json.loads((ck / "encoder.json").read_text())["training"]["lr"] == 0.5
    user = tmp_path / "user"
    user.mkdir()
    (user / "README.md").write_text("mine")
    res = _train(app, rd, user, "--max-steps", "1", "--overwrite")
    assert res.exit_code == 2 and "README.md" in res.output and sorted(p.name for p in user.iterdir()) == ["README.md"]
    for extra in (["--sampler", "bogus"], ["--preset", "nope"], ["--resume"], ["--batch-size", "3"]):
        res = _train(app, rd, tmp_path / "new", "--max-steps", "1", *extra)
        assert res.exit_code == 2 and res.output.count("error:") == 1 and not (tmp_path / "new").exists(), res.output
    res = _train(app, tmp_path / "nodata", tmp_path / "new", "--max-steps", "1")
    assert res.exit_code == 2 and not (tmp_path / "new").exists()


def test_paper_preset_from_the_cli(app, tmp_path):
    rd = make_shapes_run(tmp_path / "r", 12, seed=6)
    res = _train(app, rd, tmp_path / "ck", "--preset", "paper", "--max-steps", "1")
    assert res.exit_code == 0 and "preset paper" in res.output, res.output
    t = json.loads((tmp_path / "ck/encoder.json").read_text())["training"]
    assert (t["preset"], t["lr"], t["batch_size"], t["epochs"], t["mixed_steps"]) == ("paper", 1e-4, 10, 1, "alternate")
    assert json.loads((tmp_path / "ck/manifest.json").read_text())["preset"] == "paper"
