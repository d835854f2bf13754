"""Dense: a fully connected layer on a flat vector (``Dense``, ``QDense``, ``QDenseBatchnorm``).

A Dense on a (L, C) or (H, W, C) tensor applies to the last axis at every position, as Keras
does: the front-end reads it as a 1x1 convolution (`rtlgen.ops.conv`). Hardware: one constant
matrix-vector product per sample (`rtlgen.ops.matvec`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rtlgen import ir
from rtlgen.calibrate import float_activate, float_values
from rtlgen.frontend.keras_config import (
    KerasLayer,
    LayerOut,
    WeightSource,
    config_bool,
    config_int,
    config_value,
    folded_batchnorm,
    layer_activation,
    layer_quantizer,
    layer_weights,
)
from rtlgen.ops.activation import activation_nodes
from rtlgen.ops.matvec import plan_matvec
from rtlgen.ops.registry import Op, Shape, register_op
from rtlgen.passes import lower_matvec
from rtlgen.quant.arith import aligned_weights
from rtlgen.quant.fixed import FixedType
from rtlgen.quant.reference import aligned_bias, exact_matmul, finish_activation


def read_keras_dense(layer: KerasLayer, shape: Shape, source: WeightSource) -> LayerOut:
    units = config_int(layer, "units", config_value(layer, "units"))
    use_bias = config_bool(layer, "use_bias", True)
    cin = shape[-1]
    kq = (
        layer_quantizer(layer, "kernel_quantizer", kernel=True)
        if layer.class_name.startswith("Q")
        else None
    )
    bq = layer_quantizer(layer, "bias_quantizer") if layer.class_name.startswith("Q") else None
    act = layer_activation(layer, layer.config.get("activation"))
    expected: dict[str, Shape] = {"kernel": (cin, units)}
    if use_bias:
        expected["bias"] = (units,)
    if layer.class_name == "QDenseBatchnorm":
        w, b = folded_batchnorm(layer, source, expected, units)
    else:
        got = layer_weights(source, layer, expected)
        w, b = got["kernel"], got.get("bias")
    w = np.asarray(w, dtype=np.float64)
    bias = None if b is None else ir.FloatTensor(np.asarray(b, dtype=np.float64), bq)
    common: dict[str, Any] = dict(
        activation=act.clamp, out_quantizer=act.quantizer, source=layer.name
    )
    out_shape = (*shape[:-1], units)
    if len(shape) == 1:
        node: ir.Node = ir.Dense(
            layer.name, shape, out_shape, weights=ir.FloatTensor(w, kq), bias=bias, **common
        )
    else:
        # Keras applies Dense to the last axis of a 1D/2D feature map: a 1x1 convolution.
        node = ir.Conv(
            layer.name,
            shape,
            out_shape,
            weights=ir.FloatTensor(w.reshape(1, 1, cin, units), kq),
            bias=bias,
            kernel=(1, 1),
            stride=(1, 1),
            **common,
        )
    act_name = f"{layer.name}_activation"
    post = activation_nodes(layer, out_shape, act, act_name) if act.separate else []
    return LayerOut([node, *post], out_shape, act.softmax)


def dense_reference(node: ir.Dense, x: np.ndarray, in_type: FixedType) -> np.ndarray:
    assert isinstance(node.weights, ir.QTensor) and node.acc_type is not None
    acc_frac = node.acc_type.frac
    w = aligned_weights(node.weights.mantissa, in_type, node.weights.type, acc_frac)
    acc = exact_matmul(x.reshape(x.shape[0], -1), w, node.acc_type) + aligned_bias(node, acc_frac)
    return finish_activation(node, acc, acc_frac)


def dense_float(node: ir.Dense, x: np.ndarray) -> np.ndarray:
    """The float dense layer (`rtlgen.calibrate`)."""
    b = float_values(node.bias)
    y = x.reshape(len(x), -1) @ float_values(node.weights)
    return float_activate(node, y + (0 if b is None else b))


@register_op
class DenseOp(Op):
    name = "dense"
    node_types = (ir.Dense,)
    keras_classes = ("Dense", "QDense", "QDenseBatchnorm")
    from_keras = staticmethod(read_keras_dense)
    reference = staticmethod(dense_reference)
    float_forward = staticmethod(dense_float)
    plan = staticmethod(plan_matvec)
    lower = staticmethod(lower_matvec)
