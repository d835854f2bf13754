"""QKeras quantizer semantics (qkeras 0.9.0), exactly, as fixed-point types.

Each quantizer is a frozen dataclass with
- ``quantize_constant(values) -> QTensor``: integer mantissas + type of ``q(values)`` for a
  kernel/bias (``type.to_float(mantissa) == q(values)`` exactly);
- ``output_type() -> FixedType`` and ``clamp() -> Clamp`` for an activation quantizer: the
  hardware computes ``requantize(clamp(acc), out_type)`` with convergent rounding and
  saturation, which equals ``q(acc)``;
- ``reference(values) -> float array``: the QKeras formula in numpy (an oracle for tests).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rtlgen.ir import Clamp, QTensor

from .errors import UnsupportedError
from .fixed import FixedType, Overflow, Rounding


class Quantizer:
    name = "quantizer"

    def quantize_constant(self, values: np.ndarray) -> QTensor:
        raise NotImplementedError

    def output_type(self) -> FixedType:
        raise UnsupportedError(f"quantizer {self} cannot be used as an activation")

    def clamp(self) -> Clamp:
        return Clamp()

    def reference(self, values: np.ndarray) -> np.ndarray:
        raise NotImplementedError


@dataclass(frozen=True)
class QuantizedBits(Quantizer):
    """``quantized_bits(bits, integer, symmetric, keep_negative, alpha=1)``.

    ub = bits - keep_negative; step = 2**(integer - ub);
    q(x) = step * clip(round(x / step), lo, hi), lo = -(2**ub) + symmetric (0 if unsigned),
    hi = 2**ub - 1. bits == 1 signed is the sign function with 0 -> +1.
    """

    bits: int
    integer: int = 0
    symmetric: bool = False
    keep_negative: bool = True

    name = "quantized_bits"

    def __post_init__(self) -> None:
        if self.bits < 1 or self.bits > 32:
            raise UnsupportedError(f"quantized_bits: bits={self.bits} (supported: 1..32)")

    @property
    def _ub(self) -> int:
        return self.bits - int(self.keep_negative)

    @property
    def _frac(self) -> int:
        return self._ub - self.integer

    def _limits(self) -> tuple[int, int]:
        if self.keep_negative:
            return -(1 << self._ub) + int(self.symmetric), (1 << self._ub) - 1
        return 0, (1 << self._ub) - 1

    def _type(self) -> FixedType:
        if self.keep_negative and self.bits == 1:
            return FixedType(2, -self.integer, True)  # mantissas -1, +1 at step 2**integer
        return FixedType(self.bits, self._frac, self.keep_negative)

    def quantize_constant(self, values: np.ndarray) -> QTensor:
        values = np.asarray(values, dtype=np.float64)
        if self.keep_negative and self.bits == 1:
            return QTensor(np.where(values >= 0, 1, -1), self._type())
        lo, hi = self._limits()
        m = np.clip(np.round(values * 2.0**self._frac), lo, hi).astype(np.int64)
        return QTensor(m, self._type())

    def output_type(self) -> FixedType:
        if self.keep_negative and self.bits == 1:
            raise UnsupportedError("quantized_bits(1) as an activation (sign function) is not supported")
        return self._type()

    def clamp(self) -> Clamp:
        lo, _ = self._limits()
        if self.symmetric and self.keep_negative:
            return Clamp(lo * 2.0**-self._frac, None)
        return Clamp()

    def reference(self, values: np.ndarray) -> np.ndarray:
        values = np.asarray(values, dtype=np.float64)
        if self.keep_negative and self.bits == 1:
            return np.where(values >= 0, 1.0, -1.0) * 2.0**self.integer
        lo, hi = self._limits()
        step = 2.0 ** (self.integer - self._ub)
        return step * np.clip(np.round(values / step), lo, hi)

    def __str__(self) -> str:
        return f"quantized_bits({self.bits},{self.integer},symmetric={int(self.symmetric)},keep_negative={int(self.keep_negative)},alpha=1)"


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
        return QTensor(t.quantize(np.maximum(values, 0.0), Rounding.CONVERGENT, Overflow.SATURATE), t)

    def output_type(self) -> FixedType:
        return self._type()

    def clamp(self) -> Clamp:
        return Clamp(0.0, None)

    def reference(self, values: np.ndarray) -> np.ndarray:
        step = 2.0 ** (self.integer - self.bits)
        return step * np.clip(np.round(np.asarray(values, dtype=np.float64) / step), 0, 2**self.bits - 1)

    def __str__(self) -> str:
        return f"quantized_relu({self.bits},{self.integer})"


def log2_exact(value: float) -> int | None:
    """k if value == 2**k exactly, else None."""
    if value <= 0:
        return None
    m, e = math.frexp(value)
    return e - 1 if m == 0.5 else None
