"""cocotb side of test_bridge.py: plays a host on `rx`, records what comes back on `tx`.

Environment: RTLGEN_UART_DIVISOR (clock cycles per bit), RTLGEN_UART_EXCHANGES (JSON list of
{"send": hex bytes, "idle_cycles": n} sent in order, waiting n idle cycles before each),
RTLGEN_UART_RESPONSE_BYTES (bytes to collect in all), RTLGEN_UART_RECEIVED (JSON file written
with {"received": hex}).
"""

import json
import os

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge, with_timeout

DIVISOR = int(os.environ["RTLGEN_UART_DIVISOR"])


async def send_byte(dut, value):
    for bit in [0] + [(value >> i) & 1 for i in range(8)] + [1]:
        dut.rx.value = bit
        await ClockCycles(dut.clk, DIVISOR)


async def receive_bytes(dut, count, received):
    while len(received) < count:
        await FallingEdge(dut.tx)  # start bit
        await ClockCycles(dut.clk, DIVISOR // 2)
        assert int(dut.tx.value) == 0, "start bit too short"
        value = 0
        for bit in range(8):
            await ClockCycles(dut.clk, DIVISOR)
            value |= int(dut.tx.value) << bit
        await ClockCycles(dut.clk, DIVISOR)
        assert int(dut.tx.value) == 1, "stop bit missing"
        received.append(value)


@cocotb.test()
async def uart_exchanges(dut):
    exchanges = json.loads(os.environ["RTLGEN_UART_EXCHANGES"])
    expected_bytes = int(os.environ["RTLGEN_UART_RESPONSE_BYTES"])
    Clock(dut.clk, 10, unit="ns").start()
    dut.rx.value = 1
    dut.rst.value = 1
    await ClockCycles(dut.clk, 5)
    dut.rst.value = 0
    await RisingEdge(dut.clk)

    received = []
    receiver = cocotb.start_soon(receive_bytes(dut, expected_bytes, received))
    for exchange in exchanges:
        await ClockCycles(dut.clk, exchange["idle_cycles"])
        for value in bytes.fromhex(exchange["send"]):
            await send_byte(dut, value)
    await with_timeout(receiver, 100 * DIVISOR * 10 * max(expected_bytes, 1), "ns")
    with open(os.environ["RTLGEN_UART_RECEIVED"], "w") as file:
        json.dump({"received": bytes(received).hex()}, file)
    for _ in range(30 * DIVISOR):  # nothing more may follow: the line stays idle
        await RisingEdge(dut.clk)
        assert int(dut.tx.value) == 1, "unexpected extra bytes on tx"
