"""Global pooling in the network plan: a window covering the whole input becomes the
streaming accumulators of `rtlgen.layers.global_pool` (no line buffer), bit-exact with the
pool reference, with the timing the manifest states."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
from amaranth.back import rtlil

from rtlgen import ir
from rtlgen.frontend import read_model
from rtlgen.hardware import NetworkTop
from rtlgen.layers.global_pool import GlobalAverage, GlobalMax
from rtlgen.layers.pool import AvgPool
from rtlgen.layers.window import WindowGenerator
from rtlgen.passes import PrecisionConfig, lower
from rtlgen.plan import plan_network
from rtlgen.quant.errors import RtlgenWarning
from rtlgen.quant.fixed import FixedType
from tests.models import layer_entry, sequential_config, write_full_h5

from .network_checks import bit_exact_in_simulator, bit_exact_in_verilator, timing_matches_model

RNG = np.random.default_rng(7)
KQ = "quantized_bits(4,0,alpha=1)"


def qconv(name, filters, kernel, dims, **extra):
    return layer_entry(
        f"QConv{dims}D",
        {
            "name": name,
            "filters": filters,
            "kernel_size": [kernel] * dims,
            "strides": [1] * dims,
            "padding": extra.pop("padding", "valid"),
            "data_format": "channels_last",
            "dilation_rate": [1] * dims,
            "activation": "quantized_relu(4,2)",
            "use_bias": True,
            "kernel_quantizer": KQ,
            "bias_quantizer": KQ,
        },
        module="qkeras",
    )


def qdense(name, units):
    return layer_entry(
        "QDense",
        {
            "name": name,
            "units": units,
            "activation": "linear",
            "use_bias": True,
            "kernel_quantizer": KQ,
            "bias_quantizer": KQ,
        },
        module="qkeras",
    )


def network(tmp_path, layers, weights, input_shape, input_type=FixedType(6, 3)) -> ir.ModelGraph:
    path = write_full_h5(tmp_path / "m.h5", sequential_config(layers, input_shape), weights)
    return lower(read_model(path), PrecisionConfig(input=input_type))


def cnn_global_average(tmp_path, kernel=3, channels=3) -> ir.ModelGraph:
    """(5, 6, 2) -> QConv2D(kernel, same) -> GlobalAveragePooling2D -> QDense(3)."""
    layers = [
        qconv("conv", channels, kernel, 2, padding="same"),
        layer_entry("GlobalAveragePooling2D", {"name": "gap", "data_format": "channels_last"}),
        qdense("dense", 3),
    ]
    weights = {
        "conv": {
            "kernel": RNG.normal(size=(kernel, kernel, 2, channels)),
            "bias": RNG.normal(size=channels),
        },
        "dense": {"kernel": RNG.normal(size=(channels, 3)), "bias": RNG.normal(size=3)},
    }
    return network(tmp_path, layers, weights, (5, 6, 2))


def cnn_global_max_1d(tmp_path) -> ir.ModelGraph:
    """(9, 2) -> QConv1D(4, 3) -> GlobalMaxPooling1D -> QDense(3)."""
    layers = [
        qconv("conv", 4, 3, 1),
        layer_entry("GlobalMaxPooling1D", {"name": "gmp", "data_format": "channels_last"}),
        qdense("dense", 3),
    ]
    weights = {
        "conv": {"kernel": RNG.normal(size=(3, 2, 4)), "bias": RNG.normal(size=4)},
        "dense": {"kernel": RNG.normal(size=(4, 3)), "bias": RNG.normal(size=3)},
    }
    return network(tmp_path, layers, weights, (9, 2))


def pool_stage(graph: ir.ModelGraph):
    (plan,) = [p for p in plan_network(graph).layers if isinstance(p.node, ir.Pool)]
    (stage,) = plan.stages
    return stage


def test_global_average_pooling_2d_builds_accumulators(tmp_path):
    graph = cnn_global_average(tmp_path)
    stage = pool_stage(graph)
    assert isinstance(stage, GlobalAverage) and stage.positions == 30 and stage.channels == 3


def test_global_max_pooling_1d_builds_accumulators(tmp_path):
    stage = pool_stage(cnn_global_max_1d(tmp_path))
    assert isinstance(stage, GlobalMax) and stage.positions == 7 and stage.channels == 4


def test_a_pool_smaller_than_the_input_keeps_the_window_generator():
    node = ir.Pool("p", (4, 4, 2), (2, 2, 2), kind=ir.PoolKind.AVG, pool=(2, 2), stride=(2, 2))
    graph = lower(ir.ModelGraph("g", (ir.Input("in", (4, 4, 2), (4, 4, 2)), node)))
    assert isinstance(pool_stage(graph), AvgPool)


@pytest.mark.parametrize("shape, warns", [((5, 6, 2), True), ((4, 4, 2), False)])
def test_quantized_average_of_a_count_not_a_power_of_two_warns(tmp_path, shape, warns):
    """QKeras keeps the float32 mean; a mean of 30 elements rounded to fixed point can move
    a later quantizer's decision (a new user's deep-sets model over 10 particles did): said
    in a warning. A mean of 16 is a shift: exact, no warning."""
    layers = [
        qconv("conv", 2, 3, 2, padding="same"),
        layer_entry("GlobalAveragePooling2D", {"name": "gap", "data_format": "channels_last"}),
        qdense("dense", 3),
    ]
    weights = {
        "conv": {"kernel": RNG.normal(size=(3, 3, 2, 2)), "bias": RNG.normal(size=2)},
        "dense": {"kernel": RNG.normal(size=(2, 3)), "bias": RNG.normal(size=3)},
    }
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        network(tmp_path, layers, weights, shape)
    said = [str(w.message) for w in caught if issubclass(w.category, RtlgenWarning)]
    average = [m for m in said if "layer 'gap': the average of" in m]
    assert bool(average) == warns, said
    if warns:
        assert "average of 30 elements" in average[0] and "float32 mean" in average[0]


def test_cnn_ending_in_global_average_pooling_bit_exact_under_backpressure(tmp_path):
    bit_exact_in_simulator(cnn_global_average(tmp_path), n=3, seed=1)


def test_cnn_ending_in_global_max_pooling_1d_bit_exact_under_backpressure(tmp_path):
    bit_exact_in_simulator(cnn_global_max_1d(tmp_path), n=4, seed=2)


@pytest.mark.parametrize("which", ["avg2d", "max1d"])
def test_measured_latency_and_ii_equal_the_timing_model(tmp_path, which):
    graph = cnn_global_average(tmp_path) if which == "avg2d" else cnn_global_max_1d(tmp_path)
    timing_matches_model(graph)


def test_model_timing_gives_one_beat_per_sample_latency_after_the_last_beat():
    pool = GlobalAverage(3, 2, FixedType(6, 3), FixedType(10, 7))
    accepted, out = pool.model_timing([0, 1, 2, 5, 5, 9], 2)
    assert accepted == [0, 1, 2, 5, 6, 9]
    assert out == [2 + pool.latency, 9 + pool.latency] and pool.latency == 4


def memory_cells(design) -> int:
    return len(re.findall(r"cell \$mem", rtlil.convert(design)))


def test_global_pooling_needs_no_memory(tmp_path):
    """A 1x1 conv (no window generator) then global average pooling: the whole design has
    no memory; the whole-image window pool it replaces needed a line buffer of H-1 rows."""
    graph = cnn_global_average(tmp_path, kernel=1)
    top = NetworkTop(graph)
    assert not any(isinstance(s, WindowGenerator) for p in top.plans for s in p.stages)
    assert memory_cells(top) == 0
    node = next(n for n in graph.nodes if isinstance(n, ir.Pool))
    old = AvgPool(
        5, 6, 3, node.pool, node.stride, node.padding, graph.nodes[1].out_type, node.out_type
    )
    assert old.window.line_memory_bits > 0
    assert memory_cells(old) > 0


@pytest.mark.slow
def test_global_average_cnn_in_verilator(tmp_path, tmp_path_factory):
    graph = cnn_global_average(tmp_path)
    bit_exact_in_verilator(graph, tmp_path, tmp_path_factory.mktemp("verilator_cache"))
