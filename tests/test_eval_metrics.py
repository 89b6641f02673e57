"""Vectorised full-gallery metrics against brute-force definitions (ties, several positives)."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from visassoc.retrieval import invert_positives, pairwise_accuracy, ranks, retrieval_metrics, summarize


def brute_rank(row, pos):
    """Sort the gallery best-first with ties broken against the query; rank = first positive's position."""
    order = sorted(range(len(row)), key=lambda j: (-row[j], j in pos))
    return 1 + next(i for i, j in enumerate(order) if j in pos)


@st.composite
def problems(draw):
    nq, ng = draw(st.integers(1, 8)), draw(st.integers(1, 12))
    # few distinct values -> many ties
    scores = np.array(draw(st.lists(st.integers(-3, 3), min_size=nq * ng, max_size=nq * ng)), float).reshape(nq, ng)
    pos = [sorted(draw(st.sets(st.integers(0, ng - 1), max_size=ng))) for _ in range(nq)]
    return scores, pos


@settings(max_examples=300, deadline=None)
@given(problems())
def test_ranks_match_brute_force(p):
    scores, pos = p
    rows = [i for i, q in enumerate(pos) if q]
    got = ranks(scores, pos, rows, chunk=3)
    assert got.tolist() == [brute_rank(scores[i].tolist(), set(pos[i])) for i in rows]
    for k in (1, 2, 5):
        m = summarize(got, ks=(k,), n_boot=0)
        if rows:
            assert m[f"R@{k}"] == pytest.approx(np.mean([brute_rank(scores[i].tolist(), set(pos[i])) <= k for i in rows]))


def test_ties_count_against_the_model():
    s = np.zeros((2, 5))
    assert ranks(s, [[0], [1, 2]]).tolist() == [5, 4]  # constant scores: worst rank, not best
    s = np.array([[0.9, 0.5, 0.9, 0.1]])
    assert ranks(s, [[2, 3]]).tolist() == [2]  # best positive ties a negative


def test_i2t_uses_inverted_positives_and_full_gallery():
    rng = np.random.default_rng(0)
    s = rng.normal(size=(30, 20))
    pos = [[i % 20] for i in range(30)]
    m = retrieval_metrics(s, pos, n_boot=0)
    inv = invert_positives(pos, 20)
    want = np.mean([brute_rank(s[:, j].tolist(), set(inv[j])) <= 5 for j in range(20)])
    assert m["i2t"]["R@5"] == pytest.approx(want) and m["i2t"]["n"] == 20 and m["t2i"]["n"] == 30
    # restricting queries keeps the full gallery
    sub = retrieval_metrics(s, pos, text_rows=[0, 1], image_rows=[3], n_boot=0)
    assert sub["t2i"]["n"] == 2 and sub["t2i"]["mean_rank"] == pytest.approx(
        np.mean([brute_rank(s[i].tolist(), {pos[i][0]}) for i in (0, 1)]))


def test_bootstrap_ci_brackets_estimate_and_is_seeded():
    rk = np.random.default_rng(1).integers(1, 30, size=200)
    a, b = summarize(rk, n_boot=500, seed=3), summarize(rk, n_boot=500, seed=3)
    assert a == b
    lo, hi = a["ci95"]["R@5"]
    assert lo <= a["R@5"] <= hi and hi - lo > 0


def test_pairwise_accuracy_counts_ties_as_half():
    s = np.array([[1.0, 0.0, 0.5], [0.2, 0.2, 0.9]])
    m = pairwise_accuracy(s, [(0, 0, 1), (0, 1, 2), (1, 0, 1)], n_boot=0)
    assert m["accuracy"] == pytest.approx((1 + 0 + 0.5) / 3)


def test_nan_and_missing_positive_are_errors():
    with pytest.raises(ValueError):
        ranks(np.array([[np.nan, 1.0]]), [[0]])
    with pytest.raises(ValueError):
        ranks(np.zeros((1, 2)), [[]], rows=[0])
