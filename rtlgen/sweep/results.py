"""A finished sweep as files: results.json / results.csv (one row per point, every figure),
pareto.json (the non-dominated points) and PNG plots of the metric against each resource.

Figures come from the steps (`rtlgen.sweep.steps`): convert's latency, II and multipliers,
predict's accuracy, sim's agreement and measured timing, synth's LUT/FF/DSP/BRAM, pnr's Fmax.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rtlgen.sweep.spec import SweepSpec

if TYPE_CHECKING:
    from rtlgen.sweep.engine import SweepRun

RESULTS_FORMAT = 1
#: resources a point costs, minimized on the Pareto front (those the sweep measured)
COSTS = ("luts", "dsps", "latency_cycles", "ffs")
#: when no synthesis ran, the front is over what convert reports
CONVERT_COSTS = ("multipliers", "latency_cycles")
#: a point's status is its worst step's: a failed step outranks the steps it made skip
STATUS_ORDER = ("ok", "mismatch", "skipped", "failed", "error")


#: the table's first figure columns (any other figure follows, by name)
FIGURE_ORDER = (
    "accuracy",
    "keras_accuracy",
    "sim_accuracy",
    "agreement",
    "luts",
    "ffs",
    "dsps",
    "brams",
    "latency_cycles",
    "ii_cycles",
    "sim_latency_cycles",
    "sim_ii_cycles",
    "multipliers",
    "products_nonzero",
    "adders",
    "weight_sparsity",
    "input_type",
    "samples",
    "sim_samples",
    "sim_mismatches",
    "sim_passed",
    "fmax_mhz",
)


@dataclass(frozen=True)
class Front:
    """The Pareto front: maximize `metric` (if any point has it), minimize `costs`."""

    metric: str | None
    costs: tuple[str, ...]
    rows: tuple[Mapping[str, Any], ...]


def point_rows(spec: SweepSpec, run: SweepRun) -> list[dict[str, Any]]:
    """One row per point: axis values, status and reason, figures, per-step seconds and
    whether each step was computed or reused."""
    rows = []
    for plan in run.plan.points:
        row: dict[str, Any] = dict(plan.point.values)
        figures: dict[str, Any] = {}
        steps: dict[str, Any] = {}
        reasons = []
        statuses = []
        for step, digest in plan.steps:
            outcome = run.outcomes.get(digest)
            if outcome is None:  # interrupted before it finished
                statuses.append("error")
                reasons.append(f"{step}: did not finish")
                continue
            statuses.append(outcome.status)
            if outcome.reason and outcome.status != "skipped":
                reasons.append(f"{step}: {outcome.reason}")
            figures.update(outcome.figures)
            steps[str(step)] = {
                "status": outcome.status,
                "seconds": round(outcome.seconds, 3),
                "cached": outcome.cached,
                "digest": digest,
            }
        status = max(statuses, key=STATUS_ORDER.index, default="ok")
        if status == "ok" and figures.get("sim_passed") is False:
            status = "mismatch"
            reasons.append(f"sim: {figures.get('sim_report')}")
        row.update(status=status, reason="; ".join(reasons) or None, **figures, steps=steps)
        rows.append(row)
    return rows


def pareto_front(rows: Sequence[Mapping[str, Any]], metric: str) -> Front:
    """Non-dominated points among the good ones: no other point is at least as good on
    every objective and better on one. Objectives: `metric` (higher is better) when any
    point has it, and the costs of `COSTS` the sweep measured (else `CONVERT_COSTS`)."""
    good = [row for row in rows if row.get("status") == "ok"]
    has_metric = any(_number(row.get(metric)) is not None for row in good)
    costs = tuple(c for c in COSTS if any(_number(r.get(c)) is not None for r in good))
    if not any(c in costs for c in ("luts", "dsps", "ffs")):
        costs = tuple(c for c in CONVERT_COSTS if any(_number(r.get(c)) is not None for r in good))
    objectives = ((metric,) if has_metric else ()) + costs

    def vector(row: Mapping[str, Any]) -> tuple[float, ...] | None:
        values = [_number(row.get(name)) for name in objectives]
        if any(v is None for v in values):
            return None
        # every objective as "smaller is better"
        return tuple(-v if has_metric and i == 0 else v for i, v in enumerate(values))  # type: ignore[operator]

    scored = [(row, vector(row)) for row in good]
    scored = [(row, v) for row, v in scored if v is not None]
    front = [
        row
        for row, v in scored
        if not any(
            all(o <= s for o, s in zip(other, v, strict=True)) and other != v for _, other in scored
        )
    ]
    return Front(metric if has_metric else None, costs, tuple(front))


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def csv_text(spec: SweepSpec, rows: Sequence[Mapping[str, Any]]) -> str:
    """results.csv: axis columns, status, reason, every figure, then each step's seconds
    and whether it was cached."""
    axes = [axis.name for axis in spec.axes]
    step_columns = [f"{step}_{what}" for step in spec.steps for what in ("seconds", "cached")]
    reserved = {*axes, "status", "reason", "steps", *step_columns}
    found = {key for row in rows for key in row if key not in reserved}
    # the same columns in the same order whether a step was computed or read from the store
    figures = [f for f in FIGURE_ORDER if f in found] + sorted(found - set(FIGURE_ORDER))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*axes, "status", "reason", *figures, *step_columns])
    for row in rows:
        steps = row.get("steps", {})
        writer.writerow(
            [
                *(_cell(row.get(a)) for a in axes),
                row["status"],
                _cell(row.get("reason")),
                *(_cell(row.get(f)) for f in figures),
                *(
                    _cell(steps.get(str(step), {}).get(what))
                    for step in spec.steps
                    for what in ("seconds", "cached")
                ),
            ]
        )
    return buffer.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def write_results(out: Path, spec: SweepSpec, run: SweepRun) -> list[Path]:
    """results.json, results.csv, pareto.json and the plots into OUT; returns the paths."""
    from rtlgen.sweep.engine import write_text

    rows = point_rows(spec, run)
    front = pareto_front(rows, spec.metric)
    counts = {status: sum(r["status"] == status for r in rows) for status in STATUS_ORDER}
    document = {
        "format": RESULTS_FORMAT,
        "spec": str(spec.source),
        "axes": {axis.name: list(axis.values) for axis in spec.axes},
        "steps": [str(s) for s in spec.steps],
        "points": len(rows),
        "status": {k: v for k, v in counts.items() if v},
        "steps_computed": run.computed,
        "steps_cached": run.cached,
        "seconds": round(run.seconds, 2),
        "rows": rows,
    }
    written = [out / "results.json", out / "results.csv", out / "pareto.json"]
    write_text(written[0], json.dumps(document, indent=1, default=str))
    write_text(written[1], csv_text(spec, rows))
    write_text(
        written[2],
        json.dumps(
            {
                "metric": front.metric,
                "costs": list(front.costs),
                "rows": list(front.rows),
            },
            indent=1,
            default=str,
        ),
    )
    return written + write_plots(out, spec, rows, front)


def plot_pairs(front: Front) -> list[tuple[str, str]]:
    """(y, x) of each plot: the metric against each cost; without a metric, latency against
    the other costs."""
    if front.metric is not None:
        return [(front.metric, cost) for cost in front.costs]
    y = (
        "latency_cycles"
        if "latency_cycles" in front.costs
        else (front.costs[0] if front.costs else None)
    )
    return [(y, cost) for cost in front.costs if cost != y] if y else []


def write_plots(
    out: Path, spec: SweepSpec, rows: Sequence[Mapping[str, Any]], front: Front
) -> list[Path]:
    """One PNG per (y, x) pair: every good point, colored by its design options, the
    Pareto front as a line (like the paper's accuracy-vs-resource plots)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rtlgen.sweep.engine import write_text

    good = [r for r in rows if r.get("status") == "ok"]
    paths = []
    for y, x in plot_pairs(front):
        points = [(r, _number(r.get(x)), _number(r.get(y))) for r in good]
        points = [(r, px, py) for r, px, py in points if px is not None and py is not None]
        if not points:
            continue
        figure, axes = plt.subplots(figsize=(6, 4.2))
        groups: dict[str, list[tuple[float, float]]] = {}
        for row, px, py in points:
            groups.setdefault(_style_label(spec, row), []).append((px, py))
        for label, values in sorted(groups.items()):
            axes.scatter([v[0] for v in values], [v[1] for v in values], label=label, s=28)
        on_front = front_2d([(px, py) for _, px, py in points], maximize=y == front.metric)
        if on_front:
            axes.step(
                [p[0] for p in on_front],
                [p[1] for p in on_front],
                where="post",
                color="black",
                linewidth=1,
                alpha=0.6,
                label="Pareto front",
            )
        axes.set_xlabel(x.replace("_", " "))
        axes.set_ylabel(y.replace("_", " "))
        axes.grid(alpha=0.3)
        if len(groups) <= 12:
            axes.legend(fontsize=7)
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=110)
        plt.close(figure)
        path = out / f"{y}_vs_{x}.png"
        write_text(path, buffer.getvalue())
        paths.append(path)
    return paths


def front_2d(points: Sequence[tuple[float, float]], maximize: bool) -> list[tuple[float, float]]:
    """The (x, y) points no other point beats in this plot's two figures (x smaller, y
    larger if `maximize` else smaller), sorted by x: the line drawn through a plot."""
    sign = -1.0 if maximize else 1.0
    best: list[tuple[float, float]] = []
    for px, py in sorted(set(points), key=lambda p: (p[0], sign * p[1])):
        if not best or sign * py < sign * best[-1][1]:
            best.append((px, py))
    return best


def _style_label(spec: SweepSpec, row: Mapping[str, Any]) -> str:
    """The design options of a point (the hardware axes), for the plot legend."""
    names = [a.name for a in spec.axes if a.name != "input_type"] or [a.name for a in spec.axes]
    return " ".join(f"{row.get(n)}" for n in names) or "design"


__all__ = ["Front", "csv_text", "pareto_front", "point_rows", "write_results"]


def print_summary(console: Any, out: Path, spec: SweepSpec, run: SweepRun) -> None:
    """What a user reads after a sweep: counts, failures, the Pareto front, the files."""
    from rich.table import Table
    from rich.text import Text

    rows = point_rows(spec, run)
    counts = {s: sum(r["status"] == s for r in rows) for s in STATUS_ORDER}
    shown = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    console.print(
        Text(
            f"sweep: {len(rows)} points ({shown}); steps computed {run.computed}, "
            f"reused from the store {run.cached}; {run.seconds:.1f} s"
        )
    )
    for row in rows:
        if row["status"] != "ok":
            label = " ".join(f"{a.name}={row.get(a.name)}" for a in spec.axes)
            console.print(Text(f"  {row['status']}: {label}: {row['reason']}"))
    front = pareto_front(rows, spec.metric)
    if front.rows:
        names = [a.name for a in spec.axes]
        columns = [*names, *([front.metric] if front.metric else []), *front.costs]
        table = Table(title=f"Pareto front ({len(front.rows)} of {counts['ok']} good points)")
        for column in columns:
            table.add_column(column)
        for row in front.rows:
            table.add_row(*(_cell(row.get(c)) for c in columns))
        console.print(table)
    console.print(
        Text(
            f"wrote {out / 'results.csv'}, {out / 'results.json'}, {out / 'pareto.json'} and plots"
        )
    )
