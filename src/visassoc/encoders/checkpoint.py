"""Encoder checkpoints: ``encoder.json`` (how to rebuild) + ``weights.safetensors`` (only what was trained).

A real backbone is referenced by its HF id or local dir, never copied; a tiny random backbone is saved
whole under ``base/`` (a few MB) because nothing else could rebuild it bit for bit.
"""
from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import load_file, save_file

from visassoc.encoders.models import Backbone, load_backbone, resolve_device, save_backbone
from visassoc.encoders.distance_tokens import PromptedEncoder

FORMAT = "visassoc-encoder/1"


def encoder_spec(enc: PromptedEncoder, unfreeze_last: int = 0, lora_rank: int = 0, lora_alpha: int = 16) -> dict:
    return {"format": FORMAT, "base": enc.backbone.name, "family": enc.family,
            "tokens_per_level": enc.tokens_per_level, "num_levels": enc.num_levels, "position": enc.position,
            "unfreeze_last": unfreeze_last, "lora_rank": lora_rank, "lora_alpha": lora_alpha}


def save_encoder(enc: PromptedEncoder, out_dir: str | Path, spec: dict) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    spec = dict(spec)
    if enc.backbone.is_tiny:
        if not (out / "base" / "config.json").exists():
            clean = type(enc.model)(enc.model.config)
            clean.load_state_dict(enc.pristine)
            save_backbone(Backbone(clean, *[getattr(enc.backbone, f) for f in
                                            ("tokenizer", "processor", "family", "name", "text_max_length",
                                             "pad_to_max")]), out / "base")
        spec["base_dir"] = "base"
    save_file({k: v.contiguous() for k, v in enc.trainable_state().items()}, str(out / "weights.safetensors"))
    (out / "encoder.json").write_text(json.dumps(spec, indent=2) + "\n")
    return out


def read_spec(ckpt_dir: str | Path) -> dict:
    f = Path(ckpt_dir) / "encoder.json"
    if not f.is_file():
        raise FileNotFoundError(f"{ckpt_dir}: no encoder.json (not a visassoc checkpoint; train one with `visassoc train`)")
    spec = json.loads(f.read_text())
    if spec.get("format") != FORMAT:
        raise ValueError(f"{f}: unsupported checkpoint format {spec.get('format')!r}")
    return spec


def base_ref(ckpt_dir: str | Path, spec: dict) -> str:
    return str(Path(ckpt_dir) / spec["base_dir"]) if spec.get("base_dir") else spec["base"]


def load_encoder(ckpt_dir: str | Path, device: str = "auto", trained: bool = True, quiet: bool = False) -> PromptedEncoder:
    """Rebuild the encoder; ``trained=False`` gives the untouched base model (the paper's baseline)."""
    spec = read_spec(ckpt_dir)
    bb = load_backbone(base_ref(ckpt_dir, spec), device=device, quiet=quiet)
    enc = PromptedEncoder(bb, spec["tokens_per_level"], spec["num_levels"], spec["position"])
    if trained:
        enc.configure_trainable(spec["unfreeze_last"], spec["lora_rank"], spec["lora_alpha"])
        state = load_file(str(Path(ckpt_dir) / "weights.safetensors"))
        want = set(enc.trainable_state())
        if set(state) != want:
            raise ValueError(f"{ckpt_dir}: weights do not match encoder.json ({len(state)} vs {len(want)} tensors)")
        enc.load_trainable_state(state)
    for p in enc.parameters():
        p.requires_grad_(False)
    return enc.to(resolve_device(device)).eval()


def fingerprint(ckpt_dir: str | Path | None = None, model: str | None = None) -> str:
    """Stable id of an encoder, for embedding caches."""
    import hashlib

    h = hashlib.sha256()
    if ckpt_dir:
        for name in ("encoder.json", "weights.safetensors"):
            h.update((Path(ckpt_dir) / name).read_bytes())
    else:
        h.update(str(model).encode())
    return h.hexdigest()[:16]

