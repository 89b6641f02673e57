"""Compute a run's metrics and write ``metrics.json`` + a self-contained ``report.html``."""
from __future__ import annotations

import json
import math
from pathlib import Path

from tqdm import tqdm

from visassoc.records import LEVELS
from visassoc.report import grounding, metrics
from visassoc.report.data import Run, load_run


def compute_metrics(run: Run, clip: str | None = None, instances: str | Path | None = None, seed: int = 0,
                    n_boot: int = 1000, clip_batch: int = 32, foil: list[str | Path] | None = None,
                    fluency: int = 0, fluency_images: list[str] | None = None) -> dict:
    """All metrics of one run (see the module docs of ``metrics``, ``grounding`` and ``fluency``) as a
    JSON-ready dict.

    ``foil``: official FOIL-COCO annotation files; their foil captions replace the FOIL-style negatives made
    from COCO instances. With ``clip``, the per-pair CLIPScore rows are under the key ``_clipscore_pairs``.
    ``fluency``: images sampled for the SmolLM2 fluency gap (0: not measured)."""
    if clip:
        grounding.load_clip(clip)  # fail before the slow steps when the model cannot load
    steps = tqdm(total=5, desc=f"metrics {run.name}", unit="step")
    ok = sum(r.get("status", "ok") == "ok" for r in run.images)
    out: dict = {
        "run": {"dir": str(run.root), "name": run.name, "seed": run.manifest.get("seed"),
                "config": {k: run.config.get(k) for k in ("backend", "miner", "writer", "coco", "images") if k in run.config}},
        "counts": {"images": len(run.images), "images_ok": ok, "images_error": len(run.images) - ok,
                   "salient_words": len(run.salient), "associations": len(run.associations),
                   "captions": len(run.captions), "errors": len(run.errors)},
        "settings": {"seed": seed, "bootstrap": n_boot, "clip": clip},
    }
    out["validity"] = metrics.validity(run.captions, run.errors, run.manifest)
    steps.update()
    out["abstraction"] = metrics.abstraction(run.associations, run.captions, run.salient, n_boot, seed)
    steps.update()
    out["diversity"] = metrics.diversity(run.associations, run.captions)
    steps.update()
    if foil:
        inst = None
        foils, foil_note = grounding.official_foil_negatives(run, [Path(f) for f in foil], seed)
        source = "official FOIL-COCO: " + ", ".join(str(f) for f in foil)
    else:
        inst = Path(instances) if instances else grounding.instances_path_for(run)
        if inst is not None and not inst.exists():
            raise FileNotFoundError(f"COCO instances file {inst} does not exist")
        foils, foil_note = grounding.foil_negatives(run, inst, seed)
        source = "generated: a present COCO object swapped for an absent one of its supercategory"
    g = {"text_retrieval": grounding.text_retrieval(run, run.captions),
         "foil": {"n": len(foils), "source": source, "instances": str(inst) if inst else None, "note": foil_note,
                  "examples": foils[:5]}}
    steps.update()
    pairs = None
    if clip:
        g["clipscore"], pairs = grounding.clipscore_metrics(run, clip, run.captions, foils, clip_batch, seed)
    else:
        g["clipscore"] = {"note": "no CLIP model given (--clip MODEL): CLIPScore not computed"}
    steps.update()
    steps.close()
    out["grounding"] = g
    if fluency:
        from visassoc.report.fluency import fluency as fluency_gap

        out["fluency"] = fluency_gap(run, fluency, seed, n_boot, prefer=fluency_images)
    else:
        out["fluency"] = {"note": "not measured (visassoc report --fluency N scores N images with SmolLM2)"}
    out = _clean(out)
    if pairs is not None:
        out["_clipscore_pairs"] = pairs
    return out


def _clean(x):
    """NaN/inf -> None and tuple -> list, so metrics.json is strict JSON."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, float) and (math.isnan(x) or math.isinf(x)):
        return None
    return x


def build_report(run_dir: str | Path, out_dir: str | Path | None = None, clip: str | None = None,
                 compare: str | Path | None = None, instances: str | Path | None = None, gallery: int = 12,
                 seed: int = 0, n_boot: int = 1000, foil: list[str | Path] | None = None, fluency: int = 0) -> dict:
    """Measure ``run_dir`` and write ``metrics.json`` and ``report.html`` into ``out_dir`` (default: the run dir).

    ``clip``: a CLIP model (local dir or cached HF id) for CLIPScore; ``compare``: a second run dir shown
    side by side; ``instances``: COCO instances JSON for FOIL (default: found next to the run's captions file);
    ``foil``: official FOIL-COCO files used as the negatives instead. With ``clip``, every scored
    (image, column, caption) pair of the paired table goes to ``clipscore_pairs.jsonl``.
    Returns the metrics dict (with ``"compare"`` holding the second run's metrics when given).
    """
    from visassoc.report.html import render

    run = load_run(run_dir)
    if foil:
        grounding.load_foil_file([Path(f) for f in foil])  # a bad file fails before any output or slow step
    out = Path(out_dir) if out_dir else run.root
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} is a file, not a folder")
    out.mkdir(parents=True, exist_ok=True)
    m = compute_metrics(run, clip, instances, seed, n_boot, foil=foil, fluency=fluency)
    _write_pairs(out / "clipscore_pairs.jsonl", m.pop("_clipscore_pairs", None))
    runs = [(run, m)]
    if compare:
        run_b = load_run(compare)
        if run_b.name == run.name:
            run_b.name = f"{run_b.name} (B)"
        m_b = compute_metrics(run_b, clip, None, seed, n_boot, foil=foil, fluency=fluency,
                              fluency_images=m.get("fluency", {}).get("images"))
        _write_pairs(out / "clipscore_pairs-compare.jsonl", m_b.pop("_clipscore_pairs", None))
        runs.append((run_b, m_b))
        m = {**m, "compare": {"run_dir": str(run_b.root), "metrics": m_b}}
    (out / "metrics.json").write_text(json.dumps(m, indent=2, sort_keys=False))
    (out / "report.html").write_text(render(runs, gallery=gallery, seed=seed), encoding="utf-8")
    return m


def _write_pairs(path: Path, rows: list[dict] | None) -> None:
    if rows is not None:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def summary_lines(m: dict) -> list[str]:
    """A few human-readable lines for the CLI."""
    v = m["validity"]["overall"]
    conc = m["abstraction"]["association_concreteness"]
    lines = [f"images {m['counts']['images']}, captions {m['counts']['captions']}, "
             f"valid {v['share']:.1%}" if v["share"] is not None else "no captions",
             "association concreteness by level: "
             + ", ".join(f"{lv}:{conc['per_level'][str(lv)]['mean']:.2f}" for lv in LEVELS
                         if conc["per_level"][str(lv)]["mean"] is not None)
             + (f" (Spearman rho {conc['monotonicity']['rho']:.2f})" if conc["monotonicity"]["rho"] is not None else "")]
    tr = m["grounding"]["text_retrieval"]
    if "per_level" in tr:
        r = lambda c: "-" if not c else f"{c['r_at_1']['share']:.2f}"  # noqa: E731
        lines.append(f"text R@1 (pool {tr['pool_size']}): human {r(tr['human_caption'])}, "
                     + ", ".join(f"L{lv} {r(tr['per_level'][str(lv)])}" for lv in LEVELS))
    fl = m.get("fluency", {})
    if "per_level" in fl:
        g = lambda lv: fl["per_level"][str(lv)]["mean"]  # noqa: E731
        lines.append(f"fluency gap vs human caption (SmolLM2 nats/token, {fl['n_images']} images): "
                     + ", ".join(f"L{lv} {g(lv):+.2f}" for lv in LEVELS if g(lv) is not None))
    cs = m["grounding"]["clipscore"]
    if "per_level" in cs and cs["below_foil"]:
        lines.append(f"CLIPScore below FOIL negatives at levels {cs['below_foil']}")
    if "layout" in cs:
        lines += grounding.layout_lines(cs["layout"])
    return lines
