"""Multiple outputs (issue 14): each graph output on its own AXI4-Stream master
(`m_axis_*`, `m1_axis_*` ...) with its own tlast and, for a vector, tuser; an output that
also feeds other layers forks; the manifest names every output (`outputs`) with its ports
and latency; `predict` / `sim --output` write an .npz with one array per output name.

Hardware runs in Amaranth's simulator with an independent random tready per master; the
Verilator runs (through `rtlgen sim`) are marked slow.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from rtlgen import ir
from rtlgen.api import load_model, predict_outputs
from rtlgen.emit import convert, output_timing, predict_timing
from rtlgen.hardware import NetworkTop
from rtlgen.manifest import read_manifest
from rtlgen.passes import PrecisionConfig, lower
from rtlgen.plan import output_names
from rtlgen.quant.errors import RtlgenError
from rtlgen.quant.fixed import FixedType
from rtlgen.quant.quantizers import QuantizedBits, QuantizedRelu
from rtlgen.quant.reference import run_int_outputs
from rtlgen.serialize import load_graph, save_graph

from .cli_run import rtlgen
from .nets import random_inputs, run_top, run_top_outputs

KQ = QuantizedBits(4, 0)


def _dense(rng, name, n_in, n_out, inputs, relu=True):
    return ir.Dense(
        name, (n_in,), (n_out,), inputs=inputs,
        activation=ir.RELU if relu else ir.LINEAR,
        weights=ir.FloatTensor(rng.normal(size=(n_in, n_out)) * 0.5, KQ),
        bias=ir.FloatTensor(rng.normal(size=n_out) * 0.2, KQ),
        out_quantizer=QuantizedRelu(5, 2) if relu else None,
    )


def _conv(rng, name, shape, cout, kernel, inputs, relu=True):
    h, w, cin = shape
    pad = kernel // 2
    return ir.Conv(
        name, shape, (h, w, cout), inputs=inputs,
        weights=ir.FloatTensor(rng.normal(size=(kernel, kernel, cin, cout)) * 0.6, KQ),
        bias=ir.FloatTensor(rng.normal(size=cout) * 0.2, KQ),
        kernel=(kernel, kernel), stride=(1, 1), padding=(pad, pad, pad, pad),
        activation=ir.RELU if relu else ir.LINEAR,
        out_quantizer=QuantizedRelu(4, 1) if relu else QuantizedBits(6, 2),
    )


def two_head_mlp(seed=0) -> ir.ModelGraph:
    """in -> d1 -> {cls: 4 logits, reg: 2 linear values}."""
    rng = np.random.default_rng(seed)
    nodes = [
        ir.Input("in", (6,), (6,)),
        _dense(rng, "d1", 6, 8, ("in",)),
        _dense(rng, "cls", 8, 4, ("d1",), relu=False),
        _dense(rng, "reg", 8, 2, ("d1",), relu=False),
    ]
    graph = ir.ModelGraph("two_head", tuple(nodes), outputs=("cls", "reg"))
    return lower(graph, PrecisionConfig(input=FixedType(8, 4)))


def output_feeds_a_layer(seed=1, first="feat") -> ir.ModelGraph:
    """in -> d1 -> feat (an output) -> cls (an output): ``feat``'s result forks to its own
    master and to ``cls``."""
    rng = np.random.default_rng(seed)
    nodes = [
        ir.Input("in", (5,), (5,)),
        _dense(rng, "d1", 5, 6, ("in",)),
        _dense(rng, "feat", 6, 4, ("d1",)),
        _dense(rng, "cls", 4, 3, ("feat",), relu=False),
    ]
    outputs = ("feat", "cls") if first == "feat" else ("cls", "feat")
    graph = ir.ModelGraph("feeds", tuple(nodes), outputs=outputs)
    return lower(graph, PrecisionConfig(input=FixedType(8, 4)))


def autoencoder_with_head(seed=2) -> ir.ModelGraph:
    """(5, 6, 2) -> c1 -> {recon: a (5, 6, 2) image, c1 -> 2x2 max pool -> flatten -> cls}:
    an image output (30 beats, no tuser) beside a vector head."""
    rng = np.random.default_rng(seed)
    shape = (5, 6, 2)
    nodes = [
        ir.Input("in", shape, shape),
        _conv(rng, "c1", shape, 3, 3, ("in",)),
        _conv(rng, "recon", (5, 6, 3), 2, 3, ("c1",), relu=False),
        ir.Pool("pool", (5, 6, 3), (2, 3, 3), kind=ir.PoolKind.MAX, pool=(2, 2),
                stride=(2, 2), inputs=("c1",)),
        ir.Flatten("flat", (2, 3, 3), (18,), inputs=("pool",)),
        _dense(rng, "cls", 18, 3, ("flat",), relu=False),
    ]
    graph = ir.ModelGraph("ae_head", tuple(nodes), outputs=("recon", "cls"))
    return lower(graph, PrecisionConfig(input=FixedType(6, 3)))


GRAPHS = {
    "two-head-mlp": two_head_mlp,
    "output-feeds-a-layer": output_feeds_a_layer,
    "output-feeds-a-layer-second": lambda: output_feeds_a_layer(first="cls"),
    "autoencoder-with-head": autoencoder_with_head,
}


# ---------------------------------------------------------------------------------------
# hardware
@pytest.mark.parametrize("name", list(GRAPHS))
def test_every_output_bit_exact_under_independent_backpressure(name):
    graph = GRAPHS[name]()
    x = random_inputs(graph, 4, seed=3)
    want = run_int_outputs(graph, x)
    runs = run_top_outputs(graph, x, valid_prob=0.6, ready_prob=0.5, seed=3)
    assert list(runs) == list(graph.outputs)
    for node, run in runs.items():
        np.testing.assert_array_equal(run.outputs, want[node])
        if len(graph.node(node).out_shape) == 1:  # a vector: tuser = arg-max, first max wins
            assert run.classes == [int(np.argmax(y)) for y in want[node]]
        else:
            assert run.classes == []


@pytest.mark.parametrize("name", list(GRAPHS))
def test_each_outputs_latency_and_ii_are_the_modelled_ones(name):
    graph = GRAPHS[name]()
    runs = run_top_outputs(graph, random_inputs(graph, 3, seed=4))
    top = NetworkTop(graph)
    timings = output_timing(top)
    assert timings[0][:2] == predict_timing(top)[:2]
    for (latency, ii), run in zip(timings, runs.values(), strict=True):
        assert run.last_out[0] - run.first_in[0] == latency
        assert np.diff(run.first_in).tolist() == [ii] * 2


def test_ports_per_output_and_the_first_keeps_the_one_output_names():
    top = NetworkTop(autoencoder_with_head())
    ports = set(top.signature.members)
    assert {"m_axis_tdata", "m_axis_tvalid", "m_axis_tready", "m_axis_tlast"} <= ports
    assert "m_axis_tuser" not in ports  # an image output: no arg-max
    assert {"m1_axis_tdata", "m1_axis_tready", "m1_axis_tlast", "m1_axis_tuser"} <= ports
    assert [out.prefix for out in top.outputs] == ["m_axis", "m1_axis"]
    width = top.outputs[0].format.type.width
    assert top.signature.members["m_axis_tdata"].shape.width == 2 * width  # one pixel a beat


def test_run_top_still_gives_the_first_output():
    graph = two_head_mlp()
    x = random_inputs(graph, 3)
    np.testing.assert_array_equal(run_top(graph, x).outputs, run_int_outputs(graph, x)["cls"])


def test_output_names_are_plain_unique_identifiers():
    graph = two_head_mlp()
    nodes = list(graph.nodes)
    nodes[2] = nodes[2].replace(source="dense+head/out")
    nodes[3] = nodes[3].replace(source="9head/out")
    renamed = ir.ModelGraph("g", tuple(nodes), outputs=graph.outputs)
    assert output_names(renamed) == ("head_out", "output_9head_out")
    nodes[3] = nodes[3].replace(source="head/out")
    assert output_names(ir.ModelGraph("g", tuple(nodes), outputs=graph.outputs)) == (
        "head_out", "head_out_2",
    )


def test_saved_graph_keeps_its_outputs(tmp_path):
    graph = two_head_mlp()
    save_graph(graph, tmp_path / "graph.npz")
    loaded = load_graph(tmp_path / "graph.npz")
    x = random_inputs(graph, 3)
    assert loaded.outputs == graph.outputs
    for node, y in run_int_outputs(loaded, x).items():
        np.testing.assert_array_equal(y, run_int_outputs(graph, x)[node])


# ---------------------------------------------------------------------------------------
# manifest and files
@pytest.fixture(scope="module")
def design(tmp_path_factory):
    return convert(autoencoder_with_head(), tmp_path_factory.mktemp("mo") / "design")


def test_manifest_names_each_output_with_its_ports_and_latency(design):
    manifest = read_manifest(design.outdir)
    assert manifest == design.manifest
    assert manifest.output_names == ("recon", "cls")
    recon, cls = manifest.outputs
    assert manifest.output == recon and recon.prefix == "m_axis" and cls.prefix == "m1_axis"
    assert recon.shape == (5, 6, 2) and recon.classes is None and recon.beats_per_sample == 30
    assert cls.shape == (3,) and cls.classes == 3 and cls.tuser_width == 2
    assert recon.latency_cycles == manifest.latency_cycles
    top = NetworkTop(autoencoder_with_head())
    assert [(o.latency_cycles, o.ii_cycles) for o in manifest.outputs] == list(output_timing(top))
    report = (design.outdir / "REPORT.md").read_text()
    assert "output `cls`" in report and "`m1_axis_tuser` (2 bits)" in report


def _tampered(design, tmp_path, edit):
    import shutil

    outdir = tmp_path / "copy"
    shutil.copytree(design.outdir, outdir)
    raw = json.loads((outdir / "manifest.json").read_text())
    edit(raw)
    (outdir / "manifest.json").write_text(json.dumps(raw))
    return outdir


def _set_first_latency(raw, cycles):
    raw["output"]["latency_cycles"] = raw["outputs"][0]["latency_cycles"] = cycles


@pytest.mark.parametrize(
    "edit,fragment",
    [
        (lambda m: m["outputs"][1].update(prefix="m_axis"), "outputs[1].prefix is 'm_axis', expected 'm1_axis'"),
        (lambda m: m["outputs"][1].update(prefix="m2_axis"), "expected 'm1_axis'"),
        (lambda m: m["outputs"][1].update(name="recon"), "names two outputs"),
        (lambda m: m["outputs"][1].update(name="a b"), "outputs[1].name is 'a b'"),
        (lambda m: m["outputs"][1].update(name=7), "outputs[1].name is 7"),
        (lambda m: m["outputs"][0].update(name="other"), "output is not the same as outputs[0]"),
        (lambda m: m["outputs"][1].update(latency_cycles=-1), "outputs[1].latency_cycles"),
        (lambda m: m["outputs"][1].update(tdata_width=5), "outputs[1].tdata_width 5"),
        (lambda m: _set_first_latency(m, 1), "outputs[0].latency_cycles 1 is not latency_cycles"),
        (lambda m: m.update(outputs=[]), "outputs has 0 items"),
        (lambda m: m.update(outputs=[m["output"]] * 65), "outputs has 65 items"),
        (lambda m: m.update(outputs={}), "outputs is {...}"),
    ],
)
def test_tampered_outputs_are_refused_in_one_line(design, tmp_path, edit, fragment):
    with pytest.raises(RtlgenError) as error:
        read_manifest(_tampered(design, tmp_path, edit))
    message = str(error.value)
    assert "\n" not in message and fragment in message, message


def test_a_manifest_without_outputs_reads_as_one_output(design, tmp_path):
    def old(raw):
        del raw["outputs"]
        for key in ("name", "prefix", "latency_cycles", "ii_cycles"):
            del raw["output"][key]

    manifest = read_manifest(_tampered(design, tmp_path, old))
    assert len(manifest.outputs) == 1 and manifest.output_names == ("output",)
    assert manifest.output.prefix == "m_axis" and manifest.output.shape == (5, 6, 2)


def test_vectors_need_one_array_per_output(design):
    from rtlgen.sim_tb.tb_manifest import ManifestError, check_vectors

    manifest = read_manifest(design.outdir)
    graph = autoencoder_with_head()
    x = random_inputs(graph, 2)
    ys = run_int_outputs(graph, x)
    check_vectors(manifest, x, ys)
    with pytest.raises(ManifestError, match="2 outputs .recon, cls.; give one array per output"):
        check_vectors(manifest, x, ys["recon"])
    with pytest.raises(ManifestError, match="arrays named \\['recon'\\], expected one per output"):
        check_vectors(manifest, x, {"recon": ys["recon"]})
    with pytest.raises(ManifestError, match="y_int\\['cls'\\]: shape \\(2, 4\\)"):
        check_vectors(manifest, x, {**ys, "cls": np.zeros((2, 4), dtype=np.int64)})


def test_predict_writes_an_npz_per_output_name(design, tmp_path):
    graph = load_model(design.outdir)
    x = graph.input.out_type.to_float(random_inputs(graph, 3, seed=5))
    np.save(tmp_path / "x.npy", x)
    result = rtlgen("predict", design.outdir, "-i", tmp_path / "x.npy", "-o", tmp_path / "y.npz")
    assert result.returncode == 0, result.stderr
    with np.load(tmp_path / "y.npz") as arrays:
        assert sorted(arrays.files) == ["cls", "recon"]
        want = predict_outputs(graph, x)
        np.testing.assert_array_equal(arrays["recon"], want["recon"].reshape(3, -1))
        np.testing.assert_array_equal(arrays["cls"], want["cls"])
    result = rtlgen("predict", design.outdir, "-i", tmp_path / "x.npy", "-o", tmp_path / "c",
                    "--classes")
    assert result.returncode == 0, result.stderr
    with np.load(tmp_path / "c", allow_pickle=False) as arrays:  # no .npz appended
        np.testing.assert_array_equal(arrays["cls"], np.argmax(want["cls"], axis=1))


# ---------------------------------------------------------------------------------------
# Keras Functional models saved by TensorFlow
def keras_two_head(path, seed=0):
    """A QKeras two-head MLP: a shared hidden layer, a 4-class head (softmax removed: the
    logits are the output) and a 2-value regression head."""
    pytest.importorskip("qkeras")  # the oracle: QKeras 0.9 on TensorFlow 2.15 (3.11) or 2.21 + tf-keras (3.12+)
    import tensorflow as tf
    from qkeras import QActivation, QDense

    tf.keras.utils.set_random_seed(seed)
    q = "quantized_bits(4,0,alpha=1)"
    x = tf.keras.Input((6,), name="x")
    h = QDense(8, kernel_quantizer=q, bias_quantizer=q, name="hidden")(x)
    h = QActivation("quantized_relu(5,2)", name="hidden_relu")(h)
    cls = QDense(4, kernel_quantizer=q, bias_quantizer=q, name="cls")(h)
    reg = QDense(2, kernel_quantizer=q, bias_quantizer=q, name="reg")(h)
    model = tf.keras.Model(x, [cls, reg], name="two_head")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save(path)
    return model


def test_a_no_op_output_layer_names_its_output_as_keras_does(tmp_path):
    """Outputs through a Dropout, a linear Activation or a softmax layer (no node of their
    own) are named after that layer, as Keras names the model's outputs; a layer they
    pass on that is also used elsewhere still computes the same."""
    from tests.models import write_weights_h5

    from .test_multi_input import _functional

    dense = {"use_bias": True, "activation": "linear"}
    config = _functional(
        [("x", [4])],
        [
            ("hidden", "Dense", {**dense, "units": 5, "activation": "relu"}, ["x"]),
            ("reg", "Dense", {**dense, "units": 2}, ["hidden"]),
            ("reg_out", "Dropout", {"rate": 0.5}, ["reg"]),
            ("cls", "Dense", {**dense, "units": 3}, ["hidden"]),
            ("probs", "Activation", {"activation": "softmax"}, ["cls"]),
            ("feat", "Activation", {"activation": "linear"}, ["hidden"]),
        ],
        ["reg_out", "probs", "feat"],
        keras3=False,
    )
    (tmp_path / "m.json").write_text(json.dumps(config))
    rng = np.random.default_rng(2)
    shapes = {"hidden": (4, 5), "reg": (5, 2), "cls": (5, 3)}
    weights = {
        name: {"kernel": rng.normal(size=shape), "bias": rng.normal(size=shape[1])}
        for name, shape in shapes.items()
    }
    write_weights_h5(tmp_path / "w.h5", weights)
    graph = load_model(tmp_path / "m.json", tmp_path / "w.h5", input_type="fixed<8,4>")
    assert output_names(graph) == ("reg_out", "probs", "feat")
    assert graph.softmax_outputs == (graph.outputs[1],)  # the logits of 'cls' leave the hardware
    x = random_inputs(graph, 4, seed=1) / 16.0
    hidden = np.maximum(x @ weights["hidden"]["kernel"] + weights["hidden"]["bias"], 0)
    ours = predict_outputs(graph, x)
    want = hidden @ weights["reg"]["kernel"] + weights["reg"]["bias"]
    np.testing.assert_allclose(ours["reg_out"], want, atol=2**-6)
    np.testing.assert_allclose(ours["feat"], hidden, atol=2**-6)


def test_keras_two_head_model_predicts_like_keras_per_head(tmp_path):
    model = keras_two_head(tmp_path / "m.h5")
    graph = load_model(tmp_path / "m.h5", input_type="fixed<8,4>")
    assert output_names(graph) == ("cls", "reg")
    x = random_inputs(graph, 64, seed=6) / 16.0  # exact in fixed<8,4>
    keras = model.predict(x, verbose=0)
    ours = predict_outputs(graph, x)
    # QKeras computes each head in float32 on quantized weights: exact for these widths
    np.testing.assert_array_equal(ours["cls"], keras[0])
    np.testing.assert_array_equal(ours["reg"], keras[1])
    x_int = random_inputs(graph, 3, seed=7)
    runs = run_top_outputs(graph, x_int, valid_prob=0.7, ready_prob=0.5)
    for node, y in run_int_outputs(graph, x_int).items():
        np.testing.assert_array_equal(runs[node].outputs, y)


def test_softmax_on_one_head_stays_a_marker_of_that_head(tmp_path):
    """A classification head with a softmax next to a regression head: that head's logits
    (and arg-max) leave the hardware, the other head is untouched; the manifest says which."""
    tf = pytest.importorskip("tensorflow")

    from rtlgen.emit import convert

    tf.keras.utils.set_random_seed(2)
    x = tf.keras.Input((4,), name="x")
    cls = tf.keras.layers.Dense(3, activation="softmax", name="cls")(x)
    reg = tf.keras.layers.Dense(2, name="reg")(x)
    model = tf.keras.Model(x, [cls, reg])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save(tmp_path / "m.h5")
    graph = load_model(tmp_path / "m.h5", input_type="fixed<8,4>")
    assert graph.softmax_outputs == ("cls",) and graph.softmax
    inputs = random_inputs(graph, 32, seed=1) / 16.0
    probabilities, regression = model.predict(inputs, verbose=0)
    ours = predict_outputs(graph, inputs)
    logits = ours["cls"] - ours["cls"].max(axis=1, keepdims=True)
    softmax = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    # float model: 16-bit weights, 10 result fraction bits
    np.testing.assert_allclose(softmax, probabilities, atol=2**-8)
    np.testing.assert_allclose(ours["reg"], regression, atol=2**-8)
    manifest = convert(graph, tmp_path / "d").manifest
    assert [o.softmax_in_model for o in manifest.outputs] == [True, False]


@pytest.mark.slow
def test_keras_two_head_model_bit_exact_in_verilator_through_the_cli(tmp_path):
    keras_two_head(tmp_path / "m.h5")
    out = tmp_path / "design"
    result = rtlgen("convert", tmp_path / "m.h5", "-o", out, "--input-type", "fixed<8,4>")
    assert result.returncode == 0, result.stderr
    graph = load_model(out)
    x = graph.input.out_type.to_float(random_inputs(graph, 6, seed=8))
    np.save(tmp_path / "x.npy", x)
    for backpressure in ("0.4", "0"):
        result = rtlgen("sim", out, "-i", tmp_path / "x.npy", "-o", tmp_path / "y.npz",
                        "--backpressure", backpressure, timeout=900)
        assert result.returncode == 0, result.stdout + result.stderr
    sim = json.loads((out / "sim" / "sim_result.json").read_text())
    manifest = read_manifest(out)
    assert sim["passed"] and [o["name"] for o in sim["outputs"]] == ["cls", "reg"]
    for measured, spec in zip(sim["outputs"], manifest.outputs, strict=True):
        assert measured["latency_cycles"] == spec.latency_cycles
        assert measured["ii_cycles"] == spec.ii_cycles
    with np.load(tmp_path / "y.npz") as arrays:
        want = predict_outputs(graph, x)
        for name in ("cls", "reg"):
            np.testing.assert_array_equal(arrays[name], want[name])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["autoencoder-with-head", "output-feeds-a-layer"])
def test_multi_output_graphs_bit_exact_in_verilator(name, tmp_path, tmp_path_factory):
    from rtlgen.sim_tb import simulate

    graph = GRAPHS[name]()
    design = convert(graph, tmp_path / "design")
    x = random_inputs(graph, 4, 1)
    want = dict(zip(design.manifest.output_names, run_int_outputs(graph, x).values(), strict=True))
    build_root = tmp_path_factory.mktemp("verilator_cache")
    result = simulate(design.outdir, x, want, backpressure=0.4, seed=2, build_root=build_root)
    assert result.passed, result.report
    result = simulate(design.outdir, x, want, build_root=build_root)
    assert result.passed, result.report
    for measured, spec in zip(result.outputs, design.manifest.outputs, strict=True):
        assert measured["latency_cycles"] == spec.latency_cycles
    for out_name, y in want.items():
        np.testing.assert_array_equal(result.y_sim_outputs[out_name], y)
