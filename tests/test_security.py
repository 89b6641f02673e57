"""Security and data safety (issue 10, items 2-4): writes stay under --out, reads stay inside the
source, no network without a remote backend, model output is checked, keys go only where they
are meant to, a run never writes into a user's folder or silently over another run, and bad
input is one line with nothing left behind.

Fakes: run dirs for the study are synthetic (report.synthetic), the remote server is the
loopback fake (tests/fake_openai_server.py); everything else is the real code path.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import visassoc

from conftest import make_photo
from fake_openai_server import FakeOpenAI
from visassoc.cli import app
from visassoc.config import RunConfig
from visassoc.records import SCHEMAS
from visassoc.sources import SourceError, load_coco, load_folder, load_manifest
from visassoc.sources.base import clean_captions

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# ids and path segments an attacker would write: traversal, absolute, hidden, separators, odd bytes
HOSTILE = st.one_of(
    st.sampled_from(["../../x", "/home/user/.bashrc", "sub/a", "..", ".", "", "a/../../b", "~/.ssh/id_rsa",
                     "C:\\Windows\\x", "x\x00y", "\u202etxt.exe", "a" * 300]),
    st.lists(st.sampled_from(["..", ".", "sub", "a b", "/", "\\", "x", ".bashrc", "é"]), min_size=1, max_size=6)
    .map("/".join),
    st.text(min_size=1, max_size=40),
)


def one_line_error(r) -> None:
    out = r.output.strip()
    assert r.exit_code != 0 and out.startswith("error:") and "\n" not in out and "Traceback" not in out, r.output


# ---- writes stay inside the output folder ------------------------------------------------------
@FAST
@given(text=HOSTILE)
@example(text="/root/.bashrc")
@example(text="../../../etc/passwd")
def test_file_names_made_from_data_stay_under_the_folder(text, tmp_path):
    from visassoc.untrusted import path_under, safe_filename

    name = safe_filename(text, ".jpg")
    assert "/" not in name and "\\" not in name and not name.startswith(".") and name.endswith(".jpg")
    assert path_under(tmp_path, name).parent == tmp_path.resolve()
    assert safe_filename(text + "!", ".jpg") != name  # distinct ids never share a file


@pytest.mark.parametrize("bad", ["../x", "/etc/passwd", "a/../../b"])
def test_path_under_refuses_escapes(tmp_path, bad):
    from visassoc.untrusted import path_under

    with pytest.raises(ValueError, match="outside"):
        path_under(tmp_path / "media", bad)


def _rename_ids(run: Path, ids: list[str]) -> None:
    """Give the synthetic run's images hostile ids, in every table."""
    old = [r["image_id"] for r in pq.read_table(run / "images.parquet").to_pylist()]
    m = dict(zip(old, ids))
    for name in SCHEMAS:
        rows = pq.read_table(run / f"{name}.parquet").to_pylist()
        for r in rows:
            r["image_id"] = m.get(r["image_id"], r["image_id"])
        pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMAS[name]), run / f"{name}.parquet")


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(HOSTILE, min_size=3, max_size=3, unique=True))
@example(["/tmp/visassoc-victim/.bashrc", "../../x", "sub/a"])
def test_study_export_media_never_escape_out_and_nested_ids_work(tmp_path_factory, ids):
    from visassoc.report.synthetic import make_synthetic_run
    from visassoc.study import export_study

    base = tmp_path_factory.mktemp("study")
    run = make_synthetic_run(base / "run", n_images=3, with_instances=False)
    _rename_ids(run, ids)
    out = base / "deep" / "out"
    before = {p for p in base.rglob("*") if p.is_file()}
    s = export_study(run, out, n=12, tool="potato", check_share=0)
    new = {p for p in base.rglob("*") if p.is_file()} - before
    assert new and all(out.resolve() in p.resolve().parents for p in new), sorted(map(str, new))
    media = sorted((out / "media").iterdir())
    assert len(media) == s["images"] and all(p.is_file() for p in media)
    key = json.loads((out / "study_key.json").read_text())
    assert {it["image_id"] for it in key["items"]} <= set(ids)  # the ids themselves are kept as data


# ---- reads stay inside the source --------------------------------------------------------------
@pytest.fixture
def source_tree(tmp_path):
    src = tmp_path / "src"
    make_photo(src / "in.jpg")
    make_photo(src / "sub" / "nested.jpg")
    make_photo(tmp_path / "outside.jpg")
    (src / "link.jpg").symlink_to(tmp_path / "outside.jpg")
    return tmp_path


@FAST
@given(st.lists(st.sampled_from(["..", ".", "sub", "in.jpg", "nested.jpg", "outside.jpg", "link.jpg", "src"]),
                min_size=1, max_size=5).map("/".join), st.booleans())
def test_manifest_paths_outside_the_source_are_error_rows(source_tree, rel, absolute):
    src = source_tree / "src"
    image = str((src / rel).absolute()) if absolute else rel
    (src / "m.jsonl").write_text(json.dumps({"id": "x", "image": image, "captions": ["a cat"]}) + "\n")
    item = load_manifest(src / "m.jsonl")[0]
    target = src / rel
    inside = target.resolve().is_relative_to(src.resolve())
    if target.is_file() and inside:
        assert item.error is None and item.path
    else:
        assert item.path is None and item.error  # an error row, never a read outside the source
    if target.is_file() and not inside:
        assert "outside the source" in item.error
        allowed = load_manifest(src / "m.jsonl", allow_outside=True)[0]
        assert allowed.error is None and allowed.path


def test_coco_file_name_and_folder_symlinks_stay_inside(source_tree):
    src = source_tree / "src"
    coco = source_tree / "captions.json"
    coco.write_text(json.dumps({"images": [{"id": 1, "file_name": "../outside.jpg"},
                                           {"id": 2, "file_name": str(source_tree / "outside.jpg")},
                                           {"id": 3, "file_name": "link.jpg"}, {"id": 4, "file_name": "in.jpg"}],
                                "annotations": [{"id": 1, "image_id": 4, "caption": "a\x00 red\u202e ball"}]}))
    items = load_coco(coco, src)
    assert [bool(i.error and "outside the source" in i.error) for i in items] == [True, True, True, False]
    assert items[3].captions == ["a red ball"]  # human text normalised: no NUL, no bidi override
    assert all(i.error is None for i in load_coco(coco, src, allow_outside=True))
    folder = {i.image_id: i for i in load_folder(src)}
    assert folder["link"].path is None and "outside the source" in folder["link"].error
    assert folder["sub/nested"].error is None and folder["in"].error is None


# ---- no network unless a remote backend is configured ------------------------------------------
BLOCK = """
import socket, sys
tries = []
def refuse(*a, **k):
    tries.append(a)
    raise OSError("network blocked by the test")
socket.socket.connect = socket.socket.connect_ex = refuse
socket.create_connection = socket.getaddrinfo = refuse
from visassoc.cli import app
try:
    app(prog_name="visassoc", args=sys.argv[1:])
except SystemExit as e:
    print(f"EXIT {e.code} CONNECTS {len(tries)}", file=sys.stderr)
"""


def test_unknown_hf_model_fails_offline_in_one_line_without_any_connection(tmp_path):
    from visassoc.report.synthetic import make_synthetic_run

    run = make_synthetic_run(tmp_path / "run", n_images=4, with_instances=False)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(visassoc.__file__).parents[1]), env.get("PYTHONPATH", "")])
    env["HF_HOME"] = str(tmp_path / "hf")  # an empty cache: the id cannot be there
    p = subprocess.run([sys.executable, "-c", BLOCK, "train", "--data", str(run), "--model", "nosuch/model",
                        "--out", str(tmp_path / "ckpt"), "--device", "cpu"], capture_output=True, text=True,
                       env=env, timeout=300, cwd=tmp_path)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip() and not ln.startswith("WARNING")]
    assert lines[-1] == "EXIT 2 CONNECTS 0", p.stderr[-2000:]
    assert len(lines) == 2 and lines[0].startswith("error: cannot load model 'nosuch/model'"), lines


# ---- model output hygiene ----------------------------------------------------------------------
@pytest.mark.parametrize("text", ["<script>alert(1)</script>", 'x"><svg onload=alert(1)>', "<i>zz</i>",
                                  "a dog\x00 barks", "a dog \u202eskrab", "ok\x85", "bell\x07", "&lt;b&gt;",
                                  "javascript:alert(1)"])
def test_markup_and_control_characters_in_model_output_are_rejected(text):
    from visassoc.text import validate_caption
    from visassoc.untrusted import unsafe_reason

    assert unsafe_reason(text)
    assert validate_caption(f"a puppy {text}", "puppy", "a dog", max_words=20)


@FAST
@given(st.text(max_size=30), st.sampled_from(["\x00", "\x1b", "\x7f", "\x9b", "\u202e", "\u2066", "\u200f"]),
       st.text(max_size=30))
def test_any_control_or_bidi_character_is_a_reason_and_is_removed_from_human_text(a, bad, b):
    from visassoc.untrusted import normalize_human, unsafe_reason

    assert unsafe_reason(a + bad + b)
    clean = normalize_human(a + bad + b)
    assert bad not in clean and unsafe_reason(clean.replace("<", "").replace("&", "")) is None or "markup" in (
        unsafe_reason(clean) or "markup")
    assert all(bad not in c for c in clean_captions([a + bad + b]))


def test_plain_model_text_passes():
    from visassoc.untrusted import unsafe_reason

    for ok in ["a puppy in the park", "joy, sweetness & abundance", "a 5 > 3 day", "l'été à Paris"]:
        assert unsafe_reason(ok) is None, ok


def test_associations_with_markup_are_rejected_with_a_reason(tmp_path, monkeypatch):
    from visassoc.backends.openai_compat import OpenAIBackend, RetryPolicy
    from visassoc.records import LEVELS
    from visassoc.stages.interfaces import AssociationRequest, StageError
    from visassoc.stages.associate import LLMAssociationMiner

    monkeypatch.setenv("VISASSOC_CACHE", str(tmp_path / "cache"))
    bad = ["<script>alert(1)</script>", 'x"><svg onload=1>', "<i>zz</i>"]
    answer = json.dumps({"dog": {str(lv): (bad if lv == 3 else [f"w{lv}a", f"w{lv}b", f"w{lv}c"]) for lv in LEVELS}})
    with FakeOpenAI(responder=lambda body: answer) as s:
        b = OpenAIBackend("m", base_url=s.base_url, retry=RetryPolicy(max_retries=0), show_progress=False)
        out = LLMAssociationMiner(b, per_level=3).mine(
            [AssociationRequest("i", "dog", "dog", "NOUN", "a dog", "A dog.", [])])
    assert isinstance(out[0], StageError) and "markup in model output" in out[0].message


def test_report_stays_autoescaped():
    """Kept in tests/test_report.py::test_model_text_is_escaped (a <script> caption renders escaped)."""
    text = (ROOT / "tests" / "test_report.py").read_text()
    assert "def test_model_text_is_escaped" in text and "&lt;script&gt;" in text


# ---- API keys ----------------------------------------------------------------------------------
def test_api_key_goes_only_to_its_backends_base_url(monkeypatch):
    from visassoc.backends.base import Message
    from visassoc.backends.openai_compat import OpenAIBackend

    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-secret")
    monkeypatch.setenv("LOCAL_KEY", "local-secret")
    monkeypatch.delenv("OTHER_KEY", raising=False)
    with FakeOpenAI() as a, FakeOpenAI() as b:
        OpenAIBackend("m", base_url=a.base_url, api_key_env="LOCAL_KEY", show_progress=False).generate(
            [Message("user", "hi")])
        OpenAIBackend("m", base_url=b.base_url, api_key_env="OTHER_KEY", show_progress=False).generate(
            [Message("user", "hi")])
        auth_a = {r["headers"].get("authorization") for r in a.chat_requests()}
        auth_b = {r["headers"].get("authorization") for r in b.chat_requests()}
    assert auth_a == {"Bearer local-secret"}
    assert not any("secret" in (h or "") for h in auth_b), auth_b  # never the OpenAI key to another server


# ---- no silent data loss: the run's output folder ----------------------------------------------
@pytest.fixture
def folder_source(tmp_path):
    make_photo(tmp_path / "imgs" / "a.jpg")
    (tmp_path / "caps.jsonl").write_text(json.dumps({"image": "a.jpg", "captions": ["a red ball"]}) + "\n")
    return tmp_path


def run_cli(src: Path, out: Path, *extra: str):
    return runner.invoke(app, ["run", "--images", str(src / "imgs"), "--captions", str(src / "caps.jsonl"),
                               "--out", str(out), "-q", *extra])


def test_run_refuses_a_non_empty_folder_that_is_not_a_run(folder_source):
    out = folder_source / "mine"
    out.mkdir()
    (out / "README.md").write_text("my notes")
    (out / "manifest.json").write_text('{"mine": true}')
    for extra in ([], ["--overwrite"]):
        r = run_cli(folder_source, out, *extra)
        one_line_error(r)
        assert "not a visassoc run" in r.output and "README.md" in r.output and "manifest.json" in r.output
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "manifest.json"]
    assert (out / "README.md").read_text() == "my notes"


def _fake_finished_run(out: Path, cfg: RunConfig) -> None:
    """A run folder as `visassoc run` leaves it (marker, parts, tables), made with ``cfg``."""
    from visassoc.engine import guard

    (out / "_work" / "describe-0123").mkdir(parents=True)
    (out / "_work" / "describe-0123" / "part-0.done.json").write_text("{}")
    (out / "captions.parquet").write_bytes(b"old")
    (out / "manifest.json").write_text(json.dumps({"visassoc_version": "0.1.0"}))
    (out / guard.MARKER).write_text(json.dumps({"key": guard.run_key(cfg)}))


def test_run_refuses_another_runs_folder_unless_overwrite_which_says_what_it_replaces(folder_source, monkeypatch):
    from visassoc.engine import pipeline

    out = folder_source / "run"
    cfg = RunConfig(out=out, images=folder_source / "imgs", captions=folder_source / "caps.jsonl", seed=0)
    _fake_finished_run(out, cfg)
    r = run_cli(folder_source, out, "--seed", "1")
    one_line_error(r)
    assert "another source, seed or configuration" in r.output and "seed: 0 -> 1" in r.output
    assert (out / "captions.parquet").read_bytes() == b"old"
    ran = []
    monkeypatch.setattr(pipeline.Runner, "run", lambda self, source: ran.append(sorted(os.listdir(out))) or
                        pipeline.RunResult(out))
    r = run_cli(folder_source, out, "--seed", "1", "--overwrite")
    assert r.exit_code == 0, r.output
    assert "--overwrite: replacing the run" in r.output and "seed: 0 -> 1" in r.output and "_work" in r.output
    assert ran == [[".visassoc.json", ".visassoc.lock"]]  # old parts and tables cleared before the new run
    # the same command again is a resume, not a refusal
    assert run_cli(folder_source, out, "--seed", "1").exit_code == 0


@pytest.mark.parametrize("flags", [["--llm", "nosuchprovider:model"], ["--prompt-set", "nope"],
                                   ["--captions", "missing.jsonl"]])
def test_a_run_that_fails_validation_creates_nothing(folder_source, flags):
    out = folder_source / "new" / "run"
    if flags[0] == "--captions":
        r = runner.invoke(app, ["run", "--images", str(folder_source / "imgs"), "--captions",
                                str(folder_source / flags[1]), "--out", str(out), "-q"])
    else:
        r = run_cli(folder_source, out, *flags)
    one_line_error(r)
    assert not (folder_source / "new").exists()


# ---- one-line errors ---------------------------------------------------------------------------
@pytest.mark.parametrize("data, says", [
    ({"images": [{"id": 1, "file_name": "in.jpg"}], "annotations": {"1": "x"}}, "'annotations' must be a list"),
    ({"images": [{"id": 1, "file_name": "in.jpg"}, {"id": "b", "file_name": "in.jpg"}], "annotations": []},
     "all integers or all strings"),
    ({"images": {"id": 1}, "annotations": []}, "'images' must be a list"),
])
def test_malformed_coco_is_one_line_and_creates_nothing(tmp_path, data, says):
    make_photo(tmp_path / "imgs" / "in.jpg")
    (tmp_path / "c.json").write_text(json.dumps(data))
    with pytest.raises(SourceError, match=says):
        load_coco(tmp_path / "c.json", tmp_path / "imgs")
    r = runner.invoke(app, ["run", "--coco", str(tmp_path / "c.json"), "--images", str(tmp_path / "imgs"),
                            "--out", str(tmp_path / "out"), "-q"])
    one_line_error(r)
    assert says in r.output and not (tmp_path / "out").exists()


def test_report_and_study_out_pointing_at_a_file_is_one_line(tmp_path):
    from visassoc.report.synthetic import make_synthetic_run

    run = make_synthetic_run(tmp_path / "run", n_images=3, with_instances=False)
    f = tmp_path / "file.txt"
    f.write_text("keep")
    for args in (["report", str(run), "--out", str(f), "--bootstrap", "0"], ["study", "export", str(run), "--out", str(f)]):
        r = runner.invoke(app, args)
        one_line_error(r)
        assert "is a file" in r.output
    assert f.read_text() == "keep"


@pytest.mark.parametrize("suffix, body", [(".csv", "picture,poem\na.jpg,the sea\n"),
                                          (".jsonl", '{"picture": "a.jpg", "poem": "the sea"}\n')])
def test_eval_pairs_with_wrong_columns_names_the_expected_ones(tmp_path, suffix, body):
    make_photo(tmp_path / "a.jpg")
    (tmp_path / f"pairs{suffix}").write_text(body)
    r = runner.invoke(app, ["eval", "--benchmark", "pairs", "--root", str(tmp_path / f"pairs{suffix}"),
                            "--model", "tiny-random-clip", "--out", str(tmp_path / "ev")])
    one_line_error(r)
    assert "expected image, text" in r.output and not (tmp_path / "ev").exists()
