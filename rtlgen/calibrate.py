"""Calibration: layer output ranges of a float model on sample data.

Interval analysis proves the integer bits a result can ever need; real data usually needs
fewer. `calibrate` runs the (folded, fused, not yet lowered) graph in float64 on sample
inputs and returns each layer's largest magnitude; `infer_precision` then gives each float
result the integer bits that magnitude needs plus ``headroom_bits`` (never more than the
interval analysis proves). Values beyond the calibrated range saturate.
"""

from __future__ import annotations

import numpy as np

from rtlgen import ir
from rtlgen.quant.errors import RtlgenError


def float_values(t: ir.Tensor | None) -> np.ndarray | None:
    """A constant tensor's float values as the float model uses them (a QKeras quantizer
    applied by its formula; integer mantissas as their values)."""
    if t is None:
        return None
    if isinstance(t, ir.QTensor):
        return t.values
    return t.quantizer.reference(t.values) if t.quantizer is not None else t.values


def float_activate(node: ir._Arithmetic, y: np.ndarray) -> np.ndarray:
    """``node``'s clamp and output quantizer on float pre-activations ``y``."""
    y = np.clip(
        y,
        node.activation.lo if node.activation.lo is not None else -np.inf,
        node.activation.hi if node.activation.hi is not None else np.inf,
    )
    if node.out_quantizer is not None:
        y = node.out_quantizer.reference(y)
    return y


def float_forward(node: ir.Node, x) -> np.ndarray:
    """One node in float64 (QKeras quantizers applied by their formulas); a merge takes a
    list of arrays. Each op's own ``float_forward`` (`rtlgen.ops.registry`)."""
    from rtlgen.ops.registry import op_for

    return op_for(node).float_forward(node, x)


def calibrate(graph: ir.ModelGraph, x) -> dict[str, float]:
    """Largest |output| of every node over the sample inputs ``x`` (N, *input_shape), or
    {input name: samples} for a graph with several inputs."""
    from rtlgen.quant.reference import as_input_dict

    arrays = as_input_dict(graph, x, "calibration")
    several = len(arrays) > 1
    values: dict[str, np.ndarray] = {}
    peaks: dict[str, float] = {}
    for node in graph.input_nodes:
        data = np.asarray(arrays[node.name], dtype=np.float64)
        what = f"calibration data of input '{node.name}'" if several else "calibration data"
        if data.shape[1:] != tuple(node.out_shape):
            raise RtlgenError(
                f"{what} has samples of shape {data.shape[1:]}, the model expects {node.out_shape}"
            )
        if len(data) == 0:
            raise RtlgenError(f"{what} is empty")
        values[node.name] = data
        peaks[node.name] = float(np.max(np.abs(data)))
    if len({len(v) for v in values.values()}) > 1:
        raise RtlgenError(
            "calibration inputs have different numbers of samples: "
            + ", ".join(f"{name} {len(v)}" for name, v in values.items())
        )
    for node in graph.nodes:
        if isinstance(node, ir.Input):
            continue
        xs = [values[name] for name in node.inputs]
        y = float_forward(node, xs[0] if len(xs) == 1 else xs)
        values[node.name] = y
        peaks[node.name] = float(np.max(np.abs(y)))
    return peaks
