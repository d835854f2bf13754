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
