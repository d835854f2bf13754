# amaranth: UnusedElaboratable=no
"""Conv1DTranspose / Conv2DTranspose / QConv2DTranspose: Keras's output geometry and values
(float models with dyadic weights, exact in float32, and QKeras bit-exact), refusals, the
ZeroInsert block's timing contract, whole networks in Amaranth's simulator and Verilator,
saved graphs."""

from __future__ import annotations

import numpy as np
import pytest

from rtlgen.layers.spatial import ZeroInsert
from rtlgen.ops.conv_transpose import ZeroInsertion
from rtlgen.quant.errors import ModelFileError, UnsupportedError
from tests.models import layer_entry

from .network_checks import bit_exact_in_simulator, bit_exact_in_verilator, timing_matches_model
from .spatial_nets import (
    model_timing_is_simulated,
    predicts_like_keras,
    refused_in_one_line,
    tampered_is_refused,
)


def _dyadic_weights(model, seed: int) -> None:
    """Weights on a 1/8 grid in [-1, 1]: the float model's sums are exact in float32."""
    rng = np.random.default_rng(seed)
    model.set_weights([rng.integers(-8, 9, size=w.shape) / 8.0 for w in model.get_weights()])


GEOMETRIES = [
    # dims, input shape, kernel, strides, padding, output_padding
    (2, (3, 4, 2), 3, 2, "same", None),
    (2, (3, 3, 1), 4, 2, "same", None),  # the usual 4x4 stride-2 upsampler
    (2, (3, 4, 2), 3, 2, "valid", None),
    (2, (2, 3, 1), 2, 2, "valid", None),  # kernel = stride: no overlap
    (2, (3, 3, 2), 1, 3, "valid", None),  # kernel below the stride: zeros between
    (2, (4, 3, 1), 3, 1, "same", None),  # stride 1: a convolution with padding
    (2, (3, 4, 1), (3, 2), (2, 1), "valid", (1, 0)),
    (2, (2, 3, 2), 5, 3, "same", 2),
    (1, (5, 2), 3, 2, "same", None),
    (1, (4, 1), 4, 3, "valid", 1),
]
#: in the default set; the others run in the slow set (the default run stays under 5 minutes)
DEFAULT_GEOMETRIES = ("4x4-s2-same", "3x3-s2-valid", "3x2-s21-valid-op10", "1d-4-s3-valid-op1")
GEOMETRY_IDS = [
    "3x3-s2-same", "4x4-s2-same", "3x3-s2-valid", "2x2-s2-valid", "1x1-s3-valid",
    "3x3-s1-same", "3x2-s21-valid-op10", "5x5-s3-same-op2", "1d-3-s2-same", "1d-4-s3-valid-op1",
]  # fmt: skip


@pytest.mark.parametrize(
    "dims,shape,kernel,strides,padding,extra",
    [
        pytest.param(*g, id=i, marks=() if i in DEFAULT_GEOMETRIES else pytest.mark.slow)
        for g, i in zip(GEOMETRIES, GEOMETRY_IDS, strict=True)
    ],
)
def test_float_keras_model_predicts_exactly(tmp_path, dims, shape, kernel, strides, padding, extra):
    """Keras's shape and values (sums of dyadic products, exact in float32) on inputs exact
    in fixed<8,4>: the layer's output is the reference's, every position."""
    tf = pytest.importorskip("tensorflow")
    layers = tf.keras.layers
    cls = layers.Conv2DTranspose if dims == 2 else layers.Conv1DTranspose
    model = tf.keras.Sequential(
        [
            layers.Input(shape),
            cls(3, kernel, strides=strides, padding=padding, output_padding=extra, name="up"),
        ],
        name=f"transpose{dims}d",
    )
    _dyadic_weights(model, seed=len(shape) * 7 + (kernel if isinstance(kernel, int) else 1))
    graph = predicts_like_keras(model, tmp_path, n=6)
    assert [type(n).__name__ for n in graph.nodes[1:3]] == ["ZeroInsertion", "Conv"]
    assert graph.nodes[-1].out_shape == model.output_shape[1:]


def _qkeras_decoder(monkeypatch, shape=(3, 3, 2), kernel=3, strides=2, padding="same"):
    """QKeras 0.9's QConv2DTranspose calls ``array_ops.stack``, which TensorFlow 2.15 moved
    (to ``array_ops_stack``): patched for the test (rtlgen reads the file, never QKeras)."""
    pytest.importorskip("qkeras")
    import tensorflow as tf
    from qkeras import QActivation, QConv2D, QConv2DTranspose, quantized_bits
    from tensorflow.python.ops import array_ops

    monkeypatch.setattr(array_ops, "stack", tf.stack, raising=False)

    q = quantized_bits(4, 0, alpha=1)
    layers = tf.keras.layers
    model = tf.keras.Sequential(
        [
            layers.Input(shape),
            QConv2D(3, 2, padding="same", kernel_quantizer=q, bias_quantizer=q),
            QActivation("quantized_relu(6,2)"),
            QConv2DTranspose(2, kernel, strides=strides, padding=padding,
                             kernel_quantizer=q, bias_quantizer=q, name="up"),
            QActivation("quantized_relu(6,2)"),
            QConv2D(1, 3, kernel_quantizer=q, bias_quantizer=q),
        ],
        name="qdecoder",
    )  # fmt: skip
    rng = np.random.default_rng(3)
    model.set_weights([rng.normal(size=w.shape) for w in model.get_weights()])
    return model


def test_qkeras_decoder_is_bit_exact_in_keras_and_in_hardware(tmp_path, monkeypatch):
    """A QKeras conv -> QConv2DTranspose -> conv decoder: every output bit equals QKeras's,
    and the hardware equals the reference under random backpressure with the predicted
    latency and II."""
    graph = predicts_like_keras(_qkeras_decoder(monkeypatch), tmp_path, n=16)
    assert "zero_insertion2d" in [n.op for n in graph.nodes]
    bit_exact_in_simulator(graph, n=3, valid_prob=0.6, ready_prob=0.5, seed=4)
    timing_matches_model(graph)


@pytest.mark.slow
def test_qkeras_decoder_in_verilator(tmp_path, tmp_path_factory, monkeypatch):
    model = _qkeras_decoder(monkeypatch, kernel=4, padding="valid")
    graph = predicts_like_keras(model, tmp_path, n=4)
    bit_exact_in_verilator(graph, tmp_path, tmp_path_factory.mktemp("verilator_cache"))


def test_saved_graph_round_trips_and_tampering_is_refused(tmp_path, monkeypatch):
    graph = predicts_like_keras(_qkeras_decoder(monkeypatch, strides=1), tmp_path, n=2)
    tampered_is_refused(  # after a round trip
        graph, tmp_path, "ZeroInsertion", lambda d: d["fields"].update(strides=[3, 2]), "maps"
    )


# ---------------------------------------------------------------------------------------
# refusals
# ---------------------------------------------------------------------------------------
def transpose_layer(**config):
    return layer_entry("Conv2DTranspose", {"name": "up", "filters": 2, "kernel_size": [3, 3], **config})


@pytest.mark.parametrize(
    "layer,shape,error,words",
    [
        (transpose_layer(dilation_rate=[2, 2]), (3, 3, 1), UnsupportedError, "dilation_rate"),
        (transpose_layer(padding="causal"), (3, 3, 1), UnsupportedError, "'valid', 'same'"),
        (transpose_layer(data_format="channels_first"), (3, 3, 1), UnsupportedError, "channels_last"),
        (transpose_layer(strides=[2, 2], output_padding=[2, 0]), (3, 3, 1), ModelFileError,
         "below the stride"),
        (transpose_layer(), (5, 1), UnsupportedError, "image (H, W, C)"),
    ],
    ids=["dilation", "causal", "channels-first", "output-padding", "1d-input"],
)  # fmt: skip
def test_unsupported_transposed_convolution_is_one_line_naming_the_layer(
    tmp_path, layer, shape, error, words
):
    refused_in_one_line(tmp_path, layer, shape, error, words, "layer 'up' (Conv2DTranspose")


# ---------------------------------------------------------------------------------------
# the ZeroInsert block
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "height,width,strides,padding,gap_prob",
    [
        (3, 4, (2, 2), (2, 3, 2, 3), 0.0),
        (3, 4, (2, 2), (2, 3, 2, 3), 0.5),
        (2, 3, (3, 1), (0, 0, 1, 0), 0.3),
        (1, 5, (1, 2), (0, 0, 0, 2), 0.7),
    ],
)
def test_model_timing_is_the_simulated_timing(height, width, strides, padding, gap_prob):
    model_timing_is_simulated(ZeroInsert(height, width, 2, strides, padding, 6), 3, width, gap_prob)


def test_zero_insertion_node_names_its_op():
    node = ZeroInsertion("z", (3, 4, 2), (5, 7, 2), strides=(2, 2), padding=(0, 0, 0, 0))
    assert node.op == "zero_insertion2d"
