"""HGQ2 per-weight widths against uniform widths (issue 16): the same 16-24-12-5 MLP, once
with its per-weight kernel widths and per-element input widths (``bench_perweight``), once
with one width per tensor, each the largest of the per-weight ones (``bench_uniform``: what a
uniform quantization needs to hold the same values), through the product's own path::

    rtlgen convert tests/data/hgq2/<model>.keras -o OUT --input-type 'fixed<16,6>' \
        --multiplier {auto,lut}
    rtlgen report OUT                       # Yosys synth_xilinx (xcup): LUTs, FFs, DSPs

``--multiplier auto`` puts wide constant products in DSPs; ``lut`` builds every one from
LUTs (shift-add), where a weight's width shows directly in the LUT count.

    python benchmarks/bench_hgq2.py         # writes benchmarks/results/hgq2.json

The models and HGQ2's outputs come from tests/data/make_hgq2_models.py (hgq2 0.2.0; the
widths are seeded random integers, as training would leave them, not trained). Both designs
are checked to predict exactly what HGQ2 predicts before they are measured. Yosys LUT counts
are estimates: compare the two under the same command, as a ratio.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from rtlgen import ir
from rtlgen.api import load_model, predict_outputs

ROOT = Path(__file__).parents[1]
DATA = ROOT / "tests" / "data" / "hgq2"
RESULTS = Path(__file__).parent / "results"
INPUT_TYPE = "fixed<16,6>"
MODELS = ("bench_perweight", "bench_uniform")
MULTIPLIERS = ("auto", "lut")


def _rtlgen(*args: object) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "rtlgen", *map(str, args)], capture_output=True, text=True
    )
    if run.returncode != 0:
        raise SystemExit(f"rtlgen {args[0]} failed: {run.stderr.strip()[-400:]}")


def _weight_bits(graph: ir.ModelGraph) -> dict:
    """Constant-multiplier widths: the bits each non-zero weight's mantissa needs (its own
    width, trailing zeros dropped) summed over the kernels, and the zero (pruned) weights."""
    bits = zeros = total = 0
    for node in graph.nodes:
        if isinstance(node, ir.Dense | ir.Conv) and isinstance(node.weights, ir.QTensor):
            m = node.weights.mantissa.ravel()
            total += m.size
            zeros += int(np.count_nonzero(m == 0))
            for value in m[m != 0]:
                v = abs(int(value))
                v >>= (v & -v).bit_length() - 1  # drop trailing zeros
                bits += v.bit_length() + 1  # + sign
    return {"weights": total, "zero_weights": zeros, "weight_bits": bits}


def measure(name: str, multiplier: str, tmp: Path) -> dict:
    expected = np.load(DATA / f"{name}_expected.npz")
    graph = load_model(DATA / f"{name}.keras", input_type=INPUT_TYPE)
    (y,) = predict_outputs(graph, expected["x"]).values()
    exact = bool(np.array_equal(y.reshape(expected["y"].shape), expected["y"]))
    out = tmp / f"{name}_{multiplier}"
    start = time.perf_counter()
    _rtlgen(
        "convert",
        DATA / f"{name}.keras",
        "-o",
        out,
        "--input-type",
        INPUT_TYPE,
        "--multiplier",
        multiplier,
    )
    convert_seconds = time.perf_counter() - start
    _rtlgen("report", out)
    manifest = json.loads((out / "manifest.json").read_text())
    synthesis = manifest["synthesis"]
    return {
        "model": name,
        "multiplier": multiplier,
        "predicts_exactly_as_hgq2": exact,
        **_weight_bits(graph),
        "products_nonzero": manifest["totals"]["products_nonzero"],
        "multipliers": manifest["totals"]["multipliers"],
        "adders": manifest["totals"]["adders"],
        "latency_cycles": manifest["latency_cycles"],
        "ii_cycles": manifest["ii_cycles"],
        "luts": synthesis["luts"],
        "ffs": synthesis["ffs"],
        "dsps": synthesis["dsps"],
        "lut_levels": synthesis.get("lut_levels"),
        "synthesis_family": synthesis["family"],
        "convert_seconds": round(convert_seconds, 1),
        "synthesis_seconds": synthesis.get("seconds"),
    }


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for multiplier in MULTIPLIERS:
            rows += [measure(name, multiplier, Path(tmp)) for name in MODELS]
    by_key = {(r["model"], r["multiplier"]): r for r in rows}
    ratios = {}
    for multiplier in MULTIPLIERS:
        per_weight, uniform = (by_key[(name, multiplier)] for name in MODELS)
        ratios[multiplier] = {
            key: round(per_weight[key] / uniform[key], 3)
            for key in ("luts", "ffs", "dsps", "weight_bits", "products_nonzero")
            if uniform[key]
        }
    result = {
        "benchmark": "hgq2 per-weight vs uniform widths",
        "command": "python benchmarks/bench_hgq2.py",
        "input_type": INPUT_TYPE,
        "models": rows,
        "per_weight_to_uniform": ratios,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "hgq2.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
