"""Reshape and Permute.

rtlgen streams a tensor in row-major, channels-last order, one position (its last axis) per
beat. A Keras ``Reshape`` never changes that element order, only how the elements group into
beats, so every reshape streams: to the same shape it is nothing, to a flat vector a
`Flatten` (`rtlgen.ops.flatten`), between shapes with the same last axis nothing but the
shape, and otherwise a re-beating node (gather a sample's beats into one vector, split it
into beats of the new last axis). A ``Permute`` of a rank-2 or rank-3 tensor reorders the
elements: the sample is gathered into one vector (if it is more than one beat), its elements
reordered by wiring (`Permutation`: a constant permutation, no logic) and split into the
beats of the new shape (if more than one); one that moves only axes of size 1 keeps the
element order and is a reshape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from rtlgen import ir
from rtlgen.frontend.keras_config import KerasLayer, LayerOut, WeightSource, config_value
from rtlgen.frontend.limits import element_count
from rtlgen.ops.flatten import read_keras_flatten
from rtlgen.ops.registry import Op, Shape, register_op
from rtlgen.passes import LowerContext
from rtlgen.quant.errors import ModelFileError, RtlgenError, UnsupportedError
from rtlgen.quant.fixed import FixedType

if TYPE_CHECKING:
    from rtlgen.plan import LayerPlan, PlanContext, StreamFormat


@dataclass(frozen=True, eq=False)
class Reshape(ir.Node):
    """The same elements in the same order, ``in_shape`` -> ``out_shape`` (ranks 1 to 3)."""

    op = "reshape"


def read_keras_reshape(layer: KerasLayer, shape: Shape, source: WeightSource) -> LayerOut:
    target = config_value(layer, "target_shape")
    if (
        not isinstance(target, list | tuple)
        or not all(isinstance(d, int) and not isinstance(d, bool) for d in target)
        or any(d < 1 and d != -1 for d in target)
        or list(target).count(-1) > 1
    ):
        raise ModelFileError(
            f"{layer.where}: target_shape {target!r} is not a list of positive integers "
            "(with at most one -1)"
        )
    size = element_count(shape)
    known = element_count(d for d in target if d != -1)
    if known == 0 or size % known:
        raise ModelFileError(
            f"{layer.where}: target_shape {tuple(target)} does not hold {size} elements"
        )
    dims = tuple(size // known if d == -1 else d for d in target)
    if element_count(dims) != size:
        raise ModelFileError(
            f"{layer.where}: reshape {shape} -> {dims} changes the number of elements"
        )
    if dims == shape:
        return LayerOut([], shape)
    if len(dims) == 1:
        return read_keras_flatten(layer, shape, source)
    if len(dims) > 3:
        raise UnsupportedError(
            f"{layer.where}: reshape to {dims}: rtlgen streams vectors (N,), sequences (L, C) "
            "and images (H, W, C)"
        )
    return LayerOut([Reshape(layer.name, shape, dims, source=layer.name)], dims)


def read_keras_permute(layer: KerasLayer, shape: Shape, source: WeightSource) -> LayerOut:
    dims = config_value(layer, "dims")
    if (
        not isinstance(dims, list | tuple)
        or not all(isinstance(d, int) and not isinstance(d, bool) for d in dims)
        or sorted(dims) != list(range(1, len(shape) + 1))
    ):
        raise ModelFileError(
            f"{layer.where}: dims {dims!r} is not a permutation of 1..{len(shape)}"
        )
    if len(shape) > 3:
        raise UnsupportedError(
            f"{layer.where}: Permute{tuple(dims)} of a rank-{len(shape)} tensor {shape} "
            "(supported: sequences (L, C) and images (H, W, C))"
        )
    axes = tuple(d - 1 for d in dims)
    out_shape = tuple(shape[a] for a in axes)
    if out_shape == shape and axes == tuple(range(len(shape))):
        return LayerOut([], shape)
    if np.array_equal(permutation_order(shape, axes), np.arange(element_count(shape))):
        # only axes of size 1 move: the same element order, another grouping into beats
        if out_shape == shape:
            return LayerOut([], shape)
        return LayerOut([Reshape(layer.name, shape, out_shape, source=layer.name)], out_shape)
    return LayerOut(
        [Permute(layer.name, shape, out_shape, axes=axes, source=layer.name)], out_shape
    )


def lower_reshape(node: Reshape, ctx: LowerContext) -> Reshape:
    return node.replace(out_type=ctx.in_type)


def reshape_reference(node: Reshape, x: np.ndarray, in_type: FixedType) -> np.ndarray:
    return x.reshape((x.shape[0], *node.out_shape))


def _formats(node: Reshape, t: FixedType) -> tuple[StreamFormat, StreamFormat]:
    from rtlgen.plan import StreamFormat

    return StreamFormat.of(node.in_shape, t), StreamFormat.of(node.out_shape, t)


def reshape_sample_cycles(node: Reshape, in_type: FixedType) -> int:
    """Splitting a vector into beats emits one beat per cycle without input."""
    fmt_in, fmt_out = _formats(node, in_type)
    return fmt_out.beats if fmt_out.elements != fmt_in.elements else 0


def plan_reshape(node: Reshape, ctx: PlanContext) -> LayerPlan:
    """Same beats: nothing. Otherwise gather the sample into one vector (unless it already
    is one) and split it into beats of the new last axis (unless it stays one)."""
    from rtlgen.layers.common import shape_of
    from rtlgen.layers.flatten import Deserialize, Serialize
    from rtlgen.plan import LayerPlan

    fmt_in, fmt_out = _formats(node, ctx.in_type)
    if fmt_in.elements == fmt_out.elements:
        return LayerPlan(node, (), out_spacing=ctx.spacing)
    element = shape_of(ctx.in_type)
    stages = []
    spacing = ctx.spacing
    if fmt_in.beats > 1:
        stages.append(Deserialize(fmt_in.beats, fmt_in.elements, element))
        spacing = max(ctx.spacing * fmt_in.beats, ctx.sample_cycles)
    if fmt_out.beats > 1:
        stages.append(Serialize(fmt_out.beats, fmt_out.elements, element))
        spacing = 1
    return LayerPlan(node, tuple(stages), out_spacing=spacing)


def validate_reshape(node: Reshape, in_type: FixedType | None) -> None:
    if element_count(node.in_shape) != element_count(node.out_shape):
        raise RtlgenError(f"reshape {node.in_shape} -> {node.out_shape} changes the element count")


@register_op
class ReshapeOp(Op):
    name = "reshape"
    node_types = (Reshape,)
    keras_classes = ("Reshape",)
    from_keras = staticmethod(read_keras_reshape)
    lower = staticmethod(lower_reshape)
    reference = staticmethod(reshape_reference)
    plan = staticmethod(plan_reshape)
    sample_cycles = staticmethod(reshape_sample_cycles)
    validate = staticmethod(validate_reshape)
    float_forward = staticmethod(lambda node, x: x.reshape((x.shape[0], *node.out_shape)))


@dataclass(frozen=True, eq=False)
class Permute(ir.Node):
    """``out[i_0, .., i_r] = in[j]`` with ``j[axes[k]] = i_k``: numpy's ``transpose`` of a
    sample by ``axes`` (0-based, Keras's ``dims`` minus 1), ranks 2 and 3."""

    axes: tuple[int, ...] = field(kw_only=True)

    op = "permute"


def permutation_order(in_shape: Shape, axes: tuple[int, ...]) -> np.ndarray:
    """Element ``k`` of the permuted sample, flattened row-major, is element ``order[k]``
    of the input sample flattened row-major."""
    return np.arange(element_count(in_shape)).reshape(in_shape).transpose(axes).reshape(-1)


def permute_reference(node: Permute, x: np.ndarray, in_type: FixedType) -> np.ndarray:
    return np.ascontiguousarray(x.transpose((0, *(a + 1 for a in node.axes))))


def lower_permute(node: Permute, ctx: LowerContext) -> Permute:
    return node.replace(out_type=ctx.in_type)


def permute_sample_cycles(node: Permute, in_type: FixedType) -> int:
    """Splitting the permuted vector into beats emits one beat per cycle without input."""
    from rtlgen.plan import StreamFormat

    fmt_out = StreamFormat.of(node.out_shape, in_type)
    return fmt_out.beats if fmt_out.beats > 1 else 0


def plan_permute(node: Permute, ctx: PlanContext) -> LayerPlan:
    """Gather the sample into one vector (unless it is one beat), reorder its elements by
    wiring, split it into beats of the new last axis (unless it is one beat)."""
    from rtlgen.layers.common import shape_of
    from rtlgen.layers.flatten import Deserialize, Permutation, Serialize
    from rtlgen.plan import LayerPlan, StreamFormat

    fmt_in = StreamFormat.of(node.in_shape, ctx.in_type)
    fmt_out = StreamFormat.of(node.out_shape, ctx.in_type)
    element = shape_of(ctx.in_type)
    stages: list = []
    spacing = ctx.spacing
    if fmt_in.beats > 1:
        stages.append(Deserialize(fmt_in.beats, fmt_in.elements, element))
        spacing = max(ctx.spacing * fmt_in.beats, ctx.sample_cycles)
    stages.append(Permutation(permutation_order(node.in_shape, node.axes), element))
    if fmt_out.beats > 1:
        stages.append(Serialize(fmt_out.beats, fmt_out.elements, element))
        spacing = 1
    return LayerPlan(node, tuple(stages), out_spacing=spacing)


def validate_permute(node: Permute, in_type: FixedType | None) -> None:
    rank = len(node.in_shape)
    if rank not in (2, 3) or sorted(node.axes) != list(range(rank)):
        raise RtlgenError(f"axes {node.axes} are not a permutation of a rank-2 or rank-3 shape")
    if node.out_shape != tuple(node.in_shape[a] for a in node.axes):
        raise RtlgenError(
            f"permuting {node.in_shape} by {node.axes} does not give {node.out_shape}"
        )


@register_op
class PermuteOp(Op):
    """A Keras ``Permute`` (module doc)."""

    name = "permute"
    node_types = (Permute,)
    keras_classes = ("Permute",)
    from_keras = staticmethod(read_keras_permute)
    lower = staticmethod(lower_permute)
    reference = staticmethod(permute_reference)
    plan = staticmethod(plan_permute)
    sample_cycles = staticmethod(permute_sample_cycles)
    validate = staticmethod(validate_permute)
    float_forward = staticmethod(lambda node, x: np.transpose(x, (0, *(a + 1 for a in node.axes))))
