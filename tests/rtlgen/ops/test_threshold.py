# amaranth: UnusedElaboratable=no
"""Threshold activations as an op (rtlgen.ops.threshold) in whole QKeras networks:
QDense/QConv2D -> BatchNormalization -> QActivation with BN parameters that put the
pre-activations 2e-5 from the quantizer's rounding boundaries (where an 18-bit scale/shift
flips decisions), binary/ternary/sign activations; exact against QKeras's own predict; the
scale/shift path's exactness proof (widening); hardware in Amaranth's simulator under
backpressure with modelled timing; saved graphs; one Verilator run (slow)."""

from __future__ import annotations

import numpy as np
import pytest

from rtlgen import ir
from rtlgen.frontend import read_model
from rtlgen.ops.threshold import Threshold
from rtlgen.passes import (
    LayerPrecision,
    PrecisionConfig,
    fold_batchnorm,
    fuse_activations,
    infer_precision,
)
from rtlgen.quant.errors import RtlgenWarning
from rtlgen.quant.fixed import FixedType
from rtlgen.quant.reference import predict
from tests.models import exact_inputs

from .network_checks import bit_exact_in_simulator, bit_exact_in_verilator, timing_matches_model
from .spatial_nets import keras_graph, predicts_like_keras, round_trips, tampered_is_refused

tf = pytest.importorskip("tensorflow")
qkeras = pytest.importorskip("qkeras")

EPS = 1e-3
#: float32 variance whose ``variance + epsilon`` is exactly 1: rsqrt is exact, inv = gamma
UNIT_VARIANCE = float(np.float32(1.0) - np.float32(EPS))


def _qb(bits=4, integer=0):
    return qkeras.quantized_bits(bits, integer, alpha=1)


def _boundary_bn(layer, rng, step: float, channels: int, delta: float = 2e-5) -> None:
    """BN parameters: channels 0-2 map every accumulator to a rounding boundary of the
    quantizer (``(k + 1/2) * step``) +-``delta`` (power-of-two gamma, unit variance); channel
    3 has gamma 0; the rest are random (negative gamma included)."""
    gamma = rng.normal(0, 1.5, channels)
    beta = rng.normal(0.5, 1, channels)
    mean = rng.normal(0, 1, channels)
    var = rng.uniform(0.2, 3, channels)
    for c, (g, k, sign) in enumerate([(1.0, 2, 1), (-0.5, 5, -1), (2.0, 3, 1)][:channels]):
        gamma[c], mean[c], var[c] = g, 0.0, UNIT_VARIANCE
        beta[c] = (k + 0.5) * step + sign * delta
    if channels > 3:
        gamma[3] = 0.0
    layer.set_weights([w.astype(np.float32) for w in (gamma, beta, mean, var)])


def dense_bn_model(activation: str, step: float, seed: int = 0, units: int = 6):
    tf.keras.utils.set_random_seed(seed)
    inp = tf.keras.Input((5,))
    x = qkeras.QDense(units, kernel_quantizer=_qb(), bias_quantizer=_qb(), name="fc1")(inp)
    bn = tf.keras.layers.BatchNormalization(epsilon=EPS, name="bn1")
    x = qkeras.QActivation(activation, name="act1")(bn(x))
    x = qkeras.QDense(3, kernel_quantizer=_qb(), bias_quantizer=_qb(), name="fc2")(x)
    model = tf.keras.Model(inp, x, name=f"dense_bn_{seed}")
    _boundary_bn(bn, np.random.default_rng(seed), step, units)
    return model


def conv_bn_model(activation: str, step: float, seed: int = 0):
    tf.keras.utils.set_random_seed(seed)
    inp = tf.keras.Input((6, 5, 2))
    x = qkeras.QConv2D(5, 3, kernel_quantizer=_qb(), bias_quantizer=_qb(), name="c1")(inp)
    bn = tf.keras.layers.BatchNormalization(epsilon=EPS, name="bn1")
    x = qkeras.QActivation(activation, name="act1")(bn(x))
    x = tf.keras.layers.Flatten()(x)
    x = qkeras.QDense(3, kernel_quantizer=_qb(), bias_quantizer=_qb(), name="fc")(x)
    model = tf.keras.Model(inp, x, name=f"conv_bn_{seed}")
    _boundary_bn(bn, np.random.default_rng(seed), step, 5)
    return model


def _boundary_inputs(shape, n: int, seed: int) -> np.ndarray:
    """fixed<8,4> inputs, a third of them zero (the accumulator is then the bias)."""
    x = exact_inputs(shape, n, seed)
    x[: n // 3] = 0
    return x


def _exact_vs_keras(model, tmp_path, n=300, seed=1) -> ir.ModelGraph:
    graph = predicts_like_keras(model, tmp_path, 8, seed)
    x = _boundary_inputs(model.input_shape[1:], n, seed)
    np.testing.assert_array_equal(predict(graph, x), model.predict(x, verbose=0))
    return graph


def _thresholds(graph: ir.ModelGraph) -> list[Threshold]:
    return [n for n in graph.nodes if isinstance(n, Threshold)]


# ---------------------------------------------------------------------------------------
# exact against QKeras
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "activation,step",
    [
        ("quantized_relu(4,2)", 0.25),
        ("quantized_bits(4,1,alpha=1)", 0.25),
        ("quantized_relu(8,3)", 2**-5),
    ],
)
@pytest.mark.parametrize("seed", [0, 1])
def test_dense_bn_quantizer_is_exact_at_rounding_boundaries(tmp_path, activation, step, seed):
    graph = _exact_vs_keras(dense_bn_model(activation, step, seed), tmp_path)
    (node,) = _thresholds(graph)
    assert node.source == "bn1+act1"


@pytest.mark.parametrize(
    "activation,step", [("quantized_relu(3,1)", 0.25), ("quantized_bits(5,2,alpha=1)", 0.125)]
)
def test_conv_bn_quantizer_is_exact_at_rounding_boundaries(tmp_path, activation, step):
    graph = _exact_vs_keras(conv_bn_model(activation, step), tmp_path, n=120)
    assert len(_thresholds(graph)) == 1


def test_the_18_bit_scale_shift_flips_decisions_the_proof_widens_it(tmp_path):
    """The same model through the scale/shift path: at the default 18 bits (forced by an
    explicit precision, which skips the proof) some outputs differ from QKeras; the proof
    widens the scale/shift until none does."""
    model = dense_bn_model("quantized_relu(4,2)", 0.25)
    path = tmp_path / "m.h5"
    model.save(path)
    unfused = fuse_activations(fold_batchnorm(read_model(path)))
    x = _boundary_inputs((5,), 300, 1)
    want = model.predict(x, verbose=0)
    proven = infer_precision(unfused)
    bn = next(n for n in proven.nodes if isinstance(n, ir.ScaleShift))
    assert bn.scale.type.width > 18
    np.testing.assert_array_equal(predict(proven, x), want)
    fixed18 = LayerPrecision(weight=FixedType(18, 15), bias=FixedType(18, 14))
    forced = infer_precision(unfused, PrecisionConfig(layers=(("bn1", fixed18),)))
    assert np.any(predict(forced, x) != want)


def test_many_level_quantizer_is_exact_with_corrected_inputs(tmp_path):
    """1024 levels: more than a threshold node takes. The scale/shift widens to the width
    that decides most thresholds like the float model; the inputs that float32 rounding
    inside the BN decides differently (no exact affine map can) are corrected
    (`rtlgen.ops.bn_correct`): equal to QKeras, no warning."""
    import warnings

    from rtlgen.ops.bn_correct import CorrectedScaleShift

    model = dense_bn_model("quantized_bits(10,3,alpha=1)", 2**-6)
    sub = tf.keras.Model(model.input, model.get_layer("act1").output, name="sub")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RtlgenWarning)
        graph = keras_graph(sub, tmp_path)
    assert not _thresholds(graph)
    bn = next(n for n in graph.nodes if isinstance(n, ir.ScaleShift))
    assert bn.scale.type.width > 18 and isinstance(bn, CorrectedScaleShift)
    x = _boundary_inputs((5,), 300, 1)
    np.testing.assert_array_equal(predict(graph, x), sub.predict(x, verbose=0))


@pytest.mark.parametrize(
    "activation",
    [
        "binary()",
        "binary(use_01=True)",
        "binary(alpha=0.5)",
        "ternary()",
        "ternary(threshold=0.5)",
        "quantized_bits(1,0)",
    ],
)
def test_sign_binary_and_ternary_activations_are_exact(tmp_path, activation):
    tf.keras.utils.set_random_seed(3)
    inp = tf.keras.Input((7,))
    x = qkeras.QDense(6, kernel_quantizer=_qb(), bias_quantizer=_qb(), name="fc1")(inp)
    x = qkeras.QActivation(activation, name="act")(x)
    x = qkeras.QDense(4, kernel_quantizer=_qb(), name="fc2", activation=activation)(x)
    model = tf.keras.Model(inp, x, name="bin")
    graph = _exact_vs_keras(model, tmp_path, n=200)
    assert [n.name for n in _thresholds(graph)] == ["act", "fc2_threshold"]


def test_binarized_network_with_batchnorm(tmp_path):
    """FINN-style: binary weights, BN, binary activations."""
    tf.keras.utils.set_random_seed(4)
    inp = tf.keras.Input((9,))
    x = qkeras.QDense(8, kernel_quantizer=qkeras.binary(alpha=1), use_bias=False, name="b1")(inp)
    bn = tf.keras.layers.BatchNormalization(epsilon=EPS, name="bn")
    x = qkeras.QActivation("binary(alpha=1)", name="sign")(bn(x))
    x = qkeras.QDense(4, kernel_quantizer=qkeras.binary(alpha=1), use_bias=False, name="b2")(x)
    model = tf.keras.Model(inp, x, name="bnn")
    rng = np.random.default_rng(4)
    bn.set_weights(
        [
            rng.normal(0, 1, 8).astype(np.float32),
            rng.normal(0, 1, 8).astype(np.float32),
            rng.normal(0, 2, 8).astype(np.float32),
            rng.uniform(0.5, 4, 8).astype(np.float32),
        ]
    )
    graph = _exact_vs_keras(model, tmp_path, n=300)
    assert len(_thresholds(graph)) == 1


def test_data_dependent_binary_activation_is_refused_in_one_line(tmp_path):
    from rtlgen.quant.errors import UnsupportedError

    inp = tf.keras.Input((4,))
    x = qkeras.QDense(3, kernel_quantizer=_qb(), name="fc")(inp)
    x = qkeras.QActivation("binary(alpha='auto_po2')", name="act")(x)
    model = tf.keras.Model(inp, x, name="auto")
    path = tmp_path / "m.h5"
    model.save(path)
    with pytest.raises(UnsupportedError) as info:
        read_model(path)
    assert "layer 'act'" in str(info.value) and "\n" not in str(info.value)


# ---------------------------------------------------------------------------------------
# hardware, saved graphs
# ---------------------------------------------------------------------------------------
def test_dense_network_bit_exact_under_backpressure_with_modelled_timing(tmp_path):
    graph = _exact_vs_keras(dense_bn_model("quantized_relu(4,2)", 0.25), tmp_path, n=40)
    bit_exact_in_simulator(graph, n=4, seed=2)
    timing_matches_model(graph)


def test_conv_network_bit_exact_under_backpressure_with_modelled_timing(tmp_path):
    graph = _exact_vs_keras(conv_bn_model("quantized_relu(3,1)", 0.25), tmp_path, n=20)
    bit_exact_in_simulator(graph, n=2, seed=3)
    timing_matches_model(graph)


def test_saved_graph_round_trips_and_tampering_is_refused(tmp_path):
    graph = _exact_vs_keras(dense_bn_model("ternary()", 1.0), tmp_path, n=20)

    def retype(desc):  # levels of one type read as another
        desc["out_type"] = [3, 0, True]

    round_trips(graph, tmp_path)
    tampered_is_refused(graph, tmp_path, "Threshold", retype, "output type")


@pytest.mark.slow
@pytest.mark.parametrize(
    "activation,step", [("quantized_relu(4,2)", 0.25), ("quantized_relu(8,3)", 2**-5)]
)
def test_dense_bn_network_in_verilator(tmp_path, tmp_path_factory, activation, step):
    """4 bits: constant tables in the search; 8 bits: ROM tables (`ARRAY_TABLE`)."""
    graph = _exact_vs_keras(dense_bn_model(activation, step), tmp_path, n=40)
    bit_exact_in_verilator(graph, tmp_path, tmp_path_factory.mktemp("vcache"))


def test_inspect_counts_the_thresholds_and_levels_that_decide_not_the_padding():
    """`rtlgen inspect`'s params of a threshold bank: per channel its real thresholds and
    their levels (one more), not the 511 padded slots the graph saves."""
    from rtlgen.ops.threshold import unpadded
    from rtlgen.report import summarize

    from .test_matvec import bn_net

    graph = bn_net((6,), units=(4, 3))
    rows = {row.name: row for row in summarize(graph)}
    node = graph.node("bn0")
    thresholds, levels = unpadded(node, graph.in_type(graph.nodes.index(node)))
    real = sum(len(t) for t in thresholds) + sum(len(v) for v in levels)
    assert rows["bn0"].parameters == real < node.weights.values.size
