"""`layers/argmax_verilog.py`: the Verilog text of an arg-max is formally equivalent (Yosys
`equiv_make` / `equiv_induct`, every input and every state of the paired registers) to the
Verilog Amaranth's back end writes for the same `ArgMax`: one to several levels, groups of
6 (registered compares, up to 10 at once in the last level) and pairwise, signed and
unsigned elements, ties (the first maximum wins)."""

from __future__ import annotations

import pytest
from amaranth.hdl import signed, unsigned

from rtlgen.emit import component_verilog
from rtlgen.layers.argmax import ArgMax
from rtlgen.layers.argmax_verilog import argmax_verilog

from .test_mac_verilog import equivalent, needs_icarus, verilator_view_matches


@pytest.mark.parametrize(
    "n,shape,group,registered",
    [
        (10, signed(8), 6, None),  # registered compares by default
        (23, signed(5), 6, True),
        (23, signed(5), 6, None),  # one-cycle levels of 6 by default
        (5, unsigned(4), 6, None),
        (1, signed(3), 6, True),
        (7, signed(5), 2, None),
        (3, unsigned(1), 2, None),
        (4, signed(1), 6, True),  # a sign bit alone, inverted
        (10, signed(16), 6, None),  # the demo's logits
    ],
)
def test_text_module_is_equivalent_to_amaranths(n, shape, group, registered, tmp_path):
    argmax = ArgMax(n, shape, group, registered)
    ok, status = equivalent(
        component_verilog(argmax, "gold"), argmax_verilog(argmax, "gate"), tmp_path
    )
    assert ok, status[-3000:]


@pytest.mark.parametrize("group,registered", [(6, True), (6, None), (2, None)])
def test_the_check_finds_the_last_maximum_winning_a_tie(group, registered, tmp_path):
    argmax = ArgMax(4, signed(6), group, registered)
    wrong = argmax_verilog(argmax, "gate").replace("} > {~", "} >= {~")
    assert wrong != argmax_verilog(argmax, "gate")
    ok, _ = equivalent(component_verilog(argmax, "gold"), wrong, tmp_path)
    assert not ok


def test_registered_compares_leave_only_registered_bits_before_the_select():
    """Group 6: the winners are ANDs of compare registers (no comparator before the select,
    issue 18's ECP5 critical path); pairwise stages compare and select in one cycle."""
    text = argmax_verilog(ArgMax(23, signed(8), registered=True), "gate")
    registered = text[: text.index("`else")].splitlines()  # the synthesis view
    wins = [line for line in registered if line.startswith("  assign win_")]
    assert wins and not any(" > " in line for line in wins)
    # 23 candidates: groups of 6, 6, 6 and 5 pairs compared, then the 4 winners'
    assert sum("<= ({~" in line for line in registered) == 3 * 15 + 10 + 6
    pairwise = argmax_verilog(ArgMax(23, signed(8), 2), "gate").splitlines()
    assert any(" > " in line for line in pairwise if line.startswith("  assign win_"))


def test_signed_compares_invert_the_sign_bits_and_compare_unsigned():
    """Signed elements: ``{~a[h], a[h-1:l]} > {~b[h], b[h-1:l]}``, the order of the signed
    values, which Yosys takes from the carry chain's end (no LUTs on the sign bits: the demo's
    ECP5 critical path, issue 18); unsigned elements compare as they are."""
    text = argmax_verilog(ArgMax(10, signed(16)), "gate")
    synthesis = text[: text.index("`else")]
    assert "$signed" not in synthesis
    assert (
        "gt_0_0_0_1 <= ({~i__payload[31], i__payload[30:16]} > {~i__payload[15], i__payload[14:0]});"
        in synthesis
    )
    one_bit = argmax_verilog(ArgMax(4, signed(1), registered=True), "gate")
    assert "({~i__payload[1]} > {~i__payload[0]})" in one_bit
    unsigned_text = argmax_verilog(ArgMax(10, unsigned(16)), "gate")
    assert "(i__payload[31:16] > i__payload[15:0])" in unsigned_text


@needs_icarus
@pytest.mark.parametrize(
    "n,shape,group,registered",
    [(10, signed(8), 6, None), (23, signed(5), 6, True), (7, signed(5), 2, None)],
)
def test_verilators_view_computes_a_stage_only_when_its_input_moved_with_the_same_outputs(
    n, shape, group, registered, tmp_path
):
    argmax = ArgMax(n, shape, group, registered)
    text = argmax_verilog(argmax, "gate")
    in_bits = n * shape.width
    out_bits = in_bits + (n - 1).bit_length()
    assert verilator_view_matches(text, in_bits, out_bits, tmp_path, n)
    wrong = text.replace("sim_pending_2 <= load_1;", "sim_pending_2 <= 1'h0;")
    assert wrong != text
    assert not verilator_view_matches(wrong, in_bits, out_bits, tmp_path, n)
