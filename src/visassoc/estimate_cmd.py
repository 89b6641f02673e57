"""``visassoc estimate``: requests, tokens and cost of a run before anything runs.

Takes the same source and stage flags as ``visassoc run`` (``--out`` is optional and unused)
and prints ``estimate.format_estimate`` or, with ``--json``, ``Estimate.to_dict()``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

HELP = "Requests, tokens and cost of a run before it runs (no model calls)."


def estimate_command(
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Accepted for symmetry with `run`; unused."),
    demo: bool = typer.Option(False, "--demo", help="Built-in sample photos (offline)."),
    coco: Optional[Path] = typer.Option(None, help="COCO captions_*.json (with --images DIR)."),
    images: Optional[Path] = typer.Option(None, help="Image directory."),
    captions: Optional[Path] = typer.Option(None, help="Captions file (JSONL or CSV) for --images."),
    manifest: Optional[Path] = typer.Option(None, help="JSONL manifest of {id, image, captions}."),
    limit: Optional[int] = typer.Option(None, min=1, help="Only the first N images."),
    seed: int = typer.Option(0, help="Seed for caption choice and sampling."),
    top_k: int = typer.Option(5, min=1, max=20, help="Salient words per image."),
    per_level: int = typer.Option(3, min=1, max=10, help="Associations per level."),
    max_words: int = typer.Option(10, min=2, max=40, help="Maximum words in a creative caption."),
    captions_per_level: str = typer.Option("one", help="'one' caption per (word, level) or 'all' associations."),
    describe: str = typer.Option("captions", help="'captions' (offline) or a VLM spec, e.g. openai:MODEL."),
    associate: str = typer.Option("lexical", help="'lexical' (offline), 'smollm' or an LLM spec."),
    caption: str = typer.Option("substitute", help="'substitute' (offline), 'smollm' or a VLM spec."),
    llm: Optional[str] = typer.Option(None, help="Shortcut: --associate SPEC."),
    vlm: Optional[str] = typer.Option(None, help="Shortcut: --describe SPEC --caption SPEC."),
    prompt_set: str = typer.Option("visassoc", help="'visassoc' or 'paper' (the paper's prompts)."),
    backend_config: Optional[Path] = typer.Option(None, help="YAML with per-backend settings and `prices`."),
    concurrency: int = typer.Option(8, min=1, max=256, help="Accepted for symmetry with `run`; unused."),
    chunk_size: Optional[int] = typer.Option(None, min=1, help="Accepted for symmetry with `run`; unused."),
    max_reasks: int = typer.Option(2, min=0, max=5, help="Re-asks for an invalid caption."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Accepted for symmetry with `run`; unused."),
    cache_only: bool = typer.Option(False, "--cache-only", help="Accepted for symmetry with `run`; unused."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Accepted for symmetry with `run`; unused."),
    sample: int = typer.Option(50, min=1, help="Images whose real prompts are built and counted."),
    reask_rate: float = typer.Option(0.15, min=0.0, max=1.0,
                                     help="Assumed share of caption attempts (and association answers) re-asked."),
    image_tokens: Optional[int] = typer.Option(None, min=0, help="Flat tokens per image instead of the provider rule."),
    tokenizer: Optional[str] = typer.Option(None, help="A tokenizer.json (or its folder) for exact text tokens; "
                                                       "default: tiktoken if cached offline, else chars/4."),
    scale: Optional[int] = typer.Option(None, min=1, help="Extrapolate the per-image means to N images."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of the table."),
):
    """Requests, input/image/output tokens and USD per stage for a `visassoc run` config, without calling a model."""
    from pydantic import ValidationError

    from .config import RunConfig
    from .estimate import estimate, format_estimate
    from .sources import SourceError

    def fail(message: str) -> None:
        typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
        raise typer.Exit(2)

    if llm:
        associate = llm
    if vlm:
        describe = caption = vlm
    try:
        cfg = RunConfig(
            out=out or Path("runs/estimate"), demo=demo, coco=coco, images=images, captions=captions, manifest=manifest,
            limit=limit, seed=seed, top_k=top_k, per_level=per_level, max_words=max_words,
            captions_per_level=captions_per_level, describe=describe, associate=associate, caption=caption,
            prompt_set=prompt_set, backend_config=backend_config, concurrency=concurrency, chunk_size=chunk_size,
            max_reasks=max_reasks, cache=not no_cache, cache_only=cache_only, progress=not quiet,
        )
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(x) for x in err["loc"])
        fail(f"{where + ': ' if where else ''}{err['msg'].removeprefix('Value error, ')}")
    try:
        est = estimate(cfg, sample=sample, reask_rate=reask_rate, image_tokens_override=image_tokens,
                       tokenizer=tokenizer, scale=scale)
    except (SourceError, ValueError) as e:
        fail(str(e).splitlines()[0] if str(e) else type(e).__name__)
    except ImportError as e:
        fail(f"a component is not available: {e}")
    typer.echo(json.dumps(est.to_dict(), indent=1) if as_json else format_estimate(est))
