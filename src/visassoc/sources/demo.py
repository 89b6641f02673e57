"""The built-in demo: real photos bundled in the scikit-image and scikit-learn wheels.

Only captions live in this package (``demo/captions.json``, written by us); the photos are
read from the installed wheels, so nothing is redistributed. See that file for licences.
"""
from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from .base import SourceItem, check_unique, clean_captions


def _package_dir(name: str) -> Path:
    if name == "skimage":
        import skimage

        return Path(skimage.__file__).parent / "data"
    if name == "sklearn":
        import sklearn

        return Path(sklearn.__file__).parent / "datasets" / "images"
    raise ValueError(name)


def demo_spec() -> dict:
    return json.loads((resources.files("visassoc") / "demo" / "captions.json").read_text(encoding="utf-8"))


def load_demo(limit: int | None = None) -> list[SourceItem]:
    items = []
    for im in demo_spec()["images"]:
        try:
            path = _package_dir(im["package"]) / im["file"]
            err = None if path.is_file() else f"demo photo {im['file']} missing from the installed {im['package']} wheel"
        except ImportError:
            path, err = None, f"package {im['package']} is not installed"
        items.append(SourceItem(im["id"], str(path) if path else None, clean_captions(im["captions"]), err))
    return check_unique(items[:limit] if limit else items)
