"""TransformersBackend on tiny randomly initialised Llama / Llava checkpoints built offline.

Pretrained weights cannot be downloaded here, so the models are random (their text is
meaningless); everything else -- saving, loading through the Auto classes, chat templates,
left padding, image preprocessing, batched generation -- is the real code path.
"""
from __future__ import annotations

import io

import pytest
from PIL import Image

from visassoc.backends.base import Backend, BackendError, GenParams, Message
from visassoc.backends.tiny_models import build_tiny_lm, build_tiny_vlm
from visassoc.backends.transformers_local import TransformersBackend, load_image

SHORT = GenParams(max_tokens=6)


@pytest.fixture(scope="session")
def lm(tmp_path_factory):
    return TransformersBackend(build_tiny_lm(tmp_path_factory.mktemp("tiny_lm")), max_batch=2)


@pytest.fixture(scope="session")
def vlm(tmp_path_factory):
    return TransformersBackend(build_tiny_vlm(tmp_path_factory.mktemp("tiny_vlm")))


def _jpeg(color, size=(64, 48), exif_orientation=None) -> bytes:
    buf = io.BytesIO()
    im = Image.new("RGB", size, color)
    if exif_orientation:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        im.save(buf, "JPEG", exif=exif)
    else:
        im.save(buf, "JPEG")
    return buf.getvalue()


def _record_forwards(backend):
    """Capture (batch size, pixel_values) of every forward call the model receives."""
    seen = []

    def hook(module, args, kwargs):
        ids = kwargs.get("input_ids")
        seen.append((None if ids is None else ids.shape[0], kwargs.get("pixel_values")))

    handle = backend.hf_model.register_forward_pre_hook(hook, with_kwargs=True)
    return seen, handle


def test_tiny_lm_generates_and_reports_identity(lm):
    assert isinstance(lm, Backend) and not lm.supports_images
    g = lm.generate([Message("system", "Be brief."), Message("user", "a boy kicks a ball")], params=SHORT)
    assert g.error is None and g.parsed is None and isinstance(g.text, str)
    assert g.usage.requests == 1 and 0 < g.usage.completion_tokens <= 6 and g.usage.prompt_tokens > 5
    ident = lm.identity()
    assert ident["provider"] == "transformers" and ident["dtype"] == "float32" and ident["device"] == "cpu"
    assert ident["revision"].startswith("sha256:") and len(ident["revision"]) == 71


def test_batched_generation_matches_single_and_really_batches(lm):
    convs = [[Message("user", "a boy kicks a ball")],
             [Message("user", "two cats sleep on a sofa next to a remote control in a long prompt")],
             [Message("user", "pasta")]]
    singles = [lm.generate(c, params=SHORT) for c in convs]
    seen, handle = _record_forwards(lm)
    try:
        batched = lm.generate_batch(convs, params=SHORT)
    finally:
        handle.remove()
    assert [g.text for g in batched] == [g.text for g in singles]  # left padding leaves greedy output unchanged
    assert [g.usage for g in batched] == [g.usage for g in singles]  # padding is not counted as prompt
    assert seen[0][0] == 2 and 1 in [b for b, _ in seen]  # max_batch=2: a batch of 2, then one of 1


def test_sampling_is_seeded(lm):
    conv = [Message("user", "x")]
    a = lm.generate(conv, params=GenParams(temperature=1.0, seed=1, max_tokens=8)).text
    assert a == lm.generate(conv, params=GenParams(temperature=1.0, seed=1, max_tokens=8)).text
    assert a != lm.generate(conv, params=GenParams(temperature=1.0, seed=2, max_tokens=8)).text


def test_schema_junk_returns_error_not_exception(lm):
    schema = {"type": "object", "required": ["associations"],
              "properties": {"associations": {"type": "array", "items": {"type": "string"}}}}
    g = lm.generate([Message("user", "Return JSON.")], schema=schema, params=SHORT)
    assert g.parsed is None and g.error and "\n" not in g.error
    assert g.usage.completion_tokens > 0  # the raw text and usage are kept


def test_text_only_model_rejects_images_per_item(lm):
    out = lm.generate_batch([[Message("user", "hi", images=[_jpeg((255, 0, 0))])], [Message("user", "hi")]],
                            params=SHORT)
    assert "text-only" in out[0].error and out[1].error is None


def test_tiny_vlm_passes_the_image_to_the_model(vlm):
    assert vlm.supports_images and vlm.identity()["kind"] == "vlm"
    red, blue = _jpeg((255, 0, 0)), _jpeg((0, 0, 255), size=(30, 90))
    convs = [[Message("user", "Describe the image.", images=[red])],
             [Message("user", "Describe this other image in detail.", images=[blue])],
             [Message("user", "No image here.")]]
    seen, handle = _record_forwards(vlm)
    try:
        out = vlm.generate_batch(convs, params=SHORT)
    finally:
        handle.remove()
    assert all(g.error is None and g.usage.completion_tokens > 0 for g in out)
    with_pixels = [(b, pv) for b, pv in seen if pv is not None]
    assert len(with_pixels) == 1  # one prefill for the two image conversations, batched together
    batch, pv = with_pixels[0]
    assert batch == 2 and tuple(pv.shape) == (2, 3, 32, 32)
    red_mean, blue_mean = pv[0].mean(dim=(1, 2)), pv[1].mean(dim=(1, 2))
    assert red_mean[0] > red_mean[2] and blue_mean[2] > blue_mean[0]  # the actual images, in order
    assert out[0].usage.prompt_tokens > out[2].usage.prompt_tokens + 15  # 16 image tokens in the prompt
    assert [vlm.generate(c, params=SHORT).text for c in convs[:2]] == [g.text for g in out[:2]]


def test_vlm_accepts_paths_and_reports_bad_images_per_item(vlm, tmp_path):
    p = tmp_path / "photo.png"
    Image.new("RGB", (40, 40), (0, 255, 0)).save(p)
    out = vlm.generate_batch([[Message("user", "what?", images=[p])], [Message("user", "what?", images=[b"junk"])]],
                             params=SHORT)
    assert out[0].error is None
    assert out[1].error.startswith("cannot read image (4 bytes)") and out[1].text == ""


def test_load_image_applies_exif_orientation():
    im = load_image(_jpeg((10, 200, 10), size=(40, 20), exif_orientation=6))
    assert im.size == (20, 40) and im.mode == "RGB"


def test_clear_errors_for_missing_or_unsupported_models(tmp_path):
    from transformers import CLIPVisionConfig

    with pytest.raises(BackendError, match="model path not found"):
        TransformersBackend(str(tmp_path / "nope"))
    with pytest.raises(BackendError, match="not in the local Hugging Face cache|neither a directory"):
        TransformersBackend("visassoc-test/definitely-not-cached")
    with pytest.raises(BackendError, match="no config.json"):
        TransformersBackend(tmp_path)
    d = tmp_path / "clip"
    CLIPVisionConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2).save_pretrained(d)
    with pytest.raises(BackendError, match="unsupported architecture 'clip_vision_model'"):
        TransformersBackend(d)


def test_bad_dtype_batch_size_and_base_models(tmp_path_factory):
    d = build_tiny_lm(tmp_path_factory.mktemp("lm2"))
    base = build_tiny_lm(tmp_path_factory.mktemp("base_lm"))
    (base / "chat_template.jinja").unlink()
    with pytest.raises(BackendError, match="no chat template"):
        TransformersBackend(base)
    with pytest.raises(BackendError, match="unknown dtype"):
        TransformersBackend(d, dtype="float8")
    with pytest.raises(BackendError, match="max_batch"):
        TransformersBackend(d, max_batch=0)
    assert TransformersBackend(d, dtype="bfloat16").identity()["dtype"] == "bfloat16"
