"""Images for chat APIs: resized, JPEG-encoded base64 data URLs, encoded once and cached.

A caption run sends each image up to 25 times (5 words x 5 levels); re-decoding and
re-encoding a 4000-px photo each time would dominate the client's CPU, so results are kept
in a small in-memory LRU and, for paths, in ``cache_dir()/jpeg`` across runs.
"""
from __future__ import annotations

import base64
import hashlib
import io
import os
import threading
from collections import OrderedDict
from pathlib import Path


DEFAULT_MAX_SIDE = 768
DEFAULT_QUALITY = 90
_MEM: "OrderedDict[tuple, str]" = OrderedDict()
_MEM_MAX = 256
_LOCK = threading.Lock()
_STRIPES = [threading.Lock() for _ in range(64)]  # concurrent requests for one image encode it once


def _disk_dir() -> Path | None:
    try:
        from visassoc.lexicon import cache_dir

        d = cache_dir() / "jpeg"
        d.mkdir(parents=True, exist_ok=True)
        return d
    except OSError:
        return None


def encode_jpeg(src: bytes | str | Path, max_side: int = DEFAULT_MAX_SIDE, quality: int = DEFAULT_QUALITY) -> bytes:
    """Decode, EXIF-rotate, flatten alpha onto white, shrink to ``max_side``, encode JPEG."""
    from ..images import ImageError, open_rgb

    try:
        im = open_rgb(src, max_side=max_side)
    except ImageError as e:
        if str(e).startswith("file not found"):
            raise ValueError(f"image not found: {src}") from None
        name = "<bytes>" if isinstance(src, bytes) else Path(src).name
        raise ValueError(f"cannot encode image {name}: {e}") from None
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=quality, optimize=True)
    return buf.getvalue()


def _key(src: bytes | str | Path, max_side: int, quality: int) -> tuple:
    if isinstance(src, bytes):
        return ("b", hashlib.sha256(src).hexdigest(), max_side, quality)
    p = Path(src)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise ValueError(f"image not found: {p}") from None
    return ("p", str(p.resolve()), st.st_mtime_ns, st.st_size, max_side, quality)


def image_data_url(src: bytes | str | Path, max_side: int = DEFAULT_MAX_SIDE, quality: int = DEFAULT_QUALITY) -> str:
    """``data:image/jpeg;base64,...`` for an image path or encoded bytes; raises ValueError."""
    key = _key(src, max_side, quality)
    with _STRIPES[hash(key) % len(_STRIPES)]:
        return _cached_url(src, key, max_side, quality)


def _cached_url(src, key: tuple, max_side: int, quality: int) -> str:
    with _LOCK:
        if key in _MEM:
            _MEM.move_to_end(key)
            return _MEM[key]
    disk = _disk_dir() if key[0] == "p" else None
    fname = hashlib.sha256(repr(key).encode()).hexdigest()[:32] + ".jpg"
    jpeg = None
    if disk is not None and (disk / fname).exists():
        jpeg = (disk / fname).read_bytes()
    if not jpeg:
        jpeg = encode_jpeg(src, max_side, quality)
        if disk is not None:
            tmp = disk / f"{fname}.{os.getpid()}.{threading.get_ident()}.tmp"
            try:
                tmp.write_bytes(jpeg)
                tmp.replace(disk / fname)
            except OSError:
                pass
    url = "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")
    with _LOCK:
        _MEM[key] = url
        while len(_MEM) > _MEM_MAX:
            _MEM.popitem(last=False)
    return url


def clear_memory_cache() -> None:
    with _LOCK:
        _MEM.clear()
