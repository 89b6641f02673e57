"""CLI polish: help is plain text, complete, and cheap (no torch, transformers or pydantic import;
the timing target lives in benchmarks/bench_cli.py, not here)."""
from __future__ import annotations

import re

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import visassoc
from visassoc.cli import app

COMMANDS = [[], ["run"], ["status"], ["train"], ["eval"], ["search"], ["report"], ["estimate"], ["study", "export"],
            ["study", "analyze"], ["backends", "check"], ["batch", "export"], ["batch", "ingest"]]
runner = CliRunner()


def help_of(*cmd: str) -> str:
    r = runner.invoke(app, [*cmd, "--help"], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    return r.output


def test_help_never_imports_heavy_modules():
    probe = ("import sys\nfrom visassoc.cli import app\nheavy = set()\nfor cmd in %r:\n    try:\n"
             "        app(prog_name='visassoc', args=[*cmd, '--help'])\n    except SystemExit:\n        pass\n"
             "    heavy |= {m for m in ('torch', 'transformers', 'pydantic', 'rich') if m in sys.modules}\n"
             "print(sorted(heavy))" % (COMMANDS,))
    env = {**os.environ, "PYTHONPATH": str(Path(visassoc.__file__).parents[1])}
    p = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().splitlines()[-1] == "[]", p.stdout[-500:]


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: " ".join(c) or "visassoc")
def test_help_is_plain_without_bool_metavars(cmd):
    out = help_of(*cmd)
    assert "<bool>" not in out and "╭" not in out


def test_help_text_is_not_eaten_by_markup():
    assert "pip install 'visassoc[ray]'" in " ".join(help_of("run").split())


def _flat(text: str) -> str:
    """Help text on one line; the wrapper may break a line after a hyphen ("tiny-random-\nclip")."""
    return re.sub(r"(\w)- (\w)", r"\1-\2", " ".join(text.split()))


def test_options_are_documented_and_device_is_auto_everywhere():
    train = _flat(help_of("train"))
    assert "tiny-random-clip / tiny-random-siglip (random smoke-test models)" in train
    search = " ".join(help_of("search").split())
    assert "--ckpt <path> trained checkpoint" in search
    ev = " ".join(help_of("eval").split())
    assert "--limit" in ev
    for cmd in ("train", "eval", "search"):
        assert "--device <str> auto (cuda when available, else cpu)" in " ".join(help_of(cmd).split()), cmd
        assert "[default: auto]" in " ".join(help_of(cmd).split()).split("--device")[1][:200], cmd
