"""The command line as a user meets it: exit codes, one-line errors, written files.

The demo CNN is converted once per test process (`demo_conversion`, tests/rtlgen/conftest.py);
commands whose test is about what they print and write run in this process
(`rtlgen_in_process`), the others as a user runs them (`rtlgen`, a subprocess)."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests.rtlgen.cli_run import DATA, DEMO_OPTIONS, rtlgen, rtlgen_in_process
from tests.rtlgen.cli_run import DEMO_MODEL as MODEL


@pytest.mark.parametrize(
    "args,message",
    [
        (["inspect", "/nonexistent/model.h5"], "does not exist"),
        (["inspect", "/etc/hostname"], "not valid JSON"),
        (["inspect", str(DATA / "demo_cnn.json")], "weights"),
        (
            ["convert", *MODEL, "-o", "{tmp}/out", "--input-type", "float32"],
            "cannot parse precision 'float32'",
        ),
        (["predict", *MODEL, "-i", "{tmp}/missing.npy", "-o", "{tmp}/y.npy"], "does not exist"),
        (["sim", "{tmp}", "-i", "{tmp}/x.npy"], "no manifest.json"),
        (
            ["convert", *MODEL, "-o", "{tmp}/out", "--adders-per-stage", "9"],
            "adders per stage 9 is not supported",
        ),
    ],
)
def test_user_errors_are_one_line_with_exit_code_2(tmp_path, args, message):
    result = rtlgen(*[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.stderr


#: what the command line loads only when a command computes (each a tenth of a second or more)
HEAVY_MODULES = ("numpy", "h5py", "amaranth", "rtlgen.ops", "rtlgen.api")
START_PROBE = f"""
import contextlib, io, sys
from rtlgen.cli import run
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    codes = [run(argv) for argv in (["--help"], ["--version"], ["convert", "-h"], ["frobnicate"])]
print(codes, [name for name in {HEAVY_MODULES!r} if name in sys.modules])
"""


def test_help_version_and_usage_errors_start_without_the_heavy_modules():
    """Help, --version and a usage error answer without numpy, h5py, Amaranth or the op
    registry (rtlgen.quant loads its fixed-point module on first use, cli.py imports each
    command's modules inside the command)."""
    result = subprocess.run(
        [sys.executable, "-c", START_PROBE], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("] ", 1) == ["[0, 0, 0, 2", "[]\n"], result.stdout


def test_debug_shows_the_traceback(tmp_path):
    result = rtlgen("--debug", "inspect", "/nonexistent/model.h5")
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_inspect_json_lists_every_layer():
    result = rtlgen_in_process("inspect", *MODEL, "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert [row["op"] for row in info["layers"]] == [
        "input",
        "conv2d",
        "maxpool2d",
        "flatten",
        "dense",
    ]
    assert info["softmax"] is True


def test_convert_then_predict_on_outdir_matches_predict_on_model(tmp_path, demo_design):
    x = np.load(DATA / "demo_samples.npz")["x"][:5]
    np.save(tmp_path / "x.npy", x)
    out = demo_design  # `rtlgen convert` with DEMO_OPTIONS: --input-type fixed<8,1>
    manifest = json.loads((out / "manifest.json").read_text())
    assert (out / manifest["rtl"][0]).is_file() and (out / "REPORT.md").is_file()
    assert manifest["input"]["type"]["text"] == "fixed<8,1>"
    on_outdir = rtlgen_in_process(
        "predict", out, "-i", tmp_path / "x.npy", "-o", tmp_path / "a.npy"
    )
    assert on_outdir.returncode == 0, on_outdir.stderr
    on_model = rtlgen_in_process(
        "predict", *MODEL, *DEMO_OPTIONS, "-i", tmp_path / "x.npy", "-o", tmp_path / "b.npy"
    )
    assert on_model.returncode == 0, on_model.stderr
    a, b = np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy")
    assert a.shape == (5, 10) and np.array_equal(a, b)


def test_convert_is_reproducible_byte_for_byte(tmp_path, demo_design):
    again = tmp_path / "again"
    assert rtlgen("convert", *MODEL, "-o", again, *DEMO_OPTIONS).returncode == 0
    va = next((demo_design / "rtl").glob("*.v")).read_bytes()
    vb = next((again / "rtl").glob("*.v")).read_bytes()
    assert va == vb


def test_convert_refuses_to_overwrite_a_foreign_directory(tmp_path):
    target = tmp_path / "precious"
    target.mkdir()
    (target / "thesis.tex").write_text("do not delete")
    result = rtlgen("convert", *MODEL, "-o", target)
    assert result.returncode == 2 and "not an rtlgen design" in result.stderr
    assert (target / "thesis.tex").read_text() == "do not delete"
    assert [p.name for p in tmp_path.iterdir()] == ["precious"]  # no partial directory left


def test_package_writes_vivado_project_and_ip_scripts(tmp_path, demo_design):
    design = shutil.copytree(demo_design, tmp_path / "design")
    result = rtlgen_in_process(
        "package", design, "--part", "xcvu9p-flgb2104-2L-e", "--clock-mhz", "250"
    )
    assert result.returncode == 0, result.stderr
    vivado = design / "vivado"
    for name in ("build.tcl", "package_ip.tcl", "constraints.xdc"):
        assert (vivado / name).is_file()
    assert "create_clock -period 4.000" in (vivado / "constraints.xdc").read_text()


@pytest.mark.slow
def test_build_makes_an_ecp5_bitstream_of_the_demo_network(tmp_path):
    # `--multiplier lut`: the default plan's dense takes the flatten's beats as they arrive
    # with 40 shared multipliers, more than the 25F's 28 MULT18X18D (session 8)
    design = tmp_path / "demo"
    assert rtlgen("convert", *MODEL, "-o", design, "--multiplier", "lut").returncode == 0
    result = rtlgen("build", design, "--board", "ulx3s-25f", timeout=1200)  # ~1-3 min
    assert result.returncode == 0, result.stderr
    assert list((design / "board" / "ulx3s-25f").glob("*.bit"))
    assert "Fmax" in result.stdout


@pytest.mark.slow  # a Verilator build of the demo CNN of its own (fixed<8,1> input)
def test_sim_output_equals_predict_output(tmp_path):
    """`rtlgen sim --output` and `rtlgen predict --output` write the same format and values."""
    x = np.load(DATA / "demo_samples.npz")["x"][:6]
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "design"
    assert (
        rtlgen("convert", *MODEL, "-o", out, "--input-type", "fixed<8,1>", "--testbench").returncode
        == 0
    )
    assert (out / "tb" / "run.py").is_file()
    sim = rtlgen(
        "sim", out, "-i", tmp_path / "x.npy", "-o", tmp_path / "rtl.npy", "--backpressure", "0.3"
    )
    assert sim.returncode == 0, sim.stdout + sim.stderr
    assert "bit-exact" in sim.stdout
    assert (
        rtlgen("predict", out, "-i", tmp_path / "x.npy", "-o", tmp_path / "ref.npy").returncode == 0
    )
    assert np.array_equal(np.load(tmp_path / "rtl.npy"), np.load(tmp_path / "ref.npy"))


def test_convert_records_the_default_pipeline_options(demo_design):
    options = json.loads((demo_design / "manifest.json").read_text())["options"]
    assert options["pipeline"] == "balanced" and options["adders_per_stage"] == 2


@pytest.mark.slow  # each converts the demo CNN once more (~25 s on a loaded machine)
@pytest.mark.parametrize(
    "args, pipeline, adders",
    [
        (("--pipeline", "latency"), "latency", 6),
        (("--pipeline", "latency", "--adders-per-stage", "3"), "latency", 3),
    ],
)
def test_convert_records_the_pipeline_options_and_their_defaults(tmp_path, args, pipeline, adders):
    out = tmp_path / "design"
    result = rtlgen("convert", *MODEL, "-o", out, *args)
    assert result.returncode == 0, result.stderr
    options = json.loads((out / "manifest.json").read_text())["options"]
    assert options["pipeline"] == pipeline and options["adders_per_stage"] == adders


def test_unsupported_adders_per_stage_is_a_one_line_error(tmp_path):
    result = rtlgen_in_process("convert", *MODEL, "-o", tmp_path / "d", "--adders-per-stage", "9")
    assert result.returncode == 2
    assert (
        "adders per stage 9 is not supported" in result.stderr and "Traceback" not in result.stderr
    )
    assert not (tmp_path / "d").exists()


STEP = 2.0**-7  # --input-type fixed<8,1>: mantissas -128..127, values [-1, 127/128]


@pytest.mark.parametrize(
    "values, rounded, saturated",
    [
        ([0.5, -1.0, 127 * STEP, 3 * STEP], 0, 0),  # exactly representable
        (
            [STEP / 2, 3 * STEP / 2, 0.3, -1 - STEP / 2],
            4,
            0,
        ),  # halfway / between steps / onto an end
        ([1.0, -1.5, 40.0, 127.5 * STEP], 0, 4),  # out of range
        ([1e308, -1e308], 0, 2),  # scaled past float64's range
    ],
)
def test_predict_says_the_input_type_and_how_many_values_were_rounded_and_saturated(
    tmp_path, values, rounded, saturated
):
    x = np.zeros((2, 8, 8, 1))
    x.reshape(-1)[: len(values)] = values
    np.save(tmp_path / "x.npy", x)
    result = rtlgen(
        "predict",
        *MODEL,
        "--input-type",
        "fixed<8,1>",
        "-i",
        tmp_path / "x.npy",
        "-o",
        tmp_path / "y.npy",
    )
    assert result.returncode == 0 and result.stderr == "", result.stderr  # no warnings either
    assert (
        f"input type fixed<8,1> (range [-1, 0.992188], step 2^-7): {rounded} of 128 values rounded, "
        f"{saturated} saturated"
    ) in result.stdout


def test_inspect_shows_the_input_type_in_the_table_and_in_json():
    table = rtlgen_in_process("inspect", *MODEL, "--input-type", "fixed<12,4>")
    assert table.returncode == 0, table.stderr
    assert "input fixed<12,4>, range [-8, 7.99609], step 2^-8" in table.stdout
    info = json.loads(
        rtlgen_in_process("inspect", *MODEL, "--input-type", "fixed<12,4>", "--json").stdout
    )
    assert info["input"] == {
        "shape": [8, 8, 1],
        "type": "fixed<12,4>",
        "min": -8.0,
        "max": 8 - 2**-8,
        "step": 2**-8,
    }


def test_convert_in_a_log_shows_each_step_with_its_time(demo_conversion):
    lines = demo_conversion.run.stdout.splitlines()  # captured: stdout is no terminal
    assert "generating hardware ..." in lines
    assert any(line.startswith("generating hardware: done in ") for line in lines)
