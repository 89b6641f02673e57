"""visassoc: contextualized visual associations and creative captions from images.

>>> import visassoc
>>> result = visassoc.run(demo=True, out="runs/demo")   # doctest: +SKIP
"""
import os as _os

__version__ = "0.1.0"

# No network unless a remote backend is configured: Hugging Face libraries read these once, when
# first imported, so they are set here, before any of them can be. Models must be local folders
# or already in the HF cache; export HF_HUB_OFFLINE=0 to let them download.
for _var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY"):
    _os.environ.setdefault(_var, "1")


def run(config=None, **kwargs):
    """Run the pipeline; see ``visassoc.config.RunConfig`` for the options."""
    from visassoc.engine.pipeline import run as _run

    return _run(config, **kwargs)


def read_partial(run_dir, table: str):
    """Rows of ``table`` ("captions", "associations", ...) a run has committed so far, even while
    it is running; see ``visassoc.engine.store.read_partial``."""
    from visassoc.engine.store import read_partial as _read

    return _read(run_dir, table)


__all__ = ["run", "read_partial", "__version__"]
