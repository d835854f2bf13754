"""`Multiplier`: how a constant product is built, a hardware option (`rtlgen.plan`) that
needs no Amaranth (the commands that only read a model, `inspect` and `predict`, never
import it)."""

from enum import StrEnum


class Multiplier(StrEnum):
    """How a constant product is built: ``DSP`` a ``*`` that synthesis maps to a DSP block,
    ``LUT`` a canonical-signed-digit shift-and-add (no DSP), ``AUTO`` by the operand widths.
    (A `StrEnum`: its members equal their names' strings, as the manifest writes them.)"""

    AUTO = "auto"
    DSP = "dsp"
    LUT = "lut"
