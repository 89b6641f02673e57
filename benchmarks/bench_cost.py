"""Paid input tokens of the caption stage by request order, with a provider-style prefix cache.

Runs ``visassoc run`` on COCO-mini (captions as descriptions; associate and caption through
``openai:gpt-4o-mini``) against the loopback fake OpenAI server (tests/fake_openai_server.py),
which simulates prompt caching: a request's leading 128-token blocks are cached when an
identical prefix was among the last ``--window`` requests (OpenAI: at least 1024 tokens).
An image counts as ``--image-tokens`` tokens (gpt-4o-mini bills 2833 at detail low). The live
per-level run is visassoc's layout (one image's requests go out together); the same caption requests
are then replayed through a fresh cache in a random order over all images (the paper-like
layout, as a loop over levels or a shuffled job list sends them). Costs at gpt-4o-mini
prices (input 0.15, cached input 0.075, output 0.60 USD per 1M tokens).

Target: uncached input tokens of visassoc's layout <= 1/5 of the paper-like layout.
The per-word row is a second live run with ``--caption-mode per-word`` (its re-asks included).

    python benchmarks/bench_cost.py [--images 40] [--window 8] [--image-tokens 2833]
"""
from __future__ import annotations

import argparse
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

    import visassoc.engine.pipeline as pipeline
    from fake_openai_server import FakeOpenAI, prompt_text, prompt_tokens
    from test_caption_per_word import per_word_responder
    from test_pipeline_models import responder
    from visassoc.backends.prefix_cache import PrefixCache, savings
    from visassoc.config import RunConfig

    tmp = Path(tempfile.mkdtemp(prefix="bench_cost_"))
    os.environ["VISASSOC_CACHE"] = str(tmp / "cache")
    os.environ.setdefault("OPENAI_API_KEY", "bench")
    ann = a.coco / "annotations" / "captions_val2017.json"

    def live(mode: str):
        """One run; its caption requests (token sequences, in arrival order), output tokens, captions, usage."""
        reply = (lambda b: per_word_responder(b, fail_level=None)) if mode == "per-word" else responder
        with FakeOpenAI(responder=reply, prefix_cache=PrefixCache(window=a.window), image_tokens=a.image_tokens) as s:
            bc = tmp / "backends.yaml"
            bc.write_text(yaml.safe_dump({"backends": {"openai:gpt-4o-mini": {"base_url": s.base_url,
                                                                              "concurrency": 8}}}))
            out = tmp / f"run-{mode}"
            cfg = RunConfig(out=out, coco=ann, images=a.coco / "images" / "val2017", limit=a.images,
                            associate="openai:gpt-4o-mini", caption="openai:gpt-4o-mini", backend_config=bc,
                            cache=False, progress=False, concurrency=8, caption_mode=mode)
            pipeline.run(cfg)
            bodies = [r["body"] for r in s.chat_requests() if 'association "' in prompt_text(r["body"])]
        toks = [prompt_tokens(b, a.image_tokens) for b in bodies]
        out_tok = sum(len(reply(b)) // 4 + 1 for b in bodies)  # the fake's completion_tokens
        caps = pq.read_table(out / "captions.parquet").to_pylist()
        return toks, out_tok, caps

    paper_toks, out_tok, caps = live("per-level")
    grouped = savings(paper_toks, PRICE_IN, PRICE_CACHED, window=a.window)
    shuffled = paper_toks[:]
    random.Random(a.seed).shuffle(shuffled)
    paper = savings(shuffled, PRICE_IN, PRICE_CACHED, window=a.window)
    word_toks, word_out, word_caps = live("per-word")
    per_word = savings(word_toks, PRICE_IN, PRICE_CACHED, window=a.window)

    print(f"COCO-mini: {len({c['image_id'] for c in caps})} images; cache window {a.window} requests, "
          f"image = {a.image_tokens} tokens; caption stage only; gpt-4o-mini prices")
    print(f"{'layout':<22} {'requests':>8} {'input tok':>10} {'uncached':>10} {'cached %':>8} {'cost USD':>9} "
          f"{'no-cache USD':>12} {'valid captions':>15}")
    rows = (("paper-like (random)", paper, out_tok, caps), ("visassoc (grouped)", grouped, out_tok, caps),
            ("per-word (grouped)", per_word, word_out, word_caps))
    for name, sv, o, cs in rows:
        print(f"{name:<22} {sv.requests:>8} {sv.input_tokens:>10,} {sv.input_tokens - sv.cached_tokens:>10,} "
              f"{100 * sv.cacheable_share:>7.1f}% {sv.cost_cached_usd + o * PRICE_OUT / 1e6:>9.4f} "
              f"{sv.cost_uncached_usd + o * PRICE_OUT / 1e6:>12.4f} {sum(c['valid'] for c in cs):>7}/{len(cs):<7}")
    base = max(1, paper.input_tokens - paper.cached_tokens)
    for name, sv in (("visassoc", grouped), ("per-word", per_word)):
        r = (sv.input_tokens - sv.cached_tokens) / base
        print(f"uncached input {name}/paper-like = {r:.3f} (target <= 0.200: {'met' if r <= 0.2 else 'MISSED'})")


if __name__ == "__main__":
    main()
