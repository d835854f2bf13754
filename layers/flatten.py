"""Beats <-> vectors: gather consecutive beats into one wide vector, or split it again; send
a vector as several equal beats (`Repeat`); and reorder a vector's elements by wiring
(`Permutation`)."""

from __future__ import annotations

from collections.abc import Sequence

from amaranth.hdl import Cat, Module, Shape, ShapeLike, Signal, Value
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from rtlgen.quant.errors import RtlgenError


def _check(beats: int, n_per_beat: int, who: str) -> None:
    if beats < 1 or n_per_beat < 1:
        raise RtlgenError(
            f"{who}: beats and elements per beat must be positive, got {beats}, {n_per_beat}"
        )


class _SendsBeats:
    """The timing of a component sending ``self.beats`` beats per input with `_send_beats`'
    control (`Serialize`, `Repeat`)."""

    beats: int

    def model_timing(self, times: list[int], samples: int) -> tuple[list[int], list[int]]:
        return _sent_beats_timing(times, self.beats)

    def handshake_blocks(self) -> list:
        """The valid/ready behaviour for `rtlgen.timing`'s handshake model."""
        return [lambda inputs, output: _SendHandshake(inputs, output, self.beats)]


class Deserialize(wiring.Component):
    """Collects ``beats`` consecutive beats of ``n_per_beat`` elements into one vector.

    Element ``b * n_per_beat + k`` of the output is element ``k`` of beat ``b`` (arrival
    order = row-major flatten of a (beats, n_per_beat) tensor).

    Contract: accepts one beat per cycle; the vector is valid 1 cycle (``latency``) after
    the handshake of its last beat. The first ``beats - 1`` beats of the next vector are
    accepted while the previous vector waits on ``o.ready``; its last beat waits.
    """

    latency = 1

    def __init__(self, beats: int, n_per_beat: int, elem_shape: ShapeLike):
        _check(beats, n_per_beat, "Deserialize")
        self.beats, self.n_per_beat, self.elem_shape = beats, n_per_beat, elem_shape
        super().__init__(
            {
                "i": In(stream.Signature(data.ArrayLayout(elem_shape, n_per_beat))),
                "o": Out(stream.Signature(data.ArrayLayout(elem_shape, beats * n_per_beat))),
            }
        )

    def elaborate(self, platform):
        m = Module()
        beat_bits = Shape.cast(self.i.payload.shape()).width
        beat = Value.cast(self.i.payload)
        out = Signal(self.o.payload.shape(), reset_less=True)
        out_valid = Signal()
        m.d.comb += [self.o.payload.eq(out), self.o.valid.eq(out_valid)]
        # Beats 0 .. beats-2 wait in a shift register: new beats enter at the top, so the
        # oldest ends in the low bits.
        held = Signal(max(1, (self.beats - 1) * beat_bits), reset_less=True)
        count = Signal(range(max(self.beats, 2)))
        last = count == self.beats - 1
        m.d.comb += self.i.ready.eq(~last | ~out_valid | self.o.ready)
        with m.If(self.o.ready):
            m.d.sync += out_valid.eq(0)
        with m.If(self.i.valid & self.i.ready):
            with m.If(last):
                whole = beat if self.beats == 1 else Cat(held, beat)
                m.d.sync += [Value.cast(out).eq(whole), out_valid.eq(1), count.eq(0)]
            with m.Else():
                m.d.sync += [held.eq(Cat(held[beat_bits:], beat)), count.eq(count + 1)]
        return m


class Serialize(_SendsBeats, wiring.Component):
    """Splits a vector of ``beats * n_per_beat`` elements into ``beats`` beats (the reverse
    of `Deserialize`): beat ``b`` carries elements ``[b * n_per_beat, (b + 1) * n_per_beat)``.

    ``last`` is high with the last beat of each vector (e.g. for AXI4-Stream ``tlast``).

    Contract: the first beat is valid 1 cycle (``latency``) after the vector's handshake;
    then one beat per cycle while ``o.ready``. A new vector is accepted in the cycle the
    last beat of the previous one is taken, so back-to-back vectors leave no gap.
    """

    latency = 1

    def __init__(self, beats: int, n_per_beat: int, elem_shape: ShapeLike):
        _check(beats, n_per_beat, "Serialize")
        self.beats, self.n_per_beat, self.elem_shape = beats, n_per_beat, elem_shape
        super().__init__(
            {
                "i": In(stream.Signature(data.ArrayLayout(elem_shape, beats * n_per_beat))),
                "o": Out(stream.Signature(data.ArrayLayout(elem_shape, n_per_beat))),
                "last": Out(1),
            }
        )

    def elaborate(self, platform):
        m = Module()
        beat_bits = Shape.cast(self.o.payload.shape()).width
        held = Signal(self.beats * beat_bits, reset_less=True)  # next beat in the low bits
        load, step, remaining = _send_beats(m, self.i, self.o, self.beats)
        m.d.comb += [self.o.payload.eq(held[:beat_bits]), self.last.eq(remaining == 1)]
        with m.If(load):
            m.d.sync += held.eq(Value.cast(self.i.payload))
        with m.Elif(step):
            m.d.sync += held.eq(held[beat_bits:])
        return m


class Repeat(_SendsBeats, wiring.Component):
    """Sends each input vector ``times`` times, one equal beat each (Keras's
    ``RepeatVector``: a flat vector of ``n_elements`` becomes a sequence of ``times`` steps).
    The vector is held in one register, not ``times`` copies.

    Contract (`Serialize`'s, with beat k = the vector): the first beat is valid 1 cycle
    (``latency``) after the vector's handshake, then one beat per cycle while ``o.ready``;
    the next vector is taken in the cycle the last beat of the previous one is, so
    back-to-back vectors leave no gap (``times`` cycles per vector at full rate).
    ``i.ready`` is combinational from ``o.ready``. Registers: the vector and a count.
    """

    latency = 1

    def __init__(self, times: int, n_elements: int, elem_shape: ShapeLike):
        _check(times, n_elements, "Repeat")
        self.beats, self.n_elements, self.elem_shape = times, n_elements, elem_shape
        layout = data.ArrayLayout(elem_shape, n_elements)
        super().__init__({"i": In(stream.Signature(layout)), "o": Out(stream.Signature(layout))})

    def elaborate(self, platform):
        m = Module()
        held = Signal(self.i.payload.shape(), reset_less=True)
        load, _, _ = _send_beats(m, self.i, self.o, self.beats)
        m.d.comb += self.o.payload.eq(held)
        with m.If(load):
            m.d.sync += held.eq(self.i.payload)
        return m


def _send_beats(
    m: Module, i: stream.Interface, o: stream.Interface, beats: int
) -> tuple[Value, Value, Signal]:
    """The handshake `Serialize` and `Repeat` share: a count of the beats still to send of
    the vector taken last; a new vector is taken when none is left or the last is taken
    now. Returns (load: a vector is taken now, step: a beat is taken and no vector,
    the count)."""
    remaining = Signal(range(beats + 1))
    done = (remaining == 0) | ((remaining == 1) & o.ready)
    load = i.valid & done
    step = o.valid & o.ready & ~load
    m.d.comb += [o.valid.eq(remaining != 0), i.ready.eq(done)]
    with m.If(load):
        m.d.sync += remaining.eq(beats)
    with m.Elif(step):
        m.d.sync += remaining.eq(remaining - 1)
    return load, step, remaining


def _sent_beats_timing(times: list[int], beats: int) -> tuple[list[int], list[int]]:
    """(vector handshake cycles, beat valid cycles) of `_send_beats` at full rate, per the
    contract: beat k of a vector taken at cycle a is valid at a + 1 + k; the next vector is
    taken no earlier than the cycle the last beat is (a + beats)."""
    accepted: list[int] = []
    out: list[int] = []
    free = 0
    for t in times:
        a = max(t, free)
        accepted.append(a)
        out.extend(a + 1 + k for k in range(beats))
        free = a + beats
    return accepted, out


class _SendHandshake:
    """`_send_beats` in `rtlgen.timing`'s handshake model (``forward`` / ``backward`` /
    ``clock``): the count of the beats still to send."""

    def __init__(self, inputs, output, beats: int):
        self.inputs, self.i, self.o = inputs, inputs[0], output
        self.beats, self.remaining = beats, 0

    def forward(self) -> None:
        self.o.valid = self.remaining != 0

    def backward(self) -> None:
        self.i.ready = self.remaining == 0 or (self.remaining == 1 and self.o.ready)

    def clock(self) -> None:
        if self.i.valid and self.i.ready:
            self.remaining = self.beats
        elif self.o.valid and self.o.ready:
            self.remaining -= 1


class Permutation(wiring.Component):
    """Reorders the elements of each vector: output element ``k`` is input element
    ``order[k]`` (``order`` a permutation of ``range(len(order))``).

    Contract: wires only, no register and no logic: latency 0, one vector per cycle,
    ``valid`` passes forward and ``ready`` back unchanged (combinationally).
    """

    latency = 0

    def __init__(self, order: Sequence[int], elem_shape: ShapeLike):
        self.order = tuple(int(k) for k in order)
        if sorted(self.order) != list(range(len(self.order))) or not self.order:
            raise RtlgenError(f"Permutation: {list(self.order)[:8]} is not a permutation")
        self.elem_shape = elem_shape
        layout = data.ArrayLayout(elem_shape, len(self.order))
        super().__init__({"i": In(stream.Signature(layout)), "o": Out(stream.Signature(layout))})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += [
            self.o.valid.eq(self.i.valid),
            self.i.ready.eq(self.o.ready),
            *(self.o.payload[k].eq(self.i.payload[j]) for k, j in enumerate(self.order)),
        ]
        return m
