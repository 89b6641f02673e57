"""Metric functions of visassoc.report on small inputs with known answers (no fakes: real lexicons)."""
import random

import pytest

from visassoc.report import grounding, metrics


def test_monotone_decreasing_series():
    m = metrics.monotonicity([1, 2, 3, 4, 5] * 2, [5.0, 4.0, 3.0, 2.0, 1.0] * 2)
    assert m["rho"] == pytest.approx(-1.0)
    assert m["direction"] == "decreasing"
    assert m["n"] == 10


def test_non_monotone_series():
    # ranks differ by 0,1,1,1,1 -> rho = 1 - 6*4/(5*24) = 0.8; means go up, down, up: not monotone
    m = metrics.monotonicity([1, 2, 3, 4, 5], [1.0, 3.0, 2.0, 5.0, 4.0])
    assert m["rho"] == pytest.approx(0.8)
    assert m["direction"] == "none"


def test_monotonicity_ignores_missing_and_needs_two_levels():
    m = metrics.monotonicity([1, 2, 3, 4], [1.0, None, float("nan"), 2.0])
    assert m["n"] == 2 and m["rho"] is None
    assert metrics.monotonicity([3, 3, 3], [1.0, 2.0, 3.0])["rho"] is None


def test_wilson_interval_known_values():
    w = metrics.wilson(7, 10)
    assert w["share"] == pytest.approx(0.7)
    assert (w["lo"], w["hi"]) == pytest.approx((0.3968, 0.8922), abs=1e-4)
    assert metrics.wilson(0, 0)["share"] is None


def test_bootstrap_mean_ci_is_seeded_and_brackets_mean():
    vals = [1.0, 2.0, 3.0, 4.0, 10.0]
    a, b = metrics.mean_ci(vals, seed=3), metrics.mean_ci(vals, seed=3)
    assert a == b
    assert a["mean"] == pytest.approx(4.0)
    assert a["lo"] <= a["mean"] <= a["hi"] and a["lo"] < a["hi"]
    assert metrics.mean_ci([None, float("nan")])["mean"] is None


def test_distinct_n():
    assert metrics.distinct_n(["a b a", "a b"], 1) == pytest.approx(2 / 5)
    assert metrics.distinct_n(["a b a", "a b"], 2) == pytest.approx(2 / 3)
    assert metrics.distinct_n([], 2) is None


def test_concreteness_of_words_phrases_and_captions():
    assert metrics.phrase_concreteness("ball") > metrics.phrase_concreteness("journey")
    # an unrated phrase gets the mean of its rated words
    ph = metrics.phrase_concreteness("zzqx ball journey")
    assert ph == pytest.approx((metrics.phrase_concreteness("ball") + metrics.phrase_concreteness("journey")) / 2)
    assert metrics.phrase_concreteness("zzqx") is None
    assert metrics.caption_concreteness("A red ball on the grass") > metrics.caption_concreteness("Freedom is a journey")


def test_wordnet_distance_grows_with_abstraction():
    near, far = metrics.wordnet_distance("ball", "sphere", "NOUN"), metrics.wordnet_distance("ball", "journey", "NOUN")
    assert near is not None and far is not None and near < far
    assert metrics.wordnet_distance("car", "automobile", "NOUN") == 0  # same synset
    assert metrics.wordnet_distance("ball", "zzqx", "NOUN") is None


def test_minilm_distance_orders_near_before_far():
    near, far = metrics.minilm_distance(["ball", "ball"], ["sphere", "journey"])
    assert 0 <= near < far <= 2


def test_validity_counts_reasons_and_errors():
    caps = [{"level": 1, "valid": True}, {"level": 1, "valid": False, "reason": "too long: 14 words"},
            {"level": 2, "valid": False, "reason": "missing association"}, {"level": 2, "valid": True}]
    errs = [{"stage": "captions"}, {"stage": "captions"}, {"stage": "mine"}]
    v = metrics.validity(caps, errs, {"counts": {"reasks": 4}})
    assert v["overall"]["k"] == 2 and v["overall"]["n"] == 4
    assert v["per_level"]["1"]["share"] == 0.5 and v["per_level"]["3"]["n"] == 0
    assert v["invalid_reasons_overall"] == {"too long": 1, "missing association": 1}
    assert v["errors_per_stage"] == {"captions": 2, "mine": 1}
    assert v["reasks"] == 4
    assert metrics.validity(caps, [], {})["reasks_note"]


def test_diversity_per_level():
    assoc = [{"level": 1, "association": a} for a in ("sphere", "Sphere", "orb")] + [{"level": 5, "association": "fate"}]
    caps = [{"level": 1, "valid": True, "caption": "a sphere rolls"}, {"level": 1, "valid": False, "caption": "x y"}]
    d = metrics.diversity(assoc, caps)
    assert d["per_level"]["1"]["distinct_associations"] == 2
    assert d["per_level"]["1"]["top_associations"][0] == ("sphere", 2)
    assert d["per_level"]["1"]["distinct_1"] == 1.0 and d["per_level"]["1"]["captions"] == 1
    assert d["per_level"]["2"]["distinct_1"] is None


def test_foil_swaps_a_present_object_within_its_supercategory():
    sc = {"dog": "animal", "cat": "animal", "elephant": "animal", "pizza": "food", "person": "person"}
    foil, old, new = grounding.make_foil("Two dogs chase a man.", {"dog", "person"}, sc, random.Random(0))
    assert old == "dogs" and new in {"cat", "elephant"} and foil == f"Two {new}s chase a man."
    foil, _, new = grounding.make_foil("A dog naps.", {"dog", "cat"}, sc, random.Random(0))
    assert new == "elephant" and foil == "An elephant naps."  # article follows the new noun
    assert grounding.make_foil("A man walks.", {"person"}, sc, random.Random(0)) is None  # nothing to swap to
