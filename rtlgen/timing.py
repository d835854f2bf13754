"""Event-time model of the dataflow top: the cycle of every beat through every stage.

A sum of stage latencies is not the network's latency: a pooling window can complete before
the last (unused) pixels of its input arrive, and a time-multiplexed layer accepts a vector
only every ``steps`` cycles. This model follows each beat of a few samples through each
component's timing contract (its docstring), with the input offered on every cycle and no
output backpressure, and reads off the latency and the initiation interval.
"""

from __future__ import annotations

from dataclasses import dataclass

from rtlgen.layers.flatten import Deserialize
from rtlgen.layers.pool import _Pool
from rtlgen.layers.serial_mac import SerialMatVec
from rtlgen.layers.window import WindowGenerator, WindowGeometry


@dataclass(frozen=True)
class Timing:
    latency: int  # first input beat's handshake -> last output beat's handshake (sample 0)
    ii: int  # cycles between first input beats of consecutive samples (steady state)
    first_in: tuple[int, ...]  # handshake cycle of each sample's first input beat
    last_out: tuple[int, ...]  # cycle of each sample's last output beat


def _pipeline(times: list[int], latency: int) -> list[int]:
    out, prev = [], None
    for t in times:
        t = t if prev is None else max(t, prev + 1)
        out.append(t + latency)
        prev = t
    return out


def _window(times: list[int], g: WindowGeometry, samples: int) -> tuple[list[int], list[int]]:
    """(input handshake cycles, window valid cycles) of a WindowGenerator walk."""
    top, _, left, _ = g.padding
    beats = g.height * g.width
    accepted, windows = [], []
    clock = -1
    for s in range(samples):
        ends = {}
        for oy in range(g.out_height):
            for ox in range(g.out_width):
                ends.setdefault(
                    (oy * g.stride[0] + g.kernel[0] - 1, ox * g.stride[1] + g.kernel[1] - 1), []
                ).append((oy, ox))
        for row in range(g.first_row, g.last_row + 1):
            for col in range(g.first_col, g.last_col + 1):
                real = top <= row < top + g.height and left <= col < left + g.width
                clock += 1
                if real:
                    index = s * beats + (row - top) * g.width + (col - left)
                    clock = max(clock, times[index])
                    accepted.append(clock)
                if (row, col) in ends:
                    windows.append(clock + 1)
        # windows come out in row-major order of (oy, ox), which is the walk order
    return accepted, windows


def model_stage(stage, times: list[int], samples: int) -> tuple[list[int], list[int]]:
    """(input handshake cycles, output valid cycles) of one component.

    A component that is not a plain pipeline may state its own contract as a method
    ``model_timing(times, samples) -> (accepted, out)``, which wins."""
    if hasattr(stage, "model_timing"):
        return stage.model_timing(times, samples)
    if isinstance(stage, WindowGenerator):
        return _window(times, stage.geometry, samples)
    if isinstance(stage, _Pool):
        accepted, windows = _window(times, stage.window.geometry, samples)
        return accepted, _pipeline(windows, stage.reduce.latency)
    if isinstance(stage, Deserialize):
        out = [times[k] + stage.latency for k in range(stage.beats - 1, len(times), stage.beats)]
        return times, out
    if isinstance(stage, SerialMatVec):
        accepted, out, prev = [], [], None
        for t in times:
            t = t if prev is None else max(t, prev + stage.steps)
            accepted.append(t)
            out.append(t + stage.latency)
            prev = t
        return accepted, out
    latency = getattr(stage, "latency", 0)
    return times, _pipeline(times, latency)


def follow(stages: list, times: list[int], samples: int) -> tuple[list[int], list[int]]:
    """(cycles the first stage accepts each beat, cycles each output beat is valid) of a
    chain of stages (``None``: a skid buffer, latency 1)."""
    first_accepted: list[int] | None = None
    for stage in stages:
        if stage is None:
            accepted, times = times, _pipeline(times, 1)
        else:
            accepted, times = model_stage(stage, times, samples)
        if first_accepted is None:
            first_accepted = accepted
    return (times if first_accepted is None else first_accepted), times


#: cycles from a beat's handshake into a `StreamFifo` to its valid at the FIFO's output
FIFO_LATENCY = 2


@dataclass(frozen=True)
class GraphTiming:
    """Beat times of every node of a planned graph (no output backpressure).

    ``out[name]``: the cycle each output beat of the node is valid; ``input_accepted``: the
    cycle each input beat is taken; ``fifo_depths[(consumer, k)]``: the beats that FIFO on
    input ``k`` of ``consumer`` must hold so that no fork feeding it ever waits for it.
    """

    out: dict[str, list[int]]
    input_accepted: list[int]
    fifo_depths: dict[tuple[str, int], int]
    edge_arrivals: dict[tuple[str, int], list[int]]


def _occupancy(enqueued: list[int], dequeued: list[int]) -> int:
    """Beats a FIFO must hold: a beat written at cycle ``enqueued[b]`` needs a free slot
    while every earlier beat not yet read (read at ``dequeued``) is still inside."""
    need = 0
    for b, t in enumerate(enqueued):
        inside = sum(1 for e, d in zip(enqueued[:b], dequeued[:b], strict=True) if e < t <= d)
        need = max(need, inside + 1)
    return need


def model_graph(
    plan, skid: dict[str, bool], fifos: set[tuple[str, int]], samples: int = 3
) -> GraphTiming:
    """Follow every beat of ``samples`` samples through a planned DAG.

    ``plan``: a `rtlgen.plan.NetworkPlan` (or anything with ``graph``, ``input_format``,
    ``layers``); ``skid``: node name -> a skid buffer follows its stages; ``fifos``: the
    (consumer, input index) edges with a `StreamFifo`. A producer feeding several consumers
    is a fork: it offers beat b+1 only after every consumer took beat b, so the model
    iterates the offers to a fixed point. A FIFO takes every beat when offered (its depth
    comes from this model: `fifo_depths`); a join (a merge) takes beat b from all its inputs
    in the cycle its first stage accepts it.
    """
    graph = plan.graph
    beats = plan.input_format.beats
    plans = {p.node.name: p for p in plan.layers}
    offered_input = list(range(beats * samples))
    # offers[p]: the cycle producer p presents each beat to its consumers (after its fork)
    offers: dict[str, list[int]] = {}
    for _ in range(64):
        out: dict[str, list[int]] = {graph.input.name: offered_input}
        taken: dict[str, list[list[int]]] = {}  # producer -> acceptance times per consumer edge
        arrivals: dict[tuple[str, int], list[int]] = {}
        depths: dict[tuple[str, int], int] = {}
        input_accepted = offered_input
        for node in graph.nodes[1:]:
            layer = plans[node.name]
            stages = [*layer.stages, *([None] if skid.get(node.name) else [])]
            edges = []
            for k, producer in enumerate(node.inputs):
                presented = offers.get(producer, out[producer])
                arrivals[(node.name, k)] = presented
                edges.append((k, producer, presented))
            if len(edges) == 1:
                k, producer, presented = edges[0]
                if (node.name, k) in fifos:
                    ready = _pipeline(presented, FIFO_LATENCY)
                    accepted, out[node.name] = follow(stages, ready, samples)
                    depths[(node.name, k)] = _occupancy(presented, accepted)
                    taken.setdefault(producer, []).append(presented)
                else:
                    accepted, out[node.name] = follow(stages, presented, samples)
                    taken.setdefault(producer, []).append(accepted)
            else:
                ready_k = [
                    _pipeline(t, FIFO_LATENCY) if (node.name, k) in fifos else t
                    for k, _, t in edges
                ]
                joined = [max(ts) for ts in zip(*ready_k, strict=True)]
                accepted, out[node.name] = follow(stages, joined, samples)
                for k, producer, presented in edges:
                    if (node.name, k) in fifos:
                        depths[(node.name, k)] = _occupancy(presented, accepted)
                        taken.setdefault(producer, []).append(presented)
                    else:
                        taken.setdefault(producer, []).append(accepted)
            if node.inputs == (graph.input.name,) and len(graph.consumers(graph.input.name)) == 1:
                input_accepted = taken[graph.input.name][0]
        new_offers: dict[str, list[int]] = {}
        for producer, per_edge in taken.items():
            if len(per_edge) < 2:
                continue
            produced = out[producer]
            done = [max(ts) for ts in zip(*per_edge, strict=True)]
            offer = []
            for b, t in enumerate(produced):
                offer.append(t if b == 0 else max(t, done[b - 1] + 1))
            new_offers[producer] = offer
        if graph.input.name in new_offers or graph.input.name in taken:
            per_edge = taken.get(graph.input.name, [])
            if len(per_edge) > 1:
                input_accepted = [max(ts) for ts in zip(*per_edge, strict=True)]
        if new_offers == offers:
            return GraphTiming(out, input_accepted, depths, arrivals)
        offers = new_offers
    raise RuntimeError("the fork timing did not settle")


def model_top(top, samples: int = 3) -> Timing:
    """Timing of `NetworkTop` ``top`` for ``samples`` samples offered at full rate."""
    if not top.graph.is_chain:
        return _model_dag_top(top, samples)
    return _model_chain_top(top, samples)


def _model_dag_top(top, samples: int) -> Timing:
    skid = {p.node.name: top.has_skid_buffer(p) for p in top.plans}
    fifos = {(f.consumer, f.input_index) for f in top.plan.fifos}
    timing = model_graph(top.plan, skid, fifos, samples)
    times = timing.out[top.graph.outputs[0]]
    if top.argmax is not None:
        _, times = model_stage(top.argmax, times, samples)
    beats = top.input_format.beats
    first_in = tuple(timing.input_accepted[s * beats] for s in range(samples))
    out_beats = top.output_format.beats
    last_out = tuple(times[(s + 1) * out_beats - 1] for s in range(samples))
    ii = max((b - a for a, b in zip(first_in, first_in[1:], strict=False)), default=beats)
    return Timing(last_out[0] - first_in[0], ii, first_in, last_out)


def _model_chain_top(top, samples: int) -> Timing:
    beats = top.input_format.beats
    offered = list(range(beats * samples))
    times = offered
    first_accepted: list[int] | None = None
    stages = []
    for plan in top.plans:
        stages.extend(plan.stages)
        if top.has_skid_buffer(plan):
            stages.append(None)  # skid buffer: latency 1
    if top.argmax is not None:
        stages.append(top.argmax)
    for stage in stages:
        if stage is None:
            accepted, times = times, _pipeline(times, 1)
        else:
            accepted, times = model_stage(stage, times, samples)
        if first_accepted is None:
            first_accepted = accepted
    if first_accepted is None:
        first_accepted = offered
    first_in = tuple(first_accepted[s * beats] for s in range(samples))
    out_beats = top.output_format.beats
    last_out = tuple(times[(s + 1) * out_beats - 1] for s in range(samples))
    ii = max((b - a for a, b in zip(first_in, first_in[1:], strict=False)), default=beats)
    return Timing(last_out[0] - first_in[0], ii, first_in, last_out)
