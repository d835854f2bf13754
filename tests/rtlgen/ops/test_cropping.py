# amaranth: UnusedElaboratable=no
"""Cropping1D/2D as an op: Keras config forms, Keras semantics (hand-written files and a
real Keras model), refusals, whole networks in Amaranth's simulator and Verilator, the
Crop timing contract, and saved graphs."""

from __future__ import annotations

import numpy as np
import pytest

from rtlgen.layers.spatial import Crop
from rtlgen.ops.cropping import Cropping
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


def crop_layer(cropping, dims=2, **extra):
    fmt = {"data_format": "channels_last"} if dims == 2 else {}
    return layer_entry(f"Cropping{dims}D", {"name": "crop", "cropping": cropping, **fmt, **extra})


# ---------------------------------------------------------------------------------------
# front-end
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "dims,cropping,amounts",
    [
        (2, 1, (1, 1, 1, 1)),
        (2, [2, 1], (2, 2, 1, 1)),
        (2, [[0, 3], [2, 1]], (0, 3, 2, 1)),
        (1, 2, (0, 0, 2, 2)),
        (1, [3, 0], (0, 0, 3, 0)),
    ],
    ids=["2d-int", "2d-symmetric-pair", "2d-pairs", "1d-int", "1d-pair"],
)
def test_keras_cropping_forms_read_and_predict_like_slicing(tmp_path, dims, cropping, amounts):
    shape = (5, 6, 2) if dims == 2 else (7, 3)
    graph = read_handmade(tmp_path, [crop_layer(cropping, dims)], shape)
    (node,) = graph.nodes[1:]
    assert isinstance(node, Cropping) and node.cropping == amounts
    assert node.out_type == graph.input.out_type
    x = exact_inputs(shape, 8)
    top, bottom, left, right = amounts
    cols = slice(left, shape[-2] - right)
    want = x[:, cols] if dims == 1 else x[:, top : shape[0] - bottom, cols]
    np.testing.assert_array_equal(predict(graph, x), want)


def test_zero_cropping_builds_no_node(tmp_path):
    graph = read_handmade(tmp_path, [crop_layer(0, dims=1)], (7, 3))
    assert len(graph.nodes) == 1


def test_keras_model_with_cropping_predicts_exactly(tmp_path):
    """A real (float) Keras model of layers that only move values, 1D and 2D cropping
    among them: on inputs exact in fixed<8,4> (and so in the default input type) the
    outputs equal Keras's exactly."""
    tf = pytest.importorskip("tensorflow")
    layers = tf.keras.layers
    image = tf.keras.Sequential(
        [
            layers.Input((7, 6, 2)),
            layers.Cropping2D(((2, 1), (0, 3))),
            layers.UpSampling2D((2, 1)),
            layers.ZeroPadding2D((1, 0)),
            layers.Cropping2D(1),
        ],
        name="crop2d",
    )
    signal = tf.keras.Sequential(
        [layers.Input((9, 3)), layers.Cropping1D((1, 3)), layers.UpSampling1D(3)],
        name="crop1d",
    )
    ops = [n.op for n in predicts_like_keras(image, tmp_path).nodes[1:]]
    assert ops == ["cropping2d", "upsampling2d", "zero_padding2d", "cropping2d"]
    assert [n.op for n in predicts_like_keras(signal, tmp_path).nodes[1:]] == [
        "cropping1d",
        "upsampling1d",
    ]


# ---------------------------------------------------------------------------------------
# refusals
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "layer,shape,error,words",
    [
        (crop_layer(1, data_format="channels_first"), (5, 6, 2), UnsupportedError, "channels_last"),
        (crop_layer(1), (7, 3), UnsupportedError, "image (H, W, C)"),
        (crop_layer([[2, 3], [0, 0]]), (5, 6, 2), ModelFileError, "whole 5x6 image"),
        (crop_layer([4, 3], dims=1), (7, 3), ModelFileError, "whole 1x7 image"),
        (crop_layer([[1], [0, 0]]), (5, 6, 2), ModelFileError, "'cropping'"),
        (crop_layer("1"), (5, 6, 2), ModelFileError, "'cropping'"),
    ],
    ids=["channels-first", "2d-on-1d", "all-rows", "all-columns", "short-pair", "string"],
)
def test_unsupported_or_malformed_cropping_is_one_line_naming_the_layer(
    tmp_path, layer, shape, error, words
):
    refused_in_one_line(tmp_path, layer, shape, error, words, "layer 'crop' (Cropping")


# ---------------------------------------------------------------------------------------
# hardware
# ---------------------------------------------------------------------------------------
NETWORKS = {
    "autoencoder": lambda: autoencoder("crop"),
    "autoencoder-8x10": lambda: autoencoder("crop", 8, 10, 2, seed=1),
    "crop-at-input": lambda: chain((5, 6, 2), [("crop", (1, 2, 2, 1)), ("conv", (2, 2, False))]),
    "conv-crop-upsampling": lambda: chain(
        (6, 6, 1), [("conv", (2, 3, False)), ("crop", (1, 1, 1, 1)), ("up", (3, 3))]
    ),
    "1d": lambda: chain((9, 2), [("conv", (3, 2, False)), ("crop", (0, 0, 3, 1))]),
}


@pytest.mark.parametrize("name", list(NETWORKS))
def test_networks_with_cropping_bit_exact_under_backpressure(name):
    bit_exact_in_simulator(NETWORKS[name](), n=3, valid_prob=0.6, ready_prob=0.5, seed=2)


@pytest.mark.parametrize("name", list(NETWORKS))
def test_measured_latency_and_ii_equal_the_manifest(name):
    timing_matches_model(NETWORKS[name]())


def test_cropping_stalled_by_a_slower_upsampling_is_predicted():
    """A held kept beat stops the crop from taking (even dropped) input: an upsampling
    after it that takes rows in bursts stalls the input; `rtlgen.timing` runs the
    handshakes, so the manifest has that stall."""
    graph = chain((5, 6, 2), [("crop", (1, 2, 2, 1)), ("up", (2, 2)), ("crop", (0, 1, 1, 0))])
    bit_exact_and_timed(graph)


@pytest.mark.parametrize(
    "height,width,cropping,gap_prob",
    [
        (5, 6, (1, 2, 2, 1), 0.0),
        (5, 6, (1, 2, 2, 1), 0.5),
        (1, 9, (0, 0, 3, 4), 0.3),
        (3, 3, (2, 0, 0, 2), 0.7),
    ],
)
def test_model_timing_is_the_simulated_timing(height, width, cropping, gap_prob):
    """Input beats offered at random cycles, output always ready: `Crop.model_timing` gives
    exactly the simulated handshake and output cycles (3 samples)."""
    model_timing_is_simulated(Crop(height, width, 2, cropping, 6), 3, height * width, gap_prob)


@pytest.mark.slow
def test_autoencoder_with_cropping_in_verilator(tmp_path, tmp_path_factory):
    bit_exact_in_verilator(
        autoencoder("crop"), tmp_path, tmp_path_factory.mktemp("verilator_cache")
    )


# ---------------------------------------------------------------------------------------
# saved graphs
# ---------------------------------------------------------------------------------------
def test_saved_graph_round_trips(tmp_path):
    round_trips(NETWORKS["conv-crop-upsampling"](), tmp_path)


@pytest.mark.parametrize(
    "edit,words",
    [
        (lambda d: d["fields"].update(cropping=[1, 1, 1, 1, 0]), "4 integers"),
        (lambda d: d["fields"].update(cropping=[0, 0, 1, 1]), "maps"),
        (lambda d: d["fields"].update(cropping=[2, 2, 0, 0]), "removes the whole"),
        (lambda d: d["fields"].update(cropping="1"), "wrong type"),
        (lambda d: d.update(out_type=[5, 2, False]), "input type"),
    ],
    ids=["five-amounts", "wrong-shape", "everything", "string", "other-type"],
)
def test_tampered_cropping_is_one_model_file_error(tmp_path, edit, words):
    tampered_is_refused(NETWORKS["conv-crop-upsampling"](), tmp_path, "Cropping", edit, words)
