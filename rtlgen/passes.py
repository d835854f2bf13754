"""Pure graph passes: ``ModelGraph -> ModelGraph``.

`lower` = `fuse_thresholds` -> `fold_batchnorm` -> `fuse_activations` -> `infer_precision`
-> `fold_constant_layers`: the result has only integer constants (`QTensor`) and every
fixed-point type set, ready for the reference model and the hardware.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from rtlgen import ir
from rtlgen.quant.arith import (
    accumulator_frac,
    accumulator_type,
    aligned_weights,
    clamp_bounds,
)
from rtlgen.quant.errors import RtlgenError, RtlgenWarning
from rtlgen.quant.fixed import FixedType, Overflow, Rounding, WidthError


# ---------------------------------------------------------------------------------------
# precision configuration (parsed at the edge: rtlgen.config)
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LayerPrecision:
    """Explicit types for one layer (None: derived)."""

    weight: FixedType | None = None
    bias: FixedType | None = None
    result: FixedType | None = None


@dataclass(frozen=True)
class PrecisionConfig:
    """How float constants and unquantized results become fixed point.

    QKeras quantizers in the model always win; this fills in everything they leave open.
    - ``input``: type of the input stream (of every input ``inputs`` does not name);
    - ``inputs``: (input name, type) for inputs of their own type (a model with several
      inputs; the name of the Keras input layer);
    - float weights/biases get ``weight_width`` bits with the integer bits their largest
      magnitude needs (per tensor);
    - BatchNorm scale/shift get ``bn_width`` bits likewise;
    - an unquantized float-model result gets the integer bits interval analysis proves and
      ``result_frac`` fractional bits (never more than the accumulator has), at most
      ``result_int_bits`` integer bits (wider proven ranges saturate there: calibrate on
      data, `rtlgen.calibrate`, for types that fit the real values).
    """

    input: FixedType = FixedType(16, 10, True)
    inputs: tuple[tuple[str, FixedType], ...] = field(default=())
    weight_width: int = 16
    bn_width: int = 18
    result_frac: int = 10
    #: most integer bits of a float-model result: a wider proven range saturates at
    #: +-2**result_int_bits (deep float networks would otherwise grow ~log2(fan-in) bits
    #: per layer until no 62-bit accumulator holds them)
    result_int_bits: int = 24
    rounding: Rounding = Rounding.CONVERGENT
    overflow: Overflow = Overflow.SATURATE
    layers: tuple[tuple[str, LayerPrecision], ...] = field(default=())
    #: largest |output| per layer name from `rtlgen.calibrate` (float results only)
    calibration: tuple[tuple[str, float], ...] = field(default=())
    headroom_bits: int = 1

    def calibrated_peak(self, node: ir.Node) -> float | None:
        for name, peak in self.calibration:
            if name == node.name:
                return peak
        return None

    def input_type(self, node: ir.Input) -> FixedType:
        """The stream type of the input ``node``: its own from ``inputs``, else ``input``."""
        for name, t in self.inputs:
            if name in (node.name, node.source):
                return t
        return self.input

    def for_layer(self, node: ir.Node) -> LayerPrecision:
        for name, precision in self.layers:
            if name in (node.name, node.source) or name in node.source.split("+"):
                return precision
        return LayerPrecision()


DEFAULT_PRECISION = PrecisionConfig()


# ---------------------------------------------------------------------------------------
def lower(graph: ir.ModelGraph, config: PrecisionConfig = DEFAULT_PRECISION) -> ir.ModelGraph:
    """Fold, fuse and assign every fixed-point type; layers that compute a constant are
    built as constants and their dead producers dropped (`fold_constant_layers`)."""
    lowered = infer_precision(fuse_activations(fold_batchnorm(fuse_thresholds(graph))), config)
    return fold_constant_layers(lowered)


def _is_float(t: ir.Tensor | None) -> bool:
    return isinstance(t, ir.FloatTensor) and t.quantizer is None


def _merge_into_producers(
    graph: ir.ModelGraph, merge: Callable[[ir.Node, ir.Node], ir.Node | None]
) -> ir.ModelGraph:
    """Fold nodes into the node that feeds them: ``merge(producer, node)`` returns the node
    that replaces both, or None. Only where ``node`` has one input and that producer feeds
    nothing else and is not an output (its own result must survive otherwise); consumers
    and outputs of a merged node then take the merged one."""
    nodes: dict[str, ir.Node] = {}
    renamed: dict[str, str] = {}
    #: the node a merged node's result is now (its consumers are that node's): a conv with
    #: a BN folded in feeds what the BN fed, which the next merge must count
    last: dict[str, str] = {}
    for node in graph.nodes:
        node = node.replace(inputs=tuple(renamed.get(i, i) for i in node.inputs))
        if len(node.inputs) == 1:
            prev = nodes[node.inputs[0]]
            result = last.get(prev.name, prev.name)
            alone = len(graph.consumers(result)) == 1 and result not in graph.outputs
            merged = merge(prev, node) if alone else None
            if merged is not None:
                nodes[prev.name] = merged
                renamed[node.name] = prev.name
                last[prev.name] = node.name
                continue
        nodes[node.name] = node
    return dataclasses.replace(
        graph,
        nodes=tuple(nodes.values()),
        outputs=tuple(renamed.get(o, o) for o in graph.outputs),
        softmax_outputs=tuple(renamed.get(o, o) for o in graph.softmax_outputs),
    )


def fuse_thresholds(graph: ir.ModelGraph) -> ir.ModelGraph:
    """Quantizing activations decided by integer thresholds (`rtlgen.ops.threshold`).

    - a float Keras BatchNormalization (`KerasBatchNorm`) followed by an activation whose
      quantizer has at most `MAX_THRESHOLD_LEVELS` levels becomes one `Threshold` node: the
      float BN is not folded into the layer before it nor quantized, its decisions are
      computed exactly from the float parameters;
    - an activation quantizer only thresholds implement (``binary``, ``ternary``,
      ``quantized_bits(1)``) on any other layer: the layer without it, then a `Threshold`.
    """
    from rtlgen.ops.threshold import Threshold, threshold_node, usable
    from rtlgen.quant.threshold import is_step_activation

    def fuse(prev: ir.Node, node: ir.Node) -> ir.Node | None:
        bn = getattr(prev, "bn", None)
        if not (
            bn is not None
            and isinstance(prev, ir.ScaleShift)
            and prev.activation.is_linear
            and prev.out_quantizer is None
            and _is_float(prev.scale)
            and isinstance(node, ir.Activation)
            and usable(node.out_quantizer)
        ):
            return None
        return threshold_node(
            prev.name,
            prev.in_shape,
            node.out_quantizer,
            f"{prev.source}+{node.source}",
            clamp=node.activation,
            bn=bn,
            inputs=prev.inputs,
        )

    graph = _merge_into_producers(graph, fuse)
    nodes: list[ir.Node] = []
    renamed: dict[str, str] = {}
    for node in graph.nodes:
        node = node.replace(inputs=tuple(renamed.get(i, i) for i in node.inputs))
        q = getattr(node, "out_quantizer", None)
        if isinstance(node, Threshold) or not isinstance(node, ir._Arithmetic):
            nodes.append(node)
        elif not is_step_activation(q):
            nodes.append(node)
        elif isinstance(node, ir.Activation):
            nodes.append(
                threshold_node(
                    node.name,
                    node.in_shape,
                    q,
                    node.source,
                    clamp=node.activation,
                    inputs=node.inputs,
                )
            )
        else:
            linear = node.replace(activation=ir.LINEAR, out_quantizer=None)
            name = f"{node.name}_threshold"
            nodes.append(linear)
            nodes.append(
                threshold_node(
                    name,
                    node.out_shape,
                    q,
                    node.source,
                    clamp=node.activation,
                    inputs=(node.name,),
                )
            )
            renamed[node.name] = name
    if not renamed:
        return graph.with_nodes(nodes)
    return dataclasses.replace(
        graph,
        nodes=tuple(nodes),
        outputs=tuple(renamed.get(o, o) for o in graph.outputs),
        softmax_outputs=tuple(renamed.get(o, o) for o in graph.softmax_outputs),
    )


def fold_batchnorm(graph: ir.ModelGraph) -> ir.ModelGraph:
    """Fold a float BN (`ScaleShift`) into the conv/dense that feeds it.

    Legal only when that layer has float (unquantized) weights, no activation and no output
    quantizer: folding quantized weights would change the QKeras arithmetic, so a BN after a
    QKeras layer stays a `ScaleShift` node (exact in fixed point).
    """

    def fold(prev: ir.Node, node: ir.Node) -> ir.Node | None:
        if not (
            isinstance(node, ir.ScaleShift)
            and isinstance(prev, ir.Conv | ir.Dense)
            and prev.activation.is_linear
            and prev.out_quantizer is None
            and _is_float(prev.weights)
            and (prev.bias is None or _is_float(prev.bias))
            and _is_float(node.scale)
            and _is_float(node.shift)
            and node.activation.is_linear
            and node.out_quantizer is None
        ):
            return None
        scale, shift = node.scale.values, node.shift.values  # type: ignore[union-attr]
        w = prev.weights.values * scale  # broadcasts over the output-channel axis
        b = prev.bias.values if prev.bias is not None else np.zeros_like(scale)
        return prev.replace(
            weights=ir.FloatTensor(w),
            bias=ir.FloatTensor(b * scale + shift),
            out_shape=node.out_shape,
            source=f"{prev.source}+{node.source}",
        )

    return _merge_into_producers(graph, fold)


def fuse_activations(graph: ir.ModelGraph) -> ir.ModelGraph:
    """Merge an `Activation` into the arithmetic node that feeds it when that node's output
    is not quantized (its exact accumulator would feed the activation anyway)."""

    def fuse(prev: ir.Node, node: ir.Node) -> ir.Node | None:
        if not (
            isinstance(node, ir.Activation)
            and isinstance(prev, ir.Conv | ir.Dense | ir.ScaleShift)
            and prev.activation.is_linear
            and prev.out_quantizer is None
            and prev.out_type is None
        ):
            return None
        return prev.replace(
            activation=node.activation,
            out_quantizer=node.out_quantizer,
            out_type=node.out_type,
            source=f"{prev.source}+{node.source}",
        )

    return _merge_into_producers(graph, fuse)


# ---------------------------------------------------------------------------------------
#: most fractional bits `auto_type` gives (constants below 2**-MAX_AUTO_FRAC round to 0)
MAX_AUTO_FRAC = 60


def auto_type(values: np.ndarray, width: int) -> FixedType:
    """A signed ``width``-bit type with just the integer bits ``max|values|`` needs: fewer
    than none (more fractional bits than the width) for values below 1/2, so weights of any
    magnitude keep their ``width - 1`` significant bits."""
    peak = float(np.max(np.abs(values), initial=0.0))
    int_bits = 0 if peak == 0 else math.floor(math.log2(peak)) + 1
    frac = min(width - 1 - int_bits, MAX_AUTO_FRAC)
    return FixedType(width, frac, True)


#: share of a layer's non-zero float weights that may round to zero without a warning
ZEROED_SHARE = 0.5


def _quantize(
    t: ir.Tensor | None,
    explicit: FixedType | None,
    width: int,
    config: PrecisionConfig,
    what: str,
    kind: str = "",
) -> ir.QTensor | None:
    if t is None or isinstance(t, ir.QTensor):
        return t
    if t.quantizer is not None:
        return t.quantizer.quantize_constant(t.values)
    if not np.all(np.isfinite(t.values)):
        raise RtlgenError(f"{what}: constants contain NaN or infinity")
    typ = explicit or auto_type(t.values, width)
    q = ir.QTensor(typ.quantize(t.values, config.rounding, Overflow.SATURATE), typ)
    nonzero = int(np.count_nonzero(t.values))
    zeroed = int(np.count_nonzero((q.mantissa == 0) & (t.values != 0)))
    if kind and nonzero and zeroed > ZEROED_SHARE * nonzero:
        warnings.warn(
            f"{what}: {zeroed:,} of its {nonzero:,} non-zero {kind} quantize to zero as {typ} "
            f"(largest |value| {np.max(np.abs(t.values)):.3g}); give them a wider type in a "
            "precision config (--config)",
            RtlgenWarning,
            stacklevel=2,
        )
    return q


def result_type(
    node: ir._Arithmetic,
    acc: FixedType,
    exact: bool,
    explicit: FixedType | None,
    config: PrecisionConfig,
) -> FixedType:
    """Output type: the output quantizer's, an explicit one, the exact accumulator range
    (quantized models: QKeras keeps unquantized outputs in float, i.e. exact), or the
    analysed integer bits with ``result_frac`` fractional bits (float models)."""
    if node.out_quantizer is not None:
        return node.out_quantizer.output_type()
    if explicit is not None:
        return explicit
    lo_m, hi_m = clamp_bounds(node.activation.lo, node.activation.hi, acc.frac, node.name)
    lo = acc.min_int if lo_m is None else max(acc.min_int, lo_m)
    hi = acc.max_int if hi_m is None else min(acc.max_int, hi_m)
    if exact:
        return FixedType.covering(lo, hi, acc.frac)
    frac = min(acc.frac, config.result_frac)
    shift = acc.frac - frac
    # Rounding up may add one step at the top: keep room for it.
    lo_r, hi_r = lo >> shift, (hi >> shift) + (1 if shift else 0)
    cap = 1 << max(0, config.result_int_bits + frac)
    proven = FixedType.covering(max(lo_r, -cap), min(hi_r, cap - 1), frac)
    peak = config.calibrated_peak(node)
    if peak is None:
        return proven
    # Calibrated: the observed magnitude with `headroom_bits` to spare, saturating beyond.
    bound = max(1, math.ceil(peak * 2.0**frac)) << config.headroom_bits
    calibrated = FixedType.covering(max(lo >> shift, -bound), min(hi >> shift, bound), frac)
    return calibrated if calibrated.width < proven.width else proven


def clamp_with_quantizer(node: ir._Arithmetic) -> ir.Clamp:
    """The activation clamp combined with what the output quantizer implies (QKeras applies
    its activation quantizer after the float activation)."""
    if node.out_quantizer is None:
        return node.activation
    q = node.out_quantizer.clamp()
    a = node.activation
    lo = max((v for v in (a.lo, q.lo) if v is not None), default=None)
    hi = min((v for v in (a.hi, q.hi) if v is not None), default=None)
    return ir.Clamp(lo, hi)


def _check_layer_names(graph: ir.ModelGraph, config: PrecisionConfig) -> None:
    """A precision given for a layer the model does not have is a typo, not a no-op."""
    known: dict[str, None] = {}
    for node in graph.nodes:
        known.update(dict.fromkeys(n for n in (node.name, *node.source.split("+")) if n))
    for name, _precision in config.layers:
        if name not in known:
            shown = list(known)[:40]
            more = ", ..." if len(known) > len(shown) else ""
            raise RtlgenError(
                f"precision config: layers.{name}: model '{graph.name}' has no layer '{name}' "
                f"(its layers: {', '.join(shown)}{more})"
            )


def _check_input_names(graph: ir.ModelGraph, config: PrecisionConfig) -> None:
    """Every input ``config.inputs`` names is an input of the graph (one line if not)."""
    known = {n for node in graph.input_nodes for n in (node.name, node.source) if n}
    for name, _ in config.inputs:
        if name not in known:
            raise RtlgenError(
                f"input type for '{name}' (--input-type {name}=TYPE or the config's inputs): "
                f"model '{graph.name}' has no input '{name}' (its inputs: "
                f"{', '.join(node.name for node in graph.input_nodes)})"
            )


def infer_precision(
    graph: ir.ModelGraph, config: PrecisionConfig = DEFAULT_PRECISION
) -> ir.ModelGraph:
    """Quantize every constant and set every type (inputs first, in stream order)."""
    from rtlgen.ops.registry import op_for

    _check_layer_names(graph, config)
    _check_input_names(graph, config)
    quantized_model = any(
        isinstance(t, ir.FloatTensor) and t.quantizer is not None
        for node in graph.nodes
        for t in ir.constants(node).values()
    ) or any(getattr(n, "out_quantizer", None) is not None for n in graph.nodes)
    types: dict[str, FixedType] = {}
    nodes: list[ir.Node] = []
    for node in graph.nodes:
        if isinstance(node, ir.Input):
            node = node.replace(out_type=node.out_type or config.input_type(node))
        else:
            in_types = tuple(types[name] for name in node.inputs)
            ctx = LowerContext(
                in_types[0], config.for_layer(node), config, quantized_model, in_types
            )
            try:
                node = op_for(node).lower(node, ctx)
            except WidthError as exc:
                raise WidthError(_width_message(node, exc.width, in_types), exc.width) from None
            except RtlgenError as exc:
                if "layer '" in str(exc):
                    raise
                raise type(exc)(
                    f"layer '{node.source or node.name}': {exc} (its input type is "
                    f"{', '.join(map(str, in_types))}; a narrower input type, calibration on "
                    "sample data or a precision config for this layer make it fit)"
                ) from None
        nodes.append(node)
        assert node.out_type is not None
        types[node.name] = node.out_type
    return graph.with_nodes(nodes)


def _width_message(node: ir.Node, width: int, in_types: tuple[FixedType, ...]) -> str:
    """A too-wide type: the layer, the width interval analysis found, and the ways out."""
    name = node.source or node.name
    producer = node.inputs[0] if node.inputs else "the layer before"
    return (
        f"layer '{name}': interval analysis over its input type "
        f"{', '.join(map(str, in_types))} needs a {width}-bit fixed-point type, more than the "
        f"62 bits rtlgen supports; remedies: --calibrate x.npy (types from sample data, float "
        f"results), a precision config (--config) with a result type for '{producer}' or "
        f"'{name}' (or an output quantizer in the model), or a narrower input (--input-type)"
    )


@dataclass(frozen=True)
class LowerContext:
    """What an op's `lower` (quantize its constants, set its types) may know: the type of
    its input stream, the precision the user gave for the layer (`LayerPrecision`), the
    whole `PrecisionConfig`, and whether the model is quantized (QKeras keeps unquantized
    results of a quantized model exact)."""

    in_type: FixedType
    explicit: LayerPrecision
    config: PrecisionConfig
    quantized_model: bool
    #: the type of each input (a merge has several; ``in_type`` is the first)
    in_types: tuple[FixedType, ...] = ()

    def __post_init__(self) -> None:
        if not self.in_types:
            object.__setattr__(self, "in_types", (self.in_type,))


def lower_activation(node: ir._Arithmetic, ctx: LowerContext) -> ir.Node:
    """Types of a standalone activation: its clamp works in the input's units."""
    acc = ctx.in_type
    node = node.replace(
        activation=clamp_with_quantizer(node),
        acc_type=acc,
        rounding=ctx.config.rounding,
        overflow=ctx.config.overflow,
    )
    return node.replace(out_type=result_type(node, acc, True, ctx.explicit.result, ctx.config))


def lower_matvec(node: ir.Conv | ir.Dense | ir.ScaleShift, ctx: LowerContext) -> ir.Node:
    """Quantize the constants of a matrix-vector node and type its accumulator (interval
    analysis) and result."""
    return _lower_arithmetic(node, ctx.in_type, ctx.explicit, ctx.config, ctx.quantized_model)


def _lower_arithmetic(
    node: ir.Conv | ir.Dense | ir.ScaleShift,
    in_type: FixedType,
    explicit: LayerPrecision,
    config: PrecisionConfig,
    quantized_model: bool,
) -> ir.Node:
    where = f"layer '{node.source or node.name}'"
    if isinstance(node, ir.ScaleShift):
        w = _quantize(node.scale, explicit.weight, config.bn_width, config, where, "scales")
        b = _quantize(node.shift, explicit.bias, config.bn_width, config, where)
        assert w is not None and b is not None
        acc_frac = accumulator_frac(in_type, w.type, b.type)
        # Per-channel product: the range is that of a (1, C) "dot product".
        w_al = aligned_weights(w.mantissa, in_type, w.type, acc_frac)[None, :]
        b_al = b.mantissa << (acc_frac - b.type.frac)
        acc = accumulator_type(w_al, b_al, in_type, acc_frac)
        node = node.replace(scale=w, shift=b)
    else:
        w = _quantize(node.weights, explicit.weight, config.weight_width, config, where, "weights")
        b = _quantize(node.bias, explicit.bias, config.weight_width, config, where)
        assert w is not None
        acc_frac = accumulator_frac(in_type, w.type, b.type if b is not None else None)
        w_al = aligned_weights(w.mantissa, in_type, w.type, acc_frac)
        w_al = w_al.reshape(-1, w_al.shape[-1])
        b_al = None if b is None else b.mantissa << (acc_frac - b.type.frac)
        acc = accumulator_type(w_al, b_al, in_type, acc_frac)
        node = node.replace(weights=w, bias=b)
    node = node.replace(
        activation=clamp_with_quantizer(node),
        acc_type=acc,
        rounding=config.rounding,
        overflow=config.overflow,
    )
    # Unquantized layers of a QKeras model stay exact, as in QKeras's float arithmetic.
    exact = quantized_model and explicit.result is None
    return node.replace(out_type=result_type(node, acc, exact, explicit.result, config))


# ---------------------------------------------------------------------------------------
# constant layers and dead layers
# ---------------------------------------------------------------------------------------
def fold_constant_layers(graph: ir.ModelGraph) -> ir.ModelGraph:
    """Build nothing whose result cannot reach an output (on a lowered graph).

    A `Dense` whose weights are all zero computes a constant (its activation of its bias);
    so does a `Dense` whose input is such a constant (its accumulator, ``c @ W + b``, is
    folded into its bias). Each such layer becomes a `Dense` of zero weights and that exact
    accumulator as its bias, reading the graph's input directly (one beat per sample keeps
    the stream's timing); the layers that then feed nothing that reaches an output are
    removed. Exact: every output equals the original graph's for every input.

    Other one-input ops of a constant (an activation, a flatten, ...) are built as they are,
    reading the constant; a dense layer after them folds. Only on a graph with one flat (1-D)
    input: a constant layer behind an image input keeps its producers (the beats of its
    input carry the sample's timing). Convolutions are not folded. A `RtlgenWarning` names
    the folded and the removed layers.
    """
    from rtlgen.ops.registry import op_for

    inputs = graph.input_nodes
    if len(inputs) != 1 or len(inputs[0].out_shape) != 1:
        return graph
    source = inputs[0]
    assert source.out_type is not None
    constant: dict[str, np.ndarray] = {}  # node -> its constant output (mantissas)
    types: dict[str, FixedType] = {source.name: source.out_type}
    nodes: list[ir.Node] = []
    folded: list[str] = []
    zero_weights: list[str] = []
    for node in graph.nodes:
        if type(node) is ir.Dense and isinstance(node.weights, ir.QTensor):
            producer = node.inputs[0]
            zero = not node.weights.mantissa.any()
            if zero:
                zero_weights.append(node.name)
            if (zero or producer in constant) and producer != source.name:
                node = _constant_dense(node, source, types[producer], constant.get(producer))
                folded.append(node.name)
            if zero or producer in constant:
                x = np.zeros((1, *source.out_shape), dtype=np.int64)
                constant[node.name] = op_for(node).reference(node, x, source.out_type)[0]
        elif len(node.in_shapes) == 1 and node.inputs and node.inputs[0] in constant:
            # any other op of a constant is a constant too: built as it is, but a dense
            # layer after it (e.g. behind a flatten or an activation) folds
            producer = node.inputs[0]
            x = constant[producer][None]
            constant[node.name] = op_for(node).reference(node, x, types[producer])[0]
        nodes.append(node)
        assert node.out_type is not None
        types[node.name] = node.out_type
    if not folded:
        return graph
    result = graph.with_nodes(nodes)
    live = set(result.outputs or (nodes[-1].name,))
    for node in reversed(nodes):
        if node.name in live:
            live.update(node.inputs)
    removed = [n.name for n in nodes if n.name not in live and not isinstance(n, ir.Input)]
    warnings.warn(
        f"the weights of layer(s) {', '.join(zero_weights)} are all zero, so layer(s) "
        f"{', '.join(f for f in folded if f in live)} compute a constant: built as constants"
        + (f"; layer(s) {', '.join(removed)} reach no output and are not built" if removed else ""),
        RtlgenWarning,
        stacklevel=2,
    )
    kept = result.with_nodes([n for n in nodes if n.name in live or isinstance(n, ir.Input)])
    return dataclasses.replace(
        kept,
        constant_layers=(*graph.constant_layers, *(f for f in folded if f in live)),
        removed_layers=(*graph.removed_layers, *removed),
    )


def _constant_dense(
    node: ir.Dense, source: ir.Input, in_type: FixedType, x: np.ndarray | None
) -> ir.Dense:
    """``node`` as a zero-weight `Dense` on ``source`` whose bias is its accumulator for
    the constant input ``x`` (None: its weights are zero, the input does not matter)."""
    assert node.acc_type is not None and isinstance(node.weights, ir.QTensor)
    from rtlgen.quant.reference import aligned_bias

    acc_frac = node.acc_type.frac
    acc = np.broadcast_to(np.asarray(aligned_bias(node, acc_frac), dtype=np.int64), node.out_shape)
    if x is not None:
        w = aligned_weights(node.weights.mantissa, in_type, node.weights.type, acc_frac)
        acc = acc + x.astype(object) @ w.astype(object)
    assert source.out_type is not None
    # zero weights whose products land at the accumulator's fraction (no alignment shift)
    w_type = FixedType(2, acc_frac - source.out_type.frac, True)
    n_in = source.out_shape[0]
    return node.replace(
        inputs=(source.name,),
        in_shape=source.out_shape,
        weights=ir.QTensor(np.zeros((n_in, node.out_shape[-1]), dtype=np.int64), w_type),
        bias=ir.QTensor(np.asarray(acc, dtype=np.int64).reshape(-1), node.acc_type),
    )
