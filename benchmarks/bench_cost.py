"""Paid input tokens of the caption stage by request order, with a provider-style prefix cache.

Runs ``visassoc run`` on COCO-mini (captions as descriptions; associate and caption through
``openai:gpt-4o-mini``) against the loopback fake OpenAI server (tests/fake_openai_server.py),
which simulates prompt caching: a request's leading 128-token blocks are cached when an
identical prefix was among the last ``--window`` requests (OpenAI: at least 1024 tokens).
An image counts as ``--image-tokens`` tokens (gpt-4o-mini bills 2833 at detail low). The live
run is visassoc's layout (one image's requests go out together); the same caption requests
are then replayed through a fresh cache in a random order over all images (the paper-like
layout, as a loop over levels or a shuffled job list sends them). Costs at gpt-4o-mini
prices (input 0.15, cached input 0.075, output 0.60 USD per 1M tokens).

Target: uncached input tokens of visassoc's layout <= 1/5 of the paper-like layout.
Not measured: ``--caption-mode per-word`` (not implemented yet).

    python benchmarks/bench_cost.py [--images 40] [--window 8] [--image-tokens 2833]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
COCO = next((p / "shared" / "data" / "coco-mini" for p in (ROOT.parent, ROOT.parent.parent)
             if (p / "shared" / "data" / "coco-mini").is_dir()), ROOT.parent / "shared" / "data" / "coco-mini")
PRICE_IN, PRICE_CACHED, PRICE_OUT = 0.15, 0.075, 0.60


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=40)
    ap.add_argument("--window", type=int, default=8, help="requests a cached prefix stays reusable for")
    ap.add_argument("--image-tokens", type=int, default=2833)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--coco", type=Path, default=COCO)
    a = ap.parse_args()

    import pyarrow.parquet as pq
    import yaml

    import visassoc.run.pipeline as pipeline
    from fake_openai_server import FakeOpenAI, prompt_text, prompt_tokens
    from test_pipeline_models import responder
    from visassoc.backends.prefix_cache import PrefixCache, savings
    from visassoc.config import RunConfig

    tmp = Path(tempfile.mkdtemp(prefix="bench_cost_"))
    os.environ["VISASSOC_CACHE"] = str(tmp / "cache")
    os.environ.setdefault("OPENAI_API_KEY", "bench")
    ann = a.coco / "annotations" / "captions_val2017.json"
    with FakeOpenAI(responder=responder, prefix_cache=PrefixCache(window=a.window),
                    image_tokens=a.image_tokens) as s:
        bc = tmp / "backends.yaml"
        bc.write_text(yaml.safe_dump({"backends": {"openai:gpt-4o-mini": {"base_url": s.base_url, "concurrency": 8}}}))
        cfg = RunConfig(out=tmp / "run", coco=ann, images=a.coco / "images" / "val2017", limit=a.images,
                        associate="openai:gpt-4o-mini", caption="openai:gpt-4o-mini", backend_config=bc,
                        cache=False, progress=False, concurrency=8)
        pipeline.run(cfg)
        reqs = [r for r in s.chat_requests() if 'association "' in prompt_text(r["body"])]
    caps = pq.read_table(tmp / "run" / "captions.parquet").to_pylist()
    usage = json.loads((tmp / "run" / "manifest.json").read_text())["usage"].get("gpt-4o-mini", {})
    toks = [prompt_tokens(r["body"], a.image_tokens) for r in reqs]
    out_tokens = sum(len(json.dumps({"caption": "x" * 40})) // 4 + 1 for _ in reqs)  # the fake's reply size
    grouped = savings(toks, PRICE_IN, PRICE_CACHED, window=a.window)
    shuffled = toks[:]
    random.Random(a.seed).shuffle(shuffled)
    paper = savings(shuffled, PRICE_IN, PRICE_CACHED, window=a.window)

    n_img = len({r["image_id"] for r in caps})
    print(f"COCO-mini: {n_img} images with captions, {len(caps)} captions ({sum(c['valid'] for c in caps)} valid); "
          f"cache window {a.window} requests, image = {a.image_tokens} tokens, caption stage only")
    print(f"{'layout':<22} {'requests':>8} {'input tok':>10} {'uncached':>10} {'cached %':>8} {'cost USD':>9} "
          f"{'no-cache USD':>12}")
    for name, sv in (("paper-like (random)", paper), ("visassoc (grouped)", grouped)):
        cost = sv.cost_cached_usd + out_tokens * PRICE_OUT / 1e6
        print(f"{name:<22} {sv.requests:>8} {sv.input_tokens:>10,} {sv.input_tokens - sv.cached_tokens:>10,} "
              f"{100 * sv.cacheable_share:>7.1f}% {cost:>9.4f} {sv.cost_uncached_usd + out_tokens * PRICE_OUT / 1e6:>12.4f}")
    print(f"{'per-word':<22} {'not implemented (--caption-mode per-word is not done)':>60}")
    ratio = (grouped.input_tokens - grouped.cached_tokens) / max(1, paper.input_tokens - paper.cached_tokens)
    print(f"uncached ratio visassoc/paper-like = {ratio:.3f} (target <= 0.200: {'met' if ratio <= 0.2 else 'MISSED'})")
    print(f"live run, as the backend counted it (all stages, manifest.json): prompt {usage.get('prompt_tokens')}, "
          f"cached {usage.get('cached_tokens')}, cost {usage.get('cost_usd')} USD")


if __name__ == "__main__":
    main()
