"""What a command imports: `rtlgen inspect` and `rtlgen predict` read a model and run the
integer reference model; neither needs the hardware builder (Amaranth and `rtlgen.layers`),
whose import alone costs each such command ~0.2 s (issue 17). The op modules import it in
the functions that build hardware (`rtlgen.ops.registry`)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from .cli_run import DEMO_MODEL

#: in a fresh interpreter: the demo through `inspect`, then `predict`; after each, the
#: hardware modules loaded so far (what the command imported, not what earlier tests did)
SCRIPT = """
import contextlib, io, json, sys
import numpy as np
from rtlgen import cli

def hardware():
    return sorted(
        m for m in sys.modules
        if m.split(".")[0] == "amaranth" or m.startswith(("rtlgen.layers", "rtlgen.plan"))
    )

model, out = sys.argv[1:4], sys.argv[4]
np.save(f"{out}/x.npy", np.random.default_rng(0).uniform(-1, 1, (4, 8, 8, 1)))
found = {}
for name, args in (
    ("inspect", ["inspect", *model]),
    ("predict", ["predict", *model, "-i", f"{out}/x.npy", "-o", f"{out}/y.npy"]),
):
    with contextlib.redirect_stdout(io.StringIO()):
        code = cli.run(args)
    found[name] = {"code": code, "hardware": hardware()}
print(json.dumps(found))
"""


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> dict[str, dict]:
    """{command: {"code": exit code, "hardware": hardware modules loaded after it}}."""
    out = tmp_path_factory.mktemp("imports")
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT, *DEMO_MODEL, str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def test_the_commands_ran(imported):
    assert {name: found["code"] for name, found in imported.items()} == {"inspect": 0, "predict": 0}


def test_inspect_does_not_import_amaranth(imported):
    assert imported["inspect"]["hardware"] == []


def test_predict_does_not_import_amaranth(imported):
    """predict names its outputs through `rtlgen.plan` (`output_names`), which loads without
    Amaranth (its hardware imports are in the functions that build hardware)."""
    loaded = imported["predict"]["hardware"]
    assert [m for m in loaded if m.split(".")[0] == "amaranth"] == [], loaded
