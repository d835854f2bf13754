"""Write a generated design: OUTDIR/rtl/<top>.v, manifest.json, graph.npz, REPORT.md.

The design is staged inside OUTDIR and committed by `rtlgen.outdir.DesignFolder`: only files
rtlgen wrote there before are replaced (the manifest lists them), a foreign folder is refused,
and an interrupted or failed run never leaves a manifest describing half-written files.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import time
from collections.abc import Callable, Mapping
from concurrent.futures import as_completed
from dataclasses import dataclass
from pathlib import Path

from amaranth.back import verilog
from amaranth.hdl import ClockDomain, ClockSignal, Instance, ResetSignal, _ast, _ir
from amaranth.lib import wiring

from rtlgen import __version__, ir
from rtlgen.forking import can_fork, default_jobs, forked_pool
from rtlgen.hardware import (
    HardwareOptions,
    LayerPlan,
    NetworkTop,
    StreamFormat,
    check_supported,
    sanitize_identifier,
    top_module_name,
)
from rtlgen.inprocess_yosys import inprocess_yosys
from rtlgen.layers.bank_verilog import bank_verilog
from rtlgen.layers.bank_verilog import supported as bank_supported
from rtlgen.layers.beat_bank_verilog import beat_bank_verilog
from rtlgen.layers.constant_mac import ConstantMatVec
from rtlgen.layers.mac_verilog import matvec_verilog, verilog_text
from rtlgen.layers.requantize import Requantize
from rtlgen.layers.requantize_verilog import requantize_verilog
from rtlgen.layers.requantize_verilog import supported as requantize_supported
from rtlgen.layers.threshold import BeatThresholdBank, ThresholdBank
from rtlgen.lean_netlist import lean_netlist
from rtlgen.manifest import (
    GENERATOR,
    Dequantize,
    ElementType,
    FifoEntry,
    Generator,
    LayerEntry,
    Manifest,
    Options,
    StreamSpec,
    Totals,
)
from rtlgen.outdir import DesignFolder
from rtlgen.plan import parallel_probes
from rtlgen.quant.errors import UnsupportedError
from rtlgen.serialize import save_graph


@dataclass(frozen=True)
class Design:
    """What `convert` wrote."""

    outdir: Path
    top: str
    verilog: Path
    manifest: Manifest

    @property
    def manifest_path(self) -> Path:
        return self.outdir / "manifest.json"


def _element_type(t) -> ElementType:
    return ElementType(t.width, t.frac, t.signed, str(t))


def predict_timing(
    top: NetworkTop, outputs: tuple[tuple[int, int], ...] | None = None
) -> tuple[int, int, list[int]]:
    """(latency_cycles, ii_cycles, per-layer pipeline depth) from the components' contracts.

    Latency and II come from the event-time model (`rtlgen.timing`): cycles from the first
    input beat's handshake to the last output beat's, at full input rate and no
    backpressure (docs/DESIGN.md). Per-layer depth is the sum of its stages' latencies.
    ``outputs``: `output_timing(top)` when the caller has it (its first is this latency
    and II), else the model runs here.
    """
    from rtlgen.timing import model_top

    per_layer = []
    for plan in top.plans:
        depth = sum(getattr(stage, "latency", 0) for stage in plan.stages)
        per_layer.append(depth + (1 if top.has_skid_buffer(plan) else 0))
    if outputs is None:
        timing = model_top(top)
        return timing.latency, timing.ii, per_layer
    return *outputs[0], per_layer


def output_timing(top: NetworkTop, samples: int | None = None) -> tuple[tuple[int, int], ...]:
    """(latency_cycles, ii_cycles) of each output of ``top``, in port order, by the
    event-time model (`rtlgen.timing.model_outputs`: the planned FIFOs and arg-max stages,
    every master always ready, the worst of ``samples`` samples, default
    `rtlgen.timing.steady_samples`). The first output's equals `predict_timing`'s."""
    from rtlgen.timing import model_outputs

    return tuple((t.latency, t.ii) for t in model_outputs(top, samples))


def _stream_spec(shape: tuple[int, ...], fmt: StreamFormat, **port) -> StreamSpec:
    """The manifest's description of one AXI4-Stream port carrying `shape` as `fmt`."""
    return StreamSpec(
        shape=tuple(shape),
        beats_per_sample=fmt.beats,
        elements_per_beat=fmt.elements,
        element=_element_type(fmt.type),
        tdata_width=fmt.elements * fmt.type.width,
        **port,
    )


def _dequantize(scale: ir.OutputScale | None) -> Dequantize | None:
    """The manifest's form of an output's `ir.OutputScale` (floats: exact in JSON)."""
    if scale is None:
        return None
    return Dequantize(tuple(map(float, scale.scale)), tuple(map(float, scale.bias)))


def layer_entry(plan: LayerPlan, latency_cycles: int) -> LayerEntry:
    """The manifest entry of one planned layer. Products per sample come from the IR
    (`ir.multiplies`: the layer as if no weight were zero, and after pruning); multipliers
    and the reuse factor from the plan (what was built)."""
    node = plan.node
    products_nonzero, products = ir.multiplies(node)
    arithmetic = isinstance(node, ir._Arithmetic)
    return LayerEntry(
        name=node.name,
        source=node.source,
        op=node.op,
        in_shape=tuple(node.in_shape),
        out_shape=tuple(node.out_shape),
        out_type=None if node.out_type is None else _element_type(node.out_type),
        reuse=plan.reuse,
        products=products,
        products_nonzero=products_nonzero,
        multipliers=plan.multipliers,
        adders=plan.adders,
        latency_cycles=latency_cycles,
        acc_type=_element_type(node.acc_type) if arithmetic and node.acc_type is not None else None,
        activation=node.activation.describe() if arithmetic else None,
        inputs=tuple(node.inputs),
    )


def build_manifest(
    graph: ir.ModelGraph,
    top: NetworkTop,
    top_name: str,
    options: HardwareOptions,
    seconds: float,
    input_type_origin: str | Mapping[str, str] = "unknown",
) -> Manifest:
    """The manifest of a design about to be written (`files` is filled in when it is)."""
    # one run of the model (at its steady sample count) for the design and every output
    timings = output_timing(top)
    latency, ii, per_layer = predict_timing(top, timings)
    inputs = tuple(
        _stream_spec(
            graph.node(spec.node).out_shape,
            spec.format,
            type_origin=(
                input_type_origin
                if isinstance(input_type_origin, str)
                else input_type_origin.get(spec.name, input_type_origin.get("*", "unknown"))
            ),
            name=spec.name,
            prefix=spec.prefix,
        )
        for spec in top.inputs
    )
    outputs = tuple(
        _stream_spec(
            graph.node(out.node).out_shape,
            out.format,
            tuser_width=out.tuser_width,
            classes=out.classes or None,
            softmax_in_model=out.node in graph.softmax_outputs,
            name=out.name,
            prefix=out.prefix,
            latency_cycles=out_latency,
            ii_cycles=out_ii,
            dequantize=_dequantize(graph.output_scale(index)),
        )
        for index, (out, (out_latency, out_ii)) in enumerate(zip(top.outputs, timings, strict=True))
    )
    # the first output's figures are the design's (`latency_cycles`, `ii_cycles`)
    outputs = (dataclasses.replace(outputs[0], latency_cycles=latency, ii_cycles=ii), *outputs[1:])
    layers = tuple(
        layer_entry(plan, cycles) for plan, cycles in zip(top.plans, per_layer, strict=True)
    )
    return Manifest(
        top=top_name,
        rtl=(f"rtl/{top_name}.v",),
        clock="clk",
        reset="rst",
        reset_active_high=True,
        input=inputs[0],
        inputs=inputs,
        output=outputs[0],
        outputs=outputs,
        latency_cycles=latency,
        ii_cycles=ii,
        layers=layers,
        totals=Totals.of(layers),
        options=Options(
            multiplier=options.multiplier.value,
            parallelism=options.parallelism.value,
            adders_per_stage=options.adders_per_stage,
            pipeline=options.pipeline.value,
            max_reuse=options.max_reuse,
            latency_budget=getattr(options.latency_budget, "value", options.latency_budget),
            pixels_per_beat=options.pixels_per_beat,
        ),
        generator=Generator(GENERATOR, __version__, round(seconds, 3)),
        fifos=tuple(
            FifoEntry(f.consumer, f.input_index, f.producer, f.depth, f.width)
            for f in top.plan.fifos
        ),
    )


def convert(
    graph: ir.ModelGraph,
    outdir: Path,
    options: HardwareOptions = HardwareOptions(),
    top_name: str | None = None,
    extra: Callable[[Path, Manifest], None] | None = None,
    progress: Callable[[str], None] | None = None,
    input_type_origin: str | Mapping[str, str] = "unknown",
    jobs: int | None = None,
    mac_text: bool | None = None,
) -> Design:
    """Elaborate the lowered graph and write OUTDIR. ``extra(staging_dir, manifest)`` may add
    files (testbench, reports) before the directory is moved into place.
    ``top_name``: the top module's name as the user gave it (an invalid one is an error);
    default: the model's name, made a safe identifier. ``input_type_origin``: how the input
    type was chosen, for the manifest and REPORT.md (`rtlgen.manifest.INPUT_TYPE_ORIGINS`);
    a mapping gives it per input name, under "*" for the inputs it does not name.
    ``jobs``: processes measuring a latency-budget search's probes (`rtlgen.plan.parallel_probes`)
    and converting layers to Verilog (`network_verilog`; default: the CPUs
    this process may use). ``mac_text``: constant MAC arrays as Verilog text from their plans
    (`network_verilog`; default `MAC_TEXT`)."""
    say = progress or (lambda _msg: None)
    started = time.perf_counter()
    check_supported(graph)
    top_name = top_module_name(top_name, graph.name)
    say("elaborating hardware")
    with parallel_probes(default_jobs() if jobs is None else jobs):
        top = NetworkTop(graph, options)
    say("writing Verilog")
    text = network_verilog(top, top_name, jobs=jobs, progress=say, mac_text=mac_text)
    seconds = time.perf_counter() - started
    manifest = build_manifest(graph, top, top_name, options, seconds, input_type_origin)

    outdir = Path(outdir).resolve()
    from rtlgen.report import design_report

    def manifest_text(files: list[str]) -> str:
        nonlocal manifest
        manifest = dataclasses.replace(manifest, files=tuple(files))
        return manifest.to_json()

    with DesignFolder(outdir) as folder:
        staging = folder.staging
        try:
            (staging / "rtl").mkdir()
            (staging / "rtl" / f"{top_name}.v").write_text(text)
            save_graph(graph, staging / "graph.npz")
            # a preliminary manifest: the report and extra writers (testbench) read it
            (staging / "manifest.json").write_text(manifest.to_json())
            (staging / "REPORT.md").write_text(design_report(graph, manifest))
            if extra is not None:
                extra(staging, manifest)
        except OSError as exc:
            raise folder.os_error(exc) from None
        folder.commit(manifest_text)
    return Design(outdir, top_name, outdir / "rtl" / f"{top_name}.v", manifest)


# --------------------------------------------------------------------------------------
# Verilog: each layer's components converted on their own, in parallel processes

#: components at least this large (`_size`) become modules of their own: smaller ones cost
#: less in the top than a Yosys run of their own (~0.4 s of CPU)
SEPARATE_BITS = 4096

#: constant MAC arrays (`ConstantMatVec`) are written as Verilog text from their adder plans
#: (`rtlgen.layers.mac_verilog`, proven equivalent to Amaranth's Verilog of the same array)
#: rather than through Amaranth's netlist, RTLIL and Yosys: False for the latter
MAC_TEXT = True

#: the components being converted by `network_verilog`'s worker processes (inherited by fork)
_PENDING: list[tuple[wiring.Component, str]] = []


def _ports(component: wiring.Component) -> list[tuple[str, _ast.Value, _ir.PortDirection]]:
    """The component's ports as `amaranth.back.verilog.convert` names them."""
    ports = []
    for path, member, value in component.signature.flatten(component):
        value = value.as_value() if isinstance(value, _ast.ValueCastable) else value
        flow = _ir.PortDirection.Input if member.flow == wiring.In else _ir.PortDirection.Output
        ports.append(("__".join(map(str, path)), value, flow))
    return ports


def component_verilog(component: wiring.Component, name: str) -> str:
    """The Verilog of ``component`` as module ``name``: ports ``clk``, ``rst`` (of the
    ``sync`` domain, unused by a combinational component) and the others named as
    `verilog.convert` names them (``i__payload``, ``o__valid``, ...)."""
    fragment = _ir.Fragment.get(component, None)
    sync = ClockDomain("sync")
    fragment.add_domains(sync)
    ports = [
        *_ports(component),
        ("clk", sync.clk, _ir.PortDirection.Input),
        ("rst", sync.rst, _ir.PortDirection.Input),
    ]
    design = fragment.prepare(ports=ports, hierarchy=(name,))
    with _yosys_memory(name), lean_netlist(), inprocess_yosys():
        text, _ = verilog.convert_fragment(design, emit_src=False, strip_internal_attrs=True)
    return text


@contextlib.contextmanager
def _yosys_memory(module: str):
    """A module too large for Yosys's WebAssembly build (at most 4 GB of memory: it aborts
    with ``bad_alloc``) becomes one line naming the module, with the ways out."""
    try:
        yield
    except Exception as exc:
        if type(exc).__name__ == "YosysError" and "bad_alloc" in str(exc):
            raise UnsupportedError(
                f"module {module}: its netlist is too large for Yosys (the WebAssembly build "
                "has at most 4 GB): quantize the weights (fewer bits per product), prune "
                "them, or keep time-multiplexing on (--parallelism auto)"
            ) from None
        raise


def _convert_pending(index: int, mac_text: bool) -> tuple[str, dict[str, str]]:
    component, name = _PENDING[index]
    # the parent may already have made it elaborate to an instance (`network_verilog`)
    component.__dict__.pop("elaborate", None)
    return _component_verilog(component, name, mac_text)


def _component_verilog(
    component: wiring.Component, name: str, mac_text: bool
) -> tuple[str, dict[str, str]]:
    """(Verilog of ``component`` as module ``name``, the text modules of the MAC arrays,
    threshold banks, requantizers, max-pool trees, skid buffers and arg-maxes in it by name).
    With ``mac_text``, a MAC array, a threshold bank or a requantizer itself is written as
    module ``name`` (`layers/mac_verilog.py`, `layers/bank_verilog.py`,
    `layers/requantize_verilog.py`)."""
    if not mac_text:
        return component_verilog(component, name), {}
    if isinstance(component, ConstantMatVec):
        return matvec_verilog(component, name), {}
    if _bank_text(component):
        write = beat_bank_verilog if isinstance(component, BeatThresholdBank) else bank_verilog
        return write(component, name), {}
    if _requantize_text(component):
        return requantize_verilog(component, name), {}
    with verilog_text(name) as macs:
        elaborated = component.elaborate(None)
        write = macs.writers.get(id(component))
        if write is not None:
            # an instance of its own text module (a serial MAC, a wide skid buffer, ...):
            # that text is the module, no Amaranth wrapper and no Yosys run
            _mark_elaborated(elaborated)
            return write(component, name), {}
        own = component.__dict__.pop("elaborate", None)
        component.elaborate = lambda platform: elaborated  # (elaborated once)
        try:
            text = component_verilog(component, name)
        finally:
            del component.elaborate
            if own is not None:
                component.elaborate = own
    return text, macs.modules


def _bank_text(component: wiring.Component) -> bool:
    """Whether ``component`` is a threshold bank written as text (`layers/bank_verilog.py`,
    `layers/beat_bank_verilog.py`: every bank taking its vector in beats)."""
    if type(component) is BeatThresholdBank:
        return True
    return isinstance(component, ThresholdBank) and bank_supported(component)


def _requantize_text(component: wiring.Component) -> bool:
    """Whether ``component`` is a requantizer written as text (`layers/requantize_verilog.py`)."""
    return type(component) is Requantize and requantize_supported(component)


def _instance(component: wiring.Component, name: str) -> Instance:
    """An instance of the separately converted module ``name`` wired to ``component``'s own
    port signals (which the enclosing design connects as usual)."""
    kwargs = {}
    for port, value, flow in _ports(component):
        kwargs[("i_" if flow is _ir.PortDirection.Input else "o_") + port] = value
    return Instance(name, i_clk=ClockSignal(), i_rst=ResetSignal(), **kwargs)


def network_verilog(
    top: NetworkTop,
    name: str,
    jobs: int | None = None,
    progress: Callable[[str], None] | None = None,
    mac_text: bool | None = None,
) -> str:
    """The Verilog of ``top`` as module ``name``: each large layer component (a MAC array,
    threshold bank, window generator, requantizer, ... of at least `SEPARATE_BITS`, see
    `_size`, and every threshold bank written as text) converted on its own as
    module ``<name>__l<k>_<layer>_<i>`` by Amaranth's back end, up to ``jobs`` at a time in
    worker processes, and instantiated in the top, which is converted meanwhile with the
    smaller components, stream wiring, skid buffers, FIFOs, forks and arg-max. Separated
    modules always have ``clk`` and ``rst`` ports. The same Verilog for any ``jobs``.

    ``mac_text`` (default `MAC_TEXT`): every constant MAC array is Verilog text written from
    its adder plan (`rtlgen.layers.mac_verilog`, no Amaranth netlist or Yosys): a separated
    one is that module; any other (smaller, or inside another component) an instance of
    ``<module>__mac_<hash>``, one module per distinct array, appended after the others.

    Why: Amaranth's netlist and RTLIL back end (plus Yosys' ``write_verilog``) is most of the
    conversion time and works one design at a time; separate layers are independent, so two
    CPUs convert a large network in about half the time."""
    say = progress or (lambda _msg: None)
    jobs = default_jobs() if jobs is None else max(1, jobs)
    mac_text = MAC_TEXT if mac_text is None else mac_text
    if not can_fork():
        jobs = 1  # e.g. a daemonic process (a Dask worker) may not start children
    separate: list[tuple[wiring.Component, str]] = []
    for index, plan in enumerate(top.plans):
        layer = f"l{index}_{sanitize_identifier(plan.node.name, 'layer')}"
        for k, stage in enumerate(plan.stages):
            if not isinstance(stage, wiring.Component):
                continue
            # a threshold bank written as text costs no Yosys run: a module of its own at
            # any size (in the top, Amaranth's back end takes ~1 s for 3,000 comparator bits)
            if _size(stage) >= SEPARATE_BITS or (mac_text and _bank_text(stage)):
                separate.append((stage, f"{name}__{layer}_{k}"))
    modules: list[str | None] = [None] * len(separate)
    macs: dict[str, str] = {}
    done = 0

    def finished(index: int, result: tuple[str, dict[str, str]]) -> None:
        nonlocal done
        modules[index] = result[0]
        macs.update(result[1])
        done += 1
        say(f"Verilog of {separate[index][1]} ({done}/{len(separate)})")

    # Largest first keeps both workers busy to the end; MAC arrays and threshold banks as
    # text take no time (written here, first).
    order = sorted(range(len(separate)), key=lambda i: -_size(separate[i][0]))
    if mac_text:
        text = [
            i
            for i in order
            if isinstance(separate[i][0], ConstantMatVec)
            or _bank_text(separate[i][0])
            or _requantize_text(separate[i][0])
        ]
        for i in text:
            finished(i, _component_verilog(*separate[i], mac_text))
            order.remove(i)
    if jobs > 1 and len(order) > 1:
        _PENDING[:] = separate
        try:
            with forked_pool(min(jobs, len(order))) as pool:
                futures = {pool.submit(_convert_pending, i, mac_text): i for i in order}
                # the top meanwhile, here
                top_text = _top_verilog(top, name, separate, mac_text, macs)
                for future in as_completed(futures):
                    finished(futures[future], future.result())
        finally:
            _PENDING.clear()
    else:
        for i in order:
            finished(i, _component_verilog(*separate[i], mac_text))
        top_text = _top_verilog(top, name, separate, mac_text, macs)
    mac_modules = [macs[module] for module in sorted(macs)]
    return wrap_long_lines("".join([top_text, *modules, *mac_modules]))  # type: ignore[list-item]


#: the longest line `wrap_long_lines` leaves alone (Verilator stops at 40,000 preprocessor
#: tokens on one line; a wide ROM row's concatenation of one-hot terms reached 55,834 characters)
LONG_LINE_CHARS = 2000
_LONG_LINE = re.compile(rf"^[^\n]{{{LONG_LINE_CHARS + 1},}}$", re.MULTILINE)


def wrap_long_lines(text: str, limit: int = LONG_LINE_CHARS) -> str:
    """``text`` with every line longer than ``limit`` characters broken after a ``", "`` into
    lines of at most about ``limit`` characters (continuations indented 4 more): the same
    Verilog token for token. Lines holding a comment, a string or a compiler directive (where a
    line break would change the meaning) are left as they are."""

    def wrap(match: re.Match[str]) -> str:
        line = match.group(0)
        if "//" in line or "/*" in line or '"' in line or "`" in line:
            return line
        indent = " " * (len(line) - len(line.lstrip(" ")) + 4)
        pieces, current = [], ""
        for part in line.split(", "):
            if current and len(current) + len(part) + 2 > limit:
                pieces.append(current + ",")
                current = indent + part
            else:
                current = f"{current}, {part}" if current else part
        pieces.append(current)
        return "\n".join(pieces)

    if len(text) <= limit:
        return text
    return _LONG_LINE.sub(wrap, text)


def _top_verilog(
    top: NetworkTop,
    name: str,
    separate: list[tuple[wiring.Component, str]],
    mac_text: bool,
    macs: dict[str, str],
) -> str:
    """The top's Verilog, each separated component elaborating to an instance of its module
    (with ``mac_text``, each MAC array left in the top too: its text module goes to ``macs``)."""
    for stage, module in separate:
        stage.elaborate = _instance_elaborate(stage, module)
    try:
        with verilog_text(name) if mac_text else contextlib.nullcontext() as collected:
            with _yosys_memory(name), lean_netlist(), inprocess_yosys():
                text = verilog.convert(top, name=name, emit_src=False, strip_internal_attrs=True)
        if collected is not None:
            macs.update(collected.modules)
        return text
    finally:
        for stage, _ in separate:
            del stage.elaborate


def _instance_elaborate(stage: wiring.Component, module: str):
    def elaborate(platform):
        _mark_elaborated(stage)
        return _instance(stage, module)

    return elaborate


def _mark_elaborated(value, depth: int = 3) -> None:
    """Mark the sub-components a separated component made in its constructor as used: they
    are elaborated in the worker that converts it, never here (no `UnusedElaboratable`)."""
    from amaranth._unused import MustUse

    if depth < 0:
        return
    if isinstance(value, MustUse):
        value._MustUse__used = True  # type: ignore[attr-defined]
    items = (
        value.values()
        if isinstance(value, dict)
        else value
        if isinstance(value, list | tuple)
        else vars(value).values()
        if isinstance(value, MustUse)
        else ()
    )
    for item in items:
        if isinstance(item, MustUse | dict | list | tuple):
            _mark_elaborated(item, depth - 1)


def _size(component: wiring.Component) -> int:
    """A rough conversion cost: adder bits of a constant MAC array, a component's own
    ``conversion_cost`` (a serial MAC's multiplier bits, a threshold bank's comparator bits),
    else its port bits."""
    cost = getattr(component, "conversion_cost", None)
    if isinstance(cost, int):
        return cost
    plan = getattr(component, "plan", None)
    adder_bits = getattr(plan, "adder_bits", None)
    if isinstance(adder_bits, int):
        return adder_bits
    return sum(len(value) for _, value, _ in _ports(component))
