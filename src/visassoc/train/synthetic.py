"""Generated data for tests, demos and benchmarks: coloured shapes with captions at 5 abstraction levels.

Nothing here is a stand-in for a real result: it makes *inputs* (images + run-dir Parquet tables, a
HAIVMet-style folder, a pairs file) whose ground truth is known, so training and evaluation can be checked.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageDraw

from visassoc.records import SCHEMAS, CaptionRecord, ImageRecord, to_row

COLOURS = {"red": (220, 30, 30), "green": (30, 170, 60), "blue": (40, 70, 220),
           "yellow": (235, 210, 40), "purple": (140, 50, 170), "orange": (245, 140, 20)}
SHAPES = ("circle", "square", "triangle")
# word -> associations at levels 1..5 (near synonym ... full abstraction)
ASSOC = {
    "circle": ("ring", "wheel", "orbit", "cycle", "eternity"),
    "square": ("box", "tile", "window", "order", "stability"),
    "triangle": ("wedge", "pyramid", "mountain", "direction", "ambition"),
    "red": ("crimson", "fiery", "angry", "passionate", "loving"),
    "green": ("emerald", "leafy", "springtime", "growing", "hopeful"),
    "blue": ("azure", "oceanic", "calm", "melancholic", "infinite"),
    "yellow": ("golden", "sunny", "cheerful", "radiant", "joyful"),
    "purple": ("violet", "royal", "mysterious", "noble", "dreamlike"),
    "orange": ("amber", "autumnal", "warm", "vibrant", "energetic"),
}


def draw_shape(colour: str, shape: str, rng: random.Random, size: int = 48) -> Image.Image:
    """One image: a shape of one colour at a random place and size on a noisy grey background."""
    bg = tuple(rng.randint(90, 160) for _ in range(3))
    img = Image.new("RGB", (size, size), bg)
    d = ImageDraw.Draw(img)
    for _ in range(6):  # clutter
        x, y = rng.randrange(size), rng.randrange(size)
        d.point((x, y), fill=tuple(rng.randint(60, 200) for _ in range(3)))
    s = rng.randint(size * 2 // 5, size * 4 // 5)
    x0, y0 = rng.randint(0, size - s), rng.randint(0, size - s)
    box = (x0, y0, x0 + s, y0 + s)
    fill = COLOURS[colour]
    if shape == "circle":
        d.ellipse(box, fill=fill)
    elif shape == "square":
        d.rectangle(box, fill=fill)
    else:
        d.polygon([(x0 + s // 2, y0), (x0, y0 + s), (x0 + s, y0 + s)], fill=fill)
    return img


def captions_for(colour: str, shape: str) -> list[tuple[str, int, str, str]]:
    """(word, level, association, caption) for both salient words at all 5 levels."""
    out = []
    for level in range(1, 6):
        a = ASSOC[shape][level - 1]
        out.append((shape, level, a, f"a {colour} {a}"))
        a = ASSOC[colour][level - 1]
        out.append((colour, level, a, f"a {a} {shape}"))
    return out


def write_tables(run_dir: Path, images: list[ImageRecord], captions: list[CaptionRecord]) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    for name, recs in (("images", images), ("captions", captions)):
        table = pa.Table.from_pylist([to_row(r) for r in recs], schema=SCHEMAS[name])
        pq.write_table(table, run_dir / f"{name}.parquet")


def make_shapes_run(run_dir: str | Path, n_images: int = 120, seed: int = 0, size: int = 48,
                    relative_paths: bool = True) -> Path:
    """A run dir (images.parquet + captions.parquet + images/) of random coloured shapes."""
    run_dir = Path(run_dir)
    (run_dir / "images").mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    images, caps = [], []
    for i in range(n_images):
        colour, shape = rng.choice(list(COLOURS)), rng.choice(SHAPES)
        iid = f"s{seed}_{i:05d}"
        path = run_dir / "images" / f"{iid}.png"
        draw_shape(colour, shape, rng, size).save(path)
        images.append(ImageRecord(iid, f"images/{iid}.png" if relative_paths else str(path.resolve()),
                                  size, size, None, [f"a {colour} {shape}"]))
        for word, level, assoc, cap in captions_for(colour, shape):
            caps.append(CaptionRecord(iid, word, level, assoc, cap, True, None, "synthetic", None))
    write_tables(run_dir, images, caps)
    return run_dir


def make_haivmet(root: str | Path, n_metaphors: int = 100, per: int = 5, seed: int = 0, size: int = 48) -> Path:
    """A HAIVMet-style folder: ``root/<metaphor text>/<image>.png``, each folder holding its positives."""
    root = Path(root)
    rng = random.Random(seed)
    combos = [(c, s, l) for c in COLOURS for s in SHAPES for l in range(1, 6)]
    rng.shuffle(combos)
    for m in range(n_metaphors):
        colour, shape, level = combos[m % len(combos)]
        text = f"{ASSOC[colour][level - 1]} {ASSOC[shape][level - 1]} number {m}"
        d = root / text
        d.mkdir(parents=True, exist_ok=True)
        for j in range(per):
            draw_shape(colour, shape, rng, size).save(d / f"img{j}.png")
    return root


def make_pairs(root: str | Path, n_images: int = 60, seed: int = 1, level: int = 3, size: int = 48) -> Path:
    """A ``pairs`` benchmark: images + pairs.jsonl rows {image, text, group}; group = (colour, shape)."""
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    lines = []
    for i in range(n_images):
        colour, shape = rng.choice(list(COLOURS)), rng.choice(SHAPES)
        name = f"images/p{seed}_{i:04d}.png"
        draw_shape(colour, shape, rng, size).save(root / name)
        cap = [c for w, l, a, c in captions_for(colour, shape) if l == level and w == shape][0]
        lines.append({"image": name, "text": cap, "group": f"{colour}-{shape}"})
    path = root / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    return path
