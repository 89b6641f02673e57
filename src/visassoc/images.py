"""Opening images safely: lazily, EXIF-rotated, RGB, with one-line errors for bad files."""
from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})  # what we read as images
MAX_PIXELS = 178_956_970  # PIL's default bomb limit x2: larger images are refused, not decoded


class _Named(str):
    """Stands in for a Path in messages about in-memory images."""

    @property
    def name(self) -> str:
        return str(self)


class ImageError(ValueError):
    """The file is not a usable image; the message is one line meant for errors.parquet."""


@dataclass
class ImageInfo:
    width: int
    height: int
    sha256: str
    mode: str
    format: str | None


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(chunk):
            h.update(b)
    return h.hexdigest()


def _to_8bit(im: Image.Image) -> Image.Image:
    """16/32-bit single-channel images (medical, scientific PNG/TIFF) scaled to 8-bit RGB."""
    import numpy as np

    arr = np.nan_to_num(np.asarray(im, dtype="float64"), nan=0.0, posinf=0.0, neginf=0.0)
    top = 65535.0 if arr.max() > 255 else 255.0
    return Image.fromarray(np.clip(arr / top * 255.0, 0, 255).astype("uint8")).convert("RGB")


def open_rgb(path: str | Path | bytes, max_side: int | None = None) -> Image.Image:
    """Decode fully (a file or encoded bytes), apply the EXIF orientation, convert to RGB (alpha over white)."""
    if isinstance(path, (bytes, bytearray)):
        if not path:
            raise ImageError("empty image bytes")
        data, path = io.BytesIO(path), _Named("<bytes>")
    else:
        path = Path(path)
        if not path.exists():
            raise ImageError(f"file not found: {path}")
        if path.stat().st_size == 0:
            raise ImageError(f"empty file (0 bytes): {path.name}")
        data = path
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            Image.MAX_IMAGE_PIXELS = MAX_PIXELS // 2
            with Image.open(data) as im:
                im.seek(0)  # first frame of animations
                im.load()
                im = ImageOps.exif_transpose(im)
                if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                    im = im.convert("RGBA")
                    bg = Image.new("RGB", im.size, (255, 255, 255))
                    bg.paste(im, mask=im.getchannel("A"))
                    im = bg
                elif im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                    im = _to_8bit(im)
                else:
                    im = im.convert("RGB")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError(f"image too large (decompression bomb guard): {path.name}: {str(e)[:100]}") from None
    except UnidentifiedImageError:
        raise ImageError(f"not a recognised image format: {path.name}") from None
    except PermissionError:
        raise ImageError(f"permission denied: {path}") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"corrupt or truncated image {path.name}: {str(e).splitlines()[0][:120]}") from None
    if max_side and max(im.size) > max_side:
        im.thumbnail((max_side, max_side), Image.Resampling.BICUBIC)
    return im


def inspect_image(path: str | Path) -> ImageInfo:
    """Verify that the image decodes; return its (oriented) size and file hash."""
    im = open_rgb(path)
    try:
        fmt = Image.open(path).format
    except Exception:
        fmt = None
    return ImageInfo(width=im.width, height=im.height, sha256=sha256_file(path), mode=im.mode, format=fmt)
