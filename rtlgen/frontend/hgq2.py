"""HGQ2 (``hgq2`` 0.2, Keras 3) fixed-point quantizers, read from a ``.keras`` file without
importing HGQ2 or Keras.

An HGQ2 layer (``QDense``, ``QConv1D``/``QConv2D``) quantizes its input (``iq``, enabled by
default), its kernel (``kq``) and bias (``bq``), and optionally its output (``oq``). Each
quantizer is a sub-layer whose variables hold its widths, one value per weight/element or
broadcast along its homogeneous axes:

- ``kif``: keep-negative ``k`` (uint8), integer bits ``i``, fractional bits ``f``;
- ``kbi``: ``k``, bits ``b`` (without the sign), integer bits ``i``; ``f = b - i``.

The archive stores them under ``layers/<layer>/<iq|kq|bq|oq>/quantizer/vars/<n>`` in Keras's
order: the trainable variables first, then the others, each group in creation order
(``kif``: k, i, f; ``kbi``: k, b, i; ``i`` is trainable unless the overflow mode is WRAP,
which adds a last ``i_decay_speed``). `quantizer_widths` reads them back in that order and
checks each one's dtype and shape.

The arithmetic (HGQ2's ``FixedPointQuantizer`` at inference, ``training=False``), in float32
as HGQ2 computes it (`quantize_float`)::

    i' = max(i, -f)
    non-WRAP: x = clip(x, lo, hi) (SAT: lo = -k 2**i', SAT_SYM: lo = -k (2**i' - 2**-f);
              hi = 2**i' - 2**-f), then x = round(x 2**f) / 2**f
    WRAP:     x = round(x 2**f) / 2**f, then wrapped into k + i' + f bits (two's complement)
    result  = x where k + i + f > 0, else 0 (a width trained to 0 prunes the value)

with ``round`` = RND (half up), RND_CONV (half to even), TRN (floor) and the other modes of
``quantizers`` 1.2. One exception: a trainable *weight* quantizer in WRAP mode only rounds
(``kif``, and ``kbi`` with RND: HGQ2 returns the rounded kernel there, without wrap-around or
pruning), and so does this module.

Kernels and biases become exact constants (`quantized_constant`: every value is a multiple of
2**-max(f), and `rtlgen.quant.quantizers.exact_qtensor` finds the common type); activation
quantizers become `rtlgen.ops.hgq2.FixedQuantize` nodes with per-channel widths.

Table activations (``QUnaryFunctionLUT``: ``oq(f(iq(x)))``; ``QAffinedUnaryFunctionLUT``:
``oq(f(iq(x) * scale + bias))``, `affined_inputs`) are exact tables over their input
codes (`function_table`): ``f`` is one of the Keras activations named in `TABLE_FUNCTIONS`,
read from its name only (a lambda or a Python function is never run: refused in one line),
evaluated in float64, rounded to float32, then quantized by the output quantizer as HGQ2
does. HGQ2's backend computes ``f`` in float32 with its own approximations (JAX: up to 4
ulps from the correctly rounded value, measured over [-16, 16)); the entries whose value
lies within `TABLE_ULPS` float32 ulps of a rounding boundary of the output quantizer are
where its result could differ: they are counted (`FunctionTable.ambiguous`) and warned about.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rtlgen.quant.activations import SELU_ALPHA, SELU_SCALE
from rtlgen.quant.errors import ModelFileError, UnsupportedError
from rtlgen.quant.fixed import Overflow, Rounding
from rtlgen.quant.quantizers import Quantizer, exact_qtensor

from .hdf5 import StoredArray
from .keras_config import KerasLayer, WeightSource, source_limits

#: HGQ2 rounding modes the hardware implements, as rtlgen's `Rounding`
HARDWARE_ROUNDING = {
    "RND": Rounding.HALF_UP,
    "RND_CONV": Rounding.CONVERGENT,
    "TRN": Rounding.TRUNCATE,
}
ROUND_MODES = ("RND", "RND_CONV", "TRN", "TRN_ZERO", "RND_ZERO", "RND_MIN_INF", "RND_INF")
OVERFLOW_MODES = ("WRAP", "SAT", "SAT_SYM")
#: widths beyond these are not exact in HGQ2's float32 arithmetic (24-bit significand)
MAX_FRAC_BITS = 24
MAX_INT_BITS = 24


@dataclass(frozen=True)
class QuantizerSpec:
    """What a quantizer's config says (its widths are variables: `QuantizerWidths`)."""

    where: str
    q_type: str  # "kif" or "kbi"
    round_mode: str
    overflow_mode: str
    is_weight: bool
    trainable: bool

    @property
    def variable_names(self) -> tuple[str, ...]:
        """The names of the saved variables, in the archive's order."""
        wrap = self.overflow_mode == "WRAP"
        if self.q_type == "kif":
            trainable, other = ("i", "f") if not wrap else ("f",), ("k",)
        else:
            trainable, other = ("b", "i") if not wrap else ("b",), ("k",)
        if wrap:
            other = (*other, "i", "i_decay_speed")
        return (*trainable, *other)

    @property
    def rounds_only(self) -> bool:
        """HGQ2 returns a trainable WRAP weight quantizer's rounded input as is."""
        return (
            self.overflow_mode == "WRAP"
            and self.trainable
            and self.is_weight
            and (self.q_type == "kif" or self.round_mode == "RND")
        )


@dataclass(frozen=True)
class QuantizerWidths:
    """``k``, ``i``, ``f`` of one quantizer (integer-valued float64 arrays of the shape the
    quantizer stores: per weight/element, or 1 along its homogeneous axes)."""

    spec: QuantizerSpec
    k: np.ndarray
    i: np.ndarray
    f: np.ndarray

    @property
    def bits(self) -> np.ndarray:
        return self.k + self.i + self.f


def quantizer_spec(layer: KerasLayer, key: str, place: str) -> QuantizerSpec | None:
    """The quantizer config ``layer.config[key]`` (a serialized ``QuantizerConfig``), None
    when the layer has none (``enable_iq=False``, ``use_bias=False``, ...)."""
    where = f"{layer.where} {key}"
    entry = layer.config.get(key)
    if entry is None:
        return None
    config = entry.get("config") if isinstance(entry, dict) else None
    if not isinstance(config, dict):
        raise ModelFileError(f"{where}: {str(entry)[:60]!r} is not a serialized QuantizerConfig")
    q_type = config.get("q_type", "default")
    if q_type == "default":  # HGQ2's default_q_type: KIF on data lanes only
        q_type = "kif" if place == "datalane" else "kbi"
    if q_type not in ("kif", "kbi"):
        raise UnsupportedError(
            f"{where}: q_type={q_type!r} is not supported (supported: 'kif', 'kbi' fixed point)"
        )
    for option in ("scaler", "affine", "qnoise_factor", "bw_mapper"):
        if config.get(option) is not None:
            raise UnsupportedError(
                f"{where}: {option}={config[option]!r} is not supported (a plain fixed-point "
                "quantizer only)"
            )
    round_mode = str(config.get("round_mode", "RND")).upper()
    overflow_mode = str(config.get("overflow_mode", "WRAP")).upper()
    if round_mode not in ROUND_MODES:
        raise UnsupportedError(
            f"{where}: round_mode={round_mode!r} is not supported (supported: "
            f"{', '.join(ROUND_MODES)}; stochastic rounding only trains)"
        )
    if overflow_mode not in OVERFLOW_MODES:
        raise UnsupportedError(
            f"{where}: overflow_mode={overflow_mode!r} is not supported (supported: "
            f"{', '.join(OVERFLOW_MODES)})"
        )
    return QuantizerSpec(
        where,
        q_type,
        round_mode,
        overflow_mode,
        bool(config.get("is_weight", place == "weight")),
        bool(config.get("trainable", True)),
    )


def quantizer_widths(
    layer: KerasLayer, spec: QuantizerSpec, source: WeightSource, sub: str, shape: tuple[int, ...]
) -> QuantizerWidths:
    """The widths of ``spec`` stored under ``<layer>/<sub>`` (``iq/quantizer``); ``shape``: the
    tensor it quantizes (without the batch axis for activations: then the stored arrays
    have a leading 1), to which each width array must broadcast."""
    stored = source.sublayer_variables(layer, sub)
    names = spec.variable_names
    if len(stored) != len(names):
        raise ModelFileError(
            f"{spec.where}: expected {len(names)} quantizer variables ({', '.join(names)}) "
            f"under '{sub}', found {len(stored)}"
        )
    limits = source_limits(source)
    arrays: dict[str, np.ndarray] = {}
    for name, item in zip(names, stored, strict=True):
        value = item.read(limits) if isinstance(item, StoredArray) else np.asarray(item)
        if name == "i_decay_speed":
            continue
        if name == "k" and value.dtype != np.uint8:
            raise ModelFileError(
                f"{spec.where}: variable {len(arrays)} should be 'k' (uint8) but is {value.dtype}"
            )
        if value.dtype.kind not in "fiu" or not np.all(np.isfinite(value)):
            raise ModelFileError(f"{spec.where}: '{name}' holds non-finite or non-numeric values")
        arrays[name] = value
    full = tuple(shape)
    if arrays["k"].ndim == len(full) + 1:  # activations: a leading batch axis of 1
        full = (1, *full)
    for name, value in arrays.items():
        if value.ndim != len(full) or any(
            d not in (1, s) for d, s in zip(value.shape, full, strict=True)
        ):
            raise ModelFileError(
                f"{spec.where}: '{name}' has shape {value.shape}, which does not broadcast to "
                f"the quantized tensor {full}"
            )
    # HGQ2 rounds the stored widths half to even (its `round_conv`), in float32.
    k = arrays["k"].astype(np.float64)
    i = np.round(arrays["i"].astype(np.float32)).astype(np.float64)
    if spec.q_type == "kif":
        f = np.round(arrays["f"].astype(np.float32)).astype(np.float64)
    else:
        f = np.round(arrays["b"].astype(np.float32)).astype(np.float64) - i
    if np.any((k != 0) & (k != 1)):
        raise ModelFileError(f"{spec.where}: 'k' holds values other than 0 and 1")
    if np.any(np.abs(f) > MAX_FRAC_BITS) or np.any(np.abs(i) > MAX_INT_BITS):
        raise UnsupportedError(
            f"{spec.where}: widths beyond {MAX_INT_BITS} integer / {MAX_FRAC_BITS} fractional "
            "bits are not supported (HGQ2 computes in float32)"
        )
    k, i, f = np.broadcast_arrays(k, i, f)
    return QuantizerWidths(spec, k.copy(), i.copy(), f.copy())


# ---------------------------------------------------------------------------------------
# HGQ2's arithmetic, in float32
# ---------------------------------------------------------------------------------------
def _round(x: np.ndarray, mode: str) -> np.ndarray:
    half = np.float32(0.5)
    if mode == "TRN":
        return np.floor(x)
    if mode == "RND":
        return np.floor(x + half)
    if mode == "RND_CONV":
        return np.round(x)
    if mode == "TRN_ZERO":
        return np.floor(np.abs(x)) * np.sign(x)
    if mode == "RND_ZERO":
        return -np.floor(-np.abs(x) + half) * np.sign(x)
    if mode == "RND_MIN_INF":
        return -np.floor(-x + half)
    assert mode == "RND_INF"
    return np.floor(np.abs(x) + half) * np.sign(x)


def quantize_float(x: np.ndarray, widths: QuantizerWidths) -> np.ndarray:
    """HGQ2's quantizer at inference on ``x`` (float32 in, float32 out), bit for bit."""
    spec = widths.spec
    f32 = np.float32
    x = np.asarray(x, dtype=f32)
    k = widths.k.astype(f32)
    i = widths.i.astype(f32)
    f = widths.f.astype(f32)
    two = f32(2.0)
    scale = two**f
    if spec.rounds_only:
        return (_round(x * scale, spec.round_mode) / scale).astype(f32)
    i_eff = np.maximum(i, -f)
    if spec.overflow_mode != "WRAP":
        f_eps = two ** (-f)
        top = two**i_eff - f_eps
        bottom = -(two**i_eff) * k if spec.overflow_mode == "SAT" else -top * k
        x = np.where(x > top, top, np.where(x < bottom, bottom, x))
    x = _round(x * scale, spec.round_mode) / scale
    if spec.overflow_mode == "WRAP":
        bk = i_eff + k
        bias = k * two ** (bk - f32(1))
        x = np.mod(x + bias, two**bk) - bias
    return np.where(k + i + f > 0, x, f32(0)).astype(f32)


@dataclass(frozen=True)
class Exact(Quantizer):
    """Constants an HGQ2 quantizer already produced: kept exactly (`exact_qtensor`)."""

    what: str = "HGQ2 constant"

    name = "hgq2"

    def reference(self, values: np.ndarray) -> np.ndarray:
        return np.asarray(values, dtype=np.float64)

    def quantize_constant(self, values: np.ndarray):
        return exact_qtensor(np.asarray(values, dtype=np.float64), self.what)

    def __str__(self) -> str:
        return f"hgq2({self.what})"


def quantized_constant(values: np.ndarray, widths: QuantizerWidths) -> np.ndarray:
    """A kernel or bias as HGQ2 applies it (float64 holding the exact float32 values)."""
    return quantize_float(values, widths).astype(np.float64)


#: most widths (positions x channels) of one activation quantizer rtlgen builds
MAX_ACTIVATION_WIDTHS = 1 << 16


def per_position(widths: QuantizerWidths, shape: tuple[int, ...]) -> QuantizerWidths:
    """Activation widths as ``(positions, channels)`` arrays for a tensor ``shape`` (without
    the batch axis): a flat vector is one position (one beat); an image or sequence streams
    one position (pixel) per beat, each with its own widths when HGQ2 gave them per element
    (its default ``homogeneous_axis=(0,)``), or the same for all (per-channel or per-tensor)."""
    spec = widths.spec
    positions = 1
    for dim in shape[:-1]:
        positions *= dim
    if positions * shape[-1] > MAX_ACTIVATION_WIDTHS:
        raise UnsupportedError(
            f"{spec.where}: {positions * shape[-1]:,} activation widths (per element of "
            f"{shape}); rtlgen supports up to {MAX_ACTIVATION_WIDTHS:,} (use per-channel widths)"
        )
    arrays = []
    for name in ("k", "i", "f"):
        value = getattr(widths, name)
        value = np.broadcast_to(value, (1, *shape) if value.ndim == len(shape) + 1 else shape)
        arrays.append(value.reshape(positions, shape[-1]).astype(np.int64))
    return QuantizerWidths(spec, *arrays)


def hardware_modes(widths: QuantizerWidths) -> tuple[Rounding, Overflow, bool]:
    """(rounding, overflow, symmetric) of an activation quantizer; modes the hardware does
    not implement are refused in one line."""
    spec = widths.spec
    if spec.round_mode not in HARDWARE_ROUNDING:
        raise UnsupportedError(
            f"{spec.where}: round_mode={spec.round_mode} on activations is not supported "
            f"(supported: {', '.join(HARDWARE_ROUNDING)})"
        )
    overflow = Overflow.WRAP if spec.overflow_mode == "WRAP" else Overflow.SATURATE
    return HARDWARE_ROUNDING[spec.round_mode], overflow, spec.overflow_mode == "SAT_SYM"


def layer_config_flag(layer: KerasLayer, key: str, default: bool) -> bool:
    value = layer.config.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool | int):
        raise ModelFileError(f"{layer.where}: '{key}' = {value!r} is not a boolean")
    return bool(value)


# ---------------------------------------------------------------------------------------
# table activations
# ---------------------------------------------------------------------------------------


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


def _gelu(x: np.ndarray) -> np.ndarray:
    erf = np.vectorize(math.erf, otypes=[np.float64])
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def _hard_sigmoid(x: np.ndarray) -> np.ndarray:  # Keras 3: relu6(x + 3) / 6
    return np.clip(x + 3.0, 0.0, 6.0) / 6.0


#: the Keras 3 activations a table activation may name, in float64 (Keras's definitions)
TABLE_FUNCTIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "tanh": np.tanh,
    "softsign": lambda x: x / (1.0 + np.abs(x)),
    "softplus": _softplus,
    "exponential": np.exp,
    "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0.0))),
    "selu": lambda x: SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(np.minimum(x, 0.0))),
    "silu": lambda x: x / (1.0 + np.exp(-x)),
    "gelu": _gelu,
    "hard_sigmoid": _hard_sigmoid,
    "hard_silu": lambda x: x * _hard_sigmoid(x),
    "relu": lambda x: np.maximum(x, 0.0),
    "relu6": lambda x: np.clip(x, 0.0, 6.0),
    "mish": lambda x: x * np.tanh(_softplus(x)),
    "log_sigmoid": lambda x: -_softplus(-x),
    "linear": lambda x: x,
}
#: Keras's other names of the same functions
TABLE_ALIASES = {"swish": "silu", "hard_swish": "hard_silu"}
#: how far (float32 ulps) HGQ2's float32 function may be from the correctly rounded value
TABLE_ULPS = 8


def table_function(layer: KerasLayer) -> str:
    """The name of a table activation's function (``config['activation']``), one of
    `TABLE_FUNCTIONS`. Only names are read: a serialized lambda (bytecode) or a Python
    function saved by name (``{"class_name": "function", ...}``: rtlgen cannot tell which
    function that is) is refused in one line; nothing in the file is executed."""
    spec = layer.config.get("activation")
    supported = ", ".join(sorted({*TABLE_FUNCTIONS, *TABLE_ALIASES}))
    where = f"{layer.where} activation"
    if isinstance(spec, dict) and ("value" in spec or spec.get("class_name") == "__lambda__"):
        raise UnsupportedError(
            f"{where}: a Python lambda (bytecode) is not supported: rtlgen never runs code "
            f"from a model file (supported: the Keras activations {supported})"
        )
    if isinstance(spec, dict) and spec.get("class_name") == "function":
        raise UnsupportedError(
            f"{where}: the Python function {str(spec.get('config'))[:40]!r} "
            f"(module {str(spec.get('module'))[:40]!r}) is not supported: it is saved by name "
            f"only and rtlgen never runs code from a model file (supported: the Keras "
            f"activations {supported})"
        )
    if not isinstance(spec, str) or TABLE_ALIASES.get(spec, spec) not in TABLE_FUNCTIONS:
        raise UnsupportedError(f"{where}: {str(spec)[:60]!r} is not supported ({supported})")
    return TABLE_ALIASES.get(spec, spec)


def _nudged(values: np.ndarray, ulps: int) -> tuple[np.ndarray, np.ndarray]:
    """float32 ``values`` moved ``ulps`` ulps down and up."""
    lo = hi = values
    for _ in range(ulps):
        lo = np.nextafter(lo, np.float32(-np.inf))
        hi = np.nextafter(hi, np.float32(np.inf))
    return lo, hi


def ambiguous(values: np.ndarray, widths: QuantizerWidths, ulps: int = TABLE_ULPS) -> np.ndarray:
    """Where float32 ``values`` lie within ``ulps`` ulps of a rounding or saturation
    boundary of ``widths`` (a float32 result that far off could quantize differently)."""
    lo, hi = _nudged(np.asarray(values, dtype=np.float32), ulps)
    with np.errstate(invalid="ignore", over="ignore"):
        return quantize_float(lo, widths) != quantize_float(hi, widths)


def affined_inputs(
    codes: np.ndarray, frac: int, scale: float, bias: float
) -> tuple[np.ndarray, np.ndarray]:
    """``x * scale + bias`` in float32 for ``x = codes * 2**-frac`` (``QAffinedUnaryFunctionLUT``,
    float32 ``scale`` and ``bias``), two ways: as HGQ2's compiled ``predict`` computes it
    (XLA on the CPU fuses it into one multiply-add: the exact value rounded once) and as the
    layer's code reads (two float32 roundings: eager execution, other backends)."""
    from .qonnx import round_to_float32  # the exact value rounded once (no ONNX needed)

    codes = np.asarray(codes, dtype=np.int64)
    s32, b32 = np.float32(scale), np.float32(bias)
    step = np.full(codes.shape, float(s32) * 2.0**-frac)
    fused = round_to_float32(codes, step, np.full(codes.shape, float(b32)))
    x32 = (codes * 2.0**-frac).astype(np.float32)
    unfused = ((x32 * s32).astype(np.float32) + b32).astype(np.float32)
    return fused.astype(np.float64), unfused.astype(np.float64)


def function_table(
    function: str,
    codes: np.ndarray,
    frac: int,
    widths: QuantizerWidths,
    affine: tuple[float, float] = (1.0, 0.0),
) -> tuple[np.ndarray, np.ndarray]:
    """``oq(f(x))`` for the inputs ``x = codes * 2**-frac`` as HGQ2 computes it with the
    correctly rounded float32 ``f(x)``: (the float32 results, `ambiguous` entries). An
    input where ``f`` overflows float32 into a WRAP quantizer (a NaN) is refused. ``affine``
    (scale, bias): ``oq(f(x * scale + bias))`` (`affined_inputs`: as ``predict`` computes
    it; the entries the unfused value would give otherwise are `ambiguous` too)."""
    x = codes.astype(np.float64) * 2.0**-frac
    unfused = None
    if affine != (1.0, 0.0):
        x, unfused = affined_inputs(codes, frac, *affine)
    with np.errstate(over="ignore", invalid="ignore"):
        values = TABLE_FUNCTIONS[function](x).astype(np.float32)
        out = quantize_float(values, widths)
        if unfused is not None:
            other = quantize_float(TABLE_FUNCTIONS[function](unfused).astype(np.float32), widths)
    if not np.all(np.isfinite(out)):
        bad = float(x[~np.isfinite(out)][0])
        raise UnsupportedError(
            f"{widths.spec.where}: {function}({bad}) overflows float32, which the output "
            f"quantizer ({widths.spec.overflow_mode}) turns into NaN"
        )
    # a representable value is computed exactly by every backend at 0 (f(0) = 0, 1/2 or 1)
    # and everywhere by the functions of correctly rounded steps (`_EXACT_FUNCTIONS`)
    with np.errstate(over="ignore"):
        representable = values.astype(np.float64) == TABLE_FUNCTIONS[function](x)
    exact = representable & ((x == 0) | (function in _EXACT_FUNCTIONS))
    risky = ambiguous(values, widths) & ~exact
    if unfused is not None:
        risky |= (other != out) & np.isfinite(out)
    return out, risky


#: functions computed in correctly rounded float32 steps whose value, when it is
#: representable, every step gives exactly (hard_silu: then its hard_sigmoid is too)
_EXACT_FUNCTIONS = ("softsign", "hard_sigmoid", "hard_silu", "relu", "relu6", "linear")
