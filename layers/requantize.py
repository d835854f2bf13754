"""Elementwise activation clamp + rounding + saturation/wrap of accumulators."""

from __future__ import annotations

from collections.abc import Sequence

from amaranth.hdl import Cat, Const, Module, Mux, Shape, Value
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from rtlgen.quant.errors import RtlgenError
from rtlgen.quant.fixed import FixedType, Overflow, Rounding, shift_round

from . import common
from .common import shape_of
from .stream_util import StageRegisters, pipeline_control


def _greater(v: Value, v_lo: int, v_hi: int, c: int) -> Value:
    """``v > c`` for ``v`` known to lie in [v_lo, v_hi], cheap for the usual bounds.

    Bounds of the form ``2**k - 1`` and ``-2**k - 1`` (type limits, ReLU at 0) are a sign
    bit and an OR/AND of the high bits instead of a carry-chain comparator.
    """
    if v_hi <= c:
        return Const(0, 1)
    if v_lo > c:
        return Const(1, 1)
    shape = v.shape()
    bits = v.as_unsigned()
    width = shape.width
    top = width - 1 if shape.signed else width  # bits above `top` are sign
    negative = bits[width - 1] if shape.signed else Const(0, 1)
    bound = c + 1  # v > c  <=>  v >= bound
    if bound > 0 and bound & (bound - 1) == 0:
        k = bound.bit_length() - 1
        high = bits[k:top].any() if k < top else Const(0, 1)
        return ~negative & high
    if bound < 0 and (-bound) & (-bound - 1) == 0:
        k = (-bound).bit_length() - 1  # v >= -2**k  <=>  not (negative and high bits not all ones)
        high = bits[k:top].all() if k < top else Const(1, 1)
        return ~negative | high
    if bound == 0:
        return ~negative
    return v > c


def _less(v: Value, v_lo: int, v_hi: int, c: int) -> Value:
    """``v < c`` (see `_greater`)."""
    return ~_greater(v, v_lo, v_hi, c - 1)


class Requantize(wiring.Component):
    """Elementwise ``requantize(apply_clamp(acc, clamp_lo, clamp_hi), acc_type.frac, out_type)``.

    Bit-exact with `quant.fixed.requantize` (`shift_round` + `fit`): convergent rounding
    (QKeras/AP_RND_CONV) from the dropped bits, half-up or truncation; saturation or wrap.
    ``clamp_lo``/``clamp_hi`` are activation bounds as accumulator mantissas (None: none).

    With saturation the clamp folds into the saturation bounds (rounding is monotone, so
    ``round(clip(a, lo, hi)) == clip(round(a), round(lo), round(hi))``), and the rounding
    increment is applied to the kept output bits only: one comparator per bound on the
    floored accumulator, a small incrementer and a mux. ``in_ranges`` (per element, e.g.
    `ConstantMatVec.out_ranges`) removes comparisons that can never fire.

    Contract: one vector of ``n`` elements per cycle (II = 1); ``latency`` 0
    (combinational, for fusing into the next block's first stage), 1 or 2 register stages
    (`stream_util.pipeline_control`).
    """

    def __init__(
        self,
        n: int,
        acc_type: FixedType,
        out_type: FixedType,
        clamp_lo: int | None = None,
        clamp_hi: int | None = None,
        rounding: Rounding = Rounding.CONVERGENT,
        overflow: Overflow = Overflow.SATURATE,
        *,
        in_ranges: Sequence[tuple[int, int]] | None = None,
        latency: int = 1,
    ):
        if latency not in (0, 1, 2):
            raise RtlgenError(f"Requantize: latency must be 0, 1 or 2, got {latency}")
        if clamp_lo is not None and clamp_hi is not None and clamp_lo > clamp_hi:
            raise RtlgenError(f"Requantize: clamp bounds [{clamp_lo}, {clamp_hi}] are empty")
        if in_ranges is None:
            in_ranges = [(acc_type.min_int, acc_type.max_int)] * n
        if len(in_ranges) != n:
            raise RtlgenError(f"Requantize: {len(in_ranges)} input ranges for {n} elements")
        self.n = n
        self.acc_type = acc_type
        self.out_type = out_type
        self.clamp_lo, self.clamp_hi = clamp_lo, clamp_hi
        self.rounding, self.overflow = rounding, overflow
        self.in_ranges = [
            (max(int(lo), acc_type.min_int), min(int(hi), acc_type.max_int)) for lo, hi in in_ranges
        ]
        self._latency = latency
        super().__init__(
            {
                "i": In(stream.Signature(data.ArrayLayout(shape_of(acc_type), n))),
                "o": Out(stream.Signature(data.ArrayLayout(shape_of(out_type), n))),
            }
        )

    @property
    def latency(self) -> int:
        return self._latency

    @property
    def shift(self) -> int:
        """Fractional bits dropped (negative: an exact left shift)."""
        return self.acc_type.frac - self.out_type.frac

    def _round(self, bound: int) -> int:
        return int(shift_round(bound, self.shift, self.rounding))

    def _bounds(self) -> tuple[int, int]:
        """Saturation bounds on the rounded value: clamp and type limits combined."""
        lo, hi = self.out_type.min_int, self.out_type.max_int
        clip = lambda v: min(max(v, lo), hi)  # noqa: E731
        new_lo = clip(self._round(self.clamp_lo)) if self.clamp_lo is not None else lo
        new_hi = clip(self._round(self.clamp_hi)) if self.clamp_hi is not None else hi
        return new_lo, new_hi

    def elaborate(self, platform):
        from . import mac_verilog, requantize_verilog

        # Verilog emission: an instance of the same logic written as text
        text = mac_verilog.text_instance(
            self, Requantize, requantize_verilog.supported, requantize_verilog.requantize_verilog,
            "rq",
        )
        if text is not None:
            return text
        m = Module()
        advance = pipeline_control(m, self.i, self.o, self._latency)
        regs = StageRegisters(advance)
        out_shape = shape_of(self.out_type)
        results = []
        saturate = self.overflow is Overflow.SATURATE
        for k in range(self.n):
            acc = self.i.payload[k]
            if saturate:
                results.append(self._saturating(acc, *self.in_ranges[k], out_shape, regs, k))
            else:
                results.append(self._wrapping(acc, *self.in_ranges[k]))
        # Wrap-around and `fit` keep the low bits; in-range saturated values lose nothing.
        width = out_shape.width
        out = Cat(*[_extend(r, width).as_unsigned()[:width] for r in results])
        output_registers = self._latency - (1 if saturate and self._latency == 2 else 0)
        for stage in range(output_registers):
            out = regs.register(out, name=f"out_{stage}")
        regs.emit(m)
        m.d.comb += self.o.payload.eq(out)
        return m

    def _saturating(
        self, acc: Value, lo: int, hi: int, out_shape: Shape, regs: StageRegisters, k: int = 0
    ) -> Value:
        low_bound, high_bound = self._bounds()
        shift = self.shift
        increment: Value = Const(0, 1)
        if shift <= 0:
            floor, f_lo, f_hi = acc << -shift, lo << -shift, hi << -shift
        else:
            # Sign-extend so that every dropped bit and one kept bit exist.
            acc = _extend(acc, shift + 1)
            bits = acc.as_unsigned()
            floor, f_lo, f_hi = acc >> shift, lo >> shift, hi >> shift
            half = bits[shift - 1]
            if self.rounding is Rounding.HALF_UP:
                increment = half
            elif self.rounding is Rounding.CONVERGENT:
                below = bits[: shift - 1].any() if shift > 1 else Const(0, 1)
                increment = half & (below | bits[shift])
        # clip(floor + increment, low_bound, high_bound) without building the wide sum:
        # floor + inc > H  <=>  floor > H  or  (inc and floor == H); likewise below L.
        # Each is (compare, equality or None); with two stages the compares, the equalities
        # and the increment (the sticky OR over the dropped bits) are registered side by side
        # and combined in the second.
        over_parts: tuple[Value, Value | None] = (Const(0, 1), None)
        if f_hi + 1 > high_bound:
            tie = floor == high_bound if f_lo <= high_bound <= f_hi else None
            over_parts = (_greater(floor, f_lo, f_hi, high_bound), tie)
        under_parts: tuple[Value, Value | None] = (Const(0, 1), None)
        if f_lo < low_bound:
            tie = floor == low_bound - 1 if f_lo <= low_bound - 1 <= f_hi else None
            under_parts = (_less(floor, f_lo, f_hi, low_bound - 1), tie)
        width = out_shape.width
        kept = _extend(floor, width).as_unsigned()[:width]
        if self._latency == 2:
            # named per element (kept_<k>, ...): the text module has the same registers
            kept = regs.register(kept, name=f"kept_{k}")
            increment = regs.register(increment, name=f"inc_{k}")
            stage = lambda v, name: v if v is None or isinstance(v, Const) else regs.register(v, name=name)  # noqa: E731
            over_parts = (stage(over_parts[0], f"over_{k}"), stage(over_parts[1], f"over_tie_{k}"))
            under_parts = (
                stage(under_parts[0], f"under_{k}"),
                stage(under_parts[1], f"under_tie_{k}"),
            )
        over, over_tie = over_parts
        if over_tie is not None:
            over = over | (increment & over_tie)
        under, under_tie = under_parts
        if under_tie is not None:
            under = under | (~increment & under_tie)
        inside = (kept + increment)[:width]
        return Mux(
            over, Const(high_bound, out_shape), Mux(under, Const(low_bound, out_shape), inside)
        )

    def _wrapping(self, acc: Value, lo: int, hi: int) -> Value:
        clamped = acc
        if self.clamp_hi is not None and hi > self.clamp_hi:
            clamped = Mux(_greater(acc, lo, hi, self.clamp_hi), self.clamp_hi, clamped)
        if self.clamp_lo is not None and lo < self.clamp_lo:
            clamped = Mux(_less(acc, lo, hi, self.clamp_lo), self.clamp_lo, clamped)
        # common.shift_round needs every dropped bit and one kept bit to exist.
        return common.shift_round(_extend(clamped, self.shift + 1), self.shift, self.rounding)


def _extend(v: Value, width: int) -> Value:
    """``v`` sign- or zero-extended to at least ``width`` bits (same value and signedness)."""
    v = Value.cast(v)
    extra = width - len(v)
    if extra <= 0:
        return v
    if v.shape().signed:
        return Cat(v, v[-1].replicate(extra)).as_signed()
    return Cat(v, Const(0, extra))
