"""Depthwise convolution: one KxK (or K) filter per input channel and depth multiplier
(``DepthwiseConv1D``, ``DepthwiseConv2D``, ``QDepthwiseConv2D``), output channel
``c * depth_multiplier + m`` from input channel ``c`` alone, as TensorFlow's
``depthwise_conv2d``.

Lowered to an `ir.Conv` with ``groups`` = C whose kernel (kh, kw, C, C * M) is
block-diagonal: ``w[:, :, c, c * M + m] = depthwise_kernel[:, :, c, m]``, zero elsewhere
(not counted as products or parameters: `ir.weight_count`). Zero weights build
no hardware (`ConstantMatVec`), so the conv's window generator and MAC array have one
constant multiplier per non-zero depthwise weight, and the reference, lowering, plan,
timing and save/load are the convolution's, exactly. A QKeras ``depthwise_quantizer`` is
applied to the depthwise kernel in its own shape (`DepthwiseKernel`): a data-dependent
scale (``alpha="auto_po2"``) is per last axis (the multiplier), as QKeras computes it.

A ``dilation_rate`` d spreads the kernel's taps d apart with zero taps between
(`rtlgen.ops.conv.spread_taps`, as for Conv1D/Conv2D): the window is TensorFlow's effective
kernel (``(k - 1) * d + 1``), 'same' padding computed from it as TensorFlow does; the
zero taps are no products. The quantizer still sees the (kh, kw, C, M) taps only.

Refused: a dilation with strides (TensorFlow refuses it too), channels-first data,
``padding="causal"`` (only separable 1D convolutions have it, `rtlgen.ops.separable_conv`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rtlgen import ir
from rtlgen.frontend.keras_config import (
    ActivationSpec,
    KerasLayer,
    LayerOut,
    WeightSource,
    check_conv_input,
    check_operation_count,
    config_bool,
    config_int,
    config_ints,
    config_str,
    folded_batchnorm,
    layer_activation,
    layer_quantizer,
    layer_weights,
    source_limits,
    window_geometry,
)
from rtlgen.frontend.limits import element_count
from rtlgen.ops.activation import activation_nodes
from rtlgen.ops.conv import (
    dilated_size,
    group_blocks,
    grouped_kernel,
    kernel_taps,
    read_dilation,
    spread_taps,
)
from rtlgen.ops.registry import Op, Shape, register_op
from rtlgen.quant.errors import ModelFileError, UnsupportedError
from rtlgen.quant.quantizers import Quantizer


def block_diagonal(depthwise: np.ndarray) -> np.ndarray:
    """(kh, kw, C, M) depthwise kernel -> (kh, kw, C, C * M) conv kernel, zero off the
    blocks: output channel ``c * M + m`` sees input channel ``c`` only."""
    kh, kw, channels, multiplier = depthwise.shape
    return grouped_kernel(depthwise.reshape(kh, kw, 1, channels * multiplier), channels, channels)


def depthwise_part(kernel: np.ndarray, multiplier: int) -> np.ndarray:
    """The inverse of `block_diagonal`: (kh, kw, C, C * M) -> (kh, kw, C, M)."""
    kh, kw, channels, _ = kernel.shape
    return group_blocks(kernel, channels).reshape(kh, kw, channels, multiplier)


@dataclass(frozen=True)
class DepthwiseKernel(Quantizer):
    """A QKeras kernel quantizer of a depthwise kernel (kh, kw, C, M), applied to the
    block-diagonal conv kernel that holds it (its taps spread ``dilation`` apart): the
    quantizer sees the (kh, kw, C, M) taps (its data-dependent scales are per last axis of
    *that* shape), the zeros stay zero."""

    inner: Quantizer
    multiplier: int
    dilation: tuple[int, int] = (1, 1)

    name = "depthwise"

    def _taps(self, values: np.ndarray) -> np.ndarray:
        return kernel_taps(depthwise_part(values, self.multiplier), self.dilation)

    def _full(self, taps: np.ndarray) -> np.ndarray:
        return block_diagonal(spread_taps(taps, self.dilation))

    def quantize_constant(self, values: np.ndarray) -> ir.QTensor:
        q = self.inner.quantize_constant(self._taps(values))
        return ir.QTensor(self._full(q.mantissa), q.type)

    def reference(self, values: np.ndarray) -> np.ndarray:
        return self._full(self.inner.reference(self._taps(values)))

    def __str__(self) -> str:
        return str(self.inner)


@dataclass(frozen=True)
class DepthwiseGeometry:
    """What a depthwise layer's config says: the kernel's taps and its dilated window as
    2D (1D: height 1), strides, dilation, (top, bottom, left, right) padding, depth
    multiplier and the output shape."""

    dims: int
    kernel_size: tuple[int, ...]  # as in the config (and the weights file)
    taps: tuple[int, int]  # the kernel_size as 2D
    kernel: tuple[int, int]  # the window: taps spread by the dilation
    stride: tuple[int, int]
    dilation: tuple[int, int]
    padding: tuple[int, int, int, int]
    multiplier: int
    out_shape: Shape  # (..., C * M)


def depthwise_geometry(layer: KerasLayer, shape: Shape, causal_ok: bool) -> DepthwiseGeometry:
    """The geometry of a depthwise (or separable) layer; ``causal_ok``: a 1D layer may pad
    causally (Keras's SeparableConv1D)."""
    dims = 1 if layer.class_name.endswith("1D") else 2
    check_conv_input(layer, shape, dims, dilation_ok=True)
    multiplier = config_int(layer, "depth_multiplier", layer.config.get("depth_multiplier", 1))
    ksize = config_ints(layer, "kernel_size", dims)
    strides = config_ints(layer, "strides", dims, 1)
    dilation = read_dilation(layer, dims, strides)
    padding = config_str(layer, "padding", "valid").lower()
    if padding == "causal" and not (causal_ok and dims == 1):
        raise UnsupportedError(
            f"{layer.where}: padding='causal' is not supported (only 'valid' and 'same')"
        )

    def as_2d(values: tuple[int, ...]) -> tuple[int, int]:
        return (1, values[0]) if dims == 1 else (values[0], values[1])

    kernel2 = as_2d(dilated_size(ksize, dilation))
    stride2 = as_2d(strides)
    spatial_out, pads = window_geometry(layer, shape, kernel2, stride2, padding, causal_ok=True)
    out_shape = (*spatial_out, shape[-1] * multiplier)
    return DepthwiseGeometry(
        dims, ksize, as_2d(ksize), kernel2, stride2, as_2d(dilation), pads, multiplier, out_shape
    )


def layer_activation_nodes(layer: KerasLayer, shape: Shape) -> tuple[ActivationSpec, list[ir.Node]]:
    """The layer's ``activation``: what fits in the conv node (a clamp, an output
    quantizer, a final softmax) and the nodes after it for one that needs its own (a table
    such as hard_swish, a leaky ReLU), as `rtlgen.ops.conv` reads a Conv2D's."""
    act = layer_activation(layer, layer.config.get("activation"))
    if not act.separate:
        return act, []
    return act, activation_nodes(layer, shape, act, f"{layer.name}_activation")


def check_expansion(layer: KerasLayer, shape: Shape, g: DepthwiseGeometry, source: WeightSource):
    """Refuse, before any weight is read, a depthwise layer whose block-diagonal kernel
    (C times the depthwise weights) or output map exceeds the limits."""
    limits = source_limits(source)
    channels = shape[-1]
    expanded = element_count((*g.kernel, channels, channels * g.multiplier))
    if expanded > limits.max_parameters:
        raise ModelFileError(
            f"{layer.where}: {channels} channels x depth multiplier {g.multiplier} expand to "
            f"{expanded:,} conv weights (block-diagonal), more than the limit of "
            f"{limits.max_parameters:,}"
        )
    size = element_count(g.out_shape)
    if size > limits.max_activations:
        raise ModelFileError(
            f"{layer.where}: its depthwise output shape {g.out_shape} has {size:,} elements, "
            f"more than the limit of {limits.max_activations:,} per feature map"
        )
    work = element_count(g.out_shape[:-1]) * element_count(g.kernel) * channels * g.multiplier
    check_operation_count(layer, work, g.out_shape, g.kernel, limits)


def depthwise_conv(
    name: str,
    shape: Shape,
    g: DepthwiseGeometry,
    depthwise: np.ndarray,
    quantizer: Quantizer | None,
    source: str,
    **fields,
) -> ir.Conv:
    """The block-diagonal `ir.Conv` of a depthwise kernel as stored ((k, C, M) in 1D,
    (kh, kw, C, M) in 2D), its taps spread by the dilation; ``fields``: bias, activation,
    out_quantizer."""
    dw = np.asarray(depthwise, dtype=np.float64).reshape((*g.taps, shape[-1], g.multiplier))
    return ir.Conv(
        name,
        shape,
        g.out_shape,
        weights=ir.FloatTensor(
            block_diagonal(spread_taps(dw, g.dilation)),
            None if quantizer is None else DepthwiseKernel(quantizer, g.multiplier, g.dilation),
        ),
        kernel=g.kernel,
        stride=g.stride,
        padding=g.padding,
        groups=shape[-1],
        dilation=g.dilation,
        source=source,
        **fields,
    )


def read_keras_depthwise(layer: KerasLayer, shape: Shape, source: WeightSource) -> LayerOut:
    g = depthwise_geometry(layer, shape, causal_ok=False)
    channels = shape[-1]
    use_bias = config_bool(layer, "use_bias", True)
    quantized = layer.class_name.startswith("Q")
    dq = layer_quantizer(layer, "depthwise_quantizer", kernel=True) if quantized else None
    bq = layer_quantizer(layer, "bias_quantizer") if quantized else None
    act, post = layer_activation_nodes(layer, g.out_shape)
    expected: dict[str, Shape] = {"depthwise_kernel": (*g.kernel_size, channels, g.multiplier)}
    if use_bias:
        expected["bias"] = (channels * g.multiplier,)
    check_expansion(layer, shape, g, source)
    if layer.class_name == "QDepthwiseConv2DBatchnorm":
        kernel, bias = folded_batchnorm(
            layer, source, expected, channels * g.multiplier, kernel_key="depthwise_kernel"
        )
    else:
        got = layer_weights(source, layer, expected)
        kernel, bias = got["depthwise_kernel"], got.get("bias")
    node = depthwise_conv(
        layer.name,
        shape,
        g,
        kernel,
        dq,
        layer.name,
        bias=None if bias is None else ir.FloatTensor(np.asarray(bias, dtype=np.float64), bq),
        activation=act.clamp,
        out_quantizer=act.quantizer,
    )
    return LayerOut([node, *post], g.out_shape, act.softmax)


@register_op
class DepthwiseConvOp(Op):
    """Front-end only: the layer becomes an `ir.Conv` (`rtlgen.ops.conv` does the rest)."""

    name = "depthwise_conv"
    keras_classes = (
        "DepthwiseConv1D", "DepthwiseConv2D", "QDepthwiseConv2D", "QDepthwiseConv2DBatchnorm"
    )
    from_keras = staticmethod(read_keras_depthwise)
