"""Where rtlgen writes: a design folder (OUTDIR of `convert`) and single output files (`-o y.npy`).

A design folder is replaced only where rtlgen wrote it. Its manifest says which files those
are (format 2: the `files` list; format 1, rtlgen <= 0.1.0: the `rtl` entries plus the fixed
set that version wrote); a folder without such a manifest is refused, never emptied. A new
design is staged inside OUTDIR (`.rtlgen-staging-*`), under a lock (`.rtlgen.lock`), then
committed: the old manifest goes first (the folder stops looking complete), new files are
moved in, the old design's files that are no longer written are removed, the new manifest is
written last. A journal (`.rtlgen-commit.json`) lists every file the commit may leave behind,
so a run killed half-way leaves a folder the next `convert` still recognises and cleans.
Nothing outside OUTDIR is written or removed; a path from a manifest never leads out of it
(relative, no `..`, no symlink followed).

Output files are written under a temporary name beside them and renamed over the named path,
so a failed write never leaves a truncated file. Every check here is cheap and runs before
the model is loaded, so a bad `-o` fails in a second, not after the generation.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import secrets
import shutil
import stat
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path, PurePosixPath
from types import TracebackType

import numpy as np

from rtlgen.manifest import FORMAT, GENERATOR, MANIFEST_NAME
from rtlgen.quant.errors import RtlgenError

LOCK_NAME = ".rtlgen.lock"
JOURNAL_NAME = ".rtlgen-commit.json"
STAGING_PREFIX = ".rtlgen-staging-"
# A real manifest is a few KB per layer; a larger file is not one rtlgen wrote.
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
# Bytes a design needs below OUTDIR in a path: the staging folder's name, tb/..., a top module
# name of up to 128 characters. Checked up front so a long -o fails before the generation.
DESIGN_PATH_ROOM = 400

# Besides its manifest's `rtl` entries, what rtlgen 0.1.0 (manifest format 1) wrote into OUTDIR:
# the graph, the report and the files of the stand-alone testbench (`convert --testbench`).
# Frozen: it describes folders already on disk, not what today's testbench writer writes.
LEGACY_FILES = frozenset(
    {
        "graph.npz",
        "REPORT.md",
        "tb/tb_network.py",
        "tb/tb_axis.py",
        "tb/tb_manifest.py",
        "tb/tb_objcache.py",
        "tb/run.py",
        "tb/README.md",
        "tb/.gitignore",
        "tb/x_int.npy",
        "tb/y_int.npy",
    }
)


def _is_bookkeeping(name: str) -> bool:
    """Top-level names rtlgen uses while writing; they do not make a folder non-empty."""
    return name in (LOCK_NAME, JOURNAL_NAME) or name.startswith(STAGING_PREFIX)


def os_error(what: str, path: Path | str, exc: OSError) -> RtlgenError:
    """One line for a failed file-system call: which path, and the system's reason."""
    where = exc.filename if exc.filename is not None else path
    reason = exc.strerror or type(exc).__name__
    detail = f"{where}: {reason}" if str(where) != str(path) else reason
    return RtlgenError(f"{what} {path}: {detail}")


# ---------------------------------------------------------------------------------------
# Recognising a design folder rtlgen wrote


def confined_path(entry: object) -> PurePosixPath | None:
    """`entry` as a path inside OUTDIR, or None when it could lead elsewhere (absolute, `..`,
    empty or `.` components, backslashes, NUL) or names rtlgen's own bookkeeping."""
    if not isinstance(entry, str) or not entry or "\\" in entry or "\x00" in entry:
        return None
    parts = entry.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return None  # also rejects a leading "/" (absolute) and "a//b"
    if parts[0] == MANIFEST_NAME or _is_bookkeeping(parts[0]):
        return None
    return PurePosixPath(entry)


def _read_json_file(path: Path) -> object | None:
    """The JSON value in `path`, or None if it is missing, not a regular file (a symlink, a FIFO
    that would block, a directory), larger than a manifest can be, or not JSON."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(MAX_MANIFEST_BYTES + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    if len(data) > MAX_MANIFEST_BYTES:
        return None
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None


def manifest_files(manifest: object, where: Path) -> frozenset[str] | None:
    """The files an rtlgen manifest says rtlgen wrote, or None when `manifest` is not one.

    Format 2 (and later): `format == "rtlgen-design"`, `generator.name == "rtlgen"`, an
    integer `format_version` and a `files` list. Format 1 (rtlgen <= 0.1.0):
    `format_version == 1` and a `generator` dict with key "rtlgen"; its files are the `rtl`
    entries plus `LEGACY_FILES`. Raises RtlgenError when an rtlgen manifest lists a path that
    is not confined to OUTDIR (`where` names the manifest).
    """
    if not isinstance(manifest, dict):
        return None
    version = manifest.get("format_version")
    generator = manifest.get("generator")
    if not isinstance(generator, dict) or type(version) is not int:
        return None
    if version >= 2 and generator.get("name") == GENERATOR and manifest.get("format") == FORMAT:
        listed, field = manifest.get("files"), "files"
        extra: frozenset[str] = frozenset()
    elif version == 1 and GENERATOR in generator:
        listed, field = manifest.get("rtl"), "rtl"
        extra = LEGACY_FILES
    else:
        return None
    if not isinstance(listed, list):
        raise RtlgenError(
            f"{where}: rtlgen manifest without a '{field}' list, so rtlgen cannot tell its own "
            "files from yours; choose another -o or empty the folder"
        )
    files = set(extra)
    for entry in listed:
        if confined_path(entry) is None:
            raise RtlgenError(
                f"{where}: '{field}' entry {str(entry)[:200]!r} is not a relative path inside "
                "the folder; not replacing it (choose another -o or empty the folder)"
            )
        files.add(entry)
    return frozenset(files)


def claimed_files(outdir: Path) -> frozenset[str]:
    """What rtlgen wrote in the existing directory OUTDIR: its manifest's files, plus those of
    an unfinished commit's journal. Empty for a folder holding nothing but rtlgen's bookkeeping.
    Raises RtlgenError for any other folder: rtlgen replaces nothing it did not write."""
    try:
        names = [name for name in os.listdir(outdir) if not _is_bookkeeping(name)]
    except OSError as exc:
        raise os_error("output directory", outdir, exc) from None
    journal_path = outdir / JOURNAL_NAME
    journal_files = manifest_files(_read_json_file(journal_path), journal_path)
    if MANIFEST_NAME in names:
        manifest_path = outdir / MANIFEST_NAME
        files = manifest_files(_read_json_file(manifest_path), manifest_path)
        if files is None:
            raise _not_a_design(outdir)
        return files | (journal_files or frozenset())
    if journal_files is not None:
        return journal_files  # a commit was interrupted between removing and writing manifests
    if names:
        raise _not_a_design(outdir)
    return frozenset()


def _not_a_design(outdir: Path) -> RtlgenError:
    return RtlgenError(
        f"output directory {outdir} exists and is not an rtlgen design folder (no rtlgen "
        "manifest); choose another -o or empty it"
    )


# ---------------------------------------------------------------------------------------
# Checking an output path before the work


def _absolute(path: Path | str) -> Path:
    return Path(os.path.abspath(os.fspath(path)))


def _nearest_existing(path: Path, what: str) -> tuple[Path, os.stat_result, Path | None]:
    """(nearest existing component of absolute `path`, its stat, the component below it that is
    missing or None when `path` itself exists). Raises RtlgenError when a component on the way
    is a file or a dangling symlink, or the path cannot be looked at (too long, no access)."""
    current, missing = path, None
    while True:
        try:
            status = os.stat(current)
        except (FileNotFoundError, NotADirectoryError):
            if os.path.lexists(current) and os.path.islink(current):
                raise RtlgenError(
                    f"{what} {path}: {current} is a symbolic link to nothing"
                ) from None
            current, missing = current.parent, current
            continue
        except OSError as exc:
            raise os_error(what, path, exc) from None
        except ValueError as exc:  # an embedded NUL byte
            raise RtlgenError(f"{what} {path!r}: {exc}") from None
        if missing is not None and not stat.S_ISDIR(status.st_mode):
            raise RtlgenError(f"{what} {path}: {current} is a file, not a directory")
        return current, status, missing


def _check_creatable(what: str, path: Path, parent: Path, missing: Path) -> None:
    """`missing` (the first missing component of `path`, inside `parent`) can be created, and
    so can the rest of `path` below it. os.access answers for permissions (root passes
    everything); creating and removing `missing` itself also catches read-only and pseudo file
    systems (/proc, /sys). Names below `missing` are only checked for their length."""
    try:
        name_max = os.pathconf(parent, "PC_NAME_MAX")
    except (OSError, ValueError):
        name_max = 255
    for part in path.relative_to(parent).parts:
        if len(os.fsencode(part)) > name_max:
            raise RtlgenError(
                f"{what} {path}: the name {part[:40]}... is longer than {name_max} bytes"
            )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise RtlgenError(f"{what} {path}: {parent} is not writable")
    try:
        os.mkdir(missing)
    except FileExistsError:
        return  # created meanwhile by someone else: it exists now, which is all we wanted
    except OSError as exc:
        raise RtlgenError(f"{what} {path}: cannot create {missing} ({exc.strerror})") from None
    try:
        os.rmdir(missing)
    except OSError:
        pass  # already in use by someone else: leave it


def _path_max() -> int:
    try:
        return os.pathconf("/", "PC_PATH_MAX")
    except (OSError, ValueError):
        return 4096


def check_output_dir(path: Path | str) -> Path:
    """The absolute OUTDIR, after checking that `convert` may write it: not an existing file,
    no component on the way a file, creatable or writable, and, when it exists and is not
    empty, a design folder rtlgen wrote. Cheap and writes nothing; call it before loading the
    model. Raises RtlgenError with one line otherwise."""
    what = "output directory"
    outdir = _absolute(path)
    path_max = _path_max()
    if len(os.fsencode(outdir)) > path_max - DESIGN_PATH_ROOM:
        raise RtlgenError(
            f"{what} {outdir}: the path is too long ({len(os.fsencode(outdir))} bytes; the files "
            f"below it need paths under {path_max} bytes)"
        )
    existing, status, missing = _nearest_existing(outdir, what)
    if missing is not None:
        _check_creatable(what, outdir, existing, missing)
        return outdir
    if not stat.S_ISDIR(status.st_mode):
        raise RtlgenError(
            f"{what} {outdir} is an existing file; -o names the folder to write the design into"
        )
    if not os.access(outdir, os.W_OK | os.X_OK):
        raise RtlgenError(f"{what} {outdir} is not writable")
    claimed_files(outdir)
    return outdir


def check_output_file(path: Path | str) -> Path:
    """The absolute path of an output file (`predict -o`, `sim -o`) after checking it can be
    written: not a directory, no component on the way a file, its folder creatable or
    writable. Raises RtlgenError with one line otherwise."""
    what = "output file"
    target = _absolute(path)
    existing, status, missing = _nearest_existing(target, what)
    if missing is not None:
        _check_creatable(what, target, existing, missing)
        return target
    if stat.S_ISDIR(status.st_mode):
        raise RtlgenError(f"{what} {target} is a directory; -o names the .npy file to write")
    if not os.access(target, os.W_OK):  # a read-only file is not replaced behind its back
        raise RtlgenError(f"{what} {target} is not writable")
    if stat.S_ISREG(status.st_mode) and not os.access(target.parent, os.W_OK | os.X_OK):
        raise RtlgenError(f"{what} {target}: {target.parent} is not writable")
    return target


# ---------------------------------------------------------------------------------------
# Writing one output file


def _create_temp_file(folder: Path) -> tuple[int, Path]:
    """A new empty file in `folder` with a short random name (the target's own name may be at
    the length limit), created like any file the user writes: mode 0666 minus the umask."""
    for _ in range(100):
        temp = folder / f".rtlgen-{secrets.token_hex(6)}.tmp"
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        except FileExistsError:
            continue
        return fd, temp
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(folder))


def write_array(path: Path | str, array: np.ndarray | Mapping[str, np.ndarray]) -> Path:
    """Write `array` as .npy to exactly `path` (no `.npy` appended) and return its absolute
    path; a mapping {name: array} (the outputs of a multi-output model) is written as an
    .npz archive with one array per name (no `.npz` appended either). Atomic: written under a
    temporary name in the same folder, then renamed over `path` (an existing file keeps its
    mode). A device or FIFO (`-o /dev/null`) is written in place.
    Raises RtlgenError with one line when the path cannot be written."""
    if isinstance(array, Mapping):
        arrays = dict(array)

        def save(handle) -> None:
            np.savez(handle, **arrays)
    else:

        def save(handle) -> None:
            np.save(handle, array, allow_pickle=False)

    target = check_output_file(path)
    try:
        status = os.stat(target)
    except FileNotFoundError:
        status = None
    except OSError as exc:
        raise os_error("output file", target, exc) from None
    try:
        if status is not None and not stat.S_ISREG(status.st_mode):
            with open(target, "wb") as handle:
                save(handle)
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = _create_temp_file(target.parent)
    except OSError as exc:
        raise os_error("output file", target, exc) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            save(handle)
        if status is not None:
            os.chmod(temp, stat.S_IMODE(status.st_mode))
        os.replace(temp, target)
    except BaseException as exc:
        try:
            os.unlink(temp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise os_error("output file", target, exc) from None
        raise
    return target


# ---------------------------------------------------------------------------------------
# Writing a design folder


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def _real_dirs_on_the_way(outdir: Path, relative: PurePosixPath) -> bool:
    """Every existing parent of OUTDIR/relative inside OUTDIR is a real directory (no symlink
    that would lead the write or the removal out of OUTDIR)."""
    current = outdir
    for part in relative.parts[:-1]:
        current = current / part
        status = _lstat(current)
        if status is None:
            return True
        if not stat.S_ISDIR(status.st_mode):
            return False
    return True


def _remove_file(outdir: Path, relative: PurePosixPath) -> None:
    """Remove OUTDIR/relative if it is a file or a symlink (never what a symlink points to, never
    a directory), then its parent folders inside OUTDIR that became empty."""
    if not _real_dirs_on_the_way(outdir, relative):
        return
    target = outdir / relative
    status = _lstat(target)
    if status is None or not (stat.S_ISREG(status.st_mode) or stat.S_ISLNK(status.st_mode)):
        return
    os.unlink(target)
    for parent in list(relative.parents)[:-1]:  # deepest first; [-1] is "." (OUTDIR itself)
        try:
            os.rmdir(outdir / parent)
        except OSError:
            return  # not empty: it holds something else, keep it


def _write_json(staging: Path, name: str, value: object) -> Path:
    path = staging / name
    path.write_text(json.dumps(value, indent=2) + "\n")
    return path


def take_lock(outdir: Path, remake: Callable[[], None] | None = None) -> int:
    """Take OUTDIR/.rtlgen.lock without waiting and return its descriptor. The lock file is
    removed on release, so a lock taken on a file that was removed meanwhile is retried on
    the new one. ``remake``: makes OUTDIR again when it vanished (else a one-line error)."""
    path = outdir / LOCK_NAME
    busy = RtlgenError(f"another rtlgen process is writing {outdir}; wait for it to finish")
    for _ in range(10):
        try:
            fd = os.open(
                path,
                os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                0o666,
            )
        except FileNotFoundError:
            if remake is None:
                raise RtlgenError(f"design folder {outdir} vanished") from None
            remake()
            continue
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise RtlgenError(f"output directory {outdir}: {path} is not a regular file")
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise busy from None
        except BaseException:
            os.close(fd)
            raise
        held, on_disk = os.fstat(fd), _lstat(path)
        if on_disk is not None and (held.st_dev, held.st_ino) == (on_disk.st_dev, on_disk.st_ino):
            return fd
        os.close(fd)  # the previous holder removed the file we locked: lock the new one
    raise busy


def release_lock(outdir: Path, fd: int) -> None:
    """Remove OUTDIR/.rtlgen.lock (while still holding it) and close ``fd``."""
    with contextlib.suppress(OSError):
        os.unlink(outdir / LOCK_NAME)
    os.close(fd)


@contextlib.contextmanager
def locked_design(outdir: Path | str) -> Iterator[Path]:
    """Hold an existing design folder's lock while rewriting files in place (`rtlgen report`
    rewrites manifest.json and REPORT.md): a concurrent convert into the folder waits for
    neither, it fails with one line, as two converts do."""
    folder = _absolute(outdir)
    fd = take_lock(folder)
    try:
        yield folder
    finally:
        release_lock(folder, fd)


class DesignFolder:
    """Writes one design into OUTDIR, replacing only what rtlgen wrote there before.

        with DesignFolder(outdir) as folder:
            ...write every file into folder.staging (manifest.json too, if extra writers read it)...
            folder.commit(manifest_text)   # manifest_text(files) -> the final manifest.json text

    Entering checks OUTDIR (as `check_output_dir`), creates it if missing (umask applies; an
    existing folder keeps its mode), takes the lock and makes the staging folder. Leaving
    without `commit` (an error, Ctrl-C) removes the staging folder and leaves OUTDIR as it was;
    a folder this call created is removed again. Raises RtlgenError with one line for a
    foreign folder, a concurrent writer or a failing file-system call.
    """

    def __init__(self, outdir: Path | str):
        self.outdir = _absolute(outdir)
        self.staging = self.outdir / f"{STAGING_PREFIX}{secrets.token_hex(8)}"
        self._created: list[Path] = []  # folders this call made, outermost first
        self._lock_fd: int | None = None
        self._claimed: frozenset[str] = frozenset()
        self._committed = False

    # -- entering ------------------------------------------------------------------------
    def __enter__(self) -> DesignFolder:
        check_output_dir(self.outdir)
        try:
            self._make_outdir()
            self._lock()
            self._claimed = claimed_files(self.outdir)  # again, now that no other rtlgen writes
            self._remove_stale_staging()
            os.mkdir(self.staging)
        except BaseException as exc:
            self._release(remove_created=True)
            if isinstance(exc, OSError):
                raise os_error("output directory", self.outdir, exc) from None
            raise
        return self

    def _make_outdir(self) -> None:
        missing = []
        current = self.outdir
        while _lstat(current) is None:
            missing.append(current)
            current = current.parent
        for folder in reversed(missing):
            try:
                os.mkdir(folder)
            except FileExistsError:
                continue  # made by someone else meanwhile: not ours to remove
            if folder not in self._created:  # (made again after it vanished: see _lock)
                self._created.append(folder)

    def _lock(self) -> None:
        """Take OUTDIR/.rtlgen.lock without waiting (`take_lock`); OUTDIR is made again when
        it vanished meanwhile (another rtlgen's writability probe, or a writer that failed
        and removed the folder it made)."""
        self._lock_fd = take_lock(self.outdir, self._make_outdir)

    def _remove_stale_staging(self) -> None:
        """Staging folders left by a killed run: only rtlgen makes these names, and with the lock
        held no other rtlgen process is using one."""
        for name in os.listdir(self.outdir):
            path = self.outdir / name
            status = _lstat(path)
            if (
                name.startswith(STAGING_PREFIX)
                and status is not None
                and stat.S_ISDIR(status.st_mode)
            ):
                shutil.rmtree(path)

    def os_error(self, exc: OSError) -> RtlgenError:
        """`os_error` for OUTDIR, naming a staged file by where it was going to be written."""
        name = os.fsdecode(exc.filename) if exc.filename is not None else None
        if name is not None and name.startswith(str(self.staging)):
            exc.filename = str(self.outdir) + name[len(str(self.staging)) :]
        return os_error("output directory", self.outdir, exc)

    # -- committing ----------------------------------------------------------------------
    def staged_files(self) -> list[str]:
        """Every file in the staging folder except manifest.json: relative POSIX paths, sorted."""
        files = []
        for root, _dirs, names in os.walk(self.staging):
            for name in names:
                relative = Path(root, name).relative_to(self.staging).as_posix()
                if relative != MANIFEST_NAME:
                    files.append(relative)
        return sorted(files)

    def commit(self, manifest_text: Callable[[list[str]], str]) -> list[str]:
        """Move the staged design into OUTDIR and return its file list. `manifest_text(files)`
        gives the final manifest, written last. Raises RtlgenError, before anything in OUTDIR
        changes, when a new file would replace one rtlgen did not write or a folder that changes
        is not writable."""
        files = self.staged_files()
        for relative in files:
            self._check_target(PurePosixPath(relative))
        self._check_folders_writable(files)
        try:
            (self.staging / MANIFEST_NAME).write_text(manifest_text(files))
            journal = _write_json(
                self.staging,
                JOURNAL_NAME,
                {
                    "format": FORMAT,
                    "format_version": 2,
                    "generator": {"name": GENERATOR},
                    "files": sorted(self._claimed | set(files)),
                },
            )
            os.replace(journal, self.outdir / JOURNAL_NAME)
            self._remove_old_manifest()
            for relative in files:
                self._move_in(PurePosixPath(relative))
            for relative in sorted(self._claimed - set(files)):
                _remove_file(self.outdir, PurePosixPath(relative))
            os.replace(self.staging / MANIFEST_NAME, self.outdir / MANIFEST_NAME)
            os.unlink(self.outdir / JOURNAL_NAME)
        except OSError as exc:
            raise self.os_error(exc) from None
        self._committed = True
        return files

    def _check_target(self, relative: PurePosixPath) -> None:
        if confined_path(relative.as_posix()) is None:
            raise ValueError(
                f"staged file {relative} is not a plain relative path"
            )  # an rtlgen bug
        if not _real_dirs_on_the_way(self.outdir, relative):
            raise RtlgenError(
                f"output directory {self.outdir}: a folder on the way to {relative} is a file or a "
                "symlink; move it away or choose another -o"
            )
        status = _lstat(self.outdir / relative)
        if status is None:
            return
        replaceable = stat.S_ISREG(status.st_mode) or stat.S_ISLNK(status.st_mode)
        if not replaceable or relative.as_posix() not in self._claimed:
            raise RtlgenError(
                f"output directory {self.outdir}: {relative} exists and was not written by rtlgen "
                "(not in its manifest); move it away or choose another -o"
            )

    def _check_folders_writable(self, files: list[str]) -> None:
        """Every existing folder in OUTDIR that gains or loses a file is writable, so the commit
        does not stop half-way on a permission error (root passes; a read-only mount does not)."""
        changed = {PurePosixPath(name).parent for name in files}
        changed |= {
            PurePosixPath(name).parent
            for name in self._claimed - set(files)
            if _real_dirs_on_the_way(self.outdir, PurePosixPath(name))
            and _lstat(self.outdir / name) is not None
        }
        for folder in sorted(changed):
            while folder != PurePosixPath(".") and _lstat(self.outdir / folder) is None:
                folder = folder.parent  # created by the commit: its existing parent changes
            path = self.outdir / folder
            if not os.access(path, os.W_OK | os.X_OK):
                raise RtlgenError(f"output directory {self.outdir}: {path} is not writable")

    def _remove_old_manifest(self) -> None:
        path = self.outdir / MANIFEST_NAME
        status = _lstat(path)
        if status is not None and not stat.S_ISDIR(status.st_mode):
            os.unlink(path)

    def _move_in(self, relative: PurePosixPath) -> None:
        current = self.outdir
        for part in relative.parts[:-1]:
            current = current / part
            if _lstat(current) is None:
                os.mkdir(current)
        os.replace(self.staging / relative, self.outdir / relative)

    # -- leaving -------------------------------------------------------------------------
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)
        self._release(remove_created=not self._committed)

    def _release(self, remove_created: bool) -> None:
        if self._lock_fd is not None:
            release_lock(self.outdir, self._lock_fd)
            self._lock_fd = None
        if remove_created:
            for folder in reversed(self._created):
                try:
                    os.rmdir(folder)
                except OSError:
                    break  # something else is in it now: keep it
            self._created = []
