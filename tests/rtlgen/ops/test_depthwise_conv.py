"""Depthwise convolutions (DepthwiseConv1D/2D, QDepthwiseConv2D): read from hand-written
configs and from models saved by TensorFlow, predicted like Keras, built as a block-diagonal
conv whose zero weights cost nothing, bit-exact in the simulator and in Verilator.

Exactness: QKeras models are compared with ``assert_array_equal`` (every constant is a
quantizer's output and QKeras's float32 sums of these small fixed-point values are exact).
Float models with weights on a coarse grid (multiples of 1/8) are exact too (the default
result type keeps 10 fractional bits, the products need 4 + 3). Float models with random
weights differ by the default precision's rounding (16-bit weights, results rounded to
2**-10): within ``FLOAT_ATOL`` below.
"""

from __future__ import annotations

import numpy as np
import pytest

from rtlgen import ir
from rtlgen.emit import layer_entry as manifest_entry
from rtlgen.frontend import read_model
from rtlgen.ops.conv import spread_taps
from rtlgen.ops.depthwise_conv import DepthwiseKernel, block_diagonal, depthwise_part
from rtlgen.passes import PrecisionConfig, lower
from rtlgen.plan import plan_network
from rtlgen.quant.errors import ModelFileError, RtlgenError, UnsupportedError
from rtlgen.quant.fixed import FixedType
from rtlgen.quant.quantizers import parse_quantizer
from rtlgen.quant.reference import predict
from rtlgen.report import summarize
from rtlgen.serialize import load_graph, save_graph
from tests.models import exact_inputs, layer_entry, sequential_config, write_full_h5

from .network_checks import bit_exact_in_simulator, bit_exact_in_verilator, timing_matches_model
from .spatial_nets import predicts_like_keras, tamper

RNG = np.random.default_rng(11)
#: float models: weights rounded to 16 bits and each result to 2**-10 (default precision),
#: a few roundings of <= 2**-11 each through two layers of small sums
FLOAT_ATOL = 2.0**-6
Q4 = "quantized_bits(4,0,alpha=1)"


def float_depthwise(x: np.ndarray, dw: np.ndarray, bias, stride, pads) -> np.ndarray:
    """Keras's depthwise conv in float64: (N, H, W, C), (kh, kw, C, M) -> (N, Ho, Wo, C*M)."""
    top, bottom, left, right = pads
    x = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    kh, kw, c, m = dw.shape
    ho = (x.shape[1] - kh) // stride[0] + 1
    wo = (x.shape[2] - kw) // stride[1] + 1
    out = np.zeros((x.shape[0], ho, wo, c * m))
    for i in range(ho):
        for j in range(wo):
            patch = x[:, i * stride[0] : i * stride[0] + kh, j * stride[1] : j * stride[1] + kw]
            out[:, i, j] = np.einsum("nhwc,hwcm->ncm", patch, dw).reshape(x.shape[0], c * m)
    return out + (0 if bias is None else bias)


def conv_config(name, dims, kernel, **extra) -> dict:
    """The config of a Keras depthwise/separable conv layer: stride 1, valid, multiplier 1,
    linear, with bias; ``extra`` replaces or adds fields."""
    return {
        "name": name,
        "kernel_size": [kernel] * dims,
        "strides": [1] * dims,
        "padding": "valid",
        "depth_multiplier": 1,
        "data_format": "channels_last",
        "dilation_rate": [1] * dims,
        "activation": "linear",
        "use_bias": True,
        **extra,
    }


def depthwise_config(name, dims=2, kernel=3, cls=None, quantized=False, **extra):
    config = conv_config(name, dims, kernel, **extra)
    if quantized:
        config.setdefault("depthwise_quantizer", Q4)
        config.setdefault("bias_quantizer", Q4)
    cls = cls or (f"QDepthwiseConv{dims}D" if quantized else f"DepthwiseConv{dims}D")
    return layer_entry(cls, config, module="qkeras" if quantized else "keras.layers")


def read(tmp_path, layers, weights, input_shape):
    path = write_full_h5(tmp_path / "m.h5", sequential_config(layers, input_shape), weights)
    return read_model(path)


def qdense_entry(name: str, units: int) -> dict:
    """A QDense layer with 4-bit kernel and bias."""
    quantizers = {"kernel_quantizer": Q4, "bias_quantizer": Q4}
    config = {"name": name, "units": units, "use_bias": True, **quantizers}
    return layer_entry("QDense", config, module="qkeras")


def with_dense_head(tmp_path, layer, weights, rng, channels) -> ir.ModelGraph:
    """(6, 5, 3) -> ``layer`` (``channels`` out, same padding) -> Flatten -> QDense(3) with
    random weights from ``rng``, lowered with a fixed<6,3> input."""
    flat = 30 * channels
    layers = [layer, layer_entry("Flatten", {"name": "flat"}), qdense_entry("d", 3)]
    dense = {"kernel": rng.normal(size=(flat, 3)), "bias": rng.normal(size=3)}
    graph = read(tmp_path, layers, {**weights, "d": dense}, (6, 5, 3))
    return lower(graph, PrecisionConfig(input=FixedType(6, 3)))


def saved_models(folder, models) -> list[tuple[object, np.ndarray, np.ndarray]]:
    """Each model saved as .h5 in ``folder`` with 48 inputs exact in fixed<8,4> and its own
    predictions on them: [(path, x, want)]."""
    out = []
    for index, model in enumerate(models):
        x = exact_inputs(tuple(model.input_shape[1:]), 48, seed=index)
        path = folder / f"model{index}.h5"
        model.save(path)
        out.append((path, x, model.predict(x, verbose=0).astype(np.float64)))
    return out


def grid_weights(shape, step=1 / 8, sparsity=0.0):
    """Random weights on a coarse grid (exact in every type used here), some zero."""
    w = RNG.integers(-12, 13, size=shape) * step
    return w * (RNG.random(shape) >= sparsity)


# ---------------------------------------------------------------------------------------
# front-end: hand-written configs
# ---------------------------------------------------------------------------------------
def test_block_diagonal_round_trip():
    dw = RNG.normal(size=(3, 2, 4, 3))
    w = block_diagonal(dw)
    assert w.shape == (3, 2, 4, 12)
    assert np.count_nonzero(w) == np.count_nonzero(dw)
    assert w[1, 1, 2, 7] == dw[1, 1, 2, 1] and w[1, 1, 1, 7] == 0  # channel 7 = 2 * 3 + 1
    np.testing.assert_array_equal(depthwise_part(w, 3), dw)


@pytest.mark.parametrize(
    "padding, strides, multiplier",
    [("valid", [1, 1], 1), ("same", [2, 2], 2), ("same", [1, 2], 3)],
)
def test_depthwise_conv2d_config_predicts_like_keras(tmp_path, padding, strides, multiplier):
    dw = grid_weights((3, 3, 3, multiplier), sparsity=0.3)
    bias = grid_weights((3 * multiplier,))
    layers = [depthwise_config("dw", padding=padding, strides=strides, depth_multiplier=multiplier)]
    graph = read(tmp_path, layers, {"dw": {"depthwise_kernel": dw, "bias": bias}}, (7, 6, 3))
    (node,) = graph.nodes[1:]
    assert isinstance(node, ir.Conv) and node.weights.shape == (3, 3, 3, 3 * multiplier)
    np.testing.assert_array_equal(depthwise_part(node.weights.values, multiplier), dw)
    x = exact_inputs((7, 6, 3), 16)
    want = float_depthwise(x.astype(np.float64), dw, bias, tuple(strides), node.padding)
    assert node.out_shape == want.shape[1:]
    np.testing.assert_array_equal(predict(lower(graph), x), want)


def test_depthwise_conv1d_config_predicts_like_keras(tmp_path):
    dw = grid_weights((3, 2, 2))  # (k, C, M) as Keras stores it
    layers = [depthwise_config("dw", dims=1, padding="same", strides=[2], depth_multiplier=2)]
    graph = read(tmp_path, layers, {"dw": {"depthwise_kernel": dw, "bias": np.zeros(4)}}, (9, 2))
    (node,) = graph.nodes[1:]
    assert node.in_shape == (9, 2) and node.out_shape == (5, 4) and node.kernel == (1, 3)
    x = exact_inputs((9, 2), 8)
    want = float_depthwise(x[:, None].astype(np.float64), dw[None], None, (1, 2), node.padding)
    np.testing.assert_array_equal(predict(lower(graph), x), want[:, 0])


REFUSED = {
    "dilation_with_strides": (  # TensorFlow refuses it too
        dict(dilation_rate=[2, 2], strides=[1, 2]),
        "dilation_rate=\\[2, 2\\] with strides=\\[1, 2\\] is not supported",
    ),
    "channels_first": (dict(data_format="channels_first"), "data_format='channels_first'"),
    "activation": (dict(activation="log_softmax"), "activation"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_unsupported_options_are_one_line_errors(tmp_path, case):
    extra, message = REFUSED[case]
    layers = [depthwise_config("dwx", **extra)]
    weights = {"dwx": {"depthwise_kernel": np.ones((3, 3, 2, 1)), "bias": np.zeros(2)}}
    with pytest.raises(UnsupportedError, match=message) as error:
        read(tmp_path, layers, weights, (5, 5, 2))
    assert "'dwx'" in str(error.value) and "\n" not in str(error.value)


def test_causal_depthwise_conv1d_is_refused(tmp_path):
    layers = [depthwise_config("dwc", dims=1, padding="causal")]
    weights = {"dwc": {"depthwise_kernel": np.ones((3, 2, 1)), "bias": np.zeros(2)}}
    with pytest.raises(UnsupportedError, match="'dwc'.*padding='causal' is not supported"):
        read(tmp_path, layers, weights, (9, 2))


def test_depthwise_with_folded_batchnorm_folds_per_output_channel(tmp_path):
    """inv = gamma / sqrt(var + eps) of output channel c * M + m scales kernel[:, :, c, m]."""
    layers = [depthwise_config("dwb", cls="QDepthwiseConv2DBatchnorm", depth_multiplier=2)]
    kernel = RNG.normal(size=(3, 3, 2, 2))
    stats = {
        "gamma": RNG.uniform(0.5, 1.5, 4),
        "beta": RNG.normal(size=4),
        "moving_mean": RNG.normal(size=4),
        "moving_variance": RNG.uniform(0.5, 2, 4),
    }
    bias = RNG.normal(size=4)
    graph = read(tmp_path, layers, {"dwb": {"depthwise_kernel": kernel, "bias": bias, **stats}}, (5, 5, 2))
    inv = stats["gamma"] / np.sqrt(stats["moving_variance"] + 1e-3)
    conv = graph.nodes[1]
    np.testing.assert_allclose(depthwise_part(conv.weights.values, 2), kernel * inv.reshape(2, 2), rtol=1e-6)
    np.testing.assert_allclose(conv.bias.values, inv * (bias - stats["moving_mean"]) + stats["beta"], rtol=1e-5)


def test_depthwise_with_folded_batchnorm_needs_its_statistics(tmp_path):
    layers = [depthwise_config("dwb", cls="QDepthwiseConv2DBatchnorm")]
    with pytest.raises(ModelFileError, match="layer 'dwb'"):
        read(tmp_path, layers, {"dwb": {"depthwise_kernel": np.ones((3, 3, 2, 1)), "bias": np.zeros(2)}}, (5, 5, 2))


def test_expansion_beyond_the_parameter_limit_is_refused_before_reading(tmp_path):
    from rtlgen.frontend.limits import Limits

    layers = [depthwise_config("big", depth_multiplier=4)]
    path = write_full_h5(
        tmp_path / "m.h5",
        sequential_config(layers, (4, 4, 40)),
        {"big": {"depthwise_kernel": np.ones((3, 3, 40, 4)), "bias": np.zeros(160)}},
    )
    with pytest.raises(ModelFileError, match="expand to 57,600 conv weights"):
        read_model(path, limits=Limits(max_parameters=50_000))


# ---------------------------------------------------------------------------------------
# front-end: models saved by TensorFlow
# ---------------------------------------------------------------------------------------
def randomize(model, seed=0):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        weights = layer.get_weights()
        if weights:
            layer.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in weights])
    return model


def qkeras_depthwise_model():
    """QDepthwiseConv2D with alpha=1 and auto_po2 (alpha=None) kernels, depth multiplier 2,
    same padding, stride 2, quantized_relu activation and a QActivation."""
    import tensorflow as tf
    from qkeras import QActivation, QDense, QDepthwiseConv2D

    inp = tf.keras.Input((7, 6, 3))
    x = QDepthwiseConv2D(
        3,
        depth_multiplier=2,
        padding="same",
        strides=2,
        depthwise_quantizer=Q4,
        bias_quantizer=Q4,
        activation="quantized_relu(4,2)",
        name="dw1",
    )(inp)
    x = QDepthwiseConv2D(
        2,
        depth_multiplier=2,
        depthwise_quantizer="quantized_bits(4,1)",
        bias_quantizer="quantized_bits(5,1,alpha=1)",
        name="dw2",
    )(x)
    x = QActivation("quantized_relu(5,2)")(x)
    x = tf.keras.layers.Flatten()(x)
    out = QDense(3, kernel_quantizer=Q4, bias_quantizer=Q4, name="d")(x)
    return randomize(tf.keras.Model(inp, out))


def float_depthwise_models():
    import tensorflow as tf

    one = tf.keras.Sequential(
        [
            tf.keras.Input((11, 3)),
            tf.keras.layers.DepthwiseConv1D(3, strides=2, padding="same", depth_multiplier=2),
            tf.keras.layers.ReLU(),
            tf.keras.layers.DepthwiseConv1D(2, use_bias=False),
        ]
    )
    two = tf.keras.Sequential(
        [
            tf.keras.Input((6, 7, 2)),
            tf.keras.layers.DepthwiseConv2D(3, padding="same", activation="relu"),
            # equal strides: TensorFlow's CPU depthwise kernel refuses unequal ones on some CPUs
            tf.keras.layers.DepthwiseConv2D((2, 3), strides=(2, 2), depth_multiplier=3),
        ]
    )
    return [randomize(one, 1), randomize(two, 2)]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    pytest.importorskip("qkeras")
    folder = tmp_path_factory.mktemp("depthwise_models")
    return saved_models(folder, [qkeras_depthwise_model(), *float_depthwise_models()])


def test_qkeras_depthwise_model_predicts_exactly(saved):
    path, x, want = saved[0]
    graph = lower(read_model(path), PrecisionConfig(input=FixedType(8, 4)))
    assert [n.op for n in graph.nodes] == ["input", "conv2d", "conv2d", "flatten", "dense"]
    np.testing.assert_array_equal(predict(graph, x), want)


@pytest.mark.parametrize("index", [1, 2], ids=["DepthwiseConv1D", "DepthwiseConv2D"])
def test_float_depthwise_models_predict_within_the_default_precision(saved, index):
    path, x, want = saved[index]
    got = predict(lower(read_model(path)), x)
    np.testing.assert_allclose(got, want, rtol=0, atol=FLOAT_ATOL)


def qkeras_folded_depthwise_model(seed=5):
    """QDepthwiseConv2DBatchnorm (depth multiplier 2, auto_po2 and alpha=1 kernels) with
    random non-trivial batch-norm statistics, then quantized_relu."""
    import tensorflow as tf
    from qkeras import QActivation, QDepthwiseConv2DBatchnorm

    inp = tf.keras.Input((6, 5, 3))
    x = QDepthwiseConv2DBatchnorm(
        3,
        depth_multiplier=2,
        padding="same",
        depthwise_quantizer="quantized_bits(5,1)",
        bias_quantizer="quantized_bits(8,3,alpha=1)",
        name="dwb",
    )(inp)
    x = QActivation("quantized_relu(6,2)")(x)
    x = QDepthwiseConv2DBatchnorm(
        2, depthwise_quantizer=Q4, bias_quantizer="quantized_bits(8,3,alpha=1)", name="dwb2"
    )(x)
    model = tf.keras.Model(inp, x)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if type(layer).__name__ != "QDepthwiseConv2DBatchnorm":
            continue
        values = []
        for w in layer.weights:
            short = w.name.rsplit("/", 1)[-1].split(":")[0]
            draw = {
                "gamma": lambda s: rng.uniform(0.5, 1.5, s),
                "moving_variance": lambda s: rng.uniform(0.3, 2.0, s),
                "iteration": None,
            }.get(short, lambda s: rng.normal(0, 0.4, s))
            values.append(w.numpy() if draw is None else draw(tuple(w.shape)))
        layer.set_weights(values)
    return model


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_qkeras_folded_depthwise_batchnorm_predicts_exactly(tmp_path, suffix):
    """The folded kernel is inv (reshaped to (C, M)) times the depthwise kernel, quantized in
    its own shape; the folded bias inv * (bias - mean) + beta: bit-exact with QKeras."""
    pytest.importorskip("qkeras")
    model = qkeras_folded_depthwise_model()
    x = exact_inputs((6, 5, 3), 48, seed=3)
    path = tmp_path / f"m{suffix}"
    model.save(path)
    want = model.predict(x, verbose=0).astype(np.float64)
    graph = lower(read_model(path), PrecisionConfig(input=FixedType(8, 4)))
    assert [n.op for n in graph.nodes] == ["input", "conv2d", "conv2d"]
    np.testing.assert_array_equal(predict(graph, x).reshape(want.shape), want)


# ---------------------------------------------------------------------------------------
# dilation_rate: the taps spread with zero taps between (as Conv1D/Conv2D)
# ---------------------------------------------------------------------------------------
def test_depthwise_quantizer_of_a_dilated_kernel_sees_its_taps_only():
    """QKeras quantizes the (kh, kw, C, M) kernel as stored: the auto_po2 scales are
    computed over the real taps (the zero taps would change the per-channel means), and
    the zero taps stay zero."""
    inner = parse_quantizer("quantized_bits(4,0)").for_kernel()  # auto_po2
    dw = RNG.normal(size=(3, 2, 3, 2))
    full = block_diagonal(spread_taps(dw, (2, 3)))
    assert full.shape == (5, 4, 3, 6)
    quantized = DepthwiseKernel(inner, 2, (2, 3)).quantize_constant(full)
    want = block_diagonal(spread_taps(inner.reference(dw), (2, 3)))
    np.testing.assert_array_equal(quantized.values, want)
    assert np.count_nonzero(quantized.mantissa) <= dw.size


def as_pair(value: int | tuple[int, int]) -> tuple[int, int]:
    return value if isinstance(value, tuple) else (value, value)


def dilated_window_checks(node: ir.Node, taps: tuple[int, ...], rate: tuple[int, ...]):
    """The depthwise node's window is the dilated kernel, its products (parameters) counted
    are the real taps' (one filter per output channel), its non-zero products at most
    those (the zero taps are none)."""
    assert isinstance(node, ir.Conv)
    spread = tuple((t - 1) * d + 1 for t, d in zip(taps, rate, strict=True))
    assert node.kernel[-len(taps) :] == spread and node.dilation[-len(rate) :] == rate
    nonzero, products = ir.multiplies(node)
    assert products == int(np.prod(node.out_shape[:-1])) * int(np.prod(taps)) * node.out_shape[-1]
    assert 0 < nonzero <= products


@pytest.mark.parametrize(
    "shape, kernel, dilation, padding",
    [
        ((9, 10, 2), (3, 2), (2, 3), "same"),  # a 5 x 4 window: uneven 'same' padding
        pytest.param((10, 11, 3), 3, 2, "valid", marks=pytest.mark.slow),
    ],
)
def test_dilated_qkeras_depthwise_is_exact_and_bit_exact_in_the_simulator(
    tmp_path, shape, kernel, dilation, padding
):
    import tensorflow as tf
    from qkeras import QDepthwiseConv2D

    model = tf.keras.Sequential(
        [
            tf.keras.Input(shape),
            QDepthwiseConv2D(kernel, dilation_rate=dilation, padding=padding, depth_multiplier=2,
                             depthwise_quantizer="quantized_bits(4,0)", bias_quantizer=Q4,
                             activation="quantized_relu(4,2)"),
            QDepthwiseConv2D(kernel, dilation_rate=dilation, padding=padding,
                             depthwise_quantizer=Q4, bias_quantizer=Q4),
            tf.keras.layers.Flatten(),
        ],  # fmt: skip
        name="dilated_depthwise",
    )
    randomize(model, 7)
    graph = predicts_like_keras(model, tmp_path, n=24, seed=1, input_type=FixedType(8, 4))
    dilated_window_checks(graph.nodes[1], as_pair(kernel), as_pair(dilation))
    bit_exact_in_simulator(graph, n=2, seed=3)
    timing_matches_model(graph)


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_dilated_depthwise_conv1d_predicts_like_keras(tmp_path, padding):
    """Weights on the 1/8 grid and inputs exact in fixed<8,4>: Keras's float32 sums are
    exact, so the lowered graph predicts exactly what Keras does."""
    import tensorflow as tf

    model = tf.keras.Sequential(
        [
            tf.keras.Input((13, 3)),
            tf.keras.layers.DepthwiseConv1D(3, dilation_rate=3, padding=padding, depth_multiplier=2),
        ],
        name=f"dilated_depthwise1d_{padding}",
    )
    model.set_weights([grid_weights(w.shape) for w in model.get_weights()])
    graph = predicts_like_keras(model, tmp_path)
    dilated_window_checks(graph.nodes[1], (3,), (3,))


# ---------------------------------------------------------------------------------------
# hardware
# ---------------------------------------------------------------------------------------
def depthwise_network(tmp_path, multiplier=2, sparsity=0.3) -> ir.ModelGraph:
    """(6, 5, 3) -> QDepthwiseConv2D(3, same, M) -> Flatten -> QDense(3)."""
    layer = depthwise_config(
        "dw",
        padding="same",
        depth_multiplier=multiplier,
        quantized=True,
        activation="quantized_relu(4,2)",
    )
    channels = 3 * multiplier
    kernel = RNG.normal(size=(3, 3, 3, multiplier)) * (
        RNG.random((3, 3, 3, multiplier)) >= sparsity
    )
    weights = {"dw": {"depthwise_kernel": kernel, "bias": RNG.normal(size=channels)}}
    return with_dense_head(tmp_path, layer, weights, RNG, channels)


def test_multipliers_in_the_manifest_are_the_nonzero_depthwise_weights(tmp_path):
    graph = depthwise_network(tmp_path)
    plan = plan_network(graph).layers[0]
    node = plan.node
    assert isinstance(node, ir.Conv)
    nonzero = np.count_nonzero(depthwise_part(node.weights.mantissa, 2))
    assert nonzero < 3 * 3 * 3 * 2  # some weights are zero (pruned or quantized to 0)
    assert manifest_entry(plan, 0).multipliers == nonzero == node.weights.nonzero
    assert node.weights.mantissa.size == 3 * 3 * 3 * 6  # the block-diagonal kernel: C x more


def test_manifest_and_inspect_count_the_depthwise_weights_not_the_expanded_kernel(tmp_path):
    graph = depthwise_network(tmp_path)  # 3 channels x multiplier 2, 6 x 5 positions
    plan = plan_network(graph).layers[0]
    node = plan.node
    assert isinstance(node, ir.Conv) and node.groups == 3
    real = 3 * 3 * 3 * 2
    nonzero = np.count_nonzero(depthwise_part(node.weights.mantissa, 2))
    entry = manifest_entry(plan, 0)
    assert (entry.products, entry.products_nonzero) == (real * 30, nonzero * 30)
    row = summarize(graph)[1]
    assert row.parameters == real + 6  # the depthwise kernel and the bias
    assert row.sparsity == pytest.approx(1 - nonzero / real)


def test_grouped_conv_refuses_weights_off_its_blocks():
    one_by_one = {"weights": ir.FloatTensor(np.ones((1, 1, 4, 4))), "kernel": (1, 1)}
    with pytest.raises(RtlgenError, match="outside the 2 blocks"):
        ir.Conv("c", (2, 2, 4), (2, 2, 4), stride=(1, 1), groups=2, **one_by_one)
    with pytest.raises(RtlgenError, match="does not divide"):
        ir.Conv("c", (2, 2, 4), (2, 2, 4), stride=(1, 1), groups=3, **one_by_one)


def test_depthwise_network_bit_exact_under_backpressure(tmp_path):
    bit_exact_in_simulator(depthwise_network(tmp_path), n=2, seed=4)


def test_depthwise_network_timing_equals_the_model(tmp_path):
    timing_matches_model(depthwise_network(tmp_path, multiplier=1))


# ---------------------------------------------------------------------------------------
# save/load
# ---------------------------------------------------------------------------------------
def test_saved_graph_loads_bit_exact_and_a_tampered_kernel_is_refused(tmp_path):
    graph = depthwise_network(tmp_path)
    path = tmp_path / "graph.npz"
    save_graph(graph, path)
    x = exact_inputs((6, 5, 3), 8)
    np.testing.assert_array_equal(predict(load_graph(path), x), predict(graph, x))
    assert load_graph(path).nodes[1].groups == 3
    tamper(path, "Conv", lambda node: node.update(groups=2))  # 3 channels, 6 outputs
    with pytest.raises(ModelFileError, match="does not divide"):
        load_graph(path)
    save_graph(graph, path)
    tamper(path, "Conv", lambda node: node.update(kernel=[3, 2]))  # not the weights' (3, 3)
    with pytest.raises(ModelFileError) as error:
        load_graph(path)
    assert "\n" not in str(error.value)


# ---------------------------------------------------------------------------------------
# a MobileNet-style block
# ---------------------------------------------------------------------------------------
def mobilenet_block():
    """conv 3x3 -> depthwise 3x3 -> BN -> relu -> pointwise 1x1 -> global average pool ->
    dense (QKeras layers; a float BatchNormalization after a quantized layer stays a
    per-channel scale-and-shift)."""
    import tensorflow as tf
    from qkeras import QActivation, QConv2D, QDense, QDepthwiseConv2D

    inp = tf.keras.Input((4, 4, 2))  # 16 positions: an exact average
    x = QConv2D(4, 3, padding="same", kernel_quantizer=Q4, bias_quantizer=Q4, name="conv")(inp)
    x = QActivation("quantized_relu(4,2)")(x)
    x = QDepthwiseConv2D(3, padding="same", depthwise_quantizer=Q4, bias_quantizer=Q4, name="dw")(x)
    x = tf.keras.layers.BatchNormalization(name="bn")(x)
    x = QActivation("quantized_relu(5,2)")(x)
    x = QConv2D(6, 1, kernel_quantizer=Q4, bias_quantizer=Q4, name="pw")(x)
    x = QActivation("quantized_relu(5,2)")(x)
    x = tf.keras.layers.GlobalAveragePooling2D(name="gap")(x)
    out = QDense(3, kernel_quantizer=Q4, bias_quantizer=Q4, name="d")(x)
    model = randomize(tf.keras.Model(inp, out), 5)
    bn = model.get_layer("bn")
    rng = np.random.default_rng(6)
    bn.set_weights(
        [
            rng.uniform(0.5, 1.5, 4),
            rng.normal(size=4) * 0.3,
            rng.normal(size=4),
            rng.uniform(0.5, 2, 4),
        ]
    )
    return model


@pytest.fixture(scope="module")
def mobilenet(tmp_path_factory):
    pytest.importorskip("qkeras")
    model = mobilenet_block()
    path = tmp_path_factory.mktemp("mobilenet") / "block.h5"
    model.save(path)
    x = exact_inputs((4, 4, 2), 32, seed=3)
    return path, x, model.predict(x, verbose=0).astype(np.float64)


def mobilenet_graph(mobilenet) -> ir.ModelGraph:
    return lower(read_model(mobilenet[0]), PrecisionConfig(input=FixedType(8, 4)))


def test_mobilenet_block_predicts_like_qkeras(mobilenet):
    """Exact: the float BatchNormalization and the quantized_relu after it are integer
    thresholds computed from the float32 parameters (`rtlgen.ops.threshold`); the average
    over 16 positions is exact (over a non-power-of-two count Keras divides in float32 and
    rtlgen rounds the exact quotient)."""
    _, x, want = mobilenet
    np.testing.assert_array_equal(predict(mobilenet_graph(mobilenet), x), want)


def test_mobilenet_block_bit_exact_under_backpressure(mobilenet):
    graph = mobilenet_graph(mobilenet)
    assert [n.op for n in graph.nodes] == [
        "input",
        "conv2d",
        "conv2d",
        "threshold",
        "conv2d",
        "avgpool2d",
        "flatten",
        "dense",
    ]
    bit_exact_in_simulator(graph, n=2, seed=5)
    timing_matches_model(graph)


@pytest.mark.slow
def test_mobilenet_block_in_verilator(mobilenet, tmp_path, tmp_path_factory):
    bit_exact_in_verilator(
        mobilenet_graph(mobilenet), tmp_path, tmp_path_factory.mktemp("verilator_cache")
    )
