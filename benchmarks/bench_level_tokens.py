"""Do distance tokens learn the levels? A tiny CLIP pretrained here on a synthetic world (``visassoc.train.world``),
then frozen; only the tokens train, with each preset / sampler, through the real ``visassoc.train.train``.

    python benchmarks/bench_level_tokens.py                 # 3 seeds, the table in docs/encoders.md
    python benchmarks/bench_level_tokens.py --seeds 0       # one seed, quicker

Metrics on held-out scenes (never trained on): level accuracy (an image with level-k tokens ranks its level-k
caption first among its 5; chance 0.2; the frozen baseline has one embedding for all levels, so exactly 0.2)
and text->image R@1 per level (every image with the identical caption is a positive). Targets (issue 14):
paper and visassoc presets level accuracy >= 0.6; levels sampler >= old masked sampler + 0.05; level-5 R@1
>= baseline + 5 points. Rows whose settings differ from a preset say so.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from visassoc.encoders import PromptedEncoder, load_encoder
from visassoc.encoders.models import save_backbone
from visassoc.train import TrainConfig, train
from visassoc.train.world import level_probe, make_world_run, pretrain

# name -> TrainConfig overrides (on top of the preset named inside)
ROWS = {
    "paper preset (batch 512, 1 epoch)": dict(preset="paper"),
    "paper preset, batch 100, 10 epochs": dict(preset="paper", batch_size=100, epochs=10),
    "visassoc preset (random + levels)": dict(preset="visassoc"),
    "visassoc, levels sampler only": dict(preset="visassoc", sampler="levels"),
    "old masked sampler (balanced, same image masked)": dict(preset="visassoc", sampler="balanced", loss_mask="image"),
}


def fmt(xs: list[float]) -> str:
    return f"{np.mean(xs):.3f}" + (f" ± {np.std(xs):.3f}" if len(xs) > 1 else "")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--pretrain-steps", type=int, default=500)
    ap.add_argument("--pretrain-images", type=int, default=3000)
    ap.add_argument("--train-images", type=int, default=600)
    ap.add_argument("--test-images", type=int, default=300)
    ap.add_argument("--rows", nargs="*", default=None, help="substrings of the row names to run (default all)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None, help="also write the raw numbers here")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    rows = {k: v for k, v in ROWS.items() if not a.rows or any(r in k for r in a.rows)}
    t0 = time.time()
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        bb = pretrain(n_images=a.pretrain_images, steps=a.pretrain_steps, seed=0)
        t_pre = time.time() - t0
        save_backbone(bb, d / "backbone")
        run = make_world_run(d / "run", a.train_images, seed=1)
        results = {"frozen baseline (no tokens)": [level_probe(PromptedEncoder(bb, 5), a.test_images,
                                                               use_tokens=False)]}
        steps = {}
        for name, over in rows.items():
            for seed in a.seeds:
                out = d / f"ck-{len(results)}-{seed}"
                res = train(TrainConfig(data=[str(run)], out=str(out), model=str(d / "backbone"), seed=seed,
                                        device="cpu", **over))
                steps[name] = f"{res.steps} it"
                results.setdefault(name, []).append(level_probe(load_encoder(out, quiet=True), a.test_images))
                print(f"{name} seed {seed}: {results[name][-1]['level_acc']:.3f} ({time.time() - t0:.0f}s)",
                      file=sys.stderr)
    print(f"\npretraining {t_pre:.0f} s; total {time.time() - t0:.0f} s; seeds {a.seeds}; "
          f"{a.train_images} training scenes, {a.test_images} held-out scenes\n")
    print("| model | iterations | level acc | " + " | ".join(f"R@1 L{k}" for k in range(1, 6)) + " |")
    print("|---|---|---|" + "---|" * 5)
    for name, rs in results.items():
        cells = [fmt([r["R@1"][k] for r in rs]) for k in range(1, 6)]
        print(f"| {name} | {steps.get(name, '-')} | {fmt([r['level_acc'] for r in rs])} | " + " | ".join(cells) + " |")
    if a.json:
        a.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
