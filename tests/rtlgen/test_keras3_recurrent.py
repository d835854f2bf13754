# amaranth: UnusedElaboratable=no
"""Keras 3 recurrent layers by design: SimpleRNN, LSTM, GRU in ``.keras`` v3 archives and
Keras-3 JSON + ``save_weights("*.weights.h5")``, whose weights live in the layer's cell
(``layers/lstm/cell/vars/<i>``: kernel, recurrent_kernel, bias); read without Keras.

The files in tests/data/keras3/rnn_* were written by tests/data/make_keras3_models.py in the
oracle venv (keras 3.15.1, JAX backend; recurrent weights uniform in [-0.8, 0.8], as the
Keras 2 float recurrent tests) with Keras's outputs on inputs exact in fixed<16,6>.

These are float layers: rtlgen computes them with its default precision (16-bit weights,
each gate's activation a table rounded to 2**-11, h and c rounded to 10 fractional bits
every step), so it agrees with Keras within a tolerance, as the Keras 2 float recurrent
tests (tests/rtlgen/ops/test_recurrent.py: 0.01 over 8 steps). Measured here, after the
Dense heads: 0.0018-0.0040 over 32 sequences of 6-8 steps. A wrong reading is off by far
more (measured on these files): Keras 2's hard_sigmoid (slope 0.2) in place of Keras 3's
relu6(x + 3) / 6 0.081, the LSTM's i and f gates swapped 0.50, the GRU's two bias rows
swapped 0.54, a transposed recurrent kernel 1.7.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from rtlgen import ir
from rtlgen.api import load_model
from rtlgen.frontend import read_model
from rtlgen.ops.recurrent import GRU, LSTM, SimpleRNN
from rtlgen.quant.errors import ModelFileError, UnsupportedError

from .cli_run import convert_and_simulate
from .ops.network_checks import bit_exact_in_simulator
from .ops.spatial_nets import round_trips
from .test_keras3 import (
    _predict,
    agrees_with_keras,
    as_older_keras,
    compare_with_live_keras,
    config_edit,
    reads_as_the_archive,
    rewritten_archive,
)

DATA = Path(__file__).parents[1] / "data" / "keras3"
MODELS = (
    "rnn_simple_seq",
    "rnn_lstm",
    "rnn_lstm_seq",
    "rnn_gru",
    "rnn_gru_v1_stack",
    "rnn_lstm_tagger",
)
JSON_MODELS = ("rnn_lstm", "rnn_gru_v1_stack")
INPUT_TYPE = "fixed<16,6>"
TOLERANCE = 0.01


@pytest.mark.parametrize("name", MODELS)
def test_recurrent_archive_predicts_like_keras(name):
    agrees_with_keras(name, TOLERANCE)


@pytest.mark.parametrize("name", JSON_MODELS)
def test_json_and_weights_h5_read_as_the_archive(name):
    reads_as_the_archive(name, DATA / f"{name}.json", DATA / f"{name}.weights.h5")


def test_weights_come_from_the_cell_in_keras_order():
    """The archive keeps no variable in ``layers/<rnn>/vars`` and three in ``cell/vars``;
    rtlgen's kernel, recurrent kernel and bias are exactly those datasets (the GRU's bias
    as its two rows, input then recurrent)."""
    import h5py

    with zipfile.ZipFile(DATA / "rnn_gru_v1_stack.keras") as archive:
        weights = h5py.File(io.BytesIO(archive.read("model.weights.h5")))
        stored = {
            layer: [np.asarray(weights[f"layers/{layer}/cell/vars/{i}"]) for i in range(3)]
            for layer in ("gru", "lstm")
        }
        assert all(len(weights[f"layers/{layer}/vars"]) == 0 for layer in stored)
    graph = read_model(DATA / "rnn_gru_v1_stack.keras")
    gru, lstm = (n for n in graph.nodes if isinstance(n, ir.Node) and n.name in stored)
    assert isinstance(gru, GRU) and isinstance(lstm, LSTM)
    assert not gru.reset_after and gru.return_sequences and not lstm.return_sequences
    for node, (kernel, recurrent, _) in ((gru, stored["gru"]), (lstm, stored["lstm"])):
        np.testing.assert_array_equal(node.weights.values, kernel)
        np.testing.assert_array_equal(node.recurrent.values, recurrent)
    np.testing.assert_array_equal(gru.bias.values[0], stored["gru"][2])
    assert not np.any(gru.bias.values[1])  # reset_after=False: no recurrent bias
    np.testing.assert_array_equal(lstm.bias.values, stored["lstm"][2])
    reset_after = next(n for n in read_model(DATA / "rnn_gru.keras").nodes if n.name == "gru")
    assert reset_after.reset_after and reset_after.bias.values.shape == (2, 15)


def test_keras3_layers_are_marked_for_keras3_hard_sigmoid():
    """Keras 3's hard_sigmoid is relu6(x + 3) / 6, Keras 2's clip(0.2 x + 0.5): the node
    remembers which Keras wrote it (the rnn_lstm_seq golden checks the numbers)."""
    graph = read_model(DATA / "rnn_lstm_seq.keras")
    (lstm,) = (n for n in graph.nodes if isinstance(n, LSTM))
    assert lstm.keras3 and json.loads(lstm.recurrent_activation) == "hard_sigmoid"
    (rnn,) = (n for n in read_model(DATA / "rnn_simple_seq.keras").nodes if n.name == "rnn")
    assert isinstance(rnn, SimpleRNN) and rnn.return_sequences and rnn.keras3


def test_time_distributed_dense_is_the_dense_on_every_step():
    """A tagger's TimeDistributed(Dense) layers: the Dense under the wrapper's name, its
    weights from the wrapper's ``layer`` (.keras) or by name (.h5), as Keras computes."""
    graph = read_model(DATA / "rnn_lstm_tagger.keras")
    nodes = {n.name: n for n in graph.nodes}
    assert nodes["td_hidden"].inputs == ("lstm",) and nodes["td_out"].out_shape == (8, 2)
    reads_as_the_archive("rnn_lstm_tagger", DATA / "rnn_lstm_tagger.h5")


def test_time_distributed_of_other_layers_is_refused_in_one_line(tmp_path):
    def conv_inside(config):
        td = next(e for e in config["config"]["layers"] if e["config"]["name"] == "td_out")
        td["config"]["layer"]["class_name"] = "Conv1D"

    edits = {"config.json": config_edit(conv_inside)}
    with pytest.raises(UnsupportedError) as info:
        read_model(rewritten_archive(tmp_path, "rnn_lstm_tagger", edits))
    message = str(info.value)
    assert "\n" not in message and "layer 'td_out' (TimeDistributed)" in message
    assert "TimeDistributed around Dense" in message


def test_saved_graph_keeps_keras3_hard_sigmoid(tmp_path):
    """The lowered graph saved and loaded again (what `rtlgen sim` reads) keeps the node's
    ``keras3`` and so its gates' tables."""
    from rtlgen.serialize import load_graph

    graph = load_model(DATA / "rnn_lstm_seq.keras", input_type=INPUT_TYPE)
    round_trips(graph, tmp_path)
    (lstm,) = (n for n in load_graph(tmp_path / "graph.npz").nodes if isinstance(n, LSTM))
    assert lstm.keras3


@pytest.mark.parametrize("metadata", ['{"keras_version": "3.2.1"}', None])
def test_older_keras3_files_keep_keras3_hard_sigmoid(tmp_path, metadata):
    """Keras 3.0-3.3 write dtypes as strings: the archive's version (or, without one, the
    Functional {"args": ...} nodes only Keras 3 writes) still marks the LSTM as Keras 3's,
    and the numbers match Keras."""
    path = as_older_keras(tmp_path, "rnn_lstm_seq", metadata)
    (lstm,) = (n for n in read_model(path).nodes if isinstance(n, LSTM))
    assert lstm.keras3
    agrees_with_keras("rnn_lstm_seq", TOLERANCE, path)


def _set_option(key, value, layer="gru"):
    def edit(config):
        for entry in config["config"]["layers"]:
            if entry["config"]["name"] == layer:
                entry["config"][key] = value

    return edit


REFUSED = [
    ("rnn_lstm_bidirectional", None, "layer 'bidi' (Bidirectional)", "runs the sequence backwards"),
    ("rnn_gru_backwards", None, "layer 'gru' (GRU)", "go_backwards=True is not supported"),
    ("rnn_gru", _set_option("stateful", True), "layer 'gru' (GRU)", "stateful=True"),
    ("rnn_gru", _set_option("return_state", True), "layer 'gru' (GRU)", "return_state=True"),
    ("rnn_gru", _set_option("activation", "relu"), "layer 'gru' (GRU)", "'relu' is not supported"),
]


@pytest.mark.parametrize("name, edit, where, words", REFUSED, ids=[w for _, _, _, w in REFUSED])
def test_unsupported_recurrent_options_are_refused_in_one_line(tmp_path, name, edit, words, where):
    edits = {} if edit is None else {"config.json": config_edit(edit)}
    path = rewritten_archive(tmp_path, name, edits)
    with pytest.raises(UnsupportedError) as info:
        read_model(path)
    message = str(info.value)
    assert "\n" not in message and where in message and words in message


def test_options_that_change_nothing_at_inference_are_accepted(tmp_path):
    """unroll, dropout, recurrent_dropout, seed and zero_output_for_mask act in training or
    on masks only: the same numbers."""
    options = {
        "unroll": True,
        "dropout": 0.3,
        "recurrent_dropout": 0.2,
        "seed": 7,
        "zero_output_for_mask": True,
    }

    def edit(config):
        for key, value in options.items():
            _set_option(key, value)(config)

    path = rewritten_archive(tmp_path, "rnn_gru", {"config.json": config_edit(edit)})
    agrees_with_keras("rnn_gru", TOLERANCE, path)


def test_weights_missing_from_the_cell_are_named(tmp_path):
    """An archive whose LSTM has no cell variables: one line naming the layer and path."""
    import h5py

    def without_cell(data: bytes) -> bytes:
        blob = io.BytesIO(data)
        with h5py.File(blob, "a") as f:
            del f["layers/lstm/cell"]
        return blob.getvalue()

    path = rewritten_archive(tmp_path, "rnn_lstm", {"model.weights.h5": without_cell})
    with pytest.raises(ModelFileError) as info:
        read_model(path)
    message = str(info.value)
    assert "layer 'lstm' (LSTM)" in message and "layers/lstm/cell" in message
    assert "\n" not in message


def test_network_bit_exact_under_backpressure():
    graph = load_model(DATA / "rnn_gru_v1_stack.keras", input_type=INPUT_TYPE)
    bit_exact_in_simulator(graph, n=2, seed=3)


@pytest.mark.slow
def test_tf_keras_archives_keep_recurrent_weights_in_the_cell_too(tmp_path):
    """tf.keras 2.15 writes ``.keras`` archives in the same layout (``layers/qlstm/cell``):
    a QKeras QSimpleRNN + QLSTM model read from its ``.keras`` predicts exactly as QKeras and
    as its ``.h5``."""
    pytest.importorskip("qkeras")  # the oracle: QKeras 0.9 on TensorFlow 2.15 (3.11) or 2.21 + tf-keras (3.12+)
    import tensorflow as tf
    from qkeras import QLSTM, QSimpleRNN
    from tensorflow.python.util import nest

    if not hasattr(nest, "is_sequence"):  # qkeras 0.9 on TensorFlow 2.15 and 2.21
        nest.is_sequence = nest.is_nested
    qb = "quantized_bits(4,1,alpha=1)"
    quantizers = dict(kernel_quantizer=qb, recurrent_quantizer=qb, bias_quantizer=qb)
    model = tf.keras.Sequential(
        [
            tf.keras.Input((5, 2)),
            QSimpleRNN(3, activation="quantized_tanh(4)", return_sequences=True, **quantizers),
            QLSTM(
                2,
                activation="quantized_tanh(4)",
                recurrent_activation="quantized_sigmoid(4)",
                state_quantizer=qb,
                **quantizers,
            ),
        ]
    )
    rng = np.random.default_rng(4)
    for w in model.weights:
        w.assign(rng.uniform(-1, 1, w.shape).astype(np.float32))
    model.save(tmp_path / "m.keras")
    model.save(tmp_path / "m.h5")
    x = (rng.integers(-16, 16, size=(32, 5, 2)) / 4).astype(np.float32)
    want = model(x, training=False).numpy()
    for path in (tmp_path / "m.keras", tmp_path / "m.h5"):
        graph = load_model(path, input_type="fixed<5,3>")
        np.testing.assert_array_equal(_predict(graph, x, want.shape), want)


@pytest.mark.slow
def test_lstm_archive_converts_and_simulates_bit_exact(tmp_path):
    """``rtlgen convert`` of the Keras 3 LSTM + Dense archive, ``rtlgen sim`` in Verilator
    under backpressure: the same numbers as ``rtlgen predict`` (and so within TOLERANCE of
    Keras)."""
    expected = np.load(DATA / "rnn_lstm_expected.npz")
    x = expected["x"][:12]
    model = DATA / "rnn_lstm.keras"
    simulated = convert_and_simulate(tmp_path, model, x, "--input-type", INPUT_TYPE)
    graph = load_model(model, input_type=INPUT_TYPE)
    want = _predict(graph, x, expected["y"][:12].shape)
    np.testing.assert_array_equal(simulated, want.reshape(len(x), -1))
    np.testing.assert_allclose(simulated, expected["y"][:12], rtol=0, atol=TOLERANCE)


@pytest.mark.slow
def test_live_oracle(tmp_path):
    refused = ("rnn_lstm_bidirectional", "rnn_gru_backwards")
    compare_with_live_keras(tmp_path, MODELS, TOLERANCE, also=refused)
    with pytest.raises(UnsupportedError, match="Bidirectional"):
        read_model(tmp_path / "rnn_lstm_bidirectional.keras")
