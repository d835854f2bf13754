"""Cropping: the first/last rows and columns of an image or 1D signal removed
(``Cropping1D``, ``Cropping2D``, channels_last), exactly as Keras.

Hardware: a `Crop` (`rtlgen.layers.spatial`): it takes one beat per cycle and forwards the
kept ones, so its output beats are spaced at least as its input's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from rtlgen import ir
from rtlgen.frontend.keras_config import KerasLayer, LayerOut, WeightSource
from rtlgen.ops.registry import Op, Shape, register_op
from rtlgen.ops.zero_padding import (
    Amounts,
    check_geometry,
    config_amounts,
    lower_same_type,
    spatial_dims,
)
from rtlgen.quant.errors import ModelFileError, RtlgenError
from rtlgen.quant.fixed import FixedType
from rtlgen.quant.spatial import crop, cropped_shape

if TYPE_CHECKING:
    from rtlgen.plan import LayerPlan, PlanContext


@dataclass(frozen=True, eq=False)
class Cropping(ir.Node):
    """(H, W, C) or (L, C) without its first ``top``/last ``bottom`` rows and first
    ``left``/last ``right`` columns; ``cropping``: (top, bottom, left, right), top = bottom
    = 0 for a 1D signal. ``out_type`` is the input's type."""

    cropping: Amounts = field(kw_only=True)

    @property
    def op(self) -> str:  # type: ignore[override]
        return "cropping1d" if len(self.in_shape) == 2 else "cropping2d"


def read_keras_cropping(layer: KerasLayer, shape: Shape, source: WeightSource) -> LayerOut:
    cropping = config_amounts(layer, "cropping", spatial_dims(layer, shape))
    if not any(cropping):
        return LayerOut([], shape)
    try:
        out_shape = cropped_shape(shape, cropping)
    except RtlgenError as exc:
        raise ModelFileError(f"{layer.where}: {exc}") from None
    return LayerOut(
        [Cropping(layer.name, shape, out_shape, cropping=cropping, source=layer.name)], out_shape
    )


def cropping_reference(node: Cropping, x: np.ndarray, in_type: FixedType) -> np.ndarray:
    return crop(x, node.cropping)


def validate_cropping(node: Cropping, in_type: FixedType | None) -> None:
    if len(node.in_shape) not in (2, 3):
        raise RtlgenError(f"cropping needs an image or 1D signal, not {node.in_shape}")
    expected = cropped_shape(node.in_shape, node.cropping)
    check_geometry(node, expected, f"cropping {node.cropping}", in_type)


def plan_cropping(node: Cropping, ctx: PlanContext) -> LayerPlan:
    from rtlgen.layers.common import shape_of
    from rtlgen.layers.spatial import Crop
    from rtlgen.plan import LayerPlan

    height, width, channels = ir.spatial(node.in_shape)
    block = Crop(height, width, channels, node.cropping, shape_of(ctx.in_type))
    # kept beats leave one cycle after they arrive: spaced at least as the input's
    return LayerPlan(
        node, (block,), cycles_per_sample=block.cycles_per_sample, out_spacing=ctx.spacing
    )


@register_op
class CroppingOp(Op):
    name = "cropping"
    node_types = (Cropping,)
    keras_classes = ("Cropping1D", "Cropping2D")
    from_keras = staticmethod(read_keras_cropping)
    lower = staticmethod(lower_same_type)
    reference = staticmethod(cropping_reference)
    # values only move: the same kernel on floats
    float_forward = staticmethod(lambda node, x: cropping_reference(node, x, None))
    validate = staticmethod(validate_cropping)
    plan = staticmethod(plan_cropping)
