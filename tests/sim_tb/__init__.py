"""Tests of rtlgen.sim_tb; `dut.py` holds small contract-obeying designs others may reuse."""
