"""Global max/average pooling as streaming per-channel accumulators (no line buffer).

A sample is ``positions`` consecutive input beats of ``channels`` elements (an image (H, W, C)
streamed pixel by pixel has ``H * W`` positions, a 1D signal (L, C) has ``L``); its result is
one output beat of ``channels`` elements. One accumulator register per channel folds the beats
as they arrive, so the memory is ``channels`` registers instead of the whole-image line
buffer and window registers a `WindowGenerator` would need for a window covering the image.

Arithmetic follows `rtlgen.quant.reference._pool` for a window covering the whole image
without padding, bit for bit:

- max: the maximum over the positions, then ``requantize(max, in_type.frac, out_type,
  rounding)`` (saturating);
- average: the exact sum over the positions, then ``divide_round(sum << s, positions)`` (or
  ``divide_round(sum, positions << -s)``) with ``s = out_type.frac - in_type.frac``, saturated
  into ``out_type`` (the reference's final ``requantize`` from ``out_type.frac`` is a pure
  saturation).

Backpressure ("double buffering"): the accumulators are one buffer, the result pipeline the
other. Only the *last* beat of a sample needs the result pipeline, so the result of sample k
may wait at the output while sample k+1 accumulates; see `GlobalMax` for the exact guarantee.
"""

from __future__ import annotations

from typing import Literal

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from rtlgen.quant.errors import RtlgenError
from rtlgen.quant.fixed import FixedType, Rounding

from .common import resize, saturate, shape_of, vector_layout
from .pool import Reciprocal
from .requantize import Requantize
from .stream_util import Chain, StageRegisters, pipeline_control

ReduceKind = Literal["max", "sum"]


def _check_sizes(what: str, positions: int, channels: int) -> None:
    if positions < 1:
        raise RtlgenError(f"{what}: needs at least 1 position per sample, got {positions}")
    if channels < 1:
        raise RtlgenError(f"{what}: needs at least 1 channel, got {channels}")


class RunningReduce(wiring.Component):
    """Per-channel running maximum or exact sum over ``positions`` consecutive beats.

    Input ``i``: ``vector_layout(in_type, channels)``, ``positions`` beats per sample, samples
    back to back. Output ``o``: ``vector_layout(acc_type, channels)``, one beat per sample:
    the maximum (``acc_type == in_type``) or the exact sum (``acc_type`` covers
    ``positions * [in_type.min_int, in_type.max_int]``, `acc_range`) of the sample's beats.

    Structure: a position counter and one accumulator register per channel; the beat of
    position 0 loads the accumulators, later beats fold into them. The last beat's fold
    (accumulators combined with that beat, combinationally) loads the output register, a
    one-stage `pipeline_control` pipeline, so the accumulators are free for the next sample
    in the following cycle.

    Contract: ``latency`` = 1 (handshake of a sample's last beat -> its ``o.valid``); one
    beat per cycle (II = 1), ``cycles_per_sample`` = ``positions``. ``i.ready`` is high on
    every beat but the last of a sample; on the last beat it is ``~o.valid | o.ready``
    (combinational from ``o.ready``), so a result not taken stalls the input only when the
    next sample's last beat arrives.
    """

    def __init__(self, positions: int, channels: int, in_type: FixedType, kind: ReduceKind):
        _check_sizes("running reduction", positions, channels)
        if kind not in ("max", "sum"):
            raise ValueError(f"RunningReduce: kind must be 'max' or 'sum', got {kind!r}")
        self.positions, self.channels = positions, channels
        self.in_type, self.kind = in_type, kind
        if kind == "max":
            self.acc_range = (in_type.min_int, in_type.max_int)
            self.acc_type = in_type
        else:
            self.acc_range = (positions * in_type.min_int, positions * in_type.max_int)
            self.acc_type = FixedType.covering(*self.acc_range, in_type.frac)
        super().__init__(
            {
                "i": In(stream.Signature(vector_layout(in_type, channels))),
                "o": Out(stream.Signature(vector_layout(self.acc_type, channels))),
            }
        )

    latency = 1

    @property
    def cycles_per_sample(self) -> int:
        return self.positions

    def elaborate(self, platform):
        m = Module()
        acc_shape = shape_of(self.acc_type)
        if self.positions == 1:
            first: Value = Const(1, 1)
            last: Value = Const(1, 1)
        else:
            position = Signal(range(self.positions))
            first, last = position == 0, position == self.positions - 1
            with m.If(self.i.valid & self.i.ready):
                m.d.sync += position.eq(Mux(last, 0, position + 1))

        accumulators = [
            Signal(acc_shape, name=f"acc_{ch}", reset_less=True) for ch in range(self.channels)
        ]
        folded = []
        for ch, acc in enumerate(accumulators):
            x = self.i.payload[ch]
            if self.kind == "max":
                combined = Mux(x > acc, x, acc)
            else:
                combined = acc + x  # never overflows acc_shape: acc_type covers the sum
            folded.append(resize(Mux(first, x, combined), acc_shape))
        if self.positions > 1:
            with m.If(self.i.valid & self.i.ready):
                m.d.sync += [acc.eq(value) for acc, value in zip(accumulators, folded, strict=True)]

        # The last beat of a sample enters the result pipeline; the others never wait for it.
        totals = stream.Signature(self.o.payload.shape()).create()
        advance = pipeline_control(m, totals, self.o, 1)
        m.d.comb += [
            totals.valid.eq(self.i.valid & last),
            self.i.ready.eq(~last | totals.ready),
        ]
        registers = StageRegisters(advance)
        result = registers.register(Cat(*folded), name="result")
        registers.emit(m)
        m.d.comb += self.o.payload.eq(result)
        return m


class DivideRound(wiring.Component):
    """Per element, an exact division by a constant rounded and saturated into ``out_type``.

    Input: ``vector_layout(num_type, n)``, mantissas ``x`` known to lie in ``num_range``
    (default: the type's range). Output: ``vector_layout(out_type, n)``, bit-exact
    ``fit(divide_round(x << s, divisor, rounding), out_type)`` with
    ``s = out_type.frac - num_type.frac`` (``divide_round(x, divisor << -s)`` for s < 0):
    the value ``x * 2**-num_type.frac / divisor`` in ``out_type``, saturating.

    The division is a multiply by a constant reciprocal (`pool.Reciprocal`): add an offset
    making the numerator non-negative, multiply, then the floor quotient and the rounding
    decision from the product's high and low bits, and saturation. One register stage after
    each: ``latency`` = 3, one vector per cycle (II = 1), the `pipeline_control` scheme
    under backpressure.
    """

    latency = 3

    def __init__(
        self,
        n: int,
        num_type: FixedType,
        divisor: int,
        out_type: FixedType,
        rounding: Rounding = Rounding.CONVERGENT,
        num_range: tuple[int, int] | None = None,
    ):
        if divisor < 1:
            raise RtlgenError(f"division by a constant: divisor must be >= 1, got {divisor}")
        self.n, self.num_type, self.divisor = n, num_type, divisor
        self.out_type, self.rounding = out_type, rounding
        self.num_range = num_range or (num_type.min_int, num_type.max_int)
        shift = out_type.frac - num_type.frac
        self.num_shift, self.den_shift = max(shift, 0), max(-shift, 0)
        lo, hi = self.num_range
        self.reciprocal = Reciprocal(
            divisor << self.den_shift, lo << self.num_shift, hi << self.num_shift
        )
        super().__init__(
            {
                "i": In(stream.Signature(vector_layout(num_type, n))),
                "o": Out(stream.Signature(vector_layout(out_type, n))),
            }
        )

    def elaborate(self, platform):
        m = Module()
        rec, out_type = self.reciprocal, self.out_type
        registers = StageRegisters(pipeline_control(m, self.i, self.o, self.latency))
        # n' = (x << num_shift) + offset lies in [0, n_hi + offset]: unsigned from here on.
        offset_shape = unsigned(max(rec.n_hi + rec.offset, 1).bit_length())
        product_shape = unsigned(max((rec.n_hi + rec.offset) * rec.multiplier, 1).bit_length())
        lo, hi = rec.result_range(self.rounding)
        results = []
        for k in range(self.n):
            numerator = (self.i.payload[k] << self.num_shift) + rec.offset
            offset = registers.register(numerator, offset_shape, name=f"offset_{k}")
            product = registers.register(
                offset * rec.multiplier, product_shape, name=f"product_{k}"
            )
            # Zero-extended so that subtracting the offset's quotient is signed.
            quotient = Cat(product >> rec.shift, Const(0, 1)).as_signed() - (
                rec.offset // rec.divisor
            )
            low = product[: rec.shift] if rec.shift else Const(0, 1)
            value = quotient + rec.round_up(low, quotient[0], self.rounding)
            results.append(
                saturate(value, out_type.min_int, out_type.max_int, shape_of(out_type), lo, hi)
            )
        out = registers.register(Cat(*results), name="out")
        registers.emit(m)
        m.d.comb += self.o.payload.eq(out)
        return m


class _GlobalReduce(Chain):
    """What `GlobalMax` and `GlobalAverage` share: the per-sample timing and the state."""

    positions: int
    channels: int
    reduce: RunningReduce

    @property
    def cycles_per_sample(self) -> int:
        return self.positions

    @property
    def register_bits(self) -> int:
        """Accumulator bits (the state that replaces the line buffer)."""
        return self.channels * self.reduce.acc_type.width

    def model_timing(self, times: list[int], samples: int) -> tuple[list[int], list[int]]:
        """The contract as `rtlgen.timing` follows it (no output backpressure): input beats
        offered at ``times`` are accepted one per cycle, each sample's ``positions`` beats
        give one output beat, valid ``latency`` cycles after the sample's last beat's
        handshake. Returns (accepted cycles, output valid cycles)."""
        accepted: list[int] = []
        for t in times:
            accepted.append(t if not accepted else max(t, accepted[-1] + 1))
        last_beats = accepted[self.positions - 1 :: self.positions]
        return accepted, [t + self.latency for t in last_beats]


class GlobalMax(_GlobalReduce):
    """Global max pooling: per-channel maximum over ``positions`` beats, into ``out_type``.

    Input ``i``: ``vector_layout(in_type, channels)``, ``positions`` beats per sample (H*W
    pixels of an image in any order, or L steps of a 1D signal), samples back to back.
    Output ``o``: ``vector_layout(out_type, channels)``, one beat per sample, equal to
    ``requantize(max over positions, in_type.frac, out_type, rounding)`` (saturating).

    Structure: `RunningReduce` (one register per channel, no line buffer), then a
    `Requantize` stage when ``out_type != in_type``.

    Contract:

    - ``cycles_per_sample`` = ``positions``: one input beat per cycle (II = 1), no bubble
      between samples.
    - ``latency``: cycles from the handshake of a sample's last beat to its ``o.valid`` at
      full rate; 1, or 2 with a requantization stage.
    - Backpressure: every beat but the last of a sample is always accepted (``i.ready``
      high); the last one is accepted in any cycle with ``~o.valid | o.ready`` (sufficient,
      not necessary: a free stage of the result pipeline also takes it). The accumulators
      and the result pipeline are two buffers, so the result of sample k may wait at the
      output while sample k+1 accumulates. Guaranteed: a consumer that takes every result at
      most ``positions - 1`` cycles after its ``o.valid`` rose never stalls the input (at
      any input rate). Why: the last beat of sample k+1 comes at least ``positions`` cycles
      after that of sample k, whose result then left the first result register unless the
      result pipeline was frozen all that time, i.e. one result stood untaken at the
      output for ``positions`` cycles. That is the limit: taking a result only every ``positions + 1`` cycles is slower than the
      input, which must then wait. Under any valid/ready pattern nothing is lost or
      duplicated; ``i.ready`` depends combinationally on ``o.ready`` on last beats.
    """

    def __init__(
        self,
        positions: int,
        channels: int,
        in_type: FixedType,
        out_type: FixedType | None = None,
        rounding: Rounding = Rounding.CONVERGENT,
    ):
        _check_sizes("global max pooling", positions, channels)
        self.positions, self.channels = positions, channels
        self.in_type, self.out_type, self.rounding = in_type, out_type or in_type, rounding
        self.reduce = RunningReduce(positions, channels, in_type, "max")
        stages: list[wiring.Component] = [self.reduce]
        if self.out_type != in_type:
            stages.append(Requantize(channels, in_type, self.out_type, rounding=rounding))
        super().__init__(stages)


class GlobalAverage(_GlobalReduce):
    """Global average pooling: per-channel exact sum over ``positions`` beats, divided by
    ``positions`` and rounded into ``out_type``.

    Input/output as `GlobalMax`; the output is ``fit(divide_round(sum << s, positions,
    rounding), out_type)`` with ``s = out_type.frac - in_type.frac`` (``divide_round(sum,
    positions << -s)`` for s < 0), which is `rtlgen.quant.reference._pool`'s average of a
    window covering the whole image without padding.

    Structure: `RunningReduce` (one exact-sum register per channel) then `DivideRound` (a
    multiply by the constant reciprocal of ``positions``). ``latency`` = 1 + 3 = 4;
    ``cycles_per_sample`` = ``positions``; backpressure exactly as `GlobalMax` (a consumer
    taking each result within ``positions - 1`` cycles of its ``o.valid`` never stalls a
    full-rate input).
    """

    def __init__(
        self,
        positions: int,
        channels: int,
        in_type: FixedType,
        out_type: FixedType,
        rounding: Rounding = Rounding.CONVERGENT,
    ):
        _check_sizes("global average pooling", positions, channels)
        self.positions, self.channels = positions, channels
        self.in_type, self.out_type, self.rounding = in_type, out_type, rounding
        self.reduce = RunningReduce(positions, channels, in_type, "sum")
        self.divide = DivideRound(
            channels,
            self.reduce.acc_type,
            positions,
            out_type,
            rounding,
            num_range=self.reduce.acc_range,
        )
        super().__init__([self.reduce, self.divide])


__all__ = ["DivideRound", "GlobalAverage", "GlobalMax", "RunningReduce"]
