"""The parts of `OUTDIR/manifest.json` (format_version 1, docs/DESIGN.md) the board flows use.

The board flows see a converted network only through its files: this module turns the
manifest into typed objects once, at the edge, and checks what the flows rely on.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rtlgen.quant.errors import RtlgenError
from rtlgen.quant.fixed import FixedType

__all__ = ["StreamPort", "Manifest", "load_manifest", "manifest_from_dict"]

# Names end up in Tcl scripts, Verilog instances and file names: keep them plain identifiers.
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class StreamPort:
    """One AXI4-Stream side of the network: samples of `shape` sent as beats.

    A sample reshaped to `(beats_per_sample, elements_per_beat)` in C order gives the beats;
    element i of a beat sits at bits [i*w, (i+1)*w) of `tdata` (w = `type.width`).
    """

    shape: tuple[int, ...]
    beats_per_sample: int
    elements_per_beat: int
    type: FixedType
    tdata_width: int

    @property
    def beat_bytes(self) -> int:
        """Bytes that carry one beat's `tdata` (little-endian, padding bits zero)."""
        return math.ceil(self.tdata_width / 8)


@dataclass(frozen=True)
class Manifest:
    """A converted network as the board flows see it. `rtl` paths are relative to `outdir`."""

    outdir: Path
    top: str
    rtl: tuple[str, ...]
    clock: str
    reset: str
    reset_active_high: bool
    input: StreamPort
    output: StreamPort
    tuser_width: int
    classes: int

    @property
    def rtl_paths(self) -> tuple[Path, ...]:
        return tuple(self.outdir / name for name in self.rtl)


def load_manifest(outdir: str | Path) -> Manifest:
    """Read and check `outdir/manifest.json`; also checks that every RTL file it lists exists."""
    outdir = Path(outdir)
    if not outdir.is_dir():
        raise RtlgenError(
            f"OUTDIR '{outdir}' does not exist (expected the output of `rtlgen convert`)"
        )
    path = outdir / "manifest.json"
    if not path.is_file():
        raise RtlgenError(
            f"OUTDIR '{outdir}' has no manifest.json (expected the output of `rtlgen convert`)"
        )
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RtlgenError(f"{path} is not valid JSON: {error}") from None
    manifest = manifest_from_dict(data, outdir.resolve())
    for name, rtl_path in zip(manifest.rtl, manifest.rtl_paths, strict=True):
        if not rtl_path.is_file():
            raise RtlgenError(f"{path} lists RTL file '{name}', which does not exist in {outdir}")
    return manifest


def manifest_from_dict(data: dict[str, Any], outdir: Path) -> Manifest:
    """Build a `Manifest` from parsed manifest.json content; one-line `RtlgenError` if malformed."""
    where = "manifest.json"
    if not isinstance(data, dict):
        raise RtlgenError(f"{where}: expected a JSON object, found {type(data).__name__}")
    version = data.get("format_version")
    if version != 1:
        raise RtlgenError(f"{where}: format_version {version!r} is not supported (supported: 1)")
    top = _identifier(_get(data, "top", str, where), f"{where}: top")
    rtl = _get(data, "rtl", list, where)
    if not rtl or not all(isinstance(name, str) and name for name in rtl):
        raise RtlgenError(f"{where}: 'rtl' must be a non-empty list of file names, found {rtl!r}")
    for name in rtl:
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise RtlgenError(f"{where}: RTL file '{name}' must be a path inside OUTDIR")
        if not re.fullmatch(r"[A-Za-z0-9_./-]+", name):
            raise RtlgenError(
                f"{where}: RTL file name '{name}' has characters other than A-Z a-z 0-9 _ . / -"
            )
    output_data = _get(data, "output", dict, where)
    return Manifest(
        outdir=Path(outdir),
        top=top,
        rtl=tuple(rtl),
        clock=_identifier(data.get("clock", "clk"), f"{where}: clock"),
        reset=_identifier(data.get("reset", "rst"), f"{where}: reset"),
        reset_active_high=bool(data.get("reset_active_high", True)),
        input=_stream_port(_get(data, "input", dict, where), f"{where}: input"),
        output=_stream_port(output_data, f"{where}: output"),
        tuser_width=_get(output_data, "tuser_width", int, f"{where}: output"),
        classes=_get(output_data, "classes", int, f"{where}: output"),
    )


def _stream_port(data: dict[str, Any], where: str) -> StreamPort:
    shape = tuple(_get(data, "shape", list, where))
    if not shape or not all(isinstance(n, int) and n > 0 for n in shape):
        raise RtlgenError(
            f"{where}: shape must be a list of positive integers, found {list(shape)}"
        )
    type_data = _get(data, "type", dict, where)
    element_type = FixedType(
        _get(type_data, "width", int, f"{where}.type"),
        _get(type_data, "frac", int, f"{where}.type"),
        bool(_get(type_data, "signed", bool, f"{where}.type")),
    )
    port = StreamPort(
        shape=shape,
        beats_per_sample=_get(data, "beats_per_sample", int, where),
        elements_per_beat=_get(data, "elements_per_beat", int, where),
        type=element_type,
        tdata_width=_get(data, "tdata_width", int, where),
    )
    if port.beats_per_sample * port.elements_per_beat != math.prod(shape):
        raise RtlgenError(
            f"{where}: beats_per_sample {port.beats_per_sample} x elements_per_beat "
            f"{port.elements_per_beat} does not cover shape {list(shape)}"
        )
    if port.tdata_width != port.elements_per_beat * element_type.width:
        raise RtlgenError(
            f"{where}: tdata_width {port.tdata_width} is not elements_per_beat "
            f"{port.elements_per_beat} x width {element_type.width}"
        )
    return port


def _get(data: dict[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in data:
        raise RtlgenError(f"{where}: missing key '{key}'")
    value = data[key]
    # bool is an int in Python; a width of `true` is still a malformed manifest.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise RtlgenError(f"{where}: '{key}' must be {kind.__name__}, found {value!r}")
    return value


def _identifier(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _IDENTIFIER.match(value):
        raise RtlgenError(
            f"{where} must be a plain identifier ([A-Za-z_][A-Za-z0-9_]*), found {value!r}"
        )
    return value
