"""The compiled C++ harness (rtlgen.sim_tb.harness_cpp) against the cocotb testbench.

Both drive the same design with the same pause patterns (harness.cpp reimplements CPython's
Mersenne Twister), so beyond identical outputs they must agree cycle for cycle: latency, II,
streaming cycles, stalls and the one-line report, correct or faulty design alike.
"""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from rtlgen.quant.errors import RtlgenError
from rtlgen.sim_tb import harness_cpp
from rtlgen.sim_tb.harness_cpp import (
    AUTO_MIN_SAMPLES,
    BINARY,
    build_harness,
    choose_harness,
    seed_key,
)
from rtlgen.sim_tb.runner import SimulationError, simulate
from rtlgen.sim_tb.tb_manifest import load_manifest
from rtlgen.sim_tb.tb_run import BUILD_MARKER, build_key

from . import dut

SAMPLES = 40


def _vectors(seed: int = 1, count: int = SAMPLES, out_beats: int = 1):
    x_int = dut.random_inputs(count, seed)
    return x_int, dut.reference(x_int, out_beats=out_beats)


def _both(outdir, x_int, y_int, build_root, **options):
    return [
        simulate(outdir, x_int, y_int, build_root=build_root, harness=harness, **options)
        for harness in ("cpp", "cocotb")
    ]


def _same_run(cpp, cocotb) -> None:
    """Outputs, verdict, report and every cycle figure identical."""
    for name, y in cocotb.y_sim_outputs.items():
        np.testing.assert_array_equal(cpp.y_sim_outputs[name], y)
    fields = (
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
        "latency_cycles",
        "ii_cycles",
        "timing_under_backpressure",
        "input_stalled",
        "cycles",
    )
    assert {f: getattr(cpp, f) for f in fields} == {f: getattr(cocotb, f) for f in fields}
    assert cpp.outputs == cocotb.outputs


# ----------------------------------------------------------------------------- no simulator
def test_auto_takes_the_compiled_harness_for_large_runs_only():
    assert choose_harness("auto", AUTO_MIN_SAMPLES) == "cpp"
    assert choose_harness("auto", AUTO_MIN_SAMPLES - 1) == "cocotb"
    assert choose_harness("auto", 10_000, waves=True) == "cocotb"
    assert choose_harness("auto", 10_000, simulator="icarus") == "cocotb"
    assert choose_harness("cpp", 1) == "cpp" and choose_harness("cocotb", 10_000) == "cocotb"


@pytest.mark.parametrize(
    ("harness", "options", "fragment"),
    [
        ("bogus", {}, "use one of auto, cpp, cocotb"),
        ("cpp", {"waves": True}, "--waves needs the cocotb harness"),
        ("cpp", {"simulator": "icarus"}, "Verilator only"),
    ],
)
def test_impossible_harness_choices_are_refused_in_one_line(harness, options, fragment):
    with pytest.raises(ValueError, match=fragment) as error:
        choose_harness(harness, 100, **options)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("seed", ["0/in", "7/out", "123/out3", "", "ü/in"])
def test_seed_key_is_cpythons_own_seeding_of_the_pause_generators(seed):
    """random.Random(text) seeds from the integer whose 32-bit words seed_key gives."""
    number = sum(word << (32 * k) for k, word in enumerate(seed_key(seed)))
    assert [random.Random(number).random() for _ in range(5)] == [
        random.Random(seed).random() for _ in range(5)
    ]
    assert seed_key(0) == [0] and seed_key(2**40 + 3) == [3, 2**8]


# ----------------------------------------------------------------------------- Verilator
def test_cpp_harness_is_bit_exact_with_known_timing(chansum_outdir, build_root):
    x_int, y_int = _vectors()
    result = simulate(chansum_outdir, x_int, y_int, build_root=build_root, harness="cpp")
    assert result.passed, result.report
    assert (result.images, result.mismatches, result.first_mismatch) == (SAMPLES, 0, None)
    np.testing.assert_array_equal(result.y_sim, y_int)
    assert (result.latency_cycles, result.ii_cycles) == (5, 4)
    assert result.cycles == 5 + 4 * (SAMPLES - 1)  # latency + (N - 1) * II
    assert not result.input_stalled and not result.timing_under_backpressure
    written = json.loads((chansum_outdir / "sim" / "sim_result.json").read_text())
    assert written["harness"] == "cpp" and written["cycles"] == result.cycles
    np.testing.assert_array_equal(np.load(chansum_outdir / "sim" / "sim_out.npy"), y_int)


@pytest.mark.parametrize("backpressure", [0.0, 0.4])
def test_both_harnesses_agree_cycle_for_cycle(chansum_outdir, backpressure, build_root):
    x_int, y_int = _vectors(seed=3)
    cpp, cocotb = _both(
        chansum_outdir, x_int, y_int, build_root, backpressure=backpressure, seed=11
    )
    assert cpp.passed, cpp.report
    _same_run(cpp, cocotb)
    if backpressure:
        assert cpp.cycles > 5 + 4 * (SAMPLES - 1)  # the pauses did happen


@pytest.mark.slow  # one more design to build; the default set keeps chansum and the faulty one
def test_both_harnesses_agree_on_multi_beat_outputs_and_input_stalls(two_beat_outdir, build_root):
    x_int, y_int = _vectors(seed=4, out_beats=2)
    cpp, cocotb = _both(two_beat_outdir, x_int, y_int, build_root, backpressure=0.3, seed=2)
    assert cpp.passed and cpp.input_stalled
    _same_run(cpp, cocotb)


@pytest.mark.parametrize("jobs", [1, 3])  # 3: every shard's patterns come from the seed too
def test_seeds_change_the_pattern_reproducibly(chansum_outdir, build_root, jobs):
    x_int, y_int = _vectors(count=12)
    cycles = [
        simulate(
            chansum_outdir,
            x_int,
            y_int,
            backpressure=0.5,
            seed=seed,
            build_root=build_root,
            harness="cpp",
            jobs=jobs,
        ).cycles
        for seed in (3, 3, 4)
    ]
    assert cycles[0] == cycles[1] != cycles[2]


@pytest.mark.parametrize(
    ("fault", "sample", "fragment"),
    [
        (dut.FAULT_DATA, 5, "1 of 40 samples differ; first: sample 5, output [1]"),
        # tuser and tlast faults: in the slow set (the default run stays under 5 minutes)
        pytest.param(dut.FAULT_TUSER, 3, "m_axis_tuser is", marks=pytest.mark.slow),
        pytest.param(
            dut.FAULT_TLAST, 8, "m_axis_tlast is 0 on output beat 8", marks=pytest.mark.slow
        ),
    ],
)
def test_faults_get_the_same_report_from_both_harnesses(
    faulty_outdir, build_root, fault, sample, fragment
):
    x_int, y_int = _vectors(seed=2)
    x_int[sample, 0, 2] = fault
    cpp, cocotb = _both(faulty_outdir, x_int, y_int, build_root, backpressure=0.2, seed=1)
    assert not cpp.passed and fragment in cpp.report
    _same_run(cpp, cocotb)


def test_a_lost_sample_times_out_with_the_same_report(faulty_outdir, build_root, monkeypatch):
    monkeypatch.setenv("RTLGEN_TIMEOUT_CYCLES", "400")
    x_int, y_int = _vectors(seed=2, count=20)
    x_int[2, 0, 2] = dut.FAULT_LOSE
    cpp, cocotb = _both(faulty_outdir, x_int, y_int, build_root)
    assert not cpp.passed and cpp.error.startswith(
        "timeout after 400 cycles: 19 of 20 output beats"
    )
    assert cpp.error == cocotb.error and cpp.report == cocotb.report
    np.testing.assert_array_equal(cpp.y_sim[:2], y_int[:2])


def test_build_is_cached_beside_the_cocotb_build(chansum_outdir, build_root):
    manifest = load_manifest(chansum_outdir / "manifest.json")
    first = build_harness(manifest, build_root)
    binary = first / "obj" / BINARY
    built = binary.stat().st_mtime_ns
    assert build_harness(manifest, build_root) == first
    assert binary.stat().st_mtime_ns == built  # reused, not rebuilt
    marker = json.loads((first / BUILD_MARKER).read_text())
    assert marker["harness"] == "cpp" and marker["top"] == manifest.top
    assert not [*(first / "obj").glob("*.o"), *(first / "obj").glob("*.gch")]  # binary only
    assert first.parent == build_root.resolve() and first.name != build_key(manifest)


@pytest.mark.parametrize(
    ("setting", "value"),
    [("MODEL_CXX_OPT", "OPT_FAST=-O1"), ("SPLIT_CFUNCS", 2000)],
)
def test_every_model_option_is_part_of_the_build_key(chansum_outdir, monkeypatch, setting, value):
    """A binary built with other C++ or Verilator options is never reused for these."""
    manifest = load_manifest(chansum_outdir / "manifest.json")
    default = harness_cpp._key(manifest, threads=1)
    assert harness_cpp._key(manifest, threads=2) != default
    assert harness_cpp._key(manifest, threads=1, extra_args=["--prof-cfuncs"]) != default
    monkeypatch.setattr(harness_cpp, setting, value)
    assert harness_cpp._key(manifest, threads=1) != default


@pytest.mark.slow  # a second build of the test design
def test_extra_verilator_args_build_another_binary_with_the_same_results(
    chansum_outdir, build_root, tmp_path
):
    """build_harness(extra_args=["--prof-cfuncs"]) (the benchmark's profile build) is a build
    of its own, named per statement, and simulates exactly as the plain one."""
    manifest = load_manifest(chansum_outdir / "manifest.json")
    plain_dir = build_harness(manifest, build_root)
    profiled_dir = build_harness(manifest, build_root, extra_args=["--prof-cfuncs"])
    assert profiled_dir != plain_dir
    assert "--prof-cfuncs" in (profiled_dir / "build.log").read_text().splitlines()[0]
    assert list((profiled_dir / "obj").glob("*.cpp"))
    named = [
        path
        for path in (profiled_dir / "obj").glob("Vtop___024root__*.cpp")
        if "__PROF__" in path.read_text()
    ]
    assert named, "no function named by its Verilog statement"
    x_int, y_int = _vectors(seed=5, count=12)
    outputs = {manifest.outputs[0].name: y_int}
    runs = [
        harness_cpp.run_harness(
            manifest, folder, x_int=x_int, y_int=outputs, results_dir=tmp_path / folder.name
        )
        for folder in (plain_dir, profiled_dir)
    ]
    assert runs[0]["passed"] and runs[1]["passed"]
    assert runs[0]["cycles"] == runs[1]["cycles"] and runs[0]["report"] == runs[1]["report"]


def test_a_wrapper_runs_the_same_binary_and_a_failing_one_is_an_error(
    chansum_outdir, build_root, tmp_path
):
    """run_harness(wrapper=...) (valgrind in the benchmark) runs the binary under a command:
    the same results through `env`, a SimulationError through a wrapper that fails."""
    manifest = load_manifest(chansum_outdir / "manifest.json")
    build_dir = build_harness(manifest, build_root)
    x_int, y_int = _vectors(count=6)
    outputs = {manifest.outputs[0].name: y_int}
    plain = harness_cpp.run_harness(
        manifest, build_dir, x_int=x_int, y_int=outputs, results_dir=tmp_path / "plain"
    )
    wrapped = harness_cpp.run_harness(
        manifest,
        build_dir,
        x_int=x_int,
        y_int=outputs,
        results_dir=tmp_path / "env",
        wrapper=["env"],
    )
    assert plain["passed"] and wrapped["passed"] and wrapped["cycles"] == plain["cycles"]
    with pytest.raises(SimulationError, match="exit code 1"):
        harness_cpp.run_harness(
            manifest,
            build_dir,
            x_int=x_int,
            y_int=outputs,
            results_dir=tmp_path / "f",
            wrapper=["false"],
        )


def test_cpp_with_waves_is_a_user_error(chansum_outdir, build_root):
    x_int, y_int = _vectors(count=4)
    with pytest.raises(RtlgenError, match="--waves needs the cocotb harness"):
        simulate(chansum_outdir, x_int, y_int, build_root=build_root, harness="cpp", waves=True)


def test_broken_verilog_fails_the_build_with_its_log(tmp_path, build_root):
    dut.write_outdir(tmp_path, top="broken_cpp")
    (tmp_path / "rtl" / "broken_cpp.v").write_text(
        "module broken_cpp(input clk);\n  wire = ;\nendmodule\n"
    )
    x_int, y_int = _vectors(count=2)
    with pytest.raises(SimulationError) as error:
        simulate(tmp_path, x_int, y_int, build_root=build_root, harness="cpp")
    message = str(error.value)
    assert "\n" not in message and "C++ harness" in message and "build.log" in message


# ----------------------------------------------------------------------------- networks (slow)
@pytest.mark.slow
def test_demo_cnn_both_harnesses_agree_under_backpressure(tmp_path, build_root):
    """The demo CNN: 16-bit logits on a 160-bit tdata (VlWide), tuser = class."""
    from rtlgen.api import load_model
    from rtlgen.demo import demo_files
    from rtlgen.emit import convert
    from rtlgen.quant.reference import run_int

    model_json, weights, samples = demo_files()
    with np.load(samples) as data:
        graph = load_model(model_json, weights=weights, input_type=str(data["input_type"]))
    design = convert(graph, tmp_path / "demo")
    t = graph.input.out_type
    x = np.random.default_rng(0).integers(
        t.min_int, t.max_int + 1, size=(AUTO_MIN_SAMPLES, *graph.input_shape)
    )
    cpp, cocotb = _both(design.outdir, x, run_int(graph, x), build_root, backpressure=0.3, seed=5)
    assert cpp.passed, cpp.report
    _same_run(cpp, cocotb)
    auto = simulate(design.outdir, x, run_int(graph, x), build_root=build_root)
    assert auto.passed and auto.latency_cycles == design.manifest.latency_cycles
    assert json.loads((design.outdir / "sim" / "sim_result.json").read_text())["harness"] == "cpp"


@pytest.mark.slow
def test_wide_ports_several_inputs_and_outputs(tmp_path, build_root):
    """tdata of 120 and more bits (VlWide), two slaves with their own gaps, two masters."""
    from rtlgen.emit import convert
    from rtlgen.quant.reference import run_int_outputs

    from ..rtlgen.nets import mlp, random_inputs
    from ..rtlgen.test_multi_input import random_inputs as multi_inputs
    from ..rtlgen.test_multi_input import two_vector_mlp
    from ..rtlgen.test_multi_output import two_head_mlp

    for name, graph, x in [
        ("wide", mlp(sizes=(12, 9, 10), seed=3), None),
        ("two_in", two_vector_mlp(seed=1), None),
        ("two_out", two_head_mlp(seed=2), None),
    ]:
        x = (
            multi_inputs(graph, 24, 4)
            if len(graph.input_nodes) > 1
            else random_inputs(graph, 24, 4)
        )
        design = convert(graph, tmp_path / name)
        want = dict(
            zip(design.manifest.output_names, run_int_outputs(graph, x).values(), strict=True)
        )
        y = want if len(want) > 1 else next(iter(want.values()))
        if isinstance(x, dict):
            x = dict(zip(design.manifest.input_names, x.values(), strict=True))
        cpp, cocotb = _both(design.outdir, x, y, build_root, backpressure=0.4, seed=3)
        assert cpp.passed, f"{name}: {cpp.report}"
        _same_run(cpp, cocotb)
        full = simulate(design.outdir, x, y, build_root=build_root, harness="cpp")
        assert full.passed and full.latency_cycles == design.manifest.latency_cycles, name
        assert full.ii_cycles == design.manifest.ii_cycles, name
