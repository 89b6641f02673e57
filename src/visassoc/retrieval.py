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


def _column_counts(m: np.ndarray) -> np.ndarray:
    """True values per column of a bool matrix: uint8 sums over 255-row blocks (no cast of every
    element to int64, about 4x faster), accumulated in int64."""
    u = m.view(np.uint8)
    out = np.zeros(m.shape[1], dtype=np.int64)
    for i in range(0, m.shape[0], 255):
        out += u[i:i + 255].sum(0, dtype=np.uint8)
    return out


def ranks(scores: np.ndarray, positives: list[list[int]], rows: list[int] | np.ndarray | None = None,
          chunk: int = 1024) -> np.ndarray:
    """1-based rank of each query row in ``rows`` (default: all rows that have positives).

    One comparison pass per query row; the best positive is gathered, not found by masking the row. A
    transposed view (i2t on a texts x images matrix) is compared column-wise on the original memory.
    """
    A = np.asarray(scores)
    if A.ndim != 2:
        raise ValueError("scores must be a 2-D (queries x gallery) matrix")
    if rows is None:
        rows = [i for i, p in enumerate(positives) if p]
    rows = np.asarray(rows, dtype=np.int64)
    n_pos = np.array([len(positives[i]) for i in rows], dtype=np.int64)
    if len(rows) and n_pos.min() == 0:
        raise ValueError("every ranked query needs at least one positive")
    flip = A.flags.f_contiguous and not A.flags.c_contiguous  # a .T view: work on A.T (C-ordered)
    out = np.empty(len(rows), dtype=np.int64)
    buf = None if flip else np.empty((min(chunk, len(rows)), A.shape[1]), bool)
    buf_t = np.empty((A.shape[1], min(chunk, len(rows))), bool) if flip else None
    for s in range(0, len(rows), chunk):
        r, npos = rows[s:s + chunk], n_pos[s:s + chunk]
        qi = np.repeat(np.arange(len(r)), npos)
        ci = np.fromiter((c for i in r for c in positives[i]), dtype=np.int64, count=int(npos.sum()))
        vals = A[r[qi], ci]
        best = np.full(len(r), -np.inf, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            np.maximum.at(best, qi, vals)
        best = best.astype(A.dtype)
        run = r[-1] - r[0] == len(r) - 1  # sorted contiguous rows: a view, no copy
        if flip:
            block = A.T[:, r[0]:r[-1] + 1] if run else A.T[:, r]
            m = buf_t[:, :len(r)] if buf_t is not None else np.empty(block.shape, bool)
            np.greater_equal(block, best[None, :], out=m)
            n_ge = _column_counts(m)
        else:
            block = A[r[0]:r[-1] + 1] if run else A[r]
            m = buf[:len(r)]
            np.greater_equal(block, best[:, None], out=m)
            n_ge = np.count_nonzero(m, axis=1).astype(np.int64)
        if np.isnan(block.sum()) and np.isnan(block).any():  # the cheap sum only flags; isnan confirms
            raise ValueError("scores contain NaN")
        pos_ge = np.bincount(qi[vals >= best[qi]], minlength=len(r))
        out[s:s + len(r)] = 1 + n_ge - pos_ge
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
    for name, fn in stats.items():
        res[name] = float(fn(rk))
    if n_boot:
        rng = np.random.default_rng(seed)
        boot = {name: [] for name in stats}
        for i in range(0, n_boot, 100):  # one gather per block of resamples, all statistics from it
            x = rk[rng.integers(0, n, size=(min(100, n_boot - i), n))]
            for name, fn in stats.items():
                boot[name].append(fn(x))
        res["ci95"] = {name: [float(np.percentile(np.concatenate(b), 2.5)), float(np.percentile(np.concatenate(b), 97.5))]
                       for name, b in boot.items()}
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
