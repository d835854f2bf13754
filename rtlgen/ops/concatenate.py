"""Concatenate: inputs joined along the last axis (channels of images and sequences, the
elements of flat vectors): Keras ``Concatenate``.

Every input moves exactly to one common type (`rtlgen.quant.merge.concat_type`: the largest
fraction, enough integer bits for all); nothing is rounded. Hardware: a
`rtlgen.layers.merge.Concatenate` join (one beat from each input, II = 1, latency 1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from rtlgen import ir
from rtlgen.frontend.keras_config import KerasLayer, LayerOut, WeightSource
from rtlgen.ops.registry import Op, Shape, register_op
from rtlgen.passes import LowerContext
from rtlgen.quant.errors import RtlgenError, UnsupportedError
from rtlgen.quant.fixed import FixedType
from rtlgen.quant.merge import concat_type, concatenate

if TYPE_CHECKING:
    from rtlgen.plan import LayerPlan, PlanContext

#: pipeline registers of the join (0 would leave the ready/valid AND of all inputs
#: combinational into the next layer)
CONCAT_LATENCY = 1


@dataclass(frozen=True, eq=False)
class Concat(ir.Node):
    """The inputs' last axes side by side; ``input_sizes``: each input's last dimension."""

    input_sizes: tuple[int, ...] = field(kw_only=True)

    @property
    def in_shapes(self) -> tuple[Shape, ...]:
        return tuple((*self.in_shape[:-1], size) for size in self.input_sizes)

    op = "concatenate"


def read_keras_concatenate(
    layer: KerasLayer, shapes: tuple[Shape, ...], source: WeightSource
) -> LayerOut:
    if len(shapes) < 2:
        raise UnsupportedError(f"{layer.where}: takes {len(shapes)} inputs (at least 2 needed)")
    rank = len(shapes[0])
    axis = layer.config.get("axis", -1)
    if isinstance(axis, bool) or not isinstance(axis, int) or axis not in (-1, rank):
        raise UnsupportedError(
            f"{layer.where}: axis={axis!r} is not supported (only the last axis, -1 or {rank})"
        )
    if any(len(s) != rank or s[:-1] != shapes[0][:-1] for s in shapes):
        raise UnsupportedError(
            f"{layer.where}: input shapes {', '.join(map(str, shapes))} differ before the last axis"
        )
    sizes = tuple(s[-1] for s in shapes)
    out_shape = (*shapes[0][:-1], sum(sizes))
    node = Concat(layer.name, shapes[0], out_shape, input_sizes=sizes, source=layer.name)
    return LayerOut([node], out_shape)


def lower_concat(node: Concat, ctx: LowerContext) -> Concat:
    exact = concat_type(ctx.in_types)
    if ctx.explicit.result is not None and ctx.explicit.result != exact:
        raise UnsupportedError(
            f"layer '{node.name}': a concatenation keeps its inputs exact ({exact}); its result "
            f"type cannot be set to {ctx.explicit.result}"
        )
    return node.replace(out_type=exact)


def concat_reference(
    node: Concat, xs: tuple[np.ndarray, ...], in_types: tuple[FixedType, ...]
) -> np.ndarray:
    assert node.out_type is not None
    return concatenate(xs, in_types, node.out_type, axis=-1)


def plan_concat(node: Concat, ctx: PlanContext) -> LayerPlan:
    from rtlgen.layers.merge import Concatenate
    from rtlgen.plan import LayerPlan, StreamFormat

    formats = [
        (StreamFormat.of(shape, t).elements, t)
        for shape, t in zip(node.in_shapes, ctx.in_types, strict=True)
    ]
    component = Concatenate(formats, node.out_type, latency=CONCAT_LATENCY)
    return LayerPlan(node, (component,), out_spacing=ctx.spacing)


def validate_concat(node: Concat, in_type: FixedType | None) -> None:
    if not 2 <= len(node.input_sizes) <= 64 or min(node.input_sizes) < 1:
        raise RtlgenError(f"input sizes {node.input_sizes} (2 to 64 inputs of >= 1 element)")
    if node.out_shape != (*node.in_shape[:-1], sum(node.input_sizes)):
        raise RtlgenError(
            f"out_shape {node.out_shape} is not the concatenation of {node.in_shapes}"
        )


@register_op
class ConcatenateOp(Op):
    name = "concatenate"
    node_types = (Concat,)
    keras_classes = ("Concatenate",)
    multi_input = True
    from_keras = staticmethod(read_keras_concatenate)
    lower = staticmethod(lower_concat)
    reference = staticmethod(concat_reference)
    plan = staticmethod(plan_concat)
    validate = staticmethod(validate_concat)
    float_forward = staticmethod(lambda node, xs: np.concatenate(xs, axis=-1))
