"""Integer arithmetic of one recurrent time step (SimpleRNN, LSTM, GRU cells).

A cell's step is a small straight-line *program* of vector operations on integer mantissas
(`CellProgram`): a constant matrix-vector product of the input and the state (``MAC``),
slices, activations (a lookup table after a saturating requantize, or a clamp + requantize),
exact elementwise products, sums and ``const - v``. Every value has one `FixedType` and an
exact integer range, found when the program is built (`ProgramBuilder`), so nothing
overflows and every product and sum is exact; roundings happen only where an op says so.

The same program is evaluated here on numpy arrays (`run_sequence`: the reference model)
and built as hardware by `rtlgen.layers.recurrent.RecurrentCell`, so the two agree by
construction; `rtlgen.ops.recurrent` writes each cell's program.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from .arith import apply_clamp, dot_range
from .errors import RtlgenError
from .fixed import FixedType, Overflow, Rounding, requantize


class VecKind(Enum):
    MAC = "mac"  # concat(args aligned to in_type) @ weights + bias
    SLICE = "slice"  # args[0][start:start + size]
    TABLE = "table"  # table[requantize(args[0], in_type, saturate)]
    THRESHOLD = "threshold"  # table[#{k: args[0] >= thresholds[k]}] (table: the levels)
    REQUANT = "requant"  # requantize(clamp(args[0], lo, hi), type)
    MUL = "mul"  # args[0] * args[1], exact
    ADD = "add"  # args[0] + args[1], exact (aligned)
    RSUB = "rsub"  # const - args[0], exact (const in args[0]'s units)
    OFFSET = "offset"  # mantissa + const, exact, read with the result type's (more) frac bits


@dataclass(frozen=True, eq=False)
class VecOp:
    """One vector operation of a `CellProgram` (see `VecKind`). ``type``/``lo``/``hi``: the
    result's element type and its exact integer range; ``size``: its elements."""

    out: str
    kind: VecKind
    args: tuple[str, ...]
    type: FixedType
    size: int
    lo: int
    hi: int
    weights: np.ndarray | None = None  # MAC: (sum of arg sizes, size), aligned to type.frac
    bias: np.ndarray | None = None  # MAC: (size,), in type.frac units
    in_type: FixedType | None = None  # MAC: the common input type; TABLE: the table's type
    table: np.ndarray | None = None  # TABLE: entry k for in_type.min_int + k; THRESHOLD: levels
    thresholds: np.ndarray | None = None  # THRESHOLD: ascending input mantissas
    start: int = 0  # SLICE
    clamp_lo: int | None = None  # REQUANT: bounds in the argument's units
    clamp_hi: int | None = None
    const: int = 0  # RSUB, OFFSET (in the result's units)
    #: TABLE: the largest distance from the function it stands for (0: exact, as for the
    #: QKeras quantizers, which the table reproduces)
    error: float = 0.0
    rounding: Rounding = Rounding.CONVERGENT
    overflow: Overflow = Overflow.SATURATE


@dataclass(frozen=True, eq=False)
class CellProgram:
    """One time step: ``inputs`` (name -> (type, size): ``x`` the input beat, ``h`` and, for
    an LSTM, ``c`` the state registers, all zero before a sequence), ``ops`` in order,
    ``next_state`` (state name -> the value it takes), ``output`` (the value emitted)."""

    inputs: dict[str, tuple[FixedType, int]]
    ops: tuple[VecOp, ...]
    next_state: dict[str, str]
    output: str

    def value(self, name: str) -> tuple[FixedType, int, int, int]:
        """(type, size, lo, hi) of a named value."""
        for op in self.ops:
            if op.out == name:
                return op.type, op.size, op.lo, op.hi
        t, n = self.inputs[name]
        return t, n, t.min_int, t.max_int

    @property
    def state_names(self) -> tuple[str, ...]:
        return tuple(self.next_state)

    def state_shift(self, name: str) -> int:
        """Left shift from the value a state takes to the state's own type (its type holds
        every value it takes, with at least as many fractional bits)."""
        value = self.next_state[name]
        shift = self.inputs[name][0].frac - self.value(value)[0].frac
        if shift < 0:
            raise RtlgenError(f"state {name} has fewer fractional bits than its new value")
        return shift


def _type_of(lo: int, hi: int, frac: int) -> FixedType:
    return FixedType.covering(int(lo), int(hi), frac)


@dataclass
class ProgramBuilder:
    """Builds a `CellProgram`, typing every value by exact interval analysis."""

    inputs: dict[str, tuple[FixedType, int]]
    ops: list[VecOp] = field(default_factory=list)
    _count: int = 0

    def _name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}{self._count}"

    def info(self, name: str) -> tuple[FixedType, int, int, int]:
        for op in self.ops:
            if op.out == name:
                return op.type, op.size, op.lo, op.hi
        t, n = self.inputs[name]
        return t, n, t.min_int, t.max_int

    def _add(self, op: VecOp) -> str:
        self.ops.append(op)
        return op.out

    def mac(
        self,
        args: tuple[str, ...],
        weights: list[np.ndarray],
        weight_types: list[FixedType],
        bias: np.ndarray | None,
        bias_type: FixedType | None,
        hint: str = "acc",
    ) -> str:
        """``sum_k args[k] @ weights[k] + bias`` exactly: every argument moved to one common
        type (more fractional bits only), every weight block aligned to one accumulator."""
        types = [self.info(a) for a in args]
        frac = max(t.frac for t, *_ in types)
        lo = min(t.min_int << (frac - t.frac) for t, *_ in types)
        hi = max(t.max_int << (frac - t.frac) for t, *_ in types)
        common = FixedType.covering(lo, hi, frac)
        acc_frac = max(frac + wt.frac for wt in weight_types)
        if bias is not None and bias_type is not None:
            acc_frac = max(acc_frac, bias_type.frac)
        blocks = [
            np.asarray(w, dtype=np.int64) << (acc_frac - frac - wt.frac)
            for w, wt in zip(weights, weight_types, strict=True)
        ]
        w = np.concatenate(blocks, axis=0)
        b = np.zeros(w.shape[1], dtype=np.int64)
        if bias is not None and bias_type is not None:
            b = np.asarray(bias, dtype=np.int64) << (acc_frac - bias_type.frac)
        # every input over the common type's whole range (as the hardware array sizes it)
        col_lo, col_hi = dot_range(w, common.min_int, common.max_int)
        col_lo, col_hi = col_lo + b, col_hi + b
        lo, hi = int(col_lo.min(initial=0)), int(col_hi.max(initial=0))
        out = _type_of(lo, hi, acc_frac)
        return self._add(
            VecOp(
                self._name(hint),
                VecKind.MAC,
                tuple(args),
                out,
                w.shape[1],
                lo,
                hi,
                weights=w,
                bias=b,
                in_type=common,
            )
        )

    def slice(self, arg: str, start: int, size: int, hint: str = "s") -> str:
        t, _, lo, hi = self.info(arg)
        return self._add(
            VecOp(self._name(hint), VecKind.SLICE, (arg,), t, size, lo, hi, start=start)
        )

    def table(
        self,
        arg: str,
        table: np.ndarray,
        table_type: FixedType,
        out_type: FixedType,
        rounding: Rounding,
        hint: str = "t",
        error: float = 0.0,
    ) -> str:
        _, n, _, _ = self.info(arg)
        table = np.asarray(table, dtype=np.int64)
        return self._add(
            VecOp(
                self._name(hint),
                VecKind.TABLE,
                (arg,),
                out_type,
                n,
                int(table.min()),
                int(table.max()),
                in_type=table_type,
                table=table,
                rounding=rounding,
                error=error,
            )
        )

    def threshold(
        self, arg: str, thresholds: np.ndarray, levels: np.ndarray, out_type: FixedType
    ) -> str:
        """``levels[#{k: arg >= thresholds[k]}]`` per element: an exact quantizing
        activation of an input too wide for a table (`rtlgen.ops.lut_activation.threshold_form`)."""
        _, n, _, _ = self.info(arg)
        levels = np.asarray(levels, dtype=np.int64)
        return self._add(
            VecOp(
                self._name("th"),
                VecKind.THRESHOLD,
                (arg,),
                out_type,
                n,
                int(levels.min()),
                int(levels.max()),
                table=levels,
                thresholds=np.asarray(thresholds, dtype=np.int64),
            )
        )

    def requant(
        self,
        arg: str,
        out_type: FixedType,
        clamp_lo: int | None,
        clamp_hi: int | None,
        rounding: Rounding,
        overflow: Overflow,
        hint: str = "q",
    ) -> str:
        t, n, lo, hi = self.info(arg)
        ends = requantize(
            apply_clamp(np.array([lo, hi], dtype=np.int64), clamp_lo, clamp_hi),
            t.frac,
            out_type,
            rounding,
            overflow,
        )
        if overflow is not Overflow.SATURATE:
            ends = np.array([out_type.min_int, out_type.max_int])
        return self._add(
            VecOp(
                self._name(hint),
                VecKind.REQUANT,
                (arg,),
                out_type,
                n,
                int(ends.min()),
                int(ends.max()),
                clamp_lo=clamp_lo,
                clamp_hi=clamp_hi,
                rounding=rounding,
                overflow=overflow,
            )
        )

    def mul(self, a: str, b: str, hint: str = "m") -> str:
        ta, n, alo, ahi = self.info(a)
        tb, nb, blo, bhi = self.info(b)
        if n != nb:
            raise RtlgenError(f"mul of {n} and {nb} elements")
        corners = [alo * blo, alo * bhi, ahi * blo, ahi * bhi]
        lo, hi = min(corners), max(corners)
        return self._add(
            VecOp(
                self._name(hint),
                VecKind.MUL,
                (a, b),
                _type_of(lo, hi, ta.frac + tb.frac),
                n,
                lo,
                hi,
            )
        )

    def add(self, a: str, b: str, hint: str = "a") -> str:
        ta, n, alo, ahi = self.info(a)
        tb, nb, blo, bhi = self.info(b)
        if n != nb:
            raise RtlgenError(f"add of {n} and {nb} elements")
        frac = max(ta.frac, tb.frac)
        lo = (alo << (frac - ta.frac)) + (blo << (frac - tb.frac))
        hi = (ahi << (frac - ta.frac)) + (bhi << (frac - tb.frac))
        return self._add(
            VecOp(self._name(hint), VecKind.ADD, (a, b), _type_of(lo, hi, frac), n, lo, hi)
        )

    def rsub(self, const: int, a: str, hint: str = "r") -> str:
        ta, n, alo, ahi = self.info(a)
        lo, hi = const - ahi, const - alo
        return self._add(
            VecOp(
                self._name(hint),
                VecKind.RSUB,
                (a,),
                _type_of(lo, hi, ta.frac),
                n,
                lo,
                hi,
                const=const,
            )
        )

    def offset(self, a: str, shift: int, const: int, hint: str = "o") -> str:
        """``a * 2**-shift + const * 2**-(frac + shift)``: the mantissas plus ``const``,
        read with ``shift`` more fractional bits (exact: QKeras's hard sigmoid x/2 + 1/2)."""
        ta, n, alo, ahi = self.info(a)
        if shift < 0:
            raise RtlgenError(f"offset by a negative shift {shift}")
        lo, hi = alo + const, ahi + const
        return self._add(
            VecOp(
                self._name(hint),
                VecKind.OFFSET,
                (a,),
                _type_of(lo, hi, ta.frac + shift),
                n,
                lo,
                hi,
                const=const,
            )
        )

    def program(self, next_state: dict[str, str], output: str) -> CellProgram:
        return CellProgram(dict(self.inputs), tuple(self.ops), dict(next_state), output)


# ---------------------------------------------------------------------------------------
# evaluation (the reference model)
# ---------------------------------------------------------------------------------------
def _mac(x: np.ndarray, w: np.ndarray, bias: np.ndarray, out: FixedType) -> np.ndarray:
    if out.width <= 52 and x.size:
        # float64 is exact below 2**53 for every partial sum (the range is proven)
        acc = np.rint(x.astype(np.float64) @ w.astype(np.float64)).astype(np.int64)
    else:
        acc = x @ w
    return acc + bias


def step(program: CellProgram, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Evaluate every op of ``program`` on ``values`` (name -> (N, size) int64 mantissas of
    the inputs); returns every value, inputs included."""
    env = dict(values)
    for op in program.ops:
        args = [env[a] for a in op.args]
        if op.kind is VecKind.MAC:
            assert op.in_type is not None and op.weights is not None and op.bias is not None
            parts = []
            for name, v in zip(op.args, args, strict=True):
                t = program.value(name)[0] if name in program.inputs else _op_type(program, name)
                parts.append(v << (op.in_type.frac - t.frac))
            result = _mac(np.concatenate(parts, axis=1), op.weights, op.bias, op.type)
        elif op.kind is VecKind.SLICE:
            result = args[0][:, op.start : op.start + op.size]
        elif op.kind is VecKind.TABLE:
            assert op.in_type is not None and op.table is not None
            t = _op_type(program, op.args[0])
            q = args[0]
            if op.in_type != t:
                q = requantize(q, t.frac, op.in_type, op.rounding, Overflow.SATURATE)
            result = op.table[q - op.in_type.min_int]
        elif op.kind is VecKind.THRESHOLD:
            assert op.thresholds is not None and op.table is not None
            result = op.table[np.searchsorted(op.thresholds, args[0], side="right")]
        elif op.kind is VecKind.REQUANT:
            t = _op_type(program, op.args[0])
            v = apply_clamp(args[0], op.clamp_lo, op.clamp_hi)
            result = requantize(v, t.frac, op.type, op.rounding, op.overflow)
        elif op.kind is VecKind.MUL:
            result = args[0] * args[1]
        elif op.kind is VecKind.ADD:
            ta, tb = _op_type(program, op.args[0]), _op_type(program, op.args[1])
            result = (args[0] << (op.type.frac - ta.frac)) + (args[1] << (op.type.frac - tb.frac))
        elif op.kind is VecKind.OFFSET:
            result = args[0] + op.const
        else:  # RSUB
            result = op.const - args[0]
        env[op.out] = np.asarray(result, dtype=np.int64)
    return env


def _op_type(program: CellProgram, name: str) -> FixedType:
    return program.value(name)[0]


def run_sequence(program: CellProgram, x: np.ndarray, return_sequences: bool) -> np.ndarray:
    """Input mantissas (N, T, F) through the cell, state zero at the start of each sample:
    (N, T, U) outputs of every step, or (N, U) of the last."""
    x = np.asarray(x, dtype=np.int64)
    n, steps = x.shape[0], x.shape[1]
    state = {
        name: np.zeros((n, program.inputs[name][1]), dtype=np.int64) for name in program.state_names
    }
    outs = []
    for t in range(steps):
        env = step(program, {"x": x[:, t, :], **state})
        state = {
            name: env[value] << program.state_shift(name)
            for name, value in program.next_state.items()
        }
        outs.append(env[program.output])
    if return_sequences:
        return np.stack(outs, axis=1)
    return outs[-1]
