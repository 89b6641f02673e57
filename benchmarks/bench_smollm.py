"""SmolLM2-135M-Instruct on CPU: cold load (GGUF -> cache), warm load (cache), tokens/s.

    python benchmarks/bench_smollm.py [--cache DIR] [--max-tokens 64] [--batch 4]

Without --cache a fresh temp dir is used, so "cold" really converts the GGUF. It also
prints SmolLM2's raw answer to an association-mining prompt (quality is expected to be weak).
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

ASSOC_PROMPT = """Image description: A young boy in a red shirt kicks a white soccer ball across a green grass field on a sunny afternoon.
Short caption: "a boy kicks a ball on a grass field"
Word: "ball" (NOUN)

Give 3 associations of the word at each of 5 levels of distance:
1 near synonyms (ball -> sphere), 2 slight abstraction (-> toy), 3 broader situational or emotional context (-> game),
4 conceptual association (-> competition), 5 full abstraction or metaphor (-> journey).
Each association must fit the image and could replace "ball" in the caption. Never use "ball" itself.
Answer only with JSON: {"1": [three words], "2": [...], "3": [...], "4": [...], "5": [...]}"""

LADDER_SCHEMA = {"type": "object", "required": ["1", "2", "3", "4", "5"],
                 "properties": {str(k): {"type": "array", "minItems": 3, "items": {"type": "string"}}
                                for k in range(1, 6)}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", help="VISASSOC_CACHE to use (default: a fresh temp dir)")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--batch", type=int, default=4)
    args = ap.parse_args()
    tmp = None
    if args.cache is None:
        tmp = tempfile.TemporaryDirectory(prefix="bench_smollm_")
        args.cache = tmp.name
    os.environ["VISASSOC_CACHE"] = args.cache

    rows = []
    t = time.perf_counter()
    import torch

    from visassoc.backends.base import GenParams, Message
    from visassoc.backends.smollm import SmolLMBackend

    rows.append(("import torch+transformers+visassoc", time.perf_counter() - t, ""))
    t = time.perf_counter()
    b = SmolLMBackend()
    rows.append((f"load #1 (from {b.loaded_from})", time.perf_counter() - t, ""))
    t = time.perf_counter()
    b = SmolLMBackend()
    rows.append((f"load #2 (from {b.loaded_from})", time.perf_counter() - t, ""))

    story = [Message("user", "Write a short story about a boy who kicks a ball on a grass field.")]
    params = GenParams(max_tokens=args.max_tokens)
    b.generate([Message("user", "Hi")], params=GenParams(max_tokens=4))  # warm-up
    t = time.perf_counter()
    g = b.generate(story, params=params)
    dt = time.perf_counter() - t
    rows.append(("generate, batch 1", dt, f"{g.usage.completion_tokens} tok, {g.usage.completion_tokens / dt:.1f} tok/s"))
    prompts = [[Message("user", f"Write a short story about a {w} in a park.")]
               for w in ["dog", "kite", "bicycle", "picnic", "fountain", "tree", "bench", "ball"][:args.batch]]
    t = time.perf_counter()
    gs = b.generate_batch(prompts, params=params)
    dt = time.perf_counter() - t
    n = sum(x.usage.completion_tokens for x in gs)
    rows.append((f"generate, batch {len(prompts)}", dt, f"{n} tok, {n / dt:.1f} tok/s"))
    t = time.perf_counter()
    a = b.generate([Message("user", ASSOC_PROMPT)], schema=LADDER_SCHEMA, params=GenParams(max_tokens=160))
    dt = time.perf_counter() - t
    rows.append(("association prompt ('ball')", dt, f"{a.usage.prompt_tokens}+{a.usage.completion_tokens} tok"))

    print(f"\nSmolLM2-135M-Instruct, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs, load avg {os.getloadavg()[0]:.1f}")
    print(f"{'step':<38} {'seconds':>8}  notes")
    for name, sec, note in rows:
        print(f"{name:<38} {sec:>8.2f}  {note}")
    print("\nraw output for the association prompt on 'ball':\n" + a.text)
    print(f"\nparsed: {a.parsed}\nerror: {a.error}")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
