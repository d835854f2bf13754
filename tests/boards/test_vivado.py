"""The Vivado scripts, executed by tclsh against stub Vivado commands that record every call."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from rtlgen.boards.vivado import VIVADO_BOARDS, write_vivado
from rtlgen.quant.errors import RtlgenError

TCLSH = shutil.which("tclsh")
needs_tclsh = pytest.mark.skipif(TCLSH is None, reason="tclsh not installed")

# Every Vivado command the scripts may use; each records "name<US>arg<US>arg..." in a log.
STUB_VIVADO = r"""
set rtlgen_log [open $::env(RTLGEN_TCL_LOG) w]
proc record {args} {
    puts $::rtlgen_log [join $args \x1f]
    flush $::rtlgen_log
}
namespace eval ipx {}
foreach name {
    create_project read_verilog read_xdc synth_design opt_design place_design route_design
    write_checkpoint report_utilization report_timing_summary add_files set_property
    update_compile_order close_project create_clock
    ipx::package_project ipx::remove_bus_interface ipx::create_xgui_files
    ipx::update_checksums ipx::check_integrity ipx::save_core
} {
    proc $name {args} "record $name {*}\$args"
}
proc current_fileset {args} { record current_fileset {*}$args; return sources_1 }
proc get_ports {args} { record get_ports {*}$args; return [lindex $args end] }
proc get_timing_paths {args} { record get_timing_paths {*}$args; return path_1 }
proc get_property {name object} {
    record get_property $name $object
    if {$name eq "SLACK"} { return $::env(RTLGEN_STUB_SLACK) }
    return $object
}
proc ipx::current_core {args} { record ipx::current_core {*}$args; return core_1 }
proc ipx::get_bus_interfaces {args} {
    record ipx::get_bus_interfaces {*}$args
    # What the packager would have inferred by itself: to be removed by the script.
    if {$args eq "-of_objects core_1"} { return {inferred_s_axis inferred_clk} }
    return {}
}
proc ipx::get_bus_parameters {args} { record ipx::get_bus_parameters {*}$args; return {} }
proc ipx::add_bus_interface {name core} { record ipx::add_bus_interface $name $core; return bif_$name }
proc ipx::infer_bus_interface {port vlnv core} {
    record ipx::infer_bus_interface $port $vlnv $core
    return bif_$port
}
proc ipx::add_port_map {logical interface} {
    record ipx::add_port_map $logical $interface
    return portmap/$interface/$logical
}
proc ipx::add_bus_parameter {name interface} {
    record ipx::add_bus_parameter $name $interface
    return parameter/$interface/$name
}
cd $::env(RTLGEN_TCL_CWD)
source $::env(RTLGEN_TCL_SCRIPT)
"""


def run_stubbed(tmp_path: Path, script: Path, slack: str = "0.250"):
    """Run `script` under the stubs from an unrelated directory; return (process, calls)."""
    harness = tmp_path / "stub_vivado.tcl"
    harness.write_text(STUB_VIVADO)
    log = tmp_path / f"{script.stem}.calls"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    env = {
        "RTLGEN_TCL_LOG": str(log),
        "RTLGEN_TCL_CWD": str(elsewhere),
        "RTLGEN_TCL_SCRIPT": str(script),
        "RTLGEN_STUB_SLACK": slack,
    }
    process = subprocess.run(
        [TCLSH, str(harness)], env=env, capture_output=True, text=True, timeout=60
    )
    calls = [line.split("\x1f") for line in log.read_text().splitlines()]
    return process, calls


def calls_to(calls, name):
    return [call[1:] for call in calls if call[0] == name]


def relocated_outdir(standin_outdir: Path, tmp_path: Path) -> Path:
    """A copy of the OUTDIR somewhere else: the scripts must not depend on where it was made."""
    copy = tmp_path / "moved" / "out"
    shutil.copytree(standin_outdir, copy)
    return copy


@needs_tclsh
def test_build_tcl_runs_under_stub_vivado_and_names_only_existing_files(outdir, tmp_path):
    vivado_dir = write_vivado(outdir, board="pynq-z2")
    moved = relocated_outdir(outdir, tmp_path)
    process, calls = run_stubbed(tmp_path, moved / "vivado" / "build.tcl")
    assert process.returncode == 0, process.stderr
    assert vivado_dir == outdir.resolve() / "vivado"

    assert calls_to(calls, "create_project") == [["-in_memory", "-part", "xc7z020clg400-1"]]
    read_files = [
        Path(call[-1]) for call in calls_to(calls, "read_verilog") + calls_to(calls, "read_xdc")
    ]
    assert read_files == [moved / "rtl" / "chansum.v", moved / "vivado" / "constraints.xdc"]
    assert all(path.is_file() for path in read_files)
    assert calls_to(calls, "synth_design") == [
        ["-top", "chansum", "-part", "xc7z020clg400-1", "-mode", "out_of_context"]
    ]
    steps = [
        call[0]
        for call in calls
        if call[0] in {"synth_design", "opt_design", "place_design", "route_design"}
    ]
    assert steps == ["synth_design", "opt_design", "place_design", "route_design"]
    reports = [
        Path(call[-1]).name
        for call in calls_to(calls, "report_utilization") + calls_to(calls, "report_timing_summary")
    ]
    assert {"utilization.rpt", "timing_summary.rpt"} <= set(reports)

    timing = json.loads((moved / "vivado" / "reports" / "timing.json").read_text())
    assert timing["timing_met"] is True
    assert timing["fmax_mhz"] == pytest.approx(1000 / (10.0 - 0.25), abs=0.01)


@needs_tclsh
def test_build_tcl_fails_when_timing_is_not_met(outdir, tmp_path):
    write_vivado(outdir, part="xcvu9p-flgb2104-2L-e", clock_mhz=250)
    process, _ = run_stubbed(tmp_path, outdir / "vivado" / "build.tcl", slack="-0.500")
    assert process.returncode == 1
    assert "timing not met at 250.0 MHz" in process.stderr
    timing = json.loads((outdir / "vivado" / "reports" / "timing.json").read_text())
    assert timing["timing_met"] is False


@needs_tclsh
def test_package_ip_tcl_declares_axis_interfaces_clock_and_reset(outdir, tmp_path):
    write_vivado(outdir, board="zcu102")
    moved = relocated_outdir(outdir, tmp_path)
    process, calls = run_stubbed(tmp_path, moved / "vivado" / "package_ip.tcl")
    assert process.returncode == 0, process.stderr

    assert calls_to(calls, "create_project")[0][-2:] == ["-part", "xczu9eg-ffvb1156-2-e"]
    added = [Path(path) for call in calls_to(calls, "add_files") for path in call[1:]]
    assert added == [moved / "rtl" / "chansum.v"] and all(path.is_file() for path in added)
    assert ["top", "chansum", "sources_1"] in calls_to(calls, "set_property")
    removed = [call[0] for call in calls_to(calls, "ipx::remove_bus_interface")]
    assert removed == ["inferred_s_axis", "inferred_clk"]

    properties = {
        (call[0], call[2]): call[1] for call in calls_to(calls, "set_property") if len(call) == 3
    }
    for interface, mode in (("bif_s_axis", "slave"), ("bif_m_axis", "master")):
        assert (
            properties[("abstraction_type_vlnv", interface)] == "xilinx.com:interface:axis_rtl:1.0"
        )
        assert properties[("bus_type_vlnv", interface)] == "xilinx.com:interface:axis:1.0"
        assert properties[("interface_mode", interface)] == mode
    port_maps = {
        target.split("/", 1)[1]: physical
        for (name, target), physical in properties.items()
        if name == "physical_name"
    }
    assert port_maps == {
        "bif_s_axis/TDATA": "s_axis_tdata",
        "bif_s_axis/TVALID": "s_axis_tvalid",
        "bif_s_axis/TREADY": "s_axis_tready",
        "bif_s_axis/TLAST": "s_axis_tlast",
        "bif_m_axis/TDATA": "m_axis_tdata",
        "bif_m_axis/TVALID": "m_axis_tvalid",
        "bif_m_axis/TREADY": "m_axis_tready",
        "bif_m_axis/TLAST": "m_axis_tlast",
        "bif_m_axis/TUSER": "m_axis_tuser",
    }
    assert calls_to(calls, "ipx::infer_bus_interface") == [
        ["rst", "xilinx.com:signal:reset_rtl:1.0", "core_1"],
        ["clk", "xilinx.com:signal:clock_rtl:1.0", "core_1"],
    ]
    assert properties[("value", "parameter/bif_rst/POLARITY")] == "ACTIVE_HIGH"
    assert properties[("value", "parameter/bif_clk/ASSOCIATED_BUSIF")] == "s_axis:m_axis"
    assert properties[("value", "parameter/bif_clk/ASSOCIATED_RESET")] == "rst"
    assert calls_to(calls, "ipx::save_core") == [["core_1"]]


@needs_tclsh
@pytest.mark.parametrize("clock_mhz", [100.0, 200.0, 123.4, 300.0])
def test_xdc_clock_period_matches_the_clock(outdir, tmp_path, clock_mhz):
    write_vivado(outdir, part="xc7a35tcpg236-1", clock_mhz=clock_mhz)
    process, calls = run_stubbed(tmp_path, outdir / "vivado" / "constraints.xdc")
    assert process.returncode == 0, process.stderr
    (create_clock,) = calls_to(calls, "create_clock")
    period = float(create_clock[create_clock.index("-period") + 1])
    assert period == pytest.approx(1000.0 / clock_mhz, abs=5e-4)
    assert create_clock[-1] == "clk" and calls_to(calls, "get_ports") == [["clk"]]


def test_board_preset_gives_part_and_default_clock(outdir):
    write_vivado(outdir, board="U250")
    build = (outdir / "vivado" / "build.tcl").read_text()
    assert 'set part "xcu250-figd2104-2L-e"' in build
    assert "set clock_mhz 300.0" in build
    assert "-period 3.333 " in (outdir / "vivado" / "constraints.xdc").read_text()


def test_presets_include_the_papers_part():
    assert "xcvu9p-flgb2104-2L-e" in {board.part for board in VIVADO_BOARDS.values()}


def test_readme_gives_the_batch_commands(outdir):
    write_vivado(outdir, board="vcu118")
    readme = (outdir / "vivado" / "README.md").read_text()
    assert "vivado -mode batch -source build.tcl" in readme
    assert "vivado -mode batch -source package_ip.tcl" in readme


def test_rewriting_replaces_the_whole_directory_and_leaves_no_temporaries(outdir):
    write_vivado(outdir, board="pynq-z2")
    (outdir / "vivado" / "stale.txt").write_text("old")
    write_vivado(outdir, board="zcu102")
    assert sorted(p.name for p in (outdir / "vivado").iterdir()) == [
        "README.md",
        "build.tcl",
        "constraints.xdc",
        "package_ip.tcl",
    ]
    assert [p.name for p in outdir.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"board": "arty-z7"}, "unknown Vivado board 'arty-z7'; supported presets: pynq-z2"),
        ({"part": "zynq 7020"}, "does not look like a Xilinx part name"),
        ({"part": 'xc7z020clg400-1"; exec rm'}, "does not look like a Xilinx part name"),
        ({}, "give a Vivado part or a board preset"),
        ({"board": "pynq-z2", "part": "xczu9eg-ffvb1156-2-e"}, "differs from board 'pynq-z2'"),
        ({"part": "xc7z020clg400-1", "clock_mhz": 0}, "out of range"),
    ],
)
def test_bad_targets_raise_one_line_errors(outdir, kwargs, message):
    with pytest.raises(RtlgenError, match=message.replace("(", r"\(")) as error:
        write_vivado(outdir, **kwargs)
    assert "\n" not in str(error.value)
    assert not (outdir / "vivado").exists()


def test_unknown_board_message_lists_every_preset(outdir):
    with pytest.raises(RtlgenError) as error:
        write_vivado(outdir, board="nope")
    assert all(name in str(error.value) for name in VIVADO_BOARDS)


def test_missing_outdir_or_manifest_raise_one_line_errors(tmp_path):
    with pytest.raises(RtlgenError, match="does not exist"):
        write_vivado(tmp_path / "missing", board="pynq-z2")
    with pytest.raises(RtlgenError, match="has no manifest.json"):
        write_vivado(tmp_path, board="pynq-z2")
