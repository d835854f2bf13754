"""Exact activations: lookup tables for the non-linear ones, fixed-point slopes for the
piecewise-linear ones.

**Tables.** A non-linear activation of a narrow input becomes a table with one output
mantissa per input code (`lookup_table`; index = input mantissa - ``in_type.min_int``),
refused above `MAX_TABLE_INPUT_BITS` input bits. Two families:

- QKeras activation quantizers (``quantized_sigmoid``, ``quantized_tanh``,
  ``quantized_relu`` with any ``negative_slope``, ``quantized_relu_po2``): the table holds,
  bit for bit, what qkeras 0.9.0 computes on the input's float value. QKeras computes in
  float32, op by op, and the table is computed the same way in numpy float32 (every op is an
  IEEE float32 add/multiply/round, as in TensorFlow on CPU). The one part numpy cannot
  reproduce is TensorFlow's own float32 ``sigmoid``/``tanh``
  (``use_real_sigmoid``/``use_real_tanh``, or ``internal_sigmoid="real"``): the table uses
  the correctly rounded float32 value; TensorFlow's may differ in the last bit, which
  changes the output only when ``f(x) * 2**bits`` lies within a few float32 ulps of a
  rounding boundary (the tests check all codes of several types against QKeras).
  ``quantized_relu_po2`` rounds ``log(x) / log(2)`` of float32 ops (numpy's float32 log;
  TensorFlow's agreed on every code of the types tested) and, as TensorFlow on the CPU,
  flushes a subnormal float32 power (``2**-128`` of ``bits=8``) to 0. ``quantized_hswish``
  is ``quantized_bits(bits, integer, symmetric)`` of ``x * min(relu(x + relu_shift),
  relu_upper_bound) / relu_upper_bound`` in float32, as the quantizer computes it on a tensor
  (a Keras model's ``predict`` runs a TensorFlow graph that rounds it differently where the
  exact value is a rounding tie: 8 of the 1,024 codes of fixed<10,5> for ``(8, 3)``). The
  output values are exact dyadic numbers; `table_out_type` is the narrowest type holding them.
- float Keras activations (``sigmoid``, ``tanh``, ``hard_sigmoid``, ``softsign``, ``elu``,
  ``selu`` = ``SELU_SCALE * elu(x, SELU_ALPHA)``, ``silu`` = ``x * sigmoid(x)``, ``gelu`` =
  ``x/2 * (1 + erf(x / sqrt 2))`` or with ``approximate`` the tanh form, ``softplus`` =
  ``log(1 + exp(x))``, ``hard_silu`` (Keras 3, alias ``hard_swish``) = ``x * relu6(x + 3) / 6``,
  ``mish`` = ``x * tanh(softplus(x))``, ``exponential`` = ``exp(x)``): the table is the
  *exact* function of the input value rounded into ``out_type`` with the layer's rounding
  and saturation (``exponential``'s large values saturate there). Rational functions
  (hard_sigmoid with slope 1/5 as in Keras 2 / 1/6 as in Keras 3, softsign, hard_silu) are
  computed with exact integers; sigmoid, tanh, ELU, SELU, SiLU, softplus, mish and exp in
  x87 extended precision (64-bit significand), the erf GELU in float64 (53 bits; numpy has
  no extended erf): their values are irrational except at x = 0 (computed exactly), so the
  rounding is correct unless the function lies within about 2**-60 (GELU 2**-50, relative)
  of a rounding boundary. `table_error` reports the table's largest absolute error against
  the exact function; Keras itself computes in float32 (error about 2**-24 relative, plus
  0.2 being float32(0.2) in hard_sigmoid).

**Piecewise-linear** (Keras ``LeakyReLU``, ``PReLU``, ``ReLU(max_value, negative_slope,
threshold)``, ``ThresholdedReLU``)::

    acc = x > threshold ? x : slope * (x - threshold)           (exact integers)
    y   = requantize(min(acc, max_value), acc_frac, out_type, rounding, overflow)

(`LeakySpec`, `LeakySpec.from_keras`; `leaky` is the same as a function). ``slope`` is the
float slope rounded into a stated `slope_type` (exact when the slope is a
dyadic number of at most ``max_bits`` bits, e.g. 0.25 or 0.1875; 0.3 is not). Keras
computes ``x * float32(alpha)`` in float32; `leaky_error_bound` bounds the difference
(slope quantization error times the largest ``|x - threshold|``, plus the output rounding
and the float32 rounding of Keras). The comparison is strict ``x > threshold`` because
that is what Keras computes (``backend.relu`` multiplies by ``x > threshold``): at
``x == threshold`` the output is ``0``, not ``threshold``. ``max_value`` is rounded into
``out_type`` first: rounding is monotone, so ``round(min(x, M)) == min(round(x), round(M))``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from fractions import Fraction
from typing import Any

import numpy as np

from .arith import apply_clamp
from .errors import RtlgenError, UnsupportedError
from .fixed import FixedType, Overflow, Rounding, fit, requantize

#: Keras's ``selu`` (tf.nn.selu): ``SELU_SCALE * (x if x > 0 else SELU_ALPHA * expm1(x))``
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946

#: kinds whose outputs are rational in the input: computed with exact integers
RATIONAL_KINDS = ("hard_sigmoid", "softsign", "hard_silu")

#: Widest input a lookup table accepts: 2**14 entries (16 K words, a few block RAMs).
MAX_TABLE_INPUT_BITS = 14


class ActivationKind(Enum):
    """A table activation: float Keras functions and QKeras activation quantizers."""

    SIGMOID = "sigmoid"
    TANH = "tanh"
    HARD_SIGMOID = "hard_sigmoid"
    SOFTSIGN = "softsign"
    ELU = "elu"
    SELU = "selu"
    SILU = "silu"
    GELU = "gelu"
    SOFTPLUS = "softplus"
    HARD_SILU = "hard_silu"
    MISH = "mish"
    EXPONENTIAL = "exponential"
    QUANTIZED_SIGMOID = "quantized_sigmoid"
    QUANTIZED_TANH = "quantized_tanh"
    QUANTIZED_RELU = "quantized_relu"
    QUANTIZED_RELU_PO2 = "quantized_relu_po2"
    QUANTIZED_HSWISH = "quantized_hswish"

    @property
    def is_qkeras(self) -> bool:
        """True for the QKeras quantizers (exact outputs), False for float functions."""
        return self.value.startswith("quantized_")


#: Parameters of each kind with their defaults (QKeras's and Keras 2.15's).
_PARAMS: dict[ActivationKind, dict[str, Any]] = {
    ActivationKind.SIGMOID: {},
    ActivationKind.TANH: {},
    ActivationKind.SOFTSIGN: {},
    ActivationKind.HARD_SIGMOID: {"slope": Fraction(1, 5), "offset": Fraction(1, 2)},
    ActivationKind.ELU: {"alpha": 1.0},
    ActivationKind.SELU: {},
    ActivationKind.SILU: {},
    # Keras 2.15 and 3 (``activations.gelu``; the "gelu" string): the exact erf form
    ActivationKind.GELU: {"approximate": False},
    ActivationKind.SOFTPLUS: {},
    # Keras 3 ``hard_silu`` (alias ``hard_swish``): x * relu6(x + 3) / 6, no options
    ActivationKind.HARD_SILU: {},
    ActivationKind.MISH: {},
    ActivationKind.EXPONENTIAL: {},
    ActivationKind.QUANTIZED_SIGMOID: {
        "bits": 8,
        "symmetric": False,
        "use_real_sigmoid": False,
        "use_stochastic_rounding": False,
        "internal_sigmoid": "hard",
    },
    ActivationKind.QUANTIZED_TANH: {
        "bits": 8,
        "symmetric": False,
        "use_real_tanh": False,
        "use_stochastic_rounding": False,
        "internal_sigmoid": "hard",
    },
    ActivationKind.QUANTIZED_RELU: {
        "bits": 8,
        "integer": 0,
        "use_sigmoid": 0,
        "negative_slope": 0.0,
        "use_stochastic_rounding": False,
        "relu_upper_bound": None,
        "is_quantized_clip": True,
        "qnoise_factor": 1.0,
        "internal_sigmoid": "hard",
    },
    # quantized_bits(bits, integer, symmetric) of x * relu6-like(x + shift) / upper_bound
    # (alpha None/1, qnoise_factor 1 and use_stochastic_rounding checked by the parser)
    ActivationKind.QUANTIZED_HSWISH: {
        "bits": 8,
        "integer": 0,
        "symmetric": False,
        "use_stochastic_rounding": False,
        "relu_shift": 3,
        "relu_upper_bound": 6,
    },
    # negative_slope=0, use_stochastic_rounding and qnoise_factor=1 checked by the parser
    ActivationKind.QUANTIZED_RELU_PO2: {
        "bits": 8,
        "max_value": None,
        "quadratic_approximation": False,
        "log2_rounding": "rnd",
    },
}


def activation_params(kind: ActivationKind, params: Mapping[str, Any] | None) -> dict[str, Any]:
    """``params`` completed with the defaults of ``kind``; unknown or unsupported options are
    an `RtlgenError` naming them.

    ``internal_sigmoid`` is QKeras's module-wide ``set_internal_sigmoid`` mode ("hard" by
    default; "smooth" or "real"), which its sigmoid-based quantizers use.
    """
    defaults = _PARAMS[kind]
    given = dict(params or {})
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise RtlgenError(
            f"activation {kind.value}: unknown option(s) {', '.join(unknown)} "
            f"(known: {', '.join(defaults) or 'none'})"
        )
    out = {**defaults, **given}
    if out.get("use_stochastic_rounding"):
        raise UnsupportedError(
            f"{kind.value}: use_stochastic_rounding=True is not supported (random at training time)"
        )
    if out.get("internal_sigmoid", "hard") not in ("hard", "smooth", "real"):
        raise RtlgenError(
            f"{kind.value}: internal_sigmoid={out['internal_sigmoid']!r} "
            "(supported: 'hard', 'smooth', 'real')"
        )
    if "bits" in out and (not isinstance(out["bits"], int) or not 1 <= out["bits"] <= 24):
        raise UnsupportedError(f"{kind.value}: bits={out['bits']!r} (supported: 1 to 24)")
    if kind is ActivationKind.QUANTIZED_RELU:
        slope = float(out["negative_slope"] or 0.0)
        if slope < 0 or (slope != 0 and math.frexp(slope)[0] != 0.5):
            raise RtlgenError(
                f"quantized_relu: negative_slope={slope} must be 0 or a power of two (as QKeras asserts)"
            )
        if float(out["qnoise_factor"]) != 1.0:
            raise UnsupportedError(
                f"quantized_relu: qnoise_factor={out['qnoise_factor']} (supported: 1, inference)"
            )
        if out["relu_upper_bound"] is not None and not out["is_quantized_clip"]:
            raise UnsupportedError(
                "quantized_relu(relu_upper_bound=..., is_quantized_clip=False) is not supported"
            )
        if out["use_sigmoid"] and out["bits"] - (slope != 0) < 1:
            raise UnsupportedError("quantized_relu(use_sigmoid=1) needs at least one value bit")
    if kind is ActivationKind.QUANTIZED_RELU_PO2:
        relu_po2_quantizer(out)  # QKeras's checks: bits 1..16, max_value >= 0, log2_rounding
    if kind is ActivationKind.QUANTIZED_HSWISH:
        for key in ("relu_shift", "relu_upper_bound"):  # QKeras asserts both are positive
            value = out[key]
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise RtlgenError(f"quantized_hswish: {key}={value!r} must be a positive number")
        if out["bits"] < 2:
            raise UnsupportedError("quantized_hswish: bits must be at least 2")
    if kind is ActivationKind.HARD_SIGMOID:
        out["slope"], out["offset"] = _fraction(out["slope"]), _fraction(out["offset"])
    if kind is ActivationKind.GELU:
        if not isinstance(out["approximate"], bool):
            raise RtlgenError(f"gelu: approximate={out['approximate']!r} is not true/false")
    return out


def _fraction(value: Any) -> Fraction:
    """A decimal written as a float is the number it spells (0.2 is 1/5, not float(0.2))."""
    if isinstance(value, Fraction | int):
        return Fraction(value)
    return Fraction(repr(float(value)))


# ---------------------------------------------------------------------------------------
# lookup tables
# ---------------------------------------------------------------------------------------
def check_table_input(in_type: FixedType, where: str = "activation") -> None:
    """Refuse inputs too wide for a table (one entry per input code)."""
    if in_type.width > MAX_TABLE_INPUT_BITS:
        raise RtlgenError(
            f"{where}: a lookup table of a {in_type.width}-bit input ({in_type}) would have "
            f"2**{in_type.width} entries (supported: up to {MAX_TABLE_INPUT_BITS} input bits); "
            f"quantize the activation's input to {MAX_TABLE_INPUT_BITS} bits or fewer"
        )


def input_codes(in_type: FixedType) -> np.ndarray:
    """Every mantissa of ``in_type``, ascending (the table index order)."""
    return np.arange(in_type.min_int, in_type.max_int + 1, dtype=np.int64)


def lookup_table(
    kind: ActivationKind,
    in_type: FixedType,
    out_type: FixedType,
    params: Mapping[str, Any] | None = None,
    rounding: Rounding = Rounding.CONVERGENT,
    overflow: Overflow = Overflow.SATURATE,
) -> np.ndarray:
    """Output mantissas (int64, in ``out_type``) for every input code of ``in_type``.

    Entry ``k`` is the output for the input mantissa ``in_type.min_int + k``. QKeras kinds:
    exactly QKeras's output, which ``out_type`` must hold exactly (else `RtlgenError`;
    `table_out_type` gives the narrowest such type), ``rounding``/``overflow`` unused. Float
    kinds: the exact function rounded into ``out_type`` with ``rounding`` and ``overflow``.
    """
    check_table_input(in_type, kind.value)
    p = activation_params(kind, params)
    if kind.is_qkeras:
        values = qkeras_values(kind, in_type, p)
        scaled = values.astype(np.float64) * 2.0**out_type.frac
        mantissa = np.round(scaled)
        bad = (mantissa != scaled) | (mantissa < out_type.min_int) | (mantissa > out_type.max_int)
        if bad.any():
            value = float(values[np.argmax(bad)])
            raise RtlgenError(
                f"{kind.value}: output {value} is not exactly representable in {out_type} "
                f"(the narrowest exact type is {table_out_type(kind, in_type, p)})"
            )
        return mantissa.astype(np.int64)
    codes = input_codes(in_type)
    if kind.value in RATIONAL_KINDS:
        num, den = _scaled(*_rational_values(kind, in_type, p), out_type.frac)
        rounded = _round_ratio(num, den, rounding)
        limit = 1 << 62  # any value beyond the int64-safe range saturates or wraps the same
        return fit(np.clip(rounded, -limit, limit).astype(np.int64), out_type, overflow)
    scaled = _transcendental_values(kind, codes, in_type, p) * np.longdouble(2.0) ** out_type.frac
    if rounding is Rounding.CONVERGENT:
        q = np.rint(scaled)
    elif rounding is Rounding.HALF_UP:
        q = np.floor(scaled + np.longdouble(0.5))
    else:
        q = np.floor(scaled)
    q = np.clip(q, -(2.0**62), 2.0**62).astype(np.int64)
    return fit(q, out_type, overflow)


def apply_table(table: np.ndarray, x: np.ndarray, in_type: FixedType) -> np.ndarray:
    """The table's output for input mantissas ``x`` of ``in_type`` (any shape)."""
    x = np.asarray(x, dtype=np.int64)
    if x.size and (x.min() < in_type.min_int or x.max() > in_type.max_int):
        raise ValueError(f"input mantissas outside {in_type}")
    table = np.asarray(table, dtype=np.int64)
    if len(table) != in_type.max_int - in_type.min_int + 1:
        raise ValueError(f"table of {len(table)} entries for {in_type}")
    return table[x - in_type.min_int]


def table_out_type(
    kind: ActivationKind, in_type: FixedType, params: Mapping[str, Any] | None = None
) -> FixedType:
    """Narrowest type holding exactly every output of a QKeras kind over ``in_type``."""
    if not kind.is_qkeras:
        raise RtlgenError(f"{kind.value}: a float activation needs an explicit output type")
    check_table_input(in_type, kind.value)
    return exact_type(qkeras_values(kind, in_type, activation_params(kind, params)))


def exact_type(values: np.ndarray) -> FixedType:
    """Narrowest `FixedType` holding every (dyadic) value exactly."""
    v = np.asarray(values, dtype=np.float64)
    nonzero = v[v != 0]
    if nonzero.size == 0:
        return FixedType(1, 0, False)
    for frac in range(-62, 63):
        scaled = nonzero * 2.0**frac
        if np.all(scaled == np.round(scaled)):
            m = np.round(v * 2.0**frac).astype(np.int64)
            return FixedType.covering(int(m.min()), int(m.max()), frac)
    raise RtlgenError("activation outputs are not fixed-point values of at most 62 bits")


def table_error(
    kind: ActivationKind,
    in_type: FixedType,
    out_type: FixedType,
    params: Mapping[str, Any] | None = None,
    rounding: Rounding = Rounding.CONVERGENT,
    overflow: Overflow = Overflow.SATURATE,
) -> float:
    """Largest ``|table value - f(x)|`` over every input code, f the exact float function
    (for QKeras kinds: the unquantized function QKeras quantizes, e.g. hard sigmoid)."""
    p = activation_params(kind, params)
    table = lookup_table(kind, in_type, out_type, p, rounding, overflow)
    if kind.value in RATIONAL_KINDS:
        # |m 2**-F - v| = |m - v 2**F| 2**-F, with v 2**F = num / den in exact integers
        num, den = _scaled(*_rational_values(kind, in_type, p), out_type.frac)
        gap = np.abs(table.astype(object) * den - num)
        return max(g / d for g, d in zip(gap, den, strict=True)) * 2.0**-out_type.frac
    if kind.is_qkeras:
        reference = _qkeras_float_function(kind, in_type, p)
    else:
        reference = _transcendental_values(kind, input_codes(in_type), in_type, p)
    got = table.astype(np.longdouble) * np.longdouble(2.0) ** -out_type.frac
    return float(np.max(np.abs(got - reference)))


def _round_ratio(num: np.ndarray, den: np.ndarray, rounding: Rounding) -> np.ndarray:
    """``num / den`` (object arrays of Python ints, ``den > 0``) rounded to integers exactly."""
    floor = num // den
    rem2 = 2 * (num - floor * den)  # 2 * remainder, against the denominator
    if rounding is Rounding.TRUNCATE:
        return floor
    if rounding is Rounding.HALF_UP:
        return floor + (rem2 >= den)
    odd = np.array([f & 1 == 1 for f in floor], dtype=bool)
    return floor + ((rem2 > den) | ((rem2 == den) & odd))


def _scaled(num: np.ndarray, den: np.ndarray, frac: int) -> tuple[np.ndarray, np.ndarray]:
    """``num / den * 2**frac`` as a ratio of integers."""
    return (num * 2**frac, den) if frac >= 0 else (num, den * 2**-frac)


def _rational_values(
    kind: ActivationKind, in_type: FixedType, p: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    """(numerators, denominators) of the exact outputs for every input code, as object
    arrays of Python ints (``den > 0``): exact, and ~35x faster than a `Fraction` each
    (a 14-bit hard sigmoid table with its error: 1.4 s -> 0.04 s)."""
    codes = input_codes(in_type).astype(object)
    codes, one = _scaled(codes, np.full(len(codes), 1, dtype=object), -in_type.frac)
    one = one[0]  # x = codes / one
    if kind is ActivationKind.SOFTSIGN:  # x / (1 + |x|) = m / (2**f + |m|)
        return codes, one + np.abs(codes)
    if kind is ActivationKind.HARD_SILU:
        # x relu6(x + 3) / 6 = m clip(m + 3 * 2**f, 0, 6 * 2**f) / (6 * 2**2f)
        clipped = np.minimum(np.maximum(codes + 3 * one, 0), 6 * one)
        return codes * clipped, np.full(len(codes), 6 * one * one, dtype=object)
    slope, offset = Fraction(p["slope"]), Fraction(p["offset"])
    # slope x + offset = (sn od m + on sd 2**f) / (sd od 2**f), clipped to [0, 1]
    den = slope.denominator * offset.denominator * one
    num = slope.numerator * offset.denominator * codes + offset.numerator * slope.denominator * one
    num = np.minimum(np.maximum(num, 0), den)
    return num, np.full(len(codes), den, dtype=object)


def _transcendental_values(
    kind: ActivationKind, codes: np.ndarray, in_type: FixedType, p: dict[str, Any]
) -> np.ndarray:
    """sigmoid / tanh / ELU / SELU / SiLU / GELU / softplus / mish / exp of the codes' values
    in extended precision."""
    x = codes.astype(np.longdouble) * np.longdouble(2.0) ** -in_type.frac
    return _extended(kind, x, p)


def _extended(kind: ActivationKind, x: np.ndarray, p: Mapping[str, Any]) -> np.ndarray:
    """A transcendental kind of the (long double) values ``x``, in extended precision
    except the exact GELU, whose ``erfc`` is float64 (numpy has no long double erf):
    relative error ~2**-52, no cancellation (``x/2 * erfc(-x / sqrt 2)``)."""
    one = np.longdouble(1)
    if kind is ActivationKind.SIGMOID:
        return one / (one + np.exp(-x))
    if kind is ActivationKind.TANH:
        return np.tanh(x)
    if kind is ActivationKind.ELU:
        return np.where(x > 0, x, np.longdouble(p["alpha"]) * np.expm1(np.minimum(x, 0)))
    if kind is ActivationKind.SELU:
        alpha, scale = np.longdouble(SELU_ALPHA), np.longdouble(SELU_SCALE)
        return scale * np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))
    if kind is ActivationKind.SILU:  # x * sigmoid(x)
        with np.errstate(over="ignore"):
            return x / (one + np.exp(-x))
    if kind is ActivationKind.SOFTPLUS:  # log(1 + e**x) = max(x, 0) + log1p(e**-|x|)
        return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))
    if kind is ActivationKind.MISH:  # x tanh(softplus(x))
        return x * np.tanh(np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x))))
    if kind is ActivationKind.EXPONENTIAL:  # overflows to inf above ~11356: saturates
        with np.errstate(over="ignore"):
            return np.exp(x)
    if kind is ActivationKind.GELU:
        if p["approximate"]:
            # x/2 (1 + tanh(u)) = x sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x**3)
            u = np.sqrt(np.longdouble(2) / np.longdouble(np.pi)) * (
                x + np.longdouble(0.044715) * x**3
            )
            with np.errstate(over="ignore"):
                return x / (one + np.exp(-2 * u))
        erfc = np.frompyfunc(math.erfc, 1, 1)
        scaled = (-x / np.sqrt(np.longdouble(2))).astype(np.float64)
        return x * np.asarray(erfc(scaled), dtype=np.float64).astype(np.longdouble) / 2
    raise AssertionError(kind)  # pragma: no cover


# -- QKeras, op by op in float32 --------------------------------------------------------
_F32 = np.float32


def _real_sigmoid32(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-x.astype(np.float64)))).astype(_F32)


def _qkeras_sigmoid32(x: np.ndarray, mode: str) -> np.ndarray:
    """QKeras ``_sigmoid`` (``set_internal_sigmoid``): hard, smooth or real, in float32."""
    if mode == "real":
        return _real_sigmoid32(x)
    slope = _F32(0.5) if mode == "hard" else _F32(0.1875)
    return np.clip(slope * x + _F32(0.5), _F32(0.0), _F32(1.0))


def _round_through32(x: np.ndarray) -> np.ndarray:
    """QKeras ``_round_through``: ``x + (-x + round(x))`` in float32 (== round(x))."""
    return x + (-x + np.round(x))


def qkeras_values(kind: ActivationKind, in_type: FixedType, p: dict[str, Any]) -> np.ndarray:
    """QKeras's float32 outputs for every input code of ``in_type`` (qkeras 0.9.0 code)."""
    return _qkeras32(
        kind, in_type.to_float(input_codes(in_type)).astype(_F32), p
    )  # exact: <= 14 bits


def float_activation(
    kind: ActivationKind, x: np.ndarray, params: Mapping[str, Any] | None
) -> np.ndarray:
    """The activation of real inputs ``x`` in float64, for calibration: float kinds by
    their formula, QKeras kinds as QKeras computes them (float32)."""
    p = activation_params(kind, params)
    if kind.is_qkeras:
        return _qkeras32(kind, np.asarray(x, dtype=_F32), p).astype(np.float64)
    x = np.asarray(x, dtype=np.float64)
    if kind is ActivationKind.SIGMOID:
        return 1.0 / (1.0 + np.exp(-x))
    if kind is ActivationKind.TANH:
        return np.tanh(x)
    if kind is ActivationKind.ELU:
        return np.where(x > 0, x, float(p["alpha"]) * np.expm1(np.minimum(x, 0)))
    if kind is ActivationKind.SELU:
        return SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(np.minimum(x, 0)))
    if kind is ActivationKind.SOFTSIGN:
        return x / (1.0 + np.abs(x))
    if kind is ActivationKind.HARD_SIGMOID:
        return np.clip(float(p["slope"]) * x + float(p["offset"]), 0.0, 1.0)
    if kind is ActivationKind.HARD_SILU:
        return x * np.clip(x / 6 + 0.5, 0.0, 1.0)
    if kind in _EXTENDED_KINDS:
        with np.errstate(over="ignore"):
            return _extended(kind, x.astype(np.longdouble), p).astype(np.float64)
    raise AssertionError(kind)  # pragma: no cover


_EXTENDED_KINDS = (
    ActivationKind.SILU,
    ActivationKind.GELU,
    ActivationKind.SOFTPLUS,
    ActivationKind.MISH,
    ActivationKind.EXPONENTIAL,
)


def _qkeras32(kind: ActivationKind, x: np.ndarray, p: dict[str, Any]) -> np.ndarray:
    """QKeras's float32 outputs for float32 inputs ``x`` (qkeras 0.9.0 code)."""
    if kind is ActivationKind.QUANTIZED_SIGMOID:
        m = _F32(2.0 ** p["bits"])
        s = (
            _real_sigmoid32(x)
            if p["use_real_sigmoid"]
            else _qkeras_sigmoid32(x, p["internal_sigmoid"])
        )
        lo = _F32(1.0 * bool(p["symmetric"])) / m
        return np.clip(_round_through32(s * m) / m, lo, _F32(1.0) - _F32(1.0) / m)
    if kind is ActivationKind.QUANTIZED_TANH:
        m = _F32(2.0 ** (p["bits"] - 1))
        if p["use_real_tanh"]:
            t = np.tanh(x.astype(np.float64)).astype(_F32)
        else:
            t = _F32(2.0) * _qkeras_sigmoid32(x, p["internal_sigmoid"]) - _F32(1.0)
        lo = _F32(-1.0) + _F32(1.0 * bool(p["symmetric"])) / m
        return np.clip(_round_through32(t * m) / m, lo, _F32(1.0) - _F32(1.0) / m)
    if kind is ActivationKind.QUANTIZED_RELU:
        return _quantized_relu32(x, p)
    if kind is ActivationKind.QUANTIZED_RELU_PO2:
        return _quantized_relu_po2_32(x, p)
    if kind is ActivationKind.QUANTIZED_HSWISH:
        return _quantized_hswish32(x, p)
    raise AssertionError(kind)  # pragma: no cover


def hswish_quantizer(p: Mapping[str, Any]) -> Any:
    """The `rtlgen.quant.quantizers.QuantizedBits` quantized_hswish applies (keep_negative)."""
    from .quantizers import QuantizedBits  # quantizers imports this module

    return QuantizedBits(p["bits"], p["integer"], bool(p["symmetric"]), True)


def _quantized_hswish32(x: np.ndarray, p: dict[str, Any]) -> np.ndarray:
    """qkeras 0.9.0 ``quantized_hswish.__call__`` in float32: ``shift_x = x + relu_shift``,
    ``relu_x = relu(shift_x)`` up to ``relu_upper_bound``, ``x * relu_x / relu_upper_bound``,
    then its ``quantized_bits`` (exact: a power-of-two step)."""
    shift, upper = _F32(p["relu_shift"]), _F32(p["relu_upper_bound"])
    shift_x = (x + shift).astype(_F32)
    relu_x = np.where(shift_x <= upper, np.maximum(shift_x, _F32(0)), upper).astype(_F32)
    hswish = ((x * relu_x).astype(_F32) / upper).astype(_F32)
    return hswish_quantizer(p).reference(hswish).astype(_F32)


def relu_po2_quantizer(p: Mapping[str, Any]) -> Any:
    """The `rtlgen.quant.quantizers.QuantizedReluPo2` of the params (its checks)."""
    from .quantizers import QuantizedReluPo2  # quantizers imports this module

    max_value = p["max_value"]
    return QuantizedReluPo2(
        p["bits"],
        None if max_value is None else float(max_value),
        bool(p["quadratic_approximation"]),
        p["log2_rounding"],
    )


def _quantized_relu_po2_32(x: np.ndarray, p: dict[str, Any]) -> np.ndarray:
    """qkeras 0.9.0 ``quantized_relu_po2.__call__`` (negative_slope 0, use_ste,
    qnoise_factor 1) in float32: ``x + (-x + 2**e)`` with ``x`` the relu (clipped to
    ``max_value``) and ``e`` the clipped, rounded ``log(relu) / log(2)`` (``min_exp`` below
    ``epsilon``); a subnormal power flushed to 0 as TensorFlow on the CPU does."""
    from .quantizers import _po2_exponents

    q = relu_po2_quantizer(p)
    lo, hi = q.exponent_range()
    relu = np.maximum(x, _F32(0))
    if q.max_value is not None:
        relu_clipped = np.where(x <= _F32(q.max_value), relu, _F32(q.max_value)).astype(_F32)
    else:
        relu_clipped = relu
    e = _po2_exponents(relu, lo, hi, q.max_value, q.quadratic_approximation, q.log2_rounding)
    with np.errstate(under="ignore"):
        power = np.power(_F32(2), e.astype(_F32)).astype(_F32)
    power = np.where(power < np.finfo(_F32).tiny, _F32(0), power)
    return (relu_clipped + (-relu_clipped + power)).astype(_F32)


def _quantized_relu32(x: np.ndarray, p: dict[str, Any]) -> np.ndarray:
    """qkeras 0.9.0 ``quantized_relu.__call__`` (use_ste, qnoise_factor 1) in float32."""
    ns = float(p["negative_slope"] or 0.0)
    nsb = p["bits"] - (ns != 0.0)
    m = _F32(2.0**nsb)
    m_i = _F32(2.0 ** p["integer"])
    m_f = _F32(2.0 ** (p["integer"] - nsb))
    leaky = np.where(x > 0, x, x * _F32(ns)) if ns else np.maximum(x, _F32(0))
    x_u = np.where(x <= m_i - m_f, leaky, m_i - m_f).astype(_F32)
    one = _F32(1.0)
    if p["use_sigmoid"]:
        prob = _qkeras_sigmoid32(x / m_i, p["internal_sigmoid"]) * m
        xq = m_i * np.clip(_F32(2.0) * (_round_through32(prob) / m) - one, _F32(0), one - one / m)
        if ns > 0:
            neg_factor = one / (_F32(ns) * m)
            part = _F32(2.0) * (_round_through32(prob * _F32(ns)) * neg_factor) - one
            xq = xq + m_i * _F32(ns) * np.clip(part, -one, _F32(0))
    else:
        prob = x * m / m_i
        xq = m_i * np.clip(_round_through32(prob) / m, _F32(0), one - one / m)
        if ns > 0:
            neg_factor = one / (_F32(ns) * m)
            part = _round_through32(prob * _F32(ns)) * neg_factor
            xq = xq + m_i * _F32(ns) * np.clip(part, -one, _F32(0))
    return (x_u + (-x_u + xq)).astype(_F32)


def _qkeras_float_function(
    kind: ActivationKind, in_type: FixedType, p: dict[str, Any]
) -> np.ndarray:
    """The unquantized function a QKeras kind quantizes (for `table_error`)."""
    x = in_type.to_float(input_codes(in_type)).astype(np.longdouble)
    if kind is ActivationKind.QUANTIZED_RELU_PO2:  # the relu, clipped to max_value
        relu = np.maximum(x, 0)
        return relu if p["max_value"] is None else np.minimum(relu, float(p["max_value"]))
    if kind is ActivationKind.QUANTIZED_HSWISH:
        shift, upper = np.longdouble(p["relu_shift"]), np.longdouble(p["relu_upper_bound"])
        return x * np.clip(x + shift, 0, upper) / upper
    mode = p["internal_sigmoid"]

    def sigmoid(v: np.ndarray) -> np.ndarray:
        if mode == "real":
            return np.longdouble(1) / (np.longdouble(1) + np.exp(-v))
        slope = np.longdouble(0.5 if mode == "hard" else 0.1875)
        return np.clip(slope * v + np.longdouble(0.5), 0, 1)

    if kind is ActivationKind.QUANTIZED_SIGMOID:
        return (np.longdouble(1) / (1 + np.exp(-x))) if p["use_real_sigmoid"] else sigmoid(x)
    if kind is ActivationKind.QUANTIZED_TANH:
        return np.tanh(x) if p["use_real_tanh"] else 2 * sigmoid(x) - 1
    ns = np.longdouble(float(p["negative_slope"] or 0.0))
    if p["use_sigmoid"]:  # QKeras: m_i * (2 * sigmoid(x / m_i) - 1), scaled by ns below 0
        m_i = np.longdouble(2.0 ** p["integer"])
        x = m_i * (2 * sigmoid(x / m_i) - 1)
    return np.where(x > 0, x, ns * x)


# ---------------------------------------------------------------------------------------
# piecewise linear: LeakyReLU, PReLU, ReLU(max_value, negative_slope, threshold)
# ---------------------------------------------------------------------------------------
def slope_type(alphas: float | Sequence[float] | np.ndarray, max_bits: int = 16) -> FixedType:
    """The type slopes are quantized to: the narrowest type holding every ``alpha`` exactly
    if it has at most ``max_bits`` bits, else the ``max_bits``-bit type whose range just
    holds the largest ``|alpha|`` (error at most half its step per slope)."""
    a = np.atleast_1d(np.asarray(alphas, dtype=np.float64))
    if not np.all(np.isfinite(a)):
        raise RtlgenError(f"slope {a.tolist()} is not finite")
    if not 2 <= max_bits <= 32:
        raise RtlgenError(f"slope bits {max_bits} (supported: 2 to 32)")
    if not np.any(a):
        return FixedType(1, 0, False)
    try:
        exact = exact_type(a)
    except RtlgenError:
        exact = None
    if exact is not None and exact.width <= max_bits:
        return exact
    signed = bool(np.any(a < 0))
    top = math.frexp(float(np.max(np.abs(a))))[1]  # max |alpha| < 2**top
    frac = max_bits - int(signed) - top
    while True:
        q = np.round(a * 2.0**frac)
        t = FixedType.covering(int(q.min()), int(q.max()), frac)
        if t.width <= max_bits:
            return FixedType(max_bits, frac, t.signed)
        frac -= 1


def quantize_slope(alphas: float | Sequence[float] | np.ndarray, t: FixedType) -> np.ndarray:
    """Mantissas of the slopes in ``t`` (round half to even)."""
    return t.quantize(np.atleast_1d(np.asarray(alphas, dtype=np.float64)))


def threshold_mantissa(threshold: float, in_type: FixedType, has_slope: bool) -> int:
    """A threshold as an ``in_type`` mantissa ``T``: ``x > threshold <=> m > T``.

    Without a slope only the comparison matters and ``T = floor(threshold * 2**frac)``; with
    one, ``slope * (x - threshold)`` needs the threshold exactly on the input grid.
    """
    scaled = float(threshold) * 2.0**in_type.frac
    if not math.isfinite(scaled):
        raise RtlgenError(f"threshold {threshold} is not finite")
    if has_slope and scaled != math.floor(scaled):
        raise RtlgenError(
            f"threshold {threshold} with a negative slope must be a multiple of the input step "
            f"{in_type.step} ({in_type}); use a finer input type or a dyadic threshold"
        )
    return int(max(min(math.floor(scaled), 2**62), -(2**62)))


def max_value_mantissa(max_value: float, out_type: FixedType, rounding: Rounding) -> int:
    """``max_value`` rounded into ``out_type`` (saturated): the output clip bound."""
    return int(out_type.quantize(np.float64(max_value), rounding, Overflow.SATURATE))


@dataclass(frozen=True)
class LeakySpec:
    """An elementwise ``x > T ? min(x, M) : slope * (x - T)`` rounded into ``out_type``.

    ``slope``: ``slope_type`` mantissas, one for every element or one per element of the
    last axis (PReLU's per-channel alphas), or, with ``slope_shape`` (a sample's shape:
    PReLU's per-element alphas, e.g. ``(H, W, C)``), one per element of a sample, in
    row-major order; ``threshold`` ``T``: an ``in_type`` mantissa;
    ``max_value`` ``M``: an ``out_type`` mantissa (`max_value_mantissa`), only with
    non-negative slopes (as in Keras's ReLU). `from_keras` builds one from float options.
    """

    in_type: FixedType
    slope: tuple[int, ...]
    slope_type: FixedType
    out_type: FixedType
    threshold: int = 0
    max_value: int | None = None
    rounding: Rounding = Rounding.CONVERGENT
    overflow: Overflow = Overflow.SATURATE
    slope_shape: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        flat = np.asarray(self.slope, dtype=np.int64).reshape(-1)
        slopes = tuple(int(s) for s in flat)
        object.__setattr__(self, "slope", slopes)
        if self.slope_shape is not None and math.prod(self.slope_shape) != len(slopes):
            raise RtlgenError(f"{len(slopes)} slopes for the shape {self.slope_shape}")
        if any(s < self.slope_type.min_int or s > self.slope_type.max_int for s in slopes):
            raise RtlgenError(f"slopes {list(slopes)} outside their type {self.slope_type}")
        if self.max_value is not None and min(slopes) < 0:
            raise RtlgenError("a max_value clip needs non-negative slopes (as in Keras's ReLU)")

    @classmethod
    def from_keras(
        cls,
        alpha: float | Sequence[float] | np.ndarray,
        in_type: FixedType,
        out_type: FixedType,
        *,
        max_value: float | None = None,
        threshold: float = 0.0,
        slope_bits: int = 16,
        rounding: Rounding = Rounding.CONVERGENT,
        overflow: Overflow = Overflow.SATURATE,
    ) -> LeakySpec:
        """Keras ``LeakyReLU(alpha)``, ``PReLU`` (``alpha`` per channel) or
        ``ReLU(max_value, negative_slope=alpha, threshold)``: slopes rounded into
        `slope_type` of ``slope_bits`` bits, threshold and max onto their grids."""
        s_type = slope_type(alpha, slope_bits)
        slope = quantize_slope(alpha, s_type)
        top = None if max_value is None else max_value_mantissa(max_value, out_type, rounding)
        t = threshold_mantissa(threshold, in_type, bool(np.any(slope != 0)))
        return cls(in_type, tuple(slope), s_type, out_type, t, top, rounding, overflow)

    @property
    def acc_frac(self) -> int:
        """Fractional bits of the exact pre-rounding value: both branches and the max bound."""
        frac = max(self.in_type.frac + self.slope_type.frac, self.in_type.frac)
        return max(frac, self.out_type.frac) if self.max_value is not None else frac

    @property
    def max_bound(self) -> int | None:
        """The ``max_value`` clip in accumulator units (exact: ``acc_frac >= out frac``)."""
        if self.max_value is None:
            return None
        return self.max_value << (self.acc_frac - self.out_type.frac)

    def acc_ranges(self) -> list[tuple[int, int]]:
        """Per slope, the exact [min, max] of the pre-rounding accumulator over ``in_type``."""
        pos_shift = self.acc_frac - self.in_type.frac
        neg_shift = pos_shift - self.slope_type.frac
        lo, hi, t = self.in_type.min_int, self.in_type.max_int, self.threshold
        ranges = []
        for s in self.slope:
            ends: list[int] = []
            if hi > t:  # x in [max(lo, T + 1), hi]: x itself
                ends += [max(lo, t + 1) << pos_shift, hi << pos_shift]
            if lo <= t:  # x in [lo, min(hi, T)]: s * (x - T)
                ends += [(s * (v - t)) << neg_shift for v in (lo, min(hi, t))]
            ranges.append((min(ends), max(ends)))
        return ranges

    def acc_range(self) -> tuple[int, int]:
        """The exact [min, max] of the pre-rounding accumulator over ``in_type`` and every
        slope (the products are linear in the slope: its two extremes bound them)."""
        ends = dataclasses.replace(self, slope=(min(self.slope), max(self.slope)), slope_shape=None)
        ranges = ends.acc_ranges()
        return min(r[0] for r in ranges), max(r[1] for r in ranges)

    def acc_type(self) -> FixedType:
        """Narrowest type of the pre-rounding accumulator (interval analysis over ``in_type``)."""
        return FixedType.covering(*self.acc_range(), self.acc_frac)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """The outputs (``out_type`` mantissas) for ``in_type`` mantissas ``x``."""
        x = np.asarray(x, dtype=np.int64)
        s = np.asarray(self.slope, dtype=np.int64)
        if self.slope_shape is not None:  # per element of a sample: x is (N, *slope_shape)
            s = s.reshape(self.slope_shape)
        frac = self.acc_frac
        pos = x << (frac - self.in_type.frac)
        neg = (s * (x - self.threshold)) << (frac - self.in_type.frac - self.slope_type.frac)
        acc = np.where(x > self.threshold, pos, neg)
        clipped = apply_clamp(acc, None, self.max_bound)
        return requantize(clipped, frac, self.out_type, self.rounding, self.overflow)


def leaky(
    x: np.ndarray,
    in_type: FixedType,
    slope: int | Sequence[int] | np.ndarray,
    slope_type: FixedType,
    out_type: FixedType,
    rounding: Rounding = Rounding.CONVERGENT,
    overflow: Overflow = Overflow.SATURATE,
    *,
    threshold: int = 0,
    max_value: int | None = None,
) -> np.ndarray:
    """``LeakySpec(...)(x)``: ``x > T ? min(x, M) : slope * (x - T)`` rounded into
    ``out_type`` (all arguments mantissas, see `LeakySpec`)."""
    spec = LeakySpec(in_type, slope, slope_type, out_type, threshold, max_value, rounding, overflow)
    return spec(x)


def leaky_error_bound(
    alpha: float | Sequence[float] | np.ndarray,
    spec: LeakySpec,
    *,
    max_value: float | None = None,
) -> float:
    """Bound on ``|spec(x) - Keras(x)|`` over every input of ``spec.in_type``, Keras
    computing ``x > t ? min(x, M) : float32(alpha) * (x - t)`` in float32 (``max_value`` is
    Keras's float ``M``): the slope quantization ``|alpha - slope| * max|x - t|``, the
    float32 rounding of Keras (alpha, the difference, the product and the sum: 4 roundings
    of 2**-24 relative), the output rounding (half a step, a full step when truncating) and
    how far the exact outputs reach beyond ``out_type`` (saturation)."""
    in_type, out_type = spec.in_type, spec.out_type
    a = np.atleast_1d(np.asarray(alpha, dtype=np.float64))
    q = spec.slope_type.to_float(np.asarray(spec.slope))
    threshold = float(in_type.to_float(spec.threshold))
    span = max(threshold - in_type.min_value, 0.0)  # largest |x - t| on the slope side
    quant = float(np.max(np.abs(a - q))) * span
    keras32 = 4 * 2.0**-24 * float(np.max(np.abs(a))) * span
    if max_value is not None:
        keras32 = max(keras32, abs(float(np.float32(max_value)) - float(max_value)))
    step = out_type.step
    rounding_error = step if spec.rounding is Rounding.TRUNCATE else step / 2
    top = in_type.max_value if max_value is None else min(in_type.max_value, float(max_value))
    neg_ends = [float(np.max(a)) * -span, float(np.min(a)) * -span, 0.0]
    high = max([top, *neg_ends])
    low = min([0.0, threshold, *neg_ends])
    saturation = max(0.0, high - out_type.max_value, out_type.min_value - low)
    return quant + keras32 + rounding_error + saturation
