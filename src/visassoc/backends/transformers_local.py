"""Local Hugging Face ``transformers`` models (causal LMs and VLMs) behind the ``Backend`` protocol.

Weights come from a local directory or the local HF cache only (nothing can be downloaded
here unless ``local_files_only=False``). Prompts go through the model's own chat template;
batches are left-padded and generated together, which is what makes a CPU run bearable.
"""
from __future__ import annotations

import hashlib
import threading
from functools import cached_property
from pathlib import Path
from typing import Any

from visassoc.backends.base import BackendError, GenParams, Generation, Message, Usage
from visassoc.backends.jsonparse import parse_and_validate

_DTYPES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
           "float16": "float16", "fp16": "float16", "auto": "auto"}
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")


def load_image(src: bytes | str | Path):
    """Decode an image (bytes or path), apply its EXIF orientation, return RGB PIL; ValueError if unusable."""
    from visassoc.images import ImageError, open_rgb

    try:
        return open_rgb(src)
    except ImageError as e:
        where = f"{len(src)} bytes" if isinstance(src, (bytes, bytearray)) else str(src)
        raise ValueError(f"cannot read image ({where}): {e}"[:300]) from None


def weights_sha(path: Path) -> str:
    """Hub snapshot commit if ``path`` is one, else sha256 over the weight files (name + bytes)."""
    if path.parent.name == "snapshots" and len(path.name) == 40:
        return path.name
    h = hashlib.sha256()
    files = sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith(_WEIGHT_SUFFIXES))
    for f in files:
        h.update(f.name.encode())
        with open(f, "rb") as fh:
            while chunk := fh.read(1 << 23):
                h.update(chunk)
    return "sha256:" + h.hexdigest()


def _resolve_dtype(dtype: str | None, device: str):
    import torch

    if dtype is None:
        return torch.float32 if device == "cpu" else "auto"
    key = _DTYPES.get(str(dtype).lower())
    if key is None:
        raise BackendError(f"unknown dtype {dtype!r}; use one of {sorted(set(_DTYPES.values()))}")
    return key if key == "auto" else getattr(torch, key)


class TransformersBackend:
    """A local causal LM (``AutoModelForCausalLM``) or VLM (``AutoModelForImageTextToText``)."""

    provider = "transformers"

    def __init__(self, model: str | Path, device: str = "cpu", dtype: str | None = None, max_batch: int = 8,
                 trust_remote_code: bool = False, local_files_only: bool = True):
        import transformers
        from transformers import AutoConfig
        from transformers.models.auto.modeling_auto import (
            MODEL_FOR_CAUSAL_LM_MAPPING, MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING)

        if max_batch < 1:
            raise BackendError(f"max_batch must be >= 1, got {max_batch}")
        self.model = str(model)
        self.device = device
        self.max_batch = max_batch
        self._lock = threading.Lock()
        src = self._source(str(model), local_files_only)
        kw = dict(local_files_only=local_files_only, trust_remote_code=trust_remote_code)
        try:
            config = AutoConfig.from_pretrained(src, **kw)
        except (OSError, ValueError, KeyError) as e:
            raise BackendError(f"cannot load model config from {self.model!r}: {_one_line(e)}") from None
        remote = (getattr(config, "auto_map", None) or {}) if trust_remote_code else {}
        if type(config) in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING or "AutoModelForImageTextToText" in remote:
            self.supports_images = True
            auto_model, auto_proc = transformers.AutoModelForImageTextToText, transformers.AutoProcessor
        elif type(config) in MODEL_FOR_CAUSAL_LM_MAPPING or "AutoModelForCausalLM" in remote:
            self.supports_images = False
            auto_model, auto_proc = transformers.AutoModelForCausalLM, transformers.AutoTokenizer
        else:
            raise BackendError(f"unsupported architecture {config.model_type!r} "
                               f"({', '.join(config.architectures or []) or 'no architectures'}) in {self.model!r}: "
                               "need a causal LM or an image-text-to-text model")
        torch_dtype = _resolve_dtype(dtype, device)
        try:
            self.processor = auto_proc.from_pretrained(src, **kw)
            if getattr(self.processor, "chat_template", None) is None:
                raise BackendError(f"{self.model!r} has no chat template; an instruction-tuned model is needed")
            self.hf_model = auto_model.from_pretrained(src, dtype=torch_dtype, **kw)
        except (OSError, ValueError, ImportError) as e:
            raise BackendError(f"cannot load {self.model!r}: {_one_line(e)}") from None
        self.hf_model.to(device).eval()
        self.tokenizer = getattr(self.processor, "tokenizer", self.processor)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.unk_token
        self._src = Path(src) if Path(src).is_dir() else None

    @staticmethod
    def _source(model: str, local_files_only: bool) -> str:
        p = Path(model).expanduser()
        if p.exists():
            if not (p / "config.json").is_file():
                raise BackendError(f"model directory {model!r} has no config.json")
            return str(p)
        if model.startswith(("/", "./", "../", "~")) or model.count("/") > 1:
            raise BackendError(f"model path not found: {model!r}")
        if local_files_only:
            from huggingface_hub import snapshot_download

            try:  # resolve to the cached snapshot so identity() can report the commit
                return snapshot_download(model, local_files_only=True)
            except Exception:
                raise BackendError(f"model {model!r} is neither a directory nor in the local Hugging Face cache "
                                   "(downloads are off; pass local_files_only=False to allow)") from None
        return model

    # ---- identity -------------------------------------------------------------------------
    @cached_property
    def _revision(self) -> str | None:
        return weights_sha(self._src) if self._src is not None else None

    def identity(self) -> dict[str, Any]:
        return {"provider": self.provider, "model": self.model, "revision": self._revision,
                "dtype": str(self.hf_model.dtype).removeprefix("torch."), "device": self.device,
                "kind": "vlm" if self.supports_images else "llm"}

    # ---- generation -----------------------------------------------------------------------
    def generate(self, messages: list[Message], *, schema: dict | None = None,
                 params: GenParams | None = None) -> Generation:
        return self.generate_batch([messages], schema=schema, params=params)[0]

    def generate_batch(self, batch: list[list[Message]], schema: dict | None = None,
                       params: GenParams | None = None) -> list[Generation]:
        """One Generation per conversation, in order; unreadable images become ``Generation.error``."""
        params = params or GenParams()
        out: list[Generation | None] = [None] * len(batch)
        prepared: dict[int, list[tuple[int, list[dict], list]]] = {}  # n_images -> [(index, conv, images)]
        for i, msgs in enumerate(batch):
            try:
                conv, images = self._conversation(msgs)
            except ValueError as e:
                out[i] = Generation(text="", error=_one_line(e), usage=Usage(requests=1))
                continue
            prepared.setdefault(len(images), []).append((i, conv, images))
        for group in prepared.values():  # equal image counts batch cleanly in every processor
            for s in range(0, len(group), self.max_batch):
                chunk = group[s:s + self.max_batch]
                for (i, _, _), (text, usage) in zip(chunk, self._run([c for _, c, _ in chunk],
                                                                     [im for _, _, im in chunk], params)):
                    out[i] = _finish(text, usage, schema)
        return out  # type: ignore[return-value]

    def _conversation(self, msgs: list[Message]) -> tuple[list[dict], list]:
        if not msgs:
            raise ValueError("empty conversation")
        conv, images = [], []
        for m in msgs:
            if m.images and not self.supports_images:
                raise ValueError(f"{self.model!r} is a text-only model and cannot take images")
            if not self.supports_images:
                conv.append({"role": m.role, "content": m.text})
                continue
            content = []
            for src in m.images:
                images.append(load_image(src))
                content.append({"type": "image"})
            content.append({"type": "text", "text": m.text})
            conv.append({"role": m.role, "content": content})
        return conv, images

    def _encode(self, convs: list[list[dict]], images: list[list]):
        if not self.supports_images:
            texts = [self.tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in convs]
            return self.tokenizer(texts, padding=True, add_special_tokens=False, return_tensors="pt")
        texts = [self.processor.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in convs]
        bos = self.tokenizer.bos_token
        return self.processor(text=texts, images=images if any(images) else None, padding=True,
                              add_special_tokens=not (bos and texts[0].startswith(bos)), return_tensors="pt")

    def _run(self, convs: list[list[dict]], images: list[list], params: GenParams) -> list[tuple[str, Usage]]:
        import torch

        inputs = self._encode(convs, images).to(self.device)
        if "token_type_ids" in inputs and "token_type_ids" not in self._forward_args:
            del inputs["token_type_ids"]
        if "pixel_values" in inputs and inputs["pixel_values"].is_floating_point():
            inputs["pixel_values"] = inputs["pixel_values"].to(self.hf_model.dtype)
        eos = self._eos_ids
        gen_kw: dict[str, Any] = dict(max_new_tokens=params.max_tokens, pad_token_id=self.tokenizer.pad_token_id,
                                      eos_token_id=sorted(eos) or None)
        if params.temperature and params.temperature > 0:
            gen_kw.update(do_sample=True, temperature=params.temperature, top_p=params.top_p, top_k=0)
        else:
            gen_kw.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        with self._lock, torch.inference_mode(), torch.random.fork_rng(devices=self._rng_devices()):
            if gen_kw["do_sample"] and params.seed is not None:
                torch.manual_seed(params.seed)
            seqs = self.hf_model.generate(**inputs, **gen_kw)
        new = seqs[:, inputs["input_ids"].shape[1]:].tolist()
        prompt_lens = inputs["attention_mask"].sum(dim=1).tolist()
        results = []
        for ids, plen in zip(new, prompt_lens):
            n = next((k + 1 for k, t in enumerate(ids) if t in eos), len(ids))
            text = self.tokenizer.decode(ids[:n], skip_special_tokens=True).strip()
            results.append((text, Usage(prompt_tokens=int(plen), completion_tokens=n, requests=1)))
        return results

    def _rng_devices(self) -> list:
        import torch

        dev = torch.device(self.device)
        return [dev.index or 0] if dev.type == "cuda" else []

    @cached_property
    def _forward_args(self) -> set[str]:
        import inspect

        return set(inspect.signature(self.hf_model.forward).parameters)

    @cached_property
    def _eos_ids(self) -> set[int]:
        ids = self.hf_model.generation_config.eos_token_id
        ids = set(ids if isinstance(ids, list) else [] if ids is None else [ids])
        if self.tokenizer.eos_token_id is not None:
            ids.add(self.tokenizer.eos_token_id)
        return ids


def _finish(text: str, usage: Usage, schema: dict | None) -> Generation:
    if schema is None:
        return Generation(text=text, usage=usage)
    try:
        return Generation(text=text, parsed=parse_and_validate(text, schema), usage=usage)
    except ValueError as e:
        return Generation(text=text, usage=usage, error=_one_line(e))


def _one_line(e: BaseException) -> str:
    msg = " ".join(str(e).split())
    return msg[:300] if msg else type(e).__name__
