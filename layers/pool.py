"""Max and average pooling: a `WindowGenerator` followed by a pipelined window reduction.

Arithmetic follows `rtlgen.ops.pool.pool_reference` bit for bit:

- max pool: the maximum of the real elements of each window, then
  ``requantize(max, in_type.frac, out_type, rounding)``;
- average pool: the exact sum of the real elements (padding is 0), then
  ``divide_round(sum << s, count)`` (or ``divide_round(sum, count << -s)``) with
  ``s = out_type.frac - in_type.frac`` and ``count`` the number of real elements in the window
  (smaller near padded edges), saturated into ``out_type``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from rtlgen import ir
from rtlgen.quant import fixed
from rtlgen.quant.arith import divide_round
from rtlgen.quant.errors import RtlgenError
from rtlgen.quant.fixed import FixedType, Rounding, requantize

from .common import saturate, shape_of, shift_round, vector_layout
from .stream_util import StageRegisters, pipeline_control
from .window import WindowGenerator, WindowGeometry

# A pipeline stage's data: a Value, or lists/dicts of them.
_Tree = Any


def _register(registers: StageRegisters, tree: _Tree, name: str) -> _Tree:
    """Pipeline registers holding every Value of ``tree``."""
    if isinstance(tree, list):
        return [_register(registers, item, f"{name}_{k}") for k, item in enumerate(tree)]
    if isinstance(tree, dict):
        return {key: _register(registers, item, f"{name}_{key}") for key, item in tree.items()}
    return registers.register(tree, name=name)


def _pipeline(
    m: Module, sink, source, data: _Tree, stages: list[Callable[[_Tree], _Tree]]
) -> _Tree:
    """Run ``data`` (from ``sink``'s payload) through ``stages``, a register after each.

    The pipeline scheme of `stream_util.pipeline_control`: one beat per cycle at full rate,
    the whole pipeline frozen while the output is not taken. Returns the last registers.
    """
    assert stages, "a pipeline has at least one register stage"
    registers = StageRegisters(pipeline_control(m, sink, source, len(stages)))
    for index, stage in enumerate(stages):
        data = _register(registers, stage(data), f"stage{index}")
    registers.emit(m)
    return data


def _tree_levels(n: int) -> int:
    return max(n - 1, 0).bit_length()


def _reduce_level(values: list[Value], op: Callable[[Value, Value], Value]) -> list[Value]:
    """One level of a balanced reduction tree: pairs combined, an odd one passed on."""
    out = [op(values[k], values[k + 1]) for k in range(0, len(values) - 1, 2)]
    if len(values) % 2:
        out.append(values[-1])
    return out


def _per_channel(payload, window_elements: int, channels: int) -> list[list[Value]]:
    """Window payload (position, channel) -> per channel, the list over positions."""
    return [[payload[p * channels + ch] for p in range(window_elements)] for ch in range(channels)]


def _tree_stages(
    levels: int, op: Callable[[Value, Value], Value]
) -> list[Callable[[_Tree], _Tree]]:
    def level(state: _Tree) -> _Tree:
        return {**state, "channels": [_reduce_level(v, op) for v in state["channels"]]}

    return [level] * levels


class WindowMax(wiring.Component):
    """Per-channel maximum over a window, then rounded/saturated into ``out_type``.

    Input: ``ArrayLayout(shape_of(in_type), window_elements * channels)`` ordered
    (position, channel), as a `WindowGenerator` emits. Output: ``ArrayLayout(shape_of(out_type),
    channels)``. A balanced tree of compare-select, registered after every level.

    Contract: one window per cycle (II = 1), ``latency`` = max(1, ceil(log2(window_elements)))
    cycles, plus 1 if ``out_type`` differs from ``in_type`` (a rounding/saturation stage);
    under backpressure the pipeline holds (``i.ready`` = ``~o.valid | o.ready``).
    """

    def __init__(
        self,
        window_elements: int,
        channels: int,
        in_type: FixedType,
        out_type: FixedType | None = None,
        rounding: Rounding = Rounding.CONVERGENT,
    ):
        self.window_elements, self.channels = window_elements, channels
        self.in_type, self.out_type = in_type, out_type or in_type
        self.rounding = rounding
        super().__init__(
            {
                "i": In(stream.Signature(vector_layout(in_type, window_elements * channels))),
                "o": Out(stream.Signature(vector_layout(self.out_type, channels))),
            }
        )

    @property
    def _requantizes(self) -> bool:
        return self.out_type != self.in_type

    @property
    def latency(self) -> int:
        return max(1, _tree_levels(self.window_elements)) + self._requantizes

    def elaborate(self, platform):
        from . import mac_verilog, pool_verilog

        # Verilog emission: an instance of the same tree written as text
        text = mac_verilog.text_instance(
            self, WindowMax, pool_verilog.supported, pool_verilog.window_max_verilog, "max"
        )
        if text is not None:
            return text
        m = Module()
        in_type, out_type = self.in_type, self.out_type

        def larger(a: Value, b: Value) -> Value:
            return Mux(a > b, a, b)

        stages = _tree_stages(_tree_levels(self.window_elements), larger)
        if not stages:
            stages = [lambda state: state]
        if self._requantizes:
            shift = in_type.frac - out_type.frac

            def to_out_type(state: _Tree) -> _Tree:
                # The rounded range (shift_round is monotonic) tells which clips can happen.
                r_lo, r_hi = (
                    int(v)
                    for v in fixed.shift_round(
                        np.array([in_type.min_int, in_type.max_int]), shift, self.rounding
                    )
                )
                out = []
                for (value,) in state["channels"]:
                    rounded = shift_round(value, shift, self.rounding)
                    out.append(
                        [
                            saturate(
                                rounded,
                                out_type.min_int,
                                out_type.max_int,
                                shape_of(out_type),
                                r_lo,
                                r_hi,
                            )
                        ]
                    )
                return {"channels": out}

            stages.append(to_out_type)
        state = {"channels": _per_channel(self.i.payload, self.window_elements, self.channels)}
        result = _pipeline(m, self.i, self.o, state, stages)
        m.d.comb += self.o.payload.eq(Cat(*[values[0] for values in result["channels"]]))
        return m


# ---------------------------------------------------------------------------------------
# exact division by a small constant
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Reciprocal:
    """``divide_round(n, divisor, rounding)`` for every integer n in [n_lo, n_hi], by a
    multiply with a constant, exactly.

    With ``n' = n + offset`` (offset a multiple of the divisor d making n' >= 0),
    ``M = ceil(2**k / d)`` and ``e = M*d - 2**k`` (0 <= e < d), the shift k is the least
    with ``n'_max * e < 2**k``. Then for ``n' = q*d + r`` (0 <= r < d):

        n' * M / 2**k = q + (r + n' * e / 2**k) / d,  with 0 <= n' * e / 2**k < 1,

    so the fraction ``(r + n'e/2**k) / d`` lies in [r/d, (r+1)/d) < 1: ``(n' * M) >> k == q``
    exactly, and the low k bits L of the product tell the remainder:
    ``r >= j  <=>  L >= ceil(j * 2**k / d)``. The rounding decisions need only such
    comparisons with constants (r >= ceil(d/2) for half-up; r > d/2 and r == d/2 for
    convergent), so no second multiply computes the remainder. ``floor(n/d) = q - offset/d``.
    """

    divisor: int
    n_lo: int
    n_hi: int

    @property
    def offset(self) -> int:
        return -(self.n_lo // self.divisor) * self.divisor if self.n_lo < 0 else 0

    @property
    def shift(self) -> int:
        n_max = self.n_hi + self.offset
        k = 0
        while True:
            multiplier = -(-(1 << k) // self.divisor)
            if n_max * (multiplier * self.divisor - (1 << k)) < (1 << k):
                return k
            k += 1

    @property
    def multiplier(self) -> int:
        return -(-(1 << self.shift) // self.divisor)

    def threshold(self, remainder: int) -> int:
        """Low-bits value at and above which the remainder is >= ``remainder``."""
        return -(-(remainder << self.shift) // self.divisor)

    def round_up(self, low: Any, quotient_odd: Any, rounding: Rounding) -> Any:
        """Whether to add 1 to the floor quotient, from the product's low bits.

        Works on Amaranth Values and on numpy arrays alike (bitwise operators only).
        """
        d = self.divisor
        if rounding is Rounding.TRUNCATE:
            return low < 0  # never
        if rounding is Rounding.HALF_UP:
            return low >= self.threshold((d + 1) // 2)
        above = low >= self.threshold(d // 2 + 1)
        if d % 2:
            return above
        tie = (low >= self.threshold(d // 2)) & ~above
        return above | (tie & quotient_odd)

    def divide(self, n: np.ndarray, rounding: Rounding) -> np.ndarray:
        """The integer model of the hardware (for tests); equals `divide_round` on [n_lo, n_hi]."""
        product = (np.asarray(n, dtype=np.int64) + self.offset) * self.multiplier
        quotient = (product >> self.shift) - self.offset // self.divisor
        low = product & ((1 << self.shift) - 1)
        return quotient + self.round_up(low, (quotient & 1) == 1, rounding)

    def result_range(self, rounding: Rounding) -> tuple[int, int]:
        lo, hi = divide_round(np.array([self.n_lo, self.n_hi]), self.divisor, rounding)
        return int(lo), int(hi)


class WindowAverage(wiring.Component):
    """Per-channel average of the real elements of each window, into ``out_type``.

    Input: windows of a `WindowGenerator` with ``pad_value = 0`` over ``geometry`` (one beat per
    output position, row-major; the component counts positions itself to know how many
    elements of each window are real). Output: ``ArrayLayout(shape_of(out_type), channels)``.

    Pipeline: a balanced adder tree (a register after every level), then per distinct
    element count d: add an offset (``Reciprocal``), multiply by a constant reciprocal, then
    the rounding decision from the product's low bits, saturation into ``out_type`` and the
    selection of the count of this window's position. ``latency`` = ceil(log2(window
    elements)) + 3 cycles, one window per cycle; holds under backpressure.
    """

    def __init__(
        self,
        geometry: WindowGeometry,
        channels: int,
        in_type: FixedType,
        out_type: FixedType,
        rounding: Rounding = Rounding.CONVERGENT,
    ):
        self.geometry, self.channels = geometry, channels
        self.in_type, self.out_type, self.rounding = in_type, out_type, rounding
        self.window_elements = geometry.kernel[0] * geometry.kernel[1]
        self.row_counts = [len(geometry.real_rows(oy)) for oy in range(geometry.out_height)]
        self.col_counts = [len(geometry.real_cols(ox)) for ox in range(geometry.out_width)]
        if _has_padding_only_windows(geometry):
            raise RtlgenError(
                f"average pool {geometry.kernel} with padding {geometry.padding} has windows "
                f"made only of padding; not supported"
            )
        shift = out_type.frac - in_type.frac
        self.num_shift, self.den_shift = max(shift, 0), max(-shift, 0)
        counts = sorted({r * c for r in self.row_counts for c in self.col_counts})
        self.reciprocals = [
            Reciprocal(
                count << self.den_shift,
                (count * in_type.min_int) << self.num_shift,
                (count * in_type.max_int) << self.num_shift,
            )
            for count in counts
        ]
        super().__init__(
            {
                "i": In(stream.Signature(vector_layout(in_type, self.window_elements * channels))),
                "o": Out(stream.Signature(vector_layout(out_type, channels))),
            }
        )

    @property
    def latency(self) -> int:
        return _tree_levels(self.window_elements) + 3

    def _class_of(self, m: Module, counter: Signal, counts: list[int], name: str) -> Signal:
        """Index into ``sorted(set(counts))`` of ``counts[counter]`` (interior = default case)."""
        classes = sorted(set(counts))
        select = Signal(range(max(len(classes), 2)), name=name)
        if len(classes) == 1:
            return select
        common = max(classes, key=counts.count)
        with m.Switch(counter):
            for index, count in enumerate(classes):
                if count != common:
                    with m.Case(*[k for k, c in enumerate(counts) if c == count]):
                        m.d.comb += select.eq(index)
            with m.Default():
                m.d.comb += select.eq(classes.index(common))
        return select

    def elaborate(self, platform):
        m = Module()
        g = self.geometry
        out_type = self.out_type

        # Output position of the window on the input, to know its count of real elements.
        out_row = Signal(range(g.out_height))
        out_col = Signal(range(g.out_width))
        with m.If(self.i.valid & self.i.ready):
            with m.If(out_col == g.out_width - 1):
                m.d.sync += [
                    out_col.eq(0),
                    out_row.eq(Mux(out_row == g.out_height - 1, 0, out_row + 1)),
                ]
            with m.Else():
                m.d.sync += out_col.eq(out_col + 1)
        row_class = self._class_of(m, out_row, self.row_counts, "row_class")
        col_class = self._class_of(m, out_col, self.col_counts, "col_class")
        row_classes, col_classes = sorted(set(self.row_counts)), sorted(set(self.col_counts))
        counts = [rec.divisor >> self.den_shift for rec in self.reciprocals]
        select = Signal(range(max(len(counts), 2)))
        if len(counts) > 1:
            with m.Switch(Cat(col_class, row_class)):
                for ri, rc in enumerate(row_classes):
                    for ci, cc in enumerate(col_classes):
                        with m.Case(ci | (ri << len(col_class))):
                            m.d.comb += select.eq(counts.index(rc * cc))

        def add(a: Value, b: Value) -> Value:
            return a + b

        def add_offset(state: _Tree) -> _Tree:
            out = []
            for (total,) in state["channels"]:
                num = total << self.num_shift
                out.append([num + rec.offset for rec in self.reciprocals])
            return {**state, "channels": out}

        def multiply(state: _Tree) -> _Tree:
            # n' >= 0 by construction of the offset: unsigned from here on.
            out = [
                [
                    n.as_unsigned() * rec.multiplier
                    for n, rec in zip(ns, self.reciprocals, strict=True)
                ]
                for ns in state["channels"]
            ]
            return {**state, "channels": out}

        def round_saturate(state: _Tree) -> _Tree:
            out = []
            for products in state["channels"]:
                results = []
                for product, rec in zip(products, self.reciprocals, strict=True):
                    k = rec.shift
                    # Zero-extended so that the offset subtraction is signed.
                    quotient = Cat(product >> k, Const(0, 1)).as_signed() - (
                        rec.offset // rec.divisor
                    )
                    low = product[:k] if k else Const(0, 1)
                    odd = quotient[0]
                    value = quotient + rec.round_up(low, odd, self.rounding)
                    lo, hi = rec.result_range(self.rounding)
                    results.append(
                        saturate(
                            value, out_type.min_int, out_type.max_int, shape_of(out_type), lo, hi
                        )
                    )
                chosen = results[0]
                for index in range(1, len(results)):
                    chosen = Mux(state["select"] == index, results[index], chosen)
                out.append([chosen])
            return {"channels": out}

        stages = [
            *_tree_stages(_tree_levels(self.window_elements), add),
            add_offset,
            multiply,
            round_saturate,
        ]
        state = {
            "channels": _per_channel(self.i.payload, self.window_elements, self.channels),
            "select": select,
        }
        result = _pipeline(m, self.i, self.o, state, stages)
        m.d.comb += self.o.payload.eq(Cat(*[values[0] for values in result["channels"]]))
        return m


# ---------------------------------------------------------------------------------------
# pooling layers
# ---------------------------------------------------------------------------------------
def _has_padding_only_windows(g: WindowGeometry) -> bool:
    return not all(g.real_rows(oy) for oy in range(g.out_height)) or not all(
        g.real_cols(ox) for ox in range(g.out_width)
    )


class _Pool(wiring.Component):
    """WindowGenerator -> reduction, connected with `wiring.connect`."""

    def __init__(
        self,
        window: WindowGenerator,
        reduce,
        in_type: FixedType,
        out_type: FixedType,
        channels: int,
    ):
        self.window, self.reduce = window, reduce
        self.in_type, self.out_type, self.channels = in_type, out_type, channels
        super().__init__(
            {
                "i": In(stream.Signature(vector_layout(in_type, channels))),
                "o": Out(stream.Signature(vector_layout(out_type, channels))),
            }
        )

    @property
    def out_shape(self) -> tuple[int, int]:
        return self.window.out_shape

    @property
    def latency(self) -> int:
        """Cycles from the last input pixel of an output to that output's valid (full rate)."""
        return self.window.latency + self.reduce.latency

    @property
    def cycles_per_sample(self) -> int:
        return self.window.cycles_per_sample

    def elaborate(self, platform):
        m = Module()
        m.submodules.window = self.window
        m.submodules.reduce = self.reduce
        wiring.connect(m, wiring.flipped(self.i), self.window.i)
        wiring.connect(m, self.window.o, self.reduce.i)
        wiring.connect(m, self.reduce.o, wiring.flipped(self.o))
        return m


class MaxPool(_Pool):
    """Max pooling of a streamed (height, width, channels) image; see `WindowGenerator`.

    Padding positions hold ``in_type.min_int``: any window with a real element then has the
    reference's maximum (which pads with min_int - 1). Windows of padding only are accepted
    when that makes no difference after requantization into ``out_type`` (always, when
    ``out_type == in_type``: min_int - 1 saturates to min_int).
    """

    def __init__(
        self,
        height: int,
        width: int,
        channels: int,
        pool: tuple[int, int],
        stride: tuple[int, int],
        padding: tuple[int, int, int, int],
        in_type: FixedType,
        out_type: FixedType | None = None,
        rounding: Rounding = Rounding.CONVERGENT,
    ):
        out_type = out_type or in_type
        if _has_padding_only_windows(WindowGeometry(height, width, pool, stride, padding)):
            ref, ours = requantize(
                np.array([in_type.min_int - 1, in_type.min_int]), in_type.frac, out_type, rounding
            )
            if ref != ours:
                raise RtlgenError(
                    f"max pool {pool} with padding {padding} has windows made only of padding, "
                    f"whose value in {out_type} the hardware does not reproduce"
                )
        window = WindowGenerator(
            height, width, channels, pool, stride, padding, shape_of(in_type), in_type.min_int
        )
        reduce = WindowMax(pool[0] * pool[1], channels, in_type, out_type, rounding)
        super().__init__(window, reduce, in_type, out_type, channels)


class AvgPool(_Pool):
    """Average pooling (over the real elements of each window) of a streamed image."""

    def __init__(
        self,
        height: int,
        width: int,
        channels: int,
        pool: tuple[int, int],
        stride: tuple[int, int],
        padding: tuple[int, int, int, int],
        in_type: FixedType,
        out_type: FixedType,
        rounding: Rounding = Rounding.CONVERGENT,
    ):
        if _has_padding_only_windows(WindowGeometry(height, width, pool, stride, padding)):
            raise RtlgenError(
                f"average pool {pool} with padding {padding} has windows made only of padding; not supported"
            )
        window = WindowGenerator(
            height, width, channels, pool, stride, padding, shape_of(in_type), 0
        )
        reduce = WindowAverage(window.geometry, channels, in_type, out_type, rounding)
        super().__init__(window, reduce, in_type, out_type, channels)


def pool_from_node(node: ir.Pool, in_type: FixedType) -> MaxPool | AvgPool:
    """The pooling component of a lowered `ir.Pool` node (1D pools: height 1)."""
    assert node.out_type is not None
    height, width, channels = ir.spatial(node.in_shape)
    cls = MaxPool if node.kind is ir.PoolKind.MAX else AvgPool
    return cls(
        height,
        width,
        channels,
        node.pool,
        node.stride,
        node.padding,
        in_type,
        node.out_type,
        node.rounding,
    )


__all__ = ["AvgPool", "MaxPool", "Reciprocal", "WindowAverage", "WindowMax", "pool_from_node"]
