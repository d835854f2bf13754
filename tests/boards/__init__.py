"""Tests of rtlgen.boards; the stand-in network is `tests/sim_tb/dut.py`'s `ChannelSumDut`."""
