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
from visassoc.images import IMAGE_SUFFIXES

BENCHMARKS = ("pairs", "multim-poem", "haivmet", "pairwise")


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


MULTIM_POEM_JSON = "multim_poem.json"


def _multim_poem_files(root: Path, images: Path | None) -> tuple[Path, Path]:
    """(JSON file, image folder). ``root`` is the JSON itself or the folder ``visassoc fetch`` lays out:
    ``<root>/multim_poem.json`` + ``<root>/images/<id>.<ext>``; ``images`` overrides the image folder."""
    root = Path(root)
    if root.is_dir():
        js = root / MULTIM_POEM_JSON
        if not js.is_file():
            found = sorted(root.glob("*.json"))
            if len(found) != 1:
                raise FileNotFoundError(f"multim-poem folder {root} needs {MULTIM_POEM_JSON} (or exactly one *.json)")
            js = found[0]
    elif root.is_file():
        js = root
    else:
        raise FileNotFoundError(f"multim-poem data not found: {root}")
    img_dir = Path(images) if images else js.parent / "images"
    if not img_dir.is_dir():
        raise ValueError(f"multim-poem images folder {img_dir} does not exist: the JSON holds only URLs; put the "
                         f"images at <folder>/images/<id>.<ext> (what `visassoc fetch` writes) or pass --images DIR")
    return js, img_dir


def load_multim_poem(root: Path, images: Path | None, limit: int | None = None) -> Benchmark:
    """MultiM-Poem (img2poem) records ``[{id, poem, image_url}]`` in JSON order, each poem's positive its own
    image ``<images>/<id>.<ext>`` (any image extension; the URL is not fetched here)."""
    js, img_dir = _multim_poem_files(root, images)
    try:
        recs = json.loads(js.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{js} is not valid JSON: {e}") from e
    if not isinstance(recs, list):
        raise ValueError(f"{js}: expected a JSON list of {{id, poem, image_url}} records")
    recs = recs[:limit]
    by_id: dict[str, Path] = {}
    for f in sorted(img_dir.iterdir()):  # one listing, not one stat per extension per record
        if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES:
            by_id.setdefault(f.stem, f)
    g, texts, ids, pos, missing = _Gallery(), [], [], [], []
    for n, r in enumerate(recs):
        if not isinstance(r, dict) or r.get("id") is None or not str(r.get("poem") or "").strip():
            missing.append({"row": n, "reason": "record needs an id and a non-empty poem"})
            continue
        rid = str(r["id"])
        f = by_id.get(rid)
        col, err = g.add(f) if f is not None else (None, "image file missing")
        texts.append(str(r["poem"]).strip()), ids.append(rid)
        pos.append([] if err else [col])
        if err:
            missing.append({"id": rid, "image": str(f or img_dir / f"{rid}.*"), "reason": err})
    return Benchmark("multim-poem", texts, ids, g.paths, pos, missing=missing)


def _image_files(d: Path) -> list[Path]:
    return sorted(f for f in d.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)


def haivmet_text_folders(roots: list[Path]) -> tuple[list[Path], list[Path]]:
    """The metaphor-text folders under ``roots``. Each root is either a corpus (``<root>/<text>/<images>``)
    or a folder of sub-corpora (``<root>/<corpus>/<text>/<images>``), as HAIVMet is published; anything
    else (images and sub-folders mixed at one level, deeper nesting) is ambiguous and an error.
    Returns (text folders, folders holding no image at all)."""
    out, empty = [], []
    for root in roots:
        if not Path(root).is_dir():
            raise NotADirectoryError(f"haivmet root must be a folder: {root}")
        kids = sorted(p for p in Path(root).iterdir() if p.is_dir())
        flat = [k for k in kids if _image_files(k)]
        nested = [k for k in kids if k not in flat and any(_image_files(s) for s in k.iterdir() if s.is_dir())]
        if flat and nested:
            raise ValueError(f"ambiguous haivmet layout in {root}: {flat[0].name!r} holds images (a text folder) "
                             f"but {nested[0].name!r} holds image folders (a sub-corpus)")
        for k in flat:
            if any(_image_files(s) for s in k.iterdir() if s.is_dir()):
                raise ValueError(f"ambiguous haivmet layout: {k} holds images and folders of images")
        for c in nested:
            for t in sorted(s for s in c.iterdir() if s.is_dir()):
                if any(_image_files(s) for s in t.iterdir() if s.is_dir()):
                    raise ValueError(f"ambiguous haivmet layout: {t} is nested three levels deep")
            if _image_files(c):
                raise ValueError(f"ambiguous haivmet layout: {c} holds images and folders of images")
            out += sorted(t for t in c.iterdir() if t.is_dir() and _image_files(t))
            empty += sorted(t for t in c.iterdir() if t.is_dir() and not _image_files(t))
        out += flat
        empty += [k for k in kids if k not in flat and k not in nested]
    return out, empty


def load_haivmet(roots: Path | list[Path], limit: int | None = None) -> Benchmark:
    """HAIVMet: one text per metaphor folder name, its images the positives; ``roots`` are corpora or folders of
    sub-corpora (see ``haivmet_text_folders``). A text folder found in several roots is one text."""
    roots = [Path(r) for r in (roots if isinstance(roots, (list, tuple)) else [roots])]
    folders, empty = haivmet_text_folders(roots)
    folders = folders[:limit]
    if not folders:
        raise ValueError(f"no metaphor folders with images under {', '.join(map(str, roots))}")
    g, cols_of = _Gallery(), {}
    missing = [{"folder": str(d), "reason": "folder holds no image: not a metaphor text"} for d in empty]
    for d in folders:
        cols = cols_of.setdefault(d.name, set())
        for f in _image_files(d):
            col, err = g.add(f)
            if err:
                missing.append({"text": d.name, "image": str(f), "reason": err})
            else:
                cols.add(col)
    names = sorted(cols_of)
    return Benchmark("haivmet", [n.replace("_", " ").strip() for n in names], names, g.paths,
                     [sorted(cols_of[n]) for n in names], missing=missing)


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


def load_benchmark(name: str, root: str | Path | list, images: str | Path | None = None,
                   limit: int | None = None) -> Benchmark:
    """``root``: one path, or (haivmet only) a list of roots. ``limit``: only the first N rows (pairs,
    pairwise), records (multim-poem) or metaphor folders (haivmet)."""
    roots = [Path(r) for r in root] if isinstance(root, (list, tuple)) else [Path(root)]
    if len(roots) > 1 and name != "haivmet":
        raise ValueError(f"several --root values are for haivmet only, not {name}")
    if name == "haivmet":
        return load_haivmet(roots, limit)
    root = roots[0]
    if name == "pairs":
        return load_pairs(root, limit)
    if name == "multim-poem":
        return load_multim_poem(root, Path(images) if images else None, limit)
    if name == "pairwise":
        return load_pairwise(root, limit)
    raise ValueError(f"unknown benchmark {name!r}; choose one of {', '.join(BENCHMARKS)}")
