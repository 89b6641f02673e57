"""StageStore parts and PartReader: rows of a chunk without loading the table, robust to leftovers
and to a part written twice for the same keys (a retried Ray task)."""
from __future__ import annotations

import pyarrow.parquet as pq

from visassoc.engine.store import PartReader, StageStore


def salient_row(image_id: str, word: str, rank: int = 0) -> dict:
    return dict(image_id=image_id, caption_id=0, caption=f"a {word}", word=word, lemma=word, pos="NOUN",
                concreteness=4.0, rank=rank)


def test_reader_reads_only_the_parts_that_hold_the_chunk(tmp_path, monkeypatch):
    store = StageStore(tmp_path, "salient", "fp", ("salient", "errors"))
    for p in range(10):
        keys = [f"im{p}-{i}" for i in range(3)]
        store.write_part(keys, {"salient": [salient_row(k, "dog") for k in keys]})
    opened = []
    real = pq.read_table
    monkeypatch.setattr(pq, "read_table", lambda path, **kw: opened.append(path.name) or real(path, **kw))
    reader = PartReader(store, keep_parts=2)
    rows = reader.rows("salient", ["im4-0", "im4-2", "im7-1"])
    assert sorted(rows) == ["im4-0", "im4-2", "im7-1"] and all(len(v) == 1 for v in rows.values())
    assert len(opened) == 2  # two parts read, not ten
    assert reader.rows("salient", ["missing"]) == {}


def test_a_key_written_twice_is_read_from_one_part_only(tmp_path):
    store = StageStore(tmp_path, "salient", "fp", ("salient", "errors"))
    store.write_part(["a", "b"], {"salient": [salient_row("a", "dog"), salient_row("b", "cat")]})
    store.write_part(["a"], {"salient": [salient_row("a", "dog")]})  # the same chunk again (a retried task)
    rows = PartReader(store).rows("salient", ["a", "b"])
    assert [r["word"] for r in rows["a"]] == ["dog"] and [r["word"] for r in rows["b"]] == ["cat"]
    assert store.ids_with_rows("salient") == {"a", "b"}


def test_parts_without_a_done_marker_are_dropped_by_the_driver_not_by_workers(tmp_path):
    store = StageStore(tmp_path, "salient", "fp", ("salient", "errors"))
    store.write_part(["a"], {"salient": [salient_row("a", "dog")]})
    half = store.dir / "part-000001-deadbeef.salient.parquet"  # data written, marker not yet
    half.write_bytes((store.dir / next(p.name for p in store.dir.glob("*.salient.parquet"))).read_bytes())
    StageStore(tmp_path, "salient", "fp", ("salient", "errors"), clean=False)  # a worker opening the store
    assert half.exists()
    StageStore(tmp_path, "salient", "fp", ("salient", "errors"))  # the driver, before a stage starts
    assert not half.exists() and store.done_keys() == {"a"}


def test_read_partial_treats_the_committed_parts_as_one_table(tmp_path):
    import visassoc

    store = StageStore(tmp_path, "salient", "fp1", ("salient", "errors"))
    store.write_part(["a"], {"salient": [salient_row("a", "dog")]})
    store.write_part(["b", "c"], {"salient": [salient_row("b", "cat"), salient_row("c", "cow", 1)]})
    (store.dir / "part-000009-cafe.salient.parquet").write_bytes(b"half written, no marker")
    t = visassoc.read_partial(tmp_path, "salient")
    assert sorted(t.column("word").to_pylist()) == ["cat", "cow", "dog"]
    assert visassoc.read_partial(tmp_path, "captions").num_rows == 0


def test_status_command_counts_committed_rows_and_rejects_a_non_run(tmp_path):
    from typer.testing import CliRunner

    from visassoc.cli import app

    store = StageStore(tmp_path, "salient", "fp1", ("salient", "errors"))
    store.write_part(["a", "b"], {"salient": [salient_row("a", "dog"), salient_row("b", "cat")]})
    r = CliRunner().invoke(app, ["status", str(tmp_path)])
    assert r.exit_code == 0 and "salient" in r.output and " 2" in r.output.split("salient")[1].splitlines()[0]
    bad = CliRunner().invoke(app, ["status", str(tmp_path / "none")])
    assert bad.exit_code == 2 and "no visassoc run" in bad.output and "Traceback" not in bad.output
