"""evaluate(): every reported number is recomputable from the saved score files; the best level is chosen
on the validation split only; missing images are counted, never dropped. Tiny random models (no weights
can be downloaded here)."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from visassoc.evaluate import evaluate
from visassoc.train import TrainConfig, train
from visassoc.train.synthetic import draw_shape, make_haivmet, make_shapes_run

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    d = tmp_path_factory.mktemp("ck")
    rd = make_shapes_run(d / "run", n_images=16, seed=3)
    train(TrainConfig(data=[str(rd)], out=str(d / "ck"), max_steps=3, batch_size=8, val_fraction=0.25, lr=0.05,
                      device="cpu"))
    return d / "ck"


def brute_rank(row, pos):
    order = sorted(range(len(row)), key=lambda j: (-row[j], j in pos))
    return 1 + next(i for i, j in enumerate(order) if j in pos)


def recompute(out, variant, part="test"):
    s = np.load(out / f"scores-{variant}.npy").astype(np.float64)
    pos = json.loads((out / "positives.json").read_text())
    split = json.loads((out / "split.json").read_text())
    t = [brute_rank(s[i].tolist(), set(pos[i])) for i in split[f"{part}_texts"] if pos[i]]
    inv = [set() for _ in range(s.shape[1])]
    for i, cols in enumerate(pos):
        for c in cols:
            inv[c].add(i)
    m = [brute_rank(s[:, j].tolist(), inv[j]) for j in split[f"{part}_images"] if inv[j]]
    return t, m


def test_haivmet_100x5_numbers_recompute_from_saved_scores(ckpt, tmp_path):
    root = make_haivmet(tmp_path / "haivmet", n_metaphors=100, per=5, seed=1)
    out = tmp_path / "ev"
    res = evaluate("haivmet", root, out, ckpt=ckpt, n_boot=50)
    assert list(res) == ["baseline", "level_1", "level_2", "level_3", "level_4", "level_5", "best_level"]
    texts, images = json.loads((out / "texts.json").read_text()), json.loads((out / "images.json").read_text())
    assert len(texts) == 100 and len(images) == 500
    for v in res:
        s = np.load(out / f"scores-{v}.npy")
        assert s.shape == (100, 500)
        t, i = recompute(out, v)
        for d, rk in (("t2i", t), ("i2t", i)):
            assert res[v][d]["n"] == len(rk)
            for k in (1, 5, 10, 20):
                assert res[v][d][f"R@{k}"] == pytest.approx(np.mean([r <= k for r in rk]))
            assert res[v][d]["mean_rank"] == pytest.approx(np.mean(rk))
            assert res[v][d]["median_rank"] == pytest.approx(np.median(rk))
    # best level = argmax of the *validation* score, recomputed from the saved matrices
    val = {}
    for lv in range(1, 6):
        t, i = recompute(out, f"level_{lv}", "val")
        val[lv] = (np.mean([r <= 1 for r in t]) + np.mean([r <= 1 for r in i])) / 2
    assert res["best_level"]["level"] == max(val, key=lambda k: (val[k], -k))
    split = json.loads((out / "split.json").read_text())
    assert not set(split["val_texts"]) & set(split["test_texts"])
    assert "best_level" in (out / "results.md").read_text()


def test_model_only_gives_baseline(tmp_path):
    root = make_haivmet(tmp_path / "h", n_metaphors=6, per=2)
    res = evaluate("haivmet", root, tmp_path / "ev", model="tiny-random-siglip", n_boot=0, val_fraction=0)
    assert list(res) == ["baseline"] and res["baseline"]["t2i"]["n"] == 6


def test_pairwise_accuracy_and_missing_rows(ckpt, tmp_path):
    import random

    rng = random.Random(0)
    rows = []
    for n in range(12):
        for name, (c, s) in (("a", ("red", "circle")), ("b", ("blue", "square"))):
            draw_shape(c, s, rng).save(tmp_path / f"{n}{name}.png")
        rows.append({"text": f"a fiery wheel {n % 4}", "image_a": f"{n}a.png", "image_b": f"{n}b.png",
                     "better": "a" if n % 2 else "b"})
    rows.append({"text": "lost", "image_a": "nope.png", "image_b": "0a.png", "better": "a"})
    f = tmp_path / "pw.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows) + "{not json\n")
    out = tmp_path / "ev"
    res = evaluate("pairwise", f, out, ckpt=ckpt, n_boot=20, val_fraction=0)
    missing = json.loads((out / "missing.json").read_text())
    assert len(missing) == 2 and any("missing" in m["reason"] for m in missing)
    pairs = json.loads((out / "pairs.json").read_text())
    s = np.load(out / "scores-level_2.npy")
    acc = np.mean([(s[t, b] > s[t, w]) + 0.5 * (s[t, b] == s[t, w]) for t, b, w in pairs])
    assert len(pairs) == 12 and res["level_2"]["accuracy"] == pytest.approx(acc)


def test_multim_poem_counts_missing_images(ckpt, tmp_path):
    recs = [{"id": i, "poem": f"poem number {i}", "image_url": "http://x"} for i in range(5)]
    js = tmp_path / "mp.json"
    js.write_text(json.dumps(recs))
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for i in (0, 1, 2):
        Image.new("RGB", (40, 40), (i * 80, 10, 10)).save(imgs / f"{i}.jpg")
    (imgs / "3.jpg").write_bytes(b"not an image")
    out = tmp_path / "ev"
    res = evaluate("multim-poem", js, out, ckpt=ckpt, images=imgs, n_boot=0, val_fraction=0)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["n_missing"] == 2 and meta["n_texts_without_positive"] == 2 and meta["n_texts"] == 5
    assert res["baseline"]["t2i"]["n"] == 3
    with pytest.raises(ValueError, match="--images"):
        evaluate("multim-poem", js, out, ckpt=ckpt)
    with pytest.raises(ValueError, match="unknown benchmark"):
        evaluate("nope", js, out, ckpt=ckpt)


def test_limit_keeps_the_first_n_texts(tmp_path):
    root = make_haivmet(tmp_path / "h", n_metaphors=6, per=2)
    res = evaluate("haivmet", root, tmp_path / "ev", model="tiny-random-siglip", n_boot=0, val_fraction=0, limit=3)
    meta = json.loads((tmp_path / "ev" / "meta.json").read_text())
    assert meta["n_texts"] == 3 and meta["n_images"] == 6 and res["baseline"]["t2i"]["n"] == 3
