"""A C++-harness run split over processes (`run_harness(..., jobs=N)`, `rtlgen sim --jobs`).

The samples go in contiguous shards to concurrent processes of the same binary, each from its
own reset; the merged result must be what one process gives: the same outputs, verdict,
mismatch counts, first mismatch (global sample number) and one-line report, with or without
backpressure. Timing figures keep their meaning (latency: worst sample; II: inside a shard;
cycles: the shards' streaming cycles added up).
"""

from __future__ import annotations

import contextlib
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from rtlgen import cli
from rtlgen.quant.errors import RtlgenError
from rtlgen.sim_tb import harness_cpp
from rtlgen.sim_tb.harness_cpp import (
    MIN_SHARD_SAMPLES,
    _merge,
    _Shard,
    default_jobs,
    shard_bounds,
    shard_seed,
)
from rtlgen.sim_tb.runner import simulate

from . import dut

SAMPLES = 40
#: what a sharded run must give exactly as one process does
SAME = (
    "passed",
    "report",
    "images",
    "mismatches",
    "mismatched_elements",
    "first_mismatch",
    "tlast_errors",
    "tuser_errors",
    "extra_beats",
    "error",
    "timing_under_backpressure",
)


def _vectors(seed: int = 1, count: int = SAMPLES):
    x_int = dut.random_inputs(count, seed)
    return x_int, dut.reference(x_int)


def _runs(outdir, x_int, y_int, build_root, jobs=(1, 3), **options):
    results = []
    for n in jobs:
        result = simulate(
            outdir, x_int, y_int, build_root=build_root, harness="cpp", jobs=n, **options
        )
        written = json.loads((result.results_dir / "sim_result.json").read_text())
        results.append((result, written))
    return results


def _same(one, many) -> None:
    assert {f: getattr(many, f) for f in SAME} == {f: getattr(one, f) for f in SAME}
    for name, y in one.y_sim_outputs.items():
        np.testing.assert_array_equal(many.y_sim_outputs[name], y)
    strip = ("ii_cycles", "latency_cycles")  # timing: see the tests below
    assert [{k: v for k, v in o.items() if k not in strip} for o in many.outputs] == [
        {k: v for k, v in o.items() if k not in strip} for o in one.outputs
    ]


# ----------------------------------------------------------------------------- no simulator
def test_shards_are_contiguous_near_equal_and_never_empty():
    assert shard_bounds(10, 3) == ((0, 4), (4, 7), (7, 10))
    assert shard_bounds(10, 1) == ((0, 10),)
    assert shard_bounds(3, 8) == ((0, 1), (1, 2), (2, 3))  # more processes than samples
    for samples in (1, 7, 100, 1001):
        for jobs in (1, 2, 5, 64):
            bounds = shard_bounds(samples, jobs)
            assert bounds[0][0] == 0 and bounds[-1][1] == samples
            assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:], strict=False))
            sizes = [stop - start for start, stop in bounds]
            assert min(sizes) >= 1 and max(sizes) - min(sizes) <= 1


def test_default_is_one_process_per_cpu_for_large_runs_only():
    assert default_jobs(MIN_SHARD_SAMPLES * 2 - 1, cpus=4) == 1  # small runs keep one
    assert default_jobs(MIN_SHARD_SAMPLES * 2, cpus=4) == 2
    assert default_jobs(10**6, cpus=2) == 2
    assert default_jobs(10, cpus=8) == 1 and default_jobs(10**6, cpus=1) == 1
    assert default_jobs(10**6) == harness_cpp.usable_cpus()


def test_shard_seeds_keep_the_single_run_pattern_in_shard_0_and_differ_after():
    assert shard_seed(7, 0, "in") == "7/in" and shard_seed(7, 0, "out1") == "7/out1"
    seeds = {shard_seed(7, k, stream) for k in range(4) for stream in ("in", "out", "in1")}
    assert len(seeds) == 12 and shard_seed(7, 2, "out") == "7/shard2/out"


def _shard(start, stop, firsts, ends, end_cycle, complete=True, extra=0):
    count = len(ends)
    data = np.arange(count + extra, dtype=np.int64).reshape(-1, 1) + 100 * start
    meta = np.zeros((count + extra, 3), dtype=np.int64)
    meta[:, 0] = [*ends, *([end_cycle + 5] * extra)]
    summary = {"complete": complete, "end_cycle": end_cycle, "inputs": [(count, 0)]}
    return _Shard(start, stop, 1000, summary, np.array(firsts, dtype=np.int64), ((data, meta),))


def test_merge_puts_the_shards_on_one_timeline_and_keeps_latency_and_ii():
    shards = [
        _shard(0, 3, [2, 6, 10], [7, 11, 15], 15),
        _shard(3, 5, [3, 9], [8, 14], 14, extra=1),  # an extra beat: dropped, counted
        _shard(5, 6, [2], [7], 7),
    ]
    merged = _merge(shards, [1])
    # shard 1 starts where shard 0 ended (15), shard 2 where shard 1 ended (15 + 14 - 3 = 26)
    np.testing.assert_array_equal(merged.firsts, [2, 6, 10, 15, 21, 26])
    values, meta = merged.outputs[0]
    np.testing.assert_array_equal(meta[:, 0], [7, 11, 15, 20, 26, 31])
    np.testing.assert_array_equal(values[:, 0], [0, 1, 2, 300, 301, 500])
    assert merged.extra == (1,) and merged.incomplete is None
    assert merged.end_cycle - merged.firsts[0] == (15 - 2) + (14 - 3) + (7 - 2)
    assert merged.ii == 6  # inside shard 1, not across the boundaries
    assert (meta[:, 0] - merged.firsts).max() == 5  # latencies unchanged


def test_merge_stops_at_the_first_incomplete_shard():
    shards = [
        _shard(0, 2, [2, 6], [7, 11], 11),
        _shard(2, 4, [2, 6], [7], 50, complete=False),
        _shard(4, 6, [2, 6], [7, 11], 11),
    ]
    merged = _merge(shards, [1])
    assert merged.incomplete == 1 and len(merged.outputs[0][0]) == 3
    assert len(merged.firsts) == 4


def test_jobs_are_refused_where_they_cannot_apply(chansum_outdir):
    x_int, y_int = _vectors(count=4)
    with pytest.raises(RtlgenError, match="needs the C.. harness"):
        simulate(chansum_outdir, x_int, y_int, harness="cocotb", jobs=2)
    for jobs in (0, 2.0, True):
        with pytest.raises(RtlgenError, match="must be a whole number"):
            simulate(chansum_outdir, x_int, y_int, harness="cpp", jobs=jobs)


def test_cli_option_parses_to_an_int_and_reaches_simulate(tmp_path, monkeypatch):
    seen = {}

    class Passed:
        passed = True

    def fake(*args, **options):
        seen.update(options)
        return Passed()

    monkeypatch.setattr(cli, "_simulate", fake)
    runner = CliRunner()
    result = runner.invoke(cli.app, ["sim", str(tmp_path), "-i", "x.npy", "--jobs", "3"])
    assert result.exit_code == 0, result.output
    assert seen["jobs"] == 3 and type(seen["jobs"]) is int
    seen.clear()
    assert runner.invoke(cli.app, ["sim", str(tmp_path), "-i", "x.npy"]).exit_code == 0
    assert seen["jobs"] is None  # the runner's default_jobs
    for bad in ("0", "two"):
        result = runner.invoke(cli.app, ["sim", str(tmp_path), "-i", "x.npy", "--jobs", bad])
        assert result.exit_code == 2


def test_cli_passes_jobs_on_to_the_runner(tmp_path, monkeypatch):
    """`_simulate` hands the typed value to `runner.simulate` (stubbed after the model)."""
    seen = {}

    def fake_simulate(*args, **options):
        seen.update(options)
        raise RuntimeError("stop here")

    monkeypatch.setattr("rtlgen.sim_tb.runner.simulate", fake_simulate)
    monkeypatch.setattr("rtlgen.manifest.read_manifest", _FakeManifest)
    monkeypatch.setattr("rtlgen.api.load_model", lambda path: _FakeGraph())
    monkeypatch.setattr("rtlgen.api.input_names", lambda graph: ("x",))
    monkeypatch.setattr("rtlgen.api.named_outputs", lambda graph, y: {"y": y})
    monkeypatch.setattr("rtlgen.quant.reference.run_int_outputs", lambda graph, x: x)
    monkeypatch.setattr(cli, "_load_inputs", lambda path, graph: np.zeros((2, 1)))
    monkeypatch.setattr(cli, "_quantize_input", lambda graph, x: _Quantized(x))
    with pytest.raises(RuntimeError, match="stop here"):
        cli._simulate(tmp_path, tmp_path / "x.npy", None, 0.0, 0, False, jobs=5)
    assert seen["jobs"] == 5 and seen["harness"] == "auto"


class _FakeManifest:
    input_names = ("x",)
    output_names = ("y",)
    graph_path = "graph.npz"

    def __init__(self, outdir):
        pass


class _FakeGraph:
    input_nodes = ("x",)


class _Quantized:
    def __init__(self, x):
        self.mantissas = x


# ----------------------------------------------------------------------------- Verilator
@pytest.mark.parametrize("backpressure", [0.0, 0.4])
def test_sharded_and_single_runs_agree(chansum_outdir, build_root, backpressure):
    x_int, y_int = _vectors(seed=3)
    (one, one_json), (many, many_json) = _runs(
        chansum_outdir, x_int, y_int, build_root, backpressure=backpressure, seed=11
    )
    assert one.passed and many.passed, many.report
    _same(one, many)
    assert (one_json["shards"], many_json["shards"]) == (1, 3)
    log = (many.results_dir / "sim.log").read_text()
    assert "== shard 2 of 3: samples 27-39" in log
    if backpressure == 0.0:  # at full rate every shard streams as the single run does
        assert (
            (many.latency_cycles, many.ii_cycles) == (one.latency_cycles, one.ii_cycles) == (5, 4)
        )
        # three shards (14, 13, 13 samples) each pay the latency once
        assert one.cycles == 5 + 4 * (SAMPLES - 1) and many.cycles == 3 * 5 + 4 * (SAMPLES - 3)
        assert not many.input_stalled
    else:
        assert many.cycles > 3 * 5 + 4 * (SAMPLES - 3)  # the pauses did happen


def test_a_mismatch_in_a_late_shard_names_its_global_sample(faulty_outdir, build_root):
    x_int, y_int = _vectors(seed=2)
    x_int[37, 0, 2] = dut.FAULT_DATA
    (one, _), (many, _) = _runs(faulty_outdir, x_int, y_int, build_root, backpressure=0.2, seed=1)
    assert not many.passed and many.first_mismatch.sample == 37
    assert "1 of 40 samples differ; first: sample 37, output [1]" in many.report
    _same(one, many)


def test_a_wrong_expectation_is_reported_alike(chansum_outdir, build_root):
    x_int, y_int = _vectors(seed=5)
    y_int[30, 0] += 1
    y_int[33, 1] -= 1
    (one, _), (many, _) = _runs(chansum_outdir, x_int, y_int, build_root, jobs=(1, 2))
    assert many.mismatches == 2 and many.first_mismatch.sample == 30
    _same(one, many)


def test_a_timeout_names_its_shard(faulty_outdir, build_root, monkeypatch):
    monkeypatch.setenv("RTLGEN_TIMEOUT_CYCLES", "400")
    x_int, y_int = _vectors(seed=2, count=20)
    x_int[12, 0, 2] = dut.FAULT_LOSE
    (one, _), (many, _) = _runs(faulty_outdir, x_int, y_int, build_root, jobs=(1, 2))
    assert one.error.startswith("timeout after 400 cycles: 19 of 20 output beats")
    assert many.error.startswith(
        "timeout after 400 cycles in shard 1 of 2 (samples 10-19): 19 of 20 output beats"
    )
    assert many.first_mismatch == one.first_mismatch and many.first_mismatch.sample == 12
    np.testing.assert_array_equal(many.y_sim[:12], y_int[:12])


def test_more_processes_than_samples(chansum_outdir, build_root):
    x_int, y_int = _vectors(count=3)
    (one, _), (many, written) = _runs(chansum_outdir, x_int, y_int, build_root, jobs=(1, 8))
    assert written["shards"] == many.shards == 3 and many.passed
    _same(one, many)
    assert many.ii_cycles is None  # one sample per shard: no gap inside a shard
    assert many.latency_cycles == one.latency_cycles == 5


def test_one_process_is_the_run_it_was(chansum_outdir, build_root):
    """jobs=1 (and the default for a small run) writes what the harness wrote before shards:
    one log without shard headers, the single-run timing."""
    x_int, y_int = _vectors()
    (one, written), (default, _) = _runs(chansum_outdir, x_int, y_int, build_root, jobs=(1, None))
    assert written["shards"] == 1 and "== shard" not in (one.results_dir / "sim.log").read_text()
    _same(one, default)
    assert (one.cycles, default.cycles) == (5 + 4 * (SAMPLES - 1),) * 2


@pytest.mark.slow  # a Verilator run about progress output (~6 s); the default set stays < 5 min
def test_each_process_end_is_a_progress_note(chansum_outdir, build_root):
    x_int, y_int = _vectors(count=8)
    notes: list[str] = []

    @contextlib.contextmanager
    def progress(message):
        notes.append(message)
        yield notes.append

    result = simulate(
        chansum_outdir,
        x_int,
        y_int,
        build_root=build_root,
        harness="cpp",
        jobs=2,
        progress=progress,
    )
    assert result.passed and result.shards == 2
    assert notes[-3:] == [
        "simulating 8 samples (C++ harness, 2 processes)",
        "1 of 2 processes done",
        "2 of 2 processes done",
    ]
