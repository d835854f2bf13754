# amaranth: UnusedElaboratable=no
"""GlobalMax / GlobalAverage in Amaranth's simulator, under random valid/ready, against the
integer reference of pooling with a window covering the whole image.

The reference here is the pooling arithmetic written out with `quant.arith.divide_round` and
`quant.fixed.requantize` (the pool kernel is moving from `rtlgen.quant.reference._pool` to
`rtlgen.ops.pool.pool_reference`); `test_reference_equals_the_repository_pool_kernel`
checks it against whichever of the two exists, on the node the front end builds.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
from amaranth.back import rtlil
from amaranth.sim import Simulator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtlgen import ir
from rtlgen.layers.global_pool import DivideRound, GlobalAverage, GlobalMax, RunningReduce
from rtlgen.quant.arith import divide_round
from rtlgen.quant.errors import RtlgenError
from rtlgen.quant.fixed import FixedType, Rounding, fit, requantize

from .streams import drive, simulate_stream

MAX, AVG = ir.PoolKind.MAX, ir.PoolKind.AVG


def whole_image_pool(kind, image: tuple[int, ...], channels, out_type, rounding) -> ir.Pool:
    """The node the front end makes of Global*Pooling: a window covering the image.

    ``image`` is (L,) for a 1D signal, (H, W) for an image."""
    size = (1, image[0]) if len(image) == 1 else image
    out_shape = (1, channels) if len(image) == 1 else (1, 1, channels)
    return ir.Pool(
        "gpool",
        (*image, channels),
        out_shape,
        kind=kind,
        pool=size,
        stride=size,
        rounding=rounding,
        out_type=out_type,
    )


def repository_pool_kernel():
    """The repository's pooling reference kernel (it is being moved between modules)."""
    try:
        from rtlgen.ops.pool import pool_reference

        return pool_reference
    except ImportError:
        pass
    try:
        from rtlgen.quant.reference import _pool

        return _pool
    except ImportError:
        pytest.skip("no pooling reference kernel found in rtlgen.ops.pool or rtlgen.quant")


def reference(kind, x: np.ndarray, in_type: FixedType, out_type: FixedType, rounding):
    """(samples, positions, channels) mantissas -> (samples, channels): the whole-window
    pool of `_pool` (max then requantize; exact sum, divide_round, requantize)."""
    if kind is MAX:
        return requantize(x.max(axis=1), in_type.frac, out_type, rounding)
    total = x.sum(axis=1)
    positions = x.shape[1]
    shift = out_type.frac - in_type.frac
    num, den = (total << shift, positions) if shift >= 0 else (total, positions << -shift)
    return requantize(divide_round(num, den, rounding), out_type.frac, out_type, rounding)


def samples_with_extremes(rng, in_type: FixedType, samples: int, positions: int, channels: int):
    """Random mantissas; one sample at the type minimum, one at the maximum (sum extremes),
    and single elements at the limits elsewhere."""
    x = rng.integers(in_type.min_int, in_type.max_int + 1, size=(samples, positions, channels))
    if samples >= 3:
        x[0] = in_type.min_int
        x[1] = in_type.max_int
    spots = rng.random(x.shape)
    x[spots < 0.1] = in_type.min_int
    x[spots > 0.9] = in_type.max_int
    return x


def make(kind, positions, channels, in_type, out_type, rounding):
    if kind is MAX:
        return GlobalMax(positions, channels, in_type, out_type, rounding)
    return GlobalAverage(positions, channels, in_type, out_type, rounding)


def check_global_pool(
    kind,
    image,
    channels,
    in_type,
    out_type,
    rounding=Rounding.CONVERGENT,
    *,
    samples=4,
    seed=0,
    valid_prob=1.0,
    ready_prob=1.0,
):
    positions = int(np.prod(image))
    rng = np.random.default_rng(seed)
    x = samples_with_extremes(rng, in_type, samples, positions, channels)
    expected = reference(kind, x, in_type, out_type, rounding)
    dut = make(kind, positions, channels, in_type, out_type, rounding)
    run = simulate_stream(
        dut, x.reshape(-1, channels).tolist(), samples, seed, valid_prob, ready_prob
    )
    assert run.outputs == expected.tolist()
    return dut, run


# in_type, out_type: as lowered (wider), narrower (rounds and saturates), to unsigned,
# fewer fractional bits than the input (average: divisor << -s).
TYPES = [
    (FixedType(8, 3), FixedType(12, 7)),
    (FixedType(6, 2), FixedType(4, 0)),
    (FixedType(7, 2), FixedType(6, 3, False)),
    (FixedType(5, 0, False), FixedType(9, 4, False)),
    (FixedType(10, 6), FixedType(5, 2)),
]


@pytest.mark.parametrize("kind", [MAX, AVG])
@pytest.mark.parametrize("positions", [1, 3, 7, 25])
@pytest.mark.parametrize("in_type,out_type", TYPES)
def test_global_pool_matches_reference(kind, positions, in_type, out_type):
    channels = positions % 5 + 1  # 2, 4, 3, 1
    check_global_pool(
        kind,
        (positions,),
        channels,
        in_type,
        out_type,
        seed=positions,
        valid_prob=0.6,
        ready_prob=0.5,
    )


@pytest.mark.parametrize("rounding", list(Rounding))
@pytest.mark.parametrize("kind", [MAX, AVG])
@pytest.mark.parametrize("image", [(5, 5), (3, 1), (2, 7)])
def test_global_pool_rounding_modes_on_images(rounding, kind, image):
    for in_type, out_type in TYPES[:3]:
        check_global_pool(
            kind,
            image,
            5,
            in_type,
            out_type,
            rounding,
            samples=3,
            seed=len(image) + image[0],
            valid_prob=0.8,
            ready_prob=0.6,
        )


@pytest.mark.parametrize("kind", [MAX, AVG])
@pytest.mark.parametrize("image", [(1,), (3,), (7,), (25,), (5, 5), (3, 1), (2, 7)])
def test_reference_equals_the_repository_pool_kernel(kind, image):
    """The test's reference is the repository kernel on the node Global*Pooling becomes."""
    pool_kernel = repository_pool_kernel()
    rng = np.random.default_rng(len(image) * 100 + image[0])
    positions, channels, samples = int(np.prod(image)), 3, 6
    for in_type, out_type in TYPES:
        x = samples_with_extremes(rng, in_type, samples, positions, channels)
        for rounding in Rounding:
            node = whole_image_pool(kind, image, channels, out_type, rounding)
            ours = reference(kind, x, in_type, out_type, rounding)
            theirs = pool_kernel(node, x.reshape(samples, *image, channels), in_type)
            assert np.array_equal(ours, theirs.reshape(samples, channels))


@pytest.mark.parametrize("kind", [MAX, AVG])
@pytest.mark.parametrize("positions", [1, 3, 7, 25])
def test_full_rate_takes_one_beat_per_cycle_and_reports_latency(kind, positions):
    samples = 4
    dut, run = check_global_pool(
        kind, (positions,), 3, FixedType(8, 3), FixedType(9, 5), samples=samples, seed=3
    )
    assert dut.cycles_per_sample == positions
    assert run.in_cycles == list(range(samples * positions))
    last_beats = [run.in_cycles[(k + 1) * positions - 1] for k in range(samples)]
    assert [out - last for out, last in zip(run.out_cycles, last_beats, strict=True)] == [
        dut.latency
    ] * samples


def run_with_late_consumer(dut, kind, positions, samples, wait, seed=0):
    """Full-rate input; the consumer takes each result ``wait(rng)`` cycles after its
    ``o.valid`` rose (ready low before). Checks the outputs against the reference and returns
    the input handshake cycles."""
    in_type, out_type = dut.in_type, dut.out_type
    rng = np.random.default_rng(seed)
    x = samples_with_extremes(rng, in_type, samples, positions, dut.channels)
    in_cycles: list[int] = []
    outputs: list = []
    waits = random.Random(seed)

    async def source(ctx):
        beats = x.reshape(-1, dut.channels).tolist()
        await drive(ctx, dut.i, beats, random.Random(0), 1.0, in_cycles)

    async def sink(ctx):
        waited, due = 0, wait(waits)
        while len(outputs) < samples:
            ctx.set(dut.o.ready, waited >= due)
            _, _, valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            if valid and waited >= due:
                outputs.append([int(payload[ch]) for ch in range(dut.channels)])
                waited, due = 0, wait(waits)
            elif valid:
                waited += 1

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(source)
    sim.add_testbench(sink)
    sim.run()
    assert outputs == reference(kind, x, in_type, out_type, dut.rounding).tolist()
    return in_cycles


# GlobalMax without and with a requantization stage, GlobalAverage (latency 1, 2 and 4).
BACKPRESSURE_CASES = [(MAX, FixedType(6, 2)), (MAX, FixedType(8, 3)), (AVG, FixedType(8, 3))]


@pytest.mark.parametrize("kind,out_type", BACKPRESSURE_CASES)
@pytest.mark.parametrize("positions", [1, 2, 3, 7, 25])
def test_result_may_wait_up_to_positions_minus_one_cycles(kind, out_type, positions):
    """The documented guarantee: a consumer taking each result at most positions - 1 cycles
    after its o.valid rose (here a random wait in [0, positions - 1] per result, and always
    the longest) never stalls a full-rate input."""
    samples = 30
    dut = make(kind, positions, 2, FixedType(6, 2), out_type, Rounding.CONVERGENT)
    for seed, wait in [(1, lambda rng: rng.randrange(positions)), (2, lambda rng: positions - 1)]:
        in_cycles = run_with_late_consumer(dut, kind, positions, samples, wait, seed)
        assert in_cycles == list(range(samples * positions))


@pytest.mark.parametrize("kind,out_type", BACKPRESSURE_CASES)
@pytest.mark.parametrize("positions", [1, 3, 7])
def test_waiting_positions_cycles_per_result_stalls_the_input(kind, out_type, positions):
    """The guarantee is the limit: a result every positions + 1 cycles is slower than the
    input, which must then wait (nothing lost: the outputs are still checked)."""
    samples = 40
    dut = make(kind, positions, 2, FixedType(6, 2), out_type, Rounding.CONVERGENT)
    in_cycles = run_with_late_consumer(dut, kind, positions, samples, lambda rng: positions)
    assert in_cycles != list(range(samples * positions))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from([MAX, AVG]),
    positions=st.integers(1, 30),
    channels=st.integers(1, 5),
    bits=st.integers(1, 12),
    frac=st.integers(-2, 6),
    signed=st.booleans(),
    out_bits=st.integers(1, 16),
    frac_shift=st.integers(-4, 6),
    out_signed=st.booleans(),
    rounding=st.sampled_from(list(Rounding)),
    seed=st.integers(0, 2**16),
    valid_prob=st.sampled_from([1.0, 0.3, 0.7]),
    ready_prob=st.sampled_from([1.0, 0.3, 0.7]),
)
def test_global_pool_matches_reference_fuzzed(
    kind,
    positions,
    channels,
    bits,
    frac,
    signed,
    out_bits,
    frac_shift,
    out_signed,
    rounding,
    seed,
    valid_prob,
    ready_prob,
):
    in_type = FixedType(bits, frac, signed)
    out_type = FixedType(out_bits, frac + frac_shift, out_signed)
    check_global_pool(
        kind,
        (positions,),
        channels,
        in_type,
        out_type,
        rounding,
        samples=3,
        seed=seed,
        valid_prob=valid_prob,
        ready_prob=ready_prob,
    )


@pytest.mark.parametrize("divisor", [1, 3, 4, 25, 49, 1024])
@pytest.mark.parametrize("rounding", list(Rounding))
def test_divide_round_is_exact_over_the_whole_input_range(divisor, rounding):
    """Every mantissa of a 7-bit type through the hardware, against `divide_round` + `fit`."""
    num_type, out_type = FixedType(7, 1), FixedType(5, 3)
    values = list(range(num_type.min_int, num_type.max_int + 1))
    dut = DivideRound(1, num_type, divisor, out_type, rounding)
    run = simulate_stream(dut, [[v] for v in values], len(values), divisor, 0.7, 0.7)
    expected = fit(divide_round(np.array(values) << 2, divisor, rounding), out_type)
    assert [v for (v,) in run.outputs] == expected.tolist()


def test_accumulators_are_registers_not_memory():
    """No line buffer: the design has no memory, and the sum register covers the exact sum."""
    dut = GlobalAverage(25, 3, FixedType(8, 3), FixedType(12, 7))
    assert "$mem" not in rtlil.convert(dut)
    assert dut.reduce.acc_type == FixedType.covering(25 * -128, 25 * 127, 3)
    assert dut.register_bits == 3 * dut.reduce.acc_type.width
    assert RunningReduce(25, 3, FixedType(8, 3), "max").acc_type == FixedType(8, 3)


def test_bad_sizes_are_user_errors():
    with pytest.raises(RtlgenError, match="at least 1 position"):
        GlobalAverage(0, 3, FixedType(8, 3), FixedType(8, 3))
    with pytest.raises(RtlgenError, match="at least 1 channel"):
        GlobalMax(4, 0, FixedType(8, 3))
