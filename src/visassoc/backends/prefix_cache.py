"""Prompt-prefix caching as providers do it, to count how much input a request order leaves uncached.

OpenAI caches a prompt prefix once it is at least 1024 tokens long, in 128-token steps, and a
later request reuses the longest cached prefix; vLLM's automatic prefix caching does the same in
16-token blocks from the first block. ``PrefixCache`` models both: a request's tokens are cut
into blocks, each block is keyed by the hash of everything up to its end (a hash chain, as
vLLM does), and a request is served from cache for the longest run of leading blocks that an
earlier request, among the last ``window`` ones, also sent. ``savings`` prices a request
stream with and without that discount. Images count as a run of tokens unique to the image,
so two requests about the same image share them and requests about different images do not.
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

OPENAI = {"block": 128, "min_tokens": 1024}
VLLM = {"block": 16, "min_tokens": 16}


class PrefixCache:
    def __init__(self, window: int = 64, block: int = 128, min_tokens: int = 1024):
        self.window, self.block, self.min_tokens = window, block, min_tokens
        self._recent: OrderedDict[int, set[bytes]] = OrderedDict()  # request number -> its block keys
        self._count: dict[bytes, int] = {}
        self._n = 0

    def _keys(self, tokens: Sequence) -> list[bytes]:
        keys, h = [], hashlib.blake2b(digest_size=16)
        for end in range(self.block, len(tokens) + 1, self.block):
            h.update(repr(tuple(tokens[end - self.block:end])).encode())
            keys.append(h.copy().digest())
        return keys

    def request(self, tokens: Sequence) -> int:
        """Send one request; return how many of its leading tokens were cached."""
        keys = self._keys(tokens)
        hit = 0
        for k in keys:
            if self._count.get(k):
                hit += 1
            else:
                break
        cached = hit * self.block
        cached = cached if cached >= self.min_tokens else 0
        self._n += 1
        self._recent[self._n] = set(keys)
        for k in keys:
            self._count[k] = self._count.get(k, 0) + 1
        while len(self._recent) > self.window:
            _, old = self._recent.popitem(last=False)
            for k in old:
                self._count[k] -= 1
        return cached


@dataclass
class Savings:
    requests: int
    input_tokens: int
    cached_tokens: int
    cost_uncached_usd: float | None  # every input token at the input price
    cost_cached_usd: float | None  # cached tokens at the cached price

    @property
    def cacheable_share(self) -> float:
        return self.cached_tokens / self.input_tokens if self.input_tokens else 0.0


def savings(requests: Iterable[Sequence], price_in: float | None = None, price_cached: float | None = None,
            window: int = 64, block: int = 128, min_tokens: int = 1024) -> Savings:
    """Run ``requests`` (token sequences, in dispatch order) through a ``PrefixCache``; input cost at
    USD per 1M tokens ``price_in`` (all uncached) and with the cached part at ``price_cached``."""
    cache = PrefixCache(window, block, min_tokens)
    n = total = cached = 0
    for toks in requests:
        n += 1
        total += len(toks)
        cached += cache.request(toks)
    cost = None if price_in is None else total * price_in / 1e6
    cost_c = None if price_in is None else ((total - cached) * price_in + cached * (price_cached or price_in)) / 1e6
    return Savings(n, total, cached, cost, cost_c)


def cacheable(prefix_tokens: int, block: int = 128, min_tokens: int = 1024) -> int:
    """Tokens of a shared prefix a provider can serve from cache (whole blocks, at least ``min_tokens``)."""
    n = (int(prefix_tokens) // block) * block
    return n if n >= min_tokens else 0


def grouped_savings(images: int, requests_per_image: float, prefix_tokens: float, suffix_tokens: float,
                    price_in: float | None = None, price_cached: float | None = None,
                    block: int = 128, min_tokens: int = 1024) -> Savings:
    """The closed form of ``savings`` when each image's requests go out together (visassoc's order)
    and share a prefix (system text, image, fixed instructions) followed by a variable suffix:
    every request but an image's first reads the prefix from cache. For ``estimate`` at any scale."""
    n = images * requests_per_image
    total = n * (prefix_tokens + suffix_tokens)
    cached = images * max(requests_per_image - 1, 0) * cacheable(prefix_tokens, block, min_tokens)
    cost = None if price_in is None else total * price_in / 1e6
    cost_c = None if price_in is None else ((total - cached) * price_in + cached * (price_cached or price_in)) / 1e6
    return Savings(round(n), round(total), round(cached), cost, cost_c)


def common_prefix(a: Sequence, b: Sequence) -> int:
    """Length of the shared start of two token sequences (a prompt rendered for two different words)."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def group_by_image(requests: list) -> list:
    """Requests with an ``image_id``, each image's together, images in first-seen order (stable):
    the order that lets a provider's prefix cache hit (``batch export`` lines, dispatch)."""
    first: dict = {}
    for r in requests:
        first.setdefault(getattr(r, "image_id", None), len(first))
    return sorted(requests, key=lambda r: first[getattr(r, "image_id", None)])


def shared_prefix_tokens(a: list, b: list, count_text: Callable[[str], int], image_tokens: int) -> tuple[int, int]:
    """(tokens ``a`` and ``b`` share from the start, tokens of ``a``) for two requests about one image,
    e.g. the caption prompt rendered for two words. Messages are walked as the OpenAI body orders
    them (a message's images, then its text); an image counts ``image_tokens``. For ``estimate``:
    feed the result to ``grouped_savings``."""
    total = sum(len(m.images) * image_tokens + count_text(m.text) for m in a)
    shared = 0
    for ma, mb in zip(a, b):
        if ma.role != mb.role or len(ma.images) != len(mb.images) or [str(x) for x in ma.images] != [str(x) for x in mb.images]:
            break
        shared += len(ma.images) * image_tokens
        if ma.text != mb.text:
            n = 0
            while n < min(len(ma.text), len(mb.text)) and ma.text[n] == mb.text[n]:
                n += 1
            shared += count_text(ma.text[:n])
            break
        shared += count_text(ma.text)
    return shared, total
