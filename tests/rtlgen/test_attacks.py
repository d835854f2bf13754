"""An attacker's harness (issue 15): many malformed, hostile and tampered inputs through the CLI.

Every case must end in exit 0, or exit 2 with exactly one `error:` line on stderr (never a
traceback, an internal error, a hang or a memory blow-up), and write nothing outside the
files and folders it names. Cases run in-process in one child interpreter (`_DRIVER`: a
fresh `cli.run` per case, a per-case alarm, the child's peak RSS reported), so a few hundred
of them take seconds; the child itself has a hard timeout, so a hang in C code fails too.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import struct
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from tests.models import layer_entry, sequential_config, write_full_h5, write_weights_h5

ROOT = Path(__file__).resolve().parents[2]
MAX_RSS_MB = 1024

_DRIVER = r"""
import contextlib, io, json, os, signal, sys, time
from tests.memory import peak_rss_mb  # VmHWM: ru_maxrss would carry the parent's peak over exec
class Hang(BaseException): pass
def on_alarm(*_): raise Hang()
signal.signal(signal.SIGALRM, on_alarm)
from rtlgen import cli
base_env = dict(os.environ)
for case in json.load(open(sys.argv[1])):
    os.environ.clear(); os.environ.update(base_env); os.environ.update(case.get("env", {}))
    err, out = io.StringIO(), io.StringIO()
    signal.alarm(case.get("timeout", 90))  # generous: CI machines are loaded; a hang still fails
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            code = cli.run(case["argv"])
    except Hang:
        code = "hang"
    except BaseException:
        import traceback; code = "escaped"; err.write(traceback.format_exc())
    signal.alarm(0)
    print(json.dumps({"argv": case["argv"], "code": code, "stderr": err.getvalue(),
                      "rss_mb": peak_rss_mb()}), flush=True)
"""


def run_cases(tmp_path: Path, cases: list[dict[str, Any]], cwd: Path | None = None,
              timeout: float = 600) -> list[dict[str, Any]]:
    listing = tmp_path / "cases.json"
    listing.write_text(json.dumps(cases))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RTLGEN_CACHE_DIR": str(tmp_path / "cache")}
    result = subprocess.run([sys.executable, "-c", _DRIVER, str(listing)], capture_output=True,
                            text=True, cwd=cwd or tmp_path, env=env, timeout=timeout)
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(rows) == len(cases), result.stderr[-3000:]
    return rows


def failures(rows: list[dict[str, Any]]) -> list[str]:
    """Rows that are not exit 0 or a one-line `error:` with exit 2."""
    bad = []
    for row in rows:
        lines = row["stderr"].splitlines()
        one_line = row["code"] == 2 and len(lines) == 1 and lines[0].startswith("error: ")
        if not (row["code"] == 0 or one_line) or row["rss_mb"] > MAX_RSS_MB:
            bad.append(f"{row['argv']!r}: exit {row['code']}, {row['rss_mb']:.0f} MB: "
                       f"{row['stderr'][-400:]!r}")
    return bad


def snapshot(folder: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every entry below `folder` (not following symlinks): mode, size, content of files."""
    state = {}
    for path in sorted(folder.rglob("*")):
        status = path.lstat()
        content = path.read_bytes() if path.is_file() and not path.is_symlink() else b""
        state[str(path.relative_to(folder))] = (status.st_mode, status.st_size, content)
    return state


# ---------------------------------------------------------------------------------------
# hand-made model files in every layout, with variable-length string attributes like Keras's
def _vlen(names: list[str]) -> np.ndarray:
    return np.array(names, dtype=h5py.string_dtype("ascii"))


def _keras2_groups(root: h5py.Group, weights: dict[str, dict[str, np.ndarray]]) -> None:
    """Keras 2 weight groups with variable-length name attributes (what Keras really writes;
    their strings live in a global heap collection)."""
    root.attrs["layer_names"] = _vlen(list(weights))
    root.attrs["backend"] = "tensorflow"
    for layer, named in weights.items():
        group = root.create_group(layer)
        names = [f"{layer}/{short}:0" for short in named]
        group.attrs["weight_names"] = _vlen(names)
        for full, value in zip(names, named.values(), strict=True):
            group.create_dataset(full, data=np.asarray(value, dtype=np.float32))


def _config() -> dict[str, Any]:
    return sequential_config(
        [
            layer_entry("Dense", {"name": "d1", "units": 5, "activation": "relu", "use_bias": True}),
            layer_entry("Dense", {"name": "d2", "units": 3, "activation": "linear", "use_bias": True}),
        ],
        (4,),
    )


def _weights() -> dict[str, dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    return {
        "d1": {"kernel": rng.normal(size=(4, 5)), "bias": rng.normal(size=5)},
        "d2": {"kernel": rng.normal(size=(5, 3)), "bias": rng.normal(size=3)},
    }


def write_layouts(folder: Path) -> dict[str, tuple[Path, Path | None]]:
    """layout -> (model, weights or None): a full .h5 (vlen attributes), a JSON + Keras 2
    weights (vlen), a JSON + fixed-length-name weights, a JSON + indexed `.weights.h5`, a
    `.keras` archive."""
    folder.mkdir(parents=True, exist_ok=True)
    config, weights = _config(), _weights()
    full = folder / "full.h5"
    with h5py.File(full, "w") as f:
        f.attrs["model_config"] = json.dumps(config)
        _keras2_groups(f.create_group("model_weights"), weights)
    model_json = folder / "model.json"
    model_json.write_text(json.dumps(config))
    vlen_weights = folder / "vlen_weights.h5"
    with h5py.File(vlen_weights, "w") as f:
        _keras2_groups(f, weights)
    fixed_weights = write_weights_h5(folder / "fixed_weights.h5", weights)
    indexed = folder / "model.weights.h5"
    with h5py.File(indexed, "w") as f:
        for index, named in enumerate(weights.values()):
            name = "dense" if index == 0 else f"dense_{index}"
            for var, value in enumerate(named.values()):
                f.create_dataset(f"layers/{name}/vars/{var}", data=np.asarray(value, np.float32))
    archive = folder / "model.keras"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("config.json", json.dumps(config))
        z.writestr("metadata.json", json.dumps({"keras_version": "3.0.0"}))
        z.write(indexed, "model.weights.h5")
    deflated = folder / "deflated.keras"
    with zipfile.ZipFile(archive) as source, zipfile.ZipFile(deflated, "w", zipfile.ZIP_DEFLATED) as z:
        for name in source.namelist():
            z.writestr(name, source.read(name))
    return {
        "keras_deflated": (deflated, None),
        "full_h5": (full, None),
        "json_vlen_weights": (model_json, vlen_weights),
        "json_fixed_weights": (model_json, fixed_weights),
        "json_indexed_weights": (model_json, indexed),
        "keras_archive": (archive, None),
    }


@pytest.fixture(scope="module")
def layouts(tmp_path_factory) -> dict[str, tuple[Path, Path | None]]:
    return write_layouts(tmp_path_factory.mktemp("layouts"))


def test_every_hand_made_layout_loads(tmp_path, layouts):
    cases = [{"argv": ["inspect", str(m), *(["--weights", str(w)] if w else [])]}
             for m, w in layouts.values()]
    rows = run_cases(tmp_path, cases)
    assert [row["code"] for row in rows] == [0] * len(cases), failures(rows)


# ---------------------------------------------------------------------------------------
# fuzzing: truncated, bit-flipped, overwritten files of each layout
def _mutate(data: bytes, rng: random.Random) -> bytes:
    mutated = bytearray(data)
    kind = rng.choice(["truncate", "flip", "flip", "overwrite"])
    if kind == "truncate":
        return bytes(mutated[: rng.randrange(len(mutated))])
    if kind == "flip":
        for _ in range(rng.randint(1, 8)):
            index = rng.randrange(len(mutated))
            mutated[index] ^= 1 << rng.randrange(8)
        return bytes(mutated)
    for _ in range(rng.randint(1, 4)):
        index, count = rng.randrange(len(mutated)), rng.randint(1, 8)
        fill = rng.choice([0x00, 0xFF, rng.randrange(256)])
        mutated[index : index + count] = bytes([fill]) * count
    return bytes(mutated)


def _fuzz_cases(folder: Path, layouts, per_layout: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    cases = []
    for layout, (model, weights) in layouts.items():
        for variant in range(per_layout):
            case_dir = folder / f"{layout}_{variant}"
            case_dir.mkdir(parents=True)
            m = Path(shutil.copy(model, case_dir))
            w = Path(shutil.copy(weights, case_dir)) if weights else None
            victim = rng.choice([m, w]) if w else m
            victim.write_bytes(_mutate(victim.read_bytes(), rng))
            argv = ["inspect", str(m), *(["--weights", str(w)] if w else [])]
            if variant % 3 == 0:  # the whole path to the reference model, too
                argv = ["predict", *argv[1:], "-i", str(folder / "x.npy"), "-o", str(case_dir / "y.npy")]
            cases.append({"argv": argv})
    np.save(folder / "x.npy", np.ones((2, 4), np.float32))
    return cases


@pytest.mark.parametrize("seed,per_layout", [(0, 6), pytest.param(1, 200, marks=pytest.mark.slow)])
def test_fuzzed_model_files_fail_in_one_line(tmp_path, layouts, seed, per_layout):
    cases = _fuzz_cases(tmp_path / "fuzz", layouts, per_layout, seed)
    rows = run_cases(tmp_path, cases)
    assert failures(rows) == []


# ---------------------------------------------------------------------------------------
# global heap: where HDF5 keeps variable-length strings (weight_names); HDF5 trusts it
def _global_heap(data: bytes) -> int:
    address = data.find(b"GCOL")
    assert address > 0
    return address


def _huge_string_length(data: bytes) -> bytes:
    """Each heap ID of a vlen string (length 4 bytes, collection address 8, index 4) claims
    2 GiB: HDF5 allocates that before comparing with the heap object."""
    heap = struct.pack("<Q", _global_heap(data))
    out, start = bytearray(data), 0
    while (hit := data.find(heap, start)) >= 0:
        if hit >= 4 and hit != _global_heap(data) + 8:
            out[hit - 1] |= 0x80
        start = hit + 1
    return bytes(out)


def _object_size_flipped(data: bytes) -> bytes:
    """The size of the heap's first object grows by 1024: its object chain no longer ends
    where the collection does (HDF5 loops forever on it)."""
    out = bytearray(data)
    out[_global_heap(data) + 16 + 9] ^= 0x04
    return bytes(out)


def _collection_size_huge(data: bytes) -> bytes:
    out = bytearray(data)
    out[_global_heap(data) + 8 + 4] = 0x40  # 1 TiB
    return bytes(out)


@pytest.mark.parametrize("corruption", [_huge_string_length, _object_size_flipped, _collection_size_huge])
@pytest.mark.parametrize("layout", ["full_h5", "json_vlen_weights"])
def test_corrupt_global_heap_is_one_line_without_hang_or_memory_bomb(tmp_path, layouts, layout, corruption):
    model, weights = layouts[layout]
    model = Path(shutil.copy(model, tmp_path))
    weights = Path(shutil.copy(weights, tmp_path)) if weights else None
    victim = weights or model
    victim.write_bytes(corruption(victim.read_bytes()))
    rows = run_cases(tmp_path, [{"argv": ["inspect", str(model), *(["--weights", str(weights)] if weights else [])]}],
                     timeout=60)
    assert failures(rows) == [] and rows[0]["code"] == 2


# ---------------------------------------------------------------------------------------
# odd JSON layer entries and QKeras quantizer strings
def _dense(**config: Any) -> dict[str, Any]:
    return layer_entry("Dense", {"name": "d1", "units": 5, "activation": "linear", "use_bias": False, **config})


ODD_CONFIGS = {
    "no_class_name": {"class_name": "Sequential", "config": {"layers": [{"config": {"name": "x"}}]}},
    "config_not_a_dict": sequential_config([{"class_name": "Dense", "config": [1, 2]}], (4,)),
    "layers_not_a_list": {"class_name": "Sequential", "config": {"layers": {"a": 1}}},
    "layers_a_string": {"class_name": "Sequential", "config": {"layers": "Dense"}},
    "top_is_a_list": [1, 2, 3],
    "top_is_null": None,
    "class_name_a_number": sequential_config([{"class_name": 5, "config": {}}], (4,)),
    "duplicate_names": sequential_config([_dense(), _dense()], (4,)),
    "units_a_string": sequential_config([_dense(units="5")], (4,)),
    "units_a_list": sequential_config([_dense(units=[5])], (4,)),
    "lambda": sequential_config([layer_entry("Lambda", {"name": "l", "function": ["__import__('os').system('touch /tmp/pwned')", None, None]})], (4,)),
    "custom": sequential_config([layer_entry("MyLayer", {"name": "m"}, module="evil.module")], (4,)),
    "nested_model": sequential_config([layer_entry("Sequential", {"name": "inner", "layers": [_dense()]})], (4,)),
    "functional_garbage_nodes": {"class_name": "Functional", "config": {"name": "f", "layers": [
        {"class_name": "InputLayer", "name": "in", "config": {"name": "in", "batch_input_shape": [None, 4]}, "inbound_nodes": []},
        {"class_name": "Dense", "name": "d1", "config": {"name": "d1", "units": 3}, "inbound_nodes": [[["nope", 7, "x", {}]]]}],
        "input_layers": [["in", 0, 0]], "output_layers": [["d1", 0, 0]]}},
    "functional_cycle": {"class_name": "Functional", "config": {"name": "f", "layers": [
        {"class_name": "Dense", "name": "a", "config": {"name": "a", "units": 3}, "inbound_nodes": [[["b", 0, 0, {}]]]},
        {"class_name": "Dense", "name": "b", "config": {"name": "b", "units": 3}, "inbound_nodes": [[["a", 0, 0, {}]]]}],
        "input_layers": [["a", 0, 0]], "output_layers": [["b", 0, 0]]}},
    "functional_io_garbage": {"class_name": "Functional", "config": {"name": "f", "layers": [], "input_layers": "x", "output_layers": 5}},
    "input_shape_garbage": sequential_config([_dense()], None) | {"config": {"name": "s", "layers": [_dense(batch_input_shape="abc")]}},
    "empty_layers": sequential_config([], None),
    "only_input": sequential_config([], (4,)),
}
QUANTIZERS = [
    "__import__('os').system('touch /tmp/pwned')",
    "quantized_bits(__import__('os').getpid(), 0)",
    "quantized_bits(" * 2000 + ")" * 2000,
    "quantized_bits(8, 0, alpha=" + "9" * 5000 + ")",
    "quantized_bits(" + "8," * 100000 + ")",
    "eval('1')",
    "quantized_bits(8, 0)(x)",
    "quantized_bits(8, 0).__class__",
    "quantized_bits(bits=8, bits=9)",
    "quantized_bits(lambda: 1)",
    "quantized_bits(8, 0, alpha=[1] * 10**9)",
    "quantized_bits(*[8, 0])",
    "quantized_bits(**{'bits': 8})",
    "quantized_relu(8, 0, negative_slope=1e400)",
    "x" * 1_000_000,
    "",
    {"class_name": "quantized_bits", "config": "bits=8"},
    {"class_name": "__import__", "config": {"name": "os"}},
    {"class_name": "quantized_bits", "config": {"bits": {"nested": [1]}}},
    ["quantized_bits", 8],
]


def _config_cases(folder: Path) -> list[dict[str, Any]]:
    folder.mkdir()
    weights = write_weights_h5(folder / "w.h5", {"d1": {"kernel": np.ones((4, 5))}})
    configs = dict(ODD_CONFIGS)
    for index, quantizer in enumerate(QUANTIZERS):
        configs[f"quantizer_{index}"] = sequential_config([layer_entry("QDense", {
            "name": "d1", "units": 5, "use_bias": False, "kernel_quantizer": quantizer,
            "bias_quantizer": None}, module="qkeras")], (4,))
    cases = []
    for name, config in configs.items():
        path = folder / f"{name}.json"
        path.write_text(json.dumps(config))
        cases.append({"argv": ["inspect", str(path), "--weights", str(weights)]})
        full = folder / f"{name}.h5"
        write_full_h5(full, config, {"d1": {"kernel": np.ones((4, 5))}})
        cases.append({"argv": ["inspect", str(full)]})
    return cases


def test_odd_layer_entries_and_hostile_quantizers_are_one_line_and_run_nothing(tmp_path):
    rows = run_cases(tmp_path, _config_cases(tmp_path / "configs"))
    assert failures(rows) == []
    assert not Path("/tmp/pwned").exists()


# ---------------------------------------------------------------------------------------
# .keras archives with hostile members
def _archive(path: Path, members: list[tuple[str, bytes]], symlink: str | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members:
            z.writestr(name, data)
        if symlink is not None:
            info = zipfile.ZipInfo("model.weights.h5")
            info.external_attr = (0o120777 << 16)
            z.writestr(info, symlink)
    return path


def _keras_cases(folder: Path, layouts) -> list[dict[str, Any]]:
    folder.mkdir()
    config = json.dumps(_config()).encode()
    weights = layouts["json_indexed_weights"][1].read_bytes()
    archives = {
        "traversal": [("config.json", config), ("../../escape.h5", weights)],
        "absolute": [("config.json", config), ("/tmp/escape.h5", weights)],
        "duplicate_config": [("config.json", config), ("config.json", b"{}"), ("model.weights.h5", weights)],
        "duplicate_weights": [("config.json", config), ("model.weights.h5", b"junk"), ("model.weights.h5", weights)],
        "config_not_json": [("config.json", b"\xff\xfe"), ("model.weights.h5", weights)],
        "weights_not_hdf5": [("config.json", config), ("model.weights.h5", b"PK\x03\x04" * 100)],
        "nested_zip": [("config.json", config), ("model.weights.h5", (folder / "..").name.encode())],
        "empty": [],
        "only_weights": [("model.weights.h5", weights)],
    }
    cases = []
    for name, members in archives.items():
        path = _archive(folder / f"{name}.keras", members)
        cases.append({"argv": ["inspect", str(path)]})
    link = _archive(folder / "symlink.keras", [("config.json", config)], symlink="/etc/passwd")
    cases.append({"argv": ["inspect", str(link)]})
    encrypted = folder / "encrypted.keras"
    shutil.copy(_archive(folder / "plain.keras", [("config.json", config), ("model.weights.h5", weights)]), encrypted)
    data = bytearray(encrypted.read_bytes())
    for offset in range(len(data) - 8):  # set the "encrypted" flag of every local and central header
        if data[offset : offset + 4] == b"PK\x03\x04":
            data[offset + 6] |= 1
        if data[offset : offset + 4] == b"PK\x01\x02":
            data[offset + 8] |= 1
    encrypted.write_bytes(bytes(data))
    cases.append({"argv": ["inspect", str(encrypted)]})
    return cases


def test_hostile_keras_archives_are_one_line_and_write_nothing(tmp_path, layouts):
    cases = _keras_cases(tmp_path / "archives", layouts)
    before = snapshot(tmp_path)
    rows = run_cases(tmp_path, cases)
    assert failures(rows) == []
    assert [row["code"] for row in rows] == [2] * len(rows)
    after = snapshot(tmp_path)
    assert set(after) - set(before) == {"cases.json"}
    assert not Path("/tmp/escape.h5").exists()


# ---------------------------------------------------------------------------------------
# inputs: .npz where .npy is expected, wrong shape/dtype/order/endianness, object arrays
def _input_cases(folder: Path, model: Path) -> list[dict[str, Any]]:
    folder.mkdir()
    arrays = {
        "wrong_shape": np.ones((2, 5), np.float32),
        "one_sample_no_batch": np.ones(4, np.float32),
        "scalar": np.float32(1.0),
        "fortran": np.asfortranarray(np.ones((3, 4), np.float64)),
        "big_endian": np.ones((3, 4), ">f8"),
        "int8": np.ones((3, 4), np.int8),
        "uint64_huge": np.full((3, 4), 2**63, np.uint64),
        "bool": np.ones((3, 4), bool),
        "float16": np.ones((3, 4), np.float16),
        "longdouble": np.ones((3, 4), np.longdouble),
        "str": np.array([["a"] * 4]),
        "datetime": np.zeros((3, 4), "datetime64[s]"),
        "structured": np.zeros((3, 4), [("a", "f4")]),
        "huge_values": np.full((3, 4), 1e300),
        "extra_dims": np.ones((3, 4, 1), np.float32),
    }
    cases = []
    for name, array in arrays.items():
        np.save(folder / f"{name}.npy", array)
    np.savez(folder / "archive.npz", x=np.ones((3, 4), np.float32))
    shutil.copy(folder / "archive.npz", folder / "npz_named.npy")
    np.save(folder / "object.npy", np.array([[1, 2, 3, 4]], dtype=object), allow_pickle=True)
    (folder / "empty.npy").write_bytes(b"")
    (folder / "header_only.npy").write_bytes(b"\x93NUMPY\x01\x00")
    for path in sorted(folder.iterdir()):
        for command in ("predict", "calibrate"):
            if command == "predict":
                argv = ["predict", str(model), "-i", str(path), "-o", str(folder / "out" / f"{path.stem}.npy")]
            else:
                argv = ["inspect", str(model), "--calibrate", str(path)]
            cases.append({"argv": argv})
    return cases


def test_odd_input_arrays_are_one_line(tmp_path, layouts):
    rows = run_cases(tmp_path, _input_cases(tmp_path / "inputs", layouts["full_h5"][0]))
    assert failures(rows) == []


# ---------------------------------------------------------------------------------------
# tampered design folders (files other than manifest.json)
def _tamper_cases(tmp_path: Path, layouts, tools: bool = False) -> tuple[list[dict[str, Any]], Path]:
    model = layouts["full_h5"][0]
    good = tmp_path / "good"
    rows = run_cases(tmp_path, [{"argv": ["convert", str(model), "-o", str(good), "--testbench"]}])
    assert rows[0]["code"] == 0, rows
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("precious")
    manifest = json.loads((good / "manifest.json").read_text())
    rtl = manifest["rtl"][0]

    def variant(name: str, change) -> Path:
        design = tmp_path / "designs" / name
        shutil.copytree(good, design, symlinks=True)
        change(design)
        return design

    def replace_with_dir(relative: str):
        def change(design: Path) -> None:
            (design / relative).unlink()
            (design / relative).mkdir()
        return change

    def symlink_out(relative: str, target: Path):
        def change(design: Path) -> None:
            path = design / relative
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
            path.parent.mkdir(parents=True, exist_ok=True)
            path.symlink_to(target)
        return change

    def write(relative: str, data: bytes):
        def change(design: Path) -> None:
            (design / relative).write_bytes(data)
        return change

    designs = {
        "graph_garbage": write("graph.npz", b"garbage"),
        "graph_empty_zip": write("graph.npz", b"PK\x05\x06" + b"\x00" * 18),
        "graph_is_dir": replace_with_dir("graph.npz"),
        "graph_symlink_out": symlink_out("graph.npz", outside / "keep.txt"),
        "rtl_is_dir": replace_with_dir(rtl),
        "rtl_symlink_out": symlink_out(rtl, outside / "keep.txt"),
        "rtl_empty": write(rtl, b""),
        "report_symlink_out": symlink_out("REPORT.md", outside / "keep.txt"),
        "report_is_dir": replace_with_dir("REPORT.md"),
        "sim_symlink_out": symlink_out("sim", outside),
        "vivado_symlink_out": symlink_out("vivado", outside),
        "board_symlink_out": symlink_out("board", outside),
        "rtl_dir_symlink_out": symlink_out("rtl", outside),
        "tb_symlink_out": symlink_out("tb", outside),
        "tb_file_symlink_out": symlink_out("tb/run.py", outside / "keep.txt"),
    }
    x = tmp_path / "x.npy"
    np.save(x, np.ones((2, 4), np.float32))
    cases = []
    for name, change in designs.items():
        design = variant(name, change)
        commands = [["inspect", str(design)], ["predict", str(design), "-i", str(x), "-o", str(tmp_path / f"{name}.npy")],
                    ["package", str(design), "--board", "pynq-z2"], ["convert", str(model), "-o", str(design)],
                    ["convert", str(design), "-o", str(tmp_path / "re" / name)]]
        if tools:  # Verilator, Yosys, nextpnr: minutes
            commands = [["sim", str(design), "-i", str(x)], ["report", str(design)], ["build", str(design)]]
        for argv in commands:
            cases.append({"argv": argv, "timeout": 600})
    return cases, outside


@pytest.mark.slow  # 17-60 s; tests/rtlgen/test_manifest.py covers tampered folders by default
@pytest.mark.parametrize("tools", [False, True])
def test_tampered_design_folders_are_one_line_and_nothing_outside_changes(tmp_path, layouts, tools):
    cases, outside = _tamper_cases(tmp_path, layouts, tools)
    before = snapshot(outside)
    rows = run_cases(tmp_path, cases, timeout=3000)
    assert failures(rows) == []
    assert snapshot(outside) == before


# ---------------------------------------------------------------------------------------
# `rtlgen cache clear` with a hostile RTLGEN_CACHE_DIR
@pytest.mark.parametrize("kind", ["symlink_to_home", "file", "fifo_inside", "symlinked_entries", "empty", "relative"])
def test_cache_clear_with_a_hostile_cache_dir_deletes_nothing_of_the_user(tmp_path, kind):
    home = tmp_path / "home"
    (home / "verilator" / "notes").mkdir(parents=True)
    (home / "verilator" / "notes" / "keep.txt").write_text("precious")
    (home / "keep.txt").write_text("precious")
    cache = tmp_path / "cache"
    if kind == "symlink_to_home":
        cache.symlink_to(home)
    elif kind == "file":
        cache.write_text("not a folder")
    elif kind == "fifo_inside":
        (cache / "verilator").mkdir(parents=True)
        os.mkfifo(cache / "verilator" / "pipe")
    elif kind == "symlinked_entries":
        (cache / "verilator").mkdir(parents=True)
        (cache / "verilator" / "abc").symlink_to(home)
    elif kind == "empty":
        cache = Path("")
    elif kind == "relative":
        cache = Path("..")
    before = snapshot(home)
    env = {"RTLGEN_CACHE_DIR": str(cache)}
    rows = run_cases(tmp_path, [{"argv": ["cache"], "env": env}, {"argv": ["cache", "clear"], "env": env}],
                     cwd=home / "verilator")
    assert failures(rows) == []
    assert snapshot(home) == before


# ---------------------------------------------------------------------------------------
# design folders whose graph.npz or manifest.json bytes are fuzzed
def _design_fuzz_cases(tmp_path: Path, layouts, per_file: int, seed: int) -> list[dict[str, Any]]:
    model = layouts["full_h5"][0]
    good = tmp_path / "good"
    assert run_cases(tmp_path, [{"argv": ["convert", str(model), "-o", str(good)]}])[0]["code"] == 0
    np.save(tmp_path / "x.npy", np.ones((2, 4), np.float32))
    rng = random.Random(seed)
    cases = []
    for victim in ("graph.npz", "manifest.json"):
        for variant in range(per_file):
            design = tmp_path / "designs" / f"{victim}_{variant}"
            shutil.copytree(good, design)
            path = design / victim
            path.write_bytes(_mutate(path.read_bytes(), rng))
            command = [["inspect", str(design)],
                       ["predict", str(design), "-i", str(tmp_path / "x.npy"), "-o", str(design / "y.npy")],
                       ["package", str(design), "--board", "pynq-z2"],
                       ["convert", str(design), "-o", str(tmp_path / "re" / f"{victim}_{variant}")]][variant % 4]
            cases.append({"argv": command})
    return cases


@pytest.mark.parametrize("seed,per_file", [(0, 6), pytest.param(1, 150, marks=pytest.mark.slow)])
def test_fuzzed_design_folders_fail_in_one_line(tmp_path, layouts, seed, per_file):
    rows = run_cases(tmp_path, _design_fuzz_cases(tmp_path, layouts, per_file, seed))
    assert failures(rows) == []


# ---------------------------------------------------------------------------------------
# every command x odd option values
ODD_VALUES = ["", "-", "--", " ", "a" * 5000, "\u00fcn\u00ef\u202ecode", "\t\x01\x1b[2J", "-1", "0",
              "9" * 30, "nan", "-inf", "1e309", "-o", "x y\nz", "..", "/dev/zero", "/proc/self/mem",
              "%s%n", "[bold]x[/]", "/etc/passwd", "a/../../b"]


def _option_cases(tmp_path: Path, model: Path, design: Path, x: Path) -> list[dict[str, Any]]:
    out = tmp_path / "outs"
    cases = []
    for index, value in enumerate(ODD_VALUES):
        o = str(out / f"o{index}")
        for argv in (
            ["inspect", value], ["predict", value, "-i", x, "-o", o + ".npy"], ["convert", value, "-o", o],
            ["inspect", model, "--weights", value], ["inspect", model, "--config", value],
            ["inspect", model, "--input-type", value], ["inspect", model, "--calibrate", value],
            ["inspect", model, "--max-params", value], ["predict", model, "-i", value, "-o", o + ".npy"],
            ["convert", model, "-o", o, "--top", value], ["convert", model, "-o", o, "--adders-per-stage", value],
            ["convert", model, "-o", o, "--testbench", "--samples", value],
            ["convert", model, "-o", o, "--multiplier", value], ["convert", model, "-o", o, "--pipeline", value],
            ["sim", value, "-i", x], ["sim", design, "-i", value], ["sim", design, "-i", x, "--backpressure", value],
            ["sim", design, "-i", x, "--seed", value], ["report", value], ["report", design, "--family", value],
            ["package", value], ["package", design, "--part", value], ["package", design, "--board", value],
            ["package", design, "--clock-mhz", value], ["build", value], ["build", design, "--board", value],
            ["build", design, "--baud", value], ["board", "run", "--port", value, "-i", x, "--design", design],
            ["board", "run", "--port", "/dev/null", "-i", value, "--design", design],
            ["board", "run", "--port", "/dev/null", "-i", x, "--design", value],
            ["sweep", value, "-o", o], ["cache", value], ["bench", "svhn", "--bogus", value],
        ):
            # a valid value runs the real tool (a first Verilator build takes a minute)
            slow = argv[0] in ("sim", "report", "build", "board")
            cases.append({"argv": [str(a) for a in argv], "timeout": 600 if slow else 30})
    return cases


@pytest.mark.slow
def test_every_command_with_odd_option_values_is_one_line(tmp_path, layouts):
    model = layouts["full_h5"][0]
    design = tmp_path / "design"
    assert run_cases(tmp_path, [{"argv": ["convert", str(model), "-o", str(design)]}])[0]["code"] == 0
    x = tmp_path / "x.npy"
    np.save(x, np.ones((2, 4), np.float32))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    rows = run_cases(tmp_path, _option_cases(tmp_path, model, design, x), cwd=cwd, timeout=1500)
    assert failures(rows) == []


# ---------------------------------------------------------------------------------------
# hostile model and layer names: never a path, never a manifest the reader refuses
HOSTILE_NAMES = ["../../evil", "/abs/evil", "a b", "module", "clk", "s_axis_tdata", "x" * 5000,
                 "\u00fcn\u00ef", "a\nb", "1abc", "\\escaped ", "$display", "`define", "a/b", "..",
                 "-rf", "\x00", "\x1b[2J"]


@pytest.mark.slow  # converts ~30 models
def test_hostile_model_and_layer_names_convert_or_fail_in_one_line_inside_outdir(tmp_path):
    folder = tmp_path / "names"
    folder.mkdir()
    cases = []
    for index, name in enumerate(HOSTILE_NAMES):
        for where in ("model", "layer"):
            layers = [layer_entry("Dense", {"name": "d", "units": 3, "activation": "linear", "use_bias": False})]
            if where == "layer":
                layers.append(layer_entry("Activation", {"name": name, "activation": "relu"}))
            config = sequential_config(layers, (4,), name=name if where == "model" else "m")
            path = write_full_h5(folder / f"{where}{index}.h5", config, {"d": {"kernel": np.ones((4, 3))}})
            cases.append({"argv": ["convert", str(path), "-o", str(folder / f"out_{where}{index}"), "--testbench"]})
    before = snapshot(tmp_path)
    rows = run_cases(tmp_path, cases, cwd=folder)
    assert failures(rows) == []
    # a name the manifest cannot hold is refused when the model is read, not after generating
    assert all("staging" not in row["stderr"] for row in rows)
    created = set(snapshot(tmp_path)) - set(before)
    # besides the outputs, only the cache folder run_cases names (RTLGEN_CACHE_DIR) may gain files
    # (the compiled Yosys of rtlgen.inprocess_yosys)
    allowed = ("names/out_", "cache/")
    assert all(path in ("cases.json", "cache") or path.startswith(allowed) for path in created), created


@pytest.mark.parametrize("kind", ["keras", "graph"])
def test_a_corrupt_deflate_stream_in_an_archive_member_is_one_line(tmp_path, layouts, kind):
    if kind == "keras":
        path = layouts["keras_deflated"][0]
        argv = ["inspect", str(tmp_path / "m.keras")]
        target = tmp_path / "m.keras"
    else:
        design = tmp_path / "design"
        assert run_cases(tmp_path, [{"argv": ["convert", str(layouts["full_h5"][0]), "-o", str(design)]}])[0]["code"] == 0
        path, argv, target = design / "graph.npz", ["inspect", str(design)], design / "graph.npz"
    data = bytearray(Path(path).read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = max(archive.infolist(), key=lambda member: member.compress_size)
        name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26 : info.header_offset + 30])
        start = info.header_offset + 30 + name_len + extra_len
    data[start : start + 1] = b"\xff"  # a reserved deflate block type: the stream is corrupt
    target.write_bytes(bytes(data))
    rows = run_cases(tmp_path, [{"argv": argv}])
    assert failures(rows) == [] and rows[0]["code"] == 2


# ---------------------------------------------------------------------------------------
# fuzzed .npy inputs (every header version) and precision config YAML
PRECISION_YAML = (
    "model:\n  precision: fixed<16,6>\nlayers:\n  d1:\n    result: fixed<12,4>\n"
    "    weight: 'fixed<8,2,RND,SAT>'\ninput: 'fixed<8,3>'\n"
)


@pytest.mark.parametrize("seed,count", [(3, 20), pytest.param(4, 400, marks=pytest.mark.slow)])
def test_fuzzed_inputs_and_precision_configs_fail_in_one_line(tmp_path, layouts, seed, count):
    model = layouts["full_h5"][0]
    sources = []
    for version, array in [((1, 0), np.ones((3, 4), np.float32)), ((2, 0), np.arange(12.0).reshape(3, 4)),
                           ((3, 0), np.ones((3, 4), np.int16))]:
        path = tmp_path / f"source_{version[0]}.npy"
        with open(path, "wb") as handle:
            np.lib.format.write_array(handle, array, version=version)
        sources.append(path.read_bytes())
    rng = random.Random(seed)
    cases = []
    for index in range(count):
        x = tmp_path / f"x{index}.npy"
        x.write_bytes(_mutate(sources[index % 3], rng))
        cases.append({"argv": ["predict", str(model), "-i", str(x), "-o", str(tmp_path / f"y{index}.npy")]})
        config = tmp_path / f"c{index}.yaml"
        config.write_bytes(_mutate(PRECISION_YAML.encode(), rng))
        cases.append({"argv": ["inspect", str(model), "--config", str(config)]})
    rows = run_cases(tmp_path, cases)
    assert failures(rows) == []


def test_npy_header_with_an_unclosed_bracket_is_one_line(tmp_path, layouts):
    x = tmp_path / "x.npy"
    np.lib.format.write_array(open(x, "wb"), np.ones((3, 4)), version=(2, 0))
    data = bytearray(x.read_bytes())
    data[data.index(b")")] = ord(" ")  # 'shape': (3, 4  -- tokenize: EOF in multi-line statement
    x.write_bytes(bytes(data))
    rows = run_cases(tmp_path, [{"argv": ["predict", str(layouts["full_h5"][0]), "-i", str(x), "-o", str(tmp_path / "y.npy")]}])
    assert failures(rows) == [] and rows[0]["code"] == 2


def test_the_address_space_cap_of_vlen_reads_is_restored_under_threads():
    import resource
    import threading

    from rtlgen.frontend import hdf5

    before = resource.getrlimit(resource.RLIMIT_AS)

    def read_many() -> None:
        for _ in range(200):
            with hdf5._address_space_cap(600 << 20):
                pass

    threads = [threading.Thread(target=read_many) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert resource.getrlimit(resource.RLIMIT_AS) == before
