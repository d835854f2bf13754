"""Separable convolutions (SeparableConv1D/2D, QSeparableConv1D/2D): a block-diagonal
depthwise conv then a 1x1 pointwise conv, read from hand-written configs and from models
saved by TensorFlow, predicted like Keras/QKeras, bit-exact in the simulator.

Exactness as in test_depthwise_conv.py: QKeras models exactly (QKeras does not quantize the
intermediate; rtlgen keeps it exact), float models with grid weights exactly, float models
with random weights within ``FLOAT_ATOL`` (16-bit weights, every result, the intermediate
included, rounded to 2**-10).
"""

from __future__ import annotations

import numpy as np
import pytest

from rtlgen import ir
from rtlgen.emit import layer_entry as manifest_entry
from rtlgen.frontend import read_model
from rtlgen.ops.depthwise_conv import depthwise_part
from rtlgen.passes import LayerPrecision, PrecisionConfig, lower
from rtlgen.plan import plan_network
from rtlgen.quant.errors import UnsupportedError
from rtlgen.quant.fixed import FixedType
from rtlgen.quant.reference import predict
from rtlgen.serialize import load_graph, save_graph
from tests.models import exact_inputs, layer_entry

from .network_checks import bit_exact_in_simulator, bit_exact_in_verilator, timing_matches_model
from .spatial_nets import predicts_like_keras
from .test_depthwise_conv import (
    FLOAT_ATOL,
    Q4,
    as_pair,
    conv_config,
    dilated_window_checks,
    float_depthwise,
    grid_weights,
    randomize,
    read,
    saved_models,
    with_dense_head,
)

RNG = np.random.default_rng(12)


def float_separable(x, dw, pw, bias, stride, pads):
    mid = float_depthwise(x, dw, None, stride, pads)
    out = np.einsum("nhwc,cf->nhwf", mid, pw.reshape(pw.shape[-2], pw.shape[-1]))
    return out + (0 if bias is None else bias)


def separable_config(name, filters, dims=2, kernel=3, quantized=False, **extra):
    config = conv_config(name, dims, kernel, filters=filters, **extra)
    if quantized:
        for key in ("depthwise_quantizer", "pointwise_quantizer", "bias_quantizer"):
            config.setdefault(key, Q4)
    cls = f"QSeparableConv{dims}D" if quantized else f"SeparableConv{dims}D"
    return layer_entry(cls, config, module="qkeras" if quantized else "keras.layers")


def separable_weights(kernel, channels, multiplier, filters, dims=2, sparsity=0.0):
    return {
        "depthwise_kernel": grid_weights((*kernel, channels, multiplier), sparsity=sparsity),
        "pointwise_kernel": grid_weights((*(1,) * dims, channels * multiplier, filters)),
        "bias": grid_weights((filters,)),
    }


# ---------------------------------------------------------------------------------------
# front-end: hand-written configs
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "padding, strides, multiplier", [("valid", [1, 1], 1), ("same", [2, 2], 2)]
)
def test_separable_conv2d_config_is_depthwise_then_pointwise(
    tmp_path, padding, strides, multiplier
):
    w = separable_weights((3, 3), 3, multiplier, 4, sparsity=0.2)
    layers = [
        separable_config("sep", 4, padding=padding, strides=strides, depth_multiplier=multiplier)
    ]
    graph = read(tmp_path, layers, {"sep": w}, (7, 6, 3))
    depthwise, pointwise = graph.nodes[1:]
    assert (depthwise.name, pointwise.name) == ("sep_depthwise", "sep")
    assert depthwise.bias is None and depthwise.activation == ir.LINEAR
    np.testing.assert_array_equal(
        depthwise_part(depthwise.weights.values, multiplier), w["depthwise_kernel"]
    )
    assert pointwise.kernel == (1, 1) and pointwise.weights.shape == (1, 1, 3 * multiplier, 4)
    x = exact_inputs((7, 6, 3), 16)
    want = float_separable(
        x.astype(np.float64),
        w["depthwise_kernel"],
        w["pointwise_kernel"],
        w["bias"],
        tuple(strides),
        depthwise.padding,
    )
    assert pointwise.out_shape == want.shape[1:]
    np.testing.assert_array_equal(predict(lower(graph), x), want)


@pytest.mark.parametrize("padding", ["causal", "same"])
def test_separable_conv1d_config_predicts_like_keras(tmp_path, padding):
    w = separable_weights((3,), 2, 2, 3, dims=1)
    layers = [separable_config("sep", 3, dims=1, padding=padding, strides=[2], depth_multiplier=2)]
    graph = read(tmp_path, layers, {"sep": w}, (9, 2))
    depthwise, pointwise = graph.nodes[1:]
    assert depthwise.padding == ((0, 0, 2, 0) if padding == "causal" else (0, 0, 1, 1))
    x = exact_inputs((9, 2), 8)
    want = float_separable(
        x[:, None].astype(np.float64),
        w["depthwise_kernel"][None],
        w["pointwise_kernel"],
        w["bias"],
        (1, 2),
        depthwise.padding,
    )
    np.testing.assert_array_equal(predict(lower(graph), x), want[:, 0])


def test_a_layer_precision_sets_the_output_not_the_intermediate(tmp_path):
    layers = [separable_config("sep", 2)]
    graph = read(tmp_path, layers, {"sep": separable_weights((3, 3), 2, 1, 2)}, (5, 5, 2))
    result = FixedType(12, 5)
    config = PrecisionConfig(layers=(("sep", LayerPrecision(result=result)),))
    depthwise, pointwise = lower(graph, config).nodes[1:]
    assert pointwise.out_type == result and depthwise.out_type != result


REFUSED = {
    "dilation_with_strides": (  # TensorFlow refuses it too
        dict(dilation_rate=[1, 2], strides=[2, 2]),
        "dilation_rate=\\[1, 2\\] with strides=\\[2, 2\\] is not supported",
    ),
    "causal_2d": (dict(padding="causal"), "padding='causal' is not supported"),
    "channels_first": (dict(data_format="channels_first"), "data_format='channels_first'"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_unsupported_options_are_one_line_errors(tmp_path, case):
    extra, message = REFUSED[case]
    layers = [separable_config("sepx", 2, **extra)]
    with pytest.raises(UnsupportedError, match=message) as error:
        read(tmp_path, layers, {"sepx": separable_weights((3, 3), 2, 1, 2)}, (5, 5, 2))
    assert "'sepx'" in str(error.value) and "\n" not in str(error.value)


# ---------------------------------------------------------------------------------------
# front-end: models saved by TensorFlow
# ---------------------------------------------------------------------------------------
def qkeras_separable_models():
    """QSeparableConv2D (auto_po2 depthwise kernel, depth multiplier 2, stride 2, same) and
    QSeparableConv1D (stride 2; its causal padding fails in QKeras 0.9.0 under Keras 2.15:
    ``_compute_causal_padding()`` lacks an argument), each with a quantized_relu activation, then QDense."""
    import tensorflow as tf
    from qkeras import QDense, QSeparableConv1D, QSeparableConv2D

    inp = tf.keras.Input((7, 6, 3))
    x = QSeparableConv2D(
        4,
        3,
        strides=2,
        padding="same",
        depth_multiplier=2,
        depthwise_quantizer="quantized_bits(4,0)",
        pointwise_quantizer=Q4,
        bias_quantizer=Q4,
        activation="quantized_relu(5,2)",
        name="sep2",
    )(inp)
    x = tf.keras.layers.Flatten()(x)
    two = tf.keras.Model(inp, QDense(3, kernel_quantizer=Q4, bias_quantizer=Q4)(x))
    inp = tf.keras.Input((10, 2))
    x = QSeparableConv1D(
        3,
        3,
        strides=2,
        depth_multiplier=2,
        depthwise_quantizer=Q4,
        pointwise_quantizer="quantized_bits(4,1)",
        bias_quantizer=Q4,
        activation="quantized_relu(4,2)",
        name="sep1",
    )(inp)
    x = tf.keras.layers.Flatten()(x)
    one = tf.keras.Model(inp, QDense(2, kernel_quantizer=Q4, bias_quantizer=Q4)(x))
    return [randomize(two, 3), randomize(one, 4)]


def float_separable_models():
    import tensorflow as tf

    two = tf.keras.Sequential(
        [
            tf.keras.Input((6, 7, 2)),
            tf.keras.layers.SeparableConv2D(
                3, 3, padding="same", depth_multiplier=2, activation="relu"
            ),
            # equal strides: TensorFlow's CPU depthwise kernel refuses unequal ones on some CPUs
            tf.keras.layers.SeparableConv2D(2, (2, 3), strides=(2, 2), use_bias=False),
        ]
    )
    one = tf.keras.Sequential(
        [
            tf.keras.Input((11, 3)),
            tf.keras.layers.SeparableConv1D(4, 3, strides=2, padding="causal"),
        ]
    )
    return [randomize(two, 5), randomize(one, 6)]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    pytest.importorskip("qkeras")
    folder = tmp_path_factory.mktemp("separable_models")
    return saved_models(folder, [*qkeras_separable_models(), *float_separable_models()])


@pytest.mark.parametrize("index", [0, 1], ids=["QSeparableConv2D", "QSeparableConv1D"])
def test_qkeras_separable_models_predict_exactly(saved, index):
    path, x, want = saved[index]
    graph = lower(read_model(path), PrecisionConfig(input=FixedType(8, 4)))
    np.testing.assert_array_equal(predict(graph, x), want)


@pytest.mark.parametrize("index", [2, 3], ids=["SeparableConv2D", "SeparableConv1D"])
def test_float_separable_models_predict_within_the_default_precision(saved, index):
    path, x, want = saved[index]
    np.testing.assert_allclose(predict(lower(read_model(path)), x), want, rtol=0, atol=FLOAT_ATOL)


# ---------------------------------------------------------------------------------------
# dilation_rate: the depthwise part's taps spread (the pointwise part is 1x1)
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "shape, kernel, dilation, padding",
    [
        ((13, 2), 3, 3, "same"),
        pytest.param((9, 10, 2), (3, 2), (1, 3), "valid", marks=pytest.mark.slow),
    ],
    ids=["QSeparableConv1D", "QSeparableConv2D"],
)
def test_dilated_qkeras_separable_is_exact_and_bit_exact_in_the_simulator(
    tmp_path, shape, kernel, dilation, padding
):
    """QSeparableConv1D/2D with an auto_po2 depthwise kernel (its scales over the real taps
    only). QSeparableConv1D's causal padding fails inside QKeras 0.9.0 under Keras 2.15
    (`test_dilated_float_separable_convs_predict_like_keras` covers it in Keras)."""
    import tensorflow as tf
    from qkeras import QSeparableConv1D, QSeparableConv2D

    make = QSeparableConv1D if len(shape) == 2 else QSeparableConv2D
    model = tf.keras.Sequential(
        [
            tf.keras.Input(shape),
            make(3, kernel, dilation_rate=dilation, padding=padding, depth_multiplier=2,
                 depthwise_quantizer="quantized_bits(4,0)", pointwise_quantizer=Q4,
                 bias_quantizer=Q4, activation="quantized_relu(4,2)"),
            tf.keras.layers.Flatten(),
        ],  # fmt: skip
        name="dilated_separable",
    )
    randomize(model, 8)
    graph = predicts_like_keras(model, tmp_path, n=24, seed=2, input_type=FixedType(8, 4))
    depthwise, pointwise = graph.nodes[1:3]
    taps, rate = ((kernel,), (dilation,)) if len(shape) == 2 else (as_pair(kernel), as_pair(dilation))
    dilated_window_checks(depthwise, taps, rate)
    assert pointwise.kernel == (1, 1)
    bit_exact_in_simulator(graph, n=2, seed=4)
    timing_matches_model(graph)


@pytest.mark.parametrize("dims", [1, 2], ids=["causal-1d", "same-2d"])
def test_dilated_float_separable_convs_predict_like_keras(tmp_path, dims):
    """A TCN-style causal SeparableConv1D (left padding (k - 1) * d) and a 'same'
    SeparableConv2D with uneven rates, grid weights: exactly Keras's outputs."""
    import tensorflow as tf

    if dims == 1:
        shape, layer = (13, 3), tf.keras.layers.SeparableConv1D(2, 3, dilation_rate=4, padding="causal")
    else:
        shape, layer = (9, 10, 2), tf.keras.layers.SeparableConv2D(
            3, (2, 3), dilation_rate=(3, 2), padding="same"
        )
    model = tf.keras.Sequential([tf.keras.Input(shape), layer], name=f"dilated_separable{dims}d")
    model.set_weights([grid_weights(w.shape) for w in model.get_weights()])
    graph = predicts_like_keras(model, tmp_path)
    depthwise = graph.nodes[1]
    if dims == 1:
        dilated_window_checks(depthwise, (3,), (4,))
        assert depthwise.padding == (0, 0, 8, 0)
    else:
        dilated_window_checks(depthwise, (2, 3), (3, 2))
        assert depthwise.kernel == (4, 5) and depthwise.out_shape[:2] == (9, 10)


# ---------------------------------------------------------------------------------------
# hardware and save/load
# ---------------------------------------------------------------------------------------
def separable_network(tmp_path) -> ir.ModelGraph:
    """(6, 5, 3) -> QSeparableConv2D(4, 3x3, same, M=2, quantized_relu) -> Flatten -> QDense."""
    layer = separable_config(
        "sep",
        4,
        padding="same",
        depth_multiplier=2,
        quantized=True,
        activation="quantized_relu(4,2)",
    )
    weights = {
        "sep": {
            "depthwise_kernel": RNG.normal(size=(3, 3, 3, 2)),
            "pointwise_kernel": RNG.normal(size=(1, 1, 6, 4)),
            "bias": RNG.normal(size=4),
        },
    }
    return with_dense_head(tmp_path, layer, weights, RNG, 4)


def test_depthwise_part_builds_one_multiplier_per_nonzero_weight(tmp_path):
    depthwise_plan, pointwise_plan = plan_network(separable_network(tmp_path)).layers[:2]
    mantissa = depthwise_plan.node.weights.mantissa
    assert depthwise_plan.multipliers == np.count_nonzero(depthwise_part(mantissa, 2))
    assert pointwise_plan.multipliers == pointwise_plan.node.weights.nonzero
    # the manifest's products: the depthwise kernel's 3x3x3x2 weights at 6 x 5 positions
    assert manifest_entry(depthwise_plan, 0).products == 3 * 3 * 3 * 2 * 30
    assert manifest_entry(pointwise_plan, 0).products == 6 * 4 * 30


def test_separable_network_bit_exact_under_backpressure(tmp_path):
    bit_exact_in_simulator(separable_network(tmp_path), n=2, seed=6)


def test_separable_network_timing_equals_the_model(tmp_path):
    timing_matches_model(separable_network(tmp_path))


def test_saved_graph_loads_bit_exact(tmp_path):
    graph = separable_network(tmp_path)
    save_graph(graph, tmp_path / "graph.npz")
    loaded = load_graph(tmp_path / "graph.npz")
    x = exact_inputs((6, 5, 3), 8)
    assert [n.name for n in loaded.nodes] == [n.name for n in graph.nodes]
    np.testing.assert_array_equal(predict(loaded, x), predict(graph, x))


@pytest.mark.slow
def test_separable_network_in_verilator(tmp_path, tmp_path_factory):
    bit_exact_in_verilator(
        separable_network(tmp_path), tmp_path, tmp_path_factory.mktemp("verilator_cache")
    )
