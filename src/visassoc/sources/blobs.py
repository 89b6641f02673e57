"""Where images that live inside containers (tar shards, dataset files) are put for the run.

Every later stage opens images by path with ``visassoc.images.open_rgb`` (one opener, and a
VLM backend can send the file as is), so a container source writes each image's encoded
bytes, untouched, to ``RUN/_work/source-files/``. The file name is a hash of the image id,
so a hostile key (``../x``) can never name a path outside that folder, and a re-run (resume)
finds the file already there and does not write it again.
"""
from __future__ import annotations

import hashlib
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
