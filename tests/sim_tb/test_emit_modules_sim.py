"""A design whose every layer component is a separately converted Verilog module
(`rtlgen.emit.network_verilog`) is bit-exact in Verilator under backpressure, with the
predicted latency and II."""

from __future__ import annotations

import re

import pytest

import rtlgen.emit as emit
from rtlgen.quant.reference import run_int
from rtlgen.sim_tb import simulate

from ..rtlgen.nets import conv_net, random_inputs

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("backpressure", [0.0, 0.4])
def test_separate_modules_bit_exact_in_verilator(backpressure, tmp_path, build_root, monkeypatch):
    monkeypatch.setattr(emit, "SEPARATE_BITS", 0)
    graph = conv_net(h=7, w=6, seed=1)
    design = emit.convert(graph, tmp_path / "design", jobs=2)
    assert re.search(rf"^module {design.top}__l0_", design.verilog.read_text(), re.MULTILINE)
    x = random_inputs(graph, 4, 0)
    result = simulate(design.outdir, x, run_int(graph, x), backpressure=backpressure, seed=0,
                      build_root=build_root)
    assert result.passed, result.report
    assert result.mismatches == 0 and result.images == 4
    if backpressure == 0.0:
        assert result.latency_cycles == design.manifest.latency_cycles
        assert result.ii_cycles == design.manifest.ii_cycles


@pytest.mark.parametrize(
    "network,mac_text",
    [("mlp-latency-dsp", True), ("mlp-latency-dsp", False), ("conv-modules", True)],
)
def test_mac_arrays_as_text_bit_exact_in_verilator(
    network, mac_text, tmp_path, build_root, monkeypatch
):
    """Constant MAC arrays written as Verilog text (`rtlgen.layers.mac_verilog`): in the top
    (an MLP whose requantizers are combinational behind its arrays) and as modules of their
    own (a conv net); the same MLP through Amaranth's back end for comparison."""
    from rtlgen.hardware import HardwareOptions, Multiplier, Parallelism, Pipeline

    from ..rtlgen.nets import mlp

    if network == "conv-modules":
        monkeypatch.setattr(emit, "SEPARATE_BITS", 0)
        graph, options = conv_net(h=6, w=5, seed=3), HardwareOptions(parallelism=Parallelism.FULL)
    else:
        graph = mlp(sizes=(9, 7, 5, 3), seed=2)
        options = HardwareOptions(
            multiplier=Multiplier.DSP, parallelism=Parallelism.FULL, pipeline=Pipeline.LATENCY
        )
    design = emit.convert(graph, tmp_path / "design", options, jobs=2, mac_text=mac_text)
    text = design.verilog.read_text()
    if network == "conv-modules":  # the separated arrays are text: no Amaranth wrapper
        assert "__mac_" not in text and re.search(r"^  reg valid_0 = 1'h0;$", text, re.MULTILINE)
    else:
        assert bool(re.search(rf"^module {design.top}__mac_", text, re.MULTILINE)) == mac_text
    x = random_inputs(graph, 6, 1)
    result = simulate(
        design.outdir, x, run_int(graph, x), backpressure=0.4, seed=2, build_root=build_root
    )
    assert result.passed, result.report
    assert result.mismatches == 0 and result.images == 6


def test_mac_arrays_inside_a_recurrent_layer_as_text_bit_exact_in_verilator(
    tmp_path, build_root, monkeypatch
):
    """MAC arrays that another component elaborates (a recurrent cell's, converted in a
    worker process) become instances of text modules too."""
    from rtlgen import ir
    from rtlgen.ops.recurrent import GRU, LSTM
    from rtlgen.passes import PrecisionConfig, lower

    from ..rtlgen.ops.test_recurrent import IN_TYPE, rnn_node

    monkeypatch.setattr(emit, "SEPARATE_BITS", 0)
    first = rnn_node(LSTM, steps=2, features=1, units=2, sequences=True, seed=1, name="lstm")
    second = rnn_node(GRU, steps=2, features=2, units=1, sequences=False, seed=2, name="gru")
    nodes = (ir.Input("in", (2, 1), (2, 1)), first, second)
    graph = lower(ir.ModelGraph("stacked", nodes), PrecisionConfig(input=IN_TYPE))
    design = emit.convert(graph, tmp_path / "design", jobs=2)
    assert re.search(rf"^module {design.top}__l\d+_\w+__mac_", design.verilog.read_text(), re.M)
    x = random_inputs(graph, 5, 3)
    result = simulate(
        design.outdir, x, run_int(graph, x), backpressure=0.4, seed=3, build_root=build_root
    )
    assert result.passed, result.report
    assert result.mismatches == 0 and result.images == 5
