"""The parts of `OUTDIR/manifest.json` (format_version 1, docs/DESIGN.md) the board flows use.

The board flows see a converted network only through its files. Parsing and beat packing are
`rtlgen.sim_tb.tb_manifest`'s (one reader of the format); this module adds what the board flows
rely on beyond simulation: names that go into Tcl scripts, Verilog instances and file names
must be plain, and RTL files must lie inside OUTDIR. Problems become one-line `RtlgenError`s.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rtlgen.quant.errors import RtlgenError
from rtlgen.sim_tb import tb_manifest
from rtlgen.sim_tb.tb_manifest import ManifestError, StreamSpec

__all__ = ["StreamPort", "Manifest", "beat_bytes", "load_manifest"]

# One AXI4-Stream side of the network; `pack`/`unpack` give and take its tdata words.
StreamPort = StreamSpec

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def beat_bytes(port: StreamSpec) -> int:
    """Bytes that carry one beat's `tdata` (little-endian, padding bits zero)."""
    return math.ceil(port.tdata_width / 8)


@dataclass(frozen=True)
class Manifest:
    """A converted network as the board flows see it. `rtl` paths are relative to `outdir`."""

    outdir: Path
    top: str
    rtl: tuple[str, ...]
    clock: str
    reset: str
    reset_active_high: bool
    input: StreamSpec
    output: StreamSpec

    @property
    def tuser_width(self) -> int:
        return self.output.tuser_width

    @property
    def classes(self) -> int | None:
        return self.output.classes

    @property
    def rtl_paths(self) -> tuple[Path, ...]:
        return tuple(self.outdir / name for name in self.rtl)


def load_manifest(outdir: str | Path) -> Manifest:
    """Read and check `outdir/manifest.json`; also checks that every RTL file it lists exists."""
    outdir = Path(outdir)
    if not outdir.is_dir():
        raise RtlgenError(
            f"OUTDIR '{outdir}' does not exist (expected the output of `rtlgen convert`)"
        )
    if not (outdir / "manifest.json").is_file():
        raise RtlgenError(
            f"OUTDIR '{outdir}' has no manifest.json (expected the output of `rtlgen convert`)"
        )
    outdir = outdir.resolve()
    try:
        parsed = tb_manifest.load_manifest(outdir / "manifest.json")
    except ManifestError as error:
        raise RtlgenError(str(error)) from None
    where = "manifest.json"
    return Manifest(
        outdir=outdir,
        top=_identifier(parsed.top, f"{where}: top"),
        rtl=tuple(_rtl_name(path, outdir, where) for path in parsed.rtl),
        clock=_identifier(parsed.clock, f"{where}: clock"),
        reset=_identifier(parsed.reset, f"{where}: reset"),
        reset_active_high=parsed.reset_active_high,
        input=parsed.input,
        output=parsed.output,
    )


def _rtl_name(path: Path, outdir: Path, where: str) -> str:
    """`path` relative to `outdir`, as it goes into the Tcl scripts."""
    try:
        name = path.relative_to(outdir).as_posix()
    except ValueError:
        raise RtlgenError(f"{where}: RTL file '{path}' must be a path inside OUTDIR") from None
    if ".." in Path(name).parts:
        raise RtlgenError(f"{where}: RTL file '{name}' must be a path inside OUTDIR")
    if not re.fullmatch(r"[A-Za-z0-9_./-]+", name):
        raise RtlgenError(
            f"{where}: RTL file name '{name}' has characters other than A-Z a-z 0-9 _ . / -"
        )
    return name


def _identifier(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _IDENTIFIER.match(value):
        raise RtlgenError(
            f"{where} must be a plain identifier ([A-Za-z_][A-Za-z0-9_]*), found {value!r}"
        )
    return value
