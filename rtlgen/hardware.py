"""The dataflow top: a lowered `ModelGraph` -> one Amaranth component with AXI4-Stream ports.

Each IR node becomes a short chain of `rtlgen.layers` components; layers are chained with
valid/ready streams and a `SkidBuffer` after each layer, so no ready signal ripples through
more than one layer. Ports and packing follow docs/DESIGN.md.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, field
from enum import Enum

import numpy as np
from amaranth import Module, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from rtlgen import ir
from rtlgen.layers.argmax import ArgMax
from rtlgen.layers.common import shape_of
from rtlgen.layers.constant_mac import ConstantMatVec
from rtlgen.layers.flatten import Deserialize
from rtlgen.layers.pool import AvgPool, MaxPool
from rtlgen.layers.requantize import Requantize
from rtlgen.layers.serial_mac import SerialMatVec, shared_multipliers
from rtlgen.layers.stream_util import SkidBuffer
from rtlgen.layers.window import WindowGenerator
from rtlgen.manifest import RESERVED_TOP_NAMES, VERILOG_KEYWORDS, check_top_name
from rtlgen.quant.arith import aligned_weights, clamp_bounds
from rtlgen.quant.errors import RtlgenError, UnsupportedError
from rtlgen.quant.fixed import FixedType


class Multiplier(Enum):
    AUTO = "auto"
    DSP = "dsp"
    LUT = "lut"


class Parallelism(Enum):
    AUTO = "auto"  # time-multiplex layers that see a new input only every few cycles
    FULL = "full"  # every layer fully parallel (reuse factor 1)


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
    adder levels across the whole chain (fewest cycles; use 5-8 adders per stage)."""

    multiplier: Multiplier = Multiplier.AUTO
    parallelism: Parallelism = Parallelism.AUTO
    skid_buffers: bool = True
    min_reuse: int = 4
    adders_per_stage: int = None  # type: ignore[assignment]  # resolved in __post_init__
    pipeline: Pipeline = Pipeline.BALANCED

    def __post_init__(self):
        if self.adders_per_stage is None:
            object.__setattr__(self, "adders_per_stage", DEFAULT_ADDERS_PER_STAGE[self.pipeline])
        if not 1 <= self.adders_per_stage <= 8:
            raise RtlgenError(
                f"adders per stage {self.adders_per_stage} is not supported (use 1 to 8)"
            )


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


# Compared in lower case: a name that is a keyword in any capitalisation gets the suffix too
# (cheap, and some tools are case-insensitive).
_LOWER_KEYWORDS = frozenset(word.lower() for word in VERILOG_KEYWORDS)


def sanitize_identifier(
    name: str, fallback: str = "net", reserved: frozenset[str] = frozenset()
) -> str:
    """A safe Verilog identifier / file name stem from a name found in a model file.

    Other characters become ``_``; at most 48 characters; a leading digit gets ``fallback``
    in front; a Verilog/SystemVerilog (or Python) keyword, or a name in ``reserved`` (e.g. the
    top's port names), gets a trailing ``_``."""
    ident = re.sub(r"[^A-Za-z0-9_]", "_", name).strip("_")[:48]
    if not ident:
        ident = fallback
    if ident[0].isdigit():
        ident = f"{fallback}_{ident}"
    if ident.lower() in _LOWER_KEYWORDS or keyword.iskeyword(ident) or ident in reserved:
        ident = f"{ident}_"
    return ident


def top_module_name(requested: str | None, model_name: str) -> str:
    """The top module's name: the user's ``requested`` name exactly (an invalid one is a
    one-line error, not silently renamed), else the model's name made safe; never a keyword
    nor the name of one of the top's ports (a module ``clk`` with a port ``clk`` does not
    compile)."""
    if requested is not None:
        return check_top_name(requested)
    return sanitize_identifier(model_name, "rtlgen_net", reserved=RESERVED_TOP_NAMES)


def _weights_matrix(node: ir.Conv | ir.Dense | ir.ScaleShift, in_type: FixedType):
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


def _requantize(
    node: ir._Arithmetic, elements: int, in_ranges=None, latency: int | None = None
) -> Requantize:
    """Clamp + round + saturate into the node's output type. ``in_ranges``: the exact range
    of each accumulator (from the MAC), so comparisons that can never fire cost nothing.
    ``latency``: None chooses 1, or 2 where the rounding drops many bits."""
    assert node.acc_type is not None and node.out_type is not None
    lo, hi = clamp_bounds(node.activation.lo, node.activation.hi, node.acc_type.frac, node.name)
    if latency is None:
        latency = 2 if node.acc_type.frac - node.out_type.frac > DEEP_ROUNDING_BITS else 1
    return Requantize(
        elements, node.acc_type, node.out_type, lo, hi, node.rounding, node.overflow,
        in_ranges=in_ranges, latency=latency,
    )


def plan_layer(
    node: ir.Node,
    in_type: FixedType,
    options: HardwareOptions,
    spacing: int,
    sample_cycles: int,
    input_levels: int = 0,
    last: bool = False,
) -> LayerPlan:
    """Elaborate one lowered node into its component chain.

    ``spacing``: guaranteed minimum number of cycles between two beats reaching this layer;
    ``sample_cycles``: cycles per sample of the whole network (its initiation interval).
    The plan's ``out_spacing`` is the same guarantee for the beats it emits.
    ``input_levels``: adder levels spent on the input in its cycle upstream (the previous
    plan's ``out_levels``); ``last``: the network's last layer (its output is registered).
    """
    fmt_in = StreamFormat.of(node.in_shape, in_type)
    if isinstance(node, ir.Conv | ir.Dense | ir.ScaleShift):
        w, bias = _weights_matrix(node, in_type)
        stages: list[wiring.Component] = []
        window_spacing = spacing
        windows = fmt_in.beats
        if isinstance(node, ir.Conv):
            h, wd, c = ir.spatial(node.in_shape)
            trivial = node.kernel == (1, 1) and node.stride == (1, 1) and not any(node.padding)
            if not trivial:
                window = WindowGenerator(h, wd, c, node.kernel, node.stride, node.padding, shape_of(in_type))
                stages.append(window)
                if options.skid_buffers:
                    # cut the handshake chain from the MAC array into the line memory's
                    # write enable (the deepest logic of a large design otherwise)
                    stages.append(SkidBuffer(window.o.payload.shape()))
                # padding positions are emitted one per cycle without input
                window_spacing = 1 if any(node.padding) else spacing * node.stride[1]
            windows = int(np.prod(node.out_shape[:-1]))
        reuse = 1
        if options.parallelism is Parallelism.AUTO and w.shape[0] > 1:
            reuse = min(window_spacing, w.shape[0], max(1, sample_cycles // max(windows, 1)))
            if reuse < options.min_reuse:
                reuse = 1
        in_range = (in_type.min_int, in_type.max_int)
        # Sharing must pay: a general multiplier costs at least two constant ones, so a layer
        # whose schedule keeps most products apart (a BN scale-and-shift's diagonal needs one
        # multiplier per element at any reuse) stays fully parallel, saving `steps` cycles.
        if reuse > 1 and 2 * shared_multipliers(w, reuse) > np.count_nonzero(w):
            reuse = 1
        fused = (
            options.pipeline is Pipeline.LATENCY and reuse == 1 and fmt_in.beats == 1 and not stages
        )
        out_levels = 0
        # hardware multipliers: the shared general multipliers of a serial array, one per
        # non-zero weight in a parallel one (shared by all window positions)
        if reuse > 1:
            mac = SerialMatVec(w, in_type, node.acc_type, bias, reuse, options.multiplier.value)
            multipliers = mac.multipliers
        else:
            mac = ConstantMatVec(
                w, in_type, node.acc_type, bias, options.multiplier.value, in_range=in_range,
                levels_per_stage=options.adders_per_stage,
                input_levels=min(input_levels, options.adders_per_stage - 1) if fused else 0,
                output_levels=None if not fused or last else FUSED_REQUANTIZE_LEVELS,
            )
            multipliers = int(np.count_nonzero(w))
            if fused and not last:
                out_levels = FUSED_REQUANTIZE_LEVELS + mac.output_depth
        stages.append(mac)
        stages.append(
            _requantize(node, w.shape[1], getattr(mac, "out_ranges", None), 0 if fused else None)
        )
        return LayerPlan(
            node,
            tuple(stages),
            multipliers=multipliers,
            multipliers_dense=int(np.count_nonzero(w) if isinstance(node, ir.ScaleShift) else w.size),
            adders=getattr(mac, "adders", 0),
            reuse=reuse,
            cycles_per_sample=max(getattr(st, "cycles_per_sample", 1) for st in stages) * (windows if reuse > 1 else 1),
            out_spacing=window_spacing,
            notes=(f"time-multiplexed: {getattr(mac, 'steps', 1)} cycles per vector",) if reuse > 1 else (),
            out_levels=out_levels,
            skid_buffer=not fused,
        )
    if isinstance(node, ir.Activation):
        return LayerPlan(node, (_requantize(node, node.out_shape[-1]),), out_spacing=spacing)
    if isinstance(node, ir.Pool):
        h, wd, c = ir.spatial(node.in_shape)
        assert node.out_type is not None
        cls = MaxPool if node.kind is ir.PoolKind.MAX else AvgPool
        pool = cls(h, wd, c, node.pool, node.stride, node.padding, in_type, node.out_type, node.rounding)
        return LayerPlan(
            node,
            (pool,),
            cycles_per_sample=getattr(pool, "cycles_per_sample", 1),
            out_spacing=1 if any(node.padding) else spacing * node.stride[1],
        )
    if isinstance(node, ir.Flatten):
        if fmt_in.beats == 1:
            return LayerPlan(node, (), out_spacing=spacing)
        # one vector per sample: samples are at least `sample_cycles` apart
        return LayerPlan(
            node,
            (Deserialize(fmt_in.beats, fmt_in.elements, shape_of(in_type)),),
            out_spacing=max(spacing * fmt_in.beats, sample_cycles),
        )
    raise UnsupportedError(f"layer '{node.name}': op '{node.op}' has no hardware implementation")


def sample_cycles_of(graph: ir.ModelGraph) -> int:
    """Cycles per sample the network can reach: the input beats, or more where a window
    generator walks padding positions without input."""
    cycles = StreamFormat.of(graph.input_shape, graph.input.out_type).beats
    for node in graph.nodes[1:]:
        if isinstance(node, ir.Conv | ir.Pool) and any(node.padding):
            h, w, _ = ir.spatial(node.in_shape)
            kernel = node.kernel if isinstance(node, ir.Conv) else node.pool
            top, bottom, left, right = node.padding
            # the generator walks rows/cols up to the last window row/col
            cycles = max(cycles, (h + bottom) * (w + right))
            del kernel, top, left
    return cycles


def _axis_signature(tdata_width: int, tuser_width: int, master: bool) -> dict[str, object]:
    d = Out if master else In
    u = In if master else Out
    prefix = "m_axis" if master else "s_axis"
    members = {
        f"{prefix}_tdata": d(unsigned(tdata_width)),
        f"{prefix}_tvalid": d(1),
        f"{prefix}_tready": u(1),
        f"{prefix}_tlast": d(1),
    }
    if tuser_width:
        members[f"{prefix}_tuser"] = d(unsigned(tuser_width))
    return members


class NetworkTop(wiring.Component):
    """The whole network as one streaming component with AXI4-Stream ports.

    Contract (docs/DESIGN.md): input beats on `s_axis_*` (one pixel / position / whole
    vector per beat), output beats on `m_axis_*` with `m_axis_tlast` on the last beat of a
    sample and `m_axis_tuser` = arg-max class (with the beat carrying the logits, when the
    output is a vector). Backpressure anywhere stalls cleanly.
    """

    def __init__(self, graph: ir.ModelGraph, options: HardwareOptions = HardwareOptions()):
        if not graph.lowered:
            raise ValueError("NetworkTop needs a lowered graph")
        self.graph = graph
        self.options = options
        self.input_format = StreamFormat.of(graph.input_shape, graph.input.out_type)
        out_type = graph.output.out_type
        assert out_type is not None
        self.output_format = StreamFormat.of(graph.output_shape, out_type)
        self.classes = graph.output_shape[0] if len(graph.output_shape) == 1 else 0
        self.tuser_width = max(1, (self.classes - 1).bit_length()) if self.classes else 0
        self.plans: list[LayerPlan] = []
        self.sample_cycles = sample_cycles_of(graph)
        spacing = 1 if self.input_format.beats > 1 else self.sample_cycles
        levels = 0
        for index, node in enumerate(graph.nodes[1:], start=1):
            # the last layer with hardware registers its output: only flattens may follow
            last = all(isinstance(after, ir.Flatten) for after in graph.nodes[index + 1 :])
            plan = plan_layer(
                node, graph.in_type(index), options, spacing, self.sample_cycles, levels, last
            )
            self.plans.append(plan)
            spacing = plan.out_spacing
            if plan.stages:  # a stage-less plan (a flatten of a vector) passes the depth on
                levels = plan.out_levels
        self.argmax = ArgMax(self.classes, shape_of(out_type)) if self.classes else None
        in_fmt, out_fmt = self.input_format, self.output_format
        super().__init__(
            {
                **_axis_signature(in_fmt.elements * in_fmt.type.width, 0, master=False),
                **_axis_signature(
                    out_fmt.elements * out_fmt.type.width, self.tuser_width, master=True
                ),
            }
        )

    def has_skid_buffer(self, plan: LayerPlan) -> bool:
        """Whether a `SkidBuffer` (latency 1) follows ``plan``'s stages in this top."""
        return self.options.skid_buffers and bool(plan.stages) and plan.skid_buffer

    def elaborate(self, platform):
        m = Module()
        fmt_in, fmt_out = self.input_format, self.output_format

        # AXI4-Stream slave -> first stream (tlast is accepted and ignored: beats are counted)
        first = stream.Signature(fmt_in.layout).create()
        m.d.comb += [
            first.payload.eq(self.s_axis_tdata),
            first.valid.eq(self.s_axis_tvalid),
            self.s_axis_tready.eq(first.ready),
        ]
        current = first
        for index, plan in enumerate(self.plans):
            name = sanitize_identifier(plan.node.name, "layer")
            for k, stage in enumerate(plan.stages):
                m.submodules[f"l{index}_{name}_{k}"] = stage
                wiring.connect(m, current, stage.i)
                current = stage.o
            if self.has_skid_buffer(plan):
                skid = SkidBuffer(current.payload.shape())
                m.submodules[f"l{index}_{name}_skid"] = skid
                wiring.connect(m, current, skid.i)
                current = skid.o

        # Output stage: arg-max (vector outputs) and tlast by beat counting.
        if self.argmax is not None:
            argmax = self.argmax
            m.submodules.argmax = argmax
            wiring.connect(m, current, argmax.i)
            m.d.comb += [
                self.m_axis_tdata.eq(argmax.o.payload.vector),
                self.m_axis_tuser.eq(argmax.o.payload.index),
                self.m_axis_tvalid.eq(argmax.o.valid),
                self.m_axis_tlast.eq(1),
                argmax.o.ready.eq(self.m_axis_tready),
            ]
        else:
            beat = Signal(range(max(fmt_out.beats, 2)))
            last = beat == fmt_out.beats - 1
            m.d.comb += [
                self.m_axis_tdata.eq(current.payload),
                self.m_axis_tvalid.eq(current.valid),
                self.m_axis_tlast.eq(last),
                current.ready.eq(self.m_axis_tready),
            ]
            with m.If(current.valid & current.ready):
                m.d.sync += beat.eq(0 if fmt_out.beats == 1 else (beat + 1))
                with m.If(last):
                    m.d.sync += beat.eq(0)
        return m


def check_supported(graph: ir.ModelGraph) -> None:
    """Raise a clear error for graphs the hardware cannot build (before elaboration)."""
    if len(graph.input_shape) not in (1, 2, 3):
        raise UnsupportedError(f"input shape {graph.input_shape}: supported are (N,), (L, C), (H, W, C)")
    for node in graph.nodes[1:]:
        if isinstance(node, ir.Dense) and len(node.in_shape) != 1:
            raise UnsupportedError(
                f"layer '{node.name}': Dense on a {len(node.in_shape)}D input; add a Flatten first"
            )
    total_bits = StreamFormat.of(graph.input_shape, graph.input.out_type).layout.size
    if total_bits > 65536:
        raise RtlgenError(f"input beat of {total_bits} bits is too wide for one AXI4-Stream beat")
