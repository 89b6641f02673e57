"""What every command shares: one way to fail (one line, exit 2 for bad usage or input, 1 for a
failure while running) and the RunConfig that ``run``'s flags describe."""
from __future__ import annotations

import typer


def fail(message: str, code: int = 2) -> None:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


def config_from_flags(**flags):
    """The RunConfig that ``run``'s flags describe (``estimate`` takes the same flags); a bad
    combination exits with one line."""
    from pydantic import ValidationError

    from visassoc.config import RunConfig

    llm, vlm = flags.pop("llm", None), flags.pop("vlm", None)
    if llm:
        flags["associate"] = llm
    if vlm:
        flags["describe"] = flags["caption"] = vlm
    flags["cache"], flags["progress"] = not flags.pop("no_cache"), not flags.pop("quiet")
    # a flag left at its default is not passed, so a --preset can fill it (a given flag wins)
    defaults = {k: f.default for k, f in RunConfig.model_fields.items()}
    flags = {k: v for k, v in flags.items() if k not in defaults or v != defaults[k] or k == "out"}
    try:
        return RunConfig(**flags)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(x) for x in err["loc"])
        fail(f"{where + ': ' if where else ''}{err['msg'].removeprefix('Value error, ')}")
