"""Save/load a lowered `ModelGraph` as one `.npz` (a JSON description + integer arrays).

No pickle: loading a file never executes anything from it. A design folder is untrusted
data, so `load_graph` checks everything before use: each archive member's declared size
before it is inflated (`rtlgen.frontend.npy`), the JSON's types, every node's shapes,
geometry, fixed-point types and constants against each other, and `Limits`. Any
inconsistency is one `ModelFileError` naming the file and the node.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import typing
import zipfile
import zlib
from enum import Enum
from pathlib import Path
from types import UnionType
from typing import Any

import numpy as np

from rtlgen import ir
from rtlgen.frontend.limits import (
    DEFAULT_LIMITS,
    MAX_DIMENSION,
    Limits,
    check_parameters,
    element_count,
)
from rtlgen.frontend.npy import read_npy
from rtlgen.quant.errors import ModelFileError, RtlgenError
from rtlgen.quant.fixed import FixedType, Overflow, Rounding

Shape = tuple[int, ...]

FORMAT_VERSION = 1
#: node classes with hand-written fields and checks below; every other registered op's node
#: is saved field by field (`_generic_fields`) and checked by its op's ``validate``
_LEGACY_TYPES: dict[str, type[ir.Node]] = {
    cls.__name__: cls
    for cls in (ir.Input, ir.Conv, ir.Dense, ir.ScaleShift, ir.Activation, ir.Pool, ir.Flatten)
}
_COMMON_FIELDS = frozenset(
    {"name", "in_shape", "out_shape", "out_type", "source", "out_quantizer", "inputs"}
)


def _node_types() -> dict[str, type[ir.Node]]:
    from rtlgen.ops.registry import ops

    types = dict(_LEGACY_TYPES)
    for op in ops():
        for cls in op.node_types:
            types.setdefault(cls.__name__, cls)
    return types


def _generic_fields(node: ir.Node) -> dict[str, Any]:
    """The JSON form of a non-legacy node's own fields (constants go to arrays)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(node):
        value = getattr(node, f.name)
        if f.name in _COMMON_FIELDS or isinstance(value, ir.QTensor):
            continue
        if isinstance(value, FixedType):
            out[f.name] = _type(value)
        elif isinstance(value, Enum):
            out[f.name] = value.value
        elif isinstance(value, ir.Clamp):
            out[f.name] = [value.lo, value.hi]
        elif isinstance(value, tuple):
            out[f.name] = list(value)
        elif value is None or isinstance(value, bool | int | float | str):
            out[f.name] = value
        else:
            raise ValueError(f"node {node.name}: field {f.name} of type {type(value)} is not saved")
    return out


def _type(t: FixedType | None) -> list[Any] | None:
    return None if t is None else [t.width, t.frac, t.signed]


def _untype(v: list[Any] | None) -> FixedType | None:
    return None if v is None else FixedType(int(v[0]), int(v[1]), bool(v[2]))


def save_graph(graph: ir.ModelGraph, path: Path) -> None:
    if not graph.lowered:
        raise ValueError("only lowered graphs are saved")
    arrays: dict[str, np.ndarray] = {}
    nodes = []
    for index, node in enumerate(graph.nodes):
        desc: dict[str, Any] = {
            "class": type(node).__name__,
            "name": node.name,
            "source": node.source,
            "in_shape": list(node.in_shape),
            "out_shape": list(node.out_shape),
            "out_type": _type(node.out_type),
            "inputs": list(node.inputs),
        }
        for key, tensor in ir.constants(node).items():
            assert isinstance(tensor, ir.QTensor)
            arrays[f"n{index}_{key}"] = tensor.mantissa
            desc[key] = _type(tensor.type)
        if isinstance(node, ir._Arithmetic):
            desc.update(
                activation=[node.activation.lo, node.activation.hi],
                acc_type=_type(node.acc_type),
                rounding=node.rounding.value,
                overflow=node.overflow.value,
            )
        if isinstance(node, ir.Conv):
            desc.update(
                kernel=list(node.kernel), stride=list(node.stride), padding=list(node.padding)
            )
            if node.groups != 1:
                desc["groups"] = node.groups
            if node.dilation != (1, 1):
                desc["dilation"] = list(node.dilation)
        if type(node).__name__ not in _LEGACY_TYPES:
            desc["fields"] = _generic_fields(node)
        if isinstance(node, ir.Pool):
            desc.update(
                kind=node.kind.value,
                pool=list(node.pool),
                stride=list(node.stride),
                padding=list(node.padding),
                rounding=node.rounding.value,
            )
        nodes.append(desc)
    meta = {
        "format_version": FORMAT_VERSION,
        "name": graph.name,
        "softmax": graph.softmax,
        "source": graph.source,
        "nodes": nodes,
        "outputs": list(graph.outputs),
        "softmax_outputs": list(graph.softmax_outputs),
    }
    if graph.input_layout:
        meta["input_layout"] = graph.input_layout
    for key in ("constant_layers", "removed_layers"):  # report only: the first 64 names
        if getattr(graph, key):
            meta[key] = list(getattr(graph, key))[:64]
    if graph.output_scales:  # arrays out{k}_scale / out{k}_bias (float64, exact)
        meta["output_scales"] = [scale is not None for scale in graph.output_scales]
        for k, scale in enumerate(graph.output_scales):
            if scale is not None:
                arrays[f"out{k}_scale"], arrays[f"out{k}_bias"] = scale.scale, scale.bias
    with open(path, "wb") as f:
        np.savez_compressed(f, __graph__=np.array(json.dumps(meta)), **arrays)


def load_graph(path: Path, limits: Limits = DEFAULT_LIMITS) -> ir.ModelGraph:
    """The lowered graph saved by `save_graph`, checked throughout (see the module doc)."""
    path = Path(path)
    archive = _GraphArchive(path, limits)
    try:
        meta = archive.meta()
        return _Reader(str(path), archive, limits).graph(meta)
    finally:
        archive.close()


class _GraphArchive:
    """The members of a graph ``.npz``, each read only when needed and through `read_npy`."""

    def __init__(self, path: Path, limits: Limits):
        self.what, self.limits = str(path), limits
        try:
            self.zip = zipfile.ZipFile(path)
            self.members = {info.filename: info for info in self.zip.infolist()}
        except (
            zipfile.BadZipFile,
            zipfile.LargeZipFile,
            OSError,
            EOFError,
            ValueError,
            NotImplementedError,  # a "version needed to extract" zipfile does not know
        ) as exc:
            raise ModelFileError(f"{path}: not an rtlgen graph file ({_reason(exc)})") from None

    def close(self) -> None:
        self.zip.close()

    def array(self, name: str, kinds: str = "iu", max_bytes: int | None = None) -> np.ndarray:
        info = self.members.get(f"{name}.npy")
        if info is None:
            raise ModelFileError(f"{self.what}: array '{name}' is missing")
        limit = self.limits.max_bytes if max_bytes is None else max_bytes
        what = f"{self.what}: array '{name}'"
        if info.file_size > limit + 4096:
            raise ModelFileError(
                f"{what}: {info.file_size:,} bytes is more than the limit of {limit:,}"
            )
        try:
            with self.zip.open(info) as member:
                return read_npy(member, info.file_size, what, self.limits, kinds, ModelFileError)
        except (
            zipfile.BadZipFile,
            zlib.error,  # a corrupt deflate stream
            OSError,
            EOFError,
            ValueError,
            NotImplementedError,
            RuntimeError,  # zipfile: "... is encrypted, password required for extraction"
        ) as exc:
            raise ModelFileError(f"{what}: cannot read ({_reason(exc)})") from None

    def meta(self) -> dict[str, Any]:
        text = self.array("__graph__", kinds="U", max_bytes=self.limits.max_config_bytes * 4)
        if text.shape != ():
            raise ModelFileError(f"{self.what}: '__graph__' is not a single JSON string")
        try:
            meta = json.loads(str(text))
        except (ValueError, RecursionError) as exc:
            raise ModelFileError(
                f"{self.what}: '__graph__' is not valid JSON ({_reason(exc)})"
            ) from None
        if not isinstance(meta, dict):
            raise ModelFileError(f"{self.what}: '__graph__' is not a JSON object")
        return meta


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:160]


_NAME_RE = re.compile(r"^[^\x00-\x1f\x7f]{1,256}$")  # printable, one line
_SOURCE_RE = re.compile(r"^[^\x00-\x1f\x7f]{0,4096}$")
_MAX_FRAC = 256  # fractional bits of a saved type: far beyond what lowering produces
_MAX_SHIFT = 62  # an exact alignment shift of int64 mantissas


class _Reader:
    """Typed access to the JSON description: every value checked, every failure one line."""

    def __init__(self, what: str, archive: _GraphArchive, limits: Limits):
        self.what, self.archive, self.limits = what, archive, limits
        self.parameters = 0  # constants declared so far, capped like a model's

    def fail(self, where: str, message: str) -> ModelFileError:
        return ModelFileError(f"{self.what}: {where}: {message}")

    def get(self, desc: dict[str, Any], key: str, where: str) -> Any:
        if key not in desc:
            raise self.fail(where, f"'{key}' is missing")
        return desc[key]

    def string(
        self, desc: dict[str, Any], key: str, where: str, pattern: re.Pattern[str] | None = None
    ) -> str:
        value = self.get(desc, key, where)
        if (
            not isinstance(value, str)
            or len(value) > 4096
            or (pattern and not pattern.match(value))
        ):
            raise self.fail(where, f"'{key}' = {_short(value)} is not a valid name")
        return value

    def names(
        self, desc: dict[str, Any], key: str, where: str, default: Any
    ) -> tuple[str, ...] | Any:
        """A list of node names (at most 64), or ``default`` when the key is absent."""
        if key not in desc:
            return default
        value = desc[key]
        if (
            not isinstance(value, list)
            or len(value) > 64
            or not all(isinstance(v, str) and _NAME_RE.match(v) for v in value)
        ):
            raise self.fail(where, f"'{key}' = {_short(value)} is not a list of node names")
        return tuple(value)

    def integer(self, value: Any, where: str, key: str, lo: int, hi: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise self.fail(where, f"'{key}' = {_short(value)} is not an integer in {lo}..{hi}")
        return value

    def ints(
        self, desc: dict[str, Any], key: str, where: str, lengths: tuple[int, ...], lo: int
    ) -> tuple[int, ...]:
        value = self.get(desc, key, where)
        if not isinstance(value, list) or len(value) not in lengths:
            raise self.fail(
                where,
                f"'{key}' = {_short(value)} is not a list of {'/'.join(map(str, lengths))} integers",
            )
        return tuple(self.integer(v, where, key, lo, MAX_DIMENSION) for v in value)

    def shape(self, desc: dict[str, Any], key: str, where: str) -> tuple[int, ...]:
        shape = self.ints(desc, key, where, (1, 2, 3), 1)
        if element_count(shape) > self.limits.max_activations:
            raise self.fail(
                where, f"'{key}' {shape} has more than {self.limits.max_activations:,} elements"
            )
        return shape

    def fixed(self, value: Any, where: str, key: str) -> FixedType:
        if not isinstance(value, list) or len(value) != 3 or not isinstance(value[2], bool):
            raise self.fail(
                where, f"'{key}' = {_short(value)} is not a fixed-point type [width, frac, signed]"
            )
        width = self.integer(value[0], where, f"{key} width", 1, 62)
        frac = self.integer(value[1], where, f"{key} frac", -_MAX_FRAC, _MAX_FRAC)
        return FixedType(width, frac, value[2])

    def enum(self, desc: dict[str, Any], key: str, where: str, kind: type[Any]) -> Any:
        value = self.get(desc, key, where)
        try:
            return kind(value)
        except (ValueError, TypeError):
            allowed = ", ".join(str(m.value) for m in kind)
            raise self.fail(where, f"'{key}' = {_short(value)} is not one of {allowed}") from None

    def bound(self, value: Any, where: str) -> float | None:
        if value is None:
            return None
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise self.fail(where, f"activation bound {_short(value)} is not a finite number")
        return float(value)

    def constant(
        self,
        desc: dict[str, Any],
        index: int,
        key: str,
        where: str,
        shape: tuple[int, ...] | list[tuple[int, ...]],
    ) -> ir.QTensor:
        """The constant ``key`` of node ``index``, of ``shape`` (or one of a list of them:
        a PReLU's alphas per channel or per element)."""
        t = self.fixed(self.get(desc, key, where), where, key)
        shapes = shape if isinstance(shape, list) else [shape]
        self.parameters += max(element_count(s) for s in shapes)
        check_parameters(self.parameters, self.limits, f"{self.what}: {where}")
        mantissa = self.archive.array(f"n{index}_{key}")
        if tuple(mantissa.shape) not in shapes:
            needs = " or ".join(str(s) for s in shapes)
            raise self.fail(
                where, f"'{key}' has shape {tuple(mantissa.shape)}, the node needs {needs}"
            )
        if (
            mantissa.dtype.kind == "u"
            and mantissa.dtype.itemsize == 8
            and mantissa.size
            and int(mantissa.max()) >= 2**63
        ):
            raise self.fail(where, f"'{key}' mantissas do not fit {t}")
        try:
            return ir.QTensor(mantissa.astype(np.int64), t)
        except ValueError as exc:
            raise self.fail(where, f"'{key}': {exc}") from None

    # -- the graph ---------------------------------------------------------------------
    def graph(self, meta: dict[str, Any]) -> ir.ModelGraph:
        if meta.get("format_version") != FORMAT_VERSION:
            raise ModelFileError(
                f"{self.what}: graph format {_short(meta.get('format_version'))} is not supported "
                f"(this rtlgen reads format {FORMAT_VERSION})"
            )
        name = self.string(meta, "name", "graph", _NAME_RE)
        softmax = self.get(meta, "softmax", "graph")
        if not isinstance(softmax, bool):
            raise self.fail("graph", f"'softmax' = {_short(softmax)} is not true/false")
        source = self.string(meta, "source", "graph", _SOURCE_RE)
        descs = self.get(meta, "nodes", "graph")
        if not isinstance(descs, list) or not descs or len(descs) > 10_000:
            raise self.fail("graph", "'nodes' is not a non-empty list of nodes")
        nodes: list[ir.Node] = []
        types: dict[str, FixedType | None] = {}
        for index, desc in enumerate(descs):
            if not isinstance(desc, dict):
                raise self.fail(f"node {index}", "is not a JSON object")
            is_input = desc.get("class") == "Input"
            # the Inputs come first (one, or several in the model's input order)
            if (index == 0 and not is_input) or (
                is_input and not all(isinstance(n, ir.Input) for n in nodes)
            ):
                raise self.fail(
                    f"node {index}",
                    "the first node, and only it, must be the Input (or the first nodes, "
                    "for several inputs)",
                )
            inputs = self.names(desc, "inputs", f"node {index}", default=None)
            if is_input:
                inputs = ()
            elif inputs is None:  # written before graphs could branch: a chain
                inputs = (nodes[-1].name,) if nodes else ()
            if any(name not in types for name in inputs):
                raise self.fail(f"node {index}", f"inputs {list(inputs)} are not earlier nodes")
            node = self.node(desc, index, types[inputs[0]] if inputs else None)
            nodes.append(node if is_input else node.replace(inputs=inputs))
            types[node.name] = node.out_type
        outputs = self.names(meta, "outputs", "graph", default=())
        softmax_outputs = self.names(meta, "softmax_outputs", "graph", default=())
        output_scales = self.output_scales(meta)
        input_layout = meta.get("input_layout", "")
        constant_layers = self.names(meta, "constant_layers", "graph", default=())
        removed_layers = self.names(meta, "removed_layers", "graph", default=())
        if input_layout not in ("", "nchw", "ncl"):
            raise self.fail("graph", f"'input_layout' = {_short(input_layout)} is not nchw/ncl")
        try:
            return ir.ModelGraph(
                name,
                tuple(nodes),
                softmax=softmax,
                source=source,
                outputs=outputs,
                softmax_outputs=softmax_outputs,
                output_scales=output_scales,
                input_layout=input_layout,
                constant_layers=constant_layers,
                removed_layers=removed_layers,
            )
        except RtlgenError as exc:
            raise ModelFileError(f"{self.what}: {exc}") from None

    def output_scales(self, meta: dict[str, Any]) -> tuple[ir.OutputScale | None, ...]:
        """`ir.ModelGraph.output_scales` (absent: none): a list of flags, one per output,
        and for each set flag the float arrays ``out{k}_scale`` and ``out{k}_bias``."""
        flags = meta.get("output_scales", [])
        if (
            not isinstance(flags, list)
            or len(flags) > 64
            or not all(isinstance(f, bool) for f in flags)
        ):
            raise self.fail("graph", f"'output_scales' = {_short(flags)} is not a list of flags")
        scales: list[ir.OutputScale | None] = []
        for k, flag in enumerate(flags):
            if not flag:
                scales.append(None)
                continue
            scale, bias = (
                self.archive.array(f"out{k}_{key}", kinds="f") for key in ("scale", "bias")
            )
            try:
                scales.append(ir.OutputScale(scale, bias))
            except RtlgenError as exc:
                raise self.fail(f"output {k}", str(exc)) from None
        return tuple(scales)

    def node(self, desc: Any, index: int, in_type: FixedType | None) -> ir.Node:
        if not isinstance(desc, dict):
            raise self.fail(f"node {index}", "is not a JSON object")
        class_name = self.get(desc, "class", f"node {index}")
        node_types = _node_types()
        if class_name not in node_types:
            raise self.fail(
                f"node {index}",
                f"class {_short(class_name)} is not one of {', '.join(node_types)}",
            )
        cls = node_types[class_name]
        name = self.string(desc, "name", f"node {index}", _NAME_RE)
        where = f"node {index} '{name}' ({class_name})"
        in_shape, out_shape = (
            self.shape(desc, "in_shape", where),
            self.shape(desc, "out_shape", where),
        )
        out_type = self.fixed(self.get(desc, "out_type", where), where, "out_type")
        source = self.string(desc, "source", where, _SOURCE_RE)
        kw: dict[str, Any] = {"out_type": out_type, "source": source}
        if class_name not in _LEGACY_TYPES:
            return self.generic_node(
                desc, index, where, cls, name, in_shape, out_shape, kw, in_type
            )
        if issubclass(cls, ir._Arithmetic):
            kw.update(self.arithmetic(desc, index, where, cls, in_shape, out_shape, in_type))
        if cls in (ir.Conv, ir.Pool):
            kw.update(self.window(desc, where, cls, in_shape, out_shape))
        if cls is ir.Conv:
            kw["groups"] = self.groups(desc, where, in_shape[-1], out_shape[-1], kw["weights"])
            kw["dilation"] = self.dilation(desc, where, kw["kernel"], kw["weights"])
        if cls is ir.Pool:
            kw.update(
                kind=self.enum(desc, "kind", where, ir.PoolKind),
                rounding=self.enum(desc, "rounding", where, Rounding),
            )
            if in_type is not None and abs(out_type.frac - in_type.frac) > _MAX_SHIFT:
                raise self.fail(
                    where, f"output type {out_type} is too far from the input type {in_type}"
                )
        same = cls in (ir.Input, ir.ScaleShift, ir.Activation)
        if same and in_shape != out_shape:
            raise self.fail(where, f"in_shape {in_shape} and out_shape {out_shape} differ")
        if cls is ir.Dense and (len(in_shape) != 1 or len(out_shape) != 1):
            raise self.fail(where, f"a dense layer maps vectors, not {in_shape} -> {out_shape}")
        if cls is ir.Flatten and out_shape != (element_count(in_shape),):
            raise self.fail(
                where, f"flattening {in_shape} gives ({element_count(in_shape)},), not {out_shape}"
            )
        return cls(name, in_shape, out_shape, **kw)

    def generic_node(
        self,
        desc: dict[str, Any],
        index: int,
        where: str,
        cls: type[ir.Node],
        name: str,
        in_shape: Shape,
        out_shape: Shape,
        kw: dict[str, Any],
        in_type: FixedType | None,
    ) -> ir.Node:
        """A node of a registered op read field by field against its class's type hints,
        then checked by the op's ``validate`` (shapes, geometry, types against each other)."""
        from rtlgen.ops.registry import op_for_type

        fields = self.get(desc, "fields", where)
        if not isinstance(fields, dict):
            raise self.fail(where, "'fields' is not a JSON object")
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.name in _COMMON_FIELDS:
                continue
            hint = hints[f.name]
            options = (
                typing.get_args(hint)
                if typing.get_origin(hint) in (typing.Union, UnionType)
                else (hint,)
            )
            if ir.QTensor in options or hint is ir.Tensor or ir.FloatTensor in options:
                if desc.get(f.name) is None and type(None) in options:
                    continue
                shapes = op_for_type(cls).constant_shapes
                kw[f.name] = self.constant(
                    desc, index, f.name, where, shapes(in_shape, out_shape)[f.name]
                )
                continue
            if f.name not in fields:
                if f.default is not dataclasses.MISSING:
                    continue
                raise self.fail(where, f"field '{f.name}' is missing")
            kw[f.name] = self.typed(fields[f.name], options, where, f.name)
        try:
            node = cls(name, in_shape, out_shape, **kw)
            op_for_type(cls).validate(node, in_type)
        except (RtlgenError, TypeError, ValueError) as exc:
            raise self.fail(where, str(exc)) from None
        return node

    def typed(self, value: Any, options: tuple[Any, ...], where: str, key: str) -> Any:
        """One saved field value as one of the types its annotation allows."""
        if value is None:
            if type(None) in options:
                return None
            raise self.fail(where, f"'{key}' must not be null")
        for option in options:
            origin = typing.get_origin(option)
            if option is FixedType and isinstance(value, list):
                return self.fixed(value, where, key)
            if option is ir.Clamp and isinstance(value, list) and len(value) == 2:
                return ir.Clamp(self.bound(value[0], where), self.bound(value[1], where))
            if isinstance(option, type) and issubclass(option, Enum):
                return self.enum({key: value}, key, where, option)
            args = typing.get_args(option)
            if origin is tuple and args and typing.get_origin(args[0]) is tuple:
                # a tuple of shapes (a broadcasting merge's input shapes): at most 64
                if not isinstance(value, list) or len(value) > 64:
                    raise self.fail(where, f"'{key}' is not a list of at most 64 shapes")
                return tuple(self.typed(v, (args[0],), where, key) for v in value)
            if origin is tuple and isinstance(value, list):
                if len(value) > 16:
                    raise self.fail(where, f"'{key}' has more than 16 entries")
                return tuple(
                    self.integer(v, where, key, -MAX_DIMENSION, MAX_DIMENSION) for v in value
                )
            if option is bool and isinstance(value, bool):
                return value
            if option is int and isinstance(value, int) and not isinstance(value, bool):
                return self.integer(value, where, key, -MAX_DIMENSION, MAX_DIMENSION)
            if option is float and isinstance(value, int | float) and not isinstance(value, bool):
                if not math.isfinite(value):
                    raise self.fail(where, f"'{key}' = {_short(value)} is not finite")
                return float(value)
            if option is str and isinstance(value, str) and _NAME_RE.match(value):
                return value
        raise self.fail(where, f"'{key}' = {_short(value)} has the wrong type")

    def arithmetic(
        self,
        desc: dict[str, Any],
        index: int,
        where: str,
        cls: type[ir.Node],
        in_shape: Shape,
        out_shape: Shape,
        in_type: FixedType | None,
    ) -> dict[str, Any]:
        activation = self.get(desc, "activation", where)
        if not isinstance(activation, list) or len(activation) != 2:
            raise self.fail(where, f"'activation' = {_short(activation)} is not [lo, hi]")
        acc_type = self.fixed(self.get(desc, "acc_type", where), where, "acc_type")
        kw: dict[str, Any] = {
            "activation": ir.Clamp(
                self.bound(activation[0], where), self.bound(activation[1], where)
            ),
            "acc_type": acc_type,
            "rounding": self.enum(desc, "rounding", where, Rounding),
            "overflow": self.enum(desc, "overflow", where, Overflow),
        }
        channels_in, channels_out = in_shape[-1], out_shape[-1]
        if cls is ir.Conv:
            kernel = self.ints(desc, "kernel", where, (2,), 1)
            shapes = {"weights": (*kernel, channels_in, channels_out), "bias": (channels_out,)}
        elif cls is ir.Dense:
            shapes = {"weights": (in_shape[0], out_shape[0]), "bias": (out_shape[0],)}
        elif cls is ir.ScaleShift:
            shapes = {"scale": (channels_in,), "shift": (channels_in,)}
        else:
            shapes = {}
        for key, shape in shapes.items():
            if desc.get(key) is None:
                if key == "bias":
                    continue
                raise self.fail(where, f"constant '{key}' is missing")
            kw[key] = self.constant(desc, index, key, where, shape)
        if in_type is not None:
            self.alignment(kw, in_type, acc_type, where)
        return kw

    def alignment(
        self, kw: dict[str, Any], in_type: FixedType, acc_type: FixedType, where: str
    ) -> None:
        """The reference shifts products and biases left into the accumulator: the saved
        types must allow it (a tampered type would otherwise crash or overflow there)."""
        needs = {key: in_type.frac + kw[key].type.frac for key in ("weights", "scale") if key in kw}
        needs.update({key: kw[key].type.frac for key in ("bias", "shift") if key in kw})
        if not needs:
            needs = {"input": in_type.frac}
        for key, frac in needs.items():
            if not 0 <= acc_type.frac - frac <= _MAX_SHIFT:
                raise self.fail(
                    where,
                    f"accumulator type {acc_type} does not fit the {key} ({frac} fractional bits)",
                )

    def groups(
        self, desc: dict[str, Any], where: str, cin: int, cout: int, weights: ir.QTensor
    ) -> int:
        """A grouped convolution's groups (absent: 1): dividing both channel counts, every
        weight off its blocks zero."""
        groups = desc.get("groups", 1)
        if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
            raise self.fail(where, f"groups {_short(groups)} is not a positive integer")
        if cin % groups or cout % groups:
            raise self.fail(
                where, f"groups {groups} does not divide {cin} input and {cout} output channels"
            )
        if np.any(weights.mantissa[..., ~ir.group_mask(cin, cout, groups)]):
            raise self.fail(where, f"non-zero weights outside the {groups} groups' blocks")
        return groups

    def dilation(
        self, desc: dict[str, Any], where: str, kernel: tuple[int, int], weights: ir.QTensor
    ) -> tuple[int, int]:
        """A dilated convolution's tap spacing (absent: (1, 1)): spacing the window's taps
        evenly, every weight between them zero."""
        if "dilation" not in desc:
            return (1, 1)
        dilation = self.ints(desc, "dilation", where, (2,), 1)
        if any((k - 1) % d for k, d in zip(kernel, dilation, strict=True)):
            raise self.fail(where, f"dilation {list(dilation)} does not space a {list(kernel)} window")
        if np.any(weights.mantissa[~ir.tap_mask(kernel, dilation)]):
            raise self.fail(where, f"non-zero weights between the taps of dilation {list(dilation)}")
        return dilation[0], dilation[1]

    def window(
        self,
        desc: dict[str, Any],
        where: str,
        cls: type[ir.Node],
        in_shape: Shape,
        out_shape: Shape,
    ) -> dict[str, Any]:
        key = "kernel" if cls is ir.Conv else "pool"
        size = self.ints(desc, key, where, (2,), 1)
        stride = self.ints(desc, "stride", where, (2,), 1)
        padding = self.ints(desc, "padding", where, (4,), 0)
        if len(in_shape) not in (2, 3) or len(out_shape) != len(in_shape):
            raise self.fail(
                where, f"a window maps images or 1D signals, not {in_shape} -> {out_shape}"
            )
        h, w, c = ir.spatial(in_shape)
        ho, wo, co = ir.spatial(out_shape)
        if len(in_shape) == 2 and (size[0] != 1 or padding[0] or padding[1]):
            raise self.fail(where, f"a 1D {key} must have height 1 and no vertical padding")
        if any(p >= k for p, k in zip(padding, (size[0], size[0], size[1], size[1]), strict=True)):
            raise self.fail(where, f"padding {padding} is not smaller than the {key} {size}")
        expected = (
            (h + padding[0] + padding[1] - size[0]) // stride[0] + 1,
            (w + padding[2] + padding[3] - size[1]) // stride[1] + 1,
        )
        if min(expected) < 1 or (ho, wo) != expected or (cls is ir.Pool and co != c):
            raise self.fail(
                where,
                f"{key} {size}, stride {stride}, padding {padding} do not map {in_shape} to {out_shape}",
            )
        # multiplies (conv) or comparisons (pool) per sample, as the front-end caps them
        operations = ho * wo * size[0] * size[1] * c * (co if cls is ir.Conv else 1)
        if operations > self.limits.max_operations:
            raise self.fail(
                where,
                f"{operations:,} operations per sample, more than the limit of "
                f"{self.limits.max_operations:,}",
            )
        return {key: size, "stride": stride, "padding": padding}


def _short(value: Any) -> str:
    text = " ".join(repr(value).split())
    return text if len(text) <= 60 else text[:57] + "..."
