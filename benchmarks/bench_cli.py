"""Start-up time of ``visassoc --help`` and every sub-command's ``--help``, as a ratio to ``python -c pass``.

Target: each under 0.5 s wall (the CLI must not import torch, transformers or rich to print help).
Each command runs ``--repeat`` times in a fresh interpreter; the table shows the best run (the
machine is shared, so the minimum is the honest figure), peak RSS, and whether torch got imported.

    python benchmarks/bench_cli.py [--repeat 3]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

COMMANDS = [[], ["run"], ["status"], ["train"], ["eval"], ["search"], ["report"], ["estimate"],
            ["study", "export"], ["study", "analyze"], ["backends", "check"], ["batch", "export"],
            ["batch", "submit"], ["batch", "status"], ["batch", "ingest"]]
TARGET_S = 0.5
# prints whether torch was imported after the CLI printed its help (SystemExit is how click ends)
PROBE = ("import sys\nfrom visassoc.cli import app\ntry:\n    app(prog_name='visassoc', args=sys.argv[1:])\n"
         "except SystemExit:\n    pass\nprint('TORCH' if 'torch' in sys.modules else 'NOTORCH', file=sys.stderr)")


def timed(argv: list[str]) -> tuple[float, float, str, float]:
    """(wall seconds, peak RSS MB, stderr, CPU seconds) of one fresh interpreter (RSS and CPU of
    that process alone; CPU is what the command costs, wall also holds the machine's load)."""
    t = time.perf_counter()
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, "COLUMNS": "100"})
    err = p.stderr.read()
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {err.strip()[-300:]}")
    return wall, usage.ru_maxrss / 1024, err, usage.ru_utime + usage.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    base = min(timed([sys.executable, "-c", "pass"])[0] for _ in range(a.repeat))
    print(f"python -c pass: {base:.3f} s   load {os.getloadavg()[0]:.1f}   target < {TARGET_S} s per --help")
    print(f"{'command':<32} {'best s':>7} {'ratio':>6} {'cpu s':>6} {'RSS MB':>7} {'torch':>6} {'ok':>3}")
    worst = 0.0
    for cmd in COMMANDS:
        runs = [timed([sys.executable, "-c", PROBE, *cmd, "--help"]) for _ in range(a.repeat)]
        wall = min(r[0] for r in runs)
        torch = "TORCH" in runs[0][2].split()
        worst = max(worst, wall)
        print(f"{'visassoc ' + ' '.join(cmd) + ' --help':<32} {wall:>7.3f} {wall / base:>6.1f} "
              f"{min(r[3] for r in runs):>6.2f} {max(r[1] for r in runs):>7.0f} {'yes' if torch else 'no':>6} "
              f"{'yes' if wall < TARGET_S and not torch else 'NO':>3}")
    print(f"slowest {worst:.3f} s: target {'met' if worst < TARGET_S else 'MISSED'}")


if __name__ == "__main__":
    main()
