# amaranth: UnusedElaboratable=no
"""`layers/beat_bank_verilog.py`: the Verilog text of a threshold bank taking its vector in
beats (`BeatThresholdBank`) is formally equivalent (Yosys `equiv_make` / `equiv_induct`) to
the Verilog Amaranth's back end writes for the same bank, on odd shapes: 1-5 lanes, 1-5 beats
(beat counters with unreachable values), signed and unsigned inputs of 3-10 bits, a comparator
per threshold and the two-level search, lanes without thresholds, rising, falling and jumping
level tables; a wrong threshold fails the proof. The text alone, in Icarus Verilog, gives the
reference's levels (`threshold_reference`) under random gaps and backpressure on the cases
tests/layers/test_threshold.py runs the Amaranth bank on. (Whole networks with text beat
banks: tests/rtlgen/ops/test_matvec.py, tests/sim_tb/test_serial_mac_text_sim.py.)"""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest

from rtlgen.emit import component_verilog
from rtlgen.layers.bank_verilog import KEEP_HIERARCHY
from rtlgen.layers.beat_bank_verilog import beat_bank_verilog
from rtlgen.layers.mac_verilog import verilog_text
from rtlgen.layers.threshold import BeatThresholdBank, ThresholdBank
from rtlgen.quant.fixed import FixedType
from rtlgen.quant.threshold import threshold_reference

from .test_mac_verilog import equivalent, verilator_view_matches
from .test_threshold import _inputs, _padded, _random_bank, every_code_in_every_beat

# (input type, output type, lanes, beats, most thresholds per element, seed)
SHAPES = {
    "signed-3-lanes-3-beats": (FixedType(5, 0, True), FixedType(3, 0, False), 3, 3, 5, 1),
    "unsigned-one-beat": (FixedType(4, 0, False), FixedType(4, 0, True), 2, 1, 7, 2),
    "one-lane-5-beats": (FixedType(6, 0, False), FixedType(2, 0, False), 1, 5, 4, 3),
    "two-level-signed": (FixedType(5, 0, True), FixedType(4, 0, False), 2, 3, 12, 4),
    "two-level-unsigned-4-beats": (FixedType(5, 0, False), FixedType(3, 0, True), 1, 4, 20, 5),
}


def beat_bank(in_type, out_type, lanes: int, beats: int, most: int, seed: int):
    rng = np.random.default_rng(seed)
    thresholds, levels = _random_bank(rng, in_type, out_type, lanes * beats, most)
    return BeatThresholdBank(ThresholdBank(in_type, out_type, thresholds, levels), beats)


def check_equivalent(dut: BeatThresholdBank, tmp_path) -> None:
    gold = component_verilog(dut, "gold")
    ok, status = equivalent(gold, beat_bank_verilog(dut, "gate"), tmp_path)
    assert ok, status[-3000:]
    assert "0 are unproven" in status, status[-3000:]


#: in the default set: the first one-level and the first two-level shape (the rest slow)
DEFAULT_SHAPES = ("signed-3-lanes-3-beats", "two-level-signed")


@pytest.mark.parametrize(
    "shape",
    [s if s in DEFAULT_SHAPES else pytest.param(s, marks=pytest.mark.slow) for s in SHAPES],
)
def test_text_module_is_equivalent_to_amaranths(shape, tmp_path):
    dut = beat_bank(*SHAPES[shape])
    assert dut.bank.two_level == shape.startswith("two-level")
    check_equivalent(dut, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(12))
def test_text_module_is_equivalent_to_amaranths_on_random_banks(seed, tmp_path):
    rng = np.random.default_rng(seed)
    in_type = FixedType(int(rng.integers(3, 11)), 0, bool(rng.integers(2)))
    out_type = FixedType(int(rng.integers(2, 7)), 0, bool(rng.integers(2)))
    most = int(rng.choice([3, 7, 12, 20]))
    lanes, beats = int(rng.integers(1, 5)), int(rng.integers(1, 6))
    check_equivalent(beat_bank(in_type, out_type, lanes, beats, most, seed), tmp_path)


def test_the_check_finds_a_wrong_threshold(tmp_path):
    dut = beat_bank(*SHAPES["two-level-signed"])
    bank = dut.bank
    element = next(k for k, ts in enumerate(bank.thresholds) if ts)
    moved = [list(ts) for ts in bank.thresholds]
    moved[element][-1] -= 1  # one input more reaches the last level
    wrong = BeatThresholdBank(
        ThresholdBank(bank.in_type, bank.out_type, moved, bank.levels), dut.beats
    )
    ok, _ = equivalent(component_verilog(dut, "gold"), beat_bank_verilog(wrong, "gate"), tmp_path)
    assert not ok


@pytest.mark.slow
def test_the_check_finds_a_beat_counter_that_skips_the_reset(tmp_path):
    dut = beat_bank(*SHAPES["signed-3-lanes-3-beats"])
    text = beat_bank_verilog(dut, "gate")
    wrong = text.replace("    if (rst)\n      beat <= 2'h0;\n    else if", "    if")
    assert wrong != text
    ok, _ = equivalent(component_verilog(dut, "gold"), wrong, tmp_path)
    assert not ok


def test_while_collecting_text_it_elaborates_to_an_instance_of_its_kept_module():
    dut = beat_bank(*SHAPES["signed-3-lanes-3-beats"])
    with verilog_text("net") as modules:
        wrapper = component_verilog(dut, "wrapper")
    (name,) = modules.modules
    assert re.fullmatch(r"net__beatbank_[0-9a-f]{16}", name) and f"{name} " in wrapper
    assert modules.modules[name] == beat_bank_verilog(dut, name)
    assert modules.modules[name].startswith(KEEP_HIERARCHY + "\n")


TESTBENCH = """
`timescale 1ns/1ps
module tb;
  reg clk = 0, rst = 1, i__valid = 0, o__ready = 0, in_taken = 0, out_taken = 0;
  reg [{in_msb}:0] i__payload = 0;
  reg [{in_msb}:0] beats [0:{last}];
  wire i__ready, o__valid;
  wire [{out_msb}:0] o__payload;
  integer cycle, sent, got, seed, out;
  gate dut(.clk(clk), .rst(rst), .i__payload(i__payload), .i__valid(i__valid),
           .i__ready(i__ready), .o__payload(o__payload), .o__valid(o__valid),
           .o__ready(o__ready));
  initial begin
    $readmemh("in.hex", beats);
    out = $fopen("out.hex", "w");
    seed = {seed};
    sent = 0;
    got = 0;
    clk = 1; #1; clk = 0; #1;
    rst = 0;
    for (cycle = 0; cycle < {cycles} && got <= {last}; cycle = cycle + 1) begin
      // a beat is held until taken; gaps and stalls random
      if (!i__valid) i__valid = sent <= {last} && ($random(seed) & 255) < {valid};
      i__payload = beats[sent];
      o__ready = ($random(seed) & 255) < {ready};
      #1;
      in_taken = i__valid && i__ready;
      out_taken = o__valid && o__ready;
      if (out_taken) begin
        $fdisplay(out, "%h", o__payload);
        got = got + 1;
      end
      clk = 1; #1; clk = 0;
      if (in_taken) begin
        sent = sent + 1;
        i__valid = 0;
      end
      #1;
    end
    $fclose(out);
    $finish;
  end
endmodule
"""


def run_text(
    dut: BeatThresholdBank, beats: np.ndarray, tmp_path, valid: float, ready: float, seed: int
) -> np.ndarray:
    """The output beats of ``dut``'s text module in Icarus Verilog for the input ``beats``
    (rows of ``lanes`` mantissas) with random input gaps and output stalls."""
    in_width, out_width = dut.in_type.width, dut.out_type.width
    words = [
        sum((int(v) & ((1 << in_width) - 1)) << (lane * in_width) for lane, v in enumerate(row))
        for row in beats
    ]
    (tmp_path / "in.hex").write_text("".join(f"{w:x}\n" for w in words))
    (tmp_path / "gate.v").write_text(beat_bank_verilog(dut, "gate"))
    bench = TESTBENCH.format(
        in_msb=dut.lanes * in_width - 1,
        out_msb=dut.lanes * out_width - 1,
        last=len(words) - 1,
        cycles=20 * len(words) + 50,
        seed=seed,
        valid=int(valid * 256),
        ready=int(ready * 256),
    )
    (tmp_path / "tb.v").write_text(bench)
    subprocess.run(
        ["iverilog", "-g2005", "-o", "tb.vvp", "tb.v", "gate.v"], cwd=tmp_path, check=True
    )
    subprocess.run(["vvp", "-n", "tb.vvp"], cwd=tmp_path, capture_output=True, check=True)
    rows = []
    for line in (tmp_path / "out.hex").read_text().split():
        word = int(line, 16)
        row = [(word >> (lane * out_width)) & ((1 << out_width) - 1) for lane in range(dut.lanes)]
        if dut.out_type.signed:
            row = [v - (1 << out_width) if v >> (out_width - 1) else v for v in row]
        rows.append(row)
    return np.array(rows, dtype=np.int64).reshape(-1, dut.lanes)


needs_icarus = pytest.mark.skipif(shutil.which("iverilog") is None, reason="no iverilog")


@needs_icarus
@pytest.mark.parametrize(
    "lanes,beats,most,signed_input,seed,valid,ready",
    [
        (3, 4, 5, True, 1, 0.5, 0.6),
        (1, 8, 70, False, 2, 0.9, 0.4),
        pytest.param(5, 3, 30, True, 3, 0.4, 0.9, marks=pytest.mark.slow),
        pytest.param(2, 2, 0, True, 4, 1.0, 1.0, marks=pytest.mark.slow),
        pytest.param(4, 4, 63, False, 5, 0.7, 0.7, marks=pytest.mark.slow),
    ],
)
def test_text_gives_each_element_its_levels_bit_exact(
    lanes, beats, most, signed_input, seed, valid, ready, tmp_path
):
    """As test_threshold's `test_beat_bank_gives_each_element_its_levels_bit_exact`, on the
    text module: 12 vectors' levels under backpressure equal the reference's."""
    rng = np.random.default_rng(seed)
    in_type, out_type = FixedType(10, 2, signed_input), FixedType(4, 1, False)
    thresholds, levels = _random_bank(rng, in_type, out_type, lanes * beats, most)
    dut = BeatThresholdBank(ThresholdBank(in_type, out_type, thresholds, levels), beats)
    x = _inputs(rng, in_type, thresholds, 12)
    t, lv = _padded(thresholds, levels, in_type)
    expected = threshold_reference(x, t, lv).reshape(-1, lanes)
    outputs = run_text(dut, x.reshape(-1, lanes), tmp_path, valid, ready, seed)
    np.testing.assert_array_equal(outputs, expected)


@needs_icarus
@pytest.mark.parametrize("most", [pytest.param(6, marks=pytest.mark.slow), 63])
def test_text_every_input_code_in_every_beat(most, tmp_path):
    """As test_threshold's `test_beat_bank_every_input_code_in_every_beat`, on the text."""
    dut, x, expected = every_code_in_every_beat(most)
    outputs = run_text(dut, x.reshape(-1, dut.lanes), tmp_path, 0.8, 0.7, 11)
    np.testing.assert_array_equal(outputs, expected)


@needs_icarus
def test_the_simulation_finds_a_wrong_level(tmp_path, monkeypatch):
    """The Icarus check can fail: a text whose first lane's levels are off by one."""
    dut, x, expected = every_code_in_every_beat(6)
    write = beat_bank_verilog

    def wrong(bank, name):
        return write(bank, name).replace("levels <= {", "levels <= 1'h1 + {", 1)

    monkeypatch.setattr(f"{__name__}.beat_bank_verilog", wrong)
    outputs = run_text(dut, x.reshape(-1, dut.lanes), tmp_path, 0.8, 0.7, 11)
    assert outputs.shape == expected.shape and not np.array_equal(outputs, expected)


@pytest.mark.slow
def test_in_a_network_the_bank_is_a_kept_module_of_its_own():
    """`rtlgen.emit.network_verilog`: a dense's result beats go through a `BeatThresholdBank`
    written as its own module (named after its layer, mapped apart by Yosys), as every other
    threshold bank written as text."""
    from rtlgen.emit import network_verilog
    from rtlgen.hardware import HardwareOptions, NetworkTop

    from ..rtlgen.ops.test_matvec import chunk_net

    options = HardwareOptions(layer_max_reuse=(("dense1", 2),), layer_out_beats=(("dense1", 4),))
    top = NetworkTop(chunk_net(), options)
    (index, plan) = next((k, p) for k, p in enumerate(top.plans) if p.node.name == "bn1")
    assert isinstance(plan.stages[0], BeatThresholdBank)
    text = network_verilog(top, "net", jobs=1)
    name = f"net__l{index}_bn1_0"
    assert f"{KEEP_HIERARCHY}\nmodule {name}(" in text
    assert beat_bank_verilog(plan.stages[0], name) in text
    assert "__beatbank_" not in text


@needs_icarus
@pytest.mark.parametrize("shape", SHAPES)
def test_verilators_view_computes_a_stage_only_when_its_input_or_beat_moved(shape, tmp_path):
    dut = beat_bank(*SHAPES[shape])
    text = beat_bank_verilog(dut, "gate")
    in_bits, out_bits = dut.lanes * dut.in_type.width, dut.lanes * dut.out_type.width
    assert verilator_view_matches(text, in_bits, out_bits, tmp_path)
    if dut.beats > 1:  # a stage 1 that does not see the beat move computes stale bounds
        seen = f"(i__payload != sim_seen[{in_bits - 1}:0])"
        wrong = text.replace("({beat, i__payload} != sim_seen)", seen)
        assert wrong != text
        assert not verilator_view_matches(wrong, in_bits, out_bits, tmp_path)
