"""SVHN study benchmark: the paper's CNN (arXiv 2101.05108) trained, converted, simulated.

Runs `rtlgen.study` (the same as `rtlgen bench svhn --quick`: the study as a sweep on a local
Dask cluster) and copies its results.json to benchmarks/results/svhn.json. The study's own
folder (default results/svhn) keeps spec.yml, the sweep's store (sweep/: trained models,
designs, simulations), results.md and plots; a re-run reuses every step already done.

    python benchmarks/bench_svhn.py                    # quick study -> results/svhn, benchmarks/results/svhn.json
    python benchmarks/bench_svhn.py --full             # every variant, simulated and synthesized (hours)
    python benchmarks/bench_svhn.py -o /tmp/svhn --json /tmp/svhn.json
    python benchmarks/bench_svhn.py --synth --only QP6 -o results/svhn-synth   # quick sizes + Yosys
    python benchmarks/bench_svhn.py --synth --only BP,QP6 --styles dsp -o results/svhn-synth

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

from rtlgen.study import DESIGN_STYLES, full_config, quick_config, run_study

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
    parser.add_argument(
        "--only",
        help="comma-separated variants, e.g. BF,QP6 (paper names; QP6* = conv-pool-BN order)",
    )
    parser.add_argument(
        "--no-peers", action="store_true", help="skip hls4ml and alkaid (their synthesis is long)"
    )
    parser.add_argument(
        "--styles",
        help="comma-separated design styles: dsp, lut, auto (the default multiplier mode), and each with -full (every layer fully parallel)",
    )
    parser.add_argument("--workers", type=int, default=2, help="local Dask workers of the sweep")
    args = parser.parse_args(argv)

    config = full_config() if args.full else quick_config()
    if args.synth:
        config = dataclasses.replace(
            config, name=f"{config.name}+synth", synthesize=True, synth_note=""
        )
    if args.only:
        # any variant of the full study, at this run's sizes; "QP6" is the tutorial's layer
        # order (conv-BN-ReLU-pool), "QP6*" the other one
        known = {v.key: v for v in (*full_config().variants, *config.variants)}
        named = {f"{v.short}{'' if v.bn_before_pool else '*'}": v for v in known.values()}
        wanted = args.only.split(",")
        unknown = [name for name in wanted if name not in named]
        if unknown:
            parser.error(f"--only: unknown variants {unknown} (known: {', '.join(sorted(named))})")
        config = dataclasses.replace(config, variants=tuple(named[name] for name in wanted))
    if args.styles:
        styles = tuple(args.styles.split(","))
        if not set(styles) <= set(DESIGN_STYLES):
            parser.error(f"--styles {args.styles}: choose from {', '.join(DESIGN_STYLES)}")
        config = dataclasses.replace(config, multipliers=styles)
    if args.no_peers:
        config = dataclasses.replace(config, hls4ml=False, alkaid=False)
    results = run_study(args.output, config, console=Console(), workers=args.workers)
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
