"""COCO caption annotations (``captions_*.json``) plus the image directory."""
from __future__ import annotations

import json
from pathlib import Path

from .base import SourceError, SourceItem, check_unique, clean_captions, outside_root


def load_coco(annotations: str | Path, images_dir: str | Path, limit: int | None = None,
              allow_outside: bool = False) -> list[SourceItem]:
    """One item per entry of ``images``; the file is found by ``file_name``, else by zero-padded id.
    A ``file_name`` resolving outside ``images_dir`` is an error row unless ``allow_outside``."""
    annotations, images_dir = Path(annotations), Path(images_dir)
    if not annotations.is_file():
        raise SourceError(f"COCO annotation file not found: {annotations}")
    if not images_dir.is_dir():
        raise SourceError(f"image directory not found: {images_dir}")
    try:
        data = json.loads(annotations.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SourceError(f"{annotations} is not valid JSON: {e}") from None
    if not isinstance(data, dict) or "images" not in data or "annotations" not in data:
        raise SourceError(f"{annotations} is not a COCO caption file (needs 'images' and 'annotations')")
    for key in ("images", "annotations"):
        if not isinstance(data[key], list) or not all(isinstance(x, dict) for x in data[key]):
            raise SourceError(f"{annotations}: '{key}' must be a list of objects, not {type(data[key]).__name__}")
    kinds = {type(im.get("id")).__name__ for im in data["images"]}
    if not kinds <= {"int"} and not kinds <= {"str"}:
        raise SourceError(f"{annotations}: image ids must be all integers or all strings (found "
                          f"{', '.join(sorted(kinds))})")
    caps: dict[str, list[tuple]] = {}
    for ann in data["annotations"]:  # matched to images by str(id): an int/str mix cannot crash the sort
        aid = ann.get("id", 0)
        order = (0, aid, "") if isinstance(aid, int) else (1, 0, str(aid))  # numeric ids in numeric order
        caps.setdefault(str(ann.get("image_id")), []).append((order, ann.get("caption", "")))
    images = sorted(data["images"], key=lambda im: im["id"])
    if limit is not None:
        images = images[:limit]
    items = []
    for im in images:
        name = im.get("file_name")
        candidates = [images_dir / name] if isinstance(name, str) and name else []
        if isinstance(im["id"], int):
            candidates.append(images_dir / f"{im['id']:012d}.jpg")
        path = next((p for p in candidates if p.is_file()), None)
        tried = ", ".join(p.name for p in candidates) or "no file_name"
        error = None if path else f"image file not found in {images_dir} (tried {tried})"
        if path and (why := outside_root(path, images_dir, allow_outside)):
            path, error = None, why
        items.append(SourceItem(
            image_id=str(im["id"]),
            path=str(path) if path else None,
            captions=clean_captions([c for _, c in sorted(caps.get(str(im["id"]), []), key=lambda t: t[0])]),
            error=error,
        ))
    return check_unique(items)
