"""Separable convolution: a depthwise convolution then a pointwise (1x1) one
(``SeparableConv1D``, ``SeparableConv2D``, ``QSeparableConv1D``, ``QSeparableConv2D``).

Two `ir.Conv` nodes: ``<layer>_depthwise``, the block-diagonal depthwise conv of
`rtlgen.ops.depthwise_conv` (no bias, linear; a ``dilation_rate`` spreads its taps, and
'same'/'causal' padding follow its dilated window, as TensorFlow), and ``<layer>``, the 1x1
conv with the pointwise kernel, the bias and the activation. Where the intermediate is quantized, as in
QKeras: nowhere. ``QSeparableConv*D.call`` quantizes the two kernels (``depthwise_quantizer``
on the (kh, kw, C, M) kernel, ``pointwise_quantizer`` on the (1, 1, C*M, F) one, both
expanded to 4D as TensorFlow's ``separable_conv2d`` takes them), then runs that op in float32
with no quantizer between the two products; the bias (``bias_quantizer``) and the
activation come after the pointwise product. So the depthwise node's result is left
unquantized: in a quantized model lowering keeps it exact (its full accumulator range),
which equals QKeras's float32 intermediate whenever float32 holds it exactly (all sums
below 2**24 units of the finest bit, as for every small fixed-point model). In a float
model it gets the `PrecisionConfig` result type like any float layer's output (one more
rounding than Keras's float32; the layer's bias and activation are the pointwise node's).

The intermediate node's ``source`` is ``<layer>_depthwise``, so a precision given for the
Keras layer name applies to the layer's output only.
"""

from __future__ import annotations

import numpy as np

from rtlgen import ir
from rtlgen.frontend.keras_config import (
    KerasLayer,
    LayerOut,
    WeightSource,
    config_bool,
    config_int,
    config_value,
    layer_quantizer,
    layer_weights,
)
from rtlgen.ops.depthwise_conv import (
    check_expansion,
    depthwise_conv,
    depthwise_geometry,
    layer_activation_nodes,
)
from rtlgen.ops.registry import Op, Shape, register_op


def read_keras_separable(layer: KerasLayer, shape: Shape, source: WeightSource) -> LayerOut:
    g = depthwise_geometry(layer, shape, causal_ok=True)
    channels = shape[-1]
    middle = g.out_shape[-1]  # C * M
    filters = config_int(layer, "filters", config_value(layer, "filters"))
    use_bias = config_bool(layer, "use_bias", True)
    quantized = layer.class_name.startswith("Q")
    dq = layer_quantizer(layer, "depthwise_quantizer", kernel=True) if quantized else None
    pq = layer_quantizer(layer, "pointwise_quantizer", kernel=True) if quantized else None
    bq = layer_quantizer(layer, "bias_quantizer") if quantized else None
    out_shape = (*g.out_shape[:-1], filters)
    act, post = layer_activation_nodes(layer, out_shape)
    expected: dict[str, Shape] = {
        "depthwise_kernel": (*g.kernel_size, channels, g.multiplier),
        "pointwise_kernel": (*(1,) * g.dims, middle, filters),
    }
    if use_bias:
        expected["bias"] = (filters,)
    check_expansion(layer, shape, g, source)
    got = layer_weights(source, layer, expected)
    depthwise_name = f"{layer.name}_depthwise"
    depthwise = depthwise_conv(
        depthwise_name, shape, g, got["depthwise_kernel"], dq, depthwise_name
    )
    pointwise = np.asarray(got["pointwise_kernel"], dtype=np.float64).reshape(1, 1, middle, filters)
    bias = got.get("bias")
    node = ir.Conv(
        layer.name,
        g.out_shape,
        out_shape,
        weights=ir.FloatTensor(pointwise, pq),
        bias=None if bias is None else ir.FloatTensor(np.asarray(bias, dtype=np.float64), bq),
        kernel=(1, 1),
        stride=(1, 1),
        activation=act.clamp,
        out_quantizer=act.quantizer,
        source=layer.name,
    )
    return LayerOut([depthwise, node, *post], out_shape, act.softmax)


@register_op
class SeparableConvOp(Op):
    """Front-end only: the layer becomes two `ir.Conv` nodes (`rtlgen.ops.conv`)."""

    name = "separable_conv"
    keras_classes = ("SeparableConv1D", "SeparableConv2D", "QSeparableConv1D", "QSeparableConv2D")
    from_keras = staticmethod(read_keras_separable)
