"""Contrastive losses on L2-normalised embeddings, using the backbone's own (frozen) scale and bias.

``ignore`` marks off-diagonal pairs that are not true negatives; they are left out of the loss instead of
being pushed apart. Which pairs those are is ``pair_mask``'s job.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


MASKS = ("target", "image", "none")


def pair_mask(image: torch.Tensor, level: torch.Tensor, text: torch.Tensor, mode: str = "target") -> torch.Tensor | None:
    """Pairs (i, j) of a batch that are the same target and so must not be negatives of each other.

    ``target``: same image AND same level (the image input is then identical), or identical caption text.
    The same image at another level stays a negative: an image with level-j tokens must score its level-k
    caption lower than its level-j one, which is what teaches the tokens the levels apart.
    ``image``: the earlier rule (same image at any level, or same text), kept to measure what it cost.
    ``none``: no mask, as in the authors' released loss."""
    if mode == "none":
        return None
    same_img = image[:, None] == image[None, :]
    if mode == "target":
        same_img = same_img & (level[:, None] == level[None, :])
    elif mode != "image":
        raise ValueError(f"loss mask must be one of {MASKS}, got {mode!r}")
    return same_img | (text[:, None] == text[None, :])


def clip_loss(img: torch.Tensor, txt: torch.Tensor, logit_scale: torch.Tensor,
              ignore: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE, logits = exp(logit_scale) * img @ txt.T (scale clamped at 100 as in CLIP)."""
    logits = logit_scale.exp().clamp(max=100) * img @ txt.T
    if ignore is not None:
        eye = torch.eye(len(img), dtype=torch.bool, device=img.device)
        logits = logits.masked_fill(ignore & ~eye, float("-inf"))
    target = torch.arange(len(img), device=img.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def siglip_loss(img: torch.Tensor, txt: torch.Tensor, logit_scale: torch.Tensor, logit_bias: torch.Tensor,
                ignore: torch.Tensor | None = None) -> torch.Tensor:
    """Pairwise sigmoid loss (Zhai et al. 2023): -sum log sigmoid(z_ij * (t*x_i.y_j + b)) / batch."""
    logits = txt @ img.T * logit_scale.exp() + logit_bias
    eye = torch.eye(len(img), device=img.device)
    loglik = F.logsigmoid((2 * eye - 1) * logits)
    if ignore is not None:
        loglik = loglik.masked_fill(ignore.T & ~eye.bool(), 0.0)
    return -loglik.sum() / len(img)


def contrastive_loss(model, family: str, img: torch.Tensor, txt: torch.Tensor,
                     ignore: torch.Tensor | None = None) -> torch.Tensor:
    """Normalise, then the family's loss with the model's scale (and SigLIP's bias)."""
    img, txt = F.normalize(img, dim=-1), F.normalize(txt, dim=-1)
    if family == "siglip":
        return siglip_loss(img, txt, model.logit_scale, model.logit_bias, ignore)
    return clip_loss(img, txt, model.logit_scale, ignore)
