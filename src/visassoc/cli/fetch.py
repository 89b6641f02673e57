"""``visassoc fetch``: URL lists and benchmark images to local files (see ``visassoc.sources.fetch``)."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Optional

import typer

from visassoc.cli.common import fail


def fetch_command(
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (re-run to retry only the failures)."),
    manifest: Optional[Path] = typer.Option(None, help="JSONL: {url, id?, captions?} per line."),
    benchmark: Optional[str] = typer.Option(None, help="'multim-poem': download its images (with --json)."),
    json_file: Optional[Path] = typer.Option(None, "--json", help="The benchmark's JSON (multim_poem.json)."),
    format: str = typer.Option("folder", "--format", help="'folder' (images/ + manifest.jsonl) or 'webdataset' (shards/)."),
    timeout: float = typer.Option(10.0, min=0.1, help="Seconds per request (connect, read)."),
    retries: int = typer.Option(2, min=0, max=10, help="Retries for timeouts, connection errors, 429 and 5xx."),
    concurrency: int = typer.Option(16, min=1, max=256, help="Downloads in flight."),
    max_side: Optional[int] = typer.Option(None, min=16, help="Resize (JPEG) images whose longer side is larger."),
    limit: Optional[int] = typer.Option(None, min=1, help="Only the first N benchmark records."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
):
    """Download images; every input line ends as an image or a status row naming the HTTP status or reason."""
    from visassoc.sources.fetch import FetchError, FetchOptions, fetch_manifest, fetch_multim_poem

    opts = FetchOptions(timeout=timeout, retries=retries, concurrency=concurrency, max_side=max_side)
    if (manifest is None) == (benchmark is None):
        fail("choose one: --manifest FILE, or --benchmark multim-poem --json FILE")
    try:
        if manifest is not None:
            rows = fetch_manifest(manifest, out, format, opts, progress=not quiet)
        elif benchmark != "multim-poem":
            fail(f"--benchmark: only 'multim-poem' has images to fetch (got {benchmark!r})")
        elif json_file is None:
            fail("--benchmark multim-poem needs --json PATH/multim_poem.json")
        else:
            rows = fetch_multim_poem(json_file, out, opts, progress=not quiet, limit=limit)
    except FetchError as e:
        fail(str(e))
    except OSError as e:
        fail(f"cannot write to {out}: {e.strerror or e}", code=1)
    ok = sum(r.status == "ok" for r in rows)
    reasons = Counter((r.error or "").split(":")[0] for r in rows if r.status != "ok")
    why = ", ".join(f"{k}: {n}" for k, n in reasons.most_common(5))
    typer.echo(f"{ok}/{len(rows)} images fetched, {len(rows) - ok} errors{f' ({why})' if why else ''} "
               f"-> {out} (status.jsonl)")
