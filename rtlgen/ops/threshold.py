"""Threshold: a quantizing activation decided by integer thresholds (FINN's multi-threshold).

Made by `rtlgen.passes.fuse_thresholds`, never read from a Keras layer directly:
- a float ``BatchNormalization`` followed by a quantizing activation of at most
  `MAX_THRESHOLD_LEVELS` levels (``QDense -> BatchNormalization -> QActivation(
  quantized_relu(4))``, also after a Conv or any fixed-point stream);
- the sign/two-/three-level quantizers as activations (``binary``, ``ternary``,
  ``quantized_bits(1)``), with or without a BN before them.

Precision (`lower_threshold`): `rtlgen.quant.threshold.find_thresholds` computes, per
channel, the least input mantissa reaching each output level by exact search, evaluating the
float model as TensorFlow does (float32 BN, the QKeras quantizer's formula), so every
rounding is decided as in the float model (the scale/shift path quantizes BN's scale and
shift and can flip a rounding). Thresholds that depend on TensorFlow's CPU-dependent float32
``rsqrt`` are counted (``ambiguous``) and warned about.

Saved constants (fixed shapes, so a saved graph can be checked from its shapes): ``weights``
= thresholds ``(C, MAX_THRESHOLD_LEVELS - 1)``, padded with ``in max_int + 1``; ``bias`` =
levels ``(C, MAX_THRESHOLD_LEVELS)`` of the output type, padded with the last level.

Hardware: `rtlgen.layers.threshold.ThresholdBank` (comparators, thermometer count, level);
II = 1, latency 2 (at most 7 thresholds per channel) or 3 (a two-level search, up to 255).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from rtlgen import ir
from rtlgen.ops.registry import Op, Shape, register_op
from rtlgen.passes import LowerContext
from rtlgen.quant.errors import RtlgenError, RtlgenWarning, UnsupportedError
from rtlgen.quant.fixed import FixedType
from rtlgen.quant.threshold import (
    MAX_THRESHOLD_LEVELS,
    FloatBatchNorm,
    StepFunction,
    find_thresholds,
    refuse_data_dependent,
    step_output_type,
)

if TYPE_CHECKING:
    from rtlgen.layers.threshold import ThresholdBank
    from rtlgen.plan import LayerPlan, PlanContext

#: widest input type: the padding value ``max_int + 1`` must itself be a mantissa
MAX_INPUT_WIDTH = 60


@dataclass(frozen=True, eq=False)
class Threshold(ir.Node):
    """``out[..., c] = levels[c, #{k: x[..., c] >= thresholds[c, k]}]``.

    Before lowering: ``out_quantizer`` (the QKeras activation quantizer), ``activation``
    (a float clamp applied before it) and ``bn`` (a float BatchNormalization applied first,
    or None). After: ``weights`` (thresholds) and ``bias`` (levels) as `ir.QTensor`, see the
    module docstring; ``bn`` None; ``ambiguous``: thresholds TensorFlow's rsqrt rounding
    could move.
    """

    out_quantizer: Any = field(default=None, kw_only=True)
    activation: ir.Clamp = field(default=ir.LINEAR, kw_only=True)
    bn: FloatBatchNorm | None = field(default=None, kw_only=True)
    weights: ir.QTensor | None = field(default=None, kw_only=True)
    bias: ir.QTensor | None = field(default=None, kw_only=True)
    ambiguous: int = field(default=0, kw_only=True)

    op = "threshold"

    def describe(self) -> str:
        """What ``rtlgen inspect`` shows in its activation column."""
        q = "" if self.out_quantizer is None else f"{self.out_quantizer}, "
        # the float function's own label (a QONNX float-scale quantizer's is "float scale")
        label = getattr(self.bn, "label", "float BN")
        bn = f"{label}, " if self.bn is not None or "+" in self.source else ""
        n = 0 if self.bias is None else int(np.count_nonzero(np.diff(self.bias.mantissa, axis=1)))
        return f"{bn}{q}{n} thresholds"

    def parameter_count(self) -> int:
        """The thresholds and levels that decide the output (``rtlgen inspect``'s params:
        not the padding to `MAX_THRESHOLD_LEVELS`): per channel its level changes and one
        level more."""
        if self.bias is None:
            return 0
        levels = self.bias.mantissa
        return 2 * int(np.count_nonzero(np.diff(levels, axis=1))) + levels.shape[0]


def threshold_node(
    name: str,
    shape: Shape,
    quantizer: Any,
    source: str,
    *,
    clamp: ir.Clamp = ir.LINEAR,
    bn: FloatBatchNorm | None = None,
    inputs: tuple[str, ...] = (),
) -> Threshold:
    return Threshold(
        name,
        shape,
        shape,
        out_quantizer=quantizer,
        activation=clamp,
        bn=bn,
        source=source,
        inputs=inputs,
    )


def usable(quantizer: Any, max_levels: int = MAX_THRESHOLD_LEVELS) -> bool:
    """A quantizer a threshold node implements with at most ``max_levels`` levels."""
    t = None if quantizer is None else step_output_type(quantizer)
    return t is not None and t.max_int - t.min_int + 1 <= max_levels


# ---------------------------------------------------------------------------------------
# precision
# ---------------------------------------------------------------------------------------
def lower_threshold(node: Threshold, ctx: LowerContext) -> Threshold:
    where = f"layer '{node.source or node.name}'"
    q = node.out_quantizer
    if q is None:
        raise RtlgenError(f"{where}: a threshold activation needs its quantizer")
    refuse_data_dependent(q, where)
    out_type = step_output_type(q)
    if out_type is None or out_type.max_int - out_type.min_int + 1 > MAX_THRESHOLD_LEVELS:
        raise UnsupportedError(
            f"{where}: {q} is not a threshold activation of at most {MAX_THRESHOLD_LEVELS} levels"
        )
    in_type = ctx.in_type
    if in_type.width > MAX_INPUT_WIDTH:
        raise UnsupportedError(
            f"{where}: a {in_type.width}-bit input ({in_type}) is wider than the "
            f"{MAX_INPUT_WIDTH} bits a threshold activation takes"
        )
    channels = node.in_shape[-1]
    f = StepFunction(in_type, q, out_type, node.activation, node.bn)
    try:
        found = find_thresholds(f, channels)
    except RtlgenError as exc:
        raise type(exc)(f"{where}: {exc}") from None
    if found.ambiguous:
        warnings.warn(
            f"{where}: {found.ambiguous} of its thresholds depend on how the float model's "
            "framework rounds float32 (r)sqrt on the CPU that runs it (within 2 ulps); the "
            "correctly rounded value decides them here",
            RtlgenWarning,
            stacklevel=2,
        )
    thresholds, levels = pad(found.thresholds, found.levels, in_type)
    t_type = FixedType.covering(int(thresholds.min()), int(thresholds.max()), in_type.frac)
    return node.replace(
        bn=None,
        weights=ir.QTensor(thresholds, t_type),
        bias=ir.QTensor(levels, out_type),
        out_type=out_type,
        ambiguous=found.ambiguous,
    )


def pad(thresholds: np.ndarray, levels: np.ndarray, in_type: FixedType):
    """Thresholds and levels padded to the saved shapes (`MAX_THRESHOLD_LEVELS`)."""
    channels, n = thresholds.shape
    out_t = np.full((channels, MAX_THRESHOLD_LEVELS - 1), in_type.max_int + 1, np.int64)
    out_t[:, :n] = thresholds
    out_l = np.repeat(levels[:, -1:], MAX_THRESHOLD_LEVELS, axis=1)
    out_l[:, : n + 1] = levels
    return out_t, out_l


def unpadded(node: Threshold, in_type: FixedType) -> tuple[list[list[int]], list[list[int]]]:
    """Per channel: the real thresholds and the levels (the hardware's view)."""
    assert node.weights is not None and node.bias is not None
    ts_all, ls_all = node.weights.mantissa, node.bias.mantissa
    thresholds, levels = [], []
    for ts, ls in zip(ts_all, ls_all, strict=True):
        real = [int(t) for t in ts if t <= in_type.max_int]
        thresholds.append(real)
        levels.append([int(v) for v in ls[: len(real) + 1]])
    return thresholds, levels


# ---------------------------------------------------------------------------------------
# reference, hardware, checks
# ---------------------------------------------------------------------------------------
def threshold_reference(node: Threshold, x: np.ndarray, in_type: FixedType) -> np.ndarray:
    assert node.weights is not None and node.bias is not None
    ts, ls = node.weights.mantissa, node.bias.mantissa
    x = np.asarray(x, dtype=np.int64)
    flat = x.reshape(-1, x.shape[-1])
    out = np.empty_like(flat)
    for c in range(flat.shape[1]):
        count = np.searchsorted(ts[c], flat[:, c], side="right")
        out[:, c] = ls[c][count]
    return out.reshape(x.shape)


def plan_threshold(node: Threshold, ctx: PlanContext) -> LayerPlan:
    from rtlgen.layers.threshold import ThresholdBank
    from rtlgen.plan import LayerPlan, StreamFormat, kept_while_planning

    assert node.out_type is not None
    lanes = StreamFormat.of(node.in_shape, ctx.in_type).elements

    def bank_of_node() -> ThresholdBank:
        thresholds, levels = unpadded(node, ctx.in_type)
        if len(node.in_shape) == 1:  # a vector: one element per channel, all in one beat
            assert lanes == len(thresholds)
        return ThresholdBank(ctx.in_type, node.out_type, thresholds, levels)

    bank = kept_while_planning(("threshold bank", node.name, ctx.in_type), bank_of_node)
    notes = (f"{bank.comparators} comparators",)
    fmt = ctx.in_format
    if fmt is not None and fmt.beats > 1 and len(node.in_shape) == 1:
        return _plan_chunked(node, ctx, bank, notes)
    return LayerPlan(node, (bank,), out_spacing=ctx.spacing, notes=notes)


def _plan_chunked(node: Threshold, ctx: PlanContext, bank, notes) -> LayerPlan:
    """A vector arriving in beats of consecutive elements (a dense's result beats): a
    `BeatThresholdBank` (one beat's lanes, thresholds picked by the beat; cheaper than the
    whole bank's comparators, `ChunkedThresholdBank`, at every beat count measured) passing
    them on to a dense that adds each as it arrives, or gathering them (`Deserialize`) for
    anything else."""
    from rtlgen.layers.common import shape_of
    from rtlgen.layers.flatten import Deserialize
    from rtlgen.layers.threshold import BeatThresholdBank
    from rtlgen.plan import LayerPlan, StreamFormat, kept_while_planning

    fmt = ctx.in_format
    assert fmt is not None and node.out_type is not None
    chunked = kept_while_planning(
        ("beat threshold bank", node.name, ctx.in_type, fmt.beats),
        lambda: BeatThresholdBank(bank, fmt.beats),
    )
    notes = (
        f"{chunked.comparators} comparators, thresholds picked by the beat",
        f"{fmt.beats} beats of {fmt.elements}",
    )
    if not ctx.is_output and len(ctx.consumers) == 1 and ctx.consumers[0].op == "dense":
        out = StreamFormat(fmt.beats, fmt.elements, node.out_type)
        return LayerPlan(node, (chunked,), out_spacing=ctx.spacing, notes=notes, out_format=out)
    gather = Deserialize(fmt.beats, fmt.elements, shape_of(node.out_type))
    return LayerPlan(
        node,
        (chunked, gather),
        out_spacing=max(ctx.spacing * fmt.beats, ctx.sample_cycles),
        notes=notes,
    )


def threshold_constant_shapes(in_shape: Shape, out_shape: Shape) -> dict[str, Shape]:
    return {
        "weights": (in_shape[-1], MAX_THRESHOLD_LEVELS - 1),
        "bias": (in_shape[-1], MAX_THRESHOLD_LEVELS),
    }


def validate_threshold(node: Threshold, in_type: FixedType | None) -> None:
    if node.in_shape != node.out_shape:
        raise RtlgenError(f"in_shape {node.in_shape} and out_shape {node.out_shape} differ")
    if node.weights is None or node.bias is None or node.out_type is None:
        raise RtlgenError("the thresholds, the levels and the output type must be set")
    if node.bias.type != node.out_type:
        raise RtlgenError(f"levels of type {node.bias.type}, output type {node.out_type}")
    if node.bn is not None:
        raise RtlgenError("a lowered threshold node has no float BatchNormalization")
    ts, ls = node.weights.mantissa, node.bias.mantissa
    if ts.shape[1] and np.any(np.diff(ts, axis=1) < 0):
        raise RtlgenError("thresholds are not increasing")
    if in_type is not None:
        if in_type.width > MAX_INPUT_WIDTH or node.weights.type.frac != in_type.frac:
            raise RtlgenError(f"thresholds of type {node.weights.type} for input {in_type}")
        if np.any(ts <= in_type.min_int) or np.any(ts > in_type.max_int + 1):
            raise RtlgenError(f"a threshold lies outside the input range of {in_type}")
        real = ts <= in_type.max_int
        if np.any(np.diff(ts, axis=1)[real[:, 1:]] == 0):
            raise RtlgenError("thresholds repeat")
        if np.any(real[:, 1:] & ~real[:, :-1]):
            raise RtlgenError("padding is not at the end of a channel's thresholds")
        count = real.sum(axis=1)
        for c in range(ls.shape[0]):
            if np.any(ls[c, count[c] + 1 :] != ls[c, count[c]]):
                raise RtlgenError("padded levels do not repeat the last level")


def threshold_float(node: Threshold, x: np.ndarray) -> np.ndarray:
    """The unlowered node on real inputs (calibration): BN, clamp, the quantizer."""
    y = np.asarray(x, dtype=np.float32)
    if node.bn is not None:
        y = node.bn.apply(y)
    lo, hi = node.activation.lo, node.activation.hi
    if lo is not None:
        y = np.maximum(y, np.float32(lo))
    if hi is not None:
        y = np.minimum(y, np.float32(hi))
    return node.out_quantizer.reference(y)


@register_op
class ThresholdOp(Op):
    name = "threshold"
    node_types = (Threshold,)
    lower = staticmethod(lower_threshold)
    reference = staticmethod(threshold_reference)
    plan = staticmethod(plan_threshold)
    validate = staticmethod(validate_threshold)
    constant_shapes = staticmethod(threshold_constant_shapes)
    float_forward = staticmethod(threshold_float)
