"""Shared by the zero padding / cropping / upsampling op tests: small lowered chains of
those ops and convolutions (no TensorFlow), the convolutional-autoencoder-like network, a
check of a component's `model_timing` against Amaranth's simulator, hand-written Keras
files, real Keras models against their own ``predict``, and saved-graph tampering."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rtlgen import ir
from rtlgen.frontend import read_model
from rtlgen.ops.cropping import Cropping
from rtlgen.ops.upsampling import UpSampling
from rtlgen.ops.zero_padding import ZeroPadding
from rtlgen.passes import PrecisionConfig, lower
from rtlgen.quant.errors import ModelFileError
from rtlgen.quant.fixed import FixedType
from rtlgen.quant.quantizers import QuantizedBits, QuantizedRelu
from rtlgen.quant.reference import predict, run_int
from rtlgen.quant.spatial import cropped_shape, padded_shape, upsampled_shape
from rtlgen.serialize import load_graph, save_graph
from tests.models import exact_inputs, sequential_config, write_full_h5

from ..nets import random_inputs, run_counting_cycles
from .network_checks import bit_exact_in_simulator, timing_matches_model

#: one step of a chain: ("pad", (t, b, l, r)), ("crop", (t, b, l, r)), ("up", (h, w)),
#: ("conv", (filters, kernel, same)), ("pool", size), ("linear_conv", (filters, kernel))
Step = tuple[str, tuple[int, ...] | int]


def _conv(name, shape, filters, kernel, same, rng, relu=True) -> ir.Conv:
    """A QKeras-style conv (2D, or 1D on (L, C)) with stride 1, 'same' or 'valid'."""
    height, width, channels = ir.spatial(shape)
    kernel_h = 1 if len(shape) == 2 else kernel
    pad_h = (kernel_h - 1) // 2, kernel_h // 2
    pad_w = (kernel - 1) // 2, kernel // 2
    padding = (*pad_h, *pad_w) if same else (0, 0, 0, 0)
    rows = height if same else height - kernel_h + 1
    cols = width if same else width - kernel + 1
    out = (cols, filters) if len(shape) == 2 else (rows, cols, filters)
    q = QuantizedBits(5, 0)
    weights = rng.normal(size=(kernel_h, kernel, channels, filters)) * 0.6
    return ir.Conv(
        name,
        shape,
        out,
        weights=ir.FloatTensor(weights, q),
        bias=ir.FloatTensor(rng.normal(size=filters) * 0.3, q),
        kernel=(kernel_h, kernel),
        stride=(1, 1),
        padding=padding,
        activation=ir.RELU if relu else ir.LINEAR,
        out_quantizer=QuantizedRelu(6, 2) if relu else QuantizedBits(8, 3),
    )


def chain(
    in_shape: tuple[int, ...],
    steps: Sequence[Step],
    seed: int = 0,
    input_type: FixedType = FixedType(8, 4),
) -> ir.ModelGraph:
    """A lowered linear chain of the given steps."""
    rng = np.random.default_rng(seed)
    nodes: list[ir.Node] = [ir.Input("in", in_shape, in_shape)]
    shape = in_shape
    for index, (kind, arg) in enumerate(steps):
        name = f"{kind}{index}"
        if kind == "pad":
            out = padded_shape(shape, arg)
            node: ir.Node = ZeroPadding(name, shape, out, padding=arg)
        elif kind == "crop":
            out = cropped_shape(shape, arg)
            node = Cropping(name, shape, out, cropping=arg)
        elif kind == "up":
            out = upsampled_shape(shape, arg)
            node = UpSampling(name, shape, out, size=arg)
        elif kind in ("conv", "linear_conv"):
            filters, kernel, *same = arg
            node = _conv(name, shape, filters, kernel, bool(same and same[0]), rng, kind == "conv")
        elif kind == "pool":
            size = (1, arg) if len(shape) == 2 else (arg, arg)
            height, width, channels = ir.spatial(shape)
            cols = width // size[1]
            out = (cols, channels) if len(shape) == 2 else (height // size[0], cols, channels)
            node = ir.Pool(name, shape, out, kind=ir.PoolKind.MAX, pool=size, stride=size)
        else:
            raise ValueError(kind)
        nodes.append(node)
        shape = tuple(node.out_shape)
    graph = ir.ModelGraph("spatial_chain", tuple(nodes))
    return lower(graph, PrecisionConfig(input=input_type))


def autoencoder(tail: str, height: int = 8, width: int = 8, channels: int = 1, seed: int = 0):
    """conv 3x3 valid -> 2x2 max pool -> conv 3x3 same -> 2x2 upsampling -> zero padding
    (``tail='pad'``: back to the input size) or cropping (``'crop'``) -> linear conv 3x3
    valid: an image out, no softmax."""
    rows, cols = (height - 2) // 2 * 2, (width - 2) // 2 * 2
    if tail == "pad":
        middle: Step = ("pad", (1, height - rows - 1, 1, width - cols - 1))
    else:
        middle = ("crop", (1, 0, 0, 1))
    steps: list[Step] = [
        ("conv", (3, 3, False)),
        ("pool", 2),
        ("conv", (2, 3, True)),
        ("up", (2, 2)),
        middle,
        ("linear_conv", (channels, 3)),
    ]
    return chain((height, width, channels), steps, seed)


def bit_exact_and_timed(graph: ir.ModelGraph) -> None:
    """Bit-exact under random backpressure (3 samples), and at full rate the measured
    latency/II equal the manifest's (`network_checks.timing_matches_model`)."""
    bit_exact_in_simulator(graph, n=3, valid_prob=0.6, ready_prob=0.5, seed=2)
    timing_matches_model(graph)


def simulated_timing(dut, times: list[int], n_out: int, channels: int):
    """(input handshake cycles, output valid cycles) of a pixel component with input beat
    ``k`` offered from cycle ``times[k]`` on and the output always ready: what its
    ``model_timing(times, samples)`` must return."""
    accepted: list[int] = []
    out: list[int] = []
    cycle = {"n": 0}

    async def source(ctx):
        for k, offered in enumerate(times):
            while cycle["n"] < offered:
                ctx.set(dut.i.valid, 0)
                await ctx.tick()
            ctx.set(dut.i.payload, [k % 7] * channels)
            ctx.set(dut.i.valid, 1)
            while True:
                _, _, ready = await ctx.tick().sample(dut.i.ready)
                if ready:
                    accepted.append(cycle["n"] - 1)
                    break
        ctx.set(dut.i.valid, 0)

    async def sink(ctx):
        ctx.set(dut.o.ready, 1)
        while len(out) < n_out:
            _, _, valid = await ctx.tick().sample(dut.o.valid)
            if valid:
                out.append(cycle["n"] - 1)
            assert cycle["n"] < 100_000

    run_counting_cycles(dut, cycle, [source, sink])
    return accepted, out


def offered_times(beats: int, rng: np.random.Generator, gap_prob: float) -> list[int]:
    """Cycles at which ``beats`` input beats are offered: full rate with random gaps."""
    times, clock = [], 0
    for _ in range(beats):
        while rng.random() < gap_prob:
            clock += 1
        times.append(clock)
        clock += 1
    return times


def model_timing_is_simulated(dut, samples: int, seed: int, gap_prob: float) -> None:
    """Input beats of ``samples`` samples offered at random cycles, output always ready:
    ``dut.model_timing`` gives exactly the simulated handshake and output cycles."""
    times = offered_times(samples * dut.height * dut.width, np.random.default_rng(seed), gap_prob)
    n_out = samples * dut.out_height * dut.out_width
    assert dut.model_timing(times, samples) == simulated_timing(dut, times, n_out, dut.channels)


# ---------------------------------------------------------------------------------------
# model files
# ---------------------------------------------------------------------------------------
def read_handmade(
    tmp_path: Path,
    layers: list[dict[str, Any]],
    input_shape: tuple[int, ...],
    weights: dict[str, dict[str, np.ndarray]] | None = None,
) -> ir.ModelGraph:
    """A hand-written Sequential config (full .h5) read and lowered (input fixed<16,10>)."""
    config = sequential_config(layers, input_shape)
    return lower(read_model(write_full_h5(tmp_path / "m.h5", config, weights or {})))


def keras_graph(model: Any, tmp_path: Path, input_type: FixedType | None = None) -> ir.ModelGraph:
    """A tf.keras model saved as .h5, read back and lowered (input ``input_type``, by
    default the default precision's)."""
    path = tmp_path / f"{model.name}.h5"
    model.save(path)
    config = PrecisionConfig() if input_type is None else PrecisionConfig(input=input_type)
    return lower(read_model(path), config)


def predicts_like_keras(
    model: Any,
    tmp_path: Path,
    n: int = 32,
    seed: int = 0,
    input_type: FixedType | None = None,
) -> ir.ModelGraph:
    """`keras_graph`: on ``n`` inputs exact in fixed<8,4> the lowered graph predicts exactly
    what Keras does; returns the graph."""
    graph = keras_graph(model, tmp_path, input_type)
    x = exact_inputs(model.input_shape[1:], n, seed)
    np.testing.assert_array_equal(predict(graph, x), model.predict(x, verbose=0))
    return graph


def refused_in_one_line(
    tmp_path: Path,
    layer: dict[str, Any],
    shape: tuple[int, ...],
    error: type[Exception],
    words: str,
    names: str,
) -> None:
    """Reading a model of just ``layer`` raises ``error`` with a one-line message naming the
    layer (``names``, e.g. "layer 'pad' (ZeroPadding") and saying ``words``."""
    with pytest.raises(error) as info:
        read_handmade(tmp_path, [layer], shape)
    message = str(info.value)
    assert "\n" not in message and names in message and words in message


# ---------------------------------------------------------------------------------------
# saved graphs
# ---------------------------------------------------------------------------------------
def round_trips(graph: ir.ModelGraph, tmp_path: Path) -> Path:
    """save_graph -> load_graph gives the same nodes (fields) and the same integer outputs."""
    path = tmp_path / "graph.npz"
    save_graph(graph, path)
    loaded = load_graph(path)
    for before, after in zip(graph.nodes, loaded.nodes, strict=True):
        assert type(before) is type(after)
        if not ir.constants(before):
            assert dataclasses.asdict(before) == dataclasses.asdict(after)
    x = random_inputs(graph, 4, 1)
    np.testing.assert_array_equal(run_int(loaded, x), run_int(graph, x))
    return path


def tamper(path: Path, class_name: str, edit: Callable[[dict[str, Any]], None]) -> None:
    """Rewrite the saved description of the first node of ``class_name`` with ``edit``."""
    with np.load(path) as data:  # the test's own file: trusted here
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(str(arrays.pop("__graph__")))
    edit(next(n for n in meta["nodes"] if n["class"] == class_name))
    with open(path, "wb") as f:
        np.savez(f, __graph__=np.array(json.dumps(meta)), **arrays)


def tampered_is_refused(
    graph: ir.ModelGraph,
    tmp_path: Path,
    class_name: str,
    edit: Callable[[dict[str, Any]], None],
    words: str,
) -> None:
    """``graph`` saved, its first ``class_name`` node edited (`tamper`): loading it is one
    one-line `ModelFileError` naming the class and saying ``words``."""
    path = round_trips(graph, tmp_path)
    tamper(path, class_name, edit)
    with pytest.raises(ModelFileError) as info:
        load_graph(path)
    message = str(info.value)
    assert "\n" not in message and f"({class_name})" in message and words in message
