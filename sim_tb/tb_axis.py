"""AXI4-Stream source and sink for cocotb 2.x, with reproducible pause generators.

Stand-alone: imports only cocotb and the standard library (copied into OUTDIR/tb/ by
`standalone.write_testbench`). tdata is an integer of any width (no byte lanes), so element
widths like 10 or 18 bits work; that is why this is not cocotbext-axi.

Timing convention (the same for source and sink): every cycle the driver writes its outputs
right after the rising edge and samples the handshake in the read-only phase before the next
edge, when all values are settled. A beat whose tvalid and tready are both high there is
transferred at that next edge; `CycleCounter.cycle + 1` is that edge's number, recorded as the
beat's handshake cycle. Edge numbers count from the counter's start, so the differences of
handshake cycles between source and sink are exact cycle counts.
"""

from __future__ import annotations

import itertools
import random
from collections import deque
from collections.abc import Iterable, Iterator
from typing import NamedTuple

import cocotb
from cocotb.triggers import Event, ReadOnly, RisingEdge


def random_pauses(probability: float, seed: int | str = 0) -> Iterator[bool]:
    """Endless pause flags, each True with `probability`, the same sequence for the same seed.

    The source consumes one flag per cycle in which it could start a new beat (True = leave
    tvalid low); the sink one flag per cycle (True = drive tready low).
    """
    if not 0.0 <= probability < 1.0:
        raise ValueError(f"pause probability {probability} must be in [0, 1)")
    if probability == 0.0:
        return itertools.repeat(False)
    rng = random.Random(seed)
    return (rng.random() < probability for _ in itertools.count())


def _read_bit(handle) -> bool:
    """Value of a 1-bit port (scalar or [0:0] vector); X/Z raise ValueError."""
    value = handle.value
    return bool(int(value))


def _read_int(handle, name: str, cycle: int) -> int:
    try:
        return handle.value.to_unsigned()
    except AttributeError:  # a 1-bit scalar port reads as Logic
        return int(handle.value)
    except ValueError:
        raise AssertionError(
            f"{name} carries X/Z bits ({handle.value}) at handshake cycle {cycle}"
        ) from None


class CycleCounter:
    """Counts rising edges of `clock` from the moment it is created; `cycle` is the number
    of the latest edge (read it in the read-only phase to see the current cycle's edge)."""

    def __init__(self, clock) -> None:
        self.clock = clock
        self.cycle = 0
        self._task = cocotb.start_soon(self._run())

    async def _run(self) -> None:
        edge = RisingEdge(self.clock)
        while True:
            await edge
            self.cycle += 1

    def stop(self) -> None:
        self._task.cancel()


class AxisSource:
    """Drives `<prefix>_tdata/_tvalid/_tlast` and watches `<prefix>_tready`.

    Contract: beats are sent in `send` order, each exactly once; once tvalid is raised it
    stays high with the same tdata/tlast until the handshake (AXI4-Stream rule); pauses only
    insert idle cycles between beats. `handshake_cycles[i]` is the cycle beat i was taken;
    `stalled_cycles` counts cycles with tvalid high and tready low.
    """

    def __init__(
        self,
        dut,
        clock,
        counter: CycleCounter,
        *,
        prefix: str = "s_axis",
        pauses: Iterator[bool] | None = None,
    ) -> None:
        self.clock, self.counter = clock, counter
        self.tdata = getattr(dut, f"{prefix}_tdata")
        self.tvalid = getattr(dut, f"{prefix}_tvalid")
        self.tready = getattr(dut, f"{prefix}_tready")
        self.tlast = getattr(dut, f"{prefix}_tlast", None)
        self.pauses = pauses if pauses is not None else itertools.repeat(False)
        self.handshake_cycles: list[int] = []
        self.stalled_cycles = 0
        self._queue: deque[tuple[int, bool]] = deque()
        self._idle = Event()
        self._idle.set()
        self._wake = Event()
        self.tvalid.value = 0
        self._task = cocotb.start_soon(self._run())

    def send(self, beats: Iterable[tuple[int, bool]]) -> None:
        """Queue (tdata, tlast) beats."""
        self._queue.extend(beats)
        if self._queue:
            self._idle.clear()
            self._wake.set()

    async def wait_idle(self) -> None:
        """Return once every queued beat has been taken."""
        await self._idle.wait()

    def stop(self) -> None:
        self._task.cancel()

    async def _run(self) -> None:
        edge, settled = RisingEdge(self.clock), ReadOnly()
        presenting = False
        tvalid_high = False
        while True:
            await edge
            if not presenting and self._queue and not next(self.pauses):
                data, last = self._queue.popleft()
                self.tdata.value = data
                if self.tlast is not None:
                    self.tlast.value = int(last)
                presenting = True
            if presenting != tvalid_high:
                self.tvalid.value = int(presenting)
                tvalid_high = presenting
            if not presenting and not self._queue:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            await settled
            if presenting:
                if _read_bit(self.tready):
                    self.handshake_cycles.append(self.counter.cycle + 1)
                    presenting = False
                else:
                    self.stalled_cycles += 1


class Beat(NamedTuple):
    """One transferred beat: tdata, tlast, tuser (0 without a tuser port), handshake cycle."""

    data: int
    last: bool
    user: int
    cycle: int


class AxisSink:
    """Accepts beats on `<prefix>_tdata/_tvalid/_tlast/_tuser`, drives `<prefix>_tready`.

    Contract: records every handshaked beat once, in order, in `beats`; tready is low in a
    cycle exactly when the pause generator says so (tready does not depend on tvalid).
    `expect(n)` returns an Event set once n beats have arrived.
    """

    def __init__(
        self,
        dut,
        clock,
        counter: CycleCounter,
        *,
        prefix: str = "m_axis",
        pauses: Iterator[bool] | None = None,
        with_tuser: bool = True,
    ) -> None:
        self.clock, self.counter, self.prefix = clock, counter, prefix
        self.tdata = getattr(dut, f"{prefix}_tdata")
        self.tvalid = getattr(dut, f"{prefix}_tvalid")
        self.tready = getattr(dut, f"{prefix}_tready")
        self.tlast = getattr(dut, f"{prefix}_tlast", None)
        self.tuser = getattr(dut, f"{prefix}_tuser", None) if with_tuser else None
        self.pauses = pauses if pauses is not None else itertools.repeat(False)
        self.beats: list[Beat] = []
        self._target: int | None = None
        self._reached = Event()
        self.tready.value = 0
        self._task = cocotb.start_soon(self._run())

    def expect(self, count: int) -> Event:
        self._target = count
        if len(self.beats) >= count:
            self._reached.set()
        return self._reached

    def stop(self) -> None:
        self._task.cancel()

    async def _run(self) -> None:
        edge, settled = RisingEdge(self.clock), ReadOnly()
        ready = False
        while True:
            await edge
            want = not next(self.pauses)
            if want != ready:
                self.tready.value = int(want)
                ready = want
            await settled
            if ready and _read_bit(self.tvalid):
                cycle = self.counter.cycle + 1
                self.beats.append(
                    Beat(
                        data=_read_int(self.tdata, f"{self.prefix}_tdata", cycle),
                        last=self.tlast is not None and _read_bit(self.tlast),
                        user=0
                        if self.tuser is None
                        else _read_int(self.tuser, f"{self.prefix}_tuser", cycle),
                        cycle=cycle,
                    )
                )
                if self._target is not None and len(self.beats) >= self._target:
                    self._reached.set()
