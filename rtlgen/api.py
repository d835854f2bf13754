"""The Python entry points: load a model into a lowered graph, predict, convert."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from rtlgen import ir
from rtlgen.passes import (
    DEFAULT_PRECISION,
    PrecisionConfig,
    fold_batchnorm,
    fuse_activations,
    infer_precision,
    lower,
)
from rtlgen.quant.errors import RtlgenError
from rtlgen.quant.fixed import FixedType


def load_model(
    model: Any,
    weights: str | Path | None = None,
    config: str | Path | PrecisionConfig | None = None,
    input_type: str | FixedType | None = None,
    calibrate: np.ndarray | None = None,
) -> ir.ModelGraph:
    """A Keras/QKeras model (file path, json + weights, or in-memory object), or an OUTDIR /
    graph.npz written by `rtlgen convert`, as a lowered `ModelGraph`.

    ``input_type`` (e.g. ``"fixed<8,1>"``) overrides the config's input stream type.
    ``calibrate``: sample inputs (N, *input_shape); unquantized (float-model) results then
    get the integer bits the data needs plus the config's headroom, instead of the
    worst case that interval analysis proves (see `rtlgen.calibrate`).
    """
    if isinstance(model, str | Path):
        path = Path(model)
        if path.is_dir() and (path / "graph.npz").is_file():
            return _load_saved(path / "graph.npz", weights, config or input_type)
        if path.suffix == ".npz":
            return _load_saved(path, weights, config or input_type)
        if not path.exists():
            raise RtlgenError(f"model file {path} does not exist")
    from rtlgen.frontend import read_model

    graph = read_model(model, weights=weights)
    precision = _config(config)
    if input_type is not None:
        t = input_type if isinstance(input_type, FixedType) else FixedType.parse(input_type)
        precision = dataclasses.replace(precision, input=t)
    if calibrate is None:
        return lower(graph, precision)
    from rtlgen.calibrate import calibrate as measure

    folded = fuse_activations(fold_batchnorm(graph))
    peaks = measure(folded, calibrate)
    return infer_precision(folded, dataclasses.replace(precision, calibration=tuple(peaks.items())))


def _load_saved(path: Path, weights: Any, config: Any) -> ir.ModelGraph:
    if weights is not None or config is not None:
        raise RtlgenError(
            f"{path}: a converted design is already lowered; --weights/--config/--input-type do not apply"
        )
    from rtlgen.serialize import load_graph

    return load_graph(path)


def _config(config: str | Path | PrecisionConfig | None) -> PrecisionConfig:
    if config is None:
        return DEFAULT_PRECISION
    if isinstance(config, PrecisionConfig):
        return config
    from rtlgen.config import load_config

    return load_config(Path(config))


def load_array(path: str | Path, what: str = "input") -> np.ndarray:
    """A numeric .npy array, with a clean error for missing or non-numeric files."""
    p = Path(path)
    if not p.is_file():
        raise RtlgenError(f"{what} file {p} does not exist")
    try:
        arr = np.load(p, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise RtlgenError(f"{what} file {p} is not a readable .npy array ({exc})") from None
    if not isinstance(arr, np.ndarray) or not np.issubdtype(arr.dtype, np.number):
        raise RtlgenError(f"{what} file {p} must hold a numeric array, found {getattr(arr, 'dtype', type(arr))}")
    return arr
