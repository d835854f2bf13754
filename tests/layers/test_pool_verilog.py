"""`layers/pool_verilog.py`: the Verilog text of a max-pool reduction is formally equivalent
(Yosys `equiv_make` / `equiv_induct`, every input and every state of the paired registers)
to the Verilog Amaranth's back end writes for the same `WindowMax`: signed and unsigned
elements, windows of 1 to 9 positions (one register stage, even and odd tree levels),
several channels."""

from __future__ import annotations

import pytest

from rtlgen.emit import component_verilog
from rtlgen.layers.pool import WindowMax
from rtlgen.layers.pool_verilog import supported, window_max_verilog
from rtlgen.quant.fixed import FixedType

from .test_mac_verilog import equivalent, needs_icarus, verilator_view_matches

#: (elements, channels, input type) of the window maxima both checks run on
SHAPES = [
    (4, 3, FixedType(8, 3, True)),
    (9, 2, FixedType(6, 0, True)),
    (1, 2, FixedType(5, 2, False)),
    (3, 1, FixedType(7, 4, False)),
    (2, 4, FixedType(1, 0, False)),
    (5, 2, FixedType(4, 1, True)),
]


@pytest.mark.parametrize("elements,channels,in_type", SHAPES)
def test_text_module_is_equivalent_to_amaranths(elements, channels, in_type, tmp_path):
    reduce = WindowMax(elements, channels, in_type)
    gold = component_verilog(reduce, "gold")
    ok, status = equivalent(gold, window_max_verilog(reduce, "gate"), tmp_path)
    assert ok, status[-3000:]


def test_the_check_finds_a_minimum_instead_of_the_maximum(tmp_path):
    reduce = WindowMax(4, 2, FixedType(6, 2, True))
    wrong = window_max_verilog(reduce, "gate").replace(") > $signed(", ") < $signed(")
    ok, _ = equivalent(component_verilog(reduce, "gold"), wrong, tmp_path)
    assert not ok


def test_a_reduction_that_rounds_is_left_to_amaranth():
    assert not supported(WindowMax(4, 2, FixedType(10, 4, True), FixedType(6, 2, True)))
    assert supported(WindowMax(4, 2, FixedType(10, 4, True)))


@needs_icarus
@pytest.mark.parametrize("elements,channels,in_type", SHAPES)
def test_verilators_view_computes_a_level_only_when_its_input_moved_with_the_same_outputs(
    elements, channels, in_type, tmp_path
):
    """Verilator's view (each tree level computed when what it reads moved) gives the
    outputs of the synthesis view on every cycle in Icarus (random held inputs, valid,
    backpressure, reset); one whose second level misses its input's change fails."""
    reduce = WindowMax(elements, channels, in_type)
    text = window_max_verilog(reduce, "gate")
    in_bits, out_bits = elements * channels * in_type.width, channels * in_type.width
    assert "`ifndef VERILATOR" in text
    assert verilator_view_matches(text, in_bits, out_bits, tmp_path, elements)
    if elements > 2:
        wrong = text.replace("sim_pending_2 <= load_1;", "sim_pending_2 <= 1'h0;")
        assert wrong != text
        assert not verilator_view_matches(wrong, in_bits, out_bits, tmp_path, elements)
    wrong = text.replace("(i__payload != sim_seen)", "(i__payload[0] != sim_seen[0])")
    assert wrong != text
    assert not verilator_view_matches(wrong, in_bits, out_bits, tmp_path, elements)
