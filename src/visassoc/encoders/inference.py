"""Batched, normalised embeddings from a (trained or base) encoder, for evaluation and search."""
from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from visassoc.encoders.distance_tokens import PromptedEncoder
from visassoc.images import open_rgb


def image_error(path: str) -> str | None:
    """None if the image decodes, else a one-line reason."""
    try:
        open_rgb(path)
        return None
    except Exception as e:  # noqa: BLE001 - any decoder failure makes the image unusable
        return f"{type(e).__name__}: {e}".splitlines()[0]


@torch.no_grad()
def embed_texts(enc: PromptedEncoder, texts: list[str], batch_size: int = 128, desc: str = "embed texts") -> np.ndarray:
    dev = enc.prompts.device
    out = []
    for s in tqdm(range(0, len(texts), batch_size), desc=desc, unit="batch", disable=len(texts) <= batch_size):
        tok = {k: v.to(dev) for k, v in enc.backbone.tokenize(texts[s:s + batch_size]).items()}
        out.append(torch.nn.functional.normalize(enc.text_features(**tok).float(), dim=-1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


@torch.no_grad()
def embed_images(enc: PromptedEncoder, paths: list[str], level: int | None = None, batch_size: int = 32,
                 desc: str = "embed images") -> np.ndarray:
    """``level`` 1..L uses that level's prompt tokens; None is the baseline (no tokens)."""
    dev = enc.prompts.device
    out = []
    for s in tqdm(range(0, len(paths), batch_size), desc=desc, unit="batch", disable=len(paths) <= batch_size):
        ims = [open_rgb(p) for p in paths[s:s + batch_size]]
        px = enc.backbone.processor(images=ims, return_tensors="pt")["pixel_values"].to(dev)
        out.append(torch.nn.functional.normalize(enc.image_features(px, level).float(), dim=-1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)
