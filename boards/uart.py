"""8N1 UART receiver and transmitter as small stream Components.

`divisor` is clock cycles per bit (`round(clk_hz / baud)`), at least `MIN_DIVISOR`.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

from rtlgen.quant.errors import RtlgenError

__all__ = ["MIN_DIVISOR", "uart_divisor", "UartRx", "UartTx"]

MIN_DIVISOR = 4


def uart_divisor(clk_hz: float, baud: int) -> int:
    """Cycles per bit for `baud` at `clk_hz`; `RtlgenError` if the rate error exceeds 2 %."""
    if not isinstance(baud, int) or baud <= 0:
        raise RtlgenError(f"baud rate must be a positive integer, got {baud!r}")
    divisor = round(clk_hz / baud)
    if divisor < MIN_DIVISOR:
        raise RtlgenError(
            f"baud rate {baud} is too fast for a {clk_hz / 1e6:g} MHz clock "
            f"(at most {int(clk_hz // MIN_DIVISOR)}: {MIN_DIVISOR} clock cycles per bit)"
        )
    error = abs(clk_hz / divisor - baud) / baud
    if error > 0.02:
        raise RtlgenError(
            f"baud rate {baud} is {error:.1%} off at a {clk_hz / 1e6:g} MHz clock "
            f"(nearest: {clk_hz / divisor:.0f}); choose a baud rate within 2 %"
        )
    return divisor


class UartRx(wiring.Component):
    """8N1 receiver: bits on `rx` (idle high, asynchronous) become bytes on `o`.

    Contract: `rx` goes through a 2-flop synchronizer; bits are sampled mid-bit. Each byte is
    offered on `o` for exactly one cycle when its stop bit is sampled; a UART cannot wait, so
    `o.ready` is ignored and a consumer that is not ready loses the byte (put a FIFO after
    this). A byte whose stop bit is low (framing error, break) is dropped, and reception
    resumes once the line is high again.
    """

    def __init__(self, divisor: int):
        if divisor < MIN_DIVISOR:
            raise ValueError(f"divisor must be at least {MIN_DIVISOR}, got {divisor}")
        self.divisor = divisor
        super().__init__({"rx": In(1, init=1), "o": Out(stream.Signature(8))})

    def elaborate(self, platform):
        m = Module()
        line = Signal(init=1)
        m.submodules.synchronizer = FFSynchronizer(self.rx, line, init=1)

        timer = Signal(range(self.divisor))
        bit_index = Signal(range(8))
        shift = Signal(8)
        m.d.comb += self.o.payload.eq(shift)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(~line):
                    m.d.sync += timer.eq(self.divisor // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(line):  # a glitch, not a start bit
                    m.next = "IDLE"
                with m.Else():
                    m.d.sync += [timer.eq(self.divisor - 1), bit_index.eq(0)]
                    m.next = "DATA"
            with m.State("DATA"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    m.d.sync += [shift.eq(Cat(shift[1:], line)), timer.eq(self.divisor - 1)]
                    m.d.sync += bit_index.eq(bit_index + 1)
                    with m.If(bit_index == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(line):
                    m.d.comb += self.o.valid.eq(1)
                    m.next = "IDLE"
                with m.Else():
                    m.next = "WAIT_IDLE"
            with m.State("WAIT_IDLE"):
                with m.If(line):
                    m.next = "IDLE"
        return m


class UartTx(wiring.Component):
    """8N1 transmitter: bytes from `i` go out on `tx`, LSB first.

    Contract: `i.ready` is high while idle; a byte is taken in the cycle `i.valid & i.ready`
    and the start bit appears on `tx` (a register, idle high) in the next cycle. Each bit lasts
    `divisor` cycles, the stop bit `divisor + 1`.
    """

    def __init__(self, divisor: int):
        if divisor < MIN_DIVISOR:
            raise ValueError(f"divisor must be at least {MIN_DIVISOR}, got {divisor}")
        self.divisor = divisor
        super().__init__({"i": In(stream.Signature(8)), "tx": Out(1, init=1)})

    def elaborate(self, platform):
        m = Module()
        busy = Signal()
        timer = Signal(range(self.divisor))
        bits_left = Signal(range(10))
        shift = Signal(9)  # data bits then the stop bit; the start bit goes straight to `tx`

        with m.If(~busy):
            m.d.comb += self.i.ready.eq(1)
            with m.If(self.i.valid):
                m.d.sync += [
                    self.tx.eq(0),
                    shift.eq(Cat(self.i.payload, Const(1, 1))),
                    bits_left.eq(9),
                    timer.eq(self.divisor - 1),
                    busy.eq(1),
                ]
        with m.Elif(timer != 0):
            m.d.sync += timer.eq(timer - 1)
        with m.Elif(bits_left != 0):
            m.d.sync += [
                self.tx.eq(shift[0]),
                shift.eq(shift >> 1),
                bits_left.eq(bits_left - 1),
                timer.eq(self.divisor - 1),
            ]
        with m.Else():
            m.d.sync += busy.eq(0)
        return m
