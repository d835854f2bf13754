"""SerialMatVec (reuse > 1) bit-exact against numpy, under backpressure, with its timing."""

import numpy as np
import pytest
from amaranth.back import rtlil
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtlgen.layers.serial_mac import BLOCK_ROM_WORDS, SerialMatVec
from rtlgen.quant.arith import accumulator_type
from rtlgen.quant.fixed import FixedType

from .streams import simulate_stream


def make(k, o, reuse, in_type, sparsity, seed, multiplier="auto", bias=True):
    rng = np.random.default_rng(seed)
    w = rng.integers(-40, 41, size=(k, o)) * (rng.random((k, o)) >= sparsity)
    b = rng.integers(-200, 201, size=o) if bias else None
    acc = accumulator_type(w, b, in_type, 0)
    return SerialMatVec(w, in_type, acc, b, reuse, multiplier), w, b


def _rtlil(dut):
    return rtlil.convert(dut, ports=[dut.i.payload.as_value(), dut.i.valid, dut.i.ready,
                                     dut.o.payload.as_value(), dut.o.valid, dut.o.ready])


def vectors(in_type, k, n, seed):
    rng = np.random.default_rng(seed + 1)
    return rng.integers(in_type.min_int, in_type.max_int + 1, size=(n, k))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    k=st.integers(1, 12),
    o=st.integers(1, 5),
    reuse=st.integers(1, 13),
    signed=st.booleans(),
    width=st.integers(2, 9),
    sparsity=st.sampled_from([0.0, 0.5, 0.95]),
    multiplier=st.sampled_from(["auto", "lut"]),
    seed=st.integers(0, 1000),
)
def test_bit_exact_under_random_backpressure(k, o, reuse, signed, width, sparsity, multiplier, seed):
    in_type = FixedType(width, 0, signed)
    dut, w, b = make(k, o, reuse, in_type, sparsity, seed, multiplier)
    x = vectors(in_type, k, 6, seed)
    out = simulate_stream(dut, x.tolist(), len(x), seed=seed, valid_prob=0.6, ready_prob=0.5).outputs
    np.testing.assert_array_equal(np.array(out), x @ w + b)


@pytest.mark.parametrize("k,reuse", [(16, 4), (10, 3), (7, 7), (5, 1)])
def test_full_rate_timing_matches_contract(k, reuse):
    in_type = FixedType(8, 0, True)
    dut, w, b = make(k, 3, reuse, in_type, 0.3, 7)
    x = vectors(in_type, k, 5, 3)
    run = simulate_stream(dut, x.tolist(), len(x))
    np.testing.assert_array_equal(np.array(run.outputs), x @ w + b)
    # a new vector every `steps` cycles, back to back, no bubble
    assert np.diff(run.in_cycles).tolist() == [dut.steps] * (len(x) - 1)
    assert run.out_cycles[0] - run.in_cycles[0] == dut.latency
    assert dut.cycles_per_sample == dut.steps


def test_zero_columns_and_positions_get_no_multiplier():
    w = np.array([[0, 3, 0], [0, 0, 0], [0, 5, 0], [0, 0, 2]])
    dut = SerialMatVec(w, FixedType(8, 0), FixedType(20, 0), None, reuse=2)
    # group of 2 rows: positions (0, col1), (1, col2) only carry non-zero weights
    assert dut.multipliers == 2


def test_lut_mode_emits_no_multiply_cell():
    in_type = FixedType(8, 0, True)
    dut, _, _ = make(8, 3, 4, in_type, 0.0, 1, multiplier="lut")
    assert "$mul" not in _rtlil(dut)
    dut, _, _ = make(8, 3, 4, in_type, 0.0, 1, multiplier="dsp")
    assert "$mul" in _rtlil(dut)


@pytest.mark.parametrize("k,multiplier", [(70, "auto"), (67, "lut")])
def test_block_rom_layer_is_bit_exact_with_its_timing(k, multiplier):
    """More steps than BLOCK_ROM_WORDS: the weight ROM is marked for block RAM and still
    read one step ahead of the arithmetic, at full rate and under backpressure."""
    in_type = FixedType(6, 0, True)
    dut, w, b = make(k, 2, k, in_type, 0.4, 5, multiplier)
    assert dut.steps == k > BLOCK_ROM_WORDS
    assert 'attribute \\rom_style "block"' in _rtlil(dut)
    x = vectors(in_type, k, 3, 5)
    run = simulate_stream(dut, x.tolist(), len(x))
    np.testing.assert_array_equal(np.array(run.outputs), x @ w + b)
    assert np.diff(run.in_cycles).tolist() == [dut.steps] * (len(x) - 1)
    assert run.out_cycles[0] - run.in_cycles[0] == dut.latency
    out = simulate_stream(dut, x.tolist(), len(x), seed=3, valid_prob=0.7, ready_prob=0.3).outputs
    np.testing.assert_array_equal(np.array(out), x @ w + b)


def test_small_rom_stays_in_logic():
    dut, _, _ = make(12, 3, 6, FixedType(8, 0, True), 0.0, 2)
    assert 'attribute \\rom_style "logic"' in _rtlil(dut)
