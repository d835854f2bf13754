"""Conv: 1D/2D convolutions (``Conv1D``, ``Conv2D``, ``QConv1D``, ``QConv2D``,
``QConv2DBatchnorm``); a 1D convolution is a 2D one of kernel height 1 on (1, L, C).

Hardware: a `WindowGenerator` (line buffer) walks the padded input, then one constant
matrix-vector product per window position (`rtlgen.ops.matvec`); a 1x1 convolution with
stride 1 needs no window generator.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from rtlgen import ir
from rtlgen.calibrate import float_activate, float_values
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
    folded_batchnorm,
    layer_activation,
    layer_quantizer,
    layer_weights,
    source_limits,
    window_geometry,
)
from rtlgen.frontend.limits import element_count
from rtlgen.ops.activation import activation_nodes
from rtlgen.ops.matvec import plan_matvec
from rtlgen.ops.registry import Op, Shape, register_op
from rtlgen.passes import lower_matvec
from rtlgen.quant.arith import aligned_weights
from rtlgen.quant.errors import ModelFileError, UnsupportedError
from rtlgen.quant.fixed import FixedType
from rtlgen.quant.quantizers import Quantizer
from rtlgen.quant.reference import (
    aligned_bias,
    as_image,
    exact_matmul,
    finish_activation,
    pad_image,
    windows,
)


def read_keras_conv(layer: KerasLayer, shape: Shape, source: WeightSource) -> LayerOut:
    cls = layer.class_name
    dims = 1 if cls in ("Conv1D", "QConv1D") else 2
    check_conv_input(layer, shape, dims, dilation_ok=True)
    filters = config_int(layer, "filters", config_value(layer, "filters"))
    cin = shape[-1]
    groups = config_int(layer, "groups", layer.config.get("groups", 1))
    if groups < 1 or cin % groups or filters % groups:
        raise ModelFileError(
            f"{layer.where}: groups={groups} does not divide its {cin} input channels and "
            f"{filters} filters"
        )
    ksize = config_ints(layer, "kernel_size", dims)
    strides = config_ints(layer, "strides", dims, 1)
    dilation = read_dilation(layer, dims, strides)
    padding = config_str(layer, "padding", "valid").lower()
    use_bias = config_bool(layer, "use_bias", True)
    spread = dilated_size(ksize, dilation)
    kernel2 = (1, spread[0]) if dims == 1 else (spread[0], spread[1])
    stride2 = (1, strides[0]) if dims == 1 else (strides[0], strides[1])
    spatial_out, pads = window_geometry(
        layer, shape, kernel2, stride2, padding, causal_ok=dims == 1
    )
    out_shape = (*spatial_out, filters)
    kq = layer_quantizer(layer, "kernel_quantizer", kernel=True) if cls.startswith("Q") else None
    bq = layer_quantizer(layer, "bias_quantizer") if cls.startswith("Q") else None
    if dims == 1 and getattr(kq, "scale_axis", None) is not None:
        # The Conv1D kernel (k, cin, cout) is stored as (1, k, cin, cout).
        kq = dataclasses.replace(kq, scale_axis=kq.scale_axis + 1)  # type: ignore[type-var,union-attr]
    act = layer_activation(layer, layer.config.get("activation"))
    expected: dict[str, Shape] = {"kernel": (*ksize, cin // groups, filters)}
    if use_bias:
        expected["bias"] = (filters,)
    # before the weights are read: few weights can still slide over a huge map
    work = element_count(spatial_out) * element_count(expected["kernel"])
    check_operation_count(layer, work, out_shape, kernel2, source_limits(source))
    if cls == "QConv2DBatchnorm":
        w, b = folded_batchnorm(layer, source, expected, filters)
    else:
        got = layer_weights(source, layer, expected)
        w, b = got["kernel"], got.get("bias")
    taps2 = (1, ksize[0]) if dims == 1 else (ksize[0], ksize[1])
    dilation2 = (1, dilation[0]) if dims == 1 else (dilation[0], dilation[1])
    w = np.asarray(w, dtype=np.float64).reshape((*taps2, cin // groups, filters))
    w = grouped_kernel(spread_taps(w, dilation2), groups, cin)
    if kq is not None and (groups > 1 or dilation2 != (1, 1)):
        kq = ConvKernel(kq, dilation2, groups)  # QKeras quantizes the kernel as stored
    node = ir.Conv(
        layer.name,
        shape,
        out_shape,
        weights=ir.FloatTensor(w, kq),
        bias=None if b is None else ir.FloatTensor(np.asarray(b, dtype=np.float64), bq),
        kernel=kernel2,
        stride=stride2,
        padding=pads,
        activation=act.clamp,
        out_quantizer=act.quantizer,
        source=layer.name,
        groups=groups,
        dilation=dilation2,
    )
    act_name = f"{layer.name}_activation"
    post = activation_nodes(layer, out_shape, act, act_name) if act.separate else []
    return LayerOut([node, *post], out_shape, act.softmax)


def read_dilation(layer: KerasLayer, dims: int, strides: tuple[int, ...]) -> tuple[int, ...]:
    """The layer's ``dilation_rate`` (one per spatial axis); a dilation with a stride above
    1, which TensorFlow refuses as well, is refused in one line."""
    dilation = config_ints(layer, "dilation_rate", dims, 1)
    if any(d < 1 for d in dilation) or any(d > 1 for d in dilation) and any(
        s > 1 for s in strides
    ):
        raise UnsupportedError(
            f"{layer.where}: dilation_rate={list(dilation)} with strides={list(strides)} is not "
            "supported (a dilation needs stride 1, as in TensorFlow)"
        )
    return dilation


def dilated_size(ksize: tuple[int, ...], dilation: tuple[int, ...]) -> tuple[int, ...]:
    """The window a dilated kernel covers (TensorFlow's effective kernel size)."""
    return tuple((k - 1) * d + 1 for k, d in zip(ksize, dilation, strict=True))


def spread_taps(w: np.ndarray, dilation: tuple[int, ...]) -> np.ndarray:
    """A kernel ``(*ksize, ...)`` as the kernel of its dilated window: along each of the
    first ``len(dilation)`` axes its taps ``d`` apart with ``d - 1`` zero taps between
    (zero weights are no products: they build no hardware)."""
    spread = dilated_size(w.shape[: len(dilation)], dilation)
    out = np.zeros((*spread, *w.shape[len(dilation) :]), dtype=w.dtype)
    out[tuple(slice(None, None, d) for d in dilation)] = w
    return out


def kernel_taps(w: np.ndarray, dilation: tuple[int, ...]) -> np.ndarray:
    """The inverse of `spread_taps`: the taps of a dilated window's kernel."""
    return w[tuple(slice(None, None, d) for d in dilation)]


def grouped_kernel(w: np.ndarray, groups: int, cin: int) -> np.ndarray:
    """A grouped Keras kernel ``(..., cin / groups, filters)`` as the full kernel of
    rtlgen's `ir.Conv`, block-diagonal over the input channels (filter ``o`` reads group
    ``o // (filters / groups)``)."""
    filters = w.shape[-1]
    out = np.zeros((*w.shape[:-2], cin, filters), dtype=w.dtype)
    per_in, per_out = cin // groups, filters // groups
    for g in range(groups):
        outs = slice(g * per_out, (g + 1) * per_out)
        out[..., g * per_in : (g + 1) * per_in, outs] = w[..., outs]
    return out


def group_blocks(w: np.ndarray, groups: int) -> np.ndarray:
    """The inverse of `grouped_kernel`: (..., cin, filters) -> (..., cin / groups, filters)."""
    cin, filters = w.shape[-2:]
    per_in, per_out = cin // groups, filters // groups
    blocks = [
        w[..., g * per_in : (g + 1) * per_in, g * per_out : (g + 1) * per_out] for g in range(groups)
    ]
    return np.concatenate(blocks, axis=-1)


@dataclass(frozen=True)
class ConvKernel(Quantizer):
    """A QKeras kernel quantizer of a dilated or grouped convolution, applied to the full
    `ir.Conv` kernel (kh, kw, cin, filters) that holds it: the quantizer sees the kernel's
    real taps and blocks, (kh, kw, cin / groups, filters) (a 1D kernel as (1, k, ...), as
    before), so its data-dependent scales are QKeras's; the zero taps and the weights off
    the blocks stay zero. ``dilation``: (rows, columns), (1, d) in 1D."""

    inner: Quantizer
    dilation: tuple[int, int]
    groups: int

    name = "conv_kernel"

    def _stored(self, values: np.ndarray) -> np.ndarray:
        return group_blocks(kernel_taps(values, self.dilation), self.groups)

    def _full(self, stored: np.ndarray, cin: int) -> np.ndarray:
        return spread_taps(grouped_kernel(stored, self.groups, cin), self.dilation)

    def quantize_constant(self, values: np.ndarray) -> ir.QTensor:
        q = self.inner.quantize_constant(self._stored(values))
        return ir.QTensor(self._full(q.mantissa, values.shape[-2]), q.type)

    def reference(self, values: np.ndarray) -> np.ndarray:
        return self._full(self.inner.reference(self._stored(values)), values.shape[-2])

    def __str__(self) -> str:
        return str(self.inner)


def conv_reference(node: ir.Conv, x: np.ndarray, in_type: FixedType) -> np.ndarray:
    assert isinstance(node.weights, ir.QTensor) and node.acc_type is not None
    acc_frac = node.acc_type.frac
    kh, kw, cin, cout = node.weights.shape
    w = aligned_weights(node.weights.mantissa, in_type, node.weights.type, acc_frac)
    img = pad_image(as_image(x), node.padding)
    win = windows(img, node.kernel, node.stride)
    n, ho, wo = win.shape[:3]
    acc = exact_matmul(win.reshape(n * ho * wo, kh * kw * cin), w.reshape(-1, cout), node.acc_type)
    acc = acc + aligned_bias(node, acc_frac)
    y = finish_activation(node, acc, acc_frac).reshape(n, ho, wo, cout)
    return y.reshape((n, *node.out_shape))


def padded_walk_cycles(node: ir.Conv | ir.Pool, in_type: FixedType) -> int:
    """A window generator over padding walks the padded grid up to its last window row and
    column, one position per cycle, with or without input."""
    if not any(node.padding):
        return 0
    h, w, _ = ir.spatial(node.in_shape)
    _top, bottom, _left, right = node.padding
    return (h + bottom) * (w + right)


def conv_float(node: ir.Conv, x: np.ndarray) -> np.ndarray:
    """The float convolution (`rtlgen.calibrate`)."""
    img = x[:, None] if x.ndim == 3 else x
    win = windows(pad_image(img, node.padding), node.kernel, node.stride)
    y = np.tensordot(win, float_values(node.weights), axes=([3, 4, 5], [0, 1, 2]))
    b = float_values(node.bias)
    return float_activate(node, y + (0 if b is None else b)).reshape((len(x), *node.out_shape))


@register_op
class ConvOp(Op):
    name = "conv"
    node_types = (ir.Conv,)
    keras_classes = ("Conv1D", "Conv2D", "QConv1D", "QConv2D", "QConv2DBatchnorm")
    from_keras = staticmethod(read_keras_conv)
    reference = staticmethod(conv_reference)
    float_forward = staticmethod(conv_float)
    plan = staticmethod(plan_matvec)
    sample_cycles = staticmethod(padded_walk_cycles)
    lower = staticmethod(lower_matvec)
