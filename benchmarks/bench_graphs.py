"""Networks with branches and the new layer kinds (issue 14): generation time, latency, II,
multipliers and the join FIFOs' memory, through the product's own path (Keras file ->
`rtlgen.api.load_model` -> `rtlgen.emit.convert`).

    python benchmarks/bench_graphs.py      # writes benchmarks/results/graphs.json

FIFO memory is reported in bits and as the 18 Kb block RAMs it would take if every FIFO were
mapped to block RAM (an upper bound: Vivado keeps small FIFOs in LUT RAM or registers).
"""

from __future__ import annotations

import json
import math
import tempfile
import time
import warnings
from pathlib import Path

from graph_models import MODELS

from rtlgen.api import load_model
from rtlgen.emit import convert

RESULTS = Path(__file__).parent / "results"
BRAM18_BITS = 18 * 1024


def measure(name: str, tmp: Path) -> dict:
    model = MODELS[name]()
    path = tmp / f"{name}.h5"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save(path)
    start = time.perf_counter()
    graph = load_model(path, input_type="fixed<8,3>")
    design = convert(graph, tmp / name)
    seconds = time.perf_counter() - start
    m = design.manifest
    fifos = [f.as_json() for f in m.fifos]
    return {
        "model": name,
        "layers": len(m.layers),
        "joins": sum(1 for entry in m.layers if len(entry.inputs) > 1),
        "generation_seconds": round(seconds, 2),
        "latency_cycles": m.latency_cycles,
        "ii_cycles": m.ii_cycles,
        "multipliers": m.totals.multipliers,
        "products_nonzero": m.totals.products_nonzero,
        "fifos": fifos,
        "fifo_bits": sum(f["bits"] for f in fifos),
        "fifo_bram18_upper_bound": sum(math.ceil(f["bits"] / BRAM18_BITS) for f in fifos),
        "verilog_bytes": design.verilog.stat().st_size,
    }


def main() -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in MODELS:
            row = measure(name, Path(tmp))
            rows.append(row)
            print(
                f"{name}: {row['layers']} layers, {row['joins']} joins, generated in "
                f"{row['generation_seconds']} s; latency {row['latency_cycles']} cycles, II "
                f"{row['ii_cycles']}; {row['multipliers']} multipliers; FIFOs "
                f"{[(f['consumer'], f['depth'], f['bits']) for f in row['fifos']]} = "
                f"{row['fifo_bits']} bits (<= {row['fifo_bram18_upper_bound']} BRAM18)",
                flush=True,
            )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "graphs.json").write_text(json.dumps(rows, indent=2) + "\n")
    return rows


if __name__ == "__main__":
    main()
