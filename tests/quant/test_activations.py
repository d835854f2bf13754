"""Activation tables and piecewise-linear kernels against QKeras / Keras on every input code.

QKeras kinds must be bit-exact (``assert_array_equal`` on every code of each input type).
Float kinds: the table is the exact function rounded; ``table_error`` must equal the largest
error against TensorFlow's float64 function, and Keras's float32 output must lie within
that error (plus float32 rounding) of the table.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from rtlgen.quant.activations import (
    MAX_TABLE_INPUT_BITS,
    ActivationKind,
    LeakySpec,
    apply_table,
    input_codes,
    leaky,
    leaky_error_bound,
    lookup_table,
    quantize_slope,
    slope_type,
    table_error,
    table_out_type,
    threshold_mantissa,
)
from rtlgen.quant.errors import RtlgenError, UnsupportedError
from rtlgen.quant.fixed import FixedType, Rounding

K = ActivationKind
IN_TYPES = [
    FixedType(8, 4),
    FixedType(10, 6),
    FixedType(6, 2, False),
    FixedType(12, 8),
    FixedType(14, 10),
    FixedType(7, -1),
    FixedType(9, 9, False),
]


@pytest.fixture(scope="module")
def tf():
    return pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def qkeras(tf):
    return pytest.importorskip("qkeras")


def _float_inputs(in_type: FixedType) -> np.ndarray:
    return in_type.to_float(input_codes(in_type)).astype(np.float32)


def _check_qkeras(tf, kind, quantizer, in_type, params):
    x = _float_inputs(in_type)
    expected = quantizer(tf.constant(x)).numpy().astype(np.float64)
    out_type = table_out_type(kind, in_type, params)
    got = out_type.to_float(lookup_table(kind, in_type, out_type, params))
    mismatches = np.flatnonzero(got != expected)
    assert mismatches.size == 0, (
        f"{quantizer} on {in_type}: x={x[mismatches][:4]} table={got[mismatches][:4]} "
        f"qkeras={expected[mismatches][:4]}"
    )


# ---------------------------------------------------------------------------------------
# QKeras: bit-exact on every code
# ---------------------------------------------------------------------------------------
#: (kind, its use_real_* option, bits)
SQUASHING = [(K.QUANTIZED_SIGMOID, "use_real_sigmoid", bits) for bits in (3, 8)] + [
    (K.QUANTIZED_TANH, "use_real_tanh", bits) for bits in (2, 6, 10)
]


@pytest.mark.parametrize("in_type", IN_TYPES, ids=str)
@pytest.mark.parametrize(
    "kind,real_option,bits", SQUASHING, ids=[f"{k.value}-{b}" for k, _, b in SQUASHING]
)
def test_quantized_sigmoid_and_tanh_are_bit_exact(tf, qkeras, in_type, kind, real_option, bits):
    """Every symmetric / use_real_* combination, QKeras's quantizer of the same name."""
    for symmetric in (False, True):
        for real in (False, True):
            params = {"bits": bits, "symmetric": symmetric, real_option: real}
            q = getattr(qkeras, kind.value)(**params)
            _check_qkeras(tf, kind, q, in_type, params)


@pytest.mark.parametrize("in_type", IN_TYPES, ids=str)
@pytest.mark.parametrize(
    "bits,integer,negative_slope,use_sigmoid",
    [
        (4, 0, 0.0, 0),
        (6, 2, 0.25, 0),
        (8, 1, 0.5, 0),
        (5, 1, 2.0**-9, 0),
        (6, 1, 0.5, 1),
        (4, 0, 0.0, 1),
    ],
)
def test_quantized_relu_is_bit_exact(
    tf, qkeras, in_type, bits, integer, negative_slope, use_sigmoid
):
    q = qkeras.quantized_relu(bits, integer, use_sigmoid=use_sigmoid, negative_slope=negative_slope)
    params = {
        "bits": bits,
        "integer": integer,
        "negative_slope": negative_slope,
        "use_sigmoid": use_sigmoid,
    }
    _check_qkeras(tf, K.QUANTIZED_RELU, q, in_type, params)


@pytest.mark.parametrize("in_type", [FixedType(8, 4), FixedType(10, 5), FixedType(7, -1)], ids=str)
@pytest.mark.parametrize(
    "options",
    [
        {"bits": 8, "integer": 3},
        {"bits": 6, "integer": 2, "symmetric": True},
        {"bits": 4, "integer": 0},
        {"bits": 8, "integer": 2, "relu_shift": 2, "relu_upper_bound": 5},
    ],
    ids=str,
)
def test_quantized_hswish_is_bit_exact(tf, qkeras, in_type, options):
    """QKeras's quantized_hswish (quantized_bits of x * relu6(x + 3) / 6 in float32) called
    on every code: equal. (A Keras model's predict can differ at exact rounding ties: its
    graph rounds x * 6 / 6 differently, e.g. 3.03125 -> 3.0625 instead of 3.0.)"""
    q = qkeras.quantizers.quantized_hswish(**options)
    _check_qkeras(tf, K.QUANTIZED_HSWISH, q, in_type, options)


@pytest.mark.parametrize("mode", ["smooth", "real"])
def test_internal_sigmoid_modes_are_bit_exact(tf, qkeras, mode):
    from qkeras import quantizers

    quantizers.set_internal_sigmoid(mode)
    try:
        for in_type in (FixedType(8, 4), FixedType(11, 7)):
            q = qkeras.quantized_sigmoid(6)
            _check_qkeras(
                tf, K.QUANTIZED_SIGMOID, q, in_type, {"bits": 6, "internal_sigmoid": mode}
            )
            q = qkeras.quantized_tanh(6)
            _check_qkeras(tf, K.QUANTIZED_TANH, q, in_type, {"bits": 6, "internal_sigmoid": mode})
    finally:
        quantizers.set_internal_sigmoid("hard")


def test_qkeras_output_types():
    assert table_out_type(K.QUANTIZED_SIGMOID, FixedType(10, 6), {"bits": 8}) == FixedType(
        8, 8, False
    )
    assert table_out_type(K.QUANTIZED_TANH, FixedType(10, 6), {"bits": 8}) == FixedType(8, 7, True)
    # Negative side of quantized_relu(6, 2, negative_slope=0.25): down to -2**2 * 0.25 = -1.
    relu = table_out_type(
        K.QUANTIZED_RELU, FixedType(10, 6), {"bits": 6, "integer": 2, "negative_slope": 0.25}
    )
    assert relu == FixedType(6, 3, True)
    table = lookup_table(
        K.QUANTIZED_RELU, FixedType(10, 6), relu, {"bits": 6, "integer": 2, "negative_slope": 0.25}
    )
    assert (table.min(), table.max()) == (-8, 31)


def test_qkeras_table_in_a_too_narrow_type_is_refused():
    with pytest.raises(RtlgenError, match="not exactly representable"):
        lookup_table(K.QUANTIZED_SIGMOID, FixedType(8, 4), FixedType(6, 6, False), {"bits": 8})


def test_qkeras_table_error_is_the_quantization_error():
    # quantized_sigmoid(8) of the hard sigmoid: at most half of 2**-8, except above 1 - 2**-8.
    err = table_error(K.QUANTIZED_SIGMOID, FixedType(10, 6), FixedType(8, 8, False), {"bits": 8})
    assert err == 2.0**-8  # hard_sigmoid(x) = 1 for x >= 1, the table stops at 1 - 2**-8


# ---------------------------------------------------------------------------------------
# float Keras activations: exact function rounded, reported error is the real maximum
# ---------------------------------------------------------------------------------------
FLOAT_CASES = [
    (K.SIGMOID, {}, "sigmoid"),
    (K.TANH, {}, "tanh"),
    (K.HARD_SIGMOID, {}, "hard_sigmoid"),
    (K.SOFTSIGN, {}, "softsign"),
    (K.ELU, {}, "elu"),
    (K.ELU, {"alpha": 0.7}, "elu"),
    (K.MISH, {}, "mish"),
]
OUT_TYPES = [
    FixedType(8, 7, True),
    FixedType(10, 6, True),
    FixedType(6, 6, False),
    FixedType(16, 12),
]


def _keras(tf, name, x, dtype, params):
    fn = getattr(tf.keras.activations, name)
    t = tf.constant(x, dtype=dtype)
    return (fn(t, **params) if params else fn(t)).numpy().astype(np.float64)


@pytest.mark.parametrize("kind,params,name", FLOAT_CASES, ids=lambda v: str(v))
@pytest.mark.parametrize(
    "in_type",
    # the 12- and 14-bit tables (4k/16k codes x 4 output types x 3 roundings against
    # TensorFlow, exact rationals for hard_sigmoid/softsign) are the slowest cases: in the
    # slow set; the other widths run by default
    [*IN_TYPES[:3], *(pytest.param(t, marks=pytest.mark.slow) for t in IN_TYPES[3:5])],
    ids=str,
)
def test_float_table_error_is_the_max_error_against_tensorflow(tf, kind, params, name, in_type):
    x = in_type.to_float(input_codes(in_type))
    exact64 = _keras(tf, name, x, tf.float64, params)
    keras32 = _keras(tf, name, x.astype(np.float32), tf.float32, params)
    for out_type in OUT_TYPES:
        for rounding in Rounding:
            table = lookup_table(kind, in_type, out_type, params, rounding)
            got = out_type.to_float(table)
            err = table_error(kind, in_type, out_type, params, rounding)
            assert abs(err - np.max(np.abs(got - exact64))) <= 1e-12 * max(1.0, err)
            # Keras float32: within the table's error plus float32's own rounding
            # (TensorFlow's float32 mish rounds tanh(softplus(x)) to 1 from x ~ 7.9 on,
            # where it is 1 - 2.6e-7: x off by 8 ulps)
            relative = 2.0**-20 if kind is K.MISH else 2.0**-22
            slack = relative * np.maximum(1.0, np.abs(x))
            assert np.all(np.abs(got - keras32) <= err + slack)


@pytest.mark.parametrize("kind,params,name", FLOAT_CASES, ids=lambda v: str(v))
def test_float_table_is_correctly_rounded_when_the_type_covers_the_range(kind, params, name):
    in_type, out_type = FixedType(12, 9), FixedType(14, 10, True)  # [-4, 4) into [-8, 8)
    assert table_error(kind, in_type, out_type, params) <= out_type.step / 2
    trunc = table_error(kind, in_type, out_type, params, Rounding.TRUNCATE)
    assert out_type.step / 2 < trunc < out_type.step


def test_rational_ties_round_exactly():
    in_type, out_type = FixedType(6, 0), FixedType(4, 1, True)
    table = lookup_table(K.SOFTSIGN, in_type, out_type)
    # softsign(1) = 0.5 exact; softsign(3) = 0.75: tie between 0.5 and 1.0, to even -> 1.0
    assert out_type.to_float(apply_table(table, np.array([1, 3, -3]), in_type)).tolist() == [
        0.5,
        1.0,
        -1.0,
    ]
    half_up = lookup_table(K.SOFTSIGN, in_type, out_type, rounding=Rounding.HALF_UP)
    assert out_type.to_float(apply_table(half_up, np.array([3, -3]), in_type)).tolist() == [
        1.0,
        -0.5,
    ]
    # hard_sigmoid(0.5 * 5) = 1 with slope 1/5 exactly (float32(0.2) would not land on 1).
    hs = lookup_table(K.HARD_SIGMOID, FixedType(6, 1), FixedType(12, 11, False))
    assert apply_table(hs, np.array([5]), FixedType(6, 1)).tolist() == [2**11]
    keras3 = {"slope": Fraction(1, 6), "offset": Fraction(1, 2)}
    hs3 = lookup_table(K.HARD_SIGMOID, FixedType(6, 0), FixedType(8, 6, True), keras3)
    assert apply_table(hs3, np.array([-3, 0, 1, 3]), FixedType(6, 0)).tolist() == [0, 32, 43, 64]


def test_wide_table_input_is_a_one_line_user_error():
    with pytest.raises(RtlgenError, match=r"15-bit input .* 14 bits or fewer") as info:
        lookup_table(K.SIGMOID, FixedType(15, 10), FixedType(8, 8, False))
    assert "\n" not in str(info.value)
    assert MAX_TABLE_INPUT_BITS == 14


def test_unknown_or_unsupported_options_are_refused():
    with pytest.raises(RtlgenError, match="unknown option"):
        lookup_table(K.SIGMOID, FixedType(8, 4), FixedType(8, 8, False), {"bits": 8})
    with pytest.raises(UnsupportedError, match="stochastic"):
        table_out_type(K.QUANTIZED_TANH, FixedType(8, 4), {"use_stochastic_rounding": True})
    with pytest.raises(RtlgenError, match="power of two"):
        table_out_type(K.QUANTIZED_RELU, FixedType(8, 4), {"negative_slope": 0.3})


# ---------------------------------------------------------------------------------------
# hard_silu (Keras 3), exponential
# ---------------------------------------------------------------------------------------
def _hard_silu_exact(value: Fraction) -> Fraction:
    """Keras 3's ``x * relu6(x + 3) / 6``, written out with fractions."""
    return value * min(max(value + 3, Fraction(0)), Fraction(6)) / 6


def _round_fraction(value: Fraction, rounding: Rounding) -> int:
    floor = value.numerator // value.denominator
    rest = value - floor
    if rounding is Rounding.TRUNCATE:
        return floor
    if rounding is Rounding.HALF_UP:
        return floor + (rest >= Fraction(1, 2))
    return floor + (rest > Fraction(1, 2) or (rest == Fraction(1, 2) and floor % 2 == 1))


@pytest.mark.parametrize("in_type", [FixedType(8, 4), FixedType(10, 6), FixedType(7, -1)], ids=str)
@pytest.mark.parametrize("rounding", list(Rounding), ids=lambda r: r.value)
def test_hard_silu_table_is_the_exact_rational_rounded(in_type, rounding):
    """Every code: the table equals x * relu6(x + 3) / 6 in fractions, rounded and
    saturated; its error is the largest distance to it."""
    for out_type in (FixedType(12, 8), FixedType(8, 6, True), FixedType(6, 3, False)):
        table = lookup_table(K.HARD_SILU, in_type, out_type, rounding=rounding)
        want, error = [], Fraction(0)
        for code in input_codes(in_type):
            exact = _hard_silu_exact(Fraction(int(code)) / Fraction(2) ** in_type.frac)
            m = _round_fraction(exact * Fraction(2) ** out_type.frac, rounding)
            m = min(max(m, out_type.min_int), out_type.max_int)
            want.append(m)
            error = max(error, abs(Fraction(m) / Fraction(2) ** out_type.frac - exact))
        np.testing.assert_array_equal(table, want)
        assert table_error(K.HARD_SILU, in_type, out_type, rounding=rounding) == float(error)


def test_hard_silu_ties_round_to_even():
    # hard_silu(1) = 2/3, hard_silu(-1.5) = -0.375, exact in 3 fraction bits: -3/8
    t = FixedType(6, 1)
    table = lookup_table(K.HARD_SILU, t, FixedType(8, 2, True))
    # -0.375 * 4 = -1.5: the tie goes to -2 (even); 2/3 * 4 = 2.67 -> 3
    assert apply_table(table, np.array([-3, 2]), t).tolist() == [-2, 3]


@pytest.mark.parametrize("in_type", [FixedType(8, 4), FixedType(10, 6), FixedType(8, 2)], ids=str)
def test_exponential_table_against_tensorflow_saturates_into_the_output(tf, in_type):
    """tf.keras 2.15's float64 ``exponential`` on every code: the table is it rounded into
    the output type, saturated at its top (e**x beyond 2**7 for ufixed<16,8>)."""
    x = in_type.to_float(input_codes(in_type))
    exact64 = _keras(tf, "exponential", x, tf.float64, {})
    out_type = FixedType(16, 8, False)
    table = lookup_table(K.EXPONENTIAL, in_type, out_type)
    want = np.clip(np.round(exact64 * 2**8), 0, out_type.max_int)
    np.testing.assert_array_equal(table, want)
    saturated = exact64 > out_type.max_value
    assert saturated.any() == (in_type.max_value > math.log(out_type.max_value))
    keras32 = _keras(tf, "exponential", x.astype(np.float32), tf.float32, {})
    error = table_error(K.EXPONENTIAL, in_type, out_type)
    assert np.max(np.abs(out_type.to_float(table) - keras32)) <= error + 2.0**-20 * keras32.max()


def test_apply_table_checks_its_inputs():
    t = FixedType(4, 0)
    table = np.arange(16) * 2
    assert apply_table(table, np.array([[-8, 7]]), t).tolist() == [[0, 30]]
    with pytest.raises(ValueError):
        apply_table(table, np.array([8]), t)


# ---------------------------------------------------------------------------------------
# piecewise linear: LeakyReLU / PReLU / ReLU against Keras layers
# ---------------------------------------------------------------------------------------
def _keras_layer(tf, layer, x: np.ndarray) -> np.ndarray:
    return layer(tf.constant(x.astype(np.float32))).numpy().astype(np.float64)


def test_slope_type_is_exact_for_dyadic_slopes_and_bounded_otherwise():
    assert slope_type(0.25) == FixedType(1, 2, False)
    assert slope_type([0.1875, -1.5]) == FixedType(6, 4, True)
    t = slope_type(0.3, 12)
    assert t.width == 12 and abs(t.to_float(quantize_slope(0.3, t))[0] - 0.3) <= t.step / 2
    assert 0.3 <= t.max_value < 0.6  # the range just holds 0.3
    assert slope_type([0.0]) == FixedType(1, 0, False)


@pytest.mark.parametrize(
    "in_type", [FixedType(8, 4), FixedType(12, 6), FixedType(6, 3, False)], ids=str
)
@pytest.mark.parametrize("alpha", [0.25, 0.3, 0.01, 1.5])
def test_leaky_relu_against_keras(tf, in_type, alpha):
    x = input_codes(in_type)
    keras = _keras_layer(tf, tf.keras.layers.LeakyReLU(alpha=alpha), in_type.to_float(x))
    for out_type, bits in [(FixedType(16, 8), 16), (FixedType(8, 4), 8), (FixedType(24, 16), 20)]:
        spec = LeakySpec.from_keras(alpha, in_type, out_type, slope_bits=bits)
        got = out_type.to_float(spec(x))
        assert np.max(np.abs(got - keras)) <= leaky_error_bound(alpha, spec)
        if alpha in (0.25, 1.5) and out_type.frac >= in_type.frac + spec.slope_type.frac:
            np.testing.assert_array_equal(got, keras)  # dyadic slope, fine output: exact


def test_leaky_error_bound_is_tight_enough_to_matter():
    in_type, out_type = FixedType(12, 6), FixedType(24, 16)
    bound = leaky_error_bound(0.3, LeakySpec.from_keras(0.3, in_type, out_type, slope_bits=20))
    assert bound < 2 * out_type.step  # slope error 32 * 2**-22, float32 ~ 2**-20: < 2 LSB


def test_prelu_against_keras(tf):
    in_type, out_type = FixedType(9, 5), FixedType(14, 8)
    alphas = np.array([0.5, -0.25, 1.5, 0.3, 0.0], dtype=np.float32)
    layer = tf.keras.layers.PReLU()
    layer.build((None, len(alphas)))
    layer.set_weights([alphas])
    codes = input_codes(in_type)
    x = np.stack([np.roll(codes, k) for k in range(len(alphas))], axis=1)
    keras = _keras_layer(tf, layer, in_type.to_float(x))
    spec = LeakySpec.from_keras(alphas, in_type, out_type)
    got = out_type.to_float(spec(x))
    assert np.max(np.abs(got - keras)) <= leaky_error_bound(alphas, spec)
    dyadic = [0, 1, 2, 4]
    np.testing.assert_array_equal(got[:, dyadic], keras[:, dyadic])


@pytest.mark.parametrize(
    "max_value,negative_slope,threshold",
    [
        (6.0, 0.0, 0.0),
        (1.0, 0.0, 0.0),
        (None, 0.125, 0.5),
        (2.5, 0.25, 1.0),
        (0.3, 0.0, 0.25),
        (None, 0.0, 0.1),
    ],
)
def test_relu_layer_against_keras(tf, max_value, negative_slope, threshold):
    in_type, out_type = FixedType(10, 5), FixedType(12, 6)
    x = input_codes(in_type)
    layer = tf.keras.layers.ReLU(
        max_value=max_value, negative_slope=negative_slope, threshold=threshold
    )
    keras = _keras_layer(tf, layer, in_type.to_float(x))
    spec = LeakySpec.from_keras(
        negative_slope, in_type, out_type, max_value=max_value, threshold=threshold
    )
    got = out_type.to_float(spec(x))
    # The slopes are dyadic and the output finer than the input, so Keras's float32 result
    # rounded into the output type is what the kernel computes. A non-dyadic max_value (0.3)
    # is rounded into the output first (round(min(x, M)) == min(round(x), round(M))); a
    # non-dyadic threshold (0.1) without a slope is only compared.
    np.testing.assert_array_equal(got, out_type.to_float(out_type.quantize(keras)))
    assert np.max(np.abs(got - keras)) <= leaky_error_bound(
        negative_slope, spec, max_value=max_value
    )


def test_relu_at_the_threshold_is_zero_as_keras_computes(tf):
    in_type = FixedType(8, 4)
    layer = tf.keras.layers.ReLU(threshold=1.0)
    assert _keras_layer(tf, layer, np.array([1.0, 1.0625])).tolist() == [0.0, 1.0625]
    s_type = slope_type(0.0)
    got = leaky(np.array([16, 17]), in_type, 0, s_type, in_type, threshold=16)
    assert got.tolist() == [0, 17]


def test_threshold_off_the_input_grid():
    t = FixedType(8, 4)
    assert threshold_mantissa(0.1, t, has_slope=False) == 1  # x > 0.1 <=> m > 1
    with pytest.raises(RtlgenError, match="multiple of the input step"):
        threshold_mantissa(0.1, t, has_slope=True)
