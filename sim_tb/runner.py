"""Simulate a converted design (OUTDIR) in Verilator through cocotb, bit for bit.

Talks to the design only through its files: OUTDIR/manifest.json, the Verilog it lists, and
the vectors given here. Builds are cached per design hash (see `tb_run`) under `build_root`,
by default `$RTLGEN_CACHE_DIR/verilator`, else `$XDG_CACHE_HOME/rtlgen/verilator`, else
`~/.cache/rtlgen/verilator` (the Verilator run-time objects are always cached in that default
root's `objcache/`, also when `build_root` is given); each simulation writes its files to OUTDIR/sim/ (x_int.npy,
y_int.npy, sim_out.npy, sim_result.json, results.xml, sim.log, dump.vcd with waves).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rtlgen.quant.errors import RtlgenError

from . import icarus
from .harness_cpp import build_harness, choose_harness, default_jobs, run_harness, shard_bounds
from .icarus import SIMULATORS
from .netlist import NETLISTS, netlist_manifest
from .tb_manifest import (
    ManifestError,
    check_vectors,
    describe_mismatch,
    input_arrays,
    output_arrays,
    read_manifest,
    writable_path,
)
from .tb_run import SimulationError, StepProgress, build, run, silent_step

# What a simulation writes into OUTDIR/sim/ (see the module docstring).
SIM_FILES = (
    "x_int.npy", "x_int.npz", "y_int.npy", "y_int.npz", "sim_out.npy", "sim_out.npz", "sim_result.json",
    "results.xml", "sim.log", "dump.vcd", "dump.fst",
)

__all__ = ["Mismatch", "SimResult", "SimulationError", "default_build_root", "simulate"]


@dataclass(frozen=True)
class Mismatch:
    """The first output element that differs: sample number, index inside the sample's
    output shape, expected and actual mantissas and their raw tdata bit patterns (hex)."""

    sample: int
    index: tuple[int, ...]
    expected: int
    actual: int
    expected_raw: str
    actual_raw: str

    def __str__(self) -> str:
        return describe_mismatch({**self.__dict__, "index": list(self.index)})


@dataclass(frozen=True)
class SimResult:
    """Outcome of one simulation (the fields of sim_result.json, see docs/DESIGN.md).

    `passed` is true only if every output element matched, tlast and tuser were right on
    every sample, no extra beats came out and the design did not time out; `report` says
    why not in one line. `mismatches` counts samples with any differing element.
    `latency_cycles` (worst sample: first input handshake to last output handshake) and
    `ii_cycles` (largest gap between first input beats; None for one sample) are the
    design's full-rate figures only when `timing_under_backpressure` is false.
    """

    passed: bool
    report: str
    images: int
    mismatches: int
    mismatched_elements: int
    first_mismatch: Mismatch | None
    tlast_errors: int
    tuser_errors: int
    extra_beats: int
    error: str | None
    latency_cycles: int | None
    ii_cycles: int | None
    timing_under_backpressure: bool
    input_stalled: bool
    cycles: int
    seconds: float
    cycles_per_second: float | None
    backpressure: float
    seed: int
    results_dir: Path
    build_dir: Path
    waves_file: Path | None
    #: the first output's mantissas (N, *shape), as the design delivered them
    y_sim: np.ndarray = field(repr=False, compare=False)
    #: every output's mantissas by output name (the manifest's `outputs` order)
    y_sim_outputs: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)
    #: per output (sim_result.json's `outputs`): name, mismatches, mismatched_elements,
    #: first_mismatch, tlast_errors, tuser_errors, extra_beats, latency_cycles (worst
    #: sample, on this master), manifest_latency_cycles, ii_cycles
    outputs: tuple[dict, ...] = field(default=(), compare=False)
    #: processes the run was split over (the C++ harness's shards, `simulate(jobs=...)`)
    shards: int = 1

    @property
    def out_path(self) -> Path:
        """The design's outputs as saved by the simulation: sim_out.npy (int64), or
        sim_out.npz with one array per output name for a design with several outputs."""
        several = len(self.y_sim_outputs) > 1
        return self.results_dir / ("sim_out.npz" if several else "sim_out.npy")


def default_build_root() -> Path:
    """Where Verilator builds are cached when `simulate` gets no `build_root`."""
    if os.environ.get("RTLGEN_CACHE_DIR"):
        return Path(os.environ["RTLGEN_CACHE_DIR"]) / "verilator"
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "rtlgen" / "verilator"


def simulate(
    outdir: str | Path,
    x_int: np.ndarray,
    y_int: np.ndarray,
    backpressure: float = 0.0,
    seed: int = 0,
    waves: bool = False,
    build_root: str | Path | None = None,
    progress: StepProgress | None = None,
    harness: str = "auto",
    simulator: str = "verilator",
    netlist: str | None = None,
    jobs: int | None = None,
) -> SimResult:
    """Stream x_int (N, *input.shape) through OUTDIR's design and compare with y_int
    (N, *output.shape), or for a design with several outputs {output name: array} (several
    inputs: x_int is {input name: array}, each slave with its own random gaps).

    `backpressure` in [0, 1) is the probability of an idle input cycle and, independently,
    of a low tready cycle on each output master (independent patterns), drawn from `seed`. A mismatch is returned, not raised
    (check `passed`). Raises RtlgenError for a missing/bad manifest or vectors that do not
    fit it, SimulationError (one line naming the log) when the build fails or the simulator
    crashes. `progress(message)` (e.g. `rtlgen.progress.step`) is entered around the
    Verilator build, when one is needed, and around the simulation run.
    `harness`: "cocotb" (tb_network: Python drives every cycle), "cpp" (harness_cpp: a
    compiled testbench for large runs, Verilator only, no waves) or "auto" (cpp from
    harness_cpp.AUTO_MIN_SAMPLES samples when it can).

    `simulator`: "verilator" or "icarus" (Icarus Verilog, `sim_tb/icarus.py`; a run it would
    take too long for is refused with a SimulationError); its waves go to sim/dump.fst.
    `netlist`: None (the generated Verilog) or "generic"/"xilinx": simulate the design's
    Yosys-synthesized netlist instead (`sim_tb/netlist.py`).
    `jobs`: processes the C++ harness splits the samples over (contiguous shards, merged and
    checked as one run: same outputs and report; see `harness_cpp.run_harness`); None: the
    usable CPUs, at most one per `harness_cpp.MIN_SHARD_SAMPLES` samples (`default_jobs`).
    The cocotb harness runs one process: jobs > 1 with `harness="cocotb"` or Icarus is an
    RtlgenError (with "auto", when it picks cocotb, jobs does not apply).
    """
    outdir = Path(outdir)
    if simulator not in SIMULATORS:
        raise RtlgenError(f"simulator {simulator!r} is not supported (use one of {', '.join(SIMULATORS)})")
    if netlist is not None and netlist not in NETLISTS:
        raise RtlgenError(f"netlist {netlist!r} is not supported (use one of {', '.join(NETLISTS)})")
    if not 0.0 <= backpressure < 1.0:
        raise RtlgenError(f"backpressure {backpressure} must be in [0, 1)")
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise RtlgenError(f"jobs {jobs!r} must be a whole number >= 1")
    if jobs is not None and jobs > 1 and (harness == "cocotb" or simulator != "verilator"):
        raise RtlgenError(
            f"--jobs {jobs} needs the C++ harness (--harness cpp or auto, Verilator); "
            "the cocotb harness runs one process"
        )
    try:
        manifest = read_manifest(outdir)
        check_vectors(manifest, x_int, y_int)
        # the simulation writes these; a planted symlink must not redirect them out of OUTDIR
        for name in SIM_FILES:
            writable_path(manifest.outdir, f"sim/{name}")
    except ManifestError as error:
        raise RtlgenError(str(error)) from None
    results_dir = manifest.outdir / "sim"
    results_dir.mkdir(parents=True, exist_ok=True)
    expected = output_arrays(manifest, y_int)
    several = len(expected) > 1
    inputs = input_arrays(manifest, x_int)
    x_path = results_dir / ("x_int.npz" if len(inputs) > 1 else "x_int.npy")
    y_path = results_dir / ("y_int.npz" if several else "y_int.npy")
    if len(inputs) > 1:
        np.savez(x_path, **{k: np.asarray(v, dtype=np.int64) for k, v in inputs.items()})
    else:
        np.save(x_path, np.asarray(next(iter(inputs.values())), dtype=np.int64))
    if several:
        np.savez(y_path, **{k: np.asarray(v, dtype=np.int64) for k, v in expected.items()})
    else:
        np.save(y_path, np.asarray(next(iter(expected.values())), dtype=np.int64))
    samples = len(next(iter(inputs.values())))
    root = build_root or default_build_root()
    try:
        chosen = choose_harness(harness, samples, waves, simulator)
    except ValueError as error:
        raise RtlgenError(str(error)) from None
    if simulator == "icarus":  # refuse before any synthesis or build
        icarus.require_iverilog()
        icarus.check_size(manifest, samples, backpressure)
    built = manifest if netlist is None else netlist_manifest(manifest, netlist, root, progress=progress)
    if chosen == "cpp":  # compiled testbench (harness_cpp): no Python per cycle
        build_dir = build_harness(
            built, root, object_cache=default_build_root() / "objcache", progress=progress
        )
        shards = len(shard_bounds(samples, default_jobs(samples) if jobs is None else jobs))
        processes = f", {shards} processes" if shards > 1 else ""
        with (progress or silent_step)(
            f"simulating {samples} samples (C++ harness{processes})"
        ) as note:
            result = run_harness(
                manifest, build_dir, x_int=inputs, y_int=expected, results_dir=results_dir,
                backpressure=backpressure, seed=seed, jobs=shards,
                note=note if callable(note) else None,
            )
    elif simulator == "icarus":
        build_dir = icarus.build(built, root, waves=waves, progress=progress)
    else:
        # The run-time library objects are the same for every design: share them across build roots.
        build_dir = build(
            built,
            root,
            waves=waves,
            object_cache=default_build_root() / "objcache",
            progress=progress,
        )
    if chosen != "cpp":
        with (progress or silent_step)(f"simulating {samples} samples"):
            result = run(
                manifest,
                build_dir,
                x_path=x_path,
                y_path=y_path,
                results_dir=results_dir,
                backpressure=backpressure,
                seed=seed,
                waves=waves,
                simulator=simulator,
            )
    first = result["first_mismatch"]
    if several:
        with np.load(results_dir / "sim_out.npz", allow_pickle=False) as arrays:
            y_sim_outputs = {name: arrays[name] for name in expected}
    else:
        y_sim_outputs = {next(iter(expected)): np.load(results_dir / "sim_out.npy")}
    return SimResult(
        passed=result["passed"],
        report=result["report"],
        images=result["images"],
        mismatches=result["mismatches"],
        mismatched_elements=result["mismatched_elements"],
        first_mismatch=None
        if first is None
        else Mismatch(
            sample=first["sample"],
            index=tuple(first["index"]),
            expected=first["expected"],
            actual=first["actual"],
            expected_raw=first["expected_raw"],
            actual_raw=first["actual_raw"],
        ),
        tlast_errors=result["tlast_errors"],
        tuser_errors=result["tuser_errors"],
        extra_beats=result["extra_beats"],
        error=result["error"],
        latency_cycles=result["latency_cycles"],
        ii_cycles=result["ii_cycles"],
        timing_under_backpressure=result["timing_under_backpressure"],
        input_stalled=result["input_stalled"],
        cycles=result["cycles"],
        seconds=result["seconds"],
        cycles_per_second=result["cycles_per_second"],
        backpressure=result["backpressure"],
        seed=result["seed"],
        results_dir=results_dir.resolve(),
        build_dir=build_dir,
        waves_file=(results_dir / ("dump.fst" if simulator == "icarus" else "dump.vcd")).resolve()
        if waves
        else None,
        y_sim=next(iter(y_sim_outputs.values())),
        y_sim_outputs=y_sim_outputs,
        outputs=tuple(result.get("outputs", ())),
        shards=int(result.get("shards", 1)),
    )
