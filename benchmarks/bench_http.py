"""Throughput of OpenAIBackend against a loopback server with fixed latency, by requests in flight.

The server (tests/fake_openai_server.py) runs in its own process so it does not share the
client's GIL. Ideal throughput is in_flight / latency; the target is >= 0.8 x that. On a small
shared machine the client's per-request CPU (the openai SDK + asyncio) caps the rate, so the
table also prints client CPU per request and the CPU-bound ceiling (cores / cpu per request).

    python benchmarks/bench_http.py [--latency 0.05] [--requests 20] [--levels 1,4,16,32]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--latency", type=float, default=0.05, help="server latency per request (s)")
    ap.add_argument("--requests", type=int, default=20, help="requests per in-flight slot at each level")
    ap.add_argument("--levels", default="1,4,16,32")
    a = ap.parse_args()

    from visassoc.backends.base import GenParams, Message
    from visassoc.backends.openai_compat import OpenAIBackend

    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "fake_openai_server.py"), "--latency",
                             str(a.latency), "--seconds", "900"], stdout=subprocess.PIPE, text=True)
    try:
        base_url = proc.stdout.readline().strip()
        print(f"server {base_url}  latency {a.latency * 1000:.0f} ms  client cores {os.cpu_count()}  "
              f"load {os.getloadavg()[0]:.1f}")
        print(f"{'in flight':>9} {'requests':>8} {'seconds':>8} {'req/s':>8} {'ideal':>8} {'eff':>6} "
              f"{'cpu ms/req':>10} {'cpu ceiling':>11}")
        call = ([Message("user", "Reply with OK.")], None, GenParams(max_tokens=5))
        for c in [int(x) for x in a.levels.split(",")]:
            b = OpenAIBackend("bench", base_url=base_url, concurrency=c, show_progress=False)
            b.generate_many([call] * c)  # warm: connections, imports
            n = c * a.requests
            t, cpu = time.perf_counter(), time.process_time()
            gens = b.generate_many([call] * n)
            dt, cpu = time.perf_counter() - t, time.process_time() - cpu
            assert all(g.error is None for g in gens), next(g.error for g in gens if g.error)
            ideal = c / a.latency
            print(f"{c:>9} {n:>8} {dt:>8.2f} {n / dt:>8.1f} {ideal:>8.1f} {n / dt / ideal:>6.2f} "
                  f"{cpu / n * 1000:>10.2f} {n / cpu:>11.0f}")
            b.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()
