"""Stream source/sink helpers for testing Components in Amaranth's simulator.

A DUT has ports ``i`` (sink) and ``o`` (source), both `amaranth.lib.stream` interfaces.
`drive` plays beats into a stream with random gaps in ``valid``; `collect` takes beats with
random ``ready`` and checks the stream rules (once valid, a beat stays valid with the same
payload until taken). Cycle numbers count clock edges from the start of the simulation, so
numbers from `drive` and `collect` of one run compare directly.

    outputs = run_stream_test(dut, inputs, n_out, seed=1, valid_prob=0.5, ready_prob=0.7)

Beats are given as anything ``ctx.set`` accepts for the payload (an int, a list of ints for
an `ArrayLayout`, a dict for a `StructLayout`); outputs come back as plain Python values of
the same kind (`to_python`).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from amaranth.lib import data
from amaranth.sim import Simulator


def to_python(value: Any) -> Any:
    """A sampled payload as ints / lists / dicts (recursively)."""
    if isinstance(value, data.Const):
        layout = value.shape()
        if isinstance(layout, data.ArrayLayout):
            return [to_python(value[k]) for k in range(layout.length)]
        return {name: to_python(value[name]) for name, _ in layout}
    return int(value)


async def drive(
    ctx,
    stream,
    beats: Iterable[Any],
    rng: random.Random,
    valid_prob: float = 1.0,
    cycles: list[int] | None = None,
    timeout: int = 200_000,
) -> None:
    """Send ``beats``; before each beat, idle cycles with probability ``1 - valid_prob``.

    Appends the cycle number of each handshake to ``cycles`` if given. Fails if the beats
    are not all taken within ``timeout`` cycles.
    """
    cycle = 0
    for beat in beats:
        while valid_prob < 1.0 and rng.random() >= valid_prob:
            ctx.set(stream.valid, 0)
            await ctx.tick()
            cycle += 1
        ctx.set(stream.payload, beat)
        ctx.set(stream.valid, 1)
        while True:
            _, _, ready = await ctx.tick().sample(stream.ready)
            cycle += 1
            if ready:
                break
            assert cycle <= timeout, f"timeout: input not taken after {cycle} cycles"
        if cycles is not None:
            cycles.append(cycle - 1)
    ctx.set(stream.valid, 0)


async def collect(
    ctx,
    stream,
    n: int,
    rng: random.Random,
    ready_prob: float = 1.0,
    cycles: list[int] | None = None,
    timeout: int = 200_000,
) -> list[Any]:
    """Take ``n`` beats, ``ready`` high on each cycle with probability ``ready_prob``.

    Fails if a valid beat is withdrawn or changes before it is taken, or after ``timeout``
    cycles without finishing.
    """
    out: list[Any] = []
    cycle = 0
    pending = None  # a beat offered and not taken: it must be offered again unchanged
    while len(out) < n:
        ready = ready_prob >= 1.0 or rng.random() < ready_prob
        ctx.set(stream.ready, ready)
        _, _, valid, payload = await ctx.tick().sample(stream.valid, stream.payload)
        value = to_python(payload) if valid else None
        if pending is not None:
            assert valid, f"cycle {cycle}: valid dropped before the beat was taken"
            assert value == pending, (
                f"cycle {cycle}: payload changed from {pending} to {value} while not ready"
            )
        if valid and ready:
            out.append(value)
            pending = None
            if cycles is not None:
                cycles.append(cycle)
        elif valid:
            pending = value
        cycle += 1
        assert cycle <= timeout, f"timeout: {len(out)} of {n} outputs after {cycle} cycles"
    ctx.set(stream.ready, 0)
    return out


@dataclass
class StreamRun:
    """What `simulate_stream` saw: outputs and the cycle of every handshake."""

    outputs: list[Any] = field(default_factory=list)
    in_cycles: list[int] = field(default_factory=list)
    out_cycles: list[int] = field(default_factory=list)


def simulate_stream(
    dut,
    inputs: Sequence[Any],
    n_out: int,
    seed: int = 0,
    valid_prob: float = 1.0,
    ready_prob: float = 1.0,
    *,
    idle_cycles: int = 8,
    timeout: int = 200_000,
    vcd: str | None = None,
) -> StreamRun:
    """Run ``dut`` on ``inputs`` until ``n_out`` outputs arrived, then ``idle_cycles`` more
    cycles with ``o.ready`` high during which no further output may appear."""
    run = StreamRun()
    rng = random.Random(seed)
    rng_in, rng_out = random.Random(rng.getrandbits(64)), random.Random(rng.getrandbits(64))

    async def source(ctx):
        await drive(ctx, dut.i, inputs, rng_in, valid_prob, run.in_cycles, timeout)

    async def sink(ctx):
        run.outputs = await collect(ctx, dut.o, n_out, rng_out, ready_prob, run.out_cycles, timeout)
        ctx.set(dut.o.ready, 1)
        for _ in range(idle_cycles):
            _, _, valid = await ctx.tick().sample(dut.o.valid)
            assert not valid, f"more than the expected {n_out} outputs"

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(source)
    sim.add_testbench(sink)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    return run


def run_stream_test(
    dut,
    inputs: Sequence[Any],
    n_out: int,
    seed: int = 0,
    valid_prob: float = 1.0,
    ready_prob: float = 1.0,
    **kwargs,
) -> list[Any]:
    """Outputs of ``dut`` for ``inputs`` under random valid/ready (see `simulate_stream`)."""
    return simulate_stream(dut, inputs, n_out, seed, valid_prob, ready_prob, **kwargs).outputs


def simulate_rows(
    dut, rows: Iterable[Iterable[Any]], seed: int = 0, valid_prob: float = 1.0,
    ready_prob: float = 1.0, **kwargs,
) -> StreamRun:
    """`simulate_stream` of a vector block: one input beat per row of integers (a numpy
    array's rows become Python ints), one output beat expected per row."""
    beats = [[int(v) for v in row] for row in rows]
    return simulate_stream(dut, beats, len(beats), seed, valid_prob, ready_prob, **kwargs)
