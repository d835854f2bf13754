"""LookupTable / PiecewiseLinear against `rtlgen.quant.activations`, in Amaranth's simulator."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.back import rtlil
from hypothesis import given, settings
from hypothesis import strategies as st

from rtlgen.layers.lookup import (
    BLOCK_TABLE_MIN_BITS,
    LOGIC_TABLE_MAX_BITS,
    BypassTable,
    LookupTable,
    PiecewiseLinear,
    SplitTable,
)
from rtlgen.quant.activations import (
    SELU_SCALE,
    ActivationKind,
    LeakySpec,
    apply_table,
    leaky,
    lookup_table,
    max_value_mantissa,
    quantize_slope,
    slope_type,
    table_out_type,
)
from rtlgen.quant.errors import RtlgenError
from rtlgen.quant.fixed import FixedType, Overflow, Rounding, requantize

from .streams import simulate_rows

K = ActivationKind
small_types = st.builds(FixedType, st.integers(2, 9), st.integers(-2, 10), st.booleans())


def _inputs(rng, t: FixedType, n: int, rows: int) -> np.ndarray:
    x = rng.integers(t.min_int, t.max_int + 1, size=(rows, n))
    x[0], x[1] = t.min_int, t.max_int
    return x


@settings(max_examples=15, deadline=None)
@given(
    in_type=small_types,
    kind=st.sampled_from([K.SIGMOID, K.TANH, K.SOFTSIGN, K.QUANTIZED_SIGMOID, K.QUANTIZED_TANH]),
    out_width=st.integers(2, 10),
    n=st.integers(1, 4),
    latency=st.integers(1, 2),
    rom=st.sampled_from([None, True, False]),
    seed=st.integers(0, 2**32 - 1),
    valid_prob=st.floats(0.3, 1.0),
    ready_prob=st.floats(0.3, 1.0),
)
def test_lookup_table_matches_apply_table(
    in_type, kind, out_width, n, latency, rom, seed, valid_prob, ready_prob
):
    if kind.is_qkeras:
        params = {"bits": out_width}
        out_type = table_out_type(kind, in_type, params)
    else:
        params = {}
        out_type = FixedType(out_width, out_width - 1, True)
    table = lookup_table(kind, in_type, out_type, params)
    rng = np.random.default_rng(seed)
    x = _inputs(rng, in_type, n, 20)
    dut = LookupTable(table, in_type, out_type, n, latency=latency, rom=rom)
    run = simulate_rows(dut, x, seed, valid_prob, ready_prob)
    np.testing.assert_array_equal(np.array(run.outputs), apply_table(table, x, in_type))


@pytest.mark.parametrize("rom", [False, True])
@pytest.mark.parametrize("in_type", [FixedType(5, 2, True), FixedType(7, 4, False)])
def test_every_code_of_a_random_table(rom, in_type):
    rng = np.random.default_rng(7)
    out_type = FixedType(9, 3, True)
    table = rng.integers(out_type.min_int, out_type.max_int + 1, size=1 << in_type.width)
    codes = np.arange(in_type.min_int, in_type.max_int + 1)
    x = np.stack([codes, codes[::-1], rng.permutation(codes)], axis=1)
    dut = LookupTable(table, in_type, out_type, 3, rom=rom)
    run = simulate_rows(dut, x, 3, 0.7, 0.6)
    np.testing.assert_array_equal(np.array(run.outputs), table[x - in_type.min_int])


def test_widest_table_in_rom():
    in_type, out_type = FixedType(14, 10), FixedType(10, 9, True)
    table = lookup_table(K.TANH, in_type, out_type)
    x = _inputs(np.random.default_rng(5), in_type, 2, 30)
    run = simulate_rows(LookupTable(table, in_type, out_type, 2), x, 5, 0.6, 0.6)
    np.testing.assert_array_equal(np.array(run.outputs), apply_table(table, x, in_type))


@pytest.mark.parametrize("bits, style", [(BLOCK_TABLE_MIN_BITS - 1, "logic"), (12, "block")])
def test_two_lanes_read_one_rom(bits, style):
    """One memory with two read ports per two lanes (a dual-port block RAM serves both),
    block RAM from `BLOCK_TABLE_MIN_BITS` input bits on; the lanes' outputs stay their own
    (random table, every lane a different input, random valid/ready)."""
    in_type, out_type = FixedType(bits, bits - 4), FixedType(9, 3, True)
    rng = np.random.default_rng(bits)
    table = rng.integers(out_type.min_int, out_type.max_int + 1, size=1 << bits)
    dut = LookupTable(table, in_type, out_type, 5)
    text = rtlil.convert(dut)
    assert text.count("  memory width") == 3 and text.count("$memrd") == 5
    assert f'rom_style "{style}"' in text
    x = _inputs(rng, in_type, 5, 16)
    run = simulate_rows(LookupTable(table, in_type, out_type, 5), x, 8, 0.6, 0.5)
    np.testing.assert_array_equal(np.array(run.outputs), table[x - in_type.min_int])


def _around_the_switch(in_type: FixedType, seed: int) -> np.ndarray:
    """24 random rows of 3 inputs, three of them around a bypass table's switch at 0."""
    x = _inputs(np.random.default_rng(seed), in_type, 3, 24)
    x[2:5] = [[-1, 0, 1], [1, 0, -1], [2, -2, 0]]
    return x


@settings(max_examples=8, deadline=None)
@given(
    in_bits=st.integers(13, 20),
    table_int=st.integers(2, 5),
    rounding=st.sampled_from(list(Rounding)),
    overflow=st.sampled_from(list(Overflow)),
    seed=st.integers(0, 2**32 - 1),
)
def test_bypass_table_is_identity_above_zero_and_the_table_below(
    in_bits, table_int, rounding, overflow, seed
):
    in_type = FixedType(in_bits, 10)
    table_type = FixedType(10, 10 - table_int)
    out_type = FixedType(12, 6)  # narrower than the input: the bypass overflows too
    table = lookup_table(K.ELU, table_type, out_type, {"alpha": 1.0}, rounding)
    x = _around_the_switch(in_type, seed)
    run = simulate_rows(
        BypassTable(table, in_type, table_type, out_type, 3, rounding, overflow),
        x, seed, 0.6, 0.6,
    )  # fmt: skip
    below = apply_table(table, requantize(x, 10, table_type, rounding), table_type)
    above = requantize(x, 10, out_type, rounding, overflow)
    np.testing.assert_array_equal(np.array(run.outputs), np.where(x > 0, above, below))


@settings(max_examples=8, deadline=None)
@given(
    in_bits=st.integers(13, 20),
    scale_frac=st.integers(0, 20),
    rounding=st.sampled_from(list(Rounding)),
    overflow=st.sampled_from(list(Overflow)),
    seed=st.integers(0, 2**32 - 1),
)
def test_scaled_bypass_table_multiplies_above_zero(in_bits, scale_frac, rounding, overflow, seed):
    """SELU's bypass: ``requantize(x * s)`` above 0, ``s`` a (mantissa, frac) constant."""
    in_type, table_type, out_type = FixedType(in_bits, 10), FixedType(10, 6), FixedType(12, 5)
    table = lookup_table(K.SELU, table_type, out_type, {}, rounding)
    mantissa = round(SELU_SCALE * 2**scale_frac)
    x = _around_the_switch(in_type, seed)
    dut = BypassTable(
        table, in_type, table_type, out_type, 3, rounding, overflow, scale=(mantissa, scale_frac)
    )
    run = simulate_rows(dut, x, seed, 0.6, 0.6)
    below = apply_table(table, requantize(x, 10, table_type, rounding), table_type)
    above = requantize(x * mantissa, 10 + scale_frac, out_type, rounding, overflow)
    np.testing.assert_array_equal(np.array(run.outputs), np.where(x > 0, above, below))


@settings(max_examples=8, deadline=None)
@given(
    in_bits=st.integers(13, 16),
    fine_int=st.integers(1, 2),
    rounding=st.sampled_from(list(Rounding)),
    seed=st.integers(0, 2**32 - 1),
)
def test_split_table_looks_up_the_fine_range_in_the_fine_table(in_bits, fine_int, rounding, seed):
    in_type = FixedType(in_bits, 10)
    table_type = FixedType(8, 8 - (in_bits - 10))  # the input's integer bits, less fraction
    fine_type = FixedType(8, 8 - fine_int)  # fewer integer bits, more fraction
    out_type = FixedType(11, 10)
    rng = np.random.default_rng(seed)
    # random contents: the tables differ at every code, also at the switches (softsign's agree
    # where the fine range ends on a code of both)
    table, fine = (rng.integers(-1024, 1024, size=1 << 8) for _ in range(2))
    shift = in_type.frac - fine_type.frac
    low, high = fine_type.min_int << shift, fine_type.max_int << shift
    x = _inputs(rng, in_type, 3, 24)
    x[2:5] = [[low - 1, low, low + 1], [high - 1, high, high + 1], [0, -1, 1]]  # the switches
    x[5:10] = rng.integers(low - 64, high + 64, size=(5, 3))
    dut = SplitTable(
        table, fine, in_type, table_type, fine_type, out_type, 3, rounding, low=low, high=high
    )
    run = simulate_rows(dut, x, seed, 0.6, 0.6)
    coarse = apply_table(table, requantize(x, 10, table_type, rounding), table_type)
    near = apply_table(fine, requantize(x, 10, fine_type, rounding), fine_type)
    want = np.where((x >= low) & (x <= high), near, coarse)
    np.testing.assert_array_equal(np.array(run.outputs), want)


def test_split_table_latency_full_rate_and_two_roms_per_two_lanes():
    in_type, table_type, fine_type = FixedType(16, 8), FixedType(10, 2), FixedType(10, 6)
    out_type = FixedType(11, 10)
    table, fine = (lookup_table(K.SOFTSIGN, t, out_type) for t in (table_type, fine_type))
    dut = SplitTable(
        table, fine, in_type, table_type, fine_type, out_type, 2, low=-(2**11), high=2**11 - 4
    )
    assert rtlil.convert(dut).count("  memory width") == 2
    run = simulate_rows(dut, _inputs(np.random.default_rng(3), in_type, 2, 10))
    assert dut.latency == run.out_cycles[0] - run.in_cycles[0] == 2
    assert np.diff(run.out_cycles).tolist() == [1] * 9
    with pytest.raises(RtlgenError, match="not a range of codes"):
        SplitTable(table, fine, in_type, table_type, fine_type, out_type, 2, low=1, high=0)


def test_bypass_table_latency_and_full_rate():
    in_type, table_type, out_type = FixedType(16, 10), FixedType(9, 6), FixedType(12, 8)
    table = lookup_table(K.ELU, table_type, out_type, {"alpha": 1.0})
    dut = BypassTable(table, in_type, table_type, out_type, 2)
    run = simulate_rows(dut, _inputs(np.random.default_rng(3), in_type, 2, 10))
    assert dut.latency == run.out_cycles[0] - run.in_cycles[0] == 2
    assert np.diff(run.out_cycles).tolist() == [1] * 9


def test_rom_for_wide_inputs_logic_for_narrow_ones():
    narrow = FixedType(LOGIC_TABLE_MAX_BITS, 2)
    wide = FixedType(LOGIC_TABLE_MAX_BITS + 1, 2)
    out = FixedType(4, 4, False)
    assert not LookupTable(np.zeros(1 << narrow.width), narrow, out, 1).rom
    assert LookupTable(np.zeros(1 << wide.width), wide, out, 1).rom


@pytest.mark.parametrize("rom", [False, True])
@pytest.mark.parametrize("latency", [1, 2])
def test_lookup_latency_and_full_rate(rom, latency):
    in_type, out_type = FixedType(8, 5), FixedType(8, 8, False)
    table = lookup_table(K.QUANTIZED_SIGMOID, in_type, out_type, {"bits": 8})
    dut = LookupTable(table, in_type, out_type, 2, latency=latency, rom=rom)
    assert dut.latency == latency
    x = _inputs(np.random.default_rng(2), in_type, 2, 12)
    run = simulate_rows(dut, x)
    assert run.out_cycles[0] - run.in_cycles[0] == latency
    assert np.diff(run.out_cycles).tolist() == [1] * 11


def test_lookup_table_refuses_bad_tables():
    t = FixedType(4, 2)
    with pytest.raises(RtlgenError, match="entries"):
        LookupTable(np.zeros(15), t, t, 1)
    with pytest.raises(RtlgenError, match="outside"):
        LookupTable(np.full(16, 8), t, t, 1)
    with pytest.raises(RtlgenError, match="15-bit input"):
        LookupTable(np.zeros(1 << 15), FixedType(15, 2), t, 1)


# ---------------------------------------------------------------------------------------
# PiecewiseLinear
# ---------------------------------------------------------------------------------------
alphas = st.builds(lambda a, negative: -a if negative else a, st.floats(1e-3, 2.0), st.booleans())


@settings(max_examples=20, deadline=None)
@given(
    in_type=st.builds(FixedType, st.integers(2, 14), st.integers(-2, 10), st.booleans()),
    out_type=st.builds(FixedType, st.integers(2, 14), st.integers(-2, 12), st.booleans()),
    alpha=st.lists(alphas, min_size=1, max_size=4),
    slope_bits=st.integers(2, 12),
    rounding=st.sampled_from(list(Rounding)),
    overflow=st.sampled_from(list(Overflow)),
    latency=st.integers(1, 2),
    seed=st.integers(0, 2**32 - 1),
    valid_prob=st.floats(0.3, 1.0),
    ready_prob=st.floats(0.3, 1.0),
)
def test_prelu_matches_leaky(
    in_type, out_type, alpha, slope_bits, rounding, overflow, latency, seed, valid_prob, ready_prob
):
    s_type = slope_type(alpha, slope_bits)
    slope = quantize_slope(alpha, s_type)
    n = len(alpha)
    x = _inputs(np.random.default_rng(seed), in_type, n, 20)
    spec = LeakySpec(in_type, tuple(slope), s_type, out_type, 0, None, rounding, overflow)
    dut = PiecewiseLinear(spec, n, latency=latency)
    run = simulate_rows(dut, x, seed, valid_prob, ready_prob)
    expected = leaky(x, in_type, slope, s_type, out_type, rounding, overflow)
    np.testing.assert_array_equal(np.array(run.outputs), expected)


@settings(max_examples=15, deadline=None)
@given(
    in_type=st.builds(FixedType, st.integers(3, 12), st.integers(0, 8), st.booleans()),
    out_type=st.builds(FixedType, st.integers(3, 12), st.integers(-1, 10), st.booleans()),
    negative_slope=st.sampled_from([0.0, 0.1, 0.25, 1.5]),
    threshold_code=st.integers(0, 20),
    max_value=st.sampled_from([None, 0.0, 0.75, 1.0, 6.0, 0.3]),
    rounding=st.sampled_from(list(Rounding)),
    n=st.integers(1, 3),
    seed=st.integers(0, 2**32 - 1),
)
def test_relu_with_threshold_and_max_matches_leaky(
    in_type, out_type, negative_slope, threshold_code, max_value, rounding, n, seed
):
    s_type = slope_type(negative_slope, 10)
    slope = quantize_slope(negative_slope, s_type)
    top = None if max_value is None else max_value_mantissa(max_value, out_type, rounding)
    x = _inputs(np.random.default_rng(seed), in_type, n, 24)
    x[2:6] = threshold_code + np.array([[-1], [0], [1], [2]])  # around the threshold
    x = np.clip(x, in_type.min_int, in_type.max_int)
    spec = LeakySpec(in_type, tuple(slope), s_type, out_type, threshold_code, top, rounding)
    run = simulate_rows(PiecewiseLinear(spec, n), x, seed, 0.7, 0.7)
    expected = leaky(
        x, in_type, slope, s_type, out_type, rounding, threshold=threshold_code, max_value=top
    )
    np.testing.assert_array_equal(np.array(run.outputs), expected)


@pytest.mark.parametrize("latency", [1, 2])
def test_piecewise_latency_and_full_rate(latency):
    t = FixedType(8, 4)
    dut = PiecewiseLinear(LeakySpec(t, (3, -5, 1), FixedType(4, 3), t), 3, latency=latency)
    assert dut.latency == latency
    run = simulate_rows(dut, _inputs(np.random.default_rng(4), t, 3, 10))
    assert run.out_cycles[0] - run.in_cycles[0] == latency
    assert np.diff(run.out_cycles).tolist() == [1] * 9


def test_piecewise_refuses_max_with_negative_slopes():
    t = FixedType(8, 4)
    with pytest.raises(RtlgenError, match="non-negative"):
        LeakySpec(t, (-1,), FixedType(4, 3), t, max_value=10)
    with pytest.raises(RtlgenError, match="outside their type"):
        LeakySpec(t, (8,), FixedType(4, 3), t)
    with pytest.raises(RtlgenError, match="slopes for"):
        PiecewiseLinear(LeakySpec(t, (1, 2), FixedType(4, 3), t), 3)
