"""RepeatVector (rtlgen/ops/repeat_vector.py): a flat vector as a sequence of n equal steps,
against tf.keras 2.15 / QKeras on fixed-point inputs, in decoder networks (-> a Dense per
step, -> QSimpleRNN/QLSTM/QGRU) bit-exact in the simulator under backpressure with the
modelled timing, saved and loaded, refused in one line where Keras has no such layer."""

from __future__ import annotations

import numpy as np
import pytest

from rtlgen.ops.registry import op_for
from rtlgen.ops.repeat_vector import RepeatVector
from rtlgen.quant.errors import ModelFileError, UnsupportedError
from rtlgen.quant.fixed import FixedType
from rtlgen.quant.reference import predict
from tests.models import exact_inputs, layer_entry

from .network_checks import bit_exact_in_simulator, bit_exact_in_verilator, timing_matches_model
from .spatial_nets import (
    keras_graph,
    predicts_like_keras,
    read_handmade,
    refused_in_one_line,
    round_trips,
    tampered_is_refused,
)
from .test_recurrent import QB, _qkeras_layer, _randomize
from .test_recurrent import tf as tf  # the fixture: TensorFlow with QKeras's RNNs working

IN_TYPE = FixedType(8, 4)


def repeat_entry(n, name="rep") -> dict:
    return layer_entry("RepeatVector", {"name": name, "n": n})


@pytest.mark.parametrize("n", [1, 4])
def test_keras_repeat_vector_predicts_exactly_and_is_bit_exact_as_an_output(tf, tmp_path, n):
    """The sequence is the network's output (n beats on the master; n = 1: no hardware)."""
    model = tf.keras.Sequential(
        [tf.keras.Input((5,)), tf.keras.layers.RepeatVector(n)], name=f"repeat{n}"
    )
    graph = predicts_like_keras(model, tmp_path, n=16, input_type=IN_TYPE)
    (node,) = graph.nodes[1:]
    assert isinstance(node, RepeatVector) and node.out_shape == (n, 5)
    assert node.out_type == IN_TYPE  # values only move
    bit_exact_in_simulator(graph, n=3, seed=n)
    _, ii = timing_matches_model(graph)
    assert ii == n


def test_float_forward_is_the_reference():
    node = RepeatVector("r", (3,), (2, 3), times=2, out_type=IN_TYPE)
    x = np.arange(6).reshape(2, 3)
    op = op_for(node)
    want = [[[0, 1, 2], [0, 1, 2]], [[3, 4, 5], [3, 4, 5]]]
    np.testing.assert_array_equal(op.reference(node, x, IN_TYPE), want)
    np.testing.assert_array_equal(op.float_forward(node, x / 4), np.asarray(want) / 4)


def qkeras_decoder(tf, kind: str | None, steps: int = 3, seed: int = 0):
    """QDense(4, quantized_relu) -> RepeatVector(steps) -> ``kind`` (QSimpleRNN, QLSTM or
    QGRU, a sequence out; None: nothing) -> QDense(2) on every step."""
    from qkeras import QDense

    layers = [
        tf.keras.Input((5,)),
        QDense(4, kernel_quantizer=QB, bias_quantizer=QB, activation="quantized_relu(4,1)"),
        tf.keras.layers.RepeatVector(steps),
    ]
    if kind is not None:
        layers.append(_qkeras_layer(kind, 3, True))
    layers.append(QDense(2, kernel_quantizer=QB, bias_quantizer=QB))
    model = tf.keras.Sequential(layers, name=f"decoder_{kind}".lower())
    _randomize(model, seed)
    return model


def qkeras_predicts_exactly(model, tmp_path):
    graph = keras_graph(model, tmp_path, IN_TYPE)
    x = exact_inputs((5,), 48, seed=2)
    want = model(x, training=False).numpy()
    np.testing.assert_array_equal(predict(graph, x), want)
    return graph


def test_dense_per_step_after_repeat_vector_is_bit_exact_with_one_step_per_cycle(tf, tmp_path):
    """The repeated steps leave one per cycle: a sample every ``n`` cycles (the network's
    II), the per-step QDense (a 1x1 conv) taking one beat a cycle."""
    model = qkeras_decoder(tf, None, steps=5, seed=1)
    graph = qkeras_predicts_exactly(model, tmp_path)
    assert [n.op for n in graph.nodes] == ["input", "dense", "repeat_vector", "conv1d"]
    bit_exact_in_simulator(graph, n=3, seed=3)
    _, ii = timing_matches_model(graph)
    assert ii == 5


RNN_KINDS = ["QSimpleRNN", pytest.param("QLSTM", marks=pytest.mark.slow),
             pytest.param("QGRU", marks=pytest.mark.slow)]  # fmt: skip


@pytest.mark.parametrize("kind", RNN_KINDS)
def test_recurrent_decoder_is_exact_and_bit_exact_under_backpressure(tf, tmp_path, kind):
    """A sequence decoder: the recurrent layer takes the repeated vector as its steps."""
    graph = qkeras_predicts_exactly(qkeras_decoder(tf, kind), tmp_path)
    assert [n.op for n in graph.nodes][2] == "repeat_vector"
    bit_exact_in_simulator(graph, n=3, seed=4)
    timing_matches_model(graph)


def test_float_keras_decoder_predicts_like_keras(tf, tmp_path):
    """Float Dense -> RepeatVector -> Dense per step, weights on the 1/8 grid: exact."""
    model = tf.keras.Sequential(
        [
            tf.keras.Input((6,)),
            tf.keras.layers.Dense(4, activation="relu"),
            tf.keras.layers.RepeatVector(3),
            tf.keras.layers.Dense(2),
        ],
        name="float_decoder",
    )
    rng = np.random.default_rng(3)
    model.set_weights([rng.integers(-8, 9, w.shape) / 8 for w in model.get_weights()])
    predicts_like_keras(model, tmp_path)


def test_saved_graph_round_trips(tmp_path):
    round_trips(read_handmade(tmp_path, [repeat_entry(3)], (4,)), tmp_path)


@pytest.mark.parametrize(
    "edit, words",
    [
        (lambda d: d["fields"].update(times=2), "repeating 2 times maps (4,) to (2, 4)"),
        (lambda d: d["fields"].update(times=0), "at least once"),
        (lambda d: d.update(out_type=[9, 4, True]), "input type"),
    ],
    ids=["other-count", "zero", "other-type"],
)
def test_tampered_saved_graph_is_one_model_file_error(tmp_path, edit, words):
    graph = read_handmade(tmp_path, [repeat_entry(3)], (4,))
    tampered_is_refused(graph, tmp_path, "RepeatVector", edit, words)


@pytest.mark.parametrize(
    "layer, shape, error, words",
    [
        (repeat_entry(3), (4, 2), UnsupportedError, "is not a flat vector (N,)"),
        (repeat_entry(0), (4,), ModelFileError, "'n' = 0 is not a positive integer"),
        (repeat_entry(None), (4,), ModelFileError, "'n' = None is not a positive integer"),
    ],
    ids=["sequence-input", "zero", "none"],
)
def test_unsupported_inputs_are_refused_in_one_line(tmp_path, layer, shape, error, words):
    refused_in_one_line(tmp_path, layer, shape, error, words, "layer 'rep' (RepeatVector")


@pytest.mark.slow
def test_recurrent_decoder_in_verilator(tf, tmp_path, tmp_path_factory):
    graph = qkeras_predicts_exactly(qkeras_decoder(tf, "QSimpleRNN"), tmp_path)
    bit_exact_in_verilator(graph, tmp_path, tmp_path_factory.mktemp("verilator_cache"))
