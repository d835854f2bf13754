"""Reading ``.npy`` data (a file, or a member of an ``.npz`` archive) without trusting it.

``np.load`` allocates whatever the header declares before it finds out that the file is
short: a 100-byte ``.npy`` declaring (10**9, 4) costs 30 GiB. Here the header is read
first, the dtype and declared size are checked against what the file really holds and
against `Limits`, and only then are the bytes read. No pickle, ever.
"""

from __future__ import annotations

import tokenize
from typing import IO

import numpy as np

try:  # numpy >= 2 keeps the version-dispatching header reader (3.0, invalid versions) here
    from numpy.lib._format_impl import _read_array_header
except ImportError:  # numpy 1.x
    from numpy.lib.format import _read_array_header

from rtlgen.quant.errors import RtlgenError

from .limits import Limits, element_count

#: dtype kinds of plain numbers (bool, signed, unsigned, float); complex, timedelta,
#: datetime, bytes, strings, objects and structured (void) arrays are refused.
NUMERIC_KINDS = "biuf"
_CHUNK = 1 << 20


def describe_dtype(dtype: np.dtype) -> str:
    """``complex (complex64)``, ``structured ([('a', '<f4')])``, ``float64`` ..."""
    if dtype.fields is not None or dtype.subdtype is not None:
        return f"structured ({dtype})"
    names = {
        "c": "complex",
        "m": "timedelta",
        "M": "datetime",
        "O": "object",
        "S": "bytes",
        "U": "string",
        "V": "void",
        "b": "bool",
    }
    return f"{names[dtype.kind]} ({dtype})" if dtype.kind in names else str(dtype)


def _supported(kinds: str) -> str:
    names = {"b": "bool", "i": "integer", "u": "unsigned", "f": "float", "U": "string"}
    return ", ".join(names[k] for k in kinds if k in names)


def read_npy(
    fp: IO[bytes],
    available: int,
    what: str,
    limits: Limits,
    kinds: str = NUMERIC_KINDS,
    error: type[RtlgenError] = RtlgenError,
) -> np.ndarray:
    """The array of an open ``.npy`` stream positioned at its start.

    ``available``: bytes the stream holds in total (file size, archive member size).
    Raises ``error`` (one line naming ``what``) for anything but a plain numeric array
    whose declared size fits both the stream and ``limits``.
    """
    try:
        version = np.lib.format.read_magic(fp)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
        else:
            shape, fortran, dtype = _read_array_header(fp, version)
    except (
        ValueError,
        OSError,
        EOFError,
        SyntaxError,
        TypeError,
        tokenize.TokenError,  # numpy tokenizes the header (an unclosed bracket)
        RecursionError,
    ) as exc:
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise error(f"{what}: not a readable .npy array ({reason})") from None
    if (
        dtype.hasobject
        or dtype.fields is not None
        or dtype.subdtype is not None
        or dtype.kind not in kinds
    ):
        raise error(
            f"{what}: holds {describe_dtype(dtype)} values; supported dtypes: {_supported(kinds)}"
        )
    if any(not isinstance(d, int) or d < 0 for d in shape):
        raise error(f"{what}: its header declares an invalid shape {shape!r}")
    count = element_count(shape)
    nbytes = count * dtype.itemsize
    if nbytes > limits.max_bytes:
        raise error(
            f"{what}: its header declares shape {tuple(shape)} ({nbytes:,} bytes), more than the "
            f"limit of {limits.max_bytes:,} bytes"
        )
    left = available - fp.tell()
    if nbytes > left:
        raise error(
            f"{what}: truncated: its header declares shape {tuple(shape)} ({nbytes:,} bytes) but "
            f"the file holds {max(left, 0):,} bytes of data"
        )
    buffer = bytearray(nbytes)
    view = memoryview(buffer)
    filled = 0
    try:
        while filled < nbytes:
            chunk = fp.read(min(_CHUNK, nbytes - filled))
            if not chunk:
                break
            view[filled : filled + len(chunk)] = chunk
            filled += len(chunk)
    except (OSError, EOFError, ValueError) as exc:
        raise error(f"{what}: cannot read the array data ({exc})") from None
    if filled < nbytes:
        raise error(f"{what}: truncated: {filled:,} of {nbytes:,} bytes of array data")
    array = np.frombuffer(buffer, dtype=dtype, count=count)
    return array.reshape(shape, order="F" if fortran else "C")
