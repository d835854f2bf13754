"""Small lowered networks for hardware tests (no TensorFlow), and an AXI4-Stream runner for
`NetworkTop` in Amaranth's Python simulator."""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass

import numpy as np
from amaranth.sim import Simulator

from rtlgen import ir
from rtlgen.hardware import HardwareOptions, NetworkTop
from rtlgen.passes import PrecisionConfig, lower
from rtlgen.quant.fixed import FixedType
from rtlgen.quant.quantizers import QuantizedBits, QuantizedRelu


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int, int]:
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return out, total // 2, total - total // 2


def conv_net(
    h=6, w=7, c=2, filters=3, kernel=3, stride=1, same=False, pool=True, dense=4, wbits=5,
    sparsity=0.4, seed=0, input_type=FixedType(8, 4), scale_shift=False, avg=False,
    bn_relu=False,
) -> ir.ModelGraph:
    """input -> conv(+relu, quantized) [-> BN scale-shift [+ quantized relu]] [-> 2x2 pool]
    -> flatten -> dense."""
    rng = np.random.default_rng(seed)
    if same:
        ho, pt, pb = same_padding(h, kernel, stride)
        wo, pl, pr = same_padding(w, kernel, stride)
        padding = (pt, pb, pl, pr)
    else:
        ho, wo, padding = (h - kernel) // stride + 1, (w - kernel) // stride + 1, (0, 0, 0, 0)
    kq = QuantizedBits(wbits, 0)
    weights = rng.normal(size=(kernel, kernel, c, filters)) * (rng.random((kernel, kernel, c, filters)) >= sparsity)
    nodes: list[ir.Node] = [
        ir.Input("in", (h, w, c), (h, w, c)),
        ir.Conv("conv", (h, w, c), (ho, wo, filters), weights=ir.FloatTensor(weights, kq),
                bias=ir.FloatTensor(rng.normal(size=filters) * 0.3, kq), kernel=(kernel, kernel),
                stride=(stride, stride), padding=padding, activation=ir.RELU, out_quantizer=QuantizedRelu(6, 2)),
    ]
    shape = (ho, wo, filters)
    if scale_shift:
        nodes.append(ir.ScaleShift("bn", shape, shape, scale=ir.FloatTensor(rng.uniform(0.5, 1.5, filters)),
                                   shift=ir.FloatTensor(rng.normal(size=filters) * 0.2),
                                   **(dict(activation=ir.RELU, out_quantizer=QuantizedRelu(6, 0)) if bn_relu else {})))
    if pool and ho >= 2 and wo >= 2:
        pooled = (ho // 2, wo // 2, filters)
        nodes.append(ir.Pool("pool", shape, pooled, kind=ir.PoolKind.AVG if avg else ir.PoolKind.MAX,
                             pool=(2, 2), stride=(2, 2)))
        shape = pooled
    flat = int(np.prod(shape))
    nodes += [
        ir.Flatten("flatten", shape, (flat,)),
        ir.Dense("dense", (flat,), (dense,), weights=ir.FloatTensor(rng.normal(size=(flat, dense)), QuantizedBits(6, 1)),
                 bias=ir.FloatTensor(rng.normal(size=dense), QuantizedBits(6, 1))),
    ]
    return lower(ir.ModelGraph("conv_net", tuple(nodes)), PrecisionConfig(input=input_type))


def mlp(
    sizes=(8, 12, 6, 4), wbits=6, sparsity=0.5, seed=0, input_type=FixedType(10, 6), flatten_after=()
) -> ir.ModelGraph:
    """A QKeras-style MLP: quantized_bits weights, quantized_relu between layers; a (no-op)
    Flatten after each dense layer whose index is in ``flatten_after``."""
    rng = np.random.default_rng(seed)
    nodes: list[ir.Node] = [ir.Input("in", (sizes[0],), (sizes[0],))]
    for index, (n_in, n_out) in enumerate(zip(sizes, sizes[1:], strict=False)):
        last = index == len(sizes) - 2
        wq = QuantizedBits(wbits, 0)
        weights = rng.normal(size=(n_in, n_out)) * 0.5 * (rng.random((n_in, n_out)) >= sparsity)
        nodes.append(ir.Dense(
            f"dense{index}", (n_in,), (n_out,), weights=ir.FloatTensor(weights, wq),
            bias=ir.FloatTensor(rng.normal(size=n_out) * 0.2, wq),
            activation=ir.LINEAR if last else ir.RELU,
            out_quantizer=None if last else QuantizedRelu(wbits, 0),
        ))
        if index in flatten_after:
            nodes.append(ir.Flatten(f"flatten{index}", (n_out,), (n_out,)))
    return lower(ir.ModelGraph("mlp", tuple(nodes)), PrecisionConfig(input=input_type))


def random_inputs(graph: ir.ModelGraph, n: int, seed: int = 0) -> np.ndarray:
    t = graph.input.out_type
    return np.random.default_rng(seed).integers(t.min_int, t.max_int + 1, size=(n, *graph.input_shape))


@dataclass
class AxisRun:
    outputs: np.ndarray  # (N, *output_shape) mantissas
    classes: list[int]
    first_in: list[int]  # cycle of each sample's first input beat
    last_out: list[int]  # cycle of each sample's last output beat


def _unpack(word: int, n: int, width: int, signed: bool) -> list[int]:
    out = []
    for k in range(n):
        v = (word >> (k * width)) & ((1 << width) - 1)
        if signed and v >= 1 << (width - 1):
            v -= 1 << width
        out.append(v)
    return out


def run_counting_cycles(dut, cycle: dict[str, int], testbenches) -> None:
    """Simulate ``dut`` with ``testbenches`` while ``cycle["n"]`` counts clock edges from the
    start (the testbenches read it to time their handshakes)."""

    async def clock_counter(ctx):
        async for _ in ctx.tick():
            cycle["n"] += 1

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_process(clock_counter)
    for bench in testbenches:
        sim.add_testbench(bench)
    sim.run()


def run_top(
    graph: ir.ModelGraph,
    x_int: np.ndarray,
    options: HardwareOptions = HardwareOptions(),
    valid_prob: float = 1.0,
    ready_prob: float = 1.0,
    seed: int = 0,
) -> AxisRun:
    """Stream samples through `NetworkTop` in Amaranth's simulator, with random gaps; the
    first output (`run_top_outputs` gives every output of a multi-output graph)."""
    return next(iter(run_top_outputs(graph, x_int, options, valid_prob, ready_prob, seed).values()))


def run_top_outputs(
    graph: ir.ModelGraph,
    x_int: np.ndarray,
    options: HardwareOptions = HardwareOptions(),
    valid_prob: float = 1.0,
    ready_prob: float = 1.0,
    seed: int = 0,
) -> dict[str, AxisRun]:
    """Stream samples through `NetworkTop` in Amaranth's simulator, with random input gaps
    and an independent random tready on each output master; {output node name: what came
    out of its master}, in ``graph.outputs`` order. tlast is checked on every beat."""
    top = NetworkTop(graph, options)
    fi = top.input_format
    rng = random.Random(seed)
    beats = [row.reshape(fi.beats, fi.elements) for row in x_int]
    mask = (1 << fi.type.width) - 1
    first_in: list[int] = []
    runs = {out.node: AxisRun(np.zeros(0), [], first_in, []) for out in top.outputs}
    words: dict[str, list[int]] = {out.node: [] for out in top.outputs}
    cycle = {"n": 0}

    async def source(ctx):
        for sample in beats:
            for b, beat in enumerate(sample):
                while valid_prob < 1 and rng.random() >= valid_prob:
                    ctx.set(top.s_axis_tvalid, 0)
                    await ctx.tick()
                word = sum((int(v) & mask) << (k * fi.type.width) for k, v in enumerate(beat))
                ctx.set(top.s_axis_tdata, word)
                ctx.set(top.s_axis_tvalid, 1)
                ctx.set(top.s_axis_tlast, b == fi.beats - 1)
                while True:
                    _, _, ready = await ctx.tick().sample(top.s_axis_tready)
                    if ready:
                        break
                if b == 0:
                    first_in.append(cycle["n"] - 1)
        ctx.set(top.s_axis_tvalid, 0)

    def sink_for(index: int):
        out = top.outputs[index]
        fo, run, got = out.format, runs[out.node], words[out.node]
        port = functools.partial(top.port, index)
        signals = [port("tvalid"), port("tdata"), port("tlast")]
        if out.classes:
            signals.append(port("tuser"))

        async def sink(ctx):
            # output 0 keeps the one-output runner's pattern
            rng_out = random.Random(seed + 1 + 7919 * index)
            total = len(beats) * fo.beats
            while len(got) < total:
                ready = ready_prob >= 1 or rng_out.random() < ready_prob
                ctx.set(port("tready"), ready)
                sampled = await ctx.tick().sample(*signals)
                valid, tdata, tlast = sampled[2], sampled[3], sampled[4]
                if valid and ready:
                    got.append(int(tdata))
                    expect_last = len(got) % fo.beats == 0
                    assert bool(tlast) == expect_last, (
                        f"{out.prefix}_tlast wrong on output beat {len(got)}"
                    )
                    if expect_last:
                        run.last_out.append(cycle["n"] - 1)
                        if out.classes:
                            run.classes.append(int(sampled[5]))
                assert cycle["n"] < 200_000, "timeout"
            ctx.set(port("tready"), 1)  # the others may still need the shared pipeline

        return sink

    run_counting_cycles(top, cycle, [source, *(sink_for(k) for k in range(len(top.outputs)))])
    for out in top.outputs:
        fo = out.format
        vals = [_unpack(wd, fo.elements, fo.type.width, fo.type.signed) for wd in words[out.node]]
        runs[out.node].outputs = np.array(vals).reshape(
            len(beats), *graph.node(out.node).out_shape
        )
    return runs
