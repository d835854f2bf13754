"""QONNX model files (as Brevitas ``export_qonnx`` writes them) -> unlowered `ModelGraph`.

Read with the ``onnx`` package only (protobuf parsing; no ONNX Runtime, PyTorch, Brevitas or
QONNX is imported, nothing in the file is executed). Both Brevitas exporters' graphs are read:
the dynamo exporter's (``Gemm`` with ``transB``, ``Reshape`` with a constant shape,
initializers repeated as graph inputs) and the TorchScript exporter's (``Flatten``).

Supported (`SUPPORTED_OPS`): ``Quant`` (QONNX's integer quantizer) and ``BipolarQuant`` on
constants and on activations, ``Gemm``/``MatMul`` with a constant (quantized) weight (an
``Add`` of a constant after it is its bias), ``Conv`` (2D, and 1-D on (N, C, L) signals;
grouped/depthwise as a block-diagonal kernel), ``Relu``, ``MaxPool`` (2D and 1-D),
``AveragePool``/``GlobalAveragePool`` (or ``ReduceMean`` over H and W) with QONNX's ``Trunc``, ``Add`` of two streams,
``Concat`` on the channel axis, ``Mul``/``Div``/``Add``/``Sub`` of a stream and a constant
(one value or one per channel), ``BatchNormalization`` before a quantizer (exact thresholds), plain-ONNX QCDQ
(``QuantizeLinear`` -> ``Clip`` -> ``DequantizeLinear``; float scales as thresholds too), ``Flatten``/``Reshape`` to a vector
(or to its own shape), ``Transpose`` where it only converts between NCHW and NHWC (or on a
constant), ``Identity``; element-wise ops on constants only are evaluated.
`read_brevitas` exports a Brevitas module in memory and reads that file.

Arithmetic (QONNX's ``Quant``, ``qonnx.custom_op.general.intquant.int_quant``)::

    y = (clip(x / scale + zeropt, min_int, max_int) rounded - zeropt) * scale

with ``min_int``/``max_int`` from ``signed``, ``narrow`` and ``bitwidth``. rtlgen maps a
quantizer exactly to fixed point when its scale is a power of two (Brevitas's
``*FixedPoint`` quantizers, e.g. ``Int8WeightPerTensorFixedPoint``,
``Uint8ActPerTensorFixedPoint``): ``scale = 2**-f``. Weights become exact constants
(per-tensor or per-output-channel scales); an activation ``Quant`` becomes a
`rtlgen.ops.hgq2.FixedQuantize` node (per-tensor or per-channel widths, saturation,
``narrow`` = symmetric). Zero points must be 0 on activations.

Float (not power-of-two) scales, Brevitas's defaults (``Int8ActPerTensorFloat``,
``Int8WeightPerTensorFloat``, ``Uint8ActPerTensorFloat``), FINN's streamlining: a weight
``Quant`` keeps its integer codes (computed as ``int_quant`` does, in float32) and the layer
(``Gemm``/``MatMul``/``Conv``) multiplies integer codes by integer codes; the stream carries
a pending per-channel affine map (`_Affine`: ``acc * s_in * s_w + bias``, then a ``Relu``)
that the next ``Quant`` decides as one `rtlgen.ops.threshold.Threshold` node (integer
thresholds on the accumulator, at most 8-bit quantizers, found from `QuantStep`, which
evaluates QONNX's float32 ops exactly). A float-scale ``Quant`` on the input (or on any
fixed-point stream) is likewise a Threshold on that stream. Its output is integer codes with
its scale pending, or fixed point when its scale is a power of two. ``MaxPool`` and
``Flatten``/``Reshape``/``Transpose`` pass a pending map on (a positive scale commutes with
max); ``Mul``/``Div`` by a constant multiplies it, ``Add``/``Sub`` of one shifts it; ``Concat`` joins the maps per channel;
``Add`` of two code streams with different scales multiplies each by its exact integer ratio
per channel first (`integer_ratios`). Per-channel activation scales (a Quant scale
of shape (1, C, 1, 1), a QCDQ 1-D scale along ``axis``) stay per channel in the map; a
``Gemm``/``Conv`` reading them multiplies its integer weight codes by each input channel's
exact integer ratio (`integer_ratios`), so its accumulator stays an exact integer with one
scale per output channel (wide: the thresholds read it exactly, `QuantStep.apply_mantissas`).
A ``BipolarQuant`` with per-channel or float scales likewise emits codes +-1 with its scales
pending; on a pending map it is a Threshold of the map's float32 value (`PendingValue`).
At the model's output a pending map is the
graph's `rtlgen.ir.OutputScale`: the hardware outputs the integer codes of a float-scale
output Quant (or the last layer's accumulator: float logits ``acc * s + b``), and
``predict``/``sim`` give ``float32(v * scale + bias)`` per channel (the manifest's output
``dequantize``). Where rtlgen and QONNX's float32 can differ: `QuantStep`'s docstring.

Float biases (Brevitas's default) are kept exactly: a bias whose layer output goes (through a
``Relu``) into a ``Quant`` is replaced by a value with at most one more fractional bit than
the accumulator that gives every reachable accumulator value the same rounding decision as
the real bias (`snapped_bias`: no rounding boundary lies between them), which is what FINN's
streamlining into thresholds does; any other bias is kept exactly as the float32 number it
is (a dyadic rational).

Layout: an NCHW image becomes rtlgen's (H, W, C) pixel stream; flattening it (PyTorch
flattens C, H, W) becomes rtlgen's (H, W, C) flatten with the next layer's weight rows
permuted to match, so results are exactly PyTorch's. A 1-D (N, C, L) signal is rtlgen's
(L, C) stream. Inputs: the graph records the model's layout (`ir.ModelGraph.input_layout`),
and `rtlgen.api.load_inputs` / `to_stream_layout` take arrays in it ((N, C, H, W), (N, C, L))
or in the stream's (N, H, W, C), (N, L, C); image outputs leave in (H, W, C) order.

Untrusted files: the file size is checked against `Limits.max_bytes` before parsing, every
tensor's declared size before it is converted, parameters and feature maps against `Limits`;
external tensor data may only come from files inside the model's own folder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rtlgen import ir
from rtlgen.quant.errors import ModelFileError, RtlgenError, UnsupportedError
from rtlgen.quant.fixed import FixedType, Overflow, Rounding
from rtlgen.quant.quantizers import Quantizer, exact_qtensor, log2_exact

from .limits import DEFAULT_LIMITS, Limits, check_bytes, check_parameters, element_count

#: ONNX node types rtlgen reads (QONNX's custom ops by their op_type, any domain)
SUPPORTED_OPS = (
    "Quant",
    "BipolarQuant",
    "Gemm",
    "MatMul",
    "Conv",
    "Relu",
    "MaxPool",
    "Flatten",
    "Reshape",
    "Transpose",
    "Identity",
    "Add",
    "Mul",
    "Sub",
    "Div",
    "Concat",
    "AveragePool",
    "GlobalAveragePool",
    "ReduceMean",
    "Trunc",
    "BatchNormalization",
    "QuantizeLinear",
    "Clip",
    "DequantizeLinear",
)
#: QONNX rounding modes on activations, as the hardware's `Rounding`; on unsigned quantizers
#: (their input is clipped to >= 0 before rounding) the modes that differ only below zero too
_ROUNDING = {
    "ROUND": Rounding.CONVERGENT,
    "HALF_EVEN": Rounding.CONVERGENT,
    "FLOOR": Rounding.TRUNCATE,
}
_UNSIGNED_ROUNDING = {
    **_ROUNDING,
    "HALF_UP": Rounding.HALF_UP,
    "DOWN": Rounding.TRUNCATE,
    "ROUND_TO_ZERO": Rounding.TRUNCATE,
}
#: every rounding mode of QONNX's ``resolve_rounding_mode`` (constants are rounded in numpy)
_ROUND_MODES = (
    "ROUND",
    "HALF_EVEN",
    "CEIL",
    "FLOOR",
    "UP",
    "DOWN",
    "ROUND_TO_ZERO",
    "HALF_UP",
    "HALF_DOWN",
)
#: element-wise ops evaluated when all their inputs are constants (`_Reader._fold_constants`)
_CONSTANT_OPS = {
    "Log": np.log,
    "Ceil": np.ceil,
    "Floor": np.floor,
    "Neg": np.negative,
    "Div": np.divide,
    "Mul": np.multiply,
    "Add": np.add,
    "Sub": np.subtract,
}


def op_arity(op_type: str) -> int:
    return 1 if op_type in ("Log", "Ceil", "Floor", "Neg") else 2


#: widest activation quantizer (its widths are 8-bit fields of `FixedQuantize`)
MAX_QUANT_BITS = 24
MAX_FRAC_BITS = 24
#: ONNX tensor element types a constant may have
_DTYPES = {
    1: np.float32,
    11: np.float64,
    10: np.float16,
    7: np.int64,
    6: np.int32,
    3: np.int8,
    2: np.uint8,
}
MAX_NODES = 10_000


def code_range(bits: int, signed: bool, narrow: bool) -> tuple[int, int]:
    """QONNX's ``min_int``/``max_int`` of a ``bits``-bit quantizer."""
    if signed:
        return -(2 ** (bits - 1)) + int(narrow), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1 - int(narrow)


def round_mode(values: np.ndarray, mode: str) -> np.ndarray:
    """QONNX's ``resolve_rounding_mode(mode)(values)``."""
    if mode in ("ROUND", "HALF_EVEN"):
        return np.round(values)
    if mode == "CEIL":
        return np.ceil(values)
    if mode == "FLOOR":
        return np.floor(values)
    if mode == "UP":
        return np.sign(values) * np.ceil(np.abs(values))
    if mode in ("DOWN", "ROUND_TO_ZERO"):
        return np.fix(values)
    if mode == "HALF_UP":
        return np.sign(values) * np.floor(np.abs(values) + 0.5)
    assert mode == "HALF_DOWN"
    return np.sign(values) * np.ceil(np.abs(values) - 0.5)


@dataclass(frozen=True)
class Exact(Quantizer):
    """A constant a QONNX quantizer produced (or a float32 bias): kept exactly
    (`exact_qtensor`)."""

    what: str = "QONNX constant"

    name = "qonnx"

    def reference(self, values: np.ndarray) -> np.ndarray:
        return np.asarray(values, dtype=np.float64)

    def quantize_constant(self, values: np.ndarray):
        return exact_qtensor(np.asarray(values, dtype=np.float64), self.what)

    def __str__(self) -> str:
        return f"qonnx({self.what})"


def snapped_bias(bias: np.ndarray, acc_frac: int, out_frac: np.ndarray, floor: bool) -> np.ndarray:
    """A bias that rounds like ``bias`` for every accumulator value, for the quantizer after it.

    The quantizer rounds ``v = a + bias`` (``a`` a multiple of ``2**-acc_frac``) to a multiple
    of ``2**-out_frac``: its decision boundaries (and clip bounds) lie on the grid
    ``2**-G``, ``G = max(acc_frac, out_frac + 1)`` (``out_frac`` for floor rounding), and so
    does every ``a``. A bias on that grid is kept (ties stay ties); any other bias lies
    strictly between two grid points, and so does ``a + bias`` for every ``a``: the midpoint
    of its interval (``G + 1`` fractional bits) decides every ``a`` the same way, and so does
    a ReLU before the quantizer (0 is a grid point)."""
    b = np.asarray(bias, dtype=np.float64)
    grid = np.maximum(acc_frac, out_frac + (0 if floor else 1)).astype(np.int64)
    grid = np.broadcast_to(grid, b.shape)
    scaled = b * np.exp2(grid.astype(np.float64))
    on_grid = scaled == np.floor(scaled)
    midpoint = (np.floor(scaled) + 0.5) * np.exp2(-grid.astype(np.float64))
    return np.where(on_grid, b, midpoint)


# ---------------------------------------------------------------------------------------
# reading the file
# ---------------------------------------------------------------------------------------
def load_onnx(path: Path, limits: Limits) -> Any:
    """The parsed ModelProto of an untrusted file (size checked first; no external data is
    loaded here)."""
    try:
        import onnx
    except ImportError:  # pragma: no cover - onnx is a dependency
        raise RtlgenError(
            "reading .onnx files needs the 'onnx' package (pip install onnx)"
        ) from None
    what = str(path)
    if not path.is_file():
        raise ModelFileError(f"{what}: {'not a regular file' if path.exists() else 'no such file'}")
    size = path.stat().st_size
    check_bytes(size, limits, what)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelFileError(f"{what}: cannot read ({exc.strerror or exc})") from None
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception as exc:  # protobuf's DecodeError and RecursionError
        raise ModelFileError(
            f"{what}: not an ONNX model file ({' '.join(str(exc).split())[:100] or type(exc).__name__})"
        ) from None
    if not model.HasField("graph") or not model.graph.node:
        raise ModelFileError(f"{what}: not an ONNX model file (no graph nodes)")
    return model


def _tensor_array(tensor: Any, what: str, folder: Path, limits: Limits) -> np.ndarray:
    """A TensorProto as a numpy array, its declared size checked before conversion; external
    data only from a file inside ``folder``."""
    from onnx import numpy_helper

    where = f"{what}: tensor '{tensor.name[:80]}'"
    dtype = _DTYPES.get(tensor.data_type)
    if dtype is None:
        raise UnsupportedError(
            f"{where}: element type {tensor.data_type} is not supported (float, double, half, "
            "int8/32/64, uint8)"
        )
    dims = tuple(int(d) for d in tensor.dims)
    if any(d < 0 for d in dims) or len(dims) > 8:
        raise ModelFileError(f"{where}: invalid dimensions {dims}")
    count = element_count(dims)
    nbytes = count * np.dtype(dtype).itemsize
    check_bytes(nbytes, limits, where)
    if tensor.data_location == 1:  # EXTERNAL
        info = {entry.key: entry.value for entry in tensor.external_data}
        location = info.get("location", "")
        base = folder.resolve()
        target = (base / location).resolve()
        if not location or not target.is_relative_to(base) or not target.is_file():
            raise ModelFileError(
                f"{where}: external data '{location[:80]}' is not a file inside the model's "
                f"folder {base}"
            )
        try:
            offset = int(info.get("offset", 0))
            length = int(info.get("length", nbytes))
        except ValueError:
            raise ModelFileError(f"{where}: invalid external data offset/length") from None
        if length != nbytes or offset < 0 or offset + length > target.stat().st_size:
            raise ModelFileError(f"{where}: external data does not hold {nbytes:,} bytes")
        with open(target, "rb") as handle:
            handle.seek(offset)
            raw = handle.read(length)
        return np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<")).reshape(dims).copy()
    try:
        arr = numpy_helper.to_array(tensor)
    except Exception as exc:
        raise ModelFileError(f"{where}: cannot read ({' '.join(str(exc).split())[:100]})") from None
    if arr.shape != dims:
        raise ModelFileError(f"{where}: holds {arr.size} values for dimensions {dims}")
    return arr


def _attributes(node: Any, what: str) -> dict[str, Any]:
    from onnx import helper

    out = {}
    for attr in node.attribute:
        try:
            value = helper.get_attribute_value(attr)
        except Exception:
            raise ModelFileError(f"{what}: unreadable attribute '{attr.name[:40]}'") from None
        out[attr.name] = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return out


def _text(value: Any) -> str:
    """A protobuf string field as text (the parser hands invalid UTF-8 over as bytes)."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _identifier(name: str, used: set[str]) -> str:
    base = re.sub(r"\W+", "_", _text(name)).strip("_")[:60] or "node"
    if base[0].isdigit():
        base = f"n{base}"
    name, index = base, 1
    while name in used:
        name = f"{base}_{index}"
        index += 1
    used.add(name)
    return name


# ---------------------------------------------------------------------------------------
# streams
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class _Affine:
    """A stream whose real value is not yet its fixed-point value ``m`` (float scales):
    ``relu?(m * scale + bias)`` per channel (the last rtlgen axis), ``scale`` the exact
    product of the float32 scales (input codes' scale x weight scale; times a ``Mul``'s
    constant or a BatchNormalization's ``gamma / sqrt(var + eps)``, which may be negative),
    ``bias`` the float32 bias (and what a Mul or BN makes of it). Integer codes of a float-scale Quant have ``bias`` 0. ``bound``: the largest
    ``|m|`` (None: not known)."""

    scale: np.ndarray
    bias: np.ndarray
    relu: bool = False
    bound: float | None = None

    @property
    def codes(self) -> bool:
        """Codes with a pending scale: no bias, no pending Relu."""
        return not self.relu and not np.any(self.bias)

    def tiled(self, reps: int) -> _Affine:
        """For a flatten of ``reps`` pixels (rtlgen's (H, W, C) order)."""
        return _Affine(np.tile(self.scale, reps), np.tile(self.bias, reps), self.relu, self.bound)


@dataclass(frozen=True, eq=False)
class PendingValue:
    """A pending affine map (`_Affine`) as a threshold op's float function: the layer's
    float32 output ``v = float32(y * scale + bias)`` (``max(v, 0)`` if a Relu is pending),
    which the threshold's own quantizer decides (a BipolarQuant's sign: QONNX's ``v >= 0``).
    `QuantStep` adds a float-scale Quant after it; its docstring says where rtlgen and
    QONNX's float32 can differ."""

    scale: np.ndarray
    bias: np.ndarray
    relu: bool
    label = "float scale"  # what `rtlgen inspect` calls the threshold's float function
    rsqrt = False  # no rsqrt: one threshold search (`rtlgen.quant.threshold.find_thresholds`)

    def apply(self, y: np.ndarray, channel_axis: int = -1, ulps: int = 0) -> np.ndarray:
        shape = [1] * np.ndim(y)
        shape[channel_axis] = -1
        y = np.asarray(y, dtype=np.float32)
        with np.errstate(all="ignore"):
            z = y.astype(np.float64) * self.scale.reshape(shape) + self.bias.reshape(shape)
        return self._quantize(z.astype(np.float32), shape)

    def apply_mantissas(self, x: np.ndarray, frac: int, channel_axis: int = -1) -> np.ndarray:
        """`apply` on the exact input ``x * 2**-frac`` (int64 mantissas, any width): ``v`` is
        the correctly rounded float32 of the exact ``x * 2**-frac * scale + bias``
        (`round_to_float32`), so wide accumulators (integer weights scaled per input channel)
        are decided exactly. `rtlgen.quant.threshold.StepFunction` calls it instead of
        `apply` on the float32 input."""
        x = np.asarray(x, dtype=np.int64)
        shape = [1] * x.ndim
        shape[channel_axis] = -1
        scale = np.broadcast_to(self.scale.reshape(shape) * 2.0**-frac, x.shape)
        bias = np.broadcast_to(self.bias.reshape(shape), x.shape)
        return self._quantize(round_to_float32(x, scale, bias), shape)

    def _quantize(self, v: np.ndarray, shape: list[int]) -> np.ndarray:
        return np.maximum(v, np.float32(0)) if self.relu else v


@dataclass(frozen=True, eq=False)
class QuantStep(PendingValue):
    """A QONNX ``Quant`` with a float scale after a pending affine map (`_Affine`), as the
    threshold op's float function (`rtlgen.ops.threshold.Threshold.bn`, called by
    `rtlgen.quant.threshold.StepFunction` with the input's real value ``y`` as float32).

    ``apply`` reproduces QONNX's executor from the layer's float32 output on: ``v =
    float32(y * scale + bias)`` (the Gemm/Conv output; evaluated in float64, ``scale`` a
    product of two float32 numbers is exact there, then rounded to float32), ``max(v, 0)`` if a
    Relu is pending, then ``int_quant``'s own float32 ops: ``t = float32(v / s_out)``, clip
    to ``[lo, hi]``, ``rounding_mode``; it returns the code times ``step`` (1 for codes with
    a pending scale, ``s_out`` when it is a power of two). ``ulps`` (TensorFlow's rsqrt) is
    ignored: no rsqrt here.

    Exactly QONNX's float32 where the stream is the graph input or a quantizer's codes
    (``v = float32(code * s)`` is what the executor's Quant outputs). After a layer, the
    executor's Gemm/Conv (ONNX Runtime) sums float32 products of the *rounded* values
    ``float32(code * s)`` in its own order (FMA or not); rtlgen takes the correctly rounded
    float32 of the exact ``acc * s_in * s_w + bias`` (up to the float64 step: 2**-29 relative
    near a float32 midpoint). The two can differ by a few float32 ulps, which changes a code
    only when ``v / s_out`` lies that close to a rounding boundary (likewise an ``Add`` of
    two code streams: rtlgen rounds ``(a + b) * s`` once, the executor ``a * s`` and ``b *
    s`` first)."""

    s_out: np.ndarray  # float32, per channel
    lo: int
    hi: int
    mode: str
    step: float

    def _quantize(self, v: np.ndarray, shape: list[int]) -> np.ndarray:
        return _int_quant32(v, shape, self.relu, self.s_out, self.lo, self.hi, self.mode, self.step)


def _int_quant32(
    v: np.ndarray,
    shape: list[int],
    relu: bool,
    s_out: np.ndarray,
    lo: int,
    hi: int,
    mode: str,
    step: float,
) -> np.ndarray:
    """QONNX's ``int_quant`` (float32 ops) of a layer's float32 output ``v`` (a Relu first),
    per channel (``shape``: ``s_out`` broadcast against ``v``): the code times ``step``."""
    with np.errstate(all="ignore"):
        if relu:
            v = np.maximum(v, np.float32(0))
        t = (v / s_out.astype(np.float32).reshape(shape)).astype(np.float32)
        t = np.clip(t, np.float32(lo), np.float32(hi))
        code = round_mode(t, mode)
    return (code.astype(np.float64) * step).astype(np.float32)


@dataclass(frozen=True, eq=False)
class BatchNormQuantStep:
    """A float BatchNormalization (`rtlgen.quant.threshold.FloatBatchNorm`, evaluated in
    float32 op by op as the KerasBatchNorm path does), a pending Relu, then a QONNX ``Quant``
    with one power-of-two scale per channel (``s_out``), as a threshold op's float function:
    its integer codes (``step`` 1; the per-channel scales stay pending on the stream)."""

    batchnorm: Any  # FloatBatchNorm
    relu: bool
    s_out: np.ndarray  # float32, per channel
    lo: int
    hi: int
    mode: str
    step: float = 1.0
    label = "float BN"

    def apply(self, y: np.ndarray, channel_axis: int = -1, ulps: int = 0) -> np.ndarray:
        shape = [1] * np.ndim(y)
        shape[channel_axis] = -1
        v = self.batchnorm.apply(np.asarray(y, dtype=np.float32), channel_axis, ulps)
        return _int_quant32(v, shape, self.relu, self.s_out, self.lo, self.hi, self.mode, 1.0)


#: widest integer input-channel multiplier (`integer_ratios`): the layer's integer weights
#: must stay exact constants of at most 61 bits
MAX_MULTIPLIER_BITS = 48


def integer_ratios(scales: np.ndarray, where: str) -> tuple[float, np.ndarray]:
    """Per-channel scales (non-zero float64) as ``common * multipliers`` exactly: integer
    ``multipliers`` (int64) without a common factor, ``common`` a float64.

    Every float is ``m * 2**e`` (``m`` an odd integer): ``multipliers = m * 2**(e - min e)``
    divided by their greatest common divisor, ``common = gcd * 2**min e``. A per-input-channel
    scale folded into a layer's integer weights this way keeps the accumulator an exact
    integer (``sum code * w * multiplier``) with one scale per output channel. Refused when a
    multiplier needs more than `MAX_MULTIPLIER_BITS` bits (scales whose ratios are too fine)."""
    import math

    s = np.asarray(scales, dtype=np.float64).ravel()
    mant, exp = np.frexp(np.abs(s))
    ints = [int(v) for v in (mant * 2.0**53).astype(np.int64)]
    lows = [(i & -i).bit_length() - 1 for i in ints]
    odd = [i >> low for i, low in zip(ints, lows, strict=True)]
    exps = [int(e) - 53 + low for e, low in zip(exp, lows, strict=True)]
    base = min(exps)
    values = [o << (e - base) for o, e in zip(odd, exps, strict=True)]
    divisor = math.gcd(*values)
    if divisor >= 2**29:  # keep ``common * s_w`` (a float32 weight scale) exact in float64
        divisor = 1
    values = [v // divisor for v in values]
    bits = max(v.bit_length() for v in values)
    if bits > MAX_MULTIPLIER_BITS:
        raise UnsupportedError(
            f"{where}: its input's per-channel float scales differ by ratios that need "
            f"{bits}-bit integer multipliers (at most {MAX_MULTIPLIER_BITS}); supported: "
            "per-channel scales within a factor of 2**24 of each other"
        )
    signs = np.where(s < 0, -1, 1)
    multipliers = np.array(values, dtype=np.int64) * signs
    return float(divisor) * 2.0**base, multipliers


def round_to_float32(x: np.ndarray, scale: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """The float32 nearest (ties to even) to the exact ``x * scale + bias`` (``x`` int64,
    ``scale`` and ``bias`` float64 of ``x``'s shape).

    float64 arithmetic first; where its result lies within its error bound of a float32
    rounding midpoint (or ``|x| > 2**53``), the value is computed exactly (rationals) and the
    midpoint decided by it."""
    from fractions import Fraction

    x = np.asarray(x, dtype=np.int64)
    with np.errstate(all="ignore"):
        xf = x.astype(np.float64)
        product = xf * scale
        z = product + bias
        error = 2.0**-51 * (np.abs(product) + np.abs(z)) + 2.0**-1000
        v = z.astype(np.float32)
        down = np.nextafter(v, np.float32(-np.inf)).astype(np.float64)
        up = np.nextafter(v, np.float32(np.inf)).astype(np.float64)
        here = v.astype(np.float64)
        near = (np.abs(z - (here + down) / 2) <= error) | (np.abs(z - (here + up) / 2) <= error)
    near |= np.abs(x) > 2**53
    for index in zip(*np.nonzero(near), strict=True):
        exact = int(x[index]) * Fraction(float(scale[index])) + Fraction(float(bias[index]))
        nearest = float(exact)  # correctly rounded to float64
        value = np.float32(nearest)  # ties to even from it: wrong only at a float32 midpoint
        if float(value) != nearest:
            # compare as Python floats: NumPy 2 would round ``nearest`` to float32 first
            other = np.nextafter(value, np.float32(np.inf if nearest > float(value) else -np.inf))
            if (float(value) + float(other)) / 2 == nearest and exact != Fraction(nearest):
                value = max(value, other) if exact > Fraction(nearest) else min(value, other)
        v[index] = value
    return v


@dataclass(frozen=True, eq=False)
class _Stream:
    """A tensor computed by the network: the rtlgen node that produces it, its rtlgen shape,
    how the ONNX tensor's dimensions relate to it, and its fixed-point grid if known.

    ``layout``: ``"nchw"`` (ONNX (1, C, H, W), rtlgen (H, W, C)), ``"ncl"`` (ONNX (1, C, L),
    rtlgen (L, C): a 1-D signal), ``"nhwc"`` (the same dimensions in both) or ``"flat"``; ``order``: for a flat stream, the ONNX index of each
    rtlgen element (None: the same order)."""

    node: str
    shape: tuple[int, ...]
    layout: str
    order: np.ndarray | None = None
    frac: int | None = None
    affine: _Affine | None = None

    @property
    def onnx_shape(self) -> tuple[int, ...]:
        if self.layout == "nchw":
            h, w, c = self.shape
            return (1, c, h, w)
        if self.layout == "ncl":
            length, c = self.shape
            return (1, c, length)
        return (1, *self.shape)


class _Reader:
    def __init__(self, model: Any, path: Path, limits: Limits, input_from_quant: bool = True):
        self.input_from_quant = input_from_quant
        self.input_layout = ""
        self.skip_input_quant: str | None = None
        self.model, self.path, self.limits, self.what = model, path, limits, str(path)
        self.graph = model.graph
        self.nodes: list[ir.Node] = []
        self.values: dict[str, np.ndarray | _Stream] = {}
        self.used: set[str] = set()
        self.parameters = 0
        self.consumers: dict[str, list[Any]] = {}
        #: constants a float-scale Quant produced: (integer codes, scale broadcast to them)
        self.codes: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for node in self.graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
        folder = path.parent
        for tensor in self.graph.initializer:
            self.values[tensor.name] = _tensor_array(tensor, self.what, folder, limits)
        self.folder = folder

    # -- helpers ----------------------------------------------------------------------
    def where(self, node: Any) -> str:
        name = _text(node.name or (node.output[0] if node.output else ""))
        return f"{self.what}: node '{name[:80]}' ({_text(node.op_type)[:40]})"

    def _input_value(self, node: Any, index: int, missing: str) -> Any:
        """The value of ``node``'s input ``index`` (``missing``: how a missing one is named)."""
        if index >= len(node.input) or not node.input[index]:
            raise ModelFileError(f"{self.where(node)}: missing input {missing}")
        value = self.values.get(node.input[index])
        if value is None:
            raise ModelFileError(
                f"{self.where(node)}: input '{node.input[index][:60]}' is not defined before it"
            )
        return value

    def constant(self, node: Any, index: int, what: str) -> np.ndarray:
        value = self._input_value(node, index, f"{index} ({what})")
        if isinstance(value, _Stream):
            raise UnsupportedError(
                f"{self.where(node)}: the {what} must be a constant (an initializer or a "
                "quantized initializer), not a computed tensor"
            )
        if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
            raise ModelFileError(f"{self.where(node)}: the {what} holds NaN or infinity")
        return value

    def stream(self, node: Any, index: int = 0, affine_ok: bool = False) -> _Stream:
        value = self._stream(node, index)
        if value.affine is not None and not affine_ok:
            raise UnsupportedError(
                f"{self.where(node)}: its input has a float (not power-of-two) scale; supported "
                "after a float-scale Quant: Gemm/MatMul/Conv, Relu, MaxPool, Flatten/Reshape, "
                "Transpose, Mul by a constant, Concat, Add of two code streams, Quant"
            )
        return value

    def _stream(self, node: Any, index: int = 0) -> _Stream:
        value = self._input_value(node, index, str(index))
        if isinstance(value, _Pending):
            raise UnsupportedError(
                f"{self.where(node)}: takes the integer output of a QuantizeLinear (supported: "
                "QuantizeLinear -> [Clip] -> DequantizeLinear)"
            )
        if not isinstance(value, _Stream):
            raise UnsupportedError(
                f"{self.where(node)}: a computation on constants only is not supported "
                "(fold constants before exporting)"
            )
        return value

    def add(self, node: ir.Node, onnx_node: Any) -> str:
        for dim in (node.out_shape,):
            if element_count(dim) > self.limits.max_activations:
                raise ModelFileError(
                    f"{self.where(onnx_node)}: a feature map of {element_count(dim):,} elements "
                    f"is more than the limit of {self.limits.max_activations:,}"
                )
        self.nodes.append(node)
        return node.name

    def name_of(self, node: Any) -> str:
        return _identifier(node.name or node.output[0], self.used)

    def count_parameters(self, array: np.ndarray, node: Any) -> None:
        self.parameters += int(array.size)
        check_parameters(self.parameters, self.limits, self.where(node))

    def single_consumer(self, tensor: str) -> Any | None:
        consumers = self.consumers.get(tensor, [])
        outputs = {o.name for o in self.graph.output}
        if len(consumers) != 1 or tensor in outputs:
            return None
        return consumers[0]

    # -- the graph ----------------------------------------------------------------------
    def read(self) -> ir.ModelGraph:
        if len(self.graph.node) > MAX_NODES:
            raise ModelFileError(
                f"{self.what}: {len(self.graph.node):,} nodes (at most {MAX_NODES:,})"
            )
        data_inputs = [i for i in self.graph.input if i.name not in self.values]
        if len(data_inputs) != 1:
            raise UnsupportedError(
                f"{self.what}: {len(data_inputs)} data inputs; rtlgen reads QONNX models with one"
            )
        self._input(data_inputs[0])
        for node in self.graph.node:
            self._node(node)
        # the TorchScript exporter may list constants as further outputs: they are dropped
        computed = [
            o.name for o in self.graph.output if isinstance(self.values.get(o.name), _Stream)
        ]
        if len(computed) != 1:
            raise UnsupportedError(
                f"{self.what}: {len(computed)} outputs computed from the input; rtlgen reads "
                "QONNX models with one"
            )
        out = self.values[computed[0]]
        assert isinstance(out, _Stream)
        output_scales: tuple[ir.OutputScale, ...] = ()
        if out.affine is not None:
            # the hardware outputs the integer codes (or the last layer's accumulator); the
            # real output float32(v * scale + bias) is the graph's OutputScale
            if out.affine.relu:
                raise UnsupportedError(
                    f"{self.what}: the output '{_text(computed[0])[:60]}' is a Relu of a "
                    "float-scale layer's output; supported outputs: a quantizer's codes or the "
                    "layer's float output itself (quantize after the Relu)"
                )
            output_scales = (ir.OutputScale(out.affine.scale, out.affine.bias),)
        if out.order is not None:
            raise UnsupportedError(
                f"{self.what}: the output is a flattened image (PyTorch's C, H, W order); "
                "rtlgen streams it in H, W, C order: end the model with a layer after the flatten"
            )
        nodes = self.nodes
        # the graph output is the last node: drop nodes that do not lead to it
        index = next(i for i, n in enumerate(nodes) if n.name == out.node)
        graph = ir.ModelGraph(
            name=_identifier(_text(self.graph.name) or self.path.stem, set()),
            nodes=tuple(nodes[: index + 1]),
            source=self.what,
            output_scales=output_scales,
            input_layout=self.input_layout,
        )
        return graph

    def _input(self, value_info: Any) -> None:
        dims = value_info.type.tensor_type.shape.dim
        shape = [d.dim_value if d.HasField("dim_value") else None for d in dims]
        where = f"{self.what}: input '{_text(value_info.name)[:60]}'"
        if (
            len(shape) not in (2, 3, 4)
            or shape[0] not in (1, None)
            or any(d is None or d < 1 for d in shape[1:])
        ):
            raise UnsupportedError(
                f"{where}: shape {shape} is not supported (supported: (N, features), (N, C, L) "
                "or (N, C, H, W) with fixed sizes)"
            )
        if value_info.type.tensor_type.elem_type != 1:
            raise UnsupportedError(f"{where}: only float32 inputs are supported")
        rest = tuple(int(d) for d in shape[1:])
        if len(rest) == 3:
            c, h, w = rest
            stream = _Stream("", (h, w, c), "nchw")
        elif len(rest) == 2:
            c, length = rest
            stream = _Stream("", (length, c), "ncl")
        else:
            stream = _Stream("", rest, "flat")
        input_type = self._input_type(value_info.name, stream)
        name = _identifier(value_info.name, self.used)
        node = ir.Input(
            name, stream.shape, stream.shape, out_type=input_type, source=_text(value_info.name)
        )
        self.add(node, _Named(value_info.name, "Input"))
        frac = None if input_type is None else input_type.frac
        self.values[value_info.name] = _Stream(name, stream.shape, stream.layout, None, frac)
        self.input_layout = stream.layout if stream.layout in ("nchw", "ncl") else ""

    def _input_type(self, name: str, stream: _Stream) -> FixedType | None:
        """The input stream's type: that of the quantizer the input goes to first, when
        rtlgen's input quantization (convergent rounding, saturation) is that quantizer."""
        consumers = self.consumers.get(name, [])
        if not self.input_from_quant or len(consumers) != 1 or consumers[0].op_type != "Quant":
            return None
        node = consumers[0]
        bits = self.constant(node, 3, "bit width")
        if self._float_scale(node) or (bits.size == 1 and bits.flat[0] == 1):
            return None  # a float scale or a 1-bit (bipolar) Quant: a node of its own
        spec = self._quant_spec(node, stream)
        if spec is None or spec.rounding != "ROUND" or spec.narrow or spec.per_channel:
            return None
        self.skip_input_quant = node.output[0]
        return FixedType(spec.bits, int(spec.frac.flat[0]), spec.signed)

    def _node(self, node: Any) -> None:
        op = node.op_type
        if op in _CONSTANT_OPS and self._fold_constants(node):
            return
        if op not in SUPPORTED_OPS:
            raise UnsupportedError(
                f"{self.where(node)}: op_type '{op[:40]}' is not supported (supported: "
                f"{', '.join(SUPPORTED_OPS)})"
            )
        if not node.output:
            raise ModelFileError(f"{self.where(node)}: no outputs")
        if _text(node.domain).startswith("qonnx.custom_op.channels_last"):
            raise UnsupportedError(
                f"{self.where(node)}: QONNX's channels-last {op[:40]} (domain "
                f"'{_text(node.domain)[:60]}', from ConvertToChannelsLastAndClean) is not "
                "supported: give rtlgen the model before that transform (it streams images "
                "channels-last by itself)"
            )
        try:
            getattr(self, f"_op_{op.lower()}")(node, _attributes(node, self.where(node)))
        except (TypeError, ValueError, IndexError, KeyError, OverflowError) as exc:
            # an attribute or tensor of an unexpected type or size in an untrusted file
            # (every expected shape and value is checked; this catches the rest)
            raise ModelFileError(
                f"{self.where(node)}: malformed node ({type(exc).__name__}: "
                f"{' '.join(str(exc).split())[:80]})"
            ) from None

    def _fold_constants(self, node: Any) -> bool:
        """Evaluate an element-wise op on constants only (the exporters compute bit widths
        this way, e.g. ``Ceil(Log(n) / Log(2))``), in the constants' own dtype."""
        args = [self.values.get(name) for name in node.input]
        if not args or not all(isinstance(a, np.ndarray) for a in args):
            return False
        if len(node.output) != 1 or len(args) != (1 if op_arity(node.op_type) == 1 else 2):
            raise ModelFileError(f"{self.where(node)}: wrong number of inputs or outputs")
        if any(a.size > 1 << 16 for a in args):
            raise UnsupportedError(f"{self.where(node)}: a computation on large constants")
        with np.errstate(all="ignore"):
            try:
                result = _CONSTANT_OPS[node.op_type](*args)
            except ValueError:
                raise ModelFileError(
                    f"{self.where(node)}: constants of shapes that do not broadcast"
                ) from None
        self.values[node.output[0]] = np.asarray(result)
        return True

    # -- quantizers -----------------------------------------------------------------------
    def _quant_inputs(self, node: Any):
        scale = self.constant(node, 1, "scale").astype(np.float64)
        zeropt = self.constant(node, 2, "zero point").astype(np.float64)
        bitwidth = self.constant(node, 3, "bit width").astype(np.float64)
        return scale, zeropt, bitwidth

    def _op_quant(self, node: Any, attrs: dict[str, Any]) -> None:
        value = self.values.get(node.input[0]) if node.input else None
        if value is None:
            raise ModelFileError(f"{self.where(node)}: input is not defined before it")
        if isinstance(value, _Stream):
            bits = self.constant(node, 3, "bit width")
            if bits.size == 1 and bits.flat[0] == 1 and _attributes(node, "").get("signed", 1):
                self._bipolar(node, value)  # QONNX's Quant executes 1-bit signed as bipolar
                return
            if value.affine is not None or self._float_scale(node):
                self._float_quant(node, value)
                return
            self._activation_quant(node, value)
            return
        scale, zeropt, bitwidth = self._quant_inputs(node)
        signed, narrow, mode = self._quant_attrs(node, attrs)
        if (
            bitwidth.size != 1
            or bitwidth.flat[0] != round(bitwidth.flat[0])
            or not 1 <= bitwidth.flat[0] <= 32
        ):
            raise UnsupportedError(
                f"{self.where(node)}: bit width {bitwidth.ravel()[:4]} is not an integer 1-32"
            )
        bits = int(bitwidth.flat[0])
        if self._float_scale(node):
            self._float_constant(node, value, scale, zeropt, bits, signed, narrow, mode)
            return
        self._check_po2(node, scale)
        x = value.astype(np.float64)
        with np.errstate(all="ignore"):
            y = x / scale + zeropt
            if bits == 1 and signed:
                y = np.where(y >= 0, 1.0, -1.0)
            else:
                lo, hi = code_range(bits, signed, narrow)
                y = round_mode(np.clip(y, lo, hi), mode)
            y = (y - zeropt) * scale
        self.values[node.output[0]] = np.asarray(y, dtype=np.float64)

    def _op_bipolarquant(self, node: Any, attrs: dict[str, Any]) -> None:
        value = self.values.get(node.input[0]) if node.input else None
        if value is None:
            raise ModelFileError(f"{self.where(node)}: input is not defined before it")
        if isinstance(value, _Stream):
            self._bipolar(node, value)
            return
        scale = self.constant(node, 1, "scale").astype(np.float64)
        codes = np.where(value >= 0, 1.0, -1.0)
        if (
            scale.size
            and np.all(np.isfinite(scale))
            and np.all(scale > 0)
            and self._float_scale(node)
        ):
            # a float scale (Brevitas's stock SignedBinaryWeightPerTensorConst: 0.1): the
            # codes +-1 kept with it, as a float-scale weight Quant's
            self._keep_codes(node, codes, scale)
            return
        self._check_po2(node, scale)
        self.values[node.output[0]] = codes * scale

    def _bipolar(self, node: Any, stream: _Stream) -> None:
        """Bipolar quantization of activations, ``scale * (x >= 0 ? 1 : -1)``: QKeras's
        ``binary`` (same sign rule). On a fixed-point stream an `ir.Activation` that
        `fuse_thresholds` makes a Threshold node (one comparator per channel; with a
        BatchNormalization before it, FINN's streamlining); on a stream with a pending float
        map a Threshold of it (`PendingValue`). One power-of-two scale: fixed point
        (``binary(alpha=scale)``); per-channel or float scales: the codes +-1 with the scales
        pending, as a float-scale Quant's (a Gemm/Conv reading them: `integer_ratios`)."""
        from rtlgen.quant.quantizers import Binary

        where = self.where(node)
        scale = self.constant(node, 1, "scale").astype(np.float64)
        if node.op_type == "Quant" and np.any(self.constant(node, 2, "zero point") != 0):
            raise UnsupportedError(
                f"{where}: a non-zero zero point on activations is not supported"
            )
        if scale.size == 0 or not np.all(np.isfinite(scale)) or np.any(scale <= 0):
            raise UnsupportedError(f"{where}: bipolar scales must be positive (and finite)")
        s_out = scale.ravel() if scale.size == 1 else self._per_channel(node, scale, stream, float)
        exps = {log2_exact(float(v)) for v in s_out}
        po2 = len(exps) == 1 and None not in exps and abs(next(iter(exps))) <= MAX_FRAC_BITS
        alpha = float(s_out[0]) if po2 else 1.0
        name, source = self.name_of(node), _text(node.name or node.output[0])
        if stream.affine is None:
            act = ir.Activation(
                name,
                stream.shape,
                stream.shape,
                out_quantizer=Binary(alpha=alpha),
                source=source,
                inputs=(stream.node,),
            )
            self.add(act, node)
        else:
            from rtlgen.ops.threshold import Threshold

            a = stream.affine
            self.add(
                Threshold(
                    name,
                    stream.shape,
                    stream.shape,
                    out_quantizer=Binary(alpha=alpha),
                    bn=PendingValue(a.scale, a.bias, a.relu),
                    source=source,
                    inputs=(stream.node,),
                ),
                node,
            )
        if po2:
            frac = -int(next(iter(exps)))
            self.values[node.output[0]] = _Stream(
                name, stream.shape, stream.layout, stream.order, frac
            )
            return
        s_out = np.broadcast_to(s_out, (stream.shape[-1],)).astype(np.float64)
        pending = _Affine(s_out, np.zeros(s_out.size), False, 1.0)
        self.values[node.output[0]] = _Stream(
            name, stream.shape, stream.layout, stream.order, 0, pending
        )

    def _quant_attrs(self, node: Any, attrs: dict[str, Any]) -> tuple[bool, bool, str]:
        signed, narrow = attrs.get("signed", 1), attrs.get("narrow", 0)
        mode = str(attrs.get("rounding_mode", "ROUND")).upper()
        if signed not in (0, 1) or narrow not in (0, 1):
            raise ModelFileError(f"{self.where(node)}: 'signed'/'narrow' must be 0 or 1")
        if mode not in _ROUND_MODES:
            raise UnsupportedError(
                f"{self.where(node)}: rounding_mode '{mode[:20]}' is not supported (supported: "
                f"{', '.join(_ROUND_MODES)})"
            )
        return bool(signed), bool(narrow), mode

    def _check_po2(self, node: Any, scale: np.ndarray) -> np.ndarray:
        """-log2(scale) per element; a scale that is not a power of two is refused."""
        flat = scale.ravel()
        if flat.size == 0:
            raise ModelFileError(f"{self.where(node)}: empty scale")
        exps = [log2_exact(float(s)) for s in flat]
        bad = [float(s) for s, e in zip(flat, exps, strict=True) if e is None]
        if bad:
            raise UnsupportedError(
                f"{self.where(node)}: scale {bad[0]:.6g} is not a power of two; rtlgen maps "
                "power-of-two scales exactly to fixed point (use Brevitas's *FixedPoint "
                "quantizers, e.g. Int8WeightPerTensorFixedPoint, Int8ActPerTensorFixedPoint)"
            )
        return -np.array(exps, dtype=np.int64).reshape(scale.shape)

    def _quant_spec(
        self, node: Any, stream: _Stream, scale_at: int = 1, bits_at: int = 3, mode: str = "ROUND"
    ) -> _QuantSpec | None:
        """The quantizer of an activation ``Quant`` (or of a ``Trunc``: its output scale and
        bit width are inputs 4 and 5, its default rounding FLOOR)."""
        scale = self.constant(node, scale_at, "scale").astype(np.float64)
        zeropt = self.constant(node, 2, "zero point").astype(np.float64)
        bitwidth = self.constant(node, bits_at, "bit width").astype(np.float64)
        attrs = _attributes(node, self.where(node))
        signed, narrow, mode = self._quant_attrs(node, {"rounding_mode": mode, **attrs})
        where = self.where(node)
        if np.any(zeropt != 0):
            raise UnsupportedError(
                f"{where}: a non-zero zero point on activations is not supported"
            )
        if bitwidth.size != 1 or bitwidth.flat[0] != round(bitwidth.flat[0]):
            raise UnsupportedError(f"{where}: bit width {bitwidth.ravel()[:4]} is not one integer")
        bits = int(bitwidth.flat[0])
        if bits == 1:  # signed: bipolar (`_bipolar`)
            raise UnsupportedError(
                f"{where}: 1-bit unsigned quantization of activations is not supported "
                f"(supported: 1-bit signed, i.e. bipolar, and 2 to {MAX_QUANT_BITS} bits)"
            )
        if not 2 <= bits <= MAX_QUANT_BITS:
            raise UnsupportedError(
                f"{where}: bit width {bits} is not supported (2 to {MAX_QUANT_BITS})"
            )
        if narrow and not signed:
            raise UnsupportedError(f"{where}: narrow unsigned quantization is not supported")
        table = _UNSIGNED_ROUNDING if not signed else _ROUNDING
        if mode not in table:
            raise UnsupportedError(
                f"{where}: rounding_mode {mode} on {'un' if not signed else ''}signed activations "
                f"is not supported (supported: {', '.join(table)})"
            )
        frac = self._check_po2(node, scale)
        channels = stream.shape[-1]
        per_channel = frac.size > 1
        if per_channel:
            frac = self._per_channel(node, frac, stream)
        else:
            frac = np.full((channels,), int(frac.flat[0]), dtype=np.int64)
        if np.any(np.abs(frac) > MAX_FRAC_BITS) or np.any(
            np.abs(bits - int(signed) - frac) > MAX_FRAC_BITS
        ):
            raise UnsupportedError(
                f"{where}: scale 2**{-int(frac.max())} with {bits} bits is beyond the "
                f"{MAX_FRAC_BITS} integer/fractional bits supported"
            )
        return _QuantSpec(bits, signed, narrow, mode, frac, per_channel)

    def _per_channel(
        self, node: Any, frac: np.ndarray, stream: _Stream, dtype: Any = np.int64
    ) -> np.ndarray:
        """Per-channel exponents of a scale shaped for the ONNX tensor (channel axis 1)."""
        shape = stream.onnx_shape
        try:
            full = np.broadcast_to(frac, shape)
        except ValueError:
            raise UnsupportedError(
                f"{self.where(node)}: scale of shape {frac.shape} does not broadcast to the "
                f"tensor {shape}"
            ) from None
        if stream.layout == "nchw":
            per = full[0, :, :, :]  # (C, H, W)
            if np.any(per != per[:, :1, :1]):
                raise UnsupportedError(f"{self.where(node)}: scales per pixel are not supported")
            return per[:, 0, 0].astype(dtype)
        if stream.layout == "ncl":
            per = full[0]  # (C, L)
            if np.any(per != per[:, :1]):
                raise UnsupportedError(f"{self.where(node)}: scales per position are not supported")
            return per[:, 0].astype(dtype)
        if stream.layout == "nhwc":
            per = full[0].reshape(-1, shape[-1])
            if np.any(per != per[:1]):
                raise UnsupportedError(f"{self.where(node)}: scales per pixel are not supported")
            return per[0].astype(dtype)
        flat = full[0]
        return (flat if stream.order is None else flat[stream.order]).astype(dtype)

    def _activation_quant(self, node: Any, stream: _Stream, spec: _QuantSpec | None = None) -> None:
        if self.skip_input_quant == node.output[0]:
            self.values[node.output[0]] = stream
            return
        spec = spec or self._quant_spec(node, stream)
        assert spec is not None
        if self._threshold_quant(node, stream, spec):
            return
        from rtlgen.ops.hgq2 import FixedQuantize, positions_of

        table = _UNSIGNED_ROUNDING if not spec.signed else _ROUNDING
        positions = positions_of(stream.shape)
        k = np.full((positions, stream.shape[-1]), int(spec.signed), dtype=np.int64)
        f = np.broadcast_to(spec.frac, k.shape).astype(np.int64)
        i = spec.bits - int(spec.signed) - f
        name = self.name_of(node)
        quant = FixedQuantize(
            name,
            stream.shape,
            stream.shape,
            keep_negative=ir.QTensor(k, FixedType(1, 0, False)),
            integer_bits=ir.QTensor(i, FixedType(8, 0, True)),
            frac_bits=ir.QTensor(f, FixedType(8, 0, True)),
            rounding=table[spec.mode],
            overflow=Overflow.SATURATE,
            symmetric=spec.narrow,
            source=_text(node.name or node.output[0]),
            inputs=(stream.node,),
        )
        self.add(quant, node)
        frac = int(spec.frac.max())
        self.values[node.output[0]] = _Stream(name, stream.shape, stream.layout, stream.order, frac)

    # -- float (not power-of-two) scales: integer codes, thresholds ----------------------
    def _float_scale(self, node: Any) -> bool:
        """A Quant whose scale is not all powers of two (Brevitas's default quantizers)."""
        scale = self.constant(node, 1, "scale").astype(np.float64).ravel()
        return scale.size > 0 and any(log2_exact(float(v)) is None for v in scale)

    def _float_constant(
        self,
        node: Any,
        value: np.ndarray,
        scale: np.ndarray,
        zeropt: np.ndarray,
        bits: int,
        signed: bool,
        narrow: bool,
        mode: str,
    ) -> None:
        """A weight Quant with a float scale: QONNX's ``int_quant`` in float32 (its input's
        dtype) -> integer codes, kept with their scale (`_Reader.codes`); the value is
        ``code * scale`` (exact in float64) for anything else that reads it."""
        if np.any(zeropt != 0) or bits == 1 or np.any(scale <= 0) or not np.all(np.isfinite(scale)):
            raise UnsupportedError(
                f"{self.where(node)}: a float-scale weight Quant needs a positive scale, zero "
                "point 0 and 2-32 bits"
            )
        lo, hi = code_range(bits, signed, narrow)
        x32 = value.astype(np.float32)
        with np.errstate(all="ignore"):
            t = (x32 / scale.astype(np.float32)).astype(np.float32)
            codes = round_mode(np.clip(t, np.float32(lo), np.float32(hi)), mode).astype(np.float64)
        self._keep_codes(node, codes, scale)

    def _keep_codes(self, node: Any, codes: np.ndarray, scale: np.ndarray) -> None:
        """A weight's integer codes kept with their float scale (`_Reader.codes`); its value,
        ``code * scale`` (exact in float64), for anything else that reads it."""
        try:
            full = np.broadcast_to(scale, codes.shape).astype(np.float64)
        except ValueError:
            raise ModelFileError(
                f"{self.where(node)}: scale {scale.shape} does not broadcast to the weight "
                f"{codes.shape}"
            ) from None
        self.codes[node.output[0]] = (codes, full)
        self.values[node.output[0]] = codes * full

    def _weight_codes(
        self, node: Any, w: np.ndarray, transpose: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """(codes, scale) of a layer's weight input: a float-scale Quant's codes and scale,
        or the exact weight with scale 1."""
        entry = self.codes.get(node.input[1])
        if entry is None:
            return w, np.ones_like(w)
        codes, scale = entry
        return (codes.T, scale.T) if transpose else (codes, scale)

    def _pending_input(
        self, node: Any, x: _Stream
    ) -> tuple[float, np.ndarray | None, float | None]:
        """(scale, multipliers, bound) of a linear layer's input: its codes' pending scale
        as ``scale * multipliers`` (`integer_ratios`: one exact integer per input channel,
        None when the scale is one per tensor), or 1 for a fixed-point stream."""
        if x.affine is None:
            return 1.0, None, None
        a = x.affine
        if not a.codes:
            raise UnsupportedError(
                f"{self.where(node)}: its input has a pending bias or Relu; supported: the "
                "integer codes of float-scale Quants (per tensor or per channel)"
            )
        if np.all(a.scale == a.scale.flat[0]):
            return float(a.scale.flat[0]), None, a.bound
        common, multipliers = integer_ratios(a.scale, self.where(node))
        return common, multipliers, a.bound

    def _float_layer(
        self,
        node: Any,
        x: _Stream,
        s_x: float,
        bound: float | None,
        codes: np.ndarray,
        s_w: np.ndarray,
        bias: np.ndarray | None,
        fan_in: np.ndarray,
    ) -> _Affine:
        """The pending affine map of a layer on codes: per output channel ``s_x * s_w`` (the
        weight scale must be one per output channel) and the bias; the accumulator must stay
        below 2**53 (float64's exact integers; the thresholds decide it exactly,
        `QuantStep.apply_mantissas`)."""
        where = self.where(node)
        if np.any(s_w <= 0) or np.any(s_w != s_w[:1]):
            raise UnsupportedError(
                f"{where}: weight scales must be positive and one per output channel"
            )
        channel_scale = s_w[0].astype(np.float64) * s_x
        if bound is not None and float(fan_in.max(initial=0)) * bound >= 2**53:
            raise UnsupportedError(
                f"{where}: its accumulator may reach {float(fan_in.max()) * bound:.3g} (integer "
                "codes x weights): at most 2**53 is supported with float scales"
            )
        outputs = channel_scale.size
        b = np.zeros(outputs) if bias is None else bias.astype(np.float64)
        acc_bound = None if bound is None else float(fan_in.max(initial=0)) * bound
        return _Affine(channel_scale, b, False, acc_bound)

    def _float_quant(self, node: Any, stream: _Stream) -> None:
        """A Quant on a stream with a float scale, or on a stream with a pending float
        scale: one `rtlgen.ops.threshold.Threshold` node (per-channel integer thresholds on
        the fixed-point input, computed at lowering from `QuantStep`, FINN's streamlining).
        Its output: integer codes with the Quant's scale pending, or, when the scale is a
        power of two, fixed point."""
        from rtlgen.quant.threshold import MAX_THRESHOLD_LEVELS

        where = self.where(node)
        scale, zeropt, bitwidth = self._quant_inputs(node)
        signed, narrow, mode = self._quant_attrs(node, _attributes(node, where))
        if np.any(zeropt != 0):
            raise UnsupportedError(
                f"{where}: a non-zero zero point on activations is not supported"
            )
        if bitwidth.size != 1 or bitwidth.flat[0] != round(bitwidth.flat[0]):
            raise UnsupportedError(f"{where}: bit width {bitwidth.ravel()[:4]} is not one integer")
        bits = int(bitwidth.flat[0])
        if not 2 <= bits or 2**bits > MAX_THRESHOLD_LEVELS:
            raise UnsupportedError(
                f"{where}: a {bits}-bit quantizer with a float scale (or after one) is not "
                f"supported (2 to {MAX_THRESHOLD_LEVELS.bit_length() - 1} bits: integer "
                "thresholds)"
            )
        if np.any(scale <= 0) or not np.all(np.isfinite(scale)):
            raise ModelFileError(f"{where}: the scale is not positive")
        lo, hi = code_range(bits, signed, narrow)
        self._threshold_node(node, stream, scale, bits, lo, hi, signed, narrow, mode)

    def _threshold_node(
        self,
        node: Any,
        stream: _Stream,
        scale: np.ndarray,
        bits: int,
        lo: int,
        hi: int,
        signed: bool,
        narrow: bool,
        mode: str,
    ) -> None:
        """The Threshold node of a float-scale quantizer (a QONNX Quant or a QCDQ triple):
        codes ``clip(round(v / scale), lo, hi)`` of the stream's real value ``v``."""
        s_out = self._per_channel(node, scale, stream, np.float64)
        if stream.affine is None:
            affine = _Affine(np.ones(stream.shape[-1]), np.zeros(stream.shape[-1]))
        else:
            affine = stream.affine
        exps = [log2_exact(float(v)) for v in s_out]
        frac = 0
        if (
            all(e is not None for e in exps)
            and len(set(exps)) == 1
            and abs(exps[0]) <= MAX_FRAC_BITS
        ):
            frac = -int(exps[0])  # a power-of-two scale: the output is fixed point
        step = QuantStep(
            affine.scale,
            affine.bias,
            affine.relu,
            s_out.astype(np.float32),
            lo,
            hi,
            mode,
            2.0**-frac,
        )
        source = _text(node.name or node.output[0])
        name = self._add_threshold(
            node, stream, (stream.node,), step, bits, signed, narrow, frac, source
        )
        if frac or all(e == 0 for e in exps):
            out = _Stream(name, stream.shape, stream.layout, stream.order, frac)
        else:
            pending = _Affine(s_out, np.zeros(s_out.size), False, float(max(-lo, hi)))
            out = _Stream(name, stream.shape, stream.layout, stream.order, 0, pending)
        self.values[node.output[0]] = out

    def _add_threshold(
        self,
        node: Any,
        stream: _Stream,
        inputs: tuple[str, ...],
        function: Any,
        bits: int,
        signed: bool,
        narrow: bool,
        frac: int,
        source: str,
    ) -> str:
        """Add a Threshold node deciding ``function`` (`QuantStep`, `BatchNormQuantStep`:
        its ``apply`` gives the output values) into a ``bits``-bit quantizer's values with
        ``frac`` fractional bits; its name."""
        from rtlgen.ops.threshold import Threshold
        from rtlgen.quant.quantizers import QuantizedBits, QuantizedRelu

        if signed:
            quantizer = QuantizedBits(bits, bits - 1 - frac, symmetric=narrow, alpha=1)
        else:
            quantizer = QuantizedRelu(bits, bits - frac)
        name = self.name_of(node)
        threshold = Threshold(
            name,
            stream.shape,
            stream.shape,
            out_quantizer=quantizer,
            bn=function,  # the op calls only its ``apply`` (and ``apply_mantissas``)
            source=source,
            inputs=inputs,
        )
        self.add(threshold, node)
        return name

    # -- layers -------------------------------------------------------------------------
    def _bias_for(self, node: Any, bias: np.ndarray, acc_frac: int | None) -> np.ndarray:
        """The bias, snapped (`snapped_bias`) when the output goes (through a Relu) into one
        activation Quant (or QCDQ QuantizeLinear, which rounds half to even) with a
        power-of-two scale and the accumulator's grid is known."""
        if acc_frac is None:
            return bias
        after = self.single_consumer(node.output[0])
        if after is not None and after.op_type == "Relu":
            after = self.single_consumer(after.output[0])
        if after is None or after.op_type not in ("Quant", "QuantizeLinear"):
            return bias
        try:
            scale = self.constant(after, 1, "scale").astype(np.float64)
            has_zero = len(after.input) > 2 and after.input[2]
            zeropt = self.constant(after, 2, "zero point") if has_zero else np.zeros(1)
            frac = self._check_po2(after, scale)
        except RtlgenError:
            return bias  # refused when the Quant itself is read
        if np.any(zeropt != 0):
            return bias
        mode = str(_attributes(after, self.where(after)).get("rounding_mode", "ROUND")).upper()
        if frac.size == 1:
            out_frac = np.full(bias.shape, int(frac.flat[0]))
        elif frac.size == bias.size:
            out_frac = frac.reshape(bias.shape)
        else:
            return bias
        return snapped_bias(
            bias, acc_frac, out_frac, floor=mode in ("FLOOR", "DOWN", "ROUND_TO_ZERO")
        )

    @staticmethod
    def _weight_frac(weights: np.ndarray) -> int:
        return exact_qtensor(weights).type.frac

    def _op_gemm(self, node: Any, attrs: dict[str, Any]) -> None:
        where = self.where(node)
        if (
            attrs.get("transA", 0)
            or attrs.get("alpha", 1.0) != 1.0
            or attrs.get("beta", 1.0) != 1.0
        ):
            raise UnsupportedError(f"{where}: only transA=0, alpha=1, beta=1 are supported")
        w = self.constant(node, 1, "weight").astype(np.float64)
        if w.ndim != 2:
            raise ModelFileError(f"{where}: weight of shape {w.shape} is not a matrix")
        transpose = bool(attrs.get("transB", 0))
        if transpose:
            w = w.T
        bias = None
        if len(node.input) > 2 and node.input[2]:
            bias = self.constant(node, 2, "bias").astype(np.float64)
            if bias.size != w.shape[1] or bias.ndim > 2:
                raise ModelFileError(
                    f"{where}: bias of shape {bias.shape} for {w.shape[1]} outputs"
                )
            bias = bias.reshape(-1)
        self._dense(node, w, bias, transpose)

    def _op_matmul(self, node: Any, attrs: dict[str, Any]) -> None:
        w = self.constant(node, 1, "weight").astype(np.float64)
        if w.ndim != 2:
            raise UnsupportedError(f"{self.where(node)}: weight of shape {w.shape} (only a matrix)")
        self._dense(node, w, None)

    def _dense(
        self, node: Any, w: np.ndarray, bias: np.ndarray | None, transpose: bool = False
    ) -> None:
        where = self.where(node)
        x = self.stream(node, affine_ok=True)
        if x.layout != "flat" or len(x.shape) != 1:
            raise UnsupportedError(f"{where}: input {x.onnx_shape} is not a vector (flatten first)")
        if w.shape[0] != x.shape[0]:
            raise ModelFileError(f"{where}: weight of shape {w.shape} for {x.shape[0]} inputs")
        self.count_parameters(w, node)
        codes, s_w = self._weight_codes(node, w, transpose)
        if x.order is not None:
            w, codes, s_w = w[x.order], codes[x.order], s_w[x.order]
        affine = None
        if x.affine is not None or node.input[1] in self.codes:
            s_x, multipliers, bound = self._pending_input(node, x)
            if multipliers is not None:  # per-input-channel scales: exact integer weights
                codes = codes * multipliers[:, None]
            if bias is not None:
                self.count_parameters(bias, node)
            fan_in = np.abs(codes).sum(axis=0)
            affine = self._float_layer(node, x, s_x, bound, codes, s_w, bias, fan_in)
            w, bias = codes, None
        if bias is not None:
            self.count_parameters(bias, node)
            acc_frac = None if x.frac is None else x.frac + self._weight_frac(w)
            bias = self._bias_for(node, bias, acc_frac)
        name = self.name_of(node)
        dense = ir.Dense(
            name,
            x.shape,
            (w.shape[1],),
            weights=ir.FloatTensor(w, Exact(f"{where} weight")),
            bias=None if bias is None else ir.FloatTensor(bias, Exact(f"{where} bias")),
            source=_text(node.name or node.output[0]),
            inputs=(x.node,),
        )
        self.add(dense, node)
        self.values[node.output[0]] = _Stream(name, dense.out_shape, "flat", None, None, affine)

    def _op_conv(self, node: Any, attrs: dict[str, Any]) -> None:
        where = self.where(node)
        x = self.stream(node, affine_ok=True)
        if x.layout not in ("nchw", "ncl"):
            raise UnsupportedError(
                f"{where}: input {x.onnx_shape} is not an NCHW image or an NCL signal"
            )
        w = self.constant(node, 1, "weight").astype(np.float64)
        one_d = x.layout == "ncl"  # Conv1d: rtlgen's (L, C) convolution of kernel height 1
        if one_d:
            if w.ndim != 3:
                raise UnsupportedError(f"{where}: weight of shape {w.shape} for a 1-D signal")
            w, attrs = w[:, :, None, :], _as_2d(attrs, where)
            h, (wd, cin) = 1, x.shape
        else:
            h, wd, cin = x.shape
        group = int(attrs.get("group", 1))
        if (
            w.ndim != 4
            or group < 1
            or cin % group
            or w.shape[0] % group
            or w.shape[1] * group != cin
        ):
            raise UnsupportedError(
                f"{where}: weight of shape {w.shape} with group={group} for {cin} input channels "
                "(only 2D convolutions, grouped or depthwise)"
            )
        if any(d != 1 for d in attrs.get("dilations", [1, 1])):
            raise UnsupportedError(
                f"{where}: dilations {attrs['dilations']} are not supported (only 1)"
            )
        cout, _, kh, kw = w.shape
        kernel = tuple(attrs.get("kernel_shape", [kh, kw]))
        if kernel != (kh, kw):
            raise ModelFileError(
                f"{where}: kernel_shape {kernel} does not match the weight {w.shape}"
            )
        stride, pads = self._window(node, attrs, x, (kh, kw))
        ho = (h + pads[0] + pads[1] - kh) // stride[0] + 1
        wo = (wd + pads[2] + pads[3] - kw) // stride[1] + 1
        if ho < 1 or wo < 1:
            raise ModelFileError(
                f"{where}: the kernel {kernel} does not fit the input {x.onnx_shape}"
            )
        ops = ho * wo * w.size
        if ops > self.limits.max_operations:
            raise ModelFileError(
                f"{where}: {ops:,} operations per sample, more than the limit of "
                f"{self.limits.max_operations:,}"
            )
        self.count_parameters(w, node)
        bias = None
        if len(node.input) > 2 and node.input[2]:
            bias = self.constant(node, 2, "bias").astype(np.float64).reshape(-1)
            if bias.size != cout:
                raise ModelFileError(f"{where}: bias of {bias.size} values for {cout} outputs")
            self.count_parameters(bias, node)
        affine = None
        if x.affine is not None or node.input[1] in self.codes:
            codes, s_w = self._weight_codes(node, w, False)
            if one_d and codes.ndim == 3:
                codes, s_w = codes[:, :, None, :], s_w[:, :, None, :]
            s_x, multipliers, bound = self._pending_input(node, x)
            if multipliers is not None:  # per-input-channel scales: exact integer weights
                per_group = codes.shape[1]
                outs = cout // group
                groups = np.arange(cout)[:, None] // outs
                channel = groups * per_group + np.arange(per_group)[None, :]
                codes = codes * multipliers[channel][:, :, None, None]
            fan_in = np.abs(codes).reshape(cout, -1).sum(axis=1)
            affine = self._float_layer(
                node, x, s_x, bound, codes, s_w.reshape(cout, -1).T, bias, fan_in
            )
            w, bias = codes, None
        if bias is not None:
            acc_frac = None if x.frac is None else x.frac + self._weight_frac(w)
            bias = self._bias_for(node, bias, acc_frac)
        name = self.name_of(node)
        conv = ir.Conv(
            name,
            x.shape,
            (wo, cout) if one_d else (ho, wo, cout),
            weights=ir.FloatTensor(_dense_kernel(w, group), Exact(f"{where} weight")),
            bias=None if bias is None else ir.FloatTensor(bias, Exact(f"{where} bias")),
            kernel=(kh, kw),
            stride=stride,
            padding=pads,
            groups=group,
            source=_text(node.name or node.output[0]),
            inputs=(x.node,),
        )
        self.add(conv, node)
        self.values[node.output[0]] = _Stream(name, conv.out_shape, x.layout, None, None, affine)

    def _window(
        self, node: Any, attrs: dict[str, Any], x: _Stream, kernel: tuple[int, int]
    ) -> tuple[tuple[int, int], tuple[int, int, int, int]]:
        """(stride, (top, bottom, left, right) padding) of a Conv/MaxPool."""
        where = self.where(node)
        auto_pad = str(attrs.get("auto_pad", "NOTSET"))
        if auto_pad not in ("NOTSET", "VALID"):
            raise UnsupportedError(
                f"{where}: auto_pad={auto_pad[:20]} is not supported (give pads)"
            )
        stride = tuple(int(s) for s in attrs.get("strides", [1, 1]))
        pads = [int(p) for p in attrs.get("pads", [0, 0, 0, 0])]
        if len(stride) != 2 or len(pads) != 4 or min(stride) < 1 or min(pads) < 0:
            raise ModelFileError(f"{where}: strides {stride} / pads {pads} are not 2D")
        if max(pads) >= max(kernel) + 1 or max(stride) > 1 << 16 or max(kernel) > 1 << 16:
            raise UnsupportedError(f"{where}: pads {pads} larger than the kernel {kernel}")
        top, left, bottom, right = pads
        return (stride[0], stride[1]), (top, bottom, left, right)

    def _op_maxpool(self, node: Any, attrs: dict[str, Any]) -> None:
        """A max pool; it commutes with a pending float scale (positive per channel), bias
        and Relu: the stream keeps them."""
        where = self.where(node)
        x = self.stream(node, affine_ok=True)
        if x.layout not in ("nchw", "ncl"):
            raise UnsupportedError(
                f"{where}: input {x.onnx_shape} is not an NCHW image or an NCL signal"
            )
        if x.layout == "ncl":
            attrs = _as_2d(attrs, where)
        if x.affine is not None and np.any(x.affine.scale < 0):
            raise UnsupportedError(
                f"{where}: a max pool after a negative float scale (a BatchNormalization with "
                "a negative gamma): quantize before the pool"
            )
        if attrs.get("ceil_mode", 0) or any(d != 1 for d in attrs.get("dilations", [1, 1])):
            raise UnsupportedError(f"{where}: ceil_mode=1 and dilations are not supported")
        if attrs.get("storage_order", 0) or len(node.output) > 1:
            raise UnsupportedError(f"{where}: indices output and storage_order are not supported")
        kernel = tuple(int(k) for k in attrs.get("kernel_shape", []))
        if len(kernel) != 2 or min(kernel) < 1:
            raise ModelFileError(f"{where}: kernel_shape {kernel} is not 2D")
        stride, pads = self._window(node, attrs, x, kernel)
        pool = self._pool(node, x, ir.PoolKind.MAX, (kernel[0], kernel[1]), stride, pads)
        self.values[node.output[0]] = _Stream(
            pool.name, pool.out_shape, x.layout, None, x.frac, x.affine
        )

    def _pool(
        self,
        node: Any,
        x: _Stream,
        kind: ir.PoolKind,
        kernel: tuple[int, int],
        stride: tuple[int, int],
        pads: tuple[int, int, int, int],
    ) -> ir.Pool:
        """The pool node of a MaxPool/AveragePool window on the NCHW (or NCL: height 1)
        stream ``x``, added."""
        h, wd, c = x.shape if x.layout != "ncl" else (1, *x.shape)
        ho = (h + pads[0] + pads[1] - kernel[0]) // stride[0] + 1
        wo = (wd + pads[2] + pads[3] - kernel[1]) // stride[1] + 1
        if ho < 1 or wo < 1:
            raise ModelFileError(
                f"{self.where(node)}: the window {kernel} does not fit the input {x.onnx_shape}"
            )
        pool = ir.Pool(
            self.name_of(node),
            x.shape,
            (wo, c) if x.layout == "ncl" else (ho, wo, c),
            kind=kind,
            pool=kernel,
            stride=stride,
            padding=pads,
            source=_text(node.name or node.output[0]),
            inputs=(x.node,),
        )
        self.add(pool, node)
        return pool

    def _op_relu(self, node: Any, attrs: dict[str, Any]) -> None:
        x = self.stream(node, affine_ok=True)
        if x.affine is not None and (not x.affine.codes or np.any(x.affine.scale < 0)):
            # after a float-scale layer: the Quant after it takes the Relu into its thresholds
            a = x.affine
            self.values[node.output[0]] = _Stream(
                x.node, x.shape, x.layout, x.order, x.frac, _Affine(a.scale, a.bias, True, a.bound)
            )
            return
        name = self.name_of(node)
        self.add(
            ir.Activation(
                name,
                x.shape,
                x.shape,
                activation=ir.RELU,
                source=_text(node.name or node.output[0]),
                inputs=(x.node,),
            ),
            node,
        )
        self.values[node.output[0]] = _Stream(name, x.shape, x.layout, x.order, x.frac, x.affine)

    def _op_identity(self, node: Any, attrs: dict[str, Any]) -> None:
        value = self.values.get(node.input[0]) if node.input else None
        if value is None:
            raise ModelFileError(f"{self.where(node)}: input is not defined before it")
        self.values[node.output[0]] = value
        if node.input[0] in self.codes:
            self.codes[node.output[0]] = self.codes[node.input[0]]

    def _flatten(self, node: Any, x: _Stream) -> None:
        if x.layout == "flat":
            self.values[node.output[0]] = x
            return
        h, w, c = x.shape if x.layout != "ncl" else (1, *x.shape)
        order = None
        affine = None if x.affine is None else x.affine.tiled(h * w)
        if x.layout in ("nchw", "ncl"):  # PyTorch flattens C, H, W (C, L)
            order = np.arange(c * h * w).reshape(c, h, w).transpose(1, 2, 0).ravel()
        name = self.name_of(node)
        flat = ir.Flatten(
            name, x.shape, (h * w * c,), source=_text(node.name or node.output[0]), inputs=(x.node,)
        )
        self.add(flat, node)
        self.values[node.output[0]] = _Stream(name, flat.out_shape, "flat", order, x.frac, affine)

    def _op_flatten(self, node: Any, attrs: dict[str, Any]) -> None:
        x = self.stream(node, affine_ok=True)
        if attrs.get("axis", 1) != 1:
            raise UnsupportedError(
                f"{self.where(node)}: axis={attrs['axis']} is not supported (only 1)"
            )
        self._flatten(node, x)

    def _op_reshape(self, node: Any, attrs: dict[str, Any]) -> None:
        x = self.stream(node, affine_ok=True)
        target = [int(d) for d in self.constant(node, 1, "shape").ravel()]
        total = element_count(x.shape)
        if tuple(target) == x.onnx_shape:  # a reshape to its own shape (the exporters' no-op)
            self.values[node.output[0]] = x
            return
        ok = len(target) == 2 and target[0] in (1, 0, -1) and target[1] in (total, -1)
        if target[0] == -1 and target[1] == -1:
            ok = False
        if not ok:
            raise UnsupportedError(
                f"{self.where(node)}: reshape of {x.onnx_shape} to {target[:6]} is not supported "
                f"(only a flatten to (1, {total}))"
            )
        self._flatten(node, x)

    def _op_transpose(self, node: Any, attrs: dict[str, Any]) -> None:
        perm = list(attrs.get("perm", []))
        value = self.values.get(node.input[0]) if node.input else None
        if isinstance(value, np.ndarray):  # a weight the exporter transposes (MatMul)
            if sorted(perm) != list(range(value.ndim)):
                raise ModelFileError(
                    f"{self.where(node)}: perm {perm[:6]} for a {value.ndim}-D constant"
                )
            self.values[node.output[0]] = np.transpose(value, perm)
            if node.input[0] in self.codes:
                codes, scale = self.codes[node.input[0]]
                self.codes[node.output[0]] = (np.transpose(codes, perm), np.transpose(scale, perm))
            return
        x = self.stream(node, affine_ok=True)
        if x.layout == "nchw" and perm == [0, 2, 3, 1]:
            layout = "nhwc"
        elif x.layout == "nhwc" and perm == [0, 3, 1, 2]:
            layout = "nchw"
        else:
            raise UnsupportedError(
                f"{self.where(node)}: perm {perm[:6]} on {x.onnx_shape} is not supported (only "
                "NCHW <-> NHWC layout conversions)"
            )
        self.values[node.output[0]] = _Stream(x.node, x.shape, layout, None, x.frac, x.affine)

    def _op_trunc(self, node: Any, attrs: dict[str, Any]) -> None:
        """QONNX's ``Trunc`` (v2, as Brevitas's TruncAvgPool2d exports it): with the input on
        its scale's grid and power-of-two scales, ``clip(x / out_scale)`` rounded by
        ``rounding_mode`` times ``out_scale``: a quantizer of ``output_bit_width`` bits."""
        where = self.where(node)
        x = self.stream(node)
        if len(node.input) != 6:
            raise UnsupportedError(
                f"{where}: a Trunc with {len(node.input)} inputs (only QONNX's Trunc v2 with an "
                "output scale, 6 inputs, is supported)"
            )
        scale = self.constant(node, 1, "scale").astype(np.float64)
        frac = self._check_po2(node, scale)
        if frac.size != 1 or x.frac is None or x.frac > int(frac.flat[0]):
            raise UnsupportedError(
                f"{where}: the input is not known to lie on the scale's grid (a Trunc after "
                "an average pool of a power-of-two window of quantized values is supported)"
            )
        spec = self._quant_spec(node, x, scale_at=4, bits_at=5, mode="FLOOR")
        self._activation_quant(node, x, spec)

    def _op_add(self, node: Any, attrs: dict[str, Any]) -> None:
        where = self.where(node)
        values = [self.values.get(name) for name in node.input]
        if len(values) != 2 or any(v is None for v in values):
            raise ModelFileError(f"{where}: expects two defined inputs")
        streams = [v for v in values if isinstance(v, _Stream)]
        if not streams:
            raise UnsupportedError(f"{where}: an addition of constants only is not supported")
        if len(streams) == 1:
            constant = next(v for v in values if not isinstance(v, _Stream))
            self._add_constant(node, streams[0], constant)
            return
        a, b = streams
        affine = None
        factors: tuple[np.ndarray, np.ndarray] | None = None
        if a.affine is not None or b.affine is not None:
            pa = a.affine or _Affine(np.ones(a.shape[-1]), np.zeros(a.shape[-1]))
            pb = b.affine or _Affine(np.ones(b.shape[-1]), np.zeros(b.shape[-1]))
            if not (pa.codes and pb.codes) or pa.scale.shape != pb.scale.shape:
                raise UnsupportedError(
                    f"{where}: an Add of streams with float scales is supported only on the "
                    "integer codes of quantizers (or fixed-point streams), not on a layer's "
                    "float output (quantize it first)"
                )
            scale = pa.scale
            bounds = (pa.bound if a.affine else None, pb.bound if b.affine else None)
            if not np.array_equal(pa.scale, pb.scale):
                scale, factors = self._add_ratios(node, pa.scale, pb.scale)
                bounds = tuple(  # type: ignore[assignment]
                    None if bd is None else bd * float(np.abs(f).max())
                    for bd, f in zip(bounds, factors, strict=True)
                )
            bound = None if None in bounds else bounds[0] + bounds[1]  # type: ignore[operator]
            affine = _Affine(scale, pa.bias, False, bound)
        same_order = (a.order is None and b.order is None) or (
            a.order is not None and b.order is not None and np.array_equal(a.order, b.order)
        )
        if (a.shape, a.layout) != (b.shape, b.layout) or not same_order:
            raise UnsupportedError(
                f"{where}: inputs {a.onnx_shape} and {b.onnx_shape} differ (no broadcasting)"
            )
        if factors is not None:
            a, b = (self._times_integers(node, x, f) for x, f in zip((a, b), factors, strict=True))
        from rtlgen.ops.merge import Merge
        from rtlgen.quant.merge import MergeOp

        name = self.name_of(node)
        merge = Merge(
            name,
            a.shape,
            a.shape,
            kind=MergeOp.ADD,
            input_count=2,
            source=_text(node.name or node.output[0]),
            inputs=(a.node, b.node),
        )
        self.add(merge, node)
        frac = None if a.frac is None or b.frac is None else max(a.frac, b.frac)
        self.values[node.output[0]] = _Stream(name, a.shape, a.layout, a.order, frac, affine)

    def _add_ratios(
        self, node: Any, s_a: np.ndarray, s_b: np.ndarray
    ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
        """Per channel ``s_a = common * m_a`` and ``s_b = common * m_b`` with integers
        (`integer_ratios` of the two): ``a * s_a + b * s_b = common * (a * m_a + b * m_b)``
        exactly, an integer sum of the two code streams."""
        common = np.empty(s_a.size)
        m_a, m_b = np.empty(s_a.size, np.int64), np.empty(s_a.size, np.int64)
        for c, pair in enumerate(zip(s_a, s_b, strict=True)):
            common[c], (m_a[c], m_b[c]) = integer_ratios(np.array(pair), self.where(node))
        return common, (m_a, m_b)

    def _times_integers(self, node: Any, x: _Stream, factors: np.ndarray) -> _Stream:
        """``x`` times an integer per channel (element, on a vector), exactly: a depthwise
        1x1 convolution on an image or signal, a diagonal dense layer on a vector (zero weights
        build nothing); ``x`` itself where every factor is 1."""
        if np.all(factors == 1):
            return x
        name = _identifier(f"{_text(node.name or node.output[0])}_scale", self.used)
        weights = ir.FloatTensor(
            np.diag(factors.astype(np.float64)), Exact(f"{self.where(node)} rescaling")
        )
        layer: ir.Node
        if x.layout == "flat":
            layer = ir.Dense(
                name,
                x.shape,
                x.shape,
                weights=weights,
                inputs=(x.node,),
                source=_text(node.name or node.output[0]),
            )
        else:
            c = x.shape[-1]
            layer = ir.Conv(
                name, x.shape, x.shape,
                weights=ir.FloatTensor(weights.values[None, None], weights.quantizer),
                kernel=(1, 1), stride=(1, 1), groups=c, inputs=(x.node,),
                source=_text(node.name or node.output[0]),
            )  # fmt: skip
        self.count_parameters(factors, node)
        self.add(layer, node)
        return _Stream(name, x.shape, x.layout, x.order, x.frac, x.affine)

    def _op_mul(self, node: Any, attrs: dict[str, Any]) -> None:
        """A stream times a non-zero constant (one value, or one per channel): it joins the
        stream's pending float map (`_Affine`: ``scale`` and ``bias`` times the
        constant, which commutes with a pending Relu), decided by the next Quant or the
        output's scale. Exact in rtlgen; QONNX's executor rounds the product to float32
        once more (a code differs only within a float32 ulp of a rounding boundary)."""
        x, constant = self._stream_and_constant(node, "Mul")
        self._scale_stream(node, x, constant.astype(np.float64))

    def _scale_stream(self, node: Any, x: _Stream, constant: np.ndarray) -> None:
        """``x`` times a non-zero constant (one value or one per channel): the pending map's
        scale and bias times it (a positive factor commutes with a pending Relu)."""
        where = self.where(node)
        factor = self._per_channel(node, constant, x, np.float64)
        if np.any(factor == 0) or not np.all(np.isfinite(factor)):
            raise UnsupportedError(
                f"{where}: multiplying by {factor.ravel()[:4]}: only finite non-zero constants "
                "are supported (one value or one per channel)"
            )
        if np.any(factor < 0) and x.affine is not None and x.affine.relu:
            raise UnsupportedError(
                f"{where}: a negative factor after a Relu of a float-scale layer (quantize "
                "after the Relu first)"
            )
        a = x.affine or _Affine(np.ones(x.shape[-1]), np.zeros(x.shape[-1]))
        if factor.size == 1:
            factor = np.full(a.scale.size, float(factor.flat[0]))
        elif factor.size != a.scale.size:  # per channel on a flattened image: tile
            factor = np.tile(factor, a.scale.size // factor.size)
        # ``scale`` stays an exact product of float32 values only for a float32 factor
        bound = a.bound if x.affine is not None else None
        pending = _Affine(a.scale * factor, a.bias * factor, a.relu, bound)
        self.values[node.output[0]] = _Stream(x.node, x.shape, x.layout, x.order, x.frac, pending)

    def _op_concat(self, node: Any, attrs: dict[str, Any]) -> None:
        """Streams side by side along the channel axis (ONNX axis 1): a `Concat` node (every
        input moves exactly to one common type). Pending float maps (`_Affine`) are
        concatenated per channel (a fixed-point input: scale 1, bias 0); their Relus must
        agree."""
        from rtlgen.ops.concatenate import Concat

        where = self.where(node)
        if not 2 <= len(node.input) <= 64:
            raise UnsupportedError(f"{where}: {len(node.input)} inputs (2 to 64 supported)")
        xs = [self.stream(node, k, affine_ok=True) for k in range(len(node.input))]
        rank = len(xs[0].onnx_shape)
        axis = int(attrs.get("axis", 1))
        if axis % rank != 1 or axis < -rank:
            raise UnsupportedError(
                f"{where}: axis={axis} is not supported (only the channel axis 1)"
            )
        first = xs[0]
        for x in xs[1:]:
            if x.layout != first.layout or x.shape[:-1] != first.shape[:-1]:
                raise UnsupportedError(
                    f"{where}: inputs {first.onnx_shape} and {x.onnx_shape} differ besides "
                    "the channel axis"
                )
        if first.layout == "flat" and any(x.order is not None for x in xs):
            raise UnsupportedError(
                f"{where}: a concatenation of flattened images is not supported (concatenate "
                "the images, then flatten)"
            )
        affine = None
        if any(x.affine is not None for x in xs):
            parts = [x.affine or _Affine(np.ones(x.shape[-1]), np.zeros(x.shape[-1])) for x in xs]
            if len({p.relu for p in parts}) != 1:
                raise UnsupportedError(
                    f"{where}: inputs with and without a pending Relu (quantize them first)"
                )
            bounds = [
                p.bound if x.affine is not None else None for p, x in zip(parts, xs, strict=True)
            ]
            bound = None if any(b is None for b in bounds) else max(bounds)  # type: ignore[type-var]
            affine = _Affine(
                np.concatenate([p.scale for p in parts]),
                np.concatenate([p.bias for p in parts]),
                parts[0].relu,
                bound,
            )
        sizes = tuple(x.shape[-1] for x in xs)
        out_shape = (*first.shape[:-1], sum(sizes))
        name = self.name_of(node)
        concat = Concat(
            name,
            first.shape,
            out_shape,
            input_sizes=sizes,
            source=_text(node.name or node.output[0]),
            inputs=tuple(x.node for x in xs),
        )
        self.add(concat, node)
        fracs = [x.frac for x in xs]
        frac = None if any(f is None for f in fracs) else max(fracs)  # type: ignore[type-var]
        self.values[node.output[0]] = _Stream(name, out_shape, first.layout, None, frac, affine)

    def _add_constant(self, node: Any, x: _Stream, constant: np.ndarray) -> None:
        """A constant added to a stream: on a fixed-point stream right after a bias-free
        Gemm/MatMul/Conv (its only consumer) that layer's bias; anything else (a float-scale
        stream, e.g. a bias or a TensorNorm's shift) joins or starts the pending float map
        (`_Affine`: ``bias + c``, one value or one per channel), decided by the next Quant or
        the output's scale."""
        where = self.where(node)
        if constant.dtype.kind == "f" and not np.all(np.isfinite(constant)):
            raise ModelFileError(f"{where}: the constant holds NaN or infinity")
        producer = self.nodes[-1] if self.nodes and self.nodes[-1].name == x.node else None
        stream_name = next(n for n in node.input if isinstance(self.values.get(n), _Stream))
        if (
            x.affine is None
            and isinstance(producer, ir.Dense | ir.Conv)
            and producer.bias is None
            and constant.size == x.shape[-1]
            and len(self.consumers.get(stream_name, [])) == 1
        ):
            bias = constant.astype(np.float64).reshape(-1)
            self.count_parameters(bias, node)
            self.nodes[-1] = producer.replace(bias=ir.FloatTensor(bias, Exact(f"{where} bias")))
            self.values[node.output[0]] = x
            return
        a = x.affine or _Affine(np.ones(x.shape[-1]), np.zeros(x.shape[-1]))
        if a.relu:
            raise UnsupportedError(
                f"{where}: adding a constant after a Relu of a float-scale layer (quantize after "
                "the Relu first)"
            )
        c = self._per_channel(node, constant.astype(np.float64), x, np.float64)
        self.count_parameters(c, node)
        c = np.broadcast_to(c, a.bias.shape) if c.size == 1 else np.tile(c, a.bias.size // c.size)
        pending = _Affine(a.scale, a.bias + c, False, a.bound if x.affine is not None else None)
        self.values[node.output[0]] = _Stream(x.node, x.shape, x.layout, x.order, x.frac, pending)

    def _op_sub(self, node: Any, attrs: dict[str, Any]) -> None:
        """A stream minus a constant (``x - c``, e.g. a normalization's mean): ``x + (-c)``."""
        x, constant = self._stream_and_constant(node, "Sub", first_only=True)
        self._add_constant(node, x, -constant.astype(np.float64))

    def _op_div(self, node: Any, attrs: dict[str, Any]) -> None:
        """A stream divided by a non-zero constant: times its reciprocal (QONNX's executor
        divides in float32; rtlgen's one rounding of the exact map can differ in the last
        float32 ulp, which moves a code only at a rounding boundary)."""
        x, constant = self._stream_and_constant(node, "Div", first_only=True)
        if np.any(constant == 0):
            raise UnsupportedError(f"{self.where(node)}: a division by zero")
        self._scale_stream(node, x, 1.0 / constant.astype(np.float64))

    def _stream_and_constant(
        self, node: Any, op: str, first_only: bool = False
    ) -> tuple[_Stream, np.ndarray]:
        """(the stream, the constant) of a binary op on one stream and one constant."""
        where = self.where(node)
        values = [self.values.get(name) for name in node.input]
        if len(values) != 2 or any(v is None for v in values):
            raise ModelFileError(f"{where}: expects two defined inputs")
        streams = [k for k, v in enumerate(values) if isinstance(v, _Stream)]
        if len(streams) != 1 or (first_only and streams != [0]):
            order = "a stream and then a constant" if first_only else "a stream and a constant"
            raise UnsupportedError(
                f"{where}: {op} is supported only on {order} (not on two computed tensors)"
            )
        k = streams[0]
        return self._stream(node, k), self.constant(node, 1 - k, "constant")

    def _average_pool(
        self,
        node: Any,
        x: _Stream,
        kernel: tuple[int, int],
        stride: tuple[int, int],
        pads: tuple[int, int, int, int],
    ) -> None:
        count = kernel[0] * kernel[1]
        pool = self._pool(node, x, ir.PoolKind.AVG, kernel, stride, pads)
        name = pool.name
        exact = count & (count - 1) == 0 and x.frac is not None and not any(pads)
        frac = x.frac + count.bit_length() - 1 if exact and x.frac is not None else None
        self.values[node.output[0]] = _Stream(name, pool.out_shape, "nchw", None, frac)

    def _op_averagepool(self, node: Any, attrs: dict[str, Any]) -> None:
        where = self.where(node)
        x = self.stream(node)
        if x.layout != "nchw":
            raise UnsupportedError(f"{where}: input {x.onnx_shape} is not an NCHW image")
        if attrs.get("ceil_mode", 0) or any(d != 1 for d in attrs.get("dilations", [1, 1])):
            raise UnsupportedError(f"{where}: ceil_mode=1 and dilations are not supported")
        kernel = tuple(int(k) for k in attrs.get("kernel_shape", []))
        if len(kernel) != 2 or min(kernel) < 1:
            raise ModelFileError(f"{where}: kernel_shape {kernel} is not 2D")
        stride, pads = self._window(node, attrs, x, kernel)
        if any(pads) and attrs.get("count_include_pad", 0):
            raise UnsupportedError(
                f"{where}: count_include_pad=1 with padding is not supported (rtlgen averages "
                "the real elements of a window)"
            )
        self._average_pool(node, x, (kernel[0], kernel[1]), stride, pads)

    def _op_globalaveragepool(self, node: Any, attrs: dict[str, Any]) -> None:
        x = self.stream(node)
        if x.layout != "nchw":
            raise UnsupportedError(f"{self.where(node)}: input {x.onnx_shape} is not an NCHW image")
        h, w, _ = x.shape
        self._average_pool(node, x, (h, w), (h, w), (0, 0, 0, 0))

    def _op_reducemean(self, node: Any, attrs: dict[str, Any]) -> None:
        """A mean over both spatial axes of an NCHW image, the dimensions kept: a global
        average pool (Brevitas's TruncAdaptiveAvgPool2d to 1x1 through the dynamo exporter:
        ``ReduceMean`` then ``Trunc``, where TorchScript writes ``GlobalAveragePool``). The
        axes are an attribute (opset < 18) or a constant second input."""
        where = self.where(node)
        x = self.stream(node)
        if len(node.input) > 1 and node.input[1]:
            axes = self.constant(node, 1, "axes").astype(np.int64).ravel().tolist()
        else:
            axes = [int(a) for a in attrs.get("axes", [])]
        rank = len(x.onnx_shape)
        spatial = sorted(a % rank for a in axes) if rank else axes
        if x.layout != "nchw" or spatial != [2, 3] or not attrs.get("keepdims", 1):
            raise UnsupportedError(
                f"{where}: a ReduceMean over axes {axes} (keepdims={attrs.get('keepdims', 1)}) "
                f"of {x.onnx_shape} is not supported (supported: the mean over both spatial "
                "axes of an NCHW image with keepdims=1, a global average pool)"
            )
        h, w, _ = x.shape
        self._average_pool(node, x, (h, w), (h, w), (0, 0, 0, 0))

    def _op_batchnormalization(self, node: Any, attrs: dict[str, Any]) -> None:
        """A float BatchNormalization whose output goes (through a Relu) into one ROUND
        Quant: decided by exact integer thresholds (`rtlgen.ops.threshold`, FINN's
        streamlining), the float32 BN evaluated as ``(x - mean) * (gamma / sqrt(var + eps))
        + beta``. On a stream with a pending float map (float scales), or before a float-scale
        Quant, the BN joins the map (`_bn_affine`). Anywhere else it would have to be
        approximated: refused."""
        where = self.where(node)
        x = self.stream(node, affine_ok=True)
        if attrs.get("training_mode", 0) or len(node.output) != 1:
            raise UnsupportedError(f"{where}: training_mode is not supported")
        after = self.single_consumer(node.output[0])
        if after is not None and after.op_type == "Relu":
            after = self.single_consumer(after.output[0])
        quantizer = after is not None and after.op_type in ("Quant", "QuantizeLinear")
        float_after = quantizer and self._float_scale(after)
        if x.affine is not None or float_after:
            self._bn_affine(node, attrs, x)
            return
        mode = ""
        if after is not None and after.op_type == "Quant":
            mode = str(_attributes(after, self.where(after)).get("rounding_mode", "ROUND")).upper()
        if after is not None and after.op_type in ("BipolarQuant", "QuantizeLinear"):
            mode = "ROUND"  # QCDQ's QuantizeLinear rounds half to even, as ROUND
        if mode not in ("ROUND", "HALF_EVEN"):
            raise UnsupportedError(
                f"{where}: a BatchNormalization is supported only before a (Relu and a) Quant "
                "with ROUND rounding, a QuantizeLinear (QCDQ) or a BipolarQuant, which it is "
                "folded into as thresholds"
            )
        channels = x.shape[-1]
        params = []
        for index, what in enumerate(("scale", "bias", "mean", "variance"), start=1):
            value = self.constant(node, index, what).astype(np.float64).reshape(-1)
            if value.size != channels:
                raise ModelFileError(
                    f"{where}: {what} has {value.size} values for {channels} channels"
                )
            params.append(value)
        self.count_parameters(np.concatenate(params), node)
        if x.order is not None:
            params = [p[x.order] if p.size == element_count(x.shape) else p for p in params]
        gamma, beta, mean, var = params
        eps = float(attrs.get("epsilon", 1e-5))
        if not np.all(np.isfinite(var + eps)) or np.any(var + eps <= 0):
            raise ModelFileError(f"{where}: variance + epsilon is not positive")
        from rtlgen.ops.scale_shift import KerasBatchNorm
        from rtlgen.quant.threshold import FloatBatchNorm

        inv = gamma / np.sqrt(var + eps)
        name = self.name_of(node)
        bn = KerasBatchNorm(
            name,
            x.shape,
            x.shape,
            scale=ir.FloatTensor(inv),
            shift=ir.FloatTensor(beta - mean * inv),
            source=_text(node.name or node.output[0]),
            inputs=(x.node,),
            bn=FloatBatchNorm(gamma, beta, mean, var, eps, centered=True),
        )
        self.add(bn, node)
        self.values[node.output[0]] = _Stream(name, x.shape, x.layout, x.order, None)

    def _bn_affine(self, node: Any, attrs: dict[str, Any], x: _Stream) -> None:
        """A BatchNormalization on a stream with a pending float map (a fixed-point stream:
        scale 1, bias 0): ``(v - mean) * k + beta`` with ``k = gamma / sqrt(var + eps)``
        joins it (``scale * k``, ``(bias - mean) * k + beta``), decided by the next Quant's
        thresholds (a negative ``k`` gives falling thresholds). rtlgen rounds the exact
        value once; QONNX's executor rounds each float32 op (a code can differ only within
        a few float32 ulps of a rounding boundary, as after a Gemm/Conv)."""
        where = self.where(node)
        a = x.affine or _Affine(np.ones(x.shape[-1]), np.zeros(x.shape[-1]))
        if a.relu:
            raise UnsupportedError(
                f"{where}: a BatchNormalization after a Relu of a float-scale layer (quantize "
                "after the Relu first)"
            )
        params = []
        for index, what in enumerate(("scale", "bias", "mean", "variance"), start=1):
            value = self.constant(node, index, what).astype(np.float64).reshape(-1)
            value = value.reshape(1, -1, *[1] * (len(x.onnx_shape) - 2))  # along axis 1
            params.append(self._per_channel(node, value, x, np.float64))
        self.count_parameters(np.concatenate(params), node)
        gamma, beta, mean, var = params
        eps = float(np.float32(attrs.get("epsilon", 1e-5)))
        if not np.all(np.isfinite(var + eps)) or np.any(var + eps <= 0):
            raise ModelFileError(f"{where}: variance + epsilon is not positive")
        k = gamma / np.sqrt(var + eps)
        if not np.all(np.isfinite(k)) or np.any(k == 0):
            raise UnsupportedError(f"{where}: a BatchNormalization scale of 0 or not finite")
        reps = a.scale.size // k.size
        k, shift = np.tile(k, reps), np.tile(beta - mean * k, reps)
        pending = _Affine(a.scale * k, a.bias * k + shift, False, a.bound if x.affine else None)
        self.values[node.output[0]] = _Stream(x.node, x.shape, x.layout, x.order, x.frac, pending)

    def _threshold_quant(self, node: Any, stream: _Stream, spec: _QuantSpec) -> bool:
        """A Quant after a float BatchNormalization (and a Relu): the Relu node (or a new
        linear activation) gets the equivalent QKeras quantizer, so `fuse_thresholds` makes
        the pair one Threshold node. False when the stream does not come from a BN."""
        from rtlgen.ops.scale_shift import KerasBatchNorm
        from rtlgen.quant.quantizers import QuantizedBits, QuantizedRelu

        last = self.nodes[-1] if self.nodes and self.nodes[-1].name == stream.node else None
        relu = isinstance(last, ir.Activation) and last.out_quantizer is None
        source = self.nodes[-2] if relu and len(self.nodes) > 1 else last
        if not isinstance(source, KerasBatchNorm) or (relu and last.inputs != (source.name,)):
            return False
        if np.any(spec.frac != spec.frac[0]):
            self._batchnorm_per_channel(node, stream, spec, source, last if relu else None)
            return True
        frac = int(spec.frac[0])
        if spec.signed:
            quantizer = QuantizedBits(
                spec.bits, spec.bits - 1 - frac, symmetric=spec.narrow, alpha=1
            )
        else:
            quantizer = QuantizedRelu(spec.bits, spec.bits - frac)
        where = _text(node.name or node.output[0])
        if relu:
            assert last is not None
            self.nodes[-1] = last.replace(out_quantizer=quantizer, source=f"{last.source}+{where}")
            name = last.name
        else:
            name = self.name_of(node)
            act = ir.Activation(
                name,
                stream.shape,
                stream.shape,
                out_quantizer=quantizer,
                source=where,
                inputs=(stream.node,),
            )
            self.add(act, node)
        self.values[node.output[0]] = _Stream(name, stream.shape, stream.layout, stream.order, frac)
        return True

    def _batchnorm_per_channel(
        self, node: Any, stream: _Stream, spec: _QuantSpec, bn: Any, relu: ir.Node | None
    ) -> None:
        """A float BatchNormalization (and a Relu) before a Quant with one power-of-two
        scale per channel (no common fixed-point type of at most 256 levels): the BN (and
        Relu) nodes just read become one Threshold node of the quantizer's integer codes
        (`BatchNormQuantStep`), the per-channel scales pending on its output (`_Affine`), as
        after a float-scale Quant."""
        del self.nodes[-2 if relu is not None else -1 :]
        bits, signed, narrow = spec.bits, spec.signed, spec.narrow
        lo, hi = code_range(bits, signed, narrow)
        s_out = np.exp2(-spec.frac.astype(np.float64))
        step = BatchNormQuantStep(
            bn.bn, relu is not None, s_out.astype(np.float32), lo, hi, spec.mode
        )
        parts = [bn.source, *([] if relu is None else [relu.source])]
        source = "+".join([*parts, _text(node.name or node.output[0])])
        name = self._add_threshold(node, stream, bn.inputs, step, bits, signed, narrow, 0, source)
        pending = _Affine(s_out, np.zeros(s_out.size), False, float(max(-lo, hi)))
        self.values[node.output[0]] = _Stream(
            name, stream.shape, stream.layout, stream.order, 0, pending
        )

    # -- QCDQ: QuantizeLinear -> [Clip] -> DequantizeLinear ------------------------------
    def _op_quantizelinear(self, node: Any, attrs: dict[str, Any]) -> None:
        """ONNX's QuantizeLinear: ``saturate(round_half_even(x / scale) + zero_point)`` into
        the zero point's type (int8/uint8). On a stream it starts a QCDQ triple, completed by
        the DequantizeLinear (through an optional Clip) into one quantizer."""
        where = self.where(node)
        scale = self.constant(node, 1, "scale").astype(np.float64)
        zero = (
            self.constant(node, 2, "zero point") if len(node.input) > 2 and node.input[2] else None
        )
        dtype = np.dtype(np.uint8) if zero is None else zero.dtype
        if dtype not in (np.dtype(np.int8), np.dtype(np.uint8)):
            raise UnsupportedError(f"{where}: zero point type {dtype} (supported: int8, uint8)")
        info = np.iinfo(dtype)
        value = self.values.get(node.input[0])
        if isinstance(value, np.ndarray):
            axis = int(attrs.get("axis", 1))
            s = _along(scale, value, axis, where)
            z = 0 if zero is None else _along(zero.astype(np.float64), value, axis, where)
            with np.errstate(all="ignore"):  # ONNX Runtime divides in float32
                t = (value.astype(np.float32) / s.astype(np.float32)).astype(np.float32)
            q = np.clip(np.round(t.astype(np.float64)) + z, info.min, info.max)
            self.values[node.output[0]] = q.astype(dtype)
            return
        x = self.stream(node, affine_ok=True)
        if zero is not None and np.any(zero != 0):
            raise UnsupportedError(
                f"{where}: a non-zero zero point on activations is not supported"
            )
        scale = self._act_scale(node, scale, x, attrs)
        self.values[node.output[0]] = _Pending(
            x, scale, int(info.min), int(info.max), dtype.kind == "i"
        )

    def _act_scale(
        self, node: Any, scale: np.ndarray, x: _Stream, attrs: dict[str, Any]
    ) -> np.ndarray:
        """A QuantizeLinear/DequantizeLinear scale on a stream, shaped to broadcast against
        the ONNX tensor: one value, or a 1-D scale along ``axis`` (default 1, the channels;
        per channel only, checked by `_per_channel` where it is used)."""
        if scale.size == 1:
            return scale.reshape(())
        rank = len(x.onnx_shape)
        axis = int(attrs.get("axis", 1))
        if not -rank <= axis < rank or scale.ndim != 1 or scale.size != x.onnx_shape[axis]:
            raise ModelFileError(
                f"{self.where(node)}: {scale.size} scales for axis {axis} of {x.onnx_shape}"
            )
        shape = [1] * rank
        shape[axis % rank] = scale.size
        return scale.reshape(shape)

    def _op_clip(self, node: Any, attrs: dict[str, Any]) -> None:
        value = self.values.get(node.input[0]) if node.input else None
        bounds = []
        for index in (1, 2):
            if len(node.input) > index and node.input[index]:
                bound = self.constant(node, index, "bound")
                if bound.size != 1:
                    raise UnsupportedError(f"{self.where(node)}: bounds must be scalars")
                bounds.append(float(bound.flat[0]))
            else:
                bounds.append(None)
        lo, hi = bounds
        if isinstance(value, np.ndarray):
            self.values[node.output[0]] = np.clip(value, lo, hi).astype(value.dtype)
            return
        if not isinstance(value, _Pending):
            raise UnsupportedError(
                f"{self.where(node)}: Clip is supported on constants and between QuantizeLinear "
                "and DequantizeLinear (QCDQ)"
            )
        new_lo = value.lo if lo is None else max(value.lo, int(np.ceil(lo)))
        new_hi = value.hi if hi is None else min(value.hi, int(np.floor(hi)))
        self.values[node.output[0]] = _Pending(
            value.stream, value.scale, new_lo, new_hi, value.signed
        )

    def _op_dequantizelinear(self, node: Any, attrs: dict[str, Any]) -> None:
        """``(q - zero_point) * scale``: on constants (QCDQ weights, per-channel along
        ``axis``) evaluated; after a QuantizeLinear on a stream, the quantizer of the triple:
        ``clip(round_half_even(x / scale), lo, hi) * scale``, a FixedQuantize when the scale
        is a power of two and [lo, hi] is a (narrow) signed or unsigned bit range."""
        where = self.where(node)
        value = self.values.get(node.input[0]) if node.input else None
        scale = self.constant(node, 1, "scale").astype(np.float64)
        zero = (
            self.constant(node, 2, "zero point") if len(node.input) > 2 and node.input[2] else None
        )
        if isinstance(value, np.ndarray):
            axis = int(attrs.get("axis", 1))
            s = _along(scale, value, axis, where)
            z = 0 if zero is None else _along(zero.astype(np.float64), value, axis, where)
            self.values[node.output[0]] = (value.astype(np.float64) - z) * s
            if self._float_scale(node) and value.dtype.kind in "iu":
                # float-scale weights (Brevitas's defaults): integer codes with their scale,
                # as a float-scale weight Quant keeps them (`_float_constant`)
                codes = value.astype(np.float64) - z
                self.codes[node.output[0]] = (codes, np.broadcast_to(s, codes.shape).astype(float))
            return
        if not isinstance(value, _Pending):
            raise UnsupportedError(
                f"{where}: DequantizeLinear is supported on constants and after a QuantizeLinear"
            )
        scale = self._act_scale(node, scale, value.stream, attrs)
        if scale.shape != value.scale.shape or not np.array_equal(scale, value.scale):
            raise UnsupportedError(f"{where}: its scale differs from the QuantizeLinear's")
        if zero is not None and np.any(zero != 0):
            raise UnsupportedError(
                f"{where}: a non-zero zero point on activations is not supported"
            )
        lo, hi = value.lo, value.hi
        bits = max(hi, 0).bit_length() + (1 if lo < 0 else 0)
        signed = lo < 0
        narrow = signed and lo == -hi
        if (
            not (
                (signed and hi == (1 << (bits - 1)) - 1 and lo in (-hi - 1, -hi))
                or (not signed and lo == 0 and hi == (1 << bits) - 1)
            )
            or not 2 <= bits <= MAX_QUANT_BITS
        ):
            raise UnsupportedError(
                f"{where}: the clip range [{lo}, {hi}] is not a signed or unsigned bit range"
            )
        if value.stream.affine is not None or self._float_scale(node):
            # a float scale (or a float-scale stream): integer thresholds, half to even
            if np.any(scale <= 0) or not np.all(np.isfinite(scale)):
                raise ModelFileError(f"{where}: the scale is not positive")
            self._threshold_node(
                node, value.stream, scale, bits, lo, hi, signed, narrow, "HALF_EVEN"
            )
            return
        fracs = self._check_po2(node, scale)
        per_channel = fracs.size > 1
        if per_channel:  # one power-of-two scale per channel: per-channel widths
            fracs = self._per_channel(node, fracs, value.stream)
        frac = np.broadcast_to(fracs, (value.stream.shape[-1],)).astype(np.int64)
        spec = _QuantSpec(bits, signed, narrow, "ROUND", frac, per_channel)
        self._activation_quant(node, value.stream, spec)


@dataclass(frozen=True)
class _QuantSpec:
    bits: int
    signed: bool
    narrow: bool
    rounding: str
    frac: np.ndarray  # per channel
    per_channel: bool

    @property
    def mode(self) -> str:
        return self.rounding


def _as_2d(attrs: dict[str, Any], where: str) -> dict[str, Any]:
    """A 1-D Conv/MaxPool's attributes as those of the 2-D window of height 1 rtlgen builds
    (kernel (1, k), strides (1, s), pads (0, begin, 0, end))."""
    out = dict(attrs)
    for key, fill in (("kernel_shape", 1), ("strides", 1), ("dilations", 1)):
        if key in attrs:
            values = list(attrs[key])
            if len(values) != 1:
                raise ModelFileError(f"{where}: {key} {values[:4]} is not 1-D")
            out[key] = [fill, *values]
    if "pads" in attrs:
        pads = list(attrs["pads"])
        if len(pads) != 2:
            raise ModelFileError(f"{where}: pads {pads[:4]} are not 1-D")
        out["pads"] = [0, pads[0], 0, pads[1]]
    return out


def _dense_kernel(w: np.ndarray, group: int) -> np.ndarray:
    """ONNX Conv weights (Cout, Cin / group, kh, kw) as rtlgen's (kh, kw, Cin, Cout) kernel:
    block-diagonal for a grouped or depthwise convolution (output channel ``o`` of group
    ``o // (Cout / group)`` sees only that group's inputs; the zeros build no hardware, as
    `rtlgen.ops.depthwise_conv` does for Keras)."""
    cout, per_group, kh, kw = w.shape
    outs = cout // group
    full = np.zeros((kh, kw, per_group * group, cout))
    for g in range(group):
        block = w[g * outs : (g + 1) * outs].transpose(2, 3, 1, 0)  # (kh, kw, per_group, outs)
        full[:, :, g * per_group : (g + 1) * per_group, g * outs : (g + 1) * outs] = block
    return full


@dataclass(frozen=True, eq=False)
class _Pending:
    """A stream after a QuantizeLinear (and Clips): integer codes in [lo, hi] of ``scale``,
    waiting for the DequantizeLinear that completes the QCDQ quantizer."""

    stream: _Stream
    scale: np.ndarray
    lo: int
    hi: int
    signed: bool


def _along(values: np.ndarray, target: np.ndarray, axis: int, where: str) -> np.ndarray:
    """A QuantizeLinear/DequantizeLinear scale or zero point broadcast against ``target``: a
    scalar, or one value per index of ``axis``."""
    if values.size == 1:
        return values.reshape(())
    axis = axis % max(target.ndim, 1)
    if values.ndim != 1 or target.ndim == 0 or values.size != target.shape[axis]:
        raise ModelFileError(f"{where}: {values.size} scales for axis {axis} of {target.shape}")
    shape = [1] * target.ndim
    shape[axis] = values.size
    return values.reshape(shape)


@dataclass(frozen=True)
class _Named:
    """A stand-in ONNX node for messages about the graph input."""

    name: str
    op_type: str

    @property
    def output(self) -> tuple[str]:
        return (self.name,)


def read_qonnx(
    path: str | Path, limits: Limits = DEFAULT_LIMITS, input_from_quant: bool = True
) -> ir.ModelGraph:
    """The unlowered `ModelGraph` of a QONNX ``.onnx`` file (see the module docstring).

    ``input_from_quant``: the input stream takes the type of the input's first quantizer
    (when rtlgen's input rounding is that quantizer's); False keeps the quantizer as a node
    and leaves the input type to the precision config (``--input-type``)."""
    path = Path(path)
    model = load_onnx(path, limits)
    try:
        return _Reader(model, path, limits, input_from_quant).read()
    except RecursionError:
        raise ModelFileError(f"{path}: nested too deeply") from None


def is_torch_module(model: Any) -> bool:
    """A ``torch.nn.Module`` (checked without importing torch)."""
    return any(
        cls.__name__ == "Module" and cls.__module__.split(".")[0] == "torch"
        for cls in type(model).__mro__
    )


def read_brevitas(
    module: Any, example_input: Any, limits: Limits = DEFAULT_LIMITS, input_from_quant: bool = True
) -> ir.ModelGraph:
    """A Brevitas module through an in-memory QONNX export (``brevitas.export.export_qonnx``
    into a temporary folder, Brevitas's default exporter), read like a file. The module is
    exported in eval mode (and put back as it was). Needs the ``qonnx`` extra."""
    import tempfile

    if example_input is None:
        raise RtlgenError(
            "load_model(torch_module) needs example_input=<a tensor of the input's shape with "
            "batch 1>"
        )
    try:
        from brevitas.export import export_qonnx
    except ImportError:
        raise RtlgenError(
            "reading a PyTorch module needs Brevitas and its exporter: pip install 'rtlgen[qonnx]'"
        ) from None
    with tempfile.TemporaryDirectory(prefix="rtlgen-qonnx-") as folder:
        path = Path(folder) / f"{type(module).__name__}.onnx"
        training = bool(getattr(module, "training", False))
        module.eval()
        try:
            export_qonnx(module, input_t=example_input, export_path=str(path))
        except Exception as exc:
            raise UnsupportedError(
                f"Brevitas could not export {type(module).__name__} to QONNX: "
                f"{' '.join(str(exc).split())[:160]}"
            ) from None
        finally:
            module.train(training)
        return read_qonnx(path, limits, input_from_quant)


def is_onnx(path: Path) -> bool:
    return path.suffix.lower() == ".onnx"


__all__ = [
    "read_qonnx",
    "read_brevitas",
    "is_onnx",
    "is_torch_module",
    "SUPPORTED_OPS",
    "snapped_bias",
]
