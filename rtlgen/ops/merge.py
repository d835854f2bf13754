"""Merge: element-wise ``Add``, ``Subtract``, ``Multiply``, ``Average``, ``Maximum``,
``Minimum`` of two or more same-shape inputs (Keras merge layers; QKeras has none).

Arithmetic (`rtlgen.quant.merge`): binary points aligned exactly, the exact result type by
interval analysis (`merge_acc_type`), then one rounding and saturation into the node's output
type; an average of a non-power-of-two count divides in that same step. By default the output
type is the exact one, so a merge loses nothing (Keras computes in float32: equal to the
exact result while it needs at most 24 significant bits).

Hardware: one `rtlgen.layers.merge.Merge` (a join of all inputs, II = 1) after the graph's
fork/FIFO wiring (`rtlgen.hardware`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from rtlgen import ir
from rtlgen.frontend.keras_config import KerasLayer, LayerOut, WeightSource
from rtlgen.ops.registry import Op, Shape, register_op
from rtlgen.passes import LowerContext
from rtlgen.plan import LayerPlan, PlanContext, StreamFormat
from rtlgen.quant.errors import RtlgenError, UnsupportedError
from rtlgen.quant.fixed import FixedType, Overflow, Rounding
from rtlgen.quant.merge import MergeOp, average_divisor, merge, merge_acc_type


@dataclass(frozen=True, eq=False)
class Merge(ir.Node):
    """``kind`` of the inputs, element by element; every input has ``in_shape``."""

    kind: MergeOp = field(kw_only=True)
    input_count: int = field(kw_only=True)
    rounding: Rounding = field(default=Rounding.CONVERGENT, kw_only=True)
    overflow: Overflow = field(default=Overflow.SATURATE, kw_only=True)

    @property
    def in_shapes(self) -> tuple[Shape, ...]:
        return (self.in_shape,) * self.input_count

    @property
    def op(self) -> str:  # type: ignore[override]
        return self.kind.value.lower()


def read_keras_merge(layer: KerasLayer, shapes: tuple[Shape, ...], source: WeightSource) -> LayerOut:
    kind = MergeOp(layer.class_name)
    if len(shapes) < 2 or (kind is MergeOp.SUBTRACT and len(shapes) != 2):
        wanted = "exactly 2" if kind is MergeOp.SUBTRACT else "at least 2"
        raise UnsupportedError(f"{layer.where}: takes {len(shapes)} inputs ({wanted} needed)")
    if any(s != shapes[0] for s in shapes):
        raise UnsupportedError(
            f"{layer.where}: input shapes {', '.join(map(str, shapes))} differ; rtlgen merges "
            "inputs of one shape (no broadcasting)"
        )
    node = Merge(
        layer.name, shapes[0], shapes[0], kind=kind, input_count=len(shapes), source=layer.name
    )
    return LayerOut([node], shapes[0])


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
    return merge(node.kind, xs, in_types, node.out_type, node.rounding, node.overflow)


def plan_merge(node: Merge, ctx: PlanContext) -> LayerPlan:
    from rtlgen.layers.merge import Merge as MergeComponent

    assert node.out_type is not None
    elements = StreamFormat.of(node.in_shape, ctx.in_type).elements
    component = MergeComponent(
        node.kind, elements, ctx.in_types, node.out_type, node.rounding, node.overflow
    )
    return LayerPlan(node, (component,), out_spacing=ctx.spacing)


def validate_merge(node: Merge, in_type: FixedType | None) -> None:
    if not 2 <= node.input_count <= 64:
        raise RtlgenError(f"a merge of {node.input_count} inputs (2 to 64 supported)")
    if node.kind is MergeOp.SUBTRACT and node.input_count != 2:
        raise RtlgenError("a subtract takes exactly 2 inputs")
    if node.in_shape != node.out_shape:
        raise RtlgenError(f"in_shape {node.in_shape} and out_shape {node.out_shape} differ")


def merge_float(node: Merge, xs: list[np.ndarray]) -> np.ndarray:
    functions = {
        MergeOp.ADD: lambda v: np.sum(v, axis=0),
        MergeOp.SUBTRACT: lambda v: v[0] - v[1],
        MergeOp.MULTIPLY: lambda v: np.prod(v, axis=0),
        MergeOp.AVERAGE: lambda v: np.mean(v, axis=0),
        MergeOp.MAXIMUM: lambda v: np.max(v, axis=0),
        MergeOp.MINIMUM: lambda v: np.min(v, axis=0),
    }
    return functions[node.kind](np.stack(xs))


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
