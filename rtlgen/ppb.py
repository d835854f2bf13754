"""Several pixels per beat (``--pixels-per-beat P``): the plans of the layers that take an
image P pixels per beat.

The input stream carries P adjacent pixels of a row per beat (`HardwareOptions.pixels_per_beat`;
P divides the image width), so a sample takes ``H * W / P`` beats (its II) instead of
``H * W``. The layers after it keep P windows per cycle where their rate needs it:

- a convolution without padding: a `MultiWindowGenerator` (P / stride windows per beat) and a
  constant MAC array of P / stride copies of the layer's weights (block diagonal: the copies
  share nothing but the constants; pruned weights build nothing in each);
- a max or average pooling without padding: the same generator with the windows interleaved
  per position, one `WindowMax` / `WindowAverage` over P / stride times the channels: P pixels
  in, P / stride out;
- a threshold (a BN + quantizer): the bank repeated per pixel.

A layer whose output has no more pixels than the network has cycles per sample (after a
pooling, typically) folds back to one pixel per beat: a `StreamFifo` holding one output row of
beats (the pooled rows come in bursts) and a `PixelSerializer`; so does an output, and any
other layer gets its input folded first. Everything after the fold is planned as before
(rate balancing, time multiplexing). Padding ('same') and graphs that branch are refused with
P > 1 for now.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from amaranth.lib import wiring

from rtlgen import ir
from rtlgen.layers.common import shape_of
from rtlgen.layers.multi_pixel import MultiWindowGenerator, PixelRows, PixelSerializer
from rtlgen.plan import (
    LayerPlan,
    Parallelism,
    PlanContext,
    StreamFormat,
    output_is_accumulator,
    requantize_stage,
    weights_matrix,
)
from rtlgen.quant.errors import RtlgenError, UnsupportedError
from rtlgen.quant.fixed import FixedType

#: pixels per beat taken (P); each must divide the image width
PIXELS_PER_BEAT = (1, 2, 4, 8, 16, 32)
#: the widest input beat (as `rtlgen.hardware.check_supported` has it for one pixel)
MAX_BEAT_BITS = 65536


@dataclass(frozen=True)
class PixelFormat(StreamFormat):
    """An image stream of several pixels per beat: `PixelRows` ``rows`` of ``channels``."""

    rows: PixelRows | None = None
    channels: int = 0

    @classmethod
    def make(cls, rows: PixelRows, channels: int, t: FixedType) -> PixelFormat:
        return cls(rows.beats, rows.pixels * channels, t, rows, channels)


def check_pixels_per_beat(pixels: int) -> None:
    if pixels not in PIXELS_PER_BEAT:
        raise RtlgenError(
            f"--pixels-per-beat {pixels} is not supported (use one of "
            f"{', '.join(map(str, PIXELS_PER_BEAT))}, dividing the image width)"
        )


def input_format(graph: ir.ModelGraph, pixels: int) -> PixelFormat | None:
    """The stream of the graph's input at ``pixels`` per beat (None: one pixel per beat)."""
    if pixels == 1:
        return None
    where = f"--pixels-per-beat {pixels}"
    if len(graph.input_nodes) > 1 or not graph.is_chain:
        raise UnsupportedError(
            f"{where}: supported for a chain of layers with one input (model "
            f"'{graph.name}' branches or has several inputs); use --pixels-per-beat 1"
        )
    node = graph.input
    if len(node.out_shape) not in (2, 3):
        raise UnsupportedError(
            f"{where}: input '{node.name}' of shape {node.out_shape} is not an image (H, W, C) "
            "or a sequence (L, C)"
        )
    height, width, channels = ir.spatial(node.out_shape)
    if width % pixels:
        raise RtlgenError(
            f"{where}: input '{node.name}' is {width} pixels wide, not a multiple of {pixels}"
        )
    assert node.out_type is not None
    fmt = PixelFormat.make(PixelRows(height, width, pixels), channels, node.out_type)
    if fmt.layout.size > MAX_BEAT_BITS:
        raise RtlgenError(
            f"{where}: a beat of {pixels} pixels of input '{node.name}' is {fmt.layout.size} "
            f"bits, more than one AXI4-Stream beat takes ({MAX_BEAT_BITS}); use a smaller P"
        )
    return fmt


def _fold(fmt: PixelFormat, options) -> list[wiring.Component]:
    """A FIFO of one row of beats, then one pixel per beat."""
    from rtlgen.layers.stream_util import StreamFifo

    assert fmt.rows is not None
    shape = shape_of(fmt.type)
    depth = max(2, fmt.rows.beats_per_row + 1)
    return [StreamFifo(fmt.layout, depth), PixelSerializer(fmt.rows, fmt.channels, shape)]


def plan_pixels(node: ir.Node, ctx: PlanContext) -> LayerPlan:
    """The plan of ``node`` taking a `PixelFormat` stream (``ctx.in_format``)."""
    fmt = ctx.in_format
    assert isinstance(fmt, PixelFormat) and fmt.rows is not None
    built = _multi_pixel_stages(node, ctx, fmt)
    if built is None:
        # fold the input to one pixel per beat, then the layer as always
        from rtlgen.ops.registry import op_for

        plain = op_for(node).plan(node, dataclasses.replace(ctx, in_format=None, spacing=1))
        return dataclasses.replace(
            plain,
            stages=(*_fold(fmt, ctx.options), *plain.stages),
            notes=(*plain.notes, f"input folded from {fmt.rows.pixels} pixels per beat to 1"),
        )
    stages, out, extra = built
    assert out.rows is not None
    height, width = out.rows.height, out.rows.width
    notes = [f"{out.rows.pixels} pixels per beat", *extra.pop("notes", ())]
    if out.rows.pixels == 1:  # one pixel per beat, row after row: the plain stream
        out_format = None
    elif ctx.is_output or (
        ctx.options.parallelism is Parallelism.AUTO and height * width <= ctx.sample_cycles
    ):
        stages = [*stages, *_fold(out, ctx.options)]
        extra["skid_buffer"] = True
        notes.append(
            f"folded to 1 pixel per beat ({height * width} pixels in {ctx.sample_cycles} cycles)"
        )
        out_format = None
    else:
        out_format = out
    return LayerPlan(
        node,
        tuple(stages),
        out_spacing=1,
        notes=tuple(notes),
        out_format=out_format,
        **extra,
    )


def _multi_pixel_stages(node: ir.Node, ctx: PlanContext, fmt: PixelFormat):
    """(stages, output format, LayerPlan counts) of a layer that keeps several pixels per
    beat, or None where it needs one pixel per beat."""
    from rtlgen.layers.stream_util import SkidBuffer

    rows = fmt.rows
    assert rows is not None
    elem = shape_of(ctx.in_type)
    if isinstance(node, ir.Conv) and not any(node.padding):
        if rows.pixels % node.stride[1]:
            return None
        w, bias = weights_matrix(node, ctx.in_type)
        stages: list[wiring.Component] = []
        if node.kernel == (1, 1) and node.stride == (1, 1):
            out_rows, copies = rows, rows.pixels
        else:
            window = MultiWindowGenerator(rows, fmt.channels, node.kernel, node.stride, elem)
            stages.append(window)
            if ctx.options.skid_buffers:
                stages.append(SkidBuffer(window.o.payload.shape()))
            out_rows, copies = window.out_rows, window.out_pixels
        mac = _parallel_mac(w, bias, copies, node, ctx)
        stages.append(mac)
        if not output_is_accumulator(node):
            stages.append(requantize_stage(node, copies * w.shape[1], mac.out_ranges))
        assert node.out_type is not None
        out = PixelFormat.make(out_rows, w.shape[1], node.out_type)
        counts = dict(
            multipliers=copies * int(np.count_nonzero(w)),
            multipliers_dense=int(w.size),
            adders=mac.adders,
            notes=(f"{copies} windows per beat",),
        )
        return stages, out, counts
    if isinstance(node, ir.Pool) and not any(node.padding):
        from rtlgen.layers.pool import WindowAverage, WindowMax
        from rtlgen.layers.window import WindowGeometry
        from rtlgen.ops.pool import covers_input

        if covers_input(node) or rows.pixels % node.stride[1]:
            return None
        assert node.out_type is not None
        window = MultiWindowGenerator(
            rows, fmt.channels, node.pool, node.stride, elem, interleave=True
        )
        lanes = window.out_pixels * fmt.channels
        positions = node.pool[0] * node.pool[1]
        if node.kind is ir.PoolKind.MAX:
            reduce = WindowMax(positions, lanes, ctx.in_type, node.out_type, node.rounding)
        else:
            # no padding: every window has all its elements, one divisor for all
            geometry = WindowGeometry(node.pool[0], node.pool[1], node.pool, node.pool, (0,) * 4)
            reduce = WindowAverage(geometry, lanes, ctx.in_type, node.out_type, node.rounding)
        out = PixelFormat.make(window.out_rows, fmt.channels, node.out_type)
        # into a threshold bank (a pipeline with its own skid buffer after it) the ready
        # path stays three gates long without a skid buffer between them: a cycle less
        feeds_bank = (
            not ctx.is_output and len(ctx.consumers) == 1 and ctx.consumers[0].op == "threshold"
        )
        return [window, reduce], out, {"skid_buffer": not feeds_bank}
    if isinstance(node, ir.ScaleShift):  # a BN not folded: its diagonal for every pixel
        w, bias = weights_matrix(node, ctx.in_type)
        mac = _parallel_mac(w, bias, rows.pixels, node, ctx)
        stages = [mac, requantize_stage(node, rows.pixels * w.shape[1], mac.out_ranges)]
        assert node.out_type is not None
        out = PixelFormat.make(rows, w.shape[1], node.out_type)
        return stages, out, dict(multipliers=rows.pixels * int(np.count_nonzero(w)))
    if isinstance(node, ir.Activation):  # clamp + requantize, element by element
        assert node.out_type is not None
        out = PixelFormat.make(rows, fmt.channels, node.out_type)
        return [requantize_stage(node, rows.pixels * fmt.channels)], out, {}
    from rtlgen.ops.threshold import Threshold

    if isinstance(node, Threshold):
        from rtlgen.layers.threshold import ThresholdBank
        from rtlgen.ops.threshold import unpadded

        assert node.out_type is not None
        thresholds, levels = unpadded(node, ctx.in_type)
        bank = ThresholdBank(
            ctx.in_type, node.out_type, list(thresholds) * rows.pixels, list(levels) * rows.pixels
        )
        out = PixelFormat.make(rows, fmt.channels, node.out_type)
        return [bank], out, {"notes": (f"{bank.comparators} comparators",)}
    return None


def _parallel_mac(w: np.ndarray, bias, copies: int, node, ctx: PlanContext):
    """``copies`` windows' products in one constant MAC array: the weights block diagonal
    (window t's inputs meet only copy t; zero blocks build nothing)."""
    from rtlgen.layers.constant_mac import ConstantMatVec

    in_type, options = ctx.in_type, ctx.options
    weights = np.kron(np.eye(copies, dtype=np.int64), w) if copies > 1 else w
    bias_all = None if bias is None else np.tile(bias, copies)
    return ConstantMatVec(
        weights,
        in_type,
        node.acc_type,
        bias_all,
        options.multiplier,
        in_range=(in_type.min_int, in_type.max_int),
        levels_per_stage=options.adders_per_stage,
    )
