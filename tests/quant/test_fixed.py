"""FixedType and the integer primitives, checked against exact rational arithmetic."""

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtlgen.quant.arith import accumulator_type, divide_round
from rtlgen.quant.errors import RtlgenError
from rtlgen.quant.fixed import FixedType, Overflow, Rounding, fit, requantize, shift_round


def exact_round(value: Fraction, rounding: Rounding) -> int:
    floor = value.numerator // value.denominator
    rem = value - floor
    if rounding is Rounding.TRUNCATE:
        return floor
    if rounding is Rounding.HALF_UP:
        return floor + (rem >= Fraction(1, 2))
    if rem > Fraction(1, 2) or (rem == Fraction(1, 2) and floor % 2 == 1):
        return floor + 1
    return floor


@pytest.mark.parametrize(
    "text,expected",
    [
        ("ap_fixed<16,6>", FixedType(16, 10, True)),
        ("fixed<8,1>", FixedType(8, 7, True)),
        ("ap_ufixed<6,0>", FixedType(6, 6, False)),
        ("ap_fixed<18,8,AP_RND_CONV,AP_SAT>", FixedType(18, 10, True)),
        ("ap_int<8>", FixedType(8, 0, True)),
        ("ap_uint<4>", FixedType(4, 0, False)),
        ("ap_fixed<4,6>", FixedType(4, -2, True)),
    ],
)
def test_parse_hls_precision_strings(text, expected):
    assert FixedType.parse(text) == expected


def test_parse_rejects_garbage_with_clear_message():
    with pytest.raises(RtlgenError, match="cannot parse precision 'float32'"):
        FixedType.parse("float32")


@pytest.mark.parametrize(
    "text,message",
    [
        ("fixed<16,100000>", "100000 integer bits is not supported .*-62 to 62"),
        ("fixed<8,-63>", "-63 integer bits is not supported"),
        ("fixed<0,0>", "width 0 is not supported .*1 to 62 bits"),
        ("ap_fixed<63,3>", "width 63 is not supported"),
        ("ap_int<100>", "width 100 is not supported"),
        ("fixed<8,3,RND_FOO,SAT>", "unknown rounding mode 'RND_FOO' .*AP_RND_CONV"),
        ("fixed<8,3,AP_RND,AP_FOO>", "unknown overflow mode 'AP_FOO' .*AP_WRAP"),
        ("fixed<8,3,SAT>", "unknown rounding mode 'SAT'"),
        ("ap_fixed<8,3,AP_RND,AP_SAT,9>", "9 saturation bits is more than the width 8"),
        ("fixed<99999999999999,3>", "cannot parse precision"),
        ("fixed<8,3>" + " " * 500, "cannot parse precision"),
    ],
)
def test_parse_refuses_types_and_modes_rtlgen_does_not_support(text, message):
    with pytest.raises(RtlgenError, match=message):
        FixedType.parse(text)


@pytest.mark.parametrize("text", ["fixed<8,3,RND,SAT>", "ap_fixed<8,3,AP_TRN,AP_WRAP,0>", "fixed<62,62>"])
def test_parse_accepts_every_ap_fixed_mode_spelling(text):
    assert FixedType.parse(text).width in (8, 62)


def test_str_roundtrips_through_parse():
    for t in (FixedType(16, 10), FixedType(6, 6, False), FixedType(3, -2)):
        assert FixedType.parse(str(t)) == t


def test_ranges():
    t = FixedType(8, 4, True)
    assert (t.min_int, t.max_int) == (-128, 127)
    assert t.max_value == 127 / 16
    u = FixedType(6, 6, False)
    assert (u.min_int, u.max_int) == (0, 63)


@given(
    st.lists(st.integers(-(2**40), 2**40), min_size=1, max_size=20),
    st.integers(-8, 20),
    st.sampled_from(list(Rounding)),
)
def test_shift_round_matches_exact_rational_rounding(values, shift, rounding):
    got = shift_round(np.array(values), shift, rounding)
    want = [
        exact_round(Fraction(v, 2**shift) if shift >= 0 else Fraction(v * 2**-shift), rounding)
        for v in values
    ]
    assert got.tolist() == want


@given(
    st.lists(st.integers(-(2**30), 2**30), min_size=1, max_size=20),
    st.integers(0, 16),
    st.integers(1, 20),
    st.integers(-4, 16),
    st.booleans(),
    st.sampled_from(list(Rounding)),
)
def test_requantize_is_round_then_saturate(values, from_frac, width, frac, signed, rounding):
    to = FixedType(width, frac, signed)
    got = requantize(np.array(values), from_frac, to, rounding, Overflow.SATURATE)
    for v, g in zip(values, got.tolist(), strict=True):
        r = exact_round(Fraction(v, 2**from_frac) * Fraction(2) ** frac, rounding)
        assert g == min(max(r, to.min_int), to.max_int)


def test_wrap_keeps_low_bits_twos_complement():
    t = FixedType(4, 0, True)
    assert fit(np.array([7, 8, -9, 16, -1]), t, Overflow.WRAP).tolist() == [7, -8, 7, 0, -1]


def test_quantize_float_half_to_even_like_qkeras():
    t = FixedType(8, 0)
    assert t.quantize(np.array([0.5, 1.5, 2.5, -2.5, -0.5])).tolist() == [0, 2, 2, -2, 0]
    assert t.quantize(np.array([1e9, -1e9])).tolist() == [127, -128]


@given(st.integers(-1000, 1000), st.integers(-1000, 1000), st.integers(0, 4))
def test_covering_is_narrowest(lo, hi, frac):
    lo, hi = min(lo, hi), max(lo, hi)
    t = FixedType.covering(lo, hi, frac)
    assert t.min_int <= min(lo, 0) and t.max_int >= max(hi, 0)
    if t.width > 1:
        narrower = FixedType(t.width - 1, frac, t.signed)
        assert narrower.min_int > min(lo, 0) or narrower.max_int < max(hi, 0)


@given(st.data())
def test_accumulator_type_bounds_every_input(data):
    k = data.draw(st.integers(1, 6))
    o = data.draw(st.integers(1, 4))
    w = np.array(data.draw(st.lists(st.integers(-50, 50), min_size=k * o, max_size=k * o))).reshape(
        k, o
    )
    b = np.array(data.draw(st.lists(st.integers(-100, 100), min_size=o, max_size=o)))
    in_type = FixedType(data.draw(st.integers(1, 6)), 0, data.draw(st.booleans()))
    acc = accumulator_type(w, b, in_type, 0)
    # the corners of the input box reach the extremes of a linear function
    rng = np.random.default_rng(0)
    corners = rng.choice([in_type.min_int, in_type.max_int], size=(64, k))
    y = corners @ w + b
    assert y.min() >= acc.min_int and y.max() <= acc.max_int


@given(st.integers(-5000, 5000), st.integers(1, 9), st.sampled_from(list(Rounding)))
def test_divide_round_exact(num, den, rounding):
    assert divide_round(np.array([num]), den, rounding)[0] == exact_round(
        Fraction(num, den), rounding
    )


def test_widths_above_62_bits_rejected():
    with pytest.raises(RtlgenError, match="62 bits"):
        FixedType(70, 0)
