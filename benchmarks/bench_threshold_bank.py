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

``--beside-adders N`` synthesizes each named `ThresholdBank` instead, as the text module
``rtlgen convert`` writes (`layers/bank_verilog.py`), beside an unrelated path of ``N`` chained
48-bit additions between registers (no wire to the bank; key
``<bank>_<kept|flattened>_beside_<N>_adders``, and ``..._beside_0_adders``: the same module
alone; ``kept``: the module kept as its own hierarchy while ABC9 maps it). Why: ABC9 (``&if`` without a
delay target) maps for the best delay, then recovers area on every path up to the design's
critical delay, so logic off the critical path gets deeper where that saves LUTs. A
bank synthesized alone is its own critical path; in the whole SVHN design (a longer critical
delay elsewhere) the same bank's coarse stage measured 8 LUT levels. Beside 6 adders the
bank alone's 5 levels become 8 too: this is how to measure a bank as a whole design sees it.

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
    parser.add_argument(
        "--beside-adders",
        type=int,
        default=0,
        help="also synthesize each bank's text module alone and beside an unrelated chain of "
        "this many registered 48-bit additions (the critical delay of a larger design)",
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
            if args.beside_adders:
                for adders in (0, args.beside_adders):
                    figures = _beside_adders(bank, adders, Path(tmp))
                    key = f"{name}_{figures['bank_module']}_beside_{adders}_adders"
                    entries[key] = {**figures, "command": command.strip()}
                    print(f"{key}: {json.dumps(entries[key])}", flush=True)
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


#: the width of `_beside_adders`' additions: long carry chains, a short LUT path
SIDE_WIDTH = 48


def _beside_adders(bank, adders: int, work: Path) -> dict:
    """``bank``'s text module (`bank_verilog`) synthesized in a top that also holds ``adders``
    chained additions of `SIDE_WIDTH`-bit registers into a register, fed from a shift
    register: a path with a long delay (carry chains) and few LUTs, sharing nothing with the
    bank. ``adders`` 0: the bank alone."""
    from rtlgen.layers.bank_verilog import bank_verilog
    from rtlgen.synth import synthesize

    n, w, ow = len(bank.levels), bank.in_type.width, bank.out_type.width
    width, regs = SIDE_WIDTH, [f"a{k}" for k in range(adders + 1)]
    side = ["  assign side_out = side_in;"]
    if adders:
        rotate = "{{{0}[{1}:0], {0}[{2}]}}"
        side = [
            *[f"  reg [{width - 1}:0] {r} = 0;" for r in regs],
            f"  reg [{width - 1}:0] total = 0;",
            "  always @(posedge clk) begin",
            f"    a0 <= {{side_in, a0[{width - 1}:1]}};",
            *[
                f"    {r} <= {q} ^ {rotate.format(r, width - 2, width - 1)};"
                for q, r in zip(regs, regs[1:], strict=False)
            ],
            f"    total <= {' + '.join(regs)};",
            "  end",
            f"  assign side_out = total[{width - 1}];",
        ]
    top = [
        "module beside(clk, rst, i__payload, i__valid, i__ready, o__payload, o__valid, "
        "o__ready, side_in, side_out);",
        "  input clk, rst, i__valid, o__ready, side_in;",
        f"  input [{n * w - 1}:0] i__payload;",
        "  output i__ready, o__valid, side_out;",
        f"  output [{n * ow - 1}:0] o__payload;",
        "  bank_text bank(.clk(clk), .rst(rst), .i__payload(i__payload), .i__valid(i__valid), "
        ".i__ready(i__ready), .o__payload(o__payload), .o__valid(o__valid), .o__ready(o__ready));",
        *side,
        "endmodule",
    ]
    path = work / f"beside_{adders}.v"
    text = bank_verilog(bank, "bank_text")
    path.write_text("\n".join(top) + "\n" + text)
    figures = synthesize(path, "beside", "xcup").as_dict()
    figures.pop("cells")
    return {
        # whether ABC9 maps the bank's module by itself (`bank_verilog`) or with the top's
        "bank_module": "kept" if "keep_hierarchy" in text else "flattened",
        "adders": adders,
        "adder_width": width,
        "latency_cycles": bank.latency,
        **figures,
    }


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
