"""Compiler wrapper that caches Verilator's run-time library objects across builds.

Usage (set by `tb_run.build` through Verilator's `OBJCACHE` make variable):
    python tb_objcache.py CACHE_DIR c++ ARGS... -c -o verilated.o .../include/verilated.cpp

Every Verilator build compiles the same run-time library (verilated.cpp, verilated_vpi.cpp,
...: about 10 s of CPU), although only the design's own files change. A compile whose source
lies in Verilator's `include` folder is looked up in CACHE_DIR under a hash of the command
line (output name aside), the compiler's version and the source and its main headers; a hit
copies the object (and its .d file) instead of compiling. Any other compile runs unchanged.
Stand-alone: standard library only.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def _cache_key(compiler_args: list[str], source: Path, output_index: int) -> str:
    digest = hashlib.sha256()
    for index, arg in enumerate(compiler_args):
        if index != output_index:
            digest.update(arg.encode() + b"\0")
    version = subprocess.run([compiler_args[0], "--version"], capture_output=True, check=False)
    digest.update(version.stdout + b"\0")
    include_dir = source.parent
    for file in (source, include_dir / "verilated.h", include_dir / "verilated_config.h"):
        digest.update(file.read_bytes() if file.is_file() else b"-")
    return digest.hexdigest()[:32]


def _store(source: Path, target: Path) -> None:
    """Copy atomically, so concurrent builds never see a half-written object."""
    with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as handle:
        temporary = Path(handle.name)
    shutil.copyfile(source, temporary)
    os.replace(temporary, target)


def main(argv: list[str]) -> int:
    cache_dir, compiler_args = Path(argv[0]), argv[1:]
    try:
        output_index = compiler_args.index("-o") + 1
        output = Path(compiler_args[output_index])
        source = Path(compiler_args[-1])
        cacheable = (
            "-c" in compiler_args
            and output.suffix == ".o"
            and source.suffix == ".cpp"
            and source.is_file()
            and source.resolve().parent.name == "include"
            and (source.resolve().parent / "verilated.h").is_file()
        )
    except (ValueError, IndexError):
        cacheable = False
    if not cacheable:
        return subprocess.run(compiler_args, check=False).returncode

    key = _cache_key(compiler_args, source.resolve(), output_index)
    cached_object = cache_dir / f"{key}.o"
    cached_deps = cache_dir / f"{key}.d"
    deps = output.with_suffix(".d")
    if cached_object.is_file():
        shutil.copyfile(cached_object, output)
        if cached_deps.is_file():
            shutil.copyfile(cached_deps, deps)
        return 0
    status = subprocess.run(compiler_args, check=False).returncode
    if status == 0 and output.is_file():
        cache_dir.mkdir(parents=True, exist_ok=True)
        _store(output, cached_object)
        if deps.is_file():
            _store(deps, cached_deps)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
