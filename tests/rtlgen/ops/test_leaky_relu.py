# amaranth: UnusedElaboratable=no
"""Leaky ReLUs as an op (rtlgen.ops.leaky_relu): LeakyReLU (alpha / Keras 3 negative_slope),
ReLU(max_value, negative_slope, threshold), ThresholdedReLU, PReLU (per-channel alphas, and
alphas per position: per element or shared along some axes, on images and sequences),
the leaky_relu activation string and QKeras quantized_relu(negative_slope); refusals; a CNN
with PReLU and an MLP in Amaranth's simulator; saved graphs.

Float models: within `leaky_error_bound` of Keras (the slope rounded to 16 bits, the output
to ``result_frac`` bits, Keras's float32). QKeras: bit-exact.
"""

from __future__ import annotations

import numpy as np
import pytest

from rtlgen import ir
from rtlgen.hardware import HardwareOptions
from rtlgen.layers.lookup import PositionalPiecewiseLinear
from rtlgen.ops.leaky_relu import LeakyRelu, leaky_node, leaky_spec
from rtlgen.passes import PrecisionConfig, lower
from rtlgen.plan import plan_network
from rtlgen.quant.errors import ModelFileError, RtlgenError, UnsupportedError
from rtlgen.quant.fixed import FixedType
from rtlgen.quant.quantizers import QuantizedBits, QuantizedLeakyRelu
from rtlgen.quant.reference import predict
from rtlgen.serialize import load_graph
from tests.models import exact_inputs, layer_entry

from .network_checks import bit_exact_in_simulator, bit_exact_in_verilator, timing_matches_model
from .spatial_nets import keras_graph, predicts_like_keras, read_handmade, round_trips, tamper


def keras_leaky(x, alpha, threshold=0.0, max_value=None):
    """Keras's ReLU in float64: x > t ? min(x, M) : alpha * (x - t)."""
    top = x if max_value is None else np.minimum(x, max_value)
    return np.where(x > threshold, top, alpha * (x - threshold))


# ---------------------------------------------------------------------------------------
# front-end: hand-written configs
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("key", ["alpha", "negative_slope"])
def test_leaky_relu_layer_reads_alpha_in_both_keras_spellings(tmp_path, key):
    entry = layer_entry("LeakyReLU", {"name": "lk", key: 0.25})
    graph = read_handmade(tmp_path, [entry], (5,))
    (node,) = graph.nodes[1:]
    assert isinstance(node, LeakyRelu) and node.scale.values.tolist() == [0.25] * 5
    x = exact_inputs((5,), 32)
    # dyadic slope, finer output: exact
    np.testing.assert_array_equal(predict(graph, x), keras_leaky(x.astype(np.float64), 0.25))


@pytest.mark.parametrize(
    "config,alpha,threshold,max_value",
    [
        ({"negative_slope": 0.125, "threshold": 0.5}, 0.125, 0.5, None),
        ({"max_value": 2.5, "negative_slope": 0.25, "threshold": 1.0}, 0.25, 1.0, 2.5),
        ({"threshold": -0.5, "negative_slope": 0.5}, 0.5, -0.5, None),
    ],
)
def test_relu_with_slope_or_threshold_is_a_leaky_node(
    tmp_path, config, alpha, threshold, max_value
):
    graph = read_handmade(tmp_path, [layer_entry("ReLU", {"name": "r", **config})], (4,))
    (node,) = graph.nodes[1:]
    assert isinstance(node, LeakyRelu)
    x = exact_inputs((4,), 64).astype(np.float64)
    np.testing.assert_array_equal(predict(graph, x), keras_leaky(x, alpha, threshold, max_value))


def test_plain_relu_stays_a_clamp(tmp_path):
    graph = read_handmade(tmp_path, [layer_entry("ReLU", {"name": "r", "max_value": 6.0})], (4,))
    (node,) = graph.nodes[1:]
    assert isinstance(node, ir.Activation) and node.activation == ir.Clamp(0.0, 6.0)


def test_thresholded_relu(tmp_path):
    graph = read_handmade(
        tmp_path, [layer_entry("ThresholdedReLU", {"name": "t", "theta": 1.0})], (4,)
    )
    x = exact_inputs((4,), 64).astype(np.float64)
    np.testing.assert_array_equal(predict(graph, x), np.where(x > 1.0, x, 0.0))


def test_prelu_per_channel_alphas_on_an_image(tmp_path):
    alphas = np.array([0.25, -0.5, 1.5], dtype=np.float32)
    entry = layer_entry("PReLU", {"name": "p", "shared_axes": [1, 2]})
    graph = read_handmade(tmp_path, [entry], (2, 3, 3), {"p": {"alpha": alphas.reshape(1, 1, 3)}})
    (node,) = graph.nodes[1:]
    assert node.scale.values.tolist() == alphas.tolist()
    x = exact_inputs((2, 3, 3), 16).astype(np.float64)
    np.testing.assert_array_equal(predict(graph, x), keras_leaky(x, alphas))


def test_leaky_relu_activation_string_has_slope_one_fifth(tmp_path):
    entry = layer_entry("Activation", {"name": "a", "activation": "leaky_relu"})
    (node,) = read_handmade(tmp_path, [entry], (3,)).nodes[1:]
    assert isinstance(node, LeakyRelu) and node.scale.values[0] == pytest.approx(0.2, abs=1e-5)


def test_unsupported_options_are_refused(tmp_path):
    relu = layer_entry("ReLU", {"name": "r", "threshold": -1.0, "max_value": 2.0})
    with pytest.raises(
        UnsupportedError, match=r"layer 'r' \(ReLU\): threshold=-1.0 with max_value"
    ):
        read_handmade(tmp_path, [relu], (3,))
    with pytest.raises(UnsupportedError, match=r"layer 'r' \(ReLU\): negative_slope=-0.5"):
        read_handmade(tmp_path, [layer_entry("ReLU", {"name": "r", "negative_slope": -0.5})], (3,))
    with pytest.raises(ModelFileError, match="shared_axes"):
        read_handmade(tmp_path, [layer_entry("PReLU", {"name": "p", "shared_axes": [7]})], (3,))
    # a threshold off the input grid with a slope cannot be exact
    with pytest.raises(RtlgenError, match=r"layer 'r'.*multiple of the input step"):
        read_handmade(
            tmp_path,
            [layer_entry("ReLU", {"name": "r", "threshold": 0.1, "negative_slope": 0.5})],
            (3,),
        )


# ---------------------------------------------------------------------------------------
# real models
# ---------------------------------------------------------------------------------------
def test_keras_model_within_the_error_bound(tmp_path):
    """LeakyReLU(0.3): 0.3 becomes a 16-bit slope; the output has 10 fraction bits; each
    node's ``max_error`` bounds the difference to Keras (checked on the last node, whose
    input is the exact Keras input here)."""
    tf = pytest.importorskip("tensorflow")

    model = tf.keras.Sequential(
        [
            tf.keras.layers.InputLayer(input_shape=(2, 2, 3)),
            tf.keras.layers.LeakyReLU(alpha=0.3),
            tf.keras.layers.PReLU(shared_axes=[1, 2]),
        ],  # fmt: skip
        name="leaky",
    )
    model.layers[1].set_weights([np.array([0.25, 0.1, -0.75], dtype=np.float32).reshape(1, 1, 3)])
    graph = keras_graph(model, tmp_path, FixedType(8, 4))
    x = exact_inputs((2, 2, 3), 64)
    got, want = predict(graph, x), model.predict(x, verbose=0).astype(np.float64)
    bound = sum(n.max_error for n in graph.nodes[1:]) * 2  # the first error scaled by |alpha| < 1
    assert np.max(np.abs(got - want)) <= bound
    assert bound < 4e-3


def test_qkeras_quantized_leaky_relu_is_bit_exact(tmp_path):
    tf = pytest.importorskip("tensorflow")
    qkeras = pytest.importorskip("qkeras")

    tf.keras.utils.set_random_seed(3)
    q4 = "quantized_bits(4,0,alpha=1)"
    model = tf.keras.Sequential(
        [
            tf.keras.layers.InputLayer(input_shape=(6,)),
            qkeras.QDense(8, kernel_quantizer=q4, bias_quantizer=q4),
            qkeras.QActivation("quantized_relu(4,1,negative_slope=0.25)"),
            qkeras.QDense(
                5,
                kernel_quantizer=q4,
                bias_quantizer=q4,
                activation="quantized_relu(6,2,negative_slope=0.5)",
            ),
            qkeras.QDense(3, kernel_quantizer=q4, bias_quantizer=q4),
        ],
        name="qleaky",
    )
    graph = predicts_like_keras(model, tmp_path, n=256, seed=4, input_type=FixedType(8, 4))
    leaky = [n for n in graph.nodes if isinstance(n, LeakyRelu)]
    assert len(leaky) == 2 and leaky[0].out_clamp == ir.Clamp(-0.5, None)
    quantizer = QuantizedLeakyRelu(4, 1, 0.25)
    v = np.linspace(-4, 4, 257)
    np.testing.assert_array_equal(
        quantizer.reference(v),
        qkeras.quantized_relu(4, 1, negative_slope=0.25)(v.astype(np.float32)).numpy(),
    )


# ---------------------------------------------------------------------------------------
# hardware
# ---------------------------------------------------------------------------------------
def prelu_cnn() -> ir.ModelGraph:
    """conv 3x3 (QKeras-style) -> PReLU (per channel) -> quantized leaky ReLU -> flatten ->
    dense -> ReLU(negative_slope, threshold, max_value)."""
    rng = np.random.default_rng(7)
    q = QuantizedBits(5, 0, alpha=1)
    conv = ir.Conv(
        "conv", (5, 5, 2), (3, 3, 3), weights=ir.FloatTensor(rng.normal(size=(3, 3, 2, 3)), q),
        bias=ir.FloatTensor(rng.normal(size=3) * 0.3, q), kernel=(3, 3), stride=(1, 1),
    )  # fmt: skip
    dense = ir.Dense(
        "dense", (27,), (4,), weights=ir.FloatTensor(rng.normal(size=(27, 4)), q),
        bias=ir.FloatTensor(rng.normal(size=4) * 0.3, q),
    )  # fmt: skip
    nodes = [
        ir.Input("in", (5, 5, 2), (5, 5, 2)),
        conv,
        leaky_node("prelu", (3, 3, 3), np.array([0.25, -0.5, 0.375]), "prelu"),
        leaky_node("qleaky", (3, 3, 3), 0.5, "qleaky", quantizer=QuantizedLeakyRelu(6, 1, 0.5)),
        ir.Flatten("flatten", (3, 3, 3), (27,)),
        dense,
        leaky_node("relu", (4,), 0.125, "relu", threshold=0.5, max_value=3.0),
    ]
    return lower(ir.ModelGraph("prelu_cnn", tuple(nodes)), PrecisionConfig(input=FixedType(8, 4)))


def test_prelu_cnn_is_bit_exact_under_backpressure_with_predicted_timing():
    graph = prelu_cnn()
    assert graph.nodes[3].out_clamp == ir.Clamp(-1.0, None)  # -s * 2**integer
    bit_exact_in_simulator(graph, n=2, valid_prob=0.6, ready_prob=0.5, seed=3)
    timing_matches_model(graph)


def test_quantized_leaky_clip_is_applied():
    from rtlgen.quant.reference import run_node

    node = prelu_cnn().nodes[3]
    in_type = FixedType(10, 4)
    x = np.arange(in_type.min_int, in_type.max_int + 1).reshape(-1, 1, 1, 1)
    x = x * np.ones((1, 3, 3, 3), dtype=np.int64)
    y = node.out_type.to_float(run_node(node, x, in_type))
    assert y.min() == -1.0 and y.max() == node.out_type.max_value
    want = QuantizedLeakyRelu(6, 1, 0.5).reference(in_type.to_float(x))
    np.testing.assert_array_equal(y, want)


# ---------------------------------------------------------------------------------------
# PReLU with alphas per position
# ---------------------------------------------------------------------------------------
def dyadic_alphas(rng, shape):
    """Alphas k/64 in [-1, 1): exact slopes, so x * alpha is exact in 10 fraction bits."""
    return (rng.integers(-64, 64, size=shape) / 64).astype(np.float32)


@pytest.mark.parametrize(
    "shape,shared_axes",
    [
        ((3, 5, 2), None),  # an alpha per element
        ((3, 5, 2), [1]),  # along W and C
        ((3, 5, 2), [2, 3]),  # along H only
        ((7, 3), None),
        ((7, 3), [2]),  # along L, shared by the channels
    ],
)
def test_prelu_alphas_per_position_predict_like_tf_keras(tmp_path, shape, shared_axes):
    """tf.keras PReLU(shared_axes) on images and sequences: dyadic alphas and inputs exact in
    fixed<8,4> make Keras's float32 result exact, and rtlgen's too."""
    tf = pytest.importorskip("tensorflow")

    model = tf.keras.Sequential(
        [
            tf.keras.layers.InputLayer(input_shape=shape),
            tf.keras.layers.PReLU(shared_axes=shared_axes, name="prelu"),
        ],
        name="prelu_positions",
    )
    layer = model.get_layer("prelu")
    layer.set_weights([dyadic_alphas(np.random.default_rng(2), layer.alpha.shape)])
    graph = keras_graph(model, tmp_path, FixedType(8, 4))
    (node,) = graph.nodes[1:]
    assert node.scale.shape == shape and "per element" in node.describe()
    x = exact_inputs(shape, 32, seed=3)
    np.testing.assert_array_equal(predict(graph, x), model.predict(x, verbose=0))


def test_prelu_with_too_many_alphas_is_refused_in_one_line(tmp_path):
    entry = layer_entry("PReLU", {"name": "p", "shared_axes": None})
    with pytest.raises(UnsupportedError) as info:
        read_handmade(tmp_path, [entry], (300, 300, 1))
    message = str(info.value)
    assert "\n" not in message and message.startswith("layer 'p' (PReLU): shared_axes=[]")
    assert "90000 alphas" in message and "up to 65536" in message


def position_prelu_net(shape=(6, 5, 2), alpha_shape=(4, 3, 3), seed=0) -> ir.ModelGraph:
    """conv 3x3 (QKeras-style, 3 filters) -> PReLU with alphas of ``alpha_shape`` (over the
    conv's output ``(H - 2, W - 2, 3)``; 1D: a conv of kernel 3 on (L, C))."""
    rng = np.random.default_rng(seed)
    q = QuantizedBits(5, 0, alpha=1)
    height, width, channels = ir.spatial(shape)
    kernel_h = 1 if len(shape) == 2 else 3
    out = (width - 2, 3) if len(shape) == 2 else (height - 2, width - 2, 3)
    conv = ir.Conv(
        "conv", shape, out, weights=ir.FloatTensor(rng.normal(size=(kernel_h, 3, channels, 3)), q),
        bias=ir.FloatTensor(rng.normal(size=3) * 0.3, q), kernel=(kernel_h, 3), stride=(1, 1),
    )  # fmt: skip
    alphas = rng.uniform(-1, 1, size=alpha_shape)
    nodes = [ir.Input("in", shape, shape), conv, leaky_node("prelu", out, alphas, "prelu")]
    graph = ir.ModelGraph("position_prelu", tuple(nodes))
    return lower(graph, PrecisionConfig(input=FixedType(8, 4)))


def prelu_plan(graph: ir.ModelGraph, options: HardwareOptions = HardwareOptions()):
    return next(p for p in plan_network(graph, options).layers if p.node.name == "prelu")


@pytest.mark.parametrize(
    "shape,alpha_shape",
    [
        ((6, 5, 2), (4, 3, 3)),  # per element
        ((6, 5, 2), (1, 3, 3)),  # along W
        ((6, 5, 2), (4, 1, 1)),  # along H, one alpha for the channels
        ((9, 2), (7, 3)),  # a sequence
    ],
)
def test_position_prelu_is_bit_exact_under_backpressure_with_predicted_timing(shape, alpha_shape):
    graph = position_prelu_net(shape, alpha_shape)
    plan = prelu_plan(graph)
    assert isinstance(plan.stages[0], PositionalPiecewiseLinear)
    bit_exact_in_simulator(graph, n=3, valid_prob=0.6, ready_prob=0.5, seed=4)
    timing_matches_model(graph)


def test_position_prelu_after_a_multi_pixel_conv_is_folded_to_one_pixel_per_beat():
    options = HardwareOptions(pixels_per_beat=2)
    graph = position_prelu_net((8, 8, 2), (6, 6, 3))  # 36 conv outputs in 32 cycles
    plan = prelu_plan(graph, options)
    assert any("folded" in note for note in plan.notes)
    bit_exact_in_simulator(graph, n=2, valid_prob=0.7, ready_prob=0.6, seed=5, options=options)


def test_position_prelu_saved_graph_round_trips_and_a_wrong_alpha_shape_is_refused(tmp_path):
    path = round_trips(position_prelu_net(), tmp_path)
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    index = next(k for k in arrays if k.endswith("_scale"))
    arrays[index] = arrays[index][:, :2]  # alphas of (4, 2, 3) for a (4, 3, 3) input
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    with pytest.raises(RtlgenError, match=r"'scale' has shape \(4, 2, 3\).*\(3,\) or \(4, 3, 3\)"):
        load_graph(path)


@pytest.mark.slow
def test_position_prelu_network_in_verilator(tmp_path, tmp_path_factory):
    graph = position_prelu_net((6, 5, 2), (4, 3, 3), seed=1)
    bit_exact_in_verilator(graph, tmp_path, tmp_path_factory.mktemp("verilator_cache"))


# ---------------------------------------------------------------------------------------
# saved graphs
# ---------------------------------------------------------------------------------------
def test_saved_graph_round_trips_and_a_tampered_accumulator_is_refused(tmp_path):
    graph = prelu_cnn()
    path = round_trips(graph, tmp_path)
    assert leaky_spec(graph.nodes[2], graph.nodes[1].out_type).slope == (2, -4, 3)

    def shrink(desc):
        desc["fields"]["acc_type"] = [4, 0, True]

    tamper(path, "LeakyRelu", shrink)
    with pytest.raises(RtlgenError, match="accumulator type"):
        load_graph(path)


def test_mlp_with_leaky_layers_runs_like_the_reference():
    rng = np.random.default_rng(1)
    nodes = [
        ir.Input("in", (4,), (4,)),
        ir.Dense("d", (4,), (3,), weights=ir.FloatTensor(rng.normal(size=(4, 3)))),
        leaky_node("lk", (3,), 0.3, "lk"),
    ]
    graph = lower(ir.ModelGraph("m", tuple(nodes)), PrecisionConfig(input=FixedType(8, 4)))
    assert graph.nodes[2].out_type.frac == 10  # result_frac of a float model
    bit_exact_in_simulator(graph, n=5, seed=6)
