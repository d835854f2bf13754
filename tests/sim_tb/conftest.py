"""Shared fixtures: one Verilator build cache per session and the test designs of `dut.py`."""

from __future__ import annotations

from pathlib import Path

import pytest

from . import dut


@pytest.fixture(scope="session")
def build_root(tmp_path_factory, request) -> Path:
    """Verilator build cache shared by the session's tests (each design is built once), and
    by the xdist workers of one run: builds are keyed by content and locked, so the second
    worker to need the test DUT's simulator waits for the first instead of building it again."""
    if not hasattr(request.config, "workerinput"):  # no xdist
        return tmp_path_factory.mktemp("verilator_cache")
    shared = tmp_path_factory.getbasetemp().parent / "verilator_cache"
    shared.mkdir(exist_ok=True)
    return shared


def _outdir(tmp_path_factory, name: str, **options) -> Path:
    outdir = tmp_path_factory.mktemp(name)
    dut.write_outdir(outdir, **options)
    return outdir


@pytest.fixture(scope="session")
def chansum_outdir(tmp_path_factory) -> Path:
    """Correct ChannelSumDut, one output beat: latency 5, II 4."""
    return _outdir(tmp_path_factory, "chansum")


@pytest.fixture(scope="session")
def two_beat_outdir(tmp_path_factory) -> Path:
    """Correct ChannelSumDut, two output beats per sample and 2 idle input cycles: latency 6, II 6."""
    return _outdir(tmp_path_factory, "two_beat", out_beats=2, gap_cycles=2)


@pytest.fixture(scope="session")
def faulty_outdir(tmp_path_factory) -> Path:
    """ChannelSumDut with data-triggered faults (dut.FAULT_*)."""
    return _outdir(tmp_path_factory, "faulty", faulty=True)
