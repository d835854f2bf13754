"""Stream plumbing: the pipeline control scheme, a skid buffer and a FIFO.

Pipeline scheme used by every fixed-latency block in `rtlgen.layers` (`pipeline_control`):
a block of latency ``L`` has ``L`` register stages, each with a valid bit; *all* stage
registers (payload and valid) load together when ``advance = ~o.valid | o.ready``, i.e.
whenever the last stage is empty or being taken. ``i.ready = advance``. Consequences:

- no backpressure: one beat per cycle in and out (II = 1), output ``L`` cycles after input;
- ``o.ready`` low freezes the whole pipeline: the output beat stays valid and unchanged,
  nothing is lost or duplicated; bubbles inside the pipeline are not squeezed out;
- ``i.ready`` is combinational from ``o.ready`` (one OR gate per block). Chained blocks
  form one combinational ready path; cut it with a `SkidBuffer` where it gets long.

Payload registers have no reset (``reset_less``) and a clock enable only, which FPGAs give
for free; only the valid bits are reset.
"""

from __future__ import annotations

from amaranth.hdl import Module, Shape, ShapeLike, Signal, Value, ValueLike
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out


class StageRegisters:
    """Delay registers of one pipeline, all enabled by the pipeline's ``advance``.

    Collects the register updates so that they end up in one ``with m.If(advance)`` block.
    """

    def __init__(self, advance: Value):
        self.advance = advance
        self.updates: list = []
        self._delayed: dict[int, tuple[Value, Signal]] = {}

    def register(
        self, value: ValueLike, shape: ShapeLike | None = None, name: str | None = None, init=None
    ) -> Signal:
        """A register loading ``value`` when the pipeline advances."""
        value = Value.cast(value)
        reg = Signal(
            value.shape() if shape is None else shape, name=name, reset_less=True, init=init
        )
        self.updates.append(reg.eq(value))
        return reg

    def load(self, target: Signal, value: ValueLike) -> None:
        """Make ``target`` (a ``reset_less`` signal) a register loading ``value``."""
        self.updates.append(target.eq(value))

    def delay(self, value: ValueLike, cycles: int, name: str | None = None) -> Value:
        """``value`` delayed by ``cycles`` stages (shared between callers of the same value)."""
        value = Value.cast(value)
        for k in range(cycles):
            entry = self._delayed.get(id(value))
            if entry is None:
                # The entry keeps `value` alive, so its id cannot be reused by another value.
                reg = self.register(value, name=f"{name}_d{k + 1}" if name else None)
                entry = self._delayed[id(value)] = (value, reg)
            value = entry[1]
        return value

    def emit(self, m: Module) -> None:
        with m.If(self.advance):
            m.d.sync += self.updates
        self.updates = []


def pipeline_control(m: Module, i: stream.Interface, o: stream.Interface, latency: int) -> Value:
    """Valid bits and handshakes of a ``latency``-stage pipeline; returns ``advance``.

    The caller registers its payload stages with ``advance`` as the enable (`StageRegisters`)
    and drives ``o.payload`` from the last stage. ``latency`` 0 is a combinational block.
    """
    advance = Signal(name="advance")
    if latency == 0:
        m.d.comb += [o.valid.eq(i.valid), i.ready.eq(o.ready), advance.eq(1)]
        return advance
    valid = [Signal(name=f"valid_{k}") for k in range(latency)]
    m.d.comb += [
        advance.eq(~valid[-1] | o.ready),
        i.ready.eq(advance),
        o.valid.eq(valid[-1]),
    ]
    with m.If(advance):
        m.d.sync += valid[0].eq(i.valid)
        m.d.sync += [valid[k].eq(valid[k - 1]) for k in range(1, latency)]
    return advance


class SkidBuffer(wiring.Component):
    """A register slice: breaks the combinational ready (and data) path, full throughput.

    Contract: latency 1, II = 1. ``i.ready`` and ``o.valid``/``o.payload`` are registers; one
    extra beat is held in the skid register when ``o.ready`` drops, so a stream running at
    full rate never loses a cycle. Nothing is lost or duplicated under any ready pattern.
    """

    latency = 1
    #: `rtlgen.emit`'s cost of converting it: written as Verilog text (`stream_verilog`) it
    #: costs nothing in the top, where a wide one (over `SEPARATE_BITS` port bits) went to a
    #: worker's Amaranth and Yosys run for a module holding one instance
    conversion_cost = 0

    def __init__(self, layout: ShapeLike):
        self.layout = layout
        super().__init__(
            {
                "i": In(stream.Signature(layout)),
                "o": Out(stream.Signature(layout)),
            }
        )

    def elaborate(self, platform):
        from . import mac_verilog, stream_verilog

        # Verilog emission: an instance of the same buffer written as text
        text = mac_verilog.text_instance(
            self, SkidBuffer, lambda _: True, stream_verilog.skid_verilog, "skid"
        )
        if text is not None:
            return text
        m = Module()
        skid_valid = Signal()
        skid = Signal(self.layout, reset_less=True)
        out_valid = Signal()
        out = Signal(self.layout, reset_less=True)
        m.d.comb += [
            self.i.ready.eq(~skid_valid),
            self.o.valid.eq(out_valid),
            self.o.payload.eq(out),
        ]
        with m.If(~out_valid | self.o.ready):
            # Output slot free or draining: refill it, from the skid register first.
            with m.If(skid_valid):
                m.d.sync += [out.eq(skid), out_valid.eq(1), skid_valid.eq(0)]
            with m.Else():
                m.d.sync += [out.eq(self.i.payload), out_valid.eq(self.i.valid)]
        with m.Elif(self.i.valid & ~skid_valid):
            # Output stalled, but ready was high this cycle: park the beat.
            m.d.sync += [skid.eq(self.i.payload), skid_valid.eq(1)]
        return m


class StreamFifo(wiring.Component):
    """A synchronous FIFO with stream ports (`amaranth.lib.fifo.SyncFIFOBuffered` inside).

    Contract: ``depth`` beats; output registered, ``latency`` 2 through an empty FIFO,
    II = 1. ``i.ready`` is low only when full; ``o.valid`` only when non-empty.
    """

    latency = 2

    def __init__(self, layout: ShapeLike, depth: int):
        self.layout = layout
        self.depth = depth
        super().__init__(
            {
                "i": In(stream.Signature(layout)),
                "o": Out(stream.Signature(layout)),
            }
        )

    def elaborate(self, platform):
        m = Module()
        width = Shape.cast(self.layout).width
        m.submodules.fifo = buf = fifo.SyncFIFOBuffered(width=width, depth=self.depth)
        m.d.comb += [
            buf.w_data.eq(Value.cast(self.i.payload)),
            buf.w_en.eq(self.i.valid),
            self.i.ready.eq(buf.w_rdy),
            self.o.payload.eq(buf.r_data),
            self.o.valid.eq(buf.r_rdy),
            buf.r_en.eq(self.o.ready),
        ]
        return m


class Chain(wiring.Component):
    """Stream components connected in series: ``i`` of the first, ``o`` of the last.

    Adjacent ports must have equal signatures (same payload layout). ``latency`` is the sum
    of the stages' ``latency`` (each stage must expose one).
    """

    def __init__(self, stages: list[wiring.Component]):
        if not stages:
            raise ValueError("Chain needs at least one stage")
        self.stages = list(stages)
        super().__init__(
            {
                "i": self.stages[0].signature.members["i"],
                "o": self.stages[-1].signature.members["o"],
            }
        )

    @property
    def latency(self) -> int:
        return sum(stage.latency for stage in self.stages)

    def elaborate(self, platform):
        m = Module()
        for k, stage in enumerate(self.stages):
            m.submodules[f"stage{k}"] = stage
        wiring.connect(m, wiring.flipped(self.i), self.stages[0].i)
        for a, b in zip(self.stages, self.stages[1:], strict=False):
            wiring.connect(m, a.o, b.i)
        wiring.connect(m, self.stages[-1].o, wiring.flipped(self.o))
        return m
