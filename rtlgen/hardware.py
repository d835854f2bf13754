"""The dataflow top: a lowered `ModelGraph` -> one Amaranth component with AXI4-Stream ports.

Each IR node becomes a short chain of `rtlgen.layers` components; layers are chained with
valid/ready streams and a `SkidBuffer` after each layer, so no ready signal ripples through
more than one layer. Ports and packing follow docs/DESIGN.md.
"""

from __future__ import annotations

import keyword
import re

from amaranth import Module, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from rtlgen import ir
from rtlgen.layers.argmax import ArgMax
from rtlgen.layers.common import shape_of
from rtlgen.layers.merge import Fork
from rtlgen.layers.stream_util import SkidBuffer, StreamFifo
from rtlgen.manifest import RESERVED_TOP_NAMES, VERILOG_KEYWORDS, check_top_name

# The planning types live in `rtlgen.plan`; they are re-exported here for callers of 0.1.
from rtlgen.plan import (  # noqa: F401
    DEEP_ROUNDING_BITS,
    DEFAULT_ADDERS_PER_STAGE,
    FUSED_REQUANTIZE_LEVELS,
    HardwareOptions,
    LayerPlan,
    Multiplier,
    NetworkPlan,
    Parallelism,
    Pipeline,
    StreamFormat,
    plan_layer,
    plan_network,
    sample_cycles_of,
)
from rtlgen.quant.errors import RtlgenError, UnsupportedError

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
        self.plan = plan_network(graph, options)
        self.graph = graph
        self.options = options
        self.input_format = self.plan.input_format
        self.output_format = self.plan.output_format
        self.classes = self.plan.classes
        self.tuser_width = self.plan.tuser_width
        self.plans: list[LayerPlan] = list(self.plan.layers)
        self.sample_cycles = self.plan.sample_cycles
        out_type = graph.output.out_type
        assert out_type is not None
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
        return self.plan.has_skid_buffer(plan)

    def elaborate(self, platform):
        m = Module()
        fmt_in, fmt_out = self.input_format, self.output_format
        graph = self.graph

        # AXI4-Stream slave -> first stream (tlast is accepted and ignored: beats are counted)
        first = stream.Signature(fmt_in.layout).create()
        m.d.comb += [
            first.payload.eq(self.s_axis_tdata),
            first.valid.eq(self.s_axis_tvalid),
            self.s_axis_tready.eq(first.ready),
        ]
        # results[name]: the stream leaving a node; a result several nodes take goes
        # through a Fork, one output per taking input, handed out in graph order
        results = {graph.input.name: first}
        fork_outputs: dict[str, list] = {}
        fifos = {(f.consumer, f.input_index): f for f in self.plan.fifos}

        def take(producer: str, consumer: str, k: int, index: int):
            users = graph.consumers(producer)
            if len(users) == 1:
                source = results[producer]
            else:
                if producer not in fork_outputs:
                    fork = Fork(results[producer].payload.shape(), len(users))
                    m.submodules[f"fork_{sanitize_identifier(producer, 'node')}"] = fork
                    wiring.connect(m, results[producer], fork.i)
                    fork_outputs[producer] = [getattr(fork, f"o{j}") for j in range(len(users))]
                source = fork_outputs[producer].pop(0)
            fifo_plan = fifos.get((consumer, k))
            if fifo_plan is None:
                return source
            fifo = StreamFifo(source.payload.shape(), fifo_plan.depth)
            m.submodules[f"l{index}_{sanitize_identifier(consumer, 'layer')}_fifo{k}"] = fifo
            wiring.connect(m, source, fifo.i)
            return fifo.o

        for index, plan in enumerate(self.plans, start=1):
            node = plan.node
            name = sanitize_identifier(node.name, "layer")
            inputs = [take(p, node.name, k, index) for k, p in enumerate(node.inputs)]
            if not plan.stages:
                results[node.name] = inputs[0]
                continue
            current = inputs[0]
            for k, stage in enumerate(plan.stages):
                m.submodules[f"l{index - 1}_{name}_{k}"] = stage
                if k == 0 and len(inputs) > 1:
                    for j, source in enumerate(inputs):
                        wiring.connect(m, source, getattr(stage, f"i{j}"))
                else:
                    wiring.connect(m, current, stage.i)
                current = stage.o
            if self.has_skid_buffer(plan):
                skid = SkidBuffer(current.payload.shape())
                m.submodules[f"l{index - 1}_{name}_skid"] = skid
                wiring.connect(m, current, skid.i)
                current = skid.o
            results[node.name] = current
        current = results[graph.outputs[0]]

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
        raise UnsupportedError(
            f"input shape {graph.input_shape}: supported are (N,), (L, C), (H, W, C)"
        )
    for node in graph.nodes[1:]:
        if isinstance(node, ir.Dense) and len(node.in_shape) != 1:
            raise UnsupportedError(
                f"layer '{node.name}': Dense on a {len(node.in_shape)}D input; add a Flatten first"
            )
    total_bits = StreamFormat.of(graph.input_shape, graph.input.out_type).layout.size
    if total_bits > 65536:
        raise RtlgenError(f"input beat of {total_bits} bits is too wide for one AXI4-Stream beat")
