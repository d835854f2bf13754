"""Run a sweep on Dask: plan the unique steps, reuse the stored ones, submit the rest.

Each step of each point is planned with its digest (`rtlgen.sweep.store`); points that share
a step (two multiplier styles share one `predict`) share one task. A step whose result is in
the store is not submitted (resume: a second run of the same spec does no work; a changed
axis value recomputes only what depends on it). The others become `client.submit` tasks
keyed by their digest, with ``retries`` and their upstream task's future as an argument, so
Dask runs them in dependency order on any worker. A worker that dies loses only its running
task: the scheduler reschedules it on another worker, at most ``MAX_RETRIES`` times.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.text import Text

from rtlgen.quant.errors import RtlgenError
from rtlgen.sweep.spec import (
    JOBQUEUE_KINDS,
    AddressCluster,
    ClusterSpec,
    JobqueueCluster,
    LocalCluster,
    Point,
    Step,
    SweepSpec,
    upstream_of,
)
from rtlgen.sweep.steps import (
    STEP_FUNCTIONS,
    ConvertParams,
    ModelSource,
    PeerParams,
    PredictParams,
    SimParams,
    StepFunction,
    StepOutcome,
    StepTask,
    TrainParams,
    outcome_from_result,
    run_step,
)
from rtlgen.sweep.store import (
    STORE_NAME,
    Store,
    discard,
    file_digest,
    step_digest,
    tool_version,
)

#: attempts after the first, for a task that raised or whose worker died
MAX_RETRIES = 2
MARKER_NAME = "sweep.json"
MARKER_FORMAT = "rtlgen-sweep"
#: seconds to wait for a scheduler given by address, or for a batch cluster's first worker
CONNECT_TIMEOUT = 60


@dataclass(frozen=True)
class PointPlan:
    point: Point
    steps: tuple[tuple[Step, str], ...]  # (step, digest) in run order


@dataclass(frozen=True)
class SweepPlan:
    points: tuple[PointPlan, ...]
    tasks: Mapping[str, StepTask]  # digest -> task, upstream tasks first


@dataclass(frozen=True)
class SweepRun:
    """A finished sweep: every unique step's outcome, and the counts a user (or a test)
    wants: steps computed now, steps reused from the store."""

    plan: SweepPlan
    outcomes: Mapping[str, StepOutcome]
    seconds: float
    dashboard: str | None = None

    @property
    def computed(self) -> int:
        return sum(
            1 for o in self.outcomes.values() if o.status in ("ok", "failed") and not o.cached
        )

    @property
    def cached(self) -> int:
        return sum(1 for o in self.outcomes.values() if o.cached)


# ---------------------------------------------------------------------------------------
# Planning
# ---------------------------------------------------------------------------------------
def input_files(spec: SweepSpec) -> dict[Path, str]:
    """Content digest of every file the spec names."""
    paths = (spec.model, spec.weights, spec.config, spec.input, spec.labels)
    return {path: file_digest(path) for path in paths if isinstance(path, Path)}


def step_params(spec: SweepSpec, point: Point, step: Step) -> Any:
    """The parameters of `step` at `point`: only what that step reads."""
    model = spec.model if isinstance(spec.model, Path) else None  # None: the trained one
    source = ModelSource(model, spec.weights, spec.config, point.get("input_type"))
    if step is Step.TRAIN:
        from rtlgen.sweep.builtin import train_params

        return train_params(spec.model, point)
    if step is Step.CONVERT:
        return ConvertParams(
            source,
            multiplier=point.get("multiplier", "auto"),
            parallelism=point.get("parallelism", "auto"),
            pipeline=point.get("pipeline", "balanced"),
            adders_per_stage=point.get("adders_per_stage"),
        )
    if step is Step.PREDICT:
        return PredictParams(source, spec.input, spec.labels)
    if step is Step.SIM:
        return SimParams(spec.sim, spec.input, spec.labels)
    if step is Step.SYNTH:
        return spec.synth
    if step is Step.PNR:
        return spec.pnr
    if step is Step.HLS4ML:
        return PeerParams(spec.peers.images, tool_version("hls4ml"))
    if step is Step.ALKAID:
        # with synth in the steps, alkaid's and rtlgen's dense-part designs are synthesized too
        family = spec.synth.family if Step.SYNTH in spec.steps else None
        return PeerParams(spec.peers.images, tool_version("alkaid"), family)
    raise ValueError(f"no parameters for step {step}")  # a bug: every step is listed above


def plan_sweep(
    spec: SweepSpec,
    store_root: Path,
    run_id: str,
    files: Mapping[Path, str],
    functions: Mapping[Step, StepFunction] = STEP_FUNCTIONS,
    quiet: bool = True,
) -> SweepPlan:
    """Every point's steps and digests; equal digests become one task."""
    tasks: dict[str, StepTask] = {}

    def add(step: Step, params: Any, upstream_step: Step | None, upstream: str | None) -> str:
        digest = step_digest(step, params, upstream, files)
        if digest not in tasks:
            tasks[digest] = StepTask(
                step,
                digest,
                params,
                functions[step],
                store_root,
                run_id,
                upstream,
                upstream_step,
                quiet,
            )
        return digest

    def add_training(params: TrainParams) -> str:
        # a pruned variant may be fine-tuned from its unpruned sibling: that is its upstream
        from rtlgen.sweep.builtin import starts_from

        sibling = starts_from(params)
        upstream = None if sibling is None else add_training(sibling)
        return add(Step.TRAIN, params, None if sibling is None else Step.TRAIN, upstream)

    points = []
    for point in spec.points():
        digests: dict[Step, str] = {}
        for step in spec.steps:
            params = step_params(spec, point, step)
            if step is Step.TRAIN:
                digests[step] = add_training(params)
                continue
            upstream_step = upstream_of(step, spec.trained)
            upstream = None if upstream_step is None else digests[upstream_step]
            digests[step] = add(step, params, upstream_step, upstream)
        points.append(PointPlan(point, tuple(digests.items())))
    return SweepPlan(tuple(points), tasks)


# ---------------------------------------------------------------------------------------
# The output folder
# ---------------------------------------------------------------------------------------
def prepare_output(out: Path, spec: SweepSpec) -> Store:
    """OUT, created if needed, and its store. A folder that holds files but no sweep.json
    was not written by `rtlgen sweep`: it is refused, so nothing in it is overwritten."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RtlgenError(f"sweep output {out} exists and is not a folder")
    if out.is_dir():
        marker = out / MARKER_NAME
        if any(out.iterdir()) and not _is_marker(marker):
            raise RtlgenError(
                f"sweep output {out} holds files 'rtlgen sweep' did not write (no {MARKER_NAME}); "
                "choose a new or empty folder"
            )
    try:
        out.mkdir(parents=True, exist_ok=True)
        store_root = out / STORE_NAME
        if store_root.is_symlink() or (store_root.exists() and not store_root.is_dir()):
            raise RtlgenError(f"sweep output {out}: {STORE_NAME} is not a folder rtlgen wrote")
        store_root.mkdir(exist_ok=True)
        write_text(
            out / MARKER_NAME,
            json.dumps({"format": MARKER_FORMAT, "version": 1, "spec": str(spec.source)}, indent=1),
        )
    except OSError as exc:
        raise RtlgenError(f"sweep output {out}: {exc.strerror or exc}") from None
    return Store(store_root)


def _is_marker(path: Path) -> bool:
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > 1 << 16:
            return False
        return json.loads(path.read_text()).get("format") == MARKER_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def write_text(path: Path, text: str | bytes) -> None:
    """Write through a temporary file and rename: a reader never sees half a file, and a
    symlink planted at `path` is replaced, not followed."""
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.partial")
    if isinstance(text, bytes):
        partial.write_bytes(text)
    else:
        partial.write_text(text)
    os.replace(partial, path)


# ---------------------------------------------------------------------------------------
# The cluster
# ---------------------------------------------------------------------------------------
@contextlib.contextmanager
def open_client(cluster: ClusterSpec, debug: bool = False) -> Iterator[Any]:
    """A `distributed.Client` on the spec's cluster; the cluster closes with it."""
    import dask
    from distributed import Client

    settings = {"distributed.scheduler.allowed-failures": MAX_RETRIES}
    if not debug:  # a restarted worker is expected here; its log lines would drown the progress
        settings["logging.distributed"] = "error"
        logging.getLogger("distributed").setLevel(logging.ERROR)
    with dask.config.set(settings):
        if isinstance(cluster, AddressCluster):
            try:
                client = Client(cluster.address, timeout=CONNECT_TIMEOUT)
            except (OSError, TimeoutError) as exc:
                raise RtlgenError(
                    f"cluster: cannot reach the Dask scheduler at {cluster.address} ({exc})"
                ) from None
            with client:
                yield client
            return
        with _make_cluster(cluster) as made, Client(made) as client:
            if isinstance(cluster, JobqueueCluster):
                client.wait_for_workers(1, timeout=None)
            yield client


def _make_cluster(cluster: LocalCluster | JobqueueCluster):
    if isinstance(cluster, LocalCluster):
        from distributed import LocalCluster as DaskLocalCluster

        return DaskLocalCluster(
            n_workers=cluster.workers,
            threads_per_worker=cluster.threads_per_worker,
            processes=True,
            dashboard_address=":0" if _has_dashboard() else None,
        )
    made = jobqueue_cluster(cluster)
    made.scale(jobs=cluster.jobs)
    return made


def jobqueue_cluster(cluster: JobqueueCluster):
    """The dask-jobqueue cluster object of the spec, not yet scaled (no job submitted)."""
    try:
        import dask_jobqueue
    except ModuleNotFoundError:
        raise RtlgenError(
            "cluster.jobqueue needs the package dask-jobqueue: pip install 'rtlgen[cluster]'"
        ) from None
    factory = getattr(dask_jobqueue, JOBQUEUE_KINDS[cluster.kind])
    options = {key: list(v) if isinstance(v, tuple) else v for key, v in cluster.options}
    try:
        return factory(**options)
    except (TypeError, ValueError) as exc:
        raise RtlgenError(
            f"cluster.jobqueue ({cluster.kind}): {' '.join(str(exc).split())}"
        ) from None


def _has_dashboard() -> bool:
    from importlib.util import find_spec

    return find_spec("bokeh") is not None


# ---------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------
def run_sweep(
    spec: SweepSpec,
    out: Path,
    *,
    console: Console | None = None,
    functions: Mapping[Step, StepFunction] = STEP_FUNCTIONS,
    client: Any = None,
    debug: bool = False,
) -> SweepRun:
    """Run `spec` into OUT (store, results.json/.csv, pareto.json, plots); see the module
    docstring. ``client``: an existing `distributed.Client` (else the spec's cluster is
    started and closed). ``functions``: the step functions (tests substitute slow ones)."""
    from rtlgen.sweep.results import write_results

    console = console or Console(stderr=False)
    started = time.perf_counter()
    store = prepare_output(out, spec)
    run_id = uuid.uuid4().hex[:8]
    plan = plan_sweep(spec, store.root, run_id, input_files(spec), functions, quiet=not debug)
    outcomes: dict[str, StepOutcome] = {}
    pending = []
    for digest, task in plan.tasks.items():
        stored = store.result(task.step, digest)
        if stored is None:
            pending.append(task)
        else:
            outcomes[digest] = outcome_from_result(task, stored)
    console.print(
        f"sweep: {len(plan.points)} points, {len(plan.tasks)} steps: "
        f"{len(plan.tasks) - len(pending)} in the store, {len(pending)} to run",
        highlight=False,
    )
    dashboard = None
    if pending:
        try:
            if client is not None:
                dashboard = _run_tasks(client, pending, outcomes, plan, console)
            else:
                with open_client(spec.cluster, debug) as made:
                    dashboard = _run_tasks(made, pending, outcomes, plan, console)
        finally:
            for leftover in store.stale_workspaces(run_id):
                discard(leftover)
    result = SweepRun(plan, outcomes, time.perf_counter() - started, dashboard)
    write_results(Path(out), spec, result)
    return result


def _run_tasks(
    client,
    pending: list[StepTask],
    outcomes: dict[str, StepOutcome],
    plan: SweepPlan,
    console: Console,
) -> str | None:
    from distributed import as_completed

    dashboard = _dashboard_link(client)
    if dashboard:
        console.print(f"Dask dashboard: {dashboard}", highlight=False)
    futures = {}
    for task in pending:  # upstream tasks come first in the plan
        upstream = None
        if task.upstream_digest is not None:
            upstream = futures.get(task.upstream_digest, outcomes.get(task.upstream_digest))
        futures[task.digest] = client.submit(
            run_step, task, upstream, key=task.key, retries=MAX_RETRIES, pure=False
        )
    labels = _task_labels(plan)
    tasks = {task.digest: task for task in pending}
    digest_of = {future.key: digest for digest, future in futures.items()}
    with _Progress(console, len(futures)) as progress:
        for future in as_completed(futures.values()):
            digest = digest_of[future.key]
            task = tasks[digest]
            outcome = _outcome(future, task, outcomes)
            outcomes[digest] = outcome
            progress.done(task, outcome, labels.get(digest, ""))
            future.release()
    return dashboard


def _outcome(future, task: StepTask, outcomes: Mapping[str, StepOutcome]) -> StepOutcome:
    """A finished future's outcome; an exception (a bug, or a worker lost too often) is
    recorded against the step instead of stopping the sweep."""
    try:
        return future.result()
    except Exception as exc:  # noqa: BLE001 - recorded, shown, and counted as an error
        upstream = outcomes.get(task.upstream_digest) if task.upstream_digest else None
        if upstream is not None and not upstream.ok:
            return StepOutcome(
                task.step, task.digest, "skipped", reason=f"{upstream.step} {upstream.status}"
            )
        kind = type(exc).__name__
        if kind == "KilledWorker":
            reason = f"its worker died {MAX_RETRIES + 1} times while running it"
        else:
            reason = f"internal error: {kind}: {' '.join(str(exc).split())[:500]}"
        return StepOutcome(task.step, task.digest, "error", reason=reason)


def _dashboard_link(client) -> str | None:
    if not _has_dashboard():
        return None
    with contextlib.suppress(Exception):
        return str(client.dashboard_link)
    return None


def _task_labels(plan: SweepPlan) -> dict[str, str]:
    """digest -> the first point that uses the step (and how many more do)."""
    users: dict[str, list[str]] = {}
    for point in plan.points:
        for _step, digest in point.steps:
            users.setdefault(digest, []).append(point.point.label())
    return {
        digest: names[0] + (f" (+{len(names) - 1} more points)" if len(names) > 1 else "")
        for digest, names in users.items()
    }


class _Progress:
    """A rich bar on a terminal; elsewhere one line per finished task (a CI log)."""

    def __init__(self, console: Console, total: int):
        self.console, self.total, self.finished = console, total, 0
        self.bar = None

    def __enter__(self) -> _Progress:
        if self.console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

            self.bar = Progress(
                "sweep",
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=self.console,
                transient=False,
            )
            self.bar.start()
            self.bar_task = self.bar.add_task("sweep", total=self.total)
        return self

    def done(self, task: StepTask, outcome: StepOutcome, label: str) -> None:
        self.finished += 1
        what = outcome.status if outcome.ok else f"{outcome.status}: {outcome.reason}"
        line = (
            f"[{self.finished}/{self.total}] {task.step} {label}: {what} ({outcome.seconds:.1f} s)"
        )
        if self.bar is not None:
            self.bar.console.print(Text(line))
            self.bar.advance(self.bar_task)
        else:
            self.console.print(line, markup=False, highlight=False)

    def __exit__(self, *exc_info: object) -> None:
        if self.bar is not None:
            self.bar.stop()
