"""WebDataset tar shards (LAION/COCO-style): ``{key}.jpg|png|webp`` plus ``{key}.txt`` or ``{key}.json``.

Read with the ``webdataset`` library, shard by shard and sample by sample: a shard is never
extracted whole, only each image's bytes are written to the run's ``source-files`` folder
(``visassoc.datafiles.BlobDir``) so the image stage opens it like any other file. Image id = the sample's
key; provenance = ``shard#key``. Nothing is dropped silently: a sample without an image, a
bad JSON member or a repeated key is an error item, and a shard that cannot be read to its
end (truncated, not a tar) adds one error item naming the shard and where it stopped.
"""
from __future__ import annotations

import json

from .base import SourceError, SourceItem, clean_captions
from visassoc.datafiles import BlobDir, DataFileError, expand_shards

IMAGE_KEYS = ("jpg", "jpeg", "png", "webp")


def _captions(sample: dict) -> tuple[list[str], str | None]:
    caps: list[str] = []
    if sample.get("txt") is not None:
        caps += clean_captions(sample["txt"].decode("utf-8", "replace").splitlines())
    if sample.get("json") is not None:
        try:
            meta = json.loads(sample["json"])
        except (ValueError, UnicodeDecodeError) as e:
            return caps, f"bad json member: {str(e)[:80]}"
        if isinstance(meta, dict):
            for k in ("captions", "caption", "text"):
                caps += [c for c in clean_captions(meta.get(k)) if c not in caps]
    return caps, None


def iter_webdataset(pattern: str, blobs: BlobDir, limit: int | None = None):
    """Yield one ``SourceItem`` per sample (and per unreadable shard tail), in shard order."""
    import webdataset as wds

    seen: dict[str, str] = {}
    n = 0
    try:
        shards = expand_shards(pattern)
    except DataFileError as e:
        raise SourceError(str(e)) from None
    for shard in shards:
        failures: list[Exception] = []

        def keep_going(exn: Exception) -> bool:
            failures.append(exn)
            return True  # webdataset stops the broken shard itself; we report it below

        ds = wds.WebDataset(str(shard), handler=keep_going, shardshuffle=False, empty_check=False,
                            nodesplitter=None, workersplitter=None)
        count = 0
        for sample in ds:
            key = sample["__key__"]
            prov = f"{shard}#{key}"
            count += 1
            ext = next((e for e in IMAGE_KEYS if sample.get(e) is not None), None)
            caps, err = _captions(sample)
            image_id = key
            if key in seen:
                image_id, err = f"{key}#{shard.name}", f"key {key!r} repeats (first in {seen[key]})"
            seen.setdefault(key, str(shard))
            if ext is None and err is None:
                members = sorted(k for k in sample if not k.startswith("__"))
                err = f"sample has no jpg/png/webp member (has {', '.join(members) or 'nothing'})"
            path = blobs.put(image_id, sample[ext], ext) if ext and err is None else None
            yield SourceItem(image_id, path, caps, err, prov)
            n += 1
            if limit is not None and n >= limit:
                return
        if failures:
            e = failures[0]
            msg = (str(e.args[0]) if e.args else str(e)).splitlines()[0][:160]
            yield SourceItem(f"{shard.name}#unreadable", None, [], f"shard {shard} unreadable after "
                             f"{count} sample(s): {type(e).__name__}: {msg}", str(shard))
            n += 1
            if limit is not None and n >= limit:
                return


def load_webdataset(pattern: str, blobs: BlobDir, limit: int | None = None) -> list[SourceItem]:
    items = list(iter_webdataset(pattern, blobs, limit))
    if not items:
        raise SourceError(f"the shards {pattern!r} hold no samples")
    return items
