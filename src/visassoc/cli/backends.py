"""CLI sub-apps: ``visassoc backends check`` and ``visassoc batch export|submit|status|ingest``."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from visassoc.cli.common import typer_app

from visassoc.backends.base import BackendError

backends_app = typer_app(help="Inspect model backends.")
batch_app = typer_app(help="OpenAI Batch API / vllm run-batch workflows.")


@backends_app.callback()
def _backends() -> None:
    """Inspect model backends (a callback keeps this a command group even with one command)."""

LLM = Annotated[Optional[str], typer.Option("--llm", help="LLM backend spec, e.g. openai:gpt-4o-mini")]
VLM = Annotated[Optional[str], typer.Option("--vlm", help="VLM backend spec, e.g. vllm:Qwen/Qwen2.5-VL-7B-Instruct")]
CONFIG = Annotated[Optional[Path], typer.Option("--config", help="backend config YAML")]
REQUESTS = Annotated[Path, typer.Option("--requests", help="the --out path given to `batch export`")]


def _fail(msg: str) -> None:
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(2)


@backends_app.command("check")
def check(llm: LLM = None, vlm: VLM = None, config: CONFIG = None,
          timeout: Annotated[float, typer.Option(help="seconds per probe")] = 30.0,
          as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False) -> None:
    """Send one tiny request per capability (text, json_schema, json_object, images) and time it."""
    from visassoc.backends.check import check_backend, format_check, unserved
    from visassoc.backends.registry import load_config, make_backend

    try:
        cfg = load_config(config)
        todo = [(s, role) for s, role in ((llm or cfg.llm, "llm"), (vlm or cfg.vlm, "vlm")) if s]
        if not todo:
            _fail("nothing to check: pass --llm SPEC and/or --vlm SPEC (or set llm/vlm in --config)")
        results, bad = [], []
        for spec, role in todo:
            res = check_backend(make_backend(spec, config=cfg), images=role == "vlm", timeout=timeout)
            res["role"] = role
            res["unserved"] = unserved(res, role)
            results.append(res)
            bad += [f"{res['name']} as {why}" for why in res["unserved"]]
    except (ValueError, BackendError) as e:
        _fail(str(e))
    typer.echo(json.dumps(results, indent=1) if as_json else "\n".join(format_check(r) for r in results))
    if bad:  # a backend that cannot serve a stage must fail scripts and CI, not just print FAIL
        for why in bad:
            typer.echo(f"error: {why}", err=True)
        raise typer.Exit(1)


def _load_requests(stage: str, requests: Optional[Path], images: Optional[Path]) -> list:
    from visassoc.engine.batch import REQUEST_TYPES

    from visassoc.images import IMAGE_SUFFIXES

    cls = REQUEST_TYPES[stage]
    if images is not None:
        if stage != "describe":
            _fail("--images DIR only builds describe requests; pass --requests FILE for other stages")
        files = sorted(p for p in images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            _fail(f"no images in {images}")
        return [cls(image_id=p.stem, path=str(p)) for p in files]
    if requests is None:
        _fail("pass --requests FILE.jsonl (one request object per line) or --images DIR")
    out = []
    for n, line in enumerate(requests.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                out.append(cls(**json.loads(line)))
            except (json.JSONDecodeError, TypeError) as e:
                _fail(f"{requests.name}:{n}: not a {cls.__name__}: {e}")
    return out


@batch_app.command("export")
def export(stage: Annotated[str, typer.Option(help="describe | associate | caption")],
           out: Annotated[Path, typer.Option("--out", help="requests.jsonl to write (split if large)")],
           run: Annotated[Optional[Path], typer.Option(help="the run's output dir: export what `visassoc run` "
                                                             "with the same source flags still has to ask")] = None,
           demo: Annotated[bool, typer.Option("--demo", help="with --run: the demo source")] = False,
           coco: Annotated[Optional[Path], typer.Option(help="with --run: COCO captions JSON (+ --images)")] = None,
           captions: Annotated[Optional[Path], typer.Option(help="with --run: captions file for --images")] = None,
           manifest: Annotated[Optional[Path], typer.Option(help="with --run: JSONL manifest")] = None,
           limit: Annotated[Optional[int], typer.Option(help="with --run: first N images")] = None,
           seed: Annotated[int, typer.Option(help="with --run: the run's seed")] = 0,
           requests: Annotated[Optional[Path], typer.Option(help="JSONL of stage request objects")] = None,
           images: Annotated[Optional[Path], typer.Option(help="image folder (the run's source, or describe)")] = None,
           llm: LLM = None, vlm: VLM = None, config: CONFIG = None,
           prompt_set: Annotated[str, typer.Option(help="visassoc | paper")] = "visassoc",
           per_level: int = 3) -> None:
    """Write OpenAI Batch API lines (also valid input for `vllm run-batch -i`).

    With --run and the run's source flags, the lines are exactly the calls `visassoc run` would
    make for STAGE; after `batch ingest` the same `visassoc run` answers them from the cache."""
    from visassoc.engine.batch import export_requests
    from visassoc.backends.registry import load_config, stage_backends
    from visassoc.stages import ROLES

    if stage not in ("describe", "associate", "caption"):
        _fail(f"--stage must be describe, associate or caption, not {stage!r}")
    if run is not None:
        from pydantic import ValidationError

        from visassoc.engine.batch import export_stage
        from visassoc.config import RunConfig
        from visassoc.sources import SourceError

        try:
            cfg = RunConfig(out=run, demo=demo, coco=coco, images=images, captions=captions, manifest=manifest,
                            limit=limit, seed=seed, per_level=per_level, prompt_set=prompt_set, backend_config=config,
                            associate=llm or "lexical", describe=vlm or "captions", caption=vlm or "substitute")
            paths, n = export_stage(cfg, stage, out)
        except ValidationError as e:
            _fail(e.errors()[0]["msg"].removeprefix("Value error, "))
        except (ValueError, SourceError, BackendError) as e:
            _fail(str(e))
        typer.echo(f"{n} pending {stage} requests" + (" -> " + ", ".join(str(p) for p in paths) if paths else
                                                       ": nothing to export"))
        return
    try:
        backend = stage_backends({stage: ROLES[stage]}, llm, vlm, load_config(config, stages=tuple(ROLES)))[stage]
        paths = export_requests(_load_requests(stage, requests, images), backend, stage, out, prompt_set, per_level)
    except (ValueError, BackendError) as e:
        _fail(str(e))
    typer.echo("\n".join(str(p) for p in paths))


def _client(requests: Path, config: Optional[Path], base_url: Optional[str]):
    from visassoc.backends.openai_batch import read_meta
    from visassoc.backends.registry import load_config, make_backend

    header, _, _ = read_meta(requests)
    opts = {"base_url": base_url or header["backend"].get("base_url")}
    if header.get("api_key_env"):
        opts["api_key_env"] = header["api_key_env"]
    return make_backend(header["spec"], config=load_config(config), **opts).sync_client()


BASE_URL = Annotated[Optional[str], typer.Option("--base-url", help="override the exported server URL")]


@batch_app.command("submit")
def submit(requests: REQUESTS, config: CONFIG = None, base_url: BASE_URL = None) -> None:
    """Upload the exported parts and create one batch per part (OpenAI Files + Batches API)."""
    from visassoc.backends.openai_batch import submit_batch

    try:
        state = submit_batch(requests, _client(requests, config, base_url))
    except (ValueError, BackendError) as e:
        _fail(str(e))
    for s in state:
        typer.echo(f"{s['part']}: {s['batch_id']} ({s['status']})")


@batch_app.command("status")
def status(requests: REQUESTS, config: CONFIG = None, base_url: BASE_URL = None,
           wait: Annotated[bool, typer.Option(help="poll until every batch is final")] = False,
           poll: Annotated[float, typer.Option(help="seconds between polls")] = 30.0) -> None:
    """Show (or wait for) the state of submitted batches."""
    from visassoc.backends.openai_batch import batch_status

    try:
        batch_status(requests, _client(requests, config, base_url), wait=wait, poll_s=poll, echo=typer.echo)
    except (ValueError, BackendError) as e:
        _fail(str(e))


@batch_app.command("ingest")
def ingest(requests: REQUESTS,
           out: Annotated[Optional[Path], typer.Option("--out", help="also write <table>.parquet and errors.parquet "
                                                                     "here (standalone tables)")] = None,
           output: Annotated[Optional[list[Path]], typer.Option(help="output JSONL (vllm run-batch -o, or "
                                                                      "downloaded); omit to download")] = None,
           errors: Annotated[Optional[list[Path]], typer.Option(help="error JSONL files")] = None,
           config: CONFIG = None, base_url: BASE_URL = None) -> None:
    """Validate batch answers like the online path; every request becomes a row or an error row."""
    from visassoc.backends.openai_batch import download_batch
    from visassoc.engine.batch import ingest_rows, write_tables

    try:
        if not output:
            output, fetched_errors = download_batch(requests, _client(requests, config, base_url))
            errors = list(errors or []) + fetched_errors
        rows, info = ingest_rows(requests, list(output), list(errors or []), cache=True)
        cached = info["cache"]
    except (ValueError, BackendError) as e:
        _fail(str(e))
    paths = write_tables(rows, out) if out else {}
    typer.echo(f"call cache: {cached['stored']} answers stored ({cached['missing']} calls unanswered); "
               "re-run the same `visassoc run` to use them")
    typer.echo(f"{info['stage']}: {info['ok']} ok, {info['errors']} errors ({info['missing']} missing lines); "
               f"tokens in/out {info['usage']['prompt_tokens']}/{info['usage']['completion_tokens']}"
               + (" -> " + ", ".join(str(p) for p in paths.values()) if paths else ""))
