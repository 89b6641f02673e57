"""Analyze a human study: read the tool's export, join it with ``study_key.json``, summarise.

Readers: Potato (its ``annotation_output`` dir of ``*/user_state.json``, or its
``annotations.jsonl`` export), Label Studio (JSON export with ``annotations``, or JSON-MIN / CSV
rows) and a plain CSV/JSONL with ``item_id, annotator, grounded, abstraction`` columns.
"""
from __future__ import annotations

import csv
import json
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from visassoc.records import LEVELS
from visassoc.report.metrics import mean_ci, monotonicity, wilson
from visassoc.study.export import GROUNDED, KEY_FILE

CHECK_KINDS = ("human", "foil", "mismatch")


class AnnotationError(ValueError):
    """The annotation export cannot be read; one line says why."""


# ------------------------------------------------------------------ readers
def _norm_grounded(v) -> str | None:
    if isinstance(v, list):
        v = v[0] if v else None
    if isinstance(v, dict):  # Label Studio JSON-MIN may nest {"choices": [...]}
        v = (v.get("choices") or [None])[0]
    v = str(v).strip().lower() if v is not None else None
    return v if v in GROUNDED else None


def _norm_abstraction(v) -> int | None:
    if isinstance(v, list):
        v = v[0] if v else None
    if isinstance(v, dict):
        v = v.get("rating", (v.get("choices") or [None])[0])
    try:
        x = int(float(str(v).strip()[:3].split()[0]))
    except (ValueError, TypeError, IndexError):
        return None
    return x if 1 <= x <= 5 else None


def _potato_state(path: Path) -> list[dict]:
    d = json.loads(path.read_text())
    user = d.get("user_id") or path.parent.name
    rows = []
    for iid, pairs in (d.get("instance_id_to_label_to_value") or {}).items():
        labels = defaultdict(dict)
        for lab, val in pairs:
            labels[lab["schema"]][lab["name"]] = val
        rows.append(_from_labels(iid, user, labels))
    return rows


def _from_labels(iid, user, labels: dict) -> dict:
    g = labels.get("grounded") or {}
    a = labels.get("abstraction") or {}
    return {"item_id": str(iid), "annotator": str(user),
            "grounded": next(iter(g), None) if g else None, "abstraction": next(iter(a), None) if a else None}


def _label_studio(tasks: list[dict]) -> list[dict]:
    rows = []
    for t in tasks:
        iid = (t.get("data") or {}).get("item_id")
        for ann in t.get("annotations") or []:
            if ann.get("was_cancelled"):
                continue
            who = ann.get("completed_by")
            if isinstance(who, dict):
                who = who.get("email") or who.get("id")
            r = {"item_id": str(iid), "annotator": str(who), "grounded": None, "abstraction": None}
            for res in ann.get("result") or []:
                val = res.get("value") or {}
                if res.get("from_name") == "grounded":
                    r["grounded"] = (val.get("choices") or [None])[0]
                elif res.get("from_name") == "abstraction":
                    r["abstraction"] = val.get("rating", (val.get("choices") or [None])[0])
            rows.append(r)
    return rows


def _flat(rows: list[dict]) -> list[dict]:
    """Rows already one per (item, annotator): plain CSV/JSONL or Label Studio JSON-MIN/CSV."""
    out = []
    for r in rows:
        if "labels" in r and "instance_id" in r:  # Potato annotations.jsonl
            out.append(_from_labels(r["instance_id"], r.get("user_id"), r["labels"]))
            continue
        who = r.get("annotator", r.get("user_id", r.get("completed_by")))
        if isinstance(who, dict):
            who = who.get("email") or who.get("id")
        out.append({"item_id": str(r.get("item_id", r.get("id"))), "annotator": str(who),
                    "grounded": r.get("grounded"), "abstraction": r.get("abstraction")})
    return out


def read_annotations(path: str | Path) -> list[dict]:
    """Raw (item_id, annotator, grounded, abstraction) rows from any supported export."""
    p = Path(path)
    if not p.exists():
        raise AnnotationError(f"annotations {p} do not exist")
    if p.is_dir():
        states = sorted(p.rglob("user_state.json"))
        if states:
            return [r for s in states for r in _potato_state(s)]
        jl = sorted(p.rglob("annotations.jsonl"))
        if jl:
            return read_annotations(jl[0])
        raise AnnotationError(f"{p} holds no Potato user_state.json or annotations.jsonl")
    text = p.read_text(encoding="utf-8")
    if p.suffix.lower() == ".csv":
        return _flat(list(csv.DictReader(text.splitlines())))
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        try:
            data = [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as exc:
            raise AnnotationError(f"{p} is neither JSON, JSON lines nor CSV: {exc}") from exc
    if isinstance(data, dict) and "instance_id_to_label_to_value" in data:
        return _potato_state(p)
    if not isinstance(data, list):
        raise AnnotationError(f"{p}: expected a list of tasks or rows, got {type(data).__name__}")
    if data and isinstance(data[0], dict) and "annotations" in data[0]:
        return _label_studio(data)
    return _flat(data)


def find_key(annotations: Path) -> Path:
    """study_key.json in the annotations' folder or up to three folders above it."""
    p = annotations.resolve()
    for d in [p if p.is_dir() else p.parent, *list((p if p.is_dir() else p.parent).parents)[:3]]:
        if (d / KEY_FILE).exists():
            return d / KEY_FILE
    raise AnnotationError(f"no {KEY_FILE} found near {annotations}: pass --key (written by 'study export')")


# ------------------------------------------------------------------ statistics
def krippendorff_alpha(rows: list[dict], field: str, level: str, codes: dict | None = None) -> float | None:
    """Krippendorff's alpha over annotators x items for one answer field (None if < 2 raters overlap)."""
    import krippendorff

    users = sorted({r["annotator"] for r in rows if r[field] is not None})
    items = sorted({r["item_id"] for r in rows if r[field] is not None})
    if len(users) < 2:
        return None
    ui, ii = {u: k for k, u in enumerate(users)}, {t: k for k, t in enumerate(items)}
    m = np.full((len(users), len(items)), np.nan)
    for r in rows:
        if r[field] is not None:
            m[ui[r["annotator"]], ii[r["item_id"]]] = codes[r[field]] if codes else r[field]
    pairable = (~np.isnan(m)).sum(axis=0) >= 2
    if not pairable.any() or len(np.unique(m[:, pairable][~np.isnan(m[:, pairable])])) < 2:
        return None
    return float(krippendorff.alpha(reliability_data=m, level_of_measurement=level))


def _group(rows: list[dict]) -> dict:
    g = [r["grounded"] for r in rows if r["grounded"] is not None]
    c = Counter(g)
    return {"annotations": len(rows), "grounded_yes": wilson(c["yes"], len(g)),
            "grounded_yes_or_partly": wilson(c["yes"] + c["partly"], len(g)),
            "grounded_counts": {k: c[k] for k in GROUNDED},
            "abstraction": mean_ci([r["abstraction"] for r in rows if r["abstraction"] is not None])}


def summarise(raw: list[dict], key: dict, min_pass: float = 0.75, keep_failing: bool = False) -> dict:
    """Join raw rows with the key; per-level numbers, agreement and attention checks."""
    items = {it["item_id"]: it for it in key["items"]}
    rows, errors, seen = [], [], {}
    for r in raw:
        g, a = _norm_grounded(r["grounded"]), _norm_abstraction(r["abstraction"])
        if r["item_id"] not in items:
            errors.append({**r, "error": "item_id not in study key"})
        elif g is None and a is None:
            errors.append({**r, "error": "neither a grounded answer (yes/partly/no) nor an abstraction rating 1-5"})
        else:
            seen[(r["item_id"], r["annotator"])] = {**r, "grounded": g, "abstraction": a,
                                                   **{k: items[r["item_id"]][k] for k in ("kind", "level")}}
    rows = list(seen.values())  # a later answer of the same annotator to the same item wins
    att = {}
    for u in sorted({r["annotator"] for r in rows}):
        checks = [r for r in rows if r["annotator"] == u and r["kind"] in CHECK_KINDS and r["grounded"] is not None]
        passed = sum((r["grounded"] == "yes") == (r["kind"] == "human") for r in checks)
        att[u] = {"checks": len(checks), "passed": passed, "pass_rate": passed / len(checks) if checks else None,
                  "failed": bool(checks) and passed / len(checks) < min_pass}
    failing = sorted(u for u, s in att.items() if s["failed"])
    kept = rows if keep_failing else [r for r in rows if r["annotator"] not in failing]
    creative = [r for r in kept if r["kind"] == "creative"]
    abst = [r for r in creative if r["abstraction"] is not None]
    return {
        "annotations_read": len(raw), "annotations_used": len(kept), "annotators": len(att),
        "errors": errors[:50], "error_count": len(errors),
        "attention": {"min_pass_rate": min_pass, "per_annotator": att, "failing": failing,
                      "excluded": [] if keep_failing else failing},
        "per_level": {str(lv): _group([r for r in creative if r["level"] == lv]) for lv in LEVELS},
        "checks": {k: _group([r for r in kept if r["kind"] == k]) for k in CHECK_KINDS
                   if any(r["kind"] == k for r in kept)},
        "abstraction_vs_level": monotonicity([r["level"] for r in abst], [float(r["abstraction"]) for r in abst]),
        "agreement": {
            "grounded_nominal": krippendorff_alpha(kept, "grounded", "nominal", {"no": 0, "partly": 1, "yes": 2}),
            "grounded_ordinal": krippendorff_alpha(kept, "grounded", "ordinal", {"no": 0, "partly": 1, "yes": 2}),
            "abstraction_ordinal": krippendorff_alpha(kept, "abstraction", "ordinal"),
            "abstraction_interval": krippendorff_alpha(kept, "abstraction", "interval"),
        },
    }


def _fmt(x, spec=".2f"):
    return "–" if x is None else format(x, spec)


def markdown(s: dict) -> str:
    """The per-level table and agreement as Markdown."""
    lines = ["| level | annotations | grounded (yes) | yes or partly | abstraction (mean, 95% CI) |",
             "|---|---|---|---|---|"]
    groups = [(lv, s["per_level"][lv]) for lv in s["per_level"]] + list(s["checks"].items())
    for name, g in groups:
        y, yp, a = g["grounded_yes"], g["grounded_yes_or_partly"], g["abstraction"]
        ci = f"{_fmt(a['mean'])} ({_fmt(a['lo'])}–{_fmt(a['hi'])})" if a["mean"] is not None else "–"
        lines.append(f"| {name} | {g['annotations']} | {_fmt(y['share'], '.1%')} | {_fmt(yp['share'], '.1%')} | {ci} |")
    m, ag, at = s["abstraction_vs_level"], s["agreement"], s["attention"]
    lines += ["", f"Spearman rho, rated abstraction vs intended level: {_fmt(m['rho'])} (p {_fmt(m['p'], '.3g')}, "
                  f"n {m['n']})",
              f"Krippendorff's alpha: grounded {_fmt(ag['grounded_nominal'])} (nominal), "
              f"abstraction {_fmt(ag['abstraction_ordinal'])} (ordinal) / {_fmt(ag['abstraction_interval'])} (interval)",
              f"Annotators: {s['annotators']}; failing attention checks (pass rate < {at['min_pass_rate']:.0%}): "
              + (", ".join(at["failing"]) or "none")
              + ("" if not at["failing"] else " (excluded)" if at["excluded"] else " (kept)"),
              f"Annotations read {s['annotations_read']}, used {s['annotations_used']}, unreadable {s['error_count']}"]
    return "\n".join(lines) + "\n"


def _plot(s: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    lv = [int(k) for k in s["per_level"]]
    ab = [s["per_level"][str(k)]["abstraction"] for k in lv]
    gy = [s["per_level"][str(k)]["grounded_yes"] for k in lv]
    pts = [(x, a) for x, a in zip(lv, ab) if a["mean"] is not None]
    if pts:
        ax.errorbar([x for x, _ in pts], [a["mean"] for _, a in pts],
                    yerr=[[a["mean"] - a["lo"] for _, a in pts], [a["hi"] - a["mean"] for _, a in pts]],
                    marker="o", capsize=3, color="#3b6ea8", label="rated abstraction (1–5)")
    ax.plot(lv, lv, ls=":", color="#999", label="intended level")
    ax.set_ylim(0.5, 5.5)
    ax.set_xticks(lv)
    ax.set_xlabel("intended level")
    ax.set_ylabel("abstraction")
    ax2 = ax.twinx()
    ax2.plot([x for x, g in zip(lv, gy) if g["share"] is not None], [g["share"] for g in gy if g["share"] is not None],
             marker="s", color="#d1603d", label="grounded: yes")
    ax2.set_ylim(0, 1.05)
    ax2.set_ylabel("share grounded")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=7, frameon=False, loc="lower left")
    ax.set_title("Human study")
    fig.savefig(path, bbox_inches="tight", metadata={"Date": None} if path.suffix == ".svg" else None)
    plt.close(fig)


def analyze(annotations: str | Path, out_dir: str | Path, key: str | Path | None = None, min_pass: float = 0.75,
            keep_failing: bool = False) -> dict:
    """Read an annotation export and write ``analysis.json``, ``analysis.md`` and ``analysis.png`` to ``out_dir``.

    ``key``: the ``study_key.json`` written by ``export_study`` (found next to the annotations if omitted).
    Annotators whose attention-check pass rate is below ``min_pass`` are excluded unless ``keep_failing``.
    """
    ann = Path(annotations)
    if not ann.exists():
        raise AnnotationError(f"annotations {ann} do not exist")
    key_path = Path(key) if key else find_key(ann)
    try:
        key_data = json.loads(key_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise AnnotationError(f"cannot read study key {key_path}: {exc}") from exc
    raw = read_annotations(ann)
    if not raw:
        raise AnnotationError(f"{ann} holds no annotations")
    s = summarise(raw, key_data, min_pass, keep_failing)
    s["annotations_path"], s["key"] = str(ann), str(key_path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "analysis.json").write_text(json.dumps(s, indent=1))
    (out / "analysis.md").write_text(markdown(s))
    _plot(s, out / "analysis.png")
    return s
