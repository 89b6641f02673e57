"""Load a run directory (the Parquet data contract of ``visassoc.records``) for measuring.

A table may be one Parquet file or a directory of parts; a missing table reads as empty
with the contract's schema, so a partial run can still be reported on.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from visassoc.records import SCHEMAS


class RunDirError(ValueError):
    """The run directory cannot be read; the message is one line saying why."""


def read_table(run_dir: Path, name: str) -> list[dict]:
    """Rows of ``name`` (``name.parquet`` file or directory of parts), [] when absent."""
    for cand in (run_dir / f"{name}.parquet", run_dir / name):
        if cand.exists():
            try:
                table = pq.read_table(cand)
            except (pa.ArrowInvalid, OSError) as exc:
                raise RunDirError(f"cannot read {cand}: {exc}".splitlines()[0]) from exc
            missing = [f.name for f in SCHEMAS[name] if f.name not in table.column_names]
            if missing:
                raise RunDirError(f"{cand} lacks columns {missing} of the '{name}' schema")
            return table.to_pylist()
    return []


@dataclass
class Run:
    """All tables of one run, as lists of row dicts, plus its manifest."""

    root: Path
    manifest: dict
    images: list[dict]
    descriptions: list[dict]
    salient: list[dict]
    associations: list[dict]
    captions: list[dict]
    errors: list[dict]
    name: str = field(default="")

    @cached_property
    def image_by_id(self) -> dict[str, dict]:
        return {r["image_id"]: r for r in self.images}

    def image_path(self, image_id: str) -> Path | None:
        """Absolute path of an image file (``path`` may be relative to the run dir), None if unknown."""
        row = self.image_by_id.get(image_id)
        if not row or not row.get("path"):
            return None
        p = Path(row["path"])
        if p.is_absolute():
            return p
        # the contract says relative to the run dir; runs started with a relative --images dir
        # may hold paths relative to the working dir instead, so try the config's image dir and cwd too
        cands = [self.root / p]
        img_dir = self.config.get("images")
        if img_dir:
            d = Path(img_dir)
            cands += [d / p.name] if d.is_absolute() else [self.root / d / p.name, Path.cwd() / d / p.name]
        cands.append(Path.cwd() / p)
        return next((c for c in cands if c.exists()), cands[0])

    @cached_property
    def short_caption(self) -> dict[str, tuple[int, str]]:
        """image_id -> (caption_id, caption) of the short human caption the pipeline used."""
        out: dict[str, tuple[int, str]] = {}
        for r in self.salient:
            out.setdefault(r["image_id"], (int(r["caption_id"]), r["caption"]))
        return out

    @cached_property
    def config(self) -> dict:
        return self.manifest.get("config", {}) or {}


def load_run(run_dir: str | Path) -> Run:
    """Read every table of a run dir; raise RunDirError when it is not a run dir."""
    root = Path(run_dir).expanduser().resolve()
    if not root.is_dir():
        raise RunDirError(f"run dir {root} does not exist or is not a directory")
    tables = {name: read_table(root, name) for name in SCHEMAS}
    if not tables["images"] and not tables["captions"]:
        raise RunDirError(f"{root} holds neither images.parquet nor captions.parquet: not a visassoc run dir")
    manifest = {}
    mf = root / "manifest.json"
    if mf.exists():
        try:
            manifest = json.loads(mf.read_text())
        except json.JSONDecodeError as exc:
            raise RunDirError(f"{mf} is not valid JSON: {exc}") from exc
    for r in tables["captions"] + tables["associations"]:
        r["level"] = int(r["level"])
    return Run(root=root, manifest=manifest, name=root.name, **tables)
