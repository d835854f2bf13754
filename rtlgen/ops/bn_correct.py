"""A float BatchNormalization + a quantizer of many levels, decided exactly: the scale/shift
with corrected input ranges (`CorrectedScaleShift`).

A quantizer of at most `MAX_THRESHOLD_LEVELS` levels after a float BN is a threshold node
(`rtlgen.ops.threshold`). With more levels `rtlgen.ops.scale_shift.lower_scale_shift` widens
the quantized scale/shift until it decides every output as the float model; where float32
rounding inside the BN itself decides a few thresholds, no width does. Then both functions
are monotone step functions of the integer input: the float model's (`StepFunction`,
TensorFlow's float32 BN op by op) and the fixed-point scale/shift's. Their thresholds
(exact searches over the whole input range) split the input range into intervals on which
both are constant; the intervals where they differ (typically one input next to a
threshold) are the corrections: ``out = level_j`` where ``lo_j <= x <= hi_j``, else the
scale/shift's output. At most `MAX_CORRECTIONS` per channel (more: the scale/shift stays, with
the warning).

Hardware: the scale/shift's MAC computes the exact accumulator ``z = x * s + b`` (strictly
monotone in ``x``: the input range maps to accumulator ranges one to one), then
`rtlgen.layers.corrected_requantize.CorrectedRequantize` requantizes it with two constant
comparators per correction: cost bounded by the corrections, whatever the number of levels.

The thresholds use the correctly rounded float32 ``rsqrt``; TensorFlow's is CPU dependent
within 2 ulps (see `rtlgen.quant.threshold`): decisions there are the float model's own
uncertainty.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from rtlgen import ir
from rtlgen.ops.matvec import plan_matvec
from rtlgen.ops.registry import Op, Shape, register_op
from rtlgen.quant.arith import clamp_bounds
from rtlgen.quant.errors import RtlgenError
from rtlgen.quant.fixed import FixedType
from rtlgen.quant.threshold import StepFunction, step_thresholds

if TYPE_CHECKING:
    from rtlgen.plan import LayerPlan, PlanContext

#: most corrected input ranges per channel (the saved arrays' width)
MAX_CORRECTIONS = 256
_MAX_SHIFT = 62


@dataclass(frozen=True, eq=False)
class CorrectedScaleShift(ir.ScaleShift):
    """A lowered `ir.ScaleShift` with its activation and quantizer, whose output is replaced
    by ``corr_level[c, j]`` where ``corr_lo[c, j] <= x[..., c] <= corr_hi[c, j]``.

    ``corr_lo``/``corr_hi``: (C, `MAX_CORRECTIONS`) input mantissas (the input type's frac),
    disjoint ranges; unused entries (at the end) are ``in max_int + 1`` / ``in max_int``
    (empty). ``corr_level``: (C, `MAX_CORRECTIONS`) output mantissas (unused: 0)."""

    corr_lo: ir.Tensor = field(kw_only=True)
    corr_hi: ir.Tensor = field(kw_only=True)
    corr_level: ir.Tensor = field(kw_only=True)

    op = "scale_shift_corrected"
    constant_fields: ClassVar[tuple[str, ...]] = ("corr_lo", "corr_hi", "corr_level")

    def corrections(self) -> list[list[tuple[int, int, int]]]:
        """Per channel: the real (lo, hi, level) corrections."""
        lo, hi, level = (t.mantissa for t in (self.corr_lo, self.corr_hi, self.corr_level))  # type: ignore[union-attr]
        return [
            [
                (int(a), int(b), int(v))
                for a, b, v in zip(lo[c], hi[c], level[c], strict=True)
                if a <= b
            ]
            for c in range(lo.shape[0])
        ]


class _ScaleShiftFunction:
    """A lowered scale/shift as a step function of the input mantissas (for the search)."""

    def __init__(self, node: ir.ScaleShift, in_type: FixedType):
        self.node, self.in_type = node, in_type

    def __call__(self, x: np.ndarray, channel_axis: int = -1, ulps: int = 0) -> np.ndarray:
        from rtlgen.ops.scale_shift import scale_shift_reference

        return scale_shift_reference(self.node, np.asarray(x, np.int64), self.in_type)


def corrected(
    node: ir.ScaleShift, f: StepFunction, channels: int
) -> tuple[CorrectedScaleShift | None, list[int]]:
    """The lowered scale/shift ``node`` with the input ranges where it differs from the float
    model ``f`` corrected, and the channels that would need more than `MAX_CORRECTIONS` (left
    uncorrected); None instead of the node when no channel gets a correction."""
    in_type = f.in_type
    lo, hi = in_type.min_int, in_type.max_int
    g = _ScaleShiftFunction(node, in_type)
    ours, theirs = step_thresholds(g, channels), step_thresholds(f, channels)
    rows = []
    for c in range(channels):
        cuts = [ours.thresholds[c], theirs.thresholds[c]]
        rows.append(np.unique(np.concatenate([[lo], *(t[t <= hi] for t in cuts)])))
    points = np.full((max(len(r) for r in rows), channels), lo, np.int64)
    for c, row in enumerate(rows):
        points[: len(row), c] = row
    want, got = f(points), g(points)
    found: list[list[tuple[int, int, int]]] = []
    skipped: list[int] = []
    for c, row in enumerate(rows):
        ends = np.append(row[1:] - 1, hi)
        ranges: list[tuple[int, int, int]] = []
        for k in np.flatnonzero(want[: len(row), c] != got[: len(row), c]):
            start, end, level = int(row[k]), int(ends[k]), int(want[k, c])
            if ranges and ranges[-1][1] + 1 == start and ranges[-1][2] == level:
                start = ranges.pop()[0]
            ranges.append((start, end, level))
        if len(ranges) > MAX_CORRECTIONS:
            skipped.append(c)
            ranges = []
        found.append(ranges)
    if not any(found):
        return None, skipped
    assert node.out_type is not None
    corr_lo = np.full((channels, MAX_CORRECTIONS), hi + 1, np.int64)
    corr_hi = np.full((channels, MAX_CORRECTIONS), hi, np.int64)
    corr_level = np.zeros((channels, MAX_CORRECTIONS), np.int64)
    for c, ranges in enumerate(found):
        for j, (start, end, level) in enumerate(ranges):
            corr_lo[c, j], corr_hi[c, j], corr_level[c, j] = start, end, level
    fields = {f_.name: getattr(node, f_.name) for f_ in dataclasses.fields(ir.ScaleShift)}
    exact = CorrectedScaleShift(
        **fields,
        corr_lo=ir.QTensor(corr_lo, _input_range_type(corr_lo, in_type)),
        corr_hi=ir.QTensor(corr_hi, _input_range_type(corr_hi, in_type)),
        corr_level=ir.QTensor(corr_level, node.out_type),
    )
    return exact, skipped


def _input_range_type(values: np.ndarray, in_type: FixedType) -> FixedType:
    return FixedType.covering(int(values.min()), int(values.max()), in_type.frac)


# ---------------------------------------------------------------------------------------
# reference, hardware, checks
# ---------------------------------------------------------------------------------------
def corrected_reference(node: CorrectedScaleShift, x: np.ndarray, in_type: FixedType) -> np.ndarray:
    from rtlgen.ops.scale_shift import scale_shift_reference

    x = np.asarray(x, dtype=np.int64)
    y = scale_shift_reference(node, x, in_type)
    lo, hi, level = (t.mantissa for t in (node.corr_lo, node.corr_hi, node.corr_level))  # type: ignore[union-attr]
    for j in range(lo.shape[1]):
        y = np.where((x >= lo[:, j]) & (x <= hi[:, j]), level[:, j], y)
    return y


def _exact_part(node: CorrectedScaleShift) -> ir.ScaleShift:
    """The scale/shift alone, its output the exact accumulator (no activation, no quantizer)."""
    fields = {f_.name: getattr(node, f_.name) for f_ in dataclasses.fields(ir.ScaleShift)}
    fields.update(activation=ir.LINEAR, out_quantizer=None, out_type=node.acc_type)
    return ir.ScaleShift(**fields)


def plan_corrected(node: CorrectedScaleShift, ctx: PlanContext) -> LayerPlan:
    from rtlgen.layers.corrected_requantize import CorrectedRequantize
    from rtlgen.plan import StreamFormat, weights_matrix

    assert node.acc_type is not None and node.out_type is not None
    exact = _exact_part(node)
    base = plan_matvec(exact, ctx)
    diagonal, bias = weights_matrix(exact, ctx.in_type)
    scale = np.diag(diagonal)
    channels = node.in_shape[-1]
    per_channel = []
    for c, ranges in enumerate(node.corrections()):
        mapped = []
        for start, end, level in ranges:
            z0, z1 = (int(v) * int(scale[c]) + int(bias[c]) for v in (start, end))
            mapped.append((min(z0, z1), max(z0, z1), level))
        per_channel.append(mapped)
    lanes = StreamFormat.of(node.in_shape, ctx.in_type).elements
    corrections = [per_channel[k % channels] for k in range(lanes)]
    clamp_lo, clamp_hi = clamp_bounds(
        node.activation.lo, node.activation.hi, node.acc_type.frac, node.name
    )
    stage = CorrectedRequantize(
        lanes,
        node.acc_type,
        node.out_type,
        corrections,
        clamp_lo,
        clamp_hi,
        node.rounding,
        node.overflow,
    )
    count = sum(len(r) for r in per_channel)
    return dataclasses.replace(
        base,
        node=node,
        stages=(*base.stages, stage),
        notes=(*base.notes, f"{count} corrected input ranges ({stage.comparators} comparators)"),
    )


def corrected_constant_shapes(in_shape: Shape, out_shape: Shape) -> dict[str, Shape]:
    channels = in_shape[-1]
    table = (channels, MAX_CORRECTIONS)
    return {
        "scale": (channels,),
        "shift": (channels,),
        "corr_lo": table,
        "corr_hi": table,
        "corr_level": table,
    }


def validate_corrected(node: CorrectedScaleShift, in_type: FixedType | None) -> None:
    if node.in_shape != node.out_shape:
        raise RtlgenError(f"in_shape {node.in_shape} and out_shape {node.out_shape} differ")
    tensors = (node.scale, node.shift, node.corr_lo, node.corr_hi, node.corr_level)
    if not all(isinstance(t, ir.QTensor) for t in tensors):
        raise RtlgenError("the scale, shift and corrections must be quantized constants")
    if node.acc_type is None or node.out_type is None:
        raise RtlgenError("the accumulator and output types must be set")
    if node.corr_level.type != node.out_type:  # type: ignore[union-attr]
        raise RtlgenError(
            f"corrected levels of type {node.corr_level.type}, output type {node.out_type}"
        )  # type: ignore[union-attr]
    lo, hi, level = (t.mantissa for t in (node.corr_lo, node.corr_hi, node.corr_level))  # type: ignore[union-attr]
    used = lo <= hi
    if np.any(used[:, 1:] & ~used[:, :-1]):
        raise RtlgenError("unused corrections are not at the end of a channel's list")
    if np.any(used & ((level < node.out_type.min_int) | (level > node.out_type.max_int))):
        raise RtlgenError(f"a corrected level lies outside {node.out_type}")
    if in_type is None:
        return
    acc = node.acc_type
    if node.corr_lo.type.frac != in_type.frac or node.corr_hi.type.frac != in_type.frac:  # type: ignore[union-attr]
        raise RtlgenError(f"correction ranges of another type than the input {in_type}")
    if np.any(used & ((lo < in_type.min_int) | (hi > in_type.max_int))):
        raise RtlgenError(f"a corrected range lies outside the input range of {in_type}")
    if np.any(used[:, 1:] & (lo[:, 1:] <= hi[:, :-1])):
        raise RtlgenError("corrected ranges overlap or are not in order")
    for key, frac in (
        ("scale", in_type.frac + node.scale.type.frac),  # type: ignore[union-attr]
        ("shift", node.shift.type.frac),  # type: ignore[union-attr]
    ):
        if not 0 <= acc.frac - frac <= _MAX_SHIFT:
            raise RtlgenError(f"accumulator type {acc} does not fit the {key}")


@register_op
class CorrectedScaleShiftOp(Op):
    name = "scale_shift_corrected"
    node_types = (CorrectedScaleShift,)
    reference = staticmethod(corrected_reference)
    plan = staticmethod(plan_corrected)
    validate = staticmethod(validate_corrected)
    constant_shapes = staticmethod(corrected_constant_shapes)
