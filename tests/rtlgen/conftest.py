"""Shared fixtures of the command-line tests: one conversion of the demo CNN per test process."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.rtlgen.cli_run import DEMO_MODEL, DEMO_OPTIONS, rtlgen_in_process


@dataclass(frozen=True)
class Conversion:
    """A `rtlgen convert` as a user runs it: the design folder and what the command printed."""

    outdir: Path
    run: subprocess.CompletedProcess[str]


@pytest.fixture(scope="session")
def demo_conversion(tmp_path_factory) -> Conversion:
    """`rtlgen convert DEMO_MODEL -o OUTDIR DEMO_OPTIONS`, once per test process, for the tests
    that read a converted design (a test that changes it works on a copy). Run in this
    process (`rtlgen_in_process`: what it prints, to a stdout that is no terminal, as a
    user's log has it), not a second one: no second start and imports."""
    outdir = tmp_path_factory.mktemp("demo") / "design"
    run = rtlgen_in_process("convert", *DEMO_MODEL, "-o", outdir, *DEMO_OPTIONS)
    assert run.returncode == 0, run.stdout + run.stderr
    return Conversion(outdir, run)


@pytest.fixture(scope="session")
def demo_design(demo_conversion: Conversion) -> Path:
    """The design folder of `demo_conversion`."""
    return demo_conversion.outdir
