"""Requantize: bit-exact with quant.fixed.requantize(apply_clamp(...)) in the simulator."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtlgen.layers.requantize import Requantize
from rtlgen.layers.stream_util import Chain, SkidBuffer
from rtlgen.quant.arith import apply_clamp
from rtlgen.quant.errors import RtlgenError
from rtlgen.quant.fixed import FixedType, Overflow, Rounding, requantize

from .streams import simulate_rows

types = st.builds(FixedType, st.integers(1, 16), st.integers(-4, 14), st.booleans())


def _simulate(dut, x, seed=0, valid_prob=1.0, ready_prob=1.0):
    if dut.latency == 0:  # give the combinational block a clocked consumer
        dut = Chain([dut, SkidBuffer(dut.o.payload.shape())])
    return simulate_rows(dut, x, seed, valid_prob, ready_prob)


def _inputs(rng, acc: FixedType, n: int, rows: int = 24) -> np.ndarray:
    x = rng.integers(acc.min_int, acc.max_int + 1, size=(rows, n))
    x[0], x[1] = acc.min_int, acc.max_int
    # Ties and near-ties of the rounding: multiples of half a step, +-1.
    shift = acc.frac
    if shift > 0:
        for r in range(2, min(rows, 10)):
            base = (
                int(rng.integers(-8, 8)) * (1 << shift)
                + (1 << (shift - 1))
                + int(rng.integers(-1, 2))
            )
            x[r] = np.clip(base, acc.min_int, acc.max_int)
    return x


@settings(max_examples=20, deadline=None)
@given(
    acc=types,
    out=types,
    rounding=st.sampled_from(list(Rounding)),
    overflow=st.sampled_from(list(Overflow)),
    clamp=st.tuples(st.booleans(), st.booleans(), st.floats(0, 1), st.floats(0, 1)),
    latency=st.integers(0, 2),
    seed=st.integers(0, 2**32 - 1),
    valid_prob=st.floats(0.3, 1.0),
    ready_prob=st.floats(0.3, 1.0),
)
def test_matches_reference_requantize(
    acc, out, rounding, overflow, clamp, latency, seed, valid_prob, ready_prob
):
    use_lo, use_hi, p_lo, p_hi = clamp
    span = acc.max_int - acc.min_int
    lo = int(acc.min_int + p_lo * span) if use_lo else None
    hi = int(acc.min_int + p_hi * span) if use_hi else None
    if lo is not None and hi is not None and lo > hi:
        lo, hi = hi, lo
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 5))
    x = _inputs(rng, acc, n)
    dut = Requantize(n, acc, out, lo, hi, rounding, overflow, latency=latency)
    run = _simulate(dut, x, seed, valid_prob, ready_prob)
    expected = requantize(apply_clamp(x, lo, hi), acc.frac, out, rounding, overflow)
    np.testing.assert_array_equal(np.array(run.outputs), expected)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), rounding=st.sampled_from(list(Rounding)))
def test_narrow_input_ranges_give_the_same_results(seed, rounding):
    rng = np.random.default_rng(seed)
    acc, out = FixedType(20, 9, True), FixedType(6, 6, False)  # ReLU to ufixed<6,0>
    ranges = []
    for _ in range(4):
        a, b = sorted(int(v) for v in rng.integers(acc.min_int, acc.max_int + 1, size=2))
        ranges.append((a, b))
    x = np.array([[rng.integers(a, b + 1) for a, b in ranges] for _ in range(24)])
    x[0] = [a for a, _ in ranges]
    x[1] = [b for _, b in ranges]
    dut = Requantize(4, acc, out, clamp_lo=0, rounding=rounding, in_ranges=ranges)
    run = _simulate(dut, x, seed, 0.8, 0.8)
    np.testing.assert_array_equal(
        np.array(run.outputs), requantize(apply_clamp(x, 0, None), 9, out, rounding)
    )


def test_relu_to_unsigned_six_bits_on_every_tie():
    acc, out = FixedType(14, 9, True), FixedType(6, 6, False)
    x = np.arange(acc.min_int, acc.max_int + 1, 7).reshape(-1, 1)
    x = np.vstack([x, np.arange(-16, 16 * 70, 8).reshape(-1, 1)])  # every half step
    dut = Requantize(1, acc, out, clamp_lo=0)
    run = _simulate(dut, x)
    np.testing.assert_array_equal(np.array(run.outputs), requantize(np.maximum(x, 0), 9, out))


@pytest.mark.parametrize("latency", [1, 2])
def test_latency_matches_simulation(latency):
    acc, out = FixedType(12, 4, True), FixedType(8, 2, True)
    dut = Requantize(3, acc, out, latency=latency)
    x = np.random.default_rng(1).integers(-2048, 2048, size=(10, 3))
    run = _simulate(dut, x)
    assert run.out_cycles[0] - run.in_cycles[0] == latency
    assert np.diff(run.out_cycles).tolist() == [1] * 9


def test_empty_clamp_is_a_user_error():
    with pytest.raises(RtlgenError, match="empty"):
        Requantize(1, FixedType(8, 0), FixedType(8, 0), clamp_lo=5, clamp_hi=4)
    with pytest.raises(RtlgenError, match="latency"):
        Requantize(1, FixedType(8, 0), FixedType(8, 0), latency=3)
