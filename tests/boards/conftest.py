import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent


def _load_dut():
    # Loaded under a unique name: other test folders have their own `dut.py`.
    name = "rtlgen_tests_boards_dut"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, HERE / "dut.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="session")
def dut():
    """The stand-in network module (tests/boards/dut.py)."""
    return _load_dut()


@pytest.fixture(scope="session")
def standin_outdir(tmp_path_factory, dut) -> Path:
    """A read-only OUTDIR for the stand-in network; copy it before writing into it."""
    return dut.write_outdir(tmp_path_factory.mktemp("standin"))


@pytest.fixture
def outdir(tmp_path, standin_outdir) -> Path:
    """A fresh, writable OUTDIR for the stand-in network."""
    return Path(shutil.copytree(standin_outdir, tmp_path / "out"))
