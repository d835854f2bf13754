"""Requantization of an exact accumulator with a few corrected input ranges."""

from __future__ import annotations

from collections.abc import Sequence

from amaranth.hdl import Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from rtlgen.quant.errors import RtlgenError
from rtlgen.quant.fixed import FixedType, Overflow, Rounding

from .common import shape_of
from .requantize import Requantize
from .stream_util import pipeline_control

#: one correction: accumulator mantissas ``lo..hi`` (inclusive) give output mantissa ``level``
Correction = tuple[int, int, int]


class CorrectedRequantize(wiring.Component):
    """Per element ``k``: ``level`` where ``lo <= acc[k] <= hi`` for one of the element's
    ``corrections[k]``, else `Requantize`'s ``requantize(clamp(acc[k]))`` into ``out_type``.

    Made for a float BatchNormalization followed by a quantizer of many levels
    (`rtlgen.ops.bn_correct`): the accumulator is the exact, strictly monotone scale/shift of
    the input, and the corrected ranges are the inputs at which float32 rounding inside the BN
    decides the quantizer's level differently from the exact affine map.

    Hardware: stage 1 registers the requantized value (`Requantize`, combinational, bit-exact
    with `quant.fixed.requantize`) and one hit bit per range (an equality for a one-input
    range, else two constant comparators); stage 2 ORs the hit range's level (the ranges are
    disjoint) and selects it when any hits. Contract: one vector of ``n`` elements per cycle
    (II = 1), ``latency`` 2, ``o.ready`` low freezes the pipeline
    (`stream_util.pipeline_control`); ``n`` x ``acc_type`` in, ``n`` x ``out_type`` out.
    """

    latency = 2

    def __init__(
        self,
        n: int,
        acc_type: FixedType,
        out_type: FixedType,
        corrections: Sequence[Sequence[Correction]],
        clamp_lo: int | None = None,
        clamp_hi: int | None = None,
        rounding: Rounding = Rounding.CONVERGENT,
        overflow: Overflow = Overflow.SATURATE,
    ):
        if len(corrections) != n:
            raise RtlgenError(
                f"CorrectedRequantize: {len(corrections)} correction lists for {n} elements"
            )
        for element in corrections:
            for lo, hi, level in element:
                if lo > hi or not out_type.min_int <= level <= out_type.max_int:
                    raise RtlgenError(f"CorrectedRequantize: bad correction {(lo, hi, level)}")
        self.n, self.acc_type, self.out_type = n, acc_type, out_type
        self.corrections = [list(map(tuple, element)) for element in corrections]
        self.requantize = (clamp_lo, clamp_hi, rounding, overflow)
        super().__init__(
            {
                "i": In(stream.Signature(data.ArrayLayout(shape_of(acc_type), n))),
                "o": Out(stream.Signature(data.ArrayLayout(shape_of(out_type), n))),
            }
        )

    @property
    def comparators(self) -> int:
        """Constant comparisons: one per single-input range, two per wider range."""
        return sum(1 if lo == hi else 2 for element in self.corrections for lo, hi, _ in element)

    def elaborate(self, platform):
        m = Module()
        clamp_lo, clamp_hi, rounding, overflow = self.requantize
        out_shape = shape_of(self.out_type)
        width = out_shape.width
        m.submodules.requantize = rq = Requantize(
            self.n, self.acc_type, self.out_type, clamp_lo, clamp_hi, rounding, overflow, latency=0
        )
        m.d.comb += [rq.i.payload.eq(self.i.payload), rq.i.valid.eq(1), rq.o.ready.eq(1)]
        advance = pipeline_control(m, self.i, self.o, self.latency)
        out = Signal(data.ArrayLayout(out_shape, self.n))
        for k in range(self.n):
            acc = self.i.payload[k]
            ranges = self.corrections[k]
            # stage 1: the requantized value and one hit bit per (disjoint) range
            kept = Signal(out_shape, name=f"kept_{k}")
            hits = Signal(max(len(ranges), 1), name=f"hits_{k}")
            with m.If(advance):
                m.d.sync += kept.eq(rq.o.payload[k])
                for j, (lo, hi, _) in enumerate(ranges):
                    hit = acc == lo if lo == hi else (acc >= lo) & (acc <= hi)
                    m.d.sync += hits[j].eq(hit)
            # stage 2: at most one range hits: an OR of its level, else the requantized value
            value = kept
            if ranges:
                levels = [
                    Const(level, out_shape).as_unsigned() & hits[j].replicate(width)
                    for j, (_, _, level) in enumerate(ranges)
                ]
                chosen = levels[0]
                for term in levels[1:]:
                    chosen = chosen | term
                value = Mux(hits.any(), chosen, kept.as_unsigned())
            with m.If(advance):
                m.d.sync += out[k].eq(value)
        m.d.comb += self.o.payload.eq(out)
        return m
