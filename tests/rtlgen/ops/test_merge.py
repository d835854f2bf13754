"""Merge layers (Add, Subtract, Multiply, Average, Maximum, Minimum) and Concatenate in Keras
Functional models saved by TensorFlow: read in every file layout, predicted exactly like
Keras on fixed-point inputs, refused in one line where unsupported; and a residual QKeras
CNN end to end (reference == QKeras, hardware == reference under backpressure).

Keras computes merges in float32; the branches here are QKeras-quantized to a few bits, so
every Keras value is exact and the comparison is equality.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from rtlgen.frontend import read_model
from rtlgen.passes import PrecisionConfig, lower
from rtlgen.quant.errors import UnsupportedError
from rtlgen.quant.fixed import FixedType
from rtlgen.quant.reference import predict
from tests.models import exact_inputs

from .network_checks import bit_exact_in_simulator, bit_exact_in_verilator, timing_matches_model

MERGES = ["Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"]


def branches_model(merge: str, inputs: int = 2, seed: int = 0):
    """x (8,) -> n QDense branches (quantized_bits outputs) -> merge -> QDense logits."""
    pytest.importorskip("qkeras")  # the oracle: QKeras 0.9 on TensorFlow 2.15 (3.11) or 2.21 + tf-keras (3.12+)
    import tensorflow as tf
    from qkeras import QActivation, QDense

    tf.keras.utils.set_random_seed(seed)
    L = tf.keras.layers
    x = L.Input((8,), name="x")
    q = {"kernel_quantizer": "quantized_bits(4,0,alpha=1)", "bias_quantizer": "quantized_bits(4,0,alpha=1)"}
    branches = [
        QActivation("quantized_bits(6,2)", name=f"q{k}")(QDense(5, name=f"d{k}", **q)(x))
        for k in range(inputs)
    ]
    merged = getattr(L, merge)(name="merge")(branches) if merge != "Concatenate" else (
        L.Concatenate(name="merge")(branches)
    )
    out = QDense(3, name="logits", **q)(merged)
    return tf.keras.Model(x, out, name=f"{merge.lower()}_model")


def save_all(model, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save(tmp_path / "m.h5")
        model.save(tmp_path / "m.keras")
        model.save_weights(tmp_path / "w.h5")
    (tmp_path / "m.json").write_text(model.to_json())
    return [(tmp_path / "m.h5", None), (tmp_path / "m.keras", None), (tmp_path / "m.json", tmp_path / "w.h5")]


@pytest.mark.parametrize(
    "merge,inputs",
    [(m, 2) for m in MERGES]
    # more inputs in the slow set (the default run stays under 5 minutes)
    + [pytest.param(m, n, marks=pytest.mark.slow) for m, n in [("Add", 3), ("Average", 3), ("Maximum", 4), ("Concatenate", 3)]],
)
def test_merge_models_predict_exactly_like_keras(merge, inputs, tmp_path):
    model = branches_model(merge, inputs)
    x = exact_inputs((8,), 200, seed=1)
    want = model.predict(x, verbose=0).astype(np.float64)
    for path, weights in save_all(model, tmp_path):
        graph = lower(read_model(path, weights), PrecisionConfig(input=FixedType(8, 4)))
        assert not graph.is_chain
        merge_node = graph.node("merge")
        assert len(merge_node.inputs) == inputs
        got = predict(graph, x)
        if merge == "Average" and inputs & (inputs - 1):
            # sum / 3 is not a binary fraction: rtlgen rounds the mean once into its type
            # (4 fraction bits finer than the sum's), Keras into float32; the logits layer
            # then weighs that rounding by at most the L1 norm of a kernel column
            kernel = model.get_layer("logits").get_weights()[0]
            from qkeras import quantized_bits

            kernel = quantized_bits(4, 0, alpha=1)(kernel).numpy()
            step = 2.0 ** -merge_node.out_type.frac
            bound = 0.5 * step * np.abs(kernel).sum(axis=0).max() + 1e-6
            assert np.abs(got - want).max() <= bound, (np.abs(got - want).max(), bound)
        else:
            np.testing.assert_array_equal(got, want, err_msg=str(path))


@pytest.mark.parametrize("merge", ["Add", "Average", "Concatenate"])
def test_merge_models_are_bit_exact_in_hardware(merge):
    model = branches_model(merge, 3, seed=2)
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.h5"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.save(path)
        graph = lower(read_model(path), PrecisionConfig(input=FixedType(8, 4)))
    bit_exact_in_simulator(graph, n=4)
    timing_matches_model(graph)


def test_mismatched_shapes_a_subtract_of_three_and_other_axes_are_refused(tmp_path):
    tf = pytest.importorskip("tensorflow")

    from tests.models import write_weights_h5

    L = tf.keras.layers
    x = L.Input((4, 4, 2), name="x")
    a = L.Conv2D(2, 1, name="a")(x)
    b = L.Conv2D(2, 1, name="b")(x)
    weights = write_weights_h5(
        tmp_path / "w.h5",
        {"a": {"kernel": np.ones((1, 1, 2, 2)), "bias": np.zeros(2)},
         "b": {"kernel": np.ones((1, 1, 2, 3)), "bias": np.zeros(3)}},
    )

    def config_of(model, edit):
        config = json.loads(model.to_json())
        layers = {entry["name"]: entry for entry in config["config"]["layers"]}
        edit(layers)
        path = tmp_path / f"m{len(list(tmp_path.glob('m*.json')))}.json"
        path.write_text(json.dumps(config))
        return path

    def widen_b(layers):
        layers["b"]["config"]["filters"] = 3

    def third_input(layers):
        layers["m"]["inbound_nodes"][0].append(layers["m"]["inbound_nodes"][0][0])

    cases = [
        (config_of(tf.keras.Model(x, L.Add(name="m")([a, b])), widen_b),
         r"layer 'm' \(Add\): input shapes \(4, 4, 2\), \(4, 4, 3\) do not broadcast \(axis 3"),
        (config_of(tf.keras.Model(x, L.Concatenate(axis=1, name="m")([a, b])), lambda _: None),
         "axis=1 is not supported"),
        (config_of(tf.keras.Model(x, L.Subtract(name="m")([a, b])), third_input),
         "takes 3 inputs .exactly 2 needed"),
    ]
    b_two = write_weights_h5(
        tmp_path / "w2.h5",
        {"a": {"kernel": np.ones((1, 1, 2, 2)), "bias": np.zeros(2)},
         "b": {"kernel": np.ones((1, 1, 2, 2)), "bias": np.zeros(2)}},
    )
    for index, (path, message) in enumerate(cases):
        with pytest.raises(UnsupportedError, match=message):
            read_model(path, weights if index == 0 else b_two)


def resnet_block(seed: int = 0, filters: int = 3):
    """A QKeras ResNet block on (6, 6, 3): conv-relu-conv + identity skip, then a second block
    whose skip is a 1x1 conv, global average pooling and a dense head."""
    pytest.importorskip("qkeras")  # the oracle: QKeras 0.9 on TensorFlow 2.15 (3.11) or 2.21 + tf-keras (3.12+)
    import tensorflow as tf
    from qkeras import QActivation, QConv2D, QDense

    tf.keras.utils.set_random_seed(seed)
    L = tf.keras.layers
    q = {"kernel_quantizer": "quantized_bits(4,0,alpha=1)", "bias_quantizer": "quantized_bits(4,0,alpha=1)"}
    x = L.Input((6, 6, 3), name="x")
    h = QConv2D(filters, 3, padding="same", activation="quantized_relu(4,2)", name="c1", **q)(x)
    h = QConv2D(filters, 3, padding="same", name="c2", **q)(h)
    h = QActivation("quantized_bits(6,3)", name="q2")(h)
    y = L.Add(name="add1")([h, x])
    y = QActivation("quantized_relu(5,3)", name="r1")(y)
    g = QConv2D(filters, 3, padding="same", activation="quantized_relu(4,2)", name="c3", **q)(y)
    s = QConv2D(filters, 1, name="skip", **q)(y)
    s = QActivation("quantized_bits(6,3)", name="qs")(s)
    g = QActivation("quantized_bits(6,3)", name="q3")(g)
    z = L.Add(name="add2")([g, s])
    z = L.Flatten(name="flat")(z)
    out = QDense(4, name="logits", **q)(z)
    return tf.keras.Model(x, out, name="resnet_block")


@pytest.mark.slow  # the default run stays under 5 minutes; Add/Concatenate networks run below
def test_residual_qkeras_cnn_end_to_end(tmp_path):
    model = resnet_block()
    x = exact_inputs((6, 6, 3), 64, seed=3, frac=3, bits=6)
    path = tmp_path / "r.h5"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save(path)
    graph = lower(read_model(path), PrecisionConfig(input=FixedType(6, 3)))
    np.testing.assert_array_equal(predict(graph, x), model.predict(x, verbose=0).astype(np.float64))
    bit_exact_in_simulator(graph, n=2)
    timing_matches_model(graph)


@pytest.mark.slow
def test_residual_qkeras_cnn_in_verilator(tmp_path, tmp_path_factory):
    model = resnet_block(seed=1)
    path = tmp_path / "r.h5"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save(path)
    graph = lower(read_model(path), PrecisionConfig(input=FixedType(6, 3)))
    bit_exact_in_verilator(graph, tmp_path, tmp_path_factory.mktemp("vcache"))


def test_a_float_residual_model_calibrates_through_its_branches(tmp_path):
    """`rtlgen.calibrate` follows the DAG: the merge's peak is measured on real data, so its
    result gets fewer integer bits than interval analysis proves, and predictions stay
    within the default precision of Keras's float ones."""
    tf = pytest.importorskip("tensorflow")

    from rtlgen.api import load_model

    tf.keras.utils.set_random_seed(5)
    L = tf.keras.layers
    x_in = L.Input((6,), name="x")
    a = L.Dense(8, activation="relu", name="a")(x_in)
    b = L.Dense(8, name="b")(a)
    y = L.Add(name="add")([a, b])
    out = L.Dense(3, name="out")(y)
    model = tf.keras.Model(x_in, out)
    path = tmp_path / "f.h5"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save(path)
    x = exact_inputs((6,), 200, seed=4)
    proven = load_model(path)
    calibrated = load_model(path, calibrate=x)
    assert calibrated.node("add").out_type.width < proven.node("add").out_type.width
    want = model.predict(x, verbose=0).astype(np.float64)
    # 16-bit weights, 10 result fraction bits per layer: a few 2**-10 steps through 3 layers
    np.testing.assert_allclose(predict(calibrated, x), want, atol=2**-6)
