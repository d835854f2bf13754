"""A max-pool reduction (`pool.WindowMax`) as Verilog text, straight from its shape.

Why text: after the MAC arrays and requantizers (`mac_verilog`, `requantize_verilog`) a
small CNN's max-pool trees were the largest family left in Amaranth's netlist, RTLIL and
Yosys run of its top (issue 20: a small model's fixed cost). The tree is a fixed
structure, so writing it is a loop over its levels.

`window_max_verilog(reduce, name)` is the whole component as one module with the ports
`rtlgen.emit.component_verilog` gives the Amaranth version (``clk``, ``rst``, ``i__payload``,
``i__valid``, ``i__ready``, ``o__payload``, ``o__valid``, ``o__ready``), the same registers
under the same names (``valid_<k>``, ``stage<level>_channels_<channel>_<k>``), the same
clock enable (``advance = ~o.valid | o.ready``), reset (valid bits only, synchronous) and
initial values (0), and the same logic: per channel a balanced tree of ``a > b ? a : b``
over the window positions (pairs in order, an odd one passed on), registered after every
level (one register stage when the window has one element).
tests/layers/test_pool_verilog.py proves the two equivalent with Yosys. A reduction that
also rounds into another type (``out_type != in_type``) is not written as text
(`supported`): Amaranth converts it as before.

Two views (`mac_verilog.two_views`, issue 17: bulk simulation speed): the registers are
written once for synthesis (the text before the views existed) and once for Verilator, where
each level is computed only when what it reads moved (`mac_verilog.StagedText`: the tree
is a pipeline of pure functions of ``i__payload``, which holds while the pool waits); every
register holds the hardware's value on every cycle. tests/layers/test_pool_verilog.py
compares the two views cycle by cycle in Icarus.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .mac_verilog import StagedText, module_head

if TYPE_CHECKING:
    from .pool import WindowMax


def supported(reduce: WindowMax) -> bool:
    """Whether `window_max_verilog` writes ``reduce``: no rounding stage."""
    return reduce.out_type == reduce.in_type


def window_max_verilog(reduce: WindowMax, name: str) -> str:
    """The Verilog module ``name`` of ``reduce`` (see the module doc); ``supported(reduce)``."""
    from .pool import _tree_levels

    if not supported(reduce):
        raise ValueError("window_max_verilog: a WindowMax that rounds into another type")
    in_type = reduce.in_type
    width, channels, elements = in_type.width, reduce.channels, reduce.window_elements
    levels = max(1, _tree_levels(elements))

    def larger(a: str, b: str) -> str:
        if in_type.signed:
            return f"(($signed({a}) > $signed({b})) ? {a} : {b})"
        return f"(({a} > {b}) ? {a} : {b})"

    text = StagedText()  # each level's registers read the level before: stage level + 1
    values = [
        [
            f"i__payload[{(p * channels + ch + 1) * width - 1}:{(p * channels + ch) * width}]"
            for p in range(elements)
        ]
        for ch in range(channels)
    ]
    for level in range(levels):
        registered = []
        for ch, column in enumerate(values):
            if level < _tree_levels(elements):
                pairs = [larger(column[k], column[k + 1]) for k in range(0, len(column) - 1, 2)]
                column = pairs + ([column[-1]] if len(column) % 2 else [])
            names = [
                text.reg(f"stage{level}_channels_{ch}_{k}", width, value)
                for k, value in enumerate(column)
            ]
            registered.append(names)
        values = registered
    in_bits = elements * channels * width
    lines = module_head(name, in_bits, channels * width, levels)
    packed = ", ".join(values[ch][0] for ch in reversed(range(channels)))
    output = f"  assign o__payload = {{{packed}}};"
    lines += text.views(levels, ("i__payload", in_bits), first=[output])
    lines.append("endmodule")
    return "\n".join(lines) + "\n"
