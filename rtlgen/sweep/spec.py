"""The sweep spec: a YAML file parsed once, at the edge, into typed frozen dataclasses.

```yaml
model: model.json            # relative paths resolve against the spec's folder
weights: model_weights.h5
axes:
  multiplier: [dsp, lut]
  parallelism: [auto, full]
steps: [convert, predict]
cluster: {local: {workers: 2}}
```

Every problem is one `SpecError` line naming the key, what was found and what is supported.
The YAML is bounded (size, nesting, alias expansion) and so is the grid (points are counted
before any is made, so `axes` cannot ask for 10**20 points).
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from rtlgen.frontend.limits import read_yaml
from rtlgen.quant.errors import RtlgenError
from rtlgen.quant.fixed import FixedType

MAX_SPEC_BYTES = 1 << 20
MAX_SPEC_NODES = 100_000
MAX_SPEC_DEPTH = 16
#: points a sweep may run; a grid larger than this needs `sample: {random: N}`
MAX_POINTS = 100_000
#: points a grid may hold when sampled (the sample is drawn by index, never enumerated)
MAX_GRID = 10**18
MAX_AXIS_VALUES = 1000
MAX_WORKERS = 4096
MAX_SIM_SAMPLES = 1_000_000


class SpecError(RtlgenError):
    """A problem in a sweep spec (or the sweep options of the command line)."""


class Step(StrEnum):
    TRAIN = "train"
    CONVERT = "convert"
    PREDICT = "predict"
    SIM = "sim"
    SYNTH = "synth"
    PNR = "pnr"
    HLS4ML = "hls4ml"  # a peer: hls4ml's C++ model of the trained model, against the reference
    ALKAID = "alkaid"  # a peer: alkaid (da4ml's successor) on the dense part, against rtlgen's


#: each step's upstream step (the one whose artifacts it reads), None for a root step;
#: with a built-in model, convert and predict read the trained model (`upstream_of`)
UPSTREAM: Mapping[Step, Step | None] = {
    Step.TRAIN: None,
    Step.CONVERT: None,
    Step.PREDICT: None,
    Step.SIM: Step.CONVERT,
    Step.SYNTH: Step.CONVERT,
    Step.PNR: Step.CONVERT,
    Step.HLS4ML: None,
    Step.ALKAID: None,
}
#: steps that start from the trained Keras model (a built-in model's train step)
PEER_STEPS = (Step.HLS4ML, Step.ALKAID)


def upstream_of(step: Step, trained: bool) -> Step | None:
    """The step whose store entry `step` reads (``trained``: the model is a built-in one)."""
    if trained and step in (Step.CONVERT, Step.PREDICT, *PEER_STEPS):
        return Step.TRAIN
    return UPSTREAM[step]


#: axes of every model; their values as they are written in the spec
HARDWARE_AXES: Mapping[str, tuple[Any, ...]] = {
    "multiplier": ("auto", "dsp", "lut"),
    "parallelism": ("auto", "full"),
    "pipeline": ("balanced", "latency"),
    "adders_per_stage": tuple(range(1, 9)),
}
#: axes of a built-in trainable model only (the bits and sparsity a model file already has)
TRAINING_AXES = ("weight_bits", "activation_bits", "sparsity", "layer_order")
MODEL_AXES = (*HARDWARE_AXES, "input_type")
#: built-in trainable models and the training axes each one has (`rtlgen.sweep.builtin`)
BUILTIN_AXES: Mapping[str, tuple[str, ...]] = {
    "jet_mlp": ("weight_bits", "activation_bits", "sparsity"),
    "svhn_cnn": ("weight_bits", "sparsity", "layer_order"),
}
#: svhn_cnn's layer orders: conv -> BN -> ReLU -> pool (the hls4ml tutorial's) or conv ->
#: pool -> BN -> ReLU
LAYER_ORDERS = ("bn_first", "pool_first")
#: svhn_cnn's weight_bits value for the float model, converted with the paper's post-training
#: quantization (every weight, bias and result fixed<16,6>)
FLOAT_BITS = "float"
BUILTIN_KEYS = (
    "builtin",
    "epochs",
    "prune_epochs",
    "train_samples",
    "test_samples",
    "seed",
    "batch_size",
    "learning_rate",
    "prune_frequency",
    "filters",
    "dense",
    "image_size",
)
#: the built-in models' training hyper-parameters (`rtlgen.study.StudyConfig`'s for svhn_cnn)
#: and their bounds; ``None``: the model's default (`rtlgen.sweep.builtin.resolved`)
MAX_EPOCHS = 10_000
MAX_BATCH_SIZE = 65_536
MAX_PRUNE_FREQUENCY = 1_000_000
MAX_LEARNING_RATE = 1.0
#: a learning rate written as YAML 1.1 reads exponent notation without a dot: a string
_DECIMAL = re.compile(r"^[+]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
#: svhn_cnn's architecture keys (the paper's CNN by default) and their bounds
CNN_KEYS = ("filters", "dense", "image_size")
IMAGE_SIZES = (4, 8, 16, 32)  # the 32x32 images average-pooled by an integer factor
BITS_RANGE = (2, 16)
MAX_SPARSITY = 0.95

JOBQUEUE_KINDS = {
    "slurm": "SLURMCluster",
    "htcondor": "HTCondorCluster",
    "pbs": "PBSCluster",
    "sge": "SGECluster",
    "lsf": "LSFCluster",
}
SYNTH_FAMILIES = ("xcup", "ecp5")
_ADDRESS = re.compile(r"^(tcp|tls|inproc|ucx|ws|wss)://[A-Za-z0-9_.\-\[\]:]+$")

_TOP_KEYS = (
    "model",
    "weights",
    "config",
    "input",
    "labels",
    "axes",
    "exclude",
    "sample",
    "steps",
    "sim",
    "synth",
    "pnr",
    "cluster",
    "metric",
    "peers",
)
METRICS = ("accuracy", "sim_accuracy", "agreement")


# ---------------------------------------------------------------------------------------
# The typed spec
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Axis:
    """One swept option and its values (strings and ints as written, already checked)."""

    name: str
    values: tuple[Any, ...]


@dataclass(frozen=True)
class Point:
    """One design point: a value for every axis, in the spec's axis order."""

    values: tuple[tuple[str, Any], ...]

    def get(self, name: str, default: Any = None) -> Any:
        return dict(self.values).get(name, default)

    def label(self) -> str:
        return " ".join(f"{name}={value}" for name, value in self.values) or "(single point)"


@dataclass(frozen=True)
class BuiltinModel:
    """A built-in trainable model and its training recipe (`rtlgen.sweep.builtin`).
    ``None``: the model's default. ``prune_epochs``: fine-tuning epochs of a pruned variant
    (svhn_cnn: it starts from the unpruned variant's trained weights). ``batch_size``,
    ``learning_rate`` (Adam) and ``prune_frequency`` (training steps between pruning mask
    updates) as `rtlgen.quant.training.train` takes them. svhn_cnn only:
    ``filters`` per conv block, ``dense`` hidden layer widths, ``image_size`` (the 32x32
    images average-pooled to it; the paper's CNN: 16/16/24, 42/64, 32)."""

    name: str
    epochs: int | None = None
    prune_epochs: int | None = None
    train_samples: int | None = None
    test_samples: int | None = None
    seed: int = 0
    batch_size: int | None = None
    learning_rate: float | None = None
    prune_frequency: int | None = None
    filters: tuple[int, ...] | None = None
    dense: tuple[int, ...] | None = None
    image_size: int | None = None


@dataclass(frozen=True)
class Sample:
    """`sample: {random: N, seed: S}`: N points drawn without replacement from the grid."""

    count: int
    seed: int = 0


@dataclass(frozen=True)
class SimOptions:
    """``fast_build``: compile Verilator's C++ at -O0 (about 4x faster to build, slower to
    run: right for a few samples of a large design, as the SVHN study does)."""

    samples: int = 16
    backpressure: float = 0.0
    seed: int = 0
    fast_build: bool = False


@dataclass(frozen=True)
class PeerOptions:
    """The peer steps (hls4ml, alkaid) run on the first ``images`` test inputs."""

    images: int = 200


@dataclass(frozen=True)
class SynthOptions:
    family: str = "xcup"


@dataclass(frozen=True)
class PnrOptions:
    board: str = "ulx3s-25f"


@dataclass(frozen=True)
class LocalCluster:
    """A `distributed.LocalCluster` of worker processes (`workers` None: one per core)."""

    workers: int | None = None
    threads_per_worker: int = 1


@dataclass(frozen=True)
class AddressCluster:
    """A running Dask scheduler, e.g. ``tcp://host:8786``."""

    address: str


@dataclass(frozen=True)
class JobqueueCluster:
    """A `dask_jobqueue` cluster (`kind` slurm, htcondor, pbs, sge, lsf) scaled to `jobs`;
    `options` are passed to its constructor (cores, memory, queue, walltime...)."""

    kind: str
    jobs: int = 1
    options: tuple[tuple[str, Any], ...] = ()


ClusterSpec = LocalCluster | AddressCluster | JobqueueCluster


@dataclass(frozen=True)
class SweepSpec:
    """A parsed sweep spec. Paths are absolute (resolved against the spec's folder)."""

    source: Path
    model: Path | BuiltinModel
    weights: Path | None = None
    config: Path | None = None
    input: Path | None = None
    labels: Path | None = None
    axes: tuple[Axis, ...] = ()
    exclude: tuple[Point, ...] = ()
    sample: Sample | None = None
    steps: tuple[Step, ...] = (Step.CONVERT,)
    sim: SimOptions = field(default_factory=SimOptions)
    synth: SynthOptions = field(default_factory=SynthOptions)
    pnr: PnrOptions = field(default_factory=PnrOptions)
    cluster: ClusterSpec = field(default_factory=LocalCluster)
    metric: str = "accuracy"
    peers: PeerOptions = field(default_factory=PeerOptions)

    @property
    def trained(self) -> bool:
        """The model is a built-in one, trained by the sweep's train step."""
        return isinstance(self.model, BuiltinModel)

    @property
    def grid_size(self) -> int:
        size = 1
        for axis in self.axes:
            size *= len(axis.values)
        return size

    def points(self) -> tuple[Point, ...]:
        """The grid in axis order, or the seeded random sample of it (by index: a sample of
        a huge grid never enumerates it)."""
        names = [axis.name for axis in self.axes]
        if self.sample is None:
            combos: Iterator[tuple[Any, ...]] = itertools.product(*(a.values for a in self.axes))
            points = [Point(tuple(zip(names, combo, strict=True))) for combo in combos]
        else:
            count = min(self.sample.count, self.grid_size)
            indices = sorted(random.Random(self.sample.seed).sample(range(self.grid_size), count))
            points = [Point(tuple(zip(names, self._combo(i), strict=True))) for i in indices]
        return tuple(p for p in points if not any(_matches(p, rule) for rule in self.exclude))

    def _combo(self, index: int) -> tuple[Any, ...]:
        """The grid's `index`-th point (the last axis varies fastest, like itertools.product)."""
        values = []
        for axis in reversed(self.axes):
            index, digit = divmod(index, len(axis.values))
            values.append(axis.values[digit])
        return tuple(reversed(values))


def _matches(point: Point, rule: Point) -> bool:
    """`point` has every value `rule` names (an `exclude` entry)."""
    values = dict(point.values)
    return all(values.get(name) == value for name, value in rule.values)


# ---------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------
def load_spec(
    path: str | Path,
    *,
    input: Path | None = None,
    labels: Path | None = None,
    workers: int | None = None,
) -> SweepSpec:
    """Read and check a sweep spec file. ``input``/``labels``/``workers`` come from the
    command line and override the spec's ``input``/``labels`` and cluster size."""
    path = Path(path)
    data = _read_yaml(path)
    spec = spec_from_dict(data, path)
    if input is not None:
        spec = _replace(spec, input=_existing_file(Path(input).absolute(), "--input"))
    if labels is not None:
        spec = _replace(spec, labels=_existing_file(Path(labels).absolute(), "--labels"))
    if workers is not None:
        spec = _replace(spec, cluster=_with_workers(spec.cluster, workers))
    _check_step_inputs(spec)
    return spec


def _replace(spec: SweepSpec, **changes: Any) -> SweepSpec:
    import dataclasses

    return dataclasses.replace(spec, **changes)


def _read_yaml(path: Path) -> Any:
    return read_yaml(
        path, f"sweep spec {path}", MAX_SPEC_BYTES, MAX_SPEC_DEPTH, MAX_SPEC_NODES, SpecError
    )


def spec_from_dict(data: Any, source: Path) -> SweepSpec:
    """A `SweepSpec` from the parsed YAML; relative paths resolve against `source`'s folder."""
    where = f"sweep spec {source}"
    if not isinstance(data, Mapping):
        raise SpecError(
            f"{where}: expected a mapping of keys ({', '.join(_TOP_KEYS)}), got {_kind(data)}"
        )
    _check_keys(data, _TOP_KEYS, where)
    folder = source.absolute().parent
    if "model" not in data:
        raise SpecError(
            f"{where}: 'model' is missing (a model file: .h5, .json with 'weights', .keras; "
            f"or {{builtin: {' | '.join(BUILTIN_AXES)}}})"
        )
    model = _model(data["model"], folder)
    builtin = model.name if isinstance(model, BuiltinModel) else None
    if builtin is not None:
        for key in ("weights", "config"):
            if data.get(key) is not None:
                raise SpecError(f"{key}: a built-in model ({builtin}) has no {key} file")
    axes = _axes(data.get("axes"), builtin)
    if isinstance(model, BuiltinModel):
        _check_pruning(model, axes)
    steps = _steps(data.get("steps", ["train", "convert"] if builtin else ["convert"]), builtin)
    metric = _one_of(data.get("metric", "accuracy"), "metric", METRICS)
    return SweepSpec(
        source=source.absolute(),
        model=model,
        weights=_optional_path(data, "weights", folder),
        config=_optional_path(data, "config", folder),
        input=_optional_path(data, "input", folder),
        labels=_optional_path(data, "labels", folder),
        axes=axes,
        exclude=_exclude(data.get("exclude"), axes),
        sample=_sample(data.get("sample"), axes),
        steps=steps,
        sim=_sim(data.get("sim")),
        synth=_synth(data.get("synth")),
        pnr=_pnr(data.get("pnr")),
        cluster=_cluster(data.get("cluster")),
        metric=metric,
        peers=_peers(data.get("peers")),
    )


def _model(value: Any, folder: Path) -> Path | BuiltinModel:
    if not isinstance(value, Mapping):
        return _path(value, folder, "model")
    mapping = _mapping(value, "model", BUILTIN_KEYS)
    name = mapping.get("builtin")
    if name not in BUILTIN_AXES:
        raise SpecError(
            f"model.builtin: {_short(name)} is not a built-in model (supported: {', '.join(BUILTIN_AXES)})"
        )

    def optional(key: str, high: int) -> int | None:
        value = mapping.get(key)
        return None if value is None else _integer(value, f"model.{key}", 1, high)

    def widths(key: str, most: int) -> tuple[int, ...] | None:
        value = mapping.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not 1 <= len(value) <= most:
            raise SpecError(
                f"model.{key}: expected a list of 1 to {most} layer widths, got {_short(value)}"
            )
        return tuple(_integer(v, f"model.{key}", 1, 1024) for v in value)

    for key in CNN_KEYS:
        if mapping.get(key) is not None and name != "svhn_cnn":
            raise SpecError(f"model.{key}: only the built-in svhn_cnn has {key} ({name} has not)")
    if mapping.get("prune_epochs") is not None and name != "svhn_cnn":
        raise SpecError(
            f"model.prune_epochs: only the built-in svhn_cnn fine-tunes a pruned variant from its "
            f"trained sibling ({name} prunes while it trains, for epochs)"
        )
    size = mapping.get("image_size")
    if size is not None and (isinstance(size, bool) or size not in IMAGE_SIZES):
        raise SpecError(
            f"model.image_size: {_short(size)} is not supported (one of {', '.join(map(str, IMAGE_SIZES))})"
        )
    filters = widths("filters", 5)
    if filters is not None and size is not None and size >> len(filters) < 1:
        raise SpecError(
            f"model.filters: {len(filters)} conv blocks pool a {size}x{size} image below 1x1"
        )
    return BuiltinModel(
        name,
        epochs=optional("epochs", MAX_EPOCHS),
        prune_epochs=optional("prune_epochs", MAX_EPOCHS),
        train_samples=optional("train_samples", 10_000_000),
        test_samples=optional("test_samples", 1_000_000),
        seed=_integer(mapping.get("seed", 0), "model.seed", 0, 2**31 - 1),
        batch_size=optional("batch_size", MAX_BATCH_SIZE),
        learning_rate=_learning_rate(mapping.get("learning_rate")),
        prune_frequency=optional("prune_frequency", MAX_PRUNE_FREQUENCY),
        filters=filters,
        dense=widths("dense", 5),
        image_size=size,
    )


def _check_pruning(model: BuiltinModel, axes: tuple[Axis, ...]) -> None:
    """A pruned variant updates its mask every ``prune_frequency`` steps: it needs that many
    (`rtlgen.quant.training.train` refuses fewer; here the spec is refused before any run)."""
    from rtlgen.sweep.builtin import pruning_steps, resolved  # the models' defaults

    sparsity = next((a.values for a in axes if a.name == "sparsity"), (0.0,))
    if not any(s > 0 for s in sparsity):
        return
    full = resolved(model)
    steps = pruning_steps(full)
    if full.prune_frequency is not None and steps < full.prune_frequency:
        epochs = "prune_epochs" if model.name == "svhn_cnn" else "epochs"
        raise SpecError(
            f"model.prune_frequency: {full.prune_frequency} is more than the {steps} training "
            f"steps of a pruned variant ({full.train_samples} train_samples in batches of "
            f"{full.batch_size}, {getattr(full, epochs)} {epochs}): at most {steps}"
        )


def _learning_rate(value: Any) -> float | None:
    """A number above 0, at most `MAX_LEARNING_RATE`; ``3e-3`` too (YAML 1.1 reads exponent
    notation without a dot as a string)."""
    if value is None:
        return None
    number = value
    if isinstance(value, str) and _DECIMAL.match(value.strip()):
        number = float(value)
    if (
        isinstance(number, bool)
        or not isinstance(number, int | float)
        or not 0 < number <= MAX_LEARNING_RATE
    ):
        raise SpecError(
            f"model.learning_rate: {_short(value)} is not supported (a number above 0 and at "
            f"most {MAX_LEARNING_RATE:g}, e.g. 0.003 or 3e-3)"
        )
    return float(number)


def _path(value: Any, folder: Path, key: str) -> Path:
    if not isinstance(value, str) or not value.strip() or "\0" in value:
        raise SpecError(f"{key}: expected a file path, got {_short(value)}")
    return _existing_file(folder / Path(value).expanduser(), key)


def _existing_file(path: Path, key: str) -> Path:
    if not path.exists():
        raise SpecError(f"{key}: {path} does not exist")
    if not path.is_file():
        raise SpecError(f"{key}: {path} is not a regular file")
    return path


def _optional_path(data: Mapping[str, Any], key: str, folder: Path) -> Path | None:
    return None if data.get(key) is None else _path(data[key], folder, key)


def _axes(value: Any, builtin: str | None) -> tuple[Axis, ...]:
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        raise SpecError(f"axes: expected a mapping of axis -> list of values, got {_kind(value)}")
    supported = (*BUILTIN_AXES[builtin], *MODEL_AXES) if builtin else MODEL_AXES
    axes = []
    for name, raw in value.items():
        if name in TRAINING_AXES and builtin is None:
            raise SpecError(
                f"axes: {name} needs a built-in trainable model (a model file has its own "
                f"bits and sparsity); axes of a model file: {', '.join(MODEL_AXES)}"
            )
        if name not in supported:
            model = f"the built-in model {builtin}" if builtin else "a model file"
            raise SpecError(
                f"axes: unknown axis {_short(name)} for {model} (supported: {', '.join(supported)})"
            )
        values = raw if isinstance(raw, list) else [raw]
        if not values:
            raise SpecError(f"axes: {name} has no values")
        if name == "weight_bits" and FLOAT_BITS in values and builtin != "svhn_cnn":
            raise SpecError(
                f"axes: weight_bits {FLOAT_BITS} (the float model, post-training quantized) is "
                f"a value of the built-in svhn_cnn only; {builtin}: integers from "
                f"{BITS_RANGE[0]} to {BITS_RANGE[1]}"
            )
        if len(values) > MAX_AXIS_VALUES:
            raise SpecError(f"axes: {name} has {len(values):,} values (at most {MAX_AXIS_VALUES})")
        checked = tuple(_axis_value(name, v) for v in values)
        duplicates = sorted({str(v) for v in checked if checked.count(v) > 1})
        if duplicates:
            raise SpecError(f"axes: {name} lists {', '.join(duplicates)} more than once")
        axes.append(Axis(name, checked))
    return tuple(axes)


def _axis_value(name: str, value: Any) -> Any:
    if name == "weight_bits" and value == FLOAT_BITS:
        return value
    if name == "layer_order":
        if value not in LAYER_ORDERS:
            raise SpecError(
                f"axes: layer_order value {_short(value)} is not supported (supported: {', '.join(LAYER_ORDERS)})"
            )
        return value
    if name in ("weight_bits", "activation_bits"):
        low, high = BITS_RANGE
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise SpecError(
                f"axes: {name} value {_short(value)} is not supported (an integer from {low} to {high})"
            )
        return value
    if name == "sparsity":
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not 0 <= value <= MAX_SPARSITY
        ):
            raise SpecError(
                f"axes: sparsity value {_short(value)} is not supported (a fraction from 0 to {MAX_SPARSITY})"
            )
        return float(value)
    if name == "input_type":
        if not isinstance(value, str):
            raise SpecError(
                f"axes: input_type value {_short(value)}: expected a precision such as 'fixed<8,1>'"
            )
        try:
            return str(FixedType.parse(value))
        except RtlgenError as exc:
            raise SpecError(f"axes: input_type: {exc}") from None
    supported = HARDWARE_AXES[name]
    # YAML reads `true`/`1.0` as bool/float: only the exact spelled values are accepted
    if isinstance(value, bool) or value not in supported or type(value) is not type(supported[0]):
        raise SpecError(
            f"axes: {name} value {_short(value)} is not supported "
            f"(supported: {', '.join(map(str, supported))})"
        )
    return value


def _exclude(value: Any, axes: tuple[Axis, ...]) -> tuple[Point, ...]:
    """`exclude: [{multiplier: lut, parallelism: full}]`: points matching every value of
    an entry are left out of the grid (each value must be one of its axis's values)."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise SpecError(f"exclude: expected a list of {{axis: value}} mappings, got {_kind(value)}")
    values = {axis.name: axis.values for axis in axes}
    rules = []
    for index, entry in enumerate(value):
        where = f"exclude[{index}]"
        if not isinstance(entry, Mapping) or not entry:
            raise SpecError(f"{where}: expected a mapping {{axis: value}}, got {_short(entry)}")
        for name, raw in entry.items():
            if name not in values:
                raise SpecError(
                    f"{where}: {_short(name)} is not one of the axes ({', '.join(values) or 'none'})"
                )
            if _axis_value(name, raw) not in values[name]:
                raise SpecError(f"{where}: {name} {_short(raw)} is not one of the axis's values")
        rules.append(Point(tuple((name, _axis_value(name, raw)) for name, raw in entry.items())))
    return tuple(rules)


def _steps(value: Any, builtin: str | None) -> tuple[Step, ...]:
    supported = ", ".join(s.value for s in Step)
    values = value if isinstance(value, list) else [value]
    if not values:
        raise SpecError(f"steps: no step given (supported: {supported})")
    steps = []
    for raw in values:
        if not isinstance(raw, str) or raw not in Step.__members__.values():
            raise SpecError(f"steps: unknown step {_short(raw)} (supported: {supported})")
        step = Step(raw)
        if step in steps:
            raise SpecError(f"steps: {step} is listed twice")
        steps.append(step)
    if Step.TRAIN in steps and builtin is None:
        raise SpecError(
            "steps: train needs a built-in trainable model; a model file is already trained"
        )
    peers = [s for s in steps if s in PEER_STEPS]
    if peers and builtin is None:
        raise SpecError(
            f"steps: {peers[0]} needs a built-in trainable model (the peers start from the "
            "trained Keras model of the train step)"
        )
    if Step.TRAIN not in steps and builtin is not None:
        raise SpecError(f"steps: the built-in model {builtin} is trained first: add train to steps")
    for step in steps:
        upstream = upstream_of(step, builtin is not None)
        if upstream is not None and upstream not in steps:
            raise SpecError(
                f"steps: {step} needs {upstream} in steps (it reads the {upstream}ed design)"
            )
    return tuple(sorted(steps, key=list(Step).index))


def _sample(value: Any, axes: tuple[Axis, ...]) -> Sample | None:
    grid = 1
    for axis in axes:
        grid *= len(axis.values)
    if value is None:
        if grid > MAX_POINTS:
            raise SpecError(
                f"axes: the grid has {grid:,} points (at most {MAX_POINTS:,}); "
                "draw some with 'sample: {random: N, seed: S}'"
            )
        return None
    mapping = _mapping(value, "sample", ("random", "seed"))
    if "random" not in mapping:
        raise SpecError("sample: 'random' is missing (sample: {random: N, seed: S})")
    count = _integer(mapping["random"], "sample.random", 1, MAX_POINTS)
    seed = _integer(mapping.get("seed", 0), "sample.seed", 0, 2**63 - 1)
    if grid > MAX_GRID:
        raise SpecError(
            f"axes: the grid has {grid:.3g} points (at most {MAX_GRID:.0e}, even sampled)"
        )
    return Sample(count, seed)


def _sim(value: Any) -> SimOptions:
    mapping = _mapping(value, "sim", ("samples", "backpressure", "seed", "fast_build"))
    fast_build = mapping.get("fast_build", False)
    if not isinstance(fast_build, bool):
        raise SpecError(f"sim.fast_build: {_short(fast_build)} is not supported (true or false)")
    backpressure = mapping.get("backpressure", 0.0)
    if (
        isinstance(backpressure, bool)
        or not isinstance(backpressure, int | float)
        or not 0.0 <= backpressure <= 0.95
    ):
        raise SpecError(
            f"sim.backpressure: {_short(backpressure)} is not supported (a number from 0 to 0.95)"
        )
    return SimOptions(
        samples=_integer(mapping.get("samples", 16), "sim.samples", 1, MAX_SIM_SAMPLES),
        backpressure=float(backpressure),
        seed=_integer(mapping.get("seed", 0), "sim.seed", 0, 2**32 - 1),
        fast_build=fast_build,
    )


def _peers(value: Any) -> PeerOptions:
    mapping = _mapping(value, "peers", ("images",))
    return PeerOptions(_integer(mapping.get("images", 200), "peers.images", 1, MAX_SIM_SAMPLES))


def _synth(value: Any) -> SynthOptions:
    mapping = _mapping(value, "synth", ("family",))
    return SynthOptions(_one_of(mapping.get("family", "xcup"), "synth.family", SYNTH_FAMILIES))


def _pnr(value: Any) -> PnrOptions:
    if value is None:
        return PnrOptions()
    from rtlgen.boards import ECP5_BOARDS  # amaranth-boards: only when a board is named

    mapping = _mapping(value, "pnr", ("board",))
    return PnrOptions(_one_of(mapping.get("board", "ulx3s-25f"), "pnr.board", tuple(ECP5_BOARDS)))


def _cluster(value: Any) -> ClusterSpec:
    shapes = "{local: {workers: N}}, 'tcp://host:8786' or {jobqueue: {kind: slurm, jobs: N, ...}}"
    if value is None or value == "local":
        return LocalCluster()
    if isinstance(value, str):
        if not _ADDRESS.match(value):
            raise SpecError(
                f"cluster: {_short(value)} is not a scheduler address (e.g. tcp://host:8786; or {shapes})"
            )
        return AddressCluster(value)
    if not isinstance(value, Mapping) or len(value) != 1:
        raise SpecError(f"cluster: expected one of {shapes}, got {_short(value)}")
    kind, body = next(iter(value.items()))
    if kind == "local":
        local = _mapping(body, "cluster.local", ("workers", "threads_per_worker"))
        workers = local.get("workers")
        return LocalCluster(
            workers=None
            if workers is None
            else _integer(workers, "cluster.local.workers", 1, MAX_WORKERS),
            threads_per_worker=_integer(
                local.get("threads_per_worker", 1), "cluster.local.threads_per_worker", 1, 256
            ),
        )
    if kind == "jobqueue":
        return _jobqueue(body)
    raise SpecError(f"cluster: unknown kind {_short(kind)} (supported: {shapes})")


def _jobqueue(body: Any) -> JobqueueCluster:
    if not isinstance(body, Mapping):
        raise SpecError(
            f"cluster.jobqueue: expected a mapping (kind, jobs, cluster options), got {_kind(body)}"
        )
    kind = _one_of(body.get("kind"), "cluster.jobqueue.kind", tuple(JOBQUEUE_KINDS))
    jobs = _integer(body.get("jobs", 1), "cluster.jobqueue.jobs", 1, MAX_WORKERS)
    options = []
    for key, option in body.items():
        if key in ("kind", "jobs"):
            continue
        if not isinstance(key, str) or not key.isidentifier():
            raise SpecError(f"cluster.jobqueue: option name {_short(key)} is not an identifier")
        if not _plain(option):
            raise SpecError(
                f"cluster.jobqueue.{key}: expected a number, string, or a list or mapping of them, got {_short(option)}"
            )
        options.append((key, tuple(option) if isinstance(option, list) else option))
    return JobqueueCluster(kind, jobs, tuple(options))


def _plain(value: Any) -> bool:
    """A jobqueue option: a scalar, or a list or a mapping (HTCondor's submit attributes)
    of scalars."""
    scalar = (str, int, float, bool)
    if isinstance(value, list):
        return all(isinstance(v, scalar) for v in value)
    if isinstance(value, Mapping):
        return all(isinstance(k, str) and isinstance(v, scalar) for k, v in value.items())
    return value is None or isinstance(value, scalar)


def _with_workers(cluster: ClusterSpec, workers: int) -> ClusterSpec:
    import dataclasses

    if not 1 <= workers <= MAX_WORKERS:
        raise SpecError(f"--workers {workers} is not supported (1 to {MAX_WORKERS})")
    if isinstance(cluster, LocalCluster):
        return dataclasses.replace(cluster, workers=workers)
    if isinstance(cluster, JobqueueCluster):
        return dataclasses.replace(cluster, jobs=workers)
    raise SpecError(
        f"--workers does not apply to a running scheduler ({cluster.address}): it has its own workers"
    )


def _check_step_inputs(spec: SweepSpec) -> None:
    if Step.PREDICT in spec.steps and spec.input is None and not spec.trained:
        raise SpecError(
            "steps: predict needs inputs: pass --input x.npy or set 'input:' in the spec"
        )
    if spec.labels is not None and spec.input is None:
        raise SpecError(
            "labels: given without inputs: pass --input x.npy or set 'input:' in the spec"
        )


# ---------------------------------------------------------------------------------------
# Small checks
# ---------------------------------------------------------------------------------------
def _mapping(value: Any, key: str, accepted: tuple[str, ...]) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise SpecError(f"{key}: expected a mapping ({', '.join(accepted)}), got {_kind(value)}")
    _check_keys(value, accepted, key)
    return value


def _check_keys(data: Mapping[Any, Any], accepted: tuple[str, ...], where: str) -> None:
    for key in data:
        if key not in accepted:
            raise SpecError(
                f"{where}: unknown key {_short(key)} (supported: {', '.join(accepted)})"
            )


def _one_of(value: Any, key: str, supported: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in supported:
        raise SpecError(
            f"{key}: {_short(value)} is not supported (supported: {', '.join(supported)})"
        )
    return value


def _integer(value: Any, key: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SpecError(
            f"{key}: {_short(value)} is not supported (an integer from {low} to {high:,})"
        )
    return value


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", type(None): "nothing"}.get(
        type(value), f"a {type(value).__name__}"
    )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."
