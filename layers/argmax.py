"""Arg-max of a streamed vector (the class index of a classifier's logits)."""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Shape, ShapeLike, Signal, Value, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from rtlgen.quant.errors import RtlgenError

from .stream_util import StageRegisters, pipeline_control


def argmax_layout(n: int, elem_shape: ShapeLike) -> data.StructLayout:
    """Output payload: the input ``vector`` unchanged and the ``index`` of its maximum."""
    return data.StructLayout(
        {
            "vector": data.ArrayLayout(elem_shape, n),
            "index": unsigned(max(1, ceil_log2(n))),
        }
    )


#: candidates per tournament of the registered-compare levels: a winner is an AND of <= 5
#: registered compare bits (one LUT5) and its value a 6-way AND-OR select (two LUT levels)
GROUP = 6
#: pairwise stages: a compare and a 2-way select, for one adder per pipeline stage
PAIRWISE = 2
#: the most candidates of the last registered-compare level: every pair compared at once and
#: only the index selected (one-hot winner to binary: about 4 LUT4 levels), so a 10-class
#: classifier's arg-max takes one level (2 cycles)
FINAL_GROUP = 10


def group_for(adders_per_stage: int) -> int:
    """Candidates per arg-max tournament under the MAC arrays' depth budget (`HardwareOptions.
    adders_per_stage`): one adder per stage (the shallowest pipeline) gets pairwise stages
    (a compare and a 2-way select per cycle), two or more the 6-candidate tournaments whose
    compares are registered before the winner is selected (`ArgMax`)."""
    return PAIRWISE if adders_per_stage <= 1 else GROUP


def level_sizes(n: int, group: int = GROUP, registered: bool | None = None) -> list[int]:
    """Candidates per tournament at each level of an `ArgMax` of ``n`` elements: ``group``
    while more than the last level takes remain, then all the rest in one tournament (at
    most ``group`` in one-cycle levels, `FINAL_GROUP` with registered compares; ``registered``
    defaults to ``group`` > 2)."""
    registered = group != PAIRWISE if registered is None else registered
    final = FINAL_GROUP if registered else group
    sizes = []
    while n > final:
        sizes.append(group)
        n = -(-n // group)
    return [*sizes, n]


class ArgMax(wiring.Component):
    """Vector in, the same vector plus the index of its maximum out (first max wins on ties).

    Levels of all-pairs tournaments (`level_sizes`): the candidates are cut into groups; in
    each group every pair is compared, the one candidate that beats every earlier one and is
    not beaten by any later one wins, and its value and index are selected by AND-OR (the
    last level selects the index only). The vector is delayed alongside.

    One-cycle levels (``group`` 2, `PAIRWISE`, `group_for` of one adder per stage: a compare
    and a 2-way select; or ``group`` 3-6, `GROUP` by default: every pair of up to 6 compared
    and the winner selected in one cycle, about 4 LUT6 levels). Registered compares
    (`registered_compares`, ``group`` > 2; by default only for 7-10 candidates, where they
    cost no cycle: a 10-class classifier): two cycles per level, the compare bits registered
    first (a compare alone: one carry chain), then the winner's select (an AND of the group's
    compare bits and an AND-OR: about 3 LUT4 levels); the last level takes up to
    `FINAL_GROUP` candidates at once. Nothing between their registers is deeper than a
    compare or a few LUTs (issue 18: on ECP5 the demo's one-cycle 6-way stage was the
    critical path, at 81 MHz).

    Contract: II = 1, ``latency`` = levels (one-cycle) or 2 x levels (registered compares),
    at least 1 (`stream_util.pipeline_control`); e.g. 10 classes: 4 pairwise, 2 otherwise;
    5 classes: 1 with group 6.
    """

    def __init__(
        self, n: int, elem_shape: ShapeLike, group: int = GROUP, registered: bool | None = None
    ):
        if n < 1:
            raise RtlgenError(f"ArgMax: needs at least one element, got {n}")
        if not 2 <= group <= GROUP:
            raise RtlgenError(f"ArgMax: group {group} is not supported (use 2 to {GROUP})")
        if registered and group == PAIRWISE:
            raise RtlgenError("ArgMax: pairwise levels have no registered compares")
        self.n = n
        self.group = group
        self._registered = registered
        self.elem_shape = elem_shape
        super().__init__(
            {
                "i": In(stream.Signature(data.ArrayLayout(elem_shape, n))),
                "o": Out(stream.Signature(argmax_layout(n, elem_shape))),
            }
        )

    @property
    def registered_compares(self) -> bool:
        """Whether each level registers its compares before selecting: never pairwise;
        otherwise as constructed (``registered``), by default only where it costs no cycle
        over one-cycle levels of ``group`` (group 6: 7-10 candidates, 2 cycles either way,
        e.g. a 10-class classifier; up to 6 take one cycle, 11-36 two, instead of 2 and 4)."""
        if self.group == PAIRWISE:
            return False
        if self._registered is not None:
            return self._registered
        registered = 2 * len(level_sizes(self.n, self.group, True))
        return registered <= len(level_sizes(self.n, self.group, False))

    @property
    def levels(self) -> list[int]:
        """Candidates per tournament at each level (`level_sizes`)."""
        return level_sizes(self.n, self.group, self.registered_compares)

    @property
    def latency(self) -> int:
        levels = len(self.levels)
        return 2 * levels if self.registered_compares else levels

    def elaborate(self, platform):
        from . import argmax_verilog, mac_verilog

        # Verilog emission: an instance of the same tournament written as text
        text = mac_verilog.text_instance(
            self, ArgMax, lambda _: True, argmax_verilog.argmax_verilog, "argmax"
        )
        if text is not None:
            return text
        m = Module()
        advance = pipeline_control(m, self.i, self.o, self.latency)
        regs = StageRegisters(advance)
        vector = Signal.like(self.i.payload.as_value(), name="vector_in")
        m.d.comb += vector.eq(self.i.payload.as_value())
        if self.registered_compares:
            index = self._registered_levels(m, regs, vector)
        else:
            index = self._one_cycle_levels(m, regs)
        delayed = regs.delay(vector, self.latency, name="vector")
        regs.emit(m)
        m.d.comb += [
            self.o.payload.vector.eq(delayed),
            self.o.payload.index.eq(index),
        ]
        return m

    def _one_cycle_levels(self, m: Module, regs: StageRegisters) -> Value:
        """One cycle per level: compare, select and register (``group`` 2, or up to ``group``
        candidates per tournament without registered compares)."""
        index_shape = self.o.payload.index.shape()
        elem = Shape.cast(self.elem_shape)
        level = [(self.i.payload[k], Const(k, index_shape)) for k in range(self.n)]
        sizes = self.levels
        for depth, size in enumerate(sizes):
            last = depth == len(sizes) - 1
            nxt = []
            for g in range(0, len(level), size):
                group = level[g : g + size]
                tag = f"{depth}_{g // size}"
                values = [value for value, _ in group]
                later_greater = {
                    (i, j): values[j] > values[i]
                    for i in range(len(group))
                    for j in range(i + 1, len(group))
                }
                wins = _winners(m, later_greater, len(group), tag)
                index = _select(wins, [i for _, i in group], index_shape.width)
                value = None  # the last stage only needs the index
                if not last:
                    bits = _select(wins, [v.as_unsigned() for v in values], elem.width)
                    value = regs.register(
                        bits.as_signed() if elem.signed else bits, elem, name=f"max_{tag}"
                    )
                nxt.append((value, regs.register(index, index_shape, name=f"idx_{tag}")))
            level = nxt
        return level[0][1]

    def _registered_levels(self, m: Module, regs: StageRegisters, vector: Signal) -> Value:
        """Two cycles per level (``group`` > 2): the compare bits of every pair in a group
        registered (``gt_<level>_<group>_<i>_<j>``: candidate j > candidate i) beside the
        candidates (the input's through ``vector_d1``, later ones as ``cand_``/``cidx_``),
        then the winner's value and index registered (``max_``/``idx_``)."""
        index_shape = self.o.payload.index.shape()
        elem = Shape.cast(self.elem_shape)
        width = elem.width

        def element(bits: Value, k: int) -> Value:
            value = bits[k * width : (k + 1) * width]
            return value.as_signed() if elem.signed else value

        held_input = regs.delay(vector, 1, name="vector")
        level = [(element(vector, k), Const(k, index_shape)) for k in range(self.n)]
        sizes = self.levels
        for depth, size in enumerate(sizes):
            last = depth == len(sizes) - 1
            nxt = []
            for g in range(0, len(level), size):
                group = level[g : g + size]
                tag = f"{depth}_{g // size}"
                later_greater = {
                    (i, j): regs.register(group[j][0] > group[i][0], 1, name=f"gt_{tag}_{i}_{j}")
                    for i in range(len(group))
                    for j in range(i + 1, len(group))
                }
                if depth == 0:  # the input's candidates: the vector's first delay
                    values = [element(held_input, g + k) for k in range(len(group))]
                    indices = [index for _, index in group]
                else:
                    values = [
                        regs.register(value, elem, name=f"cand_{tag}_{k}")
                        for k, (value, _) in enumerate(group)
                    ]
                    indices = [
                        regs.register(index, index_shape, name=f"cidx_{tag}_{k}")
                        for k, (_, index) in enumerate(group)
                    ]
                wins = _winners(m, later_greater, len(group), tag)
                value = None  # the last level only needs the index
                if not last:
                    bits = _select(wins, [v.as_unsigned() for v in values], width)
                    value = regs.register(
                        bits.as_signed() if elem.signed else bits, elem, name=f"max_{tag}"
                    )
                index = _select(wins, indices, index_shape.width)
                nxt.append((value, regs.register(index, index_shape, name=f"idx_{tag}")))
            level = nxt
        return level[0][1]


def _winners(m: Module, later_greater: dict, n: int, name: str) -> list:
    """One-hot: candidate k wins if it is greater than every earlier candidate and no later
    one is greater than it (the first maximum wins); ``later_greater[i, j]`` (i < j) is
    candidate j > candidate i."""
    wins = []
    for k in range(n):
        win = Signal(name=f"win_{name}_{k}")
        terms = [later_greater[i, k] for i in range(k)] + [
            ~later_greater[k, j] for j in range(k + 1, n)
        ]
        m.d.comb += win.eq(Cat(*terms).all() if terms else 1)
        wins.append(win)
    return wins


def _select(wins: list, values: list, width: int) -> Value:
    """AND-OR multiplexer: the value whose one-hot ``wins`` bit is set."""
    out: Value = Const(0, width)
    for win, value in zip(wins, values, strict=True):
        out = out | Mux(win, value, 0)
    return out[:width]
