"""The method's steps, in order: THE stage list.

Each entry says what a step is called, which table it writes, which upstream tables it reads
for a chunk of images, its record type, its offline default (the ``RunConfig`` value that needs
no model) and the model role that ``--llm``/``--vlm`` fill, and which config fields change its
rows (hashed into its fingerprint). The step's own module (``visassoc.stages.<module>``) owns its
row logic: ``run_chunk(cfg, impl, chunk, upstream_rows, items)`` and, for model stages,
``requests(...)`` and ``result_rows(...)``, used by the run, ``estimate`` and batch alike.

A new stage is one module plus one line here.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from visassoc.records import (AssociationRecord, CaptionRecord, DescriptionRecord, ErrorRecord, ImageRecord,
                              SalientRecord)


@dataclass(frozen=True)
class Stage:
    name: str
    table: str
    inputs: tuple[str, ...]  # upstream tables its chunk reads
    record: type
    module: str  # visassoc.stages.<module>
    offline: str | None = None  # no-model implementation (the RunConfig default); None: no implementation
    role: str | None = None  # "vlm" | "llm": the backend kind that serves it
    settings: tuple[str, ...] = ()  # RunConfig fields that change its rows

    def step(self) -> ModuleType:
        return importlib.import_module(f"visassoc.stages.{self.module}")


STAGES: tuple[Stage, ...] = (
    Stage("images", "images", (), ImageRecord, "images"),
    Stage("describe", "descriptions", ("images",), DescriptionRecord, "describe", offline="captions", role="vlm"),
    Stage("salient", "salient", ("images", "descriptions"), SalientRecord, "salient",
          settings=("seed", "top_k", "max_words", "salient_rule")),
    Stage("associate", "associations", ("salient", "descriptions"), AssociationRecord, "associate",
          offline="lexical", role="llm", settings=("per_level", "seed", "strict_ladders")),
    Stage("caption", "captions", ("images", "salient", "descriptions", "associations"), CaptionRecord, "caption",
          offline="substitute", role="vlm",
          settings=("captions_per_level", "min_words", "max_words", "max_reasks", "caption_choice", "seed")),
)
BY_NAME = {s.name: s for s in STAGES}
PRODUCER = {s.table: s for s in STAGES}
TABLES = tuple(s.table for s in STAGES) + ("errors",)
RECORDS = {**{s.table: s.record for s in STAGES}, "errors": ErrorRecord}
MODEL_STAGES = tuple(s for s in STAGES if s.offline is not None)  # stages a model backend can serve
OFFLINE = {s.name: s.offline for s in MODEL_STAGES}
ROLES = {s.name: s.role for s in MODEL_STAGES}


def all_offline(cfg) -> bool:
    """True when no stage of ``cfg`` calls a model."""
    return all(getattr(cfg, s.name) == s.offline for s in MODEL_STAGES)


def images_per_part(cfg) -> int:
    """``chunk_size``, else 256 when every stage is offline (parts are cheap to redo) and 32
    when a model is called (a kill loses at most 32 images of orchestration; the calls
    themselves are in the call cache)."""
    if cfg.chunk_size:
        return cfg.chunk_size
    return 256 if all_offline(cfg) else 32


def model_options(cfg, stage: str) -> dict[str, Any]:
    """The ``make_model_stage`` keyword arguments that ``cfg`` sets for ``stage``."""
    opts: dict[str, Any] = {"prompt_set": cfg.prompt_set,
                            "prompt_dir": str(cfg.prompt_dir) if cfg.prompt_dir else None}
    if stage == "describe":
        opts["hints"] = cfg.describe_hints
    elif stage == "associate":
        opts.update(per_level=cfg.per_level, reask=cfg.associate_reask, strict=cfg.strict_ladders)
    elif stage == "caption" and cfg.caption_mode != "per-level":
        opts["mode"] = cfg.caption_mode
    return opts


def make_model_stage(stage: str, backend, prompt_set: str = "visassoc", per_level: int = 3, **options) -> Any:
    """The model-backed implementation of ``stage`` on ``backend``; ``options`` as ``model_options`` gives."""
    if stage == "describe":
        from .describe import VLMDescriber

        options.pop("per_level", None)
        return VLMDescriber(backend, prompt_set=prompt_set, **options)
    if stage == "associate":
        from .associate import LLMAssociationMiner

        return LLMAssociationMiner(backend, prompt_set=prompt_set, per_level=per_level, **options)
    if stage == "caption":
        options.pop("per_level", None)
        if options.pop("mode", "per-level") == "per-word":  # one call writes a word's five levels
            from .caption_per_word import VLMWordCaptionWriter

            return VLMWordCaptionWriter(backend, prompt_set=prompt_set, **options)
        from .caption import VLMCaptionWriter

        return VLMCaptionWriter(backend, prompt_set=prompt_set, **options)
    raise ValueError(f"unknown stage {stage!r} (expected {', '.join(OFFLINE)})")


def make_offline_stage(stage: str, cfg) -> tuple[Any, dict]:
    """The no-model implementation of ``stage`` and its identity (hashed into fingerprints)."""
    if stage == "describe":
        from .describe import CaptionsDescriber

        return CaptionsDescriber(), {"name": "captions"}
    if stage == "associate":
        from .lexical import LexicalMiner

        miner = LexicalMiner(per_level=cfg.per_level, seed=cfg.seed)
        # the miner spreads its picks across the images of one call (one part), so the part size is part
        # of its identity: a resume with another --chunk-size redoes the stage consistently
        return miner, {"name": "lexical", "method": miner.describe_method(), "diversity_block": images_per_part(cfg)}
    if stage == "caption":
        from .substitute import VERSION, SubstitutionWriter

        return SubstitutionWriter(max_words=cfg.max_words), {"name": "substitute", "version": VERSION}
    raise ValueError(f"stage {stage!r} has no offline implementation")


__all__ = ["BY_NAME", "MODEL_STAGES", "OFFLINE", "PRODUCER", "RECORDS", "ROLES", "STAGES", "TABLES", "Stage",
           "all_offline", "images_per_part", "make_model_stage", "make_offline_stage", "model_options"]
