"""Constant matrix-vector product ``y = x @ W + b`` as a pipelined shift-and-add graph."""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Cat, Const, Module, Shape, ShapeLike, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from rtlgen.quant.errors import RtlgenError
from rtlgen.quant.fixed import FixedType

from . import mac_verilog
from .adder_graph import MULTIPLIER_MODES, MatVecPlan, Term, plan_matvec, width_of
from .common import Multiplier, shape_of, value_range
from .stream_util import StageRegisters, pipeline_control


def interval_shape(lo: int, hi: int) -> Shape:
    """The narrowest Amaranth shape holding [lo, hi]."""
    return signed(width_of(lo, hi)) if lo < 0 else unsigned(width_of(lo, hi))


class ConstantMatVec(wiring.Component):
    """``y = x @ weights + bias`` for a streamed vector ``x`` and constant integer weights.

    ``weights`` (K, O) and ``bias`` (O,) are integer mantissas already aligned to the
    accumulator (`quant.arith.aligned_weights`, bias shifted to ``acc_type.frac``); each
    output element is the exact accumulator in ``acc_type`` (from `accumulator_type`).

    Arithmetic (see `adder_graph`): zero weights produce nothing; ``+-2**k`` are wires;
    other weights are CSD shift-and-add terms (``multiplier="lut"``), registered ``*`` by
    the odd part of the weight that synthesis maps to DSPs (``"dsp"``), or LUT when the CSD
    has at most 2 digits or the product is at most 10 bits wide, else DSP (``"auto"``).
    Pairs of terms that recur across columns are built once and shared. Each column's terms
    and its bias are summed by an adder tree whose partial sums are exactly as wide as
    their value intervals.

    Contract: ``i`` takes one vector of K elements of ``in_shape`` per cycle (II = 1), ``o``
    gives the O accumulators ``latency`` cycles later (`stream_util.pipeline_control`:
    ``i.ready = ~o.valid | o.ready``). Pipelining: at most ``levels_per_stage`` adders in
    series between registers (the adder graph is scheduled as soon as possible; an adder
    that would exceed the budget starts a new stage); ``input_levels`` is the logic depth
    already spent on ``i.payload`` in its cycle by a combinational upstream (e.g. a
    `Requantize` with latency 0). ``output_levels=None`` (default) registers the outputs:
    ``latency = last adder stage + 1``. An int leaves ``o.payload`` combinational, keeping
    that many levels of the last stage free for the consumer, which must register
    (e.g. a `Requantize` with latency 1: its narrow outputs are the only registers):
    ``latency = last adder stage`` (0 is possible: a purely combinational block).
    ``in_range``: the inputs' [min, max] when narrower than ``in_shape`` (narrower adders).

    Counts: ``multipliers`` (distinct non-trivial constant products, i.e. input times an odd
    ``|w| > 1``, however implemented), ``dsp_multipliers`` (those built as ``*``),
    ``adders`` (two-input adders/subtractors, negations included), ``nonzero_weights``.
    """

    def __init__(
        self,
        weights: np.ndarray,
        in_shape: FixedType | ShapeLike,
        acc_type: FixedType,
        bias: np.ndarray | None = None,
        multiplier: Multiplier = Multiplier.AUTO,
        *,
        in_range: tuple[int, int] | None = None,
        levels_per_stage: int = 3,
        input_levels: int = 0,
        output_levels: int | None = None,
    ):
        w = np.asarray(weights)
        if w.ndim != 2 or 0 in w.shape:
            raise RtlgenError(
                f"ConstantMatVec: weights must be a non-empty (K, O) matrix, got shape {w.shape}"
            )
        if not np.issubdtype(w.dtype, np.integer):
            raise RtlgenError(
                f"ConstantMatVec: weights must be integer mantissas, got dtype {w.dtype}"
            )
        if multiplier not in MULTIPLIER_MODES:
            raise RtlgenError(
                f"ConstantMatVec: multiplier {multiplier!r} is not supported (use one of {MULTIPLIER_MODES})"
            )
        n_in, n_out = w.shape
        if bias is not None:
            bias = np.asarray(bias).reshape(-1)
            if bias.shape != (n_out,):
                raise RtlgenError(
                    f"ConstantMatVec: bias has shape {bias.shape}, expected ({n_out},)"
                )
        self.in_shape = (
            shape_of(in_shape) if isinstance(in_shape, FixedType) else Shape.cast(in_shape)
        )
        self.acc_type = acc_type
        self.weights = w.astype(np.int64)
        self.bias = None if bias is None else bias.astype(np.int64)
        self.multiplier = multiplier
        self.in_range = value_range(self.in_shape) if in_range is None else tuple(in_range)
        self.plan: MatVecPlan = plan_matvec(
            self.weights,
            [self.in_range] * n_in,
            self.bias,
            multiplier=multiplier,
            levels_per_stage=levels_per_stage,
            input_levels=input_levels,
            output_levels=output_levels,
        )
        for j, (lo, hi) in enumerate(self.plan.out_ranges):
            if lo < acc_type.min_int or hi > acc_type.max_int:
                raise RtlgenError(
                    f"ConstantMatVec: output {j} ranges over [{lo}, {hi}], which does not fit "
                    f"the accumulator {acc_type} (use quant.arith.accumulator_type)"
                )
        super().__init__(
            {
                "i": In(stream.Signature(data.ArrayLayout(self.in_shape, n_in))),
                "o": Out(stream.Signature(data.ArrayLayout(shape_of(acc_type), n_out))),
            }
        )

    # -- counts ----------------------------------------------------------------------
    @property
    def latency(self) -> int:
        return self.plan.latency

    @property
    def multipliers(self) -> int:
        return self.plan.multipliers

    @property
    def dsp_multipliers(self) -> int:
        return self.plan.dsp_multipliers

    @property
    def adders(self) -> int:
        return self.plan.adders

    @property
    def nonzero_weights(self) -> int:
        return self.plan.nonzero_weights

    @property
    def output_depth(self) -> int:
        """Adder levels in series on ``o.payload`` in its cycle (0 when registered): the
        ``input_levels`` to give a combinational consumer's successor."""
        return self.plan.output_depth

    @property
    def out_ranges(self) -> list[tuple[int, int]]:
        """Exact [min, max] of each output over all inputs (narrower than ``acc_type``)."""
        return list(self.plan.out_ranges)

    # -- hardware --------------------------------------------------------------------
    def elaborate(self, platform):
        text_modules = mac_verilog.active()
        if text_modules is not None:
            # Verilog emission: an instance of the same datapath written as text
            return text_modules.instance(self)
        m = Module()
        plan = self.plan
        advance = pipeline_control(m, self.i, self.o, plan.latency)
        regs = StageRegisters(advance)
        base: list[Value] = []

        def at(node: int, cycle: int) -> Value:
            """The value of ``node`` as seen in ``cycle`` (through delay registers)."""
            return regs.delay(base[node], cycle - plan.nodes[node].cycle, name=f"n{node}")

        def term_value(t: Term, cycle: int) -> Value:
            # shift_left is wiring; `<< int` would be a shifter cell (a variable shift)
            v = at(t.node, cycle).shift_left(t.shift)
            return -v if t.sign < 0 else v

        for index, node in enumerate(plan.nodes):
            shape = interval_shape(node.lo, node.hi)
            if node.kind == "input":
                base.append(self.i.payload[node.index])
            elif node.kind == "const":
                base.append(Const(node.factor, shape))
            elif node.kind == "mul":
                x = at(node.index, node.cycle - 1)  # input nodes come first: id == index
                base.append(regs.register(x * node.factor, shape, name=f"n{index}_mul"))
            else:
                result = Signal(shape, name=f"n{index}")
                m.d.comb += result.eq(self._sum(node.operands, node.cycle, at, term_value))
                base.append(result)

        if plan.registered_output:
            # Constant columns: a register whose init is the constant (and never changes).
            init = [
                int(b) if t is None else 0 for t, b in zip(plan.outputs, plan.bias, strict=True)
            ]
            result = Signal(self.o.payload.shape(), reset_less=True, init=init)
            for j, t in enumerate(plan.outputs):
                if t is not None:
                    regs.load(result[j], term_value(t, plan.latency - 1))
            m.d.comb += self.o.payload.eq(result)
        else:
            for j, (t, b) in enumerate(zip(plan.outputs, plan.bias, strict=True)):
                value = (
                    Const(b, self.o.payload[j].shape())
                    if t is None
                    else term_value(t, plan.latency)
                )
                m.d.comb += self.o.payload[j].eq(value)
        regs.emit(m)
        return m

    @staticmethod
    def _sum(operands: tuple[Term, ...], cycle: int, at, term_value) -> Value:
        if len(operands) == 2:
            low, high = operands
            a = at(low.node, cycle)
            if low.shift == 0 and low.sign > 0 and 0 < high.shift < len(a):
                # The low bits of the unshifted operand pass through: no adder bits there.
                b = at(high.node, cycle)
                a_high = a.shift_right(high.shift)
                upper = a_high + b if high.sign > 0 else a_high - b
                bits = Cat(a.as_unsigned()[: high.shift], upper)
                return bits.as_signed() if upper.shape().signed else bits
        # Negative terms are subtracted: one subtractor instead of a negation and an adder.
        ordered = sorted(operands, key=lambda t: -t.sign)
        total = term_value(ordered[0], cycle)
        for t in ordered[1:]:
            v = at(t.node, cycle).shift_left(t.shift)
            total = total - v if t.sign < 0 else total + v
        return total
