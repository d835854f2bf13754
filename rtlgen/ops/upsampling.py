"""Nearest-neighbour upsampling: every row repeated ``size_h`` times and every column
``size_w`` times (``UpSampling1D``, ``UpSampling2D`` with ``interpolation='nearest'``,
channels_last), exactly as Keras.

Hardware: an `UpSampleNearest` (`rtlgen.layers.spatial`): one output beat per cycle, so a
sample takes ``H * size_h * W * size_w`` cycles and its beats come out back to back.
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
    config_ints,
    config_str,
    config_value,
)
from rtlgen.ops.registry import Op, Shape, register_op
from rtlgen.ops.zero_padding import check_geometry, lower_same_type, output_positions, spatial_dims
from rtlgen.quant.errors import RtlgenError, UnsupportedError
from rtlgen.quant.fixed import FixedType
from rtlgen.quant.spatial import upsample_nearest, upsampled_shape

if TYPE_CHECKING:
    from rtlgen.plan import LayerPlan, PlanContext


@dataclass(frozen=True, eq=False)
class UpSampling(ir.Node):
    """(H, W, C) -> (H * size_h, W * size_w, C), or (L, C) -> (L * size_w, C) with
    ``size_h`` = 1; ``size``: (size_h, size_w). ``out_type`` is the input's type."""

    size: tuple[int, int] = field(kw_only=True)

    @property
    def op(self) -> str:  # type: ignore[override]
        return "upsampling1d" if len(self.in_shape) == 2 else "upsampling2d"


def read_keras_upsampling(layer: KerasLayer, shape: Shape, source: WeightSource) -> LayerOut:
    dims = spatial_dims(layer, shape)
    if dims == 1:
        size = (1, config_int(layer, "size", config_value(layer, "size", 2)))
    else:
        interpolation = config_str(layer, "interpolation", "nearest")
        if interpolation != "nearest":
            raise UnsupportedError(
                f"{layer.where}: interpolation={interpolation!r} is not supported (only 'nearest')"
            )
        rows, cols = config_ints(layer, "size", 2, 2)
        size = (rows, cols)
    if size == (1, 1):
        return LayerOut([], shape)
    out_shape = upsampled_shape(shape, size)
    return LayerOut(
        [UpSampling(layer.name, shape, out_shape, size=size, source=layer.name)], out_shape
    )


def upsampling_reference(node: UpSampling, x: np.ndarray, in_type: FixedType) -> np.ndarray:
    return upsample_nearest(x, node.size)


def validate_upsampling(node: UpSampling, in_type: FixedType | None) -> None:
    if len(node.in_shape) not in (2, 3):
        raise RtlgenError(f"upsampling needs an image or 1D signal, not {node.in_shape}")
    expected = upsampled_shape(node.in_shape, node.size)
    check_geometry(node, expected, f"upsampling by {node.size}", in_type)


def plan_upsampling(node: UpSampling, ctx: PlanContext) -> LayerPlan:
    from rtlgen.layers.common import shape_of
    from rtlgen.layers.spatial import UpSampleNearest
    from rtlgen.plan import LayerPlan

    height, width, channels = ir.spatial(node.in_shape)
    block = UpSampleNearest(height, width, channels, node.size, shape_of(ctx.in_type))
    # repeated beats are emitted one per cycle without input
    return LayerPlan(node, (block,), cycles_per_sample=block.cycles_per_sample, out_spacing=1)


@register_op
class UpSamplingOp(Op):
    name = "upsampling"
    node_types = (UpSampling,)
    keras_classes = ("UpSampling1D", "UpSampling2D")
    from_keras = staticmethod(read_keras_upsampling)
    lower = staticmethod(lower_same_type)
    reference = staticmethod(upsampling_reference)
    # values only move: the same kernel on floats
    float_forward = staticmethod(lambda node, x: upsampling_reference(node, x, None))
    validate = staticmethod(validate_upsampling)
    plan = staticmethod(plan_upsampling)
    sample_cycles = staticmethod(output_positions)
