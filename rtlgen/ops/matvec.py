"""The planner shared by the constant matrix-vector ops (dense, conv, scale_shift).

Each of them is ``acc = W x + b`` on one vector per window position, then activation and
requantization: a `ConstantMatVec` (one constant-coefficient product per non-zero weight;
pruned weights build nothing) or, where the input beats come far enough apart, a
`SerialMatVec` with a reuse factor (shared general multipliers, weights in a ROM). A
convolution first walks its windows with a `WindowGenerator`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from rtlgen import ir

if TYPE_CHECKING:
    from rtlgen.plan import HardwareOptions, LayerPlan, PlanContext, StreamFormat


def stream_steps(
    node: ir.Node,
    weights: np.ndarray,
    beats: StreamFormat,
    spacing: int,
    sample_cycles: int,
    options: HardwareOptions,
) -> int | None:
    """Steps per beat of a dense that consumes a flatten's ``beats`` as they arrive (each
    beat's products added to the partial sums of every output, FINN MVAU-style), or None
    where it takes the whole vector after the flatten instead.

    A beat is folded over no more steps than the guaranteed ``spacing`` between beats (the
    layer never holds its producer up), nor than the layer's reuse cap; the shared
    multipliers then serve ``beats x steps`` products each per sample, which must reach
    ``options.min_reuse`` and pay for them as in `plan_matvec` (a general multiplier costs at
    least two constant ones). A reuse cap (`HardwareOptions.reuse_cap`) of 1 builds the layer
    fully parallel: a constant MAC array after the flatten is a few cycles shallower than
    one step per beat. The result is ready ``steps + depth + 1`` cycles after the
    last beat instead of after a whole vector's worth of steps."""
    from rtlgen.layers.serial_mac import shared_multipliers
    from rtlgen.plan import Parallelism

    cap = options.reuse_cap(node.name)
    if (
        options.parallelism is not Parallelism.AUTO
        or cap == 1  # fully parallel
        or not isinstance(node, ir.Dense)
        or beats.beats < 2
    ):
        return None
    steps = min(spacing, beats.elements, max(1, sample_cycles // beats.beats))
    if cap is not None:
        steps = min(steps, cap)
    if beats.beats * steps < options.min_reuse:
        return None
    if 2 * shared_multipliers(weights, steps, beats.beats) > np.count_nonzero(weights):
        return None
    return steps


def _feeds_threshold(node: ir.Node, ctx: PlanContext) -> bool:
    """Whether a dense's one consumer is a threshold bank (a float BN + quantizer): no
    skid buffer between them (a cycle less). The dense's output is registered and the
    bank is a `pipeline_control` pipeline with its own skid buffer after it, so the ready
    path through both stays two ``~o.valid | o.ready`` gates long."""
    return (
        isinstance(node, ir.Dense)
        and not ctx.is_output
        and len(ctx.consumers) == 1
        and ctx.consumers[0].op == "threshold"
    )


def plan_matvec(node: ir.Conv | ir.Dense | ir.ScaleShift, ctx: PlanContext) -> LayerPlan:
    """The `LayerPlan` of a constant matrix-vector node: window generator (convs), MAC array
    (parallel or time-multiplexed, by the spacing of its input beats) and requantizer."""
    from amaranth.lib import wiring

    from rtlgen.layers.common import shape_of
    from rtlgen.layers.constant_mac import ConstantMatVec
    from rtlgen.layers.serial_mac import SerialMatVec, shared_multipliers
    from rtlgen.layers.stream_util import SkidBuffer
    from rtlgen.layers.window import WindowGenerator
    from rtlgen.plan import (
        FUSED_REQUANTIZE_LEVELS,
        LayerPlan,
        Parallelism,
        Pipeline,
        StreamFormat,
        output_is_accumulator,
        requantize_stage,
        weights_matrix,
    )

    in_type, options, spacing, sample_cycles = (
        ctx.in_type,
        ctx.options,
        ctx.spacing,
        ctx.sample_cycles,
    )
    input_levels, last = ctx.input_levels, ctx.last
    fmt_in = StreamFormat.of(node.in_shape, in_type)
    w, bias = weights_matrix(node, in_type)
    if ctx.in_format is not None and ctx.in_format.beats > 1:
        return _plan_streaming(node, ctx, w, bias)
    stages: list[wiring.Component] = []
    window_spacing = spacing
    windows = fmt_in.beats
    if isinstance(node, ir.Conv):
        h, wd, c = ir.spatial(node.in_shape)
        trivial = node.kernel == (1, 1) and node.stride == (1, 1) and not any(node.padding)
        if not trivial:
            window = WindowGenerator(
                h, wd, c, node.kernel, node.stride, node.padding, shape_of(in_type)
            )
            stages.append(window)
            if options.skid_buffers:
                # cut the handshake chain from the MAC array into the line memory's
                # write enable (the deepest logic of a large design otherwise)
                stages.append(SkidBuffer(window.o.payload.shape()))
            # padding positions are emitted one per cycle without input
            window_spacing = 1 if any(node.padding) else spacing * node.stride[1]
        windows = int(np.prod(node.out_shape[:-1]))
    # reuse: steps per input beat, or per result beat of `out_beats` (all within the
    # input's spacing)
    reuse, out_beats = 1, 1
    if options.parallelism is Parallelism.AUTO and w.shape[0] > 1:
        out_beats = 1 if stages else _result_beats(node, ctx, w)
        reuse = min(
            window_spacing // out_beats,
            w.shape[0],
            max(1, sample_cycles // max(windows, 1) // out_beats),
        )
        cap = options.reuse_cap(node.name)
        if cap is not None:
            reuse = min(reuse, cap)
        if reuse * out_beats < options.min_reuse or reuse < 1:
            reuse, out_beats = 1, 1
    in_range = (in_type.min_int, in_type.max_int)
    # Sharing must pay: a general multiplier costs at least two constant ones, so a layer
    # whose schedule keeps most products apart (a BN scale-and-shift's diagonal needs one
    # multiplier per element at any reuse) stays fully parallel, saving `steps` cycles.
    serial = reuse * out_beats > 1
    if serial and 2 * shared_multipliers(w, reuse, out_beats=out_beats) > np.count_nonzero(w):
        reuse, out_beats, serial = 1, 1, False
    fused = options.pipeline is Pipeline.LATENCY and not serial and fmt_in.beats == 1 and not stages
    out_levels = 0
    # hardware multipliers: the shared general multipliers of a serial array, one per
    # non-zero weight in a parallel one (shared by all window positions)
    if serial:
        mac = SerialMatVec(
            w,
            in_type,
            node.acc_type,
            bias,
            reuse,
            options.multiplier,
            levels_per_stage=options.adders_per_stage,
            out_beats=out_beats,
            # a convolution's windows: no early start (the cycle it saves costs a mux per
            # window bit: conv_2 of the SVHN CNN 11,025 -> 11,454 LUT)
            early_start=not isinstance(node, ir.Conv),
        )
        multipliers = mac.multipliers
    else:
        mac = ConstantMatVec(
            w,
            in_type,
            node.acc_type,
            bias,
            options.multiplier,
            in_range=in_range,
            levels_per_stage=options.adders_per_stage,
            input_levels=min(input_levels, options.adders_per_stage - 1) if fused else 0,
            output_levels=None if not fused or last else FUSED_REQUANTIZE_LEVELS,
        )
        multipliers = int(np.count_nonzero(w))
        if fused and not last:
            out_levels = FUSED_REQUANTIZE_LEVELS + mac.output_depth
    stages.append(mac)
    if fused or not output_is_accumulator(node):
        stages.append(
            requantize_stage(
                node,
                w.shape[1] // out_beats,
                getattr(mac, "out_ranges", None),
                0 if fused else None,
            )
        )
    if out_beats > 1:
        return LayerPlan(
            node,
            tuple(stages),
            multipliers=multipliers,
            multipliers_dense=int(w.size),
            adders=mac.adders,
            reuse=mac.cycles_per_sample,
            cycles_per_sample=mac.cycles_per_sample,
            out_spacing=mac.steps,
            notes=(
                f"time-multiplexed: {mac.steps} cycles per result beat, {out_beats} beats of "
                f"{mac.columns}",
            ),
            skid_buffer=not _feeds_threshold(node, ctx),
            out_format=StreamFormat(out_beats, mac.columns, node.out_type),  # type: ignore[arg-type]
        )
    return LayerPlan(
        node,
        tuple(stages),
        multipliers=multipliers,
        multipliers_dense=int(np.count_nonzero(w) if isinstance(node, ir.ScaleShift) else w.size),
        adders=getattr(mac, "adders", 0),
        reuse=reuse,
        cycles_per_sample=max(getattr(st, "cycles_per_sample", 1) for st in stages)
        * (windows if reuse > 1 else 1),
        out_spacing=window_spacing,
        notes=(f"time-multiplexed: {getattr(mac, 'steps', 1)} cycles per vector",)
        if reuse > 1
        else (),
        out_levels=out_levels,
        skid_buffer=not fused and not _feeds_threshold(node, ctx),
    )


def _result_beats(node, ctx: PlanContext, w: np.ndarray) -> int:
    """The beats a time-multiplexed dense of a one-beat input sends its result in: the
    options' `HardwareOptions.out_beats` where it divides the outputs and the result goes
    to one threshold bank or dense (which take beats as they arrive), else 1."""
    beats = ctx.options.out_beats(node.name)
    if (
        beats <= 1
        or not isinstance(node, ir.Dense)
        or len(node.in_shape) != 1
        or w.shape[1] % beats
        or ctx.is_output
        or len(ctx.consumers) != 1
        or ctx.consumers[0].op not in ("threshold", "dense")
    ):
        return 1
    return beats


def _plan_streaming(node, ctx: PlanContext, w: np.ndarray, bias) -> LayerPlan:
    """A dense taking a flatten's (or another dense's) beats as they arrive
    (`stream_steps`): a `SerialMatVec` over ``beats`` beats, then the requantizer; where it
    does not stream, a `Deserialize` gathers the beats first."""
    import dataclasses

    from rtlgen.layers.common import shape_of
    from rtlgen.layers.flatten import Deserialize
    from rtlgen.layers.serial_mac import SerialMatVec
    from rtlgen.plan import LayerPlan, output_is_accumulator, requantize_stage

    fmt = ctx.in_format
    assert fmt is not None
    steps = stream_steps(node, w, fmt, ctx.spacing, ctx.sample_cycles, ctx.options)
    if steps is None:
        gathered = plan_matvec(
            node,
            dataclasses.replace(
                ctx, in_format=None, spacing=max(ctx.spacing * fmt.beats, ctx.sample_cycles)
            ),
        )
        gather = Deserialize(fmt.beats, fmt.elements, shape_of(ctx.in_type))
        return dataclasses.replace(gathered, stages=(gather, *gathered.stages))
    mac = SerialMatVec(
        w,
        ctx.in_type,
        node.acc_type,
        bias,
        steps,
        ctx.options.multiplier,
        beats=fmt.beats,
        levels_per_stage=ctx.options.adders_per_stage,
    )
    stages = (mac,) if output_is_accumulator(node) else (mac, requantize_stage(node, w.shape[1], None))
    return LayerPlan(
        node,
        stages,
        multipliers=mac.multipliers,
        multipliers_dense=int(w.size),
        adders=mac.adders,
        reuse=mac.cycles_per_sample,
        cycles_per_sample=mac.cycles_per_sample,
        out_spacing=max(ctx.spacing * fmt.beats, ctx.sample_cycles),
        notes=(
            f"streamed: {fmt.beats} beats of {fmt.elements} taken as they arrive, "
            f"{mac.steps} cycles per beat",
        ),
        skid_buffer=not _feeds_threshold(node, ctx),
    )
