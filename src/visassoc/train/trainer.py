"""The training loop: AdamW + warmup/cosine + grad clipping, validation R@1 early stopping that restores
the best weights, resumable state, a JSONL log, a plot and a run manifest.

Layout of ``out``: encoder.json + weights.safetensors (best weights; what eval/search load), base/ (tiny
models only), manifest.json, train.jsonl, training.png, skipped.jsonl, state/ (resume), cache/ (memmaps).
"""
from __future__ import annotations

import json
import math
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from visassoc.retrieval import retrieval_metrics

from . import data as D
from visassoc.encoders.checkpoint import encoder_spec, save_encoder, torch_load
from .loss import contrastive_loss
from visassoc.encoders.models import load_backbone, save_backbone
from visassoc.encoders.distance_tokens import PromptedEncoder

SAMPLERS = ("random", "balanced", "mixed")
_NOT_COMPARED = {"resume", "stop_after", "device"}  # may differ between a run and its resumption


@dataclass
class TrainConfig:
    data: list[str]
    out: str
    model: str = "tiny-random-clip"
    epochs: int = 10
    max_steps: int | None = None
    level_tokens: int = 5
    num_levels: int = 5
    position: str = "append"
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup_fraction: float = 0.05
    grad_clip: float = 1.0
    sampler: str = "random"  # random | balanced | mixed (paper: 0.6 random + 0.4 image-balanced)
    mixed_weights: tuple[float, float] = (0.6, 0.4)
    unfreeze_last: int = 0
    lora_rank: int = 0
    lora_alpha: int = 16
    val_fraction: float = 0.1
    eval_every: int | None = None  # steps; default: once per epoch
    patience: int = 5  # evaluations without improvement before stopping
    seed: int = 0
    text_cache: bool = True  # False recomputes the frozen text tower every step (for the benchmark)
    device: str = "auto"
    resume: bool = False
    stop_after: int | None = None  # end this invocation after this global step, keeping state for --resume


@dataclass
class TrainResult:
    out_dir: str
    steps: int
    total_steps: int
    finished: bool  # False when stop_after interrupted the run
    stopped_early: bool
    best_step: int
    best_val: float  # validation R@1 (mean of t2i and i2t over levels) of the restored weights
    baseline_val: float  # same metric, base model without tokens
    final_val: float | None  # recomputed after restoring the best weights (== best_val)
    history: list[dict] = field(default_factory=list)


def lr_at(cfg: TrainConfig, step: int, total: int) -> float:
    warm = max(1, round(cfg.warmup_fraction * total)) if cfg.warmup_fraction > 0 else 0
    if step < warm:
        return cfg.lr * (step + 1) / warm
    t = (step - warm) / max(1, total - warm)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


@torch.no_grad()
def validate(enc: PromptedEncoder, pixels, tfeat, ex: D.Examples, mask: np.ndarray, levels: bool = True,
             batch_size: int = 256) -> dict:
    """Val R@1 per level: gallery = val images (with that level's tokens), queries = that level's captions;
    an identical caption on two images is a positive for both. Returns the mean of t2i and i2t R@1."""
    dev = enc.prompts.device
    img_ids = np.unique(ex.ex_image[mask])
    col = {im: j for j, im in enumerate(img_ids)}
    out, cache = {}, {}
    for lv in sorted(set(ex.ex_level[mask].tolist())):
        key = lv if levels else None
        if key not in cache:
            feats = [enc.image_features(torch.from_numpy(np.asarray(pixels[img_ids[s:s + batch_size]])).float().to(dev),
                                        key) for s in range(0, len(img_ids), batch_size)]
            cache[key] = torch.nn.functional.normalize(torch.cat(feats), dim=-1).cpu().numpy()
        sel = mask & (ex.ex_level == lv)
        texts = sorted(set(ex.ex_text[sel].tolist()))
        row = {t: i for i, t in enumerate(texts)}
        pos = [set() for _ in texts]
        for i, t in zip(ex.ex_image[sel], ex.ex_text[sel]):
            pos[row[t]].add(col[i])
        scores = np.asarray(tfeat[texts]) @ cache[key].T
        m = retrieval_metrics(scores, [sorted(p) for p in pos], n_boot=0)
        out[lv] = (m["t2i"]["R@1"] + m["i2t"]["R@1"]) / 2
    return {"R@1": float(np.mean(list(out.values()))), "per_level": {str(k): v for k, v in out.items()}}


def _device(name: str) -> str:
    return ("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name


def _versions() -> dict:
    from importlib.metadata import version

    v = {"python": platform.python_version()}
    for pkg in ("visassoc", "torch", "transformers", "peft", "numpy", "safetensors"):
        try:
            v[pkg] = version(pkg)
        except Exception:  # noqa: BLE001 - a missing optional package is just recorded
            v[pkg] = "missing"
    return v


def train(cfg: TrainConfig) -> TrainResult:
    """Train distance prompt tokens (and optionally the last vision blocks / LoRA) on run dirs' captions."""
    if cfg.sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}")
    out = Path(cfg.out)
    state_dir, cache = out / "state", out / "cache"
    state_dir.mkdir(parents=True, exist_ok=True)
    dev = _device(cfg.device)
    torch.manual_seed(cfg.seed)

    ex = D.load_runs(cfg.data, cfg.num_levels)
    with open(out / "skipped.jsonl", "w") as f:
        f.writelines(json.dumps(s) + "\n" for s in ex.skipped)
    tr_mask, val_mask = D.split_by_image(ex, cfg.val_fraction, cfg.seed)
    tr = ex.subset(tr_mask)
    n_val_img = len(np.unique(ex.ex_image[val_mask]))
    if cfg.val_fraction > 0 and n_val_img < 5:
        print(f"WARNING: only {n_val_img} validation image(s): val R@1 (and early stopping) is nearly "
              "meaningless; use more images or a larger --val-fraction", file=sys.stderr)
    spe = D.steps_per_epoch(len(tr.ex_image), cfg.batch_size)
    total = cfg.epochs * spe if cfg.max_steps is None else min(cfg.max_steps, cfg.epochs * spe) if cfg.epochs else cfg.max_steps
    eval_every = cfg.eval_every or spe

    bb = load_backbone(cfg.model, device=dev, seed=cfg.seed)
    if bb.is_tiny and not (cfg.resume and (out / "base" / "config.json").exists()):
        save_backbone(bb, out / "base")  # the untouched random base, before any step changes it
    enc = PromptedEncoder(bb, cfg.level_tokens, cfg.num_levels, cfg.position, seed=cfg.seed).to(dev)
    enc.configure_trainable(cfg.unfreeze_last, cfg.lora_rank, cfg.lora_alpha)
    params = [p for p in enc.parameters() if p.requires_grad]
    if not params:
        raise ValueError("nothing to train: level_tokens=0 and no unfreeze_last / lora_rank")
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    spec = encoder_spec(enc, cfg.unfreeze_last, cfg.lora_rank, cfg.lora_alpha)
    if Path(cfg.model).exists():
        spec["base"] = str(Path(cfg.model).resolve())

    pixels = D.pixel_cache(ex.image_paths, bb.processor, cache)
    fp = f"{cfg.model}|seed={cfg.seed}" if bb.is_tiny else cfg.model
    tfeat = D.text_cache(ex.texts, enc, cache, fp) if cfg.text_cache else None
    vfeat = tfeat if tfeat is not None else D.text_cache(ex.texts, enc, cache, fp)

    log_path = out / "train.jsonl"
    step, best, best_step, bad, history = 0, -1.0, 0, 0, []
    last = state_dir / "last.pt"
    if cfg.resume and last.exists():
        st = torch_load(last)
        old = {k: v for k, v in st["config"].items() if k not in _NOT_COMPARED}
        new = {k: v for k, v in asdict(cfg).items() if k not in _NOT_COMPARED}
        if json.loads(json.dumps(old)) != json.loads(json.dumps(new)):
            diff = sorted(k for k in new if old.get(k) != new[k])
            raise ValueError(f"cannot resume {out}: config differs from the saved run in {diff}")
        enc.load_trainable_state(st["trainable"])
        opt.load_state_dict(st["optimizer"])
        step, best, best_step, bad, history = st["step"], st["best"], st["best_step"], st["bad"], st["history"]
        lines = log_path.read_text().splitlines() if log_path.exists() else []
        log_path.write_text("".join(l + "\n" for l in lines if json.loads(l)["step"] <= step))
        print(f"resuming {out} at step {step}/{total}", file=sys.stderr)
    else:
        log_path.write_text("")
    baseline = validate(enc, pixels, vfeat, ex, val_mask, levels=False)["R@1"] if val_mask.any() else float("nan")

    def log(rec: dict) -> None:
        with open(log_path, "a") as f:
            f.write(json.dumps(rec) + "\n")

    def save_state() -> None:
        torch.save({"step": step, "trainable": enc.trainable_state(), "optimizer": opt.state_dict(), "best": best,
                    "best_step": best_step, "bad": bad, "history": history, "config": asdict(cfg)},
                   state_dir / "last.tmp")
        (state_dir / "last.tmp").replace(last)

    def evaluate_now() -> bool:
        """Validate; keep the best weights; True when patience has run out."""
        nonlocal best, best_step, bad
        if not val_mask.any():  # no validation split: the last weights are the result
            save_file({k: v.contiguous() for k, v in enc.trainable_state().items()}, str(state_dir / "best.safetensors"))
            best, best_step = float("nan"), step
            return False
        v = validate(enc, pixels, vfeat, ex, val_mask)
        history.append({"step": step, "val_R@1": v["R@1"], "per_level": v["per_level"]})
        log({"step": step, "val_R@1": v["R@1"], "baseline_val_R@1": baseline})
        if v["R@1"] > best:
            best, best_step, bad = v["R@1"], step, 0
            save_file({k: v_.contiguous() for k, v_ in enc.trainable_state().items()}, str(state_dir / "best.safetensors"))
        else:
            bad += 1
        return bad >= cfg.patience

    if step == 0:
        evaluate_now()
        save_state()
    stopped_early, t0 = False, time.time()
    ex_img, ex_txt, ex_lvl = (torch.from_numpy(a) for a in (tr.ex_image, tr.ex_text, tr.ex_level))
    bar = tqdm(total=total, initial=step, desc="train", unit="step")
    while step < total and not (cfg.stop_after is not None and step >= cfg.stop_after):
        batches = []
        if cfg.sampler in ("random", "mixed"):
            batches.append(D.random_batch(len(tr.ex_image), cfg.batch_size, cfg.seed, step))
        if cfg.sampler in ("balanced", "mixed"):
            batches.append(D.balanced_batch(tr.ex_image, cfg.batch_size, cfg.seed, step))
        weights = cfg.mixed_weights if cfg.sampler == "mixed" else (1.0,)
        lr = lr_at(cfg, step, total)
        for g in opt.param_groups:
            g["lr"] = lr
        loss = 0.0
        for w, b in zip(weights, batches):
            b = torch.from_numpy(b)
            px = torch.from_numpy(np.asarray(pixels[ex_img[b].numpy()])).float().to(dev)
            img = enc.image_features(px, ex_lvl[b].to(dev))
            if tfeat is not None:
                txt = torch.from_numpy(np.asarray(tfeat[ex_txt[b].numpy()])).to(dev)
            else:
                with torch.no_grad():
                    tok = bb.tokenize([ex.texts[i] for i in ex_txt[b].tolist()])
                    txt = enc.text_features(**{k: v.to(dev) for k, v in tok.items()})
            ignore = (ex_img[b][:, None] == ex_img[b][None, :]) | (ex_txt[b][:, None] == ex_txt[b][None, :])
            loss = loss + w * contrastive_loss(bb.model, bb.family, img, txt, ignore.to(dev))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip) if cfg.grad_clip else torch.tensor(0.0)
        opt.step()
        step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}")
        log({"step": step, "loss": float(loss.item()), "lr": lr, "grad_norm": float(gnorm), "epoch": (step - 1) // spe,
             "elapsed_s": round(time.time() - t0, 3)})
        if step % eval_every == 0 or step == total:
            stopped_early = evaluate_now() and step < total
            save_state()
            if stopped_early:
                break
    bar.close()
    finished = step >= total or stopped_early
    if not finished:
        save_state()
        return TrainResult(str(out), step, total, False, False, best_step, best, baseline, None, history)
    enc.load_trainable_state(load_file(str(state_dir / "best.safetensors")))
    final = validate(enc, pixels, vfeat, ex, val_mask)["R@1"] if val_mask.any() else None
    save_encoder(enc, out, spec)
    res = TrainResult(str(out), step, total, True, stopped_early, best_step, best, baseline, final, history)
    manifest = {"config": asdict(cfg), "seed": cfg.seed, "versions": _versions(), "encoder": spec,
                "data": {"images": len(ex.image_paths), "captions": len(ex.texts), "examples": len(ex.ex_image),
                         "train_examples": int(tr_mask.sum()), "val_examples": int(val_mask.sum()),
                         "skipped": len(ex.skipped)},
                "result": {k: (None if isinstance(v, float) and math.isnan(v) else v)
                           for k, v in asdict(res).items() if k != "history"}}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    plot_log(log_path, out / "training.png")
    return res


def plot_log(log_path: Path, png: Path) -> None:
    """Training loss and validation R@1 (with the no-token baseline) against steps."""
    try:
        import matplotlib
    except ImportError:  # the checkpoint matters more than the picture
        print("WARNING: matplotlib not installed; training.png not written", file=sys.stderr)
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recs = [json.loads(l) for l in Path(log_path).read_text().splitlines() if l.strip()]
    tr = [(r["step"], r["loss"]) for r in recs if "loss" in r]
    va = [(r["step"], r["val_R@1"], r["baseline_val_R@1"]) for r in recs if "val_R@1" in r]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.5))
    if tr:
        a.plot(*zip(*tr), lw=0.8)
    a.set(xlabel="step", ylabel="train loss", title="loss")
    if va:
        s, v, base = zip(*va)
        b.plot(s, v, marker="o", label="prompt tokens")
        b.axhline(base[0], color="gray", ls="--", label="baseline (no tokens)")
        b.legend()
    b.set(xlabel="step", ylabel="val R@1", title="validation")
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
