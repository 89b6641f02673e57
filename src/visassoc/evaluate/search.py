"""Creative search: rank a photo collection for a poem, a metaphor or a mood with a level's prompt tokens.

Image embeddings are cached per (encoder, level) under ``cache_dir()/search`` and keyed by each file's
absolute path, size and mtime, so a second query over the same folder only embeds the new or changed files.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from filelock import FileLock

from visassoc.images import IMAGE_SUFFIXES
from visassoc.lexicon import cache_dir
from visassoc.encoders.checkpoint import fingerprint, load_encoder
from visassoc.encoders.inference import embed_images, embed_texts, image_error
from visassoc.encoders.models import load_backbone
from visassoc.encoders.distance_tokens import PromptedEncoder



@dataclass
class SearchHit:
    rank: int
    path: str
    score: float  # cosine similarity


@dataclass
class SearchResult:
    query: str
    level: int | None
    hits: list[SearchHit]
    n_images: int
    skipped: list[dict] = field(default_factory=list)  # unreadable files, with the reason
    n_embedded: int = 0  # images embedded by this call (the rest came from the cache)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)


def list_images(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"--images must be a folder of images: {folder}")
    return sorted(p.resolve() for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _cached_embeddings(enc: PromptedEncoder, key: str, level: int | None, paths: list[Path],
                       batch_size: int, use_cache: bool) -> tuple[np.ndarray, list[int], list[dict], int]:
    """Embeddings for the readable ``paths`` (their indices returned), reusing and updating the cache."""
    d = cache_dir() / "search" / key
    d.mkdir(parents=True, exist_ok=True)
    f = d / f"level-{level if level else 'baseline'}.npz"
    stamp = {str(p): [p.stat().st_size, p.stat().st_mtime_ns] for p in paths}
    with FileLock(str(f) + ".lock"):
        old: dict[str, tuple[list, np.ndarray]] = {}
        if use_cache and f.exists():
            z = np.load(f, allow_pickle=False)
            for p, st, e in zip(json.loads(str(z["paths"])), json.loads(str(z["stamps"])), z["emb"]):
                old[p] = (st, e)
        todo, skipped = [], []
        for i, p in enumerate(paths):
            s = str(p)
            if not (s in old and old[s][0] == stamp[s]):
                err = image_error(s)
                if err:
                    skipped.append({"path": s, "reason": err})
                else:
                    todo.append(s)
        if todo:
            new = embed_images(enc, todo, level, batch_size, desc=f"embed images (level {level or 'baseline'})")
            for s, e in zip(todo, new):
                old[s] = (stamp[s], e)
        if use_cache and todo:
            keys = sorted(old)
            np.savez(f, paths=json.dumps(keys), stamps=json.dumps([old[k][0] for k in keys]),
                     emb=np.stack([old[k][1] for k in keys]))
    bad = {s["path"] for s in skipped}
    keep = [i for i, p in enumerate(paths) if str(p) not in bad]
    emb = np.stack([old[str(paths[i])][1] for i in keep]) if keep else np.zeros((0, 1), np.float32)
    return emb, keep, skipped, len(todo)


def search(images: str | Path, query: str, ckpt: str | Path | None = None, model: str | None = None,
           level: int | None = None, top: int = 10, batch_size: int = 32, use_cache: bool = True,
           device: str = "auto") -> SearchResult:
    """Top ``top`` images of the folder for ``query``. With ``ckpt``, ``level`` 1..5 picks the distance tokens
    (None = baseline, no tokens); with a plain ``model`` only the baseline exists."""
    if not query.strip():
        raise ValueError("empty query")
    if (ckpt is None) == (model is None):
        raise ValueError("give exactly one of ckpt or model")
    if ckpt:
        enc = load_encoder(ckpt, device)
        if level is not None and not 1 <= level <= enc.num_levels:
            raise ValueError(f"level must be in 1..{enc.num_levels}")
        key = fingerprint(ckpt_dir=ckpt)
    else:
        if level is not None:
            raise ValueError("--level needs a trained --ckpt (a plain model has no distance tokens)")
        enc, key = PromptedEncoder(load_backbone(model, device), 0), fingerprint(model=model)
    paths = list_images(images)
    emb, keep, skipped, n_new = _cached_embeddings(enc, key, level, paths, batch_size, use_cache)
    hits = []
    if keep:
        scores = emb @ embed_texts(enc, [query])[0]
        order = np.argsort(-scores, kind="stable")[:top]
        hits = [SearchHit(r + 1, str(paths[keep[i]]), float(scores[i])) for r, i in enumerate(order)]
    return SearchResult(query, level, hits, len(paths), skipped, n_new)
