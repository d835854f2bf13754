"""MobileNetV3-style networks as a user brings them (issue 14): Keras 3's ``hard_swish``
(``hard_silu``), ``mish`` and ``exponential`` against Keras 3's own outputs, and a small
MobileNetV3-Small-like network (tests/data/make_keras3_models.py ``func_mobilenet_v3``: a
stride-2 conv stem with BN and hard_swish, an inverted residual block with a depthwise conv, a
squeeze-and-excitation block whose (1, 1, C) gate multiplies the (H, W, C) map, a residual
Add, a GAP head and a Dense) read, predicted and simulated in Verilator through the CLI.

The goldens were written by keras 3.15.1 (JAX backend) on inputs exact in fixed<16,6>.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rtlgen import ir
from rtlgen.api import load_model, predict_outputs
from rtlgen.ops.lut_activation import TableActivation
from rtlgen.quant.activations import ActivationKind
from rtlgen.quant.errors import UnsupportedError

from .cli_run import convert_and_simulate, rtlgen

K = ActivationKind
DATA = Path(__file__).parents[1] / "data" / "keras3"
INPUT_TYPE = "fixed<16,6>"


def _golden(name: str) -> tuple[ir.ModelGraph, np.ndarray, np.ndarray]:
    """The lowered golden model, Keras's inputs and rtlgen's reference outputs on them, and
    Keras's."""
    expected = np.load(DATA / f"{name}_expected.npz")
    graph = load_model(DATA / f"{name}.keras", input_type=INPUT_TYPE)
    (got,) = predict_outputs(graph, expected["x"]).values()
    return graph, got.reshape(expected["y"].shape), expected["y"].astype(np.float64)


def test_keras3_hard_swish_mish_and_exponential_match_keras():
    """func_activations_v3: Activation('hard_swish') (saved as hard_silu), 'mish' and
    'exponential' of the input (fixed<16,6>: wide, so hard_silu and mish bypass their
    tables above them) within each table's error of Keras 3's float32 outputs; exp of
    these inputs (multiples of 1/16, on its table's grid) within the output rounding
    2**-11 plus float32's; Dense(activation='hard_silu') within the float model's 2**-7."""
    graph, got, want = _golden("func_activations_v3")
    tables = {n.name: n for n in graph.nodes if isinstance(n, TableActivation)}
    assert {name: n.kind for name, n in tables.items()} == {
        "hswish": K.HARD_SILU,
        "mish": K.MISH,
        "exp": K.EXPONENTIAL,
        "fc_activation": K.HARD_SILU,
    }
    assert tables["hswish"].linear_above and tables["mish"].linear_above
    float32 = 2.0**-22 * np.maximum(1.0, np.abs(want))
    hswish, mish, exp, fc = (got[:, i * 16 : (i + 1) * 16] - want[:, i * 16 : (i + 1) * 16]
                             for i in range(4))  # fmt: skip
    assert np.all(np.abs(hswish) <= tables["hswish"].max_error + float32[:, :16])
    assert np.all(np.abs(mish) <= tables["mish"].max_error + float32[:, 16:32])
    assert np.all(np.abs(exp) <= 2.0**-11 + float32[:, 32:48])
    assert np.max(np.abs(fc)) < 2.0**-7


def test_mobilenet_v3_reads_as_its_blocks():
    """hard_swish after the stem's and expansion's BN and on the last conv, Keras 3's
    hard_sigmoid (slope 1/6) gating the SE block, the depthwise conv as a grouped conv, the
    SE Multiply broadcasting (1, 1, 16) over (8, 8, 16), the residual Add."""
    graph, _, _ = _golden("func_mobilenet_v3")
    kinds = {n.name: n.kind for n in graph.nodes if isinstance(n, TableActivation)}
    assert kinds == {
        "stem_hswish": K.HARD_SILU,
        "expand_hswish": K.HARD_SILU,
        "se_expand_activation": K.HARD_SIGMOID,
        "last_conv_activation": K.HARD_SILU,
    }
    assert graph.node("se_expand_activation").slope == pytest.approx(1 / 6)
    assert graph.node("dw").groups == 16
    assert [graph.node(i).out_shape for i in graph.node("se_scale").inputs] == [
        (8, 8, 16),
        (1, 1, 16),
    ]
    assert graph.node("residual").inputs == ("stem_hswish", "project")  # BN folded in
    assert graph.node("residual").op == "add"


def test_mobilenet_v3_predicts_like_keras3():
    """Float weights become 16-bit, every result is rounded to 2**-10: over the network's
    nine layers the outputs (up to 0.45) stay within 2**-9 of Keras (measured 6.5e-4); a
    wrong hard_swish (Keras 2's hard_sigmoid slope 0.2 inside) or a dropped SE gate is off
    by far more."""
    _, got, want = _golden("func_mobilenet_v3")
    assert np.max(np.abs(got - want)) < 2.0**-9


@pytest.mark.slow
def test_mobilenet_v3_converts_predicts_and_is_bit_exact_in_verilator(tmp_path):
    """As a user: `rtlgen convert` (input fixed<12,4>, types calibrated on the samples, no
    latency budget: the default budget search spends ~2 minutes sizing the two joins' FIFOs
    over 16x16 images), `rtlgen predict`, `rtlgen sim` under backpressure 0.3 (bit-exact
    against the reference, which `sim` checks); the simulated outputs equal `predict`'s
    and lie within 2**-8 of Keras's."""
    expected = np.load(DATA / "func_mobilenet_v3_expected.npz")
    x = expected["x"][:6]
    model = DATA / "func_mobilenet_v3.keras"
    np.save(tmp_path / "calib.npy", expected["x"])
    options = ("--input-type", "fixed<12,4>", "--calibrate", tmp_path / "calib.npy")
    simulated = convert_and_simulate(tmp_path, model, x, *options, "--latency-budget", "none")
    run = rtlgen("predict", model, "-i", tmp_path / "x.npy", "-o", tmp_path / "p.npy", *options)
    assert run.returncode == 0, run.stderr
    predicted = np.load(tmp_path / "p.npy")
    np.testing.assert_array_equal(simulated, predicted)
    assert np.max(np.abs(predicted - expected["y"][:6])) < 2.0**-8


def test_keras3_tensor_operations_read_as_scale_shifts():
    """func_tensor_ops: keras.applications' MobileNetV3 hard_sigmoid ``ReLU(6.0)(x + 3.0) *
    (1.0 / 6.0)`` (Keras 3 saves ``x + 3.0`` as keras.src.ops.numpy.Add of a tensor and
    3.0; it was read as the Add layer and refused: "takes 1 inputs"), ``2.0 - x``,
    ``x / 4.0``, ``x - 0.5``, ``2 * x``: scale/shift nodes (folded into a conv where one
    follows), within the float model's 2**-7 of Keras."""
    graph, got, want = _golden("func_tensor_ops")
    affine = {n.name: n for n in graph.nodes if isinstance(n, ir.ScaleShift)}
    assert sorted(affine) == ["add", "multiply", "subtract", "true_divide"]
    assert affine["add"].activation == ir.Clamp(0.0, 6.0)  # the ReLU(6.0) fused
    assert np.max(np.abs(got - want)) < 2.0**-7


def _as_operation(tmp_path: Path, layer_name: str, args=None) -> Path:
    """func_tensor_ops with ``layer_name`` turned into a Keras 3 operation (and its call's
    args replaced by ``args``, where given)."""
    from .test_keras3 import config_edit, rewritten_archive

    def edit(config):
        for layer in config["config"]["layers"]:
            if layer["config"]["name"] == layer_name:
                layer["module"] = "keras.src.ops.numpy"
                if args is not None:
                    node_args = layer["inbound_nodes"][0]["args"]
                    layer["inbound_nodes"][0]["args"] = args(node_args)

    return rewritten_archive(tmp_path, "func_tensor_ops", {"config.json": config_edit(edit)})


@pytest.mark.parametrize(
    "layer_name, args, words",
    [
        # an operation of two tensors (the Multiply layer's, as ops.Multiply)
        ("hswish", lambda a: a[0], r"'hswish' \(ops.Multiply\) takes 2 inputs"),
        ("true_divide", lambda a: [4.0, a[0]], r"'true_divide' \(ops.TrueDivide\)"),
        ("add", lambda a: [a[0], "3.0"], r"'add' \(ops.Add\): Add of \[None, '3.0'\]"),
    ],
)
def test_unsupported_tensor_operations_are_refused_in_one_line(tmp_path, layer_name, args, words):
    path = _as_operation(tmp_path, layer_name, args)
    with pytest.raises(UnsupportedError, match=words) as error:
        load_model(path, input_type=INPUT_TYPE)
    assert "\n" not in str(error.value)


def test_other_keras3_operations_are_refused_naming_them(tmp_path):
    """An operation rtlgen does not read (here the ReLU layer, saved as an operation) is
    one line naming it as an operation."""
    path = _as_operation(tmp_path, "relu6")
    with pytest.raises(UnsupportedError, match=r"'relu6' \(ops.ReLU\).*Keras 3 operation") as e:
        load_model(path, input_type=INPUT_TYPE)
    assert "\n" not in str(e.value)


# ---------------------------------------------------------------------------------------
# QKeras (tf.keras 2.15): the same network quantized
# ---------------------------------------------------------------------------------------
def qkeras_mobilenet_v3():
    """The network with 8-bit QKeras layers: QConv2D outputs quantized_bits(10,4), then
    QActivation('quantized_hswish(8,3)'); a QDepthwiseConv2D with quantized_relu; the SE
    gate QConv2D(activation='quantized_sigmoid(8)') times the map, re-quantized; the
    residual Add; a QDense head."""
    tf = pytest.importorskip("tensorflow")
    qkeras = pytest.importorskip("qkeras")
    layers = tf.keras.layers

    tf.keras.utils.set_random_seed(1)
    w8 = {"kernel_quantizer": "quantized_bits(8,0,alpha=1)"}
    b8 = {"bias_quantizer": "quantized_bits(8,2,alpha=1)"}
    out10 = "quantized_bits(10,4,alpha=1)"

    def conv(filters, size, name, activation=out10, **options):
        return qkeras.QConv2D(filters, size, **w8, **b8, activation=activation, name=name, **options)

    def hswish(name):
        return qkeras.QActivation("quantized_hswish(8,3)", name=name)

    inp = tf.keras.Input((16, 16, 3), name="x")
    h = hswish("stem_hswish")(conv(8, 3, "stem", strides=2, padding="same")(inp))
    e = hswish("expand_hswish")(conv(16, 1, "expand")(h))
    d = qkeras.QDepthwiseConv2D(
        3, padding="same", depthwise_quantizer="quantized_bits(8,0,alpha=1)", **b8,
        activation="quantized_relu(8,3)", name="dw",
    )(e)  # fmt: skip
    s = layers.GlobalAveragePooling2D(keepdims=True, name="se_gap")(d)
    s = conv(4, 1, "se_reduce", "quantized_relu(8,3)")(s)
    s = conv(16, 1, "se_expand", "quantized_sigmoid(8)")(s)
    d = qkeras.QActivation("quantized_bits(8,3)", name="se_out")(layers.Multiply(name="se")([d, s]))
    h = layers.Add(name="residual")([h, conv(8, 1, "project", "quantized_bits(8,3)")(d)])
    h = hswish("last_hswish")(conv(16, 1, "last_conv")(h))
    h = layers.GlobalAveragePooling2D(name="gap")(h)
    out = qkeras.QDense(5, **w8, **b8, name="classifier")(h)
    return tf.keras.Model(inp, out, name="qmobilenet_v3")


def _qkeras_inputs(n: int) -> np.ndarray:
    """Inputs exact in fixed<8,4>."""
    rng = np.random.default_rng(0)
    return (rng.integers(-64, 64, size=(n, 16, 16, 3)) / 16).astype(np.float32)


@pytest.mark.slow
def test_qkeras_mobilenet_v3_is_bit_exact_with_qkeras(tmp_path):
    """quantized_hswish tables (on 10-bit inputs) and the SE gate's quantized_sigmoid
    table (~7 s with TensorFlow, slow set): the reference equals QKeras's model(x) bit for bit (model.predict runs a
    TensorFlow graph that rounds quantized_hswish's x * 6 / 6 differently at exact
    rounding ties: 0.015 off here)."""
    model = qkeras_mobilenet_v3()
    model.save(tmp_path / "q.h5")
    graph = load_model(tmp_path / "q.h5", input_type="fixed<8,4>")
    kinds = [n.kind for n in graph.nodes if isinstance(n, TableActivation)]
    hswish = K.QUANTIZED_HSWISH
    assert kinds == [hswish, hswish, K.QUANTIZED_SIGMOID, hswish]
    x = _qkeras_inputs(16)
    (got,) = predict_outputs(graph, x).values()
    np.testing.assert_array_equal(got, model(x).numpy())


@pytest.mark.slow
def test_qkeras_mobilenet_v3_is_bit_exact_in_verilator(tmp_path):
    """`rtlgen convert` + `rtlgen sim` (backpressure 0.3) of the QKeras network: the
    simulated outputs equal QKeras's model(x)."""
    model = qkeras_mobilenet_v3()
    model.save(tmp_path / "q.h5")
    x = _qkeras_inputs(6)
    options = ("--input-type", "fixed<8,4>", "--latency-budget", "none")
    simulated = convert_and_simulate(tmp_path, tmp_path / "q.h5", x, *options)
    np.testing.assert_array_equal(simulated, model(x).numpy())


def test_saved_mobilenet_v3_graph_round_trips(tmp_path):
    """graph.npz keeps the hard_silu tables (and quantized_hswish's options below)."""
    from .ops.spatial_nets import round_trips

    graph, _, _ = _golden("func_mobilenet_v3")
    round_trips(graph, tmp_path)


def test_saved_quantized_hswish_node_round_trips(tmp_path):
    from rtlgen.passes import PrecisionConfig, lower
    from rtlgen.quant.fixed import FixedType

    from .ops.spatial_nets import round_trips

    table = TableActivation(
        "hs", (3,), (3,), kind=K.QUANTIZED_HSWISH, bits=6, integer=2, relu_shift=2.0,
        relu_upper_bound=5.0,
    )  # fmt: skip
    graph = ir.ModelGraph("m", (ir.Input("in", (3,), (3,)), table))
    lowered = lower(graph, PrecisionConfig(input=FixedType(8, 4)))
    assert lowered.node("hs").out_type == FixedType(6, 3)  # quantized_bits(6, 2) steps 2**-3
    round_trips(lowered, tmp_path)


@pytest.mark.slow
def test_live_keras3_oracle(tmp_path):
    """With Keras 3 installed (RTLGEN_KERAS3_PYTHON): the goldens written again equal the
    committed ones and rtlgen agrees with them."""
    from .test_keras3 import compare_with_live_keras

    names = ("func_activations_v3", "func_mobilenet_v3", "func_tensor_ops")
    compare_with_live_keras(tmp_path, names, 2.0**-7)


# ---------------------------------------------------------------------------------------
# tf.keras 2.15: TFOpLambda of a tensor and a number
# ---------------------------------------------------------------------------------------
def _tf_op_model(tmp_path: Path, ops: list[tuple[str, list]]) -> Path:
    """A tf.keras 2 Functional config (as to_json() writes it): Input (6,) -> Dense 'd' ->
    the TFOpLambda ``ops`` in a chain, each (function, its inbound node with ``SRC`` for the
    previous layer), and the Dense's weights."""
    import json

    from tests.models import write_weights_h5

    layers = [
        {"class_name": "InputLayer", "name": "inp", "inbound_nodes": [],
         "config": {"name": "inp", "batch_input_shape": [None, 6]}},
        {"class_name": "Dense", "name": "d", "inbound_nodes": [[["inp", 0, 0, {}]]],
         "config": {"name": "d", "units": 3, "activation": "linear", "use_bias": False}},
    ]  # fmt: skip
    previous = "d"
    for index, (function, node) in enumerate(ops):
        name = f"tf.op_{index}"
        node = json.loads(json.dumps(node).replace('"SRC"', json.dumps(previous)))
        layers.append(
            {"class_name": "TFOpLambda", "name": name, "inbound_nodes": [node],
             "config": {"name": name, "function": function}}
        )  # fmt: skip
        previous = name
    config = {
        "class_name": "Functional",
        "config": {"name": "m", "layers": layers, "input_layers": [["inp", 0, 0]],
                   "output_layers": [[previous, 0, 0]]},
    }  # fmt: skip
    (tmp_path / "m.json").write_text(json.dumps(config))
    kernel = np.arange(18, dtype=np.float32).reshape(6, 3) / 16 - 0.5
    write_weights_h5(tmp_path / "w.h5", {"d": {"kernel": kernel}})
    return tmp_path / "m.json"


def test_tf_keras_ops_of_a_tensor_and_a_number_read_as_scale_shifts(tmp_path):
    """tf.keras 2.15 saves ``x + 3.0`` as TFOpLambda '__operators__.add' with ``{"y": 3.0}``
    and ``2.0 - x`` with the number first (``["_CONSTANT_VALUE", -1, 2.0, {"y": x}]``):
    (((d + 3) * 0.5) / 4 - 1) then 2 - that, computed exactly here."""
    ops = [
        ("__operators__.add", ["SRC", 0, 0, {"y": 3.0, "name": None}]),
        ("math.multiply", ["SRC", 0, 0, {"y": 0.5, "name": None}]),
        ("math.truediv", ["SRC", 0, 0, {"y": 4.0, "name": None}]),
        ("math.subtract", ["SRC", 0, 0, {"y": 1.0, "name": None}]),
        ("math.subtract", ["_CONSTANT_VALUE", -1, 2.0, {"y": ["SRC", 0, 0], "name": None}]),
    ]
    path = _tf_op_model(tmp_path, ops)
    graph = load_model(path, weights=tmp_path / "w.h5", input_type="fixed<8,4>")
    x = np.round(np.random.default_rng(0).uniform(-4, 4, size=(16, 6)) * 16) / 16
    kernel = np.arange(18).reshape(6, 3) / 16 - 0.5
    want = 2.0 - (((x @ kernel + 3.0) * 0.5) / 4.0 - 1.0)
    (got,) = predict_outputs(graph, x).values()
    np.testing.assert_allclose(got, want, atol=2.0**-9)


def test_other_tf_keras_ops_stay_refused(tmp_path):
    """Division of a number by a tensor, an op of two tensors, tf.nn.relu: one line."""
    for ops, words in [
        ([("math.truediv", ["_CONSTANT_VALUE", -1, 2.0, {"y": ["SRC", 0, 0]}])], "TrueDivide"),
        ([("nn.relu", ["SRC", 0, 0, {"name": None}])], "layer type 'TFOpLambda'"),
        ([("__operators__.add", ["SRC", 0, 0, {"y": ["d", 0, 0]}])], "keyword argument 'y'|TFOp"),
    ]:
        path = _tf_op_model(tmp_path, ops)
        with pytest.raises(UnsupportedError, match=words) as error:
            load_model(path, weights=tmp_path / "w.h5", input_type="fixed<8,4>")
        assert "\n" not in str(error.value)


@pytest.mark.slow
def test_tf_keras_applications_mobilenet_v3_small_predicts_like_keras(tmp_path):
    """keras.applications.MobileNetV3Small of tf.keras 2.15 (32x32, alpha 0.75, random
    weights and BN statistics): its hard_sigmoid ``ReLU(6.)(x + 3.) * (1. / 6.)`` is three
    TFOpLambda/ReLU layers, its hard swish a Multiply of the BN's result and that (the fold
    of ``x + 3.`` into the BN's convolution was wrong before: logits 0.8 off); types
    calibrated on the inputs: logits within 2e-3 of Keras, the same classes."""
    tf = pytest.importorskip("tensorflow")

    tf.keras.utils.set_random_seed(0)
    model = tf.keras.applications.MobileNetV3Small(
        input_shape=(32, 32, 3), alpha=0.75, weights=None, classes=10,
        include_preprocessing=False,
    )  # fmt: skip
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.moving_mean.assign(rng.normal(0, 0.1, c).astype(np.float32))
            layer.moving_variance.assign(rng.uniform(0.5, 2, c).astype(np.float32))
    model.save(tmp_path / "m.h5")
    x = (rng.integers(-64, 64, size=(16, 32, 32, 3)) / 16).astype(np.float32)
    logits = tf.keras.Model(model.input, model.layers[-2].output).predict(x, verbose=0)
    graph = load_model(tmp_path / "m.h5", input_type="fixed<16,6>", calibrate=x)
    (got,) = predict_outputs(graph, x).values()
    assert np.max(np.abs(got - logits)) < 2e-3
    np.testing.assert_array_equal(got.argmax(1), logits.argmax(1))
