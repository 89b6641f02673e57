"""CLIPScore against official FOIL-COCO negatives: the FOIL file format, the authors' paired layout
Original / FOIL / L1..L5, and each saved score checked against an independent 2.5*max(cos, 0).

Fakes: a synthetic run dir (no `visassoc run` output can be assumed) and the tiny randomly initialised
CLIP (no pretrained weights here), so the numbers exercise the pairing and the formula, not CLIP's judgement.
The FOIL file is a hand-made file in the official format (COCO caption annotations + foil flags)."""
import json

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from visassoc.report import build_report
from visassoc.report.grounding import COLUMNS, load_foil_file
from visassoc.report.synthetic import make_synthetic_run

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    d = make_synthetic_run(tmp_path_factory.mktemp("runs") / "r", n_images=8, seed=0)
    for k, f in enumerate(sorted((d / "images").iterdir())):  # distinct images: a wrong pairing must show
        rng = np.random.default_rng(k)
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(f)
    return d


def foil_file(path, image_ids, skip=()):
    """A FOIL-COCO style file: per image two originals (foil false) and two foils (foil true)."""
    anns, n = [], 0
    for cid in image_ids:
        if cid in skip:
            continue
        for k, (cap, foil) in enumerate([("a dog on the grass", False), ("a dog runs", False),
                                         (f"a cat on the grass {cid}", True), (f"a horse runs {cid}", True)]):
            n += 1
            anns.append({"id": n, "image_id": cid, "caption": cap, "foil": foil, "foil_id": n,
                         "target_word": "dog" if foil else "ORIG", "foil_word": ("cat", "horse")[k % 2] if foil else "ORIG"})
    path.write_text(json.dumps({"info": {}, "licenses": [], "images": [{"id": c} for c in image_ids],
                                "annotations": anns}))
    return path


def test_foil_file_keeps_only_foil_captions_per_image(tmp_path):
    f = foil_file(tmp_path / "foilv1.0_test_2017.json", [100000, 100001])
    by_id = load_foil_file([f])
    assert sorted(by_id) == [100000, 100001]
    assert [r["caption"] for r in by_id[100001]] == ["a cat on the grass 100001", "a horse runs 100001"]
    assert by_id[100000][0]["replaced"] == "dog" and by_id[100000][0]["new"] == "cat"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"annotations": [{"image_id": 1, "caption": "x"}]}))
    with pytest.raises(ValueError, match="lacks image_id, caption or foil"):
        load_foil_file([bad])
    bad.write_text(json.dumps([1, 2]))
    with pytest.raises(ValueError, match="no 'annotations' list"):
        load_foil_file([bad])
    with pytest.raises(FileNotFoundError):
        load_foil_file([tmp_path / "nope.json"])


def independent_cosine(pairs):
    """cos(image, text) straight from the HF CLIPModel of the same tiny weights (not visassoc.encoders' code)."""
    from visassoc.encoders.models import build_tiny

    bb = build_tiny("clip", seed=0)
    with torch.no_grad():
        px = bb.processor(images=[Image.open(p).convert("RGB") for p, _ in pairs], return_tensors="pt")
        im = bb.model.get_image_features(pixel_values=px["pixel_values"])
        tok = bb.tokenizer([t for _, t in pairs], padding=True, truncation=True, max_length=77, return_tensors="pt")
        tx = bb.model.get_text_features(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"])
    return torch.nn.functional.cosine_similarity(im, tx, dim=-1).double().numpy()


def test_clipscore_layout_matches_an_independent_clip_s(tmp_path, run_dir):
    ids = [100000 + k for k in range(8)]
    f = foil_file(tmp_path / "foilv1.0_train_2017.json", ids, skip={100003})
    out = tmp_path / "o"
    m = build_report(run_dir, out_dir=out, clip="tiny-random-clip", foil=[f], gallery=1, n_boot=20)
    assert m["grounding"]["foil"]["source"].startswith("official FOIL-COCO")
    lay = m["grounding"]["clipscore"]["layout"]
    assert lay["columns"] == COLUMNS == ["Original", "FOIL", "L1", "L2", "L3", "L4", "L5"]
    rows = [json.loads(x) for x in (out / "clipscore_pairs.jsonl").read_text().splitlines()]
    imgs = sorted({r["image_id"] for r in rows})
    want = [im for im in (f"{c:012d}" for c in ids if c != 100003)  # 100003 has no FOIL caption
            if all(_captions(run_dir, im, lv) for lv in range(1, 6))]  # and every level needs a valid caption
    assert lay["n_images"] == len(imgs) == len(want) >= 3 and imgs == want
    assert len(rows) == len(want) * len(COLUMNS)
    foils = load_foil_file([f])
    for r in rows:  # each column's caption belongs to that image
        if r["column"] == "FOIL":
            assert r["caption"] in [x["caption"] for x in foils[int(r["image_id"])]]
        elif r["column"] != "Original":
            assert r["caption"] in [c["caption"] for c in _captions(run_dir, r["image_id"], int(r["column"][1]))]
    ref = independent_cosine([(run_dir / "images" / f"{r['image_id']}.jpg", r["caption"]) for r in rows])
    assert (ref > 0).any() and (ref < 0).any()  # a random CLIP: CLIP-S is neither all 0 nor just the cosine
    got = np.array([r["cosine"] for r in rows])
    np.testing.assert_allclose(got, ref, atol=1e-5)
    np.testing.assert_allclose([r["clip_s"] for r in rows], 2.5 * np.maximum(ref, 0), atol=1e-5)
    # a wrong pairing (texts against the next image) gives other numbers: the check above can fail
    shifted = independent_cosine([(run_dir / "images" / f"{imgs[(imgs.index(r['image_id']) + 1) % len(imgs)]}.jpg", r["caption"])
                                  for r in rows])
    assert np.abs(shifted - ref).max() > 1e-3
    for c in COLUMNS:
        sel = np.array([r["column"] == c for r in rows])
        assert lay["mean_cosine"][c] == pytest.approx(ref[sel].mean(), abs=1e-5)
        assert lay["clip_s"][c] == pytest.approx((2.5 * np.maximum(ref[sel], 0)).mean(), abs=1e-5)
    per_image = {c: {r["image_id"]: r["cosine"] for r in rows if r["column"] == c} for c in COLUMNS}
    assert lay["foil_beats"]["L5"] == pytest.approx(np.mean([per_image["FOIL"][i] > per_image["L5"][i] for i in imgs]))


def _captions(run_dir, image_id, level):
    from visassoc.report.data import load_run

    return [c for c in load_run(run_dir).captions if c["image_id"] == image_id and c["level"] == level and c["valid"]]


def test_report_cli_foil_prints_the_layout_and_rejects_a_bad_file(tmp_path, run_dir):
    from visassoc.cli import app

    f = foil_file(tmp_path / "foil.json", [100000 + k for k in range(8)])
    r = CliRunner().invoke(app, ["report", str(run_dir), "--out", str(tmp_path / "o"), "--clip", "tiny-random-clip",
                                 "--foil", str(f), "--bootstrap", "10", "--gallery", "1"])
    assert r.exit_code == 0, r.output
    assert "mean cosine" in r.output and "CLIP-S" in r.output and "Original" in r.output and "L5" in r.output
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    r = CliRunner().invoke(app, ["report", str(run_dir), "--out", str(tmp_path / "o2"), "--foil", str(bad)])
    assert r.exit_code != 0 and r.output.count("\n") == 1 and "FOIL file" in r.output
    assert not (tmp_path / "o2").exists()
