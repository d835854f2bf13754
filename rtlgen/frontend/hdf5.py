"""Reading Keras model files without TensorFlow: Keras 2 HDF5 (full model or weights) and
``.keras`` zip archives (``config.json`` + ``model.weights.h5``).

Keras 2 HDF5 layout (``model.save("m.h5")`` / ``model.save_weights("w.h5")``)::

    /                      attrs: model_config (JSON, full model only), keras_version, backend
    /model_weights         (full model only; a weights file has the next level at its root)
        attrs: layer_names = [b"conv1", b"dense", ...]   (long lists: layer_names0, 1, ...)
        /conv1             attrs: weight_names = [b"conv1/kernel:0", b"conv1/bias:0"]
            /conv1/kernel:0    dataset, addressed through weight_names, relative to /conv1

``.keras`` archive (Keras >= 2.13 ``model.save("m.keras")``): ``model.weights.h5`` holds
``layers/<snake_case class name>[_N]/vars/<i>``: layers are numbered per class in the order
of ``model.layers`` and variables in creation order (trainable first), with no names;
sub-layers add a level (``layers/q_conv2d_batchnorm/batchnorm/vars/<i>``).

Every failure becomes a `ModelFileError` naming the file; links out of the file (external
or soft links) are refused, and only numeric datasets of bounded size are read.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from rtlgen.quant.errors import ModelFileError

#: Largest dataset rtlgen reads (elements): far above any network it can turn into hardware.
MAX_DATASET_ELEMENTS = 1 << 28
#: Largest JSON config (bytes).
MAX_CONFIG_BYTES = 64 << 20

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
ZIP_MAGIC = b"PK\x03\x04"

LayerWeights = dict[str, np.ndarray]


@contextmanager
def open_h5(path: Path | str | io.BytesIO, what: str) -> Iterator[h5py.File]:
    """Open an HDF5 file read-only; any h5py/HDF5 failure inside becomes `ModelFileError`."""
    try:
        f = h5py.File(path, "r")
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"{what}: not a readable HDF5 file ({_h5_reason(exc)})") from None
    try:
        yield f
    except (OSError, KeyError, ValueError, RuntimeError, TypeError) as exc:
        raise ModelFileError(
            f"{what}: corrupt or unexpected HDF5 content ({_h5_reason(exc)})"
        ) from None
    finally:
        try:
            f.close()
        except Exception:  # noqa: BLE001 - closing a broken file must not mask the real error
            pass


def _h5_reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]


def _decode(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray):
        return [_decode(v) for v in value.tolist()]
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def string_list_attr(node: h5py.Group, name: str, what: str) -> list[str] | None:
    """A list-of-strings attribute, also when Keras split it into ``name0``, ``name1``, ..."""
    if name in node.attrs:
        raw = node.attrs[name]
    elif f"{name}0" in node.attrs:
        raw, chunk = [], 0
        while f"{name}{chunk}" in node.attrs:
            raw.extend(_as_list(node.attrs[f"{name}{chunk}"]))
            chunk += 1
    else:
        return None
    values = _decode(_as_list(raw))
    if not all(isinstance(v, str) for v in values):
        raise ModelFileError(f"{what}: attribute '{name}' is not a list of strings")
    return values


def _as_list(raw: Any) -> list[Any]:
    if isinstance(raw, np.ndarray):
        return list(raw.reshape(-1))
    if isinstance(raw, list | tuple):
        return list(raw)
    return [raw]


def _resolve(group: h5py.Group, path: str, what: str) -> h5py.HLObject | None:
    """``group[path]`` following hard links only (no external/soft links out of the file)."""
    node: Any = group
    for part in [p for p in path.split("/") if p]:
        if not isinstance(node, h5py.Group) or part not in node:
            return None
        link = node.get(part, getlink=True)
        if not isinstance(link, h5py.HardLink):
            raise ModelFileError(
                f"{what}: '{path}' is a {type(link).__name__}; only plain datasets are read"
            )
        node = node[part]
    return node


def read_dataset(node: Any, what: str) -> np.ndarray:
    if not isinstance(node, h5py.Dataset):
        raise ModelFileError(f"{what}: expected a dataset")
    if node.dtype.kind not in "fiub":
        raise ModelFileError(f"{what}: dataset has dtype {node.dtype}, expected numbers")
    if node.size > MAX_DATASET_ELEMENTS:
        raise ModelFileError(f"{what}: dataset of shape {node.shape} is too large")
    data = np.asarray(node[()])
    return data.astype(np.float32) if data.dtype.kind == "f" and data.dtype.itemsize < 4 else data


def weight_short_name(weight_name: str) -> str:
    """``"conv1/kernel:0"`` -> ``"kernel"``; ``"cbn/batch_normalization/gamma:0"`` -> ``"gamma"``."""
    return re.sub(r":\d+$", "", weight_name.rsplit("/", 1)[-1])


# ---------------------------------------------------------------------------------------
# Keras 2 HDF5
# ---------------------------------------------------------------------------------------
def model_config_from_h5(f: h5py.File, what: str) -> dict[str, Any] | None:
    """The ``model_config`` JSON of a full-model file (None for a weights-only file)."""
    if "model_config" not in f.attrs:
        return None
    raw = _decode(f.attrs["model_config"])
    if not isinstance(raw, str):
        raise ModelFileError(f"{what}: attribute 'model_config' is not a JSON string")
    return parse_json(raw, what)


def weights_from_h5(f: h5py.File, what: str) -> dict[str, LayerWeights]:
    """Weights by layer name, each by short name (``kernel``, ``bias``, ``gamma`` ...)."""
    root: Any = f
    if "model_weights" in f:
        root = _resolve(f, "model_weights", what)
    layer_names = string_list_attr(root, "layer_names", what)
    if layer_names is None:
        raise ModelFileError(
            f"{what}: no Keras weights found (no 'layer_names' attribute): expected a Keras 2 "
            "HDF5 file written by model.save('m.h5') or model.save_weights('w.h5')"
        )
    out: dict[str, LayerWeights] = {}
    for layer in layer_names:
        group = _resolve(root, layer, what)
        if not isinstance(group, h5py.Group):
            raise ModelFileError(f"{what}: layer '{layer}' is listed but has no weight group")
        names = string_list_attr(group, "weight_names", f"{what}: layer '{layer}'") or []
        weights: LayerWeights = {}
        for name in names:
            node = _resolve(group, name, what)
            if node is None:
                raise ModelFileError(
                    f"{what}: layer '{layer}' lists weight '{name}' but the file has no such dataset"
                )
            short = weight_short_name(name)
            if short in weights:
                raise ModelFileError(f"{what}: layer '{layer}' has two weights named '{short}'")
            weights[short] = read_dataset(node, f"{what}: weight '{layer}/{name}'")
        out[layer] = weights
    return out


def parse_json(text: str | bytes, what: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise ModelFileError(f"{what}: not valid JSON ({reason})") from None
    if not isinstance(data, dict):
        raise ModelFileError(f"{what}: expected a JSON object with 'class_name' and 'config'")
    return data


def read_json_file(path: Path, what: str) -> dict[str, Any]:
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ModelFileError(f"{what}: {size} bytes is too large for a model config")
        return parse_json(path.read_bytes(), what)
    except OSError as exc:
        raise ModelFileError(f"{what}: cannot read ({exc.strerror or exc})") from None


# ---------------------------------------------------------------------------------------
# .keras archives
# ---------------------------------------------------------------------------------------
def read_keras_archive(path: Path, what: str) -> tuple[dict[str, Any], dict[str, list[np.ndarray]]]:
    """(model config, ``layers/<snake>`` -> variables in order) of a ``.keras`` zip."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = {info.filename: info for info in archive.infolist()}
            if "config.json" not in members:
                raise ModelFileError(f"{what}: .keras archive without config.json")
            if members["config.json"].file_size > MAX_CONFIG_BYTES:
                raise ModelFileError(f"{what}: config.json is too large")
            config = parse_json(archive.read("config.json"), f"{what} (config.json)")
            if "model.weights.h5" not in members:
                raise ModelFileError(f"{what}: .keras archive without model.weights.h5")
            info = members["model.weights.h5"]
            if info.file_size > MAX_DATASET_ELEMENTS * 8:
                raise ModelFileError(f"{what}: model.weights.h5 is too large")
            blob = io.BytesIO(archive.read("model.weights.h5"))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, RuntimeError) as exc:
        raise ModelFileError(
            f"{what}: not a readable .keras (zip) archive ({_h5_reason(exc)})"
        ) from None
    inner = f"{what} (model.weights.h5)"
    with open_h5(blob, inner) as f:
        variables = indexed_variables(f, inner)
    return config, variables


def is_indexed_weights_file(f: h5py.File) -> bool:
    """A ``.weights.h5`` file in the newer layout (Keras >= 2.13 ``save_weights("w.weights.h5")``,
    the ``model.weights.h5`` of a ``.keras`` archive): ``layers/...`` groups, no ``layer_names``."""
    return "layer_names" not in f.attrs and "model_weights" not in f and "layers" in f


def indexed_variables(f: h5py.File, what: str) -> dict[str, list[np.ndarray]]:
    """``layers/<snake class>[_N]`` -> its variables in order, of the newer weights layout."""
    variables: dict[str, list[np.ndarray]] = {}
    layers = _resolve(f, "layers", what)
    if isinstance(layers, h5py.Group):
        _collect_vars(layers, "layers", variables, what, depth=0)
    return variables


def _collect_vars(
    group: h5py.Group, path: str, out: dict[str, list[np.ndarray]], what: str, depth: int
) -> None:
    """Every ``<path>/vars/<i>`` below ``group`` (sub-layers such as a folded layer's
    ``batchnorm`` are nested one level deeper), keyed by ``<path>``."""
    if depth > 4:
        return
    for key in group:
        child = _resolve(group, key, what)
        if not isinstance(child, h5py.Group):
            continue
        if key == "vars":
            arrays = []
            for index in range(len(child)):
                node = _resolve(child, str(index), what)
                if node is None:
                    raise ModelFileError(f"{what}: {path}/vars has no variable {index}")
                arrays.append(read_dataset(node, f"{what}: {path}/vars/{index}"))
            out[path] = arrays
        else:
            _collect_vars(child, f"{path}/{key}", out, what, depth + 1)


def sniff(path: Path, what: str) -> str:
    """'hdf5', 'zip' or 'json' from the file's first bytes."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
    except OSError as exc:
        raise ModelFileError(f"{what}: cannot read ({exc.strerror or exc})") from None
    if head.startswith(HDF5_MAGIC):
        return "hdf5"
    if head.startswith(ZIP_MAGIC):
        return "zip"
    return "json"
