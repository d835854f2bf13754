"""Deciding before building: the hardware plan of a lowered `ModelGraph`.

`plan_network(graph, options)` is a pure function: it walks the graph in stream order and asks
each node's op (`rtlgen.ops`) for its `LayerPlan` (the components in stream order, reuse
factor, fused pipeline depth, costs) given the guaranteed spacing of the beats reaching it.
`rtlgen.hardware.NetworkTop` only builds and wires what the `NetworkPlan` says; the timing
model (`rtlgen.timing`) and the manifest read the same plan.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from rtlgen import forking, ir
from rtlgen.layers.multiplier import Multiplier
from rtlgen.quant.arith import aligned_weights, clamp_bounds
from rtlgen.quant.errors import RtlgenError
from rtlgen.quant.fixed import FixedType
from rtlgen.sim_tb.tb_manifest import input_prefix, output_prefix

if TYPE_CHECKING:
    from amaranth.lib import data, wiring

    from rtlgen.layers.requantize import Requantize

T = TypeVar("T")


class Parallelism(Enum):
    AUTO = "auto"  # time-multiplex layers that see a new input only every few cycles
    FULL = "full"  # every layer fully parallel (reuse factor 1)


class BudgetRule(Enum):
    """A latency budget given as a rule (`HardwareOptions.latency_budget`)."""

    #: the default: a sample takes at most `STREAM_SLACK` more than the sample period (the
    #: initiation interval: one input beat per cycle), where every layer at reuse 1 can;
    #: a rate-balanced plan slower than that caps the reuse of its time-multiplexed layers
    #: (as an explicit budget of ``floor((1 + STREAM_SLACK) * period)`` cycles would), a
    #: plan that cannot reach it stays as it is
    AUTO = "auto"


#: how far past the sample period `BudgetRule.AUTO` lets a sample's latency go
STREAM_SLACK = 0.02


class Pipeline(Enum):
    BALANCED = "balanced"  # registers after every layer, a skid buffer between layers
    # vector (Dense-only) networks: requantize fused into the next layer's first stage and
    # registers every `adders_per_stage` adder levels across layer boundaries (da4ml-style)
    LATENCY = "latency"


#: adder levels charged to a combinational Requantize in the `latency` pipeline
FUSED_REQUANTIZE_LEVELS = 2

#: default adders in series between registers: 2 keeps a constant MAC array at ~4 LUT levels
#: under Yosys (3 measured 6-8 in whole SVHN designs, over the <= 6 aim); the latency
#: pipeline trades depth for cycles on purpose
DEFAULT_ADDERS_PER_STAGE = {Pipeline.BALANCED: 2, Pipeline.LATENCY: 6}


#: the largest reuse cap and latency budget taken (a cap above any layer's input spacing
#: changes nothing; a budget is a cycle count of a sample)
MAX_REUSE = 1 << 20
MAX_BUDGET = 1 << 40


@dataclass(frozen=True)
class HardwareOptions:
    """``multiplier``: how constant products are built; ``parallelism``: reuse factors;
    ``min_reuse``: below this input spacing (cycles) a layer stays fully parallel, since
    constant-coefficient products are cheaper than shared general multipliers;
    ``adders_per_stage``: adders in series between the pipeline registers of a constant
    MAC array (``None``: `DEFAULT_ADDERS_PER_STAGE` of the pipeline, 2 or 6; 2 is ~4 LUT
    levels; 3 is ~6, one cycle less per layer and fewer FFs).
    ``pipeline``: `Pipeline.LATENCY` builds the fully parallel layers of a vector network
    (one beat per sample: an MLP) without registers or skid buffers at layer boundaries: each
    layer's Requantize is combinational and the registers fall every ``adders_per_stage``
    adder levels across the whole chain (fewest cycles; use 5-8 adders per stage).
    ``max_reuse``: the most steps a time-multiplexed layer spends on one input beat (its
    reuse factor; for a dense consuming a flatten's beats, its steps per beat): each step
    more is a cycle more of latency (None: no cap, the input spacing decides; 1: every layer
    fully parallel, as `Parallelism.FULL`).
    ``latency_budget``: the most cycles the network may take (the manifest's latency):
    `plan_network` caps the reuse of the layers where a cycle costs the fewest multipliers
    until it is met (``layer_max_reuse``); `BudgetRule.AUTO` (the default): within
    `STREAM_SLACK` of the sample period where reachable; None: no budget (the cheapest
    rate-balanced plan). Only with `Parallelism.AUTO` and no ``max_reuse``.
    ``layer_max_reuse``: (layer name, cap) pairs, each a ``max_reuse`` for that layer alone
    (over ``max_reuse``); what a latency budget chose.
    ``layer_out_beats``: (layer name, beats) pairs: a time-multiplexed dense of a one-beat
    input sends its result in that many beats of consecutive outputs, each as soon as it is
    made (`SerialMatVec` ``out_beats``), through a threshold bank that takes them so
    (`BeatThresholdBank`) to a dense that adds each to its partial sums as it arrives:
    the two denses overlap; what a latency budget chose (ignored where the layer is not
    such a dense)."""

    multiplier: Multiplier = Multiplier.AUTO
    parallelism: Parallelism = Parallelism.AUTO
    skid_buffers: bool = True
    min_reuse: int = 4
    adders_per_stage: int = None  # type: ignore[assignment]  # resolved in __post_init__
    pipeline: Pipeline = Pipeline.BALANCED
    max_reuse: int | None = None
    latency_budget: int | BudgetRule | None = BudgetRule.AUTO
    #: ``pixels_per_beat``: adjacent pixels of an image row per input beat (`rtlgen.ppb`)
    pixels_per_beat: int = 1
    layer_max_reuse: tuple[tuple[str, int], ...] = ()
    layer_out_beats: tuple[tuple[str, int], ...] = ()

    def reuse_cap(self, layer: str) -> int | None:
        """The most steps per input beat layer ``layer`` may take (None: no cap)."""
        return dict(self.layer_max_reuse).get(layer, self.max_reuse)

    def out_beats(self, layer: str) -> int:
        """The beats layer ``layer``'s result is asked to leave in (`layer_out_beats`)."""
        return dict(self.layer_out_beats).get(layer, 1)

    def __post_init__(self):
        if self.adders_per_stage is None:
            object.__setattr__(self, "adders_per_stage", DEFAULT_ADDERS_PER_STAGE[self.pipeline])
        if not 1 <= self.adders_per_stage <= 8:
            raise RtlgenError(
                f"adders per stage {self.adders_per_stage} is not supported (use 1 to 8)"
            )
        if self.max_reuse is not None and not 1 <= self.max_reuse <= MAX_REUSE:
            raise RtlgenError(
                f"--max-reuse {self.max_reuse} is not supported (use 1 to {MAX_REUSE})"
            )
        for layer, cap in self.layer_max_reuse:
            if not 1 <= cap <= MAX_REUSE:
                raise RtlgenError(
                    f"reuse cap {cap} of layer '{layer}' is not supported (use 1 to {MAX_REUSE})"
                )
        for layer, beats in self.layer_out_beats:
            if not 1 <= beats <= MAX_REUSE:
                raise RtlgenError(
                    f"result beats {beats} of layer '{layer}' are not supported (use 1 to "
                    f"{MAX_REUSE})"
                )
        if isinstance(self.latency_budget, int) and self.parallelism is Parallelism.FULL:
            raise RtlgenError(
                f"--latency-budget {self.latency_budget} caps the reuse of --parallelism auto; "
                "--parallelism full has none (use one or the other)"
            )
        if isinstance(self.latency_budget, int) and not 1 <= self.latency_budget <= MAX_BUDGET:
            raise RtlgenError(
                f"--latency-budget {self.latency_budget} is not supported (use 1 to "
                f"{MAX_BUDGET} cycles)"
            )
        if self.pixels_per_beat != 1:
            from rtlgen.ppb import check_pixels_per_beat

            check_pixels_per_beat(self.pixels_per_beat)


@dataclass(frozen=True)
class StreamFormat:
    """How a tensor travels: ``beats`` beats per sample of ``elements`` elements of ``type``."""

    beats: int
    elements: int
    type: FixedType

    @classmethod
    def of(cls, shape: tuple[int, ...], t: FixedType) -> StreamFormat:
        if len(shape) == 1:
            return cls(1, shape[0], t)
        return cls(int(np.prod(shape[:-1])), shape[-1], t)

    @property
    def layout(self) -> data.ArrayLayout:
        from amaranth.lib import data

        from rtlgen.layers.common import shape_of

        return data.ArrayLayout(shape_of(self.type), self.elements)


@dataclass(frozen=True)
class LayerPlan:
    """What one IR node became: its components (in stream order) and their costs."""

    node: ir.Node
    stages: tuple[wiring.Component, ...]
    multipliers: int = 0
    multipliers_dense: int = 0
    adders: int = 0
    reuse: int = 1
    cycles_per_sample: int = 1
    out_spacing: int = 1
    notes: tuple[str, ...] = field(default=())
    #: adder levels already spent on the output in its cycle (`Pipeline.LATENCY`: the
    #: next layer's first stage continues the count); 0 when the output is registered
    out_levels: int = 0
    #: a SkidBuffer after the layer (`HardwareOptions.skid_buffers`); not between the
    #: fused layers of the `latency` pipeline
    skid_buffer: bool = True
    #: how the result leaves the stages when not as `StreamFormat.of` the node's shape (a
    #: flatten passing its beats on to a dense that consumes them as they arrive)
    out_format: StreamFormat | None = None


def weights_matrix(node: ir.Conv | ir.Dense | ir.ScaleShift, in_type: FixedType):
    assert node.acc_type is not None
    acc_frac = node.acc_type.frac
    if isinstance(node, ir.ScaleShift):
        assert isinstance(node.scale, ir.QTensor) and isinstance(node.shift, ir.QTensor)
        scale = aligned_weights(node.scale.mantissa, in_type, node.scale.type, acc_frac)
        bias = node.shift.mantissa << (acc_frac - node.shift.type.frac)
        return np.diag(scale), bias  # off-diagonal zeros cost no hardware
    assert isinstance(node.weights, ir.QTensor)
    w = aligned_weights(node.weights.mantissa, in_type, node.weights.type, acc_frac)
    w = w.reshape(-1, w.shape[-1])
    bias = None
    if node.bias is not None:
        assert isinstance(node.bias, ir.QTensor)
        bias = node.bias.mantissa << (acc_frac - node.bias.type.frac)
    return w, bias


#: A Requantize that rounds away more fractional bits than this gets a second register
#: stage: the rounding's sticky bit over the dropped bits and the saturation compare of the
#: kept ones (a BN-folded accumulator of 30-40 bits into 6) are too deep for one stage.
DEEP_ROUNDING_BITS = 12


def output_is_accumulator(node: ir.Conv | ir.Dense | ir.ScaleShift) -> bool:
    """Whether the node's output is its accumulator as it is (a linear layer whose output
    type is the accumulator's, e.g. before a float BN's thresholds): its `Requantize` would
    be a register and nothing else, so none is built (a cycle less; the MAC's output is
    registered)."""
    return node.out_type == node.acc_type and node.activation.is_linear


def requantize_stage(
    node: ir._Arithmetic, elements: int, in_ranges=None, latency: int | None = None
) -> Requantize:
    """Clamp + round + saturate into the node's output type. ``in_ranges``: the exact range
    of each accumulator (from the MAC), so comparisons that can never fire cost nothing.
    ``latency``: None chooses 1, or 2 where the rounding drops many bits."""
    from rtlgen.layers.requantize import Requantize

    assert node.acc_type is not None and node.out_type is not None
    lo, hi = clamp_bounds(node.activation.lo, node.activation.hi, node.acc_type.frac, node.name)
    if latency is None:
        latency = 2 if node.acc_type.frac - node.out_type.frac > DEEP_ROUNDING_BITS else 1
    return Requantize(
        elements,
        node.acc_type,
        node.out_type,
        lo,
        hi,
        node.rounding,
        node.overflow,
        in_ranges=in_ranges,
        latency=latency,
    )


@dataclass(frozen=True)
class PlanContext:
    """What an op's `plan` may know about where its node sits in the network.

    ``in_type``: the type of the stream reaching the node; ``spacing``: guaranteed minimum
    number of cycles between two beats reaching it; ``sample_cycles``: cycles per sample of
    the whole network (its initiation interval); ``input_levels``: adder levels spent on the
    input in its cycle upstream (the previous plan's ``out_levels``); ``last``: the network's
    last layer with hardware (its output is registered).
    """

    in_type: FixedType
    options: HardwareOptions
    spacing: int
    sample_cycles: int
    input_levels: int = 0
    last: bool = False
    #: the type of each input (a merge has several; ``in_type`` is the first)
    in_types: tuple[FixedType, ...] = ()
    #: how the first input's beats arrive (None: `StreamFormat.of` the node's input shape);
    #: a dense after a flatten that passes its beats on gets the flatten's input beats
    in_format: StreamFormat | None = None
    #: the nodes taking this node's result, and whether it is also a network output
    consumers: tuple[ir.Node, ...] = ()
    is_output: bool = False

    def __post_init__(self) -> None:
        if not self.in_types:
            object.__setattr__(self, "in_types", (self.in_type,))


@dataclass(frozen=True)
class FifoPlan:
    """A FIFO on input ``input_index`` of ``consumer`` (a join), fed by ``producer``.

    Where a stream forks and the branches meet again at a merge, the branch whose beats
    arrive first must wait for the other: without room to wait, the fork stalls, the slow
    branch starves and the pipeline deadlocks (a 3x3 convolution needs two rows before its
    first output). ``depth``: the beats that must wait, from the event-time model
    (`rtlgen.timing.model_graph`); ``width``: bits per beat.
    """

    consumer: str
    input_index: int
    producer: str
    depth: int
    width: int

    @property
    def bits(self) -> int:
        return self.depth * self.width


def _plain_unique(names: list[str], base: str, fallback: str) -> str:
    base = re.sub(r"[^A-Za-z0-9_]", "_", base)[:120] or fallback
    if base[0].isdigit():
        base = f"{fallback}_{base}"
    name, count = base, 1
    while name in names:
        count += 1
        name = f"{base}_{count}"
    return name


def input_names(graph: ir.ModelGraph) -> tuple[str, ...]:
    """The names of the graph's inputs in the manifest, REPORT.md and `.npz` files, in
    ``graph.input_nodes`` order (the order of the Keras model's ``input_layers``): each
    `Input` node's name made a plain identifier (other characters become ``_``, at most 128
    characters, ``input_`` before a leading digit) and unique (``_2`` ... after a repeat)."""
    names: list[str] = []
    for node in graph.input_nodes:
        names.append(_plain_unique(names, node.name, "input"))
    return tuple(names)


def output_names(graph: ir.ModelGraph) -> tuple[str, ...]:
    """The names of the graph's outputs in the manifest, REPORT.md and `.npz` files, in
    ``graph.outputs`` order: the Keras layer whose result each output is (the last layer of
    its node's ``source``: a fused activation names it; a no-op layer that built no node, e.g.
    a linear Activation, leaves its producer's name), else the node's name; made plain
    identifiers (other characters become ``_``, at most 128 characters, ``output_`` before a
    leading digit) and unique (``_2``, ``_3`` ... after a repeated name)."""
    names: list[str] = []
    for node in graph.output_nodes:
        layer = node.source.split("+")[-1] if node.source else node.name
        base = re.sub(r"[^A-Za-z0-9_]", "_", layer or node.name)[:120] or "output"
        if base[0].isdigit():
            base = f"output_{base}"
        name, count = base, 1
        while name in names:
            count += 1
            name = f"{base}_{count}"
        names.append(name)
    return tuple(names)


@dataclass(frozen=True)
class InputPlan:
    """One input of the network and the AXI4-Stream slave that takes it.

    ``node``: the graph's `Input` node; ``name``: its name in the manifest and `.npz` files
    (`input_names`); ``prefix``: the port prefix (`input_prefix`: ``s_axis``, ``s1_axis``
    ...); ``format``: how its beats travel.
    """

    node: str
    name: str
    prefix: str
    format: StreamFormat


@dataclass(frozen=True)
class OutputPlan:
    """One output of the network and the AXI4-Stream master that carries it.

    ``node``: the graph node whose result leaves; ``name``: its name in the manifest and
    `.npz` files (`output_names`); ``prefix``: the port prefix (`output_prefix`);
    ``format``: how its beats travel; ``classes``: arg-max classes on ``<prefix>_tuser``
    (a vector output: every one-beat vector gets the index of its maximum, as a one-output
    network always had; 0 for an image or sequence output, which has no tuser).
    """

    node: str
    name: str
    prefix: str
    format: StreamFormat
    classes: int

    @property
    def tuser_width(self) -> int:
        return max(1, (self.classes - 1).bit_length()) if self.classes else 0


@dataclass(frozen=True)
class NetworkPlan:
    """Every decision about the hardware of a lowered graph, made before anything is built.

    ``layers``: one `LayerPlan` per node after the input, in graph order; ``sample_cycles``:
    the network's initiation interval at full rate; ``outputs``: one `OutputPlan` per graph
    output, in ``graph.outputs`` order; ``fifos``: the FIFOs on the inputs of joins (none in
    a chain). ``output_format``, ``classes`` and ``tuser_width`` are the first output's;
    ``inputs``: one `InputPlan` per `Input` node, in graph order (``input_format`` is the
    first's).
    """

    graph: ir.ModelGraph
    options: HardwareOptions
    input_format: StreamFormat
    outputs: tuple[OutputPlan, ...]
    sample_cycles: int
    layers: tuple[LayerPlan, ...]
    fifos: tuple[FifoPlan, ...] = ()
    inputs: tuple[InputPlan, ...] = ()

    def __post_init__(self) -> None:
        if not self.inputs:
            first = self.graph.input
            object.__setattr__(
                self,
                "inputs",
                (
                    InputPlan(
                        first.name, input_names(self.graph)[0], input_prefix(0), self.input_format
                    ),
                ),
            )

    @property
    def output_format(self) -> StreamFormat:
        return self.outputs[0].format

    @property
    def classes(self) -> int:
        return self.outputs[0].classes

    @property
    def tuser_width(self) -> int:
        return self.outputs[0].tuser_width

    def has_skid_buffer(self, layer: LayerPlan) -> bool:
        """Whether a `SkidBuffer` (latency 1) follows ``layer``'s stages."""
        return self.options.skid_buffers and bool(layer.stages) and layer.skid_buffer


def _last_with_hardware(graph: ir.ModelGraph, index: int) -> bool:
    """Whether ``nodes[index]``'s result reaches an output through flattens only (the last
    layer with hardware registers its output)."""
    if graph.is_chain:
        return all(isinstance(after, ir.Flatten) for after in graph.nodes[index + 1 :])
    name = graph.nodes[index].name
    while name not in graph.outputs:
        users = graph.consumers(name)
        if len(users) != 1 or not isinstance(users[0], ir.Flatten):
            return False
        name = users[0].name
    return True


def plan_network(graph: ir.ModelGraph, options: HardwareOptions = HardwareOptions()) -> NetworkPlan:
    """Plan every node of a lowered graph (pure: same graph and options, same plan).

    Walks the graph in order, carrying the guaranteed spacing of the beats (1 at a
    multi-beat input, a whole sample period at a one-beat input; a join takes the smallest
    of its inputs') and, along a chain, the adder levels a fused `Pipeline.LATENCY` chain has
    spent, into each op's `plan`. Then sizes the FIFOs on the inputs of joins by the
    event-time model: every input of a join but the one whose beats arrive last gets a FIFO
    deep enough that the fork feeding the branches never waits.
    """
    if not graph.lowered:
        raise ValueError("plan_network needs a lowered graph")
    if options.max_reuse is None and options.parallelism is Parallelism.AUTO:
        if isinstance(options.latency_budget, int):
            try:
                return _plan_for_budget(graph, options)
            except _Unreachable:
                raise _budget_error(graph, options) from None
        if options.latency_budget is BudgetRule.AUTO:
            return _plan_for_stream(graph, options)
    out_type = graph.output.out_type
    assert out_type is not None
    inputs = tuple(
        InputPlan(node.name, name, input_prefix(k), StreamFormat.of(node.out_shape, node.out_type))  # type: ignore[arg-type]
        for k, (node, name) in enumerate(zip(graph.input_nodes, input_names(graph), strict=True))
    )
    from rtlgen.ppb import PixelFormat, plan_pixels
    from rtlgen.ppb import input_format as pixel_input

    pixels = pixel_input(graph, options.pixels_per_beat)
    if pixels is not None:  # several pixels per beat: the first input's beats
        inputs = (dataclasses.replace(inputs[0], format=pixels),)
    input_format = inputs[0].format
    sample_cycles = sample_cycles_of(graph, options.pixels_per_beat)
    # each input offers a beat at most every cycle (several beats a sample) or a sample
    # period (one beat a sample)
    spacing = {i.node: 1 if i.format.beats > 1 else sample_cycles for i in inputs}
    levels = dict.fromkeys(spacing, 0)
    # streams that do not travel as `StreamFormat.of` their node's shape (a flatten's beats)
    formats: dict[str, StreamFormat] = {} if pixels is None else {inputs[0].node: pixels}
    plans: list[LayerPlan] = []

    for index, node in enumerate(graph.nodes):
        if isinstance(node, ir.Input):
            continue
        producer = node.inputs[0]
        # only a chain link (one input, whose producer feeds nothing else) continues the
        # adder levels of a fused latency pipeline
        chained = len(node.inputs) == 1 and len(graph.consumers(producer)) == 1
        ctx = PlanContext(
            graph.in_type(index),
            options,
            min(spacing[name] for name in node.inputs),
            sample_cycles,
            levels[producer] if chained else 0,
            _last_with_hardware(graph, index),
            graph.in_types(index),
            formats.get(producer),
            tuple(graph.consumers(node.name)),
            node.name in graph.outputs,
        )
        if isinstance(ctx.in_format, PixelFormat):
            plan = plan_pixels(node, ctx)
        else:
            plan = _plan_layer(node, ctx)
        plans.append(plan)
        spacing[node.name] = plan.out_spacing
        if plan.out_format is not None:
            formats[node.name] = plan.out_format
        # a stage-less plan (a flatten of a vector) passes the depth on
        levels[node.name] = plan.out_levels if plan.stages else ctx.input_levels
    outputs = tuple(
        OutputPlan(
            node.name,
            name,
            output_prefix(index),
            StreamFormat.of(node.out_shape, node.out_type),  # type: ignore[arg-type]
            # no arg-max where the output's per-channel scale/bias reorders the real values
            node.out_shape[0] if len(node.out_shape) == 1 and _argmax_real(graph, index) else 0,
        )
        for index, (node, name) in enumerate(
            zip(graph.output_nodes, output_names(graph), strict=True)
        )
    )
    network = NetworkPlan(
        graph, options, input_format, outputs, sample_cycles, tuple(plans), inputs=inputs
    )
    if graph.is_chain:
        return network
    return dataclasses.replace(network, fifos=_size_fifos(network))


#: layer plans kept while a latency budget is searched (`_plan_for_budget`): the probes
#: differ in a few layers' reuse caps, and a constant MAC array is slow to plan
_layer_plans: dict | None = None


@contextlib.contextmanager
def _cached_layer_plans():
    """Keep layer plans (`_layer_plans`), and the adder graphs of constant MAC arrays
    (`rtlgen.layers.adder_graph.reusing_plans`: a layer planned in another context often
    has the same matrix), until the outermost of these contexts ends."""
    from rtlgen.layers.adder_graph import reusing_plans

    global _layer_plans
    if _layer_plans is not None:
        yield
        return
    _layer_plans = {}
    try:
        with reusing_plans():
            yield
    finally:
        _layer_plans = None


def kept_while_planning(key: tuple, make: Callable[[], T]) -> T:
    """``make()``; while a budget search keeps layer plans (`_cached_layer_plans`), the
    value ``make`` gave for ``key`` earlier: for a component an op builds the same way
    whatever the probe (``key`` names the node, so no network holds one twice)."""
    if _layer_plans is None:
        return make()
    key = ("kept", *key)
    if key not in _layer_plans:
        _layer_plans[key] = make()
    return _layer_plans[key]


def _plan_layer(node: ir.Node, ctx: PlanContext) -> LayerPlan:
    """``node``'s op's plan, reused from an earlier probe of a budget search where the
    context is the same up to the reuse caps and result beats of other layers than the node
    and its consumers (a flatten's plan depends on its dense's)."""
    from rtlgen.ops.registry import op_for

    if _layer_plans is None:
        return op_for(node).plan(node, ctx)
    options = ctx.options
    caps = tuple(
        (n.name, _cap_key(options.reuse_cap(n.name)), options.out_beats(n.name))
        for n in (node, *ctx.consumers)
    )
    key = (
        node.name,
        dataclasses.replace(
            ctx,
            options=dataclasses.replace(
                options,
                max_reuse=None,
                latency_budget=None,
                layer_max_reuse=(),
                layer_out_beats=(),
            ),
        ),
        caps,
    )
    if key not in _layer_plans:
        _layer_plans[key] = op_for(node).plan(node, ctx)
    return _layer_plans[key]


def _cap_key(cap: int | None) -> int | None:
    """A reuse cap as `_plan_layer` keys it: `MAX_REUSE` is no cap."""
    return None if cap == MAX_REUSE else cap


def _planned_latency(
    graph: ir.ModelGraph, options: HardwareOptions, samples: int | None = None
) -> tuple[NetworkPlan, int]:
    """The plan of ``graph`` at ``options`` (a reuse cap set) and its latency (cycles, worst
    sample at full rate) as its `rtlgen.hardware.NetworkTop` has it, by the handshake
    model over ``samples`` samples (None: until the steady state, as the manifest)."""
    from rtlgen.hardware import NetworkTop
    from rtlgen.timing import model_top

    global _latency_only
    saved, _latency_only = _latency_only, True
    try:
        top = NetworkTop(graph, options)
    finally:
        _latency_only = saved
    return top.plan, model_top(top, samples).latency


#: True while `_planned_latency` plans: the join FIFOs keep the depths the exact-timing
#: shrink starts from (`_least_depths`), which give the same timing by construction; only
#: the plan that is built gets the least depths
_latency_only = False


def _serial_stages(network: NetworkPlan) -> dict:
    """The `SerialMatVec` of every time-multiplexed layer with more than one step per input
    beat, by layer name."""
    stages = {}
    for layer in network.layers:
        for stage in layer.stages:
            if getattr(stage, "beat_words", 1) > 1 and hasattr(stage, "group"):
                stages[layer.node.name] = stage
    return stages


def _serial_steps(network: NetworkPlan) -> dict[str, int]:
    """The steps per input beat of every time-multiplexed layer (a `SerialMatVec`'s) with
    more than one."""
    return {name: stage.beat_words for name, stage in _serial_stages(network).items()}


#: LUTs per product the budget search charges (Yosys xcup, the SVHN CNN's layers alone,
#: benchmarks/results/svhn_latency.json): a constant-coefficient product of a parallel
#: array 7.0 (conv) to 8.2 (dense), a shared general multiplier of a time-multiplexed one
#: 13.7 (conv) to 17 (its adder-tree and accumulator bits stay in LUTs beside the DSP, its
#: ROM in LUTs up to `BLOCK_ROM_WORDS` words); the differences between the SVHN plans'
#: layers come within ~15 % of these
LUTS_PER_CONSTANT_PRODUCT = 7
LUTS_PER_SHARED_MULTIPLIER = 14
#: the same for a shared general multiplier built of LUTs (``--multiplier lut``: one gated
#: copy of the input per weight bit, added at the accumulator's width, with the adder tree
#: and ROM beside it): 42-58 LUTs per multiplier, 53 on average, in the SVHN CNN's three
#: time-multiplexed denses synthesized alone (benchmarks/results/svhn_qp6_lut_parts.json),
#: against 6.5-8.2 per product of constant arrays; charged 14, the budget search kept
#: dense_1 and output_dense time-multiplexed at 12,938 and 3,388 LUTs where their constant
#: arrays take 11,044 and 2,632
LUTS_PER_SHARED_LUT_MULTIPLIER = 53
#: LUTs per comparator of a threshold bank, charged in the lut style only: 6.6 in the SVHN
#: CNN's banks alone (9.9 at a 24-bit input; 15 where the thresholds are picked by the beat,
#: but such a bank has a quarter of the comparators). Without it, building dense_1 as a
#: constant array (-1,894 LUTs) hid its bank's growth from 224 comparators picked by the
#: beat to 896 (+2,040)
LUTS_PER_COMPARATOR = 7


def _lut_cost(network: NetworkPlan) -> int:
    """The LUTs the budget search compares plans by (`LUTS_PER_CONSTANT_PRODUCT`,
    `LUTS_PER_SHARED_MULTIPLIER`; the rest of a plan is the same in every probe). In the
    lut style a shared multiplier is `LUTS_PER_SHARED_LUT_MULTIPLIER` and the threshold
    banks' comparators are counted too (`LUTS_PER_COMPARATOR`: a time-multiplexed layer
    sending its result in beats has a smaller bank after it)."""
    lut = network.options.multiplier is Multiplier.LUT
    shared = LUTS_PER_SHARED_LUT_MULTIPLIER if lut else LUTS_PER_SHARED_MULTIPLIER
    cost = sum(
        layer.multipliers * (shared if layer.reuse > 1 else LUTS_PER_CONSTANT_PRODUCT)
        for layer in network.layers
    )
    if lut:
        cost += LUTS_PER_COMPARATOR * sum(
            getattr(stage, "comparators", 0) for layer in network.layers for stage in layer.stages
        )
    return cost


def _step_caps(stage) -> list[int]:
    """The reuse caps giving a layer fewer steps per beat than ``stage`` takes, one per
    distinct step count (``ceil(per_beat / group)`` for a larger group), and 1."""
    per_beat = stage.per_beat
    steps = {-(-per_beat // group) for group in range(1, per_beat + 1)} | {1}
    return sorted((s for s in steps if s < stage.steps), reverse=True)


def _beat_taker(graph: ir.ModelGraph, name: str) -> str | None:
    """The dense that would take dense ``name``'s result beats as they arrive: its one
    consumer, or the one consumer of its one consumer, a threshold bank; None if none."""
    if name in graph.outputs:
        return None
    users = graph.consumers(name)
    if len(users) == 1 and users[0].op == "threshold" and users[0].name not in graph.outputs:
        users = graph.consumers(users[0].name)
    return users[0].name if len(users) == 1 and users[0].op == "dense" else None


#: result beats the budget search tries for a time-multiplexed dense (dividing its outputs)
RESULT_BEATS = (2, 4, 8, 16)


@dataclass(frozen=True)
class _Choice:
    """One way to plan a group of layers in the budget search: cycles saved against the
    default plan (alone), LUTs added (`_lut_cost`), and the options it sets."""

    saving: int
    cost: int
    caps: tuple[tuple[str, int], ...] = ()
    out_beats: tuple[tuple[str, int], ...] = ()


def _cheapest(units: list[list[_Choice]], need: int) -> list[_Choice] | None:
    """One choice per unit saving at least ``need`` cycles in total (savings added) for the
    fewest LUTs; None when no combination saves that much. A knapsack over the saving,
    counted up to ``need``."""
    best: dict[int, tuple[int, list[_Choice]]] = {0: (0, [])}
    for choices in units:
        after: dict[int, tuple[int, list[_Choice]]] = {}
        for saved, (cost, picked) in best.items():
            for choice in choices:
                key = min(need, saved + max(choice.saving, 0))
                total = cost + choice.cost
                if key not in after or total < after[key][0]:
                    after[key] = (total, [*picked, choice])
        best = after
    return best[need][1] if need in best else None


class _Unreachable(Exception):
    """A latency budget that every layer at reuse 1 misses."""


def _plan_for_stream(graph: ir.ModelGraph, options: HardwareOptions) -> NetworkPlan:
    """`BudgetRule.AUTO`: the rate-balanced plan if a sample takes at most `STREAM_SLACK`
    more than the sample period, or if no plan can (every layer at reuse 1 is slower);
    else the plan of an explicit budget of that many cycles."""
    cheapest = dataclasses.replace(options, latency_budget=None)
    with _cached_layer_plans():
        network = plan_network(graph, cheapest)
        if not _serial_stages(network):  # nothing to cap
            return network
        budget = int((1 + STREAM_SLACK) * network.sample_cycles)
        if _planned_latency(graph, cheapest)[1] <= budget:
            return network
        # no plan can when every layer at reuse 1 is slower (a global pool feeding a
        # squeeze-and-excitation scale waits for the whole sample): no search then
        if _planned_latency(graph, dataclasses.replace(cheapest, max_reuse=1))[1] > budget:
            return network
        try:
            return _plan_for_budget(graph, dataclasses.replace(options, latency_budget=budget))
        except _Unreachable:
            return network


def _plan_for_budget(graph: ir.ModelGraph, options: HardwareOptions) -> NetworkPlan:
    """The plan meeting ``options.latency_budget`` with few LUTs: the default plan when it
    meets the budget; else per-layer reuse caps (`HardwareOptions.layer_max_reuse`) and
    result beats (`HardwareOptions.layer_out_beats`) chosen by `_search_budget`. The plan
    keeps the budget and names what it chose. Raises `_Unreachable` where no plan meets it.

    The probes time the first sample only (a cap only makes a layer faster, so a
    rate-balanced plan's first sample is as slow as its steady state); the plan chosen is
    timed to its steady state, and searched for again so where that misses."""
    with _cached_layer_plans():
        network = _search_budget(graph, options, samples=1)
        if _planned_latency(graph, network.options)[1] > options.latency_budget:
            network = _search_budget(graph, options, samples=None)
    # the search's plans come from `_planned_latency`: their join FIFOs get the least depths
    return network if graph.is_chain else dataclasses.replace(network, fifos=_size_fifos(network))


def _budget_error(graph: ir.ModelGraph, options: HardwareOptions) -> RtlgenError:
    """The one line refusing an unreachable explicit ``options.latency_budget``."""
    _, latency = _planned_latency(graph, dataclasses.replace(options, max_reuse=MAX_REUSE))
    _, full_latency = _planned_latency(graph, dataclasses.replace(options, max_reuse=1))
    return RtlgenError(
        f"--latency-budget {options.latency_budget}: not reachable, every layer at reuse 1 "
        f"takes {full_latency} cycles (the default plan {latency}); the budget caps time "
        "multiplexing only"
    )


@dataclass(frozen=True)
class _Probe:
    """One plan the budget search measures: reuse caps and result beats by layer name."""

    caps: tuple[tuple[str, int], ...]
    out_beats: tuple[tuple[str, int], ...] = ()


#: processes `_probe_all` may use (`parallel_probes`); 1: this one only
_probe_jobs = 1


@contextlib.contextmanager
def parallel_probes(jobs: int):
    """Inside the block, a budget search measures its probes in up to ``jobs`` processes
    (forked: they inherit the layer plans made so far; `rtlgen.emit.convert` passes its
    ``jobs``). Outside, and in a daemonic process (a Dask worker), in this one."""
    global _probe_jobs
    saved, _probe_jobs = _probe_jobs, max(1, jobs)
    try:
        yield
    finally:
        _probe_jobs = saved


def _probe_options(
    options: HardwareOptions, probe: _Probe, uniform: int = MAX_REUSE
) -> HardwareOptions:
    """``options`` with the probe's caps and result beats (and ``uniform`` as the cap of
    every other layer)."""
    return dataclasses.replace(
        options,
        max_reuse=uniform,
        layer_max_reuse=tuple(sorted(probe.caps)),
        layer_out_beats=tuple(sorted(probe.out_beats)),
    )


def _measure(
    graph: ir.ModelGraph, options: HardwareOptions, samples: int | None, probes: list[_Probe]
) -> list[tuple[int, int]]:
    """(latency, `_lut_cost`) of each probe's plan."""
    results = []
    for probe in probes:
        trial, latency = _planned_latency(graph, _probe_options(options, probe), samples)
        results.append((latency, _lut_cost(trial)))
    return results


#: what a forked `_probe_all` worker measures (inherited, nothing of it is pickled)
_probing: tuple | None = None


def _measure_share(share: int) -> list[tuple[int, int]]:
    assert _probing is not None
    graph, options, samples, probes, shares = _probing
    with _cached_layer_plans():
        return _measure(graph, options, samples, [probes[k] for k in shares[share]])


def _deal(probes: list[_Probe], jobs: int) -> list[list[int]]:
    """The indices of ``probes`` each of ``jobs`` processes measures: a layer's step-count
    probes all in one process (the largest such set first, each to the process with the
    fewest probes), then the others one by one, to the process with the fewest. Why: a
    step count where sharing does not pay falls back to the layer's constant MAC array,
    whose adder graph each process measuring one of them planned again (dealt in turn, the
    SVHN CNN's conv_2, 144 x 24, was planned in both processes: ~1.3 s each at load 2.6)."""
    by_layer: dict[str, list[int]] = {}
    others: list[list[int]] = []
    for k, probe in enumerate(probes):
        if len(probe.caps) == 1 and not probe.out_beats:
            by_layer.setdefault(probe.caps[0][0], []).append(k)
        else:
            others.append([k])
    shares: list[list[int]] = [[] for _ in range(jobs)]
    for group in [*sorted(by_layer.values(), key=len, reverse=True), *others]:
        min(shares, key=len).extend(group)
    return [sorted(share) for share in shares]


def _probe_all(
    graph: ir.ModelGraph, options: HardwareOptions, samples: int | None, probes: list[_Probe]
) -> list[tuple[int, int]]:
    """`_measure` of every probe, shared among `_probe_jobs` processes where there are
    enough probes (as `_deal` deals them; this process measures the first share). The
    same figures either way: a probe's plan and timing are pure functions of it."""
    jobs = min(_probe_jobs, len(probes) // 8)  # (a fork costs about what 8 probes do)
    if jobs < 2 or not forking.can_fork():
        return _measure(graph, options, samples, probes)
    global _probing
    shares = _deal(probes, jobs)
    _probing = (graph, options, samples, probes, shares)
    try:
        with forking.forked_pool(jobs - 1) as pool:
            others = [pool.submit(_measure_share, share) for share in range(1, jobs)]
            measured = [_measure(graph, options, samples, [probes[k] for k in shares[0]])]
            measured += [future.result() for future in others]
    finally:
        _probing = None
    results: list[tuple[int, int] | None] = [None] * len(probes)
    for share, figures in zip(shares, measured, strict=True):
        for k, figure in zip(share, figures, strict=True):
            results[k] = figure
    return results  # type: ignore[return-value]


def _search_budget(
    graph: ir.ModelGraph, options: HardwareOptions, samples: int | None
) -> NetworkPlan:
    """Each time-multiplexed layer of the default plan is probed alone at every smaller
    step count (latency by the handshake model, LUTs by `_lut_cost`); a dense of a one-beat
    input whose result goes (through a threshold bank) to another dense is also probed
    sending its result in `RESULT_BEATS` beats that the other dense takes as they arrive
    (the two overlap), together with that dense's caps. The cheapest set of choices whose
    savings add up to the cycles over budget (`_cheapest`) is planned; where the savings do
    not add up (layers on parallel branches), the shortfall is asked for again. Then each
    cap is raised as far as the budget allows (binary search). Where no choice saves a
    cycle alone, a greedy search halves the steps of the layer adding the fewest LUTs per
    cycle saved (`_greedy_budget`). Latencies over ``samples`` samples (None: each plan's
    steady state)."""
    budget = options.latency_budget
    assert budget is not None

    def planned(caps: dict[str, int], beats: dict[str, int] | None = None, uniform=MAX_REUSE):
        probe = _Probe(tuple(caps.items()), tuple((beats or {}).items()))
        return _planned_latency(graph, _probe_options(options, probe, uniform), samples)

    network, latency = planned({})
    if latency <= budget:
        return network
    base_cost = _lut_cost(network)
    stages = _serial_stages(network)

    # every probe first (`_Probe`s: independent, so `_probe_all` may spread them over
    # processes), then the choices they give
    alone_probes = {
        name: [_Probe(((name, cap),)) for cap in _step_caps(stage)]
        for name, stage in stages.items()
    }
    pair_probes: dict[str, list[_Probe]] = {}
    joined: set[str] = set()
    taker_parallel = [1] if options.multiplier is Multiplier.LUT else []
    for name, stage in stages.items():
        taker = _beat_taker(graph, name)
        if name in joined or stage.beats != 1 or stage.out_beats != 1 or taker is None:
            continue
        # the dense and the one taking its beats as one unit: either as they are (their
        # savings added) or overlapped
        joined.update((name, taker))
        pair_probes[name] = []
        for beats in RESULT_BEATS:
            if stage.o_count % beats or beats >= stage.o_count:
                continue
            for cap in [stage.steps, *_step_caps(stage)]:
                if beats * cap >= stage.steps:
                    continue
                # the taker at the beats' spacing, or at 2 steps a beat (in the lut style
                # also as a constant array: its shared LUT multipliers cost more)
                for taker_cap in [None, 2, *taker_parallel] if cap > 2 else [None]:
                    caps = (
                        ((name, cap),)
                        if taker_cap is None
                        else tuple(sorted({name: cap, taker: taker_cap}.items()))
                    )
                    pair_probes[name].append(_Probe(caps, ((name, beats),)))
    every = [p for ps in [*alone_probes.values(), *pair_probes.values()] for p in ps]
    measured = dict(zip(every, _probe_all(graph, options, samples, every), strict=True))

    def choice(probe: _Probe) -> _Choice:
        trial_latency, trial_cost = measured[probe]
        return _Choice(latency - trial_latency, trial_cost - base_cost, probe.caps, probe.out_beats)

    alone = {name: [choice(p) for p in probes] for name, probes in alone_probes.items()}

    def greedy() -> NetworkPlan:
        # a plan found by the choices meets the budget, so it is reachable; before the
        # greedy search (which halves steps until it is met) check that every layer at
        # reuse 1 meets it (a plan of its own: its layers' contexts differ from the probes')
        if planned({}, uniform=1)[1] > budget:
            raise _Unreachable
        return _greedy_budget(graph, options, network, latency, planned)

    units: list[list[_Choice]] = []
    for name, probes in pair_probes.items():
        taker = _beat_taker(graph, name)
        keep = _Choice(0, 0)
        pairs = [
            _Choice(a.saving + b.saving, a.cost + b.cost, a.caps + b.caps)
            for a in [keep, *alone[name]]
            for b in [keep, *alone.get(taker, [])]
        ]
        units.append(pairs + [choice(p) for p in probes])
    units += [[_Choice(0, 0), *alone[name]] for name in stages if name not in joined]
    if not any(c.saving > 0 for unit in units for c in unit):
        return greedy()
    need = latency - budget
    chosen = None
    for _ in range(8):  # savings that do not add up: ask for the shortfall again
        picks = _cheapest(units, need)
        if picks is None:
            break
        caps = dict(kv for c in picks for kv in c.caps)
        beats = dict(kv for c in picks for kv in c.out_beats)
        trial, trial_latency = planned(caps, beats)
        if trial_latency <= budget:
            chosen = (caps, beats, trial)
            break
        need += trial_latency - budget
    if chosen is None:
        return greedy()
    caps, beats, network = chosen
    # raise each cap again as far as the budget allows (fewer multipliers)
    for name in sorted(caps):
        lo, hi = caps[name], stages[name].steps - 1 if name in stages else caps[name]
        if name in beats:
            hi = min(hi, stages[name].steps // beats[name])
        while lo < hi:
            mid = (lo + hi + 1) // 2
            trial, trial_latency = planned({**caps, name: mid}, beats)
            if trial_latency <= budget and _lut_cost(trial) <= _lut_cost(network):
                lo, network = mid, trial
            else:
                hi = mid - 1
        caps[name] = lo
    return network


def _greedy_budget(graph, options, network, latency, planned) -> NetworkPlan:
    """From the default plan, each round halves the steps per beat of the layer that saves
    the most cycles per LUT added (where no single layer saves a cycle, e.g. parallel
    branches, the one adding the fewest), until the budget is met; then each capped
    layer's cap is raised again as far as the budget allows (a binary search below the
    steps it had before its last halving)."""
    budget = options.latency_budget
    caps: dict[str, int] = {}
    before: dict[str, int] = {}  # each capped layer's steps before its last halving
    while latency > budget:
        trials = []
        for name, steps in sorted(_serial_steps(network).items()):
            trial, trial_latency = planned({**caps, name: steps // 2})
            trials.append(
                (latency - trial_latency, _lut_cost(trial) - _lut_cost(network), name, steps, trial)
            )
        assert trials, "every layer at reuse 1 meets the budget"
        saving = [t for t in trials if t[0] > 0]
        if saving:  # the most cycles per LUT added (one adding none first)
            pick = max(saving, key=lambda t: (t[1] <= 0, t[0] / max(t[1], 1), -t[1]))
        else:
            pick = min(trials, key=lambda t: t[1])
        saved, _, name, steps, network = pick
        before[name], caps[name] = steps, steps // 2
        latency -= saved
    for name in sorted(caps):
        lo, hi = caps[name], before[name] - 1  # the cap `lo` meets the budget
        while lo < hi:
            mid = (lo + hi + 1) // 2
            trial, trial_latency = planned({**caps, name: mid})
            if trial_latency <= budget:
                lo, network = mid, trial
            else:
                hi = mid - 1
        caps[name] = lo
    return network


def _size_fifos(network: NetworkPlan) -> tuple[FifoPlan, ...]:
    from rtlgen.timing import model_graph

    graph = network.graph
    skid = {layer.node.name: network.has_skid_buffer(layer) for layer in network.layers}
    joins = [node for node in graph.nodes if len(node.inputs) > 1]
    # first with a FIFO on every input of every join (no fork waits): which input of each
    # join arrives last; that one needs none
    every = {(node.name, k) for node in joins for k in range(len(node.inputs))}
    bare = model_graph(network, skid, every)
    samples = _sizing_samples(network, bare)
    if samples > 3:
        bare = model_graph(network, skid, every, samples)
    edges: set[tuple[str, int]] = set()
    # inputs of a join that may end with no FIFO (tried without first)
    optional: set[tuple[str, int]] = set()
    for node in joins:
        ks = range(len(node.inputs))
        if len(set(_input_beats(graph, node))) > 1:
            # beats per sample differ between the inputs (a broadcasting merge's operand of
            # one position, held over the sample): their arrivals do not compare; the
            # streamed inputs wait for the held one (which comes after a whole sample when a
            # global pool computes it), so every input is a candidate that may need none
            edges.update((node.name, k) for k in ks)
            optional.update((node.name, k) for k in ks)
            continue
        arrivals = [bare.edge_arrivals[(node.name, k)] for k in ks]
        latest = max(ks, key=lambda k: (sum(arrivals[k]), -k))
        edges.update((node.name, k) for k in ks if k != latest)
    timing = model_graph(network, skid, edges, samples)
    order = sorted(edges, key=lambda e: (graph.index_of(e[0]), e[1]))
    # an input of a join that shares no network input with the join's other inputs (no
    # fork feeds both) cannot deadlock: it needs a FIFO only where the outputs need one
    ancestry = _input_ancestry(graph)
    independent = set(optional)
    for consumer, k in order:
        sources = [ancestry[name] for name in graph.node(consumer).inputs]
        if not any(sources[k] & other for j, other in enumerate(sources) if j != k):
            independent.add((consumer, k))
    depths = _least_depths(
        network,
        skid,
        {edge: timing.fifo_depths[edge] for edge in order},
        independent,
        samples,
        optional,
    )
    types = {n.name: n.out_type for n in graph.nodes}
    fifos = []
    for consumer, k in order:
        if not depths[(consumer, k)]:
            continue
        producer = graph.node(consumer).inputs[k]
        t = types[producer]
        assert t is not None
        width = StreamFormat.of(graph.node(producer).out_shape, t).layout.size
        fifos.append(FifoPlan(consumer, k, producer, depths[(consumer, k)], width))
    return tuple(fifos)


def _input_beats(graph: ir.ModelGraph, node: ir.Node) -> list[int]:
    """Beats per sample on each input of ``node``."""
    types = graph.in_types(graph.index_of(node.name))
    return [StreamFormat.of(s, t).beats for s, t in zip(node.in_shapes, types, strict=True)]  # type: ignore[arg-type]


def _sizing_samples(network: NetworkPlan, bare) -> int:
    """Samples the FIFO sizing models: as many as stay in flight while the first sample
    passes, plus 3, so a branch waiting for a slower one is sized for the steady state (at
    least 3). A one-beat sample behind a branch 5 cycles longer than the other needs 5
    entries, which 3 samples never fill (an MLP's residual or constant branch, found by a
    trial: II 1 predicted, a 4-cycle gap after 9 samples); a one-beat input joined after a
    deep branch of another input needs as many entries as samples wait; the image branch
    of a squeeze-and-excitation block, the next sample's beats while the squeeze of the
    one before is computed."""
    from rtlgen.timing import samples_for_steady_state

    first = min(bare.sample_starts)
    done = max(bare.out[name][len(bare.out[name]) // 3 - 1] for name in network.graph.outputs)
    return samples_for_steady_state(done - first, network.sample_cycles)


def _input_ancestry(graph: ir.ModelGraph) -> dict[str, frozenset[str]]:
    """The network inputs each node's result depends on."""
    ancestry: dict[str, frozenset[str]] = {}
    for node in graph.nodes:
        if isinstance(node, ir.Input):
            ancestry[node.name] = frozenset((node.name,))
        else:
            ancestry[node.name] = frozenset().union(*(ancestry[i] for i in node.inputs))
    return ancestry


def _least_depths(
    network: NetworkPlan,
    skid: dict[str, bool],
    depths: dict[tuple[str, int], int],
    independent: set[tuple[str, int]] = frozenset(),  # type: ignore[assignment]
    samples: int = 3,
    together: set[tuple[str, int]] = frozenset(),  # type: ignore[assignment]
) -> dict[tuple[str, int], int]:
    """Each FIFO shrunk, one after another, to the least depth at which the network's
    full-rate timing (every sample's start and last output handshake of the modelled
    samples) is what it is with the depths where no write ever waits: registers on the
    waiting branch hold a few beats too. Binary search on the handshake model
    (`rtlgen.timing.beat_times`); the depths stay as they are when a component has no
    handshake model. The ``independent`` join inputs (from other network inputs than the
    join's other inputs: no fork feeds both, see `_size_fifos`) go first and may shrink to
    0, no FIFO, where no sample starts and no output comes later (no FIFO is needed where
    the other branch is never behind, e.g. features waiting for an image's beats). The
    inputs of a join in ``together`` (a broadcasting merge's: one FIFO alone can be later
    than none at all) are first tried without any FIFO at once."""
    from rtlgen.timing import beat_times

    def times(trial: dict[tuple[str, int], int]):
        return beat_times(network, skid, {edge: d for edge, d in trial.items() if d}, samples)

    wanted = times(depths)
    if not wanted:
        return depths
    depths = dict(depths)

    def shrink(edge: tuple[str, int], least: int, same) -> None:
        lo, hi = least, depths[edge]
        while lo < hi:
            mid = (lo + hi) // 2
            if same(times({**depths, edge: mid})):
                hi = mid
            else:
                lo = mid + 1
        depths[edge] = lo

    def no_later(found) -> bool:  # every sample start and output at least as early
        return bool(found) and all(
            t <= w
            for got, want in zip(found, wanted, strict=True)
            for t, w in zip(got, want, strict=True)
        )

    joins = {consumer for consumer, _ in together}
    for join in sorted(joins):
        group = {e: 0 for e in depths if e in together and e[0] == join}
        if no_later(times({**depths, **group})):
            depths.update(group)
    for edge in [e for e in depths if e in independent and depths[e]]:
        # no FIFO first: a one-entry FIFO (a register taking every other cycle) can be
        # slower than none, so the depths are not monotone there
        if no_later(times({**depths, edge: 0})):
            depths[edge] = 0
        else:
            shrink(edge, 1, no_later)
    if _latency_only:  # the remaining shrink keeps the timing exactly: a latency needs none
        return depths
    if independent:
        wanted = times(depths)
    for edge in [e for e in depths if e not in independent]:
        shrink(edge, 1, lambda found: found == wanted)
    return depths


def sample_cycles_of(graph: ir.ModelGraph, pixels_per_beat: int = 1) -> int:
    """Cycles per sample the network can reach: the input beats, or more where an op emits
    beats without input (a window generator walking padding positions, an upsampler)."""
    from rtlgen.ops.registry import op_for

    cycles = max(StreamFormat.of(n.out_shape, n.out_type).beats for n in graph.input_nodes)  # type: ignore[arg-type]
    cycles //= pixels_per_beat  # `rtlgen.ppb`: P pixels per input beat
    for index, node in enumerate(graph.nodes):
        if isinstance(node, ir.Input):
            continue
        cycles = max(cycles, op_for(node).sample_cycles(node, graph.in_type(index)))
    return cycles


def _argmax_real(graph: ir.ModelGraph, index: int) -> bool:
    """Whether output ``index``'s arg-max of fixed-point values is that of its real values
    (no `ir.OutputScale`, or one that keeps the order)."""
    scale = graph.output_scale(index)
    return scale is None or scale.order_preserving
