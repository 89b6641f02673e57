"""A small synthetic run dir (PIL-drawn images, hand-written ladders) for testing the report and study.

It follows the Parquet contract of ``visassoc.records`` exactly but its content is made up:
use it to exercise the measuring code, never as data.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from visassoc.records import SCHEMAS

LADDERS = {
    "dog": [["hound", "puppy", "canine"], ["pet", "animal", "companion"], ["walk", "park", "play"],
            ["loyalty", "friendship", "devotion"], ["faithfulness", "unconditional love", "guardian"]],
    "ball": [["sphere", "orb", "globe"], ["toy", "plaything", "object"], ["game", "match", "sport"],
             ["competition", "teamwork", "victory"], ["journey", "destiny", "fate"]],
    "cake": [["pastry", "gateau", "dessert"], ["treat", "sweet", "food"], ["party", "birthday", "celebration"],
             ["indulgence", "reward", "tradition"], ["joy", "sweetness", "abundance"]],
    "car": [["automobile", "sedan", "vehicle"], ["transport", "machine", "ride"], ["traffic", "road trip", "commute"],
            ["freedom", "speed", "mobility"], ["escape", "ambition", "modernity"]],
    "tree": [["oak", "trunk", "timber"], ["plant", "wood", "growth"], ["forest", "shade", "nature"],
             ["life", "endurance", "ecology"], ["wisdom", "time", "eternity"]],
}
SCENES = [  # (objects, short caption, other captions)
    (["dog", "ball"], "A dog chases a ball on the grass.",
     ["A brown dog running after a red ball.", "Puppy playing fetch with a ball in a yard.", "A dog and a ball outside.",
      "The dog is about to catch the ball."]),
    (["cake"], "A cake sits on a wooden table.",
     ["A birthday cake with candles on a table.", "Chocolate cake on a plate.", "A large frosted cake.",
      "Dessert cake ready to be cut."]),
    (["car", "tree"], "A car is parked under a tree.",
     ["A red car parked beside a big tree.", "An automobile in the shade of an oak.", "A parked car on a leafy street.",
      "Car standing under green branches."]),
    (["dog", "car"], "A dog looks out of a car window.",
     ["A dog with its head out of the car.", "Pet dog riding in a vehicle.", "A happy dog in a car.",
      "Dog peeking from the back seat window."]),
    (["tree"], "A tall tree stands in a field.",
     ["A lone tree in an open meadow.", "Big green tree on a hill.", "A tree with wide branches in the countryside.",
      "Single oak tree under a blue sky."]),
    (["ball"], "A ball lies on the court.",
     ["A tennis ball on a hard court.", "A yellow ball near the net.", "Ball resting on the playing court.",
      "A single ball on the ground of a court."]),
]
CATEGORIES = [("dog", "animal"), ("cat", "animal"), ("horse", "animal"), ("cake", "food"), ("pizza", "food"),
              ("car", "vehicle"), ("bus", "vehicle"), ("sports ball", "sports"), ("kite", "sports"),
              ("potted plant", "furniture"), ("bed", "furniture")]
_COLORS = {"dog": (150, 100, 60), "ball": (220, 40, 40), "cake": (240, 200, 220), "car": (40, 80, 200),
           "tree": (40, 140, 60)}


def _write(root: Path, name: str, rows: list[dict]) -> None:
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMAS[name]), root / f"{name}.parquet")


def make_synthetic_run(root: str | Path, n_images: int = 12, seed: int = 0, invalid_every: int = 7,
                       with_instances: bool = True, relative_paths: bool = True) -> Path:
    """Write a synthetic run dir (images, all six tables, manifest) and return its path."""
    from PIL import Image, ImageDraw

    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    tabs: dict[str, list[dict]] = {k: [] for k in SCHEMAS}
    coco_images, coco_anns = [], []
    cat_id = {name: i + 1 for i, (name, _) in enumerate(CATEGORIES)}
    k = 0
    for i in range(n_images):
        objs, short, others = SCENES[i % len(SCENES)]
        image_id = f"{100000 + i:012d}"
        im = Image.new("RGB", (160, 120), (rng.randint(180, 255), rng.randint(180, 255), rng.randint(180, 255)))
        d = ImageDraw.Draw(im)
        for j, o in enumerate(objs):
            x = 20 + 70 * j + rng.randint(0, 10)
            d.ellipse([x, 30, x + 50, 90], fill=_COLORS[o])
        fname = f"{image_id}.jpg"
        im.save(root / "images" / fname, quality=90)
        path = f"images/{fname}" if relative_paths else str((root / "images" / fname).resolve())
        caps = others[:2] + [short] + others[2:]  # the short caption is caption 2
        tabs["images"].append({"image_id": image_id, "path": path, "width": 160, "height": 120, "sha256": None,
                               "captions": caps, "status": "ok", "error": None})
        tabs["descriptions"].append({"image_id": image_id, "description": " ".join(caps),
                                     "description_source": "captions", "short_caption": None, "model": None})
        coco_images.append({"id": 100000 + i, "file_name": fname, "width": 160, "height": 120})
        for o in objs:
            cname = "sports ball" if o == "ball" else "potted plant" if o == "tree" else o
            coco_anns.append({"id": len(coco_anns) + 1, "image_id": 100000 + i, "category_id": cat_id[cname]})
        for rank, w in enumerate(objs):
            tabs["salient"].append({"image_id": image_id, "caption_id": 2, "caption": short, "word": w, "lemma": w,
                                    "pos": "NOUN", "concreteness": 4.8, "rank": rank})
            for lv, assocs in enumerate(LADDERS[w], start=1):
                for r, a in enumerate(assocs):
                    tabs["associations"].append({"image_id": image_id, "word": w, "level": lv, "rank": r,
                                                 "association": a, "backend": "synthetic"})
                a = assocs[(i + lv) % 3]
                k += 1
                bad = invalid_every and k % invalid_every == 0
                tabs["captions"].append({
                    "image_id": image_id, "word": w, "level": lv, "association": a,
                    "caption": short.replace(w, a, 1) if not bad else short,
                    "valid": not bad, "reason": "missing association: caption lacks the association" if bad else None,
                    "backend": "synthetic", "model": None})
    tabs["errors"].append({"stage": "captions", "image_id": tabs["images"][0]["image_id"], "word": "dog", "level": 5,
                           "message": "synthetic error row"})
    for name, rows in tabs.items():
        _write(root, name, rows)
    ann = root / "annotations"
    ann.mkdir(exist_ok=True)
    cap_file = ann / "captions_val2017.json"
    cap_file.write_text(json.dumps({"images": coco_images, "annotations": []}))
    if with_instances:
        (ann / "instances_val2017.json").write_text(json.dumps({
            "images": coco_images, "annotations": coco_anns,
            "categories": [{"id": cat_id[n], "name": n, "supercategory": s} for n, s in CATEGORIES]}))
    manifest = {"config": {"coco": str(cap_file), "images": str(root / "images"), "seed": seed},
                "seed": seed, "counts": {"images": n_images, "captions": len(tabs["captions"]), "reasks": 3}}
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return root
