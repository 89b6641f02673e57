"""WebDataset shards and Hugging Face datasets as run sources: every sample ends as a row or an error row."""
from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from visassoc.cli import app
from visassoc.sources import SourceError, load_hf_dataset, load_webdataset
from visassoc.datafiles import BlobDir

DATA = Path(__file__).parent / "data"


def _jpeg(color) -> bytes:
    from PIL import Image

    b = io.BytesIO()
    Image.new("RGB", (32, 24), color).save(b, "JPEG")
    return b.getvalue()


def _add(t: tarfile.TarFile, name: str, data: bytes):
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    t.addfile(ti, io.BytesIO(data))


def make_shards(root: Path) -> str:
    """shard 0: good jpg+txt, good png+json, corrupt jpg, caption without image, bad json;
    shard 1: a repeated key then truncated mid-member."""
    root.mkdir(parents=True, exist_ok=True)
    with tarfile.open(root / "000000.tar", "w") as t:
        _add(t, "dog.jpg", _jpeg("red"))
        _add(t, "dog.txt", b"A dog runs across a green field.\nA brown dog chases a ball.")
        _add(t, "bus.png", _jpeg("blue"))
        _add(t, "bus.json", json.dumps({"caption": "A red bus drives down a city street."}).encode())
        _add(t, "bad.jpg", b"\xff\xd8\xff not really a jpeg")
        _add(t, "bad.txt", b"A broken picture.")
        _add(t, "lonely.txt", b"A caption with no image.")
        _add(t, "meta.jpg", _jpeg("green"))
        _add(t, "meta.json", b"{not json")
    with tarfile.open(root / "000001.tar", "w") as t:
        _add(t, "dog.jpg", _jpeg("red"))
        _add(t, "cat.jpg", _jpeg("white") * 20)
    data = (root / "000001.tar").read_bytes()
    (root / "000001.tar").write_bytes(data[: 512 * 6])  # ends inside cat.jpg
    return str(root / "{000000..000001}.tar")


def test_webdataset_every_sample_is_a_row(tmp_path):
    items = load_webdataset(make_shards(tmp_path / "shards"), BlobDir(tmp_path / "blobs"))
    by_id = {it.image_id: it for it in items}
    assert list(by_id) == ["dog", "bus", "bad", "lonely", "meta", "dog#000001.tar", "000001.tar#unreadable"]
    assert by_id["dog"].captions == ["A dog runs across a green field.", "A brown dog chases a ball."]
    assert by_id["bus"].captions == ["A red bus drives down a city street."]
    assert by_id["dog"].provenance.endswith("000000.tar#dog") and by_id["dog"].error is None
    assert Path(by_id["dog"].path).read_bytes() == _jpeg("red")  # bytes untouched
    assert Path(by_id["dog"].path).is_relative_to(tmp_path / "blobs")
    assert "no jpg/png/webp" in by_id["lonely"].error
    assert "bad json" in by_id["meta"].error
    assert "repeats" in by_id["dog#000001.tar"].error
    assert "unreadable after 1 sample" in by_id["000001.tar#unreadable"].error
    assert [it.image_id for it in load_webdataset(make_shards(tmp_path / "s2"), BlobDir(tmp_path / "b2"), limit=2)] == ["dog", "bus"]


def test_webdataset_run_end_to_end(tmp_path):
    pattern = make_shards(tmp_path / "shards")
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["run", "--webdataset", pattern, "--out", str(out), "-q"])
    assert res.exit_code == 0, res.output
    images = pq.read_table(out / "images.parquet").to_pylist()
    assert len(images) == 7  # every sample (and the truncated shard) is a row
    ok = {r["image_id"]: r for r in images if r["status"] == "ok"}
    assert set(ok) == {"dog", "bus"}
    assert ok["dog"]["provenance"].endswith("000000.tar#dog")
    bad = {r["image_id"]: r["error"] for r in images if r["status"] == "error"}
    assert "not a recognised image format" in bad["bad"] or "corrupt" in bad["bad"]
    errors = pq.read_table(out / "errors.parquet").to_pylist()
    assert {e["image_id"] for e in errors if e["stage"] == "images"} == set(bad)
    assert pq.read_table(out / "captions.parquet").num_rows > 0


def test_webdataset_bad_pattern_is_one_line_and_leaves_nothing(tmp_path):
    make_shards(tmp_path / "shards")
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["run", "--webdataset", str(tmp_path / "shards/{000000..000003}.tar"),
                                   "--out", str(out), "-q"])
    assert res.exit_code == 2 and "2 of 4 shard(s) not found" in res.output and not out.exists()
    res = CliRunner().invoke(app, ["run", "--webdataset", "pipe:cat x.tar", "--out", str(out), "-q"])
    assert res.exit_code == 2 and "local shard files only" in res.output and not out.exists()


def test_hf_dataset_save_to_disk_and_parquet(tmp_path):
    blobs = BlobDir(tmp_path / "blobs")
    train = load_hf_dataset(str(DATA / "hf_tiny"), blobs)
    assert [(it.image_id, it.captions) for it in train] == [("0", ["a red one"]), ("1", ["a blue one"])]
    assert train[1].provenance == f"{DATA / 'hf_tiny'}[train][1]"
    assert Path(train[0].path).read_bytes()[:4] == b"\x89PNG" and train[0].path.endswith(".png")
    test = load_hf_dataset(str(DATA / "hf_tiny"), blobs, split="test", caption_column="captions")
    assert [(it.image_id, it.captions) for it in test] == [("0", ["x", "y"])]
    pq_items = load_hf_dataset(str(DATA / "hf_tiny_train.parquet"), blobs, limit=1)
    assert [it.captions for it in pq_items] == [["a red one"]]


def test_hf_dataset_from_the_hub_cache_only(tmp_path, monkeypatch):
    snap = tmp_path / "hub" / "datasets--me--tiny" / "snapshots" / "abc123" / "data"
    snap.mkdir(parents=True)
    shutil.copy(DATA / "hf_tiny_train.parquet", snap / "train-00000-of-00001.parquet")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    assert len(load_hf_dataset("me/tiny", BlobDir(tmp_path / "b"))) == 2
    with pytest.raises(SourceError, match="nothing is downloaded"):
        load_hf_dataset("me/absent", BlobDir(tmp_path / "b"))


def test_hf_dataset_bad_inputs(tmp_path):
    blobs = BlobDir(tmp_path / "blobs")
    with pytest.raises(SourceError, match="no image column 'img'"):
        load_hf_dataset(str(DATA / "hf_tiny"), blobs, image_column="img")
    with pytest.raises(SourceError, match="no split 'val'"):
        load_hf_dataset(str(DATA / "hf_tiny"), blobs, split="val")
    broken = tmp_path / "broken.parquet"
    broken.write_bytes((DATA / "hf_tiny_train.parquet").read_bytes()[:300])
    with pytest.raises(SourceError, match="not a readable"):
        load_hf_dataset(str(broken), blobs)
    assert not (tmp_path / "blobs").exists()  # nothing written for a rejected source
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["run", "--hf-dataset", str(DATA / "hf_tiny"), "--caption-column", "nope",
                                   "--out", str(out), "-q"])
    assert res.exit_code == 2 and "no caption column 'nope'" in res.output and not out.exists()
    assert len(res.output.strip().splitlines()) == 1


def test_hf_dataset_run_end_to_end(tmp_path):
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["run", "--hf-dataset", str(DATA / "hf_tiny"), "--out", str(out), "-q"])
    assert res.exit_code == 0, res.output
    images = pq.read_table(out / "images.parquet").to_pylist()
    assert [(r["image_id"], r["status"], r["provenance"]) for r in images] == [
        ("0", "ok", f"{DATA / 'hf_tiny'}[train][0]"), ("1", "ok", f"{DATA / 'hf_tiny'}[train][1]")]
    assert all(Path(r["path"]).is_relative_to(out / "_work" / "source-files") for r in images)
