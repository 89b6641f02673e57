"""Peak memory of ``visassoc run`` vs the number of images: does it stay flat?

Each size runs in its own subprocess: N synthetic 1x1 images through every stage with the
zero-latency stages of bench_pipeline (so only the runner, spaCy and Parquet use memory). RSS is
sampled before and after each stage and after export; the baseline is taken after spaCy/WordNet
are loaded. Growth per 1k images between the smallest and largest size says whether memory
scales with the collection or not (stages read upstream rows per chunk; export streams).

    python benchmarks/bench_memory.py [--sizes 1000,10000] [--chunk-size 256]
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child(imgs: Path, caps: Path, out: Path, chunk: int) -> dict:
    sys.path.insert(0, str(HERE))
    import bench_pipeline as bp

    import visassoc
    import visassoc.engine.pipeline as pipeline
    from visassoc.config import RunConfig
    from visassoc.stages.salient import extract_salient

    extract_salient([("warm", 0, "A red dog sits on the grass.")])
    samples = [("baseline (models loaded)", rss_mb())]
    stage = pipeline.Runner._stage

    def sampled(self, executor, name, *a, **k):
        samples.append((f"before {name}", rss_mb()))
        try:
            return stage(self, executor, name, *a, **k)
        finally:
            samples.append((f"after {name}", rss_mb()))

    pipeline.Runner._stage = sampled
    with bp.patched(bp.stages_factory, "build", bp.instant_impls):
        res = visassoc.run(RunConfig(out=out, images=imgs, captions=caps, chunk_size=chunk, progress=False))
    samples.append(("after export", rss_mb()))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"samples": samples, "peak_mb": peak, "counts": res.counts,
            "output_mb": sum(p.stat().st_size for p in out.glob("*.parquet")) / 2**20}


def measure(n: int, chunk: int, work: Path) -> dict:
    sys.path.insert(0, str(HERE))
    from bench_pipeline import make_images

    imgs, caps = make_images(n, work / f"n{n}")
    cmd = [sys.executable, __file__, "--child", str(imgs), str(caps), str(work / f"n{n}" / "run"), str(chunk)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"size {n} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1000,10000")
    ap.add_argument("--chunk-size", type=int, default=256, help="images per part (256: the offline default)")
    ap.add_argument("--json", type=Path, help="also write the numbers here")
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        imgs, caps, out, chunk = args.child
        print(json.dumps(child(Path(imgs), Path(caps), Path(out), int(chunk))))
        return {}
    sizes = [int(s) for s in args.sizes.split(",")]
    from tqdm import tqdm

    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        for n in tqdm(sizes, desc="sizes", unit="run"):
            results[n] = measure(n, args.chunk_size, Path(tmp))
    labels = [k for k, _ in results[sizes[0]]["samples"]]
    print(f"## Resident memory (MB) of `visassoc run` with zero-latency stages, chunk size {args.chunk_size}\n")
    print("| point in the run | " + " | ".join(f"{n:,} images" for n in sizes) + " |")
    print("|---|" + "---:|" * len(sizes))
    for i, label in enumerate(labels):
        print(f"| {label} | " + " | ".join(f"{results[n]['samples'][i][1]:.0f}" for n in sizes) + " |")
    print("| **peak (ru_maxrss)** | " + " | ".join(f"**{results[n]['peak_mb']:.0f}**" for n in sizes) + " |")
    print("| peak - baseline | " + " | ".join(f"{results[n]['peak_mb'] - results[n]['samples'][0][1]:.0f}"
                                               for n in sizes) + " |")
    print("| output tables on disk | " + " | ".join(f"{results[n]['output_mb']:.1f}" for n in sizes) + " |")
    lo, hi = sizes[0], sizes[-1]
    summary = {"sizes": sizes, "per_size": results}
    if hi > lo:
        growth = lambda n: results[n]["peak_mb"] - results[n]["samples"][0][1]  # noqa: E731
        per_k = (growth(hi) - growth(lo)) / ((hi - lo) / 1000)
        summary["mb_per_1k_images"] = per_k
        steps = results[hi]["samples"]
        jumps = sorted(((b[1] - a[1], b[0]) for a, b in zip(steps, steps[1:])), reverse=True)[:3]
        print(f"\nPeak memory grows by **{per_k:.1f} MB per 1,000 images** ({lo:,} -> {hi:,}): "
              f"{'flat' if per_k < 2 else 'not flat, it scales with the collection'}. "
              f"Largest steps at {hi:,} images: " + ", ".join(f"{label} +{mb:.0f} MB" for mb, label in jumps) + ".")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
