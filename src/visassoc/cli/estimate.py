"""``visassoc estimate``: requests, tokens and cost of a run before anything runs.

Takes every flag of ``visassoc run`` (``--out`` optional and unused; the executor flags dropped)
and prints ``estimate.format_estimate`` or, with ``--json``, ``Estimate.to_dict()``.
"""
from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Optional

import typer

HELP = "Requests, tokens and cost of a run before it runs (no model calls)."


RUN_ONLY = ("executor", "ray_address", "ray_workers", "overwrite")  # run flags that cannot change an estimate


def estimate_options(
    sample: int = typer.Option(50, min=1, help="Images whose real prompts are built and counted."),
    reask_rate: float = typer.Option(0.15, min=0.0, max=1.0,
                                     help="Assumed share of caption attempts (and association answers) re-asked."),
    image_tokens: Optional[int] = typer.Option(None, min=0, help="Flat tokens per image instead of the provider rule."),
    tokenizer: Optional[str] = typer.Option(None, help="A tokenizer.json (or its folder) for exact text tokens; "
                                                       "default: tiktoken if cached offline, else chars/4."),
    scale: Optional[int] = typer.Option(None, min=1, help="Extrapolate the per-image means to N images."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of the table."),
):
    """The flags ``estimate`` adds to ``run``'s (its signature is spliced into ``estimate_command``)."""


def estimate_command(**flags):
    """Requests, input/image/output tokens and USD per stage for a `visassoc run` config, without calling a model."""
    from visassoc.cli.common import config_from_flags, fail
    from visassoc.engine.estimate import estimate, format_estimate
    from visassoc.sources import SourceError

    extra = {k: flags.pop(k) for k in inspect.signature(estimate_options).parameters}
    cfg = config_from_flags(**{**flags, "out": flags["out"] or Path("runs/estimate")})
    try:
        est = estimate(cfg, sample=extra["sample"], reask_rate=extra["reask_rate"],
                       image_tokens_override=extra["image_tokens"], tokenizer=extra["tokenizer"], scale=extra["scale"])
    except (SourceError, ValueError) as e:
        fail(str(e).splitlines()[0] if str(e) else type(e).__name__)
    except ImportError as e:
        fail(f"a component is not available: {e}")
    typer.echo(json.dumps(est.to_dict(), indent=1) if extra["as_json"] else format_estimate(est))


def _splice_signature() -> None:
    """``estimate`` takes every ``run`` flag (so a run's command line can be estimated as it is;
    ``--out`` optional and unused) plus its own: one definition of the flags, in ``cli.run``."""
    from visassoc.cli.run import run

    params = [p for p in inspect.signature(run, eval_str=True).parameters.values() if p.name not in RUN_ONLY]
    params = [p.replace(annotation=Optional[Path], default=typer.Option(None, "--out", "-o", help="Unused by estimate."))
              if p.name == "out" else p for p in params]
    params += inspect.signature(estimate_options, eval_str=True).parameters.values()
    estimate_command.__signature__ = inspect.Signature(params)
    estimate_command.__annotations__ = {p.name: p.annotation for p in params}


_splice_signature()
