"""Elementwise activations in hardware: a ROM shared by the elements, or a compare-and-multiply.

`LookupTable` implements any table of `rtlgen.quant.activations.lookup_table` (`BypassTable`
skips it above a threshold, `SplitTable` looks inputs near 0 up in a finer second one);
`PiecewiseLinear` implements `rtlgen.quant.activations.LeakySpec` (LeakyReLU, PReLU, ReLU with
max_value / negative_slope / threshold) without a table, so it has no input width limit;
`PositionalPiecewiseLinear` the same with slopes that vary with the pixel position (PReLU
with an alpha per element).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from rtlgen.quant.activations import LeakySpec, check_table_input
from rtlgen.quant.errors import RtlgenError
from rtlgen.quant.fixed import FixedType, Overflow, Rounding

from .common import resize, shape_of, vector_layout
from .csd import csd_digits
from .requantize import Requantize
from .stream_util import StageRegisters, pipeline_control

#: Tables of at most this many input bits are logic (a case statement), larger ones ROMs.
#: A 6-bit table is one 6-input LUT per output bit, less than the smallest block RAM
#: (and no RAM primitive on devices without one); above that a ROM is cheaper.
LOGIC_TABLE_MAX_BITS = 6
#: ROMs of at least this many input bits are block RAM (``rom_style``), smaller ones logic:
#: a 1 K-entry table of ~11 bits is about 200 LUTs a lane in logic, one 18 Kb block RAM for
#: two lanes; without the attribute Yosys maps a ROM of several read ports to logic
#: (4 lanes of a 4 K x 11 table: 2,700 LUTs, against 6 RAMB18 and 1 LUT with it).
BLOCK_TABLE_MIN_BITS = 10
#: Read ports of one table ROM: a true-dual-port block RAM's two. (One memory with a port
#: per lane would be the same block RAMs, but Yosys 0.70's memory_libmap crashes on a
#: 32-port memory.)
ROM_READ_PORTS = 2


class LookupTable(wiring.Component):
    """``o[k] = table[i[k] - in_type.min_int]`` for each of ``n_elements`` lanes.

    One lookup per element per beat. Every two lanes share one ROM (an
    `amaranth.lib.memory.Memory` with a synchronous read port per lane, `ROM_READ_PORTS`):
    block RAM from `BLOCK_TABLE_MIN_BITS` input bits on (``rom_style``; one true-dual-port
    block RAM then serves two lanes, ``ceil(lanes / 2)`` copies of the table, not one per
    lane), logic below. For inputs of at most `LOGIC_TABLE_MAX_BITS` bits (or
    ``rom=False``) each lane is a case statement (LUTs).

    Contract: II = 1; ``latency`` 1 (the ROM's read register is the pipeline stage) or 2
    (an extra output register, e.g. a block RAM's output register, for timing). Under
    backpressure the whole pipeline holds (`stream_util.pipeline_control`; the ROM read
    port is enabled by ``advance``), nothing is lost or duplicated. Widths:
    ``in_type.width`` in, ``out_type.width`` out per lane.
    """

    def __init__(
        self,
        table: np.ndarray | Sequence[int],
        in_type: FixedType,
        out_type: FixedType,
        n_elements: int,
        *,
        latency: int = 1,
        rom: bool | None = None,
    ):
        check_table_input(in_type, "LookupTable")
        table = np.asarray(table, dtype=np.int64)
        depth = 1 << in_type.width
        if table.shape != (depth,):
            raise RtlgenError(f"LookupTable: {table.shape} entries for {in_type} ({depth} codes)")
        if table.min() < out_type.min_int or table.max() > out_type.max_int:
            raise RtlgenError(f"LookupTable: table values outside {out_type}")
        if latency not in (1, 2):
            raise RtlgenError(f"LookupTable: latency must be 1 or 2, got {latency}")
        if n_elements < 1:
            raise RtlgenError(f"LookupTable: {n_elements} elements")
        self.table, self.in_type, self.out_type = table, in_type, out_type
        self.n_elements = n_elements
        self.rom = in_type.width > LOGIC_TABLE_MAX_BITS if rom is None else rom
        self.block = self.rom and in_type.width >= BLOCK_TABLE_MIN_BITS
        self._latency = latency
        super().__init__(
            {
                "i": In(stream.Signature(vector_layout(in_type, n_elements))),
                "o": Out(stream.Signature(vector_layout(out_type, n_elements))),
            }
        )

    @property
    def latency(self) -> int:
        return self._latency

    cycles_per_sample = 1

    def by_address(self) -> list[int]:
        """Table contents indexed by the input's raw bits (two's complement for signed)."""
        codes = np.arange(1 << self.in_type.width, dtype=np.int64)
        if self.in_type.signed:
            codes = np.where(
                codes >= 1 << (self.in_type.width - 1), codes - (1 << self.in_type.width), codes
            )
        return [int(v) for v in self.table[codes - self.in_type.min_int]]

    @property
    def conversion_cost(self) -> int:
        """`rtlgen.emit`'s cost of converting it: 0 when its ROMs are written as Verilog text
        (`lookup_verilog.supported`), else its port bits."""
        from . import lookup_verilog

        if lookup_verilog.supported(self):
            return 0
        return len(self.i.payload.as_value()) + len(self.o.payload.as_value())

    def elaborate(self, platform):
        from . import lookup_verilog, mac_verilog

        # Verilog emission: an instance of the same table written as text (Amaranth's RTLIL
        # of a memory's initial contents is slow)
        text = mac_verilog.text_instance(
            self, LookupTable, lookup_verilog.supported, lookup_verilog.lookup_verilog, "lut"
        )
        if text is not None:
            return text
        m = Module()
        advance = pipeline_control(m, self.i, self.o, self._latency)
        regs = StageRegisters(advance)
        addresses = [Value.cast(self.i.payload[k]).as_unsigned() for k in range(self.n_elements)]
        lanes = self.lookups(m, addresses, advance, regs)
        width = shape_of(self.out_type).width
        out = Cat(*[Value.cast(v).as_unsigned()[:width] for v in lanes])
        if self._latency == 2:
            out = regs.register(out, name="out")
        regs.emit(m)
        m.d.comb += self.o.payload.eq(out)
        return m

    def lookups(
        self,
        m: Module,
        addresses: Sequence[Value],
        advance: Value,
        regs: StageRegisters,
        prefix: str = "rom",
    ) -> list[Value]:
        """The table's entry at each lane's address (raw input bits), one pipeline stage
        later (the ROM's read register or a register after the case statement), all held
        while ``advance`` is low; the ROMs are added to ``m`` (named ``prefix`` and a number)."""
        out_shape = shape_of(self.out_type)
        contents = self.by_address()
        lanes = []
        for k, address in enumerate(addresses):
            if self.rom:
                if k % ROM_READ_PORTS == 0:
                    m.submodules[f"{prefix}{k // ROM_READ_PORTS}"] = rom = memory.Memory(
                        shape=out_shape,
                        depth=len(contents),
                        init=contents,
                        attrs={"rom_style": "block" if self.block else "logic"},
                    )
                port = rom.read_port()  # synchronous: the read register is stage 1
                # named: the register's name in the Verilog (`lookup_verilog` pairs it)
                data = Signal(out_shape, name=f"{prefix}_data{k}")
                m.d.comb += [port.addr.eq(address), port.en.eq(advance), data.eq(port.data)]
                lanes.append(data)
            else:
                value = Signal(out_shape, name=f"value{k}")
                with m.Switch(address):
                    for code, entry in enumerate(contents):
                        with m.Case(code):
                            m.d.comb += value.eq(entry)
                lanes.append(regs.register(value, name=f"stage1_{k}"))
        return lanes


class _TwoPathTable(wiring.Component):
    """The frame `BypassTable` and `SplitTable` share: per lane, a condition on the input
    chooses between ``table[requantize(i[k], table_type)]`` (rounded with ``rounding``,
    saturated) and a second path the subclass builds (`_second_path`).

    Contract: II = 1, latency 2 (stage 1 registers the requantized address, the condition
    and the second path's first stage, stage 2 is the table's read); under backpressure the
    pipeline holds (`stream_util.pipeline_control`), nothing lost or duplicated. Widths:
    ``in_type.width`` in, ``out_type.width`` out per lane.
    """

    latency = 2
    cycles_per_sample = 1

    def __init__(
        self,
        table: np.ndarray | Sequence[int],
        in_type: FixedType,
        table_type: FixedType,
        out_type: FixedType,
        n_elements: int,
        rounding: Rounding,
    ):
        self.table = LookupTable(table, table_type, out_type, n_elements)
        self.in_type, self.out_type, self.n_elements = in_type, out_type, n_elements
        self.to_table = self._requantizer(table_type, rounding, Overflow.SATURATE)
        super().__init__(
            {
                "i": In(stream.Signature(vector_layout(in_type, n_elements))),
                "o": Out(stream.Signature(vector_layout(out_type, n_elements))),
            }
        )

    def _requantizer(self, to: FixedType, rounding: Rounding, overflow: Overflow) -> Requantize:
        """A combinational requantizer of all lanes from ``in_type`` to ``to``."""
        return Requantize(
            self.n_elements, self.in_type, to, None, None, rounding, overflow, latency=0
        )

    def _condition(self, x: Value) -> Value:
        """1 where lane input ``x`` takes the second path."""
        raise NotImplementedError

    def _second_path(
        self, m: Module, inputs: Sequence[Value], advance: Value, regs: StageRegisters
    ) -> list[Value]:
        """Each lane's second-path value two pipeline stages after ``inputs``."""
        raise NotImplementedError

    @staticmethod
    def _attach(m: Module, name: str, rq: Requantize, inputs: Sequence[Value]) -> list[Value]:
        """Adds requantizer ``rq`` to ``m`` as ``name`` on ``inputs``; its per-lane outputs."""
        m.submodules[name] = rq
        m.d.comb += [rq.i.valid.eq(1), rq.o.ready.eq(1)]
        m.d.comb += [rq.i.payload[k].eq(x) for k, x in enumerate(inputs)]
        return [rq.o.payload[k] for k in range(len(inputs))]

    def elaborate(self, platform):
        m = Module()
        advance = pipeline_control(m, self.i, self.o, self.latency)
        regs = StageRegisters(advance)
        inputs = [Value.cast(self.i.payload[k]) for k in range(self.n_elements)]
        addresses, chosen = [], []
        for k, q in enumerate(self._attach(m, "to_table", self.to_table, inputs)):
            addresses.append(regs.register(Value.cast(q).as_unsigned(), name=f"address{k}"))
            second = regs.register(self._condition(inputs[k]), name=f"second{k}")
            chosen.append(regs.register(second, name=f"second{k}_2"))
        looked_up = self.table.lookups(m, addresses, advance, regs)
        seconds = self._second_path(m, inputs, advance, regs)
        width = shape_of(self.out_type).width
        lanes = [
            Mux(c, Value.cast(s), Value.cast(v)).as_unsigned()[:width]
            for c, s, v in zip(chosen, seconds, looked_up, strict=True)
        ]
        regs.emit(m)
        m.d.comb += self.o.payload.eq(Cat(*lanes))
        return m


class BypassTable(_TwoPathTable):
    """``o[k] = i[k] > T ? requantize(i[k] * s, out_type) : table[requantize(i[k],
    table_type)]`` for each of ``n_elements`` lanes, ``T`` the ``threshold`` (an input
    mantissa), ``s`` the ``scale`` (mantissa, fraction bits; 1 by default): a function that
    is the identity above 0 (ELU, T = 0), a constant times it (SELU: ``s`` its scale rounded)
    or within a rounding of it above the table's range (SiLU, GELU) looks up only its other
    side, so a wide input's table needs just the integer bits where that side saturates
    (`rtlgen.ops.lut_activation`).

    Both requantizers round with ``rounding``; the table's saturates (the table covers the
    inputs up to 0, its saturated low end stands for everything below), the bypass
    overflows as ``overflow``. The table is a `LookupTable`'s ROMs.

    Contract (`_TwoPathTable`'s): II = 1, latency 2, nothing lost or duplicated under
    backpressure.
    """

    def __init__(
        self,
        table: np.ndarray | Sequence[int],
        in_type: FixedType,
        table_type: FixedType,
        out_type: FixedType,
        n_elements: int,
        rounding: Rounding = Rounding.CONVERGENT,
        overflow: Overflow = Overflow.SATURATE,
        *,
        threshold: int = 0,
        scale: tuple[int, int] = (1, 0),
    ):
        if not in_type.min_int <= threshold <= in_type.max_int:
            raise RtlgenError(f"BypassTable: threshold {threshold} is not a code of {in_type}")
        if scale[0] < 1 or scale[1] < 0:
            raise RtlgenError(f"BypassTable: scale {scale} is not a positive (mantissa, frac)")
        self.threshold, self.scale = threshold, scale
        super().__init__(table, in_type, table_type, out_type, n_elements, rounding)
        product = in_type
        if scale != (1, 0):
            product = FixedType(in_type.width + scale[0].bit_length() + 1, in_type.frac + scale[1])
        self.bypass = Requantize(
            n_elements, product, out_type, None, None, rounding, overflow, latency=0
        )

    def _condition(self, x: Value) -> Value:
        return x > self.threshold

    def _second_path(self, m, inputs, advance, regs):
        if self.scale == (1, 0):
            return [
                regs.register(regs.register(q, name=f"bypass{k}"), name=f"bypass{k}_2")
                for k, q in enumerate(self._attach(m, "bypass", self.bypass, inputs))
            ]
        # stage 1 registers the product, stage 2 its requantized value
        products = [
            regs.register(x * self.scale[0], name=f"product{k}") for k, x in enumerate(inputs)
        ]
        return [
            regs.register(q, name=f"bypass{k}")
            for k, q in enumerate(self._attach(m, "bypass", self.bypass, products))
        ]


class SplitTable(_TwoPathTable):
    """``o[k] = low <= i[k] <= high ? fine[requantize(i[k], fine_type)] :
    table[requantize(i[k], table_type)]`` for each of ``n_elements`` lanes (``low``,
    ``high``: input mantissas, the ends of ``fine_type``'s range): a function that is steep
    near 0 and flat far out but never saturates within the input's range (softsign) looks a
    wide input up in a table with many fraction bits near 0 and a coarse one elsewhere
    (`rtlgen.ops.lut_activation`).

    Both requantizers round with ``rounding`` and saturate (the fine one never has to: its
    inputs lie within its range). The tables are two `LookupTable`s' ROMs.

    Contract (`_TwoPathTable`'s): II = 1, latency 2, nothing lost or duplicated under
    backpressure.
    """

    def __init__(
        self,
        table: np.ndarray | Sequence[int],
        fine_table: np.ndarray | Sequence[int],
        in_type: FixedType,
        table_type: FixedType,
        fine_type: FixedType,
        out_type: FixedType,
        n_elements: int,
        rounding: Rounding = Rounding.CONVERGENT,
        *,
        low: int,
        high: int,
    ):
        if not in_type.min_int <= low <= high <= in_type.max_int:
            raise RtlgenError(f"SplitTable: [{low}, {high}] is not a range of codes of {in_type}")
        self.low, self.high = low, high
        super().__init__(table, in_type, table_type, out_type, n_elements, rounding)
        self.fine = LookupTable(fine_table, fine_type, out_type, n_elements)
        self.to_fine = self._requantizer(fine_type, rounding, Overflow.SATURATE)

    def _condition(self, x: Value) -> Value:
        return (x >= self.low) & (x <= self.high)

    def _second_path(self, m, inputs, advance, regs):
        addresses = [
            regs.register(Value.cast(q).as_unsigned(), name=f"fine_address{k}")
            for k, q in enumerate(self._attach(m, "to_fine", self.to_fine, inputs))
        ]
        return self.fine.lookups(m, addresses, advance, regs, prefix="fine_rom")


class PiecewiseLinear(wiring.Component):
    """Elementwise `rtlgen.quant.activations.LeakySpec`: ``x > T ? min(x, M) : slope * (x - T)``
    rounded into ``out_type`` (LeakyReLU, PReLU, ReLU with max_value/negative_slope/threshold).

    ``spec.slope`` has one slope for all lanes or one per lane (PReLU's per-channel alphas:
    lane k is channel k). The product is a sum of shifted copies of ``x - T`` (CSD digits of
    the constant slope, no multiplier); the compare, the select and the product are
    combinational in front of a `Requantize`, which does the ``max_value`` clip, the
    rounding and the saturation/wrap on the accumulator of ``spec.acc_type()``.

    Contract: II = 1, ``latency`` = Requantize's (1 or 2), backpressure as
    `stream_util.pipeline_control` (the pipeline holds, nothing lost or duplicated).
    Widths: ``in_type.width`` in, ``out_type.width`` out per lane.
    """

    def __init__(self, spec: LeakySpec, n_elements: int, *, latency: int = 1):
        slopes = list(spec.slope)
        if len(slopes) == 1:
            slopes = slopes * n_elements
        if len(slopes) != n_elements:
            raise RtlgenError(f"PiecewiseLinear: {len(slopes)} slopes for {n_elements} elements")
        if latency not in (1, 2):
            raise RtlgenError(f"PiecewiseLinear: latency must be 1 or 2, got {latency}")
        self.spec = LeakySpec(
            spec.in_type,
            tuple(slopes),
            spec.slope_type,
            spec.out_type,
            spec.threshold,
            spec.max_value,
            spec.rounding,
            spec.overflow,
        )
        self.n_elements = n_elements
        self.acc_type = self.spec.acc_type()
        self.requantize = Requantize(
            n_elements,
            self.acc_type,
            spec.out_type,
            None,
            self.spec.max_bound,
            spec.rounding,
            spec.overflow,
            in_ranges=self.spec.acc_ranges(),
            latency=latency,
        )
        super().__init__(
            {
                "i": In(stream.Signature(vector_layout(spec.in_type, n_elements))),
                "o": Out(stream.Signature(vector_layout(spec.out_type, n_elements))),
            }
        )

    @property
    def latency(self) -> int:
        return self.requantize.latency

    cycles_per_sample = 1

    def _accumulator(self, x: Value, slope: int) -> Value:
        spec = self.spec
        pos_shift = spec.acc_frac - spec.in_type.frac
        neg_shift = pos_shift - spec.slope_type.frac
        diff = x - Const(spec.threshold) if spec.threshold else x
        product: Value = Const(0, 1)
        terms = [(diff << (d.shift + neg_shift), d.sign) for d in csd_digits(slope)]
        if terms:
            product = terms[0][0] if terms[0][1] > 0 else -terms[0][0]
            for term, sign in terms[1:]:
                product = product + term if sign > 0 else product - term
        above = x > Const(spec.threshold)
        return resize(Mux(above, x << pos_shift, product), shape_of(self.acc_type))

    def elaborate(self, platform):
        m = Module()
        m.submodules.requantize = rq = self.requantize
        m.d.comb += [
            rq.i.valid.eq(self.i.valid),
            self.i.ready.eq(rq.i.ready),
        ]
        for k, slope in enumerate(self.spec.slope):
            m.d.comb += rq.i.payload[k].eq(self._accumulator(self.i.payload[k], slope))
        wiring.connect(m, rq.o, wiring.flipped(self.o))
        return m


#: ROMs of slopes of at least this many words are block RAM (``rom_style``), smaller ones logic
BLOCK_SLOPE_MIN_WORDS = 1024


def position_slopes(slopes: np.ndarray) -> np.ndarray:
    """Slopes per element of a sample (``(H, W, C)`` or ``(L, C)``) as the ``(rows,
    columns, lanes)`` table `PositionalPiecewiseLinear` stores: an axis along which no slope
    varies (a PReLU's shared axis, or alphas that happen to be equal) is kept at size 1."""
    table = np.asarray(slopes)
    if table.ndim == 2:
        table = table.reshape(1, *table.shape)
    for axis in range(3):
        first = np.take(table, [0], axis=axis)
        if np.all(table == first):
            table = first
    return table


class PositionalPiecewiseLinear(wiring.Component):
    """Elementwise `rtlgen.quant.activations.LeakySpec` whose slopes vary with the pixel
    position: ``spec.slope_shape`` is a sample's shape, ``(H, W, C)`` or ``(L, C)`` (PReLU
    with an alpha per element, or shared along some axes only).

    The stream carries one pixel (``C`` lanes) per beat, row after row. Row and column
    counters, advanced by each accepted beat and wrapping after the sample's last pixel,
    keep the address of the pixel's slopes in a ROM (`position_slopes`: one word per
    distinct row/column combination, holding the ``C`` slopes or one the lanes share; block
    RAM from `BLOCK_SLOPE_MIN_WORDS` words). Each lane computes ``x > T ? x : slope * (x -
    T)`` with a multiplier (the slope is not a constant) in `PiecewiseLinear`'s exact
    arithmetic, then a `Requantize` does the ``max_value`` clip, rounding and saturation.

    Contract: II = 1, latency 3 (stage 1: the ROM read and the input register; stage 2: the
    accumulator; stage 3: the requantized output); under backpressure the pipeline holds
    (`stream_util.pipeline_control`; the ROM port and the counters move only with it),
    nothing lost or duplicated. Widths: ``in_type.width`` in, ``out_type.width`` out per lane.
    ``per_channel``: the `LeakySpec` of `PiecewiseLinear` when no slope varies with the
    position after all (this component is then not needed).
    """

    latency = 3
    cycles_per_sample = 1

    def __init__(self, spec: LeakySpec):
        shape = spec.slope_shape
        if shape is None or len(shape) not in (2, 3):
            raise RtlgenError(f"PositionalPiecewiseLinear: slopes of shape {shape}, not (H, W, C)")
        self.spec = spec
        self.height, self.width = (1, shape[0]) if len(shape) == 2 else (shape[0], shape[1])
        self.n_elements = shape[-1]
        self.table = position_slopes(np.asarray(spec.slope, dtype=np.int64).reshape(shape))
        rows, cols, lanes = self.table.shape
        self.depth = rows * cols
        self.word_bits = lanes * spec.slope_type.width
        self.per_channel = None
        if self.depth == 1:
            slopes = np.broadcast_to(self.table[0, 0], (self.n_elements,))
            self.per_channel = dataclasses.replace(
                spec, slope=tuple(int(s) for s in slopes), slope_shape=None
            )
        self.acc_type = spec.acc_type()
        in_ranges = []
        for lane in range(self.n_elements):
            mine = self.table[:, :, lane if lanes > 1 else 0]
            extremes = (int(mine.min()), int(mine.max()))
            in_ranges.append(
                dataclasses.replace(spec, slope=extremes, slope_shape=None).acc_range()
            )
        self.requantize = Requantize(
            self.n_elements,
            self.acc_type,
            spec.out_type,
            None,
            spec.max_bound,
            spec.rounding,
            spec.overflow,
            in_ranges=in_ranges,
            latency=0,
        )
        super().__init__(
            {
                "i": In(stream.Signature(vector_layout(spec.in_type, self.n_elements))),
                "o": Out(stream.Signature(vector_layout(spec.out_type, self.n_elements))),
            }
        )

    def rom_words(self) -> list[int]:
        """The ROM's contents: word ``r * columns + c`` holds the lanes' slopes (raw bits,
        lane 0 lowest)."""
        width = self.spec.slope_type.width
        mask = (1 << width) - 1
        rows, cols, lanes = self.table.shape
        words = []
        for r in range(rows):
            for c in range(cols):
                word = 0
                for lane in range(lanes):
                    word |= (int(self.table[r, c, lane]) & mask) << (lane * width)
                words.append(word)
        return words

    def _address(self, m: Module, accepted: Value) -> Signal:
        """The ROM address of the pixel the next accepted beat carries."""
        address = Signal(range(max(self.depth, 2)), name="address")
        col = Signal(range(max(self.width, 2)), name="pixel_col")
        row = Signal(range(max(self.height, 2)), name="pixel_row")
        last_col = col == self.width - 1 if self.width > 1 else Const(1)
        last_row = row == self.height - 1 if self.height > 1 else Const(1)
        rows, cols, _ = self.table.shape
        in_row = address + 1 if cols > 1 else address  # the next column's slopes
        next_row = address + 1 if rows > 1 else 0  # row-major: after a row's last column
        with m.If(accepted):
            if self.width > 1:
                m.d.sync += col.eq(Mux(last_col, 0, col + 1))
            if self.height > 1:
                with m.If(last_col):
                    m.d.sync += row.eq(Mux(last_row, 0, row + 1))
            m.d.sync += address.eq(Mux(last_col & last_row, 0, Mux(last_col, next_row, in_row)))
        return address

    def elaborate(self, platform):
        if self.depth == 1:
            raise RtlgenError("PositionalPiecewiseLinear: no slope varies with the position")
        spec, n = self.spec, self.n_elements
        m = Module()
        advance = pipeline_control(m, self.i, self.o, self.latency)
        regs = StageRegisters(advance)
        address = self._address(m, self.i.valid & advance)
        m.submodules.slopes = rom = memory.Memory(
            shape=self.word_bits,
            depth=self.depth,
            init=self.rom_words(),
            attrs={"rom_style": "block" if self.depth >= BLOCK_SLOPE_MIN_WORDS else "logic"},
        )
        port = rom.read_port()  # synchronous: its data register is stage 1
        m.d.comb += [port.addr.eq(address), port.en.eq(advance)]
        x1 = regs.register(self.i.payload, shape=vector_layout(spec.in_type, n), name="x")
        width = spec.slope_type.width
        shared = self.table.shape[2] == 1
        pos_shift = spec.acc_frac - spec.in_type.frac
        neg_shift = pos_shift - spec.slope_type.frac
        m.submodules.requantize = rq = self.requantize
        m.d.comb += [rq.i.valid.eq(1), rq.o.ready.eq(1)]
        for lane in range(n):
            bits = port.data[0:width] if shared else port.data[lane * width : (lane + 1) * width]
            slope = bits.as_signed() if spec.slope_type.signed else bits
            x = Value.cast(x1[lane])
            diff = x - Const(spec.threshold) if spec.threshold else x
            product = (diff * slope) << neg_shift
            above = x > Const(spec.threshold)
            acc = resize(Mux(above, x << pos_shift, product), shape_of(self.acc_type))
            m.d.comb += rq.i.payload[lane].eq(regs.register(acc, name=f"acc{lane}"))
        out = regs.register(Value.cast(rq.o.payload), name="out")
        regs.emit(m)
        m.d.comb += self.o.payload.eq(out)
        return m
