"""Shapes and small arithmetic expressions shared by the hardware blocks.

A tensor element of a `FixedType` is an Amaranth `signed(width)` / `unsigned(width)` value
holding its mantissa; a vector of n elements is `data.ArrayLayout(shape_of(t), n)` with
element 0 in the least significant bits.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Mux, Shape, Value, signed, unsigned
from amaranth.lib import data

from rtlgen.quant.fixed import FixedType, Rounding

from .multiplier import Multiplier  # noqa: F401  (its home before; without Amaranth there)


def shape_of(t: FixedType) -> Shape:
    """The Amaranth shape of one mantissa of ``t``."""
    return signed(t.width) if t.signed else unsigned(t.width)


def vector_layout(t: FixedType, n: int) -> data.ArrayLayout:
    """Payload layout of a vector of ``n`` elements of type ``t``."""
    return data.ArrayLayout(shape_of(t), n)


def value_range(shape: Shape) -> tuple[int, int]:
    """(min, max) integer an Amaranth shape can hold."""
    shape = Shape.cast(shape)
    if shape.signed:
        return -(1 << (shape.width - 1)), (1 << (shape.width - 1)) - 1
    return 0, (1 << shape.width) - 1


def saturate(value: Value, lo: int, hi: int, to: Shape, value_lo: int, value_hi: int) -> Value:
    """Clip ``value`` (known to lie in [value_lo, value_hi]) to [lo, hi], as shape ``to``.

    Comparisons that cannot fire for the known range produce no hardware.
    """
    value = Value.cast(value)
    result = value
    if value_hi > hi:
        result = Mux(value > hi, Const(hi, to), result)
    if value_lo < lo:
        result = Mux(value < lo, Const(lo, to), result)
    return resize(result, to)


def resize(value: Value, to: Shape) -> Value:
    """``value`` as shape ``to``: sign/zero-extended (by its own signedness) or truncated."""
    value = Value.cast(value)
    shape = value.shape()
    if shape.width < to.width:
        fill = value[-1] if shape.signed and shape.width else Const(0, 1)
        value = Cat(value, fill.replicate(to.width - shape.width))
    low = value[: to.width]
    return low.as_signed() if to.signed else low


def shift_round(value: Value, shift: int, rounding: Rounding) -> Value:
    """Hardware twin of `rtlgen.quant.fixed.shift_round`: ``value * 2**-shift`` rounded.

    ``shift`` <= 0 is an exact left shift. Convergent rounding: dropped bits greater than
    half round up, exactly half rounds up only when the kept LSB is 1.
    """
    value = Value.cast(value)
    if shift <= 0:
        return value << -shift
    shape = value.shape()
    if shape.width <= shift:  # every kept and dropped bit must exist: extend
        value = resize(value, Shape(shift + 1, shape.signed))
    floor = value >> shift  # arithmetic for signed values
    if rounding is Rounding.TRUNCATE:
        return floor
    rem = value.as_unsigned()[:shift]
    msb = rem[shift - 1]
    if rounding is Rounding.HALF_UP:
        return floor + msb
    below = rem[: shift - 1].any() if shift > 1 else Const(0, 1)
    return floor + (msb & (below | floor[0]))
