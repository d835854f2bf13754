"""Canonical signed-digit (CSD) decomposition of integer constants.

A constant multiplication ``x * c`` becomes a sum of shifted copies of ``x``, one per
non-zero CSD digit of ``c``. CSD has the fewest non-zero digits of any signed-binary form
(no two adjacent digits are non-zero), so it needs the fewest adders: ``c`` with ``d``
non-zero digits costs ``d - 1`` adders; ``+-2**k`` costs none (a wire/shift).
"""

from __future__ import annotations

from typing import NamedTuple


class Digit(NamedTuple):
    """One non-zero digit: ``sign * 2**shift``."""

    shift: int
    sign: int  # +1 or -1


def csd_digits(value: int) -> list[Digit]:
    """The non-zero CSD digits of ``value``, lowest first; ``sum(sign << shift) == value``.

    >>> csd_digits(7)
    [Digit(shift=0, sign=-1), Digit(shift=3, sign=1)]
    """
    value = int(value)
    digits: list[Digit] = []
    shift = 0
    while value != 0:
        if value & 1:
            # The digit that leaves a multiple of 4: +1 if value = 1 (mod 4), -1 if 3 (mod 4).
            sign = 2 - (value & 3)
            digits.append(Digit(shift, sign))
            value -= sign
        value >>= 1
        shift += 1
    return digits


def csd_weight(value: int) -> int:
    """Number of non-zero CSD digits (0 for 0, 1 for +-2**k)."""
    return len(csd_digits(value))


def odd_part(value: int) -> tuple[int, int]:
    """``(odd, shift)`` with ``abs(value) == odd << shift`` (``(0, 0)`` for 0)."""
    magnitude = abs(int(value))
    if magnitude == 0:
        return 0, 0
    shift = (magnitude & -magnitude).bit_length() - 1
    return magnitude >> shift, shift
