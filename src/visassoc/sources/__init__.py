"""Image collections: COCO caption files, image folders (+ captions), JSONL manifests, WebDataset
shards, Hugging Face datasets on disk, the demo.

Every source yields ``SourceItem``s in a deterministic order. A source never drops an item
it knows about: a missing or unsupported image still becomes an item, with ``error`` set,
so the run writes an explicit error row for it.
"""
from __future__ import annotations

from .base import SourceError, SourceItem
from .coco import load_coco
from .demo import load_demo
from .folder import load_folder
from .hf_dataset import load_hf_dataset
from .manifest import load_manifest
from .webdataset import load_webdataset

__all__ = ["SourceItem", "SourceError", "load_coco", "load_demo", "load_folder", "load_manifest",
           "load_webdataset", "load_hf_dataset"]
