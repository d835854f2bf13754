"""`layers/serial_mac_verilog.py`: the Verilog text of a time-multiplexed MAC is formally
equivalent (Yosys `equiv_make` / `equiv_induct`, every input and every state of the paired
registers) to the Verilog Amaranth's back end writes for the same `SerialMatVec`, on random
schedules: reuse factors, input and result beats, LUT/DSP/auto products, signed and unsigned
inputs of 2-8 bits, pruned rows and columns, adders per stage, early start or not, and ROMs
read one-hot, in logic and as block RAM. (Whole networks with text serial MACs: the network
tests, which convert through `rtlgen.emit`.)"""

from __future__ import annotations

import re

import numpy as np
import pytest
from amaranth.hdl import signed, unsigned

from rtlgen.emit import component_verilog
from rtlgen.layers.common import Multiplier
from rtlgen.layers.mac_verilog import MacModules, verilog_text
from rtlgen.layers.serial_mac import BLOCK_ROM_WORDS, ONE_HOT_ROM_WORDS, SerialMatVec
from rtlgen.layers.serial_mac_verilog import serial_verilog, supported
from rtlgen.quant.arith import accumulator_type
from rtlgen.quant.fixed import FixedType

from .test_mac_verilog import equivalent, needs_icarus, verilator_view_matches


def random_serial(
    seed: int, k: int | None = None, reuse: int | None = None, o: int | None = None
) -> SerialMatVec:
    """A random small serial MAC: odd shapes, pruned rows and columns, any multiplier
    style, stages, beats in or out and start; ``k`` and ``reuse`` set the ROM's size."""
    rng = np.random.default_rng(seed)
    k = k or int(rng.integers(1, 13))
    o = o or int(rng.integers(1, 6))
    w = rng.integers(-40, 41, size=(k, o)) * (rng.random((k, o)) >= rng.choice([0.0, 0.5]))
    if k > 1 and rng.random() < 0.5:
        w[rng.integers(k)] = 0  # a pruned row
    if o > 1 and rng.random() < 0.5:
        w[:, rng.integers(o)] = 0  # a pruned column (its bias only)
    bias = rng.integers(-200, 201, size=o) if rng.random() < 0.7 else None
    in_type = FixedType(int(rng.integers(2, 9)), 0, bool(rng.integers(2)))
    beats = out_beats = 1
    if rng.random() < 0.4:
        beats = int(rng.choice([b for b in range(1, k + 1) if k % b == 0]))
    elif rng.random() < 0.5:
        out_beats = int(rng.choice([b for b in range(1, o + 1) if o % b == 0]))
    return SerialMatVec(
        w,
        in_type,
        accumulator_type(w, bias, in_type, 0),
        bias,
        reuse or int(rng.integers(1, 8)),
        list(Multiplier)[int(rng.integers(3))],
        beats=beats,
        levels_per_stage=int(rng.integers(1, 4)),
        out_beats=out_beats,
        early_start=bool(rng.random() < 0.7),
    )


def check_equivalent(mac: SerialMatVec, tmp_path) -> None:
    gold = component_verilog(mac, "gold")
    ok, status = equivalent(gold, serial_verilog(mac, "gate"), tmp_path)
    assert ok, status[-3000:]
    proven = re.search(r"Of those cells (\d+) are proven and 0 are unproven", status)
    assert proven and int(proven.group(1)) > 0, status[-3000:]


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, pytest.param(5, marks=pytest.mark.slow)])
def test_text_module_is_equivalent_to_amaranths(seed, tmp_path):
    mac = random_serial(seed)
    assert supported(mac)
    check_equivalent(mac, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(10, 40))
def test_text_module_is_equivalent_to_amaranths_on_many_schedules(seed, tmp_path):
    check_equivalent(random_serial(seed), tmp_path)


@pytest.mark.parametrize(
    "k,reuse,beats,multiplier,early_start",
    [
        (20, 20, 1, Multiplier.LUT, True),
        (40, 20, 1, Multiplier.DSP, False),
        (45, 45, 1, Multiplier.LUT, True),
        (36, 3, 12, Multiplier.AUTO, True),
        (34, 17, 2, Multiplier.LUT, False),
    ],
)
def test_roms_in_logic_and_block_ram(k, reuse, beats, multiplier, early_start, tmp_path):
    """13-32 words: a ``rom_style`` logic memory read at the word counter; above: block RAM
    read a step ahead (at the counter's successor while stepping) and registered again."""
    rng = np.random.default_rng(k)
    w = rng.integers(-20, 21, size=(k, 2)) * (rng.random((k, 2)) < 0.7)
    bias = np.array([-3, 60])
    in_type = FixedType(5, 0, True)
    mac = SerialMatVec(w, in_type, accumulator_type(w, bias, in_type, 0), bias, reuse,
                       multiplier, beats=beats, levels_per_stage=2, early_start=early_start)  # fmt: skip
    assert mac.words > ONE_HOT_ROM_WORDS
    check_equivalent(mac, tmp_path)


@pytest.mark.parametrize("multiplier", list(Multiplier))
def test_result_beats_of_a_block_rom(multiplier, tmp_path):
    """Result beats (the input register rotates, each beat's bias picked by the beat)
    with a ROM of 36 words: 3 beats of 12 steps."""
    rng = np.random.default_rng(5)
    w = rng.integers(-9, 10, size=(24, 3))
    bias = np.array([5, -7, 100])
    in_type = FixedType(4, 0, False)
    mac = SerialMatVec(w, in_type, accumulator_type(w, bias, in_type, 0), bias, 12,
                       multiplier, levels_per_stage=2, out_beats=3)  # fmt: skip
    assert mac.words > BLOCK_ROM_WORDS and mac.block_rom
    check_equivalent(mac, tmp_path)


def test_the_check_finds_a_wrong_weight(tmp_path):
    mac = random_serial(1, k=6, reuse=3, o=2)
    text = serial_verilog(mac, "gate")
    wrong = re.sub(r"(wrow\[)(\d+)(\] \?)", lambda m: f"{m[1]}{int(m[2]) ^ 1}{m[3]}", text, count=1)
    wrong = re.sub(r"(\$signed\(wrow\[)(\d+)", lambda m: f"{m[1]}{int(m[2]) + 1}", wrong, count=1)
    assert wrong != text
    ok, _ = equivalent(component_verilog(mac, "gold"), wrong, tmp_path)
    assert not ok


def test_the_check_finds_a_counter_that_skips_the_reset(tmp_path):
    mac = random_serial(2, k=6, reuse=3)
    text = serial_verilog(mac, "gate")
    wrong = text.replace("\n      busy <= 1'h0;\n", "\n")  # the reset's
    assert wrong != text
    ok, _ = equivalent(component_verilog(mac, "gold"), wrong, tmp_path)
    assert not ok


def test_equal_serial_macs_share_one_module():
    w = np.array([[3, -5], [0, 7], [1, 1]])
    acc = FixedType(12, 0, True)
    macs = [SerialMatVec(w, signed(4), acc, None, 3) for _ in range(2)]
    other = SerialMatVec(w, unsigned(4), acc, None, 3)
    modules = MacModules("net")
    for mac in (*macs, other):
        modules.instance_of(mac, serial_verilog, "smac")
    assert len(modules.modules) == 2
    assert all(re.fullmatch(r"net__smac_[0-9a-f]{16}", name) for name in modules.modules)


def test_while_collecting_text_it_elaborates_to_an_instance_of_its_module():
    mac = SerialMatVec(
        np.array([[3, -5], [0, 7], [1, 1]]), signed(4), FixedType(12, 0, True), None, 3
    )
    with verilog_text("net") as modules:
        wrapper = component_verilog(mac, "wrapper")
    (name,) = modules.modules
    assert re.fullmatch(r"net__smac_[0-9a-f]{16}", name) and f"{name} " in wrapper
    assert modules.modules[name] == serial_verilog(mac, name)


@pytest.mark.parametrize("reuse", [4, pytest.param(20, marks=pytest.mark.slow)])
def test_the_check_finds_a_wrong_digit(reuse, tmp_path):
    """LUT style: a negative digit's term not inverted, or wrong ROM digits (the one-hot
    ROM's word read inverted at 4 words; the first digit's magnitude bit flipped in the
    first word of a ROM in logic at 20), fails the proof."""
    rng = np.random.default_rng(reuse)
    w = rng.integers(-9, 10, size=(20, 2))
    w[0, 0] = -6  # a negative digit on the first step
    in_type = FixedType(5, 0, False)
    mac = SerialMatVec(w, in_type, accumulator_type(w, None, in_type, 0), None, reuse, "lut")
    text = serial_verilog(mac, "gate")
    check_equivalent(mac, tmp_path)
    not_inverted = re.sub(r"\? ~(bm\w+) : \1", r"? \1 : \1", text, count=1)
    if reuse == 4:
        wrong_rom = text.replace("wrow <= {", "wrow <= ~{", 1)
    else:
        wrong_rom = re.sub(
            r"rom\[0\] = (\d+)'h([0-9a-f]+);",
            lambda m: f"rom[0] = {m[1]}'h{int(m[2], 16) ^ 1:x};",
            text,
            count=1,
        )
    for wrong in (not_inverted, wrong_rom):
        assert wrong != text
        ok, _ = equivalent(component_verilog(mac, "gold"), wrong, tmp_path)
        assert not ok


def serial_view_matches(mac: SerialMatVec, text: str, tmp_path, seed: int = 1) -> bool:
    in_bits = mac.per_beat * mac.in_shape.width
    out_bits = mac.columns * mac.acc_type.width
    return verilator_view_matches(text, in_bits, out_bits, tmp_path, seed)


@needs_icarus
@pytest.mark.parametrize(
    "seed", [*range(8), *[pytest.param(s, marks=pytest.mark.slow) for s in range(8, 40)]]
)
def test_verilators_view_computes_the_tree_only_when_its_rows_moved_with_the_same_outputs(
    seed, tmp_path
):
    """Verilator's view (`_Writer.verilator_view`: the adder tree's stages computed when
    ``{wrow, xrow}`` moved, the accumulators on their enable, the one-hot ROM read when
    ``hot`` moved) gives the outputs of the synthesis view on every cycle in Icarus, under
    random held inputs, valid, backpressure and reset."""
    mac = random_serial(seed)
    text = serial_verilog(mac, "gate")
    assert "`ifdef VERILATOR" not in text and "`ifndef VERILATOR" in text
    assert serial_view_matches(mac, text, tmp_path, seed)


@needs_icarus
@pytest.mark.parametrize(
    "k,reuse,multiplier,out_beats",
    [
        (8, 4, Multiplier.LUT, 1),
        (40, 20, Multiplier.DSP, 1),
        (40, 40, Multiplier.LUT, 1),
        (24, 12, Multiplier.AUTO, 3),
    ],  # fmt: skip
)
def test_verilators_view_of_one_hot_logic_and_block_roms(k, reuse, multiplier, out_beats, tmp_path):
    """The view on each ROM kind with a deep tree (one adder a stage), and the check finds
    a stage that misses its input's change and a ROM read that misses ``hot``'s."""
    rng = np.random.default_rng(k)
    w = rng.integers(-20, 21, size=(k, 3)) * (rng.random((k, 3)) < 0.8)
    bias = np.array([-3, 60, 7])
    in_type = FixedType(5, 0, True)
    mac = SerialMatVec(w, in_type, accumulator_type(w, bias, in_type, 0), bias, reuse,
                       multiplier, levels_per_stage=1, out_beats=out_beats)  # fmt: skip
    text = serial_verilog(mac, "gate")
    assert "load_2" in text
    assert serial_view_matches(mac, text, tmp_path)
    wrongs = [text.replace("sim_pending_2 <= load_1;", "sim_pending_2 <= 1'h0;")]
    if mac.words <= ONE_HOT_ROM_WORDS:
        wrongs.append(text.replace("(hot != sim_hot)", "(hot[0] != sim_hot[0])"))
    for wrong in wrongs:
        assert wrong != text
        assert not serial_view_matches(mac, wrong, tmp_path)


@needs_icarus
def test_the_accumulators_are_state_computed_on_every_step(tmp_path):
    """Equal rows and 2-bit inputs: consecutive steps often read the same ``{wrow, xrow}``,
    so the tree's stages are skipped while the accumulators must still add the (same,
    non-zero) partial sum again. The view matches; one that computes the accumulators only
    when the tree's last stage was loaded (as if they were a function of it) fails."""
    w = np.full((8, 2), 3) * np.array([1, -2])
    in_type = FixedType(2, 0, False)
    mac = SerialMatVec(w, in_type, accumulator_type(w, None, in_type, 0), None, 8,
                       Multiplier.LUT, levels_per_stage=1)  # fmt: skip
    text = serial_verilog(mac, "gate")
    assert serial_view_matches(mac, text, tmp_path)
    depth, valid = mac.depth, f"valid_{mac.depth - 1}"
    synthesis, view = text.split("`else", 1)
    view = view.replace(
        f"if (advance & {valid}) begin", f"if (advance & {valid} & sim_moved) begin"
    )
    view = view.replace(
        "`endif",
        f"  reg sim_moved = 1'h0;\n  always @(posedge clk) if (advance) sim_moved <= load_{depth};\n`endif",
    )
    wrong = synthesis + "`else" + view
    assert wrong != text and "sim_moved)" in wrong
    assert not serial_view_matches(mac, wrong, tmp_path)
