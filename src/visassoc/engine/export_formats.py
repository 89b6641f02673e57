"""``visassoc export RUN --format webdataset|hf``: a finished run as training data in the formats people share.

One record per usable image: the image file's bytes (untouched), its source captions and
description, its provenance, and its valid creative captions, both as a list of
``{word, level, association, caption}`` and grouped per level (``level_1`` .. ``level_5``).

- ``webdataset``: ``shards/NNNNNN.tar`` (``webdataset.ShardWriter``), per sample
  ``<key>.<jpg|png|...>``, ``<key>.json`` (everything above) and ``<key>.level<n>.txt``
  (that level's captions, one a line). The key is the image id made safe for tar names
  (WebDataset cuts keys at the first dot); the real id is in the JSON.
- ``hf``: what ``datasets.Dataset.save_to_disk`` writes (Arrow IPC stream files, ``state.json``,
  ``dataset_info.json`` with an ``Image`` feature), written with pyarrow because ``datasets``
  cannot be installed beside our pins (see ``sources/hf_dataset.py``); ``datasets.load_from_disk``
  reads it.
Images that are not ok or have no valid caption are left out and counted in ``export.json``.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from collections import defaultdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from visassoc.records import LEVELS
from visassoc.datafiles import sniff_ext

ROWS_PER_FILE = 1000


class ExportError(ValueError):
    pass


def _records(run: Path):
    """(record dict, image bytes) per exportable image; and the counts of those left out."""
    for t in ("images", "captions"):
        if not (run / f"{t}.parquet").is_file():
            raise ExportError(f"{run}: no {t}.parquet (is this a finished visassoc run?)")
    creative = defaultdict(list)
    for r in pq.read_table(run / "captions.parquet", columns=["image_id", "word", "level", "association", "caption",
                                                             "valid"]).to_pylist():
        if r["valid"] and (r["caption"] or "").strip():
            creative[r["image_id"]].append({k: r[k] for k in ("word", "level", "association", "caption")})
    desc = {}
    if (run / "descriptions.parquet").is_file():
        desc = {r["image_id"]: r["description"] for r in
                pq.read_table(run / "descriptions.parquet", columns=["image_id", "description"]).to_pylist()}
    images = pq.read_table(run / "images.parquet").to_pylist()
    skipped = defaultdict(int)
    out = []
    for im in images:
        iid = im["image_id"]
        path = Path(im["path"]) if im["path"] and Path(im["path"]).is_absolute() else run / (im["path"] or "")
        if im["status"] != "ok":
            skipped["image not ok"] += 1
        elif not creative.get(iid):
            skipped["no valid creative caption"] += 1
        elif not path.is_file():
            skipped["image file missing"] += 1
        else:
            caps = creative[iid]
            rec = {"image_id": iid, "provenance": im.get("provenance"), "width": im["width"], "height": im["height"],
                   "captions": list(im["captions"] or []), "description": desc.get(iid), "creative": caps}
            rec.update({f"level_{lv}": [c["caption"] for c in caps if c["level"] == lv] for lv in LEVELS})
            out.append((rec, path))
    return out, dict(skipped), len(images)


def _key(image_id: str, used: set[str]) -> str:
    key = re.sub(r"[^A-Za-z0-9_-]", "_", image_id)[:80] or "img"
    if key in used:
        key = f"{key}_{hashlib.sha256(image_id.encode()).hexdigest()[:8]}"
    used.add(key)
    return key


def write_webdataset(records, out: Path, maxcount: int = ROWS_PER_FILE) -> int:
    import webdataset as wds

    (out / "shards").mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    with wds.ShardWriter(str(out / "shards" / "%06d.tar"), maxcount=maxcount, verbose=0) as w:
        for rec, path in records:
            data = path.read_bytes()
            ext = sniff_ext(data)
            sample = {"__key__": _key(rec["image_id"], used), ext if ext != "img" else "bin": data,
                      "json": json.dumps(rec, ensure_ascii=False).encode()}
            for lv in LEVELS:
                sample[f"level{lv}.txt"] = "\n".join(rec[f"level_{lv}"]).encode()
            w.write(sample)
    return len(list((out / "shards").glob("*.tar")))


HF_FEATURES = {
    "image": {"_type": "Image"},
    "image_id": {"dtype": "string", "_type": "Value"},
    "provenance": {"dtype": "string", "_type": "Value"},
    "width": {"dtype": "int32", "_type": "Value"},
    "height": {"dtype": "int32", "_type": "Value"},
    "captions": {"feature": {"dtype": "string", "_type": "Value"}, "_type": "List"},
    "description": {"dtype": "string", "_type": "Value"},
    "creative": {"feature": {"word": {"dtype": "string", "_type": "Value"}, "level": {"dtype": "int8", "_type": "Value"},
                             "association": {"dtype": "string", "_type": "Value"},
                             "caption": {"dtype": "string", "_type": "Value"}}, "_type": "List"},
    **{f"level_{lv}": {"feature": {"dtype": "string", "_type": "Value"}, "_type": "List"} for lv in LEVELS},
}
HF_SCHEMA = pa.schema([
    ("image", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
    ("image_id", pa.string()), ("provenance", pa.string()), ("width", pa.int32()), ("height", pa.int32()),
    ("captions", pa.list_(pa.string())), ("description", pa.string()),
    ("creative", pa.list_(pa.struct([("word", pa.string()), ("level", pa.int8()), ("association", pa.string()),
                                     ("caption", pa.string())]))),
    *[(f"level_{lv}", pa.list_(pa.string())) for lv in LEVELS],
])


def write_hf(records, out: Path, rows_per_file: int = ROWS_PER_FILE) -> int:
    """The ``save_to_disk`` layout of one ``Dataset``: data-NNNNN-of-NNNNN.arrow + state.json + dataset_info.json."""
    info = {"citation": "", "description": "visassoc creative captions (visassoc export --format hf)",
            "features": HF_FEATURES, "homepage": "", "license": ""}
    schema = HF_SCHEMA.with_metadata({"huggingface": json.dumps({"info": {"features": HF_FEATURES}})})
    out.mkdir(parents=True, exist_ok=True)
    n_files = max(1, math.ceil(len(records) / rows_per_file))
    names = [f"data-{i:05d}-of-{n_files:05d}.arrow" for i in range(n_files)]
    digest = hashlib.sha256()
    for i, name in enumerate(names):
        chunk = records[i * rows_per_file:(i + 1) * rows_per_file]
        rows = []
        for rec, path in chunk:
            data = path.read_bytes()
            digest.update(hashlib.sha256(data).digest())
            rows.append({"image": {"bytes": data, "path": f"{rec['image_id']}.{sniff_ext(data)}"}, **rec})
        with pa.OSFile(str(out / name), "wb") as f, pa.ipc.new_stream(f, schema) as w:
            w.write_table(pa.Table.from_pylist(rows, schema=schema))
    state = {"_data_files": [{"filename": n} for n in names], "_fingerprint": digest.hexdigest()[:16],
             "_format_columns": None, "_format_kwargs": {}, "_format_type": None, "_output_all_columns": False,
             "_split": None}
    (out / "state.json").write_text(json.dumps(state, indent=2), encoding="utf-8")
    (out / "dataset_info.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
    return n_files


def export_dataset(run: str | Path, out: str | Path, fmt: str) -> dict:
    """Write ``run`` as ``fmt`` into ``out`` (which must not hold files yet); returns what export.json says."""
    run, out = Path(run), Path(out)
    if fmt not in ("webdataset", "hf"):
        raise ExportError(f"--format must be 'webdataset' or 'hf' (got {fmt!r})")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExportError(f"--out {out} exists and is not an empty folder (nothing is overwritten)")
    records, skipped, total = _records(run)
    if not records:
        raise ExportError(f"{run}: no image has a valid creative caption; nothing to export")
    files = write_webdataset(records, out) if fmt == "webdataset" else write_hf(records, out)
    summary = {"format": fmt, "run": str(run.resolve()), "images_in_run": total, "exported": len(records),
               "captions": sum(len(r["creative"]) for r, _ in records), "files": files, "left_out": skipped}
    (out / "export.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return summary
