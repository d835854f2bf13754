"""Save/load a lowered `ModelGraph` as one `.npz` (a JSON description + integer arrays).

No pickle: loading a file never executes anything from it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from rtlgen import ir
from rtlgen.quant.errors import ModelFileError
from rtlgen.quant.fixed import FixedType, Overflow, Rounding

FORMAT_VERSION = 1
_NODE_TYPES: dict[str, type[ir.Node]] = {
    cls.__name__: cls
    for cls in (ir.Input, ir.Conv, ir.Dense, ir.ScaleShift, ir.Activation, ir.Pool, ir.Flatten)
}


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
            desc.update(kernel=list(node.kernel), stride=list(node.stride), padding=list(node.padding))
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
    }
    with open(path, "wb") as f:
        np.savez_compressed(f, __graph__=np.array(json.dumps(meta)), **arrays)


def load_graph(path: Path) -> ir.ModelGraph:
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["__graph__"]))
            arrays = {k: data[k] for k in data.files if k != "__graph__"}
    except (OSError, ValueError, KeyError) as exc:
        raise ModelFileError(f"{path}: not an rtlgen graph file ({exc})") from None
    if meta.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(f"{path}: graph format {meta.get('format_version')} is not supported")
    nodes = []
    for index, desc in enumerate(meta["nodes"]):
        cls = _NODE_TYPES[desc["class"]]
        kw: dict[str, Any] = {
            "out_type": _untype(desc["out_type"]),
            "source": desc["source"],
        }
        for key in ("weights", "bias", "scale", "shift"):
            if key in desc and desc[key] is not None:
                kw[key] = ir.QTensor(arrays[f"n{index}_{key}"], _untype(desc[key]))
        if issubclass(cls, ir._Arithmetic):
            lo, hi = desc["activation"]
            kw.update(
                activation=ir.Clamp(lo, hi),
                acc_type=_untype(desc["acc_type"]),
                rounding=Rounding(desc["rounding"]),
                overflow=Overflow(desc["overflow"]),
            )
        if cls is ir.Conv:
            kw.update(
                kernel=tuple(desc["kernel"]), stride=tuple(desc["stride"]), padding=tuple(desc["padding"])
            )
        if cls is ir.Pool:
            kw.update(
                kind=ir.PoolKind(desc["kind"]),
                pool=tuple(desc["pool"]),
                stride=tuple(desc["stride"]),
                padding=tuple(desc["padding"]),
                rounding=Rounding(desc["rounding"]),
            )
        nodes.append(cls(desc["name"], tuple(desc["in_shape"]), tuple(desc["out_shape"]), **kw))
    return ir.ModelGraph(meta["name"], tuple(nodes), softmax=meta["softmax"], source=meta["source"])
