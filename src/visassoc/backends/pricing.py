"""What model calls cost: USD per token (built-in OpenAI table plus a backend config's
``prices``), how many input tokens an image is billed as, per provider rule, and how text is
counted in tokens (a real tokenizer when one is at hand offline, else characters / 4).

Used by every backend's usage report, by the run manifest and by ``visassoc estimate``; kept
apart from the providers so a stage or the estimate never depends on one concrete client.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .base import Usage

# USD per 1M tokens (input, output), standard tier; the Batch API costs half.
PRICES_PER_MTOK: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
}
# USD per 1M *cached* input tokens (prompt caching): gpt-4o family half the input price, gpt-4.1 family a quarter.
CACHED_INPUT_PER_MTOK: dict[str, float] = {
    "gpt-4o-mini": 0.075,
    "gpt-4o": 1.25,
    "gpt-4.1": 0.50,
    "gpt-4.1-mini": 0.10,
    "gpt-4.1-nano": 0.025,
}
BATCH_DISCOUNT = 0.5


def price_table(prices: dict | None = None) -> dict[str, tuple[float, float]]:
    """The built-in prices overlaid with a backend config's ``prices`` ({model: [in, out]} or {in/out})."""
    return {**PRICES_PER_MTOK, **{k: tuple(v) if not isinstance(v, dict) else (v["input"], v["output"])
                                  for k, v in (prices or {}).items()}}


def cached_input_price(model: str, prices: dict | None = None, default: float | None = None) -> float | None:
    """USD per 1M cached input tokens: a backend config's ``cached_input`` price, else the built-in one,
    else ``default`` (the plain input price: no discount assumed)."""
    own = {k: v["cached_input"] for k, v in (prices or {}).items() if isinstance(v, dict) and "cached_input" in v}
    priced_by_user = longest_key(model, price_table(prices))
    if priced_by_user in (prices or {}) and priced_by_user not in own:
        return default  # the config set this model's prices but no cached rate: assume no discount
    table = {**CACHED_INPUT_PER_MTOK, **own}
    key = longest_key(model, table)
    return table[key] if key is not None else default


def longest_key(model: str, keys) -> str | None:
    """The longest key that is ``model`` or a dated/variant prefix of it (``gpt-4o-mini-2024-07-18``)."""
    found = [k for k in keys if model == k or model.startswith(k + "-")]
    return max(found, key=len) if found else None


def estimate_cost(model: str, usage: Usage, prices: dict | None = None, batch: bool = False) -> float | None:
    """USD for ``usage`` from the longest price-table key that prefixes ``model``; None if unknown."""
    table = price_table(prices)
    key = longest_key(model, table)
    if key is None:
        return None
    pin, pout = table[key]
    pcached = cached_input_price(model, prices, default=pin)
    cached = min(usage.cached_tokens, usage.prompt_tokens)
    cost = ((usage.prompt_tokens - cached) * pin + cached * pcached + usage.completion_tokens * pout) / 1e6
    return round(cost * (BATCH_DISCOUNT if batch else 1.0), 8)


DEFAULT_IMAGE_TOKENS = 576  # unknown VLM: a 24x24 patch grid (LLaVA-1.5 at 336 px); override it
# ---- image tokens ----------------------------------------------------------------------------
# OpenAI, "Images and vision > Calculating costs" (as documented when this was written):
# tile models: fit in 2048x2048, shrink so the short side is <= 768, count 512-px tiles;
# tokens = base + tiles * per_tile ("low" detail: base only). gpt-4o-mini bills ~33x more
# tokens per image than gpt-4o at a ~17x lower price, i.e. about the same dollars per image.
OPENAI_TILE = {"gpt-4o-mini": (2833, 5667), "gpt-4o": (85, 170), "chatgpt-4o": (85, 170), "gpt-4.1": (85, 170),
               "gpt-4.5": (85, 170), "o1": (75, 150), "o3": (75, 150)}
# patch models: ceil(w/32) * ceil(h/32) patches (capped at 1536, shrinking the image), x multiplier
OPENAI_PATCH = {"gpt-4.1-mini": 1.62, "gpt-4.1-nano": 2.46, "o4-mini": 1.72, "gpt-5-mini": 1.62, "gpt-5-nano": 2.46}
PATCH_CAP = 1536


def _prefix_match(model: str, table: dict) -> str | None:
    """The table key for ``model`` as ``estimate_cost`` finds one, ignoring case and an ``org/`` prefix."""
    return longest_key(model.lower().rsplit("/", 1)[-1], table)


def sent_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """The size of the JPEG we send: shrunk (never enlarged) to ``max_side`` as ``open_rgb`` does."""
    if max(width, height) <= max_side:
        return width, height
    s = max_side / max(width, height)
    return max(1, round(width * s)), max(1, round(height * s))


def _openai_tiles(w: int, h: int) -> int:
    if max(w, h) > 2048:
        s = 2048 / max(w, h)
        w, h = w * s, h * s
    if min(w, h) > 768:
        s = 768 / min(w, h)
        w, h = w * s, h * s
    return math.ceil(w / 512) * math.ceil(h / 512)


def _openai_patches(w: int, h: int) -> int:
    n = math.ceil(w / 32) * math.ceil(h / 32)
    if n <= PATCH_CAP:
        return n
    s = math.sqrt(PATCH_CAP * 32 * 32 / (w * h))
    w2, h2 = w * s, h * s  # then shrink so whole patches fit the cap
    s2 = min(math.floor(w2 / 32) / (w2 / 32), math.floor(h2 / 32) / (h2 / 32))
    return math.ceil(w2 * s2 / 32) * math.ceil(h2 * s2 / 32)


def _qwen_vl_tokens(w: int, h: int, factor: int = 28, min_pixels: int = 56 * 56,
                    max_pixels: int = 12_845_056) -> int:
    """Qwen2-VL / Qwen2.5-VL ``smart_resize`` (14-px patches merged 2x2), plus the 2 vision markers."""
    hb, wb = max(factor, round(h / factor) * factor), max(factor, round(w / factor) * factor)
    if hb * wb > max_pixels:
        beta = math.sqrt(h * w / max_pixels)
        hb, wb = math.floor(h / beta / factor) * factor, math.floor(w / beta / factor) * factor
    elif hb * wb < min_pixels:
        beta = math.sqrt(min_pixels / (h * w))
        hb, wb = math.ceil(h * beta / factor) * factor, math.ceil(w * beta / factor) * factor
    return (hb // factor) * (wb // factor) + 2


def image_rule(model: str, detail: str | None, override: int | None = None) -> str:
    """One line naming the rule ``image_tokens`` applies to ``model``."""
    if override is not None:
        return f"flat {override} tokens per image (--image-tokens)"
    rule = _openai_rule(model)
    if rule and rule[0] == "tile":
        k = rule[1]
        base, tile = OPENAI_TILE[k]
        if detail == "low":
            return f"OpenAI {k}, detail low: {base} tokens per image"
        return f"OpenAI {k} tile rule, detail {detail or 'auto'} (counted as high): {base} + {tile} per 512-px tile"
    if rule:
        k = rule[1]
        return f"OpenAI {k} patch rule: 32-px patches (cap {PATCH_CAP}) x {OPENAI_PATCH[k]}"
    if _is_qwen_vl(model):
        return "Qwen2/2.5-VL rule: (h/28) x (w/28) after smart_resize, + 2"
    return f"unknown VLM: assumed {DEFAULT_IMAGE_TOKENS} tokens per image (set --image-tokens N)"


def _openai_rule(model: str) -> tuple[str, str] | None:
    """("tile" | "patch", key) for the longest table key naming ``model`` (gpt-4.1-mini is a
    patch model although gpt-4.1 is a tile model)."""
    found = [(kind, k) for kind, table in (("tile", OPENAI_TILE), ("patch", OPENAI_PATCH))
             if (k := _prefix_match(model, table))]
    return max(found, key=lambda f: len(f[1])) if found else None


def _is_qwen_vl(model: str) -> bool:
    m = model.lower()
    return "qwen2" in m and "vl" in m


def image_tokens(model: str, width: int, height: int, detail: str | None = None, override: int | None = None) -> int:
    """Input tokens one image of the *sent* size ``width`` x ``height`` costs on ``model``.

    OpenAI tile models (gpt-4o, gpt-4o-mini, gpt-4.1, o1, o3): ``base + tiles * per_tile`` at
    detail high/auto, ``base`` at detail low. OpenAI patch models (gpt-4.1-mini/nano, o4-mini,
    gpt-5-mini/nano): 32-px patches x a per-model multiplier (detail is ignored). Qwen2/2.5-VL
    (e.g. on vLLM): one token per 28x28 pixels after its resize. Anything else:
    ``DEFAULT_IMAGE_TOKENS``. ``override`` wins over every rule.
    """
    if override is not None:
        return int(override)
    rule = _openai_rule(model)
    if rule and rule[0] == "tile":
        base, tile = OPENAI_TILE[rule[1]]
        return base if detail == "low" else base + tile * _openai_tiles(width, height)
    if rule:
        return math.ceil(_openai_patches(width, height) * OPENAI_PATCH[rule[1]])
    if _is_qwen_vl(model):
        return _qwen_vl_tokens(width, height)
    return DEFAULT_IMAGE_TOKENS


# ---- text tokens -----------------------------------------------------------------------------
@dataclass
class TokenCounter:
    """Counts text tokens with a real tokenizer when one is at hand offline, else characters / 4."""

    name: str
    count: Callable[[str], int]
    exact: bool


def _chars4(text: str) -> int:
    return math.ceil(len(text) / 4)


def _tiktoken_cached_file(encoding: str = "o200k_base") -> Path | None:
    """tiktoken's own cache location for an encoding file (never downloads)."""
    import hashlib
    import tempfile

    url = f"https://openaipublic.blob.core.windows.net/encodings/{encoding}.tiktoken"
    root = os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR") or os.path.join(
        tempfile.gettempdir(), "data-gym-cache")
    p = Path(root) / hashlib.sha1(url.encode()).hexdigest()
    return p if p.is_file() else None


def token_counter(tokenizer: str | None = None) -> TokenCounter:
    """``None``/"auto": tiktoken o200k_base if installed *and* already cached, else chars/4;
    "chars": chars/4; anything else: a Hugging Face ``tokenizer.json`` (or a folder holding one)."""
    if tokenizer in (None, "", "auto"):
        try:
            import tiktoken  # optional, not a dependency; it would download a missing encoding file
        except ImportError:
            return TokenCounter("chars/4 (no tokenizer available offline)", _chars4, False)
        if _tiktoken_cached_file() is None:
            return TokenCounter("chars/4 (tiktoken installed but o200k_base is not cached)", _chars4, False)
        enc = tiktoken.get_encoding("o200k_base")
        return TokenCounter("tiktoken o200k_base", lambda t: len(enc.encode(t, disallowed_special=())), True)
    if tokenizer == "chars":
        return TokenCounter("chars/4", _chars4, False)
    p = Path(tokenizer)
    if p.is_dir():
        p = p / "tokenizer.json"
    if not p.is_file():
        raise ValueError(f"tokenizer not found: {tokenizer} (a tokenizer.json file or a folder holding one)")
    from tokenizers import Tokenizer

    try:
        tok = Tokenizer.from_file(str(p))
    except Exception as e:  # noqa: BLE001 - any parse failure is one bad file
        raise ValueError(f"cannot read tokenizer {p}: {str(e).splitlines()[0][:120]}") from None
    return TokenCounter(f"tokenizer {p}", lambda t: len(tok.encode(t, add_special_tokens=False).ids), True)
