"""Turn a RunConfig into the three stage implementations (describe, associate, caption).

Offline defaults need no model server: captions describer, lexical miner, substitution
writer. Anything else is a backend spec (``openai:gpt-4o-mini``, ``transformers:/path``,
``smollm``) resolved by ``backends.registry`` and driven by ``stages.model_stages``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .config import RunConfig


@dataclass
class StageImpls:
    describer: Any
    miner: Any
    writer: Any
    identity: dict[str, Any] = field(default_factory=dict)  # per stage, hashed into fingerprints
    backends: list[Any] = field(default_factory=list)  # model backends in use (for usage/manifest)
    by_stage: dict[str, Any] = field(default_factory=dict)  # stage -> its model backend


def _backend(spec: str, cfg: RunConfig, cache):
    from .backends.registry import make_backend

    backend = make_backend(spec, config_path=cfg.backend_config, concurrency=cfg.concurrency)
    if hasattr(backend, "show_progress"):
        backend.show_progress = cfg.progress
    if cache is not None:
        from .backends.cache import CachedBackend

        backend = CachedBackend(backend, cache, cache_only=cfg.cache_only)
    return backend


def build(cfg: RunConfig) -> StageImpls:
    cache = None
    if (cfg.cache or cfg.cache_only) and any(s not in ("captions", "lexical", "substitute") for s in (cfg.describe, cfg.associate, cfg.caption)):
        from .backends.cache import CallCache
        from .lexicon import cache_dir

        cache = CallCache(cache_dir() / "calls.sqlite")
    identity: dict[str, Any] = {}
    backends: list[Any] = []
    by_stage: dict[str, Any] = {}

    if cfg.describe == "captions":
        from .stages.describe import CaptionsDescriber

        describer = CaptionsDescriber()
        identity["describe"] = {"name": "captions"}
    else:
        from .stages.model_stages import VLMDescriber, prompt_hashes

        b = _backend(cfg.describe, cfg, cache)
        backends.append(b)
        by_stage["describe"] = b
        describer = VLMDescriber(b, prompt_set=cfg.prompt_set)
        identity["describe"] = {"backend": b.identity(), "prompts": prompt_hashes(cfg.prompt_set).get("describe")}

    if cfg.associate == "lexical":
        from .stages.lexical import LexicalMiner

        miner = LexicalMiner(per_level=cfg.per_level, seed=cfg.seed)
        identity["associate"] = {"name": "lexical", "method": miner.describe_method()}
    else:
        from .stages.model_stages import LLMAssociationMiner, prompt_hashes

        b = _backend(cfg.associate, cfg, cache)
        backends.append(b)
        by_stage["associate"] = b
        miner = LLMAssociationMiner(b, prompt_set=cfg.prompt_set, per_level=cfg.per_level)
        identity["associate"] = {"backend": b.identity(), "prompts": prompt_hashes(cfg.prompt_set).get("associate")}

    if cfg.caption == "substitute":
        from .stages.substitute import SubstitutionWriter

        writer = SubstitutionWriter()
        identity["caption"] = {"name": "substitute"}
    else:
        from .stages.model_stages import VLMCaptionWriter, prompt_hashes

        b = _backend(cfg.caption, cfg, cache)
        backends.append(b)
        by_stage["caption"] = b
        writer = VLMCaptionWriter(b, prompt_set=cfg.prompt_set)
        identity["caption"] = {"backend": b.identity(), "prompts": prompt_hashes(cfg.prompt_set).get("caption")}
    return StageImpls(describer, miner, writer, identity, backends, by_stage)
