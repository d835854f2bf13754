"""Generated networks in Verilator: every layer kind bit-exact with the reference, with and
without random backpressure on both sides, and the latency/II the manifest predicts."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtlgen import ir
from rtlgen.emit import convert
from rtlgen.hardware import HardwareOptions, Multiplier, Parallelism
from rtlgen.quant.reference import run_int
from rtlgen.sim_tb import simulate

from ..rtlgen.nets import conv_net, mlp, random_inputs

CASES = {
    "conv-valid-maxpool": lambda: conv_net(h=7, w=6, seed=1),
    "conv-same-stride2": lambda: conv_net(h=7, w=5, same=True, stride=2, pool=False, seed=2),
    "conv1x1-bn-avgpool": lambda: conv_net(kernel=1, scale_shift=True, avg=True, h=6, w=6, seed=3),
    "mlp": lambda: mlp(seed=4),
}


# Whole networks through Verilator (a C++ build each): the slow set. The default run keeps
# Verilator coverage through tests/sim_tb/test_sim_runner.py, the CLI and the demo; every
# layer kind is checked bit-exact in Amaranth's simulator in tests/layers/.
pytestmark = pytest.mark.slow


def run(graph, tmp_path, build_root, backpressure=0.0, options=HardwareOptions(), n=4, seed=0):
    design = convert(graph, tmp_path / "design", options)
    x = random_inputs(graph, n, seed)
    result = simulate(design.outdir, x, run_int(graph, x), backpressure=backpressure, seed=seed,
                      build_root=build_root)
    return design, result


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("backpressure", [0.0, 0.4])
def test_layer_kinds_bit_exact_in_verilator(name, backpressure, tmp_path, build_root):
    design, result = run(CASES[name](), tmp_path, build_root, backpressure)
    assert result.passed, result.report
    assert result.mismatches == 0 and result.images == 4
    if backpressure == 0.0:
        assert result.latency_cycles == design.manifest.latency_cycles
        assert result.ii_cycles == design.manifest.ii_cycles
        assert not result.input_stalled or design.manifest.ii_cycles > design.manifest.input.beats_per_sample


def test_lut_multipliers_full_parallelism_in_verilator(tmp_path, build_root):
    options = HardwareOptions(multiplier=Multiplier.LUT, parallelism=Parallelism.FULL)
    _, result = run(conv_net(seed=5), tmp_path, build_root, 0.3, options)
    assert result.passed, result.report


def test_a_wrong_design_is_caught(tmp_path, build_root):
    """One constant of the last (linear) layer off by one LSB: the logits must differ."""
    graph = mlp(seed=6)
    last = graph.nodes[-1]
    bias = last.bias.mantissa.copy()
    bias[0] += 1 if bias[0] < last.bias.type.max_int else -1
    wrong = graph.with_nodes([*graph.nodes[:-1], last.replace(bias=dataclasses.replace(last.bias, mantissa=bias))])
    design = convert(wrong, tmp_path / "wrong")
    x = random_inputs(graph, 8, 1)
    result = simulate(design.outdir, x, run_int(graph, x), build_root=build_root)
    assert not result.passed and result.mismatches == 8
    assert "sample 0, output [0]" in str(result.first_mismatch) and "expected" in str(result.first_mismatch)


@st.composite
def small_networks(draw):
    kind = draw(st.sampled_from(["conv", "mlp"]))
    seed = draw(st.integers(0, 10_000))
    if kind == "mlp":
        sizes = tuple(draw(st.lists(st.integers(1, 12), min_size=2, max_size=4)))
        return mlp(sizes=sizes, wbits=draw(st.integers(2, 8)), sparsity=draw(st.sampled_from([0, 0.5, 0.9])),
                   seed=seed)
    k = draw(st.integers(1, 3))
    same = draw(st.booleans())
    h, w = draw(st.integers(k + 1, 8)), draw(st.integers(k + 1, 8))
    return conv_net(h=h, w=w, c=draw(st.integers(1, 3)), filters=draw(st.integers(1, 4)), kernel=k,
                    stride=draw(st.integers(1, 2)), same=same, pool=draw(st.booleans()),
                    wbits=draw(st.integers(2, 7)), sparsity=draw(st.sampled_from([0, 0.5, 0.9])),
                    seed=seed, scale_shift=draw(st.booleans()))


@pytest.mark.slow
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(graph=small_networks(), backpressure=st.sampled_from([0.0, 0.5]),
       parallelism=st.sampled_from(list(Parallelism)))
def test_random_networks_bit_exact_in_verilator(graph, backpressure, parallelism, tmp_path_factory, build_root):
    tmp = tmp_path_factory.mktemp("net")
    design, result = run(graph, tmp, build_root, backpressure, HardwareOptions(parallelism=parallelism), n=3)
    assert result.passed, result.report
    if backpressure == 0.0:
        assert result.latency_cycles == design.manifest.latency_cycles


def test_graph_without_classes_streams_pixels(tmp_path, build_root):
    """A conv-only network: the output is a pixel stream with tlast on the last pixel."""
    full = conv_net(pool=False, seed=7)
    graph = full.with_nodes(full.nodes[:2])
    assert isinstance(graph.output, ir.Conv)
    design, result = run(graph, tmp_path, build_root)
    assert result.passed, result.report
    assert design.manifest.output.classes is None
    assert np.prod(graph.output_shape[:-1]) == design.manifest.output.beats_per_sample
