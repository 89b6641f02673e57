"""A JSONL manifest: ``{"id": ..., "image": path-or-URL, "captions": [...]}`` per line (``visassoc fetch``
also writes ``url`` (provenance) and, for a failed download, ``error``)."""
from __future__ import annotations

from pathlib import Path

from .base import SourceError, SourceItem, check_unique, clean_captions, iter_jsonl, outside_root


def load_manifest(path: str | Path, limit: int | None = None, allow_outside: bool = False,
                  roots: list[Path] | None = None) -> list[SourceItem]:
    """Relative image paths are resolved against the manifest's folder; one that resolves outside
    it (absolute, ``../``, a symlink out) is an error row unless ``allow_outside``. URLs are not
    fetched (no download support yet): such items become explicit error rows."""
    path = Path(path)
    if not path.is_file():
        raise SourceError(f"manifest not found: {path}")
    items = []
    for _, rec in iter_jsonl(path, "image", " (and ideally 'id', 'captions')"):
        image = str(rec["image"])
        image_id = str(rec.get("id", Path(image).stem))
        caps = clean_captions(rec.get("captions", rec.get("caption")))
        origin = str(rec.get("url") or image)  # `visassoc fetch` writes the URL an image came from
        if rec.get("error"):  # a row `visassoc fetch` could not download: kept as an error row
            items.append(SourceItem(image_id, None, caps, error=str(rec["error"]), provenance=origin))
            continue
        if image.startswith(("http://", "https://")):
            items.append(SourceItem(image_id, None, caps, provenance=image,
                                    error=f"image URLs are not downloaded by `run`; use `visassoc fetch --manifest` first ({image})"))
            continue
        p = Path(image) if Path(image).is_absolute() else path.parent / image
        why = outside_root(p, roots or [path.parent], allow_outside) or (None if p.is_file() else
                                                                        f"image file not found: {p}")
        items.append(SourceItem(image_id, None if why else str(p), caps, error=why, provenance=origin))
        if limit is not None and len(items) >= limit:
            break
    return check_unique(items)
