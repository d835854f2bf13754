"""HGQ2 layers (``hgq>QDense``, ``hgq>QConv1D``, ``hgq>QConv2D``, ``hgq>Quantizer``) and
their fixed-point activation quantizer (`FixedQuantize`).

An HGQ2 layer is ``oq(act(iq(x) @ kq(W) + bq(b)))``: it becomes a `FixedQuantize` node for
its input quantizer ``iq`` (when enabled), the Dense/Conv node of `rtlgen.ops.dense` /
`rtlgen.ops.conv` with the kernel and bias as HGQ2 quantized them (exact constants: per-weight
widths are kept exactly, pruned weights are zero and build nothing), its activation, and a
`FixedQuantize` for ``oq`` (``enable_oq``). Widths and modes: `rtlgen.frontend.hgq2`.
``QBatchNormDense`` is a QDense whose input's batch normalization HGQ2 folds into the kernel
and bias (`_fold_input_batchnorm`). ``QUnaryFunctionLUT`` (a table activation) is its input
quantizer and a `FunctionTable` (an exact `LookupTable` holding the output quantizer too);
``QSoftmax`` as the last layer is a marker, as Keras's softmax (`read_hgq2_softmax`).

`FixedQuantize` (contract): per element ``e`` (position and channel; a flat vector is one
position), ``y = fit(shift_round(x, fx - f_e), k_e, i_e, f_e) << (F - f_e)`` where ``fit``
saturates (SAT, SAT_SYM) or wraps (WRAP) into ``k_e + i_e + f_e`` bits and ``F`` is the
largest ``f_e``; an element of width 0 outputs 0. Hardware: `ChannelQuantize`, one register
stage, II = 1, stalls with the output's ready; per-position widths follow a position counter.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from rtlgen import ir
from rtlgen.frontend.hdf5 import StoredArray
from rtlgen.frontend.hgq2 import (
    OVERFLOW_MODES,
    ROUND_MODES,
    TABLE_FUNCTIONS,
    TABLE_ULPS,
    Exact,
    QuantizerSpec,
    QuantizerWidths,
    ambiguous,
    function_table,
    hardware_modes,
    layer_config_flag,
    per_position,
    quantized_constant,
    quantizer_spec,
    quantizer_widths,
    table_function,
)
from rtlgen.frontend.keras_config import (
    KerasLayer,
    LayerOut,
    Shape,
    WeightSource,
    source_limits,
)
from rtlgen.ops.conv import read_keras_conv
from rtlgen.ops.dense import read_keras_dense
from rtlgen.ops.registry import Op, register_op
from rtlgen.passes import LowerContext
from rtlgen.quant.activations import MAX_TABLE_INPUT_BITS, input_codes
from rtlgen.quant.errors import ModelFileError, RtlgenError, RtlgenWarning, UnsupportedError
from rtlgen.quant.fixed import FixedType, Overflow, Rounding, shift_round

if TYPE_CHECKING:
    from amaranth.lib import wiring

    from rtlgen.plan import LayerPlan, PlanContext

_WIDTH_TYPE = FixedType(8, 0, True)  # the per-channel integer/fractional bit counts
_FLAG_TYPE = FixedType(1, 0, False)


# ---------------------------------------------------------------------------------------
# the node
# ---------------------------------------------------------------------------------------
def positions_of(shape: Shape) -> int:
    """Beats per sample of a stream of ``shape``: its positions (pixels), 1 for a vector."""
    count = 1
    for dim in shape[:-1]:
        count *= dim
    return count


@dataclass(frozen=True, eq=False)
class FixedQuantize(ir.Node):
    """Fixed-point quantization with a width per element (HGQ2's activation quantizers).
    Widths: ``(positions, channels)`` arrays (`positions_of`; one row for a flat vector),
    ``keep_negative`` (0/1), ``integer_bits`` (``max(i, -f)``), ``frac_bits``; a pruned
    element (``k + i + f <= 0``) has all three 0."""

    keep_negative: ir.Tensor = field(kw_only=True)
    integer_bits: ir.Tensor = field(kw_only=True)
    frac_bits: ir.Tensor = field(kw_only=True)
    rounding: Rounding = field(default=Rounding.HALF_UP, kw_only=True)
    overflow: Overflow = field(default=Overflow.WRAP, kw_only=True)
    symmetric: bool = field(default=False, kw_only=True)

    op = "fixed_quantize"
    constant_fields: ClassVar[tuple[str, ...]] = ("keep_negative", "integer_bits", "frac_bits")

    def widths(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        tensors = (self.keep_negative, self.integer_bits, self.frac_bits)
        assert all(isinstance(t, ir.QTensor) for t in tensors)
        return tuple(t.mantissa.astype(np.int64) for t in tensors)  # type: ignore[union-attr,return-value]

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Per element (lowest, highest) mantissa in units of the element's own ``f``."""
        k, i, f = self.widths()
        top = (np.int64(1) << (i + f)) - 1
        low = -k * (top if self.symmetric and self.overflow is Overflow.SATURATE else top + 1)
        return low, top


def quantize_node(name: str, shape: Shape, widths: QuantizerWidths, source: str) -> FixedQuantize:
    """The node of an activation quantizer on tensors ``shape`` (one line refuses modes the
    hardware does not implement)."""
    rounding, overflow, symmetric = hardware_modes(widths)
    element = per_position(widths, shape)
    k, i, f = element.k, element.i, element.f
    pruned = k + i + f <= 0
    i = np.where(pruned, 0, np.maximum(i, -f))
    f = np.where(pruned, 0, f)
    k = np.where(pruned, 0, k)
    return FixedQuantize(
        name,
        shape,
        shape,
        keep_negative=ir.QTensor(k.astype(np.int64), _FLAG_TYPE),
        integer_bits=ir.QTensor(i.astype(np.int64), _WIDTH_TYPE),
        frac_bits=ir.QTensor(f.astype(np.int64), _WIDTH_TYPE),
        rounding=rounding,
        overflow=overflow,
        symmetric=symmetric,
        source=source,
    )


def quantize_out_type(node: FixedQuantize) -> FixedType:
    _, _, f = node.widths()
    low, top = node.bounds()
    frac = int(f.max(initial=0))
    shifts = frac - f
    return FixedType.covering(int((low << shifts).min()), int((top << shifts).max()), frac)


def lower_quantize(node: FixedQuantize, ctx: LowerContext) -> ir.Node:
    return node.replace(out_type=quantize_out_type(node))


def quantize_reference(node: FixedQuantize, x: np.ndarray, in_type: FixedType) -> np.ndarray:
    assert node.out_type is not None
    k, i, f = node.widths()
    low, top = node.bounds()
    x = np.asarray(x, dtype=np.int64)
    flat = x.reshape(x.shape[0], *k.shape)  # (N, positions, channels)
    r = np.zeros_like(flat)
    for frac in np.unique(f):
        rounded = shift_round(flat, in_type.frac - int(frac), node.rounding)
        r = np.where(f == frac, rounded, r)
    width = k + i + f
    if node.overflow is Overflow.SATURATE:
        r = np.clip(r, low, top)
    else:
        r = r & ((np.int64(1) << width) - 1)
        r = np.where(
            (k == 1) & (r >= (np.int64(1) << np.maximum(width - 1, 0))),
            r - (np.int64(1) << width),
            r,
        )
    y = np.where(width == 0, 0, r << (node.out_type.frac - f))
    return y.reshape(x.shape)


def validate_quantize(node: FixedQuantize, in_type: FixedType | None) -> None:
    if node.in_shape != node.out_shape:
        raise RtlgenError(f"in_shape {node.in_shape} and out_shape {node.out_shape} differ")
    k, i, f = node.widths()
    if np.any((k != 0) & (k != 1)) or np.any(np.abs(i) > 24) or np.any(np.abs(f) > 24):
        raise RtlgenError("widths out of range (k 0/1, |i|, |f| <= 24)")
    if np.any(i + f < 0):
        raise RtlgenError("an element has fewer than 0 integer + fractional bits")
    if node.out_type != quantize_out_type(node):
        raise RtlgenError(f"output type {node.out_type} does not match the widths")
    if in_type is not None and abs(in_type.frac - int(f.min(initial=0))) > 62:
        raise RtlgenError(f"input type {in_type} is too far from the widths")


def quantize_constant_shapes(in_shape: Shape, out_shape: Shape) -> dict[str, Shape]:
    widths = (positions_of(in_shape), in_shape[-1])
    return {"keep_negative": widths, "integer_bits": widths, "frac_bits": widths}


# ---------------------------------------------------------------------------------------
# hardware (the components: `rtlgen.ops.hgq2_hardware`, imported when a design is built)
# ---------------------------------------------------------------------------------------
def plan_quantize(node: FixedQuantize, ctx: PlanContext) -> LayerPlan:
    from rtlgen.ops.hgq2_hardware import ChannelQuantize
    from rtlgen.plan import LayerPlan

    return LayerPlan(
        node, (ChannelQuantize(node, ctx.in_type, node.out_shape[-1]),), out_spacing=ctx.spacing
    )


# ---------------------------------------------------------------------------------------
# the front-end: HGQ2 layers
# ---------------------------------------------------------------------------------------
class _Quantized(WeightSource):
    """The kernel and bias as HGQ2 quantized them, for the Dense/Conv readers."""

    def __init__(self, arrays: dict[str, np.ndarray]):
        self.arrays = arrays

    def get(self, layer: KerasLayer, expected):
        return {name: self.arrays[name] for name in expected}


_PLAIN = {
    "hgq>QDense": "QDense",
    "hgq>QConv1D": "QConv1D",
    "hgq>QConv2D": "QConv2D",
    "hgq>QEinsumDense": "QDense",
    "hgq>QEinsumDenseBatchnorm": "QDense",
    "hgq>QBatchNormDense": "QDense",
}
#: HGQ2 layers that are an input quantizer, a plain Keras layer, an optional output quantizer
_WRAPPED = {
    f"hgq>Q{name}": name
    for name in (
        "MaxPooling1D",
        "MaxPooling2D",
        "AveragePooling1D",
        "AveragePooling2D",
        "GlobalMaxPooling1D",
        "GlobalMaxPooling2D",
        "GlobalAveragePooling1D",
        "GlobalAveragePooling2D",
    )
}


def _einsum_dense_config(layer: KerasLayer) -> dict:
    """A QEinsumDense that is a dense on the last axis (``...b,bc->...c``, ``ab,bc->ac``,
    ``abc,cd->abd``; bias on the output axis or none) as a Dense config; any other equation
    is refused in one line."""
    equation = str(layer.config.get("equation", "")).replace(" ", "")
    refuse = UnsupportedError(
        f"{layer.where}: equation {equation[:40]!r} is not supported (supported: a dense on "
        "the last axis, e.g. '...b,bc->...c' or 'abc,cd->abd', bias_axes the output axis)"
    )
    try:
        inputs, out = equation.split("->")
        x, w = inputs.split(",")
    except ValueError:
        raise refuse from None
    if len(w) != 2 or not x.endswith(w[0]) or out != x[:-1] + w[1] or w[1] in x:
        raise refuse
    bias_axes = layer.config.get("bias_axes")
    if bias_axes not in (None, "", w[1]):
        raise refuse
    shape = layer.config.get("output_shape")
    units = shape[-1] if isinstance(shape, list) and shape else shape
    if not isinstance(units, int):
        raise refuse
    return {**layer.config, "units": units, "use_bias": bool(bias_axes)}


def read_hgq2_layer(layer: KerasLayer, shape: Shape, source: WeightSource) -> LayerOut:
    if layer.config.get("lora_rank") not in (None, 0):
        raise UnsupportedError(f"{layer.where}: lora_rank is not supported")
    # The Dense/Conv readers check the geometry and read the kernel/bias shapes; they see
    # the layer under its QKeras-like name with no QKeras quantizers in its config.
    config = layer.config
    if layer.class_name in ("hgq>QEinsumDense", "hgq>QEinsumDenseBatchnorm"):
        config = _einsum_dense_config(layer)
    plain = KerasLayer(_PLAIN[layer.class_name], layer.name, config, layer.build_config)
    reader = read_keras_dense if _PLAIN[layer.class_name] == "QDense" else read_keras_conv
    # The layer's own variables: kernel, bias (if used), then beta and ebops (enable_ebops).
    use_bias = bool(config.get("use_bias", True))
    expected = ["kernel", *(["bias"] if use_bias else [])]
    stored, weights = _own_variables(layer, source, expected)
    if layer.class_name == "hgq>QEinsumDenseBatchnorm":
        weights = _fold_batchnorm(layer, stored, weights, source)
    if layer.class_name == "hgq>QBatchNormDense":
        weights = _fold_input_batchnorm(layer, stored, weights, source)
    kq = quantizer_spec(layer, "kq_conf", "weight")
    if kq is None:
        raise UnsupportedError(f"{layer.where}: a kernel quantizer (kq_conf) is required")
    kernel = weights["kernel"]
    weights["kernel"] = quantized_constant(
        kernel, quantizer_widths(layer, kq, source, "kq/quantizer", kernel.shape)
    )
    if use_bias:
        bq = quantizer_spec(layer, "bq_conf", "bias")
        if bq is not None:
            bias = weights["bias"]
            bias_widths = quantizer_widths(layer, bq, source, "bq/quantizer", bias.shape)
            weights["bias"] = quantized_constant(bias, bias_widths)
            if layer.class_name == "hgq>QBatchNormDense":
                _warn_fused_bias(layer, bias, bias_widths)
    out = reader(plain, shape, _Quantized(weights))
    nodes: list[ir.Node] = []
    for node in out.nodes:
        if isinstance(node, ir.Conv | ir.Dense):
            node = node.replace(
                weights=ir.FloatTensor(node.weights.values, Exact(f"{layer.where} kernel")),
                bias=None
                if node.bias is None
                else ir.FloatTensor(node.bias.values, Exact(f"{layer.where} bias")),
            )
        nodes.append(node)
    pre = _activation_quantizer(layer, "iq", shape, source)
    post = _activation_quantizer(layer, "oq", out.shape, source)
    return LayerOut([*pre, *nodes, *post], out.shape, out.softmax)


def _fold_batchnorm(
    layer: KerasLayer, stored: list, weights: dict[str, np.ndarray], source: WeightSource
) -> dict[str, np.ndarray]:
    """QEinsumDenseBatchnorm's folding, in float32 as HGQ2 0.2 does at inference::

        scaler = gamma / sqrt(moving_variance + 1e-7)   # Keras's epsilon(), not the layer's
        kernel' = kernel * scaler;  bias' = bias - moving_mean * scaler

    Its variables: kernel, bias, gamma (scale=True), beta and ebops of the layer
    (enable_ebops), moving_mean, moving_variance."""
    got = _bn_statistics(layer, stored, weights, weights["kernel"].shape[-1], source)
    f32 = np.float32
    gamma = got.get("gamma", f32(1))
    scaler = (gamma / np.sqrt(got["moving_variance"] + f32(1e-7))).astype(f32)
    kernel = (weights["kernel"] * scaler).astype(f32)
    bias = (weights["bias"] + (-got["moving_mean"] * scaler)).astype(f32)
    return {"kernel": kernel, "bias": bias}


def _bn_statistics(
    layer: KerasLayer,
    stored: list,
    weights: dict[str, np.ndarray],
    size: int,
    source: WeightSource,
) -> dict[str, np.ndarray]:
    """The batch-normalization variables HGQ2's fused BN layers store after kernel and bias
    (gamma if ``scale``, beta and ebops if ``enable_ebops``, moving_mean, moving_variance),
    each ``size`` finite float32 numbers: gamma (if any), moving_mean, moving_variance."""
    names = [
        *(["gamma"] if layer.config.get("scale", True) else []),
        *(["_beta", "_ebops"] if layer.config.get("enable_ebops", True) else []),
        "moving_mean",
        "moving_variance",
    ]
    if "bias" not in weights or len(stored) != 2 + len(names):
        raise RtlgenError(
            f"{layer.where}: {len(stored)} variables stored, expected kernel, bias, "
            f"{', '.join(n for n in names if not n.startswith('_'))}"
        )
    limits = source_limits(source)
    got = {}
    for index, name in enumerate(names, start=2):
        if name.startswith("_"):
            continue
        item = stored[index]
        value = item.read(limits) if isinstance(item, StoredArray) else np.asarray(item)
        if value.shape != (size,) or value.dtype.kind != "f" or not np.all(np.isfinite(value)):
            raise RtlgenError(f"{layer.where}: weight '{name}' is not {size} finite real numbers")
        got[name] = value.astype(np.float32)
    return got


def _fold_input_batchnorm(
    layer: KerasLayer, stored: list, weights: dict[str, np.ndarray], source: WeightSource
) -> dict[str, np.ndarray]:
    """QBatchNormDense's folding (a batch normalization of the *input*, no beta), in float32
    as HGQ2 0.2 does at inference::

        scaler  = gamma / sqrt(moving_variance + epsilon)     # per input feature
        kernel' = scaler[:, None] * kernel
        bias'   = bias + (-(moving_mean @ kernel))            # the unscaled kernel

    The dot product is taken exactly and rounded to float32 once; HGQ2's backend sums in
    float32, so a bias' within a few ulps of a rounding boundary of the bias quantizer is
    warned about (`_warn_fused_bias`). Variables: kernel, bias, gamma (scale=True), beta and
    ebops of the layer (enable_ebops), moving_mean, moving_variance."""
    got = _bn_statistics(layer, stored, weights, weights["kernel"].shape[0], source)
    f32 = np.float32
    epsilon = f32(layer.config.get("epsilon", 1e-3))
    gamma = got.get("gamma", f32(1))
    scaler = (gamma / np.sqrt(got["moving_variance"] + epsilon)).astype(f32)
    kernel = weights["kernel"].astype(f32)
    offset = (-(got["moving_mean"].astype(np.float64) @ kernel.astype(np.float64))).astype(f32)
    return {
        "kernel": (scaler[:, None] * kernel).astype(f32),
        "bias": (weights["bias"] + offset).astype(f32),
    }


def _warn_fused_bias(layer: KerasLayer, fused: np.ndarray, widths: QuantizerWidths) -> None:
    """Warn where QBatchNormDense's float32 fused bias could quantize differently in HGQ2
    (its dot product summed in float32: a few ulps of the bias and of the sum)."""
    risky = ambiguous(fused, widths)
    if np.any(risky):
        warnings.warn(
            f"{layer.where}: {int(np.count_nonzero(risky))} fused bias value(s) lie within "
            f"{TABLE_ULPS} float32 ulps of a rounding boundary of the bias quantizer, where "
            "HGQ2's float32 sum moving_mean @ kernel may round differently",
            RtlgenWarning,
            stacklevel=2,
        )


def _activation_quantizer(
    layer: KerasLayer, which: str, shape: Shape, source: WeightSource
) -> list[ir.Node]:
    flag, key = ("enable_iq", "iq_conf") if which == "iq" else ("enable_oq", "oq_conf")
    if not layer_config_flag(layer, flag, which == "iq"):
        return []
    spec = quantizer_spec(layer, key, "datalane")
    if spec is None:
        return []
    widths = quantizer_widths(layer, spec, source, f"{which}/quantizer", shape)
    return [quantize_node(f"{layer.name}_{which}", shape, widths, layer.name)]


def read_hgq2_quantizer(layer: KerasLayer, shape: Shape, source: WeightSource) -> LayerOut:
    """A bare ``hgq>Quantizer`` layer (its QuantizerConfig is the layer config's 'config')."""
    spec = quantizer_spec(layer, "config", "datalane")
    if spec is None:
        raise RtlgenError(f"{layer.where}: the quantizer has no config")
    # a bare Quantizer keeps its variables one level down: "<layer>/quantizer/vars"
    widths = quantizer_widths(layer, spec, source, "quantizer", shape)
    return LayerOut([quantize_node(layer.name, shape, widths, layer.name)], shape)


def read_hgq2_wrapped(layer: KerasLayer, shape: Shape, source: WeightSource) -> LayerOut:
    """A pooling layer of HGQ2: its input quantizer, the Keras layer, its output quantizer."""
    from rtlgen.ops.registry import keras_handler

    plain = KerasLayer(_WRAPPED[layer.class_name], layer.name, layer.config, layer.build_config)
    handler = keras_handler(plain.class_name)
    assert handler is not None
    out = handler(plain, shape, source)
    pre = _activation_quantizer(layer, "iq", shape, source)
    post = _activation_quantizer(layer, "oq", out.shape, source)
    return LayerOut([*pre, *out.nodes, *post], out.shape, out.softmax)


def _own_variables(
    layer: KerasLayer, source: WeightSource, names: list[str], shape: tuple[int] | None = None
) -> tuple[list[Any], dict[str, np.ndarray]]:
    """The layer's own stored variables (all of them) and the first ``len(names)`` of them
    by name as float32, each finite real numbers (of ``shape`` where given)."""
    stored = source.sublayer_variables(layer, "")
    if len(stored) < len(names):
        raise RtlgenError(
            f"{layer.where}: {len(stored)} variables stored, expected {', '.join(names)}"
        )
    limits = source_limits(source)
    got = {}
    for index, name in enumerate(names):
        item = stored[index]
        value = item.read(limits) if isinstance(item, StoredArray) else np.asarray(item)
        wrong_shape = shape is not None and value.shape != shape
        if wrong_shape or value.dtype.kind != "f" or not np.all(np.isfinite(value)):
            what = f"{shape[0]} finite real numbers" if shape is not None else "finite real numbers"
            raise RtlgenError(f"{layer.where}: weight '{name}' is not {what}")
        got[name] = value.astype(np.float32)
    return stored, got


def read_hgq2_batchnorm(layer: KerasLayer, shape: Shape, source: WeightSource) -> LayerOut:
    """``QBatchNormalization``: ``iq(x) * kq(scale) + bq(offset)`` with, in float32 as HGQ2
    computes them, ``scale = gamma / sqrt(moving_variance + epsilon)`` and ``offset = beta -
    moving_mean * scale`` (HGQ2 0.2 uses beta = 1, not 0, when ``center=False``; so does
    this). The quantized scale and offset are exact constants of a `ScaleShift`."""
    axis = layer.config.get("axis", -1)
    if axis not in (-1, len(shape), [-1], [len(shape)]):
        raise UnsupportedError(f"{layer.where}: axis={axis} is not supported (only the last)")
    channels = shape[-1]
    scale_on = bool(layer.config.get("scale", True))
    center_on = bool(layer.config.get("center", True))
    names = [
        *(["gamma"] if scale_on else []),
        *(["beta"] if center_on else []),
        "moving_mean",
        "moving_variance",
    ]
    _, got = _own_variables(layer, source, names, (channels,))
    f32 = np.float32
    epsilon = f32(layer.config.get("epsilon", 1e-3))
    gamma = got.get("gamma", f32(1))
    beta = got.get("beta", f32(1))
    scale = (gamma / np.sqrt(got["moving_variance"] + epsilon)).astype(f32)
    offset = (beta - got["moving_mean"] * scale).astype(f32)
    kq = quantizer_spec(layer, "kq_conf", "weight")
    bq = quantizer_spec(layer, "bq_conf", "bias")
    if kq is None or bq is None:
        raise UnsupportedError(f"{layer.where}: kq_conf and bq_conf are required")
    qscale = quantized_constant(
        scale, quantizer_widths(layer, kq, source, "kq/quantizer", scale.shape)
    )
    qoffset = quantized_constant(
        offset, quantizer_widths(layer, bq, source, "bq/quantizer", offset.shape)
    )
    node = ir.ScaleShift(
        layer.name,
        shape,
        shape,
        scale=ir.FloatTensor(
            np.broadcast_to(qscale, (channels,)).copy(), Exact(f"{layer.where} scale")
        ),
        shift=ir.FloatTensor(
            np.broadcast_to(qoffset, (channels,)).copy(), Exact(f"{layer.where} offset")
        ),
        source=layer.name,
    )
    pre = _activation_quantizer(layer, "iq", shape, source)
    post = _activation_quantizer(layer, "oq", shape, source)
    return LayerOut([*pre, node, *post], shape)


#: HGQ2 merges: a quantizer per input (``iq_confs``), the Keras merge, an output quantizer
_MERGES = {f"hgq>Q{name}": name for name in ("Add", "Subtract", "Multiply", "Maximum", "Minimum")}


def read_hgq2_merge(layer: KerasLayer, shapes: tuple[Shape, ...], source: WeightSource) -> LayerOut:
    from rtlgen.ops.registry import keras_handler

    plain = KerasLayer(_MERGES[layer.class_name], layer.name, layer.config, layer.build_config)
    handler = keras_handler(plain.class_name)
    assert handler is not None
    out = handler(plain, shapes, source)
    pre: list[list[ir.Node]] = []
    if layer_config_flag(layer, "enable_iq", True):
        confs = layer.config.get("iq_confs")
        if not isinstance(confs, list):
            confs = [confs] * len(shapes)
        if len(confs) != len(shapes):
            raise RtlgenError(f"{layer.where}: {len(confs)} iq_confs for {len(shapes)} inputs")
        for index, (conf, shape) in enumerate(zip(confs, shapes, strict=True)):
            view = KerasLayer(layer.class_name, layer.name, {"iq_conf": conf}, None)
            spec = quantizer_spec(view, "iq_conf", "datalane")
            if spec is None:
                pre.append([])
                continue
            # a container of Quantizer layers: "quantizer", "quantizer_1", ... (class names)
            sub = f"iq/quantizers/quantizer{'' if index == 0 else f'_{index}'}/quantizer"
            widths = quantizer_widths(layer, spec, source, sub, shape)
            pre.append([quantize_node(f"{layer.name}_iq{index}", shape, widths, layer.name)])
    post = _activation_quantizer(layer, "oq", out.shape, source)
    return LayerOut([*out.nodes, *post], out.shape, out.softmax, tuple(pre))


# ---------------------------------------------------------------------------------------
# table activations (QUnaryFunctionLUT)
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class FunctionTable(ir.Node):
    """HGQ2's table activation after its input quantizer: ``y = oq(f(x))`` for each element,
    ``f`` a Keras activation (`rtlgen.frontend.hgq2.TABLE_FUNCTIONS`) and ``oq`` a
    fixed-point quantizer with one width per channel (or per tensor): ``keep_negative``,
    ``integer_bits``, ``frac_bits`` (``(channels,)`` arrays as HGQ2 stores them), its
    ``round_mode`` and ``overflow_mode`` by HGQ2's names; ``QAffinedUnaryFunctionLUT``:
    ``oq(f(x * input_scale + input_bias))``, two float32 values. An exact table per
    distinct width over every code of the input type (`function_table`), in a common output
    type."""

    keep_negative: ir.Tensor = field(kw_only=True)
    integer_bits: ir.Tensor = field(kw_only=True)
    frac_bits: ir.Tensor = field(kw_only=True)
    function: str = field(default="sigmoid", kw_only=True)
    round_mode: str = field(default="RND", kw_only=True)
    overflow_mode: str = field(default="SAT_SYM", kw_only=True)
    input_scale: float = field(default=1.0, kw_only=True)
    input_bias: float = field(default=0.0, kw_only=True)

    op = "hgq2_table"
    constant_fields: ClassVar[tuple[str, ...]] = ("keep_negative", "integer_bits", "frac_bits")

    def widths(self) -> list[tuple[int, int, int]]:
        """(k, i, f) of each channel."""
        tensors = (self.keep_negative, self.integer_bits, self.frac_bits)
        assert all(isinstance(t, ir.QTensor) for t in tensors)
        k, i, f = (t.mantissa.astype(np.int64) for t in tensors)  # type: ignore[union-attr]
        return [(int(a), int(b), int(c)) for a, b, c in zip(k, i, f, strict=True)]

    @property
    def out_frac(self) -> int:
        return max(_out_frac(*w) for w in self.widths())

    def describe(self) -> str:
        """What ``rtlgen inspect`` shows in its activation column."""
        tables = len(set(self.widths()))
        which = "exact table" if tables == 1 else f"{tables} exact tables"
        function = self.function
        if (self.input_scale, self.input_bias) != (1.0, 0.0):
            function = f"{function}(x * {self.input_scale:.8g} + {self.input_bias:.8g})"
        return f"{function} ({which}, {self.round_mode}/{self.overflow_mode})"

    def tables(self, in_type: FixedType) -> tuple[np.ndarray, int]:
        """(``(channels, codes)``: entry k of a channel is its output mantissa, at
        `out_frac`, for the input mantissa ``in_type.min_int + k``; how many entries of the
        distinct tables are `ambiguous`)."""
        frac = self.out_frac
        rows, risky = [], 0
        counted = set()
        for width in self.widths():
            table, ambiguous_entries = _function_table(
                self.function,
                in_type,
                *width,
                self.round_mode,
                self.overflow_mode,
                self.source or self.name,
                (self.input_scale, self.input_bias),
            )
            rows.append(table << (frac - _out_frac(*width)))
            if width not in counted:
                counted.add(width)
                risky += ambiguous_entries
        return np.stack(rows), risky


def _out_frac(k: int, i: int, f: int) -> int:
    return 0 if k + i + f <= 0 else max(f, 0)


@functools.lru_cache(maxsize=64)
def _function_table(
    function: str,
    in_type: FixedType,
    k: int,
    i: int,
    f: int,
    round_mode: str,
    overflow_mode: str,
    where: str,
    affine: tuple[float, float] = (1.0, 0.0),
) -> tuple[np.ndarray, int]:
    spec = QuantizerSpec(f"layer '{where}' oq_conf", "kif", round_mode, overflow_mode, False, True)
    widths = QuantizerWidths(spec, np.array([float(k)]), np.array([float(i)]), np.array([float(f)]))
    codes = input_codes(in_type)
    values, risky = function_table(function, codes, in_type.frac, widths, affine)
    table = np.round(values.astype(np.float64) * 2.0 ** _out_frac(k, i, f)).astype(np.int64)
    table.setflags(write=False)
    return table, int(np.count_nonzero(risky))


def _table_out_type(node: FunctionTable, tables: np.ndarray) -> FixedType:
    return FixedType.covering(int(tables.min()), int(tables.max()), node.out_frac)


def lower_function_table(node: FunctionTable, ctx: LowerContext) -> ir.Node:
    in_type = ctx.in_type
    where = f"layer '{node.source or node.name}'"
    if in_type.width > MAX_TABLE_INPUT_BITS:
        raise UnsupportedError(
            f"{where}: a {node.function} table of a {in_type.width}-bit input ({in_type}) would "
            f"have 2**{in_type.width} entries (supported: up to {MAX_TABLE_INPUT_BITS} input "
            "bits); enable the layer's input quantizer (enable_iq) or narrow it"
        )
    tables, risky = node.tables(in_type)
    if risky:
        entries = len(set(node.widths())) * tables.shape[1]
        warnings.warn(
            f"{where}: {risky:,} of the {entries:,} entries of the {node.function} table(s) lie "
            f"within {TABLE_ULPS} float32 ulps of a rounding boundary of the output quantizer, "
            "where HGQ2's result depends on its backend's float32 arithmetic (rtlgen uses the "
            "correctly rounded value)",
            RtlgenWarning,
            stacklevel=2,
        )
    return node.replace(out_type=_table_out_type(node, tables))


def function_table_reference(node: FunctionTable, x: np.ndarray, in_type: FixedType) -> np.ndarray:
    tables, _ = node.tables(in_type)
    index = np.asarray(x, dtype=np.int64) - in_type.min_int
    channel = np.broadcast_to(np.arange(tables.shape[0]), index.shape)
    return tables[channel, index]


def plan_function_table(node: FunctionTable, ctx: PlanContext) -> LayerPlan:
    from rtlgen.layers.lookup import LookupTable
    from rtlgen.ops.hgq2_hardware import ChannelTables
    from rtlgen.plan import LayerPlan

    assert node.out_type is not None
    tables, _ = node.tables(ctx.in_type)
    lanes = node.in_shape[-1]
    distinct = np.unique(tables, axis=0)
    if len(distinct) == 1:
        stage: wiring.Component = LookupTable(distinct[0], ctx.in_type, node.out_type, lanes)
    else:
        stage = ChannelTables(tables, ctx.in_type, node.out_type)
    note = (
        f"{len(distinct)} table(s) of {tables.shape[1]} x {node.out_type.width} bits "
        f"({node.function}) read by {lanes} lane(s)"
    )
    return LayerPlan(node, (stage,), out_spacing=ctx.spacing, notes=(note,))


def validate_function_table(node: FunctionTable, in_type: FixedType | None) -> None:
    if node.in_shape != node.out_shape:
        raise RtlgenError(f"in_shape {node.in_shape} and out_shape {node.out_shape} differ")
    if node.function not in TABLE_FUNCTIONS:
        raise RtlgenError(f"function {node.function!r} is not one of {', '.join(TABLE_FUNCTIONS)}")
    if node.round_mode not in ROUND_MODES or node.overflow_mode not in OVERFLOW_MODES:
        raise RtlgenError(f"modes {node.round_mode}/{node.overflow_mode} are not HGQ2's")
    for value in (node.input_scale, node.input_bias):
        if (
            not isinstance(value, float)
            or not np.isfinite(value)
            or float(np.float32(value)) != value
        ):
            raise RtlgenError(f"affine scale/bias {value!r} is not a finite float32 value")
    widths = np.array(node.widths())
    if widths.shape != (node.in_shape[-1], 3):
        raise RtlgenError(f"{len(widths)} widths for {node.in_shape[-1]} channels")
    if np.any((widths[:, 0] != 0) & (widths[:, 0] != 1)) or np.any(np.abs(widths[:, 1:]) > 24):
        raise RtlgenError("widths out of range (k 0/1, |i|, |f| <= 24)")
    if in_type is not None:
        if in_type.width > MAX_TABLE_INPUT_BITS:
            raise RtlgenError(f"input {in_type} is too wide for a table")
        tables, _ = node.tables(in_type)
        if node.out_type != _table_out_type(node, tables):
            raise RtlgenError(f"output type {node.out_type} does not match the table")


def function_table_constant_shapes(in_shape: Shape, out_shape: Shape) -> dict[str, Shape]:
    channels = (in_shape[-1],)
    return {"keep_negative": channels, "integer_bits": channels, "frac_bits": channels}


def read_hgq2_table(layer: KerasLayer, shape: Shape, source: WeightSource) -> LayerOut:
    """``QUnaryFunctionLUT``: its input quantizer (a `FixedQuantize`, when enabled), then a
    `FunctionTable` with its output quantizer (required; one width per channel at most).
    ``QAffinedUnaryFunctionLUT``: the same with its ``scale`` and ``bias`` (one float32
    each, its first own variables) applied between them."""
    function = table_function(layer)
    affine = {}
    if layer.class_name == "hgq>QAffinedUnaryFunctionLUT":
        _, got = _own_variables(layer, source, ["scale", "bias"], (1,))
        affine = {"input_scale": float(got["scale"][0]), "input_bias": float(got["bias"][0])}
    if not layer_config_flag(layer, "enable_oq", True):
        raise UnsupportedError(
            f"{layer.where}: enable_oq=False is not supported (the table's output would be an "
            "unquantized float32)"
        )
    spec = quantizer_spec(layer, "oq_conf", "table")
    if spec is None:
        raise UnsupportedError(f"{layer.where}: an output quantizer (oq_conf) is required")
    widths = quantizer_widths(layer, spec, source, "oq/quantizer", shape)
    if spec.rounds_only:
        raise UnsupportedError(
            f"{spec.where}: a trainable WRAP weight quantizer (is_weight=True) as the table's "
            "output quantizer is not supported"
        )
    element = per_position(widths, shape)
    k, i, f = element.k, element.i, element.f
    if any(np.any(a != a[:1]) for a in (k, i, f)):
        raise UnsupportedError(
            f"{spec.where}: output widths that vary with the position are not supported (a "
            "table per channel at most: per-channel or per-tensor widths)"
        )
    node = FunctionTable(
        layer.name,
        shape,
        shape,
        function=function,
        keep_negative=ir.QTensor(k[0].astype(np.int64), _FLAG_TYPE),
        integer_bits=ir.QTensor(i[0].astype(np.int64), _WIDTH_TYPE),
        frac_bits=ir.QTensor(f[0].astype(np.int64), _WIDTH_TYPE),
        round_mode=spec.round_mode,
        overflow_mode=spec.overflow_mode,
        source=layer.name,
        **affine,
    )
    pre = _activation_quantizer(layer, "iq", shape, source)
    return LayerOut([*pre, node], shape)


# ---------------------------------------------------------------------------------------
# QSoftmax (the last layer: a marker, as Keras's softmax)
# ---------------------------------------------------------------------------------------
def read_hgq2_softmax(layer: KerasLayer, shape: Shape, source: WeightSource) -> LayerOut:
    """``QSoftmax`` as the model's last layer: the hardware emits the logits (after the
    layer's input quantizer, if enabled) and their arg-max, as for Keras's softmax.

    HGQ2 computes ``exp_table(max(x) - x) * inv_table(sum)`` with lookup tables; with one
    width for each table's quantizers (checked here), a saturating exp-table input and a
    positive ``input_scaler`` every step is monotone in ``x``, so the class rtlgen emits
    has HGQ2's largest probability (ties of the quantized probabilities aside). A WRAP
    exp-table input (HGQ2's default) breaks that where ``max(x) - x`` passes its range:
    warned about. A QSoftmax anywhere but last is refused (`build_graph`)."""
    axes = layer.config.get("axes", layer.config.get("axis", [-1]))
    axes = axes if isinstance(axes, list) else [axes]
    if axes not in ([-1], [len(shape)]):
        raise UnsupportedError(
            f"{layer.where}: softmax over axes {str(axes)[:40]} (only the last axis)"
        )
    scaler = layer.config.get("input_scaler", 1.0)
    if not isinstance(scaler, int | float) or not scaler > 0:
        raise UnsupportedError(
            f"{layer.where}: input_scaler={str(scaler)[:40]} is not supported (only > 0: "
            "the arg-max of the logits is then the most probable class)"
        )
    if layer_config_flag(layer, "enable_oq", False):
        raise UnsupportedError(
            f"{layer.where}: enable_oq=True is not supported (the hardware emits the logits)"
        )
    stable = layer_config_flag(layer, "stable", True)
    checks = [("exp_table", "oq", "exp_oq_conf", "table")]
    if stable:
        checks.append(("exp_table", "iq", "exp_iq_conf", "datalane"))
    for table, which, key, place in checks:
        spec = quantizer_spec(layer, key, place)
        if spec is None:
            raise ModelFileError(f"{layer.where}: '{key}' is missing")
        widths = quantizer_widths(layer, spec, source, f"{table}/{which}/quantizer", shape)
        if any(np.any(a != a.flat[0]) for a in (widths.k, widths.i, widths.f)):
            raise UnsupportedError(
                f"{spec.where}: widths that vary by class are not supported (the classes' "
                "probabilities would not follow their logits; allow_heterogeneous_table=False)"
            )
        if which == "iq" and spec.overflow_mode == "WRAP":
            top = 2.0 ** float(max(widths.i.flat[0], -widths.f.flat[0]))
            warnings.warn(
                f"{spec.where}: overflow_mode=WRAP: rtlgen emits the logits and their arg-max, "
                f"which is HGQ2's most probable class only while max(x) - x stays below {top:g} "
                "(beyond it HGQ2's exp-table input wraps around); use overflow_mode='SAT'",
                RtlgenWarning,
                stacklevel=2,
            )
    pre = _activation_quantizer(layer, "iq", shape, source)
    return LayerOut(pre, shape, softmax=True)


@register_op
class FixedQuantizeOp(Op):
    name = "fixed_quantize"
    node_types = (FixedQuantize,)
    keras_classes = ("hgq>Quantizer",)
    from_keras = staticmethod(read_hgq2_quantizer)
    lower = staticmethod(lower_quantize)
    reference = staticmethod(quantize_reference)
    plan = staticmethod(plan_quantize)
    validate = staticmethod(validate_quantize)
    constant_shapes = staticmethod(quantize_constant_shapes)


@register_op
class Hgq2LayersOp(Op):
    """The HGQ2 layers read into nodes of other ops (no node type of its own)."""

    name = "hgq2_layers"
    keras_classes = tuple(_PLAIN)
    from_keras = staticmethod(read_hgq2_layer)


@register_op
class Hgq2WrappedOp(Op):
    """HGQ2 pooling layers: quantizers around the Keras layer's own op."""

    name = "hgq2_wrapped"
    keras_classes = tuple(_WRAPPED)
    from_keras = staticmethod(read_hgq2_wrapped)


@register_op
class Hgq2MergeOp(Op):
    """HGQ2 merges: per-input quantizers before the Keras merge's own op."""

    name = "hgq2_merge"
    keras_classes = tuple(_MERGES)
    multi_input = True
    from_keras = staticmethod(read_hgq2_merge)


@register_op
class Hgq2BatchNormOp(Op):
    name = "hgq2_batchnorm"
    keras_classes = ("hgq>QBatchNormalization",)
    from_keras = staticmethod(read_hgq2_batchnorm)


@register_op
class FunctionTableOp(Op):
    """HGQ2 table activations (``QUnaryFunctionLUT``, ``QAffinedUnaryFunctionLUT``): an
    exact lookup table."""

    name = "hgq2_table"
    node_types = (FunctionTable,)
    keras_classes = ("hgq>QUnaryFunctionLUT", "hgq>QAffinedUnaryFunctionLUT")
    from_keras = staticmethod(read_hgq2_table)
    lower = staticmethod(lower_function_table)
    reference = staticmethod(function_table_reference)
    plan = staticmethod(plan_function_table)
    validate = staticmethod(validate_function_table)
    constant_shapes = staticmethod(function_table_constant_shapes)


@register_op
class Hgq2SoftmaxOp(Op):
    """HGQ2's ``QSoftmax`` as the last layer: a marker (logits + arg-max)."""

    name = "hgq2_softmax"
    keras_classes = ("hgq>QSoftmax",)
    from_keras = staticmethod(read_hgq2_softmax)
