"""Reading Keras model files without TensorFlow: Keras 2 HDF5 (full model or weights) and
``.keras`` zip archives (``config.json`` + ``model.weights.h5``).

Keras 2 HDF5 layout (``model.save("m.h5")`` / ``model.save_weights("w.h5")``)::

    /                      attrs: model_config (JSON, full model only), keras_version, backend
    /model_weights         (full model only; a weights file has the next level at its root)
        attrs: layer_names = [b"conv1", b"dense", ...]   (long lists: layer_names0, 1, ...)
        /conv1             attrs: weight_names = [b"conv1/kernel:0", b"conv1/bias:0"]
            /conv1/kernel:0    dataset, addressed through weight_names, relative to /conv1

``.keras`` archive (Keras >= 2.13 ``model.save("m.keras")``): ``model.weights.h5`` holds
``layers/<snake_case class name>[_N]/vars/<i>``: layers are numbered per class in the order
of ``model.layers`` and variables in creation order (trainable first), with no names;
sub-layers add a level (``layers/q_conv2d_batchnorm/batchnorm/vars/<i>``).

A model file is untrusted: it may only supply data stored inside itself, and only what the
model uses is read. So:
- every path is walked link by link and only hard links are followed (external links
  would open other files, soft links can loop or point anywhere);
- a dataset is checked before it is read: no virtual layout (VDS maps other files), no
  external raw storage (``dset.external``: bytes of any local file), only HDF5's built-in
  filters (a plugin filter would load a shared library), a plain numeric dtype, and a
  declared shape that the caller compares with the model config;
- weights are indexed lazily (`StoredArray`), so datasets the config does not ask for are
  never read, whatever their declared size;
- a ``.keras`` member is inflated through a hard byte limit (the sizes in zip headers can
  lie), in memory or, past 64 MiB, into an anonymous temporary file.
Every failure becomes a `ModelFileError` naming the file and the dataset.
"""

from __future__ import annotations

import io
import json
import re
import resource
import tempfile
import threading
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import h5py
import numpy as np
from h5py import h5d, h5z

from rtlgen.quant.errors import ModelFileError

from .limits import DEFAULT_LIMITS, Limits, check_bytes, check_depth, element_count

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
ZIP_MAGIC = b"PK\x03\x04"
#: Filters of compressed datasets rtlgen decodes itself, chunk by chunk with a bounded
#: output (Keras writes no filters; these are what h5py/h5repack gzip compression adds).
#: HDF5's own deflate grows its output buffer without bound (a 400 KB chunk of a 48-byte
#: dataset inflates to 400 MB), and any other filter id would make HDF5 look for a plugin
#: shared library, so HDF5 never decodes a filtered dataset here.
DECODED_FILTERS = {
    h5z.FILTER_DEFLATE: "gzip",
    h5z.FILTER_SHUFFLE: "shuffle",
    h5z.FILTER_FLETCHER32: "fletcher32",
}
#: Chunks of one compressed dataset (h5py's automatic chunks are 10 KB - 1 MB).
MAX_CHUNKS = 1 << 16
#: Variables of one layer in the ``.keras`` layout (a folded QConv2DBatchnorm has 3 + 4).
MAX_LAYER_VARIABLES = 16
#: A real weights file compresses a few times at most (pruned weights are zeros); a large
#: member claiming more is a decompression bomb (deflate reaches ~1032:1 on zeros).
MAX_INFLATE_RATIO = 100
_H5_ERRORS = (OSError, KeyError, ValueError, RuntimeError, TypeError)

LayerWeights = dict[str, np.ndarray]


# ---------------------------------------------------------------------------------------
# opening files and converting h5py failures
# ---------------------------------------------------------------------------------------
def open_file(path: Path | str | IO[bytes], what: str) -> h5py.File:
    """An HDF5 file opened read-only, after its global heaps were checked
    (`check_global_heaps`); failure to open is a `ModelFileError`."""
    try:
        if isinstance(path, Path | str):
            with open(path, "rb") as handle:
                check_global_heaps(handle, what)
        else:
            check_global_heaps(path, what)
            path.seek(0)
        return h5py.File(path, "r")
    except _H5_ERRORS as exc:
        raise ModelFileError(f"{what}: not a readable HDF5 file ({_h5_reason(exc)})") from None


GLOBAL_HEAP_SIGNATURE = b"GCOL"
_SCAN_BLOCK = 1 << 20


def check_global_heaps(handle: IO[bytes], what: str) -> None:
    """Refuse a file whose global heap collections (where HDF5 keeps variable-length strings,
    e.g. Keras's ``weight_names``) are inconsistent, before HDF5 parses them: HDF5 allocates a
    collection as large as its header claims, and loops forever on a chain of heap objects
    that does not end where the collection does (a flipped bit in an object's size). Each
    collection must lie inside the file and its objects must exactly fill it."""
    handle.seek(0, io.SEEK_END)
    file_size = handle.tell()
    offset, tail = 0, b""
    while offset < file_size:
        handle.seek(offset)
        block = tail + handle.read(_SCAN_BLOCK)
        start = offset - len(tail)
        hit = block.find(GLOBAL_HEAP_SIGNATURE)
        while hit >= 0:
            _check_collection(handle, start + hit, file_size, what)
            hit = block.find(GLOBAL_HEAP_SIGNATURE, hit + 1)
        offset += _SCAN_BLOCK
        tail = block[-(len(GLOBAL_HEAP_SIGNATURE) - 1) :]


def _check_collection(handle: IO[bytes], address: int, file_size: int, what: str) -> None:
    """One global heap collection at `address` (8-byte lengths, as h5py/Keras write): version
    1, a size inside the file, objects (16-byte header, data padded to 8) that end exactly at
    the collection's end or in a free-space object (index 0) that does."""
    handle.seek(address)
    header = handle.read(16)
    if len(header) < 16 or header[4] != 1:
        return  # not a collection header (the bytes "GCOL" inside some data)
    size = int.from_bytes(header[8:16], "little")
    end = address + size
    bad = f"{what}: corrupt HDF5 global heap at byte {address:,}"
    if size < 16 or end > file_size:
        raise ModelFileError(f"{bad} (it declares {size:,} bytes, the file has {file_size:,})")
    handle.seek(address + 16)
    objects = handle.read(size - 16)
    position = 0
    while position + 16 <= len(objects):
        index = int.from_bytes(objects[position : position + 2], "little")
        object_size = int.from_bytes(objects[position + 8 : position + 16], "little")
        if index == 0:  # free space: the rest of the collection, header included
            if position + object_size != len(objects):
                raise ModelFileError(f"{bad} (its free space does not end with it)")
            return
        position += 16 + (object_size + 7) // 8 * 8
    if position > len(objects):
        raise ModelFileError(f"{bad} (an object runs past its end)")


def close_quietly(f: h5py.File) -> None:
    try:
        f.close()
    except Exception:  # noqa: BLE001 - closing a broken file must not mask the real error
        pass


@contextmanager
def h5_errors(what: str) -> Iterator[None]:
    """Around h5py calls only: a corrupt file's HDF5 error becomes a `ModelFileError`."""
    try:
        yield
    except _H5_ERRORS as exc:
        raise ModelFileError(
            f"{what}: corrupt or unexpected HDF5 content ({_h5_reason(exc)})"
        ) from None


def _h5_reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]


def _decode(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.ndarray):
        return [_decode(v) for v in value.tolist()]
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def read_attr(node: h5py.HLObject, name: str, what: str, limits: Limits = DEFAULT_LIMITS) -> Any:
    """An attribute, after its declared size was checked (h5py allocates it before reading)."""
    attr = h5py.h5a.open(node.id, name.encode())
    nbytes = element_count(attr.shape or ()) * attr.dtype.itemsize
    if nbytes > limits.max_config_bytes:
        raise ModelFileError(
            f"{what}: attribute '{name}' declares {nbytes:,} bytes, more than the limit of "
            f"{limits.max_config_bytes:,}"
        )
    if not attr.dtype.hasobject:
        return node.attrs[name]
    # A variable-length string's length is stored beside it (32 bits), and HDF5 allocates
    # that many bytes before it compares them with the heap object: a flipped bit asks for
    # gigabytes. Cap the address space while it reads, so that allocation fails instead.
    with _address_space_cap(4 * limits.max_config_bytes + _VLEN_HEADROOM):
        return node.attrs[name]


#: Address space a variable-length attribute read may add beyond its declared size
#: (HDF5's conversion buffers and heap collections; a new malloc arena reserves 64 MiB).
_VLEN_HEADROOM = 512 << 20


_ADDRESS_SPACE_LOCK = threading.Lock()


@contextmanager
def _address_space_cap(headroom: int) -> Iterator[None]:
    """Let the block grow this process's address space by at most `headroom` bytes
    (RLIMIT_AS, restored afterwards); a no-op where the limit cannot be read or is lower.
    One thread at a time: the limit is per process, and two interleaved restores would
    leave one thread's cap in place."""
    with _ADDRESS_SPACE_LOCK:
        with _address_space_cap_unlocked(headroom):
            yield


@contextmanager
def _address_space_cap_unlocked(headroom: int) -> Iterator[None]:
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        with open("/proc/self/statm", "rb") as statm:
            in_use = int(statm.read().split()[0]) * resource.getpagesize()
    except (OSError, ValueError, IndexError):
        yield
        return
    cap = in_use + headroom
    unlimited = resource.RLIM_INFINITY
    if (soft != unlimited and soft <= cap) or (hard != unlimited and hard < cap):
        yield
        return
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def string_list_attr(
    node: h5py.Group, name: str, what: str, limits: Limits = DEFAULT_LIMITS
) -> list[str] | None:
    """A list-of-strings attribute, also when Keras split it into ``name0``, ``name1``, ..."""
    if name in node.attrs:
        raw = _as_list(read_attr(node, name, what, limits))
    elif f"{name}0" in node.attrs:
        raw, chunk = [], 0
        while f"{name}{chunk}" in node.attrs:
            raw.extend(_as_list(read_attr(node, f"{name}{chunk}", what, limits)))
            chunk += 1
            if len(raw) > limits.max_config_bytes // 8:
                raise ModelFileError(f"{what}: attribute '{name}' lists too many names")
    else:
        return None
    values = _decode(raw)
    if not all(isinstance(v, str) for v in values):
        raise ModelFileError(f"{what}: attribute '{name}' is not a list of strings")
    return values


def _as_list(raw: Any) -> list[Any]:
    if isinstance(raw, np.ndarray):
        return list(raw.reshape(-1))
    if isinstance(raw, list | tuple):
        return list(raw)
    return [raw]


def has_link(group: h5py.Group, name: str) -> bool:
    """``name in group`` without following the link (``in`` would open an external file)."""
    return group.get(name, getlink=True) is not None


def _resolve(group: h5py.Group, path: str, what: str) -> Any:
    """``group[path]`` following hard links only (no external/soft links out of the file),
    None if a part is missing."""
    node: Any = group
    for part in [p for p in path.split("/") if p]:
        if not isinstance(node, h5py.Group):
            return None
        link = node.get(part, getlink=True)
        if link is None:
            return None
        if not isinstance(link, h5py.HardLink):
            kind = type(link).__name__
            article = "an" if kind[0] in "AEIOU" else "a"
            target = getattr(link, "filename", None) or getattr(link, "path", None)
            raise ModelFileError(
                f"{what}: '{path}' is {article} {kind}"
                + (f" to '{target}'" if target else "")
                + "; a model file may only hold its data itself (only hard links are followed)"
            )
        node = node[part]
    return node


# ---------------------------------------------------------------------------------------
# datasets: checked before they are read
# ---------------------------------------------------------------------------------------
def check_dataset(node: Any, what: str) -> h5py.Dataset:
    """Refuse, before reading, a dataset whose data is not plain numbers stored in the file."""
    if not isinstance(node, h5py.Dataset):
        raise ModelFileError(f"{what} is a {type(node).__name__}, expected a dataset")
    plist = node.id.get_create_plist()
    if plist.get_layout() == h5d.VIRTUAL:
        raise ModelFileError(
            f"{what} is a virtual dataset (it maps data of other files); a model file may only "
            "hold its data itself"
        )
    if plist.get_external_count() > 0:
        names = [_decode(plist.get_external(i)[0]) for i in range(plist.get_external_count())]
        raise ModelFileError(
            f"{what} stores its data in external file(s) {', '.join(map(repr, names))}; a model "
            "file may only hold its data itself"
        )
    for index in range(plist.get_nfilters()):
        code, _flags, _values, name = plist.get_filter(index)
        if code not in DECODED_FILTERS:
            raise ModelFileError(
                f"{what} is stored through HDF5 filter {code} ({_decode(name) or 'a plugin'}); "
                f"supported: no filter, {', '.join(DECODED_FILTERS.values())}"
            )
    dtype = node.dtype
    if dtype.kind not in "fiub" or dtype.fields is not None or dtype.subdtype is not None:
        raise ModelFileError(f"{what} has dtype {dtype}, expected numbers")
    return node


@dataclass(frozen=True, eq=False)
class StoredArray:
    """A dataset of a weights file, found but not read yet. Its declared ``shape`` is compared
    with the model config before `read`, which checks the layout, dtype and size first."""

    node: h5py.Dataset
    what: str

    @property
    def shape(self) -> tuple[int, ...]:
        with h5_errors(self.what):
            return tuple(int(d) for d in self.node.shape)

    @property
    def itemsize(self) -> int:
        with h5_errors(self.what):
            return int(self.node.dtype.itemsize)

    def read(self, limits: Limits = DEFAULT_LIMITS) -> np.ndarray:
        with h5_errors(self.what):
            node = check_dataset(self.node, self.what)
            check_bytes(element_count(node.shape) * node.dtype.itemsize, limits, self.what)
            if node.id.get_create_plist().get_nfilters():
                data = _read_filtered(node, self.what)
            else:
                data = np.asarray(node[()])
        return (
            data.astype(np.float32) if data.dtype.kind == "f" and data.dtype.itemsize < 4 else data
        )


def _read_filtered(node: h5py.Dataset, what: str) -> np.ndarray:
    """A compressed dataset decoded here, chunk by chunk, never past its declared size."""
    plist = node.id.get_create_plist()
    filters = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
    chunk_shape = tuple(node.chunks)
    chunk_bytes = element_count(chunk_shape) * node.dtype.itemsize
    count = node.id.get_num_chunks()
    if count > MAX_CHUNKS:
        raise ModelFileError(
            f"{what} is stored in {count:,} chunks (supported: up to {MAX_CHUNKS:,})"
        )
    out = np.full(node.shape, node.fillvalue, dtype=node.dtype)
    for index in range(count):
        offset = tuple(node.id.get_chunk_info(index).chunk_offset)
        mask, raw = node.id.read_direct_chunk(offset)
        data = _decode_chunk(bytes(raw), filters, mask, chunk_bytes, node.dtype.itemsize, what)
        block = np.frombuffer(data, dtype=node.dtype).reshape(chunk_shape)
        region = tuple(
            slice(o, min(o + c, d)) for o, c, d in zip(offset, chunk_shape, node.shape, strict=True)
        )
        if any(r.start >= r.stop for r in region):
            raise ModelFileError(f"{what}: a chunk at {offset} lies outside its shape {node.shape}")
        out[region] = block[tuple(slice(0, r.stop - r.start) for r in region)]
    return out


def _decode_chunk(
    data: bytes, filters: list[int], mask: int, chunk_bytes: int, itemsize: int, what: str
) -> bytes:
    """Undo a chunk's filters (last applied first); output bounded by the chunk size."""
    for index in reversed(range(len(filters))):
        if mask & (1 << index):  # this filter was skipped for this chunk
            continue
        code = filters[index]
        if code == h5z.FILTER_FLETCHER32:
            data = data[:-4]  # the checksum
        elif code == h5z.FILTER_DEFLATE:
            inflater = zlib.decompressobj()
            try:
                inflated = inflater.decompress(data, chunk_bytes)
            except zlib.error as exc:
                raise ModelFileError(f"{what}: corrupt compressed chunk ({exc})") from None
            if inflater.unconsumed_tail or not inflater.eof:
                raise ModelFileError(
                    f"{what}: a compressed chunk inflates past its declared {chunk_bytes:,} bytes"
                )
            data = inflated
        elif code == h5z.FILTER_SHUFFLE and itemsize > 1 and len(data) % itemsize == 0:
            planes = np.frombuffer(data, dtype=np.uint8).reshape(itemsize, -1)
            data = planes.T.tobytes()
    if len(data) != chunk_bytes:
        raise ModelFileError(
            f"{what}: a chunk holds {len(data):,} bytes once decoded, expected {chunk_bytes:,}"
        )
    return data


def weight_short_name(weight_name: str) -> str:
    """``"conv1/kernel:0"`` -> ``"kernel"``; ``"cbn/batch_normalization/gamma:0"`` -> ``"gamma"``."""
    return re.sub(r":\d+$", "", weight_name.rsplit("/", 1)[-1])


# ---------------------------------------------------------------------------------------
# Keras 2 HDF5
# ---------------------------------------------------------------------------------------
def model_config_from_h5(
    f: h5py.File, what: str, limits: Limits = DEFAULT_LIMITS
) -> dict[str, Any] | None:
    """The ``model_config`` JSON of a full-model file (None for a weights-only file)."""
    with h5_errors(what):
        if "model_config" not in f.attrs:
            return None
        raw = _decode(read_attr(f, "model_config", what, limits))
    if not isinstance(raw, str):
        raise ModelFileError(f"{what}: attribute 'model_config' is not a JSON string")
    if len(raw) > limits.max_config_bytes:
        raise ModelFileError(
            f"{what}: attribute 'model_config' holds {len(raw):,} characters, more than the "
            f"limit of {limits.max_config_bytes:,}"
        )
    return parse_json(raw, what, limits)


class LayerWeightIndex(Mapping[str, Mapping[str, StoredArray]]):
    """Layer name -> its weights by short name, of a Keras 2 HDF5 file. A layer's group is
    looked up only when asked for; nothing is read until `StoredArray.read`."""

    def __init__(self, root: h5py.Group, names: list[str], what: str, limits: Limits):
        self.root, self.names, self.what = root, list(dict.fromkeys(names)), what
        self.limits = limits
        self._cache: dict[str, dict[str, StoredArray]] = {}

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, layer: str) -> Mapping[str, StoredArray]:
        if layer not in self._cache:
            if layer not in self.names:
                raise KeyError(layer)
            with h5_errors(self.what):
                self._cache[layer] = self._layer(layer)
        return self._cache[layer]

    def nested(self, model: str, layer: str) -> dict[str, StoredArray]:
        """The weights of layer ``layer`` of nested model ``model`` (a Sequential or
        Functional used as a layer, outermost): those of ``model``'s group whose path names
        the layer (Keras 2: ``<layer>/kernel:0``; Keras 3: ``<model>/<layer>/kernel``, or
        ``<model>/<inner model>/<layer>/kernel`` deeper, a Functional's ``<layer>/kernel``)."""
        key = f"{model}\0{layer}"
        if key not in self._cache:
            if model not in self.names:
                return {}
            with h5_errors(self.what):
                self._cache[key] = self._layer(model, layer)
        return self._cache[key]

    def _layer(self, layer: str, owner: str | None = None) -> dict[str, StoredArray]:
        """Layer ``layer``'s weights by short name (``owner``: only those whose path names
        that layer of the nested model ``layer``)."""
        group = _resolve(self.root, layer, self.what)
        if not isinstance(group, h5py.Group):
            raise ModelFileError(f"{self.what}: layer '{layer}' is listed but has no weight group")
        names = (
            string_list_attr(group, "weight_names", f"{self.what}: layer '{layer}'", self.limits)
            or []
        )
        if len(names) > MAX_LAYER_VARIABLES:
            raise ModelFileError(
                f"{self.what}: layer '{layer}' lists {len(names)} weights (a layer has at most "
                f"{MAX_LAYER_VARIABLES})"
            )
        weights: dict[str, StoredArray] = {}
        for name in names:
            if owner is not None and owner not in name.split("/")[:-1]:
                continue
            where = f"{self.what}: weight '{layer}/{name}'"
            node = _resolve(group, name, where)
            if node is None:
                raise ModelFileError(
                    f"{self.what}: layer '{layer}' lists weight '{name}' but the file has no such dataset"
                )
            short = weight_short_name(name)
            if short in weights:
                raise ModelFileError(
                    f"{self.what}: layer '{layer}' has two weights named '{short}'"
                )
            weights[short] = StoredArray(check_dataset(node, where), where)
        return weights


def weights_from_h5(f: h5py.File, what: str, limits: Limits = DEFAULT_LIMITS) -> LayerWeightIndex:
    """Weights by layer name, each by short name (``kernel``, ``bias``, ``gamma`` ...),
    indexed lazily."""
    with h5_errors(what):
        root: Any = f
        if has_link(f, "model_weights"):
            root = _resolve(f, "model_weights", what)
            if not isinstance(root, h5py.Group):
                raise ModelFileError(f"{what}: 'model_weights' is not a group")
        layer_names = string_list_attr(root, "layer_names", what, limits)
    if layer_names is None:
        raise ModelFileError(
            f"{what}: no Keras weights found (no 'layer_names' attribute): expected a Keras 2 "
            "HDF5 file written by model.save('m.h5') or model.save_weights('w.h5')"
        )
    return LayerWeightIndex(root, layer_names, what, limits)


def parse_json(text: str | bytes, what: str, limits: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    if len(text) > limits.max_config_bytes:
        raise ModelFileError(
            f"{what}: {len(text):,} bytes is more than the limit of {limits.max_config_bytes:,} "
            "for a model config"
        )
    data = _loads(text, what, limits, "not valid JSON")
    if isinstance(data, str):
        # A JSON string holding the model JSON (``json.dump(model.to_json(), f)``, as the QKeras
        # zoo's files are): decoded once more, never further; the inner text is shorter than
        # the file, so the same size limit holds.
        data = _loads(data, what, limits, "a JSON string that does not hold valid model JSON")
    check_depth(data, limits, what)
    if not isinstance(data, dict):
        raise ModelFileError(f"{what}: expected a JSON object with 'class_name' and 'config'")
    return data


def _loads(text: str | bytes, what: str, limits: Limits, problem: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        if isinstance(exc, RecursionError):
            reason = f"nested too deeply (limit {limits.max_config_depth} levels)"
        raise ModelFileError(f"{what}: {problem} ({reason})") from None


def read_json_file(path: Path, what: str, limits: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            text = handle.read(limits.max_config_bytes + 1)
    except OSError as exc:
        raise ModelFileError(f"{what}: cannot read ({exc.strerror or exc})") from None
    return parse_json(text, what, limits)


# ---------------------------------------------------------------------------------------
# .keras archives
# ---------------------------------------------------------------------------------------
def _bounded_member(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int, out: IO[bytes], what: str
) -> None:
    """Inflate one member into ``out``, stopping at ``limit`` bytes whatever its header says."""
    if info.file_size > limit:
        raise ModelFileError(
            f"{what}: {info.filename} inflates to {info.file_size:,} bytes, more than the limit "
            f"of {limit:,}"
        )
    if info.file_size > (16 << 20) and info.file_size > MAX_INFLATE_RATIO * max(
        info.compress_size, 1
    ):
        raise ModelFileError(
            f"{what}: {info.filename} claims to inflate {info.compress_size:,} bytes to "
            f"{info.file_size:,} (more than {MAX_INFLATE_RATIO}:1): not a genuine weights file"
        )
    written = 0
    with archive.open(info) as member:
        while True:
            chunk = member.read(1 << 20)
            if not chunk:
                break
            written += len(chunk)
            if written > limit:
                raise ModelFileError(
                    f"{what}: {info.filename} inflates to more than the limit of {limit:,} bytes"
                )
            out.write(chunk)


def open_keras_archive(
    path: Path, what: str, files: ExitStack, limits: Limits = DEFAULT_LIMITS
) -> tuple[dict[str, Any], IndexedVariables]:
    """(model config, lazy ``layers/<snake>`` -> variables) of a ``.keras`` zip. The weights
    file is inflated (through the byte limit) into a spooled temporary file kept open in
    ``files``."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = {info.filename: info for info in archive.infolist()}
            for name in ("config.json", "model.weights.h5"):
                # Two members of one name: unzip tools disagree on which one counts.
                if sum(info.filename == name for info in archive.infolist()) > 1:
                    raise ModelFileError(f"{what}: .keras archive with two members '{name}'")
            if "config.json" not in members:
                raise ModelFileError(f"{what}: .keras archive without config.json")
            text = io.BytesIO()
            _bounded_member(archive, members["config.json"], limits.max_config_bytes, text, what)
            config = parse_json(text.getvalue(), f"{what} (config.json)", limits)
            if "model.weights.h5" not in members:
                raise ModelFileError(f"{what}: .keras archive without model.weights.h5")
            # In memory up to 64 MiB (every real model); beyond, an anonymous temporary file,
            # so a large member costs disk, not memory, and leaves nothing behind.
            blob = files.enter_context(tempfile.SpooledTemporaryFile(max_size=64 << 20))
            _bounded_member(archive, members["model.weights.h5"], limits.max_bytes, blob, what)
            blob.seek(0)
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        zlib.error,  # a corrupt deflate stream in a member
        OSError,
        EOFError,
        RuntimeError,
        ValueError,
        NotImplementedError,
    ) as exc:
        raise ModelFileError(
            f"{what}: not a readable .keras (zip) archive ({_h5_reason(exc)})"
        ) from None
    inner = f"{what} (model.weights.h5)"
    f = open_file(blob, inner)
    files.callback(close_quietly, f)
    return config, IndexedVariables(f, inner)


#: largest metadata.json / keras_version read (Keras writes ~60 bytes)
_MAX_METADATA_BYTES = 1 << 12


def _version_text(value: Any) -> str | None:
    value = _decode(value)
    return value if isinstance(value, str) and len(value) <= 40 else None


def keras_archive_version(path: Path, what: str) -> str | None:
    """The ``keras_version`` of a ``.keras`` archive's metadata.json; None when it has none
    (or an unreadable one: the version only tells which Keras wrote the file)."""
    try:
        with zipfile.ZipFile(path) as archive:
            info = next((i for i in archive.infolist() if i.filename == "metadata.json"), None)
            if info is None:
                return None
            text = io.BytesIO()
            _bounded_member(archive, info, _MAX_METADATA_BYTES, text, what)
        meta = json.loads(text.getvalue())
    except (
        ModelFileError,
        zipfile.BadZipFile,
        zlib.error,
        OSError,
        EOFError,
        ValueError,
        RecursionError,
    ):
        return None
    return _version_text(meta.get("keras_version")) if isinstance(meta, dict) else None


def h5_keras_version(f: h5py.File, what: str) -> str | None:
    """The root ``keras_version`` attribute of a Keras HDF5 file (None without one)."""
    with h5_errors(what):
        if "keras_version" not in f.attrs:
            return None
        limits = Limits(max_config_bytes=_MAX_METADATA_BYTES)
        try:
            return _version_text(read_attr(f, "keras_version", what, limits))
        except ModelFileError:
            return None


def is_indexed_weights_file(f: h5py.File) -> bool:
    """A ``.weights.h5`` file in the newer layout (Keras >= 2.13 ``save_weights("w.weights.h5")``,
    the ``model.weights.h5`` of a ``.keras`` archive): ``layers/...`` groups, no ``layer_names``."""
    return (
        "layer_names" not in f.attrs and not has_link(f, "model_weights") and has_link(f, "layers")
    )


class IndexedVariables:
    """``layers/<snake class>[_N]`` -> its variables in order, of the newer weights layout,
    looked up when asked for (datasets of layers the model does not have are never read)."""

    def __init__(self, f: h5py.File, what: str):
        self.f, self.what = f, what

    def get(self, path: str, default: list[StoredArray]) -> list[StoredArray]:
        with h5_errors(self.what):
            group = _resolve(self.f, f"{path}/vars", self.what)
            if not isinstance(group, h5py.Group):
                return default
            count = len(group)
            if count > MAX_LAYER_VARIABLES:
                raise ModelFileError(
                    f"{self.what}: '{path}/vars' holds {count} variables (a layer has at most "
                    f"{MAX_LAYER_VARIABLES})"
                )
            arrays = []
            for index in range(count):
                where = f"{self.what}: {path}/vars/{index}"
                node = _resolve(group, str(index), where)
                if node is None:
                    raise ModelFileError(f"{self.what}: {path}/vars has no variable {index}")
                arrays.append(StoredArray(check_dataset(node, where), where))
            return arrays


def sniff(path: Path, what: str) -> str:
    """'hdf5', 'zip' or 'json' from the file's first bytes."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
    except OSError as exc:
        raise ModelFileError(f"{what}: cannot read ({exc.strerror or exc})") from None
    if head.startswith(HDF5_MAGIC):
        return "hdf5"
    if head.startswith(ZIP_MAGIC):
        return "zip"
    return "json"
