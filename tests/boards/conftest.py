import shutil
from pathlib import Path

import pytest

from tests.sim_tb import dut as sim_dut


@pytest.fixture(scope="session")
def dut():
    """The stand-in network module (tests/sim_tb/dut.py)."""
    return sim_dut


@pytest.fixture(scope="session")
def standin_outdir(tmp_path_factory) -> Path:
    """A read-only OUTDIR for the stand-in network (top `chansum`); copy it before writing into it."""
    outdir = tmp_path_factory.mktemp("standin")
    sim_dut.write_outdir(outdir)
    return outdir


@pytest.fixture
def outdir(tmp_path, standin_outdir) -> Path:
    """A fresh, writable OUTDIR for the stand-in network."""
    return Path(shutil.copytree(standin_outdir, tmp_path / "out"))
