"""A folder of images, optionally with a captions file (JSONL or CSV)."""
from __future__ import annotations

import csv
from pathlib import Path

from visassoc.images import IMAGE_SUFFIXES

from .base import SourceError, SourceItem, check_unique, clean_captions, iter_jsonl, outside_root


def read_captions_file(path: str | Path) -> dict[str, list[str]]:
    """``{"image": "a.jpg", "captions": [...]}`` per JSONL line, or CSV with ``image`` and ``caption(s)``."""
    path = Path(path)
    if not path.is_file():
        raise SourceError(f"captions file not found: {path}")
    out: dict[str, list[str]] = {}
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            cols = set(reader.fieldnames or [])
            cap_col = "caption" if "caption" in cols else "captions" if "captions" in cols else None
            if "image" not in cols or cap_col is None:
                raise SourceError(f"{path}: CSV needs columns 'image' and 'caption' (got {sorted(cols)})")
            for row in reader:
                out.setdefault(row["image"].strip(), []).extend(clean_captions(row[cap_col]))
        return out
    for _, rec in iter_jsonl(path, "image"):
        out.setdefault(str(rec["image"]), []).extend(clean_captions(rec.get("captions", rec.get("caption"))))
    return out


def load_folder(images_dir: str | Path, captions: str | Path | None = None, limit: int | None = None,
                allow_outside: bool = False) -> list[SourceItem]:
    """Images found recursively (sorted); id = path relative to the folder, without suffix. A file
    that is a symlink out of the folder is an error row unless ``allow_outside``."""
    images_dir = Path(images_dir)
    if not images_dir.is_dir():
        raise SourceError(f"image directory not found: {images_dir}")
    files = sorted(p for p in images_dir.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    caps = read_captions_file(captions) if captions else {}
    items = []
    for p in files:
        rel = p.relative_to(images_dir).as_posix()
        image_id = rel.rsplit(".", 1)[0]
        c = caps.get(rel, caps.get(p.name, caps.get(image_id, [])))
        why = outside_root(p, images_dir, allow_outside)
        items.append(SourceItem(image_id=image_id, path=None if why else str(p), captions=clean_captions(c), error=why))
    known = {p.relative_to(images_dir).as_posix() for p in files} | {p.name for p in files}
    known |= {k.rsplit(".", 1)[0] for k in known}
    for name in sorted(set(caps) - known):  # captioned but no such image: an explicit error row
        items.append(SourceItem(image_id=name.rsplit(".", 1)[0], path=None, captions=caps[name],
                                error=f"captions file names {name!r} but no such image in {images_dir}"))
    if limit is not None:
        items = items[:limit]
    return check_unique(items)
