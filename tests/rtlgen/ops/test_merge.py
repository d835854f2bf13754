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
from rtlgen.quant.errors import RtlgenError, UnsupportedError
from rtlgen.quant.fixed import FixedType
from rtlgen.quant.reference import predict
from tests.models import exact_inputs

from .network_checks import bit_exact_in_simulator, bit_exact_in_verilator, timing_matches_model

MERGES = ["Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"]


def branches_model(merge: str, inputs: int = 2, seed: int = 0):
    """x (8,) -> n QDense branches (quantized_bits outputs) -> merge -> QDense logits."""
    pytest.importorskip(
        "qkeras"
    )  # the oracle: QKeras 0.9 on TensorFlow 2.15 (3.11) or 2.21 + tf-keras (3.12+)
    import tensorflow as tf
    from qkeras import QActivation, QDense

    tf.keras.utils.set_random_seed(seed)
    L = tf.keras.layers
    x = L.Input((8,), name="x")
    q = {
        "kernel_quantizer": "quantized_bits(4,0,alpha=1)",
        "bias_quantizer": "quantized_bits(4,0,alpha=1)",
    }
    branches = [
        QActivation("quantized_bits(6,2)", name=f"q{k}")(QDense(5, name=f"d{k}", **q)(x))
        for k in range(inputs)
    ]
    merged = (
        getattr(L, merge)(name="merge")(branches)
        if merge != "Concatenate"
        else (L.Concatenate(name="merge")(branches))
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
    return [
        (tmp_path / "m.h5", None),
        (tmp_path / "m.keras", None),
        (tmp_path / "m.json", tmp_path / "w.h5"),
    ]


@pytest.mark.parametrize(
    "merge,inputs",
    [(m, 2) for m in MERGES]
    # more inputs in the slow set (the default run stays under 5 minutes)
    + [
        pytest.param(m, n, marks=pytest.mark.slow)
        for m, n in [("Add", 3), ("Average", 3), ("Maximum", 4), ("Concatenate", 3)]
    ],
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
            step = 2.0**-merge_node.out_type.frac
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


def skip_model(seed: int = 0):
    """x (8,) -> 3 QDense layers -> Add with a quantized skip of x (5 of its 8 values
    through a QDense) -> QDense logits: one-beat samples at II 1 where the skip waits ~10
    cycles for the long branch."""
    pytest.importorskip("qkeras")
    import tensorflow as tf
    from qkeras import QActivation, QDense

    tf.keras.utils.set_random_seed(seed)
    L = tf.keras.layers
    q = {
        "kernel_quantizer": "quantized_bits(4,0,alpha=1)",
        "bias_quantizer": "quantized_bits(4,0,alpha=1)",
    }
    x = L.Input((8,), name="x")
    h = x
    for k in range(3):
        h = QActivation("quantized_relu(6,2)", name=f"a{k}")(QDense(5, name=f"d{k}", **q)(h))
    skip = QActivation("quantized_bits(6,2)", name="s")(QDense(5, name="short", **q)(x))
    out = QDense(3, name="logits", **q)(L.Add(name="add")([h, skip]))
    return tf.keras.Model(x, out, name="skip_mlp")


def test_a_short_branch_waiting_many_samples_keeps_full_rate(tmp_path):
    """The FIFO of a branch that waits longer than 3 sample periods is sized for the
    steady state: a new-user trial's HGQ2 MLP (a constant branch joined after a 5-cycle
    longer one) had a FIFO of 3 from a 3-sample model and a 4-cycle gap after 9 samples
    while the manifest said II 1. Here the skip waits ~10 one-beat samples; 30 samples at
    full rate keep II 1 and the predicted latency."""
    from rtlgen.hardware import NetworkTop
    from rtlgen.timing import steady_samples

    path = tmp_path / "m.h5"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        skip_model().save(path)
    graph = lower(read_model(path), PrecisionConfig(input=FixedType(8, 4)))
    top = NetworkTop(graph)
    (fifo,) = top.plan.fifos
    assert fifo.depth >= 6  # more samples wait than the 3 an old sizing run modelled
    assert steady_samples(top) >= 8
    run = bit_exact_in_simulator(graph, 30, 1.0, 1.0)
    assert max(np.diff(run.first_in).tolist()) == 1
    latency, ii = timing_matches_model(graph)
    assert (
        ii == 1 and max(o - f for f, o in zip(run.first_in, run.last_out, strict=True)) == latency
    )


def test_mismatched_shapes_a_subtract_of_three_and_other_axes_are_refused(tmp_path):
    tf = pytest.importorskip("tensorflow")

    from tests.models import write_weights_h5

    L = tf.keras.layers
    x = L.Input((4, 4, 2), name="x")
    a = L.Conv2D(2, 1, name="a")(x)
    b = L.Conv2D(2, 1, name="b")(x)
    weights = write_weights_h5(
        tmp_path / "w.h5",
        {
            "a": {"kernel": np.ones((1, 1, 2, 2)), "bias": np.zeros(2)},
            "b": {"kernel": np.ones((1, 1, 2, 3)), "bias": np.zeros(3)},
        },
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
        (
            config_of(tf.keras.Model(x, L.Add(name="m")([a, b])), widen_b),
            r"layer 'm' \(Add\): input shapes \(4, 4, 2\), \(4, 4, 3\) do not broadcast \(axis 3",
        ),
        (
            config_of(tf.keras.Model(x, L.Concatenate(axis=1, name="m")([a, b])), lambda _: None),
            "axis=1 is not supported",
        ),
        (
            config_of(tf.keras.Model(x, L.Subtract(name="m")([a, b])), third_input),
            "takes 3 inputs .exactly 2 needed",
        ),
    ]
    b_two = write_weights_h5(
        tmp_path / "w2.h5",
        {
            "a": {"kernel": np.ones((1, 1, 2, 2)), "bias": np.zeros(2)},
            "b": {"kernel": np.ones((1, 1, 2, 2)), "bias": np.zeros(2)},
        },
    )
    for index, (path, message) in enumerate(cases):
        with pytest.raises(UnsupportedError, match=message):
            read_model(path, weights if index == 0 else b_two)


def resnet_block(seed: int = 0, filters: int = 3):
    """A QKeras ResNet block on (6, 6, 3): conv-relu-conv + identity skip, then a second block
    whose skip is a 1x1 conv, global average pooling and a dense head."""
    pytest.importorskip(
        "qkeras"
    )  # the oracle: QKeras 0.9 on TensorFlow 2.15 (3.11) or 2.21 + tf-keras (3.12+)
    import tensorflow as tf
    from qkeras import QActivation, QConv2D, QDense

    tf.keras.utils.set_random_seed(seed)
    L = tf.keras.layers
    q = {
        "kernel_quantizer": "quantized_bits(4,0,alpha=1)",
        "bias_quantizer": "quantized_bits(4,0,alpha=1)",
    }
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


# ---------------------------------------------------------------------------------------
# broadcasting merges: an operand of one position (squeeze-and-excitation) or one channel
# ---------------------------------------------------------------------------------------
QUANT = {
    "kernel_quantizer": "quantized_bits(4,0,alpha=1)",
    "bias_quantizer": "quantized_bits(4,0,alpha=1)",
}


def se_model(squeeze: str, keepdims: bool = True, shape=(4, 2, 4), seed: int = 0):
    """A squeeze-and-excitation block on a QKeras conv: x -> QConv2D 1x1 -> c;
    c -> GlobalAveragePooling2D (keepdims, or then Reshape((1, 1, C))) -> QDense(C/2, relu)
    -> QDense(C) -> ``squeeze`` (a QKeras quantizer, or a Keras activation) -> s;
    Multiply([s, c]) (the operand of one position first)."""
    pytest.importorskip("qkeras")
    import tensorflow as tf
    from qkeras import QActivation, QConv2D, QDense

    tf.keras.utils.set_random_seed(seed)
    L = tf.keras.layers
    channels = shape[-1]
    x = L.Input(shape, name="x")
    c = QActivation("quantized_bits(6,2)", name="cq")(QConv2D(channels, 1, name="c", **QUANT)(x))
    s = L.GlobalAveragePooling2D(keepdims=keepdims, name="gap")(c)
    if not keepdims:
        s = L.Reshape((1, 1, channels), name="r")(s)
    s = QDense(max(channels // 2, 1), activation="quantized_relu(4,1)", name="fc1", **QUANT)(s)
    s = QDense(channels, name="fc2", **QUANT)(s)
    s = (QActivation if squeeze.startswith("quantized") else L.Activation)(squeeze, name="sq")(s)
    y = L.Multiply(name="scale")([s, c])
    return tf.keras.Model(x, y, name="se_block")


def saved_h5(model, tmp_path) -> object:
    path = tmp_path / f"{model.name}.h5"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save(path)
    return path


@pytest.mark.parametrize("keepdims", [True, False], ids=["keepdims", "reshape"])
@pytest.mark.parametrize(
    "squeeze", ["quantized_bits(4,0,alpha=1)", "quantized_sigmoid(6)", "sigmoid", "hard_sigmoid"]
)
def test_squeeze_and_excitation_predicts_like_keras(squeeze, keepdims, tmp_path):
    """Exactly with a QKeras squeeze quantizer (2x4 positions: the mean is a binary
    fraction); a float sigmoid is a table rounded into its output type, so within half its
    step times the largest |c| (4)."""
    model = se_model(squeeze, keepdims)
    x = exact_inputs((4, 2, 4), 200, seed=1)
    want = model.predict(x, verbose=0).astype(np.float64)
    for path, weights in save_all(model, tmp_path):
        graph = lower(read_model(path, weights), PrecisionConfig(input=FixedType(8, 4)))
        scale = graph.node("scale")
        assert scale.in_shapes == ((1, 1, 4), (4, 2, 4)) and scale.out_shape == (4, 2, 4)
        got = predict(graph, x)
        if squeeze.startswith("quantized"):
            np.testing.assert_array_equal(got, want, err_msg=str(path))
        else:
            bound = 0.5 * graph.node("sq").out_type.step * 4 + 1e-6
            assert np.abs(got - want).max() <= bound, (np.abs(got - want).max(), bound)


def broadcast_models():
    """(model, input shape): an image plus a dense of its global average (Add, keepdims);
    a sequence minus a dense of its global average as a (C,) vector (Subtract, Keras 2
    reads the lower rank with leading axes of 1); the maximum of a feature map and one
    channel of it (H, W, 1), and the minimum of one channel and a (1, 1, C) vector. Keras
    computes in float32: exact here (few bits, 8 positions)."""
    pytest.importorskip("qkeras")
    import tensorflow as tf
    from qkeras import QActivation, QConv1D, QConv2D, QDense

    tf.keras.utils.set_random_seed(3)
    L = tf.keras.layers
    x = L.Input((4, 2, 4), name="x")
    c = QActivation("quantized_bits(6,2)", name="cq")(QConv2D(4, 1, name="c", **QUANT)(x))
    s = L.GlobalAveragePooling2D(keepdims=True, name="gap")(x)
    s = QActivation("quantized_bits(5,2)", name="sq")(QDense(4, name="fc", **QUANT)(s))
    add = tf.keras.Model(x, L.Add(name="m")([c, s]), name="add_2d")

    x1 = L.Input((8, 3), name="x")
    c1 = QActivation("quantized_bits(6,2)", name="cq")(QConv1D(3, 1, name="c", **QUANT)(x1))
    s1 = L.GlobalAveragePooling1D(name="gap")(x1)
    s1 = QActivation("quantized_bits(5,2)", name="sq")(QDense(3, name="fc", **QUANT)(s1))
    sub = tf.keras.Model(x1, L.Subtract(name="m")([c1, s1]), name="subtract_1d")

    one = QActivation("quantized_bits(5,2)", name="oq")(QConv2D(1, 1, name="o", **QUANT)(x))
    mx = L.Maximum(name="m")([c, one])
    mn = L.Minimum(name="m2")([one, s])
    chan = tf.keras.Model(x, L.Add(name="sum")([mx, mn]), name="channel")
    return [(add, (4, 2, 4)), (sub, (8, 3)), (chan, (4, 2, 4))]


def test_broadcast_add_subtract_maximum_minimum_predict_exactly_like_keras(tmp_path):
    for model, shape in broadcast_models():
        x = exact_inputs(shape, 200, seed=2)
        want = model.predict(x, verbose=0).astype(np.float64)
        graph = lower(read_model(saved_h5(model, tmp_path)), PrecisionConfig(input=FixedType(8, 4)))
        assert any(getattr(n, "input_shapes", ()) for n in graph.nodes), model.name
        # a power-of-two number of positions: every global average is a binary fraction
        np.testing.assert_array_equal(predict(graph, x), want, err_msg=model.name)


def se_graph(tmp_path, shape, seed=0, squeeze="quantized_bits(4,0,alpha=1)"):
    model = se_model(squeeze, shape=shape, seed=seed)
    return lower(read_model(saved_h5(model, tmp_path)), PrecisionConfig(input=FixedType(8, 4)))


@pytest.mark.parametrize(
    "shape,valid,ready",
    [((5, 3, 4), 0.6, 0.5), ((3, 7, 3), 0.9, 0.2), ((1, 5, 2), 0.3, 0.9), ((5, 3, 4), 0.8, 0.3)],
)
def test_squeeze_and_excitation_is_bit_exact_under_backpressure(shape, valid, ready, tmp_path):
    """Odd shapes (15, 21 and 5 positions): the held scale, the image branch's FIFO and the
    join are bit-exact with the reference under random input gaps and output backpressure
    (nothing lost, duplicated or deadlocked)."""
    graph = se_graph(tmp_path, shape, seed=shape[1])
    bit_exact_in_simulator(graph, n=4, valid_prob=valid, ready_prob=ready, seed=shape[0])


@pytest.mark.parametrize("shape", [(5, 3, 4), (1, 5, 2)])
def test_squeeze_and_excitation_timing_matches_the_model(shape, tmp_path):
    """Cycle-exact latency and II at full rate (`rtlgen.timing`'s handshake model of the
    held operand): one sample per frame, the whole frame in before the scale exists."""
    latency, ii = timing_matches_model(se_graph(tmp_path, shape))
    positions = shape[0] * shape[1]
    assert ii == positions  # the held scale costs no cycle between frames
    assert latency >= 2 * positions  # the whole frame before the scale, then the frame out


@pytest.mark.slow  # ~6 s: two padded 3x3 convolutions in Amaranth's simulator
def test_a_scale_before_its_slow_branch_and_shared_by_two_merges_is_bit_exact(tmp_path):
    """The held operand can also arrive first: two 'same' 3x3 convolutions lag behind the
    global average of the input. The scale feeds two merges (a fork of a one-beat stream),
    the second of three inputs (map, image, scale). Bit-exact under backpressure, timing ==
    model (II: the convolutions' padded walk, 42 cycles for 30 positions)."""
    pytest.importorskip("qkeras")
    import tensorflow as tf
    from qkeras import QActivation, QConv2D, QDense

    tf.keras.utils.set_random_seed(1)
    L = tf.keras.layers
    x = L.Input((6, 5, 3), name="x")
    y = QActivation("quantized_bits(6,2)", name="q1")(
        QConv2D(3, 3, padding="same", name="c1", **QUANT)(x)
    )
    y = QActivation("quantized_bits(6,2)", name="q2")(
        QConv2D(3, 3, padding="same", name="c2", **QUANT)(y)
    )
    s = L.GlobalAveragePooling2D(keepdims=True, name="gap")(x)
    s = QActivation("quantized_bits(5,2)", name="sq")(QDense(3, name="fc", **QUANT)(s))
    z = L.Add(name="a")([L.Multiply(name="m")([y, s]), x, s])
    graph = lower(
        read_model(saved_h5(tf.keras.Model(x, z, name="late"), tmp_path)),
        PrecisionConfig(input=FixedType(8, 4)),
    )
    assert graph.node("a").in_shapes == ((6, 5, 3), (6, 5, 3), (1, 1, 3))
    bit_exact_in_simulator(graph, n=4, valid_prob=0.6, ready_prob=0.4, seed=3)
    assert timing_matches_model(graph)[1] == 42


def test_broadcast_join_fifo_covers_the_frame_while_the_squeeze_computes(tmp_path):
    """The image branch's FIFO is sized by the handshake model: at its planned depth the
    full rate holds, one entry less is slower, and a FIFO shorter than the frame deadlocks
    (the global pool never sees the frame's last beat)."""
    from rtlgen.hardware import NetworkTop
    from rtlgen.timing import beat_times

    top = NetworkTop(se_graph(tmp_path, (5, 3, 4)))
    (fifo,) = top.plan.fifos
    assert (fifo.consumer, fifo.input_index, fifo.producer) == ("scale", 1, "c")
    skid = {p.node.name: top.has_skid_buffer(p) for p in top.plans}
    edge = (fifo.consumer, fifo.input_index)
    samples = 6
    planned = beat_times(top.plan, skid, {edge: fifo.depth}, samples)
    assert planned and fifo.depth > 15
    first_in = planned[0]
    assert all(b - a == 15 for a, b in zip(first_in, first_in[1:], strict=False))
    less = beat_times(top.plan, skid, {edge: fifo.depth - 1}, samples)
    assert less and any(
        t > w
        for got, want in zip(less, planned, strict=True)
        for t, w in zip(got, want, strict=True)
    )
    assert beat_times(top.plan, skid, {edge: 8}, samples) == ()  # deadlock


def test_broadcast_of_an_independent_input_is_bit_exact(tmp_path):
    """An image and a vector from two model inputs (each slave at its own pace): the vector
    is held over the image's beats; no fork feeds both, so no FIFO is needed."""
    tf = pytest.importorskip("tensorflow")
    from rtlgen.hardware import NetworkTop
    from rtlgen.quant.reference import run_int

    from ..test_multi_input import random_inputs, run_multi

    L = tf.keras.layers
    image, vector = L.Input((3, 5, 2), name="image"), L.Input((2,), name="vector")
    model = tf.keras.Model([image, vector], L.Add(name="m")([image, vector]))
    graph = lower(read_model(saved_h5(model, tmp_path)), PrecisionConfig(input=FixedType(8, 4)))
    assert graph.node("m").in_shapes == ((3, 5, 2), (2,))
    x = random_inputs(graph, 5, seed=4)
    want = graph.input.out_type.to_float(x["image"]) + x["vector"][:, None, None, :] / 16
    np.testing.assert_array_equal(graph.output.out_type.to_float(run_int(graph, x)), want)
    assert NetworkTop(graph).plan.fifos == ()
    run = run_multi(graph, x, 0.5, 0.5, seed=1)
    np.testing.assert_array_equal(run.outputs["m"], run_int(graph, x))


def test_partial_broadcasts_are_refused_in_one_line(tmp_path):
    tf = pytest.importorskip("tensorflow")

    L = tf.keras.layers
    x = L.Input((5, 3, 4), name="x")
    row = L.Input((5, 1, 4), name="row")
    model = tf.keras.Model([x, row], L.Multiply(name="m")([x, row]))
    with pytest.raises(UnsupportedError) as info:
        read_model(saved_h5(model, tmp_path))
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("layer 'm' (Multiply): input shape (5, 1, 4) spans some positions")
    assert "(1, 1, C), (1, C) or (C,)" in message


def test_broadcast_merge_round_trips_through_graph_npz(tmp_path):
    from rtlgen.serialize import load_graph

    from .spatial_nets import round_trips, tamper

    path = round_trips(se_graph(tmp_path, (3, 3, 2)), tmp_path)
    assert load_graph(path).node("scale").in_shapes == ((1, 1, 2), (3, 3, 2))

    def partial(desc):
        desc["fields"]["input_shapes"] = [[1, 3, 2], [3, 3, 2]]

    tamper(path, "Merge", partial)
    with pytest.raises(RtlgenError, match="spans some positions"):
        load_graph(path)


@pytest.mark.parametrize("name", ["func_se", "func_broadcast_1d"])
def test_keras3_broadcasting_merges_predict_like_keras(name):
    """Keras 3 archives (tests/data/make_keras3_models.py, float models at the Keras 3
    tests' input type and tolerance): an SE block with Keras 3's hard_sigmoid and a residual
    Add; a sequence minus a (C,) vector times one channel (L, 1). Bit-exact under
    backpressure too."""
    from rtlgen.api import load_model

    from ..test_keras3 import DATA, INPUT_TYPE, TOLERANCE, agrees_with_keras

    agrees_with_keras(name, TOLERANCE)
    graph = load_model(DATA / f"{name}.keras", input_type=INPUT_TYPE)
    assert any(getattr(n, "input_shapes", ()) for n in graph.nodes)
    bit_exact_in_simulator(graph, n=2, seed=5)


@pytest.mark.slow
def test_squeeze_and_excitation_in_verilator(tmp_path, tmp_path_factory):
    graph = se_graph(tmp_path, (5, 3, 4), seed=4, squeeze="quantized_sigmoid(6)")
    bit_exact_in_verilator(graph, tmp_path, tmp_path_factory.mktemp("vcache"))


def test_the_default_budget_does_not_search_where_no_plan_can_meet_it(tmp_path, monkeypatch):
    """A squeeze-and-excitation scale waits for the whole sample, so no plan comes within
    `STREAM_SLACK` of the sample period: the rate-balanced plan, without probing (a 16x16
    MobileNetV3 block spent ~130 s searching)."""
    from rtlgen import plan as planning
    from rtlgen.hardware import HardwareOptions, NetworkTop

    graph = se_graph(tmp_path, (5, 3, 4))
    cheapest = NetworkTop(graph, HardwareOptions(latency_budget=None)).plan
    assert planning._serial_stages(cheapest)  # time-multiplexed layers: a search could cap

    def no_search(*args, **kwargs):
        raise AssertionError("searched")

    monkeypatch.setattr(planning, "_search_budget", no_search)
    auto = NetworkTop(graph).plan
    assert [p.reuse for p in auto.layers] == [p.reuse for p in cheapest.layers]
    assert auto.fifos == cheapest.fifos
