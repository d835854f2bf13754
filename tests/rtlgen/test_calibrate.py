"""--calibrate: float-model results sized from observed ranges, never wider than proven."""

import dataclasses

import numpy as np
import pytest

from rtlgen import ir
from rtlgen.api import load_model
from rtlgen.calibrate import calibrate
from rtlgen.frontend import read_model
from rtlgen.passes import (
    DEFAULT_PRECISION,
    fold_batchnorm,
    fuse_activations,
    infer_precision,
    lower,
)
from rtlgen.quant.reference import predict


def float_mlp(seed=0):
    rng = np.random.default_rng(seed)
    w1, w2 = rng.normal(size=(16, 24)) * 0.4, rng.normal(size=(24, 5)) * 0.4
    return ir.ModelGraph("mlp", (
        ir.Input("in", (16,), (16,)),
        ir.Dense("d1", (16,), (24,), weights=ir.FloatTensor(w1), bias=ir.FloatTensor(rng.normal(size=24) * 0.1)),
        ir.Activation("relu", (24,), (24,), activation=ir.RELU),
        ir.Dense("d2", (24,), (5,), weights=ir.FloatTensor(w2)),
    )), w1, w2


def test_calibrated_results_are_narrower_and_still_accurate():
    graph, w1, w2 = float_mlp()
    x = np.random.default_rng(1).uniform(-1, 1, size=(400, 16))
    proven = lower(graph)
    folded = fuse_activations(fold_batchnorm(graph))
    peaks = calibrate(folded, x)
    calibrated = infer_precision(folded, dataclasses.replace(DEFAULT_PRECISION, calibration=tuple(peaks.items())))
    for a, b in zip(proven.nodes[1:], calibrated.nodes[1:], strict=True):
        assert b.out_type.width <= a.out_type.width
        assert b.out_type.frac == a.out_type.frac
    assert sum(n.out_type.width for n in calibrated.nodes) < sum(n.out_type.width for n in proven.nodes)
    want = np.maximum(x @ w1 + folded.nodes[1].bias.values, 0) @ w2
    got = predict(calibrated, x)
    assert np.max(np.abs(got - want)) < 0.05
    # headroom: the calibrated range covers twice the observed peak
    d2 = calibrated.nodes[-1]
    assert d2.out_type.max_value >= 2 * peaks["d2"] - d2.out_type.step


def _keras_cases():
    """A small float Keras model per op kind (names -> (inputs, output tensor))."""
    import tensorflow as tf

    layers = tf.keras.layers

    def conv(x):
        return layers.Conv2D(3, 3, padding="same")(x)

    cases = {
        "depthwise": lambda x: layers.DepthwiseConv2D(3, padding="same")(x),
        "separable": lambda x: layers.SeparableConv2D(4, 3)(x),
        "global_average": lambda x: layers.GlobalAveragePooling2D()(x),
        "global_max": lambda x: layers.GlobalMaxPooling2D()(x),
        "zero_padding": lambda x: layers.ZeroPadding2D(1)(conv(x)),
        "cropping": lambda x: layers.Cropping2D(1)(conv(x)),
        "upsampling": lambda x: layers.UpSampling2D(2)(conv(x)),
        "reshape": lambda x: layers.Reshape((64, 3))(conv(x)),
        "leaky_relu": lambda x: layers.LeakyReLU(0.1)(conv(x)),
        "prelu": lambda x: layers.PReLU(shared_axes=[1, 2])(conv(x)),
        "relu_clipped": lambda x: layers.ReLU(max_value=1.5, negative_slope=0.25)(conv(x)),
        "elu": lambda x: layers.ELU(0.7)(conv(x)),
        "add": lambda x: layers.Add()([x, conv(x)]),
        "concatenate": lambda x: layers.Concatenate()([x, conv(x)]),
        "multiply": lambda x: layers.Multiply()([x, conv(x)]),
        "maximum": lambda x: layers.Maximum()([x, conv(x)]),
        "average": lambda x: layers.Average()([x, conv(x)]),
    }
    for kind in ("sigmoid", "tanh", "softsign", "hard_sigmoid"):
        cases[kind] = lambda x, kind=kind: layers.Activation(kind)(layers.Dense(5)(layers.Flatten()(x)))
    return cases


CASES = ["depthwise", "separable", "global_average", "global_max", "zero_padding", "cropping",
         "upsampling", "reshape", "leaky_relu", "prelu", "relu_clipped", "elu", "add",
         "concatenate", "multiply", "maximum", "average", "sigmoid", "tanh", "softsign",
         "hard_sigmoid"]


@pytest.mark.parametrize("case", CASES)
def test_every_op_kind_calibrates_like_keras(case):
    """Calibration runs every op in float: the peak it measures at the output is Keras's own
    (float64 against Keras's float32: 1e-5 relative), and the calibrated design predicts
    within the types' precision."""
    tf = pytest.importorskip("tensorflow")
    tf.keras.utils.set_random_seed(3)
    inputs = tf.keras.Input((8, 8, 3))
    model = tf.keras.Model(inputs, _keras_cases()[case](inputs))
    rng = np.random.default_rng(1)
    data = rng.uniform(-1, 1, (12, 8, 8, 3))
    graph = fuse_activations(fold_batchnorm(read_model(model)))
    peaks = calibrate(graph, data)
    want = model.predict(data, verbose=0)
    assert peaks[graph.outputs[0]] == pytest.approx(float(np.max(np.abs(want))), rel=1e-5)
    calibrated = load_model(model, calibrate=data)
    got = predict(calibrated, data).reshape(want.shape)
    np.testing.assert_allclose(got, want, atol=0.02 * max(1.0, float(np.max(np.abs(want)))))


def test_quantized_activations_calibrate_as_qkeras():
    """QKeras table and leaky quantizers are calibrated with QKeras's own float32 values."""
    pytest.importorskip("qkeras")
    import tensorflow as tf
    from qkeras import QActivation, QDense

    tf.keras.utils.set_random_seed(4)
    inputs = tf.keras.Input((6,))
    x = QDense(8, kernel_quantizer="quantized_bits(6,0,alpha=1)")(inputs)
    a = QActivation("quantized_sigmoid(6)")(x)
    b = QActivation("quantized_relu(6,2,negative_slope=0.25)")(x)
    model = tf.keras.Model(inputs, tf.keras.layers.Concatenate()([a, b]))
    data = np.random.default_rng(2).uniform(-2, 2, (20, 6))
    graph = fuse_activations(fold_batchnorm(read_model(model)))
    peaks = calibrate(graph, data)
    want = model.predict(data, verbose=0)
    assert peaks[graph.outputs[0]] == pytest.approx(float(np.max(np.abs(want))), rel=1e-6)
