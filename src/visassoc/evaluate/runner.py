"""``evaluate``: score a benchmark with the baseline and every level, pick the best level on a validation
split of the queries, report test-split metrics, and save every score matrix so anyone can recompute them.

Files in ``out``: results.json, results.md, meta.json, texts.json, images.json, positives.json, split.json,
missing.json, and scores-<variant>.npy (texts x images; rows in texts.json order, columns in images.json).
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
from visassoc.retrieval import pairwise_accuracy, retrieval_metrics


def split_queries(n_texts: int, n_images: int, val_fraction: float, seed: int) -> dict:
    """Disjoint val/test query sets for each direction (the gallery stays full)."""
    out = {}
    for name, n in (("texts", n_texts), ("images", n_images)):
        order = np.random.default_rng([seed, len(name)]).permutation(n)
        k = int(round(val_fraction * n)) if val_fraction > 0 else 0
        out[f"val_{name}"], out[f"test_{name}"] = sorted(order[:k].tolist()), sorted(order[k:].tolist())
    return out


def _score(bench: Benchmark, scores: np.ndarray, split: dict, part: str, n_boot: int, seed: int) -> dict:
    if bench.pairs is not None:
        keep = set(split[f"{part}_texts"])
        return pairwise_accuracy(scores, [p for p in bench.pairs if p[0] in keep], n_boot=n_boot, seed=seed)
    return retrieval_metrics(scores, bench.positives, split[f"{part}_texts"], split[f"{part}_images"],
                             n_boot=n_boot, seed=seed)


def _key(m: dict) -> float:
    """Selection score on validation: accuracy (pairwise) or mean of t2i and i2t R@1."""
    if "accuracy" in m:
        return m["accuracy"]
    return float(np.mean([m[d]["R@1"] for d in ("t2i", "i2t") if "R@1" in m[d]] or [float("nan")]))


def evaluate(benchmark: str, root: str | Path, out: str | Path, ckpt: str | Path | None = None,
             model: str | None = None, images: str | Path | None = None, levels=(1, 2, 3, 4, 5),
             val_fraction: float = 0.2, seed: int = 0, n_boot: int = 1000, batch_size: int = 32,
             device: str = "auto", limit: int | None = None) -> dict:
    """Evaluate ``ckpt`` (baseline = its untouched base model; level_k = its tokens for level k; best_level =
    the level with the best *validation* score, reported on test) or a plain ``model`` (baseline only)."""
    if (ckpt is None) == (model is None):
        raise ValueError("give exactly one of ckpt (a trained checkpoint dir) or model (a base model)")
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
    variants: dict[str, np.ndarray] = {}
    t_base = embed_texts(base, bench.texts, desc="embed texts")
    variants["baseline"] = t_base @ embed_images(base, bench.images, None, batch_size, "embed images (baseline)").T
    if ckpt:
        enc = load_encoder(ckpt, device, trained=True, quiet=True)
        t_enc = embed_texts(enc, bench.texts)  # text tower is frozen: equal to t_base unless it was changed
        for lv in levels:
            if not 1 <= lv <= enc.num_levels:
                raise ValueError(f"level {lv} outside 1..{enc.num_levels}")
            variants[f"level_{lv}"] = t_enc @ embed_images(enc, bench.images, lv, batch_size, f"embed images (level {lv})").T
    results, val = {}, {}
    for name, s in variants.items():
        results[name] = _score(bench, s, split, "test", n_boot, seed)
        if val_fraction > 0:
            val[name] = _score(bench, s, split, "val", 0, seed)
            results[name]["val_selection_score"] = _key(val[name])
    level_names = [n for n in variants if n.startswith("level_")]
    selected = None
    if level_names and val_fraction > 0:
        selected = max(level_names, key=lambda n: (np.nan_to_num(_key(val[n]), nan=-1.0), -int(n.split("_")[1])))
        variants["best_level"] = variants[selected]
        results["best_level"] = {**results[selected], "level": int(selected.split("_")[1]), "selected_on": "val"}
    for name, s in variants.items():
        np.save(out / f"scores-{name}.npy", s.astype(np.float32))
    meta = {"benchmark": benchmark, "root": str(root), "images_dir": str(images) if images else None,
            "ckpt": str(ckpt) if ckpt else None, "model": model, "n_texts": len(bench.texts),
            "n_images": len(bench.images), "n_missing": len(bench.missing),
            "n_texts_without_positive": sum(1 for p in bench.positives if not p), "val_fraction": val_fraction,
            "seed": seed, "n_boot": n_boot, "selected_level": results.get("best_level", {}).get("level"),
            "metrics_on": "test split of the queries" if val_fraction > 0 else "all queries",
            "rank_ties": "pessimistic: a non-positive scoring >= the best positive ranks above it"}
    for name, obj in (("results", results), ("meta", meta), ("texts", bench.texts), ("images", bench.images),
                      ("positives", bench.positives), ("split", split), ("missing", bench.missing)):
        (out / f"{name}.json").write_text(json.dumps(obj, indent=1) + "\n")
    if bench.pairs is not None:
        (out / "pairs.json").write_text(json.dumps(bench.pairs) + "\n")
    (out / "results.md").write_text(markdown_table(results, meta))
    return results


def markdown_table(results: dict, meta: dict) -> str:
    head = (f"**{meta['benchmark']}**: {meta['n_texts']} texts x {meta['n_images']} images, "
            f"{meta['n_missing']} missing/unreadable items, metrics on the {meta['metrics_on']}"
            + (f", best level chosen on val: {meta['selected_level']}" if meta.get("selected_level") else "") + "\n\n")
    if any("accuracy" in r for r in results.values()):
        lines = ["| variant | accuracy | 95% CI | n |", "|---|---|---|---|"]
        for n, r in results.items():
            ci = r.get("ci95", {}).get("accuracy")
            lines.append(f"| {n} | {r.get('accuracy', float('nan')):.3f} | "
                         f"{f'{ci[0]:.3f}-{ci[1]:.3f}' if ci else '-'} | {r['n']} |")
        return head + "\n".join(lines) + "\n"
    cols = ["R@1", "R@5", "R@10", "R@20", "median_rank"]
    lines = ["| variant | " + " | ".join(f"t2i {c}" for c in cols) + " | " + " | ".join(f"i2t {c}" for c in cols) + " |",
             "|---" * (1 + 2 * len(cols)) + "|"]
    for n, r in results.items():
        cells = []
        for d in ("t2i", "i2t"):
            for c in cols:
                v, ci = r[d].get(c), r[d].get("ci95", {}).get(c)
                cells.append("-" if v is None else f"{v:.3f}" + (f" ({ci[0]:.2f}-{ci[1]:.2f})" if ci and c != "median_rank" else ""))
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return head + "\n".join(lines) + "\n"
