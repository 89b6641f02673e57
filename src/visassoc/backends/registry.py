"""Backend specs and the optional YAML backend config.

A spec is ``provider:model``: ``openai:gpt-4o-mini``, ``openai:Qwen/Qwen2.5-VL-7B-Instruct``
(any OpenAI-compatible server via ``OPENAI_BASE_URL``), the shortcuts ``vllm:``, ``ollama:``,
``llamacpp:``, ``lmstudio:`` (OpenAI protocol on that server's default local port),
``transformers:/path/or/hub-id`` and ``smollm``. Local providers are imported lazily so the
HTTP path never loads torch.

Config file (all keys optional)::

    llm: openai:gpt-4o-mini                 # associate
    vlm: vllm:Qwen/Qwen2.5-VL-7B-Instruct   # describe + caption
    stages: {describe: gpu-vlm}             # per stage: a spec or a name under `backends`
    backends:
      gpu-vlm:
        spec: openai:Qwen/Qwen2.5-VL-7B-Instruct
        base_url: http://gpu-box:8000/v1
        api_key_env: VLLM_API_KEY
        concurrency: 32
        params: {temperature: 0.7, top_k: 20}   # GenParams fields override; others go to the body
      openai:gpt-4o-mini: {concurrency: 16, rpm: 5000}   # options for a spec used elsewhere
    prices: {my-model: {input: 0.1, output: 0.2}}      # USD per 1M tokens, for cost estimates
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .base import Backend

OPENAI_LIKE = {
    "openai": None,  # OPENAI_BASE_URL or api.openai.com
    "vllm": "http://localhost:8000/v1",
    "ollama": "http://localhost:11434/v1",
    "llamacpp": "http://localhost:8080/v1",
    "lmstudio": "http://localhost:1234/v1",
}
LOCAL = ("transformers", "smollm")


@dataclass(frozen=True)
class BackendSpec:
    provider: str  # the spec's provider word (openai, vllm, ..., transformers, smollm)
    model: str

    def __str__(self) -> str:
        return self.provider if self.provider == "smollm" else f"{self.provider}:{self.model}"


def parse_spec(spec: str) -> BackendSpec:
    """``provider:model`` -> BackendSpec; raises ValueError with the accepted forms."""
    s = (spec or "").strip()
    if s == "smollm":
        return BackendSpec("smollm", "SmolLM2-135M-Instruct")
    provider, sep, model = s.partition(":")
    provider = provider.lower()
    if not sep or not model.strip() or provider not in (*OPENAI_LIKE, *LOCAL):
        raise ValueError(f"bad backend spec {spec!r}: expected openai:MODEL, vllm:MODEL, ollama:MODEL, "
                         "llamacpp:MODEL, lmstudio:MODEL, transformers:PATH_OR_HUB_ID or smollm")
    return BackendSpec(provider, model.strip())


class BackendOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    spec: str | None = None
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    timeout: float = Field(120.0, gt=0)
    concurrency: int | None = Field(None, ge=1, le=1024)
    rpm: float | None = Field(None, gt=0)
    tpm: float | None = Field(None, gt=0)
    max_image_side: int = Field(768, ge=32)
    image_detail: str | None = Field(None, pattern="^(low|high|auto)$")
    structured: str = Field("auto", pattern="^(auto|json_schema|json_object|text)$")
    supports_images: bool = True
    max_retries: int = Field(6, ge=0)
    params: dict[str, Any] = Field(default_factory=dict)
    # local providers
    device: str = "cpu"
    dtype: str | None = None
    max_batch: int = Field(8, ge=1)
    trust_remote_code: bool = False


class BackendsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    llm: str | None = None
    vlm: str | None = None
    stages: dict[str, str] = Field(default_factory=dict)
    backends: dict[str, BackendOptions] = Field(default_factory=dict)
    prices: dict[str, dict[str, float]] = Field(default_factory=dict)

    def resolve(self, name_or_spec: str) -> tuple[BackendSpec, BackendOptions]:
        """A name under ``backends`` or a spec (with that spec's options, if any)."""
        opts = self.backends.get(name_or_spec)
        if opts is not None and opts.spec:
            return parse_spec(opts.spec), opts
        return parse_spec(name_or_spec), opts or BackendOptions()


def load_config(path: str | Path | None, stages: tuple[str, ...] | None = None) -> BackendsConfig:
    """The backend YAML (empty without a path); ``stages``: the stage names its ``stages`` map may use."""
    if path is None:
        return BackendsConfig()
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"backend config not found: {p}")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        cfg = BackendsConfig.model_validate(data)
    except yaml.YAMLError as e:
        raise ValueError(f"backend config {p.name} is not valid YAML: {str(e).splitlines()[0]}") from None
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(x) for x in err["loc"])
        raise ValueError(f"backend config {p.name}: {where}: {err['msg']}") from None
    for stage in cfg.stages:
        if stages is not None and stage not in stages:
            raise ValueError(f"backend config {p.name}: unknown stage {stage!r} ({', '.join(stages)})")
    return cfg


def make_backend(spec: str, *, config: BackendsConfig | None = None, config_path: str | Path | None = None,
                 concurrency: int | None = None, **overrides: Any) -> Backend:
    """Build the backend for ``spec`` (or a name under ``backends`` in the config)."""
    cfg = config or load_config(config_path)
    bspec, opts = cfg.resolve(spec)
    if overrides:
        opts = opts.model_copy(update=overrides)
    if bspec.provider in OPENAI_LIKE:
        from .openai_compat import OpenAIBackend, RetryPolicy

        return OpenAIBackend(
            bspec.model, base_url=opts.base_url or OPENAI_LIKE[bspec.provider], api_key_env=opts.api_key_env,
            timeout=opts.timeout, concurrency=opts.concurrency or concurrency or 8, rpm=opts.rpm, tpm=opts.tpm,
            max_image_side=opts.max_image_side, image_detail=opts.image_detail, structured=opts.structured,
            supports_images=opts.supports_images,
            params=opts.params, retry=RetryPolicy(max_retries=opts.max_retries), prices=cfg.prices)
    if bspec.provider == "transformers":
        from .transformers_local import TransformersBackend

        return TransformersBackend(bspec.model, device=opts.device, dtype=opts.dtype, max_batch=opts.max_batch,
                                   trust_remote_code=opts.trust_remote_code)
    from .smollm import SmolLMBackend

    return SmolLMBackend()


def stage_specs(roles: dict[str, str], llm: str | None = None, vlm: str | None = None,
                config: BackendsConfig | None = None) -> dict[str, str]:
    """Which spec/name serves each stage of ``roles`` ({stage: "llm" | "vlm"}): CLI --llm/--vlm,
    then config ``stages``, then config llm/vlm."""
    cfg = config or BackendsConfig()
    out = {}
    for st, role in roles.items():
        cli = llm if role == "llm" else vlm
        chosen = cli or cfg.stages.get(st) or (cfg.llm if role == "llm" else cfg.vlm)
        if not chosen:
            raise ValueError(f"no backend for stage {st}: pass --{role} SPEC or set it in the backend config")
        out[st] = chosen
    return out


def stage_backends(roles: dict[str, str], llm: str | None = None, vlm: str | None = None,
                   config: BackendsConfig | None = None, concurrency: int | None = None) -> dict[str, Backend]:
    """One backend per stage of ``roles``; stages that resolve to the same spec share one instance."""
    made: dict[str, Backend] = {}
    out = {}
    for st, spec in stage_specs(roles, llm, vlm, config).items():
        if spec not in made:
            made[spec] = make_backend(spec, config=config, concurrency=concurrency)
        out[st] = made[spec]
    return out
