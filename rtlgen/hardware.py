"""The dataflow top: a lowered `ModelGraph` -> one Amaranth component with AXI4-Stream ports.

Each IR node becomes a short chain of `rtlgen.layers` components; layers are chained with
valid/ready streams and a `SkidBuffer` after each layer, so no ready signal ripples through
more than one layer. Ports and packing follow docs/DESIGN.md.
"""

from __future__ import annotations

import functools
import keyword
import re

from amaranth import Module, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from rtlgen import ir
from rtlgen.layers.argmax import ArgMax, group_for
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
    InputPlan,
    LayerPlan,
    Multiplier,
    NetworkPlan,
    OutputPlan,
    Parallelism,
    Pipeline,
    StreamFormat,
    plan_network,
    sample_cycles_of,
)
from rtlgen.quant.errors import RtlgenError, UnsupportedError
from rtlgen.sim_tb.tb_manifest import MAX_INPUTS, MAX_OUTPUTS, is_port_name

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
    name = sanitize_identifier(model_name, "rtlgen_net", reserved=RESERVED_TOP_NAMES)
    return f"{name}_" if is_port_name(name) else name  # m1_axis_tdata ...


def _axis_signature(
    prefix: str, tdata_width: int, tuser_width: int, master: bool
) -> dict[str, object]:
    d = Out if master else In
    u = In if master else Out
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
    vector per beat); each further input `k` of the graph on its own slave `s{k}_axis_*`
    (`rtlgen.plan.input_prefix`), each at its own pace (tlast accepted and ignored: beats
    are counted); each output `k` of the graph on its own master, `m_axis_*` for the
    first and `m{k}_axis_*` for the others (`rtlgen.plan.output_prefix`), with its own
    `tlast` on the last beat of a sample and, for a vector output, `tuser` = arg-max class
    (with the beat carrying the vector). A node that is an output and also feeds other
    nodes forks: its master is one more consumer. Backpressure on any master stalls cleanly
    (the others then run dry once the shared pipeline stops); the masters need no common
    tready.
    """

    def __init__(self, graph: ir.ModelGraph, options: HardwareOptions = HardwareOptions()):
        if not graph.lowered:
            raise ValueError("NetworkTop needs a lowered graph")
        self.plan = plan_network(graph, options)
        self.graph = graph
        self.options = options
        self.input_format = self.plan.input_format
        self.inputs: tuple[InputPlan, ...] = self.plan.inputs
        self.outputs: tuple[OutputPlan, ...] = self.plan.outputs
        # the first output's, as a one-output network has always had
        self.output_format = self.plan.output_format
        self.classes = self.plan.classes
        self.tuser_width = self.plan.tuser_width
        self.plans: list[LayerPlan] = list(self.plan.layers)
        self.sample_cycles = self.plan.sample_cycles
        #: the ArgMax of each output (None: an image or sequence output, no tuser)
        self.argmaxes: tuple[ArgMax | None, ...] = tuple(
            ArgMax(out.classes, shape_of(out.format.type), group_for(options.adders_per_stage))
            if out.classes
            else None
            for out in self.outputs
        )
        self.argmax = self.argmaxes[0]
        ports: dict[str, object] = {}
        for spec in self.inputs:
            fmt = spec.format
            ports.update(
                _axis_signature(spec.prefix, fmt.elements * fmt.type.width, 0, master=False)
            )
        for out in self.outputs:
            fmt = out.format
            ports.update(
                _axis_signature(
                    out.prefix, fmt.elements * fmt.type.width, out.tuser_width, master=True
                )
            )
        super().__init__(ports)

    def input_port(self, index: int, signal: str):
        """Input ``index``'s port ``signal`` (``tdata``, ``tvalid``, ``tready``, ``tlast``)."""
        return getattr(self, f"{self.inputs[index].prefix}_{signal}")

    def port(self, index: int, signal: str):
        """Output ``index``'s port ``signal`` (``tdata``, ``tvalid``, ``tready``, ``tlast``,
        ``tuser``)."""
        return getattr(self, f"{self.outputs[index].prefix}_{signal}")

    def has_skid_buffer(self, plan: LayerPlan) -> bool:
        """Whether a `SkidBuffer` (latency 1) follows ``plan``'s stages in this top."""
        return self.plan.has_skid_buffer(plan)

    def elaborate(self, platform):
        m = Module()
        graph = self.graph

        # results[name]: the stream leaving a node; a result several nodes take goes
        # through a Fork, one output per taking input, handed out in graph order, and one
        # more (the last) when the result is also an output of the network
        results = {}
        # each AXI4-Stream slave -> its input's stream (tlast is accepted and ignored: beats
        # are counted)
        for index, spec in enumerate(self.inputs):
            first = stream.Signature(spec.format.layout).create()
            port = functools.partial(self.input_port, index)
            m.d.comb += [
                first.payload.eq(port("tdata")),
                first.valid.eq(port("tvalid")),
                port("tready").eq(first.ready),
            ]
            results[spec.node] = first
        fork_outputs: dict[str, list] = {}
        fifos = {(f.consumer, f.input_index): f for f in self.plan.fifos}

        def branch(producer: str):
            takers = len(graph.consumers(producer)) + (producer in graph.outputs)
            if takers == 1:
                return results[producer]
            if producer not in fork_outputs:
                fork = Fork(results[producer].payload.shape(), takers)
                m.submodules[f"fork_{sanitize_identifier(producer, 'node')}"] = fork
                wiring.connect(m, results[producer], fork.i)
                fork_outputs[producer] = [getattr(fork, f"o{j}") for j in range(takers)]
            return fork_outputs[producer].pop(0)

        def take(producer: str, consumer: str, k: int, index: int):
            source = branch(producer)
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
        for index, out in enumerate(self.outputs):
            self._output_stage(m, index, branch(out.node))
        return m

    def _output_stage(self, m: Module, index: int, current) -> None:
        """Drive output ``index``'s master from ``current``: through an `ArgMax` (a vector:
        tuser = class, one beat per sample so tlast is always high), else with tlast from
        a beat counter."""
        out = self.outputs[index]
        port = functools.partial(self.port, index)
        argmax = self.argmaxes[index]
        if argmax is not None:
            m.submodules["argmax" if index == 0 else f"argmax{index}"] = argmax
            wiring.connect(m, current, argmax.i)
            m.d.comb += [
                port("tdata").eq(argmax.o.payload.vector),
                port("tuser").eq(argmax.o.payload.index),
                port("tvalid").eq(argmax.o.valid),
                port("tlast").eq(1),
                argmax.o.ready.eq(port("tready")),
            ]
            return
        beats = out.format.beats
        beat = Signal(range(max(beats, 2)), name=f"{out.prefix}_beat")
        last = beat == beats - 1
        m.d.comb += [
            port("tdata").eq(current.payload),
            port("tvalid").eq(current.valid),
            port("tlast").eq(last),
            current.ready.eq(port("tready")),
        ]
        with m.If(current.valid & current.ready):
            m.d.sync += beat.eq(0 if beats == 1 else (beat + 1))
            with m.If(last):
                m.d.sync += beat.eq(0)


def check_supported(graph: ir.ModelGraph) -> None:
    """Raise a clear error for graphs the hardware cannot build (before elaboration)."""
    several = len(graph.input_nodes) > 1
    if len(graph.input_nodes) > MAX_INPUTS:
        raise UnsupportedError(
            f"the model has {len(graph.input_nodes)} inputs; rtlgen builds at most {MAX_INPUTS}"
        )
    for node in graph.input_nodes:
        what = f"input '{node.name}'" if several else "input"
        if len(node.out_shape) not in (1, 2, 3):
            raise UnsupportedError(
                f"{what} shape {node.out_shape}: supported are (N,), (L, C), (H, W, C)"
            )
        total_bits = StreamFormat.of(node.out_shape, node.out_type).layout.size  # type: ignore[arg-type]
        if total_bits > 65536:
            raise RtlgenError(f"{what} beat of {total_bits} bits is too wide for one AXI4-Stream beat")
    for node in graph.nodes[1:]:
        if isinstance(node, ir.Dense) and len(node.in_shape) != 1:
            raise UnsupportedError(
                f"layer '{node.name}': Dense on a {len(node.in_shape)}D input; add a Flatten first"
            )
    if len(graph.outputs) > MAX_OUTPUTS:
        raise UnsupportedError(
            f"the model has {len(graph.outputs)} outputs; rtlgen builds at most {MAX_OUTPUTS}"
        )
    for node in graph.output_nodes:
        if isinstance(node, ir.Input):
            raise UnsupportedError(f"output '{node.name}' is a model input itself")
        assert node.out_type is not None
        bits = StreamFormat.of(node.out_shape, node.out_type).layout.size
        if bits > 65536:
            raise RtlgenError(
                f"output '{node.name}': a beat of {bits} bits is too wide for one AXI4-Stream beat"
            )
