"""Creativity-aware encoders: frozen CLIP/SigLIP + learned distance prompt tokens (one set per level)."""
from .checkpoint import load_encoder, save_encoder
from .models import PAPER_MODEL, TINY_MODELS, Backbone, load_backbone
from .prompts import PromptedEncoder
from .trainer import TrainConfig, TrainResult, train

__all__ = ["PAPER_MODEL", "TINY_MODELS", "Backbone", "PromptedEncoder", "TrainConfig", "TrainResult",
           "load_backbone", "load_encoder", "save_encoder", "train"]
