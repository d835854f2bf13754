"""Wall time of a sweep through the Dask engine on 1 worker against N workers.

    python benchmarks/bench_sweep.py                       # the quick SVHN study, 1 vs 2 workers
    python benchmarks/bench_sweep.py --spec my.yml --workers 1 2 4

Each run starts from nothing: a new output folder (so no step is in the store) and a new
rtlgen cache folder ($RTLGEN_CACHE_DIR: no Verilator build is reused between runs). The
command is the user's: by default ``rtlgen bench svhn --quick -o OUT --workers N`` (the quick
study's spec, benchmarks/sweeps/svhn_quick.yml, run by the sweep engine, then its tables),
with --spec ``rtlgen sweep SPEC -o OUT --workers N``. Results (wall time per run, the scaling
ratio, every step's own seconds, the machine) go to benchmarks/results/sweep_<spec name>.json
(sweep_svhn_quick.json by default).
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
from pathlib import Path

HERE = Path(__file__).parent
#: the spec `rtlgen bench svhn --quick` runs (tests/rtlgen/test_study.py keeps them equal)
QUICK_STUDY_SPEC = HERE / "sweeps" / "svhn_quick.yml"


def command(spec: Path | None, out: Path, workers: int) -> tuple[list[str], Path]:
    """The user's command, and the sweep folder it writes results.json into."""
    rtlgen = [sys.executable, "-m", "rtlgen"]
    if spec is None:
        bench = ["bench", "svhn", "--quick", "-o", str(out), "--workers", str(workers)]
        return [*rtlgen, *bench], out / "sweep"
    return [*rtlgen, "sweep", str(spec), "-o", str(out), "--workers", str(workers)], out


def run_once(spec: Path | None, workers: int, scratch: Path) -> dict:
    out = scratch / f"out-{workers}"
    env = {**os.environ, "RTLGEN_CACHE_DIR": str(scratch / f"cache-{workers}")}
    argv, sweep_out = command(spec, out, workers)
    started = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(
            f"sweep on {workers} worker(s) failed (exit {proc.returncode}): {proc.stderr.strip()}"
        )
    results = json.loads((sweep_out / "results.json").read_text())
    failed = [row for row in results["rows"] if row["status"] != "ok"]
    if failed:  # a sweep whose points fail early is faster: its time measures nothing
        reasons = "; ".join(
            f"{_point(row)}: {row.get('reason') or row['status']}" for row in failed
        )
        raise SystemExit(f"sweep on {workers} worker(s): {len(failed)} point(s) failed: {reasons}")
    step_seconds: dict[str, float] = {}
    seen: set[str] = set()
    for row in results["rows"]:
        for step, info in row["steps"].items():
            if info["digest"] not in seen and not info["cached"]:
                seen.add(info["digest"])
                step_seconds[step] = round(step_seconds.get(step, 0.0) + info["seconds"], 1)
    return {
        "workers": workers,
        "wall_seconds": round(wall, 1),
        "sweep_seconds": results["seconds"],
        "points": results["points"],
        "status": results["status"],
        "steps_computed": results["steps_computed"],
        "step_seconds_total": step_seconds,
        "busy_seconds": round(sum(step_seconds.values()), 1),
        "log_tail": proc.stdout.strip().splitlines()[-12:],
    }


def _point(row: dict) -> str:
    """A result row's axis values (the keys before its status), e.g. ``sparsity=0.0 multiplier=dsp``."""
    names = list(row)[: list(row).index("status")]
    return " ".join(f"{name}={row[name]}" for name in names)


def _scheduler_group() -> str | None:
    """Linux's autogroup line for this process (``/autogroup-N nice K``), if the kernel has one."""
    try:
        return Path("/proc/self/autogroup").read_text().strip()
    except OSError:
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--spec", type=Path, default=None, help="a sweep spec (default: rtlgen bench svhn --quick)"
    )
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)
    spec = args.spec or QUICK_STUDY_SPEC  # what runs, and the results' name
    output = args.output or HERE / "results" / f"sweep_{spec.stem}.json"
    load_at_start = list(os.getloadavg())  # other work on the machine skews the ratio
    runs = []
    with tempfile.TemporaryDirectory(prefix="rtlgen-bench-sweep-") as scratch:
        for workers in args.workers:
            print(f"{spec.name}: {workers} worker(s) ...", flush=True)
            run = run_once(args.spec and args.spec.resolve(), workers, Path(scratch))
            print(
                f"  {run['wall_seconds']} s wall, {run['busy_seconds']} s of steps, {run['status']}",
                flush=True,
            )
            runs.append(run)
    base = runs[0]["wall_seconds"]
    report = {
        "spec": str(spec),
        "spec_text": spec.read_text(),
        "command": (
            "rtlgen bench svhn --quick -o OUT --workers N"
            if args.spec is None
            else "rtlgen sweep SPEC -o OUT --workers N"
        )
        + " (new OUT and RTLGEN_CACHE_DIR per run)",
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_average_at_start": load_at_start,
            "load_average_at_end": list(os.getloadavg()),
            # other work may run beside the sweep at a lower priority: the scheduler group's nice
            "scheduler_group": _scheduler_group(),
        },
        "runs": runs,
        "speedup_vs_first": {str(r["workers"]): round(base / r["wall_seconds"], 2) for r in runs},
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {output}: speedup {report['speedup_vs_first']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
