"""Grounding: a text-only retrieval proxy, FOIL-style negatives and (optionally) CLIPScore.

Text proxy: each image is represented by the MiniLM mean of its *other* human captions (the
short caption the pipeline worked from is left out, so a creative caption cannot score by
copying it); a caption "retrieves" its image when that image ranks first among all images.

FOIL negatives follow Shekhar et al. (2017): in the human caption, an object noun naming a
COCO category present in the image is swapped for another category of the same
supercategory that is absent from the image.
"""
from __future__ import annotations

import json
import random
import re
from collections import defaultdict
from functools import lru_cache
from pathlib import Path

import numpy as np

from visassoc.records import LEVELS
from visassoc.report.metrics import mean_ci, wilson

# Words people use for a category besides its name (a small, hand-made list).
COCO_SYNONYMS = {
    "person": ["man", "woman", "men", "women", "boy", "girl", "child", "kid", "people", "guy", "lady", "player"],
    "bicycle": ["bike"], "motorcycle": ["motorbike"], "airplane": ["plane", "jet", "aircraft"],
    "sports ball": ["ball"], "dining table": ["table"], "potted plant": ["plant"], "couch": ["sofa"],
    "tv": ["television"], "cell phone": ["phone", "cellphone"], "hair drier": ["hair dryer"],
    "donut": ["doughnut"], "teddy bear": ["teddy"], "laptop": ["computer"], "refrigerator": ["fridge"],
}
# What to write when a category is swapped in.
COCO_DISPLAY = {"sports ball": "ball", "dining table": "table", "potted plant": "plant", "tv": "television",
                "hair drier": "hair dryer"}
_NO_PLURAL = {"sheep", "skis", "scissors"}


def _plural(term: str) -> str:
    from lemminflect import getInflection

    *head, last = term.split()
    if last in _NO_PLURAL:
        return term
    infl = getInflection(last, "NNS")
    return " ".join(head + [infl[0] if infl else last + "s"])


def instances_path_for(run) -> Path | None:
    """The COCO instances file next to the run's captions file (``instances_{split}2017.json``)."""
    coco = run.config.get("coco")
    if not coco:
        return None
    p = Path(coco)
    if not p.is_absolute():
        p = (run.root / p) if (run.root / p).exists() else p.resolve()
    cand = p.with_name(p.name.replace("captions_", "instances_"))
    return cand if cand != p and cand.exists() else None


def coco_objects(run, instances: Path) -> tuple[dict[str, set[str]], dict[str, str]]:
    """(image_id -> category names present, category -> supercategory) for the run's images."""
    data = json.loads(Path(instances).read_text())
    cats = {c["id"]: c for c in data["categories"]}
    by_file = {im["file_name"]: im["id"] for im in data["images"]}
    ids = {im["id"] for im in data["images"]}
    present = defaultdict(set)
    for a in data["annotations"]:
        present[a["image_id"]].add(cats[a["category_id"]]["name"])
    out = {}
    for r in run.images:
        cid = by_file.get(Path(r["path"] or "").name)
        if cid is None:
            digits = re.sub(r"\D", "", r["image_id"])
            cid = int(digits) if digits and int(digits) in ids else None
        if cid is not None and cid in ids:
            out[r["image_id"]] = present.get(cid, set())
    return out, {c["name"]: c["supercategory"] for c in cats.values()}


def make_foil(caption: str, present: set[str], supercat: dict[str, str], rng: random.Random) -> tuple[str, str, str] | None:
    """(foil caption, replaced phrase, new category) or None when no present object is named."""
    low = caption.lower()
    for cat in sorted(present, key=lambda c: -len(c)):
        alts = [c for c, s in supercat.items() if s == supercat.get(cat) and c not in present]
        if not alts:
            continue
        new = rng.choice(sorted(alts))
        shown = COCO_DISPLAY.get(new, new)
        for form in [cat] + COCO_SYNONYMS.get(cat, []):
            for surface, repl in ((_plural(form), _plural(shown)), (form, shown)):
                m = re.search(rf"\b{re.escape(surface)}\b", low)
                if m:
                    head = re.sub(r"\b([Aa])n? $", lambda a: a.group(1) + ("n " if repl[0] in "aeiou" else " "),
                                  caption[: m.start()])  # keep "a"/"an" right for the new noun
                    return head + repl + caption[m.end():], caption[m.start():m.end()], new
    return None


def foil_negatives(run, instances: Path | None, seed: int = 0) -> tuple[list[dict], str | None]:
    """FOIL captions for the run's short human captions; (rows, note explaining any skip)."""
    if instances is None:
        return [], "no COCO instances annotations for this run (not a COCO run, or instances_*.json absent): FOIL skipped"
    objects, supercat = coco_objects(run, instances)
    rng = random.Random(seed)
    rows = []
    for image_id, (_, cap) in sorted(run.short_caption.items()):
        if image_id in objects:
            f = make_foil(cap, objects[image_id], supercat, rng)
            if f:
                rows.append({"image_id": image_id, "caption": f[0], "original": cap, "replaced": f[1], "new": f[2]})
    note = None if rows else f"no caption of this run names a COCO object of its image ({instances.name}): no FOIL rows"
    return rows, note


def text_retrieval(run, captions: list[dict]) -> dict:
    """R@1 of retrieving each caption's image from the images' other human captions, by level."""
    from visassoc.lexicon import embed

    gallery_ids, gallery_texts = [], []
    for image_id, (cid, _) in sorted(run.short_caption.items()):
        caps = (run.image_by_id.get(image_id) or {}).get("captions") or []
        others = [c for i, c in enumerate(caps) if i != cid and c and c.strip()]
        if others:
            gallery_ids.append(image_id)
            gallery_texts.append(others)
    if len(gallery_ids) < 2:
        return {"note": "fewer than two images have human captions besides the one used: text grounding skipped"}
    pos = {im: k for k, im in enumerate(gallery_ids)}
    human = [{"image_id": im, "caption": run.short_caption[im][1]} for im in gallery_ids]
    valid = [r for r in captions if r["valid"] and r["image_id"] in pos]
    groups = {"human": human, **{str(lv): [r for r in valid if r["level"] == lv] for lv in LEVELS}}
    flat = [t for ts in gallery_texts for t in ts]
    e = embed(flat + [r["caption"] for rows in groups.values() for r in rows])  # one batch: each call has a cost
    q_all = e[len(flat):]
    g, i = [], 0
    for ts in gallery_texts:
        v = e[i:i + len(ts)].mean(axis=0)
        g.append(v / np.linalg.norm(v))
        i += len(ts)
    g = np.stack(g)

    res, i = {}, 0
    for name, rows in groups.items():
        q, i = q_all[i:i + len(rows)], i + len(rows)
        if not rows:
            res[name] = None
            continue
        sims = q @ g.T
        own = sims[np.arange(len(rows)), [pos[r["image_id"]] for r in rows]]
        rank = (sims >= own[:, None]).sum(axis=1) - 1  # 0 = retrieved first; ties count against
        res[name] = {"r_at_1": wilson(int((rank == 0).sum()), len(rows)), "mrr": float(np.mean(1.0 / (rank + 1))),
                     "own_similarity": mean_ci(own.tolist())}
    return {
        "pool_size": len(gallery_ids),
        "chance_r_at_1": 1 / len(gallery_ids),
        "human_caption": res["human"],
        "per_level": {str(lv): res[str(lv)] for lv in LEVELS},
        "note": "query: a caption; gallery: each image's other human captions (MiniLM mean); the short caption used is excluded",
    }


@lru_cache(maxsize=2)
def load_clip(model: str):
    """A frozen CLIP (``visassoc.encoders`` backbone, no prompt tokens) from a local dir, a cached HF id or
    ``tiny-random-clip``; ValueError with one line if it cannot load."""
    from visassoc.encoders.distance_tokens import PromptedEncoder
    from visassoc.encoders.models import load_backbone

    import torch

    try:
        bb = load_backbone(model, "cuda" if torch.cuda.is_available() else "cpu")
    except (OSError, ValueError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"cannot load CLIP model {model!r} (a local dir or a cached HF id): {msg}") from exc
    return PromptedEncoder(bb, 0)


def clip_cosines(model: str, pairs: list[tuple[Path, str]], batch_size: int = 32) -> np.ndarray:
    """Raw cosine(image, text) of each (image path, text) pair; each image and text is embedded once."""
    from visassoc.encoders.inference import embed_images, embed_texts

    if not pairs:
        return np.zeros(0)
    enc = load_clip(model)
    paths = list(dict.fromkeys(str(p) for p, _ in pairs))
    texts = list(dict.fromkeys(t for _, t in pairs))
    im = embed_images(enc, paths, None, batch_size, desc="CLIPScore images")
    tx = embed_texts(enc, texts, desc="CLIPScore texts")
    pi, ti = {p: k for k, p in enumerate(paths)}, {t: k for k, t in enumerate(texts)}
    rows, cols = np.array([pi[str(p)] for p, _ in pairs]), np.array([ti[t] for _, t in pairs])
    return np.einsum("nd,nd->n", im[rows], tx[cols]).astype(np.float64)


def clip_s(cos: np.ndarray) -> np.ndarray:
    """CLIP-S = 2.5 * max(cos, 0) (Hessel et al., 2021)."""
    return 2.5 * np.clip(np.asarray(cos, dtype=np.float64), 0, None)


def clip_scores(model: str, pairs: list[tuple[Path, str]], batch_size: int = 32) -> np.ndarray:
    """CLIP-S of (image path, text) pairs."""
    return clip_s(clip_cosines(model, pairs, batch_size))


def load_foil_file(paths: list[Path]) -> dict[int, list[dict]]:
    """Official FOIL-COCO annotations (``foilv1.0_{train,test}_2017.json``: COCO caption annotations with a
    ``foil`` flag, ``target_word`` and ``foil_word``) -> COCO image id -> its foil captions (foil == true)."""
    out: dict[int, list[dict]] = defaultdict(list)
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"FOIL file {path} does not exist")
        for cid, rows in _read_foil(str(path.resolve()), path.stat().st_mtime_ns).items():
            out[cid] += rows
    return dict(out)


@lru_cache(maxsize=4)
def _read_foil(path: str, mtime_ns: int) -> dict[int, list[dict]]:
    """One FOIL file parsed once per (path, mtime): the train file is large and is read by a check first."""
    try:
        data = json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"FOIL file {path} is not valid JSON: {exc}".splitlines()[0]) from exc
    anns = data.get("annotations") if isinstance(data, dict) else None
    if not isinstance(anns, list):
        raise ValueError(f"FOIL file {path} has no 'annotations' list (expected the FOIL-COCO format)")
    out: dict[int, list[dict]] = defaultdict(list)
    for n, a in enumerate(anns):
        if not isinstance(a, dict) or not {"image_id", "caption", "foil"} <= set(a):
            raise ValueError(f"FOIL file {path}: annotation {n} lacks image_id, caption or foil")
        try:
            cid = int(a["image_id"])
        except (TypeError, ValueError):
            raise ValueError(f"FOIL file {path}: annotation {n} has a non-numeric image_id") from None
        if a["foil"] is True or str(a["foil"]).lower() == "true":
            out[cid].append({"caption": str(a["caption"]).strip(), "replaced": a.get("target_word"),
                             "new": a.get("foil_word")})
    return dict(out)


def coco_id(image_id: str, path: str | None = None) -> int | None:
    """The COCO image id of a run image: its digits (``000000123456`` or ``coco_123456``), else the file stem's."""
    for s in (image_id, Path(path or "").stem):
        digits = re.sub(r"\D", "", s or "")
        if digits:
            return int(digits)
    return None


def official_foil_negatives(run, foil_files: list[Path], seed: int = 0) -> tuple[list[dict], str | None]:
    """One FOIL caption (seeded choice) per run image that the official FOIL files cover."""
    by_id = load_foil_file(foil_files)
    rng = random.Random(seed)
    rows = []
    for r in sorted(run.images, key=lambda r: r["image_id"]):
        cid = coco_id(r["image_id"], r.get("path"))
        if cid is not None and by_id.get(cid):
            f = rng.choice(by_id[cid])
            rows.append({"image_id": r["image_id"], "caption": f["caption"], "replaced": f["replaced"], "new": f["new"]})
    note = None if rows else f"no image of this run is in {', '.join(Path(f).name for f in foil_files)}: no FOIL rows"
    return rows, note


COLUMNS = ["Original", "FOIL", "L1", "L2", "L3", "L4", "L5"]


def _paired(run, captions: list[dict], foils: list[dict], seed: int) -> list[tuple[str, str, str]]:
    """The authors' paired design: images having an original, a FOIL and a valid caption at every level; one
    caption per (image, column), chosen with ``seed``. Rows (image_id, column, caption)."""
    rng = random.Random(seed)
    per: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for im, (_, c) in run.short_caption.items():
        per[im]["Original"].append(c)
    for f in foils:
        per[f["image_id"]]["FOIL"].append(f["caption"])
    for r in captions:
        if r["valid"]:
            per[r["image_id"]][f"L{r['level']}"].append(r["caption"])
    rows = []
    for im in sorted(per):
        p = run.image_path(im)
        if all(per[im][c] for c in COLUMNS) and p is not None and p.exists():
            rows += [(im, c, rng.choice(sorted(per[im][c]))) for c in COLUMNS]
    return rows


def clipscore_metrics(run, model: str, captions: list[dict], foils: list[dict], batch_size: int = 32,
                      seed: int = 0) -> tuple[dict, list[dict]]:
    """CLIP-S per level next to the human caption and FOIL negatives (all captions; flags levels below FOIL),
    and the authors' paired table Original / FOIL / L1..L5 (mean raw cosine and CLIP-S over the same images).
    Returns (summary, per-pair rows {image_id, column, caption, cosine, clip_s}) so every number can be recomputed."""
    def rows_with_images(rows):
        out = []
        for r in rows:
            p = run.image_path(r["image_id"])
            if p is not None and p.exists():
                out.append((p, r["caption"]))
        return out

    human = [{"image_id": im, "caption": c} for im, (_, c) in sorted(run.short_caption.items())]
    groups = {"human": rows_with_images(human), "foil": rows_with_images(foils),
              **{str(lv): rows_with_images([r for r in captions if r["valid"] and r["level"] == lv]) for lv in LEVELS}}
    paired = _paired(run, captions, foils, seed)
    flat = [pc for g in groups.values() for pc in g] + [(run.image_path(im), c) for im, _, c in paired]
    cos = clip_cosines(model, flat, batch_size)
    res, i = {}, 0
    for name, g in groups.items():
        res[name] = {**mean_ci(clip_s(cos[i:i + len(g)]).tolist()), "mean_cosine": mean_ci(cos[i:i + len(g)].tolist())}
        i += len(g)
    pc = cos[i:]
    pair_rows = [{"image_id": im, "column": col, "caption": c, "cosine": float(x), "clip_s": float(clip_s(x))}
                 for (im, col, c), x in zip(paired, pc)]
    table = pc.reshape(-1, len(COLUMNS)) if len(pc) else np.zeros((0, len(COLUMNS)))
    beats = lambda k: {c: float((table[:, k] > table[:, j]).mean()) if len(table) else None  # noqa: E731
                       for j, c in enumerate(COLUMNS) if j != k}
    layout = {"columns": COLUMNS, "n_images": len(table),
              "mean_cosine": {c: float(table[:, j].mean()) if len(table) else None for j, c in enumerate(COLUMNS)},
              "clip_s": {c: float(clip_s(table[:, j]).mean()) if len(table) else None for j, c in enumerate(COLUMNS)},
              "original_beats": beats(0), "foil_beats": beats(1),
              "note": "paired: the same images in every column (an original, a FOIL and a valid caption at every "
                      "level), one caption per image and column; *_beats = share of images where that column's "
                      "cosine is higher"}
    foil_mean = res["foil"]["mean"]
    return {
        "model": model,
        "human_caption": res["human"],
        "foil": res["foil"],
        "per_level": {str(lv): res[str(lv)] for lv in LEVELS},
        "below_foil": [lv for lv in LEVELS if foil_mean is not None and res[str(lv)]["mean"] is not None
                       and res[str(lv)]["mean"] < foil_mean],
        "layout": layout,
    }, pair_rows


def layout_lines(layout: dict) -> list[str]:
    """The authors' table as text: a row of mean raw cosine and a row of CLIP-S."""
    if not layout.get("n_images"):
        return ["CLIPScore paired table: no image has an original, a FOIL and a valid caption at every level"]
    head = f"{'':13s}" + "".join(f"{c:>9s}" for c in layout["columns"])
    return [f"CLIPScore over {layout['n_images']} images (same images in every column)", head,
            f"{'mean cosine':13s}" + "".join(f"{layout['mean_cosine'][c]:9.4f}" for c in layout["columns"]),
            f"{'CLIP-S':13s}" + "".join(f"{layout['clip_s'][c]:9.4f}" for c in layout["columns"])]
