"""Conversion time per non-zero multiplier (issue 20 "Conversion time", issue 18 "Generation
time"): `rtlgen convert`'s own path, phase by phase, on generated models of several sizes.

    python benchmarks/bench_convert_speed.py            # all but the largest -> results/convert_speed.json
    python benchmarks/bench_convert_speed.py --large    # also mlp_75k, mlp_300k
    python benchmarks/bench_convert_speed.py mlp_1k     # one case (printed, JSON not written)
    python benchmarks/bench_convert_speed.py --merge mlp_75k   # one case, into the JSON
    python benchmarks/bench_convert_speed.py --profile mlp_20k   # cProfile top 40 (cumulative)
    python benchmarks/bench_convert_speed.py --jobs 1 mlp_5k     # one process, back end split
    python benchmarks/bench_convert_speed.py --mac amaranth mlp_5k   # MAC arrays through Amaranth
    python benchmarks/bench_convert_speed.py --repeat 5 mlp_1k   # least-CPU run of 5 (noisy load)

Models are written as Keras 2 HDF5 files with h5py (no TensorFlow): dense QKeras MLPs of
6-8-bit weights from ~1 k to ~300 k non-zero products, a float MLP (16-bit weights by the
default precision), the 16-500x5-5 QKeras MLP whose hidden weights all quantize to zero,
and a small QKeras conv net. Each case runs in a fresh process (peak memory is the larger
max RSS of that process and of its largest worker) through `rtlgen.api.load_model` and
`rtlgen.emit.convert`, the functions the CLI calls. Wall seconds depend on the machine's
load (2 cores shared by several users here): CPU seconds are recorded beside them, user +
system of the measuring process (which runs Yosys in itself, `rtlgen.inprocess_yosys`) and
of its finished children (`RUSAGE_CHILDREN`: the layer workers, reaped when their pool
closes, and any Yosys subprocess), from loading the model to the written folder (imports
of `rtlgen.api`/`rtlgen.emit` before, model writing not counted). Other users' load
inflates CPU seconds too (shared cores): ``--repeat N`` keeps the least of N runs. Phases,
by wrapping the functions `convert` calls:

- front_end: reading the model file (`rtlgen.frontend.read_model`);
- passes: fold/fuse/precision (`rtlgen.passes.lower`);
- plan: `plan_network` (each layer's plan, including the MAC arrays' adder-graph plans);
- back_end: `rtlgen.emit.network_verilog` (every component's `elaborate`, Amaranth's
  netlist and RTLIL, Yosys' `write_verilog`; layers in parallel worker processes). With
  ``--jobs 1`` it is split into elaboration (`Fragment.get`), rtlil
  (`amaranth.back.rtlil` netlist + text) and verilog (Yosys);
- write: manifest, timing model, graph.npz, REPORT.md, the folder commit (the rest).

``--mac text`` (default, as `rtlgen convert`) writes the constant MAC arrays as Verilog text
from their plans (`rtlgen.layers.mac_verilog`; its time is the ``mac_text`` phase, inside
back_end); ``--mac amaranth`` converts them through Amaranth's back end as before. Rows carry
``mac``; ``--merge`` replaces the rows of the same case and ``mac``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

RESULTS = Path(__file__).parent / "results"

# --------------------------------------------------------------------------------------
# model files (Keras 2 HDF5 layout, written with h5py)


def _entry(class_name: str, config: dict, module: str = "keras.layers") -> dict:
    return {"module": module, "class_name": class_name, "config": config, "registered_name": None}


def _config(layers: list[dict], input_shape: tuple[int, ...], name: str) -> dict:
    first = _entry(
        "InputLayer",
        {"batch_input_shape": [None, *input_shape], "dtype": "float32", "name": "input_1"},
    )
    return {
        "class_name": "Sequential",
        "config": {"name": name, "layers": [first, *layers]},
        "keras_version": "2.15.0",
        "backend": "tensorflow",
    }


def _write_h5(path: Path, config: dict, weights: dict[str, dict[str, np.ndarray]]) -> Path:
    def names(items: list[str]) -> np.ndarray:
        return np.array([n.encode() for n in items], dtype="S") if items else np.zeros(0)

    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(config).encode()
        f.attrs["keras_version"] = b"2.15.0"
        root = f.create_group("model_weights")
        root.attrs["layer_names"] = names(list(weights))
        root.attrs["backend"] = b"tensorflow"
        root.attrs["keras_version"] = b"2.15.0"
        for layer, named in weights.items():
            group = root.create_group(layer)
            full = [f"{layer}/{short}:0" for short in named]
            group.attrs["weight_names"] = names(full)
            for key, value in zip(full, named.values(), strict=True):
                group.create_dataset(key, data=np.asarray(value, dtype=np.float32))
    return path


def _quantized(bits: int, integer: int = 0) -> dict:
    return {"class_name": "quantized_bits", "config": {"bits": bits, "integer": integer, "alpha": 1}}


def _grid_weights(rng, shape, bits: int, integer: int = 0, zero_fraction: float = 0.0):
    """Random weights exactly on the ``quantized_bits(bits, integer)`` grid (so QKeras and
    rtlgen agree on them), a fraction of them zero."""
    frac = bits - 1 - integer
    top = 2 ** (bits - 1) - 1
    w = rng.integers(-top, top + 1, size=shape) / 2.0**frac
    if zero_fraction:
        w[rng.random(shape) < zero_fraction] = 0.0
    return w


def qkeras_mlp(path: Path, widths: list[int], bits: int, seed: int, name: str,
               zero_fraction: float = 0.0) -> Path:
    """QDense layers (``bits``-bit weights, 8-bit biases), quantized_relu(8, 3) between."""
    rng = np.random.default_rng(seed)
    layers, weights = [], {}
    for k, (n_in, n_out) in enumerate(zip(widths, widths[1:], strict=False)):
        last = k == len(widths) - 2
        layer = f"d{k}"
        layers.append(_entry("QDense", {
            "name": layer, "units": n_out, "use_bias": True,
            "activation": "linear" if last else "quantized_relu(8,3)",
            "kernel_quantizer": _quantized(bits), "bias_quantizer": _quantized(8, 2),
        }, module="qkeras.qlayers"))
        weights[layer] = {
            "kernel": _grid_weights(rng, (n_in, n_out), bits, zero_fraction=zero_fraction),
            "bias": _grid_weights(rng, (n_out,), 8, 2),
        }
    return _write_h5(path, _config(layers, (widths[0],), name), weights)


def float_mlp(path: Path, widths: list[int], seed: int, name: str) -> Path:
    """Plain Keras Dense layers with float weights (16-bit weights by default precision)."""
    rng = np.random.default_rng(seed)
    layers, weights = [], {}
    for k, (n_in, n_out) in enumerate(zip(widths, widths[1:], strict=False)):
        last = k == len(widths) - 2
        layer = f"d{k}"
        layers.append(_entry("Dense", {"name": layer, "units": n_out, "use_bias": True,
                                       "activation": "linear" if last else "relu"}))
        weights[layer] = {
            "kernel": rng.normal(0, 1 / np.sqrt(n_in), (n_in, n_out)),
            "bias": rng.normal(0, 0.1, n_out),
        }
    return _write_h5(path, _config(layers, (widths[0],), name), weights)


def zero_hidden_mlp(path: Path, seed: int) -> Path:
    """16-500x5-5 QKeras MLP whose hidden layers' weights all quantize to zero (tiny floats
    under a 6-bit quantizer), as the public model that took 92 s."""
    rng = np.random.default_rng(seed)
    widths = [16, 500, 500, 500, 500, 500, 5]
    layers, weights = [], {}
    for k, (n_in, n_out) in enumerate(zip(widths, widths[1:], strict=False)):
        last = k == len(widths) - 2
        hidden = 0 < k < len(widths) - 2
        layer = f"d{k}"
        layers.append(_entry("QDense", {
            "name": layer, "units": n_out, "use_bias": True,
            "activation": "linear" if last else "quantized_relu(8,3)",
            "kernel_quantizer": _quantized(6), "bias_quantizer": _quantized(8, 2),
        }, module="qkeras.qlayers"))
        kernel = (rng.normal(0, 1e-4, (n_in, n_out)) if hidden
                  else _grid_weights(rng, (n_in, n_out), 6))
        weights[layer] = {"kernel": kernel, "bias": _grid_weights(rng, (n_out,), 8, 2)}
    return _write_h5(path, _config(layers, (16,), "zero_hidden"), weights)


def qkeras_cnn(path: Path, seed: int) -> Path:
    """16x16x3 -> QConv2D 3x3x8 -> MaxPool -> QConv2D 3x3x16 -> MaxPool -> Flatten (64)
    -> QDense 10."""
    rng = np.random.default_rng(seed)
    layers = [
        _entry("QConv2D", {"name": "c1", "filters": 8, "kernel_size": [3, 3], "strides": [1, 1],
                           "padding": "valid", "use_bias": True,
                           "activation": "quantized_relu(8,3)",
                           "kernel_quantizer": _quantized(6), "bias_quantizer": _quantized(8, 2)},
               module="qkeras.qconvolutional"),
        _entry("MaxPooling2D", {"name": "p1", "pool_size": [2, 2], "strides": [2, 2],
                                "padding": "valid"}),
        _entry("QConv2D", {"name": "c2", "filters": 16, "kernel_size": [3, 3], "strides": [1, 1],
                           "padding": "valid", "use_bias": True,
                           "activation": "quantized_relu(8,3)",
                           "kernel_quantizer": _quantized(6), "bias_quantizer": _quantized(8, 2)},
               module="qkeras.qconvolutional"),
        _entry("MaxPooling2D", {"name": "p2", "pool_size": [2, 2], "strides": [2, 2],
                                "padding": "valid"}),
        _entry("Flatten", {"name": "flat"}),
        _entry("QDense", {"name": "d", "units": 10, "use_bias": True, "activation": "linear",
                          "kernel_quantizer": _quantized(6), "bias_quantizer": _quantized(8, 2)},
               module="qkeras.qlayers"),
    ]
    weights = {
        "c1": {"kernel": _grid_weights(rng, (3, 3, 3, 8), 6), "bias": _grid_weights(rng, (8,), 8, 2)},
        "p1": {},
        "c2": {"kernel": _grid_weights(rng, (3, 3, 8, 16), 6),
               "bias": _grid_weights(rng, (16,), 8, 2)},
        "p2": {},
        "flat": {},
        "d": {"kernel": _grid_weights(rng, (64, 10), 6), "bias": _grid_weights(rng, (10,), 8, 2)},
    }
    return _write_h5(path, _config(layers, (16, 16, 3), "cnn"), weights)


#: name -> (writer(path) -> path, options for HardwareOptions as strings)
CASES = {
    "mlp_1k": lambda p: qkeras_mlp(p, [16, 32, 16, 5], 8, 1, "mlp_1k"),
    "mlp_5k": lambda p: qkeras_mlp(p, [32, 64, 32, 32, 5], 7, 2, "mlp_5k"),
    "mlp_20k": lambda p: qkeras_mlp(p, [64, 128, 64, 64, 10], 6, 3, "mlp_20k"),
    "mlp_75k": lambda p: qkeras_mlp(p, [128, 256, 128, 64, 10], 6, 4, "mlp_75k"),
    "mlp_300k": lambda p: qkeras_mlp(p, [784, 320, 128, 10], 6, 5, "mlp_300k", 0.05),
    "float_mlp_4k": lambda p: float_mlp(p, [16, 64, 32, 32, 5], 6, "float_mlp_4k"),
    "zero_hidden_16_500x5_5": lambda p: zero_hidden_mlp(p, 7),
    "cnn_small": lambda p: qkeras_cnn(p, 8),
    # written by TensorFlow (benchmarks/float_resnet.py): 16-bit weights, ~77 k multipliers
    "float_resnet_v1": lambda p: _float_resnet(p),
}

#: run only when named (or with --large): minutes to hours at today's speed
LARGE = ("mlp_75k", "mlp_300k", "float_resnet_v1")


def _float_resnet(path: Path) -> Path:
    sys.path.insert(0, str(Path(__file__).parent))
    from float_resnet import float_resnet

    return float_resnet(path)

# --------------------------------------------------------------------------------------
# one measurement


class _Phases:
    """Wall time spent inside wrapped functions, by phase (outermost call only)."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._depth: dict[str, int] = {}

    def wrap(self, owner, attribute: str, phase: str) -> None:
        original = getattr(owner, attribute)

        def timed(*args, **kwargs):
            depth = self._depth.get(phase, 0)
            self._depth[phase] = depth + 1
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self._depth[phase] = depth
                if depth == 0:
                    elapsed = time.perf_counter() - start
                    self.seconds[phase] = self.seconds.get(phase, 0.0) + elapsed

        setattr(owner, attribute, timed)


def _instrument() -> _Phases:
    import amaranth.back.rtlil as rtlil
    import amaranth.back.verilog as verilog
    from amaranth.hdl import _ir

    import rtlgen.api as api
    import rtlgen.emit as emit
    import rtlgen.frontend as frontend
    import rtlgen.hardware as hardware
    import rtlgen.layers.mac_verilog as mac_verilog

    phases = _Phases()
    phases.wrap(frontend, "read_model", "front_end")
    phases.wrap(api, "lower", "passes")
    phases.wrap(hardware, "plan_network", "plan")
    phases.wrap(emit, "network_verilog", "back_end")
    phases.wrap(_ir.Fragment, "get", "elaboration")
    phases.wrap(rtlil, "convert_fragment", "rtlil")
    phases.wrap(verilog, "_convert_rtlil_text", "verilog")
    phases.wrap(mac_verilog._Writer, "text", "mac_text")
    return phases


def measure(name: str, profile: bool = False, jobs: int | None = None, mac: str = "text") -> dict:
    phases = _instrument()
    load_before = os.getloadavg()[0]
    from rtlgen.api import load_model
    from rtlgen.emit import convert

    with tempfile.TemporaryDirectory() as tmp:
        model = CASES[name](Path(tmp) / f"{name}.h5")
        profiler = None
        if profile:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        start = time.perf_counter()
        cpu_start = _cpu_seconds()
        graph = load_model(model)
        design = convert(graph, Path(tmp) / "out", jobs=jobs, mac_text=mac == "text")
        seconds = time.perf_counter() - start
        cpu_seconds = _cpu_seconds() - cpu_start
        if profiler is not None:
            import pstats

            profiler.disable()
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
            pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
        verilog_bytes = design.verilog.stat().st_size
    totals = design.manifest.totals
    nonzero = totals.products_nonzero
    outer = ("front_end", "passes", "plan", "back_end")
    known = sum(phases.seconds.get(k, 0.0) for k in outer)
    phase_seconds = {k: round(v, 3) for k, v in phases.seconds.items()}
    if jobs != 1:  # the parts of the back end ran in the workers (only the top's here)
        for inner in ("elaboration", "rtlil", "verilog"):
            phase_seconds.pop(inner, None)
    phase_seconds["write"] = round(seconds - known, 3)
    from rtlgen.emit import default_jobs

    return {
        "case": name,
        "mac": mac,
        "jobs": default_jobs() if jobs is None else jobs,
        "seconds": round(seconds, 3),
        "cpu_seconds": round(cpu_seconds, 3),
        "products_nonzero": nonzero,
        "multipliers": totals.multipliers,
        "adders": totals.adders,
        "ms_per_nonzero_product": round(1000 * seconds / nonzero, 3) if nonzero else None,
        "cpu_ms_per_nonzero_product": round(1000 * cpu_seconds / nonzero, 3) if nonzero else None,
        # a conv's multipliers serve every window: per multiplier built is the cost measure
        "ms_per_multiplier": _per(seconds, totals.multipliers),
        "cpu_ms_per_multiplier": _per(cpu_seconds, totals.multipliers),
        "peak_rss_mb": round(
            max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF,
                                                              resource.RUSAGE_CHILDREN)) / 1024,
            1,
        ),
        "verilog_bytes": verilog_bytes,
        "phases_seconds": phase_seconds,
        # 1-minute load average before and after: wall seconds are only comparable at
        # equal load on this shared 2-core machine; CPU seconds much less so
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "layers_built": len(design.manifest.layers),
    }


def _per(seconds: float, count: int) -> float | None:
    return round(1000 * seconds / count, 3) if count else None


def _cpu_seconds() -> float:
    """User + system CPU of this process and its finished children (the workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _measure_in_child(name: str, jobs: int | None, mac: str, queue) -> None:
    queue.put(measure(name, jobs=jobs, mac=mac))


def measure_isolated(name: str, jobs: int | None = None, mac: str = "text") -> dict:
    """`measure` in a fresh process: its own peak memory, no warm caches."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_measure_in_child, args=(name, jobs, mac, queue))
    child.start()
    while True:
        try:
            row = queue.get(timeout=5)
            break
        except Exception:  # queue.Empty: is the child still there?
            if not child.is_alive():
                raise RuntimeError(f"case {name}: the measuring process died") from None
    child.join()
    return row


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="*", choices=[*CASES, []], help="default: all")
    parser.add_argument("--profile", action="store_true", help="cProfile one case")
    parser.add_argument("--jobs", type=int, default=None, help="worker processes (default: CPUs)")
    parser.add_argument("--large", action="store_true", help=f"also {', '.join(LARGE)}")
    parser.add_argument("--mac", choices=("text", "amaranth"), default="text",
                        help="MAC arrays as Verilog text from their plans (default) or "
                        "through Amaranth's back end")
    parser.add_argument("--repeat", type=int, default=1,
                        help="measure each case this many times (fresh processes) and keep the "
                        "run with the least CPU seconds, all runs' CPU seconds beside it "
                        "(other users' load inflates CPU seconds on this shared machine)")
    parser.add_argument("--merge", action="store_true",
                        help="write the named cases' rows into results/convert_speed.json "
                        "(replacing rows of the same case; the rest of the file kept)")
    args = parser.parse_args(argv)
    if args.profile:
        for name in args.cases:
            print(json.dumps(measure(name, profile=True, jobs=args.jobs, mac=args.mac), indent=2))
        return []
    rows = []
    default = [name for name in CASES if args.large or name not in LARGE]
    for name in args.cases or default:
        runs = [measure_isolated(name, args.jobs, args.mac) for _ in range(max(1, args.repeat))]
        row = min(runs, key=lambda run: run["cpu_seconds"])
        if len(runs) > 1:
            row["repeats"] = len(runs)
            row["cpu_seconds_runs"] = [run["cpu_seconds"] for run in runs]
        print(json.dumps(row), flush=True)
        rows.append(row)
    if args.cases and args.merge:
        path = RESULTS / "convert_speed.json"
        result = json.loads(path.read_text())
        named = {(row["case"], row["mac"]) for row in rows}
        result["cases"] = [
            r for r in result["cases"] if (r["case"], r.get("mac", "amaranth")) not in named
        ] + rows
        result.setdefault("merged", []).append(
            "python benchmarks/bench_convert_speed.py --merge "
            + ("" if args.jobs is None else f"--jobs {args.jobs} ")
            + ("" if args.mac == "text" else f"--mac {args.mac} ")
            + ("" if args.repeat <= 1 else f"--repeat {args.repeat} ")
            + " ".join(args.cases)
        )
        path.write_text(json.dumps(result, indent=2) + "\n")
    if not args.cases:
        RESULTS.mkdir(exist_ok=True)
        path = RESULTS / "convert_speed.json"
        history = []
        if path.exists():  # the previous run, in brief, for before/after comparisons
            old = json.loads(path.read_text())
            history = [*old.get("history", []), {
                "command": old.get("command"),
                "load_average_at_end": old.get("load_average_at_end"),
                "cases": [
                    {k: row.get(k) for k in ("case", "jobs", "seconds", "cpu_seconds",
                                             "products_nonzero", "cpu_ms_per_nonzero_product",
                                             "verilog_bytes")}
                    for row in old.get("cases", [])
                ],
            }]
        result = {
            "command": "python benchmarks/bench_convert_speed.py"
            + ("" if args.jobs is None else f" --jobs {args.jobs}")
            + ("" if args.mac == "text" else f" --mac {args.mac}")
            + ("" if args.repeat <= 1 else f" --repeat {args.repeat}")
            + (" --large" if args.large else ""),
            "load_average_at_end": [round(v, 2) for v in os.getloadavg()],
            "target_ms_per_nonzero_product": 0.5,
            "target_seconds_any_public_model": 60,
            "cases": rows,
            "history": history,
        }
        path.write_text(json.dumps(result, indent=2) + "\n")
    return rows


if __name__ == "__main__":
    sys.exit(main() and 0)
