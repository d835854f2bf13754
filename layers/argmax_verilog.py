"""An arg-max (`argmax.ArgMax`) as Verilog text, straight from its size.

Why text: a classifier's top ends in an arg-max, the last sizeable component a small
network's Amaranth top converted through the netlist, RTLIL and Yosys besides its window
generators and stream wiring (issue 20: a small model's fixed cost).

`argmax_verilog(argmax, name)` is the whole component as one module with the ports
`rtlgen.emit.component_verilog` gives the Amaranth version (``clk``, ``rst``, ``i__payload``,
``i__valid``, ``i__ready``, ``o__payload``, ``o__valid``, ``o__ready``), the same registers
under the same names (``valid_<k>``, ``max_<stage>_<group>``, ``idx_<stage>_<group>``,
``vector_d<k>``), the same clock enable (``advance = ~o.valid | o.ready``), reset (valid
bits only, synchronous) and initial values (0), and the same logic as `ArgMax.elaborate`:
per group of candidates every pair compared once, candidate k wins when it is greater than
every earlier one and no later one is greater (the first maximum wins), its value and index
selected by AND-OR. tests/layers/test_argmax_verilog.py proves the two equivalent with Yosys.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from amaranth.hdl import Shape

from .mac_verilog import _hex, module_head, valid_chain

if TYPE_CHECKING:
    from .argmax import ArgMax


def argmax_verilog(argmax: ArgMax, name: str) -> str:
    """The Verilog module ``name`` of ``argmax`` (see the module doc)."""
    elem = Shape.cast(argmax.elem_shape)
    width, n, group_size = elem.width, argmax.n, argmax.group
    index_width = Shape.cast(argmax.o.payload.index.shape()).width
    latency = argmax.latency
    decls: list[str] = []
    assigns: list[str] = []
    loads: list[str] = []

    def greater(a: str, b: str) -> str:
        return f"($signed({a}) > $signed({b}))" if elem.signed else f"({a} > {b})"

    def select(wins: list[str], values: list[str], bits: int) -> str:
        zero = _hex(0, bits)
        return " | ".join(f"({win} ? {value} : {zero})" for win, value in zip(wins, values, strict=True))

    level = [
        (f"i__payload[{(k + 1) * width - 1}:{k * width}]", _hex(k, index_width)) for k in range(n)
    ]
    for depth in range(latency):
        last = depth == latency - 1
        following = []
        for start in range(0, len(level), group_size):
            group = level[start : start + group_size]
            tag = f"{depth}_{start // group_size}"
            values = [value for value, _ in group]
            wins = []
            for k in range(len(group)):
                terms = [greater(values[k], values[i]) for i in range(k)]
                terms += [f"~{greater(values[j], values[k])}" for j in range(k + 1, len(group))]
                win = f"win_{tag}_{k}"
                decls.append(f"wire {win};")
                condition = " & ".join(terms) if terms else "1'h1"
                assigns.append(f"assign {win} = {condition};")
                wins.append(win)
            index = f"idx_{tag}"
            decls.append(f"reg [{index_width - 1}:0] {index} = {_hex(0, index_width)};")
            loads.append(f"{index} <= {select(wins, [i for _, i in group], index_width)};")
            value = None
            if not last:
                value = f"max_{tag}"
                decls.append(f"reg [{width - 1}:0] {value} = {_hex(0, width)};")
                loads.append(f"{value} <= {select(wins, values, width)};")
            following.append((value, index))
        level = following
    total = n * width
    for k in range(1, latency + 1):
        decls.append(f"reg [{total - 1}:0] vector_d{k} = {_hex(0, total)};")
        loads.append(f"vector_d{k} <= {'i__payload' if k == 1 else f'vector_d{k - 1}'};")
    lines = module_head(name, total, total + index_width, latency)
    lines += [f"  {d}" for d in decls]
    lines += valid_chain(latency)
    lines += [f"  {a}" for a in assigns]
    lines.append(f"  assign o__payload = {{{level[0][1]}, vector_d{latency}}};")
    lines += ["  always @(posedge clk)", "    if (advance) begin"]
    lines += [f"      {load}" for load in loads]
    lines += ["    end", "endmodule"]
    return "\n".join(lines) + "\n"
