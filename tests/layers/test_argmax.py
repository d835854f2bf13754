"""ArgMax: index of the first maximum, the vector passed through, pipelined."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import signed, unsigned
from hypothesis import given, settings
from hypothesis import strategies as st

from rtlgen.layers.argmax import FINAL_GROUP, GROUP, PAIRWISE, ArgMax, group_for, level_sizes
from rtlgen.quant.errors import RtlgenError

from .streams import simulate_stream


@settings(max_examples=15, deadline=None)
@given(
    n=st.integers(1, 40),
    width=st.integers(1, 16),
    is_signed=st.booleans(),
    narrow=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
    valid_prob=st.floats(0.3, 1.0),
    ready_prob=st.floats(0.3, 1.0),
)
def test_matches_numpy_argmax(n, width, is_signed, narrow, seed, valid_prob, ready_prob):
    shape = signed(width) if is_signed else unsigned(width)
    lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if is_signed else (0, (1 << width) - 1)
    rng = np.random.default_rng(seed)
    if narrow:  # few distinct values: many ties
        hi = min(hi, lo + 2)
    x = rng.integers(lo, hi + 1, size=(20, n))
    run = simulate_stream(ArgMax(n, shape), x.tolist(), len(x), seed, valid_prob, ready_prob)
    assert [o["index"] for o in run.outputs] == np.argmax(x, axis=1).tolist()
    assert [o["vector"] for o in run.outputs] == x.tolist()


def test_ties_pick_the_first_maximum():
    x = [[3, 7, 7, 1, 7], [0, 0, 0, 0, 0], [-1, -1, 5, 5, 4]]
    run = simulate_stream(ArgMax(5, signed(4)), x, len(x))
    assert [o["index"] for o in run.outputs] == [1, 0, 2]


@pytest.mark.parametrize(
    "n,registered,latency",
    [
        # by default registered compares only where they cost no cycle: 7-10 candidates
        (1, None, 1),
        (2, None, 1),
        (6, None, 1),
        (7, None, 2),
        (10, None, 2),
        (11, None, 2),
        (36, None, 2),
        (37, None, 3),
        # registered: two cycles per level, up to 10 candidates in the last, 6 per group before
        (1, True, 2),
        (6, True, 2),
        (10, True, 2),
        (11, True, 4),
        (60, True, 4),
        (61, True, 6),
        (10, False, 2),
        (7, False, 2),
    ],
)
def test_latency_per_level_at_full_rate(n, registered, latency):
    """Group 6: one-cycle levels of up to 6 candidates, or (registered compares) a level
    compares into registers, then selects."""
    dut = ArgMax(n, signed(6), registered=registered)
    assert dut.registered_compares == (registered or (registered is None and 7 <= n <= 10))
    assert dut.latency == latency
    x = np.random.default_rng(n).integers(-32, 32, size=(10, n))
    run = simulate_stream(dut, x.tolist(), len(x))
    assert run.out_cycles[0] - run.in_cycles[0] == latency
    assert np.diff(run.out_cycles).tolist() == [1] * 9
    assert [o["index"] for o in run.outputs] == np.argmax(x, axis=1).tolist()


def test_level_sizes():
    assert level_sizes(10) == [10] and level_sizes(11) == [6, 2] and level_sizes(60) == [6, 10]
    assert level_sizes(10, PAIRWISE) == [2, 2, 2, 2] and level_sizes(1, PAIRWISE) == [1]
    assert level_sizes(FINAL_GROUP + 1) == [GROUP, 2]
    assert level_sizes(10, GROUP, registered=False) == [6, 2]
    assert level_sizes(6, GROUP, registered=False) == [6]
    with pytest.raises(RtlgenError, match="pairwise levels have no registered compares"):
        ArgMax(4, signed(4), PAIRWISE, registered=True)


@settings(max_examples=8, deadline=None)
@given(
    n=st.integers(1, 20),
    seed=st.integers(0, 2**32 - 1),
    valid_prob=st.floats(0.3, 1.0),
    ready_prob=st.floats(0.3, 1.0),
)
def test_pairwise_stages_match_numpy_argmax(n, seed, valid_prob, ready_prob):
    """group 2 (`group_for(1)`: one adder per pipeline stage): a compare per stage."""
    x = np.random.default_rng(seed).integers(-4, 4, size=(16, n))  # many ties
    dut = ArgMax(n, signed(5), group_for(1))
    assert dut.latency == max(1, int(np.ceil(np.log2(n))))
    run = simulate_stream(dut, x.tolist(), len(x), seed, valid_prob, ready_prob)
    assert [o["index"] for o in run.outputs] == np.argmax(x, axis=1).tolist()
    assert [o["vector"] for o in run.outputs] == x.tolist()


def test_group_follows_the_adders_per_stage():
    assert [group_for(a) for a in (1, 2, 3, 6)] == [2, 6, 6, 6]
    with pytest.raises(RtlgenError, match="group 7 is not supported"):
        ArgMax(10, signed(4), 7)
