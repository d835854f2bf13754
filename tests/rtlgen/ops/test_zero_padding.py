# amaranth: UnusedElaboratable=no
"""ZeroPadding1D/2D as an op: Keras config forms, Keras semantics (hand-written files and a
real QKeras model), refusals, whole networks in Amaranth's simulator and Verilator, the
ZeroPad timing contract, and saved graphs."""

from __future__ import annotations

import numpy as np
import pytest

from rtlgen.layers.spatial import ZeroPad
from rtlgen.ops.zero_padding import ZeroPadding
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


def pad_layer(padding, dims=2, **extra):
    return layer_entry(
        f"ZeroPadding{dims}D",
        {
            "name": "pad",
            "padding": padding,
            **({"data_format": "channels_last"} if dims == 2 else {}),
            **extra,
        },
    )


# ---------------------------------------------------------------------------------------
# front-end
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "dims,padding,amounts",
    [
        (2, 2, (2, 2, 2, 2)),
        (2, [1, 3], (1, 1, 3, 3)),
        (2, [[1, 0], [2, 3]], (1, 0, 2, 3)),
        (1, 2, (0, 0, 2, 2)),
        (1, [0, 3], (0, 0, 0, 3)),
    ],
    ids=["2d-int", "2d-symmetric-pair", "2d-pairs", "1d-int", "1d-pair"],
)
def test_keras_padding_forms_read_and_predict_like_numpy_pad(tmp_path, dims, padding, amounts):
    shape = (3, 4, 2) if dims == 2 else (5, 3)
    graph = read_handmade(tmp_path, [pad_layer(padding, dims)], shape)
    (node,) = graph.nodes[1:]
    assert isinstance(node, ZeroPadding) and node.padding == amounts
    assert node.out_type == graph.input.out_type
    x = exact_inputs(shape, 8)
    top, bottom, left, right = amounts
    widths = [(0, 0), (top, bottom), (left, right), (0, 0)][-(len(shape) + 1) :]
    if dims == 1:
        widths = [(0, 0), (left, right), (0, 0)]
    np.testing.assert_array_equal(predict(graph, x), np.pad(x, widths))


def test_zero_amounts_build_no_node(tmp_path):
    graph = read_handmade(tmp_path, [pad_layer([[0, 0], [0, 0]])], (3, 4, 2))
    assert len(graph.nodes) == 1


def test_qkeras_model_with_zero_padding_predicts_exactly(tmp_path):
    """A real QKeras model (padding around and between quantized convs): every output bit
    equals QKeras's on inputs exact in fixed<8,4>."""
    pytest.importorskip("qkeras")
    import tensorflow as tf
    from qkeras import QActivation, QConv2D, quantized_bits

    q = quantized_bits(4, 0, alpha=1)
    model = tf.keras.Sequential(
        [
            tf.keras.layers.Input((5, 6, 2)),
            tf.keras.layers.ZeroPadding2D(((1, 2), (0, 3))),
            QConv2D(3, 3, kernel_quantizer=q, bias_quantizer=q),
            QActivation("quantized_relu(6,2)"),
            tf.keras.layers.ZeroPadding2D(1),
            QConv2D(2, 2, kernel_quantizer=q, bias_quantizer=q),
        ],
        name="qpad",
    )
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(size=w.shape) for w in model.get_weights()])
    graph = predicts_like_keras(model, tmp_path)
    assert [n.op for n in graph.nodes[1:]].count("zero_padding2d") == 2


# ---------------------------------------------------------------------------------------
# refusals
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "layer,shape,error,words",
    [
        (pad_layer(1, data_format="channels_first"), (3, 4, 2), UnsupportedError, "channels_last"),
        (pad_layer(1), (5, 3), UnsupportedError, "image (H, W, C)"),
        (pad_layer(1, dims=1), (3, 4, 2), UnsupportedError, "1D signal (L, C)"),
        (pad_layer([1, 2, 3]), (3, 4, 2), ModelFileError, "'padding'"),
        (pad_layer([[1, -1], [0, 0]]), (3, 4, 2), ModelFileError, "'padding'"),
        (pad_layer(1.5, dims=1), (5, 3), ModelFileError, "'padding'"),
        (pad_layer([True, 1], dims=1), (5, 3), ModelFileError, "'padding'"),
    ],
    ids=["channels-first", "2d-on-1d", "1d-on-image", "three", "negative", "float", "bool"],
)
def test_unsupported_or_malformed_padding_is_one_line_naming_the_layer(
    tmp_path, layer, shape, error, words
):
    refused_in_one_line(tmp_path, layer, shape, error, words, "layer 'pad' (ZeroPadding")


# ---------------------------------------------------------------------------------------
# hardware
# ---------------------------------------------------------------------------------------
NETWORKS = {
    "autoencoder": lambda: autoencoder("pad"),
    "autoencoder-10x8": lambda: autoencoder("pad", 10, 8, 2, seed=1),
    "pad-at-input": lambda: chain((4, 5, 2), [("pad", (2, 1, 1, 3)), ("conv", (2, 3, False))]),
    "trailing-only": lambda: chain((4, 4, 1), [("conv", (2, 3, False)), ("pad", (0, 1, 1, 1))]),
    "1d": lambda: chain((7, 2), [("pad", (0, 0, 2, 1)), ("conv", (3, 3, False))]),
}


@pytest.mark.parametrize("name", list(NETWORKS))
def test_networks_with_zero_padding_bit_exact_under_backpressure(name):
    bit_exact_in_simulator(NETWORKS[name](), n=3, valid_prob=0.6, ready_prob=0.5, seed=2)


@pytest.mark.parametrize("name", list(NETWORKS))
def test_measured_latency_and_ii_equal_the_manifest(name):
    timing_matches_model(NETWORKS[name]())


#: The padding walks more positions per sample than the beats reaching it: the block stalls
#: its upstream and, through it, the input (`rtlgen.timing` runs the handshakes).
SLOWER_THAN_UPSTREAM = {
    "after-upsampling": lambda: chain(
        (4, 4, 2), [("up", (2, 2)), ("pad", (1, 2, 0, 1)), ("conv", (2, 3, False))]
    ),
    "more-positions-than-input-beats": lambda: chain(
        (3, 4, 1), [("conv", (2, 2, False)), ("pad", (0, 2, 0, 1))]
    ),
}


@pytest.mark.parametrize("name", list(SLOWER_THAN_UPSTREAM))
def test_padding_slower_than_its_upstream_is_predicted(name):
    graph = SLOWER_THAN_UPSTREAM[name]()
    bit_exact_and_timed(graph)


@pytest.mark.parametrize(
    "height,width,padding,gap_prob",
    [
        (3, 4, (1, 2, 3, 1), 0.0),
        (3, 4, (1, 2, 3, 1), 0.5),
        (1, 5, (0, 0, 2, 0), 0.3),
        (2, 2, (0, 1, 0, 1), 0.5),
        (2, 3, (2, 0, 0, 0), 0.7),
    ],
)
def test_model_timing_is_the_simulated_timing(height, width, padding, gap_prob):
    """Input beats offered at random cycles, output always ready: `ZeroPad.model_timing`
    gives exactly the simulated handshake and output cycles (3 samples)."""
    model_timing_is_simulated(ZeroPad(height, width, 2, padding, 6), 3, height + width, gap_prob)


@pytest.mark.slow
def test_autoencoder_with_zero_padding_in_verilator(tmp_path, tmp_path_factory):
    bit_exact_in_verilator(autoencoder("pad"), tmp_path, tmp_path_factory.mktemp("verilator_cache"))


# ---------------------------------------------------------------------------------------
# saved graphs
# ---------------------------------------------------------------------------------------
def test_saved_graph_round_trips(tmp_path):
    round_trips(NETWORKS["autoencoder"](), tmp_path)


@pytest.mark.parametrize(
    "edit,words",
    [
        (lambda d: d["fields"].update(padding=[1, 1, 1]), "4 integers"),
        (lambda d: d["fields"].update(padding=[0, 0, 1, 2]), "maps"),
        (lambda d: d["fields"].update(padding=[-1, 3, 1, 1]), ">= 0"),
        (lambda d: d.update(out_type=[12, 4, True]), "input type"),
        (lambda d: d["fields"].pop("padding"), "missing"),
    ],
    ids=["three-amounts", "wrong-shape", "negative", "other-type", "missing"],
)
def test_tampered_padding_is_one_model_file_error(tmp_path, edit, words):
    tampered_is_refused(NETWORKS["autoencoder"](), tmp_path, "ZeroPadding", edit, words)
