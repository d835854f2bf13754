"""Writing outputs (`rtlgen/outdir.py`): a design folder replaces only what rtlgen wrote, refuses
anything else, never touches what is beside it, survives interrupts and concurrent writers;
output files are written exactly where named; a bad output path fails before the work."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from rtlgen import outdir as outdir_module
from rtlgen.emit import convert
from rtlgen.outdir import (
    JOURNAL_NAME,
    LOCK_NAME,
    STAGING_PREFIX,
    DesignFolder,
    check_output_dir,
    check_output_file,
    write_array,
)
from rtlgen.quant.errors import RtlgenError

from .cli_run import rtlgen_in_process
from .nets import mlp

IS_ROOT = os.geteuid() == 0


def tiny_graph():
    return mlp(sizes=(4, 3, 2))


def snapshot(root: Path) -> dict[str, object]:
    """Everything under `root` (not following symlinks): bytes of files, link targets, modes."""
    found: dict[str, object] = {}
    for path in sorted(root.rglob("*")):
        key = path.relative_to(root).as_posix()
        info = os.lstat(path)
        if stat.S_ISLNK(info.st_mode):
            found[key] = ("link", os.readlink(path))
        elif stat.S_ISDIR(info.st_mode):
            found[key] = ("dir", stat.S_IMODE(info.st_mode))
        elif not stat.S_ISREG(info.st_mode):
            found[key] = ("special", stat.S_IFMT(info.st_mode))  # a FIFO: reading it would block
        else:
            found[key] = ("file", path.read_bytes(), stat.S_IMODE(info.st_mode))
    return found


def design_files(outdir: Path) -> list[str]:
    return sorted(p.relative_to(outdir).as_posix() for p in outdir.rglob("*") if p.is_file())


def write_files(root: Path, files: dict[str, str | bytes]) -> None:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())


def tb_writer(files: tuple[str, ...] = ("tb/run.py", "tb/data/x_int.npy")):
    """An `extra` writer like `convert --testbench`'s, writing `files` into the staging folder."""

    def write(staging: Path, manifest) -> None:
        assert (staging / "manifest.json").is_file()  # extra writers read the manifest
        write_files(staging, {name: f"written by rtlgen: {name}" for name in files})

    return write


def assert_one_line_error(result, message: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in lines[0], lines[0]


# ---------------------------------------------------------------------------------------
# A folder rtlgen did not write is refused and left exactly as it was

WEB_APP = {"index.html": "<html>app</html>", "app.js": "main()", "assets/logo.svg": "<svg/>"}
FOREIGN_MANIFESTS = {
    "web-app": json.dumps({"name": "My App", "short_name": "app", "start_url": ".", "icons": []}),
    "json-list": "[1, 2, 3]",
    "json-string": '"rtlgen"',
    "json-null": "null",
    "no-generator-name": json.dumps(
        {
            "format": "rtlgen-design",
            "format_version": 2,
            "generator": {"name": "other"},
            "files": ["index.html"],
        }
    ),
    "no-format": json.dumps(
        {"format_version": 2, "generator": {"name": "rtlgen"}, "files": ["index.html"]}
    ),
    "generator-not-a-dict": json.dumps(
        {"format_version": 2, "generator": "rtlgen", "files": ["index.html"]}
    ),
    "version-a-string": json.dumps(
        {"format_version": "2", "generator": {"name": "rtlgen"}, "files": []}
    ),
    "version-a-bool": json.dumps(
        {"format_version": True, "generator": {"rtlgen": "0.1.0"}, "rtl": []}
    ),
    "version-a-float": json.dumps(
        {"format_version": 1.0, "generator": {"rtlgen": "0.1.0"}, "rtl": []}
    ),
    "format-1-other-generator": json.dumps(
        {"format_version": 1, "generator": {"hls4ml": "1.0"}, "rtl": []}
    ),
    "no-version": json.dumps({"generator": {"name": "rtlgen"}, "files": ["index.html"]}),
    "garbage-bytes": b"\x89PNG\r\n\x1a\n\x00\xff\xfe garbage",
    "empty": "",
    "deeply-nested": "[" * 200_000 + "]" * 200_000,
}


@pytest.mark.parametrize("manifest", FOREIGN_MANIFESTS.values(), ids=FOREIGN_MANIFESTS.keys())
def test_a_folder_with_a_foreign_manifest_is_refused_and_untouched(tmp_path, manifest):
    target = tmp_path / "site"
    write_files(target, {**WEB_APP, "manifest.json": manifest})
    before = snapshot(tmp_path)
    with pytest.raises(RtlgenError, match="is not an rtlgen design folder"):
        check_output_dir(target)
    with pytest.raises(RtlgenError, match="is not an rtlgen design folder"):
        convert(tiny_graph(), target)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("kind", ["directory", "symlink-to-a-real-design", "fifo"])
def test_a_manifest_that_is_not_a_regular_file_is_not_trusted(tmp_path, kind):
    real = convert(tiny_graph(), tmp_path / "real").outdir
    target = tmp_path / "site"
    write_files(target, WEB_APP)
    if kind == "directory":
        (target / "manifest.json").mkdir()
    elif kind == "symlink-to-a-real-design":
        (target / "manifest.json").symlink_to(real / "manifest.json")
    else:
        os.mkfifo(target / "manifest.json")  # opening it for reading must not block
    before = snapshot(tmp_path)
    with pytest.raises(RtlgenError, match="is not an rtlgen design folder"), DesignFolder(target):
        pass
    assert snapshot(tmp_path) == before


def format_2(**fields) -> dict:
    """A format-2 rtlgen manifest header with `fields` added."""
    return {
        "format": "rtlgen-design",
        "format_version": 2,
        "generator": {"name": "rtlgen"},
        **fields,
    }


@pytest.mark.parametrize(
    "manifest",
    [
        format_2(files=["../victim.txt"]),
        format_2(files=["/tmp/victim.txt"]),
        format_2(files=["rtl/../../victim.txt"]),
        format_2(files=["rtl\\..\\..\\victim.txt"]),
        format_2(files=["./graph.npz"]),
        format_2(files=[""]),
        format_2(files=[7]),
        format_2(files="graph.npz"),
        format_2(),
        {"format_version": 1, "generator": {"rtlgen": "0.1.0"}, "rtl": ["../victim.txt"]},
        {"format_version": 1, "generator": {"rtlgen": "0.1.0"}, "rtl": "rtl/x.v"},
    ],
)
def test_an_rtlgen_manifest_listing_paths_outside_the_folder_is_refused(tmp_path, manifest):
    (tmp_path / "victim.txt").write_text("keep me")
    target = tmp_path / "design"
    write_files(target, {"manifest.json": json.dumps(manifest), "graph.npz": "old"})
    before = snapshot(tmp_path)
    with pytest.raises(RtlgenError, match="manifest"):
        check_output_dir(target)
    with pytest.raises(RtlgenError, match="manifest"):
        convert(tiny_graph(), target)
    assert snapshot(tmp_path) == before


def test_a_non_empty_folder_without_a_manifest_is_refused(tmp_path):
    target = tmp_path / "precious"
    write_files(target, {"thesis.tex": "do not delete", ".hidden": "x"})
    before = snapshot(tmp_path)
    with pytest.raises(RtlgenError, match="choose another -o or empty it"):
        convert(tiny_graph(), target)
    assert snapshot(tmp_path) == before


# ---------------------------------------------------------------------------------------
# In a folder rtlgen wrote: its own files are replaced, nothing else


def test_the_manifest_lists_every_file_rtlgen_wrote_and_nothing_else_is_left(tmp_path):
    design = convert(tiny_graph(), tmp_path / "d", extra=tb_writer())
    on_disk = json.loads(design.manifest_path.read_text())
    assert on_disk["files"] == list(design.manifest.files) == sorted(design.manifest.files)
    assert on_disk["files"] == [
        "REPORT.md",
        "graph.npz",
        "rtl/mlp.v",
        "tb/data/x_int.npy",
        "tb/run.py",
    ]
    assert design_files(design.outdir) == sorted([*on_disk["files"], "manifest.json"])
    assert [p.name for p in tmp_path.iterdir()] == ["d"]  # no temporary folder beside it


def test_user_files_inside_a_design_folder_survive_a_reconvert(tmp_path):
    outdir = tmp_path / "d"
    convert(tiny_graph(), outdir, extra=tb_writer())
    mine = {
        "notes.txt": "mine",
        "rtl/wrapper.v": "module wrapper; endmodule",
        "tb/sim_build/obj.o": b"\x7fELF",
        "sim/sim_result.json": "{}",
        "vivado/build.tcl": "# mine",
        ".git/HEAD": "ref",
    }
    write_files(outdir, mine)
    for extra in (tb_writer(), None):
        convert(tiny_graph(), outdir, top_name="again", extra=extra)
        for name, content in mine.items():
            assert (outdir / name).read_bytes() == (
                content if isinstance(content, bytes) else content.encode()
            )


@pytest.mark.parametrize(
    "first, second, gone, kept",
    [
        (
            {"extra": tb_writer()},
            {},
            ["tb/run.py", "tb/data/x_int.npy", "tb/data", "tb"],
            ["rtl/mlp.v"],
        ),
        ({"top_name": "old_top"}, {"top_name": "new_top"}, ["rtl/old_top.v"], ["rtl/new_top.v"]),
        (
            {"extra": tb_writer(("tb/run.py", "tb/README.md"))},
            {"extra": tb_writer(("tb/run.py",))},
            ["tb/README.md"],
            ["tb/run.py"],
        ),
    ],
    ids=["testbench-dropped", "top-renamed", "one-tb-file-dropped"],
)
def test_files_rtlgen_no_longer_writes_are_removed(tmp_path, first, second, gone, kept):
    outdir = tmp_path / "d"
    convert(tiny_graph(), outdir, **first)
    design = convert(tiny_graph(), outdir, **second)
    for name in gone:
        assert not (outdir / name).exists(), name
    for name in kept:
        assert (outdir / name).is_file(), name
    assert design_files(outdir) == sorted([*design.manifest.files, "manifest.json"])


def test_a_folder_keeps_files_beside_removed_ones(tmp_path):
    outdir = tmp_path / "d"
    convert(tiny_graph(), outdir, extra=tb_writer())
    write_files(outdir, {"tb/data/mine.npy": "user"})
    convert(tiny_graph(), outdir)
    assert (
        not (outdir / "tb" / "run.py").exists()
        and not (outdir / "tb" / "data" / "x_int.npy").exists()
    )
    assert (outdir / "tb" / "data" / "mine.npy").read_text() == "user"


LEGACY_MANIFEST = {
    "format_version": 1,
    "top": "old",
    "rtl": ["rtl/old.v"],
    "clock": "clk",
    "generator": {"rtlgen": "0.1.0", "seconds": 1.2},
}


def test_a_format_1_design_is_replaced_keeping_what_rtlgen_did_not_write(tmp_path):
    outdir = tmp_path / "d"
    write_files(
        outdir,
        {
            "manifest.json": json.dumps(LEGACY_MANIFEST),
            "rtl/old.v": "module old; endmodule",
            "graph.npz": b"PK",
            "REPORT.md": "# old",
            "tb/run.py": "old",
            "tb/x_int.npy": b"\x93NUMPY",
            "tb/.gitignore": "sim_build/",
            "tb/sim_build/Vold": b"\x7fELF",
            "notes.txt": "mine",
        },
    )
    design = convert(tiny_graph(), outdir)
    assert not (outdir / "rtl" / "old.v").exists() and not (outdir / "tb" / "run.py").exists()
    assert (
        not (outdir / "tb" / ".gitignore").exists() and not (outdir / "tb" / "x_int.npy").exists()
    )
    assert (outdir / "tb" / "sim_build" / "Vold").read_bytes() == b"\x7fELF"
    assert (outdir / "notes.txt").read_text() == "mine"
    assert json.loads(design.manifest_path.read_text())["files"] == [
        "REPORT.md",
        "graph.npz",
        "rtl/mlp.v",
    ]


def test_a_new_file_never_replaces_one_rtlgen_did_not_write(tmp_path):
    outdir = tmp_path / "d"
    convert(tiny_graph(), outdir)
    write_files(outdir, {"tb/run.py": "my own runner"})
    before = snapshot(tmp_path)
    with pytest.raises(RtlgenError, match="tb/run.py exists and was not written by rtlgen"):
        convert(tiny_graph(), outdir, extra=tb_writer())
    assert snapshot(tmp_path) == before


def test_siblings_of_the_output_folder_are_untouched(tmp_path):
    outdir = tmp_path / "out"
    write_files(
        tmp_path,
        {
            "out.old-rtlgen/manifest.json": json.dumps(LEGACY_MANIFEST),
            "out.old-rtlgen/x": "keep",
            ".out.partial-abc/y": "keep",
            "other/z": "keep",
        },
    )
    before = snapshot(tmp_path)
    convert(tiny_graph(), outdir)
    convert(tiny_graph(), outdir, top_name="second")
    after = snapshot(tmp_path)
    assert {k: v for k, v in after.items() if not k.startswith("out/") and k != "out"} == before


# ---------------------------------------------------------------------------------------
# Symlinks inside a design folder never lead a write or a removal out of it


def test_a_listed_file_behind_a_symlinked_folder_is_not_removed(tmp_path):
    outside = tmp_path / "outside"
    write_files(outside, {"secret.txt": "keep"})
    outdir = tmp_path / "d"
    convert(tiny_graph(), outdir)
    manifest = json.loads((outdir / "manifest.json").read_text())
    manifest["files"].append("link/secret.txt")
    (outdir / "manifest.json").write_text(json.dumps(manifest))
    (outdir / "link").symlink_to(outside)
    convert(tiny_graph(), outdir)
    assert (outside / "secret.txt").read_text() == "keep"


def test_a_listed_symlink_is_removed_not_what_it_points_to(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("keep")
    outdir = tmp_path / "d"
    convert(tiny_graph(), outdir, top_name="old")
    (outdir / "rtl" / "old.v").unlink()
    (outdir / "rtl" / "old.v").symlink_to(outside)
    convert(tiny_graph(), outdir, top_name="new_top")
    assert not os.path.lexists(outdir / "rtl" / "old.v") and outside.read_text() == "keep"


@pytest.mark.parametrize("name", ["rtl", "tb"])
def test_a_symlinked_folder_on_the_way_to_a_new_file_is_refused(tmp_path, name):
    outside = tmp_path / "outside"
    outside.mkdir()
    outdir = tmp_path / "d"
    convert(tiny_graph(), outdir)
    (outdir / "rtl" / "mlp.v").unlink()
    (outdir / "rtl").rmdir()
    (outdir / name).symlink_to(outside)
    with pytest.raises(RtlgenError, match="is a file or a symlink"):
        convert(tiny_graph(), outdir, extra=tb_writer())
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("name", [LOCK_NAME, f"{STAGING_PREFIX}0123"])
def test_bookkeeping_names_that_are_symlinks_are_not_followed(tmp_path, name):
    outside = tmp_path / "outside"
    write_files(outside, {"keep.txt": "keep"})
    outdir = tmp_path / "d"
    convert(tiny_graph(), outdir)
    (outdir / name).symlink_to(outside)
    try:
        convert(tiny_graph(), outdir)
    except RtlgenError as error:
        assert name in str(error)
    assert snapshot(outside) == {
        "keep.txt": ("file", b"keep", stat.S_IMODE(os.stat(outside / "keep.txt").st_mode))
    }


# ---------------------------------------------------------------------------------------
# Failures, interrupts, leftovers of killed runs


@pytest.mark.parametrize(
    "failure", [RuntimeError("boom"), KeyboardInterrupt(), RtlgenError("bad samples")]
)
def test_a_failed_write_leaves_the_old_design_intact(tmp_path, failure):
    outdir = tmp_path / "d"
    convert(tiny_graph(), outdir, extra=tb_writer())
    before = snapshot(tmp_path)

    def fail(staging, manifest):
        write_files(staging, {"tb/half.py": "half"})
        raise failure

    with pytest.raises(type(failure)):
        convert(tiny_graph(), outdir, top_name="other", extra=fail)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("failure", [RuntimeError("boom"), KeyboardInterrupt()])
def test_a_failed_first_write_leaves_no_folder(tmp_path, failure):
    def fail(staging, manifest):
        raise failure

    with pytest.raises(type(failure)):
        convert(tiny_graph(), tmp_path / "new" / "deeper" / "d", extra=fail)
    assert list(tmp_path.iterdir()) == []


def test_an_os_error_while_writing_is_a_one_line_error_naming_the_folder(tmp_path):
    def disk_full(staging, manifest):
        raise OSError(errno.ENOSPC, "No space left on device", str(staging / "tb" / "x_int.npy"))

    with pytest.raises(
        RtlgenError, match=r"output directory .*/d: .*/d/tb/x_int.npy: No space left on device"
    ):
        convert(tiny_graph(), tmp_path / "d", extra=disk_full)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("crash_after", [1, 2, 3])
def test_a_commit_killed_half_way_leaves_no_manifest_and_is_recovered(
    tmp_path, monkeypatch, crash_after
):
    """A crash between removing the old manifest and writing the new one (simulated by a
    KeyboardInterrupt in the n-th file move) leaves no manifest describing half-written files;
    the journal lets the next convert recognise the folder and clean up every stale file."""
    outdir = tmp_path / "d"
    convert(tiny_graph(), outdir, top_name="old_top", extra=tb_writer())
    write_files(outdir, {"notes.txt": "mine"})
    moves = {"count": 0}
    move_in = DesignFolder._move_in

    def crashing_move_in(self, relative):
        moves["count"] += 1
        if moves["count"] == crash_after:
            raise KeyboardInterrupt
        move_in(self, relative)

    monkeypatch.setattr(DesignFolder, "_move_in", crashing_move_in)
    with pytest.raises(KeyboardInterrupt):
        convert(tiny_graph(), outdir, top_name="new_top")
    assert not (outdir / "manifest.json").exists() and (outdir / JOURNAL_NAME).is_file()
    monkeypatch.setattr(DesignFolder, "_move_in", move_in)
    design = convert(tiny_graph(), outdir, top_name="new_top")
    assert design_files(outdir) == sorted([*design.manifest.files, "manifest.json", "notes.txt"])


def test_leftovers_of_a_killed_run_do_not_block_the_next(tmp_path):
    outdir = tmp_path / "d"
    convert(tiny_graph(), outdir)
    write_files(outdir, {LOCK_NAME: "", f"{STAGING_PREFIX}dead/rtl/x.v": "half"})
    design = convert(tiny_graph(), outdir)
    assert design_files(outdir) == sorted([*design.manifest.files, "manifest.json"])
    assert sorted(os.listdir(outdir)) == ["REPORT.md", "graph.npz", "manifest.json", "rtl"]


def test_a_folder_with_only_a_stale_lock_counts_as_empty(tmp_path):
    outdir = tmp_path / "d"
    write_files(outdir, {LOCK_NAME: ""})
    check_output_dir(outdir)
    convert(tiny_graph(), outdir)
    assert (outdir / "manifest.json").is_file()


# ---------------------------------------------------------------------------------------
# Concurrent writers


def test_a_second_writer_while_one_is_writing_gets_a_one_line_error(tmp_path):
    outdir = tmp_path / "d"
    convert(tiny_graph(), outdir, top_name="first")
    holding, done = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def slow_extra(staging, manifest):
        holding.set()
        assert done.wait(60)

    def writer():
        try:
            convert(tiny_graph(), outdir, top_name="slow", extra=slow_extra)
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert holding.wait(60)
        with pytest.raises(RtlgenError, match="another rtlgen process is writing"):
            convert(tiny_graph(), outdir, top_name="fast")
    finally:
        done.set()
        thread.join(60)
    assert errors == []
    manifest = json.loads((outdir / "manifest.json").read_text())
    assert manifest["top"] == "slow" and design_files(outdir) == sorted(
        [*manifest["files"], "manifest.json"]
    )


def test_a_held_lock_makes_cli_convert_exit_2_with_one_line(tmp_path):
    outdir = tmp_path / "d"
    convert(tiny_graph(), outdir)
    before = snapshot(tmp_path)
    fd = os.open(outdir / LOCK_NAME, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        # in this process: flock locks belong to the open file, so this run's own open of
        # the lock file conflicts with the one held here as with another process's
        result = rtlgen_in_process(
            "convert", outdir, "-o", outdir, "--top", "other"
        )  # the model: the design itself
    finally:
        os.close(fd)
    assert_one_line_error(result, "another rtlgen process is writing")
    os.unlink(outdir / LOCK_NAME)
    assert snapshot(tmp_path) == before


def test_two_concurrent_cli_converts_leave_one_complete_design(tmp_path):
    source = convert(tiny_graph(), tmp_path / "source").outdir
    outdir = tmp_path / "d"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rtlgen",
                "convert",
                str(source),
                "-o",
                str(outdir),
                "--top",
                top,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for top in ("first", "second")
    ]
    stderrs = [proc.communicate(timeout=300)[1] for proc in procs]
    results = [(proc.returncode, stderr) for proc, stderr in zip(procs, stderrs, strict=True)]
    assert any(code == 0 for code, _ in results), results
    for code, stderr in results:
        if code != 0:  # the loser of an overlap: one line, never a traceback
            assert code == 2 and stderr.strip().count("\n") == 0, stderr
            assert "another rtlgen process is writing" in stderr
    manifest = json.loads((outdir / "manifest.json").read_text())
    assert manifest["top"] in ("first", "second")
    assert design_files(outdir) == sorted([*manifest["files"], "manifest.json"])
    assert os.listdir(outdir / "rtl") == [f"{manifest['top']}.v"]


# ---------------------------------------------------------------------------------------
# Modes: the umask for what is new, the existing mode for what exists


def test_a_new_design_folder_follows_the_umask(tmp_path):
    """The umask is this process's, set for the convert alone (the kernel applies it to each
    folder and file as it is made)."""
    previous = os.umask(0o027)
    try:
        convert(tiny_graph(), tmp_path / "new" / "d")
    finally:
        os.umask(previous)
    modes = {
        name: stat.S_IMODE(os.stat(tmp_path / "new" / "d" / name).st_mode)
        for name in ("", "rtl", "rtl/mlp.v", "manifest.json")
    }
    assert modes == {
        "": 0o750,
        "rtl": 0o750,
        "rtl/mlp.v": 0o640,
        "manifest.json": 0o640,
    }
    assert stat.S_IMODE(os.stat(tmp_path / "new").st_mode) == 0o750


@pytest.mark.parametrize("mode", [0o755, 0o750, 0o711])
def test_an_existing_folder_keeps_its_mode(tmp_path, mode):
    outdir = tmp_path / "d"
    outdir.mkdir()
    outdir.chmod(mode)
    convert(tiny_graph(), outdir)
    convert(tiny_graph(), outdir, top_name="again")
    assert stat.S_IMODE(os.stat(outdir).st_mode) == mode


# ---------------------------------------------------------------------------------------
# Output paths that cannot be written fail first, with one line


def bad_paths(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "a_file").write_text("x")
    return {
        "parent-is-a-file": tmp_path / "a_file" / "out",
        "grandparent-is-a-file": tmp_path / "a_file" / "deeper" / "out",
        "pseudo-file-system": Path("/proc/rtlgen-no-such-dir/out"),
        "name-too-long": tmp_path / ("x" * 300) / "out",
        "dangling-symlink": tmp_path / "dangling",
        "path-too-long": tmp_path.joinpath(*["d" * 200] * 21),
    }


BAD_PATH_MESSAGES = {
    "parent-is-a-file": "a_file is a file, not a directory",
    "grandparent-is-a-file": "a_file is a file, not a directory",
    "pseudo-file-system": "cannot create /proc/rtlgen-no-such-dir",
    "name-too-long": "is longer than|File name too long",
    "dangling-symlink": "is a symbolic link to nothing",
    "path-too-long": "too long",
}


@pytest.mark.parametrize("case", BAD_PATH_MESSAGES)
@pytest.mark.parametrize("check", [check_output_dir, check_output_file])
def test_an_unwritable_output_path_is_a_one_line_error(tmp_path, case, check):
    path = bad_paths(tmp_path)[case]
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    before = snapshot(tmp_path)
    with pytest.raises(RtlgenError, match=BAD_PATH_MESSAGES[case]) as error:
        check(path)
    assert "\n" not in str(error.value)
    assert snapshot(tmp_path) == before


def test_an_output_folder_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(RtlgenError, match="is an existing file"):
        check_output_dir(tmp_path / "a_file")
    assert (tmp_path / "a_file").read_text() == "x"


@pytest.mark.parametrize("check", [check_output_dir, check_output_file])
def test_a_read_only_parent_is_refused(tmp_path, monkeypatch, check):
    """Root ignores permission bits, so os.access is what says "read-only" here; the CLI test
    below uses a chmod'ed folder when not running as root."""
    real_access = os.access
    monkeypatch.setattr(
        os,
        "access",
        lambda path, mode: False if Path(path) == tmp_path else real_access(path, mode),
    )
    with pytest.raises(RtlgenError, match="is not writable"):
        check(tmp_path / "out")


@pytest.mark.parametrize("folder", ["", "rtl", "tb"])
def test_a_read_only_folder_inside_a_design_stops_the_commit_before_any_change(
    tmp_path, monkeypatch, folder
):
    outdir = tmp_path / "d"
    convert(tiny_graph(), outdir, top_name="old_top", extra=tb_writer(("tb/run.py",)))
    before = snapshot(tmp_path)
    read_only = (outdir / folder).resolve()
    real_access = os.access

    def access(path, mode):
        return Path(path).resolve() != read_only and real_access(path, mode)

    monkeypatch.setattr(outdir_module.os, "access", access)
    with pytest.raises(RtlgenError, match="is not writable"):
        convert(tiny_graph(), outdir, top_name="new_top")
    assert snapshot(tmp_path) == before


@pytest.mark.skipif(
    IS_ROOT, reason="root writes into a mode-555 folder; covered by monkeypatching os.access"
)
def test_a_read_only_parent_makes_the_cli_exit_2(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        assert_one_line_error(
            rtlgen_in_process("convert", "/nonexistent/model.h5", "-o", locked / "d"),
            "is not writable",
        )
    finally:
        locked.chmod(0o755)


CLI_BAD_OUTPUTS = {
    "convert": {
        "parent-is-a-file": "is a file, not a directory",
        "pseudo-file-system": "cannot create",
        "an-existing-file": "is an existing file",
        "a-foreign-folder": "not an rtlgen design folder",
    },
    "predict": {
        "parent-is-a-file": "is a file, not a directory",
        "pseudo-file-system": "cannot create",
        "a-folder": "is a directory",
    },
    "sim": {
        "parent-is-a-file": "is a file, not a directory",
        "pseudo-file-system": "cannot create",
        "a-folder": "is a directory",
    },
}


@pytest.mark.parametrize(
    "command, case",
    [(command, case) for command, cases in CLI_BAD_OUTPUTS.items() for case in cases],
)
def test_cli_checks_the_output_path_before_reading_anything(tmp_path, command, case):
    """The model, inputs and design named do not exist: an error about -o came first."""
    write_files(tmp_path, {"site/manifest.json": "{}", "a-folder/x": "x"})
    targets = {
        **bad_paths(tmp_path),
        "an-existing-file": tmp_path / "a_file",
        "a-foreign-folder": tmp_path / "site",
        "a-folder": tmp_path / "a-folder",
    }
    missing = tmp_path / "missing"
    args = {
        "convert": ["convert", missing / "model.h5", "-o", targets[case]],
        "predict": ["predict", missing / "model.h5", "-i", missing / "x.npy", "-o", targets[case]],
        "sim": ["sim", missing / "design", "-i", missing / "x.npy", "-o", targets[case]],
    }[command]
    before = snapshot(tmp_path)
    assert_one_line_error(rtlgen_in_process(*args), CLI_BAD_OUTPUTS[command][case])
    assert snapshot(tmp_path) == before


# ---------------------------------------------------------------------------------------
# Output files


@pytest.mark.parametrize("name", ["y.out", "y", "y.npy", "nested/dir/y.bin", "y.npy.npy"])
def test_write_array_writes_exactly_the_named_path(tmp_path, name):
    array = np.arange(6.0).reshape(2, 3)
    written = write_array(tmp_path / name, array)
    assert written == tmp_path / name
    assert np.array_equal(np.load(tmp_path / name), array)
    assert design_files(tmp_path) == [name]


def test_write_array_keeps_an_existing_files_mode_and_replaces_it_whole(tmp_path):
    target = tmp_path / "y.npy"
    target.write_bytes(b"x" * 10_000)
    target.chmod(0o640)
    write_array(target, np.zeros(3))
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o640 and np.array_equal(
        np.load(target), np.zeros(3)
    )


def test_a_failed_write_array_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "y.npy"
    np.save(target, np.ones(4))
    with pytest.raises(ValueError):
        write_array(target, np.array([object()]))  # pickles are never written
    assert np.array_equal(np.load(target), np.ones(4)) and os.listdir(tmp_path) == ["y.npy"]


def test_write_array_replaces_a_symlink_instead_of_writing_through_it(tmp_path):
    outside = tmp_path / "outside.npy"
    np.save(outside, np.ones(2))
    (tmp_path / "y.npy").symlink_to(outside)
    write_array(tmp_path / "y.npy", np.zeros(2))
    assert not (tmp_path / "y.npy").is_symlink() and np.array_equal(np.load(outside), np.ones(2))


def test_write_array_to_a_device_writes_in_place():
    write_array("/dev/null", np.zeros(2))
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_an_output_file_that_is_a_directory_is_refused(tmp_path):
    with pytest.raises(RtlgenError, match="is a directory"):
        check_output_file(tmp_path)
    with pytest.raises(RtlgenError, match="is a directory"):
        write_array(tmp_path, np.zeros(1))


@pytest.mark.parametrize("read_only", ["the-file", "its-folder"])
def test_a_read_only_output_file_is_not_replaced(tmp_path, monkeypatch, read_only):
    target = tmp_path / "y.npy"
    np.save(target, np.ones(2))
    denied = target if read_only == "the-file" else tmp_path
    real_access = os.access

    def access(path, mode):
        return Path(path) != denied and real_access(path, mode)

    monkeypatch.setattr(outdir_module.os, "access", access)
    with pytest.raises(RtlgenError, match="is not writable"):
        write_array(target, np.zeros(2))
    assert np.array_equal(np.load(target), np.ones(2))


def test_an_os_error_in_write_array_names_the_file(tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(outdir_module.os, "replace", full)
    with pytest.raises(RtlgenError, match=r"output file .*y.npy: No space left on device"):
        write_array(tmp_path / "y.npy", np.zeros(1))
    assert os.listdir(tmp_path) == []


@pytest.fixture(scope="module")
def predict_case(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    design = convert(tiny_graph(), root / "design")
    np.save(root / "x.npy", np.random.default_rng(0).normal(size=(3, 4)))
    return root, design.outdir


@pytest.mark.parametrize("name", ["y.out", "plain"])
def test_cli_predict_writes_exactly_the_named_file_and_says_so(predict_case, name):
    root, design = predict_case
    result = rtlgen_in_process("predict", design, "-i", root / "x.npy", "-o", root / name)
    assert result.returncode == 0, result.stderr
    assert (root / name).is_file() and not (root / f"{name}.npy").exists()
    assert np.load(root / name).shape == (3, 2)
    assert str(root / name) in " ".join(result.stdout.split())


def test_cli_predict_to_a_directory_exits_2(predict_case):
    root, design = predict_case
    (root / "outdir").mkdir(exist_ok=True)
    assert_one_line_error(
        rtlgen_in_process("predict", design, "-i", root / "x.npy", "-o", root / "outdir"),
        "is a directory",
    )
    assert list((root / "outdir").iterdir()) == []


def test_an_output_folder_removed_before_the_lock_is_made_again(tmp_path, monkeypatch):
    """Another rtlgen's writability probe (`check_output_dir` makes and removes a missing
    folder) can remove OUTDIR between making it and taking the lock: the writer makes it again
    (found by two concurrent CLI converts into one new folder: one failed with ENOENT)."""
    target = tmp_path / "new" / "d"
    original = DesignFolder._make_outdir
    removed = []

    def make_then_probe_removes(self):
        original(self)
        if not removed:  # the probe of the other process removes the folder once
            os.rmdir(self.outdir)
            removed.append(self.outdir)

    monkeypatch.setattr(DesignFolder, "_make_outdir", make_then_probe_removes)
    with DesignFolder(target) as folder:
        assert (target / LOCK_NAME).is_file() and folder.staging.is_dir()
    assert removed == [target]
    assert not (tmp_path / "new").exists()  # made by this call, nothing committed: removed


# ---------------------------------------------------------------------------------------
# rtlgen report rewrites manifest.json and REPORT.md in place: under the folder's lock, and
# never over a design that a convert wrote while Yosys ran
def _fake_synthesis(during=None):
    from rtlgen.synth import SynthResult

    def synthesize(*args, **kwargs):
        if during is not None:
            during()
        return SynthResult("xcup", luts=10, ffs=5, dsps=0, brams=0, carry=0, longest_path=2, lut_levels=1)

    return synthesize


def test_report_keeps_a_design_converted_while_yosys_ran(tmp_path, monkeypatch):
    from rtlgen import cli, synth

    out = tmp_path / "d"
    convert(tiny_graph(), out)
    other = mlp(sizes=(4, 5, 3))  # another network, converted into the folder meanwhile
    newer = None

    def remember():
        nonlocal newer
        newer = (out / "manifest.json").read_bytes()

    monkeypatch.setattr(
        synth, "synthesize", _fake_synthesis(lambda: (convert(other, out), remember()))
    )
    with pytest.raises(RtlgenError, match="the design changed while Yosys ran"):
        cli.report(out)
    assert (out / "manifest.json").read_bytes() == newer  # the new design, not overwritten
    assert not (out / outdir_module.LOCK_NAME).exists()  # released


def test_report_waits_for_no_writer_and_says_so(tmp_path, monkeypatch):
    from rtlgen import cli, synth

    out = tmp_path / "d"
    convert(tiny_graph(), out)
    before = (out / "manifest.json").read_bytes()
    monkeypatch.setattr(synth, "synthesize", _fake_synthesis())
    with outdir_module.locked_design(out):  # another rtlgen is writing the folder
        with pytest.raises(RtlgenError, match="another rtlgen process is writing"):
            cli.report(out)
    assert (out / "manifest.json").read_bytes() == before
    cli.report(out)  # the lock released: the synthesis is recorded
    assert json.loads((out / "manifest.json").read_text())["synthesis"]["luts"] == 10
