"""`rtlgen sweep` as a user meets it: one command, one-line errors with exit 2."""

from __future__ import annotations

import csv
import json

import pytest

from tests.rtlgen.cli_run import rtlgen


def test_smallest_spec_runs_from_its_folder_and_writes_the_table(tiny, tmp_path):
    out = tmp_path / "out"
    result = rtlgen(
        "sweep", "spec.yml", "-o", out, "--input", "x.npy", "--labels", "y.npy", cwd=tiny
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [(r["multiplier"], r["parallelism"], r["status"]) for r in rows] == [
        ("dsp", "auto", "ok"),
        ("dsp", "full", "ok"),
        ("lut", "auto", "ok"),
        ("lut", "full", "ok"),
    ]
    assert all(r["latency_cycles"] and r["accuracy"] for r in rows)
    assert json.loads((out / "pareto.json").read_text())["metric"] == "accuracy"
    assert "4 points (4 ok)" in result.stdout
    assert "[5/5] " in result.stdout  # one progress line per finished step (not a terminal)


@pytest.mark.slow  # the default run stays under 5 minutes
def test_second_run_reports_every_step_reused(tiny, tmp_path):
    args = ("sweep", "spec.yml", "-o", tmp_path / "out", "--input", "x.npy")
    assert rtlgen(*args, cwd=tiny).returncode == 0
    again = rtlgen(*args, cwd=tiny)
    assert again.returncode == 0 and "steps computed 0, reused from the store 5" in again.stdout


@pytest.mark.parametrize(
    "spec,args,message",
    [
        (
            "model: model.json\nweights: model_weights.h5\naxes: {bits: [4]}\n",
            [],
            "axes: unknown axis 'bits'",
        ),
        (
            "model: model.json\nweights: model_weights.h5\nsteps: [convert, fly]\n",
            [],
            "steps: unknown step 'fly'",
        ),
        ("model: nowhere.json\n", [], "model: "),
        (
            "model: model.json\nweights: model_weights.h5\nsteps: [convert, predict]\n",
            [],
            "predict needs inputs",
        ),
        ("model: model.json\nweights: model_weights.h5\n", ["--workers", "0"], "--workers"),
        (
            "model: model.json\nweights: model_weights.h5\ncluster: 'tcp://x:1'\n",
            ["--workers", "2"],
            "--workers does not apply",
        ),
        (": : :\n", [], "invalid YAML"),
        (
            "model: {builtin: svhn_cnn, learning_rate: -1}\n",
            [],
            "model.learning_rate: -1 is not supported (a number above 0",
        ),
    ],
)
def test_spec_errors_are_one_line_with_exit_code_2(tiny, tmp_path, spec, args, message):
    (tiny / "bad.yml").write_text(spec)
    result = rtlgen("sweep", tiny / "bad.yml", "-o", tmp_path / "out", *args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in lines[0]
    assert not (tmp_path / "out").exists()  # nothing written before the spec is good


def test_an_output_folder_rtlgen_did_not_write_is_refused_untouched(tiny, tmp_path):
    out = tmp_path / "precious"
    out.mkdir()
    (out / "results.csv").write_text("mine\n")
    result = rtlgen("sweep", tiny / "spec.yml", "-o", out, "--input", tiny / "x.npy")
    assert result.returncode == 2 and "did not write" in result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["results.csv"]
    assert (out / "results.csv").read_text() == "mine\n"
