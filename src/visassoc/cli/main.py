"""The ``visassoc`` command line: a thin typer shell over the Python API. It only wires: each
sub-command's module lives in this package and calls the documented Python API."""
from __future__ import annotations

import sys

from visassoc.cli.common import typer_app

app = typer_app(
    name="visassoc",
    help="Mine contextualized visual associations and creative captions from images.",
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _register() -> None:
    """Sub-commands live beside their Python APIs; the CLI only wires them."""
    from visassoc.cli.backends import backends_app, batch_app
    from visassoc.cli.run import run, status
    from visassoc.cli.estimate import HELP as ESTIMATE_HELP
    from visassoc.cli.estimate import estimate_command
    from visassoc.cli.report import report_command, study_app
    from visassoc.cli.encoders import eval_command, search_command, train_command
    from visassoc.cli.export import export_command
    from visassoc.cli.fetch import fetch_command

    app.command("run")(run)
    app.command("status")(status)
    app.command("export", help="A run as WebDataset shards or a Hugging Face dataset (for training at scale).")(export_command)
    app.command("fetch", help="Download a URL list or a benchmark's images (folder or WebDataset + status.jsonl).")(fetch_command)
    app.command("train", help="Train distance prompt tokens on one or more run dirs.")(train_command)
    app.command("eval", help="Evaluate creative retrieval on a benchmark (full gallery, or --protocol paper).")(eval_command)
    app.command("search", help="Rank a photo collection for a poem, metaphor or mood.")(search_command)
    app.command("report", help="Dataset metrics (metrics.json) and a self-contained report.html.")(report_command)
    app.add_typer(study_app, name="study")
    app.add_typer(backends_app, name="backends")
    app.add_typer(batch_app, name="batch")
    app.command("estimate", help=ESTIMATE_HELP)(estimate_command)


_register()


@app.callback()
def main():
    """visassoc: creativity-aware vision-language data."""


def entrypoint() -> None:  # pragma: no cover
    app(prog_name="visassoc")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
