"""Built-in trainable models in a sweep: trained by the train step, then converted and predicted."""

from __future__ import annotations

import csv
import os

import pytest
from rich.console import Console

from rtlgen.sweep.engine import run_sweep
from rtlgen.sweep.spec import load_spec

pytest.importorskip("qkeras")


@pytest.mark.slow
def test_jet_mlp_sweep_trains_converts_and_predicts_each_variant(tmp_path):
    path = tmp_path / "jet.yml"
    path.write_text(
        "model: {builtin: jet_mlp, epochs: 2, train_samples: 2000, test_samples: 200}\n"
        "axes: {weight_bits: [4, 6], sparsity: [0, 0.5], multiplier: [lut]}\n"
        "steps: [train, convert, predict]\ncluster: {local: {workers: 2}}\n"
    )
    out = tmp_path / "out"
    run = run_sweep(load_spec(path), out, console=Console(file=open(os.devnull, "w")))  # noqa: SIM115
    assert run.computed == 12
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert {r["status"] for r in rows} == {"ok"}
    pruned = [float(r["weight_sparsity"]) for r in rows if r["sparsity"] == "0.5"]
    assert all(s >= 0.45 for s in pruned)
    assert all(0 <= float(r["accuracy"]) <= 1 and r["keras_accuracy"] for r in rows)
