"""ThresholdBank: bit-exact with quant.threshold.threshold_reference in the simulator, under
random valid/ready, on random thresholds (rising, falling, uneven level tables, channels
without thresholds, odd widths); the two-level search (8-255 thresholds: repeats, extremes,
a different count per channel, mux and ROM segment tables) exhaustively and under
backpressure, its latency (3) measured, its comparator count."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Const, Module, Signal, signed, unsigned
from amaranth.sim import Simulator
from hypothesis import given, settings
from hypothesis import strategies as st

from rtlgen.layers.threshold import (
    ARRAY_TABLE,
    BANK_MAX_THRESHOLDS,
    BeatThresholdBank,
    ChunkedThresholdBank,
    ThresholdBank,
    _at_least,
    _thermometer_count,
    segment_bits,
)
from rtlgen.quant.errors import RtlgenError
from rtlgen.quant.fixed import FixedType
from rtlgen.quant.threshold import threshold_reference

from .streams import simulate_rows


def _random_bank(rng, in_type: FixedType, out_type: FixedType, n: int, most: int):
    thresholds, levels = [], []
    for _ in range(n):
        count = int(rng.integers(0, most + 1))
        span = in_type.max_int - in_type.min_int
        ts = (
            sorted(
                set(int(v) for v in rng.integers(in_type.min_int + 1, in_type.max_int + 1, count))
            )
            if span > 1
            else []
        )
        kind = rng.integers(0, 3)
        if kind == 0:  # evenly rising (saturating), as a quantizer after a positive scale
            start = out_type.min_int
            if out_type.max_int - out_type.min_int >= len(ts):
                start = int(rng.integers(out_type.min_int, out_type.max_int - len(ts) + 1))
            ls = [min(start + j, out_type.max_int) for j in range(len(ts) + 1)]
        elif kind == 1:  # evenly falling (negative gamma)
            ls = [max(out_type.max_int - j, out_type.min_int) for j in range(len(ts) + 1)]
        else:  # any table (levels that jump)
            ls = [int(v) for v in rng.integers(out_type.min_int, out_type.max_int + 1, len(ts) + 1)]
        thresholds.append(ts)
        levels.append(ls)
    return thresholds, levels


def _padded(thresholds, levels, in_type: FixedType):
    width = max((len(ts) for ts in thresholds), default=0)
    t = np.full((len(thresholds), width), in_type.max_int + 1, np.int64)
    lv = np.zeros((len(levels), width + 1), np.int64)
    for c, (ts, ls) in enumerate(zip(thresholds, levels, strict=True)):
        t[c, : len(ts)] = ts
        lv[c, : len(ls)] = ls
        lv[c, len(ls) :] = ls[-1]
    return t, lv


def _inputs(rng, in_type: FixedType, thresholds, rows: int) -> np.ndarray:
    n = len(thresholds)
    x = rng.integers(in_type.min_int, in_type.max_int + 1, size=(rows, n))
    x[0], x[1] = in_type.min_int, in_type.max_int
    for c, ts in enumerate(thresholds):  # every threshold and the value just below it
        for r, t in enumerate(ts[: rows - 2]):
            x[2 + r, c] = t if r % 2 else t - 1
    return x


types = st.builds(FixedType, st.integers(2, 20), st.integers(-3, 12), st.booleans())
out_types = st.builds(FixedType, st.integers(1, 9), st.integers(-2, 8), st.booleans())


@settings(max_examples=15, deadline=None)
@given(
    in_type=types,
    out_type=out_types,
    n=st.integers(1, 7),
    most=st.integers(0, 20),
    seed=st.integers(0, 2**32 - 1),
    valid_prob=st.floats(0.3, 1.0),
    ready_prob=st.floats(0.3, 1.0),
)
def test_matches_threshold_reference(in_type, out_type, n, most, seed, valid_prob, ready_prob):
    rng = np.random.default_rng(seed)
    thresholds, levels = _random_bank(rng, in_type, out_type, n, most)
    dut = ThresholdBank(in_type, out_type, thresholds, levels)
    x = _inputs(rng, in_type, thresholds, 30)
    run = simulate_rows(dut, x, seed, valid_prob, ready_prob)
    t, lv = _padded(thresholds, levels, in_type)
    np.testing.assert_array_equal(np.array(run.outputs), threshold_reference(x, t, lv))


def test_many_thresholds_per_channel_under_backpressure():
    """255 thresholds (an 8-bit quantized_relu) in each of 3 channels."""
    rng = np.random.default_rng(7)
    in_type, out_type = FixedType(14, 4, True), FixedType(8, 4, False)
    thresholds = [
        sorted(rng.choice(np.arange(-8000, 8000), 255, replace=False).tolist()) for _ in range(3)
    ]
    levels = [list(range(256)), list(range(255, -1, -1)), list(range(256))]
    dut = ThresholdBank(in_type, out_type, thresholds, levels)
    x = _inputs(rng, in_type, thresholds, 80)
    run = simulate_rows(dut, x, 3, 0.6, 0.5)
    t, lv = _padded(thresholds, levels, in_type)
    np.testing.assert_array_equal(np.array(run.outputs), threshold_reference(x, t, lv))


def _count_of(code: int, n: int) -> int:
    value = _thermometer_count(Const(code, n), n)
    m = Module()
    out = Signal(len(value))
    m.d.comb += out.eq(value)
    sim = Simulator(m)
    seen = []

    async def bench(ctx):
        seen.append(ctx.get(out))

    sim.add_testbench(bench)
    sim.run()
    return seen[0]


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 13])
def test_thermometer_count_is_the_number_of_ones(n):
    assert [_count_of((1 << ones) - 1, n) for ones in range(n + 1)] == list(range(n + 1))


def test_refuses_unsorted_thresholds_and_levels_off_the_type():
    t = FixedType(8, 0, True)
    with pytest.raises(RtlgenError, match="increasing"):
        ThresholdBank(t, t, [[3, 1]], [[0, 1, 2]])
    ThresholdBank(t, t, [[3, 3]], [[0, 1, 2]])  # repeats are allowed
    with pytest.raises(RtlgenError, match="one level more"):
        ThresholdBank(t, t, [[1]], [[0]])
    with pytest.raises(RtlgenError, match="not a mantissa"):
        ThresholdBank(t, FixedType(2, 0, True), [[1]], [[0, 5]])
    with pytest.raises(RtlgenError, match="outside"):
        ThresholdBank(t, t, [[-128]], [[0, 1]])


# ---------------------------------------------------------------------------------------
# the two-level search (more than BANK_MAX_THRESHOLDS thresholds in some element)
# ---------------------------------------------------------------------------------------
def _sorted_with_repeats(rng, in_type: FixedType, count: int) -> list[int]:
    """``count`` thresholds in ``(min_int, max_int]``: random, with runs of repeats and the
    two extremes mixed in."""
    lo, hi = in_type.min_int + 1, in_type.max_int
    if count == 0:
        return []
    values = rng.integers(lo, hi + 1, count)
    for _ in range(int(rng.integers(0, 4))):  # runs of one value
        start = int(rng.integers(0, count))
        values[start : start + int(rng.integers(1, 9))] = values[start]
    if count > 2:
        values[int(rng.integers(0, count))] = lo
        values[int(rng.integers(0, count))] = hi
    return sorted(int(v) for v in values)


def _levels(rng, out_type: FixedType, count: int) -> list[int]:
    kind = rng.integers(0, 3)
    if kind == 0:  # evenly rising from the type's minimum (a quantized ReLU after BN)
        return [min(out_type.min_int + j, out_type.max_int) for j in range(count + 1)]
    if kind == 1:  # evenly falling (negative gamma)
        return [max(out_type.max_int - j, out_type.min_int) for j in range(count + 1)]
    return [int(v) for v in rng.integers(out_type.min_int, out_type.max_int + 1, count + 1)]


def _search_bank(rng, in_type, out_type, counts):
    thresholds = [_sorted_with_repeats(rng, in_type, c) for c in counts]
    levels = [_levels(rng, out_type, c) for c in counts]
    return thresholds, levels


def _check(dut, thresholds, levels, in_type, x, seed, valid_prob, ready_prob):
    run = simulate_rows(dut, x, seed, valid_prob, ready_prob)
    t, lv = _padded(thresholds, levels, in_type)
    np.testing.assert_array_equal(np.array(run.outputs), threshold_reference(x, t, lv))
    return run


_SEARCH_CASES = dict(
    in_type=st.builds(FixedType, st.integers(4, 18), st.integers(-3, 12), st.booleans()),
    out_type=st.builds(FixedType, st.integers(1, 9), st.integers(-2, 8), st.booleans()),
    most=st.integers(BANK_MAX_THRESHOLDS + 1, 255),
    n=st.integers(1, 5),
    seed=st.integers(0, 2**32 - 1),
    valid_prob=st.floats(0.3, 1.0),
    ready_prob=st.floats(0.3, 1.0),
)


# each example elaborates and simulates a bank of up to 5 x 255 thresholds: a few here, more
# in the slow set (the exhaustive test below covers every segment-table kind by default)
@settings(max_examples=6, deadline=None)
@given(**_SEARCH_CASES)
def test_two_level_search_matches_reference(
    in_type, out_type, most, n, seed, valid_prob, ready_prob
):
    """Random thresholds (repeats, extremes; channel 0 has ``most``, the others any count
    up to it, none included) and data, random valid/ready."""
    check_two_level_search(in_type, out_type, most, n, seed, valid_prob, ready_prob)


@pytest.mark.slow
@settings(max_examples=40, deadline=None)
@given(**_SEARCH_CASES)
def test_two_level_search_matches_reference_extended(
    in_type, out_type, most, n, seed, valid_prob, ready_prob
):
    check_two_level_search(in_type, out_type, most, n, seed, valid_prob, ready_prob)


def check_two_level_search(in_type, out_type, most, n, seed, valid_prob, ready_prob):
    rng = np.random.default_rng(seed)
    counts = [most, *(int(c) for c in rng.integers(0, most + 1, n - 1))]
    thresholds, levels = _search_bank(rng, in_type, out_type, counts)
    dut = ThresholdBank(in_type, out_type, thresholds, levels)
    assert dut.latency == 3
    x = _inputs(rng, in_type, thresholds, 40)
    _check(dut, thresholds, levels, in_type, x, seed, valid_prob, ready_prob)


#: counts around every segment size and table kind: 1 segment, power-of-two edges, the
#: most segments a mux table has (ARRAY_TABLE) and one more (a ROM), 256 levels
EDGE_COUNTS = [1, 3, 7, 8, 9, 15, 16, 17, 31, 63, 64, 127, 128, 129, 200, 255]


def test_two_level_search_exhaustive_over_the_input_range():
    """Every input mantissa of a 10-bit type, 16 elements with the counts of EDGE_COUNTS
    (mux and ROM segment tables), under random valid/ready."""
    segments = [(c >> segment_bits(c)) + 1 for c in EDGE_COUNTS]
    assert min(segments) == 1 and max(segments) > ARRAY_TABLE >= 16
    rng = np.random.default_rng(11)
    in_type, out_type = FixedType(10, 3, True), FixedType(9, 0, True)
    thresholds, levels = _search_bank(rng, in_type, out_type, EDGE_COUNTS)
    dut = ThresholdBank(in_type, out_type, thresholds, levels)
    values = np.arange(in_type.min_int, in_type.max_int + 1)
    x = np.stack([rng.permutation(values) for _ in EDGE_COUNTS], axis=1)
    _check(dut, thresholds, levels, in_type, x, 5, 0.7, 0.6)


@pytest.mark.parametrize("counts", [[8], [63, 0, 5], [255, 255, 1, 100, 64]])
def test_latency_and_full_rate_measured(counts):
    """At full rate: one vector per cycle, each out ``latency`` cycles after it went in
    (2 for a bank, 3 for the search), as the timing model assumes."""
    rng = np.random.default_rng(len(counts))
    in_type, out_type = FixedType(12, 4, False), FixedType(8, 0, False)
    thresholds, levels = _search_bank(rng, in_type, out_type, counts)
    dut = ThresholdBank(in_type, out_type, thresholds, levels)
    x = _inputs(rng, in_type, thresholds, 20)
    run = _check(dut, thresholds, levels, in_type, x, 1, 1.0, 1.0)
    bank = ThresholdBank(in_type, out_type, [[1, 2]], [[0, 1, 2]])
    bank_run = simulate_rows(bank, [[0]] * 20)
    assert dut.latency == 3 and bank.latency == 2
    delays = {o - i for i, o in zip(run.in_cycles, run.out_cycles, strict=True)}
    bank_delays = {o - i for i, o in zip(bank_run.in_cycles, bank_run.out_cycles, strict=True)}
    assert len(delays) == len(bank_delays) == 1
    assert delays.pop() - bank_delays.pop() == dut.latency - bank.latency
    assert run.in_cycles == list(range(run.in_cycles[0], run.in_cycles[0] + 20))


@pytest.mark.parametrize("count,comparators", [(8, 5), (15, 6), (63, 14), (127, 22), (255, 30)])
def test_two_level_search_comparators(count, comparators):
    """About ``2 * sqrt(count)`` comparators: coarse (every segment's first) + fine."""
    t = FixedType(12, 0, True)
    dut = ThresholdBank(t, t, [list(range(1, count + 1)), []], [list(range(count + 1)), [0]])
    assert dut.comparators == comparators
    f = segment_bits(count)
    assert (count >> f) + (1 << f) - 1 == comparators


@pytest.mark.parametrize("shape", [signed(5), unsigned(4), signed(1)])
def test_constant_comparison_as_logic_is_exact(shape):
    """`_at_least` (the coarse comparators' LUT logic) against ``>=`` for every input and
    every constant of the range and one beyond each end."""
    lo, hi = (
        (-(1 << (shape.width - 1)), (1 << (shape.width - 1)) - 1)
        if shape.signed
        else (0, (1 << shape.width) - 1)
    )
    constants = list(range(lo - 1, hi + 2))
    x = Signal(shape)
    outs = [Signal(name=f"ge_{n}") for n in range(len(constants))]
    m = Module()
    m.d.comb += [o.eq(_at_least(x, t)) for o, t in zip(outs, constants, strict=True)]
    sim = Simulator(m)

    async def bench(ctx):
        for v in range(lo, hi + 1):
            ctx.set(x, v)
            assert [ctx.get(o) for o in outs] == [int(v >= t) for t in constants], v

    sim.add_testbench(bench)
    sim.run()


@settings(max_examples=10, deadline=None)
@given(
    lanes=st.integers(1, 4),
    beats=st.integers(2, 4),
    most=st.integers(0, 70),
    seed=st.integers(0, 2**32 - 1),
    valid_prob=st.floats(0.3, 1.0),
    ready_prob=st.floats(0.3, 1.0),
)
def test_chunked_bank_takes_a_vector_in_beats_bit_exact(
    lanes, beats, most, seed, valid_prob, ready_prob
):
    """A vector of `lanes * beats` elements in `beats` beats of consecutive elements: each
    beat's lanes get their own elements' thresholds and levels, under backpressure, in the
    bank's latency at full rate."""
    rng = np.random.default_rng(seed)
    in_type, out_type = FixedType(10, 2, True), FixedType(4, 1, False)
    thresholds, levels = _random_bank(rng, in_type, out_type, lanes * beats, most)
    bank = ThresholdBank(in_type, out_type, thresholds, levels)
    dut = ChunkedThresholdBank(bank, beats)
    _bank_in_beats_is_bit_exact(dut, rng, thresholds, levels, seed, valid_prob, ready_prob)


def _bank_in_beats_is_bit_exact(dut, rng, thresholds, levels, seed, valid_prob, ready_prob):
    """``dut`` (a bank taking its vectors in beats of ``dut.lanes``) gives the reference's
    levels of 12 random vectors under backpressure, and takes ``dut.latency`` at full rate."""
    in_type, lanes = dut.in_type, dut.lanes
    x = _inputs(rng, in_type, thresholds, 12)  # vectors: rows of every element
    t, lv = _padded(thresholds, levels, in_type)
    expected = threshold_reference(x, t, lv).reshape(-1, lanes)
    run = simulate_rows(dut, x.reshape(-1, lanes), seed, valid_prob, ready_prob)
    np.testing.assert_array_equal(np.array(run.outputs), expected)
    full = simulate_rows(dut, x.reshape(-1, lanes))
    assert {o - i for i, o in zip(full.in_cycles, full.out_cycles, strict=True)} == {dut.latency}


def test_chunked_bank_needs_equal_beats():
    bank = ThresholdBank(FixedType(8, 0), FixedType(2, 0, False), [[1]] * 6, [[0, 1]] * 6)
    with pytest.raises(RtlgenError, match="6 elements do not split into 4 equal beats"):
        ChunkedThresholdBank(bank, 4)


@settings(max_examples=12, deadline=None)
@given(
    lanes=st.integers(1, 5),
    beats=st.sampled_from([2, 3, 4, 8]),
    most=st.integers(0, 70),
    signed_input=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
    valid_prob=st.floats(0.3, 1.0),
    ready_prob=st.floats(0.3, 1.0),
)
def test_beat_bank_gives_each_element_its_levels_bit_exact(
    lanes, beats, most, signed_input, seed, valid_prob, ready_prob
):
    """`BeatThresholdBank`: a vector of `lanes * beats` elements in `beats` beats, one
    beat's lanes comparing with the beat's elements' thresholds: the bank's levels for every
    element (a comparator per threshold up to 7, the two-level search above; counts that
    differ between a lane's elements), under backpressure, in the bank's latency."""
    rng = np.random.default_rng(seed)
    in_type, out_type = FixedType(10, 2, signed_input), FixedType(4, 1, False)
    thresholds, levels = _random_bank(rng, in_type, out_type, lanes * beats, most)
    bank = ThresholdBank(in_type, out_type, thresholds, levels)
    dut = BeatThresholdBank(bank, beats)
    assert dut.latency == bank.latency
    _bank_in_beats_is_bit_exact(dut, rng, thresholds, levels, seed, valid_prob, ready_prob)


@pytest.mark.parametrize("most", [6, 63])
def test_beat_bank_every_input_code_in_every_beat(most):
    """Every code of an 8-bit input on every lane in every one of 4 beats, elements with
    their own thresholds (one with fewer, one with none), rising, falling and uneven
    levels, under backpressure: equal to the reference."""
    dut, x, expected = every_code_in_every_beat(most)
    run = simulate_rows(dut, x.reshape(-1, dut.lanes), 11, 0.8, 0.7)
    np.testing.assert_array_equal(np.array(run.outputs), expected)


def every_code_in_every_beat(most: int):
    """(bank, input vectors, expected output beats) of
    `test_beat_bank_every_input_code_in_every_beat` (also run on the bank's Verilog text)."""
    rng = np.random.default_rng(most)
    in_type, out_type = FixedType(8, 3, True), FixedType(6, 0, False)
    lanes, beats = 3, 4
    thresholds, levels = [], []
    for c in range(lanes * beats):
        count = 0 if c == 5 else most // 2 if c == 7 else most
        ts = sorted(rng.choice(np.arange(-127, 128), count, replace=False).tolist())
        ls = (
            list(range(count + 1))
            if c % 3 == 0
            else list(range(63, 62 - count, -1))
            if c % 3 == 1
            else rng.integers(0, 64, count + 1).tolist()
        )
        thresholds.append(ts)
        levels.append(ls)
    bank = ThresholdBank(in_type, out_type, thresholds, levels)
    dut = BeatThresholdBank(bank, beats)
    codes = np.arange(in_type.min_int, in_type.max_int + 1)
    # every code in every element, the elements of a vector at different codes
    x = np.stack([np.roll(codes, 37 * c) for c in range(lanes * beats)], axis=1)
    t, lv = _padded(thresholds, levels, in_type)
    return dut, x, threshold_reference(x, t, lv).reshape(-1, lanes)


def test_beat_bank_builds_one_beat_of_comparators():
    """A 64 x 63 bank in 4 beats (SVHN's bn_dense_1): 16 lanes of 7 coarse comparators
    whose bound the beat picks and 7 fine ones, against the chunked bank's 64 x 14."""
    rng = np.random.default_rng(1)
    in_type, out_type = FixedType(14, 3, True), FixedType(6, 0, False)
    thresholds = [
        sorted(rng.choice(np.arange(-8000, 8000), 63, replace=False).tolist()) for _ in range(64)
    ]
    bank = ThresholdBank(in_type, out_type, thresholds, [list(range(64))] * 64)
    assert BeatThresholdBank(bank, 4).comparators == 16 * 14
    assert ChunkedThresholdBank(bank, 4).comparators == 64 * 14


def test_beat_bank_needs_equal_beats():
    bank = ThresholdBank(FixedType(8, 0), FixedType(2, 0, False), [[1]] * 6, [[0, 1]] * 6)
    with pytest.raises(RtlgenError, match="6 elements do not split into 4 equal beats"):
        BeatThresholdBank(bank, 4)
