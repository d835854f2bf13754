"""Branching graphs (issue 14): DAG IR, Keras Functional models with forks and joins, the
reference on DAGs, and hardware whose forks and join FIFOs are sized by the event-time model.

The FIFO checks are the point: a skip path must hold the beats the long path is behind, or
the pipeline deadlocks; the sizes come from `rtlgen.timing.model_graph`, these tests prove
they suffice (random backpressure and input gaps) and that they are tight (one beat less
stalls: the network then misses its full-rate II or never finishes).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from rtlgen import ir
from rtlgen.hardware import HardwareOptions, NetworkTop
from rtlgen.ops.concatenate import Concat
from rtlgen.ops.merge import Merge
from rtlgen.passes import PrecisionConfig, lower
from rtlgen.plan import plan_network
from rtlgen.quant.errors import RtlgenError
from rtlgen.quant.fixed import FixedType
from rtlgen.quant.merge import MergeOp
from rtlgen.quant.quantizers import QuantizedBits, QuantizedRelu
from rtlgen.quant.reference import run_int, run_int_outputs
from rtlgen.serialize import load_graph, save_graph
from rtlgen.timing import steady_samples

from .nets import random_inputs, run_top
from .ops.network_checks import bit_exact_in_simulator, bit_exact_in_verilator, timing_matches_model

KQ = QuantizedBits(4, 0)


def conv(name, shape, cout, kernel, rng, inputs, relu=True, same=True):
    h, w, cin = shape
    pad = kernel // 2 if same else 0
    out = (h, w, cout) if same else (h - kernel + 1, w - kernel + 1, cout)
    return ir.Conv(
        name, shape, out,
        weights=ir.FloatTensor(rng.normal(size=(kernel, kernel, cin, cout)) * 0.6, KQ),
        bias=ir.FloatTensor(rng.normal(size=cout) * 0.2, KQ),
        kernel=(kernel, kernel), stride=(1, 1), padding=(pad, pad, pad, pad),
        activation=ir.RELU if relu else ir.LINEAR,
        out_quantizer=QuantizedRelu(4, 1) if relu else QuantizedBits(6, 2),
        inputs=inputs,
    )


def head(nodes, rng, classes=4):
    last = nodes[-1]
    n = int(np.prod(last.out_shape))
    nodes.append(ir.Flatten("flat", last.out_shape, (n,), inputs=(last.name,)))
    nodes.append(ir.Dense("dense", (n,), (classes,), inputs=("flat",),
                          weights=ir.FloatTensor(rng.normal(size=(n, classes)), KQ)))
    return nodes


def residual_cnn(h=5, w=6, c=2, seed=0, kind=MergeOp.ADD, kernel=3) -> ir.ModelGraph:
    """in -> conv -> conv -> (merge with in) -> flatten -> dense: a ResNet block."""
    rng = np.random.default_rng(seed)
    shape = (h, w, c)
    nodes = [
        ir.Input("in", shape, shape),
        conv("c1", shape, c, kernel, rng, ("in",)),
        conv("c2", shape, c, kernel, rng, ("c1",), relu=False),
        Merge("merge", shape, shape, kind=kind, input_count=2, inputs=("c2", "in")),
    ]
    return lower(ir.ModelGraph("residual", tuple(head(nodes, rng))),
                 PrecisionConfig(input=FixedType(6, 3)))


def inception_cnn(h=4, w=7, c=2, seed=1) -> ir.ModelGraph:
    """in -> {1x1 conv, 3x3 conv, 3x3 conv -> 3x3 conv, identity} -> concat -> dense."""
    rng = np.random.default_rng(seed)
    shape = (h, w, c)
    nodes = [
        ir.Input("in", shape, shape),
        conv("b1", shape, 2, 1, rng, ("in",)),
        conv("b3", shape, 3, 3, rng, ("in",)),
        conv("b5a", shape, 2, 3, rng, ("in",)),
        conv("b5b", (h, w, 2), 2, 3, rng, ("b5a",)),
        Concat("cat", shape, (h, w, 2 + 3 + 2 + c), input_sizes=(2, 3, 2, c),
               inputs=("b1", "b3", "b5b", "in")),
    ]
    return lower(ir.ModelGraph("inception", tuple(head(nodes, rng))),
                 PrecisionConfig(input=FixedType(6, 3)))


def two_skip_mlp(seed=2) -> ir.ModelGraph:
    """Vectors (one beat per sample): in -> d1 -> d2 -> add(d2, d1) -> average(add, in')"""
    rng = np.random.default_rng(seed)

    def dense(name, n_in, n_out, inputs):
        return ir.Dense(name, (n_in,), (n_out,), inputs=inputs, activation=ir.RELU,
                        weights=ir.FloatTensor(rng.normal(size=(n_in, n_out)) * 0.5, KQ),
                        out_quantizer=QuantizedRelu(5, 2))

    nodes = [
        ir.Input("in", (6,), (6,)),
        dense("d1", 6, 5, ("in",)),
        dense("d2", 5, 5, ("d1",)),
        Merge("add", (5,), (5,), kind=MergeOp.ADD, input_count=2, inputs=("d2", "d1")),
        dense("d3", 6, 5, ("in",)),
        Merge("avg", (5,), (5,), kind=MergeOp.AVERAGE, input_count=3,
              inputs=("add", "d3", "d1")),
    ]
    return lower(ir.ModelGraph("mlp_dag", tuple(nodes)), PrecisionConfig(input=FixedType(8, 4)))


# ---------------------------------------------------------------------------------------
# IR
def test_a_graph_checks_its_wiring():
    shape = (4,)
    with pytest.raises(RtlgenError, match="its input 'b' is later in the graph"):
        ir.ModelGraph("g", (ir.Input("in", shape, shape),
                            ir.Flatten("a", shape, shape, inputs=("b",)),
                            ir.Flatten("b", shape, shape)))
    with pytest.raises(RtlgenError, match="input 'nope' is not in the graph"):
        ir.ModelGraph("g", (ir.Input("in", shape, shape), ir.Flatten("a", shape, shape, inputs=("nope",))))
    with pytest.raises(RtlgenError, match="does not match"):
        ir.ModelGraph("g", (ir.Input("in", shape, shape),
                            Merge("m", (5,), (5,), kind=MergeOp.ADD, input_count=2, inputs=("in", "in"))))
    with pytest.raises(RtlgenError, match="graph output 'x' is not a node"):
        ir.ModelGraph("g", (ir.Input("in", shape, shape),), outputs=("x",))
    chain = ir.ModelGraph("g", (ir.Input("in", shape, shape), ir.Flatten("a", shape, shape)))
    assert chain.is_chain and chain.node("a").inputs == ("in",) and chain.outputs == ("a",)


def test_batchnorm_is_not_folded_into_a_layer_that_forks():
    rng = np.random.default_rng(0)
    shape = (3,)
    nodes = (
        ir.Input("in", shape, shape),
        ir.Dense("d", shape, shape, weights=ir.FloatTensor(rng.normal(size=(3, 3)))),
        ir.ScaleShift("bn", shape, shape, scale=ir.FloatTensor(np.full(3, 2.0)),
                      shift=ir.FloatTensor(np.zeros(3)), inputs=("d",)),
        Merge("add", shape, shape, kind=MergeOp.ADD, input_count=2, inputs=("bn", "d")),
    )
    graph = lower(ir.ModelGraph("g", nodes))
    assert [n.name for n in graph.nodes] == ["in", "d", "bn", "add"]  # d feeds two nodes
    chain = lower(ir.ModelGraph("g", nodes[:3]))
    assert [n.name for n in chain.nodes] == ["in", "d"] and chain.outputs == ("d",)


def test_reference_of_a_dag_is_the_ops_composed():
    graph = two_skip_mlp()
    x = random_inputs(graph, 20, seed=3)
    values = {"in": x}
    from rtlgen.quant.reference import run_merge, run_node

    for index, node in enumerate(graph.nodes[1:], start=1):
        xs = tuple(values[i] for i in node.inputs)
        types = graph.in_types(index)
        values[node.name] = run_node(node, xs[0], types[0]) if len(xs) == 1 else run_merge(node, xs, types)
    np.testing.assert_array_equal(run_int(graph, x), values["avg"])
    multi = dataclasses.replace(graph, outputs=("avg", "d2"))
    outs = run_int_outputs(multi, x)
    assert list(outs) == ["avg", "d2"]
    np.testing.assert_array_equal(outs["d2"], values["d2"])


def test_saved_dags_load_back_exactly(tmp_path):
    for graph in (residual_cnn(), inception_cnn(), two_skip_mlp()):
        save_graph(graph, tmp_path / "g.npz")
        loaded = load_graph(tmp_path / "g.npz")
        assert [(n.name, n.inputs, n.out_type) for n in loaded.nodes] == [
            (n.name, n.inputs, n.out_type) for n in graph.nodes
        ]
        assert loaded.outputs == graph.outputs
        x = random_inputs(graph, 5, seed=1)
        np.testing.assert_array_equal(run_int(loaded, x), run_int(graph, x))


# ---------------------------------------------------------------------------------------
# hardware
GRAPHS = {
    "residual_add": lambda: residual_cnn(),
    "residual_subtract_5x5": lambda: residual_cnn(h=6, w=7, kind=MergeOp.SUBTRACT, kernel=5),
    "residual_concat": lambda: residual_concat(),
    "inception": lambda: inception_cnn(),
    "mlp_two_skips": lambda: two_skip_mlp(),
    "unet": lambda: unet(),
}


def unet(size=4, seed=5) -> ir.ModelGraph:
    """A U-Net level: in -> c1 -> strided conv (down) -> zero insertion + 2x2 conv (a
    Conv2DTranspose, up) -> concat with c1 (the skip waits for the down/up path, whose
    zero insertion emits more beats than it takes) -> dense."""
    from rtlgen.ops.conv_transpose import ZeroInsertion

    rng = np.random.default_rng(seed)
    shape = (size, size, 2)
    half = size // 2
    c1 = conv("c1", shape, 3, 3, rng, ("in",))
    down = dataclasses.replace(
        conv("down", c1.out_shape, 4, 2, rng, ("c1",), same=False),
        out_shape=(half, half, 4), stride=(2, 2), name="down",
    )
    grid = (2 * half + 1, 2 * half + 1, 4)  # (half - 1) * 2 + 1 + 1 before + 1 after
    nodes = [
        ir.Input("in", shape, shape),
        c1,
        down,
        ZeroInsertion("zeros", down.out_shape, grid, strides=(2, 2), padding=(1, 1, 1, 1),
                      inputs=("down",)),
        conv("up", grid, 3, 2, rng, ("zeros",), same=False),
        Concat("cat", (size, size, 3), (size, size, 6), input_sizes=(3, 3), inputs=("up", "c1")),
    ]  # fmt: skip
    return lower(ir.ModelGraph("unet", tuple(head(nodes, rng))), PrecisionConfig(input=FixedType(6, 3)))


def residual_concat() -> ir.ModelGraph:
    rng = np.random.default_rng(4)
    shape = (4, 5, 2)
    nodes = [
        ir.Input("in", shape, shape),
        conv("c1", shape, 3, 3, rng, ("in",)),
        Concat("cat", shape, (4, 5, 5), input_sizes=(3, 2), inputs=("c1", "in")),
    ]
    return lower(ir.ModelGraph("cat", tuple(head(nodes, rng))), PrecisionConfig(input=FixedType(6, 3)))


# The inception graph (the largest, ~40 s of simulation each) runs in the slow set.
IN_DEFAULT_SET = [pytest.param(name, marks=pytest.mark.slow) if name == "inception" else name
                  for name in GRAPHS]


@pytest.mark.parametrize("name", IN_DEFAULT_SET)
def test_dags_are_bit_exact_under_backpressure(name):
    graph = GRAPHS[name]()
    assert not graph.is_chain
    for seed, (valid, ready) in enumerate([(0.6, 0.5), (1.0, 0.3), (0.3, 1.0)]):
        bit_exact_in_simulator(graph, n=3, valid_prob=valid, ready_prob=ready, seed=seed)


@pytest.mark.parametrize("name", IN_DEFAULT_SET)
def test_dag_timing_is_predicted_cycle_exactly(name):
    timing_matches_model(GRAPHS[name]())


def chained_merges(length=8, seed=0) -> ir.ModelGraph:
    """(L, 2) -> 1D convs a (relu) and b (linear) -> a - b, a * b -> max of the two ->
    dense: the fork's branches take turns stalling it and the gaps between samples repeat
    in a pattern of several samples (11, 11, 12, ...)."""
    rng = np.random.default_rng(seed)
    shape = (length, 4)

    def conv1d(name, relu):
        return ir.Conv(
            name, (length, 2), shape,
            weights=ir.FloatTensor(rng.normal(size=(1, 3, 2, 4)) * 0.6, KQ),
            bias=ir.FloatTensor(rng.normal(size=4) * 0.2, KQ),
            kernel=(1, 3), stride=(1, 1), padding=(0, 0, 1, 1),
            activation=ir.RELU if relu else ir.LINEAR,
            out_quantizer=QuantizedRelu(4, 1) if relu else QuantizedBits(6, 2),
            inputs=("x",),
        )  # fmt: skip

    nodes = [
        ir.Input("x", (length, 2), (length, 2)),
        conv1d("a", True),
        conv1d("b", False),
        Merge("sub", shape, shape, kind=MergeOp.SUBTRACT, input_count=2, inputs=("a", "b")),
        Merge("mul", shape, shape, kind=MergeOp.MULTIPLY, input_count=2, inputs=("a", "b")),
        Merge("max", shape, shape, kind=MergeOp.MAXIMUM, input_count=2, inputs=("sub", "mul")),
    ]
    return lower(ir.ModelGraph("turns", tuple(head(nodes, rng))), PrecisionConfig(input=FixedType(6, 3)))


def test_an_ii_that_repeats_over_several_samples_is_predicted_by_its_largest_gap():
    """The manifest's latency and II hold over 12 samples at full rate, not only over the
    first few (found on a new user's 1D network: manifest II 22, measured 24)."""
    from rtlgen.emit import predict_timing
    from rtlgen.timing import model_top

    graph = chained_merges()
    top = NetworkTop(graph)
    latency, ii, _ = predict_timing(top)
    assert model_top(top, 3).ii < ii  # the first samples alone show a smaller gap
    run = bit_exact_in_simulator(graph, 12, 1.0, 1.0)
    assert max(np.diff(run.first_in).tolist()) == ii
    assert max(o - f for f, o in zip(run.first_in, run.last_out, strict=True)) == latency


def test_fifo_sizes_are_reported_per_join_input():
    plan = plan_network(inception_cnn())
    by_input = {(f.consumer, f.input_index): f for f in plan.fifos}
    # the two-conv branch (input 2) arrives last and needs no FIFO; the others wait for it
    assert set(by_input) == {("cat", 0), ("cat", 1), ("cat", 3)}
    assert by_input[("cat", 3)].producer == "in" and by_input[("cat", 3)].width == 2 * 6
    assert by_input[("cat", 3)].depth > by_input[("cat", 1)].depth > 0
    assert all(f.bits == f.depth * f.width for f in plan.fifos)


@pytest.mark.parametrize("name", IN_DEFAULT_SET)
def test_fifo_sizes_are_tight(name, monkeypatch):
    """One beat less on the deepest skip FIFO: the network no longer runs at its full-rate
    latency and II (or deadlocks, caught by the runner's timeout): the plan shrinks every
    FIFO on the handshake model to the least depth that keeps the full-rate timing (the
    registers of a waiting branch hold a few beats themselves, as in inception)."""
    graph = GRAPHS[name]()
    top = NetworkTop(graph)
    deepest = max(range(len(top.plan.fifos)), key=lambda i: top.plan.fifos[i].depth)
    # the samples the sizing modelled: a FIFO sized for the steady state (a skip waiting
    # over several one-beat samples) shows one beat less only once that many have entered
    x = random_inputs(graph, steady_samples(top), seed=0)
    reference = run_int(graph, x)
    full = run_top(graph, x)
    np.testing.assert_array_equal(full.outputs, reference)

    import rtlgen.hardware as hardware

    original = hardware.plan_network

    def smaller(g, options):
        plan = original(g, options)
        fifos = list(plan.fifos)
        fifos[deepest] = dataclasses.replace(fifos[deepest], depth=fifos[deepest].depth - 1)
        return dataclasses.replace(plan, fifos=tuple(fifos))

    monkeypatch.setattr(hardware, "plan_network", smaller)
    try:
        short = run_top(graph, x)
    except AssertionError as exc:  # the runner's cycle limit: a deadlock
        assert "timeout" in str(exc)
        return
    np.testing.assert_array_equal(short.outputs, reference)  # slower, never wrong
    assert (short.first_in, short.last_out) != (full.first_in, full.last_out)
    assert all(s >= f for s, f in zip(short.last_out, full.last_out, strict=True))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["residual_add", "inception", "unet"])
def test_dags_in_verilator(name, tmp_path, tmp_path_factory):
    design = bit_exact_in_verilator(GRAPHS[name](), tmp_path, tmp_path_factory.mktemp("vcache"))
    assert design.manifest.latency_cycles > 0


def test_a_budget_plan_gets_the_least_fifo_depths_its_latency_probes_skip():
    """The budget search times its plans with the join FIFOs at the depths the exact shrink
    starts from (the same timing, fewer model runs); the plan it returns has the least
    depths, as planned directly with its options."""
    from rtlgen.plan import _planned_latency
    from rtlgen.timing import model_top

    graph = GRAPHS["inception"]()
    default = model_top(NetworkTop(graph, HardwareOptions(latency_budget=None))).latency
    searched = NetworkTop(graph, HardwareOptions(latency_budget=default)).plan
    least = plan_network(graph, searched.options).fifos
    assert searched.fifos == least
    probe, latency = _planned_latency(graph, searched.options)
    assert latency == default
    assert [f.depth for f in probe.fifos] != [f.depth for f in least]  # not shrunk there
    assert all(p.depth >= f.depth for p, f in zip(probe.fifos, least, strict=True))
