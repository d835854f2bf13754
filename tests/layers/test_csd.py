"""CSD decomposition and the shift-and-add plan (pure Python, no simulation)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtlgen.layers.adder_graph import (
    TREE_ORDERS,
    Term,
    _Builder,
    _Sum,
    _tree,
    plan_matvec,
    width_of,
)
from rtlgen.layers.csd import csd_digits, csd_weight, odd_part


@given(st.integers(-(2**40), 2**40))
def test_csd_digits_sum_to_the_value(value):
    assert sum(d.sign << d.shift for d in csd_digits(value)) == value


@given(st.integers(-(2**40), 2**40))
def test_csd_has_no_adjacent_nonzero_digits(value):
    shifts = [d.shift for d in csd_digits(value)]
    assert all(b - a >= 2 for a, b in zip(shifts, shifts[1:], strict=False))


@given(st.integers(-(2**20), 2**20))
def test_csd_never_has_more_digits_than_binary(value):
    assert csd_weight(value) <= bin(abs(value)).count("1")


def test_csd_of_small_constants():
    assert csd_digits(0) == []
    assert [tuple(d) for d in csd_digits(7)] == [(0, -1), (3, 1)]
    assert [tuple(d) for d in csd_digits(-8)] == [(3, -1)]
    assert csd_weight(0b1010101) == 4
    assert csd_weight(-1) == 1


@given(st.integers(-(2**30), 2**30).filter(lambda v: v != 0))
def test_odd_part_reconstructs_magnitude(value):
    odd, shift = odd_part(value)
    assert odd % 2 == 1 and odd << shift == abs(value)


def _random_case(draw_seed: int, k: int, o: int, sparsity: float, lo: int, hi: int):
    rng = np.random.default_rng(draw_seed)
    w = rng.integers(-40, 41, size=(k, o))
    w[rng.random((k, o)) < sparsity] = 0
    bias = rng.integers(-500, 501, size=o)
    x = rng.integers(lo, hi + 1, size=(40, k))
    x[0], x[1] = lo, hi
    return w, bias, x


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    k=st.integers(1, 20),
    o=st.integers(1, 20),
    sparsity=st.floats(0.0, 0.9),
    mode=st.sampled_from(["lut", "dsp", "auto"]),
    levels=st.integers(1, 4),
    signed_input=st.booleans(),
)
def test_plan_evaluates_to_matrix_product(seed, k, o, sparsity, mode, levels, signed_input):
    lo, hi = (-128, 127) if signed_input else (0, 255)
    w, bias, x = _random_case(seed, k, o, sparsity, lo, hi)
    plan = plan_matvec(w, [(lo, hi)] * k, bias, mode, levels_per_stage=levels)
    np.testing.assert_array_equal(plan.evaluate(x), x @ w + bias)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), k=st.integers(1, 16), o=st.integers(1, 16))
def test_plan_ranges_are_exact_and_widths_cover_them(seed, k, o):
    w, bias, _ = _random_case(seed, k, o, 0.3, -8, 7)
    plan = plan_matvec(w, [(-8, 7)] * k, bias, "lut")
    lo = (np.minimum(w * -8, w * 7)).sum(axis=0) + bias
    hi = (np.maximum(w * -8, w * 7)).sum(axis=0) + bias
    assert plan.out_ranges == list(zip(lo.tolist(), hi.tolist(), strict=True))
    for node in plan.nodes:
        assert node.lo <= node.hi
        assert width_of(node.lo, node.hi) >= 1


def test_zero_weights_produce_no_terms():
    w = np.zeros((6, 3), dtype=np.int64)
    w[2, 1] = 5
    plan = plan_matvec(w, [(-8, 7)] * 6, np.array([3, 0, -4]), "lut")
    assert plan.nonzero_weights == 1
    assert plan.multipliers == 1
    assert plan.outputs[0] is None and plan.outputs[2] is None  # constant bias columns
    # 5 = 4 + 1: one adder, plus none for the bias (column 1 has no bias).
    assert plan.adders == 1


def test_powers_of_two_need_no_multiplier():
    w = np.array([[1, -2, 4], [8, 16, 2]])
    plan = plan_matvec(w, [(-8, 7)] * 2, None, "dsp")
    assert plan.multipliers == 0 and plan.dsp_multipliers == 0
    assert plan.adders == 3  # one per column, no pair in common


def test_shared_product_is_built_once_in_dsp_mode():
    w = np.array([[3, 3, -3, 6, 12]])  # all columns use x * 3
    plan = plan_matvec(w, [(-8, 7)], None, "dsp")
    assert plan.multipliers == 1 and plan.dsp_multipliers == 1
    assert plan.adders == 1  # only the negation of column 2


def test_common_pairs_are_shared_across_columns():
    # Every column contains x0 + x1 (times a column-specific power of two).
    w = np.array([[1, 2, 4, 8], [1, 2, 4, 8], [0, 1, 0, 1]])
    shared = plan_matvec(w, [(0, 15)] * 3, None, "lut")
    unshared = plan_matvec(w, [(0, 15)] * 3, None, "lut", cse="none")
    assert shared.adders < unshared.adders
    assert any(n.shared for n in shared.nodes)


def test_auto_mode_uses_dsp_only_for_wide_dense_constants():
    # 7 = 8 - 1 (2 digits): LUT; 0b101011 = 43 (3 CSD digits) on 16-bit inputs: DSP.
    plan = plan_matvec(np.array([[7, 43]]), [(-(2**15), 2**15 - 1)], None, "auto")
    assert plan.dsp_multipliers == 1
    narrow = plan_matvec(np.array([[7, 43]]), [(0, 3)], None, "auto")
    assert narrow.dsp_multipliers == 0


@pytest.mark.parametrize("levels", [1, 2, 3])
def test_deeper_stages_never_increase_latency(levels):
    rng = np.random.default_rng(5)
    w = rng.integers(-32, 32, size=(24, 6))
    deep = plan_matvec(w, [(0, 63)] * 24, None, "lut", levels_per_stage=levels + 1)
    shallow = plan_matvec(w, [(0, 63)] * 24, None, "lut", levels_per_stage=levels)
    assert deep.latency <= shallow.latency


@pytest.mark.parametrize("cse", ["full", "products", "none"])
def test_every_sharing_mode_is_exact(cse):
    rng = np.random.default_rng(6)
    w = rng.integers(-32, 32, size=(12, 9))
    x = rng.integers(-100, 100, size=(30, 12))
    plan = plan_matvec(w, [(-100, 99)] * 12, None, "lut", cse=cse)
    np.testing.assert_array_equal(plan.evaluate(x), x @ w)


@pytest.mark.parametrize(
    ("shape", "cse", "signed_input"),
    [
        ((40, 10), "full", False),
        ((30, 8), "full", True),
        ((24, 12), "products", True),
    ],
)
def test_cse_in_numpy_plans_as_term_by_term(monkeypatch, shape, cse, signed_input):
    """Columns' pairs counted with numpy (`_Rows`, counts settled in arrays) choose the same
    patterns in the same order as the term-by-term count: the same plan, node for node."""
    import rtlgen.layers.adder_graph as adder_graph

    rng = np.random.default_rng(sum(shape))
    w = rng.integers(-31, 32, size=shape)
    w[rng.random(shape) < 0.2] = 0
    ranges = [(-128, 127) if signed_input else (0, 255)] * shape[0]

    def plan(group_arrays: int, settle_arrays: int):
        monkeypatch.setattr(adder_graph, "GROUP_ARRAYS", group_arrays)
        monkeypatch.setattr(adder_graph, "SETTLE_ARRAYS", settle_arrays)
        p = plan_matvec(w, ranges, None, "lut", cse=cse)
        return [vars(n) for n in p.nodes], p.outputs

    term_by_term = plan(10**9, 10**9)
    assert plan(2, 0) == term_by_term
    assert plan(8, 256) == term_by_term


def test_sharing_saves_adders_in_order():
    rng = np.random.default_rng(7)
    w = rng.integers(-32, 32, size=(16, 16))
    adders = {
        cse: plan_matvec(w, [(0, 63)] * 16, None, "lut", cse=cse).adders
        for cse in ("full", "products", "none")
    }
    assert adders["full"] < adders["products"] < adders["none"]


def _column_plan(seed: int, k: int, signed_input: bool):
    rng = np.random.default_rng(seed)
    w = rng.integers(-40, 41, size=(k, 1))
    w[w == 0] = 3
    lo, hi = (-128, 127) if signed_input else (0, 255)
    return w, [(lo, hi)] * k


def _brute_force_bits(builder, sums) -> int:
    """The fewest adder bits of a tree over every orientation of its adders (the rule of
    `MatVecPlan.carry_bits`: a positive unshifted operand passes its low bits through; an
    adder with two negative operands is the other orientation; a negative root is negated)."""
    index = {id(item): k for k, item in enumerate(sums)}
    best = None
    for mask in range(2 ** len(sums)):
        orient = [-1 if mask >> k & 1 else 1 for k in range(len(sums))]
        bits = 0
        for k, item in enumerate(sums):
            o = orient[k]
            signs, widths = [], []
            for child in (item.low, item.high):
                if isinstance(child, _Sum):
                    oc = orient[index[id(child)]]
                    n = child.value
                    signs.append(o * oc)
                    widths.append(width_of(*((n.lo, n.hi) if oc > 0 else (-n.hi, -n.lo))))
                else:
                    n = builder.nodes[child.node]
                    signs.append(o * child.sign)
                    widths.append(width_of(n.lo, n.hi))
            if signs[0] < 0 and signs[1] < 0:
                break
            lo, hi = (item.value.lo, item.value.hi) if o > 0 else (-item.value.hi, -item.value.lo)
            bits += width_of(lo, hi)
            d = item.high.shift - item.low.shift
            if d > 0 and signs[0] > 0:
                bits -= min(d, widths[0])
        else:
            if orient[-1] < 0:
                bits += width_of(sums[-1].value.lo, sums[-1].value.hi)
            best = bits if best is None else min(best, bits)
    return best


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), k=st.integers(2, 4), signed_input=st.booleans())
def test_adder_trees_take_the_cheapest_order_and_orientation(seed, k, signed_input):
    """A column's adder tree is the cheapest (in `carry_bits`) of `TREE_ORDERS` over every
    orientation of its adders, found by brute force here; all orders share one schedule."""
    w, ranges = _column_plan(seed, k, signed_input)
    plan = plan_matvec(w, ranges, None, "lut", levels_per_stage=2, cse="none")
    builder = _Builder(ranges, 2, 0)
    terms = []
    for i in range(k):
        node = builder.input(i)
        terms += [Term(node, digit.shift, digit.sign) for digit in csd_digits(int(w[i, 0]))]
    trees = [_tree(builder, terms, order) for order in TREE_ORDERS]
    assert len({(t[-1].value.cycle, t[-1].value.depth) for t in trees}) == 1
    assert plan.carry_bits == min(_brute_force_bits(builder, sums) for sums in trees)
    x = np.random.default_rng(seed).integers(*ranges[0], endpoint=True, size=(20, k))
    np.testing.assert_array_equal(plan.evaluate(x), x @ w)


def test_a_negative_low_term_is_subtracted_from_instead_of_added():
    # x0 + 2x1 - 16x2 + 64x3: -x2 + (x3 << 2) would add all of x2's bits; built as
    # x2 - (x3 << 2), x2's low 2 bits pass through and the root subtracts that node.
    w = np.array([[1], [2], [-16], [64]])
    plan = plan_matvec(w, [(0, 15)] * 4, None, "lut", cse="none")
    flipped = [n for n in plan.nodes if n.kind == "add" and n.coeffs == {2: 1, 3: -4}]
    assert len(flipped) == 1 and flipped[0].operands[0].sign > 0
    assert plan.carry_bits == 5 + 5 + 7  # bits less pass-through: 6 - 1, 7 - 2, 11 - 4
    assert not any(n.kind == "neg" for n in plan.nodes)
    x = np.random.default_rng(1).integers(0, 16, size=(50, 4))
    np.testing.assert_array_equal(plan.evaluate(x), x @ w)
