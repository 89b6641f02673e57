"""Shared fixtures. Nothing here needs ../shared or the network; tests/test_shared_data.py uses
``SHARED`` (../shared/data beside the project, or $VISASSOC_SHARED_DATA) and skips without it."""
from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

SHARED = Path(os.environ.get("VISASSOC_SHARED_DATA") or Path(__file__).resolve().parents[1].parent / "shared" / "data")


@pytest.fixture(scope="session", autouse=True)
def _offline_env(tmp_path_factory):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    # keep the user's cache (MiniLM vocab embeddings, WordNet copy) shared across test runs;
    # a fresh clone simply builds it once.
    yield


def dead_port() -> int:
    """A loopback port nothing listens on: bound to an ephemeral port, then closed, so connecting
    is refused (a fixed port such as 9 may be open on some machines)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_photo(path: Path, color=(200, 80, 40), size=(64, 48)) -> Path:
    from PIL import Image, ImageDraw

    im = Image.new("RGB", size, color)
    d = ImageDraw.Draw(im)
    d.ellipse([8, 8, size[0] - 8, size[1] - 8], fill=(color[2], color[0], color[1]))
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)
    return path


CAPTIONS = {
    "dog.jpg": ["A dog runs across a green field.", "A brown dog chases a ball on the grass."],
    "pizza.png": ["A pizza sits on a wooden table.", "A hot pizza with cheese on a plate."],
    "bus.jpg": ["A red bus drives down a city street.", "A large bus parked near a building."],
    "beach.jpg": ["A woman walks on the sandy beach.", "People relax under an umbrella by the sea."],
}


@pytest.fixture
def photo_folder(tmp_path) -> tuple[Path, Path]:
    """Four small generated photos and a JSONL captions file."""
    img_dir = tmp_path / "photos"
    for i, name in enumerate(CAPTIONS):
        make_photo(img_dir / name, color=(40 * i + 60, 90, 200 - 30 * i))
    caps = tmp_path / "captions.jsonl"
    caps.write_text("".join(json.dumps({"image": n, "captions": c}) + "\n" for n, c in CAPTIONS.items()))
    return img_dir, caps
