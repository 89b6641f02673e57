"""Training steps/s with cached caption embeddings (the frozen text tower runs once) vs recomputing the text
tower every step. Random weights (nothing can be downloaded here), real architectures:

    python benchmarks/bench_train.py --arch tiny      # tiny-random-clip, 32 px
    python benchmarks/bench_train.py --arch vit-b-32  # CLIP ViT-B/32 shapes (the paper's model), 224 px

Each mode trains the same ``--steps`` on the same generated run; the first step (warm-up) is not timed.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from visassoc.train import TrainConfig, train
from visassoc.encoders.models import Backbone, save_backbone, tiny_tokenizer
from visassoc.train.synthetic import make_shapes_run


def vit_b_32_dir(path: Path) -> str:
    """A randomly initialised CLIP with ViT-B/32's configuration (transformers defaults), saved locally."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    tok = tiny_tokenizer()
    cfg = CLIPConfig(text_config={"vocab_size": tok.vocab_size, "pad_token_id": tok.pad_token_id,
                                  "bos_token_id": tok.cls_token_id, "eos_token_id": tok.sep_token_id})
    torch.manual_seed(0)
    model = CLIPModel(cfg)
    model.config.visassoc_tiny_random = True  # random weights: say so when loaded
    save_backbone(Backbone(model, tok, CLIPImageProcessor(), "clip", "vit-b-32-random", 77, False), path)
    return str(path)


def steps_per_s(log: Path) -> float:
    recs = [json.loads(l) for l in log.read_text().splitlines() if '"loss"' in l]
    return (len(recs) - 1) / (recs[-1]["elapsed_s"] - recs[0]["elapsed_s"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", choices=["tiny", "vit-b-32"], default="tiny")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    steps = a.steps or (40 if a.arch == "tiny" else 4)
    bs = a.batch_size or (64 if a.arch == "tiny" else 16)
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        model = "tiny-random-clip" if a.arch == "tiny" else vit_b_32_dir(d / "vitb32")
        run = make_shapes_run(d / "run", n_images=max(64, 2 * bs), seed=0)
        res = {}
        for cached in (True, False):
            cfg = TrainConfig(data=[str(run)], out=str(d / f"o{cached}"), model=model, max_steps=steps + 1,
                              epochs=1000, batch_size=bs, val_fraction=0.0, text_cache=cached, device="cpu",
                              sampler="random")
            train(cfg)
            res[cached] = steps_per_s(d / f"o{cached}" / "train.jsonl")
    print(f"\narch {a.arch}, batch {bs}, {steps} timed steps, {a.threads} thread(s), prompt tokens only")
    print("| text features | steps/s | speed-up |")
    print("|---|---|---|")
    print(f"| recomputed by the frozen text tower each step | {res[False]:.3f} | 1.00x |")
    print(f"| cached once (memory-mapped) | {res[True]:.3f} | {res[True] / res[False]:.2f}x |")


if __name__ == "__main__":
    main()
