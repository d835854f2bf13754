"""ConstantMatVec: bit-exact x @ W + b in Amaranth's simulator, structure and counts."""

from __future__ import annotations

import re

import numpy as np
import pytest
from amaranth.back import rtlil
from amaranth.hdl import signed, unsigned
from hypothesis import given, settings
from hypothesis import strategies as st

from rtlgen.layers.constant_mac import ConstantMatVec
from rtlgen.layers.requantize import Requantize
from rtlgen.layers.stream_util import Chain, SkidBuffer
from rtlgen.quant.arith import accumulator_type, apply_clamp
from rtlgen.quant.errors import RtlgenError
from rtlgen.quant.fixed import FixedType, requantize

from .streams import simulate_rows


def _case(
    seed: int,
    k: int,
    o: int,
    width: int,
    is_signed: bool,
    sparsity: float,
    weight_kind: str = "random",
    with_bias: bool = True,
):
    rng = np.random.default_rng(seed)
    if weight_kind == "pow2":
        w = rng.choice([-1, 1], size=(k, o)) * (1 << rng.integers(0, 6, size=(k, o)))
    elif weight_kind == "unit":
        w = rng.choice([-1, 1], size=(k, o))
    else:
        w = rng.integers(-100, 101, size=(k, o))
    w[rng.random((k, o)) < sparsity] = 0
    t_in = FixedType(width, 0, is_signed)
    bias = rng.integers(-1000, 1001, size=o) if with_bias else None
    acc = accumulator_type(w, bias, t_in, 0)
    x = rng.integers(t_in.min_int, t_in.max_int + 1, size=(24, k))
    x[0], x[1] = t_in.min_int, t_in.max_int
    return w, bias, t_in, acc, x


def _expected(x, w, bias):
    return x @ w + (0 if bias is None else bias)


@settings(max_examples=12, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    k=st.integers(1, 20),
    o=st.integers(1, 20),
    width=st.integers(1, 16),
    is_signed=st.booleans(),
    sparsity=st.floats(0.0, 0.9),
    weight_kind=st.sampled_from(["random", "random", "pow2", "unit"]),
    mode=st.sampled_from(["lut", "dsp", "auto"]),
    levels=st.integers(1, 4),
    valid_prob=st.floats(0.3, 1.0),
    ready_prob=st.floats(0.3, 1.0),
)
def test_matches_matrix_product_under_random_handshakes(
    seed, k, o, width, is_signed, sparsity, weight_kind, mode, levels, valid_prob, ready_prob
):
    w, bias, t_in, acc, x = _case(seed, k, o, width, is_signed, sparsity, weight_kind)
    dut = ConstantMatVec(w, t_in, acc, bias, mode, levels_per_stage=levels)
    run = simulate_rows(dut, x, seed, valid_prob, ready_prob)
    np.testing.assert_array_equal(np.array(run.outputs), _expected(x, w, bias))


@settings(max_examples=10, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    k=st.integers(1, 12),
    o=st.integers(1, 12),
    output_levels=st.integers(0, 2),
    input_levels=st.integers(0, 2),
)
def test_combinational_output_variant_matches(seed, k, o, output_levels, input_levels):
    w, bias, t_in, acc, x = _case(seed, k, o, 8, True, 0.3)
    dut = ConstantMatVec(
        w,
        t_in,
        acc,
        bias,
        "lut",
        levels_per_stage=3,
        input_levels=input_levels,
        output_levels=output_levels,
    )
    # A skid buffer behind gives the (possibly register-free) block a registered consumer.
    chain = Chain([dut, SkidBuffer(dut.o.payload.shape())])
    run = simulate_rows(chain, x, seed, 0.7, 0.6)
    np.testing.assert_array_equal(np.array(run.outputs), _expected(x, w, bias))


@pytest.mark.parametrize("mode", ["lut", "dsp"])
@pytest.mark.parametrize("levels", [1, 3])
def test_latency_matches_simulation(mode, levels):
    w, bias, t_in, acc, x = _case(3, 9, 5, 10, True, 0.2)
    dut = ConstantMatVec(w, t_in, acc, bias, mode, levels_per_stage=levels)
    run = simulate_rows(dut, x)
    assert run.out_cycles[0] - run.in_cycles[0] == dut.latency


def test_full_throughput_one_vector_per_cycle():
    w, bias, t_in, acc, x = _case(4, 12, 7, 8, False, 0.1)
    dut = ConstantMatVec(w, t_in, acc, bias, "lut", levels_per_stage=1)
    run = simulate_rows(dut, x)
    assert np.diff(run.in_cycles).tolist() == [1] * (len(x) - 1)
    assert np.diff(run.out_cycles).tolist() == [1] * (len(x) - 1)
    np.testing.assert_array_equal(np.array(run.outputs), _expected(x, w, bias))


def _mul_cells(dut) -> int:
    return len(re.findall(r"cell \$mul ", rtlil.convert(dut)))


def test_zero_weights_emit_no_multiplier():
    rng = np.random.default_rng(11)
    w = rng.choice([3, 5, 7, 11, 13], size=(8, 6)) * rng.choice([-1, 1], size=(8, 6))
    w[rng.random((8, 6)) < 0.6] = 0
    t_in = FixedType(12, 0, True)
    acc = accumulator_type(w, None, t_in, 0)
    dut = ConstantMatVec(w, t_in, acc, None, "dsp")
    distinct = {(i, abs(int(w[i, j]))) for i, j in zip(*np.nonzero(w), strict=True)}
    assert dut.nonzero_weights == np.count_nonzero(w)
    assert dut.multipliers == dut.dsp_multipliers == len(distinct)
    assert _mul_cells(dut) == len(distinct)
    # A fully pruned matrix is only its bias.
    empty = ConstantMatVec(np.zeros((5, 3), dtype=int), t_in, FixedType(8, 0), np.array([1, -2, 3]))
    assert empty.multipliers == empty.adders == 0
    assert _mul_cells(empty) == 0


def test_lut_mode_has_no_multiplier_cells():
    w, bias, t_in, acc, _ = _case(5, 10, 8, 16, True, 0.0)
    dut = ConstantMatVec(w, t_in, acc, bias, "lut")
    assert dut.multipliers > 0 and dut.dsp_multipliers == 0
    assert _mul_cells(dut) == 0


def test_all_zero_column_is_the_bias_constant():
    w = np.array([[0, 3, 0], [0, -2, 0]])
    bias = np.array([17, 0, -5])
    t_in = FixedType(6, 0, True)
    acc = accumulator_type(w, bias, t_in, 0)
    dut = ConstantMatVec(w, t_in, acc, bias, "lut")
    x = np.array([[-32, 31], [5, -7], [0, 0]])
    run = simulate_rows(dut, x, ready_prob=0.5)
    np.testing.assert_array_equal(np.array(run.outputs), _expected(x, w, bias))


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (7, 1)])
def test_single_input_or_output(shape):
    w, bias, t_in, acc, x = _case(8, *shape, 5, True, 0.0)
    dut = ConstantMatVec(w, t_in, acc, bias, "auto")
    run = simulate_rows(dut, x, valid_prob=0.6, ready_prob=0.6)
    np.testing.assert_array_equal(np.array(run.outputs), _expected(x, w, bias))


def test_accepts_amaranth_shapes_and_narrow_input_ranges():
    w = np.array([[3, -5], [7, 9]])
    dut = ConstantMatVec(w, unsigned(6), FixedType(11, 0, True), None, "lut", in_range=(0, 40))
    assert dut.out_ranges == [(-0, 3 * 40 + 7 * 40), (-5 * 40, 9 * 40)]
    x = np.array([[0, 40], [40, 0], [13, 27]])
    run = simulate_rows(dut, x)
    np.testing.assert_array_equal(np.array(run.outputs), x @ w)
    assert dut.i.payload.shape().elem_shape == unsigned(6)
    assert dut.o.payload.shape().elem_shape == signed(11)


def test_too_narrow_accumulator_is_a_user_error():
    with pytest.raises(RtlgenError, match="does not fit the accumulator"):
        ConstantMatVec(np.array([[100]]), FixedType(8, 0), FixedType(8, 0), None)


def test_unknown_multiplier_mode_is_a_user_error():
    with pytest.raises(RtlgenError, match="multiplier"):
        ConstantMatVec(np.array([[1]]), FixedType(8, 0), FixedType(8, 0), None, "fast")


def test_layers_chained_without_registers_at_layer_boundaries():
    """Dense -> ReLU/requantize (combinational) -> dense, depth carried across the boundary."""
    rng = np.random.default_rng(12)
    t_in, t_mid = FixedType(8, 0, True), FixedType(4, 0, False)
    w1, w2 = rng.integers(-9, 10, size=(6, 5)), rng.integers(-9, 10, size=(5, 3))
    acc1 = accumulator_type(w1, None, t_in, 2)
    acc2 = accumulator_type(w2, None, t_mid, 0)
    first = ConstantMatVec(w1, t_in, acc1, None, "lut", levels_per_stage=4, output_levels=2)
    relu = Requantize(5, acc1, t_mid, clamp_lo=0, in_ranges=first.out_ranges, latency=0)
    second = ConstantMatVec(
        w2, t_mid, acc2, None, "lut", levels_per_stage=4, input_levels=first.output_depth + 2
    )
    chain = Chain([first, relu, second])
    x = rng.integers(-128, 128, size=(20, 6))
    run = simulate_rows(chain, x, seed=2, valid_prob=0.7, ready_prob=0.6)
    mid = requantize(apply_clamp(x @ w1, 0, None), 2, t_mid)
    np.testing.assert_array_equal(np.array(run.outputs), mid @ w2)


def test_reusing_plans_plans_each_matrix_once():
    """While `reusing_plans` is active (the latency-budget search), equal arguments get the
    plan made first, different ones a plan of their own; outside it, a fresh plan that is
    equal to the kept one (planning is deterministic)."""
    from rtlgen.layers.adder_graph import plan_matvec, reusing_plans

    rng = np.random.default_rng(7)
    w = rng.integers(-9, 10, size=(11, 5))
    ranges = [(-128, 127)] * 11
    with reusing_plans():
        first = plan_matvec(w, ranges, bias=np.arange(5))
        with reusing_plans():  # nested: the same store
            assert plan_matvec(w.copy(), list(ranges), bias=np.arange(5)) is first
        assert plan_matvec(w, ranges, bias=np.arange(5) + 1) is not first
        assert plan_matvec(w, [(-64, 63)] * 11, bias=np.arange(5)) is not first
        assert plan_matvec(w, ranges, bias=np.arange(5), levels_per_stage=3) is not first
    fresh = plan_matvec(w, ranges, bias=np.arange(5))
    assert fresh is not first and fresh == first
