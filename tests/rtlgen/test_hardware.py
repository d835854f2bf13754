"""The whole network top in Amaranth's simulator: bit-exact with the reference, under
backpressure, with the latency and II the manifest predicts."""

import numpy as np
import pytest

from rtlgen.emit import predict_timing
from rtlgen.hardware import (
    HardwareOptions,
    Multiplier,
    NetworkTop,
    Parallelism,
    sanitize_identifier,
)
from rtlgen.quant.reference import run_int

from .nets import conv_net, mlp, random_inputs, run_top


def check(graph, n=3, options=HardwareOptions(), valid_prob=1.0, ready_prob=1.0, seed=0):
    x = random_inputs(graph, n, seed)
    run = run_top(graph, x, options, valid_prob, ready_prob, seed)
    want = run_int(graph, x)
    np.testing.assert_array_equal(run.outputs, want)
    if run.classes:
        assert run.classes == np.argmax(want.reshape(n, -1), axis=1).tolist()
    return run


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(),
        dict(same=True, stride=1),
        dict(same=True, stride=2, h=7, w=5),
        dict(kernel=1, pool=False),
        dict(kernel=2, stride=2, c=1, filters=2),
        dict(scale_shift=True),
        dict(scale_shift=True, bn_relu=True),
        dict(avg=True, h=7, w=7),
    ],
    ids=["valid", "same", "same-stride2", "1x1", "k2s2", "scale-shift", "bn-relu", "avgpool"],
)
def test_conv_network_bit_exact_under_backpressure(kwargs):
    check(conv_net(**kwargs), n=2, valid_prob=0.6, ready_prob=0.5, seed=3)


@pytest.mark.parametrize("parallelism", list(Parallelism))
@pytest.mark.parametrize("multiplier", list(Multiplier))
def test_mlp_bit_exact_in_every_mode(parallelism, multiplier):
    check(mlp(), n=4, options=HardwareOptions(multiplier=multiplier, parallelism=parallelism),
          valid_prob=0.7, ready_prob=0.6, seed=1)


@pytest.mark.parametrize(
    "graph_fn",
    [lambda: conv_net(), lambda: conv_net(same=True), lambda: conv_net(scale_shift=True, bn_relu=True), lambda: mlp()],
    ids=["conv", "conv-same", "bn-relu", "mlp"],
)
def test_measured_latency_and_ii_equal_prediction(graph_fn):
    graph = graph_fn()
    run = check(graph, n=3)
    latency, ii, _ = predict_timing(NetworkTop(graph))
    assert run.last_out[0] - run.first_in[0] == latency
    assert np.diff(run.first_in).tolist() == [ii] * 2


@pytest.mark.parametrize("adders", [1, 3, 4])
def test_other_adders_per_stage_stay_bit_exact_with_predicted_latency(adders):
    """Fewer adders per stage than the default 2 cost cycles, more save them."""
    graph = conv_net(same=True, filters=5)
    options = HardwareOptions(adders_per_stage=adders, parallelism=Parallelism.FULL)
    run = check(graph, n=2, options=options)
    latency, _, _ = predict_timing(NetworkTop(graph, options))
    assert run.last_out[0] - run.first_in[0] == latency
    default = predict_timing(NetworkTop(graph, HardwareOptions(parallelism=Parallelism.FULL)))[0]
    assert latency > default if adders < 2 else latency < default


def test_default_adders_per_stage_follow_the_pipeline():
    from rtlgen.hardware import Pipeline

    assert HardwareOptions().adders_per_stage == 2
    assert HardwareOptions(pipeline=Pipeline.LATENCY).adders_per_stage == 6
    assert HardwareOptions(adders_per_stage=3, pipeline=Pipeline.LATENCY).adders_per_stage == 3


def test_requantize_dropping_many_bits_gets_two_stages():
    """A BN folded into a 6-bit ReLU rounds away 14 fraction bits: its Requantize is split
    over two registers (sticky bit and compare, then the increment); the conv's drops 6."""
    from rtlgen.hardware import DEEP_ROUNDING_BITS
    from rtlgen.layers.requantize import Requantize

    top = NetworkTop(conv_net(scale_shift=True, bn_relu=True))
    requantizers = {p.node.name: s for p in top.plans for s in p.stages if isinstance(s, Requantize)}
    assert requantizers["bn"].shift > DEEP_ROUNDING_BITS >= requantizers["conv"].shift
    assert requantizers["bn"].latency == 2 and requantizers["conv"].latency == 1


def test_dense_layers_after_flatten_are_time_multiplexed():
    top = NetworkTop(conv_net(h=8, w=8))
    dense = top.plans[-1]
    assert dense.reuse >= 4 and dense.multipliers < dense.multipliers_dense
    full = NetworkTop(conv_net(h=8, w=8), HardwareOptions(parallelism=Parallelism.FULL))
    assert full.plans[-1].reuse == 1


def test_time_multiplexing_only_where_sharing_saves_multipliers():
    """A BN scale-and-shift after a flatten sees one vector per sample, but its diagonal
    needs one multiplier per element at any reuse: it stays parallel (no `steps` latency)."""
    from rtlgen import ir
    from rtlgen.layers.serial_mac import shared_multipliers
    from rtlgen.passes import PrecisionConfig, lower
    from rtlgen.quant.fixed import FixedType
    from rtlgen.quant.quantizers import QuantizedBits

    assert shared_multipliers(np.diag(np.arange(1, 7)), 6) == 6
    assert shared_multipliers(np.ones((32, 6), dtype=int), 8) == 4 * 6
    rng = np.random.default_rng(5)
    q = QuantizedBits(6, 1)
    nodes = [
        ir.Input("in", (4, 4, 2), (4, 4, 2)),
        ir.Flatten("flatten", (4, 4, 2), (32,)),
        ir.Dense("dense", (32,), (6,), weights=ir.FloatTensor(rng.normal(size=(32, 6)), q),
                 bias=ir.FloatTensor(rng.normal(size=6), q)),
        ir.ScaleShift("bn", (6,), (6,), scale=ir.FloatTensor(rng.uniform(0.5, 1.5, 6)),
                      shift=ir.FloatTensor(rng.normal(size=6) * 0.2)),
        ir.Dense("out", (6,), (3,), weights=ir.FloatTensor(rng.normal(size=(6, 3)), q)),
    ]
    graph = lower(ir.ModelGraph("net", tuple(nodes)), PrecisionConfig(input=FixedType(8, 4)))
    top = NetworkTop(graph)
    reuse = {plan.node.name: plan.reuse for plan in top.plans}
    assert reuse["dense"] >= 4 and reuse["bn"] == 1
    check(graph, n=3, valid_prob=0.7, ready_prob=0.6, seed=2)


@pytest.mark.parametrize("name", ["model; DROP", "../../etc/passwd", "module", "1conv", "", "a" * 200])
def test_hostile_names_become_safe_identifiers(name):
    ident = sanitize_identifier(name)
    assert ident.isidentifier() and len(ident) <= 49 and ident != "module"


@pytest.mark.parametrize("multiplier", [Multiplier.LUT, Multiplier.DSP])
def test_latency_pipeline_fuses_an_mlp_bit_exact_with_predicted_timing(multiplier):
    """`Pipeline.LATENCY`: no registers or skid buffers at the MLP's layer boundaries; the
    network stays bit-exact under backpressure and the model predicts its cycles."""
    from rtlgen.hardware import Pipeline

    graph = mlp(sizes=(10, 16, 12, 8, 4))
    fast = HardwareOptions(multiplier=multiplier, adders_per_stage=6, pipeline=Pipeline.LATENCY)
    check(graph, n=4, options=fast, valid_prob=0.6, ready_prob=0.5, seed=4)
    run = check(graph, n=3, options=fast)
    latency, ii, _ = predict_timing(NetworkTop(graph, fast))
    assert run.last_out[0] - run.first_in[0] == latency and ii == 1
    balanced = HardwareOptions(multiplier=multiplier, adders_per_stage=6)
    assert latency < predict_timing(NetworkTop(graph, balanced))[0]
    top = NetworkTop(graph, fast)
    assert [p.skid_buffer for p in top.plans] == [False] * 4
    assert all(p.stages[1].latency == 0 for p in top.plans)


def test_latency_pipeline_carries_the_logic_depth_across_a_flatten():
    """A Flatten of a vector has no hardware: the dense after it starts its first stage with
    the depth the dense before it left, and a dense followed only by flattens is the last
    layer (registered output)."""
    from rtlgen.hardware import Pipeline

    graph = mlp(sizes=(10, 16, 12, 4), flatten_after=(0, 2))
    fast = HardwareOptions(adders_per_stage=6, pipeline=Pipeline.LATENCY)
    top = NetworkTop(graph, fast)
    dense = [p for p in top.plans if p.stages]
    assert [p.node.name for p in dense] == ["dense0", "dense1", "dense2"]
    assert dense[0].out_levels > 0
    inputs = [n for n in dense[1].stages[0].plan.nodes if n.kind == "input"]
    assert {n.depth for n in inputs} == {min(dense[0].out_levels, 5)}
    assert dense[2].out_levels == 0 and dense[2].stages[0].plan.registered_output
    check(graph, n=4, options=fast, valid_prob=0.6, ready_prob=0.5, seed=3)


def test_latency_pipeline_leaves_conv_networks_as_they_are():
    from rtlgen.hardware import Pipeline

    graph = conv_net()
    fast = HardwareOptions(pipeline=Pipeline.LATENCY)
    conv = NetworkTop(graph, fast).plans[0]
    assert conv.skid_buffer and conv.out_levels == 0
    check(graph, n=2, options=fast, valid_prob=0.7, ready_prob=0.6, seed=1)
