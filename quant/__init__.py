"""rtlgen.quant: fixed-point types, QKeras quantizer semantics and the bit-exact integer reference."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import ModelFileError, RtlgenError, UnsupportedError

if TYPE_CHECKING:
    from .fixed import FixedType, Overflow, Rounding, fit, requantize, shift_round

__all__ = [
    "FixedType",
    "Rounding",
    "Overflow",
    "fit",
    "requantize",
    "shift_round",
    "RtlgenError",
    "UnsupportedError",
    "ModelFileError",
]

# `rtlgen` imports the error types from here; the names of `rtlgen.quant.fixed` (and numpy
# with it) load on first use, so `import rtlgen` and `rtlgen --help` do not pay for numpy.
_FIXED_NAMES = frozenset({"FixedType", "Rounding", "Overflow", "fit", "requantize", "shift_round"})


def __getattr__(name: str) -> Any:
    if name in _FIXED_NAMES:
        from . import fixed

        return getattr(fixed, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_FIXED_NAMES})
