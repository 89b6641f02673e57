"""Local executor vs ``--executor ray`` with 1 and 2 workers on the real offline stages.

N synthetic 1x1 images carry real COCO captions (``../shared/data/coco-captions``; generated
sentences without it), so spaCy and the lexical miner do their real work. Every run starts cold
in a fresh ``--out`` (the models' disk caches are warm), and Ray's start-up and each actor's model
loading are part of the wall time, as they are for a user. Also checks the tables are identical.

    python benchmarks/bench_ray.py [--n 400] [--workers 1,2]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
CAPTIONS = HERE.parents[1] / "shared" / "data" / "coco-captions" / "captions_val2017.json"
TABLES = ("images", "descriptions", "salient", "associations", "captions", "errors")


def make_source(n: int, d: Path) -> tuple[Path, Path, str]:
    from PIL import Image

    if CAPTIONS.exists():
        by_image: dict[int, list[str]] = {}
        for a in json.loads(CAPTIONS.read_text())["annotations"]:
            by_image.setdefault(a["image_id"], []).append(a["caption"])
        groups, label = list(by_image.values()), "real COCO val2017 captions"
    else:
        sys.path.insert(0, str(HERE))
        from bench_pipeline import ADJ, NOUN, PLACE, VERB

        rng = random.Random(0)
        groups = [[f"A {rng.choice(ADJ)} {rng.choice(NOUN)} {rng.choice(VERB)} {rng.choice(PLACE)}."] for _ in range(n)]
        label = "generated captions (no ../shared)"
    imgs = d / "imgs"
    imgs.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        Image.new("RGB", (1, 1), (i % 256, (i // 256) % 256, 9)).save(imgs / f"im{i:05d}.png")
        lines.append(json.dumps({"image": f"im{i:05d}.png", "captions": groups[i % len(groups)]}))
    (d / "captions.jsonl").write_text("\n".join(lines) + "\n")
    return imgs, d / "captions.jsonl", label


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--chunk-size", type=int, default=32, help="images per part (small enough to spread over workers)")
    args = ap.parse_args()
    os.environ.setdefault("TQDM_DISABLE", "1")

    import visassoc
    from visassoc.config import RunConfig

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        imgs, caps, label = make_source(args.n, work)
        base = dict(images=imgs, captions=caps, chunk_size=args.chunk_size, progress=False)
        visassoc.run(RunConfig(out=work / "warm", limit=8, **base))  # disk caches (vocabulary, WordNet) built once
        runs = [("local", {})] + [(f"ray, {w} worker{'s' * (w > 1)}", {"executor": "ray", "ray_workers": w})
                                  for w in map(int, args.workers.split(","))]
        rows = []
        for name, extra in runs:
            out = work / name.replace(" ", "").replace(",", "-")
            t0 = time.perf_counter()
            res = visassoc.run(RunConfig(out=out, **base, **extra))
            rows.append((name, time.perf_counter() - t0, res.counts, out))
        ref = rows[0][3]
        same = {name: all(pq.read_table(out / f"{t}.parquet").equals(pq.read_table(ref / f"{t}.parquet")) for t in TABLES)
                for name, _, _, out in rows}
    print(f"{args.n} images ({label}), offline stages (captions, lexical, substitute), {args.chunk_size}-image parts, "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}\n")
    print("| executor | wall s | images/s | captions | same tables as local |")
    print("|---|---:|---:|---:|---|")
    for name, wall, counts, _ in rows:
        print(f"| {name} | {wall:.1f} | {args.n / wall:.1f} | {counts['captions']:,} | {same[name]} |")


if __name__ == "__main__":
    main()
