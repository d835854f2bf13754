"""A constant MAC array (`constant_mac.ConstantMatVec`) as Verilog text, straight from its plan.

Why text: Amaranth's per-bit netlist, its RTLIL and Yosys' ``write_verilog`` cost ~2.5 ms of
CPU per non-zero product of a MAC-heavy design (docs/NOTES.md, issue 20), and a fully parallel
16-bit array can exceed Yosys' 4 GB WebAssembly memory (issue 14). The adder plan
(`adder_graph.MatVecPlan`) already says every adder, width, register and stage, so writing
it is a walk over its nodes: ~100x faster, and Yosys never sees the array during conversion.

`matvec_verilog(mac, name)` is the whole component as one module, with the ports
`rtlgen.emit.component_verilog` gives the Amaranth version (``clk``, ``rst``,
``i__payload``, ``i__valid``, ``i__ready``, ``o__payload``, ``o__valid``, ``o__ready``), the
same registers under the same names (``valid_<k>``, ``n<node>_mul``, ``n<node>_d<k>``,
``result``), the same clock enable (``advance = ~o.valid | o.ready``, `stream_util`), reset
(valid bits only, synchronous) and initial values. Every value is its exact integer modulo
``2**width``, which is what Amaranth's widening arithmetic truncated to the node's shape
computes, for any input bits (in or out of ``in_range``): tests/layers/test_mac_verilog.py
proves the two equivalent with Yosys. Operators are typed as Amaranth's (signed operands
``$signed``, an unsigned operand beside a signed one made signed one bit wider, sized
constants) and keep its structure (the low bits of an unshifted operand pass through;
negative terms are subtracted), so Yosys sees the same ``$alu``/``$macc`` cells (checked on a
32 x 16 array after ``synth -run begin:fine``).

Two views (issue 17: bulk simulation speed): the module body is written once for synthesis
(what Yosys, Vivado and Icarus read; byte for byte the text before the views existed, so the
LUT and FF counts are those of the hardware as before) and once under ``ifdef VERILATOR``
(`two_views`). Verilator evaluates every combinational assignment on every clock edge, busy
or not, and most layers of a CNN after its first pool see a new input on 1/4, 1/16 ... of the
cycles; its view (`staged_loads`, `StagedText`) computes each pipeline stage's arithmetic in
the clocked block of the registers it feeds, and only when what the stage reads changed, so
every register still holds the hardware's value on every cycle. The SVHN QP6 CNN went from
96,143 to ~35,000 x86 instructions per simulated cycle (benchmarks/bench_sim_harness.py).
The tests compare the views cycle by cycle in Icarus (`verilator_view_matches`).

`MacModules` collects the modules of the arrays elaborated while `verilog_text` is active:
`ConstantMatVec.elaborate` then returns an instance of its module (named from a hash of the
text, so equal arrays share one) instead of the datapath.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import re
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from amaranth.hdl import ClockSignal, Instance, Module, ResetSignal, Value

from .adder_graph import Term, width_of

if TYPE_CHECKING:
    from .constant_mac import ConstantMatVec

_PORTS = "clk, rst, i__payload, i__valid, i__ready, o__payload, o__valid, o__ready"
#: a name an expression reads (`StagedText.stage`; sized constants' digits are never a name)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _operand(name: str, width: int, signed: bool, shift: int = 0) -> tuple[str, int, bool]:
    """``name << shift`` as a self-determined expression (text, width, signed): signed
    values are ``$signed`` so that Verilog sign-extends them in a wider context."""
    text = name if shift == 0 else f"{{{name}, {shift}'d0}}"
    return (f"$signed({text})" if signed else text), width + shift, signed


def _alike(operands: list[tuple[str, int, bool]]) -> list[str]:
    """As Amaranth's operators: with any signed operand, unsigned ones become signed one
    bit wider (a Verilog expression mixing them would be unsigned: zero-extended)."""
    if not any(signed for _, _, signed in operands):
        return [text for text, _, _ in operands]
    return [text if signed else f"$signed({{1'b0, {text}}})" for text, _, signed in operands]


def _hex(value: int, width: int) -> str:
    return f"{width}'h{value & ((1 << width) - 1):x}"


def stream_ports(name: str, in_bits: int, out_bits: int) -> list[str]:
    """The module line and port declarations of a one-stream-in, one-stream-out text module,
    as `rtlgen.emit.component_verilog` names them."""
    return [
        f"module {name}({_PORTS});",
        "  input clk;",
        "  input rst;",
        f"  input [{in_bits - 1}:0] i__payload;",
        "  input i__valid;",
        "  output i__ready;",
        f"  output [{out_bits - 1}:0] o__payload;",
        "  output o__valid;",
        "  input o__ready;",
    ]


def memory_lines(
    name: str, width: int, words: Sequence[int], style: str | None = None
) -> list[str]:
    """A Verilog memory ``name`` of ``width``-bit words initialised to ``words`` in an
    ``initial`` block (Yosys reads it as the memory's init), with a ``rom_style`` attribute
    when ``style`` is given; the lines unindented."""
    return [
        *([f'(* rom_style = "{style}" *)'] if style else []),
        f"reg [{width - 1}:0] {name} [{len(words) - 1}:0];",
        "initial begin",
        *[f"  {name}[{k}] = {_hex(word, width)};" for k, word in enumerate(words)],
        "end",
    ]


def module_head(name: str, in_bits: int, out_bits: int, latency: int) -> list[str]:
    """The first lines of a text module of a `pipeline_control` component: its ports
    (`stream_ports`), ``advance`` and the valid registers."""
    return [
        *stream_ports(name, in_bits, out_bits),
        "  wire advance;",
        *[f"  reg valid_{k} = 1'h0;" for k in range(latency)],
    ]


def valid_chain(latency: int) -> list[str]:
    """`stream_util.pipeline_control` as text: the handshakes and the valid bits of a
    ``latency``-stage pipeline (reset synchronous, enabled by ``advance``)."""
    if latency == 0:
        return [
            "  assign advance = 1'h1;",
            "  assign o__valid = i__valid;",
            "  assign i__ready = o__ready;",
        ]
    valid = [f"valid_{k}" for k in range(latency)]
    return [
        f"  assign advance = ~{valid[-1]} | o__ready;",
        "  assign i__ready = advance;",
        f"  assign o__valid = {valid[-1]};",
        "  always @(posedge clk)",
        "    if (rst) begin",
        *[f"      {v} <= 1'h0;" for v in valid],
        "    end else if (advance) begin",
        f"      {valid[0]} <= i__valid;",
        *[f"      {v} <= {u};" for u, v in zip(valid, valid[1:], strict=False)],
        "    end",
    ]


def staged_loads(
    blocks: Sequence[tuple[Sequence[str], Sequence[str]]], watched: str, watched_width: int
) -> list[str]:
    """Verilator's view of the registers of a ``len(blocks)``-stage pipeline loaded on
    ``advance`` (`two_views`): ``blocks[s - 1] = (temporaries, loads)`` of stage ``s``
    (loaded from values of stage ``s - 1``; stage 0 is ``watched``, the ``watched_width``-bit
    concatenation of what stage 1 reads: ``i__payload``, and any counter). Each stage is one
    ``always @(posedge clk) if (load_<s>)`` block: its combinational logic as blocking
    assignments of temporaries (read only after they are written, in the same block), then
    its registers. ``load_1`` is ``advance`` when ``watched`` differs from what stage 1 last
    read, ``load_<s>`` ``advance`` when stage ``s - 1`` was loaded since stage ``s`` last
    was: a stage not loaded would have loaded the value it holds, so every register holds
    what it holds in the hardware on every cycle, and the arithmetic runs only when the input
    moved (Verilator evaluates every combinational assignment on every clock edge, busy or
    not: issue 17). The ``sim_*`` registers exist only in this view."""
    stages = len(blocks)
    lines = [
        "  // a stage is computed only when what it reads changed (mac_verilog.staged_loads)",
        f"  reg [{watched_width - 1}:0] sim_seen = {_hex(0, watched_width)};",
        "  reg sim_primed = 1'h0;",
        *[f"  reg sim_pending_{s} = 1'h1;" for s in range(2, stages + 1)],
        *[f"  wire load_{s};" for s in range(1, stages + 1)],
        f"  assign load_1 = advance & (~sim_primed | ({watched} != sim_seen));",
        *[f"  assign load_{s} = advance & sim_pending_{s};" for s in range(2, stages + 1)],
        "  always @(posedge clk)",
        "    if (advance) begin",
        "      if (load_1) begin",
        "        sim_primed <= 1'h1;",
        f"        sim_seen <= {watched};",
        "      end",
        *[f"      sim_pending_{s} <= load_{s - 1};" for s in range(2, stages + 1)],
        "    end",
    ]
    for s, (temps, loads) in enumerate(blocks, 1):
        if temps or loads:
            lines += ["  always @(posedge clk)", f"    if (load_{s}) begin"]
            lines += [f"      {line}" for line in (*temps, *loads)]
            lines += ["    end"]
    return lines


def two_views(synthesis: Sequence[str], verilator: Sequence[str]) -> list[str]:
    """A module body written twice: ``synthesis`` (what Yosys, Vivado, Icarus read: the
    hardware) and, under ``ifdef VERILATOR``, ``verilator`` (the same registers computed only
    when their inputs moved, `staged_loads`; tests/layers/test_mac_verilog.py's
    `verilator_view_matches` compares the two views cycle by cycle). Verilator's view computes
    its temporaries with blocking assignments in clocked blocks on purpose: its lint warning
    for that (BLKSEQ, in ``-Wall``) is off inside the view."""
    return [
        "`ifndef VERILATOR",
        *synthesis,
        "`else",
        "  // verilator lint_off BLKSEQ",
        *verilator,
        "  // verilator lint_on BLKSEQ",
        "`endif",
    ]


class StagedText:
    """The pieces of a pipeline module's text written in two views (`two_views`):
    declarations, combinational assignments, ``always @*`` cases and registers loaded on
    ``advance``; and for Verilator's view (`staged_loads`) per pipeline stage the
    combinational values its registers read (temporaries) and those registers.

    A value's stage is found from the names it reads (`stage_of`): the ``inputs`` are stage
    0, a register loaded from stage ``s - 1`` values is stage ``s``, a combinational value is
    its sources' stage (a constant one stays an assignment in both views); a value reading two
    stages is refused (a stage is computed only when the one before it was loaded)."""

    def __init__(self, inputs: Sequence[str] = ("i__payload",)):
        self.decls: list[str] = []
        self.assigns: list[str] = []
        self.loads: list[str] = []
        self.blocks: list[str] = []  # always @* blocks (cases)
        self.stage_of: dict[str, int] = dict.fromkeys(inputs, 0)
        self.sim_decls: list[str] = []  # Verilator's view: temporaries as `reg`
        self.sim_assigns: list[str] = []  # values of constants (assignments, cases)
        self.temps: dict[int, list[str]] = {}  # stage -> blocking assignments it reads
        self.staged: dict[int, list[str]] = {}  # stage -> its registers' updates

    def stage(self, *values: str) -> int | None:
        """The stage of the value of the expressions ``values`` (None: constants)."""
        names = {name for value in values for name in _NAME.findall(value)}
        stages = {self.stage_of[name] for name in names if name in self.stage_of}
        if len(stages) > 1:
            raise ValueError(f"a value reading stages {sorted(stages)}: {values}")
        return max(stages, default=None)

    def reg(self, name: str, width: int, value: str, sim: str | None = None) -> str:
        """A register loaded with ``value`` (in Verilator's view ``sim``: the same function of
        the same names, written for a simulator, if given)."""
        stage = (self.stage(value) or 0) + 1
        declaration = f"reg [{width - 1}:0] {name} = {_hex(0, width)};"
        self.decls.append(declaration)
        self.sim_decls.append(declaration)
        self.loads.append(f"{name} <= {value};")
        self.staged.setdefault(stage, []).append(f"{name} <= {sim or value};")
        self.stage_of[name] = stage
        return name

    def wire(self, name: str, width: int | None, value: str, sim: str | None = None) -> str:
        """A combinational value (``width`` None: one bit declared without a range; ``sim``:
        as `reg`'s)."""
        bits = "" if width is None else f"[{width - 1}:0] "
        self.decls.append(f"wire {bits}{name};")
        self.assigns.append(f"assign {name} = {value};")
        stage = self.stage(value)
        if stage is None:
            self.sim_decls.append(f"wire {bits}{name};")
            self.sim_assigns.append(f"assign {name} = {value};")
        else:
            self.sim_decls.append(f"reg {bits}{name};")
            self.temps.setdefault(stage + 1, []).append(f"{name} = {sim or value};")
            self.stage_of[name] = stage
        return name

    @staticmethod
    def concat(bits: list[str]) -> str:
        """Verilog concatenation of ``bits``, the first the least significant (as ``Cat``)."""
        return "{" + ", ".join(reversed(bits)) + "}"

    def case(self, name: str, width: int, index: str, values: list[str]) -> str:
        """``values[index]`` (expressions; 0 beyond the last, as Amaranth's ``Array``)."""
        self.decls.append(f"reg [{width - 1}:0] {name};")
        self.sim_decls.append(f"reg [{width - 1}:0] {name};")
        body = [f"{name} = {_hex(0, width)};", f"case ({index})"]
        body += [f"  {k}: {name} = {v};" for k, v in enumerate(values)]
        body += ["endcase"]
        block = ["  always @* begin", *[f"    {line}" for line in body], "  end"]
        self.blocks.append("\n".join(block))
        stage = self.stage(index, *values)
        if stage is None:
            self.sim_assigns.extend(block)
        else:
            self.temps.setdefault(stage + 1, []).extend(body)
            self.stage_of[name] = stage
        return name

    def views(
        self,
        latency: int,
        watched: tuple[str, int],
        first: Sequence[str] = (),
        last: Sequence[str] = (),
    ) -> list[str]:
        """The module body after its head (`two_views`): the declarations, the valid chain of
        ``latency``, the lines ``first``, the assignments, the lines ``last``, the cases and
        the registers loaded on ``advance``; Verilator's view the same with the stages of
        `staged_loads` (``watched`` = (expression, width) of what stage 1 reads)."""
        synthesis = [
            *[f"  {d}" for d in self.decls],
            *valid_chain(latency),
            *first,
            *[f"  {a}" for a in self.assigns],
            *last,
            *self.blocks,
            "  always @(posedge clk)",
            "    if (advance) begin",
            *[f"      {load}" for load in self.loads],
            "    end",
        ]
        stages = max([latency, *self.staged, *self.temps])
        blocks = [(self.temps.get(s, []), self.staged.get(s, [])) for s in range(1, stages + 1)]
        verilator = [
            *[f"  {d}" for d in self.sim_decls],
            *valid_chain(latency),
            *first,
            *[f"  {a}" for a in self.sim_assigns],
            *last,
            *staged_loads(blocks, *watched),
        ]
        return two_views(synthesis, verilator)


class _Writer:
    """The text of one array: declarations, combinational assignments, registers loaded on
    ``advance``; and for Verilator's view (`staged_loads`) the combinational values of the
    cycles before the last as temporaries of the stage loaded from them."""

    def __init__(self, mac: ConstantMatVec):
        self.mac = mac
        self.plan = mac.plan
        self.decls: list[str] = []
        self.assigns: list[str] = []
        self.loads: list[str] = []  # register updates under `advance`
        self.delays: dict[int, int] = {}  # node -> delay registers in its chain
        # Verilator's view: declarations (temporaries as `reg`), the assignments it keeps,
        # and per stage the temporaries and register updates
        self.sim_decls: list[str] = []
        self.sim_assigns: list[str] = []
        self.temps: dict[int, list[str]] = {}
        self.staged: dict[int, list[str]] = {}
        in_shape = mac.in_shape
        # (name, width, signed) of each node's value in its own cycle
        self.base: list[tuple[str, int, bool]] = []
        for index, node in enumerate(self.plan.nodes):
            width = width_of(node.lo, node.hi)
            if node.kind == "input":
                self.base.append((f"n{index}", in_shape.width, in_shape.signed))
            elif node.kind == "mul":
                self.base.append((f"n{index}_mul", width, node.lo < 0))
            else:
                self.base.append((f"n{index}", width, node.lo < 0))

    def at(self, node: int, cycle: int) -> tuple[str, int, bool]:
        """``node`` as seen in ``cycle``: its value, or a register of its delay chain."""
        delay = cycle - self.plan.nodes[node].cycle
        name, width, signed = self.base[node]
        if delay == 0:
            return name, width, signed
        self.delays[node] = max(self.delays.get(node, 0), delay)
        return f"n{node}_d{delay}", width, signed

    def term(self, t: Term, cycle: int) -> tuple[str, int, bool]:
        """``node << shift`` of the term (its sign apart) as seen in ``cycle``."""
        return _operand(*self.at(t.node, cycle), t.shift)

    def declare(self, name: str, width: int, cycle: int | None) -> None:
        """A combinational value of ``cycle`` (None: a constant): a wire; in Verilator's view
        a temporary unless it is of the last cycle (an unregistered output)."""
        self.decls.append(f"wire [{width - 1}:0] {name};")
        temporary = cycle is not None and cycle < self.plan.latency
        self.sim_decls.append(f"{'reg' if temporary else 'wire'} [{width - 1}:0] {name};")

    def assign(self, name: str, value: str, cycle: int | None) -> None:
        self.assigns.append(f"assign {name} = {value};")
        if cycle is not None and cycle < self.plan.latency:
            self.temps.setdefault(cycle + 1, []).append(f"{name} = {value};")
        else:
            self.sim_assigns.append(f"assign {name} = {value};")

    def register(self, declaration: str) -> None:
        self.decls.append(declaration)
        self.sim_decls.append(declaration)

    def load(self, stage: int, line: str) -> None:
        """``line`` updates a register of ``stage`` (loaded from values of ``stage - 1``)."""
        self.loads.append(line)
        self.staged.setdefault(stage, []).append(line)

    def add(self, index: int) -> None:
        node = self.plan.nodes[index]
        to = width_of(node.lo, node.hi)
        self.declare(f"n{index}", to, node.cycle)
        operands = node.operands
        if len(operands) == 2:
            low, high = operands
            a, a_width, a_signed = self.at(low.node, node.cycle)
            if low.shift == 0 and low.sign > 0 and 0 < high.shift < a_width and high.shift < to:
                # As ConstantMatVec._sum: the low bits of `a` pass through, no adder bits.
                shift = high.shift
                a_high = _operand(f"{a}[{a_width - 1}:{shift}]", a_width - shift, a_signed)
                a_text, b_text = _alike([a_high, self.term(Term(high.node, 0, 1), node.cycle)])
                op = "+" if high.sign > 0 else "-"
                self.declare(f"n{index}_high", to - shift, node.cycle)
                self.assign(f"n{index}_high", f"{a_text} {op} {b_text}", node.cycle)
                self.assign(f"n{index}", f"{{n{index}_high, {a}[{shift - 1}:0]}}", node.cycle)
                return
        # Negative terms are subtracted: one subtractor instead of a negation and an adder.
        ordered = sorted(operands, key=lambda t: -t.sign)
        texts = _alike([self.term(t, node.cycle) for t in ordered])
        total = f"-{texts[0]}" if ordered[0].sign < 0 else texts[0]
        for t, text in zip(ordered[1:], texts[1:], strict=True):
            total += f" {'-' if t.sign < 0 else '+'} {text}"
        self.assign(f"n{index}", total, node.cycle)

    def mul(self, index: int) -> None:
        node = self.plan.nodes[index]
        to = width_of(node.lo, node.hi)
        x, x_width, x_signed = self.at(node.index, node.cycle - 1)
        self.register(f"reg [{to - 1}:0] n{index}_mul = {_hex(0, to)};")
        factor_width = node.factor.bit_length()
        if x_signed:  # as Amaranth: signed x times the constant as a signed value
            product = f"$signed({x}) * $signed({factor_width + 1}'d{node.factor})"
        else:
            product = f"{x} * {factor_width}'d{node.factor}"
        self.load(node.cycle, f"n{index}_mul <= {product};")

    def text(self, name: str) -> str:
        mac, plan = self.mac, self.plan
        in_width, n_in = mac.in_shape.width, mac.weights.shape[0]
        acc_width, n_out = mac.acc_type.width, len(plan.outputs)
        for index, node in enumerate(plan.nodes):
            width = width_of(node.lo, node.hi)
            if node.kind == "input":
                low = node.index * in_width
                self.declare(f"n{index}", in_width, node.cycle)
                self.assign(f"n{index}", f"i__payload[{low + in_width - 1}:{low}]", node.cycle)
            elif node.kind == "const":
                self.declare(f"n{index}", width, None)
                self.assign(f"n{index}", _hex(node.factor, width), None)
            elif node.kind == "mul":
                self.mul(index)
            else:
                self.add(index)
        latency = plan.latency
        if plan.registered_output:
            init = 0
            for j, (t, b) in enumerate(zip(plan.outputs, plan.bias, strict=True)):
                if t is None:
                    init |= (b & ((1 << acc_width) - 1)) << (j * acc_width)
            total = n_out * acc_width
            self.register(f"reg [{total - 1}:0] result = {_hex(init, total)};")
            for j, t in enumerate(plan.outputs):
                if t is not None:
                    value = self.term(t, latency - 1)[0]
                    value = f"-{value}" if t.sign < 0 else value
                    low = j * acc_width
                    self.load(latency, f"result[{low + acc_width - 1}:{low}] <= {value};")
            self.assign("o__payload", "result", None)
        else:
            for j, (t, b) in enumerate(zip(plan.outputs, plan.bias, strict=True)):
                if t is None:
                    value = _hex(b, acc_width)
                else:
                    value = self.term(t, latency)[0]
                    value = f"-{value}" if t.sign < 0 else value
                low = j * acc_width
                self.assign(f"o__payload[{low + acc_width - 1}:{low}]", value, None)
        # delay chains (shared by every use of a node, as StageRegisters.delay)
        for node, depth in sorted(self.delays.items()):
            source, width, _ = self.base[node]
            cycle = plan.nodes[node].cycle
            for k in range(1, depth + 1):
                self.register(f"reg [{width - 1}:0] n{node}_d{k} = {_hex(0, width)};")
                previous = source if k == 1 else f"n{node}_d{k - 1}"
                self.load(cycle + k, f"n{node}_d{k} <= {previous};")
        lines = module_head(name, n_in * in_width, n_out * acc_width, latency)
        if not self.loads:  # no registers but the valid chain: one view
            lines += [f"  {d}" for d in self.decls]
            lines += valid_chain(latency)
            lines += [f"  {a}" for a in self.assigns]
            return "\n".join([*lines, "endmodule"]) + "\n"
        synthesis = [f"  {d}" for d in self.decls]
        synthesis += valid_chain(latency)
        synthesis += [f"  {a}" for a in self.assigns]
        synthesis += ["  always @(posedge clk)", "    if (advance) begin"]
        synthesis += [f"      {load}" for load in self.loads]
        synthesis += ["    end"]
        stages = max([latency, *self.staged, *self.temps])
        blocks = [(self.temps.get(s, []), self.staged.get(s, [])) for s in range(1, stages + 1)]
        verilator = [f"  {d}" for d in self.sim_decls]
        verilator += valid_chain(latency)
        verilator += [f"  {a}" for a in self.sim_assigns]
        verilator += staged_loads(blocks, "i__payload", n_in * in_width)
        lines += two_views(synthesis, verilator)
        lines.append("endmodule")
        return "\n".join(lines) + "\n"


def matvec_verilog(mac: ConstantMatVec, name: str) -> str:
    """The Verilog module ``name`` of ``mac`` (see the module doc)."""
    return _Writer(mac).text(name)


def module_name(prefix: str, mac: ConstantMatVec) -> tuple[str, str]:
    """(name, text) of ``mac``'s module: ``<prefix>__mac_<hash of the text>``."""
    body = matvec_verilog(mac, "\0")
    digest = hashlib.sha256(body.encode()).hexdigest()[:16]
    name = f"{prefix}__mac_{digest}"
    return name, body.replace("\0", name, 1)


class MacModules:
    """The text modules of the constant MAC arrays (and threshold banks, `bank_verilog`)
    elaborated while collecting (`verilog_text`), by name: equal components (same text)
    share one module."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.modules: dict[str, str] = {}
        # the writer of each component elaborated to an instance of its text, by id
        self.writers: dict[int, Callable[[Any, str], str]] = {}

    def instance(self, mac: ConstantMatVec) -> Module:
        """An Amaranth module holding only an instance of ``mac``'s text module."""
        name, text = module_name(self.prefix, mac)
        return self._instance(mac, name, text)

    def instance_of(self, component, write: Callable[[Any, str], str], kind: str) -> Module:
        """The same for another component written as text by ``write(component, name)``:
        its module is ``<prefix>__<kind>_<hash of the text>``."""
        self.writers[id(component)] = write
        body = write(component, "\0")
        name = f"{self.prefix}__{kind}_{hashlib.sha256(body.encode()).hexdigest()[:16]}"
        return self._instance(component, name, body.replace("\0", name, 1))

    def _instance(self, component, name: str, text: str) -> Module:
        self.modules.setdefault(name, text)
        m = Module()
        m.submodules.text = Instance(
            name,
            i_clk=ClockSignal(),
            i_rst=ResetSignal(),
            i_i__payload=Value.cast(component.i.payload),
            i_i__valid=component.i.valid,
            o_i__ready=component.i.ready,
            o_o__payload=Value.cast(component.o.payload),
            o_o__valid=component.o.valid,
            i_o__ready=component.o.ready,
        )
        return m


_ACTIVE: contextvars.ContextVar[MacModules | None] = contextvars.ContextVar(
    "mac_verilog", default=None
)


def active() -> MacModules | None:
    """The collector `ConstantMatVec.elaborate` writes its module to, if any."""
    return _ACTIVE.get()


def text_instance(
    component,
    kind: type,
    supported: Callable[[Any], bool],
    write: Callable[[Any, str], str],
    name: str,
) -> Module | None:
    """For a component's `elaborate`: while collecting (`verilog_text`), an instance of its
    text module written by ``write`` (`MacModules.instance_of`, modules
    ``<prefix>__<name>_<hash>``) if it is exactly a ``kind`` (a subclass may elaborate
    otherwise) and ``supported(component)``; else None (elaborate it with Amaranth)."""
    modules = _ACTIVE.get()
    if modules is None or type(component) is not kind or not supported(component):
        return None
    return modules.instance_of(component, write, name)


@contextlib.contextmanager
def verilog_text(prefix: str) -> Iterator[MacModules]:
    """While active (in this thread), constant MAC arrays elaborate to instances of text
    modules named ``<prefix>__mac_<hash>``, collected in the yielded `MacModules`."""
    modules = MacModules(prefix)
    token = _ACTIVE.set(modules)
    try:
        yield modules
    finally:
        _ACTIVE.reset(token)
