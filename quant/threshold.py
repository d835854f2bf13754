"""Multi-threshold activations: a quantizer after a float affine map, decided exactly.

A quantizing activation (``quantized_relu``, ``quantized_bits``, ``binary``, ``ternary``)
applied to a fixed-point stream, possibly through a float ``BatchNormalization`` first, is a
monotone step function of the input mantissa in every channel (FINN's streamlining). So it
is exactly ``levels[c, count_k(x >= thresholds[c, k])]``: per channel a sorted list of
integer thresholds (the least input mantissa reaching each new level) and the level after
each. `find_thresholds` computes them by exact search over the integer input range,
evaluating the float computation the way TensorFlow does it (float32, op by op):

- the layer's output in float32: ``y = float32(x * 2**-frac)`` (exact for inputs of at most
  24 significant bits, which QKeras's float32 matmul then also computes exactly);
- Keras ``BatchNormalization`` at inference (`FloatBatchNorm`): ``inv = rsqrt(var + eps) *
  gamma``; rank 2-3 inputs ``y * inv + (beta - mean * inv)`` (``tf.nn.batch_normalization``),
  rank 4 (Conv2D outputs: the fused kernel) ``(y - mean) * inv + beta``; every op rounded to
  float32 (checked bit for bit against TensorFlow 2.15 in tests/quant/test_threshold.py);
- the activation clamp, then the QKeras quantizer's own formula (`Quantizer.reference`).

TensorFlow's float32 ``rsqrt`` is not correctly rounded (Eigen's vectorised approximation
plus a Newton step: measured -2..+1 ulp on an AMD EPYC, and CPU dependent). The thresholds
are therefore computed for every ``rsqrt`` within `RSQRT_ULPS` ulps of the correctly
rounded one; a threshold that differs between them is *ambiguous* (the float model's own
decision there depends on the CPU it runs on) and counted (`Thresholds.ambiguous`); the
correctly rounded one is used.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rtlgen.ir import Clamp

from .errors import RtlgenError, UnsupportedError
from .fixed import FixedType
from .quantizers import Binary, QuantizedBits, QuantizedRelu, Quantizer, Ternary

#: ulps around the correctly rounded float32 rsqrt that TensorFlow's may be off by
RSQRT_ULPS = 2
#: most levels a quantizer may have for a threshold activation (comparators per channel
#: = levels - 1)
MAX_THRESHOLD_LEVELS = 256
_F32 = np.float32


# ---------------------------------------------------------------------------------------
# which quantizers are step functions
# ---------------------------------------------------------------------------------------
def step_output_type(q: Quantizer) -> FixedType | None:
    """The output type of an activation quantizer that is a data-independent monotone step
    function of its input (None otherwise): ``quantized_bits`` (alpha None/1, also 1 bit:
    the sign), ``quantized_relu``, ``binary`` and ``ternary`` with a fixed alpha (None or a
    power of two). Data-dependent scales (``alpha='auto_po2'``) are refused by the caller."""
    if isinstance(q, QuantizedRelu):
        return q.output_type()
    if isinstance(q, QuantizedBits):
        if q.alpha is not None and (isinstance(q.alpha, str) or float(q.alpha) != 1.0):
            return None
        if q.keep_negative and q.bits == 1:
            return FixedType(2, 0, True)  # sign: -1, +1 (``integer`` is ignored by QKeras)
        return q.output_type()
    if isinstance(q, Binary | Ternary):
        if isinstance(q.alpha, str):
            return None
        k = 0 if q.alpha is None else int(np.log2(float(q.alpha)))
        if isinstance(q, Binary) and q.use_01:
            return FixedType(1, -k, False)  # {0, alpha}
        return FixedType(2, -k, True)  # {-alpha, (0,) +alpha}
    return None


def step_levels(q: Quantizer) -> int:
    """How many output values the step quantizer ``q`` has (its type's mantissa range)."""
    t = step_output_type(q)
    if t is None:
        raise UnsupportedError(f"quantizer {q} is not a fixed step function")
    return t.max_int - t.min_int + 1


def is_step_activation(q: Quantizer | None) -> bool:
    """A quantizer that only a threshold activation implements as an activation (the sign
    and two-/three-level ones: `Quantizer.output_type` refuses them)."""
    if q is None or step_output_type(q) is None:
        return False
    if isinstance(q, Binary | Ternary):
        return True
    return isinstance(q, QuantizedBits) and q.keep_negative and q.bits == 1


def refuse_data_dependent(q: Quantizer, where: str) -> None:
    """binary/ternary activations with ``alpha='auto'``/``'auto_po2'``: the scale is
    computed from each batch of data, so no fixed hardware reproduces it."""
    if isinstance(q, Binary | Ternary) and isinstance(q.alpha, str):
        raise UnsupportedError(
            f"{where}: {q} as an activation scales by a statistic of each batch "
            f"(alpha={q.alpha!r}); supported as activations: alpha=None or a power of two"
        )


# ---------------------------------------------------------------------------------------
# the float computation
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class FloatBatchNorm:
    """A Keras ``BatchNormalization`` at inference, as float32 parameters (C,) each.

    ``centered``: the fused kernel's order of operations (Keras uses it for rank-4 inputs,
    i.e. after a Conv2D): ``(y - mean) * inv + beta``; otherwise ``y * inv + (beta -
    mean * inv)``. ``inv = rsqrt(variance + epsilon) * gamma``."""

    gamma: np.ndarray
    beta: np.ndarray
    mean: np.ndarray
    variance: np.ndarray
    epsilon: float
    centered: bool = False

    def __post_init__(self) -> None:
        for key in ("gamma", "beta", "mean", "variance"):
            object.__setattr__(self, key, np.asarray(getattr(self, key), dtype=_F32))
        if np.any(self.variance + _F32(self.epsilon) <= 0):
            raise RtlgenError("moving_variance + epsilon is not positive")

    @property
    def channels(self) -> int:
        return int(self.gamma.shape[0])

    def inverse(self, ulps: int = 0) -> np.ndarray:
        """``rsqrt(variance + epsilon) * gamma`` in float32, the rsqrt correctly rounded and
        then moved by ``ulps`` units in the last place."""
        var = (self.variance + _F32(self.epsilon)).astype(_F32)
        rs = (1.0 / np.sqrt(var.astype(np.float64))).astype(_F32)
        if ulps:
            rs = (rs.view(np.int32) + np.int32(ulps)).view(_F32)
        return (rs * self.gamma).astype(_F32)

    def apply(self, y: np.ndarray, channel_axis: int = -1, ulps: int = 0) -> np.ndarray:
        """float32 ``y`` with channels along ``channel_axis`` -> the BN output (float32)."""
        inv = self.inverse(ulps)
        shape = [1] * y.ndim
        shape[channel_axis] = self.channels
        inv = inv.reshape(shape)
        with np.errstate(over="ignore", invalid="ignore"):
            if self.centered:
                centered = (y - self.mean.reshape(shape)).astype(_F32)
                return ((centered * inv).astype(_F32) + self.beta.reshape(shape)).astype(_F32)
            offset = (self.beta - (self.mean * inv.reshape(-1)).astype(_F32)).astype(_F32)
            return ((y * inv).astype(_F32) + offset.reshape(shape)).astype(_F32)

    def as_scale_shift(self) -> tuple[np.ndarray, np.ndarray]:
        """(scale, shift) in float64 of the same affine map (for the scale/shift path)."""
        inv = self.inverse().astype(np.float64)
        return inv, self.beta.astype(np.float64) - self.mean.astype(np.float64) * inv


@dataclass(frozen=True, eq=False)
class StepFunction:
    """``quantizer(clamp(bn(x * 2**-in_type.frac)))`` per channel, as output mantissas."""

    in_type: FixedType
    quantizer: Quantizer
    out_type: FixedType
    clamp: Clamp = Clamp()
    bn: FloatBatchNorm | None = None

    def __call__(self, x: np.ndarray, channel_axis: int = -1, ulps: int = 0) -> np.ndarray:
        """Input mantissas -> output mantissas (int64), channels along ``channel_axis``."""
        exact = getattr(self.bn, "apply_mantissas", None)
        if exact is not None:  # a float function of the exact input (QONNX's float scales)
            y = exact(np.asarray(x, dtype=np.int64), self.in_type.frac, channel_axis)
        else:
            y = (np.asarray(x, dtype=np.float64) * 2.0**-self.in_type.frac).astype(_F32)
            if self.bn is not None:
                y = self.bn.apply(y, channel_axis, ulps)
        if self.clamp.lo is not None:
            y = np.maximum(y, _F32(self.clamp.lo))
        if self.clamp.hi is not None:
            y = np.minimum(y, _F32(self.clamp.hi))
        with np.errstate(over="ignore", invalid="ignore"):
            values = self.quantizer.reference(y)
        scaled = values * 2.0**self.out_type.frac
        mantissa = np.rint(scaled)
        if not np.array_equal(mantissa, scaled):  # pragma: no cover  (a quantizer bug)
            raise AssertionError(f"{self.quantizer} produced values off its grid {self.out_type}")
        return mantissa.astype(np.int64)


# ---------------------------------------------------------------------------------------
# thresholds
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Thresholds:
    """``out[c] = levels[c, #{k: x[c] >= thresholds[c, k]}]``.

    ``thresholds`` (C, n) int64, strictly increasing per channel and inside
    ``(in_type.min_int, in_type.max_int]``; a channel with fewer pads with
    ``in_type.max_int + 1`` (never reached). ``levels`` (C, n + 1) output mantissas (padding
    repeats the last). ``ambiguous``: thresholds that depend on TensorFlow's rsqrt rounding.
    """

    thresholds: np.ndarray
    levels: np.ndarray
    ambiguous: int = 0

    @property
    def channels(self) -> int:
        return int(self.levels.shape[0])

    @property
    def comparators(self) -> int:
        """Real comparators (padding excluded)."""
        return int(np.count_nonzero(np.diff(self.levels, axis=1)))


def threshold_reference(x: np.ndarray, thresholds: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Mantissas (..., C) -> output mantissas (..., C): the integer kernel."""
    x = np.asarray(x, dtype=np.int64)
    flat = x.reshape(-1, levels.shape[0])
    out = np.empty_like(flat)
    for c in range(levels.shape[0]):  # thresholds ascend: the count is a binary search
        out[:, c] = levels[c][np.searchsorted(thresholds[c], flat[:, c], side="right")]
    return out.reshape(x.shape)


def level_span(f: StepFunction, channels: int) -> int:
    """The most output steps any channel of ``f`` takes over the input range (the size of
    the threshold search is ``channels`` times this)."""
    lo, hi = f.in_type.min_int, f.in_type.max_int
    ends = f(np.array([[lo] * channels, [hi] * channels]))
    return int(np.abs(ends[1] - ends[0]).max(initial=0))


def _search(f: StepFunction, channels: int, ulps: int) -> Thresholds:
    t_in = f.in_type
    lo, hi = t_in.min_int, t_in.max_int
    ends = f(np.array([[lo] * channels, [hi] * channels]), ulps=ulps)  # (2, C)
    first, last = ends[0], ends[1]
    span = np.abs(last - first)
    n = int(span.max(initial=0))
    if n == 0:
        return Thresholds(np.full((channels, 0), hi + 1, np.int64), first[:, None].copy())
    rising = last >= first
    # target j (1..span): least x whose level has moved at least j steps from `first`
    steps = np.arange(1, n + 1, dtype=np.int64)[None, :]  # (1, n)
    sign = np.where(rising, 1, -1)[:, None]
    target = first[:, None] + sign * steps  # (C, n)
    valid = steps <= span[:, None]
    below = np.full((channels, n), lo, np.int64)  # level(below) has not reached the target
    above = np.full((channels, n), hi, np.int64)  # level(above) has
    while True:
        open_ = valid & (above - below > 1)
        if not open_.any():
            break
        mid = below + (above - below) // 2
        level = f(mid.T, ulps=ulps).T  # channels on axis 0 -> evaluate with channels last
        reached = np.where(rising[:, None], level >= target, level <= target)
        above = np.where(open_ & reached, mid, above)
        below = np.where(open_ & ~reached, mid, below)
    # A target reached already at `lo` cannot happen (first is lo's level); `above` is the
    # least x reaching each target. Distinct thresholds, in order, with the level after each.
    rows_t: list[np.ndarray] = []
    for c in range(channels):
        ts = np.unique(above[c, : span[c]])
        rows_t.append(ts)
    width = max((len(r) for r in rows_t), default=0)
    thresholds = np.full((channels, width), hi + 1, np.int64)
    for c, ts in enumerate(rows_t):
        thresholds[c, : len(ts)] = ts
    after = f(thresholds.T.clip(lo, hi), ulps=ulps).T  # (C, width)
    levels = np.concatenate([first[:, None], after], axis=1)
    for c, ts in enumerate(rows_t):  # padding repeats the channel's last level
        levels[c, len(ts) + 1 :] = levels[c, len(ts)]
    return Thresholds(thresholds, levels)


def step_thresholds(f: StepFunction, channels: int) -> Thresholds:
    """The exact thresholds of any monotone step function of the input mantissas with
    ``f.in_type`` and ``f(x, channel_axis=-1, ulps=0)`` (channels last), without the rsqrt
    variants or checks of `find_thresholds`."""
    return _search(f, channels, 0)


def find_thresholds(f: StepFunction, channels: int, rsqrt_ulps: int = RSQRT_ULPS) -> Thresholds:
    """The exact thresholds of ``f`` over every input mantissa of ``f.in_type``, with the
    ones that move when TensorFlow's rsqrt is up to ``rsqrt_ulps`` ulps off counted.

    Raises `UnsupportedError` if the function is not monotone per channel (a bug or a
    quantizer that is not a step function)."""
    rsqrt = f.bn is not None and getattr(f.bn, "rsqrt", True)  # QONNX's QuantStep has none
    ulps_range = range(-rsqrt_ulps, rsqrt_ulps + 1) if rsqrt else range(0, 1)
    results = {u: _search(f, channels, u) for u in ulps_range}
    best = results[0]
    ambiguous = 0
    for u, other in results.items():
        if u == 0:
            continue
        ambiguous = max(ambiguous, _differences(best, other))
    check_monotone(f, best, channels)
    return Thresholds(best.thresholds, best.levels, ambiguous)


def _differences(a: Thresholds, b: Thresholds) -> int:
    """How many (channel, threshold) decisions differ between two threshold sets."""
    if a.thresholds.shape != b.thresholds.shape:
        return int(max(a.thresholds.size, b.thresholds.size))
    return int(
        np.count_nonzero((a.thresholds != b.thresholds) | (a.levels[:, 1:] != b.levels[:, 1:]))
    )


def check_monotone(f: StepFunction, t: Thresholds, channels: int) -> None:
    """Spot check: the step function agrees with the thresholds at and just below every
    threshold and on random points (the search assumed monotone levels)."""
    lo, hi = f.in_type.min_int, f.in_type.max_int
    rng = np.random.default_rng(0)
    probes = [rng.integers(lo, hi, size=(256, channels), endpoint=True)]
    if t.thresholds.shape[1]:
        inside = t.thresholds.clip(lo, hi)
        probes += [inside.T, (inside - 1).clip(lo, hi).T]
    x = np.concatenate(probes)
    if not np.array_equal(threshold_reference(x, t.thresholds, t.levels), f(x)):
        raise UnsupportedError(
            f"{f.quantizer} after the float scale is not a monotone step function of the input"
        )
