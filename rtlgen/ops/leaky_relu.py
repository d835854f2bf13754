"""Leaky ReLU: ``x > threshold ? min(x, max_value) : alpha * (x - threshold)`` rounded into the
output type (`rtlgen.quant.activations.LeakySpec`): Keras ``LeakyReLU`` (``alpha``; Keras 3
``negative_slope``), ``ReLU(max_value, negative_slope, threshold)``, ``ThresholdedReLU``,
``PReLU`` (any ``shared_axes``: one alpha per channel when they hold every spatial axis of a
1D/2D input, else alphas that vary with the pixel position, at most `MAX_POSITION_ALPHAS`
distinct ones), the ``leaky_relu`` activation string (slope 0.2) and QKeras
``quantized_relu(bits, integer, negative_slope=s)``. A ReLU without negative slope and
threshold stays an `ir.Activation` clamp (which the layer before it can absorb).

Precision (`lower_leaky`): each alpha becomes a 16-bit fixed-point slope (exact when it is
a dyadic number of at most 16 bits, e.g. 0.25; `slope_type`); the threshold must then lie
on the input grid. The output type: QKeras ``quantized_relu(negative_slope)``: its grid
(`QuantizedLeakyRelu.leaky_type`, convergent rounding, saturation) and the clip of its
negative side at ``-s * 2**integer`` (``out_clamp``), bit-exact with QKeras; an explicit
result type; in a QKeras model otherwise the exact result; in a float model ``result_frac``
fractional bits with the integer bits interval analysis proves. ``max_error``: the bound
on ``|output - Keras|`` of `leaky_error_bound` (0 for the QKeras quantizer, exact).

Hardware: `PiecewiseLinear` (compare, CSD shift-adds of the constant slope, `Requantize`)
[-> a `Requantize` clip for the QKeras negative side]. II = 1, latency 1 (+1). Alphas that
vary with the position (``scale`` of the input's shape): `PositionalPiecewiseLinear`, a
position counter addressing a ROM of each position's slopes and a multiplier per channel
(the same arithmetic as per channel). II = 1, latency 3. Several pixels per beat: the plan
folds the stream to one pixel per beat first (`rtlgen.ppb`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from rtlgen import ir
from rtlgen.frontend.keras_config import (
    ActivationSpec,
    KerasLayer,
    LayerOut,
    WeightSource,
    config_number,
    config_value,
    layer_weights,
)
from rtlgen.ops.registry import Op, Shape, register_op
from rtlgen.passes import LowerContext
from rtlgen.quant.activations import (
    LeakySpec,
    leaky_error_bound,
    max_value_mantissa,
    quantize_slope,
    slope_type,
    threshold_mantissa,
)
from rtlgen.quant.arith import apply_clamp
from rtlgen.quant.errors import ModelFileError, RtlgenError, UnsupportedError
from rtlgen.quant.fixed import FixedType, Overflow, Rounding, shift_round
from rtlgen.quant.quantizers import QuantizedLeakyRelu

if TYPE_CHECKING:
    from rtlgen.plan import LayerPlan, PlanContext

#: Bits of a fixed-point slope (`slope_type`): exact for dyadic alphas of up to 16 bits.
SLOPE_BITS = 16
#: Most alphas of a PReLU whose alphas vary with the position (Keras's alpha weight, shared
#: axes left out): 64 K words of 16 bits, a 1 Mb ROM (~29 RAMB36).
MAX_POSITION_ALPHAS = 1 << 16


@dataclass(frozen=True, eq=False)
class LeakyRelu(ir.Node):
    """``y = x > threshold ? min(x, max_value) : scale * (x - threshold)``, rounded into
    ``out_type`` (``rounding``, ``overflow``), then clipped to ``out_clamp`` (QKeras's
    quantized leaky ReLU bounds its negative side).

    ``scale``: the negative-side slope of each element of the last axis (``(C,)``; one
    alpha for the whole tensor is repeated), or of each element (the input's shape: a
    PReLU whose alphas vary with the position): float alphas (`ir.FloatTensor`) before
    lowering, slope mantissas (`ir.QTensor` of a `slope_type`) after. ``threshold`` and
    ``max_value`` are real values (Keras's); ``out_quantizer`` the QKeras quantizer (read
    by `lower_leaky` only). ``acc_type``: the exact pre-rounding value's type.
    """

    scale: ir.Tensor = field(kw_only=True)
    threshold: float = field(default=0.0, kw_only=True)
    max_value: float | None = field(default=None, kw_only=True)
    out_quantizer: Any = field(default=None, kw_only=True)
    out_clamp: ir.Clamp = field(default=ir.LINEAR, kw_only=True)
    acc_type: FixedType | None = field(default=None, kw_only=True)
    rounding: Rounding = field(default=Rounding.CONVERGENT, kw_only=True)
    overflow: Overflow = field(default=Overflow.SATURATE, kw_only=True)
    max_error: float = field(default=0.0, kw_only=True)

    op = "leaky_relu"

    def describe(self) -> str:
        """What ``rtlgen inspect`` shows in its activation column."""
        s = self.scale
        alphas = s.values if isinstance(s, ir.QTensor | ir.FloatTensor) else np.zeros(1)
        per = "per element" if per_position(self) else "per channel"
        alpha = f"{alphas.flat[0]:g}" if np.all(alphas == alphas.flat[0]) else per
        text = f"leaky(alpha={alpha}"
        if self.threshold:
            text += f", threshold={self.threshold:g}"
        if self.max_value is not None:
            text += f", max={self.max_value:g}"
        return text + f"), max error {self.max_error:.2g}"


# ---------------------------------------------------------------------------------------
# front-end
# ---------------------------------------------------------------------------------------
def leaky_node(
    name: str,
    shape: Shape,
    alpha: float | np.ndarray,
    source: str,
    *,
    threshold: float = 0.0,
    max_value: float | None = None,
    quantizer: Any = None,
) -> LeakyRelu:
    alphas = np.asarray(alpha, dtype=np.float64)
    if alphas.ndim <= 1 or len(shape) == 1:  # one alpha, or one per channel
        alphas = np.broadcast_to(alphas.reshape(-1), (shape[-1],)).copy()
    else:  # per element: Keras's alpha shape (1 on the shared axes) broadcast to the input's
        alphas = np.broadcast_to(alphas, shape).copy()
    return LeakyRelu(
        name,
        shape,
        shape,
        scale=ir.FloatTensor(alphas),
        threshold=float(threshold),
        max_value=max_value,
        out_quantizer=quantizer,
        source=source,
    )


def spec_node(name: str, shape: Shape, act: ActivationSpec, source: str) -> LeakyRelu:
    """The node of an `ActivationSpec` with a ``negative_slope`` (the ``leaky_relu``
    string, QKeras ``quantized_relu(negative_slope=...)``)."""
    assert act.negative_slope is not None
    return leaky_node(name, shape, act.negative_slope, source, quantizer=act.leaky_quantizer)


def read_keras_leaky(layer: KerasLayer, shape: Shape, source: WeightSource) -> LayerOut:
    cls = layer.class_name
    if cls == "LeakyReLU":
        key = "negative_slope" if "negative_slope" in layer.config else "alpha"
        alpha = config_number(layer, key, 0.3)
        assert alpha is not None
        return LayerOut([leaky_node(layer.name, shape, alpha, layer.name)], shape)
    if cls == "ThresholdedReLU":
        theta = config_number(layer, "theta", 1.0)
        assert theta is not None
        node = leaky_node(layer.name, shape, 0.0, layer.name, threshold=theta)
        return LayerOut([node], shape)
    if cls == "PReLU":
        return _read_prelu(layer, shape, source)
    # ReLU
    threshold = config_number(layer, "threshold", 0.0)
    slope = config_number(layer, "negative_slope", 0.0)
    max_value = config_number(layer, "max_value", None)
    assert threshold is not None and slope is not None
    if max_value is not None and max_value < 0:
        raise UnsupportedError(f"{layer.where}: max_value={max_value} (supported: >= 0)")
    if slope < 0:
        raise UnsupportedError(f"{layer.where}: negative_slope={slope} (supported: >= 0)")
    if threshold == 0.0 and slope == 0.0:
        node: ir.Node = ir.Activation(
            layer.name, shape, shape, activation=ir.Clamp(0.0, max_value), source=layer.name
        )
        return LayerOut([node], shape)
    if threshold < 0 and max_value is not None:
        raise UnsupportedError(
            f"{layer.where}: threshold={threshold} with max_value={max_value} is not supported "
            "(Keras then also clips the inputs between the threshold and 0 to 0; supported: "
            "threshold >= 0 with max_value)"
        )
    node = leaky_node(
        layer.name, shape, slope, layer.name, threshold=threshold, max_value=max_value
    )
    return LayerOut([node], shape)


def per_position(node: LeakyRelu) -> bool:
    """Whether the node's alphas are per element of an image or sequence (vary with the
    position), not per channel."""
    return len(node.scale.shape) > 1


def _read_prelu(layer: KerasLayer, shape: Shape, source: WeightSource) -> LayerOut:
    """PReLU: alpha has the input's shape with the ``shared_axes`` (1-based, batch = 0)
    set to 1: one alpha per channel (or per element of a vector) when every spatial axis is
    shared, else per element (at most `MAX_POSITION_ALPHAS` of them)."""
    shared = config_value(layer, "shared_axes", None)
    if shared is None:
        shared = []
    if isinstance(shared, int) and not isinstance(shared, bool):
        shared = [shared]
    rank = len(shape)
    if not isinstance(shared, list) or not all(
        isinstance(a, int) and not isinstance(a, bool) and 1 <= a <= rank for a in shared
    ):
        raise ModelFileError(
            f"{layer.where}: shared_axes={shared!r} is not a list of axes 1..{rank}"
        )
    alpha_shape = tuple(1 if axis + 1 in shared else d for axis, d in enumerate(shape))
    words = math.prod(alpha_shape)
    if words > MAX_POSITION_ALPHAS:
        raise UnsupportedError(
            f"{layer.where}: shared_axes={shared} gives {words} alphas (shape {alpha_shape}); "
            f"supported: up to {MAX_POSITION_ALPHAS} (share more axes, e.g. "
            f"shared_axes={list(range(1, rank))} for one alpha per channel)"
        )
    alpha = layer_weights(source, layer, {"alpha": alpha_shape})["alpha"]
    alphas = np.asarray(alpha, dtype=np.float64)
    if all(d == 1 for d in alpha_shape[:-1]):  # per channel (or one for all)
        alphas = alphas.reshape(-1)
    return LayerOut([leaky_node(layer.name, shape, alphas, layer.name)], shape)


# ---------------------------------------------------------------------------------------
# precision
# ---------------------------------------------------------------------------------------
def _spec(node: LeakyRelu, in_type: FixedType, out_type: FixedType) -> LeakySpec:
    """The node's `LeakySpec` over ``in_type`` (slopes lowered)."""
    assert isinstance(node.scale, ir.QTensor)
    slope = node.scale.mantissa
    slope_shape = node.scale.shape if per_position(node) else None
    threshold = threshold_mantissa(node.threshold, in_type, bool(np.any(slope != 0)))
    top = (
        None
        if node.max_value is None
        else max_value_mantissa(node.max_value, out_type, node.rounding)
    )
    return LeakySpec(
        in_type,
        tuple(int(s) for s in slope.reshape(-1)),
        node.scale.type,
        out_type,
        threshold,
        top,
        node.rounding,
        node.overflow,
        slope_shape,
    )


def leaky_spec(node: LeakyRelu, in_type: FixedType) -> LeakySpec:
    """The lowered node's `LeakySpec` (what the reference and the hardware compute)."""
    assert node.out_type is not None
    return _spec(node, in_type, node.out_type)


def lower_leaky(node: LeakyRelu, ctx: LowerContext) -> LeakyRelu:
    where = f"layer '{node.source or node.name}'"
    in_type, config = ctx.in_type, ctx.config
    alphas = np.asarray(node.scale.values, dtype=np.float64)
    s_type = slope_type(alphas, SLOPE_BITS)
    scale = ir.QTensor(quantize_slope(alphas, s_type), s_type)
    q = node.out_quantizer
    out_type: FixedType | None
    if q is not None:
        if not isinstance(q, QuantizedLeakyRelu):
            raise RtlgenError(f"{where}: output quantizer {q} of a leaky ReLU")
        node = node.replace(scale=scale, rounding=Rounding.CONVERGENT, overflow=Overflow.SATURATE)
        out_type = q.leaky_type()
        low = q.low_bound()
        clamp = ir.Clamp(low, None) if low > out_type.min_value else ir.LINEAR
        node = node.replace(out_clamp=clamp)
    else:
        node = node.replace(scale=scale, rounding=config.rounding, overflow=config.overflow)
        out_type = ctx.explicit.result
    try:
        if out_type is None:
            exact = ctx.quantized_model
            out_type = _result_type(node, in_type, exact, config.result_frac)
        spec = _spec(node, in_type, out_type)
    except RtlgenError as exc:
        raise type(exc)(f"{where}: {exc}") from None
    error = 0.0
    if q is None:
        error = leaky_error_bound(alphas.reshape(-1), spec, max_value=node.max_value)
    return node.replace(out_type=out_type, acc_type=spec.acc_type(), max_error=float(error))


def _result_type(node: LeakyRelu, in_type: FixedType, exact: bool, result_frac: int) -> FixedType:
    """The exact value's range (interval analysis) with its own fractional bits (exact) or
    ``result_frac`` of them (never more than it has), rounding included."""
    assert isinstance(node.scale, ir.QTensor)
    frac = in_type.frac + max(node.scale.type.frac, 0)  # `LeakySpec.acc_frac` without a max
    out_frac = frac if exact else min(frac, result_frac)
    probe = _spec(node, in_type, FixedType(62, out_frac, True))
    lo, hi = probe.acc_range()
    if probe.max_bound is not None:
        hi = min(hi, probe.max_bound)
    shift = probe.acc_frac - out_frac
    lo_r = int(shift_round(np.int64(lo), shift, node.rounding))
    hi_r = int(shift_round(np.int64(hi), shift, node.rounding))
    return FixedType.covering(lo_r, hi_r, out_frac)


# ---------------------------------------------------------------------------------------
# reference, hardware, checks
# ---------------------------------------------------------------------------------------
def _clamp_mantissas(node: LeakyRelu) -> tuple[int | None, int | None]:
    assert node.out_type is not None
    t = node.out_type
    bounds = []
    for bound in (node.out_clamp.lo, node.out_clamp.hi):
        if bound is None:
            bounds.append(None)
            continue
        scaled = bound * 2.0**t.frac
        if scaled != math.floor(scaled) or not t.min_int <= scaled <= t.max_int:
            raise RtlgenError(f"output clip {bound} is not a value of {t}")
        bounds.append(int(scaled))
    return bounds[0], bounds[1]


def leaky_reference(node: LeakyRelu, x: np.ndarray, in_type: FixedType) -> np.ndarray:
    y = leaky_spec(node, in_type)(x)
    lo, hi = _clamp_mantissas(node)
    return apply_clamp(y, lo, hi)


def plan_leaky(node: LeakyRelu, ctx: PlanContext) -> LayerPlan:
    from rtlgen.layers.lookup import PiecewiseLinear, PositionalPiecewiseLinear
    from rtlgen.layers.requantize import Requantize
    from rtlgen.plan import LayerPlan, StreamFormat

    assert node.out_type is not None
    lanes = StreamFormat.of(node.in_shape, ctx.in_type).elements
    spec = leaky_spec(node, ctx.in_type)
    notes: tuple[str, ...] = ()
    if spec.slope_shape is None:
        stages: list[Any] = [PiecewiseLinear(spec, lanes)]
    else:
        stage = PositionalPiecewiseLinear(spec)
        stages = [stage]
        if stage.per_channel is not None:  # the same alphas at every position after all
            stages = [PiecewiseLinear(stage.per_channel, lanes)]
        else:
            notes = (f"alphas per position: a ROM of {stage.depth} x {stage.word_bits} bits",)
    lo, hi = _clamp_mantissas(node)
    if lo is not None or hi is not None:
        stages.append(Requantize(lanes, node.out_type, node.out_type, lo, hi))
    return LayerPlan(node, tuple(stages), out_spacing=ctx.spacing, notes=notes)


def leaky_constant_shapes(in_shape: Shape, out_shape: Shape) -> dict[str, list[Shape]]:
    """Alphas per channel, or per element of an image or sequence."""
    return {"scale": [(in_shape[-1],), tuple(in_shape)]}


def validate_leaky(node: LeakyRelu, in_type: FixedType | None) -> None:
    from rtlgen.layers.lookup import position_slopes

    if node.in_shape != node.out_shape:
        raise RtlgenError(f"in_shape {node.in_shape} and out_shape {node.out_shape} differ")
    if node.out_type is None or node.acc_type is None or not isinstance(node.scale, ir.QTensor):
        raise RtlgenError("the slopes, the output type and the accumulator type must be set")
    if node.scale.type.width > 32 or abs(node.scale.type.frac) > 62:
        raise RtlgenError(f"slope type {node.scale.type} is out of range")
    if node.max_value is not None and node.max_value < 0:
        raise RtlgenError(f"max_value {node.max_value} is negative")
    if per_position(node):
        words = position_slopes(node.scale.mantissa).size
        if words > MAX_POSITION_ALPHAS:
            raise RtlgenError(
                f"{words} alphas vary with the position (supported: up to {MAX_POSITION_ALPHAS})"
            )
    if not math.isfinite(node.max_error) or node.max_error < 0:
        raise RtlgenError(f"max_error {node.max_error} is not a non-negative number")
    _clamp_mantissas(node)
    if in_type is not None:
        if abs(in_type.frac) > 62 or abs(node.out_type.frac - in_type.frac) > 62:
            raise RtlgenError(f"output type {node.out_type} is too far from the input {in_type}")
        spec = leaky_spec(node, in_type)
        if spec.acc_type() != node.acc_type:
            raise RtlgenError(
                f"accumulator type {node.acc_type} is not the exact one {spec.acc_type()}"
            )


def leaky_float(node: LeakyRelu, x: np.ndarray) -> np.ndarray:
    """The unlowered node on real inputs (calibration): Keras's formula, or the QKeras
    quantizer's own values where it has one."""
    if node.out_quantizer is not None:
        return node.out_quantizer.reference(x)
    alphas = np.asarray(node.scale.values, dtype=np.float64)  # broadcasts per element too
    top = x if node.max_value is None else np.minimum(x, node.max_value)
    return np.where(x > node.threshold, top, alphas * (x - node.threshold))


@register_op
class LeakyReluOp(Op):
    name = "leaky_relu"
    node_types = (LeakyRelu,)
    keras_classes = ("LeakyReLU", "PReLU", "ReLU", "ThresholdedReLU")
    from_keras = staticmethod(read_keras_leaky)
    lower = staticmethod(lower_leaky)
    reference = staticmethod(leaky_reference)
    float_forward = staticmethod(leaky_float)
    plan = staticmethod(plan_leaky)
    constant_shapes = staticmethod(leaky_constant_shapes)
    validate = staticmethod(validate_leaky)
