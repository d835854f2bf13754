"""The op registry: one `Op` class per op kind, found by IR node type or Keras class name.

An op module (``rtlgen/ops/<kind>.py``) defines a subclass of `Op` and registers it with
`register_op`; it owns everything about that kind of layer:

- ``node_types``: the frozen IR node class(es) it handles (`rtlgen.ir`);
- ``keras_classes`` and ``from_keras``: the front-end handler (a Keras layer entry -> nodes);
- ``lower``: quantize its constants and set its types (precision inference, `rtlgen.passes`);
- ``reference``: the integer kernel (built on the `rtlgen.quant` arithmetic primitives);
- ``validate`` (and ``constant_shapes``): the checks of a node read from an untrusted saved
  graph (`rtlgen.serialize` saves and reads the node's fields generically);
- ``plan``: the hardware decision for one node (its `LayerPlan`: components in stream order,
  reuse factor, costs); the components' docstrings state their timing contracts, which
  `rtlgen.timing` follows beat by beat.

Nothing outside ``rtlgen/ops`` dispatches on node types for these four jobs: the front-end,
`rtlgen.quant.reference.run_int` and `rtlgen.plan.plan_network` ask the registry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from rtlgen import ir
from rtlgen.quant.errors import RtlgenError, UnsupportedError
from rtlgen.quant.fixed import FixedType

if TYPE_CHECKING:
    from rtlgen.frontend.keras_config import KerasLayer, LayerOut, WeightSource
    from rtlgen.passes import LowerContext
    from rtlgen.plan import LayerPlan, PlanContext

Shape = tuple[int, ...]


class Op:
    """One op kind. Subclasses set the class attributes and override what they support."""

    #: the op kind's name (``dense``, ``conv``, ...), as in docs/DESIGN.md's op list
    name: ClassVar[str]
    node_types: ClassVar[tuple[type[ir.Node], ...]] = ()
    keras_classes: ClassVar[tuple[str, ...]] = ()
    #: the op takes several inputs (a merge): ``from_keras`` gets a tuple of shapes,
    #: ``reference`` tuples of mantissa arrays and types, the plan's first component has
    #: input ports ``i0``, ``i1``, ...
    multi_input: ClassVar[bool] = False

    @staticmethod
    def from_keras(layer: KerasLayer, shape: Shape, source: WeightSource) -> LayerOut:
        raise NotImplementedError

    @staticmethod
    def reference(node: Any, x: np.ndarray, in_type: FixedType) -> np.ndarray:
        """Input mantissas (N, *node.in_shape) -> output mantissas (N, *node.out_shape)."""
        raise RtlgenError(f"layer '{node.name}': op '{node.op}' has no reference implementation")

    @staticmethod
    def float_forward(node: Any, x: Any) -> np.ndarray:
        """The unlowered node in float64 on sample data (merges: a list of arrays), for
        `rtlgen.calibrate`."""
        raise RtlgenError(f"layer '{node.name}': op '{node.op}' cannot be calibrated")

    @staticmethod
    def lower(node: Any, ctx: LowerContext) -> ir.Node:
        """The node with its constants quantized and every type set (`rtlgen.passes`)."""
        raise RtlgenError(f"layer '{node.name}': op '{node.op}' cannot be lowered")

    @staticmethod
    def constant_shapes(in_shape: Shape, out_shape: Shape) -> dict[str, Shape]:
        """Shapes of the node's constant tensors by field name (`rtlgen.serialize` checks
        the saved arrays against them)."""
        return {}

    @staticmethod
    def validate(node: Any, in_type: FixedType | None) -> None:
        """Raise `RtlgenError` (one line) unless the node's fields, shapes and types agree
        with each other: `rtlgen.serialize` calls it on every node read from a design
        folder's graph.npz, which is untrusted. Ops that can be saved must override it."""
        raise RtlgenError(f"op '{node.op}' cannot be read from a saved graph")

    @staticmethod
    def sample_cycles(node: Any, in_type: FixedType) -> int:
        """Cycles per sample this node needs at full rate beyond one per input beat (0:
        none); the network's initiation interval is the largest over its nodes."""
        return 0

    @staticmethod
    def plan(node: Any, ctx: PlanContext) -> LayerPlan:
        raise UnsupportedError(
            f"layer '{node.name}': op '{node.op}' has no hardware implementation"
        )


@dataclass(frozen=True)
class _Registry:
    by_node: dict[type[ir.Node], type[Op]]
    by_keras: dict[str, type[Op]]
    by_name: dict[str, type[Op]]


_REGISTRY = _Registry({}, {}, {})


def register_op(cls: type[Op]) -> type[Op]:
    """Class decorator: make ``cls`` the op of its node types and Keras class names."""
    for table, keys in (
        (_REGISTRY.by_node, cls.node_types),
        (_REGISTRY.by_keras, cls.keras_classes),
        (_REGISTRY.by_name, (cls.name,)),
    ):
        for key in keys:
            if key in table and table[key] is not cls:
                raise RuntimeError(
                    f"{key!r} is registered twice ({table[key].__name__}, {cls.__name__})"
                )
            table[key] = cls  # type: ignore[index]
    return cls


def _loaded() -> _Registry:
    import rtlgen.ops  # noqa: F401  (importing the package registers every op module)

    return _REGISTRY


def op_for(node: ir.Node) -> type[Op]:
    """The op of a node; an unknown node type is a one-line error."""
    op = _loaded().by_node.get(type(node))
    if op is None:
        raise UnsupportedError(f"layer '{node.name}': op '{node.op}' is not a registered op kind")
    return op


def op_for_type(node_type: type[ir.Node]) -> type[Op]:
    """The op of a node class (`op_for` without a node at hand)."""
    op = _loaded().by_node.get(node_type)
    if op is None:
        raise UnsupportedError(f"node class {node_type.__name__} is not a registered op kind")
    return op


def keras_handler(class_name: str) -> Callable[..., LayerOut] | None:
    """The front-end handler of a Keras layer class, None if no op reads it."""
    op = _loaded().by_keras.get(class_name)
    return None if op is None else op.from_keras


def keras_op(class_name: str) -> type[Op]:
    """The op reading a Keras layer class (`keras_handler` first tells whether one does)."""
    return _loaded().by_keras[class_name]


def keras_classes() -> tuple[str, ...]:
    """Every Keras layer class some op reads, in registration order."""
    return tuple(_loaded().by_keras)


def ops() -> tuple[type[Op], ...]:
    """Every registered op kind, in registration order."""
    return tuple(_loaded().by_name.values())
