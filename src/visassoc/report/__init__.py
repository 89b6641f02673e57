"""Measuring a creative-caption run: metrics.json and a self-contained report.html.

Public API: ``build_report(run_dir, ...) -> dict``, ``compute_metrics(run, ...)``, ``load_run(run_dir)``.
"""
from visassoc.report.build import build_report, compute_metrics
from visassoc.report.data import Run, RunDirError, load_run

__all__ = ["build_report", "compute_metrics", "load_run", "Run", "RunDirError"]
