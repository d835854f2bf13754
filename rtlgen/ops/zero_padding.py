"""Zero padding: rows and columns of zeros around an image or a 1D signal (``ZeroPadding1D``,
``ZeroPadding2D``, channels_last), exactly as Keras: mantissa 0 in the input's type.

Hardware: a `ZeroPad` (`rtlgen.layers.spatial`): it walks the padded grid one position per
cycle, so a padded sample takes ``(H + top + bottom) * (W + left + right)`` cycles and its
beats come out back to back (spacing 1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from rtlgen import ir
from rtlgen.frontend.keras_config import (
    KerasLayer,
    LayerOut,
    WeightSource,
    check_channels_last,
    config_value,
    expect_rank,
)
from rtlgen.frontend.limits import MAX_DIMENSION
from rtlgen.ops.registry import Op, Shape, register_op
from rtlgen.passes import LowerContext
from rtlgen.quant.errors import ModelFileError, RtlgenError
from rtlgen.quant.fixed import FixedType
from rtlgen.quant.spatial import padded_shape, zero_pad

if TYPE_CHECKING:
    from rtlgen.plan import LayerPlan, PlanContext

Amounts = tuple[int, int, int, int]


@dataclass(frozen=True, eq=False)
class ZeroPadding(ir.Node):
    """Zero rows/columns around (H, W, C) or (L, C); ``padding``: (top, bottom, left,
    right), top = bottom = 0 for a 1D signal. ``out_type`` is the input's type."""

    padding: Amounts = field(kw_only=True)

    @property
    def op(self) -> str:  # type: ignore[override]
        return "zero_padding1d" if len(self.in_shape) == 2 else "zero_padding2d"


# ---------------------------------------------------------------------------------------
# front-end
# ---------------------------------------------------------------------------------------
def _amount(layer: KerasLayer, key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_DIMENSION:
        raise ModelFileError(
            f"{layer.where}: '{key}' holds {value!r}, not an integer in 0..{MAX_DIMENSION}"
        )
    return value


def config_amounts(layer: KerasLayer, key: str, dims: int) -> Amounts:
    """(top, bottom, left, right) of a Keras padding/cropping option: for 2D an int (all
    four), ``(rows, cols)`` (symmetric) or ``((top, bottom), (left, right))``; for 1D an int
    or ``(left, right)`` (top = bottom = 0)."""
    value = config_value(layer, key)

    def pair(v: Any) -> tuple[int, int]:
        if isinstance(v, int) and not isinstance(v, bool):
            return _amount(layer, key, v), _amount(layer, key, v)
        if isinstance(v, list | tuple) and len(v) == 2:
            return _amount(layer, key, v[0]), _amount(layer, key, v[1])
        raise ModelFileError(
            f"{layer.where}: '{key}' = {value!r} is not an integer or a pair of integers"
        )

    if dims == 1:
        return (0, 0, *pair(value))
    if isinstance(value, list | tuple) and len(value) == 2:
        if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            rows, cols = (_amount(layer, key, v) for v in value)
            return rows, rows, cols, cols
        return (*pair(value[0]), *pair(value[1]))
    if isinstance(value, int) and not isinstance(value, bool):
        every = _amount(layer, key, value)
        return every, every, every, every
    raise ModelFileError(
        f"{layer.where}: '{key}' = {value!r} is not an integer, (rows, cols) or "
        "((top, bottom), (left, right))"
    )


def spatial_dims(layer: KerasLayer, shape: Shape) -> int:
    """1 or 2 by the class name's suffix; the input must be (L, C) or (H, W, C)."""
    dims = 1 if layer.class_name.endswith("1D") else 2
    expect_rank(layer, shape, dims + 1, "a 1D signal (L, C)" if dims == 1 else "an image (H, W, C)")
    check_channels_last(layer)
    return dims


def read_keras_zero_padding(layer: KerasLayer, shape: Shape, source: WeightSource) -> LayerOut:
    padding = config_amounts(layer, "padding", spatial_dims(layer, shape))
    if not any(padding):
        return LayerOut([], shape)
    out_shape = padded_shape(shape, padding)
    return LayerOut(
        [ZeroPadding(layer.name, shape, out_shape, padding=padding, source=layer.name)], out_shape
    )


# ---------------------------------------------------------------------------------------
# types, reference, checks
# ---------------------------------------------------------------------------------------
def lower_same_type(node: Any, ctx: LowerContext) -> ir.Node:
    """Values move and never change: the output type is the input's."""
    return node.replace(out_type=ctx.in_type)


def zero_padding_reference(node: ZeroPadding, x: np.ndarray, in_type: FixedType) -> np.ndarray:
    return zero_pad(x, node.padding)


def check_geometry(node: ir.Node, expected: Shape, what: str, in_type: FixedType | None) -> None:
    """One-line errors unless ``out_shape`` is ``expected`` and the type is the input's."""
    if tuple(node.out_shape) != tuple(expected):
        raise RtlgenError(f"{what} maps {node.in_shape} to {expected}, not {node.out_shape}")
    if in_type is not None and node.out_type != in_type:
        raise RtlgenError(f"output type {node.out_type} is not the input type {in_type}")


def validate_zero_padding(node: ZeroPadding, in_type: FixedType | None) -> None:
    if len(node.in_shape) not in (2, 3):
        raise RtlgenError(f"zero padding needs an image or 1D signal, not {node.in_shape}")
    expected = padded_shape(node.in_shape, node.padding)
    check_geometry(node, expected, f"padding {node.padding}", in_type)


# ---------------------------------------------------------------------------------------
# hardware
# ---------------------------------------------------------------------------------------
def output_positions(node: ir.Node, in_type: FixedType) -> int:
    """Cycles per sample of a block emitting one output position per cycle."""
    height, width, _ = ir.spatial(node.out_shape)
    return height * width


def plan_zero_padding(node: ZeroPadding, ctx: PlanContext) -> LayerPlan:
    from rtlgen.layers.common import shape_of
    from rtlgen.layers.spatial import ZeroPad
    from rtlgen.plan import LayerPlan

    height, width, channels = ir.spatial(node.in_shape)
    pad = ZeroPad(height, width, channels, node.padding, shape_of(ctx.in_type))
    # padding positions are emitted one per cycle without input
    return LayerPlan(node, (pad,), cycles_per_sample=pad.cycles_per_sample, out_spacing=1)


@register_op
class ZeroPaddingOp(Op):
    name = "zero_padding"
    node_types = (ZeroPadding,)
    keras_classes = ("ZeroPadding1D", "ZeroPadding2D")
    from_keras = staticmethod(read_keras_zero_padding)
    lower = staticmethod(lower_same_type)
    reference = staticmethod(zero_padding_reference)
    # values only move: the same kernel on floats
    float_forward = staticmethod(lambda node, x: zero_padding_reference(node, x, None))
    validate = staticmethod(validate_zero_padding)
    plan = staticmethod(plan_zero_padding)
    sample_cycles = staticmethod(output_positions)
