"""The lexical association miner on the salient words of N COCO-mini images.

Salient words come from one caption per image (spaCy NOUN/VERB/ADJ, no stop words, top 5 by
Brysbaert concreteness, via visassoc.stages.salient). Prints throughput after warm-up, mean
concreteness per level, the level 1->5 drop, how many ladders and images have all 5 levels
full, and example ladders. Falls back to a built-in caption list without ../shared.

    python benchmarks/bench_lexical.py [--n 100] [--examples 10] [--seed 0]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time
from collections import Counter, defaultdict
from pathlib import Path

from visassoc.lexicon import concreteness
from visassoc.stages.interfaces import AssociationRequest, StageError
from visassoc.stages.lexical import LexicalMiner
from visassoc.stages.lexical_vocab import load_vocab
from visassoc.stages.salient import extract_salient

COCO = Path(__file__).resolve().parents[2] / "shared" / "data" / "coco-mini" / "annotations" / "captions_val2017.json"
FALLBACK = [
    "A dog runs across a green field chasing a ball.",
    "A pizza with cheese sits on a wooden table.",
    "A red bus drives down a busy city street.",
    "A man riding a horse along the beach.",
    "People relax under a striped umbrella by the sea.",
    "A passenger train pulls into the station.",
    "A cat sleeping on a laptop keyboard.",
    "A kite flying high in the blue sky.",
    "A giraffe eating leaves from a tall tree.",
    "A boy doing a trick on a skateboard at the park.",
]


def load_images(n: int, seed: int) -> tuple[list[tuple[str, str, str]], str]:
    """(image_id, chosen caption, description = all captions joined) for up to ``n`` images."""
    if not COCO.is_file():
        return [(str(i), c, c) for i, c in enumerate(FALLBACK[:n])], "built-in captions (no ../shared)"
    caps = defaultdict(list)
    for a in json.loads(COCO.read_text())["annotations"]:
        caps[str(a["image_id"])].append(" ".join(a["caption"].split()))
    rng = random.Random(seed)
    out = []
    for image_id in sorted(caps)[:n]:
        cs = sorted(caps[image_id])
        out.append((image_id, rng.choice(cs), " ".join(cs)))
    return out, f"COCO-mini val2017 ({COCO.name}), {len(caps)} images"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--examples", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    images, source = load_images(args.n, args.seed)
    salient = extract_salient([(i, 0, cap) for i, cap, _ in images])
    reqs = []
    for image_id, cap, desc in images:
        words = salient.get(image_id, [])
        for s in words:
            others = [o.lemma for o in words if o.lemma != s.lemma]
            reqs.append(AssociationRequest(image_id, s.word, s.lemma, s.pos, cap, desc, others))

    t = time.perf_counter()
    load_vocab()
    miner = LexicalMiner(per_level=3, seed=args.seed)
    miner.mine([AssociationRequest("warm", "cup", "cup", "NOUN", "A cup of tea.", "A cup of tea.")])
    warm = time.perf_counter() - t
    t, cpu = time.perf_counter(), time.process_time()
    out = miner.mine(reqs)
    secs, cpu = time.perf_counter() - t, time.process_time() - cpu

    per_level = defaultdict(list)
    words_at = defaultdict(list)
    full_ladders = 0
    by_image = defaultdict(list)
    errors = []
    for r, lad in zip(reqs, out):
        ok = not isinstance(lad, StageError) and all(len(lad.get(k, [])) == 3 for k in range(1, 6))
        has5 = not isinstance(lad, StageError) and all(lad.get(k) for k in range(1, 6))
        by_image[r.image_id].append(has5)
        full_ladders += ok
        if isinstance(lad, StageError):
            errors.append(f"{r.lemma}/{r.pos}: {lad.message}")
            continue
        for k, words in lad.items():
            per_level[k] += [c for c in (concreteness(a) for a in words) if c is not None]
            words_at[k] += words
    means = {k: statistics.mean(v) for k, v in sorted(per_level.items()) if v}
    images_ok = sum(1 for v in by_image.values() if v and any(v))
    images_all = sum(1 for v in by_image.values() if v and all(v))
    n_img = len(images)

    print(f"source: {source}; {n_img} images, {len(reqs)} salient words")
    print(f"warm-up (vocabulary + models): {warm:.1f} s; mining: {secs:.1f} s wall, {cpu:.1f} s CPU "
          f"= {len(reqs) / secs:.1f} words/s (machine load average {os.getloadavg()[0]:.1f})")
    print(f"{'level':<7}{'mean concreteness':>19}{'words':>7}{'distinct':>10}  most repeated")
    for k, m in means.items():
        common = ", ".join(f"{w} {n}" for w, n in Counter(words_at[k]).most_common(4))
        print(f"{k:<7}{m:>19.2f}{len(per_level[k]):>7}{len(set(words_at[k])):>10}  {common}")
    decreasing = all(a > b for a, b in zip(list(means.values()), list(means.values())[1:]))
    drop = means.get(1, 0) - means.get(5, 0)
    print(f"strictly decreasing: {decreasing}; level 1->5 drop: {drop:.2f} (target >= 1.5)")
    print(f"ladders with all 5 levels x 3 words: {full_ladders}/{len(reqs)} ({100 * full_ladders / max(1, len(reqs)):.1f}%)")
    print(f"images whose words all have 5 levels: {images_all}/{n_img} ({100 * images_all / max(1, n_img):.1f}%); "
          f"with >= 1 such word: {images_ok}/{n_img} ({100 * images_ok / max(1, n_img):.1f}%) (target >= 95%)")
    print(f"errors: {len(errors)}" + "".join(f"\n  {e}" for e in errors[:10]))
    print("\nexample ladders:")
    rng = random.Random(args.seed)
    for r, lad in rng.sample([x for x in zip(reqs, out) if isinstance(x[1], dict)], min(args.examples, len(reqs))):
        print(f"  {r.lemma} ({r.pos.lower()}) in {r.caption!r}")
        for k in sorted(lad):
            print(f"    {k}: {', '.join(lad[k])}")


if __name__ == "__main__":
    main()
