"""Which encoder references can load without the network, answered before torch is imported.

visassoc never downloads models (Hugging Face libraries are put offline in ``visassoc/__init__``):
a model is a bundled tiny random one, a local folder, or an id already in the local HF cache.
Checking that first lets ``train --model nosuch/model`` fail in one line in about the time of
``import huggingface_hub``, not after importing torch and transformers.
"""
from __future__ import annotations

from pathlib import Path

TINY_MODELS = {"tiny-random-clip": "clip", "tiny-random-siglip": "siglip"}


def require_local_model(name: str) -> None:
    """Raise ValueError (one line) unless ``name`` can be loaded offline."""
    if name in TINY_MODELS or Path(name).exists():
        return
    from huggingface_hub import try_to_load_from_cache

    try:
        cached = try_to_load_from_cache(name, "config.json")
    except ValueError:  # not even a valid repo id
        cached = None
    if not isinstance(cached, str):
        raise ValueError(not_available(name))


def not_available(name: str) -> str:
    return (f"cannot load model {name!r}: not a local folder with config.json nor a model in the local Hugging "
            "Face cache (visassoc does not download; fetch it with `hf download` or pass a folder)")
