"""Flatten: (H, W, C) or (L, C) -> (N,) in row-major, channels-last order (``Flatten``; a
``Reshape`` to a flat vector becomes one too, `rtlgen.ops.reshape`).

Hardware: nothing for a vector; else a `Deserialize` that gathers the beats of a sample into
one vector beat, or nothing where its one consumer is a dense that adds each beat to its
partial sums as it arrives (`rtlgen.ops.matvec.stream_steps`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from rtlgen import ir
from rtlgen.frontend.keras_config import (
    KerasLayer,
    LayerOut,
    WeightSource,
    check_channels_last,
)
from rtlgen.frontend.limits import element_count
from rtlgen.ops.registry import Op, Shape, register_op
from rtlgen.passes import LowerContext
from rtlgen.quant.fixed import FixedType

if TYPE_CHECKING:
    from rtlgen.plan import LayerPlan, PlanContext, StreamFormat


def read_keras_flatten(layer: KerasLayer, shape: Shape, source: WeightSource) -> LayerOut:
    check_channels_last(layer)
    if len(shape) == 1:
        return LayerOut([], shape)
    flat = (element_count(shape),)
    return LayerOut([ir.Flatten(layer.name, shape, flat, source=layer.name)], flat)


def flatten_reference(node: ir.Flatten, x: np.ndarray, in_type: FixedType) -> np.ndarray:
    return x.reshape(x.shape[0], -1)


def plan_flatten(node: ir.Flatten, ctx: PlanContext) -> LayerPlan:
    from rtlgen.layers.common import shape_of
    from rtlgen.layers.flatten import Deserialize
    from rtlgen.plan import LayerPlan, StreamFormat

    fmt_in = StreamFormat.of(node.in_shape, ctx.in_type)
    if fmt_in.beats == 1:
        return LayerPlan(node, (), out_spacing=ctx.spacing)
    if _streamed(node, ctx, fmt_in):
        # the dense after it adds each beat to its partial sums as it arrives
        return LayerPlan(node, (), out_spacing=ctx.spacing, out_format=fmt_in)
    # one vector per sample: samples are at least `sample_cycles` apart
    return LayerPlan(
        node,
        (Deserialize(fmt_in.beats, fmt_in.elements, shape_of(ctx.in_type)),),
        out_spacing=max(ctx.spacing * fmt_in.beats, ctx.sample_cycles),
    )


def _streamed(node: ir.Flatten, ctx: PlanContext, fmt_in: StreamFormat) -> bool:
    """Whether the flatten passes its beats on: its one consumer is a dense that takes them
    as they arrive (`rtlgen.ops.matvec.stream_steps`)."""
    from rtlgen.ops.matvec import stream_steps
    from rtlgen.plan import weights_matrix

    if ctx.is_output or len(ctx.consumers) != 1 or not isinstance(ctx.consumers[0], ir.Dense):
        return False
    dense = ctx.consumers[0]
    weights, _ = weights_matrix(dense, ctx.in_type)
    steps = stream_steps(dense, weights, fmt_in, ctx.spacing, ctx.sample_cycles, ctx.options)
    return steps is not None


def lower_flatten(node: ir.Flatten, ctx: LowerContext) -> ir.Flatten:
    return node.replace(out_type=ctx.in_type)


@register_op
class FlattenOp(Op):
    name = "flatten"
    node_types = (ir.Flatten,)
    keras_classes = ("Flatten",)
    from_keras = staticmethod(read_keras_flatten)
    reference = staticmethod(flatten_reference)
    float_forward = staticmethod(lambda node, x: x.reshape(len(x), -1))
    plan = staticmethod(plan_flatten)
    lower = staticmethod(lower_flatten)
