"""Metric functions over plain Python rows: validity, abstraction, diversity.

Each returns JSON-ready dicts. Per-level summaries carry a 95% interval: Wilson for shares,
a seeded percentile bootstrap for means. Levels are reported as string keys "1".."5".
"""
from __future__ import annotations

import math
import re
import warnings
from collections import Counter, defaultdict
from functools import lru_cache
from typing import Iterable, Sequence

import numpy as np

from visassoc.records import LEVELS

_TOKEN = re.compile(r"[a-z0-9]+(?:['-][a-z0-9]+)*")


def tokens(text: str) -> list[str]:
    """Lower-cased word tokens (keeps inner hyphens/apostrophes)."""
    return _TOKEN.findall((text or "").lower())


def _f(x) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def wilson(k: int, n: int, conf: float = 0.95) -> dict:
    """Share k/n with its Wilson score interval."""
    if n == 0:
        return {"share": None, "lo": None, "hi": None, "k": 0, "n": 0}
    from scipy.stats import binomtest

    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=conf, method="wilson")
    return {"share": k / n, "lo": float(ci.low), "hi": float(ci.high), "k": int(k), "n": int(n)}


def mean_ci(values: Sequence[float], n_boot: int = 1000, seed: int = 0, conf: float = 0.95) -> dict:
    """Mean with a percentile-bootstrap interval (seeded, so reports are reproducible)."""
    v = np.sort(np.asarray([x for x in values if x is not None and not math.isnan(x)], dtype=float))  # order-free
    if v.size == 0:
        return {"mean": None, "lo": None, "hi": None, "n": 0}
    if v.size == 1 or n_boot <= 0:
        return {"mean": float(v.mean()), "lo": float(v.mean()), "hi": float(v.mean()), "n": int(v.size)}
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, size=(n_boot, v.size))].mean(axis=1)
    a = (1 - conf) / 2
    return {"mean": float(v.mean()), "lo": float(np.quantile(means, a)), "hi": float(np.quantile(means, 1 - a)),
            "n": int(v.size)}


def monotonicity(levels: Sequence[int], values: Sequence[float | None]) -> dict:
    """Spearman rho of level vs value, and whether per-level means move strictly one way.

    ``direction`` is "increasing", "decreasing" or "none" (means not strictly ordered, or fewer
    than two levels with data).
    """
    pairs = [(int(lv), float(x)) for lv, x in zip(levels, values) if x is not None and not math.isnan(x)]
    out = {"rho": None, "p": None, "n": len(pairs), "direction": "none"}
    if len(pairs) < 3 or len({lv for lv, _ in pairs}) < 2:
        return out
    from scipy.stats import spearmanr

    lv, x = zip(*pairs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = spearmanr(lv, x)
    out["rho"], out["p"] = _f(res.statistic), _f(res.pvalue)
    by = defaultdict(list)
    for a, b in pairs:
        by[a].append(b)
    means = [float(np.mean(by[k])) for k in sorted(by)]
    if len(means) >= 2:
        d = np.diff(means)
        out["direction"] = "increasing" if (d > 0).all() else "decreasing" if (d < 0).all() else "none"
    return out


def per_level(levels: Sequence[int], values: Sequence[float | None], n_boot: int = 1000, seed: int = 0) -> dict:
    """{"per_level": {"1": mean_ci, ...}, "overall": mean_ci, "monotonicity": ...} for one measure."""
    by = defaultdict(list)
    for lv, x in zip(levels, values):
        by[int(lv)].append(x)
    return {
        "per_level": {str(lv): mean_ci(by.get(lv, []), n_boot, seed + lv) for lv in LEVELS},
        "overall": mean_ci(list(values), n_boot, seed),
        "monotonicity": monotonicity(levels, values),
    }


# ---------------------------------------------------------------- validity
def validity(captions: list[dict], errors: list[dict], manifest: dict | None = None) -> dict:
    """Share of valid captions per level, reasons for invalid ones, errors per stage, re-asks."""
    by = defaultdict(lambda: [0, 0])
    reasons: dict[str, Counter] = defaultdict(Counter)
    for r in captions:
        by[r["level"]][0] += bool(r["valid"])
        by[r["level"]][1] += 1
        if not r["valid"]:
            reasons[str(r["level"])][(r.get("reason") or "unspecified").split(":")[0].strip()[:80]] += 1
    k = sum(v[0] for v in by.values())
    n = sum(v[1] for v in by.values())
    stage_errors = Counter(e.get("stage") or "unknown" for e in errors)
    counts = (manifest or {}).get("counts", {}) or {}
    reasks = next((counts[key] for key in ("reasks", "re_asks", "caption_reasks", "retries") if key in counts), None)
    after_reask = sum("re-ask" in (e.get("message") or "") for e in errors) + sum(
        "re-ask" in (r.get("reason") or "") for r in captions if not r["valid"])
    all_reasons = Counter()
    for c in reasons.values():
        all_reasons.update(c)
    return {
        "per_level": {str(lv): wilson(*by.get(lv, (0, 0))) for lv in LEVELS},
        "overall": wilson(k, n),
        "invalid_reasons": {lv: dict(c.most_common(10)) for lv, c in sorted(reasons.items())},
        "invalid_reasons_overall": dict(all_reasons.most_common(10)),
        "errors_per_stage": dict(stage_errors),
        "reasks": reasks,
        "failed_after_reask": after_reask,  # error rows / invalid captions whose message says "re-ask"
        "reasks_note": None if reasks is not None else "the run's manifest records no re-ask count",
    }


# ---------------------------------------------------------------- abstraction
def phrase_concreteness(phrase: str) -> float | None:
    """Brysbaert rating of a word or phrase; an unrated phrase gets the mean of its rated words."""
    from visassoc.lexicon import concreteness

    c = concreteness(phrase)
    if c is not None:
        return float(c)
    rated = [concreteness(t) for t in tokens(phrase) if t not in _stop_words()]
    rated = [x for x in rated if x is not None]
    return float(np.mean(rated)) if rated else None


@lru_cache(maxsize=1)
def _stop_words() -> frozenset[str]:
    from spacy.lang.en.stop_words import STOP_WORDS

    return frozenset(STOP_WORDS)


def caption_concreteness(caption: str) -> float | None:
    """Mean Brysbaert rating of a caption's rated non-stop-words (None if none is rated)."""
    from visassoc.lexicon import concreteness

    vals = [concreteness(t) for t in tokens(caption) if t not in _stop_words()]
    vals = [v for v in vals if v is not None]
    return float(np.mean(vals)) if vals else None


def minilm_distance(a: Sequence[str], b: Sequence[str]) -> list[float]:
    """1 - MiniLM cosine between a[i] and b[i] (texts embedded once each)."""
    from visassoc.lexicon import embed

    uniq = sorted(set(a) | set(b))
    if not uniq:
        return []
    idx = {t: i for i, t in enumerate(uniq)}
    e = embed(uniq)
    return [float(1.0 - e[idx[x]] @ e[idx[y]]) for x, y in zip(a, b)]


_WN_POS = {"NOUN": "n", "VERB": "v", "ADJ": "a", "PROPN": "n"}


@lru_cache(maxsize=100_000)
def _ancestors(synset_name: str) -> dict[str, int]:
    """Hypernym (and instance-hypernym) distances from a synset, with a simulated shared root."""
    from visassoc.lexicon import wordnet

    s = wordnet().synset(synset_name)
    dist = {s.name(): 0}
    frontier = [s]
    while frontier:
        nxt = []
        for x in frontier:
            for h in x.hypernyms() + x.instance_hypernyms():
                if h.name() not in dist:
                    dist[h.name()] = dist[x.name()] + 1
                    nxt.append(h)
        frontier = nxt
    dist[f"*ROOT*{s.pos()}"] = max(dist.values()) + 1
    return dist


@lru_cache(maxsize=200_000)
def _synsets(term: str, pos: str | None) -> tuple[str, ...]:
    from visassoc.lexicon import wordnet

    wn = wordnet()
    key = term.strip().lower().replace(" ", "_")
    found = wn.synsets(key, pos=pos) if pos else []
    if not found:
        found = wn.synsets(key)
    if not found and " " in term.strip():  # a phrase: fall back to its head (last) word
        return _synsets(term.strip().split()[-1], pos)
    # adjectives have no hypernyms: use the nouns they pertain to / are derived from
    out = []
    for s in found[:5]:
        if s.pos() in ("n", "v"):
            out.append(s.name())
        else:
            for lem in s.lemmas():
                out += [r.synset().name() for r in lem.derivationally_related_forms() + lem.pertainyms()
                        if r.synset().pos() in ("n", "v")]
    return tuple(dict.fromkeys(out))[:8]


def wordnet_distance(word: str, other: str, pos: str | None = None) -> int | None:
    """Shortest WordNet hypernym-path length between any senses of two terms (None if unlinked).

    Nouns and verbs use their hypernym trees (verbs under a simulated root, as NLTK does);
    adjectives are mapped to their derivationally related nouns/verbs first.
    """
    wpos = _WN_POS.get(pos or "", None)
    best = None
    for a in _synsets(word, wpos):
        da = _ancestors(a)
        for b in _synsets(other, wpos):
            if a.split(".")[-2] != b.split(".")[-2]:
                continue  # different parts of speech share no hypernym tree
            db = _ancestors(b)
            common = da.keys() & db.keys()
            if common:
                d = min(da[c] + db[c] for c in common)
                best = d if best is None else min(best, d)
    return best


def abstraction(associations: list[dict], captions: list[dict], salient: list[dict], n_boot: int = 1000,
                seed: int = 0) -> dict:
    """Concreteness of associations and caption words, and association-to-word distances, by level."""
    pos_of = {(r["image_id"], r["word"]): r["pos"] for r in salient}
    lemma_of = {(r["image_id"], r["word"]): r["lemma"] for r in salient}
    word_conc = [phrase_concreteness(r["lemma"] or r["word"]) for r in salient]
    lv_a = [r["level"] for r in associations]
    conc_a = [phrase_concreteness(r["association"]) for r in associations]
    base = [lemma_of.get((r["image_id"], r["word"]), r["word"]) for r in associations]
    mini = minilm_distance(base, [r["association"] for r in associations])
    wnd = [wordnet_distance(b, r["association"], pos_of.get((r["image_id"], r["word"])))
           for b, r in zip(base, associations)]
    valid = [r for r in captions if r["valid"]]
    conc_c = [caption_concreteness(r["caption"]) for r in valid]
    cov = lambda xs: (sum(x is not None for x in xs) / len(xs)) if xs else None  # noqa: E731
    return {
        "salient_word_concreteness": mean_ci(word_conc, n_boot, seed),
        "association_concreteness": {**per_level(lv_a, conc_a, n_boot, seed), "coverage": cov(conc_a)},
        "caption_concreteness": {**per_level([r["level"] for r in valid], conc_c, n_boot, seed),
                                 "coverage": cov(conc_c)},
        "minilm_distance": per_level(lv_a, mini, n_boot, seed),
        "wordnet_distance": {**per_level(lv_a, [None if d is None else float(d) for d in wnd], n_boot, seed),
                             "coverage": cov(wnd)},
    }


# ---------------------------------------------------------------- diversity
def distinct_n(texts: Iterable[str], n: int) -> float | None:
    """Distinct-n: unique n-grams / all n-grams over the texts (Li et al., 2016)."""
    grams = Counter()
    for t in texts:
        tok = tokens(t)
        grams.update(zip(*(tok[i:] for i in range(n))))
    total = sum(grams.values())
    return len(grams) / total if total else None


def diversity(associations: list[dict], captions: list[dict], top_k: int = 10) -> dict:
    """Distinct associations, distinct-1/2 of valid captions and the most frequent associations, by level."""
    out: dict = {"per_level": {}}
    for lv in LEVELS:
        assoc = [r["association"].strip().lower() for r in associations if r["level"] == lv]
        caps = [r["caption"] for r in captions if r["level"] == lv and r["valid"]]
        c = Counter(assoc)
        out["per_level"][str(lv)] = {
            "associations": len(assoc),
            "distinct_associations": len(c),
            "distinct_association_share": len(c) / len(assoc) if assoc else None,
            "distinct_1": distinct_n(caps, 1),
            "distinct_2": distinct_n(caps, 2),
            "captions": len(caps),
            "top_associations": c.most_common(top_k),
        }
    allc = [r["caption"] for r in captions if r["valid"]]
    out["overall"] = {"distinct_1": distinct_n(allc, 1), "distinct_2": distinct_n(allc, 2),
                      "distinct_associations": len({r["association"].strip().lower() for r in associations})}
    return out
