"""The typed, immutable model graph (IR).

A `ModelGraph` is a linear chain of nodes. Front-ends build it with float constants
(`FloatTensor`, possibly carrying the QKeras quantizer that the model applies to them);
`rtlgen.passes.lower` turns every constant into integer mantissas (`QTensor`) and sets every
fixed-point type. Only a *lowered* graph goes to the reference model and the hardware.

Tensor shapes exclude the batch dimension: images are (H, W, C), 1D signals (L, C), vectors (N,).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np

from rtlgen.quant.errors import RtlgenError
from rtlgen.quant.fixed import FixedType, Overflow, Rounding

Shape = tuple[int, ...]


# ---------------------------------------------------------------------------------------
# constants
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class FloatTensor:
    """A constant as stored in the model file, and the quantizer the model applies to it."""

    values: np.ndarray
    quantizer: Any = None  # rtlgen.quant.quantizers.Quantizer or None

    @property
    def shape(self) -> Shape:
        return tuple(self.values.shape)


@dataclass(frozen=True, eq=False)
class QTensor:
    """A constant as integer mantissas of one fixed-point type."""

    mantissa: np.ndarray
    type: FixedType

    def __post_init__(self) -> None:
        m = np.asarray(self.mantissa)
        if m.dtype != np.int64:
            object.__setattr__(self, "mantissa", m.astype(np.int64))
        lo, hi = int(self.mantissa.min(initial=0)), int(self.mantissa.max(initial=0))
        if lo < self.type.min_int or hi > self.type.max_int:
            raise ValueError(f"mantissas [{lo}, {hi}] do not fit {self.type}")

    @property
    def shape(self) -> Shape:
        return tuple(self.mantissa.shape)

    @property
    def values(self) -> np.ndarray:
        return self.type.to_float(self.mantissa)

    @property
    def nonzero(self) -> int:
        return int(np.count_nonzero(self.mantissa))


Tensor = FloatTensor | QTensor


# ---------------------------------------------------------------------------------------
# activations
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Clamp:
    """A piecewise-linear activation: clip to [lo, hi] (None = unbounded).

    linear = Clamp(), ReLU = Clamp(0), ReLU6 = Clamp(0, 6), hard tanh = Clamp(-1, 1).
    Bounds are real values; they must be exact in the accumulator type.
    """

    lo: float | None = None
    hi: float | None = None

    @property
    def is_linear(self) -> bool:
        return self.lo is None and self.hi is None

    def describe(self) -> str:
        if self.is_linear:
            return "linear"
        if self.lo == 0 and self.hi is None:
            return "relu"
        return f"clip({self.lo}, {self.hi})"


LINEAR = Clamp()
RELU = Clamp(0.0)


class PoolKind(Enum):
    MAX = "max"
    AVG = "avg"


# ---------------------------------------------------------------------------------------
# nodes
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Node:
    """Common fields: a unique name, the source layer name(s), shapes and output type."""

    name: str
    in_shape: Shape
    out_shape: Shape
    out_type: FixedType | None = field(default=None, kw_only=True)
    source: str = field(default="", kw_only=True)  # Keras layer name(s) it came from
    #: names of the nodes whose outputs this node takes, in order; empty in a chain (the
    #: graph then fills in the node before it) and for an `Input`
    inputs: tuple[str, ...] = field(default=(), kw_only=True)

    op = "node"

    @property
    def in_shapes(self) -> tuple[Shape, ...]:
        """The shape of each input (one for every node but a merge)."""
        return (self.in_shape,)

    def replace(self, **changes: Any) -> Node:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True, eq=False)
class Input(Node):
    """The network input. ``out_type`` is the fixed-point type of the input stream."""

    op = "input"


@dataclass(frozen=True, eq=False)
class _Arithmetic(Node):
    """A node with constants, an accumulator, an activation and an output quantizer."""

    activation: Clamp = field(default=LINEAR, kw_only=True)
    out_quantizer: Any = field(default=None, kw_only=True)  # QKeras output quantizer, if any
    acc_type: FixedType | None = field(default=None, kw_only=True)
    rounding: Rounding = field(default=Rounding.CONVERGENT, kw_only=True)
    overflow: Overflow = field(default=Overflow.SATURATE, kw_only=True)


@dataclass(frozen=True, eq=False)
class Conv(_Arithmetic):
    """Conv1D/Conv2D. 1D convs are stored as 2D with kernel height 1 and in_shape (L, C).

    weights: (kernel_h, kernel_w, in_channels, out_channels); bias: (out_channels,) or None.
    padding: (top, bottom, left, right) zero rows/columns.
    groups: a grouped convolution's kernel is block-diagonal (depthwise: ``groups`` =
    in_channels): output channel ``o`` sees only the input channels of group
    ``o // (out_channels / groups)``; the weights off the blocks are zero and are no
    products (`multiplies`, `weight_count`).
    dilation: (rows, columns) of a dilated kernel: ``kernel`` is its window, whose taps are
    ``dilation`` apart; the weights between the taps are zero and are no products either.
    """

    weights: Tensor = field(kw_only=True)
    bias: Tensor | None = field(default=None, kw_only=True)
    kernel: tuple[int, int] = field(kw_only=True)
    stride: tuple[int, int] = field(kw_only=True)
    padding: tuple[int, int, int, int] = field(default=(0, 0, 0, 0), kw_only=True)
    groups: int = field(default=1, kw_only=True)
    dilation: tuple[int, int] = field(default=(1, 1), kw_only=True)

    def __post_init__(self) -> None:
        cin, cout = self.in_shape[-1], self.out_shape[-1]
        if self.groups < 1 or cin % self.groups or cout % self.groups:
            raise RtlgenError(
                f"layer '{self.name}': groups={self.groups} does not divide its {cin} input "
                f"and {cout} output channels"
            )
        w = self.weights.mantissa if isinstance(self.weights, QTensor) else self.weights.values
        if self.groups > 1:
            if np.any(w[..., ~group_mask(cin, cout, self.groups)]):
                raise RtlgenError(
                    f"layer '{self.name}': non-zero weights outside the {self.groups} blocks "
                    "of a grouped convolution"
                )
        if self.dilation != (1, 1):
            if any(d < 1 or (k - 1) % d for k, d in zip(self.kernel, self.dilation, strict=True)):
                raise RtlgenError(
                    f"layer '{self.name}': dilation {self.dilation} does not space the taps of "
                    f"a {self.kernel} window"
                )
            if np.any(w[~tap_mask(self.kernel, self.dilation)]):
                raise RtlgenError(
                    f"layer '{self.name}': non-zero weights between the taps of a kernel "
                    f"dilated by {self.dilation}"
                )

    @property
    def op(self) -> str:  # type: ignore[override]
        return "conv1d" if len(self.in_shape) == 2 else "conv2d"


def tap_mask(kernel: tuple[int, int], dilation: tuple[int, int]) -> np.ndarray:
    """(kernel_h, kernel_w) booleans: the positions of a dilated kernel's taps."""
    mask = np.zeros(kernel, dtype=bool)
    mask[:: dilation[0], :: dilation[1]] = True
    return mask


def group_mask(in_channels: int, out_channels: int, groups: int) -> np.ndarray:
    """(in_channels, out_channels) booleans: the weights a grouped convolution has."""
    group_of_in = np.arange(in_channels) // (in_channels // groups)
    group_of_out = np.arange(out_channels) // (out_channels // groups)
    return group_of_in[:, None] == group_of_out[None, :]


@dataclass(frozen=True, eq=False)
class Dense(_Arithmetic):
    """Fully connected layer on a flat vector. weights: (in, out); bias: (out,) or None."""

    weights: Tensor = field(kw_only=True)
    bias: Tensor | None = field(default=None, kw_only=True)

    op = "dense"


@dataclass(frozen=True, eq=False)
class ScaleShift(_Arithmetic):
    """Per-channel ``x * scale + shift`` (a BatchNormalization that could not be folded).

    scale, shift: (channels,) along the last axis.
    """

    scale: Tensor = field(kw_only=True)
    shift: Tensor = field(kw_only=True)

    op = "scale_shift"


@dataclass(frozen=True, eq=False)
class Activation(_Arithmetic):
    """A standalone activation (Keras Activation/ReLU, QKeras QActivation)."""

    op = "activation"


@dataclass(frozen=True, eq=False)
class Pool(Node):
    """Max/average pooling over (pool_h, pool_w) windows; 1D pools use pool_h = 1.

    Average pooling divides by the number of *real* (non-padding) elements in the window,
    as Keras does, rounding with ``rounding`` into ``out_type``.
    """

    kind: PoolKind = field(kw_only=True)
    pool: tuple[int, int] = field(kw_only=True)
    stride: tuple[int, int] = field(kw_only=True)
    padding: tuple[int, int, int, int] = field(default=(0, 0, 0, 0), kw_only=True)
    rounding: Rounding = field(default=Rounding.CONVERGENT, kw_only=True)

    @property
    def op(self) -> str:  # type: ignore[override]
        dims = "1d" if len(self.in_shape) == 2 else "2d"
        return f"{self.kind.value}pool{dims}"


@dataclass(frozen=True, eq=False)
class Flatten(Node):
    """(H, W, C) or (L, C) -> (N,) in row-major (channels-last) order."""

    op = "flatten"


ARITHMETIC = (Conv, Dense, ScaleShift, Activation)


# ---------------------------------------------------------------------------------------
# graph
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class OutputScale:
    """The real value of an output whose fixed-point value ``v`` is not yet it (a QONNX
    model's float, not power-of-two, output scale, or a last layer's float logits):
    ``float32(v * scale + bias)`` per channel (the last axis of the output shape). ``scale``
    (non-zero) and ``bias``: float64 arrays of one value per channel (products of float32 numbers
    and float32 values, exact in float64; a scale may be negative after a normalization).
    The hardware outputs ``v``'s integer codes."""

    scale: np.ndarray
    bias: np.ndarray

    def __post_init__(self) -> None:
        scale = np.asarray(self.scale, dtype=np.float64).reshape(-1)
        bias = np.asarray(self.bias, dtype=np.float64).reshape(-1)
        if scale.size < 1 or scale.shape != bias.shape:
            raise RtlgenError(f"an output scale of {scale.size} values and {bias.size} biases")
        if not (np.all(np.isfinite(scale)) and np.all(scale != 0) and np.all(np.isfinite(bias))):
            raise RtlgenError("an output scale must be finite and non-zero, its bias finite")
        object.__setattr__(self, "scale", scale)
        object.__setattr__(self, "bias", bias)

    @property
    def order_preserving(self) -> bool:
        """One scale and one bias for every channel: the arg-max of ``v`` is the real one's."""
        return bool(
            self.scale[0] > 0
            and np.all(self.scale == self.scale[0])
            and np.all(self.bias == self.bias[0])
        )

    def apply(self, values: np.ndarray) -> np.ndarray:
        """Real values (float32 numbers, as float64) of the fixed-point values ``values``
        (..., channels): ``v * scale`` is exact in float64 for codes of up to 29 bits times
        a product of two float32 scales; with a bias the float64 sum is rounded to float32
        (within float32's rounding of the exact value)."""
        v = np.asarray(values, dtype=np.float64)
        if v.shape[-1:] != self.scale.shape:
            raise RtlgenError(
                f"output values of shape {v.shape[1:]} for a scale of {self.scale.size} channels"
            )
        return (v * self.scale + self.bias).astype(np.float32).astype(np.float64)


@dataclass(frozen=True, eq=False)
class ModelGraph:
    """A directed acyclic graph of nodes in topological order.

    ``nodes``: every node after its inputs; `Input` nodes have no inputs. A node without
    ``inputs`` (a chain, as most front-ends and tests build it) takes the node before it.
    ``outputs``: the names of the nodes whose results leave the network (default: the last
    node). ``softmax``: the model ends in a softmax, which the hardware does not compute: it
    emits the logits and the arg-max class.
    """

    name: str
    nodes: tuple[Node, ...]
    softmax: bool = False
    source: str = ""
    outputs: tuple[str, ...] = ()
    #: the outputs whose Keras model ends in a softmax (the hardware emits their logits and
    #: arg-max); ``softmax`` says it of the first output
    softmax_outputs: tuple[str, ...] = ()
    #: per output (by position in ``outputs``; () = none): the `OutputScale` that makes its
    #: fixed-point values real (QONNX float scales), or None
    output_scales: tuple[OutputScale | None, ...] = ()
    #: the source model's layout of its (first) input: "" (rtlgen's own: (H, W, C), (L, C),
    #: (N,)), "nchw" or "ncl" (channels first: a QONNX/PyTorch model), see `source_input_shape`
    input_layout: str = ""
    #: layers built as constants and layers not built (reach no output), by
    #: `rtlgen.passes.fold_constant_layers` (for the report)
    constant_layers: tuple[str, ...] = ()
    removed_layers: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.nodes or not isinstance(self.nodes[0], Input):
            raise RtlgenError("a model graph must start with an Input node")
        names = [n.name for n in self.nodes]
        if len(set(names)) != len(names):
            raise RtlgenError(f"duplicate layer names in model graph: {names}")
        nodes = list(self.nodes)
        by_name: dict[str, Node] = {}
        for index, node in enumerate(nodes):
            if isinstance(node, Input):
                if node.inputs:
                    raise RtlgenError(f"input '{node.name}' cannot take inputs")
                by_name[node.name] = node
                continue
            if not node.inputs:
                node = nodes[index] = node.replace(inputs=(nodes[index - 1].name,))
            if len(node.inputs) != len(node.in_shapes):
                raise RtlgenError(
                    f"layer '{node.name}': {len(node.inputs)} inputs for {len(node.in_shapes)} "
                    "input shapes"
                )
            for producer_name, shape in zip(node.inputs, node.in_shapes, strict=True):
                producer = by_name.get(producer_name)
                if producer is None:
                    where = "later in the graph" if producer_name in names else "not in the graph"
                    raise RtlgenError(
                        f"layer '{node.name}': its input '{producer_name}' is {where}"
                    )
                if tuple(producer.out_shape) != tuple(shape):
                    raise RtlgenError(
                        f"layer '{node.name}': input shape {tuple(shape)} does not match "
                        f"'{producer.name}' output shape {producer.out_shape}"
                    )
            by_name[node.name] = node
        object.__setattr__(self, "nodes", tuple(nodes))
        outputs = self.outputs or (nodes[-1].name,)
        for name in outputs:
            if name not in by_name:
                raise RtlgenError(f"graph output '{name}' is not a node of the graph")
        if len(set(outputs)) != len(outputs):
            raise RtlgenError(f"graph outputs are named twice: {list(outputs)}")
        object.__setattr__(self, "outputs", tuple(outputs))
        softmax_outputs = tuple(self.softmax_outputs)
        if self.softmax and outputs[0] not in softmax_outputs:
            softmax_outputs = (outputs[0], *softmax_outputs)
        for name in softmax_outputs:
            if name not in outputs:
                raise RtlgenError(f"softmax output '{name}' is not a graph output")
        object.__setattr__(self, "softmax_outputs", softmax_outputs)
        object.__setattr__(self, "softmax", outputs[0] in softmax_outputs)
        scales = tuple(self.output_scales)
        if scales and len(scales) != len(outputs):
            raise RtlgenError(f"{len(scales)} output scales for {len(outputs)} outputs")
        for name, scale in zip(outputs, scales, strict=False):
            shape = by_name[name].out_shape
            if scale is not None and scale.scale.size != (shape[-1] if shape else 1):
                raise RtlgenError(
                    f"output '{name}': a scale of {scale.scale.size} channels for shape {shape}"
                )
        object.__setattr__(self, "output_scales", scales if any(scales) else ())
        rank = {"": None, "nchw": 3, "ncl": 2}
        if self.input_layout not in rank or (
            self.input_layout and len(nodes[0].out_shape) != rank[self.input_layout]
        ):
            raise RtlgenError(
                f"input layout {self.input_layout!r} for an input of shape {nodes[0].out_shape}"
            )

    # -- structure ------------------------------------------------------------------------
    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def index_of(self, name: str) -> int:
        for index, node in enumerate(self.nodes):
            if node.name == name:
                return index
        raise KeyError(name)

    def consumers(self, name: str) -> tuple[Node, ...]:
        """The nodes that take ``name``'s output, in graph order (a node taking it twice
        appears twice)."""
        return tuple(n for n in self.nodes for i in n.inputs if i == name)

    @property
    def is_chain(self) -> bool:
        """One input, one output, every node taking the one before it: the original
        linear-chain form, which every pass and the hardware handle without forks."""
        return (
            len(self.outputs) == 1
            and self.outputs[0] == self.nodes[-1].name
            and all(
                node.inputs == (prev.name,)
                for prev, node in zip(self.nodes, self.nodes[1:], strict=False)
            )
        )

    @property
    def input_nodes(self) -> tuple[Input, ...]:
        return tuple(n for n in self.nodes if isinstance(n, Input))

    @property
    def output_nodes(self) -> tuple[Node, ...]:
        return tuple(self.node(name) for name in self.outputs)

    # -- the first input and first output (the whole graph, for a chain) ------------------
    @property
    def input(self) -> Input:
        return self.nodes[0]  # type: ignore[return-value]

    @property
    def output(self) -> Node:
        return self.node(self.outputs[0])

    @property
    def input_shape(self) -> Shape:
        return self.nodes[0].out_shape

    @property
    def output_shape(self) -> Shape:
        return self.output.out_shape

    @property
    def lowered(self) -> bool:
        """True when every constant is integer and every type is set."""
        for node in self.nodes:
            if node.out_type is None:
                return False
            for t in constants(node).values():
                if not isinstance(t, QTensor):
                    return False
            if isinstance(node, _Arithmetic) and node.acc_type is None:
                return False
        return True

    @property
    def source_input_shape(self) -> Shape:
        """The (first) input's sample shape in the source model's layout: (C, H, W) or
        (C, L) for a channels-first model, else `input_shape`."""
        shape = tuple(self.input_shape)
        return (shape[-1], *shape[:-1]) if self.input_layout else shape

    def output_scale(self, index: int) -> OutputScale | None:
        """The `OutputScale` of output ``index`` (None: its fixed-point value is real)."""
        return self.output_scales[index] if self.output_scales else None

    def dequantize(self, index: int, mantissa: np.ndarray) -> np.ndarray:
        """Real values (float64) of output ``index``'s mantissas: its type's value, then
        its `OutputScale` if it has one (float32 numbers then)."""
        out_type = self.node(self.outputs[index]).out_type
        assert out_type is not None, "dequantize needs a lowered graph"
        values = out_type.to_float(np.asarray(mantissa))
        scale = self.output_scale(index)
        return values if scale is None else scale.apply(values)

    def in_types(self, index: int) -> tuple[FixedType, ...]:
        """The types of the streams reaching ``nodes[index]``, one per input."""
        types = tuple(self.node(name).out_type for name in self.nodes[index].inputs)
        assert all(t is not None for t in types)
        return types  # type: ignore[return-value]

    def in_type(self, index: int) -> FixedType:
        """The type of the (first) stream reaching ``nodes[index]``."""
        return self.in_types(index)[0]

    def with_nodes(self, nodes: list[Node] | tuple[Node, ...]) -> ModelGraph:
        """The same graph with new nodes (same names keep their place as outputs). A chain
        keeps ending at its last node, so a truncated or rebuilt chain stays a chain."""
        names = {n.name for n in nodes}
        outputs = () if self.is_chain else tuple(o for o in self.outputs if o in names)
        softmax_outputs = tuple(o for o in self.softmax_outputs if o in (outputs or names))
        if self.is_chain:
            softmax_outputs = ()  # a chain keeps ``softmax`` for its (new) last node
        return dataclasses.replace(
            self, nodes=tuple(nodes), outputs=outputs, softmax_outputs=softmax_outputs
        )


def constants(node: Node) -> dict[str, Tensor]:
    """The constant tensors of a node by field name (weights, bias, scale, shift)."""
    out: dict[str, Tensor] = {}
    # an op's node may name further constant fields (``constant_fields``, e.g. the widths
    # of `rtlgen.ops.hgq2.FixedQuantize`): saved and read like weights
    for name in ("weights", "bias", "scale", "shift", *getattr(node, "constant_fields", ())):
        value = getattr(node, name, None)
        if value is not None:
            out[name] = value
    return out


def spatial(shape: Shape) -> tuple[int, int, int]:
    """(H, W, C) view of an image (H, W, C) or 1D (L, C) shape."""
    if len(shape) == 3:
        return shape[0], shape[1], shape[2]
    if len(shape) == 2:
        return 1, shape[0], shape[1]
    raise RtlgenError(f"expected an image or 1D shape, got {shape}")


def weight_count(node: Conv | Dense) -> int:
    """The weights a conv/dense layer has: a grouped convolution's only on its blocks, a
    dilated one's only on its taps."""
    size = int(np.prod(node.weights.shape))
    if not isinstance(node, Conv):
        return size
    taps = int(np.count_nonzero(tap_mask(node.kernel, node.dilation)))
    return size // (node.kernel[0] * node.kernel[1]) * taps // node.groups


def multiplies(node: Node) -> tuple[int, int]:
    """(non-zero, total) constant multiplications per output sample of a lowered node."""
    if isinstance(node, Conv):
        h, w, _ = spatial(node.out_shape)
        w_m = node.weights.mantissa if isinstance(node.weights, QTensor) else node.weights.values
        return int(np.count_nonzero(w_m)) * h * w, weight_count(node) * h * w
    if isinstance(node, Dense):
        w_m = node.weights.mantissa if isinstance(node.weights, QTensor) else node.weights.values
        return int(np.count_nonzero(w_m)), int(w_m.size)
    if isinstance(node, ScaleShift):
        s = node.scale.mantissa if isinstance(node.scale, QTensor) else node.scale.values
        positions = int(np.prod(node.out_shape[:-1])) if len(node.out_shape) > 1 else 1
        return int(np.count_nonzero(s)) * positions, int(s.size) * positions
    return 0, 0
