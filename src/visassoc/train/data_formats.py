"""``train --data`` also takes what ``visassoc export`` writes: WebDataset shards or a Hugging Face dataset.

Training needs image files it can open and re-open (the pixel cache) plus one row per valid
creative caption, which is exactly a run dir's ``images.parquet`` + ``captions.parquet``. So
an export is turned back into that minimal run dir once, under the visassoc cache
(``$VISASSOC_CACHE/train-data/<digest>``, keyed by the export's files, sizes and times), and
``load_runs`` reads it like any run. A run dir passes through unchanged.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from visassoc.lexicon import cache_root
from visassoc.records import LEVELS, SCHEMAS
from visassoc.datafiles import BlobDir, sniff_ext


def data_format(path: Path) -> str:
    if (path / "images.parquet").is_file():
        return "run"
    if path.is_dir() and ((path / "shards").is_dir() or any(path.glob("*.tar"))):
        return "webdataset"
    if path.suffix == ".tar" or "{" in str(path):
        return "webdataset"
    if (path / "state.json").is_file() or (path / "dataset_dict.json").is_file() or path.suffix == ".parquet":
        return "hf"
    return "run"  # load_runs says what is missing


def _shards(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted((path / "shards").glob("*.tar")) or sorted(path.glob("*.tar"))
    from visassoc.datafiles import expand_shards

    return expand_shards(str(path))


def _creative(meta: dict, level_texts: dict[int, list[str]]) -> list[dict]:
    if isinstance(meta.get("creative"), list):
        return [c for c in meta["creative"] if isinstance(c, dict) and c.get("caption")]
    return [{"word": None, "level": lv, "association": None, "caption": c} for lv, cs in level_texts.items() for c in cs]


def _from_webdataset(files: list[Path], blobs: BlobDir):
    import webdataset as wds

    for shard in files:
        for s in wds.WebDataset(str(shard), shardshuffle=False, empty_check=False, nodesplitter=None,
                                workersplitter=None):
            ext = next((e for e in ("jpg", "jpeg", "png", "webp", "bin") if s.get(e) is not None), None)
            meta = json.loads(s["json"]) if s.get("json") else {}
            levels = {lv: s[f"level{lv}.txt"].decode().splitlines() for lv in LEVELS if s.get(f"level{lv}.txt")}
            iid = str(meta.get("image_id", s["__key__"]))
            yield iid, (s[ext], ext) if ext else None, _creative(meta, levels)


def _from_hf(path: Path, blobs: BlobDir):
    from visassoc.datafiles import file_schema, record_batches, split_files

    files = split_files(path, "train") if path.is_dir() else [path]
    cols = file_schema(files[0]).names
    wanted = [c for c in ["image", "image_id", "creative", *[f"level_{lv}" for lv in LEVELS]] if c in cols]
    row = 0
    for f in files:
        for batch in record_batches(f, wanted):
            for r in batch.to_pylist():
                img = r.get("image") or {}
                data = img.get("bytes") if isinstance(img, dict) else img
                levels = {lv: r.get(f"level_{lv}") or [] for lv in LEVELS}
                yield str(r.get("image_id", row)), (data, sniff_ext(data)) if data else None, _creative(r, levels)
                row += 1


def as_run_dir(path: str | Path) -> Path:
    """``path`` itself for a run dir; for an export, the cached minimal run dir made from it."""
    path = Path(path)
    fmt = data_format(path)
    if fmt == "run":
        return path
    files = _shards(path) if fmt == "webdataset" else sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    if not files:
        raise FileNotFoundError(f"{path}: no WebDataset shards or dataset files")
    stamp = [(str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    root = cache_root() / "train-data" / hashlib.sha256(json.dumps([fmt, stamp]).encode()).hexdigest()[:24]
    if (root / "captions.parquet").is_file():
        return root
    blobs = BlobDir(root / "images")
    images, captions = [], []
    rows = _from_webdataset(files, blobs) if fmt == "webdataset" else _from_hf(path, blobs)
    for iid, img, creative in rows:
        p = blobs.put(iid, *img) if img else ""
        images.append({"image_id": iid, "path": p, "captions": [], "status": "ok" if p else "error",
                       "error": None if p else "no image in the export", "provenance": str(path)})
        captions += [{"image_id": iid, "word": c.get("word") or "", "level": int(c["level"]),
                      "association": c.get("association") or "", "caption": c["caption"], "valid": True,
                      "reason": None, "backend": f"export:{fmt}", "model": None, "attempts": 1} for c in creative]
    root.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(images, schema=SCHEMAS["images"]), root / "images.parquet")
    tmp = root / "captions.parquet.tmp"  # written last: its presence means the dir is complete
    pq.write_table(pa.Table.from_pylist(captions, schema=SCHEMAS["captions"]), tmp)
    tmp.replace(root / "captions.parquet")
    return root
