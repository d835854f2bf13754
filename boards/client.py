"""Host side of the board protocol: run samples on a board built by `build_bitstream`.

Needs `pyserial` (imported only when a port name is given). The framing itself lives in
`rtlgen.boards.protocol` and is re-exported here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from rtlgen.quant.errors import RtlgenError

from .manifest import Manifest, load_manifest
from .protocol import decode_response, encode_request, response_length

__all__ = ["run_on_board", "encode_request", "decode_response", "open_serial"]


class ByteLink(Protocol):
    """What `run_on_board` needs of a port: a `serial.Serial` has these."""

    def write(self, data: bytes, /) -> int | None: ...

    def read(self, size: int, /) -> bytes: ...


def open_serial(port: str, baud: int = 115200, timeout_s: float = 5.0) -> ByteLink:
    """Open `port` (e.g. /dev/ttyUSB0) 8N1 with pyserial; one-line error if that fails."""
    try:
        import serial  # type: ignore[import-untyped]
    except ImportError:
        raise RtlgenError(
            "running on a board needs pyserial, which is not installed: pip install pyserial"
        ) from None
    try:
        return serial.Serial(port, baudrate=baud, timeout=timeout_s)
    except (serial.SerialException, ValueError) as error:
        raise RtlgenError(f"cannot open serial port '{port}': {error}") from None


def run_on_board(
    port: str | ByteLink,
    x_int: np.ndarray,
    manifest: Manifest | str | Path,
    *,
    baud: int = 115200,
    timeout_s: float = 5.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Send samples to the board one at a time; return `(classes, outputs)`.

    `x_int`: int mantissas of shape `(N, *input.shape)` (or one sample of `input.shape`).
    `manifest`: a `Manifest` or the OUTDIR it comes from. `port`: a device name, opened at
    `baud` with pyserial, or an already open object with `read(n)`/`write(b)`.
    Returns int64 `classes` of shape (N,) and `outputs` of shape `(N, *output.shape)`.
    """
    if not isinstance(manifest, Manifest):
        manifest = load_manifest(manifest)
    samples = np.asarray(x_int)
    if samples.shape == manifest.input.shape:
        samples = samples[np.newaxis]
    if samples.shape[1:] != manifest.input.shape:
        raise RtlgenError(
            f"x_int has shape {samples.shape}; expected (N, {', '.join(map(str, manifest.input.shape))})"
        )
    link = open_serial(port, baud, timeout_s) if isinstance(port, str) else port
    length = response_length(manifest)
    classes = np.zeros(len(samples), dtype=np.int64)
    outputs = np.zeros((len(samples), *manifest.output.shape), dtype=np.int64)
    try:
        if hasattr(link, "reset_input_buffer"):
            link.reset_input_buffer()  # drop bytes left over from an earlier, aborted exchange
        for index, sample in enumerate(samples):
            link.write(encode_request(sample, manifest))
            response = link.read(length)
            if len(response) < length:
                raise RtlgenError(
                    f"board answered sample {index} with {len(response)} of {length} bytes "
                    f"within {timeout_s} s (is it programmed with '{manifest.top}' and at {baud} baud?)"
                )
            classes[index], outputs[index] = decode_response(response, manifest)
    finally:
        if isinstance(port, str):
            link.close()  # type: ignore[attr-defined]
    return classes, outputs
