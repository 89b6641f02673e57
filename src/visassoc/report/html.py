"""The self-contained report page: summary cards, plots and a gallery of association ladders.

Everything (plots, thumbnails, CSS) is inlined; no script, no remote resource. Model text is
escaped by Jinja2's autoescape.
"""
from __future__ import annotations

import base64
import io
import random
from collections import defaultdict

from jinja2 import Environment

from visassoc.records import LEVEL_NAMES, LEVELS
from visassoc.report import plots


def thumbnail(path, size: int = 320) -> str | None:
    """A JPEG data URI of the image scaled to fit ``size`` px, None if it cannot be read."""
    from visassoc.images import ImageError, open_rgb

    try:
        buf = io.BytesIO()
        open_rgb(path, max_side=size).save(buf, format="JPEG", quality=80)
    except (ImageError, OSError, TypeError):
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def _ladders(run, image_id: str) -> list[dict]:
    """Per salient word: its associations and caption at each level."""
    assoc = defaultdict(list)
    for r in run.associations:
        if r["image_id"] == image_id:
            assoc[(r["word"], r["level"])].append((r["rank"], r["association"]))
    caps = {(r["word"], r["level"]): r for r in run.captions if r["image_id"] == image_id}
    out = []
    for s in sorted((r for r in run.salient if r["image_id"] == image_id), key=lambda r: r["rank"]):
        rows = []
        for lv in LEVELS:
            c = caps.get((s["word"], lv))
            rows.append({"level": lv, "associations": [a for _, a in sorted(assoc.get((s["word"], lv), []))],
                         "caption": c["caption"] if c else None, "valid": bool(c and c["valid"]),
                         "reason": c.get("reason") if c else None, "chosen": c["association"] if c else None})
        out.append({"word": s["word"], "pos": s["pos"], "concreteness": s["concreteness"], "rows": rows})
    return out


def gallery_items(runs, k: int, seed: int) -> list[dict]:
    """k sampled images of the first run (seeded), each with every run's ladders for it."""
    first = runs[0][0]
    ids = sorted({r["image_id"] for r in first.captions} or {r["image_id"] for r in first.images})
    rng = random.Random(seed)
    picked = sorted(rng.sample(ids, min(k, len(ids))))
    items = []
    for image_id in picked:
        p = first.image_path(image_id)
        items.append({"image_id": image_id, "thumb": thumbnail(p) if p else None,
                      "caption": first.short_caption.get(image_id, (None, None))[1],
                      "runs": [{"name": run.name, "ladders": _ladders(run, image_id)} for run, _ in runs]})
    return items


def _fmt(x, spec=".2f"):
    return "–" if x is None else format(x, spec)


def cards(m: dict) -> list[tuple[str, str, str]]:
    """(label, value, hint) summary cards for one run's metrics."""
    v = m["validity"]["overall"]
    ca = m["abstraction"]["association_concreteness"]
    cc = m["abstraction"]["caption_concreteness"]
    md = m["abstraction"]["minilm_distance"]
    tr = m["grounding"]["text_retrieval"]
    cs = m["grounding"]["clipscore"]
    out = [("images", f"{m['counts']['images_ok']}/{m['counts']['images']}", "read ok / total"),
           ("captions", str(m["counts"]["captions"]), f"{m['counts']['errors']} error rows"),
           ("valid", _fmt(v["share"], ".1%"), f"95% CI {_fmt(v['lo'], '.1%')}–{_fmt(v['hi'], '.1%')}"),
           ("concreteness ρ", _fmt(ca["monotonicity"]["rho"]), "association concreteness vs level (want < 0)"),
           ("caption concreteness ρ", _fmt(cc["monotonicity"]["rho"]), "caption words vs level (want < 0)"),
           ("semantic distance ρ", _fmt(md["monotonicity"]["rho"]), "MiniLM distance to word vs level (want > 0)")]
    if "per_level" in tr:
        r = lambda c: _fmt(c["r_at_1"]["share"] if c else None)  # noqa: E731
        out.append(("text R@1", f"{r(tr['per_level']['1'])} → {r(tr['per_level']['5'])}",
                    f"level 1 → 5; human caption {r(tr['human_caption'])}; chance {_fmt(tr['chance_r_at_1'])}"))
    if "per_level" in cs:
        out.append(("CLIPScore", f"{_fmt(cs['per_level']['1']['mean'])} → {_fmt(cs['per_level']['5']['mean'])}",
                    f"FOIL {_fmt(cs['foil']['mean'])}; below FOIL at levels {cs['below_foil'] or 'none'}"))
    out.append(("distinct-2", _fmt(m["diversity"]["overall"]["distinct_2"]), "of valid captions"))
    return out


def figures(runs) -> list[tuple[str, str]]:
    """(caption, data URI) of each plot, every run drawn on the same axes."""
    ms = {run.name: m for run, m in runs}
    ab = lambda key: {n: m["abstraction"][key]["per_level"] for n, m in ms.items()}  # noqa: E731
    first = runs[0][1]
    figs = [("Concreteness falls as associations get more abstract",
             plots.level_plot(ab("association_concreteness"), "Concreteness of associations", "Brysbaert (1–5)",
                              {"salient words": first["abstraction"]["salient_word_concreteness"]["mean"]})),
            ("Concreteness of caption words", plots.level_plot(ab("caption_concreteness"), "Caption concreteness",
                                                               "Brysbaert (1–5)")),
            ("Semantic distance between association and original word",
             plots.level_plot(ab("minilm_distance"), "Distance to the word", "1 − MiniLM cosine")),
            ("WordNet path distance", plots.level_plot(ab("wordnet_distance"), "WordNet distance", "path length"))]
    tr = {n: m["grounding"]["text_retrieval"] for n, m in ms.items()}
    if all("per_level" in t for t in tr.values()):
        series = {n: {lv: (t["per_level"][lv] or {}).get("r_at_1") for lv in t["per_level"]} for n, t in tr.items()}
        hc = first["grounding"]["text_retrieval"]["human_caption"]
        figs.append(("Grounding (text proxy): retrieving the image from the caption",
                     plots.level_plot(series, "Text-proxy grounding", "R@1", key="share", refs={
                         "human caption": hc["r_at_1"]["share"] if hc else None,
                         "chance": first["grounding"]["text_retrieval"]["chance_r_at_1"]})))
    cs = {n: m["grounding"]["clipscore"] for n, m in ms.items()}
    if all("per_level" in c for c in cs.values()):
        c0 = first["grounding"]["clipscore"]
        figs.append(("CLIPScore per level; below the FOIL line a caption fits the image worse than a wrong one",
                     plots.level_plot({n: c["per_level"] for n, c in cs.items()}, "CLIPScore", "CLIP-S",
                                      refs={"human caption": c0["human_caption"]["mean"], "FOIL": c0["foil"]["mean"]})))
    fl = {n: m["fluency"]["per_level"] for n, m in ms.items() if "per_level" in m.get("fluency", {})}
    if fl:
        figs.append(("Fluency gap: SmolLM2 per-token NLL of the creative caption minus the human caption's",
                     plots.level_plot(fl, "Fluency gap", "Δ NLL (nats/token)", refs={"human caption": 0.0})))
    figs.append(("Validity", plots.validity_plot({n: m["validity"]["per_level"] for n, m in ms.items()})))
    figs.append(("Diversity", plots.diversity_plot({n: m["diversity"]["per_level"] for n, m in ms.items()})))
    return figs


def level_table(m: dict) -> list[dict]:
    """One row per level with the headline numbers."""
    rows = []
    for lv in map(str, LEVELS):
        tr = m["grounding"]["text_retrieval"].get("per_level", {}).get(lv)
        cs = m["grounding"]["clipscore"].get("per_level", {}).get(lv)
        fl = m.get("fluency", {}).get("per_level", {}).get(lv)
        rows.append({"level": lv, "name": LEVEL_NAMES[int(lv)],
                     "valid": _fmt(m["validity"]["per_level"][lv]["share"], ".0%"),
                     "assoc_conc": _fmt(m["abstraction"]["association_concreteness"]["per_level"][lv]["mean"]),
                     "cap_conc": _fmt(m["abstraction"]["caption_concreteness"]["per_level"][lv]["mean"]),
                     "minilm": _fmt(m["abstraction"]["minilm_distance"]["per_level"][lv]["mean"]),
                     "wordnet": _fmt(m["abstraction"]["wordnet_distance"]["per_level"][lv]["mean"], ".1f"),
                     "r1": _fmt(tr["r_at_1"]["share"] if tr else None),
                     "clip": _fmt(cs["mean"] if cs else None),
                     "fluency": _fmt(fl["mean"] if fl else None, "+.2f"),
                     "below_foil": int(lv) in m["grounding"]["clipscore"].get("below_foil", []),
                     "d2": _fmt(m["diversity"]["per_level"][lv]["distinct_2"]),
                     "top": ", ".join(a for a, _ in m["diversity"]["per_level"][lv]["top_associations"][:5])})
    return rows


def render(runs, gallery: int = 12, seed: int = 0) -> str:
    """The report page for one run, or several side by side ([(Run, metrics), ...])."""
    from visassoc.report.template import PAGE

    env = Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
    tpl = env.from_string(PAGE)
    return tpl.render(
        runs=[{"name": run.name, "dir": str(run.root), "cards": cards(m), "table": level_table(m),
               "notes": [n for n in (m["grounding"]["foil"]["note"], m["grounding"]["text_retrieval"].get("note"),
                                     m["grounding"]["clipscore"].get("note"), m["validity"]["reasks_note"]) if n],
               "reasons": m["validity"]["invalid_reasons_overall"], "errors": m["validity"]["errors_per_stage"],
               "foils": m["grounding"]["foil"]["examples"]} for run, m in runs],
        figures=figures(runs), gallery=gallery_items(runs, gallery, seed), level_names=LEVEL_NAMES)
