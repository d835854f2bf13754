"""A time-multiplexed MAC (`serial_mac.SerialMatVec`) as Verilog text, straight from its schedule.

Why text: once the constant MAC arrays, threshold banks and requantizers were text
(`mac_verilog`, `bank_verilog`, `requantize_verilog`), the serial MACs of a CNN's dense
layers were the critical path of its conversion: Amaranth's per-bit netlist, RTLIL and
Yosys took 7-12 s for each of the SVHN CNN's three with ``--multiplier lut`` (issue 18:
Verilog in seconds). Their structure is fixed by the schedule (`serial_mac._schedule`), so
writing it is a loop over the columns' terms: milliseconds.

`serial_verilog(mac, name)` is the whole component as one module with the ports
`rtlgen.emit.component_verilog` gives the Amaranth version (``clk``, ``rst``, ``i__payload``,
``i__valid``, ``i__ready``, ``o__payload``, ``o__valid``, ``o__ready``), the same registers
under the same names (``primed``, ``hot``, ``word``, ``last_step``, ``last_word``, ``busy``,
``xs``, ``wrow``, ``xrow``, ``valid_w``/``first_w``/``last_w``, ``p_<o>_<a>``,
``t<level>_<o>_<a>``, ``valid_<k>``/``first_<k>``/``last_<k>``, ``acc_<o>``, ``out``,
``out_valid``, ``result_beat``; the ROM's read register drives ``rom_read__data``), the
same clock enable (``advance = ~o.valid | o.ready``), reset (the control registers only,
synchronous, to their initial values) and initial values, and the same logic as
`SerialMatVec.elaborate`: the word counter's successor tables, the input register's shift
(or rotation with result beats), the ROM (a one-hot read up to `ONE_HOT_ROM_WORDS`, a
``rom_style`` memory above, read a step ahead as block RAM above `BLOCK_ROM_WORDS`), the
digit terms (LUT: ``x``, ``2x`` or 0 per radix-4 digit of the ROM, inverted when negative)
or products (DSP/auto: ``*``), the pairwise adder tree in Amaranth's order and widths, and
the accumulator that starts from the (result beat's) `SerialMatVec.start_bias`. Operators are typed as
Amaranth types them (signed operands ``$signed``, an unsigned one beside a signed one made
signed one bit wider), so Yosys sees the same ``$add``/``$mul`` cells.
tests/layers/test_serial_mac_verilog.py proves the two equivalent with Yosys (and that a
deliberately wrong text fails the proof).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .common import Multiplier
from .mac_verilog import _alike, _hex, module_head, staged_loads, two_views
from .serial_mac import ONE_HOT_ROM_WORDS, Digit

if TYPE_CHECKING:
    from .serial_mac import SerialMatVec

#: a term of a column: (Verilog name, width, signed)
_Term = tuple[str, int, bool]


def supported(mac: SerialMatVec) -> bool:
    """Whether `serial_verilog` writes ``mac``: every configuration (one-hot, logic and
    block ROMs; one or more input or result beats; LUT or DSP products; any stages)."""
    return True


def _bit(value: bool) -> str:
    return f"1'h{int(value)}"


def _bits(width: int) -> str:
    return f"[{width - 1}:0]"


def _slice(name: str, high: int, low: int) -> str:
    return f"{name}[{high}:{low}]" if high > low else f"{name}[{low}]"


def _typed(term: _Term) -> _Term:
    """``term`` as an operand of Amaranth's signedness: ``$signed`` when signed, so that
    Verilog sign-extends it in a wider context (an assignment's, an operator's)."""
    name, width, signed = term
    return (f"$signed({name})" if signed else name), width, signed


class _Writer:
    """The text of one serial MAC: declarations, combinational assignments, registers."""

    def __init__(self, mac: SerialMatVec):
        self.mac = mac
        self.decls: list[str] = []
        self.assigns: list[str] = []
        self.resets: list[tuple[str, int, int]] = []  # (register, width, init): reset to init
        self.blocks: list[str] = []  # always blocks
        self.loads: list[str] = []  # register updates under `advance`
        # Verilator's view (`two_views`): the datapath's combinational values by the stage
        # of `staged_loads` whose registers read them ("acc": the accumulators'), their
        # values, and the adder tree's registers by stage
        self.values: dict[str, str] = {}
        self.wire_stage: dict[str, int | str] = {}
        self.tree_loads: dict[int, list[str]] = {}
        self.one_hot_read: str | None = None  # the one-hot ROM's read of wrow (`weights`)

    def reg(self, name: str, width: int, init: int = 0, reset: bool = False) -> None:
        self.decls.append(f"reg {_bits(width)} {name} = {_hex(init, width)};")
        if reset:
            self.resets.append((name, width, init))

    def wire(self, name: str, width: int, value: str, stage: int | str | None = None) -> None:
        """A combinational value; ``stage``: a datapath value of that stage (`text`)."""
        self.decls.append(f"wire {_bits(width)} {name};")
        self.assigns.append(f"assign {name} = {value};")
        if stage is not None:
            self.values[name] = value
            self.wire_stage[name] = stage

    def control(self) -> None:
        """Handshake, word counter, its tables and the input register (as the first half of
        `SerialMatVec.elaborate`)."""
        mac = self.mac
        steps, words, beat_words = mac.steps, mac.words, mac.beat_words
        chunked = mac.out_beats > 1
        word_width = (max(words, 2) - 1).bit_length()
        self.word_width = word_width
        self.reg("word", word_width, reset=True)
        self.reg("last_step", 1, int(beat_words == 1), reset=True)
        self.reg("last_word", 1, int(words == 1), reset=True)
        self.reg("busy", 1, reset=True)
        self.reg("primed", 1, int(not mac.block_rom), reset=True)
        self.decls += [
            f"reg {_bits(word_width)} successor;",
            "reg successor_ends_beat;",
            "wire start;",
            "wire step;",
        ]
        # the successor tables (with result beats: whether the word starts / ends one)
        table = ["  always @* begin", "    case (word)"]
        for s in [*range(words - 1), None]:  # None: the last word and the codes never held
            values = {
                "successor": _hex(0 if s is None else s + 1, word_width),
                "successor_ends_beat": _bit(
                    beat_words == 1 if s is None else (s + 1) % beat_words == beat_words - 1
                ),
            }
            if chunked:
                values["starts_result"] = _bit((words - 1 if s is None else s) % steps == 0)
                values["ends_result"] = _bit(s is None or mac.ends_result(s))
            label = "default" if s is None else _hex(s, word_width)
            body = " ".join(f"{name} = {value};" for name, value in values.items())
            table.append(f"      {label}: begin {body} end")
        table += ["    endcase", "  end"]
        if chunked:
            self.decls += ["reg starts_result;", "reg ends_result;"]
        self.blocks += table
        self.assigns += [
            "assign advance = ~out_valid | o__ready;",
            "assign i__ready = advance & (~busy | last_step) & primed;",
            "assign start = i__valid & i__ready;",
            f"assign step = {'busy | start' if mac.early_start else 'busy'};",
        ]
        # the input register: shifted (or rotated) a group a step
        in_width = mac.in_shape.width
        group_bits = mac.group * in_width
        xs_width = steps * mac.group * in_width
        self.group_bits = group_bits
        self.decls.append(f"reg {_bits(xs_width)} xs = {_hex(0, xs_width)};")
        pad = xs_width - mac.per_beat * in_width
        padded = f"{{{pad}'h0, i__payload}}" if pad else "i__payload"
        self.wire("padded", xs_width, padded)

        def rotate(value: str) -> str:
            if xs_width == group_bits:  # one step: a rotation is the value, a shift zero
                return value if chunked else _hex(0, xs_width)
            rest = _slice(value, xs_width - 1, group_bits)
            if chunked:
                return f"{{{_slice(value, group_bits - 1, 0)}, {rest}}}"
            return f"{{{group_bits}'h0, {rest}}}"

        last_word = f"word == {_hex(words - 2, word_width)}" if words > 1 else "1'h1"
        if mac.early_start:
            take = [
                "      if (start) begin",
                "        if (busy) begin",
                "          xs <= padded;",
                "          busy <= 1'h1;",
                "        end else begin",
                f"          xs <= {rotate('padded')};",
                "          busy <= ~last_step;",
                "        end",
                "      end",
            ]
        else:
            take = [
                "      if (start) begin",
                "        xs <= padded;",
                "        busy <= 1'h1;",
                "      end",
            ]
        self.control_block = [
            "      if (step) begin",
            "        word <= successor;",
            "        last_step <= successor_ends_beat;",
            f"        last_word <= {last_word};",
            "        if (last_step) busy <= 1'h0;",
            "      end",
            f"      if (busy) xs <= {rotate('xs')};",
            *take,
        ]

    def weights(self) -> None:
        """The ROM and the weight/input registers ``wrow``, ``xrow``."""
        mac = self.mac
        words = mac.words
        row_width = mac.rom_width
        rom_init = mac.rom_words()
        loads = self.loads
        if words <= ONE_HOT_ROM_WORDS:
            self.reg("hot", words, 1, reset=True)
            if words > 1:
                rotated = f"{{hot[{words - 2}:0], hot[{words - 1}]}}"  # rotate_left(1)
                loads.append(f"if (step) hot <= {rotated};")
            bits = []
            for b in range(row_width):
                ones = [s for s, word in enumerate(rom_init) if word >> b & 1]
                if not ones or len(ones) == words:
                    bits.append(f"1'h{int(bool(ones))}")
                elif 2 * len(ones) <= words:
                    bits.append(_any([f"hot[{s}]" for s in ones]))
                else:
                    bits.append("~" + _any([f"hot[{s}]" for s in range(words) if s not in ones]))
            self.decls.append(f"reg {_bits(row_width)} wrow = {_hex(0, row_width)};")
            self.one_hot_read = "wrow <= {" + ", ".join(reversed(bits)) + "};"
            loads.append(self.one_hot_read)
        else:
            style = "block" if mac.block_rom else "logic"
            self.decls.append(f'(* rom_style = "{style}" *)')
            self.decls.append(f"reg {_bits(row_width)} rom [{words - 1}:0];")
            init = ["  initial begin"]
            init += [f"    rom[{s}] = {_hex(v, row_width)};" for s, v in enumerate(rom_init)]
            init.append("  end")
            self.blocks += init
            self.decls.append(f"reg {_bits(row_width)} rom_read__data;")
            address = "step ? successor : word" if mac.block_rom else "word"
            self.blocks += [
                "  always @(posedge clk)",
                f"    if (advance) rom_read__data <= rom[{address}];",
            ]
            if mac.block_rom:
                self.decls.append(f"reg {_bits(row_width)} wrow = {_hex(0, row_width)};")
                loads.append("wrow <= rom_read__data;")
            else:
                self.wire("wrow", row_width, "rom_read__data")
        group_bits = self.group_bits
        self.decls.append(f"reg {_bits(group_bits)} xrow = {_hex(0, group_bits)};")
        xs_low = f"xs[{group_bits - 1}:0]"
        if mac.early_start:
            loads.append(f"xrow <= busy ? {xs_low} : i__payload[{group_bits - 1}:0];")
        else:
            loads.append(f"xrow <= {xs_low};")
        chunked = mac.out_beats > 1
        self.reg("valid_w", 1, reset=True)
        self.reg("first_w", 1, reset=True)
        self.reg("last_w", 1, reset=True)
        word_width = self.word_width
        loads += [
            "valid_w <= step;",
            f"first_w <= {'starts_result' if chunked else f'word == {_hex(0, word_width)}'};",
            f"last_w <= {'ends_result' if chunked else 'last_word'};",
        ]

    def datapath(self) -> None:
        """The products (or digit terms) and the registered adder tree."""
        mac = self.mac
        in_width, in_signed = mac.in_shape.width, mac.in_shape.signed
        w_width, n_out, inner = mac.w_width, mac.columns, mac.inner.width
        loads = self.loads
        columns: dict[int, list[_Term]] = {o: [] for o in range(n_out)}
        lut = mac.multiplier == Multiplier.LUT
        if lut:  # a term per radix-4 digit (`serial_mac._digit_term`)
            for k, digit in enumerate(mac.digits):
                columns[digit.column].append(self.digit_term(k, digit))
        for j in range(0 if lut else mac.group):  # DSP/auto: a product per position
            x = _slice("xrow", (j + 1) * in_width - 1, j * in_width)
            for o in range(n_out):
                if not mac.active[j, o]:
                    continue
                low = (j * n_out + o) * w_width
                name = f"m{j}_{o}"
                w = f"$signed({_slice('wrow', low + w_width - 1, low)})"
                # Amaranth's product width (an unsigned x times a signed w fits too)
                operand = f"$signed({x})" if in_signed else f"$signed({{1'b0, {x}}})"
                self.wire(name, in_width + w_width, f"{operand} * {w}", 0)
                columns[o].append((name, in_width + w_width, True))
        valid, first, last = "valid_w", "first_w", "last_w"
        registers = 0

        def register(prefix: str) -> None:
            nonlocal valid, first, last, registers
            for o, terms in columns.items():
                regs = []
                for a, term in enumerate(terms):
                    name = f"{prefix}_{o}_{a}"
                    self.decls.append(f"reg {_bits(inner)} {name} = {_hex(0, inner)};")
                    loads.append(f"{name} <= {_typed(term)[0]};")
                    self.tree_loads.setdefault(registers + 1, []).append(loads[-1])
                    regs.append((name, inner, True))
                columns[o] = regs
            names = [f"valid_{registers}", f"first_{registers}", f"last_{registers}"]
            for new, old in zip(names, (valid, first, last), strict=True):
                self.reg(new, 1, reset=True)
                loads.append(f"{new} <= {old};")
            valid, first, last = names
            registers += 1

        if not lut:
            register("p")  # the product register (a DSP's MREG)
        for level in range(mac.tree_levels):
            for o, terms in columns.items():
                pairs = []
                for a in range(0, len(terms), 2):
                    if a + 1 < len(terms):
                        name = f"s{level}_{o}_{a // 2}"
                        left, right = _alike([_typed(terms[a]), _typed(terms[a + 1])])
                        self.wire(name, inner, f"{left} + {right}", registers)
                        pairs.append((name, inner, True))
                    else:
                        pairs.append(terms[a])
                columns[o] = pairs
            if (level + 1) % mac.levels_per_stage == 0:
                register(f"t{level}")
        assert registers == mac.depth
        self.valid, self.first, self.last = valid, first, last
        self.columns_out = columns

    def digit_term(self, k: int, digit: Digit) -> _Term:
        """The term of digit ``k`` of ``mac.digits`` from its code (``|d| == 1``,
        ``|d| == 2``, ``d < 0``: ``wrow`` bits or constants, `SerialMatVec.code_bits`): ``x``, ``2x`` or 0
        one bit wider than ``x`` (two when unsigned: signed), its bits inverted when
        negative, ``2 * position`` zeros below."""
        mac = self.mac
        in_width, in_signed = mac.in_shape.width, mac.in_shape.signed
        j, o, position = digit.row, digit.column, digit.position
        x = _slice("xrow", (j + 1) * in_width - 1, j * in_width)
        one, two, neg = (
            f"wrow[{rom}]" if rom is not None else f"1'h{value}" for rom, value in mac.code_bits[k]
        )
        if in_signed:
            width = in_width + 1
            once = f"{{xrow[{(j + 1) * in_width - 1}], {x}}}"
        else:
            width = in_width + 2
            once = f"{{2'h0, {x}}}"
        twice = f"{{1'h0, {x}, 1'h0}}" if not in_signed else f"{{{x}, 1'h0}}"
        magnitude = f"bm{j}_{o}_{position}"
        self.wire(magnitude, width, f"{two} ? {twice} : {one} ? {once} : {_hex(0, width)}", 0)
        name = f"pp{j}_{o}_{position}"
        low_zeros = f", {2 * position}'h0" if position else ""
        self.wire(
            name, width + 2 * position, f"{{{neg} ? ~{magnitude} : {magnitude}{low_zeros}}}", 0
        )
        return name, width + 2 * position, True

    def accumulator(self) -> list[str]:
        """The accumulators and the output register (reset-less, loaded while a step's
        terms are valid); the output's valid bit and the result beat go to ``self.loads``."""
        mac = self.mac
        n_out, inner, acc_width = mac.columns, mac.inner.width, mac.acc_type.width
        valid, first, last = self.valid, self.first, self.last
        chunked = mac.out_beats > 1
        out_width = n_out * acc_width
        self.decls.append(f"reg {_bits(out_width)} out = {_hex(0, out_width)};")
        self.reg("out_valid", 1, reset=True)
        self.assigns += ["assign o__valid = out_valid;", "assign o__payload = out;"]
        self.loads.append(f"out_valid <= {valid} & {last};")
        if chunked:
            beat_width = (max(mac.out_beats, 2) - 1).bit_length()
            self.reg("result_beat", beat_width, reset=True)
            self.loads.append(
                f"if ({valid} & {last}) result_beat <= result_beat == "
                f"{_hex(mac.out_beats - 1, beat_width)} ? {_hex(0, beat_width)} : "
                f"result_beat + {_hex(1, beat_width)};"
            )
        lines = ["  always @(posedge clk)", f"    if (advance & {valid}) begin"]
        for o in range(n_out):
            terms = self.columns_out[o]
            assert len(terms) <= 1, "adder tree did not reduce to one term"
            partial = terms[0] if terms else (_hex(0, inner), inner, True)
            self.decls.append(f"reg {_bits(inner)} acc_{o} = {_hex(0, inner)};")
            biases = [int(b) for b in mac.start_bias[:, o]]
            if chunked:
                # Amaranth's `Array(biases)[result_beat]`: 0 for codes past the last beat
                self.decls.append(f"reg {_bits(inner)} bias_{o};")
                case = ["  always @* begin", "    case (result_beat)"]
                case += [
                    f"      {_hex(j, beat_width)}: bias_{o} = {_hex(b, inner)};"
                    for j, b in enumerate(biases)
                ]
                case += [f"      default: bias_{o} = {_hex(0, inner)};", "    endcase", "  end"]
                self.blocks += case
                bias = f"bias_{o}"
            else:
                bias = _hex(biases[0], inner)
            self.wire(f"start_{o}", inner, f"{first} ? {bias} : acc_{o}", "acc")
            left, right = _alike([_typed((f"start_{o}", inner, True)), _typed(partial)])
            self.wire(f"sum_{o}", inner, f"{left} + {right}", "acc")
            low = o * acc_width
            lines += [
                f"      acc_{o} <= sum_{o};",
                f"      if ({last}) out[{low + acc_width - 1}:{low}] <= sum_{o}[{acc_width - 1}:0];",
            ]
        lines.append("    end")
        return lines

    def text(self, name: str) -> str:
        mac = self.mac
        self.control()
        self.weights()
        self.datapath()
        acc_lines = self.accumulator()
        in_bits = mac.per_beat * mac.in_shape.width
        out_bits = mac.columns * mac.acc_type.width
        lines = module_head(name, in_bits, out_bits, 0)  # ports and `advance`
        synthesis = [f"  {d}" for d in self.decls]
        synthesis += [f"  {a}" for a in self.assigns]
        synthesis += self.blocks
        synthesis += self.registers(self.loads)
        synthesis += acc_lines
        lines += two_views(synthesis, self.verilator_view(acc_lines))
        lines.append("endmodule")
        return "\n".join(lines) + "\n"

    def registers(self, loads: list[str]) -> list[str]:
        """The clocked block of the control registers and ``loads``."""
        lines = ["  always @(posedge clk) begin", "    primed <= 1'h1;", "    if (advance) begin"]
        lines += self.control_block
        lines += [f"      {load}" for load in loads]
        lines.append("    end")
        # the control registers' synchronous reset, over the loads (as Amaranth's)
        lines.append("    if (rst) begin")
        lines += [f"      {r} <= {_hex(init, width)};" for r, width, init in self.resets]
        lines += ["    end", "  end"]
        return lines

    def verilator_view(self, acc_lines: list[str]) -> list[str]:
        """The same registers for Verilator (issue 17: a dense layer's serial MAC is idle on
        most cycles, and Verilator evaluates every assignment on every edge). The adder tree
        is a pipeline of pure functions of ``{wrow, xrow}`` (which hold while the MAC is idle):
        `staged_loads` computes its stages only when what they read moved. The products /
        digit terms and the tree's adders become temporaries of the stage their registers
        belong to; the values after the last tree register (and ``start_<o>``, ``sum_<o>``)
        are computed in the accumulators' block, which runs exactly when the hardware's
        accumulators load (``advance`` and the last stage's valid bit): the accumulators
        and the step counter are state, so they stay on the hardware's enables. The
        one-hot ROM's read ``wrow`` (a function of ``hot`` alone) is computed when ``hot``
        moved. Every register holds the hardware's value on every cycle."""
        depth = self.mac.depth
        staged = set(self.wire_stage)

        def name_of(decl: str) -> str:
            return decl.rstrip(";").split()[-1]

        decls = []
        for d in self.decls:
            if d.startswith("wire ") and name_of(d) in staged:
                d = "reg " + d[len("wire ") :]
            elif d.startswith("reg ") and name_of(d) == "rom_read__data":
                # an initial value (the hardware's is any: Verilator's 2-state one, the
                # first stage computed from it as the hardware's): a 4-state simulator's x
                # would never compare unequal to what the stage saw (`staged_loads`)
                width = self.mac.rom_width
                d = f"reg {_bits(width)} rom_read__data = {_hex(0, width)};"
            decls.append(d)
        assigns = [a for a in self.assigns if a.split()[1] not in staged]
        tree = {load for loads in self.tree_loads.values() for load in loads}
        loads = [load for load in self.loads if load not in tree]
        lines = [f"  {d}" for d in decls]
        one_hot = self.one_hot_read
        if one_hot is not None:  # the ROM's read only when the one-hot word moved
            words = self.mac.words
            lines += [
                f"  reg [{words - 1}:0] sim_hot = {_hex(0, words)};",
                "  reg sim_read = 1'h0;",
            ]
            index = loads.index(one_hot)
            loads[index : index + 1] = [
                "if (~sim_read | (hot != sim_hot)) begin",
                f"  {one_hot}",
                "  sim_hot <= hot;",
                "  sim_read <= 1'h1;",
                "end",
            ]
        lines += [f"  {a}" for a in assigns]
        lines += self.blocks
        lines += self.registers(loads)

        def temps(stage: int | str) -> list[str]:
            return [f"{n} = {self.values[n]};" for n, s in self.wire_stage.items() if s == stage]

        if depth:
            blocks = [(temps(s - 1), self.tree_loads.get(s, [])) for s in range(1, depth + 1)]
            row_bits = self.mac.rom_width + self.group_bits
            lines += staged_loads(blocks, "{wrow, xrow}", row_bits)
        final = [*temps(depth), *temps("acc")]
        head = acc_lines.index(f"    if (advance & {self.valid}) begin") + 1
        lines += [*acc_lines[:head], *[f"      {t}" for t in final], *acc_lines[head:]]
        return lines


def _any(bits: list[str]) -> str:
    return bits[0] if len(bits) == 1 else "(|{" + ", ".join(reversed(bits)) + "})"


def serial_verilog(mac: SerialMatVec, name: str) -> str:
    """The Verilog module ``name`` of ``mac`` (see the module doc); ``supported(mac)``."""
    return _Writer(mac).text(name)
