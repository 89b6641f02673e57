"""--caption-mode per-word: one call per (image, word) writes all its levels; only failed levels are re-asked."""
from __future__ import annotations

import json
import re

import pyarrow.parquet as pq
import yaml

from fake_openai_server import FakeOpenAI, prompt_text
from test_pipeline_models import responder as stage_responder
from visassoc.config import RunConfig
from visassoc.engine.pipeline import run


def per_word_responder(body: dict, fail_level: str | None = "5") -> str:
    """Per-word calls get one caption per item; on a first try, ``fail_level``'s caption leaves out
    its association (invalid), and the re-ask fixes it. Other stages: the pipeline test's answers."""
    text = prompt_text(body)
    if "one new caption per item" not in text:
        return stage_responder(body)
    items = re.findall(r'^(\d+)\. distance (\d) .*association "([^"]+)"$', text, re.M)
    retry = "were rejected" in text
    return json.dumps({n: (f"A quiet {a} near the table" if lv != fail_level or retry else "A quiet scene near the table")
                       for n, lv, a in items})


def test_per_word_calls_and_reasks(photo_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("VISASSOC_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    img_dir, caps = photo_folder
    with FakeOpenAI(responder=per_word_responder) as s:
        bc = tmp_path / "b.yaml"
        bc.write_text(yaml.safe_dump({"backends": {"openai:fake-vlm": {"base_url": s.base_url, "concurrency": 2}}}))
        cfg = RunConfig(out=tmp_path / "run", images=img_dir, captions=caps, associate="openai:fake-vlm",
                        caption="openai:fake-vlm", caption_mode="per-word", backend_config=bc, progress=False,
                        top_k=2)
        run(cfg)
        calls = [prompt_text(r["body"]) for r in s.chat_requests() if "one new caption per item" in prompt_text(r["body"])]
        n_requests = len(s.chat_requests())
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    by_stage = manifest["usage_by_stage"]
    assert set(by_stage) == {"associate", "caption"} and by_stage["caption"]["requests"] == len(calls)
    assert manifest["usage"]["fake-vlm"]["requests"] == n_requests == sum(u["requests"] for u in by_stage.values())
    rows = pq.read_table(tmp_path / "run" / "captions.parquet").to_pylist()
    words = {(r["image_id"], r["word"]) for r in rows}
    assert len(rows) == 5 * len(words) and all(r["valid"] for r in rows)
    first = [c for c in calls if "were rejected" not in c]
    reasks = [c for c in calls if "were rejected" in c]
    assert len(first) == len(words)  # one call per word, not one per level
    assert len(reasks) == len(words)  # each word's failed level, asked again in one call
    assert all(len(re.findall(r"^\d+\. distance", c, re.M)) == 1 and "distance 5" in c for c in reasks)
    assert {r["attempts"] for r in rows if r["level"] == 5} == {2} and {r["attempts"] for r in rows if r["level"] < 5} == {1}
