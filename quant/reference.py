"""The bit-exact integer reference model: the golden model for all generated RTL.

`run_int` executes a *lowered* `ModelGraph` on integer mantissas with exactly the arithmetic
the hardware does (see docs/DESIGN.md). It is vectorized with numpy; products and sums use
float64 BLAS when every accumulator is narrower than 53 bits (exact for integers below
2**53), int64 otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rtlgen import ir

from .arith import align, apply_clamp, clamp_bounds
from .errors import RtlgenError
from .fixed import FixedType, requantize

_EXACT_FLOAT_BITS = 52


def quantize_input(graph: ir.ModelGraph, x: np.ndarray) -> np.ndarray:
    """Float inputs -> input mantissas (convergent rounding, saturation), shape-checked."""
    x = np.asarray(x)
    shape = tuple(graph.input_shape)
    if x.shape[1:] != shape:
        if x.shape == shape:
            x = x[None]
        else:
            raise RtlgenError(
                f"input has shape {x.shape[1:] if x.ndim > 1 else x.shape} per sample, "
                f"model '{graph.name}' expects {shape} (array shape (N, {', '.join(map(str, shape))}))"
            )
    if not np.issubdtype(x.dtype, np.number):
        raise RtlgenError(f"input array has dtype {x.dtype}, expected numbers")
    if not np.all(np.isfinite(x)):
        raise RtlgenError("input array contains NaN or infinity")
    assert graph.input.out_type is not None
    with np.errstate(over="ignore"):  # a huge finite input scales to +-inf: it saturates
        return graph.input.out_type.quantize(x)


@dataclass(frozen=True)
class QuantizedInput:
    """Input mantissas and what quantizing the float inputs did to them.

    `rounded`: values inside the type's range that are not a multiple of its step (rounded
    half to even to the nearest step). `saturated`: values whose rounded mantissa falls
    outside [min_int, max_int] (clipped to the nearest end; not also counted as rounded).
    """

    mantissas: np.ndarray
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


def quantize_input_counted(graph: ir.ModelGraph, x: np.ndarray) -> QuantizedInput:
    """`quantize_input`, plus how many values were rounded and how many saturated."""
    mantissas = quantize_input(graph, x)
    t = graph.input.out_type
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
    """Float inputs -> dequantized float outputs of the lowered graph, shape (N, *out)."""
    x_int = quantize_input(graph, x)
    y_int = run_int(graph, x_int, batch_size=batch_size, progress=progress)
    t = graph.output.out_type
    assert t is not None
    return t.to_float(y_int)


def run_int(
    graph: ir.ModelGraph,
    x_int: np.ndarray,
    batch_size: int = 256,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Input mantissas (N, *input_shape) -> mantissas of the (first) output (N,
    *output_shape), int64. `run_int_outputs` gives every output of a multi-output graph."""
    return run_int_outputs(graph, x_int, batch_size, progress)[graph.outputs[0]]


def run_int_outputs(
    graph: ir.ModelGraph,
    x_int: np.ndarray,
    batch_size: int = 256,
    progress: Callable[[int], None] | None = None,
) -> dict[str, np.ndarray]:
    """Input mantissas (N, *input_shape) -> {output name: mantissas (N, *its shape)}, in
    the order of ``graph.outputs``. Nodes run in graph (topological) order; a value is
    dropped as soon as its last consumer has run."""
    if not graph.lowered:
        raise ValueError("run_int needs a lowered graph (rtlgen.passes.lower)")
    if len(graph.input_nodes) != 1:
        raise RtlgenError(
            f"the graph has {len(graph.input_nodes)} inputs; the reference runs one-input graphs"
        )
    x_int = np.asarray(x_int, dtype=np.int64)
    t_in = graph.input.out_type
    assert t_in is not None
    if x_int.shape[1:] != tuple(graph.input_shape):
        raise RtlgenError(
            f"input mantissas have shape {x_int.shape[1:]} per sample, expected {graph.input_shape}"
        )
    if x_int.size and (x_int.min() < t_in.min_int or x_int.max() > t_in.max_int):
        raise RtlgenError(f"input mantissas out of range for the input type {t_in}")
    last_use = {name: index for index, node in enumerate(graph.nodes) for name in node.inputs}
    for name in graph.outputs:
        last_use[name] = len(graph.nodes)
    outs: dict[str, list[np.ndarray]] = {name: [] for name in graph.outputs}
    for start in range(0, x_int.shape[0], batch_size):
        values = {graph.input.name: x_int[start : start + batch_size]}
        for index, node in enumerate(graph.nodes[1:], start=1):
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
            progress(min(batch_size, x_int.shape[0] - start))
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
