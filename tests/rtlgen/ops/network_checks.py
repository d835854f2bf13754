"""Whole-network checks shared by the op tests: the Amaranth-simulator runner under random
backpressure against the integer reference, the timing model against measured cycles, and
one Verilator run through cocotb."""

from __future__ import annotations

import numpy as np

from rtlgen import ir
from rtlgen.emit import convert, predict_timing
from rtlgen.hardware import HardwareOptions, NetworkTop
from rtlgen.quant.reference import run_int

from ..nets import AxisRun, random_inputs, run_top


def bit_exact_in_simulator(
    graph: ir.ModelGraph,
    n: int = 3,
    valid_prob: float = 0.6,
    ready_prob: float = 0.5,
    seed: int = 0,
    options: HardwareOptions = HardwareOptions(),
) -> AxisRun:
    """Stream ``n`` random samples through the top with random gaps on both sides; the
    outputs must equal `run_int`'s."""
    x = random_inputs(graph, n, seed)
    run = run_top(graph, x, options, valid_prob, ready_prob, seed)
    np.testing.assert_array_equal(run.outputs, run_int(graph, x))
    return run


def timing_matches_model(graph: ir.ModelGraph, options: HardwareOptions = HardwareOptions()):
    """At full rate, the measured latency and II equal the manifest's (`rtlgen.timing`),
    measured as the Verilator runner does: the worst sample's latency, the largest gap
    between first input beats (they differ where a slow stage fills the buffers before it),
    over as many samples as the model needs to reach its steady state."""
    from rtlgen.timing import steady_samples

    top = NetworkTop(graph, options)
    run = bit_exact_in_simulator(graph, steady_samples(top), 1.0, 1.0, options=options)
    latency, ii, _ = predict_timing(top)
    assert max(o - f for f, o in zip(run.first_in, run.last_out, strict=True)) == latency
    assert max(np.diff(run.first_in).tolist()) == ii
    return latency, ii


def bit_exact_in_verilator(graph: ir.ModelGraph, tmp_path, build_root, backpressure=0.3, n=4):
    """Generated Verilog in Verilator (cocotb): bit-exact, and without backpressure the
    latency/II of the manifest."""
    from rtlgen.sim_tb import simulate
    from rtlgen.timing import steady_samples

    design = convert(graph, tmp_path / "design")
    n = max(n, steady_samples(NetworkTop(graph)))
    x = random_inputs(graph, n, 1)
    want = run_int(graph, x)
    result = simulate(
        design.outdir, x, want, backpressure=backpressure, seed=1, build_root=build_root
    )
    assert result.passed, result.report
    assert result.mismatches == 0 and result.images == n
    result = simulate(design.outdir, x, want, backpressure=0.0, seed=1, build_root=build_root)
    assert result.passed, result.report
    assert result.latency_cycles == design.manifest.latency_cycles
    assert result.ii_cycles == design.manifest.ii_cycles
    return design
