"""A threshold bank taking its vector in beats (`threshold.BeatThresholdBank`) as Verilog text.

Why text: Amaranth's netlist of SVHN's bn_dense_1 in 4 beats (16 lanes x 63 thresholds, the
bounds picked by the beat) took ~2 s of the lut-style dense design's top (docs/NOTES.md,
issue 18), and a bank elaborated in the top was flattened into it, so Yosys could not map it
apart as it maps a `ThresholdBank`'s text module (`bank_verilog.KEEP_HIERARCHY`).

`beat_bank_verilog(bank, name)` is the whole component as one module with the ports
`rtlgen.emit.component_verilog` gives the Amaranth version, the same registers under the same
names (``valid_<k>``, ``beat`` and its delays ``beat_d<k>``, ``code_<lane>`` or
``segment_<lane>``, ``ordered_<lane>_d``, ``fine_<lane>``, ``segment_<lane>_d``, then
``levels``), the same clock enable, resets (the valid bits and the beat counter, synchronous)
and initial values (0), and the same logic: a bound the lane's elements share as
`threshold._unsigned_at_least`'s LUT logic, a bound the beat picks as ``>=`` against a case of
constants (0 beyond the last beat, as Amaranth's ``Array``), the fine table as a case indexed
by ``{beat, segment}``, thermometer counts as `threshold._thermometer_count`, levels as
``first + count * step`` or a case of constants, picked by the delayed beat where the lane's
elements' levels differ. tests/layers/test_beat_bank_verilog.py proves the two equivalent with
Yosys. The module is marked ``keep_hierarchy`` as `bank_verilog`'s, and Verilator reads a view
of its own (`mac_verilog.two_views`; stage 1 also recomputed when the beat moves): see its
module doc.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .bank_verilog import BankText, _at_least, _compare, _thermometer
from .mac_verilog import _hex
from .threshold import segment_bits

if TYPE_CHECKING:
    from .threshold import BeatThresholdBank


def supported(bank: BeatThresholdBank) -> bool:
    """Whether `beat_bank_verilog` writes ``bank``: always (its tables are cases of
    constants, never a ROM)."""
    return True


class _Writer(BankText):
    """The text of one bank (`BankText`'s pieces, and the beat counter's width)."""

    bank: BeatThresholdBank

    def __init__(self, bank: BeatThresholdBank):
        super().__init__(bank)
        self.beat_width = (max(bank.beats, 2) - 1).bit_length()

    def picked(self, name: str, bits: str, bounds: list[int]) -> tuple[str, str]:
        """`BeatThresholdBank._picked`: ``bits >= bounds[beat]`` (ordered bounds), and the
        same for Verilator's view (`bank_verilog._compare`)."""
        distinct = list(dict.fromkeys(bounds))
        if len(distinct) == 1:
            t = distinct[0]
            return _at_least(bits, self.in_width, t), _compare(bits, self.in_width, t)
        width = max(t.bit_length() for t in bounds)
        bound = self.case(name, width, "beat", [_hex(t, width) for t in bounds])
        return f"({bits} >= {bound})", f"({bits} >= {bound})"

    def compares(self, bits: list[tuple[str, str]]) -> tuple[str, str]:
        """The concatenations of `picked`'s pairs: (synthesis, Verilator's view)."""
        return self.concat([b for b, _ in bits]), self.concat([s for _, s in bits])

    def search(
        self, lane: int, bits: str, bounds_by_beat: list[tuple[int, ...]]
    ) -> tuple[str, int]:
        """`BeatThresholdBank._search`: (expression, width) of the count (two stages)."""
        count = len(bounds_by_beat[0])
        f = segment_bits(count)
        size = 1 << f
        segments = (count >> f) + 1
        segment, segment_width = "", 0
        if segments > 1:
            compares = [
                self.picked(f"bound_{lane}_{j}", bits, [ts[j * size - 1] for ts in bounds_by_beat])
                for j in range(1, segments)
            ]
            code = self.wire(f"coarse_{lane}", segments - 1, *self.compares(compares))
            segment_width = (segments - 1).bit_length()
            segment = self.reg(
                f"segment_{lane}", segment_width, self.concat(_thermometer(code, segments - 1))
            )
        delayed_bits = self.reg(f"ordered_{lane}_d", self.in_width, bits)
        fine = min(size - 1, count)
        never = 1 << self.in_width
        rows = []
        for b in range(1 << self.beat_width):
            ts = bounds_by_beat[min(b, self.bank.beats - 1)]
            for s in range(1 << segment_width):
                s = min(s, segments - 1)
                rows.append(
                    [ts[s * size + i] if s * size + i < count else never for i in range(fine)]
                )
        elem = max(t.bit_length() for row in rows for t in row)
        if len({tuple(row) for row in rows}) == 1:
            compared = [_hex(t, elem) for t in rows[0]]
        else:
            words = [sum(t << (i * elem) for i, t in enumerate(row)) for row in rows]
            index = "{beat_d1, " + segment + "}" if segment else "beat_d1"
            table = self.case(
                f"table_{lane}", elem * fine, index, [_hex(w, elem * fine) for w in words]
            )
            compared = [f"{table}[{(i + 1) * elem - 1}:{i * elem}]" for i in range(fine)]
        code = self.reg(
            f"fine_{lane}", fine, self.concat([f"({delayed_bits} >= {b})" for b in compared])
        )
        low = self.concat(_thermometer(code, fine))
        if segments == 1:
            return low, fine.bit_length()
        delayed = self.reg(f"segment_{lane}_d", segment_width, segment)
        return f"{{{delayed}, {low}}}", fine.bit_length() + segment_width

    def lane(self, lane: int) -> str:
        """The expression of ``lane``'s level (``out_width`` bits) before the last register."""
        bank = self.bank
        w, ow = self.in_width, self.out_width
        ts_by_beat, ls_by_beat = bank.lane_thresholds[lane], bank.lane_levels[lane]
        x = f"i__payload[{(lane + 1) * w - 1}:{lane * w}]"
        offset = 1 << (w - 1) if self.in_signed else 0
        bits = self.wire(f"ordered_{lane}", w, f"{x} ^ {_hex(offset, w)}" if offset else x)
        bounds_by_beat = [tuple(t + offset for t in ts) for ts in ts_by_beat]
        thresholds = len(ts_by_beat[0])
        if not thresholds:
            count, count_width = "1'h0", 1
        elif bank.bank.two_level:
            count, count_width = self.search(lane, bits, bounds_by_beat)
        else:
            compares = [
                self.picked(f"bound_{lane}_{k}", bits, [ts[k] for ts in bounds_by_beat])
                for k in range(thresholds)
            ]
            code = self.reg(f"code_{lane}", thresholds, *self.compares(compares))
            count, count_width = (
                self.concat(_thermometer(code, thresholds)),
                thresholds.bit_length(),
            )
        counted = self.wire(f"count_{lane}", count_width, count)
        tables = list(dict.fromkeys(ls_by_beat))  # each distinct level table once
        levels = []
        for index, ls in enumerate(tables):
            step = ls[1] - ls[0] if len(ls) > 1 else 0
            name = f"level_{lane}_{index}"
            if all(ls[j] == ls[0] + step * j for j in range(len(ls))):
                # the low bits of first + count * step (any width holding them: modulo 2**ow)
                width = max(ow, count_width)
                value = f"{_hex(ls[0], width)} + {counted} * {_hex(step, width)}"
                levels.append(f"{self.wire(name, width, value)}[{ow - 1}:0]")
            else:
                levels.append(self.case(name, ow, counted, [_hex(v, ow) for v in ls]))
        if len(levels) == 1:
            return levels[0]
        level_beat = f"beat_d{bank.latency - 1}"
        return self.case(
            f"level_{lane}", ow, level_beat, [levels[tables.index(ls)] for ls in ls_by_beat]
        )

    def text(self, name: str) -> str:
        bank = self.bank
        latency, bw = bank.latency, self.beat_width
        # the beat's delays first (`StageRegisters.delay`: shared by the levels and search)
        previous = "beat"
        for k in range(1, latency):
            previous = self.reg(f"beat_d{k}", bw, previous)
        outs = [self.lane(lane) for lane in range(bank.lanes)]
        self.reg("levels", bank.lanes * self.out_width, self.concat(outs))
        last = _hex(bank.beats - 1, bw)
        counter = (
            "  always @(posedge clk)",
            "    if (rst)",
            f"      beat <= {_hex(0, bw)};",
            "    else if (i__valid & i__ready)",
            f"      beat <= (beat == {last}) ? {_hex(0, bw)} : beat + {_hex(1, bw)};",
        )
        beat = (f"  reg [{bw - 1}:0] beat = {_hex(0, bw)};",)
        watched = ("{beat, i__payload}", bw + bank.lanes * self.in_width)  # stage 1 reads both
        return self.module(name, bank.lanes, latency, decls=beat, logic=counter, watched=watched)


def beat_bank_verilog(bank: BeatThresholdBank, name: str) -> str:
    """The Verilog module ``name`` of ``bank`` (see the module doc)."""
    return _Writer(bank).text(name)
