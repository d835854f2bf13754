# amaranth: UnusedElaboratable=no
"""MultiWindowGenerator and PixelSerializer (several pixels per beat) in Amaranth's simulator,
against the reference's windows and the one-pixel WindowGenerator."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import signed, unsigned

from rtlgen.layers.common import value_range
from rtlgen.layers.multi_pixel import MultiWindowGenerator, PixelRows, PixelSerializer
from rtlgen.layers.window import WindowGenerator
from rtlgen.quant.errors import RtlgenError
from rtlgen.quant.reference import windows

from .streams import simulate_stream


def _image(rng, shape, samples, height, width, channels):
    lo, hi = value_range(shape)
    return rng.integers(lo, hi + 1, size=(samples, height, width, channels))


def _windows_of(dut: MultiWindowGenerator, outputs: list, samples: int) -> np.ndarray:
    """The windows of the filled slots of the output beats, in stream order:
    (samples, out_h, out_w, window elements)."""
    out = dut.out_rows
    beats = np.asarray(outputs).reshape(samples, out.beats, out.pixels, -1)
    if dut.interleave:  # (position, slot, channel) -> (slot, position, channel)
        positions = dut.kernel[0] * dut.kernel[1]
        beats = beats.reshape(samples, out.beats, positions, out.pixels, dut.channels)
        beats = beats.transpose(0, 1, 3, 2, 4).reshape(samples, out.beats, out.pixels, -1)
    return out.unpack(beats.reshape(samples, out.beats, -1))


def check(
    height,
    width,
    channels,
    kernel,
    stride,
    pixels,
    offset=0,
    shape=None,
    *,
    samples=2,
    seed=0,
    valid_prob=1.0,
    ready_prob=1.0,
    interleave=False,
):
    shape = signed(6) if shape is None else shape
    rng = np.random.default_rng(seed)
    x = _image(rng, shape, samples, height, width, channels)
    rows = PixelRows(height, width, pixels, offset)
    dut = MultiWindowGenerator(rows, channels, kernel, stride, shape, interleave=interleave)
    n_out = samples * dut.out_rows.beats
    run = simulate_stream(
        dut,
        rows.pack(x).reshape(-1, rows.pixels * x.shape[3]).tolist(),
        n_out,
        seed,
        valid_prob,
        ready_prob,
    )
    got = _windows_of(dut, run.outputs, samples)
    expected = windows(x, kernel, stride)  # (n, oh, ow, kh, kw, c)
    np.testing.assert_array_equal(got, expected.reshape(got.shape))
    return dut, run


@pytest.mark.parametrize("pixels", [1, 2, 4])
@pytest.mark.parametrize(
    "height, width, kernel, stride",
    [
        (5, 8, (3, 3), (1, 1)),
        (6, 8, (2, 2), (2, 2)),
        (4, 8, (1, 3), (1, 1)),
        (5, 8, (3, 2), (1, 2)),
    ],
)
def test_windows_equal_the_reference_at_full_rate(height, width, kernel, stride, pixels):
    if pixels % stride[1]:
        pytest.skip("stride does not divide P")
    dut, run = check(height, width, 2, kernel, stride, pixels)
    # one beat per cycle, no bubble between rows or samples
    assert run.in_cycles == list(range(len(run.in_cycles)))


@pytest.mark.parametrize("offset", [1, 2, 3])
@pytest.mark.parametrize("width", [7, 13, 15])
def test_odd_widths_and_row_offsets(width, offset):
    # what reaches a layer after another window layer: rows of any width, starting mid-beat
    check(5, width, 3, (3, 3), (1, 1), 4, offset, seed=width + offset)
    check(6, width, 2, (2, 2), (2, 2), 4, offset, seed=width * offset)


@pytest.mark.parametrize("seed", range(4))
def test_random_backpressure_and_gaps(seed):
    check(
        7, 12, 2, (3, 3), (1, 1), 4, seed % 4, samples=3, seed=seed, valid_prob=0.6, ready_prob=0.5
    )
    check(
        6,
        10,
        2,
        (2, 2),
        (2, 2),
        2,
        seed % 2,
        samples=3,
        seed=seed,
        valid_prob=0.7,
        ready_prob=0.4,
        interleave=True,
    )


def test_one_beat_rows_and_kernel_as_wide_as_the_image():
    check(4, 4, 1, (3, 4), (1, 1), 4, shape=unsigned(5))  # every row is one beat
    check(5, 3, 2, (2, 3), (1, 1), 4, 1, valid_prob=0.5, ready_prob=0.5)


def test_equals_the_one_pixel_window_generator():
    rng = np.random.default_rng(5)
    x = _image(rng, signed(8), 2, 6, 9, 2)
    one = WindowGenerator(6, 9, 2, (3, 3), (1, 1), (0, 0, 0, 0), signed(8))
    expected = simulate_stream(one, x.reshape(-1, 2).tolist(), 2 * 4 * 7).outputs
    rows = PixelRows(6, 9, 1)
    multi = MultiWindowGenerator(rows, 2, (3, 3), (1, 1), signed(8))
    got = simulate_stream(
        multi, rows.pack(x).reshape(-1, rows.pixels * x.shape[3]).tolist(), 2 * 4 * 7
    ).outputs
    assert got == expected


def test_output_rows_follow_the_window_offsets():
    # P=4 from column 0, a 3-wide kernel: output column 0 ends at input column 2 (slot 2)
    g = MultiWindowGenerator(PixelRows(32, 32, 4), 3, (3, 3))
    assert (g.out_rows, g.skip) == (PixelRows(30, 30, 4, 2), 0)
    pool = MultiWindowGenerator(g.out_rows, 16, (2, 2), (2, 2))
    assert pool.out_rows == PixelRows(15, 15, 2, 1)
    assert sum(pool.emit_pattern()) == 15 * pool.out_rows.beats_per_row


def test_refusals():
    with pytest.raises(RtlgenError, match="stride must divide"):
        MultiWindowGenerator(PixelRows(8, 8, 2), 1, (3, 3), (3, 3))
    with pytest.raises(RtlgenError, match="offset"):
        PixelRows(8, 8, 4, 4)
    with pytest.raises(RtlgenError, match="does not fit"):
        MultiWindowGenerator(PixelRows(2, 8, 2), 1, (3, 3))


@pytest.mark.parametrize("offset, width", [(0, 8), (1, 7), (3, 13), (2, 2)])
def test_serializer_emits_the_pixels_in_row_order(offset, width):
    rng = np.random.default_rng(width)
    x = _image(rng, signed(7), 2, 3, width, 3)
    rows = PixelRows(3, width, 4, offset)
    dut = PixelSerializer(rows, 3, signed(7))
    run = simulate_stream(
        dut,
        rows.pack(x).reshape(-1, rows.pixels * x.shape[3]).tolist(),
        x.size // 3,
        offset,
        0.7,
        0.6,
    )
    assert run.outputs == x.reshape(-1, 3).tolist()
