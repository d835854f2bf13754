"""LUT activation: an elementwise non-linear activation computed by a lookup table
(`rtlgen.quant.activations.lookup_table`): Keras ``sigmoid``, ``tanh``, ``hard_sigmoid``,
``softsign``, ``elu``, ``selu``, ``silu`` (tf.keras 2.15 saves it as ``swish``), ``gelu`` (the erf
form: the string's meaning in tf.keras 2.15 and Keras 3; ``approximate`` is a node option no
Keras file stores), ``softplus``, ``hard_silu`` (Keras 3; ``hard_swish`` is its alias),
``mish`` and ``exponential`` (as ``Activation('...')`` layers, as ``activation='...'`` of a
Dense/Conv/QDense/QConv, which then becomes the linear layer followed by this node, and the
``ELU`` layer) and the QKeras quantizers ``quantized_sigmoid``, ``quantized_tanh``,
``quantized_relu(use_sigmoid=1)``, ``quantized_relu_po2`` and ``quantized_hswish`` (MobileNetV3's
hard swish, not monotone: an input too wide for a table is refused) (as ``QActivation`` or an
``activation=`` string; ``quantized_relu_po2``'s outputs, 0 or powers of two, are plain
fixed-point values: ``bits=4`` gives 2**-8 .. 2**7, a type of up to 16 bits).

Precision (`lower_table`). A table has one entry per input code, so its input has at most
`MAX_TABLE_INPUT_BITS` bits. A wider input is first requantized (rounding with the
layer's rounding, saturating) into the *table type*: these functions are monotone and
constant, after rounding into the output type, beyond some ``|x|`` (sigmoid/tanh near 8
for 10 output fraction bits, hard sigmoid at 2.5): the table type gets the fewest integer
bits whose ends already give those saturated outputs (so saturating the input there is
exact) and the rest of `TABLE_INPUT_BITS` as fraction. QKeras kinds must stay bit-exact, so
their table type keeps every fractional bit of the input and only drops integer bits that
cannot change the output; when that needs more than `MAX_TABLE_INPUT_BITS` bits (a QDense's
accumulator of 14 or more fractional bits) the node becomes a `rtlgen.ops.threshold.Threshold`
instead (`threshold_form`): the QKeras quantizers are monotone step functions of at most
2**bits levels, so the least input mantissa reaching each level, found by exact bisection on
QKeras's float32 formula, decides them bit-exactly on the input as it is (quantized_tanh(6)
of a fixed<20,6> input: 63 thresholds a channel, no table); more than 256 levels are refused
(quantize the activation's input). ``use_real_tanh``/``use_real_sigmoid`` evaluate tanh and
exp correctly rounded to float32, where TensorFlow's float32 kernels can be an ulp off: on
inputs with more than 14 fractional bits a few level boundaries can differ (5 in 220,000
inputs of fixed<24,6>, quantized_tanh(8, use_real_tanh=True); none with QKeras's default
hard sigmoid). Float tables round into ``result_frac``
fractional bits (`PrecisionConfig`) with the integer bits their values need, unless the
layer has an explicit result type; QKeras tables into `table_out_type` (exact).

``max_error`` (shown by ``rtlgen inspect``): a bound on ``|output - f(x)|`` over every input
``x`` of the node's input type, ``f`` the exact float function (for QKeras kinds: the
unquantized function QKeras quantizes): the table's own largest error (`table_error`) plus,
where the input is requantized, the function's largest slope times the input rounding.

ELU is the identity above 0: for a wide input (``linear_above``) those inputs bypass the
table (requantized into the output type), so the table covers only the negative side and
needs the integer bits where ELU saturates there (~4 for 10 fraction bits), not those of
the whole input range (a float model's proven fixed<19,9>: a fixed<12,4> table, max error
0.0024, was fixed<12,9>, 0.063). SiLU and GELU tend to 0 below and to x above: a wide
input bypasses the table above the table's range (`bypass_threshold`), whose high end is
where ``sup |f(x) - x|`` beyond it (`identity_gap`) is at most half an output step (10
fraction bits: SiLU from 10, a fixed<12,5> table; GELU from 4, fixed<12,3>), and whose low
end is where f rounds to its limit 0 (or -1 step when truncating). Their ``max_error`` is
the largest of the table's bound above, the bypass's (the output rounding of x plus that
gap) and the saturated low inputs' (``|table[0]|``): fixed<19,9> in, 10 output fraction
bits: SiLU 0.0048 (the 7-bit table fraction: slope 1.1 times 2**-8), GELU 0.0016 (9 bits).
Softplus tends to 0 below and to x above as well (``x + log1p(exp(-x))``) and is bypassed
the same way (10 fraction bits: from 8, where ``log1p(exp(-8)) < 2**-11``), and so are mish
(``x * tanh(softplus(x))``: 0 from below, x above) and hard_silu (``x * relu6(x + 3) / 6``,
an exact rational table: 0 below -3 and x itself above 3, so its bypass is exact).
Exponential grows without bound: its values round into the output type and saturate there
(by default at ``result_int_bits`` integer bits, as every float-model result), and a wide
input's table type is the narrowest whose top end already saturates.

Softsign neither saturates nor nears a line within a wide input's range (x / (1 + |x|) is
still 2**-9 from 1 at 511), so its table needs every integer bit of the input and keeps
few fraction bits, where its slope near 0 is 1: a proven fixed<19,9> input, one table of
fixed<12,9>, was 0.063 off. A wide input is looked up in two tables instead (``fine_type``,
`split_table_type`): inputs within the range of ``fine_type`` (twelve bits with more
fraction, around 0) in a fine table, the others in the coarse ``table_type`` table, where
the slope ``1 / (1 + |x|)**2`` times its input rounding is small. ``fine_type`` is the one
whose larger bound of the two segments is the least: 10 output fraction bits, fixed<19,9>
in: fixed<12,4> and fixed<12,9>, max error 0.0024 (the fine table's 8 fraction bits: 2**-9
plus the output rounding); fixed<16,8>: fixed<12,4> (every input fraction bit) and
fixed<12,8>, 0.00088 (the coarse table beyond 8: 2**-5 times the slope 1/81 there).

SELU (``SELU_SCALE * elu(x, SELU_ALPHA)``, Keras's constants) is a constant times x above 0:
a wide input bypasses the table there as ELU's does, through a multiply by SELU_SCALE rounded
to enough fraction bits (`bypass_scale`: off by at most 2**-(out_frac + 3) over the input's
range), so its table also covers only the negative side (fixed<19,9> in: fixed<12,7>, max
error 0.0072, where one table of every integer bit was fixed<12,2>, 0.26).

Hardware: [`Requantize` into the table type ->] `LookupTable` (one ROM per two elements of
a beat, a read port each, or a case statement per element for tables of up to 6 input
bits), or for ``linear_above`` a `BypassTable`, for ``fine_type`` a `SplitTable` (two
ROMs). II = 1, latency 1 + 1 (2).
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass, field
from enum import Enum
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import numpy as np

from rtlgen import ir
from rtlgen.frontend.keras_config import (
    ActivationSpec,
    KerasLayer,
    LayerOut,
    WeightSource,
    config_number,
)
from rtlgen.ops.registry import Op, Shape, register_op
from rtlgen.ops.threshold import MAX_INPUT_WIDTH, Threshold, pad
from rtlgen.passes import LowerContext
from rtlgen.quant.activations import (
    MAX_TABLE_INPUT_BITS,
    SELU_ALPHA,
    SELU_SCALE,
    ActivationKind,
    activation_params,
    apply_table,
    check_table_input,
    exact_type,
    float_activation,
    lookup_table,
    relu_po2_quantizer,
    table_error,
    table_out_type,
)
from rtlgen.quant.errors import RtlgenError, RtlgenWarning, UnsupportedError
from rtlgen.quant.fixed import FixedType, Overflow, Rounding, requantize
from rtlgen.quant.threshold import (
    MAX_THRESHOLD_LEVELS,
    StepFunction,
    check_monotone,
    level_span,
    step_thresholds,
)

if TYPE_CHECKING:
    from rtlgen.plan import LayerPlan, PlanContext

#: Default width of a table's input when a wider input is requantized (4 K entries a lane).
TABLE_INPUT_BITS = 12

#: Integer bits of the wide type the saturation search rounds into (no output saturates).
_SEARCH_WIDTH = 48


class InternalSigmoid(Enum):
    """QKeras's module-wide ``set_internal_sigmoid`` mode (not saved in model files: the
    default "hard" unless the user says otherwise)."""

    HARD = "hard"
    SMOOTH = "smooth"
    REAL = "real"


@dataclass(frozen=True, eq=False)
class TableActivation(ir.Node):
    """``y = table[requantize(x, table_type)]``: an elementwise activation by lookup table.

    ``kind`` and its options (only those of the kind matter, see `params`): ELU's ``alpha``,
    hard sigmoid's ``slope``/``offset``, and the QKeras quantizer's ``bits``, ``integer``,
    ``symmetric``, ``use_real`` (use_real_sigmoid / use_real_tanh), ``use_sigmoid``,
    ``negative_slope``, ``internal_sigmoid``, ``max_value``, ``quadratic_approximation``,
    ``log2_rounding``. Lowered: ``table_type`` (the table's input
    type; the input itself when they are equal), ``rounding``/``overflow`` (the input
    requantize rounds with ``rounding`` and always saturates; float tables round their
    values into ``out_type`` with both), ``max_error`` (see the module doc).
    """

    kind: ActivationKind = field(kw_only=True)
    alpha: float = field(default=1.0, kw_only=True)
    slope: float = field(default=0.2, kw_only=True)
    offset: float = field(default=0.5, kw_only=True)
    bits: int = field(default=8, kw_only=True)
    integer: int = field(default=0, kw_only=True)
    symmetric: bool = field(default=False, kw_only=True)
    use_real: bool = field(default=False, kw_only=True)
    use_sigmoid: bool = field(default=False, kw_only=True)
    negative_slope: float = field(default=0.0, kw_only=True)
    internal_sigmoid: InternalSigmoid = field(default=InternalSigmoid.HARD, kw_only=True)
    #: quantized_relu_po2's options
    max_value: float | None = field(default=None, kw_only=True)
    quadratic_approximation: bool = field(default=False, kw_only=True)
    log2_rounding: str = field(default="rnd", kw_only=True)
    #: quantized_hswish's options
    relu_shift: float = field(default=3.0, kw_only=True)
    relu_upper_bound: float = field(default=6.0, kw_only=True)
    table_type: FixedType | None = field(default=None, kw_only=True)
    rounding: Rounding = field(default=Rounding.CONVERGENT, kw_only=True)
    overflow: Overflow = field(default=Overflow.SATURATE, kw_only=True)
    max_error: float = field(default=0.0, kw_only=True)
    #: inputs above `bypass_threshold` bypass the table (``y = requantize(x)``, SELU:
    #: ``requantize(x * scale)``, `bypass_scale`): ELU's and SELU's linear side (above 0),
    #: SiLU's and GELU's (above the table's range, where they are within a rounding of x),
    #: so the table covers only the side that saturates (set for wide inputs of these kinds)
    linear_above: bool = field(default=False, kw_only=True)
    #: GELU: the tanh approximation instead of erf (Keras's ``approximate``)
    approximate: bool = field(default=False, kw_only=True)
    #: softsign of a wide input: the inputs within this type's range (around 0, where the
    #: slope is large) are looked up in a second table over it, with more fraction bits than
    #: ``table_type``'s, which serves the others (`split_table_type`)
    fine_type: FixedType | None = field(default=None, kw_only=True)

    op = "lut_activation"

    def params(self) -> dict[str, Any]:
        """The kind's options as `activation_params` takes them (checked there)."""
        kind = self.kind
        qkeras: dict[str, Any] = {"internal_sigmoid": self.internal_sigmoid.value}
        if kind is ActivationKind.ELU:
            p: dict[str, Any] = {"alpha": self.alpha}
        elif kind is ActivationKind.GELU:
            p = {"approximate": bool(self.approximate)}
        elif kind is ActivationKind.HARD_SIGMOID:
            # the stored floats stand for simple fractions (Keras 2: 1/5, Keras 3: 1/6)
            p = {
                "slope": Fraction(self.slope).limit_denominator(1 << 16),
                "offset": Fraction(self.offset).limit_denominator(1 << 16),
            }
        elif kind is ActivationKind.QUANTIZED_SIGMOID:
            p = {"bits": self.bits, "symmetric": self.symmetric}
            p.update(use_real_sigmoid=self.use_real, **qkeras)
        elif kind is ActivationKind.QUANTIZED_TANH:
            p = {"bits": self.bits, "symmetric": self.symmetric}
            p.update(use_real_tanh=self.use_real, **qkeras)
        elif kind is ActivationKind.QUANTIZED_RELU_PO2:
            p = {"bits": self.bits, "max_value": self.max_value}
            p.update(
                quadratic_approximation=self.quadratic_approximation,
                log2_rounding=self.log2_rounding,
            )
        elif kind is ActivationKind.QUANTIZED_HSWISH:
            p = {"bits": self.bits, "integer": self.integer, "symmetric": self.symmetric}
            p.update(relu_shift=self.relu_shift, relu_upper_bound=self.relu_upper_bound)
        elif kind is ActivationKind.QUANTIZED_RELU:
            p = {"bits": self.bits, "integer": self.integer, "use_sigmoid": int(self.use_sigmoid)}
            p.update(negative_slope=self.negative_slope, **qkeras)
        else:
            p = {}
        return activation_params(kind, p)

    def describe(self) -> str:
        """What ``rtlgen inspect`` shows in its activation column."""
        text = self.kind.value
        if self.fine_type is not None:
            tables = f"tables of {self.fine_type} near 0 and {self.table_type}"
            text += f" ({tables}, max error {self.max_error:.2g})"
        elif self.table_type is not None:
            text += f" (table of {self.table_type}, max error {self.max_error:.2g})"
        return text


# ---------------------------------------------------------------------------------------
# front-end
# ---------------------------------------------------------------------------------------
_OPTION_FIELDS = {
    "alpha": "alpha",
    "slope": "slope",
    "offset": "offset",
    "bits": "bits",
    "integer": "integer",
    "symmetric": "symmetric",
    "use_real_sigmoid": "use_real",
    "use_real_tanh": "use_real",
    "use_sigmoid": "use_sigmoid",
    "negative_slope": "negative_slope",
    "approximate": "approximate",
    "max_value": "max_value",
    "quadratic_approximation": "quadratic_approximation",
    "log2_rounding": "log2_rounding",
    "relu_shift": "relu_shift",
    "relu_upper_bound": "relu_upper_bound",
}


def table_node(name: str, shape: Shape, act: ActivationSpec, source: str) -> TableActivation:
    """The node of an `ActivationSpec` whose ``table`` is set (the options were checked
    when the spec was read; options that cannot change the output are dropped)."""
    assert act.table is not None
    options: dict[str, Any] = {}
    for key, value in act.table_options:
        if key in _OPTION_FIELDS and value is not None:
            target = _OPTION_FIELDS[key]
            floats = ("alpha", "slope", "offset", "max_value", "relu_shift", "relu_upper_bound")
            options[target] = float(value) if target in floats else value
    if "negative_slope" in options:
        options["negative_slope"] = float(options["negative_slope"])
    for flag in ("symmetric", "use_real", "use_sigmoid", "approximate", "quadratic_approximation"):
        if flag in options:
            options[flag] = bool(options[flag])
    node = TableActivation(name, shape, shape, kind=act.table, source=source, **options)
    node.params()
    return node


def read_keras_elu(layer: KerasLayer, shape: Shape, source: WeightSource) -> LayerOut:
    alpha = config_number(layer, "alpha", 1.0)
    assert alpha is not None
    if alpha < 0:
        raise UnsupportedError(f"{layer.where}: alpha={alpha} (supported: alpha >= 0)")
    spec = ActivationSpec(table=ActivationKind.ELU, table_options=(("alpha", alpha),))
    return LayerOut([table_node(layer.name, shape, spec, layer.name)], shape)


# ---------------------------------------------------------------------------------------
# precision
# ---------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=64)
def _cached_table(
    kind: ActivationKind,
    table_type: FixedType,
    out_type: FixedType,
    params: tuple[tuple[str, Any], ...],
    rounding: Rounding,
    overflow: Overflow,
) -> np.ndarray:
    with np.errstate(over="ignore"):
        table = lookup_table(kind, table_type, out_type, dict(params), rounding, overflow)
    table.setflags(write=False)
    return table


def node_table(node: TableActivation) -> np.ndarray:
    """The lowered node's table (entry k: input mantissa ``table_type.min_int + k``)."""
    assert node.table_type is not None and node.out_type is not None
    params = tuple(sorted(node.params().items()))
    return _cached_table(
        node.kind, node.table_type, node.out_type, params, node.rounding, node.overflow
    )


def node_fine_table(node: TableActivation) -> np.ndarray:
    """The lowered node's fine table (over ``fine_type``; `split_table_type`)."""
    assert node.fine_type is not None and node.out_type is not None
    params = tuple(sorted(node.params().items()))
    return _cached_table(
        node.kind, node.fine_type, node.out_type, params, node.rounding, node.overflow
    )


def _values(
    kind: ActivationKind, t: FixedType, p: dict[str, Any], wide: FixedType, rounding: Rounding
) -> np.ndarray:
    """The table's output values over ``t``: QKeras kinds exactly, float kinds rounded into
    ``wide`` (whose range no value reaches)."""
    with np.errstate(over="ignore"):
        if kind.is_qkeras:
            out = table_out_type(kind, t, p)
            return out.to_float(lookup_table(kind, t, out, p))
        return wide.to_float(lookup_table(kind, t, wide, p, rounding, Overflow.SATURATE))


def table_type_for(
    kind: ActivationKind,
    in_type: FixedType,
    out_frac: int,
    p: dict[str, Any],
    rounding: Rounding,
    budget: int = TABLE_INPUT_BITS,
    linear_above: bool = False,
    ceiling: FixedType | None = None,
) -> FixedType:
    """The table's input type for an input wider than `MAX_TABLE_INPUT_BITS`: the fewest
    integer bits whose two ends already give the outputs of the inputs beyond them (the
    functions are monotone there, so every input beyond gives them too), the rest of
    ``budget`` bits as fraction (QKeras kinds: every fractional bit of the input).
    ``linear_above``: the inputs above the bypass threshold skip the table, so only its low
    end must saturate; SiLU's and GELU's high end must instead lie where the function is
    within half an output step of x (`identity_gap`). ``ceiling``: the output type where
    the values saturate (exponential's, which grows on without bound)."""
    exact = kind.is_qkeras
    wide = ceiling or FixedType(_SEARCH_WIDTH, out_frac, True)
    in_int = in_type.width - in_type.frac
    # codes -2, -1, 0, 1 of this type lie beyond both ends of the input's range
    far = _values(kind, FixedType(2, -(in_int + 1), True), p, wide, rounding)
    if kind in _NEAR_IDENTITY:
        # SiLU/GELU tend to 0 from below: the limit rounds to 0, or to -1 step when
        # truncating (far out their values underflow to an exact 0, which is not the limit);
        # softplus tends to 0 from above: 0 either way
        below = kind in _ZERO_FROM_BELOW
        far[0] = -wide.step if below and rounding is Rounding.TRUNCATE else 0.0
    least = 2 if in_type.signed else 1
    half_step = 2.0 ** -(out_frac + 1)

    def candidate(int_bits: int) -> FixedType:
        frac = in_type.frac if exact else min(in_type.frac, budget - int_bits)
        return FixedType(max(int_bits + frac, least), frac, in_type.signed)

    def enough(t: FixedType) -> bool:
        covers_hi = t.max_value >= in_type.max_value
        if linear_above and not covers_hi:
            # above the table the bypass outputs x: f must be within half a step of it there
            if kind in _NEAR_IDENTITY and identity_gap(kind, p, t.max_value) > half_step:
                return False
            covers_hi = True
        covers_lo = t.min_value <= in_type.min_value
        if (covers_hi and covers_lo) or (exact and t.width > MAX_TABLE_INPUT_BITS):
            return True  # the whole input range (or too wide anyway: refused by the caller)
        ends = _values(kind, t, p, wide, rounding)[[0, -1]]
        return bool((covers_lo or ends[0] == far[0]) and (covers_hi or ends[1] == far[-1]))

    # `enough` is monotone in the integer bits (the ends move outwards): bisect
    lo = 1 if in_type.signed else 0
    hi = max(lo, in_int)
    while lo < hi:
        mid = (lo + hi) // 2
        if enough(candidate(mid)):
            hi = mid
        else:
            lo = mid + 1
    return candidate(hi)


_SLOPES = {
    ActivationKind.SIGMOID: 0.25,
    ActivationKind.TANH: 1.0,
    ActivationKind.SOFTSIGN: 1.0,
    ActivationKind.SILU: 1.1,  # largest derivative 1.0998 (at x = 2.40)
    ActivationKind.GELU: 1.13,  # 1.1289 (erf, at x = sqrt 2); the tanh form 1.1290
    ActivationKind.SOFTPLUS: 1.0,  # its derivative is the sigmoid
    ActivationKind.HARD_SILU: 1.5,  # (2x + 3) / 6 at x = 3
    ActivationKind.MISH: 1.09,  # 1.0885 (at x = 1.49)
}

#: kinds whose wide inputs bypass the table above a threshold (`TableActivation.linear_above`)
_BYPASS_KINDS = (
    ActivationKind.ELU,
    ActivationKind.SELU,
    ActivationKind.SILU,
    ActivationKind.GELU,
    ActivationKind.SOFTPLUS,
    ActivationKind.HARD_SILU,
    ActivationKind.MISH,
)
#: of those, the ones that are only near the identity: bypassed above the table's range
#: (hard_silu is x itself from 3 on)
_NEAR_IDENTITY = (
    ActivationKind.SILU,
    ActivationKind.GELU,
    ActivationKind.SOFTPLUS,
    ActivationKind.HARD_SILU,
    ActivationKind.MISH,
)
#: of those, the ones whose limit 0 below is approached from below in extended precision
#: (far out their values underflow to an exact 0; hard_silu is exactly 0 below -3)
_ZERO_FROM_BELOW = (ActivationKind.SILU, ActivationKind.GELU, ActivationKind.MISH)


def identity_gap(kind: ActivationKind, p: dict[str, Any], low: float) -> float:
    """``sup |f(x) - x|`` over ``x >= low`` for SiLU / GELU (``x * g(-x)`` with ``g`` the
    sigmoid or the normal CDF: largest at x = 1.28 / 0.75, falling beyond) and softplus
    (``log1p(exp(-x))``, falling everywhere): the largest of a
    fine grid up to 3 (max(low, 3) onwards it falls), plus a margin for the grid's step (the
    function's curvature times step**2 / 8 is below 1e-9)."""
    x = np.linspace(low, max(low, 3.0), 30001)
    gap = np.abs(float_activation(kind, x, p) - x)
    return float(np.max(gap)) + 1e-9


def bypass_scale(kind: ActivationKind, in_type: FixedType, out_frac: int) -> tuple[int, int]:
    """The factor of the bypass (mantissa, fraction bits): 1 but for SELU, whose scale is
    rounded to enough fraction bits that it is off by at most 2**-(out_frac + 3) over the
    input's range (while the product of an input mantissa stays within 62 bits)."""
    if kind is not ActivationKind.SELU:
        return 1, 0
    frac = max(0, min(out_frac + in_type.width - in_type.frac + 2, 60 - in_type.width))
    return round(SELU_SCALE * 2**frac), frac


def bypass_values(
    node: TableActivation, x: np.ndarray, in_type: FixedType, out_type: FixedType
) -> np.ndarray:
    """``requantize(x * scale)`` into ``out_type``: the bypass's outputs (`bypass_scale`)."""
    mantissa, frac = bypass_scale(node.kind, in_type, out_type.frac)
    return requantize(x * mantissa, in_type.frac + frac, out_type, node.rounding, node.overflow)


def bypass_threshold(node: TableActivation, in_type: FixedType) -> int:
    """The input mantissa above which a ``linear_above`` node bypasses its table: 0 for
    ELU; SiLU and GELU: the table type's largest value (the inputs up to it are looked up)."""
    assert node.table_type is not None
    if node.kind not in _NEAR_IDENTITY:
        return 0
    shift = in_type.frac - node.table_type.frac
    top = node.table_type.max_int
    return top << shift if shift >= 0 else top >> -shift


def _saturation_gap(
    kind: ActivationKind,
    p: dict[str, Any],
    in_type: FixedType,
    table_type: FixedType,
    linear_above: bool,
) -> float:
    """``sup |f(x) - f(end)|`` over the inputs beyond an end of the table's range, which
    saturate to it (f is monotone beyond the ends; a ``linear_above`` node bypasses the high
    one): next to nothing where `table_type_for` put the end where f is flat; a function
    that grows on beyond a table of every integer bit (SELU without its bypass) is off by
    its slope times up to a table step there (the inputs above the end round down to it)."""
    pairs = []
    if table_type.min_value > in_type.min_value:
        pairs.append((in_type.min_value, table_type.min_value))
    if not linear_above and table_type.max_value < in_type.max_value:
        pairs.append((in_type.max_value, table_type.max_value))
    if not pairs:
        return 0.0
    with np.errstate(over="ignore"):
        values = float_activation(kind, np.array(pairs), p)
    return float(np.max(np.abs(values[:, 0] - values[:, 1]))) + 1e-12


def _largest_slope(kind: ActivationKind, p: dict[str, Any], table_type: FixedType) -> float:
    if kind is ActivationKind.EXPONENTIAL:  # exp's slope is itself: largest at the table's top
        return math.exp(min(table_type.max_value, 700.0))
    if kind is ActivationKind.ELU:
        return max(1.0, float(p["alpha"]))
    if kind is ActivationKind.SELU:  # SELU_SCALE above 0, up to SELU_SCALE * SELU_ALPHA below
        return SELU_SCALE * SELU_ALPHA
    if kind is ActivationKind.HARD_SIGMOID:
        return float(p["slope"])
    return _SLOPES[kind]


#: kinds whose wide inputs are looked up in a fine table near 0 and a coarse one beyond
_SPLIT_KINDS = (ActivationKind.SOFTSIGN,)


def _slope_beyond(kind: ActivationKind, magnitude: float) -> float:
    """``sup |f'(x)|`` over ``|x| >= magnitude`` (softsign: ``1 / (1 + |x|)**2``)."""
    assert kind is ActivationKind.SOFTSIGN
    return 1.0 / (1.0 + max(magnitude, 0.0)) ** 2


def _rounding_reach(t: FixedType, in_type: FixedType, rounding: Rounding) -> float:
    """``sup |requantize(x, t) - x|`` over the inputs within ``t``'s range."""
    if t.frac >= in_type.frac:
        return 0.0
    return t.step if rounding is Rounding.TRUNCATE else t.step / 2


def split_table_type(
    kind: ActivationKind,
    in_type: FixedType,
    table_type: FixedType,
    out_type: FixedType,
    p: dict[str, Any],
    rounding: Rounding,
    overflow: Overflow,
    budget: int = TABLE_INPUT_BITS,
) -> tuple[FixedType | None, float]:
    """The fine table's type for a wide input of a `_SPLIT_KINDS` kind and the error bound
    of the two tables, or (None, the bound of ``table_type``'s table alone) when no fine
    table lowers it. An input ``x`` within the fine type's range: that table's error plus
    slope 1 times its input rounding. Beyond it (``|x| >= a``, ``a`` the fine range's end
    plus an input step): the coarse table's error plus the slope beyond ``a`` minus the
    rounding reach ``r`` times ``r``, and at a saturated end f's change from the table's
    end to the input's. Of the fine types of ``budget`` bits narrower than ``table_type``,
    the one whose larger bound is the least."""
    with np.errstate(over="ignore"):
        coarse_error = table_error(kind, table_type, out_type, p, rounding, overflow)
    reach = _rounding_reach(table_type, in_type, rounding)
    # the inputs beyond the table's ends saturate to them: f is monotone, so off by at most
    # f at the input's end minus f at the table's (plus float64's rounding of the two)
    ends = np.array(
        [[in_type.min_value, table_type.min_value], [in_type.max_value, table_type.max_value]]
    )
    f_ends = float_activation(kind, ends, p)
    saturated = float(np.max(np.abs(f_ends[:, 0] - f_ends[:, 1]))) + 1e-12
    alone = coarse_error + max(_slope_beyond(kind, 0.0) * reach, saturated)

    def bounds(fine: FixedType, fine_table_error: float) -> tuple[float, float]:
        near = fine_table_error + _slope_beyond(kind, 0.0) * _rounding_reach(
            fine, in_type, rounding
        )
        beyond = fine.max_value + in_type.step
        far = coarse_error + max(_slope_beyond(kind, beyond - reach) * reach, saturated)
        return near, far

    candidates = []
    for int_bits in range(1, table_type.width - table_type.frac):
        frac = min(in_type.frac, budget - int_bits)
        if frac > table_type.frac:
            candidates.append(FixedType(int_bits + frac, frac, True))
    if not candidates:
        return None, alone
    # chosen with the coarse table's rounding error standing in for each fine table's (the
    # same output type and rounding), then the chosen one's own error
    fine = min(candidates, key=lambda t: max(bounds(t, coarse_error)))
    with np.errstate(over="ignore"):
        error = max(bounds(fine, table_error(kind, fine, out_type, p, rounding, overflow)))
    return (fine, error) if error < alone else (None, alone)


def fine_range(node: TableActivation, in_type: FixedType) -> tuple[int, int]:
    """The input mantissas looked up in the fine table: those within ``fine_type``'s range."""
    assert node.fine_type is not None
    shift = in_type.frac - node.fine_type.frac
    return node.fine_type.min_int << shift, node.fine_type.max_int << shift


def lower_table(
    node: TableActivation, ctx: LowerContext, *, fine: bool = True
) -> TableActivation | Threshold:
    """Choose the table type(s) and the output type (module doc) and bound the error, or
    the `Threshold` node of a QKeras kind too wide for an exact table (`threshold_form`).
    ``fine=False``: one table and nothing else, even for softsign of a wide input and
    without the bypass of ELU, SELU, SiLU and GELU (a recurrent cell's gate, whose program
    reads only the table)."""
    where = f"layer '{node.source or node.name}'"
    in_type, config = ctx.in_type, ctx.config
    try:
        p = node.params()
    except RtlgenError as exc:
        raise type(exc)(f"{where}: {exc}") from None
    rounding = config.rounding
    kind = node.kind
    explicit = None if kind.is_qkeras else ctx.explicit.result
    out_frac = explicit.frac if explicit is not None else config.result_frac
    # ELU is the identity above 0, SiLU and GELU near it above a few units: a wide input
    # bypasses the table there (`BypassTable`)
    linear_above = fine and kind in _BYPASS_KINDS and in_type.width > MAX_TABLE_INPUT_BITS
    if kind is ActivationKind.QUANTIZED_RELU_PO2:
        _check_po2_least(node, p, where)
    # exp grows without bound: its values saturate at the output type, by default at
    # ``result_int_bits`` integer bits as every float-model result
    ceiling = None
    if kind is ActivationKind.EXPONENTIAL:
        ceiling = explicit or FixedType(config.result_int_bits + out_frac, out_frac, False)
    if in_type.width <= MAX_TABLE_INPUT_BITS:
        table_type = in_type
    else:
        table_type = table_type_for(
            kind, in_type, out_frac, p, rounding, linear_above=linear_above, ceiling=ceiling
        )
        if table_type.width > MAX_TABLE_INPUT_BITS:
            stepped = threshold_form(node, in_type, p)
            if stepped is not None:
                return stepped
        if table_type.width > MAX_TABLE_INPUT_BITS:
            raise UnsupportedError(
                f"{where}: {kind.value} of a {in_type} input needs a table of {table_type} to "
                f"stay bit-exact (supported: up to {MAX_TABLE_INPUT_BITS} input bits); quantize "
                "the activation's input (e.g. a quantized_bits output on the layer before it)"
            )
    if kind.is_qkeras:
        try:
            out_type = table_out_type(kind, table_type, p)
        except RtlgenError as exc:  # quantized_relu_po2(7): 2**-64 .. 2**63
            raise UnsupportedError(f"{where}: {node.kind.value}({node.bits}): {exc}") from None
    elif explicit is not None:
        out_type = explicit
    else:
        wide = ceiling or FixedType(_SEARCH_WIDTH, out_frac, True)
        with np.errstate(over="ignore"):
            values = lookup_table(kind, table_type, wide, p, rounding, Overflow.SATURATE)
        top = int(values.max())
        if linear_above:  # the largest input (SELU: times its scale), rounded
            probe = node.replace(rounding=rounding, overflow=Overflow.SATURATE)
            top = max(top, int(bypass_values(probe, np.array([in_type.max_int]), in_type, wide)[0]))
        out_type = FixedType.covering(int(values.min()), top, out_frac)
    with np.errstate(over="ignore"):
        error = table_error(kind, table_type, out_type, p, rounding, config.overflow)
    if table_type != in_type:
        dropped = in_type.frac - table_type.frac
        reach = 0.0
        if dropped > 0:
            step = table_type.step if rounding is Rounding.TRUNCATE else table_type.step / 2
            reach = _largest_slope(kind, p, table_type) * step
        error += max(reach, _saturation_gap(kind, p, in_type, table_type, linear_above))
    if linear_above and kind in _NEAR_IDENTITY:
        # below the table: its first entry v, f between f(table min) and 0 (|v - f| at most
        # the table's error or |v|); above it: x rounded into the output, off f by the gap
        probe = node.replace(
            table_type=table_type, out_type=out_type, rounding=rounding, overflow=config.overflow
        )
        first = abs(float(out_type.to_float(node_table(probe)[0])))
        out_step = out_type.step if rounding is Rounding.TRUNCATE else out_type.step / 2
        bypass = out_step + identity_gap(kind, p, table_type.max_value)
        error = max(error, first, bypass)
    if linear_above and kind is ActivationKind.SELU:
        # above 0: SELU_SCALE * x through the rounded scale, rounded into the output
        mantissa, frac = bypass_scale(kind, in_type, out_type.frac)
        scale_error = abs(SELU_SCALE - mantissa * 2.0**-frac) * max(in_type.max_value, 0.0)
        out_step = out_type.step if rounding is Rounding.TRUNCATE else out_type.step / 2
        error = max(error, out_step + scale_error + 1e-12)
    fine_type = None
    if fine and kind in _SPLIT_KINDS and table_type != in_type:
        fine_type, error = split_table_type(
            kind, in_type, table_type, out_type, p, rounding, config.overflow
        )
    if ctx.quantized_model and not kind.is_qkeras and explicit is None and error > 0:
        # a float function among quantizers (a new-user trial's HGQ2 model with a Keras
        # tanh): the framework computes it in float, the table within `error`, so the next
        # quantizer can round a value differently
        warnings.warn(
            f"{where}: a float {kind.value} in a quantized model is a table with {out_type} "
            f"outputs (max error {error:.2g}), not bit-exact with the framework's float "
            f"{kind.value}; for exact results use a quantized one (QKeras quantized_tanh/"
            "quantized_sigmoid, HGQ2 QUnaryFunctionLUT)",
            RtlgenWarning,
            stacklevel=2,
        )
    return node.replace(
        table_type=table_type,
        out_type=out_type,
        rounding=rounding,
        overflow=config.overflow,
        max_error=float(error),
        linear_above=linear_above,
        fine_type=fine_type,
    )


def _check_po2_least(node: TableActivation, p: dict[str, Any], where: str) -> None:
    """quantized_relu_po2 gives ``2**min_exp`` for every input <= 0 (0 where float32 flushes
    it, below 2**-126): refused when that needs more fraction bits than a type has."""
    least = int(relu_po2_quantizer(p).exponent_range()[0])
    if -126 <= least < -_MAX_PO2_FRAC:
        raise UnsupportedError(
            f"{where}: {node.kind.value}(bits={node.bits}, max_value={node.max_value}) gives "
            f"2**{least} for inputs <= 0, a fixed-point value of more than 62 bits (supported: "
            f"a least exponent of -{_MAX_PO2_FRAC} or more, e.g. bits <= 6, or below -126, "
            "which float32 flushes to 0, e.g. bits=8)"
        )


#: the most fraction bits of quantized_relu_po2's least output (62-bit types)
_MAX_PO2_FRAC = 60


def _qkeras_frac(kind: ActivationKind, p: dict[str, Any]) -> int:
    """The fractional bits of a QKeras kind's output grid (qkeras 0.9.0: quantized_sigmoid
    steps 2**-bits, quantized_tanh 2**-(bits - 1), quantized_relu 2**(integer - bits), one
    bit fewer with a negative slope)."""
    if kind is ActivationKind.QUANTIZED_SIGMOID:
        return int(p["bits"])
    if kind in (ActivationKind.QUANTIZED_TANH, ActivationKind.QUANTIZED_HSWISH):
        return int(p["bits"]) - 1 - (int(p["integer"]) if "relu_shift" in p else 0)
    return int(p["bits"]) - bool(float(p["negative_slope"] or 0.0)) - int(p["integer"])


@dataclass(frozen=True, eq=False)
class _QKerasActivation:
    """A QKeras kind as the quantizer a `StepFunction` applies (QKeras's float32 formula)."""

    kind: ActivationKind
    params: tuple[tuple[str, Any], ...]

    def reference(self, y: np.ndarray) -> np.ndarray:
        return float_activation(self.kind, y, dict(self.params))

    def __str__(self) -> str:
        return self.kind.value


@dataclass(frozen=True, eq=False)
class _Po2Level:
    """quantized_relu_po2 as the index of its level, for `StepFunction` (whose levels are
    steps of one grid, which powers of two are not): 0 for an output of 0 (a subnormal
    flushed), else 1 + the exponent above the least one."""

    params: tuple[tuple[str, Any], ...]

    def _least(self) -> int:
        return int(relu_po2_quantizer(dict(self.params)).exponent_range()[0])

    def reference(self, y: np.ndarray) -> np.ndarray:
        v = float_activation(ActivationKind.QUANTIZED_RELU_PO2, y, dict(self.params))
        exponent = np.log2(np.where(v > 0, v, 1.0))  # exact for powers of two
        return np.where(v > 0, exponent - self._least() + 1, 0.0)

    def mantissas(self, levels: np.ndarray) -> tuple[np.ndarray, int]:
        """The outputs of level indices as exact mantissas and their fraction bits."""
        exponent = levels.astype(np.float64) + self._least() - 1
        values = np.where(levels > 0, np.exp2(exponent), 0.0)
        t = exact_type(values)
        return np.round(values * 2.0**t.frac).astype(np.int64), t.frac

    def __str__(self) -> str:
        return ActivationKind.QUANTIZED_RELU_PO2.value


def threshold_form(
    node: TableActivation, in_type: FixedType, p: dict[str, Any]
) -> Threshold | None:
    """A QKeras kind on an input too wide for an exact table (every fractional bit kept):
    the QKeras quantizers are monotone step functions of at most 2**bits levels, so the
    least input mantissa reaching each level (found by exact bisection over QKeras's own
    float32 formula, `step_thresholds`) decides them bit-exactly with no table: a
    `Threshold` node, the same thresholds in every channel. None when there are more than
    `MAX_THRESHOLD_LEVELS` levels or the input is wider than a threshold bank takes."""
    if not node.kind.is_qkeras or in_type.width > MAX_INPUT_WIDTH:
        return None
    params = tuple(sorted(p.items()))
    po2 = node.kind is ActivationKind.QUANTIZED_RELU_PO2
    if po2 and p["quadratic_approximation"]:
        return None  # 2 * clip(round(log2 sqrt x)) falls below the 2**min_exp of x <= 0
    quantizer = _Po2Level(params) if po2 else _QKerasActivation(node.kind, params)
    # the output grid's fraction (the type's ends follow from the levels found)
    grid = FixedType(2, 0 if po2 else _qkeras_frac(node.kind, p), True)
    f = StepFunction(in_type, quantizer, grid)
    if level_span(f, 1) + 1 > MAX_THRESHOLD_LEVELS:
        return None
    found = step_thresholds(f, 1)
    check_monotone(f, found, 1)
    channels = node.in_shape[-1]
    levels, frac = found.levels, grid.frac
    if isinstance(quantizer, _Po2Level):
        try:
            levels, frac = quantizer.mantissas(levels)
        except RtlgenError as exc:
            where = f"layer '{node.source or node.name}'"
            raise UnsupportedError(f"{where}: {node.kind.value}({node.bits}): {exc}") from None
    out_type = FixedType.covering(int(levels.min()), int(levels.max()), frac)
    thresholds, levels = pad(found.thresholds, levels, in_type)
    thresholds = np.repeat(thresholds, channels, axis=0)
    levels = np.repeat(levels, channels, axis=0)
    t_type = FixedType.covering(int(thresholds.min()), int(thresholds.max()), in_type.frac)
    return Threshold(
        node.name,
        node.in_shape,
        node.out_shape,
        source=node.source,
        inputs=node.inputs,
        out_quantizer=node.kind.value,
        weights=ir.QTensor(thresholds, t_type),
        bias=ir.QTensor(levels, out_type),
        out_type=out_type,
    )


# ---------------------------------------------------------------------------------------
# reference, hardware, checks
# ---------------------------------------------------------------------------------------
def table_input(node: TableActivation, x: np.ndarray, in_type: FixedType) -> np.ndarray:
    """The input mantissas requantized into the table type (saturating)."""
    assert node.table_type is not None
    if node.table_type == in_type:
        return x
    return requantize(x, in_type.frac, node.table_type, node.rounding, Overflow.SATURATE)


def table_reference(node: TableActivation, x: np.ndarray, in_type: FixedType) -> np.ndarray:
    assert node.table_type is not None and node.out_type is not None
    y = apply_table(node_table(node), table_input(node, x, in_type), node.table_type)
    if node.fine_type is not None:
        fine_type = node.fine_type
        low, high = fine_range(node, in_type)
        near = requantize(x, in_type.frac, fine_type, node.rounding, Overflow.SATURATE)
        return np.where(
            (x >= low) & (x <= high), apply_table(node_fine_table(node), near, fine_type), y
        )
    if not node.linear_above:
        return y
    above = bypass_values(node, x, in_type, node.out_type)
    return np.where(x > bypass_threshold(node, in_type), above, y)


def plan_table(node: TableActivation, ctx: PlanContext) -> LayerPlan:
    from rtlgen.layers.lookup import BypassTable, LookupTable, SplitTable
    from rtlgen.layers.requantize import Requantize
    from rtlgen.plan import LayerPlan, StreamFormat

    assert node.table_type is not None and node.out_type is not None
    lanes = StreamFormat.of(node.in_shape, ctx.in_type).elements
    stages: list[Any] = []
    if node.linear_above:
        table = node_table(node)
        args = (node.table_type, node.out_type, lanes, node.rounding, node.overflow)
        threshold = bypass_threshold(node, ctx.in_type)
        scale = bypass_scale(node.kind, ctx.in_type, node.out_type.frac)
        stages.append(BypassTable(table, ctx.in_type, *args, threshold=threshold, scale=scale))
    elif node.fine_type is not None:
        low, high = fine_range(node, ctx.in_type)
        split = SplitTable(
            node_table(node),
            node_fine_table(node),
            ctx.in_type,
            node.table_type,
            node.fine_type,
            node.out_type,
            lanes,
            node.rounding,
            low=low,
            high=high,
        )
        stages.append(split)
    else:
        if node.table_type != ctx.in_type:
            rq = Requantize(lanes, ctx.in_type, node.table_type, None, None, node.rounding)
            stages.append(rq)
        stages.append(LookupTable(node_table(node), node.table_type, node.out_type, lanes))
    entries = 1 << node.table_type.width
    note = (
        f"one table of {entries} x {node.out_type.width} bits ({node.kind.value}) read by "
        f"{lanes} lane(s)"
    )
    if node.fine_type is not None:
        note += f", and one of {1 << node.fine_type.width} for the inputs near 0"
    return LayerPlan(node, tuple(stages), out_spacing=ctx.spacing, notes=(note,))


def validate_table(node: TableActivation, in_type: FixedType | None) -> None:
    if node.in_shape != node.out_shape:
        raise RtlgenError(f"in_shape {node.in_shape} and out_shape {node.out_shape} differ")
    if node.table_type is None or node.out_type is None:
        raise RtlgenError("the table type and the output type must be set")
    check_table_input(node.table_type, node.kind.value)
    if not math.isfinite(node.max_error) or node.max_error < 0:
        raise RtlgenError(f"max_error {node.max_error} is not a non-negative number")
    if in_type is not None and abs(in_type.frac - node.table_type.frac) > 62:
        raise RtlgenError(f"table type {node.table_type} is too far from the input {in_type}")
    if in_type is not None and in_type.width <= MAX_TABLE_INPUT_BITS and in_type != node.table_type:
        raise RtlgenError(f"table type {node.table_type} differs from the narrow input {in_type}")
    if node.linear_above and node.kind not in _BYPASS_KINDS:
        kinds = ", ".join(k.value for k in _BYPASS_KINDS)
        raise RtlgenError(f"linear_above is only for {kinds}, not {node.kind.value}")
    if node.fine_type is not None:
        check_table_input(node.fine_type, node.kind.value)
        if node.kind not in _SPLIT_KINDS or node.linear_above:
            raise RtlgenError(f"fine_type is only for softsign, not {node.kind.value}")
        if in_type is not None and not (
            node.fine_type.frac <= in_type.frac
            and node.fine_type.min_value >= in_type.min_value
            and node.fine_type.max_value <= in_type.max_value
        ):
            raise RtlgenError(f"fine table type {node.fine_type} is not within the input {in_type}")
    node.params()
    node_table(node)  # QKeras kinds: refuses an output type that does not hold them exactly


@register_op
class TableActivationOp(Op):
    name = "lut_activation"
    node_types = (TableActivation,)
    keras_classes = ("ELU",)
    from_keras = staticmethod(read_keras_elu)
    lower = staticmethod(lower_table)
    reference = staticmethod(table_reference)
    float_forward = staticmethod(lambda node, x: float_activation(node.kind, x, node.params()))
    plan = staticmethod(plan_table)
    validate = staticmethod(validate_table)
