"""One function per sweep step, and `run_step`, the Dask task around any of them.

A step function is ``(params, work, upstream) -> figures``: it reads its typed parameters,
writes its artifacts into the private folder ``work``, reads its upstream step's finished
store entry ``upstream`` (None for convert and predict), and returns a flat mapping of
figures for the results table. A user problem is an `RtlgenError`; `run_step` records it as
the step's one-line failure and the sweep goes on. Anything else is a bug (or a lost
worker): it propagates, and Dask retries the task a bounded number of times.
"""

from __future__ import annotations

import logging
import shutil
import socket
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rtlgen import __version__
from rtlgen.quant.errors import RtlgenError
from rtlgen.sweep.spec import (
    BuiltinModel,
    PnrOptions,
    SimOptions,
    Step,
    SynthOptions,
)
from rtlgen.sweep.store import Store, discard

DESIGN = "design"


# ---------------------------------------------------------------------------------------
# Parameters: exactly what each step reads (and so what its digest covers)
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelSource:
    """A model as a lowered graph: the files, and the input type (None: the config's).
    ``model`` None: the model the upstream train step wrote (`TRAINED_FILES`)."""

    model: Path | None
    weights: Path | None = None
    config: Path | None = None
    input_type: str | None = None


#: what a train step writes: the logits model (Keras JSON + weights), the precision config
#: of its input, and its test set (inputs and class labels)
TRAINED_FILES = {
    "model": "model.json",
    "weights": "model_weights.h5",
    "config": "precision.yml",
    "x_test": "x_test.npy",
    "y_test": "y_test.npy",
}
#: what a train step may also write: the Keras logits on the test inputs quantized to the
#: model's input type (the values the reference and the RTL get), for the Keras/reference
#: agreement of the predict step
KERAS_LOGITS = "keras_logits.npy"
#: predict's outputs (the reference's float values), sim's (the RTL's output mantissas)
OUTPUTS = "outputs.npy"
SIM_OUTPUTS = "sim_outputs.npy"


@dataclass(frozen=True)
class TrainParams:
    """One variant of a built-in model (`rtlgen.sweep.builtin`); None: the model's default."""

    model: BuiltinModel
    weight_bits: int | str | None = None  # svhn_cnn: "float", the float model (PTQ)
    activation_bits: int | None = None
    sparsity: float = 0.0
    data: str = ""  # where the training data comes from (part of the digest)
    layer_order: str | None = None  # svhn_cnn: bn_first | pool_first


@dataclass(frozen=True)
class ConvertParams:
    source: ModelSource
    multiplier: str = "auto"
    parallelism: str = "auto"
    pipeline: str = "balanced"
    adders_per_stage: int | None = None


@dataclass(frozen=True)
class PredictParams:
    source: ModelSource
    inputs: Path | None  # None: the trained model's test set
    labels: Path | None = None


@dataclass(frozen=True)
class SimParams:
    options: SimOptions
    inputs: Path | None = None
    labels: Path | None = None


@dataclass(frozen=True)
class PeerParams:
    """A peer step on the first ``images`` test inputs of the trained model; ``synth``: the
    family to synthesize alkaid's and rtlgen's dense-part designs for (None: no synthesis).
    ``tool``: the peer's installed version (or "not installed"), so installing it reruns."""

    images: int
    tool: str
    synth: str | None = None


# synth and pnr read nothing beyond their spec sections: those typed options are their params.
SynthParams = SynthOptions
PnrParams = PnrOptions


StepFunction = Callable[[Any, Path, Path | None], Mapping[str, Any]]


# ---------------------------------------------------------------------------------------
# The steps
# ---------------------------------------------------------------------------------------
def load_source(source: ModelSource, upstream: Path | None = None):
    """The lowered graph of a model file, or of the model the upstream train step wrote."""
    from rtlgen.api import load_model

    if source.model is None:
        trained = _required(upstream)
        config = trained / TRAINED_FILES["config"]
        return load_model(
            trained / TRAINED_FILES["model"],
            weights=trained / TRAINED_FILES["weights"],
            config=config if config.is_file() else None,
            input_type=source.input_type,
        )
    return load_model(
        source.model, weights=source.weights, config=source.config, input_type=source.input_type
    )


def train_step(params: TrainParams, work: Path, upstream: Path | None) -> dict[str, Any]:
    """Train a built-in model's variant; writes `TRAINED_FILES` into ``work``."""
    from rtlgen.sweep.builtin import train_builtin

    return train_builtin(params, work, upstream)


def convert_step(params: ConvertParams, work: Path, upstream: Path | None) -> dict[str, Any]:
    """Generate the design into ``work/design``; figures from its manifest."""
    from rtlgen.emit import convert
    from rtlgen.hardware import HardwareOptions, Multiplier, Parallelism, Pipeline

    options = HardwareOptions(
        multiplier=Multiplier(params.multiplier),
        parallelism=Parallelism(params.parallelism),
        pipeline=Pipeline(params.pipeline),
        adders_per_stage=params.adders_per_stage,
    )
    graph = load_source(params.source, upstream)
    origin = "option" if params.source.input_type is not None else "default"
    design = convert(graph, work / DESIGN, options, input_type_origin=origin)
    if upstream is not None:  # a trained model's test set goes with its designs (for sim)
        for name in ("x_test", "y_test"):
            shutil.copyfile(upstream / TRAINED_FILES[name], work / TRAINED_FILES[name])
    return design_figures(design.manifest)


def design_figures(manifest) -> dict[str, Any]:
    """A generated design's figures from its manifest (the sweep's convert step and the SVHN
    study's dense-part designs)."""
    import math

    return {
        "top": manifest.top,
        "latency_cycles": manifest.latency_cycles,
        "ii_cycles": manifest.ii_cycles,
        "multipliers": manifest.totals.multipliers,
        # a dense, fully parallel build: one multiplier per weight of one window
        "multipliers_dense": sum(
            (layer.products or 0) // math.prod(layer.out_shape[:-1]) for layer in manifest.layers
        ),
        "products_nonzero": manifest.totals.products_nonzero,
        "adders": manifest.totals.adders,
        "input_type": manifest.input.element.text,
        "generation_seconds": round(manifest.generator.seconds, 2),
    }


def predict_step(params: PredictParams, work: Path, upstream: Path | None) -> dict[str, Any]:
    """The bit-exact reference model on the inputs; accuracy against the labels if given."""
    from rtlgen.api import load_array
    from rtlgen.quant.reference import predict

    graph = load_source(params.source, upstream)
    inputs, labels = params.inputs, params.labels
    if inputs is None:
        inputs = _required(upstream) / TRAINED_FILES["x_test"]
        labels = _required(upstream) / TRAINED_FILES["y_test"]
    x = load_array(inputs, "input", sample_shape=tuple(graph.input_shape))
    y = predict(graph, x).reshape(len(x), -1)
    np.save(work / OUTPUTS, y)
    figures: dict[str, Any] = {"samples": len(x)}
    if labels is not None:
        figures["accuracy"] = accuracy(np.argmax(y, axis=1), load_labels(labels, len(x)))
    keras = None if upstream is None or params.inputs is not None else upstream / KERAS_LOGITS
    if keras is not None and keras.is_file():
        y_keras = load_array(keras, "Keras logits").reshape(len(x), -1)
        figures["keras_reference_argmax_agreement"] = accuracy(
            np.argmax(y_keras, axis=1), np.argmax(y, axis=1)
        )
        figures["keras_reference_max_abs_logit_difference"] = float(np.max(np.abs(y_keras - y)))
    return figures


def sim_step(params: SimParams, work: Path, upstream: Path | None) -> dict[str, Any]:
    """Verilator simulation of a copy of the upstream design (the store entry stays as it
    was written) on the first ``samples`` inputs, or on seeded random input words."""
    from rtlgen.api import load_array, load_model
    from rtlgen.quant.reference import quantize_input, run_int
    from rtlgen.sim_tb.runner import simulate
    from rtlgen.sim_tb.tb_run import environ

    design = copy_design(_required(upstream), work)
    graph = load_model(design)
    count = params.options.samples
    inputs, labels = params.inputs, params.labels
    if inputs is None and (_required(upstream) / TRAINED_FILES["x_test"]).is_file():
        inputs = _required(upstream) / TRAINED_FILES["x_test"]
        labels = _required(upstream) / TRAINED_FILES["y_test"]
    if inputs is not None:
        x = load_array(inputs, "input", sample_shape=tuple(graph.input_shape))[:count]
        x_int = quantize_input(graph, x)
    else:
        t = graph.input.out_type
        rng = np.random.default_rng(params.options.seed)
        x_int = rng.integers(t.min_int, t.max_int + 1, size=(count, *graph.input_shape))
    y_int = run_int(graph, x_int)
    env, build_root = _sim_build(params.options.fast_build)
    # cocotb's runner logs every Verilator/make command at INFO on the "Verilator" logger
    logging.getLogger("Verilator").setLevel(logging.WARNING)
    with environ(env):
        result = simulate(
            design,
            x_int,
            y_int,
            backpressure=params.options.backpressure,
            seed=params.options.seed,
            build_root=build_root,
        )
    if result.y_sim is not None:
        np.save(work / SIM_OUTPUTS, np.asarray(result.y_sim))
    figures: dict[str, Any] = {
        "sim_passed": result.passed,
        "sim_samples": result.images,
        "sim_mismatches": result.mismatches,
        "agreement": 1.0 - result.mismatches / result.images if result.images else None,
        "sim_latency_cycles": result.latency_cycles,
        "sim_ii_cycles": result.ii_cycles,
        "sim_report": result.report,
    }
    if labels is not None and inputs is not None and result.y_sim is not None:
        y_sim = np.asarray(result.y_sim).reshape(len(x_int), -1)
        expected = load_labels(labels, None)[: len(x_int)]
        figures["sim_accuracy"] = accuracy(np.argmax(y_sim, axis=1), expected)
    return figures


def _sim_build(fast: bool) -> tuple[dict[str, str], Path | None]:
    """The environment and build folder of a Verilator build: -O0 C++ (make reads
    assignments in MAKEFLAGS as command-line ones) in its own cache folder, so -O0 and the
    default -Os builds never mix (as the SVHN study builds)."""
    if not fast:
        return {}, None
    import os

    from rtlgen.sim_tb.runner import default_build_root

    flags = " ".join([os.environ.get("MAKEFLAGS", ""), "OPT_FAST=-O0"]).strip()
    return {"MAKEFLAGS": flags}, default_build_root().parent / "verilator-O0"


def synth_step(params: SynthParams, work: Path, upstream: Path | None) -> dict[str, Any]:
    """Yosys resources of the upstream design's Verilog (logs kept in ``work/synth``)."""
    from rtlgen.manifest import read_manifest

    manifest = read_manifest(design_dir(_required(upstream)))
    return synth_figures(manifest.rtl_paths[0], manifest.top, params.family, work / "synth")


def synth_figures(verilog: Path, top: str, family: str, keep_dir: Path | None) -> dict[str, Any]:
    """Yosys resources of ``top`` in ``verilog`` (`rtlgen.synth`; the synth step and the
    SVHN study's peer designs)."""
    from rtlgen.synth import synthesize

    result = synthesize(verilog, top, family=family, keep_dir=keep_dir)
    return {
        "luts": result.luts,
        "ffs": result.ffs,
        "dsps": result.dsps,
        "brams": result.brams,
        "carry": result.carry,
        "lut_levels": result.lut_levels,
        "longest_path": result.longest_path,
        "synth_family": result.family,
    }


def pnr_step(params: PnrParams, work: Path, upstream: Path | None) -> dict[str, Any]:
    """An ECP5 bitstream (Yosys + nextpnr) of a copy of the upstream design."""
    from rtlgen.boards import build_bitstream

    design = copy_design(_required(upstream), work)
    result = build_bitstream(design, board=params.board)
    used = result.utilization
    return {
        "fmax_mhz": round(result.fmax_mhz, 2),
        "pnr_board": result.board,
        "pnr_lut4": used.get("LUT4"),
        "pnr_ff": used.get("TRELLIS_FF"),
        "pnr_dsp": used.get("MULT18X18D"),
        "pnr_bram": used.get("DP16KD"),
    }


def hls4ml_step(params: PeerParams, work: Path, upstream: Path | None) -> dict[str, Any]:
    """hls4ml's C++ model of the trained model (rtlgen's types) on the first test inputs,
    against the reference; ``hls4ml_status`` "skipped: not installed" without hls4ml."""
    from rtlgen.study import hls4ml_peer

    return hls4ml_peer(_required(upstream), work, params.images)


def alkaid_step(params: PeerParams, work: Path, upstream: Path | None) -> dict[str, Any]:
    """alkaid on the trained model's dense part, and rtlgen's design of the same part;
    ``alkaid_status`` "skipped: not installed" without alkaid."""
    from rtlgen.study import alkaid_peer

    return alkaid_peer(_required(upstream), work, params.images, params.synth)


STEP_FUNCTIONS: Mapping[Step, StepFunction] = {
    Step.TRAIN: train_step,
    Step.CONVERT: convert_step,
    Step.PREDICT: predict_step,
    Step.SIM: sim_step,
    Step.SYNTH: synth_step,
    Step.PNR: pnr_step,
    Step.HLS4ML: hls4ml_step,
    Step.ALKAID: alkaid_step,
}


def _required(upstream: Path | None) -> Path:
    if upstream is None:
        raise ValueError("this step needs its upstream step's store entry")  # a planning bug
    return upstream


def design_dir(upstream: Path) -> Path:
    """The design folder of a convert entry; a symlink there (planted in OUT) is refused,
    so a step never reads a folder outside OUT."""
    design = upstream / DESIGN
    if upstream.is_symlink() or design.is_symlink() or not design.is_dir():
        raise RtlgenError(f"{design} is not the design folder the convert step wrote")
    return design


def copy_design(upstream: Path, work: Path) -> Path:
    """``upstream/design`` copied into ``work/design`` (symlinks copied as links, never
    followed: a design folder holds none that rtlgen wrote)."""
    target = work / DESIGN
    shutil.copytree(design_dir(upstream), target, symlinks=True)
    return target


def load_labels(path: Path, count: int | None) -> np.ndarray:
    """Class indices (N,) from a .npy of indices or one-hot/score rows (N, classes)."""
    from rtlgen.api import load_array

    labels = load_array(path, "labels")
    if labels.ndim == 2:
        labels = np.argmax(labels, axis=1)
    elif labels.ndim != 1:
        raise RtlgenError(
            f"labels file {path} has shape {labels.shape}; expected (N,) class indices or (N, classes)"
        )
    if labels.dtype.kind == "f" and not np.all(labels == np.round(labels)):
        raise RtlgenError(f"labels file {path} holds non-integer class indices")
    if count is not None and len(labels) != count:
        raise RtlgenError(f"labels file {path} has {len(labels)} labels for {count} inputs")
    return labels.astype(np.int64)


def accuracy(predicted: np.ndarray, labels: np.ndarray) -> float:
    n = min(len(predicted), len(labels))
    return float(np.mean(predicted[:n] == labels[:n])) if n else 0.0


# ---------------------------------------------------------------------------------------
# The task
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StepTask:
    """One unique piece of work: a step, its digest, its parameters and where to store it."""

    step: Step
    digest: str
    params: Any
    function: StepFunction
    store_root: Path
    run_id: str
    upstream_digest: str | None = None
    upstream_step: Step | None = None
    quiet: bool = True  # library warnings hidden on the worker (the CLI's --debug shows them)

    @property
    def key(self) -> str:
        return f"rtlgen-{self.step}-{self.digest}"


@dataclass(frozen=True)
class StepOutcome:
    """What became of a step: ``ok`` (figures), ``failed`` (one-line ``reason``) or
    ``skipped`` (its upstream step failed). ``cached``: found in the store, not computed."""

    step: Step
    digest: str
    status: str
    figures: Mapping[str, Any] = field(default_factory=dict)
    reason: str | None = None
    seconds: float = 0.0
    cached: bool = False
    worker: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def outcome_from_result(task: StepTask, result: Mapping[str, Any]) -> StepOutcome:
    figures = result.get("figures")
    seconds = result.get("seconds")
    return StepOutcome(
        task.step,
        task.digest,
        "ok",
        figures=dict(figures) if isinstance(figures, Mapping) else {},
        seconds=float(seconds) if isinstance(seconds, int | float) else 0.0,
        cached=True,
    )


def run_step(task: StepTask, upstream: StepOutcome | None = None) -> StepOutcome:
    """Run one step on a worker: reuse its stored result, else compute and publish it."""
    store = Store(task.store_root)
    if upstream is not None and not upstream.ok:
        reason = (
            f"{upstream.step} failed" if upstream.status == "failed" else f"{upstream.step} skipped"
        )
        return StepOutcome(task.step, task.digest, "skipped", reason=reason)
    stored = store.result(task.step, task.digest)
    if stored is not None:  # done by an earlier attempt of this task (a retry) or another run
        return outcome_from_result(task, stored)
    upstream_entry = (
        None
        if task.upstream_step is None or task.upstream_digest is None
        else store.entry(task.upstream_step, task.upstream_digest)
    )
    started = time.perf_counter()
    try:
        if upstream_entry is not None and (
            upstream_entry.is_symlink() or upstream_entry.parent.is_symlink()
        ):
            raise RtlgenError(
                f"{upstream_entry} is not the store entry the {task.upstream_step} step wrote"
            )
        work = store.workspace(task.step, task.digest, task.run_id)
    except RtlgenError as exc:
        return _failed(task, exc, started)
    try:
        with warnings.catch_warnings():
            if task.quiet:
                warnings.simplefilter("ignore")
            figures = dict(task.function(task.params, work, upstream_entry))
    except RtlgenError as exc:
        discard(work)
        return _failed(task, exc, started)
    except BaseException:
        discard(work)
        raise
    seconds = time.perf_counter() - started
    store.publish(
        work,
        task.step,
        task.digest,
        {
            "step": str(task.step),
            "digest": task.digest,
            "upstream": task.upstream_digest,
            "figures": figures,
            "seconds": round(seconds, 3),
            "rtlgen": __version__,
        },
    )
    return StepOutcome(
        task.step, task.digest, "ok", figures=figures, seconds=seconds, worker=socket.gethostname()
    )


def _failed(task: StepTask, error: RtlgenError, started: float) -> StepOutcome:
    """A user problem met by a step: its one-line reason; nothing is stored."""
    return StepOutcome(
        task.step,
        task.digest,
        "failed",
        reason=" ".join(str(error).split()),
        seconds=time.perf_counter() - started,
        worker=socket.gethostname(),
    )
