"""`rtlgen demo`: the bundled model through the whole flow, Verilator included."""

import os
import subprocess
import sys

import pytest
from rich.console import Console

from rtlgen.demo import run_demo


@pytest.mark.parametrize(
    # the Verilator step (a build of the demo CNN: a minute) in the slow set
    "simulate", [False, pytest.param(True, marks=pytest.mark.slow)]
)
def test_demo_runs_the_whole_flow_bit_exact(tmp_path, simulate):
    console = Console(file=open(tmp_path / "log.txt", "w"), width=150)
    summary = run_demo(tmp_path / "demo", simulate=simulate, console=console)
    if not simulate:
        assert summary["keras_argmax_agreement"] == 1.0 and summary["keras_max_abs_error"] == 0.0
        assert summary["reference_accuracy"] > 0.85 and (tmp_path / "demo" / "manifest.json").is_file()
        return
    assert summary["keras_argmax_agreement"] == 1.0 and summary["keras_max_abs_error"] == 0.0
    assert summary["reference_accuracy"] > 0.85
    text = (tmp_path / "log.txt").read_text()
    assert "bit-exact" in text
    manifest_latency = __import__("json").loads((tmp_path / "demo" / "manifest.json").read_text())["latency_cycles"]
    assert summary["latency"] == manifest_latency


def _rtlgen_demo(*args, cwd, cache):
    env = {**os.environ, "RTLGEN_CACHE_DIR": str(cache)}
    return subprocess.run([sys.executable, "-m", "rtlgen", "demo", "--no-simulate", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


def test_demo_by_default_writes_into_the_cache_it_names_and_leaves_the_cwd_alone(tmp_path):
    cwd, cache = tmp_path / "checkout", tmp_path / "cache"
    cwd.mkdir()
    result = _rtlgen_demo(cwd=cwd, cache=cache)
    assert result.returncode == 0, result.stderr
    assert f"writing the demo design to {cache / 'demo'}" in result.stdout
    assert (cache / "demo" / "manifest.json").is_file()
    assert list(cwd.iterdir()) == []


@pytest.mark.parametrize("where", ["rtlgen-demo", "elsewhere/demo"])
def test_demo_writes_where_output_says(tmp_path, where):
    cwd, cache = tmp_path / "checkout", tmp_path / "cache"
    cwd.mkdir()
    result = _rtlgen_demo("-o", where, cwd=cwd, cache=cache)
    assert result.returncode == 0, result.stderr
    assert (cwd / where / "manifest.json").is_file()
    assert not (cache / "demo").exists()
