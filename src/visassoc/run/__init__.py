"""The run engine (pipeline, workers, store, export, executors).

``visassoc.run(config)`` is the public entry point. Importing any ``visassoc.run.<module>`` binds
this package as the attribute ``visassoc.run``, hiding the function of that name in
``visassoc/__init__.py``; so the package itself is made callable, and ``visassoc.run(...)``
runs the pipeline whichever of the two the name points at.
"""
import sys
import types


class _CallablePackage(types.ModuleType):
    def __call__(self, config=None, **kwargs):
        from visassoc.run.pipeline import run

        return run(config, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
