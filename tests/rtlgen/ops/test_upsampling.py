# amaranth: UnusedElaboratable=no
"""UpSampling1D/2D (nearest) as an op: Keras config forms, Keras semantics (hand-written
files and a real QKeras model), refusals, whole networks in Amaranth's simulator and
Verilator, the UpSampleNearest timing contract, and saved graphs."""

from __future__ import annotations

import numpy as np
import pytest

from rtlgen.layers.spatial import UpSampleNearest
from rtlgen.ops.upsampling import UpSampling
from rtlgen.quant.errors import ModelFileError, UnsupportedError
from rtlgen.quant.reference import predict
from tests.models import exact_inputs, layer_entry

from .network_checks import bit_exact_in_simulator, bit_exact_in_verilator, timing_matches_model
from .spatial_nets import (
    autoencoder,
    bit_exact_and_timed,
    chain,
    model_timing_is_simulated,
    predicts_like_keras,
    read_handmade,
    refused_in_one_line,
    round_trips,
    tampered_is_refused,
)


def up_layer(size, dims=2, **extra):
    fmt = {"data_format": "channels_last", "interpolation": "nearest"} if dims == 2 else {}
    return layer_entry(f"UpSampling{dims}D", {"name": "up", "size": size, **fmt, **extra})


# ---------------------------------------------------------------------------------------
# front-end
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "dims,size,amounts",
    [(2, 3, (3, 3)), (2, [2, 1], (2, 1)), (2, [1, 3], (1, 3)), (1, 2, (1, 2)), (1, 4, (1, 4))],
    ids=["2d-int", "2d-rows", "2d-columns", "1d-2", "1d-4"],
)
def test_keras_size_forms_read_and_predict_like_repeat(tmp_path, dims, size, amounts):
    shape = (3, 4, 2) if dims == 2 else (5, 3)
    graph = read_handmade(tmp_path, [up_layer(size, dims)], shape)
    (node,) = graph.nodes[1:]
    assert isinstance(node, UpSampling) and node.size == amounts
    assert node.out_type == graph.input.out_type
    x = exact_inputs(shape, 8)
    want = np.repeat(x, amounts[1], axis=-2)
    if dims == 2:
        want = np.repeat(want, amounts[0], axis=1)
    np.testing.assert_array_equal(predict(graph, x), want)


def test_size_one_builds_no_node(tmp_path):
    graph = read_handmade(tmp_path, [up_layer([1, 1])], (3, 4, 2))
    assert len(graph.nodes) == 1


def test_qkeras_autoencoder_with_upsampling_predicts_exactly(tmp_path):
    """A real QKeras convolutional autoencoder (conv, pool, conv, upsampling, padding,
    conv): every output bit equals QKeras's on inputs exact in fixed<8,4>."""
    pytest.importorskip("qkeras")
    import tensorflow as tf
    from qkeras import QActivation, QConv2D, quantized_bits

    q = quantized_bits(4, 0, alpha=1)
    layers = tf.keras.layers
    model = tf.keras.Sequential(
        [
            layers.Input((8, 8, 1)),
            QConv2D(3, 3, kernel_quantizer=q, bias_quantizer=q),
            QActivation("quantized_relu(6,2)"),
            layers.MaxPooling2D(2),
            QConv2D(2, 3, padding="same", kernel_quantizer=q, bias_quantizer=q),
            QActivation("quantized_relu(6,2)"),
            layers.UpSampling2D(2),
            layers.ZeroPadding2D(1),
            QConv2D(1, 3, kernel_quantizer=q, bias_quantizer=q),
        ],
        name="qautoencoder",
    )
    rng = np.random.default_rng(1)
    model.set_weights([rng.normal(size=w.shape) for w in model.get_weights()])
    graph = predicts_like_keras(model, tmp_path)
    assert "upsampling2d" in [n.op for n in graph.nodes]
    bit_exact_in_simulator(graph, n=2, valid_prob=0.7, ready_prob=0.6, seed=4)


# ---------------------------------------------------------------------------------------
# refusals
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "layer,shape,error,words",
    [
        (up_layer(2, interpolation="bilinear"), (3, 4, 2), UnsupportedError, "only 'nearest'"),
        (up_layer(2, data_format="channels_first"), (3, 4, 2), UnsupportedError, "channels_last"),
        (up_layer(2), (5, 3), UnsupportedError, "image (H, W, C)"),
        (up_layer(2, dims=1), (3, 4, 2), UnsupportedError, "1D signal (L, C)"),
        (up_layer(0), (3, 4, 2), ModelFileError, "'size'"),
        (up_layer([2, 2], dims=1), (5, 3), ModelFileError, "'size'"),
        (up_layer([2, 2, 2]), (3, 4, 2), ModelFileError, "'size'"),
    ],
    ids=["bilinear", "channels-first", "2d-on-1d", "1d-on-image", "zero", "1d-pair", "three"],
)
def test_unsupported_or_malformed_upsampling_is_one_line_naming_the_layer(
    tmp_path, layer, shape, error, words
):
    refused_in_one_line(tmp_path, layer, shape, error, words, "layer 'up' (UpSampling")


# ---------------------------------------------------------------------------------------
# hardware
# ---------------------------------------------------------------------------------------
NETWORKS = {
    "autoencoder": lambda: autoencoder("pad", 12, 12, 1, seed=2),
    "upsampling-at-input": lambda: chain((4, 4, 2), [("up", (3, 3)), ("conv", (2, 3, False))]),
    "rows-only-then-crop": lambda: chain(
        (3, 4, 1), [("up", (2, 1)), ("crop", (1, 0, 1, 1)), ("conv", (2, 2, False))]
    ),
    "1d": lambda: chain((5, 2), [("up", (1, 3)), ("conv", (2, 3, False))]),
    "1d-upsampling-crop": lambda: chain((6, 2), [("up", (1, 3)), ("crop", (0, 0, 2, 4))]),
}


@pytest.mark.parametrize("name", list(NETWORKS))
def test_networks_with_upsampling_bit_exact_under_backpressure(name):
    bit_exact_in_simulator(NETWORKS[name](), n=3, valid_prob=0.6, ready_prob=0.5, seed=2)


@pytest.mark.parametrize("name", list(NETWORKS))
def test_measured_latency_and_ii_equal_the_manifest(name):
    timing_matches_model(NETWORKS[name]())


#: The upsampling emits more beats per sample than reach its upstream's input, but is not
#: the first stage: it stalls its upstream and the input (`rtlgen.timing` runs the handshakes).
SLOWER_THAN_UPSTREAM = {
    "1d-after-cropping": lambda: chain(
        (9, 2), [("crop", (0, 0, 1, 2)), ("up", (1, 2)), ("conv", (2, 3, False))]
    ),
    "two-upsamplings": lambda: chain((3, 3, 1), [("up", (2, 2)), ("up", (2, 1))]),
    "1d-after-padding": lambda: chain((6, 2), [("pad", (0, 0, 1, 1)), ("up", (1, 2))]),
}


@pytest.mark.parametrize("name", list(SLOWER_THAN_UPSTREAM))
def test_upsampling_slower_than_its_upstream_is_predicted(name):
    graph = SLOWER_THAN_UPSTREAM[name]()
    bit_exact_and_timed(graph)


@pytest.mark.parametrize(
    "height,width,size,gap_prob",
    [
        (3, 4, (2, 3), 0.0),
        (3, 4, (2, 3), 0.5),
        (2, 1, (3, 1), 0.3),
        (1, 5, (1, 2), 0.7),
        (2, 3, (1, 1), 0.5),
    ],
)
def test_model_timing_is_the_simulated_timing(height, width, size, gap_prob):
    """Input beats offered at random cycles, output always ready:
    `UpSampleNearest.model_timing` gives exactly the simulated handshake and output cycles
    (3 samples)."""
    model_timing_is_simulated(UpSampleNearest(height, width, 2, size, 6), 3, width, gap_prob)


@pytest.mark.slow
def test_1d_upsampling_network_in_verilator(tmp_path, tmp_path_factory):
    bit_exact_in_verilator(NETWORKS["1d"](), tmp_path, tmp_path_factory.mktemp("verilator_cache"))


# ---------------------------------------------------------------------------------------
# saved graphs
# ---------------------------------------------------------------------------------------
def test_saved_graph_round_trips(tmp_path):
    round_trips(NETWORKS["upsampling-at-input"](), tmp_path)


@pytest.mark.parametrize(
    "edit,words",
    [
        (lambda d: d["fields"].update(size=[2]), "2 integers"),
        (lambda d: d["fields"].update(size=[3, 2]), "maps"),
        (lambda d: d["fields"].update(size=[0, 3]), ">= 1"),
        (lambda d: d["fields"].update(size=None), "must not be null"),
        (lambda d: d.update(out_type=[9, 4, True]), "input type"),
    ],
    ids=["one-size", "wrong-shape", "zero", "null", "other-type"],
)
def test_tampered_upsampling_is_one_model_file_error(tmp_path, edit, words):
    tampered_is_refused(NETWORKS["upsampling-at-input"](), tmp_path, "UpSampling", edit, words)
