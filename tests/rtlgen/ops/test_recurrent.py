# amaranth: UnusedElaboratable=no
"""Recurrent layers as ops (rtlgen.ops.recurrent): QKeras QSimpleRNN / QLSTM / QGRU bit-exact
with QKeras on fixed-point inputs (several shapes, return_sequences both, .h5 and json +
weights), float SimpleRNN / LSTM / GRU within a stated tolerance of Keras, refusals in one
line, a recurrent network under backpressure with timing = model, saved graphs, and (slow)
``rtlgen convert`` + ``predict`` + ``sim`` in Verilator."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from rtlgen import ir
from rtlgen.frontend import read_model
from rtlgen.layers.common import Multiplier
from rtlgen.ops.recurrent import GRU, LSTM, SimpleRNN, cell_program, lower_recurrent, step_cycles
from rtlgen.passes import LayerPrecision, LowerContext, PrecisionConfig, lower
from rtlgen.quant.errors import RtlgenWarning, UnsupportedError
from rtlgen.quant.fixed import FixedType
from rtlgen.quant.quantizers import QuantizedBits, QuantizedRelu
from rtlgen.quant.recurrent import VecKind
from rtlgen.quant.reference import predict
from tests.models import layer_entry, sequential_config, write_full_h5

from .network_checks import bit_exact_in_simulator, timing_matches_model
from .spatial_nets import round_trips, tampered_is_refused

#: inputs on this grid (the QKeras oracle sees exactly these values)
IN_TYPE = FixedType(5, 2, True)


def grid_inputs(shape: tuple[int, ...], n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    m = rng.integers(IN_TYPE.min_int, IN_TYPE.max_int + 1, size=(n, *shape))
    return (m / 2.0**IN_TYPE.frac).astype(np.float32)


@pytest.fixture(scope="module")
def tf():
    """TensorFlow with QKeras's recurrent layers working: qkeras 0.9 calls
    ``tf.nest.is_sequence``, which TensorFlow 2.15 and 2.21 no longer have (``is_nested``)."""
    pytest.importorskip("qkeras")  # the oracle: QKeras 0.9 on TensorFlow 2.15 (3.11) or 2.21 + tf-keras (3.12+)
    import tensorflow as tf
    from tensorflow.python.util import nest

    if not hasattr(nest, "is_sequence"):
        nest.is_sequence = nest.is_nested
    return tf


def _randomize(model, seed: int, scale: float = 1.0) -> None:
    rng = np.random.default_rng(seed)
    for w in model.weights:
        w.assign(rng.uniform(-scale, scale, w.shape).astype(np.float32))


QB = "quantized_bits(4,1,alpha=1)"


def _qkeras_layer(kind: str, units: int, return_sequences: bool, **extra):
    from qkeras import QGRU, QLSTM, QSimpleRNN

    common = dict(
        kernel_quantizer=QB,
        recurrent_quantizer=QB,
        bias_quantizer=QB,
        return_sequences=return_sequences,
    )
    common.update(extra)
    if kind == "QSimpleRNN":
        return QSimpleRNN(units, **{"activation": "quantized_tanh(4)", **common})
    gates = dict(activation="quantized_tanh(4)", recurrent_activation="quantized_sigmoid(4)")
    common = {"state_quantizer": QB, **gates, **common}
    if kind == "QLSTM":
        return QLSTM(units, **common)
    return QGRU(units, **common)


#: (layer, steps T, features F, units U, return_sequences, extra layer options)
SLOW = pytest.mark.slow  # each case builds, traces and runs a Keras model (5-30 s)
QKERAS_CASES = [
    pytest.param("QSimpleRNN", 1, 1, 1, False, {}, marks=SLOW),
    pytest.param("QSimpleRNN", 12, 8, 16, True, {}, marks=SLOW),
    ("QSimpleRNN", 5, 3, 4, False, {"activation": "quantized_relu(3,1)"}),
    pytest.param(
        "QSimpleRNN",
        6,
        2,
        3,
        True,
        {
            "activation": "quantized_bits(5,1,alpha=1)",
            "state_quantizer": "quantized_bits(4,1,symmetric=1,alpha=1)",
        },
        marks=SLOW,
    ),
    pytest.param("QLSTM", 1, 2, 1, True, {}, marks=SLOW),
    # QKeras's own hard_sigmoid (slope 1/2, not Keras's 1/5): QLSTM's default
    ("QLSTM", 7, 3, 5, False, {"recurrent_activation": "hard_sigmoid"}),
    pytest.param("QLSTM", 4, 8, 16, True, {}, marks=SLOW),
    pytest.param("QGRU", 6, 2, 3, False, {}, marks=SLOW),
    pytest.param("QGRU", 3, 5, 7, True, {"reset_after": False}, marks=SLOW),
    ("QGRU", 9, 1, 2, True, {}),
    pytest.param(
        "QGRU",
        4,
        2,
        3,
        False,
        {"recurrent_activation": "smooth_sigmoid", "activation": "quantized_bits(4,1,alpha=1)"},
        marks=SLOW,
    ),
]


@pytest.mark.parametrize("kind, steps, features, units, sequences, extra", QKERAS_CASES)
def test_qkeras_recurrent_layers_are_bit_exact(
    tf, tmp_path, kind, steps, features, units, sequences, extra
):
    """QKeras's own predict on fixed-point inputs == rtlgen's integer reference, for the
    full .h5 and for json + weights."""
    layer = _qkeras_layer(kind, units, sequences, **extra)
    model = tf.keras.Sequential([tf.keras.Input((steps, features)), layer])
    _randomize(model, steps * 100 + units)
    x = grid_inputs((steps, features), 64, units)
    want = model(x, training=False).numpy()
    model.save(tmp_path / "m.h5")
    (tmp_path / "m.json").write_text(model.to_json())
    model.save_weights(tmp_path / "w.h5")
    for graph in (
        read_model(tmp_path / "m.h5"),
        read_model(tmp_path / "m.json", weights=tmp_path / "w.h5"),
    ):
        lowered = lower(graph, PrecisionConfig(input=IN_TYPE))
        assert lowered.output.exact
        np.testing.assert_array_equal(predict(lowered, x), want)


#: (layer, options, tolerance on |rtlgen - Keras| over outputs in [-1, 1]): the tables
#: round to result_frac=10 bits (2**-11 each), weights to 16 bits; h (and c) are rounded
#: to 10 bits every step, so the error grows with the steps (T = 8 here)
FLOAT_CASES = [
    ("SimpleRNN", {}, 0.01),
    # a wide gate input: one table (a cell program has no fine table near 0, unlike the op)
    ("SimpleRNN", {"activation": "softsign"}, 0.01),
    pytest.param(
        "SimpleRNN", {"activation": "sigmoid", "return_sequences": True}, 0.01, marks=SLOW
    ),
    pytest.param("LSTM", {}, 0.01, marks=SLOW),
    pytest.param(
        "LSTM", {"recurrent_activation": "hard_sigmoid", "return_sequences": True}, 0.01, marks=SLOW
    ),
    pytest.param("GRU", {}, 0.01, marks=SLOW),
    pytest.param("GRU", {"reset_after": False, "return_sequences": True}, 0.01, marks=SLOW),
]


@pytest.mark.parametrize("kind, options, tolerance", FLOAT_CASES)
def test_float_recurrent_layers_approximate_keras(tf, tmp_path, kind, options, tolerance):
    layer = getattr(tf.keras.layers, kind)(5, **options)
    model = tf.keras.Sequential([tf.keras.Input((8, 3)), layer])
    _randomize(model, 3, 0.8)
    x = grid_inputs((8, 3), 64, 2)
    model.save(tmp_path / "m.h5")
    lowered = lower(read_model(tmp_path / "m.h5"), PrecisionConfig(input=IN_TYPE))
    assert not lowered.output.exact
    want = model(x, training=False).numpy()
    error = np.abs(predict(lowered, x) - want).max()
    assert error < tolerance, error
    if kind == "SimpleRNN" and not options:  # calibration runs the layer's float equations
        from rtlgen import load_model

        calibrated = load_model(tmp_path / "m.h5", input_type=str(IN_TYPE), calibrate=x)
        assert np.abs(predict(calibrated, x) - want).max() < tolerance


def test_qlstm_without_state_quantizer_warns_and_rounds(tf, tmp_path):
    """Without a state quantizer c gains bits every step in QKeras: rtlgen rounds it to
    ``result_frac`` bits (a warning says it is not exact); at the default 10 bits the
    exact quantized_tanh of c is too wide for a table: thresholds decide it."""
    from qkeras import QLSTM

    layer = QLSTM(
        3,
        activation="quantized_tanh(4)",
        recurrent_activation="quantized_sigmoid(4)",
        kernel_quantizer=QB,
        recurrent_quantizer=QB,
        bias_quantizer=QB,
    )
    model = tf.keras.Sequential([tf.keras.Input((4, 2)), layer])
    model.save(tmp_path / "m.h5")
    graph = read_model(tmp_path / "m.h5")
    for result_frac, kinds in ((10, {VecKind.THRESHOLD}), (3, {VecKind.TABLE})):
        with pytest.warns(RtlgenWarning, match="state_quantizer"):
            lowered = lower(graph, PrecisionConfig(input=IN_TYPE, result_frac=result_frac))
        assert not lowered.output.exact
        rnn = lowered.nodes[1]
        program = cell_program(rnn, lowered.in_type(1))
        gates = {op.kind for op in program.ops} & {VecKind.TABLE, VecKind.THRESHOLD}
        assert kinds <= gates


@pytest.mark.parametrize(
    "kind, steps, features, units, sequences",
    [("QLSTM", 5, 3, 4, False), pytest.param("QGRU", 4, 2, 3, True, marks=SLOW)],
)
@pytest.mark.parametrize("recurrent_activation", ["hard_sigmoid", "quantized_sigmoid(8)"])
def test_eight_bit_qkeras_recurrent_layers_are_bit_exact(
    tf, tmp_path, kind, steps, features, units, sequences, recurrent_activation
):
    """8-bit types, as trigger models have them: the gates' pre-activations carry 14+
    fractional bits, too many for exact tables; quantized_tanh/sigmoid become thresholds and
    QKeras's hard sigmoid (x/2 + 1/2, QLSTM's default) an exact offset and clamp."""
    q6 = "quantized_bits(6,0,alpha=1)"
    layer = _qkeras_layer(
        kind,
        units,
        sequences,
        kernel_quantizer=q6,
        recurrent_quantizer=q6,
        bias_quantizer=q6,
        state_quantizer="quantized_bits(8,1,alpha=1)",
        activation="quantized_tanh(8)",
        recurrent_activation=recurrent_activation,
    )
    model = tf.keras.Sequential([tf.keras.Input((steps, features)), layer])
    _randomize(model, steps * 100 + units)
    x = grid_inputs((steps, features), 64, units)
    want = model(x, training=False).numpy()
    model.save(tmp_path / "m.h5")
    lowered = lower(read_model(tmp_path / "m.h5"), PrecisionConfig(input=IN_TYPE))
    assert lowered.output.exact
    program = cell_program(lowered.nodes[1], lowered.in_type(1))
    kinds = {op.kind for op in program.ops}
    assert VecKind.THRESHOLD in kinds  # (narrower gate inputs keep their exact tables)
    assert (VecKind.OFFSET in kinds) == (recurrent_activation == "hard_sigmoid")
    np.testing.assert_array_equal(predict(lowered, x), want)


# ---------------------------------------------------------------------------------------
# refusals (hand-written files, no TensorFlow)
# ---------------------------------------------------------------------------------------
def _rnn_entry(class_name: str, **config):
    base = {"name": "rnn", "units": 2, "activation": "tanh", "use_bias": True}
    return layer_entry(class_name, {**base, **config})


def _weights(gates: int, features: int = 3, units: int = 2, gru_bias: bool = False):
    rng = np.random.default_rng(0)
    return {
        "rnn": {
            "kernel": rng.normal(size=(features, gates * units)).astype(np.float32),
            "recurrent_kernel": rng.normal(size=(units, gates * units)).astype(np.float32),
            "bias": rng.normal(size=(2, gates * units) if gru_bias else (gates * units,)).astype(
                np.float32
            ),
        }
    }


REFUSED = [
    (_rnn_entry("SimpleRNN", go_backwards=True), "go_backwards=True"),
    (_rnn_entry("LSTM", stateful=True), "stateful=True"),
    (_rnn_entry("GRU", return_state=True), "return_state=True"),
    (_rnn_entry("SimpleRNN", activation="relu"), "'relu' is not supported in a recurrent"),
    (_rnn_entry("GRU", activation="softplus"), "'softplus' is not supported in a recurrent"),
    (_rnn_entry("LSTM", activation="exponential"), "'exponential' is not supported in a recurrent"),
    (_rnn_entry("LSTM", recurrent_activation="softmax"), "recurrent_activation"),
    (
        _rnn_entry("QGRU", kernel_quantizer=QB, recurrent_quantizer=None, bias_quantizer=QB),
        "recurrent_quantizer=None",
    ),
    (
        _rnn_entry("QSimpleRNN", state_quantizer="quantized_bits(4,1,alpha='auto_po2')"),
        "state_quantizer",
    ),
    (
        layer_entry("Bidirectional", {"name": "rnn", "layer": _rnn_entry("LSTM")}),
        "runs the sequence backwards",
    ),
    (layer_entry("Masking", {"name": "rnn", "mask_value": 0.0}), "variable-length"),
]


@pytest.mark.parametrize("entry, words", REFUSED, ids=[w for _, w in REFUSED])
def test_unsupported_options_are_refused_in_one_line(tmp_path, entry, words):
    gates = {"SimpleRNN": 1, "QSimpleRNN": 1, "LSTM": 4, "GRU": 3, "QGRU": 3}
    cls = entry["class_name"]
    weights = _weights(gates[cls], gru_bias=cls.endswith("GRU")) if cls in gates else {}
    path = write_full_h5(tmp_path / "m.h5", sequential_config([entry], (4, 3)), weights)
    with pytest.raises(UnsupportedError) as info:
        read_model(path)
    message = str(info.value)
    assert "\n" not in message and "'rnn'" in message and words in message


def test_a_sequence_of_unknown_length_is_refused(tmp_path):
    config = sequential_config([_rnn_entry("SimpleRNN")], None)
    config["config"]["layers"][0]["config"]["batch_input_shape"] = [None, None, 3]
    path = write_full_h5(tmp_path / "m.h5", config, _weights(1))
    with pytest.raises(Exception) as info:
        read_model(path)
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------------------------------
# networks (no TensorFlow): a recurrent layer then a dense
# ---------------------------------------------------------------------------------------
def rnn_node(cls, steps=3, features=2, units=3, sequences=False, seed=0, name="rnn"):
    """An unlowered QKeras-style recurrent node (quantized_tanh / quantized_sigmoid, a state
    quantizer: exact)."""
    rng = np.random.default_rng(seed)
    gates = {SimpleRNN: 1, LSTM: 4, GRU: 3}[cls]
    q = QuantizedBits(4, 1, alpha=1)
    rnn_out = (steps, units) if sequences else (units,)
    return cls(
        name,
        (steps, features),
        rnn_out,
        weights=ir.FloatTensor(rng.uniform(-1.5, 1.5, (features, gates * units)), q),
        recurrent=ir.FloatTensor(rng.uniform(-1.5, 1.5, (units, gates * units)), q),
        bias=ir.FloatTensor(
            rng.uniform(-1, 1, (2, 3 * units) if cls is GRU else (gates * units,)), q
        ),
        activation='"quantized_tanh(4)"',
        recurrent_activation='"quantized_sigmoid(4)"',
        state_quantizer='"quantized_bits(4,1,alpha=1)"',
        return_sequences=sequences,
        qkeras=True,
    )


def rnn_dense_graph(cls, steps=3, features=2, units=3, sequences=False, seed=0) -> ir.ModelGraph:
    rng = np.random.default_rng(seed + 1)
    q = QuantizedBits(4, 1, alpha=1)
    rnn = rnn_node(cls, steps, features, units, sequences, seed)
    rnn_out = rnn.out_shape
    nodes: list[ir.Node] = [ir.Input("in", (steps, features), (steps, features)), rnn]
    if sequences:
        dense: ir.Node = ir.Conv(
            "dense",
            rnn_out,
            (steps, 2),
            weights=ir.FloatTensor(rng.uniform(-1, 1, (1, 1, units, 2)), q),
            bias=ir.FloatTensor(rng.uniform(-1, 1, 2), q),
            kernel=(1, 1),
            stride=(1, 1),
            out_quantizer=QuantizedRelu(6, 2),
            activation=ir.RELU,
        )
    else:
        dense = ir.Dense(
            "dense",
            rnn_out,
            (2,),
            weights=ir.FloatTensor(rng.uniform(-1, 1, (units, 2)), q),
            bias=ir.FloatTensor(rng.uniform(-1, 1, 2), q),
        )
    nodes.append(dense)
    return lower(ir.ModelGraph("rnn_net", tuple(nodes)), PrecisionConfig(input=IN_TYPE))


NETS = [(SimpleRNN, False), (LSTM, False), (GRU, True)]


@pytest.mark.parametrize("cls, sequences", NETS, ids=["simple_rnn", "lstm", "gru_sequences"])
def test_network_is_bit_exact_under_backpressure_with_modelled_timing(cls, sequences):
    graph = rnn_dense_graph(cls, sequences=sequences)
    bit_exact_in_simulator(graph, n=3, valid_prob=0.6, ready_prob=0.5)
    latency, ii = timing_matches_model(graph)
    assert ii == graph.nodes[1].steps * step_cycles(graph.nodes[1], IN_TYPE, Multiplier.AUTO)


@pytest.mark.slow  # a 16-unit LSTM step in Amaranth's simulator: ~40 s
def test_dsp_products_keep_the_modelled_timing():
    """--multiplier dsp registers products (a step may take a cycle more): the timing model
    follows the plan's own cell."""
    from rtlgen.hardware import HardwareOptions

    options = HardwareOptions(multiplier=Multiplier.DSP)
    graph = rnn_dense_graph(LSTM, features=8, units=16)
    bit_exact_in_simulator(graph, n=2, options=options)
    latency, ii = timing_matches_model(graph, options)
    node = graph.nodes[1]
    assert ii == node.steps * step_cycles(node, IN_TYPE, Multiplier.DSP)


@pytest.mark.slow  # the default run stays under 5 minutes
def test_stacked_recurrent_layers_are_bit_exact_with_modelled_timing():
    """LSTM (return_sequences) -> GRU: the second takes the first's beats as they come."""
    first = rnn_node(LSTM, steps=2, features=1, units=2, sequences=True, seed=1, name="lstm")
    second = rnn_node(GRU, steps=2, features=2, units=1, sequences=False, seed=2, name="gru")
    nodes = (ir.Input("in", (2, 1), (2, 1)), first, second)
    graph = lower(ir.ModelGraph("stacked", nodes), PrecisionConfig(input=IN_TYPE))
    bit_exact_in_simulator(graph, n=3, valid_prob=0.7, ready_prob=0.6)
    timing_matches_model(graph)


@pytest.mark.parametrize("cls", [SimpleRNN, LSTM, GRU])
@pytest.mark.parametrize("sequences", [False, True])
def test_float_forward_of_an_exact_layer_is_its_reference(cls, sequences):
    """Keras's equations in float64 (what calibration runs) give exactly the integer
    reference's values when the layer is exact (every value on a small grid)."""
    from rtlgen.calibrate import float_forward

    node = rnn_node(cls, steps=5, features=2, units=3, sequences=sequences, seed=4)
    graph = lower(
        ir.ModelGraph("one", (ir.Input("in", (5, 2), (5, 2)), node)), PrecisionConfig(input=IN_TYPE)
    )
    x = grid_inputs((5, 2), 40, 3).astype(np.float64)
    np.testing.assert_array_equal(float_forward(node, x), predict(graph, x))


def test_saved_graph_round_trips(tmp_path):
    round_trips(rnn_dense_graph(LSTM), tmp_path)


@pytest.mark.parametrize(
    "edit, words",
    [
        (lambda d: d["fields"].update(state_type=[40, 0, True]), "wider than"),
        (lambda d: d["fields"].update(return_sequences=True), "return_sequences"),
        (lambda d: d["fields"].update(activation="{not json"), "not JSON"),
        (lambda d: d["fields"].update(state_type=[4, 0, True]), "does not match"),
    ],
)
def test_tampered_saved_graph_is_refused(tmp_path, edit, words):
    tampered_is_refused(rnn_dense_graph(GRU), tmp_path, "GRU", edit, words)


def test_lowering_keeps_the_state_within_its_type():
    """Without a state quantizer the state type is the one the step produces (the search
    settles); with one it is the quantizer's."""
    rng = np.random.default_rng(0)
    node = SimpleRNN(
        "rnn",
        (4, 2),
        (3,),
        weights=ir.FloatTensor(rng.uniform(-1, 1, (2, 3)), QuantizedBits(4, 1, alpha=1)),
        recurrent=ir.FloatTensor(rng.uniform(-1, 1, (3, 3)), QuantizedBits(4, 1, alpha=1)),
        bias=ir.FloatTensor(np.zeros(3)),
        activation='"quantized_tanh(4)"',
        qkeras=True,
    )
    ctx = LowerContext(IN_TYPE, LayerPrecision(), PrecisionConfig(input=IN_TYPE), True)
    lowered = lower_recurrent(node, ctx)
    assert lowered.state_type == lowered.out_type and lowered.exact
    with_sq = lower_recurrent(
        node.replace(state_quantizer=json.dumps("quantized_bits(6,2,alpha=1)")), ctx
    )
    assert with_sq.state_type == FixedType(6, 3, True)


# ---------------------------------------------------------------------------------------
# the command line, Verilator (slow)
# ---------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("kind", ["QLSTM", "QGRU", "GRU"])
def test_keras_rnn_then_dense_converts_predicts_and_simulates(tf, tmp_path, kind):
    """A recurrent layer followed by a Dense: ``rtlgen predict`` == Keras (QKeras) or within
    0.02 of it (a float GRU, rounded state), and ``rtlgen convert`` + ``rtlgen sim``
    bit-exact with predict in Verilator under backpressure."""
    from qkeras import QDense

    if kind.startswith("Q"):
        layers = [_qkeras_layer(kind, 4, False), QDense(3, kernel_quantizer=QB, bias_quantizer=QB)]
    else:
        layers = [tf.keras.layers.GRU(4, return_sequences=True), tf.keras.layers.Dense(3)]
    model = tf.keras.Sequential([tf.keras.Input((6, 3)), *layers])
    _randomize(model, 5)
    model.save(tmp_path / "m.h5")
    x = grid_inputs((6, 3), 24, 1)
    np.save(tmp_path / "x.npy", x)
    cli = [sys.executable, "-m", "rtlgen"]
    itype = ["--input-type", str(IN_TYPE)]
    run = lambda *args: subprocess.run(  # noqa: E731
        [*cli, *args], capture_output=True, text=True, timeout=1800
    )
    done = run(
        "predict",
        str(tmp_path / "m.h5"),
        "-i",
        str(tmp_path / "x.npy"),
        "-o",
        str(tmp_path / "y.npy"),
        *itype,
    )
    assert done.returncode == 0, done.stderr
    want = model(x, training=False).numpy()
    if kind.startswith("Q"):
        np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), want)
    else:
        assert np.abs(np.load(tmp_path / "y.npy").reshape(want.shape) - want).max() < 0.02
    done = run("convert", str(tmp_path / "m.h5"), "-o", str(tmp_path / "out"), *itype)
    assert done.returncode == 0, done.stderr
    done = run(
        "sim",
        str(tmp_path / "out"),
        "-i",
        str(tmp_path / "x.npy"),
        "-o",
        str(tmp_path / "y_rtl.npy"),
        "--backpressure",
        "0.3",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "y_rtl.npy"), np.load(tmp_path / "y.npy"))
    from rtlgen import load_model

    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    graph = load_model(tmp_path / "out")
    rnn = graph.nodes[1]
    steps = step_cycles(rnn, graph.in_type(1), Multiplier.AUTO)
    assert manifest["output"]["ii_cycles"] == 6 * steps  # one step per time step, 6 steps


@pytest.mark.parametrize("class_name", ["QActivation", "QDense", "QLSTM"])
def test_qkeras_layers_name_qkeras_sigmoids(class_name):
    """QKeras resolves activation names in qkeras.quantizers first: its hard_sigmoid is
    clip(x/2 + 1/2) (Keras 2's: x/5), smooth_sigmoid clip(3x/16 + 1/2); Keras layers keep
    Keras's."""
    from fractions import Fraction

    from rtlgen.frontend.keras_config import KerasLayer, layer_activation

    q = KerasLayer(class_name, "q", {"dtype": "float32"})
    assert dict(layer_activation(q, "hard_sigmoid").table_options)["slope"] == Fraction(1, 2)
    smooth = {"class_name": "function", "config": "smooth_sigmoid", "module": "builtins"}
    assert dict(layer_activation(q, smooth).table_options)["slope"] == Fraction(3, 16)
    keras = KerasLayer("Dense", "d", {"dtype": "float32"})
    assert layer_activation(keras, "hard_sigmoid").table_options == ()


def test_a_layer_precision_sets_weights_and_state_rounding():
    """A precision config's weight type quantizes the kernels; its result type's fractional
    bits are those of the float tables and of the rounded state."""
    rng = np.random.default_rng(2)
    node = LSTM(
        "rnn",
        (3, 2),
        (4,),
        weights=ir.FloatTensor(rng.uniform(-1, 1, (2, 16))),
        recurrent=ir.FloatTensor(rng.uniform(-1, 1, (4, 16))),
        bias=ir.FloatTensor(rng.uniform(-1, 1, 16)),
    )
    config = PrecisionConfig(input=IN_TYPE)
    explicit = LayerPrecision(weight=FixedType(8, 6, True), result=FixedType(12, 7, True))
    lowered = lower_recurrent(node, LowerContext(IN_TYPE, explicit, config, False))
    assert lowered.weights.type == lowered.recurrent.type == FixedType(8, 6, True)
    assert lowered.out_type.frac == lowered.state_type.frac == lowered.cell_type.frac == 7
    default = lower_recurrent(node, LowerContext(IN_TYPE, LayerPrecision(), config, False))
    assert default.out_type.frac == config.result_frac
