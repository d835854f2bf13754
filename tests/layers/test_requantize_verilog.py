"""`layers/requantize_verilog.py`: the Verilog text of a saturating requantizer is formally
equivalent (Yosys `equiv_make` / `equiv_induct`, every input and every state of the paired
registers) to the Verilog Amaranth's back end writes for the same `Requantize`, on random
types, shifts (left, none, a few bits, more bits than the accumulator), rounding modes,
clamps, narrowed input ranges and latencies 0 to 2."""

from __future__ import annotations

import numpy as np
import pytest

from rtlgen.emit import component_verilog
from rtlgen.layers.requantize import Requantize
from rtlgen.layers.requantize_verilog import requantize_verilog, supported
from rtlgen.quant.fixed import FixedType, Overflow, Rounding

from .test_mac_verilog import equivalent


def random_requantize(seed: int) -> Requantize:
    rng = np.random.default_rng(seed)
    acc_signed = bool(rng.random() < 0.8)
    acc_width = int(rng.integers(3, 20))
    acc_frac = int(rng.integers(0, acc_width + 4))
    acc = FixedType(acc_width, acc_frac, acc_signed)
    out_signed = bool(rng.integers(2))
    out_width = int(rng.integers(1, 9)) + out_signed
    shift = int(rng.integers(-2, acc_width + 3))
    out = FixedType(out_width, acc_frac - shift, out_signed)
    clamp_lo = clamp_hi = None
    if rng.random() < 0.5:  # a ReLU-like floor at 0 or a bound inside the range
        clamp_lo = 0 if rng.random() < 0.6 else int(rng.integers(acc.min_int, 1))
    if rng.random() < 0.4:
        clamp_hi = int(rng.integers(max(clamp_lo or 0, 0), acc.max_int + 1))
    n = int(rng.integers(1, 5))
    ranges = []
    for _ in range(n):
        if rng.random() < 0.5:
            lo, hi = sorted(int(v) for v in rng.integers(acc.min_int, acc.max_int + 1, size=2))
        else:
            lo, hi = acc.min_int, acc.max_int
        ranges.append((lo, hi))
    rounding = [Rounding.CONVERGENT, Rounding.HALF_UP, Rounding.TRUNCATE][int(rng.integers(3))]
    return Requantize(n, acc, out, clamp_lo, clamp_hi, rounding, Overflow.SATURATE,
                      in_ranges=ranges, latency=int(rng.integers(3)))


def check_equivalent(rq: Requantize, tmp_path) -> None:
    gold = component_verilog(rq, "gold")
    ok, status = equivalent(gold, requantize_verilog(rq, "gate"), tmp_path)
    assert ok, status[-3000:]


@pytest.mark.parametrize("seed", range(24))
def test_text_module_is_equivalent_to_amaranths(seed, tmp_path):
    check_equivalent(random_requantize(seed), tmp_path)


@pytest.mark.parametrize("rounding", list(Rounding))
def test_a_relu_requantizer_of_a_27_bit_accumulator_as_the_mlps_have(rounding, tmp_path):
    acc = FixedType(27, 12, True)
    rq = Requantize(3, acc, FixedType(8, 4, False), 0, None, rounding,
                    in_ranges=[(-5000, 70000), (acc.min_int, acc.max_int), (0, 100)])
    check_equivalent(rq, tmp_path)


def test_the_check_finds_a_wrong_bound(tmp_path):
    acc = FixedType(12, 4, True)
    rq = Requantize(2, acc, FixedType(6, 2, True))
    wrong = Requantize(2, acc, FixedType(6, 2, True), clamp_lo=0)
    ok, _ = equivalent(component_verilog(rq, "gold"), requantize_verilog(wrong, "gate"), tmp_path)
    assert not ok


def test_wrapping_requantizers_are_left_to_amaranth():
    acc = FixedType(30, 20, True)
    assert not supported(Requantize(2, acc, FixedType(6, 2, True), overflow=Overflow.WRAP))
    assert supported(Requantize(2, acc, FixedType(6, 2, True), latency=2))
    assert supported(Requantize(2, acc, FixedType(6, 2, True), latency=0))


@pytest.mark.parametrize("rounding", list(Rounding))
def test_a_two_stage_requantizer_of_a_deep_rounding_as_float_models_have(rounding, tmp_path):
    acc = FixedType(36, 24, True)  # more than `plan.DEEP_ROUNDING_BITS` dropped: two stages
    rq = Requantize(3, acc, FixedType(8, 4, True), None, None, rounding, latency=2,
                    in_ranges=[(acc.min_int, acc.max_int), (-(1 << 30), 1 << 20), (0, 1 << 25)])
    check_equivalent(rq, tmp_path)
