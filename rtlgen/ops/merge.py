"""Merge: element-wise ``Add``, ``Subtract``, ``Multiply``, ``Average``, ``Maximum``,
``Minimum`` of two or more inputs (Keras merge layers; QKeras has none).

Shapes: equal, or broadcasting as Keras does (aligned on the last axis; an axis of 1
stretches): an operand of one position, (1, 1, C) / (1, C) / (C,), over every position of
an image or sequence (a squeeze-and-excitation scale), and an operand of one channel over
the channels ((H, W, 1), (1, 1, 1)). An operand that spans some positions but not all
((H, 1, C) over (H, W, C)) is refused in one line.

Arithmetic (`rtlgen.quant.merge`): binary points aligned exactly, the exact result type by
interval analysis (`merge_acc_type`), then one rounding and saturation into the node's output
type; an average of a non-power-of-two count divides in that same step. By default the output
type is the exact one, so a merge loses nothing (Keras computes in float32: equal to the
exact result while it needs at most 24 significant bits).

Hardware: one `rtlgen.layers.merge.Merge` (a join of all inputs, II = 1) after the graph's
fork/FIFO wiring (`rtlgen.hardware`). An operand of one position arrives once per sample:
`rtlgen.layers.merge.BroadcastMerge` holds it in a register over the sample's beats; the
other operands' branches then wait for it in FIFOs sized by `rtlgen.plan` (a beat count
per sample differs between the join's inputs: every input is a FIFO candidate).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from rtlgen import ir
from rtlgen.frontend.keras_config import KerasLayer, LayerOut, WeightSource
from rtlgen.ops.registry import Op, Shape, register_op
from rtlgen.passes import LowerContext
from rtlgen.quant.errors import RtlgenError, UnsupportedError
from rtlgen.quant.fixed import FixedType, Overflow, Rounding
from rtlgen.quant.merge import MergeOp, average_divisor, merge, merge_acc_type

if TYPE_CHECKING:
    from rtlgen.plan import LayerPlan, PlanContext


@dataclass(frozen=True, eq=False)
class Merge(ir.Node):
    """``kind`` of the inputs, element by element, in ``in_shape`` (= ``out_shape``).

    ``input_shapes``: each input's own shape where they differ (broadcasting, see
    `broadcast_shape`); empty when every input has ``in_shape``."""

    kind: MergeOp = field(kw_only=True)
    input_count: int = field(kw_only=True)
    rounding: Rounding = field(default=Rounding.CONVERGENT, kw_only=True)
    overflow: Overflow = field(default=Overflow.SATURATE, kw_only=True)
    input_shapes: tuple[Shape, ...] = field(default=(), kw_only=True)

    @property
    def in_shapes(self) -> tuple[Shape, ...]:
        return self.input_shapes or (self.in_shape,) * self.input_count

    @property
    def op(self) -> str:  # type: ignore[override]
        return self.kind.value.lower()


#: what `broadcast_shape` takes, for its one-line refusals
SUPPORTED_BROADCASTS = (
    "supported: equal shapes, an operand of one position ((1, 1, C), (1, C) or (C,)) over "
    "every position, and one channel over the channels"
)


def broadcast_shape(shapes: tuple[Shape, ...]) -> Shape:
    """The shape Keras's merges give inputs of ``shapes``: aligned on their last axis (a
    lower-rank input is read with leading axes of 1, as Keras expands it at axis 1), every
    axis equal or 1 (stretched). Raises `RtlgenError` for shapes that do not broadcast and
    for a broadcast rtlgen does not stream (`SUPPORTED_BROADCASTS`): each input must span
    either every position of the result or one, and either every channel or one."""
    rank = max(len(s) for s in shapes)
    if rank > 3:
        raise RtlgenError(
            f"input shapes {', '.join(map(str, shapes))}: rtlgen streams vectors (N,), "
            "sequences (L, C) and images (H, W, C)"
        )
    padded = [(1,) * (rank - len(s)) + tuple(s) for s in shapes]
    out = []
    for axis, sizes in enumerate(zip(*padded, strict=True)):
        stretched = {d for d in sizes if d != 1}
        if len(stretched) > 1:
            raise RtlgenError(
                f"input shapes {', '.join(map(str, shapes))} do not broadcast (axis {axis + 1}: "
                f"{' vs '.join(map(str, sorted(stretched)))})"
            )
        out.append(stretched.pop() if stretched else 1)
    for shape, p in zip(shapes, padded, strict=True):
        if p[:-1] != tuple(out[:-1]) and any(d != 1 for d in p[:-1]):
            raise RtlgenError(
                f"input shape {shape} spans some positions of the result {tuple(out)} but not "
                f"all; {SUPPORTED_BROADCASTS}"
            )
    return tuple(out)


def read_keras_merge(layer: KerasLayer, shapes: tuple[Shape, ...], source: WeightSource) -> LayerOut:
    kind = MergeOp(layer.class_name)
    if len(shapes) < 2 or (kind is MergeOp.SUBTRACT and len(shapes) != 2):
        wanted = "exactly 2" if kind is MergeOp.SUBTRACT else "at least 2"
        raise UnsupportedError(f"{layer.where}: takes {len(shapes)} inputs ({wanted} needed)")
    try:
        out_shape = broadcast_shape(shapes)
    except RtlgenError as exc:
        raise UnsupportedError(f"{layer.where}: {exc}") from None
    broadcast = tuple(shapes) if any(s != out_shape for s in shapes) else ()
    node = Merge(
        layer.name,
        out_shape,
        out_shape,
        kind=kind,
        input_count=len(shapes),
        input_shapes=broadcast,
        source=layer.name,
    )
    return LayerOut([node], out_shape)


def _expanded(node: Merge, xs) -> list[np.ndarray]:
    """Each input (a batch) with the leading axes of 1 that align it on the result's last
    axis (as Keras expands a lower-rank input), so that numpy broadcasts it as Keras does."""
    rank = len(node.out_shape)
    return [
        np.reshape(x, (x.shape[0], *(1,) * (rank - len(shape)), *shape))
        for x, shape in zip(xs, node.in_shapes, strict=True)
    ]


def lower_merge(node: Merge, ctx: LowerContext) -> Merge:
    """Exact result type (an average of n not a power of two: the sum's type with the
    fraction bits of a mean, as average pooling), unless the layer's result type is given."""
    acc = merge_acc_type(node.kind, ctx.in_types)
    divisor = average_divisor(node.kind, len(ctx.in_types))
    if divisor > 1:
        extra = 2 + math.ceil(math.log2(divisor))
        acc = FixedType(acc.width + extra, acc.frac + extra, acc.signed)
    return node.replace(
        out_type=ctx.explicit.result or acc,
        rounding=ctx.config.rounding,
        overflow=ctx.config.overflow,
    )


def merge_reference(
    node: Merge, xs: tuple[np.ndarray, ...], in_types: tuple[FixedType, ...]
) -> np.ndarray:
    assert node.out_type is not None
    xs = tuple(_expanded(node, xs))
    return merge(node.kind, xs, in_types, node.out_type, node.rounding, node.overflow)


def plan_merge(node: Merge, ctx: PlanContext) -> LayerPlan:
    from rtlgen.layers.merge import Merge as MergeComponent
    from rtlgen.plan import LayerPlan, StreamFormat

    assert node.out_type is not None
    result = StreamFormat.of(node.out_shape, node.out_type)
    formats = [StreamFormat.of(s, t) for s, t in zip(node.in_shapes, ctx.in_types, strict=True)]
    component = MergeComponent(
        node.kind,
        result.elements,
        ctx.in_types,
        node.out_type,
        node.rounding,
        node.overflow,
        lanes=[f.elements for f in formats],
        held=[f.beats < result.beats for f in formats],
        frame_beats=result.beats,
    )
    return LayerPlan(node, (component,), out_spacing=ctx.spacing)


def validate_merge(node: Merge, in_type: FixedType | None) -> None:
    if not 2 <= node.input_count <= 64:
        raise RtlgenError(f"a merge of {node.input_count} inputs (2 to 64 supported)")
    if node.kind is MergeOp.SUBTRACT and node.input_count != 2:
        raise RtlgenError("a subtract takes exactly 2 inputs")
    if node.in_shape != node.out_shape:
        raise RtlgenError(f"in_shape {node.in_shape} and out_shape {node.out_shape} differ")
    if node.input_shapes:
        if len(node.input_shapes) != node.input_count:
            raise RtlgenError(
                f"{len(node.input_shapes)} input shapes for {node.input_count} inputs"
            )
        if any(not s or len(s) > 3 or min(s) < 1 for s in node.input_shapes):
            raise RtlgenError(f"input shapes {list(node.input_shapes)} (ranks 1 to 3)")
        if broadcast_shape(node.input_shapes) != node.out_shape:
            raise RtlgenError(
                f"input shapes {list(node.input_shapes)} do not broadcast to {node.out_shape}"
            )


def merge_float(node: Merge, xs: list[np.ndarray]) -> np.ndarray:
    functions = {
        MergeOp.ADD: lambda v: np.sum(v, axis=0),
        MergeOp.SUBTRACT: lambda v: v[0] - v[1],
        MergeOp.MULTIPLY: lambda v: np.prod(v, axis=0),
        MergeOp.AVERAGE: lambda v: np.mean(v, axis=0),
        MergeOp.MAXIMUM: lambda v: np.max(v, axis=0),
        MergeOp.MINIMUM: lambda v: np.min(v, axis=0),
    }
    return functions[node.kind](np.stack(np.broadcast_arrays(*_expanded(node, xs))))


@register_op
class MergeOpKind(Op):
    name = "merge"
    node_types = (Merge,)
    keras_classes = tuple(kind.value for kind in MergeOp)
    multi_input = True
    from_keras = staticmethod(read_keras_merge)
    lower = staticmethod(lower_merge)
    reference = staticmethod(merge_reference)
    plan = staticmethod(plan_merge)
    validate = staticmethod(validate_merge)
    float_forward = staticmethod(merge_float)
