"""The Python entry points: load a model into a lowered graph, predict, convert."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from rtlgen import ir
from rtlgen.frontend.limits import DEFAULT_LIMITS, Limits
from rtlgen.frontend.npy import read_npy
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
    calibrate: np.ndarray | dict[str, np.ndarray] | None = None,
    limits: Limits = DEFAULT_LIMITS,
    example_input: Any = None,
    input_types: Mapping[str, str | FixedType] | None = None,
) -> ir.ModelGraph:
    """A Keras/QKeras model (file path, json + weights, or in-memory object), a QONNX
    ``.onnx`` file (Brevitas ``export_qonnx``, `rtlgen.frontend.qonnx`), a Brevitas
    ``torch.nn.Module`` with ``example_input`` (exported in memory), or an OUTDIR /
    graph.npz written by `rtlgen convert`, as a lowered `ModelGraph`.

    ``input_type`` (e.g. ``"fixed<8,1>"``) overrides the config's input stream type;
    ``input_types`` ({input name: type}) a model input's own, also over the config's
    ``inputs`` (an unknown name is an `RtlgenError` naming the model's inputs).
    ``calibrate``: sample inputs (N, *input_shape), or {input name: samples} for a model
    with several inputs; unquantized (float-model) results then
    get the integer bits the data needs plus the config's headroom, instead of the
    worst case that interval analysis proves (see `rtlgen.calibrate`).
    ``limits``: caps on parameters, bytes and shapes, checked before anything is allocated
    (`rtlgen.frontend.limits.Limits`; the CLI raises ``max_parameters`` with --max-params).
    """
    typed = input_type is not None or bool(input_types)  # an input type was given
    if isinstance(model, str | Path):
        path = Path(model)
        if path.is_dir() and (path / "graph.npz").exists():
            # A design folder is untrusted: its manifest is checked first, and graph.npz must
            # lie inside it (not be a symlink to somewhere else).
            from rtlgen.manifest import read_manifest

            graph_path = read_manifest(path).graph_path
            return _load_saved(graph_path, weights, config or typed or None, limits)
        if path.suffix == ".npz":
            return _load_saved(path, weights, config or typed or None, limits)
        if not path.exists():
            raise RtlgenError(f"model file {path} does not exist")
        if path.is_dir() and (path / "saved_model.pb").exists():
            raise RtlgenError(
                f"{path} is a TensorFlow SavedModel folder, which rtlgen does not read (its "
                "graph is TensorFlow code): save the model as a file, model.save('m.h5') or "
                "model.save('m.keras')"
            )
        if path.is_dir():
            raise RtlgenError(
                f"{path} is a directory without graph.npz: pass a model file (.h5, .json, "
                ".keras) or a directory written by 'rtlgen convert'"
            )
    from rtlgen.frontend import read_model
    from rtlgen.frontend.qonnx import is_torch_module

    if is_torch_module(model):
        from rtlgen.frontend.qonnx import read_brevitas

        graph = read_brevitas(model, example_input, limits, input_from_quant=not typed)
    elif isinstance(model, str | Path) and Path(model).suffix.lower() == ".onnx":
        if weights is not None:
            raise RtlgenError(f"{model}: a QONNX model holds its weights; do not pass weights")
        from rtlgen.frontend.qonnx import read_qonnx

        # an explicit input type keeps the input quantizer as a node after that type
        graph = read_qonnx(model, limits, input_from_quant=not typed)
    else:
        graph = read_model(model, weights=weights, limits=limits)
    precision = _config(config)
    if input_type is not None:
        precision = dataclasses.replace(precision, input=_input_type(input_type))
    if input_types:
        named = {name: _input_type(t, f"--input-type {name}=") for name, t in input_types.items()}
        kept = tuple((name, t) for name, t in precision.inputs if name not in named)
        precision = dataclasses.replace(precision, inputs=kept + tuple(named.items()))
    if calibrate is None:
        return lower(graph, precision)
    from rtlgen.calibrate import calibrate as measure

    folded = fuse_activations(fold_batchnorm(graph))
    peaks = measure(folded, calibrate)
    return infer_precision(folded, dataclasses.replace(precision, calibration=tuple(peaks.items())))


def _input_type(value: str | FixedType, option: str = "--input-type") -> FixedType:
    if isinstance(value, FixedType):
        return value
    if not isinstance(value, str):
        raise RtlgenError(
            f"input type: expected a precision string such as 'fixed<16,6>', got {value!r}"
        )
    try:
        return FixedType.parse(value)
    except RtlgenError as exc:
        raise RtlgenError(f"input type ({option}): {exc}") from None


def _load_saved(path: Path, weights: Any, config: Any, limits: Limits) -> ir.ModelGraph:
    if weights is not None or config is not None:
        raise RtlgenError(
            f"{path}: a converted design is already lowered; --weights/--config/--input-type do not apply"
        )
    from rtlgen.serialize import load_graph

    return load_graph(path, limits)


def _config(config: str | Path | PrecisionConfig | None) -> PrecisionConfig:
    if config is None:
        return DEFAULT_PRECISION
    if isinstance(config, PrecisionConfig):
        return config
    from rtlgen.config import load_config

    return load_config(Path(config))


def load_array(
    path: str | Path,
    what: str = "input",
    sample_shape: tuple[int, ...] | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> np.ndarray:
    """A real-valued .npy array of samples (N, ...), N >= 1, read without trusting the file.

    The header is checked before anything is allocated (dtype, declared size against the
    file's real size and ``limits.max_bytes``); complex, timedelta, datetime, bool, string,
    object and structured arrays, NaN/infinity, zero samples and 0-d arrays are refused.
    ``sample_shape``: the shape of one sample, e.g. a model's input shape (a single sample
    of exactly that shape is accepted as N = 1).
    """
    p = Path(path)
    if not p.is_file():
        problem = "is not a file" if p.exists() else "does not exist"
        raise RtlgenError(f"{what} file {p} {problem} (expected a .npy array)")
    label = f"{what} file {p}"
    try:
        size = p.stat().st_size
        with open(p, "rb") as handle:
            arr = read_npy(handle, size, label, limits, kinds="iuf")
    except OSError as exc:
        raise RtlgenError(f"{label}: cannot read ({exc.strerror or exc})") from None
    expected = "(N, *sample shape)" if sample_shape is None else _shape_text(sample_shape)
    if arr.ndim == 0:
        raise RtlgenError(
            f"{label} holds a single number (a 0-d array); expected an array of shape {expected}"
        )
    if sample_shape is not None and tuple(arr.shape) == tuple(sample_shape):
        arr = arr[None]
    if arr.shape[0] == 0:
        raise RtlgenError(
            f"{label} holds zero samples (shape {arr.shape}); expected shape {expected} with N >= 1"
        )
    if sample_shape is not None and tuple(arr.shape[1:]) != tuple(sample_shape):
        raise RtlgenError(f"{label} has shape {arr.shape}; expected {expected}")
    if arr.dtype.kind == "f":
        bad = int(np.count_nonzero(~np.isfinite(arr)))
        if bad:
            raise RtlgenError(f"{label} contains {bad} NaN or infinite value(s) (of {arr.size})")
    return arr


def input_names(graph: ir.ModelGraph) -> tuple[str, ...]:
    """The names of a graph's inputs as the manifest, REPORT.md and `.npz` files give them
    (`rtlgen.plan.input_names`: the Keras input layer names, made plain identifiers)."""
    from rtlgen.plan import input_names as names

    return names(graph)


def load_inputs(
    path: str | Path,
    graph: ir.ModelGraph,
    limits: Limits = DEFAULT_LIMITS,
    notes: list[str] | None = None,
) -> np.ndarray | dict[str, np.ndarray]:
    """The float inputs of ``graph`` from a file: a `.npy` array (N, *input shape) for a
    one-input model (`load_array`); for a model with several inputs an `.npz` with one real
    array per input name (`input_names`), returned as {input node name: array} for
    `rtlgen.quant.reference.quantize_input`. Members are read like `load_array`'s file
    (header first, no pickle, `limits`); a missing or extra name is a one-line error.
    A channels-first model (QONNX, `ir.ModelGraph.input_layout`) takes its own layout or
    the stream's (`to_stream_layout`); which one was used is appended to ``notes``."""
    import zipfile

    p = Path(path)
    names = input_names(graph)
    if len(names) == 1 and not (p.is_file() and zipfile.is_zipfile(p)):
        if graph.input_layout:  # a channels-first model: its own layout or the stream's
            x = load_array(p, limits=limits)
            return to_stream_layout(graph, x, f"input file {p}", notes)
        return load_array(p, sample_shape=tuple(graph.input_shape), limits=limits)
    if not p.is_file():
        problem = "is not a file" if p.exists() else "does not exist"
        raise RtlgenError(f"input file {p} {problem} (expected an .npz, one array per input)")
    if not zipfile.is_zipfile(p):
        raise RtlgenError(
            f"input file {p}: model '{graph.name}' has {len(names)} inputs ({', '.join(names)}); "
            "give an .npz with one array per input name"
        )
    arrays = load_arrays(p, "input", limits)
    if sorted(arrays) != sorted(names):
        shown = ", ".join(name[:40] for name in sorted(arrays)[:8])
        raise RtlgenError(
            f"input file {p}: arrays named [{shown}]; expected one per input: {', '.join(names)}"
        )
    by_node = dict(zip(names, (node.name for node in graph.input_nodes), strict=True))
    return {by_node[name]: arrays[name] for name in names}


def to_stream_layout(
    graph: ir.ModelGraph, x: Any, what: str = "input", notes: list[str] | None = None
) -> np.ndarray:
    """Inputs of a channels-first model (`ir.ModelGraph.input_layout` "nchw"/"ncl") in the
    stream's layout (N, H, W, C) / (N, L, C): an array in the model's own layout (N, C, H,
    W) / (N, C, L) is transposed, one already in the stream's layout is kept (when both
    fit, C = H = W, the model's own layout is assumed). A single sample may omit N. Which
    layout was taken is appended to ``notes``. Other graphs: ``x`` unchanged."""
    x = np.asarray(x)
    if not graph.input_layout:
        return x
    own, stream = tuple(graph.source_input_shape), tuple(graph.input_shape)
    if x.shape in (own, stream):
        x = x[None]
    letters = "(N, C, H, W)" if graph.input_layout == "nchw" else "(N, C, L)"
    if x.shape[1:] == own:
        axes = (0, *range(2, x.ndim), 1)
        if notes is not None:
            notes.append(
                f"input layout: the model's own {letters} {x.shape}, moved to the stream's "
                f"channels-last order"
            )
        return np.ascontiguousarray(np.transpose(x, axes))
    if x.shape[1:] == stream:
        if notes is not None:
            notes.append(f"input layout: the stream's channels-last (N, {_dims(stream)})")
        return x
    raise RtlgenError(
        f"{what} has shape {x.shape}; expected the model's {letters} = {_shape_text(own)} "
        f"or channels-last {_shape_text(stream)}"
    )


def _dims(shape: tuple[int, ...]) -> str:
    return ", ".join(map(str, shape))


def load_arrays(
    path: str | Path, what: str = "input", limits: Limits = DEFAULT_LIMITS
) -> dict[str, np.ndarray]:
    """The real-valued arrays of an `.npz` file by name ({name: (N, ...)}, N >= 1), each
    member read like `load_array`'s file: header first, no pickle, ``limits``; at most 64."""
    import zipfile
    import zlib

    p = Path(path)
    label = f"{what} file {p}"
    arrays: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(p) as archive:
            members = [info for info in archive.infolist() if not info.is_dir()]
            if len(members) > 64 or not all(m.filename.endswith(".npy") for m in members):
                shown = ", ".join(m.filename[:40] for m in members[:8])
                raise RtlgenError(
                    f"{label}: members [{shown}]; expected an .npz of at most 64 .npy arrays"
                )
            for info in members:
                name = info.filename.removesuffix(".npy")
                where = f"{label}: array '{name}'"
                if info.file_size > limits.max_bytes + 4096:
                    raise RtlgenError(
                        f"{where}: {info.file_size:,} bytes is more than the limit of "
                        f"{limits.max_bytes:,}"
                    )
                with archive.open(info) as member:
                    arr = read_npy(member, info.file_size, where, limits, kinds="iuf")
                if arr.ndim == 0 or arr.shape[0] == 0:
                    raise RtlgenError(f"{where} has shape {arr.shape}; expected (N, *shape), N >= 1")
                if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
                    raise RtlgenError(f"{where} contains NaN or infinite values")
                arrays[name] = arr
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, OSError, EOFError,
            ValueError, NotImplementedError, RuntimeError) as exc:  # RuntimeError: encrypted
        raise RtlgenError(f"{label}: cannot read ({' '.join(str(exc).split())[:120]})") from None
    return arrays


def _shape_text(sample_shape: tuple[int, ...]) -> str:
    return f"(N, {', '.join(map(str, sample_shape))})"


def output_names(graph: ir.ModelGraph) -> tuple[str, ...]:
    """The names of a graph's outputs as the manifest, REPORT.md and `.npz` files give them
    (`rtlgen.plan.output_names`: the Keras output layer names, made plain identifiers)."""
    from rtlgen.plan import output_names as names

    return names(graph)


def named_outputs(graph: ir.ModelGraph, by_node: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """{output name: array} from {output node name: array} (`run_int_outputs`), in the order
    of ``graph.outputs``."""
    return {
        name: by_node[node] for node, name in zip(graph.outputs, output_names(graph), strict=True)
    }


def dequantized_outputs(
    graph: ir.ModelGraph, by_node: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """{output name: float64 values (N, outputs)} of output mantissas {output node name:
    (N, *shape)}: each output's type dequantized and flattened per sample, as `rtlgen
    predict` writes them."""
    arrays = {}
    for index, (node, name) in enumerate(zip(graph.output_nodes, output_names(graph), strict=True)):
        y = graph.dequantize(index, by_node[node.name])  # with its OutputScale, if any
        arrays[name] = y.reshape(y.shape[0], -1)
    return arrays


def predict_outputs(graph: ir.ModelGraph, x: Any) -> dict[str, np.ndarray]:
    """Float inputs (N, *input shape), or {input name: array} for a graph with several
    inputs -> {output name: dequantized outputs (N, *shape)} of every output of the
    lowered graph (`rtlgen.quant.reference.predict` gives the first alone)."""
    from rtlgen.quant.reference import quantize_input, run_int_outputs

    by_node = run_int_outputs(graph, quantize_input(graph, x))
    arrays = {}
    for index, (node, name) in enumerate(zip(graph.output_nodes, output_names(graph), strict=True)):
        arrays[name] = graph.dequantize(index, by_node[node.name])
    return arrays
