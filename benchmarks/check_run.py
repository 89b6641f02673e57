"""Check a finished run against the pipeline-core targets and print a table.

    python benchmarks/check_run.py runs/coco

Targets (issue: pipeline core): >= 95% of images with associations at all 5 levels, >= 99% of
captions valid, mean Brysbaert concreteness of associations strictly decreasing 1->5 with a
drop >= 1.5, and mean concreteness of caption words strictly decreasing.
"""
from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import pyarrow.parquet as pq

from visassoc.lexicon import concreteness, spacy_nlp


def caption_concreteness(text: str) -> float | None:
    vals = [concreteness(t.lemma_.lower()) for t in spacy_nlp()(text) if t.pos_ in ("NOUN", "VERB", "ADJ") and not t.is_stop]
    vals = [v for v in vals if v is not None]
    return sum(vals) / len(vals) if vals else None


def main(run: Path) -> None:
    imgs = pq.read_table(run / "images.parquet").to_pylist()
    assoc = pq.read_table(run / "associations.parquet").to_pylist()
    caps = pq.read_table(run / "captions.parquet").to_pylist()
    levels_per_image = defaultdict(set)
    for a in assoc:
        levels_per_image[a["image_id"]].add(a["level"])
    ok = [i for i in imgs if i["status"] == "ok"]
    full = sum(1 for i in ok if levels_per_image[i["image_id"]] == {1, 2, 3, 4, 5})
    a_conc, c_conc = defaultdict(list), defaultdict(list)
    for a in assoc:
        v = concreteness(a["association"])
        if v is not None:
            a_conc[a["level"]].append(v)
    for c in caps:
        v = caption_concreteness(c["caption"])
        if v is not None:
            c_conc[c["level"]].append(v)
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    am = [mean(a_conc[lv]) for lv in range(1, 6)]
    cm = [mean(c_conc[lv]) for lv in range(1, 6)]
    valid = sum(c["valid"] for c in caps)
    print(f"run: {run}  images ok {len(ok)}/{len(imgs)}  captions {len(caps)}")
    print(f"{'measure':<44} {'L1':>5} {'L2':>5} {'L3':>5} {'L4':>5} {'L5':>5}  target")
    print(f"{'mean concreteness of associations':<44} " + " ".join(f"{x:5.2f}" for x in am)
          + f"  strictly down, drop {am[0] - am[4]:.2f} >= 1.5: {all(a > b for a, b in zip(am, am[1:])) and am[0] - am[4] >= 1.5}")
    print(f"{'mean concreteness of caption content words':<44} " + " ".join(f"{x:5.2f}" for x in cm)
          + f"  strictly down: {all(a > b for a, b in zip(cm, cm[1:]))}")
    print(f"images with associations at all 5 levels: {full}/{len(ok)} = {full / max(1, len(ok)):.1%} (target >= 95%)")
    print(f"valid captions: {valid}/{len(caps)} = {valid / max(1, len(caps)):.1%} (target >= 99%)")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/demo"))
