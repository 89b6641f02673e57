"""The paper's evaluation protocols: MultiM-Poem in 512x512 diagonal blocks (recomputed from the saved block
scores on more than 512 poems), HAIVMet as published (folders of sub-corpora, several roots, image->text).
Tiny random models and generated images: no weights or benchmark images can be downloaded here."""
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from visassoc.evaluate import evaluate, load_benchmark
from visassoc.train.synthetic import draw_shape

torch.set_num_threads(1)
_ROOT = Path(__file__).resolve().parents[1]
SHARED_POEMS = next((p for p in (_ROOT.parent / "shared", _ROOT.parent.parent / "shared")  # checkout or worktree
                     if (p / "data/multim-poem/multim_poem.json").is_file()), _ROOT.parent / "shared"
                    ) / "data" / "multim-poem" / "multim_poem.json"


from test_eval_runner import brute_rank, ckpt  # noqa: E402,F401 - the same tiny checkpoint and brute-force rank


@pytest.fixture(scope="module")
def poems(tmp_path_factory):
    """700 poems in the `visassoc fetch` layout: <root>/multim_poem.json + <root>/images/<id>.<ext>; ids 5 and 600
    have no image, one image is a PNG."""
    root = tmp_path_factory.mktemp("mp")
    (root / "images").mkdir()
    recs = [{"poem": f"a verse about thing {i}\nsecond line {i % 7}", "image_url": f"https://x/{i}.jpg", "id": i}
            for i in range(700)]
    (root / "multim_poem.json").write_text(json.dumps(recs))
    rng = np.random.default_rng(0)
    for i in range(700):
        if i not in (5, 600):
            Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(
                root / "images" / (f"{i}.png" if i == 7 else f"{i}.jpg"))
    return root


def test_multim_poem_paper_protocol_recomputes_from_saved_blocks(ckpt, poems, tmp_path):
    out = tmp_path / "paper"
    res = evaluate("multim-poem", poems, out, ckpt=ckpt, protocol="paper", n_boot=20, batch_size=128)
    assert list(res) == ["baseline", "level_1", "level_2", "level_3", "level_4", "level_5", "best_level"]
    meta = json.loads((out / "meta.json").read_text())
    assert meta["protocol"] == "paper" and meta["block_size"] == 512 and meta["paper_direction"] == "t2i"
    lay = json.loads((out / "blocks.json").read_text())
    blocks = lay["blocks"]
    # dataset order, poems without an image left out, cut into 512 + 186
    assert [len(b["texts"]) for b in blocks] == [512, 186]
    assert [i for b in blocks for i in b["texts"]] == [i for i in range(700) if i not in (5, 600)]
    texts, images = json.loads((out / "texts.json").read_text()), json.loads((out / "images.json").read_text())
    assert Path(images[blocks[0]["images"][blocks[0]["texts"].index(7)]]).name == "7.png"
    pos = json.loads((out / "positives.json").read_text())
    split = json.loads((out / "split.json").read_text())
    # the saved block scores are exactly the full-gallery scores restricted to each block
    full = tmp_path / "full"
    res_full = evaluate("multim-poem", poems, full, ckpt=ckpt, n_boot=0, batch_size=128)
    assert res_full["baseline"]["protocol"] == "full" and "i2t" in res_full["baseline"]
    S = np.load(full / "scores-level_3.npy")
    B = np.load(out / "block-scores-level_3.npy")
    assert B.shape == (698, 512) and np.isnan(B[512:, 186:]).all()
    np.testing.assert_allclose(B[512:, :186], S[np.ix_(blocks[1]["texts"], blocks[1]["images"])], atol=1e-6)
    val_r1 = {}
    for v in res:
        s = np.load(out / f"block-scores-{v}.npy").astype(np.float64)
        rk, k, where = [], 0, {}
        for b in blocks:
            n = len(b["texts"])
            for j, t in enumerate(b["texts"]):
                assert pos[t] == [b["images"][j]] and texts[t].startswith("a verse")
                where[t] = len(rk)
                rk.append(brute_rank(s[k + j, :n].tolist(), {j}))
            k += n
        rk = np.array(rk)
        assert rk.max() <= 512  # ranked only against its own block
        m = res[v]["t2i"]
        assert m["n"] == 698 and res[v]["protocol"] == "paper" and "i2t" not in res[v]
        for kk in (1, 5, 10, 20):
            assert m[f"R@{kk}"] == pytest.approx(np.mean(rk <= kk))
        assert m["mean_rank"] == pytest.approx(rk.mean())
        test = rk[[where[t] for t in split["test_texts"] if t in where]]
        assert res[v]["t2i_test"]["R@1"] == pytest.approx(np.mean(test <= 1)) and res[v]["t2i_test"]["n"] == len(test)
        if v.startswith("level_"):
            val_r1[int(v[-1])] = np.mean(rk[[where[t] for t in split["val_texts"] if t in where]] <= 1)
    assert res["best_level"]["level"] == max(val_r1, key=lambda k: (val_r1[k], -k))
    md = (out / "results.md").read_text()
    assert "paper protocol" in md and all(f"level_{k}" in md for k in range(1, 6)) and "t2i mean_rank" in md


def test_multim_poem_layout_errors(poems, tmp_path):
    with pytest.raises(ValueError, match="images folder"):
        load_benchmark("multim-poem", poems / "multim_poem.json", tmp_path / "none")
    with pytest.raises(ValueError, match="only"):
        evaluate("pairs", poems, tmp_path / "o", model="tiny-random-clip", protocol="paper")
    assert not (tmp_path / "o").exists()


@pytest.mark.skipif(not SHARED_POEMS.is_file(), reason="../shared/data/multim-poem absent (optional real data)")
def test_real_multim_poem_json_schema(tmp_path):
    """The real img2poem JSON (8,292 records, images not downloadable here): read in order, each poem counted
    as missing its image until images/<id>.jpg exists."""
    (tmp_path / "images").mkdir()
    os.symlink(SHARED_POEMS, tmp_path / "multim_poem.json")
    Image.new("RGB", (8, 8)).save(tmp_path / "images" / "3.jpg")
    b = load_benchmark("multim-poem", tmp_path)
    assert len(b.texts) == 8292 and b.text_ids[:4] == ["0", "1", "2", "3"] and len(b.missing) == 8291
    assert b.positives[3] == [0] and all(not p for i, p in enumerate(b.positives) if i != 3)


def haivmet_tree(root, layout):
    """layout: {relative text folder: n images}."""
    rng = __import__("random").Random(0)
    for k, (rel, n) in enumerate(sorted(layout.items())):
        d = root / rel
        d.mkdir(parents=True, exist_ok=True)
        for j in range(n):
            draw_shape(["red", "blue", "green"][j % 3], ["circle", "square"][k % 2], rng, 24).save(d / f"i{j}.png")
    return root


def test_haivmet_folder_of_subcorpora_and_several_roots(ckpt, tmp_path):
    a = haivmet_tree(tmp_path / "a", {"corpusX/time is a thief": 2, "corpusX/love_is_a_rose": 3,
                                      "corpusY/the city is a jungle": 2})
    b = haivmet_tree(tmp_path / "b", {"love_is_a_rose": 2, "hope is a bird": 1})
    bench = load_benchmark("haivmet", [a, b])
    # metaphor folders are the texts (not corpusX / corpusY); the rose in both roots is one text
    assert bench.texts == ["hope is a bird", "love is a rose", "the city is a jungle", "time is a thief"]
    assert [len(p) for p in bench.positives] == [1, 5, 2, 2] and len(bench.images) == 10
    out = tmp_path / "ev"
    res = evaluate("haivmet", [a, b], out, ckpt=ckpt, n_boot=0, val_fraction=0, protocol="paper")
    meta = json.loads((out / "meta.json").read_text())
    assert meta["paper_direction"] == "i2t" and meta["root"] == [str(a), str(b)]
    s = np.load(out / "scores-level_2.npy")
    pos = json.loads((out / "positives.json").read_text())
    owner = {c: t for t, cols in enumerate(pos) for c in cols}
    rk = [brute_rank(s[:, j].tolist(), {owner[j]}) for j in range(s.shape[1])]  # an image's positive: its metaphor
    assert res["level_2"]["i2t"]["n"] == 10 and res["level_2"]["i2t"]["mean_rank"] == pytest.approx(np.mean(rk))
    md = (out / "results.md").read_text()
    assert md.index("i2t R@1") < md.index("t2i R@1") and "level_5" in md


def test_haivmet_ambiguous_layout_is_one_line_error(tmp_path):
    from visassoc.cli import app

    root = haivmet_tree(tmp_path / "h", {"a text": 1, "corpusZ/another text": 1})
    with pytest.raises(ValueError, match="ambiguous haivmet layout"):
        load_benchmark("haivmet", root)
    r = CliRunner().invoke(app, ["eval", "--benchmark", "haivmet", "--root", str(root), "--out", str(tmp_path / "o"),
                                 "--model", "tiny-random-clip"])
    assert r.exit_code == 2 and r.output.count("\n") == 1 and "ambiguous" in r.output
    assert not (tmp_path / "o").exists()
