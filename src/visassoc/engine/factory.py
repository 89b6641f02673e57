"""Turn a RunConfig into the implementations of the model-capable stages (describe, associate,
caption): the offline default of each (``stages.make_offline_stage``) or a model stage on the
backend its spec names (``openai:gpt-4o-mini``, ``transformers:/path``, ``smollm``), wrapped in
the call cache.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from visassoc.config import RunConfig
from visassoc.stages import OFFLINE, make_model_stage, make_offline_stage, model_options


@dataclass
class StageImpls:
    by_name: dict[str, Any]  # stage -> implementation (describe/mine/write)
    identity: dict[str, Any] = field(default_factory=dict)  # per stage, hashed into fingerprints
    backends: list[Any] = field(default_factory=list)  # model backends in use (for usage/manifest)
    by_stage: dict[str, Any] = field(default_factory=dict)  # stage -> its model backend

    def get(self, stage: str) -> Any:
        return self.by_name.get(stage)


def _backend(spec: str, cfg: RunConfig, cache):
    from visassoc.backends.registry import make_backend

    backend = make_backend(spec, config_path=cfg.backend_config, concurrency=cfg.concurrency)
    if hasattr(backend, "show_progress"):
        backend.show_progress = cfg.progress
    if cache is not None:
        from visassoc.backends.cache import CachedBackend

        backend = CachedBackend(backend, cache, cache_only=cfg.cache_only)
    return backend


def check_prompts(cfg: RunConfig) -> None:
    """Load every prompt a model stage of ``cfg`` will use: a missing file or an unknown
    placeholder is a one-line ValueError before anything is created or any model is called."""
    from visassoc.stages.prompts import load_prompt

    for stage, offline in OFFLINE.items():
        if getattr(cfg, stage) != offline:
            name = "caption_word" if stage == "caption" and cfg.caption_mode == "per-word" else stage
            load_prompt(cfg.prompt_set, name, str(cfg.prompt_dir) if cfg.prompt_dir else None)


def build(cfg: RunConfig, only: str | None = None) -> StageImpls:
    """All implementations, or just ``only``'s (a worker that does one stage)."""
    stages = {only: OFFLINE[only]} if only else OFFLINE
    cache = None
    if (cfg.cache or cfg.cache_only) and any(getattr(cfg, st) != off for st, off in stages.items()):
        from visassoc.backends.cache import CallCache
        from visassoc.lexicon import cache_dir

        cache = CallCache(cache_dir() / "calls.sqlite")
    identity: dict[str, Any] = {}
    by_stage: dict[str, Any] = {}
    impls: dict[str, Any] = {}
    for stage, offline in stages.items():
        spec = getattr(cfg, stage)
        if spec == offline:
            impls[stage], identity[stage] = make_offline_stage(stage, cfg)
            continue
        b = by_stage[stage] = _backend(spec, cfg, cache)
        impls[stage] = make_model_stage(stage, b, **model_options(cfg, stage))
        identity[stage] = {"backend": b.identity(), "prompts": impls[stage].prompt.sha256}
        if impls[stage].options:
            identity[stage]["options"] = impls[stage].options
    if not only:  # salient words have no backend: their rule's version is their identity
        from visassoc.stages.salient import VERSION as SALIENT_VERSION

        identity["salient"] = {"version": SALIENT_VERSION}
    return StageImpls(impls, identity, list(by_stage.values()), by_stage)
