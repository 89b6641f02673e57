"""Typer command functions for ``visassoc train|eval|search``: thin shells over ``visassoc.train.train``,
``visassoc.evaluate.evaluate`` and ``visassoc.evaluate.search.search``. Errors become one clear line and exit code 2."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer



def _fail(e: Exception) -> None:
    typer.echo(f"error: {e}", err=True)
    raise typer.Exit(2)


def _check_model(model: str | None) -> None:
    """An unknown model id fails at once, in one line, before torch and transformers are imported."""
    if model:
        from visassoc.hfcache import require_local_model

        try:
            require_local_model(model)
        except ValueError as e:
            _fail(e)


def train_command(
    data: list[Path] = typer.Option(..., "--data", help="run dir(s), or `visassoc export` WebDataset/HF folders; repeat --data for several"),
    model: str = typer.Option("tiny-random-clip", help="Backbone: a Hugging Face id already in the local cache "
                              "(e.g. openai/clip-vit-base-patch32), a local folder, or tiny-random-clip / "
                              "tiny-random-siglip (random smoke-test models)."),
    out: Path = typer.Option(..., help="output dir: checkpoint, log, plot, manifest"),
    preset: str = typer.Option("visassoc", help="visassoc (our defaults) | paper (the authors' optimisation: "
                               "2 Adam steps per iteration, lr 1e-4 constant, batch 512, 1 epoch, stop on val loss); "
                               "flags given below override the preset and are recorded"),
    epochs: Optional[int] = typer.Option(None, help="default: visassoc 10, paper 1"),
    max_steps: Optional[int] = typer.Option(None, help="cap on iterations; --resume may raise it"),
    level_tokens: Optional[int] = typer.Option(None, help="learned prompt tokens per level (K; default 5)"),
    position: Optional[str] = typer.Option(None, help="append | prepend | after_cls (default append)"),
    batch_size: Optional[int] = typer.Option(None, help="default: visassoc 64, paper 512"),
    lr: Optional[float] = typer.Option(None, help="default: visassoc 1e-3, paper 1e-4"),
    sampler: Optional[str] = typer.Option(None, help="random | balanced | levels | mixed (default: mixed = 0.6 "
                                          "random + 0.4 levels, where a levels batch holds all 5 levels of its images)"),
    loss_mask: Optional[str] = typer.Option(None, help="target (default: same image and level, or same text) | "
                                            "image (same image at any level) | none"),
    unfreeze_last: int = typer.Option(0, help="also train the last N vision blocks"),
    lora_rank: int = typer.Option(0, help="also train LoRA adapters (peft) of this rank on vision attention"),
    val_fraction: float = typer.Option(0.1),
    patience: Optional[int] = typer.Option(None, help="evaluations without improvement before early stop "
                                           "(default: visassoc 5, paper 3)"),
    seed: int = typer.Option(0),
    device: str = typer.Option("auto", help="auto (cuda when available, else cpu), cpu, cuda, cuda:N or mps"),
    resume: bool = typer.Option(False, help="continue the run saved in --out"),
    overwrite: bool = typer.Option(False, help="replace the training run already in --out"),
) -> None:
    """Train distance prompt tokens on a run's creative captions (frozen CLIP/SigLIP)."""
    from visassoc.hfcache import TINY_MODELS

    _check_model(model)
    from visassoc.train.trainer import TrainConfig, train

    try:
        cfg = TrainConfig(data=[str(d) for d in data], out=str(out), model=model, preset=preset, epochs=epochs,
                          max_steps=max_steps, level_tokens=level_tokens, position=position, batch_size=batch_size,
                          lr=lr, sampler=sampler, loss_mask=loss_mask, unfreeze_last=unfreeze_last,
                          lora_rank=lora_rank, val_fraction=val_fraction, patience=patience, seed=seed,
                          device=device, resume=resume, overwrite=overwrite)
        res = train(cfg)
    except (ValueError, FileNotFoundError, NotADirectoryError) as e:
        _fail(e)
    if model in TINY_MODELS:
        typer.echo(f"NOTE: {model} is a tiny random model: a smoke run, not a real encoder.")
    typer.echo(f"trained {res.steps}/{res.total_steps} steps (preset {cfg.preset}); best val R@1 {res.best_val:.4f} "
               f"at step {res.best_step} (baseline {res.baseline_val:.4f}); checkpoint: {res.out_dir}")


def eval_command(
    benchmark: str = typer.Option(..., help="pairs | multim-poem | haivmet | pairwise"),
    root: list[Path] = typer.Option(..., help="benchmark data: file (pairs, pairwise); multim_poem.json or its folder "
                                    "(<root>/multim_poem.json + <root>/images/<id>.<ext>); haivmet: a corpus folder "
                                    "(<text>/<images>) or a folder of sub-corpora, repeat --root for several"),
    out: Path = typer.Option(...),
    ckpt: Optional[Path] = typer.Option(None, help="trained checkpoint dir (baseline + levels + best level)"),
    model: Optional[str] = typer.Option(None, help="plain model (baseline only)"),
    images: Optional[Path] = typer.Option(None, help="multim-poem image dir (default: images/ next to the JSON)"),
    protocol: str = typer.Option("full", help="full: full gallery, both directions | paper: the authors' protocol "
                                 "(multim-poem: t2i in 512x512 diagonal blocks; haivmet: full gallery, i2t)"),
    block_size: int = typer.Option(512, help="paper protocol block size (the authors use 512)"),
    val_fraction: float = typer.Option(0.2, help="share of queries used to pick the best level"),
    n_boot: int = typer.Option(1000, help="bootstrap resamples for 95% CIs"),
    seed: int = typer.Option(0),
    device: str = typer.Option("auto", help="auto (cuda when available, else cpu), cpu, cuda, cuda:N or mps"),
    limit: Optional[int] = typer.Option(None, min=1, help="only the first N rows / records / folders (a quick check)"),
) -> None:
    """Evaluate baseline and every level (best level chosen on val); writes results.json/.md and the scores to --out."""
    _check_model(model)
    from visassoc.evaluate import evaluate

    try:
        evaluate(benchmark, root if len(root) > 1 else root[0], out, ckpt=ckpt, model=model, images=images,
                 val_fraction=val_fraction, seed=seed, n_boot=n_boot, device=device, protocol=protocol,
                 block_size=block_size, limit=limit)
    except (ValueError, FileNotFoundError, NotADirectoryError) as e:
        _fail(e)
    typer.echo((out / "results.md").read_text())


def search_command(
    images: Path = typer.Option(..., help="folder of images to rank"),
    query: str = typer.Option(..., help="a poem, a metaphor or a mood"),
    ckpt: Optional[Path] = typer.Option(None, help="trained checkpoint dir from `visassoc train` (its levels "
                                        "become available to --level)"),
    model: Optional[str] = typer.Option(None, help="plain model instead of --ckpt (no levels)"),
    level: Optional[int] = typer.Option(None, help="distance level 1..5 (default: baseline, no tokens)"),
    top: int = typer.Option(10),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
    device: str = typer.Option("auto", help="auto (cuda when available, else cpu), cpu, cuda, cuda:N or mps"),
) -> None:
    """Rank a photo collection for a creative query."""
    _check_model(model)
    from visassoc.evaluate.search import search

    try:
        res = search(images, query, ckpt=ckpt, model=model, level=level, top=top, device=device)
    except (ValueError, FileNotFoundError, NotADirectoryError) as e:
        _fail(e)
    if as_json:
        typer.echo(res.to_json())
        return
    for h in res.hits:
        typer.echo(f"{h.rank:3d}  {h.score:+.4f}  {h.path}")
    typer.echo(f"({res.n_images} images, {len(res.skipped)} unreadable, {res.n_embedded} newly embedded)",
               err=True)
    for s in res.skipped:
        typer.echo(f"skipped {s['path']}: {s['reason']}", err=True)
