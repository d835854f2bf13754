"""QONNX models with float-scale outputs and float logits (an `ir.OutputScale`), `Concat`,
`Mul` by a constant, 1-D convolutions, and inputs in the model's own NCHW/NCL layout
(rtlgen/frontend/qonnx.py, rtlgen/api.py), against QONNX's executor.

Goldens (tests/data/qonnx/, tests/data/make_qonnx_models.py, Brevitas's default float scales):
``mlp_codes`` ends in a default QuantIdentity (integer codes x a float scale: exact, with a
``Mul`` by 0.75 before it), ``mlp_logits`` in a QuantLinear without output quantizer (float
logits, per-channel weight scales), ``conv1d_cat`` (TorchScript exporter) and
``conv1d_cat_dyn`` (dynamo exporter): two Conv1d branches, a per-channel ``Mul``, ``Concat``,
MaxPool1d, flatten, float logits; ``cnn_bn_float``: Conv -> BatchNorm2d (one negative gamma)
-> QuantReLU blocks and a BatchNorm1d on the float logits; ``mlp_logits_qcdq``: mlp_logits
as plain-ONNX QCDQ (``export_onnx_qcdq``: float-scale QuantizeLinear/DequantizeLinear);
``mlp_tensornorm``: float logits normalized like brevitas_examples' TensorNorm (``Sub``,
``Div``, ``Mul``, ``Add`` of constants on the stream, one negative weight);
``*_act_per_channel*``: activation quantizers with one scale per channel (QONNX and QCDQ,
float and power-of-two, after a BatchNorm2d too, a residual Add of two such streams, 1-D);
``cnn_bn_qcdq``: BatchNormalization in QCDQ. Float logits: QONNX's executor sums float32 products in
ONNX Runtime's order, rtlgen rounds the exact value once, so they agree within float32 (a
few ulps); the integer accumulators the hardware outputs are exactly the executor's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

from rtlgen import ir  # noqa: E402
from rtlgen.api import (  # noqa: E402
    dequantized_outputs,
    load_model,
    predict_outputs,
    to_stream_layout,
)
from rtlgen.frontend.qonnx import read_qonnx  # noqa: E402
from rtlgen.ops.concatenate import Concat  # noqa: E402
from rtlgen.quant.errors import RtlgenError, UnsupportedError  # noqa: E402
from rtlgen.quant.fixed import FixedType  # noqa: E402
from rtlgen.quant.reference import predict, quantize_input, run_int, run_int_outputs  # noqa: E402
from rtlgen.serialize import load_graph, save_graph  # noqa: E402

from .cli_run import rtlgen  # noqa: E402
from .ops.network_checks import bit_exact_in_simulator  # noqa: E402

DATA = Path(__file__).parents[1] / "data" / "qonnx"
LOGITS = (
    "mlp_logits", "conv1d_cat", "conv1d_cat_dyn", "cnn_bn_float", "mlp_logits_qcdq",
    "mlp_tensornorm",
)


def _golden(name: str) -> tuple[ir.ModelGraph, np.ndarray, np.ndarray]:
    expected = np.load(DATA / f"{name}_expected.npz")
    return load_model(DATA / f"{name}.onnx"), expected["x"], expected["y"]


def _within_float32(got: np.ndarray, want: np.ndarray, ulps: int = 8) -> None:
    """Equal within ``ulps`` float32 steps of the largest output (the executor's float32
    sums in its own order against rtlgen's one rounding of the exact value)."""
    step = np.spacing(np.float32(np.abs(want).max()))
    np.testing.assert_allclose(got, want, rtol=0, atol=float(ulps * step))


# ---------------------------------------------------------------------------------------
# float-scale outputs
# ---------------------------------------------------------------------------------------
def test_float_scale_output_codes_are_exact():
    """A float-scale output Quant: integer codes in hardware, code x scale in float32 is
    exactly the executor's output (and a Mul by a constant before it is folded in)."""
    graph, x, want = _golden("mlp_codes")
    (scale,) = graph.output_scales
    assert graph.output.op == "threshold" and graph.output.out_type.frac == 0
    assert scale.order_preserving and not np.any(scale.bias)
    got = predict(graph, x)
    np.testing.assert_array_equal(got.astype(np.float32), want)
    codes = run_int(graph, quantize_input(graph, x))
    # float32(code x scale): the scale is the Quant's float32 scale (x 0.75, the Mul's)
    np.testing.assert_array_equal((codes * scale.scale[0]).astype(np.float32), got)


@pytest.mark.parametrize("name", LOGITS)
def test_float_logits_within_float32_and_accumulators_exact(name):
    graph, x, want = _golden(name)
    (scale,) = graph.output_scales
    assert not scale.order_preserving  # per-channel scales and biases
    if name == "mlp_tensornorm":  # Sub/Div/Mul/Add of constants joined the output scale
        assert [n.op for n in graph.nodes] == ["input", "threshold", "dense", "threshold", "dense"]
        assert np.sum(scale.scale < 0) == 1
    (got,) = predict_outputs(graph, to_stream_layout(graph, x)).values()
    assert got.dtype == np.float64 and np.array_equal(got, got.astype(np.float32))
    _within_float32(got.reshape(want.shape), want)
    # the integer outputs: the executor's value, unscaled, is within 1/8 of rtlgen's integer
    acc = run_int(graph, quantize_input(graph, to_stream_layout(graph, x)))
    real = graph.output.out_type.to_float(acc)
    implied = (want.reshape(acc.shape).astype(np.float64) - scale.bias) / scale.scale
    assert np.abs(implied - real).max() * 2**graph.output.out_type.frac < 0.125


def test_no_arg_max_where_the_scale_reorders_classes():
    """The hardware's arg-max (tuser) is of the integer outputs: kept only when one scale
    and one bias serve every class."""
    from rtlgen.plan import plan_network

    logits, _, _ = _golden("mlp_logits")
    codes, _, _ = _golden("mlp_codes")
    assert plan_network(logits).outputs[0].classes == 0
    assert plan_network(codes).outputs[0].classes == 6


def test_output_scale_is_saved_with_the_graph(tmp_path):
    graph, x, _ = _golden("conv1d_cat")
    save_graph(graph, tmp_path / "graph.npz")
    loaded = load_graph(tmp_path / "graph.npz")
    (a,), (b,) = graph.output_scales, loaded.output_scales
    np.testing.assert_array_equal(a.scale, b.scale)
    np.testing.assert_array_equal(a.bias, b.bias)
    assert loaded.input_layout == "ncl"
    xs = to_stream_layout(graph, x)
    by_node = run_int_outputs(loaded, quantize_input(loaded, xs))
    (got,) = dequantized_outputs(loaded, by_node).values()
    np.testing.assert_array_equal(got, predict(graph, xs).reshape(len(xs), -1))


def test_output_scale_is_checked():
    with pytest.raises(RtlgenError, match="non-zero"):
        ir.OutputScale(np.array([1.0, 0.0]), np.zeros(2))
    assert not ir.OutputScale(-np.ones(2), np.zeros(2)).order_preserving
    with pytest.raises(RtlgenError, match="biases"):
        ir.OutputScale(np.ones(2), np.zeros(3))
    graph, _, _ = _golden("mlp_codes")
    with pytest.raises(RtlgenError, match="channels"):
        ir.ModelGraph(
            graph.name, graph.nodes, output_scales=(ir.OutputScale(np.ones(2), np.zeros(2)),)
        )


def test_manifest_dequantize_field_reads_and_checks(tmp_path):
    """The manifest's output `dequantize` (scale and bias per channel) is optional, read
    back equal, and a bad one is one ManifestError line."""
    import json

    from rtlgen.sim_tb.tb_manifest import Dequantize, ManifestError, _dequantize

    spec = Dequantize((0.5, 0.25), (0.0, -1.5))
    assert _dequantize(json.loads(json.dumps(spec.as_json())), "outputs[0].dequantize", (2,)) == spec
    assert _dequantize(None, "x", (2,)) is None
    np.testing.assert_array_equal(spec.apply(np.array([[2, 4]])), [[1.0, -0.5]])
    for bad in ({"scale": [1.0], "bias": [0.0]}, {"scale": [0.0, 1.0], "bias": [0, 0]},
                {"scale": [1.0, "x"], "bias": [0, 0]}, {"scale": [1.0, 1.0]}):
        with pytest.raises(ManifestError):
            _dequantize(bad, "outputs[0].dequantize", (2,))


# ---------------------------------------------------------------------------------------
# Concat, Mul, Conv1d
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["conv1d_cat", "conv1d_cat_dyn"])
def test_conv1d_concat_mul_graph(name):
    """Both exporters: NCL input -> (L, C) stream; Conv1d -> rtlgen's 1-D conv; the
    per-channel Mul and the Concat of two float-scale branches -> one Concat node and one
    Threshold with per-channel maps; MaxPool1d; flatten in PyTorch's C, L order."""
    graph, _, _ = _golden(name)
    ops = [n.op for n in graph.nodes]
    assert ops == [
        "input", "threshold", "conv1d", "conv1d", "concatenate", "threshold", "maxpool1d",
        "flatten", "dense",
    ]
    assert graph.input_shape == (10, 3) and graph.input_layout == "ncl"
    concat = next(n for n in graph.nodes if isinstance(n, Concat))
    assert concat.input_sizes == (4, 2)
    unlowered = read_qonnx(DATA / f"{name}.onnx")
    step = next(n for n in unlowered.nodes[4:] if n.op == "threshold").bn
    assert step.scale.size == 6 and len(set(step.scale[:4])) == 1
    # the Mul's per-channel gains 0.5 and 1.25 on the second branch's shared scale
    np.testing.assert_allclose(step.scale[4:] / step.scale[4], [1.0, 2.5])


def test_batchnorm_on_float_scales_joins_the_thresholds():
    """Each BatchNormalization on a float-scale layer's output joins its pending map: no BN
    node is left, the Quant after it is one Threshold (falling for the negative gamma)."""
    graph, _, _ = _golden("cnn_bn_float")
    assert [n.op for n in graph.nodes] == [
        "input", "threshold", "conv2d", "threshold", "maxpool2d", "conv2d", "threshold",
        "flatten", "dense",
    ]
    unlowered = read_qonnx(DATA / "cnn_bn_float.onnx")
    step = next(n for n in unlowered.nodes[2:] if n.op == "threshold").bn
    assert step.relu and np.sum(step.scale < 0) == 1
    levels = graph.nodes[3].bias.mantissa  # per channel: the level after each threshold
    falling = np.diff(levels, axis=1) <= 0
    assert falling[1].all() and not falling[0].all()


def test_float_scale_qcdq_is_thresholds_on_integer_weights():
    """Plain-ONNX QCDQ with Brevitas's default float scales: each activation QuantizeLinear
    -> DequantizeLinear is one Threshold (half to even), each DequantizeLinear of int8
    weights keeps the codes (per-channel scales on the second conv): integer weights."""
    graph, x, want = _golden("cnn_float_qcdq")
    assert [n.op for n in graph.nodes] == [
        "input", "threshold", "conv2d", "threshold", "maxpool2d", "conv2d", "threshold",
        "flatten", "dense", "threshold",
    ]
    for node in graph.nodes:
        if node.op in ("conv2d", "dense"):
            assert node.weights.type.frac == 0 and node.bias is None
    np.testing.assert_array_equal(predict(graph, to_stream_layout(graph, x)), want)


@pytest.mark.parametrize("name", ["mlp_logits", "conv1d_cat", "cnn_bn_float"])
def test_float_output_networks_bit_exact_under_backpressure(name):
    graph, _, _ = _golden(name)
    bit_exact_in_simulator(graph, n=3, seed=5)


def _edited(tmp_path: Path, name: str, edit) -> Path:
    model = onnx.load(str(DATA / f"{name}.onnx"))
    edit(model)
    path = tmp_path / f"{name}_edited.onnx"
    onnx.save(model, str(path))
    return path


def _one_line_error(path: Path, *words: str) -> str:
    """An `UnsupportedError` of one line naming ``words`` (the CLI prints it, exit 2:
    test_qonnx.py checks that path; in process here, a subprocess costs seconds)."""
    with pytest.raises(UnsupportedError) as error:
        load_model(path)
    line = str(error.value)
    assert "\n" not in line
    for word in words:
        assert word in line, line
    return line


def _node(model, op_type: str):
    return next(n for n in model.graph.node if n.op_type == op_type)


def test_concat_mul_refusals_are_one_line(tmp_path):
    def concat_axis(model):
        concat = _node(model, "Concat")
        concat.attribute[0].i = 2

    def zero_gain(model):
        mul = _node(model, "Mul")
        for index, tensor in enumerate(model.graph.initializer):
            if tensor.name == mul.input[1]:
                value = 0 * onnx.numpy_helper.to_array(tensor)
                model.graph.initializer[index].CopyFrom(
                    onnx.numpy_helper.from_array(value, tensor.name)
                )

    def two_streams(model):
        mul = _node(model, "Mul")
        mul.input[1] = mul.input[0]

    line = _one_line_error(_edited(tmp_path, "conv1d_cat", concat_axis), "Concat", "axis")
    assert "channel axis" in line
    _one_line_error(_edited(tmp_path, "conv1d_cat", zero_gain), "Mul", "non-zero")
    _one_line_error(_edited(tmp_path, "conv1d_cat", two_streams), "Mul", "constant")


# ---------------------------------------------------------------------------------------
# the model's own layout
# ---------------------------------------------------------------------------------------
def test_inputs_in_the_models_own_layout_or_the_streams():
    graph, x, _ = _golden("cnn_float")
    assert graph.input_layout == "nchw" and graph.source_input_shape == (2, 8, 8)
    notes: list[str] = []
    own = to_stream_layout(graph, x, notes=notes)
    assert own.shape == (len(x), 8, 8, 2) and "model's own (N, C, H, W)" in notes[0]
    np.testing.assert_array_equal(own, x.transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(to_stream_layout(graph, own, notes=notes), own)
    assert "channels-last" in notes[1]
    assert to_stream_layout(graph, x[0]).shape == (1, 8, 8, 2)  # one sample without N
    with pytest.raises(RtlgenError, match=r"\(N, C, H, W\)"):
        to_stream_layout(graph, x[:, :1])
    mlp, _, _ = _golden("mlp_codes")
    assert mlp.input_layout == "" and to_stream_layout(mlp, np.ones((2, 9))).shape == (2, 9)


def test_cli_predict_takes_the_models_layout_and_says_so(tmp_path):
    """`rtlgen predict` on the 1-D model with (N, C, L) inputs, as the golden file holds
    them: it names the layout it used and writes the float logits (float32 values)."""
    graph, x, want = _golden("conv1d_cat")
    np.save(tmp_path / "x.npy", x)
    run = rtlgen("predict", DATA / "conv1d_cat.onnx", "-i", tmp_path / "x.npy", "-o",
                 tmp_path / "y.npy")
    assert run.returncode == 0, run.stderr
    assert "model's own (N, C, L)" in run.stdout
    got = np.load(tmp_path / "y.npy")
    _within_float32(got.astype(np.float32), want)
    np.testing.assert_array_equal(got, predict(graph, to_stream_layout(graph, x)))


def test_inspect_names_the_layout_and_the_output_scale():
    """`rtlgen inspect` (in process) says which layout the input has and how the integer
    output becomes real."""
    from typer.testing import CliRunner

    from rtlgen.cli import app

    result = CliRunner().invoke(app, ["inspect", str(DATA / "conv1d_cat.onnx")])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "input layout: the model's NCL (3x10)" in text
    assert "real value = float32(v x scale + bias) per channel" in text and "with a bias" in text


# ---------------------------------------------------------------------------------------
# per-channel activation scales
# ---------------------------------------------------------------------------------------
#: per-channel activation scales whose outputs are codes or power-of-two logits: exact
PER_CHANNEL_EXACT = (
    "mlp_act_per_channel", "mlp_act_per_channel_qcdq", "cnn_bn_act_per_channel",
    "cnn_bn_act_per_channel_qcdq", "cnn_act_per_channel_po2_qcdq",
)
#: float logits after per-channel float scales: within float32 of the executor's
PER_CHANNEL_LOGITS = (
    "cnn_act_per_channel", "cnn_act_per_channel_qcdq", "res_act_per_channel",
    "conv1d_act_per_channel", "bnn_act_per_channel", "cnn_bnn_act_per_channel",
)


@pytest.mark.parametrize("name", PER_CHANNEL_EXACT + PER_CHANNEL_LOGITS)
def test_per_channel_activation_scales_predict_as_qonnx(name):
    """Brevitas activation quantizers with one scale per channel (QONNX ``Quant`` with a
    (1, C, 1, 1) scale; QCDQ ``QuantizeLinear``/``DequantizeLinear`` with ``axis`` 1 and a 1-D
    scale), float and power-of-two, feeding Gemm/Conv (grouped too), max pools, flattens and
    the output: codes exact, float logits within float32."""
    graph, x, want = _golden(name)
    (got,) = predict_outputs(graph, to_stream_layout(graph, x)).values()
    got = got.reshape(want.shape)
    if name in PER_CHANNEL_EXACT:
        np.testing.assert_array_equal(got.astype(np.float32), want)
    else:
        assert np.array_equal(got, got.astype(np.float32))
        _within_float32(got.astype(np.float32), want)


def test_per_channel_output_scale_is_one_per_class():
    """mlp_act_per_channel ends in a QuantIdentity with one float scale per class: the
    hardware's codes times each class's float32 scale are the executor's outputs exactly,
    and the arg-max is dropped (the scales could reorder the classes)."""
    from rtlgen.plan import plan_network

    graph, x, want = _golden("mlp_act_per_channel")
    (scale,) = graph.output_scales
    assert len(set(scale.scale)) == 5 and not np.any(scale.bias)
    codes = run_int(graph, quantize_input(graph, x))
    np.testing.assert_array_equal((codes * scale.scale).astype(np.float32), want)
    assert plan_network(graph).outputs[0].classes == 0


def _initializer(model, name: str) -> np.ndarray:
    return next(onnx.numpy_helper.to_array(t) for t in model.graph.initializer if t.name == name)


@pytest.mark.parametrize("name", ["mlp_act_per_channel", "mlp_act_per_channel_qcdq"])
def test_per_input_channel_scales_become_integer_weights(name):
    """A float scale per input channel of a Gemm: its integer weight codes times each input
    channel's exact integer multiplier (`integer_ratios` of the QuantReLU's scales): integer
    weights, one scale per output channel; the plain codes would compute something else."""
    from rtlgen.frontend.qonnx import integer_ratios

    graph, x, want = _golden(name)
    model = onnx.load(str(DATA / f"{name}.onnx"))
    quant = next(
        n for n in model.graph.node
        if n.op_type in ("Quant", "QuantizeLinear") and n.name.startswith("/relu1/")
    )
    scales = _initializer(model, quant.input[1]).astype(np.float64).ravel()
    assert scales.size == 12 and len(set(scales)) == 12
    common, multipliers = integer_ratios(scales, "test")
    np.testing.assert_array_equal(common * multipliers, scales)  # exact in float64
    dense = [n for n in graph.nodes if isinstance(n, ir.Dense)][1]
    w = dense.weights.mantissa * 2.0**-dense.weights.type.frac
    codes = w / multipliers[:, None]
    assert np.array_equal(codes, np.round(codes)) and np.abs(codes).max() <= 127
    assert dense.weights.type.width > 30  # ~24-bit multipliers times 8-bit codes
    mantissa = (codes * 2.0**dense.weights.type.frac).astype(np.int64)
    plain_weights = ir.QTensor(mantissa, dense.weights.type)
    plain = graph.with_nodes(
        [n.replace(weights=plain_weights) if n is dense else n for n in graph.nodes]
    )
    (wrong,) = predict_outputs(plain, x).values()
    assert not np.array_equal(wrong.astype(np.float32), want)


def test_integer_ratios_are_exact_and_refuse_wide_spreads():
    from rtlgen.frontend.qonnx import MAX_MULTIPLIER_BITS, integer_ratios

    rng = np.random.default_rng(3)
    scales = rng.uniform(0.001, 0.01, 16).astype(np.float32).astype(np.float64)
    common, multipliers = integer_ratios(scales, "t")
    np.testing.assert_array_equal(common * multipliers, scales)
    assert np.gcd.reduce(multipliers) == 1 and multipliers.max() < 2**MAX_MULTIPLIER_BITS
    # powers of two: shifts; a common float factor: small integers; signs are kept
    _, shifts = integer_ratios(np.array([0.25, 0.0625, 0.5]), "t")
    np.testing.assert_array_equal(shifts, [4, 1, 8])
    s = np.float64(np.float32(0.0371))
    common, small = integer_ratios(np.array([3 * s, -5 * s, s]), "t")
    np.testing.assert_array_equal(small, [3, -5, 1])
    assert common == s
    with pytest.raises(UnsupportedError, match="integer multipliers"):
        integer_ratios(np.array([0.00415789, 1e-10], dtype=np.float32).astype(float), "t")


def test_round_to_float32_is_the_exact_value_rounded_once():
    """`round_to_float32(x, s, b)` is the float32 nearest (ties to even) to the exact
    ``x * s + b``, for accumulators beyond float32's and float64's exact integers and at
    constructed float32 midpoints (where float64 arithmetic rounds twice)."""
    from fractions import Fraction

    from rtlgen.frontend.qonnx import round_to_float32

    def exact(x, s, b):
        out = []
        for xi, si, bi in zip(x, s, b, strict=True):
            q = int(xi) * Fraction(float(si)) + Fraction(float(bi))
            f = np.float32(float(q))
            near = [np.nextafter(f, np.float32(-np.inf)), f, np.nextafter(f, np.float32(np.inf))]
            d = [abs(Fraction(float(c)) - q) for c in near]
            best = [c for c, di in zip(near, d, strict=True) if di == min(d)]
            out.append(min(best, key=lambda c: int(np.array(c).view(np.int32)) & 1))
        return np.array(out, np.float32)

    rng = np.random.default_rng(11)
    for bits in (20, 45, 60):
        x = rng.integers(-(2**bits), 2**bits, 3000)
        s = rng.random(3000).astype(np.float32) * rng.random(3000).astype(np.float32) * 2.0**-bits
        b = rng.normal(0, 1, 3000).astype(np.float32).astype(np.float64)
        np.testing.assert_array_equal(round_to_float32(x, s, b), exact(x, s, b))
    x = rng.integers(1, 2**20, 2000)
    s = np.full(2000, 2.0**-30)
    low = (x * s).astype(np.float32)
    mid = (low.astype(np.float64) + np.nextafter(low, np.float32(np.inf))) / 2
    for nudge in (0.0, 2.0**-75, -(2.0**-75)):
        b = mid - x * s + nudge  # x * s + b is a midpoint, or just beside it
        np.testing.assert_array_equal(round_to_float32(x, s, b), exact(x, s, b))


def test_wide_accumulators_are_decided_exactly():
    """`QuantStep.apply_mantissas` (what the threshold search calls) decides accumulators
    beyond 2**24 exactly, where the float32 input `apply` takes would round them: the
    two differ on such inputs, and the exact one equals the rational computation."""
    from fractions import Fraction

    from rtlgen.frontend.qonnx import QuantStep

    s_out = np.float32(0.0371)
    # one code per ~2**18 accumulator steps just above 2**42 (float32's step there: 2**18)
    scale = np.float64(s_out) * np.float64(np.float32(0.77)) * 2.0**-18
    bias = -(2.0**42) * scale
    step = QuantStep(np.array([scale]), np.array([bias]), True, np.array([s_out]), 0, 255,
                     "ROUND", 1.0)
    rng = np.random.default_rng(2)
    acc = 2**42 + rng.integers(0, 2**26, (2000, 1))
    got = step.apply_mantissas(acc, 0)
    v = [np.float32(float(int(a) * Fraction(scale) + Fraction(bias))) for a in acc[:, 0]]
    t = (np.maximum(np.array(v, np.float32), 0) / s_out).astype(np.float32)
    np.testing.assert_array_equal(got[:, 0], np.round(np.clip(t, 0, 255)))
    assert len(np.unique(got)) > 150  # ~197 codes
    assert not np.array_equal(step.apply(acc.astype(np.float32)), got)


def test_batchnorm_before_per_channel_power_of_two_scales_is_one_threshold():
    """Conv -> BatchNormalization -> Relu -> Quant with one power-of-two scale per channel
    (no common 8-bit fixed-point type): one Threshold of the float BN (`BatchNormQuantStep`)
    with the per-channel scales pending, which the next conv takes as shifts of its
    power-of-two weights."""
    graph, _, _ = _golden("cnn_bn_act_per_channel")
    assert [n.op for n in graph.nodes] == [
        "input", "conv2d", "threshold", "maxpool2d", "conv2d", "threshold", "flatten", "dense",
    ]
    unlowered = read_qonnx(DATA / "cnn_bn_act_per_channel.onnx")
    first = next(n for n in unlowered.nodes if n.op == "threshold")
    assert first.bn.label == "float BN" and first.bn.relu
    np.testing.assert_array_equal(first.bn.s_out, [0.125, 0.0625, 0.03125, 0.125])
    # the next conv's power-of-two weights times each input channel's shift (scales
    # 2**-3, 2**-4, 2**-5, 2**-3 = 2**-5 x (4, 2, 1, 4))
    model = onnx.load(str(DATA / "cnn_bn_act_per_channel.onnx"))
    conv = next(n for n in model.graph.node if n.name == "/c2/Conv")
    w_quant = next(n for n in model.graph.node if n.output[0] == conv.input[1])
    w = _initializer(model, w_quant.input[0]).astype(np.float64)
    w_scale = _initializer(model, w_quant.input[1]).astype(np.float64)
    codes = np.clip(np.round(w / w_scale), -127, 127) * w_scale  # the exported weights
    conv2 = [n for n in graph.nodes if isinstance(n, ir.Conv)][1]
    want = codes.transpose(2, 3, 1, 0) * np.array([4, 2, 1, 4])[:, None]
    np.testing.assert_array_equal(conv2.weights.values, want)


def test_batchnorm_in_qcdq_is_thresholds():
    """QCDQ keeps BatchNormalization nodes: before a QuantizeLinear (half to even) with one
    power-of-two scale it is a Threshold as before a Quant, with per-channel power-of-two
    scales the same Threshold of codes as in QONNX; both models equal the executor."""
    graph, _, _ = _golden("cnn_bn_qcdq")
    assert [n.op for n in graph.nodes] == [
        "input", "fixed_quantize", "conv2d", "threshold", "maxpool2d", "flatten", "dense",
        "threshold", "dense",
    ]
    per_channel, _, _ = _golden("cnn_bn_act_per_channel_qcdq")
    assert [n.op for n in per_channel.nodes] == [
        "input", "fixed_quantize", "conv2d", "threshold", "maxpool2d", "conv2d", "threshold",
        "flatten", "dense",
    ]
    unlowered = read_qonnx(DATA / "cnn_bn_act_per_channel_qcdq.onnx")
    first = next(n for n in unlowered.nodes if n.op == "threshold")
    assert first.bn.label == "float BN"
    np.testing.assert_array_equal(first.bn.s_out, [0.125, 0.0625, 0.03125, 0.125])


def test_per_channel_power_of_two_qcdq_is_per_channel_widths():
    """QCDQ with a power-of-two scale per channel (``axis`` 1): one FixedQuantize with a
    fractional width per channel."""
    from rtlgen.ops.hgq2 import FixedQuantize

    graph, _, _ = _golden("cnn_act_per_channel_po2_qcdq")
    quantizers = [n for n in graph.nodes if isinstance(n, FixedQuantize)][1:]
    assert len(quantizers) == 2
    np.testing.assert_array_equal(np.unique(quantizers[0].frac_bits.mantissa), [3, 4, 5])


def test_add_of_different_per_channel_scales_is_an_integer_sum():
    """res_act_per_channel adds a QuantIdentity's and a QuantReLU's codes, each with its own
    float scale per channel: per channel ``a * s_a + b * s_b = common * (a * m_a + b * m_b)``
    with exact integers (two depthwise 1x1 convolutions of the integer ratios), then the Add."""
    from rtlgen.frontend.qonnx import integer_ratios

    graph, _, _ = _golden("res_act_per_channel")
    ops = [n.op for n in graph.nodes]
    at = ops.index("add")
    scales = [n for n in graph.nodes[at - 2 : at]]
    assert [n.op for n in scales] == ["conv2d", "conv2d"]
    m_a, m_b = (np.diag(n.weights.values[0, 0]) for n in scales)
    model = onnx.load(str(DATA / "res_act_per_channel.onnx"))
    s_a, s_b = (
        _initializer(model, next(n for n in model.graph.node if n.name == f"/{q}/act_quant/"
                                 "export_handler/Quant").input[1]).ravel().astype(np.float64)
        for q in ("act2", "relu1")
    )  # fmt: skip
    for c in range(3):
        common, (want_a, want_b) = integer_ratios(np.array([s_a[c], s_b[c]]), "t")
        assert (m_a[c], m_b[c]) == (want_a, want_b) and common * m_a[c] == s_a[c]


@pytest.mark.parametrize(
    "name",
    ["mlp_act_per_channel_qcdq", "cnn_bnn_act_per_channel",
     # the others in the slow set (the default run stays under 5 minutes)
     pytest.param("cnn_act_per_channel", marks=pytest.mark.slow),
     pytest.param("res_act_per_channel", marks=pytest.mark.slow),
     pytest.param("conv1d_act_per_channel", marks=pytest.mark.slow),
     pytest.param("bnn_act_per_channel", marks=pytest.mark.slow)],
)  # fmt: skip
def test_per_channel_networks_bit_exact_under_backpressure(name):
    """Integer weights of 30+ bits and 40+-bit accumulators into threshold banks, in
    Amaranth's simulator under random valid/ready: equal to the integer reference."""
    graph, _, _ = _golden(name)
    bit_exact_in_simulator(graph, n=3, seed=5)


def _upto(graph: ir.ModelGraph, name: str) -> ir.ModelGraph:
    """A chain's first nodes up to ``name`` (its output, unscaled)."""
    import dataclasses

    nodes = graph.nodes[: graph.index_of(name) + 1]
    return dataclasses.replace(graph, nodes=nodes, outputs=(name,), output_scales=())


def _bipolar_scales(model) -> list[str]:
    return [n.input[1] for n in model.graph.node if n.op_type == "BipolarQuant"]


@pytest.mark.parametrize("name", ["bnn_act_per_channel", "cnn_bnn_act_per_channel"])
def test_per_channel_bipolar_scales_are_codes_with_the_scales_pending(tmp_path, name):
    """Binary activations with one float scale per channel (Brevitas: a ``BipolarQuant`` of
    a (1, C) scale after a BatchNorm, on a float-scale layer's pending map (bnn) or a
    fixed-point conv (cnn_bnn)): threshold nodes emit the codes +-1 and the next layer
    multiplies its integer weights by each channel's exact integer ratio. The first one's
    decisions do not depend on its scales (the same codes with one scale 1: fixed point),
    the logits do."""
    graph, x, want = _golden(name)
    bipolar = [n for n in graph.nodes if n.op == "threshold" and n.out_type.width == 2]
    assert len(bipolar) == 2 and all(n.out_type == FixedType(2, 0, True) for n in bipolar)
    layers = [n for n in graph.nodes if n.op in ("dense", "conv2d")]
    assert all(n.weights.type.width > 20 for n in layers[1:])  # scaled by ~24-bit ratios

    def unit_scales(model):
        for scale in _bipolar_scales(model):
            _set(model, scale, np.ones(1, np.float32))

    unit = load_model(_edited(tmp_path, name, unit_scales))
    xs = to_stream_layout(graph, x)
    first = next(n for n in unit.nodes if n.op == "threshold" and n.out_type.width == 2)
    codes = run_int(_upto(graph, bipolar[0].name), quantize_input(graph, xs))
    same = run_int(_upto(unit, first.name), quantize_input(unit, xs))
    np.testing.assert_array_equal(codes, same)
    assert set(np.unique(codes)) == {-1, 1}
    (wrong,) = predict_outputs(unit, xs).values()
    assert np.abs(wrong.reshape(want.shape) - want).max() > 0.01


def _one_bit_model(path: Path, op: str, scale: np.ndarray, signed: int = 1) -> Path:
    """The input (1, 4) -> ``op`` (a 1-bit ``Quant`` or a ``BipolarQuant``) -> MatMul."""
    from onnx import TensorProto, helper, numpy_helper

    arrays = {"s": scale, "z": np.zeros(1), "b": np.ones(1), "w": _ONE_BIT_WEIGHTS}
    inits = [numpy_helper.from_array(v.astype(np.float32), k) for k, v in arrays.items()]
    attrs = {"signed": signed, "narrow": 0, "rounding_mode": "ROUND"} if op == "Quant" else {}
    inputs = ["x", "s", "z", "b"] if op == "Quant" else ["x", "s"]
    nodes = [
        helper.make_node(op, inputs, ["q"], name="q", domain="qonnx.custom_op.general", **attrs),
        helper.make_node("MatMul", ["q", "w"], ["y"], name="fc"),
    ]
    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, d]) for n, d in (("x", 4), ("y", 2))]
    onnx.save(helper.make_model(helper.make_graph(nodes, "one_bit", io[:1], io[1:], inits)), path)
    return path


_ONE_BIT_WEIGHTS = np.array([[1, -2], [0.5, 1], [-1, 0.25], [2, 1]])


def test_bipolar_on_the_input(tmp_path):
    """A 1-bit signed ``Quant`` (QONNX executes it as bipolar) or a ``BipolarQuant`` with a
    float scale per feature reading the graph input: ``scale * (x >= 0 ? 1 : -1)`` (0 -> +1),
    then the layer; a 1-bit unsigned Quant is refused in one line."""
    x = np.array([[0.5, -0.25, 0.0, -3.0], [-1, 2, -0.125, 1]])
    sign = np.where(x >= 0, 1.0, -1.0)
    scale = np.array([[0.3, 0.7, 1.1, 0.9]], np.float32)
    for op, s, want in (
        ("Quant", np.ones(1), sign @ _ONE_BIT_WEIGHTS),
        ("BipolarQuant", scale, (sign * scale.astype(np.float64)) @ _ONE_BIT_WEIGHTS),
    ):
        graph = load_model(_one_bit_model(tmp_path / f"{op}.onnx", op, s))
        assert [n.op for n in graph.nodes] == ["input", "threshold", "dense"]
        (got,) = predict_outputs(graph, x).values()
        _within_float32(got.astype(np.float32), want.astype(np.float32), ulps=2)
    unsigned = _one_bit_model(tmp_path / "unsigned.onnx", "Quant", np.ones(1), signed=0)
    _one_line_error(unsigned, "node 'q'", "1-bit unsigned")


def test_bipolar_refusals_are_one_line(tmp_path):
    """A bipolar scale that is not positive, or one per pixel: one line naming the node."""

    def negative(model):
        scale = _bipolar_scales(model)[0]
        _set(model, scale, -_initializer(model, scale))

    def per_pixel(model):
        _set(model, _bipolar_scales(model)[0], np.linspace(0.5, 1, 8, dtype=np.float32)[:, None])

    _one_line_error(_edited(tmp_path, "bnn_act_per_channel", negative), "/act1/", "positive")
    _one_line_error(_edited(tmp_path, "cnn_bnn_act_per_channel", per_pixel), "/act1/", "per pixel")


def _set(model, name: str, value: np.ndarray) -> None:
    for index, tensor in enumerate(model.graph.initializer):
        if tensor.name == name:
            model.graph.initializer[index].CopyFrom(onnx.numpy_helper.from_array(value, name))
            return
    raise KeyError(name)


def test_per_channel_refusals_are_one_line(tmp_path):
    """Per-pixel scales (QCDQ ``axis`` 2, QONNX a (1, 1, H, 1) scale), per-channel scales
    too far apart for exact integer multipliers, and a DequantizeLinear whose per-channel
    scale differs from its QuantizeLinear's: one line naming the node."""

    def relu1(model, op):
        return next(n for n in model.graph.node if n.op_type == op and n.name.startswith("/relu1/"))

    pixel_scales = np.linspace(0.01, 0.02, 8, dtype=np.float32)

    def per_pixel_qcdq(model):
        for op in ("QuantizeLinear", "DequantizeLinear"):
            node = relu1(model, op)
            node.attribute[0].i = 2
        quant = relu1(model, "QuantizeLinear")
        _set(model, quant.input[1], pixel_scales)
        _set(model, quant.input[2], np.zeros(8, np.uint8))

    def per_pixel_qonnx(model):
        _set(model, relu1(model, "Quant").input[1], pixel_scales.reshape(1, 1, 8, 1))

    def far_apart(model):
        quant = relu1(model, "QuantizeLinear")
        scale = _initializer(model, quant.input[1]).copy()
        scale[1] = 1e-10
        _set(model, quant.input[1], scale)

    def differ(model):
        dq = relu1(model, "DequantizeLinear")
        scale = _initializer(model, dq.input[1]).copy()
        scale[0] *= 2
        model.graph.initializer.append(onnx.numpy_helper.from_array(scale, "other"))
        dq.input[1] = "other"

    qcdq, qonnx = "cnn_act_per_channel_qcdq", "cnn_act_per_channel"
    _one_line_error(_edited(tmp_path, qcdq, per_pixel_qcdq), "/relu1/", "per pixel")
    _one_line_error(_edited(tmp_path, qonnx, per_pixel_qonnx), "/relu1/", "per pixel")
    _one_line_error(_edited(tmp_path, qcdq, far_apart), "/c2/Conv", "multipliers")
    _one_line_error(_edited(tmp_path, qcdq, differ), "DequantizeLinear", "differs")


# ---------------------------------------------------------------------------------------
# slow: Verilator
# ---------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize(
    "name", ["mlp_logits", "conv1d_cat", "cnn_act_per_channel_qcdq", "cnn_bnn_act_per_channel"]
)
def test_convert_and_sim_float_outputs(tmp_path, name):
    """`rtlgen convert` + `rtlgen sim` (Verilator, backpressure 0.3) with inputs in the
    model's own layout: bit-exact integers, `sim -o` = `predict` (the output scale from
    graph.npz), the manifest's `dequantize` = the graph's output scale."""
    import json

    graph, x, want = _golden(name)
    np.save(tmp_path / "x.npy", x[:6])
    out = tmp_path / "design"
    run = rtlgen("convert", DATA / f"{name}.onnx", "-o", out)
    assert run.returncode == 0, run.stderr
    run = rtlgen("sim", out, "-i", tmp_path / "x.npy", "-o", tmp_path / "y.npy",
                 "--backpressure", "0.3", timeout=1200)
    assert run.returncode == 0, run.stdout + run.stderr
    simulated = np.load(tmp_path / "y.npy")
    np.testing.assert_array_equal(simulated, predict(graph, to_stream_layout(graph, x[:6])))
    _within_float32(simulated.astype(np.float32), want[:6])
    manifest = json.loads((out / "manifest.json").read_text())
    dequantize = manifest["outputs"][0]["dequantize"]
    (scale,) = graph.output_scales
    assert dequantize == {"scale": scale.scale.tolist(), "bias": scale.bias.tolist()}
    assert manifest["outputs"][0]["classes"] is None
