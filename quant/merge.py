"""Merge layers (Keras Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate) on
integer mantissas.

Inputs of an elementwise merge have the same shape, or shapes that broadcast (numpy's
rules; Keras merges broadcast a (1, 1, C) or (C,) operand over an image the same way), and
may have different `FixedType` s. Broadcasting changes no value range: the result is computed exactly in the accumulator type `merge_acc_type` (interval analysis:
it can never overflow), then moved into the layer's output type with one rounding and one
saturation/wrap step, like every other layer (`fixed.requantize`):

- ADD, SUBTRACT, MAXIMUM, MINIMUM: inputs aligned to the largest ``frac`` (exact left
  shifts), then summed / subtracted / compared. The range of a maximum is
  ``[max lo_k, max hi_k]`` (of a minimum ``[min lo_k, min hi_k]``), within the union of the
  input ranges: e.g. the maximum of a signed input and an unsigned one is unsigned.
- MULTIPLY: the plain product of the mantissas, ``frac`` = the sum of the inputs' ``frac``.
- AVERAGE of n inputs = sum / n. When n is a power of two this is exact: the sum's mantissa
  read with ``log2(n)`` more fractional bits, and the accumulator *is* that type. Otherwise the
  accumulator is the sum (aligned ``frac``) and the division by n happens in the output step,
  rounded once: ``divide_round(sum << s, n)`` (or ``divide_round(sum, n << -s)``) with
  ``s = out_type.frac - acc_type.frac``, as average pooling does. `average_divisor` tells
  which case applies.

Keras semantics matched: Subtract takes exactly two inputs (``x0 - x1``); all the others
take two or more. Concatenate joins along one axis (the channel axis, last, for images
(N, H, W, C) and sequences (N, L, C)); every input is first moved into the output type.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from enum import Enum

import numpy as np

from .arith import align, divide_round
from .errors import RtlgenError
from .fixed import FixedType, Overflow, Rounding, fit, requantize


class MergeOp(Enum):
    """Elementwise merge operations, named after the Keras layers."""

    ADD = "Add"
    SUBTRACT = "Subtract"
    MULTIPLY = "Multiply"
    AVERAGE = "Average"
    MAXIMUM = "Maximum"
    MINIMUM = "Minimum"


def _check_inputs(op: MergeOp, in_types: Sequence[FixedType]) -> None:
    if op is MergeOp.SUBTRACT and len(in_types) != 2:
        raise RtlgenError(f"merge {op.value}: needs exactly 2 inputs, got {len(in_types)}")
    if len(in_types) < 2:
        raise RtlgenError(f"merge {op.value}: needs at least 2 inputs, got {len(in_types)}")


def aligned_frac(in_types: Sequence[FixedType]) -> int:
    """Fractional bits the inputs of an add/subtract/average/max/min/concat are aligned to."""
    return max(t.frac for t in in_types)


def _aligned_range(t: FixedType, frac: int) -> tuple[int, int]:
    """Mantissa range of ``t`` moved (exactly) to ``frac`` >= ``t.frac`` fractional bits."""
    return t.min_int << (frac - t.frac), t.max_int << (frac - t.frac)


def average_divisor(op: MergeOp, n_inputs: int) -> int:
    """The divisor left for the output step: n for AVERAGE of a non-power-of-two n, else 1."""
    if op is MergeOp.AVERAGE and n_inputs & (n_inputs - 1):
        return n_inputs
    return 1


def merge_range(op: MergeOp, in_types: Sequence[FixedType]) -> tuple[int, int, int]:
    """(lo, hi, frac): every mantissa the exact result can take, and its fractional bits.

    Python integers (unbounded), so the caller can tell a range that needs more than
    62 bits from one that does not.
    """
    _check_inputs(op, in_types)
    if op is MergeOp.MULTIPLY:
        lo, hi = 1, 1
        for t in in_types:
            corners = [a * b for a in (lo, hi) for b in (t.min_int, t.max_int)]
            lo, hi = min(corners), max(corners)
        return lo, hi, sum(t.frac for t in in_types)
    frac = aligned_frac(in_types)
    ranges = [_aligned_range(t, frac) for t in in_types]
    if op is MergeOp.SUBTRACT:
        (lo0, hi0), (lo1, hi1) = ranges
        return lo0 - hi1, hi0 - lo1, frac
    if op is MergeOp.MAXIMUM:  # tighter than the union: max(x, y) >= max(lo_x, lo_y)
        return max(r[0] for r in ranges), max(r[1] for r in ranges), frac
    if op is MergeOp.MINIMUM:
        return min(r[0] for r in ranges), min(r[1] for r in ranges), frac
    lo, hi = sum(r[0] for r in ranges), sum(r[1] for r in ranges)
    if op is MergeOp.AVERAGE and average_divisor(op, len(in_types)) == 1:
        frac += len(in_types).bit_length() - 1  # sum / 2**k: same mantissas, k more frac bits
    return lo, hi, frac


def merge_acc_type(op: MergeOp, in_types: Sequence[FixedType]) -> FixedType:
    """The narrowest type holding the exact result of ``op`` on any inputs of ``in_types``.

    For AVERAGE of a non-power-of-two count this is the type of the *sum* (see the module
    docstring); the division is part of the output step. Raises `RtlgenError` when the
    exact result needs more than 62 bits.
    """
    lo, hi, frac = merge_range(op, in_types)
    try:
        return FixedType.covering(lo, hi, frac)
    except RtlgenError:
        raise RtlgenError(
            f"merge {op.value} of {', '.join(map(str, in_types))}: the exact result needs "
            f"more than 62 bits (range [{lo}, {hi}]); narrow the input types"
        ) from None


def _check_shapes(xs: Sequence[np.ndarray], in_types: Sequence[FixedType], what: str) -> None:
    if len(xs) != len(in_types):
        raise ValueError(f"{what}: {len(xs)} inputs but {len(in_types)} types")


def merge_acc(op: MergeOp, xs: Sequence[np.ndarray], in_types: Sequence[FixedType]) -> np.ndarray:
    """The exact result of ``op`` as mantissas of ``merge_acc_type(op, in_types)`` (int64);
    inputs of different shapes broadcast (numpy's rules) to the result's shape."""
    _check_shapes(xs, in_types, f"merge {op.value}")
    merge_acc_type(op, in_types)  # refuses results wider than 62 bits (int64 would overflow)
    xs = [np.asarray(x, dtype=np.int64) for x in xs]
    shape = np.broadcast_shapes(*(x.shape for x in xs))
    if op is MergeOp.MULTIPLY:
        return np.broadcast_to(functools.reduce(np.multiply, xs), shape).copy()
    frac = aligned_frac(in_types)
    aligned = [align(x, t.frac, frac) for x, t in zip(xs, in_types, strict=True)]
    if op is MergeOp.SUBTRACT:
        out = aligned[0] - aligned[1]
    elif op is MergeOp.MAXIMUM:
        out = functools.reduce(np.maximum, aligned)
    elif op is MergeOp.MINIMUM:
        out = functools.reduce(np.minimum, aligned)
    else:  # ADD, and AVERAGE (a power-of-two count: the acc type has the extra frac)
        out = functools.reduce(np.add, aligned)
    return np.broadcast_to(out, shape).copy()


def divide_requantize(
    acc: np.ndarray,
    acc_frac: int,
    divisor: int,
    out_type: FixedType,
    rounding: Rounding = Rounding.CONVERGENT,
    overflow: Overflow = Overflow.SATURATE,
) -> np.ndarray:
    """``acc * 2**-acc_frac / divisor`` rounded once into ``out_type`` (divisor >= 1)."""
    if divisor == 1:
        return requantize(acc, acc_frac, out_type, rounding, overflow)
    shift = out_type.frac - acc_frac
    acc = np.asarray(acc, dtype=np.int64)
    if shift >= 0:
        quotient = divide_round(acc << shift, divisor, rounding)
    else:
        quotient = divide_round(acc, divisor << -shift, rounding)
    return fit(quotient, out_type, overflow)


def merge(
    op: MergeOp,
    xs: Sequence[np.ndarray],
    in_types: Sequence[FixedType],
    out_type: FixedType,
    rounding: Rounding = Rounding.CONVERGENT,
    overflow: Overflow = Overflow.SATURATE,
) -> np.ndarray:
    """Keras ``op`` of the inputs (mantissas of ``in_types``) as mantissas of ``out_type``.

    The exact accumulator (`merge_acc`) rounded and saturated/wrapped once; for AVERAGE of
    a non-power-of-two count the division by the count is part of that single rounding.
    """
    acc = merge_acc(op, xs, in_types)
    acc_type = merge_acc_type(op, in_types)
    divisor = average_divisor(op, len(in_types))
    return divide_requantize(acc, acc_type.frac, divisor, out_type, rounding, overflow)


def concat_type(in_types: Sequence[FixedType]) -> FixedType:
    """The narrowest type holding every input exactly: the largest ``frac``, and enough
    integer bits (and a sign bit if any input is signed) for every input's range."""
    if not in_types:
        raise RtlgenError("Concatenate: needs at least one input")
    frac = aligned_frac(in_types)
    ranges = [_aligned_range(t, frac) for t in in_types]
    return FixedType.covering(min(r[0] for r in ranges), max(r[1] for r in ranges), frac)


def concatenate(
    xs: Sequence[np.ndarray],
    in_types: Sequence[FixedType],
    out_type: FixedType,
    axis: int = -1,
    rounding: Rounding = Rounding.CONVERGENT,
    overflow: Overflow = Overflow.SATURATE,
) -> np.ndarray:
    """Keras ``Concatenate(axis)``: every input moved into ``out_type`` (rounded and
    saturated/wrapped if ``out_type`` cannot hold it exactly), then joined along ``axis``."""
    _check_shapes(xs, in_types, "Concatenate")
    parts = [
        requantize(np.asarray(x, dtype=np.int64), t.frac, out_type, rounding, overflow)
        for x, t in zip(xs, in_types, strict=True)
    ]
    return np.concatenate(parts, axis=axis)


__all__ = [
    "MergeOp",
    "aligned_frac",
    "average_divisor",
    "concat_type",
    "concatenate",
    "divide_requantize",
    "merge",
    "merge_acc",
    "merge_acc_type",
    "merge_range",
]
