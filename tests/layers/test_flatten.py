"""Deserialize / Serialize: beats <-> vectors in arrival order; Repeat: a vector as equal
beats."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import wiring
from hypothesis import given, settings
from hypothesis import strategies as st

from rtlgen.layers.flatten import Deserialize, Permutation, Repeat, Serialize
from rtlgen.quant.errors import RtlgenError

from .streams import simulate_stream


@settings(max_examples=25, deadline=None)
@given(
    beats=st.integers(1, 6),
    per_beat=st.integers(1, 4),
    width=st.integers(1, 12),
    seed=st.integers(0, 2**32 - 1),
    valid_prob=st.floats(0.3, 1.0),
    ready_prob=st.floats(0.3, 1.0),
)
def test_deserialize_gathers_beats_row_major(beats, per_beat, width, seed, valid_prob, ready_prob):
    rng = np.random.default_rng(seed)
    vectors = rng.integers(-(1 << (width - 1)), 1 << (width - 1), size=(5, beats, per_beat))
    flat_beats = vectors.reshape(-1, per_beat).tolist()
    run = simulate_stream(
        Deserialize(beats, per_beat, signed(width)), flat_beats, 5, seed, valid_prob, ready_prob
    )
    assert run.outputs == vectors.reshape(5, -1).tolist()


@settings(max_examples=25, deadline=None)
@given(
    beats=st.integers(1, 6),
    per_beat=st.integers(1, 4),
    width=st.integers(1, 12),
    seed=st.integers(0, 2**32 - 1),
    valid_prob=st.floats(0.3, 1.0),
    ready_prob=st.floats(0.3, 1.0),
)
def test_serialize_splits_vectors_in_order(beats, per_beat, width, seed, valid_prob, ready_prob):
    rng = np.random.default_rng(seed)
    vectors = rng.integers(0, 1 << width, size=(5, beats * per_beat))
    run = simulate_stream(
        Serialize(beats, per_beat, unsigned(width)),
        vectors.tolist(),
        5 * beats,
        seed,
        valid_prob,
        ready_prob,
    )
    assert run.outputs == vectors.reshape(-1, per_beat).tolist()


def test_deserialize_takes_one_beat_per_cycle_and_latency_one():
    vectors = np.arange(4 * 3 * 2).reshape(4, 3, 2)
    run = simulate_stream(Deserialize(3, 2, unsigned(6)), vectors.reshape(-1, 2).tolist(), 4)
    assert np.diff(run.in_cycles).tolist() == [1] * 11
    assert run.out_cycles == [c + Deserialize.latency for c in run.in_cycles[2::3]]


def test_serialize_streams_back_to_back_vectors_without_gaps():
    vectors = np.arange(4 * 6).reshape(4, 6)
    dut = Serialize(3, 2, unsigned(6))
    run = simulate_stream(dut, vectors.tolist(), 12)
    assert run.out_cycles[0] - run.in_cycles[0] == Serialize.latency
    assert np.diff(run.out_cycles).tolist() == [1] * 11


@settings(max_examples=25, deadline=None)
@given(
    times=st.integers(1, 5),
    n=st.integers(1, 4),
    width=st.integers(1, 12),
    seed=st.integers(0, 2**32 - 1),
    valid_prob=st.floats(0.3, 1.0),
    ready_prob=st.floats(0.3, 1.0),
)
def test_repeat_sends_each_vector_times_beats(times, n, width, seed, valid_prob, ready_prob):
    rng = np.random.default_rng(seed)
    vectors = rng.integers(-(1 << (width - 1)), 1 << (width - 1), size=(5, n))
    run = simulate_stream(
        Repeat(times, n, signed(width)), vectors.tolist(), 5 * times, seed, valid_prob, ready_prob
    )
    assert run.outputs == np.repeat(vectors, times, axis=0).tolist()


def test_repeat_streams_back_to_back_vectors_as_its_timing_model_says():
    """Full rate: the first beat 1 cycle after the vector, then one beat per cycle, and the
    next vector taken with the last beat: no gap; `model_timing` predicts every cycle."""
    dut = Repeat(3, 2, unsigned(6))
    run = simulate_stream(dut, np.arange(4 * 2).reshape(4, 2).tolist(), 12)
    assert run.out_cycles[0] - run.in_cycles[0] == Repeat.latency
    assert np.diff(run.out_cycles).tolist() == [1] * 11
    accepted, valid = dut.model_timing([run.in_cycles[0]] * 4, 4)
    assert accepted == run.in_cycles and valid == run.out_cycles


def test_repeat_refuses_zero_times():
    with pytest.raises(RtlgenError, match="Repeat"):
        Repeat(0, 2, unsigned(4))


class Clocked(wiring.Component):
    """A combinational component with a clock domain of its own for the simulator."""

    def __init__(self, inner: wiring.Component):
        self.inner = inner
        super().__init__(inner.signature)

    def elaborate(self, platform):
        m = Module()
        m.submodules.inner = self.inner
        wiring.connect(m, wiring.flipped(self.i), self.inner.i)
        wiring.connect(m, self.inner.o, wiring.flipped(self.o))
        tick = Signal()
        m.d.sync += tick.eq(~tick)
        return m


@settings(max_examples=15, deadline=None)
@given(
    n=st.integers(1, 12),
    seed=st.integers(0, 2**32 - 1),
    valid_prob=st.floats(0.3, 1.0),
    ready_prob=st.floats(0.3, 1.0),
)
def test_permutation_reorders_elements_by_wiring(n, seed, valid_prob, ready_prob):
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    vectors = rng.integers(-8, 8, size=(6, n))
    permutation = Permutation(order, signed(4))
    run = simulate_stream(Clocked(permutation), vectors.tolist(), 6, seed, valid_prob, ready_prob)
    assert run.outputs == vectors[:, order].tolist()
    assert permutation.latency == 0 and run.in_cycles == run.out_cycles  # wires only


def test_permutation_refuses_a_non_permutation():
    with pytest.raises(RtlgenError, match="not a permutation"):
        Permutation([0, 0, 1], unsigned(3))
