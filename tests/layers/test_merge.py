# amaranth: UnusedElaboratable=no
"""Merge, Concatenate and Fork components against `rtlgen.quant.merge`, in Amaranth's
simulator, with independent random gaps on every input and random ready on every output."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from amaranth.hdl import ClockDomain, Elaboratable, Module, unsigned
from amaranth.lib import wiring
from amaranth.sim import Simulator

from rtlgen.layers.common import vector_layout
from rtlgen.layers.merge import (
    BroadcastMerge,
    Concatenate,
    DivideRequantize,
    ElementwiseMerge,
    Fork,
    Merge,
)
from rtlgen.layers.stream_util import StreamFifo
from rtlgen.quant.errors import RtlgenError
from rtlgen.quant.fixed import FixedType, Overflow, Rounding
from rtlgen.quant.merge import (
    MergeOp,
    concat_type,
    concatenate,
    divide_requantize,
    merge,
    merge_acc,
    merge_acc_type,
)

from ..quant.test_merge import cases
from .streams import StreamRun, collect, drive, to_python

#: Cycles before a run is declared stuck (a few hundred beats at the lowest rates here).
TIMEOUT = 5_000


# ---------------------------------------------------------------------------------------
# harness: several inputs, one output
# ---------------------------------------------------------------------------------------
def simulate_join(
    dut,
    inputs: Sequence[Sequence[Any]],
    n_out: int,
    seed: int = 0,
    valid_prob: float | Sequence[float] = 1.0,
    ready_prob: float = 1.0,
    idle_cycles: int = 8,
) -> tuple[StreamRun, list[list[int]]]:
    """Drive ``dut.i0``.. with ``inputs[k]`` (each with its own random gaps), collect ``o``.

    Returns the run (``in_cycles`` of input 0) and the handshake cycles of every input.
    """
    rng = random.Random(seed)
    ports = dut.inputs
    if isinstance(valid_prob, float):
        valid_prob = [valid_prob] * len(ports)
    run = StreamRun()
    in_cycles: list[list[int]] = [[] for _ in ports]

    def source(k: int):
        port_rng = random.Random(rng.getrandbits(64))

        async def bench(ctx):
            await drive(ctx, ports[k], inputs[k], port_rng, valid_prob[k], in_cycles[k], TIMEOUT)

        return bench

    out_rng = random.Random(rng.getrandbits(64))

    async def sink(ctx):
        run.outputs = await collect(ctx, dut.o, n_out, out_rng, ready_prob, run.out_cycles, TIMEOUT)
        ctx.set(dut.o.ready, 1)
        for _ in range(idle_cycles):
            _, _, valid = await ctx.tick().sample(dut.o.valid)
            assert not valid, f"more than the expected {n_out} outputs"

    sim = Simulator(with_clock(dut))
    sim.add_clock(1e-8)
    for k in range(len(ports)):
        sim.add_testbench(source(k))
    sim.add_testbench(sink)
    sim.run()
    run.in_cycles = in_cycles[0]
    return run, in_cycles


def with_clock(dut) -> Module:
    """``dut`` with a ``sync`` domain even if it has no registers (a latency 0 block)."""
    m = Module()
    m.domains.sync = ClockDomain()
    m.submodules.dut = dut
    return m


def random_mantissas(t: FixedType, shape, rng: np.random.Generator) -> np.ndarray:
    """Uniform mantissas of ``t`` with its extremes planted (min, max, 0 and near them)."""
    x = rng.integers(t.min_int, t.max_int + 1, size=shape).reshape(-1)
    extremes = [t.min_int, t.max_int, 0, t.min_int + 1, t.max_int - 1]
    x[: min(len(extremes), x.size)] = extremes[: x.size]
    rng.shuffle(x)
    return x.reshape(shape)


def beats(x: np.ndarray) -> list[list[int]]:
    return [[int(v) for v in row] for row in x]


TYPE_SETS = [
    [FixedType(6, 2), FixedType(5, 0, False)],  # 2 inputs, signed + unsigned
    [FixedType(4, -1), FixedType(7, 4), FixedType(3, 1, False)],  # 3 inputs, frac -1..4
    [FixedType(1, 0), FixedType(2, 2)],  # 1-bit input
]


RATES = [(1.0, 1.0), ((0.5, 0.8, 0.3), 0.6)]  # (valid per input, ready)


def rates_for(valid, n_inputs):
    return valid if isinstance(valid, float) else list(valid[:n_inputs])


# ---------------------------------------------------------------------------------------
# ElementwiseMerge
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("valid_prob,ready_prob", RATES, ids=["full", "random"])
@pytest.mark.parametrize("op,types", list(cases(TYPE_SETS)))
def test_elementwise_merge_matches_exact_accumulator(op, types, valid_prob, ready_prob):
    n_elements, n_beats = 3, 24
    rng = np.random.default_rng(len(types) * 10 + list(MergeOp).index(op))
    xs = [random_mantissas(t, (n_beats, n_elements), rng) for t in types]
    dut = ElementwiseMerge(op, n_elements, types)
    assert dut.acc_type == merge_acc_type(op, types)
    run, _ = simulate_join(
        dut,
        [beats(x) for x in xs],
        n_beats,
        seed=n_beats,
        valid_prob=rates_for(valid_prob, len(types)),
        ready_prob=ready_prob,
    )
    assert run.outputs == beats(merge_acc(op, xs, types))


def test_elementwise_merge_has_latency_one_and_ii_one():
    types = TYPE_SETS[1]
    rng = np.random.default_rng(1)
    xs = [random_mantissas(t, (10, 5), rng) for t in types]
    dut = ElementwiseMerge(MergeOp.ADD, 5, types)
    run, in_cycles = simulate_join(dut, [beats(x) for x in xs], 10)
    assert all(cycles == list(range(10)) for cycles in in_cycles)
    assert run.out_cycles == [c + dut.latency for c in range(10)]


def test_elementwise_merge_takes_beats_only_together():
    """An input with data waits for the others: every input's k-th beat is taken on the
    same cycle, under independent gaps."""
    types = TYPE_SETS[1]
    rng = np.random.default_rng(2)
    xs = [random_mantissas(t, (30, 1), rng) for t in types]
    dut = ElementwiseMerge(MergeOp.MAXIMUM, 1, types)
    run, in_cycles = simulate_join(
        dut, [beats(x) for x in xs], 30, seed=3, valid_prob=[0.9, 0.4, 0.6], ready_prob=0.5
    )
    assert in_cycles[0] == in_cycles[1] == in_cycles[2]
    assert run.outputs == beats(merge_acc(MergeOp.MAXIMUM, xs, types))


def test_elementwise_merge_rejects_a_narrow_accumulator():
    types = TYPE_SETS[0]
    with pytest.raises(RtlgenError, match="cannot hold every result"):
        ElementwiseMerge(MergeOp.ADD, 2, types, FixedType(6, 2))


def test_elementwise_merge_accepts_a_wider_accumulator():
    types = TYPE_SETS[0]
    acc = merge_acc_type(MergeOp.SUBTRACT, types)
    wide = FixedType(acc.width + 3, acc.frac, True)
    rng = np.random.default_rng(4)
    xs = [random_mantissas(t, (12, 3), rng) for t in types]
    dut = ElementwiseMerge(MergeOp.SUBTRACT, 3, types, wide)
    run, _ = simulate_join(dut, [beats(x) for x in xs], 12, seed=4, ready_prob=0.5)
    assert run.outputs == beats(merge_acc(MergeOp.SUBTRACT, xs, types))


# ---------------------------------------------------------------------------------------
# BroadcastMerge: operands held over a frame, or one value for every element
# ---------------------------------------------------------------------------------------
def broadcast_case(types, lanes, held, n_elements, frame_beats, frames, seed):
    """Per input: its mantissas as (frames, beats, lanes) (beats 1 when held) and its beats
    in stream order; and every input stretched to (frames, frame_beats, n_elements)."""
    rng = np.random.default_rng(seed)
    xs = [
        random_mantissas(t, (frames, 1 if h else frame_beats, n), rng)
        for t, n, h in zip(types, lanes, held, strict=True)
    ]
    streams = [beats(x.reshape(-1, x.shape[-1])) for x in xs]
    return xs, streams


#: (op, types, lanes, held, n_elements, frame_beats)
BROADCAST_CASES = [
    (MergeOp.MULTIPLY, TYPE_SETS[0], [3, 3], [False, True], 3, 5),  # SE: x * s
    (MergeOp.SUBTRACT, TYPE_SETS[0], [3, 3], [True, False], 3, 7),  # s - x: order kept
    (MergeOp.ADD, TYPE_SETS[1], [4, 1, 4], [False, False, True], 4, 3),  # a channel, a held
    (MergeOp.MAXIMUM, TYPE_SETS[1], [1, 2, 2], [True, True, False], 2, 4),  # two held
    (MergeOp.MINIMUM, TYPE_SETS[2], [1, 3], [True, False], 3, 1),  # one beat per frame
]


@pytest.mark.parametrize("valid_prob,ready_prob", RATES, ids=["full", "random"])
@pytest.mark.parametrize("op,types,lanes,held,n_elements,frame_beats", BROADCAST_CASES)
def test_broadcast_merge_matches_exact_accumulator(
    op, types, lanes, held, n_elements, frame_beats, valid_prob, ready_prob
):
    frames = 4
    xs, streams = broadcast_case(types, lanes, held, n_elements, frame_beats, frames, 5)
    dut = BroadcastMerge(op, n_elements, types, lanes, held, frame_beats)
    run, in_cycles = simulate_join(
        dut,
        streams,
        frames * frame_beats,
        seed=frame_beats,
        valid_prob=rates_for(valid_prob, len(types)),
        ready_prob=ready_prob,
    )
    want = merge_acc(op, xs, types)  # numpy broadcasting of (frames, beats, lanes)
    assert run.outputs == beats(want.reshape(-1, n_elements))
    for k, h in enumerate(held):
        assert len(in_cycles[k]) == frames * (1 if h else frame_beats)


@pytest.mark.parametrize("frame_beats", [1, 2, 6])
def test_broadcast_merge_loses_no_cycle_between_frames(frame_beats):
    """At full rate the held operand is taken on its frame's first beat and used at once
    (no bubble): every streamed beat moves on consecutive cycles, out ``latency`` later."""
    types, frames = TYPE_SETS[0], 5
    xs, streams = broadcast_case(types, [2, 2], [False, True], 2, frame_beats, frames, 6)
    dut = BroadcastMerge(MergeOp.ADD, 2, types, [2, 2], [False, True], frame_beats)
    run, in_cycles = simulate_join(dut, streams, frames * frame_beats)
    assert in_cycles[0] == list(range(frames * frame_beats))
    assert in_cycles[1] == [frame * frame_beats for frame in range(frames)]
    assert run.out_cycles == [c + dut.latency for c in in_cycles[0]]
    assert run.outputs == beats(merge_acc(MergeOp.ADD, xs, types).reshape(-1, 2))


def test_broadcast_merge_holds_an_early_operand_until_the_frame_ends():
    """The held input's next beat waits (ready low) until the last beat of the frame that
    uses the one before: an operand offered early is not taken early."""
    types, frames, frame_beats = TYPE_SETS[0], 3, 4
    xs, streams = broadcast_case(types, [1, 1], [False, True], 1, frame_beats, frames, 7)
    dut = BroadcastMerge(MergeOp.MULTIPLY, 1, types, [1, 1], [False, True], frame_beats)
    run, in_cycles = simulate_join(dut, streams, frames * frame_beats, valid_prob=[0.3, 1.0])
    streamed, held = in_cycles
    for frame in range(1, frames):
        assert held[frame] > streamed[frame * frame_beats - 1]
        assert held[frame] <= streamed[frame * frame_beats]
    assert run.outputs == beats(merge_acc(MergeOp.MULTIPLY, xs, types).reshape(-1, 1))


def test_broadcast_merge_refuses_what_does_not_broadcast():
    types = TYPE_SETS[0]
    with pytest.raises(RtlgenError, match="does not broadcast to 4"):
        BroadcastMerge(MergeOp.ADD, 4, types, [4, 2], [False, True], 3)
    with pytest.raises(RtlgenError, match="every input is held"):
        BroadcastMerge(MergeOp.ADD, 4, types, [4, 4], [True, True], 3)


@pytest.mark.parametrize("valid_prob,ready_prob", RATES, ids=["full", "random"])
def test_merge_with_a_held_operand_divides_and_requantizes(valid_prob, ready_prob):
    """`Merge` builds a `BroadcastMerge` for broadcasting inputs and keeps its output step:
    an average of 3 (a division) of an image, one channel and a held vector."""
    types, out_type, frames, frame_beats = TYPE_SETS[1], FixedType(6, 2), 3, 5
    lanes, held = [3, 1, 3], [False, False, True]
    xs, streams = broadcast_case(types, lanes, held, 3, frame_beats, frames, 8)
    dut = Merge(
        MergeOp.AVERAGE, 3, types, out_type, lanes=lanes, held=held, frame_beats=frame_beats
    )
    assert isinstance(dut.merge, BroadcastMerge)
    run, _ = simulate_join(
        dut,
        streams,
        frames * frame_beats,
        seed=2,
        valid_prob=rates_for(valid_prob, 3),
        ready_prob=ready_prob,
    )
    assert run.outputs == beats(merge(MergeOp.AVERAGE, xs, types, out_type).reshape(-1, 3))


# ---------------------------------------------------------------------------------------
# Merge (accumulator + output step) and DivideRequantize
# ---------------------------------------------------------------------------------------
MERGE_CASES = [
    # op, input types, out type, rounding, overflow
    (MergeOp.ADD, TYPE_SETS[1], FixedType(5, 1), Rounding.CONVERGENT, Overflow.SATURATE),
    (MergeOp.SUBTRACT, TYPE_SETS[0], FixedType(4, 0, False), Rounding.HALF_UP, Overflow.WRAP),
    (MergeOp.MULTIPLY, TYPE_SETS[1], FixedType(6, 2), Rounding.TRUNCATE, Overflow.SATURATE),
    (MergeOp.AVERAGE, TYPE_SETS[0], FixedType(5, 1), Rounding.CONVERGENT, Overflow.SATURATE),
    (MergeOp.AVERAGE, TYPE_SETS[1], FixedType(5, 2), Rounding.CONVERGENT, Overflow.SATURATE),
    (MergeOp.AVERAGE, TYPE_SETS[1], FixedType(8, 7), Rounding.HALF_UP, Overflow.WRAP),
    (MergeOp.AVERAGE, TYPE_SETS[1], FixedType(4, -1, False), Rounding.TRUNCATE, Overflow.SATURATE),
    (MergeOp.MAXIMUM, TYPE_SETS[1], FixedType(3, 0), Rounding.CONVERGENT, Overflow.WRAP),
    (MergeOp.MINIMUM, TYPE_SETS[0], FixedType(9, 4), Rounding.HALF_UP, Overflow.SATURATE),
]


@pytest.mark.parametrize("valid_prob,ready_prob", RATES, ids=["full", "random"])
@pytest.mark.parametrize("op,types,out_type,rounding,overflow", MERGE_CASES)
def test_merge_matches_reference(op, types, out_type, rounding, overflow, valid_prob, ready_prob):
    n_elements, n_beats = 5, 20
    rng = np.random.default_rng(n_elements + out_type.width)
    xs = [random_mantissas(t, (n_beats, n_elements), rng) for t in types]
    dut = Merge(op, n_elements, types, out_type, rounding, overflow)
    run, in_cycles = simulate_join(
        dut,
        [beats(x) for x in xs],
        n_beats,
        seed=out_type.width,
        valid_prob=rates_for(valid_prob, len(types)),
        ready_prob=ready_prob,
    )
    assert run.outputs == beats(merge(op, xs, types, out_type, rounding, overflow))
    if valid_prob == 1.0 and ready_prob == 1.0:
        assert run.out_cycles == [c + dut.latency for c in in_cycles[0]]


@pytest.mark.parametrize("overflow", list(Overflow))
@pytest.mark.parametrize("rounding", list(Rounding))
@pytest.mark.parametrize(
    "acc_type,divisor,out_type",
    [
        (FixedType(7, 2), 3, FixedType(5, 1)),  # fewer frac bits: divide by 3 << 1
        (FixedType(6, 0, False), 5, FixedType(6, 3)),  # more frac bits: dividend << 3
        (FixedType(8, 4), 6, FixedType(3, 0, False)),  # even divisor: ties
        (FixedType(5, 1), 7, FixedType(5, 1)),
    ],
)
def test_divide_requantize_is_exact_on_every_accumulator_value(
    acc_type, divisor, out_type, rounding, overflow
):
    n_elements = 8
    values = np.arange(acc_type.min_int, acc_type.max_int + 1)
    values = np.concatenate([values, np.zeros(-len(values) % n_elements, dtype=np.int64)])
    acc = values.reshape(-1, n_elements)
    dut = DivideRequantize(n_elements, acc_type, divisor, out_type, rounding, overflow)
    expected = divide_requantize(acc, acc_type.frac, divisor, out_type, rounding, overflow)
    run, _ = simulate_join(_Single(dut), [beats(acc)], len(acc), seed=divisor, ready_prob=0.7)
    assert run.outputs == beats(expected)


class _Single(Elaboratable):
    """A one-input block seen through the ``inputs`` list `simulate_join` uses."""

    def __init__(self, dut):
        self.dut, self.inputs, self.o = dut, [dut.i], dut.o

    def elaborate(self, platform):
        return self.dut


# ---------------------------------------------------------------------------------------
# Concatenate
# ---------------------------------------------------------------------------------------
CONCAT_FORMATS = [
    [(3, FixedType(6, 2)), (1, FixedType(5, 0, False)), (2, FixedType(4, -1))],
    [(1, FixedType(1, 0)), (5, FixedType(3, 3, False))],
]


@pytest.mark.parametrize("latency", [0, 1])
@pytest.mark.parametrize("valid_prob,ready_prob", RATES, ids=["full", "random"])
@pytest.mark.parametrize("formats", CONCAT_FORMATS, ids=["three", "two"])
@pytest.mark.parametrize("wider", [False, True])
def test_concatenate_matches_reference(formats, valid_prob, ready_prob, latency, wider):
    types = [t for _, t in formats]
    out_type = concat_type(types)
    if wider:
        out_type = FixedType(out_type.width + 4, out_type.frac + 2, True)
    n_beats = 20
    rng = np.random.default_rng(len(formats) + latency)
    xs = [random_mantissas(t, (n_beats, n), rng) for n, t in formats]
    dut = Concatenate(formats, out_type if wider else None, latency=latency)
    assert dut.out_type == out_type
    run, in_cycles = simulate_join(
        dut,
        [beats(x) for x in xs],
        n_beats,
        seed=latency * 7 + len(formats),
        valid_prob=rates_for(valid_prob, len(formats)),
        ready_prob=ready_prob,
    )
    assert run.outputs == beats(concatenate(xs, types, out_type, axis=-1))
    if valid_prob == 1.0 and ready_prob == 1.0:
        assert run.out_cycles == [c + latency for c in in_cycles[0]]


def test_concatenate_rejects_an_output_type_that_loses_bits():
    formats = CONCAT_FORMATS[0]
    with pytest.raises(RtlgenError, match="does not hold input 1"):
        Concatenate(formats, FixedType(7, 2))  # input 1 is unsigned 5 bits: needs 8 with frac 2
    with pytest.raises(RtlgenError, match="does not hold input 0"):
        Concatenate(formats, FixedType(12, 1))  # fewer fractional bits than input 0


# ---------------------------------------------------------------------------------------
# Fork
# ---------------------------------------------------------------------------------------
def simulate_fork(
    dut: Fork,
    inputs: Sequence[int],
    seed: int,
    valid_prob: float,
    ready_probs: Sequence[float],
) -> tuple[list[int], list[list[int]], list[list[int]]]:
    """Drive ``dut.i``, collect every output with its own random ready.

    Every cycle each output's ``valid`` is sampled with that output's ``ready`` low and
    high: it must not change (no combinational path from ready to valid). Returns the input
    handshake cycles, the outputs and their handshake cycles.
    """
    rng = random.Random(seed)
    in_rng = random.Random(rng.getrandbits(64))
    out_rngs = [random.Random(rng.getrandbits(64)) for _ in ready_probs]
    in_cycles: list[int] = []
    outputs: list[list[Any]] = [[] for _ in ready_probs]
    out_cycles: list[list[int]] = [[] for _ in ready_probs]
    n = len(inputs)

    async def source(ctx):
        await drive(ctx, dut.i, inputs, in_rng, valid_prob, in_cycles, TIMEOUT)

    async def sink(ctx):
        pending: list[Any] = [None] * len(ready_probs)
        cycle = 0
        while any(len(out) < n for out in outputs):
            readies = []
            for k, port in enumerate(dut.outputs):
                ctx.set(port.ready, 0)
                valid_low = ctx.get(port.valid)
                ctx.set(port.ready, 1)
                assert ctx.get(port.valid) == valid_low, f"o{k}.valid depends on o{k}.ready"
                ready = len(outputs[k]) < n and out_rngs[k].random() < ready_probs[k]
                ctx.set(port.ready, ready)
                readies.append(ready)
            sampled = await ctx.tick().sample(
                *[s for port in dut.outputs for s in (port.valid, port.payload)]
            )
            for k in range(len(ready_probs)):
                valid, payload = sampled[2 + 2 * k], to_python(sampled[3 + 2 * k])
                if pending[k] is not None:
                    assert valid and payload == pending[k], f"o{k}: beat withdrawn or changed"
                if valid and readies[k]:
                    outputs[k].append(payload)
                    out_cycles[k].append(cycle)
                    pending[k] = None
                elif valid:
                    pending[k] = payload
            cycle += 1
            assert cycle < TIMEOUT, "timeout"
        for port in dut.outputs:
            ctx.set(port.ready, 1)
        for _ in range(8):
            sampled = await ctx.tick().sample(*[port.valid for port in dut.outputs])
            assert not any(sampled[2:]), "an output got more beats than were sent"

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(source)
    sim.add_testbench(sink)
    sim.run()
    return in_cycles, outputs, out_cycles


@pytest.mark.parametrize(
    "valid_prob,ready_probs",
    [
        (1.0, [1.0, 1.0]),
        (1.0, [0.3, 0.9]),
        (0.6, [0.5, 0.2, 0.8]),
        (0.9, [0.7]),
        (0.4, [1.0, 0.1, 0.5, 0.9]),
    ],
)
def test_fork_delivers_every_beat_once_in_order_to_every_output(valid_prob, ready_probs):
    rng = random.Random(len(ready_probs))
    inputs = [rng.getrandbits(7) for _ in range(60)]
    dut = Fork(unsigned(7), len(ready_probs))
    _, outputs, _ = simulate_fork(dut, inputs, len(ready_probs), valid_prob, ready_probs)
    assert outputs == [inputs] * len(ready_probs)


def test_fork_has_ii_one_when_every_output_is_ready():
    dut = Fork(unsigned(5), 3)
    inputs = list(range(20))
    in_cycles, outputs, out_cycles = simulate_fork(dut, inputs, 0, 1.0, [1.0] * 3)
    assert in_cycles == list(range(20))
    assert out_cycles == [in_cycles] * 3
    assert outputs == [inputs] * 3


def test_fork_input_is_done_when_the_last_output_takes_the_beat():
    """An output that took the beat earlier need not be ready again for the input to move on."""
    dut = Fork(unsigned(4), 2)

    async def bench(ctx):
        ctx.set(dut.i.payload, 9)
        ctx.set(dut.i.valid, 1)
        ctx.set(dut.o0.ready, 1)
        assert (ctx.get(dut.o0.valid), ctx.get(dut.o1.valid), ctx.get(dut.i.ready)) == (1, 1, 0)
        await ctx.tick()  # o0 takes the beat
        ctx.set(dut.o0.ready, 0)
        ctx.set(dut.o1.ready, 1)
        assert (ctx.get(dut.o0.valid), ctx.get(dut.o1.valid), ctx.get(dut.i.ready)) == (0, 1, 1)
        await ctx.tick()  # o1 takes it: the beat is done, both see the next one
        ctx.set(dut.i.payload, 3)
        assert (ctx.get(dut.o0.valid), ctx.get(dut.o1.valid)) == (1, 1)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def test_fork_carries_array_payloads():
    t = FixedType(5, 2)
    x = random_mantissas(t, (30, 3), np.random.default_rng(5))
    dut = Fork(vector_layout(t, 3), 2)
    _, outputs, _ = simulate_fork(dut, beats(x), 5, 0.8, [0.4, 0.7])
    assert outputs == [beats(x)] * 2


class _Residual(Elaboratable):
    """x -> Fork -> (direct | StreamFifo) -> Add: a residual connection."""

    def __init__(self, t: FixedType, n_elements: int):
        self.fork = Fork(ElementwiseMerge(MergeOp.ADD, n_elements, [t, t]).i0.payload.shape(), 2)
        self.branch = StreamFifo(self.fork.o1.payload.shape(), 4)
        self.add = ElementwiseMerge(MergeOp.ADD, n_elements, [t, t])
        self.i, self.o, self.inputs = self.fork.i, self.add.o, [self.fork.i]

    def elaborate(self, platform):
        m = Module()
        m.submodules.fork, m.submodules.branch, m.submodules.add = (
            self.fork,
            self.branch,
            self.add,
        )
        wiring.connect(m, self.fork.o0, self.add.i0)
        wiring.connect(m, self.fork.o1, self.branch.i)
        wiring.connect(m, self.branch.o, self.add.i1)
        return m


def test_fork_and_merge_make_a_residual_add():
    t = FixedType(5, 1)
    rng = np.random.default_rng(9)
    x = random_mantissas(t, (25, 3), rng)
    run, _ = simulate_join(_Residual(t, 3), [beats(x)], 25, seed=9, valid_prob=0.7, ready_prob=0.6)
    assert run.outputs == beats(merge_acc(MergeOp.ADD, [x, x], [t, t]))
