"""The bit-exact integer reference model: the golden model for all generated RTL.

`run_int` executes a *lowered* `ModelGraph` on integer mantissas with exactly the arithmetic
the hardware does (see docs/DESIGN.md). It is vectorized with numpy; products and sums use
float64 BLAS when every accumulator is narrower than 53 bits (exact for integers below
2**53), int64 otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from rtlgen import ir

from .arith import align, apply_clamp, clamp_bounds
from .errors import RtlgenError
from .fixed import FixedType, requantize

_EXACT_FLOAT_BITS = 52


def as_input_dict(graph: ir.ModelGraph, x, what: str = "input") -> dict[str, np.ndarray]:
    """``x`` as {input node name: array} in the order of ``graph.input_nodes``: one array is
    taken for a one-input graph only; a mapping must name every input exactly once."""
    names = [node.name for node in graph.input_nodes]
    if isinstance(x, Mapping):
        given = sorted(str(key) for key in x)
        if given != sorted(names):
            raise RtlgenError(
                f"{what} arrays named [{', '.join(given[:8])}]; model '{graph.name}' takes one "
                f"array per input: {', '.join(names)}"
            )
        return {name: x[name] for name in names}
    if len(names) > 1:
        raise RtlgenError(
            f"model '{graph.name}' has {len(names)} inputs ({', '.join(names)}); give one "
            f"{what} array per input name"
        )
    return {names[0]: x}


def quantize_input(graph: ir.ModelGraph, x):
    """Float inputs -> input mantissas (convergent rounding, saturation), shape-checked. A
    graph with several inputs takes and gives {input name: array}."""
    if len(graph.input_nodes) > 1 or isinstance(x, Mapping):
        arrays = as_input_dict(graph, x)
        mantissas = {
            node.name: _quantize_one(graph, node, arrays[node.name]) for node in graph.input_nodes
        }
        counts = {len(m) for m in mantissas.values()}
        if len(counts) > 1:
            raise RtlgenError(
                "the inputs have different numbers of samples: "
                + ", ".join(f"{name} {len(m)}" for name, m in mantissas.items())
            )
        return mantissas if len(graph.input_nodes) > 1 else mantissas[graph.input.name]
    return _quantize_one(graph, graph.input, x)


def _quantize_one(graph: ir.ModelGraph, node: ir.Input, x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    shape = tuple(node.out_shape)
    where = f"input '{node.name}'" if len(graph.input_nodes) > 1 else "input"
    if x.shape[1:] != shape:
        if x.shape == shape:
            x = x[None]
        else:
            raise RtlgenError(
                f"{where} has shape {x.shape[1:] if x.ndim > 1 else x.shape} per sample, "
                f"model '{graph.name}' expects {shape} (array shape (N, {', '.join(map(str, shape))}))"
            )
    if not np.issubdtype(x.dtype, np.number):
        raise RtlgenError(f"{where} array has dtype {x.dtype}, expected numbers")
    if not np.all(np.isfinite(x)):
        raise RtlgenError(f"{where} array contains NaN or infinity")
    assert node.out_type is not None
    with np.errstate(over="ignore"):  # a huge finite input scales to +-inf: it saturates
        return node.out_type.quantize(x)


@dataclass(frozen=True)
class QuantizedInput:
    """Input mantissas and what quantizing the float inputs did to them.

    `rounded`: values inside the type's range that are not a multiple of its step (rounded
    half to even to the nearest step). `saturated`: values whose rounded mantissa falls
    outside [min_int, max_int] (clipped to the nearest end; not also counted as rounded).
    """

    mantissas: np.ndarray | dict[str, np.ndarray]
    input_type: FixedType
    values: int
    rounded: int
    saturated: int

    def describe(self) -> str:
        """One line for the CLI: the type, its range and step, and the two counts."""
        t = self.input_type
        return (
            f"input type {t} (range [{t.min_value:g}, {t.max_value:g}], step 2^{-t.frac}): "
            f"{self.rounded:,} of {self.values:,} values rounded, {self.saturated:,} saturated"
        )


def quantize_input_counted(graph: ir.ModelGraph, x) -> QuantizedInput:
    """`quantize_input`, plus how many values were rounded and how many saturated. Several
    inputs: ``mantissas`` is {input name: array}, the counts are summed over the inputs and
    ``input_type`` is the first input's."""
    if len(graph.input_nodes) > 1:
        arrays = as_input_dict(graph, x)
        mantissas = quantize_input(graph, arrays)
        parts = [
            _counted(arrays[node.name], mantissas[node.name], node.out_type)
            for node in graph.input_nodes
        ]
        return QuantizedInput(
            mantissas=mantissas,
            input_type=parts[0].input_type,
            values=sum(p.values for p in parts),
            rounded=sum(p.rounded for p in parts),
            saturated=sum(p.saturated for p in parts),
        )
    if isinstance(x, Mapping):
        x = as_input_dict(graph, x)[graph.input.name]
    return _counted(x, quantize_input(graph, x), graph.input.out_type)


def _counted(x, mantissas: np.ndarray, t: FixedType | None) -> QuantizedInput:
    assert t is not None
    # Scaling by a power of two is exact in float64, so `scaled` is an integer exactly when
    # the value is a multiple of the step; quantize() rounds this same product.
    with np.errstate(over="ignore"):  # +-inf beyond float64: counted as saturated
        scaled = np.asarray(x, dtype=np.float64).reshape(mantissas.shape) * 2.0**t.frac
    nearest = np.round(scaled)
    saturated = (nearest < t.min_int) | (nearest > t.max_int)
    rounded = (nearest != scaled) & ~saturated
    return QuantizedInput(
        mantissas=mantissas,
        input_type=t,
        values=int(mantissas.size),
        rounded=int(np.count_nonzero(rounded)),
        saturated=int(np.count_nonzero(saturated)),
    )


def predict(
    graph: ir.ModelGraph,
    x: np.ndarray,
    batch_size: int = 256,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Float inputs -> dequantized float outputs of the lowered graph, shape (N, *out)
    (a first output with an `ir.OutputScale`: its real values, float32 numbers)."""
    x_int = quantize_input(graph, x)
    y_int = run_int(graph, x_int, batch_size=batch_size, progress=progress)
    return graph.dequantize(0, y_int)


def run_int(
    graph: ir.ModelGraph,
    x_int: np.ndarray | Mapping[str, np.ndarray],
    batch_size: int = 256,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Input mantissas (N, *input_shape), or {input name: mantissas} for a graph with several
    inputs -> mantissas of the (first) output (N, *output_shape), int64. `run_int_outputs` gives every output of a multi-output graph."""
    return run_int_outputs(graph, x_int, batch_size, progress)[graph.outputs[0]]


def run_int_outputs(
    graph: ir.ModelGraph,
    x_int: np.ndarray | Mapping[str, np.ndarray],
    batch_size: int = 256,
    progress: Callable[[int], None] | None = None,
) -> dict[str, np.ndarray]:
    """Input mantissas (N, *input_shape) -> {output name: mantissas (N, *its shape)}, in
    the order of ``graph.outputs``. A graph with several inputs takes {input name: (N,
    *its shape)} (one array stays accepted for one input). Nodes run in graph (topological) order; a value is
    dropped as soon as its last consumer has run."""
    if not graph.lowered:
        raise ValueError("run_int needs a lowered graph (rtlgen.passes.lower)")
    inputs = as_input_dict(graph, x_int, "input mantissa")
    several = len(inputs) > 1
    for node in graph.input_nodes:
        x = inputs[node.name] = np.asarray(inputs[node.name], dtype=np.int64)
        t_in = node.out_type
        assert t_in is not None
        where = f"input '{node.name}'" if several else "input"
        if x.shape[1:] != tuple(node.out_shape):
            raise RtlgenError(
                f"{where} mantissas have shape {x.shape[1:]} per sample, expected {node.out_shape}"
            )
        if x.size and (x.min() < t_in.min_int or x.max() > t_in.max_int):
            raise RtlgenError(f"{where} mantissas out of range for the input type {t_in}")
    samples = {len(x) for x in inputs.values()}
    if len(samples) > 1:
        raise RtlgenError(
            "the inputs have different numbers of samples: "
            + ", ".join(f"{name} {len(x)}" for name, x in inputs.items())
        )
    count = samples.pop()
    last_use = {name: index for index, node in enumerate(graph.nodes) for name in node.inputs}
    for name in graph.outputs:
        last_use[name] = len(graph.nodes)
    outs: dict[str, list[np.ndarray]] = {name: [] for name in graph.outputs}
    for start in range(0, count, batch_size):
        values = {name: x[start : start + batch_size] for name, x in inputs.items()}
        for index, node in enumerate(graph.nodes):
            if isinstance(node, ir.Input):
                continue
            xs = tuple(values[name] for name in node.inputs)
            types = graph.in_types(index)
            values[node.name] = (
                run_node(node, xs[0], types[0]) if len(xs) == 1 else (run_merge(node, xs, types))
            )
            for name in set(node.inputs):
                if last_use.get(name) == index:
                    del values[name]
        for name in graph.outputs:
            outs[name].append(values[name])
        if progress is not None:
            progress(min(batch_size, count - start))
    return {
        name: np.concatenate(parts)
        if parts
        else np.zeros((0, *graph.node(name).out_shape), np.int64)
        for name, parts in outs.items()
    }


def run_node(node: ir.Node, x: np.ndarray, in_type: FixedType) -> np.ndarray:
    """One lowered one-input node on a batch of mantissas: the reference kernel of its op
    (`rtlgen.ops`), built on the primitives below."""
    from rtlgen.ops.registry import op_for

    return op_for(node).reference(node, x, in_type)


def run_merge(
    node: ir.Node, xs: tuple[np.ndarray, ...], in_types: tuple[FixedType, ...]
) -> np.ndarray:
    """One lowered node of several inputs (a merge) on batches of mantissas."""
    from rtlgen.ops.registry import op_for

    return op_for(node).reference(node, xs, in_types)


# ---------------------------------------------------------------------------------------
def finish_activation(node: ir._Arithmetic, acc: np.ndarray, acc_frac: int) -> np.ndarray:
    """Activation clamp in accumulator units, then rounding/saturation into out_type."""
    lo, hi = clamp_bounds(node.activation.lo, node.activation.hi, acc_frac, node.name)
    acc = apply_clamp(acc, lo, hi)
    assert node.out_type is not None
    return requantize(acc, acc_frac, node.out_type, node.rounding, node.overflow)


def exact_matmul(x: np.ndarray, w: np.ndarray, acc_type: FixedType) -> np.ndarray:
    if acc_type.width <= _EXACT_FLOAT_BITS:
        return np.rint(x.astype(np.float64) @ w.astype(np.float64)).astype(np.int64)
    return x @ w


def aligned_bias(node: ir.Conv | ir.Dense, acc_frac: int) -> np.ndarray | int:
    if node.bias is None:
        return 0
    assert isinstance(node.bias, ir.QTensor)
    return align(node.bias.mantissa, node.bias.type.frac, acc_frac)


def pad_image(x: np.ndarray, padding: tuple[int, int, int, int], value: int = 0) -> np.ndarray:
    top, bottom, left, right = padding
    return np.pad(
        x, ((0, 0), (top, bottom), (left, right), (0, 0)), mode="constant", constant_values=value
    )


def windows(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int]) -> np.ndarray:
    """(N, H, W, C) -> (N, Ho, Wo, kh, kw, C) views of every window position."""
    kh, kw = kernel
    v = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(1, 2))  # N,Ho,Wo,C,kh,kw
    v = v[:, :: stride[0], :: stride[1]]
    return np.moveaxis(v, 3, 5)


def as_image(x: np.ndarray) -> np.ndarray:
    return x[:, None] if x.ndim == 3 else x  # (N, L, C) -> (N, 1, L, C)
