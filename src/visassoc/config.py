"""Run configuration: one validated object, saved verbatim in the manifest and dataset card."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# Settings a preset stands for; a field given explicitly wins over its preset. ``paper`` is how the
# authors of arXiv 2507.18915 generated their data (docs/replication.md lists each difference).
PRESETS: dict[str, dict] = {
    "visassoc": {},
    "paper": {
        "prompt_set": "paper",  # their task wording (in our words) and their sampling settings
        "salient_rule": "paper",  # a random caption, lowercased, WordNet noun lemmas, unrated words dropped
        "max_words": 9,  # "fewer than 10 words"
        "max_reasks": 0,  # validity is recorded, never re-asked
        "caption_choice": "random",  # one of the 3 associations of a level at random, no fallback
        "associate_reask": False,  # an unusable answer is an error row, not re-asked
        "strict_ladders": False,  # no filtering beyond parsing
        "describe_hints": False,  # the VLM describes without the human captions
    },
}


# Fields that change how a run runs (where, how fast, how much, with what cache), never which rows an
# image gets: a resume may change them. Every other field decides rows (engine.guard keys a run by them).
EXECUTION_FIELDS = frozenset({"out", "limit", "backend_config", "concurrency", "chunk_size", "cache", "cache_only",
                              "progress", "executor", "ray_address", "ray_workers"})


class RunConfig(BaseModel):
    """Everything that determines a run's output. Paths are kept as given (for the card)."""

    model_config = ConfigDict(extra="forbid")

    out: Path
    preset: Literal["visassoc", "paper"] = Field("visassoc", description="settings bundle (see PRESETS)")
    # source: exactly one of demo / coco / images / manifest
    demo: bool = False
    coco: Path | None = Field(None, description="COCO captions_*.json; needs `images` as the image dir")
    images: Path | None = Field(None, description="image directory")
    captions: Path | None = Field(None, description="captions file (JSONL or CSV) for an image folder")
    manifest: Path | None = Field(None, description="JSONL manifest of {id, image, captions}")
    download: bool = Field(False, description="with --manifest: download its image URLs first (visassoc fetch)")
    webdataset: str | None = Field(None, description="local WebDataset shards, brace pattern: shards/{000000..000009}.tar")
    hf_dataset: str | None = Field(None, description="Hugging Face dataset: a local folder/file or a name in the local cache")
    split: str = Field("train", description="split of --hf-dataset")
    image_column: str = Field("image", description="image column of --hf-dataset")
    caption_column: str | None = Field(None, description="caption column of --hf-dataset (default: caption/captions/text)")
    limit: int | None = Field(None, ge=1, description="use only the first N images of the source")
    allow_outside_paths: bool = Field(False, description="let the source name images outside its own folder "
                                                        "(absolute paths, ../, symlinks out)")

    seed: int = 0
    top_k: int = Field(5, ge=1, le=20, description="salient words per image")
    per_level: int = Field(3, ge=1, le=10, description="associations per level")
    max_words: int = Field(10, ge=2, le=40, description="caption length limit (words)")
    min_words: int = Field(1, ge=1)
    captions_per_level: Literal["one", "all"] = "one"
    caption_mode: Literal["per-level", "per-word"] = Field(
        "per-level", description="'per-level': one caption call per level (the paper); 'per-word': one call per word")
    max_reasks: int = Field(2, ge=0, le=5)

    describe: str = Field("captions", description="'captions' (offline) or a VLM backend spec")
    associate: str = Field("lexical", description="'lexical' (offline), 'smollm', or an LLM backend spec")
    caption: str = Field("substitute", description="'substitute' (offline), 'smollm', or a VLM backend spec")
    prompt_set: Literal["visassoc", "paper"] = "visassoc"
    prompt_dir: Path | None = Field(None, description="folder of describe.txt/associate.txt/caption.txt prompts")
    salient_rule: Literal["visassoc", "paper"] = "visassoc"
    caption_choice: Literal["first-valid", "random"] = Field(
        "first-valid", description="which association of a level is captioned: the first whose caption is valid, "
                                   "or one at random (seeded, no fallback)")
    associate_reask: bool = True
    strict_ladders: bool = Field(True, description="drop the word itself, its forms and duplicates from ladders")
    describe_hints: bool = True
    backend_config: Path | None = Field(None, description="YAML with per-backend settings")
    concurrency: int = Field(8, ge=1, le=256)
    chunk_size: int | None = Field(None, ge=1, description="images per resumable part (default: 256 offline, 32 with a model)")
    cache: bool = Field(True, description="cache model calls under the visassoc cache dir")
    cache_only: bool = Field(False, description="answer model calls only from the cache (after `batch ingest`)")
    progress: bool = True
    executor: Literal["local", "ray"] = Field("local", description="where stage chunks run: this process, or Ray Data")
    ray_address: str | None = Field(None, description="Ray cluster: None/'local' starts one here, 'auto' or ray://host:port joins one")
    ray_workers: int | None = Field(None, ge=1, description="actors per stage (default: the cluster's CPUs)")

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data):
        """Fill what the preset stands for into the fields that were not given."""
        if isinstance(data, dict) and data.get("preset") in PRESETS:
            data = {**PRESETS[data["preset"]], **data}
        return data

    @model_validator(mode="after")
    def _one_source(self):
        chosen = [n for n, v in (("--demo", self.demo), ("--coco", self.coco), ("--manifest", self.manifest),
                                 ("--webdataset", self.webdataset), ("--hf-dataset", self.hf_dataset)) if v]
        if self.images is not None and not self.coco:
            chosen.append("--images")
        if len(chosen) != 1:
            got = ", ".join(chosen) or "none"
            raise ValueError(f"choose exactly one source: --demo, --coco FILE --images DIR, --images DIR, --manifest FILE, --webdataset SHARDS or --hf-dataset PATH (got {got})")
        if self.coco and self.images is None:
            raise ValueError("--coco needs --images DIR (the folder holding the COCO images)")
        if self.download and not self.manifest:
            raise ValueError("--download goes with --manifest FILE (a list with image URLs)")
        if self.captions and not (self.images and not self.coco):
            raise ValueError("--captions goes with --images DIR (an image folder)")
        return self

    def source_kind(self) -> str:
        if self.webdataset or self.hf_dataset:
            return "webdataset" if self.webdataset else "hf"
        return "demo" if self.demo else "coco" if self.coco else "manifest" if self.manifest else "folder"
