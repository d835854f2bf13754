"""Arg-max of a streamed vector (the class index of a classifier's logits)."""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, ShapeLike, Signal, unsigned
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


class ArgMax(wiring.Component):
    """Vector in, the same vector plus the index of its maximum out (first max wins on ties).

    A binary tree of compare-and-select nodes, one registered level per tree level, the
    vector delayed alongside. Contract: II = 1, ``latency = max(1, ceil(log2(n)))``
    (`stream_util.pipeline_control`).
    """

    def __init__(self, n: int, elem_shape: ShapeLike):
        if n < 1:
            raise RtlgenError(f"ArgMax: needs at least one element, got {n}")
        self.n = n
        self.elem_shape = elem_shape
        super().__init__(
            {
                "i": In(stream.Signature(data.ArrayLayout(elem_shape, n))),
                "o": Out(stream.Signature(argmax_layout(n, elem_shape))),
            }
        )

    @property
    def latency(self) -> int:
        return max(1, ceil_log2(self.n))

    def elaborate(self, platform):
        m = Module()
        advance = pipeline_control(m, self.i, self.o, self.latency)
        regs = StageRegisters(advance)
        index_shape = self.o.payload.index.shape()
        # Each candidate: (value, index). Left candidates hold lower indices, so keeping the
        # left one unless the right one is strictly greater makes the first maximum win.
        level = [(self.i.payload[k], Const(k, index_shape)) for k in range(self.n)]
        depth = 0
        while len(level) > 1 or depth == 0:
            nxt = []
            for p in range(0, len(level) - 1, 2):
                (a, ia), (b, ib) = level[p], level[p + 1]
                right = b > a
                nxt.append(
                    (
                        regs.register(
                            Mux(right, b, a), self.elem_shape, name=f"max_{depth}_{p // 2}"
                        ),
                        regs.register(
                            Mux(right, ib, ia), index_shape, name=f"idx_{depth}_{p // 2}"
                        ),
                    )
                )
            if len(level) % 2:
                value, index = level[-1]
                nxt.append(
                    (
                        regs.register(
                            value, self.elem_shape, name=f"max_{depth}_{len(level) // 2}"
                        ),
                        regs.register(index, index_shape, name=f"idx_{depth}_{len(level) // 2}"),
                    )
                )
            level = nxt
            depth += 1
        vector = Signal.like(self.i.payload.as_value(), name="vector_in")
        m.d.comb += vector.eq(self.i.payload.as_value())
        delayed = regs.delay(vector, self.latency, name="vector")
        regs.emit(m)
        m.d.comb += [
            self.o.payload.vector.eq(delayed),
            self.o.payload.index.eq(level[0][1]),
        ]
        return m
