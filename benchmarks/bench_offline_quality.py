"""The offline default (captions describer, lexical miner, substitution writer) on real data.

    python benchmarks/bench_offline_quality.py --out /tmp/oq [--base-one DIR --base-five DIR] [--fluency 100]

Runs COCO-mini val twice: with ONE human caption per image (the first of each image, written to a
temp file at run time, the way most collections come) and with all five. Prints, per variant,
validity, distinct associations per level with the most used ones, slot tag agreement, association
and caption-word concreteness and the SmolLM2 fluency gap (``check_run.measure``). ``--base-*``:
runs of the same data made with an older commit, measured alongside (the fluency target compares
level 5 against them on the same sampled images).
Targets: valid >= 99% both; distinct >= 0.5 and no association above 2% of a level's captions;
tag agreement >= 95%; level-5 fluency gap <= half the baseline's; association concreteness strictly
down with drop >= 1.5.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from check_run import measure, print_table  # noqa: E402

_ROOT = Path(__file__).resolve().parents[1]
COCO = next((p / "shared" / "data" / "coco-mini" for p in (_ROOT, _ROOT.parent, _ROOT.parent.parent)
             if (p / "shared" / "data" / "coco-mini").is_dir()), _ROOT / "shared" / "data" / "coco-mini")


def one_caption_file(src: Path, dest: Path) -> Path:
    """The captions file with only the first caption (lowest annotation id) of each image."""
    d = json.loads(src.read_text())
    seen, keep = set(), []
    for a in sorted(d["annotations"], key=lambda a: a["id"]):
        if a["image_id"] not in seen:
            seen.add(a["image_id"])
            keep.append(a)
    d["annotations"] = keep
    dest.write_text(json.dumps(d))
    return dest


def run(captions: Path, images: Path, out: Path) -> None:
    cmd = [sys.executable, "-m", "visassoc", "run", "--coco", str(captions), "--images", str(images), "--out", str(out)]
    subprocess.run(cmd, check=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--coco", type=Path, default=COCO)
    ap.add_argument("--base-one", type=Path)
    ap.add_argument("--base-five", type=Path)
    ap.add_argument("--fluency", type=int, default=100, help="images sampled for the fluency gap (0: off; 100: all of COCO-mini val, ~6 min)")
    a = ap.parse_args()
    ann, images = a.coco / "annotations" / "captions_val2017.json", a.coco / "images" / "val2017"
    a.out.mkdir(parents=True, exist_ok=True)
    # a fixed path (the run's key holds it), so a second call reuses the finished run
    one = one_caption_file(ann, a.out / "captions_val2017_one.json")
    run(one, images, a.out / "one")
    run(ann, images, a.out / "five")
    ms = {}
    ms["one caption"] = measure(a.out / "one", a.fluency)
    sample = ms["one caption"].get("fluency_images")
    if a.base_one:
        ms["one caption, base"] = measure(a.base_one, a.fluency, prefer=sample)
    ms["five captions"] = measure(a.out / "five", a.fluency)
    if a.base_five:
        ms["five captions, base"] = measure(a.base_five, a.fluency, prefer=ms["five captions"].get("fluency_images"))
    print_table(ms)
    for v in ("one caption", "five captions"):
        b = ms.get(f"{v}, base")
        if b and "fluency" in b:
            new, old = ms[v]["fluency"][4], b["fluency"][4]
            print(f"{v}: level-5 fluency gap {new:+.2f} vs base {old:+.2f}: <= half: {new <= old / 2}")


if __name__ == "__main__":
    main()
