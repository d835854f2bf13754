"""Peer design for bench_jet_mlp.py: the same jet MLP (same integer weights) built by alkaid.

alkaid (PyPI ``alkaid``, da4ml's successor) is not a dependency of rtlgen: it runs in its own
environment (``pip install alkaid==0.8.2``, Python >= 3.10, numpy 2), called by
``bench_jet_mlp.py --alkaid-python PY``:

    PY benchmarks/alkaid_jet_mlp.py WEIGHTS.npz OUTDIR [--latency-cutoff C] [--inputs X.npy]

Reads w1..wN / b1..bN (mantissas with 5 fractional bits: quantized_bits(6,0,alpha=1)) from
WEIGHTS.npz and traces with alkaid's NumPy-like API: input fixed<16,6> -> ``x @ W + b`` (its
CMVM solver: the adder graph) -> quantized_relu(6,0) as ``quantize(k=0, i=0, f=6, SAT,
RND_CONV)`` (clip(round-half-to-even), QKeras's arithmetic exactly) -> ... -> the last
layer's exact accumulator (the logits). ``RTLModel`` writes pipelined Verilog (top
``jet_mlp``; registers every ``latency_cutoff`` of its delay units) into OUTDIR. With
``--inputs``, alkaid's own interpreter (``CombLogic.predict``, the same arithmetic as its
RTL) computes the logits of those integer inputs (mantissas of fixed<16,6>) into
OUTDIR/predict.npy as mantissas of the logits (step 2**-out_frac, in the JSON: the last
layer's input step times the weights' step, as in rtlgen's reference). Prints one JSON line: {"top", "latency", "files", "cost", "reg_bits", ...}.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from alkaid.codegen import RTLModel
from alkaid.trace import FVArrayInput, HWConfig, trace
from alkaid.trace.ops import quantize

IN_FRAC = 10  # fixed<16,6>: sign + 5 integer + 10 fractional bits
W_FRAC = 5  # quantized_bits(6,0): 5 fractional bits
RELU_FRAC = 6  # quantized_relu(6,0): ufixed<6,0>


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("weights", type=Path)
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--latency-cutoff", type=float, default=5.0)
    parser.add_argument(
        "--hard-dc", type=int, default=5, help="CMVM delay constraint (alkaid convert's default 5)"
    )
    parser.add_argument(
        "--round-mode",
        default="RND_CONV",
        choices=("RND_CONV", "RND"),
        help="RND_CONV: half to even (QKeras); RND: half up (hls4ml's AP_RND)",
    )
    parser.add_argument("--inputs", type=Path, default=None, help="integer inputs .npy")
    parser.add_argument(
        "--input-kif",
        default=f"1,5,{IN_FRAC}",
        help="input type as sign,integer,fraction bits (ufixed<6,0>: 0,0,6)",
    )
    parser.add_argument(
        "--relu-last", action="store_true", help="the last layer is a hidden one (ReLU quantizer)"
    )
    parser.add_argument(
        "--argmax",
        action="store_true",
        help="one more output: the arg-max class of the logits (np.argmax, first on ties), "
        "as rtlgen's network top puts on tuser",
    )
    args = parser.parse_args()
    data = np.load(args.weights)
    n_layers = len([k for k in data.files if k.startswith("w")])

    started = time.perf_counter()
    # alkaid convert's defaults: HWConfig(adder_size=1, carry_size=1, latency_cutoff=-1)
    inp = FVArrayInput(
        (int(data["w1"].shape[0]),), hwconf=HWConfig(1, 1, -1), solver_options={"hard_dc": args.hard_dc}
    )
    in_k, in_i, in_f = (int(v) for v in args.input_kif.split(","))
    x = quantize(inp, in_k, in_i, in_f)
    for k in range(1, n_layers + 1):
        w = data[f"w{k}"].astype(np.float64) / 2**W_FRAC
        b = data[f"b{k}"].astype(np.float64) / 2**W_FRAC
        x = x @ w + b
        if k < n_layers or args.relu_last:
            x = quantize(x, 0, 0, RELU_FRAC, "SAT", args.round_mode)
    outputs = [*np.ravel(x), np.argmax(x)] if args.argmax else x
    logic = trace(inp, outputs)
    args.outdir.mkdir(parents=True, exist_ok=True)
    model = RTLModel(
        logic,
        args.outdir,
        "jet_mlp",
        flavor="verilog",
        latency_cutoff=args.latency_cutoff,
        print_latency=False,
    )
    model.write()
    seconds = time.perf_counter() - started
    # the logits' step: the last layer's input step * the weights' step (a hidden layer's
    # output: the ReLU quantizer's)
    out_frac = RELU_FRAC if args.relu_last else (in_f if n_layers == 1 else RELU_FRAC) + W_FRAC
    info = {
        "top": "jet_mlp",
        "latency": model.latency,
        "cost": float(logic.cost),
        "reg_bits": model.reg_bits,
        "generation_seconds": round(seconds, 2),
        "out_frac": out_frac,
        "settings": f"alkaid 0.8.2 trace API, HWConfig(1,1,-1), hard_dc {args.hard_dc}, "
        f"latency_cutoff {args.latency_cutoff:g}, relu quantize SAT {args.round_mode}"
        + (", + arg-max output" if args.argmax else ""),
        "files": sorted(
            str(p)
            for p in (args.outdir / "src").rglob("*.v")
            if not p.name.endswith(("_wrapper.v", "lookup_table.v"))
        ),
    }
    if args.inputs is not None:
        x_int = np.load(args.inputs).astype(np.float64)
        y = np.asarray(logic.predict(x_int / 2**in_f, n_threads=1)).reshape(len(x_int), -1)
        if args.argmax:
            y, classes = y[:, :-1], y[:, -1]
            np.save(args.outdir / "classes.npy", classes.astype(np.int64))
            info["classes"] = str(args.outdir / "classes.npy")
        mantissas = np.round(y * 2**out_frac)
        # every logit must sit on the grid (the reference's accumulator step)
        info["on_grid"] = bool(np.all(mantissas == y * 2**out_frac))
        np.save(args.outdir / "predict.npy", mantissas.astype(np.int64))
        info["predict"] = str(args.outdir / "predict.npy")
    print(json.dumps(info))


if __name__ == "__main__":
    main()
