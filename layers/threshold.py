"""Multi-threshold activation: per element, constant comparators and a level table."""

from __future__ import annotations

from collections.abc import Sequence

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from rtlgen.quant.errors import RtlgenError
from rtlgen.quant.fixed import FixedType

from .common import shape_of
from .stream_util import StageRegisters, pipeline_control

#: above this many thresholds in an element, a two-level search replaces the bank of constant
#: comparators (about ``2 * sqrt(count)`` comparators instead of ``count``, latency 3)
BANK_MAX_THRESHOLDS = 7
#: fine tables of more segments than this are a ROM (one wide word per segment), fewer a mux
#: of constants
ARRAY_TABLE = 16


def segment_bits(count: int) -> int:
    """Bits ``f`` of the segment size ``2**f`` of a two-level search over ``count``
    thresholds: the fewest comparators, ``count >> f`` coarse ones (every ``2**f``-th
    threshold) plus ``min(2**f - 1, count)`` fine ones (the rest of the chosen segment);
    on a tie the smaller segment (fewer comparators whose bound comes from a table)."""
    costs = [((count >> f) + min((1 << f) - 1, count), f) for f in range(1, count.bit_length() + 1)]
    return min(costs)[1]


class ThresholdBank(wiring.Component):
    """``out[c] = levels[c][#{k: x[c] >= thresholds[c][k]}]`` for each of ``n`` elements.

    ``thresholds[c]``: non-decreasing input mantissas inside ``(in_type.min_int,
    in_type.max_int]`` (`rtlgen.quant.threshold.Thresholds` without its padding; repeats
    count once each); ``levels[c]``: ``len(thresholds[c]) + 1`` output mantissas of
    ``out_type``. Bit-exact with `rtlgen.quant.threshold.threshold_reference`.

    Hardware per element, when no element has more than `BANK_MAX_THRESHOLDS` thresholds:
    one comparator with a constant per threshold (sorted thresholds give a thermometer
    code), registered; the code's count in binary (bit j is an OR over odd q of ``t[q *
    2**j] & ~t[(q + 1) * 2**j]``: no adder tree). Otherwise a two-level search per element
    with ``count`` thresholds and segments of ``F = 2**f`` counts (`segment_bits`):
    stage 1 compares the input with every ``F``-th threshold (constants, in parallel): the
    segment ``s = count >> f``, registered with the input; stage 2 compares the input with
    the segment's ``F - 1`` other thresholds, read from a per-segment constant table (a mux
    of constants, a ROM above `ARRAY_TABLE` segments), registered as a thermometer code;
    the count is ``s * F`` + the code's count (a concatenation). 63 thresholds: 7 + 7
    comparators; 255: 15 + 15. Then the level: ``base + step * count`` when the levels are
    evenly spaced (a quantizer's usual case), else a constant table indexed by the count;
    registered.

    Contract: one vector per cycle (II = 1); ``latency`` 2 (bank) or 3 (two-level search),
    the same for every element; ``o.ready`` low freezes the pipeline
    (`stream_util.pipeline_control`); payload widths: ``n`` x ``in_type`` in, ``n`` x
    ``out_type`` out.
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
            if any(b < a for a, b in zip(ts, ts[1:], strict=False)):
                raise RtlgenError(
                    "ThresholdBank: thresholds must be in increasing order (repeats allowed)"
                )
            if ts and not in_type.min_int < ts[0] <= ts[-1] <= in_type.max_int:
                raise RtlgenError(f"ThresholdBank: a threshold lies outside {in_type}'s range")
            if any(not out_type.min_int <= v <= out_type.max_int for v in ls):
                raise RtlgenError(f"ThresholdBank: a level is not a mantissa of {out_type}")
        self.in_type, self.out_type = in_type, out_type
        self.thresholds = [tuple(int(t) for t in ts) for ts in thresholds]
        self.levels = [tuple(int(v) for v in ls) for ls in levels]
        most = max((len(ts) for ts in self.thresholds), default=0)
        #: a two-level search (latency 3) rather than a comparator per threshold (latency 2)
        self.two_level = most > BANK_MAX_THRESHOLDS
        n = len(levels)
        super().__init__(
            {
                "i": In(stream.Signature(data.ArrayLayout(shape_of(in_type), n))),
                "o": Out(stream.Signature(data.ArrayLayout(shape_of(out_type), n))),
            }
        )

    @property
    def latency(self) -> int:
        return self.latency_for(max((len(ts) for ts in self.thresholds), default=0))

    @staticmethod
    def latency_for(most_thresholds: int) -> int:
        """The latency of a bank whose largest element has ``most_thresholds`` thresholds."""
        return 3 if most_thresholds > BANK_MAX_THRESHOLDS else 2

    @property
    def comparators(self) -> int:
        """Comparators built: one per threshold (bank); coarse + fine (two-level search)."""
        if not self.two_level:
            return sum(len(ts) for ts in self.thresholds)
        total = 0
        for ts in self.thresholds:
            if ts:
                f = segment_bits(len(ts))
                total += (len(ts) >> f) + min((1 << f) - 1, len(ts))
        return total

    @property
    def conversion_cost(self) -> int:
        """Comparator bits: what the Verilog back end's time grows with (`rtlgen.emit`)."""
        return self.comparators * self.in_type.width

    def elaborate(self, platform):
        from . import bank_verilog, mac_verilog

        text_modules = mac_verilog.active()
        if text_modules is not None and bank_verilog.supported(self):
            # Verilog emission: an instance of the same logic written as text
            return text_modules.instance_of(self, bank_verilog.bank_verilog, "bank")
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
            if self.two_level:
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
        """The count of thresholds <= x by a two-level search (two registered stages)."""
        count = len(ts)
        f = segment_bits(count)
        size = 1 << f
        segments = (count >> f) + 1
        # stage 1: every `size`-th threshold; x >= ts[j * size - 1] <=> count >= j * size
        coarse = [ts[j * size - 1] for j in range(1, segments)]
        if coarse:
            code = Signal(len(coarse), name=f"coarse_{k}")  # a signal: each bit built once
            ordered, offset = _ordered_bits(x)
            bits = Signal(len(x), name=f"ordered_{k}")  # shared by the comparators
            m.d.comb += [
                bits.eq(ordered),
                code.eq(Cat(*[_unsigned_at_least(bits, t + offset) for t in coarse])),
            ]
            segment: Value = regs.register(
                _thermometer_count(code, len(coarse)), name=f"segment_{k}"
            )
        else:
            segment = Const(0, 0)
        x = regs.register(x, name=f"x_{k}")
        # stage 2: the segment's other thresholds (padding beyond the last: never reached)
        fine = min(size - 1, count)
        never = self.in_type.max_int + 1
        compare = signed(self.in_type.width + (1 if self.in_type.signed else 2))  # holds `never`
        table = [
            [ts[s * size + i] if s * size + i < count else never for i in range(fine)]
            for s in range(segments)
        ]
        if segments == 1:
            bounds = [Const(t, compare) for t in table[0]]
        else:
            layout = data.ArrayLayout(compare, fine)
            words = [layout.const(row).as_value() for row in table]
            word = Signal(layout.size, name=f"table_{k}")
            if segments <= ARRAY_TABLE:
                # through a signal: an indexed Array distributes every later operation over
                # its entries (a comparator per entry and bound)
                m.d.comb += word.eq(Array(words)[segment])
            else:  # a ROM: one read cell instead of a mux per entry (elaboration time)
                rom = memory.Memory(
                    shape=layout.size, depth=segments, init=[w.value for w in words]
                )
                m.submodules[f"table_{k}"] = rom
                port = rom.read_port(domain="comb")
                m.d.comb += [port.addr.eq(segment), word.eq(port.data)]
            view = data.View(layout, word)
            bounds = [view[i] for i in range(fine)]
        return _fine_count(regs, [x >= b for b in bounds], segments, segment, k)


def _fine_count(regs, compares: list, segments: int, segment: Value, k: int) -> Value:
    """The two-level search's last stage: the fine comparisons registered and counted, and
    the segment (registered alongside) above them: ``segment * size + low``."""
    code = regs.register(Cat(*compares), name=f"fine_{k}")
    low = _thermometer_count(code, len(compares))
    if segments == 1:
        return low
    segment = regs.register(segment, name=f"segment_{k}_d")
    return Cat(low, segment)  # count = segment * size + low (low has f bits)


def _thermometer_count(code: Value, n: int) -> Value:
    """The number of ones of a thermometer code (``code[0]`` set first), in binary."""

    def t(i: int) -> Value:  # 1-based; beyond the code: 0
        return code[i - 1] if i <= n else Const(0, 1)

    bits = []
    for j in range(n.bit_length()):
        terms = [t(q << j) & ~t((q + 1) << j) for q in range(1, (n >> j) + 1, 2)]
        bits.append(Cat(*terms).any() if len(terms) > 1 else terms[0])
    return Cat(*bits)


def _ordered_bits(x: Value) -> tuple[Value, int]:
    """``x``'s bits in the order of unsigned numbers (a signed value in offset binary:
    flipping the sign bit keeps the order) and the offset that maps a constant alike."""
    width = len(x)
    if x.shape().signed:
        return x.as_unsigned() ^ (1 << (width - 1)), 1 << (width - 1)
    return x.as_unsigned(), 0


def _at_least(x: Value, t: int) -> Value:
    """``x >= t`` for a constant ``t``, as LUT logic: ``x == t``, or ``x`` has a one where
    ``t`` has a zero and equals ``t`` above it. Written as ``x >= t``, Yosys builds a carry
    chain per comparator, and ABC9 lines up 4-6 LUTs before and after the chains of a bank's
    parallel comparators (6 levels measured in the coarse stage of a 42 x 63 bank).
    Comparators of one input should share its ordered bits (`_ordered_bits` into a signal,
    then `_unsigned_at_least`): as an expression they are rebuilt at every slice."""
    bits, offset = _ordered_bits(x)
    return _unsigned_at_least(bits, t + offset)


def _unsigned_at_least(bits: Value, t: int) -> Value:
    """`_at_least` of the unsigned ``bits`` (ordered, see `_ordered_bits`) and ``t``."""
    width = len(bits)
    if t <= 0:
        return Const(1, 1)
    if t >= 1 << width:
        return Const(0, 1)
    terms = [bits == t]
    for i in range(width):
        if not (t >> i) & 1:
            terms.append(bits[i] & (bits[i + 1 :] == t >> (i + 1)) if i + 1 < width else bits[i])
    return Cat(*terms).any()


class _BankInBeats(wiring.Component):
    """A `ThresholdBank`'s ``n`` elements taken in ``beats`` beats of ``lanes = n / beats``
    consecutive elements: the ports and the bank's latency (`ChunkedThresholdBank`,
    `BeatThresholdBank`)."""

    def __init__(self, bank: ThresholdBank, beats: int):
        n = len(bank.levels)
        if beats < 1 or n % beats:
            raise RtlgenError(
                f"{type(self).__name__}: {n} elements do not split into {beats} equal beats"
            )
        self.bank, self.beats, self.lanes = bank, beats, n // beats
        self.in_type, self.out_type = bank.in_type, bank.out_type
        super().__init__(
            {
                "i": In(stream.Signature(data.ArrayLayout(shape_of(bank.in_type), self.lanes))),
                "o": Out(stream.Signature(data.ArrayLayout(shape_of(bank.out_type), self.lanes))),
            }
        )

    @property
    def latency(self) -> int:
        return self.bank.latency


class ChunkedThresholdBank(_BankInBeats):
    """A `ThresholdBank` of ``n`` elements taking its vector in ``beats`` beats of ``n /
    beats`` consecutive elements (a time-multiplexed dense's result beats,
    `serial_mac.SerialMatVec` ``out_beats``) and passing them on as they come.

    Every element's comparators are the bank's (constants per element): element ``c``
    compares input lane ``c % (n / beats)`` on every beat, and the output lanes are the
    levels of the beat's elements, picked by a count of the output beats taken (beats
    leave in order). So it costs the whole bank plus an ``beats``-way mux per output lane
    after the bank's output register, and no cycle. The planner builds a
    `BeatThresholdBank` instead (one beat's comparators: fewer LUTs, FFs and LUT levels in
    every case measured, benchmarks/results/threshold_bank.json); this is its baseline.

    Contract: one beat per cycle (II = 1), ``latency`` the bank's; ``o.ready`` low freezes
    it (the bank's `pipeline_control`); payload ``n / beats`` x ``in_type`` in, ``n / beats``
    x ``out_type`` out.
    """

    @property
    def comparators(self) -> int:
        return self.bank.comparators

    @property
    def conversion_cost(self) -> int:
        return self.bank.conversion_cost

    def elaborate(self, platform):
        m = Module()
        m.submodules.bank = bank = self.bank
        lanes, n = self.lanes, self.lanes * self.beats
        beat = Signal(range(max(self.beats, 2)))  # the output beat shown
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += beat.eq(Mux(beat == self.beats - 1, 0, beat + 1))
        m.d.comb += [
            bank.i.valid.eq(self.i.valid),
            self.i.ready.eq(bank.i.ready),
            self.o.valid.eq(bank.o.valid),
            bank.o.ready.eq(self.o.ready),
        ]
        m.d.comb += [bank.i.payload[c].eq(self.i.payload[c % lanes]) for c in range(n)]
        for lane in range(lanes):
            choices = Array(bank.o.payload[k * lanes + lane] for k in range(self.beats))
            m.d.comb += self.o.payload[lane].eq(choices[beat])
        return m


class BeatThresholdBank(_BankInBeats):
    """A `ThresholdBank` of ``n`` elements taking its vector in ``beats`` beats of ``lanes =
    n / beats`` consecutive elements (as `ChunkedThresholdBank`), built for one beat: lane
    ``l`` compares its input with the thresholds of element ``b * lanes + l`` of the beat
    ``b`` it carries, and gives that element's level. Same levels as the bank, element for
    element.

    The beat index counts the input beats taken (beats arrive in order from beat 0) and
    travels with the data through the pipeline registers. Per lane, the elements'
    thresholds are padded to the lane's largest count with thresholds beyond the input range
    (never reached; the levels repeat the last), then: up to `BANK_MAX_THRESHOLDS`, one
    comparator per threshold whose bound the beat picks from the elements' constants
    (`_picked`); above, the two-level search of `ThresholdBank`, its coarse comparators
    picked the same way and its fine table indexed by the segment and the beat (a mux of
    constants). The level is picked by the beat where the lane's elements' levels differ.
    So a lane costs about one element's comparators of the bank, whatever the beats
    (benchmarks/results/threshold_bank.json: fewer LUTs, FFs and LUT levels than the
    `ChunkedThresholdBank` at 2, 4 and 8 beats).

    Contract: one beat per cycle (II = 1), ``latency`` the bank's (2, or 3 for the two-level
    search), ``o.ready`` low freezes it (`stream_util.pipeline_control`); payload ``lanes``
    x ``in_type`` in, ``lanes`` x ``out_type`` out. In Verilog emission it is the same logic
    written as text (`beat_bank_verilog`: a module of its own, mapped apart by Yosys).
    """

    def __init__(self, bank: ThresholdBank, beats: int):
        super().__init__(bank, beats)
        # only the bank's checked thresholds and levels are used: it is never elaborated
        bank._MustUse__used = True  # type: ignore[attr-defined]
        never = bank.in_type.max_int + 1
        #: per lane, per beat: thresholds padded to the lane's largest count, and levels
        self.lane_thresholds: list[list[tuple[int, ...]]] = []
        self.lane_levels: list[list[tuple[int, ...]]] = []
        for lane in range(self.lanes):
            elements = [b * self.lanes + lane for b in range(beats)]
            most = max(len(bank.thresholds[e]) for e in elements)
            self.lane_thresholds.append(
                [bank.thresholds[e] + (never,) * (most - len(bank.thresholds[e])) for e in elements]
            )
            self.lane_levels.append(
                [
                    bank.levels[e] + bank.levels[e][-1:] * (most - len(bank.thresholds[e]))
                    for e in elements
                ]
            )

    @property
    def comparators(self) -> int:
        """Comparators built: per lane, one per threshold (its bound a constant or picked by
        the beat) or the two-level search's coarse and fine ones."""
        total = 0
        for ts_by_beat in self.lane_thresholds:
            count = len(ts_by_beat[0])
            if count and self.bank.two_level:
                f = segment_bits(count)
                total += (count >> f) + min((1 << f) - 1, count)
            else:
                total += count
        return total

    @property
    def conversion_cost(self) -> int:
        return self.comparators * self.in_type.width

    def elaborate(self, platform):
        from . import beat_bank_verilog, mac_verilog

        # Verilog emission: an instance of the same logic written as text (mapped apart)
        text = mac_verilog.text_instance(
            self,
            BeatThresholdBank,
            beat_bank_verilog.supported,
            beat_bank_verilog.beat_bank_verilog,
            "beatbank",
        )
        if text is not None:
            return text
        m = Module()
        advance = pipeline_control(m, self.i, self.o, self.latency)
        regs = StageRegisters(advance)
        beat = Signal(range(max(self.beats, 2)), name="beat")  # of the input beat
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += beat.eq(Mux(beat == self.beats - 1, 0, beat + 1))
        out_shape = shape_of(self.out_type)
        width = out_shape.width
        level_beat = regs.delay(beat, self.latency - 1, name="beat")
        outs = []
        for lane in range(self.lanes):
            ts_by_beat, ls_by_beat = self.lane_thresholds[lane], self.lane_levels[lane]
            ordered, offset = _ordered_bits(self.i.payload[lane])
            bits = Signal(len(ordered), name=f"ordered_{lane}")  # shared by the comparators
            m.d.comb += bits.eq(ordered)
            bounds_by_beat = [tuple(t + offset for t in ts) for ts in ts_by_beat]
            if not ts_by_beat[0]:
                count: Value = Const(0, 1)
            elif self.bank.two_level:
                count = self._search(m, regs, bits, bounds_by_beat, beat, lane)
            else:
                code = Cat(
                    *[
                        self._picked(m, bits, [ts[k] for ts in bounds_by_beat], beat)
                        for k in range(len(ts_by_beat[0]))
                    ]
                )
                count = _thermometer_count(regs.register(code, name=f"code_{lane}"), len(code))
            levels = []
            for ls in dict.fromkeys(ls_by_beat):  # each distinct level table once
                step = ls[1] - ls[0] if len(ls) > 1 else 0
                if all(ls[j] == ls[0] + step * j for j in range(len(ls))):
                    level: Value = Const(ls[0], out_shape) + count * step
                else:
                    level = Array([Const(v, out_shape) for v in ls])[count]
                levels.append(Value.cast(level).as_unsigned()[:width])
            if len(levels) == 1:
                outs.append(levels[0])
            else:
                index = list(dict.fromkeys(ls_by_beat))
                picked = Signal(width, name=f"level_{lane}")
                m.d.comb += picked.eq(
                    Array([levels[index.index(ls)] for ls in ls_by_beat])[level_beat]
                )
                outs.append(picked)
        out = regs.register(Cat(*outs), name="levels")
        regs.emit(m)
        m.d.comb += self.o.payload.eq(out)
        return m

    @staticmethod
    def _picked(m: Module, bits: Value, bounds: list[int], beat: Value) -> Value:
        """``bits >= bounds[beat]`` for ordered constant bounds (`_ordered_bits`; a bound of
        ``2**len(bits)``: never). One comparator whose bound the beat picks from constants:
        a carry chain whose every bit's LUT also picks the bound's bit (SVHN bn_dense_1 in 4
        beats: 3,377 LUT and 5 levels; a comparator per beat's constant, the result picked
        after them, 4,201 and 7)."""
        distinct = list(dict.fromkeys(bounds))
        if len(distinct) == 1:
            return _unsigned_at_least(bits, distinct[0])
        width = max(t.bit_length() for t in bounds)
        bound = Signal(width, name="bound")
        m.d.comb += bound.eq(Array([Const(t, width) for t in bounds])[beat])
        return bits >= bound

    def _search(
        self,
        m: Module,
        regs: StageRegisters,
        bits: Value,
        bounds_by_beat: list[tuple[int, ...]],
        beat: Value,
        lane: int,
    ) -> Value:
        """`ThresholdBank._search` of the ordered input ``bits`` with the beat's ordered
        thresholds ``bounds_by_beat`` (two registered stages)."""
        count = len(bounds_by_beat[0])
        f = segment_bits(count)
        size = 1 << f
        segments = (count >> f) + 1
        coarse = range(1, segments)
        if coarse:
            code = Signal(len(coarse), name=f"coarse_{lane}")
            m.d.comb += code.eq(
                Cat(
                    *[
                        self._picked(m, bits, [ts[j * size - 1] for ts in bounds_by_beat], beat)
                        for j in coarse
                    ]
                )
            )
            segment: Value = regs.register(
                _thermometer_count(code, len(coarse)), name=f"segment_{lane}"
            )
        else:
            segment = Const(0, 0)
        bits = regs.register(bits, name=f"ordered_{lane}_d")
        beat = regs.delay(beat, 1, name="beat")
        fine = min(size - 1, count)
        never = 1 << len(bits)
        # rows by Cat(segment, beat); rows no input reaches repeat a reachable one
        rows = []
        for b in range(1 << len(beat)):
            ts = bounds_by_beat[min(b, self.beats - 1)]
            for s in range(1 << len(segment)):
                s = min(s, segments - 1)
                rows.append(
                    [ts[s * size + i] if s * size + i < count else never for i in range(fine)]
                )
        layout = data.ArrayLayout(max(t.bit_length() for r in rows for t in r), fine)
        if len({tuple(r) for r in rows}) == 1:
            bounds = [Const(t, layout.elem_shape) for t in rows[0]]
        else:
            word = Signal(layout.size, name=f"table_{lane}")
            # through a signal: an indexed Array distributes later operations over its entries
            m.d.comb += word.eq(
                Array([layout.const(r).as_value() for r in rows])[Cat(segment, beat)]
            )
            view = data.View(layout, word)
            bounds = [view[i] for i in range(fine)]
        return _fine_count(regs, [bits >= b for b in bounds], segments, segment, lane)
