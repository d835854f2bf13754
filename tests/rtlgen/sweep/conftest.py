"""A tiny model file (4 -> 6 -> 3 dense, no TensorFlow) and its inputs, for sweep tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.models import layer_entry, sequential_config, write_weights_h5

SMALLEST_SPEC = """\
model: model.json
weights: model_weights.h5
axes:
  multiplier: [dsp, lut]
  parallelism: [auto, full]
steps: [convert, predict]
cluster: {local: {workers: 2}}
"""


def _dense(name: str, units: int, activation: str) -> dict:
    return layer_entry(
        "Dense", {"name": name, "units": units, "activation": activation, "use_bias": True}
    )


def write_tiny_model(folder: Path, seed: int = 0) -> Path:
    """model.json, model_weights.h5, x.npy (20 samples), y.npy (labels), spec.yml."""
    folder.mkdir(parents=True, exist_ok=True)
    config = sequential_config([_dense("d1", 6, "relu"), _dense("d2", 3, "linear")], (4,), "tiny")
    (folder / "model.json").write_text(json.dumps(config))
    rng = np.random.default_rng(seed)
    write_weights_h5(
        folder / "model_weights.h5",
        {
            "d1": {"kernel": rng.normal(size=(4, 6)).round(2), "bias": rng.normal(size=6).round(2)},
            "d2": {"kernel": rng.normal(size=(6, 3)).round(2), "bias": rng.normal(size=3).round(2)},
        },
    )
    np.save(folder / "x.npy", (rng.integers(-64, 64, size=(20, 4)) / 16).astype(np.float32))
    np.save(folder / "y.npy", rng.integers(0, 3, size=20))
    (folder / "spec.yml").write_text(SMALLEST_SPEC)
    return folder


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    return write_tiny_model(tmp_path / "model")
