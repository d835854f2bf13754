"""Small Amaranth designs that obey the generated top-level port contract (docs/DESIGN.md).

Used to test `rtlgen.sim_tb` before the real network generator exists, and reusable by anyone
who needs a known-good (or known-bad) streaming design with a manifest and reference vectors.

`ChannelSumDut`: per sample of shape (4, 3) int8 (4 beats of 3 elements), outputs the sums of
channel 0 and channel 1 over the sample as two int10 elements, tuser = arg-max of the two
(first max wins). Channel 2 is ignored by the arithmetic; with `faulty=True` it selects a
fault when the first beat of a sample carries a magic value there (see `FAULT_*`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from amaranth import Module, Signal, signed
from amaranth.back import verilog
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

IN_BEATS = 4
IN_ELEMENTS = 3
IN_WIDTH = 8
OUT_WIDTH = 10
OUT_ELEMENTS = 2

# Magic values of channel 2 in the first beat of a sample that trigger faults in a faulty DUT.
FAULT_DATA = 100  # output element 1 is one too large
FAULT_TUSER = 101  # tuser names the wrong class
FAULT_TLAST = 102  # tlast missing on the sample's last output beat
FAULT_LOSE = 103  # the sample's output never appears (a stream that loses data)


def _signed_field(word, index: int, width: int):
    return word[index * width : (index + 1) * width].as_signed()


class ChannelSumDut(wiring.Component):
    """Per sample, the sums of input channels 0 and 1 over 4 beats, as one or two output beats.

    Contract: input beats are accepted on every cycle unless the output pipeline is full
    (`s_axis_tready = stage0 free`); `out_stages` registered stages, each loaded only when
    empty or draining, so `m_axis_tready` low stalls cleanly and nothing is lost or duplicated.
    With `out_beats=1` one beat carries both sums; with `out_beats=2` each sum is its own beat
    (tlast on the second), which costs one extra cycle per sample at the output. After the
    last beat of a sample, s_axis_tready stays low for `gap_cycles` cycles.
    At full rate: latency = IN_BEATS - 1 + out_stages + (out_beats - 1) cycles,
    II = IN_BEATS + gap_cycles.
    """

    def __init__(
        self, *, out_stages: int = 2, out_beats: int = 1, gap_cycles: int = 0, faulty: bool = False
    ):
        assert out_stages >= 1 and out_beats in (1, 2) and gap_cycles >= 0
        self.out_stages, self.out_beats, self.faulty = out_stages, out_beats, faulty
        self.gap_cycles = gap_cycles
        self.out_elements_per_beat = OUT_ELEMENTS // out_beats
        super().__init__(
            {
                "s_axis_tdata": In(IN_ELEMENTS * IN_WIDTH),
                "s_axis_tvalid": In(1),
                "s_axis_tready": Out(1),
                "s_axis_tlast": In(1),
                "m_axis_tdata": Out(self.out_elements_per_beat * OUT_WIDTH),
                "m_axis_tvalid": Out(1),
                "m_axis_tready": In(1),
                "m_axis_tlast": Out(1),
                "m_axis_tuser": Out(1),
            }
        )

    @property
    def latency(self) -> int:
        return IN_BEATS - 1 + self.out_stages + (self.out_beats - 1)

    @property
    def ii(self) -> int:
        return IN_BEATS + self.gap_cycles

    def elaborate(self, platform):
        m = Module()
        beat = Signal(range(IN_BEATS))
        acc = [Signal(signed(OUT_WIDTH), name=f"acc{c}") for c in range(OUT_ELEMENTS)]
        fault = Signal(3)  # 0 none, 1 data, 2 tuser, 3 tlast, 4 lose; latched from beat 0

        # Pipeline of result registers: sums, class, fault code, valid.
        sums = [
            [Signal(signed(OUT_WIDTH), name=f"sum{c}_s{k}") for c in range(OUT_ELEMENTS)]
            for k in range(self.out_stages)
        ]
        cls = [Signal(name=f"cls_s{k}") for k in range(self.out_stages)]
        flt = [Signal(3, name=f"fault_s{k}") for k in range(self.out_stages)]
        valid = [Signal(name=f"valid_s{k}") for k in range(self.out_stages)]
        ready = [Signal(name=f"ready_s{k}") for k in range(self.out_stages)]
        out_beat = Signal(range(self.out_beats))  # which output beat of the last stage is shown

        last_out = out_beat == self.out_beats - 1
        m.d.comb += ready[-1].eq(~valid[-1] | (self.m_axis_tready & last_out))
        for k in range(self.out_stages - 1):
            m.d.comb += ready[k].eq(~valid[k] | ready[k + 1])

        x = [_signed_field(self.s_axis_tdata, c, IN_WIDTH) for c in range(IN_ELEMENTS)]
        take = self.s_axis_tvalid & self.s_axis_tready
        gap = Signal(range(self.gap_cycles + 1))
        m.d.comb += self.s_axis_tready.eq(ready[0] & (gap == 0))
        with m.If(take & (beat == IN_BEATS - 1)):
            m.d.sync += gap.eq(self.gap_cycles)
        with m.Elif(gap != 0):
            m.d.sync += gap.eq(gap - 1)
        with m.If(take):
            with m.If(beat == IN_BEATS - 1):
                m.d.sync += beat.eq(0)
                for c in range(OUT_ELEMENTS):
                    m.d.sync += acc[c].eq(0)
            with m.Else():
                m.d.sync += beat.eq(beat + 1)
                for c in range(OUT_ELEMENTS):
                    m.d.sync += acc[c].eq(acc[c] + x[c])
            with m.If(beat == 0):
                if self.faulty:
                    with m.Switch(x[2]):
                        faults = (FAULT_DATA, FAULT_TUSER, FAULT_TLAST, FAULT_LOSE)
                        for code, magic in enumerate(faults, start=1):
                            with m.Case(magic):
                                m.d.sync += fault.eq(code)
                        with m.Default():
                            m.d.sync += fault.eq(0)

        # Stage 0 loads the finished sums with the last input beat.
        final = [acc[c] + x[c] for c in range(OUT_ELEMENTS)]
        with m.If(ready[0]):
            m.d.sync += valid[0].eq(take & (beat == IN_BEATS - 1) & (fault != 4))
            for c in range(OUT_ELEMENTS):
                m.d.sync += sums[0][c].eq(final[c])
            m.d.sync += cls[0].eq(final[1] > final[0]), flt[0].eq(fault)
        for k in range(1, self.out_stages):
            with m.If(ready[k]):
                m.d.sync += valid[k].eq(valid[k - 1]), cls[k].eq(cls[k - 1]), flt[k].eq(flt[k - 1])
                for c in range(OUT_ELEMENTS):
                    m.d.sync += sums[k][c].eq(sums[k - 1][c])

        out_sums = list(sums[-1])
        out_cls, out_flt = cls[-1], flt[-1]
        data1 = Signal(signed(OUT_WIDTH))
        m.d.comb += data1.eq(out_sums[1] + (out_flt == 1))
        elements = [out_sums[0], data1]
        if self.out_beats == 1:
            m.d.comb += self.m_axis_tdata.eq(
                elements[0].as_unsigned() | (elements[1].as_unsigned() << OUT_WIDTH)
            )
        else:
            with m.If(out_beat == 0):
                m.d.comb += self.m_axis_tdata.eq(elements[0].as_unsigned())
            with m.Else():
                m.d.comb += self.m_axis_tdata.eq(elements[1].as_unsigned())
            with m.If(self.m_axis_tvalid & self.m_axis_tready):
                m.d.sync += out_beat.eq(~last_out)
        m.d.comb += [
            self.m_axis_tvalid.eq(valid[-1]),
            self.m_axis_tlast.eq(last_out & (out_flt != 3)),
            self.m_axis_tuser.eq(out_cls ^ (out_flt == 2)),
        ]
        return m


def reference(x_int: np.ndarray, *, out_beats: int = 1) -> np.ndarray:
    """Expected output of a correct `ChannelSumDut`: shape (N, 2) (or (N, 2, 1) with 2 beats)."""
    sums = x_int[:, :, :OUT_ELEMENTS].sum(axis=1).astype(np.int64)
    return sums.reshape(len(x_int), OUT_ELEMENTS) if out_beats == 1 else sums.reshape(-1, 2, 1)


def classes_and_outputs(x_int: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(tuser, outputs) of a correct one-beat `ChannelSumDut`; tuser is the arg-max of the two
    sums (first max wins)."""
    outputs = reference(x_int)
    return (outputs[:, 1] > outputs[:, 0]).astype(np.int64), outputs


def random_inputs(count: int, seed: int) -> np.ndarray:
    """int8 samples of shape (count, 4, 3) whose channel 2 never hits a fault trigger."""
    rng = np.random.default_rng(seed)
    x_int = rng.integers(-128, 128, size=(count, IN_BEATS, IN_ELEMENTS), dtype=np.int64)
    x_int[:, :, 2] = np.where(x_int[:, :, 2] >= FAULT_DATA, x_int[:, :, 2] - 50, x_int[:, :, 2])
    return x_int


def manifest(
    top: str = "chansum",
    *,
    out_stages: int = 2,
    out_beats: int = 1,
    gap_cycles: int = 0,
    faulty: bool = False,
) -> dict:
    """The manifest.json contents of `ChannelSumDut(**options)` written as `rtl/<top>.v`."""
    out_shape = [2] if out_beats == 1 else [2, 1]
    per_beat = OUT_ELEMENTS // out_beats
    return {
        "format_version": 1,
        "top": top,
        "rtl": [f"rtl/{top}.v"],
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
            "shape": out_shape,
            "beats_per_sample": out_beats,
            "elements_per_beat": per_beat,
            "type": {"width": OUT_WIDTH, "frac": 0, "signed": True},
            "tdata_width": per_beat * OUT_WIDTH,
            "tuser_width": 1,
            "classes": 2,
        },
        "latency_cycles": IN_BEATS - 1 + out_stages + (out_beats - 1),
        "ii_cycles": IN_BEATS + gap_cycles,
        "layers": [],
        "options": {},
        "generator": {"rtlgen": "test", "seconds": 0.0},
    }


def write_outdir(outdir: Path, top: str = "chansum", **dut_options) -> dict:
    """Write OUTDIR/rtl/<top>.v and OUTDIR/manifest.json for a `ChannelSumDut`; return the manifest."""
    dut = ChannelSumDut(**dut_options)
    outdir = Path(outdir)
    (outdir / "rtl").mkdir(parents=True, exist_ok=True)
    (outdir / "rtl" / f"{top}.v").write_text(verilog.convert(dut, name=top))
    contents = manifest(top, **dut_options)
    assert (contents["latency_cycles"], contents["ii_cycles"]) == (dut.latency, dut.ii)
    (outdir / "manifest.json").write_text(json.dumps(contents, indent=2))
    return contents
