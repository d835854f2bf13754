"""`rtlgen convert --max-reuse / --latency-budget`: the plan's reuse cap and latency budget
from the command line, recorded in the manifest's layers; bad values are one line, exit 2."""

import json
from importlib import resources
from pathlib import Path

import pytest

from tests.rtlgen.cli_run import rtlgen

DATA = Path(str(resources.files("rtlgen.data")))
MODEL = [str(DATA / "demo_cnn.json"), "--weights", str(DATA / "demo_cnn_weights.h5")]


@pytest.mark.parametrize(
    "args,message",
    [
        (["--max-reuse", "0"], "--max-reuse 0 is not supported (use 1 to"),
        (["--latency-budget", "0"], "--latency-budget 0 is not supported (use 1 to"),
        (
            ["--latency-budget", "fast"],
            "--latency-budget 'fast': use a number of cycles, auto or none",
        ),
        (
            ["--latency-budget", "90", "--parallelism", "full"],
            "--latency-budget 90 caps the reuse of --parallelism auto",
        ),
        (
            ["--latency-budget", "20"],
            "--latency-budget 20: not reachable, every layer at reuse 1 takes",
        ),
    ],
)
def test_bad_cap_or_budget_is_one_line_with_exit_code_2(tmp_path, args, message):
    result = rtlgen("convert", *MODEL, "-o", tmp_path / "out", *args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in lines[0]


def test_a_budget_the_default_plan_meets_is_recorded_and_changes_nothing(tmp_path):
    """The demo's dense (after a flatten) takes its beats as they arrive, and its default
    plan is as fast as the fully parallel one (--max-reuse 1; a cycle faster: the last beat
    is taken idle and steps at once, a constant MAC array is a level deeper): a budget of
    that latency
    keeps every layer's reuse and is recorded in the manifest; one cycle less is refused
    (test_bad_cap_or_budget...; the per-layer caps: tests/rtlgen/ops/test_matvec.py)."""
    default = tmp_path / "default"
    assert rtlgen("convert", *MODEL, "-o", default).returncode == 0
    manifest = json.loads((default / "manifest.json").read_text())
    latency = manifest["latency_cycles"]
    assert manifest["layers"][-1]["reuse"] > 1
    full = tmp_path / "full"
    assert rtlgen("convert", *MODEL, "-o", full, "--max-reuse", "1").returncode == 0
    assert json.loads((full / "manifest.json").read_text())["latency_cycles"] >= latency
    out = tmp_path / "budget"
    result = rtlgen("convert", *MODEL, "-o", out, "--latency-budget", latency)
    assert result.returncode == 0, result.stderr
    budgeted = json.loads((out / "manifest.json").read_text())
    assert budgeted["latency_cycles"] == latency
    assert [layer["reuse"] for layer in budgeted["layers"]] == [
        layer["reuse"] for layer in manifest["layers"]
    ]
    # the options as given are recorded (max_reuse None: not given; the budget's default
    # is the rule "auto", which the demo cannot reach: its plan is the rate-balanced one)
    assert (manifest["options"]["max_reuse"], manifest["options"]["latency_budget"]) == (
        None,
        "auto",
    )
    cheapest = tmp_path / "none"
    assert rtlgen("convert", *MODEL, "-o", cheapest, "--latency-budget", "none").returncode == 0
    none = json.loads((cheapest / "manifest.json").read_text())
    assert none["options"]["latency_budget"] is None
    assert [layer["reuse"] for layer in none["layers"]] == [
        layer["reuse"] for layer in manifest["layers"]
    ]
    assert budgeted["options"]["latency_budget"] == latency
    assert budgeted["options"]["max_reuse"] is None
