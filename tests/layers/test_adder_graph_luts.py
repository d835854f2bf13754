"""`MatVecPlan.mapped_luts`: the LUTs Yosys maps a constant MAC array's adders to (one per
result bit where both operands have a bit, or where a subtraction inverts one; a pass-through
or a lone operand's bit in a sum costs none), checked on one-adder plans by hand."""

from __future__ import annotations

import numpy as np
import pytest

from rtlgen.layers.adder_graph import plan_matvec
from rtlgen.layers.common import Multiplier


def _plan(weights, in_range):
    w = np.array(weights, dtype=np.int64)
    return plan_matvec(w, [in_range] * w.shape[0], multiplier=Multiplier.LUT)


@pytest.mark.parametrize(
    ("weights", "in_range", "in_width", "in_signed", "luts"),
    [
        # x0 + x1, 6-bit unsigned: 7-bit result, both operands real in bits 0-5
        ([[1], [1]], (0, 63), 6, False, 6),
        # x0 + (x1 << 2): bits 0-1 pass through, both real in bits 2-5 only (x1's bits 6-7
        # ride the carry chain); the result is 9 bits wide, 7 outside the pass-through
        ([[1], [4]], (0, 63), 6, False, 4),
        # x0 - x1: both real in bits 0-5, the sign bit has neither
        ([[1], [-1]], (0, 63), 6, False, 6),
        # x0 + x1, 4-bit signed: the sign extensions make bit 4 a LUT too
        ([[1], [1]], (-8, 7), 4, True, 5),
    ],
)
def test_mapped_luts_of_one_adder(weights, in_range, in_width, in_signed, luts):
    plan = _plan(weights, in_range)
    assert plan.adders == 1
    assert plan.mapped_luts(in_width, in_signed) == luts


def test_mapped_luts_below_carry_bits_where_operands_do_not_overlap():
    """The carry-bit estimate counts a lone operand's bits; the mapped LUTs do not."""
    plan = _plan([[1], [4]], (0, 63))
    assert plan.carry_bits == 7
    assert plan.mapped_luts(6, False) == 4


def test_mapped_luts_add_up_over_a_random_array():
    rng = np.random.default_rng(0)
    w = rng.integers(-5, 6, (12, 5)) * (rng.random((12, 5)) > 0.5)
    plan = _plan(w, (0, 63))
    luts = plan.mapped_luts(6, False)
    assert 0 < luts <= plan.carry_bits + sum(n.kind == "neg" for n in plan.nodes) * 16
