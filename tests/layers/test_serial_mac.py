"""SerialMatVec (reuse > 1) bit-exact against numpy, under backpressure, with its timing."""

import re

import numpy as np
import pytest
from amaranth.back import rtlil
from amaranth.hdl import Cat, Module, Signal
from amaranth.sim import Simulator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtlgen.layers.serial_mac import (
    BLOCK_ROM_WORDS,
    DIGIT_BITS,
    ONE_HOT_ROM_WORDS,
    SerialMatVec,
    _one_hot_rom_bits,
    booth_digits,
    digit_code,
    shared_multipliers,
)
from rtlgen.quant.arith import accumulator_type
from rtlgen.quant.errors import RtlgenError
from rtlgen.quant.fixed import FixedType

from .streams import simulate_stream


def make(k, o, reuse, in_type, sparsity, seed, multiplier="auto", bias=True, beats=1, levels=1):
    rng = np.random.default_rng(seed)
    w = rng.integers(-40, 41, size=(k, o)) * (rng.random((k, o)) >= sparsity)
    b = rng.integers(-200, 201, size=o) if bias else None
    acc = accumulator_type(w, b, in_type, 0)
    dut = SerialMatVec(w, in_type, acc, b, reuse, multiplier, beats=beats, levels_per_stage=levels)
    return dut, w, b


def as_beats(x, beats):
    """Each vector's elements in ``beats`` consecutive beats (a flatten's arrival order)."""
    return x.reshape(len(x) * beats, -1).tolist()


def _rtlil(dut):
    return rtlil.convert(dut)  # a Component: its ports are its signature's


def back_to_back(steps: int, n: int) -> list[int]:
    """Cycles between the handshakes of ``n`` beats offered on every cycle: the first,
    taken idle, has its first step at once, so the second is taken on its last step,
    ``steps - 1`` cycles later; each later one starts a cycle after its handshake."""
    return ([max(steps - 1, 1)] + [steps] * (n - 2))[: n - 1]


def result_after(dut, index: int) -> int:
    """Cycles from the handshake of beat ``index`` (a vector's last) to the result at full
    rate: `latency` when it was taken idle (the first beat, or every beat at one step a
    beat), one more when taken on the previous beat's last step."""
    return dut.latency + (index > 0 and dut.steps > 1)


def vectors(in_type, k, n, seed):
    rng = np.random.default_rng(seed + 1)
    return rng.integers(in_type.min_int, in_type.max_int + 1, size=(n, k))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    k=st.integers(1, 12),
    o=st.integers(1, 5),
    reuse=st.integers(1, 13),
    signed=st.booleans(),
    width=st.integers(2, 9),
    sparsity=st.sampled_from([0.0, 0.5, 0.95]),
    multiplier=st.sampled_from(["auto", "lut"]),
    seed=st.integers(0, 1000),
    levels=st.integers(1, 4),
)
def test_bit_exact_under_random_backpressure(
    k, o, reuse, signed, width, sparsity, multiplier, seed, levels
):
    in_type = FixedType(width, 0, signed)
    dut, w, b = make(k, o, reuse, in_type, sparsity, seed, multiplier, levels=levels)
    x = vectors(in_type, k, 6, seed)
    out = simulate_stream(
        dut, x.tolist(), len(x), seed=seed, valid_prob=0.6, ready_prob=0.5
    ).outputs
    np.testing.assert_array_equal(np.array(out), x @ w + b)


@pytest.mark.parametrize(
    "k,reuse,levels,multiplier",
    [
        (16, 4, 1, "auto"),
        (10, 3, 1, "auto"),
        (7, 7, 1, "auto"),
        (5, 1, 1, "auto"),
        (40, 4, 2, "auto"),
        (40, 4, 3, "lut"),
        (9, 3, 2, "lut"),
        (5, 1, 6, "auto"),
    ],
)
def test_full_rate_timing_matches_contract(k, reuse, levels, multiplier):
    in_type = FixedType(8, 0, True)
    dut, w, b = make(k, 3, reuse, in_type, 0.3, 7, multiplier, levels=levels)
    x = vectors(in_type, k, 5, 3)
    run = simulate_stream(dut, x.tolist(), len(x))
    np.testing.assert_array_equal(np.array(run.outputs), x @ w + b)
    # a new vector every `steps` cycles, back to back, no bubble
    assert np.diff(run.in_cycles).tolist() == back_to_back(dut.steps, len(x))
    assert [o - t for o, t in zip(run.out_cycles, run.in_cycles, strict=True)] == [
        result_after(dut, v) for v in range(len(x))
    ]
    assert dut.latency == dut.steps + dut.depth + 1
    assert dut.cycles_per_sample == dut.steps


@pytest.mark.parametrize(
    "group,multiplier,levels,depth",
    [
        (36, "auto", 1, 7),
        (36, "auto", 2, 4),
        (36, "auto", 3, 3),
        (3, "auto", 2, 2),
        (1, "auto", 2, 1),
        (4, "lut", 1, 3),
        (4, "lut", 2, 1),
        (4, "lut", 6, 0),
    ],
)
def test_adders_per_stage_set_the_tree_registers(group, multiplier, levels, depth):
    """The tree's adder levels and the accumulator's adder, registered every `levels`
    adders (DSP: after the product register too): group 36 has 6 levels + 1, so 7
    registers at one adder per stage and 4 at two; a LUT tree over the terms of 4 weights
    9 = 1 + 2 * 4, two radix-4 digits each, has 3 levels + 1."""
    w = np.full((group, 2), 9)  # 5-bit weights
    dut = SerialMatVec(
        w, FixedType(8, 0), FixedType(24, 0), None, 1, multiplier, levels_per_stage=levels
    )
    assert (dut.group, dut.w_width) == (group, 5)
    assert dut.depth == depth
    assert dut.latency == dut.steps + depth + 1


def test_zero_columns_and_positions_get_no_multiplier():
    w = np.array([[0, 3, 0], [0, 0, 0], [0, 5, 0], [0, 0, 2]])
    dut = SerialMatVec(w, FixedType(8, 0), FixedType(20, 0), None, reuse=2)
    # group of 2 rows: positions (0, col1), (1, col2) only carry non-zero weights
    assert dut.multipliers == 2


def test_lut_mode_emits_no_multiply_cell():
    in_type = FixedType(8, 0, True)
    dut, _, _ = make(8, 3, 4, in_type, 0.0, 1, multiplier="lut")
    assert "$mul" not in _rtlil(dut)
    dut, _, _ = make(8, 3, 4, in_type, 0.0, 1, multiplier="dsp")
    assert "$mul" in _rtlil(dut)


@pytest.mark.parametrize("k,multiplier", [(70, "auto"), (67, "lut")])
def test_block_rom_layer_is_bit_exact_with_its_timing(k, multiplier):
    """More steps than BLOCK_ROM_WORDS: the weight ROM is marked for block RAM and still
    read one step ahead of the arithmetic, at full rate and under backpressure."""
    in_type = FixedType(6, 0, True)
    dut, w, b = make(k, 2, k, in_type, 0.4, 5, multiplier)
    assert dut.steps == k > BLOCK_ROM_WORDS
    assert 'attribute \\rom_style "block"' in _rtlil(dut)
    x = vectors(in_type, k, 3, 5)
    run = simulate_stream(dut, x.tolist(), len(x))
    np.testing.assert_array_equal(np.array(run.outputs), x @ w + b)
    assert np.diff(run.in_cycles).tolist() == back_to_back(dut.steps, len(x))
    assert run.out_cycles[0] - run.in_cycles[0] == dut.latency
    out = simulate_stream(dut, x.tolist(), len(x), seed=3, valid_prob=0.7, ready_prob=0.3).outputs
    np.testing.assert_array_equal(np.array(out), x @ w + b)


def test_small_rom_is_logic_read_through_a_one_hot_word_register():
    """A ROM of at most ONE_HOT_ROM_WORDS words is no memory: each weight bit reads a
    one-hot copy of the word counter (no binary address for ABC9 to decode in chains); a
    larger one up to BLOCK_ROM_WORDS is a memory in logic."""
    dut, _, _ = make(12, 3, 6, FixedType(8, 0, True), 0.0, 2)
    assert dut.words == 6 <= ONE_HOT_ROM_WORDS
    text = _rtlil(dut)
    assert "rom_style" not in text and "memory" not in text
    assert re.search(r"wire width 6 .*\\hot\b", text)
    dut, _, _ = make(20, 3, 20, FixedType(8, 0, True), 0.0, 2)
    assert ONE_HOT_ROM_WORDS < dut.words == 20 <= BLOCK_ROM_WORDS
    assert 'attribute \\rom_style "logic"' in _rtlil(dut)


@pytest.mark.parametrize(
    "k,columns,out_beats,reuse",
    [(42, 2, 4, 3), (13, 3, 1, 13), (40, 2, 1, 20), (12, 1, 12, 1), (7, 2, 2, 7)],
)
def test_each_rom_kind_is_bit_exact_under_backpressure(k, columns, out_beats, reuse):
    """The one-hot ROM at its bound (12 words: SVHN dense_1's 4 result beats of 3 steps;
    12 beats of 1 step) and the binary one in logic just above it (13, 14, 20 words):
    every vector exact with random gaps and stalls, and at full rate on time."""
    in_type = FixedType(6, 0, True)
    dut, w, b = make_chunked(k, columns * out_beats, out_beats, reuse, 0.5, 11)
    assert dut.words == dut.steps * out_beats
    x = vectors(in_type, k, 6, 3)
    expected = as_result_beats(x @ w + b, out_beats)
    out = simulate_stream(
        dut, x.tolist(), len(x) * out_beats, seed=4, valid_prob=0.6, ready_prob=0.4
    ).outputs
    np.testing.assert_array_equal(np.array(out), expected)
    run = simulate_stream(dut, x.tolist(), len(x) * out_beats)
    np.testing.assert_array_equal(np.array(run.outputs), expected)
    assert run.out_cycles[out_beats - 1] - run.in_cycles[0] == dut.latency


@settings(max_examples=40, deadline=None)
@given(
    words=st.lists(st.integers(0, 2**20 - 1), min_size=1, max_size=32),
    width=st.integers(1, 20),
)
def test_one_hot_rom_bits_read_each_word(words, width):
    """Every word read back exactly (bits all 0, all 1, mostly 1 or mostly 0 across words),
    each bit from at most half the one-hot bits (12 words: one LUT6)."""
    words = [word & ((1 << width) - 1) for word in words]
    hot = Signal(len(words))
    bits = Cat(*_one_hot_rom_bits(words, width, hot))

    async def bench(ctx):
        for index, word in enumerate(words):
            ctx.set(hot, 1 << index)
            assert ctx.get(bits) == word

    sim = Simulator(Module())
    sim.add_testbench(bench)
    sim.run()
    for bit in _one_hot_rom_bits(words, width, hot):
        reads = {s for s in range(len(words)) if f"(slice (sig hot) {s}:{s + 1})" in repr(bit)}
        assert len(reads) <= len(words) // 2


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    per_beat=st.integers(1, 7),
    beats=st.integers(1, 6),
    o=st.integers(1, 4),
    reuse=st.integers(1, 9),
    sparsity=st.sampled_from([0.0, 0.5, 0.95]),
    multiplier=st.sampled_from(["auto", "lut"]),
    seed=st.integers(0, 1000),
    levels=st.integers(1, 3),
)
def test_beats_are_accumulated_as_they_arrive_bit_exact_under_backpressure(
    per_beat, beats, o, reuse, sparsity, multiplier, seed, levels
):
    """A vector in several beats (a flatten's), each folded over its own steps: the same
    result as the whole vector, whatever the gaps and the output stalls; reuse not dividing
    the beat's elements included."""
    in_type = FixedType(6, 0, True)
    k = per_beat * beats
    dut, w, b = make(k, o, reuse, in_type, sparsity, seed, multiplier, beats=beats, levels=levels)
    assert dut.steps == -(-per_beat // dut.group) <= max(reuse, 1)
    x = vectors(in_type, k, 4, seed)
    out = simulate_stream(
        dut, as_beats(x, beats), len(x), seed=seed, valid_prob=0.6, ready_prob=0.5
    ).outputs
    np.testing.assert_array_equal(np.array(out), x @ w + b)


@pytest.mark.parametrize(
    "per_beat,beats,reuse",
    [(24, 4, 8), (5, 3, 2), (7, 5, 3), (3, 16, 1), (4, 2, 4), (9, 1, 4)],
)
def test_beats_back_to_back_and_latency_from_the_last_beat(per_beat, beats, reuse):
    """At full rate a beat is taken every `steps` cycles with no bubble between beats or
    vectors (the first, taken idle, steps at once); the result is valid `latency` cycles
    after the vector's last beat, one more when that beat waited for a last step."""
    in_type = FixedType(8, 0, True)
    dut, w, b = make(per_beat * beats, 3, reuse, in_type, 0.3, 7, beats=beats)
    x = vectors(in_type, per_beat * beats, 3, 4)
    run = simulate_stream(dut, as_beats(x, beats), len(x))
    np.testing.assert_array_equal(np.array(run.outputs), x @ w + b)
    assert np.diff(run.in_cycles).tolist() == back_to_back(dut.steps, len(x) * beats)
    last_beats = run.in_cycles[beats - 1 :: beats]
    assert [o - t for o, t in zip(run.out_cycles, last_beats, strict=True)] == [
        result_after(dut, v * beats + beats - 1) for v in range(3)
    ]
    assert dut.cycles_per_sample == beats * dut.steps


def test_many_beat_vector_with_a_block_rom_is_bit_exact():
    """More ROM words (beats x steps) than BLOCK_ROM_WORDS: block RAM read one word ahead,
    across beat boundaries too, at full rate and under backpressure."""
    in_type = FixedType(6, 0, True)
    dut, w, b = make(5 * 12, 2, 3, in_type, 0.4, 9, multiplier="lut", beats=12)
    assert dut.words == 12 * dut.steps > BLOCK_ROM_WORDS
    assert 'attribute \\rom_style "block"' in _rtlil(dut)
    x = vectors(in_type, 60, 3, 9)
    run = simulate_stream(dut, as_beats(x, 12), len(x))
    np.testing.assert_array_equal(np.array(run.outputs), x @ w + b)
    assert run.out_cycles[0] - run.in_cycles[11] == result_after(dut, 11)
    out = simulate_stream(
        dut, as_beats(x, 12), len(x), seed=4, valid_prob=0.5, ready_prob=0.4
    ).outputs
    np.testing.assert_array_equal(np.array(out), x @ w + b)


def test_levels_per_stage_must_be_positive():
    with pytest.raises(RtlgenError, match="levels_per_stage must be >= 1, got 0"):
        SerialMatVec(
            np.ones((4, 2), dtype=int),
            FixedType(8, 0),
            FixedType(20, 0),
            None,
            2,
            levels_per_stage=0,
        )


def test_beats_must_split_the_inputs_evenly():
    with pytest.raises(RtlgenError, match="7 inputs do not split into 2 equal beats"):
        SerialMatVec(
            np.ones((7, 2), dtype=int), FixedType(8, 0), FixedType(20, 0), None, 2, beats=2
        )


def test_one_multiplier_per_position_any_beat_uses():
    """The multipliers are shared by every beat: a position counts once if any beat's
    weights reach it."""
    w = np.zeros((8, 2), dtype=int)
    w[0, 0] = 1  # beat 0, row 0 of its group, column 0
    w[5, 0] = 2  # beat 1 (rows 4-7), its row 1 -> group row 1 at reuse 2 (group 2)
    w[6, 1] = 3  # beat 1, row 2 -> group row 0, column 1
    assert shared_multipliers(w, 2, beats=2) == 3
    dut = SerialMatVec(w, FixedType(8, 0), FixedType(20, 0), None, 2, beats=2)
    assert (dut.group, dut.steps, dut.multipliers) == (2, 2, 3)


def make_chunked(k, o, out_beats, reuse, sparsity, seed, multiplier="auto", levels=2):
    rng = np.random.default_rng(seed)
    w = rng.integers(-40, 41, size=(k, o)) * (rng.random((k, o)) >= sparsity)
    b = rng.integers(-200, 201, size=o)
    acc = accumulator_type(w, b, FixedType(6, 0, True), 0)
    dut = SerialMatVec(
        w, FixedType(6, 0, True), acc, b, reuse, multiplier, levels_per_stage=levels,
        out_beats=out_beats,
    )
    return dut, w, b


def as_result_beats(y, out_beats):
    """Each result vector's outputs in ``out_beats`` consecutive beats."""
    return y.reshape(len(y) * out_beats, -1)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    k=st.integers(1, 12),
    columns=st.integers(1, 4),
    out_beats=st.integers(2, 5),
    reuse=st.integers(1, 9),
    sparsity=st.sampled_from([0.0, 0.5, 0.95]),
    multiplier=st.sampled_from(["auto", "lut"]),
    seed=st.integers(0, 1000),
    levels=st.integers(1, 3),
)
def test_result_beats_are_bit_exact_under_backpressure(
    k, columns, out_beats, reuse, sparsity, multiplier, seed, levels
):
    """Outputs in several beats (each over every input element: the input register
    rotates), each with its columns' bias, whatever the gaps and output stalls."""
    dut, w, b = make_chunked(k, columns * out_beats, out_beats, reuse, sparsity, seed,
                             multiplier, levels)
    assert dut.words == dut.steps * out_beats and dut.o.payload.shape().length == columns
    x = vectors(FixedType(6, 0, True), k, 4, seed)
    out = simulate_stream(
        dut, x.tolist(), len(x) * out_beats, seed=seed, valid_prob=0.6, ready_prob=0.5
    ).outputs
    np.testing.assert_array_equal(np.array(out), as_result_beats(x @ w + b, out_beats))


@pytest.mark.parametrize(
    "k,out_beats,reuse,multiplier",
    [(42, 4, 3, "auto"), (42, 4, 1, "auto"), (9, 2, 4, "lut"), (12, 3, 12, "auto")],
)
def test_result_beats_come_steps_apart_and_the_timing_model_has_them(
    k, out_beats, reuse, multiplier
):
    """At full rate: result beat j of a vector taken idle comes `(j + 1) * steps + depth +
    1` cycles after it, the last `latency` after; the next vector is taken on the last step
    of the last result beat; `rtlgen.timing` predicts every handshake."""
    from rtlgen.timing import model_stage

    dut, w, b = make_chunked(k, 4 * out_beats, out_beats, reuse, 0.3, 5, multiplier)
    x = vectors(FixedType(6, 0, True), k, 3, 5)
    run = simulate_stream(dut, x.tolist(), len(x) * out_beats)
    np.testing.assert_array_equal(np.array(run.outputs), as_result_beats(x @ w + b, out_beats))
    first = run.in_cycles[0]
    assert [t - first for t in run.out_cycles[:out_beats]] == [
        (j + 1) * dut.steps + dut.depth + 1 for j in range(out_beats)
    ]
    assert run.out_cycles[out_beats - 1] - first == dut.latency
    assert np.diff(run.in_cycles).tolist() == back_to_back(dut.beat_words, len(x))
    # every beat offered from cycle 0 (a block ROM takes none in the first cycle)
    assert model_stage(dut, [0] * len(x), len(x)) == (run.in_cycles, run.out_cycles)
    assert dut.cycles_per_sample == dut.steps * out_beats


def test_result_beats_must_split_the_outputs_of_one_input_beat():
    w = np.ones((4, 6), dtype=int)
    with pytest.raises(RtlgenError, match="6 outputs in 4 beats from 1 input beats"):
        SerialMatVec(w, FixedType(8, 0), FixedType(20, 0), None, 2, out_beats=4)
    with pytest.raises(RtlgenError, match="6 outputs in 2 beats from 2 input beats"):
        SerialMatVec(w, FixedType(8, 0), FixedType(20, 0), None, 2, beats=2, out_beats=2)


@pytest.mark.parametrize("k,reuse,beats", [(16, 4, 1), (40, 4, 1), (70, 70, 1), (15, 2, 3)])
def test_without_early_start_every_beat_starts_a_cycle_later(k, reuse, beats):
    """`early_start=False` (a convolution's windows): bit-exact under backpressure, each
    beat's first step the cycle after its handshake, `latency` one more, as
    `rtlgen.timing` predicts."""
    from rtlgen.timing import model_stage

    in_type = FixedType(6, 0, True)
    rng = np.random.default_rng(k)
    w = rng.integers(-40, 41, size=(k, 3))
    b = rng.integers(-200, 201, size=3)
    acc = accumulator_type(w, b, in_type, 0)
    dut = SerialMatVec(w, in_type, acc, b, reuse, beats=beats, levels_per_stage=2,
                       early_start=False)
    x = vectors(in_type, k, 4, k)
    run = simulate_stream(dut, as_beats(x, beats), len(x))
    np.testing.assert_array_equal(np.array(run.outputs), x @ w + b)
    assert dut.latency == dut.steps + dut.depth + 2
    assert run.out_cycles[0] - run.in_cycles[beats - 1] == dut.latency
    assert np.diff(run.in_cycles).tolist() == [dut.steps] * (len(x) * beats - 1)
    assert model_stage(dut, [0] * (len(x) * beats), len(x)) == (run.in_cycles, run.out_cycles)
    out = simulate_stream(
        dut, as_beats(x, beats), len(x), seed=k, valid_prob=0.6, ready_prob=0.5
    ).outputs
    np.testing.assert_array_equal(np.array(out), x @ w + b)


@pytest.mark.slow
def test_result_beat_rom_stays_shallow_after_synthesis(tmp_path):
    """SVHN dense_1's shape (42 -> 64, 5-bit weights half pruned, 4 result beats of 3
    steps: a 12-word, 1,120-bit ROM) alone under Yosys: 4 LUT levels with the one-hot ROM;
    the binary address measured 5 with these weights, 6 with the benchmark's (8 in the
    whole design), its deepest path the ROM's decoding (~2 min)."""
    from amaranth.back import verilog

    from rtlgen.synth import synthesize

    rng = np.random.default_rng(7)
    w = rng.integers(-15, 16, size=(42, 64)) * (rng.random((42, 64)) >= 0.5)
    b = rng.integers(-500, 500, 64)
    in_type = FixedType(6, 0, signed=False)
    dut = SerialMatVec(
        w, in_type, accumulator_type(w, b, in_type, 0), b, 3, levels_per_stage=2, out_beats=4
    )
    assert dut.words == 12 <= ONE_HOT_ROM_WORDS
    path = tmp_path / "mac.v"
    path.write_text(verilog.convert(dut, name="mac"))
    result = synthesize(path, "mac")
    assert result.lut_levels <= 4, result.as_dict()


@pytest.mark.parametrize("value", range(-200, 201))
def test_booth_digits_sum_to_the_value_with_the_fewest_digits(value):
    """Digits in [-2, 2] weighing 4**i, no more of them than the fewest that reach the value
    (n digits reach +-2 * (4**n - 1) / 3: +-2, +-10, +-42, +-170)."""
    digits = booth_digits(value)
    assert sum(d * 4**i for i, d in enumerate(digits)) == value
    assert all(-2 <= d <= 2 for d in digits)
    fewest = next(n for n in range(8) if abs(value) <= 2 * (4**n - 1) // 3)
    assert len(digits) <= fewest
    assert len(digits) == fewest or not value


def test_digit_codes_are_magnitude_one_hot_and_sign():
    assert [digit_code(d) for d in (-2, -1, 0, 1, 2)] == [0b110, 0b101, 0, 0b001, 0b010]


def decoded_weights(dut) -> np.ndarray:
    """The weights of ``dut``'s LUT ROM read back from its words: (words, group, columns)."""
    out = np.zeros(dut.schedule.shape, dtype=np.int64)
    for s, word in enumerate(dut.rom_words()):
        for d, code in zip(dut.digits, dut.digit_codes(word), strict=True):
            magnitude = (code & 1) + 2 * (code >> 1 & 1)
            out[s, d.row, d.column] += (-magnitude if code & 4 else magnitude) * 4**d.position
    return out


@pytest.mark.parametrize("seed", range(6))
def test_lut_rom_holds_each_multipliers_own_digits(seed):
    """The LUT ROM's digits read back to the schedule's weights; each multiplier has the
    digit positions its own weights use (weights in [-1, 1]: one term; multiples of 4 up to
    8: one term at 4**1; up to 10: two), so no term is zero on every step."""
    rng = np.random.default_rng(seed)
    w = rng.integers(-40, 41, size=(12, 4)) * (rng.random((12, 4)) >= 0.4)
    w[:, 1] = rng.integers(-1, 2, size=12)
    w[:, 2] = 4 * rng.integers(-2, 3, size=12)
    dut = SerialMatVec(w, FixedType(6, 0, True), FixedType(20, 0), None, 4, "lut")
    np.testing.assert_array_equal(decoded_weights(dut), dut.schedule)
    for j in range(dut.group):
        for o in range(dut.columns):
            positions = [d.position for d in dut.digits if (d.row, d.column) == (j, o)]
            k = [dut.digits.index(d) for d in dut.digits if (d.row, d.column) == (j, o)]
            assert all(np.any(dut.digit_values[:, i] != 0) for i in k)
            if o == 1:
                assert positions in ([], [0])
            if o == 2:
                assert set(positions) <= {1}
    # a code bit in the ROM where it varies over the steps, a constant where it does not
    codes = np.array([[digit_code(int(d)) for d in step] for step in dut.digit_values])
    varying = [
        b for k in range(len(dut.digits)) for b in range(DIGIT_BITS)
        if len(set(codes[:, k] >> b & 1)) > 1
    ]  # fmt: skip
    assert dut.rom_width == len(varying) < DIGIT_BITS * len(dut.digits)
    for k in range(len(dut.digits)):  # column 1's digits are never +-2: no `2x` input
        if dut.digits[k].column == 1:
            assert dut.code_bits[k][1] == (None, 0)


def test_lut_start_bias_adds_back_the_inverted_terms_ones():
    """A negative digit's term is the inverted bits of x or 2x: -m - 1 at 4**position; the
    accumulator starts from the bias plus the 4**position of every such digit its column
    sees (per result beat), which is all the correction there is."""
    w = np.array([[-1, 2], [-6, 0], [9, -9]])  # digits -1 | 2 ; -2,-1 | 0 ; 1,2 | -1,-2
    bias = np.array([3, -4])
    dut = SerialMatVec(w, FixedType(4, 0), FixedType(16, 0), bias, 3, "lut")
    assert dut.steps == 3 and dut.group == 1
    # column 0: -1 at 4**0, -2 at 4**0 and -1 at 4**1; column 1: -1 at 4**0, -2 at 4**1
    np.testing.assert_array_equal(dut.start_bias, [[3 + 1 + 1 + 4, -4 + 1 + 4]])
    dsp = SerialMatVec(w, FixedType(4, 0), FixedType(16, 0), bias, 3, "dsp")
    np.testing.assert_array_equal(dsp.start_bias, [bias])


@pytest.mark.parametrize("out_beats", [1, 2])
def test_a_wrong_digit_in_the_rom_is_caught(out_beats, monkeypatch):
    """One code bit of a non-zero digit flipped in the LUT ROM (the start bias left as it
    was): the results differ from numpy's, so the bit-exact tests see a wrong digit."""
    in_type = FixedType(6, 0, True)
    dut, w, b = make_chunked(8, 4, out_beats, 4, 0.0, 3, "lut")
    x = vectors(in_type, 8, 3, 1)
    expected = as_result_beats(x @ w + b, out_beats)
    good = simulate_stream(dut, x.tolist(), len(x) * out_beats).outputs
    np.testing.assert_array_equal(np.array(good), expected)
    words = dut.rom_words()
    step, rom = next(
        (s, rom)
        for s in range(dut.words)
        for k in range(len(dut.digits))
        for rom, _ in dut.code_bits[k]
        if dut.digit_values[s, k] and rom is not None
    )
    words[step] ^= 1 << rom  # a code bit of a non-zero digit
    monkeypatch.setattr(dut, "rom_words", lambda: words)
    bad = simulate_stream(dut, x.tolist(), len(x) * out_beats).outputs
    assert not np.array_equal(np.array(bad), expected)
