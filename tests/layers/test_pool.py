# amaranth: UnusedElaboratable=no
"""MaxPool / AvgPool against `rtlgen.ops.pool.pool_reference`, in Amaranth's simulator."""

from __future__ import annotations

import math

import numpy as np
import pytest
from amaranth.hdl import Fragment
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from rtlgen import ir
from rtlgen.layers.pool import (
    AvgPool,
    MaxPool,
    Reciprocal,
    WindowAverage,
    WindowMax,
    pool_from_node,
)
from rtlgen.layers.window import WindowGeometry
from rtlgen.ops.pool import pool_reference as _pool
from rtlgen.quant.arith import divide_round
from rtlgen.quant.errors import RtlgenError
from rtlgen.quant.fixed import FixedType, Rounding

from .streams import simulate_stream
from .test_window import geometries

MAX, AVG = ir.PoolKind.MAX, ir.PoolKind.AVG


def default_out_type(kind: ir.PoolKind, pool, in_type: FixedType) -> FixedType:
    """The type `rtlgen.passes.lower` gives a pool (max: the input type; avg: wider)."""
    if kind is MAX:
        return in_type
    count = pool[0] * pool[1]
    extra = (0 if count & (count - 1) == 0 else 2) + math.ceil(math.log2(count))
    return FixedType(in_type.width + extra, in_type.frac + extra, in_type.signed)


def pool_node(
    kind,
    height,
    width,
    channels,
    pool,
    stride,
    padding,
    in_type,
    out_type=None,
    rounding=Rounding.CONVERGENT,
) -> ir.Pool:
    g = WindowGeometry(height, width, pool, stride, padding)
    one_d = height == 1 and pool[0] == 1 and stride[0] == 1 and padding[:2] == (0, 0)
    in_shape = (width, channels) if one_d else (height, width, channels)
    out_shape = (g.out_width, channels) if one_d else (g.out_height, g.out_width, channels)
    return ir.Pool(
        "pool",
        in_shape,
        out_shape,
        kind=kind,
        pool=pool,
        stride=stride,
        padding=padding,
        rounding=rounding,
        out_type=out_type or default_out_type(kind, pool, in_type),
    )


def check_pool(
    node: ir.Pool, in_type: FixedType, *, samples=2, seed=0, valid_prob=1.0, ready_prob=1.0
):
    rng = np.random.default_rng(seed)
    channels = node.in_shape[-1]
    x = rng.integers(in_type.min_int, in_type.max_int + 1, size=(samples, *node.in_shape))
    expected = _pool(node, x, in_type).reshape(-1, channels).tolist()
    dut = pool_from_node(node, in_type)
    run = simulate_stream(
        dut, x.reshape(-1, channels).tolist(), len(expected), seed, valid_prob, ready_prob
    )
    assert run.outputs == expected
    return dut, run


CASES = [
    # height, width, channels, pool, stride, padding, in_type, out_type (None: as lowered)
    (4, 4, 2, (2, 2), (2, 2), (0, 0, 0, 0), FixedType(6, 2), None),
    (
        5,
        5,
        3,
        (2, 2),
        (2, 2),
        (0, 0, 0, 0),
        FixedType(8, 3, False),
        None,
    ),  # odd size: last row/col dropped
    (5, 6, 2, (3, 3), (2, 2), (1, 1, 1, 1), FixedType(6, 2), None),  # 'same': counts 4, 6, 9
    (5, 5, 1, (3, 3), (1, 1), (1, 1, 1, 1), FixedType(12, 4), None),
    (4, 7, 2, (2, 3), (1, 3), (0, 1, 1, 1), FixedType(5, 0, False), None),
    (1, 9, 2, (1, 3), (1, 2), (0, 0, 1, 1), FixedType(6, 2), None),  # 1D
    (1, 8, 3, (1, 2), (1, 2), (0, 0, 0, 0), FixedType(1, 0), None),  # 1D, 1-bit
    (
        5,
        6,
        2,
        (3, 3),
        (2, 2),
        (1, 1, 1, 1),
        FixedType(6, 2),
        FixedType(4, 0),
    ),  # fewer bits: rounds, saturates
    (
        5,
        6,
        2,
        (3, 3),
        (2, 2),
        (1, 1, 1, 1),
        FixedType(6, 2),
        FixedType(10, 5, False),
    ),  # to unsigned
    (
        4,
        4,
        5,
        (1, 1),
        (1, 1),
        (0, 0, 0, 0),
        FixedType(7, 3),
        FixedType(9, 6),
    ),  # 1x1: only requantization
]


@pytest.mark.parametrize("kind", [MAX, AVG])
@pytest.mark.parametrize("height,width,channels,pool,stride,padding,in_type,out_type", CASES)
@pytest.mark.parametrize("valid_prob,ready_prob", [(1.0, 1.0), (0.4, 0.3)])
def test_pool_matches_reference(
    kind, height, width, channels, pool, stride, padding, in_type, out_type, valid_prob, ready_prob
):
    node = pool_node(kind, height, width, channels, pool, stride, padding, in_type, out_type)
    check_pool(
        node,
        in_type,
        samples=2,
        seed=width * 7 + channels,
        valid_prob=valid_prob,
        ready_prob=ready_prob,
    )


@pytest.mark.parametrize("rounding", list(Rounding))
@pytest.mark.parametrize("out_type", [FixedType(8, 2), FixedType(6, 0), FixedType(12, 6)])
def test_average_rounding_modes(rounding, out_type):
    node = pool_node(
        AVG, 5, 7, 2, (3, 3), (2, 2), (1, 1, 1, 1), FixedType(6, 2), out_type, rounding
    )
    check_pool(node, FixedType(6, 2), samples=3, seed=5)


@st.composite
def pool_cases(draw):
    height, width, pool, stride, padding = draw(geometries(max_side=6, max_kernel=4))
    g = WindowGeometry(height, width, pool, stride, padding)
    # Windows of padding only: no Keras layer makes them (tested separately).
    assume(
        all(g.real_rows(oy) for oy in range(g.out_height))
        and all(g.real_cols(ox) for ox in range(g.out_width))
    )
    kind = draw(st.sampled_from([MAX, AVG]))
    bits = draw(st.integers(1, 12))
    in_type = FixedType(bits, draw(st.integers(-2, 6)), draw(st.booleans()))
    out_type = None
    if draw(st.booleans()):
        out_type = FixedType(
            draw(st.integers(1, 16)), in_type.frac + draw(st.integers(-3, 5)), draw(st.booleans())
        )
    node = pool_node(
        kind,
        height,
        width,
        draw(st.integers(1, 4)),
        pool,
        stride,
        padding,
        in_type,
        out_type,
        draw(st.sampled_from(list(Rounding))),
    )
    return dict(
        node=node,
        in_type=in_type,
        samples=draw(st.integers(1, 3)),
        seed=draw(st.integers(0, 2**16)),
        valid_prob=draw(st.sampled_from([1.0, 0.3, 0.7])),
        ready_prob=draw(st.sampled_from([1.0, 0.3, 0.7])),
    )


_SIM_SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])


@settings(max_examples=15, **_SIM_SETTINGS)
@given(pool_cases())
def test_pool_matches_reference_fuzzed(case):
    check_pool(**case)


@pytest.mark.slow
@settings(max_examples=400, **_SIM_SETTINGS)
@given(pool_cases())
def test_pool_matches_reference_fuzzed_extended(case):
    check_pool(**case)


@pytest.mark.parametrize("divisor", range(1, 50))
def test_reciprocal_division_is_exact_over_its_whole_range(divisor):
    """Every numerator of several ranges (incl. a 12-bit sum of `divisor` elements, shifted)."""
    for lo, hi in [
        (-300, 300),
        (0, 1000),
        (-2048 * divisor, 2047 * divisor),
        (-(2**14) * divisor, 0),
    ]:
        rec = Reciprocal(divisor, lo, hi)
        n = np.arange(lo, hi + 1)
        for rounding in Rounding:
            assert np.array_equal(rec.divide(n, rounding), divide_round(n, divisor, rounding)), (
                lo,
                hi,
                rounding,
            )


def test_reciprocal_shift_is_the_least_that_is_exact():
    """One bit less than the chosen shift gives a wrong quotient somewhere in the range."""
    for divisor in (3, 5, 6, 7, 9, 25):
        rec = Reciprocal(divisor, -9 * 2048, 9 * 2047)
        shorter = rec.shift - 1
        multiplier = -(-(1 << shorter) // divisor)
        n = np.arange(rec.n_lo, rec.n_hi + 1) + rec.offset
        assert not np.array_equal((n * multiplier) >> shorter, n // divisor)


@pytest.mark.parametrize("kind", [MAX, AVG])
def test_latency_matches_simulation(kind):
    """At full rate the last output of each sample is valid `latency` cycles after the last
    pixel it depends on (here the last window ends in padding, the worst case)."""
    samples, height, width = 2, 5, 6
    node = pool_node(kind, height, width, 1, (3, 3), (2, 2), (1, 1, 1, 1), FixedType(6, 2))
    dut, run = check_pool(node, FixedType(6, 2), samples=samples)
    outputs = len(run.out_cycles) // samples
    for s in range(samples):
        last_pixel = run.in_cycles[(s + 1) * height * width - 1]
        assert run.out_cycles[(s + 1) * outputs - 1] - last_pixel == dut.latency
    assert dut.cycles_per_sample == dut.window.cycles_per_sample


def test_reductions_accept_one_window_per_cycle():
    for reduce in (
        WindowMax(9, 2, FixedType(6, 2)),
        WindowAverage(
            WindowGeometry(4, 4, (3, 3), (1, 1), (1, 1, 1, 1)), 2, FixedType(6, 2), FixedType(10, 6)
        ),
    ):
        windows = [[k % 5 - 2] * 18 for k in range(16)]
        run = simulate_stream(reduce, windows, 16)
        assert run.in_cycles == list(range(16))
        assert run.out_cycles == [c + reduce.latency for c in range(16)]


def test_max_pool_pads_with_the_type_minimum():
    pool = MaxPool(4, 4, 1, (3, 3), (1, 1), (1, 1, 1, 1), FixedType(8, 0))
    assert pool.window.pad_value == -128
    Fragment.get(pool, None)  # elaborates without error


def test_max_pool_padding_only_windows_allowed_when_exact():
    node = pool_node(MAX, 3, 3, 1, (2, 2), (3, 3), (4, 4, 4, 4), FixedType(5, 1))
    check_pool(node, FixedType(5, 1))
    with pytest.raises(RtlgenError, match="only of padding"):
        MaxPool(3, 3, 1, (2, 2), (3, 3), (4, 4, 4, 4), FixedType(5, 1), FixedType(8, 1))


def test_average_pool_of_padding_only_windows_is_an_error():
    with pytest.raises(RtlgenError, match="only of padding"):
        AvgPool(3, 3, 1, (2, 2), (3, 3), (4, 4, 4, 4), FixedType(5, 1), FixedType(8, 3))
