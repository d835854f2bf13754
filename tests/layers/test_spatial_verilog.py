# amaranth: UnusedElaboratable=no
"""`layers/spatial_verilog.py`: the Verilog text of a crop, a nearest-neighbour upsampler
(with and without its row buffer) and a zero insertion is formally equivalent (Yosys
`equiv_make` / `equiv_induct` after `memory`: every input and every state of the paired
registers and row-buffer words) to the Verilog Amaranth's back end writes for the same
block, on odd shapes: one-row and one-column images (zero-bit counters), crops of every side,
sizes 1-3, strides and padding of a transposed convolution, signed elements, several
channels; and side by side with Amaranth's in Icarus Verilog under random gaps,
backpressure and resets. (Whole networks with these blocks: the spatial op tests, which convert through
`rtlgen.emit`.)"""

from __future__ import annotations

import pytest
from amaranth.hdl import signed, unsigned

from rtlgen.emit import component_verilog
from rtlgen.layers.mac_verilog import verilog_text
from rtlgen.layers.spatial import Crop, UpSampleNearest, ZeroInsert
from rtlgen.layers.spatial_verilog import (
    crop_verilog,
    supported,
    upsample_verilog,
    zero_insert_verilog,
)
from rtlgen.sim_tb import icarus

from .test_mac_verilog import equivalent
from .test_window_verilog import run_side_by_side

BLOCKS = {
    "crop-every-side": lambda: Crop(5, 6, 2, (1, 2, 2, 1), unsigned(4)),
    "crop-one-row": lambda: Crop(1, 7, 1, (0, 0, 3, 1), signed(5)),
    "crop-nothing-one-column": lambda: Crop(4, 1, 3, (1, 0, 0, 0), unsigned(3)),
    "upsample-2x3": lambda: UpSampleNearest(3, 5, 2, (2, 3), unsigned(4)),
    "upsample-rows-only": lambda: UpSampleNearest(4, 3, 1, (3, 1), signed(6)),
    "upsample-columns-only": lambda: UpSampleNearest(2, 4, 2, (1, 2), unsigned(3)),
    "upsample-one-column-no-buffer": lambda: UpSampleNearest(3, 1, 2, (1, 3), unsigned(3)),
    "zero-insert-2x2-padded": lambda: ZeroInsert(3, 4, 2, (2, 2), (1, 2, 2, 1), unsigned(4)),
    "zero-insert-3x1": lambda: ZeroInsert(2, 5, 1, (3, 1), (0, 0, 0, 0), signed(5)),
    "zero-insert-one-pixel": lambda: ZeroInsert(1, 1, 2, (1, 1), (0, 0, 0, 0), unsigned(3)),
}
WRITERS = {Crop: crop_verilog, UpSampleNearest: upsample_verilog, ZeroInsert: zero_insert_verilog}


@pytest.mark.parametrize("block", BLOCKS)
def test_text_module_is_equivalent_to_amaranths(block, tmp_path):
    component = BLOCKS[block]()
    assert supported(component)
    gate = WRITERS[type(component)](component, "gate")
    ok, status = equivalent(component_verilog(component, "gold"), gate, tmp_path)
    assert ok, status[-3000:]
    assert "0 are unproven" in status, status[-3000:]


@pytest.mark.parametrize(
    "block,old,new",
    [
        ("upsample-2x3", "read__addr = step ? next_col : col", "read__addr = col"),
        ("zero-insert-2x2-padded", "started <= ~", "started <= "),
        ("crop-every-side", "col_kept <= (next_col >= 2'h2)", "col_kept <= (next_col >= 2'h1)"),
    ],
)
def test_the_check_finds_a_wrong_block(block, old, new, tmp_path):
    component = BLOCKS[block]()
    text = WRITERS[type(component)](component, "gate")
    assert old in text
    ok, _ = equivalent(component_verilog(component, "gold"), text.replace(old, new), tmp_path)
    assert not ok


@pytest.mark.skipif(icarus.iverilog_version() is None, reason="iverilog is not installed")
@pytest.mark.parametrize("block", ["upsample-2x3", "zero-insert-2x2-padded", "crop-every-side"])
def test_text_module_runs_as_amaranths_under_gaps_and_backpressure(block, tmp_path):
    component = BLOCKS[block]()
    gate = WRITERS[type(component)](component, "gate")
    assert run_side_by_side(component, gate, tmp_path) > 20


def test_a_row_repeating_upsampler_of_one_column_is_left_to_amaranth():
    block = UpSampleNearest(3, 1, 2, (2, 2), unsigned(3))
    assert not supported(block)
    with verilog_text("net") as modules:
        text = component_verilog(block, "u")
    assert modules.modules == {} and "row_buffer" in text
