"""``visassoc export RUN --format webdataset|hf --out DIR`` (see ``visassoc.engine.export_formats``)."""
from __future__ import annotations

from pathlib import Path

import typer

from visassoc.cli.common import fail


def export_command(
    run: Path = typer.Argument(..., help="A finished run's --out directory."),
    format: str = typer.Option(..., "--format", help="'webdataset' (tar shards) or 'hf' (datasets save_to_disk layout)."),
    out: Path = typer.Option(..., "--out", "-o", help="A new or empty folder."),
):
    """A run's images and creative captions as WebDataset shards or a Hugging Face dataset (Image feature)."""
    from visassoc.engine.export_formats import ExportError, export_dataset

    try:
        s = export_dataset(run, out, format)
    except ExportError as e:
        fail(str(e))
    except OSError as e:
        fail(f"{e.strerror or e}: {getattr(e, 'filename', '') or out}", code=1)
    left = ", ".join(f"{k}: {n}" for k, n in s["left_out"].items())
    typer.echo(f"{s['exported']}/{s['images_in_run']} images, {s['captions']} creative captions -> {out} "
               f"({s['files']} file(s){'; left out: ' + left if left else ''})")
