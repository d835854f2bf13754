"""Gateware that puts a generated network behind a UART (framing: `rtlgen.boards.protocol`).

`BeatAssembler` turns request bytes into input beats, `ResponseSerializer` turns one sample's
output beats into response bytes, and `UartNetworkTop` wires them, the UART and the network
(an `Instance` of the generated Verilog, ports as in docs/DESIGN.md) together. Nothing here
depends on a board: `rtlgen.boards.ecp5` adds pins and clocks.
"""

from __future__ import annotations

import math

from amaranth import Cat, ClockSignal, Const, Instance, Module, ResetInserter, ResetSignal, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .manifest import Manifest
from .protocol import REQUEST_HEADER, RESPONSE_HEADER, class_bytes
from .uart import UartRx, UartTx, uart_divisor

__all__ = ["BeatAssembler", "ResponseSerializer", "UartNetworkTop", "REQUEST_TIMEOUT_S"]

# A request whose bytes stop arriving for this long is abandoned (USB-serial adapters can
# pause a few milliseconds between packets; a person retrying takes far longer).
REQUEST_TIMEOUT_S = 0.25


class BeatAssembler(wiring.Component):
    """Request bytes in, input beats out.

    Contract: discards bytes until `REQUEST_HEADER`, then takes `beats * beat_bytes` bytes;
    each group of `beat_bytes` (little-endian) becomes one beat on `o` (`data` = the low
    `tdata_width` bits, `last` on the sample's final beat). A complete beat is held until
    accepted and no byte is taken meanwhile, so `i` needs a FIFO in front if the UART cannot
    wait. `busy` is high from the header until the last beat is accepted.
    """

    def __init__(self, tdata_width: int, beats: int):
        self.tdata_width, self.beats = tdata_width, beats
        self.beat_bytes = math.ceil(tdata_width / 8)
        beat = data.StructLayout({"data": tdata_width, "last": 1})
        super().__init__(
            {"i": In(stream.Signature(8)), "o": Out(stream.Signature(beat)), "busy": Out(1)}
        )

    def elaborate(self, platform):
        m = Module()
        word = Signal(8 * self.beat_bytes)
        byte_index = Signal(range(self.beat_bytes))
        beat_index = Signal(range(self.beats))
        m.d.comb += [
            self.o.payload.data.eq(word[: self.tdata_width]),
            self.o.payload.last.eq(beat_index == self.beats - 1),
        ]
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid & (self.i.payload == REQUEST_HEADER)):
                    m.d.sync += [byte_index.eq(0), beat_index.eq(0)]
                    m.next = "COLLECT"
            with m.State("COLLECT"):
                m.d.comb += [self.i.ready.eq(1), self.busy.eq(1)]
                with m.If(self.i.valid):
                    # Little-endian: each byte enters at the top and moves down.
                    m.d.sync += word.eq(Cat(word[8:], self.i.payload))
                    m.d.sync += byte_index.eq(byte_index + 1)
                    with m.If(byte_index == self.beat_bytes - 1):
                        m.d.sync += byte_index.eq(0)
                        m.next = "EMIT"
            with m.State("EMIT"):
                m.d.comb += [self.o.valid.eq(1), self.busy.eq(1)]
                with m.If(self.o.ready):
                    m.d.sync += beat_index.eq(beat_index + 1)
                    with m.If(self.o.payload.last):
                        m.next = "IDLE"
                    with m.Else():
                        m.next = "COLLECT"
        return m


class ResponseSerializer(wiring.Component):
    """One sample's output beats in, response bytes out.

    Contract: accepts beats on `i` (into a memory of `beats` rows) until one with `last`;
    then sends `RESPONSE_HEADER`, that beat's `user` as `class_bytes` bytes and every stored
    beat as `beat_bytes` bytes, all little-endian, and only then accepts the next sample's
    beats (`i.ready` is low while sending). At most `beats` beats per sample are stored.
    """

    def __init__(self, tdata_width: int, beats: int, user_width: int, class_bytes: int):
        self.tdata_width, self.beats = tdata_width, beats
        self.user_width, self.class_bytes = user_width, class_bytes
        self.beat_bytes = math.ceil(tdata_width / 8)
        beat = data.StructLayout({"data": tdata_width, "last": 1, "user": user_width})
        super().__init__({"i": In(stream.Signature(beat)), "o": Out(stream.Signature(8))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.storage = storage = Memory(shape=self.tdata_width, depth=self.beats, init=[])
        write = storage.write_port()
        read = storage.read_port()  # one cycle of latency: see the LOAD state

        write_index = Signal(range(self.beats))
        read_index = Signal(range(self.beats))
        last_index = Signal(range(self.beats))
        class_index = Signal(8 * self.class_bytes)
        byte_index = Signal(range(max(self.beat_bytes, self.class_bytes)))
        beat = Cat(read.data, Const(0, 8 * self.beat_bytes - self.tdata_width))
        m.d.comb += [
            write.addr.eq(write_index),
            write.data.eq(self.i.payload.data),
            read.addr.eq(read_index),
        ]

        with m.FSM():
            with m.State("COLLECT"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid):
                    m.d.comb += write.en.eq(1)
                    with m.If(self.i.payload.last):
                        m.d.sync += [
                            class_index.eq(self.i.payload.user),
                            last_index.eq(write_index),
                            write_index.eq(0),
                        ]
                        m.next = "HEADER"
                    with m.Elif(write_index != self.beats - 1):
                        m.d.sync += write_index.eq(write_index + 1)
            with m.State("HEADER"):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(RESPONSE_HEADER)]
                with m.If(self.o.ready):
                    m.d.sync += [byte_index.eq(0), read_index.eq(0)]
                    m.next = "CLASS"
            with m.State("CLASS"):
                m.d.comb += [
                    self.o.valid.eq(1),
                    self.o.payload.eq(class_index.word_select(byte_index, 8)),
                ]
                with m.If(self.o.ready):
                    m.d.sync += byte_index.eq(byte_index + 1)
                    with m.If(byte_index == self.class_bytes - 1):
                        m.d.sync += byte_index.eq(0)
                        m.next = "LOAD"
            with m.State("LOAD"):  # `read.data` follows `read_index` one cycle later
                m.next = "DATA"
            with m.State("DATA"):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(beat.word_select(byte_index, 8))]
                with m.If(self.o.ready):
                    m.d.sync += byte_index.eq(byte_index + 1)
                    with m.If(byte_index == self.beat_bytes - 1):
                        m.d.sync += [byte_index.eq(0), read_index.eq(read_index + 1)]
                        with m.If(read_index == last_index):
                            m.next = "COLLECT"
                        with m.Else():
                            m.next = "LOAD"
        return m


class UartNetworkTop(wiring.Component):
    """The network behind a UART: one request in on `rx`, one response out on `tx`.

    Contract: ports `rx` (idle high, asynchronous) and `tx`; runs in the `sync` domain at
    `clk_hz` with 8N1 at `baud`. Request bytes pass through a FIFO of `fifo_depth` bytes (so a
    briefly stalling network loses nothing), become input beats, and the sample's output beats
    come back as one response (framing: `rtlgen.boards.protocol`). If a request stops arriving
    midway for `timeout_s`, the bridge and the network are reset (through the network's reset
    port), so the next request starts clean. The network is `Instance(manifest.top)`: its
    Verilog must be supplied to the tools separately (e.g. `platform.add_file`).
    """

    def __init__(
        self,
        manifest: Manifest,
        *,
        clk_hz: float,
        baud: int = 115200,
        timeout_s: float = REQUEST_TIMEOUT_S,
        fifo_depth: int = 16,
    ):
        self.manifest = manifest
        self.divisor = uart_divisor(clk_hz, baud)
        # Never shorter than a few byte times, or a healthy request would be cut.
        self.timeout_cycles = max(int(clk_hz * timeout_s), 40 * self.divisor)
        self.fifo_depth = fifo_depth
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1)})

    def elaborate(self, platform):
        m = Module()
        manifest = self.manifest
        soft_reset = Signal()
        # Components that hold request state are reset by a stalled request; the UART
        # lines themselves are not (a byte in flight on `tx` finishes).
        restart = ResetInserter(soft_reset)

        m.submodules.uart_rx = uart_rx = UartRx(self.divisor)
        m.submodules.uart_tx = uart_tx = UartTx(self.divisor)
        fifo = SyncFIFOBuffered(width=8, depth=self.fifo_depth)
        assembler = BeatAssembler(manifest.input.tdata_width, manifest.input.beats_per_sample)
        serializer = ResponseSerializer(
            manifest.output.tdata_width,
            manifest.output.beats_per_sample,
            manifest.tuser_width,
            class_bytes(manifest),
        )
        m.submodules.fifo = restart(fifo)
        m.submodules.assembler = restart(assembler)
        m.submodules.serializer = restart(serializer)

        m.d.comb += uart_rx.rx.eq(self.rx)
        m.d.comb += self.tx.eq(uart_tx.tx)
        wiring.connect(m, uart_rx.o, fifo.w_stream)
        wiring.connect(m, fifo.r_stream, assembler.i)
        wiring.connect(m, serializer.o, uart_tx.i)

        idle_cycles = Signal(range(self.timeout_cycles + 1))
        with m.If(uart_rx.o.valid | ~assembler.busy | soft_reset):
            m.d.sync += idle_cycles.eq(0)
        with m.Else():
            m.d.sync += idle_cycles.eq(idle_cycles + 1)
        m.d.sync += soft_reset.eq(idle_cycles == self.timeout_cycles - 1)

        # ECP5 platforms make `sync` reset-less (GSR does the power-up reset): then only the
        # soft reset drives the network's reset port.
        network_reset = ResetSignal(allow_reset_less=True) | soft_reset
        ports = dict(
            i_s_axis_tdata=assembler.o.payload.data,
            i_s_axis_tvalid=assembler.o.valid,
            o_s_axis_tready=assembler.o.ready,
            i_s_axis_tlast=assembler.o.payload.last,
            o_m_axis_tdata=serializer.i.payload.data,
            o_m_axis_tvalid=serializer.i.valid,
            i_m_axis_tready=serializer.i.ready,
            o_m_axis_tlast=serializer.i.payload.last,
        )
        if manifest.tuser_width > 0:
            ports["o_m_axis_tuser"] = serializer.i.payload.user
        ports[f"i_{manifest.clock}"] = ClockSignal()
        ports[f"i_{manifest.reset}"] = (
            network_reset if manifest.reset_active_high else ~network_reset
        )
        m.submodules.network = Instance(manifest.top, **ports)
        return m
