"""Merge layers and stream forks for branching graphs (residual Add, inception Concatenate).

- `ElementwiseMerge`: n streams joined beat by beat, Add/Subtract/Multiply/Average/Maximum/
  Minimum computed exactly into `quant.merge.merge_acc_type`.
- `BroadcastMerge`: the same, with operands that broadcast: one beat per sample held in a
  register over the sample's beats (a squeeze-and-excitation scale), or one value for
  every element of a beat.
- `DivideRequantize`: the output step of an Average over a non-power-of-two count (a rounded
  division by a constant, `pool.Reciprocal`); `Requantize` is the output step otherwise.
- `Merge`: `ElementwiseMerge` followed by its output step, bit-exact with `quant.merge.merge`.
- `Concatenate`: n streams joined into one beat along the element (channel) axis.
- `Fork`: one stream delivered to n consumers, each at its own pace.

Joins (`ElementwiseMerge`, `Concatenate`) take one beat from every input at once: the joined
stream is valid when every input is, and each input's ``ready`` is the block's ``ready``
gated with that joint valid, so no input gives up a beat that the others cannot match.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Module, Mux, ShapeLike, Signal, Value
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from rtlgen.quant.errors import RtlgenError
from rtlgen.quant.fixed import FixedType, Overflow, Rounding
from rtlgen.quant.merge import (
    MergeOp,
    aligned_frac,
    average_divisor,
    concat_type,
    merge_acc_type,
    merge_range,
)

from .common import resize, saturate, shape_of, vector_layout
from .pool import Reciprocal
from .requantize import Requantize
from .stream_util import StageRegisters, pipeline_control


def _join(m: Module, inputs: Sequence[stream.Interface]) -> SimpleNamespace:
    """A stream-like ``valid``/``ready`` pair standing for all ``inputs`` taken together.

    ``valid`` = every input valid; each input's ``ready`` = the joint ``ready`` and the joint
    ``valid`` (the caller drives the joint ``ready``, e.g. through `pipeline_control`).
    """
    joined = SimpleNamespace(valid=Signal(name="join_valid"), ready=Signal(name="join_ready"))
    m.d.comb += joined.valid.eq(Cat(*[port.valid for port in inputs]).all())
    for port in inputs:
        m.d.comb += port.ready.eq(joined.ready & joined.valid)
    return joined


def _input_ports(formats: Sequence[tuple[int, FixedType]]) -> dict[str, In]:
    return {
        f"i{k}": In(stream.Signature(vector_layout(t, n_elements)))
        for k, (n_elements, t) in enumerate(formats)
    }


class _MultiInput(wiring.Component):
    """A component with stream inputs ``i0``..``i{n-1}`` (``in_ports``) and one output ``o``."""

    def __init__(self, in_ports: dict, out):
        self.n_inputs = len(in_ports)
        super().__init__({**in_ports, "o": out})

    @property
    def inputs(self) -> list[stream.Interface]:
        return [getattr(self, f"i{k}") for k in range(self.n_inputs)]

    def _join_stages(self, m: Module, latency: int) -> StageRegisters:
        """The inputs taken together (`_join`) into ``latency`` register stages before ``o``
        (`stream_util.pipeline_control`)."""
        return StageRegisters(pipeline_control(m, _join(m, self.inputs), self.o, latency))


def _combine(op: MergeOp, in_types: Sequence[FixedType], values: list[Value]) -> Value:
    """The exact result of ``op`` for one element, from the inputs' mantissas."""
    if op is MergeOp.MULTIPLY:
        return functools.reduce(lambda a, b: a * b, values)
    frac = aligned_frac(in_types)
    aligned = [v << (frac - t.frac) for v, t in zip(values, in_types, strict=True)]
    if op is MergeOp.SUBTRACT:
        return aligned[0] - aligned[1]
    if op in (MergeOp.MAXIMUM, MergeOp.MINIMUM):
        # Compared in the union of the input ranges (the result's range can be narrower).
        union = shape_of(concat_type(in_types))
        same = [resize(v, union) for v in aligned]
        if op is MergeOp.MAXIMUM:
            return functools.reduce(lambda a, b: Mux(a > b, a, b), same)
        return functools.reduce(lambda a, b: Mux(a < b, a, b), same)
    return functools.reduce(lambda a, b: a + b, aligned)  # ADD, AVERAGE (the sum)


def _checked_acc_type(
    op: MergeOp, in_types: Sequence[FixedType], acc_type: FixedType | None
) -> FixedType:
    """``acc_type`` (default `quant.merge.merge_acc_type`), refused unless it holds every
    exact result with the exact result's fraction bits."""
    lo, hi, frac = merge_range(op, in_types)
    exact = merge_acc_type(op, in_types)
    acc_type = acc_type or exact
    if acc_type.frac != frac or acc_type.min_int > lo or acc_type.max_int < hi:
        raise RtlgenError(
            f"merge {op.value}: accumulator {acc_type} cannot hold every result exactly "
            f"(needs {exact} or wider with {frac} fractional bits)"
        )
    return acc_type


class ElementwiseMerge(_MultiInput):
    """Elementwise ``op`` of ``len(in_types)`` vectors of ``n_elements``, exactly.

    Ports: ``i0``..``i{n-1}``, ``ArrayLayout(shape_of(in_types[k]), n_elements)``; ``o``,
    ``ArrayLayout(shape_of(acc_type), n_elements)`` holding `quant.merge.merge_acc` (for
    AVERAGE: the sum, read with ``log2 n`` more fractional bits when n is a power of two,
    else still to be divided by n, see `DivideRequantize`).

    Contract: a join (one beat from every input at once, inputs may be valid on different
    cycles), combinational arithmetic and one register stage: ``latency`` 1, II = 1,
    `stream_util.pipeline_control` under backpressure (nothing lost or duplicated).
    ``acc_type`` defaults to `quant.merge.merge_acc_type`; a wider one with the same ``frac``
    is accepted.
    """

    latency = 1

    def __init__(
        self,
        op: MergeOp,
        n_elements: int,
        in_types: Sequence[FixedType],
        acc_type: FixedType | None = None,
    ):
        acc_type = _checked_acc_type(op, in_types, acc_type)
        if n_elements < 1:
            raise RtlgenError(f"merge {op.value}: needs at least one element, got {n_elements}")
        self.op, self.n_elements = op, n_elements
        self.in_types, self.acc_type = list(in_types), acc_type
        super().__init__(
            _input_ports([(n_elements, t) for t in self.in_types]),
            Out(stream.Signature(vector_layout(acc_type, n_elements))),
        )

    def _combine(self, values: list[Value]) -> Value:
        """The exact result for one element, from the inputs' mantissas."""
        return _combine(self.op, self.in_types, values)

    def elaborate(self, platform):
        m = Module()
        registers = self._join_stages(m, self.latency)
        acc_shape = shape_of(self.acc_type)
        results = [
            resize(self._combine([port.payload[k] for port in self.inputs]), acc_shape)
            for k in range(self.n_elements)
        ]
        out = registers.register(Cat(*results), name="result")
        registers.emit(m)
        m.d.comb += self.o.payload.eq(out)
        return m


class BroadcastMerge(_MultiInput):
    """`ElementwiseMerge` of operands that broadcast (Keras merges of a (1, 1, C), (1, C) or
    (C,) operand with an image or a sequence; of one channel with many).

    A sample ("frame") is ``frame_beats`` beats of ``n_elements`` elements. Input ``k``:
    ``lanes[k]`` elements per beat, ``n_elements`` or 1 (its one value for every element);
    ``held[k]``: one beat per frame instead of one per beat. Ports: ``i{k}``
    ``ArrayLayout(shape_of(in_types[k]), lanes[k])``; ``o`` as `ElementwiseMerge`'s, the
    exact result (`quant.merge.merge_acc` with numpy's broadcasting).

    A held input's beat is taken whenever its register is empty (``i{k}.ready`` is that
    register's empty flag: no combinational path from any other port), used from the
    frame's first beat (in the cycle it arrives, so back-to-back frames lose no cycle) to
    its last, and released with the frame's last beat; the next frame's is taken from the
    next cycle. Streamed inputs join as in `ElementwiseMerge`: the joint beat is valid when
    every streamed input is and every held operand is held or arriving.

    Contract: ``latency`` 1 (one register stage after combinational arithmetic), II = 1 at
    every beat of every frame, `stream_util.pipeline_control` under backpressure (nothing
    lost or duplicated). Registers: one held operand per held input, its full flag, and a
    beat counter of ``frame_beats``. A streamed input needs the held operand before it can
    move: its branch waits for it in a FIFO (`rtlgen.plan` sizes it).
    """

    latency = 1

    def __init__(
        self,
        op: MergeOp,
        n_elements: int,
        in_types: Sequence[FixedType],
        lanes: Sequence[int],
        held: Sequence[bool],
        frame_beats: int,
        acc_type: FixedType | None = None,
    ):
        acc_type = _checked_acc_type(op, in_types, acc_type)
        count = len(in_types)
        if len(lanes) != count or len(held) != count:
            raise RtlgenError(
                f"merge {op.value}: {len(lanes)} lane counts and {len(held)} held flags for "
                f"{count} inputs"
            )
        if n_elements < 1 or frame_beats < 1:
            raise RtlgenError(
                f"merge {op.value}: needs at least one element and one beat per frame, got "
                f"{n_elements} and {frame_beats}"
            )
        if any(n not in (1, n_elements) for n in lanes):
            raise RtlgenError(
                f"merge {op.value}: an input of {list(lanes)} elements per beat does not "
                f"broadcast to {n_elements} (1 or {n_elements} supported)"
            )
        if all(held):
            raise RtlgenError(f"merge {op.value}: every input is held; one must stream")
        self.op, self.n_elements, self.frame_beats = op, n_elements, frame_beats
        self.in_types, self.acc_type = list(in_types), acc_type
        self.lanes, self.held = [int(n) for n in lanes], [bool(h) for h in held]
        super().__init__(
            _input_ports(list(zip(self.lanes, self.in_types, strict=True))),
            Out(stream.Signature(vector_layout(acc_type, n_elements))),
        )

    def elaborate(self, platform):
        m = Module()
        joined = SimpleNamespace(valid=Signal(name="join_valid"), ready=Signal(name="join_ready"))
        advance = pipeline_control(m, joined, self.o, self.latency)
        registers = StageRegisters(advance)
        fire = Signal(name="fire")  # the joint beat moves now
        last = Signal(name="last")  # it is the frame's last
        beat = Signal(range(max(self.frame_beats, 2)), name="beat")
        m.d.comb += [fire.eq(joined.valid & joined.ready), last.eq(beat == self.frame_beats - 1)]
        with m.If(fire):
            m.d.sync += beat.eq(Mux(last, 0, beat + 1))
        present, operands = [], []
        for k, port in enumerate(self.inputs):
            if not self.held[k]:
                present.append(port.valid)
                operands.append(port.payload)
                continue
            full = Signal(name=f"held{k}")
            value = Signal(port.payload.shape(), name=f"operand{k}", reset_less=True)
            take = port.valid & ~full
            m.d.comb += port.ready.eq(~full)
            with m.If(take):
                m.d.sync += value.eq(port.payload)
            with m.If(fire & last):
                m.d.sync += full.eq(0)
            with m.Elif(take):
                m.d.sync += full.eq(1)
            present.append(full | port.valid)
            layout = vector_layout(self.in_types[k], self.lanes[k])
            # the held operand, or the one arriving now (bypass: no cycle lost per frame)
            operands.append(layout(Mux(full, value.as_value(), port.payload.as_value())))
        m.d.comb += joined.valid.eq(Cat(*present).all())
        for k, port in enumerate(self.inputs):
            if not self.held[k]:
                m.d.comb += port.ready.eq(fire)
        acc_shape = shape_of(self.acc_type)
        results = [
            resize(
                _combine(
                    self.op,
                    self.in_types,
                    [operands[j][k if self.lanes[j] > 1 else 0] for j in range(self.n_inputs)],
                ),
                acc_shape,
            )
            for k in range(self.n_elements)
        ]
        out = registers.register(Cat(*results), name="result")
        registers.emit(m)
        m.d.comb += self.o.payload.eq(out)
        return m

    def handshake_blocks(self) -> list:
        """The valid/ready behaviour for `rtlgen.timing`'s handshake model."""
        return [lambda inputs, output: _BroadcastHandshake(inputs, output, self)]


class _BroadcastHandshake:
    """`BroadcastMerge` in `rtlgen.timing`'s handshake model (``forward`` / ``backward`` /
    ``clock``): the pipeline's valid bit, each held input's full flag and the beat count."""

    def __init__(self, inputs, output, merge: BroadcastMerge):
        self.inputs, self.i, self.o = inputs, inputs[0], output
        self.held, self.frame_beats = merge.held, merge.frame_beats
        self.full = [False] * len(inputs)
        self.beat, self.valid, self.joint, self.advance = 0, False, False, False

    def forward(self) -> None:
        self.joint = all(
            w.valid or (held and full)
            for w, held, full in zip(self.inputs, self.held, self.full, strict=True)
        )
        self.o.valid = self.valid

    def backward(self) -> None:
        self.advance = self.o.ready or not self.valid
        fire = self.advance and self.joint
        for w, held, full in zip(self.inputs, self.held, self.full, strict=True):
            w.ready = not full if held else fire

    def clock(self) -> None:
        fire = self.advance and self.joint
        last = self.beat == self.frame_beats - 1
        for k, (w, held) in enumerate(zip(self.inputs, self.held, strict=True)):
            if not held:
                continue
            take = w.valid and not self.full[k]
            if fire and last:
                self.full[k] = False
            elif take:
                self.full[k] = True
        if fire:
            self.beat = 0 if last else self.beat + 1
        if self.advance:
            self.valid = self.joint


class DivideRequantize(wiring.Component):
    """Elementwise ``quant.merge.divide_requantize(acc, acc_type.frac, divisor, out_type)``:
    ``acc / divisor`` rounded once into ``out_type``, saturated or wrapped.

    With ``s = out_type.frac - acc_type.frac`` the quotient is ``divide_round(acc << s,
    divisor)`` (or ``divide_round(acc, divisor << -s)``), computed as a multiply by a constant
    reciprocal with the rounding decided from the product's low bits (`pool.Reciprocal`,
    which `pool.WindowAverage` uses the same way).

    Contract: one vector of ``n`` elements per cycle (II = 1), ``latency`` 2 (offset and
    multiply; rounding and saturation), `stream_util.pipeline_control` under backpressure.
    """

    latency = 2

    def __init__(
        self,
        n: int,
        acc_type: FixedType,
        divisor: int,
        out_type: FixedType,
        rounding: Rounding = Rounding.CONVERGENT,
        overflow: Overflow = Overflow.SATURATE,
    ):
        if divisor < 1:
            raise RtlgenError(f"DivideRequantize: divisor must be at least 1, got {divisor}")
        self.n, self.acc_type, self.divisor, self.out_type = n, acc_type, divisor, out_type
        self.rounding, self.overflow = rounding, overflow
        shift = out_type.frac - acc_type.frac
        self.num_shift, self.den_shift = max(shift, 0), max(-shift, 0)
        self.reciprocal = Reciprocal(
            divisor << self.den_shift,
            acc_type.min_int << self.num_shift,
            acc_type.max_int << self.num_shift,
        )
        super().__init__(
            {
                "i": In(stream.Signature(vector_layout(acc_type, n))),
                "o": Out(stream.Signature(vector_layout(out_type, n))),
            }
        )

    def elaborate(self, platform):
        m = Module()
        registers = StageRegisters(pipeline_control(m, self.i, self.o, self.latency))
        rec, out_shape = self.reciprocal, shape_of(self.out_type)
        shift = rec.shift
        results = []
        for k in range(self.n):
            # n' = n + offset >= 0 by construction: unsigned from here on.
            shifted = (self.i.payload[k] << self.num_shift) + rec.offset
            product = registers.register(shifted.as_unsigned() * rec.multiplier, name=f"p{k}")
            # Zero-extended so that the offset subtraction is signed.
            quotient = Cat(product >> shift, Const(0, 1)).as_signed() - rec.offset // rec.divisor
            low = product[:shift] if shift else Const(0, 1)
            value = quotient + rec.round_up(low, quotient[0], self.rounding)
            if self.overflow is Overflow.SATURATE:
                lo, hi = rec.result_range(self.rounding)
                t = self.out_type
                value = saturate(value, t.min_int, t.max_int, out_shape, lo, hi)
            results.append(resize(value, out_shape))  # wrap: the low bits, as `fit`
        out = registers.register(Cat(*results), name="result")
        registers.emit(m)
        m.d.comb += self.o.payload.eq(out)
        return m


def merge_output_stage(
    op: MergeOp,
    n_elements: int,
    in_types: Sequence[FixedType],
    out_type: FixedType,
    rounding: Rounding = Rounding.CONVERGENT,
    overflow: Overflow = Overflow.SATURATE,
    *,
    requantize_latency: int = 1,
) -> Requantize | DivideRequantize:
    """The block after an `ElementwiseMerge` that moves its accumulator into ``out_type``:
    `DivideRequantize` for AVERAGE of a non-power-of-two count, else `Requantize`."""
    acc_type = merge_acc_type(op, in_types)
    divisor = average_divisor(op, len(in_types))
    if divisor > 1:
        return DivideRequantize(n_elements, acc_type, divisor, out_type, rounding, overflow)
    return Requantize(
        n_elements,
        acc_type,
        out_type,
        rounding=rounding,
        overflow=overflow,
        latency=requantize_latency,
    )


class Merge(_MultiInput):
    """A Keras merge layer: `ElementwiseMerge` (`BroadcastMerge` when ``lanes`` or ``held``
    say an input broadcasts) then `merge_output_stage`, connected.

    Bit-exact with `quant.merge.merge`. Ports ``i0``..``i{n-1}`` as the first's, ``o``
    ``ArrayLayout(shape_of(out_type), n_elements)``. II = 1; ``latency`` the sum of the two.
    """

    def __init__(
        self,
        op: MergeOp,
        n_elements: int,
        in_types: Sequence[FixedType],
        out_type: FixedType,
        rounding: Rounding = Rounding.CONVERGENT,
        overflow: Overflow = Overflow.SATURATE,
        *,
        lanes: Sequence[int] | None = None,
        held: Sequence[bool] | None = None,
        frame_beats: int = 1,
    ):
        lanes = list(lanes) if lanes is not None else [n_elements] * len(in_types)
        held = list(held) if held is not None else [False] * len(in_types)
        self.merge: ElementwiseMerge | BroadcastMerge
        if any(held) or any(n != n_elements for n in lanes):
            self.merge = BroadcastMerge(op, n_elements, in_types, lanes, held, frame_beats)
        else:
            self.merge = ElementwiseMerge(op, n_elements, in_types)
        self.output_stage = merge_output_stage(
            op, n_elements, in_types, out_type, rounding, overflow
        )
        self.out_type = out_type
        super().__init__(
            {f"i{k}": self.merge.signature.members[f"i{k}"] for k in range(len(in_types))},
            self.output_stage.signature.members["o"],
        )

    @property
    def latency(self) -> int:
        return self.merge.latency + self.output_stage.latency

    def elaborate(self, platform):
        m = Module()
        m.submodules.merge = self.merge
        m.submodules.output_stage = self.output_stage
        for port, inner in zip(self.inputs, self.merge.inputs, strict=True):
            wiring.connect(m, wiring.flipped(port), inner)
        wiring.connect(m, self.merge.o, self.output_stage.i)
        wiring.connect(m, self.output_stage.o, wiring.flipped(self.o))
        return m


class Concatenate(_MultiInput):
    """Keras ``Concatenate`` along the element (channel) axis of n streams.

    Ports: ``i{k}`` ``ArrayLayout(shape_of(t_k), n_k)`` for ``in_formats[k] = (n_k, t_k)``;
    ``o`` ``ArrayLayout(shape_of(out_type), sum n_k)``, input 0's elements first. Each value
    is moved to ``out_type``'s binary point by a left shift: exact, so ``out_type`` must hold
    every input (default `quant.merge.concat_type`; for a narrower type put a `Requantize`
    on the inputs that need it).

    Contract: a join (one beat from every input at once), II = 1; ``latency`` 0 (default:
    wires and a valid AND, ``o.valid`` and every ``i{k}.ready`` combinational) or 1 (one
    register stage, `stream_util.pipeline_control`).
    """

    def __init__(
        self,
        in_formats: Sequence[tuple[int, FixedType]],
        out_type: FixedType | None = None,
        *,
        latency: int = 0,
    ):
        if not in_formats:
            raise RtlgenError("Concatenate: needs at least one input")
        if latency not in (0, 1):
            raise RtlgenError(f"Concatenate: latency must be 0 or 1, got {latency}")
        self.in_formats = [(int(n), t) for n, t in in_formats]
        out_type = out_type or concat_type([t for _, t in self.in_formats])
        for k, (n_elements, t) in enumerate(self.in_formats):
            if n_elements < 1:
                raise RtlgenError(f"Concatenate: input {k} has {n_elements} elements")
            shift = out_type.frac - t.frac
            if (
                shift < 0
                or out_type.min_int > t.min_int << shift
                or out_type.max_int < (t.max_int << shift)
            ):
                raise RtlgenError(
                    f"Concatenate: output type {out_type} does not hold input {k} ({t}) "
                    f"exactly; requantize that input first"
                )
        self.out_type = out_type
        self._latency = latency
        self.n_elements = sum(n for n, _ in self.in_formats)
        super().__init__(
            _input_ports(self.in_formats),
            Out(stream.Signature(vector_layout(out_type, self.n_elements))),
        )

    @property
    def latency(self) -> int:
        return self._latency

    def elaborate(self, platform):
        m = Module()
        registers = self._join_stages(m, self._latency)
        out_shape = shape_of(self.out_type)
        values = [
            resize(port.payload[k] << (self.out_type.frac - t.frac), out_shape)
            for port, (n_elements, t) in zip(self.inputs, self.in_formats, strict=True)
            for k in range(n_elements)
        ]
        out: Value = Cat(*values)
        if self._latency:
            out = registers.register(out, name="result")
            registers.emit(m)
        m.d.comb += self.o.payload.eq(out)
        return m


class Fork(wiring.Component):
    """One stream ``i`` delivered to ``n_outputs`` streams ``o0``..``o{n-1}``.

    Every beat reaches every output exactly once, in order; the outputs may take it on
    different cycles. A ``taken`` flag per output remembers who already has the current
    beat: ``o{k}.valid = i.valid & ~taken[k]``; ``i.ready`` (the beat is done) when every
    output has taken it or takes it now. ``o{k}.valid`` does not depend on any ``ready`` (no
    combinational path from an output's ready to any valid); ``i.ready`` is combinational
    from the outputs' ready.

    Contract: ``latency`` 0, II = 1 when every output is ready; a slow output holds the
    input (the others wait for the next beat, they are not fed ahead).
    """

    latency = 0

    def __init__(self, payload_shape: ShapeLike, n_outputs: int):
        if n_outputs < 1:
            raise RtlgenError(f"Fork: needs at least one output, got {n_outputs}")
        self.payload_shape, self.n_outputs = payload_shape, n_outputs
        super().__init__(
            {
                "i": In(stream.Signature(payload_shape)),
                **{f"o{k}": Out(stream.Signature(payload_shape)) for k in range(n_outputs)},
            }
        )

    @property
    def outputs(self) -> list[stream.Interface]:
        return [getattr(self, f"o{k}") for k in range(self.n_outputs)]

    def elaborate(self, platform):
        m = Module()
        taken = Signal(self.n_outputs, name="taken")
        done = Signal(self.n_outputs, name="done")  # has taken the beat, or takes it now
        for k, port in enumerate(self.outputs):
            m.d.comb += [
                port.payload.eq(self.i.payload),
                port.valid.eq(self.i.valid & ~taken[k]),
                done[k].eq(taken[k] | port.ready),
            ]
        m.d.comb += self.i.ready.eq(done.all())
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += taken.eq(0)
        with m.Elif(self.i.valid):
            m.d.sync += taken.eq(taken | Cat(*[port.ready for port in self.outputs]))
        return m


__all__ = [
    "BroadcastMerge",
    "Concatenate",
    "DivideRequantize",
    "ElementwiseMerge",
    "Fork",
    "Merge",
    "merge_output_stage",
]
