"""An arg-max (`argmax.ArgMax`) as Verilog text, straight from its size.

Why text: a classifier's top ends in an arg-max, the last sizeable component a small
network's Amaranth top converted through the netlist, RTLIL and Yosys besides its window
generators and stream wiring (issue 20: a small model's fixed cost).

`argmax_verilog(argmax, name)` is the whole component as one module with the ports
`rtlgen.emit.component_verilog` gives the Amaranth version (``clk``, ``rst``, ``i__payload``,
``i__valid``, ``i__ready``, ``o__payload``, ``o__valid``, ``o__ready``), the same registers
under the same names (``valid_<k>``, ``gt_<level>_<group>_<i>_<j>``, ``cand_``/``cidx_``,
``max_<level>_<group>``, ``idx_<level>_<group>``, ``vector_d<k>``), the same clock enable
(``advance = ~o.valid | o.ready``), reset (valid bits only, synchronous) and initial values
(0), and the same logic as `ArgMax.elaborate`: the levels of `ArgMax.levels`, per group
of candidates every pair compared once (one-cycle levels: in the select's cycle; registered
compares: into registers a cycle before it; signed values compared unsigned with their sign
bits inverted, the same order in fewer LUT levels), candidate k wins when it is greater than every earlier one and
no later one is greater (the first maximum wins), its value and index selected by AND-OR.
tests/layers/test_argmax_verilog.py proves the two equivalent with Yosys. Verilator reads a
second view of the body, each stage computed only when what it reads changed
(`mac_verilog.two_views`, `StagedText`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from amaranth.hdl import Shape

from .mac_verilog import StagedText, _hex, module_head

if TYPE_CHECKING:
    from .argmax import ArgMax


def argmax_verilog(argmax: ArgMax, name: str) -> str:
    """The Verilog module ``name`` of ``argmax`` (see the module doc)."""
    elem = Shape.cast(argmax.elem_shape)
    width, n = elem.width, argmax.n
    index_width = Shape.cast(argmax.o.payload.index.shape()).width
    latency = argmax.latency
    registered = argmax.registered_compares
    text = StagedText()
    # the input vector's delays (registers written last): their stages known from the start
    text.stage_of.update({f"vector_d{k}": k for k in range(1, latency + 1)})

    def sign_flipped(value: str) -> str:
        """``value`` (``name[h:l]`` or a whole ``width``-bit name) with its sign bit inverted:
        compared unsigned, it orders as the signed value does."""
        name, bits = value.split("[", 1) if "[" in value else (value, f"{width - 1}:0]")
        high, low = (int(b) for b in bits.rstrip("]").split(":"))
        rest = f", {name}[{high - 1}:{low}]" if high > low else ""
        return f"{{~{name}[{high}]{rest}}}"

    def greater(a: str, b: str) -> str:
        # Signed: the sign bits inverted and compared unsigned. The same order, but Yosys then
        # takes the answer from the carry chain's end instead of two LUTs on its sign
        # (the demo's arg-max on ECP5: the critical path lost 2 LUT levels).
        if elem.signed:
            return f"({sign_flipped(a)} > {sign_flipped(b)})"
        return f"({a} > {b})"

    def select(wins: list[str], values: list[str], bits: int) -> str:
        zero = _hex(0, bits)
        return " | ".join(
            f"({win} ? {value} : {zero})" for win, value in zip(wins, values, strict=True)
        )

    def element(vector: str, k: int) -> str:
        return f"{vector}[{(k + 1) * width - 1}:{k * width}]"

    level = [(element("i__payload", k), _hex(k, index_width)) for k in range(n)]
    sizes = argmax.levels
    for depth, size in enumerate(sizes):
        last = depth == len(sizes) - 1
        following = []
        for start in range(0, len(level), size):
            group = level[start : start + size]
            tag = f"{depth}_{start // size}"
            values = [value for value, _ in group]
            indices = [index for _, index in group]
            later_greater = {}
            for i in range(len(group)):
                for j in range(i + 1, len(group)):
                    compare = greater(values[j], values[i])
                    if registered:
                        compare = text.reg(f"gt_{tag}_{i}_{j}", 1, compare)
                    later_greater[i, j] = compare
            if registered and depth == 0:  # the input's candidates: the vector's first delay
                values = [element("vector_d1", start + k) for k in range(len(group))]
            elif registered:
                for k in range(len(group)):
                    text.reg(f"cand_{tag}_{k}", width, values[k])
                    text.reg(f"cidx_{tag}_{k}", index_width, indices[k])
                values = [f"cand_{tag}_{k}" for k in range(len(group))]
                indices = [f"cidx_{tag}_{k}" for k in range(len(group))]
            wins = []
            for k in range(len(group)):
                terms = [later_greater[i, k] for i in range(k)]
                terms += [f"~{later_greater[k, j]}" for j in range(k + 1, len(group))]
                condition = " & ".join(terms) if terms else "1'h1"
                wins.append(text.wire(f"win_{tag}_{k}", None, condition))
            value = None  # the last level only needs the index
            if not last:
                value = text.reg(f"max_{tag}", width, select(wins, values, width))
            index = text.reg(f"idx_{tag}", index_width, select(wins, indices, index_width))
            following.append((value, index))
        level = following
    total = n * width
    for k in range(1, latency + 1):
        text.reg(f"vector_d{k}", total, "i__payload" if k == 1 else f"vector_d{k - 1}")
    lines = module_head(name, total, total + index_width, latency)
    output = f"  assign o__payload = {{{level[0][1]}, vector_d{latency}}};"
    lines += text.views(latency, ("i__payload", total), last=[output])
    lines.append("endmodule")
    return "\n".join(lines) + "\n"
