"""``evaluate``: score a benchmark with the baseline and every level, pick the best level on a validation
split of the queries, report test-split metrics, and save every score matrix so anyone can recompute them.

Files in ``out``: results.json, results.md, meta.json, texts.json, images.json, positives.json, split.json,
missing.json, and scores-<variant>.npy (texts x images; rows in texts.json order, columns in images.json).
The paper's MultiM-Poem protocol saves blocks.json and block-scores-<variant>.npy instead (see ``evaluate``).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from visassoc.encoders.checkpoint import load_encoder
from visassoc.encoders.inference import embed_images, embed_texts
from visassoc.encoders.models import load_backbone
from visassoc.encoders.distance_tokens import PromptedEncoder

from .benchmarks import Benchmark, load_benchmark
from visassoc.retrieval import pairwise_accuracy, ranks, retrieval_metrics, summarize


def split_queries(n_texts: int, n_images: int, val_fraction: float, seed: int) -> dict:
    """Disjoint val/test query sets for each direction (the gallery stays full)."""
    out = {}
    for name, n in (("texts", n_texts), ("images", n_images)):
        order = np.random.default_rng([seed, len(name)]).permutation(n)
        k = int(round(val_fraction * n)) if val_fraction > 0 else 0
        out[f"val_{name}"], out[f"test_{name}"] = sorted(order[:k].tolist()), sorted(order[k:].tolist())
    return out


PROTOCOLS = ("full", "paper")
PAPER_BLOCK = 512  # the authors' eval_poems.py fills 512x512 diagonal blocks of the similarity matrix
PAPER_DIRECTION = {"multim-poem": "t2i", "haivmet": "i2t"}


def _score(bench: Benchmark, scores: np.ndarray, split: dict, part: str, n_boot: int, seed: int) -> dict:
    if bench.pairs is not None:
        keep = set(split[f"{part}_texts"])
        return pairwise_accuracy(scores, [p for p in bench.pairs if p[0] in keep], n_boot=n_boot, seed=seed)
    return retrieval_metrics(scores, bench.positives, split[f"{part}_texts"], split[f"{part}_images"],
                             n_boot=n_boot, seed=seed)


def block_layout(positives: list[list[int]], size: int = PAPER_BLOCK) -> list[dict]:
    """The paper's MultiM-Poem blocks: the poems that have an image, in dataset order, cut into runs of
    ``size``; each block pairs its poems (rows) with their own images (columns), in the same order."""
    items = [i for i, p in enumerate(positives) if p]
    if any(len(positives[i]) != 1 for i in items):
        raise ValueError("the paper protocol needs exactly one image per text")
    return [{"texts": items[s:s + size], "images": [positives[i][0] for i in items[s:s + size]]}
            for s in range(0, len(items), size)]


def block_scores(t: np.ndarray, im: np.ndarray, blocks: list[dict], size: int) -> np.ndarray:
    """(poems in blocks) x ``size``: row k = poem k's scores against its block's images, NaN-padded."""
    out = np.full((sum(len(b["texts"]) for b in blocks), size), np.nan, np.float32)
    k = 0
    for b in blocks:
        n = len(b["texts"])
        out[k:k + n, :n] = t[b["texts"]] @ im[b["images"]].T
        k += n
    return out


def block_ranks(scores: np.ndarray, blocks: list[dict]) -> np.ndarray:
    """Rank of each poem's own image among the images of its block (ties against the model)."""
    out, k = [], 0
    for b in blocks:
        n = len(b["texts"])
        out.append(ranks(scores[k:k + n, :n], [[j] for j in range(n)]))
        k += n
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def _score_blocks(rk: np.ndarray, rows: list[int], split: dict, n_boot: int, seed: int) -> tuple[dict, dict]:
    """(reported metrics: t2i over all poems as the paper does + t2i_test on the test split, val metrics)."""
    where = {r: k for k, r in enumerate(rows)}
    part = {p: np.array([where[i] for i in split[f"{p}_texts"] if i in where], np.int64) for p in ("val", "test")}
    res = {"t2i": summarize(rk, n_boot=n_boot, seed=seed), "t2i_test": summarize(rk[part["test"]], n_boot=0)}
    return res, {"t2i": summarize(rk[part["val"]], n_boot=0)}


def _key(m: dict) -> float:
    """Selection score on validation: accuracy (pairwise) or mean R@1 over the directions scored."""
    if "accuracy" in m:
        return m["accuracy"]
    return float(np.mean([m[d]["R@1"] for d in ("t2i", "i2t") if "R@1" in m.get(d, {})] or [float("nan")]))


def evaluate(benchmark: str, root, out: str | Path, ckpt: str | Path | None = None,
             model: str | None = None, images: str | Path | None = None, levels=(1, 2, 3, 4, 5),
             val_fraction: float = 0.2, seed: int = 0, n_boot: int = 1000, batch_size: int = 32,
             device: str = "auto", protocol: str = "full", block_size: int = PAPER_BLOCK,
             limit: int | None = None) -> dict:
    """Evaluate ``ckpt`` (baseline = its untouched base model; level_k = its tokens for level k; best_level =
    the level with the best *validation* score) or a plain ``model`` (baseline only).

    ``protocol="full"``: every query against the full gallery, both directions, metrics on the test split.
    ``protocol="paper"``: the authors' protocols. MultiM-Poem: text->image inside ``block_size`` diagonal blocks
    in dataset order, metrics over all poems (and ``t2i_test`` on the test split); only the blocks are scored
    and saved (block-scores-*.npy + blocks.json). HAIVMet: the paper's protocol is the full gallery, with
    image->text its direction, so the numbers equal ``full``. ``root`` may be a list for haivmet."""
    if (ckpt is None) == (model is None):
        raise ValueError("give exactly one of ckpt (a trained checkpoint dir) or model (a base model)")
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    if protocol == "paper" and benchmark not in PAPER_DIRECTION:
        raise ValueError(f"--protocol paper exists for {' and '.join(PAPER_DIRECTION)} only, not {benchmark}")
    blocked = protocol == "paper" and benchmark == "multim-poem"
    if blocked and block_size < 1:
        raise ValueError("block size must be at least 1")
    out = Path(out)
    bench = load_benchmark(benchmark, root, images, limit)
    if not bench.texts or not bench.images:
        raise ValueError(f"{benchmark} at {root}: {len(bench.texts)} texts, {len(bench.images)} usable images "
                         f"({len(bench.missing)} missing); nothing to evaluate")
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} is a file, not a folder")
    out.mkdir(parents=True, exist_ok=True)  # only once the input is known to be usable
    split = split_queries(len(bench.texts), len(bench.images), val_fraction, seed)
    base = load_encoder(ckpt, device, trained=False) if ckpt else PromptedEncoder(load_backbone(model, device), 0)
    emb: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    t_base = embed_texts(base, bench.texts, desc="embed texts")
    emb["baseline"] = t_base, embed_images(base, bench.images, None, batch_size, "embed images (baseline)")
    if ckpt:
        enc = load_encoder(ckpt, device, trained=True, quiet=True)
        t_enc = embed_texts(enc, bench.texts)  # text tower is frozen: equal to t_base unless it was changed
        for lv in levels:
            if not 1 <= lv <= enc.num_levels:
                raise ValueError(f"level {lv} outside 1..{enc.num_levels}")
            emb[f"level_{lv}"] = t_enc, embed_images(enc, bench.images, lv, batch_size, f"embed images (level {lv})")
    blocks = block_layout(bench.positives, block_size) if blocked else None
    rows = [i for b in blocks for i in b["texts"]] if blocked else None
    variants: dict[str, np.ndarray] = {}
    results, val = {}, {}
    for name, (t, im) in emb.items():
        if blocked:
            variants[name] = block_scores(t, im, blocks, block_size)
            results[name], val[name] = _score_blocks(block_ranks(variants[name], blocks), rows, split, n_boot, seed)
        else:
            variants[name] = t @ im.T
            results[name] = _score(bench, variants[name], split, "test", n_boot, seed)
            if val_fraction > 0:
                val[name] = _score(bench, variants[name], split, "val", 0, seed)
        if val_fraction > 0:
            results[name]["val_selection_score"] = _key(val[name])
        results[name]["protocol"] = protocol
    level_names = [n for n in variants if n.startswith("level_")]
    selected = None
    if level_names and val_fraction > 0:
        selected = max(level_names, key=lambda n: (np.nan_to_num(_key(val[n]), nan=-1.0), -int(n.split("_")[1])))
        variants["best_level"] = variants[selected]
        results["best_level"] = {**results[selected], "level": int(selected.split("_")[1]), "selected_on": "val"}
    prefix = "block-scores" if blocked else "scores"
    for name, s in variants.items():
        np.save(out / f"{prefix}-{name}.npy", s.astype(np.float32))
    if blocked:
        metrics_on = (f"{len(rows)} poems with an image (all of them, as the paper; t2i_test: the test split), "
                      f"each ranked against the <= {block_size} images of its block")
    else:
        metrics_on = "test split of the queries" if val_fraction > 0 else "all queries"
    meta = {"benchmark": benchmark, "protocol": protocol,
            "root": [str(r) for r in root] if isinstance(root, (list, tuple)) else str(root),
            "images_dir": str(images) if images else None,
            "ckpt": str(ckpt) if ckpt else None, "model": model, "n_texts": len(bench.texts),
            "n_images": len(bench.images), "n_missing": len(bench.missing),
            "n_texts_without_positive": sum(1 for p in bench.positives if not p), "val_fraction": val_fraction,
            "seed": seed, "n_boot": n_boot, "selected_level": results.get("best_level", {}).get("level"),
            "metrics_on": metrics_on, "paper_direction": PAPER_DIRECTION.get(benchmark),
            "rank_ties": "pessimistic: a non-positive scoring >= the best positive ranks above it"}
    if blocked:
        meta.update(block_size=block_size, n_blocks=len(blocks),
                    scores_layout="block-scores-<variant>.npy: row k = k-th poem of blocks.json (blocks in order), "
                                  "column j = j-th image of its block, NaN past the block's end")
    files = [("results", results), ("meta", meta), ("texts", bench.texts), ("images", bench.images),
             ("positives", bench.positives), ("split", split), ("missing", bench.missing)]
    if blocked:
        files.append(("blocks", {"block_size": block_size, "order": "dataset order, poems with a usable image",
                                 "blocks": blocks}))
    for name, obj in files:
        (out / f"{name}.json").write_text(json.dumps(obj, indent=1) + "\n")
    if bench.pairs is not None:
        (out / "pairs.json").write_text(json.dumps(bench.pairs) + "\n")
    (out / "results.md").write_text(markdown_table(results, meta))
    return results


COLS = ["R@1", "R@5", "R@10", "R@20", "mean_rank"]


def markdown_table(results: dict, meta: dict) -> str:
    """Every variant (baseline, each level, the val-chosen best level) as one row; the paper's direction first."""
    head = (f"**{meta['benchmark']}** ({meta.get('protocol', 'full')} protocol): {meta['n_texts']} texts x "
            f"{meta['n_images']} images, {meta['n_missing']} missing/unreadable items, metrics on the "
            f"{meta['metrics_on']}"
            + (f", best level chosen on val: {meta['selected_level']}" if meta.get("selected_level") else "")
            + (f"; the paper reports {meta['paper_direction']}" if meta.get("paper_direction") else "") + "\n\n")
    if any("accuracy" in r for r in results.values()):
        lines = ["| variant | accuracy | 95% CI | n |", "|---|---|---|---|"]
        for n, r in results.items():
            ci = r.get("ci95", {}).get("accuracy")
            lines.append(f"| {n} | {r.get('accuracy', float('nan')):.3f} | "
                         f"{f'{ci[0]:.3f}-{ci[1]:.3f}' if ci else '-'} | {r['n']} |")
        return head + "\n".join(lines) + "\n"
    first = next(iter(results.values()))
    dirs = [d for d in ("t2i", "i2t", "t2i_test") if d in first]
    if meta.get("paper_direction") in dirs:
        dirs.remove(meta["paper_direction"])
        dirs.insert(0, meta["paper_direction"])
    lines = ["| variant | " + " | ".join(f"{d} {c}" for d in dirs for c in COLS) + " |",
             "|---" * (1 + len(dirs) * len(COLS)) + "|"]
    for n, r in results.items():
        cells = []
        for d in dirs:
            for c in COLS:
                v, ci = r[d].get(c), r[d].get("ci95", {}).get(c)
                cells.append("-" if v is None else f"{v:.3f}" + (f" ({ci[0]:.2f}-{ci[1]:.2f})" if ci and c != "mean_rank" else ""))
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return head + "\n".join(lines) + "\n"
