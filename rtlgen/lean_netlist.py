"""A leaner comb-cycle check for Amaranth's netlist builder: the same netlist, 10x less time.

Amaranth 0.5's `build_netlist` checks for combinational cycles bit by bit
(``Netlist.check_comb_cycles``): an adder of width w has w x 2w combinational edges, so the
check is quadratic in adder width (0.4 s of a 64 x 32 constant MAC array's ~4 s through
netlist and RTLIL; 20 s of 84 s for a 5 k-product MLP under the profiler, session 7).

`lean_netlist()` makes the check run over *cells* first (an edge from a cell to each cell it
reads combinationally: every input of an operator, part, match or assignment list; clock
and reset of a flip-flop; the exact per-bit edges of any other cell): 0.04 s for that array.
A bit-level cycle always maps to a cell-level one, so an acyclic cell graph proves the
design acyclic; where the cells form a cycle (a signal whose bits feed each other, which
is legal) Amaranth's own bit-level check decides and reports as before. The netlist, and so
the Verilog, is the same with or without it (tested). (Skipping ``Net.ensure`` in
``_nir.Value.__new__``, which the profiler blames for a quarter of the time, measured no
faster without the profiler: not done.)

Written against Amaranth 0.5 (``amaranth.hdl._nir`` is private): for another minor version
it does nothing and Amaranth runs as it is.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import amaranth
from amaranth.hdl import _nir

from rtlgen.patch import ClassPatch

#: the Amaranth versions whose `_nir` this was written against and tested with
SUPPORTED = ("0.5.",)

def supported() -> bool:
    return amaranth.__version__.startswith(SUPPORTED)


_ORIGINAL_CHECK = _nir.Netlist.check_comb_cycles

#: cells whose outputs may depend combinationally on any of their inputs
_ALL_INPUTS = (_nir.Operator, _nir.Part, _nir.Matches, _nir.PriorityMatch, _nir.AssignmentList)


def cells_acyclic(netlist: _nir.Netlist) -> bool:
    """Whether the cell-level graph of combinational dependencies has no cycle (then no
    bit-level cycle exists either); False also where a net cannot be followed."""
    cells = netlist.cells
    connections = netlist.connections
    deps: list[set[int]] = []
    try:
        for index, cell in enumerate(cells):
            if isinstance(cell, _nir.FlipFlop):
                nets = (cell.clk, cell.arst)
            elif isinstance(cell, _ALL_INPUTS):
                nets = cell.input_nets()
            else:
                nets = [
                    src for net in cell.output_nets(index) for src, _ in cell.comb_edges_to(net.bit)
                ]
            sources = set()
            for net in nets:
                while net < 0:  # a late net: the signal's driver
                    net = connections[net]
                if net >= 2:
                    sources.add(net >> 16)
            deps.append(sources)
    except KeyError:
        return False
    state = bytearray(len(cells))  # 0 unseen, 1 on the path, 2 done
    for root in range(len(cells)):
        if state[root]:
            continue
        state[root] = 1
        stack = [(root, iter(deps[root]))]
        while stack:
            node, successors = stack[-1]
            for nxt in successors:
                if state[nxt] == 1:
                    return False
                if state[nxt] == 0:
                    state[nxt] = 1
                    stack.append((nxt, iter(deps[nxt])))
                    break
            else:
                state[node] = 2
                stack.pop()
    return True


def _check_comb_cycles(self: _nir.Netlist) -> None:
    if cells_acyclic(self):
        return
    _ORIGINAL_CHECK(self)


_PATCH = ClassPatch(_nir.Netlist, "check_comb_cycles", _check_comb_cycles)


@contextlib.contextmanager
def lean_netlist() -> Iterator[None]:
    """Amaranth's netlist builder with the cell-level comb-cycle check, inside the block
    (re-entrant; restored on exit). Does nothing on an unsupported Amaranth version."""
    if not supported():
        yield
        return
    with _PATCH.applied():
        yield
