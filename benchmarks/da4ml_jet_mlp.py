"""Peer design for bench_jet_mlp.py: the same jet MLP (same integer weights) built by da4ml.

Runs in a separate environment with da4ml installed (``pip install da4ml==0.6.0``; it is
not a dependency of rtlgen), called by ``bench_jet_mlp.py --da4ml-python PY``:

    PY benchmarks/da4ml_jet_mlp.py WEIGHTS.npz OUTDIR [--latency-cutoff C]

Reads w1..w4 (mantissas, 5 fractional bits) and b1..b4 from WEIGHTS.npz, traces input
fixed<16,6> -> Dense -> ReLU quantized to ufixed<6,0> (da4ml rounds half-up here, QKeras
half-to-even: the arithmetic differs on ties, the hardware cost does not) ... -> last
Dense, and writes pipelined Verilog with `RTLModel` into OUTDIR. Prints one JSON line:
{"top": ..., "latency": ..., "files": [...]}.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from da4ml.codegen import RTLModel
from da4ml.trace import FixedVariableArrayInput, comb_trace
from da4ml.trace.ops import quantize, relu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("weights", type=Path)
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--latency-cutoff", type=float, default=5.0)
    args = parser.parse_args()
    data = np.load(args.weights)
    n_layers = len([k for k in data.files if k.startswith("w")])

    inp = FixedVariableArrayInput((int(data["w1"].shape[0]),))
    x = quantize(inp, 1, 5, 10)  # fixed<16,6>: sign + 5 integer + 10 fractional bits
    for k in range(1, n_layers + 1):
        w = data[f"w{k}"].astype(np.float64) / 32
        b = data[f"b{k}"].astype(np.float64) / 32
        x = x @ w + b
        if k < n_layers:
            x = relu(x, i=np.zeros(x.shape, dtype=int), f=np.full(x.shape, 6), round_mode="RND")
            x = quantize(x, 0, 0, 6, "SAT", "RND")
    logic = comb_trace(inp, x)
    args.outdir.mkdir(parents=True, exist_ok=True)
    model = RTLModel(
        logic,
        "jet_mlp",
        args.outdir,
        flavor="verilog",
        latency_cutoff=args.latency_cutoff,
        print_latency=False,
    )
    model.write()
    files = sorted(str(p) for p in args.outdir.rglob("*.v") if "tb" not in p.name)
    latency = getattr(model, "latency", None)
    print(json.dumps({"top": "jet_mlp", "latency": latency, "files": files}))


if __name__ == "__main__":
    main()
