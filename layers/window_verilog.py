"""A window generator (`window.WindowGenerator`: line memory + window registers) as Verilog
text, straight from its geometry.

Why text: after the MAC arrays, requantizers, max-pool trees and skid buffers were written as
text, a small CNN's window generators were ~43 % of what was left in Amaranth's netlist,
RTLIL and Yosys run of its top (issue 20: a small model's fixed cost). The generator is a
fixed structure (a walk over the padded grid, one read-modify-write line memory, a shift
register of windows), so writing it is a loop over its rows and columns.

`window_verilog(window, name)` is the whole component as one module with the ports
`rtlgen.emit.component_verilog` gives the Amaranth version (``clk``, ``rst``, ``i__payload``,
``i__valid``, ``i__ready``, ``o__payload``, ``o__valid``, ``o__ready``), the same registers
under the same names (``row``, ``col``, ``row_wait``, ``col_wait``, the walk flags
``row_real``, ``col_real``, ``first_col``, ``last_col``, ``last_row``, ``leading``,
``o__valid``, ``history_real``, ``col_addr``, ``col_addr_next``, ``window_<r>_<c>``), the
same reset (synchronous, over the loads; the window registers have none), the same initial
values, and the line memory as a Verilog memory ``line_memory`` (initially zero) with one
write port and one synchronous, non-transparent read port: what Yosys infers as a RAM from
Amaranth's `Memory` too. A register of zero bits in Amaranth (a range of one value: one
walked row, one walked column, no row or column to wait for) is its constant 0 here.
`multi_window_verilog(window, name)` is the same for a `multi_pixel.MultiWindowGenerator`
(P pixels per beat, valid padding): registers ``row``, ``beat``, ``last_beat``, ``last_row``,
``row_emits``, ``beat_emits``, ``o__valid``, ``strip_<r>_<q>``, a line memory of
``beats_per_row`` words. tests/layers/test_window_verilog.py proves both equivalent to
Amaranth's Verilog with Yosys and runs them side by side in Icarus Verilog.

Not written (`supported`, `multi_supported`): a line memory of one word (kernel_h > 1 and a
one-column image, or a row of one beat), whose read port must be transparent: Amaranth
converts it as before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from amaranth.hdl import Shape

from .mac_verilog import _hex, memory_lines, stream_ports

if TYPE_CHECKING:
    from .multi_pixel import MultiWindowGenerator
    from .window import WindowGenerator


def supported(window: WindowGenerator) -> bool:
    """Whether `window_verilog` writes ``window``: not a one-column image with a line memory."""
    return window.kernel[0] == 1 or window.width > 1


def _range_width(count: int) -> int:
    """Bits of an Amaranth ``Signal(range(count))`` (0 for one value)."""
    return Shape.cast(range(count)).width


def _const(value: int) -> str:
    """An unsigned constant, sized to its own bits (Verilog extends it in a comparison)."""
    return _hex(value, max(value.bit_length(), 1))


class _Text:
    """Declarations, combinational assignments and clocked loads of one module. A value of
    zero bits is the constant 0: no declaration, its loads dropped."""

    def __init__(self) -> None:
        self.decls: list[str] = []
        self.assigns: list[str] = []
        self.widths: dict[str, int] = {}

    def reg(self, name: str, width: int, init: int | None) -> str:
        self.widths[name] = width
        if width == 0:
            return "1'h0"
        value = "" if init is None else f" = {_hex(init, width)}"
        self.decls.append(f"reg [{width - 1}:0] {name}{value};")
        return name

    def wire(self, name: str, width: int, value: str) -> str:
        self.widths[name] = width
        if width == 0:
            return "1'h0"
        self.decls.append(f"wire [{width - 1}:0] {name};")
        self.assigns.append(f"assign {name} = {value};")
        return name

    def load(self, name: str, value: str) -> list[str]:
        """``name <= value;`` (nothing for a zero-bit register)."""
        return [] if self.widths[name] == 0 else [f"{name} <= {value};"]

    def resets(self, values: dict[str, int]) -> list[str]:
        """The synchronous reset of the registers ``values`` names to their values (last in
        the clocked block: it overrides the loads, as Amaranth's reset does)."""
        loads = [
            load
            for reg, value in values.items()
            for load in self.load(reg, _hex(value, max(self.widths[reg], 1)))
        ]
        return ["if (rst) begin", *[f"  {load}" for load in loads], "end"]

    def module(
        self, name: str, in_bits: int, out_bits: int, body: list[str], memory: list[str]
    ) -> str:
        """The module: ports as `rtlgen.emit.component_verilog` names them, declarations,
        assignments, the ``memory`` lines, then ``body`` in one ``always @(posedge clk)``."""
        lines = [
            *stream_ports(name, in_bits, out_bits),
            *[f"  {d}" for d in self.decls],
            *[f"  {a}" for a in self.assigns],
            *memory,
            "  always @(posedge clk) begin",
            *[f"    {line}" for line in body],
            "  end",
            "endmodule",
        ]
        return "\n".join(lines) + "\n"


def _memory(name: str, enable: str, address: str, data: str = "write__data") -> list[str]:
    """A memory ``name``'s write port and its synchronous, non-transparent read port
    (``read__addr`` -> ``read__data``), as Yosys infers a RAM from."""
    return [
        "  always @(posedge clk)",
        f"    if ({enable}) {name}[{address}] <= {data};",
        "  always @(posedge clk)",
        f"    read__data <= {name}[read__addr];",
    ]


def window_verilog(window: WindowGenerator, name: str) -> str:
    """The Verilog module ``name`` of ``window`` (see the module doc); ``supported(window)``."""
    if not supported(window):
        raise ValueError("window_verilog: a one-column image with a line memory")
    g = window.geometry
    kernel_h, kernel_w = window.kernel
    stride_h, stride_w = window.stride
    top, _, left, _ = window.padding
    elem_width, channels = window.elem_shape.width, window.channels
    pixel_width = elem_width * channels
    pad_elem = window.pad_value & ((1 << elem_width) - 1)
    pad = _hex(sum(pad_elem << (k * elem_width) for k in range(channels)), pixel_width)
    text = _Text()

    def zero(value: str) -> str:
        return "1'h1" if value == "1'h0" else f"({value} == 1'h0)"

    # -- walk over the padded grid (as `WindowGenerator.elaborate`) -----------------------
    row = text.reg("row", _range_width(g.last_row + 1), g.first_row)
    col = text.reg("col", _range_width(g.last_col + 1), g.first_col)
    row_wait_init = kernel_h - 1 - g.first_row
    col_wait_init = kernel_w - 1 - g.first_col
    row_wait = text.reg("row_wait", _range_width(max(kernel_h, stride_h)), row_wait_init)
    col_wait = text.reg("col_wait", _range_width(max(kernel_w, stride_w)), col_wait_init)
    flags = {
        "row_real": top <= g.first_row < top + window.height,
        "col_real": left <= g.first_col < left + window.width,
        "first_col": True,
        "last_col": g.first_col == g.last_col,
        "last_row": g.first_row == g.last_row,
        "leading": g.first_row < top or (g.first_row == top and g.first_col < left),
    }
    for flag, init in flags.items():
        text.reg(flag, 1, int(init))
    text.widths["o__valid"] = 1
    text.decls.append("reg o__valid = 1'h0;")
    text.decls.append("wire step;")
    waits_for_input = "(row_real & col_real)"
    if g.step(top, left) > 0:
        waits_for_input = "(row_real & col_real | leading)"
    text.assigns += [
        "assign i__ready = (~o__valid | o__ready) & row_real & col_real;",
        f"assign step = (~o__valid | o__ready) & (~{waits_for_input} | i__valid);",
    ]
    next_col = text.wire(
        "next_col", text.widths["col"], f"last_col ? {_const(g.first_col)} : {col} + 1'h1"
    )
    next_row = text.wire(
        "next_row",
        text.widths["row"],
        f"last_col ? (last_row ? {_const(g.first_row)} : {row} + 1'h1) : {row}",
    )
    current = f"(row_real & col_real) ? i__payload : {pad}"

    # reset values of the registers with a reset, and loads under `step`
    resets = {"o__valid": 0, "row": g.first_row, "col": g.first_col}
    resets |= {"row_wait": row_wait_init, "col_wait": col_wait_init}
    resets |= {flag: int(init) for flag, init in flags.items()}
    other_loads: list[str] = []  # enabled by something other than `step`

    # -- line memory: rows row-1 .. row-kernel_h+1 of the current column -------------------
    column = [current]  # bottom to top
    if kernel_h > 1:
        history = kernel_h - 1
        depth = window.width
        word = history * pixel_width
        address_width = _range_width(depth)
        text.reg("history_real", history, 0)
        text.reg("col_addr", address_width, 0)
        text.reg("col_addr_next", address_width, 1 % depth)
        resets |= {"history_real": 0, "col_addr": 0, "col_addr_next": 1 % depth}
        text.decls += [
            *memory_lines("line_memory", word, [0] * depth),
            f"wire [{address_width - 1}:0] read__addr;",
            f"reg [{word - 1}:0] read__data;",
            f"wire [{word - 1}:0] write__data;",
            "wire write__en;",
        ]
        written = "i__payload"
        if history > 1:
            written = f"{{read__data[{(history - 1) * pixel_width - 1}:0], i__payload}}"
        text.assigns += [
            "assign write__en = step & col_real;",
            "assign read__addr = write__en ? col_addr_next : col_addr;",
            f"assign write__data = {written};",
        ]
        shifted = "row_real"
        if history > 1:
            shifted = f"{{history_real[{history - 2}:0], row_real}}"
        other_loads += [
            "if (write__en) begin",
            "  col_addr <= col_addr_next;",
            f"  col_addr_next <= (col_addr_next == {_const(depth - 1)})"
            f" ? {_hex(0, address_width)} : col_addr_next + 1'h1;",
            "end",
            f"if (step & last_col) history_real <= last_row ? {_hex(0, history)} : {shifted};",
        ]
        for j in range(history):
            data = f"read__data[{(j + 1) * pixel_width - 1}:{j * pixel_width}]"
            column.append(f"(col_real & history_real[{j}]) ? {data} : {pad}")
    column.reverse()  # top to bottom

    # -- window registers, window_<r>_<c>: kernel row r, kernel column c --------------------
    step_loads: list[str] = []
    for r in range(kernel_h):
        for c in range(kernel_w):
            text.reg(f"window_{r}_{c}", pixel_width, 0)
            if c < kernel_w - 1:
                step_loads.append(f"window_{r}_{c} <= first_col ? {pad} : window_{r}_{c + 1};")
            else:
                step_loads.append(f"window_{r}_{c} <= {column[r]};")
    packed = ", ".join(
        f"window_{r}_{c}" for r in reversed(range(kernel_h)) for c in reversed(range(kernel_w))
    )
    text.assigns.append(f"assign o__payload = {{{packed}}};")

    # -- advance, emit ----------------------------------------------------------------------
    step_loads += text.load("o__valid", f"{zero(row_wait)} & {zero(col_wait)}")
    col_wait_next = f"{zero(col_wait)} ? {_const(stride_w - 1)} : {col_wait} - 1'h1"
    row_wait_next = f"{zero(row_wait)} ? {_const(stride_h - 1)} : {row_wait} - 1'h1"
    row_wait_load = text.load("row_wait", f"last_row ? {_const(row_wait_init)} : {row_wait_next}")
    step_loads += [
        "if (last_col) begin",
        *[f"  {load}" for load in text.load("col_wait", _const(col_wait_init))],
        *[f"  {load}" for load in row_wait_load],
        "end else begin",
        *[f"  {load}" for load in text.load("col_wait", col_wait_next)],
        "end",
        *text.load("row", next_row),
        *text.load("col", next_col),
        f"row_real <= ({next_row} >= {_const(top)}) & ({next_row} < {_const(top + window.height)});",
        f"col_real <= ({next_col} >= {_const(left)}) & ({next_col} < {_const(left + window.width)});",
        f"first_col <= {next_col} == {_const(g.first_col)};",
        f"last_col <= {next_col} == {_const(g.last_col)};",
        f"last_row <= {next_row} == {_const(g.last_row)};",
        f"leading <= ({next_row} < {_const(top)})"
        f" | (({next_row} == {_const(top)}) & ({next_col} < {_const(left)}));",
    ]

    memory = _memory("line_memory", "write__en", "col_addr") if kernel_h > 1 else []
    body = [
        "if (step) begin",
        *[f"  {load}" for load in step_loads],
        "end else if (o__ready) o__valid <= 1'h0;",
        *other_loads,
        *text.resets(resets),
    ]
    out_bits = kernel_h * kernel_w * pixel_width
    return text.module(name, pixel_width, out_bits, body, memory)


def multi_supported(window: MultiWindowGenerator) -> bool:
    """Whether `multi_window_verilog` writes ``window``: not a one-beat row with a line memory
    (whose read port must be transparent)."""
    return window.kernel[0] == 1 or window.rows.beats_per_row > 1


def multi_window_verilog(window: MultiWindowGenerator, name: str) -> str:
    """The Verilog module ``name`` of a `multi_pixel.MultiWindowGenerator` (P pixels per beat,
    valid padding), as `window_verilog` writes a `WindowGenerator`: the same ports, registers
    (``row``, ``beat``, ``last_beat``, ``last_row``, ``row_emits``, ``beat_emits``,
    ``o__valid``, ``strip_<r>_<q>``), reset, initial values and line memory
    (``line_memory``, ``beats_per_row`` words); ``multi_supported(window)``."""
    if not multi_supported(window):
        raise ValueError("multi_window_verilog: a one-beat row with a line memory")
    rows = window.rows
    kernel_h, kernel_w = window.kernel
    pixels, beats = rows.pixels, rows.beats_per_row
    pixel_width = window.channels * window.elem_shape.width
    beat_width = pixels * pixel_width
    text = _Text()

    row = text.reg("row", _range_width(rows.height), 0)
    beat = text.reg("beat", _range_width(beats), 0)
    flags = {
        "last_beat": beats == 1,
        "last_row": rows.height == 1,
        "row_emits": window.row_emits(0),
        "beat_emits": window.beat_emits(0),
    }
    for flag, init in flags.items():
        text.reg(flag, 1, int(init))
    text.decls += ["reg o__valid = 1'h0;", "wire step;"]
    # the next walk position unsized as Amaranth's `beat + 1` (one bit wider than `beat`):
    # compared and table-indexed at that width, truncated into the counters
    beat_next_width = max(text.widths["beat"], 1) + 1
    row_next_width = max(text.widths["row"], 1) + 1
    next_beat = text.wire("next_beat", beat_next_width, f"last_beat ? 1'h0 : {beat} + 1'h1")
    next_row = text.wire(
        "next_row", row_next_width, f"last_beat ? (last_row ? 1'h0 : {row} + 1'h1) : {row}"
    )
    row_table = sum(1 << r for r in range(rows.height) if window.row_emits(r))
    beat_table = sum(1 << b for b in range(beats) if window.beat_emits(b))
    text.assigns += [
        "assign i__ready = ~o__valid | o__ready;",
        "assign step = i__ready & i__valid;",
    ]
    resets = {"o__valid": 0, "row": 0, "beat": 0}
    resets |= {flag: int(init) for flag, init in flags.items()}
    text.widths["o__valid"] = 1
    step_loads = [
        *text.load("beat", next_beat),
        *text.load("row", next_row),
        f"last_beat <= {next_beat} == {_const(beats - 1)};",
        f"last_row <= {next_row} == {_const(rows.height - 1)};",
        f"row_emits <= {_hex(row_table, rows.height)} >> {next_row};",
        f"beat_emits <= {_hex(beat_table, beats)} >> {next_beat};",
        "o__valid <= row_emits & beat_emits;",
    ]

    def pixel(word: str, slot: int) -> str:
        return f"{word}[{(slot + 1) * pixel_width - 1}:{slot * pixel_width}]"

    block = [[pixel("i__payload", j) for j in range(pixels)]]  # bottom to top
    if kernel_h > 1:
        history = kernel_h - 1
        word = history * beat_width
        address_width = _range_width(beats)
        text.decls += [
            *memory_lines("line_memory", word, [0] * beats),
            f"wire [{address_width - 1}:0] read__addr;",
            f"reg [{word - 1}:0] read__data;",
            f"wire [{word - 1}:0] write__data;",
        ]
        written = "i__payload"
        if history > 1:
            written = f"{{read__data[{(history - 1) * beat_width - 1}:0], i__payload}}"
        text.assigns += [
            f"assign read__addr = step ? {next_beat} : {beat};",
            f"assign write__data = {written};",
        ]
        for k in range(history):
            low = k * beat_width
            block.append(
                [
                    f"read__data[{low + (j + 1) * pixel_width - 1}:{low + j * pixel_width}]"
                    for j in range(pixels)
                ]
            )
    block.reverse()  # top to bottom

    strip_width = kernel_w - 1 + pixels
    for r in range(kernel_h):
        for q in range(strip_width):
            text.reg(f"strip_{r}_{q}", pixel_width, 0)
        for q in range(kernel_w - 1):
            step_loads.append(f"strip_{r}_{q} <= strip_{r}_{q + pixels};")
        for j in range(pixels):
            step_loads.append(f"strip_{r}_{kernel_w - 1 + j} <= {block[r][j]};")

    def element(t: int, r: int, c: int) -> str:
        return f"strip_{r}_{window.first_slot + t * window.stride[1] + c}"

    slots = range(window.out_pixels)
    positions = [(r, c) for r in range(kernel_h) for c in range(kernel_w)]
    if window.interleave:
        parts = [element(t, r, c) for r, c in positions for t in slots]
    else:
        parts = [element(t, r, c) for t in slots for r, c in positions]
    text.assigns.append(f"assign o__payload = {{{', '.join(reversed(parts))}}};")

    memory = _memory("line_memory", "step", beat) if kernel_h > 1 else []
    body = [
        "if (step) begin",
        *[f"  {load}" for load in step_loads],
        "end else if (o__ready) o__valid <= 1'h0;",
        *text.resets(resets),
    ]
    return text.module(name, beat_width, len(parts) * pixel_width, body, memory)
