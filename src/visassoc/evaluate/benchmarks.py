"""Benchmark loaders -> one ``Benchmark``: texts, a gallery of image paths, each text's positive images.

Every input item ends up either in the benchmark or in ``missing`` with a reason (a missing or
unreadable image, a malformed row); nothing is dropped silently.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

from visassoc.encoders.inference import image_error

BENCHMARKS = ("pairs", "multim-poem", "haivmet", "pairwise")
IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


@dataclass
class Benchmark:
    name: str
    texts: list[str]
    text_ids: list[str]
    images: list[str]  # absolute paths, the gallery (columns of every score matrix)
    positives: list[list[int]]  # per text: its positive image columns
    pairs: list[tuple[int, int, int]] | None = None  # pairwise only: (text, better column, worse column)
    missing: list[dict] = field(default_factory=list)


class _Gallery:
    """Deduplicated, verified image columns."""

    def __init__(self, check: bool = True):
        self.paths: list[str] = []
        self.col: dict[str, int] = {}
        self.bad: dict[str, str] = {}
        self.check = check

    def add(self, path: Path) -> tuple[int | None, str | None]:
        p = str(Path(path).resolve())
        if p in self.col:
            return self.col[p], None
        if p not in self.bad:
            self.bad[p] = "image file missing" if not Path(p).is_file() else (image_error(p) if self.check else None)
            if self.bad[p] is None:
                del self.bad[p]
                self.col[p] = len(self.paths)
                self.paths.append(p)
                return self.col[p], None
        return None, self.bad[p]


def _rows(path: Path, required: tuple[str, ...] = (), optional: tuple[str, ...] = ()) -> list[dict]:
    """The file's rows; a CSV header (or JSONL rows) without ``required`` columns is one clear error,
    not an empty benchmark."""
    if not path.is_file():
        raise FileNotFoundError(f"benchmark file not found: {path}")
    expected = ", ".join(required) + (f" (optional: {', '.join(optional)})" if optional else "")
    if path.suffix.lower() == ".csv":
        with open(path, newline="", encoding="utf-8", errors="replace") as f:
            reader = csv.DictReader(f)
            header = [h.strip() for h in (reader.fieldnames or [])]
            if not set(required) <= set(header):
                raise ValueError(f"{path.name}: columns {', '.join(header) or '(none)'}; expected {expected}")
            return [{(k or "").strip(): v for k, v in r.items()} for r in reader]
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                rows.append({"_error": f"line {n}: invalid JSON ({e.msg})"})
    objs = [r for r in rows if isinstance(r, dict) and "_error" not in r]
    if required and objs and not any(set(required) <= set(r) for r in objs):
        raise ValueError(f"{path.name}: no row has the keys {', '.join(required)}; expected {expected}")
    return [r if isinstance(r, dict) else {"_error": "row is not a JSON object"} for r in rows]


def load_pairs(root: Path, limit: int | None = None) -> Benchmark:
    """JSONL/CSV rows {image, text, group?}: a text's positives are the images of rows sharing its group
    (no group: the row's own image). Image paths are relative to the file's folder unless absolute."""
    g, texts, ids, pos, missing, key = _Gallery(), [], [], [], [], {}
    rows = _rows(root, ("image", "text"), ("group",))[:limit]
    groups: dict[str, set[int]] = {}
    pending = []
    for n, r in enumerate(rows):
        if "_error" in r or not r.get("image") or not (r.get("text") or "").strip():
            missing.append({"row": n, "reason": r.get("_error", "row needs non-empty image and text")})
            continue
        gid = str(r.get("group") or f"row{n}")
        col, err = g.add(root.parent / r["image"])
        if err:
            missing.append({"row": n, "image": r["image"], "reason": err})
        else:
            groups.setdefault(gid, set()).add(col)
        k = (gid, r["text"].strip())
        if k not in key:
            key[k] = len(texts)
            texts.append(k[1]), ids.append(gid), pending.append(gid)
    pos = [sorted(groups.get(gid, ())) for gid in pending]
    return Benchmark("pairs", texts, ids, g.paths, pos, missing=missing)


def load_multim_poem(root: Path, images: Path | None, limit: int | None = None) -> Benchmark:
    """multim_poem.json [{id, poem, image_url}] with local images ``<images>/<id>.jpg``."""
    if images is None:
        raise ValueError("multim-poem needs --images DIR holding <id>.jpg files (the JSON has only URLs)")
    recs = json.loads(Path(root).read_text())[:limit]
    g, texts, ids, pos, missing = _Gallery(), [], [], [], []
    for r in recs:
        col, err = g.add(Path(images) / f"{r['id']}.jpg")
        texts.append(str(r["poem"]).strip()), ids.append(str(r["id"]))
        pos.append([] if err else [col])
        if err:
            missing.append({"id": r["id"], "image": f"{r['id']}.jpg", "reason": err})
    return Benchmark("multim-poem", texts, ids, g.paths, pos, missing=missing)


def load_haivmet(root: Path, limit: int | None = None) -> Benchmark:
    """``root/<metaphor text>/<images>``: the folder name is the text, its images are the positives."""
    if not Path(root).is_dir():
        raise NotADirectoryError(f"haivmet root must be a folder of metaphor folders: {root}")
    g, texts, ids, pos, missing = _Gallery(), [], [], [], []
    for d in sorted(p for p in Path(root).iterdir() if p.is_dir())[:limit]:
        cols = []
        for f in sorted(d.rglob("*")):
            if f.is_file() and f.suffix.lower() in IMAGE_EXTS:
                col, err = g.add(f)
                if err:
                    missing.append({"text": d.name, "image": str(f), "reason": err})
                else:
                    cols.append(col)
        texts.append(d.name.replace("_", " ").strip()), ids.append(d.name), pos.append(sorted(set(cols)))
    return Benchmark("haivmet", texts, ids, g.paths, pos, missing=missing)


def load_pairwise(root: Path, limit: int | None = None) -> Benchmark:
    """Rows {text, image_a, image_b, better: a|b (or 0|1)}: accuracy of preferring the better image."""
    g, texts, ids, trip, missing, key = _Gallery(), [], [], [], [], {}
    for n, r in enumerate(_rows(root, ("text", "image_a", "image_b", "better"), ("id",))[:limit]):
        better = str(r.get("better", "")).strip().lower()
        if "_error" in r or better not in {"a", "b", "0", "1"} or not (r.get("text") or "").strip():
            missing.append({"row": n, "reason": r.get("_error", "row needs text, image_a, image_b, better in a|b|0|1")})
            continue
        ca, ea = g.add(root.parent / str(r.get("image_a", "")))
        cb, eb = g.add(root.parent / str(r.get("image_b", "")))
        if ea or eb:
            missing.append({"row": n, "reason": ea or eb})
            continue
        t = r["text"].strip()
        if t not in key:
            key[t] = len(texts)
            texts.append(t), ids.append(str(r.get("id", n)))
        trip.append((key[t], ca, cb) if better in {"a", "0"} else (key[t], cb, ca))
    pos = [[] for _ in texts]
    for t, b, _ in trip:
        pos[t] = sorted(set(pos[t]) | {b})
    return Benchmark("pairwise", texts, ids, g.paths, pos, pairs=trip, missing=missing)


def load_benchmark(name: str, root: str | Path, images: str | Path | None = None,
                   limit: int | None = None) -> Benchmark:
    """``limit``: only the first N rows (pairs, pairwise), records (multim-poem) or folders (haivmet)."""
    root = Path(root)
    if name == "pairs":
        return load_pairs(root, limit)
    if name == "multim-poem":
        return load_multim_poem(root, Path(images) if images else None, limit)
    if name == "haivmet":
        return load_haivmet(root, limit)
    if name == "pairwise":
        return load_pairwise(root, limit)
    raise ValueError(f"unknown benchmark {name!r}; choose one of {', '.join(BENCHMARKS)}")
