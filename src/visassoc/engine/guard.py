"""The output folder of a run: never a user's folder, never silently another run's.

``visassoc run --out DIR`` may only write into a new or empty folder, or into a visassoc run
made from the same source, seed and configuration (that is a resume). Any other non-empty
folder is refused, saying what is there; another run's folder is refused unless
``overwrite``, which says what it replaces and clears the old run's files first, so no stale
parts stay behind. The run's key is recorded in ``DIR/.visassoc.json`` when the run starts.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable

from visassoc.config import EXECUTION_FIELDS, RunConfig
from visassoc.stages import TABLES

MARKER = ".visassoc.json"
LOCK = ".visassoc.lock"
RUN_FILES = ("manifest.json", "README.md", *(f"{t}.parquet" for t in TABLES))
# what decides a run's rows: every config field but those that only change how it runs
KEY_FIELDS = tuple(f for f in RunConfig.model_fields if f not in EXECUTION_FIELDS)


class OutDirRefused(ValueError):
    """``--out`` holds something this run must not write into."""


def run_key(cfg) -> dict:
    """The source (resolved paths), seed and configuration that decide a run's rows."""
    key = {}
    for name in KEY_FIELDS:
        v = getattr(cfg, name, None)
        key[name] = str(Path(v).resolve()) if isinstance(v, Path) else v
    return key


def _listing(out: Path, limit: int = 6) -> str:
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in out.iterdir())
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _recorded(out: Path) -> dict | None:
    """The key of the run in ``out``: {} for a visassoc run that predates the marker, None when
    ``out`` is not a visassoc run at all."""
    marker = out / MARKER
    if marker.is_file():
        try:
            rec = json.loads(marker.read_text(encoding="utf-8"))
            return rec.get("key", {}) if isinstance(rec, dict) else {}
        except (OSError, ValueError):
            return {}
    if (out / "_work").is_dir():
        return {}
    try:
        if "visassoc_version" in json.loads((out / "manifest.json").read_text(encoding="utf-8")):
            return {}
    except (OSError, ValueError, TypeError):
        pass
    return None


def check_out(cfg, overwrite: bool = False) -> list[str]:
    """Raise OutDirRefused unless the run may use ``cfg.out``; return the differences an
    ``overwrite`` will replace ([] for a new, empty or same-key folder). Writes nothing."""
    out = Path(cfg.out)
    if not out.exists():
        return []
    if not out.is_dir():
        raise OutDirRefused(f"--out {out} is a file, not a folder")
    if all(p.name in (LOCK, f"{MARKER}.tmp") for p in out.iterdir()):  # empty, or a lock left by a failed start
        return []
    old = _recorded(out)
    if old is None:
        raise OutDirRefused(f"--out {out} is not empty and is not a visassoc run (it holds {_listing(out)}); "
                            "choose a new or empty folder")
    new = run_key(cfg)
    diff = [f"{k}: {old[k]!r} -> {new.get(k)!r}" for k in sorted(old) if old.get(k) != new.get(k)]
    if diff and not overwrite:
        raise OutDirRefused(f"--out {out} holds a run made with another source, seed or configuration "
                            f"({'; '.join(diff[:4])}); use a new folder, or --overwrite to replace it")
    return diff


def claim_out(cfg, diff: list[str], overwrite: bool, log: Callable[[str], None] = print) -> None:
    """Called with the run's lock held: on ``overwrite`` of a different run, clear its files
    (saying so); then record this run's key."""
    out = Path(cfg.out)
    if overwrite and diff:
        gone = [n for n in ("_work", *RUN_FILES) if (out / n).exists()]
        log(f"--overwrite: replacing the run in {out} ({'; '.join(diff)}); removing {', '.join(gone)}")
        for name in gone:
            p = out / name
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    tmp = out / f"{MARKER}.tmp"
    tmp.write_text(json.dumps({"key": run_key(cfg)}, indent=1, default=str) + "\n", encoding="utf-8")
    tmp.replace(out / MARKER)


def release_if_unused(out: Path, created: bool) -> None:
    """After a run that failed before writing anything: remove the folder it created (only the
    lock and marker are in it), so a failed command leaves nothing behind."""
    if not created or not out.is_dir():
        return
    if all(p.name in (LOCK, MARKER) for p in out.rglob("*") if not p.is_dir()):
        shutil.rmtree(out, ignore_errors=True)
