"""The full SVHN study's time on this machine: per-step seconds measured x the full study's steps.

    python benchmarks/svhn_full_estimate.py --measured OUT1 OUT2 ...

OUT*: output folders of sweeps that ran part of the full study at its sizes through the
sweep engine (`rtlgen sweep SPEC -o OUT`, see docs/SVHN_STUDY.md "The full study"); their
results.json rows give each computed step's own seconds. Steps those runs did not measure
come from earlier measured runs of the same CNN (the study's designs do not depend on the
training sizes): Yosys from benchmarks/results/svhn_synth_*.json, the peers from the quick
study (docs/SVHN_STUDY.md) and the dense-part synthesis from svhn_latency.json. The full
study's steps are counted from its plan (`rtlgen.study.full_config` -> `study_spec` ->
`plan_sweep`, the same as `rtlgen bench svhn` runs). Writes
benchmarks/results/svhn_full_estimate.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from collections import Counter
from pathlib import Path

HERE = Path(__file__).parent
RESULTS = HERE / "results"
#: earlier measurements of the same designs (file, variant short name, style)
SYNTH_RUNS = (
    ("svhn_synth_dsp.json", "BF", "dsp"),
    ("svhn_synth_auto.json", "BF", "auto"),
    ("svhn_synth_dsp.json", "QP6", "dsp"),
    ("svhn_synth_auto.json", "QP6", "auto"),
    ("svhn_synth_qp6_lut.json", "QP6", "lut"),
)
#: dsp-full (every layer fully parallel) has 2.8-3.4x the multipliers of the rate-balanced
#: dsp design (QP6 6,866 / 2,451, Q6 12,153 / 3,586, quick run): its Yosys run was never
#: measured, so it is estimated at the rate-balanced mean times this factor
FULL_PARALLEL_SYNTH_FACTOR = 2.8
#: peers per variant, measured in the quick study (docs/SVHN_STUDY.md, session 4: hls4ml
#: compile 10-11 s; alkaid 1-3 s) and the dense parts' Yosys runs (svhn_latency.json
#: history: 30-47 s each, alkaid's and rtlgen's)
PEER_SECONDS = {"hls4ml": 11.0, "alkaid": 3.0 + 2 * 40.0}


def measured_steps(folders: list[Path]) -> dict[str, list[dict]]:
    """Every step of the given sweeps, once per digest: kind -> [{seconds, point}]. A step
    reused from the store carries the seconds it took when it was computed."""
    steps: dict[str, list[dict]] = {}
    seen: set[str] = set()
    for folder in folders:
        document = json.loads((folder / "results.json").read_text())
        for row in document["rows"]:
            point = {k: row[k] for k in document["axes"]}
            for step, info in row["steps"].items():
                if info["status"] != "ok" or info["digest"] in seen:
                    continue
                seen.add(info["digest"])
                kind = step
                if step == "train":
                    kind = "train_finetune" if point.get("sparsity") else "train_scratch"
                if step == "synth":
                    full = point.get("parallelism") == "full"
                    kind = "synth_full_parallel" if full else "synth_rate_balanced"
                if step in ("hls4ml", "alkaid") and "skipped" in str(row.get(f"{step}_status")):
                    continue  # not installed here: no time measured
                steps.setdefault(kind, []).append({"seconds": info["seconds"], "point": point})
    return steps


def synth_seconds() -> list[dict]:
    runs = []
    for name, short, style in SYNTH_RUNS:
        document = json.loads((RESULTS / name).read_text())
        variant = next(v for v in document["variants"] if v["short"] == short)
        synth = variant["designs"][style]["synth"]
        runs.append(
            {
                "file": name,
                "design": f"{short} {style}",
                "seconds": synth["seconds"],
                "load_average_at_start": document["machine"]["load_average_at_start"],
            }
        )
    return runs


def full_study_steps() -> Counter:
    from rtlgen.study import full_config, study_spec
    from rtlgen.sweep.engine import plan_sweep
    from rtlgen.sweep.spec import spec_from_dict

    spec = spec_from_dict(study_spec(full_config()), HERE / "sweeps" / "svhn_full.yml")
    plan = plan_sweep(spec, Path("/nonexistent"), "estimate", {})
    counts: Counter = Counter()
    for task in plan.tasks.values():
        kind = str(task.step)
        if kind == "train":
            kind = "train_finetune" if task.params.sparsity else "train_scratch"
        if kind == "synth":
            points = [p for p in plan.points if (task.step, task.digest) in p.steps]
            full = points and points[0].point.get("parallelism") == "full"
            kind = "synth_full_parallel" if full else "synth_rate_balanced"
        counts[kind] += 1
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--measured", type=Path, nargs="+", required=True)
    parser.add_argument("--note", default="", help="how the measured runs were made (load...)")
    parser.add_argument("--output", type=Path, default=RESULTS / "svhn_full_estimate.json")
    args = parser.parse_args(argv)
    measured = measured_steps(args.measured)
    synth = synth_seconds() + [
        {"design": f"measured here: {r['point']}", "seconds": r["seconds"]}
        for r in measured.pop("synth_rate_balanced", [])
    ]
    balanced = statistics.mean(r["seconds"] for r in synth)
    per_step = {
        kind: {
            "seconds": round(statistics.mean(s["seconds"] for s in runs), 1),
            "source": "measured here (this run)",
            "runs": runs,
        }
        for kind, runs in measured.items()
    }
    per_step["synth_rate_balanced"] = {
        "seconds": round(balanced, 1),
        "source": "mean of earlier Yosys runs of the same CNN designs (quick-size training) "
        "and the ones measured here (full-size training)",
        "runs": synth,
    }
    per_step["synth_full_parallel"] = {
        "seconds": round(balanced * FULL_PARALLEL_SYNTH_FACTOR, 1),
        "source": f"extrapolated: rate-balanced mean x {FULL_PARALLEL_SYNTH_FACTOR} (the "
        "multiplier ratio dsp-full / dsp); never measured",
    }
    for name, seconds in PEER_SECONDS.items():
        if name not in per_step:
            per_step[name] = {
                "seconds": seconds,
                "source": "quick study (docs/SVHN_STUDY.md) + dense-part Yosys (svhn_latency.json)",
            }
    counts = full_study_steps()
    missing = sorted(set(counts) - set(per_step))
    if missing:
        raise SystemExit(f"no per-step seconds for {missing}: measure them first")
    totals = {kind: round(per_step[kind]["seconds"] * n, 1) for kind, n in counts.items()}
    busy = sum(totals.values())
    done = {kind: round(sum(r["seconds"] for r in runs), 1) for kind, runs in measured.items()}
    done["synth_rate_balanced"] = sum(
        r["seconds"] for r in synth if str(r.get("design", "")).startswith("measured here")
    )
    remainder = max(0.0, busy - sum(done.values()))
    report = {
        "what": "the full SVHN study (rtlgen bench svhn, 48 points, 208 steps): per-step "
        "seconds x the study's steps",
        "command": "python benchmarks/svhn_full_estimate.py --measured "
        + " ".join(str(p) for p in args.measured),
        "note": args.note,
        "machine": {"cpus": os.cpu_count(), "load_average_now": list(os.getloadavg())},
        "steps": dict(sorted(counts.items())),
        "per_step_seconds": per_step,
        "step_seconds_total": totals,
        "busy_hours": round(busy / 3600, 1),
        "measured_hours": round(sum(done.values()) / 3600, 2),
        "remainder_busy_hours": round(remainder / 3600, 1),
        "wall_hours_2_workers_ideal": round(busy / 3600 / 2, 1),
        "wall_hours_2_workers_at_measured_scaling": round(busy / 3600 / 1.30, 1),
        "scaling_source": "benchmarks/results/sweep_svhn_quick.json: 2 workers x1.30 "
        "faster than 1 (quick study, loaded machine)",
    }
    args.output.write_text(json.dumps(report, indent=1) + "\n")
    print(
        f"wrote {args.output}: {report['busy_hours']} h of steps "
        f"({report['remainder_busy_hours']} h not run), "
        f"{report['wall_hours_2_workers_at_measured_scaling']} h on 2 workers"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
