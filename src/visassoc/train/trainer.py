"""The training loop and its two presets: ``visassoc`` (AdamW + warm-up/cosine + clipping, early stopping on
validation R@1) and ``paper`` (the authors' optimisation: two Adam steps per iteration at a constant 1e-4,
early stopping on validation loss). Both restore the best weights, keep a resumable state (no pickle, see
``state``), a JSONL log, a plot and a run manifest; every resolved setting lands in encoder.json's "training".

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
from . import state as S
from visassoc.encoders.checkpoint import encoder_spec, save_encoder
from .loss import MASKS, contrastive_loss, pair_mask
from visassoc.encoders.models import load_backbone, save_backbone
from visassoc.encoders.distance_tokens import PromptedEncoder

SAMPLERS = ("random", "balanced", "levels", "mixed")
MIXED_STEPS = ("joint", "alternate")
_NOT_COMPARED = {"resume", "overwrite", "stop_after", "device", "epochs", "max_steps"}  # may change on --resume

# Everything a preset decides; a field left at None in TrainConfig takes its preset's value.
PRESETS: dict[str, dict] = {
    # visassoc: our improvements (AdamW, warm-up + cosine, clipping, model selection on val R@1) plus the
    # paper's within-image cross-level negatives (the levels sampler inside the mix). Selection averages val
    # R@1 with val level accuracy: R@1 alone cannot see whether the tokens tell the levels apart, and on the
    # synthetic world (benchmarks/bench_level_tokens.py) it picked checkpoints at random with respect to it.
    "visassoc": dict(epochs=10, batch_size=64, lr=1e-3, optimizer="adamw", weight_decay=0.0, schedule="cosine",
                     warmup_fraction=0.05, grad_clip=1.0, sampler="mixed", mixed_steps="joint",
                     mixed_weights=(0.6, 0.4), init_std=0.02, select="val_r1_level", patience=5, loss_mask="target",
                     level_tokens=5, position="append"),
    # paper: the optimisation of the authors' model_train.py. Two optimizer steps per iteration (random batch,
    # loss x0.6; then a levels batch, loss x0.4), Adam lr 1e-4 constant, no warm-up, no clipping, batch 512,
    # tokens N(0, 1) (nn.Embedding's init), 5 tokens per level appended after CLS + patches, early stopping
    # on validation loss with patience 3. Epochs: their loop runs 10 but its comment says the paper used 1;
    # we default to the paper's 1.
    "paper": dict(epochs=1, batch_size=512, lr=1e-4, optimizer="adam", weight_decay=0.0, schedule="constant",
                  warmup_fraction=0.0, grad_clip=0.0, sampler="mixed", mixed_steps="alternate",
                  mixed_weights=(0.6, 0.4), init_std=1.0, select="val_loss", patience=3, loss_mask="target",
                  level_tokens=5, position="append"),
}


@dataclass
class TrainConfig:
    data: list[str]
    out: str
    model: str = "tiny-random-clip"
    preset: str = "visassoc"  # visassoc | paper: fills every field below left at None
    epochs: int | None = None
    max_steps: int | None = None  # cap on iterations (an iteration is 2 optimizer steps with mixed_steps=alternate)
    level_tokens: int | None = None
    num_levels: int = 5
    position: str | None = None
    batch_size: int | None = None
    lr: float | None = None
    optimizer: str | None = None  # adamw | adam
    weight_decay: float | None = None
    schedule: str | None = None  # cosine | constant
    warmup_fraction: float | None = None
    grad_clip: float | None = None  # 0 = no clipping
    sampler: str | None = None  # random | balanced | levels | mixed (= random + levels)
    mixed_steps: str | None = None  # joint: one step on the weighted sum; alternate: one step per batch
    mixed_weights: tuple[float, float] | None = None
    init_std: float | None = None  # prompt token init N(0, std^2)
    loss_mask: str | None = None  # target | image | none (see loss.pair_mask)
    select: str | None = None  # val_r1 | val_r1_level | val_loss: what early stopping and the restored weights follow
    unfreeze_last: int = 0
    lora_rank: int = 0
    lora_alpha: int = 16
    val_fraction: float = 0.1
    eval_every: int | None = None  # iterations; default: once per epoch
    patience: int | None = None  # evaluations without improvement before stopping
    seed: int = 0
    text_cache: bool = True  # False recomputes the frozen text tower every step (for the benchmark)
    device: str = "auto"
    resume: bool = False
    overwrite: bool = False  # replace an existing training run in ``out``
    stop_after: int | None = None  # end this invocation after this global step, keeping state for --resume

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {self.preset!r}")
        for k, v in PRESETS[self.preset].items():
            if getattr(self, k) is None:
                setattr(self, k, v)
        self.mixed_weights = tuple(float(w) for w in self.mixed_weights)
        checks = {"sampler": SAMPLERS, "mixed_steps": MIXED_STEPS, "optimizer": ("adamw", "adam"),
                  "schedule": ("cosine", "constant"), "loss_mask": MASKS, "select": ("val_r1", "val_r1_level", "val_loss")}
        for k, allowed in checks.items():
            if getattr(self, k) not in allowed:
                raise ValueError(f"{k} must be one of {allowed}, got {getattr(self, k)!r}")
        if self.batch_size < (self.num_levels if self.sampler in ("levels", "mixed") else 1):
            raise ValueError(f"batch_size {self.batch_size} is too small for the {self.sampler} sampler")
        if self.epochs < 0 or (self.max_steps is not None and self.max_steps < 1) or self.lr <= 0:
            raise ValueError("epochs must be >= 0, max_steps >= 1 and lr > 0")
        if self.resume and self.overwrite:
            raise ValueError("--resume and --overwrite exclude each other")


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
    if cfg.schedule == "constant":
        return cfg.lr
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
    res = {"R@1": float(np.mean(list(out.values()))), "per_level": {str(k): v for k, v in out.items()}}
    if levels:
        res["level_acc"] = level_accuracy(cache, tfeat, ex, mask, col)
    return res


def level_accuracy(feats: dict, tfeat, ex: D.Examples, mask: np.ndarray, col: dict) -> float:
    """Share of captions that the image, encoded with their level's tokens, scores above every caption of
    that image at another level (R@1 is blind to this: its gallery holds one level at a time). Chance is
    1/levels with one caption per level; NaN when no image has captions at two levels."""
    idx = np.flatnonzero(mask)
    by_img: dict[int, list[int]] = {}
    for j in idx.tolist():
        by_img.setdefault(int(ex.ex_image[j]), []).append(j)
    hits = []
    for im, js in by_img.items():
        lv = ex.ex_level[js]
        if len(set(lv.tolist())) < 2:
            continue
        t = np.asarray(tfeat[ex.ex_text[js]])
        for e, k in enumerate(lv.tolist()):
            s = t @ feats[k][col[im]]
            hits.append(float(s[e] > s[lv != k].max()))
    return float(np.mean(hits)) if hits else float("nan")


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


@torch.no_grad()
def validation_loss(enc: PromptedEncoder, family: str, pixels, tfeat, ex: D.Examples, mask: np.ndarray,
                    batch_size: int, loss_mask: str) -> float:
    """Mean contrastive loss over the validation examples in consecutive batches (each image with its
    caption's level tokens), the criterion the authors stop on."""
    dev = enc.prompts.device
    idx = np.flatnonzero(mask)
    losses = []
    for s in range(0, len(idx), batch_size):
        b = idx[s:s + batch_size]
        if len(b) < 2:
            continue
        img = enc.image_features(torch.from_numpy(np.asarray(pixels[ex.ex_image[b]])).float().to(dev),
                                 torch.from_numpy(ex.ex_level[b]).to(dev))
        txt = torch.from_numpy(np.asarray(tfeat[ex.ex_text[b]])).to(dev)
        ign = pair_mask(*(torch.from_numpy(a[b]) for a in (ex.ex_image, ex.ex_level, ex.ex_text)), loss_mask)
        losses.append(float(contrastive_loss(enc.model, family, img, txt, None if ign is None else ign.to(dev))))
    return float(np.mean(losses)) if losses else float("nan")


def _optimizer(cfg: TrainConfig, params):
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def train(cfg: TrainConfig) -> TrainResult:
    """Train distance prompt tokens (and optionally the last vision blocks / LoRA) on run dirs' captions.

    Everything is validated before ``cfg.out`` is touched: a refused or invalid command creates nothing."""
    out = Path(cfg.out)
    S.check_out(out, cfg.resume, cfg.overwrite)
    state_dir, cache = out / "state", out / "cache"
    dev = _device(cfg.device)
    torch.manual_seed(cfg.seed)

    ex = D.load_runs(cfg.data, cfg.num_levels)
    meta = S.load_state(state_dir) if cfg.resume else None
    if meta is not None:
        old = {k: v for k, v in meta[0]["config"].items() if k not in _NOT_COMPARED}
        new = {k: v for k, v in asdict(cfg).items() if k not in _NOT_COMPARED}
        if json.loads(json.dumps(old)) != json.loads(json.dumps(new)):
            diff = sorted(k for k in new if json.loads(json.dumps(old.get(k))) != json.loads(json.dumps(new[k])))
            raise ValueError(f"cannot resume {out}: config differs from the saved run in {diff}")
    bb = load_backbone(cfg.model, device=dev, seed=cfg.seed)
    enc = PromptedEncoder(bb, cfg.level_tokens, cfg.num_levels, cfg.position, init_std=cfg.init_std,
                          seed=cfg.seed).to(dev)
    enc.configure_trainable(cfg.unfreeze_last, cfg.lora_rank, cfg.lora_alpha)
    params = [p for p in enc.parameters() if p.requires_grad]
    if not params:
        raise ValueError("nothing to train: level_tokens=0 and no unfreeze_last / lora_rank")
    if cfg.overwrite:
        S.clear_run(out)
    state_dir.mkdir(parents=True, exist_ok=True)
    with open(out / "skipped.jsonl", "w") as f:
        f.writelines(json.dumps(s) + "\n" for s in ex.skipped)
    if bb.is_tiny and not (out / "base" / "config.json").exists():
        save_backbone(bb, out / "base")  # the untouched random base, before any step changes it

    tr_mask, val_mask = D.split_by_image(ex, cfg.val_fraction, cfg.seed)
    tr = ex.subset(tr_mask)
    n_val_img = len(np.unique(ex.ex_image[val_mask]))
    if cfg.val_fraction > 0 and n_val_img < 5:
        print(f"WARNING: only {n_val_img} validation image(s): validation (and early stopping) is nearly "
              "meaningless; use more images or a larger --val-fraction", file=sys.stderr)
    spe = D.steps_per_epoch(len(tr.ex_image), cfg.batch_size)
    total = cfg.epochs * spe if cfg.max_steps is None else min(cfg.max_steps, cfg.epochs * spe) if cfg.epochs else cfg.max_steps
    eval_every = cfg.eval_every or spe
    opt = _optimizer(cfg, params)
    spec = encoder_spec(enc, cfg.unfreeze_last, cfg.lora_rank, cfg.lora_alpha)
    if Path(cfg.model).exists():
        spec["base"] = str(Path(cfg.model).resolve())
    spec["training"] = {k: v for k, v in asdict(cfg).items() if k not in ("resume", "overwrite", "stop_after")}

    pixels = D.pixel_cache(ex.image_paths, bb.processor, cache)
    fp = f"{cfg.model}|seed={cfg.seed}" if bb.is_tiny else cfg.model
    tfeat = D.text_cache(ex.texts, enc, cache, fp) if cfg.text_cache else None
    vfeat = tfeat if tfeat is not None else D.text_cache(ex.texts, enc, cache, fp)

    log_path = out / "train.jsonl"
    step, best, best_step, bad, history = 0, -math.inf, 0, 0, []
    if meta is not None:
        st, trainable, opt_state = meta
        enc.load_trainable_state(trainable)
        opt.load_state_dict(opt_state)
        step, best, best_step, bad, history = st["step"], st["best"], st["best_step"], st["bad"], st["history"]
        best = -math.inf if best is None else best
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
        S.save_state(state_dir, step, enc.trainable_state(), opt,
                     {"best": None if math.isinf(best) else best, "best_step": best_step, "bad": bad,
                      "history": history, "config": asdict(cfg)})

    def save_best() -> None:
        save_file({k: v.contiguous() for k, v in enc.trainable_state().items()}, str(state_dir / "best.safetensors"))

    def evaluate_now() -> bool:
        """Validate; keep the best weights (by cfg.select); True when patience has run out."""
        nonlocal best, best_step, bad
        if not val_mask.any():  # no validation split: the last weights are the result
            save_best()
            best_step = step
            return False
        v = validate(enc, pixels, vfeat, ex, val_mask)
        rec = {"step": step, "val_R@1": v["R@1"], "val_level_acc": v["level_acc"], "per_level": v["per_level"]}
        if cfg.select == "val_loss":
            rec["val_loss"] = validation_loss(enc, bb.family, pixels, vfeat, ex, val_mask, cfg.batch_size,
                                              cfg.loss_mask)
        history.append(rec)
        log({**{k: v_ for k, v_ in rec.items() if k != "per_level"}, "baseline_val_R@1": baseline})
        score = {"val_loss": lambda: -rec["val_loss"], "val_r1": lambda: rec["val_R@1"],
                 "val_r1_level": lambda: (rec["val_R@1"] + np.nan_to_num(rec["val_level_acc"])) / 2}[cfg.select]()
        if score > best:
            best, best_step, bad = score, step, 0
            save_best()
        else:
            bad += 1
        return bad >= cfg.patience

    if step == 0:
        evaluate_now()
        save_state()
    stopped_early, t0 = False, time.time()
    ex_img, ex_txt, ex_lvl = (torch.from_numpy(a) for a in (tr.ex_image, tr.ex_text, tr.ex_level))
    groups = D.level_groups(tr.ex_image, tr.ex_level) if cfg.sampler in ("levels", "mixed") else None

    def batch_loss(b: np.ndarray) -> torch.Tensor:
        b = torch.from_numpy(b)
        px = torch.from_numpy(np.asarray(pixels[ex_img[b].numpy()])).float().to(dev)
        img = enc.image_features(px, ex_lvl[b].to(dev))
        if tfeat is not None:
            txt = torch.from_numpy(np.asarray(tfeat[ex_txt[b].numpy()])).to(dev)
        else:
            with torch.no_grad():
                tok = bb.tokenize([ex.texts[i] for i in ex_txt[b].tolist()])
                txt = enc.text_features(**{k: v.to(dev) for k, v in tok.items()})
        ignore = pair_mask(ex_img[b], ex_lvl[b], ex_txt[b], cfg.loss_mask)
        return contrastive_loss(bb.model, bb.family, img, txt, None if ignore is None else ignore.to(dev))

    def update(loss: torch.Tensor) -> float:
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip) if cfg.grad_clip else None
        opt.step()
        return float(gnorm) if gnorm is not None else float(torch.norm(torch.stack(
            [p.grad.norm() for p in params if p.grad is not None])))

    bar = tqdm(total=total, initial=step, desc="train", unit="step")
    while step < total and not (cfg.stop_after is not None and step >= cfg.stop_after):
        batches = []
        if cfg.sampler in ("random", "mixed"):
            batches.append(D.random_batch(len(tr.ex_image), cfg.batch_size, cfg.seed, step))
        if cfg.sampler == "balanced":
            batches.append(D.balanced_batch(tr.ex_image, cfg.batch_size, cfg.seed, step))
        if cfg.sampler in ("levels", "mixed"):
            batches.append(D.levels_batch(groups, cfg.batch_size, cfg.seed, step, cfg.num_levels))
        weights = cfg.mixed_weights if cfg.sampler == "mixed" else (1.0,)
        lr = lr_at(cfg, step, total)
        for g in opt.param_groups:
            g["lr"] = lr
        if cfg.mixed_steps == "alternate":  # the authors: one optimizer step per weighted batch loss
            loss_val, gnorm = 0.0, 0.0
            for w, b in zip(weights, batches):
                loss = w * batch_loss(b)
                gnorm = update(loss)
                loss_val += float(loss.item())
        else:
            loss = sum(w * batch_loss(b) for w, b in zip(weights, batches))
            gnorm = update(loss)
            loss_val = float(loss.item())
        step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{loss_val:.4f}")
        log({"step": step, "loss": loss_val, "lr": lr, "grad_norm": gnorm, "epoch": (step - 1) // spe,
             "elapsed_s": round(time.time() - t0, 3)})
        if step % eval_every == 0 or step == total:
            stopped_early = evaluate_now() and step < total
            save_state()
            if stopped_early:
                break
    bar.close()
    finished = step >= total or stopped_early
    best_r1 = next((h["val_R@1"] for h in history if h["step"] == best_step), float("nan"))
    if not finished:
        save_state()
        return TrainResult(str(out), step, total, False, False, best_step, best_r1, baseline, None, history)
    enc.load_trainable_state(load_file(str(state_dir / "best.safetensors")))
    final = validate(enc, pixels, vfeat, ex, val_mask)["R@1"] if val_mask.any() else None
    save_encoder(enc, out, spec)
    res = TrainResult(str(out), step, total, True, stopped_early, best_step, best_r1, baseline, final, history)
    manifest = {"config": asdict(cfg), "preset": cfg.preset, "seed": cfg.seed, "versions": _versions(),
                "encoder": spec,
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
