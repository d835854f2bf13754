"""A design whose every layer component is a separately converted Verilog module
(`rtlgen.emit.network_verilog`) is bit-exact in Verilator under backpressure, with the
predicted latency and II."""

from __future__ import annotations

import re

import pytest

import rtlgen.emit as emit
from rtlgen.quant.reference import run_int
from rtlgen.sim_tb import simulate

from ..rtlgen.nets import conv_net, random_inputs

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("backpressure", [0.0, 0.4])
def test_separate_modules_bit_exact_in_verilator(backpressure, tmp_path, build_root, monkeypatch):
    monkeypatch.setattr(emit, "SEPARATE_BITS", 0)
    graph = conv_net(h=7, w=6, seed=1)
    design = emit.convert(graph, tmp_path / "design", jobs=2)
    assert re.search(rf"^module {design.top}__l0_", design.verilog.read_text(), re.MULTILINE)
    x = random_inputs(graph, 4, 0)
    result = simulate(design.outdir, x, run_int(graph, x), backpressure=backpressure, seed=0,
                      build_root=build_root)
    assert result.passed, result.report
    assert result.mismatches == 0 and result.images == 4
    if backpressure == 0.0:
        assert result.latency_cycles == design.manifest.latency_cycles
        assert result.ii_cycles == design.manifest.ii_cycles
