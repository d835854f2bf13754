"""Multiple model inputs (issue 14): each `Input` of the graph on its own AXI4-Stream slave
(`s_axis_*`, then `s1_axis_*` ...) with its own tlast; the manifest names every input
(`inputs`: name, shape, type, prefix, beats per sample); the reference, `predict` and `sim`
take one array per input name (`.npz`); Keras Functional models with several `Input` layers
in Keras 2 and Keras 3 config layouts, in the order of the model's ``input_layers``.

Joins of branches from different inputs need no FIFO (nothing forks into both: the slaves
wait); a fork inside one input's branch still gets its FIFO. The hardware runs in Amaranth's
simulator with independent random gaps on every slave and an independent random tready on
every master; the Verilator runs (through `rtlgen convert` + `rtlgen sim`) are marked slow.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import random
import re
import warnings

import numpy as np
import pytest

from rtlgen import ir
from rtlgen.api import load_model, predict_outputs
from rtlgen.emit import convert, output_timing, predict_timing
from rtlgen.frontend import read_model
from rtlgen.hardware import HardwareOptions, NetworkTop
from rtlgen.manifest import read_manifest
from rtlgen.ops.concatenate import Concat
from rtlgen.ops.merge import Merge
from rtlgen.passes import PrecisionConfig, lower
from rtlgen.plan import input_names, plan_network
from rtlgen.quant.errors import RtlgenError
from rtlgen.quant.fixed import FixedType
from rtlgen.quant.merge import MergeOp
from rtlgen.quant.quantizers import QuantizedBits, QuantizedRelu
from rtlgen.quant.reference import run_int, run_int_outputs
from rtlgen.serialize import load_graph, save_graph

from ..models import write_weights_h5
from .cli_run import rtlgen, rtlgen_in_process
from .nets import run_counting_cycles

KQ = QuantizedBits(4, 0)


def _dense(rng, name, n_in, n_out, inputs, relu=True):
    return ir.Dense(
        name,
        (n_in,),
        (n_out,),
        inputs=inputs,
        activation=ir.RELU if relu else ir.LINEAR,
        weights=ir.FloatTensor(rng.normal(size=(n_in, n_out)) * 0.5, KQ),
        bias=ir.FloatTensor(rng.normal(size=n_out) * 0.2, KQ),
        out_quantizer=QuantizedRelu(5, 2) if relu else None,
    )


def _conv(rng, name, shape, cout, kernel, inputs, relu=True):
    h, w, cin = shape
    pad = kernel // 2
    return ir.Conv(
        name,
        shape,
        (h, w, cout),
        inputs=inputs,
        weights=ir.FloatTensor(rng.normal(size=(kernel, kernel, cin, cout)) * 0.6, KQ),
        bias=ir.FloatTensor(rng.normal(size=cout) * 0.2, KQ),
        kernel=(kernel, kernel),
        stride=(1, 1),
        padding=(pad, pad, pad, pad),
        activation=ir.RELU if relu else ir.LINEAR,
        out_quantizer=QuantizedRelu(4, 1) if relu else QuantizedBits(6, 2),
    )


def two_vector_mlp(seed=0) -> ir.ModelGraph:
    """a (6,) -> da, b (3,) -> db; concat(da, db) -> out: two one-beat inputs joined."""
    rng = np.random.default_rng(seed)
    nodes = [
        ir.Input("a", (6,), (6,)),
        ir.Input("b", (3,), (3,)),
        _dense(rng, "da", 6, 5, ("a",)),
        _dense(rng, "db", 3, 4, ("b",)),
        Concat("cat", (5,), (9,), input_sizes=(5, 4), inputs=("da", "db")),
        _dense(rng, "out", 9, 3, ("cat",), relu=False),
    ]
    return lower(ir.ModelGraph("two_in", tuple(nodes)), PrecisionConfig(input=FixedType(8, 4)))


def image_and_features(seed=1, image_first=True) -> ir.ModelGraph:
    """A jet image (5, 6, 2) -> conv -> 2x2 max pool -> flatten, and high-level features
    (4,) -> dense, concatenated -> dense head: a 30-beat input beside a one-beat one (the
    features wait at the join for the image's 30 beats)."""
    rng = np.random.default_rng(seed)
    image = ir.Input("image", (5, 6, 2), (5, 6, 2))
    features = ir.Input("features", (4,), (4,))
    nodes = [
        *((image, features) if image_first else (features, image)),
        _conv(rng, "c1", (5, 6, 2), 3, 3, ("image",)),
        ir.Pool(
            "pool",
            (5, 6, 3),
            (2, 3, 3),
            kind=ir.PoolKind.MAX,
            pool=(2, 2),
            stride=(2, 2),
            inputs=("c1",),
        ),
        ir.Flatten("flat", (2, 3, 3), (18,), inputs=("pool",)),
        _dense(rng, "df", 4, 5, ("features",)),
        Concat("cat", (18,), (23,), input_sizes=(18, 5), inputs=("flat", "df")),
        _dense(rng, "head", 23, 4, ("cat",), relu=False),
    ]
    name = "jets" if image_first else "jets_features_first"
    return lower(ir.ModelGraph(name, tuple(nodes)), PrecisionConfig(input=FixedType(6, 3)))


def two_images_added(seed=2) -> ir.ModelGraph:
    """Two (4, 5, 2) images, each through its own conv, added pixel by pixel -> head: a
    join of two multi-beat streams from different inputs."""
    rng = np.random.default_rng(seed)
    shape = (4, 5, 2)
    nodes = [
        ir.Input("left", shape, shape),
        ir.Input("right", shape, shape),
        _conv(rng, "cl", shape, 2, 3, ("left",)),
        _conv(rng, "cr", shape, 2, 1, ("right",)),
        Merge("add", shape, shape, kind=MergeOp.ADD, input_count=2, inputs=("cl", "cr")),
        ir.Flatten("flat", shape, (40,), inputs=("add",)),
        _dense(rng, "head", 40, 3, ("flat",), relu=False),
    ]
    return lower(ir.ModelGraph("stereo", tuple(nodes)), PrecisionConfig(input=FixedType(6, 3)))


def residual_and_features(seed=3) -> ir.ModelGraph:
    """An image input with a residual block (a fork on the image: its skip FIFO) whose
    flattened result joins a second input's dense branch; the second input also feeds a
    second output directly through a dense (two inputs, two outputs)."""
    rng = np.random.default_rng(seed)
    shape = (4, 5, 2)
    nodes = [
        ir.Input("image", shape, shape),
        ir.Input("vec", (3,), (3,)),
        _conv(rng, "c1", shape, 2, 3, ("image",)),
        Merge("res", shape, shape, kind=MergeOp.ADD, input_count=2, inputs=("c1", "image")),
        ir.Flatten("flat", shape, (40,), inputs=("res",)),
        _dense(rng, "dv", 3, 4, ("vec",)),
        Concat("cat", (40,), (44,), input_sizes=(40, 4), inputs=("flat", "dv")),
        _dense(rng, "cls", 44, 3, ("cat",), relu=False),
        _dense(rng, "aux", 4, 2, ("dv",), relu=False),
    ]
    graph = ir.ModelGraph("res_vec", tuple(nodes), outputs=("cls", "aux"))
    return lower(graph, PrecisionConfig(input=FixedType(6, 3)))


def input_straight_into_join(seed=4) -> ir.ModelGraph:
    """b (4,) goes into the concat as it is, beside a's two dense layers."""
    rng = np.random.default_rng(seed)
    nodes = [
        ir.Input("a", (5,), (5,)),
        ir.Input("b", (4,), (4,)),
        _dense(rng, "d1", 5, 6, ("a",)),
        _dense(rng, "d2", 6, 4, ("d1",)),
        Concat("cat", (4,), (8,), input_sizes=(4, 4), inputs=("d2", "b")),
        _dense(rng, "out", 8, 3, ("cat",), relu=False),
    ]
    return lower(ir.ModelGraph("direct", tuple(nodes)), PrecisionConfig(input=FixedType(8, 4)))


def residual_across_inputs(seed=5) -> ir.ModelGraph:
    """a -> 3x3 conv, b -> 1x1 conv, added (a join across inputs), then the sum added to a
    again (a residual: a fork on a whose skip passes the cross-input join)."""
    rng = np.random.default_rng(seed)
    shape = (4, 5, 2)
    nodes = [
        ir.Input("a", shape, shape),
        ir.Input("b", shape, shape),
        _conv(rng, "ca", shape, 2, 3, ("a",)),
        _conv(rng, "cb", shape, 2, 1, ("b",)),
        Merge("m", shape, shape, kind=MergeOp.ADD, input_count=2, inputs=("ca", "cb")),
        Merge("res", shape, shape, kind=MergeOp.ADD, input_count=2, inputs=("m", "a")),
        ir.Flatten("flat", shape, (40,), inputs=("res",)),
        _dense(rng, "head", 40, 3, ("flat",), relu=False),
    ]
    return lower(ir.ModelGraph("mixed", tuple(nodes)), PrecisionConfig(input=FixedType(6, 3)))


GRAPHS = {
    "two-vectors": two_vector_mlp,
    "image-and-features": image_and_features,
    "features-first": lambda: image_and_features(image_first=False),
    "two-images-added": two_images_added,
    "residual-and-features": residual_and_features,
    "input-straight-into-join": input_straight_into_join,
    "residual-across-inputs": residual_across_inputs,
}


def random_inputs(graph: ir.ModelGraph, n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        node.name: rng.integers(
            node.out_type.min_int, node.out_type.max_int + 1, size=(n, *node.out_shape)
        )
        for node in graph.input_nodes
    }


# ---------------------------------------------------------------------------------------
# an AXI4-Stream runner with one source per input, each with its own random gaps
@dataclasses.dataclass
class MultiRun:
    outputs: dict[str, np.ndarray]  # output node -> (N, *shape) mantissas
    classes: dict[str, list[int]]
    first_in: dict[str, list[int]]  # input node -> cycle of each sample's first beat
    last_out: dict[str, list[int]]  # output node -> cycle of each sample's last beat

    @property
    def starts(self) -> list[int]:
        """Per sample, the first-beat handshake of the input that took it last (where the
        timing model counts latency and II from)."""
        return [max(times) for times in zip(*self.first_in.values(), strict=True)]


def run_multi(
    graph: ir.ModelGraph,
    x_int: dict[str, np.ndarray],
    valid_prob: float = 1.0,
    ready_prob: float = 1.0,
    seed: int = 0,
    options: HardwareOptions = HardwareOptions(),
    top: NetworkTop | None = None,
) -> MultiRun:
    """Stream every input's samples into its own slave (independent random gaps, seeded per
    input) and take every master's beats (independent random tready); tlast checked on
    every output beat."""
    top = top or NetworkTop(graph, options)
    samples = len(next(iter(x_int.values())))
    first_in: dict[str, list[int]] = {spec.node: [] for spec in top.inputs}
    last_out: dict[str, list[int]] = {out.node: [] for out in top.outputs}
    classes: dict[str, list[int]] = {out.node: [] for out in top.outputs}
    words: dict[str, list[int]] = {out.node: [] for out in top.outputs}
    cycle = {"n": 0}

    def source_for(index: int):
        spec = top.inputs[index]
        fmt = spec.format
        port = functools.partial(top.input_port, index)
        mask = (1 << fmt.type.width) - 1
        beats = [row.reshape(fmt.beats, fmt.elements) for row in x_int[spec.node]]

        async def source(ctx):
            rng = random.Random(f"{seed}/in{index}")
            for sample in beats:
                for b, beat in enumerate(sample):
                    while valid_prob < 1 and rng.random() >= valid_prob:
                        ctx.set(port("tvalid"), 0)
                        await ctx.tick()
                    word = sum((int(v) & mask) << (k * fmt.type.width) for k, v in enumerate(beat))
                    ctx.set(port("tdata"), word)
                    ctx.set(port("tvalid"), 1)
                    ctx.set(port("tlast"), b == fmt.beats - 1)
                    while True:
                        _, _, ready = await ctx.tick().sample(port("tready"))
                        if ready:
                            break
                    if b == 0:
                        first_in[spec.node].append(cycle["n"] - 1)
            ctx.set(port("tvalid"), 0)

        return source

    def sink_for(index: int):
        out = top.outputs[index]
        fmt, got = out.format, words[out.node]
        port = functools.partial(top.port, index)
        signals = [port("tvalid"), port("tdata"), port("tlast")]
        if out.classes:
            signals.append(port("tuser"))

        async def sink(ctx):
            rng = random.Random(f"{seed}/out{index}")
            while len(got) < samples * fmt.beats:
                ready = ready_prob >= 1 or rng.random() < ready_prob
                ctx.set(port("tready"), ready)
                sampled = await ctx.tick().sample(*signals)
                valid, tdata, tlast = sampled[2], sampled[3], sampled[4]
                if valid and ready:
                    got.append(int(tdata))
                    expect_last = len(got) % fmt.beats == 0
                    assert bool(tlast) == expect_last, f"{out.prefix}_tlast wrong"
                    if expect_last:
                        last_out[out.node].append(cycle["n"] - 1)
                        if out.classes:
                            classes[out.node].append(int(sampled[5]))
                assert cycle["n"] < 200_000, "timeout"
            ctx.set(port("tready"), 1)

        return sink

    run_counting_cycles(
        top,
        cycle,
        [
            *(source_for(k) for k in range(len(top.inputs))),
            *(sink_for(k) for k in range(len(top.outputs))),
        ],
    )
    outputs = {}
    for out in top.outputs:
        fmt = out.format
        values = []
        for word in words[out.node]:
            for k in range(fmt.elements):
                v = (word >> (k * fmt.type.width)) & ((1 << fmt.type.width) - 1)
                if fmt.type.signed and v >= 1 << (fmt.type.width - 1):
                    v -= 1 << fmt.type.width
                values.append(v)
        outputs[out.node] = np.array(values).reshape(samples, *graph.node(out.node).out_shape)
    return MultiRun(outputs, classes, first_in, last_out)


# ---------------------------------------------------------------------------------------
# IR, reference
def test_reference_takes_one_array_per_input_name():
    graph = two_vector_mlp()
    x = random_inputs(graph, 5)
    y = run_int(graph, x)
    # the same composition by hand: each branch alone, then the head on the concat
    da = run_int(ir.ModelGraph("a", (graph.node("a"), graph.node("da"))), x["a"])
    db = run_int(ir.ModelGraph("b", (graph.node("b"), graph.node("db"))), x["b"])
    assert y.shape == (5, 3) and da.shape == (5, 5) and db.shape == (5, 4)
    reordered = {"b": x["b"], "a": x["a"]}  # a mapping: order does not matter
    np.testing.assert_array_equal(run_int(graph, reordered), y)
    batched = run_int_outputs(graph, x, batch_size=2)["out"]
    np.testing.assert_array_equal(batched, y)


@pytest.mark.parametrize(
    "x, fragment",
    [
        (lambda x: x["a"], "has 2 inputs \\(a, b\\); give one input mantissa array per input"),
        (
            lambda x: {"a": x["a"]},
            "arrays named \\[a\\]; model 'two_in' takes one array per input: a, b",
        ),
        (lambda x: {**x, "c": x["a"]}, "arrays named \\[a, b, c\\]"),
        (lambda x: {**x, "b": x["b"][:2]}, "different numbers of samples: a 4, b 2"),
        (lambda x: {**x, "b": x["b"][:, :2]}, "input 'b' mantissas have shape \\(2,\\)"),
        (lambda x: {**x, "b": x["b"] + 1000}, "input 'b' mantissas out of range"),
    ],
)
def test_reference_refuses_wrong_inputs_in_one_line(x, fragment):
    graph = two_vector_mlp()
    with pytest.raises(RtlgenError, match=fragment):
        run_int(graph, x(random_inputs(graph, 4)))


def test_one_input_graphs_still_take_one_array():
    from .nets import mlp
    from .nets import random_inputs as one_input

    graph = mlp()
    x = one_input(graph, 3)
    np.testing.assert_array_equal(run_int(graph, x), run_int(graph, {"in": x}))


def test_saved_multi_input_graph_loads_back_exactly(tmp_path):
    graph = residual_and_features()
    save_graph(graph, tmp_path / "g.npz")
    loaded = load_graph(tmp_path / "g.npz")
    assert [n.name for n in loaded.input_nodes] == ["image", "vec"]
    x = random_inputs(graph, 3)
    for name, y in run_int_outputs(graph, x).items():
        np.testing.assert_array_equal(run_int_outputs(loaded, x)[name], y)


# ---------------------------------------------------------------------------------------
# hardware
def test_one_slave_per_input_the_first_keeps_the_one_input_names():
    top = NetworkTop(image_and_features())
    ports = set(top.signature.members)
    assert {"s_axis_tdata", "s_axis_tvalid", "s_axis_tready", "s_axis_tlast"} <= ports
    assert {"s1_axis_tdata", "s1_axis_tvalid", "s1_axis_tready", "s1_axis_tlast"} <= ports
    assert "s2_axis_tdata" not in ports and "s1_axis_tuser" not in ports
    assert [(s.node, s.prefix) for s in top.inputs] == [
        ("image", "s_axis"),
        ("features", "s1_axis"),
    ]
    # the image: one pixel of 2 elements a beat; the features: the whole vector in one beat
    assert top.signature.members["s_axis_tdata"].shape.width == 2 * 6
    assert top.signature.members["s1_axis_tdata"].shape.width == 4 * 6
    assert [s.format.beats for s in top.inputs] == [30, 1]


#: in the default set (the others in the slow set: the default run stays under 5 minutes)
DEFAULT_GRAPHS = ("two-vectors", "residual-and-features", "residual-across-inputs")


@pytest.mark.parametrize(
    "name",
    [n if n in DEFAULT_GRAPHS else pytest.param(n, marks=pytest.mark.slow) for n in GRAPHS],
)
def test_bit_exact_under_independent_input_gaps_and_backpressure(name):
    graph = GRAPHS[name]()
    assert len(graph.input_nodes) == 2
    x = random_inputs(graph, 4, seed=3)
    want = run_int_outputs(graph, x)
    for seed, (valid, ready) in enumerate([(0.6, 0.5), (0.3, 1.0), (1.0, 0.3)]):
        run = run_multi(graph, x, valid_prob=valid, ready_prob=ready, seed=seed)
        for node, y in want.items():
            np.testing.assert_array_equal(run.outputs[node], y)
            if len(graph.node(node).out_shape) == 1:  # tuser = arg-max, first max wins
                assert run.classes[node] == [int(np.argmax(v)) for v in y]


def test_one_input_far_behind_the_other_still_bit_exact():
    """The features arrive long after their image (the image slave at full rate, the
    features slave idle 90% of the cycles): the join waits, nothing is lost or reordered."""
    graph = image_and_features()
    x = random_inputs(graph, 3, seed=5)
    top = NetworkTop(graph)
    assert top.plan.fifos == ()  # the branches share no input: no FIFO at the join
    run = run_multi(graph, x, valid_prob=0.1, seed=7, top=top)
    np.testing.assert_array_equal(run.outputs["head"], run_int(graph, x))


@pytest.mark.parametrize("name", list(GRAPHS))
def test_latency_and_ii_are_the_modelled_ones(name):
    """At full rate on every slave and master: each output's latency (from the sample's
    start, the first beat of the input that took it last) and the II are the model's, and
    the manifest's figures (a few samples) hold over a longer run (12 samples: a one-beat
    input that waits at a join for another input's deep branch reaches its steady state)."""
    from rtlgen.timing import model_top, steady_samples

    graph = GRAPHS[name]()
    top = NetworkTop(graph)
    samples = max(steady_samples(top), 12)
    run = run_multi(graph, random_inputs(graph, samples, seed=4), top=top)
    timings = output_timing(top)
    assert timings[0][:2] == predict_timing(top)[:2]
    assert timings == output_timing(top, samples)
    modelled = model_top(top, samples)
    assert (modelled.latency, modelled.ii) == timings[0]
    starts = run.starts
    assert tuple(starts) == modelled.first_in
    for (latency, ii), out in zip(timings, top.outputs, strict=True):
        lasts = run.last_out[out.node]
        assert max(o - f for f, o in zip(starts, lasts, strict=True)) == latency
        assert max(np.diff(starts).tolist()) == ii


def test_fifos_where_a_fork_feeds_the_join_or_the_full_rate_needs_one():
    """A join's inputs that share a network input (a fork feeds both) get FIFOs as in a
    one-input graph. A join across inputs needs none where the branches arrive together
    (two dense branches) or the other branch is always behind (features waiting for an
    image's 30 beats); where one input's branch is much shorter it gets the entries that
    keep both slaves at full rate (b straight into the concat waits for a's two layers)."""

    def fifos(graph):
        return {(f.consumer, f.input_index, f.producer): f.depth for f in plan_network(graph).fifos}

    planned = {name: fifos(build()) for name, build in GRAPHS.items()}
    assert planned["two-vectors"] == {}
    assert planned["image-and-features"] == {}
    assert planned["features-first"] == {}
    straight = planned["input-straight-into-join"]
    assert list(straight) == [("cat", 1, "b")] and straight[("cat", 1, "b")] > 3
    assert set(planned["residual-and-features"]) == {("res", 1, "image"), ("cat", 1, "dv")}
    assert set(planned["residual-across-inputs"]) == {("m", 1, "cb"), ("res", 1, "a")}
    # the cases of test_fifo_sizes_are_tight: every FIFO of every graph
    assert {name: len(found) for name, found in planned.items() if found} == FIFO_COUNTS


#: FIFOs in each graph's plan (the others have none; the test above checks it), written out
#: so that collecting this module plans no network (~5 s in each test process)
FIFO_COUNTS = {
    "two-images-added": 1,
    "residual-and-features": 2,
    "input-straight-into-join": 1,
    "residual-across-inputs": 2,
}
TIGHT = [(name, k) for name in GRAPHS for k in range(FIFO_COUNTS.get(name, 0))]


@pytest.mark.parametrize(
    "name, index",
    # the first FIFO of each graph by default, the others in the slow set (5-minute run)
    [(n, k) if k == 0 else pytest.param(n, k, marks=pytest.mark.slow) for n, k in TIGHT],
)
def test_fifo_sizes_are_tight(name, index, monkeypatch):
    """One beat less on a FIFO (or none, where one beat was planned): over a run of 12
    samples at full rate the network is slower (a later sample start or output) or
    deadlocks (the runner's timeout), never wrong."""
    graph = GRAPHS[name]()
    x = random_inputs(graph, 12, seed=0)
    want = run_int_outputs(graph, x)
    full = run_multi(graph, x)
    for node, y in want.items():
        np.testing.assert_array_equal(full.outputs[node], y)

    import rtlgen.hardware as hardware

    original = hardware.plan_network

    def smaller(g, options):
        plan = original(g, options)
        fifos = list(plan.fifos)
        fifo = fifos[index]
        if fifo.depth == 1:
            del fifos[index]
        else:
            fifos[index] = dataclasses.replace(fifo, depth=fifo.depth - 1)
        return dataclasses.replace(plan, fifos=tuple(fifos))

    monkeypatch.setattr(hardware, "plan_network", smaller)
    try:
        short = run_multi(graph, x)
    except AssertionError as exc:  # the runner's cycle limit: a deadlock
        assert "timeout" in str(exc)
        return
    for node, y in want.items():
        np.testing.assert_array_equal(short.outputs[node], y)
    assert (short.starts, short.last_out) != (full.starts, full.last_out)
    later = [s > f for s, f in zip(short.starts, full.starts, strict=True)] + [
        s > f
        for node in full.last_out
        for s, f in zip(short.last_out[node], full.last_out[node], strict=True)
    ]
    assert any(later)


def test_too_many_inputs_are_refused_in_one_line():
    from rtlgen.hardware import check_supported
    from rtlgen.sim_tb.tb_manifest import MAX_INPUTS

    rng = np.random.default_rng(0)
    count = MAX_INPUTS + 1
    nodes = [ir.Input(f"x{k}", (1,), (1,)) for k in range(count)]
    nodes.append(
        Concat(
            "cat",
            (1,),
            (count,),
            input_sizes=(1,) * count,
            inputs=tuple(f"x{k}" for k in range(count)),
        )
    )
    nodes.append(_dense(rng, "out", count, 2, ("cat",), relu=False))
    graph = lower(ir.ModelGraph("many", tuple(nodes)), PrecisionConfig(input=FixedType(8, 4)))
    with pytest.raises(
        RtlgenError, match=f"the model has {count} inputs; rtlgen builds at most 64"
    ):
        check_supported(graph)


# ---------------------------------------------------------------------------------------
# manifest, files, CLI
@pytest.fixture(scope="module")
def design(tmp_path_factory):
    return convert(residual_and_features(), tmp_path_factory.mktemp("mi") / "design")


def test_manifest_names_each_input_with_its_ports(design):
    manifest = read_manifest(design.outdir)
    assert manifest == design.manifest
    assert manifest.input_names == ("image", "vec")
    image, vec = manifest.inputs
    assert manifest.input == image and image.prefix == "s_axis" and vec.prefix == "s1_axis"
    assert (
        image.shape == (4, 5, 2) and image.beats_per_sample == 20 and image.elements_per_beat == 2
    )
    assert vec.shape == (3,) and vec.beats_per_sample == 1 and vec.tdata_width == 3 * 6
    assert vec.element.width == 6 and vec.element.frac == 3 and vec.type_origin == "unknown"
    raw = json.loads((design.outdir / "manifest.json").read_text())
    assert raw["input"] == raw["inputs"][0] and raw["inputs"][1]["name"] == "vec"
    report = (design.outdir / "REPORT.md").read_text()
    assert "input `vec`" in report and "`s1_axis_tdata`" in report


def _tampered(design, tmp_path, edit):
    import shutil

    outdir = tmp_path / "copy"
    shutil.copytree(design.outdir, outdir)
    raw = json.loads((outdir / "manifest.json").read_text())
    edit(raw)
    (outdir / "manifest.json").write_text(json.dumps(raw))
    return outdir


@pytest.mark.parametrize(
    "edit,fragment",
    [
        (
            lambda m: m["inputs"][1].update(prefix="s_axis"),
            "inputs[1].prefix is 's_axis', expected 's1_axis'",
        ),
        (lambda m: m["inputs"][1].update(name="image"), "names two inputs"),
        (lambda m: m["inputs"][1].update(name="a b"), "inputs[1].name is 'a b'"),
        (lambda m: m["inputs"][0].update(name="other"), "input is not the same as inputs[0]"),
        (lambda m: m["inputs"][1].update(tdata_width=5), "inputs[1].tdata_width 5"),
        (lambda m: m["inputs"][1].update(beats_per_sample=2), "inputs[1] has 2 beats"),
        (lambda m: m.update(inputs=[]), "inputs has 0 items"),
        (lambda m: m.update(inputs=[m["input"]] * 65), "inputs has 65 items"),
        (lambda m: m["input"].update(prefix="s1_axis"), "input is not the same as inputs[0]"),
        (
            lambda m: [
                m["input"].update(prefix="s1_axis"),
                m["inputs"][0].update(prefix="s1_axis"),
            ],
            "inputs[0].prefix is 's1_axis', expected 's_axis'",
        ),
    ],
)
def test_tampered_inputs_are_refused_in_one_line(design, tmp_path, edit, fragment):
    with pytest.raises(RtlgenError) as error:
        read_manifest(_tampered(design, tmp_path, edit))
    message = str(error.value)
    assert "\n" not in message and fragment in message, message


def test_a_manifest_without_inputs_reads_as_one_input(design, tmp_path):
    def old(raw):
        del raw["inputs"]
        for key in ("name", "prefix"):
            del raw["input"][key]

    manifest = read_manifest(_tampered(design, tmp_path, old))
    assert len(manifest.inputs) == 1 and manifest.input_names == ("input",)
    assert manifest.input.prefix == "s_axis" and manifest.input.shape == (4, 5, 2)


def test_vectors_need_one_array_per_input(design):
    from rtlgen.sim_tb.tb_manifest import ManifestError, check_vectors

    manifest = read_manifest(design.outdir)
    graph = residual_and_features()
    x = random_inputs(graph, 2)
    ys = dict(zip(manifest.output_names, run_int_outputs(graph, x).values(), strict=True))
    check_vectors(manifest, x, ys)
    with pytest.raises(ManifestError, match="2 inputs .image, vec.; give one array per input"):
        check_vectors(manifest, x["image"], ys)
    with pytest.raises(ManifestError, match="arrays named \\['image'\\], expected one per input"):
        check_vectors(manifest, {"image": x["image"]}, ys)
    with pytest.raises(ManifestError, match="x_int\\['vec'\\]: shape \\(2, 4\\)"):
        check_vectors(manifest, {**x, "vec": np.zeros((2, 4), dtype=np.int64)}, ys)
    with pytest.raises(ManifestError, match="x_int\\['vec'\\]: values in"):
        check_vectors(manifest, {**x, "vec": x["vec"] + 1000}, ys)
    with pytest.raises(
        ManifestError, match="x_int\\['image'\\] has 2 samples and x_int\\['vec'\\] 1"
    ):
        check_vectors(manifest, {**x, "vec": x["vec"][:1]}, ys)


def _float_inputs(graph, n, seed):
    return {
        name: node.out_type.to_float(x)
        for (name, x), node in zip(
            random_inputs(graph, n, seed).items(), graph.input_nodes, strict=True
        )
    }


def test_predict_takes_an_npz_per_input_name(design, tmp_path):
    graph = load_model(design.outdir)
    assert input_names(graph) == ("image", "vec")
    x = _float_inputs(graph, 3, seed=5)
    np.savez(tmp_path / "x.npz", **x)
    result = rtlgen_in_process(
        "predict", design.outdir, "-i", tmp_path / "x.npz", "-o", tmp_path / "y.npz"
    )
    assert result.returncode == 0, result.stderr
    want = predict_outputs(graph, x)
    with np.load(tmp_path / "y.npz") as arrays:
        assert sorted(arrays.files) == ["aux", "cls"]
        for name in ("aux", "cls"):
            np.testing.assert_array_equal(arrays[name], want[name])


@pytest.mark.parametrize(
    "arrays, fragment",
    [
        (
            lambda x: {"image": x["image"]},
            "arrays named [image]; expected one per input: image, vec",
        ),
        (lambda x: {**x, "extra": x["vec"]}, "arrays named [extra, image, vec]"),
        (lambda x: {**x, "vec": x["vec"][:, :2]}, "input 'vec' has shape (2,) per sample"),
        (lambda x: {**x, "vec": x["vec"][:2]}, "different numbers of samples: image 3, vec 2"),
        (lambda x: x["image"], "has 2 inputs (image, vec); give an .npz with one array per input"),
    ],
)
def test_predict_refuses_bad_input_files_in_one_line(design, tmp_path, arrays, fragment):
    graph = load_model(design.outdir)
    given = arrays(_float_inputs(graph, 3, seed=6))
    path = tmp_path / ("x.npz" if isinstance(given, dict) else "x.npy")
    if isinstance(given, dict):
        np.savez(path, **given)
    else:
        np.save(path, given)
    result = rtlgen_in_process("predict", design.outdir, "-i", path, "-o", tmp_path / "y.npz")
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_inspect_lists_the_inputs(design):
    result = rtlgen_in_process("inspect", design.outdir, "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert [(i["name"], i["shape"], i["port"]) for i in info["inputs"]] == [
        ("image", [4, 5, 2], "s_axis"),
        ("vec", [3], "s1_axis"),
    ]
    text = rtlgen_in_process("inspect", design.outdir)
    assert text.returncode == 0 and "s1_axis" in text.stdout and "vec" in text.stdout


# ---------------------------------------------------------------------------------------
# Keras Functional configs with several Input layers (Keras 2 and Keras 3 layouts)
def _node(sources, keras3):
    if keras3:
        tensors = [
            {"class_name": "__keras_tensor__", "config": {"keras_history": [s, 0, 0]}}
            for s in sources
        ]
        return {"args": [tensors] if len(tensors) > 1 else tensors, "kwargs": {}}
    return [[s, 0, 0, {}] for s in sources]


def _functional(inputs, layers, outputs, keras3, input_order=None):
    """A Functional config: ``inputs`` [(name, shape)], ``layers`` [(name, class, config,
    sources)]; the InputLayers are listed in ``inputs`` order, ``input_layers`` in
    ``input_order`` (default the same)."""
    key = "batch_shape" if keras3 else "batch_input_shape"
    entries = [
        {
            "class_name": "InputLayer",
            "name": name,
            "config": {"name": name, key: [None, *shape]},
            "inbound_nodes": [],
        }
        for name, shape in inputs
    ]
    for name, class_name, config, sources in layers:
        entries.append(
            {
                "class_name": class_name,
                "name": name,
                "config": {"name": name, **config},
                "inbound_nodes": [_node(sources, keras3)],
            }
        )
    order = input_order or [name for name, _ in inputs]
    return {
        "class_name": "Functional",
        "config": {
            "name": "two_inputs",
            "layers": entries,
            "input_layers": [[name, 0, 0] for name in order],
            "output_layers": [[name, 0, 0] for name in outputs],
        },
    }


def _two_branch_config(keras3, input_order=None):
    dense = {"activation": "relu", "use_bias": True}
    return _functional(
        [("a", [6]), ("b", [3])],
        [
            ("da", "Dense", {**dense, "units": 4}, ["a"]),
            ("db", "Dense", {**dense, "units": 2}, ["b"]),
            ("cat", "Concatenate", {"axis": -1}, ["da", "db"]),
            ("out", "Dense", {"units": 3, "activation": "linear", "use_bias": True}, ["cat"]),
        ],
        ["out"],
        keras3,
        input_order,
    )


@pytest.fixture
def two_branch_weights(tmp_path):
    rng = np.random.default_rng(0)
    return write_weights_h5(
        tmp_path / "w.h5",
        {
            "da": {"kernel": rng.normal(size=(6, 4)), "bias": rng.normal(size=4)},
            "db": {"kernel": rng.normal(size=(3, 2)), "bias": rng.normal(size=2)},
            "out": {"kernel": rng.normal(size=(6, 3)), "bias": rng.normal(size=3)},
        },
    )


@pytest.mark.parametrize("keras3", [False, True])
def test_functional_config_with_two_inputs(tmp_path, two_branch_weights, keras3):
    (tmp_path / "m.json").write_text(json.dumps(_two_branch_config(keras3)))
    graph = read_model(tmp_path / "m.json", two_branch_weights)
    assert [n.name for n in graph.input_nodes] == ["a", "b"]
    assert [n.name for n in graph.nodes[:2]] == ["a", "b"]  # the inputs come first
    assert graph.node("cat").inputs == ("da", "db") and graph.outputs == ("out",)
    assert graph.node("a").out_shape == (6,) and graph.node("b").out_shape == (3,)


def test_input_layers_order_is_the_input_order(tmp_path, two_branch_weights):
    """``input_layers`` says which input is which (the first is `s_axis`), not the order
    the InputLayers are listed in."""
    (tmp_path / "m.json").write_text(json.dumps(_two_branch_config(False, ["b", "a"])))
    graph = read_model(tmp_path / "m.json", two_branch_weights)
    assert [n.name for n in graph.input_nodes] == ["b", "a"]
    lowered = lower(graph, PrecisionConfig(input=FixedType(8, 4)))
    assert [(s.node, s.prefix) for s in plan_network(lowered).inputs] == [
        ("b", "s_axis"),
        ("a", "s1_axis"),
    ]


def test_an_input_that_feeds_no_output_is_refused(tmp_path, two_branch_weights):
    config = _two_branch_config(False)
    config["config"]["layers"].insert(
        2,
        {
            "class_name": "InputLayer",
            "name": "c",
            "config": {"name": "c", "batch_input_shape": [None, 2]},
            "inbound_nodes": [],
        },
    )
    config["config"]["input_layers"].append(["c", 0, 0])
    (tmp_path / "m.json").write_text(json.dumps(config))
    with pytest.raises(RtlgenError, match="layers c do not lead to a model output"):
        read_model(tmp_path / "m.json", two_branch_weights)


def keras_jets(path, seed=0, image_first=True):
    """A QKeras two-input model: a jet image (6, 6, 2) through QConv2D + pooling + flatten,
    high-level features (3,) through a QDense, concatenated -> QDense head (the hls4ml
    jet-tagging shape)."""
    pytest.importorskip(
        "qkeras"
    )  # the oracle: QKeras 0.9 on TensorFlow 2.15 (3.11) or 2.21 + tf-keras (3.12+)
    import tensorflow as tf
    from qkeras import QActivation, QConv2D, QDense

    tf.keras.utils.set_random_seed(seed)
    q = "quantized_bits(4,0,alpha=1)"
    image = tf.keras.Input((6, 6, 2), name="image")
    features = tf.keras.Input((3,), name="features")
    h = QConv2D(3, (3, 3), kernel_quantizer=q, bias_quantizer=q, name="conv")(image)
    h = QActivation("quantized_relu(5,2)", name="conv_relu")(h)
    h = tf.keras.layers.MaxPooling2D((2, 2), name="pool")(h)
    h = tf.keras.layers.Flatten(name="flat")(h)
    f = QDense(4, kernel_quantizer=q, bias_quantizer=q, name="feat")(features)
    f = QActivation("quantized_relu(5,2)", name="feat_relu")(f)
    joined = tf.keras.layers.Concatenate(name="cat")([h, f])
    out = QDense(3, kernel_quantizer=q, bias_quantizer=q, name="head")(joined)
    inputs = [image, features] if image_first else [features, image]
    model = tf.keras.Model(inputs, out, name="jets")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save(path)
    return model


@pytest.mark.parametrize("image_first", [True, False])
def test_qkeras_two_input_model_predicts_exactly_like_qkeras(tmp_path, image_first):
    model = keras_jets(tmp_path / "m.h5", image_first=image_first)
    graph = load_model(tmp_path / "m.h5", input_type="fixed<8,4>")
    order = ["image", "features"] if image_first else ["features", "image"]
    assert [n.name for n in graph.input_nodes] == order
    x = {name: v / 16.0 for name, v in random_inputs(graph, 64, seed=6).items()}  # exact
    keras = model.predict([x[name] for name in order], verbose=0)
    # QKeras computes in float32 on quantized weights and activations: exact at these widths
    np.testing.assert_array_equal(predict_outputs(graph, x)["head"], keras)
    x_int = random_inputs(graph, 3, seed=7)
    run = run_multi(graph, x_int, valid_prob=0.6, ready_prob=0.5, seed=1)
    np.testing.assert_array_equal(run.outputs["head"], run_int(graph, x_int))


def test_qkeras_two_input_model_in_a_keras_archive(tmp_path):
    """The `.keras` archive (Keras 2.15's own zip layout) reads to the same graph."""
    keras_jets(tmp_path / "m.h5")
    model = keras_jets(tmp_path / "m.keras")
    from_h5 = load_model(tmp_path / "m.h5", input_type="fixed<8,4>")
    from_archive = load_model(tmp_path / "m.keras", input_type="fixed<8,4>")
    x = {name: v / 16.0 for name, v in random_inputs(from_h5, 16, seed=2).items()}
    np.testing.assert_array_equal(
        predict_outputs(from_archive, x)["head"], predict_outputs(from_h5, x)["head"]
    )
    np.testing.assert_array_equal(
        predict_outputs(from_archive, x)["head"],
        model.predict([x["image"], x["features"]], verbose=0),
    )


# ---------------------------------------------------------------------------------------
# Verilator, through the CLI
@pytest.mark.slow
def test_qkeras_two_input_model_bit_exact_in_verilator_through_the_cli(tmp_path):
    keras_jets(tmp_path / "m.h5", image_first=False)
    out = tmp_path / "design"
    result = rtlgen("convert", tmp_path / "m.h5", "-o", out, "--input-type", "fixed<8,4>")
    assert result.returncode == 0, result.stderr
    graph = load_model(out)
    x = _float_inputs(graph, 6, seed=8)
    np.savez(tmp_path / "x.npz", **x)
    for backpressure in ("0.4", "0"):
        result = rtlgen(
            "sim",
            out,
            "-i",
            tmp_path / "x.npz",
            "-o",
            tmp_path / "y.npy",
            "--backpressure",
            backpressure,
            timeout=900,
        )
        assert result.returncode == 0, result.stdout + result.stderr
    sim = json.loads((out / "sim" / "sim_result.json").read_text())
    manifest = read_manifest(out)
    assert sim["passed"] and manifest.input_names == ("features", "image")
    assert sim["latency_cycles"] == manifest.latency_cycles
    assert sim["ii_cycles"] == manifest.ii_cycles
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), predict_outputs(graph, x)["head"])


@pytest.mark.slow
@pytest.mark.parametrize(
    "name", ["residual-and-features", "two-images-added", "residual-across-inputs"]
)
def test_multi_input_graphs_bit_exact_in_verilator(name, tmp_path, tmp_path_factory):
    from rtlgen.sim_tb import simulate
    from rtlgen.timing import steady_samples

    graph = GRAPHS[name]()
    design = convert(graph, tmp_path / "design")
    x = random_inputs(graph, max(4, steady_samples(NetworkTop(graph))), 1)
    want = dict(zip(design.manifest.output_names, run_int_outputs(graph, x).values(), strict=True))
    y = want if len(want) > 1 else next(iter(want.values()))
    build_root = tmp_path_factory.mktemp("verilator_cache")
    result = simulate(design.outdir, x, y, backpressure=0.4, seed=2, build_root=build_root)
    assert result.passed, result.report
    result = simulate(design.outdir, x, y, build_root=build_root)
    assert result.passed, result.report
    assert result.latency_cycles == design.manifest.latency_cycles
    assert result.ii_cycles == design.manifest.ii_cycles
    for out_name, values in want.items():
        np.testing.assert_array_equal(result.y_sim_outputs[out_name], values)


# ---------------------------------------------------------------------------------------
# a stream type per input
def test_each_input_takes_its_own_type_from_the_option_or_the_config(tmp_path, two_branch_weights):
    """--input-type NAME=TYPE (repeatable) and the config's ``inputs`` give an input its own
    type, a TYPE alone (or the config's ``input``) the others; the option wins by name."""
    (tmp_path / "m.json").write_text(json.dumps(_two_branch_config(False)))
    (tmp_path / "p.yml").write_text(
        "input: fixed<10,3>\ninputs:\n  a: ufixed<8,0>\n  b: fixed<7,2>\n"
    )
    model = (tmp_path / "m.json", two_branch_weights)
    graph = load_model(*model, config=tmp_path / "p.yml")
    assert [str(n.out_type) for n in graph.input_nodes] == ["ufixed<8,0>", "fixed<7,2>"]
    result = rtlgen_in_process(
        "inspect", *model[:1], "-w", model[1], "--json", "--config", tmp_path / "p.yml",
        "--input-type", "b=fixed<6,2>", "--input-type", "fixed<8,4>",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    types = {i["name"]: i["type"] for i in json.loads(result.stdout)["inputs"]}
    assert types == {"a": "ufixed<8,0>", "b": "fixed<6,2>"}  # the config's a, the option's b
    graph = load_model(*model, input_type="fixed<8,4>", input_types={"b": FixedType(6, 4)})
    assert [str(n.out_type) for n in graph.input_nodes] == ["fixed<8,4>", "fixed<6,2>"]


def test_report_says_where_each_input_type_came_from(tmp_path, design):
    """REPORT.md has one type line per input, each with its own origin."""
    import dataclasses

    from rtlgen.cli import ModelSource, _input_type_origin
    from rtlgen.report import _input_type_lines

    (tmp_path / "p.yml").write_text("inputs:\n  image: fixed<10,3>\n")
    origins = _input_type_origin(
        ModelSource("m.json", config=tmp_path / "p.yml", input_type=("vec=fixed<6,3>",))
    )
    assert origins == {"*": "default", "image": "config", "vec": "option"}
    assert _input_type_origin(ModelSource("m.json", input_type=("fixed<6,3>",))) == {"*": "option"}
    manifest = design.manifest
    image, vec = manifest.inputs
    image = dataclasses.replace(image, type_origin=origins["image"])
    vec = dataclasses.replace(vec, type_origin=origins["vec"])
    manifest = dataclasses.replace(manifest, input=image, inputs=(image, vec))
    image_line, vec_line = _input_type_lines(manifest)
    assert (
        image_line.startswith("- input `image` type `fixed<") and "precision config" in image_line
    )
    assert vec_line.startswith("- input `vec` type `fixed<6,3>`") and "`--input-type`" in vec_line


def test_an_unknown_input_name_is_one_error_line(tmp_path, two_branch_weights):
    (tmp_path / "m.json").write_text(json.dumps(_two_branch_config(False)))
    options = ("--input-type", "c=fixed<8,4>")
    result = rtlgen_in_process("inspect", tmp_path / "m.json", "-w", two_branch_weights, *options)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "has no input 'c' (its inputs: a, b)" in result.stderr


@pytest.mark.parametrize(
    "values, fragment",
    [
        (["a=fixed<8,4>", "a=fixed<6,2>"], "two types for input 'a'"),
        (["fixed<8,4>", "fixed<6,2>"], "two types for every input"),
        (["=fixed<8,4>"], "needs an input name"),
        (["a=fixd<8,4>"], "--input-type 'a=fixd<8,4>'"),
    ],
)
def test_bad_per_input_types_are_refused_by_the_option_parser(values, fragment):
    from rtlgen.cli import _input_types

    with pytest.raises(RtlgenError, match=re.escape(fragment)):
        _input_types(values)


def test_config_inputs_naming_no_input_are_refused(tmp_path, two_branch_weights):
    (tmp_path / "m.json").write_text(json.dumps(_two_branch_config(False)))
    (tmp_path / "p.yml").write_text("inputs: {x: 'fixed<8,4>'}\n")
    with pytest.raises(RtlgenError, match="has no input 'x'"):
        load_model(tmp_path / "m.json", two_branch_weights, config=tmp_path / "p.yml")
    (tmp_path / "p.yml").write_text("inputs: fixed<8,4>\n")
    with pytest.raises(RtlgenError, match="'inputs' must map input names"):
        load_model(tmp_path / "m.json", two_branch_weights, config=tmp_path / "p.yml")


# ---------------------------------------------------------------------------------------
# calibration of a float model with several inputs
def test_calibration_takes_one_array_per_input(tmp_path, two_branch_weights):
    """--calibrate with an .npz (one array per input name): every float result sized from
    the ranges the data reaches, never wider than proven, predictions still close to the
    float model's."""
    (tmp_path / "m.json").write_text(json.dumps(_two_branch_config(False)))
    rng = np.random.default_rng(3)
    x = {"a": rng.uniform(-1, 1, size=(300, 6)), "b": rng.uniform(-1, 1, size=(300, 3))}
    proven = load_model(tmp_path / "m.json", two_branch_weights)
    calibrated = load_model(tmp_path / "m.json", two_branch_weights, calibrate=x)
    for a, b in zip(proven.nodes, calibrated.nodes, strict=True):
        assert b.out_type.width <= a.out_type.width and b.out_type.frac == a.out_type.frac
    assert sum(n.out_type.width for n in calibrated.nodes) < sum(
        n.out_type.width for n in proven.nodes
    )
    import h5py

    with h5py.File(two_branch_weights) as f:
        w = {
            name: (f[name][name]["kernel:0"][()], f[name][name]["bias:0"][()])
            for name in ("da", "db", "out")
        }
    hidden = np.concatenate(
        [
            np.maximum(x["a"] @ w["da"][0] + w["da"][1], 0),
            np.maximum(x["b"] @ w["db"][0] + w["db"][1], 0),
        ],
        axis=1,
    )
    want = hidden @ w["out"][0] + w["out"][1]
    got = predict_outputs(calibrated, x)["out"]
    assert np.max(np.abs(got - want)) < 0.05
    np.savez(tmp_path / "x.npz", **x)
    result = rtlgen_in_process(
        "predict",
        tmp_path / "m.json",
        "--weights",
        two_branch_weights,
        "--calibrate",
        tmp_path / "x.npz",
        "-i",
        tmp_path / "x.npz",
        "-o",
        tmp_path / "y.npy",
    )
    assert result.returncode == 0, result.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), got)
    with pytest.raises(RtlgenError, match="calibration arrays named \\[a\\]"):
        load_model(tmp_path / "m.json", two_branch_weights, calibrate={"a": x["a"]})


def test_convert_testbench_writes_one_array_per_input(tmp_path):
    """`convert --testbench`: OUTDIR/tb/x_int.npz holds one int64 array per input name,
    consistent with the manifest and the reference (what tb/run.py feeds the bench)."""
    from rtlgen.sim_tb.tb_manifest import check_vectors

    (tmp_path / "m.json").write_text(json.dumps(_two_branch_config(False)))
    rng = np.random.default_rng(0)
    write_weights_h5(
        tmp_path / "w.h5",
        {
            "da": {"kernel": rng.normal(size=(6, 4)), "bias": rng.normal(size=4)},
            "db": {"kernel": rng.normal(size=(3, 2)), "bias": rng.normal(size=2)},
            "out": {"kernel": rng.normal(size=(6, 3)), "bias": rng.normal(size=3)},
        },
    )
    out = tmp_path / "design"
    result = rtlgen_in_process(
        "convert",
        tmp_path / "m.json",
        "-w",
        tmp_path / "w.h5",
        "-o",
        out,
        "--input-type",
        "fixed<8,4>",
        "--testbench",
    )
    assert result.returncode == 0, result.stderr
    manifest = read_manifest(out)
    with np.load(out / "tb" / "x_int.npz") as arrays:
        x = {name: arrays[name] for name in arrays.files}
    assert sorted(x) == ["a", "b"] and x["a"].shape == (8, 6) and x["b"].shape == (8, 3)
    y = np.load(out / "tb" / "y_int.npy")
    check_vectors(manifest, x, y)
    np.testing.assert_array_equal(y, run_int(load_model(out), x))
    readme = (out / "tb" / "README.md").read_text()
    assert "`x_int.npz`" in readme and "a: (N, 6); b: (N, 3)" in readme
