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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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
    if q_type == "default":
        q_type = "kbi" if place in ("weight", "bias") else "kif"
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
