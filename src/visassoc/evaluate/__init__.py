"""Full-gallery evaluation of baseline vs distance-token encoders on creative retrieval benchmarks,
and ``search`` over a photo collection. Ranking metrics live in the shared leaf ``visassoc.retrieval``."""
from visassoc.retrieval import pairwise_accuracy, ranks, retrieval_metrics, summarize

from .benchmarks import BENCHMARKS, Benchmark, load_benchmark
from .runner import evaluate

__all__ = ["BENCHMARKS", "Benchmark", "evaluate", "load_benchmark", "pairwise_accuracy", "ranks",
           "retrieval_metrics", "summarize"]
