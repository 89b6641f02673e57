"""``visassoc run`` and ``visassoc status``: the flags of a run are defined here once
(``estimate`` splices the same signature)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from visassoc.cli.common import config_from_flags, fail


def run(
    out: Path = typer.Option(..., "--out", "-o", help="Output directory (re-run the same command to resume)."),
    demo: bool = typer.Option(False, "--demo", help="Built-in sample photos (offline)."),
    coco: Optional[Path] = typer.Option(None, help="COCO captions_*.json (with --images DIR)."),
    images: Optional[Path] = typer.Option(None, help="Image directory."),
    captions: Optional[Path] = typer.Option(None, help="Captions file (JSONL or CSV) for --images."),
    manifest: Optional[Path] = typer.Option(None, help="JSONL manifest of {id, image, captions}."),
    download: bool = typer.Option(False, "--download", help="With --manifest: download its image URLs first (see `visassoc fetch`)."),
    webdataset: Optional[str] = typer.Option(None, help="Local WebDataset shards, e.g. 'shards/{000000..000009}.tar'."),
    hf_dataset: Optional[str] = typer.Option(None, help="Hugging Face dataset: local folder/Parquet, or a name already in the HF cache."),
    split: str = typer.Option("train", help="Split of --hf-dataset."),
    image_column: str = typer.Option("image", help="Image column of --hf-dataset."),
    caption_column: Optional[str] = typer.Option(None, help="Caption column of --hf-dataset (default: caption/captions/text)."),
    limit: Optional[int] = typer.Option(None, min=1, help="Only the first N images."),
    allow_outside_paths: bool = typer.Option(False, "--allow-outside-paths",
                                             help="Let the source name images outside its folder (absolute "
                                                  "paths, ../, symlinks); by default such items are error rows."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a run in --out made with another source, "
                                                              "seed or configuration (says what it removes)."),
    seed: int = typer.Option(0, help="Seed for caption choice and sampling."),
    top_k: int = typer.Option(5, min=1, max=20, help="Salient words per image."),
    per_level: int = typer.Option(3, min=1, max=10, help="Associations per level."),
    max_words: int = typer.Option(10, min=2, max=40, help="Maximum words in a creative caption."),
    captions_per_level: str = typer.Option("one", help="'one' caption per (word, level) or 'all' associations."),
    caption_mode: str = typer.Option("per-level", help="'per-level' (the paper: a call per level) or 'per-word' (one call writes a word's 5 levels)."),
    describe: str = typer.Option("captions", help="'captions' (offline) or a VLM spec, e.g. openai:MODEL."),
    associate: str = typer.Option("lexical", help="'lexical' (offline), 'smollm' or an LLM spec."),
    caption: str = typer.Option("substitute", help="'substitute' (offline), 'smollm' or a VLM spec."),
    llm: Optional[str] = typer.Option(None, help="Shortcut: --associate SPEC."),
    vlm: Optional[str] = typer.Option(None, help="Shortcut: --describe SPEC --caption SPEC."),
    preset: str = typer.Option("visassoc", help="'visassoc' (default) or 'paper': generate as the paper's authors did "
                                                "(docs/replication.md); flags you give win over it."),
    prompt_set: str = typer.Option("visassoc", help="'visassoc' or 'paper' (the paper's task wording and sampling)."),
    prompt_dir: Optional[Path] = typer.Option(None, help="Folder with your own describe.txt / associate.txt / "
                                                         "caption.txt prompts (placeholders: docs/backends.md)."),
    backend_config: Optional[Path] = typer.Option(None, help="YAML with per-backend settings."),
    concurrency: int = typer.Option(8, min=1, max=256, help="Requests in flight for HTTP backends."),
    chunk_size: Optional[int] = typer.Option(None, min=1, help="Images per resumable part (default 256 offline, 32 with a model)."),
    max_reasks: int = typer.Option(2, min=0, max=5, help="Re-asks for an invalid caption."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not cache model calls."),
    cache_only: bool = typer.Option(False, "--cache-only", help="Answer model calls only from the cache (after `batch ingest`)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    executor: str = typer.Option("local", help="'local' (this process) or 'ray' (Ray Data; pip install 'visassoc[ray]')."),
    ray_address: Optional[str] = typer.Option(None, help="Ray cluster to join ('auto', ray://HOST:PORT); default: start one here."),
    ray_workers: Optional[int] = typer.Option(None, min=1, help="Ray actors per stage (default: the cluster's CPUs)."),
):
    """Mine salient words, association ladders and creative captions for an image collection."""
    flags = dict(locals())  # first: locals() are exactly the flags here
    replace = flags.pop("overwrite")
    cfg = config_from_flags(**flags)
    from visassoc.engine.pipeline import RunLocked
    from visassoc.engine.pipeline import run as run_pipeline

    from visassoc.sources import SourceError

    try:
        result = run_pipeline(cfg, log=lambda m: typer.echo(m, err=True), overwrite=replace)
    except (SourceError, RunLocked, ValueError) as e:
        fail(str(e))
    except ImportError as e:
        fail(f"not installed: {e}")
    except RuntimeError as e:  # BackendError, RayUnavailable and friends: already one line
        fail(str(e), code=1)
    c = result.counts
    new = result.total_new
    typer.echo(
        f"{'0 new items: everything was already done' if new == 0 else f'{new} new stage-items processed'}; "
        f"{c.get('images_ok', 0)}/{c.get('images', 0)} images ok, {c.get('salient', 0)} salient words, "
        f"{c.get('associations', 0)} associations, {c.get('captions_valid', 0)}/{c.get('captions', 0)} valid captions, "
        f"{c.get('errors', 0)} error rows -> {result.out} ({result.seconds:.1f}s)"
    )


def status(run_dir: Path = typer.Argument(..., help="A run's --out directory, finished or still running.")):
    """Rows each table has committed so far (read them with visassoc.read_partial)."""
    from visassoc.engine.store import committed_rows

    try:
        rows = committed_rows(run_dir)
    except OSError as e:
        fail(str(e))
    for table, n in rows.items():
        typer.echo(f"{table:<13} {n:>10,}")
