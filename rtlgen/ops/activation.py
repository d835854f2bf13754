"""Activation: a standalone piecewise-linear activation (``Activation``, ``ReLU``,
``QActivation``; ``Softmax`` as the last layer is a marker: the hardware emits the logits
and their arg-max).

Hardware: a `Requantize` (clamp in the input's units, then rounding and saturation).
"""

from __future__ import annotations

import numpy as np

from rtlgen import ir
from rtlgen.frontend.keras_config import (
    ActivationSpec,
    KerasLayer,
    LayerOut,
    WeightSource,
    config_number,
    config_value,
    layer_activation,
)
from rtlgen.ops.registry import Op, Shape, register_op
from rtlgen.passes import lower_activation
from rtlgen.plan import LayerPlan, PlanContext, requantize_stage
from rtlgen.quant.errors import UnsupportedError
from rtlgen.quant.fixed import FixedType
from rtlgen.quant.reference import finish_activation


def read_keras_activation(layer: KerasLayer, shape: Shape, source: WeightSource) -> LayerOut:
    if layer.class_name == "Softmax":
        axis = layer.config.get("axis", -1)
        if axis not in (-1, len(shape), [-1], [len(shape)]):
            raise UnsupportedError(f"{layer.where}: softmax over axis {axis} (only the last axis)")
        return LayerOut([], shape, softmax=True)
    if layer.class_name == "ReLU":
        threshold = config_number(layer, "threshold", 0.0)
        slope = config_number(layer, "negative_slope", 0.0)
        if threshold != 0.0 or slope != 0.0:
            raise UnsupportedError(
                f"{layer.where}: threshold={threshold}, negative_slope={slope} are not supported "
                "(only threshold=0, negative_slope=0, optional max_value)"
            )
        act = ActivationSpec(ir.Clamp(0.0, config_number(layer, "max_value", None)))
    else:
        act = layer_activation(layer, config_value(layer, "activation"))
    if act.softmax:
        return LayerOut([], shape, softmax=True)
    if act.identity:
        return LayerOut([], shape)
    node = ir.Activation(
        layer.name,
        shape,
        shape,
        activation=act.clamp,
        out_quantizer=act.quantizer,
        source=layer.name,
    )
    return LayerOut([node], shape)


def activation_reference(node: ir.Activation, x: np.ndarray, in_type: FixedType) -> np.ndarray:
    return finish_activation(node, x, in_type.frac)


def plan_activation(node: ir.Activation, ctx: PlanContext) -> LayerPlan:
    return LayerPlan(node, (requantize_stage(node, node.out_shape[-1]),), out_spacing=ctx.spacing)


@register_op
class ActivationOp(Op):
    name = "activation"
    node_types = (ir.Activation,)
    keras_classes = ("Activation", "ReLU", "Softmax", "QActivation")
    from_keras = staticmethod(read_keras_activation)
    reference = staticmethod(activation_reference)
    plan = staticmethod(plan_activation)
    lower = staticmethod(lower_activation)
