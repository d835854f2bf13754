"""`rtlgen cache` lists rtlgen's own cache entries and `cache clear` removes only those."""

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rtlgen.cache import clear_cache, list_cache
from rtlgen.sim_tb.tb_run import BUILD_MARKER

KEY_A, KEY_B, KEY_C = "0123456789abcdef0123", "fedcba98765432100000", "aaaaaaaaaaaaaaaaaaaa"


def _fake_build(root: Path, key: str, top: str | None, size: int = 1000) -> Path:
    """A build folder as tb_run.build leaves it: finished (marker) or not (top None)."""
    build = root / "verilator" / key
    (build / "obj_dir").mkdir(parents=True)
    (build / "obj_dir" / "Vtop").write_bytes(b"\0" * size)
    (build / "build.log").write_text("log\n")
    if top is not None:
        (build / BUILD_MARKER).write_text(json.dumps({"top": top, "key": key, "waves": False}))
    (root / "verilator" / f"{key}.lock").touch()
    return build


def _foreign_files(root: Path, outside: Path) -> dict[Path, bytes]:
    """Things rtlgen did not write, in and around the cache, with their contents."""
    outside.mkdir()
    (outside / "precious.txt").write_text("keep me")
    files = {
        root / "notes.txt": b"mine",
        root / "verilator" / "README": b"also mine",
        root / "verilator" / "objcache" / "my-object.o": b"not a cache key",
        root / "verilator" / "0123456789abcdef012": b"19 hex digits: not a key",  # near miss
        root / "verilator" / "ABCDEF0123456789ABCD" / "file": b"upper case: not a key",
        # named like a key but neither finished (marker) nor locked: not a build of rtlgen's
        root / "verilator" / "fedcba9876543210fedc" / "data.bin": b"a key's name, not a build",
        outside / "precious.txt": b"keep me",
    }
    for path, data in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    # Symlinks named like rtlgen's entries, pointing out of the cache: never followed.
    (root / "verilator" / KEY_C).symlink_to(outside, target_is_directory=True)
    (root / "verilator" / f"{KEY_C}.lock").symlink_to(outside / "precious.txt")
    return files


@pytest.fixture
def cache(tmp_path):
    root = tmp_path / "cache"
    _fake_build(root, KEY_A, "demo_cnn", size=5000)
    _fake_build(root, KEY_B, None)
    objects = root / "verilator" / "objcache"
    objects.mkdir()
    (objects / ("0" * 32 + ".o")).write_bytes(b"\0" * 300)
    (objects / ("0" * 32 + ".d")).write_text("deps")
    return root


def test_list_cache_names_builds_with_their_top_and_size(cache):
    listing = list_cache(cache)
    kinds = {entry.path.name: (entry.kind, entry.top) for entry in listing.entries}
    assert kinds == {
        KEY_A: ("build", "demo_cnn"),
        KEY_B: ("unfinished build", None),
        f"{KEY_A}.lock": ("lock", None),
        f"{KEY_B}.lock": ("lock", None),
        "objcache": ("objects", None),
    }
    sizes = {entry.path.name: entry.size for entry in listing.entries}
    assert sizes[KEY_A] == 5000 + 4 + len((cache / "verilator" / KEY_A / BUILD_MARKER).read_bytes())
    assert listing.size == sum(sizes.values()) and listing.others == ()


def test_list_cache_counts_foreign_files_and_symlinks_as_others(cache, tmp_path):
    _foreign_files(cache, tmp_path / "outside")
    listing = list_cache(cache)
    assert {entry.path.name for entry in listing.entries} == {KEY_A, KEY_B, f"{KEY_A}.lock", f"{KEY_B}.lock", "objcache"}
    assert {path.name for path in listing.others} == {"notes.txt", "README", "0123456789abcdef012",
                                                       "ABCDEF0123456789ABCD", KEY_C, f"{KEY_C}.lock",
                                                       "fedcba9876543210fedc"}


def test_clear_cache_removes_only_rtlgen_entries(cache, tmp_path):
    foreign = _foreign_files(cache, tmp_path / "outside")
    removed, in_use = clear_cache(cache)
    assert in_use == []
    assert {entry.path.name for entry in removed} == {KEY_A, KEY_B, f"{KEY_A}.lock", f"{KEY_B}.lock", "objcache"}
    for path, data in foreign.items():
        assert path.read_bytes() == data
    assert (cache / "verilator" / KEY_C).is_symlink() and (cache / "verilator" / f"{KEY_C}.lock").is_symlink()
    left = sorted(str(p.relative_to(cache)) for p in cache.rglob("*"))
    assert left == sorted(["notes.txt", "verilator", "verilator/README", "verilator/objcache",
                           "verilator/objcache/my-object.o", "verilator/0123456789abcdef012",
                           "verilator/ABCDEF0123456789ABCD", "verilator/ABCDEF0123456789ABCD/file",
                           "verilator/fedcba9876543210fedc", "verilator/fedcba9876543210fedc/data.bin",
                           f"verilator/{KEY_C}", f"verilator/{KEY_C}.lock"])


def test_clear_cache_of_only_rtlgen_entries_leaves_the_root_folder_empty(cache):
    removed, _ = clear_cache(cache)
    assert sum(entry.size for entry in removed) > 5000
    assert cache.is_dir() and list(cache.iterdir()) == []


def test_clear_cache_keeps_a_build_whose_lock_is_held(cache):
    with open(cache / "verilator" / f"{KEY_A}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        removed, in_use = clear_cache(cache)
    assert [entry.path.name for entry in in_use] == [KEY_A]
    assert (cache / "verilator" / KEY_A / BUILD_MARKER).is_file()
    assert (cache / "verilator" / f"{KEY_A}.lock").is_file()
    assert not (cache / "verilator" / KEY_B).exists()


def test_clear_cache_keeps_the_demo_design(cache):
    (cache / "demo" / "rtl").mkdir(parents=True)
    (cache / "demo" / "rtl" / "demo_cnn.v").write_text("module demo_cnn; endmodule\n")
    assert "demo design" in {entry.kind for entry in list_cache(cache).entries}
    clear_cache(cache)
    assert (cache / "demo" / "rtl" / "demo_cnn.v").is_file()


def test_a_cache_root_that_is_a_symlink_is_followed_but_its_entries_are_not(cache, tmp_path):
    link = tmp_path / "link-to-cache"
    link.symlink_to(cache, target_is_directory=True)
    assert {entry.kind for entry in list_cache(link).entries} >= {"build", "objects"}
    clear_cache(link)
    assert not (cache / "verilator" / KEY_A).exists() and link.is_symlink()


@pytest.mark.parametrize("state", ["missing", "empty"])
def test_an_absent_or_empty_cache_lists_nothing_and_clears_nothing(tmp_path, state):
    root = tmp_path / "cache"
    if state == "empty":
        root.mkdir()
    assert list_cache(root).entries == () and clear_cache(root) == ([], [])
    assert root.exists() == (state == "empty")


def rtlgen(*args, cache: Path):
    env = {**os.environ, "RTLGEN_CACHE_DIR": str(cache)}
    return subprocess.run([sys.executable, "-m", "rtlgen", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=120)


def test_cache_command_shows_location_builds_and_total(cache, tmp_path):
    _foreign_files(cache, tmp_path / "outside")
    result = rtlgen("cache", cache=cache)
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert f"cache folder: {cache}" in text and "demo_cnn" in text and KEY_A in text
    assert "total" in text and "1 Verilator build" in text and "7 other file(s) rtlgen did not write" in text


def test_cache_clear_command_says_what_it_freed_and_keeps_foreign_files(cache, tmp_path):
    foreign = _foreign_files(cache, tmp_path / "outside")
    result = rtlgen("cache", "clear", cache=cache)
    assert result.returncode == 0, result.stderr
    assert "removed 2 Verilator builds" in result.stdout and "freed" in result.stdout
    assert not (cache / "verilator" / KEY_A).exists()
    for path, data in foreign.items():
        assert path.read_bytes() == data


def test_the_compiled_yosys_is_listed_and_cleared_and_nothing_else_in_its_folder(cache):
    compiled = cache / "yosys" / "yosys-0.50.0.0.post130-wasmtime47.0.1-49258137.cwasm"
    compiled.parent.mkdir()
    compiled.write_bytes(b"\0" * 700)
    (cache / "yosys" / "notes.txt").write_text("mine")
    listing = list_cache(cache)
    assert [(e.path.name, e.size) for e in listing.entries if e.kind == "compiled yosys"] == [
        (compiled.name, 700)
    ]
    assert cache / "yosys" / "notes.txt" in listing.others
    removed, _ = clear_cache(cache)
    assert compiled in {entry.path for entry in removed} and not compiled.exists()
    assert (cache / "yosys" / "notes.txt").read_text() == "mine"
    (cache / "yosys" / "notes.txt").unlink()
    compiled.write_bytes(b"\0")
    clear_cache(cache)
    assert not (cache / "yosys").exists()  # emptied: the folder goes too
