# amaranth: UnusedElaboratable=no
"""`layers/bank_verilog.py`: the Verilog text of a threshold bank is formally equivalent (Yosys
`equiv_make` / `equiv_induct`, every input and every state of the paired registers) to the
Verilog Amaranth's back end writes for the same `ThresholdBank`, on random banks: one-level
and two-level searches, signed and unsigned inputs, empty channels, rising, falling and
jumping level tables. (Whole networks with text banks: the network tests, which convert
through `rtlgen.emit`.)"""

from __future__ import annotations

import numpy as np
import pytest

from rtlgen.emit import component_verilog
from rtlgen.layers.bank_verilog import _at_least, _compare, bank_verilog, supported
from rtlgen.layers.threshold import ThresholdBank
from rtlgen.quant.fixed import FixedType

from .test_mac_verilog import equivalent, needs_icarus, verilator_view_matches
from .test_threshold import _random_bank


def random_bank(seed: int) -> ThresholdBank:
    rng = np.random.default_rng(seed)
    width = int(rng.integers(3, 11))
    in_type = FixedType(width, 0, bool(rng.integers(2)))
    out_type = FixedType(int(rng.integers(2, 7)), 0, bool(rng.integers(2)))
    most = int(rng.choice([3, 7, 20, 40]))  # one-level up to 7 thresholds, two-level above
    thresholds, levels = _random_bank(rng, in_type, out_type, int(rng.integers(1, 5)), most)
    return ThresholdBank(in_type, out_type, thresholds, levels)


def check_equivalent(bank: ThresholdBank, tmp_path) -> None:
    ok, status = equivalent(component_verilog(bank, "gold"), bank_verilog(bank, "gate"), tmp_path)
    assert ok, status[-3000:]
    assert "0 are unproven" in status, status[-3000:]


@pytest.mark.parametrize("seed", range(8))
def test_text_module_is_equivalent_to_amaranths(seed, tmp_path):
    bank = random_bank(seed)
    assert supported(bank)
    check_equivalent(bank, tmp_path)


def test_a_two_level_bank_of_63_thresholds_as_the_svhn_cnn_has(tmp_path):
    in_type, out_type = FixedType(15, 4, True), FixedType(6, 0, False)
    ts = sorted(set(range(-8000, 8000, 251)))[:63]
    bank = ThresholdBank(in_type, out_type, [ts, ts[::2], []], [list(range(64)), list(range(33)), [5]])
    assert bank.two_level
    check_equivalent(bank, tmp_path)


def test_the_check_finds_a_wrong_threshold(tmp_path):
    bank = random_bank(3)
    channel = next(k for k, ts in enumerate(bank.thresholds) if ts)
    moved = [list(ts) for ts in bank.thresholds]
    moved[channel][-1] -= 1  # one input more reaches the last level
    wrong = ThresholdBank(bank.in_type, bank.out_type, moved, bank.levels)
    ok, _ = equivalent(component_verilog(bank, "gold"), bank_verilog(wrong, "gate"), tmp_path)
    assert not ok


@needs_icarus
@pytest.mark.parametrize("seed", range(4))
def test_verilators_view_computes_a_stage_only_when_its_input_moved_with_the_same_outputs(
    seed, tmp_path
):
    bank = random_bank(seed)
    in_bits = bank.in_type.width * len(bank.levels)
    out_bits = bank.out_type.width * len(bank.levels)
    text = bank_verilog(bank, "gate")
    assert verilator_view_matches(text, in_bits, out_bits, tmp_path, seed)


@needs_icarus
def test_verilators_view_of_a_two_level_bank_of_63_thresholds(tmp_path):
    in_type, out_type = FixedType(15, 4, True), FixedType(6, 0, False)
    ts = sorted(set(range(-8000, 8000, 251)))[:63]
    bank = ThresholdBank(in_type, out_type, [ts, ts[1::2]], [list(range(64)), list(range(32))])
    text = bank_verilog(bank, "gate")
    assert "load_3" in text
    assert verilator_view_matches(text, 30, 12, tmp_path)
    wrong = text.replace("sim_pending_3 <= load_2;", "sim_pending_3 <= 1'h0;")
    assert not verilator_view_matches(wrong, 30, 12, tmp_path)


@pytest.mark.parametrize("width", [1, 3, 7])
def test_verilators_one_comparison_is_the_lut_logic_comparator(width, tmp_path):
    """`_compare` (Verilator's view) and `_at_least` (synthesis) for every bound, proven equal
    by Yosys over every input."""
    bounds = range(-1, (1 << width) + 2)

    def module(name, write):
        outputs = ", ".join(write("x", width, t) for t in reversed(bounds))
        return (
            f"module {name}(x, o);\n  input [{width - 1}:0] x;\n"
            f"  output [{len(bounds) - 1}:0] o;\n  assign o = {{{outputs}}};\nendmodule\n"
        )

    ok, status = equivalent(module("gold", _at_least), module("gate", _compare), tmp_path)
    assert ok, status[-3000:]
    wrong = module("gate", lambda x, w, t: _compare(x, w, t + 1))
    assert not equivalent(module("gold", _at_least), wrong, tmp_path)[0]
