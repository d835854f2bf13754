"""rtlgen.synth: parsing helpers, and (slow) the logic depth of a real generated network."""

from __future__ import annotations

import re

import numpy as np
import pytest

from rtlgen.synth import deepest_lut_path, describe_path, lut_levels, parse_stat, synthesize

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


def test_deepest_path_names_its_luts_and_the_instances_they_run_through():
    # ff1 -> lut a -> lut b -> lut e -> ff2 ; ff1 -> lut c -> lut e
    cells = {
        "ff1": _cell("FDRE", [1], [2]),
        "a": _cell("LUT2", [2], [3]),
        "b": _cell("LUT2", [3], [4]),
        "c": _cell("LUT2", [2], [5]),
        "e": _cell("LUT3", [4, 5], [6]),
        "ff2": _cell("FDRE", [6], [7]),
    }
    netnames = {
        "l1_pool.reduce.valid_1": {"bits": [2]},
        "$abc$12$lut": {"bits": [3]},  # Yosys's own: names nothing
        "l1_pool.window.step": {"bits": [4], "hide_name": 0},
        "l0_conv_skid.o__ready": {"bits": [5]},
        "hidden.x": {"bits": [6], "hide_name": 1},
        "l2_dense.i__payload": {"bits": [6, "0"]},
    }
    netlist = {"modules": {"top": {"cells": cells, "netnames": netnames}}}
    path = deepest_lut_path(netlist, "top", re.compile(r"^LUT\d$"))
    assert path == ["a", "b", "e"]
    assert describe_path(netlist, "top", path) == [
        "l1_pool.reduce", "l1_pool.window", "l2_dense"  # not c's l0_conv_skid: off the path
    ]
    assert deepest_lut_path({"modules": {"top": {"cells": {}}}}, "top", re.compile("LUT")) == []


def test_distributed_ram_read_is_a_lut_level_and_its_write_side_is_clocked():
    def ram(addr, data_in, data_out):
        return {
            "type": "RAM32M",
            "connections": {"ADDRA": addr, "DIA": data_in, "WE": [99], "DOA": data_out},
            "port_directions": {"ADDRA": "input", "DIA": "input", "WE": "input", "DOA": "output"},
        }

    # ff1 -> lut a -> RAM read address -> lut b -> ff2: three levels
    # ff1 -> lut c -> lut d -> RAM write data: the path ends at the RAM (two levels)
    cells = {
        "ff1": _cell("FDRE", [1], [2]),
        "a": _cell("LUT2", [2], [3]),
        "c": _cell("LUT2", [2], [10]),
        "d": _cell("LUT2", [10], [11]),
        "ram": ram([3], [11], [4]),
        "b": _cell("LUT4", [4], [5]),
        "ff2": _cell("FDRE", [5], [6]),
    }
    netlist = {"modules": {"top": {"cells": cells}}}
    assert lut_levels(netlist, "top", re.compile(r"^LUT\d$")) == 3
    cells["a"] = _cell("FDRE", [2], [3])  # a registered read address: RAM + lut b
    assert lut_levels(netlist, "top", re.compile(r"^LUT\d$")) == 2


@pytest.mark.slow
@pytest.mark.parametrize("multiplier", ["auto", "dsp", "lut"])
def test_demo_network_keeps_six_lut_levels_between_registers(tmp_path, multiplier):
    """The issue's aim (<= 6 LUTs in series after Xilinx synthesis) on the demo CNN, which
    has a window generator, constant MACs, max pooling, a time-multiplexed dense layer and
    the AXI/arg-max output stage; Yosys is pinned, so this guards against regressions."""
    from amaranth.back import verilog

    from rtlgen.api import load_model
    from rtlgen.demo import demo_files
    from rtlgen.hardware import HardwareOptions, Multiplier, NetworkTop

    model, weights, samples = demo_files()
    graph = load_model(model, weights=weights, input_type=str(np.load(samples)["input_type"]))
    top = NetworkTop(graph, HardwareOptions(multiplier=Multiplier(multiplier)))
    path = tmp_path / "top.v"
    path.write_text(verilog.convert(top, name="top"))
    result = synthesize(path, "top")
    assert result.lut_levels <= 6, result.as_dict()
    if multiplier == "lut":
        assert result.dsps == 0


@pytest.mark.slow
@pytest.mark.parametrize("multiplier", ["dsp", "lut"])
def test_large_constant_mac_array_stays_shallow_at_the_default_adders_per_stage(
    tmp_path, multiplier
):
    """A conv layer's MAC array of the SVHN CNN's size (3x3x16 -> 16, 6-bit weights, half
    pruned): at the default 2 adders per stage it keeps <= 5 LUT levels, a level of margin
    under the aim for whole designs, where ABC9 stretches some paths by one or two."""
    from amaranth.back import verilog

    from rtlgen.hardware import HardwareOptions
    from rtlgen.layers.constant_mac import ConstantMatVec
    from rtlgen.quant.fixed import FixedType

    rng = np.random.default_rng(7)
    w = rng.integers(-31, 32, size=(144, 16)) * (rng.random((144, 16)) >= 0.5)
    mac = ConstantMatVec(
        w, FixedType(6, 0, signed=False), FixedType(24, 0), rng.integers(-500, 500, 16),
        multiplier, levels_per_stage=HardwareOptions().adders_per_stage,
    )
    path = tmp_path / "mac.v"
    path.write_text(verilog.convert(mac, name="mac"))
    result = synthesize(path, "mac")
    assert result.lut_levels <= 5, result.as_dict()


def _kept_bank_design(tmp_path):
    """A top holding one instance of a two-level threshold bank's text module (marked
    keep_hierarchy, `layers/bank_verilog.py`), and that module alone."""
    from rtlgen.layers.bank_verilog import KEEP_HIERARCHY, bank_verilog
    from rtlgen.layers.threshold import ThresholdBank
    from rtlgen.quant.fixed import FixedType

    in_type, out_type = FixedType(9, 0, True), FixedType(5, 0, False)
    ts = list(range(-200, 250, 15))  # 30 thresholds: a two-level search
    bank = ThresholdBank(in_type, out_type, [ts, ts[::3]], [list(range(31)), list(range(11))])
    text = bank_verilog(bank, "bank_text")
    assert bank.two_level and text.startswith(KEEP_HIERARCHY)
    top = (
        "module top(clk, rst, i__payload, i__valid, i__ready, o__payload, o__valid, o__ready);\n"
        "  input clk, rst, i__valid, o__ready;\n  input [17:0] i__payload;\n"
        "  output i__ready, o__valid;\n  output [9:0] o__payload;\n"
        "  bank_text bank(.clk(clk), .rst(rst), .i__payload(i__payload), .i__valid(i__valid),"
        " .i__ready(i__ready), .o__payload(o__payload), .o__valid(o__valid),"
        " .o__ready(o__ready));\nendmodule\n"
    )
    (tmp_path / "top.v").write_text(top + text)
    (tmp_path / "alone.v").write_text(text)
    return tmp_path / "top.v", tmp_path / "alone.v"


@pytest.mark.slow  # two synth_xilinx runs, ~20 s (the default run stays under 5 minutes)
def test_a_module_kept_apart_is_counted_in_the_flattened_design(tmp_path):
    """A keep_hierarchy module (a threshold bank's text) is mapped by itself, then the
    design is flattened before counting: its LUTs, flip-flops and LUT levels are those of
    the module synthesized alone, and the deepest path runs through the instance."""
    design, alone = _kept_bank_design(tmp_path)
    kept, own = synthesize(design, "top"), synthesize(alone, "bank_text")
    assert own.lut_levels >= 2 and own.luts > 0
    assert (kept.luts, kept.ffs, kept.lut_levels) == (own.luts, own.ffs, own.lut_levels)
    assert any(name.startswith("bank") for name in kept.deepest_path), kept.deepest_path


def test_simulation_netlists_flatten_a_module_kept_apart(tmp_path):
    """The netlist flows remove the mark first: one flat module, as before."""
    from rtlgen.synth import write_netlist

    design, _ = _kept_bank_design(tmp_path)
    netlist = write_netlist([design], "top", "generic", tmp_path / "out").read_text()
    assert re.findall(r"^module (\w+)", netlist, flags=re.M) == ["top"]
