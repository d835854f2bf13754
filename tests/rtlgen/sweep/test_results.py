"""The Pareto front and the CSV of a sweep."""

from __future__ import annotations

import csv
import io

import pytest

from rtlgen.sweep.results import csv_text, front_2d, pareto_front, plot_pairs
from rtlgen.sweep.spec import Axis, Step, SweepSpec


def row(name, status="ok", **figures):
    return {"name": name, "status": status, **figures}


def names(front):
    return sorted(r["name"] for r in front.rows)


def test_front_keeps_points_no_other_point_beats_on_every_objective():
    rows = [
        row("cheap", accuracy=0.80, luts=100, dsps=0, latency_cycles=10, ffs=50),
        row("accurate", accuracy=0.90, luts=400, dsps=4, latency_cycles=10, ffs=90),
        row("dominated", accuracy=0.79, luts=120, dsps=0, latency_cycles=12, ffs=60),
        row("tie", accuracy=0.80, luts=100, dsps=0, latency_cycles=10, ffs=50),
    ]
    front = pareto_front(rows, "accuracy")
    assert front.metric == "accuracy" and front.costs == ("luts", "dsps", "latency_cycles", "ffs")
    assert names(front) == ["accurate", "cheap", "tie"]


@pytest.mark.parametrize("status", ["failed", "skipped", "error", "mismatch"])
def test_points_that_did_not_succeed_are_never_on_the_front(status):
    rows = [row("good", accuracy=0.5, luts=100), row("bad", status, accuracy=0.99, luts=1)]
    assert names(pareto_front(rows, "accuracy")) == ["good"]


def test_without_accuracy_the_front_is_over_the_resources_alone():
    rows = [
        row("a", luts=100, dsps=2, latency_cycles=9),
        row("b", luts=50, dsps=4, latency_cycles=9),
        row("c", luts=120, dsps=4, latency_cycles=9),
    ]
    front = pareto_front(rows, "accuracy")
    assert front.metric is None and names(front) == ["a", "b"]
    assert plot_pairs(front) == [("latency_cycles", "luts"), ("latency_cycles", "dsps")]


def test_without_synthesis_the_front_uses_convert_figures():
    rows = [
        row("a", multipliers=10, latency_cycles=5),
        row("b", multipliers=4, latency_cycles=9),
        row("c", multipliers=12, latency_cycles=9),
    ]
    front = pareto_front(rows, "accuracy")
    assert front.costs == ("multipliers", "latency_cycles") and names(front) == ["a", "b"]


def test_a_point_missing_an_objective_is_left_off_the_front():
    rows = [row("a", accuracy=0.5, luts=100), row("b", accuracy=None, luts=10)]
    assert names(pareto_front(rows, "accuracy")) == ["a"]


def test_csv_has_axis_status_figure_and_step_columns_and_quotes_commas(tmp_path):
    spec = SweepSpec(
        source=tmp_path / "s.yml",
        model=tmp_path / "m.h5",
        axes=(Axis("input_type", ("fixed<16,6>",)),),
        steps=(Step.CONVERT,),
    )
    rows = [
        {
            "input_type": "fixed<16,6>",
            "status": "failed",
            "reason": "convert: a, b",
            "latency_cycles": None,
            "steps": {"convert": {"seconds": 1.5, "cached": False}},
        }
    ]
    parsed = list(csv.DictReader(io.StringIO(csv_text(spec, rows))))
    assert parsed == [
        {
            "input_type": "fixed<16,6>",
            "status": "failed",
            "reason": "convert: a, b",
            "latency_cycles": "",
            "convert_seconds": "1.5",
            "convert_cached": "False",
        }
    ]


@pytest.mark.parametrize(
    "maximize,expected",
    [(True, [(1.0, 0.5), (3.0, 0.9)]), (False, [(1.0, 0.5), (2.0, 0.4)])],
)
def test_plot_front_is_the_two_figure_front_sorted_by_x(maximize, expected):
    points = [(1.0, 0.5), (2.0, 0.4), (3.0, 0.9), (4.0, 0.9), (1.0, 0.5)]
    assert front_2d(points, maximize) == expected
