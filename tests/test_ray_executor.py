"""`--executor ray` on a real local Ray cluster (2 CPUs): the same tables as the local executor,
whatever the chunking, with resume, model backends over HTTP (the loopback fake OpenAI server
stands in for vLLM) and a worker's error surfacing as the local one-line error."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'visassoc[ray]')")

import visassoc  # noqa: E402
from fake_openai_server import FakeOpenAI  # noqa: E402
from test_pipeline_models import responder  # noqa: E402
from visassoc.config import RunConfig  # noqa: E402

from conftest import dead_port, make_photo  # noqa: E402

TABLES = ("images", "descriptions", "salient", "associations", "captions", "errors")


@pytest.fixture(scope="module")
def local_ray():
    """One Ray instance for the module; env set first so that its workers inherit it."""
    old = os.environ.get("OPENAI_API_KEY")
    os.environ["OPENAI_API_KEY"] = "test-key"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=128 * 2**20)
    yield
    ray.shutdown()
    if old is None:
        os.environ.pop("OPENAI_API_KEY", None)
    else:
        os.environ["OPENAI_API_KEY"] = old


def assert_same_tables(a, b):
    for t in TABLES:
        ta, tb = pq.read_table(a / f"{t}.parquet"), pq.read_table(b / f"{t}.parquet")
        assert ta.num_rows == tb.num_rows, t
        assert ta.equals(tb), f"{t} differs between {a} and {b}"


def kill_mid_run(out, args, stage_dir="associate", timeout=600) -> bool:
    """Start ``visassoc run ARGS --executor ray`` in its own session and SIGKILL the whole group once
    a part of ``stage_dir`` is done. False if the run finished before that. Every process of the
    run (driver and actors) pauses 1 s after each part it commits (tests/part_pause), so the
    kill cannot race the other workers to the end of the stage; ``timeout`` is a hang guard."""
    cmd = [sys.executable, "-m", "visassoc", "run", *args, "--out", str(out), "-q", "--executor", "ray"]
    hook = str(Path(__file__).with_name("part_pause"))
    env = {**os.environ, "VISASSOC_TEST_PART_PAUSE": "1.0",
           "PYTHONPATH": os.pathsep.join(p for p in (hook, os.environ.get("PYTHONPATH")) if p)}
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + timeout
    try:
        while time.time() < deadline and proc.poll() is None:
            if list((out / "_work").glob(f"{stage_dir}-*/part-*.done.json")):
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return True
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return False


def test_ray_killed_mid_run_resumes_to_the_local_tables(local_ray, tmp_path):
    common = dict(demo=True, limit=4, progress=False)
    # one part size throughout: the lexical miner spreads its picks across a part's images, so the part size
    # is in its fingerprint (another size redoes associate, consistently; tests/test_lexical.py)
    local = visassoc.run(RunConfig(out=tmp_path / "local", chunk_size=1, **common), log=lambda *_: None)
    assert local.counts["captions"] > 0 and local.counts["errors"] == 0

    # SIGKILL the driver, raylet and actors once the actors have written part of a stage
    assert kill_mid_run(tmp_path / "ray", ["--demo", "--limit", "4", "--chunk-size", "1", "--ray-workers", "2"])
    assert not (tmp_path / "ray" / "captions.parquet").exists()
    resumed = visassoc.run(RunConfig(out=tmp_path / "ray", chunk_size=1, executor="ray", ray_workers=2, **common))
    assert resumed.new_items["images"] == 0 and 0 < resumed.new_items["associate"] < 4
    assert_same_tables(tmp_path / "local", tmp_path / "ray")
    parts = list((tmp_path / "ray" / "_work").glob("associate-*/part-*.done.json"))
    assert len(parts) >= 2  # the actors wrote their own parts, before and after the kill

    again = visassoc.run(RunConfig(out=tmp_path / "ray", chunk_size=1, executor="ray", **common))
    assert again.total_new == 0
    assert json.loads((tmp_path / "ray" / "manifest.json").read_text())["config"]["executor"] == "ray"


def test_ray_model_stages_over_http_match_local(local_ray, tmp_path):
    photos = tmp_path / "photos"
    for i in range(6):
        make_photo(photos / f"p{i}.jpg", color=(40 * i, 200 - 20 * i, 90), size=(48, 36))
    with FakeOpenAI(responder=responder) as server:
        spec = "openai:fake-vlm"
        bc = tmp_path / "backends.yaml"  # a generous timeout: a loaded 2-core box must not turn into retries
        bc.write_text(f"backends:\n  {spec}: {{base_url: '{server.base_url}', timeout: 60, concurrency: 4}}\n")
        common = dict(images=photos, describe=spec, associate=spec, caption=spec, cache=False, progress=False,
                      backend_config=bc, chunk_size=2)
        loc = visassoc.run(RunConfig(out=tmp_path / "local", **common))
        n_local = len(server.chat_requests())
        visassoc.run(RunConfig(out=tmp_path / "ray", executor="ray", ray_workers=2, **common))
        n_ray = len(server.chat_requests()) - n_local
    assert loc.counts["captions_valid"] > 0
    assert_same_tables(tmp_path / "local", tmp_path / "ray")
    assert n_ray == n_local
    usage = json.loads((tmp_path / "ray" / "manifest.json").read_text())["usage"]
    assert usage["fake-vlm"]["requests"] == n_ray  # summed over the actors


def test_ray_worker_error_is_the_local_one_line_error(local_ray, tmp_path):
    photos = tmp_path / "photos"
    make_photo(photos / "a.jpg")
    cfg = dict(images=photos, describe="openai:m", progress=False, cache=False)
    bc = tmp_path / "dead.yaml"
    bc.write_text(f"backends:\n  openai:m: {{base_url: 'http://127.0.0.1:{dead_port()}/v1', timeout: 0.5}}\n")
    with pytest.raises(Exception) as local_err:
        visassoc.run(RunConfig(out=tmp_path / "l", backend_config=bc, **cfg))
    with pytest.raises(Exception) as ray_err:
        visassoc.run(RunConfig(out=tmp_path / "r", backend_config=bc, executor="ray", ray_workers=1, **cfg))
    assert type(ray_err.value) is type(local_err.value)
    assert str(ray_err.value).splitlines()[0] == str(local_err.value).splitlines()[0]


def test_unreachable_ray_address_fails_in_seconds_with_one_line(tmp_path):
    for address, says in (("127.0.0.1:1", "cannot reach the Ray cluster at 127.0.0.1:1"),
                          ("nonsense", "--ray-address must be 'auto', HOST:PORT or ray://HOST:PORT")):
        r = subprocess.run([sys.executable, "-m", "visassoc", "run", "--demo", "--limit", "1", "--executor", "ray",
                            "--ray-address", address, "--out", str(tmp_path / "o"), "-q"],
                           capture_output=True, text=True, timeout=300)  # a hang guard; speed: benchmarks/bench_fail_fast.py
        assert r.returncode == 1 and says in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
