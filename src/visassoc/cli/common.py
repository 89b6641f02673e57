"""What every command shares: one way to fail (one line, exit 2 for bad usage or input, 1 for a
failure while running) and the RunConfig that ``run``'s flags describe."""
from __future__ import annotations

import typer
from typer.core import TyperGroup


class QuickHelpGroup(TyperGroup):
    """A command group whose own ``--help`` flag needs no coercion.

    When a *sub*-command is asked for ``--help``, typer 0.29 coerces the group's unset help flag
    (None) through a pydantic TypeAdapter, and importing pydantic costs 0.1-0.4 s: more than the
    rest of ``--help``. A flag's value is already a bool or None, so the pass-through is exact.
    """

    def get_help_option(self, ctx):
        opt = super().get_help_option(ctx)
        if opt is not None and getattr(opt, "_runtime_param", False) is None:
            try:
                from typer._coercion import PassThroughRuntimeParam

                opt._runtime_param = PassThroughRuntimeParam(annotation=bool,
                                                             parameter_info=opt.type_descriptor.parameter_info)
            except (ImportError, AttributeError, TypeError):  # another typer: its own (slower) path
                pass
        return opt


def typer_app(**kwargs) -> typer.Typer:
    """A Typer app with plain help (rich markup ate ``[ray]`` in ``pip install 'visassoc[ray]'``
    and importing rich costs ~0.3 s) and the quick help flag."""
    return typer.Typer(cls=QuickHelpGroup, rich_markup_mode=None, no_args_is_help=True, **kwargs)


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
