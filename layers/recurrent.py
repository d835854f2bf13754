"""A recurrent cell in hardware: one time step of a `rtlgen.quant.recurrent.CellProgram` at a
time, the state in registers.

Each op of the program is built as it is evaluated by the reference: the constant
matrix-vector products as `ConstantMatVec` arrays (zero weights build nothing), activations
as `Requantize` (combinational) + `LookupTable` or as a registered `Requantize`, products,
sums and ``const - v`` as registered arithmetic of exactly the program's widths. Only one
step is in flight: the input beat is held in a register for the whole step, so every value,
once its pipeline has filled, stays valid until the state is written.
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, Value
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from rtlgen.quant.errors import RtlgenError
from rtlgen.quant.fixed import Overflow
from rtlgen.quant.recurrent import CellProgram, VecKind

from .adder_graph import MatVecPlan, plan_matvec
from .common import Multiplier, resize, shape_of, value_range, vector_layout
from .constant_mac import ConstantMatVec
from .lookup import LookupTable
from .requantize import Requantize
from .threshold import ThresholdBank

#: adders in series between the registers of the cell's matrix-vector products
CELL_ADDERS_PER_STAGE = 2


def cell_schedule(
    program: CellProgram,
    multiplier: Multiplier = Multiplier.AUTO,
    adders_per_stage: int = CELL_ADDERS_PER_STAGE,
) -> tuple[dict[str, MatVecPlan], dict[str, int], int]:
    """(the plan of each matrix-vector array, the cycle after a step's beat from which each
    value is valid, the step's depth: the latest of the output and the new state).

    The input and state registers are valid from cycle 1; an array adds its pipeline
    latency, a slice nothing, every other op one register."""
    macs: dict[str, MatVecPlan] = {}
    ready = dict.fromkeys(program.inputs, 1)
    for op in program.ops:
        start = max(ready[a] for a in op.args)
        if op.kind is VecKind.MAC:
            assert op.weights is not None and op.in_type is not None
            in_range = value_range(shape_of(op.in_type))
            macs[op.out] = plan_matvec(
                op.weights,
                [in_range] * op.weights.shape[0],
                op.bias,
                multiplier=multiplier,
                levels_per_stage=adders_per_stage,
            )
            ready[op.out] = start + macs[op.out].latency
        elif op.kind is VecKind.SLICE:
            ready[op.out] = start
        elif op.kind is VecKind.THRESHOLD:
            assert op.thresholds is not None
            ready[op.out] = start + ThresholdBank.latency_for(len(op.thresholds))
        else:
            ready[op.out] = start + 1
    finals = [program.output, *program.next_state.values()]
    return macs, ready, max(ready[name] for name in finals)


class RecurrentCell(wiring.Component):
    """A recurrent layer over sequences of ``steps`` beats (one time step per beat).

    ``i``: one input vector (the program's ``x``) per beat; ``o``: the program's output
    vector, one beat per step (``return_sequences``) or one per sequence (its last step).
    The state registers start at zero and return to zero after a sequence's last step.

    Contract: a beat is taken when the cell is idle and its output register can take the
    step's result (empty, drained in that cycle, or the step emits nothing); the step then
    runs ``depth`` cycles (the longest chain of the program's register stages, the input
    register included); in its last cycle the state and the output register load. So a
    step takes ``step_cycles = depth + 1`` cycles (II of the time steps), the output is
    valid ``step_cycles`` cycles after its beat was taken, and a sequence of ``steps`` beats
    takes ``steps * step_cycles`` cycles. Under output backpressure the result waits in the
    output register and the next emitting step is not taken until it leaves; nothing is
    lost or duplicated.
    """

    def __init__(
        self,
        program: CellProgram,
        steps: int,
        return_sequences: bool,
        multiplier: Multiplier = Multiplier.AUTO,
        adders_per_stage: int = CELL_ADDERS_PER_STAGE,
    ):
        if steps < 1:
            raise RtlgenError(f"RecurrentCell: {steps} steps")
        self.program, self.steps, self.return_sequences = program, steps, return_sequences
        self.multiplier, self.adders_per_stage = multiplier, adders_per_stage
        self.x_type, self.features = program.inputs["x"]
        self.y_type, self.units = program.value(program.output)[:2]
        self.macs, self.ready, self.depth = cell_schedule(program, multiplier, adders_per_stage)
        super().__init__(
            {
                "i": In(stream.Signature(vector_layout(self.x_type, self.features))),
                "o": Out(stream.Signature(vector_layout(self.y_type, self.units))),
            }
        )

    # -- contract and counts ---------------------------------------------------------
    @property
    def step_cycles(self) -> int:
        return self.depth + 1

    @property
    def latency(self) -> int:
        """Cycles from a step's beat to its output (the sequence's last beat without
        ``return_sequences``)."""
        return self.step_cycles

    @property
    def cycles_per_sample(self) -> int:
        return self.steps * self.step_cycles

    @property
    def multipliers(self) -> int:
        """Constant products of the matrix-vector arrays plus one general multiplier per
        lane of an elementwise product (gate times state)."""
        lanes = sum(op.size for op in self.program.ops if op.kind is VecKind.MUL)
        return sum(mac.multipliers for mac in self.macs.values()) + lanes

    @property
    def products(self) -> int:
        return sum(int(op.weights.size) for op in self.program.ops if op.kind is VecKind.MAC)

    @property
    def adders(self) -> int:
        return sum(mac.adders for mac in self.macs.values())

    def emits(self, step: int) -> bool:
        return self.return_sequences or step == self.steps - 1

    def model_timing(self, times: list[int], samples: int) -> tuple[list[int], list[int]]:
        """Forward contract (output always ready): beat k is taken at the later of its
        offer and the previous step's end; a step's output is valid ``step_cycles`` later."""
        accepted, out, free = [], [], 0
        for index, t in enumerate(times):
            t = max(t, free)
            accepted.append(t)
            free = t + self.step_cycles
            if self.emits(index % self.steps):
                out.append(free)
        return accepted, out

    def handshake_blocks(self) -> list:
        """The cell's valid/ready behaviour for `rtlgen.timing`'s handshake model."""
        return [lambda inputs, output: _CellHandshake(inputs, output, self)]

    # -- hardware --------------------------------------------------------------------
    def elaborate(self, platform):
        m = Module()
        program = self.program
        values: dict[str, list[Value]] = {}

        x_reg = [Signal(shape_of(self.x_type), name=f"x{k}") for k in range(self.features)]
        values["x"] = list(x_reg)
        state: dict[str, list[Signal]] = {}
        for name in program.state_names:
            t, n = program.inputs[name]
            state[name] = [Signal(shape_of(t), name=f"{name}{k}") for k in range(n)]
            values[name] = list(state[name])

        for op in program.ops:
            args = [values[a] for a in op.args]
            arg_types = [program.value(a)[0] for a in op.args]
            out_shape = shape_of(op.type)
            if op.kind is VecKind.MAC:
                mac = ConstantMatVec(
                    op.weights,
                    op.in_type,
                    op.type,
                    op.bias,
                    self.multiplier,
                    levels_per_stage=self.adders_per_stage,
                )
                assert mac.latency == self.macs[op.out].latency
                m.submodules[f"mac_{op.out}"] = mac
                in_shape = shape_of(op.in_type)
                flat = [
                    resize(Value.cast(v) << (op.in_type.frac - t.frac), in_shape)
                    for vec, t in zip(args, arg_types, strict=True)
                    for v in vec
                ]
                m.d.comb += [mac.i.valid.eq(1), mac.o.ready.eq(1)]
                m.d.comb += [mac.i.payload[k].eq(v) for k, v in enumerate(flat)]
                values[op.out] = [mac.o.payload[k] for k in range(op.size)]
            elif op.kind is VecKind.SLICE:
                values[op.out] = args[0][op.start : op.start + op.size]
            elif op.kind is VecKind.TABLE:
                t = arg_types[0]
                lanes = args[0]
                if op.in_type != t:
                    rq = Requantize(
                        op.size,
                        t,
                        op.in_type,
                        None,
                        None,
                        op.rounding,
                        Overflow.SATURATE,
                        latency=0,
                    )
                    m.submodules[f"rq_{op.out}"] = rq
                    m.d.comb += [rq.i.valid.eq(1), rq.o.ready.eq(1)]
                    m.d.comb += [rq.i.payload[k].eq(v) for k, v in enumerate(lanes)]
                    lanes = [rq.o.payload[k] for k in range(op.size)]
                lut = LookupTable(op.table, op.in_type, op.type, op.size, latency=1)
                m.submodules[f"lut_{op.out}"] = lut
                m.d.comb += [lut.i.valid.eq(1), lut.o.ready.eq(1)]
                m.d.comb += [lut.i.payload[k].eq(v) for k, v in enumerate(lanes)]
                values[op.out] = [lut.o.payload[k] for k in range(op.size)]
            elif op.kind is VecKind.THRESHOLD:
                assert op.thresholds is not None and op.table is not None
                thresholds = [[int(t) for t in op.thresholds]] * op.size
                levels = [[int(v) for v in op.table]] * op.size
                bank = ThresholdBank(arg_types[0], op.type, thresholds, levels)
                m.submodules[f"bank_{op.out}"] = bank
                m.d.comb += [bank.i.valid.eq(1), bank.o.ready.eq(1)]
                m.d.comb += [bank.i.payload[k].eq(v) for k, v in enumerate(args[0])]
                values[op.out] = [bank.o.payload[k] for k in range(op.size)]
            elif op.kind is VecKind.REQUANT:
                rq = Requantize(
                    op.size,
                    arg_types[0],
                    op.type,
                    op.clamp_lo,
                    op.clamp_hi,
                    op.rounding,
                    op.overflow,
                    latency=1,
                )
                m.submodules[f"rq_{op.out}"] = rq
                m.d.comb += [rq.i.valid.eq(1), rq.o.ready.eq(1)]
                m.d.comb += [rq.i.payload[k].eq(v) for k, v in enumerate(args[0])]
                values[op.out] = [rq.o.payload[k] for k in range(op.size)]
            else:
                regs = [Signal(out_shape, name=f"{op.out}_{k}") for k in range(op.size)]
                for k, reg in enumerate(regs):
                    if op.kind is VecKind.MUL:
                        expr = Value.cast(args[0][k]) * Value.cast(args[1][k])
                    elif op.kind is VecKind.ADD:
                        ta, tb = arg_types
                        expr = (Value.cast(args[0][k]) << (op.type.frac - ta.frac)) + (
                            Value.cast(args[1][k]) << (op.type.frac - tb.frac)
                        )
                    elif op.kind is VecKind.OFFSET:
                        expr = Value.cast(args[0][k]) + Const(op.const)
                    else:  # RSUB
                        expr = Const(op.const) - Value.cast(args[0][k])
                    m.d.sync += reg.eq(resize(expr, out_shape))
                values[op.out] = list(regs)

        # -- control: one step at a time -------------------------------------------------
        busy = Signal()
        count = Signal(range(self.depth + 1))
        step = Signal(range(self.steps))
        out_valid = Signal()
        out_reg = [Signal(shape_of(self.y_type), name=f"y{k}") for k in range(self.units)]
        emit = Signal()
        last = Signal()
        m.d.comb += [
            last.eq(step == self.steps - 1),
            emit.eq(Const(1) if self.return_sequences else last),
            self.i.ready.eq(~busy & (~out_valid | self.o.ready | ~emit)),
            self.o.valid.eq(out_valid),
        ]
        m.d.comb += [self.o.payload[k].eq(v) for k, v in enumerate(out_reg)]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += out_valid.eq(0)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [busy.eq(1), count.eq(1)]
            m.d.sync += [r.eq(self.i.payload[k]) for k, r in enumerate(x_reg)]
        with m.If(busy):
            m.d.sync += count.eq(count + 1)
            with m.If(count == self.depth):
                m.d.sync += [busy.eq(0), step.eq(Mux(last, 0, step + 1))]
                with m.If(emit):
                    m.d.sync += out_valid.eq(1)
                    y = values[program.output]
                    m.d.sync += [r.eq(v) for r, v in zip(out_reg, y, strict=True)]
                for name, regs in state.items():
                    shift = program.state_shift(name)
                    new = values[program.next_state[name]]
                    with m.If(last):  # a new sequence starts from zero
                        m.d.sync += [r.eq(0) for r in regs]
                    with m.Else():
                        m.d.sync += [
                            r.eq(resize(Value.cast(v) << shift, r.shape()))
                            for r, v in zip(regs, new, strict=True)
                        ]
        return m


class _CellHandshake:
    """`RecurrentCell`'s handshake in `rtlgen.timing`'s model (``forward`` / ``backward`` /
    ``clock``, the same registers as the hardware: busy, count, step, output valid)."""

    def __init__(self, inputs, output, cell: RecurrentCell):
        self.inputs, self.i, self.o = inputs, inputs[0], output
        self.cell = cell
        self.busy, self.count, self.step, self.out_valid = False, 0, 0, False

    def forward(self) -> None:
        self.o.valid = self.out_valid

    def backward(self) -> None:
        emit = self.cell.emits(self.step)
        self.i.ready = not self.busy and (not self.out_valid or self.o.ready or not emit)

    def clock(self) -> None:
        accept = self.i.valid and self.i.ready
        if self.out_valid and self.o.ready:
            self.out_valid = False
        if self.busy:
            if self.count == self.cell.depth:
                self.busy = False
                if self.cell.emits(self.step):
                    self.out_valid = True
                self.step = (self.step + 1) % self.cell.steps
            else:
                self.count += 1
        if accept:
            self.busy, self.count = True, 1
