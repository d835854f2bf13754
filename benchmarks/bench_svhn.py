"""SVHN study benchmark: the paper's CNN (arXiv 2101.05108) trained, converted, simulated.

Runs `rtlgen.study` (the same as `rtlgen bench svhn --quick`) and copies its results.json
to benchmarks/results/svhn.json. The study's own folder (default results/svhn) keeps the
trained models, designs, results.md and plots; a re-run reuses the trained models and the
Verilator builds.

    python benchmarks/bench_svhn.py                    # quick study -> results/svhn, benchmarks/results/svhn.json
    python benchmarks/bench_svhn.py --full             # every variant, simulated and synthesized (hours)
    python benchmarks/bench_svhn.py -o /tmp/svhn --json /tmp/svhn.json
    python benchmarks/bench_svhn.py --synth --only QP6 -o results/svhn-synth   # quick sizes + Yosys

Data: synthetic_svhn unless RTLGEN_SVHN_DIR points at the real SVHN .mat files.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
from pathlib import Path

from rich.console import Console

from rtlgen.study import full_config, quick_config, run_study

RESULTS = Path(__file__).parent / "results" / "svhn.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--full", action="store_true", help="the full study instead of the quick one"
    )
    parser.add_argument(
        "-o", "--output", type=Path, default=Path("results/svhn"), help="study folder"
    )
    parser.add_argument("--json", type=Path, default=RESULTS, help="where to copy results.json")
    parser.add_argument(
        "--synth", action="store_true", help="also synthesize (the quick study does not)"
    )
    parser.add_argument("--only", help="comma-separated variants to run, e.g. QP6,BF (paper names)")
    args = parser.parse_args(argv)

    config = full_config() if args.full else quick_config()
    if args.synth:
        config = dataclasses.replace(
            config, name=f"{config.name}+synth", synthesize=True, synth_note=""
        )
    if args.only:
        wanted = set(args.only.split(","))
        variants = tuple(v for v in config.variants if v.short in wanted)
        if not variants:
            parser.error(
                f"--only {args.only}: no such variant in {[v.short for v in config.variants]}"
            )
        config = dataclasses.replace(config, variants=variants)
    results = run_study(args.output, config, console=Console())
    args.json.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(args.output / "results.json", args.json)
    summary = results["summary"]
    print(
        json.dumps(
            {
                "json": str(args.json),
                "total_seconds": results["timings"]["total_seconds"],
                **summary,
            },
            indent=1,
        )
    )
    agreement = summary.get("rtl_reference_agreement")
    return 0 if agreement in (None, 1.0) else 1


if __name__ == "__main__":
    sys.exit(main())
