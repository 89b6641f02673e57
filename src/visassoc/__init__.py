"""visassoc: contextualized visual associations and creative captions from images."""
__version__ = "0.1.0"
