"""HGQ (v1) proxy models (`rtlgen.frontend.hgq1`): Keras-2 ``.h5`` files with
``FixedPointQuantizer`` layers, as ``HGQ.proxy.to_proxy_model`` saves them.

Golden files (tests/data/hgq1, written by tests/data/hgq1/make_models.py under HGQ 0.2.6 +
TensorFlow 2.15 in a separate venv): each model's inputs and HGQ's own ``predict`` of them;
rtlgen's integer reference must equal it bit for bit. The quantizer's modes are also checked
on hand-written files against a float32 transcription of HGQ's ``gfixed_quantizer``.
"""

from __future__ import annotations

import os
import subprocess
import zlib
from pathlib import Path

import h5py
import numpy as np
import pytest

from rtlgen import cli, ir
from rtlgen.api import load_model, predict_outputs
from rtlgen.frontend import read_model
from rtlgen.quant.errors import ModelFileError, UnsupportedError
from rtlgen.quant.fixed import FixedType
from tests.models import layer_entry, sequential_config, write_full_h5

from .cli_run import convert_and_simulate
from .ops.network_checks import bit_exact_in_simulator, timing_matches_model

DATA = Path(__file__).resolve().parents[1] / "data" / "hgq1"
MODELS = ("mlp_wrap", "mlp_sat", "mlp_wide_weights", "cnn2d", "conv1d_bn", "residual_bn")


def _predict(name: str) -> tuple[np.ndarray, np.ndarray, ir.ModelGraph]:
    graph = load_model(DATA / f"{name}.h5")
    gold = np.load(DATA / f"{name}.npz")
    (y,) = predict_outputs(graph, gold["x"]).values()
    return y.reshape(gold["y"].shape), gold["y"], graph


# ---------------------------------------------------------------------------------------
# golden models
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", MODELS)
def test_proxy_model_predicts_exactly_as_hgq(name):
    got, want, graph = _predict(name)
    assert graph.nodes[0].out_type == FixedType(16, 10, True)  # the inputs are exact in it
    np.testing.assert_array_equal(got, want.astype(np.float64))
    assert sum(isinstance(n, ir.Node) and n.op == "fixed_quantize" for n in graph.nodes) >= 3


def test_kernels_keep_every_bit_of_hgqs_quantized_weights():
    """mlp_wide_weights has 10-20 fractional bits per weight: rtlgen's float-weight types
    (16 bits) would round them; the proxy's kernels are kept exactly instead."""
    graph = load_model(DATA / "mlp_wide_weights.h5")
    with h5py.File(DATA / "mlp_wide_weights.h5") as f:
        for node in graph.nodes:
            if node.op != "dense":
                continue
            group = f["model_weights"][node.name]
            for key, name in (("weights", "kernel:0"), ("bias", "bias:0")):
                stored = group[f"{node.name}/{name}"][()] if node.name in group else group[name][()]
                q = getattr(node, key)
                np.testing.assert_array_equal(q.mantissa * 2.0**-q.type.frac, stored)
    assert max(n.weights.type.frac for n in graph.nodes if n.op == "dense") >= 18


def test_overflow_modes_matter_on_the_golden_inputs():
    """The inputs reach beyond the calibrated range: wrapping instead of saturating (and the
    other way round) changes outputs, so the golden tests see the modes."""
    import dataclasses

    from rtlgen.quant.fixed import Overflow
    from rtlgen.quant.reference import predict

    for name in ("mlp_wrap", "mlp_sat"):
        _, want, graph = _predict(name)
        flipped = []
        for node in graph.nodes:
            if node.op == "fixed_quantize":
                other = Overflow.SATURATE if node.overflow is Overflow.WRAP else Overflow.WRAP
                node = dataclasses.replace(node, overflow=other)
            flipped.append(node)
        x = np.load(DATA / f"{name}.npz")["x"]
        y = predict(graph.with_nodes(flipped), x).reshape(want.shape)
        assert not np.array_equal(y, want)


@pytest.mark.parametrize("name", ["mlp_wrap", "cnn2d", "conv1d_bn", "residual_bn"])
def test_network_bit_exact_under_backpressure(name):
    _, _, graph = _predict(name)
    bit_exact_in_simulator(graph, n=2, seed=4)


def test_network_timing_matches_model():
    _, _, graph = _predict("mlp_sat")
    timing_matches_model(graph)


@pytest.mark.parametrize("name", ["conv1d_bn", "residual_bn"])
def test_graph_npz_round_trip(tmp_path, name):
    """The saved graph (graph.npz of a converted design) keeps the per-element widths and
    the exact kernels: it predicts HGQ's outputs again."""
    from rtlgen.serialize import save_graph

    _, want, graph = _predict(name)
    save_graph(graph, tmp_path / "graph.npz")
    x = np.load(DATA / f"{name}.npz")["x"]
    (y,) = predict_outputs(load_model(tmp_path / "graph.npz"), x).values()
    np.testing.assert_array_equal(y.reshape(want.shape), want)


# ---------------------------------------------------------------------------------------
# the quantizer's modes on hand-written files
# ---------------------------------------------------------------------------------------
def gfixed(x, k, b, i, rnd, sat):
    """HGQ 0.2.6's ``gfixed_quantizer`` transcribed to numpy float32."""
    f32 = np.float32
    x, k, b, i = (np.asarray(v, f32) for v in (x, k, b, i))
    scale = f32(2) ** (b - i)
    v = x * scale
    v = {
        "TRN": np.floor(v),
        "RND": np.floor(v + f32(0.5)),
        "RND_CONV": np.round(v),
    }[rnd]
    high = f32(2) ** (b - k) - 1
    low = {"SAT_SYM": -high * k}.get(sat, -(high + 1) * k)
    if sat == "WRAP":
        v = np.mod(v - low, high - low + 1) + low
    else:
        v = np.clip(v, low, high)
    return (v / scale * (b != 0).astype(f32)).astype(f32)


def quantizer_file(tmp_path, shape, k, b, i, rnd="TRN", sat="WRAP", stored=None, name="q"):
    stored = tuple(np.shape(b)) if stored is None else stored
    config = {
        "name": name,
        "trainable": False,
        "dtype": "float32",
        "RND": rnd,
        "SAT": sat,
        "shape": list(stored),
        "overrides": {"layers": {}},
        "fusible": False,
    }
    entry = {**layer_entry("FixedPointQuantizer", config, module=None)}
    entry["class_name"] = "HGQ>FixedPointQuantizer"
    weights = {
        name: {
            n: np.asarray(v, np.int8)
            for n, v in zip(("keep_negative", "bits", "integers"), (k, b, i), strict=True)
        }
    }
    path = tmp_path / f"{name}_{rnd}_{sat}.h5"
    return write_full_h5(path, sequential_config([entry], shape), weights)


@pytest.mark.parametrize("sat", ["WRAP", "SAT", "SAT_SYM"])
@pytest.mark.parametrize("rnd", ["TRN", "RND", "RND_CONV"])
@pytest.mark.parametrize("layout", ["vector", "image_per_element", "image_per_channel", "scalar"])
def test_quantizer_modes_equal_hgqs_formula(tmp_path, rnd, sat, layout):
    """Random per-element widths (signed and unsigned, negative integer or fractional bits,
    pruned elements with bits 0) on inputs that hit ties and overflow: equal to HGQ's formula."""
    rng = np.random.default_rng(zlib.crc32(f"{rnd}{sat}{layout}".encode()))
    shape, stored = {
        "vector": ((11,), (1, 11)),
        "image_per_element": ((3, 4, 2), (1, 3, 4, 2)),
        "image_per_channel": ((3, 4, 2), (1, 1, 1, 2)),
        "scalar": ((5,), ()),
    }[layout]
    k = rng.integers(0, 2, stored)
    b = rng.integers(0, 9, stored)
    b = np.where(b < k, k, b)  # a signed element has at least its sign bit
    i = b - rng.integers(-2, 7, stored)  # fractional bits -2..6
    path = quantizer_file(tmp_path, shape, k, b, i, rnd, sat, stored)
    graph = load_model(path, input_type="fixed<16,9>")
    x = (rng.integers(-(2**15), 2**15, (400, *shape)) / 2**7).astype(np.float32)
    x[:50] = np.clip(np.round(x[:50] * 4) / 4 + 0.125, -256, 255.875)  # ties, in range
    (y,) = predict_outputs(graph, x).values()
    want = gfixed(x, *(np.broadcast_to(v, (1, *shape)) for v in (k, b, i)), rnd, sat)
    np.testing.assert_array_equal(y.reshape(want.shape), want)


@pytest.mark.parametrize(
    "change, error, words",
    [
        (
            {"rnd": "RND_ZERO"},
            UnsupportedError,
            "RND='RND_ZERO' is not supported (supported: TRN, RND, RND_CONV)",
        ),
        ({"sat": "WRAP_SM"}, UnsupportedError, "SAT='WRAP_SM' is not supported"),
        ({"sat": "SAT_ZERO"}, UnsupportedError, "SAT='SAT_ZERO' is not supported"),
        ({"rnd": "FLOOR"}, ModelFileError, "RND='FLOOR' is not an HGQ mode"),
        ({"k": [[2, 1, 0]]}, ModelFileError, "keep_negative must be 0 or 1"),
        ({"b": [[4, -1, 3]]}, ModelFileError, "bits must not be negative"),
        ({"b": [[4, 30, 3]]}, UnsupportedError, "beyond 24 bits"),
        ({"k": [[1, 1, 1]], "b": [[4, 0, 3]], "i": [[2, 0, 1]]}, None, ""),
        (
            {"stored": (1, 4)},
            ModelFileError,
            "has shape (1, 3) in the weights file, but the config implies (1, 4)",
        ),
        (
            {"k": [[1, 1]], "b": [[4, 4]], "i": [[2, 2]]},
            ModelFileError,
            "do not broadcast to its input (None, 3)",
        ),
    ],
)
def test_bad_quantizers_are_refused_in_one_line(tmp_path, capsys, change, error, words):
    args = {"k": [[1, 0, 1]], "b": [[4, 5, 3]], "i": [[2, 1, 1]], "rnd": "TRN", "sat": "WRAP"}
    args.update(change)
    stored = args.pop("stored", None)
    path = quantizer_file(
        tmp_path, (3,), args["k"], args["b"], args["i"], args["rnd"], args["sat"], stored
    )
    if error is None:  # a pruned element (bits 0) is fine: it outputs 0
        (y,) = predict_outputs(load_model(path), np.full((2, 3), 1.5, np.float32)).values()
        assert y[:, 1].tolist() == [0.0, 0.0]
        return
    with pytest.raises(error) as info:
        read_model(path)
    assert words in str(info.value) and "layer 'q'" in str(info.value)
    assert cli.run(["inspect", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0]


# ---------------------------------------------------------------------------------------
# Verilator and the live oracle (slow)
# ---------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("name", ["mlp_wrap", "cnn2d"])
def test_convert_and_sim_cli_bit_exact(tmp_path, name):
    gold = np.load(DATA / f"{name}.npz")
    simulated = convert_and_simulate(tmp_path, DATA / f"{name}.h5", gold["x"][:8])
    np.testing.assert_array_equal(simulated, gold["y"][:8])


@pytest.mark.slow
def test_live_oracle(tmp_path):
    """HGQ itself writes the models and outputs again (same seeds): the committed golden
    outputs are what HGQ gives today, and rtlgen predicts the fresh files exactly."""
    python = os.environ.get("RTLGEN_HGQ1_PYTHON", "/work/venv-hgq1/bin/python")
    if not Path(python).exists():
        pytest.skip("HGQ v1 oracle not installed (see tests/data/hgq1/make_models.py)")
    script = DATA / "make_models.py"
    subprocess.run([python, script, tmp_path], check=True, capture_output=True, timeout=900)
    for name in MODELS:
        fresh, committed = np.load(tmp_path / f"{name}.npz"), np.load(DATA / f"{name}.npz")
        np.testing.assert_array_equal(fresh["y"], committed["y"])
        (y,) = predict_outputs(load_model(tmp_path / f"{name}.h5"), fresh["x"]).values()
        np.testing.assert_array_equal(y.reshape(fresh["y"].shape), fresh["y"])


def _with_layer(tmp_path, entry, weights, shape=(3,)):
    q = {"name": "q", "RND": "TRN", "SAT": "WRAP", "shape": [1, 3], "fusible": False}
    quant = {
        **layer_entry("FixedPointQuantizer", q, module=None),
        "class_name": "HGQ>FixedPointQuantizer",
    }
    widths = {
        name: np.full((1, 3), value, np.int8)
        for name, value in (("keep_negative", 1), ("bits", 6), ("integers", 3))
    }
    return write_full_h5(
        tmp_path / "m.h5", sequential_config([quant, entry], shape), {"q": widths, **weights}
    )


def test_float_activations_and_unary_luts_are_refused_in_one_line(tmp_path, capsys):
    """HGQ computes a tanh in float32 before its quantizer (a table would round twice), and
    its UnaryLUT layers are tables of their own: both refused naming the layer."""
    tanh = layer_entry("Activation", {"name": "act", "activation": "tanh"})
    path = _with_layer(tmp_path, tanh, {"act": {}})
    with pytest.raises(UnsupportedError, match="layer 'act': a float activation in an HGQ proxy"):
        read_model(path)
    lut = {**layer_entry("UnaryLUT", {"name": "lut", "kif_out": [1, 2, 3]}, module=None)}
    lut["class_name"] = "HGQ>UnaryLUT"
    path = _with_layer(tmp_path, lut, {"lut": {}})
    assert cli.run(["inspect", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "layer 'lut'" in err[0] and "unary_lut_max_table_size" in err[0]
