"""How fast unreachable services fail: timings moved out of the tests (which keep only a hang guard).

    python benchmarks/bench_fail_fast.py

Rows: 100 requests to a refused loopback port with the default retry policy (target < 20 s;
the policy would otherwise retry each request for minutes), and `visassoc run --executor ray`
with an unreachable or malformed --ray-address (target < 60 s each, one line on stderr).
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time


def dead_server_seconds() -> tuple[float, str]:
    from visassoc.backends.base import BackendError, Message
    from visassoc.backends.openai_compat import OpenAIBackend

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    b = OpenAIBackend("m", base_url=f"http://127.0.0.1:{port}/v1", show_progress=False)
    t = time.monotonic()
    try:
        b.generate_many([([Message("user", "x")], None, None)] * 100)
        outcome = "no error (unexpected)"
    except BackendError as e:
        outcome = "one BackendError" if "cannot reach" in str(e) else f"other error: {e}"
    return time.monotonic() - t, outcome


def ray_address_seconds(address: str) -> tuple[float, str]:
    with tempfile.TemporaryDirectory() as d:
        t = time.monotonic()
        r = subprocess.run([sys.executable, "-m", "visassoc", "run", "--demo", "--limit", "1", "--executor", "ray",
                            "--ray-address", address, "--out", os.path.join(d, "o"), "-q"],
                           capture_output=True, text=True, timeout=600)
        lines = len(r.stderr.strip().splitlines())
        return time.monotonic() - t, f"exit {r.returncode}, {lines} stderr line(s)"


def main() -> None:
    print(f"{'case':<42} {'seconds':>8} {'target':>7}  outcome")
    rows = [("100 requests, refused port", *dead_server_seconds(), 20.0)]
    try:
        import ray  # noqa: F401

        for address in ("127.0.0.1:1", "nonsense"):
            rows.append((f"--executor ray --ray-address {address}", *ray_address_seconds(address), 60.0))
    except ImportError:
        print("(ray not installed: the --ray-address rows are skipped)")
    for name, secs, outcome, target in rows:
        print(f"{name:<42} {secs:8.1f} {target:7.0f}  {outcome}{'' if secs < target else '  MISSED'}")


if __name__ == "__main__":
    main()
