"""The stream-reshaping blocks of `spatial` (`Crop`, `UpSampleNearest`, `ZeroInsert`) as
Verilog text; `ZeroPad` is a `WindowGenerator` of 1x1 windows, written by `window_verilog`.

Why text: as for the window generators (`window_verilog`), a block of counters, flags and
one output register costs Amaranth's netlist, RTLIL and Yosys run of the top more than
writing it (issue 20: a small model's fixed cost; autoencoders and transposed convolutions
have several).

Each writer gives the whole component as one module with the ports
`rtlgen.emit.component_verilog` gives the Amaranth version (``clk``, ``rst``, ``i__payload``,
``i__valid``, ``i__ready``, ``o__payload``, ``o__valid``, ``o__ready``), the same registers
under the same names as its `elaborate` (``row``, ``col``, ``copy``, ``rep``, ``started``,
``row_kept``, ``col_kept``, ``out_valid``, ``out``), the same reset (synchronous; ``out`` has
none) and initial values, and `UpSampleNearest`'s row buffer as a Verilog memory
``row_buffer`` with a synchronous, non-transparent read port. A counter of one value is the
constant 0 (Amaranth's zero-bit signal); the next value of a counter is compared at Amaranth's
width (one bit wider than the counter) and truncated into it.
tests/layers/test_spatial_verilog.py proves each equivalent to Amaranth's Verilog with Yosys.

Not written (`supported`): an upsampler of a one-column image that repeats rows (its row
buffer's read port must be transparent): Amaranth converts it as before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .mac_verilog import _hex, memory_lines
from .window_verilog import _const, _memory, _range_width, _Text

if TYPE_CHECKING:
    from .spatial import Crop, UpSampleNearest, ZeroInsert


def supported(block: Crop | UpSampleNearest | ZeroInsert) -> bool:
    """Whether `spatial_verilog` writes ``block``: not a row-repeating upsampler of width 1."""
    from .spatial import UpSampleNearest

    return not (isinstance(block, UpSampleNearest) and block.size[0] > 1 and block.width == 1)


def _counter(text: _Text, name: str, count: int) -> tuple[str, str]:
    """A ``Signal(range(count))`` register ``name`` (reset 0) and, as a wire one bit wider,
    Amaranth's ``_counter_next``: 0 after ``count - 1``, else + 1."""
    value = text.reg(name, _range_width(count), 0)
    width = max(text.widths[name], 1) + 1
    after = text.wire(
        f"{name}_next", width, f"({value} == {_const(count - 1)}) ? 1'h0 : {value} + 1'h1"
    )
    return value, after


def _module(block, name: str, text: _Text, body: list[str], memory: list[str]) -> str:
    width = block.channels * block.element_shape.width
    text.assigns[:0] = ["assign o__valid = out_valid;", "assign o__payload = out;"]
    return text.module(name, width, width, body, memory)


def crop_verilog(block: Crop, name: str) -> str:
    """The Verilog module ``name`` of a `spatial.Crop` (see the module doc)."""
    top, _, left, _ = block.cropping
    width = block.channels * block.element_shape.width
    text = _Text()
    row, row_after = _counter(text, "row", block.height)
    col = text.reg("col", _range_width(block.width), 0)
    flags = {"row_kept": int(top == 0), "col_kept": int(left == 0), "out_valid": 0}
    for flag, init in flags.items():
        text.reg(flag, 1, init)
    text.reg("out", width, 0)
    text.decls.append("wire advance;")
    last_col = f"({col} == {_const(block.width - 1)})"
    next_width = max(text.widths["col"], 1) + 1
    next_col = text.wire("next_col", next_width, f"{last_col} ? 1'h0 : {col} + 1'h1")
    next_row = text.wire(
        "next_row", max(text.widths["row"], 1) + 1, f"{last_col} ? {row_after} : {row}"
    )
    text.assigns += ["assign advance = ~out_valid | o__ready;", "assign i__ready = advance;"]
    body = [
        "if (advance) begin",
        "  out <= i__payload;",
        "  out_valid <= i__valid & row_kept & col_kept;",
        "end",
        "if (advance & i__valid) begin",
        *[f"  {load}" for load in text.load("col", next_col) + text.load("row", next_row)],
        f"  col_kept <= ({next_col} >= {_const(left)})"
        f" & ({next_col} < {_const(left + block.out_width)});",
        f"  row_kept <= ({next_row} >= {_const(top)})"
        f" & ({next_row} < {_const(top + block.out_height)});",
        "end",
        *text.resets({"row": 0, "col": 0, **flags}),
    ]
    return _module(block, name, text, body, [])


def upsample_verilog(block: UpSampleNearest, name: str) -> str:
    """The Verilog module ``name`` of a `spatial.UpSampleNearest` (see the module doc);
    ``supported(block)``."""
    if not supported(block):
        raise ValueError("upsample_verilog: a row-repeating upsampler of a one-column image")
    size_h, size_w = block.size
    width = block.channels * block.element_shape.width
    text = _Text()
    copy, copy_after = _counter(text, "copy", size_h)
    col, col_after = _counter(text, "col", block.width)
    rep, rep_after = _counter(text, "rep", size_w)
    text.reg("out", width, 0)
    text.reg("out_valid", 1, 0)
    text.decls += ["wire advance;", "wire takes_input;", "wire step;"]
    last_rep = f"({rep} == {_const(size_w - 1)})"
    last_col = f"({col} == {_const(block.width - 1)})"
    next_col = text.wire(
        "next_col", max(text.widths["col"], 1) + 1, f"{last_rep} ? {col_after} : {col}"
    )
    next_copy = text.wire(
        "next_copy",
        max(text.widths["copy"], 1) + 1,
        f"({last_rep} & {last_col}) ? {copy_after} : {copy}",
    )
    text.assigns += [
        "assign advance = ~out_valid | o__ready;",
        f"assign takes_input = ({copy} == 1'h0) & ({rep} == 1'h0);",
        "assign i__ready = advance & takes_input;",
        "assign step = advance & (i__valid | ~takes_input);",
    ]
    loaded = "i__payload"
    memory: list[str] = []
    if size_h > 1:
        address_width = _range_width(block.width)
        text.decls += [
            *memory_lines("row_buffer", width, [0] * block.width),
            f"wire [{address_width - 1}:0] read__addr;",
            f"reg [{width - 1}:0] read__data;",
        ]
        text.assigns.append(f"assign read__addr = step ? {next_col} : {col};")
        memory = _memory("row_buffer", "step & takes_input", col, "i__payload")
        loaded = f"({copy} == 1'h0) ? i__payload : read__data"
    loads = text.load("rep", rep_after) + text.load("col", next_col) + text.load("copy", next_copy)
    body = [
        "if (step) begin",
        "  out_valid <= 1'h1;",
        *[f"  {load}" for load in loads],
        f"  if ({rep} == 1'h0) out <= {loaded};",
        "end else if (o__ready) out_valid <= 1'h0;",
        *text.resets(dict.fromkeys(["copy", "col", "rep", "out_valid"], 0)),
    ]
    return _module(block, name, text, body, memory)


def zero_insert_verilog(block: ZeroInsert, name: str) -> str:
    """The Verilog module ``name`` of a `spatial.ZeroInsert` (see the module doc)."""
    rows = sum(1 << r for r in range(block.out_height) if block.pixel_row(r))
    cols = sum(1 << c for c in range(block.out_width) if block.pixel_col(c))
    width = block.channels * block.element_shape.width
    text = _Text()
    row, row_after = _counter(text, "row", block.out_height)
    col, col_after = _counter(text, "col", block.out_width)
    text.reg("started", 1, 0)
    text.reg("out", width, 0)
    text.reg("out_valid", 1, 0)
    text.decls += ["wire advance;", "wire pixel;", "wire step;"]
    last_col = f"({col} == {_const(block.out_width - 1)})"
    last = f"({last_col} & ({row} == {_const(block.out_height - 1)}))"
    row_bit = text.wire("row_bit", block.out_height, f"{_hex(rows, block.out_height)} >> {row}")
    col_bit = text.wire("col_bit", block.out_width, f"{_hex(cols, block.out_width)} >> {col}")
    text.assigns += [
        f"assign pixel = {row_bit}[0] & {col_bit}[0];",
        "assign advance = ~out_valid | o__ready;",
        "assign i__ready = advance & pixel;",
        "assign step = advance & (pixel ? i__valid : started | i__valid);",
    ]
    body = [
        "if (step) begin",
        f"  out <= pixel ? i__payload : {_hex(0, width)};",
        "  out_valid <= 1'h1;",
        *[f"  {load}" for load in text.load("col", col_after)],
        f"  started <= ~{last};",
        *[f"  if ({last_col}) {load}" for load in text.load("row", row_after)],
        "end else if (o__ready) out_valid <= 1'h0;",
        *text.resets(dict.fromkeys(["row", "col", "started", "out_valid"], 0)),
    ]
    return _module(block, name, text, body, [])
