"""Transposed convolution (``Conv1DTranspose``, ``Conv2DTranspose``, ``QConv2DTranspose``,
channels_last, ``padding`` 'valid' or 'same', any ``output_padding`` Keras accepts).

A transposed convolution with strides s is a stride-1 'valid' convolution, with the kernel
flipped in space and its two channel axes swapped, over the input with ``s - 1`` zeros
inserted between its pixels and zero padding around: two nodes, ``<layer>_zeros`` (a
`ZeroInsertion`) and ``<layer>`` (an `ir.Conv` with the bias and the activation). Per
spatial axis of input length L, kernel k, stride s and output length L_out (Keras's
``deconv_output_length``), TensorFlow computes output ``o`` as the sum over input ``i`` and
tap ``t`` with ``o = i * s + t - p`` of ``x[i] * w[t]``, where ``p`` is the padding before of
the forward convolution that maps L_out to L ('valid': 0; 'same': half of
``max((L - 1) * s + k - L_out, 0)``, rounded down). On the zero-inserted input z
(``z[i * s] = x[i]``) that is ``o = sum_t' z[o + t' - (k - 1 - p)] * w[k - 1 - t']``: a valid
convolution with the flipped kernel after ``k - 1 - p`` zeros before and as many after as
make the output L_out long.

Exactness: the sums are those of the convolution (the inserted zeros add nothing), so a
QKeras model is bit-exact as every convolution is. Cost: the convolution walks the
zero-inserted grid, one position per cycle (``s_h * s_w`` times the input's pixels), and its
multipliers see zeros at most taps; constant multipliers are the kernel's non-zero weights as
for any convolution.

Hardware of `ZeroInsertion`: a `ZeroInsert` (`rtlgen.layers.spatial`), one output position
per cycle, latency 1.
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
    check_conv_input,
    check_operation_count,
    config_bool,
    config_int,
    config_ints,
    config_str,
    config_value,
    layer_activation,
    layer_quantizer,
    layer_weights,
    source_limits,
)
from rtlgen.frontend.limits import element_count
from rtlgen.ops.activation import activation_nodes
from rtlgen.ops.registry import Op, Shape, register_op
from rtlgen.ops.zero_padding import check_geometry, lower_same_type, output_positions
from rtlgen.quant.errors import ModelFileError, RtlgenError, UnsupportedError
from rtlgen.quant.fixed import FixedType
from rtlgen.quant.spatial import zero_insert, zero_inserted_shape

if TYPE_CHECKING:
    from rtlgen.plan import LayerPlan, PlanContext

Amounts = tuple[int, int, int, int]


@dataclass(frozen=True, eq=False)
class ZeroInsertion(ir.Node):
    """(H, W, C) -> ((H - 1) * s_h + 1 + top + bottom, (W - 1) * s_w + 1 + left + right, C),
    or the same on (L, C) with s_h = 1 and no vertical padding: ``strides`` - 1 zeros between
    pixels, ``padding`` (top, bottom, left, right) zeros around. ``out_type`` is the input's
    type."""

    strides: tuple[int, int] = field(kw_only=True)
    padding: Amounts = field(kw_only=True)

    @property
    def op(self) -> str:  # type: ignore[override]
        return "zero_insertion1d" if len(self.in_shape) == 2 else "zero_insertion2d"


# ---------------------------------------------------------------------------------------
# front-end
# ---------------------------------------------------------------------------------------
def transpose_axis(
    layer: KerasLayer, length: int, k: int, s: int, padding: str, output_padding: int | None
) -> tuple[int, int, int]:
    """(output length, zeros before, zeros after the zero-inserted axis) of one spatial axis
    (see the module docstring)."""
    if output_padding is None:
        out = length * s + max(k - s, 0) if padding == "valid" else length * s
    else:
        if not 0 <= output_padding < s:
            raise ModelFileError(
                f"{layer.where}: output_padding={output_padding} must be below the stride {s}"
            )
        out = (length - 1) * s + k - 2 * (0 if padding == "valid" else k // 2) + output_padding
    before = 0 if padding == "valid" else max((length - 1) * s + k - out, 0) // 2
    lead = k - 1 - before
    trail = out + k - 1 - lead - ((length - 1) * s + 1)
    if out < 1 or lead < 0 or trail < 0:
        raise UnsupportedError(
            f"{layer.where}: kernel {k}, stride {s}, padding {padding!r}, output_padding "
            f"{output_padding} gives an output of {out} from {length} (supported: outputs that "
            "a stride-1 convolution of the zero-inserted input computes)"
        )
    return out, lead, trail


def _output_padding(layer: KerasLayer, dims: int) -> tuple[int | None, ...]:
    """Keras's ``output_padding``: None, an int or one int per spatial axis, each >= 0."""
    value = config_value(layer, "output_padding", None)
    if value is None:
        return (None,) * dims
    values = [value] * dims if isinstance(value, int) else value
    if (
        not isinstance(values, list | tuple)
        or len(values) != dims
        or any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in values)
    ):
        raise ModelFileError(
            f"{layer.where}: 'output_padding' = {value!r} is not None or {dims} integer(s) >= 0"
        )
    return tuple(values)


def read_keras_conv_transpose(layer: KerasLayer, shape: Shape, source: WeightSource) -> LayerOut:
    dims = 1 if layer.class_name.endswith("1DTranspose") else 2
    check_conv_input(layer, shape, dims)
    filters = config_int(layer, "filters", config_value(layer, "filters"))
    ksize = config_ints(layer, "kernel_size", dims)
    strides = config_ints(layer, "strides", dims, 1)
    padding = config_str(layer, "padding", "valid").lower()
    if padding not in ("valid", "same"):
        raise UnsupportedError(
            f"{layer.where}: padding={padding!r} is not supported (supported: 'valid', 'same')"
        )
    output_padding = _output_padding(layer, dims)
    use_bias = config_bool(layer, "use_bias", True)
    cin = shape[-1]
    spatial = (1, shape[0]) if dims == 1 else (shape[0], shape[1])
    kernel2 = (1, ksize[0]) if dims == 1 else (ksize[0], ksize[1])
    stride2 = (1, strides[0]) if dims == 1 else (strides[0], strides[1])
    extra2 = (None, output_padding[0]) if dims == 1 else output_padding
    axes = [
        transpose_axis(layer, n, k, s, padding, e)
        for n, k, s, e in zip(spatial, kernel2, stride2, extra2, strict=True)
    ]
    (rows, top, bottom), (cols, left, right) = axes
    pads: Amounts = (top, bottom, left, right) if dims == 2 else (0, 0, left, right)
    inserted = zero_inserted_shape(shape, stride2, pads)
    out_shape = ((cols,) if dims == 1 else (rows, cols)) + (filters,)

    quantized = layer.class_name.startswith("Q")
    kq = layer_quantizer(layer, "kernel_quantizer", kernel=True) if quantized else None
    bq = layer_quantizer(layer, "bias_quantizer") if quantized else None
    if getattr(kq, "scale_axis", None) is not None or getattr(kq, "alpha", None) == "auto_po2":
        # per-channel scales are taken over the stored kernel's last axis (its input
        # channels here), which the swap below moves
        raise UnsupportedError(
            f"{layer.where}: a kernel quantizer with per-channel scales (alpha='auto_po2') is "
            "not supported for a transposed convolution (use alpha=1)"
        )
    act = layer_activation(layer, layer.config.get("activation"))
    expected: dict[str, Shape] = {"kernel": (*ksize, filters, cin)}
    if use_bias:
        expected["bias"] = (filters,)
    work = element_count(out_shape[:-1]) * element_count(kernel2) * cin * filters
    check_operation_count(layer, work, out_shape, kernel2, source_limits(source))
    got = layer_weights(source, layer, expected)
    kernel = np.asarray(got["kernel"], dtype=np.float64).reshape((*kernel2, filters, cin))
    # flipped in space, (kh, kw, filters, cin) -> (kh, kw, cin, filters)
    kernel = np.ascontiguousarray(kernel[::-1, ::-1].transpose(0, 1, 3, 2))
    bias = got.get("bias")
    zeros_name = f"{layer.name}_zeros"
    zeros = ZeroInsertion(
        zeros_name, shape, inserted, strides=stride2, padding=pads, source=zeros_name
    )
    node = ir.Conv(
        layer.name,
        inserted,
        out_shape,
        weights=ir.FloatTensor(kernel, kq),
        bias=None if bias is None else ir.FloatTensor(np.asarray(bias, dtype=np.float64), bq),
        kernel=kernel2,
        stride=(1, 1),
        padding=(0, 0, 0, 0),
        activation=act.clamp,
        out_quantizer=act.quantizer,
        source=layer.name,
    )
    post = activation_nodes(layer, out_shape, act, f"{layer.name}_activation") if act.separate else []
    return LayerOut([zeros, node, *post], out_shape, act.softmax)


# ---------------------------------------------------------------------------------------
# reference, checks, hardware
# ---------------------------------------------------------------------------------------
def zero_insertion_reference(
    node: ZeroInsertion, x: np.ndarray, in_type: FixedType | None
) -> np.ndarray:
    return zero_insert(x, node.strides, node.padding)


def validate_zero_insertion(node: ZeroInsertion, in_type: FixedType | None) -> None:
    if len(node.in_shape) not in (2, 3):
        raise RtlgenError(f"zero insertion needs an image or 1D signal, not {node.in_shape}")
    expected = zero_inserted_shape(node.in_shape, node.strides, node.padding)
    check_geometry(node, expected, f"zero insertion {node.strides}, {node.padding}", in_type)


def plan_zero_insertion(node: ZeroInsertion, ctx: PlanContext) -> LayerPlan:
    from rtlgen.layers.common import shape_of
    from rtlgen.layers.spatial import ZeroInsert
    from rtlgen.plan import LayerPlan

    height, width, channels = ir.spatial(node.in_shape)
    block = ZeroInsert(height, width, channels, node.strides, node.padding, shape_of(ctx.in_type))
    # zeros are emitted one per cycle without input
    return LayerPlan(node, (block,), cycles_per_sample=block.cycles_per_sample, out_spacing=1)


@register_op
class ZeroInsertionOp(Op):
    name = "zero_insertion"
    node_types = (ZeroInsertion,)
    lower = staticmethod(lower_same_type)
    reference = staticmethod(zero_insertion_reference)
    # values only move: the same kernel on floats
    float_forward = staticmethod(lambda node, x: zero_insertion_reference(node, x, None))
    validate = staticmethod(validate_zero_insertion)
    plan = staticmethod(plan_zero_insertion)
    sample_cycles = staticmethod(output_positions)


@register_op
class ConvTransposeOp(Op):
    """Front-end only: the layer becomes a `ZeroInsertion` and an `ir.Conv` (`rtlgen.ops.conv`)."""

    name = "conv_transpose"
    keras_classes = ("Conv1DTranspose", "Conv2DTranspose", "QConv2DTranspose")
    from_keras = staticmethod(read_keras_conv_transpose)

