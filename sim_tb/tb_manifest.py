"""The design folder's `manifest.json`: one typed, versioned schema, one reader, one writer.

Every command that reads a design folder (OUTDIR) goes through `read_manifest(outdir)`:
`rtlgen sim`, `report`, `package`, `build`, `board run`, the SVHN study and the stand-alone
testbench. `rtlgen convert` writes the file with `Manifest.to_json()`. The format is described
in docs/DESIGN.md ("The manifest").

A design folder is untrusted data. The reader checks everything before anyone uses it and
raises `ManifestError` (a `ValueError`; rtlgen turns it into a one-line `RtlgenError`) naming
the field, what it found and what is allowed:
- manifest.json itself: a regular file inside OUTDIR, at most `MAX_MANIFEST_BYTES`, UTF-8 JSON
  whose top level is an object; no NaN/Infinity, no duplicate keys, nesting the parser can take;
- every field's type (an integer is an int, not a bool or a float) and range (bounded, so no
  later computation can allocate without limit);
- identifiers (`top`, `clock`, `reset`): plain Verilog identifiers, no keyword, no port name;
- every path (`rtl`, `files`, graph.npz): relative, made of plain names, no `..`, and inside
  OUTDIR after resolving symlinks;
- consistency: tdata width = elements x element width, beats x elements = the shape's size,
  totals = the sum of the layers.
Unknown keys are ignored (a later format-2 writer may add optional fields; nothing reads them).
Format 1 (rtlgen 0.1.0: no `format`, `generator: {"rtlgen": ...}`, no `files`) is still read.

Stand-alone: imports only the standard library and numpy, because `standalone.write_testbench`
copies this file next to the user's testbench.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "rtlgen-design"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
GENERATOR = "rtlgen"
MANIFEST_NAME = "manifest.json"
GRAPH_NAME = "graph.npz"

# Bounds: far above any design that fits an FPGA, low enough that nothing derived from a
# manifest (beat packing, timeouts, tables) can take unbounded memory or time.
MAX_MANIFEST_BYTES = 16 << 20
MAX_RTL_BYTES = 1 << 30  # one Verilog file (the SVHN designs are a few MB); tools read it whole
MAX_IDENTIFIER = 128
MAX_TEXT = 512  # layer names, sources, versions
MAX_PATH = 1024
MAX_PATH_PART = 255
MAX_LIST = 100_000  # layers, files
MAX_RANK = 8
MAX_DIM = 1 << 24
MAX_ELEMENTS = 1 << 31  # elements of one sample
MAX_ELEMENT_WIDTH = 1024
MAX_FRAC = 4096
MAX_TDATA_WIDTH = 65_536
MAX_TUSER_WIDTH = 64
MAX_COUNT = 1 << 48  # multipliers, products, adders
MAX_CYCLES = 1 << 30  # latency and II of a design
MAX_OUTPUTS = 64  # AXI4-Stream masters of one design
MAX_INPUTS = 64  # AXI4-Stream slaves of one design
MAX_SECONDS = 1e9

MULTIPLIER_STYLES = ("auto", "dsp", "lut")
PARALLELISM_STYLES = ("auto", "full")
PIPELINE_STYLES = ("balanced", "latency")
SYNTHESIS_FAMILIES = ("xcup", "ecp5")
#: how the input stream type was chosen: `rtlgen convert --input-type`, the precision config's
#: `input`, rtlgen's default, the model (a converted design read again), or not recorded
INPUT_TYPE_ORIGINS = ("option", "config", "default", "model", "unknown")

#: The top's ports (docs/DESIGN.md); a top module named like one of them does not compile.
TOP_PORT_NAMES = frozenset(
    ["clk", "rst"]
    + [f"{side}_axis_{signal}" for side in "sm" for signal in ("tdata", "tvalid", "tready", "tlast", "tuser")]
)

#: Names the top module cannot have: its ports (Verilator: "variable has same name as
#: instance"), Verilator's own top (`TOP`) and SystemVerilog's built-in package `std`.
#: The masters of outputs 1, 2 ... (`m1_axis_*` ...) are reserved too (`is_port_name`).
RESERVED_TOP_NAMES = TOP_PORT_NAMES | {"TOP", "std"}
_MORE_OUTPUT_PORTS = re.compile(r"m[1-9][0-9]*_axis_t(data|valid|ready|last|user)")
_MORE_INPUT_PORTS = re.compile(r"s[1-9][0-9]*_axis_t(data|valid|ready|last|user)")


def output_prefix(index: int) -> str:
    """The port prefix of output ``index`` of a design: ``m_axis`` for the first (the
    one-output interface), ``m1_axis``, ``m2_axis`` ... for the others (docs/DESIGN.md)."""
    return "m_axis" if index == 0 else f"m{index}_axis"


def input_prefix(index: int) -> str:
    """The port prefix of input ``index`` of a design: ``s_axis`` for the first (the
    one-input interface), ``s1_axis``, ``s2_axis`` ... for the others (docs/DESIGN.md)."""
    return "s_axis" if index == 0 else f"s{index}_axis"


def is_port_name(name: str) -> bool:
    """Whether ``name`` is (or may be, in a design with several inputs or outputs) a port of
    the top."""
    return (
        name in TOP_PORT_NAMES
        or _MORE_OUTPUT_PORTS.fullmatch(name) is not None
        or _MORE_INPUT_PORTS.fullmatch(name) is not None
    )

#: Verilog-2005 and SystemVerilog-2017 (IEEE 1800 Annex B) keywords, case-sensitive.
VERILOG_KEYWORDS = frozenset(
    """accept_on alias always always_comb always_ff always_latch and assert assign assume
    automatic before begin bind bins binsof bit break buf bufif0 bufif1 byte case casex casez
    cell chandle checker class clocking cmos config const constraint context continue cover
    covergroup coverpoint cross deassign default defparam design disable dist do edge else end
    endcase endchecker endclass endclocking endconfig endfunction endgenerate endgroup
    endinterface endmodule endpackage endprimitive endprogram endproperty endspecify endsequence
    endtable endtask enum event eventually expect export extends extern final first_match for
    force foreach forever fork forkjoin function generate genvar global highz0 highz1 if iff
    ifnone ignore_bins illegal_bins implements implies import incdir include initial inout
    input inside instance int integer interconnect interface intersect join join_any join_none
    large let liblist library local localparam logic longint macromodule matches medium modport
    module nand negedge nettype new nexttime nmos nor noshowcancelled not notif0 notif1 null or
    output package packed parameter pmos posedge primitive priority program property protected
    pull0 pull1 pulldown pullup pulsestyle_ondetect pulsestyle_onevent pure rand randc randcase
    randsequence rcmos real realtime ref reg reject_on release repeat restrict return rnmos
    rpmos rtran rtranif0 rtranif1 s_always s_eventually s_nexttime s_until s_until_with
    scalared sequence shortint shortreal showcancelled signed small soft solve specify
    specparam static string strong strong0 strong1 struct super supply0 supply1 sync_accept_on
    sync_reject_on table tagged task this throughout time timeprecision timeunit tran tranif0
    tranif1 tri tri0 tri1 triand trior trireg type typedef union unique unique0 unsigned until
    until_with untyped use uwire var vectored virtual void wait wait_order wand weak weak0
    weak1 while wildcard wire with within wor xnor xor""".split()
)

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# One component of a relative path: plain characters, may start with "." (tb/.gitignore) but
# is never "." or ".." and never starts with "-" (no option injection into tools).
_PATH_PART = re.compile(r"\.?[A-Za-z0-9_][A-Za-z0-9_.-]*")
_MISSING = object()


class ManifestError(ValueError):
    """manifest.json is missing, malformed, or inconsistent with itself or with the data."""


# --------------------------------------------------------------------------------- schema
@dataclass(frozen=True)
class ElementType:
    """Two's complement (or unsigned) integer mantissa of `width` bits; `frac` fractional bits
    and `text` (e.g. ``fixed<8,1>``) are informative."""

    width: int
    frac: int
    signed: bool
    text: str = ""

    @property
    def lo(self) -> int:
        return -(1 << (self.width - 1)) if self.signed else 0

    @property
    def hi(self) -> int:
        return (1 << (self.width - 1)) - 1 if self.signed else (1 << self.width) - 1

    def as_json(self) -> dict[str, Any]:
        return {"width": self.width, "frac": self.frac, "signed": self.signed, "text": self.text}


@dataclass(frozen=True)
class Dequantize:
    """An output's real values when its fixed-point value ``v`` is not yet them (a QONNX
    model's float, not power-of-two, output scale or float logits): ``float32(v * scale[c] +
    bias[c])`` for channel ``c`` (the last axis of the output's shape); JSON ``{"scale":
    [...], "bias": [...]}``, one number per channel, ``scale`` non-zero."""

    scale: tuple[float, ...]
    bias: tuple[float, ...]

    def apply(self, values: np.ndarray) -> np.ndarray:
        """Real values (float32 numbers, as float64) of fixed-point values (..., channels)."""
        v = np.asarray(values, dtype=np.float64)
        scale, bias = np.asarray(self.scale), np.asarray(self.bias)
        return (v * scale + bias).astype(np.float32).astype(np.float64)

    def as_json(self) -> dict[str, Any]:
        return {"scale": list(self.scale), "bias": list(self.bias)}


@dataclass(frozen=True)
class StreamSpec:
    """One AXI4-Stream port: a sample of `shape` travels as `beats_per_sample` beats of
    `elements_per_beat` elements, element i at bits [i*w, (i+1)*w) of tdata.

    Output only: `tuser_width`, `classes` (arg-max class on tuser), `softmax_in_model`,
    `name` (the output's name: a plain identifier, the key of its array in `.npz` files),
    `prefix` (its ports, `<prefix>_tdata` ...: `output_prefix(k)` for output k),
    `latency_cycles` / `ii_cycles` (this output's: first input beat's handshake to the
    sample's last beat on this master, at full rate; None when not recorded),
    `dequantize` (`Dequantize`: how its fixed-point values become real; None: they are).
    Input only: `type_origin` (one of `INPUT_TYPE_ORIGINS`).
    Both: `name` (the key of its array in `.npz` files) and `prefix` (`input_prefix(k)` for
    input k)."""

    shape: tuple[int, ...]
    beats_per_sample: int
    elements_per_beat: int
    element: ElementType
    tdata_width: int
    tuser_width: int = 0
    classes: int | None = None
    softmax_in_model: bool = False
    type_origin: str = ""
    name: str = ""
    prefix: str = ""
    latency_cycles: int | None = None
    ii_cycles: int | None = None
    dequantize: Dequantize | None = None

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

    def as_json(self, output: bool) -> dict[str, Any]:
        data: dict[str, Any] = {
            "shape": list(self.shape),
            "beats_per_sample": self.beats_per_sample,
            "elements_per_beat": self.elements_per_beat,
            "type": self.element.as_json(),
            "tdata_width": self.tdata_width,
        }
        if output:
            data.update(
                name=self.name,
                prefix=self.prefix,
                tuser_width=self.tuser_width,
                classes=self.classes,
                softmax_in_model=self.softmax_in_model,
                latency_cycles=self.latency_cycles,
                ii_cycles=self.ii_cycles,
            )
            if self.dequantize is not None:  # absent: the fixed-point values are real
                data["dequantize"] = self.dequantize.as_json()
        else:
            data.update(name=self.name, prefix=self.prefix, type_origin=self.type_origin)
        return data


@dataclass(frozen=True)
class LayerEntry:
    """What one layer became in hardware.

    `products`: constant multiplies per sample of the layer as if no weight were zero;
    `products_nonzero`: the same after pruning (zero weights need no product);
    `multipliers`: multipliers built (a fully parallel layer: one per non-zero weight, shared
    by all window positions; a time-multiplexed one: the shared general multipliers);
    `reuse`: the reuse factor (1: fully parallel). `products*` are None in format 1."""

    name: str
    source: str
    op: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    out_type: ElementType | None
    reuse: int
    products: int | None
    products_nonzero: int | None
    multipliers: int
    adders: int
    latency_cycles: int | None
    acc_type: ElementType | None = None
    activation: str | None = None
    #: the layers (or the input) whose outputs this layer takes; () in a format-2 manifest
    #: written before graphs could branch (each layer then takes the one before it)
    inputs: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "source": self.source,
            "op": self.op,
            "inputs": list(self.inputs),
            "in_shape": list(self.in_shape),
            "out_shape": list(self.out_shape),
            "out_type": None if self.out_type is None else self.out_type.as_json(),
            "reuse": self.reuse,
            "products": self.products,
            "products_nonzero": self.products_nonzero,
            "multipliers": self.multipliers,
            "adders": self.adders,
            "latency_cycles": self.latency_cycles,
        }
        if self.acc_type is not None:
            data["acc_type"] = self.acc_type.as_json()
        if self.activation is not None:
            data["activation"] = self.activation
        return data


@dataclass(frozen=True)
class FifoEntry:
    """A FIFO on input ``input_index`` of layer ``consumer`` (a join), fed by ``producer``:
    ``depth`` beats of ``width`` bits, sized by rtlgen's event-time model so the fork that
    feeds the joined branches never waits (docs/DESIGN.md, "Streams that fork and join")."""

    consumer: str
    input_index: int
    producer: str
    depth: int
    width: int

    @property
    def bits(self) -> int:
        return self.depth * self.width

    def as_json(self) -> dict[str, Any]:
        return {
            "consumer": self.consumer,
            "input_index": self.input_index,
            "producer": self.producer,
            "depth": self.depth,
            "width": self.width,
            "bits": self.bits,
        }


@dataclass(frozen=True)
class Totals:
    """Sums over the layers (`LayerEntry` explains each count)."""

    products: int | None
    products_nonzero: int | None
    multipliers: int
    adders: int

    @property
    def pruned(self) -> int | None:
        """Products pruning removed (zero weights)."""
        if self.products is None or self.products_nonzero is None:
            return None
        return self.products - self.products_nonzero

    def as_json(self) -> dict[str, Any]:
        return {
            "products": self.products,
            "products_nonzero": self.products_nonzero,
            "multipliers": self.multipliers,
            "adders": self.adders,
        }

    @classmethod
    def of(cls, layers: tuple[LayerEntry, ...] | list[LayerEntry]) -> Totals:
        def total(values: list[int | None]) -> int | None:
            return None if any(v is None for v in values) else sum(values)  # type: ignore[arg-type]

        return cls(
            products=total([layer.products for layer in layers]),
            products_nonzero=total([layer.products_nonzero for layer in layers]),
            multipliers=sum(layer.multipliers for layer in layers),
            adders=sum(layer.adders for layer in layers),
        )


@dataclass(frozen=True)
class Options:
    """The hardware options the design was generated with (`rtlgen convert --help`)."""

    multiplier: str = "auto"
    parallelism: str = "auto"
    adders_per_stage: int | None = None  # None: not recorded (format 1)
    pipeline: str = "balanced"
    max_reuse: int | None = None  # `--max-reuse`; None: not given (or an older manifest)
    #: `--latency-budget`: cycles, "auto" (the default since session 14: within 2 % of the
    #: sample period where reachable) or None (none: the cheapest rate-balanced plan; also
    #: an older manifest's default)
    latency_budget: int | str | None = None
    pixels_per_beat: int = 1  # `--pixels-per-beat` (1 in older manifests)

    def as_json(self) -> dict[str, Any]:
        return {
            "multiplier": self.multiplier,
            "parallelism": self.parallelism,
            "adders_per_stage": self.adders_per_stage,
            "pipeline": self.pipeline,
            "max_reuse": self.max_reuse,
            "latency_budget": self.latency_budget,
            "pixels_per_beat": self.pixels_per_beat,
        }


@dataclass(frozen=True)
class Generator:
    """Who wrote the design and how long generation took."""

    name: str
    version: str
    seconds: float

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "seconds": self.seconds}


@dataclass(frozen=True)
class Synthesis:
    """What `rtlgen report` measured with Yosys (see rtlgen.synth.SynthResult)."""

    family: str
    luts: int
    ffs: int
    dsps: int
    brams: int
    lut_levels: int
    longest_path: int
    seconds: float

    def as_json(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "luts": self.luts,
            "ffs": self.ffs,
            "dsps": self.dsps,
            "brams": self.brams,
            "lut_levels": self.lut_levels,
            "longest_path": self.longest_path,
            "seconds": self.seconds,
        }


@dataclass(frozen=True)
class Manifest:
    """A design folder's manifest.json. `rtl` and `files` are relative POSIX paths inside
    OUTDIR; `outdir` is where it was read from (None for one not yet written; not part of
    the contents, so it does not take part in comparisons)."""

    top: str
    rtl: tuple[str, ...]
    clock: str
    reset: str
    reset_active_high: bool
    input: StreamSpec
    output: StreamSpec
    latency_cycles: int | None
    ii_cycles: int | None
    layers: tuple[LayerEntry, ...] = ()
    totals: Totals = Totals(None, None, 0, 0)
    options: Options = Options()
    generator: Generator = Generator(GENERATOR, "unknown", 0.0)
    files: tuple[str, ...] = ()
    synthesis: Synthesis | None = None
    fifos: tuple[FifoEntry, ...] = ()
    outdir: Path | None = field(default=None, compare=False, repr=False)
    #: every output's master, in port order; ``output`` is ``outputs[0]``. Empty when
    #: constructed: filled in with ``output`` alone (a one-output design)
    outputs: tuple[StreamSpec, ...] = ()
    #: every input's slave, in port order; ``input`` is ``inputs[0]``. Empty when
    #: constructed: filled in with ``input`` alone (a one-input design)
    inputs: tuple[StreamSpec, ...] = ()

    def __post_init__(self) -> None:
        if not self.inputs:
            first = self.input
            first = replace(first, name=first.name or "input", prefix=first.prefix or input_prefix(0))
            object.__setattr__(self, "input", first)
            object.__setattr__(self, "inputs", (first,))
        elif self.inputs[0] != self.input:
            raise ValueError("a manifest's input must be its inputs[0]")
        if not self.outputs:
            first = self.output
            first = replace(first, name=first.name or "output", prefix=first.prefix or output_prefix(0))
            object.__setattr__(self, "output", first)
            object.__setattr__(self, "outputs", (first,))
        elif self.outputs[0] != self.output:
            raise ValueError("a manifest's output must be its outputs[0]")

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(out.name for out in self.outputs)

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.inputs)

    @property
    def path(self) -> Path:
        """OUTDIR/manifest.json."""
        return self._folder() / MANIFEST_NAME

    @property
    def rtl_paths(self) -> tuple[Path, ...]:
        """The Verilog files, absolute (checked to lie inside OUTDIR when read)."""
        return tuple(self._folder() / name for name in self.rtl)

    @property
    def graph_path(self) -> Path:
        """OUTDIR/graph.npz (checked to lie inside OUTDIR when read, if it exists)."""
        return self._folder() / GRAPH_NAME

    @property
    def tuser_width(self) -> int:
        return self.output.tuser_width

    @property
    def classes(self) -> int | None:
        return self.output.classes

    def _folder(self) -> Path:
        if self.outdir is None:
            raise ValueError("this manifest was not read from a design folder")
        return self.outdir

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "generator": self.generator.as_json(),
            "top": self.top,
            "rtl": list(self.rtl),
            "files": list(self.files),
            "clock": self.clock,
            "reset": self.reset,
            "reset_active_high": self.reset_active_high,
            "input": self.input.as_json(output=False),
            "inputs": [spec.as_json(output=False) for spec in self.inputs],
            "output": self.output.as_json(output=True),
            "outputs": [out.as_json(output=True) for out in self.outputs],
            "latency_cycles": self.latency_cycles,
            "ii_cycles": self.ii_cycles,
            "layers": [layer.as_json() for layer in self.layers],
            "fifos": [fifo.as_json() for fifo in self.fifos],
            "totals": self.totals.as_json(),
            "options": self.options.as_json(),
        }
        if self.synthesis is not None:
            data["synthesis"] = self.synthesis.as_json()
        return data

    def to_json(self) -> str:
        """The text of manifest.json (format 2): the one writer of the format."""
        return json.dumps(self.as_json(), indent=2) + "\n"


# --------------------------------------------------------------------------------- reader
def read_manifest(outdir: str | Path) -> Manifest:
    """Read and check OUTDIR/manifest.json (see the module docstring); raise ManifestError
    with one line naming the field otherwise."""
    given = Path(outdir)
    if not given.is_dir():
        raise ManifestError(
            f"OUTDIR '{given}' does not exist or is not a folder "
            "(expected the output of `rtlgen convert`)"
        )
    folder = given.resolve()
    path = folder / MANIFEST_NAME
    if not os.path.lexists(path):
        raise ManifestError(
            f"OUTDIR '{given}' has no {MANIFEST_NAME} (expected the output of `rtlgen convert`)"
        )
    try:
        _confined(folder, MANIFEST_NAME, MANIFEST_NAME, must_be_file=True)
        manifest = parse_manifest(_read_json(path), folder)
    except ManifestError as error:
        raise ManifestError(f"manifest {path}: {error}") from None
    return manifest


def load_manifest(path: str | Path) -> Manifest:
    """`read_manifest` of the folder holding `path` (which must be named manifest.json)."""
    path = Path(path)
    if path.name != MANIFEST_NAME:
        raise ManifestError(f"manifest: {path} is not a {MANIFEST_NAME}")
    if not path.parent.is_dir() or not os.path.lexists(path):
        raise ManifestError(f"manifest: {path} not found (expected OUTDIR/{MANIFEST_NAME})")
    return read_manifest(path.parent)


def _reject_constant(name: str) -> None:
    raise ManifestError(f"the number {name} is not allowed")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key, value in pairs:
        if key in data:
            raise ManifestError(f"key {_show(key)} appears twice in one object")
        data[key] = value
    return data


def _read_json(path: Path) -> dict[str, Any]:
    """The parsed top-level object, bounded in size before parsing."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_MANIFEST_BYTES + 1)
    except OSError as error:
        raise ManifestError(f"cannot read it ({error.strerror or error})") from None
    if len(data) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"larger than {MAX_MANIFEST_BYTES >> 20} MB; not a design manifest")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ManifestError("not UTF-8 text") from None
    try:
        raw = json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_unique_keys)
    except RecursionError:
        raise ManifestError("nested too deeply to be a design manifest") from None
    except ManifestError:
        raise
    except ValueError as error:  # JSONDecodeError, and integers of more than 4300 digits
        message = " ".join(str(error).split())[:120]
        raise ManifestError(f"not valid JSON ({message})") from None
    if not isinstance(raw, dict):
        raise ManifestError(f"the top level is {_kind(raw)}, expected an object")
    return raw


def parse_manifest(raw: dict[str, Any], outdir: Path | None = None) -> Manifest:
    """Check the parsed JSON of a manifest; with `outdir` (resolved) also check that its
    paths lie inside it and that the Verilog files exist."""
    version = _format_version(raw)
    legacy = version == 1
    generator = _generator(raw, legacy)
    top = _identifier(_get(raw, "top", ""), "top")
    clock = _identifier(_get(raw, "clock", "", "clk" if legacy else _MISSING), "clock", port=True)
    reset = _identifier(_get(raw, "reset", "", "rst" if legacy else _MISSING), "reset", port=True)
    if clock == reset:
        raise ManifestError(f"clock and reset are both {clock!r}")
    rtl = tuple(
        _relative_path(name, f"rtl[{index}]")
        for index, name in enumerate(_list(_get(raw, "rtl", ""), "rtl", 1, 1000))
    )
    for index, name in enumerate(rtl):
        if not name.endswith((".v", ".sv")):
            raise ManifestError(f"rtl[{index}] is {_show(name)}, expected a .v or .sv file")
    files = tuple(
        _relative_path(name, f"files[{index}]")
        for index, name in enumerate(
            _list(_get(raw, "files", "", []), "files", 0, MAX_LIST)
        )
    )
    layers = tuple(
        _layer(entry, f"layers[{index}].", legacy)
        for index, entry in enumerate(
            _list(_get(raw, "layers", "", [] if legacy else _MISSING), "layers", 0, MAX_LIST)
        )
    )
    output, outputs = _outputs(raw, legacy)
    first_input, inputs = _inputs(raw, legacy)
    latency = _cycles(_get(raw, "latency_cycles", "", None), "latency_cycles")
    if outputs[0].latency_cycles is not None and outputs[0].latency_cycles != latency:
        raise ManifestError(
            f"outputs[0].latency_cycles {outputs[0].latency_cycles} is not latency_cycles {latency}"
        )
    manifest = Manifest(
        top=top,
        rtl=rtl,
        clock=clock,
        reset=reset,
        reset_active_high=_bool(
            _get(raw, "reset_active_high", "", True if legacy else _MISSING), "reset_active_high"
        ),
        input=first_input,
        inputs=inputs,
        output=output,
        outputs=outputs,
        latency_cycles=latency,
        ii_cycles=_cycles(_get(raw, "ii_cycles", "", None), "ii_cycles"),
        layers=layers,
        totals=_totals(raw, layers, legacy),
        options=_options(raw, legacy),
        generator=generator,
        files=files,
        synthesis=_synthesis(raw.get("synthesis"), legacy),
        fifos=tuple(
            _fifo(entry, f"fifos[{index}].", {layer.name for layer in layers})
            for index, entry in enumerate(_list(_get(raw, "fifos", "", []), "fifos", 0, MAX_LIST))
        ),
        outdir=outdir,
    )
    if top in (clock, reset):
        raise ManifestError(f"top {top!r} is also the name of a port")
    if outdir is not None:
        for index, name in enumerate(rtl):
            _rtl_file(outdir, name, f"rtl[{index}]")
        for index, name in enumerate(files):
            _confined(outdir, name, f"files[{index}]", must_be_file=False)
        _confined(outdir, GRAPH_NAME, GRAPH_NAME, must_be_file=False)
    return manifest


def _format_version(raw: dict[str, Any]) -> int:
    if "format_version" not in raw:
        raise ManifestError("no format_version: not a manifest written by rtlgen")
    version = raw["format_version"]
    if type(version) is not int:
        raise ManifestError(f"format_version is {_show(version)} ({_kind(version)}), expected 1 or 2")
    if version > FORMAT_VERSION:
        raise ManifestError(
            f"format_version {_show(version)} is newer than this rtlgen reads "
            f"({', '.join(map(str, READABLE_VERSIONS))}); use a newer rtlgen or convert again"
        )
    if version not in READABLE_VERSIONS:
        raise ManifestError(
            f"format_version {_show(version)} is not supported "
            f"(supported: {', '.join(map(str, READABLE_VERSIONS))})"
        )
    if version >= 2 and raw.get("format") != FORMAT:
        raise ManifestError(f"format is {_show(raw.get('format'))}, expected {FORMAT!r}")
    return version


def _generator(raw: dict[str, Any], legacy: bool) -> Generator:
    data = _object(_get(raw, "generator", ""), "generator")
    if legacy:  # format 1: {"rtlgen": version, "seconds": s}
        version = _text(_get(data, "rtlgen", "generator."), "generator.rtlgen", 64)
        name = GENERATOR
    else:
        name = _get(data, "name", "generator.")
        if name != GENERATOR:
            raise ManifestError(f"generator.name is {_show(name)}, expected {GENERATOR!r}")
        version = _text(_get(data, "version", "generator."), "generator.version", 64)
    seconds = _seconds(_get(data, "seconds", "generator.", 0.0 if legacy else _MISSING), "generator.seconds")
    return Generator(name, version, seconds)


def _stream(raw: dict[str, Any], name: str, legacy: bool, output: bool) -> StreamSpec:
    where = f"{name}."
    shape = _shape(_get(raw, "shape", where), f"{where}shape")
    element = _element_type(_get(raw, "type", where), f"{where}type", legacy)
    beats = _count(_get(raw, "beats_per_sample", where), f"{where}beats_per_sample", 1, MAX_ELEMENTS)
    elements = _count(_get(raw, "elements_per_beat", where), f"{where}elements_per_beat", 1, MAX_ELEMENTS)
    tdata = _count(_get(raw, "tdata_width", where), f"{where}tdata_width", 1, MAX_TDATA_WIDTH)
    size = math.prod(shape)
    if beats * elements != size:
        raise ManifestError(
            f"{name} has {beats} beats x {elements} elements, but shape {list(shape)} holds "
            f"{size} elements"
        )
    if tdata != elements * element.width:
        raise ManifestError(
            f"{name}.tdata_width {tdata} != {elements} elements x {element.width} bits"
        )
    tuser, classes, softmax, origin = 0, None, False, ""
    out_name, prefix, latency, ii, dequantize = "", "", None, None, None
    if output:
        dequantize = _dequantize(_get(raw, "dequantize", where, None), f"{where}dequantize", shape)
        out_name = _plain_name(_get(raw, "name", where, "output"), f"{where}name")
        prefix = _identifier(_get(raw, "prefix", where, output_prefix(0)), f"{where}prefix", port=True)
        latency = _cycles(_get(raw, "latency_cycles", where, None), f"{where}latency_cycles")
        ii = _cycles(_get(raw, "ii_cycles", where, None), f"{where}ii_cycles")
        tuser = _count(_get(raw, "tuser_width", where, 0), f"{where}tuser_width", 0, MAX_TUSER_WIDTH)
        classes = _get(raw, "classes", where, None)
        if classes is not None:
            classes = _count(classes, f"{where}classes", 1, size)
            if tuser < max(1, (classes - 1).bit_length()):
                raise ManifestError(f"{name}.tuser_width {tuser} cannot hold {classes} classes")
        softmax = _bool(_get(raw, "softmax_in_model", where, False), f"{where}softmax_in_model")
    else:
        out_name = _plain_name(_get(raw, "name", where, "input"), f"{where}name")
        prefix = _identifier(_get(raw, "prefix", where, input_prefix(0)), f"{where}prefix", port=True)
        origin = _get(raw, "type_origin", where, "unknown" if legacy else _MISSING)
        if origin not in INPUT_TYPE_ORIGINS:
            raise ManifestError(
                f"{where}type_origin is {_show(origin)}, expected one of {', '.join(INPUT_TYPE_ORIGINS)}"
            )
    return StreamSpec(
        shape, beats, elements, element, tdata, tuser, classes, softmax, origin,
        out_name, prefix, latency, ii, dequantize,
    )


def _dequantize(value: Any, where: str, shape: tuple[int, ...]) -> Dequantize | None:
    """An output's `Dequantize` (None: absent or null): one finite number per channel."""
    if value is None:
        return None
    data = _object(value, where)
    channels = shape[-1] if shape else 1
    lists = []
    for key in ("scale", "bias"):
        numbers = _list(_get(data, key, f"{where}."), f"{where}.{key}", channels, channels)
        for number in numbers:
            if isinstance(number, bool) or not isinstance(number, int | float) or not math.isfinite(number):
                raise _bad(f"{where}.{key}", number, "finite numbers")
        lists.append(tuple(float(number) for number in numbers))
    if 0 in lists[0]:
        raise ManifestError(f"{where}.scale holds a 0")
    return Dequantize(lists[0], lists[1])


def _outputs(raw: dict[str, Any], legacy: bool) -> tuple[StreamSpec, tuple[StreamSpec, ...]]:
    """`output` and `outputs` (absent before designs had several outputs: then `output`
    alone); names unique, output k on the ports `output_prefix(k)`, `output` = outputs[0]."""
    return _streams(
        raw, "output", legacy, MAX_OUTPUTS, output_prefix,
        "output k drives the ports m{k}_axis_*, the first m_axis_*",
    )


def _inputs(raw: dict[str, Any], legacy: bool) -> tuple[StreamSpec, tuple[StreamSpec, ...]]:
    """`input` and `inputs` (absent before designs had several inputs: then `input` alone);
    names unique, input k on the ports `input_prefix(k)`, `input` = inputs[0]."""
    return _streams(
        raw, "input", legacy, MAX_INPUTS, input_prefix,
        "input k takes the ports s{k}_axis_*, the first s_axis_*",
    )


def _streams(
    raw: dict[str, Any],
    key: str,
    legacy: bool,
    most: int,
    prefix: Callable[[int], str],
    ports: str,
) -> tuple[StreamSpec, tuple[StreamSpec, ...]]:
    """`key` and its list `key + "s"` as `_outputs` and `_inputs` describe them."""
    output, many = key == "output", f"{key}s"
    first = _stream(_object(_get(raw, key, ""), key), key, legacy, output=output)
    if many not in raw:
        if first.prefix != prefix(0):
            raise ManifestError(f"{key}.prefix is {first.prefix!r}, expected {prefix(0)!r}")
        return first, (first,)
    specs = tuple(
        _stream(_object(entry, f"{many}[{k}]"), f"{many}[{k}]", legacy, output=output)
        for k, entry in enumerate(_list(raw[many], many, 1, most))
    )
    seen: set[str] = set()
    for k, spec in enumerate(specs):
        if spec.prefix != prefix(k):
            raise ManifestError(
                f"{many}[{k}].prefix is {spec.prefix!r}, expected {prefix(k)!r} ({ports})"
            )
        if spec.name in seen:
            raise ManifestError(f"{many}[{k}].name {spec.name!r} names two {many}")
        seen.add(spec.name)
    if first != specs[0]:
        raise ManifestError(f"{key} is not the same as {many}[0] (the first {key})")
    return first, specs


def _element_type(value: Any, where: str, legacy: bool) -> ElementType:
    data = _object(value, where)
    return ElementType(
        width=_count(_get(data, "width", f"{where}."), f"{where}.width", 1, MAX_ELEMENT_WIDTH),
        frac=_count(_get(data, "frac", f"{where}."), f"{where}.frac", -MAX_FRAC, MAX_FRAC),
        signed=_bool(_get(data, "signed", f"{where}."), f"{where}.signed"),
        text=_text(_get(data, "text", f"{where}.", "" if legacy else _MISSING), f"{where}.text", 64),
    )


def _layer(value: Any, where: str, legacy: bool) -> LayerEntry:
    data = _object(value, where.rstrip("."))
    required = _MISSING

    def optional_type(key: str) -> ElementType | None:
        found = _get(data, key, where, None)
        return None if found is None else _element_type(found, f"{where}{key}", legacy)

    activation = _get(data, "activation", where, None)
    products = _get(data, "products", where, None if legacy else required)
    nonzero = _get(data, "products_nonzero", where, None if legacy else required)
    entry = LayerEntry(
        name=_text(_get(data, "name", where), f"{where}name"),
        source=_text(_get(data, "source", where, ""), f"{where}source"),
        op=_text(_get(data, "op", where), f"{where}op", 64),
        in_shape=_shape(_get(data, "in_shape", where), f"{where}in_shape"),
        out_shape=_shape(_get(data, "out_shape", where), f"{where}out_shape"),
        out_type=optional_type("out_type"),
        reuse=_count(_get(data, "reuse", where, 1 if legacy else required), f"{where}reuse", 1, MAX_COUNT),
        products=_optional_count(products, f"{where}products", 0),
        products_nonzero=_optional_count(nonzero, f"{where}products_nonzero", 0),
        multipliers=_count(_get(data, "multipliers", where, 0 if legacy else required), f"{where}multipliers", 0, MAX_COUNT),
        adders=_count(_get(data, "adders", where, 0 if legacy else required), f"{where}adders", 0, MAX_COUNT),
        latency_cycles=_optional_count(_get(data, "latency_cycles", where, None), f"{where}latency_cycles", 0),
        acc_type=optional_type("acc_type"),
        activation=None if activation is None else _text(activation, f"{where}activation"),
        inputs=tuple(
            _text(name, f"{where}inputs[{k}]")
            for k, name in enumerate(_list(_get(data, "inputs", where, []), f"{where}inputs", 0, 64))
        ),
    )
    if (entry.products is None) != (entry.products_nonzero is None):
        raise ManifestError(f"{where}products and products_nonzero must both be given or both be null")
    if entry.products is not None and entry.products_nonzero > entry.products:  # type: ignore[operator]
        raise ManifestError(
            f"{where}products_nonzero {entry.products_nonzero} > products {entry.products}"
        )
    return entry


def _fifo(value: Any, where: str, layers: set[str]) -> FifoEntry:
    data = _object(value, where.rstrip("."))
    entry = FifoEntry(
        consumer=_text(_get(data, "consumer", where), f"{where}consumer"),
        input_index=_count(_get(data, "input_index", where), f"{where}input_index", 0, 63),
        producer=_text(_get(data, "producer", where), f"{where}producer"),
        depth=_count(_get(data, "depth", where), f"{where}depth", 1, MAX_COUNT),
        width=_count(_get(data, "width", where), f"{where}width", 1, MAX_COUNT),
    )
    if entry.consumer not in layers:
        raise ManifestError(f"{where}consumer {entry.consumer!r} is not a layer")
    bits = _get(data, "bits", where, entry.bits)
    if bits != entry.bits:
        raise ManifestError(f"{where}bits {_show(bits)} is not depth x width ({entry.bits})")
    return entry


def _totals(raw: dict[str, Any], layers: tuple[LayerEntry, ...], legacy: bool) -> Totals:
    summed = Totals.of(layers)
    if legacy:  # format 1 totals had other fields (multipliers_dense): recompute
        return summed
    data = _object(_get(raw, "totals", ""), "totals")
    totals = Totals(
        products=_optional_count(_get(data, "products", "totals."), "totals.products", 0),
        products_nonzero=_optional_count(
            _get(data, "products_nonzero", "totals."), "totals.products_nonzero", 0
        ),
        multipliers=_count(_get(data, "multipliers", "totals."), "totals.multipliers", 0, MAX_COUNT),
        adders=_count(_get(data, "adders", "totals."), "totals.adders", 0, MAX_COUNT),
    )
    if totals != summed:
        raise ManifestError(f"totals {totals.as_json()} are not the sums over the layers {summed.as_json()}")
    return totals


#: `Options.latency_budget` as a rule (`rtlgen.plan.BudgetRule.AUTO`)
LATENCY_BUDGET_AUTO = "auto"


def _options(raw: dict[str, Any], legacy: bool) -> Options:
    data = _object(_get(raw, "options", "", {} if legacy else _MISSING), "options")
    default = Options()

    def choice(key: str, allowed: tuple[str, ...]) -> str:
        value = _get(data, key, "options.", getattr(default, key) if legacy else _MISSING)
        if value not in allowed:
            raise ManifestError(f"options.{key} is {_show(value)}, expected one of {', '.join(allowed)}")
        return value

    adders = _get(data, "adders_per_stage", "options.", None if legacy else _MISSING)
    # Added in session 8: absent in older manifests, so optional in every format.
    max_reuse = _get(data, "max_reuse", "options.", None)
    budget = _get(data, "latency_budget", "options.", None)
    pixels = _get(data, "pixels_per_beat", "options.", 1)  # session 9
    return Options(
        multiplier=choice("multiplier", MULTIPLIER_STYLES),
        parallelism=choice("parallelism", PARALLELISM_STYLES),
        adders_per_stage=None if adders is None else _count(adders, "options.adders_per_stage", 1, 64),
        pipeline=choice("pipeline", PIPELINE_STYLES),
        max_reuse=_optional_count(max_reuse, "options.max_reuse"),
        latency_budget=budget if budget == LATENCY_BUDGET_AUTO else _optional_count(budget, "options.latency_budget"),
        pixels_per_beat=_count(pixels, "options.pixels_per_beat", 1, 64),
    )


_LEGACY_SYNTHESIS_KEYS = {
    "luts": "LUT",
    "ffs": "FF",
    "dsps": "DSP",
    "brams": "BRAM",
    "lut_levels": "LUT levels",
    "longest_path": "longest path (cells)",
}


def _synthesis(value: Any, legacy: bool) -> Synthesis | None:
    if value is None:
        return None
    data = _object(value, "synthesis")
    if legacy:  # rtlgen 0.1.0's `rtlgen report` wrote the table's column names
        data = {**data, **{new: data[old] for new, old in _LEGACY_SYNTHESIS_KEYS.items() if old in data}}
    family = _get(data, "family", "synthesis.")
    if family not in SYNTHESIS_FAMILIES:
        raise ManifestError(f"synthesis.family is {_show(family)}, expected one of {', '.join(SYNTHESIS_FAMILIES)}")

    def number(key: str) -> int:
        return _count(_get(data, key, "synthesis."), f"synthesis.{key}", -1, MAX_COUNT)

    return Synthesis(
        family=family,
        luts=number("luts"),
        ffs=number("ffs"),
        dsps=number("dsps"),
        brams=number("brams"),
        lut_levels=number("lut_levels"),
        longest_path=number("longest_path"),
        seconds=_seconds(_get(data, "seconds", "synthesis."), "synthesis.seconds"),
    )


# ------------------------------------------------------------------------- field checks
def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _show(value: Any) -> str:
    """A short, one-line rendering of a found value for an error message."""
    if isinstance(value, dict):
        return "{...}"
    if isinstance(value, list):
        return f"[... {len(value)} items]" if value else "[]"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**15:
        return f"<an integer of {len(str(abs(value)))} digits>"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _bad(where: str, value: Any, expected: str) -> ManifestError:
    return ManifestError(f"{where} is {_show(value)} ({_kind(value)}), expected {expected}")


def _get(data: dict[str, Any], key: str, where: str, default: Any = _MISSING) -> Any:
    if key in data:
        return data[key]
    if default is _MISSING:
        raise ManifestError(f"missing field {where}{key}")
    return default


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _bad(where, value, "an object")
    return value


def _list(value: Any, where: str, least: int, most: int) -> list[Any]:
    if not isinstance(value, list):
        raise _bad(where, value, "a list")
    if not least <= len(value) <= most:
        raise ManifestError(f"{where} has {len(value)} items, expected {least} to {most}")
    return value


def _count(value: Any, where: str, least: int, most: int) -> int:
    if type(value) is not int or not least <= value <= most:
        raise _bad(where, value, f"an integer in {least}..{most}")
    return value


def _optional_count(value: Any, where: str, least: int = 1) -> int | None:
    return None if value is None else _count(value, where, least, MAX_COUNT)


def _cycles(value: Any, where: str) -> int | None:
    """A design's latency or II: the simulation's cycle budget derives from it, so bound it."""
    return None if value is None else _count(value, where, 1, MAX_CYCLES)


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise _bad(where, value, "true or false")
    return value


def _seconds(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(where, value, "a number of seconds")
    if not 0 <= value <= MAX_SECONDS:  # NaN fails this too
        raise _bad(where, value, f"a number of seconds in 0..{MAX_SECONDS:g}")
    return float(value)


def _text(value: Any, where: str, most: int = MAX_TEXT) -> str:
    if not isinstance(value, str):
        raise _bad(where, value, "a string")
    if len(value) > most or not value.isprintable():
        raise _bad(where, value, f"printable text of at most {most} characters")
    return value


def _shape(value: Any, where: str) -> tuple[int, ...]:
    dims = _list(value, where, 1, MAX_RANK)
    shape = tuple(_count(dim, f"{where}[{index}]", 1, MAX_DIM) for index, dim in enumerate(dims))
    if math.prod(shape) > MAX_ELEMENTS:
        raise ManifestError(f"{where} {list(shape)} has more than {MAX_ELEMENTS} elements")
    return shape


def identifier_problem(name: Any, port: bool = False) -> str | None:
    """Why `name` cannot be a module (or, with `port`, a port) name of the top, or None.

    A plain Verilog identifier ([A-Za-z_][A-Za-z0-9_]*, at most MAX_IDENTIFIER characters), no
    Verilog/SystemVerilog keyword, and for a module none of `RESERVED_TOP_NAMES`."""
    if not isinstance(name, str):
        return f"is {_kind(name)}, expected a string"
    if not name or len(name) > MAX_IDENTIFIER or not _IDENTIFIER.fullmatch(name):
        return (
            f"is {_show(name)}, expected a plain identifier ([A-Za-z_][A-Za-z0-9_]*, "
            f"at most {MAX_IDENTIFIER} characters)"
        )
    if name in VERILOG_KEYWORDS:
        return f"is {name!r}, a Verilog/SystemVerilog keyword"
    if not port and (name in RESERVED_TOP_NAMES or is_port_name(name)):
        return (
            f"is {name!r}, which the top module cannot be called (reserved: "
            f"{', '.join(sorted(RESERVED_TOP_NAMES))})"
        )
    return None


def _identifier(value: Any, where: str, port: bool = False) -> str:
    problem = identifier_problem(value, port)
    if problem is not None:
        raise ManifestError(f"{where} {problem}")
    return value


def _plain_name(value: Any, where: str) -> str:
    """An output's name: a plain identifier ([A-Za-z_][A-Za-z0-9_]*, at most MAX_IDENTIFIER
    characters); it names arrays and report lines, never a Verilog object, so a keyword
    (``output``) is fine."""
    if not isinstance(value, str) or len(value) > MAX_IDENTIFIER or not _IDENTIFIER.fullmatch(value):
        raise _bad(where, value, f"a plain identifier ([A-Za-z_][A-Za-z0-9_]*, at most {MAX_IDENTIFIER} characters)")
    return value


def _relative_path(value: Any, where: str) -> str:
    """A relative POSIX path of plain components (see `_PATH_PART`)."""
    if not isinstance(value, str):
        raise _bad(where, value, "a relative path")
    parts = value.split("/")
    if (
        len(value) > MAX_PATH
        or len(parts) > 16
        or not all(len(part) <= MAX_PATH_PART and _PATH_PART.fullmatch(part) for part in parts)
    ):
        raise _bad(
            where, value, "a relative path inside OUTDIR of names made of A-Z a-z 0-9 _ . - (no '..')"
        )
    return value


def _confined(outdir: Path, name: str, where: str, must_be_file: bool) -> Path:
    """OUTDIR/name with symlinks resolved; it must stay inside OUTDIR (a resolved folder).
    With `must_be_file` it must be an existing regular file."""
    path = outdir / name
    if not os.path.lexists(path):
        if must_be_file:
            raise ManifestError(f"{where}: file {path} not found")
        return path
    try:
        resolved = path.resolve(strict=True)
    except (OSError, RuntimeError):  # a symlink loop or a dangling link
        raise ManifestError(f"{where}: {path} is a broken or looping symlink") from None
    if not resolved.is_relative_to(outdir):
        raise ManifestError(f"{where}: {path} leads outside OUTDIR (to {resolved})")
    if must_be_file and not resolved.is_file():
        raise ManifestError(f"{where}: {path} is not a regular file")
    return resolved


def _rtl_file(outdir: Path, name: str, where: str) -> Path:
    """A Verilog file the simulator, Yosys and the board flows read whole: bounded in size."""
    path = _confined(outdir, name, where, must_be_file=True)
    size = path.stat().st_size
    if size > MAX_RTL_BYTES:
        raise ManifestError(
            f"{where}: {outdir / name} has {size} bytes, more than the {MAX_RTL_BYTES >> 20} MB "
            "a generated Verilog file can have"
        )
    return path


def writable_path(outdir: Path, name: str) -> Path:
    """OUTDIR/name for rtlgen to (re)write: no existing component of it below OUTDIR may be a
    symlink (writing through one would land outside OUTDIR, or on a file rtlgen did not write)."""
    outdir = Path(outdir).resolve()
    path = outdir
    for part in _relative_path(name, name).split("/"):
        path = path / part
        if path.is_symlink():
            raise ManifestError(f"{path} is a symlink; rtlgen writes only real files inside OUTDIR")
    return path


# --------------------------------------------------------------------------------- vectors
def output_arrays(manifest: Manifest, y_int: Any, what: str = "y_int") -> dict[str, Any]:
    """``y_int`` as {output name: array}, in the manifest's output order: a mapping (e.g. a
    loaded .npz) must have exactly the outputs' names; a single array is taken for a
    one-output design only. The arrays themselves are checked by `check_vectors`."""
    names = manifest.output_names
    if isinstance(y_int, np.ndarray) or not hasattr(y_int, "keys"):
        if len(names) > 1:
            raise ManifestError(
                f"{what}: the design has {len(names)} outputs ({', '.join(names)}); give one "
                "array per output name (an .npz file)"
            )
        return {names[0]: y_int}
    keys = sorted(str(key) for key in y_int.keys())
    if keys != sorted(names):
        shown = ", ".join(_show(key) for key in keys[:8])
        raise ManifestError(
            f"{what}: arrays named [{shown}], expected one per output: {', '.join(names)}"
        )
    return {name: y_int[name] for name in names}


def input_arrays(manifest: Manifest, x_int: Any, what: str = "x_int") -> dict[str, Any]:
    """``x_int`` as {input name: array}, in the manifest's input order: a mapping (e.g. a
    loaded .npz) must have exactly the inputs' names; a single array is taken for a
    one-input design only. The arrays themselves are checked by `check_vectors`."""
    names = manifest.input_names
    if isinstance(x_int, np.ndarray) or not hasattr(x_int, "keys"):
        if len(names) > 1:
            raise ManifestError(
                f"{what}: the design has {len(names)} inputs ({', '.join(names)}); give one "
                "array per input name (an .npz file)"
            )
        return {names[0]: x_int}
    keys = sorted(str(key) for key in x_int.keys())
    if keys != sorted(names):
        shown = ", ".join(_show(key) for key in keys[:8])
        raise ManifestError(
            f"{what}: arrays named [{shown}], expected one per input: {', '.join(names)}"
        )
    return {name: x_int[name] for name in names}


def check_vectors(manifest: Manifest, x_int: Any, y_int: Any) -> None:
    """Raise ManifestError unless x/y have shapes (N, *input.shape) / (N, *output.shape) with
    the same N >= 1, integer dtype, and inputs inside the input type's range. For a design
    with several outputs ``y_int`` is {output name: array} (`output_arrays`), one array of
    shape (N, *shape) per output; with several inputs ``x_int`` is {input name: array}
    (`input_arrays`)."""
    given = input_arrays(manifest, x_int)
    expected = output_arrays(manifest, y_int)
    several_in = len(manifest.inputs) > 1
    checks = [
        (f"x_int[{spec.name!r}]" if several_in else "x_int", given[spec.name], spec)
        for spec in manifest.inputs
    ]
    for spec in manifest.outputs:
        label = "y_int" if len(manifest.outputs) == 1 else f"y_int[{spec.name!r}]"
        checks.append((label, expected[spec.name], spec))
    for name, array, spec in checks:
        if not isinstance(array, np.ndarray) or not np.issubdtype(array.dtype, np.integer):
            kind = array.dtype if isinstance(array, np.ndarray) else type(array).__name__
            raise ManifestError(f"{name}: expected an integer numpy array, got {kind}")
        if array.ndim < 1 or tuple(array.shape[1:]) != spec.shape:
            raise ManifestError(
                f"{name}: shape {tuple(array.shape)}, expected (N, {', '.join(map(str, spec.shape))})"
            )
    first_name, first = checks[0][0], checks[0][1]
    for name, array, _ in checks[1:]:
        if len(first) != len(array) or len(first) == 0:
            raise ManifestError(
                f"{first_name} has {len(first)} samples and {name} {len(array)}; need the same "
                "number >= 1"
            )
    for name, array, spec in checks[: len(manifest.inputs)]:
        element = spec.element
        if array.min() < element.lo or array.max() > element.hi:
            raise ManifestError(
                f"{name}: values in [{array.min()}, {array.max()}] do not fit the input type "
                f"({element.width} bits, {'signed' if element.signed else 'unsigned'})"
            )


def describe_mismatch(mismatch: dict) -> str:
    """One line naming the sample, the output index, expected and actual values (and raw bits)."""
    index = ", ".join(map(str, mismatch["index"]))
    which = f"output {mismatch['output']}" if mismatch.get("output") else "output"
    return (
        f"sample {mismatch['sample']}, {which} [{index}]: expected {mismatch['expected']} "
        f"({mismatch['expected_raw']}), actual {mismatch['actual']} ({mismatch['actual_raw']})"
    )


def sim_result(
    manifest: Manifest,
    checks: list[dict[str, Any]],
    *,
    samples: int,
    error: str | None,
    firsts: list[int],
    end_cycle: int,
    seconds: float,
    input_stalled: bool,
    backpressure: float,
    seed: int,
    results_dir: Path,
) -> dict[str, Any]:
    """The fields of sim_result.json from the per-output checks, written with sim_out.npy
    (one output) or sim_out.npz (several) into ``results_dir``; shared by the cocotb bench
    and the C++ harness so that both report alike. A sample starts at ``firsts[s]`` (the last
    of its inputs' first handshakes); II is the largest gap between sample starts."""
    several = len(checks) > 1
    gaps = [b - a for a, b in zip(firsts, firsts[1:], strict=False)]
    ii = max(gaps) if gaps else None
    for check in checks:
        check["summary"]["ii_cycles"] = ii
    # Streaming time: first sample start to last output handshake (latency + (N-1) * II at
    # full rate).
    cycles = end_cycle - (int(firsts[0]) if len(firsts) else 0)
    received = min(check["received"] for check in checks)
    any_differs = np.zeros(received, dtype=bool)
    for check in checks:
        any_differs |= check["differs"][:received].reshape(received, -1).any(axis=1)
    problems = [p for p in [error, *(p for check in checks for p in check["problems"])] if p]
    first = checks[0]
    result = {
        "passed": not problems,
        "report": "; ".join(problems) if problems else f"{samples} samples bit-exact",
        "images": samples,
        "mismatches": int(any_differs.sum()) if several else first["mismatched_samples"],
        "mismatched_elements": sum(int(check["differs"].sum()) for check in checks),
        "first_mismatch": next(
            (check["first_mismatch"] for check in checks if check["first_mismatch"]), None
        ),
        "tlast_errors": sum(check["tlast_errors"] for check in checks),
        "tuser_errors": sum(check["tuser_errors"] for check in checks),
        "extra_beats": sum(check["extra"] for check in checks),
        "error": error,
        "latency_cycles": first["summary"]["latency_cycles"],
        "ii_cycles": ii,
        "timing_under_backpressure": backpressure > 0,
        "manifest_latency_cycles": manifest.latency_cycles,
        "manifest_ii_cycles": manifest.ii_cycles,
        "input_stalled": input_stalled,
        "cycles": cycles,
        "seconds": seconds,
        "cycles_per_second": cycles / seconds if seconds > 0 else None,
        "backpressure": backpressure,
        "seed": seed,
        "outputs": [check["summary"] for check in checks],
    }
    results_dir.mkdir(parents=True, exist_ok=True)
    if several:
        np.savez(results_dir / "sim_out.npz", **{c["name"]: c["actual"] for c in checks})
    else:
        np.save(results_dir / "sim_out.npy", first["actual"])
    return result


def first_mismatch(spec: StreamSpec, expected: np.ndarray, actual: np.ndarray, several: bool) -> dict:
    """The first differing element of one output (sample, index, expected/actual mantissas
    and raw bit patterns; the output's name only where there are several)."""
    sample, *index = (int(i) for i in np.argwhere(expected != actual)[0])
    want, got = int(expected[(sample, *index)]), int(actual[(sample, *index)])
    mismatch = {
        "sample": sample,
        "index": index,
        "expected": want,
        "actual": got,
        "expected_raw": spec.raw(want),
        "actual_raw": spec.raw(got),
    }
    if several:  # named only where there is a choice (one-output results keep their keys)
        mismatch["output"] = spec.name
    return mismatch


def output_check(
    spec: StreamSpec,
    expected: np.ndarray,
    actual: np.ndarray,
    *,
    received: int,
    expected_beats: int,
    first_tlast: str | None,
    tlast_errors: int,
    first_tuser: str | None,
    tuser_errors: int,
    extra: int,
    latency: int | None,
    several: bool,
) -> dict[str, Any]:
    """One output's comparison as the cocotb bench and the C++ harness report it (they
    differ only in how they read the beats): values bit for bit over the ``received``
    samples, the tlast/tuser findings, extra beats and the worst latency."""
    differs = expected[:received] != actual[:received]
    mismatched = int(differs.reshape(received, -1).any(axis=1).sum()) if received else 0
    mismatch = first_mismatch(spec, expected[:received], actual[:received], several) if differs.any() else None
    where = f" of output {spec.name}" if several else ""
    problems = [
        f"{mismatched} of {received} samples{where} differ; first: {describe_mismatch(mismatch)}"
        if mismatch
        else None,
        first_tlast,
        first_tuser,
        f"{extra} output beats{where} more than the {expected_beats} expected" if extra else None,
    ]
    return {
        "name": spec.name,
        "actual": actual,
        "differs": differs,
        "mismatched_samples": mismatched,
        "received": received,
        "problems": [p for p in problems if p],
        "summary": {
            "name": spec.name,
            "mismatches": mismatched,
            "mismatched_elements": int(differs.sum()),
            "first_mismatch": mismatch,
            "tlast_errors": tlast_errors,
            "tuser_errors": tuser_errors,
            "extra_beats": extra,
            "latency_cycles": latency,
            "manifest_latency_cycles": spec.latency_cycles,
            "ii_cycles": None,
        },
        "first_mismatch": mismatch,
        "tlast_errors": tlast_errors,
        "tuser_errors": tuser_errors,
        "extra": extra,
    }
