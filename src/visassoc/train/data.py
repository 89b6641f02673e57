"""Training data: run dirs -> (image, caption, level) examples, caches, splits and batch samplers.

Images are preprocessed once into a memory-mapped float16 array, and captions are embedded once by the
frozen text tower into a memory-mapped float32 array: every step then costs one vision pass only.
Batches are pure functions of (seed, step), so a resumed run sees exactly the batches it would have seen.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
from PIL import Image
from tqdm.auto import tqdm

from visassoc.images import open_rgb


@dataclass
class Examples:
    image_paths: list[str]  # unique, absolute
    image_keys: list[str]  # "<run dir>::<image_id>"
    texts: list[str]  # unique caption strings
    ex_image: np.ndarray  # per example: index into image_paths
    ex_text: np.ndarray  # per example: index into texts
    ex_level: np.ndarray  # per example: 1..5
    skipped: list[dict] = field(default_factory=list)  # one row per caption/image left out, with a reason

    def subset(self, mask: np.ndarray) -> "Examples":
        return Examples(self.image_paths, self.image_keys, self.texts, self.ex_image[mask], self.ex_text[mask],
                        self.ex_level[mask], self.skipped)


def load_runs(run_dirs: list[str | Path], num_levels: int = 5) -> Examples:
    """Valid captions of ok images whose file opens; everything else goes to ``skipped`` with a reason."""
    paths, keys, texts = [], [], []
    pidx, tidx = {}, {}
    exi, ext, exl, skipped = [], [], [], []
    from visassoc.train.data_formats import as_run_dir

    for rd in run_dirs:
        rd = as_run_dir(rd)  # a WebDataset or HF export becomes a cached run dir
        for t in ("images", "captions"):
            if not (rd / f"{t}.parquet").exists():
                raise FileNotFoundError(f"{rd}: no {t}.parquet (is this a visassoc run dir?)")
        imgs = {r["image_id"]: r for r in pq.read_table(rd / "images.parquet").to_pylist()}
        ok: dict[str, str] = {}
        for iid, r in imgs.items():
            p = Path(r["path"]) if Path(r["path"]).is_absolute() else rd / r["path"]
            if r["status"] != "ok":
                skipped.append({"run": str(rd), "image_id": iid, "reason": f"image status {r['status']}"})
            elif not p.is_file():
                skipped.append({"run": str(rd), "image_id": iid, "reason": f"image file missing: {p}"})
            else:
                ok[iid] = str(p.resolve())
        for r in pq.read_table(rd / "captions.parquet").to_pylist():
            iid, why = r["image_id"], None
            if iid not in ok:
                why = "image not usable" if iid in imgs else "image_id not in images.parquet"
            elif not r["valid"]:
                why = f"caption invalid: {r['reason']}"
            elif not (r["caption"] or "").strip():
                why = "empty caption"
            elif not 1 <= int(r["level"]) <= num_levels:
                why = f"level {r['level']} outside 1..{num_levels}"
            if why:
                skipped.append({"run": str(rd), "image_id": iid, "word": r["word"], "level": r["level"],
                                "reason": why})
                continue
            key = f"{rd.resolve()}::{iid}"
            if key not in pidx:
                pidx[key] = len(paths)
                paths.append(ok[iid])
                keys.append(key)
            cap = r["caption"].strip()
            if cap not in tidx:
                tidx[cap] = len(texts)
                texts.append(cap)
            exi.append(pidx[key]), ext.append(tidx[cap]), exl.append(int(r["level"]))
    if not exi:
        raise ValueError(f"no usable training captions in {[str(r) for r in run_dirs]} ({len(skipped)} skipped)")
    return Examples(paths, keys, texts, np.array(exi), np.array(ext), np.array(exl), skipped)


def split_by_image(ex: Examples, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Boolean train / val masks over examples; an image's captions all land on one side."""
    n = len(ex.image_paths)
    n_val = 0 if val_fraction <= 0 or n < 2 else min(n - 1, max(1, round(val_fraction * n)))
    order = np.random.default_rng(seed).permutation(n)
    val_img = np.zeros(n, dtype=bool)
    val_img[order[:n_val]] = True
    val = val_img[ex.ex_image]
    return ~val, val


def _digest(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def pixel_cache(paths: list[str], processor, cache_dir: Path) -> np.memmap:
    """Preprocess every image once into ``cache_dir/pixels-<hash>.npy`` (float16, memory-mapped)."""
    key = _digest(paths, [Path(p).stat().st_mtime_ns for p in paths], processor.to_dict())
    f = Path(cache_dir) / f"pixels-{key}.npy"
    if f.exists():
        return np.load(f, mmap_mode="r")
    f.parent.mkdir(parents=True, exist_ok=True)
    shape = processor(images=[Image.new("RGB", (8, 8))], return_tensors="np")["pixel_values"].shape[1:]
    tmp = f.with_suffix(".tmp.npy")
    arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=(len(paths), *shape))
    for s in tqdm(range(0, len(paths), 64), desc="preprocess images", unit="batch"):
        ims = [open_rgb(p) for p in paths[s:s + 64]]
        arr[s:s + len(ims)] = processor(images=ims, return_tensors="np")["pixel_values"].astype(np.float16)
    arr.flush()
    del arr
    tmp.rename(f)
    return np.load(f, mmap_mode="r")


@torch.no_grad()
def text_cache(texts: list[str], encoder, cache_dir: Path, fingerprint: str, batch_size: int = 256) -> np.memmap:
    """Normalised caption embeddings from the frozen text tower, computed once (memory-mapped float32)."""
    f = Path(cache_dir) / f"text-{_digest(fingerprint, texts)}.npy"
    if f.exists():
        return np.load(f, mmap_mode="r")
    f.parent.mkdir(parents=True, exist_ok=True)
    dev = encoder.prompts.device
    chunks = []
    for s in tqdm(range(0, len(texts), batch_size), desc="embed captions (once)", unit="batch"):
        tok = {k: v.to(dev) for k, v in encoder.backbone.tokenize(texts[s:s + batch_size]).items()}
        chunks.append(torch.nn.functional.normalize(encoder.text_features(**tok), dim=-1).float().cpu().numpy())
    tmp = f.with_suffix(".tmp.npy")
    np.save(tmp, np.concatenate(chunks))
    tmp.rename(f)
    return np.load(f, mmap_mode="r")


def random_batch(n: int, batch_size: int, seed: int, step: int) -> np.ndarray:
    """Indices 0..n-1 of step ``step``: an epoch-wise permutation seeded by (seed, epoch)."""
    per_epoch = max(1, n // batch_size)
    epoch, i = divmod(step, per_epoch)
    perm = np.random.default_rng([seed, 0, epoch]).permutation(n)
    return perm[i * batch_size:(i + 1) * batch_size]


def balanced_batch(ex_image: np.ndarray, batch_size: int, seed: int, step: int) -> np.ndarray:
    """Image-balanced batch: distinct images, one random caption each (visassoc's earlier stand-in for the
    paper's second sampler; it never shows an image at two levels, see ``levels_batch``)."""
    imgs = np.unique(ex_image)
    per_epoch = max(1, len(imgs) // batch_size)
    epoch, i = divmod(step, per_epoch)
    chosen = np.random.default_rng([seed, 1, epoch]).permutation(imgs)[i * batch_size:(i + 1) * batch_size]
    rng = np.random.default_rng([seed, 2, step])
    return np.array([rng.choice(np.flatnonzero(ex_image == im)) for im in chosen])


def level_groups(ex_image: np.ndarray, ex_level: np.ndarray) -> dict[tuple[int, int], np.ndarray]:
    """(image, level) -> indices of its examples; built once, read by ``levels_batch`` every step."""
    g: dict[tuple[int, int], list[int]] = {}
    for j, (im, lv) in enumerate(zip(ex_image.tolist(), ex_level.tolist())):
        g.setdefault((im, lv), []).append(j)
    return {k: np.array(v) for k, v in g.items()}


def levels_batch(groups: dict[tuple[int, int], np.ndarray], batch_size: int, seed: int, step: int,
                 num_levels: int = 5) -> np.ndarray:
    """All levels of ``batch_size // num_levels`` images, shuffled inside the batch (the paper's second sampler).

    The same image with level-j tokens is then a negative for its level-k caption: the within-image contrast
    that teaches the tokens the levels apart. A pass walks every image once in a seeded order and takes one
    caption per (image, level), chosen afresh each pass (an image with several salient words has several
    captions per level; the authors' layout takes the next one each pass). An image missing a level
    contributes fewer captions. ``groups`` comes from ``level_groups``."""
    imgs = np.unique([im for im, _ in groups])
    per = max(1, batch_size // num_levels)
    per_pass = max(1, len(imgs) // per)
    p, i = divmod(step, per_pass)
    chosen = np.random.default_rng([seed, 3, p]).permutation(imgs)[i * per:(i + 1) * per]
    rng = np.random.default_rng([seed, 4, step])
    out = [rng.choice(groups[(im, lv)]) for im in chosen.tolist() for lv in range(1, num_levels + 1)
           if (im, lv) in groups]
    return rng.permutation(np.array(out, dtype=np.int64))


def steps_per_epoch(n_examples: int, batch_size: int) -> int:
    return max(1, n_examples // batch_size)
