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
        dict(avg=True, h=7, w=7),
    ],
    ids=["valid", "same", "same-stride2", "1x1", "k2s2", "scale-shift", "avgpool"],
)
def test_conv_network_bit_exact_under_backpressure(kwargs):
    check(conv_net(**kwargs), n=2, valid_prob=0.6, ready_prob=0.5, seed=3)


@pytest.mark.parametrize("parallelism", list(Parallelism))
@pytest.mark.parametrize("multiplier", list(Multiplier))
def test_mlp_bit_exact_in_every_mode(parallelism, multiplier):
    check(mlp(), n=4, options=HardwareOptions(multiplier=multiplier, parallelism=parallelism),
          valid_prob=0.7, ready_prob=0.6, seed=1)


@pytest.mark.parametrize(
    "graph_fn", [lambda: conv_net(), lambda: conv_net(same=True), lambda: mlp()], ids=["conv", "conv-same", "mlp"]
)
def test_measured_latency_and_ii_equal_prediction(graph_fn):
    graph = graph_fn()
    run = check(graph, n=3)
    latency, ii, _ = predict_timing(NetworkTop(graph))
    assert run.last_out[0] - run.first_in[0] == latency
    assert np.diff(run.first_in).tolist() == [ii] * 2


def test_dense_layers_after_flatten_are_time_multiplexed():
    top = NetworkTop(conv_net(h=8, w=8))
    dense = top.plans[-1]
    assert dense.reuse >= 4 and dense.multipliers < dense.multipliers_dense
    full = NetworkTop(conv_net(h=8, w=8), HardwareOptions(parallelism=Parallelism.FULL))
    assert full.plans[-1].reuse == 1


@pytest.mark.parametrize("name", ["model; DROP", "../../etc/passwd", "module", "1conv", "", "a" * 200])
def test_hostile_names_become_safe_identifiers(name):
    ident = sanitize_identifier(name)
    assert ident.isidentifier() and len(ident) <= 49 and ident != "module"
