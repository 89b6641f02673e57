"""Hugging Face datasets on this machine: a ``save_to_disk`` folder, Parquet files, or a cached Hub dataset.

Why pyarrow and not the ``datasets`` library: no release of ``datasets`` installs beside our
pins (5.x needs huggingface-hub>=1.31, transformers 4.57 needs <1.0; 4.x caps fsspec at
2026.2.0, we have 2026.9.0; <=2.14 resolves but breaks on pyarrow>=21). The formats
themselves are plain Arrow: ``save_to_disk`` writes Arrow IPC *stream* files listed in
``state.json`` (a ``DatasetDict`` adds ``dataset_dict.json`` and one folder per split), the
Hub stores Parquet, and an ``Image`` feature is a ``struct<bytes: binary, path: string>``
column. So these are read with pyarrow, batch by batch, and nothing is ever downloaded: a
name that is not a local path is looked up in the Hub cache (``HF_HUB_CACHE``/``HF_HOME``)
and in the ``datasets`` cache only.
"""
from __future__ import annotations

import os
from pathlib import Path

from .base import SourceError, SourceItem, clean_captions
from visassoc.datafiles import BlobDir, DataFileError, file_schema, record_batches, sniff_ext, split_files

CAPTION_GUESSES = ("caption", "captions", "text", "sentences")


def _hf_home() -> Path:
    return Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))


def resolve_dataset(name: str) -> Path:
    """A local path, or the newest copy of ``owner/name`` in the Hub or datasets cache."""
    p = Path(name)
    if p.exists():
        return p
    hub = Path(os.environ.get("HF_HUB_CACHE", _hf_home() / "hub")) / f"datasets--{name.replace('/', '--')}" / "snapshots"
    cached = Path(os.environ.get("HF_DATASETS_CACHE", _hf_home() / "datasets")) / name.replace("/", "___")
    for base in (hub, cached):
        if base.is_dir():
            return max((d for d in base.iterdir() if d.is_dir()), key=lambda d: d.stat().st_mtime, default=base)
    raise SourceError(f"dataset {name!r} is neither a local path nor in the Hugging Face cache ({hub.parent}); "
                      "nothing is downloaded at run time: fetch it first (huggingface-cli download --repo-type dataset)")


def _image_bytes(value, root: Path) -> tuple[bytes | None, str | None]:
    """(bytes, error) from an Image feature struct, raw binary, or a path string."""
    if isinstance(value, dict):
        if value.get("bytes"):
            return value["bytes"], None
        value = value.get("path")
    if isinstance(value, (bytes, bytearray)):
        return (bytes(value), None) if value else (None, "empty image bytes")
    if isinstance(value, str) and value:
        p = Path(value) if Path(value).is_absolute() else root / value
        if p.is_file():
            return p.read_bytes(), None
        return None, f"image path in the dataset not found: {value}"
    return None, "no image in this row"


def iter_hf_dataset(name: str, blobs: BlobDir, split: str = "train", image_column: str = "image",
                    caption_column: str | None = None, limit: int | None = None):
    root = resolve_dataset(name)
    try:
        files = split_files(root, split) if root.is_dir() else [root]
    except DataFileError as e:
        raise SourceError(str(e)) from None
    if not files:
        raise SourceError(f"{root}: no Parquet or Arrow files for split {split!r}")
    try:
        cols = file_schema(files[0]).names
    except Exception as e:  # noqa: BLE001 - any pyarrow failure means "not a dataset file"
        raise SourceError(f"{files[0]}: not a readable Arrow/Parquet file ({str(e).splitlines()[0][:100]})") from None
    if image_column not in cols:
        raise SourceError(f"{name}: no image column {image_column!r} (columns: {', '.join(cols)}); use --image-column")
    if caption_column is not None and caption_column not in cols:
        raise SourceError(f"{name}: no caption column {caption_column!r} (columns: {', '.join(cols)})")
    cap_col = caption_column or next((c for c in CAPTION_GUESSES if c in cols), None)
    id_col = "image_id" if "image_id" in cols and image_column != "image_id" else None
    wanted = [c for c in dict.fromkeys((image_column, cap_col, id_col)) if c]
    row, seen = 0, set()
    for f in files:
        try:
            for batch in record_batches(f, wanted):
                data = batch.to_pydict()
                for i in range(batch.num_rows):
                    image_id = str(data[id_col][i]) if id_col and data[id_col][i] is not None else str(row)
                    img, err = _image_bytes(data[image_column][i], root if root.is_dir() else root.parent)
                    if image_id in seen:
                        image_id, img, err = f"{image_id}#row{row}", None, f"image_id {image_id!r} repeats"
                    seen.add(image_id)
                    path = blobs.put(image_id, img, sniff_ext(img)) if img else None
                    caps = clean_captions(data[cap_col][i]) if cap_col else []
                    yield SourceItem(image_id, path, caps, err, f"{name}[{split}][{row}]")
                    row += 1
                    if limit is not None and row >= limit:
                        return
        except (OSError, ValueError, KeyError) as e:  # truncated/corrupt file: report it, go on
            yield SourceItem(f"{f.name}#unreadable", None, [], f"dataset file {f.name} unreadable after row {row}: "
                             f"{str(e).splitlines()[0][:160]}", str(f))


def load_hf_dataset(name: str, blobs: BlobDir, split: str = "train", image_column: str = "image",
                    caption_column: str | None = None, limit: int | None = None) -> list[SourceItem]:
    items = list(iter_hf_dataset(name, blobs, split, image_column, caption_column, limit))
    if not items:
        raise SourceError(f"dataset {name!r} split {split!r} has no rows")
    return items
