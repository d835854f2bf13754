"""A design folder's manifest.json, as rtlgen sees it: problems are one-line `RtlgenError`s.

The schema, its one reader and its one writer live in `rtlgen.sim_tb.tb_manifest` (one
module, stand-alone because the testbench written by `rtlgen convert --testbench` copies it);
this module re-exports them for the rest of rtlgen and adds what only rtlgen needs: the error
type, the check of a user's `--top`, and rewriting a design's own files in place.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from rtlgen.quant.errors import RtlgenError
from rtlgen.sim_tb import tb_manifest as _schema
from rtlgen.sim_tb.tb_manifest import (
    FORMAT,
    FORMAT_VERSION,
    GENERATOR,
    INPUT_TYPE_ORIGINS,
    MANIFEST_NAME,
    RESERVED_TOP_NAMES,
    VERILOG_KEYWORDS,
    Dequantize,
    ElementType,
    FifoEntry,
    Generator,
    LayerEntry,
    Manifest,
    ManifestError,
    Options,
    StreamSpec,
    Synthesis,
    Totals,
    identifier_problem,
)

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "GENERATOR",
    "INPUT_TYPE_ORIGINS",
    "MANIFEST_NAME",
    "RESERVED_TOP_NAMES",
    "VERILOG_KEYWORDS",
    "DesignFolderError",
    "Dequantize",
    "ElementType",
    "FifoEntry",
    "Generator",
    "LayerEntry",
    "Manifest",
    "Options",
    "StreamSpec",
    "Synthesis",
    "Totals",
    "check_top_name",
    "read_manifest",
    "replace_file",
    "writable_path",
    "write_manifest",
]


class DesignFolderError(RtlgenError):
    """A design folder (OUTDIR) whose manifest.json is missing, malformed or tampered with."""


def read_manifest(outdir: str | Path) -> Manifest:
    """Read and check OUTDIR/manifest.json (`rtlgen.sim_tb.tb_manifest.read_manifest`)."""
    try:
        return _schema.read_manifest(outdir)
    except ManifestError as error:
        raise DesignFolderError(str(error)) from None


def writable_path(outdir: Path, name: str) -> Path:
    """OUTDIR/name for rtlgen to write (`tb_manifest.writable_path`: no symlink on the way)."""
    try:
        return _schema.writable_path(outdir, name)
    except ManifestError as error:
        raise DesignFolderError(str(error)) from None


def check_top_name(name: str) -> str:
    """`name` if it can be the top module's name as given (`rtlgen convert --top`), else a
    one-line RtlgenError: a user's explicit name is not silently changed."""
    problem = identifier_problem(name)
    if problem is not None:
        raise RtlgenError(f"--top {problem}")
    return name


def replace_file(folder: Path, name: str, text: str) -> Path:
    """Write `folder/name` through a temporary file and a rename, so a reader never sees half
    a file and a symlink planted at `folder/name` is replaced, not followed out of `folder`."""
    target = Path(folder) / name
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(handle, "w") as file:
            file.write(text)
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


def write_manifest(manifest: Manifest) -> Path:
    """Rewrite the manifest.json of the folder `manifest` was read from."""
    assert manifest.outdir is not None, "write_manifest needs a manifest read from a folder"
    return replace_file(manifest.outdir, MANIFEST_NAME, manifest.to_json())


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
