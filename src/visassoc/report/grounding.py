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
    """(CLIPModel, tokenizer, image processor) from a local dir or a cached HF id; ValueError if it cannot load."""
    import torch
    from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel

    try:
        clip = CLIPModel.from_pretrained(model).eval()
        tok = AutoTokenizer.from_pretrained(model)
        proc = AutoImageProcessor.from_pretrained(model)
    except (OSError, ValueError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"cannot load CLIP model {model!r} (a local dir or a cached HF id): {msg}") from exc
    return clip.to("cuda" if torch.cuda.is_available() else "cpu"), tok, proc


def clip_scores(model: str, pairs: list[tuple[Path, str]], batch_size: int = 32, desc: str = "CLIPScore") -> np.ndarray:
    """CLIP-S = 2.5 * max(cos(image, text), 0) (Hessel et al., 2021) for (image path, text) pairs."""
    import torch
    from visassoc.images import open_rgb
    from tqdm import tqdm

    clip, tok, proc = load_clip(model)
    dev = next(clip.parameters()).device
    max_len = clip.config.text_config.max_position_embeddings
    img_cache: dict[Path, torch.Tensor] = {}
    out = []
    for i in tqdm(range(0, len(pairs), batch_size), desc=desc, unit="batch"):
        chunk = pairs[i:i + batch_size]
        paths = list(dict.fromkeys(p for p, _ in chunk if p not in img_cache))
        if paths:
            ims = [open_rgb(p) for p in paths]
            with torch.no_grad():
                f = clip.get_image_features(**proc(images=ims, return_tensors="pt").to(dev))
            for p, v in zip(paths, torch.nn.functional.normalize(f, dim=-1).cpu()):
                img_cache[p] = v
        t = tok([s for _, s in chunk], padding=True, truncation=True, max_length=max_len, return_tensors="pt")
        t.pop("token_type_ids", None)
        with torch.no_grad():
            tf = torch.nn.functional.normalize(clip.get_text_features(**t.to(dev)), dim=-1).cpu()
        iv = torch.stack([img_cache[p] for p, _ in chunk])
        out.append((2.5 * (iv * tf).sum(-1).clamp(min=0)).numpy())
    return np.concatenate(out) if out else np.zeros(0)


def clipscore_metrics(run, model: str, captions: list[dict], foils: list[dict], batch_size: int = 32) -> dict:
    """Mean CLIPScore per level next to the human caption and FOIL negatives; flags levels below FOIL."""
    def rows_with_images(rows):
        out = []
        for r in rows:
            p = run.image_path(r["image_id"])
            if p is not None and p.exists():
                out.append((p, r["caption"], r.get("level")))
        return out

    human = [{"image_id": im, "caption": c} for im, (_, c) in sorted(run.short_caption.items())]
    groups = {"human": rows_with_images(human), "foil": rows_with_images(foils),
              **{str(lv): rows_with_images([r for r in captions if r["valid"] and r["level"] == lv]) for lv in LEVELS}}
    flat = [(p, c) for g in groups.values() for p, c, _ in g]
    scores = clip_scores(model, flat, batch_size)
    res, i = {}, 0
    for name, g in groups.items():
        res[name] = mean_ci(scores[i:i + len(g)].tolist())
        i += len(g)
    foil_mean = res["foil"]["mean"]
    return {
        "model": model,
        "human_caption": res["human"],
        "foil": res["foil"],
        "per_level": {str(lv): res[str(lv)] for lv in LEVELS},
        "below_foil": [lv for lv in LEVELS if foil_mean is not None and res[str(lv)]["mean"] is not None
                       and res[str(lv)]["mean"] < foil_mean],
    }
