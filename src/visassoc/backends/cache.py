"""A persistent cache of model calls (curator/distilabel style).

Key = sha256 of the backend identity (provider, model, base URL, ...), the messages (text and
the sha256 of each image), the JSON schema and the generation params. A re-run, or a run
whose downstream config changed, gets identical answers without calling the model again.
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from dataclasses import asdict
from pathlib import Path

from .base import Backend, Call, Generation, GenParams, Message, Usage, generate_all


def _image_digest(img) -> str:
    data = img if isinstance(img, (bytes, bytearray)) else Path(img).read_bytes()
    return hashlib.sha256(data).hexdigest()


def _params(params: GenParams | None) -> dict | None:
    """The params as keyed; a field added later is left out while it holds its neutral default, so
    adding one never invalidates the answers already cached."""
    if params is None:
        return None
    d = asdict(params)
    if d.get("response_format") is None:
        d.pop("response_format", None)
    return d


def call_key(identity: dict, messages: list[Message], schema: dict | None, params: GenParams | None) -> str:
    payload = {
        "backend": identity,
        "messages": [{"role": m.role, "text": m.text, "images": [_image_digest(i) for i in m.images]} for m in messages],
        "schema": schema,
        "params": _params(params),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


class CallCache:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS calls (key TEXT PRIMARY KEY, text TEXT, usage TEXT)")
        self._db.commit()
        self.hits = self.misses = 0

    def get(self, key: str) -> tuple[str, dict] | None:
        with self._lock:
            row = self._db.execute("SELECT text, usage FROM calls WHERE key=?", (key,)).fetchone()
        if row is None:
            self.misses += 1
            return None
        self.hits += 1
        return row[0], json.loads(row[1])

    def put(self, key: str, text: str, usage: Usage) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO calls VALUES (?,?,?)", (key, text, json.dumps(asdict(usage))))
            self._db.commit()


class CachedBackend:
    """Wraps any Backend; only successful answers (no transport error) are cached.
    Parsing is re-done on a hit, so a schema change never serves a stale parsed object."""

    def __init__(self, inner: Backend, cache: CallCache, cache_only: bool = False):
        self.inner, self.cache, self.cache_only = inner, cache, cache_only
        self.provider, self.model = inner.provider, inner.model
        self.supports_images = getattr(inner, "supports_images", False)

    def identity(self) -> dict:
        return self.inner.identity()

    def _from_cache(self, text: str, schema: dict | None) -> Generation:
        from .jsonparse import parse_and_validate

        gen = Generation(text=text, usage=Usage())  # a hit costs no tokens
        if schema is not None:
            try:
                gen.parsed = parse_and_validate(text, schema)
            except ValueError as e:
                gen.error = str(e)
        return gen

    def _store(self, key: str, gen: Generation) -> None:
        # an empty text is a transport failure (timeout, 5xx after retries): never cache it;
        # a non-empty answer that failed validation is the model's real answer and is cached
        # (a re-ask carries the feedback in its prompt, so it has another key).
        if gen.text:
            self.cache.put(key, gen.text, gen.usage)

    def generate(self, messages: list[Message], *, schema: dict | None = None, params: GenParams | None = None) -> Generation:
        return self.generate_many([(messages, schema, params)])[0]

    def generate_many(self, calls: list[tuple], desc: str | None = None, **_: object) -> list[Generation]:
        """Cached answers first; the misses go to the inner backend as one concurrent/batched call."""
        ident = self.identity()
        keys = [call_key(ident, m, s, p) for m, s, p in calls]
        out: list[Generation | None] = [None] * len(calls)
        miss = []
        for i, key in enumerate(keys):
            hit = self.cache.get(key)
            if hit is None:
                miss.append(i)
            else:
                out[i] = self._from_cache(hit[0], calls[i][1])
        if miss and self.cache_only:
            for i in miss:
                out[i] = Generation(text="", error="no cached answer (cache-only run: batch line missing or re-ask needed)")
            miss = []
        if miss:
            todo = [Call(key=keys[i], members=[], messages=calls[i][0], schema=calls[i][1], params=calls[i][2] or GenParams()) for i in miss]
            for i, gen in zip(miss, generate_all(self.inner, todo, desc or self.model)):
                out[i] = gen
                self._store(keys[i], gen)
        return out  # type: ignore[return-value]

    def __getattr__(self, name):  # usage(), close(), concurrency, ... pass through
        return getattr(self.inner, name)
