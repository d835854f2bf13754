"""The hardware of `rtlgen.ops.hgq2`'s nodes (Amaranth components), imported only when a
design is built: `ChannelQuantize` (a `FixedQuantize` node) and `ChannelTables` (a
`FunctionTable` node whose channels have different tables). Their contracts: the class
docstrings and `rtlgen.ops.hgq2`'s."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from rtlgen.layers import common
from rtlgen.layers.common import shape_of
from rtlgen.layers.lookup import LookupTable
from rtlgen.layers.requantize import _extend
from rtlgen.layers.stream_util import StageRegisters, pipeline_control
from rtlgen.quant.fixed import FixedType, Overflow

if TYPE_CHECKING:
    from rtlgen.ops.hgq2 import FixedQuantize


class ChannelQuantize(wiring.Component):
    """Rounding + saturation/wrap of one beat (one position, ``n`` channels) into
    `FixedQuantize`'s output type, bit-exact with `rtlgen.ops.hgq2.quantize_reference`.

    Widths that do not depend on the position are constant logic per channel. Widths per
    position (HGQ2's per-element default on an image or sequence): a position counter
    (advanced by each accepted beat, wrapping after the sample's last position) selects,
    per channel, among the distinct widths that channel has (each quantized in parallel).

    Contract: II = 1, latency 1 (one register stage), holds its output while ``o.ready`` is
    low. An element of width 0 is 0; saturation compares against constants.
    """

    def __init__(self, node: FixedQuantize, in_type: FixedType, n: int):
        assert node.out_type is not None
        self.node, self.in_type, self.out_type, self.n = node, in_type, node.out_type, n
        super().__init__(
            {
                "i": In(stream.Signature(data.ArrayLayout(shape_of(in_type), n))),
                "o": Out(stream.Signature(data.ArrayLayout(shape_of(node.out_type), n))),
            }
        )

    @property
    def latency(self) -> int:
        return 1

    def _quantized(self, x: Value, k: int, i: int, f: int) -> Value:
        """One element with widths (k, i, f), as ``out_type.width`` raw bits."""
        node, width = self.node, self.out_type.width
        bits = k + i + f
        if bits == 0:
            return Const(0, width)
        r = common.shift_round(x, self.in_type.frac - f, node.rounding)
        if node.overflow is Overflow.SATURATE:
            top = (1 << (i + f)) - 1
            low = -k * (top if node.symmetric else top + 1)
            r = Mux(r > top, top, Mux(r < low, low, r))
        else:
            kept = _extend(r, bits).as_unsigned()[:bits]
            r = kept.as_signed() if k else kept
        r = Value.cast(r) << (self.out_type.frac - f)
        return _extend(r, width).as_unsigned()[:width]

    def elaborate(self, platform):
        m = Module()
        advance = pipeline_control(m, self.i, self.o, 1)
        regs = StageRegisters(advance)
        k, i, f = self.node.widths()
        positions = k.shape[0]
        position = Signal(range(max(positions, 2)), name="position")
        if positions > 1:
            with m.If(self.i.valid & self.i.ready):
                m.d.sync += position.eq(Mux(position == positions - 1, 0, position + 1))
        results = []
        for c in range(self.n):
            combos = sorted({(int(k[p, c]), int(i[p, c]), int(f[p, c])) for p in range(positions)})
            values = [self._quantized(self.i.payload[c], *combo) for combo in combos]
            if len(values) == 1:
                results.append(values[0])
                continue
            index = {combo: j for j, combo in enumerate(combos)}
            select = Array(
                [
                    Const(index[(int(k[p, c]), int(i[p, c]), int(f[p, c]))], range(len(combos)))
                    for p in range(positions)
                ]
            )[position]
            results.append(Array(values)[select])
        out = regs.register(Cat(*results), name="quantized")
        regs.emit(m)
        m.d.comb += self.o.payload.eq(out)
        return m


class ChannelTables(wiring.Component):
    """``o[c] = tables[c][i[c] - in_type.min_int]``: a lookup per lane in its channel's own
    table; lanes with equal tables share `LookupTable`'s ROMs (two read ports each) or
    case statements.

    Contract: as `LookupTable`'s (II = 1, latency 1, holds under backpressure)."""

    latency = 1
    cycles_per_sample = 1

    def __init__(self, tables: np.ndarray, in_type: FixedType, out_type: FixedType):
        self.in_type, self.out_type = in_type, out_type
        self.groups: dict[bytes, list[int]] = {}
        for lane, row in enumerate(tables):
            self.groups.setdefault(row.tobytes(), []).append(lane)
        self.lookups = [
            (LookupTable(tables[lanes[0]], in_type, out_type, len(lanes)), lanes)
            for lanes in self.groups.values()
        ]
        n = tables.shape[0]
        super().__init__(
            {
                "i": In(stream.Signature(data.ArrayLayout(shape_of(in_type), n))),
                "o": Out(stream.Signature(data.ArrayLayout(shape_of(out_type), n))),
            }
        )

    def elaborate(self, platform):
        m = Module()
        advance = pipeline_control(m, self.i, self.o, 1)
        regs = StageRegisters(advance)
        width = shape_of(self.out_type).width
        values: dict[int, Value] = {}
        for index, (table, lanes) in enumerate(self.lookups):
            addresses = [Value.cast(self.i.payload[lane]).as_unsigned() for lane in lanes]
            found = table.lookups(m, addresses, advance, regs, prefix=f"table{index}_rom")
            values.update(zip(lanes, found, strict=True))
        regs.emit(m)
        out = Cat(*[Value.cast(values[lane]).as_unsigned()[:width] for lane in sorted(values)])
        m.d.comb += self.o.payload.eq(out)
        return m
