"""Dense on a (particles x features) tensor: applied to the last axis at every position, as
Keras does (the per-particle layer of deep-sets and interaction networks). rtlgen reads it
as a 1x1 convolution: one constant matrix-vector product per particle, beat by beat."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from rtlgen import ir
from rtlgen.frontend import read_model
from rtlgen.passes import PrecisionConfig, lower
from rtlgen.quant.fixed import FixedType
from rtlgen.quant.reference import predict
from tests.models import exact_inputs

from .network_checks import bit_exact_in_simulator, bit_exact_in_verilator, timing_matches_model

Q4 = {"kernel_quantizer": "quantized_bits(4,0,alpha=1)", "bias_quantizer": "quantized_bits(4,0,alpha=1)"}


def deep_sets(particles: int = 8, features: int = 5, seed: int = 0):
    """phi: two per-particle QDense layers; sum-pool (GlobalAveragePooling1D over a
    power-of-two count: exact); rho: QDense head."""
    pytest.importorskip("qkeras")  # the oracle: QKeras 0.9 on TensorFlow 2.15 (3.11) or 2.21 + tf-keras (3.12+)
    import tensorflow as tf
    from qkeras import QActivation, QDense

    tf.keras.utils.set_random_seed(seed)
    L = tf.keras.layers
    x = L.Input((particles, features), name="particles")
    h = QDense(8, activation="quantized_relu(5,2)", name="phi1", **Q4)(x)
    h = QDense(6, name="phi2", **Q4)(h)
    h = QActivation("quantized_relu(5,2)", name="phi2_relu")(h)
    h = L.GlobalAveragePooling1D(name="pool")(h)
    h = QDense(6, activation="quantized_relu(5,2)", name="rho1", **Q4)(h)
    out = QDense(3, name="logits", **Q4)(h)
    return tf.keras.Model(x, out, name="deep_sets")


def graph_of(model, tmp_path) -> ir.ModelGraph:
    path = tmp_path / "m.h5"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save(path)
    return lower(read_model(path), PrecisionConfig(input=FixedType(8, 4)))


def test_per_particle_dense_is_a_1x1_convolution_exact_like_qkeras(tmp_path):
    model = deep_sets()
    graph = graph_of(model, tmp_path)
    phi1 = graph.node("phi1")
    assert isinstance(phi1, ir.Conv) and phi1.kernel == (1, 1) and phi1.in_shape == (8, 5)
    x = exact_inputs((8, 5), 200, seed=1)
    np.testing.assert_array_equal(predict(graph, x), model.predict(x, verbose=0).astype(np.float64))


def test_deep_sets_is_bit_exact_in_hardware_with_predicted_timing(tmp_path):
    graph = graph_of(deep_sets(particles=6, seed=1), tmp_path)
    bit_exact_in_simulator(graph, n=3, valid_prob=0.5, ready_prob=0.5)
    timing_matches_model(graph)


@pytest.mark.slow
def test_deep_sets_in_verilator(tmp_path, tmp_path_factory):
    graph = graph_of(deep_sets(), tmp_path)
    bit_exact_in_verilator(graph, tmp_path, tmp_path_factory.mktemp("vcache"))
