"""A table activation's ROMs (`lookup.LookupTable` with ``rom``) as Verilog text.

Why text: Amaranth's RTLIL back end writes a memory's initial contents bit by bit
(`amaranth.back.rtlil` ``emit_memory``/``sigspec``): a Keras MobileNetV3 at 12-bit inputs
spent ~17 s of its conversion there for ~30 table ROMs (issue 20). Here a table is one
``initial`` block of hexadecimal words.

`lookup_verilog(table, name)` is the whole component as one module with the ports
`rtlgen.emit.component_verilog` gives the Amaranth version (``clk``, ``rst``, ``i__payload``,
``i__valid``, ``i__ready``, ``o__payload``, ``o__valid``, ``o__ready``), the same pipeline
(`stream_util.pipeline_control`: ``advance``, ``valid_<k>``, reset of the valid bits only,
synchronous), one ROM ``rom<j>`` per two lanes (`lookup.ROM_READ_PORTS`) with the same
``rom_style`` attribute and contents (an ``initial`` block), read by each lane through a
synchronous read port enabled by ``advance`` into ``rom_data<k>`` (what Yosys infers a
memory read port from, as from Amaranth's `Memory`; the Amaranth version names its read
data ``rom_data<k>`` too, so that the proof pairs them), and at latency 2 the output
register ``out`` (initially 0).
tests/layers/test_lookup_verilog.py proves the two equivalent with Yosys.

Not written (`supported`): a table of case statements (``rom`` False: at most
`lookup.LOGIC_TABLE_MAX_BITS` input bits, no memory), which Amaranth converts as before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .mac_verilog import _hex, memory_lines, module_head, valid_chain

if TYPE_CHECKING:
    from .lookup import LookupTable


def supported(table: LookupTable) -> bool:
    """Whether `lookup_verilog` writes ``table``: its lanes read ROMs."""
    return table.rom


def lookup_verilog(table: LookupTable, name: str) -> str:
    """The Verilog module ``name`` of ``table`` (see the module doc); ``supported(table)``."""
    from .lookup import ROM_READ_PORTS

    if not supported(table):
        raise ValueError("lookup_verilog: a table of case statements")
    in_width, out_width = table.in_type.width, table.out_type.width
    lanes, latency = table.n_elements, table.latency
    contents = table.by_address()
    style = "block" if table.block else "logic"
    lines = module_head(name, lanes * in_width, lanes * out_width, latency)
    lines += valid_chain(latency)
    for rom in range((lanes + ROM_READ_PORTS - 1) // ROM_READ_PORTS):
        lines += [f"  {line}" for line in memory_lines(f"rom{rom}", out_width, contents, style)]
    for lane in range(lanes):
        address = f"i__payload[{(lane + 1) * in_width - 1}:{lane * in_width}]"
        lines += [
            f"  reg [{out_width - 1}:0] rom_data{lane};",
            "  always @(posedge clk)",
            f"    if (advance) rom_data{lane} <= rom{lane // ROM_READ_PORTS}[{address}];",
        ]
    looked_up = "{" + ", ".join(f"rom_data{lane}" for lane in reversed(range(lanes))) + "}"
    if latency == 2:
        total = lanes * out_width
        lines += [
            f"  reg [{total - 1}:0] out = {_hex(0, total)};",
            "  always @(posedge clk)",
            f"    if (advance) out <= {looked_up};",
        ]
        looked_up = "out"
    lines += [f"  assign o__payload = {looked_up};", "endmodule"]
    return "\n".join(lines) + "\n"
