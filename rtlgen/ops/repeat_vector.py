"""RepeatVector: a flat vector of F features becomes a sequence of ``n`` equal steps,
(F,) -> (n, F), exactly as Keras (``RepeatVector(n)``; used before recurrent decoders or a
Dense applied per step).

Hardware: the vector arrives as one beat; a `Repeat` (`rtlgen.layers.flatten`) holds it once
and sends it ``n`` times, one beat per cycle: the (n, F) sequence in the order every
sequence travels, one step per beat, as a recurrent layer or a per-step Dense/Conv1D takes
it. ``n`` = 1 changes only the shape (one beat either way): no hardware.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from rtlgen import ir
from rtlgen.frontend.keras_config import (
    KerasLayer,
    LayerOut,
    WeightSource,
    config_int,
    config_value,
    expect_rank,
)
from rtlgen.ops.registry import Op, Shape, register_op
from rtlgen.ops.zero_padding import check_geometry, lower_same_type
from rtlgen.quant.errors import RtlgenError
from rtlgen.quant.fixed import FixedType

if TYPE_CHECKING:
    from rtlgen.plan import LayerPlan, PlanContext


@dataclass(frozen=True, eq=False)
class RepeatVector(ir.Node):
    """(F,) -> (times, F): every step is the input vector. ``out_type`` is the input's."""

    times: int = field(kw_only=True)

    op = "repeat_vector"


def read_keras_repeat_vector(layer: KerasLayer, shape: Shape, source: WeightSource) -> LayerOut:
    expect_rank(layer, shape, 1, "a flat vector (N,) (RepeatVector takes one)")
    times = config_int(layer, "n", config_value(layer, "n"))
    out_shape = (times, shape[0])
    return LayerOut(
        [RepeatVector(layer.name, shape, out_shape, times=times, source=layer.name)], out_shape
    )


def repeat_vector_reference(node: RepeatVector, x: np.ndarray, in_type: FixedType) -> np.ndarray:
    return np.repeat(x[:, None, :], node.times, axis=1)


def repeat_sample_cycles(node: RepeatVector, in_type: FixedType) -> int:
    """The steps leave one per cycle, without input: ``times`` cycles per sample."""
    return node.times


def plan_repeat_vector(node: RepeatVector, ctx: PlanContext) -> LayerPlan:
    from rtlgen.layers.common import shape_of
    from rtlgen.layers.flatten import Repeat
    from rtlgen.plan import LayerPlan

    if node.times == 1:
        return LayerPlan(node, (), out_spacing=ctx.spacing)
    repeat = Repeat(node.times, node.in_shape[0], shape_of(ctx.in_type))
    return LayerPlan(node, (repeat,), cycles_per_sample=node.times, out_spacing=1)


def validate_repeat_vector(node: RepeatVector, in_type: FixedType | None) -> None:
    if len(node.in_shape) != 1:
        raise RtlgenError(f"RepeatVector needs a flat vector, not {node.in_shape}")
    if node.times < 1:
        raise RtlgenError(f"RepeatVector repeats {node.times} times (at least once)")
    check_geometry(node, (node.times, node.in_shape[0]), f"repeating {node.times} times", in_type)


@register_op
class RepeatVectorOp(Op):
    """A Keras ``RepeatVector`` (module doc)."""

    name = "repeat_vector"
    node_types = (RepeatVector,)
    keras_classes = ("RepeatVector",)
    from_keras = staticmethod(read_keras_repeat_vector)
    lower = staticmethod(lower_same_type)
    reference = staticmethod(repeat_vector_reference)
    # values only move: the same kernel on floats
    float_forward = staticmethod(lambda node, x: repeat_vector_reference(node, x, None))
    validate = staticmethod(validate_repeat_vector)
    plan = staticmethod(plan_repeat_vector)
    sample_cycles = staticmethod(repeat_sample_cycles)
