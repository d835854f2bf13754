"""`rtlgen demo`: the whole flow on the bundled QKeras CNN, with progress output.

model file -> IR -> integer reference (accuracy, agreement with QKeras's own outputs saved
at training time) -> Verilog -> Verilator simulation (bit-exact check, latency, II).
The design folder goes where the user says, else to `default_demo_dir()` in rtlgen's cache,
so running the demo in a checkout or a home directory leaves no files there.
"""

from __future__ import annotations

import time
from importlib import resources
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table
from rich.text import Text

from rtlgen.progress import StepProgress
from rtlgen.quant.errors import RtlgenError


def demo_files() -> tuple[Path, Path, Path]:
    """(model json, weights h5, samples npz) of the bundled demo model."""
    base = Path(str(resources.files("rtlgen.data")))
    files = base / "demo_cnn.json", base / "demo_cnn_weights.h5", base / "demo_samples.npz"
    for f in files:
        if not f.is_file():
            raise RtlgenError(f"bundled demo file {f.name} is missing from the installation")
    return files


def default_demo_dir() -> Path:
    """Where `rtlgen demo` writes without `-o`: the `demo` folder of rtlgen's cache."""
    from rtlgen.cache import DEMO, cache_root

    return cache_root() / DEMO


def run_demo(
    outdir: Path,
    simulate: bool = True,
    console: Console | None = None,
    progress: StepProgress | None = None,
) -> dict:
    """Run the demo into `outdir`; return its figures. `progress` (e.g. `rtlgen.progress.step`)
    is entered around the Verilator build and the simulation."""
    from rtlgen.api import load_model
    from rtlgen.emit import convert
    from rtlgen.outdir import check_output_dir
    from rtlgen.quant.reference import predict, quantize_input_counted, run_int
    from rtlgen.report import summarize

    check_output_dir(outdir)  # a bad -o fails now, not after the model is read and converted

    console = console or Console(markup=False)  # paths are printed: never read them as markup
    model_json, weights_h5, samples_npz = demo_files()
    summary: dict = {}

    console.rule(Text("1/4 read the model", style="bold"))
    t0 = time.perf_counter()
    samples = np.load(samples_npz)
    input_type = str(samples["input_type"]) if "input_type" in samples.files else None
    graph = load_model(model_json, weights=weights_h5, input_type=input_type)
    console.print(f"{model_json.name} + {weights_h5.name}: {len(graph.nodes) - 1} layers, "
                  f"read without TensorFlow in {time.perf_counter() - t0:.2f} s")
    from rtlgen.cli import _print_summary

    _print_summary(graph, summarize(graph))

    console.rule(Text("2/4 bit-exact integer reference", style="bold"))
    x, labels = samples["x"], samples["y"]
    y_ref = predict(graph, x).reshape(len(x), -1)
    accuracy = float(np.mean(np.argmax(y_ref, axis=1) == labels))
    summary["reference_accuracy"] = accuracy
    line = f"{len(x)} held-out samples: reference accuracy {accuracy:.1%}"
    if "keras_out" in samples.files:
        keras_out = samples["keras_out"].reshape(len(x), -1)
        agree = float(np.mean(np.argmax(keras_out, 1) == np.argmax(y_ref, 1)))
        max_err = float(np.max(np.abs(keras_out - y_ref)))
        summary.update(keras_argmax_agreement=agree, keras_max_abs_error=max_err)
        line += f"; agrees with QKeras on {agree:.1%} of classes, max |error| {max_err:.2g}"
    console.print(line)

    console.rule(Text("3/4 generate Verilog", style="bold"))
    design = convert(graph, outdir, progress=lambda msg: console.print(f"  {msg}"))
    m = design.manifest
    console.print(Text.assemble(("wrote", "green"), f" {design.verilog} ({design.verilog.stat().st_size / 1024:.0f} KiB) "
                                f"in {m.generator.seconds:.2f} s"))
    from rtlgen.report import multiplier_savings, savings_lines

    for line in savings_lines(multiplier_savings(m)):
        console.print(f"  {line}")
    console.print(f"  expected latency {m.latency_cycles} cycles, II {m.ii_cycles} cycles")
    summary["verilog"] = str(design.verilog)

    if simulate:
        console.rule(Text("4/4 simulate in Verilator (cocotb), compare bit for bit", style="bold"))
        from rtlgen.sim_tb.runner import simulate as run_sim

        quantized = quantize_input_counted(graph, x)
        console.print(quantized.describe(), highlight=False)
        y_int = run_int(graph, quantized.mantissas)
        result = run_sim(design.outdir, quantized.mantissas, y_int, backpressure=0.0, seed=0,
                         progress=progress)
        table = Table()
        for col in ("samples", "mismatches", "latency (cycles)", "expected", "II (cycles)", "expected II"):
            table.add_column(col)
        table.add_row(str(result.images), str(result.mismatches), str(result.latency_cycles),
                      str(m.latency_cycles), str(result.ii_cycles), str(m.ii_cycles))
        console.print(table)
        if not result.passed:
            raise RtlgenError(f"demo simulation failed: {result.report}")
        console.print(Text.assemble(("bit-exact", "bold green"), ": RTL == integer reference on every sample"))
        summary.update(latency=result.latency_cycles, ii=result.ii_cycles)
    console.rule(Text("done", style="bold"))
    console.print(f"Next: open {design.outdir / 'REPORT.md'}, run `rtlgen report {design.outdir}` for "
                  f"LUT/FF/DSP counts, or `rtlgen sim {design.outdir} --input X.npy --backpressure 0.3`.")
    return summary
