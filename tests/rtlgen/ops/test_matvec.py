"""rtlgen/ops/matvec.py: a dense after a flatten takes the flatten's beats as they arrive
(`stream_steps`), the reuse cap (`HardwareOptions.max_reuse`) and the latency budget
(`HardwareOptions.latency_budget`), in Amaranth's simulator against the integer reference
and the timing model."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtlgen import ir
from rtlgen.emit import predict_timing
from rtlgen.hardware import HardwareOptions, NetworkTop, Parallelism
from rtlgen.layers.constant_mac import ConstantMatVec
from rtlgen.layers.flatten import Deserialize
from rtlgen.layers.requantize import Requantize
from rtlgen.layers.serial_mac import SerialMatVec
from rtlgen.ops.threshold import threshold_node
from rtlgen.passes import PrecisionConfig, lower
from rtlgen.quant.errors import RtlgenError
from rtlgen.quant.fixed import FixedType
from rtlgen.quant.quantizers import QuantizedBits, QuantizedRelu
from rtlgen.quant.threshold import FloatBatchNorm

from ..nets import conv_net
from .network_checks import bit_exact_in_simulator, timing_matches_model


def random_dense(name: str, n_in: int, n: int, rng, **kwargs) -> ir.Dense:
    """A dense of 6-bit weights (~30 % pruned) and biases from ``rng``."""
    weights = rng.normal(size=(n_in, n)) * (rng.random((n_in, n)) > 0.3)
    return ir.Dense(
        name,
        (n_in,),
        (n,),
        weights=ir.FloatTensor(weights, QuantizedBits(6, 1)),
        bias=ir.FloatTensor(rng.normal(size=n), QuantizedBits(6, 1)),
        **kwargs,
    )


def flat_net(shape, units=(5, 3), pool=False, seed=0) -> ir.ModelGraph:
    """input [-> 2x2 max pool] -> flatten -> dense (quantized ReLU) ... -> dense."""
    rng = np.random.default_rng(seed)
    nodes: list[ir.Node] = [ir.Input("in", shape, shape)]
    if pool:
        pooled = (shape[0] // 2, shape[1] // 2, shape[2])
        nodes.append(
            ir.Pool("pool", shape, pooled, kind=ir.PoolKind.MAX, pool=(2, 2), stride=(2, 2))
        )
        shape = pooled
    n_in = int(np.prod(shape))
    nodes.append(ir.Flatten("flatten", shape, (n_in,)))
    for k, n in enumerate(units):
        last = k == len(units) - 1
        nodes.append(
            random_dense(
                f"dense{k}",
                n_in,
                n,
                rng,
                activation=ir.LINEAR if last else ir.RELU,
                out_quantizer=None if last else QuantizedRelu(6, 1),
            )
        )
        n_in = n
    return lower(ir.ModelGraph("flat_net", tuple(nodes)), PrecisionConfig(input=FixedType(8, 4)))


def bn_net(shape, units=(6, 5, 3), seed=0) -> ir.ModelGraph:
    """input [-> flatten] -> (linear dense -> float BN + quantized ReLU, as thresholds) ...
    -> dense: the tail of the SVHN CNN in miniature."""
    rng = np.random.default_rng(seed)
    nodes: list[ir.Node] = [ir.Input("in", shape, shape)]
    n_in = int(np.prod(shape))
    if len(shape) > 1:
        nodes.append(ir.Flatten("flatten", shape, (n_in,)))
    for k, n in enumerate(units):
        nodes.append(random_dense(f"dense{k}", n_in, n, rng))
        if k < len(units) - 1:
            bn = FloatBatchNorm(
                rng.normal(1, 0.5, n),
                rng.normal(0, 1, n),
                rng.normal(0, 1, n),
                rng.uniform(0.5, 2, n),
                1e-3,
            )
            nodes.append(threshold_node(f"bn{k}", (n,), QuantizedRelu(4, 1), f"bn{k}", bn=bn))
        n_in = n
    return lower(ir.ModelGraph("bn_net", tuple(nodes)), PrecisionConfig(input=FixedType(8, 4)))


def plans(top: NetworkTop) -> dict:
    return {plan.node.name: plan for plan in top.plans}


def first_dense(top: NetworkTop):
    return next(p for p in top.plans if isinstance(p.node, ir.Dense))


#: beats arriving every cycle (steps 1, several elements a step), spaced by a pooling
#: (2 steps a beat of 3 elements: the reuse does not divide the beat), 9 and 20 beats
GRAPHS = {
    "sequence-12x3": lambda: flat_net((12, 3)),
    "image-4x5x7": lambda: flat_net((4, 5, 7)),
    "pooled-8x10x3": lambda: flat_net((8, 10, 3), pool=True),
    "conv-pool-8x8": lambda: conv_net(h=8, w=8),
}


@pytest.mark.parametrize("make", GRAPHS.values(), ids=GRAPHS.keys())
def test_dense_after_a_flatten_takes_its_beats_as_they_arrive(make):
    graph = make()
    top = NetworkTop(graph)
    flatten = plans(top)["flatten"]
    beats = int(np.prod(flatten.node.in_shape[:-1]))
    dense = first_dense(top)
    mac = dense.stages[0]
    assert flatten.stages == ()  # no Deserialize: the beats go straight on
    assert isinstance(mac, SerialMatVec) and mac.beats == beats
    assert mac.per_beat == flatten.node.in_shape[-1]
    assert dense.reuse == beats * mac.steps and dense.multipliers == mac.multipliers
    bit_exact_in_simulator(graph, n=3, valid_prob=0.6, ready_prob=0.5, seed=2)
    timing_matches_model(graph)


def test_reuse_not_dividing_the_beat_and_spaced_beats():
    """Beats of 3 elements two cycles apart: two steps of two multipliers' rows each, the
    last step half empty."""
    mac = first_dense(NetworkTop(flat_net((8, 10, 3), pool=True))).stages[0]
    assert (mac.per_beat, mac.steps, mac.group) == (3, 2, 2)


def test_the_result_is_ready_a_beat_s_steps_after_the_last_beat():
    """The dense's output comes `latency` (steps + depth + 1) cycles after its last beat,
    not a whole vector's steps after the flatten gathered it."""
    from rtlgen.timing import model_graph

    graph = conv_net(h=8, w=8)
    top = NetworkTop(graph)
    skid = {p.node.name: top.has_skid_buffer(p) for p in top.plans}
    timing = model_graph(top.plan, skid, set(), 1)
    mac = plans(top)["dense"].stages[0]
    last_beat = timing.out["flatten"][-1]
    dense = plans(top)["dense"]
    after = sum(stage.latency for stage in dense.stages[1:])  # its Requantize, if any
    skid_buffer = int(top.has_skid_buffer(dense))
    assert timing.out["dense"] == [last_beat + mac.latency + after + skid_buffer]
    assert mac.latency < mac.cycles_per_sample


@pytest.mark.parametrize(
    "shape,parallelism",
    [
        ((4, 5, 7), Parallelism.AUTO),
        ((9,), Parallelism.AUTO),
        pytest.param((4, 5, 7), Parallelism.FULL, marks=pytest.mark.slow),
    ],
)
def test_a_linear_dense_before_a_threshold_bank_is_its_bare_mac(shape, parallelism):
    """A dense whose output is its accumulator (linear, output type = accumulator type:
    before a float BN's thresholds) builds no Requantize, and no skid buffer sits between
    it and the threshold bank: two cycles less per such pair. Bit-exact under random
    backpressure, timing as modelled, streamed or not, serial or constant MAC."""
    graph = bn_net(shape)
    options = HardwareOptions(parallelism=parallelism)
    top = NetworkTop(graph, options)
    for name in ("dense0", "dense1"):
        plan = plans(top)[name]
        assert plan.node.out_type == plan.node.acc_type
        assert len(plan.stages) == 1 and not isinstance(plan.stages[0], Requantize)
        assert not top.has_skid_buffer(plan)
    assert top.has_skid_buffer(plans(top)["bn0"])  # the bank keeps its own
    assert top.has_skid_buffer(plans(top)["dense2"])  # the output layer keeps its own
    bit_exact_in_simulator(graph, n=3, valid_prob=0.6, ready_prob=0.4, seed=5, options=options)
    timing_matches_model(graph, options)


def test_a_dense_with_an_activation_keeps_its_requantize():
    top = NetworkTop(flat_net((4, 5, 7)))
    assert isinstance(plans(top)["dense0"].stages[-1], Requantize)  # ReLU + 6-bit output
    assert top.has_skid_buffer(plans(top)["dense0"])


@pytest.mark.parametrize(
    "adders", [pytest.param(1, marks=pytest.mark.slow), 3]
)  # 2, the default: every other test
def test_serial_layers_take_the_adders_per_stage_option(adders):
    """A time-multiplexed layer's adder tree has `adders_per_stage` adders in series
    between registers, as the constant MAC arrays have."""
    graph = flat_net((8, 10, 3), units=(9, 4), pool=True)
    options = HardwareOptions(adders_per_stage=adders)
    top = NetworkTop(graph, options)
    macs = [s for p in top.plans for s in p.stages if isinstance(s, SerialMatVec)]
    assert macs and all(mac.levels_per_stage == adders for mac in macs)
    bit_exact_in_simulator(graph, n=2, seed=adders, options=options)
    timing_matches_model(graph, options)


def test_a_vector_flatten_and_full_parallelism_are_unchanged():
    """A flatten of a vector passes it on; with --parallelism full the flatten gathers its
    beats and the dense is a constant MAC array, as before."""
    top = NetworkTop(flat_net((4, 5, 7)), HardwareOptions(parallelism=Parallelism.FULL))
    assert isinstance(plans(top)["flatten"].stages[0], Deserialize)
    assert isinstance(first_dense(top).stages[0], ConstantMatVec)
    from ..nets import mlp

    top = NetworkTop(mlp(flatten_after=(0,)))
    assert plans(top)["flatten0"].stages == ()
    assert all(getattr(stage, "beats", 1) == 1 for plan in top.plans for stage in plan.stages)


def test_a_flatten_feeding_something_else_still_gathers_its_beats():
    """Only a dense consumes beats: a flatten that is an output keeps its Deserialize."""
    rng = np.random.default_rng(1)
    nodes = [
        ir.Input("in", (4, 3), (4, 3)),
        ir.Flatten("flatten", (4, 3), (12,)),
        ir.ScaleShift(
            "bn",
            (12,),
            (12,),
            scale=ir.FloatTensor(rng.uniform(0.5, 1.5, 12)),
            shift=ir.FloatTensor(rng.normal(size=12) * 0.2),
        ),
    ]
    graph = lower(ir.ModelGraph("net", tuple(nodes)), PrecisionConfig(input=FixedType(8, 4)))
    top = NetworkTop(graph)
    assert isinstance(plans(top)["flatten"].stages[0], Deserialize)
    bit_exact_in_simulator(graph, n=2)


@pytest.mark.parametrize("cap", [1, 2, 5])
def test_reuse_cap_limits_every_layer_s_steps_per_beat(cap):
    graph = flat_net((8, 10, 3), units=(9, 4), pool=True)
    top = NetworkTop(graph, HardwareOptions(max_reuse=cap))
    for plan in top.plans:
        for stage in plan.stages:
            if isinstance(stage, SerialMatVec):
                assert stage.steps <= cap
    bit_exact_in_simulator(graph, n=2, seed=cap, options=HardwareOptions(max_reuse=cap))
    timing_matches_model(graph, HardwareOptions(max_reuse=cap))


def test_latency_budget_caps_the_layers_that_save_cycles_cheapest():
    """Between the default and the fully parallel latency, the budget is met by per-layer
    caps (`layer_max_reuse`), each raised as far as the budget allows; the plan needs no
    more multipliers than one cap for every layer does (the previous search), and a budget
    the default plan meets changes nothing."""
    graph = flat_net((8, 10, 3), units=(24, 4), pool=True)

    def top_of(**kwargs):
        return NetworkTop(graph, HardwareOptions(**kwargs))

    def latency(top):
        return predict_timing(top)[0]

    def multipliers(top):
        return sum(p.multipliers for p in top.plans)

    default, full = latency(top_of()), latency(top_of(parallelism=Parallelism.FULL))
    assert full < default
    budget = (default + full) // 2
    top = top_of(latency_budget=budget)
    caps = dict(top.plan.options.layer_max_reuse)
    assert caps and latency(top) <= budget < default
    for plan in top.plans:  # caps only lower a layer's reuse
        assert plan.reuse <= plans(top_of())[plan.node.name].reuse
    lo, hi = 1, max(p.reuse for p in top_of().plans)  # the largest uniform cap meeting it
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if latency(top_of(max_reuse=mid)) <= budget else (lo, mid - 1)
    assert multipliers(top) <= multipliers(top_of(max_reuse=lo))
    # a budget the default plan meets changes nothing
    within = top_of(latency_budget=default)
    assert [p.reuse for p in within.plans] == [p.reuse for p in top_of().plans]


def test_the_default_budget_keeps_a_sample_within_two_percent_of_its_period():
    """`BudgetRule.AUTO` (the default): a 1,024-beat sequence whose rate-balanced plan
    (``latency_budget=None``) takes 1,050 cycles is capped to floor(1.02 * 1,024) = 1,044
    (every layer at reuse 1 takes 1,042), with more multipliers; where every layer at
    reuse 1 is slower than that (an 80-beat image) the default is the rate-balanced plan."""
    graph = flat_net((1024, 1), units=(8, 6, 3))
    auto, cheapest = NetworkTop(graph), NetworkTop(graph, HardwareOptions(latency_budget=None))
    assert auto.sample_cycles == cheapest.sample_cycles == 1024
    assert predict_timing(auto)[:2] == (1044, 1024) and auto.plan.options.layer_max_reuse
    assert predict_timing(cheapest)[0] > 1044
    assert sum(p.multipliers for p in auto.plans) > sum(p.multipliers for p in cheapest.plans)
    image = flat_net((8, 10, 3), units=(24, 4), pool=True)
    full = predict_timing(NetworkTop(image, HardwareOptions(parallelism=Parallelism.FULL)))[0]
    assert full > 80 * 1.02
    assert [p.reuse for p in NetworkTop(image).plans] == [
        p.reuse for p in NetworkTop(image, HardwareOptions(latency_budget=None)).plans
    ]


@pytest.mark.slow
def test_the_default_budget_plan_runs_as_modelled():
    graph = flat_net((1024, 1), units=(8, 6, 3))
    timing_matches_model(graph, HardwareOptions())
    bit_exact_in_simulator(graph, n=2, seed=3, options=HardwareOptions())


@pytest.mark.slow
def test_a_budget_plan_runs_as_modelled():
    graph = flat_net((8, 10, 3), units=(24, 4), pool=True)
    default = predict_timing(NetworkTop(graph))[0]
    full = predict_timing(NetworkTop(graph, HardwareOptions(parallelism=Parallelism.FULL)))[0]
    timing_matches_model(graph, HardwareOptions(latency_budget=(default + full) // 2))


def test_layer_caps_apply_to_their_layer_only():
    graph = flat_net((8, 10, 3), units=(9, 4), pool=True)
    top = NetworkTop(graph, HardwareOptions(layer_max_reuse=(("dense1", 1),)))
    default = plans(NetworkTop(graph))
    assert plans(top)["dense1"].reuse == 1 < default["dense1"].reuse
    assert plans(top)["dense0"].reuse == default["dense0"].reuse > 1
    bit_exact_in_simulator(graph, n=2, options=HardwareOptions(layer_max_reuse=(("dense1", 1),)))


def test_an_unreachable_budget_is_one_error_naming_the_option():
    graph = flat_net((12, 3))
    with pytest.raises(
        RtlgenError, match=r"--latency-budget 3: not reachable, every layer at reuse 1 takes \d+"
    ):
        NetworkTop(graph, HardwareOptions(latency_budget=3))


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(max_reuse=0), "--max-reuse 0 is not supported"),
        (dict(latency_budget=0), "--latency-budget 0 is not supported"),
        (dict(layer_max_reuse=(("d", 0),)), "reuse cap 0 of layer 'd' is not supported"),
    ],
)
def test_bad_reuse_cap_or_budget_is_refused(kwargs, message):
    with pytest.raises(RtlgenError, match=message):
        HardwareOptions(**kwargs)


@settings(
    max_examples=8,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    rows=st.integers(1, 4),
    cols=st.integers(2, 6),
    channels=st.integers(1, 5),
    pool=st.booleans(),
    units=st.lists(st.integers(1, 6), min_size=1, max_size=2),
    seed=st.integers(0, 100),
)
def test_random_flatten_shapes_stream_bit_exact_with_predicted_timing(
    rows, cols, channels, pool, units, seed
):
    """1-beat to 24-beat flattens of 1-5 channels, beats every cycle or spaced by a
    pooling, one or two dense layers: bit-exact under backpressure, timing as modelled."""
    if pool and rows < 2:
        rows = 2
    shape = (rows, cols, channels) if rows > 1 or pool else (cols, channels)
    graph = flat_net(shape, units=tuple(units), pool=pool, seed=seed)
    bit_exact_in_simulator(graph, n=2, valid_prob=0.7, ready_prob=0.6, seed=seed)
    timing_matches_model(graph)


#: the tail of the SVHN CNN in miniature after a 20-beat flatten: dense0 (streamed), bn0,
#: dense1 (one vector per sample: time-multiplexed), bn1, dense2
def chunk_net():
    return bn_net((4, 5, 7), units=(6, 8, 3), seed=3)


@pytest.mark.parametrize("beats,cap", [(2, 3), (4, 2), (8, 1)])
def test_a_dense_sends_its_result_in_beats_the_next_dense_takes_as_they_arrive(beats, cap):
    """`layer_out_beats`: dense1 sends its 8 outputs in beats of consecutive outputs, bn1
    (a `BeatThresholdBank`) passes each on, dense2 adds each to its partial sums as it
    arrives; bit-exact under backpressure, timing as modelled."""
    from rtlgen.layers.threshold import BeatThresholdBank

    graph = chunk_net()
    options = HardwareOptions(layer_max_reuse=(("dense1", cap),), layer_out_beats=(("dense1", beats),))
    top = NetworkTop(graph, options)
    mac = plans(top)["dense1"].stages[0]
    assert isinstance(mac, SerialMatVec) and (mac.out_beats, mac.columns) == (beats, 8 // beats)
    assert isinstance(plans(top)["bn1"].stages[0], BeatThresholdBank)
    streamed = plans(top)["dense2"].stages[0]
    assert isinstance(streamed, SerialMatVec) and streamed.beats == beats
    bit_exact_in_simulator(graph, n=3, seed=beats, options=options)
    timing_matches_model(graph, options)


def test_result_beats_the_next_dense_cannot_take_are_gathered():
    """dense2 fully parallel (cap 1) takes no beats: it gathers them first (`Deserialize`)."""
    from rtlgen.layers.threshold import BeatThresholdBank

    graph = chunk_net()
    options = HardwareOptions(
        layer_max_reuse=(("dense1", 2), ("dense2", 1)), layer_out_beats=(("dense1", 4),)
    )
    top = NetworkTop(graph, options)
    assert isinstance(plans(top)["bn1"].stages[0], BeatThresholdBank)
    assert [type(s) for s in plans(top)["dense2"].stages] == [Deserialize, ConstantMatVec]
    bit_exact_in_simulator(graph, n=2, seed=5, options=options)
    timing_matches_model(graph, options)


def test_result_beats_need_a_divisor_and_a_beat_taking_consumer():
    """Beats that do not divide the outputs, or a dense whose result is the network's
    output, keep the one-beat result."""
    graph = chunk_net()
    for options in (
        HardwareOptions(layer_out_beats=(("dense1", 3),)),
        HardwareOptions(layer_out_beats=(("dense2", 3),)),
    ):
        top = NetworkTop(graph, options)
        for plan in top.plans:
            for stage in plan.stages:
                assert getattr(stage, "out_beats", 1) == 1


def test_probes_measured_in_several_processes_choose_the_same_plan(monkeypatch):
    """`parallel_probes`: a budget search whose probes are shared among forked processes
    (every probe of this one measured in the other process too, by `_probe_all`'s split)
    chooses the plan the search in one process chooses."""
    import rtlgen.plan as plan_module
    from rtlgen.plan import parallel_probes

    graph = bn_net((4, 5, 7), units=(8, 32, 16), seed=3)
    options = HardwareOptions(latency_budget=49)
    counts = []
    probe_all = plan_module._probe_all
    monkeypatch.setattr(
        plan_module, "_probe_all", lambda *args: counts.append(len(args[3])) or probe_all(*args)
    )
    alone = NetworkTop(graph, options).plan.options
    with parallel_probes(2):
        forked = NetworkTop(graph, options).plan.options
    assert forked == alone and dict(alone.layer_out_beats)
    assert min(counts) >= 16  # enough probes to share (two processes from 16)
    probes = []
    monkeypatch.setattr(
        plan_module, "_measure", lambda g, o, s, ps: probes.append(len(ps)) or [(0, 0)] * len(ps)
    )
    layers = [plan_module._Probe(((name, cap),)) for name in "abcd" for cap in range(5)]
    with parallel_probes(2):
        plan_module._probe_all(graph, options, 1, layers)
    assert probes == [10]  # this process measured two layers' probes; a child the rest


def test_a_layer_s_step_probes_are_measured_in_one_process():
    """`plan._deal`: a layer's step counts in one process (one whose sharing does not pay
    plans the layer's constant MAC array, which another process would plan again), the
    largest set first, then the other probes to even the counts."""
    from rtlgen.plan import _deal, _Probe

    sizes = [("a", 2), ("b", 6), ("c", 3)]
    alone = [_Probe(((name, cap),)) for name, n in sizes for cap in range(n)]
    pairs = [_Probe((("a", 2), ("c", 1)), (("a", 2),))] * 4
    shares = _deal(alone + pairs, 2)
    assert sorted(k for share in shares for k in share) == list(range(len(alone) + 4))
    assert shares == [[2, 3, 4, 5, 6, 7, 12, 14], [0, 1, 8, 9, 10, 11, 13]]  # b | c, a; pairs


def test_latency_budget_may_overlap_a_dense_with_the_next():
    """With a wide middle dense, the cheapest plan for the budget sends its result in beats
    that the last dense takes as they arrive (`layer_out_beats`), cheaper by the search's
    LUT estimate than one cap for every layer; it runs bit-exact as modelled."""
    from rtlgen.plan import _lut_cost

    graph = bn_net((4, 5, 7), units=(8, 32, 16), seed=3)
    options = HardwareOptions(latency_budget=49)
    top = NetworkTop(graph, options)
    assert dict(top.plan.options.layer_out_beats)
    assert predict_timing(top)[0] <= 49
    uniform = [
        NetworkTop(graph, HardwareOptions(max_reuse=cap)) for cap in range(1, 20)
    ]
    meeting = [t for t in uniform if predict_timing(t)[0] <= 49]
    assert _lut_cost(top.plan) < min(_lut_cost(t.plan) for t in meeting)
    bit_exact_in_simulator(graph, n=2, seed=2, options=top.plan.options)
    timing_matches_model(graph, top.plan.options)


def test_cheapest_choices_add_up_to_the_cycles_needed():
    from rtlgen.plan import _cheapest, _Choice

    units = [
        [_Choice(0, 0), _Choice(5, 50, (("a", 2),)), _Choice(9, 200, (("a", 1),))],
        [_Choice(0, 0), _Choice(4, 30, (("b", 3),)), _Choice(6, 45, (("b", 1),))],
    ]
    assert [c.caps for c in _cheapest(units, 9)] == [(("a", 2),), (("b", 3),)]
    assert [c.caps for c in _cheapest(units, 6)] == [(), (("b", 1),)]
    assert _cheapest(units, 16) is None
