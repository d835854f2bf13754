"""Write a generated design: OUTDIR/rtl/<top>.v, manifest.json, graph.npz, REPORT.md.

The directory is assembled under a temporary name beside OUTDIR and renamed into place only
when complete, so an interrupted or failed run never leaves a directory that looks finished.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amaranth.back import verilog

from rtlgen import __version__, ir
from rtlgen.hardware import HardwareOptions, NetworkTop, check_supported, sanitize_identifier
from rtlgen.quant.errors import RtlgenError
from rtlgen.serialize import save_graph


@dataclass(frozen=True)
class Design:
    """What `convert` wrote."""

    outdir: Path
    top: str
    verilog: Path
    manifest: dict[str, Any]

    @property
    def manifest_path(self) -> Path:
        return self.outdir / "manifest.json"


def _type_json(t) -> dict[str, Any]:
    return {"width": t.width, "frac": t.frac, "signed": t.signed, "text": str(t)}


def predict_timing(top: NetworkTop) -> tuple[int, int, list[int]]:
    """(latency_cycles, ii_cycles, per-layer pipeline depth) from the components' contracts.

    Latency and II come from the event-time model (`rtlgen.timing`): cycles from the first
    input beat's handshake to the last output beat's, at full input rate and no
    backpressure (docs/DESIGN.md). Per-layer depth is the sum of its stages' latencies.
    """
    from rtlgen.timing import model_top

    per_layer = []
    for plan in top.plans:
        depth = sum(getattr(stage, "latency", 0) for stage in plan.stages)
        per_layer.append(depth + (1 if top.has_skid_buffer(plan) else 0))
    timing = model_top(top)
    return timing.latency, timing.ii, per_layer


def build_manifest(
    graph: ir.ModelGraph, top: NetworkTop, top_name: str, options: HardwareOptions, seconds: float
) -> dict[str, Any]:
    latency, ii, per_layer = predict_timing(top)
    fi, fo = top.input_format, top.output_format
    layers = []
    for plan, lat in zip(top.plans, per_layer, strict=True):
        node = plan.node
        entry: dict[str, Any] = {
            "name": node.name,
            "source": node.source,
            "op": node.op,
            "in_shape": list(node.in_shape),
            "out_shape": list(node.out_shape),
            "out_type": _type_json(node.out_type),
            "reuse": plan.reuse,
            "multipliers": plan.multipliers,
            "multipliers_dense": plan.multipliers_dense,
            "adders": plan.adders,
            "latency_cycles": lat,
        }
        if isinstance(node, ir._Arithmetic):
            entry["acc_type"] = _type_json(node.acc_type)
            entry["activation"] = node.activation.describe()
        layers.append(entry)
    return {
        "format_version": 1,
        "top": top_name,
        "rtl": [f"rtl/{top_name}.v"],
        "clock": "clk",
        "reset": "rst",
        "reset_active_high": True,
        "input": {
            "shape": list(graph.input_shape),
            "beats_per_sample": fi.beats,
            "elements_per_beat": fi.elements,
            "type": _type_json(fi.type),
            "tdata_width": fi.elements * fi.type.width,
        },
        "output": {
            "shape": list(graph.output_shape),
            "beats_per_sample": fo.beats,
            "elements_per_beat": fo.elements,
            "type": _type_json(fo.type),
            "tdata_width": fo.elements * fo.type.width,
            "tuser_width": top.tuser_width,
            "classes": top.classes or None,
            "softmax_in_model": graph.softmax,
        },
        "latency_cycles": latency,
        "ii_cycles": ii,
        "layers": layers,
        "totals": {
            "multipliers": sum(p.multipliers for p in top.plans),
            "multipliers_dense": sum(p.multipliers_dense for p in top.plans),
            "adders": sum(p.adders for p in top.plans),
        },
        "options": {
            "multiplier": options.multiplier.value,
            "parallelism": options.parallelism.value,
            "adders_per_stage": options.adders_per_stage,
            "pipeline": options.pipeline.value,
        },
        "generator": {"rtlgen": __version__, "seconds": round(seconds, 3)},
    }


def _replace_dir(staging: Path, outdir: Path) -> None:
    if outdir.exists():
        if not (outdir / "manifest.json").exists() and any(outdir.iterdir()):
            raise RtlgenError(
                f"output directory {outdir} exists and is not an rtlgen design; choose another -o"
            )
        old = outdir.with_name(outdir.name + ".old-rtlgen")
        if old.exists():
            shutil.rmtree(old)
        outdir.rename(old)
        staging.rename(outdir)
        shutil.rmtree(old)
    else:
        staging.rename(outdir)


def convert(
    graph: ir.ModelGraph,
    outdir: Path,
    options: HardwareOptions = HardwareOptions(),
    top_name: str | None = None,
    extra: Callable[[Path, dict[str, Any]], None] | None = None,
    progress: Callable[[str], None] | None = None,
) -> Design:
    """Elaborate the lowered graph and write OUTDIR. ``extra(staging_dir, manifest)`` may add
    files (testbench, reports) before the directory is moved into place."""
    say = progress or (lambda _msg: None)
    started = time.perf_counter()
    check_supported(graph)
    top_name = sanitize_identifier(top_name or graph.name, "rtlgen_net")
    say("elaborating hardware")
    top = NetworkTop(graph, options)
    say("writing Verilog")
    text = verilog.convert(top, name=top_name, emit_src=False, strip_internal_attrs=True)
    seconds = time.perf_counter() - started
    manifest = build_manifest(graph, top, top_name, options, seconds)

    outdir = Path(outdir).resolve()
    outdir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{outdir.name}.partial-", dir=outdir.parent))
    try:
        (staging / "rtl").mkdir()
        (staging / "rtl" / f"{top_name}.v").write_text(text)
        save_graph(graph, staging / "graph.npz")
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        from rtlgen.report import design_report

        (staging / "REPORT.md").write_text(design_report(graph, manifest))
        if extra is not None:
            extra(staging, manifest)
        _replace_dir(staging, outdir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Design(outdir, top_name, outdir / "rtl" / f"{top_name}.v", manifest)


def load_manifest(outdir: Path) -> dict[str, Any]:
    path = Path(outdir) / "manifest.json"
    if not path.is_file():
        raise RtlgenError(f"{outdir}: no manifest.json (not a design written by 'rtlgen convert')")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise RtlgenError(f"{path}: malformed manifest ({exc})") from None
