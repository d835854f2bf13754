"""Merge kernels (`rtlgen.quant.merge`) against Keras merge layers on the same fixed-point
inputs, against an independent numpy float computation for rounding/saturation, and the
accumulator type against exhaustive extreme values."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtlgen.quant.errors import RtlgenError
from rtlgen.quant.fixed import FixedType, Overflow, Rounding
from rtlgen.quant.merge import (
    MergeOp,
    concat_type,
    concatenate,
    merge,
    merge_acc,
    merge_acc_type,
)

KERAS_LAYER = {
    MergeOp.ADD: "Add",
    MergeOp.SUBTRACT: "Subtract",
    MergeOp.MULTIPLY: "Multiply",
    MergeOp.AVERAGE: "Average",
    MergeOp.MAXIMUM: "Maximum",
    MergeOp.MINIMUM: "Minimum",
}

# Different widths, fractions (negative too) and signedness per input.
TYPE_SETS = [
    [FixedType(8, 3), FixedType(6, 1, False)],
    [FixedType(5, -2), FixedType(9, 6), FixedType(4, 0, False)],
    [FixedType(1, 0), FixedType(7, 7), FixedType(3, 2, False), FixedType(10, 4)],
]
SHAPES = [(2, 3, 5, 3), (3, 7, 5), (4, 11)]  # images (N,H,W,C), sequences (N,L,C), flat (N,K)


def cases(type_sets=TYPE_SETS):
    """(op, input types) for every op and type set it takes (Subtract: two inputs only)."""
    for op in MergeOp:
        for types in type_sets:
            if op is MergeOp.SUBTRACT and len(types) != 2:
                continue
            yield op, types


def random_inputs(types, shape, rng):
    """Mantissas with the extremes of each type planted among uniform random values."""
    xs = []
    for t in types:
        x = rng.integers(t.min_int, t.max_int + 1, size=shape)
        flat = x.reshape(-1)
        flat[: min(3, flat.size)] = [t.min_int, t.max_int, 0][: min(3, flat.size)]
        rng.shuffle(flat)
        xs.append(flat.reshape(shape))
    return xs


def keras_merge(op: MergeOp, floats: list[np.ndarray]) -> np.ndarray:
    """Keras' float64 result of the merge layer on the given values."""
    tf = pytest.importorskip("tensorflow")
    layer = getattr(tf.keras.layers, KERAS_LAYER[op])(dtype="float64")
    return layer([tf.constant(x, dtype=tf.float64) for x in floats]).numpy()


def numpy_merge(op: MergeOp, floats: list[np.ndarray]) -> np.ndarray:
    if op is MergeOp.ADD:
        return np.sum(floats, axis=0)
    if op is MergeOp.SUBTRACT:
        return floats[0] - floats[1]
    if op is MergeOp.MULTIPLY:
        return np.prod(floats, axis=0)
    if op is MergeOp.AVERAGE:
        return np.sum(floats, axis=0) / len(floats)
    if op is MergeOp.MAXIMUM:
        return np.max(floats, axis=0)
    return np.min(floats, axis=0)


def float_round(scaled: np.ndarray, rounding: Rounding) -> np.ndarray:
    if rounding is Rounding.CONVERGENT:
        return np.round(scaled)  # half to even
    if rounding is Rounding.HALF_UP:
        return np.floor(scaled + 0.5)
    return np.floor(scaled)


def float_overflow(q: np.ndarray, t: FixedType, overflow: Overflow) -> np.ndarray:
    if overflow is Overflow.SATURATE:
        return np.clip(q, t.min_int, t.max_int)
    return np.mod(q - t.min_int, 2.0**t.width) + t.min_int


def float_requantize(op, floats, out_type, rounding, overflow) -> np.ndarray:
    """The output mantissas computed in float64 (exact here: few bits, power-of-two scale).

    For an average the scaling comes before the one division by n, so a value exactly half
    way between two steps is computed exactly and the tie rule is what decides.
    """
    scale = 2.0**out_type.frac
    if op is MergeOp.AVERAGE:
        scaled = np.sum(floats, axis=0) * scale / len(floats)
    else:
        scaled = numpy_merge(op, floats) * scale
    return float_overflow(float_round(scaled, rounding), out_type, overflow)


@pytest.mark.parametrize("shape", SHAPES, ids=["image", "sequence", "flat"])
@pytest.mark.parametrize("op,types", list(cases()))
def test_merge_equals_keras_when_out_type_holds_the_result(op, types, shape):
    rng = np.random.default_rng(len(types) * 100 + len(shape))
    xs = random_inputs(types, shape, rng)
    floats = [t.to_float(x) for x, t in zip(xs, types, strict=True)]
    expected = keras_merge(op, floats)
    acc_type = merge_acc_type(op, types)
    if op is MergeOp.AVERAGE and len(types) & (len(types) - 1):
        # sum / 3 has no finite binary expansion: compare in an output type 6 bits finer
        # than the sum, rounded (the float division is off by far less than half a step).
        out_type = FixedType(acc_type.width + 6, acc_type.frac + 6, acc_type.signed)
        got = merge(op, xs, types, out_type)
        np.testing.assert_array_equal(got, out_type.quantize(expected))
        assert np.abs(out_type.to_float(got) - expected).max() <= out_type.step / 2
    else:
        out_type = acc_type
        got = merge(op, xs, types, out_type)
        np.testing.assert_array_equal(out_type.to_float(got), expected)
        np.testing.assert_array_equal(merge_acc(op, xs, types), got)


@pytest.mark.parametrize("overflow", list(Overflow))
@pytest.mark.parametrize("rounding", list(Rounding))
@pytest.mark.parametrize("op,types", list(cases()))
def test_merge_rounds_and_saturates_like_float_arithmetic(op, types, rounding, overflow):
    rng = np.random.default_rng(7)
    xs = random_inputs(types, (3, 5, 7), rng)
    floats = [t.to_float(x) for x, t in zip(xs, types, strict=True)]
    acc_type = merge_acc_type(op, types)
    # Fewer fractional and integer bits than the accumulator: both rounding and overflow act.
    for out_type in (
        FixedType(max(acc_type.width - 4, 1), acc_type.frac - 2, True),
        FixedType(4, acc_type.frac - 1, False),
        FixedType(5, 0, True),
    ):
        got = merge(op, xs, types, out_type, rounding, overflow)
        expected = float_requantize(op, floats, out_type, rounding, overflow)
        np.testing.assert_array_equal(got, expected, err_msg=f"{out_type}")


def test_merge_rounding_cases_are_exercised():
    """The rounding test above sees ties and saturation (it could tell the modes apart)."""
    types = TYPE_SETS[0]
    xs = random_inputs(types, (3, 5, 7), np.random.default_rng(7))
    out_type = FixedType(5, 0, True)
    results = {
        (r, o): merge(MergeOp.ADD, xs, types, out_type, r, o) for r in Rounding for o in Overflow
    }
    assert len({v.tobytes() for v in results.values()}) == len(results)


@pytest.mark.parametrize(
    "shape,axis",
    [((2, 3, 5, 4), -1), ((2, 3, 5, 4), 1), ((3, 7, 2), -1), ((4, 9), -1), ((4, 9), 0)],
)
def test_concatenate_equals_keras(shape, axis):
    tf = pytest.importorskip("tensorflow")
    types = [FixedType(8, 3), FixedType(6, 1, False), FixedType(5, -2), FixedType(9, 6)]
    rng = np.random.default_rng(sum(shape))
    xs = []
    for k, t in enumerate(types):
        part = list(shape)
        part[axis] = k + 1  # different sizes along the axis (odd ones too)
        xs.extend(random_inputs([t], tuple(part), rng))
    floats = [t.to_float(x) for x, t in zip(xs, types, strict=True)]
    layer = tf.keras.layers.Concatenate(axis=axis, dtype="float64")
    expected = layer([tf.constant(x, dtype=tf.float64) for x in floats]).numpy()
    out_type = concat_type(types)
    got = concatenate(xs, types, out_type, axis=axis)
    np.testing.assert_array_equal(out_type.to_float(got), expected)


@pytest.mark.parametrize("overflow", list(Overflow))
@pytest.mark.parametrize("rounding", list(Rounding))
def test_concatenate_into_narrow_type_rounds_each_input(rounding, overflow):
    types = [FixedType(8, 3), FixedType(6, 1, False), FixedType(9, 6)]
    rng = np.random.default_rng(3)
    xs = [random_inputs([t], (2, 5, n), rng)[0] for t, n in zip(types, (3, 1, 2), strict=True)]
    out_type = FixedType(5, 1)
    got = concatenate(xs, types, out_type, rounding=rounding, overflow=overflow)
    expected = np.concatenate(
        [
            float_overflow(
                float_round(t.to_float(x) * 2.0**out_type.frac, rounding), out_type, overflow
            )
            for x, t in zip(xs, types, strict=True)
        ],
        axis=-1,
    )
    np.testing.assert_array_equal(got, expected)


def test_concat_type_holds_every_input_with_max_frac_and_integer_bits():
    assert concat_type([FixedType(8, 3), FixedType(6, 1, False)]) == FixedType(9, 3)
    assert concat_type([FixedType(4, 0, False), FixedType(6, 2, False)]) == FixedType(6, 2, False)
    assert concat_type([FixedType(5, -2), FixedType(3, 2)]) == FixedType(9, 2)


def test_average_of_a_power_of_two_count_is_exact_in_the_accumulator():
    types = [FixedType(6, 2)] * 4
    acc_type = merge_acc_type(MergeOp.AVERAGE, types)
    assert acc_type.frac == 2 + 2
    add_type = merge_acc_type(MergeOp.ADD, types)
    assert acc_type == FixedType(add_type.width, 4, add_type.signed)  # same mantissas
    # Three inputs: the accumulator is the sum; the division is in the output step.
    assert merge_acc_type(MergeOp.AVERAGE, types[:3]) == merge_acc_type(MergeOp.ADD, types[:3])


@pytest.mark.parametrize(
    "op,types,message",
    [
        (MergeOp.SUBTRACT, [FixedType(4, 0)] * 3, "exactly 2 inputs"),
        (MergeOp.ADD, [FixedType(4, 0)], "at least 2 inputs"),
        (MergeOp.MULTIPLY, [FixedType(30, 0)] * 3, "more than 62 bits"),
    ],
)
def test_unsupported_merges_raise_clear_errors(op, types, message):
    with pytest.raises(RtlgenError, match=message):
        merge_acc_type(op, types)


# ---------------------------------------------------------------------------------------
# the accumulator type never overflows (and is the narrowest)
# ---------------------------------------------------------------------------------------
def exact_result(op: MergeOp, values: list[int], types: list[FixedType]) -> tuple[int, int]:
    """(mantissa, frac) of the exact result with Python integers (AVERAGE: the sum)."""
    if op is MergeOp.MULTIPLY:
        return math.prod(values), sum(t.frac for t in types)
    frac = max(t.frac for t in types)
    aligned = [v * 2 ** (frac - t.frac) for v, t in zip(values, types, strict=True)]
    if op is MergeOp.SUBTRACT:
        return aligned[0] - aligned[1], frac
    if op is MergeOp.MAXIMUM:
        return max(aligned), frac
    if op is MergeOp.MINIMUM:
        return min(aligned), frac
    n = len(types)
    if op is MergeOp.AVERAGE and n & (n - 1) == 0:
        return sum(aligned), frac + n.bit_length() - 1
    return sum(aligned), frac


fixed_types = st.builds(FixedType, st.integers(1, 24), st.integers(-8, 16), st.booleans())


@settings(max_examples=200, deadline=None)
@given(op=st.sampled_from(list(MergeOp)), types=st.lists(fixed_types, min_size=2, max_size=4))
def test_acc_type_holds_every_extreme_and_is_the_narrowest(op, types):
    if op is MergeOp.SUBTRACT:
        types = types[:2]
    corners = list(itertools.product(*[(t.min_int, 0, t.max_int) for t in types]))
    results = [exact_result(op, list(c), types) for c in corners]
    frac = results[0][1]
    lo, hi = min(r for r, _ in results), max(r for r, _ in results)
    try:
        narrowest = FixedType.covering(lo, hi, frac)
    except RtlgenError:
        with pytest.raises(RtlgenError, match="more than 62 bits"):
            merge_acc_type(op, types)
        return
    acc_type = merge_acc_type(op, types)
    assert acc_type == narrowest
    xs = [np.array([c[k] for c in corners], dtype=np.int64) for k in range(len(types))]
    acc = merge_acc(op, xs, types)
    assert acc.tolist() == [r for r, _ in results]
    assert acc.min() >= acc_type.min_int and acc.max() <= acc_type.max_int


# Broadcasting (Keras merges of an operand of one position or one channel): per sample
# shapes of each input, the first spanning everything
BROADCASTS = [
    [(5, 3, 4), (1, 1, 4)],  # squeeze-and-excitation: an image and one vector
    [(1, 1, 4), (5, 3, 4), (5, 3, 1)],  # the vector first; one channel over the channels
    [(7, 3), (1, 3)],  # a sequence and one vector
    [(6,), (1,)],  # a vector and one value
]


@pytest.mark.parametrize("shapes", BROADCASTS, ids=["image", "first", "sequence", "flat"])
@pytest.mark.parametrize("op,types", list(cases(TYPE_SETS[:2])))
def test_broadcast_merge_equals_keras(op, types, shapes):
    """Inputs of shapes that broadcast give Keras's result exactly (the accumulator), and
    the same mantissas as the equal-shape merge of the inputs stretched by numpy."""
    shapes = shapes[: len(types)]
    if len(shapes) < len(types):
        shapes = [*shapes, shapes[0]]
    rng = np.random.default_rng(len(types) * 10 + len(shapes[0]))
    xs = [random_inputs([t], (3, *s), rng)[0] for t, s in zip(types, shapes, strict=True)]
    floats = [t.to_float(x) for x, t in zip(xs, types, strict=True)]
    acc_type = merge_acc_type(op, types)
    divisor = 1 if op is not MergeOp.AVERAGE or not len(types) & (len(types) - 1) else 6
    out_type = FixedType(acc_type.width + divisor, acc_type.frac + divisor, acc_type.signed)
    got = merge(op, xs, types, out_type)
    full = np.broadcast_shapes(*(x.shape for x in xs))
    assert got.shape == full
    stretched = [np.broadcast_to(x, full) for x in xs]
    np.testing.assert_array_equal(got, merge(op, stretched, types, out_type))
    expected = keras_merge(op, floats)
    assert expected.shape == full
    if divisor > 1:
        np.testing.assert_array_equal(got, out_type.quantize(expected))
    else:
        np.testing.assert_array_equal(out_type.to_float(got), expected)
