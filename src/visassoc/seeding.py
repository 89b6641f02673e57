"""Order-independent seeding: each item's randomness depends only on (seed, key)."""
from __future__ import annotations

import hashlib
import random


def item_rng(seed: int, *key: object) -> random.Random:
    digest = hashlib.sha256(("\x1f".join([str(seed), *map(str, key)])).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def seed_everything(seed: int) -> None:
    import numpy as np

    random.seed(seed)
    np.random.seed(seed % (2**32))
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:
        pass
