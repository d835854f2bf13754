"""Width and alignment rules shared by the reference model and the hardware generators.

Every accumulator width in rtlgen comes from `accumulator_type` (interval analysis of the
integer weights over the input type's range), so an accumulator can never overflow.
"""

from __future__ import annotations

import numpy as np

from .errors import RtlgenError
from .fixed import FixedType, Rounding


def accumulator_frac(in_type: FixedType, w_type: FixedType, b_type: FixedType | None) -> int:
    """Fractional bits of a product sum: products have ``fx + fw``; a finer bias wins."""
    frac = in_type.frac + w_type.frac
    if b_type is not None:
        frac = max(frac, b_type.frac)
    return frac


def align(mantissa: np.ndarray, from_frac: int, to_frac: int) -> np.ndarray:
    """Exact move of mantissas to more fractional bits (a left shift)."""
    if to_frac < from_frac:
        raise ValueError("align only widens the fraction")
    return np.asarray(mantissa, dtype=np.int64) << (to_frac - from_frac)


def aligned_weights(
    w: np.ndarray, in_type: FixedType, w_type: FixedType, acc_frac: int
) -> np.ndarray:
    """Weights pre-shifted so that ``x * w'`` lands directly at ``acc_frac`` (constants: free)."""
    return align(w, in_type.frac + w_type.frac, acc_frac)


def dot_range(w: np.ndarray, x_lo: int, x_hi: int) -> tuple[np.ndarray, np.ndarray]:
    """Per output column, the min and max of ``x @ w`` for every x in [x_lo, x_hi]^K.

    ``w`` is (K, O) integer; returns two (O,) int arrays, exact: int64 while
    ``sum |w| * max|x| < 2**62``, Python integers beyond (a chain of exact accumulators
    can grow past int64 before a type check refuses it).
    """
    w = np.asarray(w, dtype=np.int64)
    bound = np.abs(w.astype(np.float64)).sum(axis=0) * float(max(abs(x_lo), abs(x_hi)))
    if bound.size and bound.max() >= 2.0**62:
        # beyond int64: exact in Python integers (the caller's type check then refuses it)
        w = w.astype(object)
    a, b = w * x_lo, w * x_hi
    return np.minimum(a, b).sum(axis=0), np.maximum(a, b).sum(axis=0)


def accumulator_type(
    w_aligned: np.ndarray,
    b_aligned: np.ndarray | None,
    in_type: FixedType,
    acc_frac: int,
    in_range: tuple[int, int] | None = None,
) -> FixedType:
    """Narrowest type holding every possible ``x @ w_aligned + b_aligned``.

    ``w_aligned`` is (K, O) (a conv kernel reshaped to (kh*kw*cin, cout)).
    ``in_range`` narrows the input range below the type's (e.g. from a previous ReLU).
    """
    x_lo, x_hi = in_range if in_range is not None else (in_type.min_int, in_type.max_int)
    lo, hi = dot_range(w_aligned, x_lo, x_hi)
    if b_aligned is not None:
        lo, hi = lo + b_aligned, hi + b_aligned
    t = FixedType.covering(int(lo.min(initial=0)), int(hi.max(initial=0)), acc_frac)
    return t


def clamp_bounds(
    lo: float | None, hi: float | None, frac: int, where: str
) -> tuple[int | None, int | None]:
    """Activation bounds as mantissas with ``frac`` fractional bits (must be exact)."""
    out: list[int | None] = []
    for bound in (lo, hi):
        if bound is None:
            out.append(None)
            continue
        scaled = bound * 2.0**frac
        if scaled != int(scaled):
            raise RtlgenError(
                f"layer '{where}': activation bound {bound} is not exact with {frac} fractional bits"
            )
        out.append(int(scaled))
    return out[0], out[1]


def apply_clamp(acc: np.ndarray, lo: int | None, hi: int | None) -> np.ndarray:
    if lo is not None:
        acc = np.maximum(acc, lo)
    if hi is not None:
        acc = np.minimum(acc, hi)
    return acc


def divide_round(num: np.ndarray, den: np.ndarray | int, rounding: Rounding) -> np.ndarray:
    """``num / den`` rounded to an integer exactly (den > 0), e.g. for average pooling."""
    num = np.asarray(num, dtype=np.int64)
    den = np.asarray(den, dtype=np.int64)
    q = np.floor_divide(num, den)
    if rounding is Rounding.TRUNCATE:
        return q
    r2 = 2 * (num - q * den)
    if rounding is Rounding.HALF_UP:
        return q + (r2 >= den)
    return q + ((r2 > den) | ((r2 == den) & ((q & 1) == 1)))
