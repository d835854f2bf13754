# amaranth: UnusedElaboratable=no
"""`--pixels-per-beat P` (`rtlgen.ppb`): whole networks taking P pixels per input beat,
bit-exact under random backpressure in Amaranth's simulator, latency and II equal to the
timing model's; the plan (P windows per cycle where the rate needs it, folded back after
pooling); refusals in one line."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from rtlgen import ir
from rtlgen.emit import predict_timing
from rtlgen.hardware import HardwareOptions, NetworkTop, Parallelism
from rtlgen.layers.multi_pixel import MultiWindowGenerator, PixelSerializer
from rtlgen.layers.threshold import ThresholdBank
from rtlgen.passes import PrecisionConfig, lower
from rtlgen.ppb import PixelFormat
from rtlgen.quant.errors import RtlgenError
from rtlgen.quant.fixed import FixedType
from rtlgen.quant.quantizers import QuantizedBits, QuantizedRelu
from tests.rtlgen.cli_run import rtlgen

from .nets import conv_net, mlp
from .ops.network_checks import bit_exact_in_simulator, timing_matches_model

DATA = Path(str(resources.files("rtlgen.data")))
MODEL = [str(DATA / "demo_cnn.json"), "--weights", str(DATA / "demo_cnn_weights.h5")]


def two_conv_net(h=8, w=8, c=2, seed=0, avg=False) -> ir.ModelGraph:
    """conv 3x3 -> conv 2x2 -> pool 2x2 -> flatten -> dense: a second window layer on rows
    that start mid-beat, and a pooling that halves P."""
    rng = np.random.default_rng(seed)
    kq = QuantizedBits(5, 0)

    def conv(name, shape, filters, k):
        out = (shape[0] - k + 1, shape[1] - k + 1, filters)
        weights = rng.normal(size=(k, k, shape[2], filters)) * (
            rng.random((k, k, shape[2], filters)) > 0.3
        )
        node = ir.Conv(
            name,
            shape,
            out,
            weights=ir.FloatTensor(weights, kq),
            bias=ir.FloatTensor(rng.normal(size=filters) * 0.3, kq),
            kernel=(k, k),
            stride=(1, 1),
            padding=(0, 0, 0, 0),
            activation=ir.RELU,
            out_quantizer=QuantizedRelu(6, 2),
        )
        return node, out

    a, s1 = conv("conv_a", (h, w, c), 3, 3)
    b, s2 = conv("conv_b", s1, 4, 2)
    pooled = (s2[0] // 2, s2[1] // 2, 4)
    flat = int(np.prod(pooled))
    nodes = [
        ir.Input("in", (h, w, c), (h, w, c)),
        a,
        b,
        ir.Pool(
            "pool",
            s2,
            pooled,
            kind=ir.PoolKind.AVG if avg else ir.PoolKind.MAX,
            pool=(2, 2),
            stride=(2, 2),
        ),
        ir.Flatten("flatten", pooled, (flat,)),
        ir.Dense(
            "dense",
            (flat,),
            (3,),
            weights=ir.FloatTensor(rng.normal(size=(flat, 3)), QuantizedBits(6, 1)),
            bias=ir.FloatTensor(rng.normal(size=3), QuantizedBits(6, 1)),
        ),
    ]
    return lower(ir.ModelGraph("two_conv", tuple(nodes)), PrecisionConfig(input=FixedType(8, 4)))


def _stages(top: NetworkTop, name: str) -> list[str]:
    return [type(s).__name__ for p in top.plans if p.node.name == name for s in p.stages]


@pytest.mark.parametrize("pixels", [pytest.param(2, marks=pytest.mark.slow), 4])
def test_small_cnn_is_bit_exact_under_backpressure_at_the_model_timing(pixels):
    graph = conv_net(h=6, w=8, c=2)
    options = HardwareOptions(pixels_per_beat=pixels)
    bit_exact_in_simulator(graph, n=3, options=options)
    latency, ii = timing_matches_model(graph, options)
    assert ii == 6 * 8 // pixels  # one beat of P pixels per cycle
    one_latency, _, _ = predict_timing(NetworkTop(graph))
    assert latency < one_latency


def test_two_window_layers_and_a_pool_keep_p_windows_then_fold():
    top = NetworkTop(two_conv_net(), HardwareOptions(pixels_per_beat=4))
    # conv_a: 4 windows per beat; conv_b on rows starting mid-beat; the pool halves P and
    # its 9 pixels per 16-cycle sample fold back to one per beat
    assert _stages(top, "conv_a")[0] == _stages(top, "conv_b")[0] == "MultiWindowGenerator"
    assert isinstance(top.plans[1].out_format, PixelFormat)
    assert top.plans[1].out_format.rows.offset == 3
    assert _stages(top, "pool")[-1] == "PixelSerializer"
    assert top.plans[2].out_format is None


@pytest.mark.slow
@pytest.mark.parametrize("avg", [False, True])
def test_two_window_layers_and_a_pool_are_bit_exact_at_the_model_timing(avg):
    graph = two_conv_net(avg=avg)
    options = HardwareOptions(pixels_per_beat=4)
    bit_exact_in_simulator(graph, n=3, options=options, seed=avg)
    _, ii = timing_matches_model(graph, options)
    assert ii == 16


def test_the_input_beat_carries_p_pixels():
    graph = conv_net(h=6, w=8, c=2)
    top = NetworkTop(graph, HardwareOptions(pixels_per_beat=4))
    fmt = top.input_format
    assert (fmt.beats, fmt.elements) == (12, 8)
    assert len(top.s_axis_tdata) == 8 * 8  # 4 pixels of 2 channels of fixed<8,4>


def test_one_pixel_per_beat_is_the_plan_without_the_option():
    graph = conv_net(h=6, w=8, c=2)
    top = NetworkTop(graph, HardwareOptions(pixels_per_beat=1))
    assert not any(
        isinstance(s, (MultiWindowGenerator, PixelSerializer)) for p in top.plans for s in p.stages
    )


@pytest.mark.parametrize(
    "graph, pixels, message",
    [
        (lambda: conv_net(h=6, w=7, c=2), 2, "input 'in' is 7 pixels wide, not a multiple of 2"),
        (lambda: mlp(), 2, "is not an image (H, W, C)"),
        (
            lambda: conv_net(h=2, w=32, c=300, pool=False),
            32,
            "bits, more than one AXI4-Stream beat takes (65536); use a smaller P",
        ),
        (
            lambda: conv_net(h=6, w=8, c=2),
            3,
            "--pixels-per-beat 3 is not supported (use one of 1, 2, 4",
        ),
    ],
)
def test_refusals_name_the_option(graph, pixels, message):
    with pytest.raises(RtlgenError) as info:
        NetworkTop(graph(), HardwareOptions(pixels_per_beat=pixels))
    assert message in str(info.value)


@pytest.mark.slow
def test_same_padding_folds_first_and_stays_exact():
    # a padded convolution takes one pixel per beat: its input is folded, the result exact
    graph = conv_net(h=6, w=8, c=2, same=True)
    options = HardwareOptions(pixels_per_beat=2)
    top = NetworkTop(graph, options)
    assert _stages(top, "conv")[:2] == ["StreamFifo", "PixelSerializer"]
    bit_exact_in_simulator(graph, n=2, options=options)
    timing_matches_model(graph, options)


def test_cli_refuses_a_bad_pixels_per_beat_in_one_line(tmp_path):
    result = rtlgen("convert", *MODEL, "-o", tmp_path / "out", "--pixels-per-beat", "3")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "--pixels-per-beat 3 is not supported" in lines[0]


def _full(pixels: int) -> HardwareOptions:
    return HardwareOptions(pixels_per_beat=pixels, parallelism=Parallelism.FULL)


def test_full_parallelism_keeps_the_windows_after_pooling():
    # lowest latency: the pool's 2 pixels per beat go on; the flatten folds them
    top = NetworkTop(two_conv_net(), _full(4))
    assert isinstance(top.plans[2].out_format, PixelFormat)
    assert _stages(top, "pool")[-1] == "WindowMax"
    assert _stages(top, "flatten")[:2] == ["StreamFifo", "PixelSerializer"]


@pytest.mark.slow
def test_full_parallelism_is_bit_exact_at_the_model_timing():
    graph = two_conv_net(seed=3)
    bit_exact_in_simulator(graph, n=3, options=_full(4), seed=3)
    timing_matches_model(graph, _full(4))


@pytest.mark.slow
@pytest.mark.parametrize("pixels", [2, 4])
def test_demo_cnn_in_verilator(tmp_path, pixels):
    """`rtlgen convert --pixels-per-beat P` then `rtlgen sim` of the demo CNN: bit-exact under
    backpressure, and without it the manifest's latency and II (II = 64 / P)."""
    import json

    out = tmp_path / "design"
    result = rtlgen("convert", *MODEL, "-o", out, "--pixels-per-beat", pixels, timeout=1200)
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["ii_cycles"] == 64 // pixels
    assert manifest["input"]["elements_per_beat"] == pixels
    assert manifest["options"]["pixels_per_beat"] == pixels
    x = np.random.default_rng(pixels).uniform(-1, 1, size=(6, 8, 8, 1))
    np.save(tmp_path / "x.npy", x)
    for backpressure in ("0.3", "0"):
        sim = rtlgen(
            "sim", out, "-i", tmp_path / "x.npy", "--backpressure", backpressure, timeout=1800
        )
        assert sim.returncode == 0, sim.stdout + sim.stderr
        got = json.loads((out / "sim" / "sim_result.json").read_text())
        assert got["passed"] and got["mismatches"] == 0
    assert (got["latency_cycles"], got["ii_cycles"]) == (
        manifest["latency_cycles"],
        manifest["ii_cycles"],
    )


@pytest.mark.slow
def test_pool_into_thresholds_at_p_is_bit_exact_at_the_model_timing(tmp_path):
    """QConv2D -> MaxPool -> float BN + quantized_relu (a threshold bank repeated per pixel,
    no skid buffer between the pool and the bank) -> Dense, at 4 and 2 pixels per beat."""
    tf = pytest.importorskip("tensorflow")
    qkeras = pytest.importorskip("qkeras")
    from .ops.spatial_nets import keras_graph
    from .ops.test_threshold import EPS, _boundary_bn, _qb

    tf.keras.utils.set_random_seed(5)
    inp = tf.keras.Input((6, 8, 2))
    x = qkeras.QConv2D(4, 3, kernel_quantizer=_qb(), bias_quantizer=_qb(), name="c1")(inp)
    x = tf.keras.layers.MaxPooling2D(2, name="pool")(x)
    bn = tf.keras.layers.BatchNormalization(epsilon=EPS, name="bn1")
    x = qkeras.QActivation("quantized_relu(4,2)", name="act1")(bn(x))
    x = tf.keras.layers.Flatten()(x)
    x = qkeras.QDense(3, kernel_quantizer=_qb(), bias_quantizer=_qb(), name="fc")(x)
    model = tf.keras.Model(inp, x, name="pool_bn")
    _boundary_bn(bn, np.random.default_rng(5), 0.25, 4)
    graph = keras_graph(model, tmp_path)
    for options in (_full(4), HardwareOptions(pixels_per_beat=2)):
        top = NetworkTop(graph, options)
        bank = next(p for p in top.plans if p.node.op == "threshold")
        assert isinstance(bank.stages[0], ThresholdBank)
        bit_exact_in_simulator(graph, n=3, options=options, seed=5)
        timing_matches_model(graph, options)
    assert len(bank.stages[0].thresholds) == 4  # the 2 pixels per beat folded before the bank


def _conv_activation_net(seed=0) -> ir.ModelGraph:
    """conv (linear, quantized) -> Activation(quantized_relu) -> flatten -> dense."""
    rng = np.random.default_rng(seed)
    kq = QuantizedBits(5, 0)
    nodes = [
        ir.Input("in", (4, 8, 2), (4, 8, 2)),
        ir.Conv(
            "conv",
            (4, 8, 2),
            (2, 6, 3),
            weights=ir.FloatTensor(rng.normal(size=(3, 3, 2, 3)), kq),
            bias=ir.FloatTensor(rng.normal(size=3) * 0.3, kq),
            kernel=(3, 3),
            stride=(1, 1),
            padding=(0, 0, 0, 0),
            out_quantizer=QuantizedBits(8, 3),  # quantized: the activation is not fused
        ),
        ir.Activation(
            "act", (2, 6, 3), (2, 6, 3), activation=ir.RELU, out_quantizer=QuantizedRelu(4, 2)
        ),
        ir.Flatten("flatten", (2, 6, 3), (36,)),
        ir.Dense(
            "dense",
            (36,),
            (3,),
            weights=ir.FloatTensor(rng.normal(size=(36, 3)), QuantizedBits(6, 1)),
            bias=ir.FloatTensor(rng.normal(size=3), QuantizedBits(6, 1)),
        ),
    ]
    return lower(ir.ModelGraph("conv_act", tuple(nodes)), PrecisionConfig(input=FixedType(8, 4)))


def _pixel_wise_graphs():
    # a BN scale-shift with a quantized ReLU (not folded into the conv); a separate activation
    return [
        (conv_net(h=6, w=8, c=2, scale_shift=True, bn_relu=True, pool=False), "bn"),
        (_conv_activation_net(), "act"),
    ]


def test_pixel_wise_layers_keep_p_pixels():
    """The diagonal of a BN / the clamp of an activation repeated per pixel."""
    for graph, name in _pixel_wise_graphs():
        top = NetworkTop(graph, _full(2))
        plan = next(p for p in top.plans if p.node.name == name)
        assert isinstance(plan.out_format, PixelFormat), name
        assert not any(isinstance(s, PixelSerializer) for s in plan.stages)


@pytest.mark.slow
def test_pixel_wise_layers_are_bit_exact_at_the_model_timing():
    for graph, _ in _pixel_wise_graphs():
        bit_exact_in_simulator(graph, n=2, options=_full(2), seed=7)
        timing_matches_model(graph, _full(2))


def test_the_manifest_records_the_pixels_per_beat():
    from rtlgen.emit import build_manifest
    from rtlgen.sim_tb.tb_manifest import parse_manifest

    graph = conv_net(h=6, w=8, c=2)
    options = HardwareOptions(pixels_per_beat=4)
    manifest = build_manifest(graph, NetworkTop(graph, options), "net", options, 0.0)
    data = manifest.as_json()
    assert data["options"]["pixels_per_beat"] == 4
    assert (data["input"]["beats_per_sample"], data["input"]["elements_per_beat"]) == (12, 8)
    assert parse_manifest(data).options.pixels_per_beat == 4
