"""Full-gallery evaluation of baseline vs distance-token encoders on creative retrieval benchmarks."""
from .benchmarks import BENCHMARKS, Benchmark, load_benchmark
from .metrics import pairwise_accuracy, ranks, retrieval_metrics, summarize
from .runner import evaluate

__all__ = ["BENCHMARKS", "Benchmark", "evaluate", "load_benchmark", "pairwise_accuracy", "ranks",
           "retrieval_metrics", "summarize"]
