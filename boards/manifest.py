"""A converted network as the board flows see it: `rtlgen.manifest`, plus the UART beat size.

The board flows see a converted network only through its files, read by the one manifest
reader (`rtlgen.manifest.read_manifest`). It already checks what the board flows rely on:
names that go into Tcl scripts, Verilog instances and file names are plain identifiers, RTL
paths are relative, made of A-Z a-z 0-9 _ . - and lie inside OUTDIR. Problems are one-line
`RtlgenError`s.
"""

from __future__ import annotations

import math
from pathlib import Path

from rtlgen.manifest import Manifest, StreamSpec, read_manifest

__all__ = ["StreamPort", "Manifest", "beat_bytes", "load_manifest"]

# One AXI4-Stream side of the network; `pack`/`unpack` give and take its tdata words.
StreamPort = StreamSpec


def beat_bytes(port: StreamSpec) -> int:
    """Bytes that carry one beat's `tdata` (little-endian, padding bits zero)."""
    return math.ceil(port.tdata_width / 8)


def load_manifest(outdir: str | Path) -> Manifest:
    """Read and check `outdir/manifest.json` (`rtlgen.manifest.read_manifest`)."""
    return read_manifest(outdir)
