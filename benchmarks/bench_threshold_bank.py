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
    python benchmarks/bench_threshold_bank.py --banks bn_dense_1 --result-beats 2,4,8

A bank taking a dense's result beats (the default plan's bn_dense_1: 4 beats of 16) is
synthesized both ways for its planned beats and each of ``--result-beats``: the
`ChunkedThresholdBank` (every element's comparators, a mux per lane after them) and the
`BeatThresholdBank` (one beat's lanes, thresholds picked by the beat: what the planner
builds).

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
    parser.add_argument(
        "--result-beats",
        default="",
        help="beat counts (comma-separated) at which a bank taking result beats is also "
        "synthesized both ways (its planned beats always)",
    )
    parser.add_argument(
        "--every",
        type=int,
        default=1,
        help="for a bank taking result beats: keep every k-th threshold of each element "
        "(levels 0, 1, ...): a coarser quantizer's bank of the same elements",
    )
    parser.add_argument("--json", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    # the planned top's other components are never elaborated (Amaranth warns at exit)
    warnings.filterwarnings("ignore", message=".* created but never used")
    from bench_svhn_latency import _graph, _plan_figures, _synthesize_part, _threshold_banks

    from rtlgen.hardware import HardwareOptions
    from rtlgen.layers.threshold import ThresholdBank

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
    extra_beats = [int(b) for b in args.result_beats.split(",") if b]
    with tempfile.TemporaryDirectory(prefix="threshold_bank_") as tmp:
        for name in names:
            bank = banks[name]
            if not isinstance(bank, ThresholdBank):  # taking result beats
                inner, key = bank.bank, f"{name}_in_beats"
                if args.every > 1:  # every k-th threshold: a coarser quantizer's bank
                    inner, key = _every(inner, args.every), f"{name}_every{args.every}_in_beats"
                entries[key] = _beat_banks(inner, bank, extra_beats, Path(tmp), command.strip())
                print(f"{key}: {json.dumps(entries[key]['beat_lut_saving'])}", flush=True)
                continue
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


def _every(bank, k: int):
    """``bank`` with every ``k``-th threshold of each element, levels 0, 1, ..."""
    from rtlgen.layers.threshold import ThresholdBank

    thresholds = [ts[k - 1 :: k] for ts in bank.thresholds]
    levels = [list(range(len(ts) + 1)) for ts in thresholds]
    bank._MustUse__used = True  # replaced, never elaborated
    return ThresholdBank(bank.in_type, bank.out_type, thresholds, levels)


def _beat_banks(bank, planned, extra_beats: list[int], work: Path, command: str) -> dict:
    """``bank`` taking result beats (``planned``: the stage the plan built) synthesized as a
    `ChunkedThresholdBank` and as a `BeatThresholdBank`, at the planned beats and each of
    ``extra_beats`` (dividing its elements)."""
    from bench_svhn_latency import _synthesize_part

    from rtlgen.layers.threshold import BeatThresholdBank, ChunkedThresholdBank

    n = len(bank.thresholds)
    entry: dict = {
        "channels": n,
        "thresholds": max(len(t) for t in bank.thresholds),
        "in_type": str(bank.in_type),
        "out_type": str(bank.out_type),
        "latency_cycles": bank.latency,
        "planned_beats": planned.beats,
        "planned": type(planned).__name__,
        "by_beats": {},
        "command": command,
    }
    for beats in sorted({planned.beats, *(b for b in extra_beats if n % b == 0)}):
        row: dict = {"lanes": n // beats}
        for kind, cls in (("chunked", ChunkedThresholdBank), ("beat", BeatThresholdBank)):
            stage = cls(bank, beats)
            figures = _synthesize_part([stage], f"{kind}_{beats}", work)
            row[kind] = {
                "comparators": stage.comparators,
                "latency_cycles": stage.latency,
                **figures,
            }
            print(
                f"{beats} beats, {type(stage).__name__}: {figures['luts']} LUT, {figures['ffs']} FF, "
                f"{figures['lut_levels']} LUT levels, latency {stage.latency}",
                flush=True,
            )
        row["beat_lut_saving"] = round(1 - row["beat"]["luts"] / row["chunked"]["luts"], 3)
        entry["by_beats"][str(beats)] = row
    entry["beat_lut_saving"] = {b: row["beat_lut_saving"] for b, row in entry["by_beats"].items()}
    return entry


if __name__ == "__main__":
    sys.exit(main())
