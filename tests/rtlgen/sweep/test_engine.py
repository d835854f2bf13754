"""The engine on a real 2-worker LocalCluster: a sweep completes, resumes, recomputes only
what changed, survives a killed worker, and records failing points without stopping."""

from __future__ import annotations

import csv
import functools
import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from rich.console import Console

from rtlgen.quant.errors import RtlgenError
from rtlgen.sweep.engine import run_sweep
from rtlgen.sweep.spec import Step, load_spec
from rtlgen.sweep.steps import STEP_FUNCTIONS, convert_step


def quiet() -> Console:
    return Console(file=open(os.devnull, "w"), width=150)  # noqa: SIM115 - closed with the process


def spec_of(
    tiny: Path,
    axes: str = "{multiplier: [dsp, lut], parallelism: [auto, full]}",
    steps: str = "[convert, predict]",
):
    path = tiny / "engine.yml"
    path.write_text(
        "model: model.json\nweights: model_weights.h5\ninput: x.npy\nlabels: y.npy\n"
        f"axes: {axes}\nsteps: {steps}\ncluster: {{local: {{workers: 2}}}}\n"
    )
    return load_spec(path)


def test_four_point_sweep_writes_table_pareto_and_plots(tiny, tmp_path):
    out = tmp_path / "out"
    run = run_sweep(spec_of(tiny), out, console=quiet())
    assert run.computed == 5 and run.cached == 0  # 4 converts, 1 shared predict
    document = json.loads((out / "results.json").read_text())
    assert document["points"] == 4 and document["status"] == {"ok": 4}
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert {
        "latency_cycles",
        "ii_cycles",
        "multipliers",
        "accuracy",
        "convert_seconds",
        "convert_cached",
    } <= set(rows[0])
    pareto = json.loads((out / "pareto.json").read_text())
    assert pareto["rows"] and pareto["metric"] == "accuracy"
    plots = sorted(p.name for p in out.glob("*.png"))
    assert plots and all((out / p).read_bytes()[:4] == b"\x89PNG" for p in plots)


@pytest.mark.slow  # the default run stays under 5 minutes
def test_second_run_of_the_same_spec_does_no_work(tiny, tmp_path):
    out = tmp_path / "out"
    run_sweep(spec_of(tiny), out, console=quiet())
    again = run_sweep(spec_of(tiny), out, console=quiet())
    assert again.computed == 0 and again.cached == 5
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert {r["convert_cached"] for r in rows} == {"True"} and {r["status"] for r in rows} == {"ok"}


@pytest.mark.slow  # two sweeps: the default run stays under 5 minutes
def test_changed_axis_value_recomputes_only_the_new_points(tiny, tmp_path):
    out = tmp_path / "out"
    run_sweep(spec_of(tiny), out, console=quiet())
    changed = run_sweep(
        spec_of(tiny, axes="{multiplier: [dsp, auto], parallelism: [auto, full]}"),
        out,
        console=quiet(),
    )
    computed = sorted(o.step for o in changed.outcomes.values() if not o.cached)
    assert computed == [Step.CONVERT, Step.CONVERT]  # multiplier=auto x 2; dsp and predict reused
    assert changed.cached == 3


# ---------------------------------------------------------------------------------------
# Steps substituted by tests; module-level, so workers import them by reference.
def slow_convert(started: Path, params, work, upstream):
    """convert, after announcing the worker's pid and sleeping (time to kill the worker)."""
    started.mkdir(exist_ok=True)
    (started / f"{os.getpid()}-{time.monotonic_ns()}").write_text(params.multiplier)
    time.sleep(1.5)
    return convert_step(params, work, upstream)


def lut_fails(params, work, upstream):
    if params.multiplier == "lut":
        raise RtlgenError(f"multiplier {params.multiplier}: refused\nby the test")
    return convert_step(params, work, upstream)


def lut_crashes(params, work, upstream):
    if params.multiplier == "lut":
        raise KeyError("a bug")
    return convert_step(params, work, upstream)


def fake_synth(params, work, upstream):
    return {"luts": 10, "ffs": 5, "dsps": 0}


def kill_first_worker(started: Path, killed: list[int]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        announced = list(started.glob("*")) if started.is_dir() else []
        if announced:
            pid = int(announced[0].name.split("-")[0])
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            return
        time.sleep(0.05)


# Slow set (run serially): it kills a Dask worker process, which is timing-sensitive beside
# another pytest-xdist worker on a loaded 2-core machine.
@pytest.mark.slow
def test_killing_a_worker_mid_sweep_loses_no_point(tiny, tmp_path):
    started = tmp_path / "started"
    functions = {**STEP_FUNCTIONS, Step.CONVERT: functools.partial(slow_convert, started)}
    killed: list[int] = []
    killer = threading.Thread(target=kill_first_worker, args=(started, killed))
    killer.start()
    run = run_sweep(spec_of(tiny), tmp_path / "out", console=quiet(), functions=functions)
    killer.join()
    assert len(killed) == 1
    rows = json.loads((tmp_path / "out" / "results.json").read_text())["rows"]
    assert [r["status"] for r in rows] == ["ok"] * 4
    assert len(list(started.iterdir())) >= 5  # the killed task started again elsewhere
    assert run.computed == 5
    leftovers = [p.name for p in (tmp_path / "out" / "store" / "convert").iterdir()]
    assert not [name for name in leftovers if name.startswith(".tmp-")]


@pytest.mark.slow  # the default run stays under 5 minutes
def test_failing_points_are_recorded_with_their_reason_and_the_sweep_goes_on(tiny, tmp_path):
    functions = {**STEP_FUNCTIONS, Step.CONVERT: lut_fails, Step.SYNTH: fake_synth}
    out = tmp_path / "out"
    run = run_sweep(
        spec_of(tiny, steps="[convert, predict, synth]"), out, console=quiet(), functions=functions
    )
    rows = list(csv.DictReader((out / "results.csv").open()))
    by_style = {(r["multiplier"], r["parallelism"]): r for r in rows}
    failed = by_style["lut", "auto"]
    assert failed["status"] == "failed"
    assert failed["reason"] == "convert: multiplier lut: refused by the test"
    assert failed["luts"] == ""  # synth skipped: its design was never made
    assert {r["status"] for r in rows if r["multiplier"] == "dsp"} == {"ok"}
    assert {r["luts"] for r in rows if r["multiplier"] == "dsp"} == {"10"}
    # a failed step is not stored: the next run tries it again
    assert sum(o.status == "failed" for o in run.outcomes.values()) == 2


@pytest.mark.slow  # the default run stays under 5 minutes
def test_a_bug_in_a_step_is_an_error_row_after_bounded_retries(tiny, tmp_path):
    functions = {**STEP_FUNCTIONS, Step.CONVERT: lut_crashes}
    out = tmp_path / "out"
    run_sweep(
        spec_of(tiny, axes="{multiplier: [dsp, lut]}"), out, console=quiet(), functions=functions
    )
    rows = {r["multiplier"]: r for r in csv.DictReader((out / "results.csv").open())}
    assert rows["dsp"]["status"] == "ok"
    assert rows["lut"]["status"] == "error"
    assert rows["lut"]["reason"].startswith("convert: internal error: KeyError")


@pytest.mark.slow  # the default run stays under 5 minutes
@pytest.mark.parametrize("planted", ["results.csv", "store"])
def test_a_symlink_planted_in_the_output_is_not_followed(tiny, tmp_path, planted):
    out = tmp_path / "out"
    run_sweep(spec_of(tiny, axes="{multiplier: [dsp]}"), out, console=quiet())
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep").write_text("mine")
    target = out / planted
    if planted == "store":
        import shutil

        shutil.rmtree(target)
        os.symlink(victim, target)
        with pytest.raises(RtlgenError, match="store is not a folder rtlgen wrote"):
            run_sweep(spec_of(tiny, axes="{multiplier: [dsp]}"), out, console=quiet())
    else:
        target.unlink()
        os.symlink(victim / "keep", target)
        run_sweep(spec_of(tiny, axes="{multiplier: [dsp]}"), out, console=quiet())
        assert not target.is_symlink()
    assert (victim / "keep").read_text() == "mine" and sorted(os.listdir(victim)) == ["keep"]


@pytest.mark.slow
def test_every_hardware_step_runs_for_real_and_fills_its_figures(tiny, tmp_path, monkeypatch):
    """Verilator, Yosys and nextpnr on the tiny model: about a minute."""
    monkeypatch.setenv("RTLGEN_CACHE_DIR", str(tmp_path / "cache"))
    path = tiny / "hardware.yml"
    path.write_text(
        "model: model.json\nweights: model_weights.h5\ninput: x.npy\nlabels: y.npy\n"
        "axes: {multiplier: [lut]}\nsteps: [convert, predict, sim, synth, pnr]\n"
        "sim: {samples: 4, backpressure: 0.2}\nsynth: {family: ecp5}\ncluster: {local: {workers: 1}}\n"
    )
    out = tmp_path / "out"
    run_sweep(load_spec(path), out, console=quiet())
    row = next(csv.DictReader((out / "results.csv").open()))
    assert row["status"] == "ok" and row["sim_passed"] == "True" and row["agreement"] == "1"
    assert int(row["luts"]) > 0 and float(row["fmax_mhz"]) > 0 and int(row["pnr_lut4"]) > 0
    assert (out / "accuracy_vs_luts.png").is_file()
