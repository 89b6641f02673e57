"""visassoc: contextualized visual associations and creative captions from images.

>>> import visassoc
>>> result = visassoc.run(demo=True, out="runs/demo")   # doctest: +SKIP
"""
__version__ = "0.1.0"


def run(config=None, **kwargs):
    """Run the pipeline; see ``visassoc.config.RunConfig`` for the options."""
    from .pipeline import run as _run

    return _run(config, **kwargs)


__all__ = ["run", "__version__"]
