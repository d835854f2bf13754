"""Keras 3 model files by design: ``.keras`` v3 archives, Keras-3 JSON configs with
``save_weights("*.weights.h5")``, Sequential and Functional (forks and joins), InputLayer with
``batch_shape``, dtype policies as dicts; read without Keras. ``func_layers_2d`` and
``func_layers_1d`` hold most other layer kinds rtlgen reads, as Keras 3 writes them
(depthwise/separable convolutions, pooling, padding, cropping, upsampling, merges,
LeakyReLU/PReLU/ReLU options, Keras 3's hard_sigmoid, Reshape(-1), Identity and the random
augmentations). Recurrent layers: tests/rtlgen/test_keras3_recurrent.py.

The files in tests/data/keras3/ were written by tests/data/make_keras3_models.py in the oracle
venv (keras 3.15.1, JAX backend) with Keras's outputs on inputs exact in fixed<16,6>;
`test_live_oracle` writes them again and compares when that venv is there.

These are float models: rtlgen quantizes them with its default precision (16-bit weights with
the integer bits each tensor needs, every result rounded to 2**-10, BatchNorm folded into
18-bit scale/shift), so it agrees with Keras to that precision, not bit for bit. Each layer
adds at most 2**-11 of rounding plus what the weight rounding (relative 2**-15) makes of
inputs below 4; over these 3-6 layers, whose weights sum to below ~4 per output, the error
stays under 2**-7 (the 12-13 layers of func_layers_*: measured 7e-4 and 2.0e-3). A wrong
reading (a dropped layer, a swapped branch, BatchNorm statistics mixed up, a transposed
kernel, Keras 2's hard_sigmoid slope (0.14 on func_layers_1d)) is off by far more: outputs
range up to ~7.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from rtlgen import ir
from rtlgen.api import load_model, predict_outputs
from rtlgen.frontend import read_model
from rtlgen.quant.errors import ModelFileError, UnsupportedError

from .cli_run import rtlgen
from .ops.network_checks import bit_exact_in_simulator

DATA = Path(__file__).parents[1] / "data" / "keras3"
MODELS = (
    "seq_mlp",
    "seq_no_input",
    "func_cnn",
    "func_conv1d",
    "func_layers_2d",
    "func_layers_1d",
    "func_preprocess",
    "func_decoder",
    "func_nested",
)
JSON_MODELS = ("seq_mlp", "func_cnn", "func_layers_2d", "func_nested")
INPUT_TYPE = "fixed<16,6>"
TOLERANCE = 2.0**-7


def _predict(graph: ir.ModelGraph, x: np.ndarray, shape) -> np.ndarray:
    (y,) = predict_outputs(graph, x).values()
    return y.reshape(shape)


def agrees_with_keras(name: str, tolerance: float, path: Path | None = None) -> None:
    """rtlgen's reference of the golden model ``name`` (or of ``path``) is within
    ``tolerance`` of Keras's committed outputs."""
    expected = np.load(DATA / f"{name}_expected.npz")
    graph = load_model(path or DATA / f"{name}.keras", input_type=INPUT_TYPE)
    got = _predict(graph, expected["x"], expected["y"].shape)
    np.testing.assert_allclose(got, expected["y"], rtol=0, atol=tolerance)


def reads_as_the_archive(name: str, model: Path, weights: Path | None = None) -> None:
    """Another file of the golden model ``name`` predicts exactly as its archive."""
    expected = np.load(DATA / f"{name}_expected.npz")
    from_archive = load_model(DATA / f"{name}.keras", input_type=INPUT_TYPE)
    other = load_model(model, weights=weights, input_type=INPUT_TYPE)
    shape = expected["y"].shape
    np.testing.assert_array_equal(
        _predict(other, expected["x"], shape), _predict(from_archive, expected["x"], shape)
    )


def rewritten_archive(tmp_path: Path, name: str, edits) -> Path:
    """A copy of the golden archive ``name`` whose members ``edits[member](data)`` rewrites
    (to new bytes, or None: left out)."""
    out = tmp_path / f"{name}.keras"
    with zipfile.ZipFile(DATA / f"{name}.keras") as src, zipfile.ZipFile(out, "w") as dst:
        for item in src.namelist():
            data = src.read(item)
            if item in edits:
                data = edits[item](data)
            if data is not None:
                dst.writestr(item, data)
    return out


def config_edit(edit):
    """A ``rewritten_archive`` edit of config.json applying ``edit(config)``."""

    def rewrite(data: bytes) -> bytes:
        config = json.loads(data)
        edit(config)
        return json.dumps(config).encode()

    return rewrite


@pytest.mark.parametrize("name", MODELS)
def test_keras_archive_predicts_like_keras(name):
    agrees_with_keras(name, TOLERANCE)


def test_silu_gelu_and_position_prelu_predict_like_keras():
    """func_activations: Keras 3's silu/gelu strings and PReLUs with alphas per element and
    per column. The SiLU tables of wide (fixed<19,9> and wider) inputs have a 7-bit table
    fraction (max error 0.0048 each), GELU's 0.0016; through the 1x1 convolution, the
    per-column PReLU and the 48-input head measured 0.0075, so 2**-6; the per-element
    alphas with their rows reversed are off by 0.09. GELU's erf and tanh forms differ by
    less than the tables' rounding here, so the flag is checked itself."""
    agrees_with_keras("func_activations", 2.0**-6)
    graph = load_model(DATA / "func_activations.keras", input_type=INPUT_TYPE)
    prelu, prelu_w = graph.node("prelu"), graph.node("prelu_w")
    assert prelu.scale.shape == (4, 3, 3) and prelu_w.scale.shape == (4, 3, 4)
    assert np.all(prelu_w.scale.mantissa == prelu_w.scale.mantissa[:1])  # shared along H
    kinds = [n.kind.value for n in graph.nodes if hasattr(n, "kind")]
    assert kinds == ["silu", "gelu", "silu"] and not graph.node("gelu").approximate
    bit_exact_in_simulator(graph, n=2, seed=3)


@pytest.mark.parametrize("name", JSON_MODELS)
def test_json_and_weights_h5_read_as_the_archive(name):
    """to_json() + save_weights('*.weights.h5') (the v3 layout) give the same graph."""
    reads_as_the_archive(name, DATA / f"{name}.json", DATA / f"{name}.weights.h5")


@pytest.mark.parametrize("name", ["func_layers_1d", "rnn_lstm", "func_nested"])
def test_legacy_h5_reads_as_the_archive(name):
    """Keras 3's model.save('*.h5') (weights by name; a DepthwiseConv's kernel named
    'kernel', not Keras 2's 'depthwise_kernel'; an LSTM's under lstm/lstm_cell) gives the
    same graph as the archive."""
    reads_as_the_archive(name, DATA / f"{name}.h5")


def test_archives_are_keras3_v3_layout():
    """The files really are what Keras 3 writes: metadata.json with the version, a config
    whose layers carry dtype policies as dicts, weights under layers/<name>/vars."""
    import h5py

    for name in MODELS:
        with zipfile.ZipFile(DATA / f"{name}.keras") as archive:
            assert {"config.json", "metadata.json", "model.weights.h5"} <= set(archive.namelist())
            assert json.loads(archive.read("metadata.json"))["keras_version"].startswith("3.")
            config = json.loads(archive.read("config.json"))
            with archive.open("model.weights.h5") as blob:
                assert "layers" in h5py.File(blob)
        dtypes = [
            layer["config"].get("dtype")
            for layer in config["config"]["layers"]
            # an InputLayer's dtype is a plain string; a nested model's is its own
            if layer["class_name"] not in ("InputLayer", "Functional", "Sequential")
        ]
        assert all(isinstance(d, dict) and d["class_name"] == "DTypePolicy" for d in dtypes)
    seq = json.loads(zipfile.ZipFile(DATA / "seq_mlp.keras").read("config.json"))
    assert seq["config"]["layers"][0]["config"]["batch_shape"] == [None, 10]


def test_functional_forks_and_joins():
    graph = load_model(DATA / "func_cnn.keras", input_type=INPUT_TYPE)
    by_name = {n.name: n for n in graph.nodes}
    assert by_name["add"].inputs == ("branch_a", "branch_b")
    assert by_name["cat"].inputs[1] == "stem"
    consumers = [n.name for n in graph.nodes if "stem" in n.inputs]
    assert sorted(consumers) == ["branch_a", "branch_b", "cat"]
    assert graph.input_shape == (8, 8, 3)


def test_nested_models_are_inlined():
    """func_nested: a Functional backbone and a Sequential block holding another Sequential
    (two deep) are read as their layers, each nested model's input reading what it read; the
    weights come from each file kind's nested layout (.keras: layers/functional/layers/...,
    legacy .h5: the outermost nested model's group), so all three agree with Keras."""
    graph = load_model(DATA / "func_nested.keras", input_type=INPUT_TYPE)
    assert [n.name for n in graph.nodes] == [
        "x", "b_conv", "b_pool", "flat", "h_fc", "i_fc", "i_out", "head"
    ]
    assert graph.node("b_conv").inputs == ("x",) and graph.node("h_fc").inputs == ("flat",)
    assert graph.node("head").inputs == ("i_out",)


@pytest.mark.parametrize(
    "edit, words",
    [
        (
            lambda c: c["config"]["layers"][1]["config"].update(
                output_layers=[["b_pool", 0, 0], ["b_conv", 0, 0]]
            ),
            "nested model 'backbone' (Functional) has 2 outputs",
        ),
        (
            lambda c: c["config"]["layers"][3]["config"]["layers"][1]["config"].update(
                name="flat"
            ),
            "its layer 'flat' has the name of another layer",
        ),
    ],
)
def test_nested_models_rtlgen_cannot_inline_are_refused_in_one_line(edit, words):
    config = json.loads((DATA / "func_nested.json").read_text())
    edit(config)
    with pytest.raises((UnsupportedError, ModelFileError)) as info:
        load_model(config, weights=DATA / "func_nested.weights.h5", input_type=INPUT_TYPE)
    message = str(info.value)
    assert "\n" not in message and words in message, message


def test_sequential_without_input_layer():
    graph = load_model(DATA / "seq_no_input.keras", input_type=INPUT_TYPE)
    assert graph.input_shape == (7,)


def test_quantized_dtype_policy_refused_in_one_line(tmp_path):
    with pytest.raises(UnsupportedError) as info:
        load_model(DATA / "seq_int8.keras")
    message = str(info.value)
    assert "\n" not in message and "layer 'fc1' (Dense)" in message
    assert "QuantizedDTypePolicy" in message
    run = rtlgen("convert", DATA / "seq_int8.keras", "-o", tmp_path / "out")
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1


def test_inference_identities_are_dropped():
    """Keras 3's Identity and the random augmentations (active in training only) leave no
    node; the padding after them reads the model input."""
    graph = load_model(DATA / "func_layers_2d.keras", input_type=INPUT_TYPE)
    names = [n.name for n in graph.nodes]
    assert not {"flip", "contrast", "identity"} & set(names)
    assert next(n for n in graph.nodes if n.name == "pad").inputs == ("x",)


def as_older_keras(tmp_path: Path, name: str, metadata: str | None) -> Path:
    """The golden archive ``name`` as Keras 3.0-3.3 write it (every dtype the string
    "float32"), with ``metadata`` as its metadata.json (None: none)."""

    def strings(config):
        for entry in config["config"]["layers"]:
            entry["config"]["dtype"] = "float32"

    edits = {
        "config.json": config_edit(strings),
        "metadata.json": lambda _: None if metadata is None else metadata.encode(),
    }
    return rewritten_archive(tmp_path, name, edits)


@pytest.mark.parametrize(
    "metadata, keras3",
    [
        ('{"keras_version": "3.3.3"}', True),  # the version the archive declares
        (None, True),  # no version: batch_shape and {"args": ...} nodes are Keras 3's
        ('{"keras_version": "2.15.0"}', False),
    ],
)
def test_keras3_hard_sigmoid_without_dtype_policies(tmp_path, metadata, keras3):
    """Keras 3.0-3.3 write dtypes as strings, as Keras 2 does: the file's version, else
    what only Keras 3 writes, decides whose hard_sigmoid (relu6(x + 3) / 6 or Keras 2's
    0.2 x + 0.5) a layer computes (a wrong choice is 0.14 off on func_layers_1d)."""
    expected = np.load(DATA / "func_layers_1d_expected.npz")
    path = as_older_keras(tmp_path, "func_layers_1d", metadata)
    graph = load_model(path, input_type=INPUT_TYPE)
    error = np.abs(_predict(graph, expected["x"], expected["y"].shape) - expected["y"]).max()
    assert (error < TOLERANCE) == keras3, error


def test_preprocessing_layers_are_scale_and_shift():
    """Rescaling and Normalization become per-channel ScaleShift nodes: the adapted one from
    its stored mean and variance, the inverted one as mean + x * sqrt(variance)."""
    import h5py

    graph = read_model(DATA / "func_preprocess.keras")
    nodes = {n.name: n for n in graph.nodes}
    assert all(isinstance(nodes[k], ir.ScaleShift) for k in ("rescale", "norm", "denorm"))
    np.testing.assert_array_equal(nodes["rescale"].scale.values, [0.5] * 3)
    np.testing.assert_array_equal(nodes["rescale"].shift.values, [0.25] * 3)
    with zipfile.ZipFile(DATA / "func_preprocess.keras") as archive:
        weights = h5py.File(io.BytesIO(archive.read("model.weights.h5")))
        mean, variance = (
            np.asarray(weights[f"layers/normalization/vars/{i}"], dtype=np.float64) for i in (0, 1)
        )
    np.testing.assert_allclose(nodes["norm"].scale.values, 1 / np.sqrt(variance), rtol=1e-15)
    np.testing.assert_allclose(nodes["norm"].shift.values, -mean / np.sqrt(variance), rtol=1e-15)
    np.testing.assert_array_equal(nodes["scalar_norm"].scale.values, [0.5] * 4)
    np.testing.assert_array_equal(nodes["denorm"].scale.values, [1, 2, 0.5, np.sqrt(2.0)])
    np.testing.assert_array_equal(nodes["denorm"].shift.values, [1, 2, -3, 0.5])


def test_normalization_over_other_axes_is_refused_in_one_line():
    config = json.loads(zipfile.ZipFile(DATA / "func_preprocess.keras").read("config.json"))
    norm = next(e for e in config["config"]["layers"] if e["config"]["name"] == "norm")
    norm["config"]["axis"] = [1]
    with pytest.raises(UnsupportedError) as info:
        load_model(config, weights=DATA / "func_layers_2d.weights.h5")
    message = str(info.value)
    assert "\n" not in message and "layer 'norm' (Normalization): axis=[1]" in message


@pytest.mark.parametrize(
    "class_name, words",
    [
        ("TimeDistributed", "rtlgen reads TimeDistributed around Dense"),
        ("RNN", "use the SimpleRNN, LSTM or GRU layers"),
        ("Bidirectional", "runs the sequence backwards"),
    ],
)
def test_wrappers_are_refused_with_a_way_out(class_name, words):
    """Keras 3 wrapper layers a user meets: one line naming the layer and what to do."""
    config = json.loads((DATA / "seq_mlp.json").read_text())
    config["config"]["layers"][1]["class_name"] = class_name
    with pytest.raises(UnsupportedError) as info:
        load_model(config, weights=DATA / "seq_mlp.weights.h5")
    message = str(info.value)
    assert "\n" not in message and f"layer 'fc1' ({class_name})" in message and words in message


def test_quantized_dtype_policy_of_keras_3_3_refused_in_one_line(tmp_path):
    """Keras 3.0-3.3 name the quantized policy as a string ("int8_from_float32")."""

    def quantized(config):
        config["config"]["layers"][1]["config"]["dtype"] = "int8_from_float32"

    path = rewritten_archive(tmp_path, "seq_mlp", {"config.json": config_edit(quantized)})
    with pytest.raises(UnsupportedError) as info:
        load_model(path)
    message = str(info.value)
    assert "\n" not in message and "layer 'fc1' (Dense)" in message
    assert "int8_from_float32" in message and "model.quantize" in message


@pytest.mark.parametrize(
    "name",
    ["seq_mlp", "func_conv1d", "func_layers_1d", "func_decoder", "func_nested"],
)
def test_network_bit_exact_under_backpressure(name):
    graph = load_model(DATA / f"{name}.keras", input_type=INPUT_TYPE)
    bit_exact_in_simulator(graph, n=3, seed=2)


def _oracle_python() -> str | None:
    try:
        import keras

        if keras.__version__.startswith("3."):
            return sys.executable
    except ImportError:
        pass
    candidates = [os.environ.get("RTLGEN_KERAS3_PYTHON", "/work/venv-hgq2/bin/python")]
    candidates.append("/work/venv-keras3/bin/python")
    return next((python for python in candidates if Path(python).exists()), None)


def compare_with_live_keras(tmp_path: Path, models, tolerance: float, also=()) -> None:
    """Keras 3 writes the golden ``models`` (and ``also``) again into ``tmp_path`` (same
    seeds): Keras gives the committed outputs (within float32 noise: XLA's CPU convolutions
    round differently across machines, ~2e-6 measured on func_cnn), and rtlgen's reference
    of the fresh files is within ``tolerance`` of them."""
    python = _oracle_python()
    if python is None and os.environ.get("RTLGEN_REQUIRE_ORACLES"):
        pytest.fail("Keras 3 oracle required (RTLGEN_REQUIRE_ORACLES) but not installed")
    if python is None:
        pytest.skip("Keras 3 oracle not installed (pip install '.[keras3]' in a Python 3.12 venv)")
    script = Path(__file__).parents[1] / "data" / "make_keras3_models.py"
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    subprocess.run(
        [python, script, tmp_path, *models, *also],
        check=True,
        env=env,
        capture_output=True,
        timeout=900,
    )
    for name in models:
        fresh = np.load(tmp_path / f"{name}_expected.npz")
        committed = np.load(DATA / f"{name}_expected.npz")
        np.testing.assert_allclose(fresh["y"], committed["y"], rtol=1e-5, atol=1e-5)
        graph = load_model(tmp_path / f"{name}.keras", input_type=INPUT_TYPE)
        got = _predict(graph, fresh["x"], fresh["y"].shape)
        np.testing.assert_allclose(got, fresh["y"], rtol=0, atol=tolerance)


@pytest.mark.slow
def test_live_oracle(tmp_path):
    compare_with_live_keras(tmp_path, MODELS, TOLERANCE)
