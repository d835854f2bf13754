"""The SVHN CNN's BN threshold banks synthesized alone: LUT levels and resources (issue 18).

The model is the benchmarks' SVHN CNN (benchmarks/svhn_models.py: 6-bit, 50 % pruned, conv-
pool-BN order) planned in the default mode, as bench_svhn_latency.py plans it; each named
`ThresholdBank` (a float BN folded into a quantized ReLU: 63 thresholds per channel, a
two-level search) is wrapped in a `Chain` and synthesized alone by `rtlgen.synth.synthesize`
(Yosys ``synth_xilinx -flatten -family xcup``, bench_svhn_latency's `_synthesize_part`).
The default SVHN design measured 8 LUT levels as a whole, its 42 x 63 bank (bn_dense_0)
alone 6: the deepest path was the coarse stage (a carry chain per comparator with a constant,
ABC9 lining up 4-6 LUTs around the chains, then the thermometer count); the comparators with
constants are LUT logic now.

    python benchmarks/bench_threshold_bank.py                       # bn_dense_0 and bn_conv_0
    python benchmarks/bench_threshold_bank.py --banks bn_conv_1     # any threshold layer

Writes benchmarks/results/threshold_bank.json (entries of other banks and ``history`` kept).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

RESULTS = Path(__file__).parent / "results" / "threshold_bank.json"

#: measured with the code before the coarse comparators became LUT logic (381c1ca~'s
#: layers/threshold.py: ``x >= t``), by this script's method; kept as history
HISTORY = {
    "label": "coarse comparators as `x >= t` (carry chains), before commit 381c1ca",
    "banks": {
        "bn_dense_0": {
            "luts": 4323,
            "ffs": 1431,
            "carry": 880,
            "lut_levels": 6,
            "latency_cycles": 3,
        },
        "bn_conv_0": {"luts": 2359, "ffs": 691, "carry": 448, "lut_levels": 7, "latency_cycles": 3},
        "bn_conv_1": {"luts": 1663, "ffs": 547, "carry": 336, "lut_levels": 5, "latency_cycles": 3},
        "bn_conv_2": {"luts": 2505, "ffs": 819, "carry": 503, "lut_levels": 6, "latency_cycles": 3},
        "bn_dense_1": {
            "luts": 6196,
            "ffs": 2115,
            "carry": 1343,
            "lut_levels": 7,
            "latency_cycles": 3,
        },
    },
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--banks", default="bn_dense_0,bn_conv_0", help="threshold layer names")
    parser.add_argument("--json", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    # the planned top's other components are never elaborated (Amaranth warns at exit)
    warnings.filterwarnings("ignore", message=".* created but never used")
    from bench_svhn_latency import _graph, _plan_figures, _synthesize_part, _threshold_banks

    from rtlgen.hardware import HardwareOptions

    _, _, graph = _graph()
    _, top = _plan_figures(graph, HardwareOptions())
    banks = _threshold_banks(top)
    names = [n for n in args.banks.split(",") if n]
    unknown = [n for n in names if n not in banks]
    if unknown:
        parser.error(f"--banks: {unknown} are not threshold layers (known: {', '.join(banks)})")
    report = json.loads(args.json.read_text()) if args.json.exists() else {}
    entries = report.get("banks", {})
    command = "python benchmarks/bench_threshold_bank.py " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    with tempfile.TemporaryDirectory(prefix="threshold_bank_") as tmp:
        for name in names:
            bank = banks[name]
            figures = _synthesize_part([bank], "threshold_bank", Path(tmp))
            entries[name] = {
                "channels": len(bank.thresholds),
                "thresholds": max(len(t) for t in bank.thresholds),
                "in_type": str(bank.in_type),
                "out_type": str(bank.out_type),
                "latency_cycles": bank.latency,
                "comparators": bank.comparators,
                **figures,
                "command": command.strip(),
            }
            print(
                f"{name}: {entries[name]['channels']} x {entries[name]['thresholds']} "
                f"{bank.in_type}: {figures['luts']} LUT, {figures['ffs']} FF, "
                f"{figures['lut_levels']} LUT levels, latency {bank.latency}",
                flush=True,
            )
    report = {
        "benchmark": "SVHN CNN BN threshold banks synthesized alone",
        "yosys": "synth_xilinx -flatten -family xcup -noiopad -noclkbuf (rtlgen.synth.synthesize)",
        "target": "<= 6 LUT levels per bank alone (issue 18: the default SVHN design measured 8)",
        "banks": dict(sorted(entries.items())),
        "history": report.get("history", [HISTORY]),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
