"""Time-multiplexed matrix-vector product (hls4ml's reuse factor > 1).

Where a layer receives a new input vector only every ``reuse`` cycles (after pooling or a
flatten, the later layers of a CNN see far fewer beats than the first), fully parallel
constant multipliers would sit idle most of the time. `SerialMatVec` shares ``group``
general multipliers per output over ``steps`` cycles, with the weights in a ROM.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from amaranth.hdl import (
    Array,
    Cat,
    Const,
    Module,
    Mux,
    Shape,
    ShapeLike,
    Signal,
    Value,
    signed,
    unsigned,
)
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from rtlgen.quant.errors import RtlgenError
from rtlgen.quant.fixed import FixedType

from .common import Multiplier, shape_of


def booth_digits(value: int) -> list[int]:
    """The radix-4 signed digits of ``value``, lowest first: ``d[i]`` in [-2, 2] with
    ``sum(d[i] * 4**i) == value``; no more digits than the fewest that reach it (``n`` digits
    reach ``|value| <= 2 * (4**n - 1) / 3``: one +-2, two +-10, three +-42).

    >>> booth_digits(9), booth_digits(-6), booth_digits(2)
    ([1, 2], [-2, -1], [2])
    """
    digits = []
    rest = int(value)
    while rest:
        digit = rest % 4  # 0..3: the digit is congruent to it modulo 4
        if digit == 3:
            digit = -1
        elif digit == 2 and rest < 0:
            digit = -2
        digits.append(digit)
        rest = (rest - digit) // 4
    return digits


#: ROM bits per radix-4 digit of a LUT multiplier's weight (`digit_code`)
DIGIT_BITS = 3


def digit_code(digit: int) -> int:
    """The ROM bits of a radix-4 digit in [-2, 2]: bit 0 ``|digit| == 1``, bit 1
    ``|digit| == 2``, bit 2 ``digit < 0`` (0 for 0): the term is ``x``, ``2x`` or 0, its
    bits inverted when negative (no Booth encoder in logic: the ROM holds the digits)."""
    return int(abs(digit) == 1) | int(abs(digit) == 2) << 1 | int(digit < 0) << 2


@dataclass(frozen=True)
class Digit:
    """A radix-4 digit position of a LUT multiplier: the weight of row ``row`` of the group
    for column ``column``, its digit weighing ``4**position``."""

    row: int
    column: int
    position: int


def _digit_positions(weights: np.ndarray) -> list[int]:
    """The radix-4 digit positions the weights one multiplier sees on its steps take a
    non-zero digit at (`booth_digits`): a position zero on every step has no term."""
    used: set[int] = set()
    for value in weights:
        used.update(i for i, d in enumerate(booth_digits(int(value))) if d)
    return sorted(used)


def _digit_at(value: int, position: int) -> int:
    """Digit ``position`` of ``value`` (`booth_digits`; 0 past its last)."""
    digits = booth_digits(value)
    return digits[position] if position < len(digits) else 0


def _code_bits(digit_values: np.ndarray) -> tuple[tuple[tuple[int | None, int | None], ...], ...]:
    """Per digit (a column of ``digit_values``, (steps, digits)), per bit of its
    `digit_code`: ``(rom_bit, None)`` for a bit that differs between steps (the ROM's bits
    numbered in digit, then bit order), ``(None, value)`` for one that does not."""
    out, rom_bit = [], 0
    for column in np.asarray(digit_values).T:
        codes = {digit_code(int(d)) for d in column}
        bits = []
        for b in range(DIGIT_BITS):
            values = {code >> b & 1 for code in codes}
            if len(values) == 1:
                bits.append((None, values.pop()))
            else:
                bits.append((rom_bit, None))
                rom_bit += 1
        out.append(tuple(bits))
    return tuple(out)


def _digit_term(x, code, position: int):
    """A radix-4 digit's term of ``x * w`` from its code bits (`digit_code`): ``x``, ``2x``
    or 0, inverted (``-m - 1``) when negative, times ``4**position``. The ``-1`` of every
    negative digit is a constant of the ROM, added back by the accumulator's start value
    (`SerialMatVec.start_bias`), so no term needs a carry of its own."""
    x = Value.cast(x)
    mag = Mux(code[1], x.shift_left(1), Mux(code[0], x, 0))  # one bit wider than x
    if not x.shape().signed:
        mag = Cat(mag, Const(0, 1)).as_signed()
    return Mux(code[2], ~mag, mag).shift_left(2 * position)


#: ROMs deeper than this many words go to block RAM. A ROM in logic is one LUT per bit in
#: principle, but Yosys (ABC9) decodes 40-100-word ROMs in chains of up to 10 LUTs
BLOCK_ROM_WORDS = 32
#: ROMs of at most this many words are read through a one-hot copy of the word counter
#: (`_one_hot_rom_bits`): each bit one LUT6 of it. From a binary address ABC9 shared the
#: word decoders between bits in chains of LUT2s: SVHN dense_1's 12-word ROM (4 result beats
#: of 3 steps) was 6 LUT levels alone, 8 in the whole design (its deepest path), 4 one-hot
#: at the same LUTs; a 32-word ROM (dense_0) one-hot is the same 4 levels, +12 % LUTs.
ONE_HOT_ROM_WORDS = 12


def _one_hot_rom_bits(words: list[int], width: int, hot) -> list:
    """Bit ``b`` of ``words[s]`` for the word ``s`` whose bit of the one-hot ``hot`` is set:
    the OR of the bits of the words holding a 1 there, or the NOR of those holding a 0,
    whichever reads fewer (at most half the words: 12 words, one LUT6 per bit). The one-hot
    register is the decoder, so no decoding logic is left for synthesis to share."""
    bits = []
    for b in range(width):
        ones = [s for s, word in enumerate(words) if word >> b & 1]
        if not ones or len(ones) == len(words):
            bits.append(Const(bool(ones), 1))
        elif 2 * len(ones) <= len(words):
            bits.append(Cat(*(hot[s] for s in ones)).any())
        else:
            bits.append(~Cat(*(hot[s] for s in range(len(words)) if s not in ones)).any())
    return bits


def _schedule(
    w: np.ndarray, reuse: int, beats: int = 1, out_beats: int = 1
) -> tuple[int, int, np.ndarray]:
    """(group, steps, weights as (words, group, O / out_beats)) of a (K, O) matrix at
    ``reuse`` steps per beat: each of the ``beats`` beats carries ``K / beats`` consecutive
    rows (arrival order), folded over ``steps`` steps of ``group`` rows; with ``out_beats``
    (one input beat) the columns are made in that many groups of ``O / out_beats``, one
    after another, each over the ``steps`` steps of the whole vector (``words = beats *
    steps * out_beats``)."""
    k, o = w.shape
    per_beat = k // beats
    group = math.ceil(per_beat / min(reuse, per_beat))
    steps = math.ceil(per_beat / group)
    padded = np.zeros((beats, steps * group, o), dtype=np.int64)
    padded[:, :per_beat] = w.reshape(beats, per_beat, o)
    if out_beats > 1:  # (steps, group, out beat, its columns) -> out beat major
        chunks = padded.reshape(steps, group, out_beats, o // out_beats).transpose(2, 0, 1, 3)
        return group, steps, chunks.reshape(out_beats * steps, group, o // out_beats)
    return group, steps, padded.reshape(beats * steps, group, o)


def _active(schedule: np.ndarray) -> np.ndarray:
    """(group, O) mask of the positions that see a non-zero weight on some step: one
    general multiplier each."""
    return np.any(schedule != 0, axis=0)


def shared_multipliers(
    weights: np.ndarray, reuse: int, beats: int = 1, out_beats: int = 1
) -> int:
    """The general multipliers `SerialMatVec` builds for ``weights`` at ``reuse`` steps per
    beat of ``beats`` (its results in ``out_beats`` beats)."""
    _, _, schedule = _schedule(np.asarray(weights, dtype=np.int64), reuse, beats, out_beats)
    return int(_active(schedule).sum())


class SerialMatVec(wiring.Component):
    """``y = x @ W + b`` over ``steps`` cycles with ``group`` multipliers per output column.

    ``weights`` (K, O) integer mantissas already aligned to the accumulator (as for
    `ConstantMatVec`), ``bias`` (O,) at the accumulator's fraction or None.
    The input vector arrives in ``beats`` beats of ``K / beats`` consecutive elements each
    (1: the whole vector in one beat; more: a flatten's beats consumed as they arrive, FINN
    MVAU-style: each beat adds ``W[its rows] @ x_beat`` to the partial sums of all outputs).
    ``group = ceil(K / beats / reuse)`` elements of a beat are consumed per step,
    ``steps = ceil(K / beats / group)`` steps per beat.
    Weights live in a ROM of ``beats * steps`` words (block RAM over `BLOCK_ROM_WORDS`; up
    to `ONE_HOT_ROM_WORDS`, read through a one-hot copy of the word counter); a column whose weights are all
    zero gets no multiplier, and a (row-in-group, column) position whose weights are zero on
    every step of every beat gets none either.
    ``out_beats`` > 1 (a one-beat input): the result leaves in that many beats of
    ``O / out_beats`` consecutive outputs, each made over ``steps`` steps of the whole
    vector (the input register rotates, so every output beat sees every element) and sent
    as soon as it is complete: a next layer that takes beats as they arrive starts on the
    first (``cycles_per_sample = steps * out_beats``; the multipliers serve one output beat's
    columns, ``group * O / out_beats`` of them; ROM of ``steps * out_beats`` words).

    Contract:
    - accepts one beat every ``steps`` cycles (``cycles_per_sample = beats * steps``); a new
      beat is taken during the last step of the previous one, so back-to-back beats and
      vectors need no bubble;
    - a beat taken while the layer is idle has its first step in its handshake cycle (its
      first ``group`` elements go straight from the input to the weight/input register); a
      beat taken during the previous beat's last step starts on the next cycle;
      ``early_start=False``: every beat starts on the cycle after its handshake (no mux
      before that register, which costs ~0.5 LUT per input bit: a convolution's wide
      windows, `rtlgen.ops.matvec`), latency one more;
    - ``latency = steps * out_beats + depth + 1`` cycles from the handshake of a vector's
      last beat, taken while idle, to ``o.valid`` of its (last) result beat with no
      backpressure (one more when that beat was taken during the previous beat's last step;
      output beat ``j`` comes ``(out_beats - 1 - j) * steps`` cycles earlier): the steps, the
      weight/input register (the ROM is read from a counter and registered before any
      arithmetic), ``depth`` registers in the product/adder tree, then the
      accumulate/output register. The tree has ``L`` adder
      levels (DSP: ceil(log2(group)) over the registered products; LUT:
      ceil(log2(terms)) over the digit terms of the column with the most); with the
      accumulator's
      adder that is ``L + 1`` adders in series, registered every ``levels_per_stage``
      (the last stage holds the accumulator): ``depth = ceil((L + 1) / levels_per_stage)
      - 1``, plus the product register in DSP style;
    - at most ``levels_per_stage`` adders in series between registers (1: the shallowest
      logic; `rtlgen.plan.HardwareOptions.adders_per_stage` as the constant MAC arrays
      have it); the accumulator starts from the bias on the first step of the first beat;
    - backpressure: every register advances only while the output register is free
      (``~o.valid | o.ready``), so ``o.ready`` low freezes the datapath; nothing is lost or
      duplicated; gaps between the beats of a vector only delay it;
    - ``multiplier``: "dsp" or "auto" write ``*`` (synthesis maps wide ones to DSP blocks),
      "lut" builds shift-and-add multipliers (no DSP): the ROM holds each weight's
      radix-4 digits (`booth_digits`, `digit_code`), only at the positions that multiplier's
      own weights use (`digits`), and each digit is one term, ``x``, ``2x`` or 0 shifted,
      its bits inverted when negative; the accumulator starts from `start_bias`, the bias
      plus the ones those inverted terms lack.
    """

    def __init__(
        self,
        weights: np.ndarray,
        in_shape: FixedType | ShapeLike,
        acc_type: FixedType,
        bias: np.ndarray | None,
        reuse: int,
        multiplier: Multiplier = Multiplier.AUTO,
        beats: int = 1,
        levels_per_stage: int = 1,
        out_beats: int = 1,
        early_start: bool = True,
    ):
        w = np.asarray(weights, dtype=np.int64)
        if w.ndim != 2 or 0 in w.shape:
            raise RtlgenError(
                f"SerialMatVec: weights must be a non-empty (K, O) matrix, got {w.shape}"
            )
        if reuse < 1:
            raise RtlgenError(f"SerialMatVec: reuse must be >= 1, got {reuse}")
        if levels_per_stage < 1:
            raise RtlgenError(
                f"SerialMatVec: levels_per_stage must be >= 1, got {levels_per_stage}"
            )
        if beats < 1 or w.shape[0] % beats:
            raise RtlgenError(
                f"SerialMatVec: {w.shape[0]} inputs do not split into {beats} equal beats"
            )
        if out_beats < 1 or w.shape[1] % out_beats or (out_beats > 1 and beats > 1):
            raise RtlgenError(
                f"SerialMatVec: {w.shape[1]} outputs in {out_beats} beats from {beats} input "
                "beats (the outputs split into equal beats of a one-beat input)"
            )
        self.k, self.o_count = w.shape
        self.beats, self.out_beats = beats, out_beats
        self.early_start = early_start
        #: outputs per result beat: the accumulator's columns
        self.columns = self.o_count // out_beats
        self.per_beat = self.k // beats
        self.group, self.steps, self.schedule = _schedule(w, reuse, beats, out_beats)
        self.in_shape = (
            shape_of(in_shape) if isinstance(in_shape, FixedType) else Shape.cast(in_shape)
        )
        self.acc_type = acc_type
        self.multiplier = multiplier
        self.bias = (
            np.zeros(self.o_count, dtype=np.int64)
            if bias is None
            else np.asarray(bias, dtype=np.int64)
        )
        #: the bias of each output beat's columns
        self.beat_bias = self.bias.reshape(out_beats, self.columns)
        peak = int(np.abs(self.schedule).max(initial=0))
        self.w_width = max(2, peak.bit_length() + 1)
        # (row-in-group, column) positions that ever see a non-zero weight get a multiplier.
        self.active = _active(self.schedule)
        self.levels_per_stage = levels_per_stage
        lut = multiplier == Multiplier.LUT
        #: LUT style: the radix-4 digit positions of every multiplier, in ROM order (row,
        #: column, position), and their digits on every step, (words, digits)
        self.digits: tuple[Digit, ...] = ()
        if lut:
            self.digits = tuple(
                Digit(j, o, p)
                for j in range(self.group)
                for o in range(self.columns)
                for p in _digit_positions(self.schedule[:, j, o])
            )
        self.digit_values = np.array(
            [
                [_digit_at(int(self.schedule[s, d.row, d.column]), d.position) for d in self.digits]
                for s in range(len(self.schedule))
            ],
            dtype=np.int64,
        ).reshape(len(self.schedule), len(self.digits))
        #: for every digit its `DIGIT_BITS` code bits: (ROM bit, None) where the code bit
        #: varies over the steps, (None, constant) where it does not (no ROM bit: a digit
        #: never +-2 has no ``2x`` input, one never negative no inversion)
        self.code_bits = _code_bits(self.digit_values)
        per_column = [sum(d.column == o for d in self.digits) for o in range(self.columns)]
        terms = max(per_column, default=0) if lut else self.group
        #: adder levels of the tree (the accumulator's adder comes after them)
        self.tree_levels = math.ceil(math.log2(terms)) if terms > 1 else 0
        self.depth = math.ceil((self.tree_levels + 1) / levels_per_stage) - 1
        if multiplier != Multiplier.LUT:
            self.depth += 1  # the product register
        self.inner = signed(acc_type.width + 1)
        super().__init__(
            {
                "i": In(stream.Signature(data.ArrayLayout(self.in_shape, self.per_beat))),
                "o": Out(stream.Signature(data.ArrayLayout(shape_of(acc_type), self.columns))),
            }
        )

    @property
    def multipliers(self) -> int:
        return int(self.active.sum())

    @property
    def adders(self) -> int:
        per_column = np.maximum(self.active.sum(axis=0) - 1, 0) + 1  # tree + accumulator
        return int(per_column[np.any(self.active, axis=0)].sum())

    @property
    def latency(self) -> int:
        """Cycles from a vector's last beat, taken while idle, to its (last) result beat."""
        return self.beat_words + self.depth + 1 + (not self.early_start)

    @property
    def beat_words(self) -> int:
        """Steps (ROM words) per input beat: ``steps``, times ``out_beats``."""
        return self.steps * self.out_beats

    def ends_result(self, word: int) -> bool:
        """Whether the step of ROM word ``word`` completes a result beat."""
        if self.out_beats == 1:
            return word == self.words - 1
        return word % self.steps == self.steps - 1

    @property
    def cycles_per_sample(self) -> int:
        return self.words

    @property
    def block_rom(self) -> bool:
        """Whether the weight ROM is block RAM, read a step ahead: its read register holds
        no word before the first clock edge, so no beat is taken in the cycle after reset."""
        return self.words > BLOCK_ROM_WORDS

    @property
    def words(self) -> int:
        """ROM words: one per step of every beat (and result beat)."""
        return self.beats * self.steps * self.out_beats

    @property
    def rom_width(self) -> int:
        """Bits of a ROM word: ``w_width`` per (row, column) position (DSP/auto); LUT style
        the code bits of `digits` that vary over the steps (`code_bits`; at least one)."""
        if self.multiplier == Multiplier.LUT:
            return max(sum(rom is not None for bits in self.code_bits for rom, _ in bits), 1)
        return self.group * self.columns * self.w_width

    def rom_words(self) -> list[int]:
        """The ROM's words, one per step: the weights of its (row, column) positions, two's
        complement, position ``j * columns + o`` at bit ``w_width * (j * columns + o)``
        (DSP/auto); LUT style the varying bits of each digit's `digit_code` at their
        `code_bits` ROM bits."""
        if self.multiplier == Multiplier.LUT:
            words = []
            for step in self.digit_values:
                word = 0
                for value, bits in zip(step, self.code_bits, strict=True):
                    code = digit_code(int(value))
                    for b, (rom, _) in enumerate(bits):
                        if rom is not None:
                            word |= (code >> b & 1) << rom
                words.append(word)
            return words
        mask = (1 << self.w_width) - 1
        return [
            sum((int(w) & mask) << (k * self.w_width) for k, w in enumerate(step.reshape(-1)))
            for step in self.schedule
        ]

    def digit_codes(self, word: int) -> list[int]:
        """The `digit_code` of every digit of `digits` in ROM word ``word`` (LUT style)."""
        return [
            sum((word >> rom & 1 if rom is not None else value) << b
                for b, (rom, value) in enumerate(bits))
            for bits in self.code_bits
        ]  # fmt: skip

    @property
    def start_bias(self) -> np.ndarray:
        """(out_beats, columns) what the accumulator of each result beat's columns starts
        from: the bias, plus (LUT style) ``4**position`` for every negative digit the column
        sees over the beat's steps (each such term is ``-m * 4**position - 4**position``:
        the inverted bits of ``m``), wrapped to the accumulator's width."""
        start = self.beat_bias.copy()
        per_result = self.words // self.out_beats
        for s, step in enumerate(self.digit_values):
            for d, value in zip(self.digits, step, strict=True):
                if value < 0:
                    start[s // per_result, d.column] += 4**d.position
        width = self.inner.width
        return (start + (1 << (width - 1))) % (1 << width) - (1 << (width - 1))

    @property
    def conversion_cost(self) -> int:
        """Four per multiplier operand bit (every multiplier, LUT or DSP): what the Verilog
        back end's time grows with, in `rtlgen.emit._size`'s units (a constant MAC array's
        adder bits); Amaranth converts a serial MAC's bit ~4x slower (SVHN: 0.3-0.4 ms per
        operand bit), so a mid-size one goes to a worker process too. (Written as text,
        `serial_mac_verilog`, the worker converts only a wrapper of its instance.)"""
        return 4 * self.group * self.columns * self.w_width * self.in_shape.width

    def elaborate(self, platform):
        from . import mac_verilog, serial_mac_verilog

        # Verilog emission: an instance of the same logic written as text
        text = mac_verilog.text_instance(
            self, SerialMatVec, serial_mac_verilog.supported, serial_mac_verilog.serial_verilog, "smac"
        )
        if text is not None:
            return text
        m = Module()
        steps, group, n_out, words = self.steps, self.group, self.columns, self.words
        beat_words = self.beat_words
        lut = self.multiplier == Multiplier.LUT
        if lut:  # the varying code bits of the digits
            word_layout = data.ArrayLayout(unsigned(1), self.rom_width)
        else:  # a weight per (row, column) position
            word_layout = data.ArrayLayout(signed(self.w_width), group * n_out)
        rom_init = self.rom_words()
        block_rom = self.block_rom
        one_hot = words <= ONE_HOT_ROM_WORDS
        if not one_hot:
            m.submodules.rom = rom = memory.Memory(
                shape=unsigned(word_layout.size),
                depth=words,
                init=rom_init,
                attrs={"rom_style": "block" if block_rom else "logic"},
            )
            # A synchronous read port. In logic, its data register is the weight register. A
            # block RAM's own output is slow (ECP5 DP16KD: ~6 ns clock-to-out), so it is read
            # one step ahead, addressed by the word counter's next value, and registered again.
            rom_read = rom.read_port()

        advance = Signal()
        busy = Signal()
        # the ROM word of the current step (beat * steps + step): it runs on from one beat
        # to the next and wraps after a vector's last, so it always holds the word the next
        # beat starts at
        word = Signal(range(max(words, 2)))
        # the word ends its beat / its vector: registers, so that no compare of the counter
        # is in series with the handshake
        last_step = Signal(init=beat_words == 1)
        last_word = Signal(init=words == 1)
        # word + 1 (and whether it ends a beat) as a table: a LUT per bit instead of a carry
        # chain in the counter's loop
        successor = Signal.like(word)
        successor_ends_beat = Signal()
        # several result beats: whether the word starts / ends one (a table too)
        chunked = self.out_beats > 1
        starts_result, ends_result = Signal(), Signal()
        with m.Switch(word):
            for s in range(words - 1):
                with m.Case(s):
                    m.d.comb += [
                        successor.eq(s + 1),
                        successor_ends_beat.eq((s + 1) % beat_words == beat_words - 1),
                    ]
                    if chunked:
                        m.d.comb += [
                            starts_result.eq(s % steps == 0),
                            ends_result.eq(self.ends_result(s)),
                        ]
            with m.Default():  # the last word (and codes the counter never holds)
                m.d.comb += [successor.eq(0), successor_ends_beat.eq(beat_words == 1)]
                if chunked:
                    m.d.comb += [
                        starts_result.eq((words - 1) % steps == 0),
                        ends_result.eq(1),
                    ]
        xs = Signal(data.ArrayLayout(self.in_shape, steps * group), reset_less=True)
        # a block ROM's read register holds a word from the first clock edge on: a beat
        # taken idle steps at once, so none is taken before it
        primed = Signal(init=not block_rom)
        m.d.sync += primed.eq(1)
        m.d.comb += [
            advance.eq(~self.o.valid | self.o.ready),
            self.i.ready.eq(advance & (~busy | last_step) & primed),
        ]
        start = self.i.valid & self.i.ready
        # a step this cycle: of the beat in progress, or the first of a beat taken while
        # idle (its elements come straight from the input)
        step = Signal()
        m.d.comb += step.eq(busy | start if self.early_start else busy)
        if one_hot:
            # `word` as a one-hot register (it moves with the counter) addresses the ROM; the
            # word read is registered as the weight register
            hot = Signal(words, init=1)
            if words > 1:
                with m.If(advance & step):
                    m.d.sync += hot.eq(hot.rotate_left(1))
        else:
            m.d.comb += [
                rom_read.en.eq(advance),
                rom_read.addr.eq(Mux(step, successor, word) if block_rom else word),
            ]
        group_bits = group * self.in_shape.width
        payload = self.i.payload.as_value()
        padded = Cat(payload, Const(0, (steps * group - self.per_beat) * self.in_shape.width))

        def rotate(value):
            # the next group to the bottom: rotated where later result beats need every
            # element again, else shifted (zeros in: no mux on the top group's bits)
            if self.out_beats > 1:
                return Cat(value[group_bits:], value[:group_bits])
            return value >> group_bits

        with m.If(advance):
            with m.If(step):
                m.d.sync += [
                    word.eq(successor),
                    last_step.eq(successor_ends_beat),
                    last_word.eq(word == words - 2 if words > 1 else 1),
                ]
                with m.If(last_step):
                    m.d.sync += busy.eq(0)
            # the input register moves a group a step (with result beats it rotates: after
            # `steps` steps it is as loaded, for the next result beat's columns)
            with m.If(busy):
                m.d.sync += xs.eq(rotate(xs.as_value()))
            with m.If(start):
                if not self.early_start:
                    m.d.sync += [xs.eq(padded), busy.eq(1)]
                else:
                    with m.If(busy):  # taken on the last step: its first step is the next
                        m.d.sync += [xs.eq(padded), busy.eq(1)]
                    with m.Else():  # its first step is now: the rest waits in `xs`
                        m.d.sync += [xs.eq(rotate(padded)), busy.eq(~last_step)]

        # The weights of this step and the inputs they multiply are registered first, so the
        # ROM's address decoding never shares a cycle with a multiplier or adder.
        if block_rom:
            wrow = Signal(word_layout, reset_less=True)
            with m.If(advance):
                m.d.sync += wrow.eq(rom_read.data)
        elif one_hot:
            wrow = Signal(word_layout, reset_less=True)
            with m.If(advance):
                m.d.sync += wrow.as_value().eq(
                    Cat(*_one_hot_rom_bits(rom_init, word_layout.size, hot))
                )
        else:
            wrow = data.View(word_layout, rom_read.data)
        xrow = Signal(data.ArrayLayout(self.in_shape, group), reset_less=True)
        valid, first, last = Signal(name="valid_w"), Signal(name="first_w"), Signal(name="last_w")
        with m.If(advance):
            m.d.sync += [
                xrow.eq(
                    Mux(busy, xs.as_value()[:group_bits], payload[:group_bits])
                    if self.early_start
                    else xs.as_value()[:group_bits]
                ),
                valid.eq(step),
                first.eq(starts_result if chunked else word == 0),
                last.eq(ends_result if chunked else last_word),
            ]

        # terms of each column: products (DSP) or digit terms (LUT)
        columns: dict[int, list] = {o: [] for o in range(n_out)}
        if lut:  # a term per radix-4 digit
            for d, bits in zip(self.digits, self.code_bits, strict=True):
                code = [wrow[rom] if rom is not None else Const(value, 1) for rom, value in bits]
                columns[d.column].append(_digit_term(xrow[d.row], code, d.position))
        else:
            for j in range(group):
                for o in range(n_out):
                    if self.active[j, o]:
                        columns[o].append(xrow[j] * wrow[j * n_out + o])
        registers = 0

        def register(name: str) -> None:
            # every column's terms and the control bits through one register stage
            nonlocal valid, first, last, registers
            for o, terms in columns.items():
                regs = []
                for a, term in enumerate(terms):
                    reg = Signal(self.inner, name=f"{name}_{o}_{a}", reset_less=True)
                    with m.If(advance):
                        m.d.sync += reg.eq(term)
                    regs.append(reg)
                columns[o] = regs
            v2, f2, l2 = (
                Signal(name=f"valid_{registers}"),
                Signal(name=f"first_{registers}"),
                Signal(name=f"last_{registers}"),
            )
            with m.If(advance):
                m.d.sync += [v2.eq(valid), f2.eq(first), l2.eq(last)]
            valid, first, last = v2, f2, l2
            registers += 1

        if not lut:
            register("p")  # the product register (a DSP's MREG)
        # `tree_levels` pairwise adder levels, registered after every `levels_per_stage`
        # of them counting the accumulator's adder as the last level
        for level in range(self.tree_levels):
            for o, terms in columns.items():
                pairs = []
                for a in range(0, len(terms), 2):
                    if a + 1 < len(terms):
                        total = Signal(self.inner, name=f"s{level}_{o}_{a // 2}")
                        m.d.comb += total.eq(terms[a] + terms[a + 1])
                        pairs.append(total)
                    else:
                        pairs.append(terms[a])
                columns[o] = pairs
            if (level + 1) % self.levels_per_stage == 0:
                register(f"t{level}")
        assert registers == self.depth

        # accumulate; the output register loads on the last step
        out = Signal(data.ArrayLayout(shape_of(self.acc_type), n_out), reset_less=True)
        out_valid = Signal()
        m.d.comb += [self.o.valid.eq(out_valid), self.o.payload.eq(out)]
        with m.If(advance):
            m.d.sync += out_valid.eq(valid & last)
        # the result beat being accumulated (its columns' bias): counts the ones completed
        result_beat = Signal(range(max(self.out_beats, 2)))
        if chunked:
            with m.If(advance & valid & last):
                m.d.sync += result_beat.eq(
                    Mux(result_beat == self.out_beats - 1, 0, result_beat + 1)
                )
        for o in range(n_out):
            assert len(columns[o]) <= 1, "adder tree did not reduce to one term"
            partial = columns[o][0] if columns[o] else Const(0, self.inner)
            acc = Signal(self.inner, name=f"acc_{o}", reset_less=True)
            total = Signal(self.inner, name=f"sum_{o}")
            biases = [Const(int(b), self.inner) for b in self.start_bias[:, o]]
            bias = Array(biases)[result_beat] if chunked else biases[0]
            # the accumulator starts from the bias: one adder in this stage
            m.d.comb += total.eq(Mux(first, bias, acc) + partial)
            with m.If(advance & valid):
                m.d.sync += acc.eq(total)
                with m.If(last):
                    m.d.sync += out[o].eq(total)
        return m
