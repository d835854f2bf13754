# amaranth: UnusedElaboratable=no
"""`layers/window_verilog.py`: the Verilog text of a window generator is formally equivalent
(Yosys `equiv_make` / `equiv_induct` after `memory`: every input and every state of the
paired registers and line-memory words) to the Verilog Amaranth's back end writes for the
same `WindowGenerator`, on odd geometries: 1D and 2D kernels, 1x1 windows (zero-bit wait
counters), strides above the kernel, padding wider than the kernel, one-row and one-column
images, signed elements with a negative pad value, several channels; and of a
`MultiWindowGenerator` (2-4 pixels per beat, row offsets, strides, interleaved windows, one-row
images and one-beat rows without a line memory). Icarus Verilog runs
both side by side on random pixels with random input gaps, output backpressure and resets,
the line memory as a memory (not mapped to registers). (Whole networks with text window
generators: the conv network tests, which convert through `rtlgen.emit`.)"""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from amaranth.hdl import signed, unsigned

from rtlgen.emit import component_verilog
from rtlgen.layers.mac_verilog import verilog_text
from rtlgen.layers.multi_pixel import MultiWindowGenerator, PixelRows
from rtlgen.layers.window import WindowGenerator
from rtlgen.layers.window_verilog import (
    multi_supported,
    multi_window_verilog,
    supported,
    window_verilog,
)
from rtlgen.sim_tb import icarus

from .test_mac_verilog import equivalent

# (height, width, channels, kernel, stride, padding (top, bottom, left, right), element, pad)
GEOMETRIES = {
    "3x2-same-ish": (4, 5, 2, (3, 2), (1, 2), (1, 1, 1, 0), unsigned(4), 0),
    "1d-strided": (1, 7, 3, (1, 3), (1, 2), (0, 0, 1, 1), unsigned(5), 3),
    "1x1-padded": (3, 3, 1, (1, 1), (1, 1), (1, 1, 1, 1), unsigned(4), 0),
    "one-column": (5, 1, 2, (1, 1), (2, 1), (0, 0, 0, 0), unsigned(3), 0),
    "4x3-stride3-signed": (6, 4, 2, (4, 3), (3, 2), (2, 1, 0, 2), signed(5), -7),
    "2x2-pool": (5, 6, 1, (2, 2), (2, 2), (0, 0, 0, 0), unsigned(6), 0),
    "padding-beyond-kernel": (4, 3, 2, (3, 3), (1, 1), (3, 3, 3, 3), unsigned(2), 1),
    "one-pixel": (1, 1, 2, (1, 1), (1, 1), (0, 0, 0, 0), unsigned(3), 0),
    "5x5-stride-over-kernel": (9, 8, 1, (5, 2), (6, 3), (2, 0, 1, 0), signed(3), 0),
}


# pixels per beat (`MultiWindowGenerator`, valid padding): (rows, channels, kernel, stride,
# element, interleave)
MULTI_GEOMETRIES = {
    "p2-offset-3x2": (PixelRows(5, 7, 2, 1), 2, (3, 2), (1, 2), unsigned(4), False),
    "p4-3x3-stride2-interleaved": (PixelRows(6, 8, 4, 0), 1, (3, 3), (2, 2), signed(5), True),
    "p3-one-row": (PixelRows(1, 9, 3, 2), 2, (1, 3), (1, 3), unsigned(3), False),
    "p4-1x1-one-beat-rows": (PixelRows(4, 4, 4, 0), 2, (1, 1), (1, 1), unsigned(3), False),
    "p2-4x2-stride3": (PixelRows(7, 5, 2, 1), 1, (4, 2), (3, 1), signed(4), False),
    "p2-pool-interleaved": (PixelRows(4, 6, 2, 0), 3, (2, 2), (2, 2), unsigned(2), True),
}


def generator(geometry: str) -> WindowGenerator | MultiWindowGenerator:
    if geometry in MULTI_GEOMETRIES:
        rows, channels, kernel, stride, shape, interleave = MULTI_GEOMETRIES[geometry]
        return MultiWindowGenerator(rows, channels, kernel, stride, shape, interleave=interleave)
    height, width, channels, kernel, stride, padding, shape, pad = GEOMETRIES[geometry]
    return WindowGenerator(height, width, channels, kernel, stride, padding, shape, pad)


def text_of(window, name: str) -> str:
    if isinstance(window, MultiWindowGenerator):
        assert multi_supported(window)
        return multi_window_verilog(window, name)
    assert supported(window)
    return window_verilog(window, name)


@pytest.mark.parametrize("geometry", [*GEOMETRIES, *MULTI_GEOMETRIES])
def test_text_module_is_equivalent_to_amaranths(geometry, tmp_path):
    window = generator(geometry)
    ok, status = equivalent(component_verilog(window, "gold"), text_of(window, "gate"), tmp_path)
    assert ok, status[-3000:]
    assert "0 are unproven" in status, status[-3000:]


def random_generator(seed: int) -> WindowGenerator | MultiWindowGenerator:
    """A random small generator: one or P pixels per beat, any kernel, stride and padding
    that fit, signed or unsigned elements of 1-6 bits, a pad value in range."""
    rng = np.random.default_rng(seed)
    channels = int(rng.integers(1, 4))
    bits = int(rng.integers(1, 7))
    shape = signed(bits) if bits > 1 and rng.integers(2) else unsigned(bits)
    kernel = (int(rng.integers(1, 5)), int(rng.integers(1, 5)))
    height = int(rng.integers(kernel[0], 8))
    if seed % 3 == 2:  # pixels per beat: valid padding, the stride dividing P
        stride_w = int(rng.integers(1, 3))
        pixels = stride_w * int(rng.integers(1, 3))
        offset = int(rng.integers(pixels))
        # rows of two beats or more (a one-beat row with a line memory is not written)
        width = int(rng.integers(max(kernel[1], pixels - offset + 1), 10))
        rows = PixelRows(height, width, pixels, offset)
        stride = (int(rng.integers(1, 4)), stride_w)
        return MultiWindowGenerator(
            rows, channels, kernel, stride, shape, interleave=bool(rng.integers(2))
        )
    width = int(rng.integers(2, 9))
    padding = tuple(int(v) for v in rng.integers(0, 4, size=4))
    stride = (int(rng.integers(1, 5)), int(rng.integers(1, 5)))
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if shape.signed else (0, (1 << bits) - 1)
    pad = int(rng.integers(lo, hi + 1)) if rng.integers(2) else 0
    return WindowGenerator(height, width, channels, kernel, stride, padding, shape, pad)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(24))
def test_text_module_is_equivalent_to_amaranths_on_random_geometries(seed, tmp_path):
    window = random_generator(seed)
    ok, status = equivalent(component_verilog(window, "gold"), text_of(window, "gate"), tmp_path)
    assert ok, status[-3000:]
    assert "0 are unproven" in status, status[-3000:]


@pytest.mark.parametrize(
    "old,new",
    [
        ("read__addr = write__en ? col_addr_next : col_addr", "read__addr = col_addr"),
        ("{read__data[7:0], i__payload}", "{i__payload, read__data[7:0]}"),
        ("if (write__en) line_memory", "if (step) line_memory"),
    ],
)
def test_the_check_finds_a_wrong_line_memory(old, new, tmp_path):
    window = generator("3x2-same-ish")
    text = window_verilog(window, "gate")
    assert old in text
    ok, _ = equivalent(component_verilog(window, "gold"), text.replace(old, new), tmp_path)
    assert not ok


TESTBENCH = """
`timescale 1ns/1ps
module tb;
  reg clk = 0, rst = 0, i__valid = 0, o__ready = 0;
  reg [{in_msb}:0] i__payload = 0;
  wire gold_i_ready, gate_i_ready, gold_o_valid, gate_o_valid;
  wire [{out_msb}:0] gold_o_payload, gate_o_payload;
  integer cycle, windows, seed;
  reg taken = 1;
  gold g(.clk(clk), .rst(rst), .i__payload(i__payload), .i__valid(i__valid),
         .i__ready(gold_i_ready), .o__payload(gold_o_payload), .o__valid(gold_o_valid),
         .o__ready(o__ready));
  gate t(.clk(clk), .rst(rst), .i__payload(i__payload), .i__valid(i__valid),
         .i__ready(gate_i_ready), .o__payload(gate_o_payload), .o__valid(gate_o_valid),
         .o__ready(o__ready));
  initial begin
    seed = {seed};
    windows = 0;
    for (cycle = 0; cycle < {cycles}; cycle = cycle + 1) begin
      // inputs change after the edge: a pixel is held until taken, gaps and stalls random
      if (taken || !i__valid) begin
        i__valid = ($random(seed) & 3) != 0;
        i__payload = {{{randoms}}};
      end
      o__ready = ($random(seed) & 3) != 0;
      rst = ($random(seed) & 255) == 0;
      #1;
      if (gold_i_ready !== gate_i_ready || gold_o_valid !== gate_o_valid
          || (gold_o_valid && gold_o_payload !== gate_o_payload)) begin
        $display("MISMATCH cycle %0d: ready %b/%b valid %b/%b payload %h/%h", cycle,
                 gold_i_ready, gate_i_ready, gold_o_valid, gate_o_valid,
                 gold_o_payload, gate_o_payload);
        $finish;
      end
      taken = i__valid && gold_i_ready;
      if (gold_o_valid && o__ready && !rst) windows = windows + 1;
      clk = 1; #1; clk = 0; #1;
    end
    $display("WINDOWS %0d", windows);
    $finish;
  end
endmodule
"""


@pytest.mark.skipif(icarus.iverilog_version() is None, reason="iverilog is not installed")
@pytest.mark.parametrize(
    "geometry", ["3x2-same-ish", "4x3-stride3-signed", "1d-strided", "p2-offset-3x2"]
)
def test_text_module_runs_as_amaranths_under_gaps_and_backpressure(geometry, tmp_path):
    window = generator(geometry)
    assert run_side_by_side(window, text_of(window, "gate"), tmp_path) > 20


def run_side_by_side(component, gate: str, tmp_path, cycles: int = 3000) -> int:
    """Run Amaranth's Verilog of ``component`` (module ``gold``) and the text ``gate`` in
    Icarus Verilog on the same random inputs, gaps, backpressure and resets (`TESTBENCH`),
    asserting equal handshakes and payloads every cycle; the number of output beats taken."""
    in_bits = component.i.payload.shape().size
    out_bits = component.o.payload.shape().size
    bench = TESTBENCH.format(
        in_msb=in_bits - 1,
        out_msb=out_bits - 1,
        seed=7,
        cycles=cycles,
        randoms=", ".join(["$random(seed)"] * (in_bits // 32 + 1)),
    )
    files = {"gold.v": component_verilog(component, "gold"), "gate.v": gate}
    for name, text in {**files, "tb.v": bench}.items():
        (tmp_path / name).write_text(text)
    subprocess.run(["iverilog", "-g2005", "-o", "tb.vvp", "tb.v", *files], cwd=tmp_path, check=True)
    out = subprocess.run(
        ["vvp", "-n", "tb.vvp"], cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout
    assert "MISMATCH" not in out, out
    return int(out.split("WINDOWS")[1].split()[0])


def test_a_one_column_image_with_a_line_memory_is_left_to_amaranth():
    window = WindowGenerator(5, 1, 2, (3, 1), (1, 1), (1, 1, 0, 0), unsigned(4))
    assert not supported(window)
    with verilog_text("net") as modules:
        text = component_verilog(window, "w")
    assert modules.modules == {} and "line_memory" in text
    assert supported(WindowGenerator(5, 1, 2, (1, 1), (1, 1), (1, 1, 0, 0), unsigned(4)))


def test_a_one_beat_row_with_a_line_memory_is_left_to_amaranth():
    window = MultiWindowGenerator(PixelRows(5, 3, 4, 0), 2, (2, 2), (1, 1), unsigned(4))
    assert not multi_supported(window)
    with verilog_text("net") as modules:
        text = component_verilog(window, "w")
    assert modules.modules == {} and "line_memory" in text


def test_equal_generators_share_one_text_module():
    with verilog_text("net") as modules:
        for _ in range(2):
            component_verilog(generator("2x2-pool"), "w")
        component_verilog(generator("1d-strided"), "v")
    assert sorted(name.split("_")[-2] for name in modules.modules) == ["win", "win"]


@pytest.mark.slow
def test_text_line_memory_maps_to_ram_cells(tmp_path):
    """As tests/layers/test_window.py's Amaranth version: Yosys (Xilinx mapping, stopped
    before ABC) turns the text module's line memory into RAM primitives."""
    import re

    from rtlgen.synth import _yosys_command

    window = WindowGenerator(16, 32, 4, (3, 3), (1, 1), (1, 1, 1, 1), signed(8))
    (tmp_path / "wg.v").write_text(window_verilog(window, "wg"))
    script = (
        "read_verilog wg.v; synth_xilinx -flatten -family xcup -noiopad -top wg -run :map_ffs; stat"
    )
    out = subprocess.run(
        [*_yosys_command(), "-p", script], cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout
    cells = dict((name, int(n)) for n, name in re.findall(r"^\s+(\d+)\s+(\S+)$", out, re.M))
    assert any(name.startswith(("RAM32M", "RAM64M", "RAMB")) for name in cells), cells


def test_a_wide_window_generator_stays_in_the_top_as_an_instance(tmp_path):
    """Port bits above `rtlgen.emit.SEPARATE_BITS` (64 channels of 8 bits, 3x3) would make it a
    module of its own, converted by Amaranth and Yosys for one instance: as text it costs
    nothing in the top (`conversion_cost` 0)."""
    import re

    from rtlgen import emit

    from ..rtlgen.nets import conv_net

    graph = conv_net(h=5, w=5, c=64, filters=2, sparsity=0.9, pool=False)
    design = emit.convert(graph, tmp_path / "d", jobs=1)
    text = design.verilog.read_text()
    window = WindowGenerator(5, 5, 64, (3, 3), elem_shape=8)
    assert len(window.o.payload.as_value()) >= emit.SEPARATE_BITS and window.conversion_cost == 0
    assert re.search(rf"^module {design.top}__win_", text, re.M)
    assert not re.search(rf"^module {design.top}__l0_conv_0\(", text, re.M)
