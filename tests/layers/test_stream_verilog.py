"""`layers/stream_verilog.py`: the Verilog text of a skid buffer is formally equivalent (Yosys
`equiv_make` / `equiv_induct`, every input and every state of the paired registers) to the
Verilog Amaranth's back end writes for the same `SkidBuffer`."""

from __future__ import annotations

import pytest
from amaranth.hdl import signed, unsigned
from amaranth.lib import data

from rtlgen.emit import component_verilog
from rtlgen.layers.stream_util import SkidBuffer
from rtlgen.layers.stream_verilog import skid_verilog

from .test_mac_verilog import equivalent


@pytest.mark.parametrize("layout", [unsigned(1), signed(8), data.ArrayLayout(signed(6), 5)])
def test_text_module_is_equivalent_to_amaranths(layout, tmp_path):
    buffer = SkidBuffer(layout)
    ok, status = equivalent(component_verilog(buffer, "gold"), skid_verilog(buffer, "gate"), tmp_path)
    assert ok, status[-3000:]


def test_the_check_finds_a_buffer_that_drops_the_parked_beat(tmp_path):
    buffer = SkidBuffer(signed(8))
    wrong = skid_verilog(buffer, "gate").replace("out <= skid;", "out <= i__payload;")
    ok, _ = equivalent(component_verilog(buffer, "gold"), wrong, tmp_path)
    assert not ok
