"""`rtlgen.lean_netlist`: the cell-level comb-cycle check gives the same Verilog and still
finds every combinational cycle, with Amaranth's own message."""

import contextlib

import numpy as np
import pytest
from amaranth.back import rtlil
from amaranth.hdl import Module, Signal
from amaranth.hdl._nir import CombinationalCycle, Netlist

import rtlgen.emit as emit
import rtlgen.lean_netlist as lean_module
from rtlgen.emit import network_verilog
from rtlgen.hardware import NetworkTop
from rtlgen.layers.common import Multiplier
from rtlgen.layers.constant_mac import ConstantMatVec
from rtlgen.lean_netlist import lean_netlist, supported
from rtlgen.quant.fixed import FixedType

from .nets import conv_net, mlp

pytestmark = pytest.mark.skipif(not supported(), reason="written for Amaranth 0.5")


def _bits_feeding_each_other():
    """A signal whose bit 1 reads its bit 0: cells in a cycle, bits not."""
    m = Module()
    a, s, y = Signal(), Signal(2), Signal()
    m.d.comb += [s[0].eq(a), s[1].eq(s[0]), y.eq(s[1])]
    return m, [a, y]


def _a_real_cycle():
    m = Module()
    a, b, y = Signal(4), Signal(4), Signal(4)
    m.d.comb += [a.eq(b + y), b.eq(a[1:] ^ 1)]
    return m, [y]


def test_same_verilog_for_a_mac_array_networks_and_legal_cell_loops(monkeypatch):
    rng = np.random.default_rng(0)
    mac = ConstantMatVec(
        rng.integers(-31, 32, size=(12, 7)), FixedType(8, 0, False), FixedType(24, 0, True),
        multiplier=Multiplier.AUTO,
    )
    exact_checks = []
    original = lean_module._ORIGINAL_CHECK
    monkeypatch.setattr(lean_module, "_ORIGINAL_CHECK", lambda nl: (exact_checks.append(1), original(nl)))
    for make, falls_back in ((lambda: (mac, None), False), (_bits_feeding_each_other, True)):
        module, ports = make()
        plain = rtlil.convert(module, ports=ports)
        with lean_netlist():
            assert rtlil.convert(module, ports=ports) == plain
        assert bool(exact_checks) == falls_back  # the cell loop goes to Amaranth's own check
        exact_checks.clear()
    for graph in (mlp(seed=1), conv_net(h=6, w=6)):
        lean = network_verilog(NetworkTop(graph), "net", jobs=1)  # lean inside
        with monkeypatch.context() as patch:
            patch.setattr(emit, "lean_netlist", contextlib.nullcontext)
            assert network_verilog(NetworkTop(graph), "net", jobs=1) == lean


def test_a_combinational_cycle_is_still_reported_as_amaranth_reports_it():
    module, ports = _a_real_cycle()
    with pytest.raises(CombinationalCycle) as plain:
        rtlil.convert(module, ports=ports)
    module, ports = _a_real_cycle()
    with lean_netlist(), pytest.raises(CombinationalCycle) as lean:
        rtlil.convert(module, ports=ports)
    assert str(lean.value) == str(plain.value)


def test_the_original_check_is_back_after_the_block_and_after_an_error():
    original = Netlist.check_comb_cycles
    with lean_netlist():
        assert Netlist.check_comb_cycles is not original
        with lean_netlist():  # re-entrant
            pass
        assert Netlist.check_comb_cycles is not original
    assert Netlist.check_comb_cycles is original
    with pytest.raises(RuntimeError), lean_netlist():
        raise RuntimeError
    assert Netlist.check_comb_cycles is original
