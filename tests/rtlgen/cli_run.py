"""Run the `rtlgen` command line as a user does: a subprocess, output captured as text; or,
where a test is about what a command prints and writes rather than about the process,
in this interpreter (`rtlgen_in_process`: no second Python start and imports, ~1 s each)."""

import contextlib
import io
import subprocess
import sys
import warnings
from importlib import resources
from pathlib import Path
from unittest import mock

DATA = Path(str(resources.files("rtlgen.data")))
#: the bundled demo CNN as the command line takes it
DEMO_MODEL = (str(DATA / "demo_cnn.json"), "--weights", str(DATA / "demo_cnn_weights.h5"))
#: the options of the demo conversion the CLI tests share (`demo_conversion` in conftest.py)
DEMO_OPTIONS = ("--input-type", "fixed<8,1>")


def rtlgen(*args, env=None, cwd=None, timeout=300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rtlgen", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
    )


def rtlgen_in_process(*args) -> subprocess.CompletedProcess[str]:
    """`rtlgen(*args)` run by `rtlgen.cli.run` in this interpreter, with `sys.stdout` and
    `sys.stderr` captured. What only a process shows stays with `rtlgen`: the interpreter's
    exit status, output written to the file descriptors (a C library's messages), a closed
    pipe, --debug tracebacks (here the exception propagates)."""
    from rtlgen import cli

    argv = [str(arg) for arg in args]
    stdout, stderr = io.StringIO(), io.StringIO()
    with (
        warnings.catch_warnings(),  # the command sets the warning filters of its process
        contextlib.redirect_stdout(stdout),
        contextlib.redirect_stderr(stderr),
        # the console of a process whose stdout is a pipe (its width: the table layout)
        mock.patch.object(cli, "console", cli.stdout_console()),
    ):
        code = cli.run(argv)
    return subprocess.CompletedProcess(
        [sys.executable, "-m", "rtlgen", *argv], code, stdout.getvalue(), stderr.getvalue()
    )


def rtlgen_in_process_fd(capfd, *args) -> subprocess.CompletedProcess[str]:
    """`rtlgen_in_process(*args)` that also sees what reached this process's file descriptors
    meanwhile (a C library's messages, e.g. HDF5's error stack): appended to the result's
    stdout and stderr, as a subprocess would have printed them. ``capfd``: pytest's fixture."""
    capfd.readouterr()  # what came before is not the command's
    result = rtlgen_in_process(*args)
    out, err = capfd.readouterr()
    return subprocess.CompletedProcess(
        result.args, result.returncode, result.stdout + out, result.stderr + err
    )


def convert_and_simulate(tmp_path, model, x, *convert_args):
    """`rtlgen convert MODEL` then `rtlgen sim` of `x` in Verilator under backpressure 0.3, as a
    user runs them; returns the simulated outputs (one row per sample)."""
    import numpy as np

    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "design"
    run = rtlgen("convert", model, "-o", out, *convert_args)
    assert run.returncode == 0, run.stderr
    run = rtlgen(
        "sim", out, "-i", tmp_path / "x.npy", "-o", tmp_path / "y.npy",
        "--backpressure", "0.3", timeout=1200,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    return np.load(tmp_path / "y.npy").reshape(len(x), -1)
