"""Networks whose time-multiplexed layers (`SerialMatVec`) are Verilog text modules
(`rtlgen.layers.serial_mac_verilog`) are bit-exact in Verilator under backpressure, with the
latency and II the manifest predicts: a dense taking a flatten's beats as they arrive (its
ROM one-hot, in logic or block RAM), a dense sending its result in beats to another taking
them, and a convolution after two poolings (no early start), with LUT and DSP products."""

from __future__ import annotations

import re

import numpy as np
import pytest

from rtlgen import ir
from rtlgen.emit import convert
from rtlgen.hardware import HardwareOptions, Multiplier
from rtlgen.passes import PrecisionConfig, lower
from rtlgen.quant.fixed import FixedType
from rtlgen.quant.quantizers import QuantizedBits, QuantizedRelu
from rtlgen.quant.reference import run_int
from rtlgen.sim_tb import simulate

from ..rtlgen.nets import conv_net, random_inputs
from ..rtlgen.ops.test_matvec import bn_net, chunk_net

pytestmark = pytest.mark.slow


def pooled_conv_net(seed: int = 0) -> ir.ModelGraph:
    """input 16x16x1 -> conv 3x3 same -> 2x2 pool -> 2x2 pool -> conv 3x3 valid (its pixels
    4 cycles apart: time-multiplexed) -> flatten -> dense."""
    rng = np.random.default_rng(seed)
    kq, relu = QuantizedBits(5, 0), QuantizedRelu(6, 2)

    def conv(name, shape, filters, pad):
        out = (shape[0] - 2 * (1 - pad), shape[1] - 2 * (1 - pad), filters)
        weights = rng.normal(size=(3, 3, shape[2], filters)) * (
            rng.random((3, 3, shape[2], filters)) > 0.3
        )
        return ir.Conv(name, shape, out, weights=ir.FloatTensor(weights, kq),
                       bias=ir.FloatTensor(rng.normal(size=filters) * 0.3, kq), kernel=(3, 3),
                       stride=(1, 1), padding=(pad,) * 4, activation=ir.RELU, out_quantizer=relu)  # fmt: skip

    def pool(name, shape):
        out = (shape[0] // 2, shape[1] // 2, shape[2])
        return ir.Pool(name, shape, out, kind=ir.PoolKind.MAX, pool=(2, 2), stride=(2, 2)), out

    nodes: list[ir.Node] = [
        ir.Input("in", (16, 16, 1), (16, 16, 1)),
        conv("conv0", (16, 16, 1), 3, 1),
    ]
    pool0, shape = pool("pool0", (16, 16, 3))
    pool1, shape = pool("pool1", shape)
    conv1 = conv("conv1", shape, 4, 0)
    nodes += [pool0, pool1, conv1]
    flat = int(np.prod(conv1.out_shape))
    nodes += [
        ir.Flatten("flatten", conv1.out_shape, (flat,)),
        ir.Dense("dense", (flat,), (3,), weights=ir.FloatTensor(rng.normal(size=(flat, 3)), QuantizedBits(6, 1)),
                 bias=ir.FloatTensor(rng.normal(size=3), QuantizedBits(6, 1))),
    ]  # fmt: skip
    return lower(ir.ModelGraph("pooled_conv", tuple(nodes)), PrecisionConfig(input=FixedType(8, 4)))


CASES = {
    "flatten-beats-lut": (lambda: conv_net(h=7, w=6, seed=1), HardwareOptions(multiplier=Multiplier.LUT)),
    "result-beats-dsp": (
        chunk_net,
        HardwareOptions(multiplier=Multiplier.DSP, layer_max_reuse=(("dense1", 2),),
                        layer_out_beats=(("dense1", 4),)),
    ),
    # a 36-beat flatten: dense0's ROM of 36 words is block RAM
    "block-rom-dsp": (lambda: bn_net((6, 6, 2), units=(5, 4, 3), seed=2), HardwareOptions(multiplier=Multiplier.DSP)),
    # no latency budget: the rate-balanced plan time-multiplexes conv1
    "pooled-conv-lut": (pooled_conv_net, HardwareOptions(multiplier=Multiplier.LUT, latency_budget=None)),
    "pooled-conv-auto": (pooled_conv_net, HardwareOptions(adders_per_stage=1, latency_budget=None)),
}  # fmt: skip


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("backpressure", [0.0, 0.4])
def test_serial_macs_as_text_bit_exact_in_verilator(name, backpressure, tmp_path, build_root):
    make, options = CASES[name]
    graph = make()
    design = convert(graph, tmp_path / "design", options, jobs=2)
    text = design.verilog.read_text()
    assert re.search(rf"^module {design.top}__smac_[0-9a-f]{{16}}\(", text, re.MULTILINE)
    assert any(layer.reuse > 1 for layer in design.manifest.layers)
    x = random_inputs(graph, 4, 0)
    result = simulate(design.outdir, x, run_int(graph, x), backpressure=backpressure, seed=1,
                      build_root=build_root)  # fmt: skip
    assert result.passed, result.report
    assert result.mismatches == 0 and result.images == 4
    if backpressure == 0.0:
        assert result.latency_cycles == design.manifest.latency_cycles
        assert result.ii_cycles == design.manifest.ii_cycles
