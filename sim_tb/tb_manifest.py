"""Read `manifest.json` (docs/DESIGN.md) and pack/unpack stream beats.

Stand-alone: imports only the standard library and numpy, because `standalone.write_testbench`
copies this file next to the user's testbench. Problems with the file raise `ManifestError`
(a `ValueError`); rtlgen's runner turns them into `RtlgenError`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FORMAT_VERSION = 1


class ManifestError(ValueError):
    """manifest.json is missing, malformed, or inconsistent with itself or with the data."""


@dataclass(frozen=True)
class ElementType:
    """Two's complement (or unsigned) integer mantissa of `width` bits; `frac` is informative."""

    width: int
    frac: int
    signed: bool

    @property
    def lo(self) -> int:
        return -(1 << (self.width - 1)) if self.signed else 0

    @property
    def hi(self) -> int:
        return (1 << (self.width - 1)) - 1 if self.signed else (1 << self.width) - 1


@dataclass(frozen=True)
class StreamSpec:
    """One AXI4-Stream port: a sample of `shape` travels as `beats_per_sample` beats of
    `elements_per_beat` elements, element i at bits [i*w, (i+1)*w) of tdata."""

    shape: tuple[int, ...]
    beats_per_sample: int
    elements_per_beat: int
    element: ElementType
    tdata_width: int
    tuser_width: int = 0
    classes: int | None = None

    def pack(self, sample: np.ndarray) -> list[int]:
        """tdata words (non-negative ints) of one sample, in beat order."""
        width, mask = self.element.width, (1 << self.element.width) - 1
        rows = np.asarray(sample, dtype=np.int64).reshape(self.beats_per_sample, -1).tolist()
        words = []
        for row in rows:
            word = 0
            for index, value in enumerate(row):
                word |= (value & mask) << (index * width)
            words.append(word)
        return words

    def unpack(self, word: int) -> list[int]:
        """The elements of one tdata word, sign-extended if the element type is signed."""
        width, mask = self.element.width, (1 << self.element.width) - 1
        sign = 1 << (width - 1)
        values = []
        for index in range(self.elements_per_beat):
            value = (word >> (index * width)) & mask
            if self.element.signed and value & sign:
                value -= 1 << width
            values.append(value)
        return values

    def raw(self, value: int) -> str:
        """The bit pattern of one element as it appears on tdata, in hex."""
        digits = (self.element.width + 3) // 4
        return f"0x{value & ((1 << self.element.width) - 1):0{digits}x}"


@dataclass(frozen=True)
class Manifest:
    """The parts of manifest.json that simulation needs; `path` is the file it came from."""

    path: Path
    top: str
    rtl: tuple[Path, ...]
    clock: str
    reset: str
    reset_active_high: bool
    input: StreamSpec
    output: StreamSpec
    latency_cycles: int | None
    ii_cycles: int | None


def _field(mapping: dict, key: str, kind: type | tuple[type, ...], where: str):
    if not isinstance(mapping, dict) or key not in mapping:
        raise ManifestError(f"manifest: missing field {where}{key}")
    value = mapping[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ManifestError(f"manifest: field {where}{key} is {value!r}, expected {kind}")
    return value


def _stream(raw: dict, name: str) -> StreamSpec:
    where = f"{name}."
    shape = tuple(_field(raw, "shape", list, where))
    if not shape or not all(isinstance(d, int) and d > 0 for d in shape):
        raise ManifestError(f"manifest: {name}.shape {list(shape)} is not a list of positive ints")
    raw_type = _field(raw, "type", dict, where)
    element = ElementType(
        width=_field(raw_type, "width", int, f"{where}type."),
        frac=_field(raw_type, "frac", int, f"{where}type."),
        signed=_field(raw_type, "signed", bool, f"{where}type."),
    )
    classes = raw.get("classes")
    spec = StreamSpec(
        shape=shape,
        beats_per_sample=_field(raw, "beats_per_sample", int, where),
        elements_per_beat=_field(raw, "elements_per_beat", int, where),
        element=element,
        tdata_width=_field(raw, "tdata_width", int, where),
        tuser_width=raw.get("tuser_width", 0) or 0,
        classes=classes if isinstance(classes, int) and classes > 0 else None,
    )
    if element.width < 1:
        raise ManifestError(f"manifest: {name}.type.width is {element.width}, must be >= 1")
    if spec.beats_per_sample * spec.elements_per_beat != math.prod(shape):
        raise ManifestError(
            f"manifest: {name} has {spec.beats_per_sample} beats x {spec.elements_per_beat} "
            f"elements, but shape {list(shape)} holds {math.prod(shape)} elements"
        )
    if spec.tdata_width < spec.elements_per_beat * element.width:
        raise ManifestError(
            f"manifest: {name}.tdata_width {spec.tdata_width} < "
            f"{spec.elements_per_beat} elements x {element.width} bits"
        )
    if spec.classes is not None and spec.tuser_width < max(1, (spec.classes - 1).bit_length()):
        raise ManifestError(
            f"manifest: {name}.tuser_width {spec.tuser_width} cannot hold {spec.classes} classes"
        )
    return spec


def load_manifest(path: str | Path) -> Manifest:
    """Parse and check OUTDIR/manifest.json; RTL paths are resolved against its folder."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"manifest: {path} not found (expected OUTDIR/manifest.json)")
    try:
        raw = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ManifestError(f"manifest: cannot read {path}: {error}") from None
    version = raw.get("format_version") if isinstance(raw, dict) else None
    if version != FORMAT_VERSION:
        raise ManifestError(
            f"manifest: {path} has format_version {version!r}, supported: {FORMAT_VERSION}"
        )
    names = _field(raw, "rtl", list, "")
    if not names or not all(isinstance(name, str) and name for name in names):
        raise ManifestError(f"manifest: {path} must list rtl file names, found {names!r}")
    rtl = tuple(path.parent / name for name in names)
    for file in rtl:
        if not file.is_file():
            raise ManifestError(f"manifest: rtl file {file} not found")
    latency, ii = raw.get("latency_cycles"), raw.get("ii_cycles")
    return Manifest(
        path=path,
        top=_field(raw, "top", str, ""),
        rtl=rtl,
        clock=raw.get("clock", "clk"),
        reset=raw.get("reset", "rst"),
        reset_active_high=bool(raw.get("reset_active_high", True)),
        input=_stream(_field(raw, "input", dict, ""), "input"),
        output=_stream(_field(raw, "output", dict, ""), "output"),
        latency_cycles=latency if isinstance(latency, int) and latency > 0 else None,
        ii_cycles=ii if isinstance(ii, int) and ii > 0 else None,
    )


def check_vectors(manifest: Manifest, x_int: np.ndarray, y_int: np.ndarray) -> None:
    """Raise ManifestError unless x/y have shapes (N, *input.shape) / (N, *output.shape) with
    the same N >= 1, integer dtype, and inputs inside the input type's range."""
    for name, array, spec in (("x_int", x_int, manifest.input), ("y_int", y_int, manifest.output)):
        if not isinstance(array, np.ndarray) or not np.issubdtype(array.dtype, np.integer):
            kind = array.dtype if isinstance(array, np.ndarray) else type(array).__name__
            raise ManifestError(f"{name}: expected an integer numpy array, got {kind}")
        if array.ndim < 1 or tuple(array.shape[1:]) != spec.shape:
            raise ManifestError(
                f"{name}: shape {tuple(array.shape)}, expected (N, {', '.join(map(str, spec.shape))})"
            )
    if len(x_int) != len(y_int) or len(x_int) == 0:
        raise ManifestError(
            f"x_int has {len(x_int)} samples and y_int {len(y_int)}; need the same number >= 1"
        )
    element = manifest.input.element
    if x_int.min() < element.lo or x_int.max() > element.hi:
        raise ManifestError(
            f"x_int: values in [{x_int.min()}, {x_int.max()}] do not fit the input type "
            f"({element.width} bits, {'signed' if element.signed else 'unsigned'})"
        )


def describe_mismatch(mismatch: dict) -> str:
    """One line naming the sample, the output index, expected and actual values (and raw bits)."""
    index = ", ".join(map(str, mismatch["index"]))
    return (
        f"sample {mismatch['sample']}, output [{index}]: expected {mismatch['expected']} "
        f"({mismatch['expected_raw']}), actual {mismatch['actual']} ({mismatch['actual_raw']})"
    )
