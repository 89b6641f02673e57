"""Orchestration cost of ``visassoc run``: what the runner itself adds around the stage backends.

1. Zero-latency stages: describe/associate/caption implementations that answer instantly
   (canned results) run through every stage on N synthetic 1x1 images. Prints images/s and an
   exclusive-time breakdown: image decode + hash, spaCy salient words, Parquet I/O, caption
   validation, ladder cleaning, export, and the runner logic left over per stage.
2. Offline backends (captions describer, lexical miner, substitution writer) on real COCO-mini
   captions (synthetic ones without ../shared): the full run vs calling the same three
   implementations directly on the same recorded requests. Overhead = (run - direct) / direct.
   Models and disk caches are warmed by an untimed run first, so both sides run warm.

    python benchmarks/bench_pipeline.py [--n 2000] [--offline-n 100] [--chunk-size 256] [--repeats 2] [--skip-offline]
"""
from __future__ import annotations

import argparse
import copy
import json
import random
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import visassoc
from visassoc.engine import factory as stages_factory
from visassoc.config import RunConfig
from visassoc.stages.interfaces import DescribeResult

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "coco-mini"
STAGES = ("images", "describe", "salient", "associate", "caption")

# ---- synthetic images and instant stages ---------------------------------------------------
ADJ = ("red", "small", "old", "wooden", "bright", "wet", "tall", "striped")
NOUN = ("dog", "bus", "kite", "boat", "cake", "horse", "clock", "bench", "train", "pizza")
VERB = ("sits", "waits", "rests", "stands", "lies")
PLACE = ("on the grass", "near a river", "by the road", "under a tree", "in a kitchen", "on a beach")


def make_images(n: int, d: Path, seed: int = 0) -> tuple[Path, Path]:
    """n 1x1 PNGs (distinct colours) and a JSONL captions file with two captions each."""
    from PIL import Image

    rng = random.Random(seed)
    imgs = d / "imgs"
    imgs.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        name = f"im{i:06d}.png"
        Image.new("RGB", (1, 1), (i % 256, (i // 256) % 256, 7)).save(imgs / name)
        caps = [f"A {rng.choice(ADJ)} {rng.choice(NOUN)} {rng.choice(VERB)} {rng.choice(PLACE)}." for _ in range(2)]
        lines.append(json.dumps({"image": name, "captions": caps}))
    caps_file = d / "captions.jsonl"
    caps_file.write_text("\n".join(lines) + "\n")
    return imgs, caps_file


LADDER = {1: ["orb", "globe", "marble"], 2: ["plaything", "object", "item"], 3: ["playtime", "leisure", "summer"],
          4: ["rivalry", "effort", "motion"], 5: ["voyage", "destiny", "freedom"]}


class InstantDescriber:
    name = "instant"

    def describe(self, requests):
        return [DescribeResult(" ".join(r.captions), "captions", r.captions[0] if r.captions else None)
                for r in requests]


class InstantMiner:
    name = "instant"

    def mine(self, requests):
        return [{lv: list(ws) for lv, ws in LADDER.items()} for _ in requests]


class InstantWriter:
    name, model = "instant", None

    def write(self, requests):
        return [f"A {r.association} rests here quietly." for r in requests]


def instant_impls(cfg: RunConfig, only: str | None = None) -> stages_factory.StageImpls:
    return stages_factory.StageImpls({"describe": InstantDescriber(), "associate": InstantMiner(),
                                      "caption": InstantWriter()},
                                     identity={s: {"name": "instant"} for s in ("describe", "associate", "caption")})


@contextmanager
def patched(obj, attr: str, value):
    old = getattr(obj, attr)
    setattr(obj, attr, value)
    try:
        yield
    finally:
        setattr(obj, attr, old)


# ---- exclusive-time profiler over named functions ------------------------------------------
class Clock:
    """Wraps functions; time spent in nested wrapped calls is charged to the innermost only."""

    def __init__(self):
        self.excl: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.stack: list[list] = []

    def wrap(self, name, fn):
        def timed(*a, **k):
            key = name(*a, **k) if callable(name) else name
            frame = [key, time.perf_counter(), 0.0]  # key, start, time in nested wrapped calls
            self.stack.append(frame)
            try:
                return fn(*a, **k)
            finally:
                self.stack.pop()
                total = time.perf_counter() - frame[1]
                self.excl[key] = self.excl.get(key, 0.0) + total - frame[2]
                self.calls[key] = self.calls.get(key, 0) + 1
                if self.stack:
                    self.stack[-1][2] += total
        return timed


@contextmanager
def instrumented(clock: Clock):
    """Patch the runner's collaborators with timing wrappers (names as the runner looks them up)."""
    import visassoc.engine.export as export
    import visassoc.engine.pipeline as pipeline
    from visassoc.engine.store import PartReader, StageStore
    from visassoc.stages import associate, caption, images, salient

    targets = [(images, "inspect_image", "image decode + sha256"), (salient, "extract_salient", "salient (spaCy)"),
               (caption, "validate_caption", "caption validation"), (associate, "clean_ladder", "ladder cleaning"),
               (export, "export_run", "export (tables, manifest, card)"),
               (StageStore, "write_part", "parquet write (parts)"), (PartReader, "table", "parquet read (upstream rows)"),
               (StageStore, "done_keys", "resume scan"), (StageStore, "ids_with_rows", "resume scan")]
    saved = [(obj, attr, getattr(obj, attr)) for obj, attr, _ in targets + [(pipeline.Runner, "_stage", "")]]
    try:
        for obj, attr, label in targets:
            setattr(obj, attr, clock.wrap(label, getattr(obj, attr)))
        pipeline.Runner._stage = clock.wrap(lambda self, executor, name, *a, **k: f"runner logic: {name}",
                                           pipeline.Runner._stage)
        yield
    finally:
        for obj, attr, fn in saved:
            setattr(obj, attr, fn)


def timed_run(cfg: RunConfig, clock: Clock | None = None):
    clock = clock or Clock()
    with instrumented(clock):
        t0 = time.perf_counter()
        res = visassoc.run(cfg)
        wall = time.perf_counter() - t0
    return res, wall, clock


def print_breakdown(wall: float, clock: Clock) -> None:
    accounted = sum(clock.excl.values())
    rows = sorted(clock.excl.items(), key=lambda kv: -kv[1]) + [("outside the above (sources, setup)", wall - accounted)]
    print(f"| {'component (exclusive time)':<38} | {'seconds':>8} | {'share':>6} | {'calls':>6} |")
    print(f"|{'-' * 40}|{'-' * 10}:|{'-' * 7}:|{'-' * 7}:|")
    for k, v in rows:
        print(f"| {k:<38} | {v:8.3f} | {100 * v / wall:5.1f}% | {clock.calls.get(k, ''):>6} |")


def bench_instant(n: int, chunk: int, work: Path) -> dict:
    from visassoc.stages.salient import extract_salient

    extract_salient([("warm", 0, "A red dog sits on the grass.")])  # spaCy/WordNet/Brysbaert loads are not orchestration
    imgs, caps = make_images(n, work / "instant")
    with patched(stages_factory, "build", instant_impls):
        cfg = RunConfig(out=work / "instant" / "run", images=imgs, captions=caps, chunk_size=chunk, progress=False)
        res, wall, clock = timed_run(cfg)
        again, wall2, _ = timed_run(cfg)
    assert res.counts["images_ok"] == n and again.total_new == 0, (res.counts, again.new_items)
    runner = sum(v for k, v in clock.excl.items() if k.startswith("runner logic")) + clock.excl.get("resume scan", 0)
    out = {"images": n, "chunk_size": chunk, "wall_s": wall, "images_per_s": n / wall,
           "images_per_s_without_decode_and_spacy": n / (wall - clock.excl.get("image decode + sha256", 0)
                                                           - clock.excl.get("salient (spaCy)", 0)),
           "runner_logic_s": runner, "rerun_noop_s": wall2, "counts": res.counts}
    print(f"## Zero-latency stages: {n} synthetic 1x1 images, chunk size {chunk}\n")
    print(f"{n} images through 5 stages + export in {wall:.2f} s = **{n / wall:,.0f} images/s** (target >= 2,000/s); "
          f"{out['images_per_s_without_decode_and_spacy']:,.0f} images/s without image decoding and spaCy; "
          f"{res.counts['captions']:,} caption rows, {res.counts['associations']:,} association rows. "
          f"A complete re-run (0 new items) takes {wall2:.2f} s.\n")
    print_breakdown(wall, clock)
    return out


# ---- offline backends: full run vs the same calls made directly ------------------------------
class Recorder:
    """Proxy around a stage implementation: times each call and keeps a copy of its requests."""

    def __init__(self, inner, method: str):
        self.inner, self.method, self.batches, self.seconds = inner, method, [], 0.0
        self.name, self.model = inner.name, getattr(inner, "model", None)
        setattr(self, method, self._call)

    def _call(self, requests):
        self.batches.append([copy.copy(r) for r in requests])
        t0 = time.perf_counter()
        try:
            return getattr(self.inner, self.method)(requests)
        finally:
            self.seconds += time.perf_counter() - t0


def offline_source(n: int, work: Path) -> dict:
    ann = SHARED / "annotations" / "captions_val2017.json"
    if ann.exists() and (SHARED / "images" / "val2017").is_dir():
        return {"coco": ann, "images": SHARED / "images" / "val2017", "limit": n, "_label": f"COCO-mini val ({n} max)"}
    imgs, caps = make_images(n, work / "offline")
    return {"images": imgs, "captions": caps, "_label": f"{n} synthetic images (no ../shared)"}


def bench_offline(n: int, chunk: int, work: Path, repeats: int = 2) -> dict:
    src = offline_source(n, work)
    label = src.pop("_label")
    base = dict(chunk_size=chunk, progress=False, **src)
    real_build = stages_factory.build
    methods = (("describer", "describe", "describe"), ("miner", "associate", "mine"), ("writer", "caption", "write"))

    def recording(rec: dict, clock: Clock):
        def build(cfg):
            impl = real_build(cfg)
            for attr, stage, method in methods:
                rec[attr] = Recorder(impl.by_name[stage], method)
                setattr(rec[attr], method, clock.wrap(f"{attr} calls", getattr(rec[attr], method)))
                impl.by_name[stage] = rec[attr]
            return impl
        return build

    def direct(rec: dict) -> dict[str, float]:
        fresh = real_build(RunConfig(out=work / "unused", **base))  # same config, fresh in-memory caches
        took = {}
        for attr, stage, method in methods:
            impl, t0 = fresh.by_name[stage], time.perf_counter()
            for batch in rec[attr].batches:
                getattr(impl, method)(batch)
            took[attr] = time.perf_counter() - t0
        return took

    warm: dict = {}  # an untimed run: loads spaCy/WordNet/MiniLM, fills disk caches, records the requests
    with patched(stages_factory, "build", recording(warm, Clock())):
        visassoc.run(RunConfig(out=work / "warm", **base))
    directs, runs = [], []
    for rep in range(repeats):  # interleaved; the best of each, as this box is shared and noisy
        directs.append(direct(warm))
        rec: dict = {}
        clock = Clock()
        with patched(stages_factory, "build", recording(rec, clock)):
            res, wall, clock = timed_run(RunConfig(out=work / f"offline-run{rep}", **base), clock)
        runs.append((wall, res, clock, rec))
    per_stage = min(directs, key=lambda d: sum(d.values()))
    wall, res, clock, rec = min(runs, key=lambda r: r[0])
    raw = sum(per_stage.values())
    inside = sum(r.seconds for r in rec.values())
    work_stages = clock.excl.get("image decode + sha256", 0) + clock.excl.get("salient (spaCy)", 0)
    out = {"source": label, "images": res.counts["images"], "run_wall_s": wall, "direct_calls_s": raw,
           "direct_all_s": [sum(d.values()) for d in directs], "run_all_s": [r[0] for r in runs],
           "calls_inside_run_s": inside, "overhead": (wall - raw) / raw, "overhead_within_run": (wall - inside) / inside,
           "overhead_without_image_and_salient_stages": (wall - work_stages - raw) / raw,
           "direct_per_stage_s": per_stage, "counts": res.counts}
    print(f"\n## Offline backends: {label}, chunk size {chunk}, best of {repeats} (runs: "
          f"{', '.join(f'{r[0]:.2f}' for r in runs)} s; direct: {', '.join(f'{sum(d.values()):.2f}' for d in directs)} s)\n")
    print(f"| {'measure':<52} | {'seconds':>8} |\n|{'-' * 54}|{'-' * 9}:|")
    for k, v in [("full run (5 stages + export)", wall),
                 ("describer + miner + writer called directly", raw),
                 ("  of which captions describer", per_stage["describer"]),
                 ("  of which lexical miner", per_stage["miner"]),
                 ("  of which substitution writer", per_stage["writer"]),
                 ("the same calls, timed inside the run", inside),
                 ("image verification + spaCy salient (no backend)", work_stages)]:
        print(f"| {k:<52} | {v:8.3f} |")
    print(f"\nOverhead of the run over the direct calls: **{100 * out['overhead']:.1f}%** (target <= 5%); "
          f"{100 * out['overhead_without_image_and_salient_stages']:.1f}% without the image and salient stages "
          f"(real work that has no backend to compare with). Within the same run, time outside the three "
          f"implementations is {100 * out['overhead_within_run']:.1f}% of the time inside them (immune to run-to-run "
          f"noise of the miner). {res.counts['images_ok']} images, "
          f"{res.counts['salient']} salient words, {res.counts['associations']} associations, "
          f"{res.counts['captions']} captions. Where the time goes:\n")
    print_breakdown(wall, clock)
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=2000, help="synthetic images for the zero-latency run")
    ap.add_argument("--offline-n", type=int, default=100, help="images for the offline-backend comparison")
    ap.add_argument("--chunk-size", type=int, default=256, help="images per part (256: the offline default)")
    ap.add_argument("--repeats", type=int, default=2, help="offline: interleaved repeats, best of each side")
    ap.add_argument("--skip-offline", action="store_true")
    ap.add_argument("--json", type=Path, help="also write the numbers here")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        work = Path(tmp)
        result = {"instant": bench_instant(args.n, args.chunk_size, work)}
        if not args.skip_offline:
            result["offline"] = bench_offline(args.offline_n, args.chunk_size, work, args.repeats)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str))
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
