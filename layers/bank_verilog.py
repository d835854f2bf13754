"""A threshold bank (`threshold.ThresholdBank`) as Verilog text, straight from its thresholds.

Why text: Amaranth's per-bit netlist, its RTLIL and Yosys' ``write_verilog`` took 1-4 s per
bank of the SVHN CNN (64 channels x 63 thresholds: ~900 comparators), most of the Verilog
generation time of a design with such banks once the MAC arrays were text
(`mac_verilog`). The bank is a fixed structure, so writing it is a loop over its channels.

`bank_verilog(bank, name)` is the whole component as one module with the ports
`rtlgen.emit.component_verilog` gives the Amaranth version (``clk``, ``rst``, ``i__payload``,
``i__valid``, ``i__ready``, ``o__payload``, ``o__valid``, ``o__ready``), the same registers
under the same names (``valid_<k>``, ``code_<c>`` or ``segment_<c>``, ``x_<c>``,
``fine_<c>``, ``segment_<c>_d``, then ``levels``), the same clock enable (``advance =
~o.valid | o.ready``), reset (valid bits only, synchronous) and initial values (0), and the
same logic: the coarse comparators as `threshold._unsigned_at_least`'s LUT logic (no
``>=``, which Yosys would make a carry chain), the fine ones as ``>=`` against the segment's
bounds from a case of constants, thermometer counts as `threshold._thermometer_count`, and a
case of constants (0 beyond the last, as Amaranth's ``Array``) or ``first + count * step``
for the levels. tests/layers/test_bank_verilog.py proves the two equivalent with Yosys.
A two-level bank whose fine table is a ROM (more than `threshold.ARRAY_TABLE` segments) is
not written as text (`supported`): Amaranth converts it as before.

Verilator reads a second view of the body (`mac_verilog.two_views`, `BankText`): each stage
computed only when what it reads changed, its coarse comparators as plain ``>=``
(`_compare`: one comparison, where the LUT logic is ``width`` terms).

The module is marked ``(* keep_hierarchy = "yes" *)`` (`KEEP_HIERARCHY`): Yosys then maps it
by itself (ABC9 runs per module) although ``synth_xilinx -flatten`` flattens the rest.
ABC9 maps for the best delay and then recovers area on every path up to the *design's*
critical delay, so in a whole design whose critical delay lies elsewhere (long carry
chains) the bank's comparators became ripple chains of LUT2/LUT3s: the default SVHN design
measured 8 LUT levels ending in a bank's coarse stage, the bank alone 5; the same bank
beside an unrelated chain of adders measures 8 flattened and 5 kept
(benchmarks/bench_threshold_bank.py ``--beside-adders``). Its ports are registers or
comparator inputs, so nothing is lost by not optimizing across them. `rtlgen.synth`
flattens the mapped design before counting (and removes the mark before synthesizing
simulation netlists).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .mac_verilog import StagedText, _hex, module_head
from .threshold import ARRAY_TABLE, segment_bits

#: the attribute line before the module: mapped apart from the design (see the module doc)
KEEP_HIERARCHY = '(* keep_hierarchy = "yes" *)'

if TYPE_CHECKING:
    from .threshold import BeatThresholdBank, ThresholdBank


def supported(bank: ThresholdBank) -> bool:
    """Whether `bank_verilog` writes ``bank`` (every bank but one with a ROM fine table)."""
    if not bank.two_level:
        return True
    return all(
        (len(ts) >> segment_bits(len(ts))) + 1 <= ARRAY_TABLE for ts in bank.thresholds if ts
    )


def _count_bits(n: int) -> int:
    """Width of `threshold._thermometer_count` of an ``n``-bit code."""
    return n.bit_length()


def _thermometer(code: str, n: int) -> list[str]:
    """`threshold._thermometer_count` of the ``n``-bit ``code`` (a signal name): one
    expression per result bit, least significant first."""

    def t(i: int) -> str | None:  # 1-based; beyond the code: 0 (None)
        return f"{code}[{i - 1}]" if i <= n else None

    bits = []
    for j in range(n.bit_length()):
        terms = []
        for q in range(1, (n >> j) + 1, 2):
            one, zero = t(q << j), t((q + 1) << j)
            terms.append(one if zero is None else f"({one} & ~{zero})")
        bits.append(terms[0] if len(terms) == 1 else "|{" + ", ".join(terms) + "}")
    return bits


def _at_least(bits: str, width: int, t: int) -> str:
    """`threshold._unsigned_at_least` of the unsigned ``bits`` (a ``width``-bit signal)."""
    if t <= 0:
        return "1'h1"
    if t >= 1 << width:
        return "1'h0"
    terms = [f"({bits} == {_hex(t, width)})"]
    for i in range(width):
        if not (t >> i) & 1:
            if i + 1 < width:
                high = width - 1 - i
                above = f"({bits}[{width - 1}:{i + 1}] == {_hex(t >> (i + 1), high)})"
                terms.append(f"({bits}[{i}] & {above})")
            else:
                terms.append(f"{bits}[{i}]")
    return "|{" + ", ".join(terms) + "}"


def _compare(bits: str, width: int, t: int) -> str:
    """`_at_least` as one ``>=`` (Verilator's view: one comparison instead of ``width`` terms)."""
    if t <= 0:
        return "1'h1"
    if t >= 1 << width:
        return "1'h0"
    return f"({bits} >= {_hex(t, width)})"


def _signed(name: str, is_signed: bool) -> str:
    """``name`` as an exact signed operand (an unsigned one gains a 0 sign bit)."""
    return f"$signed({name})" if is_signed else f"$signed({{1'b0, {name}}})"


class BankText(StagedText):
    """The pieces of a bank module's text (`bank_verilog`, `beat_bank_verilog`),
    `mac_verilog.StagedText`'s, its input (``i__payload`` and any ``beat`` counter) stage 0."""

    def __init__(self, bank: ThresholdBank | BeatThresholdBank):
        super().__init__(("i__payload", "beat"))
        self.bank = bank
        self.in_width = bank.in_type.width
        self.in_signed = bank.in_type.signed
        self.out_width = bank.out_type.width

    def module(
        self,
        name: str,
        lanes: int,
        latency: int,
        decls: tuple[str, ...] = (),
        logic: tuple[str, ...] = (),
        watched: tuple[str, int] | None = None,
    ) -> str:
        """The whole module ``name`` (kept apart): its ports for ``lanes`` lanes, ``decls``
        (further declaration lines) and `StagedText.views` with ``logic`` (further lines) and
        ``o__payload = levels`` before the assignments (``watched``: what stage 1 reads, by
        default ``i__payload``)."""
        in_bits = lanes * self.in_width
        first = (*logic, "  assign o__payload = levels;")
        lines = [
            KEEP_HIERARCHY,
            *module_head(name, in_bits, lanes * self.out_width, latency),
            *decls,
            *self.views(latency, watched or ("i__payload", in_bits), first=first),
            "endmodule",
        ]
        return "\n".join(lines) + "\n"


class _Writer(BankText):
    bank: ThresholdBank

    def count(self, k: int, x: str, ts: tuple[int, ...]) -> tuple[str, int]:
        """(expression, width) of the number of thresholds <= x (registered stages)."""
        if not self.bank.two_level:
            compares = [f"({_signed(x, self.in_signed)} >= {self.const(t)})" for t in ts]
            code = self.reg(f"code_{k}", len(ts), "{" + ", ".join(reversed(compares)) + "}")
            return self.concat(_thermometer(code, len(ts))), _count_bits(len(ts))
        return self.search(k, x, ts)

    def const(self, t: int) -> str:
        width = max(t.bit_length(), (-t - 1).bit_length()) + 1  # a signed constant holding t
        return f"$signed({_hex(t, width)})"

    def search(self, k: int, x: str, ts: tuple[int, ...]) -> tuple[str, int]:
        """`ThresholdBank._search`: coarse comparators, then the chosen segment's."""
        count = len(ts)
        f = segment_bits(count)
        size = 1 << f
        segments = (count >> f) + 1
        coarse = [ts[j * size - 1] for j in range(1, segments)]
        w = self.in_width
        segment, segment_width = "", 0
        if coarse:
            offset = 1 << (w - 1) if self.in_signed else 0
            ordered = f"{x} ^ {_hex(offset, w)}" if self.in_signed else x
            bits = self.wire(f"ordered_{k}", w, ordered)
            compares = [_at_least(bits, w, t + offset) for t in coarse]
            fast = [_compare(bits, w, t + offset) for t in coarse]
            code = self.wire(f"coarse_{k}", len(coarse), self.concat(compares), self.concat(fast))
            segment_width = _count_bits(len(coarse))
            segment = self.reg(
                f"segment_{k}", segment_width, self.concat(_thermometer(code, len(coarse)))
            )
        xr = self.reg(f"x_{k}", w, x)
        fine = min(size - 1, count)
        never = self.bank.in_type.max_int + 1
        cw = w + (1 if self.in_signed else 2)  # `compare`: holds `never`
        table = [
            [ts[s * size + i] if s * size + i < count else never for i in range(fine)]
            for s in range(segments)
        ]
        x_op = _signed(xr, self.in_signed)
        if segments == 1:
            bounds = [f"$signed({_hex(t, cw)})" for t in table[0]]
        else:
            words = [
                sum((t & ((1 << cw) - 1)) << (i * cw) for i, t in enumerate(row)) for row in table
            ]
            word = self.case(f"table_{k}", cw * fine, segment, [_hex(w, cw * fine) for w in words])
            bounds = [f"$signed({word}[{(i + 1) * cw - 1}:{i * cw}])" for i in range(fine)]
        compares = [f"({x_op} >= {b})" for b in bounds]
        code = self.reg(f"fine_{k}", fine, self.concat(compares))
        low = self.concat(_thermometer(code, fine))
        low_width = _count_bits(fine)
        if segments == 1:
            return low, low_width
        delayed = self.reg(f"segment_{k}_d", segment_width, segment)
        return f"{{{delayed}, {low}}}", low_width + segment_width

    def text(self, name: str) -> str:
        bank = self.bank
        n = len(bank.levels)
        w, ow = self.in_width, self.out_width
        latency = bank.latency
        levels = []
        for k, (ts, ls) in enumerate(zip(bank.thresholds, bank.levels, strict=True)):
            if not ts:
                levels.append(_hex(ls[0], ow))
                continue
            x = self.wire(f"in_{k}", w, f"i__payload[{(k + 1) * w - 1}:{k * w}]")
            count, count_width = self.count(k, x, ts)
            counted = self.wire(f"count_{k}", count_width, count)
            step = ls[1] - ls[0]
            if all(ls[j] == ls[0] + step * j for j in range(len(ls))):
                # the low bits of first + count * step (any width holding them: modulo 2**ow)
                width = max(ow, count_width)
                value = f"{_hex(ls[0], width)} + {counted} * {_hex(step, width)}"
                level = self.wire(f"level_{k}", width, value)
                levels.append(f"{level}[{ow - 1}:0]")
            else:
                levels.append(self.case(f"level_{k}", ow, counted, [_hex(v, ow) for v in ls]))
        self.reg("levels", n * ow, self.concat(levels))
        return self.module(name, n, latency)


def bank_verilog(bank: ThresholdBank, name: str) -> str:
    """The Verilog module ``name`` of ``bank`` (see the module doc)."""
    if not supported(bank):
        raise ValueError("a bank with a ROM fine table is converted by Amaranth")
    return _Writer(bank).text(name)
