"""A synthetic world in which the level-token method can be checked end to end on CPU, because a pretrained
CLIP cannot be had here and a random one gives the tokens nothing to steer.

- Scenes: shapes with a colour, size, count, position and background texture, drawn procedurally.
- Literal captions name some of those attributes. Level captions come from a fixed ontology: levels 1-4
  use the colour's and the shape's association at that distance (``synthetic.ASSOC``), each level in its
  own phrasing; level 5 is one abstract word tied to the (colour, shape) pair by a fixed mapping.
- ``pretrain`` trains a tiny CLIP (real ``CLIPModel``) contrastively on these pairs, mostly literal with a
  small share of level captions, like web data: its text side knows every word, but it is weak at far levels.
- ``level_probe`` measures what the tokens add on held-out scenes: level accuracy (an image with level-k
  tokens must rank its own level-k caption first among its 5; chance 0.2) and text->image R@1 per level, an
  identical caption on several images counting every one of them as a positive.
"""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from tqdm.auto import tqdm

from visassoc.encoders.models import Backbone, build_tiny
from visassoc.records import CaptionRecord, ImageRecord
from visassoc.retrieval import retrieval_metrics

from .loss import clip_loss, pair_mask
from .synthetic import ASSOC as _ASSOC
from .synthetic import COLOURS, write_tables

ASSOC = {**_ASSOC, "diamond": ("rhombus", "kite", "gem", "balance", "clarity")}
SHAPES = ("circle", "square", "triangle", "diamond")
SIZES, COUNTS = ("small", "big"), ("one", "two", "three")
POSITIONS, TEXTURES = ("left", "right", "top", "bottom"), ("plain", "striped", "dotted")
# levels 1-4: the same two associations in each level's own phrasing (far captions read differently)
FRAMES = ("a {c} {s}", "something {c} like a {s}", "evoking a {c} {s}", "a {c} sense of {s}")
ABSTRACT = ("yearning", "serenity", "defiance", "nostalgia", "wonder", "solitude", "triumph", "grief",
            "curiosity", "devotion", "freedom", "tension", "innocence", "ambition", "reverie", "resilience",
            "longing", "harmony", "chaos", "tenderness", "awe", "restlessness", "patience", "bliss")
IMAGE_SIZE = 40


def _level5_word() -> dict[tuple[str, str], str]:
    """The fixed (colour, shape) -> abstract word mapping (a seeded shuffle: arbitrary but learnable)."""
    pairs = [(c, s) for c in COLOURS for s in SHAPES]
    words = list(ABSTRACT)
    random.Random(1234).shuffle(words)
    return dict(zip(pairs, words))


LEVEL5 = _level5_word()


def sample_scene(rng: random.Random) -> dict:
    return {"colour": rng.choice(list(COLOURS)), "shape": rng.choice(SHAPES), "size": rng.choice(SIZES),
            "count": rng.choice(COUNTS), "position": rng.choice(POSITIONS), "texture": rng.choice(TEXTURES)}


def draw_scene(sc: dict, rng: random.Random, size: int = IMAGE_SIZE) -> Image.Image:
    bg = tuple(rng.randint(100, 150) for _ in range(3))
    img = Image.new("RGB", (size, size), bg)
    d = ImageDraw.Draw(img)
    dark = tuple(max(0, v - 60) for v in bg)
    if sc["texture"] == "striped":
        for x in range(0, size, 4):
            d.line([(x, 0), (x, size)], fill=dark)
    elif sc["texture"] == "dotted":
        for x in range(1, size, 5):
            for y in range(1, size, 5):
                d.point((x, y), fill=dark)
    half = size // 2
    region = {"left": (0, 0, half, size), "right": (half, 0, size, size),
              "top": (0, 0, size, half), "bottom": (0, half, size, size)}[sc["position"]]
    s = rng.randint(size // 5, size // 4) if sc["size"] == "small" else rng.randint(size * 2 // 5, size // 2)
    s = min(s, region[2] - region[0], region[3] - region[1])
    fill = COLOURS[sc["colour"]]
    for _ in range(COUNTS.index(sc["count"]) + 1):
        x0, y0 = rng.randint(region[0], region[2] - s), rng.randint(region[1], region[3] - s)
        box = (x0, y0, x0 + s - 1, y0 + s - 1)
        if sc["shape"] == "circle":
            d.ellipse(box, fill=fill)
        elif sc["shape"] == "square":
            d.rectangle(box, fill=fill)
        elif sc["shape"] == "triangle":
            d.polygon([(x0 + s // 2, y0), (x0, y0 + s - 1), (x0 + s - 1, y0 + s - 1)], fill=fill)
        else:
            d.polygon([(x0 + s // 2, y0), (x0 + s - 1, y0 + s // 2), (x0 + s // 2, y0 + s - 1), (x0, y0 + s // 2)],
                      fill=fill)
    return img


def literal_caption(sc: dict, rng: random.Random) -> str:
    """A literal caption naming the shape and a random subset of the other attributes."""
    plural = "" if sc["count"] == "one" else "s"
    noun = " ".join(w for w, keep in ((sc["count"], rng.random() < 0.6), (sc["size"], rng.random() < 0.6),
                                      (sc["colour"], rng.random() < 0.9)) if keep) + f" {sc['shape']}{plural}"
    extra = [f"on the {sc['position']}"] if rng.random() < 0.5 else []
    extra += [f"on a {sc['texture']} background"] if rng.random() < 0.5 else []
    rng.shuffle(extra)
    return " ".join([noun.strip(), *extra])


def level_captions(sc: dict) -> list[str]:
    """The scene's captions at levels 1..5 (the same for every scene with its colour and shape)."""
    out = [FRAMES[k].format(c=ASSOC[sc["colour"]][k], s=ASSOC[sc["shape"]][k]) for k in range(4)]
    return out + [f"a feeling of {LEVEL5[(sc['colour'], sc['shape'])]}"]


def vocabulary() -> list[str]:
    """Every word a world caption can use (the world's language is closed)."""
    words = set(COLOURS) | set(SHAPES) | {s + "s" for s in SHAPES} | set(SIZES) | set(COUNTS) | set(POSITIONS)
    words |= set(TEXTURES) | set(ABSTRACT) | {w for a in ASSOC.values() for w in a}
    words |= {w for f in FRAMES for w in f.split() if not w.startswith("{")} | {"on", "the", "background", "feeling", "of"}
    return sorted(words)


def world_tokenizer():
    """A word-level BERT tokenizer over ``vocabulary()``: a few hundred embeddings instead of MiniLM's 30k
    keeps pretraining on CPU to minutes."""
    import tempfile

    from transformers import BertTokenizerFast

    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "vocab.txt"
        f.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *vocabulary()]) + "\n")
        return BertTokenizerFast(vocab_file=str(f), do_lower_case=True)


def make_world(n: int, seed: int) -> tuple[list[dict], list[Image.Image]]:
    rng = random.Random(seed)
    scenes = [sample_scene(rng) for _ in range(n)]
    return scenes, [draw_scene(sc, rng) for sc in scenes]


def make_world_run(run_dir: str | Path, n_images: int, seed: int) -> Path:
    """A run dir (images.parquet + captions.parquet + images/) with the 5 level captions of each scene."""
    run_dir = Path(run_dir)
    (run_dir / "images").mkdir(parents=True, exist_ok=True)
    scenes, images = make_world(n_images, seed)
    imgs, caps = [], []
    for i, (sc, im) in enumerate(zip(scenes, images)):
        iid = f"w{seed}_{i:05d}"
        im.save(run_dir / "images" / f"{iid}.png")
        imgs.append(ImageRecord(iid, f"images/{iid}.png", IMAGE_SIZE, IMAGE_SIZE, None,
                                [literal_caption(sc, random.Random(i))]))
        for lv, cap in enumerate(level_captions(sc), 1):
            caps.append(CaptionRecord(iid, sc["shape"], lv, cap.split()[-1], cap, True, None, "synthetic-world", None))
    write_tables(run_dir, imgs, caps)
    return run_dir


def pretrain(n_images: int = 4000, steps: int = 1500, batch_size: int = 128, level_share: float = 0.1,
             lr: float = 2e-3, seed: int = 0, progress: bool = True) -> Backbone:
    """A tiny CLIP trained from scratch on world pairs: literal captions, except a ``level_share`` of
    level captions (a random level each). Every parameter trains here; the tokens later train on it frozen."""
    bb = build_tiny("clip", seed=seed, image_size=IMAGE_SIZE, patch_size=8, hidden=64, layers=2, heads=4,
                    tokenizer=world_tokenizer())
    model = bb.model.train()
    scenes, images = make_world(n_images, seed + 10_000)
    px = torch.from_numpy(bb.processor(images=images, return_tensors="np")["pixel_values"])
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    rng, gen = random.Random(seed), np.random.default_rng(seed)
    for step in tqdm(range(steps), desc="pretrain tiny CLIP", unit="step", disable=not progress):
        idx = gen.choice(n_images, batch_size, replace=False)
        texts = [level_captions(scenes[i])[rng.randrange(5)] if rng.random() < level_share
                 else literal_caption(scenes[i], rng) for i in idx]
        tok = bb.tokenize(texts)
        out = model(pixel_values=px[idx], **tok)
        tid = {t: j for j, t in enumerate(dict.fromkeys(texts))}
        same = torch.tensor([tid[t] for t in texts])
        ignore = pair_mask(same, same, same, "image")  # identical captions are not negatives
        img = torch.nn.functional.normalize(out.image_embeds, dim=-1)
        txt = torch.nn.functional.normalize(out.text_embeds, dim=-1)
        loss = clip_loss(img, txt, model.logit_scale, ignore)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        for g in opt.param_groups:  # cosine decay: a calmer end gives a steadier frozen model
            g["lr"] = lr * 0.5 * (1 + np.cos(np.pi * (step + 1) / steps))
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    model.config.visassoc_tiny_random = False
    model.config.visassoc_synthetic_pretrained = True
    return Backbone(model, bb.tokenizer, bb.processor, "clip", "synthetic-world-clip", bb.text_max_length,
                    bb.pad_to_max)


@torch.no_grad()
def level_probe(enc, n_images: int = 300, seed: int = 99, use_tokens: bool = True) -> dict:
    """Level accuracy and text->image R@1 per level on ``n_images`` fresh scenes (``seed`` keeps them apart
    from training). ``use_tokens=False`` is the frozen baseline: one embedding per image for all levels."""
    scenes, images = make_world(n_images, seed)
    bb = enc.backbone
    px = torch.from_numpy(bb.processor(images=images, return_tensors="np")["pixel_values"]).float()
    caps = [level_captions(sc) for sc in scenes]
    texts = sorted({c for cs in caps for c in cs})
    tix = {t: j for j, t in enumerate(texts)}
    tfeat = torch.nn.functional.normalize(enc.text_features(**bb.tokenize(texts)), dim=-1)
    acc, r1 = [], {}
    for lv in range(1, 6):
        img = torch.nn.functional.normalize(enc.image_features(px, lv if use_tokens else None), dim=-1)
        own = tfeat[[[tix[c] for c in cs] for cs in caps]]  # [n, 5, d]: each image's 5 level captions
        acc.append((torch.einsum("nd,nkd->nk", img, own).argmax(1) == lv - 1).float().mean().item())
        q = [cs[lv - 1] for cs in caps]  # one query per image; every image with that caption is a positive
        pos = [[i for i, cs in enumerate(caps) if cs[lv - 1] == t] for t in q]
        scores = (tfeat[[tix[t] for t in q]] @ img.T).numpy()
        r1[lv] = retrieval_metrics(scores, pos, n_boot=0)["t2i"]["R@1"]
    return {"level_acc": float(np.mean(acc)), "level_acc_per_level": acc, "R@1": r1}
