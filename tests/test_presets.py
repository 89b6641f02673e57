"""`--preset paper` (generation as the paper's authors ran it) and `--prompt-dir` (any prompt text).

Model-backed runs go to the loopback fake OpenAI server (no real LLM/VLM can run here)."""
from __future__ import annotations

import hashlib
import json
import re

import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

import visassoc
from fake_openai_server import FakeOpenAI, prompt_text
from visassoc.cli import app
from visassoc.config import PRESETS, RunConfig
from visassoc.stages import caption as caption_step
from visassoc.backends.base import Generation
from visassoc.stages.associate import LLMAssociationMiner, result_rows
from visassoc.stages.interfaces import AssociationRequest
from visassoc.stages.salient import SalientConfig, extract_salient


def test_paper_preset_fills_unset_fields_and_explicit_ones_win():
    cfg = RunConfig(out="x", demo=True, preset="paper")
    for k, v in PRESETS["paper"].items():
        assert getattr(cfg, k) == v
    assert RunConfig(out="x", demo=True, preset="paper", max_words=12).max_words == 12
    assert RunConfig(out="x", demo=True).max_words == 10 and RunConfig(out="x", demo=True).caption_choice == "first-valid"


def test_paper_salient_rule_drops_unrated_words_and_keeps_the_token():
    cap = "a dog runs after the quokka across the grassy field"
    ours = extract_salient([("i", 0, cap)], SalientConfig())["i"]
    paper = extract_salient([("i", 0, cap)], SalientConfig(rule="paper"))["i"]
    assert "quokka" in [r.word for r in ours]  # ours ranks unrated words last
    assert "quokka" not in [r.word for r in paper]  # theirs drops them
    runs = next(r for r in paper if r.word == "runs")
    assert runs.lemma == "run" and runs.pos == "VERB"  # the token as written, its noun lemma for the rating
    assert [r.concreteness for r in paper] == sorted((r.concreteness for r in paper), reverse=True)


class _Echo:
    name, model = "echo", None

    def write(self, reqs):
        return [f"the {r.association} sits here" for r in reqs]


def _caption_rows(seed: int, choice: str) -> list[tuple]:
    up = {"images": {"i": [{"path": "p", "captions": ["a dog"]}]},
          "descriptions": {"i": [{"description": "A dog."}]},
          "salient": {"i": [{"word": w, "pos": "NOUN", "caption": "a dog and a cat", "rank": k}
                            for k, w in enumerate(("dog", "cat"))]},
          "associations": {"i": [{"word": w, "level": lv, "rank": r, "association": f"{w}{lv}{r}"}
                                 for w in ("dog", "cat") for lv in range(1, 6) for r in range(3)]}}
    cfg = RunConfig(out="x", demo=True, seed=seed, caption_choice=choice, max_reasks=0)
    out = caption_step.run_chunk(cfg, _Echo(), ["i"], up, None)["captions"]
    return [(r["word"], r["level"], r["association"]) for r in out]


def test_random_caption_choice_is_seeded_and_not_always_the_first():
    first = _caption_rows(0, "first-valid")
    assert all(a.endswith("0") for _, _, a in first)
    a, b, c = _caption_rows(0, "random"), _caption_rows(0, "random"), _caption_rows(1, "random")
    assert a == b and a != c and len(a) == 10
    assert {x[-1][-1] for x in a + c} > {"0"}  # ranks 1 and 2 are chosen too


def test_paper_ladders_keep_whatever_parses():
    class Stand:
        provider, model, supports_images = "fake", "m", False

        def identity(self):
            return {"provider": "fake"}

    req = AssociationRequest("i", "dog", "dog", "NOUN", "a dog", "A dog.")
    strict, loose = LLMAssociationMiner(Stand()), LLMAssociationMiner(Stand(), strict=False, reask=False)
    ans = json.dumps({"dog": {"1": ["dogs", "hound", "hound"], "2": ["pet"], "3": ["walk"], "4": ["loyalty"]}})
    out = []
    for st in (strict, loose):
        call = st.build_calls([req])[0]
        call.gen = Generation(text=ans)
        out.append(st.finish(call, [req])[0])
    assert type(out[0]).__name__ == "StageError"  # ours: "dogs" is the word, level 5 missing -> not usable
    assert out[1][1] == ["dogs", "hound"] and out[1][5] == []  # theirs: parsed as is; level 5 becomes an error row
    rows = result_rows([req], [out[1]], "b", 3, strict=False)
    assert [r["level"] for r in rows["errors"]] == [5] and len(rows["associations"]) == 5


def test_preset_paper_run_records_every_setting(tmp_path):
    r = CliRunner().invoke(app, ["run", "--demo", "--limit", "1", "--preset", "paper", "--out", str(tmp_path / "r"), "-q"])
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert m["config"]["preset"] == "paper"
    for k, v in PRESETS["paper"].items():
        assert m["config"][k] == v
    caps = pq.read_table(tmp_path / "r" / "captions.parquet").to_pylist()
    assert caps and all(c["attempts"] == 1 for c in caps)  # no re-ask
    assert all(c["valid"] == (len(c["caption"].split()) <= 9) for c in caps if c["reason"] != "")  # < 10 words
    sal = pq.read_table(tmp_path / "r" / "salient.parquet").to_pylist()
    assert all(s["caption"] == s["caption"].lower() and s["concreteness"] is not None for s in sal)


@pytest.mark.parametrize("files, expect", [
    ({}, "no associate.txt"),
    ({"associate.txt": "Words: $words_list $nonsense"}, "unknown placeholder $nonsense"),
    ({"associate.txt": "=== sistem ===\nx\n=== user ===\n$words_list"}, "unknown section"),
    ({"associate.txt": "Give me associations."}, "must use $words_lines or $words_list"),
    ({"associate.txt": "Costs $5 for $words_list"}, "not a placeholder"),
])
def test_bad_prompt_dir_is_one_line_before_anything(tmp_path, files, expect, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    d = tmp_path / "prompts"
    d.mkdir()
    for name, text in files.items():
        (d / name).write_text(text)
    out = tmp_path / "never"
    r = CliRunner().invoke(app, ["run", "--demo", "--llm", "openai:gpt-4o-mini", "--prompt-dir", str(d),
                                 "--out", str(out), "-q"])
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert r.exit_code == 2 and len(lines) == 1 and expect in lines[0], r.output
    assert not out.exists()


def test_prompt_dir_text_is_what_the_model_gets_and_is_hashed(tmp_path, monkeypatch):
    monkeypatch.setenv("VISASSOC_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    d = tmp_path / "prompts"
    d.mkdir()
    text = "=== system ===\nMY OWN WORDING about $short_caption.\n=== user ===\n$words_list\n"
    (d / "associate.txt").write_text(text)

    def responder(body):
        words = json.loads(re.search(r"(\[.*\])", prompt_text(body), re.S).group(1))
        return json.dumps({w: {str(lv): [f"{w}x{lv}{k}" for k in "abc"] for lv in range(1, 6)} for w in words})

    with FakeOpenAI(responder=responder) as s:
        bc = tmp_path / "b.yaml"
        bc.write_text(yaml.safe_dump({"backends": {"openai:fake": {"base_url": s.base_url}}}))
        res = visassoc.run(RunConfig(out=tmp_path / "run", demo=True, limit=1, associate="openai:fake",
                                     prompt_dir=d, backend_config=bc, progress=False), log=lambda *_: None)
        bodies = [r["body"] for r in s.chat_requests()]
    assert bodies and all("MY OWN WORDING about" in b["messages"][0]["content"] for b in bodies)
    assert res.counts["associations"] > 0
    m = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert m["prompt_hashes"]["associate"] == hashlib.sha256(text.encode()).hexdigest()


def test_per_word_captions_take_caption_word_from_the_prompt_dir(tmp_path, monkeypatch):
    """--caption-mode per-word reads <prompt-dir>/caption_word.txt (never silently the built-in one);
    without it, or with a prompt set that has no per-word prompt, one line before anything."""
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    d = tmp_path / "prompts"
    d.mkdir()
    (d / "caption.txt").write_text("Caption it with $association.")
    out = tmp_path / "never"
    args = ["run", "--demo", "--caption", "openai:gpt-4o-mini", "--caption-mode", "per-word", "--out", str(out), "-q"]
    r = CliRunner().invoke(app, args + ["--prompt-dir", str(d)])
    assert r.exit_code == 2 and "no caption_word.txt" in r.output and len(r.output.strip().splitlines()) == 1
    r = CliRunner().invoke(app, args + ["--prompt-set", "paper"])
    assert r.exit_code == 2 and "paper prompt set has no caption_word prompt" in r.output, r.output
    assert not out.exists()
    (d / "caption_word.txt").write_text("MY WORDS for $word: $items")
    from visassoc.stages import make_model_stage
    from visassoc.backends.base import IdentityBackend

    st = make_model_stage("caption", IdentityBackend("openai", "m"), mode="per-word", prompt_dir=str(d))
    assert st.prompt.sha256 == hashlib.sha256(b"MY WORDS for $word: $items").hexdigest()
