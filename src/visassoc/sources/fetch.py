"""``visassoc fetch``: download a URL list (or a benchmark's images) into a folder or WebDataset shards.

Why not img2dataset (the usual tool): 1.47.0 cannot be installed beside our pins. It requires
``pandas<3`` (we have 3.1.1) and ``webdataset<0.3`` (we pin 1.0.2), and it pulls ``wandb`` and
the ``dataclasses`` backport. So the HTTP work is done by ``httpx`` (already installed with
``openai``): pooled connections, redirects, timeouts. This module adds only what a URL list
needs on top of it: retries with backoff for timeouts, connection errors, 429 and 5xx; a size
cap; a check that every body decodes as an image (``images.open_rgb``, the one opener); an
optional resize; and one status row per input line, so nothing is silently lost. A failed
URL's row names the HTTP status or the reason.

Outputs in ``--out``:
- ``status.jsonl``: one row per manifest line ``{line, id, url, status, http_status, error, ...}``;
- folder format: ``images/<id>.<ext>`` and ``manifest.jsonl`` for ``visassoc run --manifest``
  (failed rows keep their ``error``, which ``run`` turns into error rows);
- webdataset format: ``shards/NNNNNN.tar`` with ``<key>.<ext>`` + ``<key>.json`` (id, url, captions).
Re-running the same command keeps images already fetched and retries only the failures.
"""
from __future__ import annotations

import hashlib
import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from visassoc.images import ImageError, open_rgb
from visassoc.datafiles import sniff_ext

RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}
SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,120}$")


class FetchError(ValueError):
    """The request itself is unusable (no manifest, output is a file, ...): one line, exit 2."""


@dataclass
class UrlRow:
    line: int
    id: str | None
    url: str | None
    captions: list[str] = field(default_factory=list)
    status: str = "pending"  # ok | error
    http_status: int | None = None
    error: str | None = None
    final_url: str | None = None  # after redirects
    path: str | None = None  # relative to --out
    bytes: int | None = None
    sha256: str | None = None
    width: int | None = None
    height: int | None = None


@dataclass
class FetchOptions:
    timeout: float = 10.0
    retries: int = 2
    backoff: float = 0.5
    concurrency: int = 16
    max_bytes: int = 50 << 20
    max_side: int | None = None  # resize (JPEG re-encode) when the longer side is larger
    user_agent: str = "visassoc-fetch/0.1 (+https://github.com/; research image download)"


def read_url_list(path: Path) -> list[UrlRow]:
    """Every line becomes a row; a line that is not ``{"url"|"image": http(s) URL, "id"?, "captions"?}``
    is an error row naming what is wrong, not a crash."""
    if not path.is_file():
        raise FetchError(f"URL list not found: {path}")
    rows: list[UrlRow] = []
    seen: set[str] = set()
    for n, text in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not text.strip():
            continue
        row = UrlRow(n, None, None)
        try:
            rec = json.loads(text)
            if not isinstance(rec, dict):
                raise ValueError("not a JSON object")
            row.url = str(rec.get("url") or rec.get("image_url") or rec.get("image") or "") or None
            row.id = str(rec["id"]) if rec.get("id") is not None else None
            caps = rec.get("captions", rec.get("caption", []))
            row.captions = [caps] if isinstance(caps, str) else [str(c) for c in caps or []]
            if not row.url:
                raise ValueError("no 'url' (or 'image_url', 'image')")
            if not row.url.startswith(("http://", "https://")):
                raise ValueError(f"not an http(s) URL: {row.url[:80]}")
        except ValueError as e:  # JSONDecodeError included
            row.status, row.error = "error", f"bad line {n}: {str(e).splitlines()[0][:120]}"
        row.id = row.id or (f"line{n:06d}" if row.url is None or row.error else _id_from_url(row.url))
        if row.id in seen:
            row.status, row.error, row.id = "error", row.error or f"id {row.id!r} repeats", f"{row.id}#line{n}"
        seen.add(row.id)
        rows.append(row)
    return rows


def _id_from_url(url: str) -> str:
    stem = url.rstrip("/").rsplit("/", 1)[-1].split("?")[0].rsplit(".", 1)[0]
    return stem if SAFE_ID.match(stem or "") else hashlib.sha256(url.encode()).hexdigest()[:16]


def _file_stem(image_id: str) -> str:
    """A file name from an id that cannot escape the images folder."""
    return image_id if SAFE_ID.match(image_id) else hashlib.sha256(image_id.encode()).hexdigest()[:24]


def _reason(e: Exception) -> str:
    import httpx

    if isinstance(e, httpx.TimeoutException):
        return f"timeout ({type(e).__name__})"
    if isinstance(e, httpx.TooManyRedirects):
        return "too many redirects"
    if isinstance(e, httpx.HTTPError):
        return f"{type(e).__name__}: {str(e).splitlines()[0][:100] if str(e) else 'connection failed'}"
    return f"{type(e).__name__}: {str(e)[:100]}"


def download_one(client, row: UrlRow, opts: FetchOptions) -> bytes | None:
    """The body of ``row.url`` (retried on transient failures), or None with ``row.error`` set."""
    import httpx

    for attempt in range(opts.retries + 1):
        retry = False
        try:
            with client.stream("GET", row.url) as r:
                row.http_status = r.status_code
                row.final_url = str(r.url) if str(r.url) != row.url else None
                if r.status_code != 200:
                    row.error = f"HTTP {r.status_code} {r.reason_phrase}".strip()
                    retry = r.status_code in RETRY_STATUS
                else:
                    body, start = bytearray(), time.monotonic()
                    for chunk in r.iter_bytes():
                        body += chunk
                        if len(body) > opts.max_bytes:
                            row.error = f"body larger than {opts.max_bytes} bytes"
                            return None
                        if time.monotonic() - start > 4 * opts.timeout:  # a trickle never trips the read timeout
                            raise httpx.ReadTimeout("body still arriving after 4x --timeout")
                    row.error = None
                    return bytes(body)
        except (httpx.TimeoutException, httpx.TransportError) as e:
            row.error, retry = _reason(e), True
        except httpx.HTTPError as e:
            row.error = _reason(e)
        if not retry or attempt == opts.retries:
            return None
        time.sleep(opts.backoff * (2**attempt))
    return None


def _check_image(data: bytes, opts: FetchOptions) -> tuple[bytes, str, int, int]:
    """Decode (refusing non-images); re-encode as JPEG only when ``max_side`` asks for a resize."""
    im = open_rgb(data)
    if opts.max_side and max(im.size) > opts.max_side:
        import io

        im.thumbnail((opts.max_side, opts.max_side))
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=92)
        return buf.getvalue(), "jpg", im.width, im.height
    ext = sniff_ext(data)
    return data, ext if ext != "img" else "bin", im.width, im.height


class _Sink:
    """Where fetched images go: a folder, or WebDataset shards written by ``webdataset.ShardWriter``."""

    def __init__(self, out: Path, fmt: str, maxcount: int = 1000):
        self.out, self.fmt = out, fmt
        if fmt == "webdataset":
            import webdataset as wds

            (out / "shards").mkdir(parents=True, exist_ok=True)
            start = len(list((out / "shards").glob("*.tar")))  # a re-run adds shards, never rewrites
            self.writer = wds.ShardWriter(str(out / "shards" / "%06d.tar"), maxcount=maxcount, start_shard=start,
                                          verbose=0)
        else:
            (out / "images").mkdir(parents=True, exist_ok=True)

    def put(self, row: UrlRow, data: bytes, ext: str) -> str:
        if self.fmt == "webdataset":
            key = _file_stem(row.id)
            self.writer.write({"__key__": key, ext: data,
                               "json": json.dumps({"id": row.id, "url": row.url, "captions": row.captions}).encode()})
            return f"shards/{self.writer.fname.rsplit('/', 1)[-1]}#{key}" if self.writer.fname else key
        rel = f"images/{_file_stem(row.id)}.{ext}"
        tmp = self.out / f"{rel}.tmp"
        tmp.write_bytes(data)
        tmp.replace(self.out / rel)
        return rel

    def close(self):
        if self.fmt == "webdataset":
            self.writer.close()


def _previous(out: Path) -> dict[int, UrlRow]:
    """Rows fetched by an earlier run whose file is still there (kept on a re-run)."""
    status = out / "status.jsonl"
    if not status.is_file():
        return {}
    prev = {}
    for text in status.read_text(encoding="utf-8").splitlines():
        try:
            r = UrlRow(**json.loads(text))
        except (ValueError, TypeError):
            continue
        if r.status == "ok" and r.path and (out / r.path.split("#")[0]).is_file():
            prev[r.line] = r
    return prev


def fetch_rows(rows: list[UrlRow], out: Path, fmt: str = "folder", opts: FetchOptions | None = None,
               progress: bool = True) -> list[UrlRow]:
    """Download every pending row into ``out``; write status.jsonl (and manifest.jsonl for a folder)."""
    import httpx

    opts = opts or FetchOptions()
    if out.exists() and not out.is_dir():
        raise FetchError(f"--out {out} exists and is not a directory")
    if fmt not in ("folder", "webdataset"):
        raise FetchError(f"--format must be 'folder' or 'webdataset' (got {fmt!r})")
    out.mkdir(parents=True, exist_ok=True)
    prev = _previous(out)
    rows = [prev.get(r.line, r) if prev.get(r.line) and prev[r.line].url == r.url else r for r in rows]
    todo = [r for r in rows if r.status == "pending"]
    sink = _Sink(out, fmt)
    limits = httpx.Limits(max_connections=opts.concurrency, max_keepalive_connections=opts.concurrency)
    client = httpx.Client(timeout=httpx.Timeout(opts.timeout), follow_redirects=True, max_redirects=5,
                          limits=limits, headers={"User-Agent": opts.user_agent})

    def work(row: UrlRow) -> tuple[UrlRow, bytes | None]:
        return row, download_one(client, row, opts)

    try:
        with ThreadPoolExecutor(opts.concurrency) as pool, \
                tqdm(total=len(rows), initial=len(rows) - len(todo), desc="fetch", unit="url",
                     disable=not progress, dynamic_ncols=True) as bar:
            for row, data in pool.map(work, todo):  # writes stay in this thread (one shard writer)
                if data is not None:
                    try:
                        data, ext, row.width, row.height = _check_image(data, opts)
                        row.bytes, row.sha256 = len(data), hashlib.sha256(data).hexdigest()
                        row.path, row.status = sink.put(row, data, ext), "ok"
                    except ImageError as e:
                        row.error = f"not an image: {e}"
                if row.status != "ok":
                    row.status = "error"
                bar.update(1)
    finally:
        client.close()
        sink.close()
    _write_jsonl(out / "status.jsonl", [asdict(r) for r in rows])
    if fmt == "folder":
        _write_jsonl(out / "manifest.jsonl", [
            {"id": r.id, "image": r.path if r.status == "ok" else (r.url or f"line {r.line}"), "url": r.url,
             "captions": r.captions, **({"error": r.error} if r.status != "ok" else {})} for r in rows])
    return rows


def _write_jsonl(path: Path, recs: list[dict]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs), encoding="utf-8")
    tmp.replace(path)


def fetch_manifest(manifest: Path, out: Path, fmt: str = "folder", opts: FetchOptions | None = None,
                   progress: bool = True) -> list[UrlRow]:
    return fetch_rows(read_url_list(Path(manifest)), Path(out), fmt, opts, progress)


def fetch_multim_poem(json_path: Path, out: Path, opts: FetchOptions | None = None, progress: bool = True,
                      limit: int | None = None) -> list[UrlRow]:
    """MultiM-Poem's ``[{id, poem, image_url}]`` -> ``out/images/<id>.<ext>`` plus a copy of the JSON
    (``out/multim_poem.json``): the layout ``eval --benchmark multim-poem`` reads."""
    json_path, out = Path(json_path), Path(out)
    try:
        data = json.loads(json_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FetchError(f"MultiM-Poem JSON not found: {json_path}") from None
    except ValueError as e:
        raise FetchError(f"{json_path} is not valid JSON: {str(e)[:80]}") from None
    if not isinstance(data, list):
        raise FetchError(f"{json_path}: expected a list of {{id, poem, image_url}}")
    data = data[:limit] if limit else data
    rows = []
    for n, rec in enumerate(data, 1):
        url = str(rec.get("image_url") or "") if isinstance(rec, dict) else ""
        rid = str(rec.get("id")) if isinstance(rec, dict) and rec.get("id") is not None else f"line{n:06d}"
        row = UrlRow(n, rid, url or None)
        if not url.startswith(("http://", "https://")):
            row.status, row.error = "error", f"record {n}: no http(s) image_url"
        rows.append(row)
    out.mkdir(parents=True, exist_ok=True)
    copy = out / "multim_poem.json"
    if copy.resolve() != json_path.resolve():
        copy.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return fetch_rows(rows, out, "folder", opts, progress)


def download_manifest(manifest: Path, work: Path, opts: FetchOptions | None = None, limit: int | None = None,
                      progress: bool = True) -> Path:
    """``run --manifest M --download``: fetch M's URL images into ``work`` and write a manifest whose
    URL lines point at the files (or carry the download's ``error``); local lines are kept, resolved
    against M's folder. Returns that manifest's path, for ``load_manifest``."""
    from visassoc.sources.base import iter_jsonl

    manifest = Path(manifest)
    recs = []
    for n, rec in iter_jsonl(manifest, "image", " (and ideally 'id', 'captions')"):  # SourceError before any fetch
        recs.append((n, rec))
        if limit is not None and len(recs) >= limit:
            break
    rows = {n: UrlRow(n, str(rec.get("id", Path(str(rec["image"])).stem)), str(rec["image"]))
            for n, rec in recs if str(rec["image"]).startswith(("http://", "https://"))}
    if rows:
        fetch_rows(list(rows.values()), work, "folder", opts, progress)
    out = []
    for n, rec in recs:
        image = str(rec["image"])
        if n in rows:
            r = rows[n]
            rec = {**rec, "url": image, "image": str((work / r.path).resolve()) if r.status == "ok" else image,
                   **({"error": r.error} if r.status != "ok" else {})}
        elif not Path(image).is_absolute():
            rec = {**rec, "image": str((manifest.parent / image).resolve())}
        out.append(rec)
    path = work / "run-manifest.jsonl"
    work.mkdir(parents=True, exist_ok=True)
    _write_jsonl(path, out)
    return path
