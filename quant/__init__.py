"""rtlgen.quant: fixed-point types, QKeras quantizer semantics and the bit-exact integer reference."""

from .errors import ModelFileError, RtlgenError, UnsupportedError
from .fixed import FixedType, Overflow, Rounding, fit, requantize, shift_round

__all__ = [
    "FixedType", "Rounding", "Overflow", "fit", "requantize", "shift_round",
    "RtlgenError", "UnsupportedError", "ModelFileError",
]
