"""QKeras quantizer semantics (qkeras 0.9.0), exactly, as fixed-point types.

Each quantizer is a frozen dataclass with
- ``quantize_constant(values) -> QTensor``: integer mantissas + type of ``q(values)`` for a
  kernel/bias (``type.to_float(mantissa) == q(values)`` exactly);
- ``output_type() -> FixedType`` and ``clamp() -> Clamp`` for an activation quantizer: the
  hardware computes ``requantize(clamp(acc), out_type)`` with convergent rounding and
  saturation, which equals ``q(acc)``; quantizers that cannot be an activation (power-of-two,
  binary, ternary, data-dependent scales) raise `UnsupportedError` from ``output_type``;
- ``reference(values) -> float array``: the QKeras computation in numpy (an oracle for tests
  and the source of ``quantize_constant`` for the data-dependent quantizers);
- ``for_kernel() -> Quantizer``: the quantizer QKeras actually applies when this one is a
  layer's *kernel* quantizer (QKeras's ``_set_trainable_parameter``: ``alpha=None`` becomes
  ``"auto_po2"``, and ``quantized_bits`` also becomes symmetric).

`parse_quantizer` builds one from what a model file holds: a dict
``{"class_name": "quantized_bits", "config": {...}}`` or a string such as
``"quantized_bits(6,0,alpha=1)"`` (parsed with `ast`, never evaluated).

Data-dependent scales (``alpha="auto_po2"``) are computed from the float weights exactly as
QKeras 0.9.0 does, step by step in float32 (its dtype); the result is a per-channel power of
two times a small integer, which `exact_qtensor` represents exactly as mantissas of one
common, finer type. Where TensorFlow's float32 ``log``/``mean`` can differ from numpy's in
the last bit, a power-of-two exponent can differ only if ``log2`` of the value lies within
about 1e-7 of ``k + 0.5``: see docs in the tests (tests/quant/test_quantizers.py).
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from rtlgen.ir import Clamp, QTensor

from .activations import ActivationKind, activation_params
from .errors import RtlgenError, UnsupportedError
from .fixed import FixedType, Overflow, Rounding

_EPS32 = np.float32(1e-7)  # tf.keras.backend.epsilon()
_LN2_32 = np.float32(np.log(2.0))  # np.log(2.0) as TF casts it into a float32 tensor op


class Quantizer:
    name = "quantizer"

    def quantize_constant(self, values: np.ndarray) -> QTensor:
        return exact_qtensor(self.reference(values), str(self))

    def output_type(self) -> FixedType:
        raise UnsupportedError(
            f"quantizer {self} cannot be used as an activation (supported activation "
            "quantizers: quantized_bits with alpha=1 and bits >= 2, quantized_relu, "
            "quantized_relu_po2, quantized_sigmoid, quantized_tanh, binary, ternary)"
        )

    def clamp(self) -> Clamp:
        return Clamp()

    def reference(self, values: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def for_kernel(self) -> Quantizer:
        return self


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------
def log2_exact(value: float) -> int | None:
    """k if value == 2**k exactly, else None."""
    if value <= 0:
        return None
    m, e = math.frexp(value)
    return e - 1 if m == 0.5 else None


def exact_qtensor(values: np.ndarray, what: str = "constant") -> QTensor:
    """Mantissas and the narrowest type that hold ``values`` *exactly* (dyadic rationals).

    The fractional bits are those of the finest non-zero value; the type is signed when any
    value is negative. Used for values a quantizer produced (``z * 2**k`` per channel, powers
    of two, ``+-alpha``), never for arbitrary floats (those would need 53-bit mantissas).
    """
    v = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(v)):
        raise RtlgenError(f"{what}: quantized constants contain NaN or infinity")
    nonzero = v[v != 0]
    if nonzero.size == 0:
        return QTensor(np.zeros(v.shape, dtype=np.int64), FixedType(1, 0, False))
    mant, exp = np.frexp(np.abs(nonzero))  # |v| = mant * 2**exp, mant in [0.5, 1)
    ints = (mant * 2.0**53).astype(np.int64)  # exact 53-bit integers
    trailing = np.frexp((ints & -ints).astype(np.float64))[1].astype(np.int64) - 1
    lsb = exp.astype(np.int64) - 53 + trailing  # exponent of each value's lowest set bit
    frac = int(-lsb.min())
    top = int(exp.max()) + frac  # bits of the largest mantissa
    if top > 61:
        raise UnsupportedError(
            f"{what}: the quantized values span 2**{int(lsb.min())} .. 2**{int(exp.max())}, "
            f"{top} bits as one fixed-point type (rtlgen supports up to 62)"
        )
    mantissa = np.round(v * 2.0**frac).astype(np.int64)
    return QTensor(mantissa, FixedType.covering(int(mantissa.min()), int(mantissa.max()), frac))


def _po2_exponent32(x: np.ndarray) -> np.ndarray:
    """``tf.math.round(K.log(x + K.epsilon()) / np.log(2.0))`` in float32."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.round(np.log(x + _EPS32) / _LN2_32)


def _mean32(x: np.ndarray, axis: tuple[int, ...] | None) -> np.ndarray:
    """``K.mean(x, axis, keepdims=True)`` of a float32 tensor (sum rounded once to float32)."""
    total = np.sum(x.astype(np.float64), axis=axis, keepdims=True).astype(np.float32)
    count = x.size if axis is None else int(np.prod([x.shape[a] for a in axis]))
    return total / np.float32(count)


def _channel_axes(ndim: int, scale_axis: int | None) -> tuple[int, ...]:
    """QKeras ``_get_scaling_axis``: every axis but the channel one (last by default)."""
    if scale_axis is not None:
        return tuple(a for a in range(ndim) if a != scale_axis)
    return tuple(range(ndim - 1))


def _auto_po2_scale(x: np.ndarray, q: np.ndarray, scale_axis: int | None = None) -> np.ndarray:
    """QKeras ``_get_scale("auto_po2", x, q)`` in float32: per-channel least-squares scale
    rounded to a power of two (element-wise for 1-D tensors)."""
    if x.ndim > 1:
        axes = _channel_axes(x.ndim, scale_axis)
        qx, qq = _mean32(x * q, axes), _mean32(q * q, axes)
    else:
        qx, qq = x * q, q * q
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = qx / (qq + _EPS32)
    return np.float32(2.0) ** _po2_exponent32(scale)


def _sign_one(x: np.ndarray) -> np.ndarray:
    """``tf.sign(x)`` with 0 -> +1 (QKeras ``k_sign += 1 - |k_sign|``)."""
    s = np.sign(x)
    return s + (np.float32(1.0) - np.abs(s))


def _float32(values: np.ndarray) -> np.ndarray:
    """QKeras casts everything to float32 (``K.cast_to_floatx``) before quantizing."""
    return np.asarray(values, dtype=np.float32)


def _alpha_exponent(alpha: float, what: str) -> int:
    k = log2_exact(float(alpha))
    if k is None:
        raise UnsupportedError(
            f"{what}: alpha={alpha} is not a power of two, so q(x) = alpha * ... is not a "
            "fixed-point value (supported: alpha=None/1, a power of two, or 'auto_po2')"
        )
    return k


# ---------------------------------------------------------------------------------------
# quantized_bits
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class QuantizedBits(Quantizer):
    """``quantized_bits(bits, integer, symmetric, keep_negative, alpha)``.

    ub = bits - keep_negative; step = 2**(integer - ub);
    q(x) = alpha * step * clip(round(x / step), lo, hi), lo = -(2**ub) + symmetric (0 if
    unsigned), hi = 2**ub - 1. bits == 1 signed is ``alpha * sign(x)`` with 0 -> +1 (QKeras
    ignores ``integer`` there). ``alpha`` None or 1 is the plain formula; a power of two scales
    the constant's type; ``"auto_po2"`` is QKeras's per-output-channel power-of-two scale,
    computed from the values (constants only; QKeras then also forces ``symmetric``).
    """

    bits: int
    integer: int = 0
    symmetric: bool = False
    keep_negative: bool = True
    alpha: float | str | None = None
    scale_axis: int | None = None

    name = "quantized_bits"

    def __post_init__(self) -> None:
        if self.bits < 1 or self.bits > 32:
            raise UnsupportedError(f"quantized_bits: bits={self.bits} (supported: 1..32)")
        if isinstance(self.alpha, str):
            if self.alpha == "auto":
                raise UnsupportedError(
                    "quantized_bits(alpha='auto'): a per-channel floating-point scale is not a "
                    "fixed-point value; retrain with alpha=1 or alpha='auto_po2'"
                )
            if self.alpha != "auto_po2":
                raise UnsupportedError(
                    f"quantized_bits: alpha={self.alpha!r} (supported: None, 1, a power of two, 'auto_po2')"
                )
            if self.bits < 2:
                raise UnsupportedError("quantized_bits(alpha='auto_po2') needs bits >= 2")
            object.__setattr__(self, "symmetric", True)  # QKeras: "auto*" |-> symmetric
        elif self.alpha is not None:
            _alpha_exponent(self.alpha, "quantized_bits")

    @property
    def _ub(self) -> int:
        return self.bits - int(self.keep_negative)

    @property
    def _frac(self) -> int:
        return self._ub - self.integer

    @property
    def _alpha_k(self) -> int:
        return 0 if self.alpha is None else _alpha_exponent(float(self.alpha), "quantized_bits")  # type: ignore[arg-type]

    def _limits(self) -> tuple[int, int]:
        if self.keep_negative:
            return -(1 << self._ub) + int(self.symmetric), (1 << self._ub) - 1
        return 0, (1 << self._ub) - 1

    def _type(self) -> FixedType:
        if self.keep_negative and self.bits == 1:
            return FixedType(2, -self._alpha_k, True)  # mantissas -1, +1 (integer is ignored)
        return FixedType(self.bits, self._frac - self._alpha_k, self.keep_negative)

    def for_kernel(self) -> Quantizer:
        if self.alpha is None:
            return QuantizedBits(
                self.bits, self.integer, True, self.keep_negative, "auto_po2", self.scale_axis
            )
        return self

    def quantize_constant(self, values: np.ndarray) -> QTensor:
        if self.alpha == "auto_po2":
            return exact_qtensor(self.reference(values), str(self))
        x = _float32(values)
        if self.keep_negative and self.bits == 1:
            return QTensor(np.where(x >= 0, 1, -1), self._type())
        lo, hi = self._limits()
        m = np.clip(np.round(x.astype(np.float64) * 2.0**self._frac), lo, hi).astype(np.int64)
        return QTensor(m, self._type())

    def output_type(self) -> FixedType:
        if self.keep_negative and self.bits == 1:
            raise UnsupportedError(
                "quantized_bits(1) as an activation (sign function) is not supported"
            )
        if self.alpha is not None and (isinstance(self.alpha, str) or float(self.alpha) != 1.0):
            raise UnsupportedError(
                f"{self} as an activation: only alpha=None/1 is supported for activations "
                "(a data-dependent or scaled output is not a requantization)"
            )
        return self._type()

    def clamp(self) -> Clamp:
        lo, _ = self._limits()
        if self.symmetric and self.keep_negative:
            return Clamp(lo * 2.0**-self._frac, None)
        return Clamp()

    def reference(self, values: np.ndarray) -> np.ndarray:
        x = _float32(values)
        if self.alpha == "auto_po2":
            return self._auto_po2(x)
        scale = 2.0**self._alpha_k
        if self.keep_negative and self.bits == 1:
            return np.where(x >= 0, 1.0, -1.0) * scale
        lo, hi = self._limits()
        step = 2.0 ** (self.integer - self._ub)
        return scale * step * np.clip(np.round(x.astype(np.float64) / step), lo, hi)

    def _auto_po2(self, x: np.ndarray) -> np.ndarray:
        """qkeras 0.9.0 ``quantized_bits.__call__`` with ``alpha="auto_po2"``, in float32."""
        m_i = np.float32(2.0**self.integer)
        x = x / m_i
        levels = (2 ** (self.bits - 1) - 1) * 2  # symmetric is forced for "auto*"
        axes = _channel_axes(x.ndim, self.scale_axis) if x.ndim > 1 else (0,)
        peak = np.max(np.abs(x), axis=axes, keepdims=True)
        scale = (peak * np.float32(2)) / np.float32(levels)
        scale = np.float32(2.0) ** _po2_exponent32(scale)
        z = np.zeros_like(x)
        for _ in range(5):
            with np.errstate(divide="ignore", invalid="ignore"):
                v = np.floor(np.abs(x) / scale + np.float32(0.5))
            mask = v < levels / 2
            z = np.sign(x) * np.where(mask, v, np.float32(levels / 2))
            scale = _auto_po2_scale(x, z, self.scale_axis)
        # xq = (scale * m) * (m_i * z / m): the last scale times the last z, all powers of two.
        return z.astype(np.float64) * scale.astype(np.float64) * float(m_i)

    def __str__(self) -> str:
        alpha = "" if self.alpha is None else f",alpha={self.alpha!r}"
        return (
            f"quantized_bits({self.bits},{self.integer},symmetric={int(self.symmetric)},"
            f"keep_negative={int(self.keep_negative)}{alpha})"
        )


# ---------------------------------------------------------------------------------------
# quantized_relu
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class QuantizedRelu(Quantizer):
    """``quantized_relu(bits, integer)``: step = 2**(integer - bits),
    q(x) = step * clip(round(x / step), 0, 2**bits - 1) = ap_ufixed<bits, integer, RND_CONV, SAT>.
    """

    bits: int
    integer: int = 0

    name = "quantized_relu"

    def __post_init__(self) -> None:
        if self.bits < 1 or self.bits > 32:
            raise UnsupportedError(f"quantized_relu: bits={self.bits} (supported: 1..32)")

    def _type(self) -> FixedType:
        return FixedType(self.bits, self.bits - self.integer, False)

    def quantize_constant(self, values: np.ndarray) -> QTensor:
        t = self._type()
        x = _float32(values).astype(np.float64)
        return QTensor(t.quantize(np.maximum(x, 0.0), Rounding.CONVERGENT, Overflow.SATURATE), t)

    def output_type(self) -> FixedType:
        return self._type()

    def clamp(self) -> Clamp:
        return Clamp(0.0, None)

    def reference(self, values: np.ndarray) -> np.ndarray:
        step = 2.0 ** (self.integer - self.bits)
        x = _float32(values).astype(np.float64)
        return step * np.clip(np.round(x / step), 0, 2**self.bits - 1)

    def __str__(self) -> str:
        return f"quantized_relu({self.bits},{self.integer})"


@dataclass(frozen=True)
class QuantizedLeakyRelu(Quantizer):
    """``quantized_relu(bits, integer, negative_slope=s)`` (``s`` a power of two, as QKeras
    asserts): one bit of ``bits`` is the sign, ``step = 2**(integer - (bits - 1))``, and

        q(x) = step * (x > 0 ? clip(round(x / step), 0, m - 1)
                             : clip(round(s * x / step), -s * m, 0)),   m = 2**(bits - 1)

    (round half to even; qkeras 0.9.0 in float32, exact while the input has at most 24
    significant bits). A leaky ReLU rounded into `leaky_type` and clipped below at
    `low_bound`: an activation of its own (`rtlgen.ops.leaky_relu`), not a rounding clip,
    so ``output_type`` refuses it.
    """

    bits: int
    integer: int
    negative_slope: float

    name = "quantized_relu"

    def __post_init__(self) -> None:
        if not 2 <= self.bits <= 32:
            raise UnsupportedError(
                f"quantized_relu(negative_slope=...): bits={self.bits} (supported: 2..32)"
            )
        if log2_exact(self.negative_slope) is None:
            raise RtlgenError(
                f"quantized_relu: negative_slope={self.negative_slope} must be 0 or a power of "
                "two (as QKeras asserts)"
            )

    @property
    def value_bits(self) -> int:
        return self.bits - 1

    def leaky_type(self) -> FixedType:
        """The output grid: ``step`` with room for [-s * m, m - 1]."""
        m = 1 << self.value_bits
        low = -math.ceil(self.negative_slope * m)
        return FixedType.covering(low, m - 1, self.value_bits - self.integer)

    def low_bound(self) -> float:
        """The clip of the negative side, ``-s * 2**integer`` (a multiple of the step)."""
        return -self.negative_slope * 2.0**self.integer

    def output_type(self) -> FixedType:
        raise UnsupportedError(
            f"{self} is a leaky activation (its own layer), not an output rounding"
        )

    def reference(self, values: np.ndarray) -> np.ndarray:
        step = 2.0 ** (self.integer - self.value_bits)
        m = 2.0**self.value_bits
        x = _float32(values).astype(np.float64)
        pos = np.clip(np.round(x / step), 0, m - 1)
        neg = np.clip(np.round(self.negative_slope * x / step), -self.negative_slope * m, 0)
        return step * np.where(x > 0, pos, neg)

    def __str__(self) -> str:
        return f"quantized_relu({self.bits},{self.integer},negative_slope={self.negative_slope})"


@dataclass(frozen=True)
class TableQuantizer(Quantizer):
    """A QKeras activation quantizer of non-linear shape (``quantized_sigmoid``,
    ``quantized_tanh``, ``quantized_relu(use_sigmoid=1)``): an activation only, computed as
    a lookup table bit-exact with QKeras (`rtlgen.quant.activations`,
    `rtlgen.ops.lut_activation`). ``options``: its QKeras options as (key, value) pairs."""

    kind: ActivationKind
    options: tuple[tuple[str, Any], ...] = ()

    name = "table"

    def __post_init__(self) -> None:
        self.params()  # unknown or unsupported options: refused now

    def params(self) -> dict[str, Any]:
        return activation_params(self.kind, dict(self.options))

    def output_type(self) -> FixedType:
        raise UnsupportedError(f"{self} is a lookup-table activation, not an output rounding")

    def reference(self, values: np.ndarray) -> np.ndarray:
        raise UnsupportedError(f"{self} is supported as an activation only (not for constants)")

    def __str__(self) -> str:
        args = ",".join(f"{k}={v!r}" for k, v in self.options)
        return f"{self.kind.value}({args})"


# ---------------------------------------------------------------------------------------
# power-of-two quantizers
# ---------------------------------------------------------------------------------------
def _po2_exponents(
    x_abs: np.ndarray,
    min_exp: int,
    max_exp: int,
    max_value: float | None,
    quadratic: bool,
    log2_rounding: str,
) -> np.ndarray:
    """qkeras ``_clip_power_of_two`` in float32: the exponent of each |x|."""
    x_filter = np.where(x_abs < _EPS32, _EPS32, x_abs)
    if max_value is not None:
        x_filter = np.where(x_filter >= np.float32(max_value), np.float32(max_value), x_filter)
    q_factor = np.float32(2.0) if quadratic else np.float32(1.0)
    x_input = np.sqrt(x_filter) if quadratic else x_filter
    with np.errstate(divide="ignore", invalid="ignore"):
        x_log2 = np.log(x_input) / _LN2_32
    x_log2 = np.floor(x_log2) if log2_rounding == "floor" else np.round(x_log2)
    clipped = q_factor * np.clip(x_log2, min_exp, max_exp)
    return np.where(x_abs < _EPS32, np.float32(min_exp), clipped)


@dataclass(frozen=True)
class _Po2Quantizer(Quantizer):
    """Shared by the power-of-two quantizers: ``2**e`` with ``e = round(log2 m)`` of a
    magnitude ``m`` clipped to ``exponent_range()``, which gets ``_exponent_bits()`` bits."""

    bits: int = 8
    max_value: float | None = None
    quadratic_approximation: bool = False
    log2_rounding: str = "rnd"

    min_bits = 1

    def __post_init__(self) -> None:
        if self.bits < self.min_bits or self.bits > 16:
            raise UnsupportedError(
                f"{self.name}: bits={self.bits} (supported: {self.min_bits}..16)"
            )
        if self.max_value is not None and self.max_value < 0:
            raise UnsupportedError(f"{self.name}: max_value={self.max_value} must be non-negative")
        if self.log2_rounding not in ("rnd", "floor"):
            raise UnsupportedError(
                f"{self.name}: log2_rounding={self.log2_rounding!r} (supported: 'rnd', 'floor')"
            )

    def _needs_sign_bit(self) -> int:
        return 0 if self.max_value is not None and self.max_value <= 1 else 1

    def _exponent_bits(self) -> int:
        raise NotImplementedError

    def exponent_range(self) -> tuple[int, int]:
        effect = self._exponent_bits()
        lo, hi = -(2**effect), 2**effect - 1
        if self.quadratic_approximation:
            hi = 2 * (hi // 2)
        return lo, hi

    def _powers(self, magnitudes: np.ndarray) -> np.ndarray:
        """``2**e`` (float64) of each magnitude."""
        lo, hi = self.exponent_range()
        e = _po2_exponents(
            magnitudes, lo, hi, self.max_value, self.quadratic_approximation, self.log2_rounding
        )
        return np.exp2(e.astype(np.float64))

    def __str__(self) -> str:
        return f"{self.name}({self.bits},max_value={self.max_value})"


@dataclass(frozen=True)
class QuantizedPo2(_Po2Quantizer):
    """``quantized_po2(bits, max_value, quadratic_approximation, log2_rounding)``:
    ``sign(x) * 2**e`` with ``e = round(log2|x|)`` clipped to the exponent range of ``bits``
    (0 -> +2**min_exp, as QKeras). Constants only; exact as mantissas of a common type.
    """

    name = "quantized_po2"
    min_bits = 2

    def _exponent_bits(self) -> int:
        return self.bits - 1 - self._needs_sign_bit()

    def reference(self, values: np.ndarray) -> np.ndarray:
        x = _float32(values)
        return _sign_one(x).astype(np.float64) * self._powers(np.abs(x))


@dataclass(frozen=True)
class QuantizedReluPo2(_Po2Quantizer):
    """``quantized_relu_po2(bits, max_value, quadratic_approximation, log2_rounding)`` with
    ``negative_slope=0``: ``2**round(log2(relu(x)))`` (0 -> 2**min_exp, as QKeras).
    Constants only (e.g. QBatchNormalization's gamma/variance)."""

    name = "quantized_relu_po2"

    def _exponent_bits(self) -> int:
        return self.bits - self._needs_sign_bit()

    def reference(self, values: np.ndarray) -> np.ndarray:
        return self._powers(np.maximum(_float32(values), 0))


# ---------------------------------------------------------------------------------------
# binary / ternary
# ---------------------------------------------------------------------------------------
def _check_sign_alpha(name: str, alpha: float | str | None) -> None:
    """binary/ternary ``alpha``: None, a power of two or "auto_po2"."""
    if alpha == "auto":
        raise UnsupportedError(
            f"{name}(alpha='auto'): a per-channel floating-point scale is not a fixed-point "
            "value; use alpha=1 or 'auto_po2'"
        )
    if isinstance(alpha, str) and alpha != "auto_po2":
        raise UnsupportedError(
            f"{name}: alpha={alpha!r} (supported: None, a power of two, 'auto_po2')"
        )
    if alpha is not None and not isinstance(alpha, str):
        _alpha_exponent(alpha, name)


@dataclass(frozen=True)
class Binary(Quantizer):
    """``binary(use_01, alpha)``: ``scale * sign(x)`` (0 -> +1), or ``{0, 1}`` with use_01.
    alpha None/number: that scale (None = 1); ``"auto_po2"``: per-channel power of two.
    Constants only."""

    use_01: bool = False
    alpha: float | str | None = None

    name = "binary"

    def __post_init__(self) -> None:
        _check_sign_alpha(self.name, self.alpha)

    def for_kernel(self) -> Quantizer:
        return Binary(self.use_01, "auto_po2") if self.alpha is None else self

    def reference(self, values: np.ndarray) -> np.ndarray:
        x = _float32(values)
        k = _sign_one(x)
        if self.use_01:
            k = (k + np.float32(1.0)) / np.float32(2.0)
        if self.alpha == "auto_po2":
            scale = _auto_po2_scale(x, k)
        else:
            scale = np.float32(1.0 if self.alpha is None else float(self.alpha))  # type: ignore[arg-type]
        return k.astype(np.float64) * np.asarray(scale, dtype=np.float64)

    def __str__(self) -> str:
        return f"binary(use_01={int(self.use_01)},alpha={self.alpha!r})"


@dataclass(frozen=True)
class Ternary(Quantizer):
    """``ternary(alpha, threshold, number_of_unrolls)``: ``scale * {-1, 0, +1}``.
    alpha None/number: ``|x| >= threshold`` (default 0.33) selects +-alpha (None = 1);
    ``"auto_po2"``: QKeras's iterative per-channel power-of-two scale and threshold.
    Constants only."""

    alpha: float | str | None = None
    threshold: float | None = None
    number_of_unrolls: int = 5

    name = "ternary"

    def __post_init__(self) -> None:
        _check_sign_alpha(self.name, self.alpha)
        if self.alpha == "auto_po2" and self.threshold is not None:
            raise UnsupportedError(
                "ternary: a threshold cannot be combined with alpha='auto_po2' (QKeras asserts)"
            )
        if self.threshold is not None and not isinstance(self.threshold, int | float):
            raise UnsupportedError(f"ternary: threshold={self.threshold!r} (supported: a number)")

    def for_kernel(self) -> Quantizer:
        return Ternary("auto_po2", None, self.number_of_unrolls) if self.alpha is None else self

    def reference(self, values: np.ndarray) -> np.ndarray:
        x = _float32(values)
        if self.alpha != "auto_po2":
            thres = np.float32(0.33 if self.threshold is None else self.threshold)
            q = (np.abs(x) >= thres).astype(np.float32) * np.sign(x)
            scale = 1.0 if self.alpha is None else float(self.alpha)  # type: ignore[arg-type]
            return q.astype(np.float64) * scale
        axes = tuple(range(x.ndim - 1)) if x.ndim > 1 else None
        peak = np.max(np.abs(x), axis=axes, keepdims=True)
        scale = np.float32(2.0) ** _po2_exponent32(np.float32(2) * peak / np.float32(3.0))
        q = np.zeros_like(x)
        for _ in range(self.number_of_unrolls):
            thres = scale / np.float32(2.0)
            with np.errstate(divide="ignore", invalid="ignore"):
                v = scale * np.round(x / scale)
            q = (np.abs(v) >= thres).astype(np.float32) * np.sign(x)
            scale = _auto_po2_scale(x, q)
        return q.astype(np.float64) * np.asarray(scale, dtype=np.float64)

    def __str__(self) -> str:
        return f"ternary(alpha={self.alpha!r},threshold={self.threshold})"


# ---------------------------------------------------------------------------------------
# parsing
# ---------------------------------------------------------------------------------------
#: QKeras quantizer names rtlgen knows of but does not implement (with the reason).
UNSUPPORTED_QUANTIZERS = {
    "quantized_ulaw": "a mu-law quantizer",
    "bernoulli": "a stochastic quantizer",
    "stochastic_binary": "a stochastic quantizer",
    "stochastic_ternary": "a stochastic quantizer",
    "quantized_linear": "a quantizer newer than qkeras 0.9.0",
    "binary_sigmoid": "a binary activation",
    "binary_tanh": "a binary activation",
}

#: Option names each supported quantizer accepts, in QKeras's positional order.
_SIGNATURES: dict[str, tuple[str, ...]] = {
    "quantized_bits": (
        "bits",
        "integer",
        "symmetric",
        "keep_negative",
        "alpha",
        "use_stochastic_rounding",
        "scale_axis",
        "qnoise_factor",
        "var_name",
        "use_ste",
        "use_variables",
    ),
    "quantized_relu": (
        "bits",
        "integer",
        "use_sigmoid",
        "negative_slope",
        "use_stochastic_rounding",
        "relu_upper_bound",
        "is_quantized_clip",
        "qnoise_factor",
        "var_name",
        "use_ste",
        "use_variables",
    ),
    "quantized_po2": (
        "bits",
        "max_value",
        "use_stochastic_rounding",
        "quadratic_approximation",
        "log2_rounding",
        "qnoise_factor",
        "var_name",
        "use_ste",
        "use_variables",
    ),
    "quantized_relu_po2": (
        "bits",
        "max_value",
        "negative_slope",
        "use_stochastic_rounding",
        "quadratic_approximation",
        "log2_rounding",
        "qnoise_factor",
        "var_name",
        "use_ste",
        "use_variables",
    ),
    "quantized_hswish": (
        "bits",
        "integer",
        "symmetric",
        "alpha",
        "use_stochastic_rounding",
        "scale_axis",
        "qnoise_factor",
        "var_name",
        "use_ste",
        "use_variables",
        "relu_shift",
        "relu_upper_bound",
    ),
    "quantized_sigmoid": ("bits", "symmetric", "use_real_sigmoid", "use_stochastic_rounding"),
    "quantized_tanh": ("bits", "use_stochastic_rounding", "symmetric", "use_real_tanh"),
    "binary": ("use_01", "alpha", "use_stochastic_rounding"),
    "ternary": ("alpha", "threshold", "use_stochastic_rounding", "number_of_unrolls"),
}

#: Options QKeras releases after 0.9.0 added (their files write them at their defaults), each
#: with the one value at which it changes nothing; any other value is refused by name.
_NEUTRAL_OPTIONS: dict[str, dict[str, Any]] = {
    "quantized_bits": {
        "elements_per_scale": None,
        "min_po2_exponent": None,
        "max_po2_exponent": None,
        "post_training_scale": None,
    },
    "binary": {
        "scale_axis": None,
        "elements_per_scale": None,
        "min_po2_exponent": None,
        "max_po2_exponent": None,
    },
}

def _plain(value: Any) -> Any:
    """`value` with numpy scalars as Python numbers (numpy 2 shows `np.float64(0.5)`)."""
    if isinstance(value, list | tuple):
        return type(value)(_plain(v) for v in value)
    return value.item() if hasattr(value, "item") and getattr(value, "ndim", 1) == 0 else value


SUPPORTED_QUANTIZERS = tuple(_SIGNATURES)
KNOWN_QUANTIZERS = frozenset(_SIGNATURES) | frozenset(UNSUPPORTED_QUANTIZERS)


def quantizer_name(spec: Any) -> str | None:
    """The QKeras class name a dict/string spec refers to (None for other specs)."""
    if isinstance(spec, dict):
        name = spec.get("class_name")
        return name if isinstance(name, str) else None
    if isinstance(spec, str):
        return spec.split("(", 1)[0].strip()
    return None


def is_quantizer_spec(spec: Any) -> bool:
    """True if ``spec`` names a QKeras quantizer (supported or not), False for e.g. "relu"."""
    return quantizer_name(spec) in KNOWN_QUANTIZERS


def parse_quantizer(spec: Any, where: str = "") -> Quantizer | None:
    """A quantizer from a model file's dict or string (None stays None).

    Raises `UnsupportedError` for quantizers/options rtlgen does not implement and
    `RtlgenError` for malformed specs; never evaluates the string.
    """
    prefix = f"{where}: " if where else ""
    if spec is None:
        return None
    if isinstance(spec, dict):
        name = spec.get("class_name")
        config = spec.get("config", {})
        if not isinstance(name, str) or not isinstance(config, dict):
            raise RtlgenError(
                f"{prefix}malformed quantizer {spec!r}: expected {{'class_name': ..., 'config': {{...}}}}"
            )
        return _build(name, [], dict(config), prefix)
    if isinstance(spec, str):
        name, args, kwargs = _parse_call(spec, prefix)
        return _build(name, args, kwargs, prefix)
    raise RtlgenError(f"{prefix}cannot interpret quantizer {spec!r} (expected a dict or a string)")


def _parse_call(text: str, prefix: str) -> tuple[str, list[Any], dict[str, Any]]:
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except (SyntaxError, ValueError) as exc:
        raise RtlgenError(
            f"{prefix}malformed quantizer string {text!r}: {exc.msg if isinstance(exc, SyntaxError) else exc}"
        ) from None
    if isinstance(tree, ast.Name):
        return tree.id, [], {}
    if not isinstance(tree, ast.Call) or not isinstance(tree.func, ast.Name):
        raise RtlgenError(
            f"{prefix}malformed quantizer string {text!r}: expected name(arg, ..., key=value)"
        )

    def literal(node: ast.AST) -> Any:
        try:
            return ast.literal_eval(node)
        except (ValueError, TypeError, SyntaxError):
            raise RtlgenError(
                f"{prefix}malformed quantizer string {text!r}: arguments must be literals "
                f"(numbers, quoted strings, True/False/None), got {ast.unparse(node)!r}"
            ) from None

    args = [literal(a) for a in tree.args]
    kwargs: dict[str, Any] = {}
    for kw in tree.keywords:
        if kw.arg is None:
            raise RtlgenError(f"{prefix}malformed quantizer string {text!r}: '**' is not allowed")
        kwargs[kw.arg] = literal(kw.value)
    return tree.func.id, args, kwargs


def _build(name: str, args: list[Any], kwargs: dict[str, Any], prefix: str) -> Quantizer:
    if name in UNSUPPORTED_QUANTIZERS:
        raise UnsupportedError(
            f"{prefix}QKeras quantizer '{name}' ({UNSUPPORTED_QUANTIZERS[name]}) is not supported; "
            f"supported: {', '.join(SUPPORTED_QUANTIZERS)}"
        )
    if name not in _SIGNATURES:
        raise UnsupportedError(
            f"{prefix}unknown quantizer '{name}'; supported: {', '.join(SUPPORTED_QUANTIZERS)}"
        )
    params = _SIGNATURES[name]
    if len(args) > len(params):
        raise RtlgenError(f"{prefix}{name}: too many positional arguments {args!r}")
    options = dict(zip(params, args, strict=False))
    for key, value in kwargs.items():
        if key in options:
            raise RtlgenError(f"{prefix}{name}: argument '{key}' given twice")
        neutral = _NEUTRAL_OPTIONS.get(name, {})
        if key in neutral and key not in params:
            if value != neutral[key]:
                shown = " ".join(repr(_plain(value)).split())
                shown = shown if len(shown) <= 60 else shown[:57] + "..."
                raise UnsupportedError(
                    f"{prefix}{name}: {key}={shown} is not supported (supported: "
                    f"{key}={neutral[key]!r}, the default, which changes nothing)"
                )
            continue
        if key not in params:
            raise UnsupportedError(
                f"{prefix}{name}: unknown option '{key}' (known: {', '.join(params)})"
            )
        options[key] = value
    try:
        return _construct(name, options, prefix)
    except (TypeError, ValueError) as exc:
        raise RtlgenError(f"{prefix}{name}: invalid options {options!r}: {exc}") from None


def _flag(options: dict[str, Any], key: str, default: Any = False) -> Any:
    value = options.get(key, default)
    if isinstance(value, bool | int | float) or value is None:
        return value
    raise RtlgenError(f"option {key}={value!r} must be a number or a boolean")


def _integer(options: dict[str, Any], key: str, default: int, name: str) -> int:
    value = options.get(key, default)
    if isinstance(value, list) and len(value) == 1:  # tf.Variable integers serialize as [i]
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        raise RtlgenError(f"{name}: {key}={value!r} must be an integer")
    return int(value)


def _common_checks(name: str, options: dict[str, Any], prefix: str) -> None:
    qnoise = options.get("qnoise_factor", 1.0)
    if qnoise is not None and float(qnoise) != 1.0:
        raise UnsupportedError(
            f"{prefix}{name}: qnoise_factor={qnoise} mixes the float value into the output; "
            "only qnoise_factor=1 (full quantization, the inference setting) is supported"
        )
    if _flag(options, "use_stochastic_rounding"):
        raise UnsupportedError(
            f"{prefix}{name}: use_stochastic_rounding=True is not supported (its inference "
            "behaviour depends on Keras's learning phase); retrain without it"
        )


def _alpha(value: Any, name: str) -> float | str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UnsupportedError(f"{name}: alpha={value!r} (supported: None, a number, 'auto_po2')")
    return float(value)


def _construct(name: str, o: dict[str, Any], prefix: str) -> Quantizer:
    _common_checks(name, o, prefix)
    if name == "quantized_bits":
        scale_axis = o.get("scale_axis")
        if scale_axis is not None and (not isinstance(scale_axis, int) or scale_axis < 0):
            raise UnsupportedError(
                f"{prefix}quantized_bits: scale_axis={scale_axis!r} (supported: None or a non-negative axis)"
            )
        return QuantizedBits(
            _integer(o, "bits", 8, name),
            _integer(o, "integer", 0, name),
            bool(_flag(o, "symmetric", 0)),
            bool(_flag(o, "keep_negative", True)),
            _alpha(o.get("alpha"), name),
            scale_axis,
        )
    if name == "quantized_relu":
        slope = float(_flag(o, "negative_slope", 0.0) or 0.0)
        if _flag(o, "use_sigmoid", 0):
            keys = ("bits", "integer", "use_sigmoid", "negative_slope", "relu_upper_bound")
            options = {k: o[k] for k in keys if k in o}
            options["is_quantized_clip"] = bool(_flag(o, "is_quantized_clip", True))
            return _table(ActivationKind.QUANTIZED_RELU, options, prefix)
        if slope != 0.0:
            # as QKeras asserts: the checks of the table kind, a leaky activation otherwise
            checks = {
                "negative_slope": slope,
                "relu_upper_bound": o.get("relu_upper_bound"),
                "is_quantized_clip": bool(_flag(o, "is_quantized_clip", True)),
            }
            _table(ActivationKind.QUANTIZED_RELU, checks, prefix)
            return QuantizedLeakyRelu(
                _integer(o, "bits", 8, name), _integer(o, "integer", 0, name), slope
            )
        # With is_quantized_clip (the default, and what every reloaded model has: QKeras does
        # not serialize it) relu_upper_bound does not change the output value.
        if o.get("relu_upper_bound") is not None and not _flag(o, "is_quantized_clip", True):
            raise UnsupportedError(
                f"{prefix}quantized_relu(relu_upper_bound=..., is_quantized_clip=False) is not supported"
            )
        return QuantizedRelu(_integer(o, "bits", 8, name), _integer(o, "integer", 0, name))
    if name in ("quantized_po2", "quantized_relu_po2"):
        max_value = o.get("max_value")
        if max_value is not None and (
            isinstance(max_value, bool) or not isinstance(max_value, int | float)
        ):
            raise RtlgenError(f"{prefix}{name}: max_value={max_value!r} must be a number")
        rounding = o.get("log2_rounding", "rnd")
        if name == "quantized_po2":
            return QuantizedPo2(
                _integer(o, "bits", 8, name),
                max_value,
                bool(_flag(o, "quadratic_approximation")),
                rounding,
            )
        if float(_flag(o, "negative_slope", 0) or 0) != 0.0:
            raise UnsupportedError(f"{prefix}quantized_relu_po2: negative_slope must be 0")
        return QuantizedReluPo2(
            _integer(o, "bits", 8, name),
            max_value,
            bool(_flag(o, "quadratic_approximation")),
            rounding,
        )
    if name == "quantized_hswish":
        alpha = _alpha(o.get("alpha"), name)
        if alpha not in (None, 1.0):
            raise UnsupportedError(
                f"{prefix}quantized_hswish: alpha={alpha!r} (supported: None or 1 for an activation)"
            )
        keys = ("bits", "integer", "symmetric", "relu_shift", "relu_upper_bound")
        options = {k: o[k] for k in keys if k in o}
        if "symmetric" in options:
            options["symmetric"] = bool(_flag(o, "symmetric", 0))
        return _table(ActivationKind.QUANTIZED_HSWISH, options, prefix)
    if name in ("quantized_sigmoid", "quantized_tanh"):
        options = {k: v for k, v in o.items() if k != "use_stochastic_rounding"}
        kind = ActivationKind(name)
        return _table(kind, options, prefix)
    if name == "binary":
        return Binary(bool(_flag(o, "use_01")), _alpha(o.get("alpha"), name))
    if name == "ternary":
        threshold = o.get("threshold")
        if isinstance(threshold, str):
            raise UnsupportedError(
                f"{prefix}ternary: threshold={threshold!r} (supported: None or a number)"
            )
        return Ternary(
            _alpha(o.get("alpha"), name), threshold, _integer(o, "number_of_unrolls", 5, name)
        )
    raise AssertionError(name)  # pragma: no cover


def _table(kind: ActivationKind, options: dict[str, Any], prefix: str) -> TableQuantizer:
    """A table quantizer; its option checks (`activation_params`) name the layer."""
    if "bits" in options:
        options["bits"] = _integer(options, "bits", 8, kind.value)
    if "integer" in options:
        options["integer"] = _integer(options, "integer", 0, kind.value)
    try:
        return TableQuantizer(kind, tuple(options.items()))
    except RtlgenError as exc:
        raise type(exc)(f"{prefix}{exc}") from None
