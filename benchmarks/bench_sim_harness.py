"""Bulk simulation with the compiled C++ harness (issue 17): build time and images/s after the
build, for the demo CNN and the SVHN QP6 design (6-bit, 50 % pruned, random weights).

    python benchmarks/bench_sim_harness.py                      # demo 10,000 + SVHN 10,000 images
    python benchmarks/bench_sim_harness.py --svhn-images 0      # demo only
    -> benchmarks/results/sim_harness.json

Per design: `rtlgen convert` time, the integer reference's time, the harness's Verilator build
from an empty cache (no run-time objects cached either: what a new machine pays), then one
`simulate(..., harness="cpp")` of all images with the build cached. images/s is given three
ways: over the C++ loop's wall time (`seconds` of sim_result.json), over its processor time
(`cpu_seconds`: what the run gets on an idle core; the machine is shared, so wall time
depends on the load, recorded as `load_average` before the build and after the run), and over
the whole `simulate` call (writing the vectors, the run, the checks in numpy). The build is
given in wall and processor seconds (Verilator and the compiler, all jobs together).
`total_seconds` = convert + reference + build + simulate: the issue's "10,000 images including
the build" figure. Each run moves the figures it replaces into `history` (with their load
average and the commit that wrote them), so a comparison with earlier runs stays honest.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from rtlgen.api import load_model
from rtlgen.emit import convert
from rtlgen.quant.reference import quantize_input, run_int
from rtlgen.sim_tb.harness_cpp import _verilator_args, build_harness
from rtlgen.sim_tb.runner import simulate
from rtlgen.sim_tb.tb_manifest import read_manifest

RESULTS = Path(__file__).parent / "results"
TARGETS = {"demo": 10_000, "svhn_qp6": 1_000}  # images/s after the build (issue 17)
#: the fields of a replaced result kept in `history`
HISTORY_FIELDS = (
    "verilog_bytes", "threads", "verilator_args", "images", "passed", "convert_seconds",
    "build_seconds_empty_cache", "build_cpu_seconds_empty_cache", "load_average_build",
    "run_seconds_cpu", "images_per_second_cpu", "images_per_second_wall", "total_seconds",
    "load_average",
)


def _demo_graph():
    from rtlgen.demo import demo_files

    model_json, weights, samples = demo_files()
    with np.load(samples) as data:
        graph = load_model(model_json, weights=weights, input_type=str(data["input_type"]))
    return graph, "demo CNN (rtlgen demo: 8x8x1 -> conv, pool, conv, dense 10, softmax)"


def _svhn_graph():
    sys.path.insert(0, str(Path(__file__).parent))
    from svhn_models import svhn_model_files

    json_path, weights_path = svhn_model_files(bits=6, sparsity=0.5)
    graph = load_model(json_path, weights=weights_path, input_type="fixed<16,6>")
    return graph, "SVHN CNN QP6 (6-bit, 50% pruned, random weights), input fixed<16,6>"


def _inputs(name: str, graph, images: int) -> np.ndarray:
    if name == "svhn_qp6":
        from rtlgen.datasets import synthetic_svhn

        x, _ = synthetic_svhn(images, seed=3)
        return quantize_input(graph, x)
    t = graph.input.out_type  # the demo: random mantissas over the whole input range
    rng = np.random.default_rng(3)
    return rng.integers(t.min_int, t.max_int + 1, size=(images, *graph.input_shape))


def measure(name: str, images: int, tmp: Path, threads: int = 1) -> dict:
    graph, description = _demo_graph() if name == "demo" else _svhn_graph()
    start = time.perf_counter()
    design = convert(graph, tmp / name)
    convert_seconds = time.perf_counter() - start
    x_int = _inputs(name, graph, images)
    start = time.perf_counter()
    y_int = run_int(graph, x_int)
    reference_seconds = time.perf_counter() - start
    build_root = tmp / f"cache_{name}"
    manifest = read_manifest(design.outdir)
    load_build = [round(v, 2) for v in os.getloadavg()]
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    build_harness(manifest, build_root, threads=threads, object_cache=tmp / f"objcache_{name}")
    build_seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    build_cpu = (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
    start = time.perf_counter()
    result = simulate(design.outdir, x_int, y_int, build_root=build_root, harness="cpp")
    simulate_seconds = time.perf_counter() - start
    written = json.loads((result.results_dir / "sim_result.json").read_text())
    cpu = written["cpu_seconds"]
    return {
        "design": description,
        "ports": {
            "input_tdata_bits": manifest.input.tdata_width,
            "output_tdata_bits": manifest.output.tdata_width,
        },
        "verilog_bytes": sum(path.stat().st_size for path in manifest.rtl_paths),
        "threads": threads,
        "verilator_args": " ".join(_verilator_args(threads)),
        "images": images,
        "passed": result.passed,
        "report": result.report,
        "latency_cycles": result.latency_cycles,
        "manifest_latency_cycles": manifest.latency_cycles,
        "ii_cycles": result.ii_cycles,
        "manifest_ii_cycles": manifest.ii_cycles,
        "cycles": result.cycles,
        "convert_seconds": round(convert_seconds, 2),
        "reference_seconds": round(reference_seconds, 2),
        "build_seconds_empty_cache": round(build_seconds, 1),
        "build_cpu_seconds_empty_cache": round(build_cpu, 1),
        "load_average_build": load_build,
        "run_seconds_wall": round(result.seconds, 3),
        "run_seconds_cpu": round(cpu, 3),
        "simulate_seconds": round(simulate_seconds, 2),
        "images_per_second_wall": round(images / result.seconds, 1),
        "images_per_second_cpu": round(images / cpu, 1) if cpu > 0 else None,
        "images_per_second_simulate": round(images / simulate_seconds, 1),
        "cycles_per_second_wall": round(result.cycles / result.seconds),
        "target_images_per_second": TARGETS[name],
        "total_seconds": round(convert_seconds + reference_seconds + build_seconds + simulate_seconds, 1),
        "load_average": [round(v, 2) for v in os.getloadavg()],
    }


def _history(path: Path) -> list[dict]:
    """The results `path` holds now (the figures this run replaces) on top of its history."""
    if not path.is_file():
        return []
    old = json.loads(path.read_text())
    commit = subprocess.run(
        ["git", "log", "-1", "--format=%h %cs", "--", path.name],
        cwd=path.parent, capture_output=True, text=True, check=False,
    ).stdout.strip()
    entry: dict = {"commit": commit or None, "command": old.get("command")}
    for name in TARGETS:
        if name in old:
            entry[name] = {k: old[name][k] for k in HISTORY_FIELDS if k in old[name]}
    return [entry, *old.get("history", [])] if len(entry) > 2 else old.get("history", [])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo-images", type=int, default=10_000)
    parser.add_argument("--svhn-images", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=1, help="Verilator --threads of the model")
    parser.add_argument("-o", "--output", type=Path, default=RESULTS / "sim_harness.json")
    args = parser.parse_args()
    out: dict = {
        "benchmark": "sim_harness",
        "command": "python " + shlex.join(["benchmarks/bench_sim_harness.py", *sys.argv[1:]]),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
    }
    history = _history(args.output)
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        for name, images in (("demo", args.demo_images), ("svhn_qp6", args.svhn_images)):
            if images > 0:
                out[name] = measure(name, images, tmp, threads=args.threads)
                print(json.dumps({name: out[name]}, indent=2), flush=True)
                args.output.parent.mkdir(parents=True, exist_ok=True)  # after each design
                args.output.write_text(json.dumps({**out, "history": history}, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
