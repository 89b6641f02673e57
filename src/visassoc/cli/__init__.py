"""The ``visassoc`` command line (``visassoc.cli:app``)."""
from visassoc.cli.main import app

__all__ = ["app"]
