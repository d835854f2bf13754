"""Hostile, malformed and oversized model, weights, graph, config and input files.

Each file is built here with h5py/numpy/zipfile in tmp_path. A model file may only supply
data stored inside itself, may not make rtlgen allocate more than `Limits` allows, and
every bad value is one `RtlgenError` naming the layer/key/file (exit 2, one `error:` line in
the CLI), never a traceback.
"""

from __future__ import annotations

import functools
import io
import json
import os
import struct
import subprocess
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from rtlgen.api import load_array, load_model
from rtlgen.config import load_config
from rtlgen.frontend import read_model
from rtlgen.frontend.limits import Limits
from rtlgen.passes import PrecisionConfig, lower
from rtlgen.quant.errors import ModelFileError, RtlgenError
from rtlgen.quant.fixed import FixedType
from rtlgen.quant.reference import predict
from rtlgen.serialize import load_graph, save_graph
from tests.memory import peak_rss_mb, reset_peak_rss
from tests.models import layer_entry, sequential_config, write_full_h5, write_weights_h5
from tests.rtlgen.cli_run import rtlgen_in_process_fd
from tests.rtlgen.nets import conv_net, mlp

#: What a hostile file tries to pull in: 12 float32 values whose bytes are distinctive.
SECRET_VALUES = np.array([1234.5, -987.25, 42.125] * 4, dtype="<f4")
MAX_RSS_GROWTH_MB = 200


def dense(name: str, units: Any, **extra: Any) -> dict[str, Any]:
    return layer_entry(
        "Dense", {"name": name, "units": units, "activation": "linear", "use_bias": False, **extra}
    )


def dense_config(units: Any = 3, inputs: Any = 4) -> dict[str, Any]:
    return sequential_config([dense("d", units)], (inputs,))


def good_weights() -> dict[str, dict[str, np.ndarray]]:
    return {"d": {"kernel": np.full((4, 3), 0.5)}}


def rss_mb() -> float:
    return peak_rss_mb()


@pytest.fixture
def rtlgen(capfd) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the command line in this process, with what it writes to the file descriptors (a
    C library's messages) counted as its output too: the assertions below see everything
    a user's terminal would (`rtlgen_in_process_fd`)."""
    return functools.partial(rtlgen_in_process_fd, capfd)


def assert_one_line_error(result: subprocess.CompletedProcess[str], message: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in lines[0], lines[0]


# ---------------------------------------------------------------------------------------
# confinement: a model file supplies only data stored inside itself
# ---------------------------------------------------------------------------------------
def _secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret.bin"
    path.write_bytes(SECRET_VALUES.tobytes())
    return path


def _hostile_dataset(group: h5py.Group, name: str, attack: str, tmp_path: Path) -> None:
    """A (4, 3) float32 dataset ``name`` in ``group`` whose data would come from elsewhere."""
    secret = _secret_file(tmp_path)
    if attack == "external_storage":
        group.create_dataset(name, shape=(4, 3), dtype="<f4", external=[(str(secret), 0, 48)])
    elif attack == "virtual":
        source = tmp_path / "source.h5"
        with h5py.File(source, "w") as f:
            f["x"] = SECRET_VALUES.reshape(4, 3)
        layout = h5py.VirtualLayout(shape=(4, 3), dtype="<f4")
        layout[:] = h5py.VirtualSource(str(source), "x", shape=(4, 3))
        group.create_virtual_dataset(name, layout)
    elif attack == "external_link":
        source = tmp_path / "linked.h5"
        with h5py.File(source, "w") as f:
            f["x"] = SECRET_VALUES.reshape(4, 3)
        group[name] = h5py.ExternalLink(str(source), "x")
    elif attack == "soft_link":
        group.file["elsewhere"] = SECRET_VALUES.reshape(4, 3)
        group[name] = h5py.SoftLink("/elsewhere")
    else:
        raise AssertionError(attack)


ATTACKS = ["external_storage", "virtual", "external_link", "soft_link"]
ATTACK_MESSAGES = {
    "external_storage": "stores its data in external file",
    "virtual": "is a virtual dataset",
    "external_link": "is an ExternalLink",
    "soft_link": "is a SoftLink",
}


def _keras2_weights(root: h5py.Group, attack: str, tmp_path: Path) -> None:
    root.attrs["layer_names"] = [b"d"]
    group = root.create_group("d")
    group.attrs["weight_names"] = [b"d/kernel:0"]
    _hostile_dataset(group.create_group("d"), "kernel:0", attack, tmp_path)


def _indexed_weights(f: h5py.File, attack: str, tmp_path: Path) -> None:
    _hostile_dataset(f.create_group("layers/dense/vars"), "0", attack, tmp_path)


def _full_h5(tmp_path: Path, attack: str) -> tuple[Path, Path | None]:
    path = tmp_path / "model.h5"
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(dense_config())
        _keras2_weights(f.create_group("model_weights"), attack, tmp_path)
    return path, None


def _json_and_weights(
    tmp_path: Path, attack: str, indexed: bool = False
) -> tuple[Path, Path | None]:
    """A model JSON + a separate weights file, Keras 2 (``w.h5``) or indexed (``w.weights.h5``)."""
    model = tmp_path / "model.json"
    model.write_text(json.dumps(dense_config()))
    weights = tmp_path / ("w.weights.h5" if indexed else "w.h5")
    with h5py.File(weights, "w") as f:
        (_indexed_weights if indexed else _keras2_weights)(f, attack, tmp_path)
    return model, weights


def _keras_archive(tmp_path: Path, attack: str) -> tuple[Path, Path | None]:
    inner = tmp_path / "model.weights.h5"
    with h5py.File(inner, "w") as f:
        _indexed_weights(f, attack, tmp_path)
    path = tmp_path / "model.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", json.dumps(dense_config()))
        archive.write(inner, "model.weights.h5")
    return path, None


LAYOUTS = {
    "full_h5": _full_h5,
    "json_weights_h5": _json_and_weights,
    "json_indexed_weights_h5": lambda tmp_path, attack: _json_and_weights(tmp_path, attack, True),
    "keras_archive": _keras_archive,
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("attack", ATTACKS)
def test_model_file_cannot_pull_data_from_other_files(tmp_path, layout, attack):
    model, weights = LAYOUTS[layout](tmp_path, attack)
    with pytest.raises(ModelFileError, match=ATTACK_MESSAGES[attack]) as error:
        load_model(model, weights=weights)
    message = str(error.value)
    assert "\n" not in message and "may only hold its data itself" in message
    assert "1234.5" not in message


@pytest.mark.parametrize("attack", ATTACKS)
def test_hostile_file_data_never_reaches_predict_output_or_cli(tmp_path, attack, rtlgen):
    model, _ = _full_h5(tmp_path, attack)
    x = tmp_path / "x.npy"
    np.save(x, np.ones((2, 4), dtype=np.float32))
    result = rtlgen("predict", model, "-i", x, "-o", tmp_path / "y.npy")
    assert_one_line_error(result, ATTACK_MESSAGES[attack])
    assert not (tmp_path / "y.npy").exists()
    assert "1234.5" not in result.stdout + result.stderr


def test_model_weights_group_behind_an_external_link_is_refused(tmp_path):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["model_weights/d/d/kernel:0"] = SECRET_VALUES.reshape(4, 3)
    path = tmp_path / "model.h5"
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(dense_config())
        f["model_weights"] = h5py.ExternalLink(str(other), "model_weights")
    with pytest.raises(ModelFileError, match="'model_weights' is an ExternalLink"):
        load_model(path)


def _kernel_group(f: h5py.File) -> h5py.Group:
    """A full-model file's layout for `dense_config`, up to the group that holds ``kernel:0``."""
    f.attrs["model_config"] = json.dumps(dense_config())
    root = f.create_group("model_weights")
    root.attrs["layer_names"] = [b"d"]
    group = root.create_group("d")
    group.attrs["weight_names"] = [b"d/kernel:0"]
    return group.create_group("d")


def test_dataset_with_a_plugin_filter_is_refused_before_reading(tmp_path):
    path = tmp_path / "model.h5"
    with h5py.File(path, "w") as f:
        group = _kernel_group(f)
        # Filter 32001 (blosc) would make HDF5 look for a plugin library to decode it.
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_chunk((4, 3))
        dcpl.set_filter(32001, h5py.h5z.FLAG_OPTIONAL, ())
        space = h5py.h5s.create_simple((4, 3))
        h5py.h5d.create(group.id, b"kernel:0", h5py.h5t.IEEE_F32LE, space, dcpl=dcpl)
    with pytest.raises(
        ModelFileError, match="HDF5 filter 32001 .*supported: no filter, gzip, shuffle"
    ):
        load_model(path)


def _deflate_zeros(size: int) -> bytes:
    """``size`` zero bytes deflated (zlib), built in 1 MiB steps."""
    deflater = zlib.compressobj(9)
    parts = [deflater.compress(bytes(1 << 20)) for _ in range(size >> 20)]
    return b"".join(parts) + deflater.flush()


def _weights_file_with_chunk(path: Path, chunk: bytes, shuffle: bool = False) -> Path:
    write_full_h5(path, dense_config(), good_weights())
    with h5py.File(path, "a") as f:
        del f["model_weights/d/d/kernel:0"]
        dataset = f["model_weights/d/d"].create_dataset(
            "kernel:0",
            shape=(4, 3),
            dtype="<f4",
            chunks=(4, 3),
            compression="gzip",
            shuffle=shuffle,
        )
        dataset.id.write_direct_chunk((0, 0), chunk, 0)
    return path


def test_compressed_chunk_that_inflates_past_its_size_is_refused_unread(tmp_path):
    # 400 KB that HDF5's own deflate filter would inflate to 400 MB for a 48-byte dataset.
    # HDF5 < 2.0 (h5py < 3.15, as TensorFlow 2.21 pins it on Python 3.12/3.13) stores a
    # 48-byte chunk's size in 2 bytes and refuses to write one over 65,535 bytes ("chunk size
    # can't be encoded"): there the bomb is 62 MB in 63,206 bytes and the bound on the memory
    # growth shrinks with it (rtlgen's refusal grows it by ~6 MB, inflating it by >= 62).
    try:
        path = _weights_file_with_chunk(tmp_path / "model.h5", _deflate_zeros(400 << 20))
        max_growth_mb = MAX_RSS_GROWTH_MB
    except OSError as exc:
        if "chunk size can't be encoded" not in str(exc):
            raise
        path = _weights_file_with_chunk(tmp_path / "model62.h5", _deflate_zeros(62 << 20))
        max_growth_mb = 31
    before = reset_peak_rss()
    with pytest.raises(
        ModelFileError, match="compressed chunk inflates past its declared 48 bytes"
    ):
        load_model(path)
    assert rss_mb() - before < max_growth_mb


@pytest.mark.parametrize(
    "chunk,message",
    [
        (b"garbage", "corrupt compressed chunk"),
        (zlib.compress(bytes(20)), "holds 20 bytes once decoded, expected 48"),
    ],
)
def test_corrupt_compressed_chunks_are_one_line(tmp_path, chunk, message):
    with pytest.raises(ModelFileError, match=message):
        load_model(_weights_file_with_chunk(tmp_path / "model.h5", chunk))


@pytest.mark.parametrize(
    "options",
    [
        {"compression": "gzip"},
        {"compression": "gzip", "shuffle": True, "fletcher32": True},
        {"compression": "gzip", "chunks": (3, 2)},
        {"chunks": (1, 3)},
    ],
)
def test_compressed_weights_are_decoded_exactly(tmp_path, options):
    kernel = np.arange(12, dtype="<f4").reshape(4, 3) / 8
    path = write_full_h5(tmp_path / "model.h5", dense_config(), good_weights())
    with h5py.File(path, "a") as f:
        del f["model_weights/d/d/kernel:0"]
        f["model_weights/d/d"].create_dataset("kernel:0", data=kernel, **options)
    np.testing.assert_array_equal(read_model(path).nodes[1].weights.values, kernel)


def test_object_reference_dataset_is_refused(tmp_path):
    path = tmp_path / "model.h5"
    with h5py.File(path, "w") as f:
        refs = _kernel_group(f).create_dataset("kernel:0", shape=(4, 3), dtype=h5py.ref_dtype)
        refs[0, 0] = f.ref
    with pytest.raises(ModelFileError, match="expected numbers"):
        load_model(path)


def test_hdf5_behind_a_user_block_is_not_read_as_a_model(tmp_path):
    path = tmp_path / "model.h5"
    with h5py.File(path, "w", userblock_size=512) as f:
        f.attrs["model_config"] = json.dumps(dense_config())
        f.create_group("model_weights").attrs["layer_names"] = [b"d"]
    with pytest.raises(ModelFileError, match="not an HDF5 file"):
        load_model(path)


# ---------------------------------------------------------------------------------------
# memory and time bombs
# ---------------------------------------------------------------------------------------
def _huge_dataset(group: h5py.Group, name: str, shape: tuple[int, ...] = (1 << 30, 8)) -> None:
    """A dataset declaring 8 GiB of float64 that the file does not hold (chunks unwritten)."""
    group.create_dataset(name, shape=shape, dtype="f8", chunks=(1 << 16, 8), compression="gzip")


def test_unused_huge_datasets_in_a_weights_file_are_never_read(tmp_path):
    path = tmp_path / "model.h5"
    write_full_h5(path, dense_config(), good_weights())
    with h5py.File(path, "a") as f:
        root = f["model_weights"]
        root.attrs["layer_names"] = [b"d", b"unused"]
        group = root.create_group("unused")
        group.attrs["weight_names"] = [b"unused/big:0"]
        _huge_dataset(group.create_group("unused"), "big:0")
        _huge_dataset(root["d/d"], "extra:0")
    before = reset_peak_rss()
    graph = load_model(path)
    assert graph.nodes[1].weights.shape == (4, 3)
    assert rss_mb() - before < MAX_RSS_GROWTH_MB


def test_unused_huge_variables_of_a_keras_archive_are_never_read(tmp_path):
    inner = tmp_path / "model.weights.h5"
    with h5py.File(inner, "w") as f:
        f["layers/dense/vars/0"] = np.full((4, 3), 0.5, dtype="f4")
        _huge_dataset(f.create_group("layers/unused_layer/vars"), "0")
    path = tmp_path / "model.keras"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("config.json", json.dumps(dense_config()))
        archive.write(inner, "model.weights.h5")
    before = reset_peak_rss()
    assert load_model(path).nodes[1].weights.shape == (4, 3)
    assert rss_mb() - before < MAX_RSS_GROWTH_MB


@pytest.mark.parametrize("layout", ["keras2", "indexed"])
def test_used_dataset_declaring_a_huge_shape_is_refused_before_reading(tmp_path, layout):
    model = tmp_path / "model.json"
    model.write_text(json.dumps(dense_config()))
    weights = tmp_path / "w.h5"
    with h5py.File(weights, "w") as f:
        if layout == "keras2":
            f.attrs["layer_names"] = [b"d"]
            f.create_group("d").attrs["weight_names"] = [b"d/kernel:0"]
            _huge_dataset(f.create_group("d/d"), "kernel:0")
        else:
            _huge_dataset(f.create_group("layers/dense/vars"), "0")
    before = reset_peak_rss()
    with pytest.raises(ModelFileError, match=r"shape \(1073741824, 8\) in the weights file"):
        load_model(model, weights=weights)
    assert rss_mb() - before < MAX_RSS_GROWTH_MB


PARAMETER_CAP = "more than the limit of 20,000,000 .*--max-params"


@pytest.mark.parametrize(
    "layers,input_shape,message",
    [
        ([dense("d", 2**26)], (4,), PARAMETER_CAP),
        (
            [
                layer_entry(
                    "Conv2D", {"name": "c", "filters": 2**20, "kernel_size": 3, "use_bias": True}
                )
            ],
            (8, 8, 3),
            PARAMETER_CAP,
        ),
        (
            [
                layer_entry(
                    "Conv2D", {"name": "c", "filters": 4, "kernel_size": 30000, "padding": "same"}
                )
            ],
            (8, 8, 3),
            "operations per sample .* more than the limit of 1,073,741,824",
        ),
    ],
)
def test_size_caps_fail_fast_from_the_declared_shapes(tmp_path, layers, input_shape, message):
    path = tmp_path / "model.h5"
    write_full_h5(path, sequential_config(layers, input_shape), {})  # no weights stored at all
    before = reset_peak_rss()
    with pytest.raises(ModelFileError, match=message):
        load_model(path)
    assert rss_mb() - before < MAX_RSS_GROWTH_MB


def test_parameter_cap_counts_every_layer_before_reading_the_next(tmp_path):
    path = tmp_path / "model.h5"
    config = sequential_config([dense("d", 3), dense("e", 3)], (4,))
    write_full_h5(path, config, {**good_weights(), "e": {"kernel": np.ones((3, 3))}})
    with pytest.raises(ModelFileError, match="layer 'e' .*declares 21 parameters so far"):
        load_model(path, limits=Limits(max_parameters=20))
    assert len(load_model(path, limits=Limits(max_parameters=21)).nodes) == 3


def test_byte_cap_counts_the_stored_weights_before_reading_them(tmp_path):
    path = tmp_path / "model.h5"
    config = sequential_config([dense("d", 3), dense("e", 3)], (4,))
    weights = {**good_weights(), "e": {"kernel": np.ones((3, 3))}}
    write_full_h5(path, config, weights)  # float32: 48 + 36 bytes
    with pytest.raises(ModelFileError, match="layer 'e' .*weights read so far: 84 bytes"):
        load_model(path, limits=Limits(max_bytes=80))
    assert len(load_model(path, limits=Limits(max_bytes=84)).nodes) == 3


def test_parameter_cap_is_raised_by_limits(tmp_path):
    path = tmp_path / "model.h5"
    write_full_h5(path, dense_config(), good_weights())
    with pytest.raises(ModelFileError, match="declares 12 parameters .* limit of 11"):
        load_model(path, limits=Limits(max_parameters=11))
    assert load_model(path, limits=Limits(max_parameters=12)).nodes[1].weights.shape == (4, 3)


@pytest.mark.parametrize(
    "layers,input_shape,message",
    [
        (
            [layer_entry("Flatten", {"name": "f"})],
            (2**20, 2**20, 3),
            "output shape .* more than the limit",
        ),
        (
            [layer_entry("Flatten", {"name": "f"})],
            (2**31 - 1,) * 3,
            "more than the limit of 67,108,864",
        ),
        (
            [
                layer_entry(
                    "MaxPooling2D", {"name": "p", "pool_size": [60000, 60000], "padding": "same"}
                )
            ],
            (4, 4, 2),
            "operations per sample .*window \\(60000, 60000\\)\\), more than the limit of 1,073,741,824",
        ),
        (
            [
                layer_entry(
                    "Conv2D", {"name": "c", "filters": 1, "kernel_size": 100, "padding": "same"}
                )
            ],
            (4096, 4096, 1),
            "layer 'c' .*167,772,160,000 operations per sample",
        ),
    ],
)
def test_huge_or_overflowing_shapes_never_become_a_layer(tmp_path, layers, input_shape, message):
    path = tmp_path / "model.h5"
    write_full_h5(path, sequential_config(layers, input_shape), {})
    with pytest.raises(RtlgenError, match=message):
        load_model(path)


def _zip_with_member(
    path: Path, name: str, size: int, config: dict[str, Any] | None = None
) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        if config is not None:
            archive.writestr("config.json", json.dumps(config))
        with archive.open(name, "w", force_zip64=True) as member:
            chunk = b"\0" * (1 << 20)
            for _ in range(size >> 20):
                member.write(chunk)


@pytest.mark.parametrize(
    "member,size,limits,message",
    [
        (
            "model.weights.h5",
            24 << 20,
            Limits(max_bytes=8 << 20),
            "inflates to 25,165,824 bytes, more than the limit",
        ),
        ("model.weights.h5", 24 << 20, Limits(), "not a genuine weights file"),
        (
            "config.json",
            4 << 20,
            Limits(max_config_bytes=1 << 20),
            "config.json inflates to 4,194,304 bytes",
        ),
    ],
)
def test_keras_archive_members_are_bounded_before_inflating(
    tmp_path, member, size, limits, message
):
    path = tmp_path / "bomb.keras"
    _zip_with_member(path, member, size, dense_config() if member != "config.json" else None)
    before = reset_peak_rss()
    with pytest.raises(ModelFileError, match=message):
        load_model(path, limits=limits)
    assert rss_mb() - before < MAX_RSS_GROWTH_MB


def _patch_declared_size(path: Path, name: bytes, declared: int) -> None:
    """Make the zip headers claim ``declared`` bytes for member ``name`` (headers can lie)."""
    data = bytearray(path.read_bytes())
    for signature, size_offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        start = 0
        while (index := data.find(signature, start)) >= 0:
            name_offset = 30 if signature == b"PK\x03\x04" else 46
            name_length = struct.unpack_from(
                "<H", data, index + (26 if signature == b"PK\x03\x04" else 28)
            )[0]
            if data[index + name_offset : index + name_offset + name_length] == name:
                struct.pack_into("<I", data, index + size_offset, declared)
            start = index + 4
    path.write_bytes(bytes(data))


def test_keras_archive_member_whose_header_lies_is_refused(tmp_path):
    path = tmp_path / "liar.keras"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("config.json", json.dumps(dense_config()))
        archive.writestr("model.weights.h5", b"\0" * (4 << 20))
    _patch_declared_size(path, b"model.weights.h5", 1000)
    with pytest.raises(ModelFileError, match="not a readable .keras"):
        load_model(path)


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("depth", [100, 5000, 100_000])
def test_deeply_nested_model_json_is_one_line(tmp_path, depth):
    config = dense_config()
    path = tmp_path / "model.json"
    text = json.dumps(config)[:-1] + ', "extra": ' + "[" * depth + "]" * depth + "}"
    path.write_text(text)
    with pytest.raises(ModelFileError, match="nested (too deeply|more than 64 levels)"):
        load_model(path, weights=write_weights_h5(tmp_path / "w.h5", good_weights()))


def test_deeply_nested_h5_model_config_is_one_line(tmp_path):
    path = tmp_path / "model.h5"
    config = dense_config()
    config["config"]["layers"][1]["config"]["kernel_regularizer"] = _nested(200)
    write_full_h5(path, config, good_weights())
    with pytest.raises(ModelFileError, match="nested more than 64 levels"):
        load_model(path)


@pytest.mark.parametrize("attribute", ["model_config", "layer_names", "weight_names"])
def test_hdf5_attributes_larger_than_the_limit_are_refused_unread(tmp_path, attribute):
    path = write_full_h5(tmp_path / "model.h5", dense_config(), good_weights())
    with h5py.File(path, "a") as f:
        node = {
            "model_config": f,
            "layer_names": f["model_weights"],
            "weight_names": f["model_weights/d"],
        }[attribute]
        value = node.attrs[attribute]
        padded = np.array(list(np.atleast_1d(value)) + [b"x" * 100] * 30, dtype="S100")
        node.attrs[attribute] = (
            padded if attribute != "model_config" else json.dumps(dense_config()).ljust(4000)
        )
    with pytest.raises(
        ModelFileError,
        match=f"attribute '{attribute}' (declares|holds) .* more than the limit of 2,000",
    ):
        load_model(path, limits=Limits(max_config_bytes=2000))


def test_model_json_larger_than_the_limit_is_refused_unread(tmp_path):
    path = tmp_path / "model.json"
    path.write_text(json.dumps(dense_config())[:-1] + ', "pad": "' + "x" * (2 << 20) + '"}')
    with pytest.raises(ModelFileError, match="more than the limit of 1,048,576"):
        read_model(path, tmp_path / "w.h5", limits=Limits(max_config_bytes=1 << 20))


# ---------------------------------------------------------------------------------------
# malformed numbers in a model config
# ---------------------------------------------------------------------------------------
BAD_SIZES = [
    float("nan"),
    float("inf"),
    -float("inf"),
    1e300,
    -3,
    0,
    2.5,
    3.0,
    True,
    "3",
    None,
    2**70,
]


def _conv_config(**overrides: Any) -> dict[str, Any]:
    conv = {
        "name": "c",
        "filters": 2,
        "kernel_size": [2, 2],
        "strides": [1, 1],
        "padding": "valid",
        "use_bias": False,
        **overrides,
    }
    pool = {"name": "p", "pool_size": [2, 2], "strides": [1, 1], "padding": "valid"}
    for key in list(overrides):
        if key.startswith("pool_"):
            pool[key.removeprefix("pool_")] = conv.pop(key)
    return sequential_config(
        [layer_entry("Conv2D", conv), layer_entry("MaxPooling2D", pool)], (6, 6, 1)
    )


def _write_and_load(tmp_path: Path, config: dict[str, Any], weights: dict[str, Any]) -> Any:
    path = tmp_path / "model.h5"
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(config)  # NaN/Infinity written as JSON literals
        root = f.create_group("model_weights")
        root.attrs["layer_names"] = np.array([n.encode() for n in weights], dtype="S")
        for layer, named in weights.items():
            group = root.create_group(layer)
            group.attrs["weight_names"] = np.array(
                [f"{layer}/{k}:0".encode() for k in named], dtype="S"
            )
            for key, value in named.items():
                group.create_dataset(f"{layer}/{key}:0", data=value)
    return load_model(path)


@pytest.mark.parametrize("value", BAD_SIZES)
@pytest.mark.parametrize(
    "key,layer",
    [
        ("filters", "c"),
        ("kernel_size", "c"),
        ("strides", "c"),
        ("pool_pool_size", "p"),
        ("pool_strides", "p"),
    ],
)
def test_malformed_sizes_in_a_layer_config_name_the_layer_and_key(tmp_path, key, layer, value):
    config = _conv_config(**{key: value if key == "filters" else [value, value]})
    with pytest.raises(ModelFileError, match=f"layer '{layer}' .*'{key.removeprefix('pool_')}"):
        _write_and_load(tmp_path, config, {"c": {"kernel": np.ones((2, 2, 1, 2), "f4")}})


@pytest.mark.parametrize("value", BAD_SIZES)
def test_malformed_units_and_input_dimensions_name_the_layer(tmp_path, value):
    with pytest.raises(ModelFileError, match="layer 'd' .*'units'"):
        _write_and_load(
            tmp_path, dense_config(units=value), {"d": {"kernel": np.ones((4, 3), "f4")}}
        )
    with pytest.raises(RtlgenError, match="layer 'input_1' .*(input shape|batch_input_shape)"):
        _write_and_load(
            tmp_path, dense_config(inputs=value), {"d": {"kernel": np.ones((4, 3), "f4")}}
        )


def _qdense_config(quantizer: Any) -> dict[str, Any]:
    return sequential_config(
        [
            layer_entry(
                "QDense",
                {
                    "name": "q",
                    "units": 3,
                    "use_bias": False,
                    "kernel_quantizer": quantizer,
                    "activation": "linear",
                },
            )
        ],
        (4,),
    )


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 1e300, -1e300, 2**80, 100, -100])
@pytest.mark.parametrize("key", ["bits", "integer", "alpha"])
def test_malformed_quantizer_arguments_name_the_layer(tmp_path, key, value):
    spec = {
        "class_name": "quantized_bits",
        "config": {"bits": 6, "integer": 0, "alpha": 1, key: value},
    }
    with pytest.raises(RtlgenError, match="layer 'q' \\(QDense\\)") as error:
        _write_and_load(tmp_path, _qdense_config(spec), {"q": {"kernel": np.ones((4, 3), "f4")}})
    assert len(str(error.value)) < 400


@pytest.mark.parametrize(
    "text",
    ["quantized_bits(6, 1e300)", "quantized_bits(10**9)", "quantized_bits(6, 0, alpha=1e999)"],
)
def test_malformed_quantizer_strings_name_the_layer(tmp_path, text):
    with pytest.raises(RtlgenError, match="layer 'q' \\(QDense\\)"):
        _write_and_load(tmp_path, _qdense_config(text), {"q": {"kernel": np.ones((4, 3), "f4")}})


@pytest.mark.parametrize(
    "layer_config,message",
    [
        ({"epsilon": float("nan")}, "'epsilon' = nan is not a finite number"),
        ({"epsilon": float("inf")}, "'epsilon' = inf is not a finite number"),
        ({"epsilon": -10.0}, "moving_variance \\+ epsilon is not positive"),
        ({"epsilon": True}, "'epsilon' = True is not a number"),
        ({"momentum": float("nan")}, "'momentum' = nan is not a finite number"),
    ],
)
def test_malformed_batchnorm_numbers_name_the_layer(tmp_path, layer_config, message):
    config = sequential_config(
        [layer_entry("BatchNormalization", {"name": "bn", "axis": -1, **layer_config})], (4,)
    )
    weights = {
        "bn": {k: np.ones(4, "f4") for k in ("gamma", "beta", "moving_mean", "moving_variance")}
    }
    with pytest.raises(ModelFileError, match=f"layer 'bn' .*{message}"):
        _write_and_load(tmp_path, config, weights)


@pytest.mark.parametrize("max_value", [float("nan"), float("inf"), 1e300, True, "6"])
def test_malformed_relu_max_value_names_the_layer(tmp_path, max_value):
    config = sequential_config(
        [dense("d", 3), layer_entry("ReLU", {"name": "r", "max_value": max_value})], (4,)
    )
    with pytest.raises(ModelFileError, match="layer 'r' \\(ReLU\\): 'max_value'"):
        _write_and_load(tmp_path, config, good_weights())


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("name", ["kernel", "bias"])
def test_nan_or_infinite_weights_name_the_layer(tmp_path, bad, name):
    weights = {"kernel": np.ones((4, 3), "f4"), "bias": np.zeros(3, "f4")}
    weights[name].flat[1] = bad
    config = sequential_config([dense("d", 3, use_bias=True)], (4,))
    with pytest.raises(
        ModelFileError, match=f"layer 'd' .*weight '{name}' contains NaN or infinity"
    ):
        _write_and_load(tmp_path, config, {"d": weights})


@pytest.mark.parametrize("target", [[0], [-1, -1], [2.5], [True], "12", [-3]])
def test_malformed_reshape_targets_name_the_layer(tmp_path, target):
    config = sequential_config(
        [layer_entry("Reshape", {"name": "r", "target_shape": target})], (3, 4)
    )
    with pytest.raises(ModelFileError, match="layer 'r' .*target_shape"):
        _write_and_load(tmp_path, config, {})


@pytest.mark.parametrize("dtype", ["S4", "c8", [("a", "f4"), ("b", "f4")]])
def test_weights_that_are_not_real_numbers_are_refused(tmp_path, dtype):
    path = tmp_path / "model.h5"
    write_full_h5(path, dense_config(), good_weights())
    with h5py.File(path, "a") as f:
        del f["model_weights/d/d/kernel:0"]
        f["model_weights/d/d"].create_dataset("kernel:0", data=np.zeros((4, 3), dtype=dtype))
    with pytest.raises(ModelFileError, match="expected numbers"):
        load_model(path)


# ---------------------------------------------------------------------------------------
# tampered graph.npz (a converted design's saved graph)
# ---------------------------------------------------------------------------------------
def _saved_graph(tmp_path: Path, graph: Any = None) -> Path:
    path = tmp_path / "graph.npz"
    save_graph(graph if graph is not None else conv_net(scale_shift=True), path)
    return path


def _tamper(path: Path, edit: Any) -> None:
    with np.load(path) as data:  # the test's own file: trusted here
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(str(arrays.pop("__graph__")))
    result = edit(meta, arrays)
    graph_text = result if isinstance(result, str) else json.dumps(meta)
    with open(path, "wb") as f:
        np.savez(f, __graph__=np.array(graph_text), **arrays)


def _node(meta: dict[str, Any], cls: str) -> dict[str, Any]:
    return next(n for n in meta["nodes"] if n["class"] == cls)


def _index(meta: dict[str, Any], cls: str) -> int:
    return next(i for i, n in enumerate(meta["nodes"]) if n["class"] == cls)


TAMPERING = {
    "unknown_class": (
        lambda m, a: _node(m, "Dense").update({"class": "Lambda"}),
        "class 'Lambda' is not one of",
    ),
    "missing_array": (
        lambda m, a: a.pop(f"n{_index(m, 'Conv')}_weights"),
        "array 'n1_weights' is missing",
    ),
    "wrong_array_shape": (
        lambda m, a: a.update({f"n{_index(m, 'Conv')}_weights": np.zeros((2, 2, 1, 1), np.int64)}),
        "'weights' has shape \\(2, 2, 1, 1\\), the node needs",
    ),
    "float_array": (
        lambda m, a: a.update(
            {f"n{_index(m, 'Dense')}_bias": a[f"n{_index(m, 'Dense')}_bias"].astype(float)}
        ),
        "holds float64 values; supported dtypes: integer, unsigned",
    ),
    "object_array": (
        lambda m, a: a.update({f"n{_index(m, 'Dense')}_bias": np.array([object()] * 4)}),
        "holds object \\(object\\) values",
    ),
    "mantissa_out_of_range": (
        lambda m, a: a.update(
            {f"n{_index(m, 'Dense')}_bias": a[f"n{_index(m, 'Dense')}_bias"] + 10**6}
        ),
        "mantissas .* do not fit",
    ),
    "width_1e6": (
        lambda m, a: _node(m, "Dense").update({"out_type": [10**6, 0, True]}),
        "'out_type width' = 1000000",
    ),
    "width_string": (
        lambda m, a: _node(m, "Conv").update({"acc_type": ["16", 4, True]}),
        "'acc_type width' = '16'",
    ),
    "type_not_a_list": (
        lambda m, a: _node(m, "Conv").update({"out_type": 7}),
        "'out_type' = 7 is not a fixed-point type",
    ),
    "missing_key": (lambda m, a: _node(m, "Conv").pop("kernel"), "'kernel' is missing"),
    "negative_dimension": (
        lambda m, a: _node(m, "Flatten").update({"out_shape": [-3]}),
        "'out_shape' = -3",
    ),
    "flatten_size": (
        lambda m, a: _node(m, "Flatten").update({"out_shape": [5]}),
        "flattening .* gives",
    ),
    "conv_geometry": (lambda m, a: _node(m, "Conv").update({"stride": [2, 2]}), "do not map"),
    "pool_channels": (
        lambda m, a: _node(m, "Pool").update({"kind": "median"}),
        "'kind' = 'median' is not one of",
    ),
    "chain_broken": (
        lambda m, a: _node(m, "Dense").update({"in_shape": [7]}),
        "weights|does not match",
    ),
    "rounding_unknown": (
        lambda m, a: _node(m, "Conv").update({"rounding": "stochastic"}),
        "'rounding' = 'stochastic'",
    ),
    "activation_nan": (
        lambda m, a: _node(m, "Conv").update({"activation": [float("nan"), None]}),
        "activation bound nan",
    ),
    "activation_shape": (
        lambda m, a: _node(m, "Conv").update({"activation": "relu"}),
        "'activation' = 'relu' is not",
    ),
    "accumulator_misaligned": (
        lambda m, a: _node(m, "Dense").update({"acc_type": [40, -8, True]}),
        "accumulator type .* does not fit",
    ),
    "pool_window_bomb": (
        lambda m, a: _node(m, "Pool").update(
            {"pool": [60000, 60000], "padding": [29999, 29999, 29999, 29999]}
        ),
        "operations per sample, more than the limit",
    ),
    "source_with_newline": (
        lambda m, a: _node(m, "Dense").update({"source": "x\ny"}),
        "'source' = 'x\\\\ny'",
    ),
    "huge_shape": (
        lambda m, a: _node(m, "Input").update({"in_shape": [2**31 - 1] * 3}),
        "more than 67,108,864 elements",
    ),
    "name_with_newline": (
        lambda m, a: _node(m, "Conv").update({"name": "conv\ninit"}),
        "is not a valid name",
    ),
    "not_json": (lambda m, a: "{not json", "'__graph__' is not valid JSON"),
    "json_list": (lambda m, a: "[1, 2]", "'__graph__' is not a JSON object"),
    "deep_json": (lambda m, a: "[" * 100_000 + "]" * 100_000, "'__graph__' is not valid JSON"),
    "nodes_not_list": (
        lambda m, a: m.update({"nodes": {"a": 1}}),
        "'nodes' is not a non-empty list",
    ),
    "node_not_object": (lambda m, a: m["nodes"].insert(1, 3), "node 1: is not a JSON object"),
    "input_not_first": (
        lambda m, a: m["nodes"].reverse(),
        "the first node, and only it, must be the Input",
    ),
    "format_version": (
        lambda m, a: m.update({"format_version": 99}),
        "graph format 99 is not supported",
    ),
    "softmax_string": (
        lambda m, a: m.update({"softmax": "yes"}),
        "'softmax' = 'yes' is not true/false",
    ),
}


@pytest.mark.parametrize("case", list(TAMPERING))
def test_tampered_graph_is_one_model_file_error(tmp_path, case):
    edit, message = TAMPERING[case]
    path = _saved_graph(tmp_path)
    _tamper(path, edit)
    with pytest.raises(ModelFileError, match=message) as error:
        load_graph(path)
    assert "\n" not in str(error.value) and str(path) in str(error.value)


def test_graph_archive_of_an_unknown_zip_version_is_one_model_file_error(tmp_path):
    """zipfile raises NotImplementedError for a "version needed to extract" it does not
    know (found by the slow fuzzing of design folders)."""
    import struct

    path = _saved_graph(tmp_path)
    data = bytearray(path.read_bytes())
    at = data.find(b"PK\x01\x02")
    while at != -1:
        struct.pack_into("<H", data, at + 6, 136)
        at = data.find(b"PK\x01\x02", at + 4)
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="not an rtlgen graph file .zip file version 13.6"):
        load_graph(path)


def _flag_encrypted(path) -> None:
    """Set the "encrypted" bit of every member in the central directory (zipfile then raises
    RuntimeError: "... is encrypted, password required for extraction")."""
    import struct

    data = bytearray(path.read_bytes())
    at = data.find(b"PK\x01\x02")
    while at != -1:
        struct.pack_into("<H", data, at + 8, struct.unpack_from("<H", data, at + 8)[0] | 1)
        at = data.find(b"PK\x01\x02", at + 4)
    path.write_bytes(bytes(data))


def test_graph_archive_with_an_encrypted_member_is_one_model_file_error(tmp_path):
    """Found by the fuzzing of design folders: zipfile's RuntimeError for an encrypted member."""
    path = _saved_graph(tmp_path)
    _flag_encrypted(path)
    with pytest.raises(ModelFileError, match="cannot read .* is encrypted") as error:
        load_graph(path)
    assert "\n" not in str(error.value)


def test_input_npz_with_an_encrypted_member_is_one_line(tmp_path):
    from rtlgen.api import load_arrays

    path = tmp_path / "x.npz"
    np.savez(path, a=np.ones((2, 3), np.float32))
    _flag_encrypted(path)
    with pytest.raises(RtlgenError, match="cannot read .* is encrypted") as error:
        load_arrays(path)
    assert "\n" not in str(error.value)


def test_graph_member_declaring_a_huge_array_is_refused_unread(tmp_path):
    path = _saved_graph(tmp_path)
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<i8", "fortran_order": False, "shape": (10**9, 4)}
    )
    with zipfile.ZipFile(path, "w") as archive:
        for key, value in arrays.items():
            with archive.open(f"{key}.npy", "w") as member:
                if key == "n1_weights":
                    member.write(header.getvalue() + b"\0" * 64)
                else:
                    np.lib.format.write_array(member, value)
    before = reset_peak_rss()
    with pytest.raises(ModelFileError, match="declares shape \\(1000000000, 4\\)"):
        load_graph(path)
    assert rss_mb() - before < MAX_RSS_GROWTH_MB


def test_graph_constants_count_against_the_parameter_cap(tmp_path):
    graph = mlp(sizes=(8, 12, 6, 4))  # 96 + 12 + 72 + 6 + 24 + 4 = 214 parameters
    path = _saved_graph(tmp_path, graph)
    with pytest.raises(
        ModelFileError, match="declares 210 parameters so far, more than the limit of 200"
    ):
        load_graph(path, Limits(max_parameters=200))
    assert len(load_graph(path, Limits(max_parameters=214)).nodes) == len(graph.nodes)


@pytest.mark.parametrize("graph", [conv_net(), conv_net(same=True, stride=2, avg=True), mlp()])
def test_saved_graphs_still_load_bit_exact(tmp_path, graph):
    loaded = load_graph(_saved_graph(tmp_path, graph))
    x = np.linspace(-2, 2, 3 * int(np.prod(graph.input_shape))).reshape(3, *graph.input_shape)
    np.testing.assert_array_equal(predict(graph, x), predict(loaded, x))


def test_graph_npz_that_is_not_a_zip_is_refused(tmp_path):
    path = tmp_path / "graph.npz"
    path.write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(ModelFileError, match="not an rtlgen graph file"):
        load_graph(path)


# ---------------------------------------------------------------------------------------
# option values: precision strings, YAML configs
# ---------------------------------------------------------------------------------------
def test_precision_config_naming_a_missing_layer_lists_the_model_layers(tmp_path):
    path = tmp_path / "model.h5"
    write_full_h5(path, dense_config(), good_weights())
    config = tmp_path / "p.yaml"
    config.write_text("layers:\n  dense_typo: {result: 'ap_fixed<16,6>'}\n")
    with pytest.raises(
        RtlgenError,
        match="layers.dense_typo: model 'handmade' has no layer 'dense_typo' \\(its layers: input_1, d\\)",
    ):
        load_model(path, config=config)
    config.write_text("layers:\n  d: {result: 'ap_fixed<16,6>'}\n")
    assert str(load_model(path, config=config).nodes[1].out_type) == "fixed<16,6>"


@pytest.mark.parametrize(
    "text,message",
    [
        (
            "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
            + "".join(
                f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n"
                for i in range(8)
            )
            + "layers: {d: *i}\n",
            "more than 100,000 values \\(aliases expanded\\)",
        ),
        ("[" * 10_000 + "]" * 10_000, "nested too deeply|nested more than 32"),
        ("layers: " + "{a: " * 60 + "1" + "}" * 60, "nested more than 32 levels"),
        ("input: [unclosed\n", "invalid YAML at line"),
        ("input: !!python/object/apply:os.system ['true']\n", "invalid YAML"),
        ("default: {result_frac: 100000}\n", "result_frac = 100000 .*supported: -62..62"),
        ("input: 'fixed<16,100000>'\n", "input: precision 'fixed<16,100000>': 100000 integer bits"),
        ("input: 'fixed<8,3,RND_FOO,SAT>'\n", "unknown rounding mode 'RND_FOO'"),
        ("layers: {d: {result: 'fixed<8,3,RND,WRAP_FOO>'}}\n", "unknown overflow mode 'WRAP_FOO'"),
    ],
)
def test_hostile_precision_configs_are_one_line(tmp_path, text, message):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(RtlgenError, match=message) as error:
        load_config(path)
    assert "\n" not in str(error.value)


def test_precision_config_that_is_not_a_regular_file_is_refused_unread(tmp_path):
    fifo = tmp_path / "p.yaml"
    os.mkfifo(fifo)  # reading it would block forever
    for path in (fifo, tmp_path):
        with pytest.raises(RtlgenError, match="not a regular file"):
            load_config(path)


def test_precision_config_larger_than_1_mib_is_refused_unread(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("# " + "x" * (2 << 20))
    with pytest.raises(RtlgenError, match="larger than 1,048,576 bytes"):
        load_config(path)


@pytest.mark.parametrize(
    "value,message",
    [
        ("fixed<16,100000>", "100000 integer bits is not supported"),
        ("fixed<8,3,RND_FOO,SAT>", "unknown rounding mode 'RND_FOO'"),
        ("fixed<100,3>", "width 100 is not supported"),
        (7, "expected a precision string"),
    ],
)
def test_input_type_outside_the_supported_range_is_refused(tmp_path, value, message):
    path = tmp_path / "model.h5"
    write_full_h5(path, dense_config(), good_weights())
    with pytest.raises(RtlgenError, match=f"input type.*{message}"):
        load_model(path, input_type=value)


# ---------------------------------------------------------------------------------------
# input arrays
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "array,message",
    [
        (np.ones((2, 4), dtype=np.complex64), "complex"),
        (np.ones((2, 4), dtype="m8[s]"), "timedelta"),
        (np.ones((2, 4), dtype="M8[s]"), "datetime"),
        (np.zeros(2, dtype=[("a", "f4"), ("b", "f4")]), "structured"),
        (np.array([["a", "b"]]), "string"),
        (
            np.ones((2, 4), dtype=bool),
            "holds bool \\(bool\\) values; supported dtypes: integer, unsigned, float",
        ),
        (np.array([1.0, np.nan, np.inf, 2.0]).reshape(1, 4), "contains 2 NaN or infinite value"),
        (np.zeros((0, 4), dtype=np.float32), "holds zero samples"),
        (np.float32(3.0), "holds a single number \\(a 0-d array\\)"),
    ],
)
def test_input_arrays_that_are_not_real_samples_are_refused(tmp_path, array, message):
    path = tmp_path / "x.npy"
    np.save(path, array)
    with pytest.raises(RtlgenError, match=message):
        load_array(path)


def test_pickled_input_is_never_unpickled(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(RtlgenError, match="object"):
        load_array(path)


@pytest.mark.parametrize("shape,declared", [((4,), (10**9, 4)), ((2, 4), (3, 4))])
def test_npy_header_declaring_more_than_the_file_holds_is_refused_unread(tmp_path, shape, declared):
    path = tmp_path / "x.npy"
    np.save(path, np.ones(shape, dtype=np.float32))
    data = path.read_bytes()
    old = repr(tuple(shape)).encode()
    new = repr(tuple(declared)).encode()
    header_end = data.index(b"\n") + 1
    header = data[:header_end].replace(old, new)
    header = (
        header[:-1].rstrip(b" ") + b" " * (header_end - len(header[:-1].rstrip(b" ")) - 1) + b"\n"
    )
    path.write_bytes(header + data[header_end:])
    before = reset_peak_rss()
    with pytest.raises(RtlgenError, match=f"declares shape \\({declared[0]}, 4\\)"):
        load_array(path)
    assert rss_mb() - before < MAX_RSS_GROWTH_MB


def _npy_bytes(array: np.ndarray, version: tuple[int, int] = (1, 0)) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, version=version)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "content,message",
    [
        (b"", "not a readable .npy array"),
        (b"\x93NUMPY\x09\x00" + b"\0" * 16, "not a readable .npy array \\(Invalid version"),
        (
            _npy_bytes(np.ones((2, 4))).replace(b"(2, 4)", b"(-2,4)"),
            "declares an invalid shape \\(-2, 4\\)",
        ),
        (
            b"\x93NUMPY\x02\x00" + (200_000).to_bytes(4, "little") + b" " * 64,
            "not a readable .npy array",
        ),
        (_npy_bytes(np.ones((100, 4)))[:200], "truncated: its header declares shape \\(100, 4\\)"),
        (b"PK\x03\x04" + b"\0" * 64, "not a readable .npy array"),
        (b"\x80\x04\x95" + b"\0" * 64, "not a readable .npy array"),
    ],
)
def test_malformed_npy_files_are_one_line(tmp_path, content, message):
    path = tmp_path / "x.npy"
    path.write_bytes(content)
    with pytest.raises(RtlgenError, match=message):
        load_array(path)


@pytest.mark.parametrize("version", [(1, 0), (2, 0), (3, 0)])
@pytest.mark.parametrize(
    "array",
    [
        np.arange(8.0).reshape(2, 4),
        np.asfortranarray(np.arange(8.0).reshape(2, 4)),
        np.arange(8, dtype=">i4").reshape(2, 4),
    ],
)
def test_every_npy_version_and_layout_reads_back_exactly(tmp_path, version, array):
    path = tmp_path / "x.npy"
    path.write_bytes(_npy_bytes(array, version))
    np.testing.assert_array_equal(load_array(path), array)


def test_a_tensorflow_saved_model_folder_is_named_as_such(tmp_path):
    """model.save('folder') in TF 2.15 writes a SavedModel (saved_model.pb + variables/):
    one line saying what it is and how to save a file rtlgen reads."""
    (tmp_path / "saved_model.pb").write_bytes(b"\x08\x01")
    (tmp_path / "variables").mkdir()
    with pytest.raises(RtlgenError, match=r"is a TensorFlow SavedModel folder.*model.save\('m.h5'\)"):
        load_model(tmp_path)


def test_a_directory_or_fifo_is_not_an_input_or_a_model(tmp_path):
    fifo = tmp_path / "fifo.h5"
    os.mkfifo(fifo)  # reading it would block forever
    for path in (tmp_path, fifo):
        with pytest.raises(RtlgenError, match="is not a file"):
            load_array(path)
    with pytest.raises(ModelFileError, match="not a regular file"):
        load_model(fifo)
    with pytest.raises(RtlgenError, match="is a directory without graph.npz"):
        load_model(tmp_path)
    model = tmp_path / "model.json"
    model.write_text(json.dumps(dense_config()))
    with pytest.raises(ModelFileError, match="not a regular file"):
        load_model(model, weights=tmp_path)


def test_input_shape_is_checked_against_the_sample_shape(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.ones((3, 5), dtype=np.float32))
    with pytest.raises(RtlgenError, match="has shape \\(3, 5\\); expected \\(N, 4\\)"):
        load_array(path, sample_shape=(4,))
    np.save(path, np.ones(4, dtype=np.float32))
    assert load_array(path, sample_shape=(4,)).shape == (1, 4)


# ---------------------------------------------------------------------------------------
# through the CLI: one `error:` line, exit 2
# ---------------------------------------------------------------------------------------
@pytest.fixture
def small_model(tmp_path: Path) -> Path:
    return write_full_h5(tmp_path / "model.h5", dense_config(), good_weights())


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--input-type", "fixed<16,100000>"], "--input-type"),
        (["--input-type", "fixed<8,3,RND_FOO,SAT>"], "unknown rounding mode 'RND_FOO'"),
        (["--max-params", "11"], "raise it with --max-params"),
        (["--config", "{tmp}/p.yaml"], "has no layer 'typo'"),
    ],
)
def test_cli_option_errors_are_one_line(tmp_path, small_model, extra, message, rtlgen):
    (tmp_path / "p.yaml").write_text("layers:\n  typo: {result: 'fixed<8,3>'}\n")
    result = rtlgen("inspect", small_model, *[e.replace("{tmp}", str(tmp_path)) for e in extra])
    assert_one_line_error(result, message)


def test_cli_max_params_raises_the_cap(tmp_path, rtlgen):
    path = write_full_h5(tmp_path / "big.h5", sequential_config([dense("d", 6000)], (4000,)), {})
    assert_one_line_error(rtlgen("inspect", path), "24,000,000 parameters")
    # Above the cap the weights are looked for (and missing here): the cap no longer stops it.
    assert_one_line_error(
        rtlgen("inspect", path, "--max-params", "30000000"), "no weights for layer 'd'"
    )


@pytest.mark.parametrize(
    "array,message",
    [
        (np.ones((2, 4), dtype=np.complex128), "complex"),
        (np.zeros((0, 4), dtype=np.float32), "zero samples"),
        (np.array([[np.nan, 1, 2, 3]]), "1 NaN or infinite value"),
    ],
)
def test_cli_predict_refuses_bad_inputs_in_one_line(tmp_path, small_model, array, message, rtlgen):
    np.save(tmp_path / "x.npy", array)
    result = rtlgen("predict", small_model, "-i", tmp_path / "x.npy", "-o", tmp_path / "y.npy")
    assert_one_line_error(result, message)
    assert not (tmp_path / "y.npy").exists()


def test_lowering_a_graph_read_from_a_model_still_works(tmp_path, small_model):
    graph = lower(read_model(small_model), PrecisionConfig(input=FixedType(8, 4)))
    assert predict(graph, np.ones((1, 4))).tolist() == [[2.0, 2.0, 2.0]]
