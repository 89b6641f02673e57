"""Training distance prompt tokens on mined data (the model library is ``visassoc.encoders``)."""
from .trainer import TrainConfig, TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "train"]
