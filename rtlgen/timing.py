"""Timing model of the dataflow top: the cycle of every beat through every stage.

A sum of stage latencies is not the network's latency: a pooling window can complete before
the last (unused) pixels of its input arrive, a time-multiplexed layer accepts a vector only
every ``steps`` cycles, and a stage slower than the one before it (an upsampling before a
zero pad, a 'same' window generator walking padding) stalls its producer and, through the
finite buffering of every stage, the network input. `model_top` and `model_graph` run the
valid/ready handshakes of every component's contract (its docstring) cycle by cycle for a
few samples, input offered on every cycle, outputs always ready, and read off the latency
and the initiation interval. `model_stage` and `follow` state the forward contracts of
single stages (each at its own pace, output always ready); a network with a component that
has only such a forward ``model_timing`` is followed forward (unbounded buffers between
stages), as before the handshake model.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from rtlgen.layers.flatten import Deserialize
from rtlgen.layers.pool import _Pool
from rtlgen.layers.serial_mac import SerialMatVec
from rtlgen.layers.window import WindowGenerator, WindowGeometry


@dataclass(frozen=True)
class Timing:
    latency: int  # first input beat's handshake -> last output beat's handshake (worst sample)
    ii: int  # cycles between first input beats of consecutive samples (steady state)
    first_in: tuple[
        int, ...
    ]  # each sample's start: its first input beat's handshake (the last input's)
    last_out: tuple[int, ...]  # cycle of each sample's last output beat


def _pipeline(times: list[int], latency: int) -> list[int]:
    out, prev = [], None
    for t in times:
        t = t if prev is None else max(t, prev + 1)
        out.append(t + latency)
        prev = t
    return out


def _window(times: list[int], g: WindowGeometry, samples: int) -> tuple[list[int], list[int]]:
    """(input handshake cycles, window valid cycles) of a WindowGenerator walk."""
    top, _, left, _ = g.padding
    beats = g.height * g.width
    accepted, windows = [], []
    clock = -1
    for s in range(samples):
        ends = {}
        for oy in range(g.out_height):
            for ox in range(g.out_width):
                ends.setdefault(
                    (oy * g.stride[0] + g.kernel[0] - 1, ox * g.stride[1] + g.kernel[1] - 1), []
                ).append((oy, ox))
        for row in range(g.first_row, g.last_row + 1):
            for col in range(g.first_col, g.last_col + 1):
                real = top <= row < top + g.height and left <= col < left + g.width
                clock += 1
                if real:
                    index = s * beats + (row - top) * g.width + (col - left)
                    clock = max(clock, times[index])
                    accepted.append(clock)
                if (row, col) in ends:
                    windows.append(clock + 1)
        # windows come out in row-major order of (oy, ox), which is the walk order
    return accepted, windows


def model_stage(stage, times: list[int], samples: int) -> tuple[list[int], list[int]]:
    """(input handshake cycles, output valid cycles) of one component.

    A component that is not a plain pipeline may state its own contract as a method
    ``model_timing(times, samples) -> (accepted, out)``, which wins."""
    if hasattr(stage, "model_timing"):
        return stage.model_timing(times, samples)
    if isinstance(stage, WindowGenerator):
        return _window(times, stage.geometry, samples)
    if isinstance(stage, _Pool):
        accepted, windows = _window(times, stage.window.geometry, samples)
        return accepted, _pipeline(windows, stage.reduce.latency)
    if isinstance(stage, Deserialize):
        out = [times[k] + stage.latency for k in range(stage.beats - 1, len(times), stage.beats)]
        return times, out
    # (a Serialize states its own `model_timing`)
    if isinstance(stage, SerialMatVec):
        # a beat every `steps` cycles, taken at the earliest on the previous beat's last
        # step; its first step is its handshake cycle when idle, else the next; a vector's
        # result `depth + 2` cycles after its last step
        accepted, out, last_step = [], [], None
        for index, t in enumerate(times):
            if stage.block_rom:  # no beat in the cycle after reset (its ROM's first read)
                t = max(t, 1)
            first = t if stage.early_start else t + 1
            if last_step is not None:
                t = max(t, last_step)
                first = max(t + (not stage.early_start), last_step + 1)
            accepted.append(t)
            last_step = first + stage.beat_words - 1
            if index % stage.beats == stage.beats - 1:
                # each result beat after its `steps` steps (one: after the vector's last)
                out.extend(
                    first + (j + 1) * stage.steps - 1 + stage.depth + 2
                    for j in range(stage.out_beats)
                )
        return accepted, out
    latency = getattr(stage, "latency", 0)
    return times, _pipeline(times, latency)


def follow(stages: list, times: list[int], samples: int) -> tuple[list[int], list[int]]:
    """(cycles the first stage accepts each beat, cycles each output beat is valid) of a
    chain of stages (``None``: a skid buffer, latency 1)."""
    first_accepted: list[int] | None = None
    for stage in stages:
        if stage is None:
            accepted, times = times, _pipeline(times, 1)
        else:
            accepted, times = model_stage(stage, times, samples)
        if first_accepted is None:
            first_accepted = accepted
    return (times if first_accepted is None else first_accepted), times


#: cycles from a beat's handshake into a `StreamFifo` to its valid at the FIFO's output
FIFO_LATENCY = 2


@dataclass(frozen=True)
class GraphTiming:
    """Beat times of every node of a planned graph (no output backpressure).

    ``out[name]``: the cycle each output beat of the node is valid; ``input_accepted``: the
    cycle each input beat is taken (the first input's); ``sample_starts``: per sample, the
    cycle the last of the inputs' first beats is taken (`sample_starts`); ``fifo_depths[(consumer, k)]``: the beats that FIFO on
    input ``k`` of ``consumer`` must hold so that no fork feeding it ever waits for it.
    """

    out: dict[str, list[int]]
    input_accepted: list[int]
    fifo_depths: dict[tuple[str, int], int]
    edge_arrivals: dict[tuple[str, int], list[int]]
    sample_starts: tuple[int, ...] = ()


def _occupancy(enqueued: list[int], dequeued: list[int]) -> int:
    """Beats a FIFO must hold: a beat written at cycle ``enqueued[b]`` needs a free slot
    while every earlier beat not yet read (read at ``dequeued``) is still inside."""
    need = 0
    for b, t in enumerate(enqueued):
        inside = sum(1 for e, d in zip(enqueued[:b], dequeued[:b], strict=True) if e < t <= d)
        need = max(need, inside + 1)
    return need


# ---------------------------------------------------------------------------------------
# The handshake model: every component's valid/ready behaviour, cycle by cycle
# ---------------------------------------------------------------------------------------
#
# Following beats forward (`follow`) assumes unlimited buffering between stages. A stage
# slower than its producer (an upsampler before a zero pad, a window generator walking
# padding without input) stalls the producer through ``ready`` and, step by step, the
# network input. The model below runs the valid/ready handshakes of every component's
# contract (its docstring) cycle by cycle, with the payloads left out: each component is
# the few flags and counters that decide its ``valid`` and ``ready``. Within a cycle,
# ``valid`` settles first, from the input towards the output (no ``valid`` depends on a
# ``ready``), then ``ready`` from the output back towards the input, then every register
# loads. That is exact for any buffering, bubble or stall pattern the hardware has.


class _Wire:
    """One valid/ready stream between two blocks, and the cycles its beats crossed it."""

    __slots__ = ("valid", "ready", "shown", "valid_from", "taken")

    def __init__(self) -> None:
        self.valid = self.ready = self.shown = False
        self.valid_from: list[int] = []  # the first cycle each beat was valid
        self.taken: list[int] = []  # the cycle of each beat's handshake

    def record(self, cycle: int) -> bool:
        if not self.valid:
            return False
        if not self.shown:
            self.valid_from.append(cycle)
            self.shown = True
        if self.ready:
            self.taken.append(cycle)
            self.shown = False
            return True
        return False


class _Block:
    """A component's handshake: ``forward`` sets the output valids (from registers and input
    valids), ``backward`` the input readies (from output readies), ``clock`` loads the
    registers. Single-stream blocks use ``self.i`` and ``self.o``."""

    def __init__(self, inputs: list[_Wire], output: _Wire):
        self.inputs, self.i, self.o = inputs, inputs[0], output

    def forward(self) -> None:
        raise NotImplementedError

    def backward(self) -> None:
        raise NotImplementedError

    def clock(self) -> None:
        raise NotImplementedError


class _Source(_Block):
    """The network input: ``beats`` beats offered back to back from cycle 0."""

    def __init__(self, output: _Wire, beats: int):
        self.o, self.left = output, beats

    def forward(self) -> None:
        self.o.valid = self.left > 0

    def backward(self) -> None:
        pass

    def clock(self) -> None:
        if self.o.valid and self.o.ready:
            self.left -= 1


class _Sink(_Block):
    """An output master, always ready."""

    def __init__(self, wire: _Wire):
        self.i = wire

    def forward(self) -> None:
        pass

    def backward(self) -> None:
        self.i.ready = True

    def clock(self) -> None:
        pass


class _Pipeline(_Block):
    """`stream_util.pipeline_control`: ``latency`` valid bits all loading on ``advance =
    ~o.valid | o.ready``, ``i.ready = advance`` (latency 0: wires). Several inputs: a join
    (`merge._join`), valid when all are, each ``ready`` gated with that joint valid."""

    def __init__(self, inputs: list[_Wire], output: _Wire, latency: int):
        super().__init__(inputs, output)
        # the valid bits as one integer, the newest in bit 0, the output's in bit latency-1
        self.latency, self.valids, self.mask = latency, 0, (1 << latency) - 1
        self.joint = self.advance = False
        self.joined = len(inputs) > 1

    def forward(self) -> None:
        self.joint = all(w.valid for w in self.inputs) if self.joined else self.i.valid
        if self.latency:
            self.o.valid = bool(self.valids >> (self.latency - 1))
        else:
            self.o.valid = self.joint

    def backward(self) -> None:
        o = self.o
        self.advance = o.ready or not o.valid if self.latency else o.ready
        if not self.joined:
            self.i.ready = self.advance
        else:
            for w in self.inputs:
                w.ready = self.advance and self.joint

    def clock(self) -> None:
        if self.advance and self.latency:
            self.valids = ((self.valids << 1) | self.joint) & self.mask


class _Skid(_Block):
    """`stream_util.SkidBuffer`: an output register and one skid register."""

    def __init__(self, inputs: list[_Wire], output: _Wire):
        super().__init__(inputs, output)
        self.out_valid = self.skid_valid = False

    def forward(self) -> None:
        self.o.valid = self.out_valid

    def backward(self) -> None:
        self.i.ready = not self.skid_valid

    def clock(self) -> None:
        if not self.out_valid or self.o.ready:
            if self.skid_valid:
                self.out_valid, self.skid_valid = True, False
            else:
                self.out_valid = self.i.valid
        elif self.i.valid and not self.skid_valid:
            self.skid_valid = True


class _Fifo(_Block):
    """`stream_util.StreamFifo` (Amaranth's ``SyncFIFOBuffered``): ``depth - 1`` entries and
    an output register; a write needs a free entry (a read in the same cycle does not free
    one); depth 1 is a single register. ``depth`` None: unbounded (to size it), recording
    the most entries a write found (``most``)."""

    def __init__(self, inputs: list[_Wire], output: _Wire, depth: int | None):
        super().__init__(inputs, output)
        self.depth, self.level, self.out_valid, self.most = depth, 0, False, 0

    def forward(self) -> None:
        self.o.valid = self.out_valid

    def backward(self) -> None:
        if self.depth is None:
            self.i.ready = True
        elif self.depth == 1:
            self.i.ready = not self.out_valid
        else:
            self.i.ready = self.level != self.depth - 1

    def clock(self) -> None:
        write = self.i.valid and self.i.ready
        if self.depth == 1:
            if self.out_valid and self.o.ready:
                self.out_valid = False
            if write:
                self.out_valid = True
            return
        if write:
            self.most = max(self.most, self.level)
        read_inner = self.level > 0 and (not self.out_valid or self.o.ready)
        self.level += write - read_inner
        if read_inner:
            self.out_valid = True
        elif self.o.ready:
            self.out_valid = False

    @property
    def depth_needed(self) -> int:
        """The least depth at which no write ever waits (given the reads seen)."""
        return self.most + 2


class _Fork(_Block):
    """`merge.Fork`: ``o{k}.valid = i.valid & ~taken[k]``; ``i.ready`` when every output has
    taken the beat or takes it now."""

    def __init__(self, inputs: list[_Wire], outputs: list[_Wire]):
        self.i, self.outputs = inputs[0], outputs
        self.taken = [False] * len(outputs)

    def forward(self) -> None:
        for w, taken in zip(self.outputs, self.taken, strict=True):
            w.valid = self.i.valid and not taken

    def backward(self) -> None:
        self.i.ready = all(t or w.ready for w, t in zip(self.outputs, self.taken, strict=True))

    def clock(self) -> None:
        if self.i.valid and self.i.ready:
            self.taken = [False] * len(self.outputs)
        elif self.i.valid:
            self.taken = [t or w.ready for w, t in zip(self.outputs, self.taken, strict=True)]


class _Walk(_Block):
    """`window.WindowGenerator` (and `spatial.ZeroPad`, its 1x1 case; `spatial.ZeroInsert`):
    one grid position per step; a real position takes a pixel, leading padding waits for the
    sample's first pixel to be offered; a window is valid after the step of its last grid
    position (``real``, ``waits``, ``emits``: per position in walk order)."""

    def __init__(
        self,
        inputs: list[_Wire],
        output: _Wire,
        real: list[bool],
        waits: list[bool],
        emits: list[bool],
    ):
        super().__init__(inputs, output)
        self.real, self.waits, self.emits = real, waits, emits
        self.position, self.out_valid, self.can_advance = 0, False, False

    @classmethod
    def of_window(cls, inputs: list[_Wire], output: _Wire, g: WindowGeometry) -> _Walk:
        top, _, left, _ = g.padding
        ends = {
            (oy * g.stride[0] + g.kernel[0] - 1, ox * g.stride[1] + g.kernel[1] - 1)
            for oy in range(g.out_height)
            for ox in range(g.out_width)
        }
        real, waits, emits = [], [], []
        for row in range(g.first_row, g.last_row + 1):
            for col in range(g.first_col, g.last_col + 1):
                pixel = top <= row < top + g.height and left <= col < left + g.width
                real.append(pixel)
                waits.append(pixel or (row, col) < (top, left))
                emits.append((row, col) in ends)
        return cls(inputs, output, real, waits, emits)

    @classmethod
    def of_zero_insert(cls, inputs: list[_Wire], output: _Wire, stage) -> _Walk:
        top, _, left, _ = stage.padding
        grid = [(row, col) for row in range(stage.out_height) for col in range(stage.out_width)]
        real = [stage.is_pixel(row, col) for row, col in grid]
        waits = [
            pixel or position < (top, left) for pixel, position in zip(real, grid, strict=True)
        ]
        return cls(inputs, output, real, waits, [True] * len(grid))

    def forward(self) -> None:
        self.o.valid = self.out_valid

    def backward(self) -> None:
        self.can_advance = not self.out_valid or self.o.ready
        self.i.ready = self.can_advance and self.real[self.position]

    def clock(self) -> None:
        p = self.position
        if self.can_advance and (self.i.valid or not self.waits[p]):
            self.out_valid = self.emits[p]
            self.position = (p + 1) % len(self.real)
        elif self.o.ready:
            self.out_valid = False


class _Crop(_Block):
    """`spatial.Crop`: a one-stage pipeline whose output is valid on kept pixels only."""

    def __init__(self, inputs: list[_Wire], output: _Wire, stage):
        super().__init__(inputs, output)
        top, _, left, _ = stage.cropping
        self.kept = [
            top <= row < top + stage.out_height and left <= col < left + stage.out_width
            for row in range(stage.height)
            for col in range(stage.width)
        ]
        self.index, self.out_valid, self.advance = 0, False, False

    def forward(self) -> None:
        self.o.valid = self.out_valid

    def backward(self) -> None:
        self.advance = self.i.ready = not self.out_valid or self.o.ready

    def clock(self) -> None:
        if self.advance:
            self.out_valid = self.i.valid and self.kept[self.index]
            if self.i.valid:
                self.index = (self.index + 1) % len(self.kept)


class _UpSample(_Block):
    """`spatial.UpSampleNearest`: (copy, column, repetition) counters; a pixel is taken on
    the first repetition of the first copy of a row, every other beat needs no input."""

    def __init__(self, inputs: list[_Wire], output: _Wire, stage):
        super().__init__(inputs, output)
        self.size_h, self.size_w = stage.size
        self.width = stage.width
        self.copy = self.col = self.rep = 0
        self.out_valid = self.advance = self.takes = False

    def forward(self) -> None:
        self.o.valid = self.out_valid

    def backward(self) -> None:
        self.advance = not self.out_valid or self.o.ready
        self.takes = self.copy == 0 and self.rep == 0
        self.i.ready = self.advance and self.takes

    def clock(self) -> None:
        if self.advance and (self.i.valid or not self.takes):
            self.out_valid = True
            self.rep += 1
            if self.rep == self.size_w:
                self.rep = 0
                self.col += 1
                if self.col == self.width:
                    self.col = 0
                    self.copy = (self.copy + 1) % self.size_h
        elif self.o.ready:
            self.out_valid = False


class _RunningReduce(_Block):
    """`global_pool.RunningReduce`: every beat but a sample's last is taken at once; the last
    enters a one-stage result pipeline."""

    def __init__(self, inputs: list[_Wire], output: _Wire, positions: int):
        super().__init__(inputs, output)
        self.positions, self.position, self.out_valid, self.advance = positions, 0, False, False

    def forward(self) -> None:
        self.o.valid = self.out_valid

    def backward(self) -> None:
        self.advance = not self.out_valid or self.o.ready
        self.i.ready = self.position != self.positions - 1 or self.advance

    def clock(self) -> None:
        last = self.position == self.positions - 1
        if self.advance:
            self.out_valid = self.i.valid and last
        if self.i.valid and self.i.ready:
            self.position = 0 if last else self.position + 1


class _Deserialize(_Block):
    """`flatten.Deserialize`: beats collect freely; a vector's last beat waits for the
    output register."""

    def __init__(self, inputs: list[_Wire], output: _Wire, beats: int):
        super().__init__(inputs, output)
        self.beats, self.count, self.out_valid = beats, 0, False

    def forward(self) -> None:
        self.o.valid = self.out_valid

    def backward(self) -> None:
        last = self.count == self.beats - 1
        self.i.ready = not last or not self.out_valid or self.o.ready

    def clock(self) -> None:
        if self.o.ready:
            self.out_valid = False
        if self.i.valid and self.i.ready:
            if self.count == self.beats - 1:
                self.out_valid, self.count = True, 0
            else:
                self.count += 1


class _Serial(_Block):
    """`serial_mac.SerialMatVec`: a word counter over the steps of every beat (a new beat
    taken on the last step of a beat, or while idle: then its first step is in that cycle),
    then ``depth + 1`` registered levels and the output register, all loading on
    ``advance = ~o.valid | o.ready``; the output is valid for the last step of a vector's
    last beat (of each result beat's steps, with several result beats)."""

    def __init__(self, inputs: list[_Wire], output: _Wire, stage):
        super().__init__(inputs, output)
        # what the model reads of the stage, as values (so `_signature` sees all of it)
        self.steps, self.words = stage.beat_words, stage.words
        self.early_start = bool(stage.early_start)
        self.ends = tuple(bool(stage.ends_result(w)) for w in range(stage.words))
        self.levels = [False] * (stage.depth + 1)
        self.busy, self.word = False, 0
        self.primed = not stage.block_rom  # a block ROM takes no beat before its first read
        self.out_valid = self.advance = False

    @property
    def last_step(self) -> bool:
        return self.word % self.steps == self.steps - 1

    def forward(self) -> None:
        self.o.valid = self.out_valid

    def backward(self) -> None:
        self.advance = not self.out_valid or self.o.ready
        self.i.ready = self.advance and (not self.busy or self.last_step) and self.primed

    def clock(self) -> None:
        self.primed = True
        if not self.advance:
            return
        start = self.i.valid and self.i.ready
        step = self.busy or (start and self.early_start)
        self.out_valid = self.levels.pop()
        self.levels.insert(0, step and self.ends[self.word])
        last = self.last_step
        busy = self.busy
        if step:
            self.word = (self.word + 1) % self.words
            if last:
                self.busy = False
        if start:
            # taken on the last step (or without an early start): its first step is the
            # next; taken idle: its first step was this one
            self.busy = True if busy or not self.early_start else not last


def _blocks(stage) -> list | None:
    """The handshake blocks of ``stage`` in stream order, as ``make(inputs, output)``
    functions; None for a component whose handshake this model does not know (one that
    states only a forward ``model_timing``)."""
    from rtlgen.layers.global_pool import RunningReduce
    from rtlgen.layers.lookup import PiecewiseLinear
    from rtlgen.layers.merge import Concatenate, ElementwiseMerge, Merge
    from rtlgen.layers.spatial import Crop, UpSampleNearest, ZeroInsert, ZeroPad
    from rtlgen.layers.stream_util import Chain, SkidBuffer, StreamFifo

    def pipeline(latency: int):
        return lambda inputs, output: _Pipeline(inputs, output, latency)

    if stage is None or isinstance(stage, SkidBuffer):
        return [_Skid]
    if isinstance(stage, StreamFifo):
        return [lambda inputs, output: _Fifo(inputs, output, stage.depth)]
    if isinstance(stage, WindowGenerator):
        return [lambda inputs, output: _Walk.of_window(inputs, output, stage.geometry)]
    if isinstance(stage, ZeroPad):
        return _blocks(stage.walk)
    if isinstance(stage, _Pool):
        reduce = _blocks(stage.reduce)
        return None if reduce is None else [*_blocks(stage.window), *reduce]
    if isinstance(stage, ZeroInsert):
        return [lambda inputs, output: _Walk.of_zero_insert(inputs, output, stage)]
    if isinstance(stage, Crop):
        return [lambda inputs, output: _Crop(inputs, output, stage)]
    if isinstance(stage, UpSampleNearest):
        return [lambda inputs, output: _UpSample(inputs, output, stage)]
    if isinstance(stage, RunningReduce):
        return [lambda inputs, output: _RunningReduce(inputs, output, stage.positions)]
    if isinstance(stage, Deserialize):
        return [lambda inputs, output: _Deserialize(inputs, output, stage.beats)]
    if isinstance(stage, SerialMatVec):
        return [lambda inputs, output: _Serial(inputs, output, stage)]
    if isinstance(stage, Merge):  # a join (`ElementwiseMerge`, `BroadcastMerge`), then requantize
        join, rest = _blocks(stage.merge), _blocks(stage.output_stage)
        return None if join is None or rest is None else [*join, *rest]
    if isinstance(stage, (ElementwiseMerge, Concatenate, PiecewiseLinear)):
        return [pipeline(stage.latency)]
    if isinstance(stage, Chain):
        parts = [_blocks(s) for s in stage.stages]
        return None if any(p is None for p in parts) else [b for p in parts for b in p]
    if hasattr(stage, "handshake_blocks"):  # a component stating its own handshake model
        return stage.handshake_blocks()
    if hasattr(stage, "model_timing"):
        return None
    # any other component is a `pipeline_control` pipeline (its docstring says so)
    return [pipeline(getattr(stage, "latency", 0))]


class _Network:
    """Blocks and wires of a planned graph, run cycle by cycle from an idle reset."""

    def __init__(self) -> None:
        self.blocks: list[_Block] = []
        self.wires: list[_Wire] = []
        self.sinks: list[tuple[_Wire, int]] = []  # (wire, beats expected)

    def wire(self) -> _Wire:
        w = _Wire()
        self.wires.append(w)
        return w

    def chain(self, inputs: list[_Wire], makers: list) -> _Wire:
        for make in makers:
            out = self.wire()
            self.blocks.append(make(inputs, out))
            inputs = [out]
        return inputs[0]

    def run(self, patience: int) -> int:
        """Cycles until every sink has its beats; RuntimeError when nothing moves for
        ``patience`` cycles (a deadlock). A network run before (the same blocks in the same
        states, wired alike: `_signature`) takes the state that run ended in instead."""
        key = _signature(self, patience)
        if key is not None and key in _RUNS:
            cycle, wire_states, block_states = _RUNS[key]
            for w, (flags, valid_from, taken) in zip(self.wires, wire_states, strict=True):
                w.valid, w.ready, w.shown = flags
                w.valid_from, w.taken = list(valid_from), list(taken)
            for b, state in zip(self.blocks, block_states, strict=True):
                for name, value in state.items():
                    setattr(b, name, list(value) if isinstance(value, list) else value)
            return cycle
        cycle = self._run(patience)
        if key is not None:
            if len(_RUNS) >= _RUNS_KEPT:
                del _RUNS[next(iter(_RUNS))]
            _RUNS[key] = (
                cycle,
                [
                    ((w.valid, w.ready, w.shown), list(w.valid_from), list(w.taken))
                    for w in self.wires
                ],
                [_state(b) for b in self.blocks],
            )
        return cycle

    def _run(self, patience: int) -> int:
        wires = self.wires
        # each block's methods bound once (the calls are most of the model's time)
        forward = [b.forward for b in self.blocks]
        backward = [b.backward for b in reversed(self.blocks)]
        clock = [b.clock for b in self.blocks]
        cycle = idle = 0
        while any(len(w.taken) < n for w, n in self.sinks):
            for f in forward:
                f()
            for f in backward:
                f()
            moved = False
            for w in wires:
                if w.valid and w.record(cycle):  # (record's own test, skipping the call)
                    moved = True
            for f in clock:
                f()
            cycle += 1
            idle = 0 if moved else idle + 1
            if idle > patience:
                raise RuntimeError("the handshake model stalled: the pipeline deadlocks")
        return cycle


#: the end states of recent runs (`_Network.run`), by `_signature`: the planner and the
#: manifest time the same network (each of its own `NetworkTop`)
_RUNS: dict = {}
_RUNS_KEPT = 8


def _known_blocks() -> tuple[type, ...]:
    """The blocks whose behaviour is their class and instance variables (a block made by
    a component's ``handshake_blocks`` may keep its parameters in a closure)."""
    return (_Source, _Sink, _Pipeline, _Skid, _Fifo, _Fork, _Walk, _Crop, _UpSample,
            _RunningReduce, _Deserialize, _Serial)  # fmt: skip


def _state(block: _Block) -> dict:
    """A block's variables but its wires: lists copied."""
    return {
        name: list(value) if isinstance(value, list) else value
        for name, value in vars(block).items()
        if not _has_wire(value)
    }


def _has_wire(value) -> bool:
    return isinstance(value, _Wire) or (
        isinstance(value, list | tuple) and any(isinstance(v, _Wire) for v in value)
    )


def _signature(net: _Network, patience: int) -> tuple | None:
    """What a run of ``net`` depends on: each block's class and variables (its wires by
    index), the sinks and ``patience``;
    None where a block is not one of `_known_blocks`."""
    known = _known_blocks()
    index = {id(w): k for k, w in enumerate(net.wires)}

    def encode(value):
        if isinstance(value, _Wire):
            return ("wire", index[id(value)])
        if isinstance(value, list | tuple):
            return tuple(encode(v) for v in value)
        if value is None or isinstance(value, bool | int | str):
            return value
        raise TypeError(type(value))

    blocks = []
    try:
        for block in net.blocks:
            if type(block) not in known:
                return None
            state = vars(block)
            blocks.append((type(block), tuple((k, encode(state[k])) for k in sorted(state))))
        sinks = tuple((index[id(w)], n) for w, n in net.sinks)
    except (KeyError, TypeError):  # a wire of another network, an unknown value
        return None
    return tuple(blocks), sinks, patience


@dataclass
class _Built:
    net: _Network
    source: _Wire  # the first input's
    sources: list[_Wire]  # every input's, in graph order
    results: dict[str, _Wire]  # each node's result stream (before any fork)
    presented: dict[tuple[str, int], _Wire]  # what reaches each input (before its FIFO)
    fifos: dict[tuple[str, int], _Fifo]
    fifo_out: dict[tuple[str, int], _Wire]
    outputs: list[_Wire]  # each graph output's stream at its master


def _build(
    plan,
    skid: dict[str, bool],
    fifos: dict[tuple[str, int], int | None],
    samples: int,
    tails: dict[str, list] | None = None,
) -> _Built | None:
    """The handshake network of ``plan`` (wired as `rtlgen.hardware.NetworkTop` wires it),
    or None if a component has no handshake model. ``fifos``: depth per (consumer, input)
    FIFO (None: unbounded); ``tails``: stages after an output node before its master."""
    graph = plan.graph
    plans = {p.node.name: p for p in plan.layers}
    net = _Network()
    results: dict[str, _Wire] = {}
    sources = []
    for spec in _input_plans(plan):  # each input offered on every cycle from cycle 0
        wire = net.wire()
        net.blocks.append(_Source(wire, spec.format.beats * samples))
        results[spec.node] = wire
        sources.append(wire)
    forks: dict[str, list[_Wire]] = {}
    presented: dict[tuple[str, int], _Wire] = {}
    fifo_blocks: dict[tuple[str, int], _Fifo] = {}
    fifo_out: dict[tuple[str, int], _Wire] = {}

    def take(producer: str) -> _Wire:
        # a result several take (its consumers, and its master when it is also an output)
        # goes through a Fork, one output per taker
        takers = len(graph.consumers(producer)) + (producer in graph.outputs)
        if takers <= 1:
            return results[producer]
        if producer not in forks:
            outs = [net.wire() for _ in range(takers)]
            net.blocks.append(_Fork([results[producer]], outs))
            forks[producer] = list(outs)
        return forks[producer].pop(0)

    for node in graph.nodes:
        if node.name not in plans:  # an input
            continue
        layer = plans[node.name]
        inputs = []
        for k, producer in enumerate(node.inputs):
            wire = take(producer)
            presented[(node.name, k)] = wire
            if (node.name, k) in fifos:
                out = net.wire()
                block = _Fifo([wire], out, fifos[(node.name, k)])
                net.blocks.append(block)
                fifo_blocks[(node.name, k)], fifo_out[(node.name, k)] = block, out
                wire = out
            inputs.append(wire)
        if not layer.stages:
            results[node.name] = inputs[0]
            continue
        makers = []
        for stage in [*layer.stages, *([None] if skid.get(node.name) else [])]:
            blocks = _blocks(stage)
            if blocks is None:
                return None
            makers.extend(blocks)
        results[node.name] = net.chain(inputs, makers)
    outputs = []
    for name in graph.outputs:
        wire = take(name)
        for stage in (tails or {}).get(name, []):
            blocks = _blocks(stage)
            if blocks is None:
                return None
            wire = net.chain([wire], blocks)
        net.blocks.append(_Sink(wire))
        outputs.append(wire)
    return _Built(net, sources[0], sources, results, presented, fifo_blocks, fifo_out, outputs)


def _one_input(graph) -> None:
    """The forward-only fallback follows one input stream."""
    if len(graph.input_nodes) > 1:
        from rtlgen.quant.errors import UnsupportedError

        raise UnsupportedError(
            f"model '{graph.name}': a component without a handshake model in a network of "
            f"{len(graph.input_nodes)} inputs (the timing model follows one input forward only)"
        )


def _input_plans(plan) -> tuple:
    """The `rtlgen.plan.InputPlan` of every input of ``plan`` (one made up from
    ``input_format`` for a plan-like object without ``inputs``)."""
    inputs = getattr(plan, "inputs", ())
    if inputs:
        return inputs
    from rtlgen.plan import InputPlan, input_prefix

    return (InputPlan(plan.graph.input.name, "input", input_prefix(0), plan.input_format),)


def _out_beats(graph, name: str) -> int:
    shape = graph.node(name).out_shape
    return 1 if len(shape) == 1 else int(math.prod(shape[:-1]))


def _run(built: _Built, plan, samples: int) -> None:
    graph = plan.graph
    for name, wire in zip(graph.outputs, built.outputs, strict=True):
        built.net.sinks.append((wire, _out_beats(graph, name) * samples))
    beats = max(spec.format.beats for spec in _input_plans(plan))
    built.net.run(patience=16 * (plan.sample_cycles + beats) + 1024)


def model_graph(
    plan, skid: dict[str, bool], fifos: set[tuple[str, int]], samples: int = 3
) -> GraphTiming:
    """Every beat of ``samples`` samples through a planned DAG, input offered on every
    cycle, every output always ready.

    ``plan``: a `rtlgen.plan.NetworkPlan` (or anything with ``graph``, ``input_format``,
    ``layers``, ``sample_cycles``); ``skid``: node name -> a skid buffer follows its stages;
    ``fifos``: the (consumer, input index) edges with a `StreamFifo`, here unbounded, so that
    ``fifo_depths`` tells how deep each must be for no write to wait. Forks, joins and every
    stall between stages follow the components' handshakes (`_blocks`); a graph with a
    component that states only a forward ``model_timing`` falls back to following beats
    forward with unlimited buffering between stages.
    """
    built = _build(plan, skid, dict.fromkeys(fifos), samples)
    if built is None:
        _one_input(plan.graph)
        timing = _forward_graph(plan, skid, fifos, samples)
        beats = plan.input_format.beats
        starts = tuple(timing.input_accepted[s * beats] for s in range(samples))
        return dataclasses.replace(timing, sample_starts=starts)
    _run(built, plan, samples)
    out = {name: wire.valid_from for name, wire in built.results.items()}
    depths = {edge: fifo.depth_needed for edge, fifo in built.fifos.items()}
    arrivals = {edge: wire.valid_from for edge, wire in built.presented.items()}
    return GraphTiming(
        out, built.source.taken, depths, arrivals, sample_starts(built, plan, samples)
    )


def sample_starts(built: _Built, plan, samples: int) -> tuple[int, ...]:
    """Per sample, the handshake cycle of its first beat on the input that took it last:
    where a sample of a network with several inputs (each offered at its own pace) starts,
    what latency and II are counted from. One input: its first beat of each sample."""
    return tuple(
        max(
            wire.taken[s * spec.format.beats]
            for spec, wire in zip(_input_plans(plan), built.sources, strict=True)
        )
        for s in range(samples)
    )


def beat_times(
    plan, skid: dict[str, bool], fifo_depths: dict[tuple[str, int], int], samples: int = 3
) -> tuple[tuple[int, ...], ...] | None:
    """Each sample's start (`sample_starts`) and, per output, its last output handshake, with
    the join FIFOs at ``fifo_depths`` (None: a component has no handshake model; a deadlock
    gives an empty tuple): what latency and II are made of, so `rtlgen.plan` shrinks each
    FIFO while they stay equal."""
    built = _build(plan, skid, dict(fifo_depths), samples)
    if built is None:
        return None
    try:
        _run(built, plan, samples)
    except RuntimeError:
        return ()
    first_in = sample_starts(built, plan, samples)
    last_out = tuple(
        tuple(w.taken[(s + 1) * _out_beats(plan.graph, name) - 1] for s in range(samples))
        for name, w in zip(plan.graph.outputs, built.outputs, strict=True)
    )
    return (first_in, *last_out)


#: most samples the model runs looking for the steady state
STEADY_MAX_SAMPLES = 48


def steady_samples(top) -> int:
    """How many samples at full rate it takes until a sample's latency stops growing.

    Usually 3 (every stage keeps up with the input); with branches that join, at least the
    samples in flight while the first passes plus 3 (a branch waiting for a longer one
    fills, and stalls the fork, only once they have entered). A network slower than its input (a
    stage needing more cycles per sample than the input offers) takes the first samples into
    the buffers before the slow stage faster than it can pass them on, so their latency grows
    until those buffers are full; the manifest reports that steady state, and a measurement
    must run at least this many samples to see it. The gaps between samples can also repeat
    in a pattern of several samples (branches that join take turns stalling the fork: gaps
    20, 22, 22, 24, 22, 22, 24 ...), whose largest gap shows only after a few samples; so
    the count is also doubled until twice as many samples give every output the same
    latency and II."""
    return _steady(top)[0]


def _steady(top) -> tuple[int, tuple[Timing, ...]]:
    """(`steady_samples`, `_model_outputs` at that many samples): the search's own run at
    the count it settles on is that model, so it is kept rather than run again."""
    joins = any(len(node.inputs) > 1 for node in top.graph.nodes)
    samples = 3
    while samples < STEADY_MAX_SAMPLES:
        timings = _model_outputs(top, samples)
        first = timings[0]
        # a branch waiting for a longer one fills only once the samples in flight while the
        # first passes have entered: fewer samples never show its stalls
        needed = _in_flight_samples(timings) if joins else 3
        if samples < needed:
            samples = needed
            continue
        latencies = [o - f for f, o in zip(first.first_in, first.last_out, strict=True)]
        if latencies[-1] <= latencies[-2]:
            longer = _model_outputs(top, min(2 * samples, STEADY_MAX_SAMPLES))
            if [(t.latency, t.ii) for t in longer] == [(t.latency, t.ii) for t in timings]:
                return samples, timings
        samples = min(2 * samples, STEADY_MAX_SAMPLES)
    return samples, _model_outputs(top, samples)


def samples_for_steady_state(passing: int, spacing: int) -> int:
    """The samples started while the first one passes (``passing`` cycles from its first
    input beat to its last output beat, a sample every ``spacing`` cycles), plus 3: so many
    fill a branch waiting for a longer one (at most `STEADY_MAX_SAMPLES`). Both the FIFO
    sizing (`rtlgen.plan`) and `steady_samples` model at least this many where branches join."""
    return min(STEADY_MAX_SAMPLES, 3 + -(-passing // max(1, spacing)))


def _in_flight_samples(timings: tuple[Timing, ...]) -> int:
    """`samples_for_steady_state` of a model run: the first sample's passage to the slowest
    output, at the modelled samples' mean start spacing."""
    starts = timings[0].first_in
    spacing = (starts[-1] - starts[0]) // max(1, len(starts) - 1)
    return samples_for_steady_state(max(t.last_out[0] for t in timings) - starts[0], spacing)


def model_top(top, samples: int | None = None) -> Timing:
    """Timing of `NetworkTop` ``top``'s first output for ``samples`` samples (default:
    `steady_samples`) offered at full rate, every output master always ready: its FIFOs at
    their planned depths, its arg-max stages. Latency is the worst sample's, II the largest
    gap between first input beats."""
    return model_outputs(top, samples)[0]


def model_outputs(top, samples: int | None = None) -> tuple[Timing, ...]:
    """`model_top` for every output of ``top``, in port order (the manifest's per-output
    latency and II): one run of the same handshake network, each output's last beat of each
    sample counted at its own master (after its arg-max, when it has one)."""
    return _steady(top)[1] if samples is None else _model_outputs(top, samples)


def _port_beats(top) -> list[int]:
    """Beats per sample at each output master, in port order."""
    outputs = getattr(top, "outputs", None)
    if outputs is None:
        return [top.output_format.beats]
    return [out.format.beats for out in outputs]


def _model_outputs(top, samples: int) -> tuple[Timing, ...]:
    plan = top.plan
    skid = {p.node.name: top.has_skid_buffer(p) for p in top.plans}
    fifos = {(f.consumer, f.input_index): f.depth for f in plan.fifos}
    outputs = getattr(top, "outputs", None)
    if outputs is not None and hasattr(top, "argmaxes"):
        tails = {out.node: [a] for out, a in zip(outputs, top.argmaxes, strict=True) if a}
    else:
        tails = {top.graph.outputs[0]: [top.argmax]} if top.argmax is not None else {}
    beats = top.input_format.beats
    built = _build(plan, skid, fifos, samples, tails)
    if built is None:
        _one_input(top.graph)
        if len(top.graph.outputs) > 1:
            return _forward_outputs(top, skid, tails, samples)
        if not top.graph.is_chain:
            return (_forward_dag_top(top, samples),)
        return (_forward_chain_top(top, samples),)
    _run(built, plan, samples)
    first_in = sample_starts(built, plan, samples)
    return tuple(
        _timing(first_in, tuple(wire.taken[(s + 1) * n - 1] for s in range(samples)), beats)
        for wire, n in zip(built.outputs, _port_beats(top), strict=True)
    )


def _timing(first_in: tuple[int, ...], last_out: tuple[int, ...], beats: int) -> Timing:
    latency = max(out - first for first, out in zip(first_in, last_out, strict=True))
    ii = max((b - a for a, b in zip(first_in, first_in[1:], strict=False)), default=beats)
    return Timing(latency, ii, first_in, last_out)


# ---------------------------------------------------------------------------------------
# Forward only: components without a handshake model (unlimited buffering between stages)
# ---------------------------------------------------------------------------------------


def _forward_graph(
    plan, skid: dict[str, bool], fifos: set[tuple[str, int]], samples: int = 3
) -> GraphTiming:
    """Follow every beat of ``samples`` samples through a planned DAG.

    ``plan``: a `rtlgen.plan.NetworkPlan` (or anything with ``graph``, ``input_format``,
    ``layers``); ``skid``: node name -> a skid buffer follows its stages; ``fifos``: the
    (consumer, input index) edges with a `StreamFifo`. A producer feeding several consumers
    is a fork: it offers beat b+1 only after every consumer took beat b, so the model
    iterates the offers to a fixed point. A FIFO takes every beat when offered (its depth
    comes from this model: `fifo_depths`); a join (a merge) takes beat b from all its inputs
    in the cycle its first stage accepts it.
    """
    graph = plan.graph
    beats = plan.input_format.beats
    plans = {p.node.name: p for p in plan.layers}
    offered_input = list(range(beats * samples))
    # offers[p]: the cycle producer p presents each beat to its consumers (after its fork)
    offers: dict[str, list[int]] = {}
    for _ in range(64):
        out: dict[str, list[int]] = {graph.input.name: offered_input}
        taken: dict[str, list[list[int]]] = {}  # producer -> acceptance times per consumer edge
        arrivals: dict[tuple[str, int], list[int]] = {}
        depths: dict[tuple[str, int], int] = {}
        input_accepted = offered_input
        for node in graph.nodes[1:]:
            layer = plans[node.name]
            stages = [*layer.stages, *([None] if skid.get(node.name) else [])]
            edges = []
            for k, producer in enumerate(node.inputs):
                presented = offers.get(producer, out[producer])
                arrivals[(node.name, k)] = presented
                edges.append((k, producer, presented))
            if len(edges) == 1:
                k, producer, presented = edges[0]
                if (node.name, k) in fifos:
                    ready = _pipeline(presented, FIFO_LATENCY)
                    accepted, out[node.name] = follow(stages, ready, samples)
                    depths[(node.name, k)] = _occupancy(presented, accepted)
                    taken.setdefault(producer, []).append(presented)
                else:
                    accepted, out[node.name] = follow(stages, presented, samples)
                    taken.setdefault(producer, []).append(accepted)
            else:
                ready_k = [
                    _pipeline(t, FIFO_LATENCY) if (node.name, k) in fifos else t
                    for k, _, t in edges
                ]
                joined = [max(ts) for ts in zip(*ready_k, strict=True)]
                accepted, out[node.name] = follow(stages, joined, samples)
                for k, producer, presented in edges:
                    if (node.name, k) in fifos:
                        depths[(node.name, k)] = _occupancy(presented, accepted)
                        taken.setdefault(producer, []).append(presented)
                    else:
                        taken.setdefault(producer, []).append(accepted)
            if node.inputs == (graph.input.name,) and len(graph.consumers(graph.input.name)) == 1:
                input_accepted = taken[graph.input.name][0]
        new_offers: dict[str, list[int]] = {}
        for producer, per_edge in taken.items():
            if len(per_edge) < 2:
                continue
            produced = out[producer]
            done = [max(ts) for ts in zip(*per_edge, strict=True)]
            offer = []
            for b, t in enumerate(produced):
                offer.append(t if b == 0 else max(t, done[b - 1] + 1))
            new_offers[producer] = offer
        if graph.input.name in new_offers or graph.input.name in taken:
            per_edge = taken.get(graph.input.name, [])
            if len(per_edge) > 1:
                input_accepted = [max(ts) for ts in zip(*per_edge, strict=True)]
        if new_offers == offers:
            return GraphTiming(out, input_accepted, depths, arrivals)
        offers = new_offers
    raise RuntimeError("the fork timing did not settle")


def _forward_dag_top(top, samples: int) -> Timing:
    skid = {p.node.name: top.has_skid_buffer(p) for p in top.plans}
    fifos = {(f.consumer, f.input_index) for f in top.plan.fifos}
    timing = _forward_graph(top.plan, skid, fifos, samples)
    times = timing.out[top.graph.outputs[0]]
    if top.argmax is not None:
        _, times = model_stage(top.argmax, times, samples)
    beats = top.input_format.beats
    first_in = tuple(timing.input_accepted[s * beats] for s in range(samples))
    out_beats = top.output_format.beats
    last_out = tuple(times[(s + 1) * out_beats - 1] for s in range(samples))
    ii = max((b - a for a, b in zip(first_in, first_in[1:], strict=False)), default=beats)
    return Timing(last_out[0] - first_in[0], ii, first_in, last_out)


def _forward_outputs(
    top, skid: dict[str, bool], tails: dict[str, list], samples: int
) -> tuple[Timing, ...]:
    """The forward-only model of every output of a DAG (FIFOs unbounded)."""
    fifos = {(f.consumer, f.input_index) for f in top.plan.fifos}
    timing = _forward_graph(top.plan, skid, fifos, samples)
    beats = top.input_format.beats
    first_in = tuple(timing.input_accepted[s * beats] for s in range(samples))
    result = []
    for name, n in zip(top.graph.outputs, _port_beats(top), strict=True):
        times = timing.out[name]
        for stage in tails.get(name, []):
            _, times = model_stage(stage, times, samples)
        result.append(
            _timing(first_in, tuple(times[(s + 1) * n - 1] for s in range(samples)), beats)
        )
    return tuple(result)


def _forward_chain_top(top, samples: int) -> Timing:
    beats = top.input_format.beats
    offered = list(range(beats * samples))
    times = offered
    first_accepted: list[int] | None = None
    stages = []
    for plan in top.plans:
        stages.extend(plan.stages)
        if top.has_skid_buffer(plan):
            stages.append(None)  # skid buffer: latency 1
    if top.argmax is not None:
        stages.append(top.argmax)
    for stage in stages:
        if stage is None:
            accepted, times = times, _pipeline(times, 1)
        else:
            accepted, times = model_stage(stage, times, samples)
        if first_accepted is None:
            first_accepted = accepted
    if first_accepted is None:
        first_accepted = offered
    first_in = tuple(first_accepted[s * beats] for s in range(samples))
    out_beats = top.output_format.beats
    last_out = tuple(times[(s + 1) * out_beats - 1] for s in range(samples))
    ii = max((b - a for a, b in zip(first_in, first_in[1:], strict=False)), default=beats)
    return Timing(last_out[0] - first_in[0], ii, first_in, last_out)
