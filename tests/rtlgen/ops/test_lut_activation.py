# amaranth: UnusedElaboratable=no
"""Lookup-table activations as an op (rtlgen.ops.lut_activation): Keras sigmoid / tanh /
hard_sigmoid / softsign / elu as Activation layers, as activation= of a layer and the ELU
layer, QKeras quantized_sigmoid / quantized_tanh / quantized_relu(use_sigmoid=1); the table
type chosen for wide inputs and its error bound; refusals; a mixed MLP in Amaranth's
simulator and Verilator; saved graphs.

Float models: the bound ``max_error`` (what ``rtlgen inspect`` shows) is checked against
the float function of each table node's own input; a whole model against Keras within a
tolerance explained at the test. QKeras models: bit-exact against QKeras's predict.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from rtlgen import ir
from rtlgen.frontend.keras_config import layer_activation
from rtlgen.ops.leaky_relu import LeakyRelu, leaky_node
from rtlgen.ops.lut_activation import (
    TABLE_INPUT_BITS,
    TableActivation,
    fine_range,
    node_table,
)
from rtlgen.ops.threshold import Threshold, unpadded
from rtlgen.passes import LayerPrecision, PrecisionConfig, lower
from rtlgen.quant.activations import MAX_TABLE_INPUT_BITS, ActivationKind, float_activation
from rtlgen.quant.errors import RtlgenError, UnsupportedError
from rtlgen.quant.fixed import FixedType, Rounding
from rtlgen.quant.quantizers import QuantizedBits
from rtlgen.quant.reference import predict, run_int, run_node
from rtlgen.report import summarize
from rtlgen.serialize import load_graph
from tests.models import exact_inputs, layer_entry

from ..nets import random_inputs
from .network_checks import bit_exact_in_simulator, bit_exact_in_verilator, timing_matches_model
from .spatial_nets import keras_graph, predicts_like_keras, read_handmade, round_trips, tamper

K = ActivationKind

FLOAT_FUNCTIONS = {
    K.SIGMOID: lambda x: 1 / (1 + np.exp(-x)),
    K.TANH: np.tanh,
    K.HARD_SIGMOID: lambda x: np.clip(0.2 * x + 0.5, 0, 1),
    K.SOFTSIGN: lambda x: x / (1 + np.abs(x)),
    K.ELU: lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))),
    # Keras's constants, written out here so that a wrong shared constant fails
    K.SELU: lambda x: (
        1.0507009873554805 * np.where(x > 0, x, 1.6732632423543772 * np.expm1(np.minimum(x, 0)))
    ),
    K.SILU: lambda x: x / (1 + np.exp(-x)),
    K.GELU: lambda x: x * np.vectorize(math.erfc)(-x / math.sqrt(2)) / 2,
    K.SOFTPLUS: lambda x: np.logaddexp(0, x),
    K.HARD_SILU: lambda x: x * np.minimum(np.maximum(x + 3, 0), 6) / 6,
    K.MISH: lambda x: x * np.tanh(np.logaddexp(0, x)),
    K.EXPONENTIAL: np.exp,
}


def gelu_tanh(x):
    """GELU's tanh approximation (Keras's ``approximate=True``), in float64."""
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def dense_entry(name, units, activation="linear"):
    return layer_entry(
        "Dense", {"name": name, "units": units, "activation": activation, "use_bias": True}
    )


def dense_weights(rng, n_in, n_out, scale=1.0):
    return {
        "kernel": rng.normal(size=(n_in, n_out)).astype(np.float32) * scale,
        "bias": rng.normal(size=n_out).astype(np.float32) * 0.3,
    }


def node_inputs(graph: ir.ModelGraph, x_int: np.ndarray) -> dict[str, tuple[np.ndarray, FixedType]]:
    """Each node's input mantissas and type when the graph runs on ``x_int``."""
    seen, y = {}, x_int
    for index, node in enumerate(graph.nodes[1:], start=1):
        seen[node.name] = (y, graph.in_type(index))
        y = run_node(node, y, graph.in_type(index))
    return seen


def assert_within_max_error(graph: ir.ModelGraph, x_int: np.ndarray) -> int:
    """Every table node's output is within its ``max_error`` of the float function of its
    own input; returns how many nodes were checked."""
    inputs, checked = node_inputs(graph, x_int), 0
    for node in graph.nodes:
        if isinstance(node, TableActivation) and not node.kind.is_qkeras:
            x, in_type = inputs[node.name]
            got = node.out_type.to_float(run_node(node, x, in_type))
            f = gelu_tanh if node.approximate else FLOAT_FUNCTIONS[node.kind]
            want = f(in_type.to_float(x)) if node.kind is not K.ELU else None
            if node.kind is K.ELU:
                v = in_type.to_float(x)
                want = np.where(v > 0, v, node.alpha * np.expm1(np.minimum(v, 0)))
            assert np.max(np.abs(got - want)) <= node.max_error + 1e-12, node.name
            checked += 1
    return checked


# ---------------------------------------------------------------------------------------
# front-end: hand-written configs
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["sigmoid", "tanh", "hard_sigmoid", "softsign", "elu", "selu"])
def test_activation_layer_reads_as_a_table_within_its_error(tmp_path, name):
    graph = read_handmade(
        tmp_path, [layer_entry("Activation", {"name": "act", "activation": name})], (6,)
    )
    (node,) = graph.nodes[1:]
    assert isinstance(node, TableActivation) and node.kind is K(name)
    assert node.table_type == FixedType(16, 10) or node.table_type.width <= TABLE_INPUT_BITS
    x = graph.input.out_type.quantize(np.linspace(-9, 9, 6 * 40).reshape(40, 6))
    assert assert_within_max_error(graph, x) == 1


def test_layer_activation_becomes_the_linear_layer_and_a_table(tmp_path):
    rng = np.random.default_rng(0)
    layers = [dense_entry("d0", 5, "sigmoid"), dense_entry("d1", 3, {"class_name": "tanh"})]
    weights = {"d0": dense_weights(rng, 4, 5), "d1": dense_weights(rng, 5, 3)}
    graph = read_handmade(tmp_path, layers, (4,), weights)
    assert [type(n).__name__ for n in graph.nodes] == [
        "Input", "Dense", "TableActivation", "Dense", "TableActivation",
    ]  # fmt: skip
    dense, sig = graph.nodes[1], graph.nodes[2]
    assert dense.activation.is_linear and dense.out_quantizer is None
    assert sig.name == "d0_activation" and sig.source == "d0"
    # the dense result is wider than a table takes: requantized into 12 bits that cover
    # the input range where sigmoid has not yet saturated (|x| < 8 for 10 fraction bits)
    assert dense.out_type.width > MAX_TABLE_INPUT_BITS
    assert sig.table_type == FixedType(12, 8) and sig.table_type.max_value < 8
    assert sig.out_type.to_float(node_table(sig)[-1]) == 1.0  # sigmoid(7.99) rounds to 1
    x = random_inputs(graph, 64, 3)
    assert assert_within_max_error(graph, x) == 2


def test_keras3_hard_sigmoid_has_slope_one_sixth():
    from rtlgen.frontend.keras_config import KerasLayer

    policy = {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}}
    keras3 = KerasLayer("Activation", "a", {"name": "a", "dtype": policy})
    keras2 = KerasLayer("Activation", "a", {"name": "a", "dtype": "float32"})
    nodes = []
    from rtlgen.ops.lut_activation import table_node

    for layer in (keras2, keras3):
        act = layer_activation(layer, "hard_sigmoid")
        nodes.append(table_node("a", (2,), act, "a"))
    assert nodes[0].params()["slope"] == Fraction(1, 5)
    assert nodes[1].params()["slope"] == Fraction(1, 6)


def test_elu_layer_reads_alpha(tmp_path):
    graph = read_handmade(tmp_path, [layer_entry("ELU", {"name": "elu", "alpha": 0.5})], (3,))
    (node,) = graph.nodes[1:]
    assert node.kind is K.ELU and node.alpha == 0.5
    x = random_inputs(graph, 64)
    assert assert_within_max_error(graph, x) == 1


def test_unsupported_activations_are_refused_naming_the_layer(tmp_path):
    with pytest.raises(
        UnsupportedError, match=r"layer 'act' \(Activation\) activation: 'log_softmax'.*mish"
    ):
        read_handmade(
            tmp_path,
            [layer_entry("Activation", {"name": "act", "activation": "log_softmax"})],
            (3,),
        )
    with pytest.raises(UnsupportedError, match=r"layer 'elu' \(ELU\): alpha=-1.0"):
        read_handmade(tmp_path, [layer_entry("ELU", {"name": "elu", "alpha": -1.0})], (3,))
    entry = layer_entry(
        "QActivation",
        {"name": "q", "activation": "quantized_tanh(4, use_stochastic_rounding=True)"},
    )
    with pytest.raises(
        UnsupportedError, match=r"layer 'q' \(QActivation\).*use_stochastic_rounding"
    ):
        read_handmade(tmp_path, [entry], (3,))


def wide_qkeras_graph(kind: K, in_type: FixedType, **options) -> ir.ModelGraph:
    nodes = [
        ir.Input("in", (3,), (3,)),
        TableActivation("qt", (3,), (3,), kind=kind, **options),
    ]
    return lower(ir.ModelGraph("m", tuple(nodes)), PrecisionConfig(input=in_type))


@pytest.mark.parametrize(
    "kind, options",
    [
        (K.QUANTIZED_TANH, {"bits": 4}),
        (K.QUANTIZED_TANH, {"bits": 8, "symmetric": True}),
        (K.QUANTIZED_SIGMOID, {"bits": 6, "use_real": True}),
        (K.QUANTIZED_RELU, {"bits": 6, "integer": 2, "use_sigmoid": True, "negative_slope": 0.25}),
    ],
)
def test_qkeras_kind_of_an_input_too_wide_for_a_table_is_decided_by_exact_thresholds(kind, options):
    """20 fractional bits: a bit-exact table would keep them all (more than 14 input bits);
    the quantizer is a monotone step function of at most 2**bits levels, so thresholds on
    the input as it is decide it: equal to QKeras's float32 formula on every input tried,
    the inputs at and just below every threshold included."""
    in_type = FixedType(24, 20)
    node = wide_qkeras_graph(kind, in_type, **options).nodes[1]
    assert isinstance(node, Threshold)
    thresholds, levels = unpadded(node, in_type)
    assert thresholds[0] == thresholds[1] == thresholds[2]  # one function, every channel
    assert len(set(levels[0])) <= 2 ** options["bits"]
    rng = np.random.default_rng(7)
    edges = np.array(thresholds[0], dtype=np.int64)
    x = np.concatenate([
        rng.integers(in_type.min_int, in_type.max_int, 4000, endpoint=True),
        rng.integers(-(4 << 20), 4 << 20, 20000), edges, edges - 1,
    ])  # fmt: skip
    x = np.stack([x, np.roll(x, 1), np.roll(x, 2)], axis=-1)
    got = node.out_type.to_float(run_node(node, x, in_type))
    p = TableActivation("t", (3,), (3,), kind=kind, **options).params()
    assert np.array_equal(got, float_activation(kind, in_type.to_float(x), p))


def test_qkeras_kind_too_wide_for_a_table_or_thresholds_is_refused():
    # quantized_tanh(10): 1,024 levels, more than a threshold bank's 256
    with pytest.raises(
        UnsupportedError, match=r"layer 'qt': quantized_tanh of a .* input needs a table"
    ):
        wide_qkeras_graph(K.QUANTIZED_TANH, FixedType(24, 20), bits=10)
    # the same fraction with few integer bits: only saturated integer bits are dropped
    graph = wide_qkeras_graph(K.QUANTIZED_TANH, FixedType(20, 10), bits=4)
    # [-1, 1): quantized_tanh(4) reaches its ends (-1 and 7/8) from x = -1 and 0.8125 on
    assert graph.nodes[1].table_type == FixedType(11, 10)


def test_wide_qkeras_thresholds_are_bit_exact_in_the_simulator_under_backpressure():
    rng = np.random.default_rng(3)
    q = QuantizedBits(6, 0, alpha=1)
    w = ir.FloatTensor(rng.normal(size=(5, 4)), q)
    nodes = [
        ir.Input("in", (5,), (5,)),
        ir.Dense("d", (5,), (4,), weights=w, bias=ir.FloatTensor(rng.normal(size=4) * 0.3, q)),
        TableActivation("qt", (4,), (4,), kind=K.QUANTIZED_TANH, bits=5),
    ]
    graph = lower(ir.ModelGraph("q", tuple(nodes)), PrecisionConfig(input=FixedType(12, 10)))
    assert graph.nodes[1].out_type.frac > MAX_TABLE_INPUT_BITS
    assert isinstance(graph.nodes[2], Threshold)
    bit_exact_in_simulator(graph, n=6, valid_prob=0.6, ready_prob=0.5, seed=5)


def test_explicit_result_type_wins_for_float_tables():
    from rtlgen.passes import LayerPrecision

    nodes = [ir.Input("in", (2,), (2,)), TableActivation("s", (2,), (2,), kind=K.SIGMOID)]
    config = PrecisionConfig(
        input=FixedType(10, 6), layers=(("s", LayerPrecision(result=FixedType(6, 5, False))),)
    )
    node = lower(ir.ModelGraph("m", tuple(nodes)), config).nodes[1]
    assert node.out_type == FixedType(6, 5, False) and node.table_type == FixedType(10, 6)
    default = lower(ir.ModelGraph("m", tuple(nodes)), PrecisionConfig(input=FixedType(10, 6)))
    assert default.nodes[1].out_type == FixedType(11, 10, False)  # [0, 1] at result_frac 10


def test_inspect_shows_the_table_error():
    nodes = [ir.Input("in", (2,), (2,)), TableActivation("s", (2,), (2,), kind=K.TANH)]
    graph = lower(ir.ModelGraph("m", tuple(nodes)), PrecisionConfig(input=FixedType(20, 12)))
    row = summarize(graph)[1]
    assert row.op == "lut_activation"
    assert f"max error {graph.nodes[1].max_error:.2g}" in row.activation
    assert "tanh (table of fixed<12," in row.activation


# ---------------------------------------------------------------------------------------
# SiLU and GELU
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "spelling,kind",
    [
        ("silu", K.SILU),
        ("swish", K.SILU),  # tf.keras 2.15's name in a Dense config
        ("gelu", K.GELU),
        ({"module": "keras.activations", "class_name": "function", "config": "silu"}, K.SILU),
        ({"module": "builtins", "class_name": "function", "config": "gelu"}, K.GELU),
    ],
)
def test_silu_and_gelu_spellings_read_as_tables(tmp_path, spelling, kind):
    rng = np.random.default_rng(4)
    layers = [
        dense_entry("d", 4, spelling),
        layer_entry("Activation", {"name": "act", "activation": spelling}),
    ]
    graph = read_handmade(tmp_path, layers, (3,), {"d": dense_weights(rng, 3, 4)})
    tables = [n for n in graph.nodes if isinstance(n, TableActivation)]
    assert [n.kind for n in tables] == [kind, kind]
    assert not any(n.approximate for n in tables)  # "gelu" is the erf form in Keras 2 and 3
    assert assert_within_max_error(graph, random_inputs(graph, 64, 1)) == 2


def lowered_table(kind, in_type, **options) -> TableActivation:
    nodes = [ir.Input("in", (1,), (1,)), TableActivation("f", (1,), (1,), kind=kind, **options)]
    return lower(ir.ModelGraph("m", tuple(nodes)), PrecisionConfig(input=in_type)).nodes[1]


def error_over_every_code(node: TableActivation, in_type: FixedType) -> float:
    x = np.arange(in_type.min_int, in_type.max_int + 1, dtype=np.int64)[:, None]
    got = node.out_type.to_float(run_node(node, x, in_type))[:, 0]
    v = in_type.to_float(x[:, 0])
    f = gelu_tanh if node.approximate else FLOAT_FUNCTIONS[node.kind]
    with np.errstate(over="ignore"):
        return float(np.max(np.abs(got - f(v))))


@pytest.mark.parametrize(
    "kind,options,table_type,bound",
    [
        (K.SILU, {}, FixedType(12, 7), 0.005),  # slope 1.1 x 2**-8 of the 7-bit fraction
        (K.GELU, {}, FixedType(12, 9), 0.0017),  # 1.13 x 2**-10
        (K.GELU, {"approximate": True}, FixedType(12, 9), 0.0017),
    ],
)
def test_wide_silu_and_gelu_bypass_a_small_table_within_max_error(kind, options, table_type, bound):
    """A proven fixed<19,9> input: the table covers only where f is not yet within half an
    output step of x (SiLU below 16, GELU below 4) and where it rounds to 0 below; every one
    of the 2**19 input codes is within ``max_error`` of the float function."""
    in_type = FixedType(19, 10)
    node = lowered_table(kind, in_type, **options)
    assert node.linear_above and node.table_type == table_type
    assert node.out_type.max_value >= in_type.max_value - 2**-10  # the bypassed top end
    error = error_over_every_code(node, in_type)
    assert error <= node.max_error < bound
    assert error > node.max_error / 2  # the bound is not loose either


def lowered_with(kind, in_type, rounding) -> TableActivation:
    nodes = [ir.Input("in", (1,), (1,)), TableActivation("f", (1,), (1,), kind=kind)]
    config = PrecisionConfig(input=in_type, rounding=rounding)
    return lower(ir.ModelGraph("m", tuple(nodes)), config).nodes[1]


@pytest.mark.parametrize("rounding", [Rounding.CONVERGENT, Rounding.TRUNCATE])
@pytest.mark.parametrize(
    "in_type,table_type,bound,one_table",
    [
        # one table of fixed<12,9>: 0.063 (0.0588 measured); two: 0.0024 (0.0023)
        (FixedType(19, 10), FixedType(12, 3), 0.0025, 0.058),
        # one table of fixed<12,8>: 0.032 (0.0303); two: 0.00088 (0.00079)
        (FixedType(16, 8), FixedType(12, 4), 0.0009, 0.030),
    ],
)
def test_wide_softsign_looks_up_inputs_near_zero_in_a_finer_table(
    in_type, table_type, bound, one_table, rounding
):
    """Softsign never saturates within a proven fixed<19,9> or fixed<16,8> input: one table
    over the whole range keeps 2-4 fraction bits where the slope is 1. A fixed<12,4> table
    for |x| < 8 and the coarse one beyond: every input code within ``max_error`` of
    x / (1 + |x|), the bound of the order of the output step (2**-10) and 20x below one
    table's error. (Truncation: twice the rounding reach.)"""
    node = lowered_with(K.SOFTSIGN, in_type, rounding)
    scale = 2 if rounding is Rounding.TRUNCATE else 1
    assert node.table_type == table_type and node.fine_type == FixedType(12, 8)
    assert node.out_type.frac == 10 and "tables of fixed<12,4> near 0" in node.describe()
    error = error_over_every_code(node, in_type)
    assert error <= node.max_error < bound * scale
    assert error > node.max_error / 2  # the bound is not loose either
    single = error_over_every_code(node.replace(fine_type=None), in_type)
    assert single > one_table and single > 20 * error


def test_softsign_of_a_narrow_input_keeps_one_exact_table():
    node = lowered_table(K.SOFTSIGN, FixedType(12, 6))
    assert node.fine_type is None and node.max_error <= 2**-11 + 1e-12


def wide_softsign_net() -> ir.ModelGraph:
    """A float Dense's wide result (fixed<8,4> inputs, weights ~4) into softsign."""
    rng = np.random.default_rng(4)
    weights = rng.normal(size=(4, 6)) * 4
    nodes = [
        ir.Input("in", (4,), (4,)),
        ir.Dense(
            "d",
            (4,),
            (6,),
            weights=ir.FloatTensor(weights),
            bias=ir.FloatTensor(rng.normal(size=6)),
        ),
        TableActivation("softsign", (6,), (6,), kind=K.SOFTSIGN),
    ]
    return lower(ir.ModelGraph("s", tuple(nodes)), PrecisionConfig(input=FixedType(8, 4)))


def test_wide_softsign_is_bit_exact_on_both_tables_under_backpressure():
    """A `SplitTable` in the simulator, bit-exact with the reference on inputs in the fine
    range and beyond it."""
    graph = wide_softsign_net()
    node = graph.node("softsign")
    in_type = graph.in_type(2)
    assert in_type.width > MAX_TABLE_INPUT_BITS and node.fine_type is not None
    run = bit_exact_in_simulator(graph, n=6, valid_prob=0.6, ready_prob=0.5, seed=1)
    x, _ = node_inputs(graph, random_inputs(graph, 6, 1))["softsign"]
    low, high = fine_range(node, in_type)
    near = (x >= low) & (x <= high)
    assert near.any() and (~near).any()  # both tables were read
    assert len(run.outputs) == 6


@pytest.mark.parametrize("kind", [K.SILU, K.GELU])
@pytest.mark.parametrize("in_type", [FixedType(8, 4), FixedType(12, 6), FixedType(14, 12)])
def test_narrow_silu_and_gelu_tables_hold_every_code_within_max_error(kind, in_type):
    node = lowered_table(kind, in_type)
    assert node.table_type == in_type and not node.linear_above
    assert error_over_every_code(node, in_type) <= node.max_error + 1e-12
    assert node.max_error <= 2**-11 + 1e-12  # only the output rounding


@pytest.mark.parametrize("approximate", [False, True])
def test_gelu_and_silu_tables_match_tensorflow_on_fixed_point_inputs(approximate):
    """TensorFlow's float32 silu / gelu (both forms) on every code of fixed<12,6>: within
    the table's max_error plus float32 noise."""
    tf = pytest.importorskip("tensorflow")

    in_type = FixedType(12, 6)
    x = in_type.to_float(np.arange(in_type.min_int, in_type.max_int + 1))
    for kind, want in [
        (K.GELU, tf.nn.gelu(x.astype(np.float32), approximate=approximate)),
        (K.SILU, tf.keras.activations.swish(x.astype(np.float32))),
    ]:
        node = lowered_table(kind, in_type, approximate=approximate and kind is K.GELU)
        got = node.out_type.to_float(run_node(node, in_type.quantize(x)[:, None], in_type))
        assert np.max(np.abs(got[:, 0] - np.asarray(want, np.float64))) <= node.max_error + 1e-5


@pytest.mark.parametrize("in_type", [FixedType(8, 4), FixedType(12, 6), FixedType(14, 10)])
def test_selu_table_matches_tensorflow_on_every_fixed_point_code(in_type):
    """TensorFlow's float32 selu on every code of a narrow input: within the table's
    max_error (the output rounding only) plus float32 noise."""
    tf = pytest.importorskip("tensorflow")

    node = lowered_table(K.SELU, in_type)
    assert node.table_type == in_type and node.max_error <= 2**-11 + 1e-12
    x = in_type.to_float(np.arange(in_type.min_int, in_type.max_int + 1))
    want = np.asarray(tf.keras.activations.selu(x.astype(np.float32)), np.float64)
    got = node.out_type.to_float(run_node(node, in_type.quantize(x)[:, None], in_type))[:, 0]
    assert np.max(np.abs(got - want)) <= node.max_error + 1e-5
    assert error_over_every_code(node, in_type) <= node.max_error + 1e-12


@pytest.mark.parametrize("in_type", [FixedType(19, 9), FixedType(17, 7), FixedType(30, 12)])
def test_selu_of_a_wide_input_bypasses_the_table_above_zero_within_max_error(in_type):
    """SELU is SELU_SCALE * x above 0: a wide input multiplies by the rounded scale there,
    so the table covers only the negative side (a fixed<19,9> input: fixed<12,8> and max
    error 0.004, where one table of every integer bit was fixed<12,2> and 0.26)."""
    node = lowered_table(K.SELU, in_type)
    assert node.linear_above and node.table_type.width - node.table_type.frac <= 5
    assert node.max_error < 0.005
    near = np.arange(-(2**15), 2**15, 7)  # the negative side, the switch, small positives
    ends = np.linspace(in_type.min_int, in_type.max_int, 20001).astype(np.int64)
    x = np.concatenate([near, ends])[:, None]
    got = node.out_type.to_float(run_node(node, x, in_type))[:, 0]
    error = np.max(np.abs(got - FLOAT_FUNCTIONS[K.SELU](in_type.to_float(x[:, 0]))))
    assert error <= node.max_error + 1e-12 and error > node.max_error / 4


@pytest.mark.parametrize("kind", [K.ELU, K.SELU, K.SILU, K.GELU])
def test_one_table_form_of_a_wide_input_has_no_bypass(kind):
    """A recurrent cell's gate reads only the table (``fine=False``): no bypass, whose side
    of the input the table would not cover (an LSTM(activation='elu') was 0.15 off Keras;
    now its table spans the whole input, within max_error)."""
    from rtlgen.ops.lut_activation import lower_table
    from rtlgen.passes import LayerPrecision, LowerContext

    in_type = FixedType(19, 9)
    ctx = LowerContext(in_type, LayerPrecision(), PrecisionConfig(), False)
    node = lower_table(TableActivation("f", (1,), (1,), kind=kind), ctx, fine=False)
    assert not node.linear_above and node.table_type.max_value >= in_type.max_value - 1
    x = np.linspace(in_type.min_int, in_type.max_int, 4001).astype(np.int64)[:, None]
    got = node.out_type.to_float(node_table(node)[run_node_index(node, x, in_type)])
    with np.errstate(over="ignore"):
        want = FLOAT_FUNCTIONS[kind](in_type.to_float(x))
    assert np.max(np.abs(got - want)) <= node.max_error + 1e-12


def run_node_index(node: TableActivation, x: np.ndarray, in_type: FixedType) -> np.ndarray:
    """The table entries the node reads for input mantissas ``x``."""
    from rtlgen.ops.lut_activation import table_input

    return table_input(node, x, in_type) - node.table_type.min_int


def selu_model():
    tf = pytest.importorskip("tensorflow")

    tf.keras.utils.set_random_seed(4)
    return tf.keras.Sequential(
        [
            tf.keras.layers.InputLayer(input_shape=(4,)),
            tf.keras.layers.Dense(5, activation="selu"),
            tf.keras.layers.Dense(3),
            tf.keras.layers.Activation("selu"),
        ],
        name="selu",
    )


def test_selu_model_predicts_like_tf_keras_and_is_bit_exact_under_backpressure(tmp_path):
    """tf.keras 2.15 (.h5): Dense(activation='selu') and Activation('selu') after a Dense:
    both take wide results, multiplied by the rounded scale above 0 and looked up below
    (max_error 0.004 each), so the output stays within 0.02 of Keras on inputs exact in
    fixed<8,4>; the hardware (`BypassTable` with a scale) equals the reference."""
    model = selu_model()
    graph = keras_graph(model, tmp_path, FixedType(8, 4))
    tables = [n for n in graph.nodes if isinstance(n, TableActivation)]
    assert [(n.kind, n.linear_above) for n in tables] == [(K.SELU, True)] * 2
    assert max(n.max_error for n in tables) < 0.005
    x = exact_inputs((4,), 64)
    got, want = predict(graph, x), model.predict(x, verbose=0)
    assert np.max(np.abs(got - want)) < 0.02
    assert assert_within_max_error(graph, random_inputs(graph, 64)) == 2
    bit_exact_in_simulator(graph, n=4, valid_prob=0.6, ready_prob=0.5, seed=3)
    timing_matches_model(graph)


def test_silu_gelu_model_predicts_like_tf_keras(tmp_path):
    """tf.keras 2.15 (.h5): Conv2D(activation='silu') (saved as 'swish'), Activation('gelu'),
    Dense(activation='swish'): through the convolution and dense the output stays within
    1e-2 of Keras on inputs exact in fixed<8,4>."""
    tf = pytest.importorskip("tensorflow")

    tf.keras.utils.set_random_seed(3)
    model = tf.keras.Sequential(
        [
            tf.keras.layers.InputLayer(input_shape=(5, 4, 2)),
            tf.keras.layers.Conv2D(3, 3, activation="silu"),
            tf.keras.layers.Activation("gelu"),
            tf.keras.layers.Flatten(),
            tf.keras.layers.Dense(3, activation="swish"),
        ],
        name="silu_gelu",
    )
    graph = keras_graph(model, tmp_path, FixedType(8, 4))
    kinds = [n.kind for n in graph.nodes if isinstance(n, TableActivation)]
    assert kinds == [K.SILU, K.GELU, K.SILU]
    x = exact_inputs((5, 4, 2), 64)
    got, want = predict(graph, x), model.predict(x, verbose=0)
    assert np.max(np.abs(got - want)) < 1e-2
    assert assert_within_max_error(graph, random_inputs(graph, 64)) == 3


def silu_gelu_mlp(seed: int = 0) -> ir.ModelGraph:
    """GELU (tanh form) and SiLU of narrow inputs, then Dense -> SiLU and Dense -> GELU of
    wide ones (bypass tables)."""
    rng = np.random.default_rng(seed)

    def dense(name, n_in, n_out):
        weights = ir.FloatTensor(rng.normal(size=(n_in, n_out)) * 2)
        return ir.Dense(name, (n_in,), (n_out,), weights=weights)

    def table(name, n, kind, **options):
        return TableActivation(name, (n,), (n,), kind=kind, **options)

    nodes = [
        ir.Input("in", (4,), (4,)),
        table("gelu", 4, K.GELU, approximate=True),
        table("silu", 4, K.SILU),
        dense("d0", 4, 5),
        table("silu_wide", 5, K.SILU),
        dense("d1", 5, 3),
        table("gelu_wide", 3, K.GELU),
    ]
    return lower(ir.ModelGraph("silu_gelu", tuple(nodes)), PrecisionConfig(input=FixedType(8, 4)))


def test_silu_gelu_mlp_is_bit_exact_under_backpressure_with_predicted_timing():
    graph = silu_gelu_mlp()
    assert graph.node("silu_wide").linear_above and graph.node("gelu_wide").linear_above
    assert not graph.node("gelu").linear_above and not graph.node("silu").linear_above
    bit_exact_in_simulator(graph, n=6, valid_prob=0.6, ready_prob=0.5, seed=5)
    timing_matches_model(graph)


# ---------------------------------------------------------------------------------------
# softplus
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("in_type", [FixedType(8, 4), FixedType(12, 6), FixedType(14, 10)])
def test_softplus_table_matches_tensorflow_on_every_fixed_point_code(in_type):
    """A narrow input: one exact table; TensorFlow's float32 softplus on every code is
    within the table's max_error (the output rounding only) plus float32 noise."""
    tf = pytest.importorskip("tensorflow")

    node = lowered_table(K.SOFTPLUS, in_type)
    assert node.table_type == in_type and not node.linear_above
    assert node.max_error <= 2**-11 + 1e-12
    x = np.arange(in_type.min_int, in_type.max_int + 1, dtype=np.int64)[:, None]
    got = node.out_type.to_float(run_node(node, x, in_type))[:, 0]
    want = np.asarray(tf.math.softplus(in_type.to_float(x[:, 0]).astype(np.float32)))
    assert np.max(np.abs(got - want.astype(np.float64))) <= node.max_error + 1e-5


@pytest.mark.parametrize("rounding", [Rounding.CONVERGENT, Rounding.TRUNCATE])
def test_wide_softplus_bypasses_its_table_above_where_it_is_x(rounding):
    """A proven fixed<19,9> input: softplus is within half an output step of x from 8 on
    (log1p(exp(-8)) < 2**-11), so a fixed<12,4> table covers [-8, 8) and the inputs above
    bypass it; below the table softplus rounds to 0. Every one of the 2**19 codes is within
    ``max_error`` of log(1 + exp(x))."""
    in_type = FixedType(19, 10)
    node = lowered_with(K.SOFTPLUS, in_type, rounding)
    assert node.linear_above and node.table_type == FixedType(12, 8)  # fixed<12,4>
    assert node.out_type.max_value >= in_type.max_value - 2**-10  # the bypassed top end
    error = error_over_every_code(node, in_type)
    scale = 2 if rounding is Rounding.TRUNCATE else 1
    assert error <= node.max_error < 0.0025 * scale


def test_softplus_model_predicts_like_tf_keras_and_is_bit_exact(tmp_path):
    """tf.keras 2.15 (.h5): Dense(activation='softplus') -> Dense -> Activation('softplus')
    (a wide input: the bypass table) within 1e-2 of Keras on inputs exact in fixed<8,4>;
    bit-exact in the simulator under backpressure with the modelled timing."""
    tf = pytest.importorskip("tensorflow")

    tf.keras.utils.set_random_seed(5)
    model = tf.keras.Sequential(
        [
            tf.keras.layers.InputLayer(input_shape=(6,)),
            tf.keras.layers.Dense(5, activation="softplus"),
            tf.keras.layers.Dense(3),
            tf.keras.layers.Activation("softplus"),
        ],
        name="softplus",
    )
    graph = keras_graph(model, tmp_path, FixedType(8, 4))
    tables = [n for n in graph.nodes if isinstance(n, TableActivation)]
    assert [n.kind for n in tables] == [K.SOFTPLUS, K.SOFTPLUS]
    assert all(n.linear_above for n in tables)
    x = exact_inputs((6,), 64)
    got, want = predict(graph, x), model.predict(x, verbose=0)
    assert np.max(np.abs(got - want)) < 1e-2
    assert assert_within_max_error(graph, random_inputs(graph, 64)) == 2
    bit_exact_in_simulator(graph, n=6, valid_prob=0.6, ready_prob=0.5, seed=2)
    timing_matches_model(graph)


# ---------------------------------------------------------------------------------------
# real models
# ---------------------------------------------------------------------------------------
def test_keras_float_model_predicts_like_keras(tmp_path):
    """Float Keras: weights become 16-bit, results 10 fraction bits, tables round to 10
    bits over 12-bit inputs (error bound per node, ~1e-3); through three more Dense layers
    of weights ~N(0, 0.5) the output error stays below 2e-2."""
    tf = pytest.importorskip("tensorflow")

    tf.keras.utils.set_random_seed(0)
    model = tf.keras.Sequential(
        [
            tf.keras.layers.InputLayer(input_shape=(4,)),
            tf.keras.layers.Dense(6, activation="sigmoid"),
            tf.keras.layers.Dense(5),
            tf.keras.layers.Activation("tanh"),
            tf.keras.layers.Dense(5, activation="softsign"),
            tf.keras.layers.ELU(alpha=0.7),
            tf.keras.layers.Dense(3, activation="hard_sigmoid"),
        ],
        name="float_tables",
    )
    graph = keras_graph(model, tmp_path)
    assert sum(isinstance(n, TableActivation) for n in graph.nodes) == 5
    x = exact_inputs((4,), 64)
    got, want = predict(graph, x), model.predict(x, verbose=0)
    assert np.max(np.abs(got - want)) < 2e-2
    assert assert_within_max_error(graph, random_inputs(graph, 64)) == 5


def test_qkeras_model_is_bit_exact(tmp_path):
    """quantized_tanh / quantized_sigmoid (QActivation and activation=) and
    quantized_relu(use_sigmoid=1) after exact QDense accumulators: bit-exact."""
    tf = pytest.importorskip("tensorflow")
    qkeras = pytest.importorskip("qkeras")

    tf.keras.utils.set_random_seed(1)
    q4 = "quantized_bits(4,0,alpha=1)"
    model = tf.keras.Sequential(
        [
            tf.keras.layers.InputLayer(input_shape=(6,)),
            qkeras.QDense(8, kernel_quantizer=q4, bias_quantizer=q4),
            qkeras.QActivation("quantized_tanh(4)"),
            qkeras.QDense(
                6, kernel_quantizer=q4, bias_quantizer=q4, activation="quantized_sigmoid(5)"
            ),
            qkeras.QDense(5, kernel_quantizer=q4, bias_quantizer=q4),
            qkeras.QActivation("quantized_relu(4,1,use_sigmoid=1)"),
            qkeras.QDense(3, kernel_quantizer=q4, bias_quantizer=q4),
            qkeras.QActivation("quantized_tanh(6, use_real_tanh=True, symmetric=True)"),
            # accumulators of 14 fractional bits, too many for an exact table: thresholds
            qkeras.QDense(
                4,
                kernel_quantizer="quantized_bits(10,0,alpha=1)",
                bias_quantizer=q4,
                activation="quantized_tanh(6)",
            ),
            qkeras.QDense(
                3,
                kernel_quantizer="quantized_bits(10,0,alpha=1)",
                bias_quantizer=q4,
                activation="quantized_sigmoid(7)",
            ),
        ],  # fmt: skip
        name="qkeras_tables",
    )
    graph = predicts_like_keras(model, tmp_path, n=256, seed=2, input_type=FixedType(8, 4))
    tables = [n for n in graph.nodes if isinstance(n, TableActivation)]
    assert [n.kind for n in tables] == [
        K.QUANTIZED_TANH, K.QUANTIZED_SIGMOID, K.QUANTIZED_RELU, K.QUANTIZED_TANH,
    ]  # fmt: skip
    stepped = [n for n in graph.nodes if isinstance(n, Threshold)]
    assert [n.out_quantizer for n in stepped] == ["quantized_tanh", "quantized_sigmoid"]


# ---------------------------------------------------------------------------------------
# hardware
# ---------------------------------------------------------------------------------------
def mixed_mlp(seed: int = 0) -> ir.ModelGraph:
    """A float MLP mixing every new activation: Dense+sigmoid, LeakyReLU, PReLU, tanh, ELU,
    softsign, hard_sigmoid (wide Dense results: the tables requantize their inputs)."""
    rng = np.random.default_rng(seed)

    def dense(name, n_in, n_out):
        return ir.Dense(
            name,
            (n_in,),
            (n_out,),
            weights=ir.FloatTensor(rng.normal(size=(n_in, n_out))),
            bias=ir.FloatTensor(rng.normal(size=n_out) * 0.3),
        )

    def table(name, n, kind, **options):
        return TableActivation(name, (n,), (n,), kind=kind, **options)

    nodes = [
        ir.Input("in", (4,), (4,)),
        dense("d0", 4, 5),
        table("sigmoid", 5, K.SIGMOID),
        dense("d1", 5, 4),
        leaky_node("leaky", (4,), 0.3, "leaky"),
        dense("d2", 4, 4),
        leaky_node("prelu", (4,), np.array([0.25, -0.5, 0.1, 0.0]), "prelu"),
        table("tanh", 4, K.TANH),
        dense("d3", 4, 3),
        table("elu", 3, K.ELU, alpha=0.7),
        table("softsign", 3, K.SOFTSIGN),
        table("hard_sigmoid", 3, K.HARD_SIGMOID),
    ]
    return lower(ir.ModelGraph("mixed", tuple(nodes)), PrecisionConfig(input=FixedType(8, 4)))


def test_elu_of_a_wide_input_bypasses_the_table_above_zero():
    """ELU is the identity above 0: a wide input's table covers only the negative side, so
    it keeps fraction bits (fixed<12,9> and max error 0.063 before, spanning the whole
    proven range); outputs stay within max_error of ELU over that whole range."""
    graph = mixed_mlp()
    elu = graph.node("elu")
    in_type = graph.in_type(graph.nodes.index(elu))
    assert elu.linear_above and in_type.width > MAX_TABLE_INPUT_BITS
    assert elu.table_type.width - elu.table_type.frac <= 5 < in_type.width - in_type.frac
    assert elu.max_error < 0.005 and elu.out_type.max_value >= in_type.max_value - 2**-10
    near = np.arange(-(2**14), 2**14, 37)  # negative side, the switch, small positives
    ends = np.linspace(in_type.min_int, in_type.max_int, 999).astype(np.int64)
    x = np.concatenate([near, ends])
    got = elu.out_type.to_float(run_node(elu, x[:, None], in_type))[:, 0]
    v = in_type.to_float(x)
    want = np.where(v > 0, v, elu.alpha * np.expm1(np.minimum(v, 0)))
    assert np.max(np.abs(got - want)) <= elu.max_error


def test_mixed_mlp_is_bit_exact_under_backpressure_with_predicted_timing():
    graph = mixed_mlp()
    assert any(isinstance(n, LeakyRelu) for n in graph.nodes)
    bit_exact_in_simulator(graph, n=4, valid_prob=0.6, ready_prob=0.5, seed=2)
    latency, ii = timing_matches_model(graph)
    assert ii == 1


def qkeras_style_mlp() -> ir.ModelGraph:
    rng = np.random.default_rng(5)
    q = QuantizedBits(4, 0, alpha=1)
    w = ir.FloatTensor(rng.normal(size=(5, 6)), q)
    nodes = [
        ir.Input("in", (5,), (5,)),
        ir.Dense("d", (5,), (6,), weights=w, bias=ir.FloatTensor(rng.normal(size=6) * 0.3, q)),
        TableActivation("qs", (6,), (6,), kind=K.QUANTIZED_SIGMOID, bits=4),
    ]
    return lower(ir.ModelGraph("q", tuple(nodes)), PrecisionConfig(input=FixedType(8, 4)))


def test_qkeras_table_network_in_the_simulator():
    graph = qkeras_style_mlp()
    table = graph.nodes[2]
    assert table.table_type.frac == graph.nodes[1].out_type.frac  # no fraction bit dropped
    bit_exact_in_simulator(graph, n=3, seed=4)


@pytest.mark.slow
def test_mixed_mlp_in_verilator(tmp_path, tmp_path_factory):
    bit_exact_in_verilator(mixed_mlp(1), tmp_path, tmp_path_factory.mktemp("verilator_cache"))


# ---------------------------------------------------------------------------------------
# saved graphs
# ---------------------------------------------------------------------------------------
def test_saved_graph_round_trips_and_a_tampered_table_type_is_refused(tmp_path):
    graph = mixed_mlp(2)
    path = round_trips(graph, tmp_path)

    def widen(desc):
        desc["fields"]["table_type"] = [16, 10, True]

    tamper(path, "TableActivation", widen)
    with pytest.raises(RtlgenError, match=r"TableActivation.*16 input bits|up to 14 input bits"):
        load_graph(path)


@pytest.mark.parametrize(
    "fine_type,words",
    [
        ([16, 10, True], "up to 14 input bits"),
        ([12, 13, True], "is not within the input"),  # more fraction than the input has
    ],
)
def test_saved_softsign_with_a_tampered_fine_table_type_is_refused(tmp_path, fine_type, words):
    path = round_trips(wide_softsign_net(), tmp_path)
    tamper(path, "TableActivation", lambda desc: desc["fields"].update(fine_type=fine_type))
    with pytest.raises(RtlgenError, match=words):
        load_graph(path)


def test_saved_qkeras_table_with_a_narrowed_output_is_refused(tmp_path):
    path = round_trips(qkeras_style_mlp(), tmp_path)

    def narrow(desc):
        desc["out_type"] = [2, 1, False]

    tamper(path, "TableActivation", narrow)
    with pytest.raises(RtlgenError, match="not exactly representable"):
        load_graph(path)


def test_run_int_on_a_lowered_table_graph_uses_the_cached_table():
    graph = mixed_mlp(3)
    x = random_inputs(graph, 8)
    np.testing.assert_array_equal(run_int(graph, x), run_int(graph, x))
    assert isinstance(leaky_node("l", (2,), 0.5, "l"), LeakyRelu)


# ---------------------------------------------------------------------------------------
# quantized_relu_po2
# ---------------------------------------------------------------------------------------
PO2_OPTIONS = [
    {"bits": 4},
    {"bits": 4, "max_value": 4.0},
    {"bits": 3, "max_value": 1.0},
    {"bits": 5},
    {"bits": 4, "quadratic_approximation": True},
    {"bits": 4, "max_value": 2.5, "log2_rounding": "floor"},
    {"bits": 8, "max_value": 1.0},  # 2**-256 below: 0 in float32
    {"bits": 8},  # 2**-128 below: a float32 subnormal, 0 in TensorFlow
]


def qkeras_relu_po2(x: np.ndarray, options: dict) -> np.ndarray:
    import tensorflow as tf
    from qkeras.quantizers import quantized_relu_po2

    return quantized_relu_po2(**options)(tf.constant(x, tf.float32)).numpy().astype(np.float64)


def po2_boundaries(in_type: FixedType) -> np.ndarray:
    """The input mantissas on both sides of every boundary between two powers of two (2**k
    for floor, 2**(k + 1/2) for round, 2**(2k + 1) for the quadratic form) within range."""
    edges = np.exp2(np.arange(-40, 40, 0.5))
    m = np.floor(edges * 2.0**in_type.frac)
    m = np.concatenate([m - 1, m, m + 1, m + 2])
    return np.unique(np.clip(m, in_type.min_int, in_type.max_int)).astype(np.int64)


@pytest.mark.parametrize("options", PO2_OPTIONS, ids=str)
@pytest.mark.parametrize("in_type", [FixedType(8, 4), FixedType(12, 6), FixedType(14, 12)])
def test_quantized_relu_po2_table_equals_qkeras_on_every_code(options, in_type):
    pytest.importorskip("qkeras")
    node = lowered_table(K.QUANTIZED_RELU_PO2, in_type, **options)
    assert isinstance(node, TableActivation) and node.table_type == in_type
    codes = np.arange(in_type.min_int, in_type.max_int + 1, dtype=np.int64)
    got = node.out_type.to_float(run_node(node, codes[:, None], in_type))[:, 0]
    want = qkeras_relu_po2(in_type.to_float(codes), options)
    np.testing.assert_array_equal(got, want)
    assert len(np.unique(want)) > 3  # several powers of two (and 0 or 2**min_exp below)


@pytest.mark.parametrize("options", [PO2_OPTIONS[k] for k in (0, 1, 2, 3, 5, 7)], ids=str)
def test_wide_quantized_relu_po2_equals_qkeras_at_every_boundary(options):
    """A fixed<22,10> input (too wide for an exact table): one threshold per power of two
    (an exact table of fewer integer bits where max_value <= 1 saturates it early), exact
    on random inputs and on both sides of every boundary between two powers."""
    pytest.importorskip("qkeras")
    in_type = FixedType(22, 12)
    node = lowered_table(K.QUANTIZED_RELU_PO2, in_type, **options)
    assert isinstance(node, Threshold) or node.table_type.width <= MAX_TABLE_INPUT_BITS
    rng = np.random.default_rng(7)
    codes = np.concatenate(
        [po2_boundaries(in_type), rng.integers(in_type.min_int, in_type.max_int + 1, 5000)]
    )
    got = node.out_type.to_float(run_node(node, codes[:, None], in_type))[:, 0]
    np.testing.assert_array_equal(got, qkeras_relu_po2(in_type.to_float(codes), options))


def qkeras_po2_model():
    """QActivation(quantized_relu_po2(4)) on the input, a QDense with
    activation='quantized_relu_po2(4,4)' (a 14-bit accumulator: an exact table), a QDense
    whose 16-bit accumulator into quantized_relu_po2(4) is decided by thresholds."""
    tf = pytest.importorskip("tensorflow")
    qkeras = pytest.importorskip("qkeras")

    tf.keras.utils.set_random_seed(1)
    q4 = "quantized_bits(4,0,alpha=1)"
    return tf.keras.Sequential(
        [
            tf.keras.layers.InputLayer(input_shape=(6,)),
            qkeras.QActivation("quantized_relu_po2(4)", name="po2_in"),
            qkeras.QDense(
                5, kernel_quantizer=q4, bias_quantizer=q4, activation="quantized_relu_po2(4,4)"
            ),
            qkeras.QDense(3, kernel_quantizer=q4, bias_quantizer=q4),
            qkeras.QActivation("quantized_relu_po2(4)", name="po2_out"),
        ],
        name="relu_po2",
    )


def test_qkeras_relu_po2_model_is_bit_exact_under_backpressure(tmp_path):
    graph = predicts_like_keras(
        qkeras_po2_model(), tmp_path, n=512, seed=3, input_type=FixedType(8, 4)
    )
    tables = [n for n in graph.nodes if isinstance(n, TableActivation)]
    assert [n.kind for n in tables] == [K.QUANTIZED_RELU_PO2] * 2
    assert [n.out_quantizer for n in graph.nodes if isinstance(n, Threshold)] == [
        "quantized_relu_po2"
    ]
    bit_exact_in_simulator(graph, n=6, valid_prob=0.6, ready_prob=0.5, seed=4)
    timing_matches_model(graph)
    round_trips(graph, tmp_path)


@pytest.mark.parametrize(
    "activation,message",
    [
        ("quantized_relu_po2(4,use_stochastic_rounding=True)", "use_stochastic_rounding"),
        ("quantized_relu_po2(4,negative_slope=0.5)", "negative_slope must be 0"),
        ("quantized_relu_po2(7)", r"quantized_relu_po2\(bits=7.*2\*\*-64.*62 bits"),
    ],
)
def test_quantized_relu_po2_refusals_name_the_layer(tmp_path, activation, message):
    layer = layer_entry("QActivation", {"name": "po2", "activation": activation}, None)
    with pytest.raises(UnsupportedError, match=rf"^layer 'po2'[^\n]*{message}[^\n]*$"):
        read_handmade(tmp_path, [layer], (3,))


def test_wide_quadratic_relu_po2_is_refused_not_stepped():
    """The quadratic form gives 2**-16 .. 2**-10 just above 0 but 2**-8 at 0 (QKeras's
    epsilon branch): not monotone, so no thresholds; a narrow input is an exact table."""
    with pytest.raises(UnsupportedError, match=r"layer 'f': quantized_relu_po2 of a fixed<22,10>"):
        lowered_table(K.QUANTIZED_RELU_PO2, FixedType(22, 12), quadratic_approximation=True)


@pytest.mark.slow
def test_selu_model_in_verilator(tmp_path, tmp_path_factory):
    graph = keras_graph(selu_model(), tmp_path, FixedType(8, 4))
    bit_exact_in_verilator(graph, tmp_path, tmp_path_factory.mktemp("verilator_cache"))


@pytest.mark.slow
def test_qkeras_relu_po2_model_in_verilator(tmp_path, tmp_path_factory):
    graph = keras_graph(qkeras_po2_model(), tmp_path, FixedType(8, 4))
    bit_exact_in_verilator(graph, tmp_path, tmp_path_factory.mktemp("verilator_cache"))


# ---------------------------------------------------------------------------------------
# hard_silu (hard_swish), mish, exponential
# ---------------------------------------------------------------------------------------
def hard_swish(x):
    """MobileNetV3's hard swish as a user writes it for tf.keras 2.15 (which has none):
    saved by its name, ``hard_swish``."""
    import tensorflow as tf

    return x * tf.nn.relu6(x + 3.0) / 6.0


@pytest.mark.parametrize(
    "spelling,kind",
    [
        ("hard_silu", K.HARD_SILU),  # Keras 3's name (Activation("hard_swish") saves it)
        ("hard_swish", K.HARD_SILU),
        ({"module": "builtins", "class_name": "function", "config": "hard_swish"}, K.HARD_SILU),
        ("mish", K.MISH),
        ("exponential", K.EXPONENTIAL),
    ],
)
def test_hard_swish_mish_and_exponential_spellings_read_as_tables(tmp_path, spelling, kind):
    rng = np.random.default_rng(7)
    layers = [
        dense_entry("d", 4, spelling),
        layer_entry("Activation", {"name": "act", "activation": spelling}),
    ]
    graph = read_handmade(tmp_path, layers, (3,), {"d": dense_weights(rng, 3, 4, 0.3)})
    tables = [n for n in graph.nodes if isinstance(n, TableActivation)]
    assert [n.kind for n in tables] == [kind, kind]
    assert assert_within_max_error(graph, random_inputs(graph, 64, 1)) == 2


@pytest.mark.parametrize(
    "kind,table_type,bound",
    [
        # hard_silu is x itself from 3 on: a table over [-4, 4), slope 1.5 x 2**-10
        (K.HARD_SILU, FixedType(12, 9), 0.002),
        # mish is within half an output step of x from ~8 on: slope 1.09 x 2**-8
        (K.MISH, FixedType(12, 7), 0.005),
    ],
)
def test_wide_hard_silu_and_mish_bypass_a_small_table_within_max_error(kind, table_type, bound):
    """A proven fixed<19,9> input: every one of the 2**19 codes within ``max_error`` of
    the float function; hard_silu's bypass is exact (above 3 it is x)."""
    in_type = FixedType(19, 10)
    node = lowered_table(kind, in_type)
    assert node.linear_above and node.table_type == table_type
    error = error_over_every_code(node, in_type)
    assert error <= node.max_error < bound
    assert error > node.max_error / 2


def test_exponential_saturates_at_result_int_bits_and_an_explicit_type():
    """exp grows without bound: by default its output has ``result_int_bits`` integer bits
    and saturates there; a wide input's table stops where that saturation begins."""
    node = lowered_table(K.EXPONENTIAL, FixedType(16, 6))  # [-512, 512)
    # ufixed<34,24>; the table's input fixed<12,6>: [-32, 32), exp(16.7) = 2**24 inside
    assert node.out_type == FixedType(34, 10, False) and node.table_type == FixedType(12, 6)
    top = node.out_type.max_int
    x = np.array([[FixedType(16, 6).max_int], [17 << 6], [0]])  # 511.98, 17, 0
    assert run_node(node, x, FixedType(16, 6))[:, 0].tolist() == [top, top, 1 << 10]
    config = PrecisionConfig(
        input=FixedType(8, 4), layers=(("f", LayerPrecision(result=FixedType(10, 6, False))),)
    )
    nodes = [ir.Input("in", (1,), (1,)), TableActivation("f", (1,), (1,), kind=K.EXPONENTIAL)]
    explicit = lower(ir.ModelGraph("m", tuple(nodes)), config).nodes[1]
    assert explicit.out_type == FixedType(10, 6, False)  # ufixed<10,4>: up to 16 - 2**-6
    codes = np.arange(-128, 128)[:, None]
    got = explicit.out_type.to_float(run_node(explicit, codes, FixedType(8, 4)))[:, 0]
    want = np.clip(np.round(np.exp(codes[:, 0] / 16) * 64) / 64, 0, 16 - 1 / 64)
    np.testing.assert_array_equal(got, want)


def hswish_mish_exp_model():
    """tf.keras 2.15: Conv2D(activation=hard_swish, a user function saved by name),
    DepthwiseConv2D(activation='mish') (the depthwise layer followed by the table),
    Dense(activation='exponential')."""
    tf = pytest.importorskip("tensorflow")

    tf.keras.utils.set_random_seed(3)
    model = tf.keras.Sequential(
        [
            tf.keras.layers.InputLayer(input_shape=(5, 5, 2)),
            tf.keras.layers.Conv2D(3, 3, activation=hard_swish),
            tf.keras.layers.DepthwiseConv2D(3, activation="mish"),
            tf.keras.layers.Flatten(),
            tf.keras.layers.Dense(3, activation="exponential"),
        ],
        name="hswish_mish_exp",
    )
    return model


def test_mish_exponential_and_hard_swish_model_predicts_like_tf_keras(tmp_path):
    """`hswish_mish_exp_model` (.h5) within 3e-2 relative of Keras on inputs exact in
    fixed<8,4> (exp turns the dense result's absolute error, ~1e-2 after three layers of
    2**-11 roundings and 16-bit weights, into a relative one)."""
    model = hswish_mish_exp_model()
    graph = keras_graph(model, tmp_path, FixedType(8, 4))
    tables = [n for n in graph.nodes if isinstance(n, TableActivation)]
    assert [n.kind for n in tables] == [K.HARD_SILU, K.MISH, K.EXPONENTIAL]
    x = exact_inputs((5, 5, 2), 64)
    got, want = predict(graph, x), model.predict(x, verbose=0)
    assert np.max(np.abs(got - want) / np.maximum(1, np.abs(want))) < 3e-2
    assert assert_within_max_error(graph, random_inputs(graph, 64)) == 3


@pytest.mark.slow
def test_mish_exponential_and_hard_swish_model_is_bit_exact_under_backpressure(tmp_path):
    graph = keras_graph(hswish_mish_exp_model(), tmp_path, FixedType(8, 4))
    bit_exact_in_simulator(graph, n=4, valid_prob=0.6, ready_prob=0.5, seed=3)
    timing_matches_model(graph)


def _mixed_qkeras_model(tmp_path, middle: str):
    """QDense -> ``middle`` (a float tanh, a QKeras quantized_tanh, or a float
    BatchNormalization) -> QDense: float layers inside a quantized model."""
    pytest.importorskip("qkeras")
    import warnings

    import tensorflow as tf
    from qkeras import QActivation, QDense

    from rtlgen.frontend import read_model

    tf.keras.utils.set_random_seed(0)
    L = tf.keras.layers
    q = {
        "kernel_quantizer": "quantized_bits(4,0,alpha=1)",
        "bias_quantizer": "quantized_bits(4,0,alpha=1)",
    }
    x = L.Input((6,), name="x")
    h = QDense(5, name="d0", **q)(x)
    if middle == "tanh":
        h = L.Activation("tanh", name="th")(h)
    elif middle == "quantized_tanh":
        h = QActivation("quantized_tanh(6)", name="th")(h)
    else:
        h = L.BatchNormalization(name="bn")(h)
    model = tf.keras.Model(x, QDense(3, name="d1", **q)(h))
    path = tmp_path / "m.h5"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save(path)
    return read_model(path)


@pytest.mark.parametrize(
    ("middle", "warned"),
    [
        ("tanh", "a float tanh in a quantized model"),
        ("bn", "a float BatchNormalization"),
        ("quantized_tanh", None),
    ],
)
def test_float_layers_in_a_quantized_model_are_named_as_approximate(tmp_path, middle, warned):
    """A new-user trial's HGQ2 models with a Keras tanh or BatchNormalization between
    quantized layers were silently not bit-exact with the framework: a float function is a
    table within its max error, a float BN without its own quantizer a rounded scale/shift.
    Each is now a warning naming the layer; a quantized tanh (exact) is not."""
    import warnings

    from rtlgen.quant.errors import RtlgenWarning

    graph = _mixed_qkeras_model(tmp_path, middle)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lower(graph, PrecisionConfig(input=FixedType(8, 4)))
    messages = [str(w.message) for w in caught if issubclass(w.category, RtlgenWarning)]
    approximate = [m for m in messages if "in a quantized model" in m]
    if warned is None:
        assert not approximate, approximate
    else:
        assert len(approximate) == 1 and warned in approximate[0], messages
        assert ("layer 'th'" if middle == "tanh" else "layer 'bn'") in approximate[0]
