"""Vivado scripts for a converted network: out-of-context build with reports, and IP packaging.

`write_vivado(outdir, ...)` writes `OUTDIR/vivado/` from `OUTDIR/manifest.json` alone:
`build.tcl`, `constraints.xdc`, `package_ip.tcl` and `README.md`. The scripts find the RTL
relative to their own location, so OUTDIR can be copied to the machine that has Vivado.
"""

from __future__ import annotations

import math
import re
import shutil
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import rtlgen
from rtlgen.manifest import writable_path
from rtlgen.quant.errors import RtlgenError

from .manifest import Manifest, load_manifest

__all__ = ["VivadoBoard", "VIVADO_BOARDS", "vivado_board", "check_part", "write_vivado"]


@dataclass(frozen=True)
class VivadoBoard:
    """A named Xilinx target: the part, and the clock a build aims at unless told otherwise."""

    name: str
    part: str
    clock_mhz: float
    description: str


VIVADO_BOARDS: dict[str, VivadoBoard] = {
    board.name: board
    for board in (
        VivadoBoard("pynq-z2", "xc7z020clg400-1", 100.0, "TUL PYNQ-Z2 (Zynq-7020)"),
        VivadoBoard("zcu102", "xczu9eg-ffvb1156-2-e", 200.0, "AMD ZCU102 (Zynq UltraScale+ ZU9EG)"),
        VivadoBoard(
            "vcu118", "xcvu9p-flga2104-2L-e", 200.0, "AMD VCU118 (Virtex UltraScale+ VU9P)"
        ),
        VivadoBoard("u250", "xcu250-figd2104-2L-e", 300.0, "AMD Alveo U250"),
        VivadoBoard(
            "paper-vu9p", "xcvu9p-flgb2104-2L-e", 200.0, "the VU9P part of the reference paper"
        ),
    )
}

# Xilinx part names: family+device+package, then speed grade and temperature/voltage fields.
_PART = re.compile(r"^x[a-z0-9]+(-[a-z0-9]+)+$", re.IGNORECASE)
_SUPPORTED = ", ".join(f"{b.name} ({b.part})" for b in VIVADO_BOARDS.values())


def vivado_board(name: str) -> VivadoBoard:
    """The preset called `name` (case and '_'/'-' insensitive), or a one-line `RtlgenError`."""
    key = name.strip().lower().replace("_", "-")
    if key not in VIVADO_BOARDS:
        raise RtlgenError(
            f"unknown Vivado board '{name}'; supported presets: {_SUPPORTED} "
            "(any other Xilinx part can be given with --part)"
        )
    return VIVADO_BOARDS[key]


def check_part(part: str) -> str:
    """Return `part` if it has the shape of a Xilinx part name (e.g. xc7z020clg400-1)."""
    if not isinstance(part, str) or not _PART.match(part):
        raise RtlgenError(
            f"Vivado part {part!r} does not look like a Xilinx part name (e.g. xc7z020clg400-1); "
            f"or use a board preset: {_SUPPORTED}"
        )
    return part


def write_vivado(
    outdir: str | Path,
    part: str | None = None,
    clock_mhz: float | None = None,
    board: str | None = None,
) -> Path:
    """Write `OUTDIR/vivado/` for `part` (or the `board` preset's part) and return its path.

    `clock_mhz` defaults to the board preset's clock, or 200 MHz for a bare part. Giving both
    `part` and `board` is allowed only if they agree. The directory is replaced as a whole: it
    is written to a temporary sibling first and renamed into place.
    """
    manifest = load_manifest(outdir)
    preset = vivado_board(board) if board is not None else None
    if part is None and preset is None:
        raise RtlgenError(f"give a Vivado part or a board preset; presets: {_SUPPORTED}")
    if part is not None:
        check_part(part)
        if preset is not None and part.lower() != preset.part.lower():
            raise RtlgenError(
                f"part '{part}' differs from board '{preset.name}' part '{preset.part}'; give one of them"
            )
    target_part = part if part is not None else preset.part  # type: ignore[union-attr]
    if clock_mhz is None:
        clock_mhz = preset.clock_mhz if preset is not None else 200.0
    if not (
        isinstance(clock_mhz, int | float) and math.isfinite(clock_mhz) and 0 < clock_mhz <= 1000
    ):
        raise RtlgenError(f"clock {clock_mhz!r} MHz is out of range (0, 1000]")

    files = {
        "build.tcl": _build_tcl(manifest, target_part, float(clock_mhz)),
        "constraints.xdc": constraints_xdc(manifest, float(clock_mhz)),
        "package_ip.tcl": _package_ip_tcl(manifest, target_part),
        "README.md": _readme(manifest, target_part, float(clock_mhz), preset),
    }
    final = writable_path(manifest.outdir, "vivado")  # not a symlink out of OUTDIR
    staging = Path(tempfile.mkdtemp(prefix=".vivado.", dir=manifest.outdir))
    staging.chmod(0o755)
    try:
        for name, text in files.items():
            (staging / name).write_text(text)
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final


def constraints_xdc(manifest: Manifest, clock_mhz: float) -> str:
    """The XDC: one clock on the manifest's clock port with period 1000/clock_mhz ns."""
    return (
        f"# Generated by rtlgen {rtlgen.__version__} for '{manifest.top}'.\n"
        "# Out-of-context build: only the clock is constrained; the ports connect to logic in a\n"
        "# larger design, not to pins.\n"
        f"create_clock -period {1000.0 / clock_mhz:.3f} -name {manifest.clock} "
        f"[get_ports {manifest.clock}]\n"
    )


def _preamble(manifest: Manifest, what: str) -> str:
    return (
        f"# Generated by rtlgen {rtlgen.__version__} for network '{manifest.top}': {what}.\n"
        "# Regenerate with rtlgen instead of editing.\n"
        f'set top "{manifest.top}"\n'
        f"set rtl_files {{{' '.join(manifest.rtl)}}}\n"
    )


def _template(name: str) -> str:
    """A script body; its first paragraph (a note about the template itself) is dropped."""
    text = resources.files("rtlgen.boards").joinpath(name).read_text()
    return text.split("\n\n", 1)[1]


def _build_tcl(manifest: Manifest, part: str, clock_mhz: float) -> str:
    return (
        _preamble(manifest, "out-of-context synthesis, place and route, reports")
        + f'set part "{part}"\n'
        + f"set clock_mhz {clock_mhz!r}\n"
        + "\n"
        + _template("vivado_build.tcl")
    )


def _package_ip_tcl(manifest: Manifest, part: str) -> str:
    return (
        _preamble(manifest, "Vivado IP with AXI4-Stream s_axis/m_axis")
        + f'set part "{part}"\n'
        + f'set clock_port "{manifest.clock}"\n'
        + f'set reset_port "{manifest.reset}"\n'
        + f"set reset_polarity {'ACTIVE_HIGH' if manifest.reset_active_high else 'ACTIVE_LOW'}\n"
        + f"set has_tuser {1 if manifest.tuser_width > 0 else 0}\n"
        + 'set ip_vendor "rtlgen"\n'
        + 'set ip_library "rtlgen"\n'
        + 'set ip_version "1.0"\n'
        + "\n"
        + _template("vivado_package_ip.tcl")
    )


def _readme(manifest: Manifest, part: str, clock_mhz: float, preset: VivadoBoard | None) -> str:
    target = f"{part} ({preset.description})" if preset is not None else part
    return f"""# Vivado scripts for `{manifest.top}`

Generated by rtlgen {rtlgen.__version__} for {target} at {clock_mhz:g} MHz.
The scripts read `../{", ../".join(manifest.rtl)}` relative to their own location, so the OUTDIR
can be copied anywhere. Run them from inside `vivado/` (as below, starting in OUTDIR) so
Vivado's own logs land there too.

## Out-of-context build and reports
```
cd vivado
vivado -mode batch -source build.tcl
```
Writes `reports/utilization.rpt`, `reports/utilization_hierarchical.rpt`,
`reports/timing_summary.rpt`, `reports/timing.json` (WNS, Fmax) and the routed checkpoint.
Fails (exit code 1) if timing is not met at {clock_mhz:g} MHz; Vivado itself would only warn.

## Package as an IP (AXI4-Stream `s_axis` in, `m_axis` out)
```
cd vivado
vivado -mode batch -source package_ip.tcl
```
Writes the IP to `ip/` (add it with `set_property ip_repo_paths <this dir>/ip [current_project]`).
Clock `{manifest.clock}` (ASSOCIATED_BUSIF s_axis:m_axis), reset `{manifest.reset}`
({"active high" if manifest.reset_active_high else "active low"}, synchronous).
`m_axis_tuser` carries the arg-max class with the last output beat.

To target another part or clock, regenerate: `write_vivado(OUTDIR, part=..., clock_mhz=...)`.
"""
