"""Pool: max/average pooling over windows, 1D and 2D, global ones included
(``MaxPooling1D/2D``, ``AveragePooling1D/2D``, ``QAveragePooling2D``, ``Global*Pooling1D/2D``,
``QGlobalAveragePooling2D``). Average pooling divides by the number of real (non-padding)
elements of each window, as Keras does.

Hardware: `MaxPool` / `AvgPool` (`rtlgen.layers.pool`): a window generator and a reducer; a
window covering the whole input (global pooling) is `GlobalMax` / `GlobalAverage`
(`rtlgen.layers.global_pool`): one accumulator per channel, no line buffer.
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING

import numpy as np

from rtlgen import ir
from rtlgen.frontend.keras_config import (
    KerasLayer,
    LayerOut,
    WeightSource,
    check_channels_last,
    config_ints,
    config_str,
    expect_rank,
    layer_activation,
    parse_layer_quantizer,
    window_geometry,
)
from rtlgen.ops.activation import activation_nodes
from rtlgen.ops.conv import padded_walk_cycles
from rtlgen.ops.registry import Op, Shape, register_op
from rtlgen.passes import LowerContext
from rtlgen.quant.arith import divide_round
from rtlgen.quant.errors import RtlgenWarning, UnsupportedError
from rtlgen.quant.fixed import FixedType, requantize
from rtlgen.quant.reference import as_image, pad_image, windows

if TYPE_CHECKING:
    from rtlgen.plan import LayerPlan, PlanContext


def read_keras_pool(layer: KerasLayer, shape: Shape, source: WeightSource) -> LayerOut:
    cls = layer.class_name
    dims = 1 if cls.endswith("1D") else 2
    expect_rank(layer, shape, dims + 1, "a 1D signal (L, C)" if dims == 1 else "an image (H, W, C)")
    check_channels_last(layer)
    kind = ir.PoolKind.MAX if "Max" in cls else ir.PoolKind.AVG
    nodes: list[ir.Node] = []
    if cls.startswith("Global") or cls.startswith("QGlobal"):
        size = (1, shape[0]) if dims == 1 else (shape[0], shape[1])
        out_shape: Shape = (1, shape[1]) if dims == 1 else (1, 1, shape[2])
        nodes.append(
            ir.Pool(
                layer.name, shape, out_shape, kind=kind, pool=size, stride=size, source=layer.name
            )
        )
        if not layer.config.get("keepdims", False):
            flat = (shape[-1],)
            nodes.append(ir.Flatten(f"{layer.name}_flatten", out_shape, flat, source=layer.name))
            out_shape = flat
    else:
        pool = config_ints(layer, "pool_size", dims, 2)
        strides_raw = layer.config.get("strides")
        strides = pool if strides_raw is None else config_ints(layer, "strides", dims)
        padding = config_str(layer, "padding", "valid").lower()
        pool2 = (1, pool[0]) if dims == 1 else (pool[0], pool[1])
        stride2 = (1, strides[0]) if dims == 1 else (strides[0], strides[1])
        spatial_out, pads = window_geometry(layer, shape, pool2, stride2, padding, causal_ok=False)
        out_shape = (*spatial_out, shape[-1])
        nodes.append(
            ir.Pool(
                layer.name,
                shape,
                out_shape,
                kind=kind,
                pool=pool2,
                stride=stride2,
                padding=pads,
                source=layer.name,
            )
        )
    if cls.startswith("Q"):
        _q_average(layer, nodes[0])
        act = layer_activation(layer, layer.config.get("activation"))
        if act.softmax:
            raise UnsupportedError(
                f"{layer.where}: activation='softmax' on a pooling layer is not supported"
            )
        nodes.extend(activation_nodes(layer, out_shape, act, f"{layer.name}_activation"))
    return LayerOut(nodes, out_shape)


def _q_average(layer: KerasLayer, pool: ir.Node) -> None:
    """QAveragePooling2D computes ``mean * area * q(1 / area)``: equal to the plain average
    only when ``q(1 / area) == 1 / area``; other average quantizers are rejected."""
    q = parse_layer_quantizer(
        layer.config.get("average_quantizer"), f"{layer.where} average_quantizer"
    )
    if q is None:
        return
    assert isinstance(pool, ir.Pool)
    area = pool.pool[0] * pool.pool[1]
    if float(q.reference(np.array([1.0 / area]))[0]) != 1.0 / area:
        raise UnsupportedError(
            f"{layer.where}: average_quantizer {q} does not represent 1/{area} exactly, so the "
            "layer scales its average; only exact average quantizers (or none) are supported"
        )


def pool_reference(node: ir.Pool, x: np.ndarray, in_type: FixedType) -> np.ndarray:
    assert node.out_type is not None
    img = as_image(x)
    n = img.shape[0]
    if node.kind is ir.PoolKind.MAX:
        # Keras excludes padding from the max; a padding value below every input does that.
        padded = pad_image(img, node.padding, value=in_type.min_int - 1)
        y = windows(padded, node.pool, node.stride).max(axis=(3, 4))
        y = requantize(y, in_type.frac, node.out_type, node.rounding)
    else:
        padded = pad_image(img, node.padding, value=0)
        total = windows(padded, node.pool, node.stride).sum(axis=(3, 4))
        ones = pad_image(np.ones((1, *img.shape[1:3], 1), dtype=np.int64), node.padding)
        count = windows(ones, node.pool, node.stride).sum(axis=(3, 4))
        shift = node.out_type.frac - in_type.frac
        num, den = (total << shift, count) if shift >= 0 else (total, count << -shift)
        y = divide_round(num, den, node.rounding)
        y = requantize(y, node.out_type.frac, node.out_type, node.rounding)
    return y.reshape((n, *node.out_shape))


def covers_input(node: ir.Pool) -> bool:
    """One window covering the whole input without padding: a global pooling."""
    h, wd, _ = ir.spatial(node.in_shape)
    return node.pool == (h, wd) and node.stride == node.pool and not any(node.padding)


def plan_pool(node: ir.Pool, ctx: PlanContext) -> LayerPlan:
    """A window covering the whole input: `GlobalMax` / `GlobalAverage` (one accumulator
    per channel, no line buffer, one output beat per sample); otherwise `MaxPool` /
    `AvgPool` (a window generator and a reducer)."""
    from rtlgen.layers.global_pool import GlobalAverage, GlobalMax
    from rtlgen.layers.pool import AvgPool, MaxPool
    from rtlgen.plan import LayerPlan

    h, wd, c = ir.spatial(node.in_shape)
    assert node.out_type is not None
    if covers_input(node):
        accumulate = GlobalMax if node.kind is ir.PoolKind.MAX else GlobalAverage
        reduce = accumulate(h * wd, c, ctx.in_type, node.out_type, node.rounding)
        return LayerPlan(
            node,
            (reduce,),
            cycles_per_sample=reduce.cycles_per_sample,
            out_spacing=ctx.spacing * h * wd,
            notes=(f"global {node.kind.value} pooling: {c} accumulators, no line buffer",),
        )
    cls = MaxPool if node.kind is ir.PoolKind.MAX else AvgPool
    pool = cls(
        h, wd, c, node.pool, node.stride, node.padding, ctx.in_type, node.out_type, node.rounding
    )
    return LayerPlan(
        node,
        (pool,),
        cycles_per_sample=getattr(pool, "cycles_per_sample", 1),
        out_spacing=1 if any(node.padding) else ctx.spacing * node.stride[1],
    )


def lower_pool(node: ir.Pool, ctx: LowerContext) -> ir.Pool:
    """Max: the input type. Average: the exact sum's integer bits, and enough fraction bits
    for the mean (log2 of the window, 2 more when the count is not a power of two)."""
    out = ctx.in_type
    if node.kind is ir.PoolKind.AVG:
        count = node.pool[0] * node.pool[1]
        extra = 0 if count & (count - 1) == 0 else 2
        extra += math.ceil(math.log2(count))
        t = ctx.in_type
        out = ctx.explicit.result or FixedType(t.width + extra, t.frac + extra, t.signed)
        uneven = count & (count - 1) or any(node.padding)
        if uneven and ctx.quantized_model:
            warnings.warn(
                f"layer '{node.source or node.name}': the average of {count} elements"
                f"{' (fewer at padded borders)' if any(node.padding) else ''} is rounded to "
                f"{out}, where Keras keeps a float32 mean: a quantizer after it can differ "
                f"from Keras where a value lies within 2**-{out.frac + 1} of its rounding "
                "boundary (a power-of-two pool is exact)",
                RtlgenWarning,
                stacklevel=2,
            )
    return node.replace(out_type=out, rounding=ctx.config.rounding)


def pool_float(node: ir.Pool, x: np.ndarray) -> np.ndarray:
    """The float pooling layer (`rtlgen.calibrate`); average pooling counts only the pixels
    inside the image, as Keras does."""
    img = x[:, None] if x.ndim == 3 else x
    if node.kind is ir.PoolKind.MAX:
        y = windows(pad_image(img, node.padding, -np.inf), node.pool, node.stride).max(axis=(3, 4))
    else:
        total = windows(pad_image(img, node.padding), node.pool, node.stride).sum(axis=(3, 4))
        ones = pad_image(np.ones((1, *img.shape[1:3], 1)), node.padding)
        y = total / windows(ones, node.pool, node.stride).sum(axis=(3, 4))
    return y.reshape((len(x), *node.out_shape))


@register_op
class PoolOp(Op):
    name = "pool"
    node_types = (ir.Pool,)
    keras_classes = (
        "MaxPooling1D",
        "MaxPooling2D",
        "AveragePooling1D",
        "AveragePooling2D",
        "QAveragePooling2D",
        "GlobalMaxPooling1D",
        "GlobalMaxPooling2D",
        "GlobalAveragePooling1D",
        "GlobalAveragePooling2D",
        "QGlobalAveragePooling2D",
    )
    from_keras = staticmethod(read_keras_pool)
    reference = staticmethod(pool_reference)
    float_forward = staticmethod(pool_float)
    plan = staticmethod(plan_pool)
    sample_cycles = staticmethod(padded_walk_cycles)
    lower = staticmethod(lower_pool)
