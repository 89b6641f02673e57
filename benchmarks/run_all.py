"""Run every benchmark with modest sizes (about 7 minutes on 2 cores) and collect the tables.

Each script runs in its own process; its stdout (the table) and wall time go into
``benchmarks/results.json`` with the machine's description. bench_pipeline and bench_memory
also hand over their numbers as JSON. check_run.py is not a benchmark (it checks a finished run).

    python benchmarks/run_all.py [--only pipeline,memory] [--out benchmarks/results.json] [--timeout 400]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from tqdm import tqdm

HERE = Path(__file__).resolve().parent

# name -> arguments; "{json}" is replaced by a temp file the script writes its numbers to
BENCHMARKS = {
    "salient": ["bench_salient.py", "--n", "2000"],
    "lexical": ["bench_lexical.py", "--n", "100"],
    "http": ["bench_http.py"],
    "fail_fast": ["bench_fail_fast.py"],
    "retrieval": ["bench_retrieval.py"],
    "train": ["bench_train.py", "--arch", "tiny"],
    "smollm": ["bench_smollm.py", "--max-tokens", "16", "--batch", "2"],
    "pipeline": ["bench_pipeline.py", "--n", "2000", "--offline-n", "100", "--json", "{json}"],
    "memory": ["bench_memory.py", "--sizes", "1000,10000", "--json", "{json}"],
    "ray": ["bench_ray.py", "--n", "200"],
    "cli": ["bench_cli.py"],
    "cost": ["bench_cost.py", "--images", "20", "--window", "8"],
    "readability": ["bench_readability.py", "--fluency"],
}


def machine() -> dict:
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else None
    mem = next((int(ln.split()[1]) // 1024 for ln in Path("/proc/meminfo").read_text().splitlines()
                if ln.startswith("MemTotal")), None) if Path("/proc/meminfo").exists() else None
    versions = {}
    for pkg in ("visassoc", "torch", "transformers", "spacy", "pyarrow", "numpy"):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return {"cores": os.cpu_count(), "usable_cores": len(os.sched_getaffinity(0)), "cpu_model": cpu,
            "memory_mb": mem, "python": platform.python_version(), "platform": platform.platform(),
            "versions": versions, "load_avg_at_start": os.getloadavg()}


def run_one(name: str, args: list[str], timeout: int, tmp: Path) -> dict:
    numbers = tmp / f"{name}.json"
    cmd = [sys.executable, str(HERE / args[0])] + [str(numbers) if a == "{json}" else a for a in args[1:]]
    env = {**os.environ, "TQDM_DISABLE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=HERE.parent)
        rc, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as e:
        rc, out, err = "timeout", (e.stdout or b"").decode(errors="replace"), f"killed after {timeout} s"
    shown = ["FILE.json" if a == "{json}" else a for a in args[1:]]
    rec = {"command": " ".join(["python", f"benchmarks/{args[0]}"] + shown), "returncode": rc,
           "wall_s": round(time.perf_counter() - t0, 2), "stdout": out}
    if rc != 0:
        rec["stderr_tail"] = err[-3000:]
    if numbers.exists():
        rec["numbers"] = json.loads(numbers.read_text())
    return rec


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", help="comma-separated subset of: " + ", ".join(BENCHMARKS))
    ap.add_argument("--out", type=Path, default=HERE / "results.json")
    ap.add_argument("--timeout", type=int, default=400, help="seconds per benchmark")
    args = ap.parse_args(argv)
    names = args.only.split(",") if args.only else list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        ap.error(f"unknown benchmark(s) {unknown}; choose from {list(BENCHMARKS)}")
    results = {"machine": machine(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "benchmarks": {}}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-all-") as tmp:
        bar = tqdm(names, desc="benchmarks", unit="script")
        for name in bar:
            bar.set_postfix_str(name)
            results["benchmarks"][name] = run_one(name, BENCHMARKS[name], args.timeout, Path(tmp))
            args.out.write_text(json.dumps(results, indent=2, default=str))  # keep what finished so far
    results["total_wall_s"] = round(time.perf_counter() - t0, 1)
    args.out.write_text(json.dumps(results, indent=2, default=str))
    m = results["machine"]
    print(f"{m['cpu_model']}, {m['usable_cores']} cores, Python {m['python']}, torch {m['versions'].get('torch')}\n")
    print("| benchmark | command | result | wall s |\n|---|---|---|---:|")
    for name, r in results["benchmarks"].items():
        status = "ok" if r["returncode"] == 0 else f"FAILED ({r['returncode']})"
        print(f"| {name} | `{r['command']}` | {status} | {r['wall_s']:.1f} |")
    print(f"\ntotal {results['total_wall_s']:.0f} s; tables in {args.out}")
    for name, r in results["benchmarks"].items():
        print(f"\n### {name}\n\n{r['stdout'].strip()}")
    return 0 if all(r["returncode"] == 0 for r in results["benchmarks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
