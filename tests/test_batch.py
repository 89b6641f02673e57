"""Batch export / submit / status / ingest against the loopback fake server (standing in for the
OpenAI Files+Batches API and for `vllm run-batch`, neither of which can run here)."""
from __future__ import annotations

import json
import re

import pyarrow.parquet as pq
import pytest
from PIL import Image
from typer.testing import CliRunner

from fake_openai_server import FakeOpenAI, prompt_text
from visassoc.backends import images as images_mod
from visassoc.backends.openai_batch import batch_status, download_batch, sidecar, submit_batch
from visassoc.engine.batch import export_requests as export_batch
from visassoc.engine.batch import ingest_batch, write_tables
from visassoc.stages import associate, caption
from visassoc.text import validate_caption
from visassoc.cli.backends import backends_app, batch_app
from visassoc.backends.openai_compat import OpenAIBackend, RetryPolicy
from visassoc.records import LEVELS
from visassoc.stages.interfaces import AssociationRequest, CaptionRequest, DescribeRequest, StageError


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VISASSOC_CACHE", str(tmp_path / "cache"))
    images_mod.clear_memory_cache()


def photos(tmp_path, n):
    out = []
    for i in range(n):
        p = tmp_path / "imgs" / f"im{i}.jpg"
        p.parent.mkdir(exist_ok=True)
        Image.new("RGB", (900, 500), (i * 40 % 255, 90, 20)).save(p)
        out.append(str(p))
    return out


def backend(server, **kw):
    return OpenAIBackend("fake-vlm", base_url=server.base_url, retry=RetryPolicy(max_retries=1, backoff_base=0.01),
                         show_progress=False, **kw)


def assoc_responder(body):
    words = re.findall(r"^- (\S+) \((?:noun|verb|adj)\)$", prompt_text(body), re.M)
    return json.dumps({w: {str(lv): [f"{w}q{lv}{k}" for k in "abc"] for lv in LEVELS} for w in words})


def cap_requests(paths):
    return [CaptionRequest(f"im{i}", p, "dog", "NOUN", "a dog on a beach", "d", lv, f"hound{lv}")
            for i, p in enumerate(paths) for lv in (1, 2)]


def test_export_lines_are_valid_deterministic_and_split(tmp_path):
    paths = photos(tmp_path, 3)
    with FakeOpenAI() as s:
        b = backend(s, max_image_side=256)
        reqs = [DescribeRequest(f"im{i}", p) for i, p in enumerate(paths)] + [DescribeRequest("gone", "/no/such.jpg")]
        parts = export_batch(reqs, b, "describe", tmp_path / "out" / "requests.jsonl", max_lines=2)
        first = [p.read_bytes() for p in parts]
        parts2 = export_batch(reqs, b, "describe", tmp_path / "out" / "requests.jsonl", max_lines=2)
    assert [p.name for p in parts] == ["requests.001.jsonl", "requests.002.jsonl"] and parts == parts2
    assert first == [p.read_bytes() for p in parts2]  # deterministic
    lines = [json.loads(x) for p in parts for x in p.read_text().splitlines()]
    assert [x["custom_id"] for x in lines] == ["describe|im0", "describe|im1", "describe|im2"]
    for x in lines:
        assert x["method"] == "POST" and x["url"] == "/v1/chat/completions"
        assert x["body"]["model"] == "fake-vlm" and x["body"]["response_format"]["type"] == "json_schema"
        assert x["body"]["messages"][-1]["content"][0]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    assert sidecar(tmp_path / "out" / "requests.jsonl", "meta.jsonl").exists()


def test_openai_batch_round_trip_and_idempotent_ingest(tmp_path):
    req_path = tmp_path / "requests.jsonl"
    with FakeOpenAI(responder=assoc_responder, batch_polls_to_finish=2) as s:
        b = backend(s)
        reqs = [AssociationRequest(f"im{i}", w, w, "NOUN", "a dog on a beach", "desc") for i in range(3)
                for w in ("dog", "beach")]
        export_batch(reqs, b, "associate", req_path)
        client = b.sync_client()
        state = submit_batch(req_path, client)
        assert submit_batch(req_path, client) == state  # resubmitting does not duplicate
        assert len(s.batches) == 1
        seen = []
        final = batch_status(req_path, client, wait=True, poll_s=0.01, echo=seen.append)
        assert final[0]["status"] == "completed" and "completed 3/3" in seen[-1]
        outs, errs = download_batch(req_path, client)
    _, results, info = ingest_batch(req_path, outs, errs)
    assert len(results) == 6 and all(isinstance(r, dict) for r in results)
    assert results[0][5] == ["dogq5a", "dogq5b", "dogq5c"] and info["missing"] == 0
    rows = associate.result_rows(reqs, results, "openai:fake-vlm", 3)
    t1 = write_tables(rows, tmp_path / "run")
    snap = {k: pq.read_table(p).to_pylist() for k, p in t1.items()}
    assert len(snap["associations"]) == 6 * 5 * 3 and snap["errors"] == []
    _, results2, _ = ingest_batch(req_path, outs + outs, errs)  # re-ingest, even with duplicated lines
    t2 = write_tables(associate.result_rows(reqs, results2, "openai:fake-vlm", 3), tmp_path / "run")
    assert {k: pq.read_table(p).to_pylist() for k, p in t2.items()} == snap


def test_expired_batch_keeps_completed_lines_and_errors_the_rest(tmp_path):
    paths = photos(tmp_path, 3)
    req_path = tmp_path / "caps.jsonl"
    with FakeOpenAI(responder=lambda body: json.dumps({"caption": "a happy hound1 runs"}),
                    batch_expire_after=2) as s:
        b = backend(s)
        reqs = cap_requests(paths)
        export_batch(reqs, b, "caption", req_path)
        client = b.sync_client()
        submit_batch(req_path, client)
        assert batch_status(req_path, client, wait=True, poll_s=0.01, echo=lambda *_: None)[0]["status"] == "expired"
        outs, errs = download_batch(req_path, client)
    _, results, info = ingest_batch(req_path, outs, errs)
    assert len(results) == 6 and results[:2] == ["a happy hound1 runs"] * 2
    assert all(isinstance(r, StageError) and "batch_expired" in r.message for r in results[2:])
    rows = caption.result_rows(reqs, results, "openai:fake-vlm", "fake-vlm", 1, 10)
    assert [r["valid"] for r in rows["captions"]] == [True, False]  # level 2 must contain "hound2"
    assert len(rows["errors"]) == 4 and rows["errors"][0]["level"] == 1


def test_vllm_run_batch_output_missing_and_invalid_lines(tmp_path):
    """`vllm run-batch -o out.jsonl` writes the same line format; emulate it from the exported file."""
    paths = photos(tmp_path, 2)
    req_path = tmp_path / "desc.jsonl"
    with FakeOpenAI() as s:
        b = backend(s)
        reqs = [DescribeRequest("im0", paths[0]), DescribeRequest("im1", paths[1]), DescribeRequest("im0", paths[0])]
        export_batch(reqs, b, "describe", req_path)
        lines = [json.loads(x) for x in req_path.read_text().splitlines()]
        out = []
        for i, line in enumerate(lines[:1]):  # im1's line is missing from the output
            status, body, _, _ = s.chat(line["body"])
            out.append({"id": f"vllm-{i}", "custom_id": line["custom_id"],
                        "response": {"status_code": status, "request_id": "r", "body": body}, "error": None})
    out.append({"id": "x", "custom_id": "describe|im1", "response": {"status_code": 200, "body": {
        "choices": [{"message": {"content": "no json here"}}]}}, "error": None})
    (tmp_path / "out.jsonl").write_text("\n".join(json.dumps(x) for x in out) + "\n")
    _, results, info = ingest_batch(req_path, [tmp_path / "out.jsonl"])
    assert results[0].short_caption and results[2] == results[0]  # duplicate request, one line
    assert isinstance(results[1], StageError) and "no re-ask" in results[1].message
    out.pop()
    (tmp_path / "out.jsonl").write_text("\n".join(json.dumps(x) for x in out) + "\n")
    _, results, info = ingest_batch(req_path, [tmp_path / "out.jsonl"])
    assert isinstance(results[1], StageError) and "no output line" in results[1].message and info["missing"] == 1


def test_batch_captions_use_the_one_validator():
    """Batch rows are validated by ``text.validate_caption``, as a run's captions are (min and max
    words from the export header); there is no second, weaker rule for batches."""
    req = CaptionRequest("i", "p", "dog", "NOUN", "a dog on a beach", "d", 2, "puppy")
    row = lambda cap, lo=1, hi=10: caption.result_rows([req], [cap], "b", "m", lo, hi)["captions"][0]  # noqa: E731
    assert row("Puppies chase the waves")["valid"] and row("Puppies chase the waves")["reason"] is None
    for cap in ("a dog on a beach", "one two three four five six seven eight nine ten puppy", "a puppyish mood"):
        assert row(cap)["reason"] == validate_caption(cap, "puppy", "a dog on a beach") is not None
    assert not row("a puppy", lo=3)["valid"]  # min_words counts, as in a run
    assert not row("Puppies chase the waves", hi=3)["valid"]


def test_cli_backends_check_and_batch_commands(tmp_path):
    photos(tmp_path, 2)  # the --images folder
    runner = CliRunner()
    def responder(body):
        if "short_caption" in prompt_text(body):
            return json.dumps({"description": "A field.", "short_caption": "a field"})
        return '{"answer": "ok"}' if body.get("response_format") else "red"

    with FakeOpenAI(json_schema_supported=False, responder=responder) as s:
        cfg = tmp_path / "backends.yaml"
        cfg.write_text(f"vlm: local\nbackends:\n  local:\n    spec: openai:fake-vlm\n    base_url: {s.base_url}\n"
                       "    structured: json_object\n")  # what `check` reports this server supports
        r = runner.invoke(backends_app, ["check", "--config", str(cfg)])  # probes every mode regardless
        assert r.exit_code == 0, r.output
        assert re.search(r"json_schema\s+FAIL", r.output) and re.search(r"json_object\s+ok", r.output)
        assert re.search(r"images\s+ok .*'red'", r.output)
        out = tmp_path / "b" / "requests.jsonl"
        r = runner.invoke(batch_app, ["export", "--stage", "describe", "--images", str(tmp_path / "imgs"),
                                      "--config", str(cfg), "--out", str(out)])
        assert r.exit_code == 0, r.output
        assert len(out.read_text().splitlines()) == 2
        assert runner.invoke(batch_app, ["submit", "--requests", str(out)]).exit_code == 0
        r = runner.invoke(batch_app, ["status", "--requests", str(out), "--wait", "--poll", "0.01"])
        assert r.exit_code == 0 and "completed 2/2" in r.output, r.output
        r = runner.invoke(batch_app, ["ingest", "--requests", str(out), "--out", str(tmp_path / "run")])
        assert r.exit_code == 0, r.output
    assert pq.read_table(tmp_path / "run" / "descriptions.parquet").column("short_caption").to_pylist() == [
        "a field", "a field"]
    assert len(pq.read_table(tmp_path / "run" / "errors.parquet")) == 0
    r = runner.invoke(batch_app, ["export", "--stage", "nope", "--images", str(tmp_path), "--vlm", "openai:x",
                                  "--out", str(tmp_path / "x.jsonl")])
    assert r.exit_code == 2 and "--stage must be" in r.output


def test_cli_export_from_a_requests_file(tmp_path):
    reqs = tmp_path / "assoc_requests.jsonl"
    reqs.write_text(json.dumps({"image_id": "i1", "word": "dog", "lemma": "dog", "pos": "NOUN",
                                "caption": "a dog", "description": "A dog."}) + "\n")
    runner = CliRunner()
    with FakeOpenAI() as s:
        r = runner.invoke(batch_app, ["export", "--stage", "associate", "--requests", str(reqs), "--llm",
                                      "openai:fake", "--out", str(tmp_path / "a.jsonl")],
                          env={"OPENAI_BASE_URL": s.base_url, "OPENAI_API_KEY": "k"})
    assert r.exit_code == 0, r.output
    line = json.loads((tmp_path / "a.jsonl").read_text())
    assert line["custom_id"] == "associate|i1" and "dog" in line["body"]["response_format"]["json_schema"]["schema"][
        "required"]
    reqs.write_text('{"image_id": "i1", "colour": "red"}\n')
    r = runner.invoke(batch_app, ["export", "--stage", "associate", "--requests", str(reqs), "--llm", "openai:fake",
                                  "--out", str(tmp_path / "b.jsonl")], env={"OPENAI_API_KEY": "k"})
    assert r.exit_code == 2 and "assoc_requests.jsonl:1: not a AssociationRequest" in r.output


def test_cli_backends_check_exits_non_zero_when_a_stage_cannot_be_served(tmp_path):
    """An LLM that never answers JSON cannot run `associate`: FAIL must not exit 0."""
    runner = CliRunner()
    with FakeOpenAI(reject_formats=("json_schema", "json_object"), responder=lambda body: "I like dogs.") as s:
        env = {"OPENAI_BASE_URL": s.base_url, "OPENAI_API_KEY": "k"}
        r = runner.invoke(backends_app, ["check", "--llm", "openai:chatty"], env=env)
        assert r.exit_code == 1, r.output
        assert re.search(r"json_text\s+FAIL", r.output) and "associate needs it" in r.output
    with FakeOpenAI(reject_formats=("json_schema",), responder=lambda body: '{"answer": "ok"}') as s:
        r = runner.invoke(backends_app, ["check", "--llm", "openai:jsonish"],
                          env={"OPENAI_BASE_URL": s.base_url, "OPENAI_API_KEY": "k"})
        assert r.exit_code == 0, r.output  # json_object is enough


# ---- fuzz: any output line ingests as a result or a one-line error row -------------------------
from hypothesis import HealthCheck, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from visassoc.engine.batch import ingest_to_cache  # noqa: E402
from visassoc.engine.store import rows_to_table  # noqa: E402

_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
                     lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
                     max_leaves=12)
_CIDS = ["associate|i0", "associate|i1", "associate|i2"]


def _good_line(cid: str) -> dict:
    ladder = {"dog": {str(lv): [f"dogq{lv}{k}" for k in "abc"] for lv in LEVELS}}
    return {"custom_id": cid, "response": {"status_code": 200, "body": {
        "choices": [{"message": {"content": json.dumps(ladder)}}], "usage": {"prompt_tokens": 5}}}, "error": None}


def _spoil(line: dict, path: list[str], value) -> dict:
    """``line`` with the node at ``path`` (keys, "0" for a list's first item) replaced by ``value``."""
    line = json.loads(json.dumps(line))
    node = line
    for k in path[:-1]:
        node = node[int(k)] if isinstance(node, list) else node[k]
    if isinstance(node, list):
        node[int(path[-1])] = value
    else:
        node[path[-1]] = value
    return line


_PATHS = [["custom_id"], ["response"], ["error"], ["response", "status_code"], ["response", "body"],
          ["response", "body", "choices"], ["response", "body", "usage"], ["response", "body", "usage", "prompt_tokens"],
          ["response", "body", "choices", "0"], ["response", "body", "choices", "0", "message"],
          ["response", "body", "choices", "0", "message", "content"]]
_LINE = st.one_of(
    _JSON,  # any JSON value at all, object or not
    st.builds(lambda cid, v: {"custom_id": cid, "response": v}, st.sampled_from(_CIDS), _JSON),
    st.builds(lambda cid, path, v: _spoil(_good_line(cid), path, v), st.sampled_from(_CIDS), st.sampled_from(_PATHS),
              _JSON),
    st.builds(_good_line, st.sampled_from(_CIDS)))


@pytest.fixture(scope="module")
def assoc_export(tmp_path_factory):
    """Three association requests exported once (no server: export only builds request bodies)."""
    d = tmp_path_factory.mktemp("fuzzbatch")
    reqs = [AssociationRequest(f"i{i}", "dog", "dog", "NOUN", "a dog on a beach", "A dog.") for i in range(3)]
    b = OpenAIBackend("fake-llm", base_url="http://127.0.0.1:1/v1", show_progress=False)
    export_batch(reqs, b, "associate", d / "requests.jsonl")
    return d / "requests.jsonl", reqs


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(out_lines=st.lists(_LINE, max_size=4), err_lines=st.lists(_JSON | _LINE, max_size=2))
@example(out_lines=[{"custom_id": "associate|i0", "response": "oops"}], err_lines=[]).via("the issue's line")
@example(out_lines=[_spoil(_good_line("associate|i0"), ["response", "body", "choices", "0", "message"], "hi")],
         err_lines=[]).via("the issue's line")
@example(out_lines=[["a list"], "a string", {"custom_id": ["unhashable"]}], err_lines=[{"custom_id": {}}])
def test_ingest_turns_any_output_line_into_a_result_or_a_one_line_error_row(assoc_export, tmp_path, out_lines,
                                                                           err_lines):
    req_path, reqs = assoc_export
    outs, errs = tmp_path / "out.jsonl", tmp_path / "err.jsonl"
    outs.write_text("".join(json.dumps(x) + "\n" for x in out_lines))
    errs.write_text("".join(json.dumps(x) + "\n" for x in err_lines))
    got, results, info = ingest_batch(req_path, [outs], [errs])
    assert len(results) == len(reqs)
    lines_for = {cid: [x for x in out_lines if isinstance(x, dict) and x.get("custom_id") == cid] for cid in _CIDS}
    for req, res in zip(reqs, results):
        mine = lines_for[f"associate|{req.image_id}"]
        if mine and all(x == _good_line(f"associate|{req.image_id}") for x in mine):
            assert not isinstance(res, StageError), res  # well-formed answers are kept
        if isinstance(res, StageError):
            assert res.message.strip() and "\n" not in res.message, res.message
            if not mine and not any(isinstance(x, dict) and x.get("custom_id") == f"associate|{req.image_id}"
                                    for x in err_lines):
                assert "no output line" in res.message, res.message  # never mentioned: reported missing
        else:
            assert sorted(res) == list(LEVELS)
    rows = associate.result_rows(reqs, results, "openai:fake-llm", 3)
    assert len({r["image_id"] for r in rows["associations"]} | {e["image_id"] for e in rows["errors"]}) == 3
    assert not {r["image_id"] for r in rows["associations"]} & {e["image_id"] for e in rows["errors"]}
    rows_to_table("associations", rows["associations"])
    rows_to_table("errors", rows["errors"])
    counts = ingest_to_cache(req_path, [outs])  # the run's cache path reads the same lines
    assert counts["stored"] + counts["missing"] == counts["calls"] == 3
