"""Icarus Verilog beside Verilator (`simulate(..., simulator="icarus")`): the same cocotb
testbench on the same Verilog must give identical outputs, equal to the reference, and the
same cycle counts (latency, II, streaming cycles) under the same seeded backpressure.

The default set runs the test DUT and a tiny network; every layer kind, a few whole networks
with several outputs or inputs, and the CLI are in the slow set. Skipped when iverilog is not
installed (`apt-get install -y iverilog`)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from rtlgen.api import named_outputs
from rtlgen.emit import convert
from rtlgen.quant.errors import RtlgenError
from rtlgen.quant.reference import run_int_outputs
from rtlgen.sim_tb import icarus, simulate
from rtlgen.sim_tb.tb_manifest import read_manifest
from rtlgen.sim_tb.tb_run import SimulationError

from ..rtlgen.nets import conv_net, mlp, random_inputs
from . import dut

needs_iverilog = pytest.mark.skipif(
    icarus.iverilog_version() is None,
    reason="Icarus Verilog (iverilog, vvp) is not installed: apt-get install -y iverilog",
)


def simulate_both(outdir, x, want, build_root, backpressure=0.0, seed=0):
    """Simulate in Verilator and in Icarus (both with the cocotb testbench); they must agree
    on every output value and every measured cycle figure. Returns {simulator: SimResult}."""
    results = {
        simulator: simulate(
            outdir, x, want, backpressure=backpressure, seed=seed, build_root=build_root,
            simulator=simulator, harness="cocotb",
        )
        for simulator in icarus.SIMULATORS
    }
    verilator, other = results["verilator"], results["icarus"]
    assert other.y_sim_outputs.keys() == verilator.y_sim_outputs.keys()
    for name, values in verilator.y_sim_outputs.items():
        np.testing.assert_array_equal(other.y_sim_outputs[name], values, err_msg=name)
    for figure in ("passed", "report", "mismatches", "first_mismatch", "latency_cycles",
                   "ii_cycles", "cycles", "input_stalled", "tlast_errors", "tuser_errors"):
        assert getattr(other, figure) == getattr(verilator, figure), figure
    return results


def expected(graph, x):
    """The reference outputs: one array, or {output name: array} for several outputs."""
    outputs = named_outputs(graph, run_int_outputs(graph, x))
    return outputs if len(outputs) > 1 else next(iter(outputs.values()))


def agree_on_network(graph, tmp_path, build_root, backpressure=0.3, n=3, seed=1):
    """A network in both simulators: bit-exact with the reference and identical to each
    other; at full rate also the manifest's latency and II."""
    design = convert(graph, tmp_path / "design")
    x = random_inputs(graph, n, seed)
    want = expected(graph, x)
    for pressure in (backpressure, 0.0):
        results = simulate_both(design.outdir, x, want, build_root, pressure, seed)
        result = results["icarus"]
        assert result.passed, result.report
        assert result.mismatches == 0 and result.images == n
    assert result.latency_cycles == design.manifest.latency_cycles
    assert result.ii_cycles == design.manifest.ii_cycles
    return results


# ---------------------------------------------------------------------------------------
# default set: small designs
@pytest.mark.slow  # the default set keeps the tiny network in Icarus (session 11: 15 s of CPU)
@needs_iverilog
def test_test_dut_agrees_in_both_simulators_under_backpressure(chansum_outdir, build_root):
    x_int = dut.random_inputs(12, seed=3)
    results = simulate_both(chansum_outdir, x_int, dut.reference(x_int), build_root, 0.4, 5)
    assert results["icarus"].passed, results["icarus"].report
    assert results["icarus"].build_dir != results["verilator"].build_dir
    assert (results["icarus"].build_dir / icarus.SIM_FILE).is_file()


@pytest.mark.slow  # the default run stays under 5 minutes
@needs_iverilog
def test_a_faulty_design_fails_identically_in_both(faulty_outdir, build_root):
    """Data-triggered faults (dut.FAULT_*): both simulators report the same first mismatch."""
    x_int = dut.random_inputs(6, seed=1)
    x_int[2, 0, 2] = dut.FAULT_DATA  # sample 2: output element 1 one too large
    x_int[4, 0, 2] = dut.FAULT_TLAST  # sample 4: tlast missing
    results = simulate_both(faulty_outdir, x_int, dut.reference(x_int), build_root)
    result = results["icarus"]
    assert not result.passed and result.mismatches == 1 and result.tlast_errors == 1
    assert (result.first_mismatch.sample, result.first_mismatch.index) == (2, (1,))


@needs_iverilog
def test_tiny_network_in_icarus_is_bit_exact_with_the_manifest_timing(tmp_path, build_root):
    """Icarus alone (no Verilator build in the default set): equal to the reference, and at
    full rate the manifest's latency and II."""
    graph = mlp(sizes=(5, 4, 3), seed=2)
    design = convert(graph, tmp_path / "design")
    x = random_inputs(graph, 4, 1)
    for pressure in (0.4, 0.0):
        result = simulate(design.outdir, x, expected(graph, x), backpressure=pressure, seed=1,
                          build_root=build_root, simulator="icarus")
        assert result.passed, result.report
    assert (result.latency_cycles, result.ii_cycles) == (
        design.manifest.latency_cycles, design.manifest.ii_cycles)


@needs_iverilog
@pytest.mark.slow
def test_tiny_network_agrees_in_both_simulators(tmp_path, build_root):
    agree_on_network(mlp(sizes=(5, 4, 3), seed=2), tmp_path, build_root, n=4)


@needs_iverilog
def test_icarus_writes_fst_waves(chansum_outdir, build_root):
    x_int = dut.random_inputs(2, seed=0)
    result = simulate(chansum_outdir, x_int, dut.reference(x_int), waves=True,
                      build_root=build_root, simulator="icarus")
    assert result.passed, result.report
    assert result.waves_file is not None and result.waves_file.name == "dump.fst"
    assert result.waves_file.stat().st_size > 0


def test_icarus_missing_is_one_line(chansum_outdir, build_root, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no iverilog/vvp there
    x_int = dut.random_inputs(2, seed=0)
    with pytest.raises(SimulationError, match="iverilog/vvp not found.*apt-get install -y iverilog"):
        simulate(chansum_outdir, x_int, dut.reference(x_int), build_root=build_root,
                 simulator="icarus")


def test_unknown_simulator_is_refused(chansum_outdir, build_root):
    x_int = dut.random_inputs(2, seed=0)
    with pytest.raises(RtlgenError, match="simulator 'modelsim' is not supported"):
        simulate(chansum_outdir, x_int, dut.reference(x_int), build_root=build_root,
                 simulator="modelsim")


def test_a_design_too_big_for_icarus_is_refused_in_one_line(chansum_outdir, monkeypatch):
    """The run-time estimate grows with the design and the samples; beyond the limit the run
    is refused with one line naming the design, the estimate and the way out."""
    monkeypatch.delenv(icarus.LIMIT_VARIABLE, raising=False)
    manifest = read_manifest(chansum_outdir)
    small = icarus.check_size(manifest, 10)
    assert 0 < small < icarus.MAX_ESTIMATED_SECONDS
    assert icarus.estimated_seconds(manifest, 1000) > icarus.estimated_seconds(manifest, 10)
    big = dataclasses.replace(
        manifest, totals=dataclasses.replace(manifest.totals, multipliers=50_000, adders=50_000)
    )
    assert icarus.estimated_seconds(big, 10) > small
    with pytest.raises(SimulationError) as error:
        icarus.check_size(big, 100_000)
    message = str(error.value)
    assert "\n" not in message
    assert "chansum is too big for Icarus with 100000 samples" in message
    assert "--simulator verilator" in message and icarus.LIMIT_VARIABLE in message
    monkeypatch.setenv(icarus.LIMIT_VARIABLE, "1e12")  # a user who is willing to wait
    assert icarus.check_size(big, 100_000) > icarus.MAX_ESTIMATED_SECONDS
    monkeypatch.setenv(icarus.LIMIT_VARIABLE, "soon")
    with pytest.raises(SimulationError, match="RTLGEN_ICARUS_MAX_SECONDS is 'soon'"):
        icarus.check_size(manifest, 10)


@needs_iverilog
def test_too_big_is_refused_before_any_build(chansum_outdir, tmp_path, monkeypatch):
    monkeypatch.setenv(icarus.LIMIT_VARIABLE, "0")
    x_int = dut.random_inputs(2, seed=0)
    with pytest.raises(SimulationError, match="too big for Icarus"):
        simulate(chansum_outdir, x_int, dut.reference(x_int), build_root=tmp_path / "cache",
                 simulator="icarus")
    assert not (tmp_path / "cache").exists()


# ---------------------------------------------------------------------------------------
# slow set: every layer kind, several outputs and inputs, the CLI
def _ops_graph(name, tmp_path):
    """One small network per layer kind, from the op tests (pure IR or hand-written .h5)."""
    from ..rtlgen.ops import spatial_nets
    from ..rtlgen.ops.test_depthwise_conv import depthwise_network
    from ..rtlgen.ops.test_global_pool import cnn_global_average
    from ..rtlgen.ops.test_lut_activation import mixed_mlp
    from ..rtlgen.ops.test_separable_conv import separable_network
    from ..rtlgen.ops.test_upsampling import NETWORKS as UPSAMPLING
    from ..rtlgen.test_graphs import GRAPHS

    cases = {
        "conv-valid-maxpool": lambda: conv_net(h=7, w=6, seed=1),
        "conv-same-stride2": lambda: conv_net(h=7, w=5, same=True, stride=2, pool=False, seed=2),
        "conv1x1-bn-avgpool": lambda: conv_net(kernel=1, scale_shift=True, avg=True, h=6, w=6, seed=3),
        "mlp-sparse": lambda: mlp(sizes=(8, 6, 4), sparsity=0.5, seed=4),
        "zero-padding": lambda: spatial_nets.autoencoder("pad"),
        "cropping": lambda: spatial_nets.autoencoder("crop"),
        "upsampling-1d": UPSAMPLING["1d"],
        "lut-activations": lambda: mixed_mlp(1),
        "depthwise": lambda: depthwise_network(tmp_path),
        "separable": lambda: separable_network(tmp_path),
        "global-average": lambda: cnn_global_average(tmp_path),
        "residual-add": GRAPHS["residual_add"],
        "residual-concat": GRAPHS["residual_concat"],
        "inception": GRAPHS["inception"],
    }
    return cases[name]()


OP_CASES = [
    "conv-valid-maxpool", "conv-same-stride2", "conv1x1-bn-avgpool", "mlp-sparse", "zero-padding",
    "cropping", "upsampling-1d", "lut-activations", "depthwise", "separable", "global-average",
    "residual-add", "residual-concat", "inception",
]


@needs_iverilog
@pytest.mark.slow
@pytest.mark.parametrize("name", OP_CASES)
def test_every_layer_kind_agrees_in_both_simulators(name, tmp_path, build_root):
    agree_on_network(_ops_graph(name, tmp_path), tmp_path, build_root)


@needs_iverilog
@pytest.mark.slow
def test_leaky_relu_layer_agrees_in_both_simulators(tmp_path, build_root):
    from rtlgen import ir
    from rtlgen.ops.leaky_relu import leaky_node
    from rtlgen.passes import PrecisionConfig, lower
    from rtlgen.quant.fixed import FixedType

    rng = np.random.default_rng(1)
    nodes = [
        ir.Input("in", (4,), (4,)),
        ir.Dense("d", (4,), (3,), weights=ir.FloatTensor(rng.normal(size=(4, 3)))),
        leaky_node("lk", (3,), 0.3, "lk"),
    ]
    graph = lower(ir.ModelGraph("m", tuple(nodes)), PrecisionConfig(input=FixedType(8, 4)))
    agree_on_network(graph, tmp_path, build_root)


@needs_iverilog
@pytest.mark.slow
@pytest.mark.parametrize("name", ["two-head-mlp", "autoencoder-with-head"])
def test_multi_output_networks_agree_in_both_simulators(name, tmp_path, build_root):
    from ..rtlgen.test_multi_output import GRAPHS

    agree_on_network(GRAPHS[name](), tmp_path, build_root)


@needs_iverilog
@pytest.mark.slow
@pytest.mark.parametrize("name", ["two-vectors", "image-and-features"])
def test_multi_input_networks_agree_in_both_simulators(name, tmp_path, build_root):
    from ..rtlgen.test_multi_input import GRAPHS
    from ..rtlgen.test_multi_input import random_inputs as named_inputs

    graph = GRAPHS[name]()
    design = convert(graph, tmp_path / "design")
    x = named_inputs(graph, 3, 1)
    want = expected(graph, x)
    x = dict(zip(design.manifest.input_names, x.values(), strict=True))
    results = simulate_both(design.outdir, x, want, build_root, 0.3, 2)
    assert results["icarus"].passed, results["icarus"].report


@needs_iverilog
@pytest.mark.slow
def test_cli_sim_with_icarus(tmp_path):
    from ..rtlgen.cli_run import rtlgen

    graph = conv_net(h=6, w=5, seed=8)
    design = convert(graph, tmp_path / "design")
    x = np.random.default_rng(0).uniform(-2, 2, size=(3, *graph.input_shape)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    done = rtlgen("sim", design.outdir, "-i", tmp_path / "x.npy", "--simulator", "icarus",
                  "--backpressure", "0.2", "-o", tmp_path / "y.npy")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Icarus simulation of" in done.stdout and "bit-exact" in done.stdout
    assert np.load(tmp_path / "y.npy").shape[0] == 3
    too_many = np.zeros((20_000, *graph.input_shape), dtype=np.float32)
    np.save(tmp_path / "many.npy", too_many)
    refused = rtlgen("sim", design.outdir, "-i", tmp_path / "many.npy", "--simulator", "icarus")
    assert refused.returncode == 2
    assert "too big for Icarus" in refused.stderr and "Traceback" not in refused.stderr
    assert len(refused.stderr.strip().splitlines()[-1]) > 0
