"""Multi-threshold activation: per element, constant comparators and a level table."""

from __future__ import annotations

from collections.abc import Sequence

from amaranth.hdl import Array, Cat, Const, Module, Value, signed
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from rtlgen.quant.errors import RtlgenError
from rtlgen.quant.fixed import FixedType

from .common import shape_of
from .stream_util import StageRegisters, pipeline_control

#: above this many thresholds in an element, a pipelined binary search replaces the bank of
#: constant comparators (one comparator and one small constant table per stage: LUTs and
#: elaboration time grow with log2 of the count instead of the count)
BANK_MAX_THRESHOLDS = 7
#: search tables up to this many entries are a mux of constants, larger ones a ROM
ARRAY_TABLE = 8


class ThresholdBank(wiring.Component):
    """``out[c] = levels[c][#{k: x[c] >= thresholds[c][k]}]`` for each of ``n`` elements.

    ``thresholds[c]``: strictly increasing input mantissas inside ``(in_type.min_int,
    in_type.max_int]`` (`rtlgen.quant.threshold.Thresholds` without its padding);
    ``levels[c]``: ``len(thresholds[c]) + 1`` output mantissas of ``out_type``. Bit-exact
    with `rtlgen.quant.threshold.threshold_reference`.

    Hardware per element, for at most `BANK_MAX_THRESHOLDS` thresholds: one comparator with
    a constant per threshold (sorted thresholds give a thermometer code), registered; the
    code's count in binary (bit j is an OR over odd q of ``t[q * 2**j] & ~t[(q + 1) *
    2**j]``: no adder tree). More thresholds: a binary search over them padded to ``2**S -
    1`` (S stages, each comparing the input with the threshold its prefix selects from a
    constant table, registered), whose prefix is the count. Then the level: ``base + step *
    count`` when the levels are evenly spaced (a quantizer's usual case), else a constant
    table indexed by the count; registered.

    Contract: one vector per cycle (II = 1), ``latency`` 2 (bank) or ``S + 1`` (search, S =
    bits of the largest count); ``o.ready`` low freezes the pipeline
    (`stream_util.pipeline_control`); widths from ``in_type`` and ``out_type``.
    """

    def __init__(
        self,
        in_type: FixedType,
        out_type: FixedType,
        thresholds: Sequence[Sequence[int]],
        levels: Sequence[Sequence[int]],
    ):
        if len(thresholds) != len(levels):
            raise RtlgenError(
                f"ThresholdBank: {len(thresholds)} threshold lists for {len(levels)} level lists"
            )
        for ts, ls in zip(thresholds, levels, strict=True):
            if len(ls) != len(ts) + 1:
                raise RtlgenError(
                    "ThresholdBank: each element needs one level more than thresholds"
                )
            if any(b <= a for a, b in zip(ts, ts[1:], strict=False)):
                raise RtlgenError("ThresholdBank: thresholds must be strictly increasing")
            if ts and not in_type.min_int < ts[0] <= ts[-1] <= in_type.max_int:
                raise RtlgenError(f"ThresholdBank: a threshold lies outside {in_type}'s range")
            if any(not out_type.min_int <= v <= out_type.max_int for v in ls):
                raise RtlgenError(f"ThresholdBank: a level is not a mantissa of {out_type}")
        self.in_type, self.out_type = in_type, out_type
        self.thresholds = [tuple(int(t) for t in ts) for ts in thresholds]
        self.levels = [tuple(int(v) for v in ls) for ls in levels]
        most = max((len(ts) for ts in self.thresholds), default=0)
        self.search_stages = most.bit_length() if most > BANK_MAX_THRESHOLDS else 0
        n = len(levels)
        super().__init__(
            {
                "i": In(stream.Signature(data.ArrayLayout(shape_of(in_type), n))),
                "o": Out(stream.Signature(data.ArrayLayout(shape_of(out_type), n))),
            }
        )

    @property
    def latency(self) -> int:
        return self.search_stages + 1 if self.search_stages else 2

    @property
    def comparators(self) -> int:
        """Comparators built: one per threshold (bank), one per stage (search)."""
        if self.search_stages:
            return self.search_stages * sum(1 for ts in self.thresholds if ts)
        return sum(len(ts) for ts in self.thresholds)

    def elaborate(self, platform):
        m = Module()
        advance = pipeline_control(m, self.i, self.o, self.latency)
        regs = StageRegisters(advance)
        out_shape = shape_of(self.out_type)
        width = out_shape.width
        outs = []
        for k, (ts, ls) in enumerate(zip(self.thresholds, self.levels, strict=True)):
            x = self.i.payload[k]
            if not ts:
                outs.append(Const(ls[0], out_shape))
                continue
            if self.search_stages:
                count = self._search(m, regs, x, ts, k)
            else:
                code = regs.register(Cat(*[x >= t for t in ts]), name=f"code_{k}")
                count = _thermometer_count(code, len(ts))
            step = ls[1] - ls[0]
            if all(ls[j] == ls[0] + step * j for j in range(len(ls))):
                level: Value = Const(ls[0], out_shape) + count * step
            else:
                level = Array([Const(v, out_shape) for v in ls])[count]
            outs.append(level)
        out = Cat(*[Value.cast(v).as_unsigned()[:width] for v in outs])
        out = regs.register(out, name="levels")
        regs.emit(m)
        m.d.comb += self.o.payload.eq(out)
        return m

    def _search(
        self, m: Module, regs: StageRegisters, x: Value, ts: tuple[int, ...], k: int
    ) -> Value:
        """The count of thresholds <= x by a pipelined binary search (registered stages)."""
        stages = self.search_stages
        never = self.in_type.max_int + 1  # padding: never reached
        padded = list(ts) + [never] * ((1 << stages) - 1 - len(ts))
        compare = signed(self.in_type.width + (1 if self.in_type.signed else 2))  # holds `never`
        prefix: Value = Const(0, 0)
        for stage in range(stages):
            step = 1 << (stages - 1 - stage)
            table = [padded[((p << 1) | 1) * step - 1] for p in range(1 << stage)]
            if stage == 0:
                bound: Value = Const(table[0], compare)
            elif len(table) <= ARRAY_TABLE:
                bound = Array([Const(t, compare) for t in table])[prefix]
            else:  # a ROM: one read cell instead of a mux per entry (elaboration time)
                rom = memory.Memory(shape=compare, depth=len(table), init=table)
                m.submodules[f"table_{k}_{stage}"] = rom
                port = rom.read_port(domain="comb")
                m.d.comb += port.addr.eq(prefix)
                bound = port.data
            bit = x >= bound
            prefix = regs.register(Cat(bit, prefix), name=f"prefix_{k}_{stage}")
            if stage < stages - 1:
                x = regs.register(x, name=f"x_{k}_{stage}")
        return prefix


def _thermometer_count(code: Value, n: int) -> Value:
    """The number of ones of a thermometer code (``code[0]`` set first), in binary."""

    def t(i: int) -> Value:  # 1-based; beyond the code: 0
        return code[i - 1] if i <= n else Const(0, 1)

    bits = []
    for j in range(n.bit_length()):
        terms = [t(q << j) & ~t((q + 1) << j) for q in range(1, (n >> j) + 1, 2)]
        bits.append(Cat(*terms).any() if len(terms) > 1 else terms[0])
    return Cat(*bits)
