"""Vivado packaging and open-toolchain board builds, from OUTDIR's files only.

- `write_vivado(outdir, part | board=...)`: `OUTDIR/vivado/` scripts (build, IP packaging).
- `build_bitstream(outdir, board="ulx3s-25f")`: an ECP5 bitstream with the network behind a UART.
- `run_on_board(port, x_int, outdir)`: the host side of that UART protocol (needs pyserial).
"""

from .client import run_on_board
from .ecp5 import ECP5_BOARDS, BuildResult, Ecp5Board, build_bitstream, ecp5_board
from .manifest import Manifest, StreamPort, load_manifest
from .protocol import decode_response, encode_request
from .vivado import VIVADO_BOARDS, VivadoBoard, check_part, vivado_board, write_vivado

__all__ = [
    "write_vivado",
    "VivadoBoard",
    "VIVADO_BOARDS",
    "vivado_board",
    "check_part",
    "build_bitstream",
    "BuildResult",
    "Ecp5Board",
    "ECP5_BOARDS",
    "ecp5_board",
    "run_on_board",
    "encode_request",
    "decode_response",
    "Manifest",
    "StreamPort",
    "load_manifest",
]
