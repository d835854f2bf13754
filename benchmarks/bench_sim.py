"""Simulation speed: Verilator build time and simulated images/second for the SVHN-size CNN,
and Amaranth's Python simulator vs Verilator on one layer (same design, same vectors).

    python benchmarks/bench_sim.py          # writes benchmarks/results/sim_speed.json
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from svhn_models import svhn_model_files

from rtlgen.api import load_model
from rtlgen.emit import convert
from rtlgen.quant.reference import quantize_input, run_int
from rtlgen.sim_tb import simulate

RESULTS = Path(__file__).parent / "results"
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/ helpers


def svhn_cnn(n_images: int, tmp: Path) -> dict:
    from rtlgen.datasets import synthetic_svhn

    json_path, weights_path = svhn_model_files(bits=6, sparsity=0.5)
    graph = load_model(json_path, weights=weights_path, input_type="fixed<16,6>")
    design = convert(graph, tmp / "svhn")
    x, _ = synthetic_svhn(n_images, seed=3)
    x_int = quantize_input(graph, x)
    y_int = run_int(graph, x_int)
    start = time.perf_counter()
    first = simulate(design.outdir, x_int[:2], y_int[:2], build_root=tmp / "cache")
    build_and_short_run = time.perf_counter() - start
    start = time.perf_counter()
    result = simulate(design.outdir, x_int, y_int, build_root=tmp / "cache")
    run_seconds = time.perf_counter() - start
    return {
        "design": "SVHN CNN 6-bit, 50% pruned (random weights), parallelism auto",
        "verilator_build_plus_2_images_seconds": round(build_and_short_run, 1),
        "images": n_images,
        "passed": bool(result.passed and first.passed),
        "run_seconds": round(run_seconds, 2),
        "images_per_second": round(n_images / run_seconds, 2),
        "simulated_cycles_per_second": round(result.cycles_per_second or 0),
        "latency_cycles": result.latency_cycles,
        "ii_cycles": result.ii_cycles,
    }


def one_layer(tmp: Path, n_images: int = 4) -> dict:
    """A 16x16x4 conv layer (+relu) in Amaranth's simulator and in Verilator."""
    from tests.rtlgen.nets import conv_net, random_inputs, run_top

    full = conv_net(h=16, w=16, c=4, filters=8, pool=False, seed=11)
    graph = full.with_nodes(full.nodes[:2])
    x_int = random_inputs(graph, n_images, 0)
    y_int = run_int(graph, x_int)
    start = time.perf_counter()
    run = run_top(graph, x_int)
    amaranth_seconds = time.perf_counter() - start
    assert np.array_equal(run.outputs, y_int)
    design = convert(graph, tmp / "layer")
    simulate(design.outdir, x_int[:1], y_int[:1], build_root=tmp / "cache")  # build
    start = time.perf_counter()
    result = simulate(design.outdir, x_int, y_int, build_root=tmp / "cache")
    verilator_seconds = time.perf_counter() - start
    return {
        "design": "one 3x3 conv layer, 16x16x4 -> 14x14x8, relu",
        "images": n_images,
        "amaranth_python_sim_seconds": round(amaranth_seconds, 2),
        "verilator_seconds_including_cocotb_startup": round(verilator_seconds, 2),
        "speed_ratio_verilator_vs_amaranth": round(amaranth_seconds / verilator_seconds, 1),
        "passed": bool(result.passed),
    }


def main() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        result = {"svhn": svhn_cnn(50, Path(tmp)), "one_layer": one_layer(Path(tmp))}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "sim_speed.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
