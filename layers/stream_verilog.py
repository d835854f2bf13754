"""A skid buffer (`stream_util.SkidBuffer`) as Verilog text.

Why text: every layer of a network ends in a skid buffer (`rtlgen.hardware.NetworkTop`),
so a small network's Amaranth top converted one per layer through the netlist, RTLIL and
Yosys (issue 20: the fixed cost of a small model). Written as text, buffers of the same
width share one module.

`skid_verilog(buffer, name)` is the whole component as one module with the ports
`rtlgen.emit.component_verilog` gives the Amaranth version (``clk``, ``rst``, ``i__payload``,
``i__valid``, ``i__ready``, ``o__payload``, ``o__valid``, ``o__ready``), the same registers
under the same names (``out``, ``out_valid``, ``skid``, ``skid_valid``), the same reset
(the valid bits only, synchronous, over the loads) and initial values (0), and the same
logic as `SkidBuffer.elaborate`. tests/layers/test_stream_verilog.py proves the two
equivalent with Yosys.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from amaranth.hdl import Shape

from .mac_verilog import _hex, stream_ports

if TYPE_CHECKING:
    from .stream_util import SkidBuffer


def skid_verilog(buffer: SkidBuffer, name: str) -> str:
    """The Verilog module ``name`` of ``buffer`` (see the module doc)."""
    width = Shape.cast(buffer.layout).width
    lines = [
        *stream_ports(name, width, width),
        f"  reg [{width - 1}:0] out = {_hex(0, width)};",
        "  reg out_valid = 1'h0;",
        f"  reg [{width - 1}:0] skid = {_hex(0, width)};",
        "  reg skid_valid = 1'h0;",
        "  assign i__ready = ~skid_valid;",
        "  assign o__valid = out_valid;",
        "  assign o__payload = out;",
        "  always @(posedge clk) begin",
        "    if (~out_valid | o__ready) begin",
        "      if (skid_valid) out <= skid;",
        "      else out <= i__payload;",
        "    end else if (i__valid & ~skid_valid) skid <= i__payload;",
        "    if (rst) begin",
        "      out_valid <= 1'h0;",
        "      skid_valid <= 1'h0;",
        "    end else if (~out_valid | o__ready) begin",
        "      if (skid_valid) begin",
        "        out_valid <= 1'h1;",
        "        skid_valid <= 1'h0;",
        "      end else out_valid <= i__valid;",
        "    end else if (i__valid & ~skid_valid) skid_valid <= 1'h1;",
        "  end",
        "endmodule",
    ]
    return "\n".join(lines) + "\n"
