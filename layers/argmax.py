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


#: candidates compared all-pairs in one register stage: a winner needs <= 5 compare bits
#: (one LUT) and its value a 6-way AND-OR select (two LUT levels)
GROUP = 6
#: pairwise stages: a compare and a 2-way select, for one adder per pipeline stage
PAIRWISE = 2


def group_for(adders_per_stage: int) -> int:
    """Candidates per arg-max stage under the MAC arrays' depth budget (`HardwareOptions.
    adders_per_stage`): a stage is a compare (about an adder) plus its select, so one adder
    per stage (the shallowest pipeline, e.g. for 4-input-LUT devices such as ECP5) gets
    pairwise stages, and two or more (~4 LUT levels and up) the 6-candidate stages."""
    return PAIRWISE if adders_per_stage <= 1 else GROUP


def _stages(n: int, group: int = GROUP) -> int:
    stages = 1
    while n > group:
        n = -(-n // group)
        stages += 1
    return stages


class ArgMax(wiring.Component):
    """Vector in, the same vector plus the index of its maximum out (first max wins on ties).

    Register stages of all-pairs tournaments: the candidates are cut into groups of up to
    ``group`` (`GROUP`, 6, or 2: `group_for`); in each group every pair is compared at once,
    the one candidate that beats every earlier one and is not beaten by any later one wins,
    and its value and index are selected by AND-OR. The vector is delayed alongside. Contract: II = 1,
    ``latency = ceil(log_group(n))`` stages, at least 1 (group 6: 1 up to 6 classes, 2 up to
    36) (`stream_util.pipeline_control`); about 4 LUT levels per stage for group 6, a compare
    and a 2-way select for group 2.
    """

    def __init__(self, n: int, elem_shape: ShapeLike, group: int = GROUP):
        if n < 1:
            raise RtlgenError(f"ArgMax: needs at least one element, got {n}")
        if not 2 <= group <= GROUP:
            raise RtlgenError(f"ArgMax: group {group} is not supported (use 2 to {GROUP})")
        self.n = n
        self.group = group
        self.elem_shape = elem_shape
        super().__init__(
            {
                "i": In(stream.Signature(data.ArrayLayout(elem_shape, n))),
                "o": Out(stream.Signature(argmax_layout(n, elem_shape))),
            }
        )

    @property
    def latency(self) -> int:
        return _stages(self.n, self.group)

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
        index_shape = self.o.payload.index.shape()
        elem = Shape.cast(self.elem_shape)
        level = [(self.i.payload[k], Const(k, index_shape)) for k in range(self.n)]
        for depth in range(self.latency):
            last = depth == self.latency - 1
            nxt = []
            for g in range(0, len(level), self.group):
                group = level[g : g + self.group]
                wins = self._winners(m, [value for value, _ in group], f"{depth}_{g // self.group}")
                index = _select(wins, [i for _, i in group], index_shape.width)
                value = None  # the last stage only needs the index
                if not last:
                    bits = _select(wins, [v.as_unsigned() for v, _ in group], elem.width)
                    value = regs.register(
                        bits.as_signed() if elem.signed else bits, elem,
                        name=f"max_{depth}_{g // self.group}",
                    )
                nxt.append(
                    (
                        value,
                        regs.register(
                            index, index_shape, name=f"idx_{depth}_{g // self.group}"
                        ),
                    )
                )
            level = nxt
        vector = Signal.like(self.i.payload.as_value(), name="vector_in")
        m.d.comb += vector.eq(self.i.payload.as_value())
        delayed = regs.delay(vector, self.latency, name="vector")
        regs.emit(m)
        m.d.comb += [
            self.o.payload.vector.eq(delayed),
            self.o.payload.index.eq(level[0][1]),
        ]
        return m

    @staticmethod
    def _winners(m: Module, values: list, name: str) -> list:
        """One-hot: candidate k wins if it is greater than every earlier candidate and no
        later one is greater than it (the first maximum wins)."""
        n = len(values)
        later_greater = {
            (i, j): values[j] > values[i] for i in range(n) for j in range(i + 1, n)
        }
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
