"""Typer commands (thin shells over ``visassoc.report`` and ``visassoc.study``) for the main CLI.

Wire as: ``app.command("report")(report_command)`` and ``app.add_typer(study_app, name="study")``.
"""
from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from visassoc.cli.common import typer_app

study_app = typer_app(help="Human study: export a Potato / Label Studio project, analyze its annotations.")


def _fail(exc: Exception) -> None:
    typer.echo(f"error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", err=True)
    raise typer.Exit(1)


def report_command(
    run_dir: Annotated[Path, typer.Argument(help="Run dir written by 'visassoc run'.")],
    out: Annotated[Optional[Path], typer.Option("--out", help="Where to write metrics.json and report.html "
                                                "(default: RUN_DIR).")] = None,
    clip: Annotated[Optional[str], typer.Option("--clip", help="CLIP model (local dir or cached HF id) for "
                                                "CLIPScore.")] = None,
    compare: Annotated[Optional[Path], typer.Option("--compare", help="A second run dir shown side by side.")] = None,
    instances: Annotated[Optional[Path], typer.Option("--instances", help="COCO instances JSON for FOIL negatives "
                                                      "(default: next to the run's captions file).")] = None,
    foil: Annotated[Optional[list[Path]], typer.Option("--foil", help="Official FOIL-COCO annotations "
                                                      "(foilv1.0_{train,test}_2017.json) as the CLIPScore negatives; "
                                                      "repeat for both files.")] = None,
    gallery: Annotated[int, typer.Option("--gallery", help="Images in the gallery.")] = 12,
    seed: Annotated[int, typer.Option("--seed", help="Seed for bootstrap, FOIL and gallery sampling.")] = 0,
    bootstrap: Annotated[int, typer.Option("--bootstrap", help="Bootstrap resamples for intervals.")] = 1000,
    fluency: Annotated[int, typer.Option("--fluency", min=0, help="Images sampled for the fluency gap (SmolLM2 "
                                         "NLL of creative minus human captions; ~1 min per 100 captions on CPU). "
                                         "0: off.")] = 0,
) -> None:
    """Measure a run: validity, abstraction, grounding, diversity -> metrics.json + report.html."""
    from visassoc.report import RunDirError, build_report
    from visassoc.report.build import summary_lines

    try:
        m = build_report(run_dir, out, clip=clip, compare=compare, instances=instances, gallery=gallery, seed=seed,
                         n_boot=bootstrap, foil=foil or None, fluency=fluency)
    except (RunDirError, FileNotFoundError, NotADirectoryError, ValueError) as exc:
        _fail(exc)
    dest = Path(out or run_dir)
    for line in summary_lines(m):
        typer.echo(line)
    typer.echo(f"wrote {dest / 'metrics.json'} and {dest / 'report.html'}")


class Tool(str, Enum):
    potato = "potato"
    label_studio = "label-studio"


@study_app.command("export")
def export_command(
    run_dir: Annotated[Path, typer.Argument(help="Run dir written by 'visassoc run'.")],
    out: Annotated[Path, typer.Option("--out", help="Project dir to write.")],
    n: Annotated[int, typer.Option("--n", help="Items in the study, attention checks included.")] = 300,
    tool: Annotated[Tool, typer.Option("--tool", help="Annotation tool.")] = Tool.potato,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    checks: Annotated[float, typer.Option("--checks", help="Share of attention-check items.")] = 0.1,
    instances: Annotated[Optional[Path], typer.Option("--instances", help="COCO instances JSON for FOIL.")] = None,
    port: Annotated[int, typer.Option("--port", help="Port written into the Potato config.")] = 8000,
    embed_images: Annotated[bool, typer.Option("--embed-images/--local-files",
                                               help="Label Studio: embed images in tasks.json or serve media/.")] = True,
) -> None:
    """Write a stratified, attention-checked study project that Potato or Label Studio opens."""
    from visassoc.report import RunDirError
    from visassoc.study import export_study

    try:
        s = export_study(run_dir, out, n=n, tool=tool.value, seed=seed, check_share=checks, instances=instances,
                         port=port, embed_images=embed_images)
    except (RunDirError, FileNotFoundError, NotADirectoryError, ValueError) as exc:
        _fail(exc)
    typer.echo(f"{s['items']} items on {s['images']} images for {s['tool']}: "
               + ", ".join(f"{k} {v}" for k, v in s["counts"].items()))
    for note in s["notes"]:
        typer.echo(f"note: {note}")
    typer.echo(f"wrote {s['out_dir']} ({', '.join(s['files'])}); see README.md there")


@study_app.command("analyze")
def analyze_command(
    annotations: Annotated[Path, typer.Argument(help="Potato annotation_output dir, Label Studio export, or CSV.")],
    out: Annotated[Path, typer.Option("--out", help="Dir for analysis.json / .md / .png.")],
    key: Annotated[Optional[Path], typer.Option("--key", help="study_key.json (default: found near ANNOTATIONS).")] = None,
    min_pass: Annotated[float, typer.Option("--min-pass", help="Attention-check pass rate below which an "
                                            "annotator is excluded.")] = 0.75,
    keep_failing: Annotated[bool, typer.Option("--keep-failing", help="Keep annotators failing checks.")] = False,
) -> None:
    """Per-level grounding and abstraction, rated-vs-intended Spearman, Krippendorff's alpha, attention checks."""
    from visassoc.study import AnnotationError, analyze

    try:
        s = analyze(annotations, out, key=key, min_pass=min_pass, keep_failing=keep_failing)
    except (AnnotationError, OSError, json.JSONDecodeError) as exc:
        _fail(exc)
    typer.echo((Path(out) / "analysis.md").read_text())
    typer.echo(f"wrote {Path(out) / 'analysis.json'}, analysis.md, analysis.png ({s['annotators']} annotators)")
