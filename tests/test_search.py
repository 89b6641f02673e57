"""Creative search over a folder, with the per-(encoder, level) embedding cache. Tiny random models."""
import os

import pytest
import torch

from visassoc.evaluate.search import search
from visassoc.train import TrainConfig, train
from visassoc.train.synthetic import make_haivmet, make_shapes_run

torch.set_num_threads(1)


@pytest.fixture()
def setup(tmp_path, monkeypatch):
    monkeypatch.setenv("VISASSOC_CACHE", str(tmp_path / "cache"))
    rd = make_shapes_run(tmp_path / "run", n_images=12, seed=4)
    train(TrainConfig(data=[str(rd)], out=str(tmp_path / "ck"), max_steps=2, batch_size=8, device="cpu"))
    return tmp_path / "ck", rd / "images"


def test_search_ranks_and_caches(setup):
    ck, images = setup
    r = search(images, "a passionate eternity", ckpt=ck, level=5, top=5)
    assert len(r.hits) == 5 and r.n_images == 12 and r.n_embedded == 12
    assert [h.rank for h in r.hits] == [1, 2, 3, 4, 5]
    assert all(a.score >= b.score for a, b in zip(r.hits, r.hits[1:]))
    again = search(images, "a passionate eternity", ckpt=ck, level=5, top=5)
    assert again.n_embedded == 0 and [(h.path, h.score) for h in again.hits] == [(h.path, h.score) for h in r.hits]
    other = search(images, "a passionate eternity", ckpt=ck, level=1, top=5)
    assert other.n_embedded == 12  # a different level has its own cache
    first = sorted(images.iterdir())[0]
    os.utime(first, ns=(1, 1))
    assert search(images, "a passionate eternity", ckpt=ck, level=5).n_embedded == 1  # changed file re-embedded


def test_search_skips_unreadable_and_validates(setup, tmp_path):
    ck, images = setup
    (images / "broken.jpg").write_bytes(b"garbage")
    r = search(images, "calm", ckpt=ck, level=3, top=100)
    assert len(r.hits) == 12 and len(r.skipped) == 1 and r.n_images == 13
    with pytest.raises(ValueError):
        search(images, "calm", ckpt=ck, level=9)
    with pytest.raises(ValueError):
        search(images, "calm", model="tiny-random-clip", level=2)
    with pytest.raises(NotADirectoryError):
        search(tmp_path / "nope", "calm", ckpt=ck)
    root = make_haivmet(tmp_path / "h", n_metaphors=3, per=2)
    assert len(search(root, "joy", model="tiny-random-clip").hits) == 6
