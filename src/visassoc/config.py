"""Run configuration: one validated object, saved verbatim in the manifest and dataset card."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


OFFLINE = {"describe": "captions", "associate": "lexical", "caption": "substitute"}  # the no-model stage defaults


class RunConfig(BaseModel):
    """Everything that determines a run's output. Paths are kept as given (for the card)."""

    model_config = ConfigDict(extra="forbid")

    out: Path
    # source: exactly one of demo / coco / images / manifest
    demo: bool = False
    coco: Path | None = Field(None, description="COCO captions_*.json; needs `images` as the image dir")
    images: Path | None = Field(None, description="image directory")
    captions: Path | None = Field(None, description="captions file (JSONL or CSV) for an image folder")
    manifest: Path | None = Field(None, description="JSONL manifest of {id, image, captions}")
    limit: int | None = Field(None, ge=1, description="use only the first N images of the source")
    allow_outside_paths: bool = Field(False, description="let the source name images outside its own folder "
                                                        "(absolute paths, ../, symlinks out)")

    seed: int = 0
    top_k: int = Field(5, ge=1, le=20, description="salient words per image")
    per_level: int = Field(3, ge=1, le=10, description="associations per level")
    max_words: int = Field(10, ge=2, le=40, description="caption length limit (words)")
    min_words: int = Field(1, ge=1)
    captions_per_level: Literal["one", "all"] = "one"
    max_reasks: int = Field(2, ge=0, le=5)

    describe: str = Field("captions", description="'captions' (offline) or a VLM backend spec")
    associate: str = Field("lexical", description="'lexical' (offline), 'smollm', or an LLM backend spec")
    caption: str = Field("substitute", description="'substitute' (offline), 'smollm', or a VLM backend spec")
    prompt_set: Literal["visassoc", "paper"] = "visassoc"
    backend_config: Path | None = Field(None, description="YAML with per-backend settings")
    concurrency: int = Field(8, ge=1, le=256)
    chunk_size: int | None = Field(None, ge=1, description="images per resumable part (default: see images_per_part)")
    cache: bool = Field(True, description="cache model calls under the visassoc cache dir")
    cache_only: bool = Field(False, description="answer model calls only from the cache (after `batch ingest`)")
    progress: bool = True
    executor: Literal["local", "ray"] = Field("local", description="where stage chunks run: this process, or Ray Data")
    ray_address: str | None = Field(None, description="Ray cluster: None/'local' starts one here, 'auto' or ray://host:port joins one")
    ray_workers: int | None = Field(None, ge=1, description="actors per stage (default: the cluster's CPUs)")

    @model_validator(mode="after")
    def _one_source(self):
        chosen = [n for n, v in (("--demo", self.demo), ("--coco", self.coco), ("--manifest", self.manifest)) if v]
        if self.images is not None and not self.coco:
            chosen.append("--images")
        if len(chosen) != 1:
            got = ", ".join(chosen) or "none"
            raise ValueError(f"choose exactly one source: --demo, --coco FILE --images DIR, --images DIR, or --manifest FILE (got {got})")
        if self.coco and self.images is None:
            raise ValueError("--coco needs --images DIR (the folder holding the COCO images)")
        if self.captions and not (self.images and not self.coco):
            raise ValueError("--captions goes with --images DIR (an image folder)")
        return self

    def images_per_part(self) -> int:
        """``chunk_size``, else 256 when every stage is offline (parts are cheap to redo) and 32
        when a model is called (a kill loses at most 32 images of orchestration; the calls
        themselves are in the call cache)."""
        if self.chunk_size:
            return self.chunk_size
        return 256 if all(getattr(self, s) == d for s, d in OFFLINE.items()) else 32

    def source_kind(self) -> str:
        return "demo" if self.demo else "coco" if self.coco else "manifest" if self.manifest else "folder"
