"""visassoc: contextualized visual associations and creative captions from images.

>>> import visassoc
>>> result = visassoc.run(demo=True, out="runs/demo")   # doctest: +SKIP
"""
__version__ = "0.1.0"


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
