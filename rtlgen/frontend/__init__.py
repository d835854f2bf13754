"""Model front-ends: Keras/QKeras model files or objects -> unlowered `ModelGraph`.

``read_model(model, weights=None)`` accepts
- a full-model Keras 2 HDF5 file (``model.save("m.h5")``);
- a model JSON (``model.to_json()``) plus a weights HDF5 (``model.save_weights("w.h5")``)
  or a full-model HDF5 as ``weights``;
- a ``.keras`` archive (``config.json`` + ``model.weights.h5``);
- a model config dict (as ``json.loads(model.to_json())``) plus ``weights``;
- an in-memory tf.keras/QKeras model object.

Reading a file never imports TensorFlow (only ``json``, ``zipfile``, ``h5py``, ``numpy``) and
never executes anything from it. A file may only supply data stored inside itself, only the
datasets the model uses are read, and `Limits` caps parameters and bytes before any
allocation (see `rtlgen.frontend.hdf5` and `rtlgen.frontend.limits`). Errors are
`ModelFileError` (unreadable/malformed/hostile files, missing or mis-shaped weights) and
`UnsupportedError` (layers, options and quantizers rtlgen does not implement), both naming
the file or layer.
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from rtlgen import ir
from rtlgen.quant.errors import ModelFileError, RtlgenError

from . import hdf5
from .inmemory import config_and_weights, is_keras_model
from .keras_config import IndexedWeights, NamedWeights, build_graph, supported_layers
from .limits import DEFAULT_LIMITS, Limits

__all__ = ["read_model", "supported_layers", "Limits"]

PathLike = str | os.PathLike


def read_model(
    model: Any, weights: PathLike | None = None, limits: Limits = DEFAULT_LIMITS
) -> ir.ModelGraph:
    """The unlowered `ModelGraph` of a Keras/QKeras model file, config dict or object.

    Files stay open while the graph is built, so only the datasets the config asks for are
    read, each after its declared shape was checked against the config and ``limits``."""
    with ExitStack() as files:
        if isinstance(model, str | os.PathLike):
            return _read_path(
                Path(model), None if weights is None else Path(weights), files, limits
            )
        if isinstance(model, dict):
            if weights is None:
                raise RtlgenError("read_model(config_dict) needs weights=<weights .h5 file>")
            return build_graph(
                model, _h5_weights(Path(weights), files, limits), source="<config>", limits=limits
            )
        if is_keras_model(model):
            if weights is not None:
                raise RtlgenError(
                    "read_model(keras_model) takes the weights from the model; do not pass weights="
                )
            config, by_layer = config_and_weights(model)
            name = getattr(model, "name", "model")
            return build_graph(
                config,
                NamedWeights(by_layer, f"model '{name}'"),
                source=f"<in-memory {name}>",
                limits=limits,
            )
    raise RtlgenError(
        f"read_model: cannot read a {type(model).__name__}; pass a path (.h5, .json, .keras) "
        "or a tf.keras model"
    )


def _read_path(path: Path, weights: Path | None, files: ExitStack, limits: Limits) -> ir.ModelGraph:
    what = str(path)
    _check_file(path, what)
    kind = hdf5.sniff(path, what)
    if kind == "zip":
        config, variables = hdf5.open_keras_archive(path, what, files, limits)
        source = (
            _h5_weights(weights, files, limits)
            if weights is not None
            else _indexed(variables, what)
        )
        version = hdf5.keras_archive_version(path, what)
        return build_graph(config, source, source=what, limits=limits, keras_version=version)
    if kind == "hdf5":
        f = _open(path, what, files)
        config = hdf5.model_config_from_h5(f, what, limits)
        if config is None:
            raise ModelFileError(
                f"{what}: this HDF5 file holds only weights (no model_config); pass the "
                "model JSON as the model and this file as weights"
            )
        source = (
            _h5_weights(weights, files, limits)
            if weights is not None
            else NamedWeights(hdf5.weights_from_h5(f, what, limits), what)
        )
        version = hdf5.h5_keras_version(f, what)
        return build_graph(config, source, source=what, limits=limits, keras_version=version)
    if path.suffix.lower() in (".h5", ".hdf5", ".keras"):
        raise ModelFileError(f"{what}: not an HDF5 file or .keras archive (unrecognized content)")
    config = hdf5.read_json_file(path, what, limits)
    if weights is None:
        raise ModelFileError(
            f"{what}: a model JSON needs its weights: pass the weights .h5 (--weights on the "
            "command line, weights= in Python)"
        )
    return build_graph(config, _h5_weights(weights, files, limits), source=what, limits=limits)


def _check_file(path: Path, what: str) -> None:
    if not path.is_file():
        problem = "not a regular file" if path.exists() else "no such file"
        raise ModelFileError(f"{what}: {problem}")


def _open(path: Path, what: str, files: ExitStack):
    f = hdf5.open_file(path, what)
    files.callback(hdf5.close_quietly, f)
    return f


def _h5_weights(path: Path, files: ExitStack, limits: Limits):
    """The weight source of a separate weights file: by layer name (Keras 2
    ``save_weights("w.h5")``) or by class and creation order (``save_weights("w.weights.h5")``
    in Keras >= 2.13, which writes the ``.keras`` archive's layout)."""
    what = str(path)
    _check_file(path, what)
    if hdf5.sniff(path, what) != "hdf5":
        raise ModelFileError(
            f"{what}: weights must be a Keras HDF5 file (model.save_weights('w.h5') or "
            "model.save_weights('w.weights.h5'))"
        )
    f = _open(path, what, files)
    with hdf5.h5_errors(what):
        indexed = hdf5.is_indexed_weights_file(f)
    if indexed:
        return _indexed(hdf5.IndexedVariables(f, what), what)
    return NamedWeights(hdf5.weights_from_h5(f, what, limits), what)


def _indexed(variables: hdf5.IndexedVariables, what: str):
    """A weight source for `build_graph` over the ``layers/<snake class>[_N]`` layout: the
    paths depend on the model's layer list, so it is made once the layers are known."""
    return lambda layers: IndexedWeights(variables, layers, what)
