"""Container files as data: image bytes kept on disk, WebDataset shard lists, Arrow/Parquet data files.

Shared by the run's sources (``sources.webdataset``, ``sources.hf_dataset``), by ``export`` and
by training on an export (``train.data_formats``), which may not import the sources. Images
that live inside containers are written, untouched, to a ``BlobDir`` so everything downstream
opens them by path with ``visassoc.images.open_rgb`` (one opener; a VLM backend can send the
file as is). A blob's name is a hash of its image id, so a hostile key (``../x``) can never
name a path outside its folder, and a resumed run finds the file already there.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

EXTENSIONS = {"jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff"}


class BlobDir:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def put(self, image_id: str, data: bytes, ext: str = "img") -> str:
        """Write ``data`` once (atomically) and return its absolute path."""
        ext = ext.lower().lstrip(".")
        name = hashlib.sha256(image_id.encode("utf-8", "backslashreplace")).hexdigest()[:32]
        path = self.root / name[:2] / f"{name}.{ext if ext in EXTENSIONS else 'img'}"
        if not (path.is_file() and path.stat().st_size == len(data)):
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)
        return str(path.resolve())


def blob_dir(out: str | Path) -> BlobDir:
    return BlobDir(Path(out) / "_work" / "source-files")


def sniff_ext(data: bytes) -> str:
    """The file suffix for encoded image bytes (the decoder itself looks at content, not names)."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:4] in (b"GIF8",):
        return "gif"
    return "img"


class DataFileError(ValueError):
    """A container the caller named is unusable (missing shard, unknown split): one line."""


def expand_shards(pattern: str) -> list[Path]:
    """``shards/{000000..000009}.tar`` -> the shard files, which must all exist locally."""
    from braceexpand import braceexpand

    paths = []
    for part in pattern.split("::"):
        if part.startswith(("pipe:", "http://", "https://", "gs://", "s3://")):
            raise DataFileError(f"--webdataset reads local shard files only (got {part.split(':', 1)[0]}: URL)")
        paths += [Path(p) for p in braceexpand(part)]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise DataFileError(f"{len(missing)} of {len(paths)} shard(s) not found: {', '.join(missing[:3])}"
                          f"{' ...' if len(missing) > 3 else ''}")
    if not paths:
        raise DataFileError(f"no shards match {pattern!r}")
    return paths


def split_files(root: Path, split: str) -> list[Path]:
    """The data files of ``split`` under ``root`` (a save_to_disk folder, a DatasetDict, or Parquet/Arrow files)."""
    if (root / "dataset_dict.json").is_file():
        splits = json.loads((root / "dataset_dict.json").read_text(encoding="utf-8")).get("splits", [])
        if split not in splits:
            raise DataFileError(f"{root} has no split {split!r} (splits: {', '.join(splits)})")
        return split_files(root / split, split)
    if (root / "state.json").is_file():
        state = json.loads((root / "state.json").read_text(encoding="utf-8"))
        return [root / f["filename"] for f in state.get("_data_files", [])]
    files = sorted(p for p in root.rglob("*") if p.suffix in (".parquet", ".arrow") and p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(root).parts))
    named = [p for p in files if split in p.relative_to(root).parent.parts
             or p.name.startswith((f"{split}-", f"{split}."))
             or p.stem.split("-")[1:2] == [split]]  # datasets cache: <name>-<split>[-NNNNN-of-NNNNN].arrow
    return named or files


def record_batches(path: Path, columns: list[str]):
    import pyarrow as pa
    import pyarrow.parquet as pq

    if path.suffix == ".parquet":
        yield from pq.ParquetFile(path).iter_batches(batch_size=64, columns=columns)
        return
    with pa.memory_map(str(path)) as src:
        try:
            reader = pa.ipc.open_stream(src)
        except pa.ArrowInvalid:
            src.seek(0)
            reader = pa.ipc.open_file(src)
            for i in range(reader.num_record_batches):
                yield reader.get_batch(i).select(columns)
            return
        for b in reader:
            yield b.select(columns)


def file_schema(path: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    if path.suffix == ".parquet":
        return pq.read_schema(path)
    with pa.memory_map(str(path)) as src:
        try:
            return pa.ipc.open_stream(src).schema
        except pa.ArrowInvalid:
            src.seek(0)
            return pa.ipc.open_file(src).schema
