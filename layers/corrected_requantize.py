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

    Hardware: the requantizer (combinational, bit-exact with `quant.fixed.requantize`), two
    constant comparators per correction and a mux, one register stage. Contract: one vector
    of ``n`` elements per cycle (II = 1), ``latency`` 1, ``o.ready`` low freezes the stage
    (`stream_util.pipeline_control`); ``n`` x ``acc_type`` in, ``n`` x ``out_type`` out.
    """

    latency = 1

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
        return 2 * sum(len(element) for element in self.corrections)

    def elaborate(self, platform):
        m = Module()
        clamp_lo, clamp_hi, rounding, overflow = self.requantize
        out_shape = shape_of(self.out_type)
        m.submodules.requantize = rq = Requantize(
            self.n, self.acc_type, self.out_type, clamp_lo, clamp_hi, rounding, overflow, latency=0
        )
        m.d.comb += [rq.i.payload.eq(self.i.payload), rq.i.valid.eq(1), rq.o.ready.eq(1)]
        advance = pipeline_control(m, self.i, self.o, self.latency)
        out = Signal(data.ArrayLayout(out_shape, self.n))
        with m.If(advance):
            for k in range(self.n):
                acc = self.i.payload[k]
                value = rq.o.payload[k]
                for lo, hi, level in reversed(self.corrections[k]):
                    value = Mux((acc >= lo) & (acc <= hi), Const(level, out_shape), value)
                m.d.sync += out[k].eq(value)
        m.d.comb += self.o.payload.eq(out)
        return m
