"""Turn a RunConfig into the three stage implementations (describe, associate, caption).

Offline defaults need no model server: captions describer, lexical miner, substitution
writer. Anything else is a backend spec (``openai:gpt-4o-mini``, ``transformers:/path``,
``smollm``) resolved by ``backends.registry`` and driven by ``stages.model_stages``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from visassoc.config import OFFLINE, RunConfig


@dataclass
class StageImpls:
    describer: Any
    miner: Any
    writer: Any
    identity: dict[str, Any] = field(default_factory=dict)  # per stage, hashed into fingerprints
    backends: list[Any] = field(default_factory=list)  # model backends in use (for usage/manifest)
    by_stage: dict[str, Any] = field(default_factory=dict)  # stage -> its model backend


def _backend(spec: str, cfg: RunConfig, cache):
    from visassoc.backends.registry import make_backend

    backend = make_backend(spec, config_path=cfg.backend_config, concurrency=cfg.concurrency)
    if hasattr(backend, "show_progress"):
        backend.show_progress = cfg.progress
    if cache is not None:
        from visassoc.backends.cache import CachedBackend

        backend = CachedBackend(backend, cache, cache_only=cfg.cache_only)
    return backend


def build(cfg: RunConfig, only: str | None = None) -> StageImpls:
    """All three implementations, or just ``only`` (a worker that does one stage); the others are None."""
    stages = {only: OFFLINE[only]} if only else OFFLINE
    cache = None
    if (cfg.cache or cfg.cache_only) and any(getattr(cfg, st) != off for st, off in stages.items()):
        from visassoc.backends.cache import CallCache
        from visassoc.lexicon import cache_dir

        cache = CallCache(cache_dir() / "calls.sqlite")
    identity: dict[str, Any] = {}
    by_stage: dict[str, Any] = {}
    impls: dict[str, Any] = dict.fromkeys(OFFLINE)
    for stage, offline in stages.items():
        spec = getattr(cfg, stage)
        if spec == offline:
            impls[stage], identity[stage] = _offline(stage, cfg)
            continue
        from visassoc.stages.model_stages import make_stage, prompt_hashes

        b = by_stage[stage] = _backend(spec, cfg, cache)
        impls[stage] = make_stage(stage, b, prompt_set=cfg.prompt_set, per_level=cfg.per_level)
        identity[stage] = {"backend": b.identity(), "prompts": prompt_hashes(cfg.prompt_set).get(stage)}
    return StageImpls(impls["describe"], impls["associate"], impls["caption"], identity, list(by_stage.values()),
                      by_stage)




def _offline(stage: str, cfg: RunConfig) -> tuple[Any, dict]:
    """The no-model implementation of a stage and its identity (for fingerprints)."""
    if stage == "describe":
        from visassoc.stages.describe import CaptionsDescriber

        return CaptionsDescriber(), {"name": "captions"}
    if stage == "associate":
        from visassoc.stages.lexical import LexicalMiner

        miner = LexicalMiner(per_level=cfg.per_level, seed=cfg.seed)
        # the miner spreads picks across the images of one call (a part), so the part size is
        # part of its identity: a resume with another --chunk-size redoes the stage consistently
        return miner, {"name": "lexical", "method": miner.describe_method(), "diversity_block": cfg.images_per_part()}
    from visassoc.stages.substitute import SubstitutionWriter

    from visassoc.stages.substitute import VERSION

    return SubstitutionWriter(max_words=cfg.max_words), {"name": "substitute", "version": VERSION}
