"""COCO caption annotations (``captions_*.json``) plus the image directory."""
from __future__ import annotations

import json
from pathlib import Path

from .base import SourceError, SourceItem, check_unique, clean_captions


def load_coco(annotations: str | Path, images_dir: str | Path, limit: int | None = None) -> list[SourceItem]:
    """One item per entry of ``images``; the file is found by ``file_name``, else by zero-padded id."""
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
    caps: dict[int, list[str]] = {}
    for ann in sorted(data["annotations"], key=lambda a: (a.get("image_id"), a.get("id", 0))):
        caps.setdefault(ann.get("image_id"), []).append(ann.get("caption", ""))
    images = sorted(data["images"], key=lambda im: im["id"])
    if limit is not None:
        images = images[:limit]
    items = []
    for im in images:
        candidates = [images_dir / im.get("file_name", ""), images_dir / f"{int(im['id']):012d}.jpg"]
        path = next((p for p in candidates if p.name and p.is_file()), None)
        items.append(
            SourceItem(
                image_id=str(im["id"]),
                path=str(path) if path else None,
                captions=clean_captions(caps.get(im["id"], [])),
                error=None if path else f"image file not found in {images_dir} (tried {candidates[0].name})",
            )
        )
    return check_unique(items)
