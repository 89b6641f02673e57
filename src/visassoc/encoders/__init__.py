"""The model library: CLIP/SigLIP backbones (HF id or local path, or tiny random ones for tests),
distance prompt tokens (one learned set per association level), checkpoints and inference.
The trainer (``visassoc.train``) and the evaluation (``visassoc.evaluate``) both build on it."""
from visassoc.encoders.checkpoint import load_encoder, save_encoder
from visassoc.encoders.distance_tokens import PromptedEncoder
from visassoc.encoders.models import PAPER_MODEL, TINY_MODELS, Backbone, load_backbone

__all__ = ["PAPER_MODEL", "TINY_MODELS", "Backbone", "PromptedEncoder", "load_backbone", "load_encoder", "save_encoder"]
