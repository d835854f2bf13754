"""rtlgen/ops/conv.py: Keras/QKeras convolutions with ``dilation_rate`` (the kernel's taps
spread with zero taps between, which build no hardware) and ``groups`` (a block-diagonal
kernel), against tf.keras 2.15 / QKeras on the same fixed-point inputs and in the
simulator under backpressure."""

from __future__ import annotations

import numpy as np
import pytest

from rtlgen import ir
from rtlgen.ops.conv import ConvKernel, grouped_kernel, spread_taps
from rtlgen.quant.errors import UnsupportedError
from rtlgen.quant.fixed import FixedType
from rtlgen.quant.quantizers import parse_quantizer
from rtlgen.quant.reference import predict
from tests.models import exact_inputs

from .network_checks import bit_exact_in_simulator, timing_matches_model
from .spatial_nets import (
    keras_graph,
    predicts_like_keras,
    read_handmade,
    round_trips,
    tampered_is_refused,
)

tf = pytest.importorskip("tensorflow")
qkeras = pytest.importorskip("qkeras")

Q4 = "quantized_bits(4,0,alpha=1)"


def qconv(dims: int, filters: int, kernel, **kwargs):
    make = qkeras.QConv1D if dims == 1 else qkeras.QConv2D
    return make(filters, kernel, kernel_quantizer=Q4, bias_quantizer=Q4, **kwargs)


@pytest.mark.parametrize(
    "dims, shape, kernel, dilation, padding",
    [
        (1, (20, 2), 3, 4, "causal"),  # a TCN layer
        (2, (9, 10, 2), (3, 2), (2, 3), "valid"),
        # in the slow set (the default run stays under 5 minutes)
        pytest.param(1, (17, 3), 2, 3, "same", marks=pytest.mark.slow),
        pytest.param(2, (8, 7, 2), 3, 2, "same", marks=pytest.mark.slow),
    ],
)
def test_dilated_qkeras_convolution_is_exact_and_bit_exact_in_the_simulator(
    tmp_path, dims, shape, kernel, dilation, padding
):
    tf.keras.utils.set_random_seed(3)
    model = tf.keras.Sequential(
        [
            tf.keras.layers.InputLayer(input_shape=shape),
            qconv(dims, 3, kernel, dilation_rate=dilation, padding=padding,
                  activation="quantized_relu(4,2)"),
            qconv(dims, 2, kernel, dilation_rate=dilation, padding=padding),
            tf.keras.layers.Flatten(),
        ],  # fmt: skip
        name=f"dilated{dims}d",
    )
    graph = predicts_like_keras(model, tmp_path, n=24, seed=1, input_type=FixedType(8, 4))
    conv = graph.nodes[1]
    assert isinstance(conv, ir.Conv)
    taps = np.asarray(kernel if isinstance(kernel, tuple) else (kernel,) * dims)
    rate = np.asarray(dilation if isinstance(dilation, tuple) else (dilation,) * dims)
    spread = tuple((taps - 1) * rate + 1)
    assert conv.kernel[-dims:] == spread
    # the zero taps are no products: as many multiplies as the undilated kernel's, and the
    # products (parameters) counted are the real taps'
    nonzero, products = ir.multiplies(conv)
    assert products == int(np.prod(conv.out_shape[:-1])) * int(np.prod(taps)) * shape[-1] * 3
    assert 0 < nonzero <= products
    bit_exact_in_simulator(graph, n=3, seed=2)
    timing_matches_model(graph)


def test_kernel_quantizer_of_a_dilated_grouped_kernel_sees_the_kernel_as_stored():
    """QKeras quantizes the kernel Keras stores, (kh, kw, cin / groups, filters): auto_po2
    scales over the real taps and blocks only; zero taps and off-block weights stay zero."""
    inner = parse_quantizer("quantized_bits(4,0)").for_kernel()  # auto_po2
    stored = np.random.default_rng(4).normal(size=(2, 3, 2, 4))  # groups 2 of 4 channels
    full = spread_taps(grouped_kernel(stored, 2, 4), (3, 2))
    assert full.shape == (4, 5, 4, 4)
    quantized = ConvKernel(inner, (3, 2), 2).quantize_constant(full)
    want = spread_taps(grouped_kernel(inner.reference(stored), 2, 4), (3, 2))
    np.testing.assert_array_equal(quantized.values, want)
    assert np.count_nonzero(quantized.mantissa) <= stored.size


@pytest.mark.parametrize(
    "edit, words",
    [
        (lambda d: d.update(dilation=[1, 3]), "dilation [1, 3] does not space a [1, 5] window"),
        (lambda d: d.update(dilation=[1, 4]), "non-zero weights between the taps"),
        (lambda d: d.update(dilation=[1, 0]), "dilation"),
    ],
    ids=["uneven", "weights-between-taps", "zero"],
)
def test_dilated_convolution_round_trips_and_a_tampered_dilation_is_refused(tmp_path, edit, words):
    layer = {
        "class_name": "Conv1D",
        "config": {"name": "c", "filters": 2, "kernel_size": [3], "dilation_rate": [2],
                   "padding": "causal", "use_bias": False},
    }  # fmt: skip
    kernel = np.random.default_rng(2).integers(1, 8, (3, 2, 2)) / 8  # no zero weight
    graph = read_handmade(tmp_path, [layer], (9, 2), {"c": {"kernel": kernel}})
    assert graph.nodes[1].dilation == (1, 2) and graph.nodes[1].kernel == (1, 5)
    assert ir.weight_count(graph.nodes[1]) == kernel.size
    round_trips(graph, tmp_path)
    tampered_is_refused(graph, tmp_path, "Conv", edit, words)


def test_grouped_keras_convolution_predicts_like_keras_and_is_bit_exact(tmp_path):
    """Conv2D(groups=2): filter o reads the input channels of group o // (filters / 2);
    weights on the 1/16 grid and inputs exact in fixed<8,4> keep Keras's float32 sums
    exact, so the reference equals Keras."""
    tf.keras.utils.set_random_seed(5)
    model = tf.keras.Sequential(
        [
            tf.keras.layers.InputLayer(input_shape=(6, 5, 4)),
            tf.keras.layers.Conv2D(6, 3, groups=2, padding="same"),
            tf.keras.layers.Flatten(),
        ],
        name="grouped",
    )
    conv = model.layers[0]
    rng = np.random.default_rng(0)
    conv.set_weights([rng.integers(-8, 8, w.shape) / 16 for w in conv.get_weights()])
    graph = keras_graph(model, tmp_path, FixedType(8, 4))
    node = graph.nodes[1]
    assert isinstance(node, ir.Conv) and node.groups == 2
    x = exact_inputs((6, 5, 4), 16, 3)
    np.testing.assert_array_equal(predict(graph, x), model.predict(x, verbose=0))
    bit_exact_in_simulator(graph, n=2, seed=1)


def test_dilation_with_strides_is_refused_in_one_line(tmp_path):
    """TensorFlow itself refuses strides > 1 with a dilation; a config that has both is
    refused naming the layer."""
    from rtlgen.frontend import read_model
    from tests.models import sequential_config, write_full_h5

    layer = {
        "class_name": "Conv1D",
        "config": {"name": "c", "filters": 2, "kernel_size": [3], "strides": [2],
                   "dilation_rate": [2], "padding": "valid", "use_bias": False},
    }  # fmt: skip
    path = write_full_h5(
        tmp_path / "m.h5", sequential_config([layer], (12, 1)), {"c": {"kernel": np.ones((3, 1, 2))}}
    )
    with pytest.raises(UnsupportedError) as info:
        read_model(path)
    message = str(info.value)
    assert "\n" not in message and "layer 'c' (Conv1D): dilation_rate=[2]" in message


def test_groups_not_dividing_the_channels_are_refused_in_one_line(tmp_path):
    from rtlgen.frontend import read_model
    from rtlgen.quant.errors import ModelFileError
    from tests.models import sequential_config, write_full_h5

    layer = {
        "class_name": "Conv2D",
        "config": {"name": "g", "filters": 4, "kernel_size": [1, 1], "groups": 3,
                   "padding": "valid", "use_bias": False},
    }  # fmt: skip
    path = write_full_h5(
        tmp_path / "m.h5", sequential_config([layer], (4, 4, 6)), {"g": {"kernel": np.ones((1, 1, 2, 4))}}
    )
    with pytest.raises(ModelFileError) as info:
        read_model(path)
    message = str(info.value)
    assert "\n" not in message and "groups=3 does not divide its 6 input channels and 4" in message
