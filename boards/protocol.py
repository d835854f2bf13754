"""The UART request/response framing between a host and a board running a network.

Request (host -> board): `REQUEST_HEADER`, then the sample's input beats in order, each beat's
`tdata` as `beat_bytes(input)` bytes, little-endian, padding bits zero.
Response (board -> host): `RESPONSE_HEADER`, the class index (`m_axis_tuser` of the last
output beat) as `class_bytes` bytes little-endian, then the output beats' `tdata` bytes the
same way. One request is answered by exactly one response; requests are not pipelined.

Beats are the sample reshaped to `(beats_per_sample, elements_per_beat)` in C order; element i
of a beat is at bits [i*w, (i+1)*w), two's complement when the type is signed (docs/DESIGN.md).
The gateware (`rtlgen.boards.bridge`) and the host (`rtlgen.boards.client`) both use this module.
"""

from __future__ import annotations

import math

import numpy as np

from rtlgen.quant.errors import RtlgenError
from rtlgen.quant.fixed import FixedType

from .manifest import Manifest, StreamPort, beat_bytes

__all__ = [
    "REQUEST_HEADER",
    "RESPONSE_HEADER",
    "class_bytes",
    "request_length",
    "response_length",
    "pack_beats",
    "unpack_beats",
    "encode_request",
    "decode_response",
]

REQUEST_HEADER = 0xA5
RESPONSE_HEADER = 0x5A


def class_bytes(manifest: Manifest) -> int:
    """Bytes of the class field: enough for `tuser_width` bits, at least one."""
    return max(1, math.ceil(manifest.tuser_width / 8))


def request_length(manifest: Manifest) -> int:
    return 1 + manifest.input.beats_per_sample * beat_bytes(manifest.input)


def response_length(manifest: Manifest) -> int:
    return (
        1 + class_bytes(manifest) + manifest.output.beats_per_sample * beat_bytes(manifest.output)
    )


def pack_beats(sample: np.ndarray, port: StreamPort) -> bytes:
    """One sample of integer mantissas (shape `port.shape`) as the bytes of its beats."""
    sample = np.asarray(sample)
    if sample.shape != port.shape:
        raise RtlgenError(
            f"sample shape {sample.shape} differs from the network's input shape {port.shape}"
        )
    if not np.issubdtype(sample.dtype, np.integer):
        raise RtlgenError(f"sample must hold integer mantissas, found dtype {sample.dtype}")
    element = port.element
    element_type = FixedType(element.width, element.frac, element.signed)
    out_of_range = (sample < element_type.min_int) | (sample > element_type.max_int)
    if out_of_range.any():
        index = tuple(int(i) for i in np.argwhere(out_of_range)[0])
        raise RtlgenError(
            f"input element {index} = {int(sample[index])} does not fit the input type "
            f"{element_type} (range {element_type.min_int}..{element_type.max_int})"
        )
    return b"".join(word.to_bytes(beat_bytes(port), "little") for word in port.pack(sample))


def unpack_beats(data: bytes, port: StreamPort) -> np.ndarray:
    """Inverse of `pack_beats`: int64 mantissas of shape `port.shape`."""
    size = beat_bytes(port)
    expected = port.beats_per_sample * size
    if len(data) != expected:
        raise RtlgenError(f"expected {expected} bytes of beats, got {len(data)}")
    elements = [
        value
        for offset in range(0, expected, size)
        for value in port.unpack(int.from_bytes(data[offset : offset + size], "little"))
    ]
    return np.array(elements, dtype=np.int64).reshape(port.shape)


def encode_request(sample: np.ndarray, manifest: Manifest) -> bytes:
    """The request bytes for one input sample (integer mantissas of shape `input.shape`)."""
    return bytes([REQUEST_HEADER]) + pack_beats(sample, manifest.input)


def decode_response(data: bytes, manifest: Manifest) -> tuple[int, np.ndarray]:
    """`(class index, outputs)` from one response; outputs are int64 of shape `output.shape`."""
    expected = response_length(manifest)
    if len(data) != expected:
        raise RtlgenError(
            f"board response has {len(data)} bytes, expected {expected} for network "
            f"'{manifest.top}' (is the board running this network's bitstream?)"
        )
    if data[0] != RESPONSE_HEADER:
        raise RtlgenError(
            f"board response starts with 0x{data[0]:02X}, expected 0x{RESPONSE_HEADER:02X} "
            "(is the board running an rtlgen bitstream at this baud rate?)"
        )
    class_end = 1 + class_bytes(manifest)
    class_index = int.from_bytes(data[1:class_end], "little")
    return class_index, unpack_beats(data[class_end:], manifest.output)
