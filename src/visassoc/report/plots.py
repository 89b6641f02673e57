"""Matplotlib figures for the report, returned as self-contained SVG data URIs."""
from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from visassoc.records import LEVELS  # noqa: E402

plt.rcParams.update({"svg.fonttype": "path", "font.size": 9, "axes.spines.top": False, "axes.spines.right": False,
                     "svg.hashsalt": "visassoc"})  # fixed ids: identical inputs give identical SVG
COLORS = ["#3b6ea8", "#d1603d", "#4f9a5b", "#8a5fb0"]


def _uri(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue().encode()).decode()


def level_plot(series: dict[str, dict], title: str, ylabel: str, refs: dict[str, float | None] | None = None,
               key: str = "mean") -> str:
    """One line per run over levels 1-5, with CI whiskers; dashed horizontal reference lines.

    ``series`` maps run name -> {"1": {"mean"/key, "lo", "hi"}, ...}.
    """
    fig, ax = plt.subplots(figsize=(4.6, 3.0))
    for k, (name, per) in enumerate(series.items()):
        xs, ys, err = [], [], [[], []]
        for lv in LEVELS:
            cell = per.get(str(lv)) or {}
            y = cell.get(key)
            if y is None:
                continue
            xs.append(lv + (k - (len(series) - 1) / 2) * 0.08)
            ys.append(y)
            lo, hi = cell.get("lo"), cell.get("hi")
            err[0].append(max(y - lo, 0) if lo is not None else 0)
            err[1].append(max(hi - y, 0) if hi is not None else 0)
        if xs:
            ax.errorbar(xs, ys, yerr=err, marker="o", ms=4, capsize=3, color=COLORS[k % 4], label=name)
    for j, (label, y) in enumerate((refs or {}).items()):
        if y is not None:
            ax.axhline(y, ls="--", lw=1, color=["#777", "#b23", "#2a7"][j % 3], label=label)
    ax.set_xticks(list(LEVELS))
    ax.set_xlabel("association level (1 = near synonym ... 5 = metaphor)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, frameon=False)
    return _uri(fig)


def validity_plot(series: dict[str, dict]) -> str:
    """Grouped bars: share of valid captions per level, one colour per run."""
    fig, ax = plt.subplots(figsize=(4.6, 3.0))
    w = 0.8 / max(len(series), 1)
    for k, (name, per) in enumerate(series.items()):
        xs = [lv + (k - (len(series) - 1) / 2) * w for lv in LEVELS]
        ys = [(per.get(str(lv)) or {}).get("share") or 0 for lv in LEVELS]
        ax.bar(xs, ys, width=w * 0.95, color=COLORS[k % 4], label=name)
    ax.set_ylim(0, 1.2)
    ax.set_yticks([0, 0.25, 0.5, 0.75, 1.0])
    ax.set_xticks(list(LEVELS))
    ax.set_xlabel("association level")
    ax.set_ylabel("share of captions valid")
    ax.set_title("Validity")
    ax.legend(fontsize=7, frameon=False, loc="upper center", ncol=max(len(series), 1))
    return _uri(fig)


def diversity_plot(series: dict[str, dict]) -> str:
    """distinct-1, distinct-2 and distinct-association share per level (solid/dashed/dotted) per run."""
    fig, ax = plt.subplots(figsize=(4.6, 3.0))
    for k, (name, per) in enumerate(series.items()):
        for metric, ls in (("distinct_1", "-"), ("distinct_2", "--"), ("distinct_association_share", ":")):
            pts = [(lv, (per.get(str(lv)) or {}).get(metric)) for lv in LEVELS]
            pts = [(x, y) for x, y in pts if y is not None]
            if pts:
                ax.plot(*zip(*pts), ls=ls, marker="o", ms=3, color=COLORS[k % 4],
                        label=f"{name}: {metric.replace('_share', '').replace('_', '-')}")
    ax.set_ylim(0, 1.05)
    ax.set_xticks(list(LEVELS))
    ax.set_xlabel("association level")
    ax.set_ylabel("distinct share")
    ax.set_title("Diversity")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=6, frameon=False)
    return _uri(fig)
