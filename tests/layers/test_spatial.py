# amaranth: UnusedElaboratable=no
"""ZeroPad / Crop / UpSampleNearest / ZeroInsert against `rtlgen.quant.spatial`, in Amaranth's simulator."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Fragment, signed, unsigned
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtlgen.layers.common import value_range
from rtlgen.layers.spatial import Crop, UpSampleNearest, ZeroInsert, ZeroPad
from rtlgen.quant.errors import RtlgenError
from rtlgen.quant.spatial import crop, upsample_nearest, zero_insert, zero_pad

from .streams import simulate_stream

SIGNED_6 = signed(6)
_SIM_SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])


BLOCKS = {  # kind: (component, reference kernel)
    "pad": (ZeroPad, zero_pad),
    "crop": (Crop, crop),
    "up": (UpSampleNearest, upsample_nearest),
    # amounts: (strides, padding)
    "ins": (
        lambda h, w, c, a, e: ZeroInsert(h, w, c, a[0], a[1], e),
        lambda x, a: zero_insert(x, a[0], a[1]),
    ),
}


def build(kind: str, height, width, channels, amounts, element_shape):
    """(DUT, reference on (N, H, W, C) mantissas) of one block."""
    component, kernel = BLOCKS[kind]
    dut = component(height, width, channels, amounts, element_shape)
    return dut, lambda x: kernel(x, amounts)


def check(
    kind,
    height,
    width,
    channels,
    amounts,
    element_shape=SIGNED_6,
    *,
    samples=3,
    seed=0,
    valid_prob=1.0,
    ready_prob=1.0,
):
    """Random mantissas of the element shape through the DUT, bit-exact vs the reference."""
    dut, reference = build(kind, height, width, channels, amounts, element_shape)
    rng = np.random.default_rng(seed)
    lo, hi = value_range(dut.element_shape)
    x = rng.integers(lo, hi + 1, size=(samples, height, width, channels))
    expected = reference(x).reshape(-1, channels).tolist()
    run = simulate_stream(
        dut, x.reshape(-1, channels).tolist(), len(expected), seed, valid_prob, ready_prob
    )
    assert run.outputs == expected
    return dut, run


CASES = [
    # kind, height, width, channels, amounts
    ("pad", 3, 4, 2, (1, 2, 3, 1)),  # asymmetric
    ("pad", 1, 7, 3, (0, 0, 2, 1)),  # 1D
    ("pad", 5, 1, 1, (2, 0, 0, 3)),  # Hx1, C=1
    ("pad", 1, 1, 3, (1, 1, 1, 1)),
    ("pad", 3, 5, 2, (0, 0, 0, 0)),  # nothing to add
    ("pad", 2, 3, 1, (0, 3, 0, 2)),  # trailing padding only
    ("crop", 5, 6, 3, (1, 2, 2, 1)),  # asymmetric
    ("crop", 1, 9, 2, (0, 0, 3, 4)),  # 1D
    ("crop", 7, 1, 1, (2, 4, 0, 0)),  # Hx1 to 1x1
    ("crop", 4, 5, 3, (0, 0, 0, 0)),
    ("crop", 3, 3, 1, (2, 0, 0, 2)),  # keeps the last pixel only
    ("up", 3, 4, 2, (2, 3)),
    ("up", 1, 5, 3, (1, 3)),  # 1D
    ("up", 4, 1, 1, (3, 1)),  # Hx1, C=1
    ("up", 1, 1, 3, (2, 2)),  # 1x1
    ("up", 3, 5, 2, (1, 1)),
    ("up", 2, 3, 3, (3, 1)),  # rows only
    ("up", 2, 1, 2, (2, 2)),  # one-pixel rows from the buffer
    ("ins", 3, 4, 2, ((2, 2), (2, 3, 2, 3))),  # a 4x4 stride-2 transposed conv's grid
    ("ins", 2, 3, 1, ((3, 2), (0, 0, 0, 0))),  # between only
    ("ins", 1, 5, 3, ((1, 2), (0, 0, 1, 2))),  # 1D
    ("ins", 1, 1, 2, ((2, 2), (1, 1, 1, 1))),  # one pixel: padding only
    ("ins", 4, 1, 1, ((2, 3), (0, 2, 1, 0))),  # Hx1
    ("ins", 2, 2, 1, ((1, 1), (1, 0, 0, 1))),  # strides 1: zero padding
]


@pytest.mark.parametrize("kind,height,width,channels,amounts", CASES)
@pytest.mark.parametrize("valid_prob,ready_prob", [(1.0, 1.0), (0.4, 0.3), (1.0, 0.5), (0.5, 1.0)])
def test_matches_reference(kind, height, width, channels, amounts, valid_prob, ready_prob):
    check(
        kind,
        height,
        width,
        channels,
        amounts,
        seed=height * 31 + width * 7 + channels,
        valid_prob=valid_prob,
        ready_prob=ready_prob,
    )


@pytest.mark.parametrize("element_shape", [unsigned(1), signed(1), unsigned(9), signed(13)])
@pytest.mark.parametrize(
    "kind,amounts", [("pad", (1, 0, 2, 1)), ("crop", (1, 1, 0, 2)), ("up", (2, 2))]
)
def test_element_shapes_pass_unchanged(kind, amounts, element_shape):
    check(kind, 3, 4, 2, amounts, element_shape, samples=2, valid_prob=0.6, ready_prob=0.6)


@st.composite
def cases(draw):
    kind = draw(st.sampled_from(["pad", "crop", "up", "ins"]))
    height, width = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    if kind == "pad":
        amounts = tuple(draw(st.integers(0, 3)) for _ in range(4))
    elif kind == "crop":
        top = draw(st.integers(0, height - 1))
        left = draw(st.integers(0, width - 1))
        amounts = (
            top,
            draw(st.integers(0, height - 1 - top)),
            left,
            draw(st.integers(0, width - 1 - left)),
        )
    elif kind == "up":
        amounts = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    else:
        strides = (draw(st.integers(1, 3)) if height > 1 else 1, draw(st.integers(1, 3)))
        pad_h = (draw(st.integers(0, 2)), draw(st.integers(0, 2))) if height > 1 else (0, 0)
        amounts = (strides, (*pad_h, draw(st.integers(0, 2)), draw(st.integers(0, 2))))
    bits = draw(st.integers(1, 10))
    return dict(
        kind=kind,
        height=height,
        width=width,
        channels=draw(st.integers(1, 3)),
        amounts=amounts,
        element_shape=signed(bits) if draw(st.booleans()) else unsigned(bits),
        samples=draw(st.integers(1, 3)),
        seed=draw(st.integers(0, 2**16)),
        valid_prob=draw(st.sampled_from([1.0, 0.3, 0.7])),
        ready_prob=draw(st.sampled_from([1.0, 0.3, 0.7])),
    )


@settings(max_examples=20, **_SIM_SETTINGS)
@given(cases())
def test_matches_reference_fuzzed(case):
    check(**case)


@pytest.mark.slow
@settings(max_examples=500, **_SIM_SETTINGS)
@given(cases())
def test_matches_reference_fuzzed_extended(case):
    check(**case)


FULL_RATE = [
    ("pad", 3, 4, 2, (1, 2, 3, 1)),
    ("pad", 1, 5, 1, (0, 0, 2, 0)),
    ("pad", 2, 2, 1, (0, 1, 0, 1)),
    ("crop", 5, 6, 3, (1, 2, 2, 1)),
    ("crop", 1, 9, 2, (0, 0, 3, 4)),
    ("up", 3, 4, 2, (2, 3)),
    ("up", 2, 1, 2, (3, 1)),
    ("up", 1, 5, 1, (1, 2)),
    ("up", 2, 3, 1, (1, 1)),
    ("ins", 3, 4, 2, ((2, 2), (2, 3, 2, 3))),
    ("ins", 2, 3, 1, ((3, 2), (0, 1, 0, 0))),
]


@pytest.mark.parametrize("kind,height,width,channels,amounts", FULL_RATE)
def test_full_rate_period_is_cycles_per_sample(kind, height, width, channels, amounts):
    """Input always valid, output always ready: consecutive samples start (first input
    handshake, first output beat) exactly `cycles_per_sample` cycles apart, and the block is
    busy every cycle (every output beat for pad/upsampling, every input beat for crop)."""
    samples = 4
    dut, run = check(kind, height, width, channels, amounts, samples=samples)
    n_in = height * width
    n_out = len(run.outputs) // samples
    period = dut.cycles_per_sample
    in_starts = run.in_cycles[::n_in]
    out_starts = run.out_cycles[::n_out]
    assert np.diff(in_starts).tolist() == [period] * (samples - 1)
    assert np.diff(out_starts).tolist() == [period] * (samples - 1)
    busy = run.in_cycles if kind == "crop" else run.out_cycles
    assert np.diff(busy).tolist() == [1] * (len(busy) - 1)
    assert busy[-1] - busy[0] + 1 == samples * period


@pytest.mark.parametrize("kind,height,width,channels,amounts", FULL_RATE)
def test_latency_from_pixel_handshake_to_its_beat(kind, height, width, channels, amounts):
    """At full rate, the (first) output beat of every input pixel that appears in the output
    is valid `latency` cycles after that pixel's handshake; the first output of a padded
    sample is valid `latency` cycles after the first pixel is offered (cycle 0)."""
    samples = 2
    dut, run = check(kind, height, width, channels, amounts, samples=samples)
    # Where each input pixel's first beat lands: run an index image through the reference.
    n_in = height * width
    index = np.arange(samples * n_in).reshape(samples, height, width, 1) + 1
    _, reference = build(kind, height, width, 1, amounts, unsigned(16))
    landed = reference(index).reshape(-1)
    checked = 0
    for pixel in range(samples * n_in):
        positions = np.flatnonzero(landed == pixel + 1)
        if positions.size:
            assert run.out_cycles[positions[0]] - run.in_cycles[pixel] == dut.latency
            checked += 1
    assert checked > 0
    assert run.out_cycles[0] == dut.latency or kind == "crop"


def test_upsampling_accepts_next_sample_when_last_beat_is_taken():
    """Back to back, the next sample's first pixel is taken in the cycle the previous
    sample's last beat is taken, also under output backpressure."""
    height, width, size = 2, 3, (2, 2)
    samples = 3
    dut, run = check("up", height, width, 2, size, samples=samples, ready_prob=0.5)
    per_sample = dut.cycles_per_sample
    for s in range(1, samples):
        last_out = run.out_cycles[s * per_sample - 1]
        assert run.in_cycles[s * height * width] == last_out


def test_upsampling_row_buffer_only_when_rows_repeat():
    assert UpSampleNearest(3, 5, 2, (1, 4), signed(8)).row_buffer_bits == 0
    dut = UpSampleNearest(3, 5, 2, (2, 1), signed(8))
    assert dut.row_buffer_bits == 5 * 2 * 8
    Fragment.get(dut, None)  # elaborates with a memory


@pytest.mark.parametrize(
    "make",
    [
        lambda: ZeroPad(3, 3, 1, (0, -1, 0, 0), 8),
        lambda: ZeroPad(0, 3, 1, (0, 0, 0, 0), 8),
        lambda: Crop(3, 3, 1, (1, 2, 0, 0), 8),
        lambda: Crop(3, 3, 1, (0, 0, 3, 0), 8),
        lambda: UpSampleNearest(3, 3, 1, (0, 2), 8),
        lambda: UpSampleNearest(3, 3, 0, (1, 2), 8),
        lambda: ZeroInsert(3, 3, 1, (0, 2), (0, 0, 0, 0), 8),
        lambda: ZeroInsert(3, 3, 1, (2, 2), (0, 0, -1, 0), 8),
    ],
)
def test_invalid_geometry_is_a_user_error(make):
    with pytest.raises(RtlgenError):
        make()
