# amaranth: UnusedElaboratable=no
"""`layers/lookup_verilog.py`: the Verilog text of a table activation's ROMs is formally
equivalent (Yosys `equiv_make` / `equiv_induct` after `memory`: every input and every state of
the paired registers) to the Verilog Amaranth's back end writes for the same `LookupTable`, on
odd tables: 1- to 12-bit inputs, signed and unsigned, 1- to 12-bit outputs, 1 to 5 lanes (an
odd count: the last ROM has one read port), latency 1 and 2, logic and block-RAM ROMs; and a
text with one wrong table word fails the proof. (Whole networks with text tables: the
Verilator tests of tests/rtlgen/ops/test_lut_activation.py.)"""

from __future__ import annotations

import numpy as np
import pytest

from rtlgen.emit import component_verilog
from rtlgen.layers.lookup import LookupTable
from rtlgen.layers.lookup_verilog import lookup_verilog, supported
from rtlgen.quant.fixed import FixedType

from .test_mac_verilog import equivalent

# (input type, output type, lanes, latency)
TABLES = {
    "1-bit-signed-in-1-lane": (FixedType(1, 0, True), FixedType(3, 0, True), 1, 1),
    "1-bit-unsigned-in-out-2-lanes": (FixedType(1, 0, False), FixedType(1, 0, False), 2, 2),
    "3-bit-3-lanes": (FixedType(3, 1, True), FixedType(4, 2, False), 3, 1),
    "7-bit-5-lanes-latency-2": (FixedType(7, 3, True), FixedType(5, 1, True), 5, 2),
}
# tables of 512 words and more: seconds of proof each
WIDE_TABLES = {
    "9-bit-unsigned-4-lanes": (FixedType(9, 4, False), FixedType(8, 6, True), 4, 1),
    "10-bit-block-3-lanes": (FixedType(10, 6, True), FixedType(11, 9, True), 3, 2),
    # (an 11-bit unsigned block table with 12-bit words took 350 s of Yosys: the 12-bit case
    # covers the block ROM at latency 1, the 10-bit one at latency 2)
    "12-bit-block-5-lanes": (FixedType(12, 8, True), FixedType(2, 0, True), 5, 1),
}


def random_table(in_type: FixedType, out_type: FixedType, lanes: int, latency: int, seed: int):
    rng = np.random.default_rng(seed)
    table = rng.integers(out_type.min_int, out_type.max_int + 1, size=1 << in_type.width)
    return LookupTable(table, in_type, out_type, lanes, latency=latency, rom=True)


def check_equivalent(table: LookupTable, tmp_path) -> None:
    assert supported(table)
    ok, status = equivalent(
        component_verilog(table, "gold"), lookup_verilog(table, "gate"), tmp_path
    )
    assert ok, status[-3000:]
    assert "0 are unproven" in status, status[-3000:]


@pytest.mark.parametrize("name", TABLES)
def test_text_module_is_equivalent_to_amaranths(name, tmp_path):
    check_equivalent(random_table(*TABLES[name], seed=len(name)), tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", WIDE_TABLES)
def test_text_module_is_equivalent_to_amaranths_on_wide_tables(name, tmp_path):
    check_equivalent(random_table(*WIDE_TABLES[name], seed=len(name)), tmp_path)


def test_tables_of_case_statements_stay_on_amaranth():
    table = LookupTable(np.zeros(16, dtype=np.int64), FixedType(4, 0), FixedType(3, 0), 2)
    assert not table.rom and not supported(table)


def test_the_check_finds_a_wrong_table_word(tmp_path):
    table = random_table(FixedType(7, 3, True), FixedType(5, 1, True), 3, 1, seed=3)
    text = lookup_verilog(table, "gate")
    word = table.by_address()[77]
    old = f"rom1[77] = 5'h{word & 31:x};"
    assert old in text
    wrong = text.replace(old, f"rom1[77] = 5'h{(word + 1) & 31:x};")
    ok, _ = equivalent(component_verilog(table, "gold"), wrong, tmp_path)
    assert not ok
