"""Recurrent layers: ``SimpleRNN``, ``LSTM``, ``GRU`` (Keras 2 / tf.keras 2.15 and Keras 3,
whose ``.keras`` archives keep the weights in the layer's cell) and QKeras ``QSimpleRNN``,
``QLSTM``, ``QGRU``.

A (T, F) sequence streams one time step (F features) per beat; the state (h, and c of an
LSTM) lives in registers and starts at zero for every sample. ``return_sequences=False``
emits one beat per sample (the last h), ``True`` one beat per step (T beats of U units).
Refused in one line naming the layer and option: ``go_backwards``, ``stateful``,
``return_state``, ``time_major``; ``unroll``, ``dropout``, ``recurrent_dropout``, ``seed``,
``zero_output_for_mask`` are accepted (they change nothing at inference); ``Bidirectional``
and ``Masking`` are not layers rtlgen reads. Keras 3's ``hard_sigmoid`` is relu6(x + 3) / 6
(slope 1/6; Keras 2's: 0.2): the node remembers which Keras wrote it (``keras3``).

Arithmetic (`rtlgen.quant.recurrent`): each step is a program of exact integer vector ops
written by `cell_program`: ``acc = [x, h] @ [K; R] + b`` (one exact accumulator for every
gate), each gate's activation a lookup table of `rtlgen.ops.lut_activation` on the exact
pre-activation (requantized into the table type as that op does) or a QKeras
``quantized_bits``/``quantized_relu`` (clamp + rounding), then the cell's exact products
and sums. QKeras's semantics (qkeras/qrecurrent.py, 0.9): the kernel, recurrent kernel and
bias quantizers apply to the constants (kernel and recurrent with QKeras's ``auto_po2``
default for an ``alpha``-less ``quantized_bits``), the ``state_quantizer`` to h (and c) of
the previous step before they are used, the activations to the float pre-activations; the
layer's output is the unquantized h.

What is exact. QKeras layers with QKeras activations are bit-exact with QKeras on the same
fixed-point inputs when every value of the step has a fixed type: QSimpleRNN always,
QLSTM/QGRU with a ``state_quantizer`` (without one, c (LSTM) and h (GRU) gain fractional
bits every step in QKeras's float32; rtlgen rounds them to ``result_frac`` fractional
bits, with a warning). A float activation (``tanh``, ``sigmoid`` ...) is a table rounded
to ``result_frac`` bits (its ``max_error`` as in `rtlgen.ops.lut_activation`). Float Keras
layers: weights get the configured width (`rtlgen.passes`, as a float Dense), the tables
round to ``result_frac`` bits, and h (and c) are rounded to ``result_frac`` bits at the end
of each step: a quantized approximation of the float layer (error grows with T; compare on
data). QGRU without a ``recurrent_quantizer`` is refused: QKeras 0.9 then uses the input
kernel as the recurrent kernel (a QKeras bug).

Hardware (`rtlgen.layers.recurrent.RecurrentCell`): one step at a time, ``step_cycles``
cycles per time step (the program's register stages + 1: the next step needs the state);
a sample of T steps takes ``T * step_cycles`` cycles, the network's initiation interval.
"""

from __future__ import annotations

import json
import warnings
import weakref
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from rtlgen import ir
from rtlgen.frontend.keras_config import (
    ActivationSpec,
    KerasLayer,
    LayerOut,
    WeightSource,
    config_bool,
    config_int,
    config_value,
    is_keras3_layer,
    layer_activation,
    layer_quantizer,
    layer_weights,
    parse_layer_quantizer,
)
from rtlgen.ops.registry import Op, Shape, register_op
from rtlgen.ops.threshold import Threshold, unpadded
from rtlgen.passes import LowerContext, PrecisionConfig, _quantize
from rtlgen.quant.activations import ActivationKind
from rtlgen.quant.arith import clamp_bounds
from rtlgen.quant.errors import RtlgenError, RtlgenWarning, UnsupportedError
from rtlgen.quant.fixed import FixedType, Overflow, Rounding, shift_round
from rtlgen.quant.recurrent import CellProgram, ProgramBuilder, run_sequence

if TYPE_CHECKING:
    from rtlgen.plan import LayerPlan, PlanContext

#: largest state width: a state register feeds a multiplier per weight
MAX_STATE_BITS = 32
#: rounds of the search for a state type that holds the state it produces
_STATE_SEARCH_ROUNDS = 12


@dataclass(frozen=True, eq=False)
class Recurrent(ir.Node):
    """A recurrent layer over a (T, F) sequence. ``weights`` (F, G*U): the kernel;
    ``recurrent`` (U, G*U); ``bias``: (G*U,), a GRU's (2, 3U) (input and recurrent bias; the
    second row is zero with ``reset_after=False``), zeros without a bias. ``activation``,
    ``recurrent_activation``, ``state_quantizer``: the Keras config values as compact JSON
    (parsed again where needed). Lowered: ``state_type`` (h as fed back), ``cell_type`` (an
    LSTM's c as fed back), ``result_frac``/``rounding``/``overflow`` (float tables and state
    rounding), ``exact`` (bit-exact with QKeras)."""

    weights: ir.Tensor = field(kw_only=True)
    recurrent: ir.Tensor = field(kw_only=True)
    bias: ir.Tensor = field(kw_only=True)
    activation: str = field(default='"tanh"', kw_only=True)
    recurrent_activation: str = field(default='"sigmoid"', kw_only=True)
    state_quantizer: str = field(default="null", kw_only=True)
    return_sequences: bool = field(default=False, kw_only=True)
    reset_after: bool = field(default=True, kw_only=True)
    qkeras: bool = field(default=False, kw_only=True)
    #: read from a Keras 3 file, whose ``hard_sigmoid`` is relu6(x + 3) / 6 (Keras 2: slope 0.2)
    keras3: bool = field(default=False, kw_only=True)
    state_type: FixedType | None = field(default=None, kw_only=True)
    cell_type: FixedType | None = field(default=None, kw_only=True)
    result_frac: int = field(default=10, kw_only=True)
    rounding: Rounding = field(default=Rounding.CONVERGENT, kw_only=True)
    overflow: Overflow = field(default=Overflow.SATURATE, kw_only=True)
    exact: bool = field(default=False, kw_only=True)

    op = "recurrent"
    constant_fields: ClassVar[tuple[str, ...]] = ("recurrent",)
    #: gates per unit in the kernel's columns (Keras order)
    gates: ClassVar[int] = 1

    @property
    def units(self) -> int:
        return self.out_shape[-1]

    @property
    def steps(self) -> int:
        return self.in_shape[0]

    @property
    def features(self) -> int:
        return self.in_shape[1]


@dataclass(frozen=True, eq=False)
class SimpleRNN(Recurrent):
    """``h = act(x K + h R + b)``."""

    op = "simple_rnn"
    gates: ClassVar[int] = 1


@dataclass(frozen=True, eq=False)
class LSTM(Recurrent):
    """Gates i, f, c, o (Keras order): ``c = f c + i act(z_c)``, ``h = o act(c)``."""

    op = "lstm"
    gates: ClassVar[int] = 4


@dataclass(frozen=True, eq=False)
class GRU(Recurrent):
    """Gates z, r, h (Keras order): ``h = z h + (1 - z) act(x K_h + r (h R_h + b_h))``
    (``reset_after``; else ``act(x K_h + b_h + (r h) R_h)``)."""

    op = "gru"
    gates: ClassVar[int] = 3


# ---------------------------------------------------------------------------------------
# front-end
# ---------------------------------------------------------------------------------------
_REFUSED_OPTIONS = {
    "go_backwards": "the sequence is streamed in order",
    "stateful": "the state starts at zero for every sample",
    "return_state": "only the sequence output is supported",
    "time_major": "inputs are (batch, time, features)",
}
_ACTIVATIONS = (
    "tanh, sigmoid, hard_sigmoid, softsign, QKeras quantized_tanh, quantized_sigmoid, "
    "quantized_relu, quantized_bits"
)


#: config entries whose value changes nothing at inference (dropped from the saved text)
_NO_OPS = {
    "use_stochastic_rounding": False,
    "qnoise_factor": 1.0,
    "use_variables": False,
    "use_ste": True,
}
#: longest saved activation / quantizer text (graph.npz keeps strings of up to 256)
_MAX_SPEC = 256


def _json(value: Any, where: str = "") -> str:
    """A Keras activation / quantizer config as compact JSON (class and config only, no-op
    options dropped), as the node saves it."""
    if isinstance(value, dict):
        config = value.get("config")
        if isinstance(config, dict):
            config = {k: v for k, v in config.items() if not (k in _NO_OPS and v == _NO_OPS[k])}
        value = {"class_name": value.get("class_name"), "config": config}
    text = json.dumps(value, separators=(",", ":"), sort_keys=True)
    if len(text) > _MAX_SPEC:
        raise UnsupportedError(f"{where}: {text[:60]}... is longer than {_MAX_SPEC} characters")
    return text


def _class_name(node: Recurrent) -> str:
    """The Keras class the node was read from (QKeras's when ``qkeras``)."""
    return ("Q" if node.qkeras else "") + {"SimpleRNN": "SimpleRNN", "LSTM": "LSTM", "GRU": "GRU"}[
        type(node).__name__
    ]


def _activation_spec(
    name: str, class_name: str, spec: Any, key: str, keras3: bool = False
) -> ActivationSpec:
    layer = KerasLayer(class_name, name, {}, keras3=keras3)
    where = f"layer '{name}' ({class_name}) {key}"
    act = layer_activation(layer, spec)
    unbounded = act.table in (ActivationKind.SOFTPLUS, ActivationKind.EXPONENTIAL)  # as relu
    if not unbounded and (act.table is not None or act.quantizer is not None):
        if act.negative_slope is not None or act.softmax:
            raise UnsupportedError(
                f"{where}: {spec!r} is not supported (supported: {_ACTIVATIONS})"
            )
        return act
    raise UnsupportedError(
        f"{where}: {spec!r} is not supported in a recurrent layer (its state would be "
        f"unbounded or need a clamp; supported: {_ACTIVATIONS})"
    )


def read_keras_recurrent(layer: KerasLayer, shape: Shape, source: WeightSource) -> LayerOut:
    cls = {
        "SimpleRNN": SimpleRNN,
        "QSimpleRNN": SimpleRNN,
        "LSTM": LSTM,
        "QLSTM": LSTM,
        "GRU": GRU,
        "QGRU": GRU,
    }[layer.class_name]
    if len(shape) != 2:
        raise UnsupportedError(
            f"{layer.where}: input of shape {shape}; a recurrent layer takes a (time, features) "
            "sequence with a fixed number of steps"
        )
    for key, why in _REFUSED_OPTIONS.items():
        if config_bool(layer, key, False):
            raise UnsupportedError(f"{layer.where}: {key}=True is not supported ({why})")
    units = config_int(layer, "units", config_value(layer, "units"))
    if units < 1:
        raise UnsupportedError(f"{layer.where}: units={units}")
    qkeras = layer.class_name.startswith("Q")
    use_bias = config_bool(layer, "use_bias", True)
    reset_after = config_bool(layer, "reset_after", True) if cls is GRU else True
    steps, features = shape
    activation = config_value(layer, "activation", "quantized_tanh" if qkeras else "tanh")
    recurrent_activation = config_value(
        layer, "recurrent_activation", "hard_sigmoid" if qkeras else "sigmoid"
    )
    keras3 = is_keras3_layer(layer)
    _activation_spec(layer.name, layer.class_name, activation, "activation", keras3)
    if cls is not SimpleRNN:
        _activation_spec(
            layer.name, layer.class_name, recurrent_activation, "recurrent_activation", keras3
        )
    kq = rq = bq = sq = None
    if qkeras:
        kq = layer_quantizer(layer, "kernel_quantizer", kernel=True)
        rq = layer_quantizer(layer, "recurrent_quantizer", kernel=True)
        bq = layer_quantizer(layer, "bias_quantizer")
        sq = layer_quantizer(layer, "state_quantizer")
        if cls is GRU and rq is None:
            raise UnsupportedError(
                f"{layer.where}: recurrent_quantizer=None is not supported (QKeras 0.9's QGRU "
                "then multiplies the state by the input kernel, a QKeras bug); give the layer a "
                "recurrent_quantizer"
            )
        if sq is not None:
            _state_quantizer_type(sq, layer.where)
    gu = cls.gates * units
    expected: dict[str, Shape] = {"kernel": (features, gu), "recurrent_kernel": (units, gu)}
    if use_bias:
        expected["bias"] = (2, gu) if cls is GRU and reset_after else (gu,)
    got = layer_weights(source, layer, expected)
    bias = np.zeros((2, gu) if cls is GRU else (gu,))
    if use_bias:
        stored = np.asarray(got["bias"], dtype=np.float64)
        if cls is GRU and not reset_after:
            bias[0] = stored
        else:
            bias[...] = stored.reshape(bias.shape)
    else:
        bq = None
    out_shape = (steps, units) if config_bool(layer, "return_sequences", False) else (units,)
    node = cls(
        layer.name,
        tuple(shape),
        out_shape,
        weights=ir.FloatTensor(np.asarray(got["kernel"], dtype=np.float64), kq),
        recurrent=ir.FloatTensor(np.asarray(got["recurrent_kernel"], dtype=np.float64), rq),
        bias=ir.FloatTensor(bias, bq),
        activation=_json(activation, f"{layer.where} activation"),
        recurrent_activation=_json(recurrent_activation, f"{layer.where} recurrent_activation"),
        state_quantizer=_json(
            layer.config.get("state_quantizer") if qkeras else None,
            f"{layer.where} state_quantizer",
        ),
        return_sequences=len(out_shape) == 2,
        reset_after=reset_after,
        qkeras=qkeras,
        keras3=keras3,
        source=layer.name,
    )
    return LayerOut([node], out_shape)


def _state_quantizer_type(q: Any, where: str) -> FixedType:
    try:
        return q.output_type()
    except UnsupportedError as exc:
        raise UnsupportedError(
            f"{where} state_quantizer: {exc} (supported: quantized_bits with alpha=1)"
        ) from None


def _state_quantizer(node: Recurrent) -> Any:
    spec = json.loads(node.state_quantizer)
    if spec is None:
        return None
    return parse_layer_quantizer(spec, f"layer '{node.source or node.name}' state_quantizer")


# ---------------------------------------------------------------------------------------
# the cell program
# ---------------------------------------------------------------------------------------
def _config(node: Recurrent) -> PrecisionConfig:
    return PrecisionConfig(
        result_frac=node.result_frac, rounding=node.rounding, overflow=node.overflow
    )


def _gate(b: ProgramBuilder, node: Recurrent, value: str, spec_json: str, key: str) -> str:
    """The activation ``spec_json`` on ``value``: a table (`rtlgen.ops.lut_activation`) or a
    QKeras quantizer's clamp and rounding."""
    from rtlgen.ops.lut_activation import lower_table, node_table, table_node
    from rtlgen.passes import LayerPrecision

    act = _activation_spec(
        node.source or node.name, _class_name(node), json.loads(spec_json), key, node.keras3
    )
    t, n, _, _ = b.info(value)
    if act.table is not None:
        table = table_node(f"{node.name}_{key}", (n,), act, node.source or node.name)
        exact = _dyadic_hard_sigmoid(b, value, table)
        if exact is not None:
            return exact
        ctx = LowerContext(t, LayerPrecision(), _config(node), node.qkeras)
        lowered = lower_table(table, ctx, fine=False)
        if isinstance(lowered, Threshold):  # a QKeras kind too wide for an exact table
            assert lowered.out_type is not None
            thresholds, levels = unpadded(lowered, t)
            return b.threshold(value, np.array(thresholds[0]), np.array(levels[0]), lowered.out_type)
        assert lowered.table_type is not None and lowered.out_type is not None
        assert lowered.fine_type is None
        error = 0.0 if act.table.is_qkeras else lowered.max_error
        return b.table(
            value,
            node_table(lowered),
            lowered.table_type,
            lowered.out_type,
            node.rounding,
            error=error,
        )
    q = act.quantizer
    assert q is not None
    out = q.output_type()
    clamp = q.clamp()
    lo, hi = clamp_bounds(clamp.lo, clamp.hi, t.frac, node.source or node.name)
    return b.requant(value, out, lo, hi, Rounding.CONVERGENT, Overflow.SATURATE)


def _dyadic_hard_sigmoid(b: ProgramBuilder, value: str, table: Any) -> str | None:
    """``clip(slope * x + offset, 0, 1)`` exactly when the slope is a power of two and the
    offset a multiple of the result's step (QKeras's hard sigmoid, x/2 + 1/2, the default
    recurrent activation of QLSTM/QGRU): the mantissas plus a constant, read with more
    fractional bits, then clamped (no table, so no rounding however wide ``value`` is).
    None for other functions (Keras's slope 1/5 or 1/6: a table)."""
    if table.kind is not ActivationKind.HARD_SIGMOID:
        return None
    p = table.params()
    slope, offset = Fraction(p["slope"]), Fraction(p["offset"])
    if slope <= 0 or slope.numerator != 1 or slope.denominator & (slope.denominator - 1):
        return None
    shift = slope.denominator.bit_length() - 1
    frac = b.info(value)[0].frac + shift
    const = offset * 2**frac
    if const.denominator != 1:
        return None
    one = 1 << frac
    shifted = b.offset(value, shift, int(const))
    _, _, lo, hi = b.info(shifted)
    out = FixedType.covering(min(max(lo, 0), one), max(min(hi, one), 0), frac)
    return b.requant(shifted, out, 0, one, Rounding.CONVERGENT, Overflow.SATURATE)


def _rounded(
    b: ProgramBuilder, node: Recurrent, value: str, bound: tuple[int, int] | None = None
) -> str:
    """``value`` rounded to ``result_frac`` fractional bits (saturating at ``bound``, (lo,
    hi) in those units, if given): the float model's state rounding."""
    t, _, lo, hi = b.info(value)
    frac = min(t.frac, node.result_frac)
    lo_r = int(shift_round(np.array([lo]), t.frac - frac, node.rounding)[0])
    hi_r = int(shift_round(np.array([hi]), t.frac - frac, node.rounding)[0])
    if bound is not None:
        lo_r, hi_r = max(lo_r, bound[0]), min(hi_r, bound[1])
    out = FixedType.covering(lo_r, hi_r, frac)
    return b.requant(value, out, None, None, node.rounding, Overflow.SATURATE)


def _quantized_state(b: ProgramBuilder, node: Recurrent, value: str, q: Any) -> str:
    t = b.info(value)[0]
    clamp = q.clamp()
    lo, _ = clamp_bounds(clamp.lo, None, t.frac, node.source or node.name)
    return b.requant(value, q.output_type(), lo, None, Rounding.CONVERGENT, Overflow.SATURATE)


def _split(m: np.ndarray, gates: int) -> list[np.ndarray]:
    return np.split(m, gates, axis=-1)


def _build(node: Recurrent, in_type: FixedType, h_type: FixedType, c_type: FixedType | None):
    """(program, wanted h state type, wanted c state type) for the given state types."""
    kernel, recurrent, bias = node.weights, node.recurrent, node.bias
    assert isinstance(kernel, ir.QTensor) and isinstance(recurrent, ir.QTensor)
    assert isinstance(bias, ir.QTensor)
    units, features = node.units, node.features
    inputs: dict[str, tuple[FixedType, int]] = {"x": (in_type, features), "h": (h_type, units)}
    if isinstance(node, LSTM):
        assert c_type is not None
        inputs["c"] = (c_type, units)
    b = ProgramBuilder(inputs)
    sq = _state_quantizer(node)
    k, r, bt = kernel.mantissa, recurrent.mantissa, bias.type
    if isinstance(node, SimpleRNN):
        acc = b.mac(("x", "h"), [k, r], [kernel.type, recurrent.type], bias.mantissa, bt)
        hv = _gate(b, node, acc, node.activation, "activation")
        y = hv if node.qkeras else _rounded(b, node, hv)
        h_next = _quantized_state(b, node, hv, sq) if sq is not None else y
        return b.program({"h": h_next}, y), b.info(h_next)[0], None
    if isinstance(node, LSTM):
        acc = b.mac(("x", "h"), [k, r], [kernel.type, recurrent.type], bias.mantissa, bt)
        gates = [b.slice(acc, g * units, units, "z") for g in range(4)]
        rec, act = node.recurrent_activation, node.activation
        i = _gate(b, node, gates[0], rec, "recurrent_activation")
        f = _gate(b, node, gates[1], rec, "recurrent_activation")
        g = _gate(b, node, gates[2], act, "activation")
        o = _gate(b, node, gates[3], rec, "recurrent_activation")
        ig = b.mul(i, g)
        c_new = b.add(b.mul(f, "c"), ig)
        hv = b.mul(o, _gate(b, node, c_new, act, "activation"))
        exact = node.qkeras and sq is not None
        y = hv if exact else _rounded(b, node, hv)
        if sq is not None:
            h_next, c_next = _quantized_state(b, node, hv, sq), _quantized_state(b, node, c_new, sq)
        else:
            # |c_t| <= t max|i g| while |f| <= 1: saturating there changes nothing
            ig_t, _, ig_lo, ig_hi = b.info(ig)
            frac = min(b.info(c_new)[0].frac, node.result_frac)
            peak = max(abs(ig_lo), abs(ig_hi)) * node.steps * 2.0 ** (frac - ig_t.frac)
            bound = int(np.ceil(peak))
            h_next, c_next = y, _rounded(b, node, c_new, (-bound - 1, bound + 1))
        return b.program({"h": h_next, "c": c_next}, y), b.info(h_next)[0], b.info(c_next)[0]
    assert isinstance(node, GRU)
    kz, kr, kh = _split(k, 3)
    rz, rr, rh = _split(r, 3)
    bm = bias.mantissa.reshape(2, 3 * units)
    b_in, b_rec = _split(bm[0], 3), _split(bm[1], 3)
    zeros_x, zeros_h = np.zeros_like(kz), np.zeros_like(rz)
    rec, act = node.recurrent_activation, node.activation
    if node.reset_after:
        wx = np.concatenate([kz, kr, kh, zeros_x], axis=1)
        wh = np.concatenate([rz, rr, zeros_h, rh], axis=1)
        bb = np.concatenate([b_in[0] + b_rec[0], b_in[1] + b_rec[1], b_in[2], b_rec[2]])
        acc = b.mac(("x", "h"), [wx, wh], [kernel.type, recurrent.type], bb, bt)
        z = _gate(b, node, b.slice(acc, 0, units, "z"), rec, "recurrent_activation")
        rg = _gate(b, node, b.slice(acc, units, units, "z"), rec, "recurrent_activation")
        xh = b.slice(acc, 2 * units, units, "z")
        pre = b.add(xh, b.mul(rg, b.slice(acc, 3 * units, units, "z")))
    else:
        wh = np.concatenate([rz, rr, zeros_h], axis=1)
        bb = np.concatenate([b_in[0], b_in[1], b_in[2]])
        acc = b.mac(("x", "h"), [k, wh], [kernel.type, recurrent.type], bb, bt)
        z = _gate(b, node, b.slice(acc, 0, units, "z"), rec, "recurrent_activation")
        rg = _gate(b, node, b.slice(acc, units, units, "z"), rec, "recurrent_activation")
        rs = b.mul(rg, "h")
        rec_h = b.mac((rs,), [rh], [recurrent.type], None, None, "acc")
        pre = b.add(b.slice(acc, 2 * units, units, "z"), rec_h)
    hh = _gate(b, node, pre, act, "activation")
    zt, _, z_lo, z_hi = b.info(z)
    one = 1 << zt.frac
    if z_lo < 0 or z_hi > one:
        raise UnsupportedError(
            f"layer '{node.source or node.name}': the GRU update gate ranges outside [0, 1]"
        )
    hv = b.add(b.mul(z, "h"), b.mul(b.rsub(one, z), hh))
    if sq is not None:
        y = hv if node.qkeras else _rounded(b, node, hv)
        h_next = _quantized_state(b, node, hv, sq)
    else:
        # a convex combination of h and hh: within the hull of their two ranges
        ht, _, h_lo, h_hi = b.info("h")
        at, _, a_lo, a_hi = b.info(hh)
        frac = min(b.info(hv)[0].frac, node.result_frac)

        def scaled(v: int, t: FixedType) -> float:
            return v * 2.0 ** (frac - t.frac)

        lo = int(np.floor(min(scaled(h_lo, ht), scaled(a_lo, at))))
        hi = int(np.ceil(max(scaled(h_hi, ht), scaled(a_hi, at))))
        h_next = y = _rounded(b, node, hv, (lo, hi))
    return b.program({"h": h_next}, y), b.info(h_next)[0], None


_PROGRAMS: weakref.WeakKeyDictionary[Recurrent, dict[FixedType, CellProgram]] = (
    weakref.WeakKeyDictionary()
)


def cell_program(node: Recurrent, in_type: FixedType) -> CellProgram:
    """The lowered node's step program for inputs of ``in_type`` (cached per node)."""
    cache = _PROGRAMS.setdefault(node, {})
    if in_type not in cache:
        assert node.state_type is not None
        program, _, _ = _build(node, in_type, node.state_type, node.cell_type)
        cache[in_type] = program
    return cache[in_type]


# ---------------------------------------------------------------------------------------
# lowering
# ---------------------------------------------------------------------------------------
def _union(a: FixedType, b: FixedType) -> FixedType:
    frac = max(a.frac, b.frac)
    lo = min(a.min_int << (frac - a.frac), b.min_int << (frac - b.frac))
    hi = max(a.max_int << (frac - a.frac), b.max_int << (frac - b.frac))
    return FixedType.covering(lo, hi, frac)


def lower_recurrent(node: Recurrent, ctx: LowerContext) -> Recurrent:
    config = ctx.config
    where = f"layer '{node.source or node.name}'"
    explicit = ctx.explicit
    width = config.weight_width
    kernel = _quantize(node.weights, explicit.weight, width, config, where, "weights")
    recurrent = _quantize(node.recurrent, explicit.weight, width, config, where, "weights")
    bias_t = node.bias
    if (
        isinstance(bias_t, ir.FloatTensor)
        and bias_t.quantizer is None
        and not np.any(bias_t.values)
    ):
        bias = ir.QTensor(np.zeros(bias_t.values.shape, dtype=np.int64), FixedType(2, 0, True))
    else:
        bias = _quantize(bias_t, explicit.bias, width, config, where)
    node = node.replace(
        weights=kernel,
        recurrent=recurrent,
        bias=bias,
        # a result type given for the layer sets the fractional bits of its float tables
        # and rounded state
        result_frac=ctx.explicit.result.frac if ctx.explicit.result else config.result_frac,
        rounding=config.rounding,
        overflow=config.overflow,
    )
    sq = _state_quantizer(node)
    fixed = sq.output_type() if sq is not None else None
    h_type = fixed or FixedType(1, 0, False)
    c_type = (fixed or FixedType(1, 0, False)) if isinstance(node, LSTM) else None
    for round_ in range(_STATE_SEARCH_ROUNDS):
        try:
            _, want_h, want_c = _build(node, ctx.in_type, h_type, c_type)
        except UnsupportedError as exc:
            if not node.qkeras or sq is not None or isinstance(node, SimpleRNN):
                raise
            raise UnsupportedError(
                f"{exc}; without a state_quantizer the state is rounded to "
                f"{node.result_frac} fractional bits (result_frac): give the layer a "
                "state_quantizer (exact) or a smaller result_frac in a precision config"
            ) from None
        # the types the state produces, then (should they not settle) their union
        grow = _union if round_ >= _STATE_SEARCH_ROUNDS // 2 else (lambda _old, new: new)
        new_h = want_h if fixed is not None else grow(h_type, want_h)
        new_c = (
            None
            if c_type is None
            else (
                want_c if fixed is not None else grow(c_type, want_c)  # type: ignore[arg-type]
            )
        )
        if new_h == h_type and new_c == c_type:
            break
        h_type, c_type = new_h, new_c
        if h_type.width > MAX_STATE_BITS or (c_type is not None and c_type.width > MAX_STATE_BITS):
            break
    else:
        raise UnsupportedError(f"{where}: no fixed-point type holds the state it produces")
    for what, t in (("h", h_type), ("c", c_type)):
        if t is not None and t.width > MAX_STATE_BITS:
            raise UnsupportedError(
                f"{where}: the state {what} needs {t.width} bits (supported: up to "
                f"{MAX_STATE_BITS}); give the layer a state_quantizer or a narrower type"
            )
    program, _, _ = _build(node, ctx.in_type, h_type, c_type)
    exact = (
        node.qkeras
        and (sq is not None or isinstance(node, SimpleRNN))
        and all(op.error == 0 for op in program.ops)
    )
    if node.qkeras and sq is None and not isinstance(node, SimpleRNN):
        warnings.warn(
            f"{where}: without a state_quantizer QKeras keeps the state in float32, whose "
            f"fractional bits grow every step; rtlgen rounds it to {node.result_frac} "
            "fractional bits (not bit-exact: add a state_quantizer for exactness)",
            RtlgenWarning,
            stacklevel=2,
        )
    node = node.replace(state_type=h_type, cell_type=c_type, exact=exact)
    program = cell_program(node, ctx.in_type)
    return node.replace(out_type=program.value(program.output)[0])


# ---------------------------------------------------------------------------------------
# reference, hardware, checks
# ---------------------------------------------------------------------------------------
def recurrent_reference(node: Recurrent, x: np.ndarray, in_type: FixedType) -> np.ndarray:
    program = cell_program(node, in_type)
    return run_sequence(program, x, node.return_sequences)


def _float_act(node: Recurrent, spec_json: str, key: str):
    """The activation as a float64 function (QKeras kinds as QKeras computes them)."""
    from rtlgen.quant.activations import float_activation

    act = _activation_spec(
        node.source or node.name, _class_name(node), json.loads(spec_json), key, node.keras3
    )
    if act.table is not None:
        kind, params = act.table, dict(act.table_options)
        return lambda v: float_activation(kind, v, params)
    q = act.quantizer
    return lambda v: np.asarray(q.reference(v), dtype=np.float64)


def _float_constant(t: ir.Tensor) -> np.ndarray:
    if isinstance(t, ir.QTensor):
        return t.values
    if t.quantizer is not None:
        return t.quantizer.quantize_constant(t.values).values
    return np.asarray(t.values, dtype=np.float64)


def float_recurrent(node: Recurrent, x: Any) -> np.ndarray:
    """The unlowered layer in float64 on (N, T, F) sample data (Keras's equations), for
    `rtlgen.calibrate` of the layers after it."""
    k, r = _float_constant(node.weights), _float_constant(node.recurrent)
    bias = _float_constant(node.bias)
    act = _float_act(node, node.activation, "activation")
    rec = _float_act(node, node.recurrent_activation, "recurrent_activation")
    sq = _state_quantizer(node)
    quant = (lambda v: np.asarray(sq.reference(v), dtype=np.float64)) if sq else (lambda v: v)
    x = np.asarray(x, dtype=np.float64)
    n, units = x.shape[0], node.units
    h, c = np.zeros((n, units)), np.zeros((n, units))
    outs = []
    for t in range(x.shape[1]):
        xt, hq = x[:, t], quant(h)
        if isinstance(node, SimpleRNN):
            h = act(xt @ k + hq @ r + bias)
        elif isinstance(node, LSTM):
            z = np.split(xt @ k + hq @ r + bias, 4, axis=1)
            c = rec(z[1]) * quant(c) + rec(z[0]) * act(z[2])
            h = rec(z[3]) * act(c)
        else:
            xz, xr, xh = np.split(xt @ k + bias[0], 3, axis=1)
            rz, rr, rh = np.split(r, 3, axis=1)
            if node.reset_after:
                hz, hr, hh = np.split(hq @ r + bias[1], 3, axis=1)
                z, rg = rec(xz + hz), rec(xr + hr)
                cand = act(xh + rg * hh)
            else:
                z, rg = rec(xz + hq @ rz), rec(xr + hq @ rr)
                cand = act(xh + (rg * hq) @ rh)
            h = z * hq + (1 - z) * cand
        outs.append(h)
    return np.stack(outs, axis=1) if node.return_sequences else outs[-1]


def step_cycles(node: Recurrent, in_type: FixedType, multiplier: Any = None) -> int:
    """Cycles per time step of the lowered node's hardware (`RecurrentCell.step_cycles`)
    with ``multiplier`` (None: the most over every multiplier mode: DSP products may add a
    register stage)."""
    from rtlgen.layers.common import Multiplier
    from rtlgen.layers.recurrent import cell_schedule

    program = cell_program(node, in_type)
    modes = list(Multiplier) if multiplier is None else [multiplier]
    return max(cell_schedule(program, mode)[2] for mode in modes) + 1


def recurrent_sample_cycles(node: Recurrent, in_type: FixedType) -> int:
    """Cycles per sample at full rate: T steps (an upper bound over the multiplier modes;
    the plan's timing model has the exact figure)."""
    return node.steps * step_cycles(node, in_type)


def plan_recurrent(node: Recurrent, ctx: PlanContext) -> LayerPlan:
    from rtlgen.layers.recurrent import RecurrentCell
    from rtlgen.plan import LayerPlan

    cell = RecurrentCell(
        cell_program(node, ctx.in_type),
        node.steps,
        node.return_sequences,
        ctx.options.multiplier,
    )
    per_sample = node.steps * cell.step_cycles
    spacing = cell.step_cycles if node.return_sequences else max(per_sample, ctx.sample_cycles)
    return LayerPlan(
        node,
        (cell,),
        multipliers=cell.multipliers,
        multipliers_dense=cell.products,
        adders=cell.adders,
        cycles_per_sample=per_sample,
        out_spacing=spacing,
        notes=(
            f"{_class_name(node)}: {cell.step_cycles} cycles per time step, "
            f"{per_sample} per sequence of {node.steps}"
            + ("" if node.exact or not node.qkeras else "; state rounded (not bit-exact)"),
        ),
    )


def validate_recurrent(node: Recurrent, in_type: FixedType | None) -> None:
    if len(node.in_shape) != 2:
        raise RtlgenError(f"input shape {node.in_shape} is not (time, features)")
    units = node.units
    expected = (node.steps, units) if node.return_sequences else (units,)
    if node.out_shape != expected:
        raise RtlgenError(f"out_shape {node.out_shape} does not match return_sequences")
    if node.state_type is None or node.out_type is None:
        raise RtlgenError("the state and output types must be set")
    if isinstance(node, LSTM) and node.cell_type is None:
        raise RtlgenError("an LSTM needs its cell state type")
    for what, t in (("state_type", node.state_type), ("cell_type", node.cell_type)):
        if t is not None and t.width > MAX_STATE_BITS:
            raise RtlgenError(f"{what} {t} is wider than {MAX_STATE_BITS} bits")
    for key in ("activation", "recurrent_activation", "state_quantizer"):
        try:
            json.loads(getattr(node, key))
        except ValueError:
            raise RtlgenError(f"'{key}' is not JSON") from None
    if not 0 <= node.result_frac <= 62:
        raise RtlgenError(f"result_frac {node.result_frac} is out of range")
    if in_type is not None:
        program = cell_program(node, in_type)
        if program.value(program.output)[0] != node.out_type:
            raise RtlgenError(f"output type {node.out_type} does not match the layer's program")


class _RecurrentOp(Op):
    lower = staticmethod(lower_recurrent)
    reference = staticmethod(recurrent_reference)
    float_forward = staticmethod(float_recurrent)
    plan = staticmethod(plan_recurrent)
    sample_cycles = staticmethod(recurrent_sample_cycles)
    validate = staticmethod(validate_recurrent)
    from_keras = staticmethod(read_keras_recurrent)


def _shapes(gates: int, gru: bool = False):
    def constant_shapes(in_shape: Shape, out_shape: Shape) -> dict[str, Shape]:
        units, features = out_shape[-1], in_shape[-1]
        return {
            "weights": (features, gates * units),
            "recurrent": (units, gates * units),
            "bias": (2, gates * units) if gru else (gates * units,),
        }

    return staticmethod(constant_shapes)


@register_op
class SimpleRNNOp(_RecurrentOp):
    name = "simple_rnn"
    node_types = (SimpleRNN,)
    keras_classes = ("SimpleRNN", "QSimpleRNN")
    constant_shapes = _shapes(1)


@register_op
class LSTMOp(_RecurrentOp):
    name = "lstm"
    node_types = (LSTM,)
    keras_classes = ("LSTM", "QLSTM")
    constant_shapes = _shapes(4)


@register_op
class GRUOp(_RecurrentOp):
    name = "gru"
    node_types = (GRU,)
    keras_classes = ("GRU", "QGRU")
    constant_shapes = _shapes(3, gru=True)
