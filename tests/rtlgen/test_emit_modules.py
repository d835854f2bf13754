"""`rtlgen.emit.network_verilog`: large layer components become Verilog modules of their own,
converted in worker processes; the Verilog does not depend on how many. (Bit-exactness of
such a design in Verilator: tests/sim_tb/test_emit_modules_sim.py, slow.)"""

from __future__ import annotations

import re

import pytest

import rtlgen.emit as emit
from rtlgen.hardware import NetworkTop

from .nets import mlp


def _modules(text: str) -> list[str]:
    return re.findall(r"^module (\S+?)\s*\(", text, flags=re.MULTILINE)


@pytest.mark.slow  # the default run stays under 5 minutes
def test_same_verilog_for_any_number_of_workers_with_progress_per_module(monkeypatch):
    monkeypatch.setattr(emit, "SEPARATE_BITS", 0)  # every layer component on its own
    graph = mlp(seed=4)
    lines: list[str] = []
    texts = [
        emit.network_verilog(NetworkTop(graph), "net", jobs=1),
        emit.network_verilog(NetworkTop(graph), "net", jobs=2, progress=lines.append),
    ]
    assert texts[0] == texts[1]
    modules = _modules(texts[0])
    assert modules[0] == "net"
    separate = [m for m in modules if m.startswith("net__l")]
    total = sum(len(plan.stages) for plan in NetworkTop(graph).plans)
    assert len(separate) == total
    for name in separate:  # each separated module is instantiated once, in the top
        assert len(re.findall(rf"^\s+{name} \S+ \(", texts[0], flags=re.MULTILINE)) == 1
    assert len(lines) == total and lines[-1].endswith(f"({total}/{total})")
    assert all(line.startswith("Verilog of net__l") for line in lines)


def test_small_components_stay_in_the_top_large_ones_are_modules(monkeypatch):
    top = NetworkTop(mlp(seed=4))
    sizes = [emit._size(stage) for plan in top.plans for stage in plan.stages]
    threshold = sorted(sizes)[len(sizes) // 2] + 1
    expected = sum(size >= threshold for size in sizes)
    assert 0 < expected < len(sizes)
    monkeypatch.setattr(emit, "SEPARATE_BITS", threshold)
    text = emit.network_verilog(top, "net", jobs=1)
    assert len([m for m in _modules(text) if m.startswith("net__l")]) == expected


class YosysError(Exception):
    """Stands for amaranth's YosysError (matched by name, as `emit._yosys_memory` does)."""


def test_a_module_too_large_for_yosys_is_one_line_naming_it(monkeypatch):
    import pytest

    from rtlgen.quant.errors import UnsupportedError

    def out_of_memory(*_args, **_kwargs):
        raise YosysError("libc++abi: bad_alloc was thrown in -fno-exceptions mode ...")

    monkeypatch.setattr(emit, "SEPARATE_BITS", 0)
    # the MLP's MAC arrays and requantizers are text: its requantizers through Amaranth here
    import rtlgen.layers.requantize_verilog as requantize_verilog

    monkeypatch.setattr(emit, "_requantize_text", lambda _component: False)
    monkeypatch.setattr(requantize_verilog, "supported", lambda _component: False)
    monkeypatch.setattr(emit.verilog, "convert_fragment", out_of_memory)
    with pytest.raises(UnsupportedError, match=r"module net__l0_\S+: its netlist is too large for Yosys") as info:
        emit.network_verilog(NetworkTop(mlp(seed=4)), "net", jobs=1)
    assert "\n" not in str(info.value)


def test_other_yosys_errors_are_not_renamed(monkeypatch):
    import pytest

    def broken(*_args, **_kwargs):
        raise YosysError("ERROR: something else")

    monkeypatch.setattr(emit, "SEPARATE_BITS", 0)
    monkeypatch.setattr(emit.verilog, "convert_fragment", broken)
    with pytest.raises(YosysError, match="something else"):
        emit.network_verilog(NetworkTop(mlp(seed=4)), "net", jobs=1)


def _two_largest_separate(top: NetworkTop) -> int:
    """A SEPARATE_BITS that makes the two largest layer components modules of their own."""
    return sorted(emit._size(stage) for plan in top.plans for stage in plan.stages)[-2]


def _verilog_in_a_daemon(queue, separate_bits: int) -> None:
    emit.SEPARATE_BITS = separate_bits
    try:
        queue.put(emit.network_verilog(NetworkTop(mlp(seed=4)), "net", jobs=2))
    except BaseException as error:  # noqa: BLE001 - reported to the parent
        queue.put(repr(error))


def test_a_daemonic_worker_converts_in_its_own_process(monkeypatch):
    """A Dask or multiprocessing worker is daemonic and may not start processes: there the
    modules are converted one after another (the sweep's convert step ran into this)."""
    import multiprocessing

    separate_bits = _two_largest_separate(NetworkTop(mlp(seed=4)))
    monkeypatch.setattr(emit, "SEPARATE_BITS", separate_bits)
    expected = emit.network_verilog(NetworkTop(mlp(seed=4)), "net", jobs=1)
    assert len([m for m in _modules(expected) if m.startswith("net__l")]) == 2
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    worker = context.Process(
        target=_verilog_in_a_daemon, args=(queue, separate_bits), daemon=True
    )
    worker.start()
    text = queue.get(timeout=300)
    worker.join(timeout=60)
    assert text == expected


def test_the_jobs_option_reaches_the_verilog_step(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from rtlgen.cli import app
    from rtlgen.serialize import save_graph

    save_graph(mlp(sizes=(4, 3, 2), seed=4), tmp_path / "graph.npz")
    seen: list[int | None] = []
    convert_layers = emit.network_verilog

    def recording(top, name, jobs=None, progress=None, **options):
        seen.append(jobs)
        return convert_layers(top, name, jobs=jobs, progress=progress, **options)

    monkeypatch.setattr(emit, "network_verilog", recording)
    runner = CliRunner()
    for args, expected in ((["--jobs", "3"], 3), ([], None)):
        out = tmp_path / f"out{len(seen)}"
        result = runner.invoke(app, ["convert", str(tmp_path / "graph.npz"), "-o", str(out), *args])
        assert result.exit_code == 0, result.output
        assert seen[-1] == expected
    result = runner.invoke(app, ["convert", str(tmp_path / "graph.npz"), "-o", str(tmp_path / "x"), "--jobs", "0"])
    assert result.exit_code == 2 and "--jobs" in result.output


def test_a_separated_component_written_as_text_is_that_text_module(monkeypatch):
    """A component that elaborates to an instance of its own text module (a wide skid
    buffer, a serial MAC) is that text as its separated module: no Amaranth wrapper, no
    Yosys run. Any other is elaborated once and converted by Amaranth's back end."""
    from amaranth.hdl import unsigned

    from rtlgen.layers.stream_util import SkidBuffer, StreamFifo
    from rtlgen.layers.stream_verilog import skid_verilog

    skid = SkidBuffer(unsigned(600))
    converted = emit.verilog.convert_fragment

    def no_back_end(*_args, **_kwargs):
        raise AssertionError("converted by Amaranth's back end")

    monkeypatch.setattr(emit.verilog, "convert_fragment", no_back_end)
    assert emit._component_verilog(skid, "net__l0_x_1", True) == (
        skid_verilog(skid, "net__l0_x_1"),
        {},
    )
    monkeypatch.setattr(emit.verilog, "convert_fragment", converted)
    elaborations = []

    class CountedFifo(StreamFifo):
        def elaborate(self, platform):
            elaborations.append(platform)
            return super().elaborate(platform)

    fifo = CountedFifo(unsigned(8), 4)
    text, modules = emit._component_verilog(fifo, "net__l0_x_2", True)
    assert text.startswith("/* Generated by") and "module net__l0_x_2(" in text
    assert modules == {} and len(elaborations) == 1
