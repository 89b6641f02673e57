"""Crash-safe, resumable stage output: Parquet parts plus a "done" marker written last.

Layout: ``RUN/_work/<stage>-<fingerprint>/part-<n>-<id>.<table>.parquet`` and
``part-<n>-<id>.done.json`` (the keys the part covers). Every file is written to a temp
name, fsynced and renamed, and the marker comes after the data, so a kill at any moment
leaves either a complete part or leftovers without a marker, which the next run deletes.
The fingerprint hashes the stage's config and its upstream fingerprints: change a
downstream stage and the upstream parts are reused as they are.
"""
from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterable

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from visassoc.records import SCHEMAS


def fingerprint(*parts: Any) -> str:
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def _fsync_write(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_table_atomic(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    _fsync_write(path, lambda p: pq.write_table(table, p, compression="zstd"))


def write_text_atomic(text: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    _fsync_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def _valid_utf8(v: Any) -> Any:
    if isinstance(v, str):
        return v.encode("utf-8", "replace").decode("utf-8")
    return [_valid_utf8(x) for x in v] if isinstance(v, list) else v


def rows_to_table(table: str, rows: list[dict]) -> pa.Table:
    schema = SCHEMAS[table]
    if not rows:
        return schema.empty_table()
    try:
        return pa.Table.from_pylist(rows, schema=schema)
    except UnicodeEncodeError:  # lone surrogates (a JSON "\ud800" from a model or captions file): not UTF-8
        return pa.Table.from_pylist([{k: _valid_utf8(v) for k, v in r.items()} for r in rows], schema=schema)


class StageStore:
    def __init__(self, run_dir: Path, stage: str, fp: str, tables: Iterable[str], clean: bool = True):
        """``clean=False`` for worker processes: only the driver may delete leftovers, or a worker
        could delete a part another worker is writing."""
        self.dir = Path(run_dir) / "_work" / f"{stage}-{fp}"
        self.stage, self.tables = stage, tuple(tables)
        self.dir.mkdir(parents=True, exist_ok=True)
        if clean:
            self._clean_incomplete()

    def _parts(self) -> list[str]:
        return _committed(self.dir)

    def _clean_incomplete(self) -> None:
        done = set(self._parts())
        for p in self.dir.iterdir():
            name = p.name.split(".", 1)[0]
            if p.name.startswith(".") and p.name.endswith(".tmp"):
                p.unlink(missing_ok=True)  # a write that a kill interrupted
            elif p.name.startswith("part-") and name not in done:
                p.unlink(missing_ok=True)  # data whose marker never landed

    def done_keys(self) -> set[str]:
        keys: set[str] = set()
        for part in self._parts():
            keys.update(json.loads((self.dir / f"{part}.done.json").read_text())["keys"])
        return keys

    def write_part(self, keys: list[str], rows: dict[str, list[dict]]) -> None:
        """Persist the rows produced for ``keys``; the keys count as done only once this returns."""
        n = len(self._parts())  # concurrent writers may share n; the random suffix keeps names apart
        part = f"part-{n:06d}-{uuid.uuid4().hex[:8]}"
        for table in self.tables:
            write_table_atomic(rows_to_table(table, rows.get(table, [])), self.dir / f"{part}.{table}.parquet")
        write_text_atomic(json.dumps({"keys": list(keys)}), self.dir / f"{part}.done.json")

    def ids_with_rows(self, table: str, where_ok: bool = False) -> set[str]:
        """The image ids that have at least one row in ``table`` (with status "ok" if asked),
        reading only the id (and status) columns, one part at a time."""
        cols = ["image_id", "status"] if where_ok else ["image_id"]
        ids: set[str] = set()
        for p in self._parts():
            t = pq.read_table(self.dir / f"{p}.{table}.parquet", columns=cols)
            if where_ok:
                t = t.filter(pc.equal(t["status"], "ok"))
            ids.update(pc.unique(t["image_id"]).to_pylist())
        return ids


def _committed(d: Path) -> list[str]:
    """Names of the parts in ``d`` whose done marker landed, in write order."""
    return sorted(p.name[: -len(".done.json")] for p in d.glob("part-*.done.json"))


def _only(t: pa.Table, keys) -> pa.Table:
    return t.filter(pc.is_in(t["image_id"], value_set=pa.array(sorted(keys), pa.string())))


class PartReader:
    """The rows of one stage for a few image ids at a time, reading only the parts that hold
    them (found through the done markers) and keeping the last few parts in memory. Memory
    stays flat however many images the run has; parts written later (by other workers) are
    picked up when a key is not yet indexed."""

    def __init__(self, store: StageStore, keep_parts: int = 8):
        self.store, self.keep = store, keep_parts
        self.part_of: dict[str, str] = {}
        self._indexed: set[str] = set()
        self._cache: OrderedDict[tuple[str, str], pa.Table] = OrderedDict()

    def _index(self) -> None:
        for part in self.store._parts():
            if part not in self._indexed:
                for k in json.loads((self.store.dir / f"{part}.done.json").read_text())["keys"]:
                    self.part_of[k] = part
                self._indexed.add(part)

    def _part(self, part: str, table: str) -> pa.Table:
        key = (part, table)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        t = pq.read_table(self.store.dir / f"{part}.{table}.parquet", schema=SCHEMAS[table])
        self._cache[key] = t
        while len(self._cache) > self.keep:
            self._cache.popitem(last=False)
        return t

    def table(self, table: str, keys: list[str]) -> pa.Table:
        """Rows of ``table`` for ``keys`` (in part order; callers sort)."""
        if any(k not in self.part_of for k in keys):
            self._index()
        by_part: dict[str, list[str]] = {}
        for k in keys:
            if k in self.part_of:
                by_part.setdefault(self.part_of[k], []).append(k)
        # each key from the one part the index names: a part written twice for the same keys
        # (a Ray task retried after its actor died between writing and returning) adds nothing
        pieces = [_only(self._part(p, table), ks) for p, ks in by_part.items()]
        return pa.concat_tables(pieces) if pieces else SCHEMAS[table].empty_table()

    def rows(self, table: str, keys: list[str]) -> dict[str, list[dict]]:
        """Rows of ``table`` for ``keys`` as dicts grouped by image_id, order within a part kept."""
        out: dict[str, list[dict]] = {}
        for r in self.table(table, keys).to_pylist():
            out.setdefault(r["image_id"], []).append(r)
        return out


def committed_parts(run_dir: Path, table: str, fingerprint_dir: str | None = None) -> list[Path]:
    """The Parquet files of ``table`` in the committed parts of a run, finished or still going:
    the newest ``_work/<stage>-<fingerprint>`` holding that table, unless one is named."""
    work = Path(run_dir) / "_work"
    dirs = [work / fingerprint_dir] if fingerprint_dir else sorted(
        (d for d in work.glob("*-*") if any(d.glob(f"part-*.{table}.parquet"))), key=lambda d: d.stat().st_mtime)
    if not dirs:
        return []
    return [dirs[-1] / f"{part}.{table}.parquet" for part in _committed(dirs[-1])]


def read_partial(run_dir: Path, table: str, fingerprint_dir: str | None = None) -> pa.Table:
    """The rows of ``table`` committed so far, the parts read as one table (``pyarrow.dataset``):
    look at a long run while it works. A finished run's ``<table>.parquet`` is the sorted export."""
    import pyarrow.dataset as ds

    files = committed_parts(run_dir, table, fingerprint_dir)
    if not files:
        return SCHEMAS[table].empty_table()
    return ds.dataset([str(f) for f in files], schema=SCHEMAS[table], format="parquet").to_table()


def committed_rows(run_dir: Path) -> dict[str, int]:
    """Rows committed so far per table (from the Parquet footers only): how far a run has got."""
    if not (Path(run_dir) / "_work").is_dir():
        raise FileNotFoundError(f"no visassoc run in {run_dir} (no _work/ folder)")
    return {t: sum(pq.read_metadata(f).num_rows for f in committed_parts(run_dir, t)) for t in SCHEMAS}
