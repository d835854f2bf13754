"""Run the `rtlgen` command line as a user does: a subprocess, output captured as text."""

import subprocess
import sys


def rtlgen(*args, env=None, cwd=None, timeout=300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rtlgen", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
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
