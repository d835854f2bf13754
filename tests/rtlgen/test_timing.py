"""rtlgen/timing.py: the handshake model predicts the cycles of every sample exactly, also
where a stage is slower than the one before it and stalls it (backpressure inside the
network), against Amaranth's simulator of the whole `NetworkTop`."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtlgen.hardware import NetworkTop
from rtlgen.quant.spatial import cropped_shape, padded_shape, upsampled_shape
from rtlgen.timing import _blocks, model_graph, model_top

from .nets import random_inputs, run_top
from .ops.network_checks import bit_exact_in_verilator
from .ops.spatial_nets import Step, chain

#: stages that emit more beats than they take (upsampling, padding, 'same' windows walking
#: padding), fewer (cropping, valid windows, pooling) or as many (1x1 conv)
KINDS = ("pad", "crop", "up", "conv_same", "conv_valid", "pool", "pointwise")


@st.composite
def rate_chains(draw) -> tuple[tuple[int, ...], list[Step]]:
    """A small image (or 1D signal) and 1-3 stages of different rates that fit it."""
    one_d = draw(st.booleans())
    height = 1 if one_d else draw(st.integers(2, 4))
    width = draw(st.integers(2, 5))
    channels = draw(st.integers(1, 2))
    in_shape = (width, channels) if one_d else (height, width, channels)
    shape, steps = in_shape, []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(KINDS))
        rows = 1 if one_d else shape[0]
        cols = shape[-2]
        if kind == "pad":
            vertical = (0, 0) if one_d else tuple(draw(st.integers(0, 1)) for _ in range(2))
            arg = (*vertical, draw(st.integers(0, 2)), draw(st.integers(0, 2)))
            shape, step = padded_shape(shape, arg), ("pad", arg)
        elif kind == "crop":
            top = 0 if one_d else draw(st.integers(0, rows - 1))
            bottom = 0 if one_d else draw(st.integers(0, rows - 1 - top))
            left = draw(st.integers(0, cols - 1))
            arg = (top, bottom, left, draw(st.integers(0, cols - 1 - left)))
            shape, step = cropped_shape(shape, arg), ("crop", arg)
        elif kind == "up":
            arg = (1 if one_d else draw(st.integers(1, 2)), draw(st.integers(1, 2)))
            shape, step = upsampled_shape(shape, arg), ("up", arg)
        elif kind in ("conv_same", "conv_valid", "pointwise"):
            kernel = 1 if kind == "pointwise" else draw(st.integers(2, 3))
            if kind == "conv_valid" and kernel > min(rows if not one_d else cols, cols):
                continue
            filters = draw(st.integers(1, 2))
            same = kind == "conv_same"
            out_rows = rows if same or one_d else rows - kernel + 1
            out_cols = cols if same else cols - kernel + 1
            shape = (out_cols, filters) if one_d else (out_rows, out_cols, filters)
            step = ("conv", (filters, kernel, same))
        else:
            if cols < 2 or (not one_d and rows < 2):
                continue
            shape = (cols // 2, shape[-1]) if one_d else (rows // 2, cols // 2, shape[-1])
            step = ("pool", 2)
        if (1 if one_d else shape[0]) * shape[-2] > 48:
            break  # keeps the simulation short
        steps.append(step)
    if not steps:
        steps.append(("conv", (1, 1, False)))
    return in_shape, steps


def measured_cycles(graph) -> tuple[list[int], list[int]]:
    """(first input beat, last output beat) of 3 samples at full rate in Amaranth's simulator,
    relative to the first sample's first input beat."""
    run = run_top(graph, random_inputs(graph, 3, seed=1))
    start = run.first_in[0]
    return [t - start for t in run.first_in], [t - start for t in run.last_out]


def predicted_cycles(graph) -> tuple[list[int], list[int]]:
    timing = model_top(NetworkTop(graph), samples=3)
    start = timing.first_in[0]
    return [t - start for t in timing.first_in], [t - start for t in timing.last_out]


@settings(
    max_examples=14,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(rate_chains())
def test_random_chains_of_different_rates_are_predicted_cycle_exactly(case):
    """Every sample's first input and last output beat, to the cycle: stalls of a faster
    stage by a slower one after it (and of the input by both) included."""
    in_shape, steps = case
    graph = chain(in_shape, steps, seed=len(steps))
    assert predicted_cycles(graph) == measured_cycles(graph)


@pytest.mark.parametrize(
    "steps",
    [
        [("up", (2, 2)), ("pad", (1, 2, 0, 1))],  # upsampling then a slower padding
        [("conv", (2, 1, False)), ("conv", (1, 3, True))],  # a same conv not first
        [("crop", (1, 0, 1, 1)), ("up", (2, 2)), ("up", (1, 2))],  # crop, two upsamplings
    ],
)
def test_a_stage_slower_than_its_upstream_stalls_the_input_as_predicted(steps):
    graph = chain((4, 5, 1), steps)
    first_in, last_out = predicted_cycles(graph)
    # the input is held: samples come further apart than their input beats
    assert first_in[1] > 4 * 5
    assert (first_in, last_out) == measured_cycles(graph)


def test_a_join_fifo_one_beat_short_slows_the_model_as_it_slows_the_hardware():
    """The model runs the planned FIFO depths: a FIFO made too small stalls its fork in the
    model exactly as in the simulator (the sizes themselves come from unbounded FIFOs)."""
    from .test_graphs import residual_cnn

    graph = residual_cnn()
    top = NetworkTop(graph)
    full = model_top(top)
    fifo = top.plan.fifos[0]
    small = dataclasses.replace(fifo, depth=fifo.depth - 1)
    top.plan = dataclasses.replace(top.plan, fifos=(small, *top.plan.fifos[1:]))
    assert model_top(top) != full


def test_fifo_depths_are_the_least_that_keep_the_timing_no_waiting_fifo_has():
    """The plan starts from the depths at which no write ever waits (`model_graph`) and
    shrinks each while the full-rate timing stays: never deeper, and the same timing."""
    from rtlgen.timing import beat_times

    from .test_graphs import inception_cnn

    top = NetworkTop(inception_cnn())
    skid = {p.node.name: top.has_skid_buffer(p) for p in top.plans}
    edges = {(f.consumer, f.input_index) for f in top.plan.fifos}
    unwaiting = model_graph(top.plan, skid, edges).fifo_depths
    planned = {(f.consumer, f.input_index): f.depth for f in top.plan.fifos}
    assert all(planned[e] <= unwaiting[e] for e in edges)
    assert any(planned[e] < unwaiting[e] for e in edges)  # inception's branches hold beats
    assert beat_times(top.plan, skid, planned) == beat_times(top.plan, skid, unwaiting)
    for edge in edges:  # and each is the least: one beat less changes the timing
        assert beat_times(top.plan, skid, {**planned, edge: planned[edge] - 1}) != beat_times(
            top.plan, skid, planned
        )


def test_a_component_with_only_a_forward_contract_is_followed_forward():
    class Forward:
        def model_timing(self, times, samples):
            return times, [t + 1 for t in times]

    assert _blocks(Forward()) is None


@pytest.mark.slow
def test_stalls_inside_the_network_are_predicted_in_verilator(tmp_path, tmp_path_factory):
    graph = chain((4, 4, 2), [("up", (2, 2)), ("pad", (1, 2, 0, 1)), ("conv", (2, 3, False))])
    bit_exact_in_verilator(graph, tmp_path, tmp_path_factory.mktemp("verilator_cache"))


def test_a_network_run_again_ends_as_its_own_run(monkeypatch):
    """A handshake network run before (another `NetworkTop` of the same plan: the planner's
    and the manifest's) takes that run's end state: the same timing, FIFO depths and beat
    cycles as running it; a block the model cannot compare (a closure) is always run."""
    import rtlgen.timing as timing
    from rtlgen.timing import beat_times, model_outputs

    from .nets import conv_net, mlp

    ran = []
    run = timing._Network._run
    monkeypatch.setattr(timing._Network, "_run", lambda net, patience: ran.append(1) or run(net, patience))
    for graph in (conv_net(h=7, w=6, seed=1), mlp(seed=4)):
        timing._RUNS.clear()
        first, runs = NetworkTop(graph), len(ran)
        expected = model_outputs(first), model_graph(first.plan, {}, set(), 4)
        second = NetworkTop(graph)
        before = len(ran)
        assert (model_outputs(second), model_graph(second.plan, {}, set(), 4)) == expected
        assert len(ran) == before > runs  # taken from the first runs, none run again
        depths = {(f.consumer, f.input_index): f.depth for f in second.plan.fifos}
        assert beat_times(second.plan, {}, depths) == beat_times(first.plan, {}, depths)
    timing._RUNS.clear()
    net = timing._Network()
    source, sink = net.wire(), net.wire()
    net.blocks.append(timing._Source(source, 3))

    class Closure(timing._Pipeline):  # not a known block: never taken from a memo
        pass

    net.blocks.append(Closure([source], sink, 1))
    net.blocks.append(timing._Sink(sink))
    net.sinks.append((sink, 3))
    assert timing._signature(net, 10) is None
