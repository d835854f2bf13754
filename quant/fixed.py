"""Fixed-point types and the integer operations every layer is made of.

A value is an integer *mantissa* ``m`` of a :class:`FixedType` ``t``; its real value is
``m * 2**-t.frac``. All arithmetic in the reference model and in the hardware is done on
mantissas with the functions here; the hardware generators ask the same functions for
widths and reproduce the same rounding and saturation bit for bit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

import numpy as np

from .errors import RtlgenError


class Rounding(Enum):
    """How low bits are dropped when a value moves to fewer fractional bits."""

    CONVERGENT = "conv"  # round half to even (numpy/TF round; QKeras; ap_fixed AP_RND_CONV)
    HALF_UP = "rnd"  # round half towards +inf (ap_fixed AP_RND)
    TRUNCATE = "trn"  # floor (ap_fixed AP_TRN)


class Overflow(Enum):
    SATURATE = "sat"  # clip to the type's range (AP_SAT)
    WRAP = "wrap"  # keep the low bits (AP_WRAP)


_AP_RE = re.compile(
    r"^\s*(?:ap_)?(u?)fixed\s*<\s*(\d{1,6})\s*,\s*(-?\d{1,6})\s*"
    r"(?:,\s*(\w+)\s*)?(?:,\s*(\w+)\s*)?(?:,\s*(\d{1,6})\s*)?>\s*$"
)
_AP_INT_RE = re.compile(r"^\s*(?:ap_)?(u?)int\s*<\s*(\d{1,6})\s*>\s*$")
#: Widths of a type written by the user (`FixedType.parse`), and its integer bits: values
#: are int64 mantissas, and beyond +-62 integer bits every representable value of a
#: <= 62-bit type rounds to 0 or saturates (``fixed<16,100000>`` would make every input 0).
MAX_WIDTH = 62
MAX_INTEGER_BITS = 62
#: ap_fixed quantization (rounding) and overflow modes, with or without the ``AP_`` prefix.
#: They are accepted for hls4ml compatibility and not applied by the type: rtlgen's
#: rounding and overflow are per-layer options (``rounding:``/``overflow:`` of the config).
ROUNDING_MODES = ("RND", "RND_ZERO", "RND_MIN_INF", "RND_INF", "RND_CONV", "TRN", "TRN_ZERO")
OVERFLOW_MODES = ("SAT", "SAT_ZERO", "SAT_SYM", "WRAP", "WRAP_SM")


class WidthError(RtlgenError):
    """A fixed-point type wider than rtlgen's 62 bits; ``width``: the width asked for."""

    def __init__(self, message: str, width: int):
        super().__init__(message)
        self.width = width


@dataclass(frozen=True, order=True)
class FixedType:
    """A two's complement (or unsigned) fixed-point format.

    ``width`` total bits, ``frac`` fractional bits (may be negative or exceed ``width``).
    hls4ml/Vivado ``ap_fixed<W, I>`` is ``FixedType(W, W - I, signed=True)``.
    """

    width: int
    frac: int
    signed: bool = True

    def __post_init__(self) -> None:
        if self.width < 1:
            raise RtlgenError(f"fixed-point width must be at least 1 bit, got {self.width}")
        if self.width > 62:
            raise WidthError(
                f"fixed-point width {self.width} exceeds the 62 bits rtlgen supports", self.width
            )

    # -- description -----------------------------------------------------------------
    @property
    def integer(self) -> int:
        """Integer bits including the sign bit, as in ``ap_fixed<W, I>``."""
        return self.width - self.frac

    @property
    def min_int(self) -> int:
        return -(1 << (self.width - 1)) if self.signed else 0

    @property
    def max_int(self) -> int:
        return (1 << (self.width - 1)) - 1 if self.signed else (1 << self.width) - 1

    @property
    def step(self) -> float:
        return 2.0**-self.frac

    @property
    def min_value(self) -> float:
        return self.min_int * self.step

    @property
    def max_value(self) -> float:
        return self.max_int * self.step

    def __str__(self) -> str:
        return f"{'' if self.signed else 'u'}fixed<{self.width},{self.integer}>"

    @classmethod
    def parse(cls, text: str) -> FixedType:
        """Parse ``fixed<16,6>``, ``ap_fixed<16,6>``, ``ap_ufixed<8,0>``, ``ap_int<8>``.

        Optional rounding/overflow arguments (``AP_RND_CONV, AP_SAT``) are checked against the
        ap_fixed modes and then ignored: rtlgen's rounding is a per-layer option, not part of
        the type. Widths 1-62 and -62..62 integer bits; anything else is an `RtlgenError`.
        """
        if not isinstance(text, str) or len(text) > 200:
            raise RtlgenError(
                f"cannot parse precision {str(text)[:60]!r}: expected e.g. 'ap_fixed<16,6>'"
            )
        m = _AP_RE.match(text)
        if m:
            unsigned, width, integer = m.group(1), int(m.group(2)), int(m.group(3))
            _check_modes(text, m.group(4), m.group(5), m.group(6), width)
            _check_width(text, width)
            if not -MAX_INTEGER_BITS <= integer <= MAX_INTEGER_BITS:
                raise RtlgenError(
                    f"precision {text!r}: {integer} integer bits is not supported (supported: "
                    f"-{MAX_INTEGER_BITS} to {MAX_INTEGER_BITS} integer bits)"
                )
            return cls(width, width - integer, signed=not unsigned)
        m = _AP_INT_RE.match(text)
        if m:
            _check_width(text, int(m.group(2)))
            return cls(int(m.group(2)), 0, signed=not m.group(1))
        raise RtlgenError(
            f"cannot parse precision {text!r}: expected e.g. 'ap_fixed<16,6>', 'ufixed<8,0>' or 'ap_int<8>'"
        )

    @classmethod
    def covering(cls, lo: int, hi: int, frac: int) -> FixedType:
        """Narrowest type with ``frac`` fractional bits holding every mantissa in [lo, hi]."""
        lo, hi = int(min(lo, 0)), int(max(hi, 0))
        if lo < 0:
            width = max(int(hi).bit_length(), int(-lo - 1).bit_length()) + 1
            return cls(width, frac, True)
        return cls(max(hi.bit_length(), 1), frac, False)

    def with_frac(self, frac: int) -> FixedType:
        """The same integer range with ``frac`` fractional bits."""
        return FixedType(self.width + frac - self.frac, frac, self.signed)

    # -- conversion ------------------------------------------------------------------
    def to_float(self, mantissa: np.ndarray) -> np.ndarray:
        return np.asarray(mantissa, dtype=np.float64) * self.step

    def quantize(
        self,
        values: np.ndarray,
        rounding: Rounding = Rounding.CONVERGENT,
        overflow: Overflow = Overflow.SATURATE,
    ) -> np.ndarray:
        """Mantissas of real ``values`` in this type (int64)."""
        scaled = np.asarray(values, dtype=np.float64) * 2.0**self.frac
        if rounding is Rounding.CONVERGENT:
            q = np.round(scaled)
        elif rounding is Rounding.HALF_UP:
            q = np.floor(scaled + 0.5)
        else:
            q = np.floor(scaled)
        q = np.clip(q, -(2.0**62), 2.0**62).astype(np.int64)
        return fit(q, self, overflow)


def _check_width(text: str, width: int) -> None:
    if not 1 <= width <= MAX_WIDTH:
        raise RtlgenError(
            f"precision {text!r}: width {width} is not supported (supported: 1 to {MAX_WIDTH} bits)"
        )


def _check_modes(
    text: str, rounding: str | None, overflow: str | None, sat_bits: str | None, width: int
) -> None:
    """Refuse unknown ap_fixed modes (``fixed<8,3,RND_FOO,SAT>``) instead of ignoring them."""
    if rounding is not None and rounding.removeprefix("AP_") not in ROUNDING_MODES:
        raise RtlgenError(
            f"precision {text!r}: unknown rounding mode {rounding!r} (supported: "
            f"{', '.join('AP_' + m for m in ROUNDING_MODES)}, with or without AP_)"
        )
    if overflow is not None and overflow.removeprefix("AP_") not in OVERFLOW_MODES:
        raise RtlgenError(
            f"precision {text!r}: unknown overflow mode {overflow!r} (supported: "
            f"{', '.join('AP_' + m for m in OVERFLOW_MODES)}, with or without AP_)"
        )
    if sat_bits is not None and int(sat_bits) > width:
        raise RtlgenError(
            f"precision {text!r}: {sat_bits} saturation bits is more than the width {width}"
        )


def fit(mantissa: np.ndarray, t: FixedType, overflow: Overflow = Overflow.SATURATE) -> np.ndarray:
    """Force integer mantissas into ``t``'s range by saturation or wrap-around."""
    m = np.asarray(mantissa, dtype=np.int64)
    if overflow is Overflow.SATURATE:
        return np.clip(m, t.min_int, t.max_int)
    low = m & ((1 << t.width) - 1)
    if t.signed:
        low = np.where(low >= (1 << (t.width - 1)), low - (1 << t.width), low)
    return low


def shift_round(mantissa: np.ndarray, shift: int, rounding: Rounding) -> np.ndarray:
    """``mantissa * 2**-shift`` rounded to an integer (``shift`` <= 0 is an exact left shift).

    Hardware contract: convergent rounding looks at the dropped bits (greater than half:
    up; exactly half: up only if the kept LSB is 1); half-up adds ``2**(shift-1)`` then
    floors; truncation is an arithmetic right shift.
    """
    m = np.asarray(mantissa, dtype=np.int64)
    if shift <= 0:
        return m << -shift
    floor = m >> shift
    if rounding is Rounding.TRUNCATE:
        return floor
    rem = m & ((1 << shift) - 1)
    half = 1 << (shift - 1)
    if rounding is Rounding.HALF_UP:
        return floor + (rem >= half)
    return floor + ((rem > half) | ((rem == half) & ((floor & 1) == 1)))


def requantize(
    mantissa: np.ndarray,
    from_frac: int,
    to: FixedType,
    rounding: Rounding = Rounding.CONVERGENT,
    overflow: Overflow = Overflow.SATURATE,
) -> np.ndarray:
    """Move mantissas with ``from_frac`` fractional bits into type ``to``."""
    return fit(shift_round(mantissa, from_frac - to.frac, rounding), to, overflow)


def bits_for_range(lo: int, hi: int) -> tuple[int, bool]:
    """(width, signed) of the narrowest integer holding [lo, hi]."""
    t = FixedType.covering(lo, hi, 0)
    return t.width, t.signed
