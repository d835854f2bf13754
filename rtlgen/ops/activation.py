"""Activation: a standalone clamp activation (``Activation``, ``QActivation``; ``Softmax`` as
the last layer is a marker: the hardware emits the logits and their arg-max). Non-linear
activations (``sigmoid``, ``tanh``, ...: `rtlgen.ops.lut_activation`) and leaky ones
(`rtlgen.ops.leaky_relu`, which also reads ``ReLU`` layers) are nodes of their own ops,
made by `activation_nodes`.

Hardware: a `Requantize` (clamp in the input's units, then rounding and saturation).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from rtlgen import ir
from rtlgen.calibrate import float_activate
from rtlgen.frontend.keras_config import (
    ActivationSpec,
    KerasLayer,
    LayerOut,
    WeightSource,
    config_value,
    layer_activation,
)
from rtlgen.ops.leaky_relu import spec_node
from rtlgen.ops.lut_activation import table_node
from rtlgen.ops.registry import Op, Shape, register_op
from rtlgen.passes import lower_activation
from rtlgen.quant.errors import UnsupportedError
from rtlgen.quant.fixed import FixedType
from rtlgen.quant.reference import finish_activation

if TYPE_CHECKING:
    from rtlgen.plan import LayerPlan, PlanContext


def read_keras_activation(layer: KerasLayer, shape: Shape, source: WeightSource) -> LayerOut:
    if layer.class_name == "Softmax":
        axis = layer.config.get("axis", -1)
        if axis not in (-1, len(shape), [-1], [len(shape)]):
            raise UnsupportedError(f"{layer.where}: softmax over axis {axis} (only the last axis)")
        return LayerOut([], shape, softmax=True)
    act = layer_activation(layer, config_value(layer, "activation"))
    if act.softmax:
        return LayerOut([], shape, softmax=True)
    return LayerOut(activation_nodes(layer, shape, act, layer.name), shape)


def activation_nodes(
    layer: KerasLayer, shape: Shape, act: ActivationSpec, name: str
) -> list[ir.Node]:
    """The node computing ``act`` on its own (none for the identity): a lookup table
    (`rtlgen.ops.lut_activation`), a leaky ReLU (`rtlgen.ops.leaky_relu`) or a clamp with
    the output quantizer (`ir.Activation`). A layer whose activation is ``separate`` is its
    linear part followed by these nodes."""
    if act.table is not None:
        return [table_node(name, shape, act, layer.name)]
    if act.negative_slope is not None:
        return [spec_node(name, shape, act, layer.name)]
    if act.identity:
        return []
    node = ir.Activation(
        name, shape, shape, activation=act.clamp, out_quantizer=act.quantizer, source=layer.name
    )
    return [node]


def activation_reference(node: ir.Activation, x: np.ndarray, in_type: FixedType) -> np.ndarray:
    return finish_activation(node, x, in_type.frac)


def plan_activation(node: ir.Activation, ctx: PlanContext) -> LayerPlan:
    from rtlgen.plan import LayerPlan, requantize_stage

    return LayerPlan(node, (requantize_stage(node, node.out_shape[-1]),), out_spacing=ctx.spacing)


def activation_float(node: ir.Activation, x: np.ndarray) -> np.ndarray:
    """The float activation (`rtlgen.calibrate`)."""
    return float_activate(node, x)


@register_op
class ActivationOp(Op):
    name = "activation"
    node_types = (ir.Activation,)
    keras_classes = ("Activation", "Softmax", "QActivation")
    from_keras = staticmethod(read_keras_activation)
    reference = staticmethod(activation_reference)
    float_forward = staticmethod(activation_float)
    plan = staticmethod(plan_activation)
    lower = staticmethod(lower_activation)
