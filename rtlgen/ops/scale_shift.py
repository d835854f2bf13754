"""ScaleShift: per-channel ``x * scale + shift``, a BatchNormalization that could not be
folded into the layer before it (``BatchNormalization``, ``QBatchNormalization``).

Hardware: a diagonal constant matrix-vector product (`rtlgen.ops.matvec`; the off-diagonal
zeros build nothing).
"""

from __future__ import annotations

import numpy as np

from rtlgen import ir
from rtlgen.frontend.keras_config import (
    KerasLayer,
    LayerOut,
    WeightSource,
    check_bn_axis_last,
    config_bool,
    config_number,
    layer_weights,
    parse_layer_quantizer,
)
from rtlgen.ops.matvec import plan_matvec
from rtlgen.ops.registry import Op, Shape, register_op
from rtlgen.passes import lower_matvec
from rtlgen.quant.arith import align, aligned_weights
from rtlgen.quant.errors import ModelFileError
from rtlgen.quant.fixed import FixedType
from rtlgen.quant.quantizers import Quantizer
from rtlgen.quant.reference import finish_activation


def read_keras_batchnorm(layer: KerasLayer, shape: Shape, source: WeightSource) -> LayerOut:
    check_bn_axis_last(layer, len(shape) + 1)
    channels = shape[-1]
    center, scale = config_bool(layer, "center", True), config_bool(layer, "scale", True)
    expected: dict[str, Shape] = {}
    if scale:
        expected["gamma"] = (channels,)
    if center:
        expected["beta"] = (channels,)
    expected.update(moving_mean=(channels,), moving_variance=(channels,))
    quantizers: dict[str, Quantizer | None] = {}
    if layer.class_name == "QBatchNormalization":
        # QKeras applies these quantizers to the parameters (not the data) at inference:
        # gamma/beta only when scale/center. The result is a float ScaleShift like any BN.
        for key in ("gamma", "beta", "mean", "variance"):
            quantizers[key] = parse_layer_quantizer(
                layer.config.get(f"{key}_quantizer"), f"{layer.where} {key}_quantizer"
            )
    got = {k: v.astype(np.float64) for k, v in layer_weights(source, layer, expected).items()}
    params = {
        "gamma": got.get("gamma", np.ones(channels)),
        "beta": got.get("beta", np.zeros(channels)),
        "mean": got["moving_mean"],
        "variance": got["moving_variance"],
    }
    for key, q in quantizers.items():
        if q is not None and (key != "gamma" or scale) and (key != "beta" or center):
            params[key] = q.reference(params[key])
    gamma, beta, mean, var = params["gamma"], params["beta"], params["mean"], params["variance"]
    eps = config_number(layer, "epsilon", 1e-3)
    assert eps is not None
    if np.any(var + eps <= 0):
        raise ModelFileError(f"{layer.where}: moving_variance + epsilon is not positive")
    bn_scale = gamma / np.sqrt(var + eps)
    bn_shift = beta - mean * bn_scale
    node = ir.ScaleShift(
        layer.name,
        shape,
        shape,
        scale=ir.FloatTensor(bn_scale),
        shift=ir.FloatTensor(bn_shift),
        source=layer.name,
    )
    return LayerOut([node], shape)


def scale_shift_reference(node: ir.ScaleShift, x: np.ndarray, in_type: FixedType) -> np.ndarray:
    assert isinstance(node.scale, ir.QTensor) and isinstance(node.shift, ir.QTensor)
    assert node.acc_type is not None
    acc_frac = node.acc_type.frac
    s = aligned_weights(node.scale.mantissa, in_type, node.scale.type, acc_frac)
    acc = x * s + align(node.shift.mantissa, node.shift.type.frac, acc_frac)
    return finish_activation(node, acc, acc_frac)


@register_op
class ScaleShiftOp(Op):
    name = "scale_shift"
    node_types = (ir.ScaleShift,)
    keras_classes = ("BatchNormalization", "QBatchNormalization")
    from_keras = staticmethod(read_keras_batchnorm)
    reference = staticmethod(scale_shift_reference)
    plan = staticmethod(plan_matvec)
    lower = staticmethod(lower_matvec)
