"""Bulk simulation with the compiled C++ harness (issue 17): build time and images/s after the
build, for the demo CNN and the SVHN QP6 design (6-bit, 50 % pruned, random weights).

    python benchmarks/bench_sim_harness.py                      # demo 10,000 + SVHN 10,000 images
    python benchmarks/bench_sim_harness.py --svhn-images 0      # demo only
    python benchmarks/bench_sim_harness.py --profile            # + SVHN instructions per layer
    -> benchmarks/results/sim_harness.json

Per design: `rtlgen convert` time, the integer reference's time, the harness's Verilator build
from an empty cache (no run-time objects cached either: what a new machine pays), then one
`simulate(..., harness="cpp")` of all images with the build cached. images/s is given three
ways: over the C++ loop's wall time (`seconds` of sim_result.json), over its processor time
(`cpu_seconds`: what the run gets on an idle core; the machine is shared, so wall time
depends on the load, recorded as `load_average` before the build and after the run), and over
the whole `simulate` call (writing the vectors, the run, the checks in numpy). The build is
given in wall and processor seconds (Verilator and the compiler, all jobs together).
`total_seconds` = convert + reference + build + simulate: the issue's "10,000 images including
the build" figure. Each run moves the figures it replaces into `history` (with their load
average and the commit that wrote them), so a comparison with earlier runs stays honest.

Where valgrind is installed, the built binary also runs under cachegrind (2 and 4 images): the
x86 instructions one simulated cycle executes, a figure the machine's load does not change,
and with the processor time the instructions per second one core sustains on this code; so a
missed target is given as "instructions per cycle now vs. what the target allows"
(`target_gap`). `--profile` adds the SVHN design's instructions per layer and module, from a
`--prof-cfuncs` build (`profile_by_layer`).

`--jobs N` measures instead the run split over processes (`simulate(..., jobs=n)`, shards of
contiguous images, one harness process each) for n = 1 and n = N, build cached (the default
build root), and writes `results/sim_harness_jobs.json` (`measure_jobs`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from rtlgen.api import load_model
from rtlgen.emit import convert
from rtlgen.quant.reference import quantize_input, run_int
from rtlgen.sim_tb.harness_cpp import _verilator_args, build_harness, run_harness
from rtlgen.sim_tb.runner import simulate
from rtlgen.sim_tb.tb_manifest import read_manifest

RESULTS = Path(__file__).parent / "results"
TARGETS = {"demo": 10_000, "svhn_qp6": 1_000}  # images/s after the build (issue 17)
#: images of the two runs under valgrind that count instructions per cycle (this many, twice this)
INSTRUCTION_IMAGES = 2
#: images of the --profile run (a --prof-cfuncs build under valgrind)
PROFILE_IMAGES = 3
#: one C++ function per Verilog statement, named by its line, and kept out of line (g++ would
#: inline most of them into their caller, where their instructions lose their name)
PROFILE_ARGS = (
    "--prof-cfuncs",
    "-CFLAGS",
    "-fno-inline-small-functions",
    "-CFLAGS",
    "-fno-inline-functions-called-once",
)
#: the fields of a replaced result kept in `history`
HISTORY_FIELDS = (
    "verilog_bytes",
    "threads",
    "verilator_args",
    "images",
    "passed",
    "convert_seconds",
    "build_seconds_empty_cache",
    "build_cpu_seconds_empty_cache",
    "load_average_build",
    "run_seconds_cpu",
    "images_per_second_cpu",
    "images_per_second_wall",
    "total_seconds",
    "load_average",
    "instructions_per_cycle",  # valgrind's count: the figure the load does not change
    "rows",  # --jobs
)


def _demo_graph():
    from rtlgen.demo import demo_files

    model_json, weights, samples = demo_files()
    with np.load(samples) as data:
        graph = load_model(model_json, weights=weights, input_type=str(data["input_type"]))
    return graph, "demo CNN (rtlgen demo: 8x8x1 -> conv, pool, conv, dense 10, softmax)"


def _svhn_graph():
    sys.path.insert(0, str(Path(__file__).parent))
    from svhn_models import svhn_model_files

    json_path, weights_path = svhn_model_files(bits=6, sparsity=0.5)
    graph = load_model(json_path, weights=weights_path, input_type="fixed<16,6>")
    return graph, "SVHN CNN QP6 (6-bit, 50% pruned, random weights), input fixed<16,6>"


def _inputs(name: str, graph, images: int) -> np.ndarray:
    if name == "svhn_qp6":
        from rtlgen.datasets import synthetic_svhn

        x, _ = synthetic_svhn(images, seed=3)
        return quantize_input(graph, x)
    t = graph.input.out_type  # the demo: random mantissas over the whole input range
    rng = np.random.default_rng(3)
    return rng.integers(t.min_int, t.max_int + 1, size=(images, *graph.input_shape))


def _cachegrind(manifest, build_dir: Path, x_int, y_int, out: Path) -> tuple[dict, dict]:
    """Run the harness under valgrind's cachegrind (instruction counts only); return the run's
    sim_result and {function: instructions}."""
    wrapper = ["valgrind", "--tool=cachegrind", "--cache-sim=no", f"--cachegrind-out-file={out}"]
    name = manifest.outputs[0].name
    result = run_harness(
        manifest,
        build_dir,
        x_int=x_int,
        y_int={name: y_int},
        results_dir=out.parent,
        wrapper=wrapper,
    )
    counts: dict[str, int] = {}
    function = "?"
    for line in out.read_text().splitlines():
        if line.startswith("fn="):
            function = line[3:]
        elif line[:1].isdigit():
            fields = line.split()
            counts[function] = counts.get(function, 0) + int(fields[-1])
    return result, counts


def instructions_per_cycle(manifest, build_dir: Path, x_int, y_int, tmp: Path) -> dict | None:
    """x86 instructions one simulated cycle executes (valgrind's count, independent of the
    load): two runs of different lengths, so the build's start-up and reset cancel out."""
    if shutil.which("valgrind") is None:
        return None
    runs = []
    for count in (INSTRUCTION_IMAGES, 2 * INSTRUCTION_IMAGES):
        out = tmp / f"cachegrind_{count}" / "cachegrind.out"
        out.parent.mkdir(parents=True, exist_ok=True)
        result, counts = _cachegrind(manifest, build_dir, x_int[:count], y_int[:count], out)
        if not result["passed"]:
            raise RuntimeError(f"the run under valgrind failed: {result['report']}")
        runs.append((result["cycles"], sum(counts.values())))
    (cycles_a, instructions_a), (cycles_b, instructions_b) = runs
    return {
        "instructions_per_cycle": round((instructions_b - instructions_a) / (cycles_b - cycles_a)),
        "instruction_count_images": [INSTRUCTION_IMAGES, 2 * INSTRUCTION_IMAGES],
        "instruction_count_tool": "valgrind --tool=cachegrind --cache-sim=no (Ir)",
    }


def _module_lines(paths) -> dict[str, list[tuple[int, str]]]:
    """{Verilog file stem: [(first line, module name)]} of every module, in line order."""
    starts = {}
    for path in paths:
        rows = []
        for number, line in enumerate(Path(path).read_text().splitlines(), 1):
            if line.startswith("module "):
                rows.append((number, line.split()[1].split("(")[0].lstrip("\\")))
        starts[Path(path).stem] = rows
    return starts


def _layer_of(module: str, top: str) -> str:
    """The graph layer a module belongs to (`svhn_cnn__l6_conv_2_2` -> conv_2), else `top`."""
    found = re.search(r"(?:^|[_.])l\d+_(.+?)_(?:\d+|skid)(?:[.(]|$)", module)
    return found.group(1) if found else f"{top} (wiring, skid buffers, arg-max)"


def profile_by_layer(manifest, build_root: Path, x_int, y_int, tmp: Path, jobs=None) -> dict:
    """Where a simulated cycle's instructions go: a build with Verilator's --prof-cfuncs (one
    C++ function per Verilog statement, named by its source line, PROFILE_ARGS)
    run under cachegrind, instructions summed per module and per layer. The profiled build runs
    more instructions than the real one (a call per statement): the shares are what counts."""
    build_dir = build_harness(manifest, build_root, jobs=jobs, extra_args=PROFILE_ARGS)
    out = tmp / "profile" / "cachegrind.out"
    out.parent.mkdir(parents=True, exist_ok=True)
    result, counts = _cachegrind(manifest, build_dir, x_int, y_int, out)
    modules = _module_lines(manifest.rtl_paths)
    by_module: dict[str, int] = {}
    for function, count in counts.items():
        found = re.search(r"__PROF__(.+)__l(\d+)\b", function)
        if found is None or found.group(1) not in modules:
            module = "(harness, Verilator's scheduler, libraries)"
        else:
            line = int(found.group(2))
            module = max((r for r in modules[found.group(1)] if r[0] <= line), default=(0, "?"))[1]
        by_module[module] = by_module.get(module, 0) + count
    total = sum(by_module.values())
    by_layer: dict[str, int] = {}
    for module, count in by_module.items():
        layer = module if module.startswith("(") else _layer_of(module, manifest.top)
        by_layer[layer] = by_layer.get(layer, 0) + count

    def shares(table: dict[str, int]) -> dict[str, float]:
        ranked = sorted(table.items(), key=lambda item: -item[1])
        return {
            name: round(100 * count / total, 1) for name, count in ranked if count >= total / 500
        }

    return {
        "method": "Verilator --prof-cfuncs build run under valgrind --tool=cachegrind; "
        "percent of executed x86 instructions",
        "images": len(x_int),
        "cycles": result["cycles"],
        "instructions_per_cycle_prof_build": round(total / result["cycles"]),
        "by_layer_percent": shares(by_layer),
        "by_module_percent": shares(by_module),
    }


def measure(name: str, images: int, tmp: Path, profile: bool = False) -> dict:
    """One design through `rtlgen sim`'s C++ harness (single-threaded: `simulate` builds the
    plain model; `--threads 2` measured slower here, see `harness_cpp`)."""
    graph, description = _demo_graph() if name == "demo" else _svhn_graph()
    start = time.perf_counter()
    design = convert(graph, tmp / name)
    convert_seconds = time.perf_counter() - start
    x_int = _inputs(name, graph, images)
    start = time.perf_counter()
    y_int = run_int(graph, x_int)
    reference_seconds = time.perf_counter() - start
    build_root = tmp / f"cache_{name}"
    manifest = read_manifest(design.outdir)
    load_build = [round(v, 2) for v in os.getloadavg()]
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    build_harness(manifest, build_root, object_cache=tmp / f"objcache_{name}")
    build_seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    build_cpu = (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
    start = time.perf_counter()
    # one process, as the history's figures (simulate's default splits large runs: --jobs)
    result = simulate(design.outdir, x_int, y_int, build_root=build_root, harness="cpp", jobs=1)
    simulate_seconds = time.perf_counter() - start
    written = json.loads((result.results_dir / "sim_result.json").read_text())
    cpu = written["cpu_seconds"]
    build_dir = build_harness(manifest, build_root)  # cached
    per_cycle = instructions_per_cycle(manifest, build_dir, x_int, y_int, tmp / f"count_{name}")
    cost: dict = {}
    if per_cycle is not None and cpu > 0:
        # what one core sustains on this code, and what the target would allow per cycle
        rate = per_cycle["instructions_per_cycle"] * result.cycles / cpu
        allowed = rate / (TARGETS[name] * result.ii_cycles) if result.ii_cycles else None
        cost = {
            **per_cycle,
            "instructions_per_image": per_cycle["instructions_per_cycle"] * result.ii_cycles,
            "instructions_per_second_cpu": round(rate),
            "instructions_per_cycle_for_target": round(allowed) if allowed else None,
            "target_factor_short": round(TARGETS[name] / (images / cpu), 2),
        }
        if cost["target_factor_short"] > 1:
            cost["target_gap"] = (
                f"{cost['instructions_per_cycle']:,} x86 instructions per simulated cycle x "
                f"{result.ii_cycles:,} cycles per image = {cost['instructions_per_image'] / 1e6:.0f}M "
                f"per image; one core ran {rate / 1e9:.1f}G instructions/s on this code -> "
                f"{images / cpu:.0f} images/s; {TARGETS[name]:,} images/s needs at most "
                f"{cost['instructions_per_cycle_for_target']:,} per cycle "
                f"({cost['target_factor_short']}x fewer) on one process; `rtlgen sim` splits "
                "a large run over the usable CPUs: see sim_harness_jobs.json (--jobs N)"
            )
    if profile:
        cost["profile"] = profile_by_layer(
            manifest, build_root, x_int[:PROFILE_IMAGES], y_int[:PROFILE_IMAGES], tmp / name
        )
    return {
        "design": description,
        "ports": {
            "input_tdata_bits": manifest.input.tdata_width,
            "output_tdata_bits": manifest.output.tdata_width,
        },
        "verilog_bytes": sum(path.stat().st_size for path in manifest.rtl_paths),
        "threads": 1,
        "verilator_args": " ".join(_verilator_args(1)),
        "images": images,
        "passed": result.passed,
        "report": result.report,
        "latency_cycles": result.latency_cycles,
        "manifest_latency_cycles": manifest.latency_cycles,
        "ii_cycles": result.ii_cycles,
        "manifest_ii_cycles": manifest.ii_cycles,
        "cycles": result.cycles,
        "convert_seconds": round(convert_seconds, 2),
        "reference_seconds": round(reference_seconds, 2),
        "build_seconds_empty_cache": round(build_seconds, 1),
        "build_cpu_seconds_empty_cache": round(build_cpu, 1),
        "load_average_build": load_build,
        "run_seconds_wall": round(result.seconds, 3),
        "run_seconds_cpu": round(cpu, 3),
        "simulate_seconds": round(simulate_seconds, 2),
        "images_per_second_wall": round(images / result.seconds, 1),
        "images_per_second_cpu": round(images / cpu, 1) if cpu > 0 else None,
        "images_per_second_simulate": round(images / simulate_seconds, 1),
        "cycles_per_second_wall": round(result.cycles / result.seconds),
        "target_images_per_second": TARGETS[name],
        "total_seconds": round(
            convert_seconds + reference_seconds + build_seconds + simulate_seconds, 1
        ),
        "load_average": [round(v, 2) for v in os.getloadavg()],
        **cost,
    }


def measure_jobs(name: str, images: int, tmp: Path, jobs: int, repeats: int = 1) -> dict:
    """`simulate(..., harness="cpp", jobs=n)` for n = 1 and n = `jobs` on the cached build:
    images per wall second (the shards' C++ loops, `seconds`, and the whole `simulate` call),
    processor seconds (all shards' loops together, `cpu_seconds`) and the load average;
    `repeats` rounds of both, interleaved (the load drifts), and the median per n."""
    graph, description = _demo_graph() if name == "demo" else _svhn_graph()
    design = convert(graph, tmp / f"{name}_jobs")
    x_int = _inputs(name, graph, images)
    y_int = run_int(graph, x_int)
    simulate(design.outdir, x_int[:2], y_int[:2], harness="cpp", jobs=1)  # the build: untimed
    rows = []
    for repeat, n in [(r, n) for r in range(repeats) for n in sorted({1, jobs})]:
        load = [round(v, 2) for v in os.getloadavg()]
        start = time.perf_counter()
        result = simulate(design.outdir, x_int, y_int, harness="cpp", jobs=n)
        wall = time.perf_counter() - start
        written = json.loads((result.results_dir / "sim_result.json").read_text())
        rows.append(
            {
                "jobs": n,
                "repeat": repeat,
                "shards": written.get("shards", 1),
                "passed": result.passed,
                "report": result.report,
                "run_seconds_wall": round(result.seconds, 3),
                "run_seconds_cpu": round(written["cpu_seconds"], 3),
                "simulate_seconds": round(wall, 2),
                "images_per_second_wall": round(images / result.seconds, 1),
                "images_per_second_simulate": round(images / wall, 1),
                "images_per_second_cpu": round(images / written["cpu_seconds"], 1),
                "load_average_before": load,
                "load_average_after": [round(v, 2) for v in os.getloadavg()],
            }
        )
        print(json.dumps({name: rows[-1]}), flush=True)
    return {
        "design": description,
        "images": images,
        "target_images_per_second": TARGETS[name],
        "median_images_per_second_wall": {
            str(n): float(np.median([r["images_per_second_wall"] for r in rows if r["jobs"] == n]))
            for n in sorted({1, jobs})
        },
        "rows": rows,
    }


def _history(path: Path) -> list[dict]:
    """The results `path` holds now (the figures this run replaces) on top of its history."""
    if not path.is_file():
        return []
    old = json.loads(path.read_text())
    commit = subprocess.run(
        ["git", "log", "-1", "--format=%h %cs", "--", path.name],
        cwd=path.parent,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    entry: dict = {"commit": commit or None, "command": old.get("command")}
    entry.update({k: old[k] for k in ("code", "note") if k in old})  # --jobs runs' remarks
    for name in TARGETS:
        if name in old:
            entry[name] = {k: old[name][k] for k in HISTORY_FIELDS if k in old[name]}
    designs = any(name in entry for name in TARGETS)
    return [entry, *old.get("history", [])] if designs else old.get("history", [])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo-images", type=int, default=10_000)
    parser.add_argument("--svhn-images", type=int, default=10_000)
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also build the SVHN design with --prof-cfuncs and give instructions per layer",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=0,
        help="measure the run split over 1 and JOBS processes instead (-> sim_harness_jobs.json)",
    )
    parser.add_argument("--repeats", type=int, default=1, help="--jobs: interleaved rounds")
    parser.add_argument("-o", "--output", type=Path, default=None)
    args = parser.parse_args()
    if args.output is None:
        args.output = RESULTS / ("sim_harness_jobs.json" if args.jobs else "sim_harness.json")
    out: dict = {
        "benchmark": "sim_harness",
        "command": "python " + shlex.join(["benchmarks/bench_sim_harness.py", *sys.argv[1:]]),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
    }
    history = _history(args.output)
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        for name, images in (("demo", args.demo_images), ("svhn_qp6", args.svhn_images)):
            if images > 0:
                profile = args.profile and name == "svhn_qp6"
                if args.jobs:
                    out[name] = measure_jobs(name, images, tmp, args.jobs, args.repeats)
                else:
                    out[name] = measure(name, images, tmp, profile=profile)
                print(json.dumps({name: out[name]}, indent=2), flush=True)
                args.output.parent.mkdir(parents=True, exist_ok=True)  # after each design
                args.output.write_text(json.dumps({**out, "history": history}, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
