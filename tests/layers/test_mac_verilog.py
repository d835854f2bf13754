"""`layers/mac_verilog.py`: the Verilog text of a constant MAC array is formally equivalent
(Yosys `equiv_make` / `equiv_induct`, every input and every reachable state) to the Verilog
Amaranth's back end writes for the same `ConstantMatVec`, on random small weight matrices
across multiplier styles, input types, narrowed input ranges, pipelining and output modes.
(Bit-exactness of whole networks converted with it: tests/sim_tb/test_emit_modules_sim.py.)"""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest
from amaranth.hdl import signed, unsigned

from rtlgen.emit import component_verilog
from rtlgen.layers.adder_graph import width_of
from rtlgen.layers.common import Multiplier
from rtlgen.layers.constant_mac import ConstantMatVec
from rtlgen.layers.mac_verilog import MacModules, matvec_verilog, module_name
from rtlgen.quant.fixed import FixedType
from rtlgen.synth import _yosys_command

EQUIV = (
    "read_verilog gold.v; read_verilog gate.v; proc; memory; opt_clean; "
    "equiv_make gold gate equiv; hierarchy -top equiv; "
    "equiv_simple -seq 4; equiv_induct -seq 4; tee -o status.txt equiv_status -assert"
)


def random_mac(seed: int, multiplier: Multiplier) -> ConstantMatVec:
    """A random small array: odd shapes, zero weights and columns, signed or unsigned
    inputs, sometimes a narrowed input range, any pipelining and output mode, and the
    narrowest accumulator its outputs fit."""
    rng = np.random.default_rng(seed)
    n_in, n_out = int(rng.integers(1, 7)), int(rng.integers(1, 6))
    weights = rng.integers(-60, 61, size=(n_in, n_out))
    weights[rng.random(weights.shape) < 0.3] = 0
    if n_out > 1:
        weights[:, rng.integers(n_out)] = 0  # a constant column (its bias, or zero)
    bias = rng.integers(-300, 301, size=n_out) * (rng.random(n_out) < 0.6)
    in_width = int(rng.integers(2, 9))
    in_signed = bool(rng.integers(2))
    in_shape = signed(in_width) if in_signed else unsigned(in_width)
    in_range = None
    if rng.random() < 0.4:  # inputs known narrower than their shape
        lo = -(1 << (in_width - 2)) if in_signed and in_width > 1 else 0
        in_range = (lo, (1 << max(in_width - 2, 0)) - 1)
    levels = int(rng.integers(1, 4))
    options = dict(
        multiplier=multiplier,
        in_range=in_range,
        levels_per_stage=levels,
        input_levels=int(rng.integers(0, levels)),
        output_levels=[None, None, 0, 1][int(rng.integers(4))],
    )
    wide = ConstantMatVec(weights, in_shape, FixedType(40, 0, True), bias, **options)
    acc_width = max(width_of(min(lo, -1), hi) for lo, hi in wide.out_ranges)
    return ConstantMatVec(weights, in_shape, FixedType(acc_width, 0, True), bias, **options)


def equivalent(gold: str, gate: str, tmp_path) -> tuple[bool, str]:
    """Whether Yosys proves modules ``gold`` and ``gate`` equivalent (and its status)."""
    (tmp_path / "gold.v").write_text(gold)
    (tmp_path / "gate.v").write_text(gate)
    proc = subprocess.run(
        [*_yosys_command(), "-q", "-p", EQUIV], cwd=tmp_path, capture_output=True, text=True
    )
    status = (tmp_path / "status.txt").read_text() if (tmp_path / "status.txt").exists() else ""
    return proc.returncode == 0, status + proc.stdout + proc.stderr


#: drives a text module ``gate`` with random inputs that often hold (so that Verilator's view
#: of `staged_loads` skips stages), random input valid, output ready and reset, and prints
#: every output on every cycle
STAGED_BENCH = """
module tb;
  reg clk = 1'b0, rst = 1'b1, i__valid = 1'b0, o__ready = 1'b0;
  reg [{in_msb}:0] i__payload = 0;
  wire i__ready, o__valid;
  wire [{out_msb}:0] o__payload;
  integer seed = {seed}, cycle, k;
  gate dut(.clk(clk), .rst(rst), .i__payload(i__payload), .i__valid(i__valid),
           .i__ready(i__ready), .o__payload(o__payload), .o__valid(o__valid),
           .o__ready(o__ready));
  initial begin
    for (cycle = 0; cycle < {cycles}; cycle = cycle + 1) begin
      k = $random(seed) & 7;
      if (k == 0)
        for (k = 0; k <= {in_msb}; k = k + 1) i__payload[k] = $random(seed);
      else if (k == 1)
        i__payload[$unsigned($random(seed)) % {in_bits}] = $random(seed);
      i__valid = $random(seed);
      o__ready = ($random(seed) & 3) != 0;
      rst = cycle < 2 || ($random(seed) & 63) == 0;
      #1 clk = 1'b1;
      #1 clk = 1'b0;
      $display("%0d %h %b %b", cycle, o__payload, o__valid, i__ready);
    end
    $finish;
  end
endmodule
"""


def verilator_view_matches(text: str, in_bits: int, out_bits: int, tmp_path, seed: int = 1):
    """Whether the module ``gate`` of ``text`` gives the same outputs on every cycle in Icarus
    with ``VERILATOR`` defined (the stages `staged_loads` computes only when their inputs
    changed) and without it (every stage on every ``advance``, as synthesized)."""
    (tmp_path / "gate.v").write_text(text)
    bench = STAGED_BENCH.format(
        in_msb=in_bits - 1, in_bits=in_bits, out_msb=out_bits - 1, seed=seed, cycles=600
    )
    (tmp_path / "tb.v").write_text(bench)
    outputs = []
    for defines in ([], ["-DVERILATOR"]):
        subprocess.run(
            ["iverilog", "-g2005", *defines, "-o", "tb.vvp", "tb.v", "gate.v"],
            cwd=tmp_path,
            check=True,
        )
        run = subprocess.run(
            ["vvp", "-n", "tb.vvp"], cwd=tmp_path, capture_output=True, text=True, check=True
        )
        outputs.append([line for line in run.stdout.splitlines() if line[:1].isdigit()])
    assert len(outputs[0]) == 600
    return outputs[0] == outputs[1]


needs_icarus = pytest.mark.skipif(shutil.which("iverilog") is None, reason="no iverilog")


def check_equivalent(mac: ConstantMatVec, tmp_path) -> None:
    ok, status = equivalent(component_verilog(mac, "gold"), matvec_verilog(mac, "gate"), tmp_path)
    assert ok, status[-3000:]
    proven = re.search(r"Of those cells (\d+) are proven and 0 are unproven", status)
    assert proven and int(proven.group(1)) > 0, status[-3000:]


def test_text_module_is_equivalent_to_amaranths(tmp_path):
    check_equivalent(random_mac(3, Multiplier.AUTO), tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(10, 34))
def test_text_module_is_equivalent_to_amaranths_on_many_arrays(seed, tmp_path):
    check_equivalent(random_mac(seed, list(Multiplier)[seed % 3]), tmp_path)


@pytest.mark.parametrize("output_levels", [pytest.param(None, marks=pytest.mark.slow), 0])
def test_every_output_style_with_dsp_products_and_bias_columns(output_levels, tmp_path):
    weights = np.array([[3, 0, 0, -1], [-7, 0, 5, 2], [0, 0, 12, 0]])
    mac = ConstantMatVec(
        weights, signed(6), FixedType(14, 0, True), np.array([5, -9, 0, 0]),
        Multiplier.DSP, levels_per_stage=1, output_levels=output_levels,
    )  # fmt: skip
    assert mac.dsp_multipliers > 0 and mac.plan.outputs[1] is None
    check_equivalent(mac, tmp_path)


def test_the_check_finds_a_wrong_constant(tmp_path):
    mac = random_mac(1, Multiplier.LUT)
    text = matvec_verilog(mac, "gate")
    # one adder turned into a subtractor
    wrong = re.sub(r"(assign n\d+ = [^;]*?) \+ ", r"\1 - ", text, count=1)
    assert wrong != text
    ok, _ = equivalent(component_verilog(mac, "gold"), wrong, tmp_path)
    assert not ok


def test_equal_arrays_share_one_module_named_by_its_text():
    weights = np.array([[3, -5], [0, 7]])
    acc = FixedType(12, 0, True)
    macs = [ConstantMatVec(weights, signed(4), acc) for _ in range(2)]
    other = ConstantMatVec(weights, unsigned(4), acc)
    modules = MacModules("net")
    for mac in (*macs, other):
        modules.instance(mac)
    assert len(modules.modules) == 2
    name, text = module_name("net", macs[0])
    assert re.fullmatch(r"net__mac_[0-9a-f]{16}", name)
    assert modules.modules[name] == text and text.startswith(f"module {name}(")


@needs_icarus
@pytest.mark.parametrize("seed", [0, 2, 5, 6])  # latency 3, 2 (unregistered output), 4, 3
def test_verilators_view_computes_a_stage_only_when_its_input_moved_with_the_same_outputs(
    seed, tmp_path
):
    mac = random_mac(seed, list(Multiplier)[seed % 3])
    text = matvec_verilog(mac, "gate")
    assert "`ifndef VERILATOR" in text or mac.plan.latency == 0
    in_bits = mac.in_shape.width * mac.weights.shape[0]
    out_bits = mac.acc_type.width * len(mac.plan.outputs)
    assert verilator_view_matches(text, in_bits, out_bits, tmp_path, seed)


@needs_icarus
def test_the_verilator_view_check_finds_a_stage_that_misses_a_change(tmp_path):
    mac = random_mac(5, Multiplier.AUTO)
    text = matvec_verilog(mac, "gate")
    in_bits = mac.in_shape.width * mac.weights.shape[0]
    out_bits = mac.acc_type.width * len(mac.plan.outputs)
    # stage 2 forgets that stage 1 was loaded: it keeps what it computed from older inputs
    wrong = text.replace("sim_pending_2 <= load_1;", "sim_pending_2 <= 1'h0;")
    assert wrong != text
    assert not verilator_view_matches(wrong, in_bits, out_bits, tmp_path)
