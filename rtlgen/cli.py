"""The `rtlgen` command line (typer + rich).

User mistakes (`RtlgenError`) print one line on stderr and exit with code 2; a traceback is
shown only with `--debug`.
"""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from rtlgen.quant.errors import RtlgenError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Quantized, pruned Keras/QKeras networks -> bit-exact streaming Verilog, without HLS.",
    pretty_exceptions_enable=False,
)
board_app = typer.Typer(help="Talk to a board running an rtlgen bitstream.", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmark studies.", no_args_is_help=True)
app.add_typer(board_app, name="board")
app.add_typer(bench_app, name="bench")

# Wide enough for the layer tables when output goes to a file or a CI log.
console = Console() if sys.stdout.isatty() else Console(width=150)
err_console = Console(stderr=True)
_state = {"debug": False}


class MultiplierStyle(str, Enum):
    auto = "auto"
    dsp = "dsp"
    lut = "lut"


class ParallelismStyle(str, Enum):
    auto = "auto"
    full = "full"


class PipelineStyle(str, Enum):
    balanced = "balanced"
    latency = "latency"


class Family(str, Enum):
    xcup = "xcup"
    ecp5 = "ecp5"


ModelArg = Annotated[str, typer.Argument(help="Model file: .h5 (full model), .json (+ --weights), .keras, or a converted OUTDIR.")]
WeightsOpt = Annotated[Path | None, typer.Option("--weights", "-w", help="Weights .h5 for a .json model.")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="Precision config YAML (hls4ml-style types accepted).")]
CalibrateOpt = Annotated[Path | None, typer.Option("--calibrate", help="Sample inputs .npy: size float-model results from observed ranges (+ headroom) instead of worst-case analysis.")]
InputTypeOpt = Annotated[str | None, typer.Option("--input-type", help="Input stream type, e.g. 'fixed<8,1>' (default: config's, else fixed<16,6>).")]


@app.callback()
def _main(debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks.")] = False) -> None:
    _state["debug"] = debug


def _load(model: str, weights: Path | None, config: Path | None, input_type: str | None = None,
          calibrate: Path | None = None):
    from rtlgen.api import load_array, load_model

    samples = load_array(calibrate, "calibration") if calibrate is not None else None
    with console.status(f"reading {model}"):
        return load_model(model, weights=weights, config=config, input_type=input_type, calibrate=samples)


# ---------------------------------------------------------------------------------------
@app.command()
def inspect(
    model: ModelArg,
    weights: WeightsOpt = None,
    config: ConfigOpt = None,
    input_type: InputTypeOpt = None,
    calibrate: CalibrateOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Per-layer table: op, shapes, fixed-point types, parameters, sparsity, multiplies."""
    from rtlgen.report import summarize

    graph = _load(model, weights, config, input_type, calibrate)
    rows = summarize(graph)
    if as_json:
        print(json.dumps({"model": graph.name, "softmax": graph.softmax, "layers": [r.as_json() for r in rows]}, indent=2))
        return
    _print_summary(graph, rows)


def _print_summary(graph, rows) -> None:
    table = Table(title=f"{graph.name}", show_lines=False)
    for col in ("layer", "op", "in -> out", "weights", "bias", "accumulator", "output", "act", "params", "sparsity", "mults nz/all"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r.name, r.op, "x".join(map(str, r.in_shape)) + " -> " + "x".join(map(str, r.out_shape)),
            r.weight_type, r.bias_type, r.acc_type, r.out_type, r.activation,
            str(r.parameters) if r.parameters else "",
            f"{r.sparsity:.0%}" if r.parameters else "",
            f"{r.nonzero_multiplies}/{r.multiplies}" if r.multiplies else "",
        )
    console.print(table)
    nz = sum(r.nonzero_multiplies for r in rows)
    total = sum(r.multiplies for r in rows)
    console.print(f"non-zero multiplies per sample: {nz} of {total}"
                  + (" (softmax at the end: hardware emits logits + class)" if graph.softmax else ""))


# ---------------------------------------------------------------------------------------
@app.command()
def predict(
    model: ModelArg,
    input: Annotated[Path, typer.Option("--input", "-i", help="Inputs .npy, shape (N, *input_shape), float.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write outputs .npy.")],
    weights: WeightsOpt = None,
    config: ConfigOpt = None,
    input_type: InputTypeOpt = None,
    calibrate: CalibrateOpt = None,
    classes: Annotated[bool, typer.Option("--classes", help="Write arg-max class indices (N,) instead of outputs.")] = False,
) -> None:
    """Run the bit-exact integer reference model: writes dequantized outputs (N, outputs) as
    float64 (the logits when the model ends in softmax), or class indices with --classes."""
    import numpy as np

    from rtlgen.api import load_array
    from rtlgen.quant.reference import predict as ref_predict

    graph = _load(model, weights, config, input_type, calibrate)
    x = load_array(input)
    y = ref_predict(graph, x)
    y = y.reshape(y.shape[0], -1)
    result = np.argmax(y, axis=1) if classes else y
    output.parent.mkdir(parents=True, exist_ok=True)
    np.save(output, result)
    what = "class indices" if classes else ("logits (softmax not applied)" if graph.softmax else "outputs")
    console.print(f"wrote {what} {result.shape} to {output}")


# ---------------------------------------------------------------------------------------
@app.command()
def convert(
    model: ModelArg,
    outdir: Annotated[Path, typer.Option("--output", "-o", help="Output directory.")],
    weights: WeightsOpt = None,
    config: ConfigOpt = None,
    input_type: InputTypeOpt = None,
    calibrate: CalibrateOpt = None,
    multiplier: Annotated[MultiplierStyle, typer.Option(help="Constant multipliers: dsp, lut (shift-add), auto.")] = MultiplierStyle.auto,
    parallelism: Annotated[ParallelismStyle, typer.Option(help="auto: time-multiplex layers that see few beats (reuse factor); full: every layer fully parallel.")] = ParallelismStyle.auto,
    top: Annotated[str | None, typer.Option(help="Verilog top module name (default: model name).")] = None,
    testbench: Annotated[bool, typer.Option("--testbench", help="Also write a stand-alone cocotb testbench into OUTDIR/tb.")] = False,
    samples: Annotated[Path | None, typer.Option(help="Inputs .npy for the stand-alone testbench (default: random).")] = None,
    adders_per_stage: Annotated[int | None, typer.Option(help="Adders in series between the registers of a constant MAC array, 1-8. Default 2 (about 4 LUT levels); 3 saves a cycle per layer and FFs at about 6 levels; with --pipeline latency the default is 6 (5-8: fewest cycles).", show_default=False)] = None,
    pipeline: Annotated[PipelineStyle, typer.Option(help="balanced: registers and a skid buffer after every layer; latency: an MLP's layers fused, registers every --adders-per-stage adders across layer boundaries (fewest cycles).")] = PipelineStyle.balanced,
) -> None:
    """Generate Verilog: OUTDIR/rtl/<top>.v, manifest.json, REPORT.md (and tb/)."""
    design = _convert(model, outdir, weights, config, input_type, calibrate, multiplier, parallelism, top, testbench, samples, adders_per_stage, pipeline)
    _print_design(design)


def _convert(model, outdir, weights, config, input_type, calibrate, multiplier, parallelism, top, testbench, samples, adders_per_stage, pipeline):
    from rtlgen.emit import convert as emit_convert
    from rtlgen.hardware import HardwareOptions, Multiplier, Parallelism, Pipeline

    options = HardwareOptions(
        multiplier=Multiplier(multiplier.value), parallelism=Parallelism(parallelism.value),
        adders_per_stage=adders_per_stage,
        pipeline=Pipeline(pipeline.value),
    )
    graph = _load(model, weights, config, input_type, calibrate)
    extra = None
    if testbench:
        extra = _testbench_writer(graph, samples)
    with console.status("generating hardware") as status:
        return emit_convert(
            graph, outdir, options,
            top_name=top,
            extra=extra, progress=lambda msg: status.update(msg),
        )


def _testbench_writer(graph, samples: Path | None):
    import numpy as np

    from rtlgen.api import load_array
    from rtlgen.quant.reference import quantize_input, run_int

    if samples is not None:
        x_int = quantize_input(graph, load_array(samples, "samples"))
    else:
        t = graph.input.out_type
        rng = np.random.default_rng(0)
        x_int = rng.integers(t.min_int, t.max_int + 1, size=(8, *graph.input_shape))
    y_int = run_int(graph, x_int)

    def write(staging: Path, manifest) -> None:
        from rtlgen.sim_tb.standalone import save_vectors, write_testbench

        write_testbench(staging)
        save_vectors(staging, x_int, y_int)

    return write


def _print_design(design) -> None:
    m = design.manifest
    t = m["totals"]
    console.print(f"[bold green]wrote[/] {design.verilog}")
    console.print(
        f"  latency {m['latency_cycles']} cycles, II {m['ii_cycles']} cycles, "
        f"{t['multipliers']} constant multipliers ({t['multipliers_dense']} before pruning), "
        f"generated in {m['generator']['seconds']} s"
    )
    console.print(f"  manifest: {design.manifest_path}   report: {design.outdir / 'REPORT.md'}")


# ---------------------------------------------------------------------------------------
@app.command()
def sim(
    outdir: Annotated[Path, typer.Argument(help="A directory written by 'rtlgen convert'.")],
    input: Annotated[Path, typer.Option("--input", "-i", help="Inputs .npy (float, like for 'predict').")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write simulated outputs .npy (same format as 'predict --output').")] = None,
    backpressure: Annotated[float, typer.Option(help="Probability of tvalid gaps on input and tready drops on output.", min=0.0, max=0.95)] = 0.0,
    seed: Annotated[int, typer.Option(help="Seed of the backpressure pattern.")] = 0,
    waves: Annotated[bool, typer.Option("--waves", help="Dump a VCD waveform.")] = False,
) -> None:
    """Simulate the generated Verilog in Verilator (cocotb), compare bit for bit with the
    reference model, measure latency and II. Exits 1 on any mismatch."""
    result = _simulate(outdir, input, output, backpressure, seed, waves)
    if not result.passed:
        raise typer.Exit(1)


def _simulate(outdir: Path, input: Path, output: Path | None, backpressure: float, seed: int, waves: bool):
    import numpy as np

    from rtlgen.api import load_array, load_model
    from rtlgen.emit import load_manifest
    from rtlgen.quant.reference import quantize_input, run_int
    from rtlgen.sim_tb.runner import simulate

    manifest = load_manifest(outdir)
    graph = load_model(outdir)
    x_int = quantize_input(graph, load_array(input))
    y_int = run_int(graph, x_int)
    with console.status(f"simulating {len(x_int)} samples in Verilator (builds once per design)"):
        result = simulate(outdir, x_int, y_int, backpressure=backpressure, seed=seed, waves=waves)
    _print_sim(manifest, result)
    if output is not None and result.y_sim is not None:
        y = graph.output.out_type.to_float(np.asarray(result.y_sim)).reshape(len(x_int), -1)
        output.parent.mkdir(parents=True, exist_ok=True)
        np.save(output, y)
        console.print(f"wrote simulated outputs {y.shape} to {output}")
    return result


def _print_sim(manifest, result) -> None:
    table = Table(title=f"Verilator simulation of {manifest['top']}")
    for col in ("samples", "mismatches", "latency (cycles)", "expected", "II (cycles)", "expected II", "input stalled", "sim cycles/s"):
        table.add_column(col)
    cps = result.cycles / result.seconds if result.seconds else 0
    table.add_row(
        str(result.images), str(result.mismatches), str(result.latency_cycles), str(manifest["latency_cycles"]),
        str(result.ii_cycles), str(manifest["ii_cycles"]), str(result.input_stalled), f"{cps:,.0f}",
    )
    console.print(table)
    if result.timing_under_backpressure:
        console.print("(latency/II measured under backpressure: see the full-rate figures without --backpressure)")
    if not result.passed:
        err_console.print(f"[bold red]FAILED[/]: {result.report}")
    else:
        console.print("[bold green]bit-exact[/] against the reference model")


# ---------------------------------------------------------------------------------------
@app.command()
def report(
    outdir: Annotated[Path, typer.Argument(help="A directory written by 'rtlgen convert'.")],
    family: Annotated[Family, typer.Option(help="Synthesis target: xcup (Xilinx UltraScale+, synth_xilinx) or ecp5 (synth_ecp5).")] = Family.xcup,
) -> None:
    """Synthesize with Yosys and add LUT/FF/DSP/BRAM and the longest LUT path to REPORT.md."""
    from rtlgen.emit import load_manifest
    from rtlgen.synth import synthesize

    manifest = load_manifest(outdir)
    verilog = outdir / manifest["rtl"][0]
    with console.status(f"synthesizing with Yosys for {family.value} (first run compiles Yosys, ~1 min)"):
        result = synthesize(verilog, manifest["top"], family=family.value)
    summary = {
        "family": family.value, "LUT": result.luts, "FF": result.ffs, "DSP": result.dsps,
        "BRAM": result.brams, "LUT levels": result.lut_levels, "longest path (cells)": result.longest_path,
        "seconds": round(result.seconds, 1),
    }
    manifest["synthesis"] = summary
    (outdir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    from rtlgen.api import load_model
    from rtlgen.report import design_report

    (outdir / "REPORT.md").write_text(design_report(load_model(outdir), manifest))
    table = Table(title=f"Yosys synthesis of {manifest['top']} ({family.value})")
    for k in summary:
        table.add_column(k)
    table.add_row(*[str(v) for v in summary.values()])
    console.print(table)


# ---------------------------------------------------------------------------------------
@app.command()
def package(
    outdir: Annotated[Path, typer.Argument(help="A directory written by 'rtlgen convert'.")],
    vivado: Annotated[bool, typer.Option("--vivado", help="Write a Vivado project + IP packaging Tcl.")] = True,
    part: Annotated[str | None, typer.Option(help="Xilinx part, e.g. xcvu9p-flgb2104-2L-e.")] = None,
    board: Annotated[str | None, typer.Option(help="Board preset: pynq-z2, zcu102, vcu118, u250, paper-vu9p.")] = None,
    clock_mhz: Annotated[float | None, typer.Option(help="Target clock in MHz (default: the preset's, else 200).")] = None,
) -> None:
    """Write OUTDIR/vivado/: build.tcl (synth+impl+reports), package_ip.tcl, constraints.xdc."""
    from rtlgen.boards.vivado import write_vivado

    path = write_vivado(outdir, part=part, clock_mhz=clock_mhz, board=board)
    console.print(f"[bold green]wrote[/] {path}  (run: cd {path} && vivado -mode batch -source build.tcl)")


@app.command()
def build(
    outdir: Annotated[Path, typer.Argument(help="A directory written by 'rtlgen convert'.")],
    board: Annotated[str, typer.Option(help="Board: ulx3s-12f/25f/45f/85f, orangecrab-r0.2-25f/85f.")] = "ulx3s-25f",
    baud: Annotated[int, typer.Option(help="UART baud rate of the board wrapper.")] = 115200,
) -> None:
    """Build a bitstream with the open toolchain (Yosys + nextpnr) around a UART wrapper."""
    from rtlgen.boards import build_bitstream

    with console.status(f"building a bitstream for {board} (Yosys + nextpnr)"):
        result = build_bitstream(outdir, board=board, baud=baud)
    console.print(f"[bold green]bitstream[/] {result.bitstream}")
    used = ", ".join(f"{cell} {count}" for cell, count in result.utilization.items() if count)
    console.print(f"  Fmax {result.fmax_mhz:.1f} MHz (board clock {result.clock_mhz:g} MHz); used: {used}")


@board_app.command("run")
def board_run(
    port: Annotated[str, typer.Option(help="Serial port, e.g. /dev/ttyUSB0.")],
    input: Annotated[Path, typer.Option("--input", "-i", help="Inputs .npy (float).")],
    design: Annotated[Path, typer.Option(help="The OUTDIR the bitstream was built from.")],
    baud: Annotated[int, typer.Option()] = 115200,
) -> None:
    """Send samples to a board over UART and print the classes it returns."""
    from rtlgen.api import load_array, load_model
    from rtlgen.boards.client import run_on_board
    from rtlgen.emit import load_manifest
    from rtlgen.quant.reference import quantize_input

    load_manifest(design)  # a clear error when DESIGN is not a converted design
    graph = load_model(design)
    x_int = quantize_input(graph, load_array(input))
    classes, _outputs = run_on_board(port, x_int, design, baud=baud)
    console.print(f"classes: {list(map(int, classes))}")


@bench_app.command("svhn")
def bench_svhn(
    quick: Annotated[bool, typer.Option("--quick", help="A few small variants, few epochs (CI-sized).")] = False,
    out: Annotated[Path, typer.Option("--output", "-o", help="Results directory.")] = Path("results/svhn"),
) -> None:
    """The paper's SVHN study (arXiv 2101.05108): train, convert, simulate, synthesize, tabulate."""
    from rtlgen.study import run_svhn_study

    run_svhn_study(out, quick=quick, console=console)


# ---------------------------------------------------------------------------------------
@app.command()
def demo(
    outdir: Annotated[Path, typer.Option("--output", "-o", help="Where to write the demo design.")] = Path("rtlgen-demo"),
    simulate: Annotated[bool, typer.Option(help="Run the Verilator simulation step.")] = True,
) -> None:
    """The whole flow on the bundled QKeras CNN: inspect -> reference -> Verilog -> Verilator."""
    from rtlgen.demo import run_demo

    run_demo(outdir, simulate=simulate, console=console)


def main() -> None:
    try:
        app()
    except RtlgenError as exc:
        if _state["debug"]:
            raise
        # one line, never wrapped, so scripts and CI logs can grep it
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
