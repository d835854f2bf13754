"""Reshape (any target the stream order allows) and Permute (ranks 2 and 3): Keras models
saved by TensorFlow predict exactly, networks that re-beat a stream (vector -> image,
image -> sequence of another width) or permute one are bit-exact under backpressure with
the predicted timing, saved graphs load back, and the refusals name the layer."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from rtlgen.frontend import read_model
from rtlgen.frontend.keras_config import KerasLayer
from rtlgen.ops.reshape import Permute, Reshape, read_keras_permute
from rtlgen.passes import PrecisionConfig, lower
from rtlgen.quant.errors import ModelFileError, UnsupportedError
from rtlgen.quant.fixed import FixedType
from rtlgen.quant.reference import predict, run_int
from rtlgen.serialize import load_graph, save_graph
from tests.models import exact_inputs, layer_entry, sequential_config, write_full_h5

from ..nets import random_inputs
from .network_checks import bit_exact_in_simulator, bit_exact_in_verilator, timing_matches_model

Q4 = {"kernel_quantizer": "quantized_bits(4,0,alpha=1)", "bias_quantizer": "quantized_bits(4,0,alpha=1)"}


def decoder_model():
    """x (6,) -> QDense(24) -> Reshape(3, 4, 2) -> QConv2D 3x3 same -> Reshape(12, 3) ->
    QConv1D 1 -> Reshape(4, 9): a dense-to-image decoder and two re-beatings."""
    pytest.importorskip("qkeras")  # the oracle: QKeras 0.9 on TensorFlow 2.15 (3.11) or 2.21 + tf-keras (3.12+)
    import tensorflow as tf
    from qkeras import QActivation, QConv1D, QConv2D, QDense

    tf.keras.utils.set_random_seed(3)
    L = tf.keras.layers
    return tf.keras.Sequential(
        [
            L.InputLayer((6,), name="x"),
            QDense(24, activation="quantized_relu(4,1)", name="d", **Q4),
            L.Reshape((3, 4, 2), name="to_image"),
            QConv2D(3, 3, padding="same", activation="quantized_relu(4,1)", name="c", **Q4),
            L.Reshape((12, 3), name="to_sequence"),
            QConv1D(3, 1, name="c1", **Q4),
            QActivation("quantized_bits(6,2)", name="q"),
            L.Reshape((4, 9), name="regroup"),
            L.Permute((1, 2), name="same_order"),
        ],
        name="decoder",
    )


def graph_of(model, tmp_path):
    path = tmp_path / "m.h5"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save(path)
    return lower(read_model(path), PrecisionConfig(input=FixedType(8, 4)))


def test_reshapes_predict_exactly_like_keras(tmp_path):
    model = decoder_model()
    graph = graph_of(model, tmp_path)
    assert [n.op for n in graph.nodes if isinstance(n, Reshape)] == ["reshape"] * 3
    x = exact_inputs((6,), 100, seed=2)
    np.testing.assert_array_equal(predict(graph, x), model.predict(x, verbose=0).astype(np.float64))


def test_re_beating_networks_are_bit_exact_with_predicted_timing(tmp_path):
    graph = graph_of(decoder_model(), tmp_path)
    bit_exact_in_simulator(graph, n=3, valid_prob=0.5, ready_prob=0.4)
    timing_matches_model(graph)
    save_graph(graph, tmp_path / "g.npz")
    loaded = load_graph(tmp_path / "g.npz")
    x = random_inputs(graph, 4, seed=1)
    np.testing.assert_array_equal(run_int(loaded, x), run_int(graph, x))


@pytest.mark.parametrize(
    "layer,error,message",
    [
        (layer_entry("Permute", {"name": "p", "dims": [1, 1]}), ModelFileError, "not a permutation"),
        (layer_entry("Reshape", {"name": "r", "target_shape": [5, 5]}), ModelFileError,
         "does not hold 12 elements|changes the number"),
        (layer_entry("Reshape", {"name": "r", "target_shape": [1, 2, 3, 2]}), UnsupportedError,
         "layer 'r' .*reshape to \\(1, 2, 3, 2\\)"),
    ],
)
def test_refusals_name_the_layer(tmp_path, layer, error, message):
    path = write_full_h5(tmp_path / "m.h5", sequential_config([layer], (3, 4)), {})
    with pytest.raises(error, match=message):
        read_model(path)


@pytest.mark.slow
def test_decoder_in_verilator(tmp_path, tmp_path_factory):
    graph = graph_of(decoder_model(), tmp_path)
    bit_exact_in_verilator(graph, tmp_path, tmp_path_factory.mktemp("vcache"))


def permute_model(shape, dims):
    pytest.importorskip("qkeras")  # the oracle: TensorFlow 2.15 (Python 3.11)
    import tensorflow as tf

    L = tf.keras.layers
    return tf.keras.Sequential([L.InputLayer(shape, name="x"), L.Permute(dims, name="p")])


@pytest.mark.parametrize(
    "shape,dims",
    [
        ((8, 5), (2, 1)),
        ((3, 4, 2), (1, 3, 2)),
        ((3, 4, 2), (2, 1, 3)),
        ((3, 4, 2), (2, 3, 1)),
        ((3, 4, 2), (3, 1, 2)),
        ((3, 4, 2), (3, 2, 1)),
    ],
)
def test_permute_predicts_exactly_like_keras(tmp_path, shape, dims):
    model = permute_model(shape, dims)
    graph = graph_of(model, tmp_path)
    assert [n.op for n in graph.nodes] == ["input", "permute"]
    x = exact_inputs(shape, 50, seed=4)
    want = model.predict(x, verbose=0).astype(np.float64)
    assert want.shape[1:] == graph.output_shape and not np.array_equal(want.ravel(), x.ravel())
    np.testing.assert_array_equal(predict(graph, x), want)


def test_permute_of_size_one_axes_keeps_the_order_and_is_a_reshape(tmp_path):
    model = permute_model((1, 4, 3), (2, 1, 3))
    graph = graph_of(model, tmp_path)
    assert [n.op for n in graph.nodes] == ["input", "reshape"]
    x = exact_inputs((1, 4, 3), 10, seed=5)
    np.testing.assert_array_equal(predict(graph, x), model.predict(x, verbose=0))


def permute_network():
    """x (8, 5) -> Permute(2, 1) -> QDense(3) on the last axis (8) -> Flatten -> QDense(4),
    and an image branch of its own: (3, 4, 2) -> Permute(3, 1, 2) -> QConv2D 1x1 ->
    Permute(2, 3, 1) (one beat a position in and out, so both sides re-beat)."""
    pytest.importorskip("qkeras")
    import tensorflow as tf
    from qkeras import QActivation, QConv2D, QDense

    tf.keras.utils.set_random_seed(5)
    L = tf.keras.layers
    sequence = tf.keras.Sequential(
        [
            L.InputLayer((8, 5), name="x"),
            L.Permute((2, 1), name="swap"),
            QDense(3, activation="quantized_relu(4,1)", name="d1", **Q4),
            L.Flatten(name="f"),
            QDense(4, name="d2", **Q4),
        ],
        name="permute_dense",
    )
    image = tf.keras.Sequential(
        [
            L.InputLayer((3, 4, 2), name="x"),
            L.Permute((3, 1, 2), name="to_channels_first"),
            QConv2D(2, 1, name="c", **Q4),
            QActivation("quantized_bits(6,2)", name="q"),
            L.Permute((2, 3, 1), name="back"),
        ],
        name="permute_image",
    )
    return sequence, image


def test_permute_networks_are_exact_and_bit_exact_under_backpressure(tmp_path):
    for model in permute_network():
        graph = graph_of(model, tmp_path)
        assert sum(isinstance(n, Permute) for n in graph.nodes) >= 1
        x = exact_inputs(model.input_shape[1:], 60, seed=6)
        np.testing.assert_array_equal(predict(graph, x), model.predict(x, verbose=0))
        bit_exact_in_simulator(graph, n=3, valid_prob=0.5, ready_prob=0.4)
        timing_matches_model(graph)
        save_graph(graph, tmp_path / "g.npz")
        loaded = load_graph(tmp_path / "g.npz")
        assert [getattr(n, "axes", None) for n in loaded.nodes] == [
            getattr(n, "axes", None) for n in graph.nodes
        ]
        x = random_inputs(graph, 4, seed=1)
        np.testing.assert_array_equal(run_int(loaded, x), run_int(graph, x))


def test_permute_of_a_rank_4_tensor_is_refused_in_one_line():
    layer = KerasLayer("Permute", "p", {"name": "p", "dims": [2, 1, 3, 4]})
    with pytest.raises(UnsupportedError, match=r"^layer 'p' \(Permute\): .*rank-4[^\n]*$"):
        read_keras_permute(layer, (2, 3, 2, 2), None)


@pytest.mark.slow
def test_permute_network_in_verilator(tmp_path, tmp_path_factory):
    graph = graph_of(permute_network()[0], tmp_path)
    bit_exact_in_verilator(graph, tmp_path, tmp_path_factory.mktemp("vcache"))
