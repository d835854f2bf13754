"""Per-layer summaries of a lowered graph, as rows (for tables/JSON) and as Markdown."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from rtlgen import ir
from rtlgen.manifest import Manifest, Synthesis, Totals

if TYPE_CHECKING:
    from rtlgen.synth import SynthResult


@dataclass(frozen=True)
class LayerSummary:
    name: str
    op: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    weight_type: str
    bias_type: str
    acc_type: str
    out_type: str
    activation: str
    parameters: int
    nonzero_parameters: int
    sparsity: float
    multiplies: int
    nonzero_multiplies: int
    source: str
    inputs: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["in_shape"], d["out_shape"] = list(self.in_shape), list(self.out_shape)
        d["inputs"] = list(self.inputs)
        return d


def summarize(graph: ir.ModelGraph) -> list[LayerSummary]:
    rows = []
    for node in graph.nodes:
        consts = ir.constants(node)
        params = (
            node.parameter_count()  # an op whose constants are padded (threshold banks)
            if hasattr(node, "parameter_count")
            else sum(
                ir.weight_count(node)
                if key == "weights" and isinstance(node, ir.Conv)
                else math.prod(t.shape)
                for key, t in consts.items()
            )
        )
        nz = sum(
            int(t.nonzero if isinstance(t, ir.QTensor) else (t.values != 0).sum())
            for t in consts.values()
        )
        main = consts.get("weights", consts.get("scale"))
        side = consts.get("bias", consts.get("shift"))
        nonzero_mul, total_mul = ir.multiplies(node)
        main_size = (
            (ir.weight_count(node) if isinstance(node, ir.Conv) else math.prod(main.shape))
            if main is not None
            else 0
        )
        main_nz = (
            (main.nonzero if isinstance(main, ir.QTensor) else int((main.values != 0).sum()))
            if main is not None
            else 0
        )
        rows.append(
            LayerSummary(
                name=node.name,
                op=node.op,
                in_shape=tuple(node.in_shape),
                out_shape=tuple(node.out_shape),
                weight_type=_tensor_type(main),
                bias_type=_tensor_type(side),
                acc_type=str(getattr(node, "acc_type", None) or ""),
                out_type=str(node.out_type or ""),
                activation=_activation(node),
                parameters=params,
                nonzero_parameters=nz,
                sparsity=(1 - main_nz / main_size) if main_size else 0.0,
                multiplies=total_mul,
                nonzero_multiplies=nonzero_mul,
                source=node.source,
                inputs=tuple(node.inputs),
            )
        )
    return rows


def _activation(node: ir.Node) -> str:
    """The activation column: a clamp, or what an activation node describes (a lookup
    table's type and its largest error against the float function, a leaky slope)."""
    if isinstance(node, ir._Arithmetic):
        return node.activation.describe()
    describe = getattr(node, "describe", None)
    return describe() if callable(describe) else ""


def _tensor_type(t: ir.Tensor | None) -> str:
    if t is None:
        return ""
    if isinstance(t, ir.QTensor):
        return str(t.type)
    return str(t.quantizer) if t.quantizer is not None else "float"


def _shape(s: tuple[int, ...]) -> str:
    return "x".join(map(str, s))


def markdown_table(headers: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    # a `|` in a cell (a layer name from the model file) would start a new column
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class MultiplierSavings:
    """Where a design's multipliers went, split honestly (see `LayerEntry`).

    `products`: constant products per sample with every weight non-zero; `products_nonzero`:
    after pruning (`pruned` = zero weights removed); `parallel_multipliers`: what building
    every layer fully parallel would take (one multiplier per non-zero weight, shared by all
    window positions of a layer); `multipliers`: what was built; `time_multiplexed`: the layers
    with a reuse factor > 1 as (name, reuse), which account for `parallel - multipliers`."""

    products: int
    products_nonzero: int
    parallel_multipliers: int
    multipliers: int
    time_multiplexed: tuple[tuple[str, int], ...]

    @property
    def pruned(self) -> int:
        return self.products - self.products_nonzero

    @property
    def saved_by_reuse(self) -> int:
        return self.parallel_multipliers - self.multipliers


def layer_products(
    manifest: Manifest, graph: ir.ModelGraph | None = None
) -> dict[str, tuple[int, int]]:
    """(products, products_nonzero) per layer: the manifest's, or for a format-1 manifest
    (which did not record them) the graph's (`ir.multiplies`, the same numbers)."""
    products = {}
    for node in graph.nodes if graph is not None else ():
        if isinstance(node, ir.Input):
            continue
        nonzero, total = ir.multiplies(node)
        products[node.name] = (total, nonzero)
    for layer in manifest.layers:
        if layer.products is not None and layer.products_nonzero is not None:
            products[layer.name] = (layer.products, layer.products_nonzero)
    return products


def multiplier_savings(manifest: Manifest, graph: ir.ModelGraph | None = None) -> MultiplierSavings:
    """`MultiplierSavings` of a design (`graph` supplies what a format-1 manifest lacks)."""
    products = layer_products(manifest, graph)
    total = nonzero = parallel = 0
    for layer in manifest.layers:
        layer_total, layer_nonzero = products.get(layer.name, (0, 0))
        total, nonzero = total + layer_total, nonzero + layer_nonzero
        # a fully parallel layer builds one multiplier per non-zero weight of one window
        positions = math.prod(layer.out_shape[:-1])
        parallel += layer_nonzero // positions if layer.reuse > 1 else layer.multipliers
    return MultiplierSavings(
        products=total,
        products_nonzero=nonzero,
        parallel_multipliers=parallel,
        multipliers=sum(layer.multipliers for layer in manifest.layers),
        time_multiplexed=tuple(
            (layer.name, layer.reuse) for layer in manifest.layers if layer.reuse > 1
        ),
    )


def with_synthesis(manifest: Manifest, graph: ir.ModelGraph, result: SynthResult) -> Manifest:
    """`manifest` with `rtlgen report`'s synthesis result. A format-1 manifest is completed on
    the way (it is rewritten as format 2): products per layer from the graph, and `files`."""
    products = layer_products(manifest, graph)
    layers = tuple(
        layer
        if layer.products is not None
        else dataclasses.replace(
            layer,
            products=products.get(layer.name, (0, 0))[0],
            products_nonzero=products.get(layer.name, (0, 0))[1],
        )
        for layer in manifest.layers
    )
    synthesis = Synthesis(
        family=result.family,
        luts=result.luts,
        ffs=result.ffs,
        dsps=result.dsps,
        brams=result.brams,
        lut_levels=result.lut_levels,
        longest_path=result.longest_path,
        seconds=round(result.seconds, 1),
    )
    files = manifest.files or legacy_files(manifest)
    return dataclasses.replace(
        manifest, layers=layers, totals=Totals.of(layers), synthesis=synthesis, files=files
    )


def legacy_files(manifest: Manifest) -> tuple[str, ...]:
    """What rtlgen 0.1.0 wrote into a design folder (its manifest has no `files`), of what is
    there: the Verilog, graph.npz, REPORT.md and the stand-alone testbench's files."""
    from rtlgen.sim_tb.standalone import TESTBENCH_FILES

    testbench = [*TESTBENCH_FILES.values(), "README.md", ".gitignore", "x_int.npy", "y_int.npy"]
    candidates = [*manifest.rtl, "graph.npz", "REPORT.md", *(f"tb/{name}" for name in testbench)]
    folder = manifest.outdir
    return tuple(
        sorted(name for name in candidates if folder is not None and (folder / name).is_file())
    )


def savings_lines(savings: MultiplierSavings) -> list[str]:
    """Two sentences: products and pruning; multipliers built and time-multiplexing."""
    share = f", {savings.pruned / savings.products:.0%}" if savings.products else ""
    pruning = (
        f"{savings.products} constant products per sample, {savings.products_nonzero} after pruning "
        + (
            f"(pruning removed {savings.pruned} products of zero weights{share})"
            if savings.pruned
            else "(no zero weights: nothing pruned)"
        )
    )
    if savings.time_multiplexed:
        layers = ", ".join(f"{name} x{reuse}" for name, reuse in savings.time_multiplexed)
        reuse = (
            f"{savings.multipliers} multipliers built; fully parallel would need "
            f"{savings.parallel_multipliers}: time-multiplexing saves {savings.saved_by_reuse} "
            f"(reuse factor: {layers})"
        )
    else:
        reuse = (
            f"{savings.multipliers} multipliers built, all layers fully parallel (reuse factor 1; "
            "a convolution's multipliers serve every window position)"
        )
    return [pruning, reuse]


def synthesis_table(synth: Synthesis) -> tuple[list[str], list[Any]]:
    """Column names and the row of a synthesis result (REPORT.md and `rtlgen report`)."""
    return (
        ["family", "LUT", "FF", "DSP", "BRAM", "LUT levels", "longest path (cells)", "seconds"],
        [
            synth.family,
            synth.luts,
            synth.ffs,
            synth.dsps,
            synth.brams,
            synth.lut_levels,
            synth.longest_path,
            synth.seconds,
        ],
    )


INPUT_TYPE_ORIGIN_TEXT = {
    "option": "set by `--input-type`",
    "config": "the precision config's `input`",
    "default": "rtlgen's default (no `--input-type`, no `input` in a precision config): "
    "check that it covers the range and resolution of your data",
    "model": "kept from the converted design it was read from",
    "unknown": "how it was chosen was not recorded (a design from rtlgen 0.1.0, or a graph "
    "converted through the Python API)",
}


def _input_lines(manifest: Manifest) -> list[str]:
    """The Interface lines of the inputs: one per AXI4-Stream slave."""
    several = len(manifest.inputs) > 1
    return [
        f"- {f'input `{spec.name}`' if several else 'input'}: shape {list(spec.shape)}, "
        f"{spec.beats_per_sample} beats per sample of {spec.elements_per_beat} x "
        f"`{spec.element.text}` (`{spec.prefix}_tdata` {spec.tdata_width} bits)"
        for spec in manifest.inputs
    ]


def _input_type_lines(manifest: Manifest) -> list[str]:
    """Where each input's type came from (one line per input)."""
    several = len(manifest.inputs) > 1
    return [
        f"- {f'input `{spec.name}`' if several else 'input'} type `{spec.element.text}`: "
        f"{INPUT_TYPE_ORIGIN_TEXT.get(spec.type_origin or 'unknown', spec.type_origin)}; "
        "values are rounded to it and saturate at its range"
        for spec in manifest.inputs
    ]


def _output_lines(manifest: Manifest) -> list[str]:
    """The Interface lines of the outputs: one per AXI4-Stream master."""
    lines = []
    several = len(manifest.outputs) > 1
    for spec in manifest.outputs:
        what = f"output `{spec.name}`" if several else "output"
        lines.append(
            f"- {what}: shape {list(spec.shape)}, {spec.beats_per_sample} beat(s) of "
            f"{spec.elements_per_beat} x `{spec.element.text}` (`{spec.prefix}_tdata` "
            f"{spec.tdata_width} bits)"
            + (
                f", class index on `{spec.prefix}_tuser` ({spec.tuser_width} bits)"
                if spec.classes
                else ""
            )
        )
    return lines


def _constant_layers_line(graph: ir.ModelGraph) -> str:
    """What `rtlgen.passes.fold_constant_layers` did, for the layer table's reader."""
    parts = []
    if graph.constant_layers:
        parts.append(
            f"built as constants (all-zero weights, or a constant input folded into the "
            f"bias): {', '.join(graph.constant_layers)}"
        )
    if graph.removed_layers:
        parts.append(f"not built (their results reach no output): {', '.join(graph.removed_layers)}")
    return "Layers " + "; ".join(parts) + "."


def design_report(graph: ir.ModelGraph, manifest: Manifest) -> str:
    rows = summarize(graph)
    hw = {entry.name: entry for entry in manifest.layers}
    products = layer_products(manifest, graph)
    table = []
    inputs = {node.name for node in graph.input_nodes}
    for r in rows:
        if r.name in inputs:
            continue
        h = hw.get(r.name)
        layer_total, layer_nonzero = products.get(r.name, (0, 0))
        table.append(
            [
                r.name,
                r.op,
                _shape(r.in_shape),
                _shape(r.out_shape),
                r.weight_type,
                r.acc_type,
                r.out_type,
                f"{r.sparsity:.0%}" if r.parameters else "",
                f"{layer_nonzero} / {layer_total}" if layer_total else "",
                h.multipliers if h is not None and layer_total else "",
                h.reuse if h is not None and layer_total else "",
                "" if h is None or h.latency_cycles is None else h.latency_cycles,
            ]
        )
    savings = multiplier_savings(manifest, graph)
    out = manifest.output
    text = [
        f"# {manifest.top}: rtlgen design report\n",
        f"Generated by rtlgen {manifest.generator.version} in {manifest.generator.seconds} s "
        f"from `{graph.source or graph.name}`.\n",
        "## Interface\n",
        *_input_lines(manifest),
        *_input_type_lines(manifest),
        *_output_lines(manifest),
        "- the hardware emits logits and the arg-max class; the model's softmax is not computed"
        if out.softmax_in_model
        else "- the hardware emits the model's outputs",
        f"- expected latency: **{manifest.latency_cycles} cycles** (first input beat"
        + (" of the input that takes it last" if len(manifest.inputs) > 1 else "")
        + f" to last output beat), "
        f"initiation interval **{manifest.ii_cycles} cycles** per sample",
        *(
            f"- expected latency of output `{spec.name}`: **{spec.latency_cycles} cycles**"
            for spec in manifest.outputs[1:]
        ),
        "",
        "## Multipliers\n",
        *(f"- {line}" for line in savings_lines(savings)),
        f"- multiplier style `{manifest.options.multiplier}`\n",
        "## Layers\n",
        markdown_table(
            [
                "layer",
                "op",
                "in",
                "out",
                "weights",
                "accumulator",
                "output",
                "sparsity",
                "products / sample (non-zero / all)",
                "multipliers",
                "reuse",
                "latency",
            ],
            table,
        ),
    ]
    if graph.constant_layers or graph.removed_layers:
        text += ["\n" + _constant_layers_line(graph)]
    if manifest.fifos:
        text += [
            "\n## Stream FIFOs\n",
            "Where a stream forks and the branches join again, the branch that arrives first "
            "waits in a FIFO sized by the event-time model (the fork never waits for it).\n",
            markdown_table(
                ["join", "input", "from", "depth (beats)", "width (bits)", "memory (bits)"],
                [
                    [f.consumer, f.input_index, f.producer, f.depth, f.width, f.bits]
                    for f in manifest.fifos
                ],
            ),
            f"\nFIFO memory in all: {sum(f.bits for f in manifest.fifos)} bits",
        ]
    if manifest.synthesis is not None:
        headers, row = synthesis_table(manifest.synthesis)
        text += ["\n## Synthesis (Yosys)\n", markdown_table(headers, [row])]
    return "\n".join(text)
