"""rtlgen.synth parsing helpers (the Yosys run itself is exercised by the benchmarks)."""

from __future__ import annotations

import re

from rtlgen.synth import lut_levels, parse_stat

STAT = """
5. Printing statistics.

=== top ===

        +----------Local Count, excluding submodules.
        |
     1715 wires
    12000 wire bits
        8 ports
      134 port bits
      769 cells
      127   CARRY4
      210   FDRE
        5   INV
      403   LUT2
       12   LUT5
"""


def test_parse_stat_reads_the_boxed_table():
    cells = parse_stat(STAT)
    assert cells == {"CARRY4": 127, "FDRE": 210, "INV": 5, "LUT2": 403, "LUT5": 12}


def _cell(kind, inputs, outputs):
    connections = {f"I{k}": [b] for k, b in enumerate(inputs)}
    connections.update({f"O{k}": [b] for k, b in enumerate(outputs)})
    directions = {p: ("input" if p.startswith("I") else "output") for p in connections}
    return {"type": kind, "connections": connections, "port_directions": directions}


def test_lut_levels_counts_luts_between_registers():
    # ff1 -> lut a -> carry -> lut b -> ff2 ; lut c -> lut b
    netlist = {
        "modules": {
            "top": {
                "cells": {
                    "ff1": _cell("FDRE", [1], [2]),
                    "a": _cell("LUT2", [2], [3]),
                    "carry": _cell("CARRY4", [3], [4]),
                    "c": _cell("LUT3", [2], [5]),
                    "b": _cell("LUT6", [4, 5], [6]),
                    "ff2": _cell("FDRE", [6], [7]),
                    "d": _cell("LUT1", [7], [8]),  # after ff2: a new path of one LUT
                }
            }
        }
    }
    assert lut_levels(netlist, "top", re.compile(r"^LUT\d$")) == 2
