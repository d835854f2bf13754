"""HGQ2 models read from .keras files (rtlgen/frontend/hgq2.py, rtlgen/ops/hgq2.py) against
HGQ2's own outputs.

The golden files in tests/data/hgq2/ were written by tests/data/make_hgq2_models.py in the
oracle venv (keras 3.15.1, hgq2 0.2.0, JAX backend); `test_live_oracle` writes them again
and compares when that venv is there (RTLGEN_HGQ2_PYTHON, default /work/venv-hgq2/bin/python,
or HGQ2 importable here). HGQ2 is bit-accurate by design, so every comparison is exact.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rtlgen import ir
from rtlgen.api import load_model, predict_outputs
from rtlgen.frontend.hgq2 import QuantizerSpec, QuantizerWidths, quantize_float
from rtlgen.ops.hgq2 import FixedQuantize, FunctionTable, function_table_reference, quantize_node
from rtlgen.quant.errors import RtlgenWarning, UnsupportedError
from rtlgen.quant.fixed import FixedType

from .cli_run import convert_and_simulate, rtlgen
from .ops.network_checks import bit_exact_in_simulator, timing_matches_model

DATA = Path(__file__).parents[1] / "data" / "hgq2"
MODELS = (
    "mlp_perweight",
    "mlp_uniform",
    "mlp_modes",
    "cnn2d",
    "cnn1d",
    "bench_perweight",
    "bench_uniform",
    "einsum_bn",
    "seq_pool",
    "residual",
    "conv_per_pixel",
    "bare_quantizer",
    "einsum_bn_fused",
    "lut_act",
    "lut_funcs",
    "bn_dense",
    "lut_channels",
    "lut_conv",
    "lut_affine_act",
    "lut_affine",
)
INPUT_TYPE = "fixed<16,6>"  # the saved inputs are multiples of 1/16 in [-6, 6)


def _cases() -> dict[str, dict[str, np.ndarray]]:
    data = np.load(DATA / "quantizers_expected.npz")
    cases: dict[str, dict[str, np.ndarray]] = {}
    for key in data.files:
        case, name = key.rsplit("/", 1)
        cases.setdefault(case, {})[name] = data[key]
    return cases


def _widths(case: str, arrays: dict[str, np.ndarray]) -> QuantizerWidths:
    q_type, place, rnd, ovf = case.split("-")
    spec = QuantizerSpec(case, q_type, rnd, ovf, place == "weight", True)
    i = np.round(arrays["i"].astype(np.float64))
    w = arrays["w"].astype(np.float64)
    return QuantizerWidths(spec, arrays["k"].astype(np.float64), i, w if q_type == "kif" else w - i)


CASES = _cases()


@pytest.mark.parametrize("case", sorted(CASES))
def test_quantizer_float_semantics_match_hgq2(case):
    """Every q_type x place x rounding x overflow, per-element widths with k 0/1, i in
    -2..3, f (or b) small, ties included: equal to HGQ2's quantizer bit for bit."""
    arrays = CASES[case]
    got = quantize_float(arrays["x"], _widths(case, arrays))
    np.testing.assert_array_equal(got, arrays["y"])


@pytest.mark.parametrize(
    "case",
    sorted(c for c in CASES if "datalane" in c and c.split("-")[2] in ("RND", "RND_CONV", "TRN")),
)
def test_integer_quantize_node_matches_hgq2(case):
    """The integer FixedQuantize (per-channel widths: a flat vector's elements) equals
    HGQ2's float quantizer on inputs exact in fixed<20,8>, and its output type holds it."""
    arrays = CASES[case]
    widths = _widths(case, arrays)
    in_type = FixedType(20, 12, True)
    x = np.clip(np.round(arrays["x"] * 2.0**12), in_type.min_int, in_type.max_int).astype(np.int64)
    node = quantize_node("q", (64,), widths, "q")
    graph = ir.ModelGraph("q", (ir.Input("x", (64,), (64,), out_type=in_type), node))
    from rtlgen.passes import infer_precision
    from rtlgen.quant.reference import run_int

    lowered = infer_precision(graph)
    out_type = lowered.nodes[-1].out_type
    y = run_int(lowered, x)
    want = quantize_float((x * 2.0**-12).astype(np.float32), widths)
    np.testing.assert_array_equal(out_type.to_float(y), want)


def _predict(name: str) -> tuple[np.ndarray, np.ndarray, ir.ModelGraph]:
    expected = np.load(DATA / f"{name}_expected.npz")
    graph = load_model(DATA / f"{name}.keras", input_type=INPUT_TYPE)
    (y,) = predict_outputs(graph, expected["x"]).values()
    return y.reshape(expected["y"].shape), expected["y"], graph


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.filterwarnings("ignore:.*float32 ulps")
def test_model_predicts_exactly_as_hgq2(name):
    got, want, _ = _predict(name)
    np.testing.assert_array_equal(got, want)


def test_table_activation_nodes():
    """QUnaryFunctionLUT: its input quantizer, then one exact table (input: the quantizer's
    output type) holding HGQ2's output quantizer; QBatchNormDense: one Dense."""
    graph = load_model(DATA / "lut_act.keras", input_type=INPUT_TYPE)
    ops = [(n.name, n.op) for n in graph.nodes]
    assert ops[3:5] == [("sig_iq", "fixed_quantize"), ("sig", "hgq2_table")]
    by_name = {n.name: n for n in graph.nodes}
    assert isinstance(by_name["th"], FunctionTable) and by_name["th"].function == "tanh"
    assert (by_name["th"].round_mode, by_name["th"].overflow_mode) == ("RND_CONV", "SAT")
    graph = load_model(DATA / "bn_dense.keras", input_type=INPUT_TYPE)
    ops = [(n.name, n.op) for n in graph.nodes]
    assert ops[1:3] == [("bnd_iq", "fixed_quantize"), ("bnd", "dense")]


def test_every_table_entry_matches_hgq2():
    """lut_funcs: each supported function's table on all 256 codes of its input (HGQ2's
    outputs for every code), every rounding/overflow mode among them: equal; the one entry
    within a few float32 ulps of a rounding boundary (silu(5.9375) = 757.99994 / 128,
    truncated) is the only one warned about, and HGQ2 (JAX) agrees there too."""
    with pytest.warns(RtlgenWarning) as record:
        got, want, graph = _predict("lut_funcs")
    messages = [str(w.message) for w in record if "ulps" in str(w.message)]
    assert len(messages) == 1 and "layer 't_silu': 1 of the 256 entries" in messages[0]
    np.testing.assert_array_equal(got, want)
    tables = [n for n in graph.nodes if isinstance(n, FunctionTable)]
    assert len(tables) == 14 and len({n.function for n in tables}) == 14
    x = np.load(DATA / "lut_funcs_expected.npz")["x"]
    assert np.unique(x).size == 256  # every code of fixed<8,4>


@pytest.mark.parametrize("name, last", [("softmax_head", "logits"), ("softmax_iq", "softmax_iq")])
def test_softmax_emits_logits_and_hgq2s_most_probable_class(name, last):
    """A final QSoftmax is a marker, as Keras's softmax: rtlgen predicts HGQ2's logits
    exactly (softmax_iq: after the QSoftmax's own input quantizer, per class widths), and
    their arg-max has HGQ2's largest (table-computed) probability. softmax_iq (stable=False,
    default widths) has samples whose probabilities all round to 0: ties, still a maximum."""
    expected = np.load(DATA / f"{name}_expected.npz")
    graph = load_model(DATA / f"{name}.keras", input_type=INPUT_TYPE)
    assert graph.softmax and graph.nodes[-1].name == last
    (logits,) = predict_outputs(graph, expected["x"]).values()
    np.testing.assert_array_equal(logits.reshape(expected["logits"].shape), expected["logits"])
    probabilities = expected["y"]
    chosen = probabilities[np.arange(len(probabilities)), np.argmax(logits, axis=1)]
    np.testing.assert_array_equal(chosen, probabilities.max(axis=1))
    assert (np.ptp(probabilities, axis=1) > 0).mean() > 0.5  # mostly not constant


def test_ambiguous_table_entries():
    """An entry within a few float32 ulps of a rounding boundary is ambiguous (HGQ2's float32
    function could round either way); an exact value (f(0), or softsign's exact quotients)
    is not, even on a tie."""
    from rtlgen.frontend.hgq2 import ambiguous, function_table

    spec = QuantizerSpec("q", "kbi", "RND", "SAT", False, True)
    widths = QuantizerWidths(spec, np.ones(1), np.ones(1), np.full(1, 2.0))
    values = np.float32([0.125, np.nextafter(np.float32(0.125), np.float32(1)), 0.3, 0.25])
    np.testing.assert_array_equal(ambiguous(values, widths), [True, True, False, False])
    coarse = QuantizerWidths(spec, np.ones(1), np.ones(1), np.zeros(1))  # 0.5 is a tie
    _, risky = function_table("sigmoid", np.array([-1, 0, 1]), 0, coarse)
    np.testing.assert_array_equal(risky, [False, False, False])  # sigmoid(0) = 0.5 exactly
    _, risky = function_table("softsign", np.array([1]), 0, coarse)  # 1/2: exact, a tie
    assert not risky.any()


def test_softmax_wrap_exp_input_warns(tmp_path):
    """HGQ2's default WRAP exp-table input (its variables then f, k, i, i_decay_speed)."""

    def wrap(conf):
        conf["config"]["overflow_mode"] = "WRAP"
        return conf

    def wrap_variables(f):
        group = f["layers/q_softmax/exp_table/iq/quantizer/vars"]
        i, frac, k = (group[str(n)][()] for n in range(3))
        for n in range(3):
            del group[str(n)]
        for n, value in enumerate((frac, k, i, np.float32(0.01))):
            group[str(n)] = value

    edited = _edited_archive(tmp_path, "softmax_head.keras", "softmax", "exp_iq_conf", wrap)
    path = _edited_weights(tmp_path, edited, wrap_variables)
    with pytest.warns(RtlgenWarning, match=r"overflow_mode=WRAP.*max\(x\) - x stays below"):
        load_model(path, input_type=INPUT_TYPE)


def _lambda(_):
    return {"value": ["4wEAAAAAAAAA", None, None]}


def _python_function(_):
    return {"module": "builtins", "class_name": "function", "config": "exp"}


@pytest.mark.parametrize(
    "source, layer, key, change, words",
    [
        ("lut_act.keras", "sig", "activation", _lambda, "a Python lambda (bytecode)"),
        ("lut_act.keras", "sig", "activation", _python_function, "the Python function 'exp'"),
        ("lut_act.keras", "sig", "activation", lambda _: "sin", "'sin' is not supported"),
        ("lut_act.keras", "sig", "enable_oq", lambda _: False, "enable_oq=False"),
        ("lut_affine_act.keras", "th", "activation", _lambda, "a Python lambda (bytecode)"),
        ("lut_affine_act.keras", "th", "activation", lambda _: "cos", "'cos' is not supported"),
        ("softmax_head.keras", "softmax", "input_scaler", lambda _: -1.0, "input_scaler=-1.0"),
        ("softmax_head.keras", "softmax", "axes", lambda _: [0], "axes [0]"),
        ("softmax_head.keras", "softmax", "enable_oq", lambda _: True, "enable_oq=True"),
    ],
)
def test_unsupported_table_and_softmax_options_refused_in_one_line(
    tmp_path, source, layer, key, change, words
):
    path = _edited_archive(tmp_path, source, layer, key, change)
    with pytest.raises(UnsupportedError) as info:
        load_model(path, input_type=INPUT_TYPE)
    message = str(info.value)
    assert "\n" not in message and f"layer '{layer}'" in message and words in message


@pytest.mark.filterwarnings("ignore:.*overflow_mode=WRAP")
def test_softmax_before_another_layer_refused_in_one_line(tmp_path):
    with pytest.raises(UnsupportedError) as info:
        load_model(DATA / "softmax_mid.keras", input_type=INPUT_TYPE)
    message = str(info.value)
    assert "\n" not in message and "layer 'softmax' (hgq>QSoftmax)" in message
    assert "only supported as the last layer" in message
    run = rtlgen("convert", DATA / "softmax_mid.keras", "-o", tmp_path / "out")
    errors = [line for line in run.stderr.splitlines() if not line.startswith("warning:")]
    assert run.returncode == 2 and len(errors) == 1 and "Traceback" not in run.stderr


def test_affined_tables_apply_scale_and_bias_between_the_quantizers():
    """QAffinedUnaryFunctionLUT: ``oq(f(iq(x) * scale + bias))``, the layer's float32 scale
    and bias in the table node (exact against HGQ2: the model tests); the same tables
    without them predict something else."""
    got, want, graph = _predict("lut_affine")
    tables = [n for n in graph.nodes if isinstance(n, FunctionTable)]
    affine = (  # make_hgq2_models.LUT_AFFINE
        ("tanh", 0.7391234, -0.3127771), ("sigmoid", 1.3317, 0.52913), ("silu", 0.61803, 0.1),
        ("softsign", 1.1, -0.77), ("exponential", 0.4142, -1.234567), ("gelu", 0.93, 0.0123),
    )  # fmt: skip
    assert [(n.function, n.input_scale, n.input_bias) for n in tables] == [
        (name, float(np.float32(s)), float(np.float32(b))) for name, s, b in affine
    ]
    plain = graph.with_nodes(
        [n.replace(input_scale=1.0, input_bias=0.0) if n in tables else n for n in graph.nodes]
    )
    x = np.load(DATA / "lut_affine_expected.npz")["x"]
    (wrong,) = predict_outputs(plain, x).values()
    assert np.mean(wrong.reshape(want.shape) != want) > 0.5


def test_affined_input_is_one_fused_multiply_add():
    """HGQ2's compiled predict (XLA on the CPU) computes ``x * scale + bias`` as one fused
    multiply-add: `affined_inputs` gives that (the exact value rounded once to float32)
    and the two-rounding value of eager float32 ops; a table entry where the two quantize
    differently is counted as ambiguous (here: a linear table finer than float32)."""
    from fractions import Fraction

    from rtlgen.frontend.hgq2 import affined_inputs, function_table

    codes = np.arange(-128, 128)
    scale, bias = float(np.float32(0.7391234)), float(np.float32(-0.3127771))
    fused, unfused = affined_inputs(codes, 4, scale, bias)
    exact = [float(np.float32(float(c * Fraction(scale) / 16 + Fraction(bias)))) for c in codes]
    np.testing.assert_array_equal(fused, exact)  # no float64 midpoint here: rounded once
    x32 = (codes / 16).astype(np.float32)
    two = ((x32 * np.float32(scale)).astype(np.float32) + np.float32(bias)).astype(np.float32)
    np.testing.assert_array_equal(unfused, two)
    assert np.any(fused != unfused)
    spec = QuantizerSpec("q", "kif", "RND", "SAT", False, True)
    fine = QuantizerWidths(spec, np.ones(1), np.full(1, 4.0), np.full(1, 24.0))
    out, risky = function_table("linear", codes, 4, fine, (scale, bias))
    np.testing.assert_array_equal(out, quantize_float(fused.astype(np.float32), fine))
    differ = out != quantize_float(unfused.astype(np.float32), fine)
    assert np.any(differ)
    np.testing.assert_array_equal(risky, differ)


def test_per_channel_table_widths_build_a_table_per_channel():
    """Output widths per element of a vector (lut_channels) or per channel of an image
    (lut_conv): a table per distinct width, in one output type (exact: the model tests)."""
    graph = load_model(DATA / "lut_channels.keras", input_type=INPUT_TYPE)
    node = next(n for n in graph.nodes if isinstance(n, FunctionTable))
    assert len(set(node.widths())) > 1 and "exact tables" in node.describe()


@pytest.mark.parametrize("in_type", [FixedType(5, 2, True), FixedType(9, 5, True)])
def test_channel_tables_component_random_widths(in_type):
    """Tables per channel (some channels sharing one, a pruned width among them) as case
    statements (5 input bits) or ROMs (9) on a (3, 6) stream, random valid/ready: equal to
    the reference, which is HGQ2's quantizer on the correctly rounded function."""
    from rtlgen.frontend.hgq2 import function_table
    from rtlgen.passes import lower
    from rtlgen.quant.activations import input_codes

    k = np.array([1, 1, 0, 1, 1, 1])
    i = np.array([1, 1, 0, 2, -2, 0])  # channel 4: k + i + f = 0, pruned (all 0)
    f = np.array([4, 4, 3, 6, 1, 0])
    node = FunctionTable(
        "t",
        (3, 6),
        (3, 6),
        function="gelu",
        keep_negative=ir.QTensor(k, FixedType(1, 0, False)),
        integer_bits=ir.QTensor(i, FixedType(8, 0, True)),
        frac_bits=ir.QTensor(f, FixedType(8, 0, True)),
        round_mode="RND_CONV",
        overflow_mode="SAT",
    )
    graph = lower(ir.ModelGraph("t", (ir.Input("x", (3, 6), (3, 6), out_type=in_type), node)))
    run = bit_exact_in_simulator(graph, n=4, seed=11)
    assert run.outputs.size
    table = graph.nodes[-1]
    got = function_table_reference(table, input_codes(in_type)[:, None].repeat(6, 1), in_type)
    spec = QuantizerSpec("q", "kif", "RND_CONV", "SAT", False, True)
    for c in range(6):
        widths = QuantizerWidths(spec, *(np.array([float(a[c])]) for a in (k, i, f)))
        want, _ = function_table("gelu", input_codes(in_type), in_type.frac, widths)
        np.testing.assert_array_equal(table.out_type.to_float(got[:, c]), want)


def test_table_without_input_quantizer_too_wide_refused_in_one_line(tmp_path):
    """enable_iq=False: the table would take the dense's 20-bit accumulator."""
    path = _edited_archive(tmp_path, "lut_act.keras", "sig", "enable_iq", lambda _: False)
    run = rtlgen("convert", path, "-o", tmp_path / "out", "--input-type", INPUT_TYPE)
    assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1
    assert "layer 'sig'" in run.stderr and "sigmoid table of a 20-bit input" in run.stderr
    assert "Traceback" not in run.stderr


def test_fused_bias_near_a_rounding_boundary_warns():
    """QBatchNormDense's float32 fused bias (HGQ2 sums moving_mean @ kernel in float32):
    a value within a few ulps of the bias quantizer's rounding boundary is warned about."""
    from rtlgen.frontend.keras_config import KerasLayer
    from rtlgen.ops.hgq2 import _warn_fused_bias

    layer = KerasLayer("hgq>QBatchNormDense", "bnd", {}, None)
    spec = QuantizerSpec("q", "kbi", "RND", "WRAP", False, True)
    widths = QuantizerWidths(spec, np.ones(2), np.full(2, 3.0), np.full(2, 2.0))
    with pytest.warns(RtlgenWarning, match="1 fused bias value"):
        _warn_fused_bias(layer, np.float32([0.125, 0.3]), widths)


@pytest.mark.parametrize(
    "source, variables, widths, where, words",
    [
        (
            "softmax_head.keras",
            "layers/q_softmax/exp_table/oq/quantizer/vars",
            np.array([[6.0, 7.0, 8.0, 6.0, 7.0]]),
            "layer 'softmax' (hgq>QSoftmax) exp_oq_conf",
            "vary by class",
        ),
        (
            "lut_conv.keras",
            "layers/q_unary_function_lut/oq/quantizer/vars",
            np.arange(27.0).reshape(1, 3, 3, 3) % 5 + 4,
            "layer 'act' (hgq>QUnaryFunctionLUT) oq_conf",
            "vary with the position",
        ),
    ],
)
def test_varying_table_widths_refused_in_one_line(tmp_path, source, variables, widths, where, words):
    """Widths of a QSoftmax exp table that differ by class (its probabilities would not
    follow the logits), of a table activation that differ by pixel (a table per channel
    at most)."""

    def replace_bits(f):
        del f[variables]["0"]
        f[variables]["0"] = widths.astype("float32")

    path = _edited_weights(tmp_path, source, replace_bits)
    with pytest.raises(UnsupportedError) as info:
        load_model(path, input_type=INPUT_TYPE)
    message = str(info.value)
    assert "\n" not in message and where in message and words in message


def test_json_and_weights_h5(tmp_path):
    """The model JSON (config.json, what to_json() writes) + the weights in the v3 layout
    (model.weights.h5, what save_weights('*.weights.h5') writes) read as the archive."""
    import zipfile

    with zipfile.ZipFile(DATA / "residual.keras") as archive:
        (tmp_path / "m.json").write_bytes(archive.read("config.json"))
        (tmp_path / "m.weights.h5").write_bytes(archive.read("model.weights.h5"))
    graph = load_model(
        tmp_path / "m.json", weights=tmp_path / "m.weights.h5", input_type=INPUT_TYPE
    )
    expected = np.load(DATA / "residual_expected.npz")
    (y,) = predict_outputs(graph, expected["x"]).values()
    np.testing.assert_array_equal(y.reshape(expected["y"].shape), expected["y"])


def test_per_weight_widths_are_exact_and_pruned():
    """Each weight keeps exactly its own width (one common type at the largest f), and a
    weight whose width trained to 0 is a zero mantissa (no hardware)."""
    import zipfile

    import h5py

    graph = load_model(DATA / "mlp_perweight.keras", input_type=INPUT_TYPE)
    dense = [n for n in graph.nodes if isinstance(n, ir.Dense)]
    assert [n.name for n in dense] == ["fc1", "fc2"]
    with (
        zipfile.ZipFile(DATA / "mlp_perweight.keras") as archive,
        archive.open("model.weights.h5") as blob,
    ):
        f = h5py.File(blob)
        b = np.round(f["layers/q_dense/kq/quantizer/vars/0"][()])
        i = np.round(f["layers/q_dense/kq/quantizer/vars/1"][()])
    kernel = dense[0].weights
    assert kernel.type.frac == int((b - i).max())
    values = kernel.type.to_float(kernel.mantissa)
    # every weight is a multiple of its own 2**-f and fits its own b + 1 bits
    scaled = values * 2.0 ** (b - i)
    np.testing.assert_array_equal(scaled, np.round(scaled))
    assert np.all(np.abs(scaled) < 2.0**b + 1)
    assert np.all(kernel.mantissa[b == 0] == 0) and (b == 0).any()
    assert np.count_nonzero(kernel.mantissa) < kernel.mantissa.size


def test_input_quantizer_nodes():
    """An iq becomes a FixedQuantize before the layer; an oq one after it."""
    graph = load_model(DATA / "mlp_modes.keras", input_type=INPUT_TYPE)
    names = [(n.name, n.op) for n in graph.nodes]
    assert ("trn_sat_iq", "fixed_quantize") in names
    assert ("conv_sym_oq", "fixed_quantize") in names
    quantizers = {n.name: n for n in graph.nodes if isinstance(n, FixedQuantize)}
    assert quantizers["conv_sym_oq"].keep_negative.mantissa.max() == 0  # k0=False


def test_einsum_batchnorm_pooling_nodes():
    """QEinsumDense reads as a Dense (a 1x1 convolution on a sequence), QBatchNormalization
    as a ScaleShift with exact constants, HGQ2 pooling as its quantizer + the pooling."""
    graph = load_model(DATA / "einsum_bn.keras", input_type=INPUT_TYPE)
    ops = [(n.name, n.op) for n in graph.nodes]
    assert (
        ("ein", "dense") in ops
        and ("bn", "scale_shift") in ops
        and ("bn_iq", "fixed_quantize") in ops
    )
    graph = load_model(DATA / "seq_pool.keras", input_type=INPUT_TYPE)
    ops = [(n.name, n.op) for n in graph.nodes]
    assert ops[1:4] == [
        ("ein_iq", "fixed_quantize"),
        ("ein", "conv1d"),
        ("pool_iq", "fixed_quantize"),
    ]
    assert ("gap_iq", "fixed_quantize") in ops


def test_merge_quantizes_each_input():
    """QAdd/QMultiply: a FixedQuantize on each input (its own widths), then the merge."""
    graph = load_model(DATA / "residual.keras", input_type=INPUT_TYPE)
    by_name = {n.name: n for n in graph.nodes}
    assert by_name["add"].inputs == ("add_iq0", "add_iq1")
    assert by_name["add_iq0"].inputs == ("a",) and by_name["add_iq1"].inputs == ("b",)
    assert by_name["mul"].inputs == ("mul_iq0", "mul_iq1")
    assert by_name["mul_iq1"].inputs == ("b",)


def _edited_weights(tmp_path, source: str, edit) -> Path:
    """A copy of a test archive whose model.weights.h5 went through ``edit(h5py.File)``."""
    import io
    import zipfile

    import h5py

    target = tmp_path / f"weights_{Path(source).name}"
    with zipfile.ZipFile(DATA / source) as archive, zipfile.ZipFile(target, "w") as out:
        for item in archive.namelist():
            data = archive.read(item)
            if item == "model.weights.h5":
                buffer = io.BytesIO(data)
                with h5py.File(buffer, "r+") as f:
                    edit(f)
                data = buffer.getvalue()
            out.writestr(item, data)
    return target


def _drop_variable(f):
    del f["layers/q_dense/kq/quantizer/vars/2"]


def _float_k(f):
    group = f["layers/q_dense/iq/quantizer/vars"]
    k = group["1"][()]
    del group["1"]
    group["1"] = k.astype("float32")


def _nan_width(f):
    group = f["layers/q_dense/kq/quantizer/vars"]
    b = group["0"][()]
    b[0, 0] = float("nan")
    del group["0"]
    group["0"] = b


def _wrong_shape(f):
    group = f["layers/q_dense/iq/quantizer/vars"]
    del group["0"]
    group["0"] = np.zeros((1, 3), dtype="float32")


@pytest.mark.parametrize(
    "edit, words",
    [
        (_drop_variable, "expected 3 quantizer variables"),
        (_float_k, "should be 'k' (uint8)"),
        (_nan_width, "non-finite"),
        (_wrong_shape, "does not broadcast"),
    ],
)
def test_broken_quantizer_variables_refused_in_one_line(tmp_path, edit, words):
    from rtlgen.quant.errors import ModelFileError

    path = _edited_weights(tmp_path, "mlp_perweight.keras", edit)
    with pytest.raises(ModelFileError) as info:
        load_model(path, input_type=INPUT_TYPE)
    message = str(info.value)
    assert "\n" not in message and "layer 'fc1' (hgq>QDense)" in message and words in message


def test_einsum_equation_refused_in_one_line(tmp_path):
    path = _edited_archive(tmp_path, "einsum_bn.keras", "ein", "equation", lambda _: "ab,cb->ac")
    with pytest.raises(UnsupportedError) as info:
        load_model(path, input_type=INPUT_TYPE)
    message = str(info.value)
    assert "\n" not in message and "layer 'ein' (hgq>QEinsumDense)" in message
    assert "'ab,cb->ac'" in message


def _edited_archive(tmp_path, source: str, layer_name: str, key: str, change) -> Path:
    """A copy of a test archive with ``change(config[key])`` applied to one layer."""
    import json
    import zipfile

    target = tmp_path / f"edited_{source}"
    with zipfile.ZipFile(DATA / source) as archive, zipfile.ZipFile(target, "w") as out:
        for item in archive.namelist():
            data = archive.read(item)
            if item == "config.json":
                config = json.loads(data)
                for layer in config["config"]["layers"]:
                    if layer["config"]["name"] == layer_name:
                        layer["config"][key] = change(layer["config"][key])
                data = json.dumps(config).encode()
            out.writestr(item, data)
    return target


def test_unsupported_activation_rounding_refused_in_one_line(tmp_path):
    def rnd_zero(conf):
        conf["config"]["round_mode"] = "RND_ZERO"
        return conf

    path = _edited_archive(tmp_path, "mlp_modes.keras", "trn_sat", "iq_conf", rnd_zero)
    with pytest.raises(UnsupportedError) as info:
        load_model(path, input_type=INPUT_TYPE)
    message = str(info.value)
    assert "\n" not in message and "layer 'trn_sat' (hgq>QDense) iq_conf" in message
    assert "RND_ZERO" in message
    run = rtlgen("convert", path, "-o", tmp_path / "out")
    assert run.returncode == 2
    assert len(run.stderr.strip().splitlines()) == 1 and "RND_ZERO" in run.stderr
    assert "Traceback" not in run.stderr


def test_per_pixel_input_widths():
    """HGQ2's default (per-element) input widths on an image: a width per pixel and
    channel, applied by a position counter in the stream."""
    graph = load_model(DATA / "conv_per_pixel.keras", input_type=INPUT_TYPE)
    node = next(n for n in graph.nodes if isinstance(n, FixedQuantize))
    f = node.frac_bits.mantissa
    assert f.shape == (16, 2) and np.any(f != f[:1])  # 4x4 positions, 2 channels, varying


@pytest.mark.parametrize(
    "name",
    [
        "mlp_perweight",
        "mlp_modes",
        "cnn1d",
        "einsum_bn",
        "seq_pool",
        "residual",
        "conv_per_pixel",
        "cnn2d",
        "lut_act",
        "bn_dense",
        "softmax_head",
        "softmax_iq",
        "lut_channels",
        "lut_conv",
        "lut_affine_act",
    ],
)
def test_network_bit_exact_under_backpressure(name):
    _, _, graph = _predict(name)
    bit_exact_in_simulator(graph, n=3, seed=3)


def test_network_timing_matches_model():
    _, _, graph = _predict("mlp_modes")
    timing_matches_model(graph)


@pytest.mark.parametrize("overflow", ["WRAP", "SAT", "SAT_SYM"])
@pytest.mark.parametrize("rounding", ["RND", "RND_CONV", "TRN"])
def test_channel_quantize_component_random_widths(rounding, overflow):
    """Odd widths (k 0/1, i -3..4, f -2..6, pruned elements) per channel on a flat vector,
    per channel on a (4, 9) stream, and per position and channel on a (5, 3) stream (the
    position counter), random valid/ready: equal to the reference."""
    from rtlgen.passes import lower

    rng = np.random.default_rng(["RND", "RND_CONV", "TRN"].index(rounding) * 3 + len(overflow))
    spec = QuantizerSpec("q", "kif", rounding, overflow, False, True)
    for shape, widths_shape in (((7,), (7,)), ((4, 9), (9,)), ((5, 3), (5, 3))):
        widths = QuantizerWidths(
            spec,
            rng.integers(0, 2, widths_shape).astype(float),
            rng.integers(-3, 5, widths_shape).astype(float),
            rng.integers(-2, 7, widths_shape).astype(float),
        )
        in_type = FixedType(12, 5, True)
        node = quantize_node("q", shape, widths, "q")
        graph = ir.ModelGraph("q", (ir.Input("x", shape, shape, out_type=in_type), node))
        bit_exact_in_simulator(lower(graph), n=4, seed=5)


@pytest.mark.parametrize("name", ["mlp_modes", "lut_act", "lut_channels", "lut_affine_act"])
def test_graph_npz_round_trip(tmp_path, name):
    """A converted design's graph.npz holds the FixedQuantize widths and the table
    activations' functions and output widths: it predicts the same."""
    from rtlgen.emit import convert

    got, want, graph = _predict(name)
    design = convert(graph, tmp_path / "design")
    again = load_model(design.outdir)
    x = np.load(DATA / f"{name}_expected.npz")["x"]
    (y,) = predict_outputs(again, x).values()
    np.testing.assert_array_equal(y.reshape(want.shape), want)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name", ["cnn2d", "conv_per_pixel", "lut_act", "lut_conv", "lut_affine_act"]
)
def test_convert_and_sim_cli_bit_exact(tmp_path, name):
    """Whole HGQ2 CNNs (per-channel or per-pixel input widths, per-weight kernels, pooling, a
    QDense with per-element input widths) through `rtlgen convert` and `rtlgen sim` in
    Verilator under backpressure: every output equals HGQ2's predict."""
    expected = np.load(DATA / f"{name}_expected.npz")
    simulated = convert_and_simulate(
        tmp_path, DATA / f"{name}.keras", expected["x"][:8], "--input-type", INPUT_TYPE
    )
    np.testing.assert_array_equal(simulated, expected["y"][:8])


def _oracle_python() -> str | None:
    try:
        import hgq  # noqa: F401

        return sys.executable
    except ImportError:
        pass
    python = os.environ.get("RTLGEN_HGQ2_PYTHON", "/work/venv-hgq2/bin/python")
    return python if Path(python).exists() else None


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*float32 ulps")
def test_live_oracle(tmp_path):
    """HGQ2 itself writes the models and outputs again (same seeds): rtlgen predicts them
    exactly, and the committed golden outputs are what HGQ2 gives today."""
    python = _oracle_python()
    if python is None and os.environ.get("RTLGEN_REQUIRE_ORACLES"):
        pytest.fail("HGQ2 oracle required (RTLGEN_REQUIRE_ORACLES) but not installed")
    if python is None:
        pytest.skip("HGQ2 oracle not installed (pip install '.[hgq2]' in a Python 3.12 venv)")
    script = Path(__file__).parents[1] / "data" / "make_hgq2_models.py"
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    subprocess.run(
        [python, script, tmp_path], check=True, env=env, capture_output=True, timeout=600
    )
    for name in (*MODELS, "softmax_head", "softmax_iq"):
        fresh = np.load(tmp_path / f"{name}_expected.npz")
        committed = np.load(DATA / f"{name}_expected.npz")
        assert fresh.files == committed.files
        for key in fresh.files:
            np.testing.assert_array_equal(fresh[key], committed[key])
        graph = load_model(tmp_path / f"{name}.keras", input_type=INPUT_TYPE)
        (y,) = predict_outputs(graph, fresh["x"]).values()
        want = fresh["logits"] if "logits" in fresh.files else fresh["y"]  # softmax: logits
        np.testing.assert_array_equal(y.reshape(want.shape), want)
