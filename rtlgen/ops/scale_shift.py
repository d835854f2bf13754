"""ScaleShift: per-channel ``x * scale + shift``, a BatchNormalization that could not be
folded into the layer before it (``BatchNormalization``, ``QBatchNormalization``), and the
preprocessing layers that are one: ``Rescaling`` (``x * scale + offset``) and an adapted
``Normalization`` (``(x - mean) / max(sqrt(variance), 1e-7)``, or its ``invert``), both per
channel or for all channels.

Hardware: a diagonal constant matrix-vector product (`rtlgen.ops.matvec`; the off-diagonal
zeros build nothing).

A Keras ``BatchNormalization`` is read as a `KerasBatchNorm` (a ScaleShift that also keeps
the float32 parameters, `rtlgen.quant.threshold.FloatBatchNorm`): followed by a quantizer of
few levels it becomes a `rtlgen.ops.threshold.Threshold` (`rtlgen.passes.fuse_thresholds`,
exact); otherwise, when a quantizer follows, `lower_scale_shift` proves that the quantized
scale and shift decide every rounding as the float model does (at each threshold of the
float function and just below it: both are monotone, so that covers every input), widening
them up to `MAX_BN_WIDTH` bits until they do; where float32 rounding inside the BN decides
a threshold no width does, the inputs it decides differently are corrected
(`rtlgen.ops.bn_correct`, exact), or with more of them than that takes, it warns (keeping
the width with the fewest differences).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rtlgen import ir
from rtlgen.calibrate import float_activate, float_values
from rtlgen.frontend.keras_config import (
    TENSOR_CONSTANT_OPS,
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
from rtlgen.passes import LowerContext, lower_matvec
from rtlgen.quant.arith import align, aligned_weights
from rtlgen.quant.errors import ModelFileError, RtlgenError, RtlgenWarning, UnsupportedError
from rtlgen.quant.fixed import FixedType
from rtlgen.quant.quantizers import Quantizer
from rtlgen.quant.reference import finish_activation
from rtlgen.quant.threshold import (
    MAX_THRESHOLD_LEVELS,
    FloatBatchNorm,
    StepFunction,
    find_thresholds,
    level_span,
    step_output_type,
)

#: widest scale/shift the exactness proof of `lower_scale_shift` widens to
MAX_BN_WIDTH = 32
#: largest threshold search (channels x output steps) the proof runs
MAX_PROOF_SEARCH = 1 << 22


@dataclass(frozen=True, eq=False)
class KerasBatchNorm(ir.ScaleShift):
    """A ScaleShift read from a Keras ``BatchNormalization``, with its float32 parameters
    (``bn``) for exact decisions; lowering makes it a plain `ir.ScaleShift`."""

    bn: FloatBatchNorm | None = field(default=None, kw_only=True)


def plain_scale_shift(node: ir.ScaleShift) -> ir.ScaleShift:
    """The node as an `ir.ScaleShift` (without the float parameters)."""
    if type(node) is ir.ScaleShift:
        return node
    return ir.ScaleShift(
        **{f.name: getattr(node, f.name) for f in dataclasses.fields(ir.ScaleShift)}
    )


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
    float_bn = None
    if layer.class_name == "BatchNormalization":
        # Keras runs the fused kernel ((y - mean) * inv + beta) on rank-4 inputs unless
        # the config says fused=False; tf.nn.batch_normalization otherwise.
        centered = len(shape) == 3 and layer.config.get("fused") is not False
        float_bn = FloatBatchNorm(gamma, beta, mean, var, float(eps), centered)
    node = KerasBatchNorm(
        layer.name,
        shape,
        shape,
        scale=ir.FloatTensor(bn_scale),
        shift=ir.FloatTensor(bn_shift),
        source=layer.name,
        bn=float_bn,
    )
    return LayerOut([node], shape)


#: Keras's ``backend.epsilon()``, the least divisor of ``Normalization``
_KERAS_EPSILON = 1e-7


def _channel_values(layer: KerasLayer, key: str, value: Any, channels: int) -> np.ndarray:
    """A config number, list or serialized numpy array as one value per channel (a scalar
    for all of them, or exactly ``channels`` values)."""
    if isinstance(value, dict) and value.get("class_name") == "__numpy__":
        value = (value.get("config") or {}).get("value")
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ModelFileError(f"{layer.where}: '{key}' = {value!r:.60} is not a number") from None
    if array.size == 1:
        array = np.full(channels, float(array.reshape(-1)[0]))
    if array.shape != (channels,) and array.squeeze().shape != (channels,):
        raise UnsupportedError(
            f"{layer.where}: '{key}' has shape {array.shape}; supported: one value, or one per "
            f"channel ({channels})"
        )
    array = array.reshape(channels)
    if not np.all(np.isfinite(array)):
        raise ModelFileError(f"{layer.where}: '{key}' contains NaN or infinity")
    return array


def _affine(layer: KerasLayer, shape: Shape, scale: np.ndarray, shift: np.ndarray) -> LayerOut:
    node = ir.ScaleShift(
        layer.name,
        shape,
        shape,
        scale=ir.FloatTensor(np.array(scale, dtype=np.float64)),
        shift=ir.FloatTensor(np.array(shift, dtype=np.float64)),
        source=layer.name,
    )
    return LayerOut([node], shape)


def read_keras_rescaling(layer: KerasLayer, shape: Shape, source: WeightSource) -> LayerOut:
    """``Rescaling``: ``x * scale + offset`` (no weights)."""
    channels = shape[-1]
    scale = _channel_values(layer, "scale", layer.config.get("scale", 1.0), channels)
    offset = _channel_values(layer, "offset", layer.config.get("offset", 0.0), channels)
    return _affine(layer, shape, scale, offset)


def read_keras_normalization(layer: KerasLayer, shape: Shape, source: WeightSource) -> LayerOut:
    """``Normalization`` (adapted: ``mean``, ``variance``, ``count`` weights; or given in the
    config): ``(x - mean) / max(sqrt(variance), 1e-7)``; ``invert``:
    ``mean + x * max(sqrt(variance), 1e-7)``. Per channel (``axis=-1``, Keras's default) or
    one mean and variance for all (``axis=None``)."""
    channels = shape[-1]
    axis = layer.config.get("axis", -1)
    axes = [axis] if isinstance(axis, int) else axis
    rank = len(shape) + 1  # with the batch axis
    if axes is None or axes == []:
        kept: Shape = ()
    elif isinstance(axes, list) and len(axes) == 1 and axes[0] in (-1, rank - 1):
        kept = (channels,)
    else:
        raise UnsupportedError(
            f"{layer.where}: axis={axis} is not supported (supported: -1, one mean and "
            "variance per channel, or None, one for all)"
        )
    if layer.config.get("mean") is not None or layer.config.get("variance") is not None:
        mean = _channel_values(layer, "mean", layer.config.get("mean"), channels)
        variance = _channel_values(layer, "variance", layer.config.get("variance"), channels)
    else:
        got = layer_weights(source, layer, {"mean": kept, "variance": kept, "count": ()})
        mean = np.broadcast_to(got["mean"].astype(np.float64), (channels,))
        variance = np.broadcast_to(got["variance"].astype(np.float64), (channels,))
    if np.any(variance < 0):
        raise ModelFileError(f"{layer.where}: variance is negative")
    deviation = np.maximum(np.sqrt(variance), _KERAS_EPSILON)
    if config_bool(layer, "invert", False):
        scale, shift = deviation, mean
    else:
        scale, shift = 1.0 / deviation, -mean / deviation
    return _affine(layer, shape, scale, shift)


def read_keras_operation(layer: KerasLayer, shape: Shape, source: WeightSource) -> LayerOut:
    """A Keras 3 operation of a tensor and one number (``x + 3.0``, ``x * (1.0 / 6.0)``,
    ``3.0 - x``, ``x / 6.0``: keras.applications' MobileNetV3 hard_sigmoid) as
    ``x * scale + offset``; the operands come from its call (`keras_config._with_operands`)."""
    operands = layer.config.get("operands")
    numbers = [v for v in operands or () if v is not None]
    ok = (
        isinstance(operands, list)
        and len(operands) == 2
        and operands.count(None) == 1
        and isinstance(numbers[0], int | float)
        and not isinstance(numbers[0], bool)
        and math.isfinite(numbers[0])
    )
    op = layer.class_name.removeprefix("ops.")
    if not ok or (op in ("TrueDivide", "Divide") and operands[0] is not None):
        raise UnsupportedError(
            f"{layer.where}: {op} of {operands!r:.80} is not supported (supported: a tensor "
            "and one number: x + c, x - c, c - x, x * c, c * x, x / c)"
        )
    c = float(numbers[0])
    scale, offset = {
        "Add": (1.0, c),
        "Subtract": (1.0, -c) if operands[0] is None else (-1.0, c),
        "Multiply": (c, 0.0),
        "TrueDivide": (1.0 / c if c else math.inf, 0.0),
        "Divide": (1.0 / c if c else math.inf, 0.0),
    }[op]
    if not math.isfinite(scale):
        raise UnsupportedError(f"{layer.where}: division by 0")
    channels = shape[-1]
    return _affine(layer, shape, np.full(channels, scale), np.full(channels, offset))


def read_keras_scale_shift(layer: KerasLayer, shape: Shape, source: WeightSource) -> LayerOut:
    if layer.class_name.startswith("ops."):
        return read_keras_operation(layer, shape, source)
    if layer.class_name == "Rescaling":
        return read_keras_rescaling(layer, shape, source)
    if layer.class_name == "Normalization":
        return read_keras_normalization(layer, shape, source)
    return read_keras_batchnorm(layer, shape, source)


def lower_scale_shift(node: ir.ScaleShift, ctx: LowerContext) -> ir.Node:
    """`lower_matvec`; a float BN followed by a quantizer (and no explicit types) gets the
    narrowest scale/shift width from ``bn_width`` up that decides every output like the
    float model; if none does (float32 rounding inside the BN decides some thresholds, which
    no exact affine map reproduces), the width with the fewest differing decisions and a
    warning."""
    bn = getattr(node, "bn", None)
    plain = plain_scale_shift(node)
    lowered = lower_matvec(plain, ctx)
    q = node.out_quantizer
    explicit = ctx.explicit.weight is not None or ctx.explicit.bias is not None
    where = f"layer '{node.source or node.name}'"
    if bn is not None and q is None and ctx.quantized_model and not explicit:
        # a float BN not decided by a quantizer right after it (a new-user trial's HGQ2
        # model: BN -> Flatten -> QDense): its float32 arithmetic as a rounded scale/shift
        assert isinstance(lowered, ir.ScaleShift) and isinstance(lowered.scale, ir.QTensor)
        warnings.warn(
            f"{where}: a float BatchNormalization in a quantized model with no quantizer of "
            f"its own after it is a {lowered.scale.type.width}-bit scale/shift, so the next "
            "quantizer can (rarely) round a value differently from the framework's float BN; "
            "for exact results fold it into the layer before (HGQ2 QBatchNormDense, QKeras "
            "QConv2DBatchnorm) or quantize its output right after it (QKeras QActivation)",
            RtlgenWarning,
            stacklevel=2,
        )
    if bn is None or q is None or explicit or step_output_type(q) is None:
        return lowered
    f = StepFunction(ctx.in_type, q, step_output_type(q), node.activation, bn)
    channels = node.in_shape[-1]
    if channels * level_span(f, channels) > MAX_PROOF_SEARCH:
        warnings.warn(
            f"{where}: BatchNormalization + {q}: too many output levels to prove that the "
            f"{ctx.config.bn_width}-bit scale/shift round every value as the float model",
            RtlgenWarning,
            stacklevel=2,
        )
        return lowered
    points = _decision_points(f, channels)
    want = f(points)
    best, best_misses = lowered, -1
    width = ctx.config.bn_width
    candidate = lowered
    while True:
        misses = int(
            np.count_nonzero(scale_shift_reference(candidate, points, ctx.in_type) != want)
        )
        if misses == 0:
            return candidate
        if best_misses < 0 or misses < best_misses:
            best, best_misses = candidate, misses
        width += 2
        if width > MAX_BN_WIDTH:
            break
        config = dataclasses.replace(ctx.config, bn_width=width)
        try:
            candidate = lower_matvec(plain, dataclasses.replace(ctx, config=config))
        except RtlgenError:
            break
    assert isinstance(best, ir.ScaleShift) and isinstance(best.scale, ir.QTensor)
    from rtlgen.ops.bn_correct import MAX_CORRECTIONS, corrected

    # the few inputs float32 rounding decides otherwise: corrected (rtlgen.ops.bn_correct)
    exact, skipped = corrected(best, f, channels)
    if not skipped:
        return best if exact is None else exact
    warnings.warn(
        f"{where}: BatchNormalization + {q}: in {len(skipped)} of its {channels} channels "
        "float32 rounding inside the BN decides more inputs differently from a "
        f"{best.scale.type.width}-bit scale/shift than the {MAX_CORRECTIONS} corrections per "
        "channel rtlgen builds: those channels may round differently from the float model "
        f"({best_misses} of {want.size} decision points before corrections); quantizers of at "
        f"most {MAX_THRESHOLD_LEVELS} levels are exact (thresholds)",
        RtlgenWarning,
        stacklevel=2,
    )
    return best if exact is None else exact


def _decision_points(f: StepFunction, channels: int) -> np.ndarray:
    """Inputs (M, C) at which a monotone function equal to ``f`` there equals it everywhere:
    both ends of the range, each threshold and the input just below it."""
    t = find_thresholds(f, channels, rsqrt_ulps=0)
    lo, hi = f.in_type.min_int, f.in_type.max_int
    inside = t.thresholds.clip(lo, hi)
    ends = np.array([[lo] * channels, [hi] * channels])
    return np.concatenate([ends, inside.T, (inside - 1).clip(lo, hi).T])


def scale_shift_reference(node: ir.ScaleShift, x: np.ndarray, in_type: FixedType) -> np.ndarray:
    assert isinstance(node.scale, ir.QTensor) and isinstance(node.shift, ir.QTensor)
    assert node.acc_type is not None
    acc_frac = node.acc_type.frac
    s = aligned_weights(node.scale.mantissa, in_type, node.scale.type, acc_frac)
    acc = x * s + align(node.shift.mantissa, node.shift.type.frac, acc_frac)
    return finish_activation(node, acc, acc_frac)


def scale_shift_float(node: ir.ScaleShift, x: np.ndarray) -> np.ndarray:
    """The float per-channel scale and shift (`rtlgen.calibrate`)."""
    return float_activate(node, x * float_values(node.scale) + float_values(node.shift))


@register_op
class ScaleShiftOp(Op):
    name = "scale_shift"
    node_types = (ir.ScaleShift, KerasBatchNorm)
    keras_classes = (
        "BatchNormalization",
        "QBatchNormalization",
        "Normalization",
        "Rescaling",
        *TENSOR_CONSTANT_OPS,
    )
    from_keras = staticmethod(read_keras_scale_shift)
    reference = staticmethod(scale_shift_reference)
    float_forward = staticmethod(scale_shift_float)
    plan = staticmethod(plan_matvec)
    lower = staticmethod(lower_scale_shift)
