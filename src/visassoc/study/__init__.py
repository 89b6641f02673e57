"""Human study round-trip: export a Potato / Label Studio project, analyze the annotations.

Public API: ``export_study(run_dir, out_dir, n=300, tool="potato", seed=0, ...) -> dict`` and
``analyze(annotations, out_dir, key=None, ...) -> dict``.
"""
from visassoc.study.analyze import AnnotationError, analyze, read_annotations
from visassoc.study.export import export_study

__all__ = ["export_study", "analyze", "read_annotations", "AnnotationError"]
