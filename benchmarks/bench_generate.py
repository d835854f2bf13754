"""Verilog generation for the SVHN-size CNN: time (issue 18's target <= 10 s; the first
target was < 60 s) and the multiplier counts of dense vs pruned variants (pruning must cut
them in proportion to sparsity). `rtlgen.emit.convert` with its default worker processes
(the usable CPUs: 2 here), wall seconds from reading the model to the written design, each
design in a new interpreter (imports not counted); the last row is the CLI's defaults.
``cpu_seconds``: the CPU time of the design's process and its worker processes (less
sensitive to other jobs on the machine than the wall time). ``--repeat N`` runs each design
N times and keeps the fastest run (every run's seconds recorded). The file keeps the earlier
runs under ``history`` (newest first), each with its command, commit and load averages.

    python benchmarks/bench_generate.py [--repeat N]  # writes benchmarks/results/generate.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from svhn_models import svhn_model_files

from rtlgen.api import load_model
from rtlgen.emit import convert
from rtlgen.hardware import HardwareOptions, Multiplier, Parallelism

RESULTS = Path(__file__).parent / "results"


def generate(
    sparsity: float, parallelism: Parallelism, multiplier: Multiplier = Multiplier.LUT
) -> dict:
    json_path, weights_path = svhn_model_files(bits=6, sparsity=sparsity)
    start = time.perf_counter()
    cpu_start = _cpu_seconds()
    graph = load_model(json_path, weights=weights_path, input_type="fixed<16,6>")
    with tempfile.TemporaryDirectory() as tmp:
        design = convert(
            graph,
            Path(tmp) / "svhn",
            HardwareOptions(multiplier=multiplier, parallelism=parallelism),
        )
        size = design.verilog.stat().st_size
    seconds = time.perf_counter() - start
    cpu_seconds = _cpu_seconds() - cpu_start
    m = design.manifest
    return {
        "sparsity": sparsity,
        "parallelism": parallelism.value,
        "multiplier": multiplier.value,
        "seconds": round(seconds, 2),
        # this process's and its finished workers' CPU time: less sensitive to other load
        "cpu_seconds": round(cpu_seconds, 2),
        "verilog_bytes": size,
        "multipliers": m.totals.multipliers,
        "products": m.totals.products,
        "products_nonzero": m.totals.products_nonzero,
        "latency_cycles": m.latency_cycles,
        "ii_cycles": m.ii_cycles,
        "per_layer": [(entry.name, entry.reuse, entry.multipliers) for entry in m.layers],
    }


def _cpu_seconds() -> float:
    """CPU seconds (user + system) of this process and its waited-for children."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return sum(r.ru_utime + r.ru_stime for r in (own, children))


def _in_fresh_process(sparsity: float, parallelism: Parallelism, multiplier: Multiplier) -> dict:
    """`generate` in a new interpreter, as `rtlgen convert` runs (a process that converted
    before forks its workers with its Yosys loaded: they run Yosys as subprocesses, slower)."""
    out = subprocess.run(
        [sys.executable, __file__, "--one", str(sparsity), parallelism.value, multiplier.value],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def _least_of(repeat: int, config: tuple[float, Parallelism, Multiplier]) -> dict:
    """`_in_fresh_process` ``repeat`` times: the fastest run, with every run's seconds."""
    runs = [_in_fresh_process(*config) for _ in range(repeat)]
    row = min(runs, key=lambda r: r["seconds"])
    row["seconds_of_each_run"] = [r["seconds"] for r in runs]
    return row


def _git_commit() -> str:
    return subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=RESULTS
    ).stdout.strip()


def _history(path: Path) -> list[dict]:
    """The earlier runs of ``path``, newest first (a file of bare rows is one run)."""
    if not path.exists():
        return []
    old = json.loads(path.read_text())
    if isinstance(old, list):  # the format before history was kept
        note = "written before history was kept: its commit message says when, at which load"
        return [{"note": note, "rows": old}]
    return [{k: v for k, v in old.items() if k != "history"}, *old.get("history", [])]


def main(repeat: int = 1) -> list[dict]:
    configs = [
        (s, p, Multiplier.LUT) for p in (Parallelism.FULL, Parallelism.AUTO) for s in (0.0, 0.5)
    ]
    # what `rtlgen convert MODEL` builds with no options (auto multipliers, the default
    # latency budget), for the QP6 model of benchmarks/results/svhn_latency.json
    configs.append((0.5, Parallelism.AUTO, Multiplier.AUTO))
    load_before = [round(v, 2) for v in os.getloadavg()]
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    rows = [_least_of(repeat, config) for config in configs]
    print(
        f"CLI defaults (auto multipliers, latency budget auto), 50% pruned: {rows[-1]['seconds']} s, "
        f"latency {rows[-1]['latency_cycles']} cycles"
    )
    for p in ("full", "auto"):
        dense = next(r for r in rows if r["parallelism"] == p and r["sparsity"] == 0.0)
        pruned = next(r for r in rows if r["parallelism"] == p and r["sparsity"] == 0.5)
        ratio = pruned["multipliers"] / dense["multipliers"]
        print(
            f"parallelism={p}: dense {dense['multipliers']} multipliers, 50% pruned {pruned['multipliers']} "
            f"(ratio {ratio:.2f}); generation {dense['seconds']} s / {pruned['seconds']} s; "
            f"latency {dense['latency_cycles']} cycles, II {dense['ii_cycles']}"
        )
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "generate.json"
    document = {
        "benchmark": "generate",
        "command": "python benchmarks/bench_generate.py"
        + (f" --repeat {repeat}" if repeat > 1 else ""),
        "commit": _git_commit(),
        "date": date,
        "machine": f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}",
        "load_average_before": load_before,
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "rows": rows,
        "history": _history(path),
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    return rows


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--one":
        import warnings

        warnings.simplefilter("ignore")  # rsqrt-ulp threshold notes
        row = generate(float(sys.argv[2]), Parallelism(sys.argv[3]), Multiplier(sys.argv[4]))
        print(json.dumps(row))
    else:
        parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
        parser.add_argument("--repeat", type=int, default=1, help="runs per design (least kept)")
        main(parser.parse_args().repeat)
