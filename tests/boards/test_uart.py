"""UartRx/UartTx in Amaranth's simulator, against a bit-level model of 8N1 serial."""

import random

import pytest
from amaranth import Module
from amaranth.sim import Simulator

from rtlgen.boards.uart import UartRx, UartTx, uart_divisor
from rtlgen.quant.errors import RtlgenError


def serial_bits(value: int) -> list[int]:
    """8N1 line levels of one byte: start, 8 data bits LSB first, stop."""
    return [0] + [(value >> i) & 1 for i in range(8)] + [1]


def run(dut, testbench, *, processes=()):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    for process in processes:
        sim.add_process(process)
    sim.run()


def record_bytes(rx: UartRx, received: list):
    """A process that appends every byte `rx` offers to `received`."""

    async def process(ctx):
        async for _, _, valid, payload in ctx.tick().sample(rx.o.valid, rx.o.payload):
            if valid:
                received.append(payload)

    return process


async def drive_line(ctx, line, values, cycles_per_bit: float):
    """Drive `values` as 8N1 at a possibly fractional `cycles_per_bit` (to model rate error)."""
    edges = [round(i * cycles_per_bit) for i in range(11)]
    for value in values:
        for bit, begin, end in zip(serial_bits(value), edges, edges[1:], strict=False):
            ctx.set(line, bit)
            await ctx.tick().repeat(end - begin)


@pytest.mark.parametrize("divisor", [4, 7, 16])
def test_tx_output_is_8n1_at_divisor_cycles_per_bit(divisor):
    tx = UartTx(divisor)
    sent = [0x00, 0xFF, 0xA5, 0x3C]
    levels = []

    async def testbench(ctx):
        for value in sent:
            ctx.set(tx.i.payload, value)
            ctx.set(tx.i.valid, 1)
            await ctx.tick().until(tx.i.ready)
        ctx.set(tx.i.valid, 0)
        for _ in range(12 * divisor):
            await ctx.tick()

    async def probe(ctx):
        async for _, _, level in ctx.tick().sample(tx.tx):
            levels.append(level)

    run(tx, testbench, processes=[probe])
    # Decode the recorded line by sampling each bit in its middle.
    decoded, position = [], 0
    while len(decoded) < len(sent):
        position = levels.index(0, position)
        middles = [position + divisor // 2 + k * divisor for k in range(10)]
        bits = [levels[i] for i in middles]
        assert bits[0] == 0 and bits[9] == 1
        decoded.append(sum(bit << i for i, bit in enumerate(bits[1:9])))
        position = middles[9]
    assert decoded == sent


@pytest.mark.parametrize("rate_error", [-0.03, 0.0, 0.03])
def test_rx_decodes_bytes_sent_at_a_slightly_wrong_rate(rate_error):
    divisor = 16
    rx = UartRx(divisor)
    sent = [random.Random(7).randrange(256) for _ in range(12)]
    received = []

    async def testbench(ctx):
        await ctx.tick().repeat(5)
        await drive_line(ctx, rx.rx, sent, divisor * (1 + rate_error))
        await ctx.tick().repeat(2 * divisor)

    run(rx, testbench, processes=[record_bytes(rx, received)])
    assert received == sent


def test_rx_drops_a_byte_whose_stop_bit_is_low_and_recovers():
    divisor = 8
    rx = UartRx(divisor)
    received = []

    async def testbench(ctx):
        await ctx.tick().repeat(3)
        # 0x55 with a low stop bit, the line held low (a break), then a good 0x42.
        for bit in serial_bits(0x55)[:-1] + [0] * 3:
            ctx.set(rx.rx, bit)
            await ctx.tick().repeat(divisor)
        ctx.set(rx.rx, 1)
        await ctx.tick().repeat(2 * divisor)
        await drive_line(ctx, rx.rx, [0x42], divisor)
        await ctx.tick().repeat(2 * divisor)

    run(rx, testbench, processes=[record_bytes(rx, received)])
    assert received == [0x42]


def test_tx_into_rx_round_trips_random_bytes_with_gaps():
    divisor = 5
    m = Module()
    m.submodules.tx = tx = UartTx(divisor)
    m.submodules.rx = rx = UartRx(divisor)
    m.d.comb += rx.rx.eq(tx.tx)
    rng = random.Random(3)
    sent = [rng.randrange(256) for _ in range(40)]
    received = []

    async def testbench(ctx):
        for value in sent:
            await ctx.tick().repeat(rng.choice([1, 1, 2, 13]))
            ctx.set(tx.i.payload, value)
            ctx.set(tx.i.valid, 1)
            await ctx.tick().until(tx.i.ready)
            ctx.set(tx.i.valid, 0)
        await ctx.tick().repeat(12 * divisor)

    run(m, testbench, processes=[record_bytes(rx, received)])
    assert received == sent


def test_uart_divisor_rounds_clock_over_baud():
    assert uart_divisor(25e6, 115200) == 217
    assert uart_divisor(48e6, 115200) == 417


def test_uart_divisor_rejects_a_baud_rate_too_fast_for_the_clock():
    with pytest.raises(RtlgenError, match="too fast"):
        uart_divisor(25e6, 12_000_000)


def test_uart_divisor_rejects_a_baud_rate_more_than_2_percent_off():
    with pytest.raises(RtlgenError, match="off"):
        uart_divisor(25e6, 3_000_000)  # 25/3 = 8.33 cycles per bit -> 4 % error
