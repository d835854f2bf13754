"""rtlgen's cache folder: what is in it (`rtlgen cache`) and removing only what rtlgen put there
(`rtlgen cache clear`).

The cache folder is `$RTLGEN_CACHE_DIR`, else `$XDG_CACHE_HOME/rtlgen`, else `~/.cache/rtlgen`
(`rtlgen.sim_tb.runner.default_build_root` is its `verilator/` subfolder). rtlgen writes there:

- `verilator/<key>/`: one Verilator build per design (a 20-hex-digit key, see
  `sim_tb.tb_run.build_key`), finished when it holds `rtlgen_build.json`; typically 100-500 MB.
  A build takes `<key>.lock` before it makes the folder, so a folder without the marker is an
  unfinished build only beside its lock file (else it is someone else's and left alone);
- `verilator/<key>.lock`: the empty lock file of that build;
- `verilator/objcache/<hash>.o|.d`: Verilator run-time objects shared by all builds
  (`sim_tb/tb_objcache.py`);
- `yosys/yosys-<versions>.cwasm`: Amaranth's built-in Yosys compiled to machine code once,
  which `rtlgen.inprocess_yosys` runs inside the converting process (~15 MB; rewritten
  when needed, so clearing it costs one compile on the next conversion);
- `demo/`: the design folder of `rtlgen demo` (without `-o`). It is listed but not cleared:
  it is a design folder like any other (a user may have added files), and `rtlgen demo`
  replaces it in place.

An entry is recognised by this naming alone and is never a symlink: `RTLGEN_CACHE_DIR` may
point at a folder that holds other files, and those are listed as "other" and left alone.
Nothing is followed out of the cache folder (symlinks are neither followed nor removed).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rtlgen.sim_tb.runner import default_build_root
from rtlgen.sim_tb.tb_run import BUILD_KEY_CHARS, BUILD_MARKER

__all__ = ["CacheEntry", "CacheListing", "cache_root", "clear_cache", "list_cache"]

_BUILD_DIR = re.compile(rf"^[0-9a-f]{{{BUILD_KEY_CHARS}}}$")
_BUILD_LOCK = re.compile(rf"^[0-9a-f]{{{BUILD_KEY_CHARS}}}\.lock$")
OBJCACHE = "objcache"
DEMO = "demo"
YOSYS = "yosys"
# inprocess_yosys.py: `yosys-<versions>-<size>.cwasm`, written through `<name>.<pid>.tmp`
_YOSYS_FILE = re.compile(r"^yosys-[A-Za-z0-9._+-]+\.cwasm(?:\.[0-9]+\.tmp)?$")
# tb_objcache.py: `<32 hex>.o` / `.d`, written through NamedTemporaryFile (`tmp` + 8 characters).
_OBJCACHE_FILE = re.compile(r"^(?:[0-9a-f]{32}\.[od]|tmp[a-z0-9_]{8})$")
MAX_MARKER_BYTES = 64 * 1024  # rtlgen_build.json is ~100 bytes; read no more of a forged one


@dataclass(frozen=True)
class CacheEntry:
    """One thing rtlgen keeps in its cache: `kind` is "build" (finished Verilator build, `top`
    is the design's top module), "unfinished build" (failed or interrupted), "objects" (the
    shared run-time objects), "lock", "compiled yosys" (`rtlgen.inprocess_yosys`) or "demo
    design" (kept by `clear_cache`); `size` in
    bytes (files only, links not followed)."""

    path: Path
    kind: str
    top: str | None
    size: int
    last_used: float


@dataclass(frozen=True)
class CacheListing:
    """The cache folder's rtlgen entries and the names in it rtlgen did not write (`others`)."""

    root: Path
    entries: tuple[CacheEntry, ...]
    others: tuple[Path, ...]

    @property
    def size(self) -> int:
        return sum(entry.size for entry in self.entries)


def cache_root() -> Path:
    """The cache folder (it may not exist yet)."""
    return default_build_root().parent


def _is_real_dir(path: Path) -> bool:
    """A directory that is not a symlink (a symlink to one is never followed)."""
    with contextlib.suppress(OSError):
        return stat.S_ISDIR(os.lstat(path).st_mode)
    return False


def _is_real_file(path: Path) -> bool:
    with contextlib.suppress(OSError):
        return stat.S_ISREG(os.lstat(path).st_mode)
    return False


def _tree_size(path: Path) -> int:
    """Bytes of the regular files under `path`, without following symlinks."""
    if not _is_real_dir(path):
        return os.lstat(path).st_size if _is_real_file(path) else 0
    total = 0
    for folder, _dirs, files in os.walk(path, followlinks=False):
        for name in files:
            with contextlib.suppress(OSError):
                info = os.lstat(os.path.join(folder, name))
                total += info.st_size if stat.S_ISREG(info.st_mode) else 0
    return total


def _build_top(build_dir: Path) -> str | None:
    """The top module a finished build's marker names (None if unreadable or forged)."""
    marker = build_dir / BUILD_MARKER
    if not _is_real_file(marker):
        return None
    try:
        with open(marker, "rb") as handle:
            data = json.loads(handle.read(MAX_MARKER_BYTES))
    except (OSError, ValueError, RecursionError):
        return "?"
    top = data.get("top") if isinstance(data, dict) else None
    return top[:100] if isinstance(top, str) else "?"


def _entry(path: Path, kind: str, top: str | None = None) -> CacheEntry:
    try:
        used = os.lstat(path / BUILD_MARKER if top is not None else path).st_mtime
    except OSError:
        used = 0.0
    return CacheEntry(path=path, kind=kind, top=top, size=_tree_size(path), last_used=used)


def _names(folder: Path) -> list[str]:
    if not _is_real_dir(folder):
        return []
    return sorted(os.listdir(folder))


def list_cache(root: Path | None = None) -> CacheListing:
    """What is in the cache folder `root` (default `cache_root()`)."""
    # The root itself may be a symlink the user chose (RTLGEN_CACHE_DIR); entries never are.
    root = Path(os.path.realpath(cache_root() if root is None else root))
    entries: list[CacheEntry] = []
    others: list[Path] = []
    builds = root / "verilator"
    for name in _names(root):
        if name == DEMO and _is_real_dir(root / name):
            entries.append(_entry(root / name, "demo design"))
        elif name == YOSYS and _is_real_dir(root / name):
            for file in _names(root / name):
                path = root / name / file
                if _YOSYS_FILE.match(file) and _is_real_file(path):
                    entries.append(_entry(path, "compiled yosys"))
                else:
                    others.append(path)
        elif name != "verilator" or not _is_real_dir(builds):
            others.append(root / name)
    for name in _names(builds):
        path = builds / name
        if _BUILD_DIR.match(name) and _is_real_dir(path):
            top = _build_top(path)
            if top is None and not _is_real_file(builds / f"{name}.lock"):
                others.append(path)  # no marker and no lock: not a folder rtlgen's build made
                continue
            entries.append(_entry(path, "build" if top is not None else "unfinished build", top))
        elif _BUILD_LOCK.match(name) and _is_real_file(path):
            entries.append(_entry(path, "lock"))
        elif name == OBJCACHE and _is_real_dir(path):
            entries.append(_entry(path, "objects"))
        else:
            others.append(path)
    return CacheListing(root=root, entries=tuple(entries), others=tuple(others))


@contextlib.contextmanager
def _unused(lock: Path) -> Iterator[bool]:
    """Hold a build's lock while it is removed; yield False if a build or simulation of that
    design holds it now (then the build is kept)."""
    if not _is_real_file(lock):
        yield True
        return
    with open(lock, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _remove_objects(folder: Path) -> int:
    """Remove the objcache files tb_objcache.py writes (nothing else); the folder if emptied."""
    freed = 0
    for name in _names(folder):
        path = folder / name
        if _OBJCACHE_FILE.match(name) and _is_real_file(path):
            freed += os.lstat(path).st_size
            path.unlink()
    with contextlib.suppress(OSError):
        folder.rmdir()  # only when empty
    return freed


def clear_cache(root: Path | None = None) -> tuple[list[CacheEntry], list[CacheEntry]]:
    """Remove rtlgen's entries from the cache folder; return (removed, kept because in use).

    Builds are removed whole (Verilator wrote everything in them); a build whose lock another
    process holds is kept. The demo design, other files and symlinks stay.
    """
    listing = list_cache(root)
    removed: list[CacheEntry] = []
    in_use: list[CacheEntry] = []
    locks = {entry.path: entry for entry in listing.entries if entry.kind == "lock"}
    for entry in listing.entries:
        if entry.kind in ("build", "unfinished build"):
            lock = entry.path.with_name(entry.path.name + ".lock")
            with _unused(lock) as unused:
                if unused:
                    shutil.rmtree(entry.path)
                    removed.append(entry)
                    if lock in locks:
                        lock.unlink()
                        removed.append(locks.pop(lock))
                else:
                    in_use.append(entry)
                    locks.pop(lock, None)
        elif entry.kind == "objects":
            freed = _remove_objects(entry.path)
            removed.append(CacheEntry(entry.path, entry.kind, None, freed, entry.last_used))
        elif entry.kind == "compiled yosys":
            # a process running it keeps its mapping; the next conversion compiles it again
            entry.path.unlink()
            removed.append(entry)
    for lock_entry in locks.values():  # locks of builds pruned earlier, unless held right now
        with _unused(lock_entry.path) as unused:
            if unused:
                lock_entry.path.unlink()
                removed.append(lock_entry)
    for folder in ("verilator", YOSYS):
        with contextlib.suppress(OSError):
            (listing.root / folder).rmdir()  # only when empty; the root itself stays
    return removed, in_use
