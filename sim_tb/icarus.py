"""Icarus Verilog as a second simulator for the same cocotb testbench (`tb_network`).

`build(manifest, build_root)` compiles the manifest's Verilog with `iverilog` through cocotb's
runner (`get_runner("icarus")`) into `<build_root>/<key>/sim.vvp`; `tb_run.run(...,
simulator="icarus")` then runs the same test on it. Builds are cached like Verilator's (same
root, same 20-hex-digit key naming and `rtlgen_build.json` marker, so `rtlgen cache` lists and
clears them); the key hashes the Verilog, the top, the iverilog and cocotb versions and waves.

Icarus interprets the design event by event: the demo CNN streamed about 90 cycles/s under
cocotb on a loaded 2-core machine (Verilator with cocotb: thousands), and the cost grows with
the design. `check_size` estimates the run time from the manifest (multipliers, adders, FIFO
bytes, and the cycles the samples need) and refuses, in one line, a run that would take longer
than `MAX_ESTIMATED_SECONDS` (or `$RTLGEN_ICARUS_MAX_SECONDS`), instead of leaving the user
waiting for hours.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from .tb_manifest import Manifest
from .tb_run import (
    _RUNNER_UNSET,
    BUILD_KEY_CHARS,
    BUILD_MARKER,
    TIMESCALE,
    SimulationError,
    StepProgress,
    _first_error,
    _lock,
    _version,
    environ,
    prune,
    silent_step,
)

SIMULATORS = ("verilator", "icarus")
# cocotb's runner compiles with -g2012 (SystemVerilog). Under IEEE 1800 a variable's declaration
# initializer (`reg x = 0;`) runs before any process and triggers no event, so the
# `always @*` blocks of Yosys-written Verilog whose inputs never change after time 0 (a
# `casez (step)` decoder with `step` held in reset) never run and stay X; Yosys relies on the
# Verilog-2005 reading (the initializer is an assignment at time 0, an event), which
# `-g2005` (given after cocotb's `-g2012`, the last one wins) restores.
LANGUAGE_ARGS = ("-g2005",)
_DUMP_MODULE = """module rtlgen_iverilog_dump();
  reg [8*4096:1] path;
  initial begin
    if ($value$plusargs("dumpfile_path=%s", path)) $dumpfile(path);
    else $dumpfile("dump.fst");
    $dumpvars(0, {top});
  end
endmodule
"""
CACHE_VERSION = 1
SIM_FILE = "sim.vvp"  # what cocotb's Icarus runner writes into the build folder
INSTALL_HINT = "install Icarus Verilog (Debian/Ubuntu: apt-get install -y iverilog)"

# Run-time model of Icarus on rtlgen's designs: seconds ~ cycles * (BASE + PER_UNIT * units),
# units = multipliers + adders + FIFO bytes (`design_units`). Fitted on a loaded 2-core machine
# (2026-12-03, cocotb 2.1, Icarus 11; seconds per streamed cycle): conv_net 83 units 6.2e-3,
# demo CNN 127 units 1.1e-2, a 32-64-32-10 MLP 4,653 units 0.25; a quiet machine is 2-4x faster.
SECONDS_PER_CYCLE_BASE = 1e-3
SECONDS_PER_CYCLE_PER_UNIT = 2e-5
MAX_ESTIMATED_SECONDS = 900.0
LIMIT_VARIABLE = "RTLGEN_ICARUS_MAX_SECONDS"  # overrides MAX_ESTIMATED_SECONDS


def iverilog_version() -> str | None:
    """The first line of `iverilog -V`, or None when iverilog is not installed."""
    exe = shutil.which("iverilog")
    if exe is None or shutil.which("vvp") is None:
        return None
    try:
        proc = subprocess.run([exe, "-V"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = (proc.stdout or proc.stderr).splitlines()
    return lines[0].strip() if lines else "unknown"


def require_iverilog() -> str:
    version = iverilog_version()
    if version is None:
        raise SimulationError(f"--simulator icarus: iverilog/vvp not found on PATH; {INSTALL_HINT}")
    return version


def design_units(manifest: Manifest) -> int:
    """A size figure of the design for the run-time estimate: arithmetic units plus FIFO bytes."""
    fifo_bits = sum(fifo.depth * fifo.width for fifo in manifest.fifos)
    totals = manifest.totals
    return int(totals.multipliers + totals.adders + fifo_bits // 8)


def estimated_cycles(manifest: Manifest, samples: int) -> int:
    """Clock cycles to stream `samples` samples at full rate (latency + II per sample)."""
    beats = max(
        [spec.beats_per_sample for spec in (*manifest.inputs, *manifest.outputs)]
    )
    ii = max(manifest.ii_cycles or 0, beats, 1)
    return int((manifest.latency_cycles or 0) + ii * samples + 100)


def estimated_seconds(manifest: Manifest, samples: int, backpressure: float = 0.0) -> float:
    cycles = estimated_cycles(manifest, samples) / (1.0 - backpressure)
    per_cycle = SECONDS_PER_CYCLE_BASE + SECONDS_PER_CYCLE_PER_UNIT * design_units(manifest)
    return cycles * per_cycle


def check_size(
    manifest: Manifest,
    samples: int,
    backpressure: float = 0.0,
    limit: float | None = None,
) -> float:
    """Raise SimulationError (one line) when Icarus would take longer than `limit` seconds
    (default: $RTLGEN_ICARUS_MAX_SECONDS, else MAX_ESTIMATED_SECONDS); return the estimate
    otherwise."""
    if limit is None:
        override = os.environ.get(LIMIT_VARIABLE, "")
        try:
            limit = float(override) if override else MAX_ESTIMATED_SECONDS
        except ValueError:
            raise SimulationError(f"${LIMIT_VARIABLE} is {override!r}, not a number of seconds") from None
    seconds = estimated_seconds(manifest, samples, backpressure)
    if seconds > limit:
        cycles = estimated_cycles(manifest, samples)
        raise SimulationError(
            f"--simulator icarus: {manifest.top} is too big for Icarus with {samples} samples "
            f"(about {seconds / 60:.0f} min estimated: {design_units(manifest)} multipliers, "
            f"adders and FIFO bytes over {cycles} cycles; the limit is {limit / 60:.0f} min); "
            f"simulate fewer samples, use --simulator verilator, or raise ${LIMIT_VARIABLE}"
        )
    return seconds


def build_key(
    manifest: Manifest, sources: Sequence[Path], version: str, *, waves: bool = False
) -> str:
    digest = hashlib.sha256()
    settings = {
        "simulator": "icarus",
        "cache": CACHE_VERSION,
        "args": LANGUAGE_ARGS,
        "top": manifest.top,
        "timescale": TIMESCALE,
        "waves": waves,
        "cocotb": _version("cocotb"),
        "iverilog": version,
    }
    digest.update(json.dumps(settings, sort_keys=True).encode())
    for file in sources:
        digest.update(file.name.encode() + b"\0")
        digest.update(file.read_bytes() + b"\0")
    return digest.hexdigest()[:BUILD_KEY_CHARS]


def build(
    manifest: Manifest,
    build_root: str | Path,
    *,
    waves: bool = False,
    progress: StepProgress | None = None,
) -> Path:
    """Compile (or reuse) the Icarus simulation of `manifest`'s Verilog (`manifest.rtl_paths`);
    return its folder. A failed compile raises SimulationError with one line."""
    from cocotb_tools.runner import get_runner

    version = require_iverilog()
    sources = list(manifest.rtl_paths)
    key = build_key(manifest, sources, version, waves=waves)
    build_root = Path(build_root).resolve()
    build_dir = build_root / key
    marker = build_dir / BUILD_MARKER
    with _lock(build_root / f"{key}.lock"):
        if marker.is_file() and (build_dir / SIM_FILE).is_file():
            os.utime(marker)
            return build_dir
        if build_dir.exists():
            shutil.rmtree(build_dir)
        build_dir.mkdir(parents=True)
        log = build_dir / "build.log"
        build_args = list(LANGUAGE_ARGS)
        if waves:  # a dump module of our own: cocotb's needs SystemVerilog (see LANGUAGE_ARGS)
            dump = build_dir / "rtlgen_iverilog_dump.v"
            dump.write_text(_DUMP_MODULE.format(top=manifest.top))
            sources.append(dump)
            build_args += ["-s", "rtlgen_iverilog_dump"]
        runner = get_runner("icarus")
        step = progress or silent_step
        try:
            with step(f"compiling {manifest.top} for Icarus Verilog"), environ({}, _RUNNER_UNSET):
                runner.build(
                    sources=sources,
                    hdl_toplevel=manifest.top,
                    build_dir=build_dir,
                    build_args=build_args,
                    timescale=TIMESCALE,
                    log_file=log,
                )
        except (RuntimeError, SystemExit, OSError) as error:
            raise SimulationError(
                f"Icarus build of {manifest.top} failed: {_first_error(log, error)}; "
                f"full log: {log}"
            ) from None
        if not (build_dir / SIM_FILE).is_file():
            raise SimulationError(
                f"Icarus build of {manifest.top} wrote no {SIM_FILE}: "
                f"{_first_error(log, None)}; full log: {log}"
            )
        marker.write_text(
            json.dumps({"top": manifest.top, "key": key, "waves": waves, "simulator": "icarus"})
            + "\n"
        )
    prune(build_root)
    return build_dir
