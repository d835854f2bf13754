"""Jet-tagging MLP benchmark: rtlgen's ConstantMatVec + Requantize chain vs da4ml.

The classic hls4ml/da4ml jet-tagging MLP 16 -> 64 -> 32 -> 32 -> 5: input fixed<16,6>,
weights and biases quantized_bits(6,0,alpha=1) (mantissas in [-32, 31], 5 fractional bits),
quantized_relu(6,0) (ufixed<6,0>: unsigned 6 bits, 6 fractional) after the hidden layers,
the last layer's exact accumulator as output. Weight sets: ``dense``/``pruned50`` RANDOM
(uniform mantissas, ~50 % zeroed in the pruned one); ``trained`` QKeras QAT on synthetic
16-feature data; ``tutorial`` the hls4ml tutorial's recipe (L1 1e-4, 75 % pruning), the
closest stand-in for the real trained model da4ml's 31,375 LUT / 5,970 FF / 0 DSP / 6 cycles
were measured on (not available here). The fair comparison is da4ml on the same weights
(``--da4ml-python``), which the table's last column gives.

Each variant is built, checked bit-exact against the integer reference in Amaranth's
simulator, converted to Verilog and synthesized with Yosys (`rtlgen.synth`, UltraScale+).

    python benchmarks/bench_jet_mlp.py                 # dense/pruned50 x lut/dsp, L=5 fused
    python benchmarks/bench_jet_mlp.py --quick         # dense, lut mode only
    python benchmarks/bench_jet_mlp.py --variants pruned50 --modes lut --levels 6 \
        --arrangement global                           # registers across layer boundaries
    python benchmarks/bench_jet_mlp.py --da4ml-python /path/to/venv/bin/python   # + da4ml
    python benchmarks/bench_jet_mlp.py --variants tutorial --modes lut --levels 8 \
        --arrangement global --da4ml-python ...          # 4 cycles, the tutorial model
    python benchmarks/bench_jet_mlp.py --report-only   # the table of results/jet_mlp.json

Results are merged into results/jet_mlp.json by configuration, so runs can be split.
Synthesis of one variant takes 7-30 minutes on 2 cores (YoWASP Yosys).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from amaranth.back import verilog
from amaranth.lib import wiring
from amaranth.sim import Simulator

from rtlgen.layers.constant_mac import ConstantMatVec
from rtlgen.layers.requantize import Requantize
from rtlgen.layers.stream_util import Chain
from rtlgen.quant.arith import accumulator_type, aligned_weights, apply_clamp
from rtlgen.quant.fixed import FixedType, requantize
from rtlgen.synth import synthesize

DA4ML = {"luts": 31375, "ffs": 5970, "dsps": 0, "latency": 6}
SIZES = (16, 64, 32, 32, 5)
IN_TYPE = FixedType(16, 10, True)  # fixed<16,6>
W_TYPE = FixedType(6, 5, True)  # quantized_bits(6,0,alpha=1)
RELU_TYPE = FixedType(6, 6, False)  # quantized_relu(6,0)
RESULTS = Path(__file__).parent / "results" / "jet_mlp.json"
ARRANGEMENTS = ("fused", "global", "registered")


@dataclass
class LayerSpec:
    weights: np.ndarray  # (K, O) mantissas of W_TYPE
    bias: np.ndarray  # (O,) mantissas of W_TYPE
    in_type: FixedType
    relu: bool  # ReLU + requantize to RELU_TYPE after the layer

    @property
    def acc_frac(self) -> int:
        return self.in_type.frac + W_TYPE.frac

    @property
    def aligned(self) -> tuple[np.ndarray, np.ndarray]:
        w = aligned_weights(self.weights, self.in_type, W_TYPE, self.acc_frac)
        return w, self.bias.astype(np.int64) << (self.acc_frac - W_TYPE.frac)

    @property
    def acc_type(self) -> FixedType:
        w, b = self.aligned
        return accumulator_type(w, b, self.in_type, self.acc_frac)


def make_layers(seed: int, sparsity: float) -> list[LayerSpec]:
    rng = np.random.default_rng(seed)
    layers = []
    in_type = IN_TYPE
    for k, (n_in, n_out) in enumerate(zip(SIZES, SIZES[1:], strict=False)):
        w = rng.integers(W_TYPE.min_int, W_TYPE.max_int + 1, size=(n_in, n_out))
        w[rng.random((n_in, n_out)) < sparsity] = 0
        b = rng.integers(W_TYPE.min_int, W_TYPE.max_int + 1, size=n_out)
        relu = k < len(SIZES) - 2
        layers.append(LayerSpec(w, b, in_type, relu))
        in_type = RELU_TYPE
    return layers


def trained_layers(
    seed: int, epochs: int = 30, recipe: str = "plain", save: Path | None = None
) -> tuple[list[LayerSpec], dict]:
    """Weights of a QKeras model of the same architecture trained (quantization-aware) on a
    synthetic stand-in for the jet data (16 features, 5 overlapping Gaussian classes with
    correlated features; the real hls4ml jet data cannot be downloaded here). Trained
    6-bit weights are small and peaked like the model da4ml reported on, unlike uniform
    random ones. Returns the layers and a description of the training.

    ``recipe``: ``plain`` (Adam, no regularization, no pruning) or ``tutorial``, the hls4ml
    tutorial's QKeras jet model (part 4): lecun_uniform kernels, L1(1e-4) kernel
    regularization and tfmot magnitude pruning at a constant 75 % sparsity. ``save``: also
    write the trained QKeras model (up to the logits) there as a Keras .h5 file."""
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf
    from qkeras import QActivation, QDense, quantized_bits

    rng = np.random.default_rng(seed)
    n, classes, features = 40000, 5, SIZES[0]
    means = rng.normal(0, 1.0, size=(classes, features))
    mixing = rng.normal(0, 1.0, size=(features, features)) / np.sqrt(features)
    labels = rng.integers(0, classes, size=n)
    x = (means[labels] + rng.normal(0, 2.2, size=(n, features))) @ mixing
    x = np.clip(x / np.abs(x).max() * 8, -32, 31.99)  # values well inside fixed<16,6>
    x = np.round(x * 2**IN_TYPE.frac) / 2**IN_TYPE.frac
    tf.keras.utils.set_random_seed(seed)
    q = "quantized_bits(6,0,alpha=1)"
    inputs = tf.keras.Input((features,))
    h = inputs
    if recipe not in ("plain", "tutorial"):
        raise ValueError(f"recipe must be 'plain' or 'tutorial', got {recipe!r}")
    tutorial = recipe == "tutorial"
    extra = (
        {"kernel_initializer": "lecun_uniform", "kernel_regularizer": tf.keras.regularizers.l1(1e-4)}
        if tutorial
        else {}
    )
    for k, width in enumerate(SIZES[1:]):
        h = QDense(width, kernel_quantizer=q, bias_quantizer=q, name=f"dense{k + 1}", **extra)(h)
        if k < len(SIZES) - 2:
            h = QActivation("quantized_relu(6,0)", name=f"relu{k + 1}")(h)
    split = n * 4 // 5
    if tutorial:
        # the tutorial's softmax head (train() takes probabilities); the hardware stops at
        # the logits, like hls4ml and da4ml
        model = tf.keras.Model(inputs, tf.keras.layers.Activation("softmax")(h))
        # the tutorial prunes with ConstantSparsity(0.75, begin_step=2000, frequency=100) over
        # its ~500 steps per epoch; the same proportions for this data set's 125 steps
        from rtlgen.quant.training import train

        train(
            model, x[:split], labels[:split], epochs=epochs, batch_size=256,
            prune_sparsity=0.75, prune_frequency=25, log=None, seed=seed,
        )
    else:
        model = tf.keras.Model(inputs, h)
        model.compile(
            tf.keras.optimizers.Adam(3e-3),
            tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        model.fit(x[:split], labels[:split], epochs=epochs, batch_size=256, verbose=0)
    _, accuracy = model.evaluate(x[split:], labels[split:], verbose=0)
    if save is not None:
        from rtlgen.quant.training import save_h5

        save_h5(tf.keras.Model(inputs, h, name=f"jet_mlp_{recipe}"), save)
    quantizer = quantized_bits(6, 0, alpha=1)
    layers = []
    in_type = IN_TYPE
    for k in range(len(SIZES) - 1):
        kernel, bias = model.get_layer(f"dense{k + 1}").get_weights()
        w = np.round(np.asarray(quantizer(kernel)) * 2**W_TYPE.frac).astype(np.int64)
        b = np.round(np.asarray(quantizer(bias)) * 2**W_TYPE.frac).astype(np.int64)
        layers.append(LayerSpec(w, b, in_type, relu=k < len(SIZES) - 2))
        in_type = RELU_TYPE
    weights = np.concatenate([layer.weights.ravel() for layer in layers])
    info = {
        "data": "synthetic: 5 Gaussian classes in 16 correlated features (not the jet data)",
        "recipe": recipe,
        "epochs": epochs,
        "test_accuracy": round(float(accuracy), 4),
        "zero_weights": round(float(np.mean(weights == 0)), 3),
        "mean_abs_mantissa": round(float(np.abs(weights).mean()), 2),
    }
    return layers, info


def reference(layers: list[LayerSpec], x: np.ndarray) -> np.ndarray:
    """The integer reference (quant.fixed / quant.arith), as `quant.reference._dense` does."""
    y = np.asarray(x, dtype=np.int64)
    for layer in layers:
        w, b = layer.aligned
        acc = y @ w + b
        y = requantize(apply_clamp(acc, 0, None), layer.acc_frac, RELU_TYPE) if layer.relu else acc
    return y


def build(
    layers: list[LayerSpec],
    multiplier: str,
    levels_per_stage: int,
    requant_latency: int,
    requant_levels: int,
    arrangement: str,
) -> tuple[Chain, list[dict]]:
    """The network as a chain; where the registers around each Requantize go:

    - ``registered``: accumulators registered; the Requantize has ``requant_latency``
      (0: combinational, charged to the next layer's first stage);
    - ``fused``: the ConstantMatVec leaves its output combinational (``output_levels``)
      and the Requantize registers the narrow result: at least one register per layer;
    - ``global``: combinational Requantize too, and the next layer's ``input_levels``
      continue the depth count: registers every ``levels_per_stage`` adder levels across
      layer boundaries (like da4ml's latency cutoff over the whole network).
    """
    if arrangement not in ARRANGEMENTS:
        raise ValueError(f"arrangement must be one of {ARRANGEMENTS}")
    stages: list[wiring.Component] = []
    info = []
    input_levels = 0
    for k, layer in enumerate(layers):
        w, b = layer.aligned
        acc_type = layer.acc_type
        comb_out = arrangement != "registered" and layer.relu
        output_levels = requant_levels if comb_out else None
        mac = ConstantMatVec(
            w,
            layer.in_type,
            acc_type,
            b,
            multiplier,
            levels_per_stage=levels_per_stage,
            input_levels=input_levels,
            output_levels=output_levels,
        )
        stages.append(mac)
        entry = {
            "layer": f"dense{k + 1}",
            "shape": list(layer.weights.shape),
            "nonzero_weights": mac.nonzero_weights,
            "multipliers": mac.multipliers,
            "dsp_multipliers": mac.dsp_multipliers,
            "adders": mac.adders,
            "acc_type": str(acc_type),
            "latency": mac.latency,
        }
        if layer.relu:
            rq = Requantize(
                w.shape[1],
                acc_type,
                RELU_TYPE,
                clamp_lo=0,
                in_ranges=mac.out_ranges,
                latency={"fused": 1, "global": 0}.get(arrangement, requant_latency),
            )
            stages.append(rq)
            entry["requantize_latency"] = rq.latency
            input_levels = 0
            if rq.latency == 0:
                input_levels = requant_levels + (mac.output_depth if comb_out else 0)
        info.append(entry)
    return Chain(stages), info


def simulate(chain: Chain, x: np.ndarray, seed: int = 0) -> tuple[np.ndarray, int]:
    """Outputs for inputs ``x`` under random valid/ready, and the latency seen at full rate."""
    rng = random.Random(seed)
    n = len(x)
    outputs: list[list[int]] = []
    first_out: list[int] = []

    async def source(ctx):
        for k, row in enumerate(x):
            while k > 0 and rng.random() < 0.3:
                ctx.set(chain.i.valid, 0)
                await ctx.tick()
            ctx.set(chain.i.payload, [int(v) for v in row])
            ctx.set(chain.i.valid, 1)
            await ctx.tick().until(chain.i.ready)
        ctx.set(chain.i.valid, 0)

    async def sink(ctx):
        cycle = 0
        while len(outputs) < n:
            ready = len(outputs) == 0 or rng.random() < 0.7
            ctx.set(chain.o.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(chain.o.valid, chain.o.payload)
            if valid and ready:
                if not outputs:
                    first_out.append(cycle)
                outputs.append([int(payload[j]) for j in range(len(payload))])
            cycle += 1

    sim = Simulator(chain)
    sim.add_clock(1e-8)
    sim.add_testbench(source)
    sim.add_testbench(sink)
    sim.run()
    return np.array(outputs), first_out[0]


def run_variant(name: str, layers: list[LayerSpec], multiplier: str, args, workdir: Path) -> dict:
    start = time.monotonic()
    chain, info = build(
        layers, multiplier, args.levels, args.requant_latency, args.requant_levels, args.arrangement
    )
    gen_seconds = time.monotonic() - start
    result: dict = {
        "variant": name,
        "multiplier": multiplier,
        "levels_per_stage": args.levels,
        "requant_levels": args.requant_levels,
        "arrangement": args.arrangement,
        "latency_cycles": chain.latency,
        "layers": info,
        "generate_seconds": round(gen_seconds, 1),
    }
    if args.check:
        rng = np.random.default_rng(7)
        x = rng.integers(IN_TYPE.min_int, IN_TYPE.max_int + 1, size=(args.check, SIZES[0]))
        x[0] = IN_TYPE.max_int
        x[1] = IN_TYPE.min_int
        got, seen_latency = simulate(chain, x)
        expected = reference(layers, x)
        result["bit_exact"] = bool(np.array_equal(got, expected))
        result["checked_vectors"] = int(len(x))
        result["simulated_latency"] = seen_latency
        if not result["bit_exact"]:
            print(f"{name}/{multiplier}: MISMATCH against the reference", file=sys.stderr)
    vpath = workdir / f"{name}_{multiplier}.v"
    chain2, _ = build(
        layers, multiplier, args.levels, args.requant_latency, args.requant_levels, args.arrangement
    )
    vpath.write_text(verilog.convert(chain2, name="top"))
    synth = synthesize(vpath, "top", "xcup")
    result["synthesis"] = synth.as_dict()
    result["vs_da4ml"] = {
        "lut_ratio": round(synth.luts / DA4ML["luts"], 3),
        "ff_ratio": round(synth.ffs / DA4ML["ffs"], 3),
        "latency_ratio": round(chain.latency / DA4ML["latency"], 3),
    }
    return result


def run_da4ml(
    name: str, layers: list[LayerSpec], python: str, workdir: Path, cutoff: float
) -> dict:
    """The same weights through da4ml (in its own environment), synthesized the same way."""
    weights = workdir / f"{name}_weights.npz"
    arrays = {f"w{k + 1}": layer.weights for k, layer in enumerate(layers)}
    arrays.update({f"b{k + 1}": layer.bias for k, layer in enumerate(layers)})
    np.savez(weights, **arrays)
    outdir = workdir / f"da4ml_{name}"
    script = Path(__file__).with_name("da4ml_jet_mlp.py")
    proc = subprocess.run(
        [python, str(script), str(weights), str(outdir), "--latency-cutoff", str(cutoff)],
        capture_output=True,
        text=True,
        check=True,
    )
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    metadata = json.loads((outdir / "metadata.json").read_text())
    # One file for Yosys; the unused lookup-table module reads a missing file: left out.
    sources = [Path(f) for f in info["files"] if not f.endswith(("lookup_table.v", "_wrapper.v"))]
    merged = workdir / f"da4ml_{name}.v"
    merged.write_text("\n".join(p.read_text() for p in sources))
    synth = synthesize(merged, info["top"], "xcup")
    return {
        "variant": name,
        "tool": "da4ml 0.6.0",
        "latency_cutoff": cutoff,
        "latency_cycles": metadata.get("latency"),
        "da4ml_cost_estimate": metadata.get("cost"),
        "da4ml_reg_bits": metadata.get("reg_bits"),
        "synthesis": synth.as_dict(),
    }


def _key(entry: dict) -> tuple:
    return (
        entry["variant"],
        entry.get("multiplier", "da4ml"),
        entry.get("levels_per_stage"),
        entry.get("arrangement", "fused" if entry.get("fused_requantize") else None),
        entry.get("latency_cutoff"),
        entry.get("requant_levels", 2) if "multiplier" in entry else None,
    )


def merge_report(path: Path, results: list[dict], peers: list[dict]) -> dict:
    """Write the results into ``path``, replacing entries of the same configuration and
    keeping the others (so variants can be run separately, e.g. in parallel)."""
    report = {
        "benchmark": "jet-tagging MLP 16-64-32-32-5, 6-bit weights/biases, ReLU 6-bit, input fixed<16,6>",
        "weights": "dense, pruned50: random uniform mantissas in [-32, 31] (pruned50: ~50 % zeros); "
        "trained: QKeras QAT on synthetic 16-feature 5-class data (see trained_layers)",
        "tool": "Yosys 0.70 synth_xilinx -flatten -family xcup -noiopad (YoWASP); "
        "LUT = LUT1..LUT6 + INV; lut_levels = LUTs in series between registers",
        "da4ml_reference": {**DA4ML, "note": "measured by da4ml on a real trained model"},
        "results": [],
        "da4ml_same_weights": [],
    }
    if path.exists():
        old = json.loads(path.read_text())
        report["results"] = old.get("results", [])
        report["da4ml_same_weights"] = old.get("da4ml_same_weights", [])
    for field, new in (("results", results), ("da4ml_same_weights", peers)):
        keys = {_key(e) for e in new}
        report[field] = [e for e in report[field] if _key(e) not in keys] + new
        report[field].sort(key=lambda e: tuple(str(v) for v in _key(e)))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    return report


def print_table(report: dict) -> None:
    print(
        f"{'variant':9s} {'design':28s} {'LUT':>7s} {'FF':>6s} {'DSP':>5s} {'cycles':>6s} "
        f"{'ltp':>4s} {'LUTlv':>5s} {'LUT/ref':>7s} {'FF/ref':>6s} {'LUT/da4ml':>9s}"
    )
    # da4ml on the same weights, per variant: the lowest-LUT run (the fair comparison)
    peer_luts: dict[str, int] = {}
    for e in report["da4ml_same_weights"]:
        luts = e["synthesis"]["luts"]
        peer_luts[e["variant"]] = min(luts, peer_luts.get(e["variant"], luts))
    print(
        f"{'trained':9s} {'da4ml (reported)':24s} {DA4ML['luts']:7d} {DA4ML['ffs']:6d} "
        f"{DA4ML['dsps']:5d} {DA4ML['latency']:6d}"
    )
    rows = [
        (
            e,
            f"rtlgen {e['multiplier']} L={e['levels_per_stage']} {e.get('arrangement', 'fused')}"
            + (f" rq={e['requant_levels']}" if e.get("requant_levels", 2) != 2 else ""),
        )
        for e in report["results"]
    ]
    rows += [(e, f"da4ml cutoff={e['latency_cutoff']:g}") for e in report["da4ml_same_weights"]]
    rows.sort(key=lambda row: (row[0]["variant"], row[1]))
    for e, label in rows:
        s = e["synthesis"]
        print(
            f"{e['variant']:9s} {label:28s} {s['luts']:7d} {s['ffs']:6d} {s['dsps']:5d} "
            f"{e['latency_cycles']:6d} {s['longest_path']:4d} {s['lut_levels']:5d} "
            f"{s['luts'] / DA4ML['luts']:7.2f} {s['ffs'] / DA4ML['ffs']:6.2f}"
            + (
                f" {s['luts'] / peer_luts[e['variant']]:9.3f}"
                if e.get("multiplier") and e["variant"] in peer_luts
                else ""
            )
        )
    print(
        "ref = da4ml's reported numbers on a trained model; rows 'da4ml cutoff=...' are da4ml "
        "0.6.0 on the same weights, synthesized by the same Yosys flow; LUT/da4ml = rtlgen's LUTs "
        "over da4ml's on the same weights (below 1: rtlgen smaller)."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="dense weights, lut mode only")
    parser.add_argument(
        "--variants",
        default="dense,pruned50",
        help="comma-separated: dense, pruned50 (random weights), trained (QAT on synthetic "
        "data), tutorial (QAT with the hls4ml tutorial's L1 + 75 %% pruning)",
    )
    parser.add_argument("--modes", default="lut,dsp", help="comma-separated multiplier modes")
    parser.add_argument("--levels", type=int, default=5, help="adders in series per pipeline stage")
    parser.add_argument(
        "--arrangement",
        choices=ARRANGEMENTS,
        default="fused",
        help="registers around Requantize (see build())",
    )
    parser.add_argument(
        "--requant-latency",
        type=int,
        default=1,
        choices=(0, 1, 2),
        help="Requantize latency with --arrangement registered",
    )
    parser.add_argument(
        "--requant-levels",
        type=int,
        default=2,
        help="adder levels charged to a Requantize sharing a stage",
    )
    parser.add_argument(
        "--check", type=int, default=24, help="vectors simulated for bit-exactness (0: skip)"
    )
    parser.add_argument("--seed", type=int, default=2025)
    parser.add_argument(
        "--da4ml-python",
        default=None,
        help="a Python with da4ml 0.6.0 installed: also build and synthesize "
        "da4ml's design of the same weights",
    )
    parser.add_argument("--da4ml-cutoff", type=float, default=5.0, help="da4ml latency_cutoff")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--report-only", action="store_true", help="print the table of --output")
    args = parser.parse_args(argv)
    if args.report_only:
        print_table(json.loads(args.output.read_text()))
        return 0

    sparsity = {"dense": 0.0, "pruned50": 0.5, "trained": None, "tutorial": None}
    names = ["dense"] if args.quick else args.variants.split(",")
    unknown = [name for name in names if name not in sparsity]
    if unknown:
        parser.error(f"--variants: unknown {unknown} (known: {', '.join(sparsity)})")
    variants = [(name, sparsity[name]) for name in names]
    modes = ["lut"] if args.quick else args.modes.split(",")
    results = []
    peers = []
    with tempfile.TemporaryDirectory(prefix="jet_mlp_") as tmp:
        for name, sparsity in variants:
            if sparsity is None:
                recipe = "tutorial" if name == "tutorial" else "plain"
                layers, training = trained_layers(args.seed, recipe=recipe)
                print(f"{name}: {training}", flush=True)
            else:
                layers, training = make_layers(args.seed, sparsity), None
            if args.da4ml_python:
                peer = run_da4ml(name, layers, args.da4ml_python, Path(tmp), args.da4ml_cutoff)
                peers.append(peer)
                s = peer["synthesis"]
                print(
                    f"{name:9s} da4ml LUT {s['luts']:6d} FF {s['ffs']:6d} DSP {s['dsps']:4d} "
                    f"latency {peer['latency_cycles']} ltp {s['longest_path']:3d} "
                    f"lut_levels {s['lut_levels']:2d}",
                    flush=True,
                )
            for mode in modes:
                t0 = time.monotonic()
                r = run_variant(name, layers, mode, args, Path(tmp))
                r["seconds"] = round(time.monotonic() - t0, 1)
                if training:
                    r["training"] = training
                results.append(r)
                s = r["synthesis"]
                print(
                    f"{name:9s} {mode:4s} LUT {s['luts']:6d} FF {s['ffs']:6d} DSP {s['dsps']:4d} "
                    f"latency {r['latency_cycles']:2d} ltp {s['longest_path']:3d} "
                    f"lut_levels {s['lut_levels']:2d} exact {r.get('bit_exact')} ({r['seconds']} s)",
                    flush=True,
                )

    report = merge_report(args.output, results, peers)
    results, peers = report["results"], report["da4ml_same_weights"]

    print()
    print_table(report)
    print(f"wrote {args.output}")
    return 0 if all(r.get("bit_exact", True) for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
