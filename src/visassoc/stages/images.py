"""Stage 0: open, verify and hash each source image. A bad file (truncated, not an image, a
decompression bomb, unreadable) becomes ``status=error`` plus an error row, so every input ends
as a row."""
from __future__ import annotations

from pathlib import Path

from visassoc.images import ImageError, inspect_image
from visassoc.records import ErrorRecord, ImageRecord, to_row


def run_chunk(cfg, impl, chunk, up, items):
    """Open, verify and hash each image; a bad file becomes status=error plus an error row."""
    rows, errs = [], []
    for iid in chunk:
        it = items[iid]
        # absolute paths: the tables stay usable from any working directory
        rec = ImageRecord(iid, str(Path(it.path).resolve()) if it.path else "", captions=list(it.captions),
                          provenance=it.provenance)
        try:
            if it.error:
                raise ImageError(it.error)
            info = inspect_image(it.path)
            rec.width, rec.height, rec.sha256 = info.width, info.height, info.sha256
        except ImageError as e:
            rec.status, rec.error = "error", str(e)
            errs.append(to_row(ErrorRecord("images", iid, None, None, str(e))))
        rows.append(to_row(rec))
    return {"images": rows, "errors": errs}
