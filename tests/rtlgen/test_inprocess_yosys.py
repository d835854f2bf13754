"""`rtlgen.inprocess_yosys`: Amaranth's built-in Yosys run in this process gives the same
Verilog as its subprocess, the same errors, and falls back to the subprocess when it cannot
load."""

import pytest
from amaranth._toolchain.yosys import YosysError, _BuiltinYosys, find_yosys
from amaranth.back import verilog
from amaranth.hdl import Module, Signal

import rtlgen.inprocess_yosys as inprocess
from rtlgen.emit import network_verilog
from rtlgen.hardware import NetworkTop
from rtlgen.inprocess_yosys import inprocess_yosys

from .nets import mlp

pytestmark = pytest.mark.skipif(
    find_yosys(lambda version: True) is not _BuiltinYosys, reason="a system Yosys is used"
)


def _counter():
    m = Module()
    count, out = Signal(8), Signal(8)
    m.d.sync += count.eq(count + 1)
    m.d.comb += out.eq(count ^ 0x5A)
    return m, [out]


def _subprocess_runs(monkeypatch) -> list[int]:
    """Count the runs that go through Amaranth's own subprocess."""
    runs = []
    original = inprocess._ORIGINAL_RUN.__func__

    def counted(cls, *args, **kwargs):
        runs.append(1)
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(inprocess, "_ORIGINAL_RUN", classmethod(counted))
    return runs


def test_same_verilog_as_the_subprocess_and_no_subprocess(monkeypatch):
    module, ports = _counter()
    plain = verilog.convert(module, ports=ports)
    graph = mlp(seed=1)
    monkeypatch.setenv("RTLGEN_INPROCESS_YOSYS", "0")
    network = network_verilog(NetworkTop(graph), "net", jobs=1)
    monkeypatch.delenv("RTLGEN_INPROCESS_YOSYS")
    runs = _subprocess_runs(monkeypatch)
    with inprocess_yosys():
        assert verilog.convert(module, ports=ports) == plain
    assert network_verilog(NetworkTop(graph), "net", jobs=1) == network
    assert not runs


def test_a_yosys_error_is_reported_as_the_subprocess_reports_it():
    script = ["-q", "-"], "read_rtlil <<rtlil\nmodule broken\nrtlil\n"
    with pytest.raises(YosysError) as plain:
        _BuiltinYosys.run(*script)
    with inprocess_yosys(), pytest.raises(YosysError) as here:
        _BuiltinYosys.run(*script)
    assert str(here.value) == str(plain.value)


def test_falls_back_to_the_subprocess_when_the_module_cannot_load(monkeypatch, tmp_path):
    module, ports = _counter()
    plain = verilog.convert(module, ports=ports)
    blocked = tmp_path / "file"
    blocked.write_text("")
    monkeypatch.setenv("RTLGEN_CACHE_DIR", str(blocked))  # no folder can be made under it
    monkeypatch.setattr(inprocess, "_loaded", {})
    monkeypatch.setattr(inprocess, "_failed", set())
    runs = _subprocess_runs(monkeypatch)
    with inprocess_yosys():
        assert verilog.convert(module, ports=ports) == plain
    assert runs == [1]


def test_the_original_run_is_back_after_the_block_and_after_an_error():
    original = _BuiltinYosys.__dict__["run"]
    with pytest.raises(RuntimeError), inprocess_yosys():
        assert _BuiltinYosys.__dict__["run"] is not original
        with inprocess_yosys():  # re-entrant
            pass
        assert _BuiltinYosys.__dict__["run"] is not original
        raise RuntimeError
    assert _BuiltinYosys.__dict__["run"] is original
