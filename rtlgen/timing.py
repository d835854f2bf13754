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


def model_top(top, samples: int = 3) -> Timing:
    """Timing of `NetworkTop` ``top`` for ``samples`` samples offered at full rate."""
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
