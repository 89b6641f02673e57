"""Full-gallery retrieval metrics with several positives per query, vectorised.

Definitions (the tests check them against brute force):
- rank of a query = 1 + number of *non-positive* gallery items scoring >= its best-scoring positive.
  Ties go against the model (a constant scorer gets the worst rank, not the best), and one query is
  "found at k" when any positive is in the top k.
- R@k = fraction of queries with rank <= k; mean / median rank over queries.
- Queries without positives have no rank; callers exclude and count them.
"""
from __future__ import annotations

import numpy as np

KS = (1, 5, 10, 20)


def invert_positives(positives: list[list[int]], n_items: int) -> list[list[int]]:
    """Text->image positives into image->text positives."""
    out: list[list[int]] = [[] for _ in range(n_items)]
    for t, cols in enumerate(positives):
        for c in cols:
            out[c].append(t)
    return out


def ranks(scores: np.ndarray, positives: list[list[int]], rows: list[int] | np.ndarray | None = None,
          chunk: int = 1024) -> np.ndarray:
    """1-based rank of each query row in ``rows`` (default: all rows that have positives)."""
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError("scores must be a 2-D (queries x gallery) matrix")
    if rows is None:
        rows = [i for i, p in enumerate(positives) if p]
    rows = np.asarray(rows, dtype=np.int64)
    out = np.empty(len(rows), dtype=np.int64)
    for s in range(0, len(rows), chunk):
        r = rows[s:s + chunk]
        block = scores[r]
        if np.isnan(block).any():
            raise ValueError("scores contain NaN")
        mask = np.zeros(block.shape, dtype=bool)
        qi = np.repeat(np.arange(len(r)), [len(positives[i]) for i in r])
        ci = np.fromiter((c for i in r for c in positives[i]), dtype=np.int64, count=len(qi))
        if len(qi) == 0 or np.bincount(qi, minlength=len(r)).min() == 0:
            raise ValueError("every ranked query needs at least one positive")
        mask[qi, ci] = True
        best = np.where(mask, block, -np.inf).max(axis=1, keepdims=True)
        ge = block >= best
        out[s:s + len(r)] = 1 + ge.sum(1) - (ge & mask).sum(1)
    return out


def summarize(rk: np.ndarray, ks=KS, n_boot: int = 1000, seed: int = 0) -> dict:
    """R@k, mean and median rank, each with a percentile-bootstrap 95% CI over queries."""
    rk = np.asarray(rk, dtype=np.float64)
    n = len(rk)
    res: dict = {"n": int(n)}
    if n == 0:
        return res
    stats = {f"R@{k}": lambda x, k=k: (x <= k).mean(-1) for k in ks}
    stats["mean_rank"] = lambda x: x.mean(-1)
    stats["median_rank"] = lambda x: np.median(x, -1)
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n)) if n_boot else None
    ci = {}
    for name, fn in stats.items():
        res[name] = float(fn(rk))
        if idx is not None:
            boot = np.concatenate([fn(rk[idx[i:i + 100]]) for i in range(0, n_boot, 100)])
            ci[name] = [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))]
    if ci:
        res["ci95"] = ci
    return res


def retrieval_metrics(scores: np.ndarray, positives: list[list[int]], text_rows=None, image_rows=None,
                      n_boot: int = 1000, seed: int = 0) -> dict:
    """Both directions over the full gallery: t2i on ``scores`` (texts x images), i2t on its transpose.

    ``text_rows`` / ``image_rows`` restrict the *queries* (e.g. the test split); the gallery is always full.
    """
    img_pos = invert_positives(positives, scores.shape[1])
    trows = [i for i in (range(len(positives)) if text_rows is None else text_rows) if positives[i]]
    irows = [i for i in (range(scores.shape[1]) if image_rows is None else image_rows) if img_pos[i]]
    return {
        "t2i": summarize(ranks(scores, positives, trows), n_boot=n_boot, seed=seed),
        "i2t": summarize(ranks(scores.T, img_pos, irows), n_boot=n_boot, seed=seed),
    }


def pairwise_accuracy(scores: np.ndarray, pairs: list[tuple[int, int, int]], n_boot: int = 1000,
                      seed: int = 0) -> dict:
    """Fraction of (text, better image, worse image) triples where the better image scores higher; a tie
    counts one half (chance), so a constant scorer gets 0.5."""
    if not pairs:
        return {"n": 0}
    p = np.asarray(pairs, dtype=np.int64)
    a, b = scores[p[:, 0], p[:, 1]], scores[p[:, 0], p[:, 2]]
    hit = (a > b).astype(np.float64) + 0.5 * (a == b)
    res = {"n": len(p), "accuracy": float(hit.mean())}
    if n_boot:
        idx = np.random.default_rng(seed).integers(0, len(hit), size=(n_boot, len(hit)))
        boot = hit[idx].mean(1)
        res["ci95"] = {"accuracy": [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))]}
    return res
