"""Jet-tagging MLP benchmark: rtlgen against alkaid (da4ml's successor) on the same weights.

The classic hls4ml/da4ml jet-tagging MLP 16 -> 64 -> 32 -> 32 -> 5: input fixed<16,6>,
weights and biases quantized_bits(6,0,alpha=1) (mantissas in [-32, 31], 5 fractional bits),
quantized_relu(6,0) (ufixed<6,0>: unsigned 6 bits, 6 fractional) after the hidden layers,
the last layer's exact accumulator as output. Weight sets: ``dense``/``pruned50`` RANDOM
(uniform mantissas, ~50 % zeroed in the pruned one); ``trained`` QKeras QAT on synthetic
16-feature data; ``tutorial`` the hls4ml tutorial's recipe (L1 1e-4, 75 % pruning), the
closest stand-in for the real trained model da4ml's 31,375 LUT / 5,970 FF / 0 DSP / 6 cycles
were measured on (not available here).

Two rtlgen paths: the benchmark's own chain of ConstantMatVec + Requantize (``--modes``;
checked bit-exact in Amaranth's simulator), and ``--cli``: the QKeras model written as a
Keras .h5 file and converted by ``rtlgen convert --multiplier lut --pipeline latency``
(the user's path, arg-max included), simulated bit-exact by ``rtlgen sim`` (Verilator,
random backpressure). The peer is alkaid 0.8.2 on the same integer weights
(``--alkaid-python``, builder benchmarks/alkaid_jet_mlp.py, its own venv), its ReLU
quantizer rounding half to even like QKeras (``--alkaid-round RND`` for half up), its
logits checked against the same integer reference. Everything is synthesized by one Yosys
command (`rtlgen.synth`, UltraScale+; the script is printed and stored in the JSON).
da4ml 0.6's rows in the JSON (``da4ml_same_weights``) are kept as history.

    python benchmarks/bench_jet_mlp.py                 # dense/pruned50 x lut/dsp, L=5 fused
    python benchmarks/bench_jet_mlp.py --quick         # dense, lut mode only
    python benchmarks/bench_jet_mlp.py --variants pruned50 --modes lut --levels 6 \
        --arrangement global                           # registers across layer boundaries
    python benchmarks/bench_jet_mlp.py --variants tutorial --modes none --cli 6 \
        --alkaid-python /work/venv-alkaid/bin/python --alkaid-cutoffs 6,8
                                                       # the issue-18 comparison
    python benchmarks/bench_jet_mlp.py --report-only   # the table of results/jet_mlp.json

Results are merged into results/jet_mlp.json by configuration, so runs can be split.
Synthesis of one variant takes 1-30 minutes on 2 cores (YoWASP Yosys).
"""

from __future__ import annotations

import argparse
import json
import random
import shlex
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
    synth = synth_entry(vpath, "top", workdir / f"{name}_{multiplier}_synth")
    result["synthesis"] = synth
    result["vs_da4ml"] = {
        "lut_ratio": round(synth["luts"] / DA4ML["luts"], 3),
        "ff_ratio": round(synth["ffs"] / DA4ML["ffs"], 3),
        "latency_ratio": round(chain.latency / DA4ML["latency"], 3),
    }
    return result


def test_inputs(n: int, seed: int = 7) -> np.ndarray:
    """``n`` integer input vectors (mantissas of IN_TYPE), the first two at the extremes."""
    rng = np.random.default_rng(seed)
    x = rng.integers(IN_TYPE.min_int, IN_TYPE.max_int + 1, size=(n, SIZES[0]))
    x[0] = IN_TYPE.max_int
    x[1] = IN_TYPE.min_int
    return x


def synth_entry(vpath: Path, top: str, keep: Path) -> dict:
    """`rtlgen.synth.synthesize` (UltraScale+), with the Yosys script it ran."""
    synth = synthesize(vpath, top, "xcup", keep_dir=keep)
    entry = synth.as_dict()
    script = keep / "synth.ys"
    if script.exists():
        entry["yosys_script"] = "; ".join(
            line for line in script.read_text().splitlines() if line.strip()
        )
    return entry


def run_alkaid(
    name: str,
    layers: list[LayerSpec],
    python: str,
    workdir: Path,
    cutoff: float,
    round_mode: str,
    check: int,
    argmax: bool = False,
) -> dict:
    """The same weights through alkaid (in its own environment), synthesized the same way;
    its interpreter's logits (the arithmetic of its RTL) compared with the reference.
    ``argmax``: also the arg-max class as an output (what rtlgen's top computes besides)."""
    weights = workdir / f"{name}_weights.npz"
    arrays = {f"w{k + 1}": layer.weights for k, layer in enumerate(layers)}
    arrays.update({f"b{k + 1}": layer.bias for k, layer in enumerate(layers)})
    np.savez(weights, **arrays)
    outdir = workdir / f"alkaid_{name}_c{cutoff:g}_{round_mode}{'_argmax' if argmax else ''}"
    x_int = test_inputs(check) if check else None
    extra = ["--argmax"] if argmax else []
    if x_int is not None:
        np.save(workdir / "alkaid_inputs.npy", x_int)
        extra += ["--inputs", str(workdir / "alkaid_inputs.npy")]
    info, merged = alkaid_build(python, weights, outdir, cutoff, round_mode, extra)
    result = {
        "variant": name,
        "tool": "alkaid 0.8.2",
        "latency_cutoff": cutoff,
        "round_mode": round_mode,
        "outputs": "logits + arg-max class" if argmax else "logits",
        "latency_cycles": info["latency"],
        "alkaid_cost_estimate": info["cost"],
        "alkaid_reg_bits": info["reg_bits"],
        "settings": info["settings"],
        "generation_seconds": info["generation_seconds"],
    }
    if x_int is not None:
        got = np.load(info["predict"])
        expected = reference(layers, x_int)
        rows_equal = np.all(got == expected, axis=1)
        if argmax:
            classes = np.load(info["classes"])
            result["argmax_equals_reference"] = bool(
                np.array_equal(classes, np.argmax(expected, axis=1))
            )
        result["bit_exact"] = bool(np.all(rows_equal))
        result["exact_vectors_rate"] = round(float(np.mean(rows_equal)), 4)
        result["checked_vectors"] = int(len(x_int))
        result["checked_with"] = "alkaid's interpreter (CombLogic.predict) vs the integer reference"
    result["synthesis"] = synth_entry(merged, info["top"], workdir / f"{outdir.name}_synth")
    return result


def alkaid_build(
    python: str, weights: Path, outdir: Path, cutoff: float, round_mode: str, extra: list[str]
) -> tuple[dict, Path]:
    """benchmarks/alkaid_jet_mlp.py in alkaid's environment: its JSON line and its Verilog
    merged into one file (the wrapper left out)."""
    script = Path(__file__).with_name("alkaid_jet_mlp.py")
    command = [
        python, str(script), str(weights), str(outdir),
        "--latency-cutoff", str(cutoff), "--round-mode", round_mode, *extra,
    ]
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"alkaid builder failed:\n{proc.stderr[-2000:]}")
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    merged = outdir.with_suffix(".v")
    merged.write_text("\n".join(Path(f).read_text() for f in info["files"]))
    return info, merged


def _kif(t: FixedType) -> str:
    return f"{int(t.signed)},{t.width - t.frac - int(t.signed)},{t.frac}"


def run_per_layer(name: str, layers: list[LayerSpec], args, workdir: Path) -> list[dict]:
    """Where the LUTs go: each layer alone (its input type, its ReLU quantizer; the last one
    to its exact accumulator) built by rtlgen's chain (lut, ``--levels``, fused: the layer's
    output registered) and by alkaid (the first ``--alkaid-cutoffs`` value, RND_CONV), the
    same Yosys command. Single layers cost a little more than inside a network (the input
    registers and the rtlgen stream handshake per design)."""
    cutoff = float(args.alkaid_cutoffs.split(",")[0])
    rows = []
    for k, layer in enumerate(layers):
        label = f"dense{k + 1}"
        chain, info = build([layer], "lut", args.levels, args.requant_latency, args.requant_levels, "fused")
        vpath = workdir / f"{name}_{label}_rtlgen.v"
        vpath.write_text(verilog.convert(chain, name="top"))
        ours = synth_entry(vpath, "top", workdir / f"{name}_{label}_rtlgen_synth")
        weights = workdir / f"{name}_{label}.npz"
        np.savez(weights, w1=layer.weights, b1=layer.bias)
        extra = ["--input-kif", _kif(layer.in_type)] + (["--relu-last"] if layer.relu else [])
        peer_info, merged = alkaid_build(
            args.alkaid_python, weights, workdir / f"{name}_{label}_alkaid", cutoff, "RND_CONV", extra
        )
        peer = synth_entry(merged, peer_info["top"], workdir / f"{name}_{label}_alkaid_synth")
        row = {
            "variant": name,
            "layer": label,
            "shape": list(layer.weights.shape),
            "nonzero_weights": int(np.count_nonzero(layer.weights)),
            "in_type": str(layer.in_type),
            "rtlgen_chain": {"levels_per_stage": args.levels, "latency_cycles": chain.latency,
                             "adders": info[0]["adders"], "synthesis": ours},
            "alkaid": {"latency_cutoff": cutoff, "latency_cycles": peer_info["latency"],
                       "cost_estimate": peer_info["cost"], "synthesis": peer},
            "lut_ratio": round(ours["luts"] / peer["luts"], 3),
        }
        rows.append(row)
        print(
            f"{name:9s} {label} alone: rtlgen LUT {ours['luts']:6d} FF {ours['ffs']:5d} | alkaid "
            f"LUT {peer['luts']:6d} FF {peer['ffs']:5d} | ratio {row['lut_ratio']}",
            flush=True,
        )
    return rows


def _run(command: list[str]) -> subprocess.CompletedProcess:
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(command)} failed:\n{proc.stderr[-2000:]}")
    return proc


def run_cli(
    name: str, model: Path, layers: list[LayerSpec], adders: int, check: int, workdir: Path
) -> dict:
    """The saved QKeras model through the CLI: ``rtlgen convert --multiplier lut --pipeline
    latency --adders-per-stage A``, ``rtlgen sim`` (Verilator) under random backpressure
    (bit-exact) and at full rate (latency), then the same Yosys command. The simulated
    logits are also compared with this benchmark's reference of ``layers`` (the same
    weights as the peer's)."""
    outdir = workdir / f"cli_{name}_a{adders}"
    rtlgen = [sys.executable, "-m", "rtlgen"]
    convert = [
        *rtlgen, "convert", str(model), "-o", str(outdir), "--multiplier", "lut",
        "--pipeline", "latency", "--adders-per-stage", str(adders),
    ]
    started = time.monotonic()
    proc = subprocess.run(convert, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"rtlgen convert failed:\n{proc.stderr[-2000:]}")
    convert_seconds = time.monotonic() - started
    manifest = json.loads((outdir / "manifest.json").read_text())
    result: dict = {
        "variant": name,
        "path": "rtlgen convert (CLI)",
        "adders_per_stage": adders,
        "command": " ".join(
            ["rtlgen", "convert", model.name, "-o", "OUT", *convert[convert.index("--multiplier"):]]
        ),
        "latency_cycles": manifest["latency_cycles"],
        "ii_cycles": manifest["ii_cycles"],
        "includes": "AXI4-Stream top, arg-max class on tuser (the logits on tdata)",
        "layers": [
            {k: layer.get(k) for k in ("name", "latency_cycles", "multipliers", "adders")}
            for layer in manifest.get("layers", [])
        ],
        "totals": manifest.get("totals"),
        "convert_seconds": round(convert_seconds, 1),
    }
    if check:
        x_int = test_inputs(check)
        x_path, y_path = workdir / "cli_inputs.npy", workdir / "cli_outputs.npy"
        np.save(x_path, x_int / 2**IN_TYPE.frac)
        checks = {}
        for label, backpressure in (("backpressure", "0.3"), ("full_rate", "0")):
            _run([*rtlgen, "sim", str(outdir), "-i", str(x_path), "-o", str(y_path),
                  "--backpressure", backpressure])
            sim = json.loads((outdir / "sim" / "sim_result.json").read_text())
            checks[label] = {
                k: sim.get(k) for k in ("passed", "images", "mismatches", "latency_cycles", "ii_cycles")
            }
        y = np.load(y_path)
        expected = reference(layers, x_int)
        out_frac = layers[-1].acc_frac
        result["bit_exact"] = bool(checks["backpressure"]["passed"] and checks["full_rate"]["passed"])
        result["simulated"] = checks
        result["simulated_latency"] = checks["full_rate"]["latency_cycles"]
        result["same_weights_as_peer"] = bool(np.array_equal(np.round(y * 2**out_frac), expected))
        result["checked_vectors"] = int(len(x_int))
    top = manifest["top"]
    result["synthesis"] = synth_entry(outdir / "rtl" / f"{top}.v", top, workdir / f"{outdir.name}_synth")
    return result


def _key(entry: dict) -> tuple:
    return (
        entry["variant"],
        entry.get("multiplier", "da4ml"),
        entry.get("levels_per_stage"),
        entry.get("arrangement", "fused" if entry.get("fused_requantize") else None),
        entry.get("latency_cutoff"),
        entry.get("requant_levels", 2) if "multiplier" in entry else None,
    )


def _peer_key(entry: dict) -> tuple:
    return (
        entry["variant"], entry["latency_cutoff"], entry["round_mode"], entry.get("outputs", "logits")
    )


def _cli_key(entry: dict) -> tuple:
    return (entry["variant"], entry["adders_per_stage"])


#: the sections of results/jet_mlp.json and how their entries are told apart
SECTIONS = {
    "results": _key,
    "cli": _cli_key,
    "alkaid_same_weights": _peer_key,
    "per_layer": lambda e: (e["variant"], e["layer"]),
    "da4ml_same_weights": _key,
}


def comparisons(report: dict) -> list[dict]:
    """Issue 18's figure per variant and rtlgen CLI design: LUT over alkaid's (half-to-even,
    bit-exact build) at the same or more cycles than rtlgen's (the fewest-LUT such run)."""
    out = []
    for cli, outputs in (
        (cli, outputs)
        for cli in report.get("cli", [])
        for outputs in ("logits + arg-max class", "logits")
    ):
        peers = [
            p
            for p in report.get("alkaid_same_weights", [])
            if p["variant"] == cli["variant"]
            and p["round_mode"] == "RND_CONV"
            and p.get("outputs", "logits") == outputs
            and p["latency_cycles"] >= cli["latency_cycles"]
        ]
        if not peers:
            continue
        peer = min(peers, key=lambda p: p["synthesis"]["luts"])
        s, ps = cli["synthesis"], peer["synthesis"]
        out.append(
            {
                "variant": cli["variant"],
                "rtlgen": f"{cli['command']} ({cli['latency_cycles']} cycles incl. arg-max)",
                "alkaid": f"latency_cutoff {peer['latency_cutoff']:g}, {peer['round_mode']}, "
                f"outputs {outputs} ({peer['latency_cycles']} cycles)",
                "same_outputs": outputs == "logits + arg-max class",
                "lut_ratio": round(s["luts"] / ps["luts"], 3),
                "ff_ratio": round(s["ffs"] / ps["ffs"], 3),
                "rtlgen_luts": s["luts"],
                "alkaid_luts": ps["luts"],
                "target_lut_ratio": 0.85,
                "target_met": s["luts"] <= 0.85 * ps["luts"]
                and s["dsps"] == 0
                and bool(cli.get("bit_exact")),
            }
        )
    return out


def merge_report(path: Path, new: dict[str, list[dict]], command: str) -> dict:
    """Write the results into ``path``, replacing entries of the same configuration and
    keeping the others (so variants can be run separately, e.g. in parallel)."""
    report = {
        "benchmark": "jet-tagging MLP 16-64-32-32-5, 6-bit weights/biases, ReLU 6-bit, input fixed<16,6>",
        "weights": "dense, pruned50: random uniform mantissas in [-32, 31] (pruned50: ~50 % zeros); "
        "trained: QKeras QAT on synthetic 16-feature 5-class data (see trained_layers); "
        "tutorial: the hls4ml tutorial's QKeras recipe (L1 1e-4, 75 % pruning) on the same data",
        "tool": "Yosys 0.70 synth_xilinx -flatten -family xcup -noiopad -noclkbuf (YoWASP), "
        "the script in each entry's synthesis.yosys_script (entries without one: rtlgen.synth "
        "of their session); LUT = LUT1..LUT6 + INV; lut_levels = LUTs in series between "
        "registers",
        "da4ml_reference": {**DA4ML, "note": "measured by da4ml on a real trained model"},
        "sections": {
            "results": "rtlgen, the benchmark's own ConstantMatVec + Requantize chain",
            "cli": "rtlgen convert on the saved QKeras model (the user's path), arg-max included",
            "alkaid_same_weights": "alkaid 0.8.2 on the same integer weights (the peer)",
            "da4ml_same_weights": "HISTORY: da4ml 0.6.0 on the same weights (sessions 3-7; "
            "benchmarks/da4ml_jet_mlp.py), kept as measured",
            "per_layer": "each layer alone: rtlgen's chain vs alkaid, where the LUTs go",
            "comparison": "issue 18: rtlgen convert vs alkaid (RND_CONV) at >= rtlgen's cycles",
        },
        "commands": [],
    }
    if path.exists():
        old = json.loads(path.read_text())
        for field in SECTIONS:
            report[field] = old.get(field, [])
        report["commands"] = old.get("commands", [])
    for field, key in SECTIONS.items():
        entries = new.get(field, [])
        keys = {key(e) for e in entries}
        for e in entries:
            e["bench_command"] = command
        report[field] = [e for e in report.get(field, []) if key(e) not in keys] + entries
        report[field].sort(key=lambda e: tuple(str(v) for v in key(e)))
    if any(new.values()):
        report["commands"] = [c for c in report["commands"] if c != command] + [command]
    report["comparison"] = comparisons(report)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    return report


def print_table(report: dict) -> None:
    print(
        f"{'variant':9s} {'design':34s} {'LUT':>7s} {'FF':>6s} {'DSP':>4s} {'cycles':>6s} "
        f"{'LUTlv':>5s} {'exact':>5s} {'LUT/alkaid':>10s}"
    )
    # alkaid on the same weights (bit-exact build), per variant: the fewest LUTs
    peer_luts: dict[str, int] = {}
    for e in report.get("alkaid_same_weights", []):
        if e["round_mode"] == "RND_CONV" and e.get("outputs", "logits") == "logits":
            luts = e["synthesis"]["luts"]
            peer_luts[e["variant"]] = min(luts, peer_luts.get(e["variant"], luts))
    rows = [
        (
            e,
            f"rtlgen chain {e['multiplier']} L={e['levels_per_stage']} {e.get('arrangement', 'fused')}"
            + (f" rq={e['requant_levels']}" if e.get("requant_levels", 2) != 2 else ""),
        )
        for e in report["results"]
    ]
    rows += [(e, f"rtlgen convert lut latency A={e['adders_per_stage']}") for e in report.get("cli", [])]
    rows += [
        (
            e,
            f"alkaid 0.8.2 cutoff={e['latency_cutoff']:g} {e['round_mode']}"
            + (" +argmax" if "arg-max" in e.get("outputs", "") else ""),
        )
        for e in report.get("alkaid_same_weights", [])
    ]
    rows += [
        (e, f"da4ml 0.6 cutoff={e['latency_cutoff']:g} (history)")
        for e in report.get("da4ml_same_weights", [])
    ]
    rows.sort(key=lambda row: (row[0]["variant"], row[1]))
    for e, label in rows:
        s = e["synthesis"]
        ours = label.startswith("rtlgen") and e["variant"] in peer_luts
        exact = e.get("bit_exact")
        print(
            f"{e['variant']:9s} {label:34s} {s['luts']:7d} {s['ffs']:6d} {s['dsps']:4d} "
            f"{e['latency_cycles']:6d} {s['lut_levels']:5d} {'-' if exact is None else str(exact):>5s}"
            + (f" {s['luts'] / peer_luts[e['variant']]:10.3f}" if ours else "")
        )
    print(
        "LUT/alkaid = LUTs over alkaid 0.8.2's fewest on the same weights (RND_CONV: QKeras's "
        "rounding, bit-exact); da4ml 0.6 rows are history; da4ml published "
        f"{DA4ML['luts']} LUT / {DA4ML['ffs']} FF / {DA4ML['latency']} cycles on the real model."
    )
    for e in report.get("per_layer", []):
        ours, peer = e["rtlgen_chain"]["synthesis"], e["alkaid"]["synthesis"]
        print(
            f"{e['variant']:9s} {e['layer']} alone ({e['nonzero_weights']} nonzero weights): "
            f"rtlgen chain {ours['luts']} LUT / {ours['ffs']} FF, alkaid {peer['luts']} LUT / "
            f"{peer['ffs']} FF, LUT ratio {e['lut_ratio']}"
        )
    for c in report.get("comparison", []):
        print(
            f"issue 18, {c['variant']}: {c['rtlgen']} vs alkaid {c['alkaid']}: LUT ratio "
            f"{c['lut_ratio']} (target <= {c['target_lut_ratio']}: "
            f"{'met' if c['target_met'] else 'NOT met'})"
        )


def print_row(label: str, result: dict, extra: str) -> None:
    """One progress row of a peer or CLI result (its synthesis figures) and its Yosys script."""
    s = result["synthesis"]
    print(
        f"{label} LUT {s['luts']:6d} FF {s['ffs']:6d} DSP {s['dsps']:4d} latency "
        f"{result['latency_cycles']} lut_levels {s['lut_levels']:2d} {extra}",
        flush=True,
    )
    print(f"  yosys: {s.get('yosys_script')}", flush=True)


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
    parser.add_argument(
        "--modes", default="lut,dsp", help="comma-separated multiplier modes of the chain ('none': skip)"
    )
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
        "--cli",
        default="",
        help="comma-separated --adders-per-stage values: also convert the trained variants' "
        "saved QKeras model with `rtlgen convert --multiplier lut --pipeline latency`",
    )
    parser.add_argument(
        "--cli-check", type=int, default=256, help="vectors `rtlgen sim` checks per CLI design"
    )
    parser.add_argument(
        "--alkaid-python",
        default=None,
        help="a Python with alkaid 0.8.2 installed: also build and synthesize "
        "alkaid's design of the same weights",
    )
    parser.add_argument(
        "--alkaid-cutoffs", default="5", help="comma-separated alkaid latency_cutoff values"
    )
    parser.add_argument(
        "--alkaid-round",
        default="RND_CONV",
        help="comma-separated alkaid ReLU rounding: RND_CONV (half to even, bit-exact), RND",
    )
    parser.add_argument(
        "--alkaid-argmax",
        default="no",
        choices=("no", "yes", "both"),
        help="alkaid's design also outputs the arg-max class (rtlgen's top always does)",
    )
    parser.add_argument(
        "--alkaid-check", type=int, default=1024, help="vectors alkaid's interpreter checks"
    )
    parser.add_argument(
        "--per-layer",
        action="store_true",
        help="also synthesize each layer alone in rtlgen's chain and in alkaid (needs --alkaid-python)",
    )
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
    cli_adders = [int(a) for a in args.cli.split(",") if a]
    if cli_adders and all(sparsity[name] is not None for name in names):
        parser.error("--cli converts a trained model: add --variants trained or tutorial")
    variants = [(name, sparsity[name]) for name in names]
    modes = ["lut"] if args.quick else [m for m in args.modes.split(",") if m not in ("", "none")]
    command = "python benchmarks/bench_jet_mlp.py " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)
    )
    new: dict[str, list[dict]] = {field: [] for field in SECTIONS}
    with tempfile.TemporaryDirectory(prefix="jet_mlp_") as tmp:
        workdir = Path(tmp)
        for name, sparsity in variants:
            model = None
            if sparsity is None:
                recipe = "tutorial" if name == "tutorial" else "plain"
                model = workdir / f"jet_mlp_{name}.h5"
                layers, training = trained_layers(args.seed, recipe=recipe, save=model)
                print(f"{name}: {training}", flush=True)
            else:
                layers, training = make_layers(args.seed, sparsity), None
            if args.alkaid_python:
                argmaxes = {"no": (False,), "yes": (True,), "both": (False, True)}[args.alkaid_argmax]
                for round_mode, cutoff, argmax in (
                    (r, float(c), a)
                    for r in args.alkaid_round.split(",")
                    for c in args.alkaid_cutoffs.split(",")
                    for a in argmaxes
                ):
                    peer = run_alkaid(
                        name, layers, args.alkaid_python, workdir, cutoff, round_mode,
                        args.alkaid_check, argmax,
                    )
                    new["alkaid_same_weights"].append(peer)
                    print_row(
                        f"{name:9s} alkaid c={cutoff:g} {round_mode:8s}{' +argmax' if argmax else ''}",
                        peer, f"exact {peer.get('bit_exact')}",
                    )
            if args.per_layer and args.alkaid_python:
                new["per_layer"] += run_per_layer(name, layers, args, workdir)
            if model is not None:
                for adders in cli_adders:
                    r = run_cli(name, model, layers, adders, args.cli_check, workdir)
                    if training:
                        r["training"] = training
                    new["cli"].append(r)
                    print_row(
                        f"{name:9s} convert A={adders}", r,
                        f"(simulated {r.get('simulated_latency')}) exact {r.get('bit_exact')} "
                        f"same weights as peer {r.get('same_weights_as_peer')}",
                    )
            for mode in modes:
                t0 = time.monotonic()
                r = run_variant(name, layers, mode, args, workdir)
                r["seconds"] = round(time.monotonic() - t0, 1)
                if training:
                    r["training"] = training
                new["results"].append(r)
                s = r["synthesis"]
                print(
                    f"{name:9s} {mode:4s} LUT {s['luts']:6d} FF {s['ffs']:6d} DSP {s['dsps']:4d} "
                    f"latency {r['latency_cycles']:2d} ltp {s['longest_path']:3d} "
                    f"lut_levels {s['lut_levels']:2d} exact {r.get('bit_exact')} ({r['seconds']} s)",
                    flush=True,
                )

    report = merge_report(args.output, new, command)
    print()
    print_table(report)
    print(f"wrote {args.output}")
    fresh = new["results"] + new["cli"]
    return 0 if all(r.get("bit_exact", True) for r in fresh) else 1


if __name__ == "__main__":
    sys.exit(main())
