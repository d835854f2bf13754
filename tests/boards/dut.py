"""A stand-in network for the board tests, obeying the top-level port contract of docs/DESIGN.md.

`PairSums`: a sample is 4 beats of 3 int8 elements; the answer is one beat of 2 int12 elements,
`sum0 = sum over beats of (x0 + x1)` and `sum1 = sum over beats of (x2 - x1)`, with
`m_axis_tuser` = arg-max of the two (first max wins). Fully pipelined (one beat per cycle); a
low `m_axis_tready` stalls the input.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from amaranth import Cat, Module, Signal, signed
from amaranth.back import verilog
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

TOP = "pairsums"
IN_BEATS, IN_ELEMENTS, IN_WIDTH = 4, 3, 8
OUT_ELEMENTS, OUT_WIDTH = 2, 12


class PairSums(wiring.Component):
    """See the module docstring. Latency: the answer is valid the cycle after the 4th beat."""

    def __init__(self):
        super().__init__(
            {
                "s_axis_tdata": In(IN_ELEMENTS * IN_WIDTH),
                "s_axis_tvalid": In(1),
                "s_axis_tready": Out(1),
                "s_axis_tlast": In(1),
                "m_axis_tdata": Out(OUT_ELEMENTS * OUT_WIDTH),
                "m_axis_tvalid": Out(1),
                "m_axis_tready": In(1),
                "m_axis_tlast": Out(1),
                "m_axis_tuser": Out(1),
            }
        )

    def elaborate(self, platform):
        m = Module()
        x = [self.s_axis_tdata.word_select(i, IN_WIDTH).as_signed() for i in range(IN_ELEMENTS)]
        acc0 = Signal(signed(OUT_WIDTH), name="acc0")
        acc1 = Signal(signed(OUT_WIDTH), name="acc1")
        sum0 = Signal(signed(OUT_WIDTH), name="sum0")
        sum1 = Signal(signed(OUT_WIDTH), name="sum1")
        beat = Signal(range(IN_BEATS))
        next0, next1 = acc0 + x[0] + x[1], acc1 + x[2] - x[1]

        m.d.comb += [
            self.s_axis_tready.eq(~self.m_axis_tvalid | self.m_axis_tready),
            self.m_axis_tdata.eq(Cat(sum0, sum1)),
            self.m_axis_tlast.eq(1),
            self.m_axis_tuser.eq(sum1 > sum0),
        ]
        with m.If(self.m_axis_tvalid & self.m_axis_tready):
            m.d.sync += self.m_axis_tvalid.eq(0)
        with m.If(self.s_axis_tvalid & self.s_axis_tready):
            with m.If(beat == IN_BEATS - 1):
                m.d.sync += [sum0.eq(next0), sum1.eq(next1), self.m_axis_tvalid.eq(1)]
                m.d.sync += [acc0.eq(0), acc1.eq(0), beat.eq(0)]
            with m.Else():
                m.d.sync += [acc0.eq(next0), acc1.eq(next1), beat.eq(beat + 1)]
        return m


def reference(x_int: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(classes, outputs) for samples of shape (N, 4, 3)."""
    x = np.asarray(x_int, dtype=np.int64)
    outputs = np.stack([(x[:, :, 0] + x[:, :, 1]).sum(1), (x[:, :, 2] - x[:, :, 1]).sum(1)], 1)
    return (outputs[:, 1] > outputs[:, 0]).astype(np.int64), outputs


def manifest_dict() -> dict:
    return {
        "format_version": 1,
        "top": TOP,
        "rtl": [f"rtl/{TOP}.v"],
        "clock": "clk",
        "reset": "rst",
        "reset_active_high": True,
        "input": {
            "shape": [IN_BEATS, IN_ELEMENTS],
            "beats_per_sample": IN_BEATS,
            "elements_per_beat": IN_ELEMENTS,
            "type": {"width": IN_WIDTH, "frac": 0, "signed": True},
            "tdata_width": IN_ELEMENTS * IN_WIDTH,
        },
        "output": {
            "shape": [OUT_ELEMENTS],
            "beats_per_sample": 1,
            "elements_per_beat": OUT_ELEMENTS,
            "type": {"width": OUT_WIDTH, "frac": 0, "signed": True},
            "tdata_width": OUT_ELEMENTS * OUT_WIDTH,
            "tuser_width": 1,
            "classes": OUT_ELEMENTS,
        },
        "latency_cycles": IN_BEATS,
        "ii_cycles": IN_BEATS,
        "layers": [],
        "options": {},
        "generator": {"rtlgen": "test", "seconds": 0.0},
    }


def write_outdir(outdir: Path) -> Path:
    """Write an OUTDIR (rtl/pairsums.v + manifest.json) for the stand-in network."""
    (outdir / "rtl").mkdir(parents=True, exist_ok=True)
    (outdir / "rtl" / f"{TOP}.v").write_text(verilog.convert(PairSums(), name=TOP))
    (outdir / "manifest.json").write_text(json.dumps(manifest_dict(), indent=2))
    return outdir
