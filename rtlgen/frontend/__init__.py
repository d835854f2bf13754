"""Model front-ends: Keras/QKeras model files or objects -> unlowered `ModelGraph`.

``read_model(model, weights=None)`` accepts
- a full-model Keras 2 HDF5 file (``model.save("m.h5")``);
- a model JSON (``model.to_json()``) plus a weights HDF5 (``model.save_weights("w.h5")``)
  or a full-model HDF5 as ``weights``;
- a ``.keras`` archive (``config.json`` + ``model.weights.h5``);
- a model config dict (as ``json.loads(model.to_json())``) plus ``weights``;
- an in-memory tf.keras/QKeras model object.

Reading a file never imports TensorFlow (only ``json``, ``zipfile``, ``h5py``, ``numpy``) and
never executes anything from it. Errors are `ModelFileError` (unreadable/malformed files,
missing or mis-shaped weights) and `UnsupportedError` (layers, options and quantizers rtlgen
does not implement), both naming the file or layer.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rtlgen import ir
from rtlgen.quant.errors import ModelFileError, RtlgenError

from . import hdf5
from .inmemory import config_and_weights, is_keras_model
from .keras_config import SUPPORTED_LAYERS, IndexedWeights, NamedWeights, build_graph

__all__ = ["read_model", "SUPPORTED_LAYERS"]

PathLike = str | os.PathLike


def read_model(model: Any, weights: PathLike | None = None) -> ir.ModelGraph:
    """The unlowered `ModelGraph` of a Keras/QKeras model file, config dict or object."""
    if isinstance(model, str | os.PathLike):
        return _read_path(Path(model), None if weights is None else Path(weights))
    if isinstance(model, dict):
        if weights is None:
            raise RtlgenError("read_model(config_dict) needs weights=<weights .h5 file>")
        return build_graph(model, _h5_weights(Path(weights)), source="<config>")
    if is_keras_model(model):
        if weights is not None:
            raise RtlgenError(
                "read_model(keras_model) takes the weights from the model; do not pass weights="
            )
        config, by_layer = config_and_weights(model)
        name = getattr(model, "name", "model")
        return build_graph(
            config, NamedWeights(by_layer, f"model '{name}'"), source=f"<in-memory {name}>"
        )
    raise RtlgenError(
        f"read_model: cannot read a {type(model).__name__}; pass a path (.h5, .json, .keras) "
        "or a tf.keras model"
    )


def _read_path(path: Path, weights: Path | None) -> ir.ModelGraph:
    what = str(path)
    if not path.is_file():
        raise ModelFileError(f"{what}: no such file")
    kind = hdf5.sniff(path, what)
    if kind == "zip":
        config, variables = hdf5.read_keras_archive(path, what)
        if weights is not None:
            return build_graph(config, _h5_weights(weights), source=what)
        return build_graph(config, _indexed_weights(variables, what), source=what)
    if kind == "hdf5":
        with hdf5.open_h5(path, what) as f:
            config = hdf5.model_config_from_h5(f, what)
            if config is None:
                raise ModelFileError(
                    f"{what}: this HDF5 file holds only weights (no model_config); pass the "
                    "model JSON as the model and this file as weights"
                )
            source = (
                _h5_weights(weights)
                if weights is not None
                else NamedWeights(hdf5.weights_from_h5(f, what), what)
            )
        return build_graph(config, source, source=what)
    if path.suffix.lower() in (".h5", ".hdf5", ".keras"):
        raise ModelFileError(f"{what}: not an HDF5 file or .keras archive (unrecognized content)")
    config = hdf5.read_json_file(path, what)
    if weights is None:
        raise ModelFileError(
            f"{what}: a model JSON needs its weights: read_model(json_path, weights=weights_h5)"
        )
    return build_graph(config, _h5_weights(weights), source=what)


def _h5_weights(path: Path):
    """The weight source of a separate weights file: by layer name (Keras 2
    ``save_weights("w.h5")``) or by class and creation order (``save_weights("w.weights.h5")``
    in Keras >= 2.13, which writes the ``.keras`` archive's layout)."""
    what = str(path)
    if not path.is_file():
        raise ModelFileError(f"{what}: no such file")
    if hdf5.sniff(path, what) != "hdf5":
        raise ModelFileError(
            f"{what}: weights must be a Keras HDF5 file (model.save_weights('w.h5') or "
            "model.save_weights('w.weights.h5'))"
        )
    with hdf5.open_h5(path, what) as f:
        if hdf5.is_indexed_weights_file(f):
            return _indexed_weights(hdf5.indexed_variables(f, what), what)
        return NamedWeights(hdf5.weights_from_h5(f, what), what)


def _indexed_weights(variables, what: str):
    """A weight source for `build_graph` over the ``layers/<snake class>[_N]`` layout: the
    paths depend on the model's layer list, so it is made once the layers are known."""
    return lambda layers, sequential: IndexedWeights(variables, layers, sequential, what)
